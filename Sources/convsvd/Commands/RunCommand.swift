import Analysis
import ArgumentParser
import Figures
import Foundation
import GPUNet
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

    @Flag(name: .customLong("no-sweep"), help: "Skip the test-accuracy-against-rank sweep of phase 5.")
    var noSweep = false

    func run() throws {
        try reportingErrors {
            guard let figureFormat = FigureFormat(rawValue: format) else {
                throw ValidationError("--format must be png, svg or pdf (got \(format))")
            }
            let settings = try training.settings(dataset: data.dataset)
            let group = try distributed.join()
            let directory = try prepareOutputDirectory(out, lock: (group?.rank ?? 0) == 0)
            let device = try self.device.make(for: group)
            var phases: [PhaseTime] = []
            func timed<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
                let start = Date()
                defer { phases.append(PhaseTime(phase: phase, seconds: Date().timeIntervalSince(start))) }
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
                history = Self.history(
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
                history = Self.history(trainer.history)
                sets = (trainer.train, trainer.test)
            }

            log("phases 2–7 and 9: analysis")
            let report = try AnalysisPhases.run(weights: weights, device: device, data: sets, sweep: !noSweep)
            phases += PhaseTime.analysisPhases(report.timings)
            let analysisURL = directory.appendingPathComponent("analysis.json")
            try report.write(to: analysisURL)

            log("phase 8: figures and report")
            let figures = try timed("figures and report (phase 8)") { () throws -> [FigureFile] in
                let figureDirectory = directory.appendingPathComponent("figures")
                try FileManager.default.createDirectory(at: figureDirectory, withIntermediateDirectories: true)
                let figures = try Figures.renderAll(
                    report: report, history: history,
                    sample: try Self.activationSample(weights: weights, test: sets.test),
                    to: figureDirectory, format: figureFormat)
                return figures
            }
            let document = ReportDocument(
                summary: Self.summary(
                    report: report, device: device.info, settings: settings, trained: checkpoint == nil),
                results: ResultRow.rows(from: report), device: device.info.summary, phases: phases,
                settings: Self.settingsRows(settings, checkpoint: checkpoint, format: figureFormat),
                command: (["convsvd"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
                figures: figures)
            let reportURL = directory.appendingPathComponent("report.html")
            try HTMLReport.write(document, to: reportURL)

            print(ResultsTable.render(report))
            print("\nphase times")
            for p in phases { print("  " + BenchTable.pad(p.phase, 58) + String(format: "%8.2f s", p.seconds)) }
            print(
                "\noutputs in \(directory.path): analysis.json, report.html, figures/ (\(figures.count) files)"
                    + (checkpoint == nil ? ", checkpoint.safetensors, metrics.json, metrics.csv" : ""))
            try AnalysisPhases.requirePassed(report)
            print("all \(report.checks.count) checks passed")
        }
    }

    static func history(_ epochs: [EpochMetrics]) -> Figures.TrainingHistory? {
        epochs.isEmpty
            ? nil
            : Figures.TrainingHistory(
                epochs: epochs.map {
                    Figures.EpochRecord(
                        epoch: $0.epoch, loss: $0.loss, trainAccuracy: $0.trainAccuracy,
                        testAccuracy: $0.testAccuracy, seconds: $0.seconds)
                })
    }

    /// The training curves of a checkpoint's run, when its metrics.json sits beside it.
    static func history(from metricsURL: URL) -> Figures.TrainingHistory? {
        guard let data = try? Data(contentsOf: metricsURL),
            let metrics = try? JSONDecoder().decode(TrainingMetrics.self, from: data)
        else { return nil }
        return history(metrics.epochs)
    }

    /// The first few test digits through the host's float64 network, for the
    /// projection and feature-map figures.
    static func activationSample(weights: TinyConvNetWeights, test: Dataset, count: Int = 500) throws
        -> Figures.ActivationSample
    {
        let n = min(count, test.count)
        let images = test.normalizedImages(0..<n)
        let activations = try HostReferenceNet(weights: weights).forward(normalizedImages: images, count: n)
        return Figures.ActivationSample(
            images: images.map(Double.init), labels: (0..<n).map { Int(test.labels[$0]) },
            activations: activations)
    }

    static func summary(report: AnalysisReport, device: DeviceInfo, settings: TrainingSettings, trained: Bool) -> String
    {
        let passed = report.checks.filter(\.passed).count
        let what =
            trained
            ? "TinyConvNet trained for \(settings.epochs) epoch(s) on \(device.summary)"
            : "A TinyConvNet checkpoint verified on \(device.summary)"
        return String(
            format: "%@ reaches %.2f%% test accuracy; %d of %d checks passed.", what,
            100 * report.testAccuracy, passed, report.checks.count)
    }

    static func settingsRows(_ s: TrainingSettings, checkpoint: String?, format: FigureFormat) -> [(
        name: String, value: String
    )] {
        var rows: [(name: String, value: String)] = []
        if let checkpoint { rows.append(("checkpoint", checkpoint)) }
        rows += [
            ("dataset", s.dataset), ("epochs", "\(s.epochs)"), ("batch size", "\(s.batchSize)"),
            ("learning rate", "\(s.learningRate)"), ("optimizer", s.optimizer.description), ("seed", "\(s.seed)"),
            ("train images", s.trainLimit.map(String.init) ?? "all"),
            ("test images", s.testLimit.map(String.init) ?? "all"),
            ("figure format", format.rawValue),
        ]
        return rows
    }
}
