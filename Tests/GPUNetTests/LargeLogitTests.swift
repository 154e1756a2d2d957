import GPUNet
import TestSupport
import XCTest

/// Softmax cross-entropy where the logits are far apart, on every test
/// device (``testDevices()``: the host's AVX2 and portable paths, and each
/// OpenCL device in both kernel families), against `NaiveReference` in
/// float64.
///
/// exp overflows float32 above 88.7 and float64 above 709.8, and underflows
/// to 0 below −103 and −745: a softmax that does not subtract its row's
/// maximum gives ∞/∞ (NaN) for a logit of 1000 and log 0 (−∞) for a row of
/// −1000s, in either precision; the reference subtracts it.
///
/// Rules: losses within 1e-4 absolute (the largest is 1000, whose float32
/// spacing is 6.1e-5), correct flags exactly, gradients within 1e-4 of their
/// largest magnitude (1/batch here).
final class LargeLogitTests: XCTestCase {
    static let forwardTolerance = 1e-4
    static let gradientTolerance = 1e-4

    /// Rows of four classes: the saturated one of the hand-checked reference
    /// test, labelled right (loss 0) and wrong (loss 1000); all logits near
    /// −1000; and all above float32's exp limit.
    static let fourClasses: (logits: [Float], labels: [Int32]) = (
        [
            0, 0, 1000, 0,
            0, 0, 1000, 0,
            -1000, -1000, -999, -1000,
            100, 90, 80, 95,
        ],
        [2, 0, 2, 1]
    )

    /// TinyConvNet's ten classes: small random logits with one of ±1000 in
    /// a different class of each row, and one row of ten equal large logits.
    static func tenClasses(batch: Int) -> (logits: [Float], labels: [Int32]) {
        var logits = randomFloats(batch * 10, scale: 4, seed: 17)
        for b in 0..<batch { logits[b * 10 + (b * 3) % 10] = b % 2 == 0 ? 1000 : -1000 }
        for k in 0..<10 { logits[(batch - 1) * 10 + k] = 500 }
        return (logits, (0..<batch).map { Int32(($0 * 7 + 2) % 10) })
    }

    func testLargeLogitsOnEveryDevice() throws {
        let cases = [(4, 4, Self.fourClasses), (5, 10, Self.tenClasses(batch: 5))]
        for device in try testDevices() {
            for (batch, classes, input) in cases {
                let path =
                    (device as? HostDevice).map { $0.usesDirectKernels ? ", AVX2 path" : ", portable path" } ?? ""
                let name = "\(batch)×\(classes) on \(device.info.summary)\(path)"
                let grad = try device.makeBuffer(count: batch * classes, kind: .float32)
                let perSample = try device.makeBuffer(count: 2 * batch, kind: .float32)
                try device.softmaxCrossEntropy(
                    batch: batch, classes: classes, logits: try device.makeBuffer(input.logits),
                    labels: try device.makeBuffer(input.labels), gradLogits: grad, perSample: perSample)
                let expected = NaiveReference.softmaxCrossEntropy(
                    batch: batch, classes: classes, logits: input.logits, labels: input.labels)
                let values = try device.floats(perSample)
                let gradient = try device.floats(grad)
                XCTAssertTrue(values.allSatisfy(\.isFinite), "non-finite loss \(name): \(values)")
                XCTAssertTrue(gradient.allSatisfy(\.isFinite), "non-finite gradient \(name): \(gradient)")
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(values[..<batch], expected.loss), Self.forwardTolerance,
                    "loss \(name): \(Array(values[..<batch])) vs \(expected.loss)")
                XCTAssertEqual(values[batch...].map(Double.init), expected.correct, "correct \(name)")
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(gradient, expected.gradLogits), Self.gradientTolerance, "gradient \(name)")
            }
        }
    }

    /// The reference itself on the four-class rows, by hand: what the device
    /// test compares against is right.
    func testReferenceByHand() {
        let r = NaiveReference.softmaxCrossEntropy(
            batch: 4, classes: 4, logits: Self.fourClasses.logits, labels: Self.fourClasses.labels)
        XCTAssertEqual(r.loss[0], 0, accuracy: 1e-12)
        XCTAssertEqual(r.loss[1], 1000, accuracy: 1e-9)
        // Row 2: z − max = (−1, −1, 0, −1); loss = log(1 + 3/e).
        XCTAssertEqual(r.loss[2], log(1 + 3 * exp(-1.0)), accuracy: 1e-12)
        // Row 3: z − max = (0, −10, −20, −5), label 1: loss = 10 + log(1 + e⁻¹⁰ + e⁻²⁰ + e⁻⁵).
        XCTAssertEqual(r.loss[3], 10 + log(1 + exp(-10.0) + exp(-20.0) + exp(-5.0)), accuracy: 1e-12)
        XCTAssertEqual(r.correct, [1, 0, 1, 0])
        XCTAssertEqual(Array(r.gradLogits[4..<8]), [-0.25, 0, 0.25, 0])
    }
}
