/// TinyConvNet's fixed shapes, as the analysis uses them.
///
/// Input 1×28×28 → conv1 (8×1×3×3, no padding) 8×26×26 → ReLU → max-pool 2
/// → 8×13×13 → conv2 (16×8×3×3) 16×11×11 → ReLU → max-pool 2 (floor: the
/// 11th row and column are dropped) → 16×5×5 → flatten channel-major (400)
/// → fc (10×400 + bias 10).
public enum TinyConvNetGeometry {
    public static let imageSide = 28
    public static let kernelSide = 3
    public static let conv1Channels = 8
    public static let conv1OutputSide = 26
    public static let pool1Side = 13
    public static let conv2Channels = 16
    public static let conv2OutputSide = 11
    public static let pool2Side = 5
    public static let features = 400
    public static let classes = 10
    /// Columns of the conv1 matrix W₁: in·kH·kW = 1·3·3.
    public static let conv1PatchSize = 9
    /// Columns of the conv2 matrix W₂: 8·3·3.
    public static let conv2PatchSize = 72
}
