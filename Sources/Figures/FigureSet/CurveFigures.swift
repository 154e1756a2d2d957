import Foundation

extension Figures {
    /// Training loss and train/test accuracy per epoch ("training_curves").
    public static func trainingCurves(_ history: TrainingHistory) throws -> Figure {
        let name = "training_curves"
        let e = history.epochs
        try require(!e.isEmpty, name, "no epochs")
        for r in e {
            try require(
                (0...1).contains(r.trainAccuracy) && (0...1).contains(r.testAccuracy), name,
                "epoch \(r.epoch): accuracies must be fractions in [0, 1] (got \(r.trainAccuracy), \(r.testAccuracy))")
            try require(
                r.loss.isFinite && r.loss > 0, name, "epoch \(r.epoch): loss \(r.loss) is not a positive number")
        }
        let epochs = e.map { Double($0.epoch) }
        let last = e.last!
        let totalSeconds = e.reduce(0) { $0 + $1.seconds }
        return Figure(
            name: name, title: "Training: loss and accuracy per epoch", width: 1200, height: 560,
            caption: "Left: mean training cross-entropy per epoch (log scale). Right: accuracy on the training and "
                + "test sets after each epoch. Read the gap between the two accuracy curves as overfitting; a flat "
                + "test curve means more epochs would not help. Final test accuracy "
                + "\(significant(100 * last.testAccuracy, 4))% after \(last.epoch) epochs, \(significant(totalSeconds, 3)) s of training."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: 2, gap: 24)
            XYChart(
                title: "Training loss", x: Axis("epoch", integerTicks: true),
                y: Axis("cross-entropy (nats, log scale)", scale: .log10),
                series: [Series("training loss", x: epochs, y: e.map(\.loss), color: seriesColor(0))]
            )
            .draw(on: canvas, in: panels[0])
            XYChart(
                title: "Accuracy", x: Axis("epoch", integerTicks: true), y: Axis("accuracy (%)"),
                series: [
                    Series(
                        "train", x: epochs, y: e.map { 100 * $0.trainAccuracy }, color: seriesColor(0),
                        marker: marker(0)),
                    Series(
                        "test", x: epochs, y: e.map { 100 * $0.testAccuracy }, color: seriesColor(1),
                        marker: marker(1), dash: [7, 4]),
                ]
            )
            .draw(on: canvas, in: panels[1])
        }
    }

    /// Singular values σᵢ against index i per layer, linear and log scale ("singular_values").
    public static func singularValues(_ layers: [SigmaSeries]) throws -> Figure {
        let name = "singular_values"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                !l.sigma.isEmpty && l.sigma.allSatisfy { $0.isFinite && $0 >= 0 }, name,
                "\(l.name): σ must be non-empty, finite and ≥ 0")
        }
        let series = layers.enumerated().map { i, l in
            Series(
                l.name, x: (1...l.sigma.count).map(Double.init), y: l.sigma, color: seriesColor(i), marker: marker(i))
        }
        let summary = layers.map { l in
            "\(l.name): σ₁ = \(significant(l.sigma[0])), σ\(subscriptDigits(l.sigma.count)) = \(significant(l.sigma.last!)), "
                + "σ₁/σ\(subscriptDigits(l.sigma.count)) = \(l.sigma.last! > 0 ? significant(l.sigma[0] / l.sigma.last!) : "∞")"
        }.joined(separator: "; ")
        return Figure(
            name: name, title: "Singular-value spectrum of each conv layer", width: 1200, height: 560,
            caption:
                "The singular values σᵢ of each reshaped weight matrix W = UΣVᵀ, largest first, on a linear (left) and "
                + "logarithmic (right) scale. A fast decay means a few directions carry most of the layer; a flat "
                + "spectrum means every direction matters. \(summary)."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: 2, gap: 24)
            XYChart(
                title: "Linear scale", x: Axis("index i", integerTicks: true), y: Axis("singular value σᵢ"),
                series: series
            ).draw(on: canvas, in: panels[0])
            XYChart(
                title: "Log scale", x: Axis("index i", integerTicks: true),
                y: Axis("singular value σᵢ (log scale)", scale: .log10),
                series: series
            ).draw(on: canvas, in: panels[1])
        }
    }

    /// Cumulative energy against rank with the 90/95/99% lines ("cumulative_energy").
    public static func cumulativeEnergy(_ layers: [EnergySeries]) throws -> Figure {
        let name = "cumulative_energy"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                !l.cumulativeEnergy.isEmpty
                    && l.cumulativeEnergy.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 + 1e-9 },
                name, "\(l.name): cumulative energy must be fractions in [0, 1]")
        }
        let thresholds = [0.90, 0.95, 0.99]
        // The smallest k reaching each threshold, read off the given curve.
        let needed = layers.map { l in
            thresholds.map { t in
                (l.cumulativeEnergy.firstIndex { $0 >= t - 1e-12 } ?? l.cumulativeEnergy.count - 1) + 1
            }
        }
        let summary = zip(layers, needed).map { l, k in
            "\(l.name) needs \(k[0]) / \(k[1]) / \(k[2]) of \(l.cumulativeEnergy.count)"
        }.joined(separator: "; ")
        return Figure(
            name: name, title: "Cumulative energy against rank", width: 900, height: 600,
            caption:
                "The share of ‖W‖²_F kept by the top k singular directions, Σ_{i≤k}σᵢ² / Σσᵢ², for each layer; the dashed "
                + "lines mark 90%, 95% and 99%. Where a curve crosses a line is the number of components that keeps that much "
                + "energy: \(summary) components for 90 / 95 / 99%."
        ) { canvas, body in
            XYChart(
                title: "", x: Axis("rank k (components kept)", integerTicks: true),
                y: Axis(
                    "cumulative energy (%)", range: 0...102, tickFormatter: { TickGenerator.format($0, decimals: 0) }),
                series: layers.enumerated().map { i, l in
                    Series(
                        l.name, x: (1...l.cumulativeEnergy.count).map(Double.init),
                        y: l.cumulativeEnergy.map { 100 * $0 },
                        color: seriesColor(i), marker: marker(i))
                },
                referenceLines: thresholds.map { ReferenceLine(.horizontal, at: 100 * $0, label: "\(Int(100 * $0))%") }
            ).draw(on: canvas, in: body)
        }
    }

    /// Relative reconstruction error against rank, measured and predicted ("reconstruction_error").
    public static func reconstructionError(_ layers: [ReconstructionSeries]) throws -> Figure {
        let name = "reconstruction_error"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                !l.ranks.isEmpty && l.ranks.count == l.fromMatrices.count && l.ranks.count == l.fromSigma.count,
                name,
                "\(l.name): \(l.ranks.count) ranks, \(l.fromMatrices.count) measured, \(l.fromSigma.count) predicted errors"
            )
        }
        let worst = layers.flatMap { l in zip(l.fromMatrices, l.fromSigma).map { abs($0 - $1) } }.max() ?? 0
        var series: [Series] = []
        for (i, l) in layers.enumerated() {
            let ks = l.ranks.map(Double.init)
            series.append(
                Series(
                    "\(l.name): from σ (Eckart–Young)", x: ks, y: l.fromSigma.map { 100 * $0 },
                    color: seriesColor(i), style: .line, dash: i == 0 ? [] : [7, 4]))
            series.append(
                Series(
                    "\(l.name): measured ‖W − W_k‖", x: ks, y: l.fromMatrices.map { 100 * $0 },
                    color: seriesColor(i), style: .markers, marker: marker(i), markerRadius: 5))
        }
        return Figure(
            name: name, title: "Relative reconstruction error against rank", width: 900, height: 600,
            caption:
                "‖W − W_k‖_F / ‖W‖_F for the rank-k truncation W_k = U_k Σ_k V_kᵀ: markers measured from the matrices, "
                + "lines predicted from the singular values alone, √(Σ_{i>k}σᵢ²/Σσᵢ²). Markers on the lines confirm "
                + "Eckart–Young (largest gap between the two: \(significant(worst, 2))). The error reaches 0 at full rank."
        ) { canvas, body in
            XYChart(
                title: "", x: Axis("rank k", integerTicks: true), y: Axis("relative Frobenius error (%)"),
                series: series
            )
            .draw(on: canvas, in: body)
        }
    }

    /// Test accuracy with layers replaced by rank-k approximations ("accuracy_vs_rank").
    /// - Parameter fullRankAccuracy: the unmodified network's test accuracy (fraction), drawn as a dashed line.
    public static func accuracyVsRank(_ curves: [AccuracySeries], fullRankAccuracy: Double?) throws -> Figure {
        let name = "accuracy_vs_rank"
        try require(!curves.isEmpty, name, "no curves")
        for c in curves {
            try require(
                !c.ranks.isEmpty && c.ranks.count == c.accuracy.count, name,
                "\(c.label): \(c.ranks.count) ranks, \(c.accuracy.count) accuracies")
            try require(
                c.accuracy.allSatisfy { (0...1).contains($0) }, name,
                "\(c.label): accuracies must be fractions in [0, 1]")
        }
        let lines =
            fullRankAccuracy.map {
                [
                    ReferenceLine(
                        .horizontal, at: 100 * $0, label: "full rank: \(significant(100 * $0, 4))%", inLegend: true)
                ]
            } ?? []
        let summary = curves.map { c -> String in
            // The smallest rank within 1 point of the full network, when it exists.
            guard let full = fullRankAccuracy, let i = c.accuracy.firstIndex(where: { $0 >= full - 0.01 }) else {
                return ""
            }
            return "\(c.label): rank \(c.ranks[i]) is within one point of full rank"
        }.filter { !$0.isEmpty }.joined(separator: "; ")
        // From the nearest 10% below the lowest point up to 100%: accuracy has a hard ceiling.
        let lowest = 100 * min(curves.flatMap(\.accuracy).min() ?? 0, fullRankAccuracy ?? 1)
        let accuracyRange = max(0, 10 * floor((lowest - 1) / 10))...100
        return Figure(
            name: name, title: "Test accuracy with low-rank layers", width: 900, height: 600,
            caption:
                "Test accuracy of the network with a conv layer's weights replaced by the rank-k truncation W_k (each "
                + "layer alone, and both at once with the same k). Read how many directions each layer really needs: the "
                + "rank at which a curve joins the full-rank line. " + (summary.isEmpty ? "" : summary + ".")
        ) { canvas, body in
            XYChart(
                title: "", x: Axis("rank k", integerTicks: true), y: Axis("test accuracy (%)", range: accuracyRange),
                series: curves.enumerated().map { i, c in
                    Series(
                        c.label, x: c.ranks.map(Double.init), y: c.accuracy.map { 100 * $0 }, color: seriesColor(i),
                        marker: marker(i), dash: [[], [7, 4], [2, 4]][i % 3])
                },
                referenceLines: lines
            ).draw(on: canvas, in: body)
        }
    }
}
