import Analysis
import Foundation
import GPUNet
import Models
import NetIO

/// `convsvd compress`: conv layers replaced by their rank-r factorisations
/// (``ConvFactorization``, ``NetworkDescription/factorizingConvolutions(ranks:)``),
/// the smaller network evaluated and timed beside the dense one on the same
/// device, and written as a checkpoint and a model file.
enum Compression {
    /// How the ranks are chosen.
    enum RankRule: Equatable {
        /// Per layer the smallest rank keeping this fraction of Σσᵢ²; layers
        /// whose rank would save no multiply-adds stay dense.
        case energy(Double)
        /// The given ranks, by layer path.
        case ranks([String: Int])
    }

    /// One conv layer's decision.
    struct Layer: Encodable {
        var path: String
        /// (C_out, C_in, k, k).
        var weightShape: [Int]
        /// The chosen rank, nil when the layer stays dense.
        var rank: Int?
        /// The largest rank that still saves multiply-adds.
        var breakEvenRank: Int
        var singularValues: [Double]
        /// Σ_{i≤r} σᵢ² / Σσᵢ² (1 when dense).
        var keptEnergy: Double
        /// Per image.
        var denseMultiplyAdds: Int
        var multiplyAdds: Int
        /// The compressed layer whose factor `path` is (`p.0` beside a `p.1`, or
        /// the reverse), or nil.
        private static func factorOf(_ path: String, convPaths: Set<String>) -> String? {
            guard let dot = path.lastIndex(of: ".") else { return nil }
            let (base, last) = (String(path[..<dot]), path[path.index(after: dot)...])
            switch last {
            case "0": return convPaths.contains(base + ".1") ? base : nil
            case "1": return convPaths.contains(base + ".0") ? base : nil
            default: return nil
            }
        }

        /// max |second·first − W_r| over W's entries, W_r from the SVD's
        /// truncation: the float32 factors reproduce the rank-r weight.
        var factorError: Double?
        var reason: String
    }

    /// A network's test-set figures on the device.
    struct Measured: Encodable {
        var accuracy: Double
        var meanLoss: Double
        var parameters: Int
        var multiplyAdds: Int
        /// Median seconds of a forward pass over the test set (evaluation batch).
        var inferenceSeconds: Double
    }

    struct Result: Encodable {
        var model: String
        var compressedModel: String
        var dataset: String
        var device: String
        var rule: String
        var layers: [Layer]
        var dense: Measured
        var compressed: Measured
        /// After `--finetune`, on the same test images.
        var finetuned: Measured?
    }

