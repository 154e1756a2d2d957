import Analysis
import ArgumentParser
import DataParallel
import Figures
import Foundation
import GPUNet
import Models
import NetIO

struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Train and analyse one run per seed, then summarise every headline number over the seeds.",
        discussion: """
            Each member goes to --out/seed-N/ (checkpoint, metrics, analysis.json); a finished member \
            (its analysis.json written after all its epochs) is not redone, an unfinished one resumes. \
            Then study.json and study.html: mean, standard deviation, min, max and a 95% Student-t \
            interval of every headline number, with the per-seed values, and figures with error bars. \
            With --device given more than once, members run side by side, one child process per device; \
            under `mpirun … --distributed mpi` each rank trains its share of the seeds. \
            Every member also gets the per-layer analysis of `analyze --model` (network-analysis.json: \
            BatchNorm folded, per layer the σ, 95/99% ranks, stable rank, accuracy with the layer at rank \
            k, ReLU masks, operator norm) on the first --analysis-images test images, host float64, with \
            the device's layer outputs compared for models other than tiny; tiny members keep their \
            TinyConvNet analysis.json too. With --model other than tiny, study.json summarises the final \
            epoch's accuracies and loss and the per-layer numbers. \
            --datasets A,B,… runs one such study per dataset in --out/DATASET/ and compares them layer by \
            layer (study.json, study.html, figures/: mean ± sd over the seeds, one figure per quantity); \
            each dataset's files are found as `train` finds them (its environment variable or the \
            default folder), so --data and --dataset are refused with it, as are several --device and \
            --distributed.
            """)

    @Option(help: "Seeds: A..B (inclusive), or a comma-separated list.")
    var seeds: String = "0..9"

    @Option(name: .long, help: "auto | host | opencl | opencl:P:D; more than once to run members side by side.")
    var device: [String] = []

    @Option(help: "OpenCL kernel family for every member: auto | cpu | gpu (see `convsvd train --help`).")
    var kernels: String = "auto"

    @OptionGroup var model: ModelOption
    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var distributed: DistributedOptions

    @Option(help: "Output folder (one seed-N folder per member).")
    var out: String = "study"

    @Option(help: "Figure format: png | svg | pdf.")
    var format: String = "png"

    @Option(help: "Datasets to compare, comma-separated (mnist,fashion-mnist,cifar10): one study per dataset.")
    var datasets: String?

    @Option(
        name: .customLong("analysis-images"),
        help: "Test images (the first ones) of each member's per-layer analysis; its ReLU masks use at most 256.")
    var analysisImages: Int = 1000

    @Flag(help: .hidden)
    var member = false

    func validate() throws {
        // The training options come as a group that includes --seed; a study sets it per member.
        if CommandLine.arguments.contains(where: { $0 == "--seed" || $0.hasPrefix("--seed=") }) {
            throw ValidationError("study takes --seeds (A..B or a list), not --seed")
        }
        if analysisImages < 1 { throw ValidationError("--analysis-images must be at least 1 (got \(analysisImages))") }
        if datasets != nil {
            for option in ["--dataset", "--data"]
            where CommandLine.arguments.contains(where: { $0 == option || $0.hasPrefix(option + "=") }) {
                throw ValidationError(
                    "study --datasets finds each dataset as train does; it does not take \(option)")
            }
            if device.count > 1 { throw ValidationError("study --datasets runs on one --device") }
            if distributed.distributed != nil { throw ValidationError("study --datasets does not take --distributed") }
        }
    }

    /// `--datasets` parsed (nil without it): the data options of each.
    func datasetOptions() throws -> [DataOptions]? {
        guard let datasets else { return nil }
        let names = datasets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty, Set(names).count == names.count else {
            throw ValidationError("--datasets must name distinct datasets, comma-separated (got \(datasets))")
        }
        return try names.map { name in
            _ = try DataOptions.kind(named: name)
            var d = data
            d.dataset = name
            d.data = nil
            return d
        }
    }

    func run() throws {
        try reportingErrors {
            guard let figureFormat = FigureFormat(rawValue: format) else {
                throw ValidationError("--format must be png, svg or pdf (got \(format))")
            }
            let seedList = try Self.parseSeeds(seeds)
            if let sets = try datasetOptions() {
                try runDatasets(sets, seeds: seedList, format: figureFormat)
                return
            }
            let devices = device.isEmpty ? ["auto"] : device
            _ = try memberSettings()
            if !model.isTiny { _ = try model.description(for: try data.kind()) }
            let group = try distributed.join()
            try data.requireFits(model: model.model)
            let directory = try prepareOutputDirectory(out, lock: !member && (group?.rank ?? 0) == 0)
            if member {
                for seed in seedList {
                    try runMember(
                        seed: seed, device: DeviceOption.named(devices[0], kernels: kernels).make(), in: directory)
                }
                return
            }
            // Under MPI each rank reports its own share: seeds i with i mod N = rank.
            let share = group.map { (seedList.count - $0.rank + $0.processes - 1) / $0.processes } ?? seedList.count
            let study = StudyProgress(total: share)
            if let group {
                let mine = seedList.enumerated().filter { $0.offset % group.processes == group.rank }.map(\.element)
                let made = try DeviceOption.named(devices[0], kernels: kernels).make(for: group)
                for seed in mine {
                    study.memberDone(seed: seed, ran: try runMember(seed: seed, device: made, in: directory))
                }
                // Every rank's members are finished before rank 0 reads them.
                var done = [1.0]
                try group.sum(&done)
                guard group.rank == 0 else { return }
            } else if devices.count == 1 {
                let made = try DeviceOption.named(devices[0], kernels: kernels).make()
                for seed in seedList {
                    study.memberDone(seed: seed, ran: try runMember(seed: seed, device: made, in: directory))
                }
            } else {
                try runSideBySide(seedList, devices: devices, in: directory, progress: study)
            }
            try StudySummaryStage.write(
                seeds: seedList, in: directory, format: figureFormat, settings: try memberSettings(),
                analysed: model.isTiny,
                devices: device.isEmpty ? ["auto"] : device)
        }
    }

    static func parseSeeds(_ text: String) throws -> [UInt64] {
        let parts = text.components(separatedBy: "..")
        var seeds: [UInt64]
        if parts.count == 2, let a = UInt64(parts[0]), let b = UInt64(parts[1]) {
            guard a <= b else { throw ValidationError("--seeds \(text): the first seed must not exceed the last") }
            seeds = Array(a...b)
        } else {
            let list = text.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
            guard !list.isEmpty, list.allSatisfy({ $0 != nil }) else {
                throw ValidationError(
                    "--seeds must be A..B or a comma-separated list of non-negative integers (got \(text))")
            }
            seeds = list.map { $0! }
        }
        guard Set(seeds).count == seeds.count else { throw ValidationError("--seeds \(text) names a seed twice") }
        return seeds
    }

    static func memberDirectory(_ directory: URL, seed: UInt64) -> URL {
        directory.appendingPathComponent("seed-\(seed)")
    }

    /// The members' training settings (each with its own seed): the
    /// model's recipe, overridden by the options given.
    func memberSettings(_ data: DataOptions? = nil) throws -> TrainingSettings {
        try training.settings(dataset: (data ?? self.data).dataset, model: model.model)
    }

    /// One study per dataset in --out/DATASET/, one device, then the comparison.
    func runDatasets(_ sets: [DataOptions], seeds: [UInt64], format: FigureFormat) throws {
        _ = try memberSettings()
        for d in sets {
            _ = try model.description(for: try d.kind())
            try d.requireFits(model: model.model)
        }
        let directory = try prepareOutputDirectory(out)
        let made = try DeviceOption.named(device.first ?? "auto", kernels: kernels).make()
        let progress = StudyProgress(total: sets.count * seeds.count)
        var folders: [(dataset: String, directory: URL)] = []
        for d in sets {
            let folder = directory.appendingPathComponent(d.dataset)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for seed in seeds {
                progress.memberDone(seed: seed, ran: try runMember(seed: seed, device: made, in: folder, data: d))
            }
            folders.append((d.dataset, folder))
        }
        try StudySummaryStage.writeDatasets(
            folders, seeds: seeds, in: directory, model: model.model, format: format,
            settings: try memberSettings(sets[0]), analysisImages: analysisImages, device: device.first ?? "auto")
    }

    /// A member is finished when its metrics hold all the epochs of this
    /// study's settings for its seed and, for TinyConvNet, its analysis.json
    /// exists: the analysis is written last, after the final epoch's
    /// checkpoint. (Another model's member has no analysis: its final
    /// epoch's metrics are its last output.)
    func isFinished(seed: UInt64, in directory: URL, data: DataOptions? = nil) throws -> Bool {
        let folder = Self.memberDirectory(directory, seed: seed)
        guard
            !model.isTiny
                || FileManager.default.fileExists(atPath: folder.appendingPathComponent("analysis.json").path),
            FileManager.default.fileExists(atPath: folder.appendingPathComponent(Self.networkAnalysisFile).path),
            let json = try? Data(contentsOf: folder.appendingPathComponent(Trainer.metricsFile)),
            let metrics = try? JSONDecoder().decode(TrainingMetrics.self, from: json)
        else { return false }
        var settings = try memberSettings(data)
        settings.seed = seed
        return metrics.settings == settings && metrics.epochs.count == settings.epochs
    }

    /// A member's per-layer analysis (``Analysis/NetworkAnalysisReport``).
    static let networkAnalysisFile = "network-analysis.json"

    /// The per-layer analysis options of a member: phases 1, 3, 4 and 5 on
    /// the first --analysis-images test images, the ReLU masks on at most
    /// 256 of them, no measured input gradients (phase 9's bounds suffice)
    /// and no data-aware low rank or regions along lines (not among the
    /// compared quantities).
    var memberAnalysisOptions: NetworkAnalysisOptions {
        NetworkAnalysisOptions(
            images: analysisImages, sweepImages: analysisImages, gradientImages: 0, dataAwareImages: 0,
            maskImages: min(analysisImages, 256), regionPairs: 0)
    }

    /// Runs and writes a member's per-layer analysis; logs its checks.
    func analyseLayers(
        _ network: FoldedNetwork, device: LayeredNetworkUnderTest?, test: Dataset, seed: UInt64, folder: URL
    ) throws {
        let report = try NetworkAnalyzer(network: network, testSet: test, options: memberAnalysisOptions).run(
            device: device)
        try report.write(to: folder.appendingPathComponent(Self.networkAnalysisFile))
        log(
            "study: seed \(seed): per-layer analysis of \(report.layers.count) layers, "
                + "\(report.checks.filter(\.passed).count) of \(report.checks.count) checks passed"
                + (report.allChecksPassed
                    ? "" : " (failed: \(report.failedChecks.map(\.id).joined(separator: ", ")))"))
    }

    /// Trains (resuming what is there) and analyses one seed, in this process.
    /// Returns false when the member was already finished (and was not redone).
    @discardableResult
    func runMember(seed: UInt64, device: any Device, in directory: URL, data: DataOptions? = nil) throws -> Bool {
        let data = data ?? self.data
        if try isFinished(seed: seed, in: directory, data: data) {
            log(
                "study: seed \(seed) already finished in \(Self.memberDirectory(directory, seed: seed).path); not redone"
            )
            return false
        }
        var settings = try memberSettings(data)
        settings.seed = seed
        let folder = Self.memberDirectory(directory, seed: seed)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        log("study: seed \(seed): training \(settings.epochs) epoch(s) on \(device.info.summary)")
        if !model.isTiny {
            let trainer = try Training.run(
                model: model, settings: settings, device: device, data: data, directory: folder, resume: true,
                observer: MemberObserver(seed: seed))
            let last = trainer.history.last
            log(
                String(
                    format: "study: seed %llu: test accuracy %.2f%%, final epoch's loss %.4f", seed,
                    100 * (last?.testAccuracy ?? .nan), last?.loss ?? .nan))
            let plan = trainer.network
            let network = try NetworkAnalysisStage.fold(
                try model.description(for: try data.kind()), plan: plan, tensors: try plan.checkpointTensors())
            try analyseLayers(network, device: PlanUnderTest(plan), test: trainer.test, seed: seed, folder: folder)
            return true
        }
        let trainer = try Training.run(
            settings: settings, device: device, data: data, directory: folder, resume: true,
            observer: MemberObserver(seed: seed))
        let report = try AnalysisPhases.run(
            weights: try trainer.network.weights(), device: device,
            data: (trainer.train, trainer.test), sweep: true)
        try report.write(to: folder.appendingPathComponent("analysis.json"))
        log(
            String(
                format: "study: seed %llu: test accuracy %.2f%%, %d of %d checks passed", seed,
                100 * report.testAccuracy, report.checks.filter(\.passed).count, report.checks.count))
        // The per-layer analysis on the host alone: analysis.json holds TinyConvNet's device checks.
        let w = try trainer.network.weights()
        let network = try FoldedNetwork(
            BuiltinModels.tinyConvNet(), input: .map(channels: 1, height: 28, width: 28), classes: 10,
            tensors: ["conv1.weight": w.conv1, "conv2.weight": w.conv2, "fc.weight": w.fcWeight, "fc.bias": w.fcBias])
        try analyseLayers(network, device: nil, test: trainer.test, seed: seed, folder: folder)
        return true
    }

    /// One child process (`convsvd study --member`) per device at a time,
    /// each taking the next unfinished seed.
    func runSideBySide(_ seeds: [UInt64], devices: [String], in directory: URL, progress: StudyProgress) throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        /// The seeds not yet started and the failures, shared by the device threads under `lock`.
        final class Shared: @unchecked Sendable {
            let lock = NSLock()
            var queue: ArraySlice<UInt64>
            var failures: [String] = []
            init(_ seeds: [UInt64]) { queue = seeds[...] }
        }
        let shared = Shared(seeds)
        let lock = shared.lock
        let workers = DispatchGroup()
        let member = try memberArguments()
        for device in devices {
            workers.enter()
            Thread.detachNewThread {
                defer { workers.leave() }
                while true {
                    lock.lock()
                    let next = shared.queue.popFirst()
                    lock.unlock()
                    guard let seed = next else { return }
                    let finished = (try? isFinished(seed: seed, in: directory)) ?? false
                    let child = Process()
                    child.executableURL = executable
                    child.arguments =
                        [
                            "study", "--member", "--seeds", "\(seed)", "--device", device, "--kernels", kernels,
                            "--out", directory.path,
                            "--format", format,
                        ] + member
                    do {
                        try child.run()
                        child.waitUntilExit()
                    } catch {
                        lock.lock()
                        shared.failures.append("seed \(seed): cannot start \(executable.path): \(error)")
                        lock.unlock()
                        continue
                    }
                    lock.lock()
                    if child.terminationStatus != 0 {
                        shared.failures.append("seed \(seed) on \(device): exit \(child.terminationStatus)")
                    } else {
                        progress.memberDone(seed: seed, ran: !finished)
                    }
                    lock.unlock()
                }
            }
        }
        workers.wait()
        guard shared.failures.isEmpty else {
            throw ToolError(
                code: Exit.checkFailed, description: "study members failed: " + shared.failures.joined(separator: "; "))
        }
    }

    /// The data and training options, for a member's child process.
    func memberArguments() throws -> [String] {
        var args = TrainingOptions.arguments(for: try memberSettings())
        args += ["--analysis-images", "\(analysisImages)"]
        if let d = data.data { args += ["--data", d] }
        return args
    }
}
