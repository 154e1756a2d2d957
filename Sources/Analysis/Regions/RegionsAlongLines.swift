import Foundation
import NetIO

/// Settings of the linear-regions-along-lines analysis (phase 9, section 4).
public struct RegionsAlongLinesOptions: Codable, Sendable, Equatable {
    /// Pairs of test images with the same label, and as many with different labels.
    public var pairsPerGroup: Int
    /// Seed of the SplitMix64 stream (NetIO.SeededRandom, stream 9) that
    /// draws the pairs and the pieces whose midpoints are checked.
    public var seed: UInt64
    /// Pieces per segment whose midpoint identity is checked (all when the
    /// segment has fewer); every piece of the figure's segment is checked.
    public var midpointPiecesPerSegment: Int
    /// How many segments of each group (the first ones) are densely sampled.
    public var sampledSegmentsPerGroup: Int
    /// Samples per densely sampled segment, at t = (s + ½)/S.
    public var samplesPerSegment: Int
    /// Points of the grid, both ends included, on which conv1's signs are
    /// counted directly.
    public var signGridPoints: Int
    /// Threads (each takes whole segments).
    public var threads: Int

    public init(
        pairsPerGroup: Int = 50, seed: UInt64 = 0, midpointPiecesPerSegment: Int = 20,
        sampledSegmentsPerGroup: Int = 1, samplesPerSegment: Int = 10_000, signGridPoints: Int = 101,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) {
        self.pairsPerGroup = pairsPerGroup
        self.seed = seed
        self.midpointPiecesPerSegment = midpointPiecesPerSegment
        self.sampledSegmentsPerGroup = sampledSegmentsPerGroup
        self.samplesPerSegment = samplesPerSegment
        self.signGridPoints = signGridPoints
        self.threads = threads
    }
}

/// One segment x(t) = x₀ + t(x₁ − x₀) between two test images and its pieces.
public struct SegmentRegionSummary: Codable, Sendable, Equatable {
    /// Test-set indices of x₀ and x₁.
    public var first: Int
    public var second: Int
    public var firstLabel: Int
    public var secondLabel: Int
    public var sameDigit: Bool
    /// ‖x₁ − x₀‖₂ in normalised input units ((pixel/255 − 0.1307)/0.3081).
    public var length: Double
    /// Exact number of activation-pattern pieces of [0, 1]
    /// (``PiecewiseAffineConvNet/pieces(from:to:)``).
    public var pieces: Int
    /// Pieces of the function itself: the breakpoints whose events can
    /// reach the logits + 1 (``SegmentPieces/piecesReachingLogits``); both
    /// counts are reported (nil in files written before it was).
    public var piecesReachingLogits: Int? = nil
    /// pieces / length.
    public var piecesPerUnitLength: Double
    /// Selection changes at first-pool and second-pool windows (several may share a breakpoint).
    public var firstPoolEvents: Int
    public var secondPoolEvents: Int
    /// Sign changes of conv1's 5408 affine pre-activations, from their roots.
    public var conv1SignChanges: Int
    /// The same, counted directly on the grid of ``RegionsAlongLinesOptions/signGridPoints`` points.
    public var conv1SignChangesOnGrid: Int
    /// The shortest piece's length in t.
    public var shortestPiece: Double
    /// Pieces whose midpoint identity was checked, and the largest
    /// |f(m) − (f(a) + f(b))/2| / max|f| among them.
    public var midpointPiecesChecked: Int
    public var midpointMaxRelativeError: Double
    /// See ``SegmentPieces/largestRootBacktrack``.
    public var largestRootBacktrack: Double
}

/// Piece counts over one group of segments.
public struct PieceCountStatistics: Codable, Sendable, Equatable {
    public var segments: Int
    public var piecesMean: Double
    public var piecesMedian: Double
    public var piecesMin: Int
    public var piecesMax: Int
    /// The mean of ``SegmentRegionSummary/piecesReachingLogits`` (nil in older files).
    public var piecesReachingLogitsMean: Double? = nil
    public var piecesPerUnitLengthMean: Double
    public var piecesPerUnitLengthMedian: Double
    public var piecesPerUnitLengthMin: Double
    public var piecesPerUnitLengthMax: Double
    public var lengthMean: Double
    public var conv1SignChangesMean: Double