    /// Chooses the ranks and factorises the weights of `checkpoint` (a
    /// checkpoint of `description`).
    static func factorize(
        _ description: NetworkDescription, summary: NetworkSummary, checkpoint: Checkpoint, rule: RankRule
    ) throws -> (layers: [Layer], network: NetworkDescription, tensors: [String: NamedTensor]) {
        var tensors = Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { ($0.name, $0) })
        var layers: [Layer] = []
        var ranks: [String: Int] = [:]
        var unknown = Set(rule.explicitRanks.keys)
        let convPaths = Set(summary.layers.filter { $0.operation.hasPrefix("conv") }.map(\.path))
        for row in summary.layers {
            guard let weight = tensors[row.path + ".weight"], weight.shape.count == 4,
                case .map(_, let h, let w) = row.output
            else { continue }
            unknown.remove(row.path)
            let s = weight.shape
            let conv = Conv2dSpec(inChannels: s[1], outChannels: s[0], kernelSize: s[2])
            let breakEven = FactorizedConvCost.largestSavingRank(conv)
            let sigma = try ConvFactorization(weight: weight.values, shape: s, rank: 1, context: weight.name)
                .singularValues
            var rank: Int?
            var reason: String
            if let original = factorOf(row.path, convPaths: convPaths) {
                if rule.explicitRanks[row.path] != nil {
                    throw ModelError(
                        .badValue, at: row.path,
                        "\(row.path) is already a factor of the compressed layer \(original); compress the original model"
                    )
                }
                layers.append(
                    Layer(
                        path: row.path, weightShape: s, rank: nil, breakEvenRank: breakEven, singularValues: sigma,
                        keptEnergy: 1, denseMultiplyAdds: row.multiplyAdds, multiplyAdds: row.multiplyAdds,
                        reason: "dense: already a factor of \(original)"))
                continue
            }
            switch rule {
            case .energy(let e):
                let r = ConvFactorization.rank(keeping: e, of: sigma)
                if r <= breakEven {
                    rank = r
                    reason = String(format: "rank %d keeps %.4g%% of Σσ²", r, 100 * e)
                } else {
                    reason = "dense: rank \(r) for \(e) of Σσ² saves nothing (break-even rank \(breakEven))"
                }
            case .ranks(let given):
                rank = given[row.path]
                reason = rank.map { $0 > breakEven ? "as given; costs more than dense" : "as given" } ?? "dense"
            }
            var layer = Layer(
                path: row.path, weightShape: s, rank: rank, breakEvenRank: breakEven, singularValues: sigma,
                keptEnergy: 1, denseMultiplyAdds: row.multiplyAdds, multiplyAdds: row.multiplyAdds, reason: reason)
            if let rank {
                guard rank >= 1 && rank <= sigma.count else {
                    throw ModelError(.badValue, at: row.path, "rank \(rank) is outside 1…\(sigma.count)")
                }
                let f = try ConvFactorization(weight: weight.values, shape: s, rank: rank, context: weight.name)
                layer.keptEnergy = 1 - f.droppedEnergy
                layer.multiplyAdds = FactorizedConvCost(conv, rank: rank).factorized * h * w
                layer.factorError = try factorError(f, weight: weight)
                ranks[row.path] = rank
                tensors[row.path + ".weight"] = nil
                tensors[row.path + ".0.weight"] = NamedTensor(
                    name: row.path + ".0.weight", shape: [rank, s[1], s[2], s[3]], values: f.first)
                tensors[row.path + ".1.weight"] = NamedTensor(
                    name: row.path + ".1.weight", shape: [s[0], rank, 1, 1], values: f.second)
                if let bias = tensors.removeValue(forKey: row.path + ".bias") {
                    tensors[row.path + ".1.bias"] = NamedTensor(
                        name: row.path + ".1.bias", shape: bias.shape, values: bias.values)
                }
            }
            layers.append(layer)
        }
        if let path = unknown.sorted().first {
            throw ModelError(
                .badValue, at: path, "--ranks names \(path), which is not a conv layer of \(description.name)")
        }
        var network = try description.factorizingConvolutions(ranks: ranks)
        network.name = description.name + "-lowrank"
        return (layers, network, tensors)
    }

    /// The compressed layer whose factor `path` is (`p.0` beside a `p.1`, or
    /// the reverse), or nil.
    private static func factorOf(_ path: String, convPaths: Set<String>) -> String? {
        guard let dot = path.lastIndex(of: ".") else { return nil }
        let (base, last) = (String(path[..<dot]), path[path.index(after: dot)...])
        switch last {
        case "0": return convPaths.contains(base + ".1") ? base : nil
        case "1": return convPaths.contains(base + ".0") ? base : nil
        default: return nil
        }
    }

    /// max |second·first − W_r|, W_r = U_r·diag(σ_r)·V_rᵀ from a fresh SVD.
    private static func factorError(_ f: ConvFactorization, weight: NamedTensor) throws -> Double {
        let (out, columns) = (weight.shape[0], weight.shape[1] * weight.shape[2] * weight.shape[3])
        let wr = try SingularValueDecomposition(
            Matrix(rows: out, columns: columns, float32: weight.values), context: weight.name
        ).truncated(rank: f.rank)
        let first = Matrix(rows: f.rank, columns: columns, float32: f.first)
        let second = Matrix(rows: out, columns: f.rank, float32: f.second)
        return zip((second * first).values, wr.values).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// Accuracy, loss and the median time of `repeats` test-set passes.
    static func measure(_ plan: NetworkPlan, on test: DeviceDataset, repeats: Int) throws -> Measured {
        var seconds: [Double] = []
        var evaluation: Evaluation?
        for _ in 0..<max(1, repeats) {
            let start = Clocks.wall()
            evaluation = try Evaluation.run(network: plan, on: test)
            seconds.append(Clocks.seconds(since: start))
        }
        seconds.sort()
        return Measured(
            accuracy: evaluation!.accuracy, meanLoss: evaluation!.meanLoss,
            parameters: plan.summary.learnedParameterCount, multiplyAdds: plan.summary.multiplyAdds,
            inferenceSeconds: seconds[seconds.count / 2])
    }
}

extension Compression.RankRule {
    var explicitRanks: [String: Int] {
        if case .ranks(let r) = self { return r }
        return [:]
    }

    var text: String {
        switch self {
        case .energy(let e): return "energy \(e)"
        case .ranks(let r): return "ranks " + r.keys.sorted().map { "\($0)=\(r[$0]!)" }.joined(separator: ",")
        }
    }
}
