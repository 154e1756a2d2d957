/// BatchNorm's batch statistics over every process of a data-parallel job,
/// as PyTorch's `SyncBatchNorm` takes them; a ``NetworkPlan`` with one
/// (``NetworkPlan/batchNormSynchronization``) normalises each training batch
/// with the statistics of the global batch instead of its own share's.
///
/// Forward, per BatchNorm, with n_r the values per channel on rank r and
/// N = Σ_r n_r: the ranks add (n_r, Σx) and take μ = Σx/N; then add
/// Σ(x − μ)² and take the biased variance v = Σ(x − μ)²/N (two passes, as
/// one process does). Every rank normalises with (μ, v) and moves its running
/// statistics with μ and the unbiased v·N/(N − 1), so they stay equal on
/// every rank.
///
/// Backward: the loss is L = Σ_r w_r·L_r with w_r = n_r/N (each L_r the
/// mean over rank r's images; ``GradientReducer``), so the global batch's
/// output gradient on rank r's values is w_r·dy. The ranks add w_r·Σdy and
/// w_r·Σdy·x̂ into S_dy and S_dyx̂, the sums of the global batch, and rank r
/// writes gradInput = γσ(dy − (S_dy + x̂·S_dyx̂)/n_r): w_r times this is the
/// global batch's input gradient on its values (1/(w_r·N) = 1/n_r), and the
/// reducer applies the w_r. γ's and β's gradients stay each rank's own sums;
/// the reducer adds them like every other parameter's.
///
/// Sums over the ranks are taken in float64, in rank order
/// (``ProcessGroup/rankOrderedSum(_:)``), so that every rank gets the same
/// bits and a run repeats exactly.
public final class BatchNormSynchronization {
    public let group: any ProcessGroup
    /// w_r = n_r/N of the last training forward pass.
    private(set) var share = 1.0

    public init(group: any ProcessGroup) {
        self.group = group
    }

    /// The global batch's statistics from this rank's per-channel sums
    /// `sums` over `count` values: (N, Σ over the ranks), and w_r.
    func addCounted(_ sums: [Float], count: Int) throws -> (total: Double, sums: [Double]) {
        let added = try group.rankOrderedSum([Double(count)] + sums.map(Double.init))
        share = Double(count) / added[0]
        return (added[0], Array(added.dropFirst()))
    }

    /// Σ_r values_r (float64, rank order).
    func add(_ values: [Float]) throws -> [Double] {
        try group.rankOrderedSum(values.map(Double.init))
    }

    /// Σ_r w_r·values_r (float64, rank order): the backward's sums.
    func addWeighted(_ values: [Float]) throws -> [Double] {
        try group.rankOrderedSum(values.map { share * Double($0) })
    }
}

extension ProcessGroup {
    /// The element-wise sum of `values` over the processes, added in rank
    /// order (rank 0's + rank 1's + …) in float64, the same bits on every
    /// process whatever order the transport adds in: the processes' values
    /// are first gathered by a ``sum(_:)-([Double])`` of arrays that are zero
    /// outside each process's own slot (x + 0 = x exactly, in any order),
    /// then added here.
    public func rankOrderedSum(_ values: [Double]) throws -> [Double] {
        let n = values.count
        var slots = [Double](repeating: 0, count: n * processes)
        slots.replaceSubrange((rank * n)..<((rank + 1) * n), with: values)
        try sum(&slots)
        var total = Array(slots[0..<n])
        for r in 1..<max(processes, 1) {
            for i in 0..<n { total[i] += slots[r * n + i] }
        }
        return total
    }
}