    init?(_ s: [SegmentRegionSummary]) {
        guard !s.isEmpty else { return nil }
        func median(_ x: [Double]) -> Double {
            let v = x.sorted()
            let n = v.count
            return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2
        }
        let pieces = s.map { Double($0.pieces) }
        let density = s.map(\.piecesPerUnitLength)
        segments = s.count
        piecesMean = pieces.reduce(0, +) / Double(s.count)
        piecesMedian = median(pieces)
        piecesMin = s.map(\.pieces).min()!
        piecesMax = s.map(\.pieces).max()!
        let reaching = s.compactMap(\.piecesReachingLogits)
        piecesReachingLogitsMean =
            reaching.count == s.count ? Double(reaching.reduce(0, +)) / Double(s.count) : nil
        piecesPerUnitLengthMean = density.reduce(0, +) / Double(s.count)
        piecesPerUnitLengthMedian = median(density)
        piecesPerUnitLengthMin = density.min()!
        piecesPerUnitLengthMax = density.max()!
        lengthMean = s.reduce(0) { $0 + $1.length } / Double(s.count)
        conv1SignChangesMean = Double(s.reduce(0) { $0 + $1.conv1SignChanges }) / Double(s.count)
    }
}

/// A densely sampled segment: the pieces sampling finds against the exact count.
public struct SampledSegment: Codable, Sendable, Equatable {
    /// Index into ``RegionsAlongLinesReport/segments``.
    public var segment: Int
    public var samples: Int
    /// 1 + the number of consecutive samples whose activation patterns differ
    /// (each window's winner from the forward pass, the first candidate
    /// within 1e-12·max|a| of the maximum, off first). Never more than the
    /// exact count: each change needs a breakpoint between the two samples.
    public var sampledPieces: Int
    public var exactPieces: Int
    /// The same, comparing only the windows whose selection can reach the
    /// logits, against ``SegmentPieces/piecesReachingLogits`` (nil in older files).
    public var sampledPiecesReachingLogits: Int? = nil
    public var exactPiecesReachingLogits: Int? = nil
    /// Samples where some window's winner on the exact piece holding the
    /// sample is not a maximiser in the forward pass (its value more than
    /// 1e-9·max|a| below max(0, a₁…a₄)).
    public var selectionMismatches: Int
}

/// The figure's segment: the logits at 0, every breakpoint and 1 from the
/// forward pass (the network is affine between them, so the polyline through
/// these points is the logits exactly).
public struct RegionTrace: Codable, Sendable, Equatable {
    public var segment: Int
    public var firstLabel: Int
    public var secondLabel: Int
    /// 0, the breakpoints, 1.
    public var t: [Double]
    /// logits[i] at t[i], one value per class.
    public var logits: [[Double]]
    /// Per breakpoint (t[1…count−2]): 1 first pool, 2 second pool, 3 both.
    public var breakpointLayers: [Int]
}

/// Linear regions along lines (phase 9, section 4): the exact number of pieces on
/// which the network is affine along segments between test images, with
/// three checks against the plain forward pass.
public struct RegionsAlongLinesReport: Codable, Sendable, Equatable {
    public var options: RegionsAlongLinesOptions
    /// Same-digit segments first, then different-digit ones.
    public var segments: [SegmentRegionSummary]
    /// nil when the test set has no such pair.
    public var sameDigit: PieceCountStatistics?
    public var differentDigits: PieceCountStatistics?
    /// Pieces whose midpoints were checked, over all segments, and the
    /// largest relative error |f(m) − (f(a) + f(b))/2| / max|f| (limit 1e-9).
    public var midpointPiecesChecked: Int
    public var midpointMaxRelativeError: Double
    public var sampled: [SampledSegment]
    /// Σ over segments of |root count − grid count| of conv1's sign changes (must be 0).
    public var conv1SignCountMismatches: Int
    /// max over segments of ``SegmentPieces/largestRootBacktrack``.
    public var largestRootBacktrack: Double
    public var figure: RegionTrace?
    /// CPU time of the exact walks alone, summed over segments (the threads'
    /// CPU clocks: on a shared machine wall time measures the other loads).
    public var countingSeconds: Double
    /// CPU time of the checks, summed over segments: midpoints, conv1's sign
    /// grid, dense sampling.
    public var midpointSeconds: Double
    public var gridSeconds: Double
    public var samplingSeconds: Double
    /// Wall time of the whole section, checks included.
    public var seconds: Double
    /// The process's CPU time over the section (all threads).
    public var cpuSeconds: Double
}

