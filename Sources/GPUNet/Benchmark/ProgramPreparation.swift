import Foundation

extension Benchmark {
    /// Kernel preparation of an OpenCL selection for a training step,
    /// seconds: first cold (an empty cache, and a program tag that the
    /// driver's own cache has not seen either, so the OpenCL C compiler
    /// really runs), then warm (the same kernels loaded from the cache just
    /// written). Nil for the host.
    public static func measureProgramPreparation(_ selector: DeviceSelector, kernels: KernelFamily.Choice = .auto)
        throws -> ProgramPreparation?
    {
        let entry: OpenCLDeviceEntry
        switch selector {
        case .host: return nil
        case .auto, .openCLAny:
            guard let best = try Devices.bestOpenCLEntry() else { return nil }
            entry = best
        case .openCL(let platform, let device):
            guard
                let found = try OpenCLPlatforms.entries().first(where: {
                    $0.platformIndex == platform && $0.deviceIndex == device
                })
            else {
                _ = try OpenCLDevice(platform: platform, device: device, cache: nil)  // throws the listing error
                return nil
            }
            entry = found
        }
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("convsvd-kernel-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = OpenCLProgramCache(directory: folder)
        let tag = UUID().uuidString
        let cold = try trainingStepPreparation(entry: entry, cache: cache, tag: tag, kernels: kernels)
        let warm = try trainingStepPreparation(entry: entry, cache: cache, tag: tag, kernels: kernels)
        return ProgramPreparation(
            coldSeconds: cold.seconds, warmSeconds: warm.seconds,
            kernelCount: cold.kernels)
    }

    /// Kernels are built when first launched, so the kernels a training step
    /// needs are found by running one (a batch of 64 zero images, the
    /// training pass and an Adam update: the defaults of `convsvd train`) on a new
    /// device; returns the seconds spent preparing them and their number.
    private static func trainingStepPreparation(
        entry: OpenCLDeviceEntry, cache: OpenCLProgramCache, tag: String,
        kernels: KernelFamily.Choice
    ) throws -> (seconds: Double, kernels: Int) {
        let device = try OpenCLDevice(entry: entry, cache: cache, programTag: tag, kernels: kernels)
        let settings = TrainingSettings()
        let network = try TinyConvNet(device: device)
        let optimizer = try Optimizer(
            settings.optimizer, learningRate: settings.learningRate,
            parameters: network.parameters, device: device)
        let workspace = try network.workspace(batch: settings.batchSize)
        try network.setBatch(
            workspace, images: [Float](repeating: 0, count: workspace.shapes.conv1.inputCount),
            labels: [Int32](repeating: 0, count: settings.batchSize))
        try network.trainingStep(workspace)
        try optimizer.update(parameters: network.parameters, gradients: network.gradients)
        _ = try network.batchResult(workspace)
        return (device.preparationSeconds, device.kernelPreparations.count)
    }
}
