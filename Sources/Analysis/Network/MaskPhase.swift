import Foundation
import NetIO

/// Phase 6 of one conv layer whose output goes straight into a ReLU: the
/// distinct ReLU masks of its pre-activation a = W̃p + b̃ (BatchNorm folded)
/// over sampled input patches p, and of its rank-k truncations
/// a_k = W̃_k·p + b̃ = U_k·s_k + b̃ (s = σ⊙Vᵀp), with the bound on their number.
///
/// The mask of p is bit c = 1[a_c > 0]. A patch with an entry exactly 0 lies
/// on one of the n hyperplanes {a_c = 0} and belongs to no region
/// necessarily, so it is counted apart (``patchesOnAHyperplane``), as in
/// TinyConvNet's phase 6.
///
/// The bound: a_k is an affine function of s_k ∈ ℝᵏ, so the masks are the
/// regions of n hyperplanes in ℝᵏ: at most Cover's C(n, k) = 2·Σ_{j<k} binom(n−1, j)
/// when they pass through the origin (every b̃ = 0: TinyConvNet's convs), and
/// Σ_{j≤k} binom(n, j) in general (Buck 1943; affine hyperplanes in general
/// position). Neither count can exceed the number of patches counted.
public struct LayerMaskCensus: Codable, Sendable, Equatable {
    /// The layer's PyTorch path.
    public var layer: String
    /// Units n (output channels).
    public var units: Int
    /// The layer's numerical rank (``NetworkLayerRecord/numericalRank``).
    public var numericalRank: Int
    /// Test images whose patches form the pool (the first ones).
    public var images: Int
    /// The pool: images × the layer's output positions.
    public var pool: Int
    /// Patches drawn from the pool without replacement (the whole pool when
    /// it holds no more): positions uniform over the pool by a partial
    /// Fisher–Yates shuffle from SplitMix64 (`seed`, stream = the layer's
    /// index), processed in pool order.
    public var patches: Int
    public var seed: UInt64
    /// "linear" (every b̃ = 0: Cover's C(n, k)) or "affine" (Σ_{j≤k} binom(n, j)).
    public var boundKind: String
    /// bound[k − 1] for k = 1…``ranks``, float64 (exact below 2⁵³; beyond,
    /// far above any sample).
    public var bound: [Double]
    /// Distinct masks of W̃p + b̃ among the patches with no entry exactly 0.
    public var distinctMasks: Int
    public var patchesOnAHyperplane: Int
    /// The bound at the numerical rank: what ``distinctMasks`` may reach.
    public var boundAtRank: Double
    /// truncatedDistinctMasks[k − 1]: distinct masks of W̃_k·p + b̃, k = 1…ranks.
    public var truncatedDistinctMasks: [Int]
    public var truncatedPatchesOnAHyperplane: [Int]

    public init(
        layer: String, units: Int, numericalRank: Int, images: Int, pool: Int, patches: Int, seed: UInt64,
        boundKind: String, bound: [Double], distinctMasks: Int, patchesOnAHyperplane: Int, boundAtRank: Double,
        truncatedDistinctMasks: [Int], truncatedPatchesOnAHyperplane: [Int]
    ) {
        self.layer = layer
        self.units = units
        self.numericalRank = numericalRank
        self.images = images
        self.pool = pool
        self.patches = patches
        self.seed = seed
        self.boundKind = boundKind
        self.bound = bound
        self.distinctMasks = distinctMasks
        self.patchesOnAHyperplane = patchesOnAHyperplane
        self.boundAtRank = boundAtRank
        self.truncatedDistinctMasks = truncatedDistinctMasks
        self.truncatedPatchesOnAHyperplane = truncatedPatchesOnAHyperplane
    }

    /// min(out, patch): the ranks k counted.
    public var ranks: Int { truncatedDistinctMasks.count }

    /// Ranks k (1-based) whose distinct masks exceed min(bound[k − 1], the patches counted at k).
    public var ranksAboveTheBound: [Int] {
        truncatedDistinctMasks.indices.filter {
            Double(truncatedDistinctMasks[$0])
                > min(bound[$0], Double(patches - truncatedPatchesOnAHyperplane[$0]))
        }.map { $0 + 1 }
    }
}

/// The region bound of n hyperplanes in ℝᵏ: Cover's C(n, k) =
/// 2·Σ_{j<k} binom(n−1, j) through the origin (`throughOrigin`), else
/// Σ_{j≤k} binom(n, j); float64 (exact below 2⁵³).
public func regionBound(units n: Int, rank k: Int, throughOrigin: Bool) -> Double {
    precondition(n >= 1 && k >= 1, "regionBound: n = \(n), k = \(k)")
    // Σ_{j≤m} binom(N, j) with N, m as the case needs.
    let (top, last) = throughOrigin ? (n - 1, k - 1) : (n, k)
    var sum = 0.0
    var binomial = 1.0
    for j in 0...min(last, top) {
        sum += binomial
        binomial = binomial * Double(top - j) / Double(j + 1)
    }
    return throughOrigin ? 2 * sum : sum
}

