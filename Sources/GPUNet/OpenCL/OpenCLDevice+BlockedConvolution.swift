/// The cpu family's general convolution (cpu/conv2d_blocked.cl): register-
/// blocked implicit GEMMs over a zero-padded copy of the input
/// (`conv_pad_gradient`, common), so that no read needs a bounds check.
/// Each work-item keeps W channels × P pixels (forward, data gradient) or
/// W channels × P taps (weight gradient) in P vectors of W lanes: W = 16,
/// P = 6 above 8 channels, else W = 8 or 4 and P = 8. The data gradient is
/// the forward sum over the padded output gradient once per stride phase,
/// with the phase's taps flipped and the channel axes swapped
/// (`conv_weight_phase`); at stride 1 that is one phase, the host's
/// `transposedCorrelation`.
import COpenCL

extension OpenCLDevice {
    static let blockedForward = LaneKernel("conv2d_blocked_forward")
    static let blockedWeightPartials = LaneKernel("conv2d_blocked_weight_partials")

    /// The vector width of the blocked kernels for `channels` channels: 4, 8
    /// or 16, the smallest ≥ the count up to 16, so that a narrow layer's
    /// cost goes with its channels.
    static func blockedWidth(channels: Int) -> Int { channels > 8 ? 16 : channels > 4 ? 8 : 4 }

    /// Pixels (forward) or taps (weight gradient) per work-item for width `w`.
    static func blockedSize(width w: Int) -> Int { w == 16 ? 6 : 8 }

    /// `values` (planes of height × width) zero-padded by `padY` rows and
    /// `padX` columns on each side into the scratch buffer `name`, or
    /// `values` itself where both are 0; the scratch buffer holds `slack`
    /// floats more, which a kernel may read and not use.
    func padded(
        _ values: OpenCLBuffer, planes: Int, height: Int, width: Int, padY: Int, padX: Int, name: String,
        slack: Int = 0
    ) throws -> OpenCLBuffer {
        guard padY > 0 || padX > 0 else { return values }
        let count = planes * (height + 2 * padY) * (width + 2 * padX)
        let target = try scratchBuffer(name, count: count + slack)
        try launch(
            "conv_pad_gradient", items: planes,
            [.buffer(values), .buffer(target), .int(planes), .int(height), .int(width), .int(padY), .int(padX)])
        return target
    }

    /// The blocked forward sum (`conv2d_blocked_forward_W`) over `input`
    /// (B, inChannels, paddedHeight, paddedWidth) with `weightT` prepared
    /// (patch-major, outPad columns) on a grid of `grid` pixels per image:
    /// output[b, o, outRow + y·outStep, outColumn + x·outStep] for the
    /// (outHeight, outWidth) output reads the input from row y·stride + inRow,
    /// column x·stride + inColumn.
    private func blockedForward(
        input: OpenCLBuffer, weightT: OpenCLBuffer, bias: OpenCLBuffer?, output: OpenCLBuffer, batch: Int,
        inChannels: Int, padded: (height: Int, width: Int), outChannels: Int, kernel: (height: Int, width: Int),
        stride: Int, grid: (height: Int, width: Int), inStart: (row: Int, column: Int),
        out: (height: Int, width: Int), outStart: (row: Int, column: Int), outStep: Int
    ) throws {
        let width = Self.blockedWidth(channels: outChannels)
        let size = Self.blockedSize(width: width)
        let blocks = (batch * grid.height * grid.width + size - 1) / size
        try launch(
            Self.blockedForward[width], items: blocks * ((outChannels + width - 1) / width),
            [
                .buffer(input), .buffer(weightT), .buffer(bias ?? weightT), .buffer(output), .int(batch),
                .int(inChannels), .int(padded.height), .int(padded.width), .int(outChannels), .int(kernel.height),
                .int(kernel.width), .int(stride), .int(grid.height), .int(grid.width), .int(inStart.row),
                .int(inStart.column), .int(out.height), .int(out.width), .int(outStart.row),
                .int(outStart.column), .int(outStep), .int(bias == nil ? 0 : 1),
            ])
    }

