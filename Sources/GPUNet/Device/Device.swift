import Foundation
import NetIO

/// A compute device: the operations a TinyConvNet training step needs.
///
/// Two implementations answer it: ``HostDevice`` (this CPU: AVX2/FMA C
/// kernels chosen at run time, OpenBLAS for the matrix products, Swift for
/// the rest) and ``OpenCLDevice`` (any OpenCL platform: a GPU, or PoCL on
/// the CPU). Every
/// operation is defined by its CPU reference in `HostDevice`; `GPUNetTests`
/// runs each operation on every available device and compares (forward
/// outputs within 1e-4 absolute, gradients within 1e-4 of their tensor's
/// largest magnitude).
///
/// Conventions, for every operation:
/// - tensors are float32, row-major; activations are NCHW;
/// - an operation *overwrites* its outputs (nothing accumulates unless said);
/// - an operation may be queued: results are visible to the host after
///   ``download(_:)`` (which waits) or ``finish()``;
/// - buffers passed to an operation belong to that device.
///
/// Operations on one device run in the order they are issued.
public protocol Device: AnyObject {
    /// What this device is, for listings and reports.
    var info: DeviceInfo { get }

    // MARK: Buffers

    /// A new buffer of `count` elements of `kind`, zero-filled.
    func makeBuffer(count: Int, kind: ElementKind) throws -> Buffer
    /// Copies `values` into `buffer` (`values.count == buffer.count`).
    func upload(_ values: UnsafeBufferPointer<Float>, to buffer: Buffer) throws
    func upload(_ values: UnsafeBufferPointer<Int32>, to buffer: Buffer) throws
    /// Copies bytes into a ``ElementKind/uint8`` buffer (a dataset's pixels
    /// and labels, uploaded once for ``gatherBatch(_:pixels:labels:order:images:batchLabels:)``).
    func upload(_ values: UnsafeBufferPointer<UInt8>, to buffer: Buffer) throws
    /// Waits for queued work, then copies `buffer` out.
    func download(_ buffer: Buffer, into values: UnsafeMutableBufferPointer<Float>) throws
    func download(_ buffer: Buffer, into values: UnsafeMutableBufferPointer<Int32>) throws
    /// Queues a copy of a float buffer to the host behind the work queued so
    /// far and returns without waiting; ``PendingDownload/floats()`` waits
    /// for it. Work queued afterwards may run (and overwrite the buffer)
    /// while the copy is pending: the copy holds the contents as they are
    /// when the earlier work is done. Training reads a step's loss this
    /// way, after queueing the next step, so the device never runs dry.
    func startDownload(_ buffer: Buffer) throws -> PendingDownload
    /// Sets every element of a float buffer to `value`.
    func fill(_ buffer: Buffer, value: Float) throws
    /// Copies `source` into `destination` (same count and kind).
    func copy(_ source: Buffer, to destination: Buffer) throws
    /// Waits until every queued operation has finished.
    func finish() throws

    // MARK: Linear algebra

    /// C ← α·op(A)·op(B) + β·C, row-major, op(X) = X or Xᵀ.
    /// A is (m×k) or, transposed, stored (k×m); B is (k×n) or stored (n×k).
    func gemm(_ shape: GEMMShape, a: Buffer, b: Buffer, c: Buffer) throws

    // MARK: Convolution (stride 1, no padding, no bias)

    /// Unfolds input (B,C,H,W) into columns (C·kH·kW, B·oH·oW): row
    /// `(c·kH + i)·kW + j`, column `b·oH·oW + y·oW + x` holds
    /// `input[b, c, y+i, x+j]`. The row order is PyTorch's weight flattening.
    func im2col(_ shape: ConvShape, input: Buffer, columns: Buffer) throws
    /// The adjoint of ``im2col(_:input:columns:)``: input[b,c,y+i,x+j] = Σ of
    /// the column entries that read it.
    func col2im(_ shape: ConvShape, columns: Buffer, input: Buffer) throws
    /// output (B,O,oH,oW) = Σ_{c,i,j} weight[o,c,i,j]·input[b,c,y+i,x+j].
    func conv2dForward(_ shape: ConvShape, input: Buffer, weight: Buffer, output: Buffer) throws
    /// gradInput (B,C,H,W) = ∂L/∂input given gradOutput (B,O,oH,oW).
    func conv2dBackwardData(_ shape: ConvShape, gradOutput: Buffer, weight: Buffer, gradInput: Buffer) throws
    /// gradWeight (O,C,kH,kW) = Σ_b ∂L/∂weight given gradOutput.
    func conv2dBackwardWeight(_ shape: ConvShape, input: Buffer, gradOutput: Buffer, gradWeight: Buffer) throws

