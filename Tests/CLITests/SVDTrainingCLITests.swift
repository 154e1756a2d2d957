import Foundation
import NetIO
import TestSupport
import XCTest

/// `convsvd train --parameterization svd` and the commands that read its
/// checkpoint: the factors' names in the file, the epoch line and
/// metrics.json, `export --weights-only` (plain weights that evaluate as
/// the SVD checkpoint does: accuracy equal, mean loss within 1e-4),
/// `analyze`'s σ check, and the refusals (usage 64; a non-orthonormal
/// factor 2, naming it, nothing written).
final class SVDTrainingCLITests: XCTestCase {
    var mnist: String {
        get throws { try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set").path }
    }

    func temporaryDirectory() throws -> URL {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-svd")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testTrainExportEvaluateAnalyzeAndRefuse() throws {
        let dir = try temporaryDirectory()
        let out = dir.appendingPathComponent("run")
        let r = try CLI.run([
            "train", "--device", "host", "--data", try mnist, "--epochs", "2", "--train-limit", "640",
            "--test-limit", "500", "--parameterization", "svd", "--sigma-l1", "1e-3", "--out", out.path,
        ])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stderr.contains("parameterization: svd (conv1, conv2 as U·diag(σ)·Vᵀ)"), r.stderr)
        XCTAssertTrue(r.stdout.contains("ranks conv1 "), r.stdout)
        let metrics = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("metrics.json")))
                as? [String: Any])
        let epochs = try XCTUnwrap(metrics["epochs"] as? [[String: Any]])
        XCTAssertEqual(epochs.count, 2)
        for epoch in epochs {
            let layers = try XCTUnwrap((epoch["svd"] as? [String: Any])?["layers"] as? [[String: Any]])
            XCTAssertEqual(layers.compactMap { $0["name"] as? String }, ["conv1", "conv2"])
            for layer in layers {
                XCTAssertLessThanOrEqual(try XCTUnwrap(layer["u_orthogonality_error"] as? Double), 1e-5)
                XCTAssertLessThanOrEqual(try XCTUnwrap(layer["v_orthogonality_error"] as? Double), 1e-5)
            }
        }
        let checkpoint = out.appendingPathComponent("checkpoint.safetensors")
        let file = try SafetensorsFile.read(from: checkpoint)
        XCTAssertEqual(
            file.tensors.map(\.name).filter { !$0.hasPrefix("optimizer.") },
            ["conv1.U", "conv1.S", "conv1.V", "conv2.U", "conv2.S", "conv2.V", "fc.weight", "fc.bias"])

        // Plain weights: the names and shapes of TinyConvNet's state_dict.
        let plain = dir.appendingPathComponent("plain.safetensors")
        let e = try CLI.run(["export", "--checkpoint", checkpoint.path, "--weights-only", "--out", plain.path])
        XCTAssertEqual(e.status, 0, e.output)
        let exported = try SafetensorsFile.read(from: plain)
        XCTAssertEqual(exported.tensors.map(\.name), ["conv1.weight", "conv2.weight", "fc.weight", "fc.bias"])
        XCTAssertEqual(exported.tensors.map(\.shape), [[8, 1, 3, 3], [16, 8, 3, 3], [10, 400], [10]])

        func evaluate(_ url: URL) throws -> (accuracy: Double, loss: Double) {
            let r = try CLI.run([
                "evaluate", "--device", "host", "--data", try mnist, "--checkpoint", url.path, "--json",
            ])
            XCTAssertEqual(r.status, 0, r.output)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return (try XCTUnwrap(json["accuracy"] as? Double), try XCTUnwrap(json["mean_loss"] as? Double))
        }
        let svd = try evaluate(checkpoint)
        let exportedResult = try evaluate(plain)
        XCTAssertEqual(svd.accuracy, exportedResult.accuracy)
        XCTAssertEqual(svd.loss, exportedResult.loss, accuracy: 1e-4)
        XCTAssertGreaterThan(svd.accuracy, 0.5)

        let a = try CLI.run([
            "analyze", "--device", "host", "--data", try mnist, "--checkpoint", checkpoint.path, "--no-sweep",
            "--out", dir.appendingPathComponent("analysis").path,
        ])
        XCTAssertEqual(a.status, 0, a.output)
        XCTAssertTrue(a.stdout.contains("stored σ: conv1 "), a.stdout)
        XCTAssertTrue(a.stdout.contains("stored σ: conv2 "), a.stdout)
        XCTAssertFalse(a.stdout.contains("FAIL]"), a.stdout)
        let analysis = try XCTUnwrap(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: dir.appendingPathComponent("analysis/analysis.json"))) as? [String: Any])
        let ids = try XCTUnwrap(analysis["checks"] as? [[String: Any]]).compactMap { $0["id"] as? String }
        XCTAssertEqual(Set(ids).count, ids.count, "check ids are unique")
        XCTAssertTrue(ids.contains("conv1.stored-sigma") && ids.contains("conv2.stored-sigma"), "\(ids)")

        // conv2.V moved off the manifold: refused by name, exit 2, nothing written.
        var tensors = file.tensors
        let v = try XCTUnwrap(tensors.firstIndex { $0.name == "conv2.V" })
        var values = try tensors[v].floats()
        values[0] += 0.05
        tensors[v] = SafetensorsTensor(name: "conv2.V", shape: tensors[v].shape, floats: values)
        let bad = dir.appendingPathComponent("bad.safetensors")
        try SafetensorsFile(tensors: tensors, metadata: file.metadata).write(to: bad)
        let target = dir.appendingPathComponent("never.safetensors")
        for arguments in [
            ["export", "--checkpoint", bad.path, "--weights-only", "--out", target.path],
            ["evaluate", "--device", "host", "--data", try mnist, "--checkpoint", bad.path],
            [
                "analyze", "--device", "host", "--data", try mnist, "--checkpoint", bad.path, "--out",
                dir.appendingPathComponent("never").path,
            ],
            [
                "train", "--device", "host", "--data", try mnist, "--epochs", "3", "--train-limit", "640",
                "--test-limit", "500", "--parameterization", "svd", "--sigma-l1", "1e-3", "--resume", "--out",
                try copyAsCheckpoint(bad, in: dir).path,
            ],
        ] {
            let r = try CLI.run(arguments)
            XCTAssertEqual(r.status, 2, "\(arguments[0]): \(r.output)")
            XCTAssertTrue(r.stderr.contains("conv2.V"), r.stderr)
            XCTAssertTrue(r.stderr.contains("orthonormal"), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: target.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("never").path))
    }

    /// `bad` as the checkpoint of a fresh output folder (for --resume).
    func copyAsCheckpoint(_ bad: URL, in dir: URL) throws -> URL {
        let folder = dir.appendingPathComponent("resume-bad")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let target = folder.appendingPathComponent("checkpoint.safetensors")
        if !FileManager.default.fileExists(atPath: target.path) {
            try FileManager.default.copyItem(at: bad, to: target)
        }
        return folder
    }

    /// A ResNet (NetworkPlan) trains in SVD coordinates too: every conv
    /// weight (shortcuts included) as factors, BatchNorm's parameters plain.
    func testResNet8TrainsInSVDCoordinates() throws {
        let dir = try temporaryDirectory()
        let out = dir.appendingPathComponent("resnet8")
        let r = try CLI.run([
            "train", "--model", "resnet8", "--device", "host", "--data", try mnist, "--epochs", "1",
            "--train-limit", "128", "--test-limit", "100", "--parameterization", "svd", "--out", out.path,
        ])
        XCTAssertEqual(r.status, 0, r.output)
        let names = try SafetensorsFile.read(from: out.appendingPathComponent("checkpoint.safetensors")).tensors.map(
            \.name)
        XCTAssertTrue(names.contains("conv1.U") && names.contains("conv1.S") && names.contains("conv1.V"), "\(names)")
        XCTAssertFalse(names.contains { $0.hasSuffix(".weight") && $0.contains("conv") }, "\(names)")
        XCTAssertTrue(names.contains("layer2.0.downsample.0.U"), "\(names)")
        XCTAssertTrue(names.contains("bn1.weight"), "\(names)")
        let e = try CLI.run([
            "evaluate", "--model", "resnet8", "--device", "host", "--data", try mnist, "--checkpoint",
            out.appendingPathComponent("checkpoint.safetensors").path,
        ])
        XCTAssertEqual(e.status, 0, e.output)
    }

    /// The options' usage errors (exit 64, no --out made).
    func testOptionsAreCheckedBeforeAnythingIsWritten() throws {
        let dir = try temporaryDirectory()
        let out = dir.appendingPathComponent("never")
        for (arguments, message) in [
            (["train", "--parameterization", "qr"], "--parameterization must be plain or svd"),
            (["train", "--sigma-l1", "0.1"], "apply to --parameterization svd"),
            (["train", "--parameterization", "svd", "--sigma-l1=-1"], "--sigma-l1 must be 0 or more"),
            (["run", "--parameterization", "svd"], "applies to `convsvd train` only"),
        ] {
            let r = try CLI.run(arguments + ["--device", "host", "--data", try mnist, "--out", out.path])
            XCTAssertEqual(r.status, 64, "\(arguments): \(r.output)")
            XCTAssertTrue(r.stderr.contains(message), "\(arguments): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(arguments) created --out")
        }
    }
}
