import CLAPACK
import Dispatch
import Foundation
import NetIO

/// The network the analysis verifies (phase 4): in practice TinyConvNet on a
/// `Device` (GPUNet), adapted by the caller so that Analysis need not depend
/// on GPUNet.
public protocol NetworkUnderTest {
    /// The forward pass of `count` normalised images (count, 1, 28, 28), as
    /// ``NetIO/Dataset/normalizedImages(_:)`` makes them, with the outputs
    /// ``NetworkOutputs`` lists. Called from one thread, batch after batch,
    /// over the whole test set.
    func forward(normalizedImages: [Float], count: Int) throws -> NetworkOutputs
}

/// What the network under test returns for a batch of `count` images, NCHW
/// float32.
public struct NetworkOutputs: Sendable {
    /// conv1's pre-activation (count, 8, 26, 26).
    public var conv1: [Float]
    /// conv2's pre-activation (count, 16, 11, 11), computed from `pooled1`.
    public var conv2: [Float]
    /// ReLU(maxpool₂(conv1)) (count, 8, 13, 13) as training computes it (the
    /// fused convolution + pool + ReLU).
    public var pooled1: [Float]
    /// The pool's winners (count, 8, 13, 13): the flat index y·26 + x in
    /// conv1's output plane of each window's maximum.
    public var argmax1: [Int32]
    /// ReLU(maxpool₂(conv2)) (count, 16, 5, 5), the fused pass on `pooled1`.
    public var pooled2: [Float]
    /// The flat index y·11 + x in conv2's output plane of each window's maximum.
    public var argmax2: [Int32]
    /// (count, 10).
    public var logits: [Float]

    public init(
        conv1: [Float], conv2: [Float], pooled1: [Float], argmax1: [Int32], pooled2: [Float], argmax2: [Int32],
        logits: [Float]
    ) {
        self.conv1 = conv1
        self.conv2 = conv2
        self.pooled1 = pooled1
        self.argmax1 = argmax1
        self.pooled2 = pooled2
        self.argmax2 = argmax2
        self.logits = logits
    }
}

/// Phase 4: the network under test against the host's float64 computation.
///
/// What is compared, for every test image:
/// - conv1: the device's conv1 pre-activation against W₁·p computed on the
///   host (im2col + dgemm, float64) from the same float32 input;
/// - conv2: the device's conv2 pre-activation against W₂·p where p are the
///   patches of the *host's own* float64 chain (pooled ReLU of the host's
///   conv1), not of the device's conv1 output. ReLU and max-pool are
///   1-Lipschitz, so the device's conv1 rounding reaches conv2 undiminished
///   but unamplified; the tolerance covers both;
/// - pooled outputs of both layers, ReLU(maxpool₂(conv)) from the fused
///   kernels that training runs, against the host's float64 chain (layer 2
///   from the host's own pooled layer 1, as for conv2), tolerance 1e-4;
/// - the pools' winners (argmax) of both layers against the float64 argmax of
///   each 2×2 window of the host's pre-activation (first maximum in row-major
///   order). Rule: a window whose two largest float64 values differ by at
///   most ``argmaxTieBound`` (2e-4: each of the two may move by the 1e-4
///   device tolerance) may legitimately flip; the check counts mismatches in
///   the other windows, which must be 0; all mismatches are reported too;
/// - logits: the AnalyticalNet's (float64, SVD coordinates) against the
///   device's, and the predicted class (argmax, first on a tie) of each.
public struct DeviceVerification: Codable, Sendable, Equatable {
    public var images: Int
    /// max |device conv1 − host W₁p| (tolerance 1e-4).
    public var conv1MaxAbsDifference: Double
    /// max |device conv2 − host W₂p| (tolerance 1e-4).
    public var conv2MaxAbsDifference: Double
    /// max |device pooled1 − host ReLU(maxpool₂(W₁p))| (tolerance 1e-4).
    public var pooled1MaxAbsDifference: Double
    /// max |device pooled2 − host ReLU(maxpool₂(W₂p))| (tolerance 1e-4).
    public var pooled2MaxAbsDifference: Double
    /// Pool windows compared per layer over the test set (count·8·13·13, count·16·5·5).
    public var poolWindows: [Int]
    /// Windows per layer whose device winner differs from the float64 one.
    public var argmaxMismatches: [Int]
    /// The same, counting only windows whose two largest float64 values
    /// differ by more than `argmaxTieBound` (must be 0).
    public var argmaxMismatchesBeyondTies: [Int]
    /// The near-tie bound of the argmax rule (absolute, on pre-activations).
    public var argmaxTieBound: Double
    /// max |device logits − AnalyticalNet logits| (tolerance 1e-4).
    public var logitsMaxAbsDifference: Double
    /// Images whose device prediction differs from the AnalyticalNet's (must be 0).
    public var predictionMismatches: Int
    /// The device network's test accuracy (fraction).
    public var deviceTestAccuracy: Double
    /// Seconds spent inside the network's forward calls.
    public var deviceSeconds: Double

