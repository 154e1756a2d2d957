import GPUNet
import TestSupport
import XCTest

/// Every operation on each OpenCL device against the same operation on
/// `HostDevice`, with identical inputs, at TinyConvNet's shapes (batch 64, 1
/// and an odd 13).
///
/// Rules: forward outputs within 1e-4 absolute; gradients (and optimiser
/// states) within 1e-4 relative to the host tensor's largest magnitude;
/// argmax indices and correct flags exactly. (Both devices are also tested
/// against float64 loops on their own; this checks they agree with each
/// other where training uses them.)
final class DeviceParityTests: XCTestCase {
    static let forwardTolerance = 1e-4
    static let gradientTolerance = 1e-4

    /// Runs `body` on the host and on each OpenCL device, comparing every
    /// returned tensor with `compare`.
    func parity(
        _ name: String, relative: Bool,
        _ body: (any Device) throws -> [[Float]]
    ) throws {
        let expected = try body(HostDevice())
        for device in try OpenCLTestDevice.all() {
            let actual = try body(device)
            XCTAssertEqual(actual.count, expected.count)
            for (index, (a, e)) in zip(actual, expected).enumerated() {
                let diff = relative ? maxRelativeToScale(a, e) : maxAbsoluteDifference(a, e)
                let tolerance = relative ? Self.gradientTolerance : Self.forwardTolerance
                XCTAssertLessThanOrEqual(diff, tolerance, "\(name) output \(index) on \(device.info.summary): \(diff)")
            }
        }
    }

    static let batches = [1, 13, 64]

    func convShapes(_ batch: Int) -> [ConvShape] {
        [
            ConvShape(batch: batch, inChannels: 1, outChannels: 8, height: 28, width: 28),
            ConvShape(batch: batch, inChannels: 8, outChannels: 16, height: 13, width: 13),
        ]
    }

    func testGEMMParity() throws {
        for shape in [
            GEMMShape(m: 8, n: 43264, k: 9), GEMMShape(m: 16, n: 7744, k: 72, alpha: 0.5, beta: 2),
            GEMMShape(m: 16, n: 72, k: 7744, transposeB: true),
            GEMMShape(m: 72, n: 7744, k: 16, transposeA: true),
            GEMMShape(m: 31, n: 19, k: 23, transposeA: true, transposeB: true, alpha: -1, beta: 0.25),
        ] {
            let a = randomFloats(shape.m * shape.k, seed: 1)
            let b = randomFloats(shape.k * shape.n, seed: 2)
            let c = randomFloats(shape.m * shape.n, seed: 3)
            try parity("gemm \(shape)", relative: true) { d in
                let out = try d.makeBuffer(c)
                try d.gemm(shape, a: try d.makeBuffer(a), b: try d.makeBuffer(b), c: out)
                return [try d.floats(out)]
            }
        }
    }

    func testConvolutionParity() throws {
        for batch in Self.batches {
            for s in convShapes(batch) {
                let input = randomFloats(s.inputCount, seed: 11)
                let weight = randomFloats(s.weightCount, scale: 0.3, seed: 12)
                let gradOutput = randomFloats(s.outputCount, seed: 13)
                try parity("conv2dForward \(s)", relative: false) { d in
                    let out = try d.makeBuffer(count: s.outputCount, kind: .float32)
                    try d.conv2dForward(
                        s, input: try d.makeBuffer(input), weight: try d.makeBuffer(weight), output: out)
                    return [try d.floats(out)]
                }
                try parity("conv2d backward \(s)", relative: true) { d in
                    let gradInput = try d.makeBuffer(count: s.inputCount, kind: .float32)
                    let gradWeight = try d.makeBuffer(count: s.weightCount, kind: .float32)
                    let g = try d.makeBuffer(gradOutput)
                    try d.conv2dBackwardData(s, gradOutput: g, weight: try d.makeBuffer(weight), gradInput: gradInput)
                    try d.conv2dBackwardWeight(s, input: try d.makeBuffer(input), gradOutput: g, gradWeight: gradWeight)
                    return [try d.floats(gradInput), try d.floats(gradWeight)]
                }
                try parity("im2col/col2im \(s)", relative: false) { d in
                    let columns = try d.makeBuffer(count: s.patchSize * s.patchCount, kind: .float32)
                    let back = try d.makeBuffer(count: s.inputCount, kind: .float32)
                    try d.im2col(s, input: try d.makeBuffer(input), columns: columns)
                    try d.col2im(s, columns: columns, input: back)
                    return [try d.floats(columns), try d.floats(back)]
                }
            }
        }
    }

