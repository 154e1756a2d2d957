import Foundation
import GPUNet

/// Plain, obviously-correct float64 loops for every operation of GPUNet's
/// `Device` protocol: the independent reference every device is tested against.
///
/// Each function takes `[Float]` or `[Double]` inputs, converts them to
/// `Double` once, and computes every sum in float64 with the most direct loop
/// nest the definition allows (convolutions are direct sums, not im2col). No
/// attempt at speed beyond avoiding generics in the inner loops.
/// Layouts are those documented in `Device.swift`: row-major, NCHW.
public enum NaiveReference {
    // MARK: Linear algebra

    /// C ← α·op(A)·op(B) + β·C, row-major. A is stored (m×k), or (k×m) when
    /// transposed; B is stored (k×n), or (n×k) when transposed; `c` is the
    /// initial C (m×n), read only when β ≠ 0.
    public static func gemm<T: BinaryFloatingPoint>(_ shape: GEMMShape, a: [T], b: [T], c: [T]) -> [Double] {
        let (m, n, k) = (shape.m, shape.n, shape.k)
        precondition(
            a.count == m * k && b.count == k * n && c.count == m * n,
            "NaiveReference.gemm \(shape): a \(a.count), b \(b.count), c \(c.count) elements")
        let a = doubles(a)
        let b = doubles(b)
        let c = doubles(c)
        let alpha = Double(shape.alpha)
        let beta = Double(shape.beta)
        var result = [Double](repeating: 0, count: m * n)
        for row in 0..<m {
            for col in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let aValue = shape.transposeA ? a[p * m + row] : a[row * k + p]
                    let bValue = shape.transposeB ? b[col * k + p] : b[p * n + col]
                    sum += aValue * bValue
                }
                // β = 0 ignores C entirely (as BLAS does), so NaN/garbage there does not leak.
                result[row * n + col] = alpha * sum + (beta == 0 ? 0 : beta * c[row * n + col])
            }
        }
        return result
    }

    // MARK: Convolution (stride 1, no padding)

    /// Columns (C·kH·kW, B·oH·oW): row (c·kH + i)·kW + j, column
    /// b·oH·oW + y·oW + x holds input[b, c, y+i, x+j].
    public static func im2col<T: BinaryFloatingPoint>(_ s: ConvShape, input: [T]) -> [Double] {
        precondition(input.count == s.inputCount, "NaiveReference.im2col: input \(input.count) ≠ \(s.inputCount)")
        let input = doubles(input)
        let (oH, oW) = (s.outHeight, s.outWidth)
        var columns = [Double](repeating: 0, count: s.patchSize * s.patchCount)
        for c in 0..<s.inChannels {
            for i in 0..<s.kernelHeight {
                for j in 0..<s.kernelWidth {
                    let row = (c * s.kernelHeight + i) * s.kernelWidth + j
                    for b in 0..<s.batch {
                        for y in 0..<oH {
                            for x in 0..<oW {
                                let column = b * oH * oW + y * oW + x
                                columns[row * s.patchCount + column] =
                                    input[inputIndex(s, b, c, y + i, x + j)]
                            }
                        }
                    }
                }
            }
        }
        return columns
    }

    /// The adjoint of ``im2col(_:input:)``: each input element is the sum of
    /// the column entries that read it.
    public static func col2im<T: BinaryFloatingPoint>(_ s: ConvShape, columns: [T]) -> [Double] {
        precondition(
            columns.count == s.patchSize * s.patchCount,
            "NaiveReference.col2im: columns \(columns.count) ≠ \(s.patchSize * s.patchCount)")
        let columns = doubles(columns)
        let (oH, oW) = (s.outHeight, s.outWidth)
        var input = [Double](repeating: 0, count: s.inputCount)
        for c in 0..<s.inChannels {
            for i in 0..<s.kernelHeight {
                for j in 0..<s.kernelWidth {
                    let row = (c * s.kernelHeight + i) * s.kernelWidth + j
                    for b in 0..<s.batch {
                        for y in 0..<oH {
                            for x in 0..<oW {
                                let column = b * oH * oW + y * oW + x
                                input[inputIndex(s, b, c, y + i, x + j)] += columns[row * s.patchCount + column]
                            }
                        }
                    }
                }
            }
        }
        return input
    }

    /// output[b,o,y,x] = Σ_{c,i,j} weight[o,c,i,j]·input[b,c,y+i,x+j] (direct sum).
    public static func conv2dForward<T: BinaryFloatingPoint>(_ s: ConvShape, input: [T], weight: [T]) -> [Double] {
        precondition(
            input.count == s.inputCount && weight.count == s.weightCount,
            "NaiveReference.conv2dForward: input \(input.count)/\(s.inputCount), weight \(weight.count)/\(s.weightCount)"
        )
        let input = doubles(input)
        let weight = doubles(weight)
        var output = [Double](repeating: 0, count: s.outputCount)
        for b in 0..<s.batch {
            for o in 0..<s.outChannels {
                for y in 0..<s.outHeight {
                    for x in 0..<s.outWidth {
                        var sum = 0.0
                        for c in 0..<s.inChannels {
                            for i in 0..<s.kernelHeight {
                                for j in 0..<s.kernelWidth {
                                    sum += weight[weightIndex(s, o, c, i, j)] * input[inputIndex(s, b, c, y + i, x + j)]
                                }
                            }
                        }
                        output[outputIndex(s, b, o, y, x)] = sum
                    }
                }
            }
        }
        return output
    }

    /// gradInput[b,c,y+i,x+j] = Σ over every (o,y,x,i,j) that reads it of
    /// gradOutput[b,o,y,x]·weight[o,c,i,j] (the forward sum, scattered back).
    public static func conv2dBackwardData<T: BinaryFloatingPoint>(_ s: ConvShape, gradOutput: [T], weight: [T])
        -> [Double]
    {
        precondition(
            gradOutput.count == s.outputCount && weight.count == s.weightCount,
            "NaiveReference.conv2dBackwardData: gradOutput \(gradOutput.count)/\(s.outputCount), weight \(weight.count)/\(s.weightCount)"
        )
        let gradOutput = doubles(gradOutput)
        let weight = doubles(weight)
        var gradInput = [Double](repeating: 0, count: s.inputCount)
        for b in 0..<s.batch {
            for o in 0..<s.outChannels {
                for y in 0..<s.outHeight {
                    for x in 0..<s.outWidth {
                        let g = gradOutput[outputIndex(s, b, o, y, x)]
                        for c in 0..<s.inChannels {
                            for i in 0..<s.kernelHeight {
                                for j in 0..<s.kernelWidth {
                                    gradInput[inputIndex(s, b, c, y + i, x + j)] +=
                                        g * weight[weightIndex(s, o, c, i, j)]
                                }
                            }
                        }
                    }
                }
            }
        }
        return gradInput
    }

    /// gradWeight[o,c,i,j] = Σ_{b,y,x} gradOutput[b,o,y,x]·input[b,c,y+i,x+j].
    public static func conv2dBackwardWeight<T: BinaryFloatingPoint>(_ s: ConvShape, input: [T], gradOutput: [T])
        -> [Double]
    {
        precondition(
            input.count == s.inputCount && gradOutput.count == s.outputCount,
            "NaiveReference.conv2dBackwardWeight: input \(input.count)/\(s.inputCount), gradOutput \(gradOutput.count)/\(s.outputCount)"
        )
        let input = doubles(input)
        let gradOutput = doubles(gradOutput)
        var gradWeight = [Double](repeating: 0, count: s.weightCount)
        for o in 0..<s.outChannels {
            for c in 0..<s.inChannels {
                for i in 0..<s.kernelHeight {
                    for j in 0..<s.kernelWidth {
                        var sum = 0.0
                        for b in 0..<s.batch {
                            for y in 0..<s.outHeight {
                                for x in 0..<s.outWidth {
                                    sum +=
                                        gradOutput[outputIndex(s, b, o, y, x)]
                                        * input[inputIndex(s, b, c, y + i, x + j)]
                                }
                            }
                        }
                        gradWeight[weightIndex(s, o, c, i, j)] = sum
                    }
                }
            }
        }
        return gradWeight
    }

    // MARK: Elementwise

    /// output = max(input, 0); NaN stays NaN (as PyTorch's relu).
    public static func reluForward<T: BinaryFloatingPoint>(_ input: [T]) -> [Double] {
        doubles(input).map { $0 > 0 || $0.isNaN ? $0 : 0 }
    }

    /// gradInput = gradOutput where output > 0, else 0.
    public static func reluBackward<T: BinaryFloatingPoint>(output: [T], gradOutput: [T]) -> [Double] {
        precondition(
            output.count == gradOutput.count, "NaiveReference.reluBackward: \(output.count) vs \(gradOutput.count)")
        let output = doubles(output)
        let gradOutput = doubles(gradOutput)
        return (0..<output.count).map { output[$0] > 0 ? gradOutput[$0] : 0 }
    }

    // MARK: Pooling

    /// 2×2, stride-2 max-pool, floor mode. `argmax` is the flat index y·W + x
    /// of the winner within its (b,c) plane of the input; ties go to the
    /// first in row-major order (a later candidate must be strictly larger).
    public static func maxPool2Forward<T: BinaryFloatingPoint>(_ s: PoolShape, input: [T]) -> (
        output: [Double], argmax: [Int32]
    ) {
        precondition(
            input.count == s.inputCount, "NaiveReference.maxPool2Forward: input \(input.count) ≠ \(s.inputCount)")
        let input = doubles(input)
        var output = [Double](repeating: 0, count: s.outputCount)
        var argmax = [Int32](repeating: 0, count: s.outputCount)
        let planeSize = s.height * s.width
        for plane in 0..<(s.batch * s.channels) {
            for oy in 0..<s.outHeight {
                for ox in 0..<s.outWidth {
                    var best = -Double.infinity
                    var bestIndex = -1
                    for dy in 0..<2 {
                        for dx in 0..<2 {
                            let index = (2 * oy + dy) * s.width + (2 * ox + dx)
                            let value = input[plane * planeSize + index]
                            if bestIndex < 0 || value > best {
                                best = value
                                bestIndex = index
                            }
                        }
                    }
                    let out = (plane * s.outHeight + oy) * s.outWidth + ox
                    output[out] = best
                    argmax[out] = Int32(bestIndex)
                }
            }
        }
        return (output, argmax)
    }

    /// gradInput = gradOutput routed to each output's argmax, zero elsewhere.
    public static func maxPool2Backward<T: BinaryFloatingPoint>(_ s: PoolShape, gradOutput: [T], argmax: [Int32])
        -> [Double]
    {
        precondition(
            gradOutput.count == s.outputCount && argmax.count == s.outputCount,
            "NaiveReference.maxPool2Backward: gradOutput \(gradOutput.count), argmax \(argmax.count), want \(s.outputCount)"
        )
        let gradOutput = doubles(gradOutput)
        var gradInput = [Double](repeating: 0, count: s.inputCount)
        let planeSize = s.height * s.width
        let outPlaneSize = s.outHeight * s.outWidth
        for plane in 0..<(s.batch * s.channels) {
            for o in 0..<outPlaneSize {
                let index = Int(argmax[plane * outPlaneSize + o])
                precondition(
                    index >= 0 && index < planeSize,
                    "NaiveReference.maxPool2Backward: argmax \(index) outside the plane")
                gradInput[plane * planeSize + index] += gradOutput[plane * outPlaneSize + o]
            }
        }
        return gradInput
    }

    // MARK: Linear layer

    /// output[b,o] = Σ_i input[b,i]·weight[o,i] + bias[o].
    public static func linearForward<T: BinaryFloatingPoint>(_ s: LinearShape, input: [T], weight: [T], bias: [T])
        -> [Double]
    {
        precondition(
            input.count == s.batch * s.inFeatures && weight.count == s.outFeatures * s.inFeatures
                && bias.count == s.outFeatures, "NaiveReference.linearForward: sizes do not match \(s)")
        let input = doubles(input)
        let weight = doubles(weight)
        let bias = doubles(bias)
        var output = [Double](repeating: 0, count: s.batch * s.outFeatures)
        for b in 0..<s.batch {
            for o in 0..<s.outFeatures {
                var sum = bias[o]
                for i in 0..<s.inFeatures { sum += input[b * s.inFeatures + i] * weight[o * s.inFeatures + i] }
                output[b * s.outFeatures + o] = sum
            }
        }
        return output
    }

    /// gradInput[b,i] = Σ_o gradOutput[b,o]·weight[o,i];
    /// gradWeight[o,i] = Σ_b gradOutput[b,o]·input[b,i]; gradBias[o] = Σ_b gradOutput[b,o].
    public static func linearBackward<T: BinaryFloatingPoint>(
        _ s: LinearShape, input: [T], weight: [T], gradOutput: [T]
    )
        -> (gradInput: [Double], gradWeight: [Double], gradBias: [Double])
    {
        precondition(
            input.count == s.batch * s.inFeatures && weight.count == s.outFeatures * s.inFeatures
                && gradOutput.count == s.batch * s.outFeatures, "NaiveReference.linearBackward: sizes do not match \(s)"
        )
        let input = doubles(input)
        let weight = doubles(weight)
        let gradOutput = doubles(gradOutput)
        var gradInput = [Double](repeating: 0, count: s.batch * s.inFeatures)
        var gradWeight = [Double](repeating: 0, count: s.outFeatures * s.inFeatures)
        var gradBias = [Double](repeating: 0, count: s.outFeatures)
        for b in 0..<s.batch {
            for o in 0..<s.outFeatures {
                let g = gradOutput[b * s.outFeatures + o]
                gradBias[o] += g
                for i in 0..<s.inFeatures {
                    gradInput[b * s.inFeatures + i] += g * weight[o * s.inFeatures + i]
                    gradWeight[o * s.inFeatures + i] += g * input[b * s.inFeatures + i]
                }
            }
        }
        return (gradInput, gradWeight, gradBias)
    }

    // MARK: Loss

    /// Softmax cross-entropy of (batch, classes) logits against labels.
    public struct CrossEntropy {
        /// −log softmax(logits[b])[label[b]] for each sample.
        public var loss: [Double]
        /// 1 where the first largest logit is the label, else 0.
        public var correct: [Double]
        /// (softmax − onehot)/batch: the gradient of the mean loss.
        public var gradLogits: [Double]
        /// The device layout: losses, then correct flags (2·batch values).
        public var perSample: [Double] { loss + correct }
        /// The mean loss over the batch.
        public var meanLoss: Double { loss.reduce(0, +) / Double(loss.count) }
    }

    /// loss_b = logsumexp(z_b) − z_b[label_b], computed with the max
    /// subtracted; gradient (softmax(z_b) − onehot(label_b))/batch.
    public static func softmaxCrossEntropy<T: BinaryFloatingPoint>(
        batch: Int, classes: Int, logits: [T], labels: [Int32]
    ) -> CrossEntropy {
        precondition(
            logits.count == batch * classes && labels.count == batch,
            "NaiveReference.softmaxCrossEntropy: logits \(logits.count), labels \(labels.count) for \(batch)×\(classes)"
        )
        let logits = doubles(logits)
        var result = CrossEntropy(loss: [], correct: [], gradLogits: [Double](repeating: 0, count: batch * classes))
        for b in 0..<batch {
            let label = Int(labels[b])
            precondition(
                label >= 0 && label < classes,
                "NaiveReference.softmaxCrossEntropy: label \(label) of sample \(b) outside 0..<\(classes)")
            let row = Array(logits[(b * classes)..<((b + 1) * classes)])
            var best = 0
            for k in 1..<classes where row[k] > row[best] { best = k }
            let top = row[best]
            let sumExp = row.reduce(0.0) { $0 + exp($1 - top) }
            result.loss.append(log(sumExp) + top - row[label])
            result.correct.append(best == label ? 1 : 0)
            for k in 0..<classes {
                let p = exp(row[k] - top) / sumExp
                result.gradLogits[b * classes + k] = (p - (k == label ? 1 : 0)) / Double(batch)
            }
        }
        return result
    }

    // MARK: Optimisers

    /// PyTorch's `torch.optim.SGD` step (dampening 0), written from its
    /// documentation: d ← grad + λ·parameter; velocity ← μ·velocity + d;
    /// parameter ← parameter − lr·(nesterov ? d + μ·velocity : velocity).
    public static func sgdMomentumStep<T: BinaryFloatingPoint>(
        parameter: [T], gradient: [T], velocity: [T],
        learningRate: Double, momentum: Double, nesterov: Bool = false, weightDecay: Double = 0
    )
        -> (parameter: [Double], velocity: [Double])
    {
        precondition(
            parameter.count == gradient.count && gradient.count == velocity.count,
            "NaiveReference.sgdMomentumStep: counts \(parameter.count), \(gradient.count), \(velocity.count)")
        var p = doubles(parameter)
        var v = doubles(velocity)
        let g = doubles(gradient)
        for i in 0..<p.count {
            let d = g[i] + weightDecay * p[i]
            v[i] = momentum * v[i] + d
            p[i] -= learningRate * (nesterov ? d + momentum * v[i] : v[i])
        }
        return (p, v)
    }

    /// m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
    /// parameter ← parameter − lr·(m/c₁)/(√(v/c₂) + ε), with c₁, c₂ from `step`.
    public static func adamStep<T: BinaryFloatingPoint>(parameter: [T], gradient: [T], m: [T], v: [T], step: AdamStep)
        -> (parameter: [Double], m: [Double], v: [Double])
    {
        precondition(
            parameter.count == gradient.count && gradient.count == m.count && m.count == v.count,
            "NaiveReference.adamStep: counts \(parameter.count), \(gradient.count), \(m.count), \(v.count)")
        var p = doubles(parameter)
        var m = doubles(m)
        var v = doubles(v)
        let g = doubles(gradient)
        let beta1 = Double(step.beta1)
        let beta2 = Double(step.beta2)
        let lr = Double(step.learningRate)
        let c1 = Double(step.correction1)
        let c2 = Double(step.correction2)
        let eps = Double(step.epsilon)
        for i in 0..<p.count {
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            p[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
        }
        return (p, m, v)
    }

    // MARK: Indexing

    private static func inputIndex(_ s: ConvShape, _ b: Int, _ c: Int, _ y: Int, _ x: Int) -> Int {
        ((b * s.inChannels + c) * s.height + y) * s.width + x
    }

    private static func outputIndex(_ s: ConvShape, _ b: Int, _ o: Int, _ y: Int, _ x: Int) -> Int {
        ((b * s.outChannels + o) * s.outHeight + y) * s.outWidth + x
    }

    private static func weightIndex(_ s: ConvShape, _ o: Int, _ c: Int, _ i: Int, _ j: Int) -> Int {
        ((o * s.inChannels + c) * s.kernelHeight + i) * s.kernelWidth + j
    }

    private static func doubles<T: BinaryFloatingPoint>(_ values: [T]) -> [Double] {
        if let already = values as? [Double] { return already }
        if let floats = values as? [Float] { return floats.map(Double.init) }
        return values.map { Double($0) }
    }
}
