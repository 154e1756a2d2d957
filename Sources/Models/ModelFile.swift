import Foundation
import NetIO

/// JSON model files (`--model FILE.json`): a network in the vocabulary of
/// ``LayerKind``; docs/model-format.md describes the format.
///
/// The reader is strict: an unknown layer type or key, a missing required
/// key and a value of the wrong kind or out of range are each a
/// ``ModelError`` naming the JSON path ("layers[3].body[0].kernel"). Shapes
/// are checked later, by ``NetworkDescription/summary(input:classes:)``,
/// once the dataset says what the input is.
public enum ModelFile {
    /// The layer types, as `"type"` spells them.
    public static let layerTypes = [
        "conv", "batchnorm", "relu", "maxpool2", "global_avgpool", "flatten", "linear", "residual",
    ]

    /// The largest channel or feature count a file may give.
    public static let maximumWidth = 65_536
    /// The largest kernel size, stride and padding a file may give.
    public static let maximumKernel = 32

    /// Reads a model file. Errors carry the file's path.
    public static func load(_ url: URL) throws -> NetworkDescription {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ModelError(
                .unreadable, at: "", "cannot read the model file: \(error.localizedDescription)", file: url.path)
        }
        do {
            return try decode(Array(data), defaultName: url.deletingPathExtension().lastPathComponent)
        } catch var error as ModelError {
            error.file = url.path
            throw error
        }
    }

    /// Decodes a model file's bytes; `defaultName` names the network when
    /// the file has no `"name"`.
    public static func decode(_ bytes: [UInt8], defaultName: String = "model") throws -> NetworkDescription {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes)
        } catch let error as JSONParseError {
            throw ModelError(.syntax, at: "", "not JSON: \(error)")
        }
        let top = try FieldReader(
            root, at: "", what: "a model file", known: ["name", "description", "version", "layers"])
        _ = try top.integer("version", in: 1...1)
        _ = try top.string("description")
        let name = try top.string("name") ?? defaultName
        guard let layers = top.value("layers") else {
            throw ModelError(.missingField, at: "", "a model file needs \"layers\", a list of layers")
        }
        let list = try decodeLayers(layers, at: "layers")
        guard !list.isEmpty else { throw ModelError(.badValue, at: "layers", "a network needs at least one layer") }
        return NetworkDescription(name: name, layers: list)
    }

    private static func decodeLayers(_ value: JSONValue, at path: String) throws -> [LayerDescription] {
        guard case .array(let items) = value else {
            throw ModelError(.badValue, at: path, "expected a list of layers, got \(value.kindName)")
        }
        return try items.enumerated().map { try decodeLayer($1, at: "\(path)[\($0)]") }
    }

    private static func decodeLayer(_ value: JSONValue, at path: String) throws -> LayerDescription {
        guard case .object(let members) = value else {
            throw ModelError(.badValue, at: path, "expected a layer (an object with \"type\"), got \(value.kindName)")
        }
        guard let typeValue = members.first(where: { $0.key == "type" })?.value else {
            throw ModelError(
                .missingField, at: path, "a layer needs \"type\", one of \(layerTypes.joined(separator: ", "))")
        }
        guard case .string(let type) = typeValue else {
            throw ModelError(.badValue, at: "\(path).type", "expected a string, got \(typeValue.kindName)")
        }
        let known: [String]
        switch type {
        case "conv": known = ["in", "out", "kernel", "stride", "padding", "bias"]
        case "batchnorm": known = ["channels"]
        case "linear": known = ["in", "out", "bias"]
        case "residual": known = ["body", "shortcut", "relu"]
        case "relu", "maxpool2", "global_avgpool", "flatten": known = []
        default:
            throw ModelError(
                .unknownLayer, at: "\(path).type",
                "unknown layer type \(jsonQuoted(type)); the types are \(layerTypes.joined(separator: ", "))")
        }
        let fields = try FieldReader(value, at: path, what: "a \(type) layer", known: ["type", "name"] + known)
        let name = try fields.string("name")
        if let name, !isValidLayerName(name) {
            throw ModelError(
                .badValue, at: "\(path).name",
                "a name is parts of letters, digits and _ joined by dots, got \(jsonQuoted(name))")
        }
        let widths = 1...maximumWidth
        let kind: LayerKind
        switch type {
        case "conv":
            kind = .conv(
                Conv2dSpec(
                    inChannels: try fields.required("in", in: widths),
                    outChannels: try fields.required("out", in: widths),
                    kernelSize: try fields.required("kernel", in: 1...maximumKernel),
                    stride: try fields.integer("stride", in: 1...maximumKernel) ?? 1,
                    padding: try fields.integer("padding", in: 0...maximumKernel) ?? 0,
                    bias: try fields.bool("bias") ?? true))
        case "batchnorm":
            kind = .batchNorm(BatchNorm2dSpec(channels: try fields.required("channels", in: widths)))
        case "linear":
            kind = .linear(
                LinearSpec(
                    inFeatures: try fields.required("in", in: widths),
                    outFeatures: try fields.required("out", in: widths),
                    bias: try fields.bool("bias") ?? true))
        case "residual":
            guard let bodyValue = fields.value("body") else {
                throw ModelError(.missingField, at: path, "a residual layer needs \"body\", a list of layers")
            }
            let body = try decodeLayers(bodyValue, at: "\(path).body")
            guard !body.isEmpty else {
                throw ModelError(.badValue, at: "\(path).body", "a residual block's body needs at least one layer")
            }
            var shortcut = Shortcut.identity
            switch fields.value("shortcut") {
            case nil, .string("identity")?: break
            case .array(let items)?:
                guard !items.isEmpty else {
                    throw ModelError(
                        .badValue, at: "\(path).shortcut",
                        "an empty projection; write \"identity\" for the identity shortcut")
                }
                shortcut = .projection(try decodeLayers(.array(items), at: "\(path).shortcut"))
            case .string(let other)?:
                throw ModelError(
                    .badValue, at: "\(path).shortcut",
                    "expected \"identity\" or a list of layers, got \(jsonQuoted(other))")
            case let other?:
                throw ModelError(
                    .badValue, at: "\(path).shortcut",
                    "expected \"identity\" or a list of layers, got \(other.kindName)")
            }
            kind = .residual(
                ResidualBlockSpec(body: body, shortcut: shortcut, reluAfterAdd: try fields.bool("relu") ?? true))
        case "relu": kind = .relu
        case "maxpool2": kind = .maxPool2
        case "global_avgpool": kind = .globalAveragePool
        default: kind = .flatten
        }
        return LayerDescription(kind, name: name)
    }

    /// The model file for `network`: one line a layer, residual blocks
    /// spread over lines; ``decode(_:defaultName:)`` gives `network` back.
    public static func encode(_ network: NetworkDescription) -> String {
        var out = "{\n  \"name\": \(jsonQuoted(network.name)),\n  \"layers\": [\n"
        write(network.layers, indent: "    ", into: &out)
        out += "  ]\n}\n"
        return out
    }

    private static func write(_ layers: [LayerDescription], indent: String, into out: inout String) {
        for (i, layer) in layers.enumerated() {
            var fields: [String] = []
            func field(_ key: String, _ value: String) { fields.append("\(jsonQuoted(key)): \(value)") }
            func type(_ t: String) { field("type", jsonQuoted(t)) }
            let separator = i + 1 < layers.count ? ",\n" : "\n"
            switch layer.kind {
            case .conv(let c):
                type("conv")
                if let name = layer.name { field("name", jsonQuoted(name)) }
                field("in", "\(c.inChannels)")
                field("out", "\(c.outChannels)")
                field("kernel", "\(c.kernelSize)")
                field("stride", "\(c.stride)")
                field("padding", "\(c.padding)")
                field("bias", "\(c.bias)")
            case .batchNorm(let b):
                type("batchnorm")
                if let name = layer.name { field("name", jsonQuoted(name)) }
                field("channels", "\(b.channels)")
            case .linear(let l):
                type("linear")
                if let name = layer.name { field("name", jsonQuoted(name)) }
                field("in", "\(l.inFeatures)")
                field("out", "\(l.outFeatures)")
                field("bias", "\(l.bias)")
            case .relu, .maxPool2, .globalAveragePool, .flatten:
                switch layer.kind {
                case .relu: type("relu")
                case .maxPool2: type("maxpool2")
                case .globalAveragePool: type("global_avgpool")
                default: type("flatten")
                }
                if let name = layer.name { field("name", jsonQuoted(name)) }
            case .residual(let block):
                type("residual")
                if let name = layer.name { field("name", jsonQuoted(name)) }
                field("relu", "\(block.reluAfterAdd)")
                let inner = indent + "  "
                out += "\(indent){\n\(inner)\(fields.joined(separator: ", ")),\n\(inner)\"body\": [\n"
                write(block.body, indent: inner + "  ", into: &out)
                switch block.shortcut {
                case .identity:
                    out += "\(inner)],\n\(inner)\"shortcut\": \"identity\"\n"
                case .projection(let layers):
                    out += "\(inner)],\n\(inner)\"shortcut\": [\n"
                    write(layers, indent: inner + "  ", into: &out)
                    out += "\(inner)]\n"
                }
                out += "\(indent)}" + separator
                continue
            }
            out += "\(indent){\(fields.joined(separator: ", "))}" + separator
        }
    }
}

