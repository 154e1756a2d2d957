import Analysis
import Foundation

extension Figures {
    /// Phase 9's regions along lines of a network description, from
    /// analysis.json's `regions`: the pieces of every segment walked
    /// ("segment_pieces") and, when the report holds a trace, the logits
    /// along one segment with its breakpoints ("segment_logits").
    public static func networkRegionFigures(_ r: NetworkRegionsReport) throws -> [Figure] {
        guard !r.segments.isEmpty else { return [] }
        var figures = [try segmentPieces(r)]
        if let trace = r.trace { figures.append(try segmentLogits(trace, report: r)) }
        return figures
    }

    /// A segment's short name: "s1" for the first same-class one, "d1" for the first different-class one.
    static func segmentName(_ r: NetworkRegionsReport, _ i: Int) -> String {
        let s = r.segments[i]
        let n = r.segments[...i].filter { $0.sameClass == s.sameClass }.count
        return (s.sameClass ? "s" : "d") + "\(n)"
    }

    /// Per segment, the exact pieces of the activation pattern and of the
    /// function (breakpoints whose change can reach the logits), beside the
    /// densely sampled count; per site, the selection changes along each
    /// segment, in forward order ("segment_pieces").
    public static func segmentPieces(_ r: NetworkRegionsReport) throws -> Figure {
        let name = "segment_pieces"
        try require(!r.segments.isEmpty && !r.sites.isEmpty, name, "no segments or no sites")
        for (i, s) in r.segments.enumerated() {
            try require(
                s.pieces >= 1 && (1...s.pieces).contains(s.piecesReachingLogits)
                    && s.eventsPerSite.count == r.sites.count
                    && s.range.count == 2,
                name,
                "segment \(i): needs pieces ≥ reaching ≥ 1, a range [t₀, t₁] and one event count per site "
                    + "(\(s.eventsPerSite.count) for \(r.sites.count) sites)")
        }
        for s in r.sampled {
            try require(
                r.segments.indices.contains(s.segment) && s.samples > 0, name,
                "sampled segment \(s.segment) is not in the report or has no samples")
        }
        let categories = r.segments.indices.map { i in
            "\(segmentName(r, i)): \(r.segments[i].firstLabel)→\(r.segments[i].secondLabel)"
        }
        let sampled = r.segments.indices.map { i in r.sampled.first { $0.segment == i }.map { Double($0.sampledPieces) }
        }
        var groups = [
            BarGroup(
                "pieces of the activation pattern", values: r.segments.map { Double($0.pieces) }, color: seriesColor(0)),
            BarGroup(
                "pieces of the function (reaching the logits)",
                values: r.segments.map { Double($0.piecesReachingLogits) },
                color: seriesColor(1)),
        ]
        if sampled.contains(where: { $0 != nil }) {
            let samples = r.sampled.first?.samples ?? 0
            groups.append(
                BarGroup(
                    "seen by \(samples) samples (a lower bound)", values: sampled.map { $0 ?? .nan },
                    color: seriesColor(2)))
        }
        let first = r.segments[0]
        let list = r.segments.indices.map { i in
            let s = r.segments[i]
            return "\(segmentName(r, i)) test images \(s.first) → \(s.second), length \(significant(s.length, 3))"
        }.joined(separator: "; ")
        let sites = r.sites.enumerated().map { "\($0.offset + 1) \($0.element.name)" }.joined(separator: ", ")
        func stats(_ s: NetworkPieceStatistics?, _ group: String) -> String {
            guard let s else { return "" }
            return " \(group) (\(s.segments)): \(significant(s.piecesMean, 4)) pieces on average (\(s.piecesMin)–"
                + "\(s.piecesMax)), \(significant(s.piecesReachingLogitsMean, 4)) reaching the logits, "
                + "\(significant(s.piecesPerUnitLengthMean, 3)) per unit length walked."
        }
        let sampledNote = r.sampled.map { s in
            "\(segmentName(r, s.segment)): \(s.sampledPieces) of \(s.exactPieces) "
                + "(\(s.sampledPiecesReachingLogits) of \(s.exactPiecesReachingLogits) reaching the logits)"
        }.joined(separator: "; ")
        return Figure(
            name: name, title: "Linear pieces along segments between test images", width: 1400, height: 640,
            caption: "Exact pieces of the folded float64 network (BatchNorm folded, eval mode) on the middle "
                + "t ∈ [\(significant(first.range[0], 4)), \(significant(first.range[1], 4))] of each segment "
                + "x(t) = x₀ + t(x₁ − x₀) between two test images (s: same class, d: different classes; the labels "
                + "x₀→x₁ under each group; \(list)). Left: the pieces of the activation pattern (a breakpoint "
                + "wherever a ReLU unit or a pool window changes its selection), the pieces of the function (only "
                + "breakpoints where a unit that can reach the logits changes), and the patterns seen by dense "
                + "sampling of the host forward pass, which can miss short pieces but never add one"
                + (sampledNote.isEmpty ? "" : " (\(sampledNote))") + ". Right: the selection changes at each "
                + "site along each segment, in forward order (\(sites)); a breakpoint can hold several."
                + stats(r.sameClass, " Same class") + stats(r.differentClasses, "Different classes")
        ) { canvas, body in
            let panels = body.grid(rows: 1, columns: 2, gap: 28)
            BarChart(
                title: "Pieces per segment", categories: categories, groups: groups, xLabel: "segment: classes x₀→x₁",
                y: Axis("pieces"), valueLabel: { "\(Int($0))" }
            ).draw(on: canvas, in: panels[0])
            let x = (1...r.sites.count).map(Double.init)
            XYChart(
                title: "Selection changes per site", x: Axis("site (forward order)", integerTicks: true),
                y: Axis("selection changes on the segment"),
                series: r.segments.indices.map { i in
                    let s = r.segments[i]
                    return Series(
                        segmentName(r, i), x: x, y: s.eventsPerSite.map(Double.init), color: seriesColor(i),
                        marker: marker(i), dash: s.sameClass ? [] : [6, 4], markerRadius: 4)
                }
            ).draw(on: canvas, in: panels[1])
        }
    }

