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
/// `HostDevice+WideConvolution.swift`. Output channels go in blocks of 8 and
/// one block of the rest: a rank r = 17 computes 17 channels, not 24. A
/// pointwise convolution after the first one reads its r rows from the
/// worker's scratch (r·⌈oH·W/16⌉·16 floats, in the core's cache). With
/// `same` padding the affine map, the residual sum and the ReLU are applied
/// to the last product's registers before its one store to the output;
/// otherwise by a pass over the scratch (`hk_infer_epilogue16`). While an
/// image is computed, the next one's input, residual and output are fetched
/// into the L2 cache: the maps of a batch of 128 live in L3 or memory, and
/// without it the residual reads of the short pointwise products stalled
/// them to a third of their speed (perf, ResNet-20 on Fashion-MNIST).
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
/// thread) 38, 36, 43, 44; the 3×3 products 105–110 against `sgemm`'s 37–52
/// on the same columns, before im2col writes them.
extension HostDevice {
    /// The taps of ``fusedForward16(_:_:input:weight:bias:pointwise:scale:shift:residual:output:)``'s
    /// unpadded stride-1 reads (`hk_infer_direct_taps`): offsets per tap, a
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

    /// The fused layer `layer` on 16-lane vectors (see the extension's
    /// comment); the buffers are checked by the caller.
    func fusedForward16(
        _ layer: FusedConvolution, _ plan: WidePlan, input pin: UnsafePointer<Float>, weight pw: UnsafePointer<Float>,
        bias pb: UnsafePointer<Float>?, pointwise pw2: UnsafePointer<Float>?, scale ps: UnsafePointer<Float>,
        shift pt: UnsafePointer<Float>, residual pr: UnsafePointer<Float>?, output pout: UnsafeMutablePointer<Float>
    ) {
        let s = layer.shape
        let (o1, o, taps) = (s.outChannels, layer.outChannels, s.patchSize)
        let (oH, oW) = (s.outHeight, s.outWidth)
        let (imageSize, outputPlane) = (s.inChannels * s.height * s.width, oH * oW)
        let direct = directTaps(s)
        // The grid: output (y, x) at q = y·gridWidth + x, q < length.
        let (gridWidth, length) = direct.map { (s.width, $0.length) } ?? (plan.phaseWidth, plan.length)
        let rowStride = (length + 15) / 16 * 16
        // With `same` padding the grid is the output's layout: the last product writes it.
        let compact = gridWidth == oW
        var packed = [Float](repeating: 0, count: o1 * taps)
        hk_infer_pack_weights(pw, Int32(o1), Int32(taps), &packed)
        var packedPointwise = [Float](repeating: 0, count: pw2 == nil ? 0 : o * o1)
        if let pw2 { hk_infer_pack_weights(pw2, Int32(o), Int32(o1), &packedPointwise) }
        let pointwiseOffsets = (0..<o1).map { Int32($0 * rowStride) }
        let paddedImages = direct == nil ? scratch.slot(0, floats: plan.paddedImage) : nil
        let firstRows = scratch.slot(1, floats: pw2 == nil && compact ? 1 : o1 * rowStride)
        let secondRows = scratch.slot(2, floats: pw2 != nil && !compact ? o * rowStride : 1)
        let relu: Int32 = layer.relu ? 1 : 0
        packed.withUnsafeBufferPointer { weights in
            packedPointwise.withUnsafeBufferPointer { pointwiseWeights in
                (direct?.offsets ?? plan.offsets).withUnsafeBufferPointer { offsets in
                    (direct?.masks ?? []).withUnsafeBufferPointer { masks in
                        pointwiseOffsets.withUnsafeBufferPointer { pointwiseOffsets in
                            parallelChunks(s.batch, chunks: tasks) { worker, images in
                                for b in images {
                                    var image = pin + b * imageSize
                                    if let paddedImages {
                                        Self.padImage(s, plan, image: image, target: paddedImages[worker])
                                        image = UnsafePointer(paddedImages[worker])
                                    }
                                    let out = pout + b * o * outputPlane
                                    let residual = pr.map { $0 + b * o * outputPlane }
                                    var first = hk_infer_conv()
                                    first.input = image
                                    first.offsets = offsets.baseAddress
                                    first.taps = Int32(taps)
                                    first.classes = Int32(s.kernelHeight * s.kernelWidth)
                                    first.masks = direct == nil ? nil : masks.baseAddress
                                    first.weights = weights.baseAddress
                                    first.outChannels = Int32(o1)
                                    first.length = Int32(length)
                                    if b + 1 < images.upperBound {
                                        let next = b + 1
                                        first.prefetch = (
                                            pin + next * imageSize,
                                            pr.map { UnsafePointer($0 + next * o * outputPlane) },
                                            UnsafePointer(pout + next * o * outputPlane)
                                        )
                                        first.prefetchCount = (imageSize, o * outputPlane, o * outputPlane)
                                    }
                                    // The last product: the first one, or the pointwise one over its rows.
                                    var last = first
                                    if pw2 != nil {
                                        first.output = firstRows[worker]
                                        first.outStride = rowStride
                                        first.bias = pb
                                        hk_infer_correlate16(&first)
                                        last = hk_infer_conv()
                                        last.input = UnsafePointer(firstRows[worker])
                                        last.offsets = pointwiseOffsets.baseAddress
                                        last.taps = Int32(o1)
                                        last.classes = 1
                                        last.weights = pointwiseWeights.baseAddress
                                        last.outChannels = Int32(o)
                                        last.length = Int32(length)
                                    } else {
                                        last.bias = pb
                                    }
                                    if compact {
                                        last.output = out
                                        last.outStride = outputPlane
                                        (last.scale, last.shift, last.residual) = (ps, pt, residual)
                                        last.relu = relu
                                        last.compact = 1
                                        hk_infer_correlate16(&last)
                                        continue
                                    }
                                    let bias = last.bias
                                    last.bias = nil
                                    last.output = pw2 == nil ? firstRows[worker] : secondRows[worker]
                                    last.outStride = rowStride
                                    hk_infer_correlate16(&last)
                                    hk_infer_epilogue16(
                                        last.output, Int32(gridWidth), rowStride, Int32(o), Int32(oH), Int32(oW), bias,
                                        ps, pt, residual, relu, out)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
