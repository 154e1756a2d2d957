import CHostKernels

/// Eval-mode convolution layers in one pass over memory on the host
/// (``FusedConvolution``): per image, the zero-padded input (its stride
/// phases at stride > 1) is correlated on the wide grid of
/// `HostDevice+WideConvolution.swift` into per-worker scratch; a pointwise
/// convolution after it is a second wide-grid correlation over that scratch
/// (its O₁ channels are the taps, at offsets c·rounded), which stays in the
/// core's cache; the affine map, the residual sum and the ReLU are applied
/// while the valid positions are copied out. The image is read once and
/// the output written once: the intermediate activations of the unfused
/// layer (the first convolution's O₁ channels, the BatchNorm's input, the
/// sum before the ReLU) never reach memory.
///
/// That is the AVX2 path; with AVX-512 the layer runs on 16-lane vectors
/// without the padded copy where the padding allows and without channels
/// past the count (`HostDevice+DirectInference.swift`), with the same
/// results. Where the wide kernels do not apply (no AVX2/FMA, or a
/// pointwise first convolution) ``supportsFusedConvolution(_:)`` is false
/// and the plan runs the operations one by one.
extension HostDevice: InferenceDevice {
    public func supportsFusedConvolution(_ layer: FusedConvolution) -> Bool {
        widePlan(layer.shape) != nil && (layer.pointwiseChannels ?? 1) > 0
    }

    public func inferenceAffine(
        channels: Int, bias: Buffer?, batchNorm: InferenceBatchNorm?, scale: Buffer, shift: Buffer
    ) throws {
        let operation = "inferenceAffine"
        guard channels > 0 else {
            throw HostDeviceError.invalidShape(operation: operation, reason: "\(channels) channels")
        }
        let pb = try bias.map { try floats($0, at: channels, operation, "bias") }
        let ps = try floats(scale, at: channels, operation, "scale")
        let pt = try floats(shift, at: channels, operation, "shift")
        guard let bn = batchNorm else {
            for o in 0..<channels { (ps[o], pt[o]) = (1, pb?[o] ?? 0) }
            return
        }
        let pg = try floats(bn.gamma, at: channels, operation, "gamma")
        let pbeta = try floats(bn.beta, at: channels, operation, "beta")
        let pm = try floats(bn.runningMean, at: channels, operation, "runningMean")
        let pv = try floats(bn.runningVar, at: channels, operation, "runningVar")
        for o in 0..<channels {
            // As the unfused eval BatchNorm: σ = 1/√(v + ε) in float64, g = γ·σ, rounded once.
            let g = Double(pg[o]) / (Double(pv[o]) + Double(bn.epsilon)).squareRoot()
            ps[o] = Float(g)
            pt[o] = Float(Double(pbeta[o]) - Double(pm[o]) * g + g * Double(pb?[o] ?? 0))
        }
    }

