import Foundation

/// A small matrix of values, row-major, for heatmaps and tiles. NaN cells are
/// left blank (white).
public struct MatrixValues: Sendable, Equatable {
    public var rows: Int
    public var columns: Int
    public var values: [Double]

    public init(rows: Int, columns: Int, values: [Double]) {
        precondition(
            rows > 0 && columns > 0 && values.count == rows * columns,
            "MatrixValues: \(values.count) values for \(rows)×\(columns)")
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    public subscript(r: Int, c: Int) -> Double { values[r * columns + c] }
}

/// The value range a colour map spans: ±max|v| for a diverging map (so that
/// zero is the neutral centre colour), min…max for a sequential one.
public func colorRange(of values: [Double], map: ColorMap) -> ClosedRange<Double> {
    let finite = values.filter(\.isFinite)
    if map.isDiverging {
        let m = finite.map(abs).max() ?? 1
        return m > 0 ? -m...m : -1...1
    }
    let lo = finite.min() ?? 0
    let hi = finite.max() ?? 1
    return hi > lo ? lo...hi : lo...(lo + 1)
}

/// t in [0, 1] for `v` within `range`.
func normalised(_ v: Double, _ range: ClosedRange<Double>) -> Double {
    (v - range.lowerBound) / (range.upperBound - range.lowerBound)
}

/// Draws `m`'s cells as filled squares of `cell` units from (x, y), and a thin outline.
func drawCells(
    _ m: MatrixValues, on canvas: Canvas, x: Double, y: Double, cell: Double,
    map: ColorMap, range: ClosedRange<Double>, dividerEvery: Int? = nil
) {
    // Cell edges on whole pixels, each cell running to the next one's edge, so
    // that cells tile the area exactly with no seam and no overlap; drawn as
    // one image at one image pixel per canvas unit.
    let xs = (0...m.columns).map { Int((x + Double($0) * cell).rounded()) }
    let ys = (0...m.rows).map { Int((y + Double($0) * cell).rounded()) }
    let width = xs[m.columns] - xs[0]
    let height = ys[m.rows] - ys[0]
    guard width > 0, height > 0 else { return }
    let colors = m.values.map { $0.isFinite ? map.color(at: normalised($0, range)) : RGB.white }
    var pixels = [RGB](repeating: .white, count: width * height)
    for r in 0..<m.rows {
        for py in (ys[r] - ys[0])..<(ys[r + 1] - ys[0]) {
            for c in 0..<m.columns {
                let color = colors[r * m.columns + c]
                for px in (xs[c] - xs[0])..<(xs[c + 1] - xs[0]) { pixels[py * width + px] = color }
            }
        }
    }
    canvas.image(pixels, width: width, height: height, x: Double(xs[0]), y: Double(ys[0]))
    if let every = dividerEvery, every > 0 {
        for c in Swift.stride(from: every, to: m.columns, by: every) {
            let px = x + Double(c) * cell
            canvas.line(from: (px, y), to: (px, y + Double(m.rows) * cell), .ink, lineWidth: 1.5)
        }
    }
    canvas.stroke(
        Rect(x: x, y: y, width: Double(m.columns) * cell, height: Double(m.rows) * cell), .midGrey, lineWidth: 0.8)
}

/// A vertical colour bar with ticks and a rotated label; returns nothing, draws in `r`
/// (the bar itself takes the left 18 units; ticks and label the rest).
func drawColorBar(on canvas: Canvas, in r: Rect, map: ColorMap, range: ClosedRange<Double>, label: String) {
    let bar = Rect(x: r.minX, y: r.minY, width: 18, height: r.height)
    canvas.verticalGradient(bar, map: map)
    canvas.stroke(bar, .ink, lineWidth: 0.8)
    let ticks = TickGenerator.linear(low: range.lowerBound, high: range.upperBound, target: 5, widen: false)
    for (v, l) in zip(ticks.values, ticks.labels) {
        let p = bar.maxY - normalised(v, range) * bar.height
        canvas.line(from: (bar.maxX, p), to: (bar.maxX + 4, p), .ink)
        canvas.text(l, x: bar.maxX + 7, y: p, size: FontSize.tick, v: .middle)
    }
    canvas.text(label, x: r.maxX, y: bar.midY, size: FontSize.axisLabel, h: .center, v: .bottom, angle: -.pi / 2)
}

/// Width a colour bar needs: the bar, its widest tick label and the rotated label.
func colorBarWidth(on canvas: Canvas, range: ClosedRange<Double>) -> Double {
    let ticks = TickGenerator.linear(low: range.lowerBound, high: range.upperBound, target: 5, widen: false)
    let widest = ticks.labels.map { canvas.textWidth($0, size: FontSize.tick) }.max() ?? 0
    return 18 + 7 + widest + 10 + canvas.lineHeight(size: FontSize.axisLabel)
}

/// A matrix as a grid of coloured cells, with row and column indices, axis
/// labels and a colour bar.
public struct Heatmap: Sendable {
    public var title: String
    public var matrix: MatrixValues
    public var xLabel: String
    public var yLabel: String
    public var map: ColorMap
    /// Fixed colour range; nil uses `colorRange(of:map:)`.
    public var range: ClosedRange<Double>?
    public var colorBarLabel: String
    /// Labels for rows and columns; nil numbers them from 1.
    public var rowLabels: [String]?
    public var columnLabels: [String]?
    /// Print each cell's value when cells are large enough (≥ 34 units).
    public var annotate: Bool

