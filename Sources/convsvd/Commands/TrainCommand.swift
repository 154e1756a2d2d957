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

    @Option(help: "Output folder.")
    var out: String = "outputs"

    @Flag(help: "Continue from the last finished epoch in --out.")
    var resume = false

    func run() throws {
        try reportingErrors {
            let settings = try training.settings(dataset: data.dataset)
            let directory = try prepareOutputDirectory(out)
            _ = try Training.run(settings: settings, device: device.make(), data: data, directory: directory,
                                 resume: resume)
        }
    }
}

/// Phase 1, shared by `train` and `run`.
enum Training {
    /// Trains (or resumes) into `directory` with progress on standard error;
    /// returns the trainer with its network and history.
    static func run(settings: TrainingSettings, device: any Device, data: DataOptions, directory: URL,
                    resume: Bool) throws -> Trainer {
        let sets = try data.load()
        let trainer = try Trainer(device: device, settings: settings, train: sets.train, test: sets.test)
        if resume {
            let finished = try trainer.resume(from: directory)
            log(finished > 0 ? "resume: \(finished) epoch(s) already finished in \(directory.path)"
                             : "resume: no checkpoint in \(directory.path); starting at epoch 1")
        } else if FileManager.default.fileExists(atPath: directory.appendingPathComponent(Trainer.checkpointFile).path) {
            log("note: \(directory.path) holds an earlier checkpoint; it is replaced after the first epoch (use --resume to continue it)")
        }
        Interrupt.install()
        trainer.shouldStop = { Interrupt.requested }
        let observer = EpochPrinter(batchSize: settings.batchSize)
        try trainer.run(outputDirectory: directory, observer: observer)
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
        print(String(format: "%5d  %7.4f   %7.2f%%   %7.2f%%  %7.2f  %8.0f", m.epoch, m.loss, 100 * m.trainAccuracy,
                     100 * m.testAccuracy, m.seconds, m.imagesPerSecond))
        fflush(stdout)
    }
}
