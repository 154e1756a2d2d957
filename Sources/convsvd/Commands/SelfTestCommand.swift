import ArgumentParser
import Foundation
import GPUNet
import NetIO

struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Run every device operation against the host reference and compare (exit 1 on any failure).",
        discussion: """
            Each operation runs at TinyConvNet's shapes (batch 64) and at a small odd shape, on the \
            chosen device and on the host's portable path (im2col + OpenBLAS), with the same seeded \
            inputs. Rules: forward outputs max |Δ| ≤ 1e-4; gradients max |Δ| ≤ 1e-4 of the \
            reference's largest magnitude; integer outputs and the batch gather exactly.
            """)

    @OptionGroup var deviceOption: DeviceOption

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        try reportingErrors {
            let device = try deviceOption.make()
            let start = Clocks.wall()
            let rows = SelfTest(device: device).run { log("selftest: \($0)") }
            let failed = rows.filter { !$0.passed }.count
            if json {
                struct Report: Encodable {
                    var device: DeviceInfo
                    var rows: [SelfTest.Row]
                    var passed: Int, failed: Int
                    var seconds: Double
                }
                let report = Report(
                    device: device.info, rows: rows, passed: rows.count - failed, failed: failed,
                    seconds: Clocks.seconds(since: start))
                print(String(decoding: try JSONEncoder.sorted.encode(report), as: UTF8.self))
            } else {
                print("selftest of \(device.info.summary) against the host reference")
                print(
                    pad("operation", 31) + pad("shape", 40) + pad("output", 14)
                        + pad("rule", 9) + pad("max error", 11) + pad("limit", 8)
                        + "pass")
                for r in rows {
                    print(
                        pad(r.operation, 31) + pad(r.shape, 40) + pad(r.output, 14)
                            + pad(r.rule.rawValue, 9)
                            + pad(String(format: "%.2e", r.maxError), 11)
                            + pad(String(format: "%.0e", r.limit), 8) + (r.passed ? "yes" : "NO")
                            + (r.error.map { "  (\($0))" } ?? ""))
                }
                print(
                    "\(rows.count - failed) of \(rows.count) outputs pass"
                        + " (forward: max |Δ| ≤ 1e-4; gradient: max |Δ| ≤ 1e-4 · max |reference|; exact: no element differs)"
                )
            }
            if failed > 0 {
                throw ToolError(
                    code: Exit.checkFailed,
                    description: "selftest: \(failed) of \(rows.count) outputs outside their limits")
            }
        }
    }
}