/// The two ends of a segment and where they come from.
public struct SegmentEnds: Sendable {
    public var first: Int, second: Int
    public var firstLabel: Int, secondLabel: Int
    public var x0: [Double], x1: [Double]
    public init(first: Int, second: Int, firstLabel: Int, secondLabel: Int, x0: [Double], x1: [Double]) {
        self.first = first
        self.second = second
        self.firstLabel = firstLabel
        self.secondLabel = secondLabel
        self.x0 = x0
        self.x1 = x1
    }
}

public enum RegionsAlongLines {
    /// Relative tolerance of the midpoint identity: float64 forward passes
    /// agree to ~1e-15 of the logits' size, and merged events
    /// (``PiecewiseAffineConvNet/breakpointMergeTolerance``) move a kink by
    /// at most 1e-12 in t.
    public static let midpointTolerance = 1e-9

    /// Pairs of test-set indices: `perGroup` with equal labels, then
    /// `perGroup` with different labels, each first index uniform over the
    /// set and the second uniform over the eligible others. A group that the
    /// set cannot form (one class, or no class with two images) is empty.
    public static func pairs(labels: [UInt8], perGroup: Int, seed: UInt64) -> (
        same: [(Int, Int)], different: [(Int, Int)]
    ) {
        var rng = SeededRandom(seed: seed, stream: 9)
        var byLabel = [[Int]](repeating: [], count: 256)
        for (i, l) in labels.enumerated() { byLabel[Int(l)].append(i) }
        var same: [(Int, Int)] = []
        var different: [(Int, Int)] = []
        let n = labels.count
        if byLabel.contains(where: { $0.count >= 2 }) {
            while same.count < perGroup {
                let i = rng.uniform(below: n)
                let group = byLabel[Int(labels[i])]
                guard group.count >= 2 else { continue }
                var j = group[rng.uniform(below: group.count - 1)]
                if j == i { j = group[group.count - 1] }
                same.append((i, j))
            }
        }
        if byLabel.filter({ !$0.isEmpty }).count >= 2 {
            while different.count < perGroup {
                let i = rng.uniform(below: n)
                let others = n - byLabel[Int(labels[i])].count
                var r = rng.uniform(below: others)
                for j in 0..<n where labels[j] != labels[i] {
                    if r == 0 {
                        different.append((i, j))
                        break
                    }
                    r -= 1
                }
            }
        }
        return (same, different)
    }

    /// The whole section on TinyConvNet and a test set.
    public static func run(
        network: HostReferenceNet, testSet: Dataset, options: RegionsAlongLinesOptions = .init(),
        progress: (String) -> Void = { _ in }
    ) -> RegionsAlongLinesReport {
        let (same, different) = pairs(labels: testSet.labels, perGroup: options.pairsPerGroup, seed: options.seed)
        let ends = (same + different).map { i, j in
            SegmentEnds(
                first: i, second: j, firstLabel: Int(testSet.labels[i]), secondLabel: Int(testSet.labels[j]),
                x0: testSet.normalizedImages([i]).map(Double.init), x1: testSet.normalizedImages([j]).map(Double.init))
        }
        progress("regions along lines: \(same.count) same-digit and \(different.count) different-digit segments")
        return run(network: PiecewiseAffineConvNet(network), segments: ends, options: options)
    }

