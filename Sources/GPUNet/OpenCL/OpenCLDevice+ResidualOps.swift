/// The layers of residual networks on OpenCL. The general convolution has a
/// kernel per family: the cpu family's (cpu/conv2d_blocked.cl,
/// OpenCLDevice+BlockedConvolution.swift) keep blocks of W channels × P
/// pixels or taps in P vectors per work-item; the gpu family's
/// (gpu/conv2d_tiled.cl) are implicit GEMMs over 16×16 tiles staged in local
/// memory, one work-item per result. Batch normalisation's statistics are
/// per-channel sums in fixed-order chunks, so that a seed gives the same
/// result on every run: in the cpu family a work-item per (channel, chunk
/// of whole images) in float16 vectors (cpu/batchnorm_chunks.cl), in the
/// gpu family a work-group tree per chunk of 1,024 values, its reads
/// coalesced (gpu/batchnorm_statistics.cl, gpu/channel_partials.cl); its elementwise
/// passes go per plane in float4 in the cpu family and per element in the
/// gpu family. The residual sum and the global average pool are
/// elementwise or per-plane work that both families launch alike (common/).
extension OpenCLDevice {
    /// Values per chunk of the cpu family's per-channel sums
    /// (`channel_partials`): resnet8's first layer at batch 128, 16
    /// channels × 100,352 values, makes 16 × 392 work-items, plenty for a
    /// CPU. A float32 sum of 256 terms stays within ~1e-6 of its scale.
    static let channelChunkLength = 256

    /// The cpu family's chunks of a batch normalisation's per-channel sums
    /// (`batchnorm_chunk_moments`, `batchnorm_chunk_grad_sums`): whole
    /// images, about 8,192 values (32 KiB) a chunk, so that a chunk stays in
    /// a core's cache between the forward's two passes over it, the images
    /// dealt evenly. Resnet8's first layer at batch 128 (16 channels of
    /// 128 × 784 values): 12 chunks of 11 images, 192 work-items; its last
    /// (64 channels of 128 × 49): one chunk, 64 work-items.
    static func batchNormChunks(_ s: BatchNormShape) -> (imagesPerChunk: Int, chunks: Int) {
        let plane = max(s.map.planeSize, 1)
        let imagesFor8192 = (8192 + plane - 1) / plane
        let wanted = max(1, (s.batch + imagesFor8192 - 1) / imagesFor8192)
        let imagesPerChunk = max(1, (s.batch + wanted - 1) / wanted)
        return (imagesPerChunk, max(1, (s.batch + imagesPerChunk - 1) / imagesPerChunk))
    }

    /// Values each work-item of the gpu family's chunked sums reads
    /// (`GPU_CHUNK_VALUES` in common/common.cl).
    static let gpuChunkValuesPerItem = 4

    /// The work-group of the gpu family's chunked BatchNorm and channel sums
    /// (`gpu_batchnorm_chunk_moments`, `gpu_channel_partials` and the fused
    /// passes that read their partials on the same grid): the largest power
    /// of two ≤ 256 that all of them allow here (a tree needs a power of two
    /// and holds 256 floats), so that a chunk is 4·256 = 1,024 values on a
    /// GPU and on PoCL, one chunking for every kernel that shares the
    /// partials. Found once per device (``gpuChunkLayout``).
    func gpuChunkGroup() throws -> Int { try chunkLayout().group }

    /// The gpu family's chunk kernels, whose work-groups must agree.
    private static let gpuChunkKernels =
        ["gpu_batchnorm_chunk_moments", "gpu_channel_partials"] + gpuFusedBatchNormKernels

    /// The gpu family's fused training BatchNorm passes
    /// (gpu/batchnorm_elements.cl): the combine with the normalisation, the
    /// gradient sums with the input gradient.
    public static let gpuFusedBatchNormKernels = ["gpu_batchnorm_combine_apply", "gpu_batchnorm_sums_backward_apply"]

    /// The most chunks a channel may have for the fused passes
    /// (`GPU_BN_FUSED_CHUNKS`: their groups stage a channel's partials in
    /// local memory).
    static let gpuFusedBatchNormChunks = 1024

