import Analysis
import Models
import NetIO
import TestSupport
import XCTest

/// Regions along lines of any network description (``NetworkSegmentWalk``)
/// against independent references: NaiveNetwork's float64 loops (its
/// activation patterns bisected, its logits' slopes), TinyConvNet's own
/// event-driven walk, and dense sampling of the host forward pass.
final class NetworkRegionsAlongLinesTests: XCTestCase, SmallResNetFixture {
    struct Fixture {
        var network: FoldedNetwork
        var naive: NaiveNetwork
        var parameters: [String: [Double]]
        var x0: [Double]
        var x1: [Double]
    }

    /// ResNet-8 on 12×12 images, the segment between two synthetic test images.
    func fixture() throws -> Fixture {
        let (description, naive, floats) = try resnet8()
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: floats)
        let data = images(2)
        return Fixture(
            network: network, naive: naive, parameters: floats.mapValues { $0.map(Double.init) },
            x0: data.normalizedImages([0]).map(Double.init), x1: data.normalizedImages([1]).map(Double.init))
    }

    /// NaiveNetwork's activation pattern at x(t) for each t: the sign (> 0)
    /// of every ReLU row's input, in summary order.
    func naivePatterns(_ f: Fixture, _ ts: [Double]) -> [[Bool]] {
        let reluRows = f.naive.summary.layers.indices.filter { f.naive.summary.layers[$0].operation == "relu" }
        var out: [[Bool]] = []
        var start = 0
        while start < ts.count {
            let chunk = Array(ts[start..<min(start + 64, ts.count)])
            let rows = f.naive.evalRows(
                images: NetworkRegionsAlongLines.interpolate(f.x0, f.x1, at: chunk), batch: chunk.count,
                parameters: f.parameters)
            for b in 0..<chunk.count {
                var pattern: [Bool] = []
                for r in reluRows {
                    let n = rows.inputs[r].count / chunk.count
                    pattern += rows.inputs[r][(b * n)..<((b + 1) * n)].map { $0 > 0 }
                }
                out.append(pattern)
            }
            start += chunk.count
        }
        return out
    }

    /// NaiveNetwork's logits at x(t) for each t, (ts.count, classes).
    func naiveLogits(_ f: Fixture, _ ts: [Double]) -> [Double] {
        var out: [Double] = []
        var start = 0
        while start < ts.count {
            let chunk = Array(ts[start..<min(start + 64, ts.count)])
            out += f.naive.evalRows(
                images: NetworkRegionsAlongLines.interpolate(f.x0, f.x1, at: chunk), batch: chunk.count,
                parameters: f.parameters
            ).outputs.last!
            start += chunk.count
        }
        return out
    }

    /// The part of the segment the NaiveNetwork tests walk (its loops take
    /// ~10 ms an image; the whole segment has ~1,000 pieces).
    let part = 0.45...0.55

    /// Bisection of NaiveNetwork's patterns on a grid of 1,024 cells of `part`: a cell
    /// whose end patterns differ is halved, level by level, to 1e-10, giving
    /// one change point. Rules: a cell without an exact breakpoint has equal
    /// end patterns (a breakpoint the walk missed shows there); a cell with
    /// exactly one has different ends (a spurious breakpoint does not), and
    /// the naive change point lies within 1e-9 of it.
    func testBreakpointsAreNaiveBisectionsChangePoints() throws {
        let f = try fixture()
        let exact = NetworkSegmentWalk(f.network).pieces(from: f.x0, to: f.x1, over: part)
        let cells = 1024
        let (a, w) = (part.lowerBound, part.upperBound - part.lowerBound)
        let grid = naivePatterns(f, (0...cells).map { a + w * Double($0) / Double(cells) })
        var perCell = [[Double]](repeating: [], count: cells)
        for b in exact.breakpoints { perCell[min(cells - 1, Int((b - a) / w * Double(cells)))].append(b) }
        var brackets: [(lo: Double, hi: Double, low: [Bool], cell: Int)] = []
        var unexplained = 0
        for c in 0..<cells where grid[c] != grid[c + 1] {
            if perCell[c].isEmpty { unexplained += 1 }
            brackets.append((a + w * Double(c) / Double(cells), a + w * Double(c + 1) / Double(cells), grid[c], c))
        }
        XCTAssertEqual(unexplained, 0, "cells whose naive pattern changes with no exact breakpoint")
        let single = perCell.indices.filter { perCell[$0].count == 1 }
        let changed = Set(brackets.map(\.cell))
        XCTAssertEqual(single.filter { !changed.contains($0) }, [], "cells with one exact breakpoint and no change")
        while let width = brackets.first.map({ $0.hi - $0.lo }), width > 1e-10 {
            let mids = brackets.map { ($0.lo + $0.hi) / 2 }
            let patterns = naivePatterns(f, mids)
            for i in brackets.indices {
                if patterns[i] == brackets[i].low { brackets[i].lo = mids[i] } else { brackets[i].hi = mids[i] }
            }
        }
        var worst = 0.0
        for b in brackets where perCell[b.cell].count == 1 {
            worst = max(worst, abs((b.lo + b.hi) / 2 - perCell[b.cell][0]))
        }
        XCTAssertLessThan(worst, 1e-9)
        XCTAssertGreaterThan(exact.breakpoints.count, 20)
        XCTAssertGreaterThan(single.count, exact.breakpoints.count / 2, "the grid separates most breakpoints")
    }

    /// Slope of NaiveNetwork's logits on each piece of length ≥ 1e-4 from
    /// its two halves (points at ¼, ½, ¾), and the logits' value at each
    /// breakpoint extrapolated from the pieces either side. Returns the
    /// largest slope difference relative to the largest slope, and the
    /// largest jump relative to the largest |logit|. Finite differences over
    /// h/4 ≥ 2.5e-5 lose ~1e-16·|f|/h of the slope (2e-10 relative here,
    /// 2e-9 at 1e-5), below the 1e-9 limit.
    func slopeAndJump(_ f: Fixture, cuts: [Double]) -> (slope: Double, jump: Double, pieces: Int) {
        let k = f.network.classes
        let long = cuts.indices.dropLast().filter { cuts[$0 + 1] - cuts[$0] >= 1e-4 }
        let ts = long.flatMap { i -> [Double] in
            let (a, b) = (cuts[i], cuts[i + 1])
            return [a + (b - a) / 4, (a + b) / 2, a + 3 * (b - a) / 4]
        }
        let logits = naiveLogits(f, ts)
        var slopes = [Int: [Double]]()
        var slopeError = 0.0
        var slopeScale = 0.0
        for (m, i) in long.enumerated() {
            let q = (cuts[i + 1] - cuts[i]) / 4
            var s = [Double](repeating: 0, count: k)
            for c in 0..<k {
                let (f1, f2, f3) = (logits[3 * m * k + c], logits[(3 * m + 1) * k + c], logits[(3 * m + 2) * k + c])
                let (s1, s2) = ((f2 - f1) / q, (f3 - f2) / q)
                slopeError = max(slopeError, abs(s1 - s2))
                slopeScale = max(slopeScale, abs(s1), abs(s2))
                s[c] = (s1 + s2) / 2
            }
            slopes[i] = s
        }
        let valueScale = logits.reduce(0) { max($0, abs($1)) }
        var jump = 0.0
        for (m, i) in long.enumerated() {
            guard let right = long.firstIndex(of: i + 1) else { continue }
            let t = cuts[i + 1]
            let (ml, mr) = ((cuts[i] + cuts[i + 1]) / 2, (cuts[i + 1] + cuts[i + 2]) / 2)
            for c in 0..<k {
                let fl = logits[(3 * m + 1) * k + c] + slopes[i]![c] * (t - ml)
                let fr = logits[(3 * right + 1) * k + c] + slopes[i + 1]![c] * (t - mr)
                jump = max(jump, abs(fl - fr))
            }
        }
        return (slopeError / slopeScale, jump / valueScale, long.count)
    }

    /// The logits are affine on every piece and continuous at every
    /// breakpoint (NaiveNetwork, float64, ≤ 1e-9 relative); with every
    /// third breakpoint removed the merged pieces' slopes differ, and with
    /// the breakpoints moved a third of the way to their neighbours the
    /// extrapolations miss, so both checks can fail.
    func testLogitsAffineOnEachPieceAndContinuous() throws {
        let f = try fixture()
        let exact = NetworkSegmentWalk(f.network).pieces(from: f.x0, to: f.x1, over: part)
        let cuts = [part.lowerBound] + exact.breakpoints + [part.upperBound]
        let good = slopeAndJump(f, cuts: cuts)
        XCTAssertGreaterThan(good.pieces, (cuts.count - 1) * 3 / 4, "most pieces are checked")
        XCTAssertLessThan(good.slope, 1e-9)
        XCTAssertLessThan(good.jump, 1e-9)
        let merged = cuts.enumerated().filter { $0.offset % 3 != 1 || $0.offset == cuts.count - 1 }.map(\.element)
        XCTAssertGreaterThan(slopeAndJump(f, cuts: merged).slope, 1e-6)
        var moved = cuts
        for i in 1..<(cuts.count - 1) { moved[i] = cuts[i] + (cuts[i + 1] - cuts[i]) / 3 }
        let shifted = slopeAndJump(f, cuts: moved)
        XCTAssertGreaterThan(max(shifted.slope, shifted.jump), 1e-6)
    }

    /// Dense sampling of the host forward pass: never more pieces than the
    /// exact count, every change bracketed by a breakpoint, most pieces
    /// seen at 2,000 samples on `part`; with every other breakpoint dropped the
    /// sampled changes go unbracketed and the checks fail.
    func testDenseSamplingAgainstExactCount() throws {
        let f = try fixture()
        let walk = NetworkSegmentWalk(f.network)
        let exact = walk.pieces(from: f.x0, to: f.x1, over: part)
        let s = NetworkRegionsAlongLines.sampleSegment(
            walk: walk, x0: f.x0, x1: f.x1, pieces: exact, samples: 2000, segment: 0)
        XCTAssertLessThanOrEqual(s.sampledPieces, s.exactPieces)
        XCTAssertLessThanOrEqual(s.sampledPiecesReachingLogits, s.exactPiecesReachingLogits)
        XCTAssertEqual(s.changesWithoutBreakpoint, 0)
        XCTAssertEqual(s.changesReachingLogitsWithoutBreakpoint, 0)
        XCTAssertGreaterThan(Double(s.sampledPieces), 0.8 * Double(s.exactPieces))
        var broken = exact
        let keep = exact.breakpoints.indices.filter { $0 % 2 == 0 }
        broken.breakpoints = keep.map { exact.breakpoints[$0] }
        broken.breakpointReachesLogits = keep.map { exact.breakpointReachesLogits[$0] }
        let b = NetworkRegionsAlongLines.sampleSegment(
            walk: walk, x0: f.x0, x1: f.x1, pieces: broken, samples: 2000, segment: 0)
        XCTAssertGreaterThan(b.changesWithoutBreakpoint, 0)
        XCTAssertGreaterThan(b.sampledPieces, b.exactPieces)
    }

    /// The sampling pass's logits are the host forward pass's (the same
    /// operations, ≤ 1e-12) and NaiveNetwork's (≤ 1e-10 absolute: float64
    /// sums in other orders over logits of order 10).
    func testPatternForwardMatchesHostAndNaiveLogits() throws {
        let f = try fixture()
        let walk = NetworkSegmentWalk(f.network)
        let ts = [0, 0.3, 0.7, 1]
        let images = NetworkRegionsAlongLines.interpolate(f.x0, f.x1, at: ts)
        let sampled = NetworkRegionsAlongLines.patterns(walk: walk, images: images, batch: ts.count)
        let host = HostNetworkForward.folded(f.network).logits(images, batch: ts.count)
        XCTAssertLessThan(maxAbsDiff(sampled.logits, host), 1e-12)
        XCTAssertLessThan(maxAbsDiff(sampled.logits, naiveLogits(f, ts)), 1e-10)
        XCTAssertEqual(sampled.patterns.count, ts.count * walk.sites.totalUnits)
        // 7 ReLUs: the stem, and each of 3 blocks' body ReLU and ReLU after the add.
        XCTAssertEqual(walk.sites.sites.count, 7)
        XCTAssertEqual(walk.sites.totalUnits, 16 * 144 * 3 + 32 * 36 * 2 + 64 * 9 * 2)
    }

    /// The report's trace, which the figures draw: its cut points are the
    /// walk's, its logits NaiveNetwork's at them (≤ 1e-9 relative to the
    /// largest), one flag and one site per breakpoint, and each of the first
    /// 24 breakpoints' site is the first at which NaiveNetwork's activation
    /// patterns at the midpoints of the pieces either side differ.
    func testTraceHoldsTheWalkedSegmentAndEachBreakpointsFirstSite() throws {
        let f = try fixture()
        let ends = [SegmentEnds(first: 0, second: 1, firstLabel: 0, secondLabel: 1, x0: f.x0, x1: f.x1)]
        let options = NetworkRegionsOptions(
            pairsPerGroup: 1, sampledSegmentsPerGroup: 0, samplesPerSegment: 0,
            span: part.upperBound - part.lowerBound, threads: 2)
        let report = NetworkRegionsAlongLines.run(network: f.network, segments: ends, options: options)
        let trace = try XCTUnwrap(report.trace)
        let exact = NetworkSegmentWalk(f.network).pieces(from: f.x0, to: f.x1, over: part)
        XCTAssertEqual(trace.segment, 0)
        XCTAssertEqual(trace.pieces, exact.pieces)
        XCTAssertEqual(report.segments[0].pieces, exact.pieces)
        XCTAssertLessThan(maxAbsDiff(trace.t, [part.lowerBound] + exact.breakpoints + [part.upperBound]), 1e-12)
        XCTAssertEqual(trace.breakpointReachesLogits, exact.breakpointReachesLogits)
        XCTAssertEqual(trace.breakpointSites.count, exact.breakpoints.count)
        let naive = naiveLogits(f, trace.t)
        let scale = naive.map(abs).max()!
        XCTAssertLessThan(maxAbsDiff(trace.logits.flatMap { $0 }, naive) / scale, 1e-9)
        // The sites are the 7 ReLUs in summary order, as naivePatterns concatenates them.
        let units = NetworkSegmentWalk(f.network).sites.sites.map(\.units)
        let shown = min(24, exact.breakpoints.count)
        XCTAssertGreaterThan(shown, 10)
        var mids: [Double] = []
        for i in 1...shown {
            let (before, at, after) = (trace.t[i - 1], trace.t[i], trace.t[i + 1])
            mids += [(before + at) / 2, (at + after) / 2]
        }
        let patterns = naivePatterns(f, mids)
        for i in 0..<shown {
            let (left, right) = (patterns[2 * i], patterns[2 * i + 1])
            var start = 0
            var firstSite = -1
            for (k, n) in units.enumerated() {
                if firstSite < 0 && left[start..<(start + n)] != right[start..<(start + n)] { firstSite = k }
                start += n
            }
            XCTAssertEqual(trace.breakpointSites[i], firstSite, "breakpoint \(i) at t = \(trace.t[i + 1])")
        }
    }

    /// Windows of at most 16 knots give the same breakpoints and events as one window.
    func testKnotLimitLeavesThePiecesUnchanged() throws {
        let f = try fixture()
        let walk = NetworkSegmentWalk(f.network)
        let whole = walk.pieces(from: f.x0, to: f.x1)
        let windows = walk.pieces(from: f.x0, to: f.x1, knotLimit: 16)
        XCTAssertEqual(windows.breakpoints.count, whole.breakpoints.count)
        XCTAssertLessThan(maxAbsDiff(windows.breakpoints, whole.breakpoints), 1e-12)
        XCTAssertEqual(windows.eventsPerSite, whole.eventsPerSite)
        XCTAssertEqual(windows.breakpointReachesLogits, whole.breakpointReachesLogits)
        XCTAssertLessThan(maxAbsDiff(windows.knotLogits, whole.knotLogits), 1e-10)
        // A part of the segment: its breakpoints are the whole's inside it.
        let part = walk.pieces(from: f.x0, to: f.x1, over: 0.25...0.5)
        let inside = whole.breakpoints.filter { $0 > 0.25 && $0 < 0.5 }
        XCTAssertEqual(part.breakpoints.count, inside.count)
        XCTAssertLessThan(maxAbsDiff(part.breakpoints, inside), 1e-12)
    }

    /// TinyConvNet as a description (ReLU and max-pool fused into windows of
    /// five candidates) walked layer by layer gives the breakpoints of
    /// ``PiecewiseAffineConvNet``'s event-driven walk, both counts, and the
    /// first pool's dead row and column 12.
    func testTinyConvNetDescriptionAgreesWithTheEventWalk() throws {
        let description = BuiltinModels.tinyConvNet()
        let naive = try NaiveNetwork(description, input: (1, 28, 28), classes: 10)
        let values = naive.sampleParameters(seed: 7, scale: 0.4).mapValues { $0.map(Float.init) }
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 28, width: 28), classes: 10, tensors: values)
        func matrix(_ name: String, _ rows: Int) -> Matrix {
            let v = values[name]!.map(Double.init)
            return Matrix(rows: rows, columns: v.count / rows, values: v)
        }
        let tiny = try PiecewiseAffineConvNet(
            inputSide: 28, conv1: matrix("conv1.weight", 8), conv2: matrix("conv2.weight", 16),
            fcWeight: matrix("fc.weight", 10), fcBias: values["fc.bias"]!.map(Double.init))
        let data = images(2, side: 28, seed: 11)
        let (x0, x1) = (data.normalizedImages([0]).map(Double.init), data.normalizedImages([1]).map(Double.init))
        let events = tiny.pieces(from: x0, to: x1)
        let walk = NetworkSegmentWalk(network)
        let layered = walk.pieces(from: x0, to: x1)
        XCTAssertGreaterThan(events.pieces, 20)
        XCTAssertEqual(layered.pieces, events.pieces)
        XCTAssertEqual(layered.piecesReachingLogits, events.piecesReachingLogits)
        XCTAssertLessThan(maxAbsDiff(layered.breakpoints, events.breakpoints), 1e-9)
        XCTAssertEqual(layered.eventsPerSite, [events.eventsPerLayer.first, events.eventsPerLayer.second])
        XCTAssertEqual(walk.sites.sites.map(\.kind), [.reluMaxPool, .reluMaxPool])
        XCTAssertEqual(walk.sites.sites.map(\.units), [8 * 13 * 13, 16 * 5 * 5])
        XCTAssertEqual(walk.sites.sites.map { $0.live.filter { $0 }.count }, [8 * 12 * 12, 16 * 5 * 5])
    }

    func maxAbsDiff(_ a: [Double], _ b: [Double]) -> Double {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }
}

