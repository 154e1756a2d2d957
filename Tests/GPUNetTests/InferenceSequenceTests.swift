import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// ``InferenceDevice/fusedConvolutionSequence(_:)`` (which the AVX-512 host
/// runs image by image) on every test device: each layer's output against
/// the float64 loops of `NaiveReferenceInference.swift` given the input the
/// device computed, and ``NetworkPlan``'s eval pass without an
/// ``NetworkPlan/operationHook`` (the pass that sends its fused layers as
/// sequences) against the float64 network.
///
/// Rules: forward outputs and logits within 1e-4 absolute. The shapes are
/// odd on purpose: batch 1 and 3, 1×1 maps, stride 2 on odd sizes, padding
/// that leaves the output smaller than the input (3×3 unpadded, 5×5 with
/// padding 1: the unpadded reads whose grid is wider than the output), a
/// 1×1 stride-2 layer,
/// ranks 3, 5, 9 and 17 (not multiples of 8), residuals written earlier in
/// the sequence.
final class InferenceSequenceTests: XCTestCase {
    /// A chain: (in, first out, height, width, kernel, stride, padding, pointwise out or 0, residual: the output of
    /// the layer this many back, 0 none, relu). Heights and widths are the layer's input's.
    static let chains: [[(Int, Int, Int, Int, Int, Int, Int, Int, Int, Bool)]] = [
        [
            (3, 5, 7, 9, 5, 1, 1, 11, 0, true), (11, 17, 5, 7, 3, 2, 1, 0, 0, true),
            (17, 17, 3, 4, 3, 1, 1, 17, 1, true), (17, 9, 3, 4, 3, 1, 0, 6, 0, false),
            (6, 4, 1, 2, 5, 1, 2, 0, 0, true), (4, 3, 1, 2, 1, 2, 0, 7, 0, false),
        ],
        [(4, 3, 1, 1, 3, 1, 1, 8, 0, true), (8, 8, 1, 1, 3, 1, 1, 0, 1, true), (8, 9, 1, 1, 3, 2, 1, 8, 1, false)],
    ]

    func testSequenceMatchesTheReferenceOnEveryDevice() throws {
        var worst = 0.0
        for device in try testDevices() {
            guard let d = device as? InferenceDevice else { continue }
            for (chainIndex, chain) in Self.chains.enumerated() {
                for batch in [1, 3] {
                    let context = "chain \(chainIndex) batch \(batch) on \(device.info.summary)"
                    let first = chain[0]
                    let input = randomFloats(batch * first.0 * first.2 * first.3, seed: UInt64(50 + chainIndex))
                    var activations = [try device.makeBuffer(input)]
                    var calls: [FusedConvolutionCall] = []
                    var operands:
                        [(weight: [Float], bias: [Float]?, pointwise: [Float]?, scale: [Float], shift: [Float])] =
                            []
                    for (index, l) in chain.enumerated() {
                        let shape = Conv2dShape(
                            batch: batch, inChannels: l.0, outChannels: l.1, height: l.2, width: l.3, kernelHeight: l.4,
                            kernelWidth: l.4, stride: l.5, padding: l.6)
                        let layer = FusedConvolution(
                            shape: shape, pointwiseChannels: l.7 == 0 ? nil : l.7, residual: l.8 > 0, relu: l.9)
                        let seed = UInt64(1000 * chainIndex + 10 * index)
                        let o = layer.outChannels
                        let weight = randomFloats(shape.weightCount, scale: 0.5, seed: seed)
                        let bias = index % 2 == 0 ? randomFloats(l.1, scale: 0.5, seed: seed + 1) : nil
                        let pointwise = layer.pointwiseChannels.map {
                            randomFloats($0 * l.1, scale: 0.5, seed: seed + 2)
                        }
                        let scale = randomFloats(o, seed: seed + 3).map { 1 + 0.5 * $0 }
                        let shift = randomFloats(o, scale: 0.5, seed: seed + 4)
                        operands.append((weight, bias, pointwise, scale, shift))
                        let output = try device.makeBuffer(count: layer.outputCount, kind: .float32)
                        calls.append(
                            FusedConvolutionCall(
                                layer: layer, input: activations[index], weight: try device.makeBuffer(weight),
                                bias: try bias.map { try device.makeBuffer($0) },
                                pointwiseWeight: try pointwise.map { try device.makeBuffer($0) },
                                scale: try device.makeBuffer(scale), shift: try device.makeBuffer(shift),
                                residual: l.8 > 0 ? activations[index + 1 - l.8] : nil, output: output))
                        activations.append(output)
                    }
                    // A device that runs a layer operation by operation gets no sequence (the plan sends none).
                    guard calls.allSatisfy({ d.supportsFusedConvolution($0.layer) }) else {
                        XCTAssertFalse(
                            (device as? HostDevice)?.usesDirectKernels ?? false,
                            "\(context): the host fuses every layer")
                        continue
                    }
                    try d.fusedConvolutionSequence(calls)
                    let values = try activations.map { try device.floats($0) }
                    for (index, call) in calls.enumerated() {
                        let o = operands[index]
                        let residual = chain[index].8 > 0 ? values[index + 1 - chain[index].8] : nil
                        let expected = NaiveReference.fusedConvolutionForward(
                            call.layer, input: values[index], weight: o.weight, bias: o.bias,
                            pointwiseWeight: o.pointwise, scale: o.scale, shift: o.shift, residual: residual)
                        let difference = maxAbsoluteDifference(values[index + 1], expected)
                        XCTAssertLessThanOrEqual(difference, 1e-4, "\(context): layer \(index), \(call.layer)")
                        worst = max(worst, difference)
                    }
                }
            }
        }
        print("InferenceSequenceTests sequence: largest difference \(worst) (abs)")
    }

