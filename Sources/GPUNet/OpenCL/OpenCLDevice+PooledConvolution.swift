/// Convolutions followed by a 2×2 max-pool on OpenCL (see ``Device``).
///
/// PLACEHOLDER composition of the dense kernels through a scratch buffer;
/// dedicated kernels replace it.
extension OpenCLDevice {
    public func conv2dMaxPool2Forward(_ s: ConvShape, input: Buffer, weight: Buffer,
                                      pooled: Buffer, argmax: Buffer) throws {
        let dense = try scratchBuffer("pooled.dense", count: s.outputCount)
        try conv2dForward(s, input: input, weight: weight, output: dense)
        try maxPool2Forward(PoolShape(batch: s.batch, channels: s.outChannels, height: s.outHeight, width: s.outWidth),
                            input: dense, output: pooled, argmax: argmax)
    }

    public func conv2dBackwardWeight(_ s: ConvShape, input: Buffer, pooledGradient gradient: PooledGradient,
                                     gradWeight: Buffer) throws {
        let dense = try scratchBuffer("pooled.dense", count: s.outputCount)
        try maxPool2Backward(gradient.pool, gradOutput: gradient.values, argmax: gradient.argmax, gradInput: dense)
        try conv2dBackwardWeight(s, input: input, gradOutput: dense, gradWeight: gradWeight)
    }

    public func conv2dBackwardData(_ s: ConvShape, pooledGradient gradient: PooledGradient, weight: Buffer,
                                   gradInput: Buffer) throws {
        let dense = try scratchBuffer("pooled.dense", count: s.outputCount)
        try maxPool2Backward(gradient.pool, gradOutput: gradient.values, argmax: gradient.argmax, gradInput: dense)
        try conv2dBackwardData(s, gradOutput: dense, weight: weight, gradInput: gradInput)
    }
}
