import Analysis
import GPUNet
import NetIO
import TestSupport
import XCTest

/// The pooling constants against dense matrices and sampled pairs, and the
/// network product bound against the measured Jacobian norm of a small
/// residual net written here with TestSupport's naive convolution.
final class LipschitzBoundsTests: XCTestCase {
    /// GAP over n positions as the dense C × (C·n) matrix: σ₁ = 1/√n to 1e-14
    /// (dgesdd of a matrix with entries 1/n; rounding ~1e-16).
    func testGlobalAveragePoolNormIsOneOverRootN() throws {
        for (channels, n) in [(1, 49), (3, 4), (16, 196), (64, 49)] {
            var m = Matrix(rows: channels, columns: channels * n)
            for c in 0..<channels { for q in 0..<n { m[c, c * n + q] = 1 / Double(n) } }
            let sigma = try SingularValueDecomposition(m).singularValues
            let expected = LipschitzBounds.globalAveragePool(positions: n)
            XCTAssertLessThan(abs(sigma[0] - expected) / expected, 1e-14, "\(channels) channels, n = \(n)")
            XCTAssertLessThan(abs(sigma.last! - expected) / expected, 1e-14, "every channel has norm 1/√n")
        }
    }

    /// Max-pool k×k stride s: ‖pool(x) − pool(y)‖ ≤ ⌈k/s⌉·‖x − y‖ on 2000
    /// random pairs (small perturbations and unrelated points), and the
    /// constant 1 of non-overlapping windows attained by raising one
    /// window's maximum.
    func testMaxPoolConstants() {
        func pool(_ x: [Double], side n: Int, k: Int, s: Int) -> [Double] {
            let o = (n - k) / s + 1
            var out = [Double]()
            for y in 0..<o {
                for xx in 0..<o {
                    var m = -Double.infinity
                    for i in 0..<k { for j in 0..<k { m = max(m, x[(y * s + i) * n + xx * s + j]) } }
                    out.append(m)
                }
            }
            return out
        }
        func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        var g = SeededRandom(seed: 3)
        for (k, s) in [(2, 2), (3, 2), (3, 1), (2, 1)] {
            let n = 8
            let constant = LipschitzBounds.maxPool(kernel: k, stride: s)
            var worst = 0.0
            for trial in 0..<2000 {
                let x = (0..<(n * n)).map { _ in Double.random(in: -1...1, using: &g) }
                let scale = trial % 2 == 0 ? 1e-3 : 1.0
                let y = x.map { $0 + scale * Double.random(in: -1...1, using: &g) }
                let ratio =
                    norm(zip(pool(x, side: n, k: k, s: s), pool(y, side: n, k: k, s: s)).map { $0 - $1 })
                    / norm(zip(x, y).map { $0 - $1 })
                worst = max(worst, ratio)
            }
            XCTAssertLessThanOrEqual(worst, constant * (1 + 1e-12), "max-pool \(k)×\(k) stride \(s)")
            print("max-pool \(k)×\(k)/\(s): constant \(constant), largest sampled ratio \(worst)")
        }
        XCTAssertEqual(LipschitzBounds.maxPool(kernel: 2, stride: 2), 1)
        let x = [Double](repeating: 0, count: 16)
        var y = x
        y[5] = 0.7  // one window's maximum rises by 0.7, so the output moves by 0.7
        XCTAssertEqual(
            zip(pool(x, side: 4, k: 2, s: 2), pool(y, side: 4, k: 2, s: 2)).map { abs($0 - $1) }.max(), 0.7)
    }

    /// A small residual net, written with TestSupport's naive convolution:
    /// x (2, 8, 8) → conv 3×3 2→4 (p1) + b, ReLU → block [conv 4→4, ReLU,
    /// conv 4→4, + x, ReLU] → block [conv 4→6 s2, ReLU, conv 6→6, + 1×1 s2
    /// 4→6 shortcut, ReLU] → max-pool 2×2 → global average pool (4
    /// positions) → linear 6→3.
    struct TinyResNet {
        struct Conv {
            var shape: Conv2dShape
            var weight: [Double]
            var bias: [Double]
        }
        var stem, a1, b1, a2, b2, shortcut: Conv
        var fc: [Double]  // (3, 6)
        var fcBias: [Double]

        init(seed: UInt64) {
            var g = SeededRandom(seed: seed)
            func conv(_ cin: Int, _ cout: Int, _ side: Int, k: Int = 3, s: Int = 1, p: Int = 1, scale: Double) -> Conv {
                let shape = Conv2dShape(
                    batch: 1, inChannels: cin, outChannels: cout, height: side, width: side, kernelHeight: k,
                    kernelWidth: k, stride: s, padding: p)
                return Conv(
                    shape: shape,
                    weight: (0..<shape.weightCount).map { _ in scale * Double.random(in: -1...1, using: &g) },
                    bias: (0..<cout).map { _ in 0.1 * Double.random(in: -1...1, using: &g) })
            }
            stem = conv(2, 4, 8, scale: 0.4)
            a1 = conv(4, 4, 8, scale: 0.3)
            b1 = conv(4, 4, 8, scale: 0.3)
            a2 = conv(4, 6, 8, s: 2, scale: 0.3)
            b2 = conv(6, 6, 4, scale: 0.3)
            shortcut = conv(4, 6, 8, k: 1, s: 2, p: 0, scale: 0.5)
            fc = (0..<18).map { _ in Double.random(in: -1...1, using: &g) }
            fcBias = (0..<3).map { _ in Double.random(in: -1...1, using: &g) }
        }