    /// The factorised ResNet-8 of ``InferenceFusionTests`` (ranks 1, 3, 4, 5,
    /// 16, 17) at batch 1 and 3, without an operation hook: logits and
    /// losses against the float64 network. On the AVX-512 host the pass
    /// must hand its fused layers over as one sequence: fewer parallel jobs
    /// than the hooked pass by at least the fused layers less one.
    func testPlanWithoutHookMatchesTheFloat64Network() throws {
        let resnet8 = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        let description = try resnet8.factorizingConvolutions(ranks: [
            "conv1": 3, "layer1.0.conv1": 1, "layer1.0.conv2": 16, "layer2.0.conv1": 5, "layer2.0.downsample.0": 4,
            "layer3.0.conv2": 17,
        ])
        let fusedLayers = 9
        for batch in [1, 3] {
            let reference = try NaiveNetwork(description, input: (channels: 1, height: 28, width: 28), classes: 10)
            let parameters = reference.sampleParameters(seed: 11)
            var random = SeededRandom(seed: 23)
            let images = (0..<(batch * 28 * 28)).map { _ in Double.random(in: -1...1, using: &random) }
            let labels = (0..<batch).map { _ in Int32(random.uniform(below: 10)) }
            let eval = reference.run(
                images: images, labels: labels, batch: batch, parameters: parameters, training: false)
            for device in try testDevices() {
                let context = "batch \(batch) on \(device.info.summary)"
                let plan = try NetworkPlan(description, channels: 1, height: 28, width: 28, classes: 10, device: device)
                try plan.load(float64: parameters)
                let w = try plan.workspace(batch: batch)
                try plan.setBatch(w, images: images.map(Float.init), labels: labels)
                device.counters.reset()
                try plan.forward(w, training: false)
                let sequenceJobs = device.counters.launches
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(try device.floats(w.logits), eval.logits), 1e-4, "\(context): logits")
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(Array(try device.floats(w.perSample).prefix(batch)), eval.lossPerSample),
                    1e-4, "\(context): losses")
                plan.operationHook = { _, run in try run() }
                device.counters.reset()
                try plan.forward(w, training: false)
                let hookedJobs = device.counters.launches
                plan.operationHook = nil
                if let host = device as? HostDevice, host.usesAVX512, batch > 1 {
                    XCTAssertLessThanOrEqual(
                        sequenceJobs + fusedLayers - 1, hookedJobs, "\(context): parallel jobs of the sequence pass")
                }
            }
        }
    }
}
