/// The operations of the gpu kernel family (Sources/Kernels/gpu), called by
/// the ``OpenCLDevice`` operations after they have checked their buffers
/// when ``OpenCLDevice/kernelFamily`` is `.gpu`. Work-group sizes come from
/// the device's limits: CL_KERNEL_WORK_GROUP_SIZE, the preferred multiple
/// and CL_DEVICE_LOCAL_MEM_SIZE. Where a shape's staged data would not fit
/// in local memory the pooled operations return false and the caller runs
/// the cpu family's kernels instead (slower on a GPU, never wrong).
extension OpenCLDevice {
    /// The work-group size of a gpu-family kernel: eight preferred multiples
    /// (SIMD widths: 64 on PoCL, 256 on NVIDIA) within the kernel's limit,
    /// rounded down to a power of two (the weight partials' tree halves it),
    /// and no larger than `items` rounded up to a power of two.
    func gpuGroupSize(_ kernel: OpenCLKernel, items: Int) -> Int {
        let limit = min(kernel.maxWorkGroupSize, kernel.preferredMultiple * 8)
        var size = 1
        while size * 2 <= limit && size < items { size *= 2 }
        return size
    }

    /// Local memory a work-group of `kernel` may still take for its
    /// `__local` arguments, bytes.
    func gpuLocalBytesLeft(_ kernel: OpenCLKernel) -> Int {
        context.entry.localMemoryBytes - kernel.staticLocalBytes
    }