    // MARK: Convolution followed by a 2×2 max-pool (what training runs)
    //
    // A max-pool passes each window's gradient to its winner only, so the
    // gradient of a pooled convolution's output is zero at three pixels of
    // four (more where the floor mode drops a row or column). These three
    // operations use the pool's winners directly: the conv output is never
    // stored in training, and the backward passes skip the zeros, a quarter
    // of the dense passes' arithmetic. Each equals the dense composition it
    // replaces (tests hold both to naive float64 loops).

    /// pooled (B,O,oH/2,oW/2) and argmax = ``maxPool2Forward(_:input:output:argmax:)``
    /// of ``conv2dForward(_:input:weight:output:)``, without storing the
    /// convolution's output; argmax indexes the (oH, oW) output plane.
    /// With `relu`, pooled is then ``reluForward(count:input:output:)`` of
    /// that (the same numbers as a ReLU before the pool, ReLU being
    /// monotone), in the same pass: no separate launch or read of pooled.
    func conv2dMaxPool2Forward(
        _ shape: ConvShape, input: Buffer, weight: Buffer,
        pooled: Buffer, argmax: Buffer, relu: Bool) throws
    /// ``conv2dBackwardWeight(_:input:gradOutput:gradWeight:)`` for the output
    /// gradient `gradient` describes: gradWeight[o,c,i,j] =
    /// Σ_{b,q} g[b,o,q]·input[b,c,y_q+i,x_q+j], (y_q, x_q) the winner of window q.
    func conv2dBackwardWeight(
        _ shape: ConvShape, input: Buffer, pooledGradient gradient: PooledGradient,
        gradWeight: Buffer) throws
    /// ``conv2dBackwardData(_:gradOutput:weight:gradInput:)`` for the output
    /// gradient `gradient` describes: gradInput[b,c,Y,X] =
    /// Σ_{o,q,i,j: y_q+i = Y, x_q+j = X} g[b,o,q]·weight[o,c,i,j].
    func conv2dBackwardData(
        _ shape: ConvShape, pooledGradient gradient: PooledGradient, weight: Buffer,
        gradInput: Buffer) throws

    // MARK: Elementwise and pooling

    /// output = input where input > 0, else 0; a NaN passes through (as in
    /// PyTorch), so that a diverging run shows in its loss.
    func reluForward(count: Int, input: Buffer, output: Buffer) throws
    /// gradInput = gradOutput where output > 0, else 0.
    func reluBackward(count: Int, output: Buffer, gradOutput: Buffer, gradInput: Buffer) throws
    /// 2×2 max-pool, stride 2, floor mode (an odd last row/column is
    /// dropped, as PyTorch does). `argmax` (int32, one per output) holds the
    /// flat index `y·W + x` of the winner within its (b,c) plane; ties go to
    /// the first in row-major order.
    func maxPool2Forward(_ shape: PoolShape, input: Buffer, output: Buffer, argmax: Buffer) throws
    /// gradInput = gradOutput routed to each argmax, zero elsewhere.
    func maxPool2Backward(_ shape: PoolShape, gradOutput: Buffer, argmax: Buffer, gradInput: Buffer) throws

    // MARK: Linear layer

    /// output (B,out) = input (B,in) · weightᵀ + bias, weight (out,in).
    func linearForward(_ shape: LinearShape, input: Buffer, weight: Buffer, bias: Buffer, output: Buffer) throws
    /// gradWeight = gradOutputᵀ·input, gradBias = Σ_b gradOutput,
    /// gradInput = gradOutput·weight (skipped when nil).
    func linearBackward(
        _ shape: LinearShape, input: Buffer, weight: Buffer, gradOutput: Buffer,
        gradInput: Buffer?, gradWeight: Buffer, gradBias: Buffer) throws

    // MARK: Loss

