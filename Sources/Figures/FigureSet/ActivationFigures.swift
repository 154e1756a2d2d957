import Foundation

extension Figures {
    /// Distinct ReLU masks against 2ⁿ and Cover's bound, one panel per layer ("relu_mask_counts").
    public static func reluMaskCounts(_ layers: [MaskCountPanel]) throws -> Figure {
        let name = "relu_mask_counts"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                l.units > 0 && l.coverBound.count == l.units, name,
                "\(l.name): \(l.coverBound.count) Cover bounds for n = \(l.units) units (one per rank 1…n)")
            try require((1...l.units).contains(l.rank), name, "\(l.name): rank \(l.rank) outside 1…\(l.units)")
            try require(!l.observed.isEmpty, name, "\(l.name): no observed counts")
        }
        let summary = layers.map { l in
            let observed = l.observed.map { "\(grouped($0.count)) over \($0.label)" }.joined(separator: ", ")
            return
                "\(l.name): \(observed); bound at rank \(l.rank): \(Int(l.coverBound[l.rank - 1])); 2\(TickGenerator.superscript(l.units)) = \(Int(pow(2.0, Double(l.units))))"
        }.joined(separator: ". ")
        return Figure(
            name: name, title: "ReLU activation patterns: observed against possible", width: 1300, height: 600,
            caption:
                "How many distinct on/off masks 1[Wp > 0] each layer produces. The solid curve is the most a rank-r layer "
                + "of n units can make, 2·Σ_{k<r} C(n−1, k) (Cover's count of regions cut by n hyperplanes through the origin "
                + "of an r-dimensional space); the dashed line is 2ⁿ, every mask; the markers are the masks actually observed, at "
                + "the layer's rank. Read how far below the bound the data stays: real patches occupy a small part of the "
                + "possible regions. \(summary)."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: layers.count, gap: 24)
            for (l, panel) in zip(layers, panels) {
                let ranks = (1...l.units).map(Double.init)
                var series = [
                    Series(
                        "Cover bound for rank r", x: ranks, y: l.coverBound, color: seriesColor(0), marker: .circle,
                        markerRadius: 3.5)
                ]
                for (i, o) in l.observed.enumerated() {
                    series.append(
                        Series(
                            "observed: \(grouped(o.count)) (\(o.label))", x: [Double(l.rank)], y: [Double(o.count)],
                            color: seriesColor(i + 1), style: .markers, marker: marker(i + 1), markerRadius: 7))
                }
                let all = pow(2.0, Double(l.units))
                XYChart(
                    title: "\(l.name) (n = \(l.units) units, rank \(l.rank))",
                    x: Axis("rank r", integerTicks: true), y: Axis("number of masks (log scale)", scale: .log10),
                    series: series,
                    referenceLines: [
                        ReferenceLine(
                            .horizontal, at: all, label: "2\(TickGenerator.superscript(l.units)) = \(Int(all)) masks",
                            color: .ink)
                    ]
                )
                .draw(on: canvas, in: panel)
            }
        }
    }

    /// How often the most common masks occur, one panel per layer ("relu_mask_frequencies").
    public static func reluMaskFrequencies(_ layers: [MaskFrequencyPanel], top: Int = 10) throws -> Figure {
        let name = "relu_mask_frequencies"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(!l.masks.isEmpty && l.total > 0, name, "\(l.name): no masks or no patches")
            try require(
                l.masks.allSatisfy { $0.count >= 0 && $0.count <= l.total }, name,
                "\(l.name): a count exceeds the \(l.total) patches")
        }
        let summary = layers.map { l in
            let share = Double(l.masks.prefix(top).reduce(0) { $0 + $1.count }) / Double(l.total)
            return
                "\(l.name): the top \(min(top, l.masks.count)) masks cover \(significant(100 * share, 3))% of \(grouped(l.total)) patches"
        }.joined(separator: "; ")
        return Figure(
            name: name, title: "The most common ReLU masks", width: 1300, height: 640,
            caption:
                "The share of patches (\(layers.map { "\($0.name): \($0.source)" }.joined(separator: "; "))) that produce "
                + "each of the most common masks; a mask is written as one bit per output channel, channel 1 first (1 = active). "
                + "A few masks (often all-off for blank background, and all-on) take most patches. \(summary)."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: layers.count, gap: 24)
            for (i, (l, panel)) in zip(layers, panels).enumerated() {
                let masks = Array(l.masks.prefix(top))
                BarChart(
                    title: "\(l.name), \(l.source)", categories: masks.map(\.mask),
                    groups: [
                        BarGroup(
                            "share of patches", values: masks.map { 100 * Double($0.count) / Double(l.total) },
                            color: seriesColor(i))
                    ],
                    xLabel: "mask (channel 1 … \(masks[0].mask.count))", y: Axis("share of patches (%)"),
                    valueLabel: { significant($0, 2) }
                )
                .draw(on: canvas, in: panel)
            }
        }
    }

    /// Test-digit activations projected on the top two U directions, coloured by class ("activation_projections").
    public static func activationProjections(_ panels: [ProjectionPanel], layerDescription: String) throws -> Figure {
        let name = "activation_projections"
        try require(!panels.isEmpty, name, "no panels")
        for p in panels {
            try require(
                p.x.count == p.y.count && p.x.count == p.classes.count && !p.x.isEmpty, name,
                "\(p.title): \(p.x.count) x, \(p.y.count) y, \(p.classes.count) classes")
            try require(p.classes.allSatisfy { (0...9).contains($0) }, name, "\(p.title): classes must be digits 0–9")
        }
        let columns = min(2, panels.count)
        let rows = Int(ceil(Double(panels.count) / Double(columns)))
        return Figure(
            name: name, title: "Test-digit activations in the plane of u₁ and u₂", width: 1400, height: 80 + 500 * rows,
            caption:
                "Each point is a test digit's \(layerDescription), projected on the layer's first two left singular "
                + "vectors u₁, u₂, before and after the ReLU; colour is the digit's class. Before the ReLU the points fill the "
                + "plane the top directions span; the ReLU zeroes negative channels, which moves points and folds the cloud. "
                + "Read how much the classes overlap: local responses are shared by every digit, and separate only in later layers."
        ) { canvas, body in
            let cells = body.grid(rows: rows, columns: columns, gap: 20)
            for (p, cell) in zip(panels, cells) {
                // Lightly transparent small markers so that dense clusters show their mix of classes.
                let series = (0...9).map { d -> Series in
                    let idx = p.classes.indices.filter { p.classes[$0] == d }
                    return Series(
                        "digit \(d)", x: idx.map { p.x[$0] }, y: idx.map { p.y[$0] }, color: Palette.color(d),
                        style: .markers, marker: .circle, markerRadius: 2.5, alpha: 0.55)
                }.filter { !$0.x.isEmpty }
                XYChart(title: p.title, x: Axis(p.xLabel), y: Axis(p.yLabel), series: series, legendOutside: true)
                    .draw(on: canvas, in: cell)
            }
        }
    }

    /// A few test digits with their conv1 feature maps ("digit_feature_maps").
    /// - Parameter afterReLU: whether the maps are after the ReLU (drawn on the
    ///   sequential map from 0) or before it (diverging map centred at zero).
    public static func digitFeatureMaps(_ digits: [DigitFeatureMaps], layer: String = "conv1", afterReLU: Bool) throws
        -> Figure
    {
        let name = "digit_feature_maps"
        try require(!digits.isEmpty, name, "no digits")
        let channels = digits[0].maps.count
        for d in digits {
            try require(
                d.maps.count == channels && channels > 0, name,
                "digit \(d.label): \(d.maps.count) maps, expected \(channels)")
            try require(
                d.maps.allSatisfy { $0.rows == d.maps[0].rows && $0.columns == d.maps[0].columns }, name,
                "digit \(d.label): feature maps differ in size")
        }
        let map: ColorMap = afterReLU ? .sequential : .diverging
        let range: ClosedRange<Double> =
            afterReLU
            ? 0...max(digits.flatMap { $0.maps.flatMap(\.values) }.max() ?? 1, 1e-12)
            : colorRange(of: digits.flatMap { $0.maps.flatMap(\.values) }, map: .diverging)
        // Input digits are padded to the feature maps' size when larger, centred, so that every tile has one shape.
        let mapShape = (digits[0].maps[0].rows, digits[0].maps[0].columns)
        let tiles: [[Tile?]] = digits.map { d in
            [
                Tile(
                    fit(d.image, rows: mapShape.0, columns: mapShape.1), caption: "digit \(d.label)", map: .greys,
                    range: colorRange(of: d.image.values, map: .greys))
            ]
                + d.maps.enumerated().map { Tile($0.element, caption: nil, map: nil, range: range) }
        }
        let stage = afterReLU ? "after ReLU" : "before ReLU"
        return Figure(
            name: name, title: "Test digits and their \(layer) feature maps (\(stage))", width: 1400,
            height: 110 + 150 * digits.count,
            caption:
                "Left: test digits (the input, dark = ink, cropped to the maps' \(mapShape.0)×\(mapShape.1) centre when larger). "
                + "Right: the \(channels) \(layer) output channels \(stage) for each digit, on one colour scale. "
                + "Read which channels respond to strokes of which orientation, and which respond to the background."
        ) { canvas, body in
            TileGrid(
                title: "", tiles: tiles, columnLabels: ["input"] + (1...channels).map { "channel \($0)" }, map: map,
                range: range, colorBarLabel: "\(layer) output (\(stage))", columnBreaks: [0]
            ).draw(on: canvas, in: body)
        }
    }

    /// `m` cropped or padded (with its minimum) about its centre to rows × columns.
    static func fit(_ m: MatrixValues, rows: Int, columns: Int) -> MatrixValues {
        if m.rows == rows && m.columns == columns { return m }
        let fillValue = m.values.min() ?? 0
        let r0 = (m.rows - rows) / 2
        let c0 = (m.columns - columns) / 2
        var v: [Double] = []
        for r in 0..<rows {
            for c in 0..<columns {
                let sr = r + r0
                let sc = c + c0
                v.append(sr >= 0 && sr < m.rows && sc >= 0 && sc < m.columns ? m[sr, sc] : fillValue)
            }
        }
        return MatrixValues(rows: rows, columns: columns, values: v)
    }
}
