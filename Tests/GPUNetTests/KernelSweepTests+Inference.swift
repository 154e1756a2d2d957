import GPUNet
import TestSupport
import XCTest

/// The sweep's eval-mode fused layers (``InferenceDevice``), small enough
/// for Oclgrind: batch 1 on a 1×1 map, a plane of 20 (one whole 16-pixel
/// chunk of `fused_epilogue` and a partial one), stride 2 on odd sizes,
/// with and without the pointwise convolution, residual and ReLU, rows of
/// 14 to 17 for the cpu family's one-launch factorised layer; and the
/// affine map with and without a BatchNorm and a bias. The host gives the
/// expected values (the float64 loops where the host does not fuse a layer).
extension KernelSweepTests {
    /// (layer, bias).
    static let inferenceLayers: [(FusedConvolution, Bool)] = [
        (
            FusedConvolution(
                shape: Conv2dShape(batch: 1, inChannels: 3, outChannels: 2, height: 1, width: 1, padding: 1),
                pointwiseChannels: 5, relu: true), false
        ),
        (
            FusedConvolution(
                shape: Conv2dShape(batch: 2, inChannels: 3, outChannels: 5, height: 5, width: 7, stride: 2, padding: 1),
                residual: true, relu: true), true
        ),
        (
            FusedConvolution(
                shape: Conv2dShape(batch: 3, inChannels: 4, outChannels: 3, height: 4, width: 5, padding: 1),
                pointwiseChannels: 6, residual: true), true
        ),
        // The cpu family's one-launch factorised layer, ranks 3, 5, 9, 7, 16 and 17
        // (`conv2d_factor_rows_{4,6,12,8,16,18}`): a row of 17 (a last block overlapping the
        // first), rows of 16, a 1×1 kernel, and a row of 14 (lanes past it read on into the padded copy).
        (
            FusedConvolution(
                shape: Conv2dShape(batch: 1, inChannels: 2, outChannels: 3, height: 1, width: 17, padding: 1),
                pointwiseChannels: 4, relu: true), false
        ),
        (
            FusedConvolution(
                shape: Conv2dShape(
                    batch: 2, inChannels: 3, outChannels: 5, height: 2, width: 16, kernelHeight: 1, kernelWidth: 1),
                pointwiseChannels: 3, residual: true), true
        ),
        (
            FusedConvolution(
                shape: Conv2dShape(batch: 1, inChannels: 1, outChannels: 9, height: 2, width: 16, padding: 1),
                pointwiseChannels: 2, residual: true, relu: true), true
        ),
        (
            FusedConvolution(
                shape: Conv2dShape(batch: 1, inChannels: 1, outChannels: 7, height: 1, width: 16, padding: 1),
                pointwiseChannels: 3, relu: true), false
        ),
        (
            FusedConvolution(
                shape: Conv2dShape(
                    batch: 1, inChannels: 2, outChannels: 16, height: 1, width: 16, kernelHeight: 1, kernelWidth: 1),
                pointwiseChannels: 2, residual: true), false
        ),
        (
            FusedConvolution(
                shape: Conv2dShape(batch: 2, inChannels: 2, outChannels: 17, height: 2, width: 14, padding: 1),
                pointwiseChannels: 3, residual: true, relu: true), true
        ),
    ]

    func sweepInference(_ agree: Agree) throws {
        for (index, (layer, hasBias)) in Self.inferenceLayers.enumerated() {
            let s = layer.shape
            let seed = UInt64(900 + 10 * index)
            let input = randomFloats(s.inputCount, seed: seed)
            let weight = randomFloats(s.weightCount, scale: 0.5, seed: seed + 1)
            let bias = hasBias ? randomFloats(s.outChannels, seed: seed + 2) : nil
            let pointwise = layer.pointwiseChannels.map { randomFloats($0 * s.outChannels, seed: seed + 3) }
            let scale = randomFloats(layer.outChannels, seed: seed + 4)
            let shift = randomFloats(layer.outChannels, seed: seed + 5)
            let residual = layer.residual ? randomFloats(layer.outputCount, seed: seed + 6) : nil
            try agree("fusedConvolutionForward \(layer)", false) { device in
                let d = try XCTUnwrap(device as? InferenceDevice)
                guard d.supportsFusedConvolution(layer) else {
                    return [
                        NaiveReference.fusedConvolutionForward(
                            layer, input: input, weight: weight, bias: bias, pointwiseWeight: pointwise, scale: scale,
                            shift: shift, residual: residual
                        ).map(Float.init)
                    ]
                }
                return [
                    try d.fusedConvolutionForward(
                        layer, input: input, weight: weight, bias: bias, pointwiseWeight: pointwise, scale: scale,
                        shift: shift, residual: residual)
                ]
            }
        }
        let channels = 3
        let bias = randomFloats(channels, seed: 951)
        let gamma = randomFloats(channels, seed: 952).map { 1 + $0 / 2 }
        let beta = randomFloats(channels, seed: 953)
        let mean = randomFloats(channels, seed: 954)
        let variance = randomFloats(channels, seed: 955).map { 1 + $0 / 2 }
        for (withBias, withBatchNorm) in [(false, false), (true, true)] {
            try agree("inferenceAffine bias \(withBias) BatchNorm \(withBatchNorm)", false) { device in
                let d = try XCTUnwrap(device as? InferenceDevice)
                let scale = try device.makeBuffer(count: channels, kind: .float32)
                let shift = try device.makeBuffer(count: channels, kind: .float32)
                let bn =
                    withBatchNorm
                    ? InferenceBatchNorm(
                        gamma: try device.makeBuffer(gamma), beta: try device.makeBuffer(beta),
                        runningMean: try device.makeBuffer(mean), runningVar: try device.makeBuffer(variance)) : nil
                try d.inferenceAffine(
                    channels: channels, bias: withBias ? try device.makeBuffer(bias) : nil, batchNorm: bn, scale: scale,
                    shift: shift)
                return [try device.floats(scale), try device.floats(shift)]
            }
        }
    }
}
