import ArgumentParser
import Foundation
import GPUNet
import Models
import NetIO

/// What `convsvd bench --model M` (M not tiny) prints and writes as JSON.
struct ModelBenchReport: Codable {
    var model: String
    var dataset: String
    var batch: Int
    /// Images of the epoch figures (--train-limit, else the training set).
    var epochImages: Int
    /// The model's useful training work on `epochImages` images: forward,
    /// data and weight gradients (``NetworkSummary/trainingFLOPs(images:)``), GFLOP.
    var trainingGFLOPPerEpoch: Double
    var sgemmPeak: SgemmPeak
    /// The process's peak resident memory at the end of the run (getrusage).
    var peakResidentBytes: Int
    var devices: [PlanBenchmark.DeviceReport]
    /// Per device (same order): the epoch's training work per second over the sgemm peak.
    var epochFractionOfPeak: [Double]
    var pytorch: PyTorchEpoch

    enum CodingKeys: String, CodingKey {
        case model, dataset, batch, devices, pytorch
        case epochImages = "epoch_images"
        case trainingGFLOPPerEpoch = "training_gflop_per_epoch"
        case sgemmPeak = "sgemm_peak"
        case peakResidentBytes = "peak_resident_bytes"
        case epochFractionOfPeak = "epoch_fraction_of_peak"
    }
}

/// PyTorch's epoch for the same model, recipe and images, when a Python
/// with torch is at hand (`scripts/pytorch_models.py time-epoch`).
struct PyTorchEpoch: Codable {
    /// Nil when PyTorch did not run (``note`` says why).
    var seconds: Double?
    var testAccuracy: Double?
    var version: String?
    var note: String

    static let notAsked = PyTorchEpoch(note: "not asked (--pytorch)")

    /// Runs the script with `python` on the first `images` images of `dataset` in `directory`, `batch` a step.
    static func run(
        python: String, model: String, dataset: DatasetKind, directory: URL, images: Int, batch: Int
    ) -> PyTorchEpoch {
        guard ["resnet8", "resnet20", "resnet32"].contains(model) else {
            return PyTorchEpoch(note: "scripts/pytorch_models.py defines resnet8, resnet20 and resnet32 only")
        }
        guard dataset != .cifar10 else {
            return PyTorchEpoch(note: "scripts/pytorch_models.py time-epoch reads IDX files (MNIST, Fashion-MNIST)")
        }
        guard let script = locateScript() else {
            return PyTorchEpoch(note: "scripts/pytorch_models.py not found (run from the repository)")
        }
        let probe = runProcess(python, ["-c", "import torch; print(torch.__version__)"])
        guard probe.status == 0 else {
            return PyTorchEpoch(note: "\(python) has no torch: no PyTorch figure (set --python or $CONVSVD_PYTHON)")
        }
        let version = probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let r = runProcess(
            python, [script.path, "time-epoch", model, directory.path, "\(images)", dataset.rawValue, "\(batch)"])
        // "resnet8: one epoch 45.10 s (1330 images/s), test accuracy 84.67%"
        guard r.status == 0, let line = r.stdout.split(separator: "\n").last(where: { $0.contains("one epoch") }),
            let seconds = number(after: "one epoch ", in: String(line))
        else {
            return PyTorchEpoch(
                version: version,
                note: "the PyTorch script failed (exit \(r.status)): \(r.stderr.suffix(300))")
        }
        return PyTorchEpoch(
            seconds: seconds, testAccuracy: number(after: "test accuracy ", in: String(line)), version: version,
            note: "PyTorch \(version), 2 threads, scripts/pytorch_models.py time-epoch")
    }

    /// The first number after `marker` in `text`.
    static func number(after marker: String, in text: String) -> Double? {
        guard let range = text.range(of: marker) else { return nil }
        let digits = text[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        return Double(digits)
    }

    /// scripts/pytorch_models.py in the working folder or above the binary.
    static func locateScript() -> URL? {
        var candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            candidates.append(dir)
            dir.deleteLastPathComponent()
        }
        return candidates.map { $0.appendingPathComponent("scripts/pytorch_models.py") }
            .first { FileManager.default.fileExists(atPath: $0.path) }
    }

