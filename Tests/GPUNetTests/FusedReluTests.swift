import GPUNet
import TestSupport
import XCTest

/// The fused ReLU operations of a training step (BatchNorm then ReLU, the
/// residual sum then ReLU, and BatchNorm's backward through the ReLU's mask)
/// on every test device against float64 loops: the references of
/// `NaiveReferenceResNet.swift` followed by max(0, ·), at the odd shapes of
/// ``ResidualOpsTests/mapShapes`` (batch 1, 1×1 maps, partial chunks).
/// Rules: forward outputs and running statistics within 1e-4 absolute;
/// gradients within 1e-4 of the reference tensor's largest magnitude. Each
/// fused operation must also give, bit for bit, what the two operations it
/// replaces give on the same device (the plan's fused step keeps its numbers).
final class FusedReluTests: XCTestCase {
    func testBatchNormReluMatchesTheReferenceAndTheTwoOperations() throws {
        var worst = (forward: 0.0, gradients: 0.0)
        for device in try testDevices() {
            let on = device.info.summary
            for (index, m) in ResidualOpsTests.mapShapes.enumerated() {
                let s = BatchNormShape(batch: m.0, channels: m.1, height: m.2, width: m.3)
                let c = BatchNormCase(s, seed: UInt64(700 + 10 * index))
                let (input, gamma, beta) = (c.input, c.gamma, c.beta)
                let (runningMean, runningVar) = (c.runningMean, c.runningVar)
                var gradOutput = c.gradOutput
                for training in [true, false] {
                    let label = "\(s) \(training ? "training" : "eval") on \(on)"
                    let reference = NaiveReference.batchNormForward(
                        s, input: input, gamma: gamma, beta: beta, runningMean: runningMean,
                        runningVar: runningVar, training: training)
                    // A value within 1e-4 of 0 could fall on either side of the ReLU in float32: its
                    // gradient is set to 0, so that the mask there does not matter.
                    for i in 0..<s.count where abs(reference.output[i]) < 1e-4 { gradOutput[i] = 0 }
                    let relu = reference.output.map { max(0, $0) }
                    let masked = zip(reference.output, gradOutput).map { $0 > 0 ? Double($1) : 0 }
                    let gradients = NaiveReference.batchNormBackward(
                        s, input: input.map(Double.init), gamma: gamma.map(Double.init), gradOutput: masked,
                        mean: reference.mean, variance: reference.variance, training: training)
                    let fused = try run(
                        on: device, s, input: input, gamma: gamma, beta: beta, runningMean: runningMean,
                        runningVar: runningVar, gradOutput: gradOutput, training: training, fused: true)
                    let forward = max(
                        maxAbsoluteDifference(fused[0], relu),
                        maxAbsoluteDifference(fused[1], reference.mean + reference.invStd),
                        maxAbsoluteDifference(fused[2], reference.runningMean),
                        maxAbsoluteDifference(fused[3], reference.runningVar))
                    let grads = [
                        maxRelativeToScale(fused[4], gradients.input),
                        maxRelativeToScale(fused[5], gradients.gamma),
                        maxRelativeToScale(fused[6], gradients.beta),
                    ]
                    XCTAssertLessThanOrEqual(forward, 1e-4, "output, saved and running statistics \(label)")
                    XCTAssertLessThanOrEqual(grads.max()!, 1e-4, "dx, dγ, dβ \(grads) \(label)")
                    worst.forward = max(worst.forward, forward)
                    worst.gradients = max(worst.gradients, grads.max()!)
                    let separate = try run(
                        on: device, s, input: input, gamma: gamma, beta: beta, runningMean: runningMean,
                        runningVar: runningVar, gradOutput: gradOutput, training: training, fused: false)
                    XCTAssertEqual(fused, separate, "fused and separate operations differ \(label)")
                }
            }
        }
        print(
            "FusedReluTests batchnorm+relu: largest differences forward \(worst.forward) (abs), gradients"
                + " \(worst.gradients) (relative)")
    }

