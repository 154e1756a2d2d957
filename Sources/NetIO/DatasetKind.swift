import Foundation

/// The data sets ConvSVD reads, by their `--dataset` names.
///
/// | kind | input (C, H, W) | classes | train / test | mean | std |
/// |---|---|---|---|---|---|
/// | `mnist` | 1, 28, 28 | 10 | 60,000 / 10,000 | 0.1307 | 0.3081 |
/// | `fashion-mnist` | 1, 28, 28 | 10 | 60,000 / 10,000 | 0.2860 | 0.3530 |
/// | `cifar10` | 3, 32, 32 | 10 | 50,000 / 10,000 | 0.4914, 0.4822, 0.4465 | 0.2470, 0.2435, 0.2616 |
///
/// The means and standard deviations are the training pixels' own on a 0–1
/// scale (population statistics over all training images, per channel), to
/// the four decimals in general use; NetIOTests recomputes MNIST's and
/// Fashion-MNIST's from the real files.
public enum DatasetKind: String, CaseIterable, Sendable {
    case mnist = "mnist"
    case fashionMNIST = "fashion-mnist"
    case cifar10 = "cifar10"

    /// How a kind is stored on disk.
    public enum Format: Sendable {
        /// Four IDX files (``MNISTLoader``).
        case idx
        /// The binary version of CIFAR-10: six files of 3,073-byte records (``CIFAR10Loader``).
        case cifar10Binary
    }

    public var format: Format { self == .cifar10 ? .cifar10Binary : .idx }

    /// "MNIST", "Fashion-MNIST" or "CIFAR-10", for messages.
    public var displayName: String {
        switch self {
        case .mnist: return "MNIST"
        case .fashionMNIST: return "Fashion-MNIST"
        case .cifar10: return "CIFAR-10"
        }
    }

    /// One image's shape, as a network's input sees it.
    public var inputShape: ImageShape {
        self == .cifar10
            ? ImageShape(channels: 3, height: 32, width: 32) : ImageShape(channels: 1, height: 28, width: 28)
    }

    /// Classes (labels are 0..<classCount).
    public var classCount: Int { 10 }

    /// Images in the published training set.
    public var trainingCount: Int { self == .cifar10 ? 50_000 : 60_000 }

    /// Images in the published test set.
    public var testCount: Int { 10_000 }

    /// The per-channel normalisation of this set's inputs.
    public var normalization: Normalization {
        switch self {
        case .mnist: return .mnist
        case .fashionMNIST: return .fashionMNIST
        case .cifar10: return .cifar10
        }
    }

    /// The environment variable that names this set's folder.
    public var environmentVariable: String {
        switch self {
        case .mnist: return "MNIST_DIR"
        case .fashionMNIST: return "FASHION_MNIST_DIR"
        case .cifar10: return "CIFAR10_DIR"
        }
    }
}

/// The shape of one image: channels × height × width (channel planes, NCHW).
public struct ImageShape: Hashable, Sendable, CustomStringConvertible {
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// Values per image: channels·height·width.
    public var elementCount: Int { channels * height * width }

    /// "3×32×32".
    public var description: String { "\(channels)×\(height)×\(width)" }
}

/// Per-channel input normalisation: a byte x of channel c becomes
/// (x/255 − mean[c]) / standardDeviation[c], computed in float32 as
/// x·pixelScales[c] − pixelShifts[c] (the product rounded before the
/// difference), so that every device that uses these floats matches the
/// host bit for bit.
public struct Normalization: Hashable, Sendable {
    /// One entry per channel, on a 0–1 pixel scale.
    public var mean: [Float]
    /// One entry per channel, on a 0–1 pixel scale; each > 0.
    public var standardDeviation: [Float]

    public init(mean: [Float], standardDeviation: [Float]) {
        precondition(
            !mean.isEmpty && mean.count == standardDeviation.count && standardDeviation.allSatisfy { $0 > 0 },
            "Normalization: \(mean.count) means and \(standardDeviation.count) positive deviations")
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    /// MNIST's training statistics (the constants PyTorch's MNIST examples use).
    public static let mnist = Normalization(mean: [Dataset.mean], standardDeviation: [Dataset.standardDeviation])
    /// Fashion-MNIST's training statistics.
    public static let fashionMNIST = Normalization(mean: [0.2860], standardDeviation: [0.3530])
    /// CIFAR-10's training statistics for the R, G and B planes.
    public static let cifar10 = Normalization(
        mean: [0.4914, 0.4822, 0.4465], standardDeviation: [0.2470, 0.2435, 0.2616])

    public var channels: Int { mean.count }

    /// 1/(255·std[c]), rounded to float32 once (for MNIST: ``Dataset/pixelScale``).
    public var pixelScales: [Float] { standardDeviation.map { 1 / (255 * $0) } }
    /// mean[c]/std[c], rounded to float32 once (for MNIST: ``Dataset/pixelShift``).
    public var pixelShifts: [Float] { zip(mean, standardDeviation).map { $0 / $1 } }

}

/// metrics.json and checkpoint settings record a normalisation as
/// `{"mean": [...], "std": [...]}`; decoding checks what the initialiser does.
extension Normalization: Codable {
    enum CodingKeys: String, CodingKey {
        case mean
        case standardDeviation = "std"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let mean = try container.decode([Float].self, forKey: .mean)
        let deviation = try container.decode([Float].self, forKey: .standardDeviation)
        guard !mean.isEmpty, mean.count == deviation.count, deviation.allSatisfy({ $0 > 0 && $0.isFinite }),
            mean.allSatisfy(\.isFinite)
        else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: container.codingPath,
                    debugDescription:
                        "a normalisation needs as many finite means as positive finite deviations (got \(mean), \(deviation))"
                ))
        }
        self.init(mean: mean, standardDeviation: deviation)
    }
}

/// Loads any ``DatasetKind`` by its format.
public enum DatasetLoader {
    /// The training and test sets of `kind` from `directory`
    /// (``MNISTLoader/load(kind:directory:download:verifyChecksums:)`` or
    /// ``CIFAR10Loader/load(directory:download:)``; CIFAR-10 publishes no
    /// checksum of its unpacked files, so `verifyChecksums` concerns the IDX
    /// sets only, and a downloaded CIFAR-10 archive is always checked).
    public static func load(
        kind: DatasetKind, directory: URL, download: DatasetDownload? = nil, verifyChecksums: Bool = true
    ) throws -> (train: Dataset, test: Dataset) {
        switch kind.format {
        case .idx:
            return try MNISTLoader.load(
                kind: kind, directory: directory, download: download, verifyChecksums: verifyChecksums)
        case .cifar10Binary:
            return try CIFAR10Loader.load(directory: directory, download: download)
        }
    }

    /// What the command line does: the folder from ``DatasetLocator`` (`--data`,
    /// the environment, the default), downloading missing files from the
    /// published address, checksums verified.
    public static func locateAndLoad(kind: DatasetKind, explicitDirectory: URL? = nil) throws -> (
        train: Dataset, test: Dataset
    ) {
        let directory = DatasetLocator.directory(for: kind, explicit: explicitDirectory)
        return try load(kind: kind, directory: directory, download: .standard(for: kind))
    }
}
