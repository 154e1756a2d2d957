/// Low-rank factorisation of conv layers, as a change of description.
///
/// A conv `p` (C_in → C_out, k×k, stride s, padding q) of rank r becomes two
/// convs, PyTorch's `nn.Sequential` of them under the same path:
///
/// - `p.0`: k×k, C_in → r, stride s, padding q, no bias;
/// - `p.1`: 1×1, r → C_out, stride 1, padding 0, the original's bias.
///
/// Their composition is the conv whose weight matrix (C_out, C_in·k²) is the
/// product of the two factors' matrices, so any rank-r weight is exactly
/// representable. Multiply-adds per output position fall from
/// C_out·C_in·k² to r·(C_in·k² + C_out): a saving exactly when
/// r < C_out·C_in·k² / (C_in·k² + C_out) (``FactorizedConvCost``).
extension NetworkDescription {
    /// This network with each conv whose path is a key of `ranks` factorised
    /// at that rank; every other layer, name and tensor name unchanged.
    ///
    /// Layers that `nn.Sequential` would name by index keep their names: a
    /// list that holds a factorised conv gets explicit names for all its
    /// layers, so that the conv's siblings do not shift.
    ///
    /// - Throws: ``ModelError`` (`.badValue`) for a path that is not a conv
    ///   of the network, or a rank outside 1…min(C_out, C_in·k²).
    public func factorizingConvolutions(ranks: [String: Int]) throws -> NetworkDescription {
        var remaining = ranks
        let rewritten = try Self.factorize(layers, prefix: "", defaultPrefix: "", ranks: &remaining)
        if let path = remaining.keys.sorted().first {
            throw ModelError(.badValue, at: path, "\(name) has no conv layer \(path) to factorise")
        }
        return NetworkDescription(name: name, layers: rewritten)
    }

    private static func factorize(
        _ layers: [LayerDescription], prefix: String, defaultPrefix: String, ranks: inout [String: Int]
    ) throws -> [LayerDescription] {
        // Each layer with its local name, and its two factors when it is split.
        var entries: [(layer: LayerDescription, local: String, factors: [LayerDescription]?)] = []
        for (index, layer) in layers.enumerated() {
            let local = layer.name ?? "\(defaultPrefix)\(index)"
            let path = prefix.isEmpty ? local : "\(prefix).\(local)"
            var layer = layer
            var factors: [LayerDescription]?
            switch layer.kind {
            case .conv(let conv):
                if let rank = ranks.removeValue(forKey: path) {
                    factors = try split(conv, rank: rank, local: local, path: path)
                }
            case .residual(var block):
                block.body = try factorize(block.body, prefix: path, defaultPrefix: "", ranks: &ranks)
                if case .projection(let shortcut) = block.shortcut {
                    block.shortcut = .projection(
                        try factorize(shortcut, prefix: path, defaultPrefix: "downsample.", ranks: &ranks))
                }
                layer.kind = .residual(block)
            default: break
            }
            entries.append((layer, local, factors))
        }
        // A list without a split conv keeps its layers' names exactly as given.
        guard entries.contains(where: { $0.factors != nil }) else { return entries.map(\.layer) }
        return entries.flatMap { $0.factors ?? [LayerDescription($0.layer.kind, name: $0.local)] }
    }

    private static func split(_ conv: Conv2dSpec, rank: Int, local: String, path: String) throws
        -> [LayerDescription]
    {
        let limit = min(conv.outChannels, conv.inChannels * conv.kernelSize * conv.kernelSize)
        guard rank >= 1 && rank <= limit else {
            throw ModelError(
                .badValue, at: path,
                "rank \(rank) is outside 1…\(limit), the ranks of a \(conv.outChannels)×"
                    + "\(conv.inChannels * conv.kernelSize * conv.kernelSize) weight matrix")
        }
        let first = Conv2dSpec(
            inChannels: conv.inChannels, outChannels: rank, kernelSize: conv.kernelSize, stride: conv.stride,
            padding: conv.padding, bias: false)
        let second = Conv2dSpec(inChannels: rank, outChannels: conv.outChannels, kernelSize: 1, bias: conv.bias)
        return [
            LayerDescription(.conv(first), name: "\(local).0"), LayerDescription(.conv(second), name: "\(local).1"),
        ]
    }
}

/// The multiply-adds per output position of a conv and of its rank-r
/// factorisation (see ``NetworkDescription/factorizingConvolutions(ranks:)``).
public struct FactorizedConvCost: Hashable, Sendable {
    /// C_out·C_in·k².
    public var dense: Int
    /// r·(C_in·k² + C_out).
    public var factorized: Int

    public init(_ conv: Conv2dSpec, rank r: Int) {
        let columns = conv.inChannels * conv.kernelSize * conv.kernelSize
        dense = conv.outChannels * columns
        factorized = r * (columns + conv.outChannels)
    }

    /// The largest rank whose factorisation does fewer multiply-adds than
    /// the dense conv (0 when none does).
    public static func largestSavingRank(_ conv: Conv2dSpec) -> Int {
        let columns = conv.inChannels * conv.kernelSize * conv.kernelSize
        let dense = conv.outChannels * columns
        return (dense - 1) / (columns + conv.outChannels)
    }
}
