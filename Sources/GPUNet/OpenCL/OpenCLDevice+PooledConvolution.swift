/// Convolutions followed by a 2×2 max-pool on OpenCL (see ``Device``):
/// dedicated kernels that never store the convolution's output
/// (conv2d_pool_forward.cl; conv2d_pooled_backward.cl, _weight.cl, _data.cl).
/// Every operation enqueues only and rearranges what it needs on the device
/// for each call (weights and inputs are small). Each kernel puts in its vector lanes what
/// makes its loads contiguous for the shape — output channels, input
/// channels or a row of windows (widths from ``vectorWidth(channels:)``) —
/// because PoCL vectorises explicit vector types only; the backward passes
/// visit each (image, output channel, window) at its winner only.
extension OpenCLDevice {
    /// Three kernels, chosen by shape (measured on PoCL here, batch 64):
    /// - 3×3, at most 8 output channels, at least 8 windows per pooled row
    ///   (conv1): `conv2d_maxpool2_forward_rows3x3`, vectors along the rows,
    ///   8 windows × 4 channels per work-item (~0.7× the time of the next);
    /// - 3×3, at most 16 output channels (conv2): `conv2d_maxpool2_forward3x3_W`,
    ///   one work-item per (image, window), the output channels in one vector,
    ///   loops unrolled (~0.5× the time of the general kernel);
    /// - otherwise `conv2d_maxpool2_forward_W`, the same with runtime loops
    ///   over the channel groups.
    /// The last two read the weights as (patch, output channel) from
    /// `conv_weight_patch_major`.
    public func conv2dMaxPool2Forward(
        _ s: ConvShape, input: Buffer, weight: Buffer,
        pooled: Buffer, argmax: Buffer, relu: Bool
    ) throws {
        let operation = "conv2dMaxPool2Forward"
        try validate(s, operation)
        let pool = Self.pool(over: s)
        let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: operation)
        let weightBuffer = try cl(weight, "weight", atLeast: s.weightCount, in: operation)
        let pooledBuffer = try cl(pooled, "pooled", atLeast: pool.outputCount, in: operation)
        let argmaxBuffer = try cl(argmax, "argmax", atLeast: pool.outputCount, kind: .int32, in: operation)
        guard pool.outputCount > 0 else { return }
        if kernelFamily == .gpu,
            try gpuConv2dMaxPool2Forward(
                s, input: inputBuffer, weight: weightBuffer,
                pooled: pooledBuffer, argmax: argmaxBuffer, relu: relu)
        {
            return
        }
        if Self.is3x3(s) && s.outChannels <= 8 && pool.outWidth >= 8 {
            let items = (s.outChannels + 3) / 4 * s.batch * pool.outHeight * ((pool.outWidth + 7) / 8)
            try launch(
                "conv2d_maxpool2_forward_rows3x3", items: items,
                [
                    .buffer(inputBuffer), .buffer(weightBuffer), .buffer(pooledBuffer), .buffer(argmaxBuffer),
                    .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width), .int(s.outChannels),
                    .int(relu ? 1 : 0),
                ])
            return
        }
        let width = Self.vectorWidth(channels: s.outChannels)
        let groups = (s.outChannels + width - 1) / width
        let outPad = groups * width
        let weightT = try scratchBuffer("pooled.weightT", count: s.patchSize * outPad)
        try launch(
            "conv_weight_patch_major", items: s.patchSize * outPad,
            [
                .buffer(weightBuffer), .buffer(weightT), .int(s.outChannels), .int(s.patchSize), .int(outPad),
            ])
        let items = groups * s.batch * pool.outHeight * pool.outWidth
        if Self.is3x3(s) && groups == 1 {
            try launch(
                Self.maxPoolForward3x3[width], items: items,
                [
                    .buffer(inputBuffer), .buffer(weightT), .buffer(pooledBuffer), .buffer(argmaxBuffer),
                    .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width), .int(s.outChannels),
                    .int(relu ? 1 : 0),
                ])
        } else {
            try launch(
                Self.maxPoolForward[width], items: items,
                [
                    .buffer(inputBuffer), .buffer(weightT), .buffer(pooledBuffer), .buffer(argmaxBuffer),
                    .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width), .int(s.outChannels),
                    .int(relu ? 1 : 0), .int(s.kernelHeight), .int(s.kernelWidth),
                ])
        }
    }

    /// Two forms, chosen by shape (measured on PoCL here, batch 64):
    /// - 3×3, at most 8 output channels and fewer than 4 input channels
    ///   (conv1): `conv2d_pooled_weight_outlanes3x3`, the output channels in
    ///   8 lanes, one work-item per (image, input channel), each window's
    ///   gradients gathered and masked to its four pixels; then
    ///   `conv2d_weight_reduce` adds the images (~0.4× the time of the
    ///   input-channel form, whose lanes would be 1 wide here);
    /// - otherwise the input moved channels-last (`conv_planes_to_lanes_W`, W
    ///   lanes for the input channels), then partial sums per chunk of
    ///   images and output channel, each winner's gradient times the W-lane
    ///   input rows under the kernel: `conv2d_pooled_weight_partials3x3_W`
    ///   (nine accumulators) for 3×3 kernels, `conv2d_pooled_weight_partials_W`
    ///   (one work-item per kernel position) otherwise. Chunks of images are
    ///   made only as far as needed for 8 work-items per compute unit (on
    ///   PoCL here, conv2: one chunk, 16 work-items, as fast as 256 of 4
    ///   images each); with one chunk the kernel writes the gradient itself,
    ///   otherwise `conv2d_pooled_weight_reduce` adds the chunks in order
    ///   (a launch that cost 0.04–0.15 ms here).
    /// A corrupt winner (not in its own window) passes no gradient.
    public func conv2dBackwardWeight(
        _ s: ConvShape, input: Buffer, pooledGradient gradient: PooledGradient,
        gradWeight: Buffer
    ) throws {
        let operation = "conv2dBackwardWeight(pooled)"
        let (values, argmax, reluOutput) = try validatePooled(s, operation, gradient)
        let relu = gradient.reluOutput == nil ? 0 : 1
        let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: operation)
        let gradWeightBuffer = try cl(gradWeight, "gradWeight", atLeast: s.weightCount, in: operation)
        guard gradient.pool.outputCount > 0 else { return try fill(gradWeightBuffer, value: 0) }
        if kernelFamily == .gpu {
            return try gpuConv2dPooledWeight(
                s, input: inputBuffer, values: values, argmax: argmax,
                reluOutput: reluOutput, relu: gradient.reluOutput != nil,
                gradWeight: gradWeightBuffer)
        }
        if Self.is3x3(s) && s.outChannels <= 8 && s.inChannels < 4 {
            let partials = try scratchBuffer("pooled.partials", count: s.batch * s.patchSize * 8)
            try launch("conv2d_pooled_weight_outlanes3x3", items: s.batch * s.inChannels) { a in
                a.append(.buffer(inputBuffer))
                a.append(.buffer(values))
                a.append(.buffer(argmax))
                a.append(.buffer(reluOutput))
                a.append(.buffer(partials))
                a.append(.int(s.batch))
                a.append(.int(s.inChannels))
                a.append(.int(s.height))
                a.append(.int(s.width))
                a.append(.int(s.outChannels))
                a.append(.int(relu))
            }
            try launch(
                "conv2d_weight_reduce", items: s.weightCount,
                [
                    .buffer(partials), .buffer(gradWeightBuffer), .int(s.batch), .int(s.patchSize), .int(s.outChannels),
                    .int(8),
                ])
            return
        }
        let lanes = Self.vectorWidth(channels: s.inChannels)
        let lanesBuffer = try scratchBuffer("pooled.inputLanes", count: s.batch * s.height * s.width * lanes)
        try launch(
            Self.planesToLanes[lanes], items: s.batch * s.height,
            [
                .buffer(inputBuffer), .buffer(lanesBuffer), .int(s.batch), .int(s.inChannels), .int(s.height),
                .int(s.width),
            ])
        let kernelArea = s.kernelHeight * s.kernelWidth
        let blocks = Self.is3x3(s) ? 1 : kernelArea
        // Chunks of images only as far as needed for 8 work-items per compute
        // unit: each chunk costs partial sums and the reduce launch.
        let wantedChunks = (8 * max(info.computeUnits, 1) + s.outChannels * blocks - 1) / (s.outChannels * blocks)
        let imagesPerChunk = (s.batch + min(s.batch, wantedChunks) - 1) / min(s.batch, wantedChunks)
        let chunks = (s.batch + imagesPerChunk - 1) / imagesPerChunk
        let partials = try scratchBuffer(
            "pooled.partials", count: chunks > 1 ? chunks * s.outChannels * kernelArea * lanes : 1)
        if Self.is3x3(s) {
            try launch(
                Self.pooledWeightPartials3x3[lanes], items: chunks * s.outChannels,
                [
                    .buffer(lanesBuffer), .buffer(values), .buffer(argmax), .buffer(reluOutput), .buffer(partials),
                    .buffer(gradWeightBuffer), .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width),
                    .int(s.outChannels), .int(relu), .int(imagesPerChunk),
                ])
        } else {
            try launch(
                Self.pooledWeightPartials[lanes], items: chunks * s.outChannels * kernelArea,
                [
                    .buffer(lanesBuffer), .buffer(values), .buffer(argmax), .buffer(reluOutput), .buffer(partials),
                    .buffer(gradWeightBuffer), .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width),
                    .int(s.outChannels), .int(relu), .int(s.kernelHeight), .int(s.kernelWidth), .int(imagesPerChunk),
                ])
        }
        guard chunks > 1 else { return }
        try launch(
            "conv2d_pooled_weight_reduce", items: s.weightCount,
            [
                .buffer(partials), .buffer(gradWeightBuffer), .int(chunks), .int(s.outChannels), .int(s.inChannels),
                .int(kernelArea), .int(lanes),
            ])
    }

    /// `conv2d_pooled_data3x3_W` (3×3 kernels: each output channel's nine
    /// weight rows gathered into registers once for all its windows) or
    /// `conv2d_pooled_data_W` (rows gathered where used), W lanes for the
    /// input channels: one work-item per image scatters each winner's
    /// gradient times the weight rows into the image's channels-last sum,
    /// then writes its planes — no two work-items write one element, so no
    /// atomics, and one launch per call. Its sums (2 per image: even and odd
    /// windows) live in a scratch buffer of 2·B·H·W·lanes floats.
    /// A corrupt winner (not in its own window) passes no gradient.
    public func conv2dBackwardData(
        _ s: ConvShape, pooledGradient gradient: PooledGradient, weight: Buffer,
        gradInput: Buffer
    ) throws {
        let operation = "conv2dBackwardData(pooled)"
        let (values, argmax, reluOutput) = try validatePooled(s, operation, gradient)
        let weightBuffer = try cl(weight, "weight", atLeast: s.weightCount, in: operation)
        let gradInputBuffer = try cl(gradInput, "gradInput", atLeast: s.inputCount, in: operation)
        guard s.inputCount > 0 else { return }
        if kernelFamily == .gpu,
            try gpuConv2dPooledData(
                s, values: values, argmax: argmax, reluOutput: reluOutput,
                relu: gradient.reluOutput != nil, weight: weightBuffer,
                gradInput: gradInputBuffer)
        {
            return
        }
        let lanes = Self.vectorWidth(channels: s.inChannels)
        let work = try scratchBuffer("pooled.gradientLanes", count: s.batch * 2 * s.height * s.width * lanes)
        let relu = gradient.reluOutput == nil ? 0 : 1
        if Self.is3x3(s) {
            try launch(
                Self.pooledData3x3[lanes], items: s.batch,
                [
                    .buffer(values), .buffer(argmax), .buffer(reluOutput), .buffer(weightBuffer), .buffer(work),
                    .buffer(gradInputBuffer), .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width),
                    .int(s.outChannels), .int(relu),
                ])
        } else {
            try launch(
                Self.pooledData[lanes], items: s.batch,
                [
                    .buffer(values), .buffer(argmax), .buffer(reluOutput), .buffer(weightBuffer), .buffer(work),
                    .buffer(gradInputBuffer), .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width),
                    .int(s.outChannels), .int(relu), .int(s.kernelHeight), .int(s.kernelWidth),
                ])
        }
    }

    // MARK: Helpers

    static let maxPoolForward3x3 = LaneKernel("conv2d_maxpool2_forward3x3")
    static let maxPoolForward = LaneKernel("conv2d_maxpool2_forward")
    static let planesToLanes = LaneKernel("conv_planes_to_lanes")
    static let pooledWeightPartials3x3 = LaneKernel("conv2d_pooled_weight_partials3x3")
    static let pooledWeightPartials = LaneKernel("conv2d_pooled_weight_partials")
    static let pooledData3x3 = LaneKernel("conv2d_pooled_data3x3")
    static let pooledData = LaneKernel("conv2d_pooled_data")

    /// The 2×2 pool over `s`'s output.
    static func pool(over s: ConvShape) -> PoolShape {
        PoolShape(batch: s.batch, channels: s.outChannels, height: s.outHeight, width: s.outWidth)
    }

    /// True for the 3×3 kernels that the unrolled kernels serve.
    static func is3x3(_ s: ConvShape) -> Bool { s.kernelHeight == 3 && s.kernelWidth == 3 }

    /// Throws unless `s` is a convolution these kernels run and `gradient`
    /// is the pool over its output with buffers of that size; returns the
    /// gradient's buffers, the ReLU output being `values` (never read) when
    /// there is no fused ReLU.
    private func validatePooled(_ s: ConvShape, _ operation: String, _ gradient: PooledGradient) throws
        -> (values: OpenCLBuffer, argmax: OpenCLBuffer, reluOutput: OpenCLBuffer)
    {
        try validate(s, operation)
        guard gradient.matches(s) else {
            throw OpenCLError.invalidArgument(
                "\(operation): the pool \(gradient.pool) is not the pool over the convolution's output "
                    + "(\(s.batch), \(s.outChannels), \(s.outHeight), \(s.outWidth))")
        }
        let values = try cl(gradient.values, "pooled gradient", atLeast: gradient.pool.outputCount, in: operation)
        return (
            values: values,
            argmax: try cl(
                gradient.argmax, "argmax", atLeast: gradient.pool.outputCount, kind: .int32,
                in: operation),
            reluOutput: try gradient.reluOutput.map {
                try cl($0, "ReLU output", atLeast: gradient.pool.outputCount, in: operation)
            } ?? values
        )
    }
}
