import Analysis
import ArgumentParser
import Foundation
import GPUNet
import NetIO

struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Phases 2–7 and 9: the SVD of each conv layer, each layer as an operator, every identity checked; "
            + "writes analysis.json.",
        discussion: "Exits 1 when any identity misses its tolerance (the failures are listed).")

    @OptionGroup var device: DeviceOption
    @OptionGroup var data: DataOptions

    @Option(help: "A checkpoint.safetensors written by `convsvd train`.")
    var checkpoint: String

    @Option(help: "Output folder for analysis.json.")
    var out: String = "outputs"

    @Flag(name: .customLong("no-sweep"), help: "Skip the test-accuracy-against-rank sweep of phase 5.")
    var noSweep = false

    func run() throws {
        try reportingErrors {
            let weights = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint), requireFinite: true).weights
            try data.requireFits()
            let directory = try prepareOutputDirectory(out)
            let report = try AnalysisPhases.run(
                weights: weights, device: device.make(), data: data.load(), sweep: !noSweep)
            try report.write(to: directory.appendingPathComponent("analysis.json"))
            print(ResultsTable.render(report))
            log("wrote \(directory.appendingPathComponent("analysis.json").path)")
            try AnalysisPhases.requirePassed(report)
        }
    }
}
