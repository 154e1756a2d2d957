import Foundation

extension Figures {
    /// One conv layer of a compression, as the figure draws it.
    public struct CompressedLayer: Sendable {
        public var name: String
        /// Multiply-adds per image, dense and after the factorisation.
        public var denseMultiplyAdds: Int
        public var multiplyAdds: Int
        public init(name: String, denseMultiplyAdds: Int, multiplyAdds: Int) {
            self.name = name
            self.denseMultiplyAdds = denseMultiplyAdds
            self.multiplyAdds = multiplyAdds
        }
    }

    /// `convsvd compress`'s figure ("compression"): each conv layer's
    /// multiply-adds per image, dense and compressed; and per test image the
    /// certified bound B(x) against the measured ‖f(x) − f̂(x)‖₂ on log
    /// axes, with the line B = ‖Δ‖ that no point may fall below.
    public static func compression(
        _ layers: [CompressedLayer], bounds: [Double], changes: [Double], accuracy: (dense: Double, compressed: Double)
    ) throws -> Figure {
        let name = "compression"
        try require(!layers.isEmpty, name, "no layers")
        try require(bounds.count == changes.count, name, "\(bounds.count) bounds for \(changes.count) changes")
        // Log axes: images whose logits did not move (or a bound of 0) cannot be drawn.
        let shown = zip(changes, bounds).filter { $0.0 > 0 && $0.1 > 0 }
        return Figure(
            name: name, title: "Compression: the work kept, and the certified bound against the change",
            width: 1200, height: 560,
            caption: "Left: multiply-adds per image of each conv layer, dense and factorised (the network's test "
                + "accuracy \(significant(100 * accuracy.dense, 4))% → \(significant(100 * accuracy.compressed, 4))%). "
                + "Right: for each test image whose logits moved (\(shown.count) of \(changes.count)), the certified "
                + "bound B(x) against the measured ‖f(x) − f̂(x)‖₂ in float64; every point lies on or above the "
                + "dashed line B = ‖Δ‖, and its height above it is how loose the bound is."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: 2, gap: 24)
            // Headroom above the tallest bar for the legend.
            let tallest = Double(layers.map(\.denseMultiplyAdds).max() ?? 1) / 1e6
            BarChart(
                title: "multiply-adds per image", categories: layers.map(\.name),
                groups: [
                    BarGroup("dense", values: layers.map { Double($0.denseMultiplyAdds) / 1e6 }, color: seriesColor(0)),
                    BarGroup("factorised", values: layers.map { Double($0.multiplyAdds) / 1e6 }, color: seriesColor(1)),
                ], xLabel: "layer", y: Axis("million multiply-adds", range: 0...(1.4 * tallest))
            ).draw(on: canvas, in: panels[0])
            let low = shown.map { min($0.0, $0.1) }.min() ?? 1
            let high = shown.map { max($0.0, $0.1) }.max() ?? 10
            XYChart(
                title: "bound against change, per test image",
                x: Axis("measured ‖f(x) − f̂(x)‖₂", scale: .log10), y: Axis("certified bound B(x)", scale: .log10),
                series: [
                    Series(
                        "images", x: shown.map(\.0), y: shown.map(\.1), color: seriesColor(0), style: .markers,
                        markerRadius: 2, alpha: 0.4),
                    Series(
                        "B = ‖Δ‖", x: [low, high], y: [low, high], color: seriesColor(3), style: .line, dash: [6, 4]),
                ]
            ).draw(on: canvas, in: panels[1])
        }
    }
}
