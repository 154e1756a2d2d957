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
/// - after 1 step: within 1e-4, and BatchNorm β within 1e-3. β starts at 0,
///   so after one step its largest magnitude is the step itself, lr·|Σ dy|,
///   a sum of ~100,000 terms that nearly cancels: the check is 1e-4 of one
///   gradient, not of a weight. There a single ReLU input at the kink
///   decides the last digits. Measured: in the gpu family, one of the
///   1.6 M inputs of layer1.0.bn1's ReLU (channel 0, image 18) is 6.6e-10
///   against a typical 0.58, where the other runs give ≤ 0. Its ReLU passes
///   it, and layer1.0.bn1.β lands 2.7e-4 from PyTorch (bn1.β 2.2e-4
///   through it). Putting back the earlier, less exact σ of the stem's
///   BatchNorm (1.2e-6 from the float64 σ of the same inputs, against
///   7e-8) flips that input and brings both within 1e-5.
/// - after 10 steps: within three times the distance PyTorch's own float32
///   run ends from float64 (resnet8-float32-spread.json), plus 1e-4. That
///   distance reaches 3.5e-2 (a BatchNorm bias): from the second step on,
///   sums of ~100,000 terms that nearly cancel (a β's gradient is Σ dy) make
///   float32 results of any implementation drift apart, so no fixed 1e-4
///   holds over ten steps, for PyTorch's float32 either. The measured
///   multiple is printed: up to 2.5 in the gpu family, after the tie above.
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
                var multiple = 0.0
                for tensor in try plan.checkpointTensors() {
                    let reference = try expected.floats(tensor.name, shape: tensor.shape)
                    let difference = maxRelativeToScale(tensor.values, reference.map(Double.init))
                    if difference > worst.0 { worst = (difference, tensor.name) }
                    let limit: Double
                    if steps == 1 {
                        limit = Self.isBatchNormBias(tensor.name) ? 1e-3 : 1e-4
                    } else {
                        let pytorch = try XCTUnwrap(spread[tensor.name], tensor.name)
                        limit = 3 * pytorch + 1e-4
                        if pytorch > 0 { multiple = max(multiple, (difference - 1e-4) / pytorch) }
                    }
                    XCTAssertLessThanOrEqual(difference, limit, "\(context): \(tensor.name)")
                }
                for (name, count) in plan.checkpointCounters() {
                    XCTAssertEqual(try expected.tensor(name).integers(), [count], "\(context): \(name)")
                    XCTAssertEqual(count, Int64(steps))
                }
                print(
                    "PyTorch parity, \(context): largest difference \(worst.0) (\(worst.1))"
                        + (steps == 1 ? "" : "; largest (difference − 1e-4) / PyTorch float32's \(multiple)"))
            }
        }
    }

    /// Whether `name` is a BatchNorm β ("bn1.bias", "layer2.0.downsample.1.bias").
    static func isBatchNormBias(_ name: String) -> Bool {
        name.hasSuffix(".bias") && (name.contains("bn") || name.contains("downsample.1"))
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
