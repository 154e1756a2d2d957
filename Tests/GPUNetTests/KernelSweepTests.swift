import GPUNet
import NetIO
import TestSupport
import XCTest

/// Every `Device` operation at tiny shapes chosen to reach every kernel of
/// both families and every branch of their launch rules (odd sizes, batch 1,
/// each vector width 1/4/8/16, 3×3 and general kernels, one and several
/// chunks of images), on each OpenCL test device (PoCL × {cpu, gpu}; one
/// family when `CONVSVD_KERNELS` names it), against `HostDevice` with
/// identical inputs. Rules: forward outputs within 1e-4 absolute, gradients
/// and optimiser states within 1e-4 of the host tensor's largest magnitude,
/// argmax exactly. Then every kernel of `Sources/Kernels/common` and of the
/// device's family folder must have been launched.
///
/// Small enough to run under Oclgrind (`scripts/oclgrind` runs this test
/// once per family with the simulator as the only OpenCL platform, which
/// checks every memory access of every work-item).
final class KernelSweepTests: XCTestCase {
    /// (batch, in, out, height, width, kernel height, kernel width); see the
    /// type's comment. 3×3: rows3x3 forward (width 19), outlanes weight
    /// gradient (in < 4, out ≤ 8), lanes 1/4/8/16 (in 1, 3, 5, 9 with out 9
    /// where in < 4); 2×3: the general kernels at each width; out 17: two
    /// channel groups.
    static let convShapes: [ConvShape] = [
        (1, 1, 9, 7, 8, 3, 3), (2, 3, 9, 8, 7, 3, 3), (2, 5, 3, 7, 7, 3, 3), (3, 9, 5, 6, 9, 3, 3),
        (2, 2, 1, 9, 7, 3, 3), (2, 1, 3, 5, 19, 3, 3), (1, 2, 17, 6, 6, 3, 3),
        (1, 1, 1, 6, 7, 2, 3), (2, 3, 3, 7, 6, 2, 3), (2, 5, 5, 5, 8, 2, 3), (1, 9, 9, 6, 5, 2, 3),
    ].map {
        ConvShape(
            batch: $0.0, inChannels: $0.1, outChannels: $0.2, height: $0.3, width: $0.4,
            kernelHeight: $0.5, kernelWidth: $0.6)
    }

    func testEveryKernelOfEachFamilyAgreesWithTheHost() throws {
        let host = HostDevice()
        for device in try openCLTestDevices() {
            let openCL = try XCTUnwrap(device as? OpenCLDevice)
            openCL.launchLog = []
            let on = device.info.summary
            func agree(_ what: String, relative: Bool, _ body: (any Device) throws -> [[Float]]) throws {
                let expected = try body(host)
                let actual = try body(device)
                for (index, (a, e)) in zip(actual, expected).enumerated() {
                    let diff = relative ? maxRelativeToScale(a, e) : maxAbsoluteDifference(a, e)
                    XCTAssertLessThanOrEqual(diff, 1e-4, "\(what) output \(index) on \(on)")
                }
            }
            for s in Self.convShapes { try sweepConvolution(s, agree) }
            try sweepDense(agree)
            try sweepGather(agree, openCLDevice: device)
            try sweepResidualLayers(agree)
            try sweepInference(agree)
            try sweepTinyStep(agree)
            try sweepSVD(agree)
            try device.finish()
            let launched = Set((openCL.launchLog ?? []).map(\.kernel))
            openCL.launchLog = nil
            let family = openCL.kernelFamily.rawValue
            // TinyConvNet's fused step where its activations fit in local memory
            // (not under scripts/oclgrind's 2 KiB run, which checks the fallback).
            // The gpu family's fused BatchNorm passes where their staged partials fit in local memory
            // (else, and in the cpu family, the separate combine): each of the two runs checks one path.
            let unfused = Set(
                (try openCL.fusesTinyConvNetStep() ? [] : ["gpu_tiny_step_image", "gpu_sum_image_partials"])
                    + (try openCL.fusesBatchNormPasses()
                        ? ["batchnorm_combine_moments"] : OpenCLDevice.gpuFusedBatchNormKernels))
            let expected = Set(
                OpenCLDevice.kernelNames(inFolder: "common") + OpenCLDevice.kernelNames(inFolder: family)
            ).subtracting(unfused)
            XCTAssertGreaterThan(expected.count, 20, "the kernel lists of common/ and \(family)/")
            XCTAssertEqual(
                expected.subtracting(launched).sorted(), [], "kernels of common/ and \(family)/ never launched on \(on)"
            )
        }
    }