    /// Softmax cross-entropy over (batch, classes) logits and int32 labels.
    /// gradLogits = (softmax − onehot)/batch, the gradient of the mean loss.
    /// `perSample` (float, 2·batch): [0, batch) the loss of each sample,
    /// [batch, 2·batch) 1 where argmax(logits) == label else 0 (ties: first).
    func softmaxCrossEntropy(
        batch: Int, classes: Int, logits: Buffer, labels: Buffer,
        gradLogits: Buffer, perSample: Buffer) throws

    // MARK: Optimisers (PyTorch's update rules)

    //
    // Each takes every tensor of a model at once, so that a device that
    // launches kernels updates several tensors per launch (OpenCL: four; a
    // step's four separate launches cost ~0.02 ms more on PoCL here).

    /// For each tensor, PyTorch's SGD (dampening 0): d = grad + λ·param;
    /// velocity = μ·velocity + d; param −= lr·(nesterov ? d + μ·velocity : velocity),
    /// with lr, μ, λ and Nesterov in `step`.
    func sgdMomentumStep(_ tensors: [MomentumTensor], step: SGDStep) throws
    /// For each tensor: m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²;
    /// param −= lr·(m/c₁)/(√(v/c₂) + ε) with cᵢ = 1 − βᵢᵗ (given in `step`).
    func adamStep(_ tensors: [AdamTensor], step: AdamStep) throws

    // MARK: Batches from a data set kept on the device

    /// Gathers and normalises one batch from a data set stored on the device
    /// as bytes. For k in 0..<B (B = `shape.range.count`, P = `shape.imageSize`),
    /// with n = order[shape.range.lowerBound + k], for a plain shape (one
    /// channel, ``Augmentation/none``):
    ///
    ///     images[k·P + p] = Float(pixels[n·P + p])·scale − shift   (p in 0..<P)
    ///     batchLabels[k]  = Int32(labels[n])
    ///
    /// in float32, the product rounded before the difference (no fused
    /// multiply-add), which is how ``NetIO/Dataset/normalizeImages(_:into:)``
    /// computes it: the result equals the host's normalised images bit for
    /// bit. With C channel planes of H×W, pixel p of an image belongs to
    /// channel c = p / (H·W) and uses scales[c] and shifts[c] (again bit for
    /// bit `normalizeImages`); with an augmentation, image k is first
    /// cropped from zero padding and maybe flipped, as ``Augmentation``
    /// defines, with the choice ``AugmentationChoice`` makes for position
    /// shape.range.lowerBound + k of the order. `pixels` and `labels` are
    /// ``ElementKind/uint8`` buffers of a set's count·P and count bytes, `order` an int32 buffer of indices
    /// into the set (an epoch's permutation, uploaded once per epoch), and
    /// `images` (B·P floats) and `batchLabels` (B int32) the batch's input.
    /// An index outside 0..<count is an error: the host throws; a kernel
    /// cannot, so OpenCL writes NaN pixels and label −1 for it instead of
    /// reading out of bounds (a NaN loss then ends training).
    func gatherBatch(
        _ shape: BatchGatherShape, pixels: Buffer, labels: Buffer, order: Buffer,
        images: Buffer, batchLabels: Buffer) throws

    // MARK: Layers of residual networks
    //
    // What deeper networks add to TinyConvNet's operations: the general
    // convolution (stride, zero padding, bias; a ``Conv2dShape``, so that the
    // stride-1 operations above and TinyConvNet's fused kernels never see
    // it), batch normalisation, the residual sum and the global average
    // pool. Each is defined by its float64 loops in
    // `Tests/TestSupport/NaiveReferenceResNet.swift`.

    /// output[b,o,y,x] = bias[o] + Σ_{c,i,j} weight[o,c,i,j]·input[b,c,y·s+i−p,x·s+j−p]
    /// (s the stride, p the padding, input zero outside the image; no bias
    /// term when `bias` is nil). input (B,C,H,W), weight (O,C,kH,kW), bias (O),
    /// output (B,O,oH,oW).
    func conv2dForward(_ shape: Conv2dShape, input: Buffer, weight: Buffer, bias: Buffer?, output: Buffer) throws
    /// gradInput[b,c,Y,X] = Σ gradOutput[b,o,y,x]·weight[o,c,i,j] over every
    /// (o,y,x,i,j) with Y = y·s+i−p and X = x·s+j−p: the adjoint of the
    /// forward in its input.
    func conv2dBackwardData(_ shape: Conv2dShape, gradOutput: Buffer, weight: Buffer, gradInput: Buffer) throws
    /// gradWeight[o,c,i,j] = Σ_{b,y,x} gradOutput[b,o,y,x]·input[b,c,y·s+i−p,x·s+j−p]
    /// and, unless `gradBias` is nil, gradBias[o] = Σ_{b,y,x} gradOutput[b,o,y,x].
    func conv2dBackwardWeight(
        _ shape: Conv2dShape, input: Buffer, gradOutput: Buffer, gradWeight: Buffer, gradBias: Buffer?) throws

