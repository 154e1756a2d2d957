/// The cpu family's factorised eval-mode layer in one launch
/// (cpu/conv2d_factor_rows.cl): a k×k stride-1 convolution C → r, r ≤ 18,
/// with its 1×1 factor r → O, affine map, residual and ReLU applied from
/// registers, 16 consecutive pixels of an output row in the lanes and R ≥ r
/// sums. Where that costs more vector lanes than the blocked forward with
/// channels in its lanes (``factorRowsPays(rank:outWidth:)``), and for
/// strided layers, ranks above 18, dense layers and the gpu family, the layer
/// keeps `conv2dForward` then `fused_epilogue`.
extension OpenCLDevice {
    /// The sums of `conv2d_factor_rows_R`, the smallest R ≥ the rank.
    static let factorRowsAccumulators = [4, 6, 8, 12, 16, 18]

    /// The R of `conv2d_factor_rows_R` for `rank`, nil above 18.
    static func factorRowsAccumulators(rank: Int) -> Int? { factorRowsAccumulators.first { $0 >= rank } }

    /// Whether the row kernel does less vector work than the blocked
    /// forward, per output row: R sums × 16 lanes for each block of 16
    /// pixels (⌈oW/16⌉ blocks) against 16 lanes per pixel for each group of
    /// 16 channels begun (⌈r/16⌉ groups), R·⌈oW/16⌉ ≤ ⌈r/16⌉·oW. The 1×1
    /// factor is not counted: the row kernel applies it from registers, the
    /// other path in a second pass over memory.
    static func factorRowsPays(rank: Int, outWidth: Int) -> Bool {
        guard let r = factorRowsAccumulators(rank: rank) else { return false }
        return r * ((outWidth + 15) / 16) <= (rank + 15) / 16 * outWidth
    }

    /// Whether `layer` runs as one `conv2d_factor_rows_R` launch: cpu
    /// family, a pointwise factor, stride 1, rank ≤ 18 where
    /// ``factorRowsPays(rank:outWidth:)``, and rows ≥ 16 wide or a padded
    /// input (a row narrower than 16 reads past its end, into the padded
    /// copy's next row or slack).
    func runsFactorRows(_ layer: FusedConvolution) -> Bool {
        let s = layer.shape
        return kernelFamily == .cpu && layer.pointwiseChannels != nil && s.stride == 1
            && Self.factorRowsPays(rank: s.outChannels, outWidth: s.outWidth) && (s.outWidth >= 16 || s.padding > 0)
    }

    /// `conv_pad_gradient` (where p > 0; 16 floats of slack), `conv_weight_patch_major` (R
    /// columns, zero past the rank), then `conv2d_factor_rows_R`, one
    /// work-item per (image, output row, block of 16 pixels).
    func factorRowsForward(
        _ layer: FusedConvolution, input: OpenCLBuffer, weight: OpenCLBuffer, bias: OpenCLBuffer?,
        pointwise: OpenCLBuffer, scale: OpenCLBuffer, shift: OpenCLBuffer, residual: OpenCLBuffer?,
        output: OpenCLBuffer
    ) throws {
        let s = layer.shape
        guard let r = Self.factorRowsAccumulators(rank: s.outChannels) else {
            throw OpenCLError.invalidArgument("factorRowsForward \(layer): rank above 18")
        }
        let source = try padded(
            input, planes: s.batch * s.inChannels, height: s.height, width: s.width, padY: s.padding,
            padX: s.padding, name: "conv.blocked.padded", slack: 16)
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
