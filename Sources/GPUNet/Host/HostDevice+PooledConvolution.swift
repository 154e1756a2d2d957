import CHostKernels

/// Convolutions followed by a 2×2 max-pool, on the host (see ``Device`` for
/// what each computes).
///
/// - Forward, up to 16 output channels: `hk_conv_pool_image`, output
///   channels in the vector lanes, the four pixels of each pool window in
///   registers, only the windows floor mode keeps (measured single-core,
///   batch 64, /tmp C harness: conv1 0.13 ms, 48 GFLOP/s of dense-equivalent
///   work; conv2 0.16 ms, 111). Otherwise each image's convolution lands in
///   the worker's scratch and is pooled from there.
/// - Backward: `CHostKernels`' pooled-gradient kernels (see PooledGather.h
///   for the three ways; single-core at batch 64, same harness: conv1 weight
///   gradient 0.14 ms, conv2 weight gradient 0.14 ms, conv2 data gradient
///   0.15 ms. In `convsvd bench` on both cores: 0.09 / 0.09 / 0.11 ms,
///   where the dense passes they replace took 0.15 / 0.21 / 0.36 ms).
///   Weight gradients are summed per task over a fixed split of the images
///   and then in task order, so the result does not depend on thread timing.
/// - A fused ReLU is applied per image right after its pool (forward), and
///   per task to its images' pooled gradient (backward, into scratch slot 2)
///   before the kernels run: no extra pass over the whole batch.
extension HostDevice {
    public func conv2dMaxPool2Forward(
        _ s: ConvShape, input: Buffer, weight: Buffer,
        pooled: Buffer, argmax: Buffer, relu: Bool
    ) throws {
        let operation = "conv2dMaxPool2Forward"
        try validate(s, operation)
        let pool = PoolShape(batch: s.batch, channels: s.outChannels, height: s.outHeight, width: s.outWidth)
        let pin = try floats(input, at: s.inputCount, operation, "input")
        let pw = try floats(weight, at: s.weightCount, operation, "weight")
        let pout = try floats(pooled, at: pool.outputCount, operation, "pooled")
        let parg = try int32s(argmax, at: pool.outputCount, operation, "argmax")
        let imagePooled = s.outChannels * pool.outHeight * pool.outWidth
        let imageSize = s.inChannels * s.height * s.width
        if usesDirectKernels && s.outChannels <= 16 && imagePooled > 0 {
            // Output channels in the lanes, the pool taken in registers (`hk_conv_pool_image`).
            let outPad = s.outChannels <= 8 ? 8 : 16
            let k = s.patchSize
            let weightsT = scratch.shared(floats: k * outPad)
            Self.tapMajorWeights(pw, outChannels: s.outChannels, taps: k, outPad: outPad, into: weightsT)
            let offsets = scratch.shared(int32s: k)
            hk_tap_offsets(
                Int32(s.inChannels), Int32(s.height), Int32(s.width),
                Int32(s.kernelHeight), Int32(s.kernelWidth), offsets)
            let work = scratch.slot(1, floats: 2 * pool.outHeight * pool.outWidth * outPad)
            parallelChunks(s.batch, chunks: tasks) { worker, images in
                for b in images {
                    hk_conv_pool_image(
                        pin + b * imageSize, Int32(s.width), offsets, Int32(k),
                        weightsT, Int32(s.outChannels), Int32(outPad),
                        Int32(s.outHeight), Int32(s.outWidth), pout + b * imagePooled,
                        parg + b * imagePooled, work[worker])
                    if relu {
                        HostLoops.relu(pout + b * imagePooled, pout + b * imagePooled, count: imagePooled)
                    }
                }
            }
            return
        }
        // Any other case: each image's convolution into the worker's scratch, pooled from there.
        let imageOutput = s.outChannels * s.outHeight * s.outWidth
        let convolution = imageConvolution(s, weight: pw)
        let outputs = scratch.slot(1, floats: imageOutput)
        parallelChunks(s.batch, chunks: tasks) { worker, images in
            let output = outputs[worker]
            for b in images {
                convolution.run(input: pin, image: b, worker: worker, output: output)
                maxPool2Planes(
                    output, planes: s.outChannels, height: s.outHeight, width: s.outWidth,
                    output: pout + b * imagePooled, argmax: parg + b * imagePooled)
                if relu { HostLoops.relu(pout + b * imagePooled, pout + b * imagePooled, count: imagePooled) }
            }
        }
    }

