import GPUNet
import NetIO
import TestSupport
import XCTest

/// TinyConvNet forward and backward on one batch of 64 real MNIST images, on
/// every device, layer by layer against a float64 chain of naive loops
/// (`NaiveReference`), and the devices against each other. The reference
/// runs the layers in the textbook order (conv, ReLU, pool); the devices pool
/// first and apply ReLU to the pooled values, so the comparison also checks
/// that the two orders agree.
///
/// Rule: forward outputs (activations, logits, per-sample losses) within
/// 1e-4 absolute; gradients within 1e-4 relative to their tensor's largest
/// magnitude, because a weight gradient sums tens of thousands of float32
/// terms whose order differs between correct implementations.
final class TinyConvNetTests: XCTestCase {
    static let forwardTolerance = 1e-4
    static let gradientTolerance = 1e-4

    /// The float64 reference of one training step's forward and backward.
    struct ReferencePass {
        var conv1 = [Double](), relu1 = [Double](), pool1 = [Double](), conv2 = [Double](), relu2 = [Double]()
        var pool2 = [Double](), logits = [Double](), perSample = [Double]()
        var gradConv1 = [Double](), gradConv2 = [Double](), gradFcWeight = [Double](), gradFcBias = [Double]()

        init(weights: TinyConvNetWeights, images floatImages: [Float], labels: [Int32]) {
            let s = TinyConvNet.Shapes(batch: labels.count)
            let images = floatImages.map(Double.init)
            let w = (
                conv1: weights.conv1.map(Double.init), conv2: weights.conv2.map(Double.init),
                fcWeight: weights.fcWeight.map(Double.init), fcBias: weights.fcBias.map(Double.init)
            )
            conv1 = NaiveReference.conv2dForward(s.conv1, input: images, weight: w.conv1)
            relu1 = NaiveReference.reluForward(conv1)
            let p1 = NaiveReference.maxPool2Forward(s.pool1, input: relu1)
            pool1 = p1.output
            conv2 = NaiveReference.conv2dForward(s.conv2, input: pool1, weight: w.conv2)
            relu2 = NaiveReference.reluForward(conv2)
            let p2 = NaiveReference.maxPool2Forward(s.pool2, input: relu2)
            pool2 = p2.output
            logits = NaiveReference.linearForward(s.fc, input: pool2, weight: w.fcWeight, bias: w.fcBias)
            let loss = NaiveReference.softmaxCrossEntropy(
                batch: labels.count, classes: 10, logits: logits, labels: labels)
            perSample = loss.perSample
            let fc = NaiveReference.linearBackward(s.fc, input: pool2, weight: w.fcWeight, gradOutput: loss.gradLogits)
            gradFcWeight = fc.gradWeight
            gradFcBias = fc.gradBias
            let gRelu2 = NaiveReference.maxPool2Backward(s.pool2, gradOutput: fc.gradInput, argmax: p2.argmax)
            let gConv2 = NaiveReference.reluBackward(output: relu2, gradOutput: gRelu2)
            gradConv2 = NaiveReference.conv2dBackwardWeight(s.conv2, input: pool1, gradOutput: gConv2)
            let gPool1 = NaiveReference.conv2dBackwardData(s.conv2, gradOutput: gConv2, weight: w.conv2)
            let gRelu1 = NaiveReference.maxPool2Backward(s.pool1, gradOutput: gPool1, argmax: p1.argmax)
            let gConv1 = NaiveReference.reluBackward(output: relu1, gradOutput: gRelu1)
            gradConv1 = NaiveReference.conv2dBackwardWeight(s.conv1, input: images, gradOutput: gConv1)
        }
    }

    func firstBatch(_ count: Int = 64) throws -> (images: [Float], labels: [Int32]) {
        let dir = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST_DIR is not set and ../shared/data/mnist is missing")
        let test = try MNISTLoader.load(kind: .mnist, directory: dir).test
        return (test.normalizedImages(0..<count), (0..<count).map { Int32(test.labels[$0]) })
    }