    /// The logits along the traced segment with its breakpoints
    /// ("segment_logits"): every logit on the walked range, an enlarged
    /// stretch of about a dozen breakpoints (each logit less its chord, so
    /// the kinks show), the slope of the two images' class logits on each
    /// piece, and each breakpoint at the first site whose selection changes there.
    public static func segmentLogits(_ trace: NetworkRegionTrace, report r: NetworkRegionsReport) throws -> Figure {
        let name = "segment_logits"
        let n = trace.t.count
        try require(
            n >= 2 && trace.logits.count == n && trace.breakpointReachesLogits.count == n - 2
                && trace.breakpointSites.count == n - 2, name,
            "\(n) cut points, \(trace.logits.count) logit rows, \(trace.breakpointReachesLogits.count) and "
                + "\(trace.breakpointSites.count) breakpoint flags")
        let classes = trace.logits[0].count
        try require(
            classes >= 1 && trace.logits.allSatisfy { $0.count == classes && $0.allSatisfy(\.isFinite) }, name,
            "every logit row must hold \(classes) finite values")
        try require(zip(trace.t, trace.t.dropFirst()).allSatisfy { $0 < $1 }, name, "t must rise strictly")
        try require(r.segments.indices.contains(trace.segment), name, "segment \(trace.segment) is not in the report")
        try require(
            trace.breakpointSites.allSatisfy { (-1..<r.sites.count).contains($0) }, name,
            "a breakpoint's site is not among the report's \(r.sites.count) sites")
        let segment = r.segments[trace.segment]
        let (a, b) = (segment.firstLabel, segment.secondLabel)
        try require(
            (0..<classes).contains(a) && (0..<classes).contains(b), name, "labels \(a), \(b) of \(classes) classes")
        let range = trace.t[0]...trace.t[n - 1]
        let breakpoints = Array(trace.t[1..<(n - 1)])
        let reaching = trace.breakpointReachesLogits.filter { $0 }.count

        func label(_ c: Int) -> String {
            if c == a && c == b { return "class \(c) (x₀ and x₁)" }
            return c == a ? "class \(c) (x₀)" : c == b ? "class \(c) (x₁)" : ""
        }
        func logitSeries(_ span: ClosedRange<Int>, chord: Bool, markers: Bool) -> [Series] {
            let (ta, tb) = (trace.t[span.lowerBound], trace.t[span.upperBound])
            // The classes of x₀ and x₁ last, so that they are drawn on top.
            let order = (0..<classes).filter { $0 != a && $0 != b } + (a == b ? [a] : [a, b])
            return order.map { c in
                let fa = trace.logits[span.lowerBound][c]
                let fb = trace.logits[span.upperBound][c]
                let y = span.map { i in
                    trace.logits[i][c] - (chord ? fa + (trace.t[i] - ta) / (tb - ta) * (fb - fa) : 0)
                }
                let ends = c == a || c == b
                return Series(
                    label(c), x: span.map { trace.t[$0] }, y: y, color: seriesColor(c),
                    style: markers ? .lineAndMarkers : .line, lineWidth: ends ? 2.6 : 1.1, markerRadius: 2.5)
            }
        }
        // dℓ/dt on each piece from its ends, drawn as steps.
        func slopeSeries(_ c: Int, _ label: String, dash: [Double]) -> Series {
            var x: [Double] = []
            var y: [Double] = []
            for i in 0..<(n - 1) {
                let slope = (trace.logits[i + 1][c] - trace.logits[i][c]) / (trace.t[i + 1] - trace.t[i])
                x += [trace.t[i], trace.t[i + 1]]
                y += [slope, slope]
            }
            return Series(label, x: x, y: y, color: seriesColor(c), style: .line, dash: dash, lineWidth: 1.4)
        }
        // The enlarged stretch: about a dozen breakpoints around the middle of the range.
        let middle = breakpoints.firstIndex { $0 >= (range.lowerBound + range.upperBound) / 2 } ?? breakpoints.count / 2
        let lo = max(0, middle - 6)
        let hi = min(n - 1, middle + 7)
        let zoomLines =
            n < 3
            ? []
            : (max(lo, 1)...min(hi, n - 2)).map { i in
                ReferenceLine(
                    .vertical, at: trace.t[i], label: "", dash: trace.breakpointReachesLogits[i - 1] ? [] : [3, 3])
            }
        func raster(_ reachingLogits: Bool, _ label: String, _ color: RGB) -> Series {
            let kept = breakpoints.indices.filter { trace.breakpointReachesLogits[$0] == reachingLogits }
            return Series(
                label, x: kept.map { breakpoints[$0] }, y: kept.map { Double(trace.breakpointSites[$0] + 1) },
                color: color, style: .markers, marker: .diamond, markerRadius: 3, alpha: 0.6)
        }
        let sites = r.sites.enumerated().map { "\($0.offset + 1) \($0.element.name)" }.joined(separator: ", ")
        let kept = n - 1
        return Figure(
            name: name, title: "Logits along a segment between two test images, with the breakpoints", width: 1300,
            height: 1250,
            caption: "The \(classes) logits along x(t) = x₀ + t(x₁ − x₀) from test image \(segment.first) (a \(a)) to "
                + "test image \(segment.second) (a \(b)) on t ∈ [\(significant(range.lowerBound, 5)), "
                + "\(significant(range.upperBound, 5))], at the range's ends and every breakpoint as the exact walk "
                + "carries them (analysis.json's regions.trace); the network is affine between breakpoints, so these "
                + "polylines are the logits (the midpoint check on sampled pieces: largest relative error "
                + "\(significant(segment.midpointMaxRelativeError, 2))). Over so short a range the logits barely move "
                + "(class \(a): \(significant(trace.logits[0][a], 4)) to \(significant(trace.logits[n - 1][a], 4)); "
                + "class \(b): \(significant(trace.logits[0][b], 4)) to \(significant(trace.logits[n - 1][b], 4))), "
                + "so the top panel draws each logit less the straight line through its values at the range's ends: "
                + "what remains is the bending the breakpoints make. "
                + (kept < trace.pieces
                    ? "The trace holds the first \(kept) of the segment's \(trace.pieces) pieces. "
                    : "\(trace.pieces) pieces, ")
                + "\(reaching) of \(breakpoints.count) breakpoints where a unit that can reach the logits changes "
                + "(the segment's pieces of the function: \(segment.piecesReachingLogits)). Middle left: "
                + "t ∈ [\(significant(trace.t[lo], 6)), \(significant(trace.t[hi], 6))] enlarged, each logit less "
                + "the straight line through its values at the stretch's ends, so that the kinks show; a vertical "
                + "line per breakpoint (dotted: no unit reaching the logits changes there). Middle right: the slope "
                + "dℓ/dt of the two images' class logits on each piece, (ℓ(b) − ℓ(a))/(b − a); it jumps only at "
                + "breakpoints. Bottom: each breakpoint at the first site in forward order whose selection changes "
                + "there (\(sites))."
        ) { canvas, body in
            let heights = [0.4, 0.34, 0.26]
            var y = body.y
            var rows: [Rect] = []
            for h in heights {
                rows.append(Rect(x: body.x, y: y, width: body.width, height: body.height * h - 14))
                y += body.height * h
            }
            let middle = rows[1].grid(rows: 1, columns: 2, gap: 24)
            XYChart(
                title: "The walked range: each logit minus its chord", x: Axis("t", range: range),
                y: Axis("logit − chord"), series: logitSeries(0...(n - 1), chord: true, markers: false)
            ).draw(on: canvas, in: rows[0])
            XYChart(
                title: "Enlarged: \(zoomLines.count) breakpoints, each logit minus its chord",
                x: Axis("t", range: trace.t[lo]...trace.t[hi]), y: Axis("logit − chord"),
                series: logitSeries(lo...hi, chord: true, markers: true), referenceLines: zoomLines
            ).draw(on: canvas, in: middle[0])
            XYChart(
                title: "Slope dℓ/dt on each piece", x: Axis("t", range: range), y: Axis("dℓ/dt"),
                series: [slopeSeries(a, label(a), dash: [])] + (a == b ? [] : [slopeSeries(b, label(b), dash: [6, 3])])
            ).draw(on: canvas, in: middle[1])
            XYChart(
                title: "Breakpoints by the first site that changes there",
                x: Axis("t", range: range),
                y: Axis("site (forward order)", range: 0.5...(Double(r.sites.count) + 0.5), integerTicks: true),
                series: [raster(true, "a unit reaching the logits changes (\(reaching))", seriesColor(0))]
                    + (reaching < breakpoints.count
                        ? [raster(false, "none reaching the logits (\(breakpoints.count - reaching))", .midGrey)] : []),
                legendOutside: true
            ).draw(on: canvas, in: rows[2])
        }
    }
}
