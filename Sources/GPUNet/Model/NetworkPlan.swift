import Models
import NetIO

/// A ``Models/NetworkDescription`` bound to a ``Device``: the description's
/// layers become a list of device operations over activations, parameters,
/// gradients and BatchNorm statistics allocated once on the device.
///
/// Any network of the Models vocabulary runs through one plan (conv with
/// stride, padding and bias; BatchNorm2d; ReLU; max-pool 2; global average
/// pool; flatten; linear; residual blocks with identity or projection
/// shortcuts), so that a new architecture is a new description, never a new
/// class with its own forward and backward. TinyConvNet keeps its own type,
/// ``TinyConvNet``, whose fused pooled kernels the plan does not use.
///
/// Activations are numbered: 0 is the input (B, C, H, W); each operation
/// writes one new activation, except flatten, which renames its input (the
/// (B, C, H, W) layout is already the (B, C·H·W) one). A residual block's
/// input is read by its body and by its shortcut, so its gradient has two
/// contributions: the first one to arrive is written, the second added
/// (``Device/residualAdd(count:_:_:output:)``).
///
/// Tensor names and shapes are PyTorch's `state_dict` keys, taken from
/// ``Models/NetworkDescription/summary(input:classes:)``, so that a plan's
/// weights load into the equivalent PyTorch module.
public final class NetworkPlan {
    /// A named tensor on the device.
    public struct Tensor {
        public let name: String
        public let shape: [Int]
        public let buffer: Buffer
        public var count: Int { buffer.count }
    }

    public let device: any Device
    public let summary: NetworkSummary
    /// The input of one image: channels, height, width.
    public let inputChannels: Int, inputHeight: Int, inputWidth: Int
    public let classes: Int
    /// The learned parameters in `state_dict` order.
    public let parameters: [Tensor]
    /// ∂loss/∂parameter after ``backward(_:)``, in the order of ``parameters``.
    public let gradients: [Buffer]
    /// The parameters' buffers, in the order of ``parameters`` (made once:
    /// the trainer and the optimiser read them every step).
    public let parameterBufferList: [Buffer]
    /// The BatchNorm running means and variances (`….running_mean`, `….running_var`).
    public let statistics: [Tensor]
    /// Training-mode forward passes so far: every BatchNorm's `num_batches_tracked`.
    public var batchesTracked = 0
    /// The backward pass's record of the activation gradients written (its storage reused).
    private var written: [Bool] = []
    /// The backward pass's record of the ReLUs run inside a gradient's last sum (its storage reused).
    private var reluDone: [Bool] = []

    let operations: [Operation]
    /// Per operation: the index of the ReLU right after it that a
    /// training-mode pass fuses into it (``Device/batchNormReluForward(_:input:gamma:beta:runningMean:runningVar:saved:output:training:)``,
    /// ``Device/residualAddRelu(count:_:_:output:)``), for a BatchNorm or a
    /// residual sum whose output that ReLU alone reads; nil elsewhere. The
    /// fused pass does not write the BatchNorm's or the sum's output
    /// (``activation(_:path:)`` computes it again when asked), and the
    /// backward pass takes the ReLU's mask inside BatchNorm's
    /// (``Device/batchNormReluBackward(_:input:gamma:saved:output:gradOutput:gradInput:gradGamma:gradBeta:training:)``):
    /// one pass over the values less each way, the same values.
    let fusedRelu: [Int?]
    /// Per activation: the residual sum whose gradient buffer its gradient
    /// is, nil where it has its own. A sum's gradient reaches each addend
    /// unchanged, so an addend that shares the buffer needs no copy of it
    /// (``sharedGradients(_:activations:needsGradient:)`` says when that is safe).
    let sharedGradient: [Int?]
    /// Per activation made by a ReLU and read by two or more operations (a
    /// residual block's input): that ReLU and the operation that adds the
    /// gradient's last part, the first reader, whose backward pass runs last.
    /// There the sum and the ReLU's backward pass are one pass
    /// (``Device/reluBackwardSum(count:output:gradOutput:addend:gradInput:)``),
    /// where the ReLU alone reads its input and is not run inside a BatchNorm.
    let summedRelu: [(relu: Int, lastReader: Int)?]
    /// Elements per image of each activation.
    let activationSizes: [Int]
    /// Whether an activation depends on a learned parameter (its gradient is needed).
    private let needsGradient: [Bool]
    private let argmaxSlots: Int, savedSlots: [Int]
    /// Zero biases (and their discarded gradients) for linear layers without one.
    private var zeroBiases: [Int: (bias: Buffer, gradient: Buffer)] = [:]
    private var workspaces: [Int: Workspace] = [:]
    /// Per channel count: two buffers of per-channel sums that a synchronised BatchNorm moves between processes.
    private var synchronizedSums: [Int: (Buffer, Buffer)] = [:]

    /// Whether an eval-mode ``forward(_:training:)`` runs each convolution
    /// layer as one device operation where the device allows
    /// (``InferenceDevice``, `NetworkPlan+Inference.swift`): its logits agree
    /// with the layer-by-layer pass within 1e-4, and the activations inside
    /// a fused layer are computed again, layer by layer, when asked for
    /// (``activation(_:path:)``, ``inputGradient(_:cotangent:)``).
    public var fusesInference = true
    /// The fused layers, found once (`NetworkPlan+Inference.swift`).
    lazy var inferenceSteps: [InferenceStep] = makeInferenceSteps()
    /// Per fused layer (its first operation's index): its scale and shift buffers.
    var inferenceAffines: [Int: (scale: Buffer, shift: Buffer)] = [:]
    /// Inside ``withParametersFixed(_:)``: the fused layers whose scale and
    /// shift are formed from the fixed parameters (nil outside, where every
    /// eval pass forms them again, since anything may have written the
    /// parameters' buffers in between).
    var formedInferenceAffines: Set<Int>?

    /// With one, training-mode BatchNorm uses the statistics of the global
    /// batch of a data-parallel job (PyTorch's `SyncBatchNorm`); every
    /// process must then run every training forward and backward pass, in the
    /// same order. Nil (the default): each process's batch statistics are its own.
    public var batchNormSynchronization: BatchNormSynchronization?

