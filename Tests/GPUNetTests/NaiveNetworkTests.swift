import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// `NaiveNetwork`, the float64 reference for any network description,
/// checked against what does not share its code: central finite differences
/// of its own mean loss (for the backward pass), the hand-written chain of
/// `NaiveReference` loops the TinyConvNet tests use (for the composition),
/// and BatchNorm's running statistics worked out by hand.
final class NaiveNetworkTests: XCTestCase {
    /// A small residual network with every layer kind, odd map sizes and
    /// PyTorch's default names (unnamed layers are "0", "1", …, a
    /// projection's "downsample.0", …), for 2×7×7 images and 3 classes:
    ///
    /// 0 conv 2→4 3×3 pad 1 +bias → 1 bn → 2 relu →
    /// 3 block [conv 4→8 3×3 stride 2 pad 1, bn, relu, conv 8→8 3×3 pad 1, bn]
    ///   + projection [conv 4→8 1×1 stride 2, bn], relu (7×7 → 4×4) →
    /// 4 block [conv 8→8 3×3 pad 1 +bias, bn, relu, conv 8→8 3×3 pad 1 +bias]
    ///   + identity, no relu →
    /// 5 maxpool 2 (4×4 → 2×2) → 6 global average pool → 7 flatten → fc linear 8→3.
    static func smallResidualNet() -> NetworkDescription {
        func conv(_ i: Int, _ o: Int, _ k: Int, stride: Int = 1, padding: Int = 0, bias: Bool = false)
            -> LayerDescription
        {
            LayerDescription(
                .conv(
                    Conv2dSpec(
                        inChannels: i, outChannels: o, kernelSize: k, stride: stride, padding: padding, bias: bias)))
        }
        func bn(_ c: Int) -> LayerDescription { LayerDescription(.batchNorm(BatchNorm2dSpec(channels: c))) }
        let relu = LayerDescription(.relu)
        let projected = ResidualBlockSpec(
            body: [conv(4, 8, 3, stride: 2, padding: 1), bn(8), relu, conv(8, 8, 3, padding: 1), bn(8)],
            shortcut: .projection([conv(4, 8, 1, stride: 2), bn(8)]), reluAfterAdd: true)
        let identity = ResidualBlockSpec(
            body: [conv(8, 8, 3, padding: 1, bias: true), bn(8), relu, conv(8, 8, 3, padding: 1, bias: true)],
            shortcut: .identity, reluAfterAdd: false)
        return NetworkDescription(
            name: "small-residual",
            layers: [
                conv(2, 4, 3, padding: 1, bias: true), bn(4), relu, LayerDescription(.residual(projected)),
                LayerDescription(.residual(identity)), LayerDescription(.maxPool2),
                LayerDescription(.globalAveragePool), LayerDescription(.flatten),
                LayerDescription(.linear(LinearSpec(inFeatures: 8, outFeatures: 3)), name: "fc"),
            ])
    }

