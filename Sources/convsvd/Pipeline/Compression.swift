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
        /// Ranks chosen by ``Analysis/RankSelection`` for a mean bound ≤ ε.
        case maxLogitChange(Double)
    }

    /// One compression of a `compress` run: a rank rule and which factors.
    struct Setting: Equatable {
        var rule: RankRule
        /// The factors of ``Analysis/DataAwareProjection`` rather than the SVD's.
        var dataAware: Bool

        /// The setting's folder under `--out` when a run makes several
        /// ("energy-0.9", "energy-0.9-data-aware").
        var folderName: String {
            let base: String
            switch rule {
            case .energy(let e): base = "energy-\(e)"
            case .ranks: base = "ranks"
            case .maxLogitChange(let e): base = "max-logit-change-\(e)"
            }
            return base + (dataAware ? "-data-aware" : "")
        }

        /// The rule as the report states it, with the data-aware images.
        func text(images: Int) -> String {
            rule.text + (dataAware ? ", data-aware (\(images) training images)" : "")
        }
    }

    /// Every conv layer of `folded` as a candidate for ``Analysis/RankSelection``.
    static func candidates(_ folded: FoldedNetwork) -> [RankSelection.Candidate] {
        let convPaths = Set(folded.layers.filter { $0.kind != .linear }.map(\.name))
        return folded.layers.enumerated().compactMap { index, layer in
            guard case .conv(let spec, _, _, let h, let w) = layer.kind,
                factorOf(layer.name, convPaths: convPaths) == nil
            else { return nil }
            return RankSelection.Candidate(
                layer: index, breakEvenRank: FactorizedConvCost.largestSavingRank(spec),
                denseMultiplyAdds: FactorizedConvCost(spec, rank: 1).dense * h * w,
                multiplyAddsPerRank: FactorizedConvCost(spec, rank: 1).factorized * h * w)
        }
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
        /// max |second·first − W_r| over W's entries, W_r the truncation of a
        /// fresh SVD: the float32 factors reproduce the rank-r weight.
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
        /// Median seconds of a training step at ``Result/stepBatch``
        /// (``measureSteps(_:settings:repeats:)``); nil where not measured.
        var stepSeconds: Double?
    }

    struct Result: Encodable {
        var model: String
        var compressedModel: String
        var dataset: String
        var device: String
        var rule: String
        /// Whether the factors are the data-aware ones.
        var dataAware: Bool
        var layers: [Layer]
        var dense: Measured
        var compressed: Measured
        /// The batch of the timed training steps: the model's recipe's.
        var stepBatch: Int?
        /// After `--finetune`, on the same test images.
        var finetuned: Measured?
        /// B(x) ≥ ‖f(x) − f̂(x)‖₂ over the test images (``CompressionBound``).
        var bound: CompressionBoundSummary?
        /// The compressed network's training step over the dense one's (timed in turn).
        var stepRatio: Double? {
            guard let c = compressed.stepSeconds, let d = dense.stepSeconds else { return nil }
            return c / d
        }
        /// Σ multiply-adds of the conv layers, compressed over dense.
        var convMultiplyAddRatio: Double {
            Double(layers.reduce(0) { $0 + $1.multiplyAdds }) / Double(layers.reduce(0) { $0 + $1.denseMultiplyAdds })
        }
    }

    /// What ``factorize(_:folded:checkpoint:rule:)`` makes.
    struct Factorized {
        var layers: [Layer]
        var network: NetworkDescription
        /// The compressed network's tensors by name.
        var tensors: [String: NamedTensor]
        /// Index into the folded network's layers → diag(s)·second·first in
        /// float64: the folded matrix the compressed network applies.
        var changedFolded: [Int: Matrix]
    }

    /// Chooses the ranks and factorises the weights (``ConvFactorization``)
    /// of `checkpoint`, a checkpoint of `description` whose folded form is
    /// `folded` (for the bound: each changed layer's diag(s)·second·first).
    /// With `moments` (by folded layer index) the factors are the
    /// data-aware ones and the energy rule counts E‖diag(s)·W·p‖², not ‖W‖_F².
    static func factorize(
        _ description: NetworkDescription, folded: FoldedNetwork, checkpoint: Checkpoint, rule: RankRule,
        moments: [Int: LayerInputMoment]? = nil
    ) throws -> Factorized {
        var tensors = Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { ($0.name, $0) })
        var layers: [Layer] = []
        var ranks: [String: Int] = [:]
        var changedFolded: [Int: Matrix] = [:]
        var unknown = Set(rule.explicitRanks.keys)
        let convPaths = Set(folded.layers.filter { $0.kind != .linear }.map(\.name))
        for (index, affine) in folded.layers.enumerated() {
            guard case .conv(let spec, _, _, let h, let w) = affine.kind, let weight = tensors[affine.name + ".weight"]
            else { continue }
            let path = affine.name
            unknown.remove(path)
            let s = weight.shape
            let breakEven = FactorizedConvCost.largestSavingRank(spec)
            let denseMultiplyAdds = FactorizedConvCost(spec, rank: 1).dense * h * w
            let sigma = try SingularValueDecomposition(affine.weight, context: weight.name).singularValues
            var layer = Layer(
                path: path, weightShape: s, rank: nil, breakEvenRank: breakEven, singularValues: sigma,
                keptEnergy: 1, denseMultiplyAdds: denseMultiplyAdds, multiplyAdds: denseMultiplyAdds, reason: "dense")
            if let original = factorOf(path, convPaths: convPaths) {
                if rule.explicitRanks[path] != nil {
                    throw ModelError(
                        .badValue, at: path,
                        "\(path) is already a factor of the compressed layer \(original); compress the original model")
                }
                layer.reason = "dense: already a factor of \(original)"
                layers.append(layer)
                continue
            }
            let moment = moments.map { m -> Matrix in
                guard let c = m[index] else { preconditionFailure("Compression.factorize: no moment for \(path)") }
                return c.moment
            }
            var scaled = affine.weight
            for o in 0..<scaled.rows { for j in 0..<scaled.columns { scaled[o, j] *= affine.scale[o] } }
            let projection = try moment.map {
                try DataAwareProjection(weight: scaled, secondMoment: $0, layer: weight.name)
            }
            var rank: Int?
            switch rule {
            case .energy(let e):
                let r =
                    projection.map { ConvFactorization.rank(keepingShare: e, of: $0.eigenvalues.map { max($0, 0) }) }
                    ?? ConvFactorization.rank(keeping: e, of: sigma)
                if r <= breakEven {
                    rank = r
                    layer.reason = String(
                        format: "rank %d keeps %.4g%% of %@", r, 100 * e, projection == nil ? "Σσ²" : "E‖W̃p‖²")
                } else {
                    layer.reason = "dense: rank \(r) for \(e) of Σσ² saves nothing (break-even rank \(breakEven))"
                }
            case .ranks(let given):
                rank = given[path]
                if let rank { layer.reason = rank > breakEven ? "as given; costs more than dense" : "as given" }
            case .maxLogitChange:
                preconditionFailure("Compression.factorize: the caller turns --max-logit-change into ranks")
            }
            if let rank {
                guard rank >= 1 && rank <= sigma.count else {
                    throw ModelError(.badValue, at: path, "rank \(rank) is outside 1…\(sigma.count)")
                }
                let f =
                    try moment.map {
                        try ConvFactorization(
                            weight: weight.values, shape: s, rank: rank, secondMoment: $0, outputScale: affine.scale,
                            context: weight.name)
                    } ?? ConvFactorization(weight: weight.values, shape: s, rank: rank, context: weight.name)
                let product = factorProduct(f)
                var applied = product
                for o in 0..<applied.rows { for j in 0..<applied.columns { applied[o, j] *= affine.scale[o] } }
                layer.rank = rank
                layer.keptEnergy = 1 - f.droppedEnergy
                layer.multiplyAdds = FactorizedConvCost(spec, rank: rank).factorized * h * w
                if let projection {
                    // The target: diag(1/s)·U_r·U_rᵀ·diag(s)·W.
                    var target = projection.projected(rank: rank)
                    for o in 0..<target.rows {
                        let inverse = affine.scale[o] == 0 ? 0 : 1 / affine.scale[o]
                        for j in 0..<target.columns { target[o, j] *= inverse }
                    }
                    layer.factorError = zip(product.values, target.values).reduce(0) { max($0, abs($1.0 - $1.1)) }
                } else {
                    layer.factorError = try factorError(
                        product, weight: affine.weight, rank: rank, context: weight.name)
                }
                changedFolded[index] = applied
                ranks[path] = rank
                tensors[path + ".weight"] = nil
                tensors[path + ".0.weight"] = NamedTensor(
                    name: path + ".0.weight", shape: [rank, s[1], s[2], s[3]], values: f.first)
                tensors[path + ".1.weight"] = NamedTensor(
                    name: path + ".1.weight", shape: [s[0], rank, 1, 1], values: f.second)
                if let bias = tensors.removeValue(forKey: path + ".bias") {
                    tensors[path + ".1.bias"] = NamedTensor(
                        name: path + ".1.bias", shape: bias.shape, values: bias.values)
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
        return Factorized(layers: layers, network: network, tensors: tensors, changedFolded: changedFolded)
    }

    /// second·first in float64 from the float32 factors: the weight matrix
    /// the compressed network applies (diag(s) of it with BatchNorm folded).
    static func factorProduct(_ f: ConvFactorization) -> Matrix {
        let (out, rank) = (f.weightShape[0], f.rank)
        let columns = f.first.count / rank
        return Matrix(rows: out, columns: rank, float32: f.second)
            * Matrix(rows: rank, columns: columns, float32: f.first)
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

    /// max |second·first − W_r| with W_r = U_r·diag(σ_r)·V_rᵀ from a fresh SVD of W.
    private static func factorError(_ product: Matrix, weight: Matrix, rank: Int, context: String) throws -> Double {
        let truncated = try SingularValueDecomposition(weight, context: context).truncated(rank: rank)
        return zip(product.values, truncated.values).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// Accuracy, loss and the median time of `repeats` test-set passes.
    static func measure(_ plan: NetworkPlan, on test: DeviceDataset, repeats: Int) throws -> Measured {
        try measure([plan], on: test, repeats: repeats)[0]
    }

    /// ``measure(_:on:repeats:)`` for several plans, their passes taken in
    /// turn (one pass of each, `repeats` times), so that a change in the
    /// machine's load during the measurement falls on all of them alike.
    static func measure(_ plans: [NetworkPlan], on test: DeviceDataset, repeats: Int) throws -> [Measured] {
        var seconds = [[Double]](repeating: [], count: plans.count)
        var evaluations = [Evaluation?](repeating: nil, count: plans.count)
        for _ in 0..<max(1, repeats) {
            for (index, plan) in plans.enumerated() {
                let start = Clocks.wall()
                evaluations[index] = try Evaluation.run(network: plan, on: test)
                seconds[index].append(Clocks.seconds(since: start))
            }
        }
        return zip(plans, zip(evaluations, seconds)).map { plan, measured in
            let (evaluation, times) = (measured.0!, measured.1.sorted())
            return Measured(
                accuracy: evaluation.accuracy, meanLoss: evaluation.meanLoss,
                parameters: plan.summary.learnedParameterCount, multiplyAdds: plan.summary.multiplyAdds,
                inferenceSeconds: times[times.count / 2])
        }
    }
}

extension Compression {
    /// The median seconds of a training step of each plan (the training
    /// forward, the backward pass, the optimiser's update of `settings`, the
    /// loss read back: the step `bench` times) at `settings.batchSize`, on
    /// seeded random images: 2 unmeasured steps each, then `repeats` timed
    /// ones, the plans' steps taken in turn so that the machine's load falls
    /// on all alike. Each plan's parameters, running statistics and
    /// `num_batches_tracked` are put back afterwards, bit for bit.
    static func measureSteps(_ plans: [NetworkPlan], settings: TrainingSettings, repeats: Int) throws -> [Double] {
        let batch = settings.batchSize
        var stepFunctions: [() throws -> Void] = []
        var restores: [() throws -> Void] = []
        for plan in plans {
            let w = try plan.workspace(batch: batch)
            var random = SeededRandom(seed: UInt64(batch), stream: 0xC0_57)
            try plan.setRandomBatch(w, random: &random)
            let optimizer = try Optimizer(
                settings.optimizer, learningRate: settings.learningRate, parameters: plan.parameterBuffers,
                names: plan.parameterNames, device: plan.device)
            let (state, tracked) = (try plan.checkpointTensors(), plan.batchesTracked)
            stepFunctions.append {
                try plan.forward(w, training: true)
                try plan.backward(w)
                try optimizer.update(parameters: plan.parameterBuffers, gradients: plan.gradientBuffers)
                _ = try plan.requestBatchResult(w).value()
            }
            restores.append {
                try plan.load(checkpointTensors: state)
                plan.batchesTracked = tracked
            }
        }
        var seconds = [[Double]](repeating: [], count: plans.count)
        for round in 0..<(2 + max(1, repeats)) {
            for (index, step) in stepFunctions.enumerated() {
                let start = Clocks.wall()
                try step()
                if round >= 2 { seconds[index].append(Clocks.seconds(since: start)) }
            }
        }
        for restore in restores { try restore() }
        return seconds.map { times in times.sorted()[times.count / 2] }
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
        case .maxLogitChange(let e): return "max logit change \(e)"
        }
    }
}