    /// The section on any network and segments (same-digit ones are those
    /// with equal labels). The figure's segment is the first different-digit
    /// one (the first segment when there is none); the densely sampled ones
    /// are the first ``RegionsAlongLinesOptions/sampledSegmentsPerGroup`` of each group.
    public static func run(
        network net: PiecewiseAffineConvNet, segments ends: [SegmentEnds],
        options: RegionsAlongLinesOptions
    ) -> RegionsAlongLinesReport {
        let started = Clocks.wall()
        let startedCPU = Clocks.processCPU()
        let isSame = ends.map { $0.firstLabel == $0.secondLabel }
        let figureSegment = isSame.firstIndex(of: false) ?? (ends.isEmpty ? nil : 0)
        var sampledSet = Set<Int>()
        for group in [true, false] {
            sampledSet.formUnion(
                isSame.indices.filter { isSame[$0] == group }.prefix(max(0, options.sampledSegmentsPerGroup)))
        }
        struct Result {
            var summary: SegmentRegionSummary
            /// Kept for the densely sampled segments only.
            var pieces: SegmentPieces?
            var trace: RegionTrace?
            var seconds: (walk: Double, midpoint: Double, grid: Double)
        }
        let results: [Result] = parallelMap(ends.count, threads: options.threads) { s in
            let e = ends[s]
            let t0 = Clocks.threadCPU()
            let pieces = net.pieces(from: e.x0, to: e.x1)
            let t1 = Clocks.threadCPU()
            let all = s == figureSegment
            var rng = SeededRandom(seed: options.seed ^ UInt64(s), stream: 10)
            let chosen =
                all
                ? Array(0..<pieces.pieces)
                : sample(pieces.pieces, count: options.midpointPiecesPerSegment, using: &rng)
            let midpoint = midpointCheck(
                network: net, x0: e.x0, x1: e.x1, breakpoints: pieces.breakpoints, pieces: chosen)
            let t2 = Clocks.threadCPU()
            let grid = conv1SignChangesOnGrid(network: net, x0: e.x0, x1: e.x1, points: options.signGridPoints)
            let t3 = Clocks.threadCPU()
            let cuts = [0] + pieces.breakpoints + [1]
            let events = pieces.eventsPerLayer
            let summary = SegmentRegionSummary(
                first: e.first, second: e.second, firstLabel: e.firstLabel, secondLabel: e.secondLabel,
                sameDigit: isSame[s],
                length: pieces.length, pieces: pieces.pieces, piecesReachingLogits: pieces.piecesReachingLogits,
                piecesPerUnitLength: pieces.length > 0 ? Double(pieces.pieces) / pieces.length : .infinity,
                firstPoolEvents: events.first, secondPoolEvents: events.second,
                conv1SignChanges: pieces.conv1SignChanges, conv1SignChangesOnGrid: grid,
                shortestPiece: zip(cuts.dropFirst(), cuts).map { $0 - $1 }.min() ?? 1,
                midpointPiecesChecked: chosen.count, midpointMaxRelativeError: midpoint.maxRelativeError,
                largestRootBacktrack: pieces.largestRootBacktrack)
            let trace =
                all
                ? RegionTrace(
                    segment: s, firstLabel: e.firstLabel, secondLabel: e.secondLabel, t: cuts,
                    logits: midpoint.endLogits, breakpointLayers: pieces.breakpointLayers.map(Int.init))
                : nil
            return Result(
                summary: summary, pieces: sampledSet.contains(s) ? pieces : nil, trace: trace,
                seconds: (t1 - t0, t2 - t1, t3 - t2))
        }
        // The sampled segments after the rest, one to a thread, so that they do not queue on one thread.
        let sampledIndices = results.indices.filter { results[$0].pieces != nil }
        let sampling: [(SampledSegment, Double)] = parallelMap(sampledIndices.count, threads: options.threads) { i in
            let s = sampledIndices[i]
            let t0 = Clocks.threadCPU()
            let sampled = sampleSegment(
                network: net, x0: ends[s].x0, x1: ends[s].x1, pieces: results[s].pieces!,
                samples: options.samplesPerSegment, segment: s)
            return (sampled, Clocks.threadCPU() - t0)
        }
        let summaries = results.map(\.summary)
        return RegionsAlongLinesReport(
            options: options, segments: summaries,
            sameDigit: PieceCountStatistics(summaries.filter(\.sameDigit)),
            differentDigits: PieceCountStatistics(summaries.filter { !$0.sameDigit }),
            midpointPiecesChecked: summaries.reduce(0) { $0 + $1.midpointPiecesChecked },
            midpointMaxRelativeError: summaries.reduce(0) { worstDifference($0, $1.midpointMaxRelativeError, 0) },
            sampled: sampling.map(\.0),
            conv1SignCountMismatches: summaries.reduce(0) { $0 + abs($1.conv1SignChanges - $1.conv1SignChangesOnGrid) },
            largestRootBacktrack: summaries.map(\.largestRootBacktrack).max() ?? 0,
            figure: results.lazy.compactMap(\.trace).first,
            countingSeconds: results.reduce(0) { $0 + $1.seconds.walk },
            midpointSeconds: results.reduce(0) { $0 + $1.seconds.midpoint },
            gridSeconds: results.reduce(0) { $0 + $1.seconds.grid },
            samplingSeconds: sampling.reduce(0) { $0 + $1.1 },
            seconds: Clocks.seconds(since: started), cpuSeconds: Clocks.processCPU() - startedCPU)
    }

