import NetIO

/// TinyConvNet on one ``Device``: parameters, gradients and activations live
/// on the device; the host only uploads batches and reads back per-sample
/// loss and correctness.
///
/// | layer  | operation                        | output shape    |
/// |--------|----------------------------------|-----------------|
/// | input  | normalised MNIST image           | (B, 1, 28, 28)  |
/// | conv1  | Conv2d(1→8, 3×3, no bias)        | (B, 8, 26, 26)  |
/// | relu1  | max(·, 0)                        | (B, 8, 26, 26)  |
/// | pool1  | MaxPool 2×2                      | (B, 8, 13, 13)  |
/// | conv2  | Conv2d(8→16, 3×3, no bias)       | (B, 16, 11, 11) |
/// | relu2  | max(·, 0)                        | (B, 16, 11, 11) |
/// | pool2  | MaxPool 2×2 (floor)              | (B, 16, 5, 5)   |
/// | fc     | Linear(400→10), flattened C·H·W  | (B, 10)         |
///
/// How it runs: each convolution, its pool and its ReLU are one operation
/// (``Device/conv2dMaxPool2Forward(_:input:weight:pooled:argmax:relu:)``),
/// the ReLU applied after the pool, on a quarter of the values. The two
/// orders give the same numbers: ReLU is monotone, so max(ReLU(a), ReLU(b))
/// = ReLU(max(a, b)). Where a whole window is ≤ 0 the winner may differ,
/// but its gradient is then zero either way. The backward passes take the
/// ReLU output's gradient, the ReLU output as its mask and the pool's
/// winners directly (``PooledGradient``): a step launches no separate ReLU
/// or pool.
public final class TinyConvNet {
    public let device: any Device

    /// The parameters, in PyTorch's layouts (see ``TinyConvNetWeights``).
    public let parameters: Parameters
    /// ∂loss/∂parameter after ``backward(_:)``, same layouts.
    public let gradients: Parameters

    private var workspaces: [Int: Workspace] = [:]

    public static let imageSide = 28
    public static let classes = 10

    /// The four parameter tensors of the network on a device.
    public struct Parameters {
        public let conv1: Buffer, conv2: Buffer, fcWeight: Buffer, fcBias: Buffer
        /// In checkpoint order: conv1.weight, conv2.weight, fc.weight, fc.bias
        /// (made once: the trainer and the optimiser read it every step).
        public let all: [Buffer]
        public static let names = TinyConvNetWeights.tensorShapes.map(\.name)

        init(device: any Device) throws {
            conv1 = try device.makeBuffer(count: 72, kind: .float32)
            conv2 = try device.makeBuffer(count: 1152, kind: .float32)
            fcWeight = try device.makeBuffer(count: 4000, kind: .float32)
            fcBias = try device.makeBuffer(count: 10, kind: .float32)
            all = [conv1, conv2, fcWeight, fcBias]
        }
    }

    /// The shapes of every layer at batch size `batch`.
    public struct Shapes {
        public let conv1: ConvShape, pool1: PoolShape, conv2: ConvShape, pool2: PoolShape
        public let fc: LinearShape
        public init(batch: Int) {
            conv1 = ConvShape(batch: batch, inChannels: 1, outChannels: 8, height: 28, width: 28)
            pool1 = PoolShape(batch: batch, channels: 8, height: 26, width: 26)
            conv2 = ConvShape(batch: batch, inChannels: 8, outChannels: 16, height: 13, width: 13)
            pool2 = PoolShape(batch: batch, channels: 16, height: 11, width: 11)
            fc = LinearShape(batch: batch, inFeatures: 400, outFeatures: 10)
        }
    }

    /// Activations and their gradients for one batch size. Training uses two
    /// (the full batch and the epoch's remainder); evaluation one more.
    public final class Workspace {
        public let batch: Int
        public let shapes: Shapes
        public let input: Buffer
        /// ReLU(pool(conv)) of each layer, the ReLU fused into the pooled
        /// convolution: (B,8,13,13), (B,16,5,5).
        public let relu1, relu2: Buffer
        public let logits: Buffer
        /// The full convolution outputs, written only by ``TinyConvNet/convOutputs(_:)``.
        public let conv1, conv2: Buffer
        /// The pools' winners (int32), (B,8,13,13) and (B,16,5,5): flat y·W + x
        /// in the convolution's output plane.
        public let argmax1, argmax2: Buffer
        public let labels: Buffer
        /// [0, B): loss per sample; [B, 2B): 1 where the prediction is right.
        public var perSample: Buffer
        /// Gradients of the logits and of relu2 and relu1: the pooled
        /// backward passes apply ReLU's mask themselves (``PooledGradient/reluOutput``).
        let gradLogits, gradRelu2, gradRelu1: Buffer

