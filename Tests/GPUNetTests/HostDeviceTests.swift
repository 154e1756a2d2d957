import GPUNet
import NetIO
import TestSupport
import XCTest

/// Every `HostDevice` operation against `NaiveReference` (float64 loops), on
/// shapes with odd sizes, at batch 1 and batch 64.
///
/// Rules, stated per test: forward outputs within 1e-4 absolute (float32
/// sums of at most a few hundred O(1) terms round at ~1e-6); gradients within
/// 1e-4 relative to the tensor's largest magnitude (a weight gradient sums
/// tens of thousands of terms whose order differs from the reference's);
/// indices (argmax, correct flags) and pure copies (im2col) exactly.
final class HostDeviceTests: XCTestCase {
    static let forwardTolerance = 1e-4
    static let gradientTolerance = 1e-4

    let device = HostDevice()

    /// Odd sizes everywhere (C 3, O 5; a 3×2 kernel; a 3×3 kernel over rows of 21) and TinyConvNet's two layers.
    static func convShapes(batch: Int) -> [ConvShape] {
        [
            ConvShape(
                batch: batch, inChannels: 3, outChannels: 5, height: 7, width: 9, kernelHeight: 3, kernelWidth: 2),
            // 3×3, rows of 19: two SIMD blocks and an overlap.
            ConvShape(batch: batch, inChannels: 3, outChannels: 5, height: 6, width: 21),
            ConvShape(batch: batch, inChannels: 1, outChannels: 8, height: 28, width: 28),
            ConvShape(batch: batch, inChannels: 8, outChannels: 16, height: 13, width: 13),
        ]
    }

    static let batches = [1, 64]

    func floats(_ buffer: Buffer) throws -> [Float] { try device.floats(buffer) }
    func zeros(_ count: Int) throws -> Buffer { try device.makeBuffer(count: count, kind: .float32) }

    // MARK: Buffers

    /// Transfers are exact copies; new buffers are zero; fill and copy set every element.
    func testBuffersRoundTripFillAndCopy() throws {
        let values = randomFloats(1001, seed: 1)
        let a = try device.makeBuffer(values)
        XCTAssertEqual(try floats(a), values)
        let fresh = try zeros(1001)
        XCTAssertEqual(try floats(fresh), [Float](repeating: 0, count: 1001))
        try device.copy(a, to: fresh)
        XCTAssertEqual(try floats(fresh), values)
        try device.fill(fresh, value: -2.5)
        XCTAssertEqual(try floats(fresh), [Float](repeating: -2.5, count: 1001))
        let ints: [Int32] = [3, -7, Int32.max, 0, 11]
        XCTAssertEqual(try device.int32s(try device.makeBuffer(ints)), ints)
        XCTAssertEqual(try device.int32s(try device.makeBuffer(count: 3, kind: .int32)), [0, 0, 0])
    }

