import Foundation
import TestSupport
import XCTest

/// `convsvd study` on tiny members (host device, 300 training images, one
/// epoch): the outputs, the summary against the members' own analysis.json,
/// and resumability (a finished member is not redone), including members
/// run side by side in child processes (`--device` twice).
final class StudyCommandTests: XCTestCase {
    var mnist: String { TestEnvironment.mnistDirectory?.path ?? "/nonexistent" }

    func testStudySummarisesTheMembersAndDoesNotRedoFinishedOnes() throws {
        let out = try TestEnvironment.makeTemporaryDirectory("convsvd-study")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        let common = [
            "study", "--epochs", "1", "--train-limit", "300", "--test-limit", "200", "--data", mnist,
            "--out", out.path,
        ]
        let first = try CLI.run(common + ["--seeds", "0..1", "--device", "host"])
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertTrue(first.stderr.contains("study: 2/2 members done"), first.stderr)
        for file in [
            "study.json", "study.html", "figures/study_singular_values.png", "figures/study_accuracy_vs_rank.png",
        ] {
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), "missing \(file)")
        }

        // The summary's test accuracy against the members' analysis.json, by hand.
        func testAccuracy(_ seed: Int) throws -> Double {
            let url = out.appendingPathComponent("seed-\(seed)/analysis.json")
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            return try XCTUnwrap(object["testAccuracy"] as? Double)
        }
        let (a0, a1) = (try testAccuracy(0), try testAccuracy(1))
        let study = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("study.json")))
                as? [String: Any])
        let rows = try XCTUnwrap(study["rows"] as? [[String: Any]])
        let accuracy = try XCTUnwrap(
            rows.first { $0["key"] as? String == "test_accuracy" }?["summary"] as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(accuracy["mean"] as? Double), (a0 + a1) / 2, accuracy: 1e-12)
        XCTAssertEqual(
            try XCTUnwrap(accuracy["standardDeviation"] as? Double), abs(a0 - a1) / 2.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(accuracy["values"] as? [Double]), [a0, a1])
        for key in [
            "conv1.sigma.8", "conv2.sigma.16", "conv1.components_95", "conv2.components_99",
            "conv1.distinct_masks.random_patches", "conv2.distinct_masks.test_set", "conv1.low_rank_accuracy.1",
            "both.low_rank_accuracy.8",
        ] {
            XCTAssertTrue(rows.contains { $0["key"] as? String == key }, "study.json lacks \(key)")
        }
        let html = try String(contentsOf: out.appendingPathComponent("study.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("data:image/png;base64,") && html.contains("conv1 σ1"))

        // Again with a third seed and two devices: seeds 0 and 1 are not
        // redone (their files keep their dates), seed 2 runs in a child process.
        func date(_ path: String) throws -> Date {
            try XCTUnwrap(
                try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent(path).path)[
                    .modificationDate] as? Date)
        }
        let before = try ["seed-0/analysis.json", "seed-0/checkpoint.safetensors", "seed-1/analysis.json"].map(date)
        let second = try CLI.run(common + ["--seeds", "0..2", "--device", "host", "--device", "host"])
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertTrue(
            second.stderr.contains("seed 0 already finished") && second.stderr.contains("seed 1 already finished"),
            second.stderr)
        XCTAssertEqual(
            try ["seed-0/analysis.json", "seed-0/checkpoint.safetensors", "seed-1/analysis.json"].map(date), before)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("seed-2/analysis.json").path))
        let again = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("study.json")))
                as? [String: Any])
        XCTAssertEqual(again["seeds"] as? [Int], [0, 1, 2])
    }

    /// `study --model resnet8`: each member trains (ResNet-8's recipe) and
    /// gets the per-layer analysis (network-analysis.json), study.json
    /// summarises the members' final test accuracy, training accuracy and
    /// loss (checked against their metrics.json by hand) and the per-layer
    /// numbers, and a second run redoes nothing.
    func testStudyOfAResNetTrainsAndAnalysesEachMember() throws {
        let out = try TestEnvironment.makeTemporaryDirectory("convsvd-study-resnet")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        let arguments = [
            "study", "--model", "resnet8", "--seeds", "0..1", "--device", "host", "--epochs", "1", "--train-limit",
            "256", "--test-limit", "200", "--analysis-images", "20", "--data", mnist, "--out", out.path,
        ]
        let r = try CLI.run(arguments)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stderr.contains("study: seed 1: per-layer analysis of 10 layers"), r.stderr)
        XCTAssertTrue(r.stderr.contains("study: 2/2 members done"), r.stderr)
        var expected: [String: [Double]] = [:]
        for seed in 0...1 {
            let folder = out.appendingPathComponent("seed-\(seed)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("analysis.json").path))
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: folder.appendingPathComponent("network-analysis.json").path))
            let metrics = try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("metrics.json")))
                    as? [String: Any])
            XCTAssertEqual((metrics["settings"] as? [String: Any])?["model"] as? String, "resnet8")
            XCTAssertEqual((metrics["settings"] as? [String: Any])?["seed"] as? Int, seed)
            let last = try XCTUnwrap((metrics["epochs"] as? [[String: Any]])?.last)
            for (key, name) in [
                ("test_accuracy", "test_accuracy"), ("train_accuracy", "train_accuracy"), ("loss", "loss"),
            ] {
                expected[key, default: []].append(try XCTUnwrap(last[name] as? Double))
            }
        }
        let study = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("study.json")))
                as? [String: Any])
        let rows = try XCTUnwrap(study["rows"] as? [[String: Any]])
        XCTAssertTrue(
            Set(rows.compactMap { $0["key"] as? String }).isSuperset(of: [
                "test_accuracy", "train_accuracy", "loss", "analysis_accuracy", "layer3.0.conv2/operator_norm",
                "layer1.0.conv1/distinct_masks", "fc/accuracy_at_rank/1",
            ]))
        for (key, values) in expected {
            let summary = try XCTUnwrap(rows.first { $0["key"] as? String == key }?["summary"] as? [String: Any])
            XCTAssertEqual(summary["values"] as? [Double], values, key)
            XCTAssertEqual(try XCTUnwrap(summary["mean"] as? Double), (values[0] + values[1]) / 2, accuracy: 1e-12)
        }
        let html = try String(contentsOf: out.appendingPathComponent("study.html"), encoding: .utf8)
        XCTAssertTrue(
            html.contains("the per-layer one (network-analysis.json)"), "study.html should say which analysis")

        let again = try CLI.run(arguments)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(
            again.stderr.contains("seed 0 already finished") && again.stderr.contains("seed 1 already finished"),
            again.stderr)
    }

    /// `study --datasets mnist,fashion-mnist` (Fashion-MNIST from Debian's
    /// dataset-fashion-mnist, as the loader tests read it) with 2 seeds,
    /// 1 epoch on 200 images: one study per dataset, and study.json's
    /// per-layer summaries against the members' own files by hand (mean and
    /// sd of two values: (x₀ + x₁)/2 and |x₀ − x₁|/√2). With --data it is refused.
    func testStudyOverTwoDatasetsComparesTheLayers() throws {
        let out = try TestEnvironment.makeTemporaryDirectory("convsvd-study-datasets")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        let r = try CLI.run(
            [
                "study", "--datasets", "mnist,fashion-mnist", "--seeds", "0..1", "--device", "host", "--epochs", "1",
                "--train-limit", "200", "--test-limit", "60", "--analysis-images", "40", "--out", out.path,
            ], environment: ["MNIST_DIR": mnist])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stderr.contains("study: 4/4 members done"), r.stderr)
        for file in [
            "study.json", "study.html", "figures/study_datasets_rank95.png", "figures/study_datasets_rank99.png",
            "figures/study_datasets_stable_rank.png", "figures/study_datasets_operator_norm.png",
            "figures/study_datasets_distinct_masks.png", "figures/study_datasets_accuracy_vs_rank.png",
            "mnist/seed-1/analysis.json", "fashion-mnist/seed-0/network-analysis.json",
        ] {
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), "missing \(file)")
        }
        func object(_ path: String) throws -> [String: Any] {
            try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent(path)))
                    as? [String: Any])
        }
        let study = try object("study.json")
        XCTAssertEqual(study["datasets"] as? [String], ["mnist", "fashion-mnist"])
        let layers = try XCTUnwrap(study["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.map { $0["name"] as? String }, ["conv1", "conv2", "fc"])
        for dataset in ["mnist", "fashion-mnist"] {
            let members = try (0...1).map { try object("\(dataset)/seed-\($0)/network-analysis.json") }
            let settings = try object("\(dataset)/seed-0/metrics.json")["settings"] as? [String: Any]
            XCTAssertEqual(settings?["dataset"] as? String, dataset)
            for (index, layer) in layers.enumerated() {
                let records = try members.map { try XCTUnwrap(($0["layers"] as? [[String: Any]])?[index]) }
                var expected: [(String, [Double])] = [
                    ("stable_rank", try records.map { try XCTUnwrap($0["stableRank"] as? Double) }),
                    ("rank95", try records.map { Double(try XCTUnwrap($0["rank95"] as? Int)) }),
                ]
                if index < 2 {
                    let masks = try records.map { try XCTUnwrap($0["reluMasks"] as? [String: Any]) }
                    XCTAssertEqual(masks.map { $0["images"] as? Int }, [40, 40])
                    expected.append(
                        ("distinct_masks", try masks.map { Double(try XCTUnwrap($0["distinctMasks"] as? Int)) }))
                }
                let quantities = try XCTUnwrap(layer["quantities"] as? [String: [String: [String: Any]]])
                for (key, x) in expected {
                    let s = try XCTUnwrap(quantities[key]?[dataset], "\(dataset) \(key)")
                    XCTAssertEqual(s["values"] as? [Double], x, "\(dataset) \(key)")
                    XCTAssertEqual(try XCTUnwrap(s["mean"] as? Double), (x[0] + x[1]) / 2, accuracy: 1e-12)
                    XCTAssertEqual(
                        try XCTUnwrap(s["standardDeviation"] as? Double), abs(x[0] - x[1]) / 2.squareRoot(),
                        accuracy: 1e-12)
                }
            }
        }
        let html = try String(contentsOf: out.appendingPathComponent("study.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("fashion-mnist (mean ± sd)") && html.contains("data:image/png;base64,"))

        let refused = try CLI.run(["study", "--datasets", "mnist", "--data", mnist, "--out", "/nonexistent/study"])
        XCTAssertEqual(refused.status, 64, refused.output)
        XCTAssertTrue(refused.stderr.contains("it does not take --data"), refused.stderr)
    }

    /// `--seed` (one run's option) is refused: a study's seeds come from --seeds.
    func testSeedIsRefusedWithTheOptionToUse() throws {
        let r = try CLI.run(["study", "--seed", "3", "--out", "/nonexistent/study"])
        XCTAssertEqual(r.status, 64, r.output)
        XCTAssertTrue(r.stderr.contains("study takes --seeds (A..B or a list), not --seed"), r.stderr)
        let bad = try CLI.run(["study", "--seeds", "4..2", "--out", "/nonexistent/study"])
        XCTAssertEqual(bad.status, 64, bad.output)
        XCTAssertTrue(bad.stderr.contains("--seeds 4..2: the first seed must not exceed the last"), bad.stderr)
    }
}