    /// `count` distinct indices in 0..<n, sorted (all of them when n ≤ count).
    static func sample(_ n: Int, count: Int, using rng: inout SeededRandom) -> [Int] {
        guard n > count else { return Array(0..<n) }
        var all = Array(0..<n)
        for i in 0..<count { all.swapAt(i, i + rng.uniform(below: n - i)) }
        return all.prefix(count).sorted()
    }

    /// The midpoint identity on the given pieces of [0, 1] cut at
    /// `breakpoints`: with a, b a piece's ends and m its midpoint, the
    /// forward pass's logits satisfy f(m) = (f(a) + f(b))/2 when f is affine
    /// on [a, b]; a breakpoint missing inside the piece shows as a kink.
    /// Returns the largest |f(m) − (f(a) + f(b))/2| over classes and pieces,
    /// divided by the largest |f| over every point evaluated, and the logits
    /// at every end 0, breakpoints…, 1 when all pieces were asked for (else empty).
    public static func midpointCheck(
        network net: PiecewiseAffineConvNet, x0: [Double], x1: [Double], breakpoints: [Double],
        pieces: [Int]
    ) -> (maxRelativeError: Double, endLogits: [[Double]]) {
        let cuts = [0] + breakpoints + [1]
        let endIndices = Array(Set(pieces.flatMap { [$0, $0 + 1] })).sorted()
        let ts = endIndices.map { cuts[$0] } + pieces.map { (cuts[$0] + cuts[$0 + 1]) / 2 }
        let logits = forwardLogits(network: net, x0: x0, x1: x1, at: ts)
        let k = net.classes
        var position = [Int: Int]()
        for (slot, i) in endIndices.enumerated() { position[i] = slot }
        let scale = max(logits.reduce(0) { max($0, abs($1)) }, .leastNormalMagnitude)
        var worst = 0.0
        for (m, i) in pieces.enumerated() {
            let a = position[i]!
            let b = position[i + 1]!
            let mid = endIndices.count + m
            for c in 0..<k {
                let chord = (logits[a * k + c] + logits[b * k + c]) / 2
                worst = worstDifference(worst, logits[mid * k + c], chord)
            }
        }
        let all = pieces.count == cuts.count - 1
        let ends = all ? (0..<cuts.count).map { Array(logits[($0 * k)..<(($0 + 1) * k)]) } : []
        return (worst / scale, ends)
    }

    /// The forward pass's logits at x(t) for each t, (ts.count, classes).
    static func forwardLogits(network net: PiecewiseAffineConvNet, x0: [Double], x1: [Double], at ts: [Double])
        -> [Double]
    {
        var out: [Double] = []
        out.reserveCapacity(ts.count * net.classes)
        var start = 0
        while start < ts.count {
            let chunk = Array(ts[start..<min(start + chunkSize, ts.count)])
            out += net.forward(images: net.interpolate(x0, x1, at: chunk), count: chunk.count).logits
            start += chunk.count
        }
        return out
    }

    /// Images per forward call in the checks (~15 MB of float64 layers).
    static let chunkSize = 128