    func testForwardAndBackwardMatchFloat64ReferenceOnEveryDevice() throws {
        let batch = try firstBatch()
        let weights = TinyConvNet.initialWeights(seed: 42)
        let reference = ReferencePass(weights: weights, images: batch.images, labels: batch.labels)
        for device in try testDevices() {
            let net = try TinyConvNet(device: device)
            try net.load(weights)
            let w = try net.workspace(batch: 64)
            try net.setBatch(w, images: batch.images, labels: batch.labels)
            try net.forward(w)
            try net.backward(w)
            try net.convOutputs(w)
            let name = device.info.selector
            for (layer, buffer, expected) in [
                ("conv1", w.conv1, reference.conv1),
                ("fused relu(pool(conv1)) = pool(relu(conv1))", w.relu1, reference.pool1),
                ("conv2", w.conv2, reference.conv2),
                ("fused relu(pool(conv2)) = pool(relu(conv2))", w.relu2, reference.pool2),
                ("logits", w.logits, reference.logits), ("per-sample loss", w.perSample, reference.perSample),
            ] {
                let diff = maxAbsoluteDifference(try device.floats(buffer), expected)
                XCTAssertLessThan(diff, Self.forwardTolerance, "\(name) \(layer): max |Δ| \(diff)")
            }
            for (tensor, buffer, expected) in [
                ("conv1.weight", net.gradients.conv1, reference.gradConv1),
                ("conv2.weight", net.gradients.conv2, reference.gradConv2),
                ("fc.weight", net.gradients.fcWeight, reference.gradFcWeight),
                ("fc.bias", net.gradients.fcBias, reference.gradFcBias),
            ] {
                let diff = maxRelativeToScale(try device.floats(buffer), expected)
                XCTAssertLessThan(diff, Self.gradientTolerance, "\(name) ∂loss/∂\(tensor): max |Δ|/scale \(diff)")
            }
        }
    }

    func testOpenCLMatchesHostOnARealBatch() throws {
        let devices = try openCLTestDevices()
        let batch = try firstBatch()
        let weights = TinyConvNet.initialWeights(seed: 3)
        func run(_ device: any Device) throws -> (logits: [Float], grads: [[Float]]) {
            let net = try TinyConvNet(device: device)
            try net.load(weights)
            let w = try net.workspace(batch: 64)
            try net.setBatch(w, images: batch.images, labels: batch.labels)
            try net.forward(w)
            try net.backward(w)
            return (try device.floats(w.logits), try net.gradients.all.map { try device.floats($0) })
        }
        let host = try run(HostDevice())
        for device in devices {
            let other = try run(device)
            XCTAssertLessThan(maxAbsoluteDifference(other.logits, host.logits), Self.forwardTolerance)
            for (name, (a, b)) in zip(TinyConvNet.Parameters.names, zip(other.grads, host.grads)) {
                let diff = maxRelativeToScale(a, b)
                XCTAssertLessThan(
                    diff, Self.gradientTolerance, "\(device.info.selector) vs host, ∂loss/∂\(name): \(diff)")
            }
        }
    }

    /// PyTorch's default init is U(−1/√fan_in, 1/√fan_in) for every tensor here.
    func testInitialWeightsFollowPyTorchBounds() {
        let w = TinyConvNet.initialWeights(seed: 1)
        for (values, fanIn) in [(w.conv1, 9.0), (w.conv2, 72.0), (w.fcWeight, 400.0), (w.fcBias, 400.0)] {
            let bound = 1 / fanIn.squareRoot()
            let largest = values.map { abs(Double($0)) }.max()!
            XCTAssertLessThanOrEqual(largest, bound)
            XCTAssertGreaterThan(largest, 0.8 * bound, "the draws should fill the range")
            // Uniform on ±b has standard deviation b/√3; the mean of n draws b/√(3n).
            let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
            XCTAssertLessThan(
                abs(mean), 4 * bound / (3 * Double(values.count)).squareRoot(),
                "mean within 4 standard errors of 0")
        }
        XCTAssertEqual(TinyConvNet.initialWeights(seed: 1), w, "the same seed gives the same weights")
        XCTAssertNotEqual(TinyConvNet.initialWeights(seed: 2), w)
    }
}
