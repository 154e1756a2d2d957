import CLAPACK
import Foundation
import Models
import NetIO

/// `convsvd bench --model M` for a network description (a ResNet, a model
/// file) on one device: a training step's median, each of its operations
/// timed one by one, the launches and host waits of a step, and optionally
/// one epoch of the model's recipe.
///
/// A step is what the trainer queues for a batch: the forward pass and the
/// loss, the backward pass, the optimiser's update, and the read-back of the
/// batch's loss (the batch's gather on the device is not included). Each
/// figure is the median of `repeats` steps after `warmup` unmeasured ones.
/// Operations are timed inside real steps (``NetworkPlan/operationHook``),
/// each between two waits for the device, so their sum exceeds the step on a
/// device that overlaps them and equals it, give or take the clock, on the
/// host, which runs one operation at a time.
public struct PlanBenchmark {
    public struct Options: Sendable {
        public var batch: Int
        public var repeats: Int
        public var warmup: Int
        /// Steps between reads of the step results (the trainer's
        /// ``ModelTrainer/stepsPerRead``): the block ``StepStructure`` counts.
        public var stepsPerRead: Int
        public init(batch: Int = 128, repeats: Int = 10, warmup: Int = 2, stepsPerRead: Int = 50) {
            self.batch = batch
            self.repeats = repeats
            self.warmup = warmup
            self.stepsPerRead = stepsPerRead
        }
    }

    /// One operation of a step: its median over the timed steps.
    public struct OperationTiming: Codable, Equatable, Sendable {
        /// "layer1.0.conv1.forward", "optimizer.update", …
        public var operation: String
        /// "conv", "batchnorm", "relu", "maxpool", "avgpool", "linear", "add", "loss", "optimizer".
        public var kind: String
        /// "forward", "data_grad", "weight_grad", "backward", "grad_sum", "update".
        public var pass: String
        public var medianSeconds: Double
        public var minSeconds: Double
        public var maxSeconds: Double
        /// Timed samples.
        public var runs: Int
        /// Multiply-adds of one run at the bench's batch; nil for operations without a product.
        public var multiplyAdds: Int?
        /// 2 · multiplyAdds / medianSeconds / 1e9.
        public var gflopsPerSecond: Double?
        /// The least bytes one run moves (``NetworkPlan/StepOperation/bytes``);
        /// nil for the whole step.
        public var bytes: Int?

        enum CodingKeys: String, CodingKey {
            case operation, kind, pass, runs, bytes
            case medianSeconds = "median_seconds"
            case minSeconds = "min_seconds"
            case maxSeconds = "max_seconds"
            case multiplyAdds = "multiply_adds"
            case gflopsPerSecond = "gflops_per_second"
        }

        init(
            operation: String, kind: String, pass: String, samples: [Double], multiplyAdds: Int?, bytes: Int? = nil
        ) {
            self.operation = operation
            self.bytes = bytes
            self.kind = kind
            self.pass = pass
            let s = Samples(samples)
            (medianSeconds, minSeconds, maxSeconds) = (s.median, s.min, s.max)
            runs = samples.count
            self.multiplyAdds = multiplyAdds
            gflopsPerSecond = multiplyAdds.map { 2 * Double($0) / s.median / 1e9 }
        }
    }

    /// The operations of one kind and pass together (e.g. every conv's
    /// weight gradient): where a step's time goes.
    public struct KindTotal: Codable, Equatable, Sendable {
        public var kind: String
        public var pass: String
        public var count: Int
        /// The sum of the operations' medians.
        public var seconds: Double
        public var multiplyAdds: Int?
        public var gflopsPerSecond: Double?
        /// seconds over the step's median.
        public var fractionOfStep: Double

        enum CodingKeys: String, CodingKey {
            case kind, pass, count, seconds
            case multiplyAdds = "multiply_adds"
            case gflopsPerSecond = "gflops_per_second"
            case fractionOfStep = "fraction_of_step"
        }
    }