    /// Wrong kind, too small, mismatched transfer counts and out-of-range
    /// labels throw a HostDeviceError that names the operation and argument.
    func testInvalidArgumentsThrowDescriptiveErrors() throws {
        let small = try zeros(5)
        let ints = try device.makeBuffer(count: 10, kind: .int32)
        let big = try zeros(10)
        XCTAssertThrowsError(try device.reluForward(count: 10, input: small, output: big)) { error in
            XCTAssertEqual(
                error as? HostDeviceError,
                .bufferTooSmall(operation: "reluForward", argument: "input", needed: 10, count: 5))
            XCTAssertTrue("\(error)".contains("reluForward") && "\(error)".contains("input"), "\(error)")
        }
        XCTAssertThrowsError(try device.reluForward(count: 10, input: ints, output: big)) { error in
            XCTAssertEqual(
                error as? HostDeviceError,
                .wrongKind(operation: "reluForward", argument: "input", expected: .float32, actual: .int32))
        }
        XCTAssertThrowsError(try device.upload([Float](repeating: 1, count: 4), to: small)) { error in
            XCTAssertEqual(
                error as? HostDeviceError, .countMismatch(operation: "upload", bufferCount: 5, arrayCount: 4))
        }
        let logits = try zeros(6)
        let labels = try device.makeBuffer([Int32(0), 3])
        let grad = try zeros(6)
        let perSample = try zeros(4)
        XCTAssertThrowsError(
            try device.softmaxCrossEntropy(
                batch: 2, classes: 3, logits: logits, labels: labels,
                gradLogits: grad, perSample: perSample)
        ) { error in
            XCTAssertEqual(error as? HostDeviceError, .labelOutOfRange(sample: 1, label: 3, classes: 3))
        }
        let pool = PoolShape(batch: 1, channels: 1, height: 2, width: 2)
        XCTAssertThrowsError(
            try device.maxPool2Backward(
                pool, gradOutput: try zeros(1), argmax: try device.makeBuffer([Int32(4)]),
                gradInput: try zeros(4))
        ) { error in
            XCTAssertEqual(error as? HostDeviceError, .argmaxOutOfRange(index: 0, value: 4, planeSize: 4))
        }
    }

    // MARK: GEMM

    /// Rule: forward, 1e-4 absolute. Every transpose combination, α ≠ 1,
    /// β ∈ {0, 0.5}, odd sizes, an empty inner dimension (C ← β·C), and one
    /// product large enough (> 1 MFLOP) to be split across the cores.
    func testGEMMMatchesReference() throws {
        for (m, n, k) in [(7, 5, 3), (1, 1, 1), (3, 4, 0), (129, 65, 77)] {
            for transposeA in [false, true] {
                for transposeB in [false, true] {
                    for (alpha, beta) in [(Float(1), Float(0)), (Float(-0.75), Float(0.5))] {
                        let shape = GEMMShape(
                            m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                            alpha: alpha, beta: beta)
                        let a = randomFloats(m * k, seed: 10)
                        let b = randomFloats(k * n, seed: 11)
                        let c = randomFloats(m * n, seed: 12)
                        let cBuffer = try device.makeBuffer(c)
                        try device.gemm(shape, a: try device.makeBuffer(a), b: try device.makeBuffer(b), c: cBuffer)
                        let expected = NaiveReference.gemm(shape, a: a, b: b, c: c)
                        XCTAssertLessThanOrEqual(
                            maxAbsoluteDifference(try floats(cBuffer), expected),
                            Self.forwardTolerance, "gemm \(shape) α \(alpha) β \(beta)")
                    }
                }
            }
        }
    }

