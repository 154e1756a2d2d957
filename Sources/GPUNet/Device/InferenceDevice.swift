/// One eval-mode convolution layer as a single device operation: a
/// convolution, optionally a 1×1 stride-1 unpadded convolution after it (the
/// second half of a factorised layer, `name.0` then `name.1`), then a
/// per-channel affine map (an eval-mode BatchNorm and the last convolution's
/// bias folded in), optionally a residual sum, optionally a ReLU.
///
/// Shapes: input (B, C, H, W); the first convolution `shape` (O₁, C, kH, kW)
/// at its stride and padding; the pointwise weight (O, O₁); output, scale,
/// shift and residual (B, O, oH, oW) with O = ``outChannels``.
public struct FusedConvolution: Hashable, Sendable, CustomStringConvertible {
    /// The first convolution.
    public var shape: Conv2dShape
    /// O of the 1×1 convolution O₁ → O after the first one; nil: none.
    public var pointwiseChannels: Int?
    /// Whether a residual tensor is added after the affine map.
    public var residual: Bool
    /// Whether a ReLU ends the layer.
    public var relu: Bool

    public init(shape: Conv2dShape, pointwiseChannels: Int? = nil, residual: Bool = false, relu: Bool = false) {
        self.shape = shape
        self.pointwiseChannels = pointwiseChannels
        self.residual = residual
        self.relu = relu
    }

    /// The output's channels: the pointwise convolution's, else the first one's.
    public var outChannels: Int { pointwiseChannels ?? shape.outChannels }
    /// B·O·oH·oW.
    public var outputCount: Int { shape.batch * outChannels * shape.outHeight * shape.outWidth }
    /// Multiply-adds of both convolutions.
    public var multiplyAdds: Int {
        shape.multiplyAdds + (pointwiseChannels ?? 0) * shape.outChannels * shape.patchCount
    }
    public var description: String {
        "\(shape)" + (pointwiseChannels.map { " then 1×1 → \($0)" } ?? "") + (residual ? " + residual" : "")
            + (relu ? ", relu" : "")
    }
}

/// A device that runs an eval-mode convolution layer in one pass over
/// memory (``FusedConvolution``), which ``NetworkPlan`` uses for its
/// inference forward pass. The training pass never uses these operations.
///
/// Each is defined by its float64 loops in `Tests/TestSupport/NaiveReferenceInference.swift`;
/// forward outputs agree with them within 1e-4 absolute.
public protocol InferenceDevice: Device {
    /// Whether ``fusedConvolutionForward(_:input:weight:bias:pointwiseWeight:scale:shift:residual:output:)``
    /// runs `layer` on this device (the plan runs the layer's operations one by one where not).
    func supportsFusedConvolution(_ layer: FusedConvolution) -> Bool

    /// The per-channel affine map of an eval-mode BatchNorm after a
    /// convolution with bias `bias` (nil: none), `channels` channels:
    /// with `batchNorm`, g = γ/√(runningVar + ε), scale = g and
    /// shift = β − runningMean·g + g·bias; without, scale = 1 and shift = bias
    /// (0 without a bias). Rounded to float32 once.
    func inferenceAffine(
        channels: Int, bias: Buffer?, batchNorm: InferenceBatchNorm?, scale: Buffer, shift: Buffer) throws

    /// t = conv(input, weight) + bias (the first convolution; no term when
    /// `bias` is nil); u = pointwiseWeight · t over the channels when the
    /// layer has a pointwise convolution, else t; then
    /// output[b,o,y,x] = r(u[b,o,y,x]·scale[o] + shift[o] + residual[b,o,y,x])
    /// with r the ReLU where `layer.relu` (else the identity) and no
    /// residual term unless `layer.residual`.
    func fusedConvolutionForward(
        _ layer: FusedConvolution, input: Buffer, weight: Buffer, bias: Buffer?, pointwiseWeight: Buffer?,
        scale: Buffer, shift: Buffer, residual: Buffer?, output: Buffer) throws

    /// The calls in order, each with the results that
    /// ``fusedConvolutionForward(_:input:weight:bias:pointwiseWeight:scale:shift:residual:output:)``
    /// gives it. Every call has the same batch and each reads only
    /// activations written before the sequence or by an earlier call, image
    /// by image, so a device may run all of them on one image before the
    /// next (the default runs them one after the other).
    func fusedConvolutionSequence(_ calls: [FusedConvolutionCall]) throws
}

/// The operands of one ``InferenceDevice/fusedConvolutionForward(_:input:weight:bias:pointwiseWeight:scale:shift:residual:output:)``
/// call, for ``InferenceDevice/fusedConvolutionSequence(_:)``.
public struct FusedConvolutionCall {
    public var layer: FusedConvolution
    public var input: Buffer, weight: Buffer, bias: Buffer?, pointwiseWeight: Buffer?
    public var scale: Buffer, shift: Buffer, residual: Buffer?, output: Buffer

    public init(
        layer: FusedConvolution, input: Buffer, weight: Buffer, bias: Buffer?, pointwiseWeight: Buffer?,
        scale: Buffer, shift: Buffer, residual: Buffer?, output: Buffer
    ) {
        (self.layer, self.input, self.weight, self.bias, self.pointwiseWeight) = (
            layer, input, weight, bias, pointwiseWeight
        )
        (self.scale, self.shift, self.residual, self.output) = (scale, shift, residual, output)
    }
}

extension InferenceDevice {
    /// Runs the calls one after the other.
    public func fusedConvolutionSequence(_ calls: [FusedConvolutionCall]) throws {
        for c in calls {
            try fusedConvolutionForward(
                c.layer, input: c.input, weight: c.weight, bias: c.bias, pointwiseWeight: c.pointwiseWeight,
                scale: c.scale, shift: c.shift, residual: c.residual, output: c.output)
        }
    }
}

/// An eval-mode BatchNorm's parameters and running statistics (C floats each).
public struct InferenceBatchNorm {
    public var gamma: Buffer, beta: Buffer, runningMean: Buffer, runningVar: Buffer
    public var epsilon: Float

    public init(gamma: Buffer, beta: Buffer, runningMean: Buffer, runningVar: Buffer, epsilon: Float = 1e-5) {
        (self.gamma, self.beta, self.runningMean, self.runningVar, self.epsilon) = (
            gamma, beta, runningMean, runningVar, epsilon
        )
    }
}
