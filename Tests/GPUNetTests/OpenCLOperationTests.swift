import GPUNet
import TestSupport
import XCTest

/// Every `OpenCLDevice` operation against `NaiveReference` (float64 loops),
/// on shapes with odd sizes (not multiples of any vector width or tile), at
/// batch 1 and batch 64, on every OpenCL device of the machine.
///
/// Rules: forward outputs within 1e-4 absolute (float32 sums of at most a few
/// hundred O(1) terms round at ~1e-6); gradients within 1e-4 relative to the
/// tensor's largest magnitude (weight gradients sum tens of thousands of
/// terms in a different order than the reference); indices, copies and the
/// per-sample correct flags exactly.
final class OpenCLOperationTests: XCTestCase {
    static let forwardTolerance = 1e-4
    static let gradientTolerance = 1e-4
    static let batches = [1, 64]

    /// Odd sizes chosen to exercise every vector width of the convolution
    /// kernels: O 5 → 8 lanes, O 17 → two 16-lane groups, C 3 → 4 lanes,
    /// C 9 → 16 lanes, C 1 → scalar; plus TinyConvNet's two layers.
    static func convShapes(batch: Int) -> [ConvShape] {
        [
            ConvShape(
                batch: batch, inChannels: 3, outChannels: 5, height: 7, width: 9, kernelHeight: 3, kernelWidth: 2),
            ConvShape(
                batch: batch, inChannels: 9, outChannels: 17, height: 6, width: 5, kernelHeight: 2, kernelWidth: 3),
            ConvShape(
                batch: batch, inChannels: 2, outChannels: 1, height: 5, width: 8, kernelHeight: 5, kernelWidth: 1),
            ConvShape(batch: batch, inChannels: 1, outChannels: 8, height: 28, width: 28),
            ConvShape(batch: batch, inChannels: 8, outChannels: 16, height: 13, width: 13),
        ]
    }

    func eachDevice(_ body: (OpenCLDevice) throws -> Void) throws {
        for device in try OpenCLTestDevice.all() { try body(device) }
    }

    // MARK: Buffers

    /// Transfers are exact; new buffers are zero; fill and copy set every element.
    func testBuffersRoundTripFillAndCopy() throws {
        try eachDevice { device in
            let values = randomFloats(1001, seed: 1)
            let a = try device.makeBuffer(values)
            XCTAssertEqual(try device.floats(a), values)
            let fresh = try device.makeBuffer(count: 1001, kind: .float32)
            XCTAssertEqual(try device.floats(fresh), [Float](repeating: 0, count: 1001))
            try device.copy(a, to: fresh)
            XCTAssertEqual(try device.floats(fresh), values)
            try device.fill(fresh, value: -2.5)
            XCTAssertEqual(try device.floats(fresh), [Float](repeating: -2.5, count: 1001))
            let ints: [Int32] = [3, -7, Int32.max, 0, 11]
            XCTAssertEqual(try device.int32s(try device.makeBuffer(ints)), ints)
            XCTAssertEqual(try device.int32s(try device.makeBuffer(count: 3, kind: .int32)), [0, 0, 0])
            let empty = try device.makeBuffer(count: 0, kind: .float32)
            XCTAssertEqual(try device.floats(empty), [])
        }
    }

    /// Uploads return before their writes run (copied to staging areas
    /// first): each buffer holds exactly what was uploaded even when the
    /// caller's memory is overwritten at once, when more uploads are queued
    /// than there are staging areas, when sizes grow, and when a buffer is
    /// uploaded twice in a row (the later values win, as issued).
    func testQueuedUploadsKeepTheirValues() throws {
        try eachDevice { device in
            var expected: [[Float]] = []
            var buffers: [Buffer] = []
            var source = [Float](repeating: 0, count: 4096)
            for upload in 0..<11 {
                let count = 1 + upload * 397 % 4096
                let values = randomFloats(count, seed: 900 + UInt64(upload))
                source.replaceSubrange(0..<count, with: values)
                let buffer = try device.makeBuffer(count: count, kind: .float32)
                try source.withUnsafeBufferPointer {
                    try device.upload(UnsafeBufferPointer(rebasing: $0[0..<count]), to: buffer)
                }
                // Overwritten before any read: the queued write must not see this.
                for i in 0..<count { source[i] = .nan }
                expected.append(values)
                buffers.append(buffer)
            }
            let twice = try device.makeBuffer(count: 3, kind: .int32)
            try device.upload([Int32(1), 2, 3], to: twice)
            try device.upload([Int32(-4), 5, -6], to: twice)
            for (buffer, values) in zip(buffers, expected) { XCTAssertEqual(try device.floats(buffer), values) }
            XCTAssertEqual(try device.int32s(twice), [-4, 5, -6])
        }
    }

