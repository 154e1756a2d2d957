import ArgumentParser
import Foundation
import GPUNet
import Models
import NetIO

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Test accuracy, per-class accuracy and the confusion matrix of a checkpoint.")

    @OptionGroup var device: DeviceOption
    @OptionGroup var model: ModelOption
    @OptionGroup var data: DataOptions

    @Option(help: "A checkpoint.safetensors written by `convsvd train`.")
    var checkpoint: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        try reportingErrors {
            let url = URL(fileURLWithPath: checkpoint)
            let result: Evaluation
            if model.isTiny {
                let checkpoint = try Checkpoint.read(from: url, requireFinite: true)
                let test = try data.load().test
                let network = try TinyConvNet(device: device.make())
                try network.load(checkpoint.weights)
                result = try Evaluation.run(network: network, on: test)
            } else {
                let kind = try data.kind()
                let description = try model.description(for: kind)
                let plan = try NetworkPlan(
                    description, channels: kind.inputShape.channels, height: kind.inputShape.height,
                    width: kind.inputShape.width, classes: kind.classCount, device: device.make())
                let expected = try plan.checkpointTensors().map { (name: $0.name, shape: $0.shape) }
                let checkpoint = try Checkpoint.read(
                    from: url, model: expected, modelName: description.name, requireFinite: true)
                try plan.load(checkpointTensors: checkpoint.tensors)
                result = try Evaluation.run(network: plan, on: try data.load(forModel: model.model).test)
            }
            if json {
                struct Output: Encodable {
                    var count: Int, correct: Int, accuracy: Double, meanLoss: Double
                    var perClassAccuracy: [Double], confusionMatrix: [[Int]]
                    enum CodingKeys: String, CodingKey {
                        case count, correct, accuracy
                        case meanLoss = "mean_loss"
                        case perClassAccuracy = "per_class_accuracy"
                        case confusionMatrix = "confusion_matrix"
                    }
                }
                let output = Output(
                    count: result.count, correct: result.correct, accuracy: result.accuracy,
                    meanLoss: result.meanLoss, perClassAccuracy: result.perClassAccuracy,
                    confusionMatrix: result.confusionMatrix)
                print(String(decoding: try JSONEncoder.sorted.encode(output), as: UTF8.self))
                return
            }
            print(
                String(
                    format: "test accuracy: %.2f%% (%d of %d), mean loss %.4f", 100 * result.accuracy,
                    result.correct, result.count, result.meanLoss))
            print(
                "per class:  "
                    + result.perClassAccuracy.enumerated()
                    .map { String(format: "%d %.2f%%", $0.offset, 100 * $0.element) }.joined(separator: "  "))
            print("confusion matrix (rows: label, columns: prediction)")
            print("      " + (0..<10).map { String(format: "%5d", $0) }.joined())
            for (label, row) in result.confusionMatrix.enumerated() {
                print(String(format: "%5d ", label) + row.map { String(format: "%5d", $0) }.joined())
            }
        }
    }
}
