import Analysis
import Foundation

/// report.html of the per-layer analysis (`run --model M`): the checks'
/// verdict, the network's figures, then one section per layer that the
/// reader folds open (`<details>`): its spectrum numbers, its truncation
/// accuracies, its operator norms, its ReLU masks, its data-aware ranks and
/// its own checks. One self-contained page, figures embedded.
public enum NetworkReport {
    public static func render(
        _ r: NetworkAnalysisReport, device: String, command: String, figures: [FigureFile]
    ) throws -> String {
        let e = HTMLReport.escape
        var html = HTMLReport.pageStart(
            title: "ConvSVD: \(r.model), layer by layer",
            meta:
                "Generated \(e(HTMLReport.timestamp(Date()))) · device: \(e(device)) · test set \(e(r.testSet.name)) (\(r.testSet.count) images)"
        )
        let failed = r.failedChecks
        html +=
            failed.isEmpty
            ? "<p class=\"banner pass\">All \(r.checks.count) checks passed.</p>\n"
            : "<p class=\"banner fail\">\(failed.count) of \(r.checks.count) checks FAILED: "
                + failed.map { e($0.id) }.joined(separator: "; ") + "</p>\n"
        let c = r.comparison
        html += "<section id=\"network\">\n<h2>The network</h2>\n<table>\n"
        var rows: [(String, String)] = [
            ("layers (BatchNorm folded into)", "\(r.layers.count) (\(r.foldedBatchNorms.count))"),
            (
                "test accuracy, folded float64 network (\(c.images) images)",
                String(format: "%.2f%%", 100 * c.hostAccuracy)
            ),
            ("the same in SVD coordinates: max |Δ logits|", format(c.svdLogitsMaxAbsDifference)),
        ]
        if let a = c.deviceAccuracy, let d = c.foldedVersusDeviceMaxAbsDifference {
            rows.append(("test accuracy on the device", String(format: "%.2f%%", 100 * a)))
            rows.append(("folded network against the device: max |Δ logits|", format(d)))
        }
        rows.append(("Lipschitz bound, input to logits (product of the layers')", format(r.operators.networkBound)))
        if let g = r.operators.measuredGradient {
            rows.append(
                (
                    "largest measured ‖∂logits/∂x‖₂ (\(g.images) test images)",
                    format(g.maxNorm) + " (the bound is " + format(g.slack) + "× it)"
                ))
        }
        for (label, value) in rows { html += "<tr><th>\(e(label))</th><td>\(e(value))</td></tr>\n" }
        html += "</table>\n"
        if !r.operators.blocks.isEmpty {
            html += "<table class=\"blocks\">\n<thead><tr><th>residual block (its first conv)</th>"
            html += "<th>Π‖Aᵢ‖ of the body</th><th>‖S‖ of the shortcut</th><th>bound ‖S‖ + Π‖Aᵢ‖</th></tr></thead>\n"
            for b in r.operators.blocks {
                let cells = [e(b.firstLayer), format(b.body), format(b.shortcut), format(b.bound)]
                html += "<tr class=\"block\">" + cellRow(cells) + "</tr>\n"
            }
            html += "</table>\n"
        }
        html += "</section>\n"

        html += "<section id=\"layers\">\n<h2>Layer by layer</h2>\n<p>Click a layer to open it.</p>\n"
        for layer in r.layers { html += layerSection(layer, r) }
        html += "</section>\n"
        if let g = r.regions { html += regionsSection(g, r) }

        html += "<section id=\"figures\">\n<h2>Figures</h2>\n"
        for (i, f) in figures.enumerated() { html += try HTMLReport.figureBlock(f, index: i + 1) }
        html += "</section>\n"

        html +=
            "<section id=\"checks\">\n<h2>Every check</h2>\n<details>\n<summary>\(r.checks.count) checks</summary>\n"
        html += checkTable(r.checks) + "</details>\n</section>\n"
        html += "<section id=\"run\">\n<h2>Run</h2>\n<table>\n"
        for t in r.timings {
            html +=
                "<tr><th>\(e(t.phase))</th><td>\(String(format: "%.2f s", t.seconds))"
                + (t.cpuSeconds.map { String(format: " (CPU %.2f s)", $0) } ?? "") + "</td></tr>\n"
        }
        html += "<tr><th>command</th><td><code>\(e(command))</code></td></tr>\n</table>\n</section>\n"
        html += "</main>\n</body>\n</html>\n"
        return html
    }