    /// A started download holds the buffer as it is when the work queued
    /// before it is done, not what work queued after it writes; dropped
    /// unread, it is still safe (it waits for its copy before freeing).
    func testStartedDownloadHoldsTheContentsBeforeLaterWork() throws {
        for device in try testDevices() {
            let values = randomFloats(1000, seed: 77)
            let buffer = try device.makeBuffer(count: values.count, kind: .float32)
            try device.upload(values, to: buffer)
            let pending = try device.startDownload(buffer)
            try device.fill(buffer, value: 7)
            _ = try device.startDownload(buffer)  // never read
            try device.reluForward(
                count: values.count, input: try device.makeBuffer(values.map { -$0 }), output: buffer)
            XCTAssertEqual(try pending.floats(), values, device.info.summary)
            XCTAssertEqual(try pending.floats(), values, "a second call returns the same values")
            XCTAssertEqual(try device.floats(buffer), values.map { max(-$0, 0) }, device.info.summary)
        }
    }

    // MARK: GEMM

    /// All four transpose combinations, with (α, β) = (1, 0) and (0.75, −1.25),
    /// on 13×29×37 (odd everywhere), a k shorter than a vector (5) and a k
    /// of zero (C ← β·C). With β = 0, C starts as NaN: it must not be read.
    /// Rule: within 1e-4 absolute of the float64 product.
    func testGEMMAllTransposesAgainstNaive() throws {
        try eachDevice { device in
            for (m, n, k) in [(13, 29, 37), (1, 1, 1), (6, 17, 5), (9, 3, 0), (64, 10, 400)] {
                for transposeA in [false, true] {
                    for transposeB in [false, true] {
                        for (alpha, beta) in [(Float(1), Float(0)), (0.75, -1.25)] {
                            let shape = GEMMShape(
                                m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                                alpha: alpha, beta: beta)
                            let a = randomFloats(m * k, seed: 11)
                            let b = randomFloats(k * n, seed: 12)
                            let c0 = beta == 0 ? [Float](repeating: .nan, count: m * n) : randomFloats(m * n, seed: 13)
                            let c = try device.makeBuffer(c0)
                            try device.gemm(shape, a: try device.makeBuffer(a), b: try device.makeBuffer(b), c: c)
                            let expected = NaiveReference.gemm(shape, a: a, b: b, c: c0)
                            let diff = maxAbsoluteDifference(try device.floats(c), expected)
                            XCTAssertLessThanOrEqual(
                                diff, Self.forwardTolerance, "\(shape) α \(alpha) β \(beta): \(diff)")
                        }
                    }
                }
            }
        }
    }

    /// TinyConvNet's im2col products at batch 64 (the shapes of
    /// reference-figures.md). Rule: 1e-4 relative to the result's largest
    /// magnitude (k up to 43,264 terms).
    func testGEMMOnTinyConvNetShapes() throws {
        try eachDevice { device in
            for shape in [
                GEMMShape(m: 8, n: 43264, k: 9), GEMMShape(m: 16, n: 7744, k: 72),
                GEMMShape(m: 16, n: 72, k: 7744, transposeB: true),
                GEMMShape(m: 72, n: 7744, k: 16, transposeA: true),
                GEMMShape(m: 8, n: 9, k: 43264, transposeB: true),
            ] {
                let a = randomFloats(shape.m * shape.k, seed: 21)
                let b = randomFloats(shape.k * shape.n, seed: 22)
                let c = try device.makeBuffer(count: shape.m * shape.n, kind: .float32)
                try device.gemm(shape, a: try device.makeBuffer(a), b: try device.makeBuffer(b), c: c)
                let expected = NaiveReference.gemm(
                    shape, a: a, b: b, c: [Float](repeating: 0, count: shape.m * shape.n))
                let diff = maxRelativeToScale(try device.floats(c), expected)
                XCTAssertLessThanOrEqual(diff, Self.gradientTolerance, "\(shape): \(diff)")
            }
        }
    }

