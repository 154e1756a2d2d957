import CLAPACK
import Foundation

/// The circular (periodic) convolution on an n×n input, and its spectrum
/// through the 2-D DFT (Sedghi, Gupta & Long 2019).
extension ConvolutionOperator {
    /// A_circ ((out·n·n) × (in·n·n)) with W (out, in·k·k) in PyTorch's
    /// flattening: y[oc, p, q] = Σ_{c,i,j} W[oc, (c·k + i)·k + j]·x[c, (p+i) mod n, (q+j) mod n].
    /// Rows with p, q < n − k + 1 are exactly the valid operator's
    /// (``matrix(weight:inChannels:kernel:inputSide:)``), so A_valid is a row
    /// subset of A_circ.
    public static func circulantMatrix(weight w: Matrix, inChannels: Int, kernel k: Int, inputSide n: Int) -> Matrix {
        explicit(weight: w, inChannels: inChannels, kernel: k, inputSide: n, outputSide: n)
    }

    /// K̂(ω) = Σ_{a,b} K[:, :, a, b]·e^{−2πi(a·ω₁ + b·ω₂)/n} for every frequency
    /// ω = (ω₁, ω₂) ∈ {0…n−1}², each an out×in complex matrix, row-major,
    /// interleaved (re, im): element (ω₁·n + ω₂) of the result holds
    /// 2·out·in doubles.
    public static func frequencyMatrices(weight w: Matrix, inChannels: Int, kernel k: Int, inputSide n: Int)
        -> [[Double]]
    {
        precondition(w.columns == inChannels * k * k && n >= k)
        let out = w.rows
        // The phases e^{−2πi·m/n}, m = 0…n−1 (a·ω mod n indexes them exactly).
        let phase = (0..<n).map { m -> (Double, Double) in
            let t = -2 * Double.pi * Double(m) / Double(n)
            return (cos(t), sin(t))
        }
        var result = [[Double]]()
        result.reserveCapacity(n * n)
        for w1 in 0..<n {
            for w2 in 0..<n {
                var m = [Double](repeating: 0, count: 2 * out * inChannels)
                for a in 0..<k {
                    for b in 0..<k {
                        let (re, im) = phase[(a * w1 + b * w2) % n]
                        for oc in 0..<out {
                            for c in 0..<inChannels {
                                let v = w[oc, (c * k + a) * k + b]
                                m[2 * (oc * inChannels + c)] += v * re
                                m[2 * (oc * inChannels + c) + 1] += v * im
                            }
                        }
                    }
                }
                result.append(m)
            }
        }
        return result
    }
}

/// The singular values of a complex rows×columns matrix (row-major,
/// interleaved re, im), descending, from LAPACKE_zgesvd in float64.
public func complexSingularValues(_ interleaved: [Double], rows m: Int, columns n: Int, context: String) throws
    -> [Double]
{
    precondition(interleaved.count == 2 * m * n && m > 0 && n > 0)
    var a = interleaved
    let r = min(m, n)
    var s = [Double](repeating: 0, count: r)
    var superb = [Double](repeating: 0, count: max(1, r - 1))
    var dummy = [Double](repeating: 0, count: 2)
    // Row-major m×n is column-major n×m, the transpose: same singular values, no copy.
    let info = a.withUnsafeMutableBufferPointer { pa in
        dummy.withUnsafeMutableBufferPointer { pd in
            LAPACKE_zgesvd(
                LAPACK_COL_MAJOR, CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "N")), Int32(n), Int32(m),
                OpaquePointer(pa.baseAddress!), Int32(n), &s,
                OpaquePointer(pd.baseAddress!), 1, OpaquePointer(pd.baseAddress!), 1, &superb)
        }
    }
    if info != 0 { throw LAPACKError(routine: "LAPACKE_zgesvd", info: Int(info), context: context) }
    return s
}

/// All singular values of a real matrix, descending, without vectors
/// (LAPACKE_dgesdd, jobz = "N"; the row-major buffer is passed as the
/// column-major transpose, which has the same singular values, so LAPACKE
/// makes no transposed copy).
public func singularValuesOnly(_ a: Matrix, context: String) throws -> [Double] {
    precondition(a.rows > 0 && a.columns > 0)
    var work = a.values
    let m = a.columns
    let n = a.rows  // column-major view: Aᵀ
    var s = [Double](repeating: 0, count: min(m, n))
    var noU = [Double](repeating: 0, count: 1)
    var noVt = [Double](repeating: 0, count: 1)
    let info = LAPACKE_dgesdd(
        LAPACK_COL_MAJOR, CChar(UInt8(ascii: "N")), Int32(m), Int32(n), &work, Int32(m),
        &s, &noU, 1, &noVt, 1)
    if info != 0 { throw LAPACKError(routine: "LAPACKE_dgesdd", info: Int(info), context: context) }
    return s
}

/// The four reshapes of a kernel K (out, in, h, w) whose spectral norms
/// bound the circular convolution's (Singla & Feizi 2021, "Fantastic Four"):
/// ‖A_circ‖₂ ≤ √(h·w)·min(‖R₁‖₂, ‖R₂‖₂, ‖R₃‖₂, ‖R₄‖₂), with
/// R₁ (out·h) × (in·w), R₂ (out·w) × (in·h), R₃ = W (out) × (in·h·w),
/// R₄ (out·h·w) × (in).
public func fantasticFourReshapes(weight w: Matrix, inChannels: Int, kernel k: Int) -> [Matrix] {
    let out = w.rows
    func entry(_ o: Int, _ c: Int, _ a: Int, _ b: Int) -> Double { w[o, (c * k + a) * k + b] }
    var r1 = Matrix(rows: out * k, columns: inChannels * k)
    var r2 = Matrix(rows: out * k, columns: inChannels * k)
    var r4 = Matrix(rows: out * k * k, columns: inChannels)
    for o in 0..<out {
        for c in 0..<inChannels {
            for a in 0..<k {
                for b in 0..<k {
                    let v = entry(o, c, a, b)
                    r1[o * k + a, c * k + b] = v
                    r2[o * k + b, c * k + a] = v
                    r4[(o * k + a) * k + b, c] = v
                }
            }
        }
    }
    return [r1, r2, w, r4]
}
