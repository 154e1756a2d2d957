import ArgumentParser
import Foundation
import GPUNet
import NetIO

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract:
            "Train a model (TinyConvNet by default); write checkpoint.safetensors, metrics.json and metrics.csv after every epoch."
    )

    @OptionGroup var device: DeviceOption
    @OptionGroup var model: ModelOption
    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var distributed: DistributedOptions

    @Option(help: "Output folder.")
    var out: String = "outputs"

    @Flag(help: "Continue from the last finished epoch in --out.")
    var resume = false

    @Option(
        name: .customLong("init"),
        help:
            "Start from the model tensors of a safetensors file: a checkpoint, or a PyTorch state_dict under PyTorch's names."
    )
    var initial: String?

    func validate() throws {
        if resume && initial != nil { throw ValidationError("--init and --resume exclude each other") }
    }

    func run() throws {
        try reportingErrors {
            let settings = try training.settings(dataset: data.dataset, model: model.model, svdAllowed: true)
            if !model.isTiny { _ = try model.description(for: try data.kind()) }
            let group = try distributed.join()
            try data.requireFits(model: model.model)
            let directory = try prepareOutputDirectory(out, lock: (group?.rank ?? 0) == 0)
            if settings.svd != nil {
                guard group == nil else {
                    throw ValidationError("--parameterization svd trains in one process (no mpirun)")
                }
                try Training.runSVD(
                    model: model, settings: settings, device: device.make(for: group), data: data,
                    directory: directory, resume: resume, initial: initial.map { URL(fileURLWithPath: $0) })
            } else if model.isTiny {
                _ = try Training.run(
                    settings: settings, device: device.make(for: group), data: data, directory: directory,
                    resume: resume, initial: initial.map { URL(fileURLWithPath: $0) }, group: group)
            } else {
                _ = try Training.run(
                    model: model, settings: settings, device: device.make(for: group), data: data,
                    directory: directory, resume: resume, initial: initial.map { URL(fileURLWithPath: $0) },
                    group: group, syncBatchNorm: distributed.syncBatchnorm)
            }
        }
    }
}
