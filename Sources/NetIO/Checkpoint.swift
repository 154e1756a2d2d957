import Foundation

/// A training checkpoint, stored as `checkpoint.safetensors`:
///
/// - the model's tensors as F32 under PyTorch's `state_dict` names, for
///   TinyConvNet `conv1.weight` [8,1,3,3], `conv2.weight` [16,8,3,3],
///   `fc.weight` [10,400], `fc.bias` [10];
///   ``weightsOnly`` (`convsvd export --weights-only`) is the file that
///   PyTorch's strict `load_state_dict` accepts;
/// - optimiser state as F32 tensors named `optimizer.<key>` (for example
///   key `m.conv1.weight` → tensor `optimizer.m.conv1.weight`); a key ending
///   in a weight's name takes that weight's shape, any other key is 1-D;
/// - string metadata (epoch, step, seed, optimiser, settings JSON …) in
///   `__metadata__`.
public struct Checkpoint: Equatable, Sendable {
    /// The model's tensors in `state_dict` order.
    public var tensors: [NamedTensor]
    /// The model's integer scalars (BatchNorm's `num_batches_tracked`),
    /// stored as PyTorch does: I64 tensors of shape [].
    public var counters: [String: Int64]
    /// Optimiser tensors by key (without the `optimizer.` prefix).
    public var optimizerState: [String: [Float]]
    public var metadata: [String: String]
    /// σ of each layer read in SVD coordinates (``SVDFactors``), keyed by
    /// the layer's name (`conv1`), as stored; empty for a plain checkpoint.
    public var svdSigmas: [String: [Float]] = [:]

    /// The prefix that keeps optimiser tensors apart from the weights.
    public static let optimizerPrefix = "optimizer."
    /// The conventional file name.
    public static let fileName = "checkpoint.safetensors"

    public init(
        tensors: [NamedTensor], counters: [String: Int64] = [:], optimizerState: [String: [Float]] = [:],
        metadata: [String: String] = [:]
    ) {
        self.tensors = tensors
        self.counters = counters
        self.optimizerState = optimizerState
        self.metadata = metadata
    }

    /// A TinyConvNet checkpoint.
    public init(weights: TinyConvNetWeights, optimizerState: [String: [Float]] = [:], metadata: [String: String] = [:])
    {
        self.init(
            tensors: weights.tensors.map { NamedTensor(name: $0.name, shape: $0.shape, values: $0.values) },
            optimizerState: optimizerState, metadata: metadata)
    }

    /// TinyConvNet's weights, from a checkpoint read or made for TinyConvNet
    /// (``read(from:requireFinite:)`` checks its four tensors).
    public var weights: TinyConvNetWeights {
        func values(_ name: String) -> [Float] {
            guard let t = tensors.first(where: { $0.name == name }) else {
                preconditionFailure("Checkpoint.weights: not a TinyConvNet checkpoint (no \(name))")
            }
            return t.values
        }
        return TinyConvNetWeights(
            conv1: values("conv1.weight"), conv2: values("conv2.weight"), fcWeight: values("fc.weight"),
            fcBias: values("fc.bias"))
    }

    /// The shape an optimiser tensor is stored with: that of the model
    /// tensor whose name ends the key, else [count].
    public func optimizerShape(key: String, count: Int) -> [Int] {
        for t in tensors where key == t.name || key.hasSuffix("." + t.name) {
            if t.values.count == count { return t.shape }
        }
        return [count]
    }

    /// The safetensors form: the model's tensors first (`state_dict` order),
    /// its counters by name, then the optimiser tensors sorted by key.
    public var safetensors: SafetensorsFile {
        var file = tensors.map { SafetensorsTensor(name: $0.name, shape: $0.shape, floats: $0.values) }
        for name in counters.keys.sorted() {
            let bytes = withUnsafeBytes(of: counters[name]!.littleEndian) { Array($0) }
            file.append(SafetensorsTensor(name: name, dtype: .I64, shape: [], bytes: bytes))
        }
        for key in optimizerState.keys.sorted() {
            let values = optimizerState[key]!
            file.append(
                SafetensorsTensor(
                    name: Self.optimizerPrefix + key, shape: optimizerShape(key: key, count: values.count),
                    floats: values))
        }
        return SafetensorsFile(tensors: file, metadata: metadata)
    }

