import Figures
import Foundation
import XCTest

/// The plotting layer's rules: nice ticks, colour maps, number formatting.
final class PlotLayerTests: XCTestCase {
    // MARK: Ticks

    func testNiceStepIsOneTwoTwoAndAHalfOrFiveTimesAPowerOfTen() {
        // span / target → the smallest of {1, 2, 2.5, 5, 10}·10ᵏ at or above it, worked by hand.
        XCTAssertEqual(TickGenerator.niceStep(span: 10, target: 5), 2)
        XCTAssertEqual(TickGenerator.niceStep(span: 1, target: 6), 0.2, accuracy: 1e-15)  // 0.1667 → 0.2
        XCTAssertEqual(TickGenerator.niceStep(span: 7, target: 6), 2)  // 1.1667 → 2
        XCTAssertEqual(TickGenerator.niceStep(span: 0.9, target: 4), 0.25, accuracy: 1e-15)  // 0.225 → 0.25
        XCTAssertEqual(TickGenerator.niceStep(span: 3000, target: 7), 500)  // 428.6 → 500
        XCTAssertEqual(TickGenerator.niceStep(span: 60, target: 6), 10)  // exactly 10
    }

    func testLinearTicksWidenToWholeStepsAndLabelCleanly() {
        let t = TickGenerator.linear(low: 0.13, high: 0.87, target: 5)
        XCTAssertEqual(t.values.count, t.labels.count)
        XCTAssertEqual(t.labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        XCTAssertEqual(t.range.lowerBound, 0, accuracy: 1e-12)
        XCTAssertEqual(t.range.upperBound, 1, accuracy: 1e-12)

        // span 8.1 / 4 = 2.025 → step 2.5, which needs one decimal.
        let negative = TickGenerator.linear(low: -3.2, high: 4.9, target: 4)
        XCTAssertEqual(negative.labels, ["−5.0", "−2.5", "0.0", "2.5", "5.0"])

        let inside = TickGenerator.linear(low: 0.13, high: 0.87, target: 5, widen: false)
        XCTAssertEqual(inside.labels, ["0.2", "0.4", "0.6", "0.8"])
        XCTAssertEqual(inside.range, 0.13...0.87)

        let quarter = TickGenerator.linear(low: 0, high: 0.9, target: 4)
        XCTAssertEqual(quarter.labels, ["0.00", "0.25", "0.50", "0.75", "1.00"])
    }

    func testLogTicksCoverWholeDecades() {
        let wide = TickGenerator.log(low: 3e-5, high: 40)
        XCTAssertEqual(wide.range.lowerBound, 1e-5, accuracy: 1e-20)
        XCTAssertEqual(wide.range.upperBound, 100, accuracy: 1e-12)
        XCTAssertEqual(wide.labels, ["10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰", "10¹", "10²"])

        // Three decades or fewer: 2× and 5× ticks too, plain numbers.
        let narrow = TickGenerator.log(low: 0.03, high: 2)
        XCTAssertEqual(narrow.labels, ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10"])
    }

    func testSuperscriptsAndSubscripts() {
        XCTAssertEqual(TickGenerator.superscript(-12), "⁻¹²")
        XCTAssertEqual(TickGenerator.superscript(16), "¹⁶")
        XCTAssertEqual(Figures.subscriptDigits(10), "₁₀")
        XCTAssertEqual(Figures.significant(2.1703), "2.17")
        XCTAssertEqual(Figures.significant(0.09123), "0.0912")
        XCTAssertEqual(Figures.significant(-1234.4, 2), "−1234")
        XCTAssertEqual(Figures.grouped(338000), "338\u{2009}000")
        XCTAssertEqual(Figures.grouped(999), "999")
    }

    // MARK: Colour maps

    /// CIE L*a*b* (D65) of an sRGB colour, written here from the standard
    /// formulas as an independent reference.
    func lab(_ c: RGB) -> (l: Double, a: Double, b: Double) {
        func lin(_ v: Double) -> Double { v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4) }
        let r = lin(c.red)
        let g = lin(c.green)
        let b = lin(c.blue)
        let x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
        let y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
        let z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883
        func f(_ t: Double) -> Double { t > 216.0 / 24389 ? cbrt(t) : (24389.0 / 27 * t + 16) / 116 }
        return (116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z)))
    }

    func testDivergingMapIsWhiteAtZeroAndSymmetricInLightness() {
        let map = ColorMap.diverging
        XCTAssertTrue(map.isDiverging)
        let centre = map.color(at: 0.5)
        XCTAssertEqual(centre.red, 0xF7 / 255.0, accuracy: 1 / 255)
        XCTAssertEqual(centre.green, 0xF7 / 255.0, accuracy: 1 / 255)
        XCTAssertEqual(centre.blue, 0xF7 / 255.0, accuracy: 1 / 255)
        let ts = (0...40).map { Double($0) / 40 }
        let l = ts.map { lab(map.color(at: $0)).l }
        for i in 0..<20 { XCTAssertLessThan(l[i], l[i + 1], "lightness must rise towards zero (t = \(ts[i]))") }
        for i in 20..<40 { XCTAssertGreaterThan(l[i], l[i + 1], "lightness must fall away from zero (t = \(ts[i]))") }
        // Equal |value| → equal darkness within 2 L* units (just-noticeable difference ~2).
        for i in 0...20 { XCTAssertEqual(l[i], l[40 - i], accuracy: 2, "t = \(ts[i])") }
        // Negative is blue (b* < 0), positive is orange (b* > 0).
        XCTAssertLessThan(lab(map.color(at: 0.1)).b, -15)
        XCTAssertGreaterThan(lab(map.color(at: 0.9)).b, 15)
    }

    func testSequentialMapRisesInLightness() {
        let l = (0...40).map { lab(ColorMap.sequential.color(at: Double($0) / 40)).l }
        for i in 0..<40 { XCTAssertLessThan(l[i], l[i + 1]) }
        XCTAssertGreaterThan(l[40] - l[0], 60, "too little lightness range to read values in grey")
    }

    func testMapsClampAndShowMissingValuesAsGrey() {
        XCTAssertEqual(ColorMap.sequential.color(at: -3), ColorMap.sequential.color(at: 0))
        XCTAssertEqual(ColorMap.sequential.color(at: 7), ColorMap.sequential.color(at: 1))
        XCTAssertEqual(ColorMap.diverging.color(at: .nan), RGB.lightGrey)
    }

    func testCategoricalPaletteHasTenClearlyDifferentColours() {
        XCTAssertEqual(Palette.categorical.count, 10)
        var closest = Double.infinity
        for i in 0..<10 {
            for j in (i + 1)..<10 {
                let p = lab(Palette.color(i))
                let q = lab(Palette.color(j))
                closest = min(
                    closest,
                    ((p.l - q.l) * (p.l - q.l) + (p.a - q.a) * (p.a - q.a) + (p.b - q.b) * (p.b - q.b)).squareRoot())
            }
        }
        // ΔE*76 > 20 between every pair: far beyond a noticeable difference (~2.3).
        XCTAssertGreaterThan(closest, 20)
        XCTAssertEqual(Palette.color(12), Palette.color(2))
    }

    func testColourRangeIsSymmetricForDivergingMaps() {
        XCTAssertEqual(colorRange(of: [-0.2, 0.5, .nan], map: .diverging), -0.5...0.5)
        XCTAssertEqual(colorRange(of: [0.2, 0.5], map: .sequential), 0.2...0.5)
        XCTAssertEqual(colorRange(of: [0, 0], map: .diverging), -1...1)
    }

    func testHexStringsRoundTrip() {
        XCTAssertEqual(RGB(hex: 0x1F4E79).hexString, "#1f4e79")
    }
}
