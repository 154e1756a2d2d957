import Analysis
import NetIO
import XCTest

/// The bracket lower ≤ ‖A‖₂ ≤ upper against the dense SVD of the zero-padded
/// operator built from the naive convolution (``ConvOperatorTests/referenceDense(_:)``).
final class SpectralNormBracketTests: XCTestCase {
    /// Small layers (stride 1–3, 1×1 to 5×5, square and not): lower ≤ σ₁ ≤
    /// upper up to 1e-12 relative (float64 rounding of both routes), and a
    /// converged power iteration within 1e-6 of σ₁ (the Rayleigh quotient's
    /// error is quadratic in the vector's: once its change is < 1e-12, it is
    /// far closer than this on these small operators). The gap is printed:
    /// it is the circular grid's boundary effect plus the iteration's error.
    func testBracketContainsDenseSpectralNorm() throws {
        for (index, l) in ConvOperatorTests.layers.enumerated() {
            let a = try ConvOperatorTests.randomLayer(l, seed: 50 + UInt64(index))
            let sigma1 = try SingularValueDecomposition(ConvOperatorTests.referenceDense(a)).singularValues[0]
            let bracket = try a.spectralNormBracket(tolerance: 1e-3, maxPowerIterations: 20000)
            XCTAssertLessThanOrEqual((bracket.lower - sigma1) / sigma1, 1e-12, "layer \(index): lower above σ₁")
            XCTAssertLessThanOrEqual((sigma1 - bracket.upper) / sigma1, 1e-12, "layer \(index): upper below σ₁")
            XCTAssertTrue(bracket.powerConverged, "layer \(index): power iteration hit its cap")
            XCTAssertLessThan((sigma1 - bracket.lower) / sigma1, 1e-6, "layer \(index): power iteration")
            XCTAssertGreaterThanOrEqual(bracket.gridHeight, a.inputHeight + a.padding)
            print(
                "bracket layer \(index) \(l): lower \(bracket.lower) σ₁ \(sigma1) upper \(bracket.upper) "
                    + "gap \(bracket.relativeGap) (within 1e-3: \(bracket.withinTolerance)), "
                    + "\(bracket.powerIterations) power steps, \(bracket.gramIterations) Gram steps, "
                    + "grid \(bracket.gridHeight)×\(bracket.gridWidth)")
        }
    }

    /// The zero-padded operator is a submatrix of the strided circular one on
    /// the bracket's grid (the embedding that makes `upper` an upper bound):
    /// rows a < Ho, b < Wo and the columns of the embedded input, exactly.
    func testZeroPaddedOperatorIsASubmatrixOfTheCircularOne() throws {
        for (index, l) in ConvOperatorTests.layers.enumerated() {
            let a = try ConvOperatorTests.randomLayer(l, seed: 80 + UInt64(index))
            let bracket = try a.spectralNormBracket(maxPowerIterations: 1)
            let (n1, n2) = (bracket.gridHeight, bracket.gridWidth)
            XCTAssertEqual(n1 % a.stride, 0)
            let circular = CircularSpectrumTests.denseCircular(a, gridHeight: n1, gridWidth: n2)
            let dense = try a.denseMatrix()
            let (m1, m2) = (n1 / a.stride, n2 / a.stride)
            var sub = Matrix(rows: dense.rows, columns: dense.columns)
            for o in 0..<a.outChannels {
                for y in 0..<a.outputHeight {
                    for x in 0..<a.outputWidth {
                        for c in 0..<a.inChannels {
                            for iy in 0..<a.inputHeight {
                                for ix in 0..<a.inputWidth {
                                    sub[
                                        (o * a.outputHeight + y) * a.outputWidth + x,
                                        (c * a.inputHeight + iy) * a.inputWidth + ix] =
                                        circular[(o * m1 + y) * m2 + x, (c * n1 + iy) * n2 + ix]
                                }
                            }
                        }
                    }
                }
            }
            XCTAssertEqual(sub, dense, "layer \(index) on grid \(n1)×\(n2)")
        }
    }

