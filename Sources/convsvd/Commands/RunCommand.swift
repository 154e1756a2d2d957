import Analysis
import ArgumentParser
import Figures
import Foundation
import GPUNet
import Models
import NetIO

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "The whole pipeline: train (phase 1), analyse (2–7 and 9), draw and report (8).",
        discussion: """
            Writes checkpoint.safetensors, metrics.json/.csv, analysis.json, figures/ and report.html \
            into --out. Exits 0 only when every check passed.
            """)

    @OptionGroup var device: DeviceOption
    @OptionGroup var model: ModelOption
    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var distributed: DistributedOptions

    @Option(help: "Output folder.")
    var out: String = "outputs"

    @Option(help: "Skip training: analyse this checkpoint.safetensors.")
    var checkpoint: String?

    @Flag(help: "Continue training from the last finished epoch in --out.")
    var resume = false

    @Option(help: "Figure format: png | svg | pdf.")
    var format: String = "png"

    @OptionGroup var analysis: AnalysisImageOptions

    func run() throws {
        try reportingErrors {
            if !model.isTiny {
                try runDescription()
                return
            }
            guard let figureFormat = FigureFormat(rawValue: format) else {
                throw ValidationError("--format must be png, svg or pdf (got \(format))")
            }
            let settings = try training.settings(dataset: data.dataset)
            let group = try distributed.join()
            try data.requireFits()
            let directory = try prepareOutputDirectory(out, lock: (group?.rank ?? 0) == 0)
            let device = try self.device.make(for: group)
            var phases: [PhaseTime] = []
            func timed<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
                let start = Clocks.wall()
                defer { phases.append(PhaseTime(phase: phase, seconds: Clocks.seconds(since: start))) }
                return try body()
            }

            let weights: TinyConvNetWeights
            let history: Figures.TrainingHistory?
            let sets: (train: Dataset, test: Dataset)
            if let checkpoint {
                if let group, group.rank != 0 { return }
                log("phase 1: skipped, analysing \(checkpoint)")
                let url = URL(fileURLWithPath: checkpoint)
                weights = try Checkpoint.read(from: url, requireFinite: true).weights
                history = ReportStage.history(
                    from: url.deletingLastPathComponent().appendingPathComponent(Trainer.metricsFile))
                sets = try data.load()
            } else {
                log("phase 1: training \(settings.epochs) epoch(s) on \(device.info.summary)")
                let trainer = try timed("train (phase 1)") {
                    try Training.run(
                        settings: settings, device: device, data: data, directory: directory, resume: resume,
                        group: group)
                }
                // Rank 0 alone analyses and reports; the others are done.
                if let group, group.rank != 0 { return }
                weights = try trainer.network.weights()
                history = ReportStage.history(trainer.history)
                sets = (trainer.train, trainer.test)
            }

            log("phases 2–7 and 9: analysis")
            let report = try AnalysisPhases.run(weights: weights, device: device, data: sets, sweep: !analysis.noSweep)
            phases += PhaseTime.analysisPhases(report.timings)
            let analysisURL = directory.appendingPathComponent("analysis.json")
            try report.write(to: analysisURL)

            log("phase 8: figures and report")
            let figures = try timed("figures and report (phase 8)") {
                try ReportStage.renderFigures(
                    report: report, history: history, weights: weights, test: sets.test, directory: directory,
                    format: figureFormat)
            }
            try ReportStage.writeReport(
                report: report, device: device.info, settings: settings, checkpoint: checkpoint,
                format: figureFormat, phases: phases, figures: figures, to: directory)

            print(ResultsTable.render(report))
            print("\nphase times")
            for p in phases { print("  " + pad(p.phase, 58) + String(format: "%8.2f s", p.seconds)) }
            print(
                "\noutputs in \(directory.path): analysis.json, report.html, figures/ (\(figures.count) files)"
                    + (checkpoint == nil ? ", checkpoint.safetensors, metrics.json, metrics.csv" : ""))
            try AnalysisPhases.requirePassed(report)
            print("all \(report.checks.count) checks passed")
        }
    }

    /// `run --model M` for a description: train (phase 1) or read
    /// --checkpoint, then the per-layer analysis, its figures and report.html
    /// (a foldable section per layer, ``Figures/NetworkReport``).
    private func runDescription() throws {
        guard let figureFormat = FigureFormat(rawValue: format) else {
            throw ValidationError("--format must be png, svg or pdf (got \(format))")
        }
        let kind = try data.kind()
        let description = try model.description(for: kind)
        let settings = try training.settings(dataset: data.dataset, model: model.model)
        let group = try distributed.join()
        try data.requireFits(model: model.model)
        let device = try self.device.make(for: group)
        let plan: NetworkPlan
        let network: FoldedNetwork
        let test: Dataset
        var phases: [(String, Double)] = []
        if let checkpoint {
            if let group, group.rank != 0 { return }
            log("phase 1: skipped, analysing \(checkpoint)")
            (plan, network, _) = try NetworkAnalysisStage.load(
                description, kind: kind, device: device, checkpoint: URL(fileURLWithPath: checkpoint))
            test = try data.load(forModel: model.model).test
            _ = try prepareOutputDirectory(out)
        } else {
            let directory = try prepareOutputDirectory(out, lock: (group?.rank ?? 0) == 0)
            log("phase 1: training \(settings.epochs) epoch(s) on \(device.info.summary)")
            let start = Clocks.wall()
            let trainer = try Training.run(
                model: model, settings: settings, device: device, data: data, directory: directory, resume: resume,
                group: group)
            phases.append(("train (phase 1)", Clocks.seconds(since: start)))
            if let group, group.rank != 0 { return }
            plan = trainer.network
            network = try NetworkAnalysisStage.fold(description, plan: plan, tensors: try plan.checkpointTensors())
            test = trainer.test
        }
        let directory = URL(fileURLWithPath: out)
        log("phases 2–5: per-layer analysis")
        let report = try NetworkAnalysisStage.run(network, plan: plan, test: test, options: analysis.network)
        try report.write(to: directory.appendingPathComponent("analysis.json"))
        log("phase 8: per-layer figures")
        let start = Clocks.wall()
        let files = try NetworkAnalysisStage.writeFiguresAndReport(
            report, directory: directory, format: figureFormat)
        phases.append(("per-layer figures and report.html (phase 8)", Clocks.seconds(since: start)))
        print(NetworkAnalysisStage.render(report))
        print("\nphase times outside the analysis")
        for (phase, seconds) in phases { print("  " + pad(phase, 58) + String(format: "%8.2f s", seconds)) }
        print(
            "\noutputs in \(directory.path): analysis.json, report.html, figures/ (\(files.map(\.name).joined(separator: ", ")))"
                + (checkpoint == nil ? ", checkpoint.safetensors, metrics.json, metrics.csv" : ""))
        try NetworkAnalysisStage.requirePassed(report)
        print("all \(report.checks.count) checks passed")
    }
}
