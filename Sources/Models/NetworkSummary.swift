/// One tensor of a network's PyTorch `state_dict`.
public struct ParameterDescription: Hashable, Sendable {
    /// Learned (in `parameters()`, updated by the optimiser) or a buffer
    /// (BatchNorm's running statistics, saved but not learned).
    public enum Role: String, Hashable, Sendable {
        case learned, buffer
    }

    /// The element type PyTorch stores: float32, or int64 for `num_batches_tracked`.
    public enum ElementType: String, Hashable, Sendable {
        case float32, int64
    }

    /// The `state_dict` key: "layer1.0.bn1.running_mean".
    public var name: String
    /// PyTorch's shape; [] for a scalar (`num_batches_tracked`).
    public var shape: [Int]
    public var role: Role
    public var elementType: ElementType

    public init(name: String, shape: [Int], role: Role, elementType: ElementType = .float32) {
        self.name = name
        self.shape = shape
        self.role = role
        self.elementType = elementType
    }

    /// The product of the shape (1 for a scalar).
    public var count: Int { shape.reduce(1, *) }
}

/// One row of a network's summary: a layer, or the add that ends a residual block.
public struct LayerSummary: Hashable, Sendable {
    /// The layer's PyTorch path ("layer1.0.conv1"); for a residual block's
    /// add, the block's path.
    public var path: String
    /// How many residual blocks hold this row (0 at the top level).
    public var depth: Int
    /// For people: "conv 16→32 3×3 stride 2 pad 1", "add (projection shortcut)".
    public var operation: String
    public var input: ActivationShape
    public var output: ActivationShape
    /// The layer's tensors in `state_dict` order.
    public var parameters: [ParameterDescription]
    /// Multiply-adds of the forward pass per image (conv and linear only).
    public var multiplyAdds: Int
    /// Whether training computes this layer's input gradient: false for
    /// layers that no learned parameter precedes (the first conv's input is
    /// the image). Only conv and linear rows cost anything for it.
    public var inputGradientNeeded: Bool

    /// Multiply-adds of one training step per image: the forward, the weight
    /// gradient (as many as the forward) and, where needed, the input
    /// gradient (as many again).
    public var trainingMultiplyAdds: Int { multiplyAdds * (inputGradientNeeded ? 3 : 2) }
}

/// A network bound to an input shape: every layer's shapes, tensors and
/// multiply-adds, from ``NetworkDescription/summary(input:classes:)``.
///
/// Counting convention: a multiply-add (MAC) is one multiplication and one
/// addition of a conv or linear layer (C_out · C_in · k² · H' · W' and
/// F_out · F_in per image); bias adds, BatchNorm, ReLU, pools and residual
/// adds count zero. A training step costs per image 2 × (forward + weight
/// gradient + input gradient) MACs in FLOPs, where the weight and input
/// gradients cost as many MACs as the forward and the layers whose input
/// gradient is not needed (``LayerSummary/inputGradientNeeded``) skip it.
public struct NetworkSummary: Hashable, Sendable {
    public var name: String
    public var input: ActivationShape
    public var output: ActivationShape
    public var layers: [LayerSummary]

    /// The `state_dict`, in PyTorch's order.
    public var parameters: [ParameterDescription] { layers.flatMap(\.parameters) }
    /// Learned parameters (what "77,754 parameters" counts).
    public var learnedParameterCount: Int { count(.learned) }
    /// Elements of the buffers (running mean and variance, and one
    /// `num_batches_tracked` per BatchNorm).
    public var bufferElementCount: Int { count(.buffer) }
    /// Forward multiply-adds per image.
    public var multiplyAdds: Int { layers.reduce(0) { $0 + $1.multiplyAdds } }
    /// FLOPs (2 per multiply-add) of one training step per image.
    public var trainingFLOPsPerImage: Int { 2 * layers.reduce(0) { $0 + $1.trainingMultiplyAdds } }

    /// FLOPs of one epoch of training on `images` images.
    public func trainingFLOPs(images: Int) -> Double { Double(trainingFLOPsPerImage) * Double(images) }

    private func count(_ role: ParameterDescription.Role) -> Int {
        parameters.reduce(0) { $0 + ($1.role == role ? $1.count : 0) }
    }
}

