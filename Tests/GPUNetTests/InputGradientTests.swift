import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// ``NetworkPlan/inputGradient(_:cotangent:)``: the eval-mode backward pass
/// to the input, against NaiveNetwork's float64 backward walk, which is
/// itself held to central differences of the float64 forward pass.
/// Rule: each image's gradient within 1e-4 of its largest magnitude.
final class InputGradientTests: XCTestCase {
    func testInputGradientMatchesTheFloat64NetworkOnEveryDevice() throws {
        let description = BuiltinModels.cifarResNet(blocksPerStage: 1, inputChannels: 1, classes: 10)
        let reference = try NaiveNetwork(description, input: (channels: 1, height: 12, width: 12), classes: 10)
        let parameters = reference.sampleParameters(seed: 8)
        let batch = 3
        var random = SeededRandom(seed: 21)
        let images = (0..<(batch * 144)).map { _ in Double.random(in: -1...1, using: &random) }
        let cotangent = (0..<(batch * 10)).map { _ in Double.random(in: -1...1, using: &random) }
        let expected = reference.inputGradient(
            images: images, cotangent: cotangent, batch: batch, parameters: parameters)

        // The float64 backward walk against central differences of the
        // float64 forward pass (h = 1e-6: the network is piecewise linear,
        // so the difference is exact unless a kink lies within h), at a
        // few coordinates of each image.
        func objective(_ x: [Double]) -> Double {
            let logits = reference.run(
                images: x, labels: [Int32](repeating: 0, count: batch), batch: batch, parameters: parameters,
                training: false
            ).logits
            return zip(logits, cotangent).reduce(0) { $0 + $1.0 * $1.1 }
        }
        for i in stride(from: 5, to: images.count, by: 37) {
            var plus = images
            var minus = images
            plus[i] += 1e-6
            minus[i] -= 1e-6
            let difference = (objective(plus) - objective(minus)) / 2e-6
            XCTAssertEqual(difference, expected[i], accuracy: 1e-6 * max(1, abs(expected[i])), "coordinate \(i)")
        }

        for device in try testDevices() {
            let plan = try NetworkPlan(description, channels: 1, height: 12, width: 12, classes: 10, device: device)
            try plan.load(float64: parameters)
            let w = try plan.workspace(batch: batch)
            try plan.setBatch(w, images: images.map(Float.init), labels: [Int32](repeating: 0, count: batch))
            try plan.forward(w, training: false)
            let gradient = try plan.inputGradient(w, cotangent: cotangent.map(Float.init))
            XCTAssertEqual(gradient.count, batch * 144)
            for b in 0..<batch {
                let range = (b * 144)..<((b + 1) * 144)
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(Array(gradient[range]), Array(expected[range])), 1e-4,
                    "image \(b) on \(device.info.selector)")
            }
            // A second call from other cotangents overwrites, not adds.
            let again = try plan.inputGradient(w, cotangent: cotangent.map(Float.init))
            XCTAssertEqual(again, gradient, device.info.selector)
        }
    }
}