    /// The model alone, for PyTorch: the four weights and no optimiser
    /// tensors, so that `model.load_state_dict(load_file(path), strict=True)`
    /// accepts it (a strict load rejects the `optimizer.*` keys). The metadata
    /// keeps `epoch`, `settings` and `device` but not `optimizer_step`, so
    /// `--resume` refuses the file instead of restarting Adam from zero.
    public var weightsOnly: Checkpoint {
        var metadata = self.metadata
        metadata["optimizer_step"] = nil
        let model = metadata["format"].flatMap { $0.hasSuffix(" checkpoint") ? String($0.dropLast(11)) : nil }
        metadata["format"] = "\(model ?? "convsvd TinyConvNet") weights (a PyTorch state dict)"
        return Checkpoint(tensors: tensors, counters: counters, metadata: metadata)
    }

    /// Writes the checkpoint atomically.
    public func write(to url: URL) throws {
        try safetensors.write(to: url)
    }

    /// Builds a checkpoint from a parsed file: every tensor of `model`
    /// (name and shape, in `state_dict` order; TinyConvNet's by default) must
    /// be present as F32 with its exact shape; every other tensor must be an
    /// I64 scalar `….num_batches_tracked` or carry the `optimizer.` prefix.
    /// With `requireFinite`, a NaN or infinity in any tensor is an error
    /// naming it.
    ///
    /// A conv weight `name.weight` that the file holds in SVD coordinates
    /// (`name.U`, `name.S`, `name.V`; ``SVDFactors``) is read as W =
    /// U·diag(σ)·Vᵀ, composed in float64, once its U and V are checked to be
    /// orthonormal within ``SVDFactors/orthonormalityLimit`` (an error names
    /// the factor that is not); its σ is kept in ``svdSigmas``. The factors'
    /// optimiser state is then dropped: it belongs to the factors, not W.
    public init(
        _ file: SafetensorsFile, fileName: String = Checkpoint.fileName,
        model: [(name: String, shape: [Int])] = TinyConvNetWeights.tensorShapes,
        modelName: String = "TinyConvNet", requireFinite: Bool = false
    ) throws {
        let composed = try Self.composedWeights(file, fileName: fileName, model: model)
        let tensors = try model.map {
            NamedTensor(
                name: $0.name, shape: $0.shape,
                values: try composed.weights[$0.name] ?? file.floats($0.name, shape: $0.shape, file: fileName))
        }
        var optimizerState = [String: [Float]]()
        var counters = [String: Int64]()
        let modelNames = Set(model.map(\.name)).union(composed.factorNames)
        for t in file.tensors where !modelNames.contains(t.name) {
            if t.name.hasSuffix(".num_batches_tracked") && !t.name.hasPrefix(Self.optimizerPrefix) {
                let values = try t.integers(file: fileName)
                guard t.shape.isEmpty || t.shape == [1], values.count == 1 else {
                    throw SafetensorsError.badEntry(
                        file: fileName, tensor: t.name, reason: "a counter is one integer, found shape \(t.shape)")
                }
                counters[t.name] = values[0]
                continue
            }
            guard t.name.hasPrefix(Self.optimizerPrefix), t.name.count > Self.optimizerPrefix.count else {
                throw SafetensorsError.badEntry(
                    file: fileName, tensor: t.name,
                    reason: "not a \(modelName) weight and not optimiser state (\"\(Self.optimizerPrefix)…\")")
            }
            optimizerState[String(t.name.dropFirst(Self.optimizerPrefix.count))] = try t.floats(file: fileName)
        }
        if requireFinite {
            let all =
                tensors.map { ($0.name, $0.values) }
                + optimizerState.keys.sorted().map { (Self.optimizerPrefix + $0, optimizerState[$0]!) }
            for (name, v) in all {
                if let i = v.firstIndex(where: { !$0.isFinite }) {
                    throw SafetensorsError.notFinite(file: fileName, tensor: name, index: i, value: "\(v[i])")
                }
            }
        }
        if !composed.weights.isEmpty { optimizerState = [:] }
        self.init(tensors: tensors, counters: counters, optimizerState: optimizerState, metadata: file.metadata)
        svdSigmas = composed.sigmas
    }

    /// Reads and validates a checkpoint file of `model`'s tensors (see
    /// ``init(_:fileName:model:modelName:requireFinite:)``).
    public static func read(
        from url: URL, model: [(name: String, shape: [Int])] = TinyConvNetWeights.tensorShapes,
        modelName: String = "TinyConvNet", requireFinite: Bool = false
    ) throws -> Checkpoint {
        try Checkpoint(
            SafetensorsFile.read(from: url), fileName: url.lastPathComponent, model: model, modelName: modelName,
            requireFinite: requireFinite)
    }
}
