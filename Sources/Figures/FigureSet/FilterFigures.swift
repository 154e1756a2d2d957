import Foundation

extension Figures {
    /// One filter (a row of a weight matrix of inputChannels·k·k values, in
    /// PyTorch's (in, kH, kW) order) as a tile: the input channels' k×k
    /// kernels side by side (k rows, in·k columns), divided every k columns.
    static func filterTile(_ row: ArraySlice<Double>, inputChannels: Int, kernelSize k: Int) -> Tile {
        let row = Array(row)
        var values: [Double] = []
        values.reserveCapacity(row.count)
        for r in 0..<k {
            for c in 0..<inputChannels {
                let start: Int = c * k * k + r * k
                values += row[start..<(start + k)]
            }
        }
        return Tile(
            MatrixValues(rows: k, columns: inputChannels * k, values: values),
            dividerEvery: inputChannels > 1 ? k : nil)
    }

    /// The eigenfilters of a conv layer: the rows of Vᵀ, each reshaped to
    /// (in, k, k), on the diverging map centred at zero, with σᵢ beside each
    /// ("<layer>_eigenfilters"). One input channel: one tile per row in a line,
    /// σᵢ under each. Several: a grid of rank rows × input-channel columns.
    /// - Parameters:
    ///   - vt: Vᵀ, r × (in·k·k), rows in order of decreasing σ.
    ///   - sigma: the r singular values.
    public static func eigenfilters(
        layer: String, vt: MatrixValues, sigma: [Double], inputChannels: Int,
        kernelSize: Int = 3
    ) throws -> Figure {
        let name = "\(layer)_eigenfilters"
        try require(
            vt.columns == inputChannels * kernelSize * kernelSize, name,
            "Vᵀ has \(vt.columns) columns, expected in·k·k = \(inputChannels * kernelSize * kernelSize)")
        try require(sigma.count == vt.rows, name, "\(sigma.count) singular values for \(vt.rows) rows of Vᵀ")
        let k = kernelSize
        let rowSlices = (0..<vt.rows).map { vt.values[($0 * vt.columns)..<(($0 + 1) * vt.columns)] }
        let common =
            "Each row vᵢ of Vᵀ is a unit-norm filter over a \(k)×\(k) input patch; the layer's filters are all "
            + "combinations W = Σ σᵢ uᵢ vᵢᵀ of these. Colours: blue negative, white zero, orange positive, on one scale "
            + "for all tiles. Read the large-σ eigenfilters as the patterns the layer responds to most strongly "
            + "(smooth blobs and edges); small-σ ones contribute little."
        if inputChannels == 1 {
            let perRow = min(8, vt.rows)
            let tileRows = Int(ceil(Double(vt.rows) / Double(perRow)))
            var tiles: [[Tile?]] = Array(repeating: Array(repeating: nil, count: perRow), count: tileRows)
            for i in 0..<vt.rows {
                var tile = filterTile(rowSlices[i], inputChannels: 1, kernelSize: k)
                tile.caption = "σ\(subscriptDigits(i + 1)) = \(significant(sigma[i]))"
                tiles[i / perRow][i % perRow] = tile
            }
            return Figure(
                name: name, title: "\(layer) eigenfilters: the rows of Vᵀ as \(k)×\(k) filters",
                width: 1200, height: 110 + 190 * tileRows,
                caption:
                    "The \(vt.rows) right singular vectors of \(layer) (rows of Vᵀ) reshaped to \(k)×\(k), with their singular values. "
                    + common
            ) { canvas, body in
                TileGrid(title: "", tiles: tiles, colorBarLabel: "weight (unit-norm vector)").draw(on: canvas, in: body)
            }
        }
        let tiles: [[Tile?]] = rowSlices.map { row in
            (0..<inputChannels).map { c in
                Tile(
                    MatrixValues(
                        rows: k, columns: k,
                        values: Array(row[(row.startIndex + c * k * k)..<(row.startIndex + (c + 1) * k * k)])))
            }
        }
        let rowLabels = sigma.enumerated().map { "v\(subscriptDigits($0.offset + 1))  σ = \(significant($0.element))" }
        return Figure(
            name: name, title: "\(layer) eigenfilters: rows of Vᵀ × input channels",
            width: 1000, height: 120 + 54 * vt.rows,
            caption:
                "The \(vt.rows) right singular vectors of \(layer) (rows of Vᵀ, one per line, σ at the left), each split into "
                + "its \(inputChannels) input channels' \(k)×\(k) kernels (columns). "
                + common + " A column that stays pale is an input channel that eigenfilter ignores."
        ) { canvas, body in
            TileGrid(
                title: "", tiles: tiles, rowLabels: rowLabels,
                columnLabels: (1...inputChannels).map { "in \($0)" }, colorBarLabel: "weight (unit-norm vector)"
            )
            .draw(on: canvas, in: body)
        }
    }

