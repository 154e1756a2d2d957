import Foundation
import XCTest

/// `convsvd describe`: the table and JSON for built-in models and a model
/// file, and bad models refused with exit 64. Figures are the hand counts of
/// Tests/ModelsTests (resnet8 on 1×28×28: 77,754 parameters, 9,345,920
/// multiply-adds, 2 × (3 × 9,345,920 − 112,896) FLOP an image).
final class DescribeCommandTests: XCTestCase {
    func testResNet8Table() throws {
        let r = try CLI.run(["describe", "--model", "resnet8", "--dataset", "fashion-mnist", "--tensors"])
        XCTAssertEqual(r.status, 0, r.output)
        for text in [
            "resnet8 on Fashion-MNIST", "77,754", "9,345,920", "9.35 M",
            // 55,849,728 FLOP × 60,000 images = 3,350.98 GFLOP.
            "3,351.0 GFLOP", "55,849,728", "layer2.0.downsample.0", "layer3.0.bn2.num_batches_tracked",
            "[64, 32, 3, 3]",
        ] {
            XCTAssertTrue(r.stdout.contains(text), "expected “\(text)” in:\n\(r.stdout)")
        }
        // The table's rows: one per layer, add and block ReLU; every row of the table aligned on its
        // columns (the output shape starts at the same column in every row).
        let lines = r.stdout.split(separator: "\n").map { Array($0) }
        let header = try XCTUnwrap(lines.first { String($0).hasPrefix("layer ") })
        let column = try XCTUnwrap(String(header).components(separatedBy: "output").first).count
        let conv1 = try XCTUnwrap(lines.first { String($0).hasPrefix("conv1 ") })
        XCTAssertEqual(String(conv1[column..<(column + 8)]), "16×28×28")
        let block = try XCTUnwrap(lines.first { String($0).hasPrefix("  layer3.0.conv2 ") })
        XCTAssertEqual(String(block[column..<(column + 6)]), "64×7×7")
        // fc: 64·10 + 10 parameters, 640 multiply-adds, the last two columns.
        let fc = try XCTUnwrap(lines.first { String($0).hasPrefix("fc ") })
        XCTAssertEqual(String(fc).split(separator: " ").suffix(2), ["650", "640"])
    }

    func testJSONAndCIFAR() throws {
        let r = try CLI.run(["describe", "--model", "resnet20", "--dataset", "cifar10", "--json"])
        XCTAssertEqual(r.status, 0, r.output)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        // ResNet-20 on 3 channels with projection shortcuts: 272,474 parameters (hand count in ModelsTests).
        XCTAssertEqual(object["learnedParameters"] as? Int, 272_474)
        XCTAssertEqual(object["trainingImages"] as? Int, 50_000)
        XCTAssertEqual(object["input"] as? [Int], [3, 32, 32])
        let layers = try XCTUnwrap(object["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.first?["path"] as? String, "conv1")
        // 16·3·9 weights, 432·32² multiply-adds.
        XCTAssertEqual(layers.first?["multiplyAdds"] as? Int, 442_368)
        XCTAssertEqual(layers.first?["inputGradientNeeded"] as? Bool, false)
    }

    func testModelFile() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/examples/small-resnet.json")
        let r = try CLI.run(["describe", "--model", example.path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("small-resnet on MNIST"), r.stdout)
        XCTAssertTrue(r.stdout.contains("add (projection shortcut)"), r.stdout)
    }

    /// A built-in printed as a model file describes as the built-in does.
    func testModelFileOfABuiltin() throws {
        let printed = try CLI.run(["describe", "--model", "resnet8", "--dataset", "cifar10", "--model-file"])
        XCTAssertEqual(printed.status, 0, printed.output)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("describe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("resnet8.json")
        try Data(printed.stdout.utf8).write(to: file)
        let fromFile = try CLI.run(["describe", "--model", file.path, "--dataset", "cifar10", "--tensors"])
        let builtin = try CLI.run(["describe", "--model", "resnet8", "--dataset", "cifar10", "--tensors"])
        XCTAssertEqual(fromFile.status, 0, fromFile.output)
        XCTAssertEqual(fromFile.stdout, builtin.stdout)
        // 77,754 on one channel, plus 2·16·9 conv1 weights for the two more channels.
        XCTAssertTrue(builtin.stdout.contains("78,042"), builtin.stdout)
    }

    func testBadModelsExit64() throws {
        let unknown = try CLI.run(["describe", "--model", "resnet18"])
        XCTAssertEqual(unknown.status, 64, unknown.output)
        XCTAssertTrue(unknown.stderr.contains("unknown model \"resnet18\""), unknown.stderr)

        let missing = try CLI.run(["describe", "--model", "/nonexistent/net.json"])
        XCTAssertEqual(missing.status, 64, missing.output)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/net.json"), missing.stderr)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("describe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.json")
        try Data(#"{"layers": [{"type": "conv", "in": 1, "out": 4, "kernel": 3}, {"type": "dense"}]}"#.utf8)
            .write(to: bad)
        let badFile = try CLI.run(["describe", "--model", bad.path])
        XCTAssertEqual(badFile.status, 64, badFile.output)
        XCTAssertTrue(badFile.stderr.contains("\(bad.path): layers[1].type: unknown layer type"), badFile.stderr)

        // TinyConvNet's fc takes 400 = 16·5·5 inputs: 32×32 images give 16·6·6 = 576.
        let tiny = try CLI.run(["describe", "--model", "tiny", "--dataset", "cifar10"])
        XCTAssertEqual(tiny.status, 64, tiny.output)
        XCTAssertTrue(
            tiny.stderr.contains("fc: linear 400→10 +bias expects 400 input features but gets 576"), tiny.stderr)

        let dataset = try CLI.run(["describe", "--dataset", "svhn"])
        XCTAssertEqual(dataset.status, 64, dataset.output)
        XCTAssertTrue(dataset.stderr.contains("--dataset"), dataset.stderr)
        XCTAssertTrue(unknown.stdout.isEmpty && badFile.stdout.isEmpty && tiny.stdout.isEmpty)
    }
}
