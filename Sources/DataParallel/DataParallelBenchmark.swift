import Foundation
import GPUNet
import NetIO

/// `convsvd bench --distributed`: where a data-parallel training step's time
/// goes, on every rank of the job, and what the all-reduce alone costs.
///
/// A step is timed in three parts, each ended by `Device.finish()` so that
/// the device's queue is empty at every boundary (the training loop overlaps
/// steps; the figures here are therefore a little above an epoch's per-step
/// time): compute (upload of the local batch, forward, backward), all-reduce
/// (the host-staged reduction: read-back, scaling, MPI_Allreduce, write),
/// split into its MPI part and its staging part, and update (the optimiser).
/// Each part's median over the timed steps is taken per rank; the job's
/// figure is the largest over the ranks, since every step waits for the
/// slowest. The MPI part inside a step includes any wait for a slower rank;
/// the separate all-reduce loop (a barrier, then one MPI_Allreduce, repeated)
/// measures the collective alone, for the 5,234-float gradient and for one
/// float (the latency floor).
public struct DataParallelBenchmark {
    public struct Report: Codable, Sendable {
        public var processes: Int
        public var globalBatch: Int
        public var localBatch: Int
        public var device: String
        public var steps: Int
        /// Medians, seconds, the largest over the ranks.
        public var computeSeconds: Double
        public var allreduceSeconds: Double
        public var allreduceMPISeconds: Double
        public var allreduceStagingSeconds: Double
        public var updateSeconds: Double
        public var stepSeconds: Double
        /// The collective alone: median of `collectiveRepeats` barrier-separated calls.
        public var gradientAllreduceSeconds: Double
        public var oneFloatAllreduceSeconds: Double
        public var collectiveRepeats: Int
        public var gradientFloats: Int
    }

    public var globalBatch: Int
    public var steps: Int
    public var collectiveRepeats: Int

    public init(globalBatch: Int = 64, steps: Int = 50, collectiveRepeats: Int = 500) {
        self.globalBatch = globalBatch
        self.steps = steps
        self.collectiveRepeats = collectiveRepeats
    }

    public func run(group: any ProcessGroup, device: any Device) throws -> Report {
        let share = HostStagedGradientReducer.share(of: globalBatch, rank: group.rank, processes: group.processes)
        let local = share.count
        precondition(local >= 1, "the global batch must give every rank an image")
        let network = try TinyConvNet(device: device)
        try network.load(TinyConvNet.initialWeights(seed: 0))
        let optimizer = try Optimizer(.adam(), learningRate: 1e-3, parameters: network.parameters, device: device)
        let reducer = HostStagedGradientReducer(group: group, device: device)
        // Deterministic images and labels; the timing does not depend on them.
        var random = SeededRandom(seed: 7, stream: UInt64(group.rank))
        let images = (0..<(local * 784)).map { _ in random.uniform(1) }
        let labels = (0..<local).map { Int32($0 % 10) }
        let w = try network.workspace(batch: local)

        var compute: [Double] = []
        var reduce: [Double] = []
        var mpi: [Double] = []
        var staging: [Double] = []
        var update: [Double] = []
        let warmUp = 5
        for step in 0..<(warmUp + steps) {
            let mpi0 = reducer.sumSeconds
            let staging0 = reducer.stagingSeconds
            let t0 = Clocks.wall()
            try network.setBatch(w, images: images, labels: labels)
            try network.trainingStep(w)
            try device.finish()
            let t1 = Clocks.wall()
            try reducer.reduce(network.gradients.all, localBatch: local, globalBatch: globalBatch)
            try device.finish()
            let t2 = Clocks.wall()
            try optimizer.update(parameters: network.parameters, gradients: network.gradients)
            try device.finish()
            let t3 = Clocks.wall()
            guard step >= warmUp else { continue }
            compute.append(t1 - t0)
            reduce.append(t2 - t1)
            update.append(t3 - t2)
            mpi.append(reducer.sumSeconds - mpi0)
            staging.append(reducer.stagingSeconds - staging0)
        }

        let floats = network.gradients.all.reduce(0) { $0 + $1.count }
        func collective(count: Int) throws -> Double {
            var values = [Float](repeating: 1, count: count)
            var barrier = [0.0]
            var times: [Double] = []
            for _ in 0..<collectiveRepeats {
                try group.sum(&barrier)
                let t0 = Clocks.wall()
                try group.sum(&values)
                times.append(Clocks.wall() - t0)
            }
            return median(times)
        }
        let gradientCollective = try collective(count: floats)
        let oneFloat = try collective(count: 1)

        // The largest median over the ranks: each rank fills its slot, the sum gathers them.
        let mine = [
            median(compute), median(reduce), median(mpi), median(staging), median(update),
            median(zip(zip(compute, reduce), update).map { $0.0 + $0.1 + $1 }), gradientCollective, oneFloat,
        ]
        var all = [Double](repeating: 0, count: mine.count * group.processes)
        for (i, v) in mine.enumerated() { all[group.rank * mine.count + i] = v }
        try group.sum(&all)
        let slowest = (0..<mine.count).map { i in (0..<group.processes).map { all[$0 * mine.count + i] }.max()! }
        return Report(
            processes: group.processes, globalBatch: globalBatch, localBatch: local, device: device.info.summary,
            steps: steps, computeSeconds: slowest[0], allreduceSeconds: slowest[1], allreduceMPISeconds: slowest[2],
            allreduceStagingSeconds: slowest[3], updateSeconds: slowest[4], stepSeconds: slowest[5],
            gradientAllreduceSeconds: slowest[6], oneFloatAllreduceSeconds: slowest[7],
            collectiveRepeats: collectiveRepeats, gradientFloats: floats)
    }

    func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }
}
