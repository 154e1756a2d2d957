import ArgumentParser
import Foundation
import NetIO

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract:
            "Write a checkpoint's tensors to a new safetensors file (atomically), e.g. the weights alone for PyTorch.",
        discussion: """
            With --weights-only the file holds conv1.weight, conv2.weight, fc.weight and fc.bias under \
            PyTorch's names and layouts and nothing else, so that \
            model.load_state_dict(safetensors.torch.load_file(path), strict=True) accepts it. Without it, \
            the optimiser state is kept too (a verified copy). The checkpoint is checked first (shapes, \
            finite values).
            """)

    @Option(help: "A checkpoint.safetensors written by `convsvd train`.")
    var checkpoint: String

    @Flag(name: .customLong("weights-only"), help: "Only the four model tensors, no optimiser state.")
    var weightsOnly = false

    @Option(help: "The safetensors file to write.")
    var out: String

    func run() throws {
        try reportingErrors {
            let source = URL(fileURLWithPath: checkpoint)
            let target = URL(fileURLWithPath: out)
            let read = try Checkpoint.read(from: source, requireFinite: true)
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