    /// One device operation of a pass, as ``operationHook`` sees it.
    public struct StepOperation: Sendable {
        /// The layer path (PyTorch's module name), e.g. "layer1.0.conv1".
        public var path: String
        /// "conv", "batchnorm", "relu", "maxpool", "avgpool", "linear", "add", "loss";
        /// "batchnorm_relu" and "add_relu" for a training-mode pass's fused
        /// pairs (``NetworkPlan/fusedRelu``), named by the BatchNorm's or the sum's path.
        public var kind: String
        /// "forward", "data_grad", "weight_grad", "backward", "grad_sum" (a second gradient added in).
        public var pass: String
        /// Multiply-adds of the batch: convolutions and linear layers (forward,
        /// data and weight gradient each count the layer's forward work); nil elsewhere.
        public var multiplyAdds: Int?
        /// The least bytes the operation must move through the device's
        /// memory: each float32 tensor it reads or writes once (inputs,
        /// weights, outputs, saved statistics and argmax indices). A lower
        /// bound on its traffic, which ``GPUStepModel`` divides by a GPU's
        /// bandwidth.
        public var bytes: Int
        /// Which addend of a residual sum receives the gradient (its backward
        /// reaches two), nil elsewhere.
        public var addend: Int?
        /// "layer1.0.conv1.forward", "layer1.0.backward.1".
        public var name: String { "\(path).\(pass)" + (addend.map { ".\($0)" } ?? "") }
    }

    /// When set, each device operation of ``forward(_:training:)`` and
    /// ``backward(_:)`` is handed to it as a closure that queues it, in
    /// order: `convsvd bench` times them one by one this way. The hook must
    /// call the closure exactly once.
    public var operationHook: ((StepOperation, () throws -> Void) throws -> Void)?

    /// Runs `body`, through ``operationHook`` when one is set. The figures
    /// that describe the operation are evaluated only then: a training step
    /// without a hook computes none of them.
    func perform(
        _ path: String, _ kind: String, _ pass: String, multiplyAdds: @autoclosure () -> Int? = nil,
        floats: @autoclosure () -> Int, addend: Int? = nil, _ body: () throws -> Void
    ) throws {
        guard let operationHook else { return try body() }
        try operationHook(
            StepOperation(
                path: path, kind: kind, pass: pass, multiplyAdds: multiplyAdds(), bytes: 4 * floats(), addend: addend),
            body)
    }

    /// The network `description` on `device` for images of shape
    /// (channels, height, width) and `classes` classes, its parameters zero:
    /// load or initialise them next.
    /// - Throws: ``Models/ModelError`` when the shapes do not chain.
    public init(
        _ description: NetworkDescription, channels: Int, height: Int, width: Int, classes: Int, device: any Device
    ) throws {
        self.device = device
        summary = try description.summary(
            input: .map(channels: channels, height: height, width: width), classes: classes)
        (inputChannels, inputHeight, inputWidth, self.classes) = (channels, height, width, classes)
        var builder = PlanBuilder(rows: summary.layers, input: channels * height * width)
        try builder.add(description.layers, input: 0)
        operations = builder.operations
        fusedRelu = Self.fusedRelus(builder.operations, activations: builder.sizes.count)
        activationSizes = builder.sizes
        needsGradient = builder.needsGradient
        sharedGradient = Self.sharedGradients(
            builder.operations, activations: builder.sizes.count, needsGradient: builder.needsGradient)
        summedRelu = Self.summedRelus(
            builder.operations, activations: builder.sizes.count, needsGradient: builder.needsGradient)
        argmaxSlots = builder.argmaxSlots
        savedSlots = builder.savedSlots
        func tensor(_ p: ParameterDescription) throws -> Tensor {
            Tensor(
                name: p.name, shape: p.shape, buffer: try device.makeBuffer(count: p.count, kind: .float32))
        }
        parameters = try builder.learned.map(tensor)
        parameterBufferList = parameters.map(\.buffer)
        gradients = try parameters.map { try device.makeBuffer(count: $0.count, kind: .float32) }
        statistics = try builder.statistics.map(tensor)
        try initialise(seed: 0)
    }

    /// Per activation, the indices of the operations that read it, in order.
    static func readers(of operations: [Operation], activations: Int) -> [[Int]] {
        var readers = [[Int]](repeating: [], count: activations)
        for (index, op) in operations.enumerated() { for i in op.inputs { readers[i].append(index) } }
        return readers
    }

    /// ``fusedRelu`` for `operations`: a ReLU that follows a BatchNorm or a
    /// residual sum and is the only reader of its output.
    private static func fusedRelus(_ operations: [Operation], activations: Int) -> [Int?] {
        let readers = Self.readers(of: operations, activations: activations)
        return operations.indices.map { i in
            guard i + 1 < operations.count, case .relu = operations[i + 1].kind,
                operations[i + 1].inputs == [operations[i].output], readers[operations[i].output].count == 1
            else { return nil }
            switch operations[i].kind {
            case .batchNorm, .add: return i + 1
            default: return nil
            }
        }
    }

