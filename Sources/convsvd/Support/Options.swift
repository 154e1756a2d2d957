import ArgumentParser
import Foundation
import GPUNet
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

    @Option(help: "mnist | fashion-mnist.")
    var dataset: String = "mnist"

    func load() throws -> (train: Dataset, test: Dataset) {
        guard let kind = DatasetKind(rawValue: dataset) else {
            throw ValidationError(
                "--dataset must be one of \(DatasetKind.allCases.map(\.rawValue).joined(separator: ", ")) (got \(dataset))"
            )
        }
        // Checked before reading anything: TinyConvNet is the one model the commands build.
        let modelInput = ImageShape(channels: 1, height: 28, width: 28)
        guard kind.inputShape == modelInput else {
            throw ValidationError(
                "--dataset \(dataset): \(kind.displayName) images are \(kind.inputShape), the model (TinyConvNet) takes \(modelInput)"
            )
        }
        let start = Clocks.wall()
        let sets = try DatasetLoader.locateAndLoad(kind: kind, explicitDirectory: data.map { URL(fileURLWithPath: $0) })
        log(
            String(
                format: "data: %@ %d train / %d test images (%.2f s)", kind.displayName, sets.train.count,
                sets.test.count, Clocks.seconds(since: start)))
        return sets
    }
}

/// The training recipe; defaults are the seed's (Adam, lr 1e-3, batch 64, 20 epochs).
struct TrainingOptions: ParsableArguments {
    @Option(help: "Epochs to train.")
    var epochs: Int = 20

    @Option(name: .customLong("batch-size"), help: "Images per optimisation step.")
    var batchSize: Int = 64

    @Option(help: "Learning rate.")
    var lr: Float = 1e-3

    @Option(help: "adam | sgd (SGD with momentum).")
    var optimizer: String = "adam"

    @Option(help: "Momentum for --optimizer sgd.")
    var momentum: Float = 0.9

    @Flag(help: "Nesterov momentum for --optimizer sgd.")
    var nesterov = false

    @Option(name: .customLong("weight-decay"), help: "L2 weight decay λ for --optimizer sgd (PyTorch's weight_decay).")
    var weightDecay: Float = 0

    @Option(
        help:
            "Learning-rate schedule over the run: constant | cosine (to 0) | onecycle (linear warm-up over the first 30% of steps to --lr, then cosine to 0)."
    )
    var schedule: String = "constant"

    @Option(help: "Seed for the initial weights and the shuffling.")
    var seed: UInt64 = 0

    @Option(name: .customLong("train-limit"), help: "Train on the first N training images only.")
    var trainLimit: Int?

    @Option(name: .customLong("test-limit"), help: "Evaluate on the first N test images only.")
    var testLimit: Int?

    func settings(dataset: String) throws -> TrainingSettings {
        let kind: OptimizerKind
        switch optimizer.lowercased() {
        case "adam":
            guard !nesterov, weightDecay == 0 else {
                throw ValidationError("--nesterov and --weight-decay apply to --optimizer sgd, not adam")
            }
            kind = .adam()
        case "sgd": kind = .sgd(momentum: momentum, nesterov: nesterov, weightDecay: weightDecay)
        default: throw ValidationError("--optimizer must be adam or sgd (got \(optimizer))")
        }
        guard let scheduleKind = LearningRateSchedule(rawValue: schedule.lowercased()) else {
            throw ValidationError(
                "--schedule must be one of \(LearningRateSchedule.allCases.map(\.rawValue).joined(separator: ", ")) (got \(schedule))"
            )
        }
        let s = TrainingSettings(
            dataset: dataset, epochs: epochs, batchSize: batchSize, learningRate: lr, schedule: scheduleKind,
            optimizer: kind, seed: seed, trainLimit: trainLimit, testLimit: testLimit)
        do { try s.validate() } catch let e as TrainingError { throw ValidationError(e.description) }
        return s
    }
}
