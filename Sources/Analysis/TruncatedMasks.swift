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

    public init(patches: Int, distinctMasks: [Int], patchesOnAHyperplane: [Int]) {
        self.patches = patches
        self.distinctMasks = distinctMasks
        self.patchesOnAHyperplane = patchesOnAHyperplane
    }

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
    /// Words of one rank's bit set.
    let words: Int
    /// seen[k·words + m / 64] bit m % 64: mask m occurred at rank k + 1.
    var seen: [UInt64]
    var onAHyperplane: [Int]
    var patches = 0
    /// Patches per block: a block's pre-activations (units × block doubles,
    /// 32–64 KB) stay in cache over all k.
    static let block = 256

    init(units: Int, ranks: Int) {
        precondition(units <= 24, "TruncatedMaskAccumulator: at most 24 units")
        self.units = units
        self.ranks = ranks
        words = max(1, (1 << units) / 64)
        seen = [UInt64](repeating: 0, count: ranks * words)
        onAHyperplane = [Int](repeating: 0, count: ranks)
    }

    /// Adds n patches given by their coordinates s = σ⊙Vᵀp (ranks, n) along
    /// the columns of U (units × ranks): W_k·p = Σ_{i≤k} uᵢ·sᵢ, built one
    /// rank-one term at a time.
    mutating func add(coordinates s: [Double], u: Matrix, count n: Int) {
        precondition(u.rows == units && u.columns >= ranks && s.count >= ranks * n)
        patches += n
        let block = Self.block
        let units = self.units
        let ranks = self.ranks
        let words = self.words
        // A patch whose coordinates equal the previous patch's (runs of blank
        // background, about half of MNIST's patches) has its masks: it only
        // adds to the tie counts. Keep one of each run, with its length.
        var kept = [Int]()
        var runLength = [Int]()
        kept.reserveCapacity(n)
        runLength.reserveCapacity(n)
        s.withUnsafeBufferPointer { ps in
            for q in 0..<n {
                var same = q > 0
                var k = 0
                while same && k < ranks {
                    same = ps[k * n + q] == ps[k * n + q - 1]
                    k += 1
                }
                if same {
                    runLength[runLength.count - 1] += 1
                } else {
                    kept.append(q)
                    runLength.append(1)
                }
            }
        }
        let count = kept.count
        var compact = [Double](repeating: 0, count: ranks * count)
        for k in 0..<ranks { for (j, q) in kept.enumerated() { compact[k * count + j] = s[k * n + q] } }

        var a = [Double](repeating: 0, count: units * block)
        var masks = [Int64](repeating: 0, count: block)
        var ties = [Int64](repeating: 0, count: block)
        var tied = [Int](repeating: 0, count: ranks)
        compact.withUnsafeBufferPointer { ps in
            a.withUnsafeMutableBufferPointer { pa in
                masks.withUnsafeMutableBufferPointer { pm in
                    ties.withUnsafeMutableBufferPointer { pt in
                        seen.withUnsafeMutableBufferPointer { bits in
                            var start = 0
                            while start < count {
                                let m = min(block, count - start)
                                for i in 0..<(units * block) { pa[i] = 0 }
                                for k in 0..<ranks {
                                    let sk = ps.baseAddress! + k * count + start
                                    for q in 0..<m {
                                        pm[q] = 0
                                        pt[q] = 0
                                    }
                                    for c in 0..<units {
                                        let row = pa.baseAddress! + c * block
                                        let weight = u[c, k]
                                        let bit = Int64(1) << Int64(c)
                                        for q in 0..<m {
                                            let x = row[q] + weight * sk[q]
                                            row[q] = x
                                            pm[q] |= x > 0 ? bit : 0
                                            pt[q] |= x == 0 ? 1 : 0
                                        }
                                    }
                                    let rankBits = bits.baseAddress! + k * words
                                    var t = 0
                                    for q in 0..<m {
                                        if pt[q] != 0 {
                                            t += runLength[start + q]
                                            continue
                                        }
                                        let mask = Int(pm[q])
                                        rankBits[mask >> 6] |= UInt64(1) << UInt64(mask & 63)
                                    }
                                    tied[k] += t
                                }
                                start += m
                            }
                        }
                    }
                }
            }
        }
        for k in 0..<ranks { onAHyperplane[k] += tied[k] }
    }

    mutating func merge(_ o: TruncatedMaskAccumulator) {
        patches += o.patches
        for i in seen.indices { seen[i] |= o.seen[i] }
        for k in 0..<ranks { onAHyperplane[k] += o.onAHyperplane[k] }
    }

    var census: TruncatedMaskCensus {
        TruncatedMaskCensus(
            patches: patches,
            distinctMasks: (0..<ranks).map { k in
                seen[(k * words)..<((k + 1) * words)].reduce(0) { $0 + $1.nonzeroBitCount }
            },
            patchesOnAHyperplane: onAHyperplane)
    }
}

extension TruncatedMaskCensus {
    /// The census of explicit patches (patch size × count) under every truncation of `svd`.
    init(svd: SingularValueDecomposition, patches: Matrix) {
        var accumulator = TruncatedMaskAccumulator(units: svd.u.rows, ranks: svd.rank)
        let s = patches.values.withUnsafeBufferPointer {
            spectralCoordinates(svd, $0.baseAddress!, count: patches.columns)
        }
        accumulator.add(coordinates: s, u: svd.u, count: patches.columns)
        self = accumulator.census
    }
}
