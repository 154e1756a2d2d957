import CLAPACK
import Foundation

/// An upper bound on ‖A‖₂ of a zero-padded convolution, certified by a
/// Cholesky factorisation of μI − AᵀA
/// (``ConvOperator/choleskyCertificate(above:tolerance:)``).
public struct CholeskyCertificate: Codable, Sendable, Equatable {
    /// √(μ·(1 + γ·N/(1 − γ)) + γ_t·‖A‖_F²) for the smallest μ whose
    /// factorisation succeeded: ≥ ‖A‖₂, rounding included.
    public var bound: Double
    /// Factorisations tried, the last the one that succeeded.
    public var attempts: Int
    /// The band's half-width: ((kh − 1)·W + kw − 1)·C + C − 1 (at most N − 1).
    public var halfBandwidth: Int
}

extension ConvOperator {
    /// The most doubles the band of AᵀA may hold, (kd + 1)·N: 32 Mi (256 MiB,
    /// held twice while it factorises). ResNet-20's largest band (16
    /// channels on 28×28) is 11.8 M; 16 channels on 32×32 17.6 M. Beyond it
    /// the bracket keeps the circular bound alone.
    public static let certificateBandLimit = 32 * 1024 * 1024

    /// The half-bandwidth of AᵀA with the inputs ordered pixel by pixel and
    /// the channels inside each pixel: two inputs share an output only when
    /// they lie within kh − 1 rows and kw − 1 columns of each other.
    var gramHalfBandwidth: Int {
        min(((kernelHeight - 1) * inputWidth + kernelWidth - 1) * inChannels + inChannels - 1, inputCount - 1)
    }

    /// AᵀA's upper band in LAPACK's band storage (column-major, kd + 1 rows,
    /// row kd + i − j of column j holding entry (i, j), i ≤ j), inputs
    /// ordered pixel by pixel (a permutation: the same eigenvalues), and its
    /// trace ‖A‖_F². Each output pixel adds the block of G = W̃ᵀW̃ (W̃ the
    /// (out) × (in·kh·kw) weight matrix) that its in-bounds taps select:
    /// (Ho·Wo)·(in·kh·kw)² additions, without forming A.
    func gramBand() -> (band: [Double], trace: Double) {
        let (c, kh, kw) = (inChannels, kernelHeight, kernelWidth)
        let columns = c * kh * kw
        let kd = gramHalfBandwidth
        var g = [Double](repeating: 0, count: columns * columns)
        weight.withUnsafeBufferPointer { w in
            cblas_dgemm(
                CblasRowMajor, CblasTrans, CblasNoTrans, Int32(columns), Int32(columns), Int32(outChannels), 1,
                w.baseAddress!, Int32(columns), w.baseAddress!, Int32(columns), 0, &g, Int32(columns))
        }
        let n = inputCount
        var band = [Double](repeating: 0, count: (kd + 1) * n)
        // The in-bounds taps of one output: (their index c·kh·kw + i·kw + j in G, input index).
        var taps: [(g: Int, input: Int)] = []
        taps.reserveCapacity(columns)
        for a in 0..<outputHeight {
            for b in 0..<outputWidth {
                taps.removeAll(keepingCapacity: true)
                for i in 0..<kh {
                    let y = a * stride + i - padding
                    guard y >= 0 && y < inputHeight else { continue }
                    for j in 0..<kw {
                        let x = b * stride + j - padding
                        guard x >= 0 && x < inputWidth else { continue }
                        for ch in 0..<c { taps.append((ch * kh * kw + i * kw + j, (y * inputWidth + x) * c + ch)) }
                    }
                }
                for p in taps {
                    for q in taps where q.input >= p.input {
                        band[q.input * (kd + 1) + kd + p.input - q.input] += g[p.g * columns + q.g]
                    }
                }
            }
        }
        var trace = 0.0
        for j in 0..<n { trace += band[j * (kd + 1) + kd] }
        return (band, trace)
    }

    /// Whether μI − M is positive definite for the band `gram` of M = AᵀA
    /// (``gramBand()``): LAPACK's banded Cholesky (dpbtrf) completes.
    static func choleskyCompletes(_ gram: [Double], size n: Int, halfBandwidth kd: Int, mu: Double) -> Bool {
        var b = gram
        for i in b.indices { b[i] = -b[i] }
        for j in 0..<n { b[j * (kd + 1) + kd] += mu }
        let info = b.withUnsafeMutableBufferPointer { p in
            LAPACKE_dpbtrf(
                LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), Int32(n), Int32(kd), p.baseAddress!, Int32(kd + 1))
        }
        return info == 0
    }

    /// An upper bound on ‖A‖₂ close above `lower` (a power iteration's
    /// lower bound), certified: if the Cholesky factorisation of μI − AᵀA
    /// completes, every eigenvalue of AᵀA is below μ, so ‖A‖₂ ≤ √μ. The
    /// factorisation is banded (``gramHalfBandwidth``, ~N·kd² flops: 1.1e10
    /// for a 16-channel 28×28 input), so it costs less than the power
    /// iteration it checks. μ = (lower·(1 + δ))² for δ = tolerance/8,
    /// tolerance/4, … doubling up to 64·tolerance; the first that completes
    /// gives the bound, nil if none does (the power iteration stopped far
    /// below σ₁) or the band would exceed ``certificateBandLimit``.
    ///
    /// Rounding, in the bound: float64 Cholesky that completes factors
    /// μI − M̂ + E with |E| ≤ γ_{kd+2}|Rᵀ||R| (Higham, Accuracy and
    /// Stability, Thm. 10.3), so λ_max(M̂) ≤ μ + γ·N·μ/(1 − γ) (‖R‖_F² =
    /// trace ≤ N·μ/(1 − γ)); and M̂ is AᵀA with |M̂ − M| ≤ γ_t|A|ᵀ|A|,
    /// t = out·kh·kw + 1 terms, so ‖M̂ − M‖₂ ≤ γ_t·‖A‖_F². Both are ~1e-9
    /// relative here; they are added, not assumed away.
    public func choleskyCertificate(above lower: Double, tolerance: Double) -> CholeskyCertificate? {
        precondition(lower >= 0 && tolerance > 0)
        let n = inputCount
        let kd = gramHalfBandwidth
        guard (kd + 1) * n <= Self.certificateBandLimit else { return nil }
        let (gram, trace) = gramBand()
        let u = Double.ulpOfOne / 2
        func gamma(_ k: Int) -> Double { Double(k) * u / (1 - Double(k) * u) }
        let cholesky = gamma(kd + 2)
        let terms = gamma(outChannels * kernelHeight * kernelWidth + 1)
        var delta = tolerance / 8
        var attempts = 0
        while delta <= 64 * tolerance {
            attempts += 1
            let root = max(lower * (1 + delta), Double.leastNormalMagnitude)
            let mu = root * root
            if Self.choleskyCompletes(gram, size: n, halfBandwidth: kd, mu: mu) {
                let bound = (mu * (1 + cholesky * Double(n) / (1 - cholesky)) + terms * trace).squareRoot()
                return CholeskyCertificate(bound: bound * (1 + 4 * u), attempts: attempts, halfBandwidth: kd)
            }
            delta *= 2
        }
        return nil
    }
}
