import ArgumentParser
import Foundation
import GPUNet
import Models

struct DescribeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Print a network's layers: PyTorch names, output shapes, parameters, multiply-adds, and totals.",
        discussion: """
            Multiply-adds count conv and linear layers only (bias adds, BatchNorm, ReLU, pools and \
            residual adds count zero). Training work per epoch is 2 FLOP × (forward + weight-gradient \
            + input-gradient multiply-adds) × the training-set size, where the weight and input gradients \
            cost as many multiply-adds as the forward and a layer that no learned parameter precedes \
            (the first conv) needs no input gradient.
            """)

    @Option(help: "\(BuiltinModels.names.joined(separator: " | ")) | FILE.json (docs/model-format.md).")
    var model: String = "tiny"

    @Option(help: "\(InputGeometry.all.map(\.name).joined(separator: " | ")): the input shape, classes and epoch size.")
    var dataset: String = "mnist"

    @Flag(help: "Also list every state_dict tensor: name, shape, learned or buffer, element type.")
    var tensors = false

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(
        name: .customLong("model-file"),
        help: "Print the model as a JSON model file (docs/model-format.md), a start for one's own.")
    var modelFile = false

    func run() throws {
        try reportingErrors {
            guard let geometry = InputGeometry.named(dataset) else {
                throw ValidationError(
                    "--dataset must be one of \(InputGeometry.all.map(\.name).joined(separator: ", ")) (got \(dataset))"
                )
            }
            let summary: NetworkSummary
            do {
                let network = try ModelSource.resolve(model, for: geometry)
                if modelFile {
                    print(ModelFile.encode(network), terminator: "")
                    return
                }
                do {
                    summary = try network.summary(input: geometry.shape, classes: geometry.classes)
                } catch let error as ModelError {
                    throw ToolError(
                        code: Exit.usage,
                        description: "--model \(model) on \(geometry.title) (\(geometry.shape), "
                            + "\(geometry.classes) classes): \(error)")
                }
            } catch let error as ModelError {
                let subject = error.file == nil ? "--model \(model): " : ""
                throw ToolError(code: Exit.usage, description: "\(subject)\(error)")
            }
            if json {
                print(String(decoding: try JSONEncoder.sorted.encode(Listing(summary, geometry)), as: UTF8.self))
            } else {
                print(table(summary, geometry))
            }
        }
    }

    private func table(_ summary: NetworkSummary, _ geometry: InputGeometry) -> String {
        var rows = [["layer", "operation", "output", "parameters", "multiply-adds"]]
        for layer in summary.layers {
            rows.append([
                String(repeating: "  ", count: layer.depth) + layer.path, layer.operation, layer.output.description,
                grouped(layer.parameters.filter { $0.role == .learned }.reduce(0) { $0 + $1.count }),
                grouped(layer.multiplyAdds),
            ])
        }
        let widths = (0..<5).map { column in rows.map { $0[column].count }.max()! }
        var lines = [
            "\(summary.name) on \(geometry.title): input \(summary.input) per image, \(geometry.classes) classes", "",
        ]
        for row in rows {
            let cells = row.enumerated().map { column, text in
                let pad = String(repeating: " ", count: widths[column] - text.count)
                return column < 3 ? text + pad : pad + text
            }
            lines.append(
                cells.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression))
        }
        let bufferTensors = summary.parameters.filter { $0.role == .buffer }.count
        let skipped = summary.layers.filter { $0.multiplyAdds > 0 && !$0.inputGradientNeeded }.map(\.path)
        let gflop = summary.trainingFLOPs(images: geometry.trainingImages) / 1e9
        lines += [
            "",
            "parameters (learned):            \(grouped(summary.learnedParameterCount))",
            "buffers:                         "
                + (bufferTensors == 0
                    ? "none"
                    : "\(grouped(summary.bufferElementCount)) elements in \(bufferTensors) tensors "
                        + "(BatchNorm running_mean, running_var, num_batches_tracked)"),
            "multiply-adds per image forward: \(grouped(summary.multiplyAdds)) "
                + "(\(String(format: "%.2f", Double(summary.multiplyAdds) / 1e6)) M; conv and linear)",
            "training work per epoch:         \(grouped(gflop, decimals: 1)) GFLOP = \(grouped(geometry.trainingImages)) "
                + "images × \(grouped(summary.trainingFLOPsPerImage)) FLOP (2 × (forward + weight gradient + input "
                + "gradient) multiply-adds"
                + (skipped.isEmpty ? ")" : "; no input gradient for \(skipped.joined(separator: ", ")))"),
        ]
        if tensors {
            lines += ["", "state_dict:"]
            let nameWidth = summary.parameters.map(\.name.count).max() ?? 0
            for p in summary.parameters {
                let shape = "[" + p.shape.map(String.init).joined(separator: ", ") + "]"
                lines.append(
                    "  \(p.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0))  "
                        + "\(shape.padding(toLength: 16, withPad: " ", startingAt: 0))  \(p.role.rawValue)  \(p.elementType.rawValue)"
                )
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// 3350.98 → "3,351.0" for one decimal.
private func grouped(_ x: Double, decimals: Int) -> String {
    let text = String(format: "%.\(decimals)f", x)
    let parts = text.split(separator: ".", maxSplits: 1)
    guard let whole = Int(parts[0]) else { return text }
    return grouped(whole) + (parts.count > 1 ? ".\(parts[1])" : "")
}

/// 77754 → "77,754".
private func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(d)
    }
    return (n < 0 ? "-" : "") + out
}

/// `describe --json`.
private struct Listing: Encodable {
    struct Tensor: Encodable {
        var name: String
        var shape: [Int]
        var role: String
        var dtype: String
    }
    struct Layer: Encodable {
        var path: String
        var depth: Int
        var operation: String
        var input: [Int]
        var output: [Int]
        var parameters: Int
        var multiplyAdds: Int
        var inputGradientNeeded: Bool
        var tensors: [Tensor]
    }
    var model: String
    var dataset: String
    var input: [Int]
    var output: [Int]
    var classes: Int
    var layers: [Layer]
    var learnedParameters: Int
    var bufferElements: Int
    var multiplyAddsPerImage: Int
    var trainingFLOPsPerImage: Int
    var trainingImages: Int
    var trainingGFLOPPerEpoch: Double

    init(_ s: NetworkSummary, _ g: InputGeometry) {
        model = s.name
        dataset = g.name
        input = s.input.dimensions
        output = s.output.dimensions
        classes = g.classes
        layers = s.layers.map { l in
            Layer(
                path: l.path, depth: l.depth, operation: l.operation, input: l.input.dimensions,
                output: l.output.dimensions,
                parameters: l.parameters.filter { $0.role == .learned }.reduce(0) { $0 + $1.count },
                multiplyAdds: l.multiplyAdds, inputGradientNeeded: l.inputGradientNeeded,
                tensors: l.parameters.map {
                    Tensor(name: $0.name, shape: $0.shape, role: $0.role.rawValue, dtype: $0.elementType.rawValue)
                })
        }
        learnedParameters = s.learnedParameterCount
        bufferElements = s.bufferElementCount
        multiplyAddsPerImage = s.multiplyAdds
        trainingFLOPsPerImage = s.trainingFLOPsPerImage
        trainingImages = g.trainingImages
        trainingGFLOPPerEpoch = s.trainingFLOPs(images: g.trainingImages) / 1e9
    }
}