    /// Whether a training BatchNorm with `chunks` chunks a channel runs the
    /// gpu family's fused passes here: their 8 KiB of staged partials fit
    /// the device's local memory and the chunks fit the staging. Else the
    /// separate kernels run (`batchnorm_combine_moments` then
    /// `gpu_batchnorm_apply`; `channel_sum_chunk_pairs` then
    /// `gpu_batchnorm_backward_apply`), one launch more each, the same bits.
    public func fusesBatchNormPasses(chunks: Int = 1) throws -> Bool {
        guard kernelFamily == .gpu, chunks <= Self.gpuFusedBatchNormChunks else { return false }
        return try chunkLayout().fusedPassesFit
    }

    /// ``gpuChunkLayout``, found on first use from the kernels' limits.
    private func chunkLayout() throws -> (group: Int, fusedPassesFit: Bool) {
        if let layout = gpuChunkLayout { return layout }
        var limit = 256
        for name in Self.gpuChunkKernels { limit = min(limit, try kernel(name).maxWorkGroupSize) }
        var size = 1
        while size * 2 <= limit { size *= 2 }
        var fit = true
        for name in Self.gpuFusedBatchNormKernels
        where try kernel(name).staticLocalBytes > context.entry.localMemoryBytes {
            fit = false
        }
        gpuChunkLayout = (size, fit)
        return (size, fit)
    }

    /// Per-channel partial sums of values (B, C, P) in fixed-order chunks,
    /// in `channel_partials`' modes (common/channel_sums.cl: 0 Σa, 1
    /// Σ(a − saved[c])², 2 Σa and Σa·(b − μ)·σ⁻¹, 3 mode 2 masked):
    /// cpu family `channel_partials`, a work-item per chunk of
    /// ``channelChunkLength`` values; gpu family `gpu_channel_partials`, a
    /// work-group tree per chunk of ``gpuChunkValuesPerItem``·L values (L
    /// from ``gpuChunkGroup()``, coalesced reads). The partials are one
    /// row of C·chunks (two in modes 2 and 3) for `channel_sum_chunks` or
    /// `channel_sum_chunk_pairs`; one launch.
    func channelPartials(
        _ a: OpenCLBuffer, _ b: OpenCLBuffer, saved: OpenCLBuffer, mask: OpenCLBuffer, batch: Int, channels: Int,
        plane: Int, mode: Int
    ) throws -> (partials: OpenCLBuffer, chunks: Int) {
        let rows = mode >= 2 ? 2 : 1
        if kernelFamily == .gpu {
            let group = try gpuChunkGroup()
            let chunkValues = Self.gpuChunkValuesPerItem * group
            let chunks = max(1, (batch * plane + chunkValues - 1) / chunkValues)
            let partials = try scratchBuffer("channel.partials", count: rows * channels * chunks)
            try launch(
                "gpu_channel_partials", items: channels * chunks * group, local: group,
                [
                    .buffer(a), .buffer(b), .buffer(saved), .buffer(mask), .buffer(partials), .int(batch),
                    .int(channels), .int(plane), .int(chunks), .int(mode),
                ])
            return (partials, chunks)
        }
        let chunks = max(1, (batch * plane + Self.channelChunkLength - 1) / Self.channelChunkLength)
        let partials = try scratchBuffer("channel.partials", count: rows * channels * chunks)
        try launch(
            "channel_partials", items: channels * chunks,
            [
                .buffer(a), .buffer(b), .buffer(saved), .buffer(mask), .buffer(partials), .int(batch), .int(channels),
                .int(plane), .int(Self.channelChunkLength), .int(chunks), .int(mode),
            ])
        return (partials, chunks)
    }

    /// The work-group size of the gpu family's tiled convolutions (16×16).
    static let convTileItems = 256

    func validate(_ s: Conv2dShape, _ operation: @autoclosure () -> String) throws {
        guard s.isValid else { throw OpenCLError.invalidArgument("\(operation()): unsupported convolution \(s)") }
    }