    /// The learned filters beside their rank-k reconstructions ("<layer>_low_rank_filters").
    /// - Parameters:
    ///   - weights: W, out × (in·k·k).
    ///   - reconstructions: (k, W_k) for a few k, each W_k the same shape as W.
    ///   - relativeErrors: ‖W − W_k‖_F/‖W‖_F for each reconstruction, printed in the column header.
    ///   - filters: how many output filters (rows) to show, from the first.
    public static func lowRankFilters(
        layer: String, weights: MatrixValues, reconstructions: [(rank: Int, weights: MatrixValues)],
        relativeErrors: [Double], inputChannels: Int, kernelSize: Int = 3,
        filters: Int? = nil
    ) throws -> Figure {
        let name = "\(layer)_low_rank_filters"
        try require(
            weights.columns == inputChannels * kernelSize * kernelSize, name,
            "W has \(weights.columns) columns, expected in·k·k = \(inputChannels * kernelSize * kernelSize)")
        try require(!reconstructions.isEmpty, name, "no reconstructions")
        try require(
            relativeErrors.count == reconstructions.count, name,
            "\(relativeErrors.count) errors for \(reconstructions.count) reconstructions")
        for r in reconstructions {
            try require(
                r.weights.rows == weights.rows && r.weights.columns == weights.columns, name,
                "W_\(r.rank) is \(r.weights.rows)×\(r.weights.columns), W is \(weights.rows)×\(weights.columns)")
        }
        let shown = min(filters ?? weights.rows, weights.rows)
        let matrices = [weights] + reconstructions.map(\.weights)
        let labels =
            ["learned W"] + zip(reconstructions, relativeErrors).map { "k = \($0.rank) (\(significant(100 * $1, 2))%)" }
        let ranks = reconstructions.map { String($0.rank) }.joined(separator: ", ")
        func tile(_ m: MatrixValues, _ f: Int) -> Tile {
            filterTile(
                m.values[(f * m.columns)..<((f + 1) * m.columns)], inputChannels: inputChannels, kernelSize: kernelSize)
        }
        let wide = inputChannels > 1
        let caption =
            "The learned \(layer) filters\(shown == weights.rows ? "" : " (the first \(shown))")"
            + (wide
                ? ", one per row (each the \(inputChannels) input channels' \(kernelSize)×\(kernelSize) kernels side by side), "
                    + "beside the same filters in W_k = U_k Σ_k V_kᵀ for k = \(ranks) (columns)"
                : " (top row) above the same filters in W_k = U_k Σ_k V_kᵀ for k = \(ranks) (rows below)")
            + ", with the relative error ‖W − W_k‖_F/‖W‖_F in brackets. One colour scale for all tiles. Read at which k "
            + "the reconstruction becomes indistinguishable from the learned filter."
        let title = "\(layer): learned filters beside rank-k reconstructions"
        if wide {
            // Wide tiles (k × in·k): one filter per row, one reconstruction per column.
            let tiles: [[Tile?]] = (0..<shown).map { f in matrices.map { tile($0, f) } }
            return Figure(name: name, title: title, width: 1400, height: 150 + 44 * shown, caption: caption) {
                canvas, body in
                TileGrid(
                    title: "", tiles: tiles, rowLabels: (1...shown).map { "filter \($0)" }, columnLabels: labels,
                    colorBarLabel: "weight", columnBreaks: [0]
                ).draw(on: canvas, in: body)
            }
        }
        // Square tiles: one reconstruction per row, one filter per column.
        let tiles: [[Tile?]] = matrices.map { m in (0..<shown).map { tile(m, $0) } }
        return Figure(name: name, title: title, width: 1100, height: 150 + 110 * matrices.count, caption: caption) {
            canvas, body in
            TileGrid(
                title: "", tiles: tiles, rowLabels: labels, columnLabels: (1...shown).map { "filter \($0)" },
                colorBarLabel: "weight"
            ).draw(on: canvas, in: body)
        }
    }

    /// U of each layer as a heatmap ("u_matrices"): rows are output channels,
    /// columns the left singular vectors uᵢ in order of decreasing σ.
    public static func leftSingularVectors(_ layers: [(name: String, u: MatrixValues)]) throws -> Figure {
        let name = "u_matrices"
        try require(!layers.isEmpty, name, "no layers")
        return Figure(
            name: name, title: "Left singular vectors U of each layer", width: 1400, height: 700,
            caption:
                "U of each conv layer: column i is the output-channel direction uᵢ that the i-th eigenfilter writes to "
                + "(σᵢ decreasing left to right), row j is output channel j. Blue negative, white zero, orange positive. "
                + "A column concentrated on one or two rows means that direction is essentially one channel; spread columns "
                + "mean the channels share the direction."
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: layers.count, gap: 16)
            for (l, panel) in zip(layers, panels) {
                Heatmap(
                    title: l.name, matrix: l.u, xLabel: "singular direction i", yLabel: "output channel",
                    colorBarLabel: "entry of U", annotate: l.u.rows <= 8 && l.u.columns <= 8
                )
                .draw(on: canvas, in: panel)
            }
        }
    }
}