    // MARK: Convolution

    /// im2col is a pure copy (exact); col2im, its adjoint, sums at most
    /// kH·kW terms (forward rule, 1e-4 absolute).
    func testIm2colAndCol2im() throws {
        try eachDevice { device in
            for batch in Self.batches {
                for s in Self.convShapes(batch: batch) {
                    let input = randomFloats(s.inputCount, seed: 31)
                    let columns = try device.makeBuffer(count: s.patchSize * s.patchCount, kind: .float32)
                    try device.im2col(s, input: try device.makeBuffer(input), columns: columns)
                    XCTAssertEqual(
                        maxAbsoluteDifference(try device.floats(columns), NaiveReference.im2col(s, input: input)),
                        0, "im2col \(s)")
                    let columnValues = randomFloats(s.patchSize * s.patchCount, seed: 32)
                    let back = try device.makeBuffer([Float](repeating: .nan, count: s.inputCount))
                    try device.col2im(s, columns: try device.makeBuffer(columnValues), input: back)
                    let diff = maxAbsoluteDifference(
                        try device.floats(back), NaiveReference.col2im(s, columns: columnValues))
                    XCTAssertLessThanOrEqual(diff, Self.forwardTolerance, "col2im \(s): \(diff)")
                }
            }
        }
    }

    /// Forward: 1e-4 absolute. Outputs start as NaN so that any element the
    /// kernel fails to overwrite shows.
    func testConv2dForward() throws {
        try eachDevice { device in
            for batch in Self.batches {
                for s in Self.convShapes(batch: batch) {
                    let input = randomFloats(s.inputCount, seed: 41)
                    let weight = randomFloats(s.weightCount, scale: 0.5, seed: 42)
                    let output = try device.makeBuffer([Float](repeating: .nan, count: s.outputCount))
                    try device.conv2dForward(
                        s, input: try device.makeBuffer(input), weight: try device.makeBuffer(weight),
                        output: output)
                    let diff = maxAbsoluteDifference(
                        try device.floats(output),
                        NaiveReference.conv2dForward(s, input: input, weight: weight))
                    XCTAssertLessThanOrEqual(diff, Self.forwardTolerance, "conv2dForward \(s): \(diff)")
                }
            }
        }
    }

    /// Both gradients: 1e-4 relative to the tensor's largest magnitude.
    func testConv2dBackward() throws {
        try eachDevice { device in
            for batch in Self.batches {
                for s in Self.convShapes(batch: batch) {
                    let input = randomFloats(s.inputCount, seed: 51)
                    let weight = randomFloats(s.weightCount, scale: 0.5, seed: 52)
                    let gradOutput = randomFloats(s.outputCount, seed: 53)
                    let gradInput = try device.makeBuffer([Float](repeating: .nan, count: s.inputCount))
                    let gradWeight = try device.makeBuffer([Float](repeating: .nan, count: s.weightCount))
                    let gradOutputBuffer = try device.makeBuffer(gradOutput)
                    try device.conv2dBackwardData(
                        s, gradOutput: gradOutputBuffer, weight: try device.makeBuffer(weight),
                        gradInput: gradInput)
                    try device.conv2dBackwardWeight(
                        s, input: try device.makeBuffer(input), gradOutput: gradOutputBuffer,
                        gradWeight: gradWeight)
                    let dataDiff = maxRelativeToScale(
                        try device.floats(gradInput),
                        NaiveReference.conv2dBackwardData(s, gradOutput: gradOutput, weight: weight))
                    let weightDiff = maxRelativeToScale(
                        try device.floats(gradWeight),
                        NaiveReference.conv2dBackwardWeight(s, input: input, gradOutput: gradOutput))
                    XCTAssertLessThanOrEqual(dataDiff, Self.gradientTolerance, "conv2dBackwardData \(s): \(dataDiff)")
                    XCTAssertLessThanOrEqual(
                        weightDiff, Self.gradientTolerance, "conv2dBackwardWeight \(s): \(weightDiff)")
                }
            }
        }
    }

    // MARK: Elementwise and pooling

