/// A float tensor under its PyTorch `state_dict` name, row-major.
public struct NamedTensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        precondition(
            shape.reduce(1, *) == values.count, "NamedTensor \(name): shape \(shape) holds \(values.count) values")
        self.name = name
        self.shape = shape
        self.values = values
    }
}