    public func fusedConvolutionForward(
        _ layer: FusedConvolution, input: Buffer, weight: Buffer, bias: Buffer?, pointwiseWeight: Buffer?,
        scale: Buffer, shift: Buffer, residual: Buffer?, output: Buffer
    ) throws {
        if usesAVX512 {
            return fusedForward16(
                try fused16(
                    FusedConvolutionCall(
                        layer: layer, input: input, weight: weight, bias: bias, pointwiseWeight: pointwiseWeight,
                        scale: scale, shift: shift, residual: residual, output: output)))
        }
        let operation = "fusedConvolutionForward"
        let s = layer.shape
        try validate(s, operation)
        guard let plan = widePlan(s), (layer.pointwiseChannels ?? 1) > 0,
            (layer.pointwiseChannels == nil) == (pointwiseWeight == nil), layer.residual == (residual != nil)
        else {
            throw HostDeviceError.invalidShape(
                operation: operation, reason: "\(layer): not supported here, or its buffers do not match it")
        }
        let (o1, o) = (s.outChannels, layer.outChannels)
        let pin = try floats(input, at: s.inputCount, operation, "input")
        let pw = try floats(weight, at: s.weightCount, operation, "weight")
        let pb = try bias.map { try floats($0, at: o1, operation, "bias") }
        let pw2 = try pointwiseWeight.map { try floats($0, at: o * o1, operation, "pointwiseWeight") }
        let ps = try floats(scale, at: o, operation, "scale")
        let pt = try floats(shift, at: o, operation, "shift")
        let pr = try residual.map { try floats($0, at: layer.outputCount, operation, "residual") }
        let pout = try floats(output, at: layer.outputCount, operation, "output")

        let (oH, oW, wp, rounded) = (s.outHeight, s.outWidth, plan.phaseWidth, plan.rounded)
        let imageSize = s.inChannels * s.height * s.width
        let outputPlane = oH * oW
        // Output channels in blocks of 6 (AVX2) or 8 (AVX-512), zero weights past the count.
        func padded(_ n: Int) -> Int { plan.lanes == 16 ? (n + 7) / 8 * 8 : (n + 5) / 6 * 6 }
        let weightsT = Self.tapMajorWeights(pw, outChannels: o1, taps: s.patchSize, outPad: padded(o1))
        let pointwiseT = pw2.map { Self.tapMajorWeights($0, outChannels: o, taps: o1, outPad: padded(o)) } ?? []
        let pointwiseOffsets = (0..<o1).map { Int32($0 * rounded) }
        let paddedImages = scratch.slot(0, floats: plan.paddedImage)
        let firstWide = scratch.slot(1, floats: o1 * rounded)
        let secondWide = scratch.slot(2, floats: pw2 == nil ? 1 : o * rounded)
        let correlate = plan.lanes == 16 ? hk_wide_correlate16 : hk_wide_correlate
        weightsT.withUnsafeBufferPointer { wt in
            pointwiseT.withUnsafeBufferPointer { pwt in
                plan.offsets.withUnsafeBufferPointer { offsets in
                    pointwiseOffsets.withUnsafeBufferPointer { pointwiseOffsets in
                        parallelChunks(s.batch, chunks: tasks) { worker, images in
                            let (pad, wide1, wide2) = (paddedImages[worker], firstWide[worker], secondWide[worker])
                            for b in images {
                                Self.padImage(s, plan, image: pin + b * imageSize, target: pad)
                                correlate(
                                    pad, offsets.baseAddress, Int32(s.patchSize), wt.baseAddress, Int32(o1),
                                    Int32(padded(o1)), Int32(plan.length), wide1, Int32(rounded))
                                var result = UnsafePointer(wide1)
                                if pw2 != nil {
                                    if let pb {
                                        for c in 0..<o1 {
                                            let row = wide1 + c * rounded
                                            for q in 0..<rounded { row[q] += pb[c] }
                                        }
                                    }
                                    // The rows past each output row and past `length` hold finite values of the
                                    // padded grid: the second correlation computes them too, and they are dropped.
                                    correlate(
                                        wide1, pointwiseOffsets.baseAddress, Int32(o1), pwt.baseAddress, Int32(o),
                                        Int32(padded(o)), Int32(plan.length), wide2, Int32(rounded))
                                    result = UnsafePointer(wide2)
                                }
                                let firstBias = pw2 == nil ? pb : nil
                                Self.epilogue(
                                    result, rowStride: wp, channelStride: rounded, channels: o, height: oH, width: oW,
                                    bias: firstBias.map { UnsafePointer($0) }, scale: ps, shift: pt,
                                    residual: pr.map { UnsafePointer($0 + b * o * outputPlane) }, relu: layer.relu,
                                    output: pout + b * o * outputPlane)
                            }
                        }
                    }
                }
            }
        }
    }

    /// output[o,y,x] = r((source[o·channelStride + y·rowStride + x] + bias[o])·scale[o]
    /// + shift[o] + residual[o,y,x]) for one image, r the ReLU or the identity.
    @inline(__always)
    static func epilogue(
        _ source: UnsafePointer<Float>, rowStride: Int, channelStride: Int, channels: Int, height: Int, width: Int,
        bias: UnsafePointer<Float>?, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        residual: UnsafePointer<Float>?, relu: Bool, output: UnsafeMutablePointer<Float>
    ) {
        for oc in 0..<channels {
            let (sc, sh, bo) = (scale[oc], shift[oc], bias?[oc] ?? 0)
            for y in 0..<height {
                let from = source + oc * channelStride + y * rowStride
                let to = output + (oc * height + y) * width
                switch (residual, relu) {
                case (nil, false):
                    for x in 0..<width { to[x] = (from[x] + bo) * sc + sh }
                case (nil, true):
                    for x in 0..<width { to[x] = max(0, (from[x] + bo) * sc + sh) }
                case (let r?, false):
                    let add = r + (oc * height + y) * width
                    for x in 0..<width { to[x] = (from[x] + bo) * sc + sh + add[x] }
                case (let r?, true):
                    let add = r + (oc * height + y) * width
                    for x in 0..<width { to[x] = max(0, (from[x] + bo) * sc + sh + add[x]) }
                }
            }
        }
    }
}
