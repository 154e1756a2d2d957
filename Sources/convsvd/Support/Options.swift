import Analysis
import ArgumentParser
import Foundation
import GPUNet
import Models
import NetIO

/// `--device`, the same in every command.
struct DeviceOption: ParsableArguments {
    @Option(name: .long, help: "auto | host | opencl | opencl:P:D (see `convsvd devices`).")
    var device: String = "auto"

    @Option(
        help: "OpenCL kernel family: auto (GPU or accelerator → gpu, else cpu; $CONVSVD_KERNELS when set) | cpu | gpu.")
    var kernels: String = "auto"

    /// `--kernels` parsed (``DeviceOption/kernelChoice(_:)``).
    func kernelChoice() throws -> KernelFamily.Choice { try Self.kernelChoice(kernels) }

    /// `--kernels` as written, parsed; `$CONVSVD_KERNELS` is checked too,
    /// whatever the device, so that a bad setting stops every command with
    /// exit 64 (a ``KernelFamilyError``), not only those that open an
    /// OpenCL device.
    static func kernelChoice(_ text: String) throws -> KernelFamily.Choice {
        let environment = ProcessInfo.processInfo.environment[KernelFamily.environmentVariable] ?? ""
        if !environment.isEmpty {
            _ = try KernelFamily.Choice(parsing: environment, what: KernelFamily.environmentVariable)
        }
        return try KernelFamily.Choice(parsing: text)
    }

    /// Says on standard error that `--kernels` has no effect when it names
    /// a family and the device (`made`, the choice of `chosenBy`, e.g.
    /// "--device host") is the host: the host runs its own C kernels
    /// whatever the option says, and an option ignored without a word
    /// misleads whoever compares runs by their command lines.
    static func warnIfKernelsIgnored(_ choice: KernelFamily.Choice, on made: DeviceInfo, chosenBy: String) {
        guard case .family(let family) = choice, made.kind == .host else { return }
        log(
            "convsvd: warning: --kernels \(family.rawValue) has no effect on \(made.summary), the device of "
                + "\(chosenBy): --kernels chooses the kernels of an OpenCL device; the host runs its own")
    }

    func make() throws -> any Device {
        let selector = try DeviceSelector(parsing: device)
        let choice = try kernelChoice()
        let made = try Devices.make(selector, kernels: choice)
        if let openCL = made as? OpenCLDevice {
            log(
                "device: \(made.info.summary) (kernel family \(openCL.kernelFamily.rawValue): \(openCL.kernelFamilyReason))"
            )
        } else {
            log("device: \(made.info.summary)")
        }
        Self.warnIfKernelsIgnored(choice, on: made.info, chosenBy: "--device \(device)")
        return made
    }
}

extension DeviceOption {
    /// The options of `--device name --kernels kernels`, for a device the
    /// study names itself (every stored property set: ArgumentParser's
    /// wrappers have no value until parsed).
    static func named(_ name: String, kernels: String) -> DeviceOption {
        var option = DeviceOption()
        option.device = name
        option.kernels = kernels
        return option
    }
}

/// Where the images come from.
struct DataOptions: ParsableArguments {
    @Option(help: "Folder holding the IDX files (default: $MNIST_DIR, then the user's data folder).")
    var data: String?

    @Option(help: "mnist | fashion-mnist | cifar10 (CIFAR-10 needs its binary files: --data DIR or $CIFAR10_DIR).")
    var dataset: String = "mnist"

    /// `--dataset` parsed.
    func kind() throws -> DatasetKind { try Self.kind(named: dataset) }

    /// A `--dataset` value parsed; a usage error names the choices.
    static func kind(named dataset: String) throws -> DatasetKind {
        guard let kind = DatasetKind(rawValue: dataset) else {
            throw ValidationError(
                "--dataset must be one of \(DatasetKind.allCases.map(\.rawValue).joined(separator: ", ")) (got \(dataset))"
            )
        }
        return kind
    }

    /// `--dataset` for `model` (TinyConvNet unless named): TinyConvNet takes
    /// 1×28×28 images only (the other models adapt to the dataset's shape).
    /// Commands call this before they create their output folder.
    @discardableResult
    func requireFits(model: String = "tiny") throws -> DatasetKind {
        let kind = try kind()
        if model == "tiny" {
            let modelInput = ImageShape(channels: 1, height: 28, width: 28)
            guard kind.inputShape == modelInput else {
                throw ValidationError(
                    "--dataset \(dataset): \(kind.displayName) images are \(kind.inputShape), the model (TinyConvNet) takes \(modelInput)"
                )
            }
        }
        return kind
    }

