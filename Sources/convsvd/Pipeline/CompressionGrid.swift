import Figures
import Foundation

/// Several settings of one `convsvd compress` run side by side (a list of
/// `--energy` fractions, with `--compare-data-aware` each with both kinds of
/// factors): the table it prints, `grid.json` and `figures/compression_grid.png`.
/// Each entry's dense and compressed times come from the same run of that
/// setting, so every ratio compares networks timed back to back.
struct CompressionGrid: Encodable {
    struct Entry: Encodable {
        /// The setting's folder under `--out`.
        var folder: String
        var result: Compression.Result
    }

    var settings: [Entry]

    /// One row per setting: the work and parameters kept, the accuracy before
    /// and after fine-tuning, the test-set pass and the training step against
    /// the dense network's, and the bound.
    func table() -> String {
        var rows = [
            [
                "setting", "conv MACs", "parameters", "test accuracy", "fine-tuned", "test-set pass (s)", "ratio",
                "training step (ms)", "ratio", "mean B / mean ‖Δ‖", "violations",
            ]
        ]
        for entry in settings {
            let r = entry.result
            rows.append([
                entry.folder,
                String(format: "%.3f", r.convMultiplyAddRatio),
                "\(r.compressed.parameters)/\(r.dense.parameters)",
                String(format: "%.2f → %.2f%%", 100 * r.dense.accuracy, 100 * r.compressed.accuracy),
                r.finetuned.map { String(format: "%.2f%%", 100 * $0.accuracy) } ?? "",
                String(format: "%.3f → %.3f", r.dense.inferenceSeconds, r.compressed.inferenceSeconds),
                String(format: "%.2f×", r.compressed.inferenceSeconds / r.dense.inferenceSeconds),
                r.dense.stepSeconds.flatMap { d in
                    r.compressed.stepSeconds.map { String(format: "%.1f → %.1f", 1000 * d, 1000 * $0) }
                } ?? "",
                r.stepRatio.map { String(format: "%.2f×", $0) } ?? "",
                r.bound.map { String(format: "%.3g / %.3g", $0.meanBound, $0.meanChange) } ?? "",
                r.bound.map { "\($0.violations)" } ?? "",
            ])
        }
        let first = settings[0].result
        return
            (["grid: \(first.model) on \(first.dataset), \(first.device), \(settings.count) settings"]
            + columns(rows)).joined(separator: "\n")
    }

    func figure() throws -> Figure {
        try Figures.compressionGrid(
            settings.map {
                Figures.CompressionSetting(
                    convMultiplyAddRatio: $0.result.convMultiplyAddRatio, dataAware: $0.result.dataAware,
                    accuracy: $0.result.compressed.accuracy, finetunedAccuracy: $0.result.finetuned?.accuracy,
                    timeRatio: $0.result.compressed.inferenceSeconds / $0.result.dense.inferenceSeconds)
            }, denseAccuracy: settings[0].result.dense.accuracy)
    }
}