    /// A training epoch: measured (``measured``), or the step's median times
    /// the steps of an epoch (an estimate, labelled so).
    public struct Epoch: Codable, Equatable, Sendable {
        public var images: Int
        public var steps: Int
        public var seconds: Double
        /// True: one epoch was trained (the trainer's clock, evaluation
        /// excluded); false: step median × steps.
        public var measured: Bool
        /// The model's training work on `images` images over `seconds`.
        public var gflopsPerSecond: Double

        enum CodingKeys: String, CodingKey {
            case images, steps, seconds, measured
            case gflopsPerSecond = "gflops_per_second"
        }
    }

    /// Everything measured on one device.
    public struct DeviceReport: Codable, Sendable {
        public var device: DeviceInfo
        public var batch: Int
        /// A whole step: forward, backward, update, loss read-back.
        public var step: OperationTiming
        /// The step's useful work (forward, data and weight gradients) in GFLOP/s.
        public var stepGflopsPerSecond: Double
        /// Each operation in step order, then the optimiser's update.
        public var operations: [OperationTiming]
        public var byKind: [KindTotal]
        /// Launches (``DeviceCounters/launches``) of one step.
        public var launchesPerStep: Double
        /// Host waits (``DeviceCounters/hostWaits``) of one step.
        public var hostWaitsPerStep: Double
        /// Launches, waits, bytes and enqueue time per step, over a block of
        /// steps queued as the trainer queues them.
        public var stepStructure: StepStructure
        /// On an OpenCL device: this step's launches and operations on a
        /// named GPU, modelled (``GPUStepModel``), never measured.
        public var gpuModel: GPUStepModel?
        public var epoch: Epoch?

        enum CodingKeys: String, CodingKey {
            case device, batch, step, operations, epoch, launchesPerStep, hostWaitsPerStep
            case stepStructure = "step_structure"
            case gpuModel = "gpu_model"
            case stepGflopsPerSecond = "step_gflops_per_second"
            case byKind = "by_kind"
        }
    }

    public let options: Options
    public init(options: Options = Options()) { self.options = options }

    /// Median, minimum and maximum of samples.
    struct Samples {
        let median: Double, min: Double, max: Double
        init(_ samples: [Double]) {
            let sorted = samples.sorted()
            let n = sorted.count
            median = n == 0 ? .nan : n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
            min = sorted.first ?? .nan
            max = sorted.last ?? .nan
        }
    }

