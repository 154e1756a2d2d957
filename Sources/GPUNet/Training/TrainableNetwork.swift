import NetIO

/// The buffers of one batch that training and evaluation touch: what the
/// data set writes (input, labels) and what the loss leaves (logits,
/// per-sample results).
public protocol NetworkWorkspace: AnyObject {
    var batch: Int { get }
    /// The normalised images (B, C, H, W).
    var input: Buffer { get }
    /// The labels (B, int32).
    var labels: Buffer { get }
    /// (B, classes).
    var logits: Buffer { get }
    /// [0, B): loss per sample; [B, 2B): 1 where the prediction is right.
    /// Any float buffer of at least 2B elements: the trainer points it at
    /// a slot of its step-result log for each step (``StepResultLog``).
    var perSample: Buffer { get set }
}

/// What the trainer and the evaluation need of a network on a device:
/// ``TinyConvNet`` (its fused kernels) and ``NetworkPlan`` (any description).
///
/// The parameters are the learned tensors in `state_dict` order, which the
/// optimiser updates and the gradient reducer sums; ``checkpointTensors()``
/// adds what else a checkpoint holds (BatchNorm's running statistics).
public protocol TrainableNetwork: AnyObject {
    associatedtype Workspace: NetworkWorkspace
    var device: any Device { get }
    var classes: Int { get }
    /// Floats of one input image.
    var inputSize: Int { get }
    /// The learned tensors, in `state_dict` order.
    var parameterBuffers: [Buffer] { get }
    /// ∂loss/∂parameter after ``backward(_:)``, in the order of ``parameterBuffers``.
    var gradientBuffers: [Buffer] { get }
    /// The `state_dict` names of ``parameterBuffers``.
    var parameterNames: [String] { get }
    func workspace(batch: Int) throws -> Workspace
    /// The forward pass and the loss, queued; `training` selects
    /// BatchNorm's batch statistics (and their running update).
    func forward(_ w: Workspace, training: Bool) throws
    /// The backward pass of the last training forward into ``gradientBuffers``.
    func backward(_ w: Workspace) throws
    /// One training pass, queued: the training forward, the loss (into
    /// `w.perSample`) and the backward pass into ``gradientBuffers``. The
    /// default is ``forward(_:training:)`` then ``backward(_:)``; a network
    /// may fuse them (TinyConvNet in the gpu kernel family), which then
    /// leaves its activations other than the logits unspecified.
    func trainingStep(_ w: Workspace) throws
    /// The batch at positions `range` of `data`'s order gathered into `w`
    /// (``DeviceDataset/gather(_:into:)``), then ``trainingStep(_:)``; a
    /// network may fuse the gather into its step.
    func trainingStep(_ w: Workspace, gathering range: Range<Int>, from data: DeviceDataset) throws
    /// Every tensor a checkpoint stores for the model, in `state_dict` order.
    func checkpointTensors() throws -> [NamedTensor]
    /// Loads what ``checkpointTensors()`` wrote, by name, checking shapes.
    func load(checkpointTensors: [NamedTensor]) throws
    /// The integer scalars of the `state_dict` (BatchNorm's `num_batches_tracked`).
    func checkpointCounters() -> [String: Int64]
    /// Restores what ``checkpointCounters()`` gave; a counter missing from
    /// `counters` (an older file) counts 0.
    func load(checkpointCounters counters: [String: Int64]) throws
    /// For messages and the checkpoint's `format`: "TinyConvNet", "resnet8", …
    var modelName: String { get }
    /// Images per evaluation batch: as many as the memory of one
    /// evaluation workspace allows without growing the process.
    var evaluationBatch: Int { get }
    /// Called by the trainer after each epoch's steps, before the
    /// evaluation: a network trained in SVD coordinates prunes and measures
    /// its factors there (``SVDParameterizedNetwork``); others do nothing.
    func finishEpoch() throws -> SVDEpochReport?
    /// Runs `body`, in which nothing writes the parameters or the running
    /// statistics: a network may then form what it derives from them once
    /// and reuse it for every eval pass inside (``NetworkPlan``: each fused
    /// layer's scale and shift). The default runs `body`.
    func withParametersFixed<Result>(_ body: () throws -> Result) throws -> Result
}

extension TrainableNetwork {
    public func finishEpoch() throws -> SVDEpochReport? { nil }
    public func withParametersFixed<Result>(_ body: () throws -> Result) throws -> Result { try body() }
}

extension TrainableNetwork {
    public func trainingStep(_ w: Workspace) throws {
        try forward(w, training: true)
        try backward(w)
    }

    public func trainingStep(_ w: Workspace, gathering range: Range<Int>, from data: DeviceDataset) throws {
        try data.gather(range, into: w)
        try trainingStep(w)
    }

