import NetIO

/// The shape of one image's activation between two layers: a stack of
/// feature maps (channels × height × width, PyTorch's NCHW without the batch)
/// or, after `flatten`, a vector of features.
public enum ActivationShape: Hashable, Sendable, CustomStringConvertible {
    case map(channels: Int, height: Int, width: Int)
    case vector(features: Int)

    /// The dimensions without the batch: [C, H, W] or [F].
    public var dimensions: [Int] {
        switch self {
        case .map(let c, let h, let w): return [c, h, w]
        case .vector(let f): return [f]
        }
    }

    /// C·H·W or F. Shapes that ``NetworkDescription/summary(input:classes:)``
    /// returns have element counts that fit in an `Int` (it checks).
    public var elementCount: Int { dimensions.reduce(1, *) }

    /// "16×28×28" or "400".
    public var description: String { dimensions.map(String.init).joined(separator: "×") }
}

/// What a network reads and how much of it there is: the image shape, the
/// class count and the training-set size of a dataset.
///
/// The training-set size only scales ``NetworkSummary/trainingFLOPs(images:)``
/// into work per epoch.
public struct InputGeometry: Hashable, Sendable {
    /// The name on the command line (`--dataset`).
    public var name: String
    /// For people: "MNIST", "CIFAR-10".
    public var title: String
    public var channels: Int
    public var height: Int
    public var width: Int
    public var classes: Int
    public var trainingImages: Int

    public init(name: String, title: String, channels: Int, height: Int, width: Int, classes: Int, trainingImages: Int)
    {
        self.name = name
        self.title = title
        self.channels = channels
        self.height = height
        self.width = width
        self.classes = classes
        self.trainingImages = trainingImages
    }

    /// The input activation: channels × height × width.
    public var shape: ActivationShape { .map(channels: channels, height: height, width: width) }

    /// The geometry of one of NetIO's datasets, whose facts it takes.
    public init(_ kind: DatasetKind) {
        self.init(
            name: kind.rawValue, title: kind.displayName, channels: kind.inputShape.channels,
            height: kind.inputShape.height, width: kind.inputShape.width, classes: kind.classCount,
            trainingImages: kind.trainingCount)
    }

    public static let mnist = InputGeometry(DatasetKind.mnist)
    public static let fashionMNIST = InputGeometry(DatasetKind.fashionMNIST)
    public static let cifar10 = InputGeometry(DatasetKind.cifar10)

    /// Every dataset `--dataset` names, in the order help lists them.
    public static let all: [InputGeometry] = DatasetKind.allCases.map(InputGeometry.init)

    /// The dataset with this command-line name, or nil.
    public static func named(_ name: String) -> InputGeometry? { all.first { $0.name == name } }
}
