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

    /// `study --model resnet8`: each member trains (ResNet-8's recipe), the
    /// analysis is skipped with a line saying why, study.json summarises
    /// the members' final test accuracy, training accuracy and loss (checked
    /// against their metrics.json by hand), and a second run redoes nothing.
    func testStudyOfAResNetTrainsEachMemberAndSaysTheAnalysisIsSkipped() throws {
        let out = try TestEnvironment.makeTemporaryDirectory("convsvd-study-resnet")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        let arguments = [
            "study", "--model", "resnet8", "--seeds", "0..1", "--device", "host", "--epochs", "1", "--train-limit",
            "256", "--test-limit", "200", "--data", mnist, "--out", out.path,
        ]
        let r = try CLI.run(arguments)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(
            r.stderr.contains(
                "study: --model resnet8: each member is trained and its accuracy and loss recorded; "
                    + "the analysis (phases 2–7) is skipped"), r.stderr)
        XCTAssertTrue(r.stderr.contains("study: 2/2 members done"), r.stderr)
        var expected: [String: [Double]] = [:]
        for seed in 0...1 {
            let folder = out.appendingPathComponent("seed-\(seed)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("analysis.json").path))
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
        XCTAssertEqual(Set(rows.compactMap { $0["key"] as? String }), ["test_accuracy", "train_accuracy", "loss"])
        for (key, values) in expected {
            let summary = try XCTUnwrap(rows.first { $0["key"] as? String == key }?["summary"] as? [String: Any])
            XCTAssertEqual(summary["values"] as? [Double], values, key)
            XCTAssertEqual(try XCTUnwrap(summary["mean"] as? Double), (values[0] + values[1]) / 2, accuracy: 1e-12)
        }
        let html = try String(contentsOf: out.appendingPathComponent("study.html"), encoding: .utf8)
        XCTAssertTrue(
            html.contains("the analysis is TinyConvNet"), "study.html should say the members were not analysed")

        let again = try CLI.run(arguments)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(
            again.stderr.contains("seed 0 already finished") && again.stderr.contains("seed 1 already finished"),
            again.stderr)
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
