import ArgumentParser
import Foundation
import GPUNet
import NetIO

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
