import Analysis
import ArgumentParser
import Figures
import Foundation
import GPUNet
import Models
import NetIO

struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Phases 2–7 and 9: the SVD of each conv layer, each layer as an operator, every identity checked; "
            + "writes analysis.json.",
        discussion: """
            Exits 1 when any identity misses its tolerance (the failures are listed), 2 for a bad checkpoint \
            (a missing tensor such as a BatchNorm's running statistics, a non-finite value, a running variance \
            ≤ 0; nothing is written then). With --model other than tiny, the per-layer analysis: BatchNorm \
            folded, phases 1–5 for every conv and the linear layer, phase 6's ReLU masks for every conv a \
            ReLU follows, phase 9's operators and regions along segments; it also draws the per-layer figures \
            into figures/ and writes report.html (a foldable section per layer), as `run --checkpoint` does.
            """)

    @OptionGroup var device: DeviceOption
    @OptionGroup var model: ModelOption
    @OptionGroup var data: DataOptions

    @Option(help: "A checkpoint.safetensors written by `convsvd train`.")
    var checkpoint: String

    @Option(help: "Output folder for analysis.json (models other than tiny: also figures/ and report.html).")
    var out: String = "outputs"

    @Option(help: "Models other than tiny: figure format, png | svg | pdf.")
    var format: String = "png"

    @OptionGroup var analysis: AnalysisImageOptions

    func run() throws {
        try reportingErrors {
            if !model.isTiny {
                try analyzeDescription()
                return
            }
            let file = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint), requireFinite: true)
            try data.requireFits()
            let directory = try prepareOutputDirectory(out)
            var report = try AnalysisPhases.run(
                weights: file.weights, device: device.make(), data: data.load(), sweep: !analysis.noSweep)
            report.checks += try SVDCoordinatesCheck.checks(sigmas: file.svdSigmas, weights: file.tensors)
            try report.write(to: directory.appendingPathComponent("analysis.json"))
            print(ResultsTable.render(report))
            Self.printSVDCoordinateChecks(report.checks)
            log("wrote \(directory.appendingPathComponent("analysis.json").path)")
            try AnalysisPhases.requirePassed(report)
        }
    }

    /// One line per ``SVDCoordinatesCheck`` (a checkpoint trained in SVD coordinates).
    static func printSVDCoordinateChecks(_ checks: [Check]) {
        for c in checks where c.id.hasSuffix(".stored-sigma") {
            print(
                "stored σ: \(c.description) = " + String(format: "%.2e [< %.0e: ", c.value, c.limit)
                    + (c.passed ? "PASS]" : "FAIL]"))
        }
    }

    /// The per-layer analysis of a plan model's checkpoint.
    private func analyzeDescription() throws {
        guard let figureFormat = FigureFormat(rawValue: format) else {
            throw ValidationError("--format must be png, svg or pdf (got \(format))")
        }
        let kind = try data.kind()
        let description = try model.description(for: kind)
        try data.requireFits(model: model.model)
        let device = try self.device.make()
        let (plan, network, file) = try NetworkAnalysisStage.load(
            description, kind: kind, device: device, checkpoint: URL(fileURLWithPath: checkpoint))
        let test = try data.load(forModel: model.model).test
        let directory = try prepareOutputDirectory(out)
        var report = try NetworkAnalysisStage.run(network, plan: plan, test: test, options: analysis.network)
        report.checks += try SVDCoordinatesCheck.checks(sigmas: file.svdSigmas, weights: file.tensors)
        try report.write(to: directory.appendingPathComponent("analysis.json"))
        let start = Clocks.wall()
        let files = try NetworkAnalysisStage.writeFiguresAndReport(
            report, directory: directory, format: figureFormat)
        let seconds = Clocks.seconds(since: start)
        print(NetworkAnalysisStage.render(report))
        Self.printSVDCoordinateChecks(report.checks)
        print(String(format: "\nper-layer figures and report.html (phase 8): %.2f s", seconds))
        log(
            "wrote \(directory.appendingPathComponent("analysis.json").path), report.html and figures/ "
                + "(\(files.map(\.name).joined(separator: ", ")))")
        try NetworkAnalysisStage.requirePassed(report)
    }
}
