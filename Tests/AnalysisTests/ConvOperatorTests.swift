import Analysis
import GPUNet
import NetIO
import TestSupport
import XCTest

/// ConvOperator's apply, adjoint, dense matrix and dense singular values
/// against TestSupport's naive float64 convolution (`NaiveReference`), and
/// its errors.
final class ConvOperatorTests: XCTestCase {
    /// The layers every test here sweeps: strides 1–3, paddings 0–2,
    /// kernels 1×1 to 5×5 and non-square, non-square inputs, channel counts 1–5.
    static let layers: [(out: Int, in: Int, kh: Int, kw: Int, s: Int, p: Int, h: Int, w: Int)] = [
        (3, 2, 3, 3, 1, 1, 7, 7),
        (4, 3, 3, 3, 2, 1, 8, 6),
        (2, 4, 1, 1, 2, 0, 8, 8),
        (5, 1, 5, 5, 1, 2, 9, 7),
        (3, 3, 3, 2, 3, 2, 10, 9),
        (2, 2, 5, 5, 2, 0, 9, 11),
        (1, 1, 3, 3, 1, 0, 3, 3),
    ]

    static func randomLayer(_ l: (out: Int, in: Int, kh: Int, kw: Int, s: Int, p: Int, h: Int, w: Int), seed: UInt64)
        throws -> ConvOperator
    {
        var g = SeededRandom(seed: seed)
        let weight = (0..<(l.out * l.in * l.kh * l.kw)).map { _ in Double.random(in: -1...1, using: &g) }
        return try ConvOperator(
            name: "test", weight: weight, outChannels: l.out, inChannels: l.in, kernelHeight: l.kh,
            kernelWidth: l.kw, stride: l.s, padding: l.p, inputHeight: l.h, inputWidth: l.w)
    }

    static func shape(_ a: ConvOperator) -> Conv2dShape {
        Conv2dShape(
            batch: 1, inChannels: a.inChannels, outChannels: a.outChannels, height: a.inputHeight,
            width: a.inputWidth, kernelHeight: a.kernelHeight, kernelWidth: a.kernelWidth, stride: a.stride,
            padding: a.padding)
    }

    static func random(_ n: Int, seed: UInt64) -> [Double] {
        var g = SeededRandom(seed: seed)
        return (0..<n).map { _ in Double.random(in: -1...1, using: &g) }
    }

    /// A, built column by column from the naive convolution of unit vectors.
    static func referenceDense(_ a: ConvOperator) -> Matrix {
        let s = shape(a)
        var m = Matrix(rows: a.outputCount, columns: a.inputCount)
        for j in 0..<a.inputCount {
            var e = [Double](repeating: 0, count: a.inputCount)
            e[j] = 1
            let column = NaiveReference.conv2dForward(s, input: e, weight: a.weight)
            for i in 0..<a.outputCount { m[i, j] = column[i] }
        }
        return m
    }

    /// Rule: float64 sums of at most in·kh·kw = 75 terms of size ≤ 1 differ
    /// between two summation orders by ≲ 75·1e-16·scale, so 1e-12 relative to
    /// the output's largest magnitude.
    func testApplyAndAdjointMatchNaiveConvolutionAndDenseMatrix() throws {
        for (index, l) in Self.layers.enumerated() {
            let a = try Self.randomLayer(l, seed: UInt64(index))
            XCTAssertEqual(a.outputHeight, Self.shape(a).outHeight)
            XCTAssertEqual(a.outputWidth, Self.shape(a).outWidth)
            let x = Self.random(a.inputCount, seed: 100 + UInt64(index))
            let y = Self.random(a.outputCount, seed: 200 + UInt64(index))
            let ax = a.apply(x)
            let aty = a.adjoint(y)
            let naiveAx = NaiveReference.conv2dForward(Self.shape(a), input: x, weight: a.weight)
            let naiveAty = NaiveReference.conv2dBackwardData(Self.shape(a), gradOutput: y, weight: a.weight)
            XCTAssertLessThan(maxRelativeToScale(ax, naiveAx), 1e-12, "layer \(index) A·x vs naive")
            XCTAssertLessThan(maxRelativeToScale(aty, naiveAty), 1e-12, "layer \(index) Aᵀ·y vs naive")
            let dense = try a.denseMatrix()
            XCTAssertEqual(dense, Self.referenceDense(a), "layer \(index) dense matrix vs naive columns")
            let denseAx = dense * Matrix(rows: x.count, columns: 1, values: x)
            let denseAty = dense.transposed * Matrix(rows: y.count, columns: 1, values: y)
            XCTAssertLessThan(maxRelativeToScale(ax, denseAx.values), 1e-12, "layer \(index) A·x vs dense")
            XCTAssertLessThan(maxRelativeToScale(aty, denseAty.values), 1e-12, "layer \(index) Aᵀ·y vs dense")
            let lhs = zip(ax, y).reduce(0) { $0 + $1.0 * $1.1 }
            let rhs = zip(x, aty).reduce(0) { $0 + $1.0 * $1.1 }
            let scale = (ax.reduce(0) { $0 + $1 * $1 } * y.reduce(0) { $0 + $1 * $1 }).squareRoot()
            XCTAssertLessThan(abs(lhs - rhs) / scale, 1e-12, "layer \(index) ⟨Ax, y⟩ = ⟨x, Aᵀy⟩")
        }
    }

