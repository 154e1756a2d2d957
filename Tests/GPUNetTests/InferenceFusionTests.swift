import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// The fused eval-mode convolution layer (``InferenceDevice``) on every
/// test device that runs it, against the float64 loops of
/// `NaiveReferenceInference.swift`, and ``NetworkPlan``'s fused inference
/// pass against the float64 network and against its own layer-by-layer pass.
///
/// Rules: forward outputs (the layer's output, the affine map, logits)
/// within 1e-4 absolute. The shapes are odd on purpose: batch 1, 1×1 and
/// 2×3 maps, stride 2 on odd sizes, channel counts that leave the host's
/// 6- and 8-channel blocks partial, ranks 1 and 17.
final class InferenceFusionTests: XCTestCase {
    /// (batch, in, first out, height, width, kernel, stride, padding, pointwise out or 0).
    static let layers: [(Conv2dShape, Int?)] = [
        (1, 3, 5, 7, 9, 3, 1, 1, 0), (2, 4, 6, 9, 7, 3, 2, 1, 11), (1, 2, 1, 1, 1, 3, 1, 1, 4),
        (3, 5, 17, 6, 5, 3, 1, 1, 33), (2, 6, 3, 7, 7, 1, 2, 0, 9), (1, 16, 7, 2, 3, 3, 1, 1, 16),
        (2, 3, 4, 5, 5, 5, 1, 2, 0), (5, 8, 9, 10, 11, 3, 2, 1, 7),
    ].map {
        (
            Conv2dShape(
                batch: $0.0, inChannels: $0.1, outChannels: $0.2, height: $0.3, width: $0.4, kernelHeight: $0.5,
                kernelWidth: $0.5, stride: $0.6, padding: $0.7), $0.8 == 0 ? nil : $0.8
        )
    }

    func testFusedConvolutionMatchesTheReferenceOnEveryDevice() throws {
        var worst = 0.0
        var fusedOnDefaultHost = 0
        for device in try testDevices() {
            guard let d = device as? InferenceDevice else { continue }
            let on = device.info.summary
            for (index, (shape, pointwise)) in Self.layers.enumerated() {
                for (bias, residual, relu) in [(false, false, false), (true, true, true), (true, false, true)] {
                    let layer = FusedConvolution(
                        shape: shape, pointwiseChannels: pointwise, residual: residual, relu: relu)
                    guard d.supportsFusedConvolution(layer) else { continue }
                    if device.info.selector == "host", (device as? HostDevice)?.usesAVX512 == HostDevice.cpuHasAVX512 {
                        fusedOnDefaultHost += 1
                    }
                    let c = FusedConvolutionCase(layer, bias: bias, seed: UInt64(700 + 10 * index))
                    let expected = c.expected
                    let out = try c.run(on: d)
                    let difference = maxAbsoluteDifference(out, expected)
                    XCTAssertLessThanOrEqual(difference, 1e-4, "\(layer) bias \(bias) on \(on)")
                    worst = max(worst, difference)
                }
            }
        }
        // The default host (AVX2/FMA on every machine this project runs on) fuses every layer of the list.
        if HostDevice().usesDirectKernels {
            XCTAssertEqual(fusedOnDefaultHost, 3 * Self.layers.count, "layers the host fused")
        }
        print("InferenceFusionTests fused layer: largest difference \(worst) (abs)")
    }

