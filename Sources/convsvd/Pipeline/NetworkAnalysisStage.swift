import Analysis
import Figures
import Foundation
import GPUNet
import Models
import NetIO

/// A ``NetworkPlan`` in eval mode as the per-layer analysis sees it: the
/// network whose logits and layer outputs the host's float64 folded network
/// must match.
final class PlanUnderTest: DifferentiableNetworkUnderTest {
    let plan: NetworkPlan
    private var last: NetworkPlan.Workspace?

    /// The analysis reads every layer's output: the plan runs layer by layer.
    init(_ plan: NetworkPlan) {
        self.plan = plan
        plan.fusesInference = false
    }

    func forward(normalizedImages: [Float], count: Int) throws -> [Float] {
        let w = try plan.workspace(batch: count)
        // The loss needs labels; any valid ones do, only the activations are read.
        try plan.setBatch(w, images: normalizedImages, labels: [Int32](repeating: 0, count: count))
        try plan.forward(w, training: false)
        last = w
        return Array(try plan.device.floats(w.logits).prefix(count * plan.classes))
    }

    func output(row: Int) throws -> [Float] {
        guard let last else { preconditionFailure("PlanUnderTest.output(row:) before forward") }
        return try plan.activation(last, row: row)
    }

    func inputGradient(cotangent: [Float]) throws -> [Float] {
        guard let last else { preconditionFailure("PlanUnderTest.inputGradient(cotangent:) before forward") }
        return try plan.inputGradient(last, cotangent: cotangent)
    }
}

/// `analyze --model M` and `run --model M` for a network description: the
/// per-layer analysis (``Analysis/NetworkAnalyzer``) of a plan's weights.
enum NetworkAnalysisStage {
    /// Folds the plan's current weights (BatchNorm in eval mode) and checks
    /// them (``Analysis/NetworkAnalysisError`` names a bad tensor).
    static func fold(_ description: NetworkDescription, plan: NetworkPlan, tensors: [NamedTensor]) throws
        -> FoldedNetwork
    {
        try FoldedNetwork(
            description, input: plan.summary.input, classes: plan.classes,
            tensors: Dictionary(tensors.map { ($0.name, $0.values) }, uniquingKeysWith: { a, _ in a }))
    }

    /// A plan of `description` for `kind`'s images with the checkpoint at
    /// `url` loaded, and its folded network. The checkpoint is read and every
    /// tensor checked before anything is written.
    static func load(_ description: NetworkDescription, kind: DatasetKind, device: any Device, checkpoint url: URL)
        throws -> (plan: NetworkPlan, network: FoldedNetwork, checkpoint: Checkpoint)
    {
        let plan = try NetworkPlan(
            description, channels: kind.inputShape.channels, height: kind.inputShape.height,
            width: kind.inputShape.width, classes: kind.classCount, device: device)
        let expected = try plan.checkpointTensors().map { (name: $0.name, shape: $0.shape) }
        let file = try Checkpoint.read(from: url, model: expected, modelName: description.name, requireFinite: true)
        let network = try fold(description, plan: plan, tensors: file.tensors)
        try plan.load(checkpointTensors: file.tensors)
        return (plan, network, file)
    }