        init(device: any Device, batch: Int) throws {
            self.batch = batch
            let s = Shapes(batch: batch)
            shapes = s
            func floats(_ n: Int) throws -> Buffer { try device.makeBuffer(count: n, kind: .float32) }
            input = try floats(s.conv1.inputCount)
            relu1 = try floats(s.pool1.outputCount)
            argmax1 = try device.makeBuffer(count: s.pool1.outputCount, kind: .int32)
            relu2 = try floats(s.pool2.outputCount)
            argmax2 = try device.makeBuffer(count: s.pool2.outputCount, kind: .int32)
            conv1 = try floats(s.conv1.outputCount)
            conv2 = try floats(s.conv2.outputCount)
            logits = try floats(batch * 10)
            labels = try device.makeBuffer(count: batch, kind: .int32)
            perSample = try floats(2 * batch)
            gradLogits = try floats(batch * 10)
            gradRelu2 = try floats(s.pool2.outputCount)
            gradRelu1 = try floats(s.pool1.outputCount)
        }
    }

    /// A network with zero parameters on `device`; load or initialise next.
    public init(device: any Device) throws {
        self.device = device
        parameters = try Parameters(device: device)
        gradients = try Parameters(device: device)
    }

    /// PyTorch's default initialisation: Kaiming-uniform with a = √5 for the
    /// weights, which is U(−1/√fan_in, 1/√fan_in), and the same bound for
    /// the fc bias (fan_in 9, 72 and 400).
    public static func initialWeights(seed: UInt64) -> TinyConvNetWeights {
        var random = SeededRandom(seed: seed, stream: 0x1417)
        func uniform(_ count: Int, fanIn: Int) -> [Float] {
            let bound = 1 / Float(fanIn).squareRoot()
            return (0..<count).map { _ in random.uniform(bound) }
        }
        return TinyConvNetWeights(
            conv1: uniform(72, fanIn: 9), conv2: uniform(1152, fanIn: 72),
            fcWeight: uniform(4000, fanIn: 400), fcBias: uniform(10, fanIn: 400))
    }

    public func load(_ weights: TinyConvNetWeights) throws {
        try device.upload(weights.conv1, to: parameters.conv1)
        try device.upload(weights.conv2, to: parameters.conv2)
        try device.upload(weights.fcWeight, to: parameters.fcWeight)
        try device.upload(weights.fcBias, to: parameters.fcBias)
    }

    public func weights() throws -> TinyConvNetWeights {
        TinyConvNetWeights(
            conv1: try device.floats(parameters.conv1), conv2: try device.floats(parameters.conv2),
            fcWeight: try device.floats(parameters.fcWeight), fcBias: try device.floats(parameters.fcBias))
    }

    /// The workspace for `batch` images, made on first use.
    public func workspace(batch: Int) throws -> Workspace {
        if let w = workspaces[batch] { return w }
        let w = try Workspace(device: device, batch: batch)
        workspaces[batch] = w
        return w
    }

    /// Uploads `images` (batch·784 normalised floats) and `labels`.
    public func setBatch(_ w: Workspace, images: [Float], labels: [Int32]) throws {
        precondition(images.count == w.shapes.conv1.inputCount && labels.count == w.batch)
        try device.upload(images, to: w.input)
        try device.upload(labels, to: w.labels)
    }

    /// Forward pass and loss on the batch in `w` (queued; nothing read back).
    public func forward(_ w: Workspace) throws {
        let s = w.shapes
        let p = parameters
        let d = device
        try d.conv2dMaxPool2Forward(
            s.conv1, input: w.input, weight: p.conv1, pooled: w.relu1, argmax: w.argmax1,
            relu: true)
        try d.conv2dMaxPool2Forward(
            s.conv2, input: w.relu1, weight: p.conv2, pooled: w.relu2, argmax: w.argmax2,
            relu: true)
        try d.linearForward(s.fc, input: w.relu2, weight: p.fcWeight, bias: p.fcBias, output: w.logits)
        try d.softmaxCrossEntropy(
            batch: w.batch, classes: 10, logits: w.logits, labels: w.labels,
            gradLogits: w.gradLogits, perSample: w.perSample)
    }

