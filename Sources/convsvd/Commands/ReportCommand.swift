import Analysis
import ArgumentParser
import Figures
import Foundation
import NetIO

/// `convsvd report`: phase 8 alone. The per-layer figures and report.html
/// are drawn from analysis.json's values and nothing else, so a finished
/// analysis is redrawn (another format, another folder, a newer drawing
/// code) in a second, without the checkpoint, the data or a device.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Draws the per-layer figures and report.html anew from the analysis.json of `analyze --model M`.",
        discussion: """
            Reads the analysis.json that `analyze --model M` or `run --model M` wrote (any model but tiny) and \
            writes figures/ and report.html into --out, each file atomically; the analysis itself is not run \
            again and analysis.json is not changed. Exits 2 when the file is missing, is not JSON of the \
            per-layer analysis (TinyConvNet's analysis.json: its figures read test images through the network, \
            so `run --checkpoint C` draws them), or comes from a later schema than this build reads; 5 when \
            --out cannot be written.
            """)

    @Option(help: "An analysis.json written by `convsvd analyze --model M` or `run --model M`.")
    var analysis: String

    @Option(help: "Output folder for figures/ and report.html (default: the folder that holds --analysis).")
    var out: String?

    @Option(help: "Figure format, png | svg | pdf.")
    var format: String = "png"

    func run() throws {
        try reportingErrors {
            guard let figureFormat = FigureFormat(rawValue: format) else {
                throw ValidationError("--format must be png, svg or pdf (got \(format))")
            }
            let url = URL(fileURLWithPath: analysis)
            let report = try Self.read(url)
            let directory = try prepareOutputDirectory(out ?? url.deletingLastPathComponent().path)
            let start = Clocks.wall()
            let files = try NetworkAnalysisStage.writeFiguresAndReport(
                report, directory: directory, format: figureFormat)
            print(
                "\(report.model) on \(report.testSet.name): \(report.layers.count) layers, "
                    + "\(report.checks.filter(\.passed).count) of \(report.checks.count) checks passed when analysed"
                    + (report.device.map { " on \($0)" } ?? ""))
            print(String(format: "figures and report.html: %.2f s", Clocks.seconds(since: start)))
            log(
                "wrote \(directory.appendingPathComponent("report.html").path) and figures/ "
                    + "(\(files.map(\.name).joined(separator: ", ")))")
        }
    }

    /// The per-layer report in `url`, or a bad-input error that says what
    /// the file is instead.
    static func read(_ url: URL) throws -> NetworkAnalysisReport {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ToolError(code: Exit.badInput, description: "cannot read \(url.path): \(error.localizedDescription)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ToolError(code: Exit.badInput, description: "\(url.path) is not a JSON object")
        }
        guard object["layers"] != nil, object["model"] != nil else {
            throw ToolError(
                code: Exit.badInput,
                description: "\(url.path) is not the per-layer analysis of `analyze --model M` (no `model` and "
                    + "`layers`); TinyConvNet's figures read test images through the network: "
                    + "`convsvd run --checkpoint C` draws them")
        }
        do {
            return try NetworkAnalysisReport(jsonData: data)
        } catch {
            throw ToolError(code: Exit.badInput, description: "\(url.path): \(error)")
        }
    }
}
