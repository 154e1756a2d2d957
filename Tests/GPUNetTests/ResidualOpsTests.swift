import GPUNet
import TestSupport
import XCTest

/// The layers of residual networks (the general convolution, batch
/// normalisation, the residual sum, the global average pool) on every test
/// device (the host with and without its AVX2 kernels, each OpenCL device
/// in each kernel family) against the float64 loops of
/// `NaiveReferenceResNet.swift`, at odd shapes: batch 1, batches that do not
/// fill a chunk or tile, 1×1 maps, stride 2 on odd sizes, 1×1/3×3/5×5
/// kernels with padding 0, 1, 2. Rules: forward outputs (running statistics
/// included) within 1e-4 absolute; gradients within 1e-4 of the reference
/// tensor's largest magnitude.
final class ResidualOpsTests: XCTestCase {
    /// (batch, in, out, height, width, kernel, stride, padding).
    static let convShapes: [Conv2dShape] = [
        (1, 3, 5, 7, 9, 3, 1, 1), (3, 4, 6, 9, 7, 3, 2, 1), (2, 5, 17, 6, 5, 5, 1, 2), (2, 6, 9, 7, 7, 1, 2, 0),
        (1, 2, 3, 1, 1, 3, 1, 1), (3, 16, 16, 5, 5, 3, 1, 1), (2, 9, 4, 1, 1, 1, 1, 0), (5, 3, 2, 8, 6, 5, 2, 2),
        (2, 4, 8, 6, 6, 3, 2, 0), (1, 1, 1, 4, 4, 1, 1, 0), (3, 17, 33, 7, 7, 3, 1, 1),
        // 67 images: chunks of two images in the cpu family's weight gradient, the last one partial.
        (67, 2, 3, 4, 3, 3, 2, 1),
        // 19 images of 5×5, stride 1: the host's products take several images at a time, the last group partial.
        (19, 3, 4, 5, 5, 3, 1, 1),
        // 90 images of 6×6, stride 1: the host's wide-grid weight gradient takes 8 images a call, 11 a task.
        (90, 4, 7, 6, 6, 3, 1, 1),
        // Stride 3: three stride-phases a side, the last ones shorter.
        (2, 3, 5, 10, 11, 3, 3, 1),
    ].map {
        Conv2dShape(
            batch: $0.0, inChannels: $0.1, outChannels: $0.2, height: $0.3, width: $0.4, kernelHeight: $0.5,
            kernelWidth: $0.5, stride: $0.6, padding: $0.7)
    }

    /// (batch, channels, height, width): batch 1, 1×1 maps, 16 channels, and
    /// 715 values per channel (three chunks of the OpenCL per-channel sums,
    /// the last partial, chunks that end inside an image's plane); 24
    /// images of 28×28 and 3 of 17×241, the cpu family's batch
    /// normalisation in three chunks of eight images and in two of two
    /// images and one (``OpenCLDevice/batchNormChunks(_:)``).
    static let mapShapes: [(Int, Int, Int, Int)] = [
        (4, 3, 5, 3), (1, 5, 3, 3), (7, 2, 1, 1), (2, 16, 4, 4), (5, 3, 11, 13), (24, 2, 28, 28), (3, 1, 17, 241),
    ]