    public init(
        title: String, matrix: MatrixValues, xLabel: String, yLabel: String, map: ColorMap = .diverging,
        range: ClosedRange<Double>? = nil, colorBarLabel: String, rowLabels: [String]? = nil,
        columnLabels: [String]? = nil, annotate: Bool = true
    ) {
        self.title = title
        self.matrix = matrix
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.map = map
        self.range = range
        self.colorBarLabel = colorBarLabel
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
        self.annotate = annotate
    }

    public func draw(on canvas: Canvas, in panel: Rect) {
        let range = self.range ?? colorRange(of: matrix.values, map: map)
        let rowLabels = self.rowLabels ?? (1...matrix.rows).map(String.init)
        let columnLabels = self.columnLabels ?? (1...matrix.columns).map(String.init)
        let tickHeight = canvas.lineHeight(size: FontSize.tick)
        let labelHeight = canvas.lineHeight(size: FontSize.axisLabel)
        let titleHeight = canvas.lineHeight(size: FontSize.panelTitle) + 12
        let rowLabelWidth = rowLabels.map { canvas.textWidth($0, size: FontSize.tick) }.max() ?? 0
        let barWidth = colorBarWidth(on: canvas, range: range)
        let avail = panel.inset(
            top: titleHeight, left: 10 + labelHeight + 8 + rowLabelWidth + 6,
            bottom: 6 + tickHeight + 8 + labelHeight + 6, right: 24 + barWidth)
        let cell = min(avail.width / Double(matrix.columns), avail.height / Double(matrix.rows))
        let gridW = cell * Double(matrix.columns)
        let gridH = cell * Double(matrix.rows)
        let x0 = avail.minX + (avail.width - gridW) / 2
        let y0 = avail.minY + (avail.height - gridH) / 2
        let grid = Rect(x: x0, y: y0, width: gridW, height: gridH)

        canvas.text(title, x: panel.midX, y: panel.minY + 4, size: FontSize.panelTitle, bold: true, h: .center, v: .top)
        drawCells(matrix, on: canvas, x: x0, y: y0, cell: cell, map: map, range: range)
        if annotate && cell >= 34 {
            for r in 0..<matrix.rows {
                for c in 0..<matrix.columns where matrix[r, c].isFinite {
                    let v = matrix[r, c]
                    let fillColor = map.color(at: normalised(v, range))
                    canvas.text(
                        TickGenerator.format(v, decimals: 2), x: x0 + (Double(c) + 0.5) * cell,
                        y: y0 + (Double(r) + 0.5) * cell, size: FontSize.caption,
                        color: fillColor.luminance < 0.35 ? .white : .ink, h: .center, v: .middle)
                }
            }
        }
        // Label every k-th row/column so that labels never overlap.
        let rowStep = max(1, Int(ceil((tickHeight + 2) / cell)))
        for r in Swift.stride(from: 0, to: matrix.rows, by: rowStep) {
            canvas.text(
                rowLabels[r], x: x0 - 6, y: y0 + (Double(r) + 0.5) * cell, size: FontSize.tick, h: .right, v: .middle)
        }
        let widestColumn = columnLabels.map { canvas.textWidth($0, size: FontSize.tick) }.max() ?? 0
        let columnStep = max(1, Int(ceil((widestColumn + 6) / cell)))
        for c in Swift.stride(from: 0, to: matrix.columns, by: columnStep) {
            canvas.text(
                columnLabels[c], x: x0 + (Double(c) + 0.5) * cell, y: grid.maxY + 6, size: FontSize.tick, h: .center,
                v: .top)
        }
        canvas.text(
            xLabel, x: grid.midX, y: grid.maxY + 6 + tickHeight + 8, size: FontSize.axisLabel, h: .center, v: .top)
        canvas.text(
            yLabel, x: x0 - 6 - rowLabelWidth - 10, y: grid.midY, size: FontSize.axisLabel, h: .center,
            v: .bottom, angle: -.pi / 2)
        drawColorBar(
            on: canvas, in: Rect(x: grid.maxX + 24, y: grid.minY, width: barWidth, height: grid.height),
            map: map, range: range, label: colorBarLabel)
    }
}

/// One tile of a tile grid: a small matrix and an optional caption under it.
public struct Tile: Sendable {
    public var matrix: MatrixValues
    public var caption: String?
    /// Overrides the grid's colour map and range for this tile (e.g. an input digit in grey).
    public var map: ColorMap?
    public var range: ClosedRange<Double>?
    /// Draw a dark vertical divider every this many columns (blocks side by side, e.g. input channels).
    public var dividerEvery: Int?