    /// ``sharedGradient`` for `operations`. The backward pass runs the
    /// operations in reverse: an addend's gradient is written by the
    /// operations that read the addend (the second and later into scratch,
    /// then added, after the operation has read its own gradient), and read
    /// by the operation that made it (or, for a ReLU run inside the BatchNorm
    /// before it, by that one). The sum shares its gradient buffer with
    /// - each addend that it alone reads: that gradient is only read after
    ///   the sum's backward pass;
    /// - and one addend that earlier operations also read (a residual
    ///   block's input), whose gradients are then added into the buffer,
    ///   where no such operation comes after one that reads an addend of the
    ///   first kind (reads and writes in one operation are in that order).
    /// A sum whose own gradient is shared, the input image and an addend read
    /// after the sum keep their own buffers.
    static func sharedGradients(_ operations: [Operation], activations: Int, needsGradient: [Bool]) -> [Int?] {
        let readers = Self.readers(of: operations, activations: activations)
        var maker = [Int?](repeating: nil, count: activations)
        for (index, op) in operations.enumerated() { maker[op.output] = index }
        var shared = [Int?](repeating: nil, count: activations)
        for (index, op) in operations.enumerated().reversed() {
            guard case .add = op.kind, shared[op.output] == nil, Set(op.inputs).count == op.inputs.count else {
                continue
            }
            let addends = op.inputs.filter { i in
                i != 0 && needsGradient[i] && maker[i] != nil && readers[i].allSatisfy { $0 <= index }
            }
            var sharing = addends.filter { readers[$0].count == 1 }
            if let other = addends.first(where: { readers[$0].count > 1 }) {
                let lastWriter = readers[other].filter { $0 != index }.max()!
                if sharing.allSatisfy({ maker[$0]! - 1 >= lastWriter }) { sharing.append(other) }
            }
            for i in sharing { shared[i] = op.output }
        }
        return shared
    }

    /// ``summedRelu`` for `operations`: the last reader must settle a
    /// gradient (a residual sum hands its gradient on without).
    static func summedRelus(_ operations: [Operation], activations: Int, needsGradient: [Bool]) -> [(
        relu: Int, lastReader: Int
    )?] {
        let readers = Self.readers(of: operations, activations: activations)
        var summed = [(relu: Int, lastReader: Int)?](repeating: nil, count: activations)
        for (index, op) in operations.enumerated() {
            guard case .relu = op.kind, op.inputs[0] != 0, needsGradient[op.inputs[0]],
                readers[op.inputs[0]].count == 1,
                readers[op.output].count >= 2, let last = readers[op.output].min()
            else { continue }
            if case .add = operations[last].kind { continue }
            summed[op.output] = (index, last)
        }
        return summed
    }

    /// The ReLU fused into operation `index` in a training-mode pass, if
    /// any: none for a BatchNorm whose statistics are synchronised (its
    /// phases run one by one, ``batchNormSynchronization``).
    func trainingFusedRelu(_ index: Int) -> Operation? {
        guard let relu = fusedRelu[index] else { return nil }
        if case .batchNorm = operations[index].kind, batchNormSynchronization != nil { return nil }
        return operations[relu]
    }

    /// Whether operation `index` is a ReLU that a training-mode pass runs inside the operation before it.
    func isFusedIntoPrevious(_ index: Int) -> Bool { index > 0 && trainingFusedRelu(index - 1) != nil }

    // MARK: Weights

    /// PyTorch's default initialisation, seeded: conv and linear weights and
    /// biases U(−1/√fan_in, 1/√fan_in) (Kaiming-uniform with a = √5, as
    /// `reset_parameters` does), BatchNorm γ = 1, β = 0, running mean 0 and
    /// variance 1. Values are drawn in `state_dict` order.
    public func initialise(seed: UInt64) throws {
        var random = SeededRandom(seed: seed, stream: 0x7E57)
        var fanIn = 1
        for p in parameters {
            let values: [Float]
            if p.name.hasSuffix(".weight") && p.shape.count >= 2 {
                fanIn = p.shape.dropFirst().reduce(1, *)
                let bound = 1 / Float(fanIn).squareRoot()
                values = (0..<p.count).map { _ in random.uniform(bound) }
            } else if p.name.hasSuffix(".bias") && isBatchNorm(p.name) == false {
                // A conv or linear bias follows its weight: the weight's fan-in.
                let bound = 1 / Float(fanIn).squareRoot()
                values = (0..<p.count).map { _ in random.uniform(bound) }
            } else {
                values = [Float](repeating: p.name.hasSuffix(".weight") ? 1 : 0, count: p.count)
            }
            try device.upload(values, to: p.buffer)
        }
        for s in statistics {
            try device.upload(
                [Float](repeating: s.name.hasSuffix(".running_var") ? 1 : 0, count: s.count), to: s.buffer)
        }
        batchesTracked = 0
    }

    private func isBatchNorm(_ name: String) -> Bool {
        statistics.contains { $0.name == name.replacingSuffix(".bias", with: ".running_mean") }
    }

    /// Every tensor of the `state_dict` but `num_batches_tracked`
    /// (``batchesTracked``): learned parameters, then running statistics.
    public func stateDict() throws -> [(name: String, shape: [Int], values: [Float])] {
        try (parameters + statistics).map { ($0.name, $0.shape, try device.floats($0.buffer)) }
    }

    /// Loads learned parameters and running statistics by name.
    /// - Throws: ``NetworkPlanError/missingTensor(_:)`` or
    ///   ``NetworkPlanError/shapeMismatch(name:expected:found:)`` for the first
    ///   tensor that does not fit; nothing is loaded then.
    public func load(_ tensors: [String: (shape: [Int], values: [Float])]) throws {
        for t in parameters + statistics {
            guard let found = tensors[t.name] else { throw NetworkPlanError.missingTensor(t.name) }
            guard found.shape == t.shape, found.values.count == t.count else {
                throw NetworkPlanError.shapeMismatch(name: t.name, expected: t.shape, found: found.shape)
            }
        }
        for t in parameters + statistics { try device.upload(tensors[t.name]!.values, to: t.buffer) }
    }

    // MARK: Running

    /// Activations, their gradients and the per-layer scratch of one batch size.
    public final class Workspace {
        public let batch: Int
        /// The images (B, C, H, W), normalised.
        public var input: Buffer { activations[0] }
        /// The labels (B, int32).
        public let labels: Buffer
        /// (B, classes).
        public var logits: Buffer { activations[activations.count - 1] }
        /// [0, B): loss per sample; [B, 2B): 1 where the prediction is right.
        public var perSample: Buffer
        let activations: [Buffer]
        /// Per activation, nil where no gradient is needed; all but the
        /// logits' (which the loss writes) made by the first backward pass,
        /// so that a workspace that only evaluates holds no gradients.
        private(set) var gradients: [Buffer?]
        let argmax: [Buffer]
        let saved: [Buffer]
        /// Whether the last forward pass fused layers: the activations inside them were not written.
        var holdsFusedPass = false
        /// The operations whose outputs the last training-mode pass did not
        /// write (a ReLU was fused into them, ``NetworkPlan/fusedRelu``).
        var unwrittenOutputs: [Int] = []
        /// Holds a second gradient contribution before it is added (made with the gradients).
        private(set) var scratch: Buffer?
        /// The input's gradient (``NetworkPlan/inputGradient(_:cotangent:)``), made on first use.
        private var inputGradientBuffer: Buffer?
        /// False for a smaller batch's view of a larger workspace.
        var ownsBuffers: Bool { backing == nil }

