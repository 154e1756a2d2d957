import Analysis
import Foundation

extension Figures {
    /// The per-layer figures of a ``Analysis/NetworkAnalysisReport``: one
    /// panel per layer, and summaries by depth, so a deeper network is more
    /// panels, not another figure; then phase 9's operator norms by depth and
    /// its regions along segments.
    public static func layerFigures(_ report: NetworkAnalysisReport) throws -> [Figure] {
        var figures = [
            try layerSpectra(report.layers), try spectraByDepth(report.layers), try ranksByDepth(report.layers),
        ]
        if report.sweepImages > 0 {
            figures.append(
                try layerTruncation(report.layers, baseline: report.sweepBaselineAccuracy, images: report.sweepImages))
        }
        if report.sweepImages > 0 {
            figures.append(
                try truncationHeatmap(report.layers, baseline: report.sweepBaselineAccuracy, images: report.sweepImages)
            )
        }
        let masked = report.layers.compactMap(\.reluMasks)
        if !masked.isEmpty { figures.append(try layerMasks(masked)) }
        if !report.operators.layers.isEmpty { figures.append(try operatorsByDepth(report)) }
        if let regions = report.regions { figures += try networkRegionFigures(regions) }
        return figures
    }

    /// By depth, phase 5: test accuracy with one layer at rank k as a heat
    /// map, one row per layer (forward order), one column per swept k (the
    /// union over the layers; blank where a layer is not swept at k)
    /// ("truncation_heatmap").
    public static func truncationHeatmap(_ layers: [NetworkLayerRecord], baseline: Double, images: Int) throws
        -> Figure
    {
        let name = "truncation_heatmap"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                !l.truncation.isEmpty && l.truncation.allSatisfy { (0...1).contains($0.accuracy) && $0.k >= 1 }, name,
                "\(l.name): needs accuracies in [0, 1] at ranks k ≥ 1")
        }
        let ks = Array(Set(layers.flatMap { $0.truncation.map(\.k) })).sorted()
        var values = [Double](repeating: .nan, count: layers.count * ks.count)
        for (r, l) in layers.enumerated() {
            for t in l.truncation { values[r * ks.count + ks.firstIndex(of: t.k)!] = 100 * t.accuracy }
        }
        let matrix = MatrixValues(rows: layers.count, columns: ks.count, values: values)
        return Figure(
            name: name, title: "Test accuracy with one layer at rank k, every layer", width: 1200,
            height: 160 + 34 * layers.count,
            caption: "Row: the layer truncated (forward order, the others at full rank); column: its rank k; colour: "
                + "test accuracy on the first \(images) test images (host, float64), the full network's being "
                + "\(significant(100 * baseline, 4))%. Blank cells: ranks not swept for that layer (a small layer "
                + "is swept at every k, a larger one at powers of two and its full rank) or above its rank."
        ) { canvas, body in
            Heatmap(
                title: "accuracy (%)", matrix: matrix, xLabel: "rank k", yLabel: "layer", map: .sequential,
                range: 0...100, colorBarLabel: "test accuracy (%)", rowLabels: layers.map(\.name),
                columnLabels: ks.map(String.init), annotate: false
            ).draw(on: canvas, in: body)
        }
    }

    /// Small multiples, phase 6: distinct ReLU masks of W̃_k·p + b̃ against
    /// k for every conv layer a ReLU follows, beside the region bound and
    /// the patch count, log scale ("layer_masks").
    public static func layerMasks(_ censuses: [LayerMaskCensus]) throws -> Figure {
        let name = "layer_masks"
        try require(!censuses.isEmpty, name, "no mask censuses")
        for m in censuses {
            try require(
                m.ranks > 0 && m.bound.count == m.ranks && m.patches > 0
                    && m.truncatedDistinctMasks.allSatisfy { $0 >= 0 } && m.bound.allSatisfy { $0 >= 1 },
                name, "\(m.layer): needs a count and a bound ≥ 1 at every rank and at least one patch")
        }
        let columns = Int(Double(censuses.count).squareRoot().rounded(.up))
        let rows = (censuses.count + columns - 1) / columns
        let first = censuses[0]
        return Figure(
            name: name, title: "Distinct ReLU masks against rank, every layer a ReLU follows",
            width: max(340 * columns, 1000),
            height: 60 + 270 * rows,
            caption: "One panel per conv layer whose output goes straight into a ReLU: the number of distinct masks "
                + "1[W̃_k·p + b̃ > 0] over \(first.patches) patches drawn from the first \(first.images) test images, "
                + "W̃_k the rank-k truncation (BatchNorm folded), against k (solid); the region bound of n "
                + "hyperplanes in ℝᵏ (dashed: Cover's C(n, k) when b̃ = 0, Σ_{j≤k} binom(n, j) otherwise), and the "
                + "patch count (dotted), which no count can pass. Log scale."
        ) { canvas, body in
            let panels = body.grid(rows: rows, columns: columns, gap: 14)
            for (i, m) in censuses.enumerated() {
                let k = (1...m.ranks).map(Double.init)
                let counts = m.truncatedDistinctMasks.map { Double(max($0, 1)) }
                XYChart(
                    title: "\(m.layer) (n = \(m.units))", x: Axis("rank k", integerTicks: true),
                    y: Axis("distinct masks (log)", scale: .log10),
                    series: [
                        Series("masks", x: k, y: counts, color: seriesColor(0), markerRadius: 2.5),
                        Series("bound", x: k, y: m.bound, color: seriesColor(1), style: .line, dash: [6, 4]),
                        Series(
                            "patches", x: [k[0], k[k.count - 1]], y: [Double(m.patches), Double(m.patches)],
                            color: seriesColor(2), style: .line, dash: [2, 3]),
                    ]
                ).draw(on: canvas, in: panels[i])
            }
        }
    }

    /// Small multiples: test accuracy with one layer truncated to rank k,
    /// the others full, against k ("layer_truncation").
    public static func layerTruncation(_ layers: [NetworkLayerRecord], baseline: Double, images: Int) throws
        -> Figure
    {
        let name = "layer_truncation"
        try require(!layers.isEmpty, name, "no layers")
        try require((0...1).contains(baseline), name, "the baseline accuracy must be a fraction (got \(baseline))")
        for l in layers {
            try require(
                !l.truncation.isEmpty && l.truncation.allSatisfy { (0...1).contains($0.accuracy) && $0.k >= 1 }, name,
                "\(l.name): needs accuracies in [0, 1] at ranks k ≥ 1")
        }
        let columns = Int(Double(layers.count).squareRoot().rounded(.up))
        let rows = (layers.count + columns - 1) / columns
        return Figure(
            name: name, title: "Test accuracy with one layer truncated to rank k", width: 320 * columns,
            height: 60 + 260 * rows,
            caption: "One panel per layer: the test accuracy on the first \(images) test images when that layer's W̃ "
                + "is replaced by its best rank-k approximation and every other layer is kept at full rank (host, "
                + "float64). The dashed line is the full network's accuracy, "
                + "\(significant(100 * baseline, 4))%. Where a curve reaches the line at small k, the layer's bottom "
                + "components are not needed."
        ) { canvas, body in
            let panels = body.grid(rows: rows, columns: columns, gap: 14)
            for (i, l) in layers.enumerated() {
                XYChart(
                    title: l.name,
                    x: Axis("rank k", integerTicks: true, tickFormatter: evenLabels(l.truncation.map(\.k).max() ?? 0)),
                    y: Axis("accuracy (%)", range: 0...100),
                    series: [
                        Series(
                            "accuracy", x: l.truncation.map { Double($0.k) }, y: l.truncation.map { 100 * $0.accuracy },
                            color: seriesColor(0), markerRadius: 3)
                    ],
                    referenceLines: [ReferenceLine(.horizontal, at: 100 * baseline, label: "full")]
                ).draw(on: canvas, in: panels[i])
            }
        }
    }

    /// Small multiples: σᵢ/σ₁ against i for every layer, W̃ (BatchNorm
    /// folded) and W ("layer_spectra").
    public static func layerSpectra(_ layers: [NetworkLayerRecord]) throws -> Figure {
        let name = "layer_spectra"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                !l.sigma.isEmpty && l.sigma[0] > 0 && l.sigma.allSatisfy { $0.isFinite && $0 >= 0 }
                    && l.unfoldedSigma.count == l.sigma.count && l.unfoldedSigma[0] > 0,
                name, "\(l.name): σ must be non-empty, finite, ≥ 0 with σ₁ > 0, for W̃ and W alike")
        }
        let columns = Int(Double(layers.count).squareRoot().rounded(.up))
        let rows = (layers.count + columns - 1) / columns
        return Figure(
            name: name, title: "Normalised singular values of every layer", width: 320 * columns,
            height: 60 + 260 * rows,
            caption: "One panel per conv or linear layer, in the order of the forward pass: σᵢ/σ₁ of the weight "
                + "matrix with BatchNorm folded in (W̃ = diag(γ/√(var+ε))·W, solid) and of the stored W (dashed), "
                + "against the index i. A curve that drops early means the layer's energy sits in a few directions."
        ) { canvas, body in
            let panels = body.grid(rows: rows, columns: columns, gap: 14)
            for (i, l) in layers.enumerated() {
                let x = (1...l.sigma.count).map(Double.init)
                XYChart(
                    title: l.name, x: Axis("i", integerTicks: true, tickFormatter: evenLabels(l.sigma.count)),
                    y: Axis("σᵢ/σ₁", range: 0...1),
                    series: [
                        Series("W̃", x: x, y: l.sigma.map { $0 / l.sigma[0] }, color: seriesColor(0), style: .line),
                        Series(
                            "W", x: x, y: l.unfoldedSigma.map { $0 / l.unfoldedSigma[0] }, color: seriesColor(1),
                            style: .line, dash: [6, 4]),
                    ]
                ).draw(on: canvas, in: panels[i])
            }
        }
    }

    /// Every integer tick labelled up to 10 of them; from 11 to 20, where an
    /// integer axis ticks every integer, only the even ones (a 320-pixel
    /// panel has no room for 16 labels); beyond, the axis' own steps.
    static func evenLabels(_ count: Int) -> (@Sendable (Double) -> String)? {
        guard count > 10 && count <= 20 else { return nil }
        return { v in Int(v.rounded()) % 2 == 0 ? String(Int(v.rounded())) : "" }
    }

    /// By depth: every layer's σᵢ/σ₁ and cumulative energy on one chart
    /// each, against i/r so that layers of different rank r share the axis,
    /// coloured by depth along the viridis-like map ("spectra_by_depth").
    public static func spectraByDepth(_ layers: [NetworkLayerRecord]) throws -> Figure {
        let name = "spectra_by_depth"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                !l.sigma.isEmpty && l.sigma[0] > 0 && l.cumulativeEnergy.count == l.sigma.count, name,
                "\(l.name): needs σ with σ₁ > 0 and one cumulative energy per σ")
        }
        func color(_ i: Int) -> RGB {
            ColorMap.sequential.color(at: 0.85 * Double(i) / Double(max(layers.count - 1, 1)))
        }
        // One legend, beside the right panel: the left one's curves are the same layers in the same colours.
        func series(labelled: Bool, _ values: (NetworkLayerRecord) -> [Double]) -> [Series] {
            layers.enumerated().map { i, l in
                let r = Double(l.sigma.count)
                return Series(
                    labelled ? "\(i + 1) \(l.name) (r = \(l.sigma.count))" : "",
                    x: (1...l.sigma.count).map { Double($0) / r },
                    y: values(l), color: color(i), style: .line, lineWidth: 1.8)
            }
        }
        return Figure(
            name: name, title: "Every layer's spectrum, by depth", width: 1500, height: 640,
            caption: "Left: σᵢ/σ₁ of W̃ (BatchNorm folded) for every conv and linear layer against i/r, r the "
                + "layer's full rank min(out, in·k²), so that layers of different sizes share the axis; right: the "
                + "cumulative energy Σ_{j≤i} σⱼ²/Σσⱼ² on the same axis. Colour runs from dark purple (the first "
                + "layer) through blue and green to light green (the last). A curve that falls early (left) or rises "
                + "early (right) is a layer whose energy sits in a small fraction of its directions."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: 2, gap: 24)
            XYChart(
                title: "σᵢ/σ₁", x: Axis("i / r", range: 0...1), y: Axis("σᵢ/σ₁", range: 0...1),
                series: series(labelled: false) { l in l.sigma.map { $0 / l.sigma[0] } }
            ).draw(on: canvas, in: panels[0])
            XYChart(
                title: "cumulative energy", x: Axis("i / r", range: 0...1), y: Axis("cumulative energy", range: 0...1),
                series: series(labelled: true, \.cumulativeEnergy), legendOutside: true
            ).draw(on: canvas, in: panels[1])
        }
    }

    /// By depth: the 95% and 99% energy ranks and the stable rank, each as a
    /// fraction of the layer's output channels ("ranks_by_depth"). The
    /// channels, not the full rank r = min(out, in·k²), are the divisor: they
    /// are what a factorisation of rank k saves against (k of out), and r
    /// differs from them exactly where the question is least interesting
    /// (a 1-channel stem, a 1×1 shortcut that widens, the classifier).
    public static func ranksByDepth(_ layers: [NetworkLayerRecord]) throws -> Figure {
        let name = "ranks_by_depth"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                !l.sigma.isEmpty && l.stableRank.isFinite && (l.shape.first ?? 0) > 0, name,
                "\(l.name): needs σ, a finite stable rank and a shape with output channels")
        }
        let depth = (1...layers.count).map(Double.init)
        func fraction(_ f: (NetworkLayerRecord) -> Double) -> [Double] { layers.map { f($0) / Double($0.shape[0]) } }
        let list = layers.enumerated().map { "\($0.offset + 1) \($0.element.name)" }.joined(separator: ", ")
        return Figure(
            name: name, title: "Rank by depth", width: 1100, height: 560,
            caption: "For each layer in forward order (\(list)): the number of components holding 95% and 99% of "
                + "‖W̃‖²_F, and the stable rank ‖W̃‖²_F/σ₁², each divided by the layer's output channels (out; the "
                + "full rank min(out, in·k²) is smaller for a 1-channel stem, a widening 1×1 shortcut and the "
                + "classifier). A falling curve means deeper layers concentrate their energy in fewer of their channels."
        ) { canvas, body in
            XYChart(
                title: "rank / output channels", x: Axis("layer (forward order)", integerTicks: true),
                y: Axis("fraction of the output channels", range: 0...1),
                series: [
                    Series(
                        "95% energy rank / out", x: depth, y: fraction { Double($0.rank95) }, color: seriesColor(0),
                        marker: marker(0)),
                    Series(
                        "99% energy rank / out", x: depth, y: fraction { Double($0.rank99) }, color: seriesColor(1),
                        marker: marker(1)),
                    Series(
                        "stable rank / out", x: depth, y: fraction(\.stableRank), color: seriesColor(2),
                        marker: marker(2), dash: [6, 4]),
                ], legendOutside: true
            ).draw(on: canvas, in: body)
        }
    }
}