extension NetworkDescription {
    /// Infers every layer's shapes for one image of shape `input` (a map),
    /// names every tensor and counts parameters and multiply-adds.
    ///
    /// - Parameter classes: when given, the network must end in a vector of
    ///   this many features.
    /// - Throws: ``ModelError`` naming the layer's path and both shapes: a
    ///   channel count that does not chain, a map that shrinks to nothing, a
    ///   residual block whose body and shortcut differ, a linear layer's
    ///   input size, a bad value, two tensors with one name, a count beyond
    ///   64 bits. Every count of a summary it returns fits in an `Int`.
    public func summary(input: ActivationShape, classes: Int? = nil) throws -> NetworkSummary {
        guard case .map(let c, let h, let w) = input, c > 0, h > 0, w > 0 else {
            throw ModelError(.badValue, at: "", "the input must be maps with positive sizes, got \(input)")
        }
        var walker = ShapeWalker()
        let (output, _) = try walker.walk(
            layers, prefix: "", defaultPrefix: "", input: input, learnedUpstream: false, depth: 0)
        if let classes {
            guard case .vector(let features) = output, features == classes else {
                let hint: String
                if case .vector = output {
                    hint = "its last linear layer must have \(classes) outputs"
                } else {
                    hint = "end it with flatten and a linear layer with \(classes) outputs"
                }
                throw ModelError(
                    .classMismatch, at: "",
                    "the network gives \(output) per image but the dataset has \(classes) classes: \(hint)")
            }
        }
        let summary = NetworkSummary(name: name, input: input, output: output, layers: walker.rows)
        // The totals' sums, checked once here so that the properties above cannot overflow.
        var training = 0
        var elements = 0
        for row in walker.rows {
            training = try checkedSum([training, row.multiplyAdds, row.multiplyAdds, row.multiplyAdds], at: row.path)
            for p in row.parameters { elements = try checkedSum([elements, p.count], at: p.name) }
        }
        _ = try checkedSum([training, training], at: "the whole network")
        return summary
    }
}

private func checkedProduct(_ values: [Int], at location: String) throws -> Int {
    var product = 1
    for v in values {
        let (r, overflow) = product.multipliedReportingOverflow(by: v)
        if overflow { throw ModelError(.tooLarge, at: location, "a count exceeds 2^63") }
        product = r
    }
    return product
}

private func checkedSum(_ values: [Int], at location: String) throws -> Int {
    var sum = 0
    for v in values {
        let (r, overflow) = sum.addingReportingOverflow(v)
        if overflow { throw ModelError(.tooLarge, at: location, "a count exceeds 2^63") }
        sum = r
    }
    return sum
}

/// Whether `name` is dot-joined parts of ASCII letters, digits and `_`.
func isValidLayerName(_ name: String) -> Bool {
    let parts = name.split(separator: ".", omittingEmptySubsequences: false)
    return !parts.isEmpty
        && parts.allSatisfy { part in
            !part.isEmpty
                && part.unicodeScalars.allSatisfy {
                    ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
                }
        }
}

/// Shape inference over a list of layers, appending one row per layer.
private struct ShapeWalker {
    var rows: [LayerSummary] = []
    /// Tensor name → the path of the layer that holds it.
    var owners: [String: String] = [:]

    /// Walks `layers` from `input`; `learnedUpstream` says whether a learned
    /// parameter precedes them (then conv and linear need input gradients).
    /// Returns the output shape and whether a learned parameter precedes it.
    mutating func walk(
        _ layers: [LayerDescription], prefix: String, defaultPrefix: String, input: ActivationShape,
        learnedUpstream: Bool, depth: Int
    ) throws -> (ActivationShape, Bool) {
        var shape = input
        var learned = learnedUpstream
        for (index, layer) in layers.enumerated() {
            let local = layer.name ?? "\(defaultPrefix)\(index)"
            let path = prefix.isEmpty ? local : "\(prefix).\(local)"
            if let name = layer.name, !isValidLayerName(name) {
                throw ModelError(
                    .badValue, at: path, "a name is parts of letters, digits and _ joined by dots, got \"\(name)\"")
            }
            (shape, learned) = try step(layer.kind, path: path, input: shape, learnedUpstream: learned, depth: depth)
        }
        return (shape, learned)
    }

