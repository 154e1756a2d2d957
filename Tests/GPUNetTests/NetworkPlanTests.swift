import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// ``NetworkPlan`` on every test device against ``NaiveNetwork``, the same
/// description run by the float64 loops of TestSupport.
///
/// Rules: logits, per-sample losses, layer outputs and running statistics
/// within 1e-4 absolute (forward outputs); each parameter's gradient within
/// 1e-4 of that tensor's largest float64 magnitude (float32 sums over a
/// batch's positions round at ~1e-7 relative per term), except where that
/// magnitude is below 1e-12: a conv bias followed by BatchNorm in training
/// has a gradient of exactly zero (the normalisation subtracts the batch
/// mean the bias adds), which float32 leaves as rounding noise, checked to
/// be below 1e-5 absolute.
final class NetworkPlanTests: XCTestCase {
    /// conv 3×3 pad 1 with bias → BN → ReLU → a block with a stride-2
    /// projection shortcut → a block with an identity shortcut → max-pool →
    /// global average pool → flatten → linear without bias: every layer kind,
    /// both shortcuts, and a linear layer with no bias.
    static let smallResidual = NetworkDescription(
        name: "small-residual",
        layers: [
            LayerDescription(
                .conv(Conv2dSpec(inChannels: 2, outChannels: 4, kernelSize: 3, padding: 1, bias: true)), name: "conv1"),
            LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 4)), name: "bn1"),
            LayerDescription(.relu, name: "relu"),
            LayerDescription(
                .residual(
                    ResidualBlockSpec(
                        body: [
                            LayerDescription(
                                .conv(
                                    Conv2dSpec(
                                        inChannels: 4, outChannels: 6, kernelSize: 3, stride: 2, padding: 1,
                                        bias: false)), name: "conv1"),
                            LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 6)), name: "bn1"),
                            LayerDescription(.relu, name: "relu"),
                            LayerDescription(
                                .conv(
                                    Conv2dSpec(inChannels: 6, outChannels: 6, kernelSize: 3, padding: 1, bias: false)),
                                name: "conv2"),
                            LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 6)), name: "bn2"),
                        ],
                        shortcut: .projection([
                            LayerDescription(
                                .conv(Conv2dSpec(inChannels: 4, outChannels: 6, kernelSize: 1, stride: 2, bias: false))),
                            LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 6))),
                        ]))), name: "layer1.0"),
            LayerDescription(
                .residual(
                    ResidualBlockSpec(body: [
                        LayerDescription(
                            .conv(Conv2dSpec(inChannels: 6, outChannels: 6, kernelSize: 5, padding: 2, bias: true)),
                            name: "conv1"),
                        LayerDescription(.relu, name: "relu"),
                    ])), name: "layer1.1"),
            LayerDescription(.maxPool2, name: "pool"),
            LayerDescription(.globalAveragePool, name: "avgpool"),
            LayerDescription(.flatten, name: "flatten"),
            LayerDescription(.linear(LinearSpec(inFeatures: 6, outFeatures: 3, bias: false)), name: "fc"),
        ])

    func testSmallResidualNetworkMatchesTheFloat64NetworkOnEveryDevice() throws {
        try compare(Self.smallResidual, channels: 2, height: 9, width: 9, classes: 3, batch: 3, seed: 1)
    }

    /// Residual sums whose addends' gradients share the sum's buffer
    /// (``NetworkPlan/sharedGradients(_:activations:needsGradient:)``) where
    /// the body's first operation also reads the body's output gradient: a
    /// BatchNorm alone as the body (it reads the shared buffer, then adds the
    /// block input's second gradient into it), a body that starts with a
    /// ReLU, and a body of conv and BatchNorm, as in a ResNet.
    static let residualSums = NetworkDescription(
        name: "residual-sums",
        layers: [
            LayerDescription(
                .conv(Conv2dSpec(inChannels: 2, outChannels: 4, kernelSize: 3, padding: 1, bias: false)), name: "conv1"),
            LayerDescription(
                .residual(
                    ResidualBlockSpec(body: [LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 4)), name: "bn")])),
                name: "layer1.0"),
            LayerDescription(
                .residual(
                    ResidualBlockSpec(body: [
                        LayerDescription(.relu, name: "relu"),
                        LayerDescription(
                            .conv(Conv2dSpec(inChannels: 4, outChannels: 4, kernelSize: 1, bias: false)), name: "conv1"),
                    ])), name: "layer1.1"),
            LayerDescription(
                .residual(
                    ResidualBlockSpec(body: [
                        LayerDescription(
                            .conv(Conv2dSpec(inChannels: 4, outChannels: 4, kernelSize: 3, padding: 1, bias: false)),
                            name: "conv1"),
                        LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 4)), name: "bn1"),
                    ])), name: "layer1.2"),
            LayerDescription(.relu, name: "relu"),
            LayerDescription(.globalAveragePool, name: "avgpool"),
            LayerDescription(.flatten, name: "flatten"),
            LayerDescription(.linear(LinearSpec(inFeatures: 4, outFeatures: 3, bias: true)), name: "fc"),
        ])

    func testResidualSumsShareTheirGradientBuffer() throws {
        try compare(Self.residualSums, channels: 2, height: 6, width: 5, classes: 3, batch: 3, seed: 4)
    }

    /// Batch 1 of the small network: BatchNorm after the stride-2 convs sees
    /// 5×5 values a channel, enough for its unbiased variance.
    func testBatchOfOne() throws {
        try compare(Self.smallResidual, channels: 2, height: 9, width: 9, classes: 3, batch: 1, seed: 2)
    }

    /// ResNet-8 (He et al. §4.2) on two MNIST-sized images.
    func testResNet8MatchesTheFloat64NetworkOnEveryDevice() throws {
        let resnet8 = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        try compare(resnet8, channels: 1, height: 28, width: 28, classes: 10, batch: 2, seed: 3)
    }

    /// Runs the plan in training mode (forward, backward) and in eval mode
    /// on each device and compares with the float64 network.
    private func compare(
        _ description: NetworkDescription, channels: Int, height: Int, width: Int, classes: Int, batch: Int,
        seed: UInt64, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let reference = try NaiveNetwork(
            description, input: (channels: channels, height: height, width: width), classes: classes)
        let parameters = reference.sampleParameters(seed: seed)
        var random = SeededRandom(seed: seed &+ 100)
        let images = (0..<(batch * channels * height * width)).map { _ in Double.random(in: -1...1, using: &random) }
        let labels = (0..<batch).map { _ in Int32(random.uniform(below: classes)) }
        let training = reference.run(
            images: images, labels: labels, batch: batch, parameters: parameters, training: true)
        let eval = reference.run(images: images, labels: labels, batch: batch, parameters: parameters, training: false)

        for device in try testDevices() {
            let context = "\(description.name) batch \(batch) on \(device.info.selector)"
            let plan = try NetworkPlan(
                description, channels: channels, height: height, width: width, classes: classes, device: device)
            let state = Dictionary(
                uniqueKeysWithValues: (plan.parameters + plan.statistics).map {
                    ($0.name, (shape: $0.shape, values: parameters[$0.name]!.map(Float.init)))
                })
            try plan.load(state)
            let w = try plan.workspace(batch: batch)
            try plan.setBatch(w, images: images.map(Float.init), labels: labels)
            try plan.forward(w, training: true)
            try plan.backward(w)
            XCTAssertLessThanOrEqual(
                maxAbsoluteDifference(try device.floats(w.logits), training.logits), 1e-4,
                "\(context): training logits",
                file: file, line: line)
            XCTAssertLessThanOrEqual(
                maxAbsoluteDifference(Array(try device.floats(w.perSample).prefix(batch)), training.lossPerSample),
                1e-4,
                "\(context): losses", file: file, line: line)
            for (p, g) in zip(plan.parameters, plan.gradients) {
                let expected = training.gradients[p.name]!
                if expected.map(abs).max()! < 1e-12 {
                    XCTAssertLessThanOrEqual(
                        maxAbsoluteDifference(try device.floats(g), expected), 1e-5,
                        "\(context): gradient of \(p.name), zero in float64", file: file, line: line)
                } else {
                    XCTAssertLessThanOrEqual(
                        maxRelativeToScale(try device.floats(g), expected), 1e-4,
                        "\(context): gradient of \(p.name)", file: file, line: line)
                }
            }
            for s in plan.statistics {
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(try device.floats(s.buffer), training.runningStatistics[s.name]!), 1e-4,
                    "\(context): \(s.name) after the training pass", file: file, line: line)
            }
            XCTAssertEqual(plan.batchesTracked, 1, context, file: file, line: line)
            // Layer by layer in training mode, where a path names one output: the outputs of the
            // BatchNorms and sums that the training pass fused a ReLU into are computed when asked.
            for (row, output) in zip(reference.summary.layers, training.layerOutputs)
            where reference.summary.layers.filter({ $0.path == row.path }).count == 1 {
                guard let values = try plan.activation(w, path: row.path) else { continue }
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(values, output), 1e-4, "\(context): training output of \(row.path)",
                    file: file, line: line)
            }

            // Eval mode from the original running statistics.
            try plan.load(state)
            try plan.forward(w, training: false)
            XCTAssertLessThanOrEqual(
                maxAbsoluteDifference(try device.floats(w.logits), eval.logits), 1e-4, "\(context): eval logits",
                file: file, line: line)
            for s in plan.statistics {
                XCTAssertEqual(
                    try device.floats(s.buffer), parameters[s.name]!.map(Float.init),
                    "\(context): eval mode leaves \(s.name) alone", file: file, line: line)
            }
            // Layer by layer, where a path names one output.
            for (row, output) in zip(reference.summary.layers, eval.layerOutputs)
            where reference.summary.layers.filter({ $0.path == row.path }).count == 1 {
                guard let values = try plan.activation(w, path: row.path) else { continue }
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(values, output), 1e-4, "\(context): eval output of \(row.path)",
                    file: file, line: line)
            }
        }
    }

    /// The tensor names and shapes are the description's `state_dict`, in order.
    func testParametersAreTheStateDictInOrder() throws {
        let resnet8 = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        let plan = try NetworkPlan(resnet8, channels: 1, height: 28, width: 28, classes: 10, device: HostDevice())
        let summary = try resnet8.summary(input: .map(channels: 1, height: 28, width: 28), classes: 10)
        XCTAssertEqual(plan.parameters.map(\.name), summary.parameters.filter { $0.role == .learned }.map(\.name))
        XCTAssertEqual(
            plan.statistics.map(\.name),
            summary.parameters.filter { $0.role == .buffer && $0.elementType == .float32 }.map(\.name))
        XCTAssertEqual(plan.parameters.reduce(0) { $0 + $1.count }, 77_754)
        XCTAssertEqual(plan.parameters.first?.name, "conv1.weight")
        XCTAssertEqual(plan.parameters.last?.name, "fc.bias")
    }

    /// PyTorch's defaults: weights and conv/linear biases uniform within
    /// ±1/√fan_in (and spread over most of it), BatchNorm γ = 1, β = 0,
    /// running mean 0 and variance 1.
    func testInitialisationFollowsPyTorchsDefaults() throws {
        let plan = try NetworkPlan(
            Self.smallResidual, channels: 2, height: 9, width: 9, classes: 3, device: HostDevice())
        try plan.initialise(seed: 5)
        let fanIns: [String: Int] = [
            "conv1.weight": 18, "conv1.bias": 18, "layer1.0.conv1.weight": 36, "layer1.0.conv2.weight": 54,
            "layer1.0.downsample.0.weight": 4, "layer1.1.conv1.weight": 150, "layer1.1.conv1.bias": 150,
            "fc.weight": 6,
        ]
        for p in plan.parameters {
            let values = try plan.device.floats(p.buffer)
            if let fanIn = fanIns[p.name] {
                let bound = 1 / Float(fanIn).squareRoot()
                XCTAssertLessThanOrEqual(values.map(abs).max()!, bound, p.name)
                if values.count >= 18 { XCTAssertGreaterThan(values.map(abs).max()!, 0.7 * bound, p.name) }
            } else {
                let expected: Float = p.name.hasSuffix(".weight") ? 1 : 0
                XCTAssertEqual(values, [Float](repeating: expected, count: p.count), "BatchNorm \(p.name)")
            }
        }
        for s in plan.statistics {
            let expected: Float = s.name.hasSuffix(".running_var") ? 1 : 0
            XCTAssertEqual(try plan.device.floats(s.buffer), [Float](repeating: expected, count: s.count), s.name)
        }
        XCTAssertEqual(Set(fanIns.keys).count + 8, plan.parameters.count, "every learned tensor is checked")
    }

    /// Another architecture's weights: the first tensor that does not fit is named, with both shapes.
    func testLoadNamesTheFirstTensorThatDoesNotFit() throws {
        let device = HostDevice()
        let resnet8 = try NetworkPlan(
            try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10)), channels: 1, height: 28,
            width: 28,
            classes: 10, device: device)
        let resnet20 = try NetworkPlan(
            try XCTUnwrap(BuiltinModels.named("resnet20", inputChannels: 1, classes: 10)), channels: 1, height: 28,
            width: 28,
            classes: 10, device: device)
        let state8 = Dictionary(
            uniqueKeysWithValues: try resnet8.stateDict().map { ($0.name, (shape: $0.shape, values: $0.values)) })
        XCTAssertThrowsError(try resnet20.load(state8)) { error in
            XCTAssertEqual(error as? NetworkPlanError, .missingTensor("layer1.1.conv1.weight"))
        }
        var wrong = state8
        wrong["conv1.weight"] = (shape: [16, 3, 3, 3], values: [Float](repeating: 0, count: 432))
        XCTAssertThrowsError(try resnet8.load(wrong)) { error in
            XCTAssertEqual(
                error as? NetworkPlanError,
                .shapeMismatch(name: "conv1.weight", expected: [16, 1, 3, 3], found: [16, 3, 3, 3]))
            XCTAssertTrue("\(error)".contains("conv1.weight"), "\(error)")
        }
    }

    /// SGD with Nesterov momentum on the plan's tensors: over twenty steps on
    /// a fixed batch of real MNIST images the small network's loss falls at
    /// every step and ends below 80% of where it started (measured: 2.51 →
    /// 1.85); a wrong gradient sign makes it rise.
    func testSGDOnThePlanLowersTheLossOnAFixedBatch() throws {
        let dir = try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set")
        let test = try MNISTLoader.load(kind: .mnist, directory: dir).test
        let description = NetworkDescription(
            name: "mnist-residual",
            layers: [
                LayerDescription(
                    .conv(Conv2dSpec(inChannels: 1, outChannels: 8, kernelSize: 3, stride: 2, padding: 1, bias: false)),
                    name: "conv1"),
                LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 8)), name: "bn1"),
                LayerDescription(.relu, name: "relu"),
            ]
                + Self.smallResidual.layers.suffix(5).map { layer in
                    // The identity block, pooling and a linear layer sized for 8 channels and 10 classes.
                    switch layer.kind {
                    case .residual:
                        return LayerDescription(
                            .residual(
                                ResidualBlockSpec(body: [
                                    LayerDescription(
                                        .conv(Conv2dSpec(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1)),
                                        name: "conv1"),
                                    LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 8)), name: "bn1"),
                                ])), name: "layer1.0")
                    case .linear:
                        return LayerDescription(.linear(LinearSpec(inFeatures: 8, outFeatures: 10)), name: "fc")
                    default: return layer
                    }
                })
        let device = HostDevice()
        let plan = try NetworkPlan(description, channels: 1, height: 28, width: 28, classes: 10, device: device)
        try plan.initialise(seed: 1)
        let optimizer = try Optimizer(
            .sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4), learningRate: 0.1,
            parameters: plan.parameters.map(\.buffer), names: plan.parameters.map(\.name), device: device)
        let w = try plan.workspace(batch: 64)
        try plan.setBatch(
            w, images: test.normalizedImages(0..<64), labels: (0..<64).map { Int32(test.labels[$0]) })
        var losses: [Double] = []
        for _ in 0..<20 {
            try plan.forward(w, training: true)
            losses.append(try plan.requestBatchResult(w).value().lossSum / 64)
            try plan.backward(w)
            try optimizer.update(parameters: plan.parameters.map(\.buffer), gradients: plan.gradients)
        }
        XCTAssertLessThan(losses.last!, 0.8 * losses.first!, "losses \(losses)")
        XCTAssertTrue(zip(losses, losses.dropFirst()).allSatisfy { $1 < $0 }, "losses \(losses)")
        XCTAssertEqual(plan.batchesTracked, 20)
    }

    /// A small residual network for 28×28 MNIST digits: conv (stride 2) →
    /// BN → ReLU → an identity block → max-pool → global average pool → fc.
    static let mnistResidual = NetworkDescription(
        name: "mnist-residual",
        layers: [
            LayerDescription(
                .conv(Conv2dSpec(inChannels: 1, outChannels: 8, kernelSize: 3, stride: 2, padding: 1, bias: false)),
                name: "conv1"),
            LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 8)), name: "bn1"),
            LayerDescription(.relu, name: "relu"),
            LayerDescription(
                .residual(
                    ResidualBlockSpec(body: [
                        LayerDescription(
                            .conv(Conv2dSpec(inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1)),
                            name: "conv1"),
                        LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 8)), name: "bn1"),
                    ])), name: "layer1.0"),
            LayerDescription(.maxPool2, name: "pool"),
            LayerDescription(.globalAveragePool, name: "avgpool"),
            LayerDescription(.flatten, name: "flatten"),
            LayerDescription(.linear(LinearSpec(inFeatures: 8, outFeatures: 10)), name: "fc"),
        ])

    /// TinyConvNet trains through its own class (conv, ReLU and max-pool in
    /// one operation, the pooled gradients, the fused step), not through a
    /// plan of its description (docs/architecture.md says why). The two
    /// paths must stay one network: on every device, for 64 MNIST images
    /// from the same weights, the plan's logits (training pass, and the
    /// eval pass with its fused layers) agree with the class's within 1e-4
    /// absolute, and each parameter's gradient within 1e-4 of that
    /// gradient's largest magnitude (the parity rules).
    func testTinyConvNetsClassAndAPlanOfItsDescriptionAgree() throws {
        let data = try mnist().train
        let batch = 64
        let images = data.normalizedImages(0..<batch)
        let labels = (0..<batch).map { Int32(data.labels[$0]) }
        for device in [HostDevice() as any Device] + (try openCLTestDevices()) {
            let name = device.info.selector
            let plan = try NetworkPlan(
                BuiltinModels.tinyConvNet(), channels: 1, height: 28, width: 28, classes: 10, device: device)
            try plan.initialise(seed: 5)
            let state = Dictionary(uniqueKeysWithValues: try plan.stateDict().map { ($0.name, $0.values) })
            let tiny = try TinyConvNet(device: device)
            try tiny.load(
                TinyConvNetWeights(
                    conv1: try XCTUnwrap(state["conv1.weight"]), conv2: try XCTUnwrap(state["conv2.weight"]),
                    fcWeight: try XCTUnwrap(state["fc.weight"]), fcBias: try XCTUnwrap(state["fc.bias"])))

            let t = try tiny.workspace(batch: batch)
            try tiny.setBatch(t, images: images, labels: labels)
            try tiny.forward(t)
            try tiny.backward(t)
            let tinyLogits = Array(try device.floats(t.logits).prefix(batch * 10))
            let tinyGradients = [
                ("conv1.weight", tiny.gradients.conv1), ("conv2.weight", tiny.gradients.conv2),
                ("fc.weight", tiny.gradients.fcWeight), ("fc.bias", tiny.gradients.fcBias),
            ]

            let w = try plan.workspace(batch: batch)
            try plan.setBatch(w, images: images, labels: labels)
            try plan.forward(w, training: true)
            try plan.backward(w)
            let planLogits = Array(try device.floats(w.logits).prefix(batch * 10))
            XCTAssertLessThan(maxAbsoluteDifference(planLogits, tinyLogits), 1e-4, "\(name): logits")
            XCTAssertEqual(plan.parameters.map(\.name), tinyGradients.map(\.0))
            for (p, (gradientName, buffer)) in zip(plan.gradients, tinyGradients) {
                let d = maxRelativeToScale(try device.floats(p), try device.floats(buffer))
                XCTAssertLessThan(d, 1e-4, "\(name): ∂L/∂\(gradientName)")
            }

            try plan.forward(w, training: false)
            let evalLogits = Array(try device.floats(w.logits).prefix(batch * 10))
            XCTAssertLessThan(maxAbsoluteDifference(evalLogits, tinyLogits), 1e-4, "\(name): eval logits")
        }
    }

    func mnist() throws -> (train: Dataset, test: Dataset) {
        let dir = try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set")
        return try MNISTLoader.load(kind: .mnist, directory: dir)
    }

    func planTrainer(
        on device: any Device, _ settings: TrainingSettings, _ data: (train: Dataset, test: Dataset)
    ) throws -> ModelTrainer<NetworkPlan> {
        let plan = try NetworkPlan(
            Self.mnistResidual, channels: 1, height: 28, width: 28, classes: 10, device: device)
        try plan.initialise(seed: settings.seed)
        return try ModelTrainer(network: plan, settings: settings, train: data.train, test: data.test)
    }

    /// The trainer runs a plan: ten steps of Nesterov SGD with weight decay
    /// on each OpenCL device end within 1e-4 of the host's weights and
    /// running statistics, relative to each tensor's largest magnitude (the
    /// rule of the TinyConvNet trainer test), and the warm-up pass before the
    /// first epoch leaves no trace in BatchNorm's statistics (10 tracked
    /// batches, not 12).
    func testTrainingAPlanAgreesAcrossDevices() throws {
        let data = try mnist()
        let settings = TrainingSettings(
            epochs: 1, batchSize: 64, learningRate: 0.05,
            optimizer: .sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4), seed: 11, trainLimit: 640,
            testLimit: 100)
        func train(_ device: any Device) throws -> [NamedTensor] {
            let t = try planTrainer(on: device, settings, data)
            try t.run(outputDirectory: nil)
            XCTAssertEqual(t.network.batchesTracked, 10, device.info.selector)
            XCTAssertEqual(t.history.count, 1)
            XCTAssertTrue(t.history[0].loss.isFinite && t.history[0].testAccuracy.isFinite)
            return try t.network.checkpointTensors()
        }
        let host = try train(HostDevice())
        for device in try openCLTestDevices() {
            for (a, b) in zip(try train(device), host) {
                XCTAssertEqual(a.name, b.name)
                let diff = maxRelativeToScale(a.values, b.values)
                XCTAssertLessThan(diff, 1e-4, "\(device.info.selector) vs host after 10 steps, \(a.name): \(diff)")
            }
        }
    }

    /// Two epochs in one run equal one epoch, a checkpoint, and a resumed
    /// second epoch, bit for bit on the host: weights, running statistics
    /// and the tracked-batch count all travel through the checkpoint.
    func testAResumedPlanRunEqualsAnUninterruptedOne() throws {
        let data = try mnist()
        let settings = TrainingSettings(
            epochs: 2, batchSize: 64, learningRate: 0.05, optimizer: .sgd(momentum: 0.9), seed: 4, trainLimit: 200,
            testLimit: 50)
        let whole = try planTrainer(on: HostDevice(), settings, data)
        try whole.run(outputDirectory: nil)

        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var first = settings
        first.epochs = 1
        try planTrainer(on: HostDevice(), first, data).run(outputDirectory: dir)
        let checkpoint = try SafetensorsFile.read(from: dir.appendingPathComponent("checkpoint.safetensors"))
        XCTAssertEqual(checkpoint.metadata["format"], "convsvd mnist-residual checkpoint")
        XCTAssertEqual(try checkpoint.tensor("bn1.num_batches_tracked").integers(), [4])
        XCTAssertEqual(try checkpoint.tensor("layer1.0.bn1.num_batches_tracked").integers(), [4])
        XCTAssertNotNil(checkpoint.tensors.first { $0.name == "layer1.0.bn1.running_var" })
        let resumed = try planTrainer(on: HostDevice(), settings, data)
        XCTAssertEqual(try resumed.resume(from: dir), 1)
        try resumed.run(outputDirectory: dir)
        XCTAssertEqual(try resumed.network.checkpointTensors(), try whole.network.checkpointTensors())
        XCTAssertEqual(resumed.network.batchesTracked, 8)
        XCTAssertEqual(resumed.optimizer.step, whole.optimizer.step)
    }

    /// A checkpoint of another architecture is refused naming the first
    /// tensor that does not fit: TinyConvNet's conv1.weight [8,1,3,3] is
    /// also this network's, its bn1.weight is missing.
    func testResumeRefusesAnotherArchitecture() throws {
        let data = try mnist()
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let settings = TrainingSettings(epochs: 1, seed: 4, trainLimit: 64, testLimit: 10)
        try Trainer(device: HostDevice(), settings: settings, train: data.train, test: data.test).run(
            outputDirectory: dir)
        var more = settings
        more.epochs = 2
        let plan = try planTrainer(on: HostDevice(), more, data)
        XCTAssertThrowsError(try plan.resume(from: dir)) { error in
            XCTAssertTrue("\(error)".contains("bn1.weight"), "\(error)")
        }
    }
}
