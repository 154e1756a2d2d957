import Foundation
import NetIO

/// Timings of every operation a training step uses, at TinyConvNet's shapes,
/// on one device: what `convsvd bench` prints and writes as JSON.
///
/// Each figure is the median of `repeats` samples taken after `warmup`
/// unmeasured runs. A sample runs the operation `r` times and then waits for
/// the device (``Device/finish()``), divided by `r`; `r` is chosen so that a
/// sample lasts about 5 ms, which keeps launch and synchronisation overhead
/// out of short operations without hiding it from whole steps (a step
/// sample is always one step, read-back included).
public struct Benchmark {
    public struct Options: Sendable {
        public var batchSizes: [Int]
        public var repeats: Int
        public var warmup: Int
        /// Target duration of one sample, seconds.
        public var sampleSeconds: Double
        /// Steps between reads of the step results, as the trainer's
        /// ``ModelTrainer/stepsPerRead``: the block ``StepStructure`` counts.
        public var stepsPerRead: Int
        public init(
            batchSizes: [Int] = [64, 256], repeats: Int = 15, warmup: Int = 3, sampleSeconds: Double = 0.005,
            stepsPerRead: Int = 50
        ) {
            self.batchSizes = batchSizes
            self.repeats = repeats
            self.warmup = warmup
            self.sampleSeconds = sampleSeconds
            self.stepsPerRead = stepsPerRead
        }
        /// Few repeats at batch 8: for tests, not for figures.
        public static let quick = Options(
            batchSizes: [8], repeats: 3, warmup: 1, sampleSeconds: 0.0005, stepsPerRead: 50)
    }

    /// One operation's timing.
    public struct Timing: Codable, Equatable, Sendable {
        /// e.g. "conv2.forward", "gemm.conv2.weight_grad", "step".
        public var operation: String
        public var batch: Int
        /// The shape in words, e.g. "16×7744×72 Bᵀ" or "(64,8,13,13)→16".
        public var shape: String
        public var medianSeconds: Double
        public var minSeconds: Double
        public var maxSeconds: Double
        public var runs: Int
        /// Useful floating-point operations of one run (nil where undefined).
        public var flops: Double?
        public var gflopsPerSecond: Double? { flops.map { $0 / medianSeconds / 1e9 } }
        /// The bytes one run must move at least: each input read and each
        /// output written once (nil where not counted). A kernel that
        /// re-reads data moves more.
        public var bytes: Double?
        /// The host's median over this device's median (> 1: faster than the
        /// host). Nil for the host itself and where the host has no figure.
        public var speedupOverHost: Double?
        /// The kernels one run launched, with their geometry (OpenCL only).
        public var launches: [KernelLaunch]?

        enum CodingKeys: String, CodingKey {
            case operation, batch, shape, runs, flops, launches, bytes
            case medianSeconds = "median_seconds"
            case minSeconds = "min_seconds"
            case maxSeconds = "max_seconds"
            case gflopsPerSecond = "gflops_per_second"
            case speedupOverHost = "speedup_over_host"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(operation, forKey: .operation)
            try c.encode(batch, forKey: .batch)
            try c.encode(shape, forKey: .shape)
            try c.encode(runs, forKey: .runs)
            try c.encode(medianSeconds, forKey: .medianSeconds)
            try c.encode(minSeconds, forKey: .minSeconds)
            try c.encode(maxSeconds, forKey: .maxSeconds)
            try c.encodeIfPresent(flops, forKey: .flops)
            try c.encodeIfPresent(bytes, forKey: .bytes)
            try c.encodeIfPresent(gflopsPerSecond, forKey: .gflopsPerSecond)
            try c.encodeIfPresent(speedupOverHost, forKey: .speedupOverHost)
            try c.encodeIfPresent(launches, forKey: .launches)
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            operation = try c.decode(String.self, forKey: .operation)
            batch = try c.decode(Int.self, forKey: .batch)
            shape = try c.decode(String.self, forKey: .shape)
            runs = try c.decode(Int.self, forKey: .runs)
            medianSeconds = try c.decode(Double.self, forKey: .medianSeconds)
            minSeconds = try c.decode(Double.self, forKey: .minSeconds)
            maxSeconds = try c.decode(Double.self, forKey: .maxSeconds)
            flops = try c.decodeIfPresent(Double.self, forKey: .flops)
            bytes = try c.decodeIfPresent(Double.self, forKey: .bytes)
            speedupOverHost = try c.decodeIfPresent(Double.self, forKey: .speedupOverHost)
            launches = try c.decodeIfPresent([KernelLaunch].self, forKey: .launches)
        }

