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
            reference's largest magnitude; integer outputs and the batch gather exactly. \
            With --model other than tiny: the model's plan on the chosen device against the same plan \
            on the host's portable path, one batch of 3 seeded images of --dataset's shape: the eval \
            logits, every layer's output, the losses and the running statistics of a training pass \
            (forward rule) and every parameter's gradient (gradient rule).
            """)

    @OptionGroup var deviceOption: DeviceOption
    @OptionGroup var model: ModelOption

    @Option(help: "With --model: mnist | fashion-mnist | cifar10, the input shape and classes (no data is read).")
    var dataset: String = "mnist"

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        try reportingErrors {
            let kind = try DataOptions.kind(named: dataset)
            let description = model.isTiny ? nil : try model.description(for: kind)
            let device = try deviceOption.make()
            let start = Clocks.wall()
            let rows: [SelfTest.Row]
            if let description {
                let input = kind.inputShape
                rows = SelfTest(device: device).run(
                    model: description, channels: input.channels, height: input.height, width: input.width,
                    classes: kind.classCount
                ) { log("selftest: \($0)") }
            } else {
                rows = SelfTest(device: device).run { log("selftest: \($0)") }
            }
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
                print(
                    "selftest of \(device.info.summary)"
                        + (description.map { ": model \($0.name) on \(kind.rawValue)'s input shape" } ?? "")
                        + " against the host reference")
                // TinyConvNet's names fit 14 columns; a model's tensor names are longer.
                let outputWidth = description == nil ? 14 : rows.map { $0.output.count + 2 }.max() ?? 14
                print(
                    pad("operation", 31) + pad("shape", 40) + pad("output", outputWidth)
                        + pad("rule", 9) + pad("max error", 11) + pad("limit", 8)
                        + "pass")
                for r in rows {
                    print(
                        pad(r.operation, 31) + pad(r.shape, 40) + pad(r.output, outputWidth)
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
