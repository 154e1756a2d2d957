import CHostKernels

/// Fused eval-mode convolution layers on 16-lane AVX-512 vectors
/// (`hk_infer_correlate16`, `WideInference.c`), used where the host runs
/// AVX-512 (``HostDevice/usesAVX512``).
///
/// A stride-1 convolution whose padding adds at most kernel − 1 (`same`
/// padding, or less) reads its input straight from the unpadded image:
/// output (y, x) is q = y·W + x, tap (c, i, j) reads the run at
/// c·H·W + (i − p)·W + (j − p), and a mask per 16 positions and tap class
/// (i, j) zeroes the lanes whose pixel lies in the padding, so no padded copy
/// is made and, with `same` padding, no position is computed that is then
/// dropped. Strided convolutions read the padded stride-phases of
/// `HostDevice+WideConvolution.swift`'s plan, gathered 16 columns at a time
/// (`hk_infer_phase_planes16`: 3.6 µs against 8.0 for 16 channels of
/// 28×28 in the harness below). Output channels go in ⌈O/8⌉ blocks
/// of near-equal sizes: a rank r = 17 computes 17 channels (6 + 6 + 5), not
/// 24 (measured in the harness below: 32 → 17 → 32 at 14×14, 13.3 µs an
/// image with blocks 8 + 8 + 1, 12.7 µs with 6 + 6 + 5). A
/// pointwise convolution after the first one reads its r rows from the
/// worker's scratch (r·⌈oH·W/16⌉·16 floats, in the core's cache). With
/// `same` padding the affine map, the residual sum and the ReLU are applied
/// to the last product's registers before its one store to the output;
/// otherwise by a pass over the scratch (`hk_infer_epilogue16`).
///
/// A sequence of layers (``fusedConvolutionSequence(_:)``) runs image by
/// image, so each layer's input and residual are in the core's cache and
/// only its output's lines are fetched ahead. A single layer runs over the
/// batch, whose maps live in L3 or memory: while an image is computed, the
/// next one's input, residual and output are fetched into the L2 cache
/// (without it, perf of ResNet-20 on Fashion-MNIST shows the residual reads
/// of the short pointwise products stalling them to a third of their speed).
///
/// Every output is one lane's FMAs over the taps in order from zero, as in
/// `hk_wide_correlate16`, and the affine map is a multiply, then adds, as in
/// ``epilogue(_:rowStride:channelStride:channels:height:width:bias:scale:shift:residual:relu:output:)``:
/// the results are those of the wide-grid path, bit for bit up to the sign
/// of a zero (a masked lane adds nothing where a padded one adds ±0).
///
/// Measured single-core on the project's AMD EPYC (Zen 5), /tmp C harness,
/// best of 300, operands in cache, GMAC/s (multiply-adds per ns): the
/// pointwise products (out × r times r × positions) 52, 46, 73, 71 at
/// 16×8×784, 16×6×784, 32×17×196, 64×33×49 against OpenBLAS `sgemm` (one
/// thread) 38, 36, 43, 44; the 3×3 products 90–110 against `sgemm`'s 37–52
/// on the same columns, before im2col writes them.
extension HostDevice {
    /// The taps of ``Fused16``'s unpadded stride-1 reads (`hk_infer_direct_taps`): offsets per tap, a
    /// lane mask per 16 positions and tap class, and the positions oH·W.
    struct DirectTaps {
        let offsets: [Int32]
        let masks: [UInt16]
        let length: Int
    }