    /// `gpu_conv2d_maxpool2_forward`: one work-group per (image, chunk of its
    /// pooled outputs), the image and the weights in local memory. Groups
    /// of at most eight preferred multiples (256 work-items on NVIDIA), so
    /// that even conv2 at batch 64 (400 outputs per image) makes 128 groups
    /// rather than 64 (fewer than an H200's 132 compute units); the outputs
    /// of an image spread evenly over its groups, rounded up to the
    /// preferred multiple. Each group stages the whole image (small here:
    /// 3–5 KiB). False when image and weights do not fit in local memory.
    func gpuConv2dMaxPool2Forward(
        _ s: ConvShape, input: OpenCLBuffer, weight: OpenCLBuffer, pooled: OpenCLBuffer,
        argmax: OpenCLBuffer, relu: Bool
    ) throws -> Bool {
        let name = "gpu_conv2d_maxpool2_forward"
        let k = try kernel(name)
        let tileBytes = (s.inChannels * s.height * s.width + s.weightCount) * 4
        guard tileBytes <= gpuLocalBytesLeft(k) else { return false }
        let pool = Self.pool(over: s)
        let (groupsPerImage, local) = gpuImageGroups(k, itemsPerImage: s.outChannels * pool.outHeight * pool.outWidth)
        try launch(
            name, items: s.batch * groupsPerImage * local, local: local,
            [
                .buffer(input), .buffer(weight), .buffer(pooled), .buffer(argmax), .local(bytes: tileBytes),
                .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width), .int(s.outChannels),
                .int(s.kernelHeight), .int(s.kernelWidth), .int(relu ? 1 : 0), .int(groupsPerImage),
            ])
        return true
    }

    /// `gpu_conv2d_pooled_weight_partials` then `gpu_sum_chunks`: the
    /// batch·pH·pW terms of each weight in chunks of (group size ×
    /// ``gpuTermsPerItem``), one work-group tree per (weight, chunk), then
    /// the chunks added in order.
    func gpuConv2dPooledWeight(
        _ s: ConvShape, input: OpenCLBuffer, values: OpenCLBuffer, argmax: OpenCLBuffer,
        reluOutput: OpenCLBuffer, relu: Bool, gradWeight: OpenCLBuffer
    ) throws {
        let name = "gpu_conv2d_pooled_weight_partials"
        let k = try kernel(name)
        let pool = Self.pool(over: s)
        let terms = s.batch * pool.outHeight * pool.outWidth
        let local = gpuGroupSize(k, items: (terms + Self.gpuTermsPerItem - 1) / Self.gpuTermsPerItem)
        let chunks = (terms + local * Self.gpuTermsPerItem - 1) / (local * Self.gpuTermsPerItem)
        let partials = try scratchBuffer("gpu.weightPartials", count: s.weightCount * chunks)
        try launch(
            name, items: s.weightCount * chunks * local, local: local,
            [
                .buffer(input), .buffer(values), .buffer(argmax), .buffer(reluOutput), .buffer(partials),
                .local(bytes: local * 4), .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width),
                .int(s.outChannels), .int(s.kernelHeight), .int(s.kernelWidth), .int(relu ? 1 : 0), .int(chunks),
                .int(Self.gpuTermsPerItem),
            ])
        try launch(
            "gpu_sum_chunks", items: s.weightCount,
            [
                .buffer(partials), .buffer(gradWeight), .int(s.weightCount), .int(chunks),
            ])
    }

    /// Terms each work-item of the weight partials adds before the tree:
    /// enough that the tree (log₂ of the group size barriers) is a small
    /// share of the work, few enough that a step's launch keeps ≥ 16,384
    /// work-items at batch 64 (conv1: 72 weights × 22 chunks × 64 on PoCL,
    /// × 6 chunks × 256 on NVIDIA).
    static let gpuTermsPerItem = 8

    /// `gpu_conv2d_pooled_data`: one work-group per (image, chunk of its
    /// inputs), one work-item per input element gathering what reaches it;
    /// the weights and the image's pooled gradients and winners in local
    /// memory. Groups sized as the forward's (``gpuConv2dMaxPool2Forward``):
    /// conv2 at batch 64 makes 64 × 6 groups of 256 on NVIDIA. False when
    /// those do not fit in local memory.
    func gpuConv2dPooledData(
        _ s: ConvShape, values: OpenCLBuffer, argmax: OpenCLBuffer, reluOutput: OpenCLBuffer,
        relu: Bool, weight: OpenCLBuffer, gradInput: OpenCLBuffer
    ) throws -> Bool {
        let name = "gpu_conv2d_pooled_data"
        let k = try kernel(name)
        let pooledPerImage = Self.pool(over: s).outputCount / max(s.batch, 1)
        let tileBytes = (s.weightCount + pooledPerImage) * 4
        let winnerBytes = pooledPerImage * 4
        guard tileBytes + winnerBytes <= gpuLocalBytesLeft(k) else { return false }
        let (groupsPerImage, local) = gpuImageGroups(k, itemsPerImage: s.inChannels * s.height * s.width)
        try launch(
            name, items: s.batch * groupsPerImage * local, local: local,
            [
                .buffer(values), .buffer(argmax), .buffer(reluOutput), .buffer(weight), .buffer(gradInput),
                .local(bytes: tileBytes), .local(bytes: winnerBytes), .int(s.batch), .int(s.inChannels),
                .int(s.height), .int(s.width), .int(s.outChannels), .int(s.kernelHeight), .int(s.kernelWidth),
                .int(relu ? 1 : 0), .int(groupsPerImage),
            ])
        return true
    }

    /// Work-groups for a kernel with one group per (image, chunk of
    /// `itemsPerImage` work-items): groups of at most eight preferred
    /// multiples within the kernel's limit, an image's items spread evenly
    /// over its groups and rounded up to the preferred multiple.
    func gpuImageGroups(_ kernel: OpenCLKernel, itemsPerImage: Int) -> (groupsPerImage: Int, local: Int) {
        let multiple = kernel.preferredMultiple
        let limit = max(min(kernel.maxWorkGroupSize, 8 * multiple) / multiple * multiple, 1)
        let groupsPerImage = (itemsPerImage + limit - 1) / limit
        let spread = (itemsPerImage + groupsPerImage - 1) / groupsPerImage
        return (groupsPerImage, min(limit, (spread + multiple - 1) / multiple * multiple))
    }
}
