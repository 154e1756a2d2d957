import Foundation

/// The results table on screen: the seed's rows first (identity errors per
/// layer, test accuracy, σ per layer with the 95%/99% component counts,
/// unique masks, Frobenius identities, analytical-vs-CNN difference), then
/// ours. A row that carries a check shows its limit and PASS/FAIL.
public enum ResultsTable {
    public static func render(_ report: AnalysisReport) -> String {
        var rows = [(String, String, Check?)]()
        func row(_ label: String, _ value: String, check id: String? = nil) {
            rows.append((label, value, id.flatMap(report.check)))
        }
        func section(_ title: String) {
            rows.append(("", "", nil))
            rows.append(("## " + title, "", nil))
        }

        section("Seed's rows")
        for i in report.svdIdentities {
            row("\(i.layer) max|UΣVᵀ − W|", sci(i.reconstructionMaxAbsError), check: "\(i.layer).reconstruction")
            row("\(i.layer) ‖UᵀU − I‖_F", sci(i.uOrthogonalityError), check: "\(i.layer).u-orthogonality")
            row("\(i.layer) ‖VᵀV − I‖_F", sci(i.vOrthogonalityError), check: "\(i.layer).v-orthogonality")
        }
        row("test accuracy (host float64)", percent(report.testAccuracy))
        for s in report.spectra {
            row("\(s.layer) σ", s.singularValues.map { fixed($0, 3) }.joined(separator: " "))
            row(
                "\(s.layer) components for 95% / 99% energy",
                "\(s.componentsFor95PercentEnergy) / \(s.componentsFor99PercentEnergy) of \(s.singularValues.count)")
        }
        for r in report.reluRegions {
            row(
                "\(r.layer) unique masks, \(r.randomTrainingPatches.patches) random training patches",
                "\(r.randomTrainingPatches.distinctMasks) of \(r.possibleMasks)")
        }
        for f in report.frobenius {
            row(
                "\(f.layer) ‖W‖²_F / Σσᵢ²",
                "\(fixed(f.squaredFrobeniusNorm, 4)) / \(fixed(f.sumOfSquaredSingularValues, 4))")
            row("\(f.layer) relative difference", sci(f.parsevalRelativeDifference), check: "\(f.layer).parseval")
        }
        if let d = report.deviceVerification {
            row("analytical vs CNN (device) logits max|Δ|", sci(d.logitsMaxAbsDifference), check: "device.logits")
            row(
                "analytical vs CNN (device) differing predictions", "\(d.predictionMismatches)",
                check: "device.predictions")
        } else {
            row(
                "analytical vs CNN (host im2col) logits max|Δ|",
                sci(report.analyticalComparison.logitsMaxAbsDifference), check: "analytical.logits")
            row(
                "analytical vs CNN (host im2col) differing predictions",
                "\(report.analyticalComparison.predictionMismatches)", check: "analytical.predictions")
        }

        section("Decomposition")
        for s in report.spectra {
            row("\(s.layer) components for 90% energy", "\(s.componentsFor90PercentEnergy)")
            row("\(s.layer) stable rank ‖W‖²_F/σ₁²", fixed(s.stableRank, 3))
            row("\(s.layer) entropy effective rank", fixed(s.entropyEffectiveRank, 3))
            row("\(s.layer) numerical rank", "\(s.numericalRank)")
            row(
                "\(s.layer) σ² vs eig(WᵀW), relative to σ₁²", sci(s.sigmaVersusGramEigenvaluesError),
                check: "\(s.layer).sigma-vs-gram")
        }
        row(
            "composition: conv2 eigenfilters in conv1's U basis", sci(report.composition.completenessError),
            check: "composition.completeness")
        for f in report.frobenius {
            row(
                "\(f.layer) ‖A‖²_F vs (n−k+1)²‖W‖²_F, A \(f.operatorShape[0])×\(f.operatorShape[1])",
                sci(f.operatorRelativeDifference), check: "\(f.layer).operator-frobenius")
            row(
                "\(f.layer) max|A·x − W·im2col(x)|, \(f.operatorApplicationImages) test inputs (max|A·x| \(fixed(f.operatorApplicationLargestOutput, 2)))",
                sci(f.operatorApplicationMaxAbsDifference), check: "\(f.layer).operator-application")
        }

        section("Network checks")
        let c = report.analyticalComparison
        row("AnalyticalNet vs im2col conv1, max|Δ|", sci(c.conv1MaxAbsDifference), check: "analytical.conv1")
        row(
            "AnalyticalNet vs im2col conv2, max|Δ| (layer-2 check)", sci(c.conv2MaxAbsDifference),
            check: "analytical.conv2")
        if report.deviceVerification != nil {
            row("AnalyticalNet vs im2col logits, max|Δ|", sci(c.logitsMaxAbsDifference), check: "analytical.logits")
            row(
                "AnalyticalNet vs im2col differing predictions", "\(c.predictionMismatches)",
                check: "analytical.predictions")
        }
        row("AnalyticalNet test accuracy", percent(c.analyticalTestAccuracy))
        if let d = report.deviceVerification {
            row("device conv1 vs host W₁p, max|Δ|", sci(d.conv1MaxAbsDifference), check: "device.conv1")
            row("device conv2 vs host W₂p, max|Δ|", sci(d.conv2MaxAbsDifference), check: "device.conv2")
            row("device fused conv1+pool+ReLU vs host, max|Δ|", sci(d.pooled1MaxAbsDifference), check: "device.pooled1")
            row("device fused conv2+pool+ReLU vs host, max|Δ|", sci(d.pooled2MaxAbsDifference), check: "device.pooled2")
            for (l, layer) in ["pool1", "pool2"].enumerated() {
                row(
                    "\(layer) winners differing from float64: all / beyond a ±\(sci(d.argmaxTieBound)) near-tie (of \(d.poolWindows[l]))",
                    "\(d.argmaxMismatches[l]) / \(d.argmaxMismatchesBeyondTies[l])", check: "device.\(layer)-argmax")
            }
            row("device test accuracy", percent(d.deviceTestAccuracy))
        } else {
            row("device comparison (phase 4)", "not run: no network under test")
        }

        section("Low rank")
        for l in report.lowRank.layers {
            row(
                "\(l.layer) Eckart–Young, Frobenius: matrices vs σ", sci(l.frobeniusAgreement),
                check: "\(l.layer).eckart-young-frobenius")
            row(
                "\(l.layer) Eckart–Young, spectral: matrices vs σ_{k+1}", sci(l.spectralAgreement),
                check: "\(l.layer).eckart-young-spectral")
            row(
                "\(l.layer) W_k vs \(l.optimality.candidates) other rank-k matrices: largest gain, Frobenius",
                sci(-l.optimality.frobeniusMargin), check: "\(l.layer).eckart-young-optimal-frobenius")
            row(
                "\(l.layer) W_k vs \(l.optimality.candidates) other rank-k matrices: largest gain, spectral",
                sci(-l.optimality.spectralMargin), check: "\(l.layer).eckart-young-optimal-spectral")
            row(
                "\(l.layer) k: relative ‖W − W_k‖_F",
                l.rows.map { "\($0.rank):\(fixed($0.relativeFrobeniusErrorFromSigma, 3))" }.joined(separator: " "))
            if l.rows.first?.testAccuracy != nil {
                row(
                    "\(l.layer) k: test accuracy (other layer full rank)",
                    l.rows.map { "\($0.rank):\(fixed(100 * ($0.testAccuracy ?? .nan), 1))" }.joined(separator: " "))
            }
        }
        if let s = report.lowRank.sweep {
            row(
                "both layers at rank k: test accuracy",
                s.sameRankAccuracy.enumerated().map { "\($0.offset + 1):\(fixed(100 * $0.element, 1))" }.joined(
                    separator: " "))
            row("sweep at full rank reproduces the network", "", check: "sweep.full-rank")
            row(
                "sweep time (\(s.accuracy.count)×\(s.accuracy.first?.count ?? 0) ranks, \(s.images) images)",
                "\(fixed(s.seconds, 2)) s")
        } else {
            row("accuracy sweep", "not run")
        }

        section("ReLU regions")
        for r in report.reluRegions {
            row(
                "\(r.layer) unique masks over all \(r.testSetPatches.patches) test patches",
                "\(r.testSetPatches.distinctMasks) of \(r.possibleMasks)")
            if let top = r.testSetPatches.mostCommon.first {
                row("\(r.layer) most common test mask", "\(top.bits) (\(percent(top.fraction)))")
            }
            row("\(r.layer) Cover bound, rank r = 1…\(r.units)", r.coverBound.map(String.init).joined(separator: " "))
            row(
                "\(r.layer) masks of W_k, \(r.truncatedRandomTrainingPatches.patches) random patches, k = 1…",
                r.truncatedRandomTrainingPatches.distinctMasks.map(String.init).joined(separator: " "),
                check: "\(r.layer).cover-random")
            row(
                "\(r.layer) masks of W_k, all test patches, k = 1…",
                r.truncatedTestSetPatches.distinctMasks.map(String.init).joined(separator: " "),
                check: "\(r.layer).cover-test")
            row(
                "\(r.layer) energy along uᵢ before ReLU (mean per patch)",
                r.energyBeforeReLU.map { fixed($0, 3) }.joined(separator: " "))
            row("\(r.layer) energy along uᵢ after ReLU", r.energyAfterReLU.map { fixed($0, 3) }.joined(separator: " "))
            row(
                "\(r.layer) energy bookkeeping before / after ReLU",
                "", check: "\(r.layer).energy-before-relu")
            row("", "", check: "\(r.layer).energy-after-relu")
        }

        if let p = report.layerOperators {
            var current = ""
            for r in p.tableRows {
                if r.section != current {
                    section(r.section)
                    current = r.section
                }
                row(r.label, r.value, check: r.checkID)
            }
        }

        section("Time")
        let t = report.timings
        row("analysis without sweep and device (target < 5 s)", "\(fixed(t.analysisSeconds, 2)) s")
        row(
            "  SVD / identities / test-set pass / low rank / patches / Frobenius",
            [
                t.svdSeconds, t.identitiesSeconds, t.testSetPassSeconds, t.lowRankSeconds, t.randomPatchSeconds,
                t.frobeniusSeconds,
            ]
            .map { fixed($0, 2) }.joined(separator: " / ") + " s")
        row("device forward calls", "\(fixed(t.deviceSeconds, 2)) s")
        row("accuracy sweep", "\(fixed(t.sweepSeconds, 2)) s")
        row("total", "\(fixed(t.totalSeconds, 2)) s")

        let failed = report.failedChecks
        var out =
            "ConvSVD analysis: \(report.testSet.name) (\(report.testSet.count) images), random patches from \(report.trainSet.name)\n"
        let width = rows.map { $0.0.count }.max() ?? 0
        for (label, value, check) in rows {
            if label.hasPrefix("## ") {
                out += label.dropFirst(3) + "\n"
                continue
            }
            if label.isEmpty && value.isEmpty && check == nil {
                out += "\n"
                continue
            }
            var line = "  " + label.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value
            if let check {
                let measured =
                    check.relation == .equalTo && check.value.isFinite ? String(Int(check.value)) : sci(check.value)
                let shown = value.isEmpty ? measured : ""
                line +=
                    shown
                    + "  [\(check.relation.rawValue) \(check.relation == .equalTo ? String(Int(check.limit)) : sci(check.limit)): "
                    + "\(check.passed ? "PASS" : "FAIL"), \(check.kind.rawValue)]"
            }
            out += line + "\n"
        }
        out +=
            "\n"
            + (failed.isEmpty
                ? "All \(report.checks.count) checks passed.\n"
                : "\(failed.count) of \(report.checks.count) checks FAILED: \(failed.map(\.id).joined(separator: ", "))\n")
        return out
    }

