import Analysis
import ArgumentParser
import Figures
import Foundation
import GPUNet
import Models
import NetIO

struct CompressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Factorise conv layers at low rank (k×k conv to r channels, then 1×1); evaluate and time both.",
        discussion: """
            Each chosen conv W (C_out, C_in·k²) = UΣVᵀ becomes NAME.0, a k×k conv C_in → r with weight \
            Σ_r^½V_rᵀ (stride and padding of the original), and NAME.1, a 1×1 conv r → C_out with weight \
            U_rΣ_r^½ (and the original's bias). With --data-aware the factors are instead those of the \
            rank-r map Ŵ that minimises E‖diag(s)(W − Ŵ)p‖² over the layer's input patches p on the first \
            --data-aware-images training images (s: the following BatchNorm's scale), and --energy counts \
            E‖diag(s)Wp‖². --out receives checkpoint.safetensors, model.json (give it to --model of train, \
            evaluate, export) and compress.json.
            """)

    @OptionGroup var device: DeviceOption
    @OptionGroup var model: ModelOption
    @OptionGroup var data: DataOptions

    @Option(help: "A checkpoint.safetensors of --model.")
    var checkpoint: String

    @Option(
        help: ArgumentHelp(
            "Per layer, the smallest rank keeping this fraction of Σσ² (0 < E ≤ 1); layers where it saves nothing stay dense.",
            discussion:
                "Several fractions (0.9,0.95,0.99) make a grid: one compression each, in --out/energy-E/, and the grid's table, grid.json and figures/compression_grid.png in --out."
        ),
        transform: CompressCommand.energies)
    var energy: [Double]?

    @Option(
        name: .customLong("max-logit-change"),
        help:
            "Ranks that save the most multiply-adds while the certified bound on ‖f(x) − f̂(x)‖₂ has a mean of at most ε over the test images searched (the first 2,000, or --test-limit)."
    )
    var maxLogitChange: Double?

    @Option(help: "Ranks by layer path, e.g. layer1.0.conv1=4,conv2=6; the other layers stay dense.")
    var ranks: String?

    @Flag(
        name: .customLong("data-aware"),
        help:
            "Factors that minimise the layer's output error on its own input patches (the training images), not ‖W − Ŵ‖_F; with --energy or --ranks."
    )
    var dataAware = false

    @Flag(
        name: .customLong("compare-data-aware"),
        help:
            "Each setting twice, with the SVD's factors and with the data-aware ones (--out/NAME/ and NAME-data-aware/), compared in a grid."
    )
    var compareDataAware = false

    @Option(
        name: .customLong("data-aware-images"),
        help: "With --data-aware: the first N training images whose patches give each layer's second moment.")
    var dataAwareImages: Int = 1000

    @Option(name: .customLong("test-limit"), help: "Evaluate and time on the first N test images only.")
    var testLimit: Int?

    @Option(help: "Test-set passes and training steps timed per network (the medians are reported).")
    var repeats: Int = 3

    @Option(
        help:
            "Then train the compressed network N epochs, ranks fixed, with the model's recipe at a tenth of its learning rate, into --out/finetune."
    )
    var finetune: Int = 0

    @Option(name: .customLong("train-limit"), help: "Fine-tune on the first N training images only.")
    var trainLimit: Int?

    @Option(help: "Output folder.")
    var out: String

    /// `--energy E[,E…]`: fractions in (0, 1], each once.
    static func energies(_ text: String) throws -> [Double] {
        var values: [Double] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let e = Double(item.trimmingCharacters(in: .whitespaces)), e > 0 && e <= 1 else {
                throw ValidationError("--energy must be in (0, 1], got \(item)")
            }
            guard !values.contains(e) else { throw ValidationError("--energy names \(e) twice") }
            values.append(e)
        }
        return values
    }

    func validate() throws {
        if [energy != nil, ranks != nil, maxLogitChange != nil].filter({ $0 }).count != 1 {
            throw ValidationError("give exactly one of --energy, --ranks and --max-logit-change")
        }
        if let e = maxLogitChange, !(e > 0 && e.isFinite) {
            throw ValidationError("--max-logit-change must be positive, got \(e)")
        }
        if repeats < 1 { throw ValidationError("--repeats must be at least 1") }
        if let testLimit, testLimit < 1 { throw ValidationError("--test-limit must be at least 1") }
        if (dataAware || compareDataAware) && maxLogitChange != nil {
            throw ValidationError(
                "--data-aware works with --energy or --ranks: --max-logit-change searches the SVD's own coordinates")
        }
        if dataAware && compareDataAware {
            throw ValidationError("give --data-aware or --compare-data-aware, not both")
        }
        if dataAwareImages < 1 { throw ValidationError("--data-aware-images must be at least 1") }
        if finetune < 0 { throw ValidationError("--finetune must be 0 or more epochs") }
    }

    func rules() throws -> [Compression.RankRule] {
        if let energy { return energy.map { .energy($0) } }
        if let maxLogitChange { return [.maxLogitChange(maxLogitChange)] }
        var parsed: [String: Int] = [:]
        for item in (ranks ?? "").split(separator: ",") {
            let parts = item.split(separator: "=")
            guard parts.count == 2, let r = Int(parts[1]), parsed[String(parts[0])] == nil else {
                throw ValidationError("--ranks: \"\(item)\" is not NAME=RANK (each layer once)")
            }
            parsed[String(parts[0])] = r
        }
        if parsed.isEmpty { throw ValidationError("--ranks names no layer") }
        return [.ranks(parsed)]
    }

    /// Every rule with each kind of factors asked for, in the grid's order.
    func settings() throws -> [Compression.Setting] {
        let kinds = compareDataAware ? [false, true] : [dataAware]
        return try rules().flatMap { rule in kinds.map { Compression.Setting(rule: rule, dataAware: $0) } }
    }

    /// What every setting of a run shares: the dense network loaded on the
    /// device, its folded float64 form, the test images and, for data-aware
    /// settings, each conv layer's input second moment.
    private struct Inputs {
        let kind: DatasetKind
        let description: NetworkDescription
        let device: any Device
        let dense: NetworkPlan
        let saved: Checkpoint
        let folded: FoldedNetwork
        let testSet: Dataset
        let denseLipschitz: [Double]
        let moments: [Int: LayerInputMoment]?
        /// The host threads of the float64 passes (moments, rank search, bound).
        static let threads = ProcessInfo.processInfo.activeProcessorCount

        func plan(_ d: NetworkDescription) throws -> NetworkPlan { try Self.plan(d, kind: kind, device: device) }

        static func plan(_ d: NetworkDescription, kind: DatasetKind, device: any Device) throws -> NetworkPlan {
            try NetworkPlan(
                d, channels: kind.inputShape.channels, height: kind.inputShape.height, width: kind.inputShape.width,
                classes: kind.classCount, device: device)
        }
    }

    /// One setting's ranks and factors, made before anything is written.
    private struct Prepared {
        var setting: Compression.Setting
        var factorized: Compression.Factorized
        var selection: RankSelection?
    }

    func run() throws {
        try reportingErrors {
            let settings = try settings()
            let inputs = try loadInputs(dataAware: settings.contains(where: \.dataAware))
            // Every setting's ranks and factors before anything is written, so that a request the
            // model cannot take leaves --out untouched.
            let prepared = try settings.map { try prepare($0, inputs) }
            let directory = try prepareOutputDirectory(out)
            let test = try DeviceDataset(inputs.testSet, on: inputs.device)
            let isGrid = settings.count > 1
            var results: [Compression.Result] = []
            for (index, p) in prepared.enumerated() {
                let into =
                    isGrid
                    ? try prepareOutputDirectory(directory.appendingPathComponent(p.setting.folderName).path)
                    : directory
                if isGrid {
                    log("setting \(index + 1) of \(settings.count): \(p.setting.text(images: dataAwareImages))")
                }
                results.append(try compress(p, inputs, test: test, into: into))
            }
            if isGrid { try writeGrid(zip(prepared, results).map { ($0.0.setting, $0.1) }, into: directory) }
            let failed = zip(prepared, results).filter {
                guard let b = $0.1.bound else { return false }
                return b.violations > 0 || b.certifiedButChanged > 0
            }
            if !failed.isEmpty {
                let text = failed.map { p, r in
                    "\(p.setting.text(images: dataAwareImages)): \(r.bound!.violations) image(s) changed more than B(x), "
                        + "\(r.bound!.certifiedButChanged) certified prediction(s) changed"
                }
                throw ToolError(
                    code: Exit.checkFailed, description: "the bound failed: " + text.joined(separator: "; "))
            }
        }
    }

    /// The dense network from `--checkpoint` on the device, folded, the test
    /// images and (with `dataAware`) the conv layers' input second moments.
    private func loadInputs(dataAware: Bool) throws -> Inputs {
        let kind = try data.requireFits(model: model.model)
        let description = try model.description(for: kind)
        let device = try device.make()
        let dense = try Inputs.plan(description, kind: kind, device: device)
        let expected = try dense.checkpointTensors().map { (name: $0.name, shape: $0.shape) }
        let saved = try Checkpoint.read(
            from: URL(fileURLWithPath: checkpoint), model: expected, modelName: description.name,
            requireFinite: true)
        try dense.load(checkpointTensors: saved.tensors)
        try dense.load(checkpointCounters: saved.counters)

        let folded = try NetworkAnalysisStage.fold(description, plan: dense, tensors: saved.tensors)
        var testSet = try data.load(forModel: model.model).test
        if let testLimit { testSet = testSet.prefix(testLimit) }
        let denseLipschitz = try folded.layers.map { try OperatorNormBound.best($0, matrix: $0.folded) }
        var moments: [Int: LayerInputMoment]?
        if dataAware {
            let train = try data.load(forModel: model.model).train
            let n = min(dataAwareImages, train.count)
            let started = Clocks.wall()
            let convs = Set(Compression.candidates(folded).map(\.layer))
            moments = LayerInputMoment.measure(
                folded, layers: convs, images: train.normalizedImages(0..<n), count: n,
                threads: Inputs.threads)
            log(
                String(
                    format: "data-aware: input second moments of %d conv layers over %d training images (%.1f s)",
                    convs.count, n, Clocks.seconds(since: started)))
        }
        return Inputs(
            kind: kind, description: description, device: device, dense: dense, saved: saved, folded: folded,
            testSet: testSet, denseLipschitz: denseLipschitz, moments: moments)
    }

    /// The ranks of `setting` (searched for `--max-logit-change`) and the factors.
    private func prepare(_ setting: Compression.Setting, _ inputs: Inputs) throws -> Prepared {
        var selection: RankSelection?
        var factorRule = setting.rule
        if case .maxLogitChange(let epsilon) = setting.rule {
            let searched = min(inputs.testSet.count, 2000)
            let started = Clocks.wall()
            let s = try RankSelection.search(
                network: inputs.folded, candidates: Compression.candidates(inputs.folded),
                denseLipschitz: inputs.denseLipschitz, images: inputs.testSet.normalizedImages(0..<searched),
                count: searched, epsilon: epsilon, threads: Inputs.threads)
            log(
                String(
                    format:
                        "ranks: mean bound %.4g ≤ %.4g over %d test images, %d multiply-adds an image saved (%.1f s)",
                    s.meanBound, epsilon, searched, s.savedMultiplyAdds, Clocks.seconds(since: started)))
            factorRule = .ranks(
                Dictionary(uniqueKeysWithValues: s.ranks.map { (inputs.folded.layers[$0.key].name, $0.value) }))
            selection = s
        }
        do {
            let factorized = try Compression.factorize(
                inputs.description, folded: inputs.folded, checkpoint: inputs.saved, rule: factorRule,
                moments: setting.dataAware ? inputs.moments : nil)
            return Prepared(setting: setting, factorized: factorized, selection: selection)
        } catch let e as ModelError { throw ValidationError("--ranks: \(e)") }
    }

    /// One setting: the compressed network evaluated and timed beside the
    /// dense one, written to `into` (model, checkpoint, compress.json, the
    /// figure), fine-tuned with `--finetune`, its bound checked in float64.
    private func compress(_ p: Prepared, _ inputs: Inputs, test: DeviceDataset, into: URL) throws
        -> Compression.Result
    {
        let (layers, network, tensors) = (p.factorized.layers, p.factorized.network, p.factorized.tensors)
        let (dense, saved, folded) = (inputs.dense, inputs.saved, inputs.folded)
        let compressed = try inputs.plan(network)
        let ordered = try compressed.checkpointTensors().map { t -> NamedTensor in
            guard let value = tensors[t.name], value.shape == t.shape else {
                throw ToolError(code: Exit.checkFailed, description: "compress: no tensor \(t.name) \(t.shape)")
            }
            return value
        }
        try compressed.load(checkpointTensors: ordered)
        try compressed.load(checkpointCounters: saved.counters)
        let ruleText = p.setting.text(images: dataAwareImages)
        // Dense and compressed passes in turn: the machine's load changes fall on both.
        var measured = try Compression.measure([dense, compressed], on: test, repeats: repeats)
        let recipe = try TrainingOptions.parse([]).settings(dataset: data.dataset, model: model.model)
        let steps = try Compression.measureSteps([dense, compressed], settings: recipe, repeats: repeats)
        for i in measured.indices { measured[i].stepSeconds = steps[i] }
        var result = Compression.Result(
            model: inputs.description.name, compressedModel: network.name, dataset: inputs.kind.displayName,
            device: "\(inputs.device.info.selector) (\(inputs.device.info.name))",
            rule: ruleText, dataAware: p.setting.dataAware,
            layers: layers,
            dense: measured[0], compressed: measured[1], stepBatch: recipe.batchSize)
        let modelFile = into.appendingPathComponent("model.json")
        let checkpointFile = into.appendingPathComponent(Checkpoint.fileName)
        try writeAtomically(Data(ModelFile.encode(network).utf8), to: modelFile)
        try Checkpoint(
            tensors: ordered, counters: saved.counters,
            metadata: [
                "format": "convsvd \(network.name) checkpoint", "compressed_from": inputs.description.name,
                "rule": ruleText,
            ]
        ).write(to: checkpointFile)
        if finetune > 0 {
            let options = ["--epochs", "\(finetune)"] + (trainLimit.map { ["--train-limit", "\($0)"] } ?? [])
            var training = try TrainingOptions.parse(options).settings(dataset: data.dataset, model: model.model)
            training.learningRate /= 10
            training.model = modelFile.path
            log("finetune: \(finetune) epoch(s) of \(network.name) at lr \(training.learningRate), ranks fixed")
            let trainer = try Training.run(
                model: try ModelOption.parse(["--model", modelFile.path]), settings: training,
                device: inputs.device, data: data,
                directory: try prepareOutputDirectory(into.appendingPathComponent("finetune").path),
                resume: false, initial: checkpointFile)
            result.finetuned = try Compression.measure(trainer.network, on: test, repeats: repeats)
        }
        // Any upper bound holds; each changed layer takes the smaller of its own and the search's.
        let lipschitz = try folded.layers.enumerated().map { i, layer in
            guard let applied = p.factorized.changedFolded[i] else { return inputs.denseLipschitz[i] }
            return min(try OperatorNormBound.best(layer, matrix: applied), p.selection?.lipschitz[i] ?? .infinity)
        }
        let bound = CompressionBound(network: folded, changedFolded: p.factorized.changedFolded, lipschitz: lipschitz)
        let started = Clocks.wall()
        let images = bound.evaluate(
            images: inputs.testSet.normalizedImages(0..<inputs.testSet.count), count: inputs.testSet.count,
            threads: Inputs.threads)
        result.bound = CompressionBoundSummary(images)
        let figures = into.appendingPathComponent("figures")
        try FileManager.default.createDirectory(at: figures, withIntermediateDirectories: true)
        _ = try Figures.compression(
            result.layers.map {
                Figures.CompressedLayer(
                    name: $0.path, denseMultiplyAdds: $0.denseMultiplyAdds, multiplyAdds: $0.multiplyAdds)
            }, bounds: images.map(\.bound), changes: images.map(\.change),
            accuracy: (result.dense.accuracy, result.compressed.accuracy)
        ).write(to: figures, format: .png)
        log(String(format: "bound: %d test images in float64 (%.1f s)", images.count, Clocks.seconds(since: started)))
        print(CompressionTable.render(result))
        try writeAtomically(try JSONEncoder.sorted.encode(result), to: into.appendingPathComponent("compress.json"))
        log("wrote \(into.path)/{model.json,checkpoint.safetensors,compress.json,figures/compression.png}")
        return result
    }

    /// The grid of several settings: its table, grid.json and figures/compression_grid.png in `directory`.
    private func writeGrid(_ settings: [(Compression.Setting, Compression.Result)], into directory: URL) throws {
        let grid = CompressionGrid(
            settings: settings.map { CompressionGrid.Entry(folder: $0.0.folderName, result: $0.1) })
        print(grid.table())
        let figures = directory.appendingPathComponent("figures")
        try FileManager.default.createDirectory(at: figures, withIntermediateDirectories: true)
        _ = try grid.figure().write(to: figures, format: .png)
        try writeAtomically(try JSONEncoder.sorted.encode(grid), to: directory.appendingPathComponent("grid.json"))
        log("wrote \(directory.path)/{grid.json,figures/compression_grid.png}")
    }
}

