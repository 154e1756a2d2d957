import Foundation

/// A model, not a measurement: what TinyConvNet's training step would
/// cost on a named GPU if each operation took the longest of its three
/// limits,
///
///     t(op) = max(launches · launch, bytes / bandwidth, flops / peak),
///
/// with each operation's launches as counted on the OpenCL device that ran
/// the bench (its kernel family), its bytes the least it must move
/// (``Benchmark/Timing/bytes``) and its flops the dense arithmetic
/// (``Benchmark/Timing/flops``). A step is the sum over
/// ``OperationFixture/stepComposition``. The assumptions are printed with
/// the figure; the first GPU run replaces it with a measurement.
public struct GPUStepModel: Codable, Equatable, Sendable {
    /// The GPU the figures assume.
    public var gpu: String
    public var bandwidthBytesPerSecond: Double
    public var fp32FlopsPerSecond: Double
    /// Host enqueue plus device dispatch of one kernel.
    public var launchSeconds: Double
    public var batch: Int
    public var stepSeconds: Double
    /// ``stepSeconds`` × the 938 steps of an MNIST epoch at batch 64 (at
    /// other batch sizes, 60,000 / batch rounded up).
    public var epochSeconds: Double
    public var operations: [Part]

    /// One operation of the step under the model.
    public struct Part: Codable, Equatable, Sendable {
        public var operation: String
        public var launches: Int
        public var seconds: Double
        /// "launch", "bandwidth" or "arithmetic": the limit that sets `seconds`.
        public var bound: String
    }

    enum CodingKeys: String, CodingKey {
        case gpu, batch, operations
        case bandwidthBytesPerSecond = "bandwidth_bytes_per_second"
        case fp32FlopsPerSecond = "fp32_flops_per_second"
        case launchSeconds = "launch_seconds"
        case stepSeconds = "step_seconds"
        case epochSeconds = "epoch_seconds"
    }

    /// NVIDIA H100 PCIe's data-sheet figures (2.0 TB/s HBM2e, 51 TFLOP/s
    /// FP32 without tensor cores) and 5 µs a launch, the middle of the
    /// 3–7 µs that NVIDIA's OpenCL enqueue costs the host.
    public init?(
        operations timings: [Benchmark.Timing], batch: Int, gpu: String = "NVIDIA H100 PCIe",
        bandwidth: Double = 2.0e12, peak: Double = 51e12, launch: Double = 5e-6
    ) {
        let byName = Dictionary(
            timings.filter { $0.batch == batch }.map { ($0.operation, $0) }, uniquingKeysWith: { a, _ in a })
        var parts: [Part] = []
        var step = 0.0
        for (name, times) in OperationFixture.stepComposition {
            guard let t = byName[name], let launches = t.launches?.count, let bytes = t.bytes else { return nil }
            let limits = [
                ("launch", Double(launches) * launch), ("bandwidth", bytes / bandwidth),
                ("arithmetic", (t.flops ?? 0) / peak),
            ]
            let worst = limits.max { $0.1 < $1.1 }!
            parts.append(
                Part(operation: name, launches: launches * times, seconds: worst.1 * Double(times), bound: worst.0))
            step += worst.1 * Double(times)
        }
        self.gpu = gpu
        bandwidthBytesPerSecond = bandwidth
        fp32FlopsPerSecond = peak
        launchSeconds = launch
        self.batch = batch
        stepSeconds = step
        epochSeconds = step * Double((60_000 + batch - 1) / batch)
        operations = parts
    }

    /// Two lines for the bench's text output.
    public var summary: String {
        let launches = operations.reduce(0) { $0 + $1.launches }
        let bound = Dictionary(grouping: operations, by: \.bound).mapValues { $0.reduce(0) { $0 + $1.seconds } }
        return String(
            format: "model, not measured: %@ (assumed %.1f TB/s, %.0f TFLOP/s FP32, %.0f µs a launch): "
                + "step at batch %d ≈ %.1f µs (%d launches; launch-bound %.1f µs, bandwidth-bound %.1f µs, "
                + "arithmetic-bound %.1f µs), epoch ≈ %.3f s",
            gpu, bandwidthBytesPerSecond / 1e12, fp32FlopsPerSecond / 1e12, launchSeconds * 1e6, batch,
            stepSeconds * 1e6, launches, 1e6 * (bound["launch"] ?? 0), 1e6 * (bound["bandwidth"] ?? 0),
            1e6 * (bound["arithmetic"] ?? 0), epochSeconds)
    }
}
