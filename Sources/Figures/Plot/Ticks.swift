import Foundation

/// How an axis maps values to positions.
public enum AxisScale: Sendable, Equatable {
    case linear
    /// Base-10 logarithmic; values ≤ 0 are not drawn.
    case log10
}

/// Tick positions and their labels for one axis.
public struct Ticks: Equatable, Sendable {
    public var values: [Double]
    public var labels: [String]
    /// The axis range the ticks were chosen for (possibly widened to whole steps).
    public var range: ClosedRange<Double>
}

/// The "nice numbers" tick rule: a step of 1, 2, 2.5 or 5 × 10ᵏ chosen so that
/// the range holds about `target` steps, and bounds widened outwards to whole
/// steps, so that every tick label is short and round.
public enum TickGenerator {
    /// The nice step for a span split into about `target` intervals: the
    /// smallest of {1, 2, 2.5, 5, 10} × 10ᵏ that is ≥ span / target.
    public static func niceStep(span: Double, target: Int) -> Double {
        precondition(span > 0 && target > 0, "niceStep: span \(span), target \(target)")
        let raw = span / Double(target)
        let magnitude = pow(10, floor(Foundation.log10(raw)))
        for m in [1.0, 2.0, 2.5, 5.0, 10.0] where m * magnitude >= raw * (1 - 1e-9) {
            return m * magnitude
        }
        return 10 * magnitude
    }

    /// Linear ticks covering [low, high]. With `widen`, the range grows to the
    /// enclosing multiples of the step; otherwise ticks stay inside it.
    public static func linear(low: Double, high: Double, target: Int = 6, widen: Bool = true) -> Ticks {
        var lo = low
        var hi = high
        if !(lo.isFinite && hi.isFinite) {
            lo = 0
            hi = 1
        }
        if hi < lo { swap(&lo, &hi) }
        if hi - lo < 1e-300 {
            // A flat series: show a unit-wide window around the value.
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= pad
            hi += pad
        }
        let step = niceStep(span: hi - lo, target: target)
        let first = widen ? floor(lo / step + 1e-9) * step : ceil(lo / step - 1e-9) * step
        let last = widen ? ceil(hi / step - 1e-9) * step : floor(hi / step + 1e-9) * step
        var values: [Double] = []
        var v = first
        while v <= last + step * 1e-9 {
            values.append(abs(v) < step * 1e-9 ? 0 : v)
            v = first + Double(values.count) * step
        }
        let decimals = decimalsFor(step: step)
        let labels = values.map { format($0, decimals: decimals) }
        return Ticks(values: values, labels: labels, range: widen ? first...last : lo...hi)
    }

    /// Log ticks at powers of ten covering [low, high] (low > 0), widened to
    /// whole decades. When the range covers three decades or fewer, 2× and 5×
    /// ticks are added so that the axis still has several labels.
    public static func log(low: Double, high: Double) -> Ticks {
        var lo = max(low, 1e-300)
        var hi = max(high, lo * 10)
        if !(lo.isFinite && hi.isFinite) {
            lo = 1
            hi = 10
        }
        let firstDecade = Int(floor(Foundation.log10(lo) + 1e-9))
        let lastDecade = max(Int(ceil(Foundation.log10(hi) - 1e-9)), firstDecade + 1)
        let decades = lastDecade - firstDecade
        // Label every decade, or every 2nd/3rd… when there are many.
        let stride = max(1, Int(ceil(Double(decades) / 8)))
        var values: [Double] = []
        for d in firstDecade...lastDecade {
            if (d - firstDecade) % stride == 0 { values.append(pow(10, Double(d))) }
            if decades <= 3 && d < lastDecade {
                values.append(2 * pow(10, Double(d)))
                values.append(5 * pow(10, Double(d)))
            }
        }
        let plain = firstDecade >= -2 && lastDecade <= 5
        let labels = values.map { v -> String in
            let e = Int(floor(Foundation.log10(v) + 1e-9))
            let mantissa = (v / pow(10, Double(e))).rounded()
            if plain {
                return format(v, decimals: max(0, -e))
            }
            return mantissa == 1 ? "10" + superscript(e) : "\(Int(mantissa))·10" + superscript(e)
        }
        return Ticks(values: values, labels: labels, range: pow(10, Double(firstDecade))...pow(10, Double(lastDecade)))
    }

    /// Decimals needed to write multiples of `step` exactly: the smallest d
    /// with step·10ᵈ a whole number (0 for 1, 2, 5, 10…; 1 for 0.2 and 2.5; 2 for 0.25).
    static func decimalsFor(step: Double) -> Int {
        var d = 0
        while d < 15 {
            let scaled = step * pow(10, Double(d))
            if abs(scaled - scaled.rounded()) <= 1e-6 * max(1, scaled) { return d }
            d += 1
        }
        return d
    }

    /// `v` with `decimals` digits after the point, with a true minus sign.
    public static func format(_ v: Double, decimals: Int) -> String {
        let s = String(format: "%.\(decimals)f", v == 0 ? 0 : v)
        return s.hasPrefix("-") ? "−" + s.dropFirst() : s
    }

    /// An integer in Unicode superscript digits, e.g. −3 → "⁻³".
    public static func superscript(_ n: Int) -> String {
        let digits: [Character] = ["⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"]
        let body = String(abs(n)).map { digits[Int(String($0))!] }
        return (n < 0 ? "⁻" : "") + String(body)
    }
}