    /// BatchNorm2d as PyTorch defines it, over input (B,C,H,W) with N = B·H·W
    /// values per channel: output = (input − μ_c)·σ_c·γ_c + β_c.
    ///
    /// Training: μ_c and the biased variance v_c of the batch, σ_c =
    /// 1/√(v_c + ε); then runningMean ← (1−m)·runningMean + m·μ and
    /// runningVar ← (1−m)·runningVar + m·v·N/(N−1) (m = `shape.momentum`; N = 1
    /// is an error, as in PyTorch). Eval: μ = runningMean, σ = 1/√(runningVar + ε),
    /// the running statistics unchanged. `saved` (2·C floats) receives μ in
    /// [0, C) and σ in [C, 2C), what ``batchNormBackward(_:input:gamma:saved:gradOutput:gradInput:gradGamma:gradBeta:training:)``
    /// needs. Every sum is taken in a fixed order: equal inputs give equal
    /// results on every run of a device.
    func batchNormForward(
        _ shape: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, runningMean: Buffer,
        runningVar: Buffer, saved: Buffer, output: Buffer, training: Bool) throws
    /// The gradients of ``batchNormForward(_:input:gamma:beta:runningMean:runningVar:saved:output:training:)``
    /// with x̂ = (input − μ)·σ from `saved`: gradBeta_c = Σ dy, gradGamma_c = Σ dy·x̂,
    /// and gradInput = γ·σ·(dy − (gradBeta + x̂·gradGamma)/N) in training
    /// (PyTorch's formula: μ and σ depend on the batch), γ·σ·dy in eval.
    func batchNormBackward(
        _ shape: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, gradOutput: Buffer,
        gradInput: Buffer, gradGamma: Buffer, gradBeta: Buffer, training: Bool) throws

    /// output = a + b, elementwise over `count` floats: a residual block's
    /// sum. `output` may be `a` or `b`. Its backward passes the gradient to
    /// both inputs unchanged; where a gradient has two paths (a block's
    /// input feeds the shortcut and the convolutions) this adds them.
    func residualAdd(count: Int, _ a: Buffer, _ b: Buffer, output: Buffer) throws
    /// output (B,C) = the mean of each (b,c) plane of input (B,C,H,W).
    func globalAveragePoolForward(_ shape: FeatureMapShape, input: Buffer, output: Buffer) throws
    /// gradInput[b,c,y,x] = gradOutput[b,c]/(H·W).
    func globalAveragePoolBackward(_ shape: FeatureMapShape, gradOutput: Buffer, gradInput: Buffer) throws
}

/// The element type of a ``Buffer``.
public enum ElementKind: String, Sendable {
    /// Four bytes each.
    case float32, int32
    /// One byte each: pixels and labels of a data set on the device.
    case uint8

    /// Bytes per element.
    public var size: Int { self == .uint8 ? 1 : 4 }
}

/// Storage on a ``Device``. Each device subclasses it; a buffer is used only
/// with the device that made it.
open class Buffer {
    public let count: Int
    public let kind: ElementKind
    public init(count: Int, kind: ElementKind) {
        self.count = count
        self.kind = kind
    }
    public var byteCount: Int { count * kind.size }
}

/// C ← α·op(A)·op(B) + β·C with op(A) m×k, op(B) k×n, C m×n, row-major.
public struct GEMMShape: Hashable, Sendable, CustomStringConvertible {
    public var m: Int, n: Int, k: Int
    public var transposeA: Bool, transposeB: Bool
    public var alpha: Float, beta: Float
    public init(
        m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false,
        alpha: Float = 1, beta: Float = 0
    ) {
        self.m = m
        self.n = n
        self.k = k
        self.transposeA = transposeA
        self.transposeB = transposeB
        self.alpha = alpha
        self.beta = beta
    }
    /// 2·m·n·k: the multiply-adds of the product.
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    public var description: String {
        "\(m)×\(n)×\(k)\(transposeA ? " Aᵀ" : "")\(transposeB ? " Bᵀ" : "")"
    }
}

