import CHostKernels
import Foundation

/// ReLU, max-pooling, the linear layer, the loss and the optimisers on the
/// host: plain loops over raw pointers (the compiler vectorises the
/// elementwise ones), split across the cores where the work is large enough.
extension HostDevice {
    /// Below this many elements an elementwise loop runs on one core: the
    /// dispatch to a second thread (~5–10 µs) costs more than it saves.
    static let parallelElementThreshold = 1 << 15

    // MARK: ReLU

    /// NaN inputs stay NaN (PyTorch's behaviour), so a diverging run is seen.
    public func reluForward(count: Int, input: Buffer, output: Buffer) throws {
        let pin = try floats(input, at: count, "reluForward", "input")
        let pout = try floats(output, at: count, "reluForward", "output")
        parallelChunks(count, chunks: count >= Self.parallelElementThreshold ? tasks : 1) { _, range in
            HostLoops.relu(pin + range.lowerBound, pout + range.lowerBound, count: range.count)
        }
    }

    public func reluBackward(
        count: Int, output: Buffer, gradOutput: Buffer, addend: Buffer?, gradInput: Buffer
    ) throws {
        let operation = addend == nil ? "reluBackward" : "reluBackwardSum"
        let pout = try floats(output, at: count, operation, "output")
        let pgo = try floats(gradOutput, at: count, operation, "gradOutput")
        let pad = try addend.map { try floats($0, at: count, operation, "addend") }
        let pgi = try floats(gradInput, at: count, operation, "gradInput")
        parallelChunks(count, chunks: count >= Self.parallelElementThreshold ? tasks : 1) { _, range in
            let start = range.lowerBound
            HostLoops.reluGradient(
                output: pout + start, gradOutput: pgo + start, addend: pad.map { UnsafePointer($0 + start) },
                gradInput: pgi + start, count: range.count)
        }
    }

    // MARK: Max-pooling

    public func maxPool2Forward(_ s: PoolShape, input: Buffer, output: Buffer, argmax: Buffer) throws {
        try validate(s, "maxPool2Forward")
        let pin = try floats(input, at: s.inputCount, "maxPool2Forward", "input")
        let pout = try floats(output, at: s.outputCount, "maxPool2Forward", "output")
        let parg = try int32s(argmax, at: s.outputCount, "maxPool2Forward", "argmax")
        let planeSize = s.height * s.width
        let outPlaneSize = s.outHeight * s.outWidth
        let chunks = s.inputCount >= Self.parallelElementThreshold ? tasks : 1
        parallelChunks(s.batch * s.channels, chunks: chunks) { _, range in
            let first = range.lowerBound
            maxPool2Planes(
                pin + first * planeSize, planes: range.count, height: s.height, width: s.width,
                output: pout + first * outPlaneSize, argmax: parg + first * outPlaneSize)
        }
    }

    /// Pools `planes` consecutive planes of height × width into `output` and
    /// `argmax` on the calling thread: the AVX2 kernel (SSE4.1 blocks of 4
    /// for rows of 4–7 outputs; single-core at batch 64, pool1 0.06–0.09 ms,
    /// pool2 0.04 ms, /tmp C harness), else row by row in Swift.
    func maxPool2Planes(
        _ input: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
        output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>
    ) {
        let (oH, oW) = (height / 2, width / 2)
        if usesDirectKernels && oW >= 4 {
            hk_max_pool2_forward(input, Int32(planes), Int32(height), Int32(width), output, argmax)
            return
        }
        for plane in 0..<planes {
            for oy in 0..<oH {
                HostLoops.maxPoolRow(
                    plane: input + plane * height * width, top: 2 * oy * width, width: width,
                    outWidth: oW, output: output + (plane * oH + oy) * oW,
                    argmax: argmax + (plane * oH + oy) * oW)
            }
        }
    }

