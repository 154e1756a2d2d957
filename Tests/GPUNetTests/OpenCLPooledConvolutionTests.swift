import GPUNet
import TestSupport
import XCTest

/// What the OpenCL pooled backward passes do with a corrupt argmax (a winner
/// that is not one of its own window's four pixels): unlike the host, which
/// throws, a kernel cannot report an error, so the window is ignored — it
/// passes no gradient — and nothing outside the buffers is read or written.
/// The reference is the float64 dense backward pass with those windows'
/// gradients set to zero (tolerance as in PooledConvolutionTests).
final class OpenCLPooledConvolutionTests: XCTestCase {
    static let tolerance = 1e-4

    /// conv1 and conv2 of TinyConvNet (the output-lane and input-lane weight
    /// kernels, the 3×3 data kernel) and a non-3×3 shape (the general kernels).
    static let shapes = [
        ConvShape(batch: 2, inChannels: 1, outChannels: 8, height: 28, width: 28),
        ConvShape(batch: 2, inChannels: 8, outChannels: 16, height: 13, width: 13),
        ConvShape(batch: 2, inChannels: 2, outChannels: 3, height: 7, width: 6, kernelHeight: 2, kernelWidth: 4),
    ]

    func testACorruptWinnerPassesNoGradient() throws {
        let devices = try openCLTestDevices()
        for (n, s) in Self.shapes.enumerated() {
            let pool = PoolShape(batch: s.batch, channels: s.outChannels, height: s.outHeight, width: s.outWidth)
            let input = randomFloats(s.inputCount, seed: UInt64(500 + n))
            let weight = randomFloats(s.weightCount, scale: 0.3, seed: UInt64(510 + n))
            let forward = NaiveReference.maxPool2Forward(
                pool, input: NaiveReference.conv2dForward(s, input: input, weight: weight))
            var values = randomFloats(pool.outputCount, seed: UInt64(520 + n))
            var argmax = forward.argmax
            let plane = Int32(s.outHeight * s.outWidth)
            // Outside the plane above and below, and inside it but in another
            // window: the first window's third pixel for the last window, the
            // plane's last pixel (in the last window, or in none where floor
            // mode drops the last row or column) for a first window.
            let corrupt: [(index: Int, winner: Int32)] = [
                (0, plane + 1000), (1, -7), (pool.outputCount - 1, argmax[0] + 2), (pool.outputCount / 2, plane - 1),
            ]
            for c in corrupt {
                argmax[c.index] = c.winner
                values[c.index] = 1
            }
            var ignored = values
            for c in corrupt { ignored[c.index] = 0 }
            let dense = NaiveReference.maxPool2Backward(pool, gradOutput: ignored, argmax: forward.argmax)
            let expectedWeight = NaiveReference.conv2dBackwardWeight(
                s, input: input.map(Double.init), gradOutput: dense)
            let expectedData = NaiveReference.conv2dBackwardData(s, gradOutput: dense, weight: weight.map(Double.init))
            for d in devices {
                let gradient = PooledGradient(
                    pool: pool, values: try d.makeBuffer(values), argmax: try d.makeBuffer(argmax))
                let gradWeight = try d.makeBuffer(count: s.weightCount, kind: .float32)
                let gradInput = try d.makeBuffer(count: s.inputCount, kind: .float32)
                try d.conv2dBackwardWeight(
                    s, input: try d.makeBuffer(input), pooledGradient: gradient, gradWeight: gradWeight)
                try d.conv2dBackwardData(
                    s, pooledGradient: gradient, weight: try d.makeBuffer(weight), gradInput: gradInput)
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try d.floats(gradWeight), expectedWeight), Self.tolerance,
                    "weight gradient \(s) on \(d.info.summary)")
                XCTAssertLessThanOrEqual(
                    maxRelativeToScale(try d.floats(gradInput), expectedData), Self.tolerance,
                    "data gradient \(s) on \(d.info.summary)")
            }
        }
    }

    /// The weight gradient summed over chunks of images and then reduced,
    /// the form for devices with many compute units: on PoCL's few,
    /// TinyConvNet's shapes take one chunk, so a shape with few output
    /// channels (3 work-items per chunk) and 9 images forces several chunks
    /// here. Against the float64 dense pass of the pooled gradient.
    func testWeightGradientSummedOverImageChunks() throws {
        let devices = try openCLTestDevices()
        let s = ConvShape(batch: 9, inChannels: 4, outChannels: 3, height: 10, width: 9)
        let pool = PoolShape(batch: s.batch, channels: s.outChannels, height: s.outHeight, width: s.outWidth)
        let input = randomFloats(s.inputCount, seed: 600)
        let weight = randomFloats(s.weightCount, scale: 0.3, seed: 601)
        let argmax = NaiveReference.maxPool2Forward(
            pool, input: NaiveReference.conv2dForward(s, input: input, weight: weight)
        ).argmax
        let values = randomFloats(pool.outputCount, seed: 602)
        let dense = NaiveReference.maxPool2Backward(pool, gradOutput: values, argmax: argmax)
        let expected = NaiveReference.conv2dBackwardWeight(s, input: input.map(Double.init), gradOutput: dense)
        for d in devices {
            let gradient = PooledGradient(
                pool: pool, values: try d.makeBuffer(values), argmax: try d.makeBuffer(argmax))
            let gradWeight = try d.makeBuffer(randomFloats(s.weightCount, seed: 603))  // overwritten, not added to
            try d.conv2dBackwardWeight(
                s, input: try d.makeBuffer(input), pooledGradient: gradient, gradWeight: gradWeight)
            XCTAssertLessThanOrEqual(
                maxRelativeToScale(try d.floats(gradWeight), expected), Self.tolerance,
                "\(s) on \(d.info.summary)")
        }
    }
}