/// A stride-1, unpadded convolution: input (B,C,H,W), weight (O,C,kH,kW),
/// output (B,O,H−kH+1,W−kW+1).
public struct ConvShape: Hashable, Sendable {
    public var batch: Int, inChannels: Int, outChannels: Int
    public var height: Int, width: Int
    public var kernelHeight: Int, kernelWidth: Int
    public init(
        batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int,
        kernelHeight: Int = 3, kernelWidth: Int = 3
    ) {
        self.batch = batch
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.height = height
        self.width = width
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
    }
    public var outHeight: Int { height - kernelHeight + 1 }
    public var outWidth: Int { width - kernelWidth + 1 }
    /// C·kH·kW: the length of one patch, the columns' row count.
    public var patchSize: Int { inChannels * kernelHeight * kernelWidth }
    /// B·oH·oW: the number of patches, the columns' column count.
    public var patchCount: Int { batch * outHeight * outWidth }
    public var inputCount: Int { batch * inChannels * height * width }
    public var outputCount: Int { batch * outChannels * outHeight * outWidth }
    public var weightCount: Int { outChannels * patchSize }
    /// 2·O·patchSize·patchCount: one forward pass (each backward pass is the same).
    public var flops: Double { 2 * Double(outChannels) * Double(patchSize) * Double(patchCount) }
}

/// 2×2, stride-2 max-pooling of (B,C,H,W) to (B,C,H/2,W/2), floor mode.
public struct PoolShape: Hashable, Sendable {
    public var batch: Int, channels: Int, height: Int, width: Int
    public init(batch: Int, channels: Int, height: Int, width: Int) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
    }
    public var outHeight: Int { height / 2 }
    public var outWidth: Int { width / 2 }
    public var inputCount: Int { batch * channels * height * width }
    public var outputCount: Int { batch * channels * outHeight * outWidth }
}

/// The gradient of a convolution's output (B,O,oH,oW) when a 2×2 max-pool
/// follows it: `values[b,o,q]` at the winner `argmax[b,o,q]` (a flat
/// `y·oW + x` in the output plane, as ``Device/maxPool2Forward(_:input:output:argmax:)``
/// writes it) of each pool window q, zero at every other pixel; with
/// `reluOutput`, also zero where `reluOutput[b,o,q]` ≤ 0.
public struct PooledGradient {
    /// The pool over the convolution's output: (B, O, oH, oW) → (B, O, oH/2, oW/2).
    public var pool: PoolShape
    /// ∂L/∂pooled, (B, O, oH/2, oW/2).
    public var values: Buffer
    /// The pool's winners (int32), (B, O, oH/2, oW/2).
    public var argmax: Buffer
    /// When a ReLU follows the pool (``Device/conv2dMaxPool2Forward(_:input:weight:pooled:argmax:relu:)``
    /// with `relu`), its output, (B, O, oH/2, oW/2): `values` is then the
    /// gradient of the ReLU's output and passes where this is > 0, as
    /// ``Device/reluBackward(count:output:gradOutput:gradInput:)`` would
    /// pass it, fused into the backward passes. nil: `values` is ∂L/∂pooled.
    public var reluOutput: Buffer?
    public init(pool: PoolShape, values: Buffer, argmax: Buffer, reluOutput: Buffer? = nil) {
        self.pool = pool
        self.values = values
        self.argmax = argmax
        self.reluOutput = reluOutput
    }
    /// True when `pool` is the pool over `conv`'s output.
    public func matches(_ conv: ConvShape) -> Bool {
        pool.batch == conv.batch && pool.channels == conv.outChannels
            && pool.height == conv.outHeight && pool.width == conv.outWidth
    }
}

/// A download queued by ``Device/startDownload(_:)``.
public final class PendingDownload {
    private var wait: (() throws -> [Float])?
    private var values: [Float]?

    /// A download that `wait` completes (called at most once).
    public init(wait: @escaping () throws -> [Float]) { self.wait = wait }
    /// A download that is already complete.
    public init(values: [Float]) { self.values = values }