    private mutating func add(
        _ path: String, depth: Int, _ operation: String, _ input: ActivationShape, _ output: ActivationShape,
        parameters: [ParameterDescription] = [], multiplyAdds: Int = 0, inputGradientNeeded: Bool
    ) throws {
        _ = try checkedProduct(output.dimensions, at: path)
        for p in parameters {
            if let other = owners[p.name] {
                throw ModelError(
                    .duplicateName, at: path,
                    "the tensor name \(p.name) is also \(other)'s: give the layers other names")
            }
            owners[p.name] = path
        }
        rows.append(
            LayerSummary(
                path: path, depth: depth, operation: operation, input: input, output: output, parameters: parameters,
                multiplyAdds: multiplyAdds, inputGradientNeeded: inputGradientNeeded))
    }

    private func maps(_ input: ActivationShape, _ what: String, at path: String) throws -> (Int, Int, Int) {
        guard case .map(let c, let h, let w) = input else {
            throw ModelError(.wrongRank, at: path, "\(what) needs feature maps but gets a vector of \(input) features")
        }
        return (c, h, w)
    }

    private func positive(_ value: Int, _ what: String, at path: String, orZero: Bool = false) throws {
        guard value > 0 || (orZero && value == 0) else {
            throw ModelError(.badValue, at: path, "\(what) must be \(orZero ? "0 or more" : "positive"), got \(value)")
        }
    }