    /// Gram iteration on the circular operator of the layer's own input size
    /// against that operator's exact σ₁ (polyphase zgesvd): ≥ σ₁ up to 1e-13, within 1e-12.
    func testCircularGramBoundMatchesCircularSpectrum() throws {
        for (index, l) in ConvOperatorTests.layers.enumerated() where l.h % l.s == 0 && l.w % l.s == 0 {
            let a = try ConvOperatorTests.randomLayer(l, seed: 60 + UInt64(index))
            let exact = try a.circularSpectrum().spectralNorm
            let gram = try a.circularGramBound(gridHeight: a.inputHeight, gridWidth: a.inputWidth)
            XCTAssertGreaterThan((gram.bound - exact) / exact, -1e-13, "layer \(index)")
            XCTAssertLessThan((gram.bound - exact) / exact, 1e-12, "layer \(index)")
        }
    }

    /// The upper bound's excess over the dense σ₁ is the boundary effect:
    /// 0 (to rounding) where zero padding changes nothing (1×1 kernels
    /// without padding, whose operator is the circular one restricted to a
    /// whole number of strides), and for one 3×3 kernel it shrinks as the
    /// input grows (n = 6, 12, 24: printed, and asserted to fall by more
    /// than half from 6 to 24; docs/operators.md §4).
    func testUpperBoundExcessIsTheBoundaryEffect() throws {
        for (out, cin, s, side) in [(3, 2, 1, 6), (4, 4, 2, 8), (2, 5, 2, 10)] {
            let a = try CircularSpectrumTests.layer(
                out: out, in: cin, kernel: 1, stride: s, padding: 0, h: side, w: side, seed: 300)
            let sigma1 = try SingularValueDecomposition(ConvOperatorTests.referenceDense(a)).singularValues[0]
            let bracket = try a.spectralNormBracket()
            XCTAssertLessThan(abs(bracket.upper - sigma1) / sigma1, 1e-12, "1×1 \(cin)→\(out) s\(s)")
            XCTAssertTrue(bracket.withinTolerance)
        }
        var g = SeededRandom(seed: 301)
        let weight = (0..<(3 * 2 * 9)).map { _ in Double.random(in: -1...1, using: &g) }
        var excess = [Double]()
        for side in [6, 12, 24] {
            let a = try ConvOperator(
                name: "n\(side)", weight: weight, outChannels: 3, inChannels: 2, kernelHeight: 3, kernelWidth: 3,
                padding: 1, inputHeight: side, inputWidth: side)
            let sigma1 = try SingularValueDecomposition(ConvOperatorTests.referenceDense(a)).singularValues[0]
            let bracket = try a.spectralNormBracket(maxPowerIterations: 20000)
            let circular = try XCTUnwrap(bracket.circularUpper)
            XCTAssertLessThanOrEqual((sigma1 - circular) / sigma1, 1e-12)
            excess.append((circular - sigma1) / sigma1)
        }
        print("3×3 2→3 p1: (upper − σ₁)/σ₁ on 6×6, 12×12, 24×24: \(excess)")
        XCTAssertLessThan(excess[2], excess[0] / 2)
    }

