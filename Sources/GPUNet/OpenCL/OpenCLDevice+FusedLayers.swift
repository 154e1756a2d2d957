/// Neighbouring operations of a conv–pool–conv–pool–linear–loss network
/// (TinyConvNet) in fewer launches on OpenCL: each kernel launch costs PoCL
/// tens of microseconds of thread wake-ups in a step of about half a
/// millisecond, and a GPU's host several microseconds of enqueueing. Every
/// fused kernel computes the same floats as the kernels it replaces, in the
/// same order (it calls the same `static inline` helpers or repeats their
/// expressions), so a network trains to the same bits either way; the
/// operations' outputs are those of the separate ``Device`` operations
/// named in each doc. Where a shape is not one the fused kernels serve, each
/// falls back to the separate launches. The gpu family stages nothing (its
/// kernels read planes and weights directly); it fuses the linear layer
/// with the loss and its backward pass with the data gradient.
extension OpenCLDevice {
    /// What a pooled convolution's forward stages for the next convolution
    /// (`next`, whose input is the pooled output) in the cpu family, so that
    /// the next layer's kernels skip their own rearranging launches:
    /// - `lanes`: the pooled output channels-last, (B, pH, pW, W) with W =
    ///   the vector width of its channels (`conv_planes_to_lanes_W`'s
    ///   layout), which the next layer's weight gradient reads;
    /// - `nextWeightPatchMajor`: `nextWeight` as (patch, padded output
    ///   channel), `conv_weight_patch_major`'s layout, which the next
    ///   layer's forward reads.
    public struct PooledForwardStaging {
        public let next: ConvShape
        public let nextWeight: Buffer
        public let lanes: Buffer
        public let nextWeightPatchMajor: Buffer

        public init(next: ConvShape, nextWeight: Buffer, lanes: Buffer, nextWeightPatchMajor: Buffer) {
            self.next = next
            self.nextWeight = nextWeight
            self.lanes = lanes
            self.nextWeightPatchMajor = nextWeightPatchMajor
        }

        /// Floats of `lanes` for a pooled output of `pool`.
        public static func lanesCount(_ pool: PoolShape) -> Int {
            pool.batch * pool.outHeight * pool.outWidth * OpenCLDevice.vectorWidth(channels: pool.channels)
        }

        /// Floats of `nextWeightPatchMajor` for the next convolution `next`.
        public static func patchMajorCount(_ next: ConvShape) -> Int { next.patchSize * paddedOut(next) }

        static func paddedOut(_ next: ConvShape) -> Int {
            let width = OpenCLDevice.vectorWidth(channels: next.outChannels)
            return (next.outChannels + width - 1) / width * width
        }

    }

    /// A ``PooledForwardStaging`` with its buffers checked.
    struct StagingBuffers {
        let next: ConvShape
        let nextWeight: OpenCLBuffer
        let lanes: OpenCLBuffer
        let nextWeightPatchMajor: OpenCLBuffer
        var nextOutPad: Int { PooledForwardStaging.paddedOut(next) }
    }

    /// ``conv2dMaxPool2Forward(_:input:weight:pooled:argmax:relu:)`` that
    /// also fills `staging` (cpu family; the gpu family stages nothing). In
    /// one launch where the forward is `conv2d_maxpool2_forward_rows3x3`
    /// and the channels fill their lanes (TinyConvNet's conv1: 8 channels),
    /// else the forward's launches then `conv_planes_to_lanes_W` and
    /// `conv_weight_patch_major`.
    public func conv2dMaxPool2Forward(
        _ s: ConvShape, input: Buffer, weight: Buffer, pooled: Buffer, argmax: Buffer, relu: Bool,
        staging: PooledForwardStaging
    ) throws {
        let operation = "conv2dMaxPool2Forward(staging)"
        let pool = Self.pool(over: s)
        guard staging.next.batch == s.batch, staging.next.inChannels == s.outChannels,
            staging.next.height == pool.outHeight, staging.next.width == pool.outWidth
        else {
            throw OpenCLError.invalidArgument(
                "\(operation): the next convolution \(staging.next) does not take the pooled output "
                    + "(\(s.batch), \(s.outChannels), \(pool.outHeight), \(pool.outWidth))")
        }
        try validate(staging.next, operation)
        let cpuStaging = StagingBuffers(
            next: staging.next,
            nextWeight: try cl(staging.nextWeight, "nextWeight", atLeast: staging.next.weightCount, in: operation),
            lanes: try cl(staging.lanes, "lanes", atLeast: PooledForwardStaging.lanesCount(pool), in: operation),
            nextWeightPatchMajor: try cl(
                staging.nextWeightPatchMajor, "nextWeightPatchMajor",
                atLeast: PooledForwardStaging.patchMajorCount(staging.next), in: operation))
        try pooledForward(
            s, input: input, weight: weight, weightPatchMajor: nil, pooled: pooled, argmax: argmax, relu: relu,
            staging: kernelFamily == .cpu ? cpuStaging : nil)
    }

