import GPUNet
import TestSupport
import XCTest

/// The convolution + 2×2 max-pool operations training runs, on every test
/// device, against float64 loops of the dense composition they replace:
/// `maxPool2Forward(conv2dForward(x))` and the dense backward passes of the
/// pooled gradient routed to its winners (`maxPool2Backward`).
///
/// Rules: pooled outputs within 1e-4 absolute and argmax exactly (random
/// inputs have no ties); gradients within 1e-4 of the reference tensor's
/// largest magnitude (the sums run over up to ~10⁴ terms in another order).
final class PooledConvolutionTests: XCTestCase {
    static let forwardTolerance = 1e-4
    static let gradientTolerance = 1e-4

    /// TinyConvNet's layers at batch 1, 13 and 64, and shapes that reach the
    /// edge cases: odd output sizes (floor mode drops a row and a column),
    /// pooled rows shorter than a vector, several input channels with a
    /// non-square kernel, more output channels than one vector holds, more
    /// windows than one chunk of the OpenCL gathers.
    static let shapes: [ConvShape] =
        [1, 13, 64].flatMap { batch in
            [
                ConvShape(batch: batch, inChannels: 1, outChannels: 8, height: 28, width: 28),
                ConvShape(batch: batch, inChannels: 8, outChannels: 16, height: 13, width: 13),
            ]
        } + [
            ConvShape(batch: 3, inChannels: 3, outChannels: 5, height: 9, width: 12),
            ConvShape(batch: 2, inChannels: 2, outChannels: 3, height: 7, width: 6, kernelHeight: 2, kernelWidth: 4),
            ConvShape(batch: 2, inChannels: 4, outChannels: 20, height: 12, width: 21),
            ConvShape(batch: 5, inChannels: 8, outChannels: 16, height: 4, width: 4),
            // 10×10 = 100 windows: more than one chunk of the OpenCL gathers (64).
            ConvShape(batch: 2, inChannels: 4, outChannels: 3, height: 23, width: 22),
        ]

    static func pool(_ s: ConvShape) -> PoolShape {
        PoolShape(batch: s.batch, channels: s.outChannels, height: s.outHeight, width: s.outWidth)
    }

    /// Inputs for one shape: the pooled gradient has ReLU's zeros (about
    /// half), the argmax is the float64 pool's. For the fused ReLU: its
    /// output (from the float64 pool) and the gradient of that output, with
    /// no zeros, which the passes must mask to `pooledGradient` themselves.
    struct Case {
        let shape: ConvShape
        let input, weight, pooledGradient, reluOutput, reluOutputGradient: [Float]
        let argmax: [Int32]
        let pooled: [Double]

        init(_ s: ConvShape, seed: UInt64) {
            shape = s
            input = randomFloats(s.inputCount, seed: seed)
            weight = randomFloats(s.weightCount, scale: 0.3, seed: seed + 1)
            let pool = PooledConvolutionTests.pool(s)
            let forward = NaiveReference.maxPool2Forward(
                pool, input: NaiveReference.conv2dForward(s, input: input, weight: weight))
            pooled = forward.output
            argmax = forward.argmax
            reluOutputGradient = randomFloats(pool.outputCount, seed: seed + 2)
            pooledGradient = zip(reluOutputGradient, pooled).map { g, p in p > 0 ? g : 0 }
            reluOutput = pooled.map { Float(max($0, 0)) }
        }

        /// The pooled gradient as the passes take it: masked already, or
        /// with the fused ReLU's output to mask it.
        func gradient(on d: any Device, fusedReLU: Bool) throws -> PooledGradient {
            let pool = PooledConvolutionTests.pool(shape)
            return fusedReLU
                ? PooledGradient(
                    pool: pool, values: try d.makeBuffer(reluOutputGradient), argmax: try d.makeBuffer(argmax),
                    reluOutput: try d.makeBuffer(reluOutput))
                : PooledGradient(pool: pool, values: try d.makeBuffer(pooledGradient), argmax: try d.makeBuffer(argmax))
        }

