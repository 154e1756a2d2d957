import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// ResNet-8 against PyTorch step for step. `scripts/pytorch_models.py
/// sgd-reference` (PyTorch 2.13 on the CPU) wrote the fixtures: the initial
/// state_dict (PyTorch's default initialisation, seed 0), and the state_dict
/// after 1 and after 10 SGD steps (momentum 0.9, weight decay 5e-4, lr 0.05,
/// batch 128) on the first 1,280 Fashion-MNIST training images in file
/// order, normalised (x/255 − 0.2860)/0.3530, no augmentation, train mode,
/// computed in float64. The suite itself needs no PyTorch.
///
/// Rules, per tensor (weights, BatchNorm γ, β and running statistics),
/// relative to the tensor's largest magnitude in the float64 result, on the
/// host and on each OpenCL device and kernel family:
/// - after 1 step: within 1e-4;
/// - after 10 steps: within twice the distance PyTorch's own float32 run
///   ends from float64 (resnet8-float32-spread.json), plus 1e-4. That
///   distance reaches 3.5e-2 (a BatchNorm bias): from the second step on,
///   sums of ~100,000 terms that nearly cancel (a β's gradient is Σ dy) make
///   float32 results of any implementation drift apart, so no fixed 1e-4
///   holds over ten steps, for PyTorch's float32 either.
/// num_batches_tracked is exactly the number of steps.
final class PyTorchParityTests: XCTestCase {
    func fixture(_ name: String, _ type: String = "safetensors") throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: type, subdirectory: "Fixtures"))
    }

    func testSGDStepsOfResNet8MatchPyTorch() throws {
        let sets = try DatasetLoader.locateAndLoad(kind: .fashionMNIST, explicitDirectory: nil)
        let description = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        let spread = try JSONDecoder().decode(
            [String: Double].self, from: Data(contentsOf: try fixture("resnet8-float32-spread", "json")))
        for (steps, file) in [(1, "resnet8-after-1-sgd-step"), (10, "resnet8-after-10-sgd-steps")] {
            let expected = try SafetensorsFile.read(from: try fixture(file))
            let settings = TrainingSettings(
                dataset: "fashion-mnist", model: "resnet8", epochs: 1, batchSize: 128, learningRate: 0.05,
                optimizer: .sgd(momentum: 0.9, nesterov: false, weightDecay: 5e-4), order: .file, seed: 0,
                trainLimit: 128 * steps, testLimit: 100)
            for device in try testDevices() {
                let context = "\(device.info.selector), \(steps) step(s)"
                let plan = try NetworkPlan(
                    description, channels: 1, height: 28, width: 28, classes: 10, device: device)
                let trainer = try ModelTrainer(network: plan, settings: settings, train: sets.train, test: sets.test)
                try trainer.initialise(from: try fixture("resnet8-initial"))
                XCTAssertEqual(plan.batchesTracked, 0)
                try trainer.run(outputDirectory: nil)
                XCTAssertEqual(trainer.optimizer.step, steps)
                var worst = (0.0, "")
                for tensor in try plan.checkpointTensors() {
                    let reference = try expected.floats(tensor.name, shape: tensor.shape)
                    let difference = maxRelativeToScale(tensor.values, reference.map(Double.init))
                    if difference > worst.0 { worst = (difference, tensor.name) }
                    let limit = steps == 1 ? 1e-4 : 2 * (try XCTUnwrap(spread[tensor.name], tensor.name)) + 1e-4
                    XCTAssertLessThanOrEqual(difference, limit, "\(context): \(tensor.name)")
                }
                for (name, count) in plan.checkpointCounters() {
                    XCTAssertEqual(try expected.tensor(name).integers(), [count], "\(context): \(name)")
                    XCTAssertEqual(count, Int64(steps))
                }
                print("PyTorch parity, \(context): largest difference \(worst.0) (\(worst.1))")
            }
        }
    }

    /// The fixture's initial state loads, and differs from the final one:
    /// the comparison above measures ten steps of training, not a copy.
    func testTheFixturesDiffer() throws {
        let initial = try SafetensorsFile.read(from: try fixture("resnet8-initial"))
        let final = try SafetensorsFile.read(from: try fixture("resnet8-after-10-sgd-steps"))
        let a = try initial.floats("layer2.0.conv1.weight", shape: [32, 16, 3, 3])
        let b = try final.floats("layer2.0.conv1.weight", shape: [32, 16, 3, 3])
        XCTAssertGreaterThan(maxRelativeToScale(a, b.map(Double.init)), 1e-3)
        XCTAssertEqual(try initial.tensor("bn1.num_batches_tracked").integers(), [0])
    }
}
