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

    /// `--kernels` parsed.
    func kernelChoice() throws -> KernelFamily.Choice {
        do { return try KernelFamily.Choice(parsing: kernels) } catch let e as KernelFamilyError {
            throw ValidationError(e.description)
        }
    }

    func make() throws -> any Device {
        let selector = try DeviceSelector(parsing: device)
        let made = try Devices.make(selector, kernels: try kernelChoice())
        if let openCL = made as? OpenCLDevice {
            log(
                "device: \(made.info.summary) (kernel family \(openCL.kernelFamily.rawValue): \(openCL.kernelFamilyReason))"
            )
        } else {
            log("device: \(made.info.summary)")
        }
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
        let start = Clocks.wall()
        let sets = try MNISTLoader.locateAndLoad(kind: kind, explicitDirectory: data.map { URL(fileURLWithPath: $0) })
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

    @Option(help: "Seed for the initial weights and the shuffling.")
    var seed: UInt64 = 0

    @Option(name: .customLong("train-limit"), help: "Train on the first N training images only.")
    var trainLimit: Int?

    @Option(name: .customLong("test-limit"), help: "Evaluate on the first N test images only.")
    var testLimit: Int?

    func settings(dataset: String) throws -> TrainingSettings {
        let kind: OptimizerKind
        switch optimizer.lowercased() {
        case "adam": kind = .adam()
        case "sgd": kind = .sgd(momentum: momentum)
        default: throw ValidationError("--optimizer must be adam or sgd (got \(optimizer))")
        }
        let s = TrainingSettings(
            dataset: dataset, epochs: epochs, batchSize: batchSize, learningRate: lr,
            optimizer: kind, seed: seed, trainLimit: trainLimit, testLimit: testLimit)
        do { try s.validate() } catch let e as TrainingError { throw ValidationError(e.description) }
        return s
    }
}