        /// The workspace whose buffers this one uses, when it is a smaller
        /// batch's view of a larger one (``NetworkPlan/workspace(batch:)``).
        private let backing: Workspace?

        init(plan: NetworkPlan, batch: Int) throws {
            self.batch = batch
            backing = nil
            let d = plan.device
            func floats(_ n: Int) throws -> Buffer { try d.makeBuffer(count: max(n, 1), kind: .float32) }
            activations = try plan.activationSizes.map { try floats(batch * $0) }
            // The logits' gradient is the loss's output even when nothing upstream is learned.
            gradients = plan.activationSizes.map { _ in nil }
            gradients[gradients.count - 1] = try floats(batch * plan.activationSizes[plan.activationSizes.count - 1])
            argmax = try plan.operations.compactMap { op in
                guard case .maxPool2(let c, let h, let w, _) = op.kind else { return nil }
                return try d.makeBuffer(count: max(batch * c * (h / 2) * (w / 2), 1), kind: .int32)
            }
            saved = try plan.savedSlots.map { try floats(2 * $0) }
            labels = try d.makeBuffer(count: max(batch, 1), kind: .int32)
            perSample = try floats(2 * batch)
        }

        /// A workspace for `batch` images in the buffers of `larger` (whose
        /// batch is at least `batch`): every buffer holds one image after
        /// another (or, for the per-channel saved statistics, does not
        /// depend on the batch), and each operation reads and writes the
        /// first `batch` images' part only, so the numbers are those of a
        /// workspace of its own. Training's last, partial batch and the
        /// evaluation's take no memory of their own this way. The two
        /// workspaces must not be in use at once: the trainer runs one batch
        /// after the other on one queue, and a batch's loss read-back is
        /// queued before the next batch's work (``TrainableNetwork/requestBatchResult(_:)``).
        init(plan: NetworkPlan, batch: Int, sharing larger: Workspace) {
            precondition(batch <= larger.batch, "Workspace: \(batch) images in the buffers of \(larger.batch)")
            self.batch = batch
            backing = larger
            activations = larger.activations
            gradients = larger.gradients
            argmax = larger.argmax
            saved = larger.saved
            labels = larger.labels
            perSample = larger.perSample
        }

        /// The buffer of the input's gradient, made once (in the larger
        /// workspace for a view of one).
        func inputGradient(_ plan: NetworkPlan) throws -> Buffer {
            if let backing { return try backing.inputGradient(plan) }
            if let inputGradientBuffer { return inputGradientBuffer }
            let buffer = try plan.device.makeBuffer(count: max(batch * plan.inputSize, 1), kind: .float32)
            inputGradientBuffer = buffer
            return buffer
        }

        /// Makes the gradient buffers the backward pass writes, once (in
        /// the larger workspace for a view of one).
        func prepareBackward(_ plan: NetworkPlan) throws {
            guard scratch == nil else { return }
            if let backing {
                try backing.prepareBackward(plan)
                gradients = backing.gradients
                scratch = backing.scratch
                return
            }
            let d = plan.device
            func floats(_ n: Int) throws -> Buffer { try d.makeBuffer(count: max(n, 1), kind: .float32) }
            for (index, (size, needed)) in zip(plan.activationSizes, plan.needsGradient).enumerated()
            where needed && gradients[index] == nil && plan.sharedGradient[index] == nil {
                gradients[index] = try floats(batch * size)
            }
            for (index, sum) in plan.sharedGradient.enumerated() {
                if let sum { gradients[index] = gradients[sum] }
            }
            scratch = try floats(batch * (plan.activationSizes.max() ?? 1))
        }
    }

    /// The workspace for `batch` images, made on first use: in the buffers
    /// of the largest workspace made so far when that one holds as many
    /// images (``Workspace/init(plan:batch:sharing:)``), else its own.
    public func workspace(batch: Int) throws -> Workspace {
        if let w = workspaces[batch] { return w }
        let w: Workspace
        if let larger = workspaces.values.filter({ $0.ownsBuffers && $0.batch >= batch }).max(by: {
            $0.batch < $1.batch
        }) {
            w = Workspace(plan: self, batch: batch, sharing: larger)
        } else {
            w = try Workspace(plan: self, batch: batch)
        }
        workspaces[batch] = w
        return w
    }

    /// Elements of one image's input.
    public var inputSize: Int { inputChannels * inputHeight * inputWidth }

    /// Uploads `images` (batch · ``inputSize`` normalised floats) and `labels`.
    /// A workspace that shares a larger one's buffers (``workspace(batch:)``)
    /// gets zeros after its images (uploads fill whole buffers).
    public func setBatch(_ w: Workspace, images: [Float], labels: [Int32]) throws {
        precondition(images.count == w.batch * inputSize && labels.count == w.batch)
        if w.ownsBuffers {
            try device.upload(images, to: w.input)
            try device.upload(labels, to: w.labels)
        } else {
            try device.upload(images + [Float](repeating: 0, count: w.input.count - images.count), to: w.input)
            try device.upload(labels + [Int32](repeating: 0, count: w.labels.count - labels.count), to: w.labels)
        }
    }

    /// ``setBatch(_:images:labels:)`` with seeded random values: images
    /// uniform in [−2, 2), labels uniform over the classes (`random`'s
    /// images first, then its labels), for timings that need no data set.
    public func setRandomBatch(_ w: Workspace, random: inout SeededRandom) throws {
        let images = (0..<(w.batch * inputSize)).map { _ in random.uniform(2) }
        try setBatch(w, images: images, labels: (0..<w.batch).map { _ in Int32(random.next() % UInt64(classes)) })
    }

