import GPUNet
import NetIO
import TestSupport
import XCTest

/// The host device's analytic gradients against central finite differences
/// of a float64 forward pass (`NaiveReference`'s forward loops), on small
/// inputs with odd sizes.
///
/// For a layer y = f(x) and a fixed random upstream gradient r, the scalar
/// L(x) = Σ r ⊙ f(x) has ∂L/∂x = the layer's backward applied to r, so the
/// device's backward output must match (L(x + h·eᵢ) − L(x − h·eᵢ)) / 2h.
///
/// Tolerance: 1e-5 relative to the gradient's largest magnitude.
/// - The finite differences are float64. For the layers that are linear in
///   the perturbed argument (convolution, linear) or piecewise linear with
///   no kink within h (ReLU with |x| ≥ 0.05, max-pool with window values
///   ≥ 0.01 apart), the central difference is exact but for rounding,
///   ~1e-16·|L|/h ≈ 1e-12 with h = 1e-3. For softmax cross-entropy the
///   truncation error is h²/6·|L'''| ≲ 1e-9 with h = 1e-4.
/// - The device computes in float32: each gradient entry sums at most a
///   few dozen products here, so its error is ≲ 30·6e-8 ≈ 2e-6 of the scale.
/// 1e-5 is five times that bound, and far below the error of any wrong
/// index, transpose or missing term (≥ 1e-2 of the scale for these inputs).
final class GradientCheckTests: XCTestCase {
    static let tolerance = 1e-5

    let device = HostDevice()

    /// (L(x + h·eᵢ) − L(x − h·eᵢ)) / 2h for every i.
    func centralDifferences(at x: [Double], step h: Double, _ loss: ([Double]) -> Double) -> [Double] {
        var probe = x
        return x.indices.map { i in
            probe[i] = x[i] + h
            let up = loss(probe)
            probe[i] = x[i] - h
            let down = loss(probe)
            probe[i] = x[i]
            return (up - down) / (2 * h)
        }
    }

    /// Σ r ⊙ y in float64.
    func projected(_ y: [Double], onto r: [Float]) -> Double {
        zip(y, r).reduce(0) { $0 + $1.0 * Double($1.1) }
    }

    /// Float32 values promoted exactly, so device and reference see the same inputs.
    func doubles(_ x: [Float]) -> [Double] { x.map(Double.init) }

    // MARK: Convolution

    static let conv = ConvShape(batch: 2, inChannels: 2, outChannels: 3, height: 5, width: 6)

    func testConvBackwardDataMatchesFiniteDifferences() throws {
        let s = Self.conv
        let input = randomFloats(s.inputCount, seed: 1)
        let weight = randomFloats(s.weightCount, seed: 2)
        let r = randomFloats(s.outputCount, seed: 3)
        let gradInput = try device.makeBuffer(count: s.inputCount, kind: .float32)
        try device.conv2dBackwardData(
            s, gradOutput: try device.makeBuffer(r), weight: try device.makeBuffer(weight),
            gradInput: gradInput)
        let numerical = centralDifferences(at: doubles(input), step: 1e-3) {
            projected(NaiveReference.conv2dForward(s, input: $0, weight: doubles(weight)), onto: r)
        }
        XCTAssertLessThanOrEqual(maxRelativeToScale(try device.floats(gradInput), numerical), Self.tolerance)
    }

    func testConvBackwardWeightMatchesFiniteDifferences() throws {
        let s = Self.conv
        let input = randomFloats(s.inputCount, seed: 4)
        let weight = randomFloats(s.weightCount, seed: 5)
        let r = randomFloats(s.outputCount, seed: 6)
        let gradWeight = try device.makeBuffer(count: s.weightCount, kind: .float32)
        try device.conv2dBackwardWeight(
            s, input: try device.makeBuffer(input), gradOutput: try device.makeBuffer(r),
            gradWeight: gradWeight)
        let numerical = centralDifferences(at: doubles(weight), step: 1e-3) {
            projected(NaiveReference.conv2dForward(s, input: doubles(input), weight: $0), onto: r)
        }
        XCTAssertLessThanOrEqual(maxRelativeToScale(try device.floats(gradWeight), numerical), Self.tolerance)
    }

    // MARK: Max-pool and ReLU