    /// ``conv2dMaxPool2Forward(_:input:weight:pooled:argmax:relu:)`` of the
    /// convolution after a staged one (`staging.next`), reading its weights
    /// from `staging.nextWeightPatchMajor` in the cpu family instead of
    /// rearranging them (one `conv_weight_patch_major` launch fewer).
    public func conv2dMaxPool2Forward(
        staged staging: PooledForwardStaging, input: Buffer, pooled: Buffer, argmax: Buffer, relu: Bool
    ) throws {
        let s = staging.next
        let patchMajor =
            kernelFamily == .cpu
            ? try cl(
                staging.nextWeightPatchMajor, "nextWeightPatchMajor",
                atLeast: PooledForwardStaging.patchMajorCount(s), in: "conv2dMaxPool2Forward(staged)") : nil
        try pooledForward(
            s, input: input, weight: staging.nextWeight, weightPatchMajor: patchMajor, pooled: pooled,
            argmax: argmax, relu: relu, staging: nil)
    }

    /// ``conv2dBackwardWeight(_:input:pooledGradient:gradWeight:)`` of the
    /// convolution after a staged one (`staging.next`), reading its input
    /// channels-last from `staging.lanes` in the cpu family (one
    /// `conv_planes_to_lanes_W` launch fewer), then that of the staged
    /// convolution itself (`first`). In the cpu family, where the second's
    /// partial sums come in several chunks of images (more than 2 compute
    /// units for TinyConvNet's conv2), their reduce shares the first's
    /// `conv2d_weight_reduce` launch: `conv2d_weight_reduce_pair`.
    public func conv2dBackwardWeight(
        staged staging: PooledForwardStaging, input: Buffer, pooledGradient: PooledGradient, gradWeight: Buffer,
        first: ConvShape, firstInput: Buffer, firstPooledGradient: PooledGradient, firstGradWeight: Buffer
    ) throws {
        let s = staging.next
        let cpu = kernelFamily == .cpu
        let lanes =
            cpu
            ? try cl(
                staging.lanes, "lanes",
                atLeast: s.batch * s.height * s.width * Self.vectorWidth(channels: s.inChannels),
                in: "conv2dBackwardWeight(staged)") : nil
        let pending = try pooledWeightGradient(
            s, input: input, inputLanes: lanes, pooledGradient: pooledGradient, gradWeight: gradWeight,
            deferReduce: cpu)
        try pooledWeightGradient(
            first, input: firstInput, inputLanes: nil, pooledGradient: firstPooledGradient,
            gradWeight: firstGradWeight, pendingReduce: pending)
    }