    /// Queues the read-back of the batch's per-sample loss and correctness
    /// behind the work queued so far (``Device/startDownload(_:)``): a step
    /// queued after this may overwrite them, the result is the batch's.
    public func requestBatchResult(_ w: Workspace) throws -> TinyConvNet.PendingBatchResult {
        TinyConvNet.PendingBatchResult(download: try device.startDownload(w.perSample), batch: w.batch)
    }
}

extension TinyConvNet.Workspace: NetworkWorkspace {}

extension TinyConvNet: TrainableNetwork {
    public var classes: Int { Self.classes }
    public var inputSize: Int { Self.imageSide * Self.imageSide }
    public var parameterBuffers: [Buffer] { parameters.all }
    public var gradientBuffers: [Buffer] { gradients.all }
    public var parameterNames: [String] { Parameters.names }
    public var modelName: String { "TinyConvNet" }
    /// TinyConvNet's activations are ~2 KB an image: 500 at a time.
    public var evaluationBatch: Int { 500 }
    public func checkpointCounters() -> [String: Int64] { [:] }
    public func load(checkpointCounters counters: [String: Int64]) throws {}

    /// TinyConvNet has no batch statistics: both modes are the same pass.
    public func forward(_ w: Workspace, training: Bool) throws { try forward(w) }

    public func checkpointTensors() throws -> [NamedTensor] {
        try weights().tensors.map { NamedTensor(name: $0.name, shape: $0.shape, values: $0.values) }
    }

    public func load(checkpointTensors tensors: [NamedTensor]) throws {
        let named = TensorsByName(tensors)
        func take(_ name: String, _ shape: [Int]) throws -> [Float] { try named.values(name, shape: shape) }
        try load(
            TinyConvNetWeights(
                conv1: try take("conv1.weight", TinyConvNetWeights.conv1Shape),
                conv2: try take("conv2.weight", TinyConvNetWeights.conv2Shape),
                fcWeight: try take("fc.weight", TinyConvNetWeights.fcWeightShape),
                fcBias: try take("fc.bias", TinyConvNetWeights.fcBiasShape)))
    }
}

extension NetworkPlan.Workspace: NetworkWorkspace {}

extension NetworkPlan: TrainableNetwork {
    public var parameterBuffers: [Buffer] { parameterBufferList }
    public var gradientBuffers: [Buffer] { gradients }
    public var parameterNames: [String] { parameters.map(\.name) }
    public var modelName: String { summary.name }
    /// 128 images: a ResNet's activations run to hundreds of KB an image,
    /// and 128 is the ResNet recipe's training batch, whose workspace the
    /// evaluation then shares.
    public var evaluationBatch: Int { 128 }

    /// Every BatchNorm's `num_batches_tracked`: ``batchesTracked``, since
    /// each sees every training batch.
    public func checkpointCounters() -> [String: Int64] {
        Dictionary(
            uniqueKeysWithValues: statistics.filter { $0.name.hasSuffix(".running_mean") }.map {
                (String($0.name.dropLast(".running_mean".count)) + ".num_batches_tracked", Int64(batchesTracked))
            })
    }

    public func load(checkpointCounters counters: [String: Int64]) throws {
        let values = Set(checkpointCounters().keys.map { counters[$0] ?? 0 })
        guard values.count <= 1 else {
            throw NetworkPlanError.counterMismatch(values.sorted().map { Int($0) })
        }
        batchesTracked = Int(values.first ?? 0)
    }

    /// The learned tensors and the running statistics.
    public func checkpointTensors() throws -> [NamedTensor] {
        try stateDict().map { NamedTensor(name: $0.name, shape: $0.shape, values: $0.values) }
    }

    public func load(checkpointTensors tensors: [NamedTensor]) throws {
        try load(
            Dictionary(tensors.map { ($0.name, (shape: $0.shape, values: $0.values)) }, uniquingKeysWith: { a, _ in a })
        )
    }
}

/// A checkpoint's tensors by name, each read with the shape the model
/// expects: a missing tensor or another shape is an error naming it.
struct TensorsByName {
    private let byName: [String: NamedTensor]

    init(_ tensors: [NamedTensor]) {
        byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The values of tensor `name`, which must have `shape`.
    /// - Throws: ``NetworkPlanError/missingTensor(_:)``, ``NetworkPlanError/shapeMismatch(name:expected:found:)``.
    func values(_ name: String, shape: [Int]) throws -> [Float] {
        guard let t = byName[name] else { throw NetworkPlanError.missingTensor(name) }
        guard t.shape == shape else {
            throw NetworkPlanError.shapeMismatch(name: name, expected: shape, found: t.shape)
        }
        return t.values
    }
}
