import Foundation
import Models
import XCTest

/// The JSON model-file reader: what it accepts, each class of rejection with
/// its JSON path, the round trip of the built-ins and the shipped example.
final class ModelFileTests: XCTestCase {
    private func decode(_ text: String) throws -> NetworkDescription { try ModelFile.decode(Array(text.utf8)) }

    private func assertRejects(
        _ text: String, _ kind: ModelError.Kind, at location: String, mentions words: [String] = [],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try decode(text), file: file, line: line) { error in
            guard let e = error as? ModelError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, kind, "\(e)", file: file, line: line)
            XCTAssertEqual(e.location, location, "\(e)", file: file, line: line)
            for w in words {
                XCTAssertTrue(e.description.contains(w), "expected “\(w)” in: \(e)", file: file, line: line)
            }
        }
    }

    private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func testDecodesEveryLayerTypeWithDefaults() throws {
        let n = try decode(
            """
            {"name": "all", "version": 1, "description": "every type", "layers": [
              {"type": "conv", "in": 1, "out": 4, "kernel": 3},
              {"type": "batchnorm", "name": "bn", "channels": 4},
              {"type": "relu"},
              {"type": "residual", "body": [{"type": "conv", "in": 4, "out": 4, "kernel": 3, "padding": 1}]},
              {"type": "residual", "relu": false, "body": [{"type": "conv", "in": 4, "out": 8, "kernel": 3,
                "stride": 2, "padding": 1, "bias": false}],
               "shortcut": [{"type": "conv", "in": 4, "out": 8, "kernel": 1, "stride": 2}]},
              {"type": "maxpool2"}, {"type": "global_avgpool"}, {"type": "flatten"},
              {"type": "linear", "name": "fc", "in": 8, "out": 10, "bias": false}
            ]}
            """)
        let expected = NetworkDescription(
            name: "all",
            layers: [
                LayerDescription(
                    .conv(Conv2dSpec(inChannels: 1, outChannels: 4, kernelSize: 3, stride: 1, padding: 0, bias: true))),
                LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 4)), name: "bn"),
                LayerDescription(.relu),
                LayerDescription(
                    .residual(
                        ResidualBlockSpec(
                            body: [
                                LayerDescription(
                                    .conv(Conv2dSpec(inChannels: 4, outChannels: 4, kernelSize: 3, padding: 1)))
                            ],
                            shortcut: .identity, reluAfterAdd: true))),
                LayerDescription(
                    .residual(
                        ResidualBlockSpec(
                            body: [
                                LayerDescription(
                                    .conv(
                                        Conv2dSpec(
                                            inChannels: 4, outChannels: 8, kernelSize: 3, stride: 2, padding: 1,
                                            bias: false)))
                            ],
                            shortcut: .projection([
                                LayerDescription(
                                    .conv(Conv2dSpec(inChannels: 4, outChannels: 8, kernelSize: 1, stride: 2)))
                            ]), reluAfterAdd: false))),
                LayerDescription(.maxPool2), LayerDescription(.globalAveragePool), LayerDescription(.flatten),
                LayerDescription(.linear(LinearSpec(inFeatures: 8, outFeatures: 10, bias: false)), name: "fc"),
            ])
        XCTAssertEqual(n, expected)
        let s = try n.summary(input: .map(channels: 1, height: 28, width: 28), classes: 10)
        // Unnamed layers take their index; a projection's layers "downsample.i".
        XCTAssertEqual(
            s.parameters.map(\.name),
            [
                "0.weight", "0.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                "bn.num_batches_tracked", "3.0.weight", "3.0.bias", "4.0.weight", "4.downsample.0.weight",
                "4.downsample.0.bias", "fc.weight",
            ])
    }

    func testBuiltinsRoundTrip() throws {
        for name in BuiltinModels.names {
            let n = BuiltinModels.named(name, inputChannels: 3, classes: 10)!
            XCTAssertEqual(try decode(ModelFile.encode(n)), n, name)
        }
    }

    /// docs/examples/small-resnet.json, the example docs/model-format.md shows.
    func testShippedExample() throws {
        let url = repoRoot.appendingPathComponent("docs/examples/small-resnet.json")
        let n = try ModelFile.load(url)
        XCTAssertEqual(n.name, "small-resnet")
        for geometry in [InputGeometry.mnist, .fashionMNIST] {
            let s = try n.summary(input: geometry.shape, classes: geometry.classes)
            XCTAssertEqual(s.output, .vector(features: 10))
            // Hand count: conv 144, bn 32; layer1.0 2·2,304 + 2·32; layer2.0 4,608 + 9,216 + 2·64,
            // downsample 512 + 64; fc 330.
            XCTAssertEqual(s.learnedParameterCount, 144 + 32 + 2 * 2_304 + 64 + 4_608 + 9_216 + 128 + 512 + 64 + 330)
            XCTAssertEqual(s.parameters.first { $0.name == "layer2.0.downsample.1.running_var" }?.shape, [32])
        }
        // It is written for one channel: CIFAR-10's three do not chain into conv1.
        XCTAssertThrowsError(try n.summary(input: InputGeometry.cifar10.shape, classes: 10)) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .channelMismatch)
            XCTAssertEqual((error as? ModelError)?.location, "conv1")
            XCTAssertTrue("\(error)".contains("3×32×32"), "\(error)")
        }
    }

    func testNotJSON() {
        assertRejects("{\"layers\": [", .syntax, at: "", mentions: ["not JSON", "byte"])
        assertRejects("", .syntax, at: "")
        assertRejects("{\"layers\": [], \"layers\": []}", .syntax, at: "", mentions: ["duplicate key"])
    }

    func testUnknownLayerType() {
        assertRejects(
            #"{"layers": [{"type": "relu"}, {"type": "residual", "body": [{"type": "dense", "in": 3}]}]}"#,
            .unknownLayer, at: "layers[1].body[0].type", mentions: ["\"dense\"", "conv, batchnorm"])
        assertRejects(
            #"{"layers": [{"type": "relu"}], "shortcut": "identity"}"#, .unknownField, at: "shortcut",
            mentions: ["layers"])
    }

    func testUnknownField() {
        assertRejects(
            #"{"layers": [{"type": "conv", "in": 1, "out": 2, "kernel": 3, "strides": 2}]}"#, .unknownField,
            at: "layers[0].strides", mentions: ["stride, padding"])
        assertRejects(#"{"layers": [{"type": "relu", "channels": 3}]}"#, .unknownField, at: "layers[0].channels")
    }

    func testMissingFields() {
        assertRejects(#"{"name": "x"}"#, .missingField, at: "", mentions: ["\"layers\""])
        assertRejects(#"{"layers": [{"in": 3}]}"#, .missingField, at: "layers[0]", mentions: ["\"type\""])
        assertRejects(
            #"{"layers": [{"type": "conv", "in": 1, "out": 2}]}"#, .missingField, at: "layers[0]",
            mentions: ["\"kernel\""])
        assertRejects(#"{"layers": [{"type": "batchnorm"}]}"#, .missingField, at: "layers[0]", mentions: ["channels"])
        assertRejects(#"{"layers": [{"type": "linear", "in": 3}]}"#, .missingField, at: "layers[0]", mentions: ["out"])
        assertRejects(#"{"layers": [{"type": "residual"}]}"#, .missingField, at: "layers[0]", mentions: ["body"])
    }

    func testBadValues() {
        let cases: [(String, String, String)] = [
            (#"{"layers": {}}"#, "layers", "a list of layers"),
            (#"{"layers": []}"#, "layers", "at least one layer"),
            (#"{"layers": [3]}"#, "layers[0]", "a number"),
            (#"{"layers": [{"type": 3}]}"#, "layers[0].type", "a string"),
            (#"{"layers": [{"type": "conv", "in": 0, "out": 2, "kernel": 3}]}"#, "layers[0].in", "got 0"),
            (#"{"layers": [{"type": "conv", "in": 1, "out": 2.5, "kernel": 3}]}"#, "layers[0].out", "got 2.5"),
            (#"{"layers": [{"type": "conv", "in": 1, "out": "2", "kernel": 3}]}"#, "layers[0].out", "a string"),
            (#"{"layers": [{"type": "conv", "in": 1, "out": 2, "kernel": 33}]}"#, "layers[0].kernel", "1 to 32"),
            (
                #"{"layers": [{"type": "conv", "in": 1, "out": 2, "kernel": 3, "stride": 0}]}"#, "layers[0].stride",
                "got 0"
            ),
            (
                #"{"layers": [{"type": "conv", "in": 1, "out": 2, "kernel": 3, "padding": -1}]}"#, "layers[0].padding",
                "got -1"
            ),
            (
                #"{"layers": [{"type": "conv", "in": 1, "out": 2, "kernel": 3, "bias": 1}]}"#, "layers[0].bias",
                "true or false"
            ),
            (#"{"layers": [{"type": "batchnorm", "channels": 65537}]}"#, "layers[0].channels", "65536"),
            (#"{"layers": [{"type": "relu", "name": "a b"}]}"#, "layers[0].name", "\"a b\""),
            (#"{"layers": [{"type": "relu", "name": 7}]}"#, "layers[0].name", "a string"),
            (#"{"layers": [{"type": "residual", "body": []}]}"#, "layers[0].body", "at least one layer"),
            (
                #"{"layers": [{"type": "residual", "body": [{"type": "relu"}], "shortcut": []}]}"#,
                "layers[0].shortcut", "identity"
            ),
            (
                #"{"layers": [{"type": "residual", "body": [{"type": "relu"}], "shortcut": "none"}]}"#,
                "layers[0].shortcut", "\"none\""
            ),
            (
                #"{"layers": [{"type": "residual", "body": [{"type": "relu"}], "relu": "yes"}]}"#, "layers[0].relu",
                "true or false"
            ),
            (#"{"layers": [{"type": "relu"}], "version": 2}"#, "version", "got 2"),
            (#"{"layers": [{"type": "relu"}], "name": null}"#, "name", "null"),
            (#"[]"#, "", "an object"),
        ]
        for (text, location, word) in cases {
            assertRejects(text, .badValue, at: location, mentions: [word])
        }
    }

    func testFilesAndNames() throws {
        XCTAssertThrowsError(try ModelSource.resolve("resnet18", for: .mnist)) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .unknownModel)
            XCTAssertTrue("\(error)".contains("tiny, resnet8, resnet20, resnet32"), "\(error)")
        }
        XCTAssertThrowsError(try ModelSource.resolve("/nonexistent/net.json", for: .mnist)) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .unreadable)
            XCTAssertEqual((error as? ModelError)?.file, "/nonexistent/net.json")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("models-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.json")
        try Data(#"{"layers": [{"type": "pool"}]}"#.utf8).write(to: bad)
        XCTAssertThrowsError(try ModelSource.resolve(bad.path, for: .mnist)) { error in
            XCTAssertEqual(
                "\(error)".hasPrefix("\(bad.path): layers[0].type: unknown layer type \"pool\""), true, "\(error)")
        }
        let good = dir.appendingPathComponent("net.json")
        try Data(#"{"layers": [{"type": "flatten"}, {"type": "linear", "in": 3072, "out": 10}]}"#.utf8).write(to: good)
        let n = try ModelSource.resolve(good.path, for: .cifar10)
        XCTAssertEqual(n.name, "net")
        XCTAssertEqual(try n.summary(input: InputGeometry.cifar10.shape, classes: 10).learnedParameterCount, 30_730)
        XCTAssertEqual(try ModelSource.resolve("resnet8", for: .cifar10).name, "resnet8")
    }
}
