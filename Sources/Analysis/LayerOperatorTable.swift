import Foundation

/// One line of phase 9's part of the results table.
public struct LayerOperatorTableRow: Sendable, Equatable {
    /// The table section, e.g. "Phase 9: operator spectra".
    public var section: String
    public var label: String
    public var value: String
    /// The id of the check this row shows, if any.
    public var checkID: String?
}

extension LayerOperatorReport {
    /// Phase 9's rows, in order: per section the numbers, then their checks.
    public var tableRows: [LayerOperatorTableRow] {
        var rows = [LayerOperatorTableRow]()
        var section = ""
        func row(_ label: String, _ value: String, check: String? = nil) {
            rows.append(LayerOperatorTableRow(section: section, label: label, value: value, checkID: check))
        }
        func f(_ x: Double, _ d: Int = 3) -> String { x.isFinite ? String(format: "%.\(d)f", x) : "\(x)" }
        func e(_ x: Double) -> String { x.isFinite ? String(format: "%.2e", x) : "\(x)" }
        func alpha(_ m: SpectralMetrics) -> String {
            guard let p = m.powerLaw else { return "α: " + m.powerLawNote }
            return
                "α = \(f(p.alpha, 2)) ± \(f(p.alphaStandardError, 2)) (x_min = \(e(p.xMin)), \(p.tailCount) in tail, KS \(f(p.ksDistance, 3)))"
        }

        section = "Phase 9: each layer as an operator"
        for o in operatorSpectra {
            row(
                "\(o.layer) ‖W‖₂ ≤ ‖A_valid‖₂ ≤ ‖A_circ‖₂ ≤ 3‖W‖₂ (\(o.validShape[0])×\(o.validShape[1]), \(o.circulantShape[0])×\(o.circulantShape[1]))",
                [o.weightSpectralNorm, o.validSpectralNorm, o.circulantDenseSpectralNorm, o.kernelSizeBound].map {
                    f($0, 4)
                }.joined(separator: " ≤ "))
            row(
                "\(o.layer) Singla–Feizi bound √(hw)·min‖Rᵢ‖₂ (‖R₁…R₄‖₂ = \(o.fantasticFourReshapeNorms.map { f($0, 3) }.joined(separator: ", ")))",
                "\(f(o.fantasticFourBound, 4)), ×\(f(o.fantasticFourRatio, 3)) ‖A_circ‖₂, ×\(f(o.fantasticFourRatioToValid, 3)) ‖A_valid‖₂"
            )
            for (name, m) in [("W", o.weightMetrics), ("A_valid", o.validMetrics), ("A_circ", o.circulantMetrics)] {
                row(
                    "\(o.layer) \(name): σ₁, stable rank, entropy rank (\(m.count) σ)",
                    "\(f(m.spectralNorm, 4)), \(f(m.stableRank, 2)), \(f(m.entropyRank, 2)); \(alpha(m))")
            }
            for c in o.checks { row(c.description, "", check: c.id) }
        }

        section = "Phase 9: data-aware low rank (Ŵ_k = U_kU_kᵀW, U_k from W·C·Wᵀ)"
        for l in dataAwareLowRank.layers {
            row("\(l.layer) C over \(l.patchCount) patches: E‖Wp‖²", f(l.meanOutputEnergy, 4))
            row(
                "\(l.layer) k: relative data error, data-aware / plain W_k (%)",
                l.rows.map { "\($0.rank):\(f(100 * $0.relativeError, 1))/\(f(100 * $0.plainRelativeError, 1))" }.joined(
                    separator: " "))
            if l.rows.first?.testAccuracy != nil {
                row(
                    "\(l.layer) k: test accuracy, data-aware / plain (%), other layer full",
                    l.rows.map {
                        "\($0.rank):\(f(100 * ($0.testAccuracy ?? .nan), 1))/\(f(100 * ($0.plainTestAccuracy ?? .nan), 1))"
                    }.joined(separator: " "))
            }
            for c in l.checks { row(c.description, "", check: c.id) }
        }
        if let both = dataAwareLowRank.bothLayers {
            row(
                "both layers at rank k: test accuracy, data-aware / plain (%)",
                both.map { "\($0.rank):\(f(100 * $0.testAccuracy, 1))/\(f(100 * ($0.plainTestAccuracy ?? .nan), 1))" }
                    .joined(separator: " "))
            row("data-aware network at full rank reproduces the network", "", check: "data-aware.full-rank")
        } else {
            row("data-aware accuracy", "not run (no sweep)")
        }

        section = "Phase 9: eigenfilters against the patch principal components"
        for a in filtersVersusData {
            row(
                "\(a.layer) k: Σcos²θ (random k²/d), d = \(a.angles.first?.dimension ?? 0)",
                a.angles.map { "\($0.k):\(f($0.sumOfSquaredCosines, 2))(\(f($0.randomExpectation, 2)))" }.joined(
                    separator: " "))
            if let last = a.angles.last {
                row(
                    "\(a.layer) principal angles at k = \(last.k) (degrees)",
                    last.anglesDegrees.map { f($0, 1) }.joined(separator: " "))
            }
            row(a.check.description, "", check: a.check.id)
        }
        if let g = regionsAlongLines {
            section = "Phase 9: linear regions along lines between test images"
            ResultsTable.regionRows(g) { row($0, $1, check: $2) }
        }
        section = "Phase 9: time"
        let parts =
            [
                timings.operatorSpectraSeconds, timings.trainingPatchSeconds, timings.accuracySeconds,
                timings.principalAnglesSeconds,
            ] + (timings.regionsAlongLinesSeconds.map { [$0] } ?? [])
        row(
            "phase 9 wall: operators / training patches / accuracy / angles\(timings.regionsAlongLinesSeconds == nil ? "" : " / regions") / total",
            (parts + [timings.totalSeconds]).map { f($0, 2) }.joined(separator: " / ") + " s")
        row(
            "phase 9 CPU time, all threads: per part / total",
            timings.cpuSecondsPerPart.map { f($0, 2) }.joined(separator: " / ") + " / " + f(timings.cpuSeconds, 2)
                + " s")
        return rows
    }
}