    func testConvolutionMatchesTheReferenceOnEveryDevice() throws {
        var worst = (forward: 0.0, data: 0.0, weight: 0.0, bias: 0.0)
        for device in try testDevices() {
            let on = device.info.summary
            for (index, s) in Self.convShapes.enumerated() {
                let seed = UInt64(100 + 10 * index)
                let input = randomFloats(s.inputCount, seed: seed)
                let weight = randomFloats(s.weightCount, scale: 0.5, seed: seed + 1)
                let bias = randomFloats(s.outChannels, scale: 0.5, seed: seed + 2)
                let gradOutput = randomFloats(s.outputCount, seed: seed + 3)
                let expected = NaiveReference.conv2dForward(s, input: input, weight: weight, bias: bias)
                let expectedPlain = NaiveReference.conv2dForward(s, input: input, weight: weight)
                let expectedData = NaiveReference.conv2dBackwardData(s, gradOutput: gradOutput, weight: weight)
                let expectedWeight = NaiveReference.conv2dBackwardWeight(s, input: input, gradOutput: gradOutput)

                let d = device
                let x = try d.makeBuffer(input)
                let w = try d.makeBuffer(weight)
                let g = try d.makeBuffer(gradOutput)
                let out = try d.makeBuffer(count: s.outputCount, kind: .float32)
                try d.conv2dForward(s, input: x, weight: w, bias: try d.makeBuffer(bias), output: out)
                let forward = maxAbsoluteDifference(try d.floats(out), expected)
                try d.conv2dForward(s, input: x, weight: w, bias: nil, output: out)
                let plain = maxAbsoluteDifference(try d.floats(out), expectedPlain)
                let gradInput = try d.makeBuffer(count: s.inputCount, kind: .float32)
                try d.conv2dBackwardData(s, gradOutput: g, weight: w, gradInput: gradInput)
                let data = maxRelativeToScale(try d.floats(gradInput), expectedData)
                let gradWeight = try d.makeBuffer(count: s.weightCount, kind: .float32)
                let gradBias = try d.makeBuffer(count: s.outChannels, kind: .float32)
                try d.conv2dBackwardWeight(s, input: x, gradOutput: g, gradWeight: gradWeight, gradBias: gradBias)
                let weightDiff = maxRelativeToScale(try d.floats(gradWeight), expectedWeight.weight)
                let biasDiff = maxRelativeToScale(try d.floats(gradBias), expectedWeight.bias)
                // Without a bias gradient the weight gradient is the same.
                try d.conv2dBackwardWeight(s, input: x, gradOutput: g, gradWeight: gradWeight, gradBias: nil)
                let weightOnly = maxRelativeToScale(try d.floats(gradWeight), expectedWeight.weight)

                XCTAssertLessThanOrEqual(forward, 1e-4, "forward with bias \(s) on \(on)")
                XCTAssertLessThanOrEqual(plain, 1e-4, "forward without bias \(s) on \(on)")
                XCTAssertLessThanOrEqual(data, 1e-4, "data gradient \(s) on \(on)")
                XCTAssertLessThanOrEqual(weightDiff, 1e-4, "weight gradient \(s) on \(on)")
                XCTAssertLessThanOrEqual(weightOnly, 1e-4, "weight gradient without bias \(s) on \(on)")
                XCTAssertLessThanOrEqual(biasDiff, 1e-4, "bias gradient \(s) on \(on)")
                worst.forward = max(worst.forward, forward, plain)
                worst.data = max(worst.data, data)
                worst.weight = max(worst.weight, weightDiff, weightOnly)
                worst.bias = max(worst.bias, biasDiff)
            }
        }
        print(
            "ResidualOpsTests conv: largest differences forward \(worst.forward) (abs), data \(worst.data),"
                + " weight \(worst.weight), bias \(worst.bias) (relative to the tensor's largest magnitude)")
    }

    func testBatchNormMatchesTheReferenceOnEveryDevice() throws {
        var worst = (forward: 0.0, running: 0.0, gradients: 0.0)
        for device in try testDevices() {
            let on = device.info.summary
            for (index, m) in Self.mapShapes.enumerated() {
                let s = BatchNormShape(batch: m.0, channels: m.1, height: m.2, width: m.3)
                let c = BatchNormCase(s, seed: UInt64(300 + 10 * index))
                let (input, gamma, beta) = (c.input, c.gamma, c.beta)
                let (runningMean, runningVar) = (c.runningMean, c.runningVar)
                let gradOutput = c.gradOutput
                for training in [true, false] {
                    let label = "\(s) \(training ? "training" : "eval") on \(on)"
                    let reference = NaiveReference.batchNormForward(
                        s, input: input, gamma: gamma, beta: beta, runningMean: runningMean,
                        runningVar: runningVar, training: training)
                    let gradients = NaiveReference.batchNormBackward(
                        s, input: input, gamma: gamma, gradOutput: gradOutput, mean: reference.mean,
                        variance: reference.variance, training: training)
                    let result = try runBatchNorm(
                        on: device, s, input: input, gamma: gamma, beta: beta, runningMean: runningMean,
                        runningVar: runningVar, gradOutput: gradOutput, training: training)
                    let forward = max(
                        maxAbsoluteDifference(result[0], reference.output),
                        maxAbsoluteDifference(result[1], reference.mean + reference.invStd))
                    let running = max(
                        maxAbsoluteDifference(result[2], reference.runningMean),
                        maxAbsoluteDifference(result[3], reference.runningVar))
                    let grads = [
                        maxRelativeToScale(result[4], gradients.input),
                        maxRelativeToScale(result[5], gradients.gamma),
                        maxRelativeToScale(result[6], gradients.beta),
                    ]
                    XCTAssertLessThanOrEqual(forward, 1e-4, "forward and saved statistics \(label)")
                    XCTAssertLessThanOrEqual(running, 1e-4, "running statistics \(label)")
                    XCTAssertLessThanOrEqual(grads.max()!, 1e-4, "dx, dγ, dβ \(grads) \(label)")
                    if !training {
                        XCTAssertEqual(result[2], runningMean, "eval leaves the running mean \(label)")
                        XCTAssertEqual(result[3], runningVar, "eval leaves the running variance \(label)")
                    }
                    worst.forward = max(worst.forward, forward)
                    worst.running = max(worst.running, running)
                    worst.gradients = max(worst.gradients, grads.max()!)
                    // Fixed-order sums: a second run gives the same bits.
                    let again = try runBatchNorm(
                        on: device, s, input: input, gamma: gamma, beta: beta, runningMean: runningMean,
                        runningVar: runningVar, gradOutput: gradOutput, training: training)
                    XCTAssertEqual(again, result, "a second run differs \(label)")
                }
            }
            // One value per channel cannot be normalised in training (PyTorch refuses it too).
            let single = BatchNormShape(batch: 1, channels: 2, height: 1, width: 1)
            XCTAssertThrowsError(
                try runBatchNorm(
                    on: device, single, input: [1, 2], gamma: [1, 1], beta: [0, 0], runningMean: [0, 0],
                    runningVar: [1, 1], gradOutput: [1, 1], training: true), "N = 1 in training on \(on)")
        }
        print(
            "ResidualOpsTests batchnorm: largest differences forward \(worst.forward), running statistics"
                + " \(worst.running) (abs), gradients \(worst.gradients) (relative)")
    }