    /// Steps of `plan` at the bench's batch on its device, operation by
    /// operation; with `epoch`, one epoch of `settings` on `train` too.
    public func run(
        plan: NetworkPlan, settings: TrainingSettings, epoch train: Dataset? = nil, epochImages: Int,
        progress: (String) -> Void = { _ in }
    ) throws -> DeviceReport {
        let device = plan.device
        let batch = options.batch
        let w = try plan.workspace(batch: batch)
        var random = SeededRandom(seed: UInt64(batch), stream: 0xBE_0C)
        try plan.setRandomBatch(w, random: &random)
        let optimizer = try Optimizer(
            settings.optimizer, learningRate: settings.learningRate, parameters: plan.parameterBuffers,
            names: plan.parameterNames, device: device)
        let state = try plan.checkpointTensors()
        let counters = plan.batchesTracked
        func step() throws -> TinyConvNet.PendingBatchResult {
            try plan.forward(w, training: true)
            try plan.backward(w)
            try optimizer.update(parameters: plan.parameterBuffers, gradients: plan.gradientBuffers)
            return try plan.requestBatchResult(w)
        }
        progress("\(device.info.selector): \(plan.modelName) training steps at batch \(batch)")
        for _ in 0..<options.warmup { _ = try step().value() }
        var stepSamples: [Double] = []
        for _ in 0..<options.repeats {
            let start = Clocks.wall()
            _ = try step().value()
            stepSamples.append(Clocks.wall() - start)
        }

        progress("\(device.info.selector): \(plan.modelName) step structure over \(options.stepsPerRead) steps")
        let own = w.perSample
        let structure = try StepStructure.measure(device: device, batch: batch, stepsPerRead: options.stepsPerRead) {
            w.perSample = $0
            try plan.forward(w, training: true)
            try plan.backward(w)
            try optimizer.update(parameters: plan.parameterBuffers, gradients: plan.gradientBuffers)
        }
        w.perSample = own

        progress("\(device.info.selector): \(plan.modelName) operations one by one")
        var samples: [[Double]] = []
        var described: [NetworkPlan.StepOperation] = []
        var index = 0
        plan.operationHook = { op, body in
            try device.finish()
            let start = Clocks.wall()
            try body()
            try device.finish()
            let seconds = Clocks.wall() - start
            if index == samples.count {
                samples.append([])
                described.append(op)
            }
            samples[index].append(seconds)
            index += 1
        }
        defer { plan.operationHook = nil }
        var updateSamples: [Double] = []
        for repeatIndex in 0..<(options.repeats + 1) {
            index = 0
            try plan.forward(w, training: true)
            try plan.backward(w)
            try device.finish()
            let start = Clocks.wall()
            try optimizer.update(parameters: plan.parameterBuffers, gradients: plan.gradientBuffers)
            try device.finish()
            // The first pass is a warm-up: its samples are dropped.
            if repeatIndex == 0 {
                samples = samples.map { _ in [] }
            } else {
                updateSamples.append(Clocks.wall() - start)
            }
        }
        plan.operationHook = nil
        var operations = zip(described, samples).map { op, s in
            OperationTiming(
                operation: op.name, kind: op.kind, pass: op.pass, samples: s, multiplyAdds: op.multiplyAdds,
                bytes: op.bytes)
        }
        operations.append(
            OperationTiming(
                operation: "optimizer.update", kind: "optimizer", pass: "update", samples: updateSamples,
                multiplyAdds: nil, bytes: Self.updateBytes(settings.optimizer, parameters: plan.parameterBuffers)))
        // The measurements moved the weights and the running statistics: put them back.
        try plan.load(checkpointTensors: state)
        plan.batchesTracked = counters

        let stepTiming = OperationTiming(
            operation: "step", kind: "step", pass: "step", samples: stepSamples, multiplyAdds: nil)
        let stepFLOPs = plan.summary.trainingFLOPs(images: batch)
        var epochFigure: Epoch?
        if let train {
            progress("\(device.info.selector): one epoch of \(train.count) images")
            epochFigure = try Self.timeEpoch(plan: plan, settings: settings, train: train)
        } else {
            let steps = (epochImages + batch - 1) / batch
            let seconds = stepTiming.medianSeconds * Double(steps)
            epochFigure = Epoch(
                images: epochImages, steps: steps, seconds: seconds, measured: false,
                gflopsPerSecond: plan.summary.trainingFLOPs(images: epochImages) / seconds / 1e9)
        }
        let gpuModel =
            device.info.kind == .host
            ? nil
            : GPUStepModel(
                work: operations.map {
                    GPUStepModel.Work(
                        operation: $0.operation, bytes: Double($0.bytes ?? 0), flops: 2 * Double($0.multiplyAdds ?? 0))
                }, launches: Int(structure.launchesPerStep.rounded()), batch: batch, epochImages: epochImages)
        return DeviceReport(
            device: device.info, batch: batch, step: stepTiming,
            stepGflopsPerSecond: stepFLOPs / stepTiming.medianSeconds / 1e9, operations: operations,
            byKind: Self.totals(operations, step: stepTiming.medianSeconds),
            launchesPerStep: structure.launchesPerStep, hostWaitsPerStep: structure.hostWaitsPerStep,
            stepStructure: structure, gpuModel: gpuModel, epoch: epochFigure)
    }