        init(operation: String, batch: Int, shape: String, samples: [Double], flops: Double?, bytes: Double? = nil) {
            let sorted = samples.sorted()
            self.operation = operation
            self.batch = batch
            self.shape = shape
            self.flops = flops
            self.bytes = bytes
            runs = sorted.count
            medianSeconds =
                sorted.count % 2 == 1
                ? sorted[sorted.count / 2]
                : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            minSeconds = sorted.first ?? .nan
            maxSeconds = sorted.last ?? .nan
        }
    }

    /// One operation's share of a training step's median time.
    public struct Share: Codable, Equatable, Sendable {
        public var operation: String
        public var seconds: Double
        public var fraction: Double
    }

    /// Everything measured on one device.
    public struct DeviceReport: Codable, Sendable {
        public var device: DeviceInfo
        public var operations: [Timing]
        /// Per batch size: where a step's time goes, the remainder
        /// ("host and transfers") included.
        public var stepBreakdown: [Int: [Share]]
        /// A full epoch of training (60k images, batch 64) when asked for.
        public var epoch: Timing?
        /// Kernel preparation for a training step, seconds: with an empty and
        /// with a warm cache (OpenCL devices only).
        public var programPreparation: ProgramPreparation?
        /// Launches of one training step at the first batch size (``DeviceCounters``).
        public var launchesPerStep: Double?
        /// Host waits of one training step at the first batch size (``DeviceCounters``).
        public var hostWaitsPerStep: Double?
        /// The training step at the first batch size as the device meets it:
        /// launches, waits, bytes and enqueue time per step.
        public var stepStructure: StepStructure?
        /// OpenCL only: a model (not a measurement) of the same step's
        /// launches on a named GPU (``GPUStepModel``).
        public var gpuModel: GPUStepModel?

        enum CodingKeys: String, CodingKey {
            case device, operations, epoch, launchesPerStep, hostWaitsPerStep
            case stepStructure = "step_structure"
            case gpuModel = "gpu_model"
            case stepBreakdown = "step_breakdown"
            case programPreparation = "program_preparation"
        }
    }

    /// The time to make ready every kernel a training step launches (OpenCL
    /// builds each kernel when first launched): `coldSeconds` from an empty
    /// kernel cache and a program the driver has not seen, `warmSeconds`
    /// from the cache that run filled. Kernels no training step uses (GEMM,
    /// im2col, the unpooled convolutions…) are not included: they are built
    /// when an analysis first launches them.
    public struct ProgramPreparation: Codable, Equatable, Sendable {
        public var coldSeconds: Double
        public var warmSeconds: Double
        /// How many kernels a training step launched, nil when not recorded.
        public var kernelCount: Int?
        enum CodingKeys: String, CodingKey {
            case coldSeconds = "cold_seconds"
            case warmSeconds = "warm_seconds"
            case kernelCount = "kernel_count"
        }
        public init(coldSeconds: Double, warmSeconds: Double, kernelCount: Int? = nil) {
            self.coldSeconds = coldSeconds
            self.warmSeconds = warmSeconds
            self.kernelCount = kernelCount
        }
    }

    public let options: Options
    public init(options: Options = Options()) { self.options = options }

    /// Times one closure: warm-up, then `repeats` samples of about
    /// `sampleSeconds` each (at least one run per sample).
    func time(_ device: any Device, _ body: () throws -> Void) throws -> [Double] {
        for _ in 0..<options.warmup { try body() }
        try device.finish()
        let probeStart = Clocks.wall()
        try body()
        try device.finish()
        let once = max(1e-7, Clocks.wall() - probeStart)
        let runsPerSample = max(1, min(1000, Int(options.sampleSeconds / once)))
        var samples: [Double] = []
        for _ in 0..<options.repeats {
            let start = Clocks.wall()
            for _ in 0..<runsPerSample { try body() }
            try device.finish()
            samples.append((Clocks.wall() - start) / Double(runsPerSample))
        }
        return samples
    }