    /// Output, saved (μ then σ), running mean, running variance, dx, dγ, dβ.
    func runBatchNorm(
        on d: any Device, _ s: BatchNormShape, input: [Float], gamma: [Float], beta: [Float],
        runningMean: [Float], runningVar: [Float], gradOutput: [Float], training: Bool
    ) throws -> [[Float]] {
        let x = try d.makeBuffer(input)
        let g = try d.makeBuffer(gamma)
        let rm = try d.makeBuffer(runningMean)
        let rv = try d.makeBuffer(runningVar)
        let saved = try d.makeBuffer(count: 2 * s.channels, kind: .float32)
        let y = try d.makeBuffer(count: s.count, kind: .float32)
        try d.batchNormForward(
            s, input: x, gamma: g, beta: try d.makeBuffer(beta), runningMean: rm, runningVar: rv, saved: saved,
            output: y, training: training)
        let dx = try d.makeBuffer(count: s.count, kind: .float32)
        let dg = try d.makeBuffer(count: s.channels, kind: .float32)
        let db = try d.makeBuffer(count: s.channels, kind: .float32)
        try d.batchNormBackward(
            s, input: x, gamma: g, saved: saved, gradOutput: try d.makeBuffer(gradOutput), gradInput: dx,
            gradGamma: dg, gradBeta: db, training: training)
        return try [y, saved, rm, rv, dx, dg, db].map { try d.floats($0) }
    }