    /// Waits for the copy, then returns the buffer's contents.
    public func floats() throws -> [Float] {
        if let values { return values }
        guard let wait else { preconditionFailure("PendingDownload: an earlier wait failed") }
        self.wait = nil
        let result = try wait()
        values = result
        return result
    }
}

/// A fully connected layer: input (B,in), weight (out,in), bias (out).
public struct LinearShape: Hashable, Sendable {
    public var batch: Int, inFeatures: Int, outFeatures: Int
    public init(batch: Int, inFeatures: Int, outFeatures: Int) {
        self.batch = batch
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
    }
    public var flops: Double { 2 * Double(batch) * Double(inFeatures) * Double(outFeatures) }
}

/// A tensor that ``Device/adamStep(_:step:)`` updates: the first `count`
/// floats of each buffer (four distinct buffers).
public struct AdamTensor {
    public var count: Int
    public var parameter: Buffer, gradient: Buffer, m: Buffer, v: Buffer
    public init(count: Int, parameter: Buffer, gradient: Buffer, m: Buffer, v: Buffer) {
        self.count = count
        self.parameter = parameter
        self.gradient = gradient
        self.m = m
        self.v = v
    }
}

/// A tensor that ``Device/sgdMomentumStep(_:step:)``
/// updates: the first `count` floats of each buffer (three distinct buffers).
public struct MomentumTensor {
    public var count: Int
    public var parameter: Buffer, gradient: Buffer, velocity: Buffer
    public init(count: Int, parameter: Buffer, gradient: Buffer, velocity: Buffer) {
        self.count = count
        self.parameter = parameter
        self.gradient = gradient
        self.velocity = velocity
    }
}

/// One SGD update's hyper-parameters, as PyTorch's `torch.optim.SGD` names
/// them (dampening 0). With `weightDecay` 0 and `nesterov` false the update
/// is velocity = μ·velocity + grad, param −= lr·velocity, bit for bit: the
/// decay term adds an exact zero.
public struct SGDStep: Hashable, Sendable {
    public var learningRate: Float, momentum: Float
    /// Nesterov momentum: the step is d + μ·velocity rather than velocity.
    public var nesterov: Bool
    /// L2 weight decay λ, added to the gradient as λ·param.
    public var weightDecay: Float
    public init(learningRate: Float, momentum: Float, nesterov: Bool = false, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }
}

/// One Adam update's hyper-parameters, bias corrections included
/// (computed on the host in Double so that no device round trip is needed).
public struct AdamStep: Hashable, Sendable {
    public var learningRate: Float, beta1: Float, beta2: Float, epsilon: Float
    /// 1 − β₁ᵗ and 1 − β₂ᵗ for the step t (1-based).
    public var correction1: Float, correction2: Float
    public init(
        learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
        epsilon: Float = 1e-8, step t: Int
    ) {
        precondition(t >= 1, "Adam steps count from 1")
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        correction1 = Float(1 - pow(Double(beta1), Double(t)))
        correction2 = Float(1 - pow(Double(beta2), Double(t)))
    }
}

/// One batch of ``Device/gatherBatch(_:pixels:labels:order:images:batchLabels:)``:
/// the set's size, which slice of the order it takes, the image's geometry,
/// the per-channel normalisation and the augmentation.
public struct BatchGatherShape: Hashable, Sendable {
    /// Images in the set (the length of its labels; pixels hold count·imageSize bytes).
    public var count: Int
    /// Pixels per image, channels·rows·columns (784 for MNIST, 3,072 for CIFAR-10).
    public var imageSize: Int
    /// Positions in the order buffer: the batch is order[range].
    public var range: Range<Int>
    /// Channel c's bytes x ↦ x·scales[c] − shifts[c] (one entry per channel,
    /// ``NetIO/Normalization/pixelScales`` and ``NetIO/Normalization/pixelShifts``).
    public var scales: [Float], shifts: [Float]
    /// A channel plane's rows and columns. Only an augmentation reads them;
    /// ``init(count:imageSize:range:scale:shift:)`` sets 1 × imageSize.
    public var rows: Int, columns: Int
    /// What is done to each image before it is normalised (``Augmentation``).
    public var augmentation: Augmentation
    /// The crop's zero padding p (offsets in 0…2p); read only when ``augmentation`` crops.
    public var padding: Int
    /// The run's seed and the epoch: with each image's position in the
    /// order they pick its crop and flip (``AugmentationChoice``).
    public var seed: UInt64, epoch: Int