    /// Twice the 1e-4 device tolerance on pre-activations.
    public static let argmaxTieBound = 2e-4
}

/// Largest |x − y|, NaN if either is NaN (so that a NaN fails every check).
@inline(__always)
func worstDifference(_ worst: Double, _ x: Double, _ y: Double) -> Double {
    let d = abs(x - y)
    if d.isNaN || worst.isNaN { return .nan }
    return max(worst, d)
}

/// max |a − b| over two equal-length arrays; NaN if any difference is NaN.
func maxAbsDifference(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var worst = 0.0
    var sawNaN = false
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            for i in 0..<pa.count {
                let d = abs(pa[i] - pb[i])
                if d > worst { worst = d }
                if d != d { sawNaN = true }
            }
        }
    }
    return sawNaN ? .nan : worst
}

/// Everything the test-set pass accumulates; pieces merge by summing and
/// taking maxima.
struct PassStatistics {
    var images = 0
    var directCorrect = 0
    var analyticalCorrect = 0
    /// AnalyticalNet vs the host im2col network (phase 3's network check).
    var analyticalPredictionMismatches = 0
    var analyticalConv1Difference = 0.0
    var analyticalConv2Difference = 0.0
    var analyticalLogitsDifference = 0.0
    /// The host im2col network's predicted class of each image, in order.
    var directPredictions = [Int]()
    /// Histograms of masks over every test patch, from the host W·p.
    var conv1MaskCounts = [Int](repeating: 0, count: 1 << TinyConvNetGeometry.conv1Channels)
    var conv2MaskCounts = [Int](repeating: 0, count: 1 << TinyConvNetGeometry.conv2Channels)
    var conv1Patches = 0
    var conv2Patches = 0
    /// Σ over patches of (σᵢvᵢᵀp)² = (uᵢᵀa)² and (uᵢᵀ ReLU(a))², and of ‖a‖², ‖ReLU(a)‖².
    var conv1EnergyBefore: [Double]
    var conv1EnergyAfter: [Double]
    var conv2EnergyBefore: [Double]
    var conv2EnergyAfter: [Double]
    var conv1TotalBefore = 0.0, conv1TotalAfter = 0.0, conv2TotalBefore = 0.0, conv2TotalAfter = 0.0
    /// Masks of the truncated layers W_k·p, k = 1…r, over every test patch.
    var conv1Truncated: TruncatedMaskAccumulator
    var conv2Truncated: TruncatedMaskAccumulator
    /// Device comparisons (phase 4).
    var deviceConv1Difference = 0.0
    var deviceConv2Difference = 0.0
    var deviceLogitsDifference = 0.0
    var devicePooled1Difference = 0.0, devicePooled2Difference = 0.0
    /// [layer]: all argmax mismatches, and those beyond a near-tie.
    var deviceArgmaxMismatches = [0, 0], deviceArgmaxMismatchesBeyondTies = [0, 0]
    var devicePredictionMismatches = 0
    var deviceCorrect = 0

