import CHostKernels

/// Convolutions of ``Conv2dShape`` (any kernel size, stride and zero
/// padding, except the 1×1 unpadded stride-1 kernel, whose columns are the
/// image itself) by the AVX2/FMA wide-grid kernels of `CHostKernels`
/// (`hk_wide_correlate`, `hk_wide_weight_gradient`, and their AVX-512
/// versions): each image is copied once into a zero-padded (C, H + 2p,
/// W + 2p) block, and output position (y, x) is read as q = y·(W + 2p) + x,
/// so tap (c, i, j) is one contiguous run of the padded image at offset
/// c·(H + 2p)(W + 2p) + i·(W + 2p) + j. At stride s the block is split into
/// its s × s stride-phases first (``WidePlan``). No columns are written
/// (im2col writes C·kH·kW floats per output pixel and `sgemm` packs them
/// again); the positions past each output row are computed and dropped, a
/// 7% (28×28), 14% (14×14) or 29% (7×7) overhead on a 3×3 kernel with
/// padding 1.
///
/// Measured single-core against im2col + OpenBLAS `sgemm` per image (/tmp C
/// harness on an AMD EPYC (Zen 5), best of 7, 16 images, 3×3, padding 1,
/// useful GFLOP/s, padding and copies included): 16→16 at 28×28 forward 93
/// vs 35, weight gradient 97 vs 32; 32→32 at 14×14 90 vs 51 and 98 vs 49;
/// 64→64 at 7×7 87 vs 66 and 82 vs 70. With 16-lane AVX-512 (used where the
/// CPU has it, ``HostDevice/usesAVX512``): forward 193, 191, 172; weight
/// gradient 139, 146, 134.
extension HostDevice {
    /// The geometry of a convolution on the wide grid. At stride s the
    /// padded image is read through its stride-phases (`hk_phase_planes`):
    /// phase (a, b) holds the pixels (s·u + a, s·v + b), so tap (c, i, j) of
    /// output (y, x) is pixel (y + i/s, x + j/s) of phase (i mod s, j mod s),
    /// and every tap is again one contiguous run over rows of width
    /// ⌈(W + 2p)/s⌉. At stride 1 the one phase is the padded image.
    struct WidePlan {
        let stride: Int
        /// Phases used (min(s, kH) × min(s, kW)) and the size of each.
        let phasesHigh: Int, phasesWide: Int
        let phaseHeight: Int, phaseWidth: Int
        /// Output positions per channel on the wide grid: oH·phaseWidth.
        let length: Int
        /// Vector lanes of the kernels: 16 (AVX-512) or 8 (AVX2).
        let lanes: Int
        /// `length` rounded up to whole vectors.
        let rounded: Int
        /// Floats of one image's phases and the slack the kernels read past them.
        let paddedImage: Int
        let offsets: [Int32]
    }

    /// The wide-grid plan for `s`, or nil where it does not apply: no
    /// AVX2/FMA, a 1×1 unpadded stride-1 kernel (its columns are the image
    /// itself), or sizes past Int32 offsets.
    /// Made once per shape (kept in ``HostScratch/widePlans``): a training
    /// step's convolutions allocate no plan.
    func widePlan(_ s: Conv2dShape) -> WidePlan? {
        if let cached = scratch.widePlans[s] { return cached }
        let plan = makeWidePlan(s)
        scratch.widePlans[s] = plan
        return plan
    }

