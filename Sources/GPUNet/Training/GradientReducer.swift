import Foundation
import NetIO

/// The processes of a data-parallel job, as the trainer sees them: the
/// collective operations it needs, nothing about how they travel (MPI in
/// `Distributed`, or anything else that sums and broadcasts).
///
/// Every process calls every operation in the same order with arrays of the
/// same length; that is the caller's contract, as in MPI.
public protocol ProcessGroup: AnyObject {
    /// This process's index, 0 ..< `processes`.
    var rank: Int { get }
    var processes: Int { get }
    /// Replaces `values` by their element-wise sum over all processes.
    func sum(_ values: inout [Float]) throws
    /// Replaces `values` by their element-wise sum over all processes.
    func sum(_ values: inout [Double]) throws
    /// Replaces `values` by rank 0's.
    func broadcast(_ values: inout [Float]) throws
    /// Replaces `values` by rank 0's.
    func broadcast(_ values: inout [Double]) throws
}

/// Data-parallel training's hook into ``Trainer``: each process computes the
/// gradient of its share of the global batch, and ``reduce(_:localBatch:globalBatch:)``
/// turns it into the gradient of the whole batch, the same on every process,
/// between the backward pass and the optimiser step.
///
/// The batch rule: the global batch of B images (the next B indices of the
/// epoch's permutation, as in one process) is cut into `processes`
/// contiguous shares, rank r taking [⌊rB/N⌋, ⌊(r+1)B/N⌋), so shares differ
/// by at most one image; the epoch's last, partial batch of b < B images is
/// cut the same way. A batch must give every rank at least one image
/// (B ≥ N; a last batch of b < N images is not trained on, on every rank
/// alike — see ``steps(images:batchSize:)``).
///
/// The loss is the mean over the global batch, L = (1/B) Σᵢ lᵢ, so
/// ∇L = Σ_r (b_r/B) ∇L_r, where ∇L_r is the mean-loss gradient over rank r's
/// b_r images: each rank scales its gradient by b_r/B before the sum.
public protocol GradientReducer: AnyObject {
    var group: any ProcessGroup { get }
    /// Replaces `gradients` (the mean-loss gradient over this process's
    /// `localBatch` images) by the mean-loss gradient over the `globalBatch`.
    func reduce(_ gradients: [Buffer], localBatch: Int, globalBatch: Int) throws
}

extension GradientReducer {
    /// Rank `rank`'s share of a batch of `count` images, as offsets into it.
    public static func share(of count: Int, rank: Int, processes: Int) -> Range<Int> {
        (rank * count / processes)..<((rank + 1) * count / processes)
    }

    public func share(of count: Int) -> Range<Int> {
        Self.share(of: count, rank: group.rank, processes: group.processes)
    }

    /// The steps of an epoch of `images` at `batchSize`: a last batch too
    /// small to give each process an image is left out.
    public func steps(images: Int, batchSize: Int) -> Int {
        let remainder = images % batchSize
        return images / batchSize + (remainder >= group.processes ? 1 : 0)
    }
}

/// The host-staged all-reduce: the gradients are read back into one
/// contiguous array (5,234 floats for TinyConvNet), scaled by b_r/B, summed
/// across the processes, and written back to the device.
public final class HostStagedGradientReducer: GradientReducer {
    public let group: any ProcessGroup
    public let device: any Device
    private var staging: [Float] = []
    /// Seconds spent in the sum itself (the network part) and in the
    /// read-back and write (the staging), since creation: `bench --distributed`.
    public private(set) var sumSeconds = 0.0, stagingSeconds = 0.0
    /// Called with the staged, summed gradient before it is written back
    /// (debug checks of the reduction, e.g. a per-step digest).
    public var afterSum: (([Float]) throws -> Void)?

    public init(group: any ProcessGroup, device: any Device) {
        self.group = group
        self.device = device
    }

    public func reduce(_ gradients: [Buffer], localBatch: Int, globalBatch: Int) throws {
        let tensors = gradients
        let total = tensors.reduce(0) { $0 + $1.count }
        if staging.count != total { staging = [Float](repeating: 0, count: total) }
        let t0 = Clocks.wall()
        try staging.withUnsafeMutableBufferPointer { all in
            var offset = 0
            for t in tensors {
                try device.download(t, into: UnsafeMutableBufferPointer(rebasing: all[offset..<(offset + t.count)]))
                offset += t.count
            }
        }
        let scale = Float(localBatch) / Float(globalBatch)
        for i in staging.indices { staging[i] *= scale }
        let t1 = Clocks.wall()
        try group.sum(&staging)
        let t2 = Clocks.wall()
        try afterSum?(staging)
        try staging.withUnsafeBufferPointer { all in
            var offset = 0
            for t in tensors {
                try device.upload(UnsafeBufferPointer(rebasing: all[offset..<(offset + t.count)]), to: t)
                offset += t.count
            }
        }
        let t3 = Clocks.wall()
        sumSeconds += t2 - t1
        stagingSeconds += t1 - t0 + t3 - t2
    }
}
