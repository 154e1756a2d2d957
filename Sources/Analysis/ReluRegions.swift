import NetIO

/// Phase 6: ReLU activation masks.
///
/// The mask of a patch p under a layer W (n units) is M(p) = 1[Wp > 0],
/// stored as an integer whose bit c is unit (channel) c. Ties: a
/// pre-activation of exactly 0 is not > 0, so its bit is 0; in particular an
/// all-zero patch (common in conv2's input, where ReLU and pooling leave
/// blank background) gives the all-zero mask.
public enum ReluMask {
    /// The mask of one pre-activation vector a = Wp: bit c set iff a[c] > 0.
    public static func mask(preActivation a: [Double]) -> Int {
        precondition(a.count <= 62, "ReluMask: at most 62 units")
        return a.withUnsafeBufferPointer { mask($0.baseAddress!, units: a.count, stride: 1) }
    }

    /// The one mask rule every census uses: bit c set iff a[c·stride] > 0.
    @inline(__always)
    static func mask(_ a: UnsafePointer<Double>, units: Int, stride: Int) -> Int {
        var m = 0
        for c in 0..<units where a[c * stride] > 0 { m |= 1 << c }
        return m
    }

    /// The mask as text, unit 0 first ("10110000" has units 0, 2 and 3 active).
    public static func bits(_ mask: Int, units: Int) -> String {
        String((0..<units).map { (mask >> $0) & 1 == 1 ? "1" : "0" })
    }
}

/// One mask and how often it occurred.
public struct MaskFrequency: Codable, Sendable, Equatable {
    /// Bit c is unit c.
    public var mask: Int
    /// ``ReluMask/bits(_:units:)``: unit 0 first.
    public var bits: String
    public var count: Int
    /// count / patches.
    public var fraction: Double
}

/// The distinct masks of a set of patches.
public struct MaskCensus: Codable, Sendable, Equatable {
    /// Patches counted.
    public var patches: Int
    /// Distinct masks among them.
    public var distinctMasks: Int
    /// The most frequent masks, most frequent first (ties: smaller mask first).
    public var mostCommon: [MaskFrequency]

    /// From a histogram: counts[m] = how many patches had mask m.
    public init(counts: [Int], units: Int, mostCommon k: Int) {
        patches = counts.reduce(0, +)
        distinctMasks = counts.filter { $0 > 0 }.count
        let total = patches
        mostCommon = counts.enumerated().filter { $0.element > 0 }
            .sorted { $0.element != $1.element ? $0.element > $1.element : $0.offset < $1.offset }
            .prefix(k)
            .map {
                MaskFrequency(
                    mask: $0.offset, bits: ReluMask.bits($0.offset, units: units), count: $0.element,
                    fraction: Double($0.element) / Double(total))
            }
    }

    /// The census of explicit patches under W (units = W.rows ≤ 24): the
    /// masks of W·p for each column p of `patches` (W.columns × count).
    public init(weights w: Matrix, patches: Matrix, mostCommon k: Int) {
        precondition(
            w.columns == patches.rows && w.rows <= 24,
            "MaskCensus: shapes \(w.rows)×\(w.columns), \(patches.rows)×\(patches.columns)")
        let a = w * patches
        var counts = [Int](repeating: 0, count: 1 << w.rows)
        countMasks(a.values, units: w.rows, patches: patches.columns, into: &counts)
        self.init(counts: counts, units: w.rows, mostCommon: k)
    }
}

/// Cover's count: n hyperplanes through the origin in general position cut
/// ℝʳ into at most C(n, r) = 2·Σ_{k<r} binom(n−1, k) regions, so a layer of
/// n units whose W has rank r makes at most that many masks from generic
/// patches (2ⁿ when r ≥ n).
public func coverBound(units n: Int, rank r: Int) -> Int {
    precondition(n >= 1 && r >= 1, "coverBound: n = \(n), r = \(r)")
    var sum = 0
    var binomial = 1  // binom(n−1, k), k = 0
    for k in 0..<min(r, n) {
        sum += binomial
        binomial = binomial * (n - 1 - k) / (k + 1)
    }
    return 2 * sum
}