    /// One channel, no augmentation; MNIST's normalisation by default
    /// (``NetIO/Dataset/pixelScale`` and ``NetIO/Dataset/pixelShift``, the
    /// constants the host uses).
    public init(
        count: Int, imageSize: Int, range: Range<Int>,
        scale: Float = Dataset.pixelScale, shift: Float = Dataset.pixelShift
    ) {
        self.count = count
        self.imageSize = imageSize
        self.range = range
        scales = [scale]
        shifts = [shift]
        rows = 1
        columns = imageSize
        augmentation = .none
        padding = 0
        seed = 0
        epoch = 0
    }

    /// Images of `scales.count` channel planes of rows×columns, normalised
    /// per channel and augmented with `augmentation` (padding: by default
    /// ``Augmentation/padding(rows:columns:)``; 0 whatever is given when
    /// the augmentation does not crop).
    public init(
        count: Int, rows: Int, columns: Int, range: Range<Int>, scales: [Float], shifts: [Float],
        augmentation: Augmentation = .none, padding: Int? = nil, seed: UInt64 = 0, epoch: Int = 0
    ) {
        self.count = count
        imageSize = scales.count * rows * columns
        self.range = range
        self.scales = scales
        self.shifts = shifts
        self.rows = rows
        self.columns = columns
        self.augmentation = augmentation
        self.padding = augmentation.crops ? padding ?? Augmentation.padding(rows: rows, columns: columns) : 0
        self.seed = seed
        self.epoch = epoch
    }

    /// ``init(count:rows:columns:range:scales:shifts:augmentation:padding:seed:epoch:)``
    /// with a set's normalisation (one channel per entry).
    public init(
        count: Int, rows: Int, columns: Int, range: Range<Int>, normalization: Normalization,
        augmentation: Augmentation = .none, padding: Int? = nil, seed: UInt64 = 0, epoch: Int = 0
    ) {
        self.init(
            count: count, rows: rows, columns: columns, range: range, scales: normalization.pixelScales,
            shifts: normalization.pixelShifts, augmentation: augmentation, padding: padding, seed: seed,
            epoch: epoch)
    }

    /// Colour planes per image.
    public var channels: Int { scales.count }
    /// The first channel's scale and shift: a one-channel shape's x ↦ x·scale − shift.
    public var scale: Float {
        get { scales[0] }
        set { scales[0] = newValue }
    }
    public var shift: Float {
        get { shifts[0] }
        set { shifts[0] = newValue }
    }
    /// Images in the batch.
    public var batch: Int { range.count }
    /// Floats in the batch's images.
    public var outputCount: Int { range.count * imageSize }
    /// Whether this is the plain one-channel gather (scale, shift, no augmentation).
    public var isPlain: Bool { scales.count == 1 && augmentation == .none }
    /// ``AugmentationChoice/key(seed:epoch:)`` of this batch's epoch.
    public var augmentationKey: UInt32 { AugmentationChoice.key(seed: seed, epoch: epoch) }
    /// The choice for the image at position k of the batch (order[range.lowerBound + k]).
    public func choice(_ k: Int) -> AugmentationChoice {
        guard augmentation.crops else { return AugmentationChoice(dy: 0, dx: 0, flip: false) }
        return AugmentationChoice(
            key: augmentationKey, position: range.lowerBound + k, padding: padding, flips: augmentation.flips)
    }
    /// The largest padding a shape may ask for (2p + 1 times a 16-bit half fits in 32 bits).
    public static let maximumPadding = 4096

    /// Why the shape is not one a device can gather, or nil: counts,
    /// geometry, normalisation and padding checked together.
    public var problem: String? {
        if count < 0 || range.lowerBound < 0 { return "count \(count), range \(range)" }
        if scales.isEmpty || scales.count != shifts.count {
            return "\(scales.count) scales and \(shifts.count) shifts (one each per channel)"
        }
        if rows < 1 || columns < 1 || channels * rows * columns != imageSize {
            return "image size \(imageSize) is not \(channels) channels × \(rows) × \(columns)"
        }
        if padding < 0 || padding > Self.maximumPadding || (!augmentation.crops && padding != 0) {
            return
                "padding \(padding) with augmentation \(augmentation.rawValue) (0…\(Self.maximumPadding) when cropping)"
        }
        return nil
    }
}