    /// The forward pass and the loss on the batch in `w`, queued. With
    /// `training`, BatchNorm normalises with the batch's statistics and
    /// updates its running ones (and ``batchesTracked`` counts the pass);
    /// otherwise it uses the running statistics, as PyTorch's `eval()`.
    public func forward(_ w: Workspace, training: Bool) throws {
        precondition(
            !training || formedInferenceAffines == nil, "NetworkPlan: a training pass inside withParametersFixed")
        w.unwrittenOutputs.removeAll(keepingCapacity: true)
        if !training, fusesInference, let d = device as? InferenceDevice {
            return try fusedInferenceForward(w, device: d)
        }
        w.holdsFusedPass = false
        let d = device
        let b = w.batch
        for (index, op) in operations.enumerated() {
            guard training else {
                try forwardOperation(op, w, training: false)
                continue
            }
            if isFusedIntoPrevious(index) { continue }
            let relu = trainingFusedRelu(index)
            try forwardOperation(op, w, training: true, relu: relu)
            if relu != nil { w.unwrittenOutputs.append(index) }
        }
        // Logits read, their gradient written, labels read, losses and flags written.
        try perform("loss", "loss", "forward", floats: 2 * b * classes + 3 * b) {
            try d.softmaxCrossEntropy(
                batch: b, classes: classes, logits: w.logits, labels: w.labels,
                gradLogits: w.gradients[w.gradients.count - 1]!, perSample: w.perSample)
        }
        if training { batchesTracked += 1 }
    }

    /// One operation of the layer-by-layer forward pass; with `relu` (a
    /// training-mode pass, ``trainingFusedRelu(_:)``), that ReLU in the same
    /// device operation, which writes the ReLU's output instead of its own.
    func forwardOperation(_ op: Operation, _ w: Workspace, training: Bool, relu: Operation? = nil) throws {
        let d = device
        let b = w.batch
        let input = w.activations[op.inputs[0]]
        let output = w.activations[relu?.output ?? op.output]
        let p = op.path
        let (inFloats, outFloats) = (b * activationSizes[op.inputs[0]], b * activationSizes[op.output])
        switch op.kind {
        case .conv(let spec, let h, let wd, let weight, let bias):
            let shape = convShape(spec, batch: b, height: h, width: wd)
            try perform(
                p, "conv", "forward", multiplyAdds: shape.multiplyAdds,
                floats: inFloats + weightFloats(weight, bias) + outFloats
            ) {
                try d.conv2dForward(
                    shape, input: input, weight: parameters[weight].buffer,
                    bias: bias.map { parameters[$0].buffer }, output: output)
            }
        case .batchNorm(let c, let h, let wd, let gamma, let beta, let mean, let variance, let slot):
            if training, let sync = batchNormSynchronization {
                try perform(p, "batchnorm", "forward", floats: inFloats + 6 * c + outFloats) {
                    try synchronizedBatchNormForward(
                        sync, BatchNormShape(batch: b, channels: c, height: h, width: wd), input: input,
                        gamma: parameters[gamma].buffer, beta: parameters[beta].buffer,
                        runningMean: statistics[mean].buffer, runningVar: statistics[variance].buffer,
                        saved: w.saved[slot], output: output)
                }
                return
            }
            if relu != nil {
                try perform(p, "batchnorm_relu", "forward", floats: inFloats + 6 * c + outFloats) {
                    try d.batchNormReluForward(
                        BatchNormShape(batch: b, channels: c, height: h, width: wd), input: input,
                        gamma: parameters[gamma].buffer, beta: parameters[beta].buffer,
                        runningMean: statistics[mean].buffer, runningVar: statistics[variance].buffer,
                        saved: w.saved[slot], output: output, training: training)
                }
                return
            }
            try perform(p, "batchnorm", "forward", floats: inFloats + 6 * c + outFloats) {
                try d.batchNormForward(
                    BatchNormShape(batch: b, channels: c, height: h, width: wd), input: input,
                    gamma: parameters[gamma].buffer, beta: parameters[beta].buffer,
                    runningMean: statistics[mean].buffer, runningVar: statistics[variance].buffer,
                    saved: w.saved[slot], output: output, training: training)
            }
        case .relu:
            try perform(p, "relu", "forward", floats: inFloats + outFloats) {
                try d.reluForward(count: b * activationSizes[op.output], input: input, output: output)
            }
        case .maxPool2(let c, let h, let wd, let slot):
            try perform(p, "maxpool", "forward", floats: inFloats + 2 * outFloats) {
                try d.maxPool2Forward(
                    PoolShape(batch: b, channels: c, height: h, width: wd), input: input, output: output,
                    argmax: w.argmax[slot])
            }
        case .globalAveragePool(let c, let h, let wd):
            try perform(p, "avgpool", "forward", floats: inFloats + outFloats) {
                try d.globalAveragePoolForward(
                    FeatureMapShape(batch: b, channels: c, height: h, width: wd), input: input, output: output)
            }
        case .linear(let spec, let weight, let bias):
            let biasBuffer = try biasBuffer(bias, features: spec.outFeatures).bias
            try perform(
                p, "linear", "forward", multiplyAdds: b * spec.inFeatures * spec.outFeatures,
                floats: inFloats + weightFloats(weight, bias) + outFloats
            ) {
                try d.linearForward(
                    LinearShape(batch: b, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures),
                    input: input, weight: parameters[weight].buffer, bias: biasBuffer, output: output)
            }
        case .add where relu != nil:
            try perform(p, "add_relu", "forward", floats: 3 * outFloats) {
                try d.residualAddRelu(
                    count: b * activationSizes[op.output], input, w.activations[op.inputs[1]], output: output)
            }
        case .add:
            try perform(p, "add", "forward", floats: 3 * outFloats) {
                try d.residualAdd(
                    count: b * activationSizes[op.output], input, w.activations[op.inputs[1]], output: output)
            }
        }
    }

