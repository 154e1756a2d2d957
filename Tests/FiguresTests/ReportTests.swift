import Analysis
import Figures
import Foundation
import TestSupport
import XCTest

#if canImport(FoundationXML)
import FoundationXML
#endif

/// report.html: self-contained, references every figure, holds the results table.
final class ReportTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try TestEnvironment.makeTemporaryDirectory("convsvd-report")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func document(format: FigureFormat) throws -> ReportDocument {
        let files = try Figures.renderAll(
            report: Fixture.report, history: Fixture.history, sample: Fixture.sample,
            to: directory, format: format)
        return ReportDocument(
            summary: "Synthetic run for the tests.", results: ResultRow.rows(from: Fixture.report),
            device: "host <OpenBLAS> & test",
            phases: [PhaseTime(phase: "training", seconds: 12.5)] + PhaseTime.analysisPhases(Fixture.report.timings),
            settings: [("epochs", "5"), ("device", "host")],
            command: "convsvd run --epochs 5 --device host --out outputs",
            figures: files)
    }

    func testPNGReportEmbedsEveryFigureAndTheResultsTable() throws {
        let doc = try document(format: .png)
        let url = directory.appendingPathComponent("report.html")
        try HTMLReport.write(doc, to: url)
        let html = try String(contentsOf: url, encoding: .utf8)

        for f in doc.figures {
            XCTAssertTrue(html.contains("<figure id=\"fig-\(f.name)\">"), f.name)
            XCTAssertTrue(html.contains("href=\"#fig-\(f.name)\""), "\(f.name) missing from the contents")
            XCTAssertTrue(html.contains(HTMLReport.escape(f.caption)), "\(f.name): caption missing")
            // The embedded bytes are exactly the file's.
            let encoded = try Data(contentsOf: f.url).base64EncodedString()
            XCTAssertTrue(html.contains("src=\"data:image/png;base64,\(encoded)\""), "\(f.name) not embedded")
        }
        XCTAssertEqual(html.components(separatedBy: "<figure ").count - 1, doc.figures.count)

        // The results table: every check by its description with its verdict.
        XCTAssertTrue(html.contains("<table class=\"results\">"))
        for check in Fixture.report.checks {
            let row = "<td>\(HTMLReport.escape(check.description))</td>"
            XCTAssertTrue(html.contains(row), "check \(check.id) missing")
        }
        let passes = Fixture.report.checks.filter(\.passed).count
        XCTAssertEqual(html.components(separatedBy: "<span class=\"badge pass\">PASS</span>").count - 1, passes)
        XCTAssertTrue(html.contains(String(format: "%.2f%%", 100 * Fixture.report.testAccuracy)))

        // Device (escaped), phase times, settings and the command.
        XCTAssertTrue(html.contains("host &lt;OpenBLAS&gt; &amp; test"))
        XCTAssertTrue(html.contains("<td>training</td><td class=\"num\">12.50</td>"))
        XCTAssertTrue(html.contains("<code>convsvd run --epochs 5 --device host --out outputs</code>"))

        // Self-contained: nothing fetched from elsewhere.
        for external in ["http://", "https://", "<link", "<script", "@import", "src=\"file"] {
            XCTAssertFalse(html.contains(external), "report refers to an external resource: \(external)")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [])
    }

    func testSVGReportInlinesWellFormedSVGsWithUniqueIds() throws {
        let doc = try document(format: .svg)
        let html = try HTMLReport.render(doc)
        XCTAssertFalse(html.contains("<?xml"), "XML declarations do not belong inside HTML")
        var svgs: [Substring] = []
        var rest = html[...]
        while let start = rest.range(of: "<svg"),
            let end = rest.range(of: "</svg>", range: start.upperBound..<rest.endIndex)
        {
            svgs.append(rest[start.lowerBound..<end.upperBound])
            rest = rest[end.upperBound...]
        }
        XCTAssertEqual(svgs.count, doc.figures.count)
        for (svg, f) in zip(svgs, doc.figures) {
            let root = try FileChecks.xmlRoot(Data(svg.utf8))
            XCTAssertEqual(root.name, "svg")
            XCTAssertEqual(root.attributes["width"], "\(f.width)px")
        }
        // Ids must be unique in one page, and every reference must point at one of them.
        let ids = matches(#" id="([^"]+)""#, in: html)
        XCTAssertEqual(Set(ids).count, ids.count, "duplicate ids in the page")
        let references = matches(##"href="#([^"]+)""##, in: html) + matches(#"url\(#([^)]+)\)"#, in: html)
        XCTAssertFalse(references.isEmpty)
        let known = Set(ids)
        XCTAssertEqual(references.filter { !known.contains($0) }, [], "references to missing ids")
    }

    func testPDFReportShowsPNGRenderingsOfTheFigures() throws {
        let doc = try document(format: .pdf)
        let html = try HTMLReport.render(doc)
        for f in doc.figures {
            let preview = try XCTUnwrap(f.pngPreview)
            XCTAssertTrue(html.contains("data:image/png;base64,\(preview.base64EncodedString())"), f.name)
            XCTAssertTrue(html.contains("(\(f.name).pdf)"), f.name)
        }
    }

    func testFailedCheckIsShownAsAFailure() throws {
        var report = Fixture.report
        report.checks[0] = Check(
            id: report.checks[0].id, description: report.checks[0].description,
            value: 1, relation: .lessThan, limit: 1e-12, kind: report.checks[0].kind)
        let doc = ReportDocument(
            summary: "", results: ResultRow.rows(from: report), device: "d", phases: [],
            settings: [], command: "c", figures: [])
        XCTAssertFalse(doc.allChecksPassed)
        let html = try HTMLReport.render(doc)
        XCTAssertTrue(html.contains("<p class=\"banner fail\">1 of \(report.checks.count) checks FAILED"))
        XCTAssertEqual(html.components(separatedBy: "<span class=\"badge fail\">FAIL</span>").count - 1, 1)
    }

    /// Every check's row names its kind in the table's last column.
    func testEveryCheckShowsItsKind() throws {
        let report = Fixture.report
        let doc = ReportDocument(
            summary: "", results: ResultRow.rows(from: report), device: "d", phases: [],
            settings: [], command: "c", figures: [])
        let html = try HTMLReport.render(doc)
        XCTAssertTrue(html.contains("<th>Kind</th>"))
        let kinds = matches(#"</span></td><td>([a-z]+)</td></tr>"#, in: html)
        XCTAssertEqual(kinds, report.checks.map(\.kind.rawValue))
        XCTAssertTrue(kinds.contains("consistency") && kinds.contains("independent"), "\(kinds)")
    }

    func testEscapeCoversTheHTMLSpecialCharacters() {
        XCTAssertEqual(
            HTMLReport.escape(#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;")
    }

    func matches(_ pattern: String, in text: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: pattern)
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range(at: 1), in: text).map { String(text[$0]) }
        }
    }
}
