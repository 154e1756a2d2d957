/// Eval-mode convolution layers on OpenCL (``InferenceDevice``), both
/// kernel families (the cpu family runs a factorised stride-1 layer of rank
/// ≤ 16 with rows ≥ 16 wide as one `conv2d_factor_rows_R` launch instead,
/// ``factorRowsForward(_:input:weight:bias:pointwise:scale:shift:residual:output:)``):
/// the first convolution by the family's general
/// convolution (``conv2dForward(_:input:weight:bias:output:)``) into a work
/// buffer, then `fused_epilogue` (common): the pointwise convolution as a
/// product over NCHW (no columns), the affine map, the residual sum and the
/// ReLU in one pass, where the layer-by-layer pass runs a 1×1 convolution,
/// a BatchNorm, a sum and a ReLU, each reading and writing the whole
/// activation. `inference_affine` (common) forms the scale and shift on
/// the device, so the pass waits for nothing (once per
/// ``NetworkPlan/withParametersFixed(_:)``, as in ``Evaluation``).
extension OpenCLDevice: InferenceDevice {
    public func supportsFusedConvolution(_ layer: FusedConvolution) -> Bool {
        layer.shape.isValid && (layer.pointwiseChannels ?? 1) > 0
    }

    public func inferenceAffine(
        channels: Int, bias: Buffer?, batchNorm: InferenceBatchNorm?, scale: Buffer, shift: Buffer
    ) throws {
        let operation = "inferenceAffine"
        guard channels > 0 else { throw OpenCLError.invalidArgument("\(operation): \(channels) channels") }
        let scaleBuffer = try cl(scale, "scale", atLeast: channels, in: operation)
        let shiftBuffer = try cl(shift, "shift", atLeast: channels, in: operation)
        let biasBuffer = try bias.map { try cl($0, "bias", atLeast: channels, in: operation) }
        // Unread placeholders (flag 0) for the absent tensors.
        func read(_ b: Buffer?, _ role: String) throws -> OpenCLBuffer {
            try b.map { try cl($0, role, atLeast: channels, in: operation) } ?? scaleBuffer
        }
        try launch(
            "inference_affine", items: channels,
            [
                .buffer(biasBuffer ?? scaleBuffer), .int(biasBuffer == nil ? 0 : 1),
                .buffer(try read(batchNorm?.gamma, "gamma")), .buffer(try read(batchNorm?.beta, "beta")),
                .buffer(try read(batchNorm?.runningMean, "runningMean")),
                .buffer(try read(batchNorm?.runningVar, "runningVar")), .int(batchNorm == nil ? 0 : 1),
                .float(batchNorm?.epsilon ?? 0), .buffer(scaleBuffer), .buffer(shiftBuffer), .int(channels),
            ])
    }

    public func fusedConvolutionForward(
        _ layer: FusedConvolution, input: Buffer, weight: Buffer, bias: Buffer?, pointwiseWeight: Buffer?,
        scale: Buffer, shift: Buffer, residual: Buffer?, output: Buffer
    ) throws {
        let operation = "fusedConvolutionForward \(layer)"
        let s = layer.shape
        try validate(s, operation)
        guard supportsFusedConvolution(layer), (layer.pointwiseChannels == nil) == (pointwiseWeight == nil),
            layer.residual == (residual != nil)
        else { throw OpenCLError.invalidArgument("\(operation): the buffers do not match the layer") }
        let (o1, o) = (s.outChannels, layer.outChannels)
        let plane = s.outHeight * s.outWidth
        let scaleBuffer = try cl(scale, "scale", atLeast: o, in: operation)
        let shiftBuffer = try cl(shift, "shift", atLeast: o, in: operation)
        let pointwiseBuffer = try pointwiseWeight.map { try cl($0, "pointwiseWeight", atLeast: o * o1, in: operation) }
        let residualBuffer = try residual.map { try cl($0, "residual", atLeast: layer.outputCount, in: operation) }
        let outputBuffer = try cl(output, "output", atLeast: layer.outputCount, in: operation)
        guard layer.outputCount > 0 else { return }
        if runsFactorRows(layer), let pointwiseBuffer {
            let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: operation)
            return try factorRowsForward(
                layer, input: inputBuffer, weight: try cl(weight, "weight", atLeast: s.weightCount, in: operation),
                bias: try bias.map { try cl($0, "bias", atLeast: o1, in: operation) }, pointwise: pointwiseBuffer,
                scale: scaleBuffer, shift: shiftBuffer, residual: residualBuffer, output: outputBuffer)
        }
        let t = try scratchBuffer("conv.inference.t", count: s.outputCount)
        try conv2dForward(s, input: input, weight: weight, bias: bias, output: t)
        try launch(
            "fused_epilogue", items: s.batch * o * ((plane + 15) / 16),
            [
                .buffer(t), .int(o1), .buffer(pointwiseBuffer ?? scaleBuffer), .int(pointwiseBuffer == nil ? 0 : 1),
                .int(o), .int(plane), .int(s.batch), .buffer(scaleBuffer), .buffer(shiftBuffer),
                .buffer(residualBuffer ?? scaleBuffer), .int(residualBuffer == nil ? 0 : 1), .int(layer.relu ? 1 : 0),
                .buffer(outputBuffer),
            ])
    }
}