    /// Products with a long sum and a small C (the weight-gradient shapes),
    /// which the host splits along k. Rule: within 1e-5 of C's largest
    /// magnitude (each entry sums 40,000 terms; float32 rounding of such a sum
    /// is ~1e-6 of its scale, and the split only reorders it).
    func testLongSumGEMMMatchesReference() throws {
        let (m, n, k) = (5, 7, 40_000)
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                for (alpha, beta) in [(Float(1), Float(0)), (Float(-0.75), Float(0.5))] {
                    let shape = GEMMShape(
                        m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                        alpha: alpha, beta: beta)
                    let a = randomFloats(m * k, seed: 13)
                    let b = randomFloats(k * n, seed: 14)
                    let c = randomFloats(m * n, scale: 50, seed: 15)
                    let cBuffer = try device.makeBuffer(c)
                    try device.gemm(shape, a: try device.makeBuffer(a), b: try device.makeBuffer(b), c: cBuffer)
                    let expected = NaiveReference.gemm(shape, a: a, b: b, c: c)
                    XCTAssertLessThanOrEqual(
                        maxRelativeToScale(try floats(cBuffer), expected), 1e-5,
                        "gemm \(shape) α \(alpha) β \(beta)")
                }
            }
        }
    }

    // MARK: Convolution

    /// Rule: im2col is a copy, so exact; col2im sums at most kH·kW values, so
    /// 1e-4 absolute (forward rule).
    func testIm2colAndCol2imMatchReference() throws {
        for batch in Self.batches {
            for s in Self.convShapes(batch: batch) {
                let input = randomFloats(s.inputCount, seed: 20)
                let columns = try zeros(s.patchSize * s.patchCount)
                try device.im2col(s, input: try device.makeBuffer(input), columns: columns)
                XCTAssertEqual(
                    maxAbsoluteDifference(try floats(columns), NaiveReference.im2col(s, input: input)), 0,
                    "im2col \(s)")

                let columnValues = randomFloats(s.patchSize * s.patchCount, seed: 21)
                let image = try device.makeBuffer(randomFloats(s.inputCount, seed: 22))  // overwritten, not accumulated
                try device.col2im(s, columns: try device.makeBuffer(columnValues), input: image)
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(try floats(image), NaiveReference.col2im(s, columns: columnValues)),
                    Self.forwardTolerance, "col2im \(s)")
            }
        }
    }

    /// Rule: forward, 1e-4 absolute (each output sums C·kH·kW ≤ 72 products).
    func testConvForwardMatchesReference() throws {
        for batch in Self.batches {
            for s in Self.convShapes(batch: batch) {
                let input = randomFloats(s.inputCount, seed: 30)
                let weight = randomFloats(s.weightCount, scale: 0.5, seed: 31)
                let output = try device.makeBuffer(randomFloats(s.outputCount, seed: 32))
                try device.conv2dForward(
                    s, input: try device.makeBuffer(input), weight: try device.makeBuffer(weight),
                    output: output)
                let expected = NaiveReference.conv2dForward(s, input: input, weight: weight)
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(try floats(output), expected), Self.forwardTolerance,
                    "conv2dForward \(s)")
            }
        }
    }

    /// Rule: gradient, 1e-4 relative to the largest |gradInput|.
    func testConvBackwardDataMatchesReference() throws {
        for batch in Self.batches {
            for s in Self.convShapes(batch: batch) {
                let gradOutput = randomFloats(s.outputCount, seed: 40)
                let weight = randomFloats(s.weightCount, seed: 41)
                let gradInput = try device.makeBuffer(randomFloats(s.inputCount, seed: 42))
                try device.conv2dBackwardData(
                    s, gradOutput: try device.makeBuffer(gradOutput),
                    weight: try device.makeBuffer(weight), gradInput: gradInput)
                let expected = NaiveReference.conv2dBackwardData(s, gradOutput: gradOutput, weight: weight)
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try floats(gradInput), expected), Self.gradientTolerance,
                    "conv2dBackwardData \(s)")
            }
        }
    }

    /// Rule: gradient, 1e-4 relative to the largest |gradWeight| (each entry
    /// sums B·oH·oW, up to 43 264, products).
    func testConvBackwardWeightMatchesReference() throws {
        for batch in Self.batches {
            for s in Self.convShapes(batch: batch) {
                let input = randomFloats(s.inputCount, seed: 50)
                let gradOutput = randomFloats(s.outputCount, seed: 51)
                let gradWeight = try device.makeBuffer(randomFloats(s.weightCount, seed: 52))
                try device.conv2dBackwardWeight(
                    s, input: try device.makeBuffer(input),
                    gradOutput: try device.makeBuffer(gradOutput), gradWeight: gradWeight)
                let expected = NaiveReference.conv2dBackwardWeight(s, input: input, gradOutput: gradOutput)
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try floats(gradWeight), expected), Self.gradientTolerance,
                    "conv2dBackwardWeight \(s)")
            }
        }
    }

    // MARK: ReLU

    /// Rule: exact (a select; no arithmetic). Counts below and above the
    /// parallel threshold; inputs include exact zeros.
    func testReluMatchesReference() throws {
        for count in [1, 1001, 100_003] {
            var input = randomFloats(count, seed: 60)
            for i in stride(from: 0, to: count, by: 7) { input[i] = 0 }
            let output = try device.makeBuffer(randomFloats(count, seed: 61))
            try device.reluForward(count: count, input: try device.makeBuffer(input), output: output)
            let outputValues = try floats(output)
            XCTAssertEqual(
                maxAbsoluteDifference(outputValues, NaiveReference.reluForward(input)), 0, "reluForward \(count)")

            let gradOutput = randomFloats(count, seed: 62)
            let gradInput = try device.makeBuffer(randomFloats(count, seed: 63))
            try device.reluBackward(
                count: count, output: output, gradOutput: try device.makeBuffer(gradOutput),
                gradInput: gradInput)
            let expected = NaiveReference.reluBackward(output: outputValues, gradOutput: gradOutput)
            XCTAssertEqual(maxAbsoluteDifference(try floats(gradInput), expected), 0, "reluBackward \(count)")
        }
    }

    /// NaN passes through ReLU (as in PyTorch) in the SIMD body and the
    /// scalar tail alike, so divergence is not hidden; its gradient is 0
    /// (output > 0 is false for NaN).
    func testReluPropagatesNaN() throws {
        var input = randomFloats(19, seed: 64)
        input[3] = .nan
        input[17] = .nan
        input[5] = -.infinity
        input[6] = .infinity
        let output = try zeros(19)
        try device.reluForward(count: 19, input: try device.makeBuffer(input), output: output)
        let values = try floats(output)
        let expected = NaiveReference.reluForward(input)
        for i in 0..<19 {
            XCTAssertTrue(
                values[i].isNaN == expected[i].isNaN && (values[i].isNaN || Double(values[i]) == expected[i]),
                "relu(\(input[i])) = \(values[i]), expected \(expected[i])")
        }
        XCTAssertTrue(values[3].isNaN && values[17].isNaN)
        let gradInput = try zeros(19)
        try device.reluBackward(
            count: 19, output: output, gradOutput: try device.makeBuffer([Float](repeating: 1, count: 19)),
            gradInput: gradInput)
        XCTAssertEqual(try floats(gradInput)[3], 0)
        XCTAssertEqual(try floats(gradInput)[17], 0)
    }

    // MARK: Max-pooling

    /// Rule: outputs and argmax exact (a pool only selects). Inputs are drawn
    /// from five levels so that ties are common (ties go to the first in
    /// row-major order); odd heights and widths exercise floor mode.
    func testMaxPoolMatchesReference() throws {
        let shapes = Self.batches.flatMap { batch in
            [
                PoolShape(batch: batch, channels: 3, height: 7, width: 9),
                PoolShape(batch: batch, channels: 8, height: 26, width: 26),
                PoolShape(batch: batch, channels: 16, height: 11, width: 11),
            ]
        }
        for s in shapes {
            let input = randomFloats(s.inputCount, seed: 70).map { ($0 * 2).rounded() }
            let output = try zeros(s.outputCount)
            let argmax = try device.makeBuffer(count: s.outputCount, kind: .int32)
            try device.maxPool2Forward(s, input: try device.makeBuffer(input), output: output, argmax: argmax)
            let expected = NaiveReference.maxPool2Forward(s, input: input)
            XCTAssertEqual(maxAbsoluteDifference(try floats(output), expected.output), 0, "maxPool2Forward \(s)")
            XCTAssertEqual(try device.int32s(argmax), expected.argmax, "maxPool2Forward argmax \(s)")

            let gradOutput = randomFloats(s.outputCount, seed: 71)
            let gradInput = try device.makeBuffer(randomFloats(s.inputCount, seed: 72))
            try device.maxPool2Backward(
                s, gradOutput: try device.makeBuffer(gradOutput), argmax: argmax, gradInput: gradInput)
            let expectedGrad = NaiveReference.maxPool2Backward(s, gradOutput: gradOutput, argmax: expected.argmax)
            XCTAssertEqual(maxAbsoluteDifference(try floats(gradInput), expectedGrad), 0, "maxPool2Backward \(s)")
        }
    }

    // MARK: Linear layer

    /// Rule: forward 1e-4 absolute; gradients 1e-4 relative to scale. Odd
    /// sizes and TinyConvNet's fc; gradInput both requested and skipped.
    func testLinearMatchesReference() throws {
        let shapes = Self.batches.flatMap {
            [
                LinearShape(batch: $0, inFeatures: 37, outFeatures: 7),
                LinearShape(batch: $0, inFeatures: 400, outFeatures: 10),
            ]
        }
        for s in shapes {
            let input = randomFloats(s.batch * s.inFeatures, seed: 80)
            let weight = randomFloats(s.outFeatures * s.inFeatures, scale: 0.1, seed: 81)
            let bias = randomFloats(s.outFeatures, seed: 82)
            let (inputBuffer, weightBuffer) = (try device.makeBuffer(input), try device.makeBuffer(weight))
            let output = try device.makeBuffer(randomFloats(s.batch * s.outFeatures, seed: 83))
            try device.linearForward(
                s, input: inputBuffer, weight: weightBuffer, bias: try device.makeBuffer(bias), output: output)
            XCTAssertLessThanOrEqual(
                maxAbsoluteDifference(
                    try floats(output), NaiveReference.linearForward(s, input: input, weight: weight, bias: bias)),
                Self.forwardTolerance, "linearForward \(s)")

            let gradOutput = randomFloats(s.batch * s.outFeatures, seed: 84)
            let expected = NaiveReference.linearBackward(s, input: input, weight: weight, gradOutput: gradOutput)
            for withInput in [true, false] {
                let gradInput = try device.makeBuffer(randomFloats(s.batch * s.inFeatures, seed: 85))
                let gradWeight = try device.makeBuffer(randomFloats(s.outFeatures * s.inFeatures, seed: 86))
                let gradBias = try device.makeBuffer(randomFloats(s.outFeatures, seed: 87))
                try device.linearBackward(
                    s, input: inputBuffer, weight: weightBuffer, gradOutput: try device.makeBuffer(gradOutput),
                    gradInput: withInput ? gradInput : nil, gradWeight: gradWeight, gradBias: gradBias)
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try floats(gradWeight), expected.gradWeight), Self.gradientTolerance,
                    "linearBackward gradWeight \(s)")
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try floats(gradBias), expected.gradBias), Self.gradientTolerance,
                    "linearBackward gradBias \(s)")
                if withInput {
                    XCTAssertLessThanOrEqual(
                        maxRelativeToScale(try floats(gradInput), expected.gradInput), Self.gradientTolerance,
                        "linearBackward gradInput \(s)")
                }
            }
        }
    }

    // MARK: Loss

    /// Rule: per-sample losses (forward) 1e-4 absolute; correct flags exact;
    /// gradLogits 1e-4 relative to scale. Logits span ±8 so softmax
    /// saturates somewhere; some rows hold ties for the argmax.
    func testSoftmaxCrossEntropyMatchesReference() throws {
        for (batch, classes) in [(1, 10), (64, 10), (5, 7)] {
            var logits = randomFloats(batch * classes, scale: 8, seed: 90)
            for b in stride(from: 0, to: batch, by: 3) {
                let top = logits[(b * classes)..<((b + 1) * classes)].max()!
                logits[b * classes] = top
                logits[b * classes + 1] = top  // tie between classes 0 and 1
            }
            var generator = SeededRandom(seed: 91)
            let labels = (0..<batch).map { b in
                b % 3 == 0 ? Int32(b % 2) : Int32.random(in: 0..<Int32(classes), using: &generator)
            }
            let grad = try zeros(batch * classes)
            let perSample = try zeros(2 * batch)
            try device.softmaxCrossEntropy(
                batch: batch, classes: classes, logits: try device.makeBuffer(logits),
                labels: try device.makeBuffer(labels), gradLogits: grad, perSample: perSample)
            let expected = NaiveReference.softmaxCrossEntropy(
                batch: batch, classes: classes, logits: logits, labels: labels)
            let values = try floats(perSample)
            XCTAssertLessThanOrEqual(
                maxAbsoluteDifference(values[0..<batch], expected.loss), Self.forwardTolerance,
                "loss \(batch)×\(classes)")
            XCTAssertEqual(
                Array(values[batch...]).map(Double.init), expected.correct, "correct flags \(batch)×\(classes)")
            XCTAssertLessThanOrEqual(
                maxRelativeToScale(try floats(grad), expected.gradLogits), Self.gradientTolerance,
                "gradLogits \(batch)×\(classes)")
        }
    }

    // MARK: Optimisers

    /// Rule: 1e-6 absolute after three chained steps: parameters O(1) and
    /// updates O(lr) round at ~1e-7 in float32, so 1e-6 still catches any
    /// wrong term (each is ≥ 1e-5 here: the weight-decay term lr·λ·p too).
    /// Plain momentum, Nesterov, weight decay, and both.
    func testSGDMomentumMatchesReference() throws {
        let count = 1003
        for (nesterov, weightDecay) in [(false, Float(0)), (true, 0), (false, 0.01), (true, 0.01)] {
            let variant = "nesterov \(nesterov), weight decay \(weightDecay)"
            var parameter = randomFloats(count, seed: 100).map(Double.init)
            var velocity = [Double](repeating: 0, count: count)
            let p = try device.makeBuffer(parameter.map(Float.init))
            let v = try zeros(count)
            let sgd = SGDStep(learningRate: 0.05, momentum: 0.9, nesterov: nesterov, weightDecay: weightDecay)
            for step in 0..<3 {
                let gradient = randomFloats(count, seed: 101 + UInt64(step))
                try device.sgdMomentumStep(
                    [
                        MomentumTensor(
                            count: count, parameter: p, gradient: try device.makeBuffer(gradient),
                            velocity: v)
                    ], step: sgd)
                (parameter, velocity) = NaiveReference.sgdMomentumStep(
                    parameter: parameter, gradient: gradient.map(Double.init),
                    velocity: velocity, learningRate: Double(Float(0.05)),
                    momentum: Double(Float(0.9)), nesterov: nesterov, weightDecay: Double(weightDecay))
            }
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(try floats(p), parameter), 1e-6, "SGD parameter, \(variant)")
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(try floats(v), velocity), 1e-6, "SGD velocity, \(variant)")
        }
    }

    /// Rule: as for SGD, 1e-6 absolute after steps t = 1, 2, 3 (bias
    /// corrections change every step); gradients include tiny ones where
    /// ε matters.
    func testAdamMatchesReference() throws {
        let count = 1003
        var parameter = randomFloats(count, seed: 110).map(Double.init)
        var m = [Double](repeating: 0, count: count)
        var v = m
        let p = try device.makeBuffer(parameter.map(Float.init))
        let mb = try zeros(count)
        let vb = try zeros(count)
        for t in 1...3 {
            var gradient = randomFloats(count, seed: 111 + UInt64(t))
            for i in stride(from: 0, to: count, by: 11) { gradient[i] *= 1e-6 }
            let step = AdamStep(learningRate: 0.01, step: t)
            try device.adamStep(
                [AdamTensor(count: count, parameter: p, gradient: try device.makeBuffer(gradient), m: mb, v: vb)],
                step: step)
            (parameter, m, v) = NaiveReference.adamStep(
                parameter: parameter, gradient: gradient.map(Double.init),
                m: m, v: v, step: step)
        }
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try floats(p), parameter), 1e-6, "Adam parameter")
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try floats(mb), m), 1e-6, "Adam m")
        XCTAssertLessThanOrEqual(maxRelativeToScale(try floats(vb), v), 1e-5, "Adam v (relative: v is O(1e-3))")
    }
}
