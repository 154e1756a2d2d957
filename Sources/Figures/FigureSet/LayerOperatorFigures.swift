import Analysis
import Foundation

extension Figures {
    /// Phase 9's figures, in report order: operator spectra, data-aware low
    /// rank, principal angles, then each layer's eigenfilters beside its patch
    /// principal components.
    public static func layerOperatorFigures(_ p: LayerOperatorReport) throws -> [Figure] {
        var figures = [
            try operatorSpectra(p.operatorSpectra), try dataAwareLowRank(p.dataAwareLowRank),
            try principalAngles(p.filtersVersusData),
        ]
        for a in p.filtersVersusData {
            guard let spectrum = p.operatorSpectra.first(where: { $0.layer == a.layer }) else { continue }
            figures.append(
                try filtersVersusPatchComponents(a, inputChannels: spectrum.inChannels, kernelSize: spectrum.kernelSide)
            )
        }
        if let regions = p.regionsAlongLines, let trace = regions.figure {
            figures.append(try logitsAlongSegment(trace, report: regions))
        }
        return figures
    }

    /// σᵢ of A_valid and A_circ (all of them) beside σᵢ(W), log–log, per
    /// layer, with the bound √(kH·kW)·σ₁(W) and Singla & Feizi's ("operator_spectra").
    public static func operatorSpectra(_ layers: [OperatorSpectrum]) throws -> Figure {
        let name = "operator_spectra"
        try require(!layers.isEmpty, name, "no layers")
        for l in layers {
            try require(
                !l.validSingularValues.isEmpty && !l.circulantSingularValues.isEmpty, name,
                "\(l.layer): no singular values")
        }
        func series(_ label: String, _ sigma: [Double], _ i: Int, style: Series.Style, dash: [Double] = []) -> Series {
            // Exact zeros (up to rounding) have no place on a log axis.
            let floor = 1e-12 * (sigma.max() ?? 0)
            let kept = sigma.enumerated().filter { $0.element > floor }
            return Series(
                label, x: kept.map { Double($0.offset + 1) }, y: kept.map(\.element), color: seriesColor(i),
                style: style, marker: marker(i), dash: dash, lineWidth: 2, markerRadius: 5)
        }
        let summary = layers.map { l in
            "\(l.layer): σ₁(W) = \(significant(l.weightSpectralNorm)), ‖A_valid‖₂ = \(significant(l.validSpectralNorm)), "
                + "‖A_circ‖₂ = \(significant(l.circulantDenseSpectralNorm)), 3σ₁(W) = \(significant(l.kernelSizeBound)), "
                + "Singla–Feizi \(significant(l.fantasticFourBound))"
        }.joined(separator: "; ")
        return Figure(
            name: name, title: "Each conv layer as an operator: all its singular values beside W's", width: 1400,
            height: 620,
            caption:
                "Every singular value of the layer as the linear map it is on its input (conv1: 1×28×28 → 8×26×26, a 5408×784 "
                + "matrix; conv2: 8×13×13 → 16×11×11, 1936×1352), unpadded (A_valid, dense SVD) and circular (A_circ, from the "
                + "2-D DFT: the singular values of the out×in matrices K̂(ω) over all n² frequencies), against the singular values "
                + "of the reshaped weight W (markers at the left). Log–log. The operator has far more directions than W, and its "
                + "largest gain lies between σ₁(W) and the bound √(kH·kW)·σ₁(W) = 3σ₁(W) (grey; Singla & Feizi's four-reshape bound is the smaller of it and three other reshapes' norms). \(summary)."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: layers.count, gap: 24)
            for (l, panel) in zip(layers, panels) {
                XYChart(
                    title: "\(l.layer) (\(l.validShape[0])×\(l.validShape[1]) valid)",
                    x: Axis("index i (log scale)", scale: .log10),
                    y: Axis("singular value σᵢ (log scale)", scale: .log10),
                    series: [
                        series("A_circ (via K̂(ω))", l.circulantSingularValues, 0, style: .line),
                        series("A_valid (dense SVD)", l.validSingularValues, 1, style: .line, dash: [7, 4]),
                        series(
                            "W (\(l.outChannels)×\(l.inChannels * l.kernelSide * l.kernelSide))",
                            l.weightSingularValues, 2, style: .markers),
                    ],
                    referenceLines: boundLines(l)
                )
                .draw(on: canvas, in: panel)
            }
        }
    }

    /// The bounds on ‖A_circ‖₂, named in the legend; one line when they
    /// coincide (Singla–Feizi's minimum is R₃ = W, i.e. 3σ₁(W), whenever W's
    /// reshape has the smallest norm).
    static func boundLines(_ l: OperatorSpectrum) -> [ReferenceLine] {
        let kernel = "\(l.kernelSide)σ₁(W)"
        if abs(l.fantasticFourBound - l.kernelSizeBound) <= 1e-12 * l.kernelSizeBound {
            return [
                ReferenceLine(
                    .horizontal, at: l.kernelSizeBound, label: "bound \(kernel) = Singla–Feizi", inLegend: true)
            ]
        }
        return [
            ReferenceLine(.horizontal, at: l.kernelSizeBound, label: "bound \(kernel)", inLegend: true),
            ReferenceLine(
                .horizontal, at: l.fantasticFourBound, label: "Singla–Feizi bound", dash: [2, 3], inLegend: true),
        ]
    }

    /// Relative data error and test accuracy of the data-aware Ŵ_k beside the
    /// plain W_k ("data_aware_low_rank").
    public static func dataAwareLowRank(_ r: DataAwareLowRankReport) throws -> Figure {
        let name = "data_aware_low_rank"
        try require(!r.layers.isEmpty, name, "no layers")
        let hasAccuracy =
            r.layers.allSatisfy { l in l.rows.allSatisfy { $0.testAccuracy != nil } } && r.bothLayers != nil
        func pair(_ ks: [Int], _ data: [Double], _ plain: [Double?]) -> [Series] {
            let x = ks.map(Double.init)
            var s = [Series("data-aware Ŵ_k = U_kU_kᵀW", x: x, y: data, color: seriesColor(0), marker: marker(0))]
            if plain.allSatisfy({ $0 != nil }) {
                s.append(
                    Series(
                        "plain W_k = U_kΣ_kV_kᵀ", x: x, y: plain.map { $0! }, color: seriesColor(1), marker: marker(1),
                        dash: [7, 4]))
            }
            return s
        }
        let errorSummary = r.layers.map { l -> String in
            guard let row = l.rows.first(where: { $0.rank == 2 }) ?? l.rows.first else { return "" }
            return
                "\(l.layer) at k = \(row.rank): \(significant(100 * row.relativeError, 3))% against \(significant(100 * row.plainRelativeError, 3))%"
        }.joined(separator: "; ")
        return Figure(
            name: name, title: "Data-aware low rank against plain truncation", width: 1400,
            height: hasAccuracy ? 1000 : 560,
            caption:
                "Top: the mean error E‖(W − Ŵ)p‖² / E‖Wp‖² over every training patch p of the layer's real input, for the "
                + "rank-k map that minimises it (Ŵ_k = U_kU_kᵀW, U_k the top eigenvectors of W·C·Wᵀ, C = E[ppᵀ]) and for the "
                + "plain truncation W_k, which minimises ‖W − W_k‖_F instead. \(errorSummary)."
                + (hasAccuracy
                    ? " Bottom: test accuracy with conv1 replaced (conv2 full), conv2 replaced (conv1 full), and both at "
                        + "the same k. Read how much rank each layer needs once the data decides which directions matter."
                    : "")
        ) { canvas, body in
            let top = Rect(
                x: body.x, y: body.y, width: body.width, height: hasAccuracy ? body.height * 0.48 : body.height)
            for (l, panel) in zip(r.layers, top.grid(rows: 1, columns: r.layers.count, gap: 24)) {
                XYChart(
                    title: "\(l.layer): error on the training patches", x: Axis("rank k", integerTicks: true),
                    y: Axis("E‖(W − Ŵ)p‖² / E‖Wp‖² (%)"),
                    series: pair(
                        l.rows.map(\.rank), l.rows.map { 100 * $0.relativeError },
                        l.rows.map { 100 * $0.plainRelativeError })
                )
                .draw(on: canvas, in: panel)
            }
            guard hasAccuracy, let both = r.bothLayers else { return }
            let bottom = Rect(x: body.x, y: body.y + body.height * 0.52, width: body.width, height: body.height * 0.48)
            var curves = r.layers.map { l in
                (
                    "\(l.layer) replaced", l.rows.map(\.rank), l.rows.map { 100 * $0.testAccuracy! },
                    l.rows.map { $0.plainTestAccuracy.map { 100 * $0 } }
                )
            }
            curves.append(
                (
                    "both at rank k", both.map(\.rank), both.map { 100 * $0.testAccuracy },
                    both.map { $0.plainTestAccuracy.map { 100 * $0 } }
                ))
            let lowest = curves.flatMap { $0.2 + $0.3.compactMap { $0 } }.min() ?? 0
            let range = max(0, 10 * floor((lowest - 1) / 10))...100
            for (c, panel) in zip(curves, bottom.grid(rows: 1, columns: curves.count, gap: 24)) {
                XYChart(
                    title: "test accuracy, \(c.0)", x: Axis("rank k", integerTicks: true),
                    y: Axis("test accuracy (%)", range: range),
                    series: pair(c.1, c.2, c.3)
                ).draw(on: canvas, in: panel)
            }
        }
    }

    /// Σcos²θ between the top-k eigenfilters and the top-k patch principal
    /// components against k, beside a random subspace's k²/d and identical
    /// subspaces' k ("principal_angles").
    public static func principalAngles(_ layers: [FilterDataAngles]) throws -> Figure {
        let name = "principal_angles"
        try require(!layers.isEmpty && layers.allSatisfy { !$0.angles.isEmpty }, name, "no angles")
        let summary = layers.map { l -> String in
            let last = l.angles.last!
            return
                "\(l.layer) at k = \(last.k): Σcos²θ = \(significant(last.sumOfSquaredCosines)) (random \(significant(last.randomExpectation)), "
                + "smallest angle \(significant(last.anglesDegrees.first!, 2))°, largest \(significant(last.anglesDegrees.last!, 2))°)"
        }.joined(separator: "; ")
        return Figure(
            name: name, title: "Eigenfilters against the data: principal angles", width: 1300, height: 580,
            caption:
                "How much the span of the top-k eigenfilters (right singular vectors of W) shares with the span of the top-k "
                + "principal components of the layer's input patches (eigenvectors of C = E[ppᵀ]): Σcos²θᵢ over the k principal "
                + "angles (Björck–Golub: the singular values of Q_AᵀQ_B). k means the same subspace; k²/d is what a random "
                + "k-dimensional subspace of R^d shares on average. conv1 stops at k = 4: two 8-dimensional subspaces of R⁹ share at "
                + "least 7 dimensions whatever they are. \(summary)."
        ) { canvas, body in
            for (l, panel) in zip(layers, body.grid(rows: 1, columns: layers.count, gap: 24)) {
                let ks = l.angles.map { Double($0.k) }
                XYChart(
                    title: "\(l.layer) (d = \(l.angles[0].dimension))", x: Axis("k", integerTicks: true),
                    y: Axis("Σ cos²θᵢ"),
                    series: [
                        Series(
                            "eigenfilters vs patch PCs", x: ks, y: l.angles.map(\.sumOfSquaredCosines),
                            color: seriesColor(0), marker: marker(0)),
                        Series(
                            "random subspace, k²/d", x: ks, y: l.angles.map(\.randomExpectation), color: seriesColor(1),
                            style: .line, dash: [7, 4]),
                        Series("same subspace, k", x: ks, y: ks, color: .midGrey, style: .line, dash: [2, 3]),
                    ]
                ).draw(on: canvas, in: panel)
            }
        }
    }

    /// The eigenfilters (rows of Vᵀ) beside the patch principal components
    /// (top eigenvectors of C), one scale ("<layer>_filters_vs_patch_components").
    public static func filtersVersusPatchComponents(_ a: FilterDataAngles, inputChannels: Int, kernelSize k: Int) throws
        -> Figure
    {
        let name = "\(a.layer)_filters_vs_patch_components"
        try require(!a.eigenfilters.isEmpty && !a.patchComponents.isEmpty, name, "no vectors")
        let shown = min(8, a.eigenfilters.count, a.patchComponents.count)
        func tile(_ v: [Double]) -> Tile { filterTile(v[...], inputChannels: inputChannels, kernelSize: k) }
        let caption =
            "Left/top: the \(a.layer) eigenfilters v₁…v\(subscriptDigits(shown)) (right singular vectors of W, by decreasing σ). "
            + "Right/bottom: the principal components c₁…c\(subscriptDigits(shown)) of the layer's input patches (eigenvectors of "
            + "C = E[ppᵀ] by decreasing eigenvalue; C is the uncentred second moment, so c₁ is close to the mean patch). Both are unit "
            + "vectors with the sign that makes the largest entry positive; one colour scale. Read whether the layer's strongest "
            + "directions are the data's strongest directions (see principal_angles for the numbers)."
        if inputChannels == 1 {
            let tiles: [[Tile?]] = [
                a.eigenfilters.prefix(shown).map { tile($0) }, a.patchComponents.prefix(shown).map { tile($0) },
            ]
            return Figure(
                name: name, title: "\(a.layer): eigenfilters beside the patch principal components", width: 1200,
                height: 420,
                caption: caption
            ) { canvas, body in
                TileGrid(
                    title: "", tiles: tiles, rowLabels: ["eigenfilters vᵢ", "patch PCs cᵢ"],
                    columnLabels: (1...shown).map { "i = \($0)" }, colorBarLabel: "entry (unit vector)"
                ).draw(on: canvas, in: body)
            }
        }
        let tiles: [[Tile?]] = (0..<shown).map { [tile(a.eigenfilters[$0]), tile(a.patchComponents[$0])] }
        return Figure(
            name: name, title: "\(a.layer): eigenfilters beside the patch principal components", width: 1300,
            height: 150 + 60 * shown,
            caption: caption
        ) { canvas, body in
            TileGrid(
                title: "", tiles: tiles, rowLabels: (1...shown).map { "i = \($0)" },
                columnLabels: ["eigenfilter vᵢ (\(inputChannels) input channels)", "patch PC cᵢ"],
                colorBarLabel: "entry (unit vector)", columnBreaks: [0]
            ).draw(on: canvas, in: body)
        }
    }
}