    /// Output (after the ReLU), saved (μ then σ), running mean, running
    /// variance, dx, dγ, dβ: by the fused operations or by BatchNorm and
    /// ReLU one after the other.
    func run(
        on d: any Device, _ s: BatchNormShape, input: [Float], gamma: [Float], beta: [Float],
        runningMean: [Float], runningVar: [Float], gradOutput: [Float], training: Bool, fused: Bool
    ) throws -> [[Float]] {
        let x = try d.makeBuffer(input)
        let g = try d.makeBuffer(gamma)
        let b = try d.makeBuffer(beta)
        let rm = try d.makeBuffer(runningMean)
        let rv = try d.makeBuffer(runningVar)
        let saved = try d.makeBuffer(count: 2 * s.channels, kind: .float32)
        let y = try d.makeBuffer(count: s.count, kind: .float32)
        let dy = try d.makeBuffer(gradOutput)
        let dx = try d.makeBuffer(count: s.count, kind: .float32)
        let dg = try d.makeBuffer(count: s.channels, kind: .float32)
        let db = try d.makeBuffer(count: s.channels, kind: .float32)
        if fused {
            try d.batchNormReluForward(
                s, input: x, gamma: g, beta: b, runningMean: rm, runningVar: rv, saved: saved, output: y,
                training: training)
            try d.batchNormReluBackward(
                s, input: x, gamma: g, saved: saved, output: y, gradOutput: dy, gradInput: dx, gradGamma: dg,
                gradBeta: db, training: training)
        } else {
            let z = try d.makeBuffer(count: s.count, kind: .float32)
            try d.batchNormForward(
                s, input: x, gamma: g, beta: b, runningMean: rm, runningVar: rv, saved: saved, output: z,
                training: training)
            try d.reluForward(count: s.count, input: z, output: y)
            let dz = try d.makeBuffer(count: s.count, kind: .float32)
            try d.reluBackward(count: s.count, output: y, gradOutput: dy, gradInput: dz)
            try d.batchNormBackward(
                s, input: x, gamma: g, saved: saved, gradOutput: dz, gradInput: dx, gradGamma: dg, gradBeta: db,
                training: training)
        }
        return try [y, saved, rm, rv, dx, dg, db].map { try d.floats($0) }
    }

    func testResidualAddReluMatchesTheReferenceAndTheTwoOperations() throws {
        for device in try testDevices() {
            let on = device.info.summary
            for (index, m) in (ResidualOpsTests.mapShapes + [(3, 5, 3, 7)]).enumerated() {
                let count = m.0 * m.1 * m.2 * m.3
                let seed = UInt64(900 + 10 * index)
                let a = randomFloats(count, seed: seed)
                let b = randomFloats(count, seed: seed + 1)
                let reference = NaiveReference.residualAdd(a, b).map { max(0, $0) }
                let d = device
                let (ba, bb) = (try d.makeBuffer(a), try d.makeBuffer(b))
                let out = try d.makeBuffer(count: count, kind: .float32)
                try d.residualAddRelu(count: count, ba, bb, output: out)
                let fused = try d.floats(out)
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(fused, reference), 1e-6, "residualAddRelu \(m) on \(on)")
                let sum = try d.makeBuffer(count: count, kind: .float32)
                try d.residualAdd(count: count, ba, bb, output: sum)
                try d.reluForward(count: count, input: sum, output: sum)
                XCTAssertEqual(fused, try d.floats(sum), "residualAddRelu and the two operations \(m) on \(on)")
                // In place: the output is the first input.
                try d.residualAddRelu(count: count, ba, bb, output: ba)
                XCTAssertEqual(try d.floats(ba), fused, "residualAddRelu in place \(m) on \(on)")
            }
        }
    }

    /// A ReLU's backward pass of a gradient in two parts against the float64
    /// rule (the parts summed in float64, then masked; within 1e-6, the
    /// float32 sum's rounding), and equal bit for bit to the sum then the
    /// mask, which it replaces in a residual network's backward pass. The
    /// outputs hold exact zeros and negatives, so that the mask is exercised,
    /// at odd counts (partial vectors of 16) and batch 1.
    func testReluBackwardSumMatchesTheReferenceAndTheTwoOperations() throws {
        for device in try testDevices() {
            let on = device.info.summary
            for (index, m) in (ResidualOpsTests.mapShapes + [(3, 5, 3, 7)]).enumerated() {
                let count = m.0 * m.1 * m.2 * m.3
                let seed = UInt64(950 + 10 * index)
                let output = randomFloats(count, seed: seed).enumerated().map { $0.offset % 5 == 0 ? 0 : $0.element }
                let g = randomFloats(count, seed: seed + 1)
                let addend = randomFloats(count, seed: seed + 2)
                let sum = zip(g, addend).map { Float(Double($0) + Double($1)) }
                let reference = NaiveReference.reluBackward(
                    output: output.map(Double.init), gradOutput: zip(g, addend).map { Double($0) + Double($1) })
                let d = device
                let (bo, bg, ba) = (try d.makeBuffer(output), try d.makeBuffer(g), try d.makeBuffer(addend))
                let gradInput = try d.makeBuffer(count: count, kind: .float32)
                try d.reluBackwardSum(count: count, output: bo, gradOutput: bg, addend: ba, gradInput: gradInput)
                let fused = try d.floats(gradInput)
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(fused, reference), 1e-6, "reluBackwardSum \(m) on \(on)")
                XCTAssertEqual(
                    fused, NaiveReference.reluBackward(output: output, gradOutput: sum).map { Float($0) },
                    "reluBackwardSum against the float32 sum masked \(m) on \(on)")
                let twoPasses = try d.makeBuffer(count: count, kind: .float32)
                try d.residualAdd(count: count, bg, ba, output: twoPasses)
                try d.reluBackward(count: count, output: bo, gradOutput: twoPasses, gradInput: twoPasses)
                XCTAssertEqual(fused, try d.floats(twoPasses), "reluBackwardSum and the two operations \(m) on \(on)")
            }
        }
    }
}
