import Foundation

/// Figures (cairo) and the HTML report.
///
/// Each figure constructor takes plain arrays and structs, checks their
/// shapes (throwing `FigureError.invalidInput`), and returns a `Figure` that
/// can be rendered to PNG, SVG or PDF. `renderAll` maps an analysis report
/// onto the whole set.
public enum Figures {
    /// Series colours for up to ten layers or curves (colour-blind safe).
    static func seriesColor(_ i: Int) -> RGB { Palette.color(i) }

    static let markers: [MarkerShape] = [.circle, .square, .triangle, .diamond]
    static func marker(_ i: Int) -> MarkerShape { markers[i % markers.count] }

    /// `v` with `digits` significant digits, e.g. 2.1703 → "2.17", 0.0912 → "0.0912".
    public static func significant(_ v: Double, _ digits: Int = 3) -> String {
        guard v.isFinite, v != 0 else { return v == 0 ? "0" : "\(v)" }
        let magnitude = Int(floor(log10(abs(v))))
        let decimals = max(0, digits - 1 - magnitude)
        return TickGenerator.format(v, decimals: decimals)
    }

    /// An integer with thin-space thousands separators, e.g. 338000 → "338 000".
    public static func grouped(_ n: Int) -> String {
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "\u{2009}" }
            out.append(c)
        }
        return (n < 0 ? "−" : "") + out
    }

    /// Unicode subscript digits for an index, e.g. 12 → "₁₂".
    public static func subscriptDigits(_ n: Int) -> String {
        let digits: [Character] = ["₀", "₁", "₂", "₃", "₄", "₅", "₆", "₇", "₈", "₉"]
        return String(String(n).compactMap { $0.wholeNumberValue.map { digits[$0] } })
    }

    static func require(_ condition: Bool, _ figure: String, _ reason: @autoclosure () -> String) throws {
        if !condition { throw FigureError.invalidInput(figure: figure, reason: reason()) }
    }
}
