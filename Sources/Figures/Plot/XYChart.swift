import Foundation

/// A data series of an x–y chart.
public struct Series: Sendable {
    public enum Style: Sendable { case line, markers, lineAndMarkers }

    public var label: String
    public var x: [Double]
    public var y: [Double]
    public var color: RGB
    public var style: Style
    public var marker: MarkerShape
    public var dash: [Double]
    public var lineWidth: Double
    public var markerRadius: Double
    /// Marker opacity; below 1 for dense scatter plots, so that overlaps show.
    public var alpha: Double

    public init(
        _ label: String, x: [Double], y: [Double], color: RGB, style: Style = .lineAndMarkers,
        marker: MarkerShape = .circle, dash: [Double] = [], lineWidth: Double = 2.2,
        markerRadius: Double = 4, alpha: Double = 1
    ) {
        precondition(x.count == y.count, "Series \(label): \(x.count) x values, \(y.count) y values")
        self.label = label
        self.x = x
        self.y = y
        self.color = color
        self.style = style
        self.marker = marker
        self.dash = dash
        self.lineWidth = lineWidth
        self.markerRadius = markerRadius
        self.alpha = alpha
    }
}

/// A horizontal or vertical reference line with a label at its end.
public struct ReferenceLine: Sendable {
    public enum Orientation: Sendable { case horizontal, vertical }
    public var value: Double
    public var orientation: Orientation
    public var label: String
    public var color: RGB
    public var dash: [Double]
    /// Name the line in the legend instead of beside it (for a line that data runs along).
    public var inLegend: Bool

    public init(
        _ orientation: Orientation, at value: Double, label: String, color: RGB = .midGrey, dash: [Double] = [6, 4],
        inLegend: Bool = false
    ) {
        self.orientation = orientation
        self.value = value
        self.label = label
        self.color = color
        self.dash = dash
        self.inLegend = inLegend
    }
}

/// A line and/or scatter chart in one panel: axes, series, reference lines,
/// and a legend when more than one series is labelled.
public struct XYChart: Sendable {
    public var title: String
    public var x: Axis
    public var y: Axis
    public var series: [Series]
    public var referenceLines: [ReferenceLine]
    /// Put the legend in a column right of the plot (for many entries).
    public var legendOutside: Bool

    public init(
        title: String, x: Axis, y: Axis, series: [Series], referenceLines: [ReferenceLine] = [],
        legendOutside: Bool = false
    ) {
        self.title = title
        self.x = x
        self.y = y
        self.series = series
        self.referenceLines = referenceLines
        self.legendOutside = legendOutside
    }

    /// The finite (and, on a log axis, positive) values of one coordinate.
    private static func usable(_ values: [Double], _ scale: AxisScale) -> [Double] {
        values.filter { $0.isFinite && (scale == .linear || $0 > 0) }
    }

    public func draw(on canvas: Canvas, in panel: Rect) {
        let xs =
            series.flatMap { Self.usable($0.x, x.scale) }
            + Self.usable(referenceLines.filter { $0.orientation == .vertical }.map(\.value), x.scale)
        let ys =
            series.flatMap { Self.usable($0.y, y.scale) }
            + Self.usable(referenceLines.filter { $0.orientation == .horizontal }.map(\.value), y.scale)
        let xTicks = x.ticks(dataLow: xs.min() ?? 0, dataHigh: xs.max() ?? 1, target: 7)
        let yTicks = y.ticks(dataLow: ys.min() ?? 0, dataHigh: ys.max() ?? 1, target: 6)

        let labelled = series.filter { !$0.label.isEmpty }
        let legend = Legend(
            entries: labelled.map {
                LegendEntry(
                    label: $0.label, color: $0.color, line: $0.style != .markers, dash: $0.dash,
                    marker: $0.style == .line ? nil : $0.marker)
            }
                + referenceLines.filter(\.inLegend).map {
                    LegendEntry(label: $0.label, color: $0.color, line: true, dash: $0.dash, marker: nil)
                })
        let showLegend = legend.entries.count > 1
        let reserve = showLegend && legendOutside ? legend.size(on: canvas).width + 12 : 0
        let frame = drawAxes(
            on: canvas, in: panel, title: title, x: x, xTicks: xTicks, y: y, yTicks: yTicks,
            rightReserve: reserve)
        let area = frame.area

        var drawn: [(Double, Double)] = []
        canvas.clipped(to: area.inset(top: -6, left: -6, bottom: -6, right: -6)) {
            for line in referenceLines {
                switch line.orientation {
                case .horizontal:
                    let p = frame.py(line.value)
                    guard p.isFinite else { continue }
                    canvas.line(from: (area.minX, p), to: (area.maxX, p), line.color, lineWidth: 1.5, dash: line.dash)
                    if line.inLegend { continue }
                    // The label sits above its line, or below it when the line is near the top.
                    let above = p - area.minY > 22
                    canvas.text(
                        line.label, x: area.minX + 6, y: above ? p - 3 : p + 3, size: FontSize.caption,
                        color: line.color, v: above ? .bottom : .top)
                    let w = canvas.textWidth(line.label, size: FontSize.caption)
                    drawn += stride(from: 0.0, through: w, by: 8).map { (area.minX + 6 + $0, above ? p - 8 : p + 8) }
                case .vertical:
                    let p = frame.px(line.value)
                    guard p.isFinite else { continue }
                    canvas.line(from: (p, area.minY), to: (p, area.maxY), line.color, lineWidth: 1.5, dash: line.dash)
                    if line.inLegend { continue }
                    canvas.text(
                        line.label, x: p + 4, y: area.minY + 4, size: FontSize.caption, color: line.color, v: .top)
                    let w = canvas.textWidth(line.label, size: FontSize.caption)
                    drawn += stride(from: 0.0, through: w, by: 8).map { (p + 4 + $0, area.minY + 10) }
                }
            }
            for s in series {
                let points = zip(s.x, s.y).map { (frame.px($0.0), frame.py($0.1)) }
                if s.style != .markers {
                    canvas.polyline(points, s.color, lineWidth: s.lineWidth, dash: s.dash)
                }
                if s.style == .lineAndMarkers {
                    for (px, py) in points where px.isFinite && py.isFinite {
                        canvas.marker(
                            s.marker, x: px, y: py, radius: s.markerRadius, fill: s.color, alpha: s.alpha,
                            outline: .white)
                    }
                } else if s.style == .markers {
                    canvas.markers(s.marker, at: points, radius: s.markerRadius, fill: s.color, alpha: s.alpha)
                }
                drawn += points.filter { $0.0.isFinite && $0.1.isFinite }
                // Polylines cover the space between vertices too: sample it for the legend placement.
                if s.style != .markers {
                    for (a, b) in zip(points, points.dropFirst())
                    where a.0.isFinite && b.0.isFinite && a.1.isFinite && b.1.isFinite {
                        for f in stride(from: 0.1, to: 1, by: 0.1) {
                            drawn.append((a.0 + f * (b.0 - a.0), a.1 + f * (b.1 - a.1)))
                        }
                    }
                }
            }
        }
        if showLegend {
            let box: Rect
            if legendOutside {
                let (w, h) = legend.size(on: canvas)
                box = Rect(x: area.maxX + 12, y: area.minY, width: w, height: h)
            } else {
                box = legend.bestCorner(on: canvas, in: area, points: drawn)
            }
            legend.draw(on: canvas, at: box)
        }
    }
}
