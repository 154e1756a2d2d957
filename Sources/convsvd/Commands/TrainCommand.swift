import ArgumentParser
import Foundation
import GPUNet
import NetIO

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train TinyConvNet; write checkpoint.safetensors, metrics.json and metrics.csv after every epoch.")

    @OptionGroup var device: DeviceOption
    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var distributed: DistributedOptions

    @Option(help: "Output folder.")
    var out: String = "outputs"

    @Flag(help: "Continue from the last finished epoch in --out.")
    var resume = false

    func run() throws {
        try reportingErrors {
            let settings = try training.settings(dataset: data.dataset)
            let group = try distributed.join()
            let directory = try prepareOutputDirectory(out, lock: (group?.rank ?? 0) == 0)
            _ = try Training.run(
                settings: settings, device: device.make(for: group), data: data, directory: directory,
                resume: resume, group: group)
        }
    }
}

/// Phase 1, shared by `train` and `run`.
enum Training {
    /// Trains (or resumes) into `directory` with progress on standard error;
    /// returns the trainer with its network and history. With a process
    /// `group`, this process is one rank of a data-parallel run (rank 0 alone
    /// prints epochs and writes the outputs).
    static func run(
        settings: TrainingSettings, device: any Device, data: DataOptions, directory: URL,
        resume: Bool, group: (any ProcessGroup)? = nil, observer: TrainingObserver? = nil
    ) throws -> Trainer {
        let sets = try data.load()
        let trainer = try Trainer(device: device, settings: settings, train: sets.train, test: sets.test)
        var observers: [TrainingObserver] = []
        if let group {
            guard settings.batchSize >= group.processes else {
                throw ValidationError(
                    "--batch-size \(settings.batchSize) must be at least the number of processes (\(group.processes))")
            }
            let reducer = HostStagedGradientReducer(group: group, device: device)
            trainer.gradientReducer = reducer
            if let debug = try DataParallelDebug.install(on: reducer, trainer: trainer) { observers.append(debug) }
        }
        let isRoot = (group?.rank ?? 0) == 0
        if resume {
            let finished = try trainer.resume(from: directory)
            if isRoot {
                log(
                    finished > 0
                        ? "resume: \(finished) epoch(s) already finished in \(directory.path)"
                        : "resume: no checkpoint in \(directory.path); starting at epoch 1")
            }
        } else if isRoot,
            FileManager.default.fileExists(atPath: directory.appendingPathComponent(Trainer.checkpointFile).path)
        {
            log(
                "note: \(directory.path) holds an earlier checkpoint; it is replaced after the first epoch (use --resume to continue it)"
            )
        }
        try trainer.synchronizeProcesses()
        Interrupt.install()
        trainer.shouldStop = { Interrupt.requested }
        if isRoot { observers.insert(observer ?? EpochPrinter(batchSize: settings.batchSize), at: 0) }
        try trainer.run(
            outputDirectory: directory, observer: observers.count == 1 ? observers[0] : ObserverChain(observers))
        return trainer
    }
}

/// One line per epoch on standard output, a progress bar within the epoch.
final class EpochPrinter: TrainingObserver {
    private var progress: Progress?
    private let batchSize: Int
    private var printedHeader = false

    init(batchSize: Int) { self.batchSize = batchSize }

    func epochStarted(epoch: Int, of epochs: Int, steps: Int) {
        progress = Progress("epoch \(epoch)/\(epochs)", total: steps, unit: "step")
    }

    func stepFinished(epoch: Int, step: Int, steps: Int, images: Int, meanLoss: Double) {
        progress?.update(step, note: String(format: "loss %.4f", meanLoss))
    }

    func epochFinished(_ m: EpochMetrics, of epochs: Int) {
        progress?.finish()
        if !printedHeader {
            print("epoch   loss     train acc  test acc   seconds  images/s")
            printedHeader = true
        }
        print(
            String(
                format: "%5d  %7.4f   %7.2f%%   %7.2f%%  %7.2f  %8.0f", m.epoch, m.loss, 100 * m.trainAccuracy,
                100 * m.testAccuracy, m.seconds, m.imagesPerSecond))
        fflush(stdout)
    }
}
