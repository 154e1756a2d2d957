import CHostKernels
import CLAPACK
import Foundation

/// The layers of residual networks on the host: the general convolution by
/// the wide-grid AVX2/AVX-512 kernels (`HostDevice+WideConvolution.swift`)
/// where the CPU has them, else (and for a 1×1 unpadded stride-1 kernel) by
/// strided, padded im2col and OpenBLAS `sgemm`; batch
/// normalisation with float64 per-channel sums in a fixed order of eight
/// lanes (`hk_channel_sum`); the residual sum and the
/// global average pool as plain loops. Work is split over images (the
/// convolutions) or channels (batch normalisation) in pieces that depend
/// only on the shape and the task count, and partial sums are added in task
/// order, so results repeat exactly from run to run.
extension HostDevice {
    // MARK: General convolution

    public func conv2dForward(_ s: Conv2dShape, input: Buffer, weight: Buffer, bias: Buffer?, output: Buffer) throws {
        let operation = "conv2dForward"
        try validate(s, operation)
        let pin = try floats(input, at: s.inputCount, operation, "input")
        let pw = try floats(weight, at: s.weightCount, operation, "weight")
        let pb = try bias.map { try floats($0, at: s.outChannels, operation, "bias") }
        let pout = try floats(output, at: s.outputCount, operation, "output")
        correlate(s, input: pin, weight: pw, bias: pb, output: pout)
    }

    /// Images per `sgemm` call for `s`: enough that a product has at least
    /// ``columnsPerProduct`` columns (a 7×7 map's 49 columns leave OpenBLAS
    /// far below its speed), at most the batch's share of one task.
    func imagesPerProduct(_ s: Conv2dShape) -> Int {
        let patches = max(1, s.outHeight * s.outWidth)
        let share = max(1, (s.batch + tasks - 1) / tasks)
        return max(1, min(share, (Self.columnsPerProduct + patches - 1) / patches))
    }

    /// Columns of one product in ``correlate(_:input:weight:bias:output:)``.
    static let columnsPerProduct = 512

    /// out (B,O,oH,oW) = correlation of `pin` (B,C,H,W) with `pw` (O,C,kH,kW)
    /// at `s`'s stride and zero padding, + bias: per group of images
    /// (``imagesPerProduct(_:)``), their columns side by side (K × n·P) and
    /// one product W (O×K) · columns into scratch (O × n·P), then each
    /// image's (O×P) block copied out. One image's group writes its output
    /// straight. The split depends only on the shape and the task count.
    func correlate(
        _ s: Conv2dShape, input pin: UnsafePointer<Float>, weight pw: UnsafePointer<Float>,
        bias pb: UnsafePointer<Float>?, output pout: UnsafeMutablePointer<Float>
    ) {
        if let plan = widePlan(s) {
            wideCorrelate(s, plan, input: pin, weight: pw, bias: pb, output: pout)
            return
        }
        let (k, o, patches) = (s.patchSize, s.outChannels, s.outHeight * s.outWidth)
        let imageSize = s.inChannels * s.height * s.width
        let direct = Self.isPointwise(s)
        let group = direct ? 1 : imagesPerProduct(s)
        let columns = scratch.slot(0, floats: direct ? 1 : k * patches * group)
        let products = scratch.slot(1, floats: group > 1 ? o * patches * group : 1)
        parallelChunks(s.batch, chunks: tasks) { worker, images in
            var first = images.lowerBound
            while first < images.upperBound {
                let n = min(group, images.upperBound - first)
                let width = n * patches
                let out = pout + first * o * patches
                let cols: UnsafePointer<Float>
                if direct {
                    // A 1×1, stride-1, unpadded kernel reads the image as its own columns.
                    cols = pin + first * imageSize
                } else {
                    for b in 0..<n {
                        Self.im2colStrided(
                            s, image: pin + (first + b) * imageSize, columns: columns[worker] + b * patches,
                            rowStride: width)
                    }
                    cols = UnsafePointer(columns[worker])
                }
                // C (O × n·P) = W (O×K)·cols (K × n·P) [+ bias]
                let c = n == 1 ? out : products[worker]
                if let pb {
                    for oc in 0..<o { (c + oc * width).update(repeating: pb[oc], count: width) }
                }
                Self.sgemm(false, false, o, width, k, pw, k, cols, width, pb == nil ? 0 : 1, c, width)
                if n > 1 {
                    for b in 0..<n {
                        for oc in 0..<o {
                            (out + (b * o + oc) * patches).update(from: c + oc * width + b * patches, count: patches)
                        }
                    }
                }
                first += n
            }
        }
    }