    /// The training and test sets for `model` (TinyConvNet unless named),
    /// whose input shape is checked before anything is read.
    func load(forModel model: String = "tiny") throws -> (train: Dataset, test: Dataset) {
        let kind = try requireFits(model: model)
        let start = Clocks.wall()
        let sets = try DatasetLoader.locateAndLoad(kind: kind, explicitDirectory: data.map { URL(fileURLWithPath: $0) })
        log(
            String(
                format: "data: %@ %d train / %d test images (%.2f s)", kind.displayName, sets.train.count,
                sets.test.count, Clocks.seconds(since: start)))
        return sets
    }
}

/// The training recipe. An option not given takes the model's recipe
/// (``TrainingRecipe/forModel(_:)``): TinyConvNet the seed's (Adam, lr 1e-3,
/// batch 64, 20 epochs), the other models the CIFAR ResNet one.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Epochs to train (tiny 20, other models 15).")
    var epochs: Int?

    @Option(name: .customLong("batch-size"), help: "Images per optimisation step (tiny 64, other models 128).")
    var batchSize: Int?

    @Option(help: "Learning rate, the peak of --schedule (tiny 1e-3, other models 0.2).")
    var lr: Float?

    @Option(help: "adam | sgd (SGD with momentum) (tiny adam, other models sgd).")
    var optimizer: String?

    @Option(help: "Momentum for --optimizer sgd.")
    var momentum: Float = 0.9

    @Flag(
        inversion: .prefixedNo,
        help: "Nesterov momentum for --optimizer sgd (other models than tiny: on unless --no-nesterov).")
    var nesterov: Bool?

    @Option(
        name: .customLong("weight-decay"),
        help: "L2 weight decay λ for --optimizer sgd, PyTorch's weight_decay (other models than tiny: 5e-4).")
    var weightDecay: Float?

    @Option(
        help:
            "Learning-rate schedule over the run: constant | cosine (to 0) | onecycle (linear warm-up over the first 30% of steps to --lr, then cosine to 0) (tiny constant, other models onecycle)."
    )
    var schedule: String?

    @Option(
        help:
            "Training-image augmentation on the device: none | crop (random crop from zero padding: 2 pixels on 28×28, 4 on 32×32) | crop+flip (and a horizontal flip with probability ½) (tiny none; other models crop on mnist, else crop+flip)."
    )
    var augment: String?

    @Option(help: "shuffled (seeded by --seed and the epoch) | file (the dataset's own order, every epoch).")
    var order: String = "shuffled"

    @Option(help: "Seed for the initial weights and the shuffling.")
    var seed: UInt64 = 0

    @Option(name: .customLong("train-limit"), help: "Train on the first N training images only.")
    var trainLimit: Int?

    @Option(name: .customLong("test-limit"), help: "Evaluate on the first N test images only.")
    var testLimit: Int?

    @Option(
        help:
            "plain | svd: train each conv weight as W = U·diag(σ)·Vᵀ with U and V kept orthonormal (names name.U, name.S, name.V in the checkpoint; `convsvd train` only)."
    )
    var parameterization: String = "plain"

    @Option(
        name: .customLong("sigma-l1"),
        help:
            "With --parameterization svd: λ of an L1 penalty λ·Σ|σ| per conv layer; each epoch then prunes the σ below --sigma-threshold."
    )
    var sigmaL1: Float?

    @Option(
        name: .customLong("sigma-threshold"),
        help: "With --sigma-l1: prune σ below this fraction of its layer's largest |σ| at the end of each epoch.")
    var sigmaThreshold: Float?

    /// The SVD settings of the options, nil for plain training.
    func svdSettings(allowed: Bool) throws -> SVDTrainingSettings? {
        switch parameterization.lowercased() {
        case "plain":
            guard sigmaL1 == nil, sigmaThreshold == nil else {
                throw ValidationError("--sigma-l1 and --sigma-threshold apply to --parameterization svd")
            }
            return nil
        case "svd":
            guard allowed else {
                throw ValidationError(
                    "--parameterization svd applies to `convsvd train` only; analyse its checkpoint with `convsvd analyze`"
                )
            }
            guard sigmaThreshold == nil || sigmaL1 != nil else {
                throw ValidationError("--sigma-threshold applies with --sigma-l1")
            }
            var svd = SVDTrainingSettings()
            if let sigmaL1 { svd.sigmaL1 = sigmaL1 }
            if let sigmaThreshold { svd.pruneThreshold = sigmaThreshold }
            return svd
        default:
            throw ValidationError("--parameterization must be plain or svd (got \(parameterization))")
        }
    }

    /// The settings of a run of `model` on `dataset`: the options given,
    /// the model's recipe for the others. `svdAllowed`: the command trains
    /// in SVD coordinates when asked (`train`); elsewhere that is a usage error.
    func settings(dataset: String, model: String = "tiny", svdAllowed: Bool = false) throws -> TrainingSettings {
        let recipe = TrainingRecipe.forModel(model, dataset: dataset)
        let augmentation: Augmentation
        if let augment {
            guard let parsed = Augmentation(rawValue: augment.lowercased()) else {
                throw ValidationError(
                    "--augment must be one of \(Augmentation.allCases.map(\.rawValue).joined(separator: ", ")) (got \(augment))"
                )
            }
            augmentation = parsed
        } else {
            augmentation = recipe.augmentation
        }
        let kind: OptimizerKind
        let optimizerName = optimizer?.lowercased() ?? (recipe.optimizer.name)
        switch optimizerName {
        case "adam":
            guard nesterov != true, (weightDecay ?? 0) == 0 else {
                throw ValidationError("--nesterov and --weight-decay apply to --optimizer sgd, not adam")
            }
            kind = .adam()
        case "sgd":
            var recipeNesterov = false
            var recipeDecay: Float = 0
            if case .sgd(_, let n, let d) = recipe.optimizer { (recipeNesterov, recipeDecay) = (n, d) }
            kind = .sgd(
                momentum: momentum, nesterov: nesterov ?? recipeNesterov, weightDecay: weightDecay ?? recipeDecay)
        default: throw ValidationError("--optimizer must be adam or sgd (got \(optimizerName))")
        }
        let scheduleKind: LearningRateSchedule
        if let schedule {
            guard let parsed = LearningRateSchedule(rawValue: schedule.lowercased()) else {
                throw ValidationError(
                    "--schedule must be one of \(LearningRateSchedule.allCases.map(\.rawValue).joined(separator: ", ")) (got \(schedule))"
                )
            }
            scheduleKind = parsed
        } else {
            scheduleKind = recipe.schedule
        }
        let s = TrainingSettings(
            dataset: dataset, model: model, epochs: epochs ?? recipe.epochs, batchSize: batchSize ?? recipe.batchSize,
            learningRate: lr ?? recipe.learningRate, schedule: scheduleKind, optimizer: kind,
            augmentation: augmentation, order: try batchOrder(), seed: seed,
            trainLimit: trainLimit, testLimit: testLimit, svd: try svdSettings(allowed: svdAllowed))
        do { try s.validate() } catch let e as TrainingError { throw ValidationError(e.description) }
        return s
    }

    func batchOrder() throws -> BatchOrder {
        guard let parsed = BatchOrder(rawValue: order.lowercased()) else {
            throw ValidationError("--order must be shuffled or file (got \(order))")
        }
        return parsed
    }

    /// The options that make `settings` again (a study member's command line).
    static func arguments(for settings: TrainingSettings) -> [String] {
        var args = [
            "--dataset", settings.dataset, "--epochs", "\(settings.epochs)",
            "--batch-size", "\(settings.batchSize)", "--lr", "\(settings.learningRate)",
            "--schedule", settings.schedule.rawValue, "--optimizer", settings.optimizer.name,
            "--augment", settings.augmentation.rawValue, "--order", settings.order.rawValue,
        ]
        if settings.model != "tiny" { args += ["--model", settings.model] }
        if case .sgd(let momentum, let nesterov, let decay) = settings.optimizer {
            args += [
                "--momentum", "\(momentum)", nesterov ? "--nesterov" : "--no-nesterov", "--weight-decay", "\(decay)",
            ]
        }
        if let t = settings.trainLimit { args += ["--train-limit", "\(t)"] }
        if let t = settings.testLimit { args += ["--test-limit", "\(t)"] }
        return args
    }
}

