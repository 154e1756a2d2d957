import ArgumentParser
import DataParallel
import Foundation
import GPUNet
import Models
import NetIO

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time every operation and whole training steps on each device, against the host.",
        discussion: """
            Medians of N timed samples after warm-up, GFLOP/s where the arithmetic is defined, \
            each device's speed-up over the host, and each operation's share of a training step. \
            With --model other than tiny: that model's training step at its recipe's batch (128), \
            each operation timed inside real steps, launches and host waits per step, an epoch \
            (measured with --epoch, else step median × steps, labelled), the model's training work \
            against an OpenBLAS sgemm peak measured in the same run, the process's peak memory, \
            and with --pytorch PyTorch's epoch (scripts/pytorch_models.py time-epoch).
            """)

    @Option(
        name: .long, parsing: .upToNextOption,
        help: "Devices to measure (default: the host and every OpenCL device).")
    var device: [String] = []

    @Option(help: "Timed samples per operation (default: 15; 5 steps for a model other than tiny).")
    var repeats: Int?

    @Option(
        name: .customLong("batch-sizes"), parsing: .upToNextOption,
        help: "Batch sizes (default: 64 256; a model other than tiny: its recipe's 128, one size).")
    var batchSizes: [Int] = []

    @Flag(
        help:
            "Also time one full training epoch (tiny: MNIST, 60,000 images, batch 64; other models: the recipe on --dataset)."
    )
    var epoch = false

    @OptionGroup var model: ModelOption

    @Option(
        name: .customLong("train-limit"),
        help: "A model other than tiny: the epoch's images (the first N of the training set; default all).")
    var trainLimit: Int?

    @Flag(
        help:
            "A model other than tiny: also time PyTorch's epoch (scripts/pytorch_models.py time-epoch) in the same run."
    )
    var pytorch = false

    @Option(help: "The Python with torch for --pytorch (default: $CONVSVD_PYTHON, else python3).")
    var python: String?

    @Flag(help: "Few repeats at batch 8: a smoke test, not figures.")
    var quick = false

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var data: DataOptions
    @OptionGroup var distributed: DistributedOptions

    @Option(help: "OpenCL kernel family: auto (by device type; $CONVSVD_KERNELS when set) | cpu | gpu.")
    var kernels: String = "auto"

    func validate() throws {
        if let repeats, repeats < 1 { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        guard batchSizes.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--batch-sizes must be positive") }
        if let trainLimit, trainLimit < 1 {
            throw ValidationError("--train-limit must be at least 1 (got \(trainLimit))")
        }
        if model.isTiny {
            if trainLimit != nil || pytorch || python != nil {
                throw ValidationError("--train-limit, --pytorch and --python apply to a --model other than tiny")
            }
        } else if batchSizes.count > 1 {
            throw ValidationError("--batch-sizes: a model other than tiny is measured at one batch size")
        }
    }

    func run() throws {
        try reportingErrors {
            if !model.isTiny {
                guard distributed.distributed == nil else {
                    throw ValidationError("--distributed: bench times a data-parallel step of TinyConvNet only")
                }
                return try runPlan()
            }
            let batchSizes = self.batchSizes.isEmpty ? [64, 256] : self.batchSizes
            let repeats = self.repeats ?? 15
            if let group = try distributed.join() {
                try DistributedBench.run(
                    group: group, device: DeviceOption.named(device.first ?? "auto", kernels: kernels).make(for: group),
                    globalBatch: batchSizes[0], steps: quick ? 10 : 50,
                    collectiveRepeats: quick ? 50 : 500, json: json)
                return
            }
            let selectors =
                try device.isEmpty
                ? Devices.available().map { try DeviceSelector(parsing: $0.selector) }
                : device.map(DeviceSelector.init(parsing:))
            let choice = try DeviceOption.kernelChoice(kernels)
            // Only the host is measured when every selector names it, or when
            // there is no OpenCL device (then `auto` is the host and an
            // OpenCL selector fails).
            if case .family = choice,
                selectors.allSatisfy({ $0 == .host }) || Devices.available().allSatisfy({ $0.kind == .host })
            {
                DeviceOption.warnIfKernelsIgnored(
                    choice, on: HostDevice().info,
                    chosenBy: device.isEmpty
                        ? "bench's default devices (no OpenCL device here)"
                        : "--device \(device.joined(separator: " "))")
            }
            var options = quick ? Benchmark.Options.quick : Benchmark.Options(batchSizes: batchSizes, repeats: repeats)
            if quick { options.repeats = min(options.repeats, repeats) }
            let epochData = epoch ? try data.load().train : nil
            var reports: [Benchmark.DeviceReport] = []
            for selector in selectors {
                let preparation = try Benchmark.measureProgramPreparation(selector, kernels: choice)
                let made = try Devices.make(selector, kernels: choice)
                var report = try Benchmark(options: options).run(on: made, epochData: epochData) { log("bench: \($0)") }
                report.programPreparation = preparation
                reports.append(report)
            }
            Benchmark.compareWithHost(&reports)
            if json {
                print(String(decoding: try JSONEncoder.sorted.encode(reports), as: UTF8.self))
            } else {
                BenchTable.print(reports)
            }
        }
    }
}

