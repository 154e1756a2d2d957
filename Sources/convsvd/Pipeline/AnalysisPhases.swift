import Analysis
import Foundation
import GPUNet
import NetIO

/// Phases 2–7 and 9, shared by `analyze` and `run`.
enum AnalysisPhases {
    static func run(
        weights: TinyConvNetWeights, device: any Device, data: (train: Dataset, test: Dataset),
        sweep: Bool
    ) throws -> AnalysisReport {
        let options = AnalysisOptions(runAccuracySweep: sweep)
        let analyzer = Analyzer(weights: weights, testSet: data.test, trainSet: data.train, options: options)
        let network = try DeviceNetwork(device: device, weights: weights)
        return try analyzer.run(network: network) { log("analysis: \($0)") }
    }

    /// Exit 1 with the failed checks listed when any identity missed its tolerance.
    static func requirePassed(_ report: AnalysisReport) throws {
        guard report.allChecksPassed else {
            let failed = report.failedChecks.map { "\($0.id) = \($0.value) (limit \($0.limit))" }
            throw ToolError(code: Exit.checkFailed, description: "checks failed: " + failed.joined(separator: "; "))
        }
    }
}
