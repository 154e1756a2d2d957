/// The phases of a synchronised batch normalisation on OpenCL, launching the
/// kernels of ``OpenCLDevice/batchNormForward(_:input:gamma:beta:runningMean:runningVar:saved:output:training:)``
/// and ``OpenCLDevice/batchNormBackward(_:input:gamma:saved:gradOutput:gradInput:gradGamma:gradBeta:training:)``
/// split where a synchronised BatchNorm all-reduces its sums. The sums are
/// ``OpenCLDevice/channelPartials(_:_:saved:mask:batch:channels:plane:mode:)``'s
/// fixed-order chunks: the gpu family's backward sums are the whole
/// backward's bits; the forward's Σx then Σ(x − μ)² (μ the all-reduced
/// mean) agree with the whole forward's per-chunk moments within float32
/// rounding.
extension OpenCLDevice {
    /// ``channelPartials(_:_:saved:mask:batch:channels:plane:mode:)`` (mode
    /// 0: Σx; mode 1: Σ(x − saved[c])²) and `channel_sum_chunks` with scale 1.
    public func batchNormChannelSums(
        _ s: BatchNormShape, input: Buffer, saved: Buffer, centred: Bool, sums: Buffer
    ) throws {
        func operation() -> String { "batchNormChannelSums \(s)" }
        try validate(s, operation(), training: false)
        let c = s.channels
        let x = try cl(input, "input", atLeast: s.count, in: operation())
        let sv = try cl(saved, "saved", atLeast: centred ? c : 0, in: operation())
        let total = try cl(sums, "sums", atLeast: c, in: operation())
        let (partials, chunks) = try channelPartials(
            x, x, saved: sv, mask: x, batch: s.batch, channels: c, plane: s.map.planeSize, mode: centred ? 1 : 0)
        try launch(
            "channel_sum_chunks", items: c,
            [.buffer(partials), .buffer(total), .int(c), .int(chunks), .int(0), .float(1)])
    }

    /// `batchnorm_apply_planes` (cpu family) or `gpu_batchnorm_apply` (gpu family).
    public func batchNormApply(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, saved: Buffer, output: Buffer
    ) throws {
        func operation() -> String { "batchNormApply \(s)" }
        try validate(s, operation(), training: false)
        let c = s.channels
        let x = try cl(input, "input", atLeast: s.count, in: operation())
        let g = try cl(gamma, "gamma", atLeast: c, in: operation())
        let b = try cl(beta, "beta", atLeast: c, in: operation())
        let sv = try cl(saved, "saved", atLeast: 2 * c, in: operation())
        let y = try cl(output, "output", atLeast: s.count, in: operation())
        try launchBatchNormApply(s, x, g, b, sv, y)
    }

    /// ``channelPartials(_:_:saved:mask:batch:channels:plane:mode:)`` mode 2
    /// and `channel_sum_chunk_pairs` (Σdy into gradBeta, Σdy·x̂ into gradGamma).
    public func batchNormBackwardSums(
        _ s: BatchNormShape, input: Buffer, saved: Buffer, gradOutput: Buffer, gradGamma: Buffer, gradBeta: Buffer
    ) throws {
        func operation() -> String { "batchNormBackwardSums \(s)" }
        try validate(s, operation(), training: false)
        let c = s.channels
        let x = try cl(input, "input", atLeast: s.count, in: operation())
        let sv = try cl(saved, "saved", atLeast: 2 * c, in: operation())
        let dy = try cl(gradOutput, "gradOutput", atLeast: s.count, in: operation())
        let dg = try cl(gradGamma, "gradGamma", atLeast: c, in: operation())
        let db = try cl(gradBeta, "gradBeta", atLeast: c, in: operation())
        let (partials, chunks) = try channelPartials(
            dy, x, saved: sv, mask: dy, batch: s.batch, channels: c, plane: s.map.planeSize, mode: 2)
        try launch(
            "channel_sum_chunk_pairs", items: 2 * c,
            [.buffer(partials), .buffer(db), .buffer(dg), .int(c), .int(chunks)])
    }

    /// `batchnorm_backward_apply_planes` (cpu family) or
    /// `gpu_batchnorm_backward_apply` (gpu family) in training mode, reading
    /// the given sums where the whole backward reads its own.
    public func batchNormBackwardApply(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, gradOutput: Buffer, sumDy: Buffer,
        sumDyXhat: Buffer, gradInput: Buffer
    ) throws {
        func operation() -> String { "batchNormBackwardApply \(s)" }
        try validate(s, operation(), training: false)
        let c = s.channels
        let x = try cl(input, "input", atLeast: s.count, in: operation())
        let g = try cl(gamma, "gamma", atLeast: c, in: operation())
        let sv = try cl(saved, "saved", atLeast: 2 * c, in: operation())
        let dy = try cl(gradOutput, "gradOutput", atLeast: s.count, in: operation())
        let sdy = try cl(sumDy, "sumDy", atLeast: c, in: operation())
        let sdyx = try cl(sumDyXhat, "sumDyXhat", atLeast: c, in: operation())
        let dx = try cl(gradInput, "gradInput", atLeast: s.count, in: operation())
        let gpu = kernelFamily == .gpu
        try launch(
            gpu ? "gpu_batchnorm_backward_apply" : "batchnorm_backward_apply_planes",
            items: gpu ? s.count : s.batch * c,
            [
                .buffer(x), .buffer(g), .buffer(sv), .buffer(dy), .buffer(dy), .buffer(sdyx), .buffer(sdy),
                .buffer(dx), .int(gpu ? s.count : s.batch * c), .int(c), .int(s.map.planeSize),
                .int(s.valuesPerChannel), .int(1), .int(0),
            ])
    }
}
