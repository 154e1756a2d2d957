import Analysis
import Foundation

extension Figures {
    /// One curve of a study figure: per index, the mean over the members
    /// and the 95 % t-interval of the mean (NaN bounds with one member).
    public struct StudyCurve: Sendable {
        public var name: String
        public var x: [Double]
        public var summaries: [SampleSummary]
        public init(name: String, x: [Double], summaries: [SampleSummary]) {
            precondition(x.count == summaries.count)
            self.name = name
            self.x = x
            self.summaries = summaries
        }
    }

    /// Curves with error bars: a line through the means, a vertical bar per
    /// point over the 95 % interval, and the min and max as small dashes.
    /// `scale` multiplies every value (100 for percentages).
    /// With `standardDeviation` the bar spans mean ± sd instead, and the
    /// curves are shifted apart by `dodge` in x so that their bars do not overlap.
    static func studySeries(
        _ curves: [StudyCurve], scale: Double = 1, standardDeviation: Bool = false, dodge: Double = 0
    ) -> [Series] {
        var series: [Series] = []
        for (i, original) in curves.enumerated() {
            var c = original
            let shift = dodge * (Double(i) - Double(curves.count - 1) / 2)
            c.x = c.x.map { $0 + shift }
            series.append(
                Series(c.name, x: c.x, y: c.summaries.map { scale * $0.mean }, color: seriesColor(i), marker: marker(i))
            )
            for (x, s) in zip(c.x, c.summaries) {
                let bar =
                    standardDeviation
                    ? [s.mean - s.standardDeviation, s.mean + s.standardDeviation] : s.interval95
                guard bar.allSatisfy(\.isFinite) else { continue }
                // Unlabelled series stay out of the legend.
                series.append(
                    Series(
                        "", x: [x, x], y: bar.map { scale * $0 }, color: seriesColor(i),
                        style: .line, lineWidth: 1.5))
            }
            series.append(
                Series(
                    "", x: c.x, y: c.summaries.map { scale * $0.min }, color: seriesColor(i), style: .markers,
                    marker: .diamond, markerRadius: 2.5, alpha: 0.7))
            series.append(
                Series(
                    "", x: c.x, y: c.summaries.map { scale * $0.max }, color: seriesColor(i), style: .markers,
                    marker: .diamond, markerRadius: 2.5, alpha: 0.7))
        }
        return series
    }

    /// The σ spectrum of each conv layer over the members of a study ("study_singular_values").
    public static func studySingularValues(_ layers: [StudyCurve]) throws -> Figure {
        let name = "study_singular_values"
        try require(!layers.isEmpty && layers.allSatisfy { !$0.x.isEmpty }, name, "no layers")
        let n = layers[0].summaries[0].count
        let series = studySeries(layers)
        let spread = layers.map { l in
            "\(l.name) σ₁ = \(significant(l.summaries[0].mean)) ± \(significant(l.summaries[0].standardDeviation, 2)) (sd)"
        }.joined(separator: ", ")
        return Figure(
            name: name, title: "Singular values over \(n) seeds", width: 1200, height: 560,
            caption: "Mean σᵢ of each conv layer's weight matrix over the \(n) seeds (line), the 95% t-interval of the "
                + "mean (bar) and the smallest and largest seed (dots), linear (left) and log (right) scale. \(spread)."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: 2, gap: 24)
            XYChart(
                title: "Linear scale", x: Axis("index i", integerTicks: true), y: Axis("singular value σᵢ"),
                series: series
            ).draw(on: canvas, in: panels[0])
            XYChart(
                title: "Log scale", x: Axis("index i", integerTicks: true),
                y: Axis("singular value σᵢ (log scale)", scale: .log10), series: series
            ).draw(on: canvas, in: panels[1])
        }
    }

    /// Test accuracy with one layer (or both) cut to rank k, over the members ("study_accuracy_vs_rank").
    public static func studyAccuracyVersusRank(_ curves: [StudyCurve]) throws -> Figure {
        let name = "study_accuracy_vs_rank"
        try require(
            !curves.isEmpty && curves.allSatisfy { !$0.x.isEmpty }, name,
            "no accuracy-against-rank data (run with the sweep)")
        let n = curves[0].summaries[0].count
        return Figure(
            name: name, title: "Test accuracy against rank over \(n) seeds", width: 1000, height: 600,
            caption: "Test accuracy with the named layer replaced by its best rank-k approximation (the other at full "
                + "rank), or both at rank k: mean over the \(n) seeds (line), 95% t-interval of the mean (bar), "
                + "smallest and largest seed (dots)."
        ) { canvas, body in
            XYChart(
                title: "Accuracy against rank", x: Axis("rank k", integerTicks: true), y: Axis("test accuracy (%)"),
                series: studySeries(curves, scale: 100)
            ).draw(on: canvas, in: body)
        }
    }
}

