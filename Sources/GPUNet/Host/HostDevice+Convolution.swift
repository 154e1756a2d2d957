/// Convolutions on the host: im2col + `sgemm` per image, images split across
/// the cores. Per image, the output slice (O, oH·oW) of NCHW is exactly the
/// product weight (O, C·kH·kW) · columns (C·kH·kW, oH·oW), so no reordering
/// is needed, and one image's columns (≤ 72×676 floats) stay in L2.
extension HostDevice {
    public func im2col(_ s: ConvShape, input: Buffer, columns: Buffer) throws {
        try validate(s, "im2col")
        let pin = try floats(input, at: s.inputCount, "im2col", "input")
        let pcol = try floats(columns, at: s.patchSize * s.patchCount, "im2col", "columns")
        let imageSize = s.inChannels * s.height * s.width, patches = s.outHeight * s.outWidth
        parallelChunks(s.batch, chunks: workers) { _, images in
            for b in images {
                HostKernels.im2colImage(s, image: pin + b * imageSize, columns: pcol + b * patches,
                                        rowStride: s.patchCount)
            }
        }
    }

    public func col2im(_ s: ConvShape, columns: Buffer, input: Buffer) throws {
        try validate(s, "col2im")
        let pcol = try floats(columns, at: s.patchSize * s.patchCount, "col2im", "columns")
        let pin = try floats(input, at: s.inputCount, "col2im", "input")
        let imageSize = s.inChannels * s.height * s.width, patches = s.outHeight * s.outWidth
        parallelChunks(s.batch, chunks: workers) { _, images in
            for b in images {
                let image = pin + b * imageSize
                image.update(repeating: 0, count: imageSize)
                HostKernels.col2imImage(s, columns: pcol + b * patches, rowStride: s.patchCount, image: image)
            }
        }
    }

    public func conv2dForward(_ s: ConvShape, input: Buffer, weight: Buffer, output: Buffer) throws {
        try validate(s, "conv2dForward")
        let pin = try floats(input, at: s.inputCount, "conv2dForward", "input")
        let pw = try floats(weight, at: s.weightCount, "conv2dForward", "weight")
        let pout = try floats(output, at: s.outputCount, "conv2dForward", "output")
        let imageSize = s.inChannels * s.height * s.width, patches = s.outHeight * s.outWidth
        let k = s.patchSize, o = s.outChannels
        let columns = scratch.slot(0, floats: k * patches)
        parallelChunks(s.batch, chunks: workers) { worker, images in
            let cols = columns[worker]
            for b in images {
                HostKernels.im2colImage(s, image: pin + b * imageSize, columns: cols, rowStride: patches)
                // out_b (O×P) = W (O×K) · cols (K×P)
                HostKernels.sgemm(transposeA: false, transposeB: false, m: o, n: patches, k: k, alpha: 1,
                                  a: pw, lda: k, b: cols, ldb: patches, beta: 0,
                                  c: pout + b * o * patches, ldc: patches)
            }
        }
    }

    public func conv2dBackwardData(_ s: ConvShape, gradOutput: Buffer, weight: Buffer, gradInput: Buffer) throws {
        try validate(s, "conv2dBackwardData")
        let pgo = try floats(gradOutput, at: s.outputCount, "conv2dBackwardData", "gradOutput")
        let pw = try floats(weight, at: s.weightCount, "conv2dBackwardData", "weight")
        let pgi = try floats(gradInput, at: s.inputCount, "conv2dBackwardData", "gradInput")
        let imageSize = s.inChannels * s.height * s.width, patches = s.outHeight * s.outWidth
        let k = s.patchSize, o = s.outChannels
        let columns = scratch.slot(0, floats: k * patches)
        parallelChunks(s.batch, chunks: workers) { worker, images in
            let cols = columns[worker]
            for b in images {
                // cols (K×P) = Wᵀ (K×O) · gradOut_b (O×P), then fold back.
                HostKernels.sgemm(transposeA: true, transposeB: false, m: k, n: patches, k: o, alpha: 1,
                                  a: pw, lda: k, b: pgo + b * o * patches, ldb: patches, beta: 0,
                                  c: cols, ldc: patches)
                let image = pgi + b * imageSize
                image.update(repeating: 0, count: imageSize)
                HostKernels.col2imImage(s, columns: cols, rowStride: patches, image: image)
            }
        }
    }

    public func conv2dBackwardWeight(_ s: ConvShape, input: Buffer, gradOutput: Buffer, gradWeight: Buffer) throws {
        try validate(s, "conv2dBackwardWeight")
        let pin = try floats(input, at: s.inputCount, "conv2dBackwardWeight", "input")
        let pgo = try floats(gradOutput, at: s.outputCount, "conv2dBackwardWeight", "gradOutput")
        let pgw = try floats(gradWeight, at: s.weightCount, "conv2dBackwardWeight", "gradWeight")
        let imageSize = s.inChannels * s.height * s.width, patches = s.outHeight * s.outWidth
        let k = s.patchSize, o = s.outChannels
        let columns = scratch.slot(0, floats: k * patches)
        let partials = scratch.slot(1, floats: o * k)
        let chunks = min(workers, s.batch)
        parallelChunks(s.batch, chunks: chunks) { worker, images in
            let cols = columns[worker], partial = partials[worker]
            var beta: Float = 0
            for b in images {
                HostKernels.im2colImage(s, image: pin + b * imageSize, columns: cols, rowStride: patches)
                // partial (O×K) += gradOut_b (O×P) · cols (K×P)ᵀ
                HostKernels.sgemm(transposeA: false, transposeB: true, m: o, n: k, k: patches, alpha: 1,
                                  a: pgo + b * o * patches, lda: patches, b: cols, ldb: patches, beta: beta,
                                  c: partial, ldc: k)
                beta = 1
            }
        }
        // Sum the workers' partial gradients in worker order (deterministic).
        let count = o * k
        if s.batch == 0 { pgw.update(repeating: 0, count: count); return }
        pgw.update(from: partials[0], count: count)
        for w in 1..<max(1, chunks) {
            let partial = partials[w]
            for i in 0..<count { pgw[i] += partial[i] }
        }
    }

    /// Rejects shapes with non-positive sizes or a kernel larger than the input.
    func validate(_ s: ConvShape, _ operation: String) throws {
        guard s.batch >= 0, s.inChannels > 0, s.outChannels > 0, s.kernelHeight > 0, s.kernelWidth > 0,
              s.outHeight > 0, s.outWidth > 0 else {
            throw HostDeviceError.invalidShape(
                operation: operation,
                reason: "batch \(s.batch), channels \(s.inChannels)→\(s.outChannels), input \(s.height)×\(s.width), kernel \(s.kernelHeight)×\(s.kernelWidth)")
        }
    }
}
