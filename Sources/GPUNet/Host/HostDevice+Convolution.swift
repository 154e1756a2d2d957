import CHostKernels

/// Convolutions on the host, images split across the cores.
///
/// Two ways, chosen per call (``HostDevice/directPlan(_:)``):
/// - direct AVX2/FMA correlation (`CHostKernels`), no columns at all: the
///   forward pass, the data gradient (a correlation of the zero-padded
///   output gradient with the flipped, transposed weights) and the weight
///   gradient (pixels in the lanes for patches of at most
///   ``directWeightGradientMaxPatch`` taps, output channels in the lanes
///   above). Measured single-core at batch 64 against im2col + OpenBLAS
///   (/tmp C harness, medians of 21, shared machine): conv1 (1→8, 28×28)
///   forward 0.19 vs 0.41 ms, weight gradient 0.25 vs 0.53 ms (channels in
///   lanes: 0.47); conv2 (8→16, 13×13) forward 0.42 vs 0.62 ms, data
///   gradient 0.60 vs 0.72 ms, weight gradient with channels in lanes 0.34
///   vs 0.62 ms (pixels in lanes: 0.84, rows of 11 waste 5 of 16 lanes).
/// - im2col + `sgemm` per image: per image, the output slice (O, oH·oW) of
///   NCHW is exactly the product weight (O, C·kH·kW) · columns (C·kH·kW,
///   oH·oW), so no reordering is needed, and one image's columns
///   (≤ 72×676 floats) stay in L2.
extension HostDevice {
    /// The weight gradient keeps pixels in the vector lanes up to this many
    /// taps, and output channels above (see the measurements above).
    static let directWeightGradientMaxPatch = 32

    /// The geometry the direct kernels need, or nil when they do not apply:
    /// no AVX2/FMA, an output row shorter than one 8-lane vector, a row
    /// longer than the kernels' 64 runs of 8 (512), or a padded image past
    /// Int32 offsets.
    struct DirectPlan {
        /// Tap offsets of the forward correlation over one input image.
        var offsets: [Int32]
        /// The same for the data gradient, over one padded output-gradient
        /// image (O, oH + 2(kH−1), oW + 2(kW−1)).
        var paddedOffsets: [Int32]
        var paddedHeight: Int, paddedWidth: Int
    }

    func directPlan(_ s: ConvShape) -> DirectPlan? {
        let paddedHeight = s.outHeight + 2 * (s.kernelHeight - 1)
        let paddedWidth = s.outWidth + 2 * (s.kernelWidth - 1)
        guard usesDirectKernels, s.outWidth >= 8, s.width <= 512,
            s.outChannels * paddedHeight * paddedWidth < Int(Int32.max),
            s.inChannels * s.height * s.width < Int(Int32.max)
        else { return nil }
        var offsets = [Int32](repeating: 0, count: s.patchSize)
        hk_tap_offsets(
            Int32(s.inChannels), Int32(s.height), Int32(s.width),
            Int32(s.kernelHeight), Int32(s.kernelWidth), &offsets)
        var paddedOffsets = [Int32](repeating: 0, count: s.outChannels * s.kernelHeight * s.kernelWidth)
        hk_tap_offsets(
            Int32(s.outChannels), Int32(paddedHeight), Int32(paddedWidth),
            Int32(s.kernelHeight), Int32(s.kernelWidth), &paddedOffsets)
        return DirectPlan(
            offsets: offsets, paddedOffsets: paddedOffsets,
            paddedHeight: paddedHeight, paddedWidth: paddedWidth)
    }

    public func im2col(_ s: ConvShape, input: Buffer, columns: Buffer) throws {
        try validate(s, "im2col")
        let pin = try floats(input, at: s.inputCount, "im2col", "input")
        let pcol = try floats(columns, at: s.patchSize * s.patchCount, "im2col", "columns")
        let imageSize = s.inChannels * s.height * s.width
        let patches = s.outHeight * s.outWidth
        parallelChunks(s.batch, chunks: tasks) { _, images in
            for b in images {
                HostLoops.im2colImage(
                    s, image: pin + b * imageSize, columns: pcol + b * patches,
                    rowStride: s.patchCount)
            }
        }
    }

    public func col2im(_ s: ConvShape, columns: Buffer, input: Buffer) throws {
        try validate(s, "col2im")
        let pcol = try floats(columns, at: s.patchSize * s.patchCount, "col2im", "columns")
        let pin = try floats(input, at: s.inputCount, "col2im", "input")
        let imageSize = s.inChannels * s.height * s.width
        let patches = s.outHeight * s.outWidth
        parallelChunks(s.batch, chunks: tasks) { _, images in
            for b in images {
                let image = pin + b * imageSize
                image.update(repeating: 0, count: imageSize)
                HostLoops.col2imImage(s, columns: pcol + b * patches, rowStride: s.patchCount, image: image)
            }
        }
    }

