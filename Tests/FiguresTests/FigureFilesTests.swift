import Analysis
import Figures
import Foundation
import TestSupport
import XCTest

/// Every figure is produced, in every format, as a valid file of the expected
/// size that is not blank.
final class FigureFilesTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try TestEnvironment.makeTemporaryDirectory("convsvd-figures")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testFullInputsGiveEveryFigureOfTheIssue() throws {
        XCTAssertEqual(try Fixture.allFigures().map(\.name), Fixture.expectedNames)
    }

    func testWithoutHistorySampleSweepOrMaskListThoseFiguresAreLeftOut() throws {
        var report = Fixture.report
        report.lowRank.sweep = nil
        for i in report.lowRank.layers.indices {
            for j in report.lowRank.layers[i].rows.indices { report.lowRank.layers[i].rows[j].testAccuracy = nil }
        }
        for i in report.reluRegions.indices { report.reluRegions[i].testSetPatches.mostCommon = [] }
        let names = try Figures.figures(report: report, history: nil, sample: nil).map(\.name)
        XCTAssertEqual(
            names,
            Fixture.expectedNames.filter {
                ![
                    "training_curves", "accuracy_vs_rank", "relu_mask_frequencies", "activation_projections",
                    "digit_feature_maps",
                ].contains($0)
            })
    }

    /// Floors, measured on these synthetic inputs: a page with only its title
    /// has luminance variance 0.0012 and 0.23% non-white pixels; the sparsest
    /// figures (line charts) have variance ≥ 0.0095 and ≥ 5% non-white pixels.
    /// The floors sit between: variance > 0.004, non-white > 2%.
    func testPNGFilesAreValidOfTheirSizeAndNotBlank() throws {
        let files = try Figures.renderAll(
            report: Fixture.report, history: Fixture.history, sample: Fixture.sample,
            to: directory, format: .png)
        XCTAssertEqual(files.map(\.name), Fixture.expectedNames)
        for f in files {
            XCTAssertEqual(f.url.lastPathComponent, "\(f.name).png")
            let data = try Data(contentsOf: f.url)
            let size = try FileChecks.pngSize(data)
            XCTAssertEqual(size.width, f.width, f.name)
            XCTAssertEqual(size.height, f.height, f.name)
            XCTAssertGreaterThanOrEqual(f.width, 900, "\(f.name): narrower than the laptop-readable minimum")
            let stats = try FileChecks.pngPixelStatistics(f.url)
            XCTAssertEqual(stats.width, f.width, f.name)
            XCTAssertEqual(stats.height, f.height, f.name)
            XCTAssertGreaterThan(stats.variance, 0.004, "\(f.name) looks blank")
            XCTAssertGreaterThan(stats.nonWhiteFraction, 0.02, "\(f.name) looks blank")
        }
        try assertNoTemporaryFiles()
    }

    func testBlankPageIsBelowTheFloors() throws {
        // The floors above must be able to fail: a figure with a title and no body is below them.
        let empty = Figure(name: "empty", title: "Nothing here", caption: "") { _, _ in }
        let f = try empty.write(to: directory, format: .png)
        let stats = try FileChecks.pngPixelStatistics(f.url)
        XCTAssertLessThan(stats.variance, 0.004)
        XCTAssertLessThan(stats.nonWhiteFraction, 0.02)
    }

    func testSVGFilesParseWithAnSVGRootOfTheirSize() throws {
        let files = try Figures.renderAll(
            report: Fixture.report, history: Fixture.history, sample: Fixture.sample,
            to: directory, format: .svg)
        XCTAssertEqual(files.count, Fixture.expectedNames.count)
        for f in files {
            XCTAssertEqual(f.url.lastPathComponent, "\(f.name).svg")
            let root = try FileChecks.xmlRoot(try Data(contentsOf: f.url))
            XCTAssertEqual(root.name, "svg", f.name)
            XCTAssertEqual(root.attributes["width"], "\(f.width)px", f.name)
            XCTAssertEqual(root.attributes["height"], "\(f.height)px", f.name)
            XCTAssertEqual(root.attributes["viewBox"], "0 0 \(f.width) \(f.height)", f.name)
            // Text is drawn as glyph outlines: a figure without <path> or <use> elements would be empty.
            let text = try String(contentsOf: f.url, encoding: .utf8)
            XCTAssertGreaterThan(
                text.components(separatedBy: "<path").count + text.components(separatedBy: "<use").count, 50, f.name)
        }
        try assertNoTemporaryFiles()
    }

    func testPDFFilesHaveHeaderTrailerAndPageSize() throws {
        let files = try Figures.renderAll(
            report: Fixture.report, history: Fixture.history, sample: Fixture.sample,
            to: directory, format: .pdf)
        XCTAssertEqual(files.count, Fixture.expectedNames.count)
        for f in files {
            XCTAssertEqual(f.url.lastPathComponent, "\(f.name).pdf")
            let data = try Data(contentsOf: f.url)
            let page = try FileChecks.pdfPageSize(data)
            XCTAssertEqual(page.width, Double(f.width), f.name)
            XCTAssertEqual(page.height, Double(f.height), f.name)
            XCTAssertGreaterThan(data.count, 5_000, "\(f.name): too small to hold a drawing")
            // The report shows PDF figures through a PNG rendering of the same figure.
            let preview = try XCTUnwrap(f.pngPreview, f.name)
            let size = try FileChecks.pngSize(preview)
            XCTAssertEqual(size.width, f.width, f.name)
            XCTAssertEqual(size.height, f.height, f.name)
        }
    }

    func testRewritingAFigureReplacesTheFileAtomically() throws {
        let url = directory.appendingPathComponent("singular_values.png")
        try Data("old".utf8).write(to: url)
        let figure = try Figures.singularValues([Figures.SigmaSeries(name: "conv1", sigma: [3, 2, 1])])
        _ = try figure.write(to: directory, format: .png)
        XCTAssertNoThrow(try FileChecks.pngSize(try Data(contentsOf: url)))
        try assertNoTemporaryFiles()
    }

    func assertNoTemporaryFiles(file: StaticString = #filePath, line: UInt = #line) throws {
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "temporary files left behind", file: file, line: line)
    }
}
