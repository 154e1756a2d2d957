import Foundation
import NetIO

/// One segment between two test images through a ``FoldedNetwork`` and its exact pieces.
public struct NetworkSegmentRegions: Codable, Sendable, Equatable {
    /// Test-set indices of x₀ and x₁, and their labels.
    public var first: Int
    public var second: Int
    public var firstLabel: Int
    public var secondLabel: Int
    public var sameClass: Bool
    /// ‖x₁ − x₀‖₂ in normalised input units.
    public var length: Double
    /// The part [t₀, t₁] of [0, 1] walked (``NetworkRegionsOptions/span``).
    public var range: [Double]
    /// Exact pieces of the activation pattern on the range (``NetworkSegmentWalk``).
    public var pieces: Int
    /// Pieces of the function: breakpoints with an event that can reach the logits + 1.
    public var piecesReachingLogits: Int
    /// pieces / (length · (t₁ − t₀)): per unit of input distance walked.
    public var piecesPerUnitLength: Double
    /// Selection changes per site (``NetworkRegionsReport/sites`` order); several may share a breakpoint.
    public var eventsPerSite: [Int]
    /// The shortest piece's length in t.
    public var shortestPiece: Double
    /// Pieces whose midpoint identity was checked, and the largest
    /// |f(m) − (f(a) + f(b))/2| / max|f| among them (host forward pass).
    public var midpointPiecesChecked: Int
    public var midpointMaxRelativeError: Double
    /// The largest |logits carried by the walk − host forward pass's| at the
    /// checked pieces' ends, relative to max|f|.
    public var knotLogitsMaxRelativeDifference: Double
    /// CPU seconds of the exact walk.
    public var seconds: Double
}

/// Piece counts over one group of segments.
public struct NetworkPieceStatistics: Codable, Sendable, Equatable {
    public var segments: Int
    public var piecesMean: Double
    public var piecesMedian: Double
    public var piecesMin: Int
    public var piecesMax: Int
    public var piecesReachingLogitsMean: Double
    public var piecesPerUnitLengthMean: Double
    public var lengthMean: Double

    init?(_ s: [NetworkSegmentRegions]) {
        guard !s.isEmpty else { return nil }
        let p = s.map(\.pieces).sorted()
        let n = p.count
        segments = n
        piecesMean = Double(p.reduce(0, +)) / Double(n)
        piecesMedian = n % 2 == 1 ? Double(p[n / 2]) : Double(p[n / 2 - 1] + p[n / 2]) / 2
        piecesMin = p[0]
        piecesMax = p[n - 1]
        piecesReachingLogitsMean = Double(s.reduce(0) { $0 + $1.piecesReachingLogits }) / Double(n)
        piecesPerUnitLengthMean = s.reduce(0) { $0 + $1.piecesPerUnitLength } / Double(n)
        lengthMean = s.reduce(0) { $0 + $1.length } / Double(n)
    }
}

/// A densely sampled segment: the activation patterns of the host forward
/// pass at t = (s + ½)/S against the exact breakpoints.
public struct NetworkSampledSegment: Codable, Sendable, Equatable {
    /// Index into ``NetworkRegionsReport/segments``.
    public var segment: Int
    public var samples: Int
    /// 1 + the consecutive samples whose patterns differ (a ReLU unit on
    /// when z > 1e-12·max|z| of its site, a window's first candidate within
    /// 1e-12·max of the largest, off first). Never more than the exact count.
    public var sampledPieces: Int
    public var exactPieces: Int
    /// The same over the units that can reach the logits.
    public var sampledPiecesReachingLogits: Int
    public var exactPiecesReachingLogits: Int
    /// Consecutive samples whose patterns differ with no exact breakpoint
    /// between them (must be 0), and the same for units that reach the
    /// logits against breakpoints that do.
    public var changesWithoutBreakpoint: Int
    public var changesReachingLogitsWithoutBreakpoint: Int
}

