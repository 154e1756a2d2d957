import Foundation
import NetIO

/// What a caller sees of a training run as it happens (progress bars, logs).
public protocol TrainingObserver: AnyObject {
    func epochStarted(epoch: Int, of epochs: Int, steps: Int)
    /// After each optimisation step; `images` is the running count this epoch.
    func stepFinished(epoch: Int, step: Int, steps: Int, images: Int, meanLoss: Double)
    func epochFinished(_ metrics: EpochMetrics, of epochs: Int)
}

/// Trains a network (``TinyConvNet``, or any description as a
/// ``NetworkPlan``) on one device: the whole step (forward, loss,
/// backward, update) runs there; the training and test sets are uploaded
/// once (``DeviceDataset``), and the host shuffles, uploads each epoch's
/// order, and reads back the steps' losses and correct counts in blocks
/// (``stepsPerRead``) without stopping the device in between.
///
/// After every epoch `checkpoint.safetensors`, `metrics.json` and
/// `metrics.csv` are written atomically to the output folder, so an
/// interruption loses at most the epoch in progress, and `resume` continues
/// from the last finished epoch to the same final weights.
public final class ModelTrainer<Network: TrainableNetwork> {
    public let device: any Device
    public let settings: TrainingSettings
    public let train: Dataset
    public let test: Dataset
    public let network: Network
    public let optimizer: Optimizer
    /// Rows of finished epochs (restored ones included).
    public private(set) var history: [EpochMetrics] = []
    /// `train` and `test` on the device, uploaded by the first ``run(outputDirectory:observer:)``.
    private var trainOnDevice: DeviceDataset?, testOnDevice: DeviceDataset?

    public static var checkpointFile: String { "checkpoint.safetensors" }
    public static var metricsFile: String { "metrics.json" }
    public static var metricsCSVFile: String { "metrics.csv" }

    /// Steps between the host's reads of the step results (the progress
    /// shown, and the divergence check): the device's queue is never
    /// drained in between (``StepResultLog``). 50 steps of TinyConvNet at
    /// batch 64 are ~25 ms on PoCL here, so progress stays smooth.
    public var stepsPerRead = 50
    private var resultLogStore: StepResultLog?
    private var ownResultBuffers: [ObjectIdentifier: (workspace: Network.Workspace, buffer: Buffer)] = [:]

    /// Checked between steps: a true value stops the run after the current step.
    public var shouldStop: () -> Bool = { false }

    /// Data-parallel training (nil: one process): this process trains on its
    /// share of each batch and the reducer combines the gradients between
    /// the backward pass and the optimiser step; only rank 0 writes outputs.
    /// See ``GradientReducer`` for the batch rule.
    public var gradientReducer: (any GradientReducer)?

    /// Trains `network` as it is (initialised or loaded by the caller).
    /// - Throws: a ``TrainingError`` when the sets' images are not the network's input.
    public init(network: Network, settings: TrainingSettings, train: Dataset, test: Dataset) throws {
        try settings.validate()
        for set in [train, test] where set.imageSize != network.inputSize {
            throw TrainingError.invalidSetting(
                "\(set.name) images have \(set.imageSize) values (\(set.channels)×\(set.rows)×\(set.columns)), "
                    + "the model's input \(network.inputSize)")
        }
        self.device = network.device
        self.network = network
        self.settings = settings
        self.train = settings.trainLimit.map { train.prefix($0) } ?? train
        self.test = settings.testLimit.map { test.prefix($0) } ?? test
        optimizer = try Optimizer(
            settings.optimizer, learningRate: settings.learningRate, schedule: settings.schedule,
            parameters: network.parameterBuffers, names: network.parameterNames, device: device)
    }