    /// The unpadded taps of `s`, or nil where they do not apply: a stride
    /// above 1, padding that adds more than kernel − 1 (the output wider or
    /// taller than the input) or sizes past Int32 offsets. Made once per
    /// shape (kept in ``HostScratch/directTaps``).
    func directTaps(_ s: Conv2dShape) -> DirectTaps? {
        if let cached = scratch.directTaps[s] { return cached }
        var made: DirectTaps?
        let image = s.inChannels * s.height * s.width
        if s.stride == 1, 2 * s.padding < s.kernelHeight, 2 * s.padding < s.kernelWidth, s.outHeight > 0,
            s.outWidth > 0, image < Int(Int32.max) / 2
        {
            let length = s.outHeight * s.width
            let vectors = (length + 15) / 16
            var offsets = [Int32](repeating: 0, count: s.patchSize)
            var masks = [UInt16](repeating: 0, count: vectors * s.kernelHeight * s.kernelWidth)
            hk_infer_direct_taps(
                Int32(s.inChannels), Int32(s.height), Int32(s.width), Int32(s.kernelHeight), Int32(s.kernelWidth),
                Int32(s.padding), Int32(length), &offsets, &masks)
            made = DirectTaps(offsets: offsets, masks: masks, length: length)
        }
        scratch.directTaps[s] = made
        return made
    }

    /// A fused layer on 16-lane vectors, its operands checked and its weights
    /// packed: ``image(_:pad:first:second:prefetch:)`` runs it on one image.
    struct Fused16 {
        let layer: FusedConvolution
        let plan: WidePlan
        let direct: DirectTaps?
        let input: UnsafePointer<Float>, bias: UnsafePointer<Float>?, hasPointwise: Bool
        let scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, residual: UnsafePointer<Float>?
        let output: UnsafeMutablePointer<Float>
        let packed: [Float], packedPointwise: [Float], pointwiseOffsets: [Int32]
        /// The grid: output (y, x) at q = y·gridWidth + x, q < length; rows of the scratch rowStride apart.
        let gridWidth: Int, length: Int, rowStride: Int
        /// Whether the grid is the output's layout (`same` padding): the last product writes the output.
        var compact: Bool { gridWidth == layer.shape.outWidth }
        var imageSize: Int { layer.shape.inChannels * layer.shape.height * layer.shape.width }
        var outputImage: Int { layer.outChannels * layer.shape.outHeight * layer.shape.outWidth }
        /// Floats of the worker scratch each image needs: the padded image, the first product's rows, the
        /// pointwise product's rows.
        var scratchFloats: (Int, Int, Int) {
            let o1 = layer.shape.outChannels
            return (
                direct == nil ? plan.paddedImage : 1, hasPointwise || !compact ? o1 * rowStride : 1,
                hasPointwise && !compact ? layer.outChannels * rowStride : 1
            )
        }

        /// What ``image(_:pad:first:second:prefetch:)`` fetches ahead into the L2 cache.
        enum Prefetch {
            /// Nothing.
            case none
            /// The next image's input, residual and output: the layers run one by one over the batch,
            /// whose maps live in L3 or memory.
            case nextImage
            /// This image's output: the layers run image by image, so the input and the residual are
            /// in the core's cache, and the output's lines are fetched before the stores need them.
            case output
        }

