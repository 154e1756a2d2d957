import Foundation
import XCTest

/// The summaries of the analysing commands name every phase they run:
/// `analyze` and `run` both run phases 2–7 and 9 (`AnalysisPhases`), and
/// `run` adds training (1) and the figures and report (8).
final class HelpTextTests: XCTestCase {
    /// `command --help` with its line breaks folded into single spaces.
    func help(_ arguments: [String]) throws -> String {
        let r = try CLI.run(arguments + ["--help"])
        XCTAssertEqual(r.status, 0, r.output)
        return r.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    func testAnalyzeAndRunSummariesNamePhaseNine() throws {
        XCTAssertTrue(try help(["analyze"]).contains("OVERVIEW: Phases 2–7 and 9:"))
        XCTAssertTrue(try help(["run"]).contains("train (phase 1), analyse (2–7 and 9), draw and report (8)"))
        let top = try help([])
        XCTAssertTrue(top.contains("run The whole pipeline: train (phase 1), analyse (2–7 and 9)"), top)
        XCTAssertTrue(top.contains("analyze Phases 2–7 and 9:"), top)
    }
}