    public init(
        _ matrix: MatrixValues, caption: String? = nil, map: ColorMap? = nil, range: ClosedRange<Double>? = nil,
        dividerEvery: Int? = nil
    ) {
        self.matrix = matrix
        self.caption = caption
        self.map = map
        self.range = range
        self.dividerEvery = dividerEvery
    }
}

/// Small matrices drawn as image tiles in rows and columns, with row labels,
/// column headers, captions under tiles, and one colour bar for the shared map.
public struct TileGrid: Sendable {
    public var title: String
    /// Rows of tiles; nil leaves a gap. All tiles have the same shape.
    public var tiles: [[Tile?]]
    public var rowLabels: [String]?
    public var columnLabels: [String]?
    public var map: ColorMap
    /// Shared colour range; nil uses `colorRange(of:map:)` over every tile without its own map.
    public var range: ClosedRange<Double>?
    public var colorBarLabel: String
    /// Extra space after these column indices (to set groups apart).
    public var columnBreaks: Set<Int>

    public init(
        title: String, tiles: [[Tile?]], rowLabels: [String]? = nil, columnLabels: [String]? = nil,
        map: ColorMap = .diverging, range: ClosedRange<Double>? = nil, colorBarLabel: String,
        columnBreaks: Set<Int> = []
    ) {
        self.title = title
        self.tiles = tiles
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
        self.map = map
        self.range = range
        self.colorBarLabel = colorBarLabel
        self.columnBreaks = columnBreaks
    }

