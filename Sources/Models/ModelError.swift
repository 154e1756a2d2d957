/// Why a network description was rejected: what is wrong and where.
///
/// `location` is a JSON path into a model file ("layers[2].body[0].kernel")
/// for what the reader finds, or a layer's PyTorch path ("layer2.0.conv1")
/// for what shape inference finds; `file` is the model file, when there is one.
public struct ModelError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable {
        /// The model file cannot be read.
        case unreadable
        /// The file is not JSON.
        case syntax
        /// A `type` that is not in the vocabulary.
        case unknownLayer
        /// A key the layer type does not have (a typo, usually).
        case unknownField
        /// A required key is absent.
        case missingField
        /// A value of the wrong kind or out of range.
        case badValue
        /// Neither a built-in model name nor a `.json` file.
        case unknownModel
        /// A conv or batchnorm whose channel count is not its input's.
        case channelMismatch
        /// A linear layer whose input size is not its input's.
        case featureMismatch
        /// A vector where maps are needed (conv, batchnorm, pools) or maps
        /// where a vector is needed (linear).
        case wrongRank
        /// A conv or pool whose output would have no rows or columns.
        case emptyMap
        /// A residual block whose body and shortcut give different shapes.
        case residualMismatch
        /// The network's output is not one score per class.
        case classMismatch
        /// Two tensors with one `state_dict` name.
        case duplicateName
        /// A count that does not fit in 64 bits.
        case tooLarge
    }

    public var kind: Kind
    public var location: String
    public var message: String
    public var file: String?

    public init(_ kind: Kind, at location: String, _ message: String, file: String? = nil) {
        self.kind = kind
        self.location = location
        self.message = message
        self.file = file
    }

    /// "FILE: LOCATION: MESSAGE", without the parts that are absent.
    public var description: String {
        var parts: [String] = []
        if let file { parts.append(file) }
        if !location.isEmpty { parts.append(location) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}