extension Figures {
    /// The figures of a study over datasets: one per per-layer quantity of
    /// ``Analysis/LayerStudyMetrics`` by depth, and accuracy against rank
    /// per layer, each with one curve per dataset.
    public static func datasetFigures(_ c: DatasetComparison) throws -> [Figure] {
        var figures: [Figure] = []
        for q in LayerStudyMetrics.quantities {
            let curves = c.datasets.compactMap { d -> StudyCurve? in
                var x: [Double] = []
                var s: [SampleSummary] = []
                for (i, l) in c.layers.enumerated() {
                    if let v = l.quantities[q.key]?[d] {
                        x.append(Double(i + 1))
                        s.append(v)
                    }
                }
                return x.isEmpty ? nil : StudyCurve(name: d, x: x, summaries: s)
            }
            if !curves.isEmpty {
                figures.append(
                    try datasetQuantityByDepth(
                        key: q.key, label: q.label, layers: c.layers.map(\.name), curves: curves))
            }
        }
        let panels = c.layers.compactMap { l -> (layer: String, curves: [StudyCurve])? in
            let curves = c.datasets.compactMap { d -> StudyCurve? in
                guard let points = l.accuracyVersusRank[d], !points.isEmpty else { return nil }
                return StudyCurve(name: d, x: points.map { Double($0.k) }, summaries: points.map(\.accuracy))
            }
            return curves.isEmpty ? nil : (l.name, curves)
        }
        if !panels.isEmpty { figures.append(try datasetAccuracyVersusRank(panels)) }
        return figures
    }

    /// One per-layer quantity against depth, one curve per dataset with
    /// error bars ("study_datasets_KEY").
    public static func datasetQuantityByDepth(key: String, label: String, layers: [String], curves: [StudyCurve])
        throws -> Figure
    {
        let name = "study_datasets_\(key)"
        try require(!curves.isEmpty && curves.allSatisfy { !$0.x.isEmpty }, name, "no values")
        for c in curves {
            try require(
                c.summaries.allSatisfy { $0.mean.isFinite } && c.x.allSatisfy { $0 >= 1 && $0 <= Double(layers.count) },
                name, "\(c.name): needs finite means at layers 1…\(layers.count)")
        }
        let n = curves[0].summaries[0].count
        let list = layers.enumerated().map { "\($0.offset + 1) \($0.element)" }.joined(separator: ", ")
        return Figure(
            name: name, title: "\(label.prefix(1).uppercased() + label.dropFirst()) by depth, datasets compared",
            width: 1100, height: 560,
            caption: "\(label) of each layer in forward order (\(list)), per dataset: mean over the \(n) seeds (line), "
                + "mean ± one sample standard deviation (bar), smallest and largest seed (dots); the datasets are "
                + "shifted apart a little along x."
        ) { canvas, body in
            XYChart(
                title: "\(label), \(n) seeds", x: Axis("layer (forward order)", integerTicks: true), y: Axis(label),
                series: studySeries(curves, standardDeviation: true, dodge: 0.08), legendOutside: true
            ).draw(on: canvas, in: body)
        }
    }

    /// Small multiples: test accuracy with one layer at rank k against k,
    /// one panel per layer, one curve per dataset ("study_datasets_accuracy_vs_rank").
    public static func datasetAccuracyVersusRank(_ panels: [(layer: String, curves: [StudyCurve])]) throws -> Figure {
        let name = "study_datasets_accuracy_vs_rank"
        try require(!panels.isEmpty && panels.allSatisfy { !$0.curves.isEmpty }, name, "no accuracy curves")
        let n = panels[0].curves[0].summaries[0].count
        let columns = Int(Double(panels.count).squareRoot().rounded(.up))
        let rows = (panels.count + columns - 1) / columns
        return Figure(
            name: name, title: "Accuracy with one layer at rank k, datasets compared over \(n) seeds",
            width: max(340 * columns, 1000), height: 60 + 270 * rows,
            caption: "One panel per layer: test accuracy with that layer's W̃ replaced by its best rank-k "
                + "approximation and the others at full rank, per dataset: mean over the \(n) seeds (line), "
                + "mean ± one sample standard deviation (bar), smallest and largest seed (dots)."
        ) { canvas, body in
            let grid = body.grid(rows: rows, columns: columns, gap: 14)
            for (i, p) in panels.enumerated() {
                XYChart(
                    title: p.layer, x: Axis("rank k", integerTicks: true), y: Axis("accuracy (%)", range: 0...100),
                    series: studySeries(p.curves, scale: 100, standardDeviation: true)
                ).draw(on: canvas, in: grid[i])
            }
        }
    }
}