    /// The least bytes an optimiser's update moves: every parameter and
    /// gradient read, the parameter written, and each state tensor (SGD's
    /// velocity; Adam's two moments) read and written.
    static func updateBytes(_ kind: OptimizerKind, parameters: [Buffer]) -> Int {
        let floats = parameters.reduce(0) { $0 + $1.count }
        let states: Int
        switch kind {
        case .sgd: states = 1
        case .adam: states = 2
        }
        return 4 * floats * (3 + 2 * states)
    }

    /// Sums of the operations' medians by kind and pass, largest first.
    static func totals(_ operations: [OperationTiming], step: Double) -> [KindTotal] {
        var order: [String] = []
        var groups: [String: [OperationTiming]] = [:]
        for op in operations {
            let key = op.kind + "." + op.pass
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(op)
        }
        return order.map { key in
            let ops = groups[key]!
            let seconds = ops.reduce(0) { $0 + $1.medianSeconds }
            let madds = ops.allSatisfy { $0.multiplyAdds != nil } ? ops.reduce(0) { $0 + $1.multiplyAdds! } : nil
            return KindTotal(
                kind: ops[0].kind, pass: ops[0].pass, count: ops.count, seconds: seconds, multiplyAdds: madds,
                gflopsPerSecond: madds.map { 2 * Double($0) / seconds / 1e9 }, fractionOfStep: seconds / step)
        }.sorted { $0.seconds > $1.seconds }
    }

    /// One epoch of `settings` on `train` with a fresh copy of the plan's
    /// network on its device, the trainer's clock (evaluation excluded).
    static func timeEpoch(plan: NetworkPlan, settings: TrainingSettings, train: Dataset) throws -> Epoch {
        var one = settings
        one.epochs = 1
        one.trainLimit = nil
        one.testLimit = nil
        let trainer = try ModelTrainer(network: plan, settings: one, train: train, test: train.prefix(1))
        let state = try plan.checkpointTensors()
        let tracked = plan.batchesTracked
        defer {
            try? plan.load(checkpointTensors: state)
            plan.batchesTracked = tracked
        }
        try trainer.run(outputDirectory: nil)
        let seconds = trainer.history[0].seconds
        return Epoch(
            images: train.count, steps: (train.count + one.batchSize - 1) / one.batchSize, seconds: seconds,
            measured: true, gflopsPerSecond: plan.summary.trainingFLOPs(images: train.count) / seconds / 1e9)
    }
}

/// The machine's single-precision matrix-product peak, as OpenBLAS reaches
/// it: the best of a few `cblas_sgemm` calls on square matrices, on a given
/// number of OpenBLAS threads, measured in the run whose figures it scales.
public struct SgemmPeak: Codable, Equatable, Sendable {
    public var size: Int
    public var threads: Int
    public var gflopsPerSecond: Double
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case size, threads, seconds
        case gflopsPerSecond = "gflops_per_second"
    }

    /// `runs` products C = A·B of `size`×`size` matrices after one warm-up,
    /// on `threads` OpenBLAS threads; the fastest counts. OpenBLAS goes back
    /// to one thread afterwards (the host device's workers each call it
    /// single-threaded).
    public static func measure(size: Int = 2048, threads: Int = 2, runs: Int = 3) -> SgemmPeak {
        let n = size
        var random = SeededRandom(seed: 2048)
        let a = (0..<(n * n)).map { _ in random.uniform(1) }
        let b = (0..<(n * n)).map { _ in random.uniform(1) }
        var c = [Float](repeating: 0, count: n * n)
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        func product() -> Double {
            let start = Clocks.wall()
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n),
                0, &c, Int32(n))
            return Clocks.wall() - start
        }
        _ = product()
        let best = (0..<max(1, runs)).map { _ in product() }.min()!
        return SgemmPeak(size: n, threads: threads, gflopsPerSecond: 2 * pow(Double(n), 3) / best / 1e9, seconds: best)
    }
}

/// The process's peak resident memory so far (getrusage's ru_maxrss), bytes.
public func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    // Linux reports kilobytes.
    return usage.ru_maxrss * 1024
}