    /// The backward pass from the mean loss of the last training-mode
    /// ``forward(_:training:)`` into ``gradients`` (overwritten, not added to).
    public func backward(_ w: Workspace) throws { try backward(w, training: true, input: nil) }

    /// ∂(Σ_k u[b,k]·logits[b,k])/∂input[b] for each image b of the last
    /// eval-mode ``forward(_:training:)``, u = `cotangent` (B × classes): the
    /// backward pass of the eval-mode network (BatchNorm the affine map of
    /// its running statistics, so images do not interact) from u to the
    /// input, (B × ``inputSize``). Row k of image b's Jacobian
    /// ∂logits/∂input is the result for u = e_k. ``gradients`` are
    /// overwritten too.
    public func inputGradient(_ w: Workspace, cotangent: [Float]) throws -> [Float] {
        precondition(cotangent.count == w.batch * classes, "inputGradient: \(cotangent.count) cotangent values")
        if let first = operations.first(where: { $0.inputs.contains(0) && !needsGradient[$0.output] }) {
            throw NetworkPlanError.inputGradientUnavailable(first.path)
        }
        try writeFusedActivations(w)
        try w.prepareBackward(self)
        let input = try w.inputGradient(self)
        let logitsGradient = w.gradients[w.gradients.count - 1]!
        try device.upload(
            cotangent + [Float](repeating: 0, count: logitsGradient.count - cotangent.count), to: logitsGradient)
        try backward(w, training: false, input: input)
        return Array(try device.floats(input).prefix(w.batch * inputSize))
    }

