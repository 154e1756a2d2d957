import Analysis
import Figures
import Foundation
import GPUNet
import NetIO

/// Phase 8: the figures and report.html of an analysed network, for `run`.
enum ReportStage {
    /// Draws every figure of `report` into `directory`/figures; returns the files written.
    static func renderFigures(
        report: AnalysisReport, history: Figures.TrainingHistory?, weights: TinyConvNetWeights, test: Dataset,
        directory: URL, format: FigureFormat
    ) throws -> [FigureFile] {
        let figureDirectory = directory.appendingPathComponent("figures")
        try FileManager.default.createDirectory(at: figureDirectory, withIntermediateDirectories: true)
        return try Figures.renderAll(
            report: report, history: history, sample: try activationSample(weights: weights, test: test),
            to: figureDirectory, format: format)
    }

    /// Writes `directory`/report.html: the summary, the results, the phase
    /// times, the settings, the command line and the figures.
    static func writeReport(
        report: AnalysisReport, device: DeviceInfo, settings: TrainingSettings, checkpoint: String?,
        format: FigureFormat, phases: [PhaseTime], figures: [FigureFile], to directory: URL
    ) throws {
        let document = ReportDocument(
            summary: summary(report: report, device: device, settings: settings, trained: checkpoint == nil),
            results: ResultRow.rows(from: report), device: device.summary, phases: phases,
            settings: settingsRows(settings, checkpoint: checkpoint, format: format),
            command: (["convsvd"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            figures: figures)
        try HTMLReport.write(document, to: directory.appendingPathComponent("report.html"))
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