    typealias Agree = (String, Bool, (any Device) throws -> [[Float]]) throws -> Void

    func sweepConvolution(_ s: ConvShape, _ agree: Agree) throws {
        let pool = PoolShape(batch: s.batch, channels: s.outChannels, height: s.outHeight, width: s.outWidth)
        // On a 1/8 grid, so that pooling ties and ReLU zeros occur.
        let input = randomFloats(s.inputCount, seed: 41).map { ($0 * 8).rounded() / 8 }
        let weight = randomFloats(s.weightCount, scale: 0.5, seed: 42).map { ($0 * 8).rounded() / 8 }
        let gradOutput = randomFloats(s.outputCount, seed: 43)
        let gradPooled = randomFloats(pool.outputCount, seed: 44)
        try agree("conv2dForward \(s)", false) { d in
            let out = try d.makeBuffer(count: s.outputCount, kind: .float32)
            try d.conv2dForward(s, input: try d.makeBuffer(input), weight: try d.makeBuffer(weight), output: out)
            return [try d.floats(out)]
        }
        try agree("conv2d backward \(s)", true) { d in
            let gradInput = try d.makeBuffer(count: s.inputCount, kind: .float32)
            let gradWeight = try d.makeBuffer(count: s.weightCount, kind: .float32)
            let g = try d.makeBuffer(gradOutput)
            try d.conv2dBackwardData(s, gradOutput: g, weight: try d.makeBuffer(weight), gradInput: gradInput)
            try d.conv2dBackwardWeight(s, input: try d.makeBuffer(input), gradOutput: g, gradWeight: gradWeight)
            return [try d.floats(gradInput), try d.floats(gradWeight)]
        }
        try agree("im2col/col2im \(s)", false) { d in
            let columns = try d.makeBuffer(count: s.patchSize * s.patchCount, kind: .float32)
            let back = try d.makeBuffer(count: s.inputCount, kind: .float32)
            try d.im2col(s, input: try d.makeBuffer(input), columns: columns)
            try d.col2im(s, columns: columns, input: back)
            return [try d.floats(columns), try d.floats(back)]
        }
        for relu in [false, true] {
            var argmax: [Int32] = []
            try agree("pooled forward \(s) relu \(relu)", false) { d in
                let pooled = try d.makeBuffer(count: pool.outputCount, kind: .float32)
                let winners = try d.makeBuffer(count: pool.outputCount, kind: .int32)
                try d.conv2dMaxPool2Forward(
                    s, input: try d.makeBuffer(input), weight: try d.makeBuffer(weight),
                    pooled: pooled, argmax: winners, relu: relu)
                argmax = try d.int32s(winners)
                return [try d.floats(pooled), argmax.map(Float.init)]
            }
            // The winners just computed (equal on both devices, or the forward failed)
            // and a ReLU output with zeros, given to both devices alike.
            let reluOutput = randomFloats(pool.outputCount, seed: 45).map { max($0, 0) }
            try agree("pooled backward \(s) relu \(relu)", true) { d in
                let gradient = PooledGradient(
                    pool: pool, values: try d.makeBuffer(gradPooled),
                    argmax: try d.makeBuffer(argmax),
                    reluOutput: try relu ? d.makeBuffer(reluOutput) : nil)
                let gradInput = try d.makeBuffer(count: s.inputCount, kind: .float32)
                let gradWeight = try d.makeBuffer(count: s.weightCount, kind: .float32)
                try d.conv2dBackwardData(
                    s, pooledGradient: gradient, weight: try d.makeBuffer(weight), gradInput: gradInput)
                try d.conv2dBackwardWeight(
                    s, input: try d.makeBuffer(input), pooledGradient: gradient,
                    gradWeight: gradWeight)
                return [try d.floats(gradInput), try d.floats(gradWeight)]
            }
        }
    }

