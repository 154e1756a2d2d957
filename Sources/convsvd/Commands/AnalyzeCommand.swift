import Analysis
import ArgumentParser
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
            folded, phases 1–5 for every conv and the linear layer.
            """)

    @OptionGroup var device: DeviceOption
    @OptionGroup var model: ModelOption
    @OptionGroup var data: DataOptions

    @Option(help: "A checkpoint.safetensors written by `convsvd train`.")
    var checkpoint: String

    @Option(help: "Output folder for analysis.json.")
    var out: String = "outputs"

    @Flag(name: .customLong("no-sweep"), help: "Skip the test-accuracy-against-rank sweep of phase 5.")
    var noSweep = false

    @Option(help: "Models other than tiny: analyse the first N test images in phases 1, 3 and 4 (default: all).")
    var images: Int?

    @Option(
        name: .customLong("sweep-images"),
        help:
            "Models other than tiny: the first N test images for phase 5's accuracies, one host float64 pass per layer and rank (0: none)."
    )
    var sweepImages: Int = 1000

    @Option(
        name: .customLong("gradient-images"),
        help:
            "Models other than tiny: the first N test images at which phase 9 measures ‖∂logits/∂x‖₂ with the device's backward pass, one pass per class (0: none)."
    )
    var gradientImages: Int = 512

    func validate() throws {
        if let images, images < 1 { throw ValidationError("--images must be at least 1 (got \(images))") }
        if sweepImages < 0 {
            throw ValidationError("--sweep-images must be at least 0 (got \(sweepImages))")
        }
        if gradientImages < 0 {
            throw ValidationError("--gradient-images must be at least 0 (got \(gradientImages))")
        }
    }

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
                weights: file.weights, device: device.make(), data: data.load(), sweep: !noSweep)
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
        let kind = try data.kind()
        let description = try model.description(for: kind)
        try data.requireFits(model: model.model)
        let (plan, network, file) = try NetworkAnalysisStage.load(
            description, kind: kind, device: device.make(), checkpoint: URL(fileURLWithPath: checkpoint))
        let test = try data.load(forModel: model.model).test
        let directory = try prepareOutputDirectory(out)
        let options = NetworkAnalysisOptions(
            images: images, sweepImages: noSweep ? 0 : sweepImages, gradientImages: gradientImages)
        var report = try NetworkAnalysisStage.run(network, plan: plan, test: test, options: options)
        report.checks += try SVDCoordinatesCheck.checks(sigmas: file.svdSigmas, weights: file.tensors)
        try report.write(to: directory.appendingPathComponent("analysis.json"))
        print(NetworkAnalysisStage.render(report))
        Self.printSVDCoordinateChecks(report.checks)
        log("wrote \(directory.appendingPathComponent("analysis.json").path)")
        try NetworkAnalysisStage.requirePassed(report)
    }
}
