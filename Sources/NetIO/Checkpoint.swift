import Foundation

/// A training checkpoint, stored as `checkpoint.safetensors`:
///
/// - the weights as F32 under PyTorch's names (`conv1.weight` [8,1,3,3],
///   `conv2.weight` [16,8,3,3], `fc.weight` [10,400], `fc.bias` [10]);
///   ``weightsOnly`` (`convsvd export --weights-only`) is the file that
///   PyTorch's strict `load_state_dict` accepts;
/// - optimiser state as F32 tensors named `optimizer.<key>` (for example
///   key `m.conv1.weight` → tensor `optimizer.m.conv1.weight`); a key ending
///   in a weight's name takes that weight's shape, any other key is 1-D;
/// - string metadata (epoch, step, seed, optimiser, settings JSON …) in
///   `__metadata__`.
public struct Checkpoint: Equatable, Sendable {
    public var weights: TinyConvNetWeights
    /// Optimiser tensors by key (without the `optimizer.` prefix).
    public var optimizerState: [String: [Float]]
    public var metadata: [String: String]

    /// The prefix that keeps optimiser tensors apart from the weights.
    public static let optimizerPrefix = "optimizer."
    /// The conventional file name.
    public static let fileName = "checkpoint.safetensors"

    public init(weights: TinyConvNetWeights, optimizerState: [String: [Float]] = [:], metadata: [String: String] = [:])
    {
        self.weights = weights
        self.optimizerState = optimizerState
        self.metadata = metadata
    }

    /// The shape an optimiser tensor is stored with: that of the weight whose
    /// name ends the key, else [count].
    public static func optimizerShape(key: String, count: Int) -> [Int] {
        for (name, shape) in TinyConvNetWeights.tensorShapes where key == name || key.hasSuffix("." + name) {
            if shape.reduce(1, *) == count { return shape }
        }
        return [count]
    }

    /// The safetensors form: weights first (checkpoint order), then the
    /// optimiser tensors sorted by key.
    public var safetensors: SafetensorsFile {
        var tensors = weights.tensors.map { SafetensorsTensor(name: $0.name, shape: $0.shape, floats: $0.values) }
        for key in optimizerState.keys.sorted() {
            let values = optimizerState[key]!
            tensors.append(
                SafetensorsTensor(
                    name: Self.optimizerPrefix + key,
                    shape: Self.optimizerShape(key: key, count: values.count), floats: values))
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }

    /// The model alone, for PyTorch: the four weights and no optimiser
    /// tensors, so that `model.load_state_dict(load_file(path), strict=True)`
    /// accepts it (a strict load rejects the `optimizer.*` keys). The metadata
    /// keeps `epoch`, `settings` and `device` but not `optimizer_step`, so
    /// `--resume` refuses the file instead of restarting Adam from zero.
    public var weightsOnly: Checkpoint {
        var metadata = self.metadata
        metadata["optimizer_step"] = nil
        metadata["format"] = "convsvd TinyConvNet weights (a PyTorch state dict)"
        return Checkpoint(weights: weights, metadata: metadata)
    }

    /// Writes the checkpoint atomically.
    public func write(to url: URL) throws {
        try safetensors.write(to: url)
    }

    /// Builds a checkpoint from a parsed file: the four weights must be
    /// present as F32 with their exact shapes; every other tensor must carry
    /// the `optimizer.` prefix. With `requireFinite`, a NaN or infinity in
    /// any tensor is an error naming it.
    public init(_ file: SafetensorsFile, fileName: String = Checkpoint.fileName, requireFinite: Bool = false) throws {
        var values = [String: [Float]]()
        for (name, shape) in TinyConvNetWeights.tensorShapes {
            values[name] = try file.floats(name, shape: shape, file: fileName)
        }
        var optimizerState = [String: [Float]]()
        let weightNames = Set(TinyConvNetWeights.tensorShapes.map(\.name))
        for t in file.tensors where !weightNames.contains(t.name) {
            guard t.name.hasPrefix(Self.optimizerPrefix), t.name.count > Self.optimizerPrefix.count else {
                throw SafetensorsError.badEntry(
                    file: fileName, tensor: t.name,
                    reason: "not a TinyConvNet weight and not optimiser state (\"\(Self.optimizerPrefix)…\")")
            }
            optimizerState[String(t.name.dropFirst(Self.optimizerPrefix.count))] = try t.floats(file: fileName)
        }
        if requireFinite {
            let all =
                TinyConvNetWeights.tensorShapes.map { ($0.name, values[$0.name]!) }
                + optimizerState.keys.sorted().map { (Self.optimizerPrefix + $0, optimizerState[$0]!) }
            for (name, v) in all {
                if let i = v.firstIndex(where: { !$0.isFinite }) {
                    throw SafetensorsError.notFinite(file: fileName, tensor: name, index: i, value: "\(v[i])")
                }
            }
        }
        self.init(
            weights: TinyConvNetWeights(
                conv1: values["conv1.weight"]!, conv2: values["conv2.weight"]!,
                fcWeight: values["fc.weight"]!, fcBias: values["fc.bias"]!),
            optimizerState: optimizerState, metadata: file.metadata)
    }

    /// Reads and validates a checkpoint file (see ``init(_:fileName:requireFinite:)``).
    public static func read(from url: URL, requireFinite: Bool = false) throws -> Checkpoint {
        try Checkpoint(SafetensorsFile.read(from: url), fileName: url.lastPathComponent, requireFinite: requireFinite)
    }
}
