import Analysis
import Foundation

/// study.html: a study over seeds on one self-contained page: every headline
/// number with mean, standard deviation, 95 % t-interval, range and the
/// per-seed values, then the figures with error bars.
public enum StudyReport {
    public static func render(
        _ summary: StudySummary, settings: [(name: String, value: String)], command: String,
        figures: [FigureFile], analysed: Bool = true
    ) throws -> String {
        let e = HTMLReport.escape
        let n = summary.seeds.count
        var html = HTMLReport.pageStart(
            title: "ConvSVD study over \(n) seeds",
            meta:
                "Generated \(e(HTMLReport.timestamp(Date()))) · seeds \(summary.seeds.map(String.init).joined(separator: ", "))"
        )
        html += """
            <p>One training run and analysis per seed; each row is one number over the \(n) runs. \(e(summary.interval)).\(analysed ? "" : " The members' analysis is the per-layer one (network-analysis.json): its numbers per layer stand beside the final epoch's accuracies and loss.")</p>
            <section id="results">
            <h2>Headline numbers</h2>
            <table>
            <thead><tr><th>quantity</th><th>mean</th><th>sd</th><th>95% interval</th><th>min</th><th>max</th>
            """
        html += summary.seeds.map { "<th>seed \($0)</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for row in summary.rows {
            let s = row.summary
            html +=
                "<tr><td>\(e(row.label))</td><td>\(format(s.mean))</td><td>\(format(s.standardDeviation))</td>"
                + "<td>\(format(s.interval95[0])) – \(format(s.interval95[1]))</td><td>\(format(s.min))</td><td>\(format(s.max))</td>"
                + s.values.map { "<td>\(format($0))</td>" }.joined() + "</tr>\n"
        }
        html += "</tbody>\n</table>\n"
        if !summary.incomplete.isEmpty {
            html +=
                "<p>Not summarised (missing in some members): \(e(summary.incomplete.joined(separator: ", ")))</p>\n"
        }
        html += "</section>\n<section id=\"run\">\n<h2>Run</h2>\n<table>\n"
        for s in settings { html += "<tr><th>\(e(s.name))</th><td>\(e(s.value))</td></tr>\n" }
        html += "<tr><th>command</th><td><code>\(e(command))</code></td></tr>\n</table>\n</section>\n"
        html += "<section id=\"figures\">\n<h2>Figures</h2>\n"
        for (i, f) in figures.enumerated() { html += try HTMLReport.figureBlock(f, index: i + 1) }
        html += "</section>\n</main>\n</body>\n</html>\n"
        return html
    }

    /// study.html of a study over datasets: the test accuracies, then one
    /// table per per-layer quantity (a row per layer, mean ± sd per dataset
    /// side by side), every member's numbers per dataset, then the figures.
    public static func renderDatasets(
        _ c: DatasetComparison, settings: [(name: String, value: String)], command: String, figures: [FigureFile]
    ) throws -> String {
        let e = HTMLReport.escape
        let seeds = c.summaries[c.datasets[0]]!.seeds
        var html = HTMLReport.pageStart(
            title: "ConvSVD: \(c.model) on \(c.datasets.joined(separator: ", ")) over \(seeds.count) seeds",
            meta:
                "Generated \(e(HTMLReport.timestamp(Date()))) · seeds \(seeds.map(String.init).joined(separator: ", "))"
        )
        html += "<p>One training run and per-layer analysis per dataset and seed. \(e(c.interval)).</p>\n"
        func cell(_ s: SampleSummary?) -> String {
            guard let s else { return "<td>–</td>" }
            return "<td>\(format(s.mean)) ± \(format(s.standardDeviation))</td>"
        }
        let header = "<tr><th>layer</th>" + c.datasets.map { "<th>\(e($0)) (mean ± sd)</th>" }.joined() + "</tr>"
        html += "<section id=\"accuracy\">\n<h2>Test accuracy</h2>\n<table>\n<thead>\(header)</thead>\n<tbody>\n"
        for key in ["test_accuracy", "analysis_accuracy"] {
            guard let label = c.datasets.lazy.compactMap({ c.summaries[$0]?.row(key)?.label }).first else { continue }
            html +=
                "<tr><td>\(e(label))</td>" + c.datasets.map { cell(c.summaries[$0]?.row(key)?.summary) }.joined()
                + "</tr>\n"
        }
        html += "</tbody>\n</table>\n</section>\n"
        for q in LayerStudyMetrics.quantities {
            html += "<section id=\"\(e(q.key))\">\n<h2>\(e(q.label))</h2>\n<table>\n<thead>\(header)</thead>\n<tbody>\n"
            for l in c.layers where l.quantities[q.key] != nil {
                html +=
                    "<tr><td>\(e(l.name))</td>" + c.datasets.map { cell(l.quantities[q.key]?[$0]) }.joined() + "</tr>\n"
            }
            html += "</tbody>\n</table>\n</section>\n"
        }
        html += "<section id=\"run\">\n<h2>Run</h2>\n<table>\n"
        for s in settings { html += "<tr><th>\(e(s.name))</th><td>\(e(s.value))</td></tr>\n" }
        html += "<tr><th>command</th><td><code>\(e(command))</code></td></tr>\n</table>\n</section>\n"
        html += "<section id=\"figures\">\n<h2>Figures</h2>\n"
        for (i, f) in figures.enumerated() { html += try HTMLReport.figureBlock(f, index: i + 1) }
        html += "</section>\n"
        for d in c.datasets {
            guard let summary = c.summaries[d] else { continue }
            html += "<details>\n<summary>Every number of \(e(d))</summary>\n<table>\n"
            html +=
                "<thead><tr><th>quantity</th><th>mean</th><th>sd</th><th>95% interval</th>"
                + summary.seeds.map { "<th>seed \($0)</th>" }.joined() + "</tr></thead>\n<tbody>\n"
            for row in summary.rows {
                let s = row.summary
                html +=
                    "<tr><td>\(e(row.label))</td><td>\(format(s.mean))</td><td>\(format(s.standardDeviation))</td>"
                    + "<td>\(format(s.interval95[0])) – \(format(s.interval95[1]))</td>"
                    + s.values.map { "<td>\(format($0))</td>" }.joined() + "</tr>\n"
            }
            html += "</tbody>\n</table>\n</details>\n"
        }
        html += "</main>\n</body>\n</html>\n"
        return html
    }

    /// Five significant digits: enough to compare seeds, short enough to read.
    public static func format(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "–" : (v > 0 ? "∞" : "−∞") }
        return String(format: "%.5g", v)
    }
}