        /// The layer on image `b`, with the worker's scratch regions.
        func image(
            _ b: Int, pad: UnsafeMutablePointer<Float>, first firstRows: UnsafeMutablePointer<Float>,
            second secondRows: UnsafeMutablePointer<Float>, prefetch: Prefetch
        ) {
            let s = layer.shape
            let (o1, o, taps) = (s.outChannels, layer.outChannels, s.patchSize)
            var image = input + b * imageSize
            if direct == nil {
                if plan.stride > 1 {
                    // As ``HostDevice/padImage(_:_:image:target:)``, the phases gathered 16 columns at a time.
                    hk_infer_phase_planes16(
                        image, Int32(s.inChannels), Int32(s.height), Int32(s.width), Int32(s.padding),
                        Int32(plan.stride), Int32(plan.phasesHigh), Int32(plan.phasesWide), Int32(plan.phaseHeight),
                        Int32(plan.phaseWidth), pad)
                    let written = plan.phasesHigh * plan.phasesWide * s.inChannels * plan.phaseHeight * plan.phaseWidth
                    (pad + written).update(repeating: 0, count: plan.paddedImage - written)
                } else {
                    HostDevice.padImage(s, plan, image: image, target: pad)
                }
                image = UnsafePointer(pad)
            }
            let out = output + b * outputImage
            let residualImage = residual.map { $0 + b * outputImage }
            let relu: Int32 = layer.relu ? 1 : 0
            packed.withUnsafeBufferPointer { weights in
                (direct?.offsets ?? plan.offsets).withUnsafeBufferPointer { offsets in
                    (direct?.masks ?? []).withUnsafeBufferPointer { masks in
                        var first = hk_infer_conv()
                        first.input = image
                        first.offsets = offsets.baseAddress
                        first.taps = Int32(taps)
                        first.classes = Int32(s.kernelHeight * s.kernelWidth)
                        first.masks = direct == nil ? nil : masks.baseAddress
                        first.weights = weights.baseAddress
                        first.outChannels = Int32(o1)
                        first.length = Int32(length)
                        switch prefetch {
                        case .none: break
                        case .nextImage:
                            let next = b + 1
                            first.prefetch = (
                                input + next * imageSize, residual.map { UnsafePointer($0 + next * outputImage) },
                                UnsafePointer(output + next * outputImage)
                            )
                            first.prefetchCount = (imageSize, outputImage, outputImage)
                        case .output:
                            first.prefetch.0 = UnsafePointer(out)
                            first.prefetchCount.0 = outputImage
                        }
                        // The last product: the first one, or the pointwise one over its rows.
                        var last = first
                        last.prefetch = (nil, nil, nil)
                        if hasPointwise {
                            first.output = firstRows
                            first.outStride = rowStride
                            first.bias = bias
                            hk_infer_correlate16(&first)
                            last = hk_infer_conv()
                            last.input = UnsafePointer(firstRows)
                            last.taps = Int32(o1)
                            last.classes = 1
                            last.outChannels = Int32(o)
                            last.length = Int32(length)
                        } else {
                            last.bias = bias
                        }
                        packedPointwise.withUnsafeBufferPointer { pointwiseWeights in
                            pointwiseOffsets.withUnsafeBufferPointer { pointwiseOffsets in
                                if hasPointwise {
                                    last.weights = pointwiseWeights.baseAddress
                                    last.offsets = pointwiseOffsets.baseAddress
                                }
                                if compact {
                                    last.output = out
                                    last.outStride = outputImage / o
                                    (last.scale, last.shift, last.residual) = (scale, shift, residualImage)
                                    last.relu = relu
                                    last.compact = 1
                                    hk_infer_correlate16(&last)
                                    return
                                }
                                let lastBias = last.bias
                                last.bias = nil
                                last.output = hasPointwise ? secondRows : firstRows
                                last.outStride = rowStride
                                hk_infer_correlate16(&last)
                                hk_infer_epilogue16(
                                    last.output, Int32(gridWidth), rowStride, Int32(o), Int32(s.outHeight),
                                    Int32(s.outWidth), lastBias, scale, shift, residualImage, relu, out)
                            }
                        }
                    }
                }
            }
        }
    }

    /// `call` checked and prepared for the 16-lane path (``usesAVX512``).
    func fused16(_ call: FusedConvolutionCall) throws -> Fused16 {
        let operation = "fusedConvolutionForward"
        let layer = call.layer
        let s = layer.shape
        try validate(s, operation)
        guard let plan = widePlan(s), (layer.pointwiseChannels ?? 1) > 0,
            (layer.pointwiseChannels == nil) == (call.pointwiseWeight == nil), layer.residual == (call.residual != nil)
        else {
            throw HostDeviceError.invalidShape(
                operation: operation, reason: "\(layer): not supported here, or its buffers do not match it")
        }
        let (o1, o, taps) = (s.outChannels, layer.outChannels, s.patchSize)
        let pin = try floats(call.input, at: s.inputCount, operation, "input")
        let pw = try floats(call.weight, at: s.weightCount, operation, "weight")
        let pb = try call.bias.map { try floats($0, at: o1, operation, "bias") }
        let pw2 = try call.pointwiseWeight.map { try floats($0, at: o * o1, operation, "pointwiseWeight") }
        let ps = try floats(call.scale, at: o, operation, "scale")
        let pt = try floats(call.shift, at: o, operation, "shift")
        let pr = try call.residual.map { try floats($0, at: layer.outputCount, operation, "residual") }
        let pout = try floats(call.output, at: layer.outputCount, operation, "output")
        let direct = directTaps(s)
        let (gridWidth, length) = direct.map { (s.width, $0.length) } ?? (plan.phaseWidth, plan.length)
        let rowStride = (length + 15) / 16 * 16
        var packed = [Float](repeating: 0, count: o1 * taps)
        hk_infer_pack_weights(pw, Int32(o1), Int32(taps), &packed)
        var packedPointwise = [Float](repeating: 0, count: pw2 == nil ? 0 : o * o1)
        if let pw2 { hk_infer_pack_weights(pw2, Int32(o), Int32(o1), &packedPointwise) }
        return Fused16(
            layer: layer, plan: plan, direct: direct, input: pin, bias: pb, hasPointwise: pw2 != nil, scale: ps,
            shift: pt, residual: pr, output: pout, packed: packed, packedPointwise: packedPointwise,
            pointwiseOffsets: pw2 == nil ? [] : (0..<o1).map { Int32($0 * rowStride) }, gridWidth: gridWidth,
            length: length, rowStride: rowStride)
    }