    private func makeWidePlan(_ s: Conv2dShape) -> WidePlan? {
        guard usesDirectKernels, !Self.isPointwise(s), s.isValid, s.outHeight > 0, s.outWidth > 0 else { return nil }
        let st = s.stride
        let (phasesHigh, phasesWide) = (min(st, s.kernelHeight), min(st, s.kernelWidth))
        let phaseHeight = (s.height + 2 * s.padding + st - 1) / st
        let phaseWidth = (s.width + 2 * s.padding + st - 1) / st
        let length = s.outHeight * phaseWidth
        let lanes = usesAVX512 ? 16 : 8
        let rounded = (length + lanes - 1) / lanes * lanes
        let phasePlane = phaseHeight * phaseWidth
        let image = phasesHigh * phasesWide * s.inChannels * phasePlane
        // Tap (c, i, j) reads from its offset to offset + rounded − 1; as oH − 1 + (kH−1)/s ≤
        // phaseHeight − 1, every read lies below image + (kW − 1)/s + (rounded − length).
        let paddedImage = image + s.kernelWidth + lanes
        guard paddedImage < Int(Int32.max), s.outChannels * rounded < Int(Int32.max) else { return nil }
        var offsets = [Int32]()
        offsets.reserveCapacity(s.patchSize)
        for c in 0..<s.inChannels {
            for i in 0..<s.kernelHeight {
                for j in 0..<s.kernelWidth {
                    let phase = (i % st) * phasesWide + j % st
                    offsets.append(
                        Int32((phase * s.inChannels + c) * phasePlane + (i / st) * phaseWidth + j / st))
                }
            }
        }
        return WidePlan(
            stride: st, phasesHigh: phasesHigh, phasesWide: phasesWide, phaseHeight: phaseHeight,
            phaseWidth: phaseWidth, length: length, lanes: lanes, rounded: rounded, paddedImage: paddedImage,
            offsets: offsets)
    }

    /// Writes image (C, H, W)'s zero-padded phases into `target`, then zeroes
    /// the slack the kernels read past them.
    static func padImage(
        _ s: Conv2dShape, _ plan: WidePlan, image: UnsafePointer<Float>, target: UnsafeMutablePointer<Float>
    ) {
        if plan.stride == 1 {
            hk_pad_planes(image, Int32(s.inChannels), Int32(s.height), Int32(s.width), Int32(s.padding), target)
        } else {
            hk_phase_planes(
                image, Int32(s.inChannels), Int32(s.height), Int32(s.width), Int32(s.padding), Int32(plan.stride),
                Int32(plan.phasesHigh), Int32(plan.phasesWide), Int32(plan.phaseHeight), Int32(plan.phaseWidth),
                target)
        }
        let written = plan.phasesHigh * plan.phasesWide * s.inChannels * plan.phaseHeight * plan.phaseWidth
        (target + written).update(repeating: 0, count: plan.paddedImage - written)
    }

