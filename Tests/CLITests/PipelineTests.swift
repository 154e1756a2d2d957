import Foundation
import NetIO
import TestSupport
import XCTest

/// The tool end to end on real MNIST subsets: the pipeline, interruption
/// and resume, divergence, corrupt inputs, and the benchmark's JSON.
final class PipelineTests: XCTestCase {
    var mnist: String { TestEnvironment.mnistDirectory?.path ?? "/nonexistent" }

    func temporaryDirectory() throws -> URL {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-cli")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// `convsvd run --epochs 1` on a subset: every output exists and the run
    /// exits 0 because every check passed.
    func testRunOneEpochOnASubsetProducesEveryOutput() throws {
        let out = try temporaryDirectory()
        let r = try CLI.run([
            "run", "--epochs", "1", "--train-limit", "2000", "--test-limit", "1000", "--no-sweep",
            "--data", mnist, "--out", out.path,
        ])
        XCTAssertEqual(r.status, 0, r.output)
        for file in ["checkpoint.safetensors", "metrics.json", "metrics.csv", "analysis.json", "report.html"] {
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), "missing \(file)")
        }
        let figures = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("figures").path)
        XCTAssertGreaterThanOrEqual(figures.filter { $0.hasSuffix(".png") }.count, 10, "\(figures)")
        XCTAssertTrue(r.stdout.contains("checks passed"), r.stdout)
        let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("data:image/png;base64,"))
        let metrics =
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("metrics.json")))
            as? [String: Any]
        let epochs = try XCTUnwrap(metrics?["epochs"] as? [[String: Any]])
        XCTAssertEqual(epochs.count, 1)
        for key in ["epoch", "loss", "train_accuracy", "test_accuracy", "seconds", "images_per_second"] {
            XCTAssertNotNil(epochs[0][key], "metrics.json lacks \(key)")
        }

        // scripts/results-table reads this analysis.json (no sweep, no run-info.json) as `convsvd run` writes it.
        let table = try ResultsTableScriptTests.script(["table", out.path])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(
            table.stdout.contains("| analysis without the sweep / accuracy sweep |")
                && table.stdout.contains(" s / not run |"), table.stdout)

        // `evaluate` reads the written checkpoint back: its confusion matrix
        // covers the whole test set and its diagonal is the correct count.
        let evaluation = try CLI.run([
            "evaluate", "--checkpoint", out.appendingPathComponent("checkpoint.safetensors").path,
            "--data", mnist, "--json",
        ])
        XCTAssertEqual(evaluation.status, 0, evaluation.output)
        let result = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(evaluation.stdout.utf8)) as? [String: Any])
        let confusion = try XCTUnwrap(result["confusion_matrix"] as? [[Int]])
        XCTAssertEqual(confusion.flatMap { $0 }.reduce(0, +), 10_000)
        let diagonal = (0..<10).map { confusion[$0][$0] }.reduce(0, +)
        XCTAssertEqual(result["correct"] as? Int, diagonal)
        // 31 steps on 2,000 images reach about 73%: far from chance (10%).
        XCTAssertGreaterThan(try XCTUnwrap(result["accuracy"] as? Double), 0.5)
    }

    /// SIGKILL in the middle of epoch 2, then `--resume`: the final
    /// checkpoint is bit-identical to an uninterrupted run's (host device,
    /// same seed).
    func testKilledRunResumesToTheSameWeights() throws {
        let straight = try temporaryDirectory()
        let killed = try temporaryDirectory()
        // 30,000 images an epoch: at ~25,000 images/s the kill 0.1 s after epoch 1's
        // files appear lands well inside epoch 2.
        let common = [
            "train", "--device", "host", "--epochs", "3", "--train-limit", "30000", "--test-limit", "200",
            "--seed", "4", "--data", mnist,
        ]
        let reference = try CLI.run(common + ["--out", straight.path])
        XCTAssertEqual(reference.status, 0, reference.output)

        let (process, _, _) = try CLI.start(common + ["--out", killed.path])
        let metrics = killed.appendingPathComponent("metrics.json")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, !FileManager.default.fileExists(atPath: metrics.path) { usleep(5_000) }
        usleep(100_000)  // into epoch 2
        XCTAssertTrue(process.isRunning, "the run ended before it could be killed; use more images")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        let partial = try Checkpoint.read(from: killed.appendingPathComponent("checkpoint.safetensors"))
        XCTAssertEqual(partial.metadata["epoch"], "1", "the killed run keeps its last finished epoch")

        let resumed = try CLI.run(common + ["--out", killed.path, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.stderr.contains("1 epoch(s) already finished"), resumed.stderr)
        let a = try Checkpoint.read(from: straight.appendingPathComponent("checkpoint.safetensors"))
        let b = try Checkpoint.read(from: killed.appendingPathComponent("checkpoint.safetensors"))
        XCTAssertEqual(a.weights, b.weights, "resumed weights must equal the uninterrupted run's bit for bit")
        XCTAssertEqual(a.optimizerState, b.optimizerState)
    }

    /// Ctrl-C stops at the end of the current step, exits 130, and leaves the
    /// last finished epoch's files intact.
    func testInterruptKeepsTheLastFinishedEpoch() throws {
        let out = try temporaryDirectory()
        let (process, _, stderr) = try CLI.start([
            "train", "--device", "host", "--epochs", "50", "--train-limit", "2000",
            "--test-limit", "200", "--data", mnist, "--out", out.path,
        ])
        let metrics = out.appendingPathComponent("metrics.json")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, !FileManager.default.fileExists(atPath: metrics.path) { usleep(20_000) }
        let saved = try Data(contentsOf: out.appendingPathComponent("checkpoint.safetensors"))
        let savedMetrics = try Data(contentsOf: metrics)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 130, message)
        XCTAssertTrue(message.contains("interrupted at epoch"), message)
        let after = try Checkpoint.read(from: out.appendingPathComponent("checkpoint.safetensors"))
        let epochsSaved = Int(after.metadata["epoch"] ?? "") ?? 0
        XCTAssertGreaterThanOrEqual(epochsSaved, 1)
        if epochsSaved == 1 {
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("checkpoint.safetensors")), saved)
            XCTAssertEqual(try Data(contentsOf: metrics), savedMetrics)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: out.path)
            .filter {
                !["checkpoint.safetensors", "metrics.json", "metrics.csv", OutputFolderLock.fileName].contains($0)
            }
        XCTAssertEqual(leftovers, [], "no partial files")
    }

    func testDivergingRunExitsWithItsOwnCodeAndNamesTheStep() throws {
        let out = try temporaryDirectory()
        let r = try CLI.run([
            "train", "--device", "host", "--epochs", "2", "--lr", "1e38", "--optimizer", "sgd",
            "--train-limit", "3000", "--test-limit", "100", "--data", mnist, "--out", out.path,
        ])
        XCTAssertEqual(r.status, 4, r.output)
        XCTAssertTrue(r.stderr.contains("epoch 1, step"), r.stderr)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint.safetensors").path),
            "a run that diverged in its first epoch has no good checkpoint to write")
    }

    func testAnalyzeRefusesATruncatedCheckpointAndKeepsEarlierOutputs() throws {
        let out = try temporaryDirectory()
        let previous = Data("{\"earlier\": true}".utf8)
        try previous.write(to: out.appendingPathComponent("analysis.json"))
        let truncated = out.appendingPathComponent("truncated.safetensors")
        let weights = TinyConvNetWeights(
            conv1: [Float](repeating: 0.1, count: 72), conv2: [Float](repeating: 0.1, count: 1152),
            fcWeight: [Float](repeating: 0.1, count: 4000), fcBias: [Float](repeating: 0, count: 10))
        let whole = try Checkpoint(weights: weights).safetensors.serialized()
        try whole.prefix(whole.count - 100).write(to: truncated)
        let r = try CLI.run(["analyze", "--checkpoint", truncated.path, "--data", mnist, "--out", out.path])
        XCTAssertEqual(r.status, 2, r.output)
        XCTAssertTrue(r.stderr.contains("truncated.safetensors"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("analysis.json")), previous)
    }

    func testAnalyzeRefusesNonFiniteWeightsNamingTheTensor() throws {
        let out = try temporaryDirectory()
        var conv2 = [Float](repeating: 0.1, count: 1152)
        conv2[17] = .nan
        let weights = TinyConvNetWeights(
            conv1: [Float](repeating: 0.1, count: 72), conv2: conv2,
            fcWeight: [Float](repeating: 0.1, count: 4000), fcBias: [Float](repeating: 0, count: 10))
        let file = out.appendingPathComponent("nan.safetensors")
        try Checkpoint(weights: weights).write(to: file)
        let r = try CLI.run(["analyze", "--checkpoint", file.path, "--data", mnist, "--out", out.path])
        XCTAssertEqual(r.status, 2, r.output)
        XCTAssertTrue(r.stderr.contains("conv2.weight"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("analysis.json").path))
    }

    /// bench in quick mode: well-formed JSON with every operation for every
    /// device. No time is asserted.
    func testQuickBenchmarkJSONListsEveryOperationOnEveryDevice() throws {
        let r = try CLI.run(["bench", "--quick", "--json"])
        XCTAssertEqual(r.status, 0, r.output)
        let reports = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        let devices = Set(reports.compactMap { ($0["device"] as? [String: Any])?["selector"] as? String })
        XCTAssertTrue(devices.contains("host"))
        if ProcessInfo.processInfo.environment["CONVSVD_REQUIRE_OPENCL"] == "1" {
            XCTAssertTrue(devices.contains { $0.hasPrefix("opencl:") }, "\(devices)")
        }
        let expected: Set<String> = [
            "gemm.conv1.forward", "gemm.conv2.forward", "gemm.conv2.weight_grad", "gemm.conv2.column_grad",
            "gemm.conv1.weight_grad", "gemm.fc.forward", "conv1.im2col", "conv2.im2col", "conv1.col2im", "conv2.col2im",
            "conv1.forward", "conv2.forward", "conv1.backward_data", "conv2.backward_data", "conv1.backward_weight",
            "conv2.backward_weight", "conv1.forward_pool", "conv2.forward_pool", "conv1.backward_weight_pooled",
            "conv2.backward_weight_pooled", "conv1.backward_data_pooled", "conv2.backward_data_pooled", "relu1.forward",
            "relu1.backward", "relu2.forward", "relu2.backward",
            "pool1.forward", "pool1.backward", "pool2.forward", "pool2.backward", "fc.forward", "fc.backward",
            "softmax_cross_entropy", "adam.update", "step",
        ]
        for report in reports {
            let operations = try XCTUnwrap(report["operations"] as? [[String: Any]])
            let names = Set(operations.compactMap { $0["operation"] as? String })
            XCTAssertEqual(names, expected)
            for op in operations {
                let median = try XCTUnwrap(op["median_seconds"] as? Double)
                XCTAssertTrue(median > 0 && median.isFinite, "\(op)")
            }
            XCTAssertNotNil(report["step_breakdown"])
            // A step launches work (kernels, or hand-offs to the host's
            // workers); the host waits once per block of 50 steps, for the
            // block's results (StepResultLog), and nowhere else.
            XCTAssertGreaterThan(try XCTUnwrap(report["launchesPerStep"] as? Double), 0, "\(report["device"] ?? "")")
            XCTAssertEqual(
                try XCTUnwrap(report["hostWaitsPerStep"] as? Double), 1.0 / 50, "\(report["device"] ?? "")")
            let structure = try XCTUnwrap(report["step_structure"] as? [String: Any])
            XCTAssertEqual(structure["steps_per_read"] as? Int, 50)
            XCTAssertGreaterThan(try XCTUnwrap(structure["enqueue_seconds_per_step"] as? Double), 0)
            // Every step operation counts its bytes; OpenCL devices carry the
            // GPU model: the step is the longer of the launches and the GPU's parts.
            let step = try XCTUnwrap(operations.first { $0["operation"] as? String == "step" })
            XCTAssertGreaterThan(try XCTUnwrap(step["bytes"] as? Double), 0)
            let kind = (report["device"] as? [String: Any])?["kind"] as? String
            if kind == "host" {
                XCTAssertNil(report["gpu_model"])
            } else {
                let model = try XCTUnwrap(report["gpu_model"] as? [String: Any])
                let launch = try XCTUnwrap(model["launch_seconds"] as? Double)
                let launches = try XCTUnwrap(model["launches"] as? Int)
                let enqueue = try XCTUnwrap(model["enqueue_seconds"] as? Double)
                XCTAssertEqual(enqueue, Double(launches) * launch, accuracy: 1e-15)
                let parts = try XCTUnwrap(model["operations"] as? [[String: Any]])
                var device = 0.0
                for part in parts { device += try XCTUnwrap(part["seconds"] as? Double) }
                XCTAssertEqual(try XCTUnwrap(model["device_seconds"] as? Double), device, accuracy: 1e-15)
                let sum = max(enqueue, device)
                XCTAssertEqual(try XCTUnwrap(model["step_seconds"] as? Double), sum, accuracy: 1e-12)
            }
        }
    }
}