/// Phase 6 for one layer.
public struct ReluRegionLayerReport: Codable, Sendable, Equatable {
    public var layer: String
    /// Units n (output channels).
    public var units: Int
    /// The layer's numerical rank (see ``LayerSpectrum/numericalRank``).
    public var rank: Int
    /// 2ⁿ.
    public var possibleMasks: Int
    /// coverBound[r−1] = 2·Σ_{k<r} binom(n−1, k) for r = 1…n.
    public var coverBound: [Int]
    /// Cover's bound at the layer's own rank.
    public var coverBoundAtRank: Int
    /// Masks of `randomPatchCount` patches drawn from the training set: for
    /// each, an image uniform over the set, then a position uniform over the
    /// layer's output grid (26×26 for conv1, 11×11 for conv2), from a
    /// SplitMix64 generator seeded with `samplingSeed`; conv1's draws come
    /// first, then conv2's, from one stream. conv2's patches are 8×3×3 windows
    /// of the image's pooled ReLU conv1 output (host float64).
    public var randomTrainingPatches: MaskCensus
    /// Masks of every patch of every test image (conv1: 676 per image;
    /// conv2: 121 per image, from the host float64 chain).
    public var testSetPatches: MaskCensus
    /// energyBeforeReLU[i] = mean over test-set patches of (uᵢᵀa)² = (σᵢ·vᵢᵀp)²,
    /// a = Wp the pre-activation, σᵢ the i-th singular value, uᵢ and vᵢ the
    /// i-th left and right singular vectors (σᵢ·vᵢᵀp is the pre-activation's
    /// coordinate along uᵢ).
    public var energyBeforeReLU: [Double]
    /// energyAfterReLU[i] = mean over test-set patches of (uᵢᵀ ReLU(a))².
    public var energyAfterReLU: [Double]
    /// Mean ‖a‖² per patch (= Σᵢ energyBeforeReLU[i], U being square orthogonal).
    public var totalEnergyBeforeReLU: Double
    /// Mean ‖ReLU(a)‖² per patch (= Σᵢ energyAfterReLU[i]).
    public var totalEnergyAfterReLU: Double
    /// Masks of the truncated layer W_k·p, k = 1…r, over the random training
    /// patches: what coverBound[k − 1] bounds.
    public var truncatedRandomTrainingPatches: TruncatedMaskCensus
    /// The same over every test-set patch.
    public var truncatedTestSetPatches: TruncatedMaskCensus
}

/// The random training patches of phase 6: conv1 patches (9, count) and conv2
/// patches (72, count), drawn as ``ReluRegionLayerReport/randomTrainingPatches`` says.
func sampleTrainingPatches(_ set: Dataset, count: Int, seed: UInt64, reference: HostReferenceNet) -> (
    conv1: Matrix, conv2: Matrix
) {
    let g = TinyConvNetGeometry.self
    var rng = SeededRandom(seed: seed)
    var p1 = Matrix(rows: g.conv1PatchSize, columns: count)
    for q in 0..<count {
        let image = rng.uniform(below: set.count)
        let y = rng.uniform(below: g.conv1OutputSide)
        let x = rng.uniform(below: g.conv1OutputSide)
        let pixels = set.normalizedImages([image])
        for i in 0..<3 { for k in 0..<3 { p1[i * 3 + k, q] = Double(pixels[(y + i) * g.imageSide + x + k]) } }
    }
    var p2 = Matrix(rows: g.conv2PatchSize, columns: count)
    let conv1 = ConvLayerMap.direct(reference.conv1)
    let plane = g.pool1Side * g.pool1Side
    for q in 0..<count {
        let image = rng.uniform(below: set.count)
        let y = rng.uniform(below: g.conv2OutputSide)
        let x = rng.uniform(below: g.conv2OutputSide)
        let cols = set.normalizedImages([image]).withUnsafeBufferPointer { conv1Patches($0, count: 1) }
        let a1 = cols.withUnsafeBufferPointer {
            conv1.apply($0.baseAddress!, count: g.conv1OutputSide * g.conv1OutputSide).a
        }
        let pooled = reluPool(a1, planes: g.conv1Channels, side: g.conv1OutputSide)  // (8, 1, 13, 13)
        for c in 0..<g.conv1Channels {
            for i in 0..<3 {
                for k in 0..<3 {
                    p2[(c * 3 + i) * 3 + k, q] = pooled[c * plane + (y + i) * g.pool1Side + x + k]
                }
            }
        }
    }
    return (p1, p2)
}