    /// ``linearForward(_:input:weight:bias:output:)`` into `logits`, then
    /// ``softmaxCrossEntropy(batch:classes:logits:labels:gradLogits:perSample:)``
    /// on them, in one launch: `linear_softmax_cross_entropy` (cpu family,
    /// a work-item per four samples) or `gpu_linear_softmax_cross_entropy`
    /// (a work-item per logit, groups of whole rows; the two launches where
    /// a row exceeds a work-group).
    public func linearSoftmaxCrossEntropy(
        _ s: LinearShape, input: Buffer, weight: Buffer, bias: Buffer, logits: Buffer, labels: Buffer,
        gradLogits: Buffer, perSample: Buffer
    ) throws {
        let gpu = kernelFamily == .gpu
        let name = gpu ? "gpu_linear_softmax_cross_entropy" : "linear_softmax_cross_entropy"
        let k = try kernel(name)
        guard s.outFeatures > 0, s.batch > 0, !gpu || s.outFeatures <= k.maxWorkGroupSize else {
            try linearForward(s, input: input, weight: weight, bias: bias, output: logits)
            return try softmaxCrossEntropy(
                batch: s.batch, classes: s.outFeatures, logits: logits, labels: labels, gradLogits: gradLogits,
                perSample: perSample)
        }
        let operation = "linearSoftmaxCrossEntropy"
        // gpu: a work-item per logit in groups of whole rows (as many as
        // eight preferred multiples hold, at most the batch); cpu: a
        // work-item per four samples.
        let rows = min(max(min(k.maxWorkGroupSize, 8 * k.preferredMultiple) / s.outFeatures, 1), s.batch)
        let local = rows * s.outFeatures
        try launch(
            name, items: gpu ? (s.batch + rows - 1) / rows * local : (s.batch + 3) / 4, local: gpu ? local : nil,
            [
                .buffer(try cl(input, "input", atLeast: s.batch * s.inFeatures, in: operation)),
                .buffer(try cl(weight, "weight", atLeast: s.outFeatures * s.inFeatures, in: operation)),
                .buffer(try cl(bias, "bias", atLeast: s.outFeatures, in: operation)),
                .buffer(try cl(logits, "logits", atLeast: s.batch * s.outFeatures, in: operation)),
                .buffer(try cl(labels, "labels", atLeast: s.batch, kind: .int32, in: operation)),
                .buffer(try cl(gradLogits, "gradLogits", atLeast: s.batch * s.outFeatures, in: operation)),
                .buffer(try cl(perSample, "perSample", atLeast: 2 * s.batch, in: operation)),
            ] + (gpu ? [.local(bytes: local * 4)] : []) + [.int(s.batch), .int(s.inFeatures), .int(s.outFeatures)])
    }

    /// ``linearBackward(_:input:weight:gradOutput:gradInput:gradWeight:gradBias:)``
    /// of a linear layer whose input is the ReLU output of a pooled 3×3
    /// convolution `conv` (flattened), its `gradInput` being
    /// `pooledGradient.values`, then
    /// ``conv2dBackwardData(_:pooledGradient:weight:gradInput:)`` of `conv`:
    /// in one launch: `linear_backward_pooled_data3x3_W` (cpu family, 3×3; W
    /// lanes for conv's input channels) or `gpu_linear_backward_pooled_data`
    /// (gpu family, where its staging fits in local memory); else the
    /// separate launches.
    public func linearBackwardPooledData(
        _ fc: LinearShape, weight fcWeight: Buffer, gradOutput: Buffer, gradWeight fcGradWeight: Buffer,
        gradBias fcGradBias: Buffer, conv: ConvShape, pooledGradient gradient: PooledGradient, convWeight: Buffer,
        gradInput: Buffer
    ) throws {
        let operation = "linearBackwardPooledData"
        guard let fcInput = gradient.reluOutput, gradient.matches(conv),
            fc.batch == conv.batch, fc.inFeatures * fc.batch == gradient.pool.outputCount
        else {
            throw OpenCLError.invalidArgument(
                "\(operation): the linear layer \(fc) does not take the ReLU output of the pool \(gradient.pool)")
        }
        if kernelFamily == .gpu, fc.batch > 0,
            try gpuLinearBackwardPooledData(
                fc, fcInput: fcInput, weight: fcWeight, gradOutput: gradOutput, gradWeight: fcGradWeight,
                gradBias: fcGradBias, conv: conv, pooledGradient: gradient, convWeight: convWeight,
                gradInput: gradInput)
        {
            return
        }
        guard kernelFamily == .cpu, Self.is3x3(conv), fc.batch > 0 else {
            try linearBackward(
                fc, input: fcInput, weight: fcWeight, gradOutput: gradOutput, gradInput: gradient.values,
                gradWeight: fcGradWeight, gradBias: fcGradBias)
            return try conv2dBackwardData(conv, pooledGradient: gradient, weight: convWeight, gradInput: gradInput)
        }
        try validate(conv, operation)
        let count = gradient.pool.outputCount
        let lanes = Self.vectorWidth(channels: conv.inChannels)
        let work = try scratchBuffer("pooled.gradientLanes", count: conv.batch * 2 * conv.height * conv.width * lanes)
        let name = "linear_backward_pooled_data3x3_\(lanes)"
        // The image items in the work-group size of the data kernel alone
        // (conv2d_pooled_data3x3_W, batch items), so that they spread over
        // the threads as that kernel's do.
        let local = try kernel(name).workGroupSize(items: conv.batch, computeUnits: info.computeUnits)
        let linearItems = fc.outFeatures * ((fc.inFeatures + 7) / 8) + fc.outFeatures
        try launch(
            name, items: conv.batch + linearItems, local: local,
            [
                .buffer(try cl(fcInput, "ReLU output", atLeast: count, in: operation)),
                .buffer(try cl(fcWeight, "weight", atLeast: fc.outFeatures * fc.inFeatures, in: operation)),
                .buffer(try cl(gradOutput, "gradOutput", atLeast: fc.batch * fc.outFeatures, in: operation)),
                .buffer(try cl(fcGradWeight, "gradWeight", atLeast: fc.outFeatures * fc.inFeatures, in: operation)),
                .buffer(try cl(fcGradBias, "gradBias", atLeast: fc.outFeatures, in: operation)),
                .int(fc.outFeatures),
                .buffer(try cl(gradient.values, "pooled gradient", atLeast: count, in: operation)),
                .buffer(try cl(gradient.argmax, "argmax", atLeast: count, kind: .int32, in: operation)),
                .buffer(try cl(fcInput, "ReLU output", atLeast: count, in: operation)),
                .buffer(try cl(convWeight, "convWeight", atLeast: conv.weightCount, in: operation)),
                .buffer(work),
                .buffer(try cl(gradInput, "gradInput", atLeast: conv.inputCount, in: operation)),
                .int(conv.batch), .int(conv.inChannels), .int(conv.height), .int(conv.width),
                .int(conv.outChannels), .int(1),
            ])
    }

