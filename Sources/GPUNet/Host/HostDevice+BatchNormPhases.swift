import CHostKernels

/// The phases of a synchronised batch normalisation on the host: the loops
/// of ``HostDevice/batchNormForward(_:input:gamma:beta:runningMean:runningVar:saved:output:training:)``
/// and ``HostDevice/batchNormBackward(_:input:gamma:saved:gradOutput:gradInput:gradGamma:gradBeta:training:)``
/// cut where the sums leave the device: float64 sums in the fixed lane order
/// of `hk_channel_sum` and `hk_channel_gradient_sums`, each rounded once to
/// float32.
extension HostDevice {
    public func batchNormChannelSums(
        _ s: BatchNormShape, input: Buffer, saved: Buffer, centred: Bool, sums: Buffer
    ) throws {
        let operation = "batchNormChannelSums"
        try validate(s, operation, training: false)
        let c = s.channels
        let px = try floats(input, at: s.count, operation, "input")
        let psaved = try floats(saved, at: centred ? c : 0, operation, "saved")
        let psums = try floats(sums, at: c, operation, "sums")
        let (batch, plane) = (s.batch, s.map.planeSize)
        parallelChunks(c, chunks: s.count >= Self.parallelElementThreshold ? tasks : 1) { _, channels in
            for ch in channels {
                let mean = centred ? Double(psaved[ch]) : 0
                let sum = hk_channel_sum(px + ch * plane, Int32(batch), c * plane, Int32(plane), mean, centred ? 1 : 0)
                psums[ch] = Float(sum)
            }
        }
    }

    public func batchNormApply(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, saved: Buffer, output: Buffer
    ) throws {
        let operation = "batchNormApply"
        try validate(s, operation, training: false)
        let c = s.channels
        let px = try floats(input, at: s.count, operation, "input")
        let pg = try floats(gamma, at: c, operation, "gamma")
        let pb = try floats(beta, at: c, operation, "beta")
        let psaved = try floats(saved, at: 2 * c, operation, "saved")
        let py = try floats(output, at: s.count, operation, "output")
        parallelChunks(c, chunks: s.count >= Self.parallelElementThreshold ? tasks : 1) { _, channels in
            for ch in channels {
                Self.normalize(
                    channel: ch, of: s, mean: Double(psaved[ch]), invStd: Double(psaved[c + ch]), gamma: pg[ch],
                    beta: pb[ch], input: px, output: py)
            }
        }
    }

    public func batchNormBackwardSums(
        _ s: BatchNormShape, input: Buffer, saved: Buffer, gradOutput: Buffer, gradGamma: Buffer, gradBeta: Buffer
    ) throws {
        let operation = "batchNormBackwardSums"
        try validate(s, operation, training: false)
        let c = s.channels
        let px = try floats(input, at: s.count, operation, "input")
        let psaved = try floats(saved, at: 2 * c, operation, "saved")
        let pdy = try floats(gradOutput, at: s.count, operation, "gradOutput")
        let pdg = try floats(gradGamma, at: c, operation, "gradGamma")
        let pdb = try floats(gradBeta, at: c, operation, "gradBeta")
        let (batch, plane) = (s.batch, s.map.planeSize)
        parallelChunks(c, chunks: s.count >= Self.parallelElementThreshold ? tasks : 1) { _, channels in
            for ch in channels {
                let (mean, invStd) = (Double(psaved[ch]), Double(psaved[c + ch]))
                var sumDy = 0.0
                var sumDyCentred = 0.0
                hk_channel_gradient_sums(
                    px + ch * plane, pdy + ch * plane, Int32(batch), c * plane, Int32(plane), mean, &sumDy,
                    &sumDyCentred)
                let sumDyXhat = sumDyCentred * invStd
                pdb[ch] = Float(sumDy)
                pdg[ch] = Float(sumDyXhat)
            }
        }
    }

    public func batchNormBackwardApply(
        _ s: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, gradOutput: Buffer, sumDy: Buffer,
        sumDyXhat: Buffer, gradInput: Buffer
    ) throws {
        let operation = "batchNormBackwardApply"
        try validate(s, operation, training: false)
        let c = s.channels
        let px = try floats(input, at: s.count, operation, "input")
        let pg = try floats(gamma, at: c, operation, "gamma")
        let psaved = try floats(saved, at: 2 * c, operation, "saved")
        let pdy = try floats(gradOutput, at: s.count, operation, "gradOutput")
        let psumDy = try floats(sumDy, at: c, operation, "sumDy")
        let psumDyXhat = try floats(sumDyXhat, at: c, operation, "sumDyXhat")
        let pdx = try floats(gradInput, at: s.count, operation, "gradInput")
        let (batch, plane) = (s.batch, s.map.planeSize)
        let n = Double(s.valuesPerChannel)
        parallelChunks(c, chunks: s.count >= Self.parallelElementThreshold ? tasks : 1) { _, channels in
            for ch in channels {
                let (mean, invStd) = (Double(psaved[ch]), Double(psaved[c + ch]))
                let scale = Double(pg[ch]) * invStd
                let meanDy = Double(psumDy[ch]) / n
                let meanDyXhat = Double(psumDyXhat[ch]) / n
                hk_channel_gradient_apply(
                    px + ch * plane, pdy + ch * plane, Int32(batch), c * plane, Int32(plane), mean, invStd, scale,
                    meanDy, meanDyXhat, pdx + ch * plane)
            }
        }
    }
}