    /// The batch gather at 4×4 (16 pixels: `batch_gather16` in the cpu
    /// family) and 3×3 (`batch_gather1`), a range inside a shuffled order.
    /// (`BatchGatherTests` holds it to bit equality at MNIST's size.)
    func sweepGather(_ agree: Agree, openCLDevice: (any Device)? = nil) throws {
        for side in [4, 3] {
            let count = 7
            let size = side * side
            let pixels = (0..<(count * size)).map { UInt8(truncatingIfNeeded: 37 * $0 + 11) }
            let labels = (0..<count).map { UInt8($0 % 10) }
            let order: [Int32] = [3, 0, 6, 1, 5, 2, 4]
            let shape = BatchGatherShape(count: count, imageSize: size, range: 1..<6)
            try agree("gatherBatch \(side)×\(side)", false) { d in
                let p = try d.makeBuffer(count: pixels.count, kind: .uint8)
                try pixels.withUnsafeBufferPointer { try d.upload($0, to: p) }
                let l = try d.makeBuffer(count: count, kind: .uint8)
                try labels.withUnsafeBufferPointer { try d.upload($0, to: l) }
                let images = try d.makeBuffer(count: shape.outputCount, kind: .float32)
                let batchLabels = try d.makeBuffer(count: shape.batch, kind: .int32)
                try d.gatherBatch(
                    shape, pixels: p, labels: l, order: try d.makeBuffer(order), images: images,
                    batchLabels: batchLabels)
                return [try d.floats(images), try d.int32s(batchLabels).map(Float.init)]
            }
        }
        // The per-channel and augmented gathers (`batch_gather_rows`,
        // `gpu_batch_gather_planes`): 3 channels of 3×5 flipped and cropped
        // from a padding of 2 (crops of all padding included), 1 channel of
        // 4×4 cropped, 2 channels of 3×3 as they are; batch 1 and a partial
        // slice of the order, with one entry outside the set (NaN pixels,
        // label −1: compared on the OpenCL devices only, as the host throws).
        // (`AugmentationTests` holds them to bit equality.)
        let cases: [(Int, Int, Int, Augmentation)] = [(3, 3, 5, .cropFlip), (1, 4, 4, .crop), (2, 3, 3, .none)]
        for (channels, rows, columns, augmentation) in cases {
            let count = 7
            let size = channels * rows * columns
            let pixels = (0..<(count * size)).map { UInt8(truncatingIfNeeded: 53 * $0 + 5) }
            let labels = (0..<count).map { UInt8($0 % 10) }
            let order: [Int32] = [3, 0, 6, 1, 5, 2, 4, -1]
            let normalization = Normalization(
                mean: Array([0.4914, 0.4822, 0.4465].prefix(channels)),
                standardDeviation: Array([0.2470, 0.2435, 0.2616].prefix(channels)))
            for range in [1..<6, 2..<3] {
                let shape = BatchGatherShape(
                    count: count, rows: rows, columns: columns, range: range, normalization: normalization,
                    augmentation: augmentation, seed: 17, epoch: 2)
                try agree("gatherBatch \(channels)×\(rows)×\(columns) \(augmentation.rawValue) \(range)", false) { d in
                    let p = try d.makeBuffer(count: pixels.count, kind: .uint8)
                    try pixels.withUnsafeBufferPointer { try d.upload($0, to: p) }
                    let l = try d.makeBuffer(count: count, kind: .uint8)
                    try labels.withUnsafeBufferPointer { try d.upload($0, to: l) }
                    let images = try d.makeBuffer(count: shape.outputCount, kind: .float32)
                    let batchLabels = try d.makeBuffer(count: shape.batch, kind: .int32)
                    try d.gatherBatch(
                        shape, pixels: p, labels: l, order: try d.makeBuffer(order), images: images,
                        batchLabels: batchLabels)
                    return [try d.floats(images), try d.int32s(batchLabels).map(Float.init)]
                }
            }
            if let device = openCLDevice {
                let shape = BatchGatherShape(
                    count: count, rows: rows, columns: columns, range: 6..<8, normalization: normalization,
                    augmentation: augmentation, seed: 17, epoch: 2)
                let p = try device.makeBuffer(count: pixels.count, kind: .uint8)
                try pixels.withUnsafeBufferPointer { try device.upload($0, to: p) }
                let l = try device.makeBuffer(count: count, kind: .uint8)
                try labels.withUnsafeBufferPointer { try device.upload($0, to: l) }
                let images = try device.makeBuffer(count: shape.outputCount, kind: .float32)
                let batchLabels = try device.makeBuffer(count: shape.batch, kind: .int32)
                try device.gatherBatch(
                    shape, pixels: p, labels: l, order: try device.makeBuffer(order), images: images,
                    batchLabels: batchLabels)
                let values = try device.floats(images)
                XCTAssertEqual(try device.int32s(batchLabels), [4, -1], "\(device.info.summary)")
                XCTAssertTrue(values[..<size].allSatisfy(\.isFinite), "\(device.info.summary)")
                XCTAssertTrue(values[size...].allSatisfy(\.isNaN), "\(device.info.summary)")
            }
        }
    }