    /// One layer's foldable section.
    static func layerSection(_ l: NetworkLayerRecord, _ r: NetworkAnalysisReport) -> String {
        let e = HTMLReport.escape
        let checks = r.checks.filter { $0.id.hasPrefix(l.name + ".") }
        let verdict = checks.allSatisfy(\.passed) ? "\(checks.count) checks pass" : "a check FAILED"
        var html = "<details id=\"layer-\(e(l.name))\">\n<summary><strong>\(e(l.name))</strong> · \(e(l.kind)) "
        html += "\(l.shape.map(String.init).joined(separator: "×")) · σ₁ \(format(l.sigma.first ?? .nan)) · "
        html += "95%/99% energy at rank \(l.rank95)/\(l.rank99) of \(l.sigma.count) · \(verdict)</summary>\n<table>\n"
        var rows: [(String, String)] = [
            (
                "matrix, stride, padding",
                "\(l.matrixShape.map(String.init).joined(separator: "×")), \(l.stride), \(l.padding)"
            ),
            (
                "input → output",
                "\(l.inputShape.map(String.init).joined(separator: "×")) → \(l.outputShape.map(String.init).joined(separator: "×"))"
            ),
            ("BatchNorm folded", l.batchNorm ?? "none"),
            (
                "σ of W̃ (folded)",
                l.sigma.prefix(8).map(format).joined(separator: ", ") + (l.sigma.count > 8 ? ", …" : "")
            ),
            ("σ₁ of W (as stored)", format(l.unfoldedSigma.first ?? .nan)),
            ("ranks at 90 / 95 / 99% energy", "\(l.rank90) / \(l.rank95) / \(l.rank99)"),
            ("stable rank, entropy rank", format(l.stableRank) + ", " + format(l.entropyEffectiveRank)),
            ("SVD coordinates against the float64 layer: max |Δ|", format(l.svdCoordinatesMaxAbsDifference)),
        ]
        if let d = l.deviceMaxAbsDifference { rows.append(("the device's output: max |Δ|", format(d))) }
        if !l.truncation.isEmpty {
            rows.append(
                (
                    "test accuracy with this layer at rank k (\(r.sweepImages) images)",
                    l.truncation.map { "k \($0.k): " + String(format: "%.2f%%", 100 * $0.accuracy) }.joined(
                        separator: ", ")
                ))
        }
        if let o = r.operators.layers.first(where: { $0.name == l.name }) {
            rows.append(
                (
                    "operator ‖A‖₂ on its \(o.inputShape.map(String.init).joined(separator: "×")) input",
                    format(o.bracket.lower) + " ≤ ‖A‖₂ ≤ " + format(o.bracket.upper) + " (gap "
                        + format(o.bracket.relativeGap) + ")"
                        + (o.circularNorm.map { "; circular " + format($0) } ?? "")
                ))
        }
        if let m = l.reluMasks {
            rows.append(
                (
                    "distinct ReLU masks (\(m.patches) patches of \(m.images) images)",
                    "\(m.distinctMasks), bound \(format(m.boundAtRank)) (\(m.boundKind))"
                ))
        }
        if let d = r.dataAware?.layers.first(where: { $0.layer == l.name }) {
            func first(_ limit: Double, _ value: (DataAwareRow) -> Double) -> String {
                d.rows.first { value($0) <= limit }.map { "\($0.rank)" } ?? "–"
            }
            rows.append(
                (
                    "rank for ≤ 5% / 1% of E‖W̃p‖² lost: data-aware, SVD",
                    first(0.05, \.relativeError) + " / " + first(0.01, \.relativeError) + ", "
                        + first(0.05, \.plainRelativeError) + " / " + first(0.01, \.plainRelativeError)
                ))
        }
        for (label, value) in rows { html += "<tr><th>\(e(label))</th><td>\(e(value))</td></tr>\n" }
        html += "</table>\n" + checkTable(checks) + "</details>\n"
        return html
    }