    /// The regions-along-lines rows: piece counts per group, then the checks.
    static func regionRows(_ g: RegionsAlongLinesReport, row: (String, String, String?) -> Void) {
        for (name, st) in [("same digit", g.sameDigit), ("different digits", g.differentDigits)] {
            guard let st else {
                row("pieces per segment, \(name)", "no such pair in the test set", nil)
                continue
            }
            row(
                "pieces per segment, \(name) (\(st.segments)): mean / median / min–max",
                "\(fixed(st.piecesMean, 1)) / \(fixed(st.piecesMedian, 1)) / \(st.piecesMin)–\(st.piecesMax)", nil)
            if let reaching = st.piecesReachingLogitsMean {
                row(
                    "  of them pieces of the logits (breakpoints that can reach them), mean", fixed(reaching, 1), nil)
            }
            row(
                "  per unit length ‖x₁ − x₀‖ (mean length \(fixed(st.lengthMean, 1))): mean / median / min–max",
                "\(fixed(st.piecesPerUnitLengthMean, 2)) / \(fixed(st.piecesPerUnitLengthMedian, 2)) / "
                    + "\(fixed(st.piecesPerUnitLengthMin, 2))–\(fixed(st.piecesPerUnitLengthMax, 2))", nil)
            row("  conv1 sign changes per segment, mean", fixed(st.conv1SignChangesMean, 1), nil)
        }
        row("conv1 sign changes: roots vs \(g.options.signGridPoints)-point grid", "", "regions.conv1-sign-count")
        row("midpoint f(m) = (f(a)+f(b))/2, \(g.midpointPiecesChecked) pieces", "", "regions.midpoint-affine")
        row(
            "dense sampling: " + g.sampled.map { "\($0.sampledPieces) of \($0.exactPieces)" }.joined(separator: ", ")
                + " pieces found (\(g.options.samplesPerSegment) samples)", "", "regions.sampling-not-above-exact")
        if g.sampled.allSatisfy({ $0.sampledPiecesReachingLogits != nil }) {
            row(
                "dense sampling at windows that reach the logits: "
                    + g.sampled.map { "\($0.sampledPiecesReachingLogits!) of \($0.exactPiecesReachingLogits!)" }
                    .joined(separator: ", ") + " pieces found", "", "regions.sampling-not-above-exact-reaching-logits")
        }
        row("dense sampling: exact selection not the forward maximum", "", "regions.sampled-selection")
        row(
            "CPU time: exact walks / midpoints / sign grid / sampling",
            [g.countingSeconds, g.midpointSeconds, g.gridSeconds, g.samplingSeconds].map { fixed($0, 2) }.joined(
                separator: " / ") + " s", nil)
        row(
            "time: whole section, wall (\(g.options.threads) threads) / CPU",
            "\(fixed(g.seconds, 2)) s / \(fixed(g.cpuSeconds, 2)) s", nil)
    }

    static func sci(_ x: Double) -> String { x.isFinite ? String(format: "%.2e", x) : "\(x)" }
    static func fixed(_ x: Double, _ digits: Int) -> String { x.isFinite ? String(format: "%.\(digits)f", x) : "\(x)" }
    static func percent(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
}
