import GPUNet
import TestSupport
import XCTest

/// The fused operations of OpenCLDevice+FusedLayers.swift (conv1's forward
/// staging conv2's operands, the linear layer with the loss, the linear
/// backward with conv2's data gradient) on a conv–pool–conv–pool–linear–loss
/// chain at odd shapes (batch 1 and 3, linear inputs that are and are not
/// multiples of 8, each vector width 1/4/8/16 of conv2's input channels, the
/// staged and the fallback forms), on each OpenCL test device and family,
/// against the float64 chain of `NaiveReference`. Rules: forward outputs
/// within 1e-4 absolute, gradients within 1e-4 of the reference tensor's
/// largest magnitude (float32 sums in another order); the staged copies
/// (channels-last pooled output, patch-major weights) equal their sources
/// bit for bit, since they are copies.
final class FusedLayersTests: XCTestCase {
    /// One chain's shapes: conv1 → pool → ReLU → conv2 → pool → ReLU → linear → loss.
    struct Chain {
        let conv1: ConvShape, conv2: ConvShape, fc: LinearShape
        var pool1: PoolShape {
            PoolShape(batch: conv1.batch, channels: conv1.outChannels, height: conv1.outHeight, width: conv1.outWidth)
        }
        var pool2: PoolShape {
            PoolShape(batch: conv2.batch, channels: conv2.outChannels, height: conv2.outHeight, width: conv2.outWidth)
        }

        /// (batch, conv1 in, conv1 out, height, width, conv2 out, classes), 3×3 kernels.
        init(_ batch: Int, _ in1: Int, _ out1: Int, _ height: Int, _ width: Int, _ out2: Int, _ classes: Int) {
            conv1 = ConvShape(batch: batch, inChannels: in1, outChannels: out1, height: height, width: width)
            let p = (height - 2) / 2
            let q = (width - 2) / 2
            conv2 = ConvShape(batch: batch, inChannels: out1, outChannels: out2, height: p, width: q)
            fc = LinearShape(batch: batch, inFeatures: out2 * ((p - 2) / 2) * ((q - 2) / 2), outFeatures: classes)
        }

        /// The inputs: images, conv1 and conv2 weights, fc weight and bias, labels.
        func inputs(seed: UInt64) -> (
            input: [Float], w1: [Float], w2: [Float], fcW: [Float], fcB: [Float], labels: [Int32]
        ) {
            (
                randomFloats(conv1.inputCount, seed: seed), randomFloats(conv1.weightCount, scale: 0.5, seed: seed + 1),
                randomFloats(conv2.weightCount, scale: 0.5, seed: seed + 2),
                randomFloats(fc.outFeatures * fc.inFeatures, scale: 0.5, seed: seed + 3),
                randomFloats(fc.outFeatures, scale: 0.1, seed: seed + 4),
                (0..<fc.batch).map { Int32((7 * $0 + 3) % fc.outFeatures) }
            )
        }
    }

    /// conv1 out 8 (rows3x3 staging in its launch, conv2 lanes 8, fc in 15:
    /// a tail), out 4 (lanes 4, batch 3), out 3 (lanes 4 ≠ 3: the staging's
    /// own launches), out 1 (lanes 1), out 9 (the general forward, lanes 16,
    /// fc in 16: whole float8 groups).
    static let chains = [
        Chain(1, 1, 8, 11, 20, 5, 3), Chain(3, 2, 4, 10, 19, 3, 10), Chain(2, 1, 3, 11, 21, 2, 4),
        Chain(2, 1, 1, 11, 19, 4, 5), Chain(1, 2, 9, 12, 12, 16, 10),
    ]

