/// TinyConvNet's training pass in the gpu kernel family as two launches
/// (``TinyConvNet/trainingStep(_:)`` and
/// ``TinyConvNet/trainingStep(_:gathering:from:)`` call it; the
/// optimiser's update is a third):
///
/// 1. `gpu_tiny_step_image` (Sources/Kernels/gpu/tiny_step_image.cl): one
///    work-group per image gathers the image from the data set on the
///    device (or reads the gathered batch), runs its forward pass, loss and
///    backward pass with every activation in local memory (23,880 bytes a
///    group), and writes its logits, its loss and correct flag, and its
///    share of the 5,234 weight gradients;
/// 2. `gpu_sum_image_partials`: one work-item per parameter adds the
///    images' shares in image order.
///
/// Work-items: groups of up to 256 (``gpuGroupSize(_:items:)``: eight
/// preferred multiples, so 256 on NVIDIA, 64 on PoCL), one group per
/// image: 16,384 work-items at batch 64 and 32,768 at batch 128 on NVIDIA.
/// That is 64 or 128 groups, fewer than an H100's 132 multiprocessors,
/// so the GPU is far from full: each group does its image's ~0.6 M
/// multiply-adds in phases of 256 work-items (about 2,400 each, from local
/// memory, and a dozen barriers), which an estimate puts at 10–20 µs a
/// step. This is the trade the fusion makes: the launches it removes (the
/// gather and nine of the eleven of forward, backward and update) cost the
/// host about 5 µs each on NVIDIA's OpenCL, and the
/// whole step's arithmetic is ~2 µs at the GPU's peak, so a step bound by
/// launches becomes one bound by a single group's latency. The sum is
/// 5,234 work-items, each reading one float per image (coalesced across
/// work-items).
extension OpenCLDevice {
    /// Floats and bytes of `gpu_tiny_step_image`'s two `__local` arguments.
    static let tinyStepTileFloats = 784 + 72 + 1152 + 1352 + 400 + 400 + 1352 + 20
    static let tinyStepWinnerBytes = 1352 + 400
    /// TinyConvNet's parameters: conv1 (72), conv2 (1,152), fc.weight (4,000), fc.bias (10).
    static let tinyStepParameterCounts = [72, 1152, 4000, 10]

    /// Whether this device runs TinyConvNet's fused step: the gpu family,
    /// and the group's activations fit in local memory (else the step runs
    /// as separate operations, which fall back further where they must).
    public func fusesTinyConvNetStep() throws -> Bool {
        guard kernelFamily == .gpu else { return false }
        let k = try kernel("gpu_tiny_step_image")
        return Self.tinyStepTileFloats * 4 + Self.tinyStepWinnerBytes <= gpuLocalBytesLeft(k)
    }

    /// The images a fused step gathers itself, as
    /// ``Device/gatherBatch(_:pixels:labels:order:images:batchLabels:)``
    /// would (one channel of 28×28, no augmentation).
    struct TinyStepGather {
        var shape: BatchGatherShape
        var pixels: Buffer, labels: Buffer, order: Buffer
    }

