import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// A smaller batch's workspace in a larger one's buffers
/// (``NetworkPlan/workspace(batch:)``) gives the numbers of a workspace of
/// its own, bit for bit, and allocates no activation of its own.
final class SharedWorkspaceTests: XCTestCase {
    func testAPartialBatchInTheFullBatchsBuffersMatchesItsOwnWorkspaceExactly() throws {
        for device in try testDevices() {
            let description = NetworkPlanTests.smallResidual
            func makePlan() throws -> NetworkPlan {
                let plan = try NetworkPlan(description, channels: 2, height: 9, width: 9, classes: 3, device: device)
                try plan.initialise(seed: 4)
                return plan
            }
            var random = SeededRandom(seed: 9)
            let partial = 3
            let images = (0..<(partial * 2 * 81)).map { _ in random.uniform(1.5) }
            let labels = (0..<partial).map { _ in Int32(random.next() % 3) }
            // The plan whose workspace is its own.
            let alone = try makePlan()
            let own = try alone.workspace(batch: partial)
            // The plan that first runs a full batch of 5 (dirtying every buffer), then the partial one.
            let shared = try makePlan()
            let initial = try shared.checkpointTensors()
            let full = try shared.workspace(batch: 5)
            try shared.setBatch(
                full, images: (0..<(5 * 2 * 81)).map { _ in random.uniform(3) }, labels: [0, 1, 2, 1, 0])
            try shared.forward(full, training: true)
            try shared.backward(full)
            try shared.load(checkpointTensors: initial)
            shared.batchesTracked = 0
            let view = try shared.workspace(batch: partial)
            XCTAssertTrue(view.input === full.input, "the partial batch uses the full batch's input buffer")
            XCTAssertTrue(view.logits === full.logits)
            for (plan, w) in [(alone, own), (shared, view)] {
                try plan.setBatch(w, images: images, labels: labels)
                try plan.forward(w, training: true)
                try plan.backward(w)
            }
            let result = try alone.requestBatchResult(own).value()
            let sharedResult = try shared.requestBatchResult(view).value()
            XCTAssertEqual(result.lossSum, sharedResult.lossSum, device.info.summary)
            XCTAssertEqual(result.correct, sharedResult.correct)
            for (g, h) in zip(alone.gradients, shared.gradients) {
                XCTAssertEqual(try device.floats(g), try device.floats(h), device.info.summary)
            }
            for (s, t) in zip(alone.statistics, shared.statistics) {
                XCTAssertEqual(
                    try device.floats(s.buffer), try device.floats(t.buffer), "\(s.name) \(device.info.summary)")
            }
            XCTAssertEqual(
                Array(try device.floats(own.logits).prefix(partial * 3)),
                Array(try device.floats(view.logits).prefix(partial * 3)))
        }
    }
}
