import Foundation

extension Figures {
    /// One layer's masks of the truncated layers W_k against Cover's bound at rank k.
    public struct TruncatedMaskPanel: Sendable {
        public var name: String
        /// Output units n.
        public var units: Int
        /// Cover's bound C(n, k) = 2·Σ_{i<k} C(n−1, i) for k = 1…n (index k − 1).
        public var coverBound: [Double]
        /// (which patches, distinct masks of W_k·p for k = 1…n), e.g. ("500 random training patches", [2, 16, …]).
        public var observed: [(label: String, counts: [Int])]

        public init(name: String, units: Int, coverBound: [Double], observed: [(label: String, counts: [Int])]) {
            self.name = name
            self.units = units
            self.coverBound = coverBound
            self.observed = observed
        }
    }

    /// Distinct masks of W_k·p against Cover's bound for every k ("cover_truncated_masks").
    public static func truncatedMaskCounts(_ layers: [TruncatedMaskPanel]) throws -> Figure {
        let name = "cover_truncated_masks"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                l.units > 0 && l.coverBound.count == l.units, name,
                "\(l.name): \(l.coverBound.count) Cover bounds for n = \(l.units) units (one per rank 1…n)")
            try require(
                !l.observed.isEmpty && l.observed.allSatisfy { $0.counts.count == l.units }, name,
                "\(l.name): observed counts must give one count per rank 1…\(l.units)")
        }
        // Where the measured counts come closest to the bound (a ratio of 1 means the bound is reached).
        let summary = layers.map { l in
            let tightest = l.observed.flatMap { o in
                o.counts.enumerated().map { (k: $0.offset + 1, ratio: Double($0.element) / l.coverBound[$0.offset]) }
            }
            .max { $0.ratio < $1.ratio }!
            return "\(l.name): closest at k = \(tightest.k), \(significant(100 * tightest.ratio, 3))% of the bound"
        }.joined(separator: "; ")
        return Figure(
            name: name, title: "Masks of the truncated layers against Cover's bound", width: 1300, height: 600,
            caption: "For each rank k, the number of distinct ReLU masks 1[W_k p > 0] of the rank-k truncation "
                + "W_k = U_k Σ_k V_kᵀ over the same patches (markers), against Cover's bound C(n, k) = 2·Σ_{i<k} C(n−1, i), "
                + "the most regions n hyperplanes through the origin cut a k-dimensional space into (solid line). Patches "
                + "whose W_k p has an exact zero lie on a hyperplane and are left out. Every marker must sit on or below "
                + "the line; at small k the data reach it. \(summary)."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: layers.count, gap: 24)
            for (l, panel) in zip(layers, panels) {
                let ranks = (1...l.units).map(Double.init)
                var series = [
                    Series(
                        "Cover bound C(\(l.units), k)", x: ranks, y: l.coverBound, color: seriesColor(0), style: .line)
                ]
                for (i, o) in l.observed.enumerated() {
                    series.append(
                        Series(
                            o.label, x: ranks, y: o.counts.map(Double.init), color: seriesColor(i + 1),
                            style: .markers, marker: marker(i + 1), markerRadius: 5))
                }
                XYChart(
                    title: "\(l.name) (n = \(l.units) units)", x: Axis("rank k of W_k", integerTicks: true),
                    y: Axis("distinct masks (log scale)", scale: .log10), series: series
                )
                .draw(on: canvas, in: panel)
            }
        }
    }
}