/// `--model`: which network a command builds.
struct ModelOption: ParsableArguments {
    @Option(
        help:
            "tiny (TinyConvNet, the default) | resnet8 | resnet20 | resnet32 | FILE.json (a model file, see docs/model-format.md)."
    )
    var model: String = "tiny"

    var isTiny: Bool { model == "tiny" }

    /// The network description for `kind`'s images and classes.
    /// - Throws: a usage error naming the model and what does not fit.
    func description(for kind: DatasetKind) throws -> NetworkDescription {
        do { return try ModelSource.resolve(model, for: InputGeometry(kind)) } catch let e as ModelError {
            throw ValidationError("--model \(model): \(e)")
        }
    }
}

/// How much of the test set `analyze` and `run` spend on each part of the
/// analysis.
struct AnalysisImageOptions: ParsableArguments {
    @Flag(name: .customLong("no-sweep"), help: "Skip the test-accuracy-against-rank sweep of phase 5.")
    var noSweep = false

    @Option(help: "Models other than tiny: analyse the first N test images in phases 1, 3 and 4 (default: all).")
    var images: Int?

    @Option(
        name: .customLong("sweep-images"),
        help:
            "Models other than tiny: the first N test images for phase 5's accuracies, one host float64 pass per layer and rank (0: none)."
    )
    var sweepImages: Int = 1000