    /// ReLU forward exact; backward exact, with exact zeros in the output
    /// (the gradient passes only where output > 0).
    func testReLU() throws {
        try eachDevice { device in
            for count in [1, 1001, 64 * 8 * 26 * 26] {
                var input = randomFloats(count, seed: 61)
                for index in stride(from: 0, to: count, by: 7) { input[index] = 0 }
                let output = try device.makeBuffer(count: count, kind: .float32)
                try device.reluForward(count: count, input: try device.makeBuffer(input), output: output)
                let outputValues = try device.floats(output)
                XCTAssertEqual(maxAbsoluteDifference(outputValues, NaiveReference.reluForward(input)), 0)
                let gradOutput = randomFloats(count, seed: 62)
                let gradInput = try device.makeBuffer(count: count, kind: .float32)
                try device.reluBackward(
                    count: count, output: output, gradOutput: try device.makeBuffer(gradOutput),
                    gradInput: gradInput)
                XCTAssertEqual(
                    maxAbsoluteDifference(
                        try device.floats(gradInput),
                        NaiveReference.reluBackward(output: outputValues, gradOutput: gradOutput)), 0)
            }
        }
    }

    /// Max-pool on odd planes (the last row/column dropped) with many ties
    /// (values on a 0.5 grid): outputs and argmax exact, ties to the first in
    /// row-major order; backward exact (each gradient routed, the rest zero).
    func testMaxPool() throws {
        try eachDevice { device in
            for batch in Self.batches {
                for s in [
                    PoolShape(batch: batch, channels: 3, height: 7, width: 9),
                    PoolShape(batch: batch, channels: 8, height: 26, width: 26),
                    PoolShape(batch: batch, channels: 16, height: 11, width: 11),
                ] {
                    let input = randomFloats(s.inputCount, seed: 71).map { ($0 * 2).rounded() / 2 }
                    let output = try device.makeBuffer(count: s.outputCount, kind: .float32)
                    let argmax = try device.makeBuffer(count: s.outputCount, kind: .int32)
                    try device.maxPool2Forward(s, input: try device.makeBuffer(input), output: output, argmax: argmax)
                    let expected = NaiveReference.maxPool2Forward(s, input: input)
                    XCTAssertEqual(maxAbsoluteDifference(try device.floats(output), expected.output), 0, "\(s)")
                    XCTAssertEqual(try device.int32s(argmax), expected.argmax, "argmax \(s)")
                    let gradOutput = randomFloats(s.outputCount, seed: 72)
                    let gradInput = try device.makeBuffer([Float](repeating: .nan, count: s.inputCount))
                    try device.maxPool2Backward(
                        s, gradOutput: try device.makeBuffer(gradOutput), argmax: argmax,
                        gradInput: gradInput)
                    let expectedGrad = NaiveReference.maxPool2Backward(
                        s, gradOutput: gradOutput, argmax: expected.argmax)
                    XCTAssertEqual(
                        maxAbsoluteDifference(try device.floats(gradInput), expectedGrad), 0, "backward \(s)")
                }
            }
        }
    }

    // MARK: Linear