    public func conv2dBackwardData(_ s: Conv2dShape, gradOutput: Buffer, weight: Buffer, gradInput: Buffer) throws {
        let operation = "conv2dBackwardData"
        try validate(s, operation)
        let pgo = try floats(gradOutput, at: s.outputCount, operation, "gradOutput")
        let pw = try floats(weight, at: s.weightCount, operation, "weight")
        let pgi = try floats(gradInput, at: s.inputCount, operation, "gradInput")
        let (k, o, patches) = (s.patchSize, s.outChannels, s.outHeight * s.outWidth)
        let imageSize = s.inChannels * s.height * s.width
        let direct = Self.isPointwise(s)
        if let transposed = Self.transposedCorrelation(s), !direct {
            // The flipped weights in shared region 1: the correlation rearranges them into region 0.
            let flipped = scratch.shared(floats: s.weightCount, region: 1)
            Self.flippedTransposedWeights(s, pw, into: flipped)
            correlate(transposed, input: pgo, weight: flipped, bias: nil, output: pgi)
            return
        }
        if wideStridedDataGradient(s, gradOutput: pgo, weight: pw, gradInput: pgi) { return }
        let columns = scratch.slot(0, floats: direct ? 1 : k * patches)
        parallelChunks(s.batch, chunks: tasks) { worker, images in
            for b in images {
                let image = pgi + b * imageSize
                // cols (K×P) = Wᵀ (K×O)·gradOut_b (O×P), folded back into the image.
                let cols = direct ? image : columns[worker]
                Self.sgemm(true, false, k, patches, o, pw, k, pgo + b * o * patches, patches, 0, cols, patches)
                if !direct { Self.col2imStrided(s, columns: cols, image: image) }
            }
        }
    }

    /// For a stride-1 convolution with padding p ≤ k − 1: the correlation
    /// that is its data gradient, gradInput[c,y,x] = Σ_{o,i,j}
    /// W[o,c,k−1−i,k−1−j]·gradOut[o, y+i−(k−1−p), x+j−(k−1−p)], i.e. the
    /// output gradient (O channels, oH×oW) zero-padded by k−1−p and
    /// correlated with the weights flipped in both axes, in and out channels
    /// swapped (``flippedTransposedWeights(_:_:into:)``); its output is H×W.
    /// Nil where that does not hold (strided convolutions keep columns and
    /// their fold, col2im). Its products have K = O·kH·kW rather than O.
    static func transposedCorrelation(_ s: Conv2dShape) -> Conv2dShape? {
        guard s.stride == 1, s.kernelHeight == s.kernelWidth, s.padding <= s.kernelHeight - 1 else { return nil }
        let t = Conv2dShape(
            batch: s.batch, inChannels: s.outChannels, outChannels: s.inChannels, height: s.outHeight,
            width: s.outWidth, kernelHeight: s.kernelHeight, kernelWidth: s.kernelWidth, stride: 1,
            padding: s.kernelHeight - 1 - s.padding)
        guard t.outHeight == s.height, t.outWidth == s.width else { return nil }
        return t
    }