        /// The dense output gradient: the pooled one at its winners.
        var denseGradient: [Double] {
            NaiveReference.maxPool2Backward(
                PooledConvolutionTests.pool(shape), gradOutput: pooledGradient, argmax: argmax)
        }
    }

    /// Without and with the fused ReLU: pooled = pool(conv) or
    /// max(pool(conv), 0), the winners the same either way.
    func testForwardPoolsTheConvolutionOnEveryDevice() throws {
        for (n, s) in Self.shapes.enumerated() {
            let c = Case(s, seed: UInt64(100 + 10 * n))
            let pool = Self.pool(s)
            for d in try testDevices() {
                for relu in [false, true] {
                    let pooled = try d.makeBuffer(count: pool.outputCount, kind: .float32)
                    let argmax = try d.makeBuffer(count: pool.outputCount, kind: .int32)
                    try d.conv2dMaxPool2Forward(
                        s, input: try d.makeBuffer(c.input), weight: try d.makeBuffer(c.weight),
                        pooled: pooled, argmax: argmax, relu: relu)
                    let expected = relu ? c.pooled.map { max($0, 0) } : c.pooled
                    let diff = maxAbsoluteDifference(try d.floats(pooled), expected)
                    XCTAssertLessThanOrEqual(diff, Self.forwardTolerance, "\(s) relu \(relu) on \(d.info.summary)")
                    XCTAssertEqual(try d.int32s(argmax), c.argmax, "argmax \(s) relu \(relu) on \(d.info.summary)")
                }
            }
        }
    }

    func testWeightGradientFromThePooledGradientOnEveryDevice() throws {
        for (n, s) in Self.shapes.enumerated() {
            let c = Case(s, seed: UInt64(200 + 10 * n))
            let expected = NaiveReference.conv2dBackwardWeight(
                s, input: c.input.map(Double.init), gradOutput: c.denseGradient)
            for d in try testDevices() {
                for fused in [false, true] {
                    // Overwritten, not added to.
                    let gradWeight = try d.makeBuffer(randomFloats(s.weightCount, seed: 9))
                    try d.conv2dBackwardWeight(
                        s, input: try d.makeBuffer(c.input),
                        pooledGradient: try c.gradient(on: d, fusedReLU: fused),
                        gradWeight: gradWeight)
                    let diff = maxRelativeToScale(try d.floats(gradWeight), expected)
                    XCTAssertLessThanOrEqual(
                        diff, Self.gradientTolerance, "\(s) fused ReLU \(fused) on \(d.info.summary)")
                }
            }
        }
    }

    func testDataGradientFromThePooledGradientOnEveryDevice() throws {
        for (n, s) in Self.shapes.enumerated() {
            let c = Case(s, seed: UInt64(300 + 10 * n))
            let expected = NaiveReference.conv2dBackwardData(
                s, gradOutput: c.denseGradient, weight: c.weight.map(Double.init))
            for d in try testDevices() {
                for fused in [false, true] {
                    let gradInput = try d.makeBuffer(randomFloats(s.inputCount, seed: 8))  // overwritten, not added to
                    try d.conv2dBackwardData(
                        s, pooledGradient: try c.gradient(on: d, fusedReLU: fused),
                        weight: try d.makeBuffer(c.weight), gradInput: gradInput)
                    let diff = maxRelativeToScale(try d.floats(gradInput), expected)
                    XCTAssertLessThanOrEqual(
                        diff, Self.gradientTolerance, "\(s) fused ReLU \(fused) on \(d.info.summary)")
                }
            }
        }
    }