/// One walked segment as the figures draw it: the cut points of its range
/// (the range's start, every breakpoint, its end) and the logits there, as
/// the exact walk carries them. Between two cut points the logits are affine
/// in t, so these polylines are the logits on the range.
public struct NetworkRegionTrace: Codable, Sendable, Equatable {
    /// Index into ``NetworkRegionsReport/segments``.
    public var segment: Int
    /// The segment's pieces; the trace holds the first min(pieces, ``NetworkRegionsAlongLines/traceLimit``).
    public var pieces: Int
    /// Cut points, increasing: the range's start, the breakpoints, then the
    /// range's end (or the last breakpoint kept when the trace is cut short).
    public var t: [Double]
    /// The logits at each cut point (classes values each).
    public var logits: [[Double]]
    /// Per breakpoint (t's interior points): whether a unit whose selection changes there can reach the logits.
    public var breakpointReachesLogits: [Bool]
    /// Per breakpoint: the first site (``NetworkRegionsReport/sites`` index) whose selection changes there, −1 none.
    public var breakpointSites: [Int]

    /// The first `limit` pieces of `p` on segment `segment`.
    init(segment: Int, pieces p: NetworkSegmentPieces, classes: Int, limit: Int) {
        let kept = min(p.pieces, limit)
        let cuts = [p.range.lowerBound] + p.breakpoints + [p.range.upperBound]
        self.segment = segment
        pieces = p.pieces
        t = Array(cuts[0...kept])
        logits = (0...kept).map { Array(p.knotLogits[($0 * classes)..<(($0 + 1) * classes)]) }
        breakpointReachesLogits = Array(p.breakpointReachesLogits.prefix(kept - 1))
        breakpointSites = Array(p.breakpointSites.prefix(kept - 1))
    }
}

/// Settings of the regions along lines of a network description.
public struct NetworkRegionsOptions: Codable, Sendable, Equatable {
    /// Segments between same-class test images, and as many between different-class ones.
    public var pairsPerGroup: Int
    /// SplitMix64 seed (stream 9) of the pairs, as TinyConvNet's section draws them.
    public var seed: UInt64
    /// Pieces per segment whose midpoints are checked.
    public var midpointPiecesPerSegment: Int
    /// Segments of each group (the first ones) densely sampled, and the samples on each.
    public var sampledSegmentsPerGroup: Int
    public var samplesPerSegment: Int
    /// The fraction of each segment walked, centred: t ∈ [½ − span/2, ½ + span/2]
    /// (1: the whole segment). A deep network has tens of thousands of
    /// pieces on a segment between two test images, each costing a forward
    /// pass of the layers after it, so the analysis of a ResNet walks a part.
    public var span: Double
    public var threads: Int

    public init(
        pairsPerGroup: Int = 2, seed: UInt64 = 0, midpointPiecesPerSegment: Int = 20, sampledSegmentsPerGroup: Int = 1,
        samplesPerSegment: Int = 256, span: Double = 1, threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) {
        self.span = span
        self.pairsPerGroup = pairsPerGroup
        self.seed = seed
        self.midpointPiecesPerSegment = midpointPiecesPerSegment
        self.sampledSegmentsPerGroup = sampledSegmentsPerGroup
        self.samplesPerSegment = samplesPerSegment
        self.threads = threads
    }
}

/// Regions along lines of any network description (phase 9): per segment
/// the exact pieces of the activation pattern and of the function, and
/// three checks against the plain host forward pass.
public struct NetworkRegionsReport: Codable, Sendable, Equatable {
    public var options: NetworkRegionsOptions
    /// The sites (ReLUs, pools) in forward order: name, kind, units per image.
    public var sites: [NetworkRegionSite]
    /// Same-class segments first.
    public var segments: [NetworkSegmentRegions]
    public var sameClass: NetworkPieceStatistics?
    public var differentClasses: NetworkPieceStatistics?
    public var midpointPiecesChecked: Int
    public var midpointMaxRelativeError: Double
    public var knotLogitsMaxRelativeDifference: Double
    public var sampled: [NetworkSampledSegment]
    /// The first different-class segment's cut points and logits (the first
    /// segment's when there is none), for the figures; nil without segments.
    public var trace: NetworkRegionTrace? = nil
    /// CPU seconds of the exact walks, of the midpoint checks and of the sampling (summed over threads).
    public var countingSeconds: Double
    public var midpointSeconds: Double
    public var samplingSeconds: Double
    /// Wall time of the section.
    public var seconds: Double
}

public struct NetworkRegionSite: Codable, Sendable, Equatable {
    public var name: String
    public var kind: NetworkSites.Kind
    public var units: Int
    /// Units whose selection can reach the logits.
    public var liveUnits: Int
}