    /// The chain's forward and backward on `device`: on OpenCL through the
    /// fused operations, elsewhere through the separate ones. Returns, in
    /// order: pooled1, pooled2, logits, per-sample losses and correctness,
    /// ∂logits, ∂pooled2 (the linear input's gradient), ∂fc.weight,
    /// ∂fc.bias, ∂conv2.weight, ∂pooled1, ∂conv1.weight; on OpenCL also the staged lanes
    /// and patch-major weights.
    static func run(_ c: Chain, on d: any Device, seed: UInt64 = 51) throws -> [[Float]] {
        let x = c.inputs(seed: seed)
        let input = try d.makeBuffer(x.input)
        let w1 = try d.makeBuffer(x.w1)
        let w2 = try d.makeBuffer(x.w2)
        let fcW = try d.makeBuffer(x.fcW)
        let fcB = try d.makeBuffer(x.fcB)
        let labels = try d.makeBuffer(x.labels)
        func floats(_ n: Int) throws -> Buffer { try d.makeBuffer(count: n, kind: .float32) }
        let pooled1 = try floats(c.pool1.outputCount)
        let pooled2 = try floats(c.pool2.outputCount)
        let argmax1 = try d.makeBuffer(count: c.pool1.outputCount, kind: .int32)
        let argmax2 = try d.makeBuffer(count: c.pool2.outputCount, kind: .int32)
        let logits = try floats(c.fc.batch * c.fc.outFeatures)
        let gradLogits = try floats(c.fc.batch * c.fc.outFeatures)
        let perSample = try floats(2 * c.fc.batch)
        let gradPooled2 = try floats(c.pool2.outputCount)
        let gradPooled1 = try floats(c.pool1.outputCount)
        let gradFcW = try floats(c.fc.outFeatures * c.fc.inFeatures)
        let gradFcB = try floats(c.fc.outFeatures)
        let gradW2 = try floats(c.conv2.weightCount)
        let gradW1 = try floats(c.conv1.weightCount)
        let pooledGradient = PooledGradient(pool: c.pool2, values: gradPooled2, argmax: argmax2, reluOutput: pooled2)
        let pooledGradient1 = PooledGradient(
            pool: c.pool1, values: gradPooled1, argmax: argmax1, reluOutput: pooled1)
        var staged: [[Float]] = []
        if let openCL = d as? OpenCLDevice {
            let staging = OpenCLDevice.PooledForwardStaging(
                next: c.conv2, nextWeight: w2,
                lanes: try floats(OpenCLDevice.PooledForwardStaging.lanesCount(c.pool1)),
                nextWeightPatchMajor: try floats(OpenCLDevice.PooledForwardStaging.patchMajorCount(c.conv2)))
            try openCL.conv2dMaxPool2Forward(
                c.conv1, input: input, weight: w1, pooled: pooled1, argmax: argmax1, relu: true, staging: staging)
            try openCL.conv2dMaxPool2Forward(
                staged: staging, input: pooled1, pooled: pooled2, argmax: argmax2, relu: true)
            try openCL.linearSoftmaxCrossEntropy(
                c.fc, input: pooled2, weight: fcW, bias: fcB, logits: logits, labels: labels, gradLogits: gradLogits,
                perSample: perSample)
            try openCL.linearBackwardPooledData(
                c.fc, weight: fcW, gradOutput: gradLogits, gradWeight: gradFcW, gradBias: gradFcB, conv: c.conv2,
                pooledGradient: pooledGradient, convWeight: w2, gradInput: gradPooled1)
            try openCL.conv2dBackwardWeight(
                staged: staging, input: pooled1, pooledGradient: pooledGradient, gradWeight: gradW2, first: c.conv1,
                firstInput: input, firstPooledGradient: pooledGradient1, firstGradWeight: gradW1)
            staged = [try d.floats(staging.lanes), try d.floats(staging.nextWeightPatchMajor)]
        } else {
            try d.conv2dMaxPool2Forward(c.conv1, input: input, weight: w1, pooled: pooled1, argmax: argmax1, relu: true)
            try d.conv2dMaxPool2Forward(
                c.conv2, input: pooled1, weight: w2, pooled: pooled2, argmax: argmax2, relu: true)
            try d.linearForward(c.fc, input: pooled2, weight: fcW, bias: fcB, output: logits)
            try d.softmaxCrossEntropy(
                batch: c.fc.batch, classes: c.fc.outFeatures, logits: logits, labels: labels, gradLogits: gradLogits,
                perSample: perSample)
            try d.linearBackward(
                c.fc, input: pooled2, weight: fcW, gradOutput: gradLogits, gradInput: gradPooled2, gradWeight: gradFcW,
                gradBias: gradFcB)
            try d.conv2dBackwardWeight(c.conv2, input: pooled1, pooledGradient: pooledGradient, gradWeight: gradW2)
            try d.conv2dBackwardData(c.conv2, pooledGradient: pooledGradient, weight: w2, gradInput: gradPooled1)
            try d.conv2dBackwardWeight(c.conv1, input: input, pooledGradient: pooledGradient1, gradWeight: gradW1)
        }
        return try [
            pooled1, pooled2, logits, perSample, gradLogits, gradPooled2, gradFcW, gradFcB, gradW2, gradPooled1,
            gradW1,
        ]
        .map { try d.floats($0) } + staged
    }