    /// W' (C, O, kH, kW) with W'[c,o,i,j] = W[o,c,kH−1−i,kW−1−j].
    /// Written into `flipped` (s.weightCount floats).
    static func flippedTransposedWeights(
        _ s: Conv2dShape, _ pw: UnsafePointer<Float>, into flipped: UnsafeMutablePointer<Float>
    ) {
        let (c, o, kH, kW) = (s.inChannels, s.outChannels, s.kernelHeight, s.kernelWidth)
        for oc in 0..<o {
            for ic in 0..<c {
                for i in 0..<kH {
                    for j in 0..<kW {
                        flipped[((ic * o + oc) * kH + i) * kW + j] =
                            pw[((oc * c + ic) * kH + (kH - 1 - i)) * kW + (kW - 1 - j)]
                    }
                }
            }
        }
    }

    public func conv2dBackwardWeight(
        _ s: Conv2dShape, input: Buffer, gradOutput: Buffer, gradWeight: Buffer, gradBias: Buffer?
    ) throws {
        let operation = "conv2dBackwardWeight"
        try validate(s, operation)
        let pin = try floats(input, at: s.inputCount, operation, "input")
        let pgo = try floats(gradOutput, at: s.outputCount, operation, "gradOutput")
        let pgw = try floats(gradWeight, at: s.weightCount, operation, "gradWeight")
        let pgb = try gradBias.map { try floats($0, at: s.outChannels, operation, "gradBias") }
        if let plan = widePlan(s) {
            wideWeightGradient(s, plan, input: pin, gradOutput: pgo, gradWeight: pgw, gradBias: pgb)
            return
        }
        let (k, o, patches) = (s.patchSize, s.outChannels, s.outHeight * s.outWidth)
        let imageSize = s.inChannels * s.height * s.width
        let direct = Self.isPointwise(s)
        let chunks = max(1, min(tasks, s.batch))
        let group = direct ? 1 : imagesPerProduct(s)
        let columns = scratch.slot(0, floats: direct ? 1 : k * patches * group)
        let partials = scratch.slot(1, floats: o * k)
        let biasPartials = scratch.slot(2, floats: o)
        let gathered = scratch.slot(3, floats: group > 1 ? o * patches * group : 1)
        parallelChunks(s.batch, chunks: chunks) { worker, images in
            let partial = partials[worker]
            let biasPartial = biasPartials[worker]
            partial.update(repeating: 0, count: o * k)
            biasPartial.update(repeating: 0, count: o)
            var first = images.lowerBound
            while first < images.upperBound {
                let n = direct ? 1 : min(group, images.upperBound - first)
                let width = n * patches
                let cols: UnsafePointer<Float>
                let g: UnsafePointer<Float>
                if direct {
                    cols = UnsafePointer(pin + first * imageSize)
                    g = UnsafePointer(pgo + first * o * patches)
                } else {
                    for b in 0..<n {
                        Self.im2colStrided(
                            s, image: pin + (first + b) * imageSize, columns: columns[worker] + b * patches,
                            rowStride: width)
                    }
                    cols = UnsafePointer(columns[worker])
                    if n == 1 {
                        g = UnsafePointer(pgo + first * o * patches)
                    } else {
                        // The n images' output gradients side by side: (O × n·P), as their columns are.
                        let side = gathered[worker]
                        for b in 0..<n {
                            for oc in 0..<o {
                                (side + oc * width + b * patches).update(
                                    from: pgo + ((first + b) * o + oc) * patches, count: patches)
                            }
                        }
                        g = UnsafePointer(side)
                    }
                }
                // partial (O×K) += g (O × n·P)·cols (K × n·P)ᵀ
                Self.sgemm(false, true, o, k, width, g, width, cols, width, 1, partial, k)
                for b in 0..<n {
                    let image = pgo + (first + b) * o * patches
                    for oc in 0..<o {
                        var sum: Float = 0
                        for p in 0..<patches { sum += image[oc * patches + p] }
                        biasPartial[oc] += sum
                    }
                }
                first += n
            }
        }
        // The tasks' partial sums in task order: the split depends only on
        // the batch and the task count, never on which thread ran what.
        let used = s.batch == 0 ? 0 : chunks
        pgw.update(repeating: 0, count: o * k)
        pgb?.update(repeating: 0, count: o)
        for w in 0..<used {
            for i in 0..<(o * k) { pgw[i] += partials[w][i] }
            if let pgb { for oc in 0..<o { pgb[oc] += biasPartials[w][oc] } }
        }
    }