    /// TinyConvNet's training pass (``TinyConvNet/trainingStep(_:)``: the
    /// gpu family's fused kernels, else the separate passes) at batch 1 and
    /// 3, inputs and conv weights on a 1/8 grid (exact sums: pooling ties
    /// and ReLU zeros are the same on both devices); logits and per-sample
    /// results absolutely, gradients relative to their largest magnitude.
    func sweepTinyStep(_ agree: Agree) throws {
        let weights = TinyConvNet.initialWeights(seed: 91)
        let grid = TinyConvNetWeights(
            conv1: weights.conv1.map { ($0 * 8).rounded() / 8 }, conv2: weights.conv2.map { ($0 * 8).rounded() / 8 },
            fcWeight: weights.fcWeight, fcBias: weights.fcBias)
        for batch in [1, 3] {
            let images = randomFloats(batch * 784, scale: 2, seed: 92).map { ($0 * 8).rounded() / 8 }
            let labels = (0..<batch).map { Int32((3 * $0 + 1) % 10) }
            // One step per device: its gradients wait here for the second comparison.
            var gradients: [String: [[Float]]] = [:]
            try agree("TinyConvNet training step \(batch): logits, per-sample", false) { d in
                let net = try TinyConvNet(device: d)
                try net.load(grid)
                let w = try net.workspace(batch: batch)
                try net.setBatch(w, images: images, labels: labels)
                try net.trainingStep(w)
                gradients[d.info.selector] = try net.gradients.all.map { try d.floats($0) }
                return [try d.floats(w.logits), try d.floats(w.perSample)]
            }
            try agree("TinyConvNet training step \(batch): gradients", true) { d in
                try XCTUnwrap(gradients[d.info.selector], "no step ran on \(d.info.summary)")
            }
        }
        // The step that gathers its batch itself: a partial batch of 3 from
        // the middle of a shuffled order of 7 images.
        let pixels = randomFloats(7 * 784, seed: 93).map { UInt8(127.5 + 127.5 * $0) }
        let set = Dataset(
            name: "sweep", count: 7, rows: 28, columns: 28, pixels: pixels, labels: [3, 1, 4, 1, 5, 9, 2])
        try agree("TinyConvNet training step gathering 3 of 7", true) { d in
            let data = try DeviceDataset(set, on: d)
            try data.setOrder([4, 0, 6, 2, 5, 1, 3])
            let net = try TinyConvNet(device: d)
            try net.load(grid)
            let w = try net.workspace(batch: 3)
            try net.trainingStep(w, gathering: 2..<5, from: data)
            return [try d.floats(w.input), try d.int32s(w.labels).map(Float.init), try d.floats(w.logits)]
                + (try net.gradients.all.map { try d.floats($0) })
        }
    }

