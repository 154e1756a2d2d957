import GPUNet

/// ``StepStructure/measure(device:batch:stepsPerRead:step:)`` over one block
/// of `network`'s training steps on `w`, queued as the trainer queues them
/// (``TrainableNetwork/trainingStep(_:)``, then the optimiser), each step's
/// loss in its slot of the block; `w.perSample` is restored afterwards.
public func measureTrainingSteps<Network: TrainableNetwork>(
    _ network: Network, on w: Network.Workspace, optimizer: Optimizer, stepsPerRead: Int
) throws -> StepStructure {
    let own = w.perSample
    defer { w.perSample = own }
    return try StepStructure.measure(device: network.device, batch: w.batch, stepsPerRead: stepsPerRead) { slot in
        w.perSample = slot
        try network.trainingStep(w)
        try optimizer.update(parameters: network.parameterBuffers, gradients: network.gradientBuffers)
    }
}