    /// cpu family forward: `conv_pad_gradient` (where p > 0),
    /// `conv_weight_patch_major`, `conv2d_blocked_forward_W`.
    func blockedConv2dForward(
        _ s: Conv2dShape, input: OpenCLBuffer, weight: OpenCLBuffer, bias: OpenCLBuffer?, output: OpenCLBuffer
    ) throws {
        let source = try padded(
            input, planes: s.batch * s.inChannels, height: s.height, width: s.width, padY: s.padding,
            padX: s.padding, name: "conv.blocked.padded")
        let width = Self.blockedWidth(channels: s.outChannels)
        let outPad = (s.outChannels + width - 1) / width * width
        let weightT = try scratchBuffer("conv.blocked.weightT", count: s.patchSize * outPad)
        try launch(
            "conv_weight_patch_major", items: s.patchSize * outPad,
            [.buffer(weight), .buffer(weightT), .int(s.outChannels), .int(s.patchSize), .int(outPad)])
        try blockedForward(
            input: source, weightT: weightT, bias: bias, output: output, batch: s.batch, inChannels: s.inChannels,
            padded: (s.height + 2 * s.padding, s.width + 2 * s.padding), outChannels: s.outChannels,
            kernel: (s.kernelHeight, s.kernelWidth), stride: s.stride, grid: (s.outHeight, s.outWidth),
            inStart: (0, 0), out: (s.outHeight, s.outWidth), outStart: (0, 0), outStep: 1)
    }

    /// One stride phase of the data gradient along one axis: the input
    /// rows (or columns) start, start + s, …, `count` of them, receive the
    /// taps tapPhase + s·t for t < `taps` from the gradient rows
    /// shift + m − t (m the row's index in the phase).
    struct DataPhase: Equatable {
        var start: Int, count: Int, tapPhase: Int, taps: Int, shift: Int
    }

    /// The phases along an axis of `size` inputs, `outSize` outputs, a
    /// kernel of `kernel` taps, stride and padding as given (phases with no
    /// input left out).
    static func dataPhases(size: Int, outSize: Int, kernel: Int, stride: Int, padding: Int) -> [DataPhase] {
        (0..<min(stride, size)).map { start in
            let tapPhase = (start + padding) % stride
            return DataPhase(
                start: start, count: (size - start + stride - 1) / stride, tapPhase: tapPhase,
                taps: kernel > tapPhase ? (kernel - tapPhase + stride - 1) / stride : 0,
                shift: (start + padding - tapPhase) / stride)
        }
    }

    /// The zero border the phases need on each side of the gradient: the
    /// rows shift + m − t run from shift − (taps − 1) to shift + count − 1.
    static func dataPadding(_ phases: [DataPhase], outSize: Int) -> Int {
        phases.reduce(0) { pad, q in max(pad, q.taps - 1 - q.shift, q.shift + q.count - outSize) }
    }

    /// cpu family data gradient, for every stride: `conv_pad_gradient`
    /// (the output gradient with the border ``dataPadding(_:outSize:)``),
    /// then per stride phase (``dataPhases(size:outSize:kernel:stride:padding:)``,
    /// s² of them) `conv_weight_phase` and the blocked forward sum,
    /// gradInput[b,c,Y,X] = Σ_{o,i,j} padded[b,o,·,·]·weight[o,c,i,j] over the
    /// phase's taps, every input pixel written by exactly one phase (or
    /// zeroed, where its phase has no taps).
    func blockedConv2dBackwardData(
        _ s: Conv2dShape, gradOutput: OpenCLBuffer, weight: OpenCLBuffer, gradInput: OpenCLBuffer
    ) throws {
        let rows = Self.dataPhases(
            size: s.height, outSize: s.outHeight, kernel: s.kernelHeight, stride: s.stride, padding: s.padding)
        let columns = Self.dataPhases(
            size: s.width, outSize: s.outWidth, kernel: s.kernelWidth, stride: s.stride, padding: s.padding)
        let padY = Self.dataPadding(rows, outSize: s.outHeight)
        let padX = Self.dataPadding(columns, outSize: s.outWidth)
        let source = try padded(
            gradOutput, planes: s.batch * s.outChannels, height: s.outHeight, width: s.outWidth, padY: padY,
            padX: padX, name: "conv.blocked.padded")
        let width = Self.blockedWidth(channels: s.inChannels)
        let inPad = (s.inChannels + width - 1) / width * width
        // Phases with no taps (a kernel narrower than the stride) receive
        // nothing: one fill zeroes them with the rest, and they launch nothing.
        if rows.contains(where: { $0.taps == 0 }) || columns.contains(where: { $0.taps == 0 }) {
            counters.launches += 1
            var zero: Float = 0
            try OpenCLError.check(
                clEnqueueFillBuffer(context.queue, gradInput.memory, &zero, 4, 0, s.inputCount * 4, 0, nil, nil),
                "clEnqueueFillBuffer(\(s.inputCount * 4) bytes)")
        }
        for row in rows where row.taps > 0 {
            for column in columns where column.taps > 0 {
                let taps = s.outChannels * row.taps * column.taps
                let weightT = try scratchBuffer("conv.blocked.weightT", count: taps * inPad)
                try launch(
                    "conv_weight_phase", items: taps * inPad,
                    [
                        .buffer(weight), .buffer(weightT), .int(s.outChannels), .int(s.inChannels),
                        .int(s.kernelHeight), .int(s.kernelWidth), .int(s.stride), .int(row.tapPhase),
                        .int(column.tapPhase), .int(row.taps), .int(column.taps), .int(inPad),
                    ])
                try blockedForward(
                    input: source, weightT: weightT, bias: nil, output: gradInput, batch: s.batch,
                    inChannels: s.outChannels, padded: (s.outHeight + 2 * padY, s.outWidth + 2 * padX),
                    outChannels: s.inChannels, kernel: (row.taps, column.taps), stride: 1,
                    grid: (row.count, column.count),
                    inStart: (row.shift - row.taps + 1 + padY, column.shift - column.taps + 1 + padX),
                    out: (s.height, s.width), outStart: (row.start, column.start), outStep: s.stride)
            }
        }
    }

