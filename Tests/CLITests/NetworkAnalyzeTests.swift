import Foundation
import NetIO
import TestSupport
import XCTest

/// `convsvd analyze --model resnet8`: the per-layer analysis of a briefly
/// trained ResNet-8 (BatchNorm folded, every check passing, analysis.json's
/// per-layer fields, its figures and report.html), `run --checkpoint` with its figures, and bad
/// checkpoints (a running variance ≤ 0, a non-finite weight, a missing
/// BatchNorm buffer) refused with exit 2, the tensor named, nothing written.
final class NetworkAnalyzeTests: XCTestCase {
    var mnist: String {
        get throws { try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set").path }
    }

    func testResNet8AnalysisRunAndBadCheckpoints() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let trained = dir.appendingPathComponent("train").path
        let t = try CLI.run([
            "train", "--model", "resnet8", "--device", "host", "--data", try mnist, "--epochs", "1",
            "--train-limit", "256", "--test-limit", "64", "--out", trained,
        ])
        XCTAssertEqual(t.status, 0, t.output)
        let checkpoint = URL(fileURLWithPath: trained).appendingPathComponent("checkpoint.safetensors")

        let out = dir.appendingPathComponent("analysis")
        let r = try CLI.run([
            "analyze", "--model", "resnet8", "--device", "host", "--data", try mnist, "--checkpoint", checkpoint.path,
            "--images", "40", "--sweep-images", "16", "--region-segments", "1", "--region-samples", "64", "--out",
            out.path,
        ])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("phase 9: regions along lines (exact pieces"), r.stdout)
        XCTAssertTrue(r.stdout.contains("layer3.0.downsample.0"), r.stdout)
        XCTAssertTrue(r.stdout.contains("phase 9: "), r.stdout)
        let json = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("analysis.json")))
                as? [String: Any])
        XCTAssertEqual(json["schemaVersion"] as? Int, 6)
        XCTAssertEqual(json["model"] as? String, "resnet8")
        let layers = try XCTUnwrap(json["layers"] as? [[String: Any]])
        XCTAssertEqual(
            layers.compactMap { $0["name"] as? String },
            [
                "conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "layer2.0.conv2",
                "layer2.0.downsample.0", "layer3.0.conv1", "layer3.0.conv2", "layer3.0.downsample.0", "fc",
            ])
        let down = layers[5]
        XCTAssertEqual(down["shape"] as? [Int], [32, 16, 1, 1])
        XCTAssertEqual(down["stride"] as? Int, 2)
        XCTAssertEqual(down["padding"] as? Int, 0)
        XCTAssertEqual(down["batchNorm"] as? String, "layer2.0.downsample.1")
        XCTAssertEqual((down["sigma"] as? [Double])?.count, 16)
        XCTAssertEqual(layers[3]["stride"] as? Int, 2)
        XCTAssertEqual(layers[3]["padding"] as? Int, 1)
        let checks = try XCTUnwrap(json["checks"] as? [[String: Any]])
        XCTAssertTrue(checks.contains { $0["id"] as? String == "folding.logits" && $0["passed"] as? Bool == true })
        XCTAssertTrue(checks.allSatisfy { $0["passed"] as? Bool == true })
        // Phase 9's regions along lines: one same-class and one different-class segment, both sampled.
        let regions = try XCTUnwrap(json["regions"] as? [String: Any])
        XCTAssertEqual((regions["segments"] as? [Any])?.count, 2)
        XCTAssertEqual((regions["sampled"] as? [[String: Any]])?.map { $0["samples"] as? Int }, [64, 64])
        XCTAssertTrue(checks.contains { $0["id"] as? String == "regions.sampled-changes-bracketed" })
        XCTAssertNotNil(regions["trace"], "the segment the figures draw")
        // analyze draws the per-layer figures, phase 9's among them, and writes report.html.
        for file in [
            "report.html", "figures/layer_spectra.png", "figures/operators_by_depth.png", "figures/segment_pieces.png",
            "figures/segment_logits.png",
        ] {
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), "\(file) missing")
        }
        let analyzeHTML = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(analyzeHTML.contains("<section id=\"regions\">"))
        try checkReportRedraws(out, in: dir)

        // `run --checkpoint`: the same analysis and the per-layer figures.
        let runOut = dir.appendingPathComponent("run")
        let run = try CLI.run([
            "run", "--model", "resnet8", "--device", "host", "--data", try mnist, "--checkpoint", checkpoint.path,
            "--images", "20", "--sweep-images", "8", "--out", runOut.path,
        ])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.stdout.contains("phase 9: regions along lines (exact pieces"), run.stdout)
        for file in [
            "analysis.json", "figures/layer_spectra.png", "figures/ranks_by_depth.png", "figures/layer_truncation.png",
            "figures/layer_masks.png", "figures/truncation_heatmap.png", "figures/operators_by_depth.png",
            "figures/segment_pieces.png", "figures/segment_logits.png",
        ] {
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: runOut.appendingPathComponent(file).path), "\(file) missing")
        }
        // report.html: a foldable section per layer with its own checks, and
        // the figures embedded.
        let html = try String(contentsOf: runOut.appendingPathComponent("report.html"), encoding: .utf8)
        let runJSON = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: runOut.appendingPathComponent("analysis.json")))
                as? [String: Any])
        for layer in try XCTUnwrap(runJSON["layers"] as? [[String: Any]]) {
            let name = try XCTUnwrap(layer["name"] as? String)
            XCTAssertTrue(html.contains("<details id=\"layer-\(name)\">"), "no section for \(name)")
        }
        XCTAssertTrue(html.contains("layer1.0.conv1.data-aware.beats-truncation"), "a layer's own checks")
        XCTAssertEqual(html.components(separatedBy: "data:image/png;base64,").count - 1, 9, "9 figures embedded")
        XCTAssertTrue(html.contains("class=\"banner pass\""))

        // A running variance ≤ 0: exit 2, the tensor named, no analysis.json.
        var file = try SafetensorsFile.read(from: checkpoint)
        let i = try XCTUnwrap(file.tensors.firstIndex { $0.name == "layer1.0.bn2.running_var" })
        var values = try file.tensors[i].floats()
        values[3] = -0.5
        file.tensors[i] = SafetensorsTensor(name: file.tensors[i].name, shape: file.tensors[i].shape, floats: values)
        let bad = dir.appendingPathComponent("bad.safetensors")
        try file.write(to: bad)
        let badOut = dir.appendingPathComponent("bad-analysis")
        let b = try CLI.run([
            "analyze", "--model", "resnet8", "--device", "host", "--data", try mnist, "--checkpoint", bad.path,
            "--out", badOut.path,
        ])
        XCTAssertEqual(b.status, 2, b.output)
        XCTAssertTrue(b.stderr.contains("layer1.0.bn2.running_var"), b.stderr)
        XCTAssertTrue(b.stderr.contains("channel 3"), b.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: badOut.path))

        // More columns than a dense float64 operator fits: a usage error, nothing written.
        let tooMany = try CLI.run([
            "analyze", "--model", "resnet8", "--device", "host", "--data", try mnist, "--checkpoint", bad.path,
            "--dense-operator-columns", "8193", "--out", badOut.path,
        ])
        XCTAssertEqual(tooMany.status, 64, tooMany.output)
        XCTAssertTrue(tooMany.stderr.contains("--dense-operator-columns must be in 0…8192 (got 8193)"), tooMany.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: badOut.path))

        // A non-finite weight: exit 2, the tensor named, nothing written.
        var nonFinite = try SafetensorsFile.read(from: checkpoint)
        let w = try XCTUnwrap(nonFinite.tensors.firstIndex { $0.name == "layer2.0.conv1.weight" })
        var weights = try nonFinite.tensors[w].floats()
        weights[10] = .infinity
        nonFinite.tensors[w] = SafetensorsTensor(
            name: nonFinite.tensors[w].name, shape: nonFinite.tensors[w].shape, floats: weights)
        let infinite = dir.appendingPathComponent("infinite.safetensors")
        try nonFinite.write(to: infinite)
        let n = try CLI.run([
            "analyze", "--model", "resnet8", "--device", "host", "--data", try mnist, "--checkpoint", infinite.path,
            "--out", badOut.path,
        ])
        XCTAssertEqual(n.status, 2, n.output)
        XCTAssertTrue(n.stderr.contains("layer2.0.conv1.weight"), n.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: badOut.path))

        // A checkpoint without a BatchNorm buffer: exit 2, the tensor named, nothing written.
        var noBuffer = try SafetensorsFile.read(from: checkpoint)
        noBuffer.tensors.removeAll { $0.name == "layer3.0.downsample.1.running_mean" }
        let missing = dir.appendingPathComponent("missing.safetensors")
        try noBuffer.write(to: missing)
        let m = try CLI.run([
            "analyze", "--model", "resnet8", "--device", "host", "--data", try mnist, "--checkpoint", missing.path,
            "--out", badOut.path,
        ])
        XCTAssertEqual(m.status, 2, m.output)
        XCTAssertTrue(m.stderr.contains("layer3.0.downsample.1.running_mean"), m.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: badOut.path))
    }

    /// `convsvd report`: the figures and report.html of `analysis`'s
    /// analysis.json drawn anew elsewhere (SVG this time) with the device and
    /// the analysing command the file records, analysis.json untouched; a
    /// file that is not the per-layer analysis, one of a later schema and a
    /// missing one refused with exit 2 and nothing written.
    func checkReportRedraws(_ analysis: URL, in dir: URL) throws {
        let json = analysis.appendingPathComponent("analysis.json")
        let before = try Data(contentsOf: json)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: before) as? [String: Any])
        XCTAssertEqual(object["schemaVersion"] as? Int, 6)
        let device = try XCTUnwrap(object["device"] as? String)
        let command = try XCTUnwrap(object["command"] as? String)
        XCTAssertTrue(command.hasPrefix("convsvd analyze --model resnet8"), command)

        let redrawn = dir.appendingPathComponent("redrawn")
        let r = try CLI.run(["report", "--analysis", json.path, "--out", redrawn.path, "--format", "svg"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("resnet8"), r.stdout)
        for name in [
            "layer_spectra", "spectra_by_depth", "ranks_by_depth", "layer_truncation", "truncation_heatmap",
            "layer_masks", "operators_by_depth", "segment_pieces", "segment_logits",
        ] {
            let svg = redrawn.appendingPathComponent("figures/\(name).svg")
            XCTAssertTrue(try String(contentsOf: svg, encoding: .utf8).contains("<svg"), "\(name).svg")
        }
        let html = try String(contentsOf: redrawn.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(html.contains(device), "the recorded device")
        XCTAssertTrue(html.contains(command), "the recorded command")
        XCTAssertTrue(html.contains("<details id=\"layer-layer2.0.downsample.0\">"))
        XCTAssertEqual(try Data(contentsOf: json), before, "analysis.json is not rewritten")

        let tiny = dir.appendingPathComponent("tiny-analysis.json")
        try Data(#"{"schemaVersion": 3, "testAccuracy": 0.98, "spectra": []}"#.utf8).write(to: tiny)
        var later = object
        later["schemaVersion"] = 7
        let laterFile = dir.appendingPathComponent("later-analysis.json")
        try JSONSerialization.data(withJSONObject: later).write(to: laterFile)
        for (file, message) in [
            (tiny, "run --checkpoint"), (laterFile, "schema 7"),
            (dir.appendingPathComponent("missing.json"), "cannot read"),
        ] {
            let refusedOut = dir.appendingPathComponent("refused")
            let b = try CLI.run(["report", "--analysis", file.path, "--out", refusedOut.path])
            XCTAssertEqual(b.status, 2, b.output)
            XCTAssertTrue(b.stderr.contains(file.path) && b.stderr.contains(message), b.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: refusedOut.path), "nothing written")
        }
    }
}