/// Phase 6 over the conv layers of a ``FoldedNetwork`` that a ReLU follows
/// directly (in a residual block: the body's first conv; the second one's
/// output meets the shortcut before its ReLU, so its mask is not W̃p + b̃'s).
public enum MaskPhase {
    /// Indices of the layers whose output goes straight into a ReLU.
    public static func reluLayers(_ network: FoldedNetwork) -> [Int] {
        func walk(_ steps: [FoldedNetwork.Step]) -> [Int] {
            var out: [Int] = []
            for (i, step) in steps.enumerated() {
                switch step {
                case .affine(let l):
                    if i + 1 < steps.count, case .relu = steps[i + 1], case .conv = network.layers[l].kind {
                        out.append(l)
                    }
                case .residual(let body, let shortcut, _):
                    out += walk(body) + walk(shortcut ?? [])
                default: break
                }
            }
            return out
        }
        return walk(network.steps).sorted()
    }

    /// Phase 6's checks of one census, each a count that must be 0: the
    /// ranks k whose distinct masks exceed min(patches, bound[k − 1]), and
    /// how far the untruncated count exceeds min(patches, the bound at the
    /// numerical rank).
    public static func checks(_ m: LayerMaskCensus) -> [Check] {
        [
            Check(
                id: "\(m.layer).masks-bound",
                description: "\(m.layer) ranks k where the distinct masks of W̃_k·p + b̃ (\(m.patches) patches) exceed "
                    + "min(patches, the \(m.boundKind) region bound of \(m.units) hyperplanes in ℝᵏ)",
                value: Double(m.ranksAboveTheBound.count), relation: .equalTo, limit: 0, kind: .independent),
            Check(
                id: "\(m.layer).masks-full-bound",
                description: "\(m.layer) distinct masks of W̃p + b̃ above min(patches, the bound at the numerical rank "
                    + "\(m.numericalRank))",
                value: max(0, Double(m.distinctMasks) - min(m.boundAtRank, Double(m.patches - m.patchesOnAHyperplane))),
                relation: .equalTo, limit: 0, kind: .independent),
        ]
    }

    /// `count` distinct positions of 0..<pool, ascending: all of them when
    /// count ≥ pool, else the first `count` of a Fisher–Yates shuffle driven
    /// by SplitMix64(seed, stream).
    public static func samplePositions(pool: Int, count: Int, seed: UInt64, stream: UInt64) -> [Int] {
        if count >= pool { return Array(0..<pool) }
        var order = Array(0..<pool)
        var random = SeededRandom(seed: seed, stream: stream)
        for i in 0..<count { order.swapAt(i, i + random.uniform(below: pool - i)) }
        return order[0..<count].sorted()
    }

