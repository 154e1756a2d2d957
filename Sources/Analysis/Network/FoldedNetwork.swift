import Models
import NetIO

/// Why a network cannot be folded and analysed: each case names the tensor
/// or layer at fault.
public enum NetworkAnalysisError: Error, CustomStringConvertible, Equatable {
    /// The weights lack a tensor the description needs (a BatchNorm's
    /// running statistics in a checkpoint saved without buffers, say).
    case missingTensor(String)
    /// A tensor's element count differs from the description's shape.
    case wrongSize(tensor: String, expected: Int, found: Int)
    /// A tensor holds NaN or ±∞ at a flat index.
    case nonFinite(tensor: String, index: Int, value: Double)
    /// A BatchNorm running variance ≤ 0: 1/√(var + ε) is then undefined or
    /// not the scale the layer was trained with.
    case nonPositiveVariance(tensor: String, channel: Int, value: Double)
    /// A layer the analysis cannot express as affine pieces (a BatchNorm not
    /// right after a conv).
    case unsupported(layer: String, reason: String)
    /// An option or the data does not fit.
    case invalidInput(String)
    /// The network under test returned an array of the wrong length.
    case networkOutputSize(output: String, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .missingTensor(let name):
            return "the weights have no tensor \(name), which the model needs"
        case .wrongSize(let name, let expected, let found):
            return "tensor \(name) holds \(found) values, the model's shape holds \(expected)"
        case .nonFinite(let name, let index, let value):
            return "tensor \(name) holds a non-finite value (\(value)) at flat index \(index); refusing to analyse it"
        case .nonPositiveVariance(let name, let channel, let value):
            return
                "tensor \(name) holds a running variance \(value) ≤ 0 at channel \(channel); BatchNorm cannot be folded"
        case .unsupported(let layer, let reason):
            return "layer \(layer): \(reason)"
        case .invalidInput(let reason):
            return reason
        case .networkOutputSize(let output, let expected, let actual):
            return "network under test: \(output) has \(actual) values, expected \(expected)"
        }
    }
}

/// One conv or linear layer of a network as an affine map a = W̃·p + b̃ on
/// its input patches p, with BatchNorm folded in (eval mode):
///
///     s = γ / √(running_var + ε),  W̃ = diag(s)·W,  b̃ = β + s·(b − running_mean)
///
/// (b the conv's own bias, 0 without one), ε = ``Models/BatchNorm2dSpec/epsilon``
/// (1e-5), all in float64. Without a BatchNorm, s = 1 and b̃ = b. A linear
/// layer is the same map with p its whole input vector.
public struct AffineLayer: Sendable {
    public enum Kind: Sendable, Equatable {
        /// A conv on (C_in, H, W) maps giving (C_out, H', W').
        case conv(Conv2dSpec, inputHeight: Int, inputWidth: Int, outputHeight: Int, outputWidth: Int)
        case linear
    }

    /// The conv's or linear layer's PyTorch path ("layer1.0.conv1", "fc").
    public var name: String
    /// The path of the BatchNorm folded into it, if any.
    public var batchNorm: String?
    public var kind: Kind
    /// The weight tensor's shape: [out, in, k, k] or [out, in].
    public var weightShape: [Int]
    /// W as stored, reshaped (out, in·k·k) in PyTorch's flattening (in, kH, kW).
    public var weight: Matrix
    /// W̃ = diag(s)·W.
    public var folded: Matrix
    /// b̃ (out).
    public var bias: [Double]
    /// s (out): ones without a BatchNorm.
    public var scale: [Double]
    /// The summary row whose output is this layer's input (nil: the image).
    public var inputRow: Int?
    /// The summary row whose output is a = W̃·p + b̃: the BatchNorm's row
    /// when one is folded, else the layer's own.
    public var outputRow: Int

    /// Output elements per image.
    public var outputSize: Int {
        switch kind {
        case .conv(let spec, _, _, let h, let w): return spec.outChannels * h * w
        case .linear: return weight.rows
        }
    }

