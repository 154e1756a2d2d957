import Analysis
import Dispatch
import NetIO
import XCTest

/// The operator quantities at every conv shape of ResNet-20 on 28×28
/// images, with He-initialised random weights, timed: the circular
/// spectrum, the bracket, and (with CONVSVD_OPERATOR_DENSE=1, minutes on
/// this machine) the dense SVD of the layers within the column limit.
final class ResNet20OperatorTimingTests: XCTestCase {
    struct Shape {
        var name: String
        var out: Int, cin: Int, k: Int, s: Int, p: Int, side: Int
        /// How many of ResNet-20's convolutions have this shape.
        var count: Int
    }

    static let shapes = [
        Shape(name: "conv1 1→16 @28", out: 16, cin: 1, k: 3, s: 1, p: 1, side: 28, count: 1),
        Shape(name: "16→16 @28", out: 16, cin: 16, k: 3, s: 1, p: 1, side: 28, count: 6),
        Shape(name: "16→32 s2 @28", out: 32, cin: 16, k: 3, s: 2, p: 1, side: 28, count: 1),
        Shape(name: "1×1 16→32 s2 @28", out: 32, cin: 16, k: 1, s: 2, p: 0, side: 28, count: 1),
        Shape(name: "32→32 @14", out: 32, cin: 32, k: 3, s: 1, p: 1, side: 14, count: 5),
        Shape(name: "32→64 s2 @14", out: 64, cin: 32, k: 3, s: 2, p: 1, side: 14, count: 1),
        Shape(name: "1×1 32→64 s2 @14", out: 64, cin: 32, k: 1, s: 2, p: 0, side: 14, count: 1),
        Shape(name: "64→64 @7", out: 64, cin: 64, k: 3, s: 1, p: 1, side: 7, count: 5),
    ]

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Per shape: the circular spectrum's count and Frobenius identity
    /// (1e-12), Gram's bound on the layer's own circular operator ≥ its σ₁
    /// (1e-13), and lower ≤ upper; with the dense SVD, lower ≤ σ₁ ≤ upper
    /// (1e-12). Prints each time and the gap (reported, not asserted: the
    /// gap can exceed 1e-3, and that is a finding).
    func testResNet20LayerShapes() throws {
        let dense = ProcessInfo.processInfo.environment["CONVSVD_OPERATOR_DENSE"] == "1"
        var total = (circular: 0.0, bracket: 0.0, dense: 0.0)
        for (index, shape) in Self.shapes.enumerated() {
            var g = SeededRandom(seed: 1000 + UInt64(index))
            let fanIn = Double(shape.cin * shape.k * shape.k)
            let std = (2 / fanIn).squareRoot()
            let weight = (0..<(shape.out * shape.cin * shape.k * shape.k)).map { _ in
                // Box–Muller: He-normal weights.
                let u = Double.random(in: Double.ulpOfOne..<1, using: &g)
                let v = Double.random(in: 0..<1, using: &g)
                return std * (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
            }
            let a = try ConvOperator(
                name: shape.name, weight: weight, outChannels: shape.out, inChannels: shape.cin, kernelHeight: shape.k,
                kernelWidth: shape.k, stride: shape.s, padding: shape.p, inputHeight: shape.side,
                inputWidth: shape.side)
            var circular: CircularSpectrum!
            let circularTime = try Self.seconds { circular = try a.circularSpectrum(threads: 2) }
            XCTAssertEqual(
                circular.singularValues.count,
                circular.blockCount * min(shape.out, shape.cin * shape.s * shape.s), shape.name)
            XCTAssertLessThan(try XCTUnwrap(circular.frobeniusRelativeDifference), 1e-12, shape.name)
            let ownGram = try a.circularGramBound(gridHeight: shape.side, gridWidth: shape.side)
            XCTAssertGreaterThan((ownGram.bound - circular.spectralNorm) / circular.spectralNorm, -1e-13, shape.name)
            var bracket: SpectralNormBracket!
            let bracketTime = try Self.seconds { bracket = try a.spectralNormBracket(threads: 2) }
            XCTAssertLessThanOrEqual(bracket.lower, bracket.upper, shape.name)
            var line =
                "\(shape.name) (×\(shape.count)): A \(a.outputCount)×\(a.inputCount); circular \(String(format: "%.3f", circularTime)) s "
                + "(\(circular.blockCount) blocks \(circular.blockRows)×\(circular.blockColumns), σ₁ \(String(format: "%.6f", circular.spectralNorm))); "
                + "bracket \(String(format: "%.3f", bracketTime)) s: [\(String(format: "%.6f", bracket.lower)), \(String(format: "%.6f", bracket.upper))] "
                + "gap \(String(format: "%.2e", bracket.relativeGap)) (≤ 1e-3: \(bracket.withinTolerance)), "
                + "\(bracket.powerIterations) power steps (converged \(bracket.powerConverged)), "
                + "\(bracket.gramIterations) Gram steps, grid \(bracket.gridHeight)"
            total.circular += Double(shape.count) * circularTime
            total.bracket += Double(shape.count) * bracketTime
            if dense && a.inputCount <= ConvOperator.denseColumnLimit {
                var sigma = [Double]()
                let denseTime = try Self.seconds { sigma = try a.singularValues() }
                XCTAssertLessThanOrEqual((bracket.lower - sigma[0]) / sigma[0], 1e-12, shape.name)
                XCTAssertLessThanOrEqual((sigma[0] - bracket.upper) / sigma[0], 1e-12, shape.name)
                line +=
                    "; dense SVD \(String(format: "%.2f", denseTime)) s, σ₁ \(String(format: "%.6f", sigma[0])), "
                    + "(σ₁ − lower)/σ₁ \(String(format: "%.2e", (sigma[0] - bracket.lower) / sigma[0])), "
                    + "(upper − σ₁)/σ₁ \(String(format: "%.2e", (bracket.upper - sigma[0]) / sigma[0]))"
                total.dense += Double(shape.count) * denseTime
            }
            print(line)
        }
        print(
            "ResNet-20 (21 convs): circular \(String(format: "%.2f", total.circular)) s, bracket "
                + "\(String(format: "%.2f", total.bracket)) s"
                + (dense ? ", dense SVDs \(String(format: "%.1f", total.dense)) s" : ""))
    }
}