public enum NetworkRegionsAlongLines {
    /// Pieces of the traced segment kept in ``NetworkRegionsReport/trace``
    /// (each costs its cut point and the logits there in analysis.json).
    public static let traceLimit = 4096

    /// The section on `network` with pairs of `testSet` images.
    /// - Throws: ``NetworkAnalysisError/invalidInput(_:)`` for negative counts.
    public static func run(
        network: FoldedNetwork, testSet: Dataset, options: NetworkRegionsOptions
    ) throws -> NetworkRegionsReport {
        guard options.pairsPerGroup >= 0, options.samplesPerSegment >= 0, options.midpointPiecesPerSegment >= 0,
            options.sampledSegmentsPerGroup >= 0, options.threads > 0, options.span > 0, options.span <= 1
        else {
            throw NetworkAnalysisError.invalidInput(
                "regions along lines: pairs, samples and midpoint pieces must be ≥ 0, threads positive and the span "
                    + "in (0, 1] (got span \(options.span))")
        }
        let (same, different) = RegionsAlongLines.pairs(
            labels: testSet.labels, perGroup: options.pairsPerGroup, seed: options.seed)
        let ends = (same + different).map { i, j in
            SegmentEnds(
                first: i, second: j, firstLabel: Int(testSet.labels[i]), secondLabel: Int(testSet.labels[j]),
                x0: testSet.normalizedImages([i]).map(Double.init), x1: testSet.normalizedImages([j]).map(Double.init))
        }
        return run(network: network, segments: ends, options: options)
    }

    /// The section on any segments (same-class ones are those with equal labels).
    public static func run(
        network: FoldedNetwork, segments ends: [SegmentEnds], options: NetworkRegionsOptions
    ) -> NetworkRegionsReport {
        let started = Clocks.wall()
        let walk = NetworkSegmentWalk(network)
        let range = max(0, 0.5 - options.span / 2)...min(1, 0.5 + options.span / 2)
        let forward = HostNetworkForward.folded(network)
        let isSame = ends.map { $0.firstLabel == $0.secondLabel }
        var sampledSet = Set<Int>()
        for group in [true, false] {
            sampledSet.formUnion(isSame.indices.filter { isSame[$0] == group }.prefix(options.sampledSegmentsPerGroup))
        }
        let traced = isSame.firstIndex(of: false) ?? (ends.isEmpty ? nil : 0)
        struct Result {
            var summary: NetworkSegmentRegions
            var pieces: NetworkSegmentPieces?
            var midpointSeconds: Double
        }
        let results: [Result] = parallelMap(ends.count, threads: options.threads) { s in
            let e = ends[s]
            let t0 = Clocks.threadCPU()
            let p = walk.pieces(from: e.x0, to: e.x1, over: range)
            let t1 = Clocks.threadCPU()
            var rng = SeededRandom(seed: options.seed ^ UInt64(s), stream: 10)
            let chosen = RegionsAlongLines.sample(p.pieces, count: options.midpointPiecesPerSegment, using: &rng)
            let mid = midpointCheck(forward: forward, x0: e.x0, x1: e.x1, pieces: p, chosen: chosen)
            let t2 = Clocks.threadCPU()
            let cuts = [range.lowerBound] + p.breakpoints + [range.upperBound]
            let width = range.upperBound - range.lowerBound
            let summary = NetworkSegmentRegions(
                first: e.first, second: e.second, firstLabel: e.firstLabel, secondLabel: e.secondLabel,
                sameClass: isSame[s], length: p.length, range: [range.lowerBound, range.upperBound], pieces: p.pieces,
                piecesReachingLogits: p.piecesReachingLogits,
                piecesPerUnitLength: p.length > 0 ? Double(p.pieces) / (p.length * width) : .infinity,
                eventsPerSite: p.eventsPerSite,
                shortestPiece: zip(cuts.dropFirst(), cuts).map { $0 - $1 }.min() ?? width,
                midpointPiecesChecked: chosen.count, midpointMaxRelativeError: mid.midpoint,
                knotLogitsMaxRelativeDifference: mid.knots, seconds: t1 - t0)
            return Result(
                summary: summary, pieces: sampledSet.contains(s) || s == traced ? p : nil, midpointSeconds: t2 - t1)
        }
        let sampledIndices = results.indices.filter { sampledSet.contains($0) }
        let sampling: [(NetworkSampledSegment, Double)] = parallelMap(sampledIndices.count, threads: options.threads) {
            let s = sampledIndices[$0]
            let t0 = Clocks.threadCPU()
            let r = sampleSegment(
                walk: walk, x0: ends[s].x0, x1: ends[s].x1, pieces: results[s].pieces!,
                samples: options.samplesPerSegment, segment: s)
            return (r, Clocks.threadCPU() - t0)
        }
        let summaries = results.map(\.summary)
        return NetworkRegionsReport(
            options: options,
            sites: walk.sites.sites.map {
                NetworkRegionSite(name: $0.name, kind: $0.kind, units: $0.units, liveUnits: $0.live.filter { $0 }.count)
            },
            segments: summaries, sameClass: NetworkPieceStatistics(summaries.filter(\.sameClass)),
            differentClasses: NetworkPieceStatistics(summaries.filter { !$0.sameClass }),
            midpointPiecesChecked: summaries.reduce(0) { $0 + $1.midpointPiecesChecked },
            midpointMaxRelativeError: summaries.reduce(0) { worstOf($0, $1.midpointMaxRelativeError) },
            knotLogitsMaxRelativeDifference: summaries.reduce(0) { worstOf($0, $1.knotLogitsMaxRelativeDifference) },
            sampled: sampling.map(\.0),
            trace: traced.map {
                NetworkRegionTrace(
                    segment: $0, pieces: results[$0].pieces!, classes: network.classes, limit: traceLimit)
            }, countingSeconds: summaries.reduce(0) { $0 + $1.seconds },
            midpointSeconds: results.reduce(0) { $0 + $1.midpointSeconds },
            samplingSeconds: sampling.reduce(0) { $0 + $1.1 }, seconds: Clocks.seconds(since: started))
    }

