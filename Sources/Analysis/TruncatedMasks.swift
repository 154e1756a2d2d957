/// Phase 6: the masks of the truncated layers, M_k(p) = 1[W_k·p > 0] for
/// k = 1…r, W_k = U_k·Σ_k·V_kᵀ, over a set of patches: the measurement that
/// Cover's bound at rank k constrains. W_k·p = U_k·s_k lies in a k-dimensional
/// space cut by n hyperplanes through the origin (the rows of U_k), so the
/// patches whose W_k·p has no zero entry fall into at most C(n, k) =
/// ``coverBound(units:rank:)`` regions, one mask each. A patch with an entry
/// exactly 0 (on a hyperplane: an all-zero conv2 patch gives W_k·p = 0)
/// takes the mask of no region necessarily, so it is counted apart.
public struct TruncatedMaskCensus: Codable, Sendable, Equatable {
    /// Patches counted at each rank.
    public var patches: Int
    /// distinctMasks[k − 1]: distinct masks of W_k·p over the patches whose
    /// W_k·p has no zero entry.
    public var distinctMasks: [Int]
    /// patchesOnAHyperplane[k − 1]: patches left out at rank k because an
    /// entry of W_k·p is exactly 0.
    public var patchesOnAHyperplane: [Int]

    /// Ranks k (1-based) at which distinctMasks[k − 1] exceeds `bound[k − 1]`.
    public func ranksAbove(_ bound: [Int]) -> [Int] {
        distinctMasks.indices.filter { distinctMasks[$0] > bound[$0] }.map { $0 + 1 }
    }
}

/// Collects ``TruncatedMaskCensus`` piece by piece: a bit set of the masks
/// seen at each rank (2ⁿ bits) and the tie counts; pieces merge by OR and sum.
struct TruncatedMaskAccumulator {
    let units: Int
    let ranks: Int
    /// seen[k][m / 64] bit m % 64: mask m occurred at rank k + 1.
    var seen: [[UInt64]]
    var onAHyperplane: [Int]
    var patches = 0

    init(units: Int, ranks: Int) {
        precondition(units <= 24, "TruncatedMaskAccumulator: at most 24 units")
        self.units = units; self.ranks = ranks
        seen = [[UInt64]](repeating: [UInt64](repeating: 0, count: max(1, (1 << units) / 64)), count: ranks)
        onAHyperplane = [Int](repeating: 0, count: ranks)
    }

    /// Adds n patches given by their coordinates s = σ⊙Vᵀp (ranks, n) along
    /// the columns of U (units × ranks): W_k·p = Σ_{i≤k} uᵢ·sᵢ, built one
    /// rank-one term at a time.
    mutating func add(coordinates s: [Double], u: Matrix, count n: Int) {
        precondition(u.rows == units && u.columns >= ranks && s.count >= ranks * n)
        patches += n
        var a = [Double](repeating: 0, count: units * n)
        var masks = [UInt32](repeating: 0, count: n)
        var ties = [UInt32](repeating: 0, count: n)
        for k in 0..<ranks {
            addRankOneTerm(&a, u: u, component: k, s: s, count: n)
            for q in 0..<n { masks[q] = 0; ties[q] = 0 }
            a.withUnsafeBufferPointer { pa in
                masks.withUnsafeMutableBufferPointer { pm in
                    ties.withUnsafeMutableBufferPointer { pt in
                        for c in 0..<units {
                            let row = pa.baseAddress! + c * n, bit = UInt32(1) << UInt32(c)
                            for q in 0..<n {
                                let x = row[q]
                                pm[q] |= x > 0 ? bit : 0
                                pt[q] |= x == 0 ? 1 : 0
                            }
                        }
                    }
                }
            }
            var tied = 0
            seen[k].withUnsafeMutableBufferPointer { bits in
                for q in 0..<n {
                    if ties[q] != 0 { tied += 1; continue }
                    let m = Int(masks[q])
                    bits[m >> 6] |= UInt64(1) << UInt64(m & 63)
                }
            }
            onAHyperplane[k] += tied
        }
    }

    mutating func merge(_ o: TruncatedMaskAccumulator) {
        patches += o.patches
        for k in 0..<ranks {
            for i in seen[k].indices { seen[k][i] |= o.seen[k][i] }
            onAHyperplane[k] += o.onAHyperplane[k]
        }
    }

    var census: TruncatedMaskCensus {
        TruncatedMaskCensus(patches: patches,
                            distinctMasks: seen.map { $0.reduce(0) { $0 + $1.nonzeroBitCount } },
                            patchesOnAHyperplane: onAHyperplane)
    }
}

extension TruncatedMaskCensus {
    /// The census of explicit patches (patch size × count) under every truncation of `svd`.
    init(svd: SingularValueDecomposition, patches: Matrix) {
        var accumulator = TruncatedMaskAccumulator(units: svd.u.rows, ranks: svd.rank)
        let s = patches.values.withUnsafeBufferPointer { spectralCoordinates(svd, $0.baseAddress!, count: patches.columns) }
        accumulator.add(coordinates: s, u: svd.u, count: patches.columns)
        self = accumulator.census
    }
}
