import Foundation

/// A model, not a measurement: what a training step (TinyConvNet's, or a
/// network description's in `bench --model`) would cost on a named GPU. The host enqueues the step's kernels while the GPU
/// runs earlier ones (training never waits inside a block of steps), so a
/// step takes the longer of the two:
///
///     t(step) = max(L · launch, Σ_op max(bytes_op / bandwidth, flops_op / peak)),
///
/// L the kernels a step launches, counted on the OpenCL device that ran the
/// bench (its kernel family, fused kernels included), and per operation of
/// the step the least bytes it must move and its dense arithmetic
/// (``Work``). The assumptions are printed with the figure; the first GPU
/// run replaces it with a measurement. It counts no latency inside a
/// kernel: the gpu family's fused step
/// (``OpenCLDevice/tinyConvNetTrainingStep(batch:input:labels:parameters:logits:perSample:gradients:gather:)``)
/// runs one work-group per image through a dozen phases, which the model
/// takes to cost only its share of the bandwidth and arithmetic limits.
public struct GPUStepModel: Codable, Equatable, Sendable {
    /// The GPU the figures assume.
    public var gpu: String
    public var bandwidthBytesPerSecond: Double
    public var fp32FlopsPerSecond: Double
    /// Host enqueue of one kernel.
    public var launchSeconds: Double
    public var batch: Int
    /// Kernels one step launches (L).
    public var launches: Int
    /// L · launch: the host's side.
    public var enqueueSeconds: Double
    /// Σ over the operations of their bandwidth or arithmetic limit: the GPU's side.
    public var deviceSeconds: Double
    public var stepSeconds: Double
    /// ``stepSeconds`` × the steps of a 60,000-image epoch at ``batch``.
    public var epochSeconds: Double
    public var operations: [Part]

    /// One operation of the step on the GPU's side.
    public struct Part: Codable, Equatable, Sendable {
        public var operation: String
        public var seconds: Double
        /// "bandwidth" or "arithmetic": the limit that sets `seconds`.
        public var bound: String
    }

    enum CodingKeys: String, CodingKey {
        case gpu, batch, launches, operations
        case bandwidthBytesPerSecond = "bandwidth_bytes_per_second"
        case fp32FlopsPerSecond = "fp32_flops_per_second"
        case launchSeconds = "launch_seconds"
        case enqueueSeconds = "enqueue_seconds"
        case deviceSeconds = "device_seconds"
        case stepSeconds = "step_seconds"
        case epochSeconds = "epoch_seconds"
    }

    /// What one operation of a step asks of the GPU.
    public struct Work: Sendable {
        public var operation: String
        /// The least bytes it moves through the GPU's memory.
        public var bytes: Double
        /// Its floating-point operations (2 per multiply-add).
        public var flops: Double
        /// How many times a step runs it.
        public var times: Int
        public init(operation: String, bytes: Double, flops: Double, times: Int = 1) {
            self.operation = operation
            self.bytes = bytes
            self.flops = flops
            self.times = times
        }
    }

    /// The model of a step of `work` with `launches` kernel launches, its
    /// epoch `epochImages` images at `batch`. The defaults are NVIDIA H100
    /// PCIe's data-sheet figures (2.0 TB/s HBM2e, 51 TFLOP/s FP32 without
    /// tensor cores) and 5 µs a launch, the middle of the 3–7 µs that
    /// NVIDIA's OpenCL enqueue costs the host.
    public init(
        work: [Work], launches: Int, batch: Int, epochImages: Int, gpu: String = "NVIDIA H100 PCIe",
        bandwidth: Double = 2.0e12, peak: Double = 51e12, launch: Double = 5e-6
    ) {
        let parts = work.map { w in
            let memory = w.bytes / bandwidth
            let arithmetic = w.flops / peak
            return Part(
                operation: w.operation, seconds: max(memory, arithmetic) * Double(w.times),
                bound: memory >= arithmetic ? "bandwidth" : "arithmetic")
        }
        self.gpu = gpu
        bandwidthBytesPerSecond = bandwidth
        fp32FlopsPerSecond = peak
        launchSeconds = launch
        self.batch = batch
        self.launches = launches
        enqueueSeconds = Double(launches) * launch
        deviceSeconds = parts.reduce(0) { $0 + $1.seconds }
        stepSeconds = max(enqueueSeconds, deviceSeconds)
        epochSeconds = stepSeconds * Double((epochImages + batch - 1) / batch)
        operations = parts
    }

    /// TinyConvNet's step from the bench's timings: the operations of
    /// ``OperationFixture/stepComposition`` at the step's batch, a
    /// 60,000-image epoch. Nil when a figure it needs is missing (no launch
    /// count: not an OpenCL device).
    public init?(operations timings: [Benchmark.Timing], step: Benchmark.Timing) {
        guard let launches = step.launches?.count else { return nil }
        let byName = Dictionary(
            timings.filter { $0.batch == step.batch }.map { ($0.operation, $0) }, uniquingKeysWith: { a, _ in a })
        var work: [Work] = []
        for (name, times) in OperationFixture.stepComposition {
            guard let t = byName[name], let bytes = t.bytes else { return nil }
            work.append(Work(operation: name, bytes: bytes, flops: t.flops ?? 0, times: times))
        }
        self.init(work: work, launches: launches, batch: step.batch, epochImages: 60_000)
    }

    /// One line for the bench's text output.
    public var summary: String {
        String(
            format: "model, not measured: %@ (assumed %.1f TB/s, %.0f TFLOP/s FP32, %.0f µs a launch): "
                + "step at batch %d ≈ %.1f µs, the longer of the host's %d launches (%.1f µs) and the GPU's "
                + "bandwidth and arithmetic limits (%.2f µs); epoch ≈ %.3f s",
            gpu, bandwidthBytesPerSecond / 1e12, fp32FlopsPerSecond / 1e12, launchSeconds * 1e6, batch,
            stepSeconds * 1e6, launches, enqueueSeconds * 1e6, deviceSeconds * 1e6, epochSeconds)
    }
}
