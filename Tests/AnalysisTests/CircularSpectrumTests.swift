import Analysis
import CLAPACK
import NetIO
import TestSupport
import XCTest

/// The polyphase (DFT) spectrum of the strided circular operator against the
/// SVD of that operator written out densely here, and Gram iteration against zgesvd.
final class CircularSpectrumTests: XCTestCase {
    /// C_N ((out·N₁N₂/s²) × (in·N₁N₂)) from its definition:
    /// C[(o·M₁ + a)·M₂ + b, (c·N₁ + (a·s+i−p) mod N₁)·N₂ + (b·s+j−p) mod N₂] += W[o, c, i, j]
    /// (+=: a kernel wider than the grid folds onto itself).
    static func denseCircular(_ a: ConvOperator, gridHeight n1: Int, gridWidth n2: Int) -> Matrix {
        let s = a.stride
        let (m1, m2) = (n1 / s, n2 / s)
        func wrap(_ v: Int, _ n: Int) -> Int { ((v % n) + n) % n }
        var c = Matrix(rows: a.outChannels * m1 * m2, columns: a.inChannels * n1 * n2)
        for o in 0..<a.outChannels {
            for y in 0..<m1 {
                for x in 0..<m2 {
                    for ch in 0..<a.inChannels {
                        for i in 0..<a.kernelHeight {
                            for j in 0..<a.kernelWidth {
                                let row = (o * m1 + y) * m2 + x
                                let column =
                                    (ch * n1 + wrap(y * s + i - a.padding, n1)) * n2 + wrap(x * s + j - a.padding, n2)
                                c[row, column] +=
                                    a.weight[
                                        ((o * a.inChannels + ch) * a.kernelHeight + i) * a.kernelWidth + j]
                            }
                        }
                    }
                }
            }
        }
        return c
    }

    static func layer(
        out: Int, in cin: Int, kernel k: Int, stride s: Int, padding p: Int, h: Int, w: Int, seed: UInt64
    ) throws -> ConvOperator {
        var g = SeededRandom(seed: seed)
        let weight = (0..<(out * cin * k * k)).map { _ in Double.random(in: -1...1, using: &g) }
        return try ConvOperator(
            name: "c\(seed)", weight: weight, outChannels: out, inChannels: cin, kernelHeight: k, kernelWidth: k,
            stride: s, padding: p, inputHeight: h, inputWidth: w)
    }

    /// Every singular value, stride 1 and 2, kernels 1×1/3×3/5×5, channel
    /// counts from 1→2 to 6→3, square and non-square grids: max_i |σᵢ(blocks) −
    /// σᵢ(dense)| / σ₁ ≤ 1e-10 (both backward-stable float64 routes to the
    /// same numbers; they agree to ~1e-14), the count equal, and Σσᵢ² against
    /// (N₁N₂/s²)‖W‖²_F to 1e-12.
    func testPolyphaseSpectrumMatchesDenseCircularOperator() throws {
        var worst = 0.0
        var seed: UInt64 = 1
        for s in [1, 2] {
            for k in [1, 3, 5] {
                for (out, cin) in [(1, 2), (3, 3), (4, 2), (2, 5), (6, 3)] {
                    for (h, w) in [(6, 6), (8, 6), (4, 10)] where k <= h + 2 && k <= w + 2 {
                        let a = try Self.layer(
                            out: out, in: cin, kernel: k, stride: s, padding: k / 2, h: h, w: w, seed: seed)
                        seed += 1
                        let spectrum = try a.circularSpectrum(threads: 2)
                        let dense = try singularValuesOnly(
                            Self.denseCircular(a, gridHeight: h, gridWidth: w), context: "dense circular")
                        XCTAssertEqual(spectrum.singularValues.count, dense.count, "\(a.name) s\(s) k\(k)")
                        XCTAssertEqual(spectrum.blockCount, h * w / (s * s))
                        let error = maxAbsoluteDifference(spectrum.singularValues, dense) / dense[0]
                        worst = max(worst, error)
                        XCTAssertLessThan(error, 1e-10, "\(a.name): \(out)←\(cin), k\(k), s\(s), \(h)×\(w)")
                        if k <= h && k <= w {
                            XCTAssertLessThan(try XCTUnwrap(spectrum.frobeniusRelativeDifference), 1e-12)
                        }
                    }
                }
            }
        }
        print("polyphase vs dense circular: worst max|Δσ|/σ₁ = \(worst)")
    }