    /// The backward pass: training mode (BatchNorm through its batch
    /// statistics) or eval mode; with `input`, the input's gradient too.
    private func backward(_ w: Workspace, training: Bool, input inputGradient: Buffer?) throws {
        try w.prepareBackward(self)
        let d = device
        let b = w.batch
        let scratch = w.scratch!
        // Which activations' gradients are written so far (reused: no allocation per step).
        written.removeAll(keepingCapacity: true)
        written.append(contentsOf: repeatElement(false, count: activationSizes.count))
        written[activationSizes.count - 1] = true
        reluDone.removeAll(keepingCapacity: true)
        reluDone.append(contentsOf: repeatElement(false, count: operations.count))
        /// The gradient buffer of activation `index` (the input's: `inputGradient`).
        func gradient(_ index: Int) -> Buffer { index == 0 ? inputGradient! : w.gradients[index]! }
        /// Where the gradient of activation `index` goes: its buffer the first
        /// time, the scratch buffer (added afterwards by `settle`) after that.
        func target(_ index: Int) -> Buffer { written[index] ? scratch : gradient(index) }
        /// Whether operation `index` is a ReLU whose mask BatchNorm's backward pass applies.
        func isInsideBatchNorm(_ index: Int) -> Bool {
            guard training, isFusedIntoPrevious(index), case .batchNorm = operations[index - 1].kind else {
                return false
            }
            return true
        }
        /// Adds a second gradient of activation `index` (in scratch) to it,
        /// after operation `reader` wrote it; where that is the last part of
        /// the gradient of a ReLU's output (``summedRelu``), the ReLU's
        /// backward pass takes the sum instead.
        func settle(_ index: Int, _ path: String, reader: Int) throws {
            defer { written[index] = true }
            guard written[index] else { return }
            let g = gradient(index)
            let count = b * activationSizes[index]
            if let (relu, last) = summedRelu[index], last == reader, !isInsideBatchNorm(relu) {
                let reluInput = operations[relu].inputs[0]
                try perform(operations[relu].path, "relu", "backward_sum", floats: 4 * count) {
                    try d.reluBackwardSum(
                        count: count, output: w.activations[index], gradOutput: g, addend: scratch,
                        gradInput: gradient(reluInput))
                }
                written[reluInput] = true
                reluDone[relu] = true
                return
            }
            try perform(path, "add", "grad_sum", floats: 3 * count) {
                try d.residualAdd(count: count, g, scratch, output: g)
            }
        }
        for index in operations.indices.reversed() {
            let op = operations[index]
            // A ReLU fused into the BatchNorm before it: its mask is applied inside BatchNorm's backward.
            if isInsideBatchNorm(index) { continue }
            var fused: Operation?
            if training, let relu = trainingFusedRelu(index), case .batchNorm = op.kind { fused = relu }
            guard let gradOutput = w.gradients[fused?.output ?? op.output] else { continue }
            let inputIndex = op.inputs[0]
            let input = w.activations[inputIndex]
            let wantInput = needsGradient[inputIndex] || (inputIndex == 0 && inputGradient != nil)
            let p = op.path
            let (inFloats, outFloats) = (b * activationSizes[inputIndex], b * activationSizes[op.output])
            switch op.kind {
            case .conv(let spec, let h, let wd, let weight, let bias):
                let shape = convShape(spec, batch: b, height: h, width: wd)
                try perform(
                    p, "conv", "weight_grad", multiplyAdds: shape.multiplyAdds,
                    floats: inFloats + outFloats + weightFloats(weight, bias)
                ) {
                    try d.conv2dBackwardWeight(
                        shape, input: input, gradOutput: gradOutput, gradWeight: gradients[weight],
                        gradBias: bias.map { gradients[$0] })
                }
                if wantInput {
                    let gradInput = target(inputIndex)
                    try perform(
                        p, "conv", "data_grad", multiplyAdds: shape.multiplyAdds,
                        floats: outFloats + weightFloats(weight, nil) + inFloats
                    ) {
                        try d.conv2dBackwardData(
                            shape, gradOutput: gradOutput, weight: parameters[weight].buffer, gradInput: gradInput)
                    }
                    try settle(inputIndex, p, reader: index)
                }
            case .batchNorm(let c, let h, let wd, let gamma, let beta, _, _, let slot):
                if training, let sync = batchNormSynchronization {
                    let shape = BatchNormShape(batch: b, channels: c, height: h, width: wd)
                    try perform(
                        p, "batchnorm", "backward", floats: inFloats + outFloats + (wantInput ? inFloats : 0) + 5 * c
                    ) {
                        try d.batchNormBackwardSums(
                            shape, input: input, saved: w.saved[slot], gradOutput: gradOutput,
                            gradGamma: gradients[gamma], gradBeta: gradients[beta])
                        guard wantInput else { return }
                        let (sumDy, sumDyXhat) = try synchronizedSums(channels: c)
                        let added = try sync.addWeighted(try d.floats(gradients[beta]) + d.floats(gradients[gamma]))
                        try d.upload(added[0..<c].map { Float($0) }, to: sumDy)
                        try d.upload(added[c...].map { Float($0) }, to: sumDyXhat)
                        try d.batchNormBackwardApply(
                            shape, input: input, gamma: parameters[gamma].buffer, saved: w.saved[slot],
                            gradOutput: gradOutput, sumDy: sumDy, sumDyXhat: sumDyXhat, gradInput: target(inputIndex))
                    }
                    if wantInput { try settle(inputIndex, p, reader: index) }
                    continue
                }
                let gradInput = wantInput ? target(inputIndex) : scratch
                if let fused {
                    // The ReLU's output read as its mask, besides BatchNorm's input and the gradient.
                    try perform(
                        p, "batchnorm_relu", "backward",
                        floats: inFloats + 2 * outFloats + (wantInput ? inFloats : 0) + 5 * c
                    ) {
                        try d.batchNormReluBackward(
                            BatchNormShape(batch: b, channels: c, height: h, width: wd), input: input,
                            gamma: parameters[gamma].buffer, saved: w.saved[slot],
                            output: w.activations[fused.output], gradOutput: gradOutput, gradInput: gradInput,
                            gradGamma: gradients[gamma], gradBeta: gradients[beta], training: training)
                    }
                    if wantInput { try settle(inputIndex, p, reader: index) }
                    continue
                }
                try perform(
                    p, "batchnorm", "backward", floats: inFloats + outFloats + (wantInput ? inFloats : 0) + 5 * c
                ) {
                    try d.batchNormBackward(
                        BatchNormShape(batch: b, channels: c, height: h, width: wd), input: input,
                        gamma: parameters[gamma].buffer, saved: w.saved[slot], gradOutput: gradOutput,
                        gradInput: gradInput, gradGamma: gradients[gamma],
                        gradBeta: gradients[beta], training: training)
                }
                if wantInput { try settle(inputIndex, p, reader: index) }
            case .relu:
                guard wantInput, !reluDone[index] else { continue }
                let gradInput = target(inputIndex)
                try perform(p, "relu", "backward", floats: 3 * outFloats) {
                    try d.reluBackward(
                        count: b * activationSizes[op.output], output: w.activations[op.output],
                        gradOutput: gradOutput, gradInput: gradInput)
                }
                try settle(inputIndex, p, reader: index)
            case .maxPool2(let c, let h, let wd, let slot):
                guard wantInput else { continue }
                let gradInput = target(inputIndex)
                try perform(p, "maxpool", "backward", floats: 2 * outFloats + inFloats) {
                    try d.maxPool2Backward(
                        PoolShape(batch: b, channels: c, height: h, width: wd), gradOutput: gradOutput,
                        argmax: w.argmax[slot], gradInput: gradInput)
                }
                try settle(inputIndex, p, reader: index)
            case .globalAveragePool(let c, let h, let wd):
                guard wantInput else { continue }
                let gradInput = target(inputIndex)
                try perform(p, "avgpool", "backward", floats: outFloats + inFloats) {
                    try d.globalAveragePoolBackward(
                        FeatureMapShape(batch: b, channels: c, height: h, width: wd), gradOutput: gradOutput,
                        gradInput: gradInput)
                }
                try settle(inputIndex, p, reader: index)
            case .linear(let spec, let weight, let bias):
                let gradInput = wantInput ? target(inputIndex) : nil
                let gradBias = try bias.map { gradients[$0] } ?? (biasBuffer(nil, features: spec.outFeatures).gradient)
                try perform(
                    p, "linear", "backward", multiplyAdds: (wantInput ? 2 : 1) * b * spec.inFeatures * spec.outFeatures,
                    floats: inFloats + outFloats + 2 * weightFloats(weight, bias) + (wantInput ? inFloats : 0)
                ) {
                    try d.linearBackward(
                        LinearShape(batch: b, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures),
                        input: input, weight: parameters[weight].buffer, gradOutput: gradOutput,
                        gradInput: gradInput, gradWeight: gradients[weight], gradBias: gradBias)
                }
                if wantInput { try settle(inputIndex, p, reader: index) }
            case .add:
                // The sum's gradient reaches both addends unchanged.
                for (addend, index) in op.inputs.enumerated()
                where needsGradient[index] || (index == 0 && inputGradient != nil) {
                    if sharedGradient[index] == op.output {
                        written[index] = true
                        continue
                    }
                    let g = gradient(index)
                    if written[index] {
                        try perform(p, "add", "backward", floats: 3 * b * activationSizes[index], addend: addend) {
                            try d.residualAdd(count: b * activationSizes[index], g, gradOutput, output: g)
                        }
                    } else {
                        try perform(p, "add", "backward", floats: 2 * b * activationSizes[index], addend: addend) {
                            try d.copy(gradOutput, to: g)
                        }
                        written[index] = true
                    }
                }
            }
        }
    }