    /// `gpu_linear_backward_pooled_data`: the groups of
    /// ``gpuConv2dPooledData(_:values:argmax:reluOutput:relu:weight:gradInput:)``
    /// computing the pooled gradients from the linear layer's, then groups
    /// of the same size for the linear layer's weight and bias gradients,
    /// one work-item per element. False when the staging does not fit in
    /// local memory (the caller then launches the operations one by one).
    private func gpuLinearBackwardPooledData(
        _ fc: LinearShape, fcInput: Buffer, weight fcWeight: Buffer, gradOutput: Buffer, gradWeight: Buffer,
        gradBias: Buffer, conv: ConvShape, pooledGradient gradient: PooledGradient, convWeight: Buffer,
        gradInput: Buffer
    ) throws -> Bool {
        let operation = "linearBackwardPooledData"
        try validate(conv, operation)
        let name = "gpu_linear_backward_pooled_data"
        let k = try kernel(name)
        let pooledPerImage = fc.inFeatures
        let tileBytes = (conv.weightCount + pooledPerImage) * 4
        let winnerBytes = pooledPerImage * 4
        guard tileBytes + winnerBytes <= gpuLocalBytesLeft(k) else { return false }
        let (groupsPerImage, local) = gpuImageGroups(k, itemsPerImage: conv.inChannels * conv.height * conv.width)
        let linearItems = fc.outFeatures * fc.inFeatures + fc.outFeatures
        let count = gradient.pool.outputCount
        try launch(
            name, items: (conv.batch * groupsPerImage + (linearItems + local - 1) / local) * local, local: local,
            [
                .buffer(try cl(fcInput, "ReLU output", atLeast: count, in: operation)),
                .buffer(try cl(fcWeight, "weight", atLeast: fc.outFeatures * fc.inFeatures, in: operation)),
                .buffer(try cl(gradOutput, "gradOutput", atLeast: fc.batch * fc.outFeatures, in: operation)),
                .buffer(try cl(gradWeight, "gradWeight", atLeast: fc.outFeatures * fc.inFeatures, in: operation)),
                .buffer(try cl(gradBias, "gradBias", atLeast: fc.outFeatures, in: operation)),
                .int(fc.outFeatures),
                .buffer(try cl(gradient.values, "pooled gradient", atLeast: count, in: operation)),
                .buffer(try cl(gradient.argmax, "argmax", atLeast: count, kind: .int32, in: operation)),
                .buffer(try cl(fcInput, "ReLU output", atLeast: count, in: operation)),
                .buffer(try cl(convWeight, "convWeight", atLeast: conv.weightCount, in: operation)),
                .buffer(try cl(gradInput, "gradInput", atLeast: conv.inputCount, in: operation)),
                .local(bytes: tileBytes), .local(bytes: winnerBytes), .int(conv.batch), .int(conv.inChannels),
                .int(conv.height), .int(conv.width), .int(conv.outChannels), .int(conv.kernelHeight),
                .int(conv.kernelWidth), .int(1), .int(groupsPerImage),
            ])
        return true
    }
}