    /// The images per chunk of the blocked weight gradient: chunks enough
    /// for 256 work-items where the batch allows (a fixed function of the
    /// shape, so the order of the sums is too).
    static func blockedWeightImagesPerChunk(_ s: Conv2dShape) -> Int {
        let width = blockedWidth(channels: s.outChannels)
        let size = blockedSize(width: width)
        let items = (s.patchSize + size - 1) / size * ((s.outChannels + width - 1) / width)
        let chunks = max(1, min(s.batch, (256 + items - 1) / items))
        return (s.batch + chunks - 1) / chunks
    }

    /// cpu family weight gradient: `conv_output_pixel_major` (the output
    /// gradient as (B·oH·oW, outPad)), `conv_pad_gradient` (where p > 0),
    /// `conv2d_blocked_weight_partials_W` over chunks of images
    /// (``blockedWeightImagesPerChunk(_:)``), then `conv2d_weight_reduce`
    /// adding the chunks in order.
    func blockedConv2dBackwardWeight(
        _ s: Conv2dShape, input: OpenCLBuffer, gradOutput: OpenCLBuffer, gradWeight: OpenCLBuffer
    ) throws {
        let width = Self.blockedWidth(channels: s.outChannels)
        let outPad = (s.outChannels + width - 1) / width * width
        let planeSize = s.outHeight * s.outWidth
        let gradT = try scratchBuffer("conv.strided.gradT", count: s.batch * planeSize * outPad)
        try launch(
            "conv_output_pixel_major", items: s.batch * outPad,
            [
                .buffer(gradOutput), .buffer(gradT), .int(s.batch), .int(s.outChannels), .int(planeSize),
                .int(outPad),
            ])
        let source = try padded(
            input, planes: s.batch * s.inChannels, height: s.height, width: s.width, padY: s.padding,
            padX: s.padding, name: "conv.blocked.padded")
        let imagesPerChunk = Self.blockedWeightImagesPerChunk(s)
        let chunks = (s.batch + imagesPerChunk - 1) / imagesPerChunk
        let size = Self.blockedSize(width: width)
        let blocks = (s.patchSize + size - 1) / size
        let partials = try scratchBuffer("conv.strided.partials", count: chunks * s.patchSize * outPad)
        try launch(
            Self.blockedWeightPartials[width], items: chunks * blocks * (outPad / width),
            [
                .buffer(source), .buffer(gradT), .buffer(partials), .int(s.batch), .int(s.inChannels),
                .int(s.height + 2 * s.padding), .int(s.width + 2 * s.padding), .int(s.outChannels),
                .int(s.kernelHeight), .int(s.kernelWidth), .int(s.stride), .int(s.outHeight), .int(s.outWidth),
                .int(imagesPerChunk),
            ])
        try launch(
            "conv2d_weight_reduce", items: s.weightCount,
            [
                .buffer(partials), .buffer(gradWeight), .int(chunks), .int(s.patchSize), .int(s.outChannels),
                .int(outPad),
            ])
    }
}
