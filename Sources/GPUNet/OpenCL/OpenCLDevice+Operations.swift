/// The compute operations of ``OpenCLDevice``: each checks its buffers
/// against the shape, then enqueues one or more kernels (never waits).
extension OpenCLDevice {
    // MARK: Linear algebra

    /// Three shapes of one register-blocked kernel family (gemm.cl):
    /// NN and TN use `gemm_rows` (B read as float8 rows, A through strides),
    /// NT uses `gemm_dots` (rows of A and B both contiguous along k), and TT
    /// computes Cᵀ = B·A with `gemm_rows`, storing through transposed strides.
    public func gemm(_ s: GEMMShape, a: Buffer, b: Buffer, c: Buffer) throws {
        let operation = "gemm \(s)"
        guard s.m >= 0, s.n >= 0, s.k >= 0 else { throw OpenCLError.invalidArgument("\(operation): negative size") }
        let bufferA = try cl(a, "A", atLeast: s.m * s.k, in: operation)
        let bufferB = try cl(b, "B", atLeast: s.k * s.n, in: operation)
        let bufferC = try cl(c, "C", atLeast: s.m * s.n, in: operation)
        guard s.m > 0, s.n > 0 else { return }
        let (m, n, k) = (s.m, s.n, s.k)
        func rows(
            _ m: Int, _ n: Int, a: OpenCLBuffer, aRow: Int, aCol: Int, b: OpenCLBuffer, ldb: Int,
            cRow: Int, cCol: Int
        ) throws {
            try launch(
                "gemm_rows", items: (m + 3) / 4 * ((n + 15) / 16),
                [
                    .int(m), .int(n), .int(k), .buffer(a), .int(aRow), .int(aCol), .buffer(b), .int(ldb),
                    .buffer(bufferC), .int(cRow), .int(cCol), .float(s.alpha), .float(s.beta),
                ])
        }
        switch (s.transposeA, s.transposeB) {
        case (false, false):
            try rows(m, n, a: bufferA, aRow: k, aCol: 1, b: bufferB, ldb: n, cRow: n, cCol: 1)
        case (true, false):
            try rows(m, n, a: bufferA, aRow: 1, aCol: m, b: bufferB, ldb: n, cRow: n, cCol: 1)
        case (true, true):
            // Cᵀ (n×m) = B (stored n×k) · A (stored k×m).
            try rows(n, m, a: bufferB, aRow: k, aCol: 1, b: bufferA, ldb: m, cRow: 1, cCol: n)
        case (false, true):
            try launch(
                "gemm_dots", items: (m + 3) / 4 * ((n + 1) / 2),
                [
                    .int(m), .int(n), .int(k), .buffer(bufferA), .int(k), .buffer(bufferB), .int(k),
                    .buffer(bufferC), .int(n), .float(s.alpha), .float(s.beta),
                ])
        }
    }

    // MARK: Convolution

    /// The vector width for `channels` channels in one accumulator: 16, 8,
    /// 4 or 1 (scalar), the smallest width ≥ the channel count up to 16.
    static func vectorWidth(channels: Int) -> Int {
        channels > 8 ? 16 : channels > 4 ? 8 : channels > 1 ? 4 : 1
    }

    /// A kernel that comes in one version per lane width, `base_W` for W in
    /// 1, 2, 4, 8 and 16: its names made once, so that a launch builds no string.
    struct LaneKernel {
        private let names: [String]
        init(_ base: String) { names = [1, 2, 4, 8, 16].map { "\(base)_\($0)" } }
        /// The version for `width` lanes (a power of two up to 16).
        subscript(width: Int) -> String { names[width.trailingZeroBitCount] }
    }

    /// Throws unless `s` is a convolution the kernels run.
    func validate(_ s: ConvShape, _ operation: String) throws {
        guard s.batch >= 0, s.inChannels > 0, s.outChannels > 0, s.kernelHeight > 0, s.kernelWidth > 0,
            s.height >= s.kernelHeight, s.width >= s.kernelWidth
        else {
            throw OpenCLError.invalidArgument("\(operation): unsupported convolution shape \(s)")
        }
    }

    private func convArguments(_ s: ConvShape) -> [OpenCLKernel.Argument] {
        [
            .int(s.batch), .int(s.inChannels), .int(s.height), .int(s.width),
            .int(s.outChannels), .int(s.kernelHeight), .int(s.kernelWidth),
        ]
    }