    init(rank1: Int, rank2: Int) {
        conv1EnergyBefore = [Double](repeating: 0, count: rank1)
        conv1EnergyAfter = conv1EnergyBefore
        conv2EnergyBefore = [Double](repeating: 0, count: rank2)
        conv2EnergyAfter = conv2EnergyBefore
        conv1Truncated = TruncatedMaskAccumulator(units: TinyConvNetGeometry.conv1Channels, ranks: rank1)
        conv2Truncated = TruncatedMaskAccumulator(units: TinyConvNetGeometry.conv2Channels, ranks: rank2)
    }

    mutating func merge(_ o: PassStatistics) {
        images += o.images
        directCorrect += o.directCorrect
        analyticalCorrect += o.analyticalCorrect
        analyticalPredictionMismatches += o.analyticalPredictionMismatches
        directPredictions += o.directPredictions
        analyticalConv1Difference = worstDifference(analyticalConv1Difference, o.analyticalConv1Difference, 0)
        analyticalConv2Difference = worstDifference(analyticalConv2Difference, o.analyticalConv2Difference, 0)
        analyticalLogitsDifference = worstDifference(analyticalLogitsDifference, o.analyticalLogitsDifference, 0)
        for i in conv1MaskCounts.indices { conv1MaskCounts[i] += o.conv1MaskCounts[i] }
        for i in conv2MaskCounts.indices { conv2MaskCounts[i] += o.conv2MaskCounts[i] }
        conv1Patches += o.conv1Patches
        conv2Patches += o.conv2Patches
        for i in conv1EnergyBefore.indices {
            conv1EnergyBefore[i] += o.conv1EnergyBefore[i]
            conv1EnergyAfter[i] += o.conv1EnergyAfter[i]
        }
        for i in conv2EnergyBefore.indices {
            conv2EnergyBefore[i] += o.conv2EnergyBefore[i]
            conv2EnergyAfter[i] += o.conv2EnergyAfter[i]
        }
        conv1TotalBefore += o.conv1TotalBefore
        conv1TotalAfter += o.conv1TotalAfter
        conv2TotalBefore += o.conv2TotalBefore
        conv2TotalAfter += o.conv2TotalAfter
        conv1Truncated.merge(o.conv1Truncated)
        conv2Truncated.merge(o.conv2Truncated)
        deviceConv1Difference = worstDifference(deviceConv1Difference, o.deviceConv1Difference, 0)
        deviceConv2Difference = worstDifference(deviceConv2Difference, o.deviceConv2Difference, 0)
        deviceLogitsDifference = worstDifference(deviceLogitsDifference, o.deviceLogitsDifference, 0)
        devicePooled1Difference = worstDifference(devicePooled1Difference, o.devicePooled1Difference, 0)
        devicePooled2Difference = worstDifference(devicePooled2Difference, o.devicePooled2Difference, 0)
        for l in 0..<2 {
            deviceArgmaxMismatches[l] += o.deviceArgmaxMismatches[l]
            deviceArgmaxMismatchesBeyondTies[l] += o.deviceArgmaxMismatchesBeyondTies[l]
        }
        devicePredictionMismatches += o.devicePredictionMismatches
        deviceCorrect += o.deviceCorrect
    }
}

/// The device's outputs for one piece of a batch, NCHW float32.
struct DeviceSlice {
    let conv1: UnsafePointer<Float>
    let conv2: UnsafePointer<Float>
    let pooled1: UnsafePointer<Float>
    let argmax1: UnsafePointer<Int32>
    let pooled2: UnsafePointer<Float>
    let argmax2: UnsafePointer<Int32>
    let logits: UnsafePointer<Float>
}