    func validate(_ s: Conv2dShape, _ operation: String) throws {
        guard s.isValid else { throw HostDeviceError.invalidShape(operation: operation, reason: "\(s)") }
    }

    /// 1×1, stride 1, no padding: the columns are the image itself.
    static func isPointwise(_ s: Conv2dShape) -> Bool {
        s.kernelHeight == 1 && s.kernelWidth == 1 && s.stride == 1 && s.padding == 0
    }

    /// C ← α·op(A)·op(B) + β·C (α = 1), row-major, leading dimensions given.
    @inline(__always)
    static func sgemm(
        _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            for i in 0..<m { (c + i * ldc).update(repeating: beta == 0 ? 0 : c[i * ldc], count: n) }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The columns (C·kH·kW, oH·oW) of one image (C,H,W): row (c·kH + i)·kW + j,
    /// column y·oW + x ← image[c, y·s+i−p, x·s+j−p], 0 outside the image.
    /// Row r of the columns starts at `columns + r·rowStride` (default oH·oW:
    /// one image's columns alone; wider: several images side by side).
    static func im2colStrided(
        _ s: Conv2dShape, image: UnsafePointer<Float>, columns: UnsafeMutablePointer<Float>, rowStride: Int? = nil
    ) {
        let (h, w, kH, kW, st, pad) = (s.height, s.width, s.kernelHeight, s.kernelWidth, s.stride, s.padding)
        let (oH, oW) = (s.outHeight, s.outWidth)
        var target = columns
        for c in 0..<s.inChannels {
            let plane = image + c * h * w
            for i in 0..<kH {
                for j in 0..<kW {
                    let (x0, x1) = validRange(oW, offset: j - pad, stride: st, size: w)
                    for y in 0..<oH {
                        let row = target + y * oW
                        let sy = y * st + i - pad
                        guard sy >= 0 && sy < h else {
                            row.update(repeating: 0, count: oW)
                            continue
                        }
                        let source = plane + sy * w + j - pad
                        for x in 0..<x0 { row[x] = 0 }
                        if st == 1 {
                            if x1 > x0 { (row + x0).update(from: source + x0, count: x1 - x0) }
                        } else {
                            for x in x0..<x1 { row[x] = source[x * st] }
                        }
                        for x in max(x0, x1)..<oW { row[x] = 0 }
                    }
                    target += rowStride ?? oH * oW
                }
            }
        }
    }

    /// The adjoint of ``im2colStrided(_:image:columns:)``: overwrites
    /// `image` with the sum of the column entries that read each pixel.
    static func col2imStrided(_ s: Conv2dShape, columns: UnsafePointer<Float>, image: UnsafeMutablePointer<Float>) {
        let (h, w, kH, kW, st, pad) = (s.height, s.width, s.kernelHeight, s.kernelWidth, s.stride, s.padding)
        let (oH, oW) = (s.outHeight, s.outWidth)
        image.update(repeating: 0, count: s.inChannels * h * w)
        var source = columns
        for c in 0..<s.inChannels {
            let plane = image + c * h * w
            for i in 0..<kH {
                for j in 0..<kW {
                    let (x0, x1) = validRange(oW, offset: j - pad, stride: st, size: w)
                    for y in 0..<oH {
                        let sy = y * st + i - pad
                        guard sy >= 0 && sy < h else { continue }
                        let row = source + y * oW
                        let target = plane + sy * w + j - pad
                        for x in x0..<max(x0, x1) { target[x * st] += row[x] }
                    }
                    source += oH * oW
                }
            }
        }
    }

    /// The outputs x in 0..<count whose input column x·stride + offset lies
    /// in 0..<size, as a range x0..<x1 (empty when x1 ≤ x0).
    @inline(__always)
    static func validRange(_ count: Int, offset: Int, stride: Int, size: Int) -> (Int, Int) {
        // x·stride + offset ≥ 0  ⇔  x ≥ ⌈−offset/stride⌉; x·stride + offset < size ⇔ x < ⌈(size − offset)/stride⌉.
        let first = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        let end = size - offset <= 0 ? 0 : (size - offset + stride - 1) / stride
        return (min(first, count), min(end, count))
    }

    // MARK: Batch normalisation

    public func batchNormForward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, runningMean: Buffer,
        runningVar: Buffer, saved: Buffer, output: Buffer, training: Bool
    ) throws {
        try batchNormForward(
            s, input: input, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar, saved: saved,
            output: output, training: training, relu: false, operation: "batchNormForward")
    }