    private mutating func step(
        _ kind: LayerKind, path: String, input: ActivationShape, learnedUpstream: Bool, depth: Int
    ) throws -> (ActivationShape, Bool) {
        switch kind {
        case .conv(let conv):
            try positive(conv.inChannels, "the input channel count", at: path)
            try positive(conv.outChannels, "the output channel count", at: path)
            try positive(conv.kernelSize, "the kernel size", at: path)
            try positive(conv.stride, "the stride", at: path)
            try positive(conv.padding, "the padding", at: path, orZero: true)
            let k = conv.kernelSize
            let operation =
                "conv \(conv.inChannels)→\(conv.outChannels) \(k)×\(k) stride \(conv.stride) pad \(conv.padding)"
                + (conv.bias ? " +bias" : "")
            let (c, h, w) = try maps(input, operation, at: path)
            guard c == conv.inChannels else {
                throw ModelError(
                    .channelMismatch, at: path,
                    "\(operation) expects \(conv.inChannels) input channels but gets \(input)")
            }
            let padded = try checkedSum([h, conv.padding, conv.padding], at: path)
            let paddedWidth = try checkedSum([w, conv.padding, conv.padding], at: path)
            guard padded >= k, paddedWidth >= k else {
                throw ModelError(
                    .emptyMap, at: path,
                    "\(operation) on a \(input) input leaves nothing: the \(h)×\(w) map padded by \(conv.padding) "
                        + "is smaller than the \(k)×\(k) kernel")
            }
            let output = ActivationShape.map(
                channels: conv.outChannels, height: (padded - k) / conv.stride + 1,
                width: (paddedWidth - k) / conv.stride + 1)
            let weight = [conv.outChannels, conv.inChannels, k, k]
            _ = try checkedProduct(weight, at: path)
            var tensors = [ParameterDescription(name: "\(path).weight", shape: weight, role: .learned)]
            if conv.bias {
                tensors.append(ParameterDescription(name: "\(path).bias", shape: [conv.outChannels], role: .learned))
            }
            let macs = try checkedProduct(weight + output.dimensions.dropFirst(), at: path)
            try add(
                path, depth: depth, operation, input, output, parameters: tensors, multiplyAdds: macs,
                inputGradientNeeded: learnedUpstream)
            return (output, true)

        case .batchNorm(let bn):
            try positive(bn.channels, "the channel count", at: path)
            let operation = "batchnorm \(bn.channels)"
            let (c, _, _) = try maps(input, operation, at: path)
            guard c == bn.channels else {
                throw ModelError(
                    .channelMismatch, at: path, "\(operation) expects \(bn.channels) channels but gets \(input)")
            }
            let tensors = [
                ParameterDescription(name: "\(path).weight", shape: [c], role: .learned),
                ParameterDescription(name: "\(path).bias", shape: [c], role: .learned),
                ParameterDescription(name: "\(path).running_mean", shape: [c], role: .buffer),
                ParameterDescription(name: "\(path).running_var", shape: [c], role: .buffer),
                ParameterDescription(
                    name: "\(path).num_batches_tracked", shape: [], role: .buffer, elementType: .int64),
            ]
            try add(
                path, depth: depth, operation, input, input, parameters: tensors, inputGradientNeeded: learnedUpstream)
            return (input, true)

        case .relu:
            try add(path, depth: depth, "relu", input, input, inputGradientNeeded: learnedUpstream)
            return (input, learnedUpstream)

        case .maxPool2:
            let (c, h, w) = try maps(input, "maxpool 2", at: path)
            guard h >= 2, w >= 2 else {
                throw ModelError(
                    .emptyMap, at: path, "maxpool 2 of a \(input) input leaves nothing: a map side is below 2")
            }
            let output = ActivationShape.map(channels: c, height: h / 2, width: w / 2)
            try add(path, depth: depth, "maxpool 2", input, output, inputGradientNeeded: learnedUpstream)
            return (output, learnedUpstream)

        case .globalAveragePool:
            let (c, _, _) = try maps(input, "global average pool", at: path)
            let output = ActivationShape.map(channels: c, height: 1, width: 1)
            try add(path, depth: depth, "global average pool", input, output, inputGradientNeeded: learnedUpstream)
            return (output, learnedUpstream)

        case .flatten:
            let output = ActivationShape.vector(features: try checkedProduct(input.dimensions, at: path))
            try add(path, depth: depth, "flatten", input, output, inputGradientNeeded: learnedUpstream)
            return (output, learnedUpstream)

        case .linear(let linear):
            try positive(linear.inFeatures, "the input size", at: path)
            try positive(linear.outFeatures, "the output size", at: path)
            let operation = "linear \(linear.inFeatures)→\(linear.outFeatures)" + (linear.bias ? " +bias" : "")
            guard case .vector(let features) = input else {
                throw ModelError(
                    .wrongRank, at: path, "\(operation) needs a vector but gets \(input) maps: flatten them first")
            }
            guard features == linear.inFeatures else {
                throw ModelError(
                    .featureMismatch, at: path,
                    "\(operation) expects \(linear.inFeatures) input features but gets \(features)")
            }
            let weight = [linear.outFeatures, linear.inFeatures]
            let macs = try checkedProduct(weight, at: path)
            var tensors = [ParameterDescription(name: "\(path).weight", shape: weight, role: .learned)]
            if linear.bias {
                tensors.append(ParameterDescription(name: "\(path).bias", shape: [linear.outFeatures], role: .learned))
            }
            let output = ActivationShape.vector(features: linear.outFeatures)
            try add(
                path, depth: depth, operation, input, output, parameters: tensors, multiplyAdds: macs,
                inputGradientNeeded: learnedUpstream)
            return (output, true)

        case .residual(let block):
            guard !block.body.isEmpty else {
                throw ModelError(.badValue, at: path, "a residual block's body needs at least one layer")
            }
            let (body, bodyLearned) = try walk(
                block.body, prefix: path, defaultPrefix: "", input: input, learnedUpstream: learnedUpstream,
                depth: depth + 1)
            let shortcut: ActivationShape
            let shortcutLearned: Bool
            let kind: String
            switch block.shortcut {
            case .identity:
                (shortcut, shortcutLearned, kind) = (input, learnedUpstream, "identity")
            case .projection(let layers):
                (shortcut, shortcutLearned) = try walk(
                    layers, prefix: path, defaultPrefix: "downsample.", input: input,
                    learnedUpstream: learnedUpstream, depth: depth + 1)
                kind = "projection"
            }
            guard body == shortcut else {
                throw ModelError(
                    .residualMismatch, at: path,
                    "the residual block's body gives \(body) but its \(kind) shortcut gives \(shortcut) "
                        + "from the \(input) input: the two must agree to be added")
            }
            let learned = bodyLearned || shortcutLearned
            try add(path, depth: depth, "add (\(kind) shortcut)", input, body, inputGradientNeeded: learned)
            if block.reluAfterAdd {
                try add("\(path).relu", depth: depth, "relu", body, body, inputGradientNeeded: learned)
            }
            return (body, learned)
        }
    }
}
