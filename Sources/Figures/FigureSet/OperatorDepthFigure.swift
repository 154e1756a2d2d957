import Analysis
import Foundation

extension Figures {
    /// By depth, phase 9: each layer's σ₁(W̃) beside its operator norm on
    /// its real input (the power-iteration lower bound and the Gram upper
    /// bound, the circular operator's norm) and the patch-count bound; each
    /// residual block's Lipschitz bound; the network's product bound beside
    /// the largest measured ‖∂logits/∂x‖₂ ("operators_by_depth").
    public static func operatorsByDepth(_ report: NetworkAnalysisReport) throws -> Figure {
        let name = "operators_by_depth"
        let layers = report.layers
        let o = report.operators
        try require(!layers.isEmpty && !o.layers.isEmpty, name, "no layers or no conv operators")
        try require(
            o.upperBounds.count == layers.count && o.upperBounds.allSatisfy { $0 > 0 && $0.isFinite }, name,
            "\(o.upperBounds.count) per-layer bounds for \(layers.count) layers, each must be positive and finite")
        try require(
            o.networkBound > 0 && o.networkBound.isFinite, name, "the network bound must be positive and finite")
        for l in layers { try require(l.sigma.first.map { $0 > 0 } == true, name, "\(l.name): σ₁ must be positive") }
        let index = Dictionary(uniqueKeysWithValues: layers.enumerated().map { ($0.element.name, $0.offset + 1) })
        for l in o.layers {
            try require(
                index[l.name] != nil && l.bracket.lower > 0 && l.bracket.upper >= l.bracket.lower, name,
                "\(l.name): not among the layers, or its bracket is not 0 < lower ≤ upper")
        }
        let convX = o.layers.map { Double(index[$0.name]!) }
        let circular = o.layers.compactMap { l in l.circularNorm.map { (Double(index[l.name]!), $0) } }
        let list = layers.enumerated().map { "\($0.offset + 1) \($0.element.name)" }.joined(separator: ", ")
        let blocks = o.blocks
        var networkValues = [o.networkBound]
        var networkNames = ["bound"]
        if let g = o.measuredGradient {
            networkValues.append(g.maxNorm)
            networkNames.append("measured")
        }
        let gradientNote =
            o.measuredGradient.map { g in
                " Right: the product bound \(significant(o.networkBound, 4)) beside the largest ‖∂logits/∂x‖₂ over "
                    + "\(g.images) test images measured with the device's backward pass (\(significant(g.maxNorm, 4)), "
                    + "a lower bound of the Lipschitz constant): the bound is \(significant(g.slack, 3))× it."
            } ?? " Right: the product bound \(significant(o.networkBound, 4)) (no gradient measured)."
        return Figure(
            name: name, title: "Operator norms and Lipschitz bounds by depth", width: 1500, height: 620,
            caption: "Left, per layer in forward order (\(list)), log scale: σ₁(W̃) of the reshaped weight "
                + "(BatchNorm folded), and for every conv layer its norm as the operator it is on its real input: "
                + "the power-iteration lower bound and the Gram-iteration upper bound of ‖A‖₂ (zero padding, the "
                + "layer's stride; they agree to the printed gap), the circular operator's ‖A_circ‖₂ from the DFT "
                + "where the stride divides the grid, and the patch-count bound ⌈k/s⌉·σ₁(W̃). Middle: each residual "
                + "block's bound ‖S‖ + Π‖Aᵢ‖ (the shortcut's ‖S‖ is 1 for the identity) with its two terms, named by "
                + "the block's first conv." + gradientNote
        ) { canvas, body in
            let left = Rect(x: body.x, y: body.y, width: body.width * 0.47, height: body.height)
            let middle = Rect(x: body.x + body.width * 0.49, y: body.y, width: body.width * 0.29, height: body.height)
            let right = Rect(x: body.x + body.width * 0.8, y: body.y, width: body.width * 0.2, height: body.height)
            var series = [
                Series(
                    "σ₁(W̃)", x: (1...layers.count).map(Double.init), y: layers.map { $0.sigma[0] },
                    color: seriesColor(0), marker: marker(0)),
                Series(
                    "‖A‖₂ upper (Gram)", x: convX, y: o.layers.map(\.bracket.upper), color: seriesColor(1),
                    marker: marker(1), dash: [6, 4]),
                Series(
                    "‖A‖₂ lower (power)", x: convX, y: o.layers.map(\.bracket.lower), color: seriesColor(3),
                    style: .markers, marker: .circle, markerRadius: 3),
                Series(
                    "⌈k/s⌉·σ₁(W̃)", x: convX, y: o.layers.map(\.patchCountBound), color: .midGrey, marker: marker(2),
                    dash: [2, 3]),
            ]
            if !circular.isEmpty {
                series.append(
                    Series(
                        "‖A_circ‖₂", x: circular.map(\.0), y: circular.map(\.1), color: seriesColor(2),
                        style: .markers, marker: .diamond, markerRadius: 5))
            }
            XYChart(
                title: "Each layer", x: Axis("layer (forward order)", integerTicks: true),
                y: Axis("norm (log scale)", scale: .log10), series: series
            ).draw(on: canvas, in: left)
            if !blocks.isEmpty {
                BarChart(
                    title: "Each residual block", categories: blocks.map(\.firstLayer),
                    groups: [
                        BarGroup("bound", values: blocks.map(\.bound), color: seriesColor(1)),
                        BarGroup("Π body", values: blocks.map(\.body), color: seriesColor(0)),
                        BarGroup("shortcut", values: blocks.map(\.shortcut), color: .midGrey),
                    ], xLabel: "block (its first conv)", y: Axis("Lipschitz bound"),
                    valueLabel: { significant($0, 3) }
                ).draw(on: canvas, in: middle)
            }
            BarChart(
                title: "The network", categories: networkNames,
                groups: [BarGroup("input → logits", values: networkValues, color: seriesColor(4))], xLabel: "",
                y: Axis("‖·‖₂ (log scale)", scale: .log10), valueLabel: { significant($0, 3) }
            ).draw(on: canvas, in: right)
        }
    }
}
