/// Everything that determines a training run; stored in metrics.json and in
/// the checkpoint so that `--resume` can refuse a run with other settings.
public struct TrainingSettings: Codable, Equatable, Sendable {
    /// `--dataset`: "mnist", "fashion-mnist" or "cifar10".
    public var dataset: String
    /// `--model`: "tiny" (TinyConvNet), a built-in description's name, or a model file's path.
    public var model: String
    public var epochs: Int
    public var batchSize: Int
    /// The peak learning rate of ``schedule``.
    public var learningRate: Float
    public var schedule: LearningRateSchedule
    public var optimizer: OptimizerKind
    /// Random crops and flips of the training images, on the device.
    public var augmentation: Augmentation
    /// The order batches take the training images in.
    public var order: BatchOrder
    public var seed: UInt64
    /// Train on the first `trainLimit` training images only (tests, smoke runs).
    public var trainLimit: Int?
    /// Evaluate on the first `testLimit` test images only.
    public var testLimit: Int?
    /// `--parameterization svd`: conv weights trained in SVD coordinates
    /// (``SVDParameterizedNetwork``); nil, and absent from the JSON, for
    /// plain training.
    public var svd: SVDTrainingSettings?

    public init(
        dataset: String = "mnist", model: String = "tiny", epochs: Int = 20, batchSize: Int = 64,
        learningRate: Float = 1e-3,
        schedule: LearningRateSchedule = .constant, optimizer: OptimizerKind = .adam(),
        augmentation: Augmentation = .none, order: BatchOrder = .shuffled, seed: UInt64 = 0,
        trainLimit: Int? = nil, testLimit: Int? = nil, svd: SVDTrainingSettings? = nil
    ) {
        self.svd = svd
        self.dataset = dataset
        self.model = model
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.schedule = schedule
        self.optimizer = optimizer
        self.augmentation = augmentation
        self.order = order
        self.seed = seed
        self.trainLimit = trainLimit
        self.testLimit = testLimit
    }

    /// Checks the ranges; the message names the option.
    public func validate() throws {
        guard epochs >= 1 else { throw TrainingError.invalidSetting("--epochs must be at least 1 (got \(epochs))") }
        guard batchSize >= 1 else {
            throw TrainingError.invalidSetting("--batch-size must be at least 1 (got \(batchSize))")
        }
        guard learningRate > 0, learningRate.isFinite else {
            throw TrainingError.invalidSetting("--lr must be a positive number (got \(learningRate))")
        }
        if case .sgd(let m, let nesterov, let decay) = optimizer {
            guard (0..<1).contains(m) else {
                throw TrainingError.invalidSetting("--momentum must be in [0, 1) (got \(m))")
            }
            guard !nesterov || m > 0 else {
                throw TrainingError.invalidSetting("--nesterov needs a momentum above 0 (got \(m))")
            }
            guard decay >= 0, decay.isFinite else {
                throw TrainingError.invalidSetting("--weight-decay must be 0 or more (got \(decay))")
            }
        }
        if let t = trainLimit, t < 1 {
            throw TrainingError.invalidSetting("--train-limit must be at least 1 (got \(t))")
        }
        if let t = testLimit, t < 1 { throw TrainingError.invalidSetting("--test-limit must be at least 1 (got \(t))") }
        if let svd {
            guard svd.sigmaL1 >= 0, svd.sigmaL1.isFinite else {
                throw TrainingError.invalidSetting("--sigma-l1 must be 0 or more (got \(svd.sigmaL1))")
            }
            guard svd.pruneThreshold >= 0, svd.pruneThreshold < 1 else {
                throw TrainingError.invalidSetting("--sigma-threshold must be in [0, 1) (got \(svd.pruneThreshold))")
            }
        }
    }

    /// The same run, allowing more epochs: what `--resume` requires. A
    /// schedule other than constant depends on the run's length, so there
    /// the epochs must agree too.
    func isContinuation(of other: TrainingSettings) -> Bool {
        var a = self
        var b = other
        if schedule == .constant {
            a.epochs = 0
            b.epochs = 0
        }
        return a == b
    }
}

/// Reads settings written before ``TrainingSettings/schedule``,
/// ``TrainingSettings/model``, ``TrainingSettings/augmentation`` and
/// ``TrainingSettings/order`` existed as the constant schedule, TinyConvNet,
/// no augmentation and the shuffled order they ran with.
extension TrainingSettings {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            dataset: try c.decode(String.self, forKey: .dataset),
            model: try c.decodeIfPresent(String.self, forKey: .model) ?? "tiny",
            epochs: try c.decode(Int.self, forKey: .epochs),
            batchSize: try c.decode(Int.self, forKey: .batchSize),
            learningRate: try c.decode(Float.self, forKey: .learningRate),
            schedule: try c.decodeIfPresent(LearningRateSchedule.self, forKey: .schedule) ?? .constant,
            optimizer: try c.decode(OptimizerKind.self, forKey: .optimizer),
            augmentation: try c.decodeIfPresent(Augmentation.self, forKey: .augmentation) ?? .none,
            order: try c.decodeIfPresent(BatchOrder.self, forKey: .order) ?? .shuffled,
            seed: try c.decode(UInt64.self, forKey: .seed),
            trainLimit: try c.decodeIfPresent(Int.self, forKey: .trainLimit),
            testLimit: try c.decodeIfPresent(Int.self, forKey: .testLimit),
            svd: try c.decodeIfPresent(SVDTrainingSettings.self, forKey: .svd))
    }
}

