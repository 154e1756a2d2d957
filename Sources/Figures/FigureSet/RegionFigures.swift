import Analysis
import Foundation

extension Figures {
    /// The logits along one segment between two test images with its
    /// breakpoints ("logits_along_segment"): the whole segment with every
    /// breakpoint as a tick under the curves, and an enlarged stretch of
    /// about a dozen breakpoints drawn as lines.
    /// - Parameter report: the section, for the segment's indices and the group statistics of the caption.
    public static func logitsAlongSegment(_ trace: RegionTrace, report: RegionsAlongLinesReport) throws -> Figure {
        let name = "logits_along_segment"
        let n = trace.t.count
        try require(
            n >= 2 && trace.logits.count == n && trace.breakpointLayers.count == n - 2, name,
            "\(n) cut points, \(trace.logits.count) logit rows, \(trace.breakpointLayers.count) breakpoint layers")
        let classes = trace.logits[0].count
        try require(
            classes >= 1 && trace.logits.allSatisfy { $0.count == classes && $0.allSatisfy(\.isFinite) }, name,
            "every logit row must hold \(classes) finite values")
        try require(
            zip(trace.t, trace.t.dropFirst()).allSatisfy { $0 < $1 } && trace.t.first == 0 && trace.t.last == 1, name,
            "t must rise strictly from 0 to 1")
        try require(
            report.segments.indices.contains(trace.segment), name, "segment \(trace.segment) is not in the report")
        let segment = report.segments[trace.segment]

        let all = trace.logits.flatMap { $0 }
        let low = all.min()!
        let high = all.max()!
        let span = max(high - low, 1e-9)
        let breakpoints = Array(trace.t[1..<(n - 1)])
        let layers = trace.breakpointLayers
        // The enlarged stretch: about a dozen breakpoints around the middle of the segment.
        let middle = breakpoints.firstIndex { $0 >= 0.5 } ?? breakpoints.count / 2
        let lo = max(0, middle - 6)
        let hi = min(n - 1, middle + 8)  // indices into t
        let zoom = trace.t[lo]...trace.t[hi]

        func logitSeries(_ range: ClosedRange<Int>, markers: Bool, minus chord: Bool) -> [Series] {
            let a = trace.t[range.lowerBound]
            let b = trace.t[range.upperBound]
            return (0..<classes).map { c in
                let ends = c == trace.firstLabel || c == trace.secondLabel
                let label = c == trace.firstLabel ? "class \(c) (x₀)" : c == trace.secondLabel ? "class \(c) (x₁)" : ""
                let fa = trace.logits[range.lowerBound][c]
                let fb = trace.logits[range.upperBound][c]
                let y = range.map { i in trace.logits[i][c] - (chord ? fa + (trace.t[i] - a) / (b - a) * (fb - fa) : 0)
                }
                return Series(
                    label, x: range.map { trace.t[$0] }, y: y, color: seriesColor(c),
                    style: markers ? .lineAndMarkers : .line, marker: .circle, lineWidth: ends ? 2.6 : 1.1,
                    markerRadius: markers ? 2.5 : 4)
            }
        }
        // dℓ/dt on each piece from its ends, drawn as steps.
        func slopeSeries(_ c: Int, _ label: String) -> Series {
            var x: [Double] = []
            var y: [Double] = []
            for i in 0..<(n - 1) {
                let slope = (trace.logits[i + 1][c] - trace.logits[i][c]) / (trace.t[i + 1] - trace.t[i])
                x += [trace.t[i], trace.t[i + 1]]
                y += [slope, slope]
            }
            return Series(label, x: x, y: y, color: seriesColor(c), style: .line, lineWidth: 1.4)
        }
        let poolColors = [RGB.midGrey, seriesColor(3), seriesColor(4)]
        func rug(_ layer: Int, _ label: String, y: Double) -> Series {
            let ts = zip(breakpoints, layers).filter { $0.1 == layer }.map(\.0)
            return Series(
                label, x: ts, y: ts.map { _ in y }, color: poolColors[layer - 1], style: .markers, marker: .diamond,
                markerRadius: 2.5, alpha: 0.45)
        }
        let counts = (1...3).map { l in layers.filter { $0 == l }.count }
        let rugs =
            [
                rug(1, "breakpoint: a first-pool window (\(counts[0]))", y: low - 0.06 * span),
                rug(2, "breakpoint: a second-pool window (\(counts[1]))", y: low - 0.12 * span),
            ]
            + (counts[2] > 0 ? [rug(3, "breakpoint: both (\(counts[2]))", y: low - 0.18 * span)] : [])
        let zoomLines =
            n < 3
            ? []
            : (max(lo, 1)...min(hi, n - 2)).map { i in
                ReferenceLine(
                    .vertical, at: trace.t[i], label: "", color: poolColors[layers[i - 1] - 1],
                    dash: layers[i - 1] == 1 ? [3, 3] : [])
            }
        func stats(_ s: PieceCountStatistics?, _ group: String) -> String {
            guard let s else { return "" }
            return
                " \(group): \(significant(s.piecesMean, 3)) pieces on average (median \(significant(s.piecesMedian, 3)), "
                + "\(s.piecesMin)–\(s.piecesMax)), \(significant(s.piecesPerUnitLengthMean, 3)) per unit length."
        }
        return Figure(
            name: name, title: "Logits along a segment between two test images, with the breakpoints", width: 1300,
            height: 1050,
            caption:
                "The ten logits along x(t) = x₀ + t(x₁ − x₀) from test image \(segment.first) (a \(trace.firstLabel)) to "
                + "test image \(segment.second) (a \(trace.secondLabel)), computed by the forward pass at 0, every breakpoint and 1; "
                + "the network is affine between breakpoints, so these polylines are the logits exactly (the midpoint check puts "
                + "every piece's midpoint on its chord). \(n - 1) pieces: \(counts[0]) breakpoints where a first-pool window's "
                + "selection (its ReLU or its max-pool winner) changes, \(counts[1]) at a second-pool window"
                + (counts[2] > 0 ? ", \(counts[2]) at both" : "")
                + "; the diamonds under the curves mark them. Bottom left: "
                + "t ∈ [\(significant(zoom.lowerBound, 4)), \(significant(zoom.upperBound, 4))] enlarged, each logit less the "
                + "straight line through its values at the stretch's ends, so that the kinks show: dotted lines are first-pool "
                + "breakpoints, solid ones second-pool; the logits are straight between them, and a breakpoint whose change "
                + "does not reach a logit leaves it straight. Bottom right: the slope of the two images' class logits on each "
                + "piece, (ℓ(b) − ℓ(a))/(b − a); it jumps only at breakpoints."
                + stats(report.sameDigit, " Over \(report.segments.count) segments, same digit")
                + stats(report.differentDigits, "Different digits")
        ) { canvas, body in
            let rows = body.grid(rows: 2, columns: 1, gap: 28)
            let bottom = rows[1].grid(rows: 1, columns: 2, gap: 24)
            XYChart(
                title: "The whole segment", x: Axis("t", range: 0...1), y: Axis("logit"),
                series: logitSeries(0...(n - 1), markers: false, minus: false) + rugs, legendOutside: true
            )
            .draw(on: canvas, in: rows[0])
            XYChart(
                title: "Enlarged: \(zoomLines.count) breakpoints, each logit minus its chord over the stretch",
                x: Axis("t", range: zoom), y: Axis("logit − chord"),
                series: logitSeries(lo...hi, markers: true, minus: true), referenceLines: zoomLines
            )
            .draw(on: canvas, in: bottom[0])
            XYChart(
                title: "Slope dℓ/dt of the two classes on each piece", x: Axis("t", range: 0...1), y: Axis("dℓ/dt"),
                series: [
                    slopeSeries(trace.firstLabel, "class \(trace.firstLabel) (x₀)"),
                    slopeSeries(trace.secondLabel, "class \(trace.secondLabel) (x₁)"),
                ]
            )
            .draw(on: canvas, in: bottom[1])
        }
    }
}
