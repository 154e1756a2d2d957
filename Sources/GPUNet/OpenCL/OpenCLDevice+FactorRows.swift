/// The cpu family's factorised eval-mode layer in one launch
/// (cpu/conv2d_factor_rows.cl): a k×k stride-1 convolution C → r, r ≤ 16,
/// with its 1×1 factor r → O, affine map, residual and ReLU applied from
/// registers, 16 consecutive pixels of an output row in the lanes. Rows
/// narrower than 16, strided layers, ranks above 16, dense layers and the
/// gpu family keep `conv2dForward` then `fused_epilogue`.
extension OpenCLDevice {
    /// The rank accumulators of `conv2d_factor_rows_R` for rank `rank`: 4, 8 or 16, the smallest ≥ it.
    static func factorRowsAccumulators(rank: Int) -> Int { rank > 8 ? 16 : rank > 4 ? 8 : 4 }

    /// Whether `layer` runs as one `conv2d_factor_rows_R` launch: cpu
    /// family, a pointwise factor, stride 1, rank 1…16, output rows ≥ 16 wide.
    func runsFactorRows(_ layer: FusedConvolution) -> Bool {
        let s = layer.shape
        return kernelFamily == .cpu && layer.pointwiseChannels != nil && s.stride == 1 && s.outChannels <= 16
            && s.outWidth >= 16
    }

    /// `conv_pad_gradient` (where p > 0), `conv_weight_patch_major` (R
    /// columns, zero past the rank), then `conv2d_factor_rows_R`, one
    /// work-item per (image, output row, block of 16 pixels).
    func factorRowsForward(
        _ layer: FusedConvolution, input: OpenCLBuffer, weight: OpenCLBuffer, bias: OpenCLBuffer?,
        pointwise: OpenCLBuffer, scale: OpenCLBuffer, shift: OpenCLBuffer, residual: OpenCLBuffer?,
        output: OpenCLBuffer
    ) throws {
        let s = layer.shape
        let source = try padded(
            input, planes: s.batch * s.inChannels, height: s.height, width: s.width, padY: s.padding,
            padX: s.padding, name: "conv.blocked.padded")
        let r = Self.factorRowsAccumulators(rank: s.outChannels)
        let weightT = try scratchBuffer("conv.blocked.weightT", count: s.patchSize * r)
        try launch(
            "conv_weight_patch_major", items: s.patchSize * r,
            [.buffer(weight), .buffer(weightT), .int(s.outChannels), .int(s.patchSize), .int(r)])
        let blocks = (s.outWidth + 15) / 16
        try launch(
            "conv2d_factor_rows_\(r)", items: s.batch * s.outHeight * blocks,
            [
                .buffer(source), .buffer(weightT), .buffer(bias ?? weightT), .int(bias == nil ? 0 : 1),
                .buffer(pointwise), .buffer(scale), .buffer(shift), .buffer(residual ?? scale),
                .int(residual == nil ? 0 : 1), .int(layer.relu ? 1 : 0), .buffer(output), .int(s.batch),
                .int(s.inChannels), .int(s.height + 2 * s.padding), .int(s.width + 2 * s.padding),
                .int(s.kernelHeight), .int(s.kernelWidth), .int(s.outChannels), .int(layer.outChannels),
                .int(s.outHeight), .int(s.outWidth),
            ])
    }
}
