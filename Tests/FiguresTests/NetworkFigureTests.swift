import Analysis
import Figures
import Foundation
import Models
import NetIO
import TestSupport
import XCTest

/// The per-layer figures and report.html of a network description (`analyze
/// --model FILE.json`), on a tiny model file: every figure file is written
/// and decodes as a PNG of its stated size, report.html has a foldable
/// section per layer and the regions section, and the numbers the report
/// prints equal analysis.json's, read back as plain JSON.
final class NetworkFigureTests: XCTestCase {
    /// A model file: two unpadded convs, each followed by ReLU and a floor-mode max-pool (12 → 10 → 5 → 3 → 1,
    /// so conv2's row and column 2 never reach the logits, nor the first pool's row and column 4 that feed only
    /// them), an identity residual block with BatchNorm, global average pool, linear.
    static let modelFile = """
        {
          "name": "tiny-regions", "version": 1,
          "layers": [
            {"type": "conv", "name": "conv1", "in": 1, "out": 4, "kernel": 3, "padding": 0, "bias": true},
            {"type": "relu", "name": "relu1"},
            {"type": "maxpool2", "name": "pool1"},
            {"type": "conv", "name": "conv2", "in": 4, "out": 6, "kernel": 3, "padding": 0, "bias": false},
            {"type": "batchnorm", "name": "bn2", "channels": 6},
            {"type": "relu", "name": "relu2"},
            {"type": "maxpool2", "name": "pool2"},
            {
              "type": "residual", "name": "block",
              "body": [
                {"type": "conv", "name": "conv1", "in": 6, "out": 6, "kernel": 1, "padding": 0, "bias": false},
                {"type": "batchnorm", "name": "bn1", "channels": 6},
                {"type": "relu", "name": "relu"},
                {"type": "conv", "name": "conv2", "in": 6, "out": 6, "kernel": 1, "padding": 0, "bias": false},
                {"type": "batchnorm", "name": "bn2", "channels": 6}
              ],
              "shortcut": "identity"
            },
            {"type": "global_avgpool", "name": "avgpool"},
            {"type": "flatten", "name": "flatten"},
            {"type": "linear", "name": "fc", "in": 6, "out": 10}
          ]
        }
        """

    static let side = 12