    /// Inputs are distinct multiples of 0.01 in shuffled order, so no 2×2
    /// window has two values within 2h = 2e-3 and the argmax does not move
    /// under the perturbation. 5×7 planes: floor mode drops a row and a column,
    /// whose gradient must be zero.
    func testMaxPoolBackwardMatchesFiniteDifferences() throws {
        let s = PoolShape(batch: 2, channels: 2, height: 5, width: 7)
        var generator = SeededRandom(seed: 7)
        let input = (0..<s.inputCount).map { Float($0) * 0.01 - 0.7 }.shuffled(using: &generator)
        let r = randomFloats(s.outputCount, seed: 8)
        let output = try device.makeBuffer(count: s.outputCount, kind: .float32)
        let argmax = try device.makeBuffer(count: s.outputCount, kind: .int32)
        let gradInput = try device.makeBuffer(count: s.inputCount, kind: .float32)
        try device.maxPool2Forward(s, input: try device.makeBuffer(input), output: output, argmax: argmax)
        try device.maxPool2Backward(s, gradOutput: try device.makeBuffer(r), argmax: argmax, gradInput: gradInput)
        let numerical = centralDifferences(at: doubles(input), step: 1e-3) {
            projected(NaiveReference.maxPool2Forward(s, input: $0).output, onto: r)
        }
        XCTAssertLessThanOrEqual(maxRelativeToScale(try device.floats(gradInput), numerical), Self.tolerance)
    }

    /// Inputs kept at least 0.05 away from the kink at zero.
    func testReluBackwardMatchesFiniteDifferences() throws {
        let count = 101
        let input = randomFloats(count, seed: 9).map { $0 >= 0 ? $0 + 0.05 : $0 - 0.05 }
        let r = randomFloats(count, seed: 10)
        let output = try device.makeBuffer(count: count, kind: .float32)
        let gradInput = try device.makeBuffer(count: count, kind: .float32)
        try device.reluForward(count: count, input: try device.makeBuffer(input), output: output)
        try device.reluBackward(
            count: count, output: output, gradOutput: try device.makeBuffer(r), gradInput: gradInput)
        let numerical = centralDifferences(at: doubles(input), step: 1e-3) {
            projected(NaiveReference.reluForward($0), onto: r)
        }
        XCTAssertLessThanOrEqual(maxRelativeToScale(try device.floats(gradInput), numerical), Self.tolerance)
    }

    // MARK: Linear layer

    /// ∂L/∂input, ∂L/∂weight and ∂L/∂bias of L = Σ r ⊙ (input·weightᵀ + bias).
    func testLinearBackwardMatchesFiniteDifferences() throws {
        let s = LinearShape(batch: 3, inFeatures: 7, outFeatures: 5)
        let input = randomFloats(s.batch * s.inFeatures, seed: 11)
        let weight = randomFloats(s.outFeatures * s.inFeatures, seed: 12)
        let bias = randomFloats(s.outFeatures, seed: 13)
        let r = randomFloats(s.batch * s.outFeatures, seed: 14)
        let gradInput = try device.makeBuffer(count: input.count, kind: .float32)
        let gradWeight = try device.makeBuffer(count: weight.count, kind: .float32)
        let gradBias = try device.makeBuffer(count: bias.count, kind: .float32)
        try device.linearBackward(
            s, input: try device.makeBuffer(input), weight: try device.makeBuffer(weight),
            gradOutput: try device.makeBuffer(r), gradInput: gradInput, gradWeight: gradWeight,
            gradBias: gradBias)
        let (x, w, b) = (doubles(input), doubles(weight), doubles(bias))
        let byInput = centralDifferences(at: x, step: 1e-3) {
            projected(NaiveReference.linearForward(s, input: $0, weight: w, bias: b), onto: r)
        }
        let byWeight = centralDifferences(at: w, step: 1e-3) {
            projected(NaiveReference.linearForward(s, input: x, weight: $0, bias: b), onto: r)
        }
        let byBias = centralDifferences(at: b, step: 1e-3) {
            projected(NaiveReference.linearForward(s, input: x, weight: w, bias: $0), onto: r)
        }
        XCTAssertLessThanOrEqual(maxRelativeToScale(try device.floats(gradInput), byInput), Self.tolerance, "gradInput")
        XCTAssertLessThanOrEqual(
            maxRelativeToScale(try device.floats(gradWeight), byWeight), Self.tolerance, "gradWeight")
        XCTAssertLessThanOrEqual(maxRelativeToScale(try device.floats(gradBias), byBias), Self.tolerance, "gradBias")
    }

    // MARK: Loss

    /// gradLogits against the finite differences of the mean loss over the batch.
    func testSoftmaxCrossEntropyGradientMatchesFiniteDifferences() throws {
        let (batch, classes) = (4, 7)
        let logits = randomFloats(batch * classes, scale: 3, seed: 15)
        let labels: [Int32] = [0, 6, 3, 3]
        let gradLogits = try device.makeBuffer(count: logits.count, kind: .float32)
        let perSample = try device.makeBuffer(count: 2 * batch, kind: .float32)
        try device.softmaxCrossEntropy(
            batch: batch, classes: classes, logits: try device.makeBuffer(logits),
            labels: try device.makeBuffer(labels), gradLogits: gradLogits, perSample: perSample)
        let numerical = centralDifferences(at: doubles(logits), step: 1e-4) {
            NaiveReference.softmaxCrossEntropy(batch: batch, classes: classes, logits: $0, labels: labels).meanLoss
        }
        XCTAssertLessThanOrEqual(maxRelativeToScale(try device.floats(gradLogits), numerical), Self.tolerance)
    }
}
