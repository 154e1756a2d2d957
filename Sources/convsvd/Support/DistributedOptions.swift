import ArgumentParser
import DataParallel
import Foundation
import GPUNet

/// `--distributed mpi`, the same in `train`, `run`, `study` and `bench`.
struct DistributedOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "mpi: run as one of the processes of `mpirun -n N convsvd …` (Open MPI, found at run time).",
            discussion:
                "train/run: data-parallel training, each rank on its share of every batch; study: each rank trains its share of the seeds."
        ))
    var distributed: String?

    @Flag(
        name: .customLong("sync-batchnorm"),
        help: ArgumentHelp(
            "train --distributed mpi: BatchNorm normalises with the statistics of the global batch, summed over the processes (PyTorch's SyncBatchNorm).",
            discussion:
                "Without it each process's BatchNorm uses its own share's statistics (as PyTorch's DDP without SyncBatchNorm). No effect in one process (without MPI, or a job of one), on a model without BatchNorm (tiny), or in study and bench."
        ))
    var syncBatchnorm = false

    func validate() throws {
        if let distributed, distributed != "mpi" {
            throw ValidationError("--distributed must be mpi (got \(distributed))")
        }
    }

    /// The variables an MPI launcher exports to the processes it starts:
    /// Open MPI's `mpirun`, and PMI or PMIx launchers (`srun`, MPICH's
    /// Hydra).
    static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"]

    /// The MPI job this process belongs to, or nil without `--distributed`.
    /// A process started without a launcher is a job of one (MPI's
    /// singleton); it trains alone, and says so, since whoever typed
    /// `--distributed mpi` expects several processes.
    func join() throws -> MPIProcessGroup? {
        guard distributed != nil else { return nil }
        // Read before MPI_Init, which may export such variables itself.
        let environment = ProcessInfo.processInfo.environment
        let launched = Self.launcherVariables.contains { environment[$0] != nil }
        do {
            let group = try MPIProcessGroup.world()
            if group.processes == 1, !launched {
                log(
                    "convsvd: --distributed mpi without mpirun: running as rank 0 of 1 "
                        + "(start N processes with `mpirun -n N convsvd …`)")
            } else if group.rank == 0 {
                log("distributed: \(group.processes) MPI process(es) (\(group.library))")
            }
            return group
        } catch let error as MPIError {
            throw ToolError(code: Exit.device, description: "--distributed mpi: \(error.description)")
        }
    }
}

extension DeviceOption {
    /// The device of one rank: with `auto` or `opencl` and OpenCL GPUs on the
    /// machine, GPU number (local rank mod GPU count), so that the ranks on a
    /// node share its GPUs out; otherwise the device `--device` names.
    func make(for group: MPIProcessGroup?) throws -> any Device {
        guard let group, let local = group.localRank, ["auto", "opencl"].contains(device.lowercased()) else {
            return try make()
        }
        let gpus = Devices.available().filter { $0.kind == .openCLGPU }
        guard !gpus.isEmpty else { return try make() }
        let chosen = gpus[local % gpus.count]
        let made = try Devices.make(DeviceSelector(parsing: chosen.selector), kernels: try kernelChoice())
        log("rank \(group.rank) (local rank \(local)): device \(made.info.summary)")
        return made
    }
}