    func testInferenceAffineMatchesTheReferenceOnEveryDevice() throws {
        let channels = 7
        let gamma = randomFloats(channels, seed: 1).map { 1 + 0.5 * $0 }
        let beta = randomFloats(channels, scale: 0.5, seed: 2)
        let mean = randomFloats(channels, scale: 0.5, seed: 3)
        let variance = randomFloats(channels, scale: 0.3, seed: 4).map { 1 + $0 }
        let bias = randomFloats(channels, scale: 0.5, seed: 5)
        for device in try testDevices() {
            guard let d = device as? InferenceDevice else { continue }
            let scale = try device.makeBuffer(count: channels, kind: .float32)
            let shift = try device.makeBuffer(count: channels, kind: .float32)
            for (withBias, withBatchNorm) in [(false, false), (true, false), (false, true), (true, true)] {
                let label = "bias \(withBias), BatchNorm \(withBatchNorm) on \(device.info.summary)"
                let bn =
                    withBatchNorm
                    ? InferenceBatchNorm(
                        gamma: try device.makeBuffer(gamma), beta: try device.makeBuffer(beta),
                        runningMean: try device.makeBuffer(mean), runningVar: try device.makeBuffer(variance)) : nil
                try d.inferenceAffine(
                    channels: channels, bias: withBias ? try device.makeBuffer(bias) : nil, batchNorm: bn,
                    scale: scale, shift: shift)
                let expected = NaiveReference.inferenceAffine(
                    channels: channels, bias: withBias ? bias : nil,
                    batchNorm: withBatchNorm ? (gamma, beta, mean, variance) : nil)
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(try device.floats(scale), expected.scale), 1e-6, label)
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(try device.floats(shift), expected.shift), 1e-6, label)
            }
        }
    }

    /// ResNet-8 with its convs factorised (a stride-2 conv, a 1×1 stride-2
    /// projection, rank 1 and a rank equal to the input's channels), and the
    /// small residual network of ``NetworkPlanTests`` (conv biases, a 5×5
    /// conv, a max-pool): the fused eval logits against the float64 network,
    /// and against the plan's layer-by-layer pass; the layers that fuse are
    /// counted, so that a pass that silently stops fusing fails.
    func testFusedInferenceMatchesTheFloat64NetworkOnEveryDevice() throws {
        let resnet8 = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        let factorised = try resnet8.factorizingConvolutions(ranks: [
            "conv1": 3, "layer1.0.conv1": 1, "layer1.0.conv2": 16, "layer2.0.conv1": 5, "layer2.0.downsample.0": 4,
            "layer3.0.conv2": 17,
        ])
        let cases: [(NetworkDescription, (Int, Int, Int), Int, Int, Int)] = [
            (factorised, (1, 28, 28), 10, 3, 9), (resnet8, (1, 13, 11), 10, 1, 9),
            (NetworkPlanTests.smallResidual, (2, 9, 9), 3, 2, 5),
        ]
        for (description, input, classes, batch, fusedLayers) in cases {
            let reference = try NaiveNetwork(
                description, input: (channels: input.0, height: input.1, width: input.2), classes: classes)
            let parameters = reference.sampleParameters(seed: 9)
            var random = SeededRandom(seed: 19)
            let images = (0..<(batch * input.0 * input.1 * input.2)).map { _ in
                Double.random(in: -1...1, using: &random)
            }
            let labels = (0..<batch).map { _ in Int32(random.uniform(below: classes)) }
            let eval = reference.run(
                images: images, labels: labels, batch: batch, parameters: parameters, training: false)
            for device in try testDevices() {
                let context = "\(description.name) batch \(batch) on \(device.info.summary)"
                let plan = try NetworkPlan(
                    description, channels: input.0, height: input.1, width: input.2, classes: classes, device: device)
                try plan.load(float64: parameters)
                let w = try plan.workspace(batch: batch)
                try plan.setBatch(w, images: images.map(Float.init), labels: labels)
                var fused = 0
                plan.operationHook = { op, run in
                    if op.pass == "inference" { fused += 1 }
                    try run()
                }
                try plan.forward(w, training: false)
                let fusedLogits = try device.floats(w.logits)
                let fusedLosses = Array(try device.floats(w.perSample).prefix(batch))
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(fusedLogits, eval.logits), 1e-4, "\(context): fused logits")
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(fusedLosses, eval.lossPerSample), 1e-4, "\(context): fused losses")
                if let host = device as? HostDevice, host.usesDirectKernels {
                    XCTAssertEqual(fused, fusedLayers, "\(context): fused layers")
                }
                // A layer inside a fused layer is still readable: the plan runs the layer-by-layer pass for it.
                let firstConv = try XCTUnwrap(reference.summary.layers.first)
                let conv = try XCTUnwrap(try plan.activation(w, path: firstConv.path))
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(conv, eval.layerOutputs[0]), 1e-4, "\(context): \(firstConv.path) output")
                plan.fusesInference = false
                fused = 0
                try plan.forward(w, training: false)
                XCTAssertEqual(fused, 0, "\(context): fusesInference false fuses nothing")
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(try device.floats(w.logits), fusedLogits.map(Double.init)), 1e-4,
                    "\(context): fused against layer-by-layer logits")
            }
        }
    }

    /// Inside ``NetworkPlan/withParametersFixed(_:)`` the first eval pass
    /// forms each fused layer's scale and shift and the next ones reuse
    /// them: on OpenCL one launch fewer per fused layer, the same logits bit
    /// for bit. A new scope forms them again, so parameters loaded between
    /// two scopes give the float64 network's logits for the new parameters
    /// (within 1e-4 absolute), not the old ones'.
    func testEvalPassesWithFixedParametersReuseTheScaleAndShift() throws {
        let description = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        let (batch, height, width) = (2, 9, 11)
        let reference = try NaiveNetwork(description, input: (channels: 1, height: height, width: width), classes: 10)
        var random = SeededRandom(seed: 23)
        let images = (0..<(batch * height * width)).map { _ in Double.random(in: -1...1, using: &random) }
        let labels = (0..<batch).map { _ in Int32(random.uniform(below: 10)) }
        for device in try testDevices() {
            guard device is InferenceDevice else { continue }
            let context = "resnet8 on \(device.info.summary)"
            let plan = try NetworkPlan(
                description, channels: 1, height: height, width: width, classes: 10, device: device)
            var fused = 0
            plan.operationHook = { op, run in
                if op.pass == "inference" { fused += 1 }
                try run()
            }
            let w = try plan.workspace(batch: batch)
            try plan.setBatch(w, images: images.map(Float.init), labels: labels)
            for seed: UInt64 in [9, 10] {
                let parameters = reference.sampleParameters(seed: seed)
                try plan.load(float64: parameters)
                let expected = reference.run(
                    images: images, labels: labels, batch: batch, parameters: parameters, training: false)
                var launches: [Int] = []
                var logits: [[Float]] = []
                fused = 0
                try plan.withParametersFixed {
                    for _ in 0..<2 {
                        let before = device.counters.launches
                        try plan.forward(w, training: false)
                        launches.append(device.counters.launches - before)
                        logits.append(try device.floats(w.logits))
                    }
                }
                if (device as? HostDevice)?.usesDirectKernels != false {
                    XCTAssertGreaterThan(fused, 0, "\(context): the pass fuses")
                }
                XCTAssertEqual(logits[1], logits[0], "\(context), seed \(seed): the second pass's logits")
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(logits[1], expected.logits), 1e-4, "\(context), seed \(seed): logits")
                if device is OpenCLDevice {
                    XCTAssertEqual(launches[0] - launches[1], fused / 2, "\(context): one launch fewer a fused layer")
                } else {
                    XCTAssertLessThanOrEqual(launches[1], launches[0], "\(context): launches")
                }
            }
        }
    }
}