/// One finished epoch, a row of metrics.json and metrics.csv.
public struct EpochMetrics: Codable, Equatable, Sendable {
    public var epoch: Int
    /// Mean training loss over the epoch's batches' samples.
    public var loss: Double
    public var trainAccuracy: Double
    public var testAccuracy: Double
    public var seconds: Double
    public var imagesPerSecond: Double
    /// Training in SVD coordinates: the ranks kept and the factors'
    /// orthogonality errors after the epoch; nil (absent from the JSON) otherwise.
    public var svd: SVDEpochReport?

    enum CodingKeys: String, CodingKey {
        case epoch, loss, seconds, svd
        case trainAccuracy = "train_accuracy"
        case testAccuracy = "test_accuracy"
        case imagesPerSecond = "images_per_second"
    }

    public init(
        epoch: Int, loss: Double, trainAccuracy: Double, testAccuracy: Double, seconds: Double,
        imagesPerSecond: Double, svd: SVDEpochReport? = nil
    ) {
        self.svd = svd
        self.epoch = epoch
        self.loss = loss
        self.trainAccuracy = trainAccuracy
        self.testAccuracy = testAccuracy
        self.seconds = seconds
        self.imagesPerSecond = imagesPerSecond
    }
}

/// metrics.json: the settings, the device, one row per finished epoch.
public struct TrainingMetrics: Codable, Equatable, Sendable {
    public var settings: TrainingSettings
    public var device: DeviceInfo
    public var epochs: [EpochMetrics]

    public init(settings: TrainingSettings, device: DeviceInfo, epochs: [EpochMetrics]) {
        self.settings = settings
        self.device = device
        self.epochs = epochs
    }

    /// metrics.csv: the same rows.
    public var csv: String {
        var text = "epoch,loss,train_accuracy,test_accuracy,seconds,images_per_second\n"
        for e in epochs {
            text += "\(e.epoch),\(e.loss),\(e.trainAccuracy),\(e.testAccuracy),\(e.seconds),\(e.imagesPerSecond)\n"
        }
        return text
    }
}

public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidSetting(String)
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    case nonFiniteLoss(epoch: Int, step: Int, loss: Double)
    /// Stopped by the user (Ctrl-C) after `epochsFinished` whole epochs.
    case interrupted(epoch: Int, step: Int, epochsFinished: Int)
    case resume(String)

    public var description: String {
        switch self {
        case .invalidSetting(let message): return message
        case .nonFiniteLoss(let epoch, let step, let loss):
            return "training diverged: the loss became \(loss) at epoch \(epoch), step \(step); "
                + "the last good checkpoint (if any) is kept; try a smaller --lr"
        case .interrupted(let epoch, let step, let finished):
            return "interrupted at epoch \(epoch), step \(step); \(finished) finished epoch(s) are saved; "
                + "continue with --resume"
        case .resume(let message): return "cannot resume: \(message)"
        }
    }
}

/// The order of the training images within each epoch.
public enum BatchOrder: String, Codable, CaseIterable, Sendable {
    /// A Fisher–Yates shuffle seeded by (seed, epoch): ``ModelTrainer/order(count:seed:epoch:)``.
    case shuffled
    /// The file's order, every epoch: for comparing step by step with another framework.
    case file
}

/// A model's training recipe: what `convsvd train` uses where an option is not given.
public struct TrainingRecipe: Equatable, Sendable, CustomStringConvertible {
    public var epochs: Int, batchSize: Int, learningRate: Float
    public var schedule: LearningRateSchedule
    public var optimizer: OptimizerKind
    public var augmentation: Augmentation

    /// TinyConvNet keeps the seed report's recipe: Adam at 1e-3, batch 64,
    /// 20 epochs, a constant rate, no augmentation. Every other model (the
    /// ResNets, model files) trains with the CIFAR ResNet recipe: SGD with
    /// Nesterov momentum 0.9 and weight decay 5e-4, batch 128, one-cycle to
    /// 0.2, 15 epochs, random crops, and on datasets whose images have a
    /// left and a right (not digits: "mnist") horizontal flips too.
    public static func forModel(_ model: String, dataset: String = "mnist") -> TrainingRecipe {
        model == "tiny"
            ? TrainingRecipe(
                epochs: 20, batchSize: 64, learningRate: 1e-3, schedule: .constant, optimizer: .adam(),
                augmentation: .none)
            : TrainingRecipe(
                epochs: 15, batchSize: 128, learningRate: 0.2, schedule: .onecycle,
                optimizer: .sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4),
                augmentation: dataset == "mnist" ? .crop : .cropFlip)
    }

    public init(
        epochs: Int, batchSize: Int, learningRate: Float, schedule: LearningRateSchedule, optimizer: OptimizerKind,
        augmentation: Augmentation
    ) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.schedule = schedule
        self.optimizer = optimizer
        self.augmentation = augmentation
    }

    /// The recipe a run's settings follow.
    public init(_ s: TrainingSettings) {
        self.init(
            epochs: s.epochs, batchSize: s.batchSize, learningRate: s.learningRate, schedule: s.schedule,
            optimizer: s.optimizer, augmentation: s.augmentation)
    }

    public var description: String {
        "\(optimizer), lr \(learningRate) (\(schedule)), batch \(batchSize), \(epochs) epochs, augmentation \(augmentation.rawValue)"
    }
}
