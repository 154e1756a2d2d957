import Foundation

/// safetensors element types (the names the format uses) and their sizes.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    // swift-format-ignore: AlwaysUseLowerCamelCase
    // The cases are the format's own names, which the header spells.
    case BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3: return 1
        case .I16, .U16, .F16, .BF16: return 2
        case .I32, .U32, .F32: return 4
        case .F64, .I64, .U64: return 8
        }
    }
}

/// Why a safetensors file was rejected or a tensor could not be had. Every
/// case names the file, and the tensor where one is at fault.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case empty(file: String)
    /// Fewer than the 8 bytes of the header length.
    case tooShort(file: String, bytes: Int)
    case headerTooLarge(file: String, length: UInt64, limit: Int)
    case headerBeyondFile(file: String, length: UInt64, available: Int)
    case headerNotJSON(file: String, reason: String)
    case headerNotObject(file: String, found: String)
    /// A tensor entry lacks a field or has one of the wrong type.
    case badEntry(file: String, tensor: String, reason: String)
    case unknownDType(file: String, tensor: String, dtype: String)
    case badMetadata(file: String, reason: String)
    case offsetsOutOfRange(file: String, tensor: String, begin: Int, end: Int, dataLength: Int)
    case sizeMismatch(file: String, tensor: String, shape: [Int], dtype: String, expectedBytes: Int, actualBytes: Int)
    case overlap(file: String, tensor: String, other: String)
    /// Bytes of the data section that no tensor covers.
    case gap(file: String, begin: Int, end: Int)
    case missingTensor(file: String, tensor: String)
    case wrongShape(file: String, tensor: String, shape: [Int], expected: [Int])
    case wrongDType(file: String, tensor: String, dtype: String, expected: String)
    case notFinite(file: String, tensor: String, index: Int, value: String)
    /// Two tensors under one name (writing).
    case duplicateTensor(file: String, tensor: String)

    public var description: String {
        func dims(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
        switch self {
        case .unreadable(let file, let reason): return "\(file): cannot be read: \(reason)"
        case .empty(let file): return "\(file): empty file, expected safetensors"
        case .tooShort(let file, let bytes):
            return "\(file): \(bytes) bytes, too short for the 8-byte safetensors header length"
        case .headerTooLarge(let file, let length, let limit):
            return "\(file): safetensors header length \(length) exceeds the limit of \(limit) bytes"
        case .headerBeyondFile(let file, let length, let available):
            return
                "\(file): safetensors header length \(length) is larger than the \(available) bytes after the length field"
        case .headerNotJSON(let file, let reason): return "\(file): safetensors header is not JSON: \(reason)"
        case .headerNotObject(let file, let found):
            return "\(file): safetensors header is \(found), expected a JSON object"
        case .badEntry(let file, let tensor, let reason): return "\(file): tensor \(tensor): \(reason)"
        case .unknownDType(let file, let tensor, let dtype):
            return "\(file): tensor \(tensor): unknown dtype \"\(dtype)\""
        case .badMetadata(let file, let reason): return "\(file): __metadata__: \(reason)"
        case .offsetsOutOfRange(let file, let tensor, let begin, let end, let length):
            return
                "\(file): tensor \(tensor): data_offsets [\(begin), \(end)] outside the data section of \(length) bytes"
        case .sizeMismatch(let file, let tensor, let shape, let dtype, let expected, let actual):
            return
                "\(file): tensor \(tensor): shape \(dims(shape)) of \(dtype) needs \(expected) bytes, data_offsets span \(actual)"
        case .overlap(let file, let tensor, let other):
            return "\(file): tensor \(tensor) overlaps tensor \(other) in the data section"
        case .gap(let file, let begin, let end):
            return "\(file): bytes \(begin)..<\(end) of the data section belong to no tensor"
        case .missingTensor(let file, let tensor): return "\(file): tensor \(tensor) is missing"
        case .wrongShape(let file, let tensor, let shape, let expected):
            return "\(file): tensor \(tensor) has shape \(dims(shape)), expected \(dims(expected))"
        case .wrongDType(let file, let tensor, let dtype, let expected):
            return "\(file): tensor \(tensor) has dtype \(dtype), expected \(expected)"
        case .notFinite(let file, let tensor, let index, let value):
            return "\(file): tensor \(tensor) has \(value) at flat index \(index)"
        case .duplicateTensor(let file, let tensor): return "\(file): tensor \(tensor) appears twice"
        }
    }
}

/// One tensor: dtype, shape and its little-endian bytes.
public struct SafetensorsTensor: Equatable, Sendable {
    public var name: String
    public var dtype: SafetensorsDType
    public var shape: [Int]
    /// elementCount·dtype.byteSize bytes, little-endian, row-major.
    public var bytes: [UInt8]

