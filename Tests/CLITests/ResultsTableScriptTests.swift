import Foundation
import TestSupport
import XCTest

/// `scripts/results-table`: the README's results table is its output on the
/// recorded runs in docs/results-run/, and that output is a well-formed
/// Markdown table whose figures are the JSON files' (read here with
/// JSONSerialization, formatted as `convsvd run` prints them).
final class ResultsTableScriptTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let runs = ["pocl", "host"].map { root.appendingPathComponent("docs/results-run/\($0)") }

    /// Runs the script with python3; returns (status, stdout, stderr).
    static func script(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", root.appendingPathComponent("scripts/results-table").path] + arguments
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    func json(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// A table row's cells, split at the pipes that are not escaped.
    func cells(_ line: String) -> [String] {
        var cells = [String]()
        var current = ""
        var previous: Character = " "
        for c in line.dropFirst().dropLast() {
            if c == "|" && previous != "\\" {
                cells.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
            } else {
                current.append(c)
            }
            previous = c
        }
        return cells + [current.trimmingCharacters(in: .whitespaces)]
    }

    func testTheReadmeShowsTheScriptsOutputOnTheRecordedRuns() throws {
        let r = try Self.script(["table"] + Self.runs.map(\.path))
        XCTAssertEqual(r.status, 0, r.stderr)
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(
            readme.contains(r.stdout),
            "README.md's results table differs from `scripts/results-table table "
                + "docs/results-run/pocl docs/results-run/host`; regenerate it with --readme README.md:\n\(r.stdout)")
    }

    func testTheTableIsWellFormedAndCarriesTheRunsFigures() throws {
        let r = try Self.script(["table"] + Self.runs.map(\.path))
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertTrue(lines.first?.hasPrefix("<!-- results-table: begin") ?? false)
        XCTAssertEqual(lines.dropLast().last, "<!-- results-table: end -->")
        let table = lines.filter { $0.hasPrefix("|") }
        XCTAssertEqual(table[1], "|---|---|---|")
        XCTAssertGreaterThanOrEqual(table.count, 12)
        for line in table { XCTAssertEqual(cells(line).count, 3, line) }
        XCTAssertFalse(table.dropFirst(2).contains { cells($0).contains("") }, "no empty cell")

        for (column, run) in Self.runs.enumerated() {
            let analysis = try json(run.appendingPathComponent("analysis.json"))
            let metrics = try json(run.appendingPathComponent("metrics.json"))
            let info = try json(run.appendingPathComponent("run-info.json"))
            func value(_ label: String) -> String? {
                table.map(cells).first { $0[0] == label }.map { $0[column + 1] }
            }
            let epochs = try XCTUnwrap(metrics["epochs"] as? [[String: Any]])
            let last = try XCTUnwrap(epochs.last?["test_accuracy"] as? Double)
            XCTAssertEqual(
                value("test accuracy after \(epochs.count) epochs"), String(format: "**%.2f%%**", 100 * last))
            let checks = try XCTUnwrap(analysis["checks"] as? [[String: Any]])
            XCTAssertEqual(
                value("checks passed"), "\(checks.filter { $0["passed"] as? Bool == true }.count) of \(checks.count)")
            let spectra = try XCTUnwrap(analysis["spectra"] as? [[String: Any]])
            let sigma = try XCTUnwrap(
                spectra.first { $0["layer"] as? String == "conv1" }?["singularValues"] as? [Double])
            XCTAssertEqual(value("conv1 σ"), sigma.map { String(format: "%.3f", $0) }.joined(separator: " "))
            let device = try XCTUnwrap(analysis["deviceVerification"] as? [String: Any])
            XCTAssertEqual(
                value("device logits vs the float64 network: max\\|Δ\\|, differing predictions"),
                String(
                    format: "%.2e, %d", try XCTUnwrap(device["logitsMaxAbsDifference"] as? Double),
                    try XCTUnwrap(device["predictionMismatches"] as? Int)))
            // Which run: its command, commit and date.
            let selector = try XCTUnwrap((metrics["device"] as? [String: Any])?["selector"] as? String)
            let provenance = try XCTUnwrap(lines.first { $0.hasPrefix("- `\(selector)`:") })
            for key in ["command", "commit", "date", "machine"] {
                XCTAssertTrue(
                    provenance.contains(try XCTUnwrap(info[key] as? String)), "\(key) missing from: \(provenance)")
            }
        }
    }

    func testReadmeModeReplacesOnlyTheMarkedTable() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-results-table")
        defer { try? FileManager.default.removeItem(at: dir) }
        let readme = dir.appendingPathComponent("README.md")
        let before = "# Title\n\ntext before\n\n"
        let after = "\ntext after\n"
        try (before + "<!-- results-table: begin (old) -->\nold table\n<!-- results-table: end -->\n" + after)
            .write(to: readme, atomically: true, encoding: .utf8)
        let table = try Self.script(["table", Self.runs[1].path]).stdout
        for _ in 0..<2 {  // twice: regenerating an up-to-date README changes nothing
            XCTAssertEqual(try Self.script(["table", "--readme", readme.path, Self.runs[1].path]).status, 0)
            XCTAssertEqual(try String(contentsOf: readme, encoding: .utf8), before + table + after)
        }
        let unmarked = dir.appendingPathComponent("unmarked.md")
        try "no markers\n".write(to: unmarked, atomically: true, encoding: .utf8)
        let r = try Self.script(["table", "--readme", unmarked.path, Self.runs[1].path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("markers"), r.stderr)
        XCTAssertEqual(try String(contentsOf: unmarked, encoding: .utf8), "no markers\n")
    }
}