    /// out (B,O,oH,oW) = correlation of `pin` with `pw` (+ bias) on the wide
    /// grid, image by image: out[o,y,x] = Σ_k W[o,k]·padded[offsets[k] + y·Wp + x]
    /// (taps in order), then + bias[o].
    func wideCorrelate(
        _ s: Conv2dShape, _ plan: WidePlan, input pin: UnsafePointer<Float>, weight pw: UnsafePointer<Float>,
        bias pb: UnsafePointer<Float>?, output pout: UnsafeMutablePointer<Float>
    ) {
        let (taps, o) = (s.patchSize, s.outChannels)
        let (oH, oW, wp) = (s.outHeight, s.outWidth, plan.phaseWidth)
        let imageSize = s.inChannels * s.height * s.width
        // Output channels in blocks of 6 (AVX2) or 8 (AVX-512), zero weights past O.
        let outPad = plan.lanes == 16 ? (o + 7) / 8 * 8 : (o + 5) / 6 * 6
        let weightsT = scratch.shared(floats: taps * outPad)
        Self.tapMajorWeights(pw, outChannels: o, taps: taps, outPad: outPad, into: weightsT)
        let wt = UnsafeBufferPointer(start: weightsT, count: taps * outPad)
        let padded = scratch.slot(0, floats: plan.paddedImage)
        let wide = scratch.slot(1, floats: o * plan.rounded)
        plan.offsets.withUnsafeBufferPointer { offsets in
            parallelChunks(s.batch, chunks: tasks) { worker, images in
                let (pad, w) = (padded[worker], wide[worker])
                for b in images {
                    Self.padImage(s, plan, image: pin + b * imageSize, target: pad)
                    let correlate = plan.lanes == 16 ? hk_wide_correlate16 : hk_wide_correlate
                    correlate(
                        pad, offsets.baseAddress, Int32(taps), wt.baseAddress, Int32(o), Int32(outPad),
                        Int32(plan.length), w, Int32(plan.rounded))
                    let out = pout + b * o * oH * oW
                    for oc in 0..<o {
                        let bias = pb?[oc] ?? 0
                        for y in 0..<oH {
                            let source = w + oc * plan.rounded + y * wp
                            let target = out + (oc * oH + y) * oW
                            if pb == nil {
                                HostLoops.copyRun(from: source, to: target, count: oW)
                            } else {
                                for x in 0..<oW { target[x] = source[x] + bias }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Images per `hk_wide_weight_gradient` call: their padded inputs about
    /// 256 KiB, at most 8 (measured best at 8 for 64→64 at 7×7, flat from 2
    /// to 16 on the larger maps).
    static func wideGradientImages(_ plan: WidePlan) -> Int { max(1, min(8, 65_536 / plan.paddedImage)) }

    /// gradWeight (O × C·kH·kW) = Σ_b gradOut_b ⋆ padded input_b on the wide
    /// grid, and gradBias[o] = Σ_b Σ_pixels gradOut[b,o]: per task over its
    /// images (groups of ``wideGradientImages(_:)``): each group's float32
    /// sums (the kernel's lanes) added into a float64 partial, the tasks'
    /// partials added in task order and rounded once, so that the sum of
    /// 100,000-odd products per weight drifts no further in float32 than one
    /// group's part of it.
    func wideWeightGradient(
        _ s: Conv2dShape, _ plan: WidePlan, input pin: UnsafePointer<Float>, gradOutput pgo: UnsafePointer<Float>,
        gradWeight pgw: UnsafeMutablePointer<Float>, gradBias pgb: UnsafeMutablePointer<Float>?
    ) {
        let (taps, o) = (s.patchSize, s.outChannels)
        let (oH, oW, wp, rounded) = (s.outHeight, s.outWidth, plan.phaseWidth, plan.rounded)
        let (imageSize, patches) = (s.inChannels * s.height * s.width, oH * oW)
        let chunks = max(1, min(tasks, s.batch))
        let group = Self.wideGradientImages(plan)
        let padded = scratch.slot(0, floats: group * plan.paddedImage)
        // Per task: float64 partial sums (in slot 1, two floats each); the bias partials and one
        // group's float32 sums side by side in slot 2.
        let partials = scratch.slot(1, floats: 2 * o * taps)
        let biasPartials = scratch.slot(2, floats: o + o * taps)
        let wide = scratch.slot(3, floats: group * o * rounded)
        plan.offsets.withUnsafeBufferPointer { offsets in
            parallelChunks(s.batch, chunks: chunks) { worker, images in
                let (biasPartial, groupSums) = (biasPartials[worker], biasPartials[worker] + o)
                biasPartial.update(repeating: 0, count: o)
                UnsafeMutableRawPointer(partials[worker]).withMemoryRebound(to: Double.self, capacity: o * taps) {
                    partial in
                    partial.update(repeating: 0, count: o * taps)
                    var first = images.lowerBound
                    while first < images.upperBound {
                        let n = min(group, images.upperBound - first)
                        for b in 0..<n {
                            Self.padImage(
                                s, plan, image: pin + (first + b) * imageSize,
                                target: padded[worker] + b * plan.paddedImage
                            )
                            // The output gradient on the wide grid: zero past each row and past `length`.
                            let g = pgo + (first + b) * o * patches
                            let target = wide[worker] + b * o * rounded
                            for oc in 0..<o {
                                let row = target + oc * rounded
                                for y in 0..<oH {
                                    HostLoops.copyRun(from: g + (oc * oH + y) * oW, to: row + y * wp, count: oW)
                                    (row + y * wp + oW).update(repeating: 0, count: wp - oW)
                                }
                                (row + plan.length).update(repeating: 0, count: rounded - plan.length)
                            }
                            // The bias sums only where there is a bias: a serial sum costs as much as a layer's
                            // whole padding and copying.
                            for oc in 0..<o where pgb != nil {
                                var sum: Float = 0
                                for p in 0..<patches { sum += g[oc * patches + p] }
                                biasPartial[oc] += sum
                            }
                        }
                        let gradient = plan.lanes == 16 ? hk_wide_weight_gradient16 : hk_wide_weight_gradient
                        groupSums.update(repeating: 0, count: o * taps)
                        gradient(
                            padded[worker], plan.paddedImage, offsets.baseAddress, Int32(taps), wide[worker],
                            Int32(rounded), o * rounded, Int32(o), Int32(plan.length), Int32(n), groupSums)
                        for i in 0..<(o * taps) { partial[i] += Double(groupSums[i]) }
                        first += n
                    }
                }
            }
        }
        let used = s.batch == 0 ? 0 : chunks
        // The tasks' float64 partials added in task order into the first, then rounded once.
        UnsafeMutableRawPointer(partials[0]).withMemoryRebound(to: Double.self, capacity: o * taps) { total in
            for w in 1..<max(1, used) {
                UnsafeMutableRawPointer(partials[w]).withMemoryRebound(to: Double.self, capacity: o * taps) { partial in
                    for i in 0..<(o * taps) { total[i] += partial[i] }
                }
            }
            for i in 0..<(o * taps) { pgw[i] = used == 0 ? 0 : Float(total[i]) }
        }
        pgb?.update(repeating: 0, count: o)
        for w in 0..<used {
            if let pgb { for oc in 0..<o { pgb[oc] += biasPartials[w][oc] } }
        }
    }
}

extension HostDevice {
    /// The data gradient of a strided convolution (s > 1) on the wide grid,
    /// one stride-phase of the padded input at a time. Pixel (s·u + a,
    /// s·v + b) of the padded gradient collects the taps i = s·i′ + a,
    /// j = s·j′ + b: gradPhase_ab[c,u,v] = Σ_o Σ_{i′,j′} W[o,c,s·i′+a,s·j′+b]·
    /// G[o,u−i′,v−j′], a correlation of the output gradient G, zero-padded by
    /// m = ⌈k/s⌉ − 1 before its first row and column, with phase (a, b)'s taps
    /// flipped. Each phase's result is scattered to the pixels of the
    /// unpadded input it covers; a phase without taps (k < s) leaves zeros.
    /// Returns false (and does nothing) where the wide kernels do not apply.
    func wideStridedDataGradient(
        _ s: Conv2dShape, gradOutput pgo: UnsafePointer<Float>, weight pw: UnsafePointer<Float>,
        gradInput pgi: UnsafeMutablePointer<Float>
    ) -> Bool {
        guard usesDirectKernels, s.stride > 1, s.isValid, s.outHeight > 0, s.outWidth > 0 else { return false }
        let (st, c, o, kH, kW) = (s.stride, s.inChannels, s.outChannels, s.kernelHeight, s.kernelWidth)
        let (mH, mW) = ((kH + st - 1) / st - 1, (kW + st - 1) / st - 1)
        let phaseHeight = (s.height + 2 * s.padding + st - 1) / st
        let phaseWidth = (s.width + 2 * s.padding + st - 1) / st
        let rowWidth = phaseWidth + mW
        let gradPlane = (phaseHeight + mH) * rowWidth
        let lanes = usesAVX512 ? 16 : 8
        let length = phaseHeight * rowWidth
        let rounded = (length + lanes - 1) / lanes * lanes
        // Reads end below O·gradPlane + mW + (rounded − length), as in ``widePlan(_:)``.
        let gradImage = o * gradPlane + mW + lanes
        guard gradImage < Int(Int32.max), c * rounded < Int(Int32.max) else { return false }
        let cPad = lanes == 16 ? (c + 7) / 8 * 8 : (c + 5) / 6 * 6
        // Each phase's taps (o, i″, j″), i″ = m − i′, in order, and their
        // weights (taps × cPad), in the device's shared scratch (no
        // allocation per call): taps [first, first + count) of `offsets`
        // and rows of `weightsT` are phase (a, b)'s, whose (a, b, first,
        // count) follow the taps in `offsets` for each phase with taps.
        func taps(_ a: Int, _ b: Int, _ visit: (_ oc: Int, _ ii: Int, _ jj: Int, _ i: Int, _ j: Int) -> Void) {
            for oc in 0..<o {
                for ii in 0...mH {
                    for jj in 0...mW {
                        let (i, j) = (st * (mH - ii) + a, st * (mW - jj) + b)
                        guard i < kH, j < kW else { continue }
                        visit(oc, ii, jj, i, j)
                    }
                }
            }
        }
        var total = 0
        for a in 0..<st { for b in 0..<st { taps(a, b) { _, _, _, _, _ in total += 1 } } }
        let offsets = scratch.shared(int32s: total + 4 * st * st)
        let weightsT = scratch.shared(floats: total * cPad)
        weightsT.update(repeating: 0, count: total * cPad)
        var tap = 0
        var phaseCount = 0
        for a in 0..<st {
            for b in 0..<st {
                let first = tap
                taps(a, b) { oc, ii, jj, i, j in
                    offsets[tap] = Int32(oc * gradPlane + ii * rowWidth + jj)
                    for ic in 0..<c { weightsT[tap * cPad + ic] = pw[((oc * c + ic) * kH + i) * kW + j] }
                    tap += 1
                }
                guard tap > first else { continue }
                let header = offsets + total + 4 * phaseCount
                (header[0], header[1], header[2], header[3]) = (Int32(a), Int32(b), Int32(first), Int32(tap - first))
                phaseCount += 1
            }
        }
        let (oH, oW, h, w, p) = (s.outHeight, s.outWidth, s.height, s.width, s.padding)
        let grads = scratch.slot(0, floats: gradImage)
        let wides = scratch.slot(1, floats: c * rounded)
        let correlate = lanes == 16 ? hk_wide_correlate16 : hk_wide_correlate
        parallelChunks(s.batch, chunks: tasks) { worker, images in
            let (g, wide) = (grads[worker], wides[worker])
            for bi in images {
                g.update(repeating: 0, count: gradImage)
                let source = pgo + bi * o * oH * oW
                for oc in 0..<o {
                    for y in 0..<oH {
                        HostLoops.copyRun(
                            from: source + (oc * oH + y) * oW, to: g + oc * gradPlane + (y + mH) * rowWidth + mW,
                            count: oW)
                    }
                }
                let image = pgi + bi * c * h * w
                image.update(repeating: 0, count: c * h * w)
                for phase in 0..<phaseCount {
                    let header = offsets + total + 4 * phase
                    let (a, b, first, count) = (Int(header[0]), Int(header[1]), Int(header[2]), header[3])
                    correlate(
                        g, offsets + first, count, weightsT + first * cPad, Int32(c), Int32(cPad),
                        Int32(length), wide, Int32(rounded))
                    // Pixel (Y, X) = (s·u + a − p, s·v + b − p) of the unpadded input.
                    let (u0, v0) = ((p - a + st - 1) / st, (p - b + st - 1) / st)
                    for ic in 0..<c {
                        let plane = image + ic * h * w
                        var u = max(0, u0)
                        while u < phaseHeight, st * u + a - p < h {
                            let row = plane + (st * u + a - p) * w
                            let from = wide + ic * rounded + u * rowWidth
                            var v = max(0, v0)
                            while v < phaseWidth, st * v + b - p < w {
                                row[st * v + b - p] = from[v]
                                v += 1
                            }
                            u += 1
                        }
                    }
                }
            }
        }
        return true
    }
}