    /// conv1's sign changes counted directly: the on-states (a > 0) of every
    /// conv1 pre-activation from the forward pass (im2col, dgemm) at
    /// t = k/(points − 1), k = 0…points−1, and the number of consecutive
    /// grid points where a unit's state differs, summed over units.
    public static func conv1SignChangesOnGrid(
        network net: PiecewiseAffineConvNet, x0: [Double], x1: [Double], points: Int
    ) -> Int {
        let g = max(points, 2)
        let ts = (0..<g).map { Double($0) / Double(g - 1) }
        let units = net.conv1Channels * net.conv1Side * net.conv1Side
        let plane = net.conv1Side * net.conv1Side
        var state = [Bool](repeating: false, count: units)
        var changes = 0
        var start = 0
        while start < g {
            let chunk = Array(ts[start..<min(start + chunkSize, g)])
            let b = chunk.count
            let n1 = b * plane
            let images = net.interpolate(x0, x1, at: chunk)
            let cols = uninitializedArray(9 * n1) { dst in
                images.withUnsafeBufferPointer {
                    im2col3x3($0.baseAddress!, channels: 1, count: b, side: net.inputSide, into: dst)
                }
            }
            let a = uninitializedArray(net.conv1Channels * n1) { dst in
                net.conv1.values.withUnsafeBufferPointer { w in
                    cols.withUnsafeBufferPointer {
                        denseProduct(m: net.conv1Channels, n: n1, k: 9, a: w.baseAddress!, b: $0.baseAddress!, c: dst)
                    }
                }
            }
            for img in 0..<b {
                for c in 0..<net.conv1Channels {
                    for q in 0..<plane {
                        let on = a[(c * b + img) * plane + q] > 0
                        if start + img > 0 && on != state[c * plane + q] { changes += 1 }
                        state[c * plane + q] = on
                    }
                }
            }
            start += b
        }
        return changes
    }

    /// Dense sampling of one segment against its exact pieces: see ``SampledSegment``.
    public static func sampleSegment(
        network net: PiecewiseAffineConvNet, x0: [Double], x1: [Double], pieces: SegmentPieces,
        samples: Int, segment: Int
    ) -> SampledSegment {
        let windows1 = net.pool1Windows
        let windows = windows1 + net.pool2Windows
        // Each window slot's (channel, offset in its plane), to address a CBHW layer of any batch size.
        var channel = [Int](repeating: 0, count: 4 * windows)
        var inPlane = channel
        for w in 0..<windows {
            let (layer, v) = w < windows1 ? (1, w) : (2, w - windows1)
            let (p, side) = layer == 1 ? (net.pool1Side, net.conv1Side) : (net.pool2Side, net.conv2Side)
            for s in 0..<4 {
                channel[4 * w + s] = v / (p * p)
                inPlane[4 * w + s] = (2 * ((v / p) % p) + s / 2) * side + 2 * (v % p) + s % 2
            }
        }
        let plane1 = net.conv1Side * net.conv1Side
        let plane2 = net.conv2Side * net.conv2Side
        var exact = pieces.initialWinners
        var nextEvent = 0
        var pattern = [Int8](repeating: -1, count: windows)
        var previous = pattern
        var changes = 0
        var liveChanges = 0
        let live = (0..<windows).map {
            $0 >= windows1
                || PiecewiseAffineConvNet.reachesConv2(window: $0, side: net.pool1Side, used: 2 * net.pool2Side)
        }
        var mismatches = 0
        var start = 0
        while start < samples {
            let chunk = (start..<min(start + chunkSize, samples)).map { (Double($0) + 0.5) / Double(samples) }
            let b = chunk.count
            let act = net.forward(images: net.interpolate(x0, x1, at: chunk), count: b)
            // Each slot's index in this chunk's CBHW layers, for image 0.
            let offset = (0..<(4 * windows)).map { i in
                channel[i] * b * (i < 4 * windows1 ? plane1 : plane2) + inPlane[i]
            }
            for img in 0..<b {
                let t = chunk[img]
                while nextEvent < pieces.events.count && pieces.events[nextEvent].t < t {
                    exact[pieces.events[nextEvent].window] = pieces.events[nextEvent].winner
                    nextEvent += 1
                }
                let scales = [
                    max(layerScale(act.conv1, image: img, count: b, plane: plane1), .leastNormalMagnitude),
                    max(layerScale(act.conv2, image: img, count: b, plane: plane2), .leastNormalMagnitude),
                ]
                var wrong = false
                act.conv1.withUnsafeBufferPointer { a1 in
                    act.conv2.withUnsafeBufferPointer { a2 in
                        offset.withUnsafeBufferPointer { off in
                            pattern.withUnsafeMutableBufferPointer { pat in
                                for layer in 0..<2 {
                                    let a = (layer == 0 ? a1 : a2).baseAddress! + img * (layer == 0 ? plane1 : plane2)
                                    let near = 1e-12 * scales[layer]
                                    let far = 1e-9 * scales[layer]
                                    for w in (layer == 0 ? 0..<windows1 : windows1..<windows) {
                                        let v0 = a[off[4 * w]]
                                        let v1 = a[off[4 * w + 1]]
                                        let v2 = a[off[4 * w + 2]]
                                        let v3 = a[off[4 * w + 3]]
                                        let top = max(max(v0, v1), max(max(v2, v3), 0))
                                        // The forward pass's selection: the first within 1e-12·scale of the top, off first.
                                        let chosen: Int8 =
                                            top <= near
                                            ? -1
                                            : v0 >= top - near
                                                ? 0
                                                : v1 >= top - near
                                                    ? 1
                                                    : v2 >= top - near ? 2 : 3
                                        pat[w] = chosen
                                        let k = exact[w]
                                        let held = k < 0 ? 0 : k == 0 ? v0 : k == 1 ? v1 : k == 2 ? v2 : v3
                                        if held < top - far { wrong = true }
                                    }
                                }
                            }
                        }
                    }
                }
                if wrong { mismatches += 1 }
                if img + start > 0 && pattern != previous {
                    changes += 1
                    if (0..<windows).contains(where: { live[$0] && pattern[$0] != previous[$0] }) { liveChanges += 1 }
                }
                swap(&pattern, &previous)
            }
            start += b
        }
        return SampledSegment(
            segment: segment, samples: samples, sampledPieces: samples > 0 ? changes + 1 : 0,
            exactPieces: pieces.pieces, sampledPiecesReachingLogits: samples > 0 ? liveChanges + 1 : 0,
            exactPiecesReachingLogits: pieces.piecesReachingLogits, selectionMismatches: mismatches)
    }