    static func runProcess(_ executable: String, _ arguments: [String]) -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [executable] + arguments
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { return (127, "", "\(error)") }
        let errorData = ReadAll(err)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (
            p.terminationStatus, String(decoding: outData, as: UTF8.self),
            String(decoding: errorData.wait(), as: UTF8.self)
        )
    }

    /// Reads a pipe to its end on another thread (a chatty child cannot block on a full pipe).
    final class ReadAll: @unchecked Sendable {
        private var data = Data()
        private let done = DispatchSemaphore(value: 0)
        init(_ pipe: Pipe) {
            DispatchQueue.global().async {
                self.data = pipe.fileHandleForReading.readDataToEndOfFile()
                self.done.signal()
            }
        }
        func wait() -> Data {
            done.wait()
            return data
        }
    }
}

extension BenchCommand {
    /// `bench --model M` for a description: see ``PlanBenchmark``.
    func runPlan() throws {
        let kind = try data.requireFits(model: model.model)
        let description = try model.description(for: kind)
        let selectors =
            try device.isEmpty
            ? Devices.available().map { try DeviceSelector(parsing: $0.selector) }
            : device.map(DeviceSelector.init(parsing:))
        let choice = try DeviceOption.kernelChoice(kernels)
        let recipe = TrainingRecipe.forModel(model.model, dataset: kind.rawValue)
        let batch = quick ? 8 : (batchSizes.first ?? recipe.batchSize)
        let settings = TrainingSettings(
            dataset: kind.rawValue, model: model.model, epochs: 1, batchSize: batch,
            learningRate: recipe.learningRate, schedule: recipe.schedule, optimizer: recipe.optimizer,
            augmentation: recipe.augmentation)
        let options = PlanBenchmark.Options(
            batch: batch, repeats: repeats ?? (quick ? 2 : 5), warmup: quick ? 1 : 2)
        var train: Dataset?
        var images = trainLimit ?? kind.trainingCount
        if epoch {
            let sets = try data.load(forModel: model.model)
            let set = trainLimit.map { sets.train.prefix($0) } ?? sets.train
            images = set.count
            train = set
        }
        log("bench: sgemm peak, OpenBLAS 2048³ on 2 threads")
        let peak = SgemmPeak.measure()
        var reports: [PlanBenchmark.DeviceReport] = []
        var summary: NetworkSummary?
        for selector in selectors {
            let made = try Devices.make(selector, kernels: choice)
            let plan = try NetworkPlan(
                description, channels: kind.inputShape.channels, height: kind.inputShape.height,
                width: kind.inputShape.width, classes: kind.classCount, device: made)
            try plan.initialise(seed: 0)
            summary = plan.summary
            reports.append(
                try PlanBenchmark(options: options).run(
                    plan: plan, settings: settings, epoch: train, epochImages: images
                ) { log("bench: \($0)") })
        }
        var torch = PyTorchEpoch.notAsked
        if pytorch {
            let python =
                python ?? ProcessInfo.processInfo.environment["CONVSVD_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
                ?? "python3"
            log("bench: PyTorch's epoch (\(python) scripts/pytorch_models.py time-epoch \(model.model))")
            torch = PyTorchEpoch.run(
                python: python, model: model.model, dataset: kind,
                directory: DatasetLocator.directory(for: kind, explicit: data.data.map { URL(fileURLWithPath: $0) }),
                images: images, batch: batch)
        }
        let flops = summary?.trainingFLOPs(images: images) ?? 0
        let report = ModelBenchReport(
            model: model.model, dataset: kind.rawValue, batch: batch, epochImages: images,
            trainingGFLOPPerEpoch: flops / 1e9, sgemmPeak: peak, peakResidentBytes: peakResidentBytes(),
            devices: reports,
            epochFractionOfPeak: reports.map { ($0.epoch?.gflopsPerSecond ?? .nan) / peak.gflopsPerSecond },
            pytorch: torch)
        if json {
            print(String(decoding: try JSONEncoder.sorted.encode(report), as: UTF8.self))
        } else {
            ModelBenchTable.print(report)
        }
    }
}

/// `bench --model M` as text.
enum ModelBenchTable {
    static func print(_ r: ModelBenchReport) {
        let peak = r.sgemmPeak.gflopsPerSecond
        Swift.print(
            "model \(r.model) on \(r.dataset), batch \(r.batch): "
                + String(
                    format: "%.1f GFLOP of training work an epoch of %d images (forward, data and weight gradients)",
                    r.trainingGFLOPPerEpoch, r.epochImages))
        Swift.print(
            String(
                format: "sgemm peak (OpenBLAS %d³, %d threads, this run): %.1f GFLOP/s", r.sgemmPeak.size,
                r.sgemmPeak.threads, peak))
        for (d, fraction) in zip(r.devices, r.epochFractionOfPeak) {
            Swift.print("\n== \(d.device.summary)")
            Swift.print(
                String(
                    format:
                        "training step (batch %d): median %.2f ms (min %.2f, max %.2f, %d steps), %.1f GFLOP/s, %.0f%% of the sgemm peak",
                    d.batch, 1e3 * d.step.medianSeconds, 1e3 * d.step.minSeconds, 1e3 * d.step.maxSeconds,
                    d.step.runs, d.stepGflopsPerSecond, 100 * d.stepGflopsPerSecond / peak))
            if let e = d.epoch {
                let how =
                    e.measured
                    ? "measured, one epoch of the recipe"
                    : "estimate: step median × \(e.steps) steps, not measured"
                Swift.print(
                    String(
                        format: "epoch (%d images, %d steps; %@): %.2f s, %.1f GFLOP/s, %.0f%% of the sgemm peak",
                        e.images, e.steps, how, e.seconds, e.gflopsPerSecond, 100 * fraction))
            }
            Swift.print(d.stepStructure.summary)
            if let model = d.gpuModel { Swift.print(model.summary) }
            Swift.print("where a step's time goes (operations timed one by one inside steps, sums of medians):")
            Swift.print(
                "  " + pad("kind.pass", 22) + pad("ops", 5) + pad("ms", 10) + pad("share", 8) + pad("GMAdds", 9)
                    + "GFLOP/s")
            for k in d.byKind {
                Swift.print(
                    "  " + pad("\(k.kind).\(k.pass)", 22) + pad("\(k.count)", 5)
                        + pad(String(format: "%.3f", 1e3 * k.seconds), 10)
                        + pad(String(format: "%.1f%%", 100 * k.fractionOfStep), 8)
                        + pad(k.multiplyAdds.map { String(format: "%.3f", Double($0) / 1e9) } ?? "–", 9)
                        + (k.gflopsPerSecond.map { String(format: "%.1f", $0) } ?? "–"))
            }
            Swift.print("each operation (step order):")
            Swift.print(
                "  " + pad("operation", 36) + pad("median ms", 11) + pad("min–max ms", 17) + pad("MMAdds", 10)
                    + pad("GFLOP/s", 9) + "MB")
            for o in d.operations {
                Swift.print(
                    "  " + pad(o.operation, 36) + pad(String(format: "%.3f", 1e3 * o.medianSeconds), 11)
                        + pad(String(format: "%.3f–%.3f", 1e3 * o.minSeconds, 1e3 * o.maxSeconds), 17)
                        + pad(o.multiplyAdds.map { String(format: "%.1f", Double($0) / 1e6) } ?? "–", 10)
                        + pad(o.gflopsPerSecond.map { String(format: "%.1f", $0) } ?? "–", 9)
                        + (o.bytes.map { String(format: "%.2f", Double($0) / 1e6) } ?? "–"))
            }
        }
        Swift.print("")
        if let s = r.pytorch.seconds {
            Swift.print(
                String(format: "PyTorch epoch (%d images, same recipe and batch): %.2f s", r.epochImages, s)
                    + (r.pytorch.testAccuracy.map { String(format: ", test accuracy %.2f%%", $0) } ?? "")
                    + " — \(r.pytorch.note)")
            for d in r.devices {
                guard let e = d.epoch else { continue }
                Swift.print(
                    String(
                        format: "  %@ epoch%@ %.2f s: %.2f× PyTorch's time", d.device.selector,
                        e.measured ? "" : " (estimate)", e.seconds, e.seconds / s))
            }
        } else {
            Swift.print("PyTorch: \(r.pytorch.note); no PyTorch figure")
        }
        Swift.print(
            String(
                format: "peak resident memory of this process: %.1f MB (getrusage ru_maxrss)",
                Double(r.peakResidentBytes) / 1e6))
    }
}