/// The members of one JSON object, refusing keys it does not know.
private struct FieldReader {
    let members: [(key: String, value: JSONValue)]
    let path: String
    let what: String

    init(_ value: JSONValue, at path: String, what: String, known: [String]) throws {
        guard case .object(let members) = value else {
            throw ModelError(.badValue, at: path, "expected \(what) (an object), got \(value.kindName)")
        }
        for member in members where !known.contains(member.key) {
            throw ModelError(
                .unknownField, at: Self.join(path, member.key),
                "\(what) has no field \(jsonQuoted(member.key)); its fields are \(known.joined(separator: ", "))")
        }
        self.members = members
        self.path = path
        self.what = what
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func value(_ key: String) -> JSONValue? { members.first { $0.key == key }?.value }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard case .integer(let i) = v, range.contains(i) else {
            let got: String
            switch v {
            case .integer(let i): got = "\(i)"
            case .number(let d): got = "\(d)"
            default: got = v.kindName
            }
            throw ModelError(
                .badValue, at: Self.join(path, key),
                "expected an integer from \(range.lowerBound) to \(range.upperBound), got \(got)")
        }
        return i
    }

    func required(_ key: String, in range: ClosedRange<Int>) throws -> Int {
        guard let i = try integer(key, in: range) else {
            throw ModelError(.missingField, at: path, "\(what) needs \(jsonQuoted(key))")
        }
        return i
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else {
            throw ModelError(.badValue, at: Self.join(path, key), "expected true or false, got \(v.kindName)")
        }
        return b
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else {
            throw ModelError(.badValue, at: Self.join(path, key), "expected a string, got \(v.kindName)")
        }
        return s
    }
}

/// What `--model` names: a built-in model or a model file.
public enum ModelSource {
    /// The network `argument` names, built for `input`'s channels and
    /// classes: a name from ``BuiltinModels/names``, or a path to a `.json`
    /// model file.
    public static func resolve(_ argument: String, for input: InputGeometry) throws -> NetworkDescription {
        if let builtin = BuiltinModels.named(argument, inputChannels: input.channels, classes: input.classes) {
            return builtin
        }
        guard argument.hasSuffix(".json") || argument.contains("/") else {
            throw ModelError(
                .unknownModel, at: "",
                "unknown model \(jsonQuoted(argument)): give one of \(BuiltinModels.names.joined(separator: ", ")) "
                    + "or a .json model file")
        }
        return try ModelFile.load(URL(fileURLWithPath: argument))
    }
}
