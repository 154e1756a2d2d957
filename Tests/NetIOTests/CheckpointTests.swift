import Foundation
import NetIO
import TestSupport
import XCTest

final class CheckpointTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try TestEnvironment.makeTemporaryDirectory("convsvd-ckpt") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func weights(seed: UInt64) -> TinyConvNetWeights {
        TinyConvNetWeights(
            conv1: randomFloats(72, seed: seed), conv2: randomFloats(1152, seed: seed + 1),
            fcWeight: randomFloats(4000, seed: seed + 2), fcBias: randomFloats(10, seed: seed + 3))
    }

    /// A checkpoint file with the four weights as given (name, shape, dtype, values).
    private func writeFile(_ tensors: [SafetensorsTensor]) throws -> URL {
        let url = dir.appendingPathComponent("checkpoint.safetensors")
        try SafetensorsFile(tensors: tensors).write(to: url)
        return url
    }

    private func standardTensors(_ w: TinyConvNetWeights) -> [SafetensorsTensor] {
        w.tensors.map { SafetensorsTensor(name: $0.name, shape: $0.shape, floats: $0.values) }
    }

    func testRoundTripWithOptimizerStateAndMetadata() throws {
        let w = weights(seed: 1)
        let state = [
            "m.conv1.weight": randomFloats(72, seed: 9), "v.fc.bias": randomFloats(10, seed: 10),
            "velocity.conv2.weight": randomFloats(1152, seed: 11), "step": [12],
        ]
        let meta = ["epoch": "3", "step": "1407", "seed": "42", "optimizer": "adam", "settings": #"{"lr":0.001}"#]
        let url = dir.appendingPathComponent(Checkpoint.fileName)
        try Checkpoint(weights: w, optimizerState: state, metadata: meta).write(to: url)
        let back = try Checkpoint.read(from: url, requireFinite: true)
        XCTAssertEqual(back.weights, w)
        XCTAssertEqual(back.optimizerState, state)
        XCTAssertEqual(back.metadata, meta)
    }

    /// The names, shapes and dtypes PyTorch expects, read through the generic
    /// reader; optimiser tensors take their weight's shape.
    func testStoredNamesShapesAndDTypes() throws {
        let url = dir.appendingPathComponent(Checkpoint.fileName)
        try Checkpoint(weights: weights(seed: 2), optimizerState: ["m.fc.weight": [Float](repeating: 0, count: 4000)])
            .write(to: url)
        let f = try SafetensorsFile.read(from: url)
        let layout = f.tensors.map { "\($0.name) \($0.dtype.rawValue) \($0.shape)" }.sorted()
        XCTAssertEqual(
            layout,
            [
                "conv1.weight F32 [8, 1, 3, 3]", "conv2.weight F32 [16, 8, 3, 3]", "fc.bias F32 [10]",
                "fc.weight F32 [10, 400]", "optimizer.m.fc.weight F32 [10, 400]",
            ])
    }

    func testWrongShapeNamesTheTensorAndTheExpectedShape() throws {
        var tensors = standardTensors(weights(seed: 3))
        tensors[0] = SafetensorsTensor(
            name: "conv1.weight", shape: [8, 1, 5, 5], floats: [Float](repeating: 0, count: 200))
        let url = try writeFile(tensors)
        assertThrows(
            SafetensorsError.self,
            containing: ["checkpoint.safetensors", "conv1.weight has shape [8, 1, 5, 5], expected [8, 1, 3, 3]"]
        ) {
            try Checkpoint.read(from: url)
        }
    }

    func testMissingWeight() throws {
        let url = try writeFile(Array(standardTensors(weights(seed: 4)).dropLast()))
        assertThrows(SafetensorsError.self, containing: ["checkpoint.safetensors", "tensor fc.bias is missing"]) {
            try Checkpoint.read(from: url)
        }
    }

    func testUnknownTensorIsRejected() throws {
        let url = try writeFile(
            standardTensors(weights(seed: 5)) + [SafetensorsTensor(name: "bn.running_mean", shape: [1], floats: [0])])
        assertThrows(
            SafetensorsError.self,
            containing: ["checkpoint.safetensors", "bn.running_mean", "not a TinyConvNet weight"]
        ) { try Checkpoint.read(from: url) }
    }

    func testNonFiniteValuesOnlyWhenRequired() throws {
        var w = weights(seed: 6)
        w.fcWeight[123] = .nan
        let url = dir.appendingPathComponent(Checkpoint.fileName)
        try Checkpoint(weights: w).write(to: url)
        XCTAssertTrue(try Checkpoint.read(from: url).weights.fcWeight[123].isNaN)
        assertThrows(
            SafetensorsError.self, containing: ["checkpoint.safetensors", "tensor fc.weight has nan at flat index 123"]
        ) {
            try Checkpoint.read(from: url, requireFinite: true)
        }
        var v = weights(seed: 7)
        v.conv1[0] = -.infinity
        try Checkpoint(weights: v).write(to: url)
        assertThrows(SafetensorsError.self, containing: ["conv1.weight has -inf at flat index 0"]) {
            try Checkpoint.read(from: url, requireFinite: true)
        }
        try Checkpoint(
            weights: weights(seed: 8), optimizerState: ["v.fc.bias": [0, .infinity] + [Float](repeating: 0, count: 8)]
        ).write(to: url)
        assertThrows(SafetensorsError.self, containing: ["optimizer.v.fc.bias has inf at flat index 1"]) {
            try Checkpoint.read(from: url, requireFinite: true)
        }
    }

    func testCorruptCheckpointFileNamesTheFile() throws {
        let url = dir.appendingPathComponent(Checkpoint.fileName)
        try Data([1, 0, 0, 0, 0, 0, 0, 0, 0x7B]).write(to: url)
        assertThrows(SafetensorsError.self, containing: ["checkpoint.safetensors", "not JSON"]) {
            try Checkpoint.read(from: url)
        }
        assertThrows(SafetensorsError.self, containing: ["nothere.safetensors", "cannot be read"]) {
            try Checkpoint.read(from: dir.appendingPathComponent("nothere.safetensors"))
        }
    }
}