    public func conv2dBackwardWeight(
        _ s: ConvShape, input: Buffer, pooledGradient gradient: PooledGradient,
        gradWeight: Buffer
    ) throws {
        let operation = "conv2dBackwardWeight(pooledGradient:)"
        try validate(s, operation)
        try validate(gradient, for: s, operation)
        let pin = try floats(input, at: s.inputCount, operation, "input")
        let pg = try floats(gradient.values, at: gradient.pool.outputCount, operation, "pooled gradient")
        let parg = try int32s(gradient.argmax, at: gradient.pool.outputCount, operation, "argmax")
        let mask = try reluOutput(of: gradient, operation)
        let pgw = try floats(gradWeight, at: s.weightCount, operation, "gradWeight")
        let count = s.weightCount
        if s.batch == 0 {
            pgw.update(repeating: 0, count: count)
            return
        }
        let imageSize = s.inChannels * s.height * s.width
        let imagePooled = s.outChannels * gradient.pool.outHeight * gradient.pool.outWidth
        let chunks = min(tasks, s.batch)
        let partials = scratch.slot(1, floats: count)
        let work = scratch.slot(
            0,
            floats: hk_pooled_weight_gradient_work(
                Int32(s.inChannels), Int32(s.height), Int32(s.width), Int32(s.kernelHeight), Int32(s.kernelWidth),
                Int32(s.outChannels), Int32(s.outHeight), Int32(s.outWidth), Int32((s.batch + chunks - 1) / chunks)))
        let masked = scratch.slot(2, floats: mask == nil ? 0 : imagePooled * ((s.batch + chunks - 1) / chunks))
        let failed = scratch.shared(int32s: chunks)
        failed.initialize(repeating: 0, count: chunks)
        parallelChunks(s.batch, chunks: chunks) { worker, images in
            let first = images.lowerBound
            let values = Self.passingReLU(
                pg, mask, from: first * imagePooled, count: images.count * imagePooled,
                into: masked[worker])
            failed[worker] = hk_pooled_weight_gradient(
                pin + first * imageSize, Int32(s.inChannels), Int32(s.height), Int32(s.width),
                Int32(s.kernelHeight), Int32(s.kernelWidth), values, parg + first * imagePooled,
                Int32(s.outChannels), Int32(s.outHeight), Int32(s.outWidth), Int32(images.count), work[worker],
                partials[worker])
        }
        guard (0..<chunks).allSatisfy({ failed[$0] == 0 }) else {
            throw HostDeviceError.winnerOutsideWindow(operation: operation)
        }
        pgw.update(from: partials[0], count: count)
        for w in 1..<chunks {
            let partial = partials[w]
            for i in 0..<count { pgw[i] += partial[i] }
        }
    }

    public func conv2dBackwardData(
        _ s: ConvShape, pooledGradient gradient: PooledGradient, weight: Buffer,
        gradInput: Buffer
    ) throws {
        let operation = "conv2dBackwardData(pooledGradient:)"
        try validate(s, operation)
        try validate(gradient, for: s, operation)
        let pg = try floats(gradient.values, at: gradient.pool.outputCount, operation, "pooled gradient")
        let parg = try int32s(gradient.argmax, at: gradient.pool.outputCount, operation, "argmax")
        let mask = try reluOutput(of: gradient, operation)
        let pw = try floats(weight, at: s.weightCount, operation, "weight")
        let pgi = try floats(gradInput, at: s.inputCount, operation, "gradInput")
        let imageSize = s.inChannels * s.height * s.width
        let imagePooled = s.outChannels * gradient.pool.outHeight * gradient.pool.outWidth
        let work = scratch.slot(
            0,
            floats: hk_pooled_data_gradient_work(
                Int32(s.inChannels), Int32(s.height), Int32(s.width), Int32(s.outChannels), Int32(s.outHeight),
                Int32(s.outWidth)))
        let masked = scratch.slot(2, floats: mask == nil ? 0 : imagePooled * ((s.batch + tasks - 1) / tasks))
        let failed = scratch.shared(int32s: tasks)
        failed.initialize(repeating: 0, count: tasks)
        parallelChunks(s.batch, chunks: tasks) { worker, images in
            let first = images.lowerBound
            let values = Self.passingReLU(
                pg, mask, from: first * imagePooled, count: images.count * imagePooled,
                into: masked[worker])
            failed[worker] = hk_pooled_data_gradient(
                values, parg + first * imagePooled, pw, Int32(s.outChannels), Int32(s.outHeight),
                Int32(s.outWidth), Int32(s.inChannels), Int32(s.height), Int32(s.width), Int32(s.kernelHeight),
                Int32(s.kernelWidth), Int32(images.count), work[worker], pgi + first * imageSize)
        }
        guard (0..<tasks).allSatisfy({ failed[$0] == 0 }) else {
            throw HostDeviceError.winnerOutsideWindow(operation: operation)
        }
    }

    /// The fused ReLU's output of `gradient`, if it has one.
    private func reluOutput(of gradient: PooledGradient, _ operation: String) throws -> UnsafeMutablePointer<Float>? {
        guard let output = gradient.reluOutput else { return nil }
        return try floats(output, at: gradient.pool.outputCount, operation, "ReLU output")
    }

    /// The pooled gradient's elements [start, start + count) as the pooled
    /// kernels take them: as they are without a ReLU, else passed where the
    /// ReLU's output is > 0 (`HostLoops.reluGradient`) into `scratch`.
    private static func passingReLU(
        _ values: UnsafeMutablePointer<Float>, _ reluOutput: UnsafeMutablePointer<Float>?,
        from start: Int, count: Int,
        into scratch: UnsafeMutablePointer<Float>
    ) -> UnsafeMutablePointer<Float> {
        guard let reluOutput else { return values + start }
        HostLoops.reluGradient(
            output: reluOutput + start, gradOutput: values + start, addend: nil, gradInput: scratch, count: count)
        return scratch
    }

    /// The pooled gradient must describe a pool over `s`'s output.
    func validate(_ gradient: PooledGradient, for s: ConvShape, _ operation: String) throws {
        guard gradient.matches(s) else {
            let p = gradient.pool
            throw HostDeviceError.invalidShape(
                operation: operation,
                reason:
                    "pool over (\(p.batch),\(p.channels),\(p.height),\(p.width)), convolution output (\(s.batch),\(s.outChannels),\(s.outHeight),\(s.outWidth))"
            )
        }
    }
}