    public func draw(on canvas: Canvas, in panel: Rect) {
        let all = tiles.flatMap { $0 }.compactMap { $0 }
        guard let first = all.first else { return }
        let shared = all.filter { $0.map == nil }.flatMap(\.matrix.values)
        let range = self.range ?? colorRange(of: shared, map: map)
        let rows = tiles.count
        let columns = tiles.map(\.count).max() ?? 0
        let captionHeight = all.contains { $0.caption != nil } ? canvas.lineHeight(size: FontSize.caption) + 3 : 0
        let headerHeight = columnLabels == nil ? 0 : canvas.lineHeight(size: FontSize.tick) + 6
        let rowLabelWidth =
            (rowLabels ?? []).map { canvas.textWidth($0, size: FontSize.tick) }.max().map { $0 + 10 } ?? 0
        let titleHeight = title.isEmpty ? 0 : canvas.lineHeight(size: FontSize.panelTitle) + 12
        let barWidth = colorBarWidth(on: canvas, range: range)
        let avail = panel.inset(
            top: titleHeight + headerHeight, left: 8 + rowLabelWidth, bottom: 8, right: 20 + barWidth)
        let gap = 8.0
        let breakGap = 18.0
        // Captions and column headers must fit above/under their tile.
        let widestCaption = max(
            all.compactMap(\.caption).map { canvas.textWidth($0, size: FontSize.caption) }.max() ?? 0,
            (columnLabels ?? []).map { canvas.textWidth($0, size: FontSize.tick) }.max() ?? 0)
        let extraGaps = Double(columnBreaks.filter { $0 < columns - 1 }.count) * breakGap
        var cell = min(
            (avail.width - gap * Double(columns - 1) - extraGaps) / Double(columns * first.matrix.columns),
            (avail.height - (gap + captionHeight) * Double(rows)) / Double(rows * first.matrix.rows))
        // Widen the horizontal gap when a caption or header is wider than a tile.
        let tileWidth = { cell * Double(first.matrix.columns) }
        let columnGap = max(gap, widestCaption - tileWidth() + 14)
        if columnGap > gap {
            cell = min(
                cell,
                (avail.width - columnGap * Double(columns - 1) - extraGaps) / Double(columns * first.matrix.columns))
        }
        let tileW = tileWidth()
        let tileH = cell * Double(first.matrix.rows)
        let gridW = tileW * Double(columns) + columnGap * Double(columns - 1) + extraGaps
        let gridH = (tileH + captionHeight) * Double(rows) + gap * Double(rows - 1)
        let x0 = avail.minX + (avail.width - gridW) / 2
        let y0 = avail.minY + (avail.height - gridH) / 2

        canvas.text(title, x: panel.midX, y: panel.minY + 4, size: FontSize.panelTitle, bold: true, h: .center, v: .top)
        var columnX: [Double] = []
        var x = x0
        for c in 0..<columns {
            columnX.append(x)
            x += tileW + columnGap + (columnBreaks.contains(c) ? breakGap : 0)
        }
        if let columnLabels {
            for (c, l) in columnLabels.enumerated() where c < columns {
                canvas.text(l, x: columnX[c] + tileW / 2, y: y0 - 4, size: FontSize.tick, h: .center, v: .bottom)
            }
        }
        for (r, row) in tiles.enumerated() {
            let y = y0 + Double(r) * (tileH + captionHeight + gap)
            if let rowLabels, r < rowLabels.count {
                canvas.text(rowLabels[r], x: x0 - 10, y: y + tileH / 2, size: FontSize.tick, h: .right, v: .middle)
            }
            for (c, tile) in row.enumerated() {
                guard let tile else { continue }
                let tileMap = tile.map ?? map
                let tileRange =
                    tile.range ?? (tile.map == nil ? range : colorRange(of: tile.matrix.values, map: tileMap))
                drawCells(
                    tile.matrix, on: canvas, x: columnX[c], y: y, cell: cell, map: tileMap, range: tileRange,
                    dividerEvery: tile.dividerEvery)
                if let caption = tile.caption {
                    canvas.text(
                        caption, x: columnX[c] + tileW / 2, y: y + tileH + 2, size: FontSize.caption, h: .center,
                        v: .top)
                }
            }
        }
        let barHeight = min(gridH, max(160, avail.height * 0.6))
        drawColorBar(
            on: canvas,
            in: Rect(x: x0 + gridW + 20, y: y0 + (gridH - barHeight) / 2, width: barWidth, height: barHeight),
            map: map, range: range, label: colorBarLabel)
    }
}