    /// A training-mode BatchNorm over the global batch of the processes of
    /// `sync` (the formulas are ``BatchNormSynchronization``'s): the
    /// per-channel sums on the device, their sums over the processes on the
    /// host, the statistics and the running update in float64 on the host
    /// (as ``HostDevice`` computes them), then the normalisation on the device.
    private func synchronizedBatchNormForward(
        _ sync: BatchNormSynchronization, _ s: BatchNormShape, input: Buffer, gamma: Buffer, beta: Buffer,
        runningMean: Buffer, runningVar: Buffer, saved: Buffer, output: Buffer
    ) throws {
        let d = device
        let c = s.channels
        let (sums, _) = try synchronizedSums(channels: c)
        try d.batchNormChannelSums(s, input: input, saved: saved, centred: false, sums: sums)
        let (n, total) = try sync.addCounted(try d.floats(sums), count: s.valuesPerChannel)
        guard n > 1 else {
            throw NetworkPlanError.tooFewValues(Int(n))
        }
        let mean = total.map { $0 / n }
        var savedValues = mean.map { Float($0) } + [Float](repeating: 0, count: c)
        try d.upload(savedValues, to: saved)
        try d.batchNormChannelSums(s, input: input, saved: saved, centred: true, sums: sums)
        let squares = try sync.add(try d.floats(sums))
        var rm = try d.floats(runningMean)
        var rv = try d.floats(runningVar)
        let m = Double(s.momentum)
        for ch in 0..<c {
            let variance = squares[ch] / n
            savedValues[c + ch] = Float(1 / (variance + Double(s.epsilon)).squareRoot())
            rm[ch] = Float((1 - m) * Double(rm[ch]) + m * mean[ch])
            rv[ch] = Float((1 - m) * Double(rv[ch]) + m * variance * n / (n - 1))
        }
        try d.upload(savedValues, to: saved)
        try d.upload(rm, to: runningMean)
        try d.upload(rv, to: runningVar)
        try d.batchNormApply(s, input: input, gamma: gamma, beta: beta, saved: saved, output: output)
    }

    /// Two buffers of `channels` floats, made once per channel count.
    private func synchronizedSums(channels: Int) throws -> (Buffer, Buffer) {
        if let made = synchronizedSums[channels] { return made }
        let made = (
            try device.makeBuffer(count: channels, kind: .float32),
            try device.makeBuffer(count: channels, kind: .float32)
        )
        synchronizedSums[channels] = made
        return made
    }

    /// The output of the operation at layer path `path` for the last forward
    /// pass (for layer-by-layer comparisons), or nil for a path with no
    /// output of its own (flatten).
    public func activation(_ w: Workspace, path: String) throws -> [Float]? {
        guard let op = operations.first(where: { $0.path == path }) else { return nil }
        try writeUnwrittenActivations(w)
        let values = try device.floats(w.activations[op.output])
        return Array(values.prefix(w.batch * activationSizes[op.output]))
    }

    /// Writes every activation that the last forward pass left unwritten:
    /// those inside the layers an eval-mode pass fused
    /// (``writeFusedActivations(_:)``), and the outputs of the BatchNorms
    /// and sums a training-mode pass fused a ReLU into, from their inputs
    /// and the pass's saved statistics (the values the unfused pass writes).
    func writeUnwrittenActivations(_ w: Workspace) throws {
        try writeFusedActivations(w)
        let b = w.batch
        for index in w.unwrittenOutputs {
            let op = operations[index]
            let output = w.activations[op.output]
            switch op.kind {
            case .batchNorm(let c, let h, let wd, let gamma, let beta, _, _, let slot):
                try device.batchNormApply(
                    BatchNormShape(batch: b, channels: c, height: h, width: wd), input: w.activations[op.inputs[0]],
                    gamma: parameters[gamma].buffer, beta: parameters[beta].buffer, saved: w.saved[slot],
                    output: output)
            case .add:
                try device.residualAdd(
                    count: b * activationSizes[op.output], w.activations[op.inputs[0]], w.activations[op.inputs[1]],
                    output: output)
            default:
                preconditionFailure("NetworkPlan: \(op.path) fuses no ReLU")
            }
        }
        w.unwrittenOutputs.removeAll(keepingCapacity: true)
    }

    /// Floats of parameter `weight` and of the optional `bias`.
    func weightFloats(_ weight: Int, _ bias: Int?) -> Int {
        ([weight] + (bias.map { [$0] } ?? [])).reduce(0) { $0 + parameters[$1].shape.reduce(1, *) }
    }

    func convShape(_ spec: Conv2dSpec, batch: Int, height: Int, width: Int) -> Conv2dShape {
        Conv2dShape(
            batch: batch, inChannels: spec.inChannels, outChannels: spec.outChannels, height: height, width: width,
            kernelHeight: spec.kernelSize, kernelWidth: spec.kernelSize, stride: spec.stride, padding: spec.padding)
    }

    private func biasBuffer(_ index: Int?, features: Int) throws -> (bias: Buffer, gradient: Buffer) {
        if let index { return (parameters[index].buffer, gradients[index]) }
        if let made = zeroBiases[features] { return made }
        let made = (
            try device.makeBuffer(count: features, kind: .float32),
            try device.makeBuffer(count: features, kind: .float32)
        )
        zeroBiases[features] = made
        return made
    }
}

/// Why a plan refuses a set of tensors.
public enum NetworkPlanError: Error, CustomStringConvertible, Equatable {
    case missingTensor(String)
    case shapeMismatch(name: String, expected: [Int], found: [Int])
    /// The BatchNorms' `num_batches_tracked` differ, which a plan (one count
    /// for all) cannot hold.
    case counterMismatch([Int])
    /// A synchronised BatchNorm's global batch has one value per channel or none.
    case tooFewValues(Int)
    /// The input's gradient does not reach the input: an operation on it
    /// precedes every learned tensor (the backward pass stops before it).
    case inputGradientUnavailable(String)

    public var description: String {
        switch self {
        case .missingTensor(let name): return "the weights have no tensor \(name), which the model needs"
        case .shapeMismatch(let name, let expected, let found):
            return "tensor \(name) has shape \(found), the model's is \(expected)"
        case .counterMismatch(let values):
            return "the BatchNorm layers' num_batches_tracked differ (\(values)); this model counts one for all"
        case .tooFewValues(let n):
            return "a synchronised BatchNorm needs more than one value per channel over all processes (got \(n))"
        case .inputGradientUnavailable(let path):
            return
                "no input gradient: \(path) takes the input before any learned tensor, and the backward pass stops there"
        }
    }
}

extension String {
    fileprivate func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self
    }
}