    /// Rule: every entry of every learned tensor's gradient within 1e-6 of
    /// the central difference (L(θ + h) − L(θ − h))/2h, h = 1e-5, relative
    /// to the largest |difference| in that tensor. The difference's own
    /// error is O(h²) ≈ 1e-10 plus rounding ≈ 1e-16/h ≈ 1e-11, so 1e-6
    /// leaves room for that and none for a wrong term. In training mode
    /// each difference re-runs the whole batch, so the batch statistics'
    /// dependence on the parameter is part of what is checked.
    ///
    /// A conv bias that a BatchNorm follows ("0.bias", "4.0.bias") has
    /// gradient 0 in training: the batch mean it adds to each channel is
    /// the mean the BatchNorm subtracts. There the rule is absolute: the
    /// gradient within 1e-12 of 0 and the difference (rounding alone)
    /// within 1e-9; in eval they are checked as every other tensor.
    func checkGradientsByFiniteDifferences(training: Bool) throws {
        let net = try NaiveNetwork(Self.smallResidualNet(), input: (2, 7, 7), classes: 3)
        let batch = 3
        let parameters = net.sampleParameters(seed: 11)
        var random = SeededRandom(seed: 12)
        let images = (0..<(batch * 2 * 7 * 7)).map { _ in Double.random(in: -1...1, using: &random) }
        let labels: [Int32] = [0, 2, 1]
        func loss(_ p: [String: [Double]]) -> Double {
            net.run(images: images, labels: labels, batch: batch, parameters: p, training: training).meanLoss
        }
        let result = net.run(images: images, labels: labels, batch: batch, parameters: parameters, training: training)
        let learned = net.learnedParameters
        XCTAssertEqual(Set(result.gradients.keys), Set(learned.map(\.name)), "one gradient per learned tensor")
        for name in ["0.weight", "0.bias", "1.weight", "1.bias", "3.downsample.0.weight", "4.3.bias", "fc.bias"] {
            XCTAssertNotNil(result.gradients[name], "PyTorch's name \(name)")
        }
        let h = 1e-5
        var checked = 0
        var (worst, worstName) = (0.0, "")
        for p in learned {
            var differences = [Double](repeating: 0, count: p.count)
            for i in 0..<p.count {
                var plus = parameters
                plus[p.name]![i] += h
                var minus = parameters
                minus[p.name]![i] -= h
                differences[i] = (loss(plus) - loss(minus)) / (2 * h)
            }
            checked += p.count
            let gradient = try XCTUnwrap(result.gradients[p.name])
            let scale = differences.reduce(0.0) { max($0, abs($1)) }
            if training && ["0.bias", "4.0.bias"].contains(p.name) {
                let largest = gradient.reduce(0.0) { max($0, abs($1)) }
                XCTAssertLessThan(
                    largest, 1e-12, "training ∂L/∂\(p.name) is 0 (a BatchNorm follows): max |g| \(largest)")
                XCTAssertLessThan(scale, 1e-9, "training: the difference for \(p.name) is rounding: \(scale)")
                continue
            }
            let error = maxRelativeToScale(gradient, differences)
            if error > worst { (worst, worstName) = (error, p.name) }
            XCTAssertGreaterThan(scale, 1e-8, "\(p.name): the loss does not depend on it, the check is empty")
            XCTAssertLessThan(
                error, 1e-6, "\(training ? "training" : "eval") ∂L/∂\(p.name): max |Δ|/scale \(error), scale \(scale)")
        }
        XCTAssertEqual(checked, learned.reduce(0) { $0 + $1.count })
        print(
            "NaiveNetwork \(training ? "training" : "eval"): \(checked) gradient entries in \(learned.count) tensors,"
                + " worst max |Δ|/scale \(worst) (\(worstName))")
    }

    func testGradientsMatchFiniteDifferencesInTraining() throws {
        try checkGradientsByFiniteDifferences(training: true)
    }

    func testGradientsMatchFiniteDifferencesInEval() throws {
        try checkGradientsByFiniteDifferences(training: false)
    }