    /// Input elements per image.
    public var inputSize: Int {
        switch kind {
        case .conv(let spec, let h, let w, _, _): return spec.inChannels * h * w
        case .linear: return weight.columns
        }
    }
}

/// A network description with float64 weights, BatchNorm folded into the
/// conv before it: a list of steps over ``AffineLayer``s, ReLU, max-pool,
/// global average pool, flatten and residual blocks, which
/// ``HostNetworkForward`` runs.
public struct FoldedNetwork: Sendable {
    /// One step of the forward pass; shapes are per image.
    public indirect enum Step: Sendable {
        /// ``FoldedNetwork/layers``[index].
        case affine(Int)
        case relu
        /// (C, H, W) → (C, ⌊H/2⌋, ⌊W/2⌋), floor mode.
        case maxPool2(channels: Int, height: Int, width: Int)
        /// (C, H, W) → (C).
        case globalAveragePool(channels: Int, plane: Int)
        /// A residual block: body(x) + shortcut(x) (x itself when nil), then ReLU when `relu`.
        case residual(body: [Step], shortcut: [Step]?, relu: Bool)
    }

    public let name: String
    public let summary: NetworkSummary
    public let classes: Int
    /// The conv and linear layers in the order of the forward pass (a
    /// block's body before its shortcut).
    public let layers: [AffineLayer]
    /// The top-level steps.
    public let steps: [Step]

    /// Input elements per image.
    public var inputSize: Int { summary.input.elementCount }

    /// Folds `description` for images of shape `input` with `tensors` by
    /// `state_dict` name (float32 values, widened exactly).
    /// - Throws: ``Models/ModelError`` when shapes do not chain;
    ///   ``NetworkAnalysisError`` for a missing or mis-sized tensor, a
    ///   non-finite value, a running variance ≤ 0, or a BatchNorm with no
    ///   conv before it.
    public init(
        _ description: NetworkDescription, input: ActivationShape, classes: Int, tensors: [String: [Float]]
    ) throws {
        summary = try description.summary(input: input, classes: classes)
        name = description.name
        self.classes = classes
        for p in summary.parameters where p.elementType == .float32 {
            guard let values = tensors[p.name] else { throw NetworkAnalysisError.missingTensor(p.name) }
            guard values.count == p.count else {
                throw NetworkAnalysisError.wrongSize(tensor: p.name, expected: p.count, found: values.count)
            }
            if let i = values.firstIndex(where: { !$0.isFinite }) {
                throw NetworkAnalysisError.nonFinite(tensor: p.name, index: i, value: Double(values[i]))
            }
            if p.name.hasSuffix(".running_var"), let c = values.firstIndex(where: { $0 <= 0 }) {
                throw NetworkAnalysisError.nonPositiveVariance(tensor: p.name, channel: c, value: Double(values[c]))
            }
        }
        var walker = FoldingWalker(rows: summary.layers, tensors: tensors)
        steps = try walker.walk(description.layers, inputRow: nil).steps
        layers = walker.layers
    }
}

/// Consumes the summary's rows in the order of its shape walk (a block's
/// body, its shortcut, the add, the ReLU), as a plan does.
private struct FoldingWalker {
    let rows: [LayerSummary]
    let tensors: [String: [Float]]
    var next = 0
    var layers: [AffineLayer] = []

    init(rows: [LayerSummary], tensors: [String: [Float]]) {
        self.rows = rows
        self.tensors = tensors
    }

    func values(_ row: LayerSummary, _ suffix: String) -> [Double]? {
        tensors["\(row.path).\(suffix)"].map { $0.map(Double.init) }
    }