    /// The censuses of `layers` (indices into the network's layers) over the
    /// first `images` of `set`, `patches` drawn per layer; `svds` (of W̃)
    /// and `numericalRanks` are indexed by the network's layers.
    static func run(
        _ network: FoldedNetwork, layers: [Int], svds: [SingularValueDecomposition], numericalRanks: [Int],
        set: Dataset, images: Int, patches: Int, seed: UInt64, chunk: Int, threads: Int
    ) -> [LayerMaskCensus] {
        guard !layers.isEmpty, images > 0, patches > 0 else { return [] }
        let geometry = layers.map { l -> (plane: Int, patch: Int) in
            guard case .conv(let spec, _, _, let oh, let ow) = network.layers[l].kind else {
                preconditionFailure("MaskPhase: \(network.layers[l].name) is not a conv")
            }
            return (oh * ow, spec.inChannels * spec.kernelSize * spec.kernelSize)
        }
        let positions = layers.indices.map {
            samplePositions(
                pool: images * geometry[$0].plane, count: patches, seed: seed, stream: UInt64(layers[$0]))
        }
        let forward = HostNetworkForward.folded(network)
        let chunks = (images + chunk - 1) / chunk
        let wanted = Set(layers)
        // Per chunk, per mask layer: the drawn patches of the chunk's images (patch × m, row-major).
        let parts = parallelMap(chunks, threads: threads) { c -> [[Double]] in
            let lo = c * chunk
            let hi = min(lo + chunk, images)
            var inputs = [Int: [Double]]()
            _ = forward.logits(
                set.normalizedImages(lo..<hi).map(Double.init), batch: hi - lo,
                layerInputs: { if wanted.contains($0) { inputs[$0] = $1 } })
            return layers.indices.map { i in
                let layer = network.layers[layers[i]]
                guard case .conv(let spec, let h, let w, _, let ow) = layer.kind else { return [] }
                let plane = geometry[i].plane
                let mine = positions[i].filter { $0 >= lo * plane && $0 < hi * plane }
                let input = inputs[layers[i]]!
                let k = spec.kernelSize
                var cols = [Double](repeating: 0, count: geometry[i].patch * mine.count)
                for (q, position) in mine.enumerated() {
                    let image = position / plane - lo
                    let (oy, ox) = ((position % plane) / ow, position % ow)
                    let base = image * layer.inputSize
                    for ch in 0..<spec.inChannels {
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let y = oy * spec.stride + ky - spec.padding
                                let x = ox * spec.stride + kx - spec.padding
                                let row = (ch * k + ky) * k + kx
                                cols[row * mine.count + q] =
                                    y >= 0 && y < h && x >= 0 && x < w ? input[base + (ch * h + y) * w + x] : 0
                            }
                        }
                    }
                }
                return cols
            }
        }
        return parallelMap(layers.count, threads: threads) { i -> LayerMaskCensus in
            let l = layers[i]
            let layer = network.layers[l]
            let patch = geometry[i].patch
            let m = positions[i].count
            // Concatenate the chunks' columns in pool order.
            var p = Matrix(rows: patch, columns: m)
            var offset = 0
            for part in parts {
                let n = part[i].count / patch
                for r in 0..<patch { for q in 0..<n { p.values[r * m + offset + q] = part[i][r * n + q] } }
                offset += n
            }
            let throughOrigin = layer.bias.allSatisfy { $0 == 0 }
            let svd = svds[l]
            let ranks = svd.rank
            let n = layer.folded.rows
            var census = census(folded: layer.folded, svd: svd, bias: layer.bias, patches: p)
            census.layer = layer.name
            census.numericalRank = numericalRanks[l]
            census.images = images
            census.pool = images * geometry[i].plane
            census.seed = seed
            census.boundKind = throughOrigin ? "linear" : "affine"
            census.bound = (1...ranks).map { regionBound(units: n, rank: $0, throughOrigin: throughOrigin) }
            census.boundAtRank = regionBound(units: n, rank: max(numericalRanks[l], 1), throughOrigin: throughOrigin)
            return census
        }
    }

    /// The counts of one layer over explicit patches (patch × m): the masks
    /// of W̃p + b̃ and of W̃_k·p + b̃ for k = 1…min(out, patch). The
    /// identifying fields (layer, images, bound, …) are left for the caller.
    static func census(folded w: Matrix, svd: SingularValueDecomposition, bias: [Double], patches p: Matrix)
        -> LayerMaskCensus
    {
        let n = w.rows
        let m = p.columns
        let ranks = svd.rank
        var a = [Double](repeating: 0, count: n * m)
        w.values.withUnsafeBufferPointer { pw in
            p.values.withUnsafeBufferPointer { pp in
                a.withUnsafeMutableBufferPointer {
                    denseProduct(m: n, n: m, k: w.columns, a: pw.baseAddress!, b: pp.baseAddress!, c: $0.baseAddress!)
                }
            }
        }
        for c in 0..<n { for q in 0..<m { a[c * m + q] += bias[c] } }
        var full = MaskSet(units: n)
        let fullTies = full.insert(a, columns: m)

        let s = p.values.withUnsafeBufferPointer { spectralCoordinates(svd, $0.baseAddress!, count: m) }
        var partial = [Double](repeating: 0, count: n * m)
        for c in 0..<n { for q in 0..<m { partial[c * m + q] = bias[c] } }
        var distinct: [Int] = []
        var ties: [Int] = []
        for k in 0..<ranks {
            for c in 0..<n {
                let weight = svd.u[c, k]
                for q in 0..<m { partial[c * m + q] += weight * s[k * m + q] }
            }
            var set = MaskSet(units: n)
            ties.append(set.insert(partial, columns: m))
            distinct.append(set.count)
        }
        return LayerMaskCensus(
            layer: "", units: n, numericalRank: 0, images: 0, pool: 0, patches: m, seed: 0, boundKind: "",
            bound: [], distinctMasks: full.count, patchesOnAHyperplane: fullTies, boundAtRank: 0,
            truncatedDistinctMasks: distinct, truncatedPatchesOnAHyperplane: ties)
    }
}

/// Distinct masks of any width: bit c of word c / 64 is unit c.
struct MaskSet {
    let units: Int
    let words: Int
    private var narrow = Set<UInt64>()
    private var wide = Set<[UInt64]>()

    init(units: Int) {
        self.units = units
        words = (units + 63) / 64
    }

    var count: Int { words == 1 ? narrow.count : wide.count }

    /// Inserts the mask of each column of `a` (units × columns, row-major)
    /// that has no entry exactly 0; returns the number of columns left out.
    mutating func insert(_ a: [Double], columns m: Int) -> Int {
        var masks = [UInt64](repeating: 0, count: words * m)
        var tied = [Bool](repeating: false, count: m)
        for c in 0..<units {
            let bit = UInt64(1) << UInt64(c % 64)
            let word = c / 64
            for q in 0..<m {
                let x = a[c * m + q]
                if x > 0 { masks[q * words + word] |= bit } else if x == 0 { tied[q] = true }
            }
        }
        var ties = 0
        for q in 0..<m {
            if tied[q] {
                ties += 1
            } else if words == 1 {
                narrow.insert(masks[q])
            } else {
                wide.insert(Array(masks[(q * words)..<((q + 1) * words)]))
            }
        }
        return ties
    }
}
