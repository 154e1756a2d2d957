import Analysis
import ArgumentParser
import DataParallel
import Figures
import Foundation
import GPUNet
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
            With --model other than tiny, each member is trained and its final test accuracy, training \
            accuracy and loss are summarised; the per-layer analysis (phases 2–7) is TinyConvNet's and \
            is skipped, saying so.
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

    @Flag(help: .hidden)
    var member = false

    func validate() throws {
        // The training options come as a group that includes --seed; a study sets it per member.
        if CommandLine.arguments.contains(where: { $0 == "--seed" || $0.hasPrefix("--seed=") }) {
            throw ValidationError("study takes --seeds (A..B or a list), not --seed")
        }
    }

    func run() throws {
        try reportingErrors {
            guard let figureFormat = FigureFormat(rawValue: format) else {
                throw ValidationError("--format must be png, svg or pdf (got \(format))")
            }
            let seedList = try Self.parseSeeds(seeds)
            let devices = device.isEmpty ? ["auto"] : device
            _ = try memberSettings()
            if !model.isTiny { _ = try model.description(for: try data.kind()) }
            let group = try distributed.join()
            try data.requireFits(model: model.model)
            let directory = try prepareOutputDirectory(out, lock: !member && (group?.rank ?? 0) == 0)
            if !model.isTiny && !member && (group?.rank ?? 0) == 0 {
                log(
                    "study: --model \(model.model): each member is trained and its accuracy and loss recorded; "
                        + "the analysis (phases 2–7) is skipped: it is TinyConvNet's (conv1, conv2 and its "
                        + "analytical net), and the per-layer analysis of other networks is not implemented")
            }
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
    func memberSettings() throws -> TrainingSettings {
        try training.settings(dataset: data.dataset, model: model.model)
    }

    /// A member is finished when its metrics hold all the epochs of this
    /// study's settings for its seed and, for TinyConvNet, its analysis.json
    /// exists: the analysis is written last, after the final epoch's
    /// checkpoint. (Another model's member has no analysis: its final
    /// epoch's metrics are its last output.)
    func isFinished(seed: UInt64, in directory: URL) throws -> Bool {
        let folder = Self.memberDirectory(directory, seed: seed)
        guard
            !model.isTiny
                || FileManager.default.fileExists(atPath: folder.appendingPathComponent("analysis.json").path),
            let json = try? Data(contentsOf: folder.appendingPathComponent(Trainer.metricsFile)),
            let metrics = try? JSONDecoder().decode(TrainingMetrics.self, from: json)
        else { return false }
        var settings = try memberSettings()
        settings.seed = seed
        return metrics.settings == settings && metrics.epochs.count == settings.epochs
    }

    /// Trains (resuming what is there) and analyses one seed, in this process.
    /// Returns false when the member was already finished (and was not redone).
    @discardableResult
    func runMember(seed: UInt64, device: any Device, in directory: URL) throws -> Bool {
        if try isFinished(seed: seed, in: directory) {
            log(
                "study: seed \(seed) already finished in \(Self.memberDirectory(directory, seed: seed).path); not redone"
            )
            return false
        }
        var settings = try memberSettings()
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
                    format: "study: seed %llu: test accuracy %.2f%%, final epoch's loss %.4f (analysis skipped: %@)",
                    seed, 100 * (last?.testAccuracy ?? .nan), last?.loss ?? .nan, model.model))
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
        if let d = data.data { args += ["--data", d] }
        return args
    }
}
