/// Why a ``HostDevice`` operation refused its arguments. Every case names the
/// operation and the argument, so that a failure says where it happened.
public enum HostDeviceError: Error, CustomStringConvertible, Equatable {
    /// The buffer was made by another device.
    case foreignBuffer(operation: String, argument: String)
    /// The buffer holds the wrong element kind.
    case wrongKind(operation: String, argument: String, expected: ElementKind, actual: ElementKind)
    /// The buffer holds fewer elements than the operation touches.
    case bufferTooSmall(operation: String, argument: String, needed: Int, count: Int)
    /// A host array's length differs from the buffer's.
    case countMismatch(operation: String, bufferCount: Int, arrayCount: Int)
    /// A shape with a non-positive or inconsistent dimension.
    case invalidShape(operation: String, reason: String)
    /// A class label outside 0..<classes.
    case labelOutOfRange(sample: Int, label: Int32, classes: Int)
    /// A max-pool argmax that does not point into its 2×2 window's plane.
    case argmaxOutOfRange(index: Int, value: Int32, planeSize: Int)
    /// A pooled gradient's argmax that does not lie in its own 2×2 window.
    case winnerOutsideWindow(operation: String)
    /// An index buffer's entry outside 0..<count (e.g. an order naming an image the set lacks).
    case indexOutOfRange(operation: String, argument: String, position: Int, value: Int32, count: Int)

    public var description: String {
        switch self {
        case .foreignBuffer(let op, let arg):
            return "HostDevice.\(op): \(arg) was not made by a HostDevice"
        case .wrongKind(let op, let arg, let expected, let actual):
            return "HostDevice.\(op): \(arg) holds \(actual.rawValue), expected \(expected.rawValue)"
        case .bufferTooSmall(let op, let arg, let needed, let count):
            return "HostDevice.\(op): \(arg) holds \(count) elements, the operation needs \(needed)"
        case .countMismatch(let op, let bufferCount, let arrayCount):
            return "HostDevice.\(op): buffer holds \(bufferCount) elements, host array \(arrayCount)"
        case .invalidShape(let op, let reason):
            return "HostDevice.\(op): invalid shape: \(reason)"
        case .labelOutOfRange(let sample, let label, let classes):
            return "HostDevice.softmaxCrossEntropy: label \(label) of sample \(sample) is outside 0..<\(classes)"
        case .argmaxOutOfRange(let index, let value, let planeSize):
            return "HostDevice.maxPool2Backward: argmax[\(index)] = \(value) is outside its plane of \(planeSize)"
        case .winnerOutsideWindow(let op):
            return "HostDevice.\(op): an argmax of the pooled gradient lies outside its 2×2 window"
        case .indexOutOfRange(let op, let arg, let position, let value, let count):
            return "HostDevice.\(op): \(arg)[\(position)] = \(value) is outside 0..<\(count)"
        }
    }
}