    /// Whether the gpu family's tiled kernel `name` runs here: a work-group
    /// of 256 allowed and its 2 KiB of tiles in local memory.
    private func tiled(_ name: String) throws -> Bool {
        guard kernelFamily == .gpu else { return false }
        let k = try kernel(name)
        return k.maxWorkGroupSize >= Self.convTileItems && k.staticLocalBytes <= context.entry.localMemoryBytes
    }

    /// Tiles of 16 along m and n: the work-groups of a tiled launch.
    private static func tiles(_ m: Int, _ n: Int) -> Int { (m + 15) / 16 * ((n + 15) / 16) }

    /// The launches of the gpu family's tiled convolution for `s`, as
    /// ``conv2dForward(_:input:weight:bias:output:)`` and the two backward
    /// passes enqueue them (work-groups of 256).
    public struct TiledConvolutionLaunch: Equatable, Sendable {
        /// Work-items of `gpu_conv2d_tiled_forward`: 256 per 16×16 block of (O × B·oH·oW).
        public var forwardItems: Int
        /// Work-items of `gpu_conv2d_tiled_data`: 256 per 16×16 block of (C × B·H·W).
        public var dataItems: Int
        /// Work-items of `gpu_conv2d_tiled_weight`: 256 per 16×16 block of
        /// (O × C·kH·kW) per chunk of the B·oH·oW output pixels.
        public var weightItems: Int
        /// The weight gradient's chunks and the output pixels in each (a multiple of 16).
        public var weightChunks: Int, chunkLength: Int
    }

    /// The tiled launches for `s`. The weight gradient's sum over B·oH·oW
    /// pixels is cut into chunks (whole 16-pixel steps) until there are 64
    /// work-groups (16,384 work-items) or each chunk is one step.
    public static func tiledLaunch(_ s: Conv2dShape) -> TiledConvolutionLaunch {
        let tiles = Self.tiles(s.outChannels, s.patchSize)
        let steps = max(1, (s.patchCount + 15) / 16)
        let wanted = max(1, min(steps, (64 + tiles - 1) / tiles))
        let chunkLength = (steps + wanted - 1) / wanted * 16
        let chunks = max(1, (s.patchCount + chunkLength - 1) / chunkLength)
        return TiledConvolutionLaunch(
            forwardItems: Self.tiles(s.outChannels, s.patchCount) * convTileItems,
            dataItems: Self.tiles(s.inChannels, s.batch * s.height * s.width) * convTileItems,
            weightItems: tiles * chunks * convTileItems, weightChunks: chunks, chunkLength: chunkLength)
    }

    // MARK: General convolution