    /// The float64 chain, in the textbook order (conv, ReLU, pool), in the
    /// order of ``run(_:on:seed:)``'s first eleven outputs.
    static func reference(_ c: Chain, seed: UInt64 = 51) -> [[Double]] {
        let f = c.inputs(seed: seed)
        let d = { (values: [Float]) in values.map(Double.init) }
        let x = (input: d(f.input), w1: d(f.w1), w2: d(f.w2), fcW: d(f.fcW), fcB: d(f.fcB), labels: f.labels)
        let relu1 = NaiveReference.reluForward(NaiveReference.conv2dForward(c.conv1, input: x.input, weight: x.w1))
        let p1 = NaiveReference.maxPool2Forward(c.pool1, input: relu1)
        let relu2 = NaiveReference.reluForward(NaiveReference.conv2dForward(c.conv2, input: p1.output, weight: x.w2))
        let p2 = NaiveReference.maxPool2Forward(c.pool2, input: relu2)
        let logits = NaiveReference.linearForward(c.fc, input: p2.output, weight: x.fcW, bias: x.fcB)
        let loss = NaiveReference.softmaxCrossEntropy(
            batch: c.fc.batch, classes: c.fc.outFeatures, logits: logits, labels: x.labels)
        let fc = NaiveReference.linearBackward(c.fc, input: p2.output, weight: x.fcW, gradOutput: loss.gradLogits)
        let gRelu2 = NaiveReference.maxPool2Backward(c.pool2, gradOutput: fc.gradInput, argmax: p2.argmax)
        let gConv2 = NaiveReference.reluBackward(output: relu2, gradOutput: gRelu2)
        let gPool1 = NaiveReference.conv2dBackwardData(c.conv2, gradOutput: gConv2, weight: x.w2)
        return [
            p1.output, p2.output, logits, loss.perSample, loss.gradLogits, fc.gradInput, fc.gradWeight, fc.gradBias,
            NaiveReference.conv2dBackwardWeight(c.conv2, input: p1.output, gradOutput: gConv2),
            gPool1,
            NaiveReference.conv2dBackwardWeight(
                c.conv1, input: x.input,
                gradOutput: NaiveReference.reluBackward(
                    output: relu1,
                    gradOutput: NaiveReference.maxPool2Backward(c.pool1, gradOutput: gPool1, argmax: p1.argmax))),
        ]
    }

    func testFusedChainMatchesFloat64ReferenceOnEveryOpenCLDevice() throws {
        let names = [
            "pooled1", "pooled2", "logits", "per-sample", "∂logits", "∂pooled2", "∂fc.weight", "∂fc.bias",
            "∂conv2.weight", "∂pooled1", "∂conv1.weight",
        ]
        let forward = 5  // the first five outputs are forward values
        for device in try openCLTestDevices() {
            let openCL = try XCTUnwrap(device as? OpenCLDevice)
            for c in Self.chains {
                let actual = try Self.run(c, on: device)
                let expected = Self.reference(c)
                let on = "\(device.info.summary) \(c.conv1) → \(c.conv2) → \(c.fc)"
                for (index, (a, e)) in zip(actual, expected).enumerated() {
                    XCTAssertEqual(a.count, e.count, "\(names[index]) on \(on)")
                    let diff = index < forward ? maxAbsoluteDifference(a, e) : maxRelativeToScale(a, e)
                    XCTAssertLessThanOrEqual(diff, 1e-4, "\(names[index]) on \(on)")
                }
                guard openCL.kernelFamily == .cpu else { continue }
                // The staged copies: pooled1 channels-last (zero past the
                // channels) and conv2's weights (patch, padded output channel).
                let (lanes, patchMajor) = (actual[11], actual[12])
                let pool = c.pool1
                let width = lanes.count / max(pool.batch * pool.outHeight * pool.outWidth, 1)
                let plane = pool.outHeight * pool.outWidth
                var expectedLanes = [Float](repeating: 0, count: lanes.count)
                for b in 0..<pool.batch {
                    for channel in 0..<pool.channels {
                        for p in 0..<plane {
                            expectedLanes[(b * plane + p) * width + channel] =
                                actual[0][(b * pool.channels + channel) * plane + p]
                        }
                    }
                }
                XCTAssertEqual(lanes.map(\.bitPattern), expectedLanes.map(\.bitPattern), "lanes on \(on)")
                let w2 = c.inputs(seed: 51).w2
                let patch = c.conv2.patchSize
                let outPad = patchMajor.count / patch
                let expectedPatchMajor = (0..<(patch * outPad)).map { index -> Float in
                    let (k, o) = (index / outPad, index % outPad)
                    return o < c.conv2.outChannels ? w2[o * patch + k] : 0
                }
                XCTAssertEqual(
                    patchMajor.map(\.bitPattern), expectedPatchMajor.map(\.bitPattern), "patch-major weights on \(on)")
            }
        }
    }
}
