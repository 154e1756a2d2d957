import Foundation
import GPUNet

/// Float64 loops for the layers of residual networks (``Conv2dShape``,
/// batch normalisation, the residual sum, the global average pool), written
/// from their definitions (PyTorch's `Conv2d`, `BatchNorm2d`,
/// `AdaptiveAvgPool2d(1)`) as directly as possible: convolutions as direct
/// sums with an explicit bounds test for the zero padding, batch
/// normalisation's backward from the chain rule through μ and σ² term by
/// term rather than from the closed form the devices use.
extension NaiveReference {
    // MARK: General convolution

    /// output[b,o,y,x] = bias[o] + Σ_{c,i,j} weight[o,c,i,j]·input[b,c,y·s+i−p,x·s+j−p],
    /// terms outside the input being zero; `bias` nil or empty: no bias.
    public static func conv2dForward<T: BinaryFloatingPoint>(
        _ s: Conv2dShape, input: [T], weight: [T], bias: [T]? = nil
    ) -> [Double] {
        precondition(input.count == s.inputCount && weight.count == s.weightCount, "NaiveReference.conv2dForward \(s)")
        let input = input.map(Double.init)
        let weight = weight.map(Double.init)
        let bias = bias?.map(Double.init)
        var output = [Double](repeating: 0, count: s.outputCount)
        for b in 0..<s.batch {
            for o in 0..<s.outChannels {
                for y in 0..<s.outHeight {
                    for x in 0..<s.outWidth {
                        var sum = bias?[o] ?? 0
                        forEachTap(s, y, x) { c, i, j, iy, ix in
                            sum += weight[weightIndex(s, o, c, i, j)] * input[inputIndex(s, b, c, iy, ix)]
                        }
                        output[outputIndex(s, b, o, y, x)] = sum
                    }
                }
            }
        }
        return output
    }

    /// gradInput: each gradOutput[b,o,y,x]·weight[o,c,i,j] scattered back to
    /// the input pixel (y·s+i−p, x·s+j−p) that the forward read (nothing for
    /// padding).
    public static func conv2dBackwardData<T: BinaryFloatingPoint>(_ s: Conv2dShape, gradOutput: [T], weight: [T])
        -> [Double]
    {
        precondition(gradOutput.count == s.outputCount && weight.count == s.weightCount, "conv2dBackwardData \(s)")
        let gradOutput = gradOutput.map(Double.init)
        let weight = weight.map(Double.init)
        var gradInput = [Double](repeating: 0, count: s.inputCount)
        for b in 0..<s.batch {
            for o in 0..<s.outChannels {
                for y in 0..<s.outHeight {
                    for x in 0..<s.outWidth {
                        let g = gradOutput[outputIndex(s, b, o, y, x)]
                        forEachTap(s, y, x) { c, i, j, iy, ix in
                            gradInput[inputIndex(s, b, c, iy, ix)] += g * weight[weightIndex(s, o, c, i, j)]
                        }
                    }
                }
            }
        }
        return gradInput
    }

    /// gradWeight[o,c,i,j] = Σ_{b,y,x} gradOutput[b,o,y,x]·input[b,c,y·s+i−p,x·s+j−p]
    /// and gradBias[o] = Σ_{b,y,x} gradOutput[b,o,y,x].
    public static func conv2dBackwardWeight<T: BinaryFloatingPoint>(_ s: Conv2dShape, input: [T], gradOutput: [T])
        -> (weight: [Double], bias: [Double])
    {
        precondition(input.count == s.inputCount && gradOutput.count == s.outputCount, "conv2dBackwardWeight \(s)")
        let input = input.map(Double.init)
        let gradOutput = gradOutput.map(Double.init)
        var gradWeight = [Double](repeating: 0, count: s.weightCount)
        var gradBias = [Double](repeating: 0, count: s.outChannels)
        for b in 0..<s.batch {
            for o in 0..<s.outChannels {
                for y in 0..<s.outHeight {
                    for x in 0..<s.outWidth {
                        let g = gradOutput[outputIndex(s, b, o, y, x)]
                        gradBias[o] += g
                        forEachTap(s, y, x) { c, i, j, iy, ix in
                            gradWeight[weightIndex(s, o, c, i, j)] += g * input[inputIndex(s, b, c, iy, ix)]
                        }
                    }
                }
            }
        }
        return (gradWeight, gradBias)
    }