/// The printed table of a compression: one row per conv layer, then the totals.
enum CompressionTable {
    static func render(_ r: Compression.Result) -> String {
        var rows = [["layer", "weight", "rank", "break-even", "energy kept", "MACs/image", "factor error"]]
        for l in r.layers {
            rows.append([
                l.path, l.weightShape.map(String.init).joined(separator: "×"),
                l.rank.map { "\($0) of \(l.singularValues.count)" } ?? "dense", "\(l.breakEvenRank)",
                String(format: "%.4f%%", 100 * l.keptEnergy), "\(l.denseMultiplyAdds) → \(l.multiplyAdds)",
                l.factorError.map { String(format: "%.1e", $0) } ?? "",
            ])
        }
        var lines = ["\(r.model) → \(r.compressedModel) (\(r.rule)) on \(r.dataset), \(r.device)"]
        lines += columns(rows)
        for (label, m) in [("dense", r.dense), ("compressed", r.compressed), ("fine-tuned", r.finetuned)] {
            guard let m else { continue }
            lines.append(
                String(
                    format: "%@: test accuracy %.2f%%, mean loss %.4f, %d parameters, %d multiply-adds an image, "
                        + "test-set pass %.3f s (median)", label, 100 * m.accuracy, m.meanLoss, m.parameters,
                    m.multiplyAdds, m.inferenceSeconds)
                    + (m.stepSeconds.map {
                        String(format: ", training step %.1f ms at batch %d (median)", 1000 * $0, r.stepBatch ?? 0)
                    } ?? ""))
        }
        lines.append(
            String(
                format:
                    "compressed/dense: multiply-adds %.3f (conv layers %.3f), parameters %.3f, time %.3f, accuracy %+.2f points",
                Double(r.compressed.multiplyAdds) / Double(r.dense.multiplyAdds), r.convMultiplyAddRatio,
                Double(r.compressed.parameters) / Double(r.dense.parameters),
                r.compressed.inferenceSeconds / r.dense.inferenceSeconds,
                100 * (r.compressed.accuracy - r.dense.accuracy))
                + (r.stepRatio.map { String(format: ", training step %.3f", $0) } ?? "")
                + (r.finetuned.map {
                    String(format: " (%+.2f after fine-tuning)", 100 * ($0.accuracy - r.dense.accuracy))
                }
                    ?? ""))
        if let b = r.bound {
            let ratios =
                b.medianRatio.map { String(format: "B/change median %.3g, 95th percentile %.3g", $0, b.p95Ratio!) }
                ?? "no image changed"
            lines.append(
                String(
                    format: "bound B(x) ≥ ‖f(x) − f̂(x)‖₂ over %d test images: %d violation(s) [check: 0]; ",
                    b.images, b.violations)
                    + String(format: "mean B %.4g, mean change %.4g; ", b.meanBound, b.meanChange) + ratios)
            lines.append(
                String(
                    format:
                        "certified (margin > √2·B): %d of %d, of which changed %d [check: 0]; predictions changed: %d",
                    b.certified, b.images, b.certifiedButChanged, b.changedPredictions))
        }
        return lines.joined(separator: "\n")
    }
}