/// The bench results as text tables.
enum BenchTable {
    static func print(_ reports: [Benchmark.DeviceReport]) {
        for r in reports {
            Swift.print("\n== \(r.device.summary)")
            if let p = r.programPreparation {
                let what = p.kernelCount.map { " for the \($0) kernels of a training step" } ?? ""
                Swift.print(
                    "kernel preparation\(what): "
                        + String(format: "%.3f s cold, %.3f s warm (cached)", p.coldSeconds, p.warmSeconds))
            }
            Swift.print(
                pad("operation", 24) + pad("batch", 6) + pad("shape", 24) + pad("median ms", 11)
                    + pad("min–max ms", 17) + pad("GFLOP/s", 9) + "vs host")
            for t in r.operations {
                let gflops = t.gflopsPerSecond.map { String(format: "%.1f", $0) } ?? "–"
                let speedup = t.speedupOverHost.map { String(format: "%.2f×", $0) } ?? "–"
                Swift.print(
                    pad(t.operation, 24) + pad("\(t.batch)", 6) + pad(t.shape, 24)
                        + pad(String(format: "%.4f", 1e3 * t.medianSeconds), 11)
                        + pad(String(format: "%.4f–%.4f", 1e3 * t.minSeconds, 1e3 * t.maxSeconds), 17)
                        + pad(gflops, 9) + speedup)
                for l in t.launches ?? [] {
                    Swift.print(
                        "    " + pad(l.kernel, 40) + pad("[\(l.family.rawValue)]", 6)
                            + pad("global \(l.globalSize)", 15) + pad("local \(l.localSize)", 11)
                            + String(
                                format: "%.0f work-items per compute unit (%d)", l.itemsPerComputeUnit,
                                l.computeUnits))
                }
            }
            if let e = r.epoch {
                Swift.print(
                    String(
                        format: "epoch (60k images, batch 64): %.2f s, %.0f images/s%@", e.medianSeconds,
                        60000 / e.medianSeconds, e.speedupOverHost.map { String(format: ", %.2f× the host", $0) } ?? "")
                )
            }
            if let structure = r.stepStructure {
                Swift.print("training step at the first batch size, \(structure.summary)")
            }
            if let model = r.gpuModel { Swift.print(model.summary) }
            for batch in r.stepBreakdown.keys.sorted() {
                Swift.print("where a training step's time goes (batch \(batch)):")
                for s in r.stepBreakdown[batch]!.sorted(by: { $0.seconds > $1.seconds }) {
                    Swift.print(
                        "  " + pad(s.operation, 38)
                            + String(format: "%8.4f ms  %5.1f%%", 1e3 * s.seconds, 100 * s.fraction))
                }
                if let rest = r.stepBreakdown[batch]!.first(where: { $0.operation == Benchmark.restOfStep }),
                    rest.seconds < 0
                {
                    Swift.print(
                        "  (the rest is negative: inside a step the operations ran faster than timed one by one)")
                }
            }
        }
    }
}

/// `bench --distributed`: one data-parallel step's time split into compute,
/// all-reduce and update, on this job's ranks (see ``DataParallelBenchmark``).
enum DistributedBench {
    static func run(
        group: MPIProcessGroup, device: any Device, globalBatch: Int, steps: Int, collectiveRepeats: Int,
        json: Bool
    ) throws {
        guard globalBatch >= group.processes else {
            throw ValidationError(
                "--batch-sizes \(globalBatch) must be at least the number of processes (\(group.processes))")
        }
        let r = try DataParallelBenchmark(globalBatch: globalBatch, steps: steps, collectiveRepeats: collectiveRepeats)
            .run(group: group, device: device)
        guard group.rank == 0 else { return }
        if json {
            print(String(decoding: try JSONEncoder.sorted.encode(r), as: UTF8.self))
            return
        }
        print(
            "data-parallel step, \(r.processes) rank(s), global batch \(r.globalBatch) (rank 0: \(r.localBatch) images), "
                + "\(r.device); medians of \(r.steps) steps, the slowest rank's")
        let rows: [(String, Double)] = [
            ("compute (upload, forward, backward)", r.computeSeconds),
            ("all-reduce, host-staged (total)", r.allreduceSeconds),
            ("  of which MPI_Allreduce (incl. waiting)", r.allreduceMPISeconds),
            ("  of which read-back, scale, write", r.allreduceStagingSeconds),
            ("optimiser update", r.updateSeconds),
            ("step", r.stepSeconds),
        ]
        for (name, seconds) in rows {
            print("  " + pad(name, 44) + String(format: "%9.4f ms", 1e3 * seconds))
        }
        print("MPI_Allreduce alone, median of \(r.collectiveRepeats) barrier-separated calls:")
        print(
            "  " + pad("\(r.gradientFloats) floats (\(r.gradientFloats * 4) B)", 44)
                + String(format: "%9.4f ms", 1e3 * r.gradientAllreduceSeconds))
        print("  " + pad("1 float", 44) + String(format: "%9.4f ms", 1e3 * r.oneFloatAllreduceSeconds))
    }
}