    /// TinyConvNet's description through `NaiveNetwork` against the chain of
    /// `NaiveReference` calls written out by hand in `TinyConvNetTests`
    /// (stride-1 `ConvShape` loops there, `Conv2dShape` loops here). Rule:
    /// activations, logits and losses within 1e-12 absolute, gradients
    /// within 1e-12 relative to the tensor's largest magnitude: both are
    /// float64 sums of the same terms, so only rounding may differ.
    func testTinyConvNetDescriptionMatchesTheHandWrittenReferenceChain() throws {
        let description = try XCTUnwrap(BuiltinModels.named("tiny", inputChannels: 1, classes: 10))
        let net = try NaiveNetwork(description, input: (1, 28, 28), classes: 10)
        let batch = 3
        let weights = TinyConvNet.initialWeights(seed: 7)
        let images = randomFloats(batch * 28 * 28, seed: 8)
        let labels: [Int32] = [3, 0, 9]
        let reference = TinyConvNetTests.ReferencePass(weights: weights, images: images, labels: labels)
        let parameters = [
            "conv1.weight": weights.conv1.map(Double.init), "conv2.weight": weights.conv2.map(Double.init),
            "fc.weight": weights.fcWeight.map(Double.init), "fc.bias": weights.fcBias.map(Double.init),
        ]
        XCTAssertEqual(Set(net.inputParameters.map(\.name)), Set(parameters.keys))
        let result = net.run(
            images: images.map(Double.init), labels: labels, batch: batch, parameters: parameters, training: true)
        let tolerance = 1e-12
        for (path, expected) in [
            ("conv1", reference.conv1), ("relu1", reference.relu1), ("pool1", reference.pool1),
            ("conv2", reference.conv2), ("relu2", reference.relu2), ("pool2", reference.pool2),
            ("flatten", reference.pool2), ("fc", reference.logits),
        ] {
            let output = try XCTUnwrap(result.activations[path], "no activation for \(path)")
            let diff = maxAbsoluteDifference(output, expected)
            XCTAssertLessThan(diff, tolerance, "\(path): max |Δ| \(diff)")
        }
        let logitsDiff = maxAbsoluteDifference(result.logits, reference.logits)
        XCTAssertLessThan(logitsDiff, tolerance, "logits: max |Δ| \(logitsDiff)")
        let lossDiff = maxAbsoluteDifference(result.lossPerSample, reference.perSample.prefix(batch))
        XCTAssertLessThan(lossDiff, tolerance, "per-sample loss: max |Δ| \(lossDiff)")
        let meanDiff = abs(result.meanLoss - reference.perSample.prefix(batch).reduce(0, +) / Double(batch))
        XCTAssertLessThan(meanDiff, tolerance, "mean loss: |Δ| \(meanDiff)")
        for (name, expected) in [
            ("conv1.weight", reference.gradConv1), ("conv2.weight", reference.gradConv2),
            ("fc.weight", reference.gradFcWeight), ("fc.bias", reference.gradFcBias),
        ] {
            let gradient = try XCTUnwrap(result.gradients[name], "no gradient for \(name)")
            let diff = maxRelativeToScale(gradient, expected)
            XCTAssertLessThan(diff, tolerance, "∂L/∂\(name): max |Δ|/scale \(diff)")
        }
        XCTAssertEqual(result.gradients.count, 4)
        XCTAssertTrue(result.runningStatistics.isEmpty, "TinyConvNet has no BatchNorm")
    }