    /// A kernel larger than the grid (5×5 on 4×4, stride 2) folds onto
    /// itself; the blocks still give the dense operator's spectrum.
    func testKernelWiderThanGrid() throws {
        let a = try Self.layer(out: 3, in: 2, kernel: 5, stride: 2, padding: 2, h: 4, w: 4, seed: 77)
        let spectrum = try a.circularSpectrum()
        let dense = try singularValuesOnly(Self.denseCircular(a, gridHeight: 4, gridWidth: 4), context: "dense")
        XCTAssertLessThan(maxAbsoluteDifference(spectrum.singularValues, dense) / dense[0], 1e-10)
        XCTAssertNil(spectrum.frobeniusRelativeDifference)
    }

    /// zgesvd's σ₁ of a complex matrix (row-major interleaved), the reference.
    static func sigma1(_ m: [Double], rows: Int, columns: Int) throws -> Double {
        try complexSingularValues(m, rows: rows, columns: columns, context: "reference")[0]
    }

    /// Gram iteration on random complex matrices, wide, tall and square, and
    /// on matrices with σ₁ tied twice and four times (U·diag·V^* built from
    /// QR factors): bound ≥ σ₁·(1 − 1e-13) (a true upper bound up to rounding)
    /// and ≤ σ₁·(1 + 1e-12) (converged).
    func testGramIterationBoundsSigmaOneFromAbove() throws {
        var g = SeededRandom(seed: 9)
        func randomComplex(_ m: Int, _ n: Int) -> [Double] {
            (0..<(2 * m * n)).map { _ in Double.random(in: -1...1, using: &g) }
        }
        var cases: [(m: Int, n: Int, values: [Double])] = [
            (4, 7, randomComplex(4, 7)), (9, 3, randomComplex(9, 3)), (16, 16, randomComplex(16, 16)),
            (1, 5, randomComplex(1, 5)), (64, 128, randomComplex(64, 128)),
        ]
        for ties in [2, 4] {
            let n = 12
            // Q from the QR factorisation of a random complex matrix: unitary.
            func unitary() -> [Double] {
                var a = randomComplex(n, n)
                var tau = [Double](repeating: 0, count: 2 * n)
                a.withUnsafeMutableBufferPointer { pa in
                    tau.withUnsafeMutableBufferPointer { pt in
                        _ = LAPACKE_zgeqrf(
                            LAPACK_ROW_MAJOR, Int32(n), Int32(n), OpaquePointer(pa.baseAddress!), Int32(n),
                            OpaquePointer(pt.baseAddress!))
                        _ = LAPACKE_zungqr(
                            LAPACK_ROW_MAJOR, Int32(n), Int32(n), Int32(n), OpaquePointer(pa.baseAddress!),
                            Int32(n), OpaquePointer(pt.baseAddress!))
                    }
                }
                return a
            }
            let u = unitary()
            let v = unitary()
            let sigma = (0..<n).map { i in i < ties ? 3.0 : 2.9 * pow(0.8, Double(i)) }
            // M = U·diag(σ)·V (V unitary, so V plays V^*).
            var m = [Double](repeating: 0, count: 2 * n * n)
            for r in 0..<n {
                for c in 0..<n {
                    var re = 0.0
                    var im = 0.0
                    for k in 0..<n {
                        let (ur, ui) = (u[2 * (r * n + k)], u[2 * (r * n + k) + 1])
                        let (vr, vi) = (v[2 * (k * n + c)], v[2 * (k * n + c) + 1])
                        re += sigma[k] * (ur * vr - ui * vi)
                        im += sigma[k] * (ur * vi + ui * vr)
                    }
                    m[2 * (r * n + c)] = re
                    m[2 * (r * n + c) + 1] = im
                }
            }
            cases.append((n, n, m))
        }
        for (index, c) in cases.enumerated() {
            let reference = try Self.sigma1(c.values, rows: c.m, columns: c.n)
            let gram = gramIterationBound(c.values, rows: c.m, columns: c.n)
            let excess = (gram.bound - reference) / reference
            XCTAssertGreaterThan(excess, -1e-13, "case \(index) \(c.m)×\(c.n): bound below σ₁")
            XCTAssertLessThan(excess, 1e-12, "case \(index) \(c.m)×\(c.n): not converged after \(gram.iterations)")
            print("Gram iteration case \(index) \(c.m)×\(c.n): (bound − σ₁)/σ₁ = \(excess), \(gram.iterations) steps")
        }
    }
}