    /// gpu family: `gpu_conv2d_tiled_forward`, a work-group per 16×16 block
    /// of (output channels × pixels). cpu family:
    /// ``blockedConv2dForward(_:input:weight:bias:output:)``, a work-item per
    /// (block of pixels, W output channels) over a zero-padded input.
    public func conv2dForward(_ s: Conv2dShape, input: Buffer, weight: Buffer, bias: Buffer?, output: Buffer) throws {
        func operation() -> String { "conv2dForward \(s)" }
        try validate(s, operation())
        let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: operation())
        let weightBuffer = try cl(weight, "weight", atLeast: s.weightCount, in: operation())
        let biasBuffer = try bias.map { try cl($0, "bias", atLeast: s.outChannels, in: operation()) }
        let outputBuffer = try cl(output, "output", atLeast: s.outputCount, in: operation())
        guard s.outputCount > 0 else { return }
        if try tiled("gpu_conv2d_tiled_forward") {
            return try launch(
                "gpu_conv2d_tiled_forward", items: Self.tiledLaunch(s).forwardItems,
                local: Self.convTileItems,
                [
                    .buffer(inputBuffer), .buffer(weightBuffer), .buffer(biasBuffer ?? weightBuffer),
                    .buffer(outputBuffer), .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width),
                    .int(s.outChannels), .int(s.kernelHeight), .int(s.kernelWidth), .int(s.stride), .int(s.padding),
                    .int(s.outHeight), .int(s.outWidth), .int(biasBuffer == nil ? 0 : 1),
                ])
        }
        try blockedConv2dForward(s, input: inputBuffer, weight: weightBuffer, bias: biasBuffer, output: outputBuffer)
    }

    /// gpu family: `gpu_conv2d_tiled_data`, a work-group per 16×16 block of
    /// (input channels × input pixels). cpu family:
    /// ``blockedConv2dBackwardData(_:gradOutput:weight:gradInput:)``, the
    /// blocked forward sum of the padded gradient with the flipped weights,
    /// once per stride phase.
    public func conv2dBackwardData(_ s: Conv2dShape, gradOutput: Buffer, weight: Buffer, gradInput: Buffer) throws {
        func operation() -> String { "conv2dBackwardData \(s)" }
        try validate(s, operation())
        let gradOutputBuffer = try cl(gradOutput, "gradOutput", atLeast: s.outputCount, in: operation())
        let weightBuffer = try cl(weight, "weight", atLeast: s.weightCount, in: operation())
        let gradInputBuffer = try cl(gradInput, "gradInput", atLeast: s.inputCount, in: operation())
        guard s.inputCount > 0 else { return }
        if try tiled("gpu_conv2d_tiled_data") {
            return try launch(
                "gpu_conv2d_tiled_data", items: Self.tiledLaunch(s).dataItems,
                local: Self.convTileItems,
                [
                    .buffer(gradOutputBuffer), .buffer(weightBuffer), .buffer(gradInputBuffer), .int(s.batch),
                    .int(s.inChannels), .int(s.height), .int(s.width), .int(s.outChannels), .int(s.kernelHeight),
                    .int(s.kernelWidth), .int(s.stride), .int(s.padding), .int(s.outHeight), .int(s.outWidth),
                ])
        }
        try blockedConv2dBackwardData(
            s, gradOutput: gradOutputBuffer, weight: weightBuffer, gradInput: gradInputBuffer)
    }

    /// gpu family: `gpu_conv2d_tiled_weight` over chunks of the output
    /// pixels, then `gpu_sum_chunks` in chunk order; chunks enough for at
    /// least 64 work-groups (16,384 work-items) where the pixels allow, and
    /// with one chunk (64 or more tiles of the weight: ResNet's 32→64 and
    /// 64→64 layers) the kernel writes the gradient and nothing follows.
    /// cpu family: ``blockedConv2dBackwardWeight(_:input:gradOutput:gradWeight:)``,
    /// partial sums over chunks of images, then `conv2d_weight_reduce`
    /// adding them in order. The bias gradient:
    /// ``channelPartials(_:_:saved:mask:batch:channels:plane:mode:)`` and
    /// `channel_sum_chunks`, fixed-order chunks.
    public func conv2dBackwardWeight(
        _ s: Conv2dShape, input: Buffer, gradOutput: Buffer, gradWeight: Buffer, gradBias: Buffer?
    ) throws {
        func operation() -> String { "conv2dBackwardWeight \(s)" }
        try validate(s, operation())
        let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: operation())
        let gradOutputBuffer = try cl(gradOutput, "gradOutput", atLeast: s.outputCount, in: operation())
        let gradWeightBuffer = try cl(gradWeight, "gradWeight", atLeast: s.weightCount, in: operation())
        let gradBiasBuffer = try gradBias.map { try cl($0, "gradBias", atLeast: s.outChannels, in: operation()) }
        guard s.batch > 0 else {
            try fill(gradWeightBuffer, value: 0)
            if let gradBiasBuffer { try fill(gradBiasBuffer, value: 0) }
            return
        }
        if let gradBiasBuffer {
            try channelSums(
                s.batch, s.outChannels, s.outHeight * s.outWidth, of: gradOutputBuffer, into: gradBiasBuffer,
                scale: 1, operation: operation())
        }
        if try tiled("gpu_conv2d_tiled_weight") {
            let plan = Self.tiledLaunch(s)
            // One chunk: its partials, laid out (out, in·kH·kW, 1), are the gradient itself.
            let partials =
                plan.weightChunks == 1
                ? gradWeightBuffer : try scratchBuffer("conv.tiled.partials", count: s.weightCount * plan.weightChunks)
            try launch(
                "gpu_conv2d_tiled_weight", items: plan.weightItems, local: Self.convTileItems,
                [
                    .buffer(inputBuffer), .buffer(gradOutputBuffer), .buffer(partials), .int(s.batch),
                    .int(s.inChannels), .int(s.height), .int(s.width), .int(s.outChannels), .int(s.kernelHeight),
                    .int(s.kernelWidth), .int(s.stride), .int(s.padding), .int(s.outHeight), .int(s.outWidth),
                    .int(plan.weightChunks), .int(plan.chunkLength),
                ])
            if plan.weightChunks == 1 { return }
            return try launch(
                "gpu_sum_chunks", items: s.weightCount,
                [.buffer(partials), .buffer(gradWeightBuffer), .int(s.weightCount), .int(plan.weightChunks)])
        }
        try blockedConv2dBackwardWeight(
            s, input: inputBuffer, gradOutput: gradOutputBuffer, gradWeight: gradWeightBuffer)
    }

    /// total[c] = scale·Σ over (B, C, P) values of channel c, in fixed-order
    /// chunks (``channelPartials(_:_:saved:mask:batch:channels:plane:mode:)``
    /// mode 0, `channel_sum_chunks`).
    private func channelSums(
        _ batch: Int, _ channels: Int, _ plane: Int, of values: OpenCLBuffer, into total: OpenCLBuffer,
        scale: Float, operation: @autoclosure () -> String
    ) throws {
        let (partials, chunks) = try channelPartials(
            values, values, saved: values, mask: values, batch: batch, channels: channels, plane: plane, mode: 0)
        try launch(
            "channel_sum_chunks", items: channels,
            [.buffer(partials), .buffer(total), .int(channels), .int(chunks), .int(0), .float(scale)])
    }

    // MARK: Batch normalisation

    /// Training: each chunk's Σx and Σ(x − m_k)² about its own mean, by
    /// `batchnorm_chunk_moments` (cpu family: a work-item per chunk of whole
    /// images, ``batchNormChunks(_:)``) or `gpu_batchnorm_chunk_moments`
    /// (gpu family: a work-group tree per chunk, ``gpuChunkGroup()``),
    /// then `batchnorm_combine_moments` (μ, σ, running statistics): two
    /// launches and one read of the input. Eval: `batchnorm_eval_statistics`. Then
    /// `batchnorm_apply_planes` (cpu family: a work-item per plane, float4
    /// along it) or `gpu_batchnorm_apply` (a work-item per element). The gpu
    /// family in training combines and normalises in one launch where it
    /// can (`gpu_batchnorm_combine_apply`, ``fusesBatchNormPasses(chunks:)``):
    /// two launches in all.
    public func batchNormForward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, runningMean: Buffer,
        runningVar: Buffer, saved: Buffer, output: Buffer, training: Bool
    ) throws {
        try batchNormForward(
            s, input: input, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar, saved: saved,
            output: output, training: training, relu: false)
    }

    /// The statistics of ``batchNormForward(_:input:gamma:beta:runningMean:runningVar:saved:output:training:)``,
    /// then its normalising kernel with its ReLU flag set: no launch more than BatchNorm alone.
    public func batchNormReluForward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, runningMean: Buffer,
        runningVar: Buffer, saved: Buffer, output: Buffer, training: Bool
    ) throws {
        try batchNormForward(
            s, input: input, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar, saved: saved,
            output: output, training: training, relu: true)
    }

    private func batchNormForward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, runningMean: Buffer,
        runningVar: Buffer, saved: Buffer, output: Buffer, training: Bool, relu: Bool
    ) throws {
        func operation() -> String { "batchNorm\(relu ? "Relu" : "")Forward \(s)" }
        try validate(s, operation(), training: training)
        let c = s.channels
        let x = try cl(input, "input", atLeast: s.count, in: operation())
        let g = try cl(gamma, "gamma", atLeast: c, in: operation())
        let b = try cl(beta, "beta", atLeast: c, in: operation())
        let rm = try cl(runningMean, "runningMean", atLeast: c, in: operation())
        let rv = try cl(runningVar, "runningVar", atLeast: c, in: operation())
        let sv = try cl(saved, "saved", atLeast: 2 * c, in: operation())
        let y = try cl(output, "output", atLeast: s.count, in: operation())
        let plane = s.map.planeSize
        if training {
            let partials: OpenCLBuffer
            let chunks: Int
            let chunkValues: Int
            if kernelFamily == .cpu {
                let imagesPerChunk: Int
                (imagesPerChunk, chunks) = Self.batchNormChunks(s)
                chunkValues = imagesPerChunk * plane
                partials = try scratchBuffer("batchnorm.partials", count: 2 * c * chunks)
                try launch(
                    "batchnorm_chunk_moments", items: c * chunks,
                    [
                        .buffer(x), .buffer(partials), .int(s.batch), .int(c), .int(plane), .int(imagesPerChunk),
                        .int(chunks),
                    ])
            } else {
                let group = try gpuChunkGroup()
                chunkValues = Self.gpuChunkValuesPerItem * group
                chunks = (s.valuesPerChannel + chunkValues - 1) / chunkValues
                partials = try scratchBuffer("batchnorm.partials", count: 2 * c * chunks)
                try launch(
                    "gpu_batchnorm_chunk_moments", items: c * chunks * group, local: group,
                    [.buffer(x), .buffer(partials), .int(s.batch), .int(c), .int(plane), .int(chunks)])
                if try fusesBatchNormPasses(chunks: chunks) {
                    return try launch(
                        "gpu_batchnorm_combine_apply", items: c * chunks * group, local: group,
                        [
                            .buffer(x), .buffer(partials), .buffer(g), .buffer(b), .buffer(sv), .buffer(rm),
                            .buffer(rv), .buffer(y), .int(s.batch), .int(c), .int(plane), .int(chunks),
                            .float(s.epsilon), .float(s.momentum), .int(relu ? 1 : 0),
                        ])
                }
            }
            try launch(
                "batchnorm_combine_moments", items: c,
                [
                    .buffer(partials), .buffer(sv), .buffer(rm), .buffer(rv), .int(c), .int(chunks),
                    .int(chunkValues), .int(s.valuesPerChannel), .float(s.epsilon), .float(s.momentum),
                ])
        } else {
            try launch(
                "batchnorm_eval_statistics", items: c,
                [.buffer(rm), .buffer(rv), .buffer(sv), .int(c), .float(s.epsilon)])
        }
        try launchBatchNormApply(s, x, g, b, sv, y, relu: relu)
    }

    /// y = γ·(x − mean)·invStd + β with the saved (mean, invStd), then
    /// RELU(y) with `relu`: one work-item a value (`gpu_batchnorm_apply`) or
    /// a plane (`batchnorm_apply_planes`).
    func launchBatchNormApply(
        _ s: BatchNormShape, _ x: OpenCLBuffer, _ g: OpenCLBuffer, _ b: OpenCLBuffer, _ sv: OpenCLBuffer,
        _ y: OpenCLBuffer, relu: Bool = false
    )
        throws
    {
        let (c, plane) = (s.channels, s.map.planeSize)
        if kernelFamily == .gpu {
            return try launch(
                "gpu_batchnorm_apply", items: s.count,
                [
                    .buffer(x), .buffer(g), .buffer(b), .buffer(sv), .buffer(y), .int(s.count), .int(c), .int(plane),
                    .int(relu ? 1 : 0),
                ])
        }
        try launch(
            "batchnorm_apply_planes", items: s.batch * c,
            [
                .buffer(x), .buffer(g), .buffer(b), .buffer(sv), .buffer(y), .int(s.batch * c), .int(c), .int(plane),
                .int(relu ? 1 : 0),
            ])
    }

    /// Σdy and Σdy·x̂ per chunk (cpu family: `batchnorm_chunk_grad_sums`
    /// over ``batchNormChunks(_:)``; gpu family: `gpu_channel_partials`),
    /// `channel_sum_chunk_pairs` (gradBeta, gradGamma in one launch), then
    /// `batchnorm_backward_apply_planes` (cpu family) or
    /// `gpu_batchnorm_backward_apply` (gpu family). The gpu family in
    /// training adds the sums and computes the input gradient in one launch
    /// where it can (`gpu_batchnorm_sums_backward_apply`,
    /// ``fusesBatchNormPasses(chunks:)``): two launches in all.
    public func batchNormBackward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, gradOutput: Buffer,
        gradInput: Buffer, gradGamma: Buffer, gradBeta: Buffer, training: Bool
    ) throws {
        try batchNormBackward(
            s, input: input, gamma: gamma, saved: saved, mask: nil, gradOutput: gradOutput, gradInput: gradInput,
            gradGamma: gradGamma, gradBeta: gradBeta, training: training)
    }

    /// The kernels of ``batchNormBackward(_:input:gamma:saved:gradOutput:gradInput:gradGamma:gradBeta:training:)``
    /// with their mask flag set (`gpu_channel_partials` in mode 3 in the gpu
    /// family): no launch more than BatchNorm's backward alone.
    public func batchNormReluBackward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, output: Buffer, gradOutput: Buffer,
        gradInput: Buffer, gradGamma: Buffer, gradBeta: Buffer, training: Bool
    ) throws {
        try batchNormBackward(
            s, input: input, gamma: gamma, saved: saved, mask: output, gradOutput: gradOutput, gradInput: gradInput,
            gradGamma: gradGamma, gradBeta: gradBeta, training: training)
    }

    /// BatchNorm's backward; with `mask` (a fused ReLU's output), of the
    /// gradient taken as 0 where the mask is ≤ 0.
    private func batchNormBackward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, mask: Buffer?, gradOutput: Buffer,
        gradInput: Buffer, gradGamma: Buffer, gradBeta: Buffer, training: Bool
    ) throws {
        func operation() -> String { "batchNorm\(mask == nil ? "" : "Relu")Backward \(s)" }
        try validate(s, operation(), training: training)
        let c = s.channels
        let x = try cl(input, "input", atLeast: s.count, in: operation())
        let g = try cl(gamma, "gamma", atLeast: c, in: operation())
        let sv = try cl(saved, "saved", atLeast: 2 * c, in: operation())
        let dy = try cl(gradOutput, "gradOutput", atLeast: s.count, in: operation())
        // Without a mask the kernels read none: they are handed the gradient in its place.
        let m = try mask.map { try cl($0, "output", atLeast: s.count, in: operation()) } ?? dy
        let masked = mask == nil ? 0 : 1
        let dx = try cl(gradInput, "gradInput", atLeast: s.count, in: operation())
        let dg = try cl(gradGamma, "gradGamma", atLeast: c, in: operation())
        let db = try cl(gradBeta, "gradBeta", atLeast: c, in: operation())
        let plane = s.map.planeSize
        let gpu = kernelFamily == .gpu
        let chunks: Int
        let partials: OpenCLBuffer
        if gpu {
            (partials, chunks) = try channelPartials(
                dy, x, saved: sv, mask: m, batch: s.batch, channels: c, plane: plane, mode: 2 + masked)
            if training, try fusesBatchNormPasses(chunks: chunks) {
                let group = try gpuChunkGroup()
                return try launch(
                    "gpu_batchnorm_sums_backward_apply", items: c * chunks * group, local: group,
                    [
                        .buffer(x), .buffer(partials), .buffer(g), .buffer(sv), .buffer(dy), .buffer(m), .buffer(dg),
                        .buffer(db), .buffer(dx), .int(s.batch), .int(c), .int(plane), .int(chunks), .int(masked),
                    ])
            }
        } else {
            let imagesPerChunk: Int
            (imagesPerChunk, chunks) = Self.batchNormChunks(s)
            partials = try scratchBuffer("batchnorm.partials", count: 2 * c * chunks)
            try launch(
                "batchnorm_chunk_grad_sums", items: c * chunks,
                [
                    .buffer(x), .buffer(dy), .buffer(m), .buffer(sv), .buffer(partials), .int(s.batch), .int(c),
                    .int(plane), .int(imagesPerChunk), .int(chunks), .int(masked),
                ])
        }
        try launch(
            "channel_sum_chunk_pairs", items: 2 * c,
            [.buffer(partials), .buffer(db), .buffer(dg), .int(c), .int(chunks)])
        try launch(
            gpu ? "gpu_batchnorm_backward_apply" : "batchnorm_backward_apply_planes",
            items: gpu ? s.count : s.batch * c,
            [
                .buffer(x), .buffer(g), .buffer(sv), .buffer(dy), .buffer(m), .buffer(dg), .buffer(db), .buffer(dx),
                .int(gpu ? s.count : s.batch * c), .int(c), .int(plane), .int(s.valuesPerChannel),
                .int(training ? 1 : 0), .int(masked),
            ])
    }

    func validate(_ s: BatchNormShape, _ operation: @autoclosure () -> String, training: Bool) throws {
        guard s.map.isValid, s.channels > 0 else { throw OpenCLError.invalidArgument("\(operation()): invalid shape") }
        guard !training || s.valuesPerChannel > 1 else {
            throw OpenCLError.invalidArgument(
                "\(operation()): training needs more than one value per channel (B·H·W = \(s.valuesPerChannel))")
        }
    }

    // MARK: Residual sum and global average pool

    /// `residual_add`, 16 elements per work-item.
    public func residualAdd(count: Int, _ a: Buffer, _ b: Buffer, output: Buffer) throws {
        try residualAdd(count: count, a, b, output: output, relu: false)
    }

    /// `residual_add` with its ReLU flag set.
    public func residualAddRelu(count: Int, _ a: Buffer, _ b: Buffer, output: Buffer) throws {
        try residualAdd(count: count, a, b, output: output, relu: true)
    }

    private func residualAdd(count: Int, _ a: Buffer, _ b: Buffer, output: Buffer, relu: Bool) throws {
        func operation() -> String { relu ? "residualAddRelu" : "residualAdd" }
        guard count >= 0 else { throw OpenCLError.invalidArgument("\(operation()): count \(count) < 0") }
        let aBuffer = try cl(a, "a", atLeast: count, in: operation())
        let bBuffer = try cl(b, "b", atLeast: count, in: operation())
        let outputBuffer = try cl(output, "output", atLeast: count, in: operation())
        try launch(
            "residual_add", items: (count + 15) / 16,
            [.buffer(aBuffer), .buffer(bBuffer), .buffer(outputBuffer), .int(count), .int(relu ? 1 : 0)])
    }

    /// `global_avgpool_forward`, one work-item per (b, c) plane.
    public func globalAveragePoolForward(_ s: FeatureMapShape, input: Buffer, output: Buffer) throws {
        func operation() -> String { "globalAveragePoolForward \(s)" }
        guard s.isValid else { throw OpenCLError.invalidArgument("\(operation()): invalid shape") }
        let inputBuffer = try cl(input, "input", atLeast: s.count, in: operation())
        let outputBuffer = try cl(output, "output", atLeast: s.batch * s.channels, in: operation())
        try launch(
            "global_avgpool_forward", items: s.batch * s.channels,
            [.buffer(inputBuffer), .buffer(outputBuffer), .int(s.batch * s.channels), .int(s.planeSize)])
    }

    /// `global_avgpool_backward`, 16 input elements per work-item.
    public func globalAveragePoolBackward(_ s: FeatureMapShape, gradOutput: Buffer, gradInput: Buffer) throws {
        func operation() -> String { "globalAveragePoolBackward \(s)" }
        guard s.isValid else { throw OpenCLError.invalidArgument("\(operation()): invalid shape") }
        let gradOutputBuffer = try cl(gradOutput, "gradOutput", atLeast: s.batch * s.channels, in: operation())
        let gradInputBuffer = try cl(gradInput, "gradInput", atLeast: s.count, in: operation())
        try launch(
            "global_avgpool_backward", items: (s.count + 15) / 16,
            [.buffer(gradOutputBuffer), .buffer(gradInputBuffer), .int(s.count), .int(s.planeSize)])
    }
}