    /// The midpoint identity on the `chosen` pieces with the host forward
    /// pass (``RegionsAlongLines/midpointCheck(network:x0:x1:breakpoints:pieces:)``'s
    /// rule), and the walk's own logits at those pieces' ends against the
    /// forward pass's; both relative to the largest |logit| evaluated.
    public static func midpointCheck(
        forward: HostNetworkForward, x0: [Double], x1: [Double], pieces p: NetworkSegmentPieces, chosen: [Int]
    ) -> (midpoint: Double, knots: Double) {
        guard !chosen.isEmpty else { return (0, 0) }
        let cuts = [p.range.lowerBound] + p.breakpoints + [p.range.upperBound]
        let k = forward.network.classes
        let ts = chosen.flatMap { [cuts[$0], cuts[$0 + 1], (cuts[$0] + cuts[$0 + 1]) / 2] }
        let logits = logitsAlong(forward: forward, x0: x0, x1: x1, at: ts)
        let scale = max(logits.reduce(0) { max($0, abs($1)) }, .leastNormalMagnitude)
        var midpoint = 0.0
        var knots = 0.0
        for (m, i) in chosen.enumerated() {
            for c in 0..<k {
                let a = logits[(3 * m) * k + c]
                let b = logits[(3 * m + 1) * k + c]
                midpoint = worstOf(midpoint, abs(logits[(3 * m + 2) * k + c] - (a + b) / 2))
                knots = worstOf(knots, abs(p.knotLogits[i * k + c] - a))
                knots = worstOf(knots, abs(p.knotLogits[(i + 1) * k + c] - b))
            }
        }
        return (midpoint / scale, knots / scale)
    }

    /// The images x(t) = x₀ + t·(x₁ − x₀) for each t, (ts.count, input size).
    public static func interpolate(_ x0: [Double], _ x1: [Double], at ts: [Double]) -> [Double] {
        let d = zip(x1, x0).map { $0 - $1 }
        var out = [Double](repeating: 0, count: ts.count * x0.count)
        for (k, t) in ts.enumerated() { for p in 0..<x0.count { out[k * x0.count + p] = x0[p] + t * d[p] } }
        return out
    }