    /// σ(A) by dgesdd of ConvOperator's dense matrix against dgesdd of the
    /// naive one (1e-12 relative to σ₁: the same matrix, so the same numbers
    /// up to rounding), and their count min(rows, columns).
    func testSingularValuesMatchNaiveDense() throws {
        for (index, l) in Self.layers.enumerated() {
            let a = try Self.randomLayer(l, seed: UInt64(index))
            let sigma = try a.singularValues()
            let reference = try SingularValueDecomposition(Self.referenceDense(a)).singularValues
            XCTAssertEqual(sigma.count, min(a.outputCount, a.inputCount))
            XCTAssertEqual(sigma.count, reference.count)
            XCTAssertLessThan(maxAbsoluteDifference(sigma, reference) / reference[0], 1e-12, "layer \(index)")
        }
    }

    func testBadLayersAndLimitsThrowClearErrors() throws {
        func layer(weights: [Double], stride: Int = 1, h: Int = 4) throws -> ConvOperator {
            try ConvOperator(
                name: "bad", weight: weights, outChannels: 1, inChannels: 1, kernelHeight: 3, kernelWidth: 3,
                stride: stride, padding: 0, inputHeight: h, inputWidth: h)
        }
        let nine = [Double](repeating: 1, count: 9)
        XCTAssertThrowsError(try layer(weights: [1, 2])) { e in
            XCTAssertEqual("\(e)", "bad: 2 weights for (1, 1, 3, 3) = 9")
        }
        var nan = nine
        nan[4] = .nan
        XCTAssertThrowsError(try layer(weights: nan)) { e in XCTAssertEqual("\(e)", "bad: weight 4 is nan") }
        XCTAssertThrowsError(try layer(weights: nine, stride: 0)) { e in XCTAssertEqual("\(e)", "bad: stride 0 < 1") }
        XCTAssertThrowsError(try layer(weights: nine, h: 2))
        // The Matrix form (out × in·kh·kw) is the same layer, and a wrong width is named.
        let fromMatrix = try ConvOperator(
            name: "bad", weight: Matrix(rows: 1, columns: 9, values: nine), inChannels: 1, kernelHeight: 3,
            kernelWidth: 3, inputHeight: 4, inputWidth: 4)
        XCTAssertEqual(fromMatrix, try layer(weights: nine))
        XCTAssertThrowsError(
            try ConvOperator(
                name: "bad", weight: Matrix(rows: 3, columns: 3, values: nine), inChannels: 1, kernelHeight: 3,
                kernelWidth: 3, inputHeight: 4, inputWidth: 4)
        ) { e in XCTAssertEqual("\(e)", "bad: W is 3×3, not out × in·kh·kw = 9") }
        let big = try ConvOperator(
            name: "wide", weight: [Double](repeating: 0.1, count: 16 * 16 * 9), outChannels: 16, inChannels: 16,
            kernelHeight: 3, kernelWidth: 3, padding: 1, inputHeight: 28, inputWidth: 28)
        XCTAssertThrowsError(try big.singularValues()) { e in
            XCTAssertEqual(
                e as? ConvOperatorError,
                .tooLargeForDenseSVD(layer: "wide", rows: 12544, columns: 12544, limit: 8192))
        }
        let strided = try layer(weights: nine, stride: 2, h: 7)
        XCTAssertThrowsError(try strided.circularSpectrum()) { e in
            XCTAssertEqual(
                e as? ConvOperatorError, .strideDoesNotDivideGrid(layer: "bad", stride: 2, height: 7, width: 7))
        }
    }
}
