import Foundation

/// One axis of a chart: its label (with the unit in brackets), scale and range.
public struct Axis: Sendable {
    public var label: String
    public var scale: AxisScale
    /// A fixed range; nil fits the data (widened to whole tick steps).
    public var range: ClosedRange<Double>?
    /// Ticks only at whole numbers (ranks, epochs, indices).
    public var integerTicks: Bool
    /// Overrides the tick labels' formatting (linear axes only).
    public var tickFormatter: (@Sendable (Double) -> String)?

    public init(
        _ label: String, scale: AxisScale = .linear, range: ClosedRange<Double>? = nil,
        integerTicks: Bool = false, tickFormatter: (@Sendable (Double) -> String)? = nil
    ) {
        self.label = label
        self.scale = scale
        self.range = range
        self.integerTicks = integerTicks
        self.tickFormatter = tickFormatter
    }

    /// Ticks for data spanning [low, high].
    func ticks(dataLow: Double, dataHigh: Double, target: Int) -> Ticks {
        switch scale {
        case .log10:
            if let range { return TickGenerator.log(low: range.lowerBound, high: range.upperBound).clamped(to: range) }
            return TickGenerator.log(low: dataLow, high: dataHigh)
        case .linear:
            let lo = range?.lowerBound ?? dataLow
            let hi = range?.upperBound ?? dataHigh
            var t: Ticks
            if integerTicks {
                let span = max(hi - lo, 1)
                // Every integer while there are at most 20; beyond, a nice step of 2, 5, 10, 20, 50 …
                // (a 2.5 step is no use on an integer axis, so it becomes 5).
                var step = span <= 20 ? 1 : TickGenerator.niceStep(span: span, target: target)
                let mantissa = step / pow(10, floor(log10(step)))
                if abs(mantissa - 2.5) < 1e-9 { step *= 2 }
                step = max(1, step.rounded())
                let first = range == nil ? floor(lo / step) * step : ceil(lo / step) * step
                var values: [Double] = []
                var v = first
                while v <= hi + 1e-9 {
                    values.append(v)
                    v += step
                }
                // Integer axes keep the data range plus half a unit each side,
                // so that the first and last points are not on the frame.
                let r = range ?? (lo - 0.5)...(hi + 0.5)
                t = Ticks(values: values.filter { r.contains($0) }, labels: [], range: r)
                t.labels = t.values.map { String(Int($0.rounded())) }
            } else {
                var (padLo, padHi) = (lo, hi)
                if range == nil {
                    // 3% headroom so that extreme points do not sit on the frame;
                    // data that starts at or above 0 keeps 0 as its floor.
                    let pad = 0.03 * (hi - lo)
                    padLo = lo >= 0 ? max(0, lo - pad) : lo - pad
                    padHi = hi + pad
                }
                t = TickGenerator.linear(low: padLo, high: padHi, target: target, widen: range == nil)
                if let range { t.range = range }
            }
            if let tickFormatter { t.labels = t.values.map(tickFormatter) }
            return t
        }
    }
}

extension Ticks {
    /// These ticks with values outside `r` removed and the range set to `r`.
    func clamped(to r: ClosedRange<Double>) -> Ticks {
        let slack = 1e-9 * max(abs(r.lowerBound), abs(r.upperBound))
        let kept = zip(values, labels).filter { $0.0 >= r.lowerBound - slack && $0.0 <= r.upperBound + slack }
        return Ticks(values: kept.map(\.0), labels: kept.map(\.1), range: r)
    }
}

/// The value → position map of a plot area, for both axes.
struct Frame {
    let area: Rect
    let xRange: ClosedRange<Double>
    let yRange: ClosedRange<Double>
    let xScale: AxisScale
    let yScale: AxisScale

    private static func t(_ v: Double, _ r: ClosedRange<Double>, _ s: AxisScale) -> Double {
        switch s {
        case .linear:
            return (v - r.lowerBound) / (r.upperBound - r.lowerBound)
        case .log10:
            guard v > 0 else { return .nan }
            return (log10(v) - log10(r.lowerBound)) / (log10(r.upperBound) - log10(r.lowerBound))
        }
    }

    func px(_ x: Double) -> Double { area.minX + Self.t(x, xRange, xScale) * area.width }
    func py(_ y: Double) -> Double { area.maxY - Self.t(y, yRange, yScale) * area.height }
}