    /// The host forward pass's logits at x(t) for each t, (ts.count, classes).
    public static func logitsAlong(forward: HostNetworkForward, x0: [Double], x1: [Double], at ts: [Double])
        -> [Double]
    {
        var out: [Double] = []
        var start = 0
        while start < ts.count {
            let chunk = Array(ts[start..<min(start + chunk, ts.count)])
            out += forward.logits(interpolate(x0, x1, at: chunk), batch: chunk.count)
            start += chunk.count
        }
        return out
    }

    static let chunk = 32

    /// The selection of every unit of every site (``NetworkSites``) at each
    /// image of `images` (batch images), from the host forward pass's
    /// layers (``HostNetworkForward/layerOutput(_:_:batch:)``): −1 off,
    /// 1 on for a ReLU unit (on when z > 1e-12·max|z| over the image's
    /// site); −1 off or the slot 0…3 passed on for a pool window (the first
    /// within 1e-12·max|candidates| of the largest). Returns the patterns
    /// (batch × total units) and the logits.
    public static func patterns(walk: NetworkSegmentWalk, images: [Double], batch: Int) -> (
        patterns: [Int8], logits: [Double]
    ) {
        let total = walk.sites.totalUnits
        var offsets = [Int]()
        var o = 0
        for s in walk.sites.sites {
            offsets.append(o)
            o += s.units
        }
        var pattern = [Int8](repeating: -1, count: batch * total)
        func run(_ ops: [NetworkSites.Op], _ x: [Double], _ size: Int) -> ([Double], Int) {
            var (x, size) = (x, size)
            for op in ops { (x, size) = run(op, x, size) }
            return (x, size)
        }
        func relu(_ site: Int, _ x: inout [Double], _ size: Int) {
            for b in 0..<batch {
                let row = b * size
                var scale = 0.0
                for i in 0..<size { scale = max(scale, abs(x[row + i])) }
                let near = 1e-12 * scale
                for i in 0..<size {
                    let on = x[row + i] > near
                    pattern[b * total + offsets[site] + i] = on ? 1 : -1
                    if !(x[row + i] > 0) { x[row + i] = 0 }
                }
            }
        }
        func run(_ op: NetworkSites.Op, _ x: [Double], _ size: Int) -> ([Double], Int) {
            switch op {
            case .affine(let l):
                return (walk.forward.layerOutput(l, x, batch: batch), walk.network.layers[l].outputSize)
            case .globalAveragePool(let c, let plane):
                return (walk.forward.apply([.globalAveragePool(channels: c, plane: plane)], x, batch: batch), c)
            case .relu(let site):
                var y = x
                relu(site, &y, size)
                return (y, size)
            case .pool(let site, let fused, let c, let h, let w):
                let (ph, pw) = (h / 2, w / 2)
                let windows = c * ph * pw
                var out = [Double](repeating: 0, count: batch * windows)
                for b in 0..<batch {
                    let z = b * size
                    var scale = 0.0
                    for i in 0..<size { scale = max(scale, abs(x[z + i])) }
                    let near = 1e-12 * scale
                    for v in 0..<windows {
                        let (ch, i, j) = (v / (ph * pw), (v / pw) % ph, v % pw)
                        let cand = (0..<4).map { x[z + (ch * h + 2 * i + $0 / 2) * w + 2 * j + $0 % 2] }
                        let top = max(cand.max()!, fused ? 0 : -.infinity)
                        var code: Int8 = -1
                        if !(fused && top <= near) { code = Int8(cand.firstIndex { $0 >= top - near }!) }
                        pattern[b * total + offsets[site] + v] = code
                        out[b * windows + v] = top
                    }
                }
                return (out, windows)
            case .residual(let body, let shortcut, let reluSite):
                var (y, ySize) = run(body, x, size)
                let skip = shortcut.map { run($0, x, size).0 } ?? x
                for i in y.indices { y[i] += skip[i] }
                if let reluSite { relu(reluSite, &y, ySize) }
                return (y, ySize)
            }
        }
        let logits = run(walk.sites.ops, images, walk.network.inputSize).0
        return (pattern, logits)
    }