    /// Phase 9's regions along segments: one row per segment (both piece
    /// counts), the densely sampled segments, the two groups, the sites
    /// (folded) and the section's checks; every number from `g`.
    static func regionsSection(_ g: NetworkRegionsReport, _ r: NetworkAnalysisReport) -> String {
        let e = HTMLReport.escape
        var html = "<section id=\"regions\">\n<h2>Regions along segments</h2>\n"
        guard let first = g.segments.first else {
            return html + "<p>No segments were walked.</p>\n</section>\n"
        }
        html +=
            "<p>Exact linear pieces of the folded float64 network on the middle t ∈ [\(format(first.range[0])), "
            + "\(format(first.range[1]))] of each segment x(t) = x₀ + t(x₁ − x₀) between two test images: pieces of "
            + "the activation pattern (every ReLU or pool selection change), and pieces of the function (only "
            + "changes of units that can reach the logits). The figures <code>segment_pieces</code> and "
            + "<code>segment_logits</code> draw them.</p>\n"
        html += "<table class=\"segments\">\n<thead><tr><th>segment</th><th>test images</th><th>classes</th>"
        html += "<th>length ‖x₁ − x₀‖</th><th>pieces</th><th>pieces of the function</th><th>pieces per unit length</th>"
        html += "<th>shortest piece (t)</th><th>midpoint error</th><th>knot logits error</th></tr></thead>\n"
        for (i, s) in g.segments.enumerated() {
            let cells: [String] = [
                e(Figures.segmentName(g, i)), "\(s.first) → \(s.second)", "\(s.firstLabel) → \(s.secondLabel)",
                format(s.length), "\(s.pieces)", "\(s.piecesReachingLogits)", format(s.piecesPerUnitLength),
                format(s.shortestPiece), format(s.midpointMaxRelativeError), format(s.knotLogitsMaxRelativeDifference),
            ]
            html += "<tr class=\"segment\" data-segment=\"\(i)\">" + cellRow(cells) + "</tr>\n"
        }
        html += "</table>\n"
        if !g.sampled.isEmpty {
            html += "<table class=\"sampled\">\n<thead><tr><th>segment sampled</th><th>samples</th>"
            html += "<th>pieces seen / exact</th><th>of the function seen / exact</th>"
            html += "<th>changes without a breakpoint (all units, reaching the logits)</th></tr></thead>\n"
            for s in g.sampled {
                let name = g.segments.indices.contains(s.segment) ? Figures.segmentName(g, s.segment) : "?"
                let cells: [String] = [
                    e(name), "\(s.samples)", "\(s.sampledPieces) / \(s.exactPieces)",
                    "\(s.sampledPiecesReachingLogits) / \(s.exactPiecesReachingLogits)",
                    "\(s.changesWithoutBreakpoint), \(s.changesReachingLogitsWithoutBreakpoint)",
                ]
                html += "<tr class=\"sampled-segment\" data-segment=\"\(s.segment)\">" + cellRow(cells) + "</tr>\n"
            }
            html += "</table>\n"
        }
        html += "<table class=\"groups\">\n"
        for (label, stats) in [("same class", g.sameClass), ("different classes", g.differentClasses)] {
            guard let t = stats else { continue }
            let pieces =
                "pieces: mean \(format(t.piecesMean)), median \(format(t.piecesMedian)), \(t.piecesMin)–\(t.piecesMax)"
            let function = "of the function: mean \(format(t.piecesReachingLogitsMean))"
            let density = "per unit length: mean \(format(t.piecesPerUnitLengthMean))"
            html +=
                "<tr><th>\(e(label)) (\(t.segments) segments)</th><td>\(pieces); \(function); \(density)</td></tr>\n"
        }
        html +=
            "<tr><th>time</th><td>"
            + String(
                format: "%.2f s wall; CPU %.2f s walking, %.2f s midpoint checks, %.2f s sampling", g.seconds,
                g.countingSeconds, g.midpointSeconds, g.samplingSeconds) + "</td></tr>\n</table>\n"
        html +=
            "<details id=\"regions-sites\">\n<summary>\(g.sites.count) sites and their selection changes</summary>\n"
        html += "<table>\n<thead><tr><th>site</th><th>kind</th><th>units</th><th>reaching the logits</th>"
        html += g.segments.indices.map { "<th>changes on \(e(Figures.segmentName(g, $0)))</th>" }.joined()
        html += "</tr></thead>\n"
        for (k, site) in g.sites.enumerated() {
            html +=
                "<tr><td>\(k + 1) \(e(site.name))</td><td>\(e(site.kind.rawValue))</td><td>\(site.units)</td>"
                + "<td>\(site.liveUnits)</td>"
                + g.segments.map { "<td>\($0.eventsPerSite.indices.contains(k) ? "\($0.eventsPerSite[k])" : "–")</td>" }
                .joined() + "</tr>\n"
        }
        html += "</table>\n</details>\n"
        html += checkTable(r.checks.filter { $0.id.hasPrefix("regions.") })
        return html + "</section>\n"
    }

    /// `<td>` cells of already escaped texts.
    static func cellRow(_ cells: [String]) -> String { cells.map { "<td>" + $0 + "</td>" }.joined() }

    static func checkTable(_ checks: [Check]) -> String {
        let e = HTMLReport.escape
        guard !checks.isEmpty else { return "" }
        var html = "<table>\n<thead><tr><th>check</th><th>value</th><th></th><th>limit</th><th></th></tr></thead>\n"
        for c in checks {
            html +=
                "<tr><td>\(e(c.id))<br><small>\(e(c.description))</small></td><td>\(format(c.value))</td>"
                + "<td>\(e(c.relation.rawValue))</td><td>\(format(c.limit))</td><td>\(c.passed ? "ok" : "FAIL")</td></tr>\n"
        }
        return html + "</table>\n"
    }

    static func format(_ x: Double) -> String {
        if x.isNaN { return "–" }
        if x != 0 && (abs(x) < 1e-3 || abs(x) >= 1e5) { return String(format: "%.3g", x) }
        return String(format: "%.4g", x)
    }

    /// Renders and writes the page atomically.
    public static func write(
        _ r: NetworkAnalysisReport, device: String, command: String, figures: [FigureFile], to url: URL
    ) throws {
        try AtomicFile.write(Data(try render(r, device: device, command: command, figures: figures).utf8), to: url)
    }
}
