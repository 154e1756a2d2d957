import Analysis
import Figures
import Foundation
import GPUNet
import NetIO

/// The report of a study: every headline number summarised over the seeds.
enum StudySummaryStage {
    /// Writes study.json, the figures and study.html from the members'
    /// analysis.json (`analysed`: TinyConvNet's members) or, for a model
    /// without the analysis, their metrics.json, and prints the summary
    /// table; `settings` are the members' (their seed aside) and `devices`
    /// the `--device` values.
    static func write(
        seeds: [UInt64], in directory: URL, format: FigureFormat, settings: TrainingSettings, analysed: Bool = true,
        devices: [String]
    ) throws {
        var members: [[StudyMetric]] = []
        for seed in seeds {
            let folder = StudyCommand.memberDirectory(directory, seed: seed)
            let url = folder.appendingPathComponent(analysed ? "analysis.json" : Trainer.metricsFile)
            guard let json = try? Data(contentsOf: url) else {
                throw ToolError(
                    code: Exit.badInput, description: "study: \(url.path) is missing: seed \(seed) did not finish")
            }
            members.append(
                analysed
                    ? try StudyMetrics.extract(analysisJSON: json)
                    : try trainingMetrics(json, url) + layerMetrics(folder, seed: seed))
        }
        let summary = StudySummary(seeds: seeds, members: members)
        try writeAtomically(try summary.jsonData(), to: directory.appendingPathComponent("study.json"))

        let figureDirectory = directory.appendingPathComponent("figures")
        try FileManager.default.createDirectory(at: figureDirectory, withIntermediateDirectories: true)
        func curve(_ name: String, prefix: String) -> Figures.StudyCurve? {
            var x: [Double] = []
            var s: [SampleSummary] = []
            for i in 1... {
                guard let row = summary.row("\(prefix)\(i)") else { break }
                x.append(Double(i))
                s.append(row.summary)
            }
            return x.isEmpty ? nil : Figures.StudyCurve(name: name, x: x, summaries: s)
        }
        var figures: [FigureFile] = []
        let spectra = ["conv1", "conv2"].compactMap { curve($0, prefix: "\($0).sigma.") }
        if !spectra.isEmpty {
            figures.append(try Figures.studySingularValues(spectra).write(to: figureDirectory, format: format))
        }
        let accuracy = ["conv1", "conv2", "both"].compactMap {
            curve($0 == "both" ? "both layers" : $0, prefix: "\($0).low_rank_accuracy.")
        }
        if !accuracy.isEmpty {
            figures.append(try Figures.studyAccuracyVersusRank(accuracy).write(to: figureDirectory, format: format))
        }

        let rows: [(name: String, value: String)] =
            (analysed ? [] : [("model", settings.model)]) + [
                ("dataset", settings.dataset), ("epochs", "\(settings.epochs)"),
                ("batch size", "\(settings.batchSize)"),
                ("learning rate", "\(settings.learningRate)"), ("optimizer", settings.optimizer.description),
                ("train images", settings.trainLimit.map(String.init) ?? "all"),
                ("test images", settings.testLimit.map(String.init) ?? "all"),
                ("devices", devices.joined(separator: ", ")),
            ]
        let html = try StudyReport.render(
            summary, settings: rows,
            command: (["convsvd"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            figures: figures, analysed: analysed)
        try writeAtomically(Data(html.utf8), to: directory.appendingPathComponent("study.html"))

        print(
            pad("quantity", 44) + pad("mean ± sd", 24) + pad("min – max", 24)
                + "95% interval (t)")
        for row in summary.rows {
            let s = row.summary
            let f = StudyReport.format
            print(
                pad(row.label, 44) + pad("\(f(s.mean)) ± \(f(s.standardDeviation))", 24)
                    + pad("\(f(s.min)) – \(f(s.max))", 24) + "\(f(s.interval95[0])) – \(f(s.interval95[1]))")
        }
        print(
            "\nstudy over seeds \(seeds.map(String.init).joined(separator: ", ")): \(directory.path)/study.json, study.html, figures/"
        )
    }

    /// A member's per-layer numbers (``Analysis/LayerStudyMetrics``) from its network-analysis.json.
    static func layerMetrics(_ folder: URL, seed: UInt64) throws -> [StudyMetric] {
        let url = folder.appendingPathComponent(StudyCommand.networkAnalysisFile)
        guard let json = try? Data(contentsOf: url) else {
            throw ToolError(
                code: Exit.badInput, description: "study: \(url.path) is missing: seed \(seed) did not finish")
        }
        do {
            return LayerStudyMetrics.extract(try NetworkAnalysisReport(jsonData: json))
        } catch {
            throw ToolError(code: Exit.badInput, description: "study: \(url.path) cannot be read: \(error)")
        }
    }

    /// study.json, study.html and figures/ of a study over datasets from the
    /// members in each dataset's folder (metrics.json and
    /// network-analysis.json), and the side-by-side table on standard output.
    static func writeDatasets(
        _ folders: [(dataset: String, directory: URL)], seeds: [UInt64], in directory: URL, model: String,
        format: FigureFormat, settings: TrainingSettings, analysisImages: Int, device: String
    ) throws {
        var members: [DatasetComparison.Members] = []
        for (dataset, folder) in folders {
            var metrics: [[StudyMetric]] = []
            for seed in seeds {
                let member = StudyCommand.memberDirectory(folder, seed: seed)
                let url = member.appendingPathComponent(Trainer.metricsFile)
                guard let json = try? Data(contentsOf: url) else {
                    throw ToolError(
                        code: Exit.badInput, description: "study: \(url.path) is missing: seed \(seed) did not finish")
                }
                metrics.append(try trainingMetrics(json, url) + layerMetrics(member, seed: seed))
            }
            members.append(DatasetComparison.Members(dataset: dataset, seeds: seeds, metrics: metrics))
        }
        let comparison = DatasetComparison(model: model, members: members)
        try writeAtomically(try comparison.jsonData(), to: directory.appendingPathComponent("study.json"))
        let figureDirectory = directory.appendingPathComponent("figures")
        try FileManager.default.createDirectory(at: figureDirectory, withIntermediateDirectories: true)
        let figures = try Figures.datasetFigures(comparison).map { try $0.write(to: figureDirectory, format: format) }
        let rows: [(name: String, value: String)] = [
            ("model", model), ("datasets", comparison.datasets.joined(separator: ", ")),
            ("epochs", "\(settings.epochs)"), ("batch size", "\(settings.batchSize)"),
            ("learning rate", "\(settings.learningRate)"), ("optimizer", settings.optimizer.description),
            ("train images", settings.trainLimit.map(String.init) ?? "all"),
            ("test images", settings.testLimit.map(String.init) ?? "all"),
            ("analysis images", "\(analysisImages) (ReLU masks: \(min(analysisImages, 256)))"), ("device", device),
        ]
        let html = try StudyReport.renderDatasets(
            comparison, settings: rows,
            command: (["convsvd"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            figures: figures)
        try writeAtomically(Data(html.utf8), to: directory.appendingPathComponent("study.html"))
        print(render(comparison))
        print(
            "\nstudy of \(model) over datasets \(comparison.datasets.joined(separator: ", ")) and seeds "
                + "\(seeds.map(String.init).joined(separator: ", ")): \(directory.path)/study.json, study.html, "
                + "figures/ (\(figures.map(\.name).joined(separator: ", ")))")
    }

    /// The comparison as text: test accuracy, then per quantity a row per
    /// layer with mean ± sd per dataset.
    static func render(_ c: DatasetComparison) -> String {
        let f = StudyReport.format
        func cell(_ s: SampleSummary?) -> String {
            pad(s.map { "\(f($0.mean)) ± \(f($0.standardDeviation))" } ?? "–", 24)
        }
        var lines = [pad("", 24) + c.datasets.map { pad($0, 24) }.joined()]
        for key in ["test_accuracy", "analysis_accuracy"] {
            lines.append(pad(key, 24) + c.datasets.map { cell(c.summaries[$0]?.row(key)?.summary) }.joined())
        }
        for q in LayerStudyMetrics.quantities {
            lines += ["", q.label]
            for l in c.layers where l.quantities[q.key] != nil {
                lines.append("  " + pad(l.name, 22) + c.datasets.map { cell(l.quantities[q.key]?[$0]) }.joined())
            }
        }
        lines += ["", "accuracy with one layer at rank k (mean over the seeds), k: value"]
        for l in c.layers where !l.accuracyVersusRank.isEmpty {
            for d in c.datasets {
                guard let points = l.accuracyVersusRank[d] else { continue }
                lines.append(
                    "  " + pad(l.name, 22) + pad(d, 15)
                        + points.map { "\($0.k): " + String(format: "%.4f", $0.accuracy.mean) }.joined(separator: "  "))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The headline numbers of a member that was trained but not analysed:
    /// its final epoch's test accuracy, training accuracy and mean training
    /// loss, from its metrics.json.
    static func trainingMetrics(_ json: Data, _ url: URL) throws -> [StudyMetric] {
        guard let metrics = try? JSONDecoder().decode(TrainingMetrics.self, from: json), let last = metrics.epochs.last
        else {
            throw ToolError(code: Exit.badInput, description: "study: \(url.path) holds no finished epoch")
        }
        return [
            StudyMetric(key: "test_accuracy", label: "test accuracy", value: last.testAccuracy),
            StudyMetric(key: "train_accuracy", label: "training accuracy (final epoch)", value: last.trainAccuracy),
            StudyMetric(key: "loss", label: "mean training loss (final epoch)", value: last.loss),
        ]
    }
}