    /// One BatchNorm channel over the values 1, 2, 4, 7 (batch 2 of 1×1×2
    /// images), worked out by hand: mean 3.5, Σ(x − μ)² = 21, biased
    /// variance 21/4 = 5.25, unbiased 21/3 = 7. From running mean 0.5 and
    /// variance 2, momentum 0.1 gives 0.9·0.5 + 0.1·3.5 = 0.8 and
    /// 0.9·2 + 0.1·7 = 2.5. Eval normalises by the running values and keeps
    /// them. Rule: within 1e-12 absolute (a few float64 roundings; the
    /// float32 ε moves the outputs by ~1e-13 relative).
    func testRunningStatisticsAndNormalisationByHand() throws {
        let description = NetworkDescription(
            name: "bn",
            layers: [
                LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 1)), name: "bn"),
                LayerDescription(.flatten, name: "flatten"),
                LayerDescription(.linear(LinearSpec(inFeatures: 2, outFeatures: 2)), name: "fc"),
            ])
        let net = try NaiveNetwork(description, input: (1, 1, 2), classes: 2)
        let (gamma, beta) = (1.5, -0.25)
        let parameters: [String: [Double]] = [
            "bn.weight": [gamma], "bn.bias": [beta], "bn.running_mean": [0.5], "bn.running_var": [2],
            "fc.weight": [1, 0, 0, 1], "fc.bias": [0, 0],
        ]
        let images: [Double] = [1, 2, 4, 7]
        let tolerance = 1e-12
        let eps = Double(Float(1e-5))

        let trained = net.run(images: images, labels: [0, 1], batch: 2, parameters: parameters, training: true)
        XCTAssertEqual(Set(trained.runningStatistics.keys), ["bn.running_mean", "bn.running_var"])
        XCTAssertEqual(trained.runningStatistics["bn.running_mean"]?.count, 1)
        XCTAssertEqual(trained.runningStatistics["bn.running_mean"]?[0] ?? .nan, 0.8, accuracy: tolerance)
        XCTAssertEqual(trained.runningStatistics["bn.running_var"]?[0] ?? .nan, 2.5, accuracy: tolerance)
        let normalised = images.map { gamma * ($0 - 3.5) / (5.25 + eps).squareRoot() + beta }
        let trainedDiff = maxAbsoluteDifference(try XCTUnwrap(trained.activations["bn"]), normalised)
        XCTAssertLessThan(trainedDiff, tolerance, "training bn output: max |Δ| \(trainedDiff)")
        // fc is the identity, so the logits are the normalised values.
        XCTAssertLessThan(maxAbsoluteDifference(trained.logits, normalised), tolerance)

        let evaluated = net.run(images: images, labels: [0, 1], batch: 2, parameters: parameters, training: false)
        XCTAssertEqual(evaluated.runningStatistics["bn.running_mean"], [0.5], "eval keeps the running mean")
        XCTAssertEqual(evaluated.runningStatistics["bn.running_var"], [2], "eval keeps the running variance")
        let byRunning = images.map { gamma * ($0 - 0.5) / (2 + eps).squareRoot() + beta }
        let evalDiff = maxAbsoluteDifference(try XCTUnwrap(evaluated.activations["bn"]), byRunning)
        XCTAssertLessThan(evalDiff, tolerance, "eval bn output: max |Δ| \(evalDiff)")
    }

    /// ResNet-8 on small 1×8×8 images: every summary row gets an output
    /// (including both "layer1.0.relu" rows, which share a path), every
    /// learned tensor a gradient and every BatchNorm its running statistics,
    /// under the summary's names; the losses are finite and the mean is their mean.
    func testResNet8RunsUnderTheSummaryNames() throws {
        let description = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        let net = try NaiveNetwork(description, input: (1, 8, 8), classes: 10)
        let batch = 2
        let result = net.run(
            images: randomFloats(batch * 64, seed: 3).map(Double.init), labels: [4, 7], batch: batch,
            parameters: net.sampleParameters(seed: 5), training: true)
        XCTAssertEqual(result.layerOutputs.count, net.summary.layers.count)
        for (row, output) in zip(net.summary.layers, result.layerOutputs) {
            XCTAssertEqual(output.count, batch * row.output.elementCount, "\(row.path) output size")
        }
        XCTAssertEqual(Set(result.gradients.keys), Set(net.learnedParameters.map(\.name)))
        for p in net.learnedParameters { XCTAssertEqual(result.gradients[p.name]?.count, p.count, p.name) }
        let buffers = net.summary.parameters.filter { $0.elementType == .float32 && $0.role == .buffer }
        XCTAssertEqual(Set(result.runningStatistics.keys), Set(buffers.map(\.name)))
        XCTAssertTrue(buffers.contains { $0.name == "layer2.0.downsample.1.running_var" })
        XCTAssertEqual(result.logits.count, batch * 10)
        XCTAssertTrue(result.lossPerSample.allSatisfy(\.isFinite))
        XCTAssertEqual(result.meanLoss, result.lossPerSample.reduce(0, +) / Double(batch), accuracy: 1e-12)
    }
}
