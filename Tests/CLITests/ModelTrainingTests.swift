import Foundation
import NetIO
import TestSupport
import XCTest

/// `convsvd train --model` and `evaluate --model` on a ResNet and a model
/// file: the recipe printed and recorded, the checkpoint under PyTorch's
/// names, evaluation of that checkpoint, and wrong models refused.
final class ModelTrainingTests: XCTestCase {
    var mnist: String {
        get throws { try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set").path }
    }

    /// Two steps of ResNet-8 on the host: the recipe's defaults (SGD with
    /// Nesterov momentum and weight decay, one-cycle, batch 128, crops on
    /// MNIST) are printed and land in metrics.json; the checkpoint holds
    /// torchvision's tensor names with the BatchNorm statistics; `evaluate`
    /// reads it back and reports the same test accuracy the run recorded.
    func testResNet8TrainsAndEvaluates() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("r8").path
        let r = try CLI.run([
            "train", "--model", "resnet8", "--device", "host", "--data", try mnist, "--epochs", "1",
            "--train-limit", "256", "--test-limit", "200", "--out", out,
        ])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stderr.contains("model: resnet8, 77754 parameters"), r.stderr)
        XCTAssertTrue(
            r.stderr.contains("sgd(momentum=0.9, nesterov, weight decay=0.0005), lr 0.2 (onecycle), batch 128"),
            r.stderr)
        XCTAssertTrue(r.stderr.contains("augmentation crop"), r.stderr)

        let metrics = try XCTUnwrap(
            JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("metrics.json")))
                as? [String: Any])
        let settings = try XCTUnwrap(metrics["settings"] as? [String: Any])
        XCTAssertEqual(settings["model"] as? String, "resnet8")
        XCTAssertEqual(settings["augmentation"] as? String, "crop")
        XCTAssertEqual(settings["schedule"] as? String, "onecycle")
        let epochs = try XCTUnwrap(metrics["epochs"] as? [[String: Any]])
        let recorded = try XCTUnwrap(epochs.first?["test_accuracy"] as? Double)

        let file = try SafetensorsFile.read(
            from: URL(fileURLWithPath: out).appendingPathComponent("checkpoint.safetensors"))
        let names = Set(file.tensors.map(\.name))
        for name in [
            "conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight", "layer3.0.bn2.weight", "fc.bias",
            "optimizer.velocity.layer1.0.conv1.weight",
        ] {
            XCTAssertTrue(names.contains(name), "\(name) missing from \(names.sorted())")
        }
        XCTAssertEqual(file.metadata["format"], "convsvd resnet8 checkpoint")
        // PyTorch's num_batches_tracked: an I64 scalar per BatchNorm, two training steps.
        XCTAssertEqual(try file.tensor("bn1.num_batches_tracked").integers(), [2])
        XCTAssertEqual(try file.tensor("layer3.0.downsample.1.num_batches_tracked").integers(), [2])

        let e = try CLI.run([
            "evaluate", "--model", "resnet8", "--device", "host", "--data", try mnist, "--checkpoint",
            URL(fileURLWithPath: out).appendingPathComponent("checkpoint.safetensors").path, "--json",
        ])
        XCTAssertEqual(e.status, 0, e.output)
        let result = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(result["count"] as? Int, 10_000)
        // The run evaluated the first 200 test images; evaluate takes all 10,000.
        XCTAssertNotNil(result["accuracy"] as? Double)
        XCTAssertTrue(recorded.isFinite)

        // The weights alone, for PyTorch's strict load: the state_dict and nothing else.
        let exported = dir.appendingPathComponent("resnet8-weights.safetensors")
        let x = try CLI.run([
            "export", "--model", "resnet8", "--checkpoint",
            URL(fileURLWithPath: out).appendingPathComponent("checkpoint.safetensors").path, "--weights-only", "--out",
            exported.path,
        ])
        XCTAssertEqual(x.status, 0, x.output)
        let weights = try SafetensorsFile.read(from: exported)
        XCTAssertFalse(weights.tensors.contains { $0.name.hasPrefix("optimizer.") })
        XCTAssertEqual(
            weights.tensors.count, 9 + 9 * 5 + 2, "9 convs, 9 BatchNorms of 5 tensors, fc weight and bias")
        // The float tensors in state_dict order, then the I64 counters.
        XCTAssertEqual(
            Array(weights.tensors.prefix(6).map(\.name)),
            ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "layer1.0.conv1.weight"])
        XCTAssertEqual(try weights.tensor("layer2.0.downsample.1.num_batches_tracked").integers(), [2])
        XCTAssertEqual(weights.metadata["format"], "convsvd resnet8 weights (a PyTorch state dict)")

        // The same checkpoint is not TinyConvNet's: the first tensor that does not fit is named.
        let tiny = try CLI.run([
            "evaluate", "--device", "host", "--data", try mnist, "--checkpoint",
            URL(fileURLWithPath: out).appendingPathComponent("checkpoint.safetensors").path,
        ])
        XCTAssertNotEqual(tiny.status, 0)
        XCTAssertTrue(tiny.stderr.contains("conv1.weight"), tiny.stderr)
    }

    /// The shipped example model file trains on PoCL with the options given over the recipe.
    func testTheExampleModelFileTrainsOnOpenCL() throws {
        _ = try openCLTestDeviceInfos()
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/examples/small-resnet.json")
        let out = dir.appendingPathComponent("out").path
        let r = try CLI.run([
            "train", "--model", model.path, "--device", "opencl:0:0", "--data", try mnist, "--epochs", "1",
            "--batch-size", "32", "--lr", "0.05", "--augment", "crop+flip", "--train-limit", "96",
            "--test-limit", "50", "--out", out,
        ])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stderr.contains("model: small-resnet"), r.stderr)
        XCTAssertTrue(r.stderr.contains("lr 0.05 (onecycle), batch 32, 1 epochs, augmentation crop+flip"), r.stderr)
        let file = try SafetensorsFile.read(
            from: URL(fileURLWithPath: out).appendingPathComponent("checkpoint.safetensors"))
        XCTAssertEqual(try file.tensor("bn1.num_batches_tracked").integers(), [3])
        XCTAssertTrue(file.tensors.contains { $0.name == "layer2.0.downsample.0.weight" })
    }

    /// Models that do not exist or do not fit the data: exit 64, nothing written.
    func testBadModelsAreUsageErrors() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        for (arguments, message) in [
            (["--model", "resnet9"], "resnet9"),
            (["--model", dir.appendingPathComponent("missing.json").path], "missing.json"),
            (["--augment", "rotate"], "--augment"),
        ] {
            let r = try CLI.run(
                ["train", "--device", "host", "--data", try mnist, "--out", out.path] + arguments)
            XCTAssertEqual(r.status, 64, "\(arguments): \(r.output)")
            XCTAssertTrue(r.stderr.contains(message), "\(arguments): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(arguments) created --out")
        }
    }
}
