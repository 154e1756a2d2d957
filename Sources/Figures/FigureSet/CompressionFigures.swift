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

extension Figures {
    /// One setting of a compression grid, as ``compressionGrid(_:denseAccuracy:)`` draws it.
    public struct CompressionSetting: Sendable {
        /// Conv multiply-adds of the compressed network over the dense one's.
        public var convMultiplyAddRatio: Double
        public var dataAware: Bool
        /// Test accuracy (0…1) before fine-tuning and, where run, after it.
        public var accuracy: Double
        public var finetunedAccuracy: Double?
        /// The compressed network's test-set pass over the dense one's, timed in the same run.
        public var timeRatio: Double
        public init(
            convMultiplyAddRatio: Double, dataAware: Bool, accuracy: Double, finetunedAccuracy: Double?,
            timeRatio: Double
        ) {
            self.convMultiplyAddRatio = convMultiplyAddRatio
            self.dataAware = dataAware
            self.accuracy = accuracy
            self.finetunedAccuracy = finetunedAccuracy
            self.timeRatio = timeRatio
        }
    }

    /// `convsvd compress`'s grid figure ("compression_grid"), one point per
    /// setting: test accuracy against the share of the conv multiply-adds
    /// kept (before and after fine-tuning, the dense accuracy as a line), and
    /// the measured test-set pass time over the dense network's against the
    /// same share, beside the line time ∝ multiply-adds that a compression
    /// paying in full would follow.
    public static func compressionGrid(_ settings: [CompressionSetting], denseAccuracy: Double) throws -> Figure {
        let name = "compression_grid"
        try require(!settings.isEmpty, name, "no settings")
        try require(
            settings.allSatisfy { $0.convMultiplyAddRatio.isFinite && $0.timeRatio.isFinite && $0.accuracy.isFinite },
            name, "a setting has a non-finite value")
        var accuracy: [Series] = []
        var time: [Series] = []
        for (i, (aware, label)) in [(false, "SVD factors"), (true, "data-aware")].enumerated() {
            let group = settings.filter { $0.dataAware == aware }
            guard !group.isEmpty else { continue }
            let x = group.map(\.convMultiplyAddRatio)
            accuracy.append(
                Series(
                    label, x: x, y: group.map { 100 * $0.accuracy }, color: seriesColor(i), style: .markers,
                    marker: marker(0), markerRadius: 5))
            let tuned = group.filter { $0.finetunedAccuracy != nil }
            if !tuned.isEmpty {
                accuracy.append(
                    Series(
                        label + ", fine-tuned", x: tuned.map(\.convMultiplyAddRatio),
                        y: tuned.map { 100 * $0.finetunedAccuracy! }, color: seriesColor(i), style: .markers,
                        marker: marker(1), markerRadius: 5))
            }
            time.append(
                Series(
                    label, x: x, y: group.map(\.timeRatio), color: seriesColor(i), style: .markers, marker: marker(0),
                    markerRadius: 5))
        }
        time.append(
            Series(
                "time ∝ conv multiply-adds", x: [0, 1], y: [0, 1], color: seriesColor(3), style: .line, dash: [6, 4]))
        let slowest = max(1.2, (settings.map(\.timeRatio).max() ?? 1) * 1.1)
        return Figure(
            name: name, title: "Compression settings: accuracy and time against the work kept",
            width: 1200, height: 560,
            caption: "One point per setting of the grid. Left: test accuracy against the compressed network's share "
                + "of the dense conv multiply-adds (squares: after fine-tuning; the line: the dense network's "
                + "\(significant(100 * denseAccuracy, 4))%). Right: the compressed network's test-set pass over the "
                + "dense one's, both timed in the same run; below 1 it is faster, and on the dashed line time "
                + "falls as the multiply-adds do."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: 2, gap: 24)
            XYChart(
                title: "test accuracy", x: Axis("conv multiply-adds kept", range: 0...1),
                y: Axis("test accuracy (%)"), series: accuracy,
                referenceLines: [ReferenceLine(.horizontal, at: 100 * denseAccuracy, label: "dense")]
            ).draw(on: canvas, in: panels[0])
            XYChart(
                title: "test-set pass, compressed over dense", x: Axis("conv multiply-adds kept", range: 0...1),
                y: Axis("time ratio", range: 0...slowest), series: time,
                referenceLines: [ReferenceLine(.horizontal, at: 1, label: "dense")]
            ).draw(on: canvas, in: panels[1])
        }
    }
}