extension NetworkRegionsAlongLinesTests {
    /// The section on the fixture passes its checks; a report whose
    /// sampled segment saw more pieces than the exact count, or changes
    /// without a breakpoint, or a kinked piece, fails the matching check.
    func testSectionChecksPassAndCanFail() throws {
        let f = try fixture()
        let labels = [0, 0, 1]
        let ends = [(0, 1), (0, 2)].map { i, j in
            SegmentEnds(
                first: i, second: j, firstLabel: labels[i], secondLabel: labels[j], x0: i == 0 ? f.x0 : f.x1,
                x1: j == 1 ? f.x1 : f.x0.map { -$0 })
        }
        let options = NetworkRegionsOptions(pairsPerGroup: 1, samplesPerSegment: 200, span: 0.1, threads: 2)
        let r = NetworkRegionsAlongLines.run(network: f.network, segments: ends, options: options)
        XCTAssertEqual(r.segments.map(\.sameClass), [true, false])
        XCTAssertEqual(r.sampled.count, 2)
        XCTAssertEqual(r.segments[0].range[0], 0.45, accuracy: 1e-15)
        XCTAssertEqual(r.segments[0].range[1], 0.55, accuracy: 1e-15)
        XCTAssertEqual(NetworkRegionsAlongLines.checks(r).filter { !$0.passed }.map(\.id), [])
        var bad = r
        bad.sampled[0].sampledPieces = bad.sampled[0].exactPieces + 1
        bad.sampled[1].changesWithoutBreakpoint = 1
        bad.midpointMaxRelativeError = 1e-6
        XCTAssertEqual(
            NetworkRegionsAlongLines.checks(bad).filter { !$0.passed }.map(\.id),
            ["regions.midpoint-affine", "regions.sampling-not-above-exact", "regions.sampled-changes-bracketed"])
        XCTAssertThrowsError(
            try NetworkRegionsAlongLines.run(
                network: f.network, testSet: images(4), options: NetworkRegionsOptions(span: 0)))
    }
}