/// Runs `body(i)` for i in 0..<n on up to `threads` threads (each thread
/// takes i = t, t + threads, …) and returns the results in order. OpenBLAS
/// runs single-threaded meanwhile: the chunks are the parallelism, and the
/// network under test (called between these sections) keeps its threads.
func parallelMap<T>(_ n: Int, threads: Int, _ body: (Int) -> T) -> [T] {
    var results = [T?](repeating: nil, count: n)
    let workers = max(1, min(threads, n))
    withSingleThreadedBLAS {
        results.withUnsafeMutableBufferPointer { out in
            let slots = out  // each index is written by exactly one worker
            DispatchQueue.concurrentPerform(iterations: workers) { t in
                var i = t
                while i < n {
                    slots[i] = body(i)
                    i += workers
                }
            }
        }
    }
    return results.map { $0! }
}

/// Runs `body` with OpenBLAS single-threaded, restoring the setting when
/// the last such region ends. OpenBLAS's threaded calls are not safe from
/// several threads at once, and the setting is process-wide: regions may
/// nest and may run on several threads at once (the analysis runs phases
/// on concurrent workers), so a count under a lock, not each region's own
/// save and restore, decides when the setting goes back.
func withSingleThreadedBLAS<T>(_ body: () throws -> T) rethrows -> T {
    SingleThreadedBLAS.enter()
    defer { SingleThreadedBLAS.leave() }
    return try body()
}

/// The open ``withSingleThreadedBLAS(_:)`` regions and the setting to restore.
private enum SingleThreadedBLAS {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var open = 0
    nonisolated(unsafe) private static var saved: Int32 = 1

    static func enter() {
        lock.lock()
        defer { lock.unlock() }
        if open == 0 {
            saved = openblas_get_num_threads()
            openblas_set_num_threads(1)
        }
        open += 1
    }

    static func leave() {
        lock.lock()
        defer { lock.unlock() }
        open -= 1
        if open == 0 { openblas_set_num_threads(saved) }
    }
}

/// One pass over the test set computing both host chains (im2col W·p and
/// the AnalyticalNet), the masks, the energies and, given a network, the
/// phase-4 comparisons.
struct TestSetPass {
    let reference: HostReferenceNet
    let analytical: AnalyticalNet
    /// Images per parallel piece: ~10 MB of float64 scratch per thread, so
    /// that a piece's layers stay in cache (measured ~10% faster than 128).
    static let pieceSize = 32