    /// Calls body(c, i, j, iy, ix) for every tap of output (y, x) whose input
    /// pixel (iy, ix) = (y·s+i−p, x·s+j−p) lies inside the image.
    private static func forEachTap(
        _ s: Conv2dShape, _ y: Int, _ x: Int, _ body: (Int, Int, Int, Int, Int) -> Void
    ) {
        for c in 0..<s.inChannels {
            for i in 0..<s.kernelHeight {
                let iy = y * s.stride + i - s.padding
                if iy < 0 || iy >= s.height { continue }
                for j in 0..<s.kernelWidth {
                    let ix = x * s.stride + j - s.padding
                    if ix < 0 || ix >= s.width { continue }
                    body(c, i, j, iy, ix)
                }
            }
        }
    }

    private static func inputIndex(_ s: Conv2dShape, _ b: Int, _ c: Int, _ y: Int, _ x: Int) -> Int {
        ((b * s.inChannels + c) * s.height + y) * s.width + x
    }
    private static func outputIndex(_ s: Conv2dShape, _ b: Int, _ o: Int, _ y: Int, _ x: Int) -> Int {
        ((b * s.outChannels + o) * s.outHeight + y) * s.outWidth + x
    }
    private static func weightIndex(_ s: Conv2dShape, _ o: Int, _ c: Int, _ i: Int, _ j: Int) -> Int {
        ((o * s.inChannels + c) * s.kernelHeight + i) * s.kernelWidth + j
    }

    // MARK: Batch normalisation

    /// BatchNorm2d's forward and its new running statistics.
    public struct BatchNormResult {
        public var output: [Double]
        /// μ, the variance v and 1/√(v + ε) as used (the batch's biased
        /// variance in training, the running variance in eval).
        public var mean: [Double], variance: [Double], invStd: [Double]
        public var runningMean: [Double], runningVar: [Double]
    }

    /// PyTorch's BatchNorm2d: training normalises by the batch mean and the
    /// biased variance (Σ(x−μ)²/N) and moves the running statistics by
    /// momentum m towards μ and the unbiased variance (Σ(x−μ)²/(N−1));
    /// eval normalises by the running statistics.
    public static func batchNormForward<T: BinaryFloatingPoint>(
        _ s: BatchNormShape, input: [T], gamma: [T], beta: [T], runningMean: [T], runningVar: [T], training: Bool
    ) -> BatchNormResult {
        let (batch, channels, plane) = (s.batch, s.channels, s.map.planeSize)
        precondition(input.count == s.count && gamma.count == channels, "batchNormForward \(s)")
        let x = input.map(Double.init)
        let n = Double(s.valuesPerChannel)
        let (eps, m) = (Double(s.epsilon), Double(s.momentum))
        var result = BatchNormResult(
            output: [Double](repeating: 0, count: s.count), mean: [], variance: [], invStd: [],
            runningMean: runningMean.map(Double.init), runningVar: runningVar.map(Double.init))
        for c in 0..<channels {
            let values = (0..<batch).flatMap { b in (0..<plane).map { x[(b * channels + c) * plane + $0] } }
            let mean: Double
            let variance: Double
            if training {
                mean = values.reduce(0, +) / n
                let squares = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
                variance = squares / n
                result.runningMean[c] = (1 - m) * result.runningMean[c] + m * mean
                result.runningVar[c] = (1 - m) * result.runningVar[c] + m * squares / (n - 1)
            } else {
                mean = Double(runningMean[c])
                variance = Double(runningVar[c])
            }
            let invStd = 1 / (variance + eps).squareRoot()
            result.mean.append(mean)
            result.variance.append(variance)
            result.invStd.append(invStd)
            for b in 0..<batch {
                for p in 0..<plane {
                    let i = (b * channels + c) * plane + p
                    result.output[i] = (x[i] - mean) * invStd * Double(gamma[c]) + Double(beta[c])
                }
            }
        }
        return result
    }