    public func conv2dForward(_ s: ConvShape, input: Buffer, weight: Buffer, output: Buffer) throws {
        try validate(s, "conv2dForward")
        let pin = try floats(input, at: s.inputCount, "conv2dForward", "input")
        let pw = try floats(weight, at: s.weightCount, "conv2dForward", "weight")
        let pout = try floats(output, at: s.outputCount, "conv2dForward", "output")
        let imageOutput = s.outChannels * s.outHeight * s.outWidth
        let convolution = imageConvolution(s, weight: pw)
        parallelChunks(s.batch, chunks: tasks) { worker, images in
            for b in images { convolution.run(input: pin, image: b, worker: worker, output: pout + b * imageOutput) }
        }
    }

    /// One image's forward correlation, weights prepared once per call:
    /// direct AVX2 kernels where ``directPlan(_:)`` allows, else im2col +
    /// `sgemm` in the worker's scratch columns.
    struct ImageConvolution {
        let shape: ConvShape
        let weight: UnsafeMutablePointer<Float>
        let plan: DirectPlan?
        /// Direct path: weightsT (K × O rounded up to 4, zero padding), column o is weight row o.
        let weightsT: [Float]
        let outPad: Int
        /// im2col path: each worker's columns (K × oH·oW).
        let columns: UnsafeMutablePointer<UnsafeMutablePointer<Float>>?

        /// Writes image `b`'s output (O, oH, oW) to `output`.
        func run(input: UnsafeMutablePointer<Float>, image b: Int, worker: Int, output: UnsafeMutablePointer<Float>) {
            let s = shape
            let k = s.patchSize
            let o = s.outChannels
            let patches = s.outHeight * s.outWidth
            let image = input + b * s.inChannels * s.height * s.width
            if let plan {
                weightsT.withUnsafeBufferPointer { wt in
                    plan.offsets.withUnsafeBufferPointer { offsets in
                        hk_correlate_image(
                            image, Int32(s.width), offsets.baseAddress, Int32(k), wt.baseAddress,
                            Int32(o), Int32(outPad), Int32(s.outHeight), Int32(s.outWidth), output)
                    }
                }
                return
            }
            let cols = columns![worker]
            HostLoops.im2colImage(s, image: image, columns: cols, rowStride: patches)
            // out_b (O×P) = W (O×K) · cols (K×P)
            HostLoops.sgemm(
                transposeA: false, transposeB: false, m: o, n: patches, k: k, alpha: 1,
                a: weight, lda: k, b: cols, ldb: patches, beta: 0, c: output, ldc: patches)
        }
    }

    /// The weights (O × taps) as (taps × outPad), zero in the padding
    /// columns: column o is weight row o, so one tap's output channels are
    /// contiguous for the vector lanes.
    static func tapMajorWeights(_ pw: UnsafePointer<Float>, outChannels: Int, taps: Int, outPad: Int) -> [Float] {
        var weightsT = [Float](repeating: 0, count: taps * outPad)
        weightsT.withUnsafeMutableBufferPointer {
            tapMajorWeights(pw, outChannels: outChannels, taps: taps, outPad: outPad, into: $0.baseAddress!)
        }
        return weightsT
    }

    /// ``tapMajorWeights(_:outChannels:taps:outPad:)`` into `weightsT`
    /// (taps × outPad floats), padding columns included.
    static func tapMajorWeights(
        _ pw: UnsafePointer<Float>, outChannels: Int, taps: Int, outPad: Int, into weightsT: UnsafeMutablePointer<Float>
    ) {
        weightsT.update(repeating: 0, count: taps * outPad)
        for oc in 0..<outChannels { for t in 0..<taps { weightsT[t * outPad + oc] = pw[oc * taps + t] } }
    }

    func imageConvolution(_ s: ConvShape, weight pw: UnsafeMutablePointer<Float>) -> ImageConvolution {
        let k = s.patchSize
        let o = s.outChannels
        if let plan = directPlan(s) {
            let outPad = (o + 3) / 4 * 4
            let weightsT = Self.tapMajorWeights(pw, outChannels: o, taps: k, outPad: outPad)
            return ImageConvolution(shape: s, weight: pw, plan: plan, weightsT: weightsT, outPad: outPad, columns: nil)
        }
        return ImageConvolution(
            shape: s, weight: pw, plan: nil, weightsT: [], outPad: 0,
            columns: scratch.slot(0, floats: k * s.outHeight * s.outWidth))
    }

