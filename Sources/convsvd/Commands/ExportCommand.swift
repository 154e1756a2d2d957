import ArgumentParser
import Foundation
import Models
import NetIO

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract:
            "Write a checkpoint's tensors to a new safetensors file (atomically), e.g. the weights alone for PyTorch.",
        discussion: """
            With --weights-only the file holds the model's state_dict under PyTorch's names and layouts \
            and nothing else (TinyConvNet: conv1.weight, conv2.weight, fc.weight and fc.bias; a ResNet \
            its BatchNorm running statistics and num_batches_tracked too), so that \
            model.load_state_dict(safetensors.torch.load_file(path), strict=True) accepts it \
            (scripts/pytorch_models.py check-export FILE MODEL does exactly that). Without it, the \
            optimiser state is kept too (a verified copy). The checkpoint is checked first (the \
            model's tensors and shapes, finite values); --model and --dataset name the model.
            """)

    @Option(help: "A checkpoint.safetensors written by `convsvd train`.")
    var checkpoint: String

    @OptionGroup var model: ModelOption

    @Option(
        help: "The dataset the model was built for (its input channels and classes): mnist | fashion-mnist | cifar10.")
    var dataset: String = "mnist"

    @Flag(name: .customLong("weights-only"), help: "Only the model's state_dict, no optimiser state.")
    var weightsOnly = false

    @Option(help: "The safetensors file to write.")
    var out: String

    func run() throws {
        try reportingErrors {
            let source = URL(fileURLWithPath: checkpoint)
            let target = URL(fileURLWithPath: out)
            let read: Checkpoint
            if model.isTiny {
                read = try Checkpoint.read(from: source, requireFinite: true)
            } else {
                let kind = try DataOptions.kind(named: dataset)
                let description = try model.description(for: kind)
                // PyTorch's state_dict order: each BatchNorm's statistics beside its γ and β.
                let tensors = try description.summary(input: InputGeometry(kind).shape, classes: kind.classCount)
                    .parameters.filter { $0.elementType == .float32 }.map { (name: $0.name, shape: $0.shape) }
                read = try Checkpoint.read(
                    from: source, model: tensors, modelName: description.name, requireFinite: true)
            }
            if Self.sameFile(source, target) {
                throw ValidationError("--out \(out) is the checkpoint being exported; give another file")
            }
            let exported = weightsOnly ? read.weightsOnly : read
            try exported.write(to: target)
            log("wrote \(target.path): " + exported.safetensors.tensors.map(\.name).joined(separator: ", "))
        }
    }

    /// Whether both paths name one existing file (the same device and inode).
    static func sameFile(_ a: URL, _ b: URL) -> Bool {
        var sa = stat()
        var sb = stat()
        guard stat(a.path, &sa) == 0, stat(b.path, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }
}