    /// Walks `list` from the output of row `inputRow`; returns the steps and
    /// the row whose output ends them.
    mutating func walk(_ list: [LayerDescription], inputRow: Int?) throws -> (steps: [Step], lastRow: Int?) {
        var steps: [FoldedNetwork.Step] = []
        var last = inputRow
        var index = 0
        while index < list.count {
            let layer = list[index]
            switch layer.kind {
            case .conv(let spec):
                let row = rows[next]
                let convRow = next
                next += 1
                guard case .map(_, let h, let w) = row.input, case .map(_, let oh, let ow) = row.output else {
                    throw NetworkAnalysisError.unsupported(layer: row.path, reason: "a conv needs maps")
                }
                let k = spec.kernelSize
                let patch = spec.inChannels * k * k
                let weight = Matrix(rows: spec.outChannels, columns: patch, values: values(row, "weight")!)
                var bias = values(row, "bias") ?? [Double](repeating: 0, count: spec.outChannels)
                var scale = [Double](repeating: 1, count: spec.outChannels)
                var folded = weight
                var batchNorm: String?
                var outputRow = convRow
                if index + 1 < list.count, case .batchNorm = list[index + 1].kind {
                    let bn = rows[next]
                    outputRow = next
                    next += 1
                    index += 1
                    batchNorm = bn.path
                    let gamma = values(bn, "weight")!
                    let beta = values(bn, "bias")!
                    let mean = values(bn, "running_mean")!
                    let variance = values(bn, "running_var")!
                    for c in 0..<spec.outChannels {
                        scale[c] = gamma[c] / (variance[c] + BatchNorm2dSpec.epsilon).squareRoot()
                        bias[c] = beta[c] + scale[c] * (bias[c] - mean[c])
                        for j in 0..<patch { folded[c, j] *= scale[c] }
                    }
                }
                layers.append(
                    AffineLayer(
                        name: row.path, batchNorm: batchNorm,
                        kind: .conv(spec, inputHeight: h, inputWidth: w, outputHeight: oh, outputWidth: ow),
                        weightShape: [spec.outChannels, spec.inChannels, k, k], weight: weight, folded: folded,
                        bias: bias, scale: scale, inputRow: last, outputRow: outputRow))
                steps.append(.affine(layers.count - 1))
                last = outputRow
            case .batchNorm:
                throw NetworkAnalysisError.unsupported(
                    layer: rows[next].path, reason: "a BatchNorm that does not follow a conv cannot be folded")
            case .linear(let spec):
                let row = rows[next]
                let weight = Matrix(
                    rows: spec.outFeatures, columns: spec.inFeatures, values: values(row, "weight")!)
                layers.append(
                    AffineLayer(
                        name: row.path, batchNorm: nil, kind: .linear,
                        weightShape: [spec.outFeatures, spec.inFeatures], weight: weight, folded: weight,
                        bias: values(row, "bias") ?? [Double](repeating: 0, count: spec.outFeatures),
                        scale: [Double](repeating: 1, count: spec.outFeatures), inputRow: last, outputRow: next))
                steps.append(.affine(layers.count - 1))
                last = next
                next += 1
            case .relu:
                steps.append(.relu)
                last = next
                next += 1
            case .maxPool2:
                guard case .map(let c, let h, let w) = rows[next].input else {
                    throw NetworkAnalysisError.unsupported(layer: rows[next].path, reason: "max-pool needs maps")
                }
                steps.append(.maxPool2(channels: c, height: h, width: w))
                last = next
                next += 1
            case .globalAveragePool:
                guard case .map(let c, let h, let w) = rows[next].input else {
                    throw NetworkAnalysisError.unsupported(layer: rows[next].path, reason: "pooling needs maps")
                }
                steps.append(.globalAveragePool(channels: c, plane: h * w))
                last = next
                next += 1
            case .flatten:
                // (C, H, W) row-major is already the channel-major vector.
                last = next
                next += 1
            case .residual(let block):
                let body = try walk(block.body, inputRow: last).steps
                var shortcut: [FoldedNetwork.Step]?
                if case .projection(let list) = block.shortcut { shortcut = try walk(list, inputRow: last).steps }
                last = next  // the add
                next += 1
                if block.reluAfterAdd {
                    last = next
                    next += 1
                }
                steps.append(.residual(body: body, shortcut: shortcut, relu: block.reluAfterAdd))
            }
            index += 1
        }
        return (steps, last)
    }

    typealias Step = FoldedNetwork.Step
}