    /// Every operation and whole steps on `device`; `epochData`, when given,
    /// also times a full training epoch on it.
    public func run(
        on device: any Device, epochData: Dataset? = nil,
        progress: (String) -> Void = { _ in }
    ) throws -> DeviceReport {
        var timings: [Timing] = []
        var breakdown: [Int: [Share]] = [:]
        var structure: StepStructure?
        for batch in options.batchSizes {
            progress("\(device.info.selector): operations at batch \(batch)")
            let fixture = try OperationFixture(device: device, batch: batch)
            var byName: [String: Timing] = [:]
            for op in fixture.operations {
                var t = Timing(
                    operation: op.name, batch: batch, shape: op.shape,
                    samples: try time(device, op.run), flops: op.flops, bytes: op.bytes)
                t.launches = try Self.launches(on: device, op.run)
                timings.append(t)
                byName[op.name] = t
            }
            progress("\(device.info.selector): training step at batch \(batch)")
            var step = try fixture.stepTiming(self)
            step.bytes = OperationFixture.stepComposition.reduce(0.0) { $0 + (byName[$1.0]?.bytes ?? 0) * Double($1.1) }
            step.launches = try Self.launches(on: device) {
                try fixture.network.trainingStep(fixture.workspace)
                try fixture.optimizer.update(
                    parameters: fixture.network.parameters,
                    gradients: fixture.network.gradients)
            }
            timings.append(step)
            if structure == nil { structure = try fixture.stepStructure(stepsPerRead: options.stepsPerRead) }
            breakdown[batch] = Self.shares(
                step: step,
                parts: OperationFixture.stepComposition.map { name, times in
                    (name, (byName[name]?.medianSeconds ?? 0) * Double(times))
                })
        }
        var epoch: Timing?
        if let data = epochData {
            progress("\(device.info.selector): one epoch of \(data.count) images")
            epoch = try Self.timeEpoch(device: device, data: data)
        }
        return DeviceReport(
            device: device.info, operations: timings, stepBreakdown: breakdown, epoch: epoch,
            programPreparation: nil, launchesPerStep: structure?.launchesPerStep,
            hostWaitsPerStep: structure?.hostWaitsPerStep, stepStructure: structure,
            gpuModel: timings.first { $0.operation == "step" }.flatMap { GPUStepModel(operations: timings, step: $0) })
    }

    /// The kernels `body` launches on `device`, in order; nil unless it is
    /// an ``OpenCLDevice``.
    static func launches(on device: any Device, _ body: () throws -> Void) throws -> [KernelLaunch]? {
        guard let openCL = device as? OpenCLDevice else { return nil }
        openCL.launchLog = []
        defer { openCL.launchLog = nil }
        try body()
        try openCL.finish()
        return openCL.launchLog
    }

    /// The launches of each operation of a training step
    /// (``OperationFixture/stepComposition``) at batch size `batch` on
    /// `device`, in step order: what the launch-geometry tests check.
    public static func stepLaunches(on device: OpenCLDevice, batch: Int) throws
        -> [(operation: String, launches: [KernelLaunch])]
    {
        let fixture = try OperationFixture(device: device, batch: batch)
        let byName = Dictionary(uniqueKeysWithValues: fixture.operations.map { ($0.name, $0.run) })
        return try OperationFixture.stepComposition.map { name, _ in
            guard let run = byName[name] else { throw OpenCLError.invalidArgument("no bench operation \(name)") }
            return (name, try launches(on: device, run) ?? [])
        }
    }

    /// Shares of the step's median: each part, then what is left over.
    /// The share that is the step's median less its timed operations: host
    /// work, transfers and waits. It is negative when the operations ran
    /// faster inside the step (their data already in cache) than timed alone.
    public static let restOfStep = "rest: host, transfers, waits"

    static func shares(step: Timing, parts: [(String, Double)]) -> [Share] {
        var out = parts.map { Share(operation: $0.0, seconds: $0.1, fraction: $0.1 / step.medianSeconds) }
        let rest = step.medianSeconds - parts.reduce(0) { $0 + $1.1 }
        out.append(
            Share(
                operation: Self.restOfStep, seconds: rest,
                fraction: rest / step.medianSeconds))
        return out
    }

    /// One full training epoch (batch 64, Adam) from a fresh network: a
    /// single sample, the figure users compare with PyTorch's 1.76 s.
    static func timeEpoch(device: any Device, data: Dataset) throws -> Timing {
        let settings = TrainingSettings(epochs: 1, batchSize: 64, seed: 1)
        let trainer = try Trainer(device: device, settings: settings, train: data, test: data.prefix(1))
        try trainer.run(outputDirectory: nil)
        let seconds = trainer.history[0].seconds
        let convFlops = 3 * (TinyConvNet.Shapes(batch: 1).conv1.flops + TinyConvNet.Shapes(batch: 1).conv2.flops)
        return Timing(
            operation: "epoch", batch: 64, shape: "\(data.count) images", samples: [seconds],
            flops: Double(data.count) * convFlops)
    }

    /// Fills in each device timing's speed-up over the host's.
    public static func compareWithHost(_ reports: inout [DeviceReport]) {
        guard let host = reports.first(where: { $0.device.kind == .host }) else { return }
        var hostMedian: [String: Double] = [:]
        for t in host.operations { hostMedian["\(t.operation)@\(t.batch)"] = t.medianSeconds }
        for i in reports.indices where reports[i].device.kind != .host {
            for j in reports[i].operations.indices {
                let t = reports[i].operations[j]
                reports[i].operations[j].speedupOverHost = hostMedian["\(t.operation)@\(t.batch)"].map {
                    $0 / t.medianSeconds
                }
            }
            if let e = reports[i].epoch, let h = host.epoch {
                reports[i].epoch?.speedupOverHost = h.medianSeconds / e.medianSeconds
            }
        }
    }
}