    /// The worker scratch regions for `layers`: each the largest any of them needs.
    private func scratch16(_ layers: [Fused16]) -> (
        UnsafeMutablePointer<UnsafeMutablePointer<Float>>, UnsafeMutablePointer<UnsafeMutablePointer<Float>>,
        UnsafeMutablePointer<UnsafeMutablePointer<Float>>
    ) {
        let sizes = layers.map(\.scratchFloats)
        return (
            scratch.slot(0, floats: sizes.map(\.0).max() ?? 1), scratch.slot(1, floats: sizes.map(\.1).max() ?? 1),
            scratch.slot(2, floats: sizes.map(\.2).max() ?? 1)
        )
    }

    /// One layer over the batch, the images cut into ``tasks`` chunks.
    func fusedForward16(_ layer: Fused16) {
        let (pads, firsts, seconds) = scratch16([layer])
        parallelChunks(layer.layer.shape.batch, chunks: tasks) { worker, images in
            for b in images {
                layer.image(
                    b, pad: pads[worker], first: firsts[worker], second: seconds[worker],
                    prefetch: b + 1 < images.upperBound ? .nextImage : .none)
            }
        }
    }

    /// `layers` image by image: each image runs through all of them before
    /// the next, the images handed out one at a time to whichever thread
    /// comes free (`hk_claim`).
    func fusedSequence16(_ layers: [Fused16], batch: Int) {
        let (pads, firsts, seconds) = scratch16(layers)
        let next = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        next.initialize(to: 0)
        defer { next.deallocate() }
        parallelChunks(batch, chunks: tasks) { worker, _ in
            while true {
                let b = hk_claim(next)
                guard b < batch else { return }
                for layer in layers {
                    layer.image(b, pad: pads[worker], first: firsts[worker], second: seconds[worker], prefetch: .output)
                }
            }
        }
    }
}

extension HostDevice {
    /// With AVX-512, the layers run image by image (``fusedSequence16(_:batch:)``):
    /// an image's maps stay in the core's cache from one layer to the next, the
    /// threads meet once per sequence instead of once per layer, and a thread
    /// that the OS deschedules holds up one image, not a chunk of the batch.
    /// Each output is computed as ``fusedConvolutionForward(_:input:weight:bias:pointwiseWeight:scale:shift:residual:output:)``
    /// computes it, so the results are the same.
    public func fusedConvolutionSequence(_ calls: [FusedConvolutionCall]) throws {
        guard usesAVX512, let batch = calls.first?.layer.shape.batch,
            calls.allSatisfy({ $0.layer.shape.batch == batch })
        else {
            for c in calls {
                try fusedConvolutionForward(
                    c.layer, input: c.input, weight: c.weight, bias: c.bias, pointwiseWeight: c.pointwiseWeight,
                    scale: c.scale, shift: c.shift, residual: c.residual, output: c.output)
            }
            return
        }
        fusedSequence16(try calls.map(fused16), batch: batch)
    }
}
