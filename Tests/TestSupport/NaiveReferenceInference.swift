import GPUNet

/// Float64 loops for ``InferenceDevice``'s operations, written from their
/// definitions: the convolution by ``NaiveReference/conv2dForward(_:input:weight:bias:)``,
/// the pointwise convolution as a sum over channels, the BatchNorm's
/// affine map from γ, β and the running statistics directly.
extension NaiveReference {
    /// scale = γ/√(v + ε), shift = β − μ·scale + scale·bias with a BatchNorm
    /// (γ, β, μ, v); scale = 1, shift = bias (or 0) without.
    public static func inferenceAffine<T: BinaryFloatingPoint>(
        channels: Int, bias: [T]?, batchNorm: (gamma: [T], beta: [T], mean: [T], variance: [T])?, epsilon: Double = 1e-5
    ) -> (scale: [Double], shift: [Double]) {
        var scale = [Double](repeating: 1, count: channels)
        var shift = (0..<channels).map { o in bias.map { Double($0[o]) } ?? 0 }
        guard let bn = batchNorm else { return (scale, shift) }
        for o in 0..<channels {
            let g = Double(bn.gamma[o]) / (Double(bn.variance[o]) + epsilon).squareRoot()
            scale[o] = g
            shift[o] = Double(bn.beta[o]) - Double(bn.mean[o]) * g + g * (bias.map { Double($0[o]) } ?? 0)
        }
        return (scale, shift)
    }

    /// ``InferenceDevice/fusedConvolutionForward(_:input:weight:bias:pointwiseWeight:scale:shift:residual:output:)``:
    /// t = conv(input, weight) + bias; u[b,o,p] = Σ_c pointwise[o,c]·t[b,c,p]
    /// (or t); output = r(u·scale[o] + shift[o] + residual), r the ReLU when `layer.relu`.
    public static func fusedConvolutionForward<T: BinaryFloatingPoint>(
        _ layer: FusedConvolution, input: [T], weight: [T], bias: [T]?, pointwiseWeight: [T]?, scale: [T],
        shift: [T], residual: [T]?
    ) -> [Double] {
        let s = layer.shape
        let t = conv2dForward(s, input: input, weight: weight, bias: bias)
        let plane = s.outHeight * s.outWidth
        let (o1, o) = (s.outChannels, layer.outChannels)
        var u = t
        if let pw = pointwiseWeight {
            u = [Double](repeating: 0, count: s.batch * o * plane)
            for b in 0..<s.batch {
                for oc in 0..<o {
                    for p in 0..<plane {
                        var sum = 0.0
                        for c in 0..<o1 { sum += Double(pw[oc * o1 + c]) * t[(b * o1 + c) * plane + p] }
                        u[(b * o + oc) * plane + p] = sum
                    }
                }
            }
        }
        var output = u
        for b in 0..<s.batch {
            for oc in 0..<o {
                for p in 0..<plane {
                    let i = (b * o + oc) * plane + p
                    var v = u[i] * Double(scale[oc]) + Double(shift[oc]) + (residual.map { Double($0[i]) } ?? 0)
                    if layer.relu { v = max(0, v) }
                    output[i] = v
                }
            }
        }
        return output
    }
}

extension InferenceDevice {
    /// ``fusedConvolutionForward(_:input:weight:bias:pointwiseWeight:scale:shift:residual:output:)``
    /// on host arrays: each uploaded to a new buffer, the output read back.
    public func fusedConvolutionForward(
        _ layer: FusedConvolution, input: [Float], weight: [Float], bias: [Float]?, pointwiseWeight: [Float]?,
        scale: [Float], shift: [Float], residual: [Float]?
    ) throws -> [Float] {
        let output = try makeBuffer(count: layer.outputCount, kind: .float32)
        try fusedConvolutionForward(
            layer, input: try makeBuffer(input), weight: try makeBuffer(weight),
            bias: try bias.map { try makeBuffer($0) }, pointwiseWeight: try pointwiseWeight.map { try makeBuffer($0) },
            scale: try makeBuffer(scale), shift: try makeBuffer(shift),
            residual: try residual.map { try makeBuffer($0) }, output: output)
        return try floats(output)
    }
}

/// One fused layer's random arguments, seeded, and their float64 result
/// (``NaiveReference/fusedConvolutionForward(_:input:weight:bias:pointwiseWeight:scale:shift:residual:)``):
/// the case that every fused-layer test runs on a device. The scale sits in
/// [0.5, 1.5], as a BatchNorm's γ/√(v + ε) does after training.
public struct FusedConvolutionCase {
    public let layer: FusedConvolution
    public let input: [Float], weight: [Float], bias: [Float]?, pointwiseWeight: [Float]?
    public let scale: [Float], shift: [Float], residual: [Float]?

    public init(_ layer: FusedConvolution, bias withBias: Bool, seed: UInt64) {
        let shape = layer.shape
        self.layer = layer
        input = randomFloats(shape.inputCount, seed: seed)
        weight = randomFloats(shape.weightCount, scale: 0.5, seed: seed + 1)
        bias = withBias ? randomFloats(shape.outChannels, scale: 0.5, seed: seed + 2) : nil
        pointwiseWeight = layer.pointwiseChannels.map {
            randomFloats($0 * shape.outChannels, scale: 0.5, seed: seed + 3)
        }
        scale = randomFloats(layer.outChannels, seed: seed + 4).map { 1 + 0.5 * $0 }
        shift = randomFloats(layer.outChannels, scale: 0.5, seed: seed + 5)
        residual = layer.residual ? randomFloats(layer.outputCount, seed: seed + 6) : nil
    }

    /// The float64 result of the layer on these arguments.
    public var expected: [Double] {
        NaiveReference.fusedConvolutionForward(
            layer, input: input, weight: weight, bias: bias, pointwiseWeight: pointwiseWeight, scale: scale,
            shift: shift, residual: residual)
    }

    /// The layer on `device`, from host arrays.
    public func run(on device: InferenceDevice) throws -> [Float] {
        try device.fusedConvolutionForward(
            layer, input: input, weight: weight, bias: bias, pointwiseWeight: pointwiseWeight, scale: scale,
            shift: shift, residual: residual)
    }
}