    /// max |a| over one image's part of a CBHW layer (C, b, plane).
    static func layerScale(_ a: [Double], image: Int, count b: Int, plane: Int) -> Double {
        var m = 0.0
        a.withUnsafeBufferPointer { p in
            for c in 0..<(a.count / (b * plane)) {
                let row = p.baseAddress! + (c * b + image) * plane
                for q in 0..<plane { m = max(m, abs(row[q])) }
            }
        }
        return m
    }

    /// The section's checks (see ``Check``), in the results table's order.
    public static func checks(_ r: RegionsAlongLinesReport) -> [Check] {
        [
            Check(
                id: "regions.midpoint-affine",
                description:
                    "regions along lines: max |f(m) − (f(a)+f(b))/2| / max|f| over \(r.midpointPiecesChecked) pieces (forward-pass logits)",
                value: r.midpointMaxRelativeError, relation: .lessThan, limit: midpointTolerance, kind: .independent),
            Check(
                id: "regions.sampling-not-above-exact",
                description:
                    "regions along lines: pieces found by dense sampling above the exact count, summed over \(r.sampled.count) segments",
                value: Double(r.sampled.reduce(0) { $0 + max(0, $1.sampledPieces - $1.exactPieces) }),
                relation: .equalTo, limit: 0, kind: .independent),
            Check(
                id: "regions.sampling-not-above-exact-reaching-logits",
                description:
                    "regions along lines: changes at windows that reach the logits found by dense sampling above the exact count of such pieces, summed over \(r.sampled.count) segments",
                value: Double(
                    r.sampled.reduce(0) {
                        $0 + max(0, ($1.sampledPiecesReachingLogits ?? 0) - ($1.exactPiecesReachingLogits ?? 0))
                    }), relation: .equalTo, limit: 0, kind: .independent),
            Check(
                id: "regions.sampled-selection",
                description:
                    "regions along lines: samples where the exact piece's pool selection is not the forward pass's maximum",
                value: Double(r.sampled.reduce(0) { $0 + $1.selectionMismatches }), relation: .equalTo, limit: 0,
                kind: .independent),
            Check(
                id: "regions.conv1-sign-count",
                description:
                    "regions along lines: Σ |conv1 sign changes from roots − counted on a \(r.options.signGridPoints)-point grid|",
                value: Double(r.conv1SignCountMismatches), relation: .equalTo, limit: 0, kind: .independent),
        ]
    }
}