    /// One training pass: ``forward(_:)`` then ``backward(_:)``, except in
    /// the gpu kernel family, where one kernel per image runs both and a
    /// second adds the images' gradients (two launches for the nine of the
    /// separate passes; ``OpenCLDevice/tinyConvNetTrainingStep(batch:input:labels:parameters:logits:perSample:gradients:gather:)``).
    /// The fused pass writes the logits, `w.perSample` and ``gradients``;
    /// the workspace's other activations are left as they were.
    public func trainingStep(_ w: Workspace) throws {
        if let cl = device as? OpenCLDevice, cl.kernelFamily == .gpu,
            try cl.tinyConvNetTrainingStep(
                batch: w.batch, input: w.input, labels: w.labels, parameters: parameters.all, logits: w.logits,
                perSample: w.perSample, gradients: gradients.all)
        {
            return
        }
        try forward(w)
        try backward(w)
    }

    /// ``DeviceDataset/gather(_:into:)`` of the batch at `range` of
    /// `data`'s order, then ``trainingStep(_:)``; in the gpu kernel family
    /// the fused kernel gathers the images itself (the same values, also
    /// stored in `w.input` and `w.labels`): one launch fewer.
    public func trainingStep(_ w: Workspace, gathering range: Range<Int>, from data: DeviceDataset) throws {
        if let cl = device as? OpenCLDevice, cl.kernelFamily == .gpu, data.channels == 1,
            data.normalization.channels == 1,
            try cl.tinyConvNetTrainingStep(
                batch: w.batch, input: w.input, labels: w.labels, parameters: parameters.all, logits: w.logits,
                perSample: w.perSample, gradients: gradients.all,
                gather: OpenCLDevice.TinyStepGather(
                    shape: data.plainGatherShape(range), pixels: data.pixels, labels: data.labels, order: data.order))
        {
            return
        }
        try data.gather(range, into: w)
        try trainingStep(w)
    }

    /// Backward pass from the loss of the last ``forward(_:)`` into ``gradients``.
    public func backward(_ w: Workspace) throws {
        let s = w.shapes
        let p = parameters
        let g = gradients
        let d = device
        try d.linearBackward(
            s.fc, input: w.relu2, weight: p.fcWeight, gradOutput: w.gradLogits,
            gradInput: w.gradRelu2, gradWeight: g.fcWeight, gradBias: g.fcBias)
        let pooled2 = PooledGradient(pool: s.pool2, values: w.gradRelu2, argmax: w.argmax2, reluOutput: w.relu2)
        try d.conv2dBackwardWeight(s.conv2, input: w.relu1, pooledGradient: pooled2, gradWeight: g.conv2)
        try d.conv2dBackwardData(s.conv2, pooledGradient: pooled2, weight: p.conv2, gradInput: w.gradRelu1)
        let pooled1 = PooledGradient(pool: s.pool1, values: w.gradRelu1, argmax: w.argmax1, reluOutput: w.relu1)
        try d.conv2dBackwardWeight(s.conv1, input: w.input, pooledGradient: pooled1, gradWeight: g.conv1)
    }

    /// The full conv1 and conv2 outputs of the last ``forward(_:)`` into
    /// `w.conv1` and `w.conv2` (conv2's input is the forward's relu1), for
    /// analyses that compare them; training never needs them.
    public func convOutputs(_ w: Workspace) throws {
        let s = w.shapes
        let p = parameters
        try device.conv2dForward(s.conv1, input: w.input, weight: p.conv1, output: w.conv1)
        try device.conv2dForward(s.conv2, input: w.relu1, weight: p.conv2, output: w.conv2)
    }

    /// Reads back the batch's summed loss and number of correct predictions.
    public func batchResult(_ w: Workspace) throws -> (lossSum: Double, correct: Int) {
        try requestBatchResult(w).value()
    }

    /// Queues the read-back of the batch's per-sample loss and correctness
    /// behind the work queued so far (``Device/startDownload(_:)``): a step
    /// queued after this may overwrite them, the result is the batch's.
    public func requestBatchResult(_ w: Workspace) throws -> PendingBatchResult {
        PendingBatchResult(download: try device.startDownload(w.perSample), batch: w.batch)
    }

    /// A batch's loss and correct count on their way to the host.
    public struct PendingBatchResult {
        let download: PendingDownload
        /// The batch's number of images.
        public let batch: Int

        /// Waits for the read-back; the summed loss and the number of correct predictions.
        public func value() throws -> (lossSum: Double, correct: Int) {
            Self.sums(try download.floats(), from: 0, batch: batch)
        }

        /// The summed loss and the number of correct predictions of a
        /// batch's per-sample results starting at `values[start]` (losses,
        /// then 0/1 correctness), summed in float64 in sample order.
        static func sums(_ values: [Float], from start: Int, batch: Int) -> (lossSum: Double, correct: Int) {
            var loss = 0.0
            var correct = 0.0
            for i in 0..<batch {
                loss += Double(values[start + i])
                correct += Double(values[start + batch + i])
            }
            return (loss, Int(correct.rounded()))
        }
    }
}