    public func conv2dBackwardData(_ s: ConvShape, gradOutput: Buffer, weight: Buffer, gradInput: Buffer) throws {
        try validate(s, "conv2dBackwardData")
        let pgo = try floats(gradOutput, at: s.outputCount, "conv2dBackwardData", "gradOutput")
        let pw = try floats(weight, at: s.weightCount, "conv2dBackwardData", "weight")
        let pgi = try floats(gradInput, at: s.inputCount, "conv2dBackwardData", "gradInput")
        let imageSize = s.inChannels * s.height * s.width
        let patches = s.outHeight * s.outWidth
        let k = s.patchSize
        let o = s.outChannels
        if let plan = directPlan(s) {
            directBackwardData(s, plan, gradOutput: pgo, weight: pw, gradInput: pgi)
            return
        }
        let columns = scratch.slot(0, floats: k * patches)
        parallelChunks(s.batch, chunks: tasks) { worker, images in
            let cols = columns[worker]
            for b in images {
                // cols (K×P) = Wᵀ (K×O) · gradOut_b (O×P), then fold back.
                HostLoops.sgemm(
                    transposeA: true, transposeB: false, m: k, n: patches, k: o, alpha: 1,
                    a: pw, lda: k, b: pgo + b * o * patches, ldb: patches, beta: 0,
                    c: cols, ldc: patches)
                let image = pgi + b * imageSize
                image.update(repeating: 0, count: imageSize)
                HostLoops.col2imImage(s, columns: cols, rowStride: patches, image: image)
            }
        }
    }

    public func conv2dBackwardWeight(_ s: ConvShape, input: Buffer, gradOutput: Buffer, gradWeight: Buffer) throws {
        try validate(s, "conv2dBackwardWeight")
        let pin = try floats(input, at: s.inputCount, "conv2dBackwardWeight", "input")
        let pgo = try floats(gradOutput, at: s.outputCount, "conv2dBackwardWeight", "gradOutput")
        let pgw = try floats(gradWeight, at: s.weightCount, "conv2dBackwardWeight", "gradWeight")
        let imageSize = s.inChannels * s.height * s.width
        let patches = s.outHeight * s.outWidth
        let k = s.patchSize
        let o = s.outChannels
        let partials = scratch.slot(1, floats: o * k)
        let chunks = min(tasks, s.batch)
        if let plan = directPlan(s) {
            let wide = k > Self.directWeightGradientMaxPatch
            let work = scratch.slot(
                0,
                floats: wide
                    ? Int(
                        hk_weight_gradient_wide_work(
                            Int32(k), Int32(o), Int32(s.outHeight), Int32(s.outWidth))) : 1)
            plan.offsets.withUnsafeBufferPointer { offsets in
                parallelChunks(s.batch, chunks: chunks) { worker, images in
                    let first = images.lowerBound
                    if wide {
                        hk_correlate_weight_gradient_wide(
                            pin + first * imageSize, Int32(imageSize), Int32(s.width), offsets.baseAddress, Int32(k),
                            pgo + first * o * patches, Int32(o * patches), Int32(o), Int32(s.outHeight),
                            Int32(s.outWidth), Int32(images.count), work[worker], partials[worker])
                    } else {
                        hk_correlate_weight_gradient(
                            pin + first * imageSize, Int32(imageSize), Int32(s.width), offsets.baseAddress, Int32(k),
                            pgo + first * o * patches, Int32(o * patches), Int32(o), Int32(s.outHeight),
                            Int32(s.outWidth), Int32(images.count), partials[worker])
                    }
                }
            }
        } else {
            conv2dBackwardWeightColumns(s, input: pin, gradOutput: pgo, partials: partials, chunks: chunks)
        }
        // Sum the tasks' partial gradients in task order (deterministic: the split depends only on the batch and the task count, never on which thread ran what).
        let count = o * k
        if s.batch == 0 {
            pgw.update(repeating: 0, count: count)
            return
        }
        pgw.update(from: partials[0], count: count)
        for w in 1..<max(1, chunks) {
            let partial = partials[w]
            for i in 0..<count { pgw[i] += partial[i] }
        }
    }