    @Option(
        name: .customLong("gradient-images"),
        help:
            "Models other than tiny: the first N test images at which phase 9 measures ‖∂logits/∂x‖₂ with the device's backward pass, one pass per class (0: none)."
    )
    var gradientImages: Int = 512

    @Option(
        name: .customLong("data-aware-images"),
        help:
            "Models other than tiny: the first N test images whose patches give each conv layer's second moment for phase 9's data-aware low rank (0: none)."
    )
    var dataAwareImages: Int = 1000

    @Option(
        name: .customLong("region-segments"),
        help:
            "Models other than tiny: phase 9's regions along lines on N segments between same-class test images and N between different-class ones, exact pieces (0: none)."
    )
    var regionSegments: Int = 2

    @Option(
        name: .customLong("region-samples"),
        help:
            "Models other than tiny: forward passes densely sampling the first same-class and different-class segment of phase 9's regions along lines (0: none)."
    )
    var regionSamples: Int = 128

    @Option(
        name: .customLong("region-span"),
        help:
            "Models other than tiny: the fraction of each segment that phase 9's regions along lines walk, centred on its midpoint (1: the whole segment; a ResNet has tens of thousands of pieces on a whole one)."
    )
    var regionSpan: Double = 1.0 / 64

    @Option(
        name: .customLong("dense-operator-columns"),
        help: ArgumentHelp(
            "Models other than tiny: phase 9 computes all singular values of each layer's zero-padded operator by dense SVD where it has at most N columns (input values), up to \(ConvOperator.denseColumnLimit).",
            discussion:
                "The default, \(OperatorPhase.denseColumnLimit), keeps phase 9 within 30 s for a ResNet-20 on 28×28 images (its operators about 4 s); \(ConvOperator.denseColumnLimit) covers its second and third stages (6,272 and 3,136 columns, 13 dense SVDs) and took phase 9's operators 227 s on 2 cores. Larger operators get the norm bracket alone."
        )
    )
    var denseOperatorColumns: Int = OperatorPhase.denseColumnLimit

    func validate() throws {
        if let images, images < 1 { throw ValidationError("--images must be at least 1 (got \(images))") }
        if sweepImages < 0 {
            throw ValidationError("--sweep-images must be at least 0 (got \(sweepImages))")
        }
        if gradientImages < 0 {
            throw ValidationError("--gradient-images must be at least 0 (got \(gradientImages))")
        }
        if dataAwareImages < 0 {
            throw ValidationError("--data-aware-images must be at least 0 (got \(dataAwareImages))")
        }
        if regionSegments < 0 {
            throw ValidationError("--region-segments must be at least 0 (got \(regionSegments))")
        }
        if !(regionSpan > 0 && regionSpan <= 1) {
            throw ValidationError("--region-span must be in (0, 1] (got \(regionSpan))")
        }
        if regionSamples < 0 {
            throw ValidationError("--region-samples must be at least 0 (got \(regionSamples))")
        }
        if !(0...ConvOperator.denseColumnLimit).contains(denseOperatorColumns) {
            throw ValidationError(
                "--dense-operator-columns must be in 0…\(ConvOperator.denseColumnLimit) (got \(denseOperatorColumns)): "
                    + "a dense operator of more columns does not fit the float64 SVD's memory and time here")
        }
    }

    /// The image counts of the per-layer analysis (models other than tiny).
    var network: NetworkAnalysisOptions {
        NetworkAnalysisOptions(
            images: images, sweepImages: noSweep ? 0 : sweepImages, gradientImages: gradientImages,
            dataAwareImages: dataAwareImages, regionPairs: regionSegments, regionSamples: regionSamples,
            regionSpan: regionSpan, denseOperatorColumns: denseOperatorColumns)
    }
}