    func testResidualAddAndGlobalAveragePoolMatchTheReferenceOnEveryDevice() throws {
        for device in try testDevices() {
            let on = device.info.summary
            for (index, m) in (Self.mapShapes + [(3, 5, 3, 7)]).enumerated() {
                let s = FeatureMapShape(batch: m.0, channels: m.1, height: m.2, width: m.3)
                let seed = UInt64(500 + 10 * index)
                let a = randomFloats(s.count, seed: seed)
                let b = randomFloats(s.count, seed: seed + 1)
                let gradPooled = randomFloats(s.batch * s.channels, seed: seed + 2)
                let d = device
                let (ba, bb) = (try d.makeBuffer(a), try d.makeBuffer(b))
                let sum = try d.makeBuffer(count: s.count, kind: .float32)
                try d.residualAdd(count: s.count, ba, bb, output: sum)
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(try d.floats(sum), NaiveReference.residualAdd(a, b)), 1e-6,
                    "residualAdd \(s) on \(on)")
                // In place: the output is the first input.
                try d.residualAdd(count: s.count, ba, bb, output: ba)
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(try d.floats(ba), NaiveReference.residualAdd(a, b)), 1e-6,
                    "residualAdd in place \(s) on \(on)")
                let pooled = try d.makeBuffer(count: s.batch * s.channels, kind: .float32)
                try d.globalAveragePoolForward(s, input: bb, output: pooled)
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(try d.floats(pooled), NaiveReference.globalAveragePoolForward(s, input: b)),
                    1e-4, "globalAveragePoolForward \(s) on \(on)")
                let gradInput = try d.makeBuffer(count: s.count, kind: .float32)
                try d.globalAveragePoolBackward(s, gradOutput: try d.makeBuffer(gradPooled), gradInput: gradInput)
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(
                        try d.floats(gradInput), NaiveReference.globalAveragePoolBackward(s, gradOutput: gradPooled)),
                    1e-4, "globalAveragePoolBackward \(s) on \(on)")
            }
        }
    }

    /// A stride-1, unpadded Conv2dShape gives the numbers of the ConvShape
    /// operations it converts from (both held to 1e-4 of the same reference).
    func testAStrideOneShapeAgreesWithTheStrideOneOperations() throws {
        let old = ConvShape(batch: 2, inChannels: 3, outChannels: 5, height: 7, width: 6)
        let s = Conv2dShape(old)
        XCTAssertEqual(s.outHeight, old.outHeight)
        XCTAssertEqual(s.outWidth, old.outWidth)
        let input = randomFloats(s.inputCount, seed: 1)
        let weight = randomFloats(s.weightCount, seed: 2)
        for d in try testDevices() {
            let (x, w) = (try d.makeBuffer(input), try d.makeBuffer(weight))
            let a = try d.makeBuffer(count: s.outputCount, kind: .float32)
            let b = try d.makeBuffer(count: s.outputCount, kind: .float32)
            try d.conv2dForward(old, input: x, weight: w, output: a)
            try d.conv2dForward(s, input: x, weight: w, bias: nil, output: b)
            XCTAssertLessThanOrEqual(
                maxAbsoluteDifference(try d.floats(a), try d.floats(b)), 1e-4, "on \(d.info.summary)")
        }
    }

    /// The references hold together: ⟨conv(x), g⟩ = ⟨x, data(g)⟩ = ⟨w, weight(g)⟩
    /// + ⟨bias, Σg⟩ (the forward is bilinear in (x, w) plus the bias), and
    /// BatchNorm's chain-rule gradient matches central differences of
    /// L = Σ y·g in float64 (step 1e-6, within 1e-6 relative).
    func testReferencesAreAdjointAndMatchFiniteDifferences() {
        for s in Self.convShapes {
            let x = randomFloats(s.inputCount, seed: 7).map(Double.init)
            let w = randomFloats(s.weightCount, seed: 8).map(Double.init)
            let bias = randomFloats(s.outChannels, seed: 9).map(Double.init)
            let g = randomFloats(s.outputCount, seed: 10).map(Double.init)
            let y = NaiveReference.conv2dForward(s, input: x, weight: w, bias: bias)
            let yg = zip(y, g).reduce(0) { $0 + $1.0 * $1.1 }
            let dx = NaiveReference.conv2dBackwardData(s, gradOutput: g, weight: w)
            let (dw, db) = NaiveReference.conv2dBackwardWeight(s, input: x, gradOutput: g)
            let plain = NaiveReference.conv2dForward(s, input: x, weight: w)
            let plainG = zip(plain, g).reduce(0) { $0 + $1.0 * $1.1 }
            let xdx = zip(x, dx).reduce(0) { $0 + $1.0 * $1.1 }
            let wdw = zip(w, dw).reduce(0) { $0 + $1.0 * $1.1 }
            let bdb = zip(bias, db).reduce(0) { $0 + $1.0 * $1.1 }
            XCTAssertEqual(plainG, xdx, accuracy: 1e-9 * max(1, abs(plainG)), "data adjoint \(s)")
            XCTAssertEqual(plainG, wdw, accuracy: 1e-9 * max(1, abs(plainG)), "weight adjoint \(s)")
            XCTAssertEqual(yg, wdw + bdb, accuracy: 1e-9 * max(1, abs(yg)), "bias term \(s)")
        }
        let s = BatchNormShape(batch: 3, channels: 2, height: 2, width: 3)
        let x = randomFloats(s.count, seed: 11).map { Double($0) * 2 + 0.5 }
        let gamma: [Double] = [1.5, 0.75]
        let beta: [Double] = [0.25, -0.5]
        let g = randomFloats(s.count, seed: 12).map(Double.init)
        func loss(_ x: [Double]) -> Double {
            let y = NaiveReference.batchNormForward(
                s, input: x, gamma: gamma, beta: beta, runningMean: [0, 0], runningVar: [1, 1], training: true)
            return zip(y.output, g).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let forward = NaiveReference.batchNormForward(
            s, input: x, gamma: gamma, beta: beta, runningMean: [0, 0], runningVar: [1, 1], training: true)
        let analytic = NaiveReference.batchNormBackward(
            s, input: x, gamma: gamma, gradOutput: g, mean: forward.mean, variance: forward.variance, training: true)
        let h = 1e-6
        var numeric = [Double](repeating: 0, count: s.count)
        for i in 0..<s.count {
            var plus = x
            var minus = x
            plus[i] += h
            minus[i] -= h
            numeric[i] = (loss(plus) - loss(minus)) / (2 * h)
        }
        XCTAssertLessThanOrEqual(
            maxRelativeToScale(analytic.input, numeric), 1e-6, "BatchNorm dx vs central differences")
    }

    /// The gpu family's tiled launches at batch 128 for resnet8's
    /// convolutions (1-channel 28×28 input): every launch whose result has
    /// at least 16,384 elements gets at least 16,384 work-items, and the
    /// weight gradient (a few thousand weights) gets them by chunking its
    /// sum. The figures come from the function the launches use; on one
    /// OpenCL device at batch 2 the launch log is checked against it.
    func testTiledLaunchSizesForResNet8AtBatch128() throws {
        func conv(_ c: Int, _ o: Int, _ side: Int, _ k: Int, _ stride: Int, _ pad: Int) -> Conv2dShape {
            Conv2dShape(
                batch: 128, inChannels: c, outChannels: o, height: side, width: side, kernelHeight: k,
                kernelWidth: k, stride: stride, padding: pad)
        }
        let shapes: [(String, Conv2dShape)] = [
            ("conv1 1→16 28×28", conv(1, 16, 28, 3, 1, 1)), ("layer1 16→16 28×28", conv(16, 16, 28, 3, 1, 1)),
            ("layer2.0.conv1 16→32 s2 28→14", conv(16, 32, 28, 3, 2, 1)),
            ("layer2.0.downsample 1×1 s2", conv(16, 32, 28, 1, 2, 0)),
            ("layer2 32→32 14×14", conv(32, 32, 14, 3, 1, 1)),
            ("layer3.0.conv1 32→64 s2 14→7", conv(32, 64, 14, 3, 2, 1)),
            ("layer3.0.downsample 1×1 s2", conv(32, 64, 14, 1, 2, 0)), ("layer3 64→64 7×7", conv(64, 64, 7, 3, 1, 1)),
        ]
        for (name, s) in shapes {
            let plan = OpenCLDevice.tiledLaunch(s)
            print(
                "tiled launch at batch 128, \(name): forward \(plan.forwardItems) (outputs \(s.outputCount)),"
                    + " data \(plan.dataItems) (inputs \(s.inputCount)), weight \(plan.weightItems)"
                    + " (\(s.weightCount) weights × \(plan.weightChunks) chunks)")
            XCTAssertGreaterThanOrEqual(plan.forwardItems, min(16_384, s.outputCount), name)
            XCTAssertGreaterThanOrEqual(plan.dataItems, min(16_384, s.inputCount), name)
            XCTAssertGreaterThanOrEqual(plan.weightItems, 16_384, name)
        }
        // The launch log of a gpu-family device agrees with the plan.
        let gpu = try OpenCLTestDevice.all().first { $0.kernelFamily == .gpu }
        guard let device = gpu else { return }
        let s = conv(3, 5, 9, 3, 2, 1).with(batch: 2)
        let plan = OpenCLDevice.tiledLaunch(s)
        device.launchLog = []
        let x = try device.makeBuffer(randomFloats(s.inputCount, seed: 1))
        let w = try device.makeBuffer(randomFloats(s.weightCount, seed: 2))
        let g = try device.makeBuffer(randomFloats(s.outputCount, seed: 3))
        let scratch = try device.makeBuffer(count: max(s.inputCount, s.outputCount, s.weightCount), kind: .float32)
        try device.conv2dForward(s, input: x, weight: w, bias: nil, output: scratch)
        try device.conv2dBackwardData(s, gradOutput: g, weight: w, gradInput: scratch)
        try device.conv2dBackwardWeight(s, input: x, gradOutput: g, gradWeight: scratch, gradBias: nil)
        try device.finish()
        let log = Dictionary((device.launchLog ?? []).map { ($0.kernel, $0.globalSize) }) { first, _ in first }
        device.launchLog = nil
        XCTAssertEqual(log["gpu_conv2d_tiled_forward"], plan.forwardItems)
        XCTAssertEqual(log["gpu_conv2d_tiled_data"], plan.dataItems)
        XCTAssertEqual(log["gpu_conv2d_tiled_weight"], plan.weightItems)
    }
}

extension Conv2dShape {
    fileprivate func with(batch: Int) -> Conv2dShape {
        var s = self
        s.batch = batch
        return s
    }
}