    public init(name: String, dtype: SafetensorsDType, shape: [Int], bytes: [UInt8]) {
        precondition(
            bytes.count == shape.reduce(1, *) * dtype.byteSize,
            "SafetensorsTensor \(name): byte count does not match shape")
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// An F32 tensor from floats.
    public init(name: String, shape: [Int], floats: [Float]) {
        precondition(
            floats.count == shape.reduce(1, *), "SafetensorsTensor \(name): \(floats.count) values for shape \(shape)")
        var bytes = [UInt8]()
        bytes.reserveCapacity(floats.count * 4)
        for f in floats { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        self.init(name: name, dtype: .F32, shape: shape, bytes: bytes)
    }

    public var elementCount: Int { bytes.count / dtype.byteSize }

    private func littleEndianWord<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
        var v: T = 0
        let size = MemoryLayout<T>.size
        for k in 0..<size { v |= T(bytes[i * size + k]) << (8 * k) }
        return v
    }

    /// The values of an F32 tensor.
    public func floats(file: String = "") throws -> [Float] {
        guard dtype == .F32 else {
            throw SafetensorsError.wrongDType(file: file, tensor: name, dtype: dtype.rawValue, expected: "F32")
        }
        return (0..<elementCount).map { Float(bitPattern: littleEndianWord($0, UInt32.self)) }
    }

    /// The values of an F32 or F64 tensor, widened to Double.
    public func doubles(file: String = "") throws -> [Double] {
        switch dtype {
        case .F32: return try floats(file: file).map(Double.init)
        case .F64: return (0..<elementCount).map { Double(bitPattern: littleEndianWord($0, UInt64.self)) }
        default:
            throw SafetensorsError.wrongDType(file: file, tensor: name, dtype: dtype.rawValue, expected: "F32 or F64")
        }
    }

    /// The values of an I32 or I64 tensor.
    public func integers(file: String = "") throws -> [Int64] {
        switch dtype {
        case .I32: return (0..<elementCount).map { Int64(Int32(bitPattern: littleEndianWord($0, UInt32.self))) }
        case .I64: return (0..<elementCount).map { Int64(bitPattern: littleEndianWord($0, UInt64.self)) }
        default:
            throw SafetensorsError.wrongDType(file: file, tensor: name, dtype: dtype.rawValue, expected: "I32 or I64")
        }
    }
}

/// A safetensors file (https://github.com/huggingface/safetensors, "Format"):
/// an 8-byte little-endian header length N, N bytes of JSON
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {string: string}}`,
/// then the data section; offsets are relative to the data section.
///
/// Reading follows the reference implementation's rules: the tensors must
/// tile the data section exactly (no overlap, no gap, nothing after).
public struct SafetensorsFile: Equatable, Sendable {
    /// Tensors in data-section order.
    public var tensors: [SafetensorsTensor]
    public var metadata: [String: String]

    /// A header above this is rejected before anything is allocated for it
    /// (the reference implementation uses the same 100 MB bound).
    public static let maximumHeaderLength = 100_000_000

    public init(tensors: [SafetensorsTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The tensor called `name`, or `missingTensor`.
    public func tensor(_ name: String, file: String = "") throws -> SafetensorsTensor {
        guard let t = tensors.first(where: { $0.name == name }) else {
            throw SafetensorsError.missingTensor(file: file, tensor: name)
        }
        return t
    }

    /// The F32 values of `name`, whose shape must be `shape`.
    public func floats(_ name: String, shape: [Int], file: String = "") throws -> [Float] {
        let t = try tensor(name, file: file)
        guard t.shape == shape else {
            throw SafetensorsError.wrongShape(file: file, tensor: name, shape: t.shape, expected: shape)
        }
        return try t.floats(file: file)
    }

    // MARK: reading

    /// Reads and validates a file.
    public static func read(from url: URL) throws -> SafetensorsFile {
        let data: Data
        do { data = try readWholeFile(at: url) } catch {
            throw SafetensorsError.unreadable(file: url.lastPathComponent, reason: String(describing: error))
        }
        return try parse(data, fileName: url.lastPathComponent)
    }

    /// Parses and validates safetensors bytes; `fileName` is used in errors.
    public static func parse(_ data: Data, fileName: String) throws -> SafetensorsFile {
        let file = fileName
        guard !data.isEmpty else { throw SafetensorsError.empty(file: file) }
        guard data.count >= 8 else { throw SafetensorsError.tooShort(file: file, bytes: data.count) }
        let bytes = [UInt8](data)
        var headerLength: UInt64 = 0
        for k in 0..<8 { headerLength |= UInt64(bytes[k]) << (8 * UInt64(k)) }
        guard headerLength <= UInt64(maximumHeaderLength) else {
            throw SafetensorsError.headerTooLarge(file: file, length: headerLength, limit: maximumHeaderLength)
        }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw SafetensorsError.headerBeyondFile(file: file, length: headerLength, available: bytes.count - 8)
        }
        let n = Int(headerLength)
        let json: JSONValue
        do { json = try JSONParser.parse(Array(bytes[8..<(8 + n)])) } catch let error as JSONParseError {
            throw SafetensorsError.headerNotJSON(file: file, reason: error.description)
        }
        guard case .object(let members) = json else {
            throw SafetensorsError.headerNotObject(file: file, found: json.kindName)
        }
        let dataStart = 8 + n
        let dataLength = bytes.count - dataStart

        var metadata = [String: String]()
        var entries = [(name: String, dtype: SafetensorsDType, shape: [Int], begin: Int, end: Int)]()
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let pairs) = value else {
                    throw SafetensorsError.badMetadata(file: file, reason: "is \(value.kindName), expected an object")
                }
                for (key, v) in pairs {
                    guard case .string(let s) = v else {
                        throw SafetensorsError.badMetadata(
                            file: file, reason: "value of \"\(key)\" is \(v.kindName), expected a string")
                    }
                    metadata[key] = s
                }
                continue
            }
            guard case .object(let fields) = value else {
                throw SafetensorsError.badEntry(
                    file: file, tensor: name, reason: "entry is \(value.kindName), expected an object")
            }
            func field(_ key: String) throws -> JSONValue {
                guard let v = fields.first(where: { $0.key == key })?.value else {
                    throw SafetensorsError.badEntry(file: file, tensor: name, reason: "missing \"\(key)\"")
                }
                return v
            }
            func naturals(_ key: String) throws -> [Int] {
                guard case .array(let items) = try field(key) else {
                    throw SafetensorsError.badEntry(file: file, tensor: name, reason: "\"\(key)\" is not an array")
                }
                return try items.map {
                    guard case .integer(let i) = $0, i >= 0 else {
                        throw SafetensorsError.badEntry(
                            file: file, tensor: name, reason: "\"\(key)\" holds \($0), expected non-negative integers")
                    }
                    return i
                }
            }
            guard case .string(let dtypeName) = try field("dtype") else {
                throw SafetensorsError.badEntry(file: file, tensor: name, reason: "\"dtype\" is not a string")
            }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw SafetensorsError.unknownDType(file: file, tensor: name, dtype: dtypeName)
            }
            let shape = try naturals("shape")
            let offsets = try naturals("data_offsets")
            guard offsets.count == 2 else {
                throw SafetensorsError.badEntry(
                    file: file, tensor: name, reason: "\"data_offsets\" has \(offsets.count) entries, expected 2")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end, end <= dataLength else {
                throw SafetensorsError.offsetsOutOfRange(
                    file: file, tensor: name, begin: begin, end: end, dataLength: dataLength)
            }
            // shape product × element size, refusing overflow (a huge shape
            // can never match the bytes actually present).
            var needed = dtype.byteSize
            var overflow = false
            for d in shape {
                let (p, o) = needed.multipliedReportingOverflow(by: d)
                overflow = overflow || o
                needed = p
            }
            guard !overflow, needed == end - begin else {
                throw SafetensorsError.sizeMismatch(
                    file: file, tensor: name, shape: shape, dtype: dtypeName,
                    expectedBytes: overflow ? Int.max : needed, actualBytes: end - begin)
            }
            entries.append((name, dtype, shape, begin, end))
        }

        // Tiling: sorted by begin (then end, so empty tensors come first), each
        // begins where the previous ended and the last ends at the data's end.
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        var previous = ""
        for e in entries {
            if e.begin < cursor { throw SafetensorsError.overlap(file: file, tensor: e.name, other: previous) }
            if e.begin > cursor { throw SafetensorsError.gap(file: file, begin: cursor, end: e.begin) }
            cursor = e.end
            previous = e.name
        }
        if cursor != dataLength { throw SafetensorsError.gap(file: file, begin: cursor, end: dataLength) }

        let tensors = entries.map {
            SafetensorsTensor(
                name: $0.name, dtype: $0.dtype, shape: $0.shape,
                bytes: Array(bytes[(dataStart + $0.begin)..<(dataStart + $0.end)]))
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }

    // MARK: writing

    /// The file's bytes: header with tensors in `tensors` order, data laid
    /// out in the same order, header padded with spaces to a multiple of 8
    /// bytes so that the data section starts 8-byte aligned.
    public func serialized(fileName: String = "") throws -> Data {
        var seen = Set<String>()
        for t in tensors where !seen.insert(t.name).inserted || t.name == "__metadata__" {
            throw SafetensorsError.duplicateTensor(file: fileName, tensor: t.name)
        }
        var header = "{"
        var parts = [String]()
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonQuoted($0)):\(jsonQuoted(metadata[$0]!))" }
            parts.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for t in tensors {
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append(
                "\(jsonQuoted(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}"
            )
            offset += t.bytes.count
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        let n = UInt64(headerBytes.count)
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(k)))) }
        out += headerBytes
        for t in tensors { out += t.bytes }
        return Data(out)
    }

    /// Writes the file atomically (see ``writeAtomically(_:to:)``).
    public func write(to url: URL) throws {
        try writeAtomically(serialized(fileName: url.lastPathComponent), to: url)
    }
}