    public func batchNormReluForward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, runningMean: Buffer,
        runningVar: Buffer, saved: Buffer, output: Buffer, training: Bool
    ) throws {
        try batchNormForward(
            s, input: input, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar, saved: saved,
            output: output, training: training, relu: true, operation: "batchNormReluForward")
    }

    /// The statistics pass of BatchNorm and its normalisation, with the ReLU
    /// after it applied in the normalising pass when `relu` is true.
    private func batchNormForward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, runningMean: Buffer,
        runningVar: Buffer, saved: Buffer, output: Buffer, training: Bool, relu: Bool, operation: String
    ) throws {
        try validate(s, operation, training: training)
        let c = s.channels
        let px = try floats(input, at: s.count, operation, "input")
        let pg = try floats(gamma, at: c, operation, "gamma")
        let pb = try floats(beta, at: c, operation, "beta")
        let prm = try floats(runningMean, at: c, operation, "runningMean")
        let prv = try floats(runningVar, at: c, operation, "runningVar")
        let psaved = try floats(saved, at: 2 * c, operation, "saved")
        let py = try floats(output, at: s.count, operation, "output")
        let (batch, plane) = (s.batch, s.map.planeSize)
        let n = Double(s.valuesPerChannel)
        let (eps, m) = (Double(s.epsilon), Double(s.momentum))
        parallelChunks(c, chunks: s.count >= Self.parallelElementThreshold ? tasks : 1) { _, channels in
            for ch in channels {
                var mean: Double
                var invStd: Double
                if training {
                    // Two passes in float64 (hk_channel_sum's fixed lane order).
                    let x = px + ch * plane
                    mean = hk_channel_sum(x, Int32(batch), c * plane, Int32(plane), 0, 0) / n
                    let squares = hk_channel_sum(x, Int32(batch), c * plane, Int32(plane), mean, 1)
                    let variance = squares / n
                    invStd = 1 / (variance + eps).squareRoot()
                    prm[ch] = Float((1 - m) * Double(prm[ch]) + m * mean)
                    prv[ch] = Float((1 - m) * Double(prv[ch]) + m * variance * n / (n - 1))
                } else {
                    mean = Double(prm[ch])
                    invStd = 1 / (Double(prv[ch]) + eps).squareRoot()
                }
                psaved[ch] = Float(mean)
                psaved[c + ch] = Float(invStd)
                Self.normalize(
                    channel: ch, of: s, mean: mean, invStd: invStd, gamma: pg[ch], beta: pb[ch], input: px, output: py,
                    relu: relu)
            }
        }
    }

    /// y = x·scale + shift over one channel's planes, scale = γ·invStd and
    /// shift = β − mean·γ·invStd formed in float64 and rounded once; with
    /// `relu`, y = RELU(x·scale + shift) (``HostLoops/relu(_:_:count:)``'s
    /// rule), the values the two passes would write.
    static func normalize(
        channel ch: Int, of s: BatchNormShape, mean: Double, invStd: Double, gamma: Float, beta: Float,
        input px: UnsafeMutablePointer<Float>, output py: UnsafeMutablePointer<Float>, relu: Bool = false
    ) {
        let (c, plane) = (s.channels, s.map.planeSize)
        let scale = Float(Double(gamma) * invStd)
        let shift = Float(Double(beta) - mean * Double(gamma) * invStd)
        for b in 0..<s.batch {
            let x = px + (b * c + ch) * plane
            let y = py + (b * c + ch) * plane
            if relu {
                HostLoops.affineRelu(x, y, scale: scale, shift: shift, count: plane)
            } else {
                for p in 0..<plane { y[p] = x[p] * scale + shift }
            }
        }
    }

    public func batchNormBackward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, gradOutput: Buffer,
        gradInput: Buffer, gradGamma: Buffer, gradBeta: Buffer, training: Bool
    ) throws {
        try batchNormBackward(
            s, input: input, gamma: gamma, saved: saved, output: nil, gradOutput: gradOutput, gradInput: gradInput,
            gradGamma: gradGamma, gradBeta: gradBeta, training: training, operation: "batchNormBackward")
    }

    public func batchNormReluBackward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, output: Buffer, gradOutput: Buffer,
        gradInput: Buffer, gradGamma: Buffer, gradBeta: Buffer, training: Bool
    ) throws {
        try batchNormBackward(
            s, input: input, gamma: gamma, saved: saved, output: output, gradOutput: gradOutput, gradInput: gradInput,
            gradGamma: gradGamma, gradBeta: gradBeta, training: training, operation: "batchNormReluBackward")
    }

    /// BatchNorm's backward pass; with `output` (a fused ReLU's), of the
    /// gradient masked where output ≤ 0 (`hk_channel_gradient_sums_masked`).
    private func batchNormBackward(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, output: Buffer?, gradOutput: Buffer,
        gradInput: Buffer, gradGamma: Buffer, gradBeta: Buffer, training: Bool, operation: String
    ) throws {
        try validate(s, operation, training: training)
        let c = s.channels
        let px = try floats(input, at: s.count, operation, "input")
        let pg = try floats(gamma, at: c, operation, "gamma")
        let psaved = try floats(saved, at: 2 * c, operation, "saved")
        let pdy = try floats(gradOutput, at: s.count, operation, "gradOutput")
        let pdx = try floats(gradInput, at: s.count, operation, "gradInput")
        let pdg = try floats(gradGamma, at: c, operation, "gradGamma")
        let pdb = try floats(gradBeta, at: c, operation, "gradBeta")
        let py = try output.map { try floats($0, at: s.count, operation, "output") }
        let (batch, plane) = (s.batch, s.map.planeSize)
        let n = Double(s.valuesPerChannel)
        parallelChunks(c, chunks: s.count >= Self.parallelElementThreshold ? tasks : 1) { _, channels in
            for ch in channels {
                let mean = Double(psaved[ch])
                let invStd = Double(psaved[c + ch])
                var sumDy = 0.0
                var sumDyCentred = 0.0
                if let py {
                    hk_channel_gradient_sums_masked(
                        px + ch * plane, pdy + ch * plane, py + ch * plane, Int32(batch), c * plane, Int32(plane),
                        mean, &sumDy, &sumDyCentred)
                } else {
                    hk_channel_gradient_sums(
                        px + ch * plane, pdy + ch * plane, Int32(batch), c * plane, Int32(plane), mean, &sumDy,
                        &sumDyCentred)
                }
                let sumDyXhat = sumDyCentred * invStd
                pdb[ch] = Float(sumDy)
                pdg[ch] = Float(sumDyXhat)
                let scale = Double(pg[ch]) * invStd
                let meanDy = training ? sumDy / n : 0
                let meanDyXhat = training ? sumDyXhat / n : 0
                if let py {
                    hk_channel_gradient_apply_masked(
                        px + ch * plane, pdy + ch * plane, py + ch * plane, Int32(batch), c * plane, Int32(plane),
                        mean, invStd, scale, meanDy, meanDyXhat, pdx + ch * plane)
                } else {
                    hk_channel_gradient_apply(
                        px + ch * plane, pdy + ch * plane, Int32(batch), c * plane, Int32(plane), mean, invStd,
                        scale, meanDy, meanDyXhat, pdx + ch * plane)
                }
            }
        }
    }

    func validate(_ s: BatchNormShape, _ operation: String, training: Bool) throws {
        guard s.map.isValid, s.channels > 0 else {
            throw HostDeviceError.invalidShape(operation: operation, reason: "\(s)")
        }
        guard !training || s.valuesPerChannel > 1 else {
            throw HostDeviceError.invalidShape(
                operation: operation,
                reason: "\(s): training needs more than one value per channel (B·H·W = \(s.valuesPerChannel))")
        }
    }

    // MARK: Residual sum and global average pool

    public func residualAdd(count: Int, _ a: Buffer, _ b: Buffer, output: Buffer) throws {
        guard count >= 0 else {
            throw HostDeviceError.invalidShape(operation: "residualAdd", reason: "count \(count) < 0")
        }
        let pa = try floats(a, at: count, "residualAdd", "a")
        let pb = try floats(b, at: count, "residualAdd", "b")
        let pout = try floats(output, at: count, "residualAdd", "output")
        parallelChunks(count, chunks: count >= Self.parallelElementThreshold ? tasks : 1) { _, range in
            for i in range { pout[i] = pa[i] + pb[i] }
        }
    }

    public func residualAddRelu(count: Int, _ a: Buffer, _ b: Buffer, output: Buffer) throws {
        guard count >= 0 else {
            throw HostDeviceError.invalidShape(operation: "residualAddRelu", reason: "count \(count) < 0")
        }
        let pa = try floats(a, at: count, "residualAddRelu", "a")
        let pb = try floats(b, at: count, "residualAddRelu", "b")
        let pout = try floats(output, at: count, "residualAddRelu", "output")
        parallelChunks(count, chunks: count >= Self.parallelElementThreshold ? tasks : 1) { _, range in
            let start = range.lowerBound
            HostLoops.addRelu(pa + start, pb + start, pout + start, count: range.count)
        }
    }

    public func globalAveragePoolForward(_ s: FeatureMapShape, input: Buffer, output: Buffer) throws {
        let operation = "globalAveragePoolForward"
        guard s.isValid else { throw HostDeviceError.invalidShape(operation: operation, reason: "\(s)") }
        let pin = try floats(input, at: s.count, operation, "input")
        let pout = try floats(output, at: s.batch * s.channels, operation, "output")
        let plane = s.planeSize
        let inverse = 1 / Double(plane)
        for i in 0..<(s.batch * s.channels) {
            var sum = 0.0
            for p in 0..<plane { sum += Double(pin[i * plane + p]) }
            pout[i] = Float(sum * inverse)
        }
    }

    public func globalAveragePoolBackward(_ s: FeatureMapShape, gradOutput: Buffer, gradInput: Buffer) throws {
        let operation = "globalAveragePoolBackward"
        guard s.isValid else { throw HostDeviceError.invalidShape(operation: operation, reason: "\(s)") }
        let pgo = try floats(gradOutput, at: s.batch * s.channels, operation, "gradOutput")
        let pgi = try floats(gradInput, at: s.count, operation, "gradInput")
        let plane = s.planeSize
        let inverse = 1 / Float(plane)
        for i in 0..<(s.batch * s.channels) { (pgi + i * plane).update(repeating: pgo[i] * inverse, count: plane) }
    }
}
