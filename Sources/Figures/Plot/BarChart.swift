import Foundation

/// One group of bars: one value per category, in one colour.
public struct BarGroup: Sendable {
    public var label: String
    public var values: [Double]
    public var color: RGB
    public init(_ label: String, values: [Double], color: RGB) {
        self.label = label
        self.values = values
        self.color = color
    }
}

/// A (grouped) bar chart: categories along x, one bar per group in each.
/// On a log y axis bars start at the axis' lower bound.
public struct BarChart: Sendable {
    public var title: String
    public var categories: [String]
    public var groups: [BarGroup]
    public var xLabel: String
    public var y: Axis
    /// Print each bar's value above it, with this formatter.
    public var valueLabel: (@Sendable (Double) -> String)?
    /// Horizontal reference lines (e.g. a bound), labelled at the right end.
    public var referenceLines: [ReferenceLine]

    public init(
        title: String, categories: [String], groups: [BarGroup], xLabel: String, y: Axis,
        valueLabel: (@Sendable (Double) -> String)? = nil, referenceLines: [ReferenceLine] = []
    ) {
        for g in groups {
            precondition(
                g.values.count == categories.count,
                "BarChart \(title): group \(g.label) has \(g.values.count) values for \(categories.count) categories")
        }
        self.title = title
        self.categories = categories
        self.groups = groups
        self.xLabel = xLabel
        self.y = y
        self.valueLabel = valueLabel
        self.referenceLines = referenceLines
    }

    public func draw(on canvas: Canvas, in panel: Rect) {
        var values = groups.flatMap(\.values).filter { $0.isFinite && (y.scale == .linear || $0 > 0) }
        values += referenceLines.map(\.value)
        let low = y.scale == .linear ? min(0, values.min() ?? 0) : (values.min() ?? 1)
        // Room above the tallest bar for its value label.
        let high = values.max() ?? 1
        let headroom = valueLabel == nil ? high : (y.scale == .linear ? high * 1.08 : high * 2.5)
        let yTicks = y.ticks(dataLow: low, dataHigh: headroom, target: 6)

        // Category positions 0…n−1 on a linear x axis with half a slot each side.
        let n = categories.count
        let xTicks = Ticks(values: (0..<n).map(Double.init), labels: categories, range: -0.5...(Double(n) - 0.5))
        let slotGuess = (panel.width - 120) / Double(max(n, 1))
        let widest = categories.map { canvas.textWidth($0, size: FontSize.tick) }.max() ?? 0
        let angle = widest > slotGuess - 6 ? -Double.pi / 2 : 0
        let legend = Legend(
            entries: groups.map {
                LegendEntry(label: $0.label, color: $0.color, line: false, dash: [], marker: nil, bar: true)
            })
        let frame = drawAxes(
            on: canvas, in: panel, title: title, x: Axis(xLabel), xTicks: xTicks, y: y, yTicks: yTicks,
            xTickAngle: angle, grid: false)
        let area = frame.area
        // Horizontal grid only: vertical lines would cut through the bars.
        for v in yTicks.values {
            let p = frame.py(v)
            canvas.line(from: (area.minX, p), to: (area.maxX, p), .lightGrey)
        }
        let slot = area.width / Double(max(n, 1))
        let barWidth = slot * 0.8 / Double(max(groups.count, 1))
        let base = y.scale == .linear ? frame.py(max(0, yTicks.range.lowerBound)) : area.maxY
        var tops: [(Double, Double)] = []
        for (gi, g) in groups.enumerated() {
            for (ci, v) in g.values.enumerated() where v.isFinite {
                let x0 = area.minX + slot * Double(ci) + slot * 0.1 + barWidth * Double(gi)
                let top = y.scale == .linear ? frame.py(v) : (v > 0 ? frame.py(v) : area.maxY)
                let r = Rect(x: x0, y: min(top, base), width: barWidth, height: abs(base - top))
                canvas.fill(r, g.color)
                tops.append((r.midX, r.minY))
                if let valueLabel {
                    canvas.text(valueLabel(v), x: r.midX, y: r.minY - 3, size: FontSize.caption, h: .center, v: .bottom)
                }
            }
        }
        for line in referenceLines where line.orientation == .horizontal {
            let p = frame.py(line.value)
            guard p.isFinite else { continue }
            canvas.line(from: (area.minX, p), to: (area.maxX, p), line.color, lineWidth: 1.5, dash: line.dash)
            canvas.text(
                line.label, x: area.maxX - 6, y: p - 3, size: FontSize.caption, color: line.color, h: .right, v: .bottom
            )
        }
        canvas.stroke(area, .ink, lineWidth: 1.2)
        if groups.count > 1 {
            var points = tops
            // Bars fill down to the base: sample their bodies for legend placement.
            for (x, top) in tops {
                for f in stride(from: 0.0, through: 1, by: 0.1) { points.append((x, top + f * (base - top))) }
            }
            legend.draw(on: canvas, at: legend.bestCorner(on: canvas, in: area, points: points))
        }
    }
}
