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
    static func studySeries(_ curves: [StudyCurve], scale: Double = 1) -> [Series] {
        var series: [Series] = []
        for (i, c) in curves.enumerated() {
            series.append(
                Series(c.name, x: c.x, y: c.summaries.map { scale * $0.mean }, color: seriesColor(i), marker: marker(i))
            )
            for (x, s) in zip(c.x, c.summaries) where s.interval95.allSatisfy(\.isFinite) {
                // Unlabelled series stay out of the legend.
                series.append(
                    Series(
                        "", x: [x, x], y: s.interval95.map { scale * $0 }, color: seriesColor(i),
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
