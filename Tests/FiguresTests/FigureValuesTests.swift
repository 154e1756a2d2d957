import Analysis
import Figures
import Foundation
import TestSupport
import XCTest

#if canImport(FoundationXML)
import FoundationXML
#endif

/// The figures show the report's numbers: the plotted points are read back
/// from the SVG (cairo writes each series as one path of straight segments)
/// and mapped back through the plot's axes (the frame rectangle and the
/// grid lines at the ticks), then compared with analysis.json's values.
final class FigureValuesTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try TestEnvironment.makeTemporaryDirectory("convsvd-figure-values")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// What a chart panel of a cairo SVG holds, by stroke: the frame (ink
    /// rectangle), grid lines (light grey), data polylines (width 2.2) and
    /// reference lines (width 1.5).
    struct Panel {
        var minX = 0.0, maxX = 0.0, minY = 0.0, maxY = 0.0
        var horizontalGrid: [Double] = []
        var verticalGrid: [Double] = []
        var series: [[(x: Double, y: Double)]] = []
        var referenceLines: [Double] = []
    }

    static func panels(ofSVG url: URL) throws -> [Panel] {
        final class Paths: NSObject, XMLParserDelegate {
            var paths: [(style: String, d: String)] = []
            func parser(
                _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes: [String: String] = [:]
            ) {
                if elementName == "path", let style = attributes["style"], let d = attributes["d"] {
                    paths.append((style, d))
                }
            }
        }
        let parser = XMLParser(data: try Data(contentsOf: url))
        let collected = Paths()
        parser.delegate = collected
        guard parser.parse() else {
            throw FileChecks.Failure(description: "\(url.lastPathComponent) is not well-formed XML")
        }
        func points(_ d: String) -> [(x: Double, y: Double)] {
            let numbers = d.split(separator: " ").compactMap { Double($0) }
            return stride(from: 0, to: numbers.count - 1, by: 2).map { (numbers[$0], numbers[$0 + 1]) }
        }
        var panels: [Panel] = []
        for (style, d) in collected.paths where style.contains("stroke:rgb(13%,13%,13%)") && d.contains("Z") {
            let p = points(d)
            var panel = Panel()
            panel.minX = p.map(\.x).min()!
            panel.maxX = p.map(\.x).max()!
            panel.minY = p.map(\.y).min()!
            panel.maxY = p.map(\.y).max()!
            panels.append(panel)
        }
        func owner(_ x: Double) -> Int? { panels.firstIndex { $0.minX - 8 <= x && x <= $0.maxX + 8 } }
        for (style, d) in collected.paths {
            let p = points(d)
            guard let first = p.first, let i = owner(first.x) else { continue }
            if style.contains("stroke:rgb(88%,88%,88%)"), p.count == 2 {
                if p[0].y == p[1].y {
                    panels[i].horizontalGrid.append(p[0].y)
                } else {
                    panels[i].verticalGrid.append(p[0].x)
                }
            } else if style.contains("stroke-width:2.2;") && !d.contains("C") {
                panels[i].series.append(p)
            } else if style.contains("stroke-width:1.5;"), p.count == 2, p[0].y == p[1].y {
                panels[i].referenceLines.append(p[0].y)
            }
        }
        return panels
    }

    /// value = a + b·pixel by least squares.
    static func fit(_ pixels: [Double], _ values: [Double]) -> (a: Double, b: Double) {
        let n = Double(pixels.count)
        let mp = pixels.reduce(0, +) / n
        let mv = values.reduce(0, +) / n
        let b =
            zip(pixels, values).reduce(0) { $0 + ($1.0 - mp) * ($1.1 - mv) }
            / pixels.reduce(0) { $0 + ($1 - mp) * ($1 - mp) }
        return (mv - b * mp, b)
    }

    /// cairo writes coordinates in 1/256 px; a point read back is within this of where it was drawn.
    static let pixelTolerance = 0.01

    /// True when x is within `tolerance` of m·10^e with m one of `mantissas`.
    static func isNice(_ x: Double, mantissas: [Double], tolerance: Double) -> Bool {
        guard x > 0 else { return false }
        let e = floor(log10(x))
        return [e - 1, e, e + 1].contains { e in mantissas.contains { abs($0 * pow(10, e) - x) <= tolerance } }
    }

    /// The pixel row at which each series passes the index i = 1, 2, …: the
    /// x of index i is the affine map through the first and last points of
    /// the longest series (cairo keeps a polyline's ends but drops points
    /// collinear with their neighbours), and the row is read off the
    /// segment there. Checks that every index sits on a vertical grid line.
    func rows(_ panel: Panel, counts: [Int], file: StaticString = #filePath, line: UInt = #line) -> [[Double]] {
        XCTAssertEqual(panel.series.count, counts.count, "series", file: file, line: line)
        let longest = counts.indices.max { counts[$0] < counts[$1] }!
        let first = panel.series[longest].first!.x
        let last = panel.series[longest].last!.x
        let step = (last - first) / Double(counts[longest] - 1)
        return zip(panel.series, counts).map { polyline, count in
            XCTAssertEqual(
                polyline.first!.x, first, accuracy: Self.pixelTolerance, "series starts at index 1", file: file,
                line: line)
            XCTAssertEqual(
                polyline.last!.x, first + Double(count - 1) * step, accuracy: Self.pixelTolerance,
                "series ends at index \(count)", file: file, line: line)
            return (0..<count).map { i in
                let x = first + Double(i) * step
                XCTAssertTrue(
                    panel.verticalGrid.contains { abs($0 - x) < Self.pixelTolerance }, "index \(i + 1) is on a tick",
                    file: file, line: line)
                guard
                    let j = polyline.indices.dropLast().first(where: {
                        polyline[$0].x <= x + Self.pixelTolerance
                            && x - Self.pixelTolerance <= polyline[$0 + 1].x
                    })
                else {
                    return polyline.count == 1 ? polyline[0].y : .nan
                }
                let a = polyline[j]
                let b = polyline[j + 1]
                return b.x == a.x ? a.y : a.y + (x - a.x) / (b.x - a.x) * (b.y - a.y)
            }
        }
    }

    /// The singular values: on the linear panel σ is affine in the pixel row
    /// (to 1/100 of a pixel), and that map puts the grid lines on equally
    /// spaced multiples of a 1, 2, 2.5 or 5 step, the frame's edges on the
    /// first and last of them; on the log panel log₁₀σ is affine and the grid
    /// lines fall on 1, 2 and 5 × 10ᵏ. Only σ itself (up to the factor of a
    /// decade, which the grid cannot tell) passes both.
    func testSingularValuesFigureShowsTheReportsSigma() throws {
        let report = Fixture.report
        let figure = try Figures.singularValues(
            report.spectra.map { Figures.SigmaSeries(name: $0.layer, sigma: $0.singularValues) })
        let file = try figure.write(to: directory, format: .svg)
        let panels = try Self.panels(ofSVG: file.url)
        XCTAssertEqual(panels.count, 2)
        let sigma = report.spectra.map(\.singularValues)
        for (p, panel) in panels.enumerated() {
            let log = p == 1
            let pixels = rows(panel, counts: sigma.map(\.count)).flatMap { $0 }
            let values = sigma.flatMap { $0 }.map { log ? log10($0) : $0 }
            let map = Self.fit(pixels, values)
            let tolerance = Self.pixelTolerance * abs(map.b)
            for (pixel, value) in zip(pixels, values) {
                XCTAssertEqual(map.a + map.b * pixel, value, accuracy: tolerance, "panel \(p): plotted σ")
            }
            let ticks = panel.horizontalGrid.sorted(by: >).map { map.a + map.b * $0 }  // bottom first
            XCTAssertGreaterThanOrEqual(ticks.count, 3, "panel \(p): grid lines")
            XCTAssertEqual(panel.horizontalGrid.max()!, panel.maxY, accuracy: Self.pixelTolerance)
            XCTAssertEqual(panel.horizontalGrid.min()!, panel.minY, accuracy: Self.pixelTolerance)
            if log {
                for t in ticks {
                    XCTAssertTrue(
                        Self.isNice(pow(10, t), mantissas: [1, 2, 5], tolerance: pow(10, t) * tolerance * 4.61),
                        "log tick at \(pow(10, t))")
                }
            } else {
                let step = ticks[1] - ticks[0]
                XCTAssertTrue(
                    Self.isNice(step, mantissas: [1, 2, 2.5, 5], tolerance: 2 * tolerance), "tick step \(step)")
                for (i, t) in ticks.enumerated() {
                    XCTAssertEqual(t, ticks[0] + Double(i) * step, accuracy: 2 * tolerance, "equally spaced ticks")
                    XCTAssertEqual(
                        t / step, (t / step).rounded(), accuracy: 2 * tolerance / step,
                        "tick \(t) is a multiple of the step")
                }
            }
        }
    }

    /// Accuracy against rank: the y axis has a fixed range, from the nearest
    /// 10% below the lowest point to 100% (the frame's bottom and top), so each
    /// point maps back to a percentage exactly, and so does the full-rank line.
    func testAccuracyFigureShowsTheReportsSweep() throws {
        let report = Fixture.report
        let sweep = try XCTUnwrap(report.lowRank.sweep)
        let curves = report.lowRank.layers.map { l in l.rows.map { $0.testAccuracy! } } + [sweep.sameRankAccuracy]
        let files = try Figures.renderAll(report: report, history: nil, sample: nil, to: directory, format: .svg)
        let file = try XCTUnwrap(files.first { $0.name == "accuracy_vs_rank" })
        let panels = try Self.panels(ofSVG: file.url)
        XCTAssertEqual(panels.count, 1)
        let panel = panels[0]
        let plotted = rows(panel, counts: curves.map(\.count))
        let lowest = 100 * min(curves.flatMap { $0 }.min()!, report.testAccuracy)
        let bottom = max(0, 10 * floor((lowest - 1) / 10))
        let perPixel = (100 - bottom) / (panel.maxY - panel.minY)
        func percent(_ pixel: Double) -> Double { bottom + (panel.maxY - pixel) * perPixel }
        for (curve, pixels) in zip(curves, plotted) {
            for (accuracy, pixel) in zip(curve, pixels) {
                XCTAssertEqual(
                    percent(pixel), 100 * accuracy, accuracy: Self.pixelTolerance * perPixel, "plotted accuracy")
            }
        }
        XCTAssertEqual(panel.referenceLines.count, 1)
        XCTAssertEqual(
            percent(panel.referenceLines[0]), 100 * report.testAccuracy, accuracy: Self.pixelTolerance * perPixel,
            "the full-rank line")
        // The sweep's own numbers: conv1 alone at rank k is the grid's last column.
        for k in 1...sweep.accuracy.count { XCTAssertEqual(curves[0][k - 1], sweep.accuracy[k - 1].last!) }
    }

    /// ranks_by_depth plots each layer's 95% and 99% energy ranks and stable
    /// rank over its output channels (the weight's first dimension), read
    /// back against analysis.json's values on the 0…1 axis. The model file's
    /// classifier (6 inputs, 10 classes: full rank 6) tells the channels
    /// from the full rank: over r its points would sit 10/6 higher.
    func testRanksByDepthIsOverOutputChannels() throws {
        let report = try NetworkFigureTests.analysis()
        let layers = report.layers
        let fc = try XCTUnwrap(layers.last)
        XCTAssertEqual(fc.shape, [10, 6])
        XCTAssertEqual(fc.sigma.count, 6, "the classifier's full rank is below its 10 outputs")
        let file = try Figures.ranksByDepth(layers).write(to: directory, format: .svg)
        let panels = try Self.panels(ofSVG: file.url)
        XCTAssertEqual(panels.count, 1)
        let panel = panels[0]
        let expected: [[Double]] = [
            layers.map { Double($0.rank95) / Double($0.shape[0]) },
            layers.map { Double($0.rank99) / Double($0.shape[0]) },
            layers.map { $0.stableRank / Double($0.shape[0]) },
        ]
        let plotted = rows(panel, counts: expected.map(\.count))
        let perPixel = 1 / (panel.maxY - panel.minY)
        for (curve, pixels) in zip(expected, plotted) {
            for (value, pixel) in zip(curve, pixels) {
                XCTAssertEqual(
                    (panel.maxY - pixel) * perPixel, value, accuracy: Self.pixelTolerance * perPixel,
                    "plotted rank / output channels")
            }
        }
        let fcPixel = plotted[0].last!
        XCTAssertGreaterThan(
            abs((panel.maxY - fcPixel) * perPixel - Double(fc.rank95) / Double(fc.sigma.count)),
            100 * Self.pixelTolerance * perPixel, "over the full rank the classifier's point would move")
    }

    /// The reader must be able to fail: σ plotted in reverse order, or
    /// doubled, is refused by the same rules.
    func testTheReaderNoticesWrongValues() throws {
        let report = Fixture.report
        let sigma = report.spectra.map(\.singularValues)
        for wrong in [sigma.map { Array($0.reversed()) }, sigma.map { $0.map { $0 * $0 } }] {
            let figure = try Figures.singularValues(
                zip(report.spectra, wrong).map { Figures.SigmaSeries(name: $0.0.layer, sigma: $0.1) })
            let panel = try Self.panels(ofSVG: try figure.write(to: directory, format: .svg).url)[0]
            let pixels = rows(panel, counts: sigma.map(\.count)).flatMap { $0 }
            let values = sigma.flatMap { $0 }
            let map = Self.fit(pixels, values)
            let worst = zip(pixels, values).map { abs(map.a + map.b * $0.0 - $0.1) }.max()!
            XCTAssertGreaterThan(
                worst, 100 * Self.pixelTolerance * abs(map.b), "a wrong figure must miss the report's σ by pixels")
        }
    }
}
