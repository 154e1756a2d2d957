import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// ResNet-8's training step meets its device as TinyConvNet's does: one
/// host wait per block of steps, nothing uploaded, and exactly its
/// launches, so that a change that adds one fails.
final class NetworkStepStructureTests: XCTestCase {
    /// Launches per step, counted by the device (``DeviceCounters``) over a
    /// block of 5 steps queued as training queues them (forward, backward,
    /// SGD) at batch 16: the host device 52 hand-offs to its threads (none
    /// with one core; fewer at batches of under 16, where some operations
    /// have too few images to split), the cpu family 163 kernels, the gpu
    /// family 83 (both with SGD's 29 tensors in 2 launches). The kernels do
    /// not depend on the batch (1, 4 and 128 give the same with `convsvd
    /// bench`). In the gpu family each of the 9
    /// BatchNorms is two launches forward, `gpu_batchnorm_chunk_moments`
    /// and `gpu_batchnorm_combine_apply` (the statistics combined and
    /// applied in one), and two backward, `gpu_channel_partials` (reads
    /// coalesced, never the cpu family's `channel_partials` walks) and
    /// `gpu_batchnorm_sums_backward_apply`: 36 of the 83, each in groups
    /// of 256. The weight gradients of layer3.0's two 3×3 convolutions are
    /// one chunk each, written by `gpu_conv2d_tiled_weight` with no
    /// `gpu_sum_chunks` after it: 7 of those a step for the 9 convolutions.
    func testResNet8StepLaunchesExactlyItsKernels() throws {
        let description = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        let batch = 16
        for device in try testDevices() {
            let on = device.info.summary
            let plan = try NetworkPlan(description, channels: 1, height: 28, width: 28, classes: 10, device: device)
            let w = try plan.workspace(batch: batch)
            var random = SeededRandom(seed: 5, stream: 0)
            try plan.setRandomBatch(w, random: &random)
            let optimizer = try Optimizer(
                .sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4), learningRate: 0.1,
                parameters: plan.parameterBuffers, names: plan.parameterNames, device: device)
            let openCL = device as? OpenCLDevice
            openCL?.launchLog = []
            let s = try measureTrainingSteps(plan, on: w, optimizer: optimizer, stepsPerRead: 5)
            XCTAssertEqual(s.hostWaitsPerStep, 1.0 / 5, on)
            XCTAssertEqual(s.bytesToDevicePerStep, 0, on)
            let expected: Double
            switch openCL?.kernelFamily {
            case nil: expected = ProcessInfo.processInfo.activeProcessorCount > 1 ? 52 : 0
            case .cpu: expected = 163
            case .gpu: expected = 83
            }
            XCTAssertEqual(s.launchesPerStep, expected, on)
            if let log = openCL?.launchLog, openCL?.kernelFamily == .gpu {
                let perStep = Dictionary(grouping: log, by: \.kernel).mapValues { Double($0.count) / 5 }
                let batchNorm = [
                    "gpu_batchnorm_chunk_moments", "gpu_batchnorm_combine_apply", "gpu_channel_partials",
                    "gpu_batchnorm_sums_backward_apply",
                ]
                for kernel in batchNorm { XCTAssertEqual(perStep[kernel], 9, "\(on) \(kernel)") }
                XCTAssertEqual(perStep["gpu_conv2d_tiled_weight"], 9, on)
                XCTAssertEqual(perStep["gpu_sum_chunks"], 7, on)
                XCTAssertEqual(perStep["sgd_momentum_step"], 2, on)
                for kernel in ["batchnorm_combine_moments", "gpu_batchnorm_apply", "channel_partials"] {
                    XCTAssertNil(perStep[kernel], "\(on) \(kernel)")
                }
                for launch in log where batchNorm.contains(launch.kernel) {
                    XCTAssertEqual(launch.localSize, 256, "\(on) \(launch.kernel): a chunk is 1,024 values")
                }
            }
            openCL?.launchLog = nil
        }
    }
}