    /// Dense sampling of one segment against its exact pieces (``NetworkSampledSegment``).
    public static func sampleSegment(
        walk: NetworkSegmentWalk, x0: [Double], x1: [Double], pieces p: NetworkSegmentPieces, samples: Int,
        segment: Int
    ) -> NetworkSampledSegment {
        let total = walk.sites.totalUnits
        let live = walk.sites.sites.flatMap(\.live)
        var previous: [Int8] = []
        var previousT = 0.0
        var changes = 0
        var liveChanges = 0
        var unexplained = 0
        var liveUnexplained = 0
        var next = 0  // first breakpoint after the previous sample
        var start = 0
        while start < samples {
            let (a, b) = (p.range.lowerBound, p.range.upperBound)
            let ts = (start..<min(start + chunk, samples)).map { a + (b - a) * (Double($0) + 0.5) / Double(samples) }
            let pattern = patterns(walk: walk, images: interpolate(x0, x1, at: ts), batch: ts.count).patterns
            for (i, t) in ts.enumerated() {
                let current = Array(pattern[(i * total)..<((i + 1) * total)])
                if !previous.isEmpty {
                    var changed = false
                    var liveChanged = false
                    for u in 0..<total where current[u] != previous[u] {
                        changed = true
                        if live[u] {
                            liveChanged = true
                            break
                        }
                    }
                    var between = false
                    var liveBetween = false
                    var j = next
                    while j < p.breakpoints.count && p.breakpoints[j] < t {
                        if p.breakpoints[j] > previousT {
                            between = true
                            if p.breakpointReachesLogits[j] { liveBetween = true }
                        }
                        j += 1
                    }
                    next = j
                    if changed {
                        changes += 1
                        if !between { unexplained += 1 }
                    }
                    if liveChanged {
                        liveChanges += 1
                        if !liveBetween { liveUnexplained += 1 }
                    }
                }
                previous = current
                previousT = t
            }
            start += ts.count
        }
        return NetworkSampledSegment(
            segment: segment, samples: samples, sampledPieces: samples > 0 ? changes + 1 : 0, exactPieces: p.pieces,
            sampledPiecesReachingLogits: samples > 0 ? liveChanges + 1 : 0,
            exactPiecesReachingLogits: p.piecesReachingLogits, changesWithoutBreakpoint: unexplained,
            changesReachingLogitsWithoutBreakpoint: liveUnexplained)
    }

    /// The section's checks, with the ids of TinyConvNet's.
    public static func checks(_ r: NetworkRegionsReport) -> [Check] {
        [
            Check(
                id: "regions.midpoint-affine",
                description:
                    "regions along lines: max |f(m) − (f(a)+f(b))/2| / max|f| over \(r.midpointPiecesChecked) pieces (host forward-pass logits)",
                value: r.midpointMaxRelativeError, relation: .lessThan, limit: RegionsAlongLines.midpointTolerance,
                kind: .independent),
            Check(
                id: "regions.knot-logits",
                description:
                    "regions along lines: the walk's logits at the checked pieces' ends vs the host forward pass, max|Δ| / max|f|",
                value: r.knotLogitsMaxRelativeDifference, relation: .lessThan,
                limit: RegionsAlongLines.midpointTolerance, kind: .independent),
            Check(
                id: "regions.sampling-not-above-exact",
                description:
                    "regions along lines: pieces found by dense sampling above the exact count, summed over \(r.sampled.count) segments",
                value: Double(r.sampled.reduce(0) { $0 + max(0, $1.sampledPieces - $1.exactPieces) }),
                relation: .equalTo, limit: 0, kind: .independent),
            Check(
                id: "regions.sampling-not-above-exact-reaching-logits",
                description:
                    "regions along lines: changes at units that reach the logits found by dense sampling above the exact count of such pieces, summed over \(r.sampled.count) segments",
                value: Double(
                    r.sampled.reduce(0) { $0 + max(0, $1.sampledPiecesReachingLogits - $1.exactPiecesReachingLogits) }),
                relation: .equalTo, limit: 0, kind: .independent),
            Check(
                id: "regions.sampled-changes-bracketed",
                description:
                    "regions along lines: consecutive samples whose patterns differ with no exact breakpoint between them (all units, and those reaching the logits)",
                value: Double(
                    r.sampled.reduce(0) { $0 + $1.changesWithoutBreakpoint + $1.changesReachingLogitsWithoutBreakpoint }
                ),
                relation: .equalTo, limit: 0, kind: .independent),
        ]
    }
}

private func worstOf(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : max(a, b) }