    /// TinyConvNet's forward pass, loss and backward pass for `batch`
    /// images of `input` (B, 1, 28, 28) with `labels`, or, with `gather`,
    /// for the images it gathers (which it also stores in `input` and
    /// `labels`): writes `logits` (B, 10), `perSample` (losses, then 1 where
    /// the first largest logit is the label) and the four `gradients` (the
    /// batch's sums of the per-image shares, in image order). False,
    /// queuing nothing, where ``fusesTinyConvNetStep()`` is false or the
    /// gather is not a plain one of 784-pixel images.
    func tinyConvNetTrainingStep(
        batch: Int, input: Buffer, labels: Buffer, parameters: [Buffer], logits: Buffer, perSample: Buffer,
        gradients: [Buffer], gather: TinyStepGather? = nil
    ) throws -> Bool {
        let operation = "tinyConvNetTrainingStep"
        let counts = Self.tinyStepParameterCounts
        guard parameters.count == 4, gradients.count == 4 else {
            throw OpenCLError.invalidArgument("\(operation): 4 parameter and 4 gradient tensors expected")
        }
        if let g = gather {
            guard g.shape.isPlain, g.shape.imageSize == 784, g.shape.batch == batch, g.shape.range.lowerBound >= 0
            else {
                return false
            }
            if let problem = g.shape.problem { throw OpenCLError.invalidArgument("\(operation): \(problem)") }
        }
        guard batch > 0, try fusesTinyConvNetStep() else { return false }
        let inputBuffer = try cl(input, "input", atLeast: batch * 784, in: operation)
        let labelBuffer = try cl(labels, "labels", atLeast: batch, kind: .int32, in: operation)
        // Without a gather the kernel reads none of these: any buffers of the right kinds stand in.
        // Each argument is its own value and the launch's arguments one literal: no allocation per step.
        var gathers = 0
        var first = 0
        var count = 0
        var (pixels, pixelLabels, order) = (inputBuffer, inputBuffer, labelBuffer)
        var (scale, shift): (Float, Float) = (0, 0)
        if let g = gather {
            let s = g.shape
            gathers = 1
            pixels = try cl(g.pixels, "pixels", atLeast: s.count * 784, kind: .uint8, in: operation)
            pixelLabels = try cl(g.labels, "pixel labels", atLeast: s.count, kind: .uint8, in: operation)
            order = try cl(g.order, "order", atLeast: s.range.upperBound, kind: .int32, in: operation)
            (first, count, scale, shift) = (s.range.lowerBound, s.count, s.scales[0], s.shifts[0])
        }
        func weight(_ i: Int) throws -> OpenCLBuffer {
            try cl(parameters[i], "parameter", atLeast: counts[i], in: operation)
        }
        func grad(_ i: Int) throws -> OpenCLBuffer {
            try cl(gradients[i], "gradient", atLeast: counts[i], in: operation)
        }
        let (w0, w1, w2, w3) = (try weight(0), try weight(1), try weight(2), try weight(3))
        let (g0, g1, g2, g3) = (try grad(0), try grad(1), try grad(2), try grad(3))
        let logitBuffer = try cl(logits, "logits", atLeast: batch * 10, in: operation)
        let resultBuffer = try cl(perSample, "perSample", atLeast: 2 * batch, in: operation)
        let total = counts[0] + counts[1] + counts[2] + counts[3]
        let partials = try scratchBuffer("gpu.tinyStepPartials", count: batch * total)
        let name = "gpu_tiny_step_image"
        let local = gpuGroupSize(try kernel(name), items: 256)
        try launch(name, items: batch * local, local: local) { a in
            a.append(.buffer(inputBuffer))
            a.append(.buffer(labelBuffer))
            a.append(.buffer(w0))
            a.append(.buffer(w1))
            a.append(.buffer(w2))
            a.append(.buffer(w3))
            a.append(.buffer(logitBuffer))
            a.append(.buffer(resultBuffer))
            a.append(.buffer(partials))
            a.append(.local(bytes: Self.tinyStepTileFloats * 4))
            a.append(.local(bytes: Self.tinyStepWinnerBytes))
            a.append(.int(batch))
            a.append(.int(gathers))
            a.append(.buffer(pixels))
            a.append(.buffer(pixelLabels))
            a.append(.buffer(order))
            a.append(.int(first))
            a.append(.int(count))
            a.append(.float(scale))
            a.append(.float(shift))
        }
        try launch("gpu_sum_image_partials", items: total) { a in
            a.append(.buffer(partials))
            a.append(.buffer(g0))
            a.append(.buffer(g1))
            a.append(.buffer(g2))
            a.append(.buffer(g3))
            a.append(.int(counts[0]))
            a.append(.int(counts[1]))
            a.append(.int(counts[2]))
            a.append(.int(counts[3]))
            a.append(.int(batch))
        }
        return true
    }
}