    /// The host's worker threads take the pieces of an operation in whatever
    /// order they come free, but each piece covers fixed images: the results
    /// are bit-identical from run to run for a given worker count, and the
    /// per-image outputs (pooled values, argmax, data gradient) are
    /// bit-identical for every worker count. Weight gradients add the pieces'
    /// sums, so other counts agree within the gradient rule.
    func testHostResultsDoNotDependOnThreadTiming() throws {
        let s = ConvShape(batch: 64, inChannels: 8, outChannels: 16, height: 13, width: 13)
        let c = Case(s, seed: 500)
        let pool = Self.pool(s)
        func run(_ d: HostDevice) throws -> (pooled: [Float], argmax: [Int32], gradWeight: [Float], gradInput: [Float])
        {
            let pooled = try d.makeBuffer(count: pool.outputCount, kind: .float32)
            let argmax = try d.makeBuffer(count: pool.outputCount, kind: .int32)
            try d.conv2dMaxPool2Forward(
                s, input: try d.makeBuffer(c.input), weight: try d.makeBuffer(c.weight),
                pooled: pooled, argmax: argmax, relu: true)
            let gradient = try c.gradient(on: d, fusedReLU: true)
            let gradWeight = try d.makeBuffer(count: s.weightCount, kind: .float32)
            let gradInput = try d.makeBuffer(count: s.inputCount, kind: .float32)
            try d.conv2dBackwardWeight(
                s, input: try d.makeBuffer(c.input), pooledGradient: gradient, gradWeight: gradWeight)
            try d.conv2dBackwardData(
                s, pooledGradient: gradient, weight: try d.makeBuffer(c.weight), gradInput: gradInput)
            return (try d.floats(pooled), try d.int32s(argmax), try d.floats(gradWeight), try d.floats(gradInput))
        }
        let single = try run(HostDevice(workers: 1))
        for workers in [2, 3] {
            let device = HostDevice(workers: workers)
            let first = try run(device)
            let second = try run(device)
            XCTAssertEqual(
                first.gradWeight, second.gradWeight, "\(workers) workers: weight gradient changed between runs")
            XCTAssertEqual(first.pooled, single.pooled, "\(workers) workers: pooled values")
            XCTAssertEqual(first.argmax, single.argmax, "\(workers) workers: argmax")
            XCTAssertEqual(first.gradInput, single.gradInput, "\(workers) workers: data gradient")
            XCTAssertLessThanOrEqual(maxRelativeToScale(first.gradWeight, single.gradWeight), Self.gradientTolerance)
        }
    }

    /// A winner outside its own window could only come from a corrupt
    /// buffer; the host names it instead of reading or writing elsewhere.
    func testHostRejectsAWinnerOutsideItsWindow() throws {
        let s = ConvShape(batch: 2, inChannels: 8, outChannels: 16, height: 13, width: 13)
        let c = Case(s, seed: 400)
        var argmax = c.argmax
        argmax[37] = 120  // the last pixel of the 11×11 plane: in no window of the 5×5 pool
        let d = HostDevice()
        var values = c.pooledGradient
        values[37] = 1
        let gradient = PooledGradient(
            pool: Self.pool(s), values: try d.makeBuffer(values), argmax: try d.makeBuffer(argmax))
        let gradWeight = try d.makeBuffer(count: s.weightCount, kind: .float32)
        let gradInput = try d.makeBuffer(count: s.inputCount, kind: .float32)
        XCTAssertThrowsError(
            try d.conv2dBackwardWeight(
                s, input: try d.makeBuffer(c.input), pooledGradient: gradient,
                gradWeight: gradWeight)
        ) { error in
            XCTAssertTrue("\(error)".contains("outside its 2×2 window"), "\(error)")
        }
        XCTAssertThrowsError(
            try d.conv2dBackwardData(
                s, pooledGradient: gradient, weight: try d.makeBuffer(c.weight),
                gradInput: gradInput))
    }

    func testPoolShapeMustMatchTheConvolution() throws {
        let s = ConvShape(batch: 2, inChannels: 1, outChannels: 8, height: 28, width: 28)
        let wrong = PoolShape(batch: 2, channels: 8, height: 24, width: 24)
        for d in try testDevices() {
            let gradient = PooledGradient(
                pool: wrong, values: try d.makeBuffer(count: wrong.outputCount, kind: .float32),
                argmax: try d.makeBuffer(count: wrong.outputCount, kind: .int32))
            XCTAssertThrowsError(
                try d.conv2dBackwardWeight(
                    s, input: try d.makeBuffer(count: s.inputCount, kind: .float32), pooledGradient: gradient,
                    gradWeight: try d.makeBuffer(count: s.weightCount, kind: .float32)), "\(d.info.summary)")
        }
    }
}