    /// Each worker's partial weight gradient (O×K) over its images, by
    /// im2col + `sgemm`.
    private func conv2dBackwardWeightColumns(
        _ s: ConvShape, input pin: UnsafeMutablePointer<Float>,
        gradOutput pgo: UnsafeMutablePointer<Float>,
        partials: UnsafeMutablePointer<UnsafeMutablePointer<Float>>, chunks: Int
    ) {
        let imageSize = s.inChannels * s.height * s.width
        let patches = s.outHeight * s.outWidth
        let k = s.patchSize
        let o = s.outChannels
        let columns = scratch.slot(0, floats: k * patches)
        parallelChunks(s.batch, chunks: chunks) { worker, images in
            let cols = columns[worker]
            let partial = partials[worker]
            var beta: Float = 0
            for b in images {
                HostLoops.im2colImage(s, image: pin + b * imageSize, columns: cols, rowStride: patches)
                // partial (O×K) += gradOut_b (O×P) · cols (K×P)ᵀ
                HostLoops.sgemm(
                    transposeA: false, transposeB: true, m: o, n: k, k: patches, alpha: 1,
                    a: pgo + b * o * patches, lda: patches, b: cols, ldb: patches, beta: beta,
                    c: partial, ldc: k)
                beta = 1
            }
        }
    }

    /// The data gradient by direct correlation: per image, the output
    /// gradient is copied into the middle of a zero border of kH−1 rows and
    /// kW−1 columns, then correlated with weights flipped in both spatial
    /// axes and with in/out channels swapped:
    /// gradInput[c,Y,X] = Σ_{o,i,j} W[o,c,kH−1−i,kW−1−j]·padded[o,Y+i,X+j]
    /// = Σ_{o,i,j} W[o,c,i,j]·gradOut[o,Y−i,X−j] (terms outside gradOut are 0).
    private func directBackwardData(
        _ s: ConvShape, _ plan: DirectPlan, gradOutput pgo: UnsafeMutablePointer<Float>,
        weight pw: UnsafeMutablePointer<Float>, gradInput pgi: UnsafeMutablePointer<Float>
    ) {
        let (c, o, kH, kW) = (s.inChannels, s.outChannels, s.kernelHeight, s.kernelWidth)
        let (oH, oW) = (s.outHeight, s.outWidth)
        let imageSize = c * s.height * s.width
        let patches = oH * oW
        let (pH, pW) = (plan.paddedHeight, plan.paddedWidth)
        let paddedSize = o * pH * pW
        let taps = o * kH * kW
        // flippedT (taps × C rounded up to 4): tap (o,i,j), column c = W[o,c,kH−1−i,kW−1−j].
        let cPad = (c + 3) / 4 * 4
        var flippedT = [Float](repeating: 0, count: taps * cPad)
        for oc in 0..<o {
            for ic in 0..<c {
                for i in 0..<kH {
                    for j in 0..<kW {
                        flippedT[((oc * kH + i) * kW + j) * cPad + ic] =
                            pw[((oc * c + ic) * kH + (kH - 1 - i)) * kW + (kW - 1 - j)]
                    }
                }
            }
        }
        let paddedImages = scratch.slot(0, floats: paddedSize)
        flippedT.withUnsafeBufferPointer { wt in
            plan.paddedOffsets.withUnsafeBufferPointer { offsets in
                parallelChunks(s.batch, chunks: tasks) { worker, images in
                    let padded = paddedImages[worker]
                    // The border stays zero; only the middle is rewritten per image.
                    padded.update(repeating: 0, count: paddedSize)
                    for b in images {
                        let source = pgo + b * o * patches
                        for oc in 0..<o {
                            for y in 0..<oH {
                                (padded + oc * pH * pW + (y + kH - 1) * pW + (kW - 1))
                                    .update(from: source + oc * patches + y * oW, count: oW)
                            }
                        }
                        hk_correlate_image(
                            padded, Int32(pW), offsets.baseAddress, Int32(taps),
                            wt.baseAddress, Int32(c), Int32(cPad),
                            Int32(s.height), Int32(s.width), pgi + b * imageSize)
                    }
                }
            }
        }
    }

    /// Rejects shapes with non-positive sizes or a kernel larger than the input.
    func validate(_ s: ConvShape, _ operation: String) throws {
        guard s.batch >= 0, s.inChannels > 0, s.outChannels > 0, s.kernelHeight > 0, s.kernelWidth > 0,
            s.outHeight > 0, s.outWidth > 0
        else {
            throw HostDeviceError.invalidShape(
                operation: operation,
                reason:
                    "batch \(s.batch), channels \(s.inChannels)→\(s.outChannels), input \(s.height)×\(s.width), kernel \(s.kernelHeight)×\(s.kernelWidth)"
            )
        }
    }
}