    func testReLUAndPoolingParity() throws {
        for batch in Self.batches {
            for s in [
                PoolShape(batch: batch, channels: 8, height: 26, width: 26),
                PoolShape(batch: batch, channels: 16, height: 11, width: 11),
            ] {
                // Rounded to a 0.25 grid so that ReLU zeros and pooling ties occur.
                let input = randomFloats(s.inputCount, seed: 21).map { ($0 * 4).rounded() / 4 }
                let gradOutput = randomFloats(s.outputCount, seed: 22)
                let gradRelu = randomFloats(s.inputCount, seed: 23)
                try parity("relu + maxpool \(s)", relative: false) { d in
                    try reluPoolChain(on: d, s, input: input, gradOutput: gradOutput, gradRelu: gradRelu)
                }
            }
        }
    }

    func testLinearLossAndOptimiserParity() throws {
        for batch in Self.batches {
            let s = LinearShape(batch: batch, inFeatures: 400, outFeatures: 10)
            let input = randomFloats(batch * 400, seed: 31)
            let weight = randomFloats(4000, scale: 0.05, seed: 32)
            let bias = randomFloats(10, scale: 0.1, seed: 33)
            let labels = (0..<batch).map { Int32(($0 * 3) % 10) }
            try parity("linear forward + loss \(batch)", relative: false) { d in
                let logits = try d.makeBuffer(count: batch * 10, kind: .float32)
                try d.linearForward(
                    s, input: try d.makeBuffer(input), weight: try d.makeBuffer(weight),
                    bias: try d.makeBuffer(bias), output: logits)
                let grad = try d.makeBuffer(count: batch * 10, kind: .float32)
                let perSample = try d.makeBuffer(count: 2 * batch, kind: .float32)
                try d.softmaxCrossEntropy(
                    batch: batch, classes: 10, logits: logits, labels: try d.makeBuffer(labels),
                    gradLogits: grad, perSample: perSample)
                return [try d.floats(logits), try d.floats(perSample)]
            }
            let gradOutput = randomFloats(batch * 10, scale: 0.1, seed: 34)
            try parity("linear backward + optimisers \(batch)", relative: true) { d in
                let (gradInput, gradWeight) = (
                    try d.makeBuffer(count: batch * 400, kind: .float32),
                    try d.makeBuffer(count: 4000, kind: .float32)
                )
                let gradBias = try d.makeBuffer(count: 10, kind: .float32)
                try d.linearBackward(
                    s, input: try d.makeBuffer(input), weight: try d.makeBuffer(weight),
                    gradOutput: try d.makeBuffer(gradOutput), gradInput: gradInput,
                    gradWeight: gradWeight, gradBias: gradBias)
                let sgdParameter = try d.makeBuffer(weight)
                let velocity = try d.makeBuffer(count: 4000, kind: .float32)
                let adamParameter = try d.makeBuffer(weight)
                let m = try d.makeBuffer(count: 4000, kind: .float32)
                let v = try d.makeBuffer(count: 4000, kind: .float32)
                for t in 1...2 {
                    try d.sgdMomentumStep(
                        [
                            MomentumTensor(
                                count: 4000, parameter: sgdParameter, gradient: gradWeight,
                                velocity: velocity)
                        ], step: SGDStep(learningRate: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4))
                    try d.adamStep(
                        [AdamTensor(count: 4000, parameter: adamParameter, gradient: gradWeight, m: m, v: v)],
                        step: AdamStep(learningRate: 1e-3, step: t))
                }
                return [
                    try d.floats(gradInput), try d.floats(gradWeight), try d.floats(gradBias),
                    try d.floats(sgdParameter), try d.floats(velocity), try d.floats(adamParameter),
                    try d.floats(m), try d.floats(v),
                ]
            }
        }
    }
}
