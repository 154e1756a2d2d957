import Foundation
import NetIO
import TestSupport
import XCTest

/// `convsvd export`: the file is read back here with the safetensors layout
/// spelled out (8-byte little-endian header length, JSON header, raw
/// little-endian F32 data), not with the tool's own reader.
final class ExportTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-export")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// A checkpoint as training writes it: weights, Adam state, metadata.
    func trainingCheckpoint(in dir: URL) throws -> (URL, Checkpoint) {
        let weights = TinyConvNetWeights(
            conv1: (0..<72).map { Float($0) / 71 - 0.5 },
            conv2: (0..<1152).map { sin(Float($0)) / 4 },
            fcWeight: (0..<4000).map { cos(Float($0)) / 20 },
            fcBias: (0..<10).map { Float($0) / 100 })
        var state = [String: [Float]]()
        for (name, values) in [
            ("conv1.weight", weights.conv1), ("conv2.weight", weights.conv2),
            ("fc.weight", weights.fcWeight), ("fc.bias", weights.fcBias),
        ] {
            state["m." + name] = values.map { $0 / 10 }
            state["v." + name] = values.map { $0 * $0 }
        }
        let checkpoint = Checkpoint(
            weights: weights, optimizerState: state,
            metadata: ["epoch": "3", "optimizer_step": "2814", "settings": "{}", "device": "host"])
        let url = dir.appendingPathComponent("checkpoint.safetensors")
        try checkpoint.write(to: url)
        return (url, checkpoint)
    }

    /// The header and the F32 tensors of a safetensors file, decoded by hand.
    func decode(_ url: URL) throws -> (header: [String: Any], tensors: [String: (shape: [Int], values: [Float])]) {
        let bytes = [UInt8](try Data(contentsOf: url))
        let length = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        let header = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
        var tensors = [String: (shape: [Int], values: [Float])]()
        for (name, entry) in header where name != "__metadata__" {
            let e = try XCTUnwrap(entry as? [String: Any])
            XCTAssertEqual(e["dtype"] as? String, "F32", name)
            let offsets = try XCTUnwrap(e["data_offsets"] as? [Int])
            let data = Array(bytes[(8 + length + offsets[0])..<(8 + length + offsets[1])])
            let values = stride(from: 0, to: data.count, by: 4).map { i in
                Float(
                    bitPattern: UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(
                        data[i + 3]) << 24)
            }
            tensors[name] = (try XCTUnwrap(e["shape"] as? [Int]), values)
        }
        return (header, tensors)
    }

    func testWeightsOnlyHoldsExactlyTheFourModelTensors() throws {
        let dir = try temporaryDirectory()
        let (source, checkpoint) = try trainingCheckpoint(in: dir)
        let target = dir.appendingPathComponent("weights.safetensors")
        let r = try CLI.run(["export", "--checkpoint", source.path, "--weights-only", "--out", target.path])
        XCTAssertEqual(r.status, 0, r.output)

        let (header, tensors) = try decode(target)
        // The keys PyTorch's TinyConvNet.state_dict() has, and nothing else: what strict=True demands.
        XCTAssertEqual(Set(tensors.keys), ["conv1.weight", "conv2.weight", "fc.weight", "fc.bias"])
        XCTAssertEqual(tensors["conv1.weight"]?.shape, [8, 1, 3, 3])
        XCTAssertEqual(tensors["conv2.weight"]?.shape, [16, 8, 3, 3])
        XCTAssertEqual(tensors["fc.weight"]?.shape, [10, 400])
        XCTAssertEqual(tensors["fc.bias"]?.shape, [10])
        XCTAssertEqual(tensors["conv1.weight"]?.values, checkpoint.weights.conv1)
        XCTAssertEqual(tensors["conv2.weight"]?.values, checkpoint.weights.conv2)
        XCTAssertEqual(tensors["fc.weight"]?.values, checkpoint.weights.fcWeight)
        XCTAssertEqual(tensors["fc.bias"]?.values, checkpoint.weights.fcBias)
        let metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
        XCTAssertEqual(metadata["epoch"], "3")
        XCTAssertNil(metadata["optimizer_step"], "without it, --resume refuses the file")

        // Without --weights-only the optimiser state travels along.
        let copy = dir.appendingPathComponent("copy.safetensors")
        XCTAssertEqual(try CLI.run(["export", "--checkpoint", source.path, "--out", copy.path]).status, 0)
        XCTAssertEqual(Set(try decode(copy).tensors.keys).subtracting(tensors.keys).count, 8)
    }

    func testExportRefusesToReplaceItsCheckpointOrAFolder() throws {
        let dir = try temporaryDirectory()
        let (source, _) = try trainingCheckpoint(in: dir)
        let before = try Data(contentsOf: source)
        let same = try CLI.run(["export", "--checkpoint", source.path, "--weights-only", "--out", source.path])
        XCTAssertEqual(same.status, 64, same.output)
        XCTAssertTrue(same.stderr.contains("is the checkpoint being exported"), same.stderr)
        XCTAssertEqual(try Data(contentsOf: source), before)

        let folder = try CLI.run(["export", "--checkpoint", source.path, "--weights-only", "--out", dir.path])
        XCTAssertEqual(folder.status, 5, folder.output)
        XCTAssertTrue(folder.stderr.contains(dir.path), folder.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["checkpoint.safetensors"])
    }
}