    func sweepDense(_ agree: Agree) throws {
        for (m, n, k) in [(5, 7, 3), (1, 17, 9)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let shape = GEMMShape(m: m, n: n, k: k, transposeA: ta, transposeB: tb, alpha: 0.5, beta: -1)
                let a = randomFloats(m * k, seed: 51)
                let b = randomFloats(k * n, seed: 52)
                let c = randomFloats(m * n, seed: 53)
                try agree("gemm \(shape)", true) { d in
                    let out = try d.makeBuffer(c)
                    try d.gemm(shape, a: try d.makeBuffer(a), b: try d.makeBuffer(b), c: out)
                    return [try d.floats(out)]
                }
            }
        }
        let p = PoolShape(batch: 2, channels: 3, height: 7, width: 6)
        let x = randomFloats(p.inputCount, seed: 61).map { ($0 * 4).rounded() / 4 }
        let g = randomFloats(p.outputCount, seed: 62)
        let gx = randomFloats(p.inputCount, seed: 63)
        try agree("relu + maxpool \(p)", false) { d in
            try reluPoolChain(on: d, p, input: x, gradOutput: g, gradRelu: gx)
        }
        for batch in [1, 3] {
            let s = LinearShape(batch: batch, inFeatures: 11, outFeatures: 5)
            let input = randomFloats(batch * 11, seed: 71)
            let weight = randomFloats(55, scale: 0.3, seed: 72)
            let bias = randomFloats(5, scale: 0.1, seed: 73)
            let gradOut = randomFloats(batch * 5, seed: 74)
            let labels = (0..<batch).map { Int32(($0 * 2) % 5) }
            try agree("linear + loss \(batch)", false) { d in
                let logits = try d.makeBuffer(count: batch * 5, kind: .float32)
                try d.linearForward(
                    s, input: try d.makeBuffer(input), weight: try d.makeBuffer(weight),
                    bias: try d.makeBuffer(bias), output: logits)
                let grad = try d.makeBuffer(count: batch * 5, kind: .float32)
                let perSample = try d.makeBuffer(count: 2 * batch, kind: .float32)
                try d.softmaxCrossEntropy(
                    batch: batch, classes: 5, logits: logits, labels: try d.makeBuffer(labels),
                    gradLogits: grad, perSample: perSample)
                return [try d.floats(logits), try d.floats(grad), try d.floats(perSample)]
            }
            for withInput in [false, true] {
                try agree("linear backward \(batch) gradInput \(withInput)", true) { d in
                    let gradInput = try d.makeBuffer(count: batch * 11, kind: .float32)
                    let gradWeight = try d.makeBuffer(count: 55, kind: .float32)
                    let gradBias = try d.makeBuffer(count: 5, kind: .float32)
                    try d.linearBackward(
                        s, input: try d.makeBuffer(input), weight: try d.makeBuffer(weight),
                        gradOutput: try d.makeBuffer(gradOut), gradInput: withInput ? gradInput : nil,
                        gradWeight: gradWeight, gradBias: gradBias)
                    return [try d.floats(gradInput), try d.floats(gradWeight), try d.floats(gradBias)]
                }
            }
        }
        // Five tensors: a launch of four and one of one; counts not multiples of 4.
        let counts = [1, 3, 5, 7, 10]
        let values = counts.enumerated().map { randomFloats($0.1, seed: 80 + UInt64($0.0)) }
        let grads = counts.enumerated().map { randomFloats($0.1, seed: 90 + UInt64($0.0)) }
        try agree("optimisers", true) { d in
            var out: [Buffer] = []
            var momentum: [MomentumTensor] = []
            var adam: [AdamTensor] = []
            for (i, n) in counts.enumerated() {
                let (p1, p2) = (try d.makeBuffer(values[i]), try d.makeBuffer(values[i]))
                let g = try d.makeBuffer(grads[i])
                let (u, m, v) = (
                    try d.makeBuffer(count: n, kind: .float32), try d.makeBuffer(count: n, kind: .float32),
                    try d.makeBuffer(count: n, kind: .float32)
                )
                momentum.append(MomentumTensor(count: n, parameter: p1, gradient: g, velocity: u))
                adam.append(AdamTensor(count: n, parameter: p2, gradient: g, m: m, v: v))
                out += [p1, u, p2, m, v]
            }
            for t in 1...2 {
                try d.sgdMomentumStep(
                    momentum, step: SGDStep(learningRate: 0.01, momentum: 0.9, nesterov: t == 2, weightDecay: 5e-4))
                try d.adamStep(adam, step: AdamStep(learningRate: 1e-3, step: t))
            }
            return try out.map { try d.floats($0) }
        }
    }
}