/// Draws the axes of a plot area: frame, light grid, ticks, tick labels, axis
/// labels. Returns the frame for placing data. The caller gives the whole
/// panel rectangle; margins are measured from the tick labels' sizes.
func drawAxes(
    on canvas: Canvas, in panel: Rect, title: String, x: Axis, xTicks: Ticks,
    y: Axis, yTicks: Ticks, rightReserve: Double = 0, xTickAngle: Double = 0,
    grid: Bool = true
) -> Frame {
    let tickSize = FontSize.tick
    let labelHeight = canvas.lineHeight(size: FontSize.axisLabel)
    let titleHeight = title.isEmpty ? 8 : canvas.lineHeight(size: FontSize.panelTitle) + 12
    let widestY = yTicks.labels.map { canvas.textWidth($0, size: tickSize) }.max() ?? 0
    let widestX = xTicks.labels.map { canvas.textWidth($0, size: tickSize) }.max() ?? 0
    let xTickHeight = xTickAngle == 0 ? canvas.lineHeight(size: tickSize) : widestX * abs(sin(xTickAngle)) + 8
    let left = 10 + labelHeight + 10 + widestY + 8
    let bottom = 8 + xTickHeight + 8 + labelHeight + 6
    let area = panel.inset(top: titleHeight, left: left, bottom: bottom, right: 14 + rightReserve)
    let frame = Frame(area: area, xRange: xTicks.range, yRange: yTicks.range, xScale: x.scale, yScale: y.scale)

    canvas.text(title, x: area.midX, y: panel.minY + 4, size: FontSize.panelTitle, bold: true, h: .center, v: .top)
    if grid {
        for v in yTicks.values {
            let p = frame.py(v)
            canvas.line(from: (area.minX, p), to: (area.maxX, p), .lightGrey)
        }
        for v in xTicks.values {
            let p = frame.px(v)
            canvas.line(from: (p, area.minY), to: (p, area.maxY), .lightGrey)
        }
    }
    canvas.stroke(area, .ink, lineWidth: 1.2)
    for (v, l) in zip(yTicks.values, yTicks.labels) {
        let p = frame.py(v)
        canvas.line(from: (area.minX - 5, p), to: (area.minX, p), .ink, lineWidth: 1.2)
        canvas.text(l, x: area.minX - 8, y: p, size: tickSize, h: .right, v: .middle)
    }
    for (v, l) in zip(xTicks.values, xTicks.labels) {
        let p = frame.px(v)
        canvas.line(from: (p, area.maxY), to: (p, area.maxY + 5), .ink, lineWidth: 1.2)
        if xTickAngle == 0 {
            canvas.text(l, x: p, y: area.maxY + 8, size: tickSize, h: .center, v: .top)
        } else {
            canvas.text(l, x: p, y: area.maxY + 8, size: tickSize, h: .right, v: .middle, angle: xTickAngle)
        }
    }
    canvas.text(x.label, x: area.midX, y: panel.maxY - 6, size: FontSize.axisLabel, h: .center, v: .bottom)
    canvas.text(
        y.label, x: panel.minX + 10, y: area.midY, size: FontSize.axisLabel, h: .center, v: .top, angle: -.pi / 2)
    return frame
}

/// One legend entry: a swatch drawn like its series, and a label.
struct LegendEntry {
    var label: String
    var color: RGB
    var line: Bool
    var dash: [Double]
    var marker: MarkerShape?
    var bar: Bool = false
}

struct Legend {
    var entries: [LegendEntry]
    static let swatchWidth = 30.0
    static let padding = 8.0

    func size(on canvas: Canvas) -> (width: Double, height: Double) {
        let widest = entries.map { canvas.textWidth($0.label, size: FontSize.legend) }.max() ?? 0
        let rowHeight = canvas.lineHeight(size: FontSize.legend) + 5
        return (
            Self.padding * 2 + Self.swatchWidth + 8 + widest, Self.padding * 2 + rowHeight * Double(entries.count) - 5
        )
    }

    /// The legend's corner rectangle inside `area` that covers the fewest of `points`.
    func bestCorner(on canvas: Canvas, in area: Rect, points: [(Double, Double)]) -> Rect {
        let (w, h) = size(on: canvas)
        let m = 8.0
        let corners = [
            Rect(x: area.maxX - w - m, y: area.minY + m, width: w, height: h),
            Rect(x: area.minX + m, y: area.minY + m, width: w, height: h),
            Rect(x: area.maxX - w - m, y: area.maxY - h - m, width: w, height: h),
            Rect(x: area.minX + m, y: area.maxY - h - m, width: w, height: h),
        ]
        func covered(_ r: Rect) -> Int {
            points.reduce(0) {
                $0 + ($1.0 >= r.minX - 4 && $1.0 <= r.maxX + 4 && $1.1 >= r.minY - 4 && $1.1 <= r.maxY + 4 ? 1 : 0)
            }
        }
        return corners.min { covered($0) < covered($1) }!
    }

    func draw(on canvas: Canvas, at box: Rect) {
        canvas.fill(box, .white, alpha: 0.92)
        canvas.stroke(box, .midGrey, lineWidth: 0.8)
        let rowHeight = canvas.lineHeight(size: FontSize.legend) + 5
        for (i, e) in entries.enumerated() {
            let cy = box.minY + Self.padding + rowHeight * (Double(i) + 0.5) - 2.5
            let x0 = box.minX + Self.padding
            if e.bar {
                canvas.fill(Rect(x: x0 + 4, y: cy - 7, width: Self.swatchWidth - 8, height: 14), e.color)
            }
            if e.line {
                canvas.line(from: (x0, cy), to: (x0 + Self.swatchWidth, cy), e.color, lineWidth: 2.5, dash: e.dash)
            }
            if let m = e.marker {
                canvas.marker(m, x: x0 + Self.swatchWidth / 2, y: cy, radius: 4.5, fill: e.color)
            }
            canvas.text(e.label, x: x0 + Self.swatchWidth + 8, y: cy, size: FontSize.legend, v: .middle)
        }
    }
}
