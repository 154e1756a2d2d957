import Analysis
import Figures
import Foundation
import XCTest

/// Figure inputs: shapes are checked with clear errors, and the one
/// computation the figures do (activation projections) matches a hand calculation.
final class FigureInputTests: XCTestCase {
    func assertInvalid(
        _ body: @autoclosure () throws -> Figure, mentions text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let figureError = error as? FigureError, case .invalidInput = figureError else {
                return XCTFail("expected FigureError.invalidInput, got \(error)", file: file, line: line)
            }
            XCTAssertTrue("\(error)".contains(text), "\"\(error)\" does not mention \(text)", file: file, line: line)
        }
    }

    /// The regions figure refuses a trace whose cut points do not rise from 0 to 1 or whose rows do not match.
    func testRegionTraceOfTheWrongShapeIsRefused() throws {
        let regions = try XCTUnwrap(Fixture.report.layerOperators?.regionsAlongLines)
        var trace = try XCTUnwrap(regions.figure)
        XCTAssertNoThrow(try Figures.logitsAlongSegment(trace, report: regions))
        trace.t.swapAt(1, 2)
        assertInvalid(
            try Figures.logitsAlongSegment(trace, report: regions), mentions: "t must rise strictly from 0 to 1")
        trace = regions.figure!
        trace.logits.removeLast()
        assertInvalid(try Figures.logitsAlongSegment(trace, report: regions), mentions: "logit rows")
    }

    func testAccuracyGivenInPercentIsRefused() {
        let history = Figures.TrainingHistory(epochs: [
            Figures.EpochRecord(epoch: 1, loss: 0.3, trainAccuracy: 97, testAccuracy: 96, seconds: 1)
        ])
        assertInvalid(try Figures.trainingCurves(history), mentions: "fractions in [0, 1]")
        assertInvalid(
            try Figures.accuracyVsRank(
                [Figures.AccuracySeries(label: "conv1", ranks: [1], accuracy: [98])],
                fullRankAccuracy: 0.98), mentions: "fractions")
    }

    func testMismatchedLengthsAreRefused() {
        assertInvalid(
            try Figures.reconstructionError([
                Figures.ReconstructionSeries(
                    name: "conv1", ranks: [1, 2], fromMatrices: [0.5],
                    fromSigma: [0.5, 0])
            ]),
            mentions: "2 ranks, 1 measured")
        assertInvalid(
            try Figures.eigenfilters(
                layer: "conv1", vt: MatrixValues(rows: 2, columns: 9, values: Array(repeating: 0, count: 18)),
                sigma: [1], inputChannels: 1),
            mentions: "1 singular values for 2 rows")
        assertInvalid(
            try Figures.eigenfilters(
                layer: "conv2", vt: MatrixValues(rows: 1, columns: 9, values: Array(repeating: 0, count: 9)),
                sigma: [1], inputChannels: 8),
            mentions: "expected in·k·k = 72")
        assertInvalid(
            try Figures.reluMaskCounts([
                Figures.MaskCountPanel(
                    name: "conv1", units: 8, rank: 8, coverBound: [2, 16],
                    observed: [("x", 3)])
            ]),
            mentions: "2 Cover bounds for n = 8")
        assertInvalid(
            try Figures.activationProjections(
                [Figures.ProjectionPanel(title: "p", x: [1, 2], y: [1], classes: [0, 1])],
                layerDescription: ""), mentions: "2 x, 1 y")
        assertInvalid(
            try Figures.compression(
                [Figures.CompressedLayer(name: "conv1", denseMultiplyAdds: 10, multiplyAdds: 5)], bounds: [1, 2],
                changes: [0.5], accuracy: (0.9, 0.8)), mentions: "2 bounds for 1 changes")
        assertInvalid(
            try Figures.compression([], bounds: [], changes: [], accuracy: (0.9, 0.8)), mentions: "no layers")
        assertInvalid(try Figures.compressionGrid([], denseAccuracy: 0.9), mentions: "no settings")
        assertInvalid(
            try Figures.compressionGrid(
                [
                    Figures.CompressionSetting(
                        convMultiplyAddRatio: 0.5, dataAware: false, accuracy: 0.9, finetunedAccuracy: nil,
                        timeRatio: .infinity)
                ], denseAccuracy: 0.9), mentions: "non-finite")
        assertInvalid(try Figures.singularValues([]), mentions: "no layers")
        assertInvalid(
            try Figures.singularValues([Figures.SigmaSeries(name: "conv1", sigma: [1, .nan])]), mentions: "finite")
    }

    func testCanvasRefusesAnAbsurdSize() {
        XCTAssertThrowsError(try Canvas(width: 0, height: 600, format: .png))
        XCTAssertThrowsError(try Canvas(width: 900, height: 100_000, format: .svg))
    }

    /// Two digits, two channels, three positions, U = [[0.6, 0.8], [0.8, −0.6]]
    /// (u₁ = (0.6, 0.8), u₂ = (0.8, −0.6)); the two strongest positions per digit.
    ///
    /// Digit 0: a at positions 0, 1, 2 = (1, 2), (−3, 1), (0, 0); norms² 5, 10, 0 → positions 1, 0.
    ///   (−3, 1): u₁ᵀa = −1.8 + 0.8 = −1.0, u₂ᵀa = −2.4 − 0.6 = −3.0; ReLU → (0, 1): 0.8, −0.6.
    ///   (1, 2):  u₁ᵀa = 0.6 + 1.6 = 2.2,   u₂ᵀa = 0.8 − 1.2 = −0.4; unchanged by ReLU.
    /// Digit 1: a = (0, 0), (0, 0), (0, −2); only position 2 is non-zero.
    ///   (0, −2): u₁ᵀa = −1.6, u₂ᵀa = 1.2; ReLU → (0, 0): 0, 0.
    func testProjectionsMatchAHandCalculation() throws {
        let pre: [Double] = [
            1, -3, 0,  // digit 0, channel 0
            2, 1, 0,  // digit 0, channel 1
            0, 0, 0, 0, 0, -2,  // digit 1
        ]
        let panels = try Figures.projectionPanels(
            layer: "conv1", preActivations: pre, count: 2, channels: 2, positions: 3,
            u: [[0.6, 0.8], [0.8, -0.6]], classes: [3, 7], positionsPerDigit: 2)
        XCTAssertEqual(panels.count, 2)
        let before = panels[0]
        let after = panels[1]
        XCTAssertEqual(before.classes, [3, 3, 7])
        XCTAssertEqual(after.classes, [3, 3, 7])
        let expected = (bx: [-1.0, 2.2, -1.6], by: [-3.0, -0.4, 1.2], ax: [0.8, 2.2, 0], ay: [-0.6, -0.4, 0])
        for i in 0..<3 {
            XCTAssertEqual(before.x[i], expected.bx[i], accuracy: 1e-12)
            XCTAssertEqual(before.y[i], expected.by[i], accuracy: 1e-12)
            XCTAssertEqual(after.x[i], expected.ax[i], accuracy: 1e-12)
            XCTAssertEqual(after.y[i], expected.ay[i], accuracy: 1e-12)
        }
    }
}