    public func im2col(_ s: ConvShape, input: Buffer, columns: Buffer) throws {
        try validate(s, "im2col")
        let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: "im2col")
        let columnBuffer = try cl(columns, "columns", atLeast: s.patchSize * s.patchCount, in: "im2col")
        try launch(
            "im2col", items: s.patchSize * s.batch * s.outHeight,
            [
                .buffer(inputBuffer), .buffer(columnBuffer), .int(s.batch), .int(s.inChannels), .int(s.height),
                .int(s.width), .int(s.kernelHeight), .int(s.kernelWidth),
            ])
    }

    public func col2im(_ s: ConvShape, columns: Buffer, input: Buffer) throws {
        try validate(s, "col2im")
        let columnBuffer = try cl(columns, "columns", atLeast: s.patchSize * s.patchCount, in: "col2im")
        let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: "col2im")
        try launch(
            "col2im", items: s.batch * s.inChannels * s.height,
            [
                .buffer(columnBuffer), .buffer(inputBuffer), .int(s.batch), .int(s.inChannels), .int(s.height),
                .int(s.width), .int(s.kernelHeight), .int(s.kernelWidth),
            ])
    }

    /// Two kernels, chosen by shape (measured on PoCL here): with at most 8
    /// output channels, rows of at least 8 pixels and at least 2 rows (conv1,
    /// conv2's data gradient), `conv2d_forward_rows8x2` (vectors along two
    /// rows, one vector store per result row); otherwise the weights rearranged to (patch, output
    /// channel) by `conv_weight_patch_major`, then `conv2d_forward_W` (the
    /// output channels in one W-wide vector, four pixels per work-item).
    public func conv2dForward(_ s: ConvShape, input: Buffer, weight: Buffer, output: Buffer) throws {
        let operation = "conv2dForward"
        try validate(s, operation)
        let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: operation)
        let weightBuffer = try cl(weight, "weight", atLeast: s.weightCount, in: operation)
        let outputBuffer = try cl(output, "output", atLeast: s.outputCount, in: operation)
        try forward(s, input: inputBuffer, weight: weightBuffer, output: outputBuffer)
    }

    /// The forward convolution on this device's buffers, weight in (O, C, kH, kW).
    private func forward(_ s: ConvShape, input: OpenCLBuffer, weight: OpenCLBuffer, output: OpenCLBuffer) throws {
        if s.outChannels <= 8 && s.outWidth >= 8 && s.outHeight >= 2 {
            let items = (s.outChannels + 3) / 4 * s.batch * ((s.outHeight + 1) / 2) * ((s.outWidth + 7) / 8)
            try launch(
                "conv2d_forward_rows8x2", items: items,
                [.buffer(input), .buffer(weight), .buffer(output)] + convArguments(s))
            return
        }
        let width = Self.vectorWidth(channels: s.outChannels)
        let outPad = (s.outChannels + width - 1) / width * width
        let weightT = try scratchBuffer("conv.weightT", count: s.patchSize * outPad)
        try launch(
            "conv_weight_patch_major", items: s.patchSize * outPad,
            [
                .buffer(weight), .buffer(weightT), .int(s.outChannels), .int(s.patchSize), .int(outPad),
            ])
        let quads = (s.outWidth + 3) / 4
        try launch(
            "conv2d_forward_\(width)", items: s.batch * s.outHeight * quads * (outPad / width),
            [.buffer(input), .buffer(weightT), .buffer(output)] + convArguments(s))
    }

    /// The data gradient as a forward convolution: gradOutput zero-padded by
    /// kH−1 rows and kW−1 columns per side (`conv_pad_gradient`), convolved
    /// with the flipped kernel whose input and output channels swap
    /// (`conv_weight_flipped`), by the forward kernels above.
    public func conv2dBackwardData(_ s: ConvShape, gradOutput: Buffer, weight: Buffer, gradInput: Buffer) throws {
        let operation = "conv2dBackwardData"
        try validate(s, operation)
        let gradOutputBuffer = try cl(gradOutput, "gradOutput", atLeast: s.outputCount, in: operation)
        let weightBuffer = try cl(weight, "weight", atLeast: s.weightCount, in: operation)
        let gradInputBuffer = try cl(gradInput, "gradInput", atLeast: s.inputCount, in: operation)
        let padY = s.kernelHeight - 1
        let padX = s.kernelWidth - 1
        let padded = ConvShape(
            batch: s.batch, inChannels: s.outChannels, outChannels: s.inChannels,
            height: s.outHeight + 2 * padY, width: s.outWidth + 2 * padX,
            kernelHeight: s.kernelHeight, kernelWidth: s.kernelWidth)
        let paddedBuffer = try scratchBuffer("conv.paddedGradient", count: padded.inputCount)
        try launch(
            "conv_pad_gradient", items: s.batch * s.outChannels,
            [
                .buffer(gradOutputBuffer), .buffer(paddedBuffer), .int(s.batch * s.outChannels), .int(s.outHeight),
                .int(s.outWidth), .int(padY), .int(padX),
            ])
        let flipped = try scratchBuffer("conv.flipped", count: s.weightCount)
        try launch(
            "conv_weight_flipped", items: s.weightCount,
            [
                .buffer(weightBuffer), .buffer(flipped), .int(s.outChannels), .int(s.inChannels), .int(s.kernelHeight),
                .int(s.kernelWidth),
            ])
        try forward(padded, input: paddedBuffer, weight: flipped, output: gradInputBuffer)
    }

    /// Two forms, chosen by shape (measured on PoCL here). With at most 8
    /// output channels, a 3×3 kernel and rows of at least 8 pixels (conv1):
    /// `conv2d_weight_rows3x3` sums each (image, output channel, input
    /// channel) with vectors along the rows, `conv_sum_images` adds the
    /// images. Otherwise gradOutput is rearranged to (pixel, output channel) by
    /// `conv_output_pixel_major` (`conv_output_pixel_major16` for 16-wide
    /// vectors); `conv2d_weight_partials_W` sums each chunk
    /// of images per (input channel, four kernel positions, channel group);
    /// `conv2d_weight_reduce` adds the chunks. Chunks of ⌈B/64⌉ images keep
    /// the partial sums small (at most 64 per weight) and the work spread
    /// over up to 64 times as many work-items as one chunk would give.
    public func conv2dBackwardWeight(_ s: ConvShape, input: Buffer, gradOutput: Buffer, gradWeight: Buffer) throws {
        let operation = "conv2dBackwardWeight"
        try validate(s, operation)
        let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: operation)
        let gradOutputBuffer = try cl(gradOutput, "gradOutput", atLeast: s.outputCount, in: operation)
        let gradWeightBuffer = try cl(gradWeight, "gradWeight", atLeast: s.weightCount, in: operation)
        guard s.batch > 0 else { return try fill(gradWeightBuffer, value: 0) }
        if s.outChannels <= 8 && s.kernelHeight == 3 && s.kernelWidth == 3 && s.outWidth >= 8 {
            let partials = try scratchBuffer("conv.partials", count: s.batch * s.weightCount)
            try launch(
                "conv2d_weight_rows3x3", items: s.batch * s.outChannels * s.inChannels,
                [
                    .buffer(inputBuffer), .buffer(gradOutputBuffer), .buffer(partials), .int(s.batch),
                    .int(s.inChannels),
                    .int(s.height), .int(s.width), .int(s.outChannels),
                ])
            try launch(
                "conv_sum_images", items: s.weightCount,
                [
                    .buffer(partials), .buffer(gradWeightBuffer), .int(s.batch), .int(s.weightCount),
                ])
            return
        }
        let width = Self.vectorWidth(channels: s.outChannels)
        let groups = (s.outChannels + width - 1) / width
        let outPad = groups * width
        let planeSize = s.outHeight * s.outWidth
        let gradT = try scratchBuffer("conv.gradT", count: s.batch * planeSize * outPad)
        if outPad == 16 && planeSize >= 8 {
            try launch(
                "conv_output_pixel_major16", items: s.batch * ((planeSize + 7) / 8),
                [
                    .buffer(gradOutputBuffer), .buffer(gradT), .int(s.batch), .int(s.outChannels), .int(planeSize),
                ])
        } else {
            try launch(
                "conv_output_pixel_major", items: s.batch * outPad,
                [
                    .buffer(gradOutputBuffer), .buffer(gradT), .int(s.batch), .int(s.outChannels), .int(planeSize),
                    .int(outPad),
                ])
        }
        let imagesPerChunk = (s.batch + 63) / 64
        let chunks = (s.batch + imagesPerChunk - 1) / imagesPerChunk
        let partials = try scratchBuffer("conv.partials", count: chunks * s.patchSize * outPad)
        let blocks = (s.kernelHeight * s.kernelWidth + 3) / 4
        try launch(
            "conv2d_weight_partials_\(width)", items: chunks * s.inChannels * blocks * groups,
            [.buffer(inputBuffer), .buffer(gradT), .buffer(partials)] + convArguments(s)
                + [.int(imagesPerChunk)])
        try launch(
            "conv2d_weight_reduce", items: s.weightCount,
            [
                .buffer(partials), .buffer(gradWeightBuffer), .int(chunks), .int(s.patchSize), .int(s.outChannels),
                .int(outPad),
            ])
    }

    // MARK: Elementwise and pooling

    public func reluForward(count: Int, input: Buffer, output: Buffer) throws {
        let inputBuffer = try cl(input, "input", atLeast: count, in: "reluForward")
        let outputBuffer = try cl(output, "output", atLeast: count, in: "reluForward")
        try launch(
            "relu_forward", items: (count + 15) / 16, [.buffer(inputBuffer), .buffer(outputBuffer), .int(count)])
    }

    public func reluBackward(
        count: Int, output: Buffer, gradOutput: Buffer, addend: Buffer?, gradInput: Buffer
    ) throws {
        let operation = addend == nil ? "reluBackward" : "reluBackwardSum"
        let outputBuffer = try cl(output, "output", atLeast: count, in: operation)
        let gradOutputBuffer = try cl(gradOutput, "gradOutput", atLeast: count, in: operation)
        let addendBuffer = try addend.map { try cl($0, "addend", atLeast: count, in: operation) }
        let gradInputBuffer = try cl(gradInput, "gradInput", atLeast: count, in: operation)
        try launch(
            "relu_backward", items: (count + 15) / 16,
            [
                .buffer(outputBuffer), .buffer(gradOutputBuffer), .buffer(addendBuffer ?? gradOutputBuffer),
                .buffer(gradInputBuffer), .int(count), .int(addend == nil ? 0 : 1),
            ])
    }

    public func maxPool2Forward(_ s: PoolShape, input: Buffer, output: Buffer, argmax: Buffer) throws {
        let operation = "maxPool2Forward"
        let inputBuffer = try cl(input, "input", atLeast: s.inputCount, in: operation)
        let outputBuffer = try cl(output, "output", atLeast: s.outputCount, in: operation)
        let argmaxBuffer = try cl(argmax, "argmax", atLeast: s.outputCount, kind: .int32, in: operation)
        try launch(
            "maxpool2_forward", items: s.batch * s.channels * s.outHeight,
            [
                .buffer(inputBuffer), .buffer(outputBuffer), .buffer(argmaxBuffer), .int(s.batch * s.channels),
                .int(s.height), .int(s.width),
            ])
    }

    public func maxPool2Backward(_ s: PoolShape, gradOutput: Buffer, argmax: Buffer, gradInput: Buffer) throws {
        let operation = "maxPool2Backward"
        let gradOutputBuffer = try cl(gradOutput, "gradOutput", atLeast: s.outputCount, in: operation)
        let argmaxBuffer = try cl(argmax, "argmax", atLeast: s.outputCount, kind: .int32, in: operation)
        let gradInputBuffer = try cl(gradInput, "gradInput", atLeast: s.inputCount, in: operation)
        try launch(
            "maxpool2_backward", items: s.batch * s.channels * ((s.height + 1) / 2),
            [
                .buffer(gradOutputBuffer), .buffer(argmaxBuffer), .buffer(gradInputBuffer), .int(s.batch * s.channels),
                .int(s.height), .int(s.width),
            ])
    }

    // MARK: Linear layer

    public func linearForward(_ s: LinearShape, input: Buffer, weight: Buffer, bias: Buffer, output: Buffer) throws {
        let operation = "linearForward"
        let inputBuffer = try cl(input, "input", atLeast: s.batch * s.inFeatures, in: operation)
        let weightBuffer = try cl(weight, "weight", atLeast: s.outFeatures * s.inFeatures, in: operation)
        let biasBuffer = try cl(bias, "bias", atLeast: s.outFeatures, in: operation)
        let outputBuffer = try cl(output, "output", atLeast: s.batch * s.outFeatures, in: operation)
        if kernelFamily == .gpu {
            return try launch(
                "gpu_linear_forward", items: s.batch * s.outFeatures,
                [
                    .buffer(inputBuffer), .buffer(weightBuffer), .buffer(biasBuffer), .buffer(outputBuffer),
                    .int(s.batch), .int(s.inFeatures), .int(s.outFeatures),
                ])
        }
        try launch(
            "linear_forward", items: (s.batch + 3) / 4 * s.outFeatures,
            [
                .buffer(inputBuffer), .buffer(weightBuffer), .buffer(biasBuffer), .buffer(outputBuffer),
                .int(s.batch), .int(s.inFeatures), .int(s.outFeatures),
            ])
    }

    /// One launch of `linear_backward` (cpu/linear.cl; gpu family: `gpu_linear_backward`, gpu/dense.cl) for all three gradients.
    public func linearBackward(
        _ s: LinearShape, input: Buffer, weight: Buffer, gradOutput: Buffer,
        gradInput: Buffer?, gradWeight: Buffer, gradBias: Buffer
    ) throws {
        let operation = "linearBackward"
        let inputBuffer = try cl(input, "input", atLeast: s.batch * s.inFeatures, in: operation)
        let weightBuffer = try cl(weight, "weight", atLeast: s.outFeatures * s.inFeatures, in: operation)
        let gradOutputBuffer = try cl(gradOutput, "gradOutput", atLeast: s.batch * s.outFeatures, in: operation)
        let gradWeightBuffer = try cl(gradWeight, "gradWeight", atLeast: s.outFeatures * s.inFeatures, in: operation)
        let gradBiasBuffer = try cl(gradBias, "gradBias", atLeast: s.outFeatures, in: operation)
        // Without gradInput the kernel's gradInput argument is never written;
        // any buffer fills the slot.
        let gradInputBuffer = try gradInput.map {
            try cl($0, "gradInput", atLeast: s.batch * s.inFeatures, in: operation)
        }
        if kernelFamily == .gpu {
            let inputItems = gradInputBuffer == nil ? 0 : s.batch * s.inFeatures
            return try launch(
                "gpu_linear_backward", items: s.outFeatures * (s.inFeatures + 1) + inputItems,
                [
                    .buffer(inputBuffer), .buffer(weightBuffer), .buffer(gradOutputBuffer), .buffer(gradWeightBuffer),
                    .buffer(gradBiasBuffer), .buffer(gradInputBuffer ?? inputBuffer),
                    .int(s.batch), .int(s.inFeatures), .int(s.outFeatures), .int(gradInputBuffer == nil ? 0 : 1),
                ])
        }
        let groups = (s.inFeatures + 7) / 8
        let inputItems = gradInputBuffer == nil ? 0 : (s.batch + 3) / 4 * groups
        try launch(
            "linear_backward", items: s.outFeatures * groups + inputItems + s.outFeatures,
            [
                .buffer(inputBuffer), .buffer(weightBuffer), .buffer(gradOutputBuffer), .buffer(gradWeightBuffer),
                .buffer(gradBiasBuffer), .buffer(gradInputBuffer ?? inputBuffer),
                .int(s.batch), .int(s.inFeatures), .int(s.outFeatures), .int(gradInputBuffer == nil ? 0 : 1),
            ])
    }

    // MARK: Loss

    public func softmaxCrossEntropy(
        batch: Int, classes: Int, logits: Buffer, labels: Buffer,
        gradLogits: Buffer, perSample: Buffer
    ) throws {
        let operation = "softmaxCrossEntropy"
        guard classes > 0 else { throw OpenCLError.invalidArgument("\(operation): \(classes) classes") }
        let logitsBuffer = try cl(logits, "logits", atLeast: batch * classes, in: operation)
        let labelsBuffer = try cl(labels, "labels", atLeast: batch, kind: .int32, in: operation)
        let gradBuffer = try cl(gradLogits, "gradLogits", atLeast: batch * classes, in: operation)
        let perSampleBuffer = try cl(perSample, "perSample", atLeast: 2 * batch, in: operation)
        let gpu = kernelFamily == .gpu
        try launch(
            gpu ? "gpu_softmax_cross_entropy" : "softmax_cross_entropy", items: gpu ? batch * classes : batch,
            [
                .buffer(logitsBuffer), .buffer(labelsBuffer), .buffer(gradBuffer), .buffer(perSampleBuffer),
                .int(batch), .int(classes),
            ])
    }

    // MARK: Optimisers

    /// Tensors per `sgd_momentum_step` launch (`SGD_SLOTS` in common/optimizers.cl).
    static let sgdSlots = 16

    /// `sgd_momentum_step` (common/optimizers.cl, both families), ``sgdSlots``
    /// tensors per launch (an unused slot repeats the group's first tensor
    /// with count 0; the arguments are the slots' buffers, their counts,
    /// then the step's scalars; one work-item per element, in slot order):
    /// ResNet-8's 29 tensors in 2 launches. The arguments fill the list the
    /// device reuses: no allocation per step.
    public func sgdMomentumStep(_ tensors: [MomentumTensor], step: SGDStep) throws {
        let operation = "sgdMomentumStep"
        let slots = Self.sgdSlots
        for first in stride(from: 0, to: tensors.count, by: slots) {
            // Slot k: the group's tensor k, or its first with count 0 when unused.
            let used = min(slots, tensors.count - first)
            var items = 0
            for k in 0..<used { items += tensors[first + k].count }
            try launch("sgd_momentum_step", items: items) { arguments in
                for k in 0..<slots {
                    let t = tensors[first + (k < used ? k : 0)]
                    let n = k < used ? t.count : 0
                    arguments.append(.buffer(try cl(t.parameter, "parameter", atLeast: n, in: operation)))
                    arguments.append(.buffer(try cl(t.gradient, "gradient", atLeast: n, in: operation)))
                    arguments.append(.buffer(try cl(t.velocity, "velocity", atLeast: n, in: operation)))
                }
                for k in 0..<slots { arguments.append(.int(k < used ? tensors[first + k].count : 0)) }
                arguments.append(.float(step.learningRate))
                arguments.append(.float(step.momentum))
                arguments.append(.float(step.weightDecay))
                arguments.append(.int(step.nesterov ? 1 : 0))
            }
        }
    }

    /// `adam_step` (cpu/adam.cl, four elements per work-item) or in the
    /// gpu family `gpu_adam_step` (one element per work-item), four tensors
    /// per launch in slot order as `sgd_momentum_step`'s (⌈count / 4⌉ work-items
    /// per tensor in the cpu family).
    public func adamStep(_ tensors: [AdamTensor], step: AdamStep) throws {
        let operation = "adamStep"
        let gpu = kernelFamily == .gpu
        let perItem = gpu ? 1 : 4
        for first in stride(from: 0, to: tensors.count, by: 4) {
            // Slot k: the group's tensor k, or its first with count 0 when unused.
            let used = min(4, tensors.count - first)
            func t(_ k: Int) -> AdamTensor { tensors[first + (k < used ? k : 0)] }
            func n(_ k: Int) -> Int { k < used ? tensors[first + k].count : 0 }
            func p(_ k: Int) throws -> OpenCLKernel.Argument {
                .buffer(try cl(t(k).parameter, "parameter", atLeast: n(k), in: operation))
            }
            func g(_ k: Int) throws -> OpenCLKernel.Argument {
                .buffer(try cl(t(k).gradient, "gradient", atLeast: n(k), in: operation))
            }
            func m(_ k: Int) throws -> OpenCLKernel.Argument {
                .buffer(try cl(t(k).m, "m", atLeast: n(k), in: operation))
            }
            func v(_ k: Int) throws -> OpenCLKernel.Argument {
                .buffer(try cl(t(k).v, "v", atLeast: n(k), in: operation))
            }
            let items = (0..<4).reduce(0) { $0 + (n($1) + perItem - 1) / perItem }
            try launch(
                gpu ? "gpu_adam_step" : "adam_step", items: items,
                [
                    try p(0), try g(0), try m(0), try v(0), try p(1), try g(1), try m(1), try v(1),
                    try p(2), try g(2), try m(2), try v(2), try p(3), try g(3), try m(3), try v(3),
                    .int(n(0)), .int(n(1)), .int(n(2)), .int(n(3)),
                    .float(step.learningRate), .float(step.beta1), .float(step.beta2), .float(step.epsilon),
                    .float(step.correction1), .float(step.correction2),
                ])
        }
    }
}
