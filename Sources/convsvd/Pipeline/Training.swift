import ArgumentParser
import Foundation
import GPUNet
import Models
import NetIO

/// Phase 1, shared by `train` and `run`.
enum Training {
    /// Trains (or resumes) into `directory` with progress on standard error;
    /// returns the trainer with its network and history. With a process
    /// `group`, this process is one rank of a data-parallel run (rank 0 alone
    /// prints epochs and writes the outputs).
    static func run(
        settings: TrainingSettings, device: any Device, data: DataOptions, directory: URL,
        resume: Bool, initial: URL? = nil, group: (any ProcessGroup)? = nil, observer: TrainingObserver? = nil
    ) throws -> Trainer {
        let sets = try data.load()
        let trainer = try Trainer(device: device, settings: settings, train: sets.train, test: sets.test)
        var observers: [TrainingObserver] = []
        if let reducer = try attach(group, to: trainer),
            let debug = try DataParallelDebug.install(on: reducer, trainer: trainer)
        {
            observers.append(debug)
        }
        try drive(
            trainer, directory: directory, resume: resume, initial: initial, group: group, observers: observers,
            observer: observer)
        return trainer
    }

    /// `train --model M` for a description (a ResNet, a model file): the
    /// same loop as TinyConvNet's over a ``NetworkPlan`` initialised from
    /// the seed with PyTorch's default scheme.
    static func run(
        model: ModelOption, settings: TrainingSettings, device: any Device, data: DataOptions, directory: URL,
        resume: Bool, initial: URL? = nil, group: (any ProcessGroup)? = nil, syncBatchNorm: Bool = false,
        observer: TrainingObserver? = nil
    ) throws -> ModelTrainer<NetworkPlan> {
        let (plan, sets) = try initialisedPlan(
            model, settings: settings, device: device, data: data, logging: (group?.rank ?? 0) == 0)
        let trainer = try ModelTrainer(network: plan, settings: settings, train: sets.train, test: sets.test)
        _ = try attach(group, to: trainer)
        if syncBatchNorm, let group, group.processes > 1 {
            plan.batchNormSynchronization = BatchNormSynchronization(group: group)
            if group.rank == 0 { log("sync-batchnorm: BatchNorm statistics over all \(group.processes) processes") }
        }
        try drive(
            trainer, directory: directory, resume: resume, initial: initial, group: group, observers: [],
            observer: observer)
        return trainer
    }

    /// `train --parameterization svd`: the model (TinyConvNet's fused path
    /// or a ``NetworkPlan``) initialised from the seed as plain training
    /// does, then wrapped so that its conv weights train in SVD coordinates
    /// (``SVDParameterizedNetwork``, factorised from those initial weights).
    static func runSVD(
        model: ModelOption, settings: TrainingSettings, device: any Device, data: DataOptions, directory: URL,
        resume: Bool, initial: URL?
    ) throws {
        let svd = settings.svd ?? SVDTrainingSettings()
        func describe(_ network: SVDParameterizedNetwork<some TrainableNetwork>) {
            log(
                "parameterization: svd (\(network.factorisedLayers.joined(separator: ", ")) as U·diag(σ)·Vᵀ), "
                    + "sigma-l1 \(svd.sigmaL1)" + (svd.sigmaL1 > 0 ? ", prune below \(svd.pruneThreshold)·max|σ|" : ""))
        }
        if model.isTiny {
            let sets = try data.load()
            let tiny = try TinyConvNet(device: device)
            try tiny.load(TinyConvNet.initialWeights(seed: settings.seed))
            let network = try SVDParameterizedNetwork(base: tiny, settings: svd)
            describe(network)
            let trainer = try ModelTrainer(network: network, settings: settings, train: sets.train, test: sets.test)
            try drive(
                trainer, directory: directory, resume: resume, initial: initial, group: nil, observers: [],
                observer: nil)
        } else {
            let (plan, sets) = try initialisedPlan(model, settings: settings, device: device, data: data, logging: true)
            let network = try SVDParameterizedNetwork(base: plan, settings: svd)
            describe(network)
            let trainer = try ModelTrainer(network: network, settings: settings, train: sets.train, test: sets.test)
            try drive(
                trainer, directory: directory, resume: resume, initial: initial, group: nil, observers: [],
                observer: nil)
        }
    }

    /// The model's plan on `device` initialised from the seed with PyTorch's
    /// default scheme, and its data; with `logging`, its size and recipe logged.
    private static func initialisedPlan(
        _ model: ModelOption, settings: TrainingSettings, device: any Device, data: DataOptions, logging: Bool
    ) throws -> (plan: NetworkPlan, sets: (train: Dataset, test: Dataset)) {
        let kind = try data.kind()
        let description = try model.description(for: kind)
        let sets = try data.load(forModel: model.model)
        let plan = try NetworkPlan(
            description, channels: kind.inputShape.channels, height: kind.inputShape.height,
            width: kind.inputShape.width, classes: kind.classCount, device: device)
        try plan.initialise(seed: settings.seed)
        if logging {
            log(
                "model: \(description.name), \(plan.summary.learnedParameterCount) parameters, "
                    + "\(plan.summary.multiplyAdds) multiply-adds an image; recipe: \(TrainingRecipe(settings))")
        }
        return (plan, sets)
    }

    /// Data-parallel training: a gradient reducer over `group`, or nil alone.
    private static func attach<N>(_ group: (any ProcessGroup)?, to trainer: ModelTrainer<N>) throws
        -> HostStagedGradientReducer?
    {
        guard let group else { return nil }
        guard trainer.settings.batchSize >= group.processes else {
            throw ValidationError(
                "--batch-size \(trainer.settings.batchSize) must be at least the number of processes (\(group.processes))"
            )
        }
        let reducer = HostStagedGradientReducer(group: group, device: trainer.device)
        trainer.gradientReducer = reducer
        return reducer
    }

    /// Resumes if asked, then trains with progress, stopping cleanly on an interrupt.
    private static func drive<N>(
        _ trainer: ModelTrainer<N>, directory: URL, resume: Bool, initial: URL?, group: (any ProcessGroup)?,
        observers: [TrainingObserver], observer: TrainingObserver?
    ) throws {
        var observers = observers
        let settings = trainer.settings
        let isRoot = (group?.rank ?? 0) == 0
        if let initial {
            try trainer.initialise(from: initial)
            if isRoot { log("init: the model's tensors from \(initial.path)") }
        }
        if resume {
            let finished = try trainer.resume(from: directory)
            if isRoot {
                log(
                    finished > 0
                        ? "resume: \(finished) epoch(s) already finished in \(directory.path)"
                        : "resume: no checkpoint in \(directory.path); starting at epoch 1")
            }
        } else if isRoot,
            FileManager.default.fileExists(
                atPath: directory.appendingPathComponent(ModelTrainer<N>.checkpointFile).path)
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
    }
}