        func run(_ c: Conv, _ x: [Double]) -> [Double] {
            NaiveReference.conv2dForward(c.shape, input: x, weight: c.weight, bias: c.bias)
        }
        func relu(_ x: [Double]) -> [Double] { x.map { max($0, 0) } }

        func logits(_ x: [Double]) -> [Double] {
            let h0 = relu(run(stem, x))
            let h1 = relu(zip(run(b1, relu(run(a1, h0))), h0).map { $0 + $1 })
            let h2 = relu(zip(run(b2, relu(run(a2, h1))), run(shortcut, h1)).map { $0 + $1 })  // (6, 4, 4)
            var pooled = [Double](repeating: 0, count: 6 * 4)  // (6, 2, 2)
            for c in 0..<6 {
                for y in 0..<2 {
                    for xx in 0..<2 {
                        var m = -Double.infinity
                        for i in 0..<2 { for j in 0..<2 { m = max(m, h2[(c * 4 + 2 * y + i) * 4 + 2 * xx + j]) } }
                        pooled[(c * 2 + y) * 2 + xx] = m
                    }
                }
            }
            var gap = [Double](repeating: 0, count: 6)
            for c in 0..<6 { for q in 0..<4 { gap[c] += pooled[c * 4 + q] / 4 } }
            var logits = fcBias
            for o in 0..<3 { for c in 0..<6 { logits[o] += fc[o * 6 + c] * gap[c] } }
            return logits
        }

        func op(_ c: Conv, _ name: String) throws -> ConvOperator {
            try ConvOperator(
                name: name, weight: c.weight, outChannels: c.shape.outChannels, inChannels: c.shape.inChannels,
                kernelHeight: c.shape.kernelHeight, kernelWidth: c.shape.kernelWidth, stride: c.shape.stride,
                padding: c.shape.padding, inputHeight: c.shape.height, inputWidth: c.shape.width)
        }
    }

    /// The product bound ≥ max ‖J(x)‖₂ over 8 random inputs, J by central
    /// differences (h = 1e-5: the net is piecewise affine, so away from a
    /// ReLU or max-pool switch the difference is exact up to rounding,
    /// ~1e-11 relative; no input lies within h of a switch with probability ~1).
    /// The conv norms are the bracket's upper bounds; the test also checks
    /// each against the dense σ₁ (lower ≤ σ₁ ≤ upper).
    func testProductBoundExceedsMeasuredJacobianNorm() throws {
        let net = TinyResNet(seed: 21)
        var norms = [String: Double]()
        for (c, name) in [
            (net.stem, "stem"), (net.a1, "a1"), (net.b1, "b1"), (net.a2, "a2"), (net.b2, "b2"),
            (net.shortcut, "shortcut"),
        ] {
            let a = try net.op(c, name)
            let bracket = try a.spectralNormBracket(maxPowerIterations: 20000)
            let sigma1 = try a.singularValues()[0]
            XCTAssertLessThanOrEqual(bracket.lower, sigma1 * (1 + 1e-12), name)
            XCTAssertGreaterThanOrEqual(bracket.upper, sigma1 * (1 - 1e-12), name)
            norms[name] = bracket.upper
        }
        let fcMatrix = Matrix(rows: 3, columns: 6, values: net.fc)
        let fcNorm = try SingularValueDecomposition(fcMatrix).singularValues[0]
        let factors = [
            LipschitzFactor(name: "stem", constant: norms["stem"]!, source: "Gram upper bound"),
            LipschitzFactor(name: "relu", constant: 1, source: "ReLU"),
            LipschitzFactor(
                name: "block1", constant: LipschitzBounds.residualBlock(conv1: norms["a1"]!, conv2: norms["b1"]!),
                source: "1 + ‖A₂‖·‖A₁‖"),
            LipschitzFactor(
                name: "block2",
                constant: LipschitzBounds.residualBlock(
                    conv1: norms["a2"]!, conv2: norms["b2"]!, shortcut: norms["shortcut"]!),
                source: "‖S‖ + ‖A₂‖·‖A₁‖"),
            LipschitzFactor(name: "maxpool", constant: LipschitzBounds.maxPool(kernel: 2, stride: 2), source: "1"),
            LipschitzFactor(name: "gap", constant: LipschitzBounds.globalAveragePool(positions: 4), source: "1/√4"),
            LipschitzFactor(name: "fc", constant: fcNorm, source: "σ₁(W_fc)"),
        ]
        let bound = LipschitzBounds.product(factors)
        var g = SeededRandom(seed: 5)
        var largest = 0.0
        let h = 1e-5
        for _ in 0..<8 {
            let x = (0..<128).map { _ in Double.random(in: -1...1, using: &g) }
            var j = Matrix(rows: 3, columns: 128)
            for col in 0..<128 {
                var plus = x
                var minus = x
                plus[col] += h
                minus[col] -= h
                let d = zip(net.logits(plus), net.logits(minus)).map { ($0 - $1) / (2 * h) }
                for r in 0..<3 { j[r, col] = d[r] }
            }
            largest = max(largest, try SingularValueDecomposition(j).singularValues[0])
        }
        XCTAssertGreaterThan(largest, 0)
        XCTAssertLessThanOrEqual(largest, bound, "measured ‖J‖₂ above the product bound")
        print("tiny residual net: product bound \(bound), largest measured ‖J‖₂ \(largest), ratio \(bound / largest)")
    }
}