    /// The Cholesky certificate against the dense σ₁ of the small layers: a
    /// lower bound just below σ₁ (1e-4) never yields a certificate within
    /// 64·1e-6 of it, since every μ tried is below σ₁² and μI − AᵀA is then
    /// indefinite (the check can fail); σ₁ itself yields one within
    /// [σ₁, σ₁·(1 + 1e-6)] (the first μ, (σ₁·(1 + 1.25e-7))², factorises).
    func testCholeskyCertificateHoldsAboveSigmaOneAndFailsBelowIt() throws {
        for (index, l) in ConvOperatorTests.layers.enumerated() {
            let a = try ConvOperatorTests.randomLayer(l, seed: 90 + UInt64(index))
            let sigma1 = try SingularValueDecomposition(ConvOperatorTests.referenceDense(a)).singularValues[0]
            XCTAssertNil(a.choleskyCertificate(above: sigma1 * (1 - 1e-4), tolerance: 1e-6), "layer \(index) \(l)")
            let certificate = try XCTUnwrap(a.choleskyCertificate(above: sigma1, tolerance: 1e-6), "layer \(index)")
            XCTAssertGreaterThanOrEqual(certificate.bound, sigma1, "layer \(index) \(l)")
            XCTAssertLessThanOrEqual(certificate.bound, sigma1 * (1 + 1e-6), "layer \(index) \(l)")
            XCTAssertEqual(certificate.attempts, 1)
        }
    }

    /// A layer whose band would exceed the limit (64 channels on 64×64:
    /// half-width 8,383, 2.2e9 doubles) gets no certificate, at once.
    func testCertificateRefusesABandBeyondItsLimit() throws {
        let a = try ConvOperator(
            name: "big", weight: [Double](repeating: 0.01, count: 64 * 64 * 9), outChannels: 64, inChannels: 64,
            kernelHeight: 3, kernelWidth: 3, padding: 1, inputHeight: 64, inputWidth: 64)
        XCTAssertNil(a.choleskyCertificate(above: 1, tolerance: 1e-3))
        let fits = try ConvOperator(
            name: "fits", weight: [Double](repeating: 0.01, count: 16 * 16 * 9), outChannels: 16, inChannels: 16,
            kernelHeight: 3, kernelWidth: 3, padding: 1, inputHeight: 28, inputWidth: 28)
        XCTAssertLessThanOrEqual(12_544 * 944, ConvOperator.certificateBandLimit, "ResNet-20's first stage fits")
        XCTAssertNotNil(fits.choleskyCertificate(above: 16 * 9 * 0.01 * 1.01, tolerance: 1e-3))
    }

    /// On 16-channel 3×3 layers of ResNet shapes (14×14 input, stride 1 and
    /// 2, random weights), where the circular bound leaves a gap above 1e-3,
    /// the certified bound closes it: lower ≤ σ₁ ≤ upper against the dense
    /// SVD (3,136 columns), a gap ≤ 1e-3, and the circular bound kept.
    func testCertificateClosesTheGapOnResNetShapes() throws {
        for stride in [1, 2] {
            let a = try CircularSpectrumTests.layer(
                out: 16, in: 16, kernel: 3, stride: stride, padding: 1, h: 14, w: 14, seed: 400 + UInt64(stride))
            let sigma1 = try a.singularValues()[0]
            let bracket = try a.spectralNormBracket(tolerance: 1e-3)
            let circular = try XCTUnwrap(bracket.circularUpper)
            let certificate = try XCTUnwrap(bracket.certificate, "stride \(stride): circular gap below 1e-3?")
            XCTAssertGreaterThan((circular - bracket.lower) / circular, 1e-3, "stride \(stride)")
            XCTAssertEqual(bracket.upper, min(circular, certificate.bound))
            XCTAssertLessThanOrEqual((bracket.lower - sigma1) / sigma1, 1e-12, "stride \(stride)")
            XCTAssertLessThanOrEqual((sigma1 - bracket.upper) / sigma1, 1e-12, "stride \(stride)")
            XCTAssertLessThanOrEqual(bracket.relativeGap, 1e-3, "stride \(stride)")
            print(
                "16→16 3×3 s\(stride) on 14×14: lower \(bracket.lower) σ₁ \(sigma1) certified \(certificate.bound) "
                    + "circular \(circular), gap \(bracket.relativeGap) (circular \((circular - bracket.lower) / circular)), "
                    + "half-bandwidth \(certificate.halfBandwidth), \(certificate.attempts) factorisation(s)")
        }
    }
}
