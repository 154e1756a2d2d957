import Foundation
import NetIO

/// A compute device: the operations a training step needs, TinyConvNet's fused
/// ones and the layers of any ``NetworkPlan``.
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
    /// Launches and host waits so far (``DeviceCounters``).
    var counters: DeviceCounters { get }

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
    /// A ring of `slots` float buffers of `floatsPerSlot` elements each in
    /// one allocation, whose runs of consecutive slots the host reads in one
    /// transfer each (``StepRecordRing``).
    func makeStepRecordRing(slots: Int, floatsPerSlot: Int) throws -> any StepRecordRing
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
    /// gradInput = gradOutput (+ addend, where one is given) where output
    /// > 0, else 0. With an addend it is the ReLU's backward pass of a
    /// gradient that arrives in two parts (a residual block's input, read by
    /// the block's body and its shortcut), one pass where the sum and the
    /// mask took two, and equal bit for bit to `residualAdd(gradOutput,
    /// addend)` then the pass without one. ``reluBackward(count:output:gradOutput:gradInput:)``
    /// and ``reluBackwardSum(count:output:gradOutput:addend:gradInput:)`` name the two cases.
    func reluBackward(count: Int, output: Buffer, gradOutput: Buffer, addend: Buffer?, gradInput: Buffer) throws
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
    // launches kernels updates several tensors per launch (OpenCL: Adam four,
    // SGD sixteen; TinyConvNet's four separate launches cost ~0.02 ms more a
    // step on PoCL here).

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

    /// ``batchNormForward(_:input:gamma:beta:runningMean:runningVar:saved:output:training:)``
    /// followed by a ReLU, in one pass over the values: output = RELU((input −
    /// μ_c)·σ_c·γ_c + β_c) (a NaN passes through, as in ``reluForward(count:input:output:)``).
    /// The statistics, `saved` and the running update are the BatchNorm's;
    /// the normalised values before the ReLU are not kept. Equal, value for
    /// value, to the two operations one after the other.
    func batchNormReluForward(
        _ shape: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, runningMean: Buffer,
        runningVar: Buffer, saved: Buffer, output: Buffer, training: Bool) throws
    /// The backward pass of ``batchNormReluForward(_:input:gamma:beta:runningMean:runningVar:saved:output:training:)``:
    /// ``batchNormBackward(_:input:gamma:saved:gradOutput:gradInput:gradGamma:gradBeta:training:)``
    /// of the gradient dy' = dy where output > 0, else 0 (the ReLU's
    /// backward, ``reluBackward(count:output:gradOutput:gradInput:)``), with
    /// `output` the fused pass's (the ReLU's) output. dy' is never stored.
    func batchNormReluBackward(
        _ shape: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, output: Buffer, gradOutput: Buffer,
        gradInput: Buffer, gradGamma: Buffer, gradBeta: Buffer, training: Bool) throws

    // The phases of a training-mode batch normalisation, for a BatchNorm whose
    // statistics are summed over the processes of a data-parallel job
    // (PyTorch's SyncBatchNorm): the caller adds each phase's per-channel sums
    // over the processes between the phases. Each phase runs the same sums
    // and elementwise passes as the whole operations above.

    /// sums[c] = Σ input[b,c,y,x] over the B·H·W values of channel c
    /// (`centred` false), or Σ (input[b,c,y,x] − saved[c])² (`centred` true,
    /// saved[c] a mean), summed in the order of ``batchNormForward(_:input:gamma:beta:runningMean:runningVar:saved:output:training:)``.
    func batchNormChannelSums(_ shape: BatchNormShape, input: Buffer, saved: Buffer, centred: Bool, sums: Buffer) throws
    /// output = (input − μ_c)·σ_c·γ_c + β_c with μ and σ from `saved` (μ in
    /// [0, C), σ in [C, 2C)): the forward's normalisation with given statistics.
    func batchNormApply(
        _ shape: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer, saved: Buffer, output: Buffer) throws
    /// gradBeta_c = Σ dy and gradGamma_c = Σ dy·x̂, x̂ = (input − μ)·σ from
    /// `saved`: ``batchNormBackward(_:input:gamma:saved:gradOutput:gradInput:gradGamma:gradBeta:training:)``'s
    /// sums alone.
    func batchNormBackwardSums(
        _ shape: BatchNormShape, input: Buffer, saved: Buffer, gradOutput: Buffer, gradGamma: Buffer,
        gradBeta: Buffer) throws
    /// gradInput = γ·σ·(dy − (sumDy_c + x̂·sumDyXhat_c)/N), N =
    /// `shape.valuesPerChannel`, with the sums given (C floats each): the
    /// training backward's input gradient for sums taken elsewhere.
    func batchNormBackwardApply(
        _ shape: BatchNormShape, input: Buffer, gamma: Buffer, saved: Buffer, gradOutput: Buffer, sumDy: Buffer,
        sumDyXhat: Buffer, gradInput: Buffer) throws

    /// output = a + b, elementwise over `count` floats: a residual block's
    /// sum. `output` may be `a` or `b`. Its backward passes the gradient to
    /// both inputs unchanged; where a gradient has two paths (a block's
    /// input feeds the shortcut and the convolutions) this adds them.
    func residualAdd(count: Int, _ a: Buffer, _ b: Buffer, output: Buffer) throws
    /// output = RELU(a + b), elementwise over `count` floats: a residual
    /// block's sum and the ReLU after it in one pass (the sum is not kept).
    /// Equal, value for value, to ``residualAdd(count:_:_:output:)`` then
    /// ``reluForward(count:input:output:)``. `output` may be `a` or `b`.
    func residualAddRelu(count: Int, _ a: Buffer, _ b: Buffer, output: Buffer) throws
    /// output (B,C) = the mean of each (b,c) plane of input (B,C,H,W).
    func globalAveragePoolForward(_ shape: FeatureMapShape, input: Buffer, output: Buffer) throws
    /// gradInput[b,c,y,x] = gradOutput[b,c]/(H·W).
    func globalAveragePoolBackward(_ shape: FeatureMapShape, gradOutput: Buffer, gradInput: Buffer) throws

    // MARK: Training in SVD coordinates
    //
    // A conv weight W (out × in·kH·kW) trained as W = U·diag(σ⊙m)·Vᵀ (m a
    // 0/1 rank mask, ``SVDParameterizedNetwork``): the products are
    // ``gemm(_:a:b:c:)``; these are the two elementwise pieces around them.
    // Each is defined by its float64 loop in `Tests/TestSupport/NaiveReferenceSVD.swift`.

    /// output[i,j] = x[i,j]·sigma[j]·mask[j] for x (shape.rows × shape.rank):
    /// U·diag(σ⊙m) and G·diag(σ⊙m). `output` may be `x`.
    func svdScaleColumns(_ shape: SVDFactorShape, x: Buffer, sigma: Buffer, mask: Buffer, output: Buffer) throws
    /// gradSigma[j] = mask[j]·(Σ_i u[i,j]·g[i,j] + l1·sign(sigma[j])), u and g
    /// (shape.rows × shape.rank), sign(0) = 0: ∂(L + l1·‖σ‖₁)/∂σ with G = ∂L/∂W·V.
    func svdSigmaGradient(
        _ shape: SVDFactorShape, u: Buffer, g: Buffer, sigma: Buffer, mask: Buffer, l1: Float, gradSigma: Buffer
    ) throws
    /// factor (rank × rank) = c·(3/2·I − ½·c²·gram) for gram = XᵀX: X·factor
    /// is one Newton–Schulz step of the polar retraction on c·X. With
    /// `scaled`, c = 1/√(max_k Σ_j |gram[k,j]|) (1 for a zero gram), which
    /// is ≤ 1/‖X‖₂ and puts c·X's singular values in (0, 1]; else c = 1.
    func svdNewtonSchulzFactor(rank: Int, gram: Buffer, factor: Buffer, scaled: Bool) throws
}

extension Device {
    /// gradInput = gradOutput where output > 0, else 0.
    public func reluBackward(count: Int, output: Buffer, gradOutput: Buffer, gradInput: Buffer) throws {
        try reluBackward(count: count, output: output, gradOutput: gradOutput, addend: nil, gradInput: gradInput)
    }

    /// gradInput = gradOutput + addend where output > 0, else 0
    /// (``reluBackward(count:output:gradOutput:addend:gradInput:)`` with an addend).
    public func reluBackwardSum(
        count: Int, output: Buffer, gradOutput: Buffer, addend: Buffer, gradInput: Buffer
    ) throws {
        try reluBackward(count: count, output: output, gradOutput: gradOutput, addend: addend, gradInput: gradInput)
    }
}