    func run(
        testSet: Dataset, network: NetworkUnderTest?, options: AnalysisOptions,
        progress: (String) -> Void
    ) throws -> (statistics: PassStatistics, deviceSeconds: Double) {
        var total = PassStatistics(rank1: analytical.conv1.rank, rank2: analytical.conv2.rank)
        var deviceSeconds = 0.0
        let g = TinyConvNetGeometry.self
        let conv1Size = g.conv1Channels * g.conv1OutputSide * g.conv1OutputSide
        let conv2Size = g.conv2Channels * g.conv2OutputSide * g.conv2OutputSide
        let pool1Size = g.conv1Channels * g.pool1Side * g.pool1Side
        let pool2Size = g.conv2Channels * g.pool2Side * g.pool2Side
        var start = 0
        while start < testSet.count {
            let end = min(start + options.batchSize, testSet.count)
            let b = end - start
            let images = testSet.normalizedImages(start..<end)
            var device: NetworkOutputs?
            if let network {
                let t0 = Clocks.wall()
                let out = try network.forward(normalizedImages: images, count: b)
                deviceSeconds += Clocks.seconds(since: t0)
                for (name, count, size) in [
                    ("conv1", out.conv1.count, conv1Size), ("conv2", out.conv2.count, conv2Size),
                    ("pooled1", out.pooled1.count, pool1Size), ("argmax1", out.argmax1.count, pool1Size),
                    ("pooled2", out.pooled2.count, pool2Size), ("argmax2", out.argmax2.count, pool2Size),
                    ("logits", out.logits.count, g.classes),
                ] where count != b * size {
                    throw AnalysisError.networkOutputSize(
                        output: name, batchStart: start, expected: b * size, actual: count)
                }
                device = out
            }
            let labels = Array(testSet.labels[start..<end])
            let pieces = (b + Self.pieceSize - 1) / Self.pieceSize
            let partial: [PassStatistics] = images.withUnsafeBufferPointer { img in
                return parallelMap(pieces, threads: options.threads) { p in
                    let lo = p * Self.pieceSize
                    let hi = min(lo + Self.pieceSize, b)
                    let pieceImages = UnsafeBufferPointer(
                        rebasing: img[(lo * g.imageSide * g.imageSide)..<(hi * g.imageSide * g.imageSide)])
                    if let device {
                        return device.conv1.withUnsafeBufferPointer { c1 in
                            device.conv2.withUnsafeBufferPointer { c2 in
                                device.pooled1.withUnsafeBufferPointer { p1 in
                                    device.argmax1.withUnsafeBufferPointer { m1 in
                                        device.pooled2.withUnsafeBufferPointer { p2 in
                                            device.argmax2.withUnsafeBufferPointer { m2 in
                                                device.logits.withUnsafeBufferPointer { lg in
                                                    accumulate(
                                                        pieceImages, count: hi - lo, labels: Array(labels[lo..<hi]),
                                                        device: DeviceSlice(
                                                            conv1: c1.baseAddress! + lo * conv1Size,
                                                            conv2: c2.baseAddress! + lo * conv2Size,
                                                            pooled1: p1.baseAddress! + lo * pool1Size,
                                                            argmax1: m1.baseAddress! + lo * pool1Size,
                                                            pooled2: p2.baseAddress! + lo * pool2Size,
                                                            argmax2: m2.baseAddress! + lo * pool2Size,
                                                            logits: lg.baseAddress! + lo * g.classes))
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    return accumulate(pieceImages, count: hi - lo, labels: Array(labels[lo..<hi]), device: nil)
                }
            }
            for s in partial { total.merge(s) }
            progress("test-set pass: \(end) of \(testSet.count) images")
            start = end
        }
        return (total, deviceSeconds)
    }

    /// The statistics of one piece of b images.
    func accumulate(_ images: UnsafeBufferPointer<Float>, count b: Int, labels: [UInt8], device: DeviceSlice?)
        -> PassStatistics
    {
        let g = TinyConvNetGeometry.self
        var st = PassStatistics(rank1: analytical.conv1.rank, rank2: analytical.conv2.rank)
        st.images = b
        let cols1 = conv1Patches(images, count: b)
        let direct = runChain(
            cols1: cols1, count: b, conv1: .direct(reference.conv1), conv2: .direct(reference.conv2), fc: reference.fc)
        let spectral = runChain(
            cols1: cols1, count: b, conv1: .spectral(analytical.conv1), conv2: .spectral(analytical.conv2),
            fc: analytical.fc)

        // Layer-by-layer agreement of the two host chains, and predictions.
        st.analyticalConv1Difference = maxAbsDifference(direct.conv1, spectral.conv1)
        st.analyticalConv2Difference = maxAbsDifference(direct.conv2, spectral.conv2)
        var analyticalPredictions = [Int](repeating: 0, count: b)
        direct.logits.withUnsafeBufferPointer { dl in
            spectral.logits.withUnsafeBufferPointer { sl in
                for img in 0..<b {
                    for o in 0..<g.classes {
                        st.analyticalLogitsDifference = worstDifference(
                            st.analyticalLogitsDifference, dl[img * g.classes + o], sl[img * g.classes + o])
                    }
                    let pd = argmax(dl.baseAddress! + img * g.classes, g.classes)
                    let pa = argmax(sl.baseAddress! + img * g.classes, g.classes)
                    analyticalPredictions[img] = pa
                    st.directPredictions.append(pd)
                    if pd == Int(labels[img]) { st.directCorrect += 1 }
                    if pa == Int(labels[img]) { st.analyticalCorrect += 1 }
                    if pd != pa { st.analyticalPredictionMismatches += 1 }
                }
            }
        }

        // Masks of every patch, from the host W·p.
        let n1 = b * g.conv1OutputSide * g.conv1OutputSide
        let n2 = b * g.conv2OutputSide * g.conv2OutputSide
        countMasks(direct.conv1, units: g.conv1Channels, patches: n1, into: &st.conv1MaskCounts)
        countMasks(direct.conv2, units: g.conv2Channels, patches: n2, into: &st.conv2MaskCounts)
        st.conv1Patches = n1
        st.conv2Patches = n2

        // Energy along each U direction, before and after ReLU (AnalyticalNet chain).
        (st.conv1EnergyBefore, st.conv1EnergyAfter, st.conv1TotalBefore, st.conv1TotalAfter) =
            directionEnergies(a: spectral.conv1, s: spectral.conv1Coordinates!, svd: analytical.conv1, patches: n1)
        (st.conv2EnergyBefore, st.conv2EnergyAfter, st.conv2TotalBefore, st.conv2TotalAfter) =
            directionEnergies(a: spectral.conv2, s: spectral.conv2Coordinates!, svd: analytical.conv2, patches: n2)
        st.conv1Truncated.add(coordinates: spectral.conv1Coordinates!, u: analytical.conv1.u, count: n1)
        st.conv2Truncated.add(coordinates: spectral.conv2Coordinates!, u: analytical.conv2.u, count: n2)

        if let device {
            let plane1 = g.conv1OutputSide * g.conv1OutputSide
            let plane2 = g.conv2OutputSide * g.conv2OutputSide
            for c in 0..<g.conv1Channels {
                for img in 0..<b {
                    for q in 0..<plane1 {
                        st.deviceConv1Difference = worstDifference(
                            st.deviceConv1Difference,
                            Double(device.conv1[(img * g.conv1Channels + c) * plane1 + q]),
                            direct.conv1[(c * b + img) * plane1 + q])
                    }
                }
            }
            for c in 0..<g.conv2Channels {
                for img in 0..<b {
                    for q in 0..<plane2 {
                        st.deviceConv2Difference = worstDifference(
                            st.deviceConv2Difference,
                            Double(device.conv2[(img * g.conv2Channels + c) * plane2 + q]),
                            direct.conv2[(c * b + img) * plane2 + q])
                    }
                }
            }
            comparePools(
                device.pooled1, device.argmax1, hostPre: direct.conv1, hostPooled: direct.pooled1,
                channels: g.conv1Channels,
                count: b, side: g.conv1OutputSide, layer: 0, into: &st)
            comparePools(
                device.pooled2, device.argmax2, hostPre: direct.conv2, hostPooled: direct.pooled2,
                channels: g.conv2Channels,
                count: b, side: g.conv2OutputSide, layer: 1, into: &st)
            for img in 0..<b {
                var best = 0
                for o in 0..<g.classes {
                    let v = Double(device.logits[img * g.classes + o])
                    st.deviceLogitsDifference = worstDifference(
                        st.deviceLogitsDifference, v, spectral.logits[img * g.classes + o])
                    if v > Double(device.logits[img * g.classes + best]) { best = o }
                }
                if best != analyticalPredictions[img] { st.devicePredictionMismatches += 1 }
                if best == Int(labels[img]) { st.deviceCorrect += 1 }
            }
        }
        return st
    }
}

/// Phase 4's pooled comparison of one layer over b images: the device's
/// pooled values (b, C, o, o) and winners against the host's float64 pooled
/// output (C, b, o, o) and the first maximum of each 2×2 window of its
/// pre-activation (C, b, side, side), with ``DeviceVerification``'s near-tie rule.
func comparePools(
    _ pooled: UnsafePointer<Float>, _ argmax: UnsafePointer<Int32>, hostPre: [Double], hostPooled: [Double],
    channels: Int, count b: Int, side: Int, layer: Int, into st: inout PassStatistics
) {
    let o = side / 2
    let plane = side * side
    let pooledPlane = o * o
    var worst = 0.0
    var mismatches = 0
    var beyondTies = 0
    hostPre.withUnsafeBufferPointer { pre in
        for c in 0..<channels {
            for img in 0..<b {
                let hostPlane = pre.baseAddress! + (c * b + img) * plane
                for y in 0..<o {
                    for x in 0..<o {
                        let q = y * o + x
                        let device = (img * channels + c) * pooledPlane + q
                        worst = worstDifference(
                            worst, Double(pooled[device]), hostPooled[(c * b + img) * pooledPlane + q])
                        // First maximum in row-major order, and the runner-up's value.
                        let i0 = (2 * y) * side + 2 * x
                        let i1 = i0 + 1
                        let i2 = i0 + side
                        let i3 = i2 + 1
                        var best = i0
                        var top = hostPlane[i0]
                        var second = -Double.infinity
                        @inline(__always) func consider(_ index: Int) {
                            let v = hostPlane[index]
                            if v > top {
                                second = top
                                top = v
                                best = index
                            } else if v > second {
                                second = v
                            }
                        }
                        consider(i1)
                        consider(i2)
                        consider(i3)
                        if Int(argmax[device]) != best {
                            mismatches += 1
                            if !(top - second <= DeviceVerification.argmaxTieBound) { beyondTies += 1 }
                        }
                    }
                }
            }
        }
    }
    if layer == 0 { st.devicePooled1Difference = worst } else { st.devicePooled2Difference = worst }
    st.deviceArgmaxMismatches[layer] += mismatches
    st.deviceArgmaxMismatchesBeyondTies[layer] += beyondTies
}

/// Adds the mask of each of `patches` columns of a (units, patches) to `counts`.
func countMasks(_ a: [Double], units: Int, patches n: Int, into counts: inout [Int]) {
    a.withUnsafeBufferPointer { pa in
        counts.withUnsafeMutableBufferPointer { pc in
            for q in 0..<n { pc[ReluMask.mask(pa.baseAddress! + q, units: units, stride: n)] += 1 }
        }
    }
}

/// Σ over patches of (σᵢvᵢᵀp)² (before ReLU; s holds σᵢvᵢᵀp), (uᵢᵀ ReLU(a))² (after), ‖a‖², ‖ReLU(a)‖².
func directionEnergies(a: [Double], s: [Double], svd: SingularValueDecomposition, patches n: Int)
    -> ([Double], [Double], Double, Double)
{
    let r = svd.rank
    let out = svd.u.rows
    let before = s.withUnsafeBufferPointer { rowSquares($0.baseAddress!, rows: r, count: n) }
    let totalBefore = a.withUnsafeBufferPointer { rowSquares($0.baseAddress!, rows: 1, count: a.count)[0] }
    let h = a.map { max($0, 0) }
    let totalAfter = h.withUnsafeBufferPointer { rowSquares($0.baseAddress!, rows: 1, count: h.count)[0] }
    let t = uninitializedArray(r * n) { pt in
        svd.u.values.withUnsafeBufferPointer { pu in
            h.withUnsafeBufferPointer { ph in
                // t = Uᵀ·h: U is stored (out × r), i.e. Uᵀ transposed.
                denseProduct(m: r, n: n, k: out, a: pu.baseAddress!, b: ph.baseAddress!, c: pt, transposeA: true)
            }
        }
    }
    let after = t.withUnsafeBufferPointer { rowSquares($0.baseAddress!, rows: r, count: n) }
    return (before, after, totalBefore, totalAfter)
}

/// Σ_q x[i·n + q]² for each row i (BLAS ddot: vectorised, unlike a Swift
/// loop whose strict floating-point order forbids it).
func rowSquares(_ x: UnsafePointer<Double>, rows: Int, count n: Int) -> [Double] {
    (0..<rows).map { i in cblas_ddot(Int32(n), x + i * n, 1, x + i * n, 1) }
}