    public func maxPool2Backward(_ s: PoolShape, gradOutput: Buffer, argmax: Buffer, gradInput: Buffer) throws {
        try validate(s, "maxPool2Backward")
        let pgo = try floats(gradOutput, at: s.outputCount, "maxPool2Backward", "gradOutput")
        let parg = try int32s(argmax, at: s.outputCount, "maxPool2Backward", "argmax")
        let pgi = try floats(gradInput, at: s.inputCount, "maxPool2Backward", "gradInput")
        let planeSize = s.height * s.width
        let outPlaneSize = s.outHeight * s.outWidth
        let planes = s.batch * s.channels
        let chunks = s.inputCount >= Self.parallelElementThreshold ? tasks : 1
        if usesDirectKernels && s.outWidth >= 4 {
            // AVX2 gather: each input element written once from its window's
            // argmax. It reports any argmax outside its own 2×2 window (only
            // a corrupt one can be); then the checked scatter below redoes it all.
            let outside = UnsafeMutablePointer<Int32>.allocate(capacity: tasks)
            defer { outside.deallocate() }
            outside.initialize(repeating: 0, count: tasks)
            parallelChunks(planes, chunks: chunks) { worker, range in
                let first = range.lowerBound
                outside[worker] = hk_max_pool2_backward(
                    pgo + first * outPlaneSize, parg + first * outPlaneSize,
                    Int32(range.count), Int32(s.height), Int32(s.width),
                    pgi + first * planeSize)
            }
            if (0..<tasks).allSatisfy({ outside[$0] == 0 }) { return }
        }
        // An argmax outside its plane would write into another image: check
        // first (cheap next to the scatter), so a corrupt index throws.
        for i in 0..<s.outputCount where parg[i] < 0 || Int(parg[i]) >= planeSize {
            throw HostDeviceError.argmaxOutOfRange(index: i, value: parg[i], planeSize: planeSize)
        }
        parallelChunks(planes, chunks: chunks) { _, range in
            for plane in range {
                let target = pgi + plane * planeSize
                let source = pgo + plane * outPlaneSize
                let winners = parg + plane * outPlaneSize
                target.update(repeating: 0, count: planeSize)
                for o in 0..<outPlaneSize { target[Int(winners[o])] += source[o] }
            }
        }
    }

    func validate(_ s: PoolShape, _ operation: String) throws {
        guard s.batch >= 0, s.channels >= 0, s.height >= 0, s.width >= 0 else {
            throw HostDeviceError.invalidShape(
                operation: operation, reason: "pool input (\(s.batch),\(s.channels),\(s.height),\(s.width))")
        }
    }

    // MARK: Linear layer

    public func linearForward(_ s: LinearShape, input: Buffer, weight: Buffer, bias: Buffer, output: Buffer) throws {
        try validate(s, "linearForward")
        let pin = try floats(input, at: s.batch * s.inFeatures, "linearForward", "input")
        let pw = try floats(weight, at: s.outFeatures * s.inFeatures, "linearForward", "weight")
        let pb = try floats(bias, at: s.outFeatures, "linearForward", "bias")
        let pout = try floats(output, at: s.batch * s.outFeatures, "linearForward", "output")
        guard s.batch > 0, s.outFeatures > 0 else { return }
        for b in 0..<s.batch { (pout + b * s.outFeatures).update(from: pb, count: s.outFeatures) }
        // output (B×out) += input (B×in) · W (out×in)ᵀ
        HostLoops.sgemm(
            transposeA: false, transposeB: true, m: s.batch, n: s.outFeatures, k: s.inFeatures,
            alpha: 1, a: pin, lda: s.inFeatures, b: pw, ldb: s.inFeatures,
            beta: 1, c: pout, ldc: s.outFeatures)
    }

    public func linearBackward(
        _ s: LinearShape, input: Buffer, weight: Buffer, gradOutput: Buffer,
        gradInput: Buffer?, gradWeight: Buffer, gradBias: Buffer
    ) throws {
        try validate(s, "linearBackward")
        let (batch, inF, outF) = (s.batch, s.inFeatures, s.outFeatures)
        let pin = try floats(input, at: batch * inF, "linearBackward", "input")
        let pw = try floats(weight, at: outF * inF, "linearBackward", "weight")
        let pgo = try floats(gradOutput, at: batch * outF, "linearBackward", "gradOutput")
        let pgi = try gradInput.map { try floats($0, at: batch * inF, "linearBackward", "gradInput") }
        let pgw = try floats(gradWeight, at: outF * inF, "linearBackward", "gradWeight")
        let pgb = try floats(gradBias, at: outF, "linearBackward", "gradBias")
        guard outF > 0 else { return }
        // The three results are independent: the weight and bias gradients on
        // one worker, the input gradient on another (two small BLAS calls of
        // ~10 µs each at TinyConvNet's shape).
        parallelChunks(2, chunks: pgi != nil && batch > 0 && inF > 0 ? 2 : 1) { _, parts in
            for part in parts {
                if part == 0 {
                    // gradBias[o] = Σ_b gradOutput[b,o]
                    pgb.update(repeating: 0, count: outF)
                    for b in 0..<batch { for o in 0..<outF { pgb[o] += pgo[b * outF + o] } }
                    guard inF > 0 else { continue }
                    // gradWeight (out×in) = gradOutput (B×out)ᵀ · input (B×in)
                    if batch == 0 {
                        pgw.update(repeating: 0, count: outF * inF)
                    } else {
                        HostLoops.sgemm(
                            transposeA: true, transposeB: false, m: outF, n: inF, k: batch, alpha: 1,
                            a: pgo, lda: outF, b: pin, ldb: inF, beta: 0, c: pgw, ldc: inF)
                    }
                } else if let pgi {
                    // gradInput (B×in) = gradOutput (B×out) · W (out×in)
                    HostLoops.sgemm(
                        transposeA: false, transposeB: false, m: batch, n: inF, k: outF, alpha: 1,
                        a: pgo, lda: outF, b: pw, ldb: inF, beta: 0, c: pgi, ldc: inF)
                }
            }
        }
    }

