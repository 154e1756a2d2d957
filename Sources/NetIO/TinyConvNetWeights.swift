/// TinyConvNet's parameters on the host, under PyTorch's names and layouts.
///
/// | name           | shape        |
/// |----------------|--------------|
/// | `conv1.weight` | [8, 1, 3, 3] |
/// | `conv2.weight` | [16, 8, 3, 3]|
/// | `fc.weight`    | [10, 400]    |
/// | `fc.bias`      | [10]         |
///
/// conv1 (1→8) → ReLU → MaxPool 2 → conv2 (8→16) → ReLU → MaxPool 2 →
/// flatten (16·5·5 = 400, channel-major as PyTorch flattens) → fc (400→10).
public struct TinyConvNetWeights: Equatable, Sendable {
    public var conv1: [Float]
    public var conv2: [Float]
    public var fcWeight: [Float]
    public var fcBias: [Float]

    public static let conv1Shape = [8, 1, 3, 3]
    public static let conv2Shape = [16, 8, 3, 3]
    public static let fcWeightShape = [10, 400]
    public static let fcBiasShape = [10]

    /// (name, shape) in checkpoint order.
    public static let tensorShapes: [(name: String, shape: [Int])] = [
        ("conv1.weight", conv1Shape), ("conv2.weight", conv2Shape),
        ("fc.weight", fcWeightShape), ("fc.bias", fcBiasShape),
    ]

    public init(conv1: [Float], conv2: [Float], fcWeight: [Float], fcBias: [Float]) {
        precondition(
            conv1.count == 72 && conv2.count == 1152 && fcWeight.count == 4000 && fcBias.count == 10,
            "TinyConvNetWeights: wrong tensor sizes")
        self.conv1 = conv1
        self.conv2 = conv2
        self.fcWeight = fcWeight
        self.fcBias = fcBias
    }

    /// The tensors by checkpoint name.
    public var tensors: [(name: String, shape: [Int], values: [Float])] {
        [
            ("conv1.weight", Self.conv1Shape, conv1), ("conv2.weight", Self.conv2Shape, conv2),
            ("fc.weight", Self.fcWeightShape, fcWeight), ("fc.bias", Self.fcBiasShape, fcBias),
        ]
    }
}