    /// The order of epoch `epoch` (1-based): a Fisher–Yates shuffle seeded by
    /// (seed, epoch), so any epoch's order is known without replaying earlier ones.
    public static func order(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var random = SeededRandom(seed: seed, stream: UInt64(epoch))
        var order = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                let j = Int(random.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        return order
    }

    /// Starts from the model tensors of `url`, a checkpoint or a PyTorch
    /// `state_dict` saved with safetensors (its names PyTorch's; optimiser
    /// tensors, if any, are ignored).
    /// - Throws: an error naming the first tensor that is missing or has
    ///   another shape.
    public func initialise(from url: URL) throws {
        let expected = try network.checkpointTensors().map { (name: $0.name, shape: $0.shape) }
        let checkpoint = try Checkpoint.read(
            from: url, model: expected, modelName: network.modelName, requireFinite: true)
        try network.load(checkpointTensors: checkpoint.tensors)
        try network.load(checkpointCounters: checkpoint.counters)
    }

    /// Restores weights, optimiser state and history from `directory`'s
    /// checkpoint and metrics. Returns the number of finished epochs.
    @discardableResult
    public func resume(from directory: URL) throws -> Int {
        let url = directory.appendingPathComponent(Self.checkpointFile)
        guard FileManager.default.fileExists(atPath: url.path) else { return 0 }
        let expected = try network.checkpointTensors().map { (name: $0.name, shape: $0.shape) }
        let checkpoint = try Checkpoint.read(from: url, model: expected, modelName: network.modelName)
        guard let settingsJSON = checkpoint.metadata["settings"],
            let saved = try? JSONDecoder().decode(TrainingSettings.self, from: Data(settingsJSON.utf8))
        else { throw TrainingError.resume("\(url.path) has no training settings in its metadata") }
        guard settings.isContinuation(of: saved) else {
            throw TrainingError.resume("\(url.path) was trained with other settings (\(settingsJSON))")
        }
        guard let epochText = checkpoint.metadata["epoch"], let epoch = Int(epochText),
            let stepText = checkpoint.metadata["optimizer_step"], let step = Int(stepText)
        else { throw TrainingError.resume("\(url.path) lacks the epoch or optimizer_step metadata") }
        try network.load(checkpointTensors: checkpoint.tensors)
        try network.load(checkpointCounters: checkpoint.counters)
        try optimizer.restore(checkpoint.optimizerState, step: step)
        let metricsURL = directory.appendingPathComponent(Self.metricsFile)
        if let data = try? Data(contentsOf: metricsURL),
            let metrics = try? JSONDecoder().decode(TrainingMetrics.self, from: data)
        {
            history = Array(metrics.epochs.prefix(epoch))
        }
        return epoch
    }

    /// Trains the remaining epochs, writing outputs to `directory` after each.
    public func run(outputDirectory directory: URL?, observer: TrainingObserver? = nil) throws {
        let startEpoch = history.count + 1
        guard startEpoch <= settings.epochs else { return }
        let steps =
            gradientReducer?.steps(images: train.count, batchSize: settings.batchSize)
            ?? (train.count + settings.batchSize - 1) / settings.batchSize
        optimizer.totalSteps = steps * settings.epochs
        let (trainData, testData) = try prepareDevice()
        for epoch in startEpoch...settings.epochs {
            observer?.epochStarted(epoch: epoch, of: settings.epochs, steps: steps)
            let start = Clocks.wall()
            try trainData.setOrder(
                settings.order == .file
                    ? Array(0..<train.count) : Self.order(count: train.count, seed: settings.seed, epoch: epoch))
            var lossSum = 0.0
            var correct = 0
            var seen = 0
            /// Adds read-back step results to the epoch's sums and reports
            /// each; the first non-finite loss ends the run at its step.
            func conclude(_ results: [StepResultLog.StepResult]) throws {
                for result in results {
                    guard result.lossSum.isFinite else {
                        throw TrainingError.nonFiniteLoss(epoch: epoch, step: result.step + 1, loss: result.lossSum)
                    }
                    lossSum += result.lossSum
                    correct += result.correct
                    seen += result.batch
                    observer?.stepFinished(
                        epoch: epoch, step: result.step + 1, steps: steps, images: seen,
                        meanLoss: lossSum / Double(seen))
                }
            }
            // The host queues step after step: each step's loss writes its
            // per-sample results into a slot of the device's result log,
            // which the host reads a block of `stepsPerRead` steps at a time,
            // waiting for a block only once two more steps are queued behind
            // it (StepResultLog), so the device always has work. A
            // non-finite loss ends the run at its own step once its block is
            // read; the steps queued after it change nothing that is kept,
            // since nothing is saved after a failure. A stop request is
            // looked at before each step is queued: the queued steps finish
            // and are reported, no other starts.
            let log = try resultLog()
            var queuedSteps = 0
            defer { restoreResultBuffers() }
            for step in 0..<steps {
                if queuedSteps > 0, shouldStop() {
                    try conclude(try log.drain())
                    throw TrainingError.interrupted(epoch: epoch, step: queuedSteps, epochsFinished: history.count)
                }
                let global = (step * settings.batchSize)..<min(train.count, (step + 1) * settings.batchSize)
                let batch = localShare(of: global)
                let w = try network.workspace(batch: batch.count)
                redirectResults(of: w, to: log.slot(forStep: step))
                if settings.augmentation == .none {
                    try network.trainingStep(w, gathering: batch, from: trainData)
                } else {
                    try gather(trainData, batch, into: w, epoch: epoch)
                    try network.trainingStep(w)
                }
                try gradientReducer?.reduce(network.gradientBuffers, localBatch: batch.count, globalBatch: global.count)
                try optimizer.update(parameters: network.parameterBuffers, gradients: network.gradientBuffers)
                queuedSteps += 1
                try conclude(try log.queued(step: step, batch: batch.count))
            }
            try conclude(try log.drain())
            restoreResultBuffers()
            try device.finish()
            let svdReport = try network.finishEpoch()
            if let group = gradientReducer?.group {
                var totals = [lossSum, Double(correct), Double(seen)]
                try group.sum(&totals)
                (lossSum, correct, seen) = (totals[0], Int(totals[1]), Int(totals[2]))
            }
            let trainSeconds = Clocks.seconds(since: start)
            // Every rank holds the same weights: rank 0 alone evaluates (and writes); the others record NaN.
            let testAccuracy =
                (gradientReducer?.group.rank ?? 0) == 0
                ? try Evaluation.run(network: network, on: testData).accuracy : .nan
            let metrics = EpochMetrics(
                epoch: epoch, loss: lossSum / Double(seen),
                trainAccuracy: Double(correct) / Double(seen), testAccuracy: testAccuracy,
                seconds: trainSeconds, imagesPerSecond: Double(seen) / trainSeconds, svd: svdReport)
            history.append(metrics)
            if let directory, (gradientReducer?.group.rank ?? 0) == 0 { try save(to: directory) }
            observer?.epochFinished(metrics, of: settings.epochs)
        }
    }

    /// The device's log of step results for this run's batch size, made once.
    private func resultLog() throws -> StepResultLog {
        if let resultLogStore { return resultLogStore }
        let log = try StepResultLog(
            device: device, maxBatch: max(1, min(settings.batchSize, train.count)), stepsPerRead: stepsPerRead)
        resultLogStore = log
        return log
    }

    /// Points `w`'s loss output at `slot`, remembering the workspace's own buffer.
    private func redirectResults(of w: Network.Workspace, to slot: Buffer) {
        let key = ObjectIdentifier(w)
        if ownResultBuffers[key] == nil { ownResultBuffers[key] = (w, w.perSample) }
        w.perSample = slot
    }

    /// Gives each redirected workspace its own result buffer back (evaluation reads it there).
    private func restoreResultBuffers() {
        for (w, buffer) in ownResultBuffers.values { w.perSample = buffer }
        ownResultBuffers.removeAll()
    }

    /// Uploads the training and test sets (once per trainer), then runs a
    /// step's operations once before the first epoch's clock starts:
    /// an OpenCL device builds (or loads from its cache) each kernel at its
    /// first launch, seconds on a cold cache, which is not training time.
    /// The gather, forward and backward passes write only inputs,
    /// activations and gradients, which the first real step overwrites;
    /// parameters, optimiser state and history are untouched.
    private func prepareDevice() throws -> (train: DeviceDataset, test: DeviceDataset) {
        let trainData = try trainOnDevice ?? DeviceDataset(train, on: device)
        let testData = try testOnDevice ?? DeviceDataset(test, on: device)
        (trainOnDevice, testOnDevice) = (trainData, testData)
        // The full batch, and the epoch's last, smaller one if there is one
        // (its launches have other sizes, which PoCL compiles its own code for).
        // Data-parallel: this process's shares of those two, each only if
        // every process has a share (as the epoch trains only such batches),
        // so that the processes run the same passes (a synchronised BatchNorm
        // sums over the processes in each).
        let full = min(settings.batchSize, max(1, train.count))
        let remainder = train.count % settings.batchSize
        let processes = gradientReducer?.group.processes ?? 1
        let sizes = ([full] + (remainder > 0 && remainder != full ? [remainder] : [])).filter { $0 >= processes }.map {
            localShare(of: 0..<$0).count
        }
        // A training pass moves BatchNorm's running statistics: the
        // network's state is put back afterwards.
        let state = try network.checkpointTensors()
        let counters = network.checkpointCounters()
        for batch in sizes where batch > 0 {
            let w = try network.workspace(batch: batch)
            if batch <= train.count { try gather(trainData, 0..<batch, into: w, epoch: 1) }
            try network.trainingStep(w)
            try network.forward(w, training: false)
        }
        try network.load(checkpointTensors: state)
        try network.load(checkpointCounters: counters)
        try optimizer.prepare()
        try device.finish()
        return (trainData, testData)
    }

    /// A training batch: plain (TinyConvNet's gather), or cropped and flipped
    /// as ``TrainingSettings/augmentation`` says, the choices seeded by
    /// (seed, epoch, position in the epoch's order).
    private func gather(_ data: DeviceDataset, _ range: Range<Int>, into w: Network.Workspace, epoch: Int) throws {
        if settings.augmentation == .none {
            try data.gather(range, into: w)
        } else {
            try data.gather(
                range, images: w.input, labels: w.labels, augmentation: settings.augmentation, seed: settings.seed,
                epoch: epoch)
        }
    }

    /// The positions of the epoch's order this process trains on within the
    /// global batch `global`: all of it in one process, its rank's
    /// contiguous share under data parallelism (``GradientReducer``).
    private func localShare(of global: Range<Int>) -> Range<Int> {
        guard let share = gradientReducer?.share(of: global.count) else { return global }
        return (global.lowerBound + share.lowerBound)..<(global.lowerBound + share.upperBound)
    }

    /// Test-set evaluation: accuracy, mean loss and the predicted classes.
    public func evaluate(_ set: Dataset, batchSize: Int? = nil) throws -> Evaluation {
        try Evaluation.run(network: network, on: set, batchSize: batchSize)
    }

    /// Writes the checkpoint (weights, optimiser state, settings) and the
    /// metrics, each atomically.
    public func save(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let settingsJSON = String(decoding: try JSONEncoder.sorted.encode(settings), as: UTF8.self)
        let checkpoint = Checkpoint(
            tensors: try network.checkpointTensors(), counters: network.checkpointCounters(),
            optimizerState: try optimizer.state(),
            metadata: [
                "epoch": String(history.count), "optimizer_step": String(optimizer.step),
                "settings": settingsJSON, "device": device.info.summary,
                "format": "convsvd \(network.modelName) checkpoint",
            ])
        try checkpoint.write(to: directory.appendingPathComponent(Self.checkpointFile))
        let metrics = TrainingMetrics(settings: settings, device: device.info, epochs: history)
        try writeAtomically(
            try JSONEncoder.sorted.encode(metrics), to: directory.appendingPathComponent(Self.metricsFile))
        try writeAtomically(Data(metrics.csv.utf8), to: directory.appendingPathComponent(Self.metricsCSVFile))
    }
}

extension JSONEncoder {
    /// Pretty, key-sorted JSON: stable files that diff well.
    public static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return e
    }
}

/// The trainer of TinyConvNet, the default model.
public typealias Trainer = ModelTrainer<TinyConvNet>

extension ModelTrainer where Network == TinyConvNet {
    /// TinyConvNet on `device`, initialised from `settings.seed` (PyTorch's default scheme).
    public convenience init(device: any Device, settings: TrainingSettings, train: Dataset, test: Dataset) throws {
        let network = try TinyConvNet(device: device)
        try network.load(TinyConvNet.initialWeights(seed: settings.seed))
        try self.init(network: network, settings: settings, train: train, test: test)
    }
}