    /// BatchNorm2d's gradients by the chain rule, spelled out: with
    /// x̂ = (x − μ)σ, σ = (v + ε)^(−1/2), dx̂ = dy·γ:
    /// dv = Σ dx̂·(x − μ)·(−½)(v + ε)^(−3/2), dμ = Σ −dx̂·σ + dv·Σ −2(x − μ)/N,
    /// dx = dx̂·σ + dv·2(x − μ)/N + dμ/N (training; μ and v from the batch);
    /// in eval μ and v are constants and dx = dx̂·σ. dγ = Σ dy·x̂, dβ = Σ dy.
    public static func batchNormBackward<T: BinaryFloatingPoint>(
        _ s: BatchNormShape, input: [T], gamma: [T], gradOutput: [T], mean: [Double], variance: [Double],
        training: Bool
    ) -> (input: [Double], gamma: [Double], beta: [Double]) {
        let (batch, channels, plane) = (s.batch, s.channels, s.map.planeSize)
        let x = input.map(Double.init)
        let dy = gradOutput.map(Double.init)
        let n = Double(s.valuesPerChannel)
        var dx = [Double](repeating: 0, count: s.count)
        var dGamma = [Double](repeating: 0, count: channels)
        var dBeta = [Double](repeating: 0, count: channels)
        for c in 0..<channels {
            let indices = (0..<batch).flatMap { b in (0..<plane).map { (b * channels + c) * plane + $0 } }
            let mu = mean[c]
            let vEps = variance[c] + Double(s.epsilon)
            let sigma = 1 / vEps.squareRoot()
            let g = Double(gamma[c])
            for i in indices {
                dBeta[c] += dy[i]
                dGamma[c] += dy[i] * (x[i] - mu) * sigma
            }
            guard training else {
                for i in indices { dx[i] = dy[i] * g * sigma }
                continue
            }
            var dVar = 0.0
            for i in indices { dVar += dy[i] * g * (x[i] - mu) * -0.5 * pow(vEps, -1.5) }
            var dMean = 0.0
            var centred = 0.0
            for i in indices {
                dMean += -dy[i] * g * sigma
                centred += -2 * (x[i] - mu)
            }
            dMean += dVar * centred / n
            for i in indices { dx[i] = dy[i] * g * sigma + dVar * 2 * (x[i] - mu) / n + dMean / n }
        }
        return (dx, dGamma, dBeta)
    }

    // MARK: Residual sum and global average pool

    /// a + b elementwise.
    public static func residualAdd<T: BinaryFloatingPoint>(_ a: [T], _ b: [T]) -> [Double] {
        zip(a, b).map { Double($0) + Double($1) }
    }

    /// The mean of each (b, c) plane.
    public static func globalAveragePoolForward<T: BinaryFloatingPoint>(_ s: FeatureMapShape, input: [T]) -> [Double] {
        (0..<(s.batch * s.channels)).map { i in
            (0..<s.planeSize).reduce(0.0) { $0 + Double(input[i * s.planeSize + $1]) } / Double(s.planeSize)
        }
    }

    /// gradOutput[b,c]/(H·W) at every pixel of plane (b, c).
    public static func globalAveragePoolBackward<T: BinaryFloatingPoint>(_ s: FeatureMapShape, gradOutput: [T])
        -> [Double]
    {
        (0..<s.count).map { Double(gradOutput[$0 / s.planeSize]) / Double(s.planeSize) }
    }
}

/// One BatchNorm's random arguments, seeded: an input with an offset and a
/// spread per channel unlike 0 and 1 (so that normalising does something),
/// γ in [0.5, 1.5], running variances in [0.7, 1.3], and an output gradient.
public struct BatchNormCase {
    public let shape: BatchNormShape
    public let input: [Float], gamma: [Float], beta: [Float], runningMean: [Float], runningVar: [Float]
    public var gradOutput: [Float]

    public init(_ shape: BatchNormShape, seed: UInt64) {
        self.shape = shape
        input = randomFloats(shape.count, seed: seed).enumerated().map { i, v in
            v * 2.5 + Float((i / shape.map.planeSize) % shape.channels) * 0.75 - 1
        }
        gamma = randomFloats(shape.channels, seed: seed + 1).map { 1 + 0.5 * $0 }
        beta = randomFloats(shape.channels, scale: 0.5, seed: seed + 2)
        runningMean = randomFloats(shape.channels, scale: 0.2, seed: seed + 3)
        runningVar = randomFloats(shape.channels, scale: 0.3, seed: seed + 4).map { 1 + $0 }
        gradOutput = randomFloats(shape.count, seed: seed + 5)
    }
}
