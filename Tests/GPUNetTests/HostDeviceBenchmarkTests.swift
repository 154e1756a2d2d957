import NetIO
import Dispatch
import GPUNet
import TestSupport
import XCTest

/// Median time of each `HostDevice` operation at TinyConvNet's batch-64
/// shapes, printed as a table, and of the whole training step they make up.
///
/// Check: the measured step (forward, backward and four Adam updates) stays
/// under 50 ms. PyTorch's epoch of 938 steps takes 1.76 s on the project
/// machine (1.9 ms a step), so 50 ms only catches gross regressions (an
/// accidental quadratic loop, BLAS oversubscription, a debug build of the
/// hot loops) and tolerates a machine shared with other jobs.
final class HostDeviceBenchmarkTests: XCTestCase {
    static let stepLimitSeconds = 0.050

    func testTinyConvNetStepTimingsAtBatch64() throws {
        // One worker first: the single-core cost of each operation; then the default (every core).
        _ = try measureStep(on: HostDevice(workers: 1))
        let step = try measureStep(on: HostDevice())
        XCTAssertLessThanOrEqual(step, Self.stepLimitSeconds, "one TinyConvNet step on the host")
    }

    /// Prints the table for `device` and returns the median whole-step time in seconds.
    func measureStep(on device: HostDevice) throws -> Double {
        let batch = 64
        let conv1 = ConvShape(batch: batch, inChannels: 1, outChannels: 8, height: 28, width: 28)
        let pool1 = PoolShape(batch: batch, channels: 8, height: 26, width: 26)
        let conv2 = ConvShape(batch: batch, inChannels: 8, outChannels: 16, height: 13, width: 13)
        let pool2 = PoolShape(batch: batch, channels: 16, height: 11, width: 11)
        let fc = LinearShape(batch: batch, inFeatures: 400, outFeatures: 10)

        func floats(_ count: Int, seed: UInt64) throws -> Buffer { try device.makeBuffer(randomFloats(count, seed: seed)) }
        func ints(_ count: Int) throws -> Buffer { try device.makeBuffer(count: count, kind: .int32) }
        let input = try floats(conv1.inputCount, seed: 1)
        let w1 = try floats(conv1.weightCount, seed: 2), w2 = try floats(conv2.weightCount, seed: 3)
        let fcW = try floats(400 * 10, seed: 4), fcB = try floats(10, seed: 5)
        let c1 = try floats(conv1.outputCount, seed: 6), r1 = try floats(conv1.outputCount, seed: 7)
        let p1 = try floats(pool1.outputCount, seed: 8), a1 = try ints(pool1.outputCount)
        let c2 = try floats(conv2.outputCount, seed: 9), r2 = try floats(conv2.outputCount, seed: 10)
        let p2 = try floats(pool2.outputCount, seed: 11), a2 = try ints(pool2.outputCount)
        let logits = try floats(batch * 10, seed: 12)
        var generator = SeededRandom(seed: 13)
        let labels = try device.makeBuffer((0..<batch).map { _ in Int32.random(in: 0..<10, using: &generator) })
        let gLogits = try floats(batch * 10, seed: 14), perSample = try floats(2 * batch, seed: 15)
        let gP2 = try floats(pool2.outputCount, seed: 16), gR2 = try floats(conv2.outputCount, seed: 17)
        let gC2 = try floats(conv2.outputCount, seed: 18), gP1 = try floats(pool1.outputCount, seed: 19)
        let gR1 = try floats(conv1.outputCount, seed: 20), gC1 = try floats(conv1.outputCount, seed: 21)
        let gW1 = try floats(conv1.weightCount, seed: 22), gW2 = try floats(conv2.weightCount, seed: 23)
        let gFcW = try floats(4000, seed: 24), gFcB = try floats(10, seed: 25)
        let parameters = [(w1, gW1), (w2, gW2), (fcW, gFcW), (fcB, gFcB)]
        let moments = try parameters.map { (try floats($0.0.count, seed: 26), try device.makeBuffer(count: $0.0.count, kind: .float32)) }
        let adam = AdamStep(learningRate: 1e-3, step: 1)

        let operations: [(name: String, run: () throws -> Void)] = [
            ("conv1 forward (B,1,28,28)→8", { try device.conv2dForward(conv1, input: input, weight: w1, output: c1) }),
            ("relu1 forward", { try device.reluForward(count: conv1.outputCount, input: c1, output: r1) }),
            ("pool1 forward (B,8,26,26)", { try device.maxPool2Forward(pool1, input: r1, output: p1, argmax: a1) }),
            ("conv2 forward (B,8,13,13)→16", { try device.conv2dForward(conv2, input: p1, weight: w2, output: c2) }),
            ("relu2 forward", { try device.reluForward(count: conv2.outputCount, input: c2, output: r2) }),
            ("pool2 forward (B,16,11,11)", { try device.maxPool2Forward(pool2, input: r2, output: p2, argmax: a2) }),
            ("fc forward 400→10", { try device.linearForward(fc, input: p2, weight: fcW, bias: fcB, output: logits) }),
            ("softmax cross-entropy", {
                try device.softmaxCrossEntropy(batch: batch, classes: 10, logits: logits, labels: labels,
                                               gradLogits: gLogits, perSample: perSample)
            }),
            ("fc backward", {
                try device.linearBackward(fc, input: p2, weight: fcW, gradOutput: gLogits, gradInput: gP2,
                                          gradWeight: gFcW, gradBias: gFcB)
            }),
            ("pool2 backward", { try device.maxPool2Backward(pool2, gradOutput: gP2, argmax: a2, gradInput: gR2) }),
            ("relu2 backward", { try device.reluBackward(count: conv2.outputCount, output: r2, gradOutput: gR2, gradInput: gC2) }),
            ("conv2 backward weight", { try device.conv2dBackwardWeight(conv2, input: p1, gradOutput: gC2, gradWeight: gW2) }),
            ("conv2 backward data", { try device.conv2dBackwardData(conv2, gradOutput: gC2, weight: w2, gradInput: gP1) }),
            ("pool1 backward", { try device.maxPool2Backward(pool1, gradOutput: gP1, argmax: a1, gradInput: gR1) }),
            ("relu1 backward", { try device.reluBackward(count: conv1.outputCount, output: r1, gradOutput: gR1, gradInput: gC1) }),
            ("conv1 backward weight", { try device.conv2dBackwardWeight(conv1, input: input, gradOutput: gC1, gradWeight: gW1) }),
            ("Adam, 4 tensors (5 234 values)", {
                for (i, (p, g)) in parameters.enumerated() {
                    try device.adamStep(count: p.count, parameter: p, gradient: g, m: moments[i].0, v: moments[i].1, step: adam)
                }
            }),
        ]

        /// The median and the minimum of `repeats` timed runs after `warmup`
        /// untimed ones, in seconds. The minimum is the best estimate of the
        /// cost on an idle machine; the median is what a shared one gives.
        func timings(repeats: Int = 41, warmup: Int = 5, _ body: () throws -> Void) rethrows -> (median: Double, min: Double) {
            for _ in 0..<warmup { try body() }
            var times = [Double]()
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            }
            times.sort()
            return (times[repeats / 2], times[0])
        }

        var lines = ["HostDevice (\(device.info.computeUnits) workers), batch 64, 41 runs:   median        min"]
        var sum = (median: 0.0, min: 0.0)
        for operation in operations {
            let t = try timings(operation.run)
            sum = (sum.median + t.median, sum.min + t.min)
            lines.append("  \(operation.name.padding(toLength: 34, withPad: " ", startingAt: 0)) "
                         + String(format: "%8.1f µs %8.1f µs", t.median * 1e6, t.min * 1e6))
        }
        let whole = try timings { for operation in operations { try operation.run() } }
        let steps = (60_000 + batch - 1) / batch
        lines.append("  sum of the operations' times       " + String(format: "%8.3f ms %8.3f ms", sum.median * 1e3, sum.min * 1e3))
        lines.append("  whole step, measured               " + String(format: "%8.3f ms %8.3f ms", whole.median * 1e3, whole.min * 1e3))
        lines.append("  → \(steps) steps an epoch            " + String(format: "%8.2f s  %8.2f s", whole.median * Double(steps), whole.min * Double(steps)))
        print(lines.joined(separator: "\n"))
        return whole.median
    }
}