/// Debug checks of a data-parallel run, switched on by environment variables
/// (the MPI tests use them; they cost a read-back of the weights per step):
/// - CONVSVD_DEBUG_STEP_DIGESTS=DIR: each rank appends to DIR/rank-R.txt, at
///   every step, a 64-bit FNV-1a digest of the weights it is about to update
///   and of the summed gradient, and at the end of every epoch the digest of
///   its weights, so that the ranks can be compared step by step.
/// - CONVSVD_DEBUG_KILL_RANK_AT_STEP=R:S: rank R kills itself (SIGKILL) after
///   the gradient sum of its S-th step, to test that the job fails cleanly.
enum DataParallelDebug {
    static func install(on reducer: HostStagedGradientReducer, trainer: Trainer) throws -> TrainingObserver? {
        let environment = ProcessInfo.processInfo.environment
        let rank = reducer.group.rank
        var kill: Int?
        if let spec = environment["CONVSVD_DEBUG_KILL_RANK_AT_STEP"] {
            let parts = spec.split(separator: ":").compactMap { Int($0) }
            guard parts.count == 2 else {
                throw ValidationError("CONVSVD_DEBUG_KILL_RANK_AT_STEP must be RANK:STEP (got \(spec))")
            }
            if parts[0] == rank { kill = parts[1] }
        }
        var digests: FileHandle?
        if let directory = environment["CONVSVD_DEBUG_STEP_DIGESTS"] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let path = (directory as NSString).appendingPathComponent("rank-\(rank).txt")
            guard FileManager.default.createFile(atPath: path, contents: nil),
                let handle = FileHandle(forWritingAtPath: path)
            else {
                throw ToolError(code: Exit.output, description: "CONVSVD_DEBUG_STEP_DIGESTS: cannot write \(path)")
            }
            handle.seekToEndOfFile()
            digests = handle
        }
        guard kill != nil || digests != nil else { return nil }
        var step = 0
        reducer.afterSum = { [weak trainer] sum in
            step += 1
            if let digests, let trainer {
                let weights = try trainer.network.weights()
                let line =
                    "step \(step) weights \(fnv1a(weights.conv1 + weights.conv2 + weights.fcWeight + weights.fcBias)) "
                    + "gradient \(fnv1a(sum))\n"
                digests.write(Data(line.utf8))
            }
            if step == kill {
                log("rank \(rank): CONVSVD_DEBUG_KILL_RANK_AT_STEP: killing myself after step \(step)")
                raise(SIGKILL)
            }
        }
        return digests.map { EpochDigest(file: $0, trainer: trainer) }
    }

    /// 64-bit FNV-1a over the floats' bit patterns, as hex.
    static func fnv1a(_ values: [Float]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in values {
            var bits = v.bitPattern
            for _ in 0..<4 {
                hash = (hash ^ UInt64(bits & 0xff)) &* 0x100_0000_01b3
                bits >>= 8
            }
        }
        return String(hash, radix: 16)
    }

    private final class EpochDigest: TrainingObserver {
        let file: FileHandle
        weak var trainer: Trainer?
        init(file: FileHandle, trainer: Trainer) {
            self.file = file
            self.trainer = trainer
        }
        func epochStarted(epoch: Int, of epochs: Int, steps: Int) {}
        func stepFinished(epoch: Int, step: Int, steps: Int, images: Int, meanLoss: Double) {}
        func epochFinished(_ metrics: EpochMetrics, of epochs: Int) {
            guard let w = try? trainer?.network.weights() else { return }
            file.write(
                Data(
                    "epoch \(metrics.epoch) weights \(DataParallelDebug.fnv1a(w.conv1 + w.conv2 + w.fcWeight + w.fcBias))\n"
                        .utf8))
        }
    }
}

/// Several observers as one.
final class ObserverChain: TrainingObserver {
    let observers: [TrainingObserver]
    init(_ observers: [TrainingObserver]) { self.observers = observers }
    func epochStarted(epoch: Int, of epochs: Int, steps: Int) {
        for observer in observers { observer.epochStarted(epoch: epoch, of: epochs, steps: steps) }
    }
    func stepFinished(epoch: Int, step: Int, steps: Int, images: Int, meanLoss: Double) {
        for observer in observers {
            observer.stepFinished(epoch: epoch, step: step, steps: steps, images: images, meanLoss: meanLoss)
        }
    }
    func epochFinished(_ metrics: EpochMetrics, of epochs: Int) {
        for observer in observers { observer.epochFinished(metrics, of: epochs) }
    }
}