    /// The analysis of the tiny model on 24 synthetic 12×12 images (no network under test).
    static func analysis() throws -> NetworkAnalysisReport {
        let description = try ModelFile.decode(Array(modelFile.utf8))
        let naive = try NaiveNetwork(description, input: (1, side, side), classes: 10)
        let floats = naive.sampleParameters(seed: 7).mapValues { $0.map(Float.init) }
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: side, width: side), classes: 10, tensors: floats)
        var random = SeededRandom(seed: 9, stream: 1)
        let count = 24
        let pixels = (0..<(count * side * side)).map { _ in UInt8(truncatingIfNeeded: random.next() >> 56) }
        let data = Dataset(
            name: "synthetic/test", count: count, rows: side, columns: side, pixels: pixels,
            labels: (0..<count).map { UInt8($0 % 10) })
        let options = NetworkAnalysisOptions(
            sweepImages: 8, threads: 2, gradientImages: 0, dataAwareImages: 8, maskImages: 8, maskPatches: 64,
            regionPairs: 1, regionSamples: 64, regionSpan: 1)
        return try NetworkAnalyzer(network: network, testSet: data, options: options).run()
    }

    func testFiguresAndReportOfATinyModelFile() throws {
        let report = try Self.analysis()
        XCTAssertTrue(report.allChecksPassed, "\(report.failedChecks.map(\.id))")
        let regions = try XCTUnwrap(report.regions)
        XCTAssertEqual(regions.segments.count, 2)
        // The figures and the report are drawn from analysis.json as written and read back.
        let jsonData = try report.jsonData()
        let decoded = try NetworkAnalysisReport(jsonData: jsonData)

        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = try Figures.layerFigures(decoded).map { try $0.write(to: dir, format: .png) }
        XCTAssertEqual(
            files.map(\.name),
            [
                "layer_spectra", "spectra_by_depth", "ranks_by_depth", "layer_truncation", "truncation_heatmap",
                "layer_masks",
                "operators_by_depth", "segment_pieces", "segment_logits",
            ])
        for f in files {
            let size = try FileChecks.pngSize(Data(contentsOf: dir.appendingPathComponent("\(f.name).png")))
            XCTAssertEqual(size.width, f.width, f.name)
            XCTAssertEqual(size.height, f.height, f.name)
            let stats = try FileChecks.pngPixelStatistics(dir.appendingPathComponent("\(f.name).png"))
            XCTAssertGreaterThan(stats.nonWhiteFraction, 0.01, "\(f.name) is blank")
        }

        let html = try NetworkReport.render(decoded, device: "none", command: "convsvd analyze", figures: files)
        for layer in decoded.layers { XCTAssertTrue(html.contains("<details id=\"layer-\(layer.name)\">"), layer.name) }
        XCTAssertTrue(html.contains("<section id=\"regions\">"))
        XCTAssertTrue(html.contains("<details id=\"regions-sites\">"))
        XCTAssertTrue(html.contains("regions.midpoint-affine"), "the section's own checks")
        XCTAssertEqual(html.components(separatedBy: "data:image/png;base64,").count - 1, files.count)

        // Every number of the regions tables against analysis.json parsed as plain JSON.
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: jsonData) as? [String: Any])
        let jsonRegions = try XCTUnwrap(json["regions"] as? [String: Any])
        let segments = try XCTUnwrap(jsonRegions["segments"] as? [[String: Any]])
        let rows = Self.rows(html, class: "segment")
        XCTAssertEqual(rows.count, segments.count)
        for (i, s) in segments.enumerated() {
            let cells = try XCTUnwrap(rows[i])
            XCTAssertEqual(cells.count, 10, "\(cells)")
            XCTAssertEqual(cells[1], "\(s["first"] as! Int) → \(s["second"] as! Int)")
            XCTAssertEqual(cells[2], "\(s["firstLabel"] as! Int) → \(s["secondLabel"] as! Int)")
            XCTAssertEqual(Int(cells[4]), s["pieces"] as? Int, "pieces of segment \(i)")
            XCTAssertEqual(Int(cells[5]), s["piecesReachingLogits"] as? Int, "pieces of the function, segment \(i)")
            // Printed to 4 significant digits (3 below 1e-3): equal within half a unit of the last (5e-3 relative).
            for (cell, key) in [
                (3, "length"), (6, "piecesPerUnitLength"), (7, "shortestPiece"), (8, "midpointMaxRelativeError"),
                (9, "knotLogitsMaxRelativeDifference"),
            ] {
                let expected = try XCTUnwrap(s[key] as? Double, key)
                let printed = try XCTUnwrap(Double(cells[cell]), "\(key): \(cells[cell])")
                XCTAssertEqual(printed, expected, accuracy: 5e-3 * abs(expected) + 1e-300, key)
            }
        }
        XCTAssertGreaterThan(
            segments.map { $0["pieces"] as! Int }.reduce(0, +),
            segments.map { $0["piecesReachingLogits"] as! Int }.reduce(0, +),
            "the floor-mode pool's lost row and column give pieces that do not reach the logits")
        let sampled = try XCTUnwrap(jsonRegions["sampled"] as? [[String: Any]])
        let sampledRows = Self.rows(html, class: "sampled-segment")
        XCTAssertEqual(sampledRows.count, sampled.count)
        for (s, cells) in zip(sampled, sampledRows) {
            XCTAssertEqual(Int(cells[1]), s["samples"] as? Int)
            XCTAssertEqual(cells[2], "\(s["sampledPieces"] as! Int) / \(s["exactPieces"] as! Int)")
            XCTAssertEqual(
                cells[3], "\(s["sampledPiecesReachingLogits"] as! Int) / \(s["exactPiecesReachingLogits"] as! Int)")
        }
        // The residual blocks' bounds.
        let blocks = try XCTUnwrap((json["operators"] as? [String: Any])?["blocks"] as? [[String: Any]])
        let blockRows = Self.rows(html, class: "block")
        XCTAssertEqual(blockRows.count, blocks.count)
        XCTAssertFalse(blocks.isEmpty)
        for (b, cells) in zip(blocks, blockRows) {
            XCTAssertEqual(cells[0], b["firstLayer"] as? String)
            for (cell, key) in [(1, "body"), (2, "shortcut"), (3, "bound")] {
                let expected = try XCTUnwrap(b[key] as? Double, key)
                let printed = try XCTUnwrap(Double(cells[cell]), "\(key): \(cells[cell])")
                XCTAssertEqual(printed, expected, accuracy: 5e-3 * abs(expected), key)
            }
        }
        // The segment_logits caption counts the traced segment's pieces from the trace.
        let trace = try XCTUnwrap(jsonRegions["trace"] as? [String: Any])
        let traced = segments[try XCTUnwrap(trace["segment"] as? Int)]
        let caption = try XCTUnwrap(files.first { $0.name == "segment_logits" }?.caption)
        XCTAssertTrue(caption.contains("\(traced["pieces"] as! Int) pieces"), caption)
        XCTAssertTrue(caption.contains("test image \(traced["first"] as! Int) "), caption)
    }

    /// Inputs the new figures cannot draw are refused with the figure named:
    /// a trace whose per-breakpoint arrays do not match its cut points, a
    /// site index beyond the sites, per-layer bounds of the wrong count.
    func testMalformedRegionsAndOperatorsAreRefused() throws {
        let report = try Self.analysis()
        let regions = try XCTUnwrap(report.regions)
        var short = try XCTUnwrap(regions.trace)
        short.breakpointSites.removeLast()
        XCTAssertThrowsError(try Figures.segmentLogits(short, report: regions)) {
            XCTAssertTrue("\($0)".contains("segment_logits"), "\($0)")
        }
        var beyond = try XCTUnwrap(regions.trace)
        beyond.breakpointSites[0] = regions.sites.count
        XCTAssertThrowsError(try Figures.segmentLogits(beyond, report: regions))
        var noSites = regions
        noSites.segments[0].eventsPerSite.removeLast()
        XCTAssertThrowsError(try Figures.segmentPieces(noSites)) {
            XCTAssertTrue("\($0)".contains("segment_pieces"), "\($0)")
        }
        var bounds = report
        bounds.operators.upperBounds.removeLast()
        XCTAssertThrowsError(try Figures.operatorsByDepth(bounds)) {
            XCTAssertTrue("\($0)".contains("operators_by_depth"), "\($0)")
        }
        // The well-formed inputs draw.
        XCTAssertNoThrow(try Figures.segmentLogits(try XCTUnwrap(regions.trace), report: regions))
        XCTAssertNoThrow(try Figures.operatorsByDepth(report))
    }

    /// The text of each cell of the rows `<tr class="cls" …>`, in order.
    static func rows(_ html: String, class cls: String) -> [[String]] {
        html.components(separatedBy: "<tr class=\"\(cls)\"").dropFirst().map { row in
            let body = row.components(separatedBy: "</tr>")[0]
            return body.components(separatedBy: "<td>").dropFirst().map {
                HTMLEntities.decode($0.components(separatedBy: "</td>")[0])
            }
        }
    }
}

/// The few entities ``Figures/HTMLReport/escape`` writes.
enum HTMLEntities {
    static func decode(_ s: String) -> String {
        s.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