    func validate(_ s: LinearShape, _ operation: String) throws {
        guard s.batch >= 0, s.inFeatures >= 0, s.outFeatures >= 0 else {
            throw HostDeviceError.invalidShape(
                operation: operation, reason: "linear batch \(s.batch), \(s.inFeatures)→\(s.outFeatures)")
        }
    }

    // MARK: Loss

    /// Each row in float64: z − max(z) (so exp cannot overflow), loss =
    /// log Σ exp(z − max) − (z_label − max), gradient (p − onehot)/batch.
    public func softmaxCrossEntropy(
        batch: Int, classes: Int, logits: Buffer, labels: Buffer,
        gradLogits: Buffer, perSample: Buffer
    ) throws {
        guard batch >= 0, classes > 0 else {
            throw HostDeviceError.invalidShape(
                operation: "softmaxCrossEntropy", reason: "batch \(batch), classes \(classes)")
        }
        let pz = try floats(logits, at: batch * classes, "softmaxCrossEntropy", "logits")
        let plabels = try int32s(labels, at: batch, "softmaxCrossEntropy", "labels")
        let pg = try floats(gradLogits, at: batch * classes, "softmaxCrossEntropy", "gradLogits")
        let pps = try floats(perSample, at: 2 * batch, "softmaxCrossEntropy", "perSample")
        for b in 0..<batch where plabels[b] < 0 || Int(plabels[b]) >= classes {
            throw HostDeviceError.labelOutOfRange(sample: b, label: plabels[b], classes: classes)
        }
        let inverseBatch = 1 / Double(batch)
        // Each exponential once (they are most of the time here), kept on the
        // stack for the usual class counts (no allocation per step).
        withUnsafeTemporaryAllocation(of: Double.self, capacity: classes) { exps in
            for b in 0..<batch {
                let z = pz + b * classes
                let g = pg + b * classes
                let label = Int(plabels[b])
                var best = 0
                for k in 1..<classes where z[k] > z[best] { best = k }
                let top = Double(z[best])
                var sum = 0.0
                for k in 0..<classes {
                    let e = exp(Double(z[k]) - top)
                    exps[k] = e
                    sum += e
                }
                pps[b] = Float(log(sum) - (Double(z[label]) - top))
                pps[batch + b] = best == label ? 1 : 0
                for k in 0..<classes {
                    let p = exps[k] / sum
                    g[k] = Float((p - (k == label ? 1 : 0)) * inverseBatch)
                }
            }
        }
    }

    // MARK: Optimisers

    public func sgdMomentumStep(_ tensors: [MomentumTensor], step: SGDStep) throws {
        for t in tensors {
            let p = try floats(t.parameter, at: t.count, "sgdMomentumStep", "parameter")
            let g = try floats(t.gradient, at: t.count, "sgdMomentumStep", "gradient")
            let v = try floats(t.velocity, at: t.count, "sgdMomentumStep", "velocity")
            try distinct(t.parameter, t.gradient, t.velocity, in: "sgdMomentumStep")
            hk_sgd_momentum_step(
                Int32(t.count), p, g, v, step.learningRate, step.momentum, step.weightDecay, step.nesterov ? 1 : 0)
        }
    }

    public func adamStep(_ tensors: [AdamTensor], step: AdamStep) throws {
        for t in tensors {
            let p = try floats(t.parameter, at: t.count, "adamStep", "parameter")
            let g = try floats(t.gradient, at: t.count, "adamStep", "gradient")
            let pm = try floats(t.m, at: t.count, "adamStep", "m")
            let pv = try floats(t.v, at: t.count, "adamStep", "v")
            try distinct(t.parameter, t.gradient, t.m, t.v, in: "adamStep")
            hk_adam_step(
                Int32(t.count), p, g, pm, pv, step.learningRate, step.beta1, step.beta2, step.epsilon,
                step.correction1, step.correction2)
        }
    }

    /// The C loops take their arrays as non-overlapping (`restrict`). Pairwise
    /// identity checks, no array: this runs for every tensor of every step.
    private func distinct(_ a: Buffer, _ b: Buffer, _ c: Buffer, _ d: Buffer? = nil, in operation: String) throws {
        let repeated =
            a === b || a === c || b === c
            || d.map { $0 === a || $0 === b || $0 === c } ?? false
        guard !repeated else {
            throw HostDeviceError.invalidShape(operation: operation, reason: "the same buffer is passed twice")
        }
    }
}
