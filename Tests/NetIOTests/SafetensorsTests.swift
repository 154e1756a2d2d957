import Foundation
import NetIO
import TestSupport
import XCTest

/// The safetensors reader and writer: a round trip, a file built byte by
/// byte in the test (independent of the writer), and one test per malformed
/// input, each asserting the error names the file and the tensor.
final class SafetensorsTests: XCTestCase {
    /// A file from a literal header text and data bytes: 8-byte
    /// little-endian length, the header as given, then the data.
    private func file(header: String, data: [UInt8] = []) -> Data {
        let h = Array(header.utf8)
        let n = UInt64(h.count)
        return Data((0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + h + data)
    }

    private func parse(_ data: Data) throws -> SafetensorsFile {
        try SafetensorsFile.parse(data, fileName: "model.safetensors")
    }

    func testHandMadeFileIsReadCorrectly() throws {
        // "w": F32 [2] = 1.0 (0x3F800000), -2.5 (0xC0200000); "i": I64 [1] = -3;
        // "d": F64 [1] = 0.5 (0x3FE0000000000000). Little-endian bytes.
        let header =
            #"{"__metadata__":{"epoch":"7","note":"a \"quoted\" é"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"d":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}}"#
        let data: [UInt8] = [
            0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0,
            0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0, 0, 0, 0, 0, 0, 0xE0, 0x3F,
        ]
        let parsed = try parse(file(header: header, data: data))
        XCTAssertEqual(parsed.metadata, ["epoch": "7", "note": "a \"quoted\" é"])
        XCTAssertEqual(parsed.tensors.map(\.name), ["w", "i", "d"])
        XCTAssertEqual(try parsed.floats("w", shape: [2]), [1.0, -2.5])
        XCTAssertEqual(try parsed.tensor("i").integers(), [-3])
        XCTAssertEqual(try parsed.tensor("d").doubles(), [0.5])
        XCTAssertEqual(try parsed.tensor("w").doubles(), [1.0, -2.5])
    }

    func testRoundTripAndLayout() throws {
        let original = SafetensorsFile(
            tensors: [
                SafetensorsTensor(name: "a.weight", shape: [2, 3], floats: [1, -2, 3.5, Float.pi, -0.0, 1e-30]),
                SafetensorsTensor(name: "steps", dtype: .I32, shape: [2], bytes: [1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]),
                SafetensorsTensor(name: "empty", shape: [0, 4], floats: []),
                SafetensorsTensor(name: "scalar", shape: [], floats: [42]),
            ], metadata: ["settings": #"{"lr": 0.01, "path": "a\b"}"#, "line": "x\ny\t\u{1}"])
        let bytes = try original.serialized()
        // Layout: header length a multiple of 8, header ends in the padding spaces.
        let n = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(bytes[8], UInt8(ascii: "{"))
        XCTAssertEqual(bytes.count, 8 + n + 24 + 8 + 0 + 4)
        let parsed = try parse(bytes)
        XCTAssertEqual(parsed.metadata, original.metadata)
        XCTAssertEqual(Set(parsed.tensors.map(\.name)), Set(original.tensors.map(\.name)))
        for t in original.tensors { XCTAssertEqual(try parsed.tensor(t.name), t) }
        XCTAssertEqual(try parsed.tensor("steps").integers(), [1, -1])
        let values: [Float] = [1, -2, 3.5, .pi, -0.0, 1e-30]
        XCTAssertEqual(try parsed.floats("a.weight", shape: [2, 3]).map(\.bitPattern), values.map(\.bitPattern))
    }

    func testWriteReadsBackFromDisk() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-st")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x.safetensors")
        let f = SafetensorsFile(
            tensors: [SafetensorsTensor(name: "v", shape: [3], floats: [1, 2, 3])], metadata: ["k": "v"])
        try f.write(to: url)
        XCTAssertEqual(try SafetensorsFile.read(from: url), f)
    }

    func testEmptyFile() {
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "empty file"]) { try parse(Data()) }
    }

    func testShorterThanTheLengthField() {
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "5 bytes", "too short"]) {
            try parse(Data([1, 2, 3, 4, 5]))
        }
    }

    func testHeaderLengthBeyondTheFile() {
        var bytes = [UInt8](file(header: "{}"))
        bytes[0] = 200
        assertThrows(
            SafetensorsError.self, containing: ["model.safetensors", "header length 200", "larger than the 2 bytes"]
        ) { try parse(Data(bytes)) }
    }

    func testHugeHeaderLengthInATinyFile() {
        // 20 bytes claiming a 2^40-byte header: refused before any allocation.
        var bytes = [UInt8](repeating: 0x20, count: 20)
        for k in 0..<8 { bytes[k] = UInt8(truncatingIfNeeded: (UInt64(1) << 40) >> (8 * UInt64(k))) }
        assertThrows(
            SafetensorsError.self,
            containing: ["model.safetensors", "header length 1099511627776", "limit of 100000000"]
        ) { try parse(Data(bytes)) }
    }

    func testHeaderNotJSON() {
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "not JSON", "byte"]) {
            try parse(file(header: "{\"a\": "))
        }
    }

    func testHeaderNotAnObject() {
        assertThrows(
            SafetensorsError.self, containing: ["model.safetensors", "header is an array", "expected a JSON object"]
        ) { try parse(file(header: "[1, 2]")) }
    }

    func testDuplicateTensorNameInTheHeader() {
        let h =
            #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "duplicate key \"a\""]) {
            try parse(file(header: h))
        }
    }

    func testUnknownDType() {
        let h = #"{"conv1.weight":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}"#
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "conv1.weight", "unknown dtype \"F17\""])
        { try parse(file(header: h, data: [0, 0, 0, 0])) }
    }

    func testMissingField() {
        let h = #"{"fc.bias":{"dtype":"F32","data_offsets":[0,4]}}"#
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "fc.bias", "missing \"shape\""]) {
            try parse(file(header: h, data: [0, 0, 0, 0]))
        }
    }

    func testNegativeShape() {
        let h = #"{"fc.bias":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "fc.bias", "non-negative integers"]) {
            try parse(file(header: h, data: [0, 0, 0, 0]))
        }
    }

    func testOffsetsOutOfRange() {
        let h = #"{"fc.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        assertThrows(
            SafetensorsError.self, containing: ["model.safetensors", "fc.bias", "[0, 8]", "data section of 4 bytes"]
        ) { try parse(file(header: h, data: [0, 0, 0, 0])) }
    }

    func testOffsetsReversed() {
        let h = #"{"fc.bias":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "fc.bias", "[4, 0]"]) {
            try parse(file(header: h, data: [0, 0, 0, 0]))
        }
    }

    func testOffsetsNotMatchingShapeAndDType() {
        let h = #"{"conv2.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#
        assertThrows(
            SafetensorsError.self,
            containing: ["model.safetensors", "conv2.weight", "shape [2, 2] of F32 needs 16 bytes", "span 12"]
        ) {
            try parse(file(header: h, data: [UInt8](repeating: 0, count: 12)))
        }
    }

    func testOverlappingTensors() {
        let h =
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "tensor b overlaps tensor a"]) {
            try parse(file(header: h, data: [UInt8](repeating: 0, count: 12)))
        }
    }

    func testGapBetweenTensors() {
        let h =
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "bytes 4..<8", "belong to no tensor"]) {
            try parse(file(header: h, data: [UInt8](repeating: 0, count: 12)))
        }
    }

    func testTrailingBytesAfterTheLastTensor() {
        let h = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "bytes 4..<6", "belong to no tensor"]) {
            try parse(file(header: h, data: [0, 0, 0, 0, 1, 2]))
        }
    }

    func testMetadataValueNotAString() {
        let h = #"{"__metadata__":{"epoch":3}}"#
        assertThrows(
            SafetensorsError.self,
            containing: ["model.safetensors", "__metadata__", "\"epoch\" is a number, expected a string"]
        ) { try parse(file(header: h)) }
    }

    func testMissingTensorAndWrongShapeAndDType() throws {
        let h = #"{"fc.bias":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#
        let f = try parse(file(header: h, data: [UInt8](repeating: 0, count: 16)))
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "tensor fc.weight is missing"]) {
            try f.floats("fc.weight", shape: [10, 400], file: "model.safetensors")
        }
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "fc.bias has shape [2], expected [10]"]) {
            try f.floats("fc.bias", shape: [10], file: "model.safetensors")
        }
        assertThrows(SafetensorsError.self, containing: ["model.safetensors", "fc.bias has dtype F64, expected F32"]) {
            try f.floats("fc.bias", shape: [2], file: "model.safetensors")
        }
    }

    func testWriterRefusesDuplicateNames() {
        let t = SafetensorsTensor(name: "a", shape: [1], floats: [1])
        assertThrows(SafetensorsError.self, containing: ["tensor a appears twice"]) {
            try SafetensorsFile(tensors: [t, t]).serialized()
        }
    }

    func testJSONParserStrictness() throws {
        XCTAssertEqual(
            try JSONParser.parse(Array(#" {"a": [1, -2, 3.5e1, true, null, "\u00e9\ud83d\ude00"]} "#.utf8)),
            .object([
                (key: "a", value: .array([.integer(1), .integer(-2), .number(35), .bool(true), .null, .string("é😀")]))
            ]))
        for bad in ["{\"a\":1,}", "[1,]", "01", "{'a':1}", "\"\\ud800\"", "[1] x", "{\"a\" 1}", "\"a\u{1}\""] {
            XCTAssertThrowsError(try JSONParser.parse(Array(bad.utf8)), bad)
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        assertThrows(JSONParseError.self, containing: ["nesting deeper than 64"]) {
            try JSONParser.parse(Array(deep.utf8))
        }
    }
}