    /// The analysis of `plan`'s weights, with the device and this command
    /// line recorded in the report (report.html names them, also when
    /// `convsvd report` redraws it).
    static func run(
        _ network: FoldedNetwork, plan: NetworkPlan, test: Dataset, options: NetworkAnalysisOptions
    ) throws -> NetworkAnalysisReport {
        var report = try NetworkAnalyzer(network: network, testSet: test, options: options)
            .run(device: PlanUnderTest(plan)) { log("analysis: \($0)") }
        report.device = plan.device.info.summary
        report.command = (["convsvd"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        return report
    }

    /// Phase 8 of the per-layer analysis: every figure of `report`
    /// (``Figures/Figures/layerFigures(_:)``) into `directory`/figures and
    /// report.html beside it, each file written atomically, all drawn from
    /// the report's values (the device and command as the report records
    /// them).
    static func writeFiguresAndReport(_ report: NetworkAnalysisReport, directory: URL, format: FigureFormat) throws
        -> [FigureFile]
    {
        let figures = directory.appendingPathComponent("figures")
        try FileManager.default.createDirectory(at: figures, withIntermediateDirectories: true)
        let files = try Figures.layerFigures(report).map { try $0.write(to: figures, format: format) }
        try NetworkReport.write(
            report, device: report.device ?? "not recorded", command: report.command ?? "not recorded",
            figures: files, to: directory.appendingPathComponent("report.html"))
        return files
    }

    /// Exit 1 with the failed checks listed when any identity missed its tolerance.
    static func requirePassed(_ report: NetworkAnalysisReport) throws {
        guard report.allChecksPassed else {
            let failed = report.failedChecks.map { "\($0.id) = \($0.value) (limit \($0.limit))" }
            throw ToolError(code: Exit.checkFailed, description: "checks failed: " + failed.joined(separator: "; "))
        }
    }

    /// The per-layer table, the network comparisons, phase 5, the checks and the phase times.
    static func render(_ r: NetworkAnalysisReport) -> String {
        func e(_ x: Double?) -> String { x.map { String(format: "%.1e", $0) } ?? "-" }
        func f(_ x: Double) -> String { String(format: "%.2f", x) }
        var lines = [
            "\(r.model): \(r.layers.count) layers, BatchNorm folded into \(r.foldedBatchNorms.count) of them (eval mode)",
            "",
            pad("layer", 22) + pad("matrix", 10) + pad("s/p", 5) + pad("σ₁", 9) + pad("σ₁ (W)", 9) + pad("r", 4)
                + pad("r95", 5) + pad("r99", 5) + pad("stable", 8) + pad("entropy", 8) + pad("Δ SVD", 9)
                + pad("Δ device", 9),
        ]
        for l in r.layers {
            lines.append(
                pad(l.name, 22) + pad("\(l.matrixShape[0])×\(l.matrixShape[1])", 10)
                    + pad("\(l.stride)/\(l.padding)", 5)
                    + pad(String(format: "%.3f", l.sigma[0]), 9) + pad(String(format: "%.3f", l.unfoldedSigma[0]), 9)
                    + pad("\(l.sigma.count)", 4) + pad("\(l.rank95)", 5) + pad("\(l.rank99)", 5)
                    + pad(f(l.stableRank), 8) + pad(f(l.entropyEffectiveRank), 8)
                    + pad(e(l.svdCoordinatesMaxAbsDifference), 9) + pad(e(l.deviceMaxAbsDifference), 9))
        }
        let c = r.comparison
        lines += [
            "",
            "test images \(c.images): folded float64 accuracy \(String(format: "%.2f%%", 100 * c.hostAccuracy))"
                + (c.deviceAccuracy.map { String(format: ", device %.2f%%", 100 * $0) } ?? ""),
            "  folded vs device logits max|Δ| \(e(c.foldedVersusDeviceMaxAbsDifference)), "
                + "predictions differing \(c.foldedVersusDevicePredictionMismatches.map(String.init) ?? "-")",
            "  SVD coordinates vs folded logits max|Δ| \(e(c.svdLogitsMaxAbsDifference)), "
                + "vs device \(e(c.svdVersusDeviceMaxAbsDifference))",
            "",
            "phase 5 on \(r.sweepImages) test images (folded accuracy "
                + String(format: "%.2f%%", 100 * r.sweepBaselineAccuracy) + "): one layer at rank k, the others full",
        ]
        for l in r.layers {
            lines.append(
                "  " + pad(l.name, 20)
                    + l.truncation.map { "k\($0.k) " + String(format: "%.1f", 100 * $0.accuracy) }.joined(
                        separator: "  "))
        }
        for t in r.thresholds {
            lines.append(
                String(
                    format: "  every layer at %.1f%% energy: accuracy %.2f%%, ranks ", 100 * t.energy, 100 * t.accuracy)
                    + t.ranks.map(String.init).joined(separator: " "))
        }
        let masked = r.layers.compactMap(\.reluMasks)
        if let first = masked.first {
            lines += [
                "",
                "phase 6: ReLU masks 1[W̃p + b̃ > 0] of \(first.patches) patches per layer drawn from the first "
                    + "\(first.images) test images; W̃_k the rank-k truncation; bound: regions of n hyperplanes in ℝᵏ",
                "  " + pad("layer", 24) + pad("n", 4) + pad("r", 4) + pad("patches", 9) + pad("masks", 8)
                    + pad("on a plane", 11) + pad("bound at r", 12) + "masks of W̃_k·p + b̃, k = 1…",
            ]
            for m in masked {
                lines.append(
                    "  " + pad(m.layer, 24) + pad("\(m.units)", 4) + pad("\(m.numericalRank)", 4)
                        + pad("\(m.patches)", 9) + pad("\(m.distinctMasks)", 8) + pad("\(m.patchesOnAHyperplane)", 11)
                        + pad(String(format: "%.4g", m.boundAtRank), 12)
                        + m.truncatedDistinctMasks.map(String.init).joined(separator: " "))
            }
        }
        let o = r.operators
        lines += [
            "",
            "phase 9: each conv layer as an operator on its input (BatchNorm folded); ‖A‖₂ bracketed by power "
                + "iteration (lower) and the smaller of Gram iteration on a circular grid and a Cholesky certificate "
                + "of μI − AᵀA (upper); dense SVD up to "
                + "\(o.denseColumnLimit) columns",
            "  " + pad("layer", 24) + pad("input", 12) + pad("circular σ_max", 16) + pad("lower", 11) + pad("upper", 11)
                + pad("gap", 10) + pad("dense σ_max", 13) + "⌈k/s⌉·σ_max(W̃)",
        ]
        for l in o.layers {
            lines.append(
                "  " + pad(l.name, 24) + pad(l.inputShape.map(String.init).joined(separator: "×"), 12)
                    + pad(l.circularNorm.map { String(format: "%.5g", $0) } ?? "-", 16)
                    + pad(String(format: "%.6g", l.bracket.lower), 11)
                    + pad(String(format: "%.6g", l.bracket.upper), 11)
                    + pad(String(format: "%.1e", l.bracket.relativeGap), 10)
                    + pad(l.denseSingularValues?.first.map { String(format: "%.6g", $0) } ?? "-", 13)
                    + String(format: "%.5g", l.patchCountBound))
        }
        for b in o.blocks {
            lines.append(
                String(
                    format: "  block of %@: Lipschitz ≤ %.4g (shortcut %.4g + body %.4g)", b.firstLayer, b.bound,
                    b.shortcut, b.body))
        }
        lines.append(String(format: "  network: Lipschitz ≤ %.4g from the input to the logits", o.networkBound))
        if let g = o.measuredGradient {
            lines.append(
                String(
                    format:
                        "  measured ‖∂logits/∂x‖₂ (the device's backward pass, %d test images): max %.4g (image %d), "
                        + "mean %.4g; the bound is %.3g× the max (%.1f s)",
                    g.images, g.maxNorm, g.argmaxImage, g.meanNorm, g.slack, g.seconds))
        }
        if let d = r.dataAware {
            lines += [
                "",
                "phase 9: data-aware low rank on each conv layer's own input patches (\(d.images) test images, "
                    + String(format: "%.1f s", d.seconds) + "): the smallest k whose mean ‖(W̃ − Ŵ_k)p‖² is at most",
                "  5% and 1% of E‖W̃p‖², for Ŵ_k = U_kU_kᵀW̃ (data-aware) and for the SVD's truncation",
                "  " + pad("layer", 26) + pad("rank", 6) + pad("5%: data / SVD", 16) + "1%: data / SVD",
            ]
            for l in d.layers {
                func first(_ limit: Double, _ value: (DataAwareRow) -> Double) -> String {
                    l.rows.first { value($0) <= limit }.map { "\($0.rank)" } ?? "-"
                }
                lines.append(
                    "  " + pad(l.layer, 26) + pad("\(l.rows.count)", 6)
                        + pad(first(0.05, \.relativeError) + " / " + first(0.05, \.plainRelativeError), 16)
                        + first(0.01, \.relativeError) + " / " + first(0.01, \.plainRelativeError))
            }
            for skipped in d.skipped { lines.append("  \(skipped.phase): not analysed, \(skipped.reason)") }
        }
        if let g = r.regions { lines += renderRegions(g) }
        lines += ["", "checks (\(r.checks.filter(\.passed).count) of \(r.checks.count) passed)"]
        for check in r.checks {
            lines.append(
                "  " + (check.passed ? "ok   " : "FAIL ") + pad(check.id, 34) + pad(e(check.value), 9)
                    + "\(check.relation.rawValue) \(e(check.limit))  \(check.description)")
        }
        lines += ["", "not run"]
        for p in r.phasesNotRun { lines.append("  phase \(p.phase): \(p.reason)") }
        lines += ["", "phase times" + pad("", 51) + "wall       CPU"]
        for t in r.timings {
            lines.append(
                "  " + pad(t.phase, 58) + String(format: "%8.2f s", t.seconds)
                    + (t.cpuSeconds.map { String(format: "  %8.2f s", $0) } ?? ""))
        }
        return lines.joined(separator: "\n")
    }

    /// Phase 9's regions along lines: the pieces per segment by group, and the sampled segments.
    static func renderRegions(_ g: NetworkRegionsReport) -> [String] {
        var lines = [
            "",
            "phase 9: regions along lines (exact pieces of the folded float64 network on the middle "
                + String(format: "%.4g", g.options.span) + " of segments between test images; "
                + "\(g.sites.count) ReLU/pool sites, "
                + "\(g.sites.reduce(0) { $0 + $1.units }) units an image)",
        ]
        for (name, stats) in [("same class", g.sameClass), ("different classes", g.differentClasses)] {
            guard let s = stats else { continue }
            lines.append(
                String(
                    format:
                        "  %@: %d segments, pieces mean %.1f (median %.1f, %d–%d), reaching the logits %.1f, "
                        + "per unit length %.2f, length %.2f",
                    name, s.segments, s.piecesMean, s.piecesMedian, s.piecesMin, s.piecesMax,
                    s.piecesReachingLogitsMean, s.piecesPerUnitLengthMean, s.lengthMean))
        }
        for m in g.sampled {
            let e = g.segments[m.segment]
            lines.append(
                "  sampled segment \(e.first)→\(e.second) (\(m.samples) samples): \(m.sampledPieces) of "
                    + "\(m.exactPieces) pieces, \(m.sampledPiecesReachingLogits) of \(m.exactPiecesReachingLogits) "
                    + "reaching the logits, \(m.changesWithoutBreakpoint) changes without a breakpoint")
        }
        lines.append(
            String(
                format: "  exact walks %.2f s CPU, midpoints %.2f s, sampling %.2f s; section %.2f s wall",
                g.countingSeconds, g.midpointSeconds, g.samplingSeconds, g.seconds))
        return lines
    }
}
