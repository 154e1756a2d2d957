import Analysis
import Foundation

/// Whether a results-table row is a passed check, a failed one, or a plain value.
public enum ResultStatus: String, Sendable {
    case pass = "PASS"
    case fail = "FAIL"
    case info = ""
}

/// One row of the report's results table.
public struct ResultRow: Sendable, Equatable {
    /// The table section the row belongs to (rows are grouped by section, in order of first appearance).
    public var section: String
    public var label: String
    public var value: String
    /// The check's rule, e.g. "< 1.00e-04"; empty for plain values.
    public var rule: String
    public var status: ResultStatus
    /// A check's ``Analysis/CheckKind`` ("consistency" or "independent");
    /// empty for plain values.
    public var kind: String

    public init(
        section: String, label: String, value: String, rule: String = "", status: ResultStatus = .info,
        kind: String = ""
    ) {
        self.section = section
        self.label = label
        self.value = value
        self.rule = rule
        self.status = status
        self.kind = kind
    }
}

/// The wall time of one phase of the run.
public struct PhaseTime: Sendable, Equatable {
    public var phase: String
    public var seconds: Double
    public init(phase: String, seconds: Double) {
        self.phase = phase
        self.seconds = seconds
    }
}

/// Everything report.html shows.
public struct ReportDocument: Sendable {
    public var title: String
    /// One paragraph at the top: what was run and the headline result.
    public var summary: String
    public var results: [ResultRow]
    /// The device the network was trained and verified on, in words.
    public var device: String
    public var phases: [PhaseTime]
    /// The settings of the run, (name, value), e.g. ("epochs", "20").
    public var settings: [(name: String, value: String)]
    /// The exact command that reproduces the run.
    public var command: String
    public var figures: [FigureFile]
    public var generatedAt: Date

    public init(
        title: String = "ConvSVD report", summary: String, results: [ResultRow], device: String,
        phases: [PhaseTime], settings: [(name: String, value: String)], command: String,
        figures: [FigureFile], generatedAt: Date = Date()
    ) {
        self.title = title
        self.summary = summary
        self.results = results
        self.device = device
        self.phases = phases
        self.settings = settings
        self.command = command
        self.figures = figures
        self.generatedAt = generatedAt
    }

    /// True when no row is a failed check.
    public var allChecksPassed: Bool { !results.contains { $0.status == .fail } }
}

extension ResultRow {
    /// The results table of an analysis: headline values per layer, then every
    /// check with its value, rule and PASS/FAIL, in the report's order.
    public static func rows(from report: AnalysisReport) -> [ResultRow] {
        var rows: [ResultRow] = []
        let headline = "Results"
        rows.append(
            ResultRow(section: headline, label: "test accuracy (host, float64)", value: percent(report.testAccuracy)))
        for s in report.spectra {
            rows.append(
                ResultRow(
                    section: headline, label: "\(s.layer) singular values σ",
                    value: s.singularValues.map { String(format: "%.3f", $0) }.joined(separator: " ")))
            rows.append(
                ResultRow(
                    section: headline, label: "\(s.layer) components for 90% / 95% / 99% energy",
                    value: "\(s.componentsFor90PercentEnergy) / \(s.componentsFor95PercentEnergy) / "
                        + "\(s.componentsFor99PercentEnergy) of \(s.singularValues.count)"))
            rows.append(
                ResultRow(
                    section: headline, label: "\(s.layer) stable rank / entropy effective rank",
                    value: String(format: "%.3f / %.3f", s.stableRank, s.entropyEffectiveRank)))
        }
        for r in report.reluRegions {
            rows.append(
                ResultRow(
                    section: headline,
                    label:
                        "\(r.layer) distinct ReLU masks, \(Figures.grouped(r.randomTrainingPatches.patches)) random training patches",
                    value:
                        "\(r.randomTrainingPatches.distinctMasks) of \(r.possibleMasks) (Cover bound at rank \(r.rank): \(r.coverBoundAtRank))"
                ))
            rows.append(
                ResultRow(
                    section: headline,
                    label:
                        "\(r.layer) distinct ReLU masks, all \(Figures.grouped(r.testSetPatches.patches)) test patches",
                    value: "\(r.testSetPatches.distinctMasks) of \(r.possibleMasks)"))
        }
        for f in report.frobenius {
            rows.append(
                ResultRow(
                    section: headline, label: "\(f.layer) ‖W‖²_F and Σσᵢ²",
                    value: String(format: "%.4f and %.4f", f.squaredFrobeniusNorm, f.sumOfSquaredSingularValues)))
        }
        if let sweep = report.lowRank.sweep {
            rows.append(
                ResultRow(
                    section: headline,
                    label: "test accuracy, both layers at rank k = 1…\(sweep.sameRankAccuracy.count)",
                    value: sweep.sameRankAccuracy.map { String(format: "%.1f", 100 * $0) }.joined(separator: " ")
                        + " (%)"))
        }
        if let d = report.deviceVerification {
            rows.append(
                ResultRow(
                    section: headline,
                    label:
                        "device pool winners differing from float64, pool1 / pool2 (all; beyond a ±\(scientific(d.argmaxTieBound)) near-tie)",
                    value:
                        "\(d.argmaxMismatches[0]) / \(d.argmaxMismatches[1]) of \(Figures.grouped(d.poolWindows[0])) / \(Figures.grouped(d.poolWindows[1])) "
                        + "(\(d.argmaxMismatchesBeyondTies[0]) / \(d.argmaxMismatchesBeyondTies[1]))"))
        }
        if let p = report.layerOperators {
            for r in p.tableRows where r.checkID == nil {
                rows.append(ResultRow(section: r.section, label: r.label, value: r.value))
            }
        }
        for c in report.checks {
            let rule = c.relation == .equalTo ? "= \(integerOrScientific(c.limit))" : "< \(scientific(c.limit))"
            rows.append(
                ResultRow(
                    section: "Checks", label: c.description,
                    value: c.relation == .equalTo ? integerOrScientific(c.value) : scientific(c.value),
                    rule: rule, status: c.passed ? .pass : .fail, kind: c.kind.rawValue))
        }
        return rows
    }

    static func percent(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
    static func scientific(_ x: Double) -> String { x.isFinite ? String(format: "%.2e", x) : "\(x)" }
    static func integerOrScientific(_ x: Double) -> String {
        x.isFinite && x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : scientific(x)
    }
}

extension PhaseTime {
    /// The analysis' own phase times, from the report.
    public static func analysisPhases(_ t: PhaseTimings) -> [PhaseTime] {
        [
            PhaseTime(phase: "analysis: SVD (phase 2)", seconds: t.svdSeconds),
            PhaseTime(phase: "analysis: identities (phase 3)", seconds: t.identitiesSeconds),
            PhaseTime(phase: "analysis: test-set pass on the host (phases 3, 4, 6)", seconds: t.testSetPassSeconds),
            PhaseTime(phase: "analysis: device forward calls (phase 4)", seconds: t.deviceSeconds),
            PhaseTime(phase: "analysis: low rank (phase 5)", seconds: t.lowRankSeconds),
            PhaseTime(phase: "analysis: accuracy sweep (phase 5)", seconds: t.sweepSeconds),
            PhaseTime(phase: "analysis: random patches and Cover bounds (phase 6)", seconds: t.randomPatchSeconds),
            PhaseTime(phase: "analysis: Frobenius identities (phase 7)", seconds: t.frobeniusSeconds),
            PhaseTime(
                phase: "analysis: operators, data-aware rank, regions (phase 9)", seconds: t.layerOperatorSeconds),
        ]
    }
}
