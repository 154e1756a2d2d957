import GPUNet
import Models
import TestSupport
import XCTest

/// `SelfTest` (what `convsvd selftest` and scripts/gpu-check run): its rules
/// on known differences, and a whole run on every device.
final class SelfTestTests: XCTestCase {
    /// The parity rule as the self-test applies it: forward 1e-4 absolute,
    /// gradients 1e-4 of the reference's largest magnitude, exact for the
    /// gather; each just inside and just outside its limit.
    func testRulesOnKnownDifferences() {
        let reference: [Float] = [0.5, -2, 1]
        let forwardOK = SelfTest.error([0.5, -2.00009, 1], reference: reference, rule: .forward)
        XCTAssertEqual(forwardOK, 9e-5, accuracy: 1e-6)
        XCTAssertTrue(SelfTest.passes(forwardOK, .forward))
        XCTAssertFalse(
            SelfTest.passes(SelfTest.error([0.5, -2.0002, 1], reference: reference, rule: .forward), .forward))
        // 3e-4 absolute against a largest magnitude of 2: 1.5e-4 of scale, too much;
        // 1.6e-4 absolute is 8e-5 of scale, fine (and would fail the forward rule).
        let gradientBad = SelfTest.error([0.5003, -2, 1], reference: reference, rule: .gradient)
        XCTAssertEqual(gradientBad, 1.5e-4, accuracy: 1e-6)
        XCTAssertFalse(SelfTest.passes(gradientBad, .gradient))
        XCTAssertTrue(
            SelfTest.passes(SelfTest.error([0.50016, -2, 1], reference: reference, rule: .gradient), .gradient))
        XCTAssertFalse(
            SelfTest.passes(SelfTest.error([0.50016, -2, 1], reference: reference, rule: .forward), .forward))
        XCTAssertEqual(SelfTest.error([0.5, -2, 1.0000001], reference: reference, rule: .exact), 1)
        XCTAssertTrue(SelfTest.error([.nan, -2, 1], reference: reference, rule: .forward).isNaN)
        XCTAssertFalse(SelfTest.passes(.nan, .forward))
        XCTAssertTrue(SelfTest.error([1, 2], reference: reference, rule: .forward).isNaN, "a count mismatch fails")
    }

    /// Every operation on every device passes against the host reference,
    /// and every operation of the `Device` protocol has a row.
    func testEveryDevicePasses() throws {
        for device in try testDevices() {
            let rows = SelfTest(device: device).run()
            for r in rows where !r.passed {
                XCTFail(
                    "\(device.info.selector): \(r.operation) \(r.shape) \(r.output): \(r.maxError) > \(r.limit) \(r.error ?? "")"
                )
            }
            XCTAssertEqual(
                Set(rows.map(\.operation)),
                [
                    "gemm", "im2col/col2im", "conv2d", "conv2d+maxpool2+relu (pooled)", "relu", "maxpool2", "linear",
                    "softmax_cross_entropy", "adam", "sgd_momentum", "gather_batch", "tiny_training_step",
                ])
            XCTAssertEqual(rows.count, 106, device.info.selector)
        }
    }

    /// `selftest --model`: ResNet-8 and the small residual network (a conv
    /// bias before BatchNorm, whose gradient is zero but for rounding, and
    /// so compared by the forward rule) pass on every device; the rows cover
    /// the eval logits, every layer output of the training pass, the
    /// losses, every parameter's gradient and every running statistic, and
    /// the gradients compared are not zero.
    func testAModelPassesOnEveryDevice() throws {
        let resnet8 = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        for (description, channels, side, classes) in [
            (resnet8, 1, 28, 10), (NetworkPlanTests.smallResidual, 2, 9, 3),
        ] {
            let plan = try NetworkPlan(
                description, channels: channels, height: side, width: side, classes: classes, device: HostDevice())
            let outputs = Set(
                plan.summary.layers.map(\.path).filter { path in
                    plan.summary.layers.filter { $0.path == path }.count == 1
                })
            for device in try testDevices() {
                let context = "\(description.name) on \(device.info.selector)"
                let rows = SelfTest(device: device).run(
                    model: description, channels: channels, height: side, width: side, classes: classes)
                for r in rows where !r.passed {
                    XCTFail("\(context): \(r.output): \(r.maxError) > \(r.limit) \(r.error ?? "")")
                }
                let names = rows.map(\.output)
                XCTAssertTrue(names.contains("logits (eval)") && names.contains("losses (training)"), context)
                for p in plan.parameters {
                    XCTAssertTrue(
                        names.contains("∂\(p.name)") || names.contains("∂\(p.name) (≈0)"), "\(context): ∂\(p.name)")
                }
                for s in plan.statistics { XCTAssertTrue(names.contains(s.name), "\(context): \(s.name)") }
                let layers = Set(names.filter { $0.hasSuffix(" (training)") }.map { String($0.dropLast(11)) })
                XCTAssertEqual(layers.subtracting(["losses"]).count, outputs.subtracting(["flatten"]).count, context)
                XCTAssertEqual(rows.filter { $0.output.hasSuffix("(≈0)") }.count, description.name == "resnet8" ? 0 : 1)
            }
        }
    }
}