    /// Forward within 1e-4 absolute; the three gradients within 1e-4 of
    /// their scale; gradInput nil skips it (the buffer keeps its contents).
    func testLinear() throws {
        try eachDevice { device in
            for s in [
                LinearShape(batch: 1, inFeatures: 37, outFeatures: 5),
                LinearShape(batch: 64, inFeatures: 400, outFeatures: 10),
                LinearShape(batch: 3, inFeatures: 7, outFeatures: 1),
                LinearShape(batch: 64, inFeatures: 29, outFeatures: 11),
            ] {
                let input = randomFloats(s.batch * s.inFeatures, seed: 81)
                let weight = randomFloats(s.outFeatures * s.inFeatures, scale: 0.2, seed: 82)
                let bias = randomFloats(s.outFeatures, seed: 83)
                let (inputBuffer, weightBuffer) = (try device.makeBuffer(input), try device.makeBuffer(weight))
                let output = try device.makeBuffer([Float](repeating: .nan, count: s.batch * s.outFeatures))
                try device.linearForward(
                    s, input: inputBuffer, weight: weightBuffer, bias: try device.makeBuffer(bias),
                    output: output)
                let forwardDiff = maxAbsoluteDifference(
                    try device.floats(output),
                    NaiveReference.linearForward(s, input: input, weight: weight, bias: bias))
                XCTAssertLessThanOrEqual(forwardDiff, Self.forwardTolerance, "linearForward \(s)")

                let gradOutput = randomFloats(s.batch * s.outFeatures, seed: 84)
                let expected = NaiveReference.linearBackward(s, input: input, weight: weight, gradOutput: gradOutput)
                let gradInput = try device.makeBuffer([Float](repeating: .nan, count: s.batch * s.inFeatures))
                let gradWeight = try device.makeBuffer([Float](repeating: .nan, count: s.outFeatures * s.inFeatures))
                let gradBias = try device.makeBuffer([Float](repeating: .nan, count: s.outFeatures))
                let gradOutputBuffer = try device.makeBuffer(gradOutput)
                try device.linearBackward(
                    s, input: inputBuffer, weight: weightBuffer, gradOutput: gradOutputBuffer,
                    gradInput: gradInput, gradWeight: gradWeight, gradBias: gradBias)
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try device.floats(gradInput), expected.gradInput),
                    Self.gradientTolerance, "gradInput \(s)")
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try device.floats(gradWeight), expected.gradWeight),
                    Self.gradientTolerance, "gradWeight \(s)")
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try device.floats(gradBias), expected.gradBias),
                    Self.gradientTolerance, "gradBias \(s)")

                let untouched = try device.makeBuffer([Float](repeating: 7, count: s.batch * s.inFeatures))
                try device.linearBackward(
                    s, input: inputBuffer, weight: weightBuffer, gradOutput: gradOutputBuffer,
                    gradInput: nil, gradWeight: gradWeight, gradBias: gradBias)
                XCTAssertEqual(try device.floats(untouched), [Float](repeating: 7, count: s.batch * s.inFeatures))
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try device.floats(gradWeight), expected.gradWeight),
                    Self.gradientTolerance, "gradWeight without gradInput \(s)")
            }
        }
    }

    // MARK: Loss

    /// Losses within 1e-4 absolute, correct flags exact (with tied logits:
    /// the first largest wins), gradients within 1e-4 of their scale.
    func testSoftmaxCrossEntropy() throws {
        try eachDevice { device in
            for (batch, classes) in [(1, 10), (64, 10), (5, 7), (3, 1)] {
                var logits = randomFloats(batch * classes, scale: 4, seed: 91)
                if classes > 2 { logits[1] = logits[0] }  // a tie between classes 0 and 1 of sample 0
                var labels = (0..<batch).map { Int32(($0 * 7 + 3) % classes) }
                labels[0] = classes > 1 ? 1 : 0
                let grad = try device.makeBuffer(count: batch * classes, kind: .float32)
                let perSample = try device.makeBuffer(count: 2 * batch, kind: .float32)
                try device.softmaxCrossEntropy(
                    batch: batch, classes: classes, logits: try device.makeBuffer(logits),
                    labels: try device.makeBuffer(labels), gradLogits: grad, perSample: perSample)
                let expected = NaiveReference.softmaxCrossEntropy(
                    batch: batch, classes: classes, logits: logits, labels: labels)
                let values = try device.floats(perSample)
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(values[..<batch], expected.loss), Self.forwardTolerance,
                    "loss \(batch)×\(classes)")
                XCTAssertEqual(values[batch...].map(Double.init), expected.correct, "correct \(batch)×\(classes)")
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try device.floats(grad), expected.gradLogits),
                    Self.gradientTolerance, "gradient \(batch)×\(classes)")
            }
        }
    }

    // MARK: Optimisers

    /// Three steps of SGD with momentum and of Adam against float64 updates.
    /// Rule: the update itself (parameter after − before) within 1e-4 of the
    /// tensor's largest float64 update, and the optimiser state within 1e-4 of
    /// its scale. (Adam moves a parameter by ≈ lr per step, 3e-3 here, so an
    /// error relative to |parameter| would hide a percent-sized error in the
    /// update.) Adam's parameters start at scale 0.1, like trained weights:
    /// storing p in float32 then costs ≤ 3 half-ulps ≈ 1.1e-8, about 5e-6 of
    /// the update. Five tensors of assorted sizes (counts that are not
    /// multiples of four, more tensors than one OpenCL launch takes), each
    /// against its own float64 reference.
    func testOptimisers() throws {
        let counts = [1, 1001, 6, 72, 1152]
        // Steps 0, 1, 2: plain momentum, Nesterov, Nesterov with weight decay.
        let sgdSteps = [
            SGDStep(learningRate: 0.05, momentum: 0.9), SGDStep(learningRate: 0.05, momentum: 0.9, nesterov: true),
            SGDStep(learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01),
        ]
        try eachDevice { device in
            var parameters = counts.enumerated().map { randomFloats($1, seed: 101 + UInt64($0)).map(Double.init) }
            let sgdStart = parameters
            var velocities = counts.enumerated().map {
                randomFloats($1, scale: 0.1, seed: 201 + UInt64($0)).map(Double.init)
            }
            let p = try parameters.map { try device.makeBuffer($0.map(Float.init)) }
            let v = try velocities.map { try device.makeBuffer($0.map(Float.init)) }
            for step in 0..<3 {
                let gradients = counts.enumerated().map { randomFloats($1, seed: 300 + 10 * UInt64(step) + UInt64($0)) }
                let g = try gradients.map { try device.makeBuffer($0) }
                try device.sgdMomentumStep(
                    counts.indices.map {
                        MomentumTensor(count: counts[$0], parameter: p[$0], gradient: g[$0], velocity: v[$0])
                    }, step: sgdSteps[step])
                for i in counts.indices {
                    (parameters[i], velocities[i]) = NaiveReference.sgdMomentumStep(
                        parameter: parameters[i], gradient: gradients[i].map(Double.init), velocity: velocities[i],
                        learningRate: Double(sgdSteps[step].learningRate), momentum: Double(sgdSteps[step].momentum),
                        nesterov: sgdSteps[step].nesterov, weightDecay: Double(sgdSteps[step].weightDecay))
                }
            }
            for i in counts.indices {
                XCTAssertLessThanOrEqual(
                    updateError(try device.floats(p[i]), parameters[i], start: sgdStart[i]),
                    Self.gradientTolerance, "SGD update \(i)")
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try device.floats(v[i]), velocities[i]), Self.gradientTolerance,
                    "SGD velocity \(i)")
            }

            var aParameters = counts.enumerated().map {
                randomFloats($1, scale: 0.1, seed: 111 + UInt64($0)).map(Double.init)
            }
            let adamStart = aParameters
            var m = counts.map { [Double](repeating: 0, count: $0) }
            var second = m
            let ap = try aParameters.map { try device.makeBuffer($0.map(Float.init)) }
            let am = try counts.map { try device.makeBuffer(count: $0, kind: .float32) }
            let av = try counts.map { try device.makeBuffer(count: $0, kind: .float32) }
            for t in 1...3 {
                let gradients = counts.enumerated().map { randomFloats($1, seed: 400 + 10 * UInt64(t) + UInt64($0)) }
                let g = try gradients.map { try device.makeBuffer($0) }
                let step = AdamStep(learningRate: 1e-3, step: t)
                try device.adamStep(
                    counts.indices.map {
                        AdamTensor(count: counts[$0], parameter: ap[$0], gradient: g[$0], m: am[$0], v: av[$0])
                    }, step: step)
                for i in counts.indices {
                    (aParameters[i], m[i], second[i]) = NaiveReference.adamStep(
                        parameter: aParameters[i], gradient: gradients[i].map(Double.init), m: m[i], v: second[i],
                        step: step)
                }
            }
            for i in counts.indices {
                XCTAssertLessThanOrEqual(
                    updateError(try device.floats(ap[i]), aParameters[i], start: adamStart[i]),
                    Self.gradientTolerance, "Adam update \(i)")
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try device.floats(am[i]), m[i]), Self.gradientTolerance,
                    "Adam m \(i)")
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try device.floats(av[i]), second[i]), Self.gradientTolerance,
                    "Adam v \(i)")
            }
        }
    }

    /// max |(after − start) − (expected − start)| / max |expected − start|:
    /// a device's update against the float64 update from the same start.
    private func updateError(_ after: [Float], _ expected: [Double], start: [Double]) -> Double {
        maxRelativeToScale(zip(after, start).map { Double($0) - $1 }, zip(expected, start).map { $0 - $1 })
    }
}
