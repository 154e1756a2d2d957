import Foundation
import NetIO

/// Timings of the operations behind TinyConvNet's products on one device:
/// each GEMM of reference-figures.md at its im2col shape, and the direct
/// convolution and linear kernels that training actually uses.
///
/// Each operation runs twice untimed (the first launch of a kernel may JIT
/// it), then `repeats` times, each time enqueued and waited for (`finish`),
/// timed on the wall clock; the median and the fastest are reported. GFLOP/s = nominal
/// 2·m·n·k of the equivalent product / median seconds.
public enum OpenCLMicrobenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public let name: String
        public let shape: String
        public let flops: Double
        public let medianSeconds: Double
        /// The fastest run: on a shared, busy machine the closest to what
        /// the device does undisturbed.
        public let minimumSeconds: Double
        /// At the median time.
        public var gflopsPerSecond: Double { flops / medianSeconds / 1e9 }
        /// At the fastest time.
        public var peakGflopsPerSecond: Double { flops / minimumSeconds / 1e9 }
        public var description: String {
            let label = name.padding(toLength: 30, withPad: " ", startingAt: 0)
            let dims = shape.padding(toLength: 22, withPad: " ", startingAt: 0)
            return "\(label)\(dims)"
                + String(
                    format: "median %8.3f ms %7.1f GFLOP/s   fastest %8.3f ms %7.1f GFLOP/s",
                    medianSeconds * 1e3, gflopsPerSecond, minimumSeconds * 1e3,
                    peakGflopsPerSecond)
        }
    }

    /// TinyConvNet's layer products and convolutions at `batch`, on `device`.
    public static func tinyConvNet(on device: any Device, batch: Int = 64, repeats: Int = 41) throws -> [Result] {
        let conv1 = ConvShape(batch: batch, inChannels: 1, outChannels: 8, height: 28, width: 28)
        let conv2 = ConvShape(batch: batch, inChannels: 8, outChannels: 16, height: 13, width: 13)
        let fc = LinearShape(batch: batch, inFeatures: 400, outFeatures: 10)
        var results: [Result] = []
        func random(_ count: Int) throws -> Buffer {
            var generator = SystemRandomNumberGenerator()
            return try device.makeBuffer((0..<count).map { _ in Float.random(in: -1...1, using: &generator) })
        }
        func time(_ name: String, _ shape: String, flops: Double, _ body: () throws -> Void) throws {
            for _ in 0..<2 { try body() }
            try device.finish()
            var seconds: [Double] = []
            for _ in 0..<repeats {
                let start = Clocks.wall()
                try body()
                try device.finish()
                seconds.append(Clocks.seconds(since: start))
            }
            seconds.sort()
            results.append(
                Result(
                    name: name, shape: shape, flops: flops, medianSeconds: seconds[seconds.count / 2],
                    minimumSeconds: seconds[0]))
        }
        let products: [(String, GEMMShape)] = [
            ("gemm conv1 forward", GEMMShape(m: 8, n: conv1.patchCount, k: 9)),
            ("gemm conv2 forward", GEMMShape(m: 16, n: conv2.patchCount, k: 72)),
            ("gemm conv2 weight grad", GEMMShape(m: 16, n: 72, k: conv2.patchCount, transposeB: true)),
            ("gemm conv2 column grad", GEMMShape(m: 72, n: conv2.patchCount, k: 16, transposeA: true)),
            ("gemm conv1 weight grad", GEMMShape(m: 8, n: 9, k: conv1.patchCount, transposeB: true)),
            ("gemm fc forward", GEMMShape(m: batch, n: 10, k: 400, transposeB: true)),
        ]
        for (name, shape) in products {
            let a = try random(shape.m * shape.k)
            let b = try random(shape.k * shape.n)
            let c = try device.makeBuffer(count: shape.m * shape.n, kind: .float32)
            try time(name, shape.description, flops: shape.flops) { try device.gemm(shape, a: a, b: b, c: c) }
        }
        for (name, s) in [("conv1", conv1), ("conv2", conv2)] {
            let input = try random(s.inputCount)
            let weight = try random(s.weightCount)
            let output = try random(s.outputCount)
            let gradInput = try random(s.inputCount)
            let gradWeight = try random(s.weightCount)
            let dims = "\(s.outChannels)×\(s.patchCount)×\(s.patchSize)"
            try time("\(name) forward (direct)", dims, flops: s.flops) {
                try device.conv2dForward(s, input: input, weight: weight, output: output)
            }
            try time("\(name) weight grad (direct)", dims, flops: s.flops) {
                try device.conv2dBackwardWeight(s, input: input, gradOutput: output, gradWeight: gradWeight)
            }
            try time("\(name) data grad (direct)", dims, flops: s.flops) {
                try device.conv2dBackwardData(s, gradOutput: output, weight: weight, gradInput: gradInput)
            }
        }
        let input = try random(batch * 400)
        let weight = try random(4000)
        let bias = try random(10)
        let logits = try random(batch * 10)
        let gradInput = try random(batch * 400)
        let gradWeight = try random(4000)
        let gradBias = try random(10)
        try time("fc forward (linear)", "\(batch)×10×400", flops: fc.flops) {
            try device.linearForward(fc, input: input, weight: weight, bias: bias, output: logits)
        }
        try time("fc backward (linear)", "\(batch)×10×400 ×2", flops: 2 * fc.flops) {
            try device.linearBackward(
                fc, input: input, weight: weight, gradOutput: logits, gradInput: gradInput,
                gradWeight: gradWeight, gradBias: gradBias)
        }
        return results
    }
}
