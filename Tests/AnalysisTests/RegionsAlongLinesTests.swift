import Analysis
import Foundation
import NetIO
import TestSupport
import XCTest

/// Linear regions along lines (phase 9, section 4): the exact pieces against
/// breakpoints derived by hand, and each check of the section shown to pass
/// on the exact pieces and to fail on perturbed ones.
final class RegionsAlongLinesTests: XCTestCase {
    /// 10×10 images, one channel in each layer, both convolutions the
    /// centre tap, fc the identity: conv1 at (y, x) is pixel (y+1, x+1);
    /// pool-1 window (py, px) is max(0, pixels rows 2py+1…2py+2, columns
    /// 2px+1…2px+2); conv2 at (y, x) ∈ {0,1}² is pool-1 window (y+1, x+1),
    /// and the single pool-2 window, the logit, is the max of those four and 0.
    static func handNetwork() throws -> PiecewiseAffineConvNet {
        let centre = Matrix(rows: 1, columns: 9, values: [0, 0, 0, 0, 1, 0, 0, 0, 0])
        return try PiecewiseAffineConvNet(
            inputSide: 10, conv1: centre, conv2: centre,
            fcWeight: Matrix(rows: 1, columns: 1, values: [1]), fcBias: [0])
    }

    /// Background −1 (never wins a window) and five moving pixels, a(t) = x₀ + t(x₁ − x₀):
    /// - window A = pool-1 (1,1): u₁ = −1 + 2.2t at (3,3), u₂ = 0.6 − 0.8t at (3,4);
    /// - window B = pool-1 (1,2): u₃ = 0.3 − t at (3,5);
    /// - window C = pool-1 (2,1): u₄ = −0.5 + 1.5t at (5,3);
    /// - pixel (7,7), u₅ = −1 + 0.6t, in window (3,3), which conv2 does not read.
    ///
    /// By hand: B's winner u₃ falls through 0 at t = 0.3 (event); C turns on
    /// at 1/3 (event); A's winner u₂ is overtaken by u₁ at 1.6/3 = 8/15
    /// (event), and u₂'s own sign change at 0.75 is no event, u₁ wins then.
    /// Pool 2: A = 0.6 − 0.8t wins until C = −0.5 + 1.5t overtakes it at
    /// 1.1/2.3 = 11/23 (event); after 8/15, A = −1 + 2.2t overtakes C at
    /// 0.5/0.7 = 5/7 (event); B stays below A and everything stays above 0.
    /// Five breakpoints, six pieces; the logit is 0.6 − 0.8t, then
    /// −0.5 + 1.5t from 11/23, then −1 + 2.2t from 5/7. conv1 sign changes:
    /// u₁ (1/2.2), u₂ (0.75), u₃ (0.3), u₄ (1/3): 4; u₅'s root 5/3 is outside.
    static func handSegment() -> (x0: [Double], x1: [Double]) {
        var x0 = [Double](repeating: -1, count: 100)
        var x1 = x0
        for (r, c, a, b) in [
            (3, 3, -1.0, 1.2), (3, 4, 0.6, -0.2), (3, 5, 0.3, -0.7), (5, 3, -0.5, 1.0), (7, 7, -1, -0.4),
        ] {
            x0[r * 10 + c] = a
            x1[r * 10 + c] = b
        }
        return (x0, x1)
    }

    static let handBreakpoints = [0.3, 1.0 / 3, 11.0 / 23, 8.0 / 15, 5.0 / 7]

    static func handLogit(_ t: Double) -> Double {
        t < 11.0 / 23 ? 0.6 - 0.8 * t : t < 5.0 / 7 ? -0.5 + 1.5 * t : -1 + 2.2 * t
    }

    func testHandNetworkBreakpoints() throws {
        let net = try Self.handNetwork()
        let (x0, x1) = Self.handSegment()
        let p = net.pieces(from: x0, to: x1)
        XCTAssertEqual(p.pieces, 6)
        XCTAssertEqual(p.breakpoints.count, Self.handBreakpoints.count)
        for (got, expected) in zip(p.breakpoints, Self.handBreakpoints) {
            XCTAssertEqual(got, expected, accuracy: 1e-14)
        }
        XCTAssertEqual(p.breakpointLayers, [1, 1, 2, 1, 2])
        XCTAssertEqual(p.eventsPerLayer.first, 3)
        XCTAssertEqual(p.eventsPerLayer.second, 2)
        XCTAssertEqual(p.conv1SignChanges, 4)
        XCTAssertEqual(p.length, (2.2 * 2.2 + 0.8 * 0.8 + 1 + 1.5 * 1.5 + 0.6 * 0.6).squareRoot(), accuracy: 1e-14)
        // The forward pass reproduces the hand-derived logit.
        let ts = (0...20).map { Double($0) / 20 }
        let logits = net.forward(images: net.interpolate(x0, x1, at: ts), count: ts.count).logits
        for (t, f) in zip(ts, logits) { XCTAssertEqual(f, Self.handLogit(t), accuracy: 1e-14, "t = \(t)") }
    }

    /// Ties and zeros: two identical units crossing 0 give one event (the
    /// first slot wins); two units crossing each other below 0 give none;
    /// the conv2 unit that turns on at the same t as its input joins that
    /// breakpoint; units identically zero or constant never make events.
    func testTiesZerosAndMergedEvents() throws {
        let net = try Self.handNetwork()
        var x0 = [Double](repeating: -1, count: 100)
        var x1 = x0
        for (r, c, a, b) in [
            (3, 5, -0.5, 0.5), (4, 6, -0.5, 0.5),  // window B: identical, rise through 0 at 0.5
            (5, 3, -1.0, 0.0), (5, 4, -0.5, -1.0),
        ] {  // window C: cross at 1/3, both below 0
            x0[r * 10 + c] = a
            x1[r * 10 + c] = b
        }
        let p = net.pieces(from: x0, to: x1)
        XCTAssertEqual(p.pieces, 2)
        XCTAssertEqual(p.breakpoints.count, 1)
        XCTAssertEqual(p.breakpoints.first ?? .nan, 0.5, accuracy: 1e-15)
        XCTAssertEqual(p.breakpointLayers, [3], "one breakpoint holding both pools' events")
        let windows1 = net.pool1Windows
        // Window B is pool-1 window (1, 2) = 1·4 + 2; slot 0 (pixel (3,5)) wins the tie; pool 2 picks conv2 (0,1), slot 1.
        XCTAssertEqual(p.events.map(\.window), [6, windows1])
        XCTAssertEqual(p.events.map(\.winner), [0, 1])
        let sampled = RegionsAlongLines.sampleSegment(network: net, x0: x0, x1: x1, pieces: p, samples: 999, segment: 0)
        XCTAssertEqual(sampled.sampledPieces, 2)
        XCTAssertEqual(sampled.selectionMismatches, 0)
    }

    /// The midpoint identity holds on the exact pieces and fails when a
    /// breakpoint that bends the logit is missing. A breakpoint that does
    /// not reach the logit (0.3: B never wins pool 2) cannot be seen by it,
    /// which is why dense sampling checks the patterns too.
    func testMidpointIdentityAndItsFailure() throws {
        let net = try Self.handNetwork()
        let (x0, x1) = Self.handSegment()
        let exact = net.pieces(from: x0, to: x1).breakpoints
        let good = RegionsAlongLines.midpointCheck(
            network: net, x0: x0, x1: x1, breakpoints: exact, pieces: Array(0..<6))
        XCTAssertLessThan(good.maxRelativeError, 1e-14)
        XCTAssertEqual(good.endLogits.count, 7)
        for (t, row) in zip([0] + exact + [1], good.endLogits) {
            XCTAssertEqual(row[0], Self.handLogit(t), accuracy: 1e-14)
        }

        // Without 11/23 the piece [1/3, 8/15] has a kink: m = 13/30 lies before it, f(m) = 0.6 − 0.8m,
        // f(1/3) = 0.6 − 0.8/3, f(8/15) = −0.5 + 1.5·8/15; relative to max|f| = f(1) = 1.2.
        let dropped = exact.filter { abs($0 - 11.0 / 23) > 1e-9 }
        let bad = RegionsAlongLines.midpointCheck(
            network: net, x0: x0, x1: x1, breakpoints: dropped, pieces: Array(0..<5))
        let m = 13.0 / 30
        let chord = ((0.6 - 0.8 / 3) + (-0.5 + 1.5 * 8 / 15)) / 2
        XCTAssertEqual(bad.maxRelativeError, abs(0.6 - 0.8 * m - chord) / 1.2, accuracy: 1e-14)
        XCTAssertGreaterThan(bad.maxRelativeError, RegionsAlongLines.midpointTolerance)

        let invisible = exact.filter { abs($0 - 0.3) > 1e-9 }
        XCTAssertLessThan(
            RegionsAlongLines.midpointCheck(
                network: net, x0: x0, x1: x1, breakpoints: invisible,
                pieces: Array(0..<5)
            ).maxRelativeError, 1e-14)
    }

    /// Dense sampling finds every hand piece (the shortest is 1/30 long) and
    /// never more; with the second pool's events dropped the "exact" count
    /// is 4, sampling finds 6, and the exact selections stop matching the
    /// forward pass.
    func testDenseSamplingAndDroppedEventType() throws {
        let net = try Self.handNetwork()
        let (x0, x1) = Self.handSegment()
        let exact = net.pieces(from: x0, to: x1)
        let s = RegionsAlongLines.sampleSegment(network: net, x0: x0, x1: x1, pieces: exact, samples: 2000, segment: 0)
        XCTAssertEqual(s.sampledPieces, 6)
        XCTAssertEqual(s.exactPieces, 6)
        XCTAssertEqual(s.selectionMismatches, 0)

        let broken = Self.droppingSecondPool(exact, firstLayerWindows: net.pool1Windows)
        XCTAssertEqual(broken.pieces, 4)
        let b = RegionsAlongLines.sampleSegment(network: net, x0: x0, x1: x1, pieces: broken, samples: 2000, segment: 0)
        XCTAssertEqual(b.sampledPieces, 6)
        XCTAssertGreaterThan(b.sampledPieces, b.exactPieces)
        // Samples in (11/23, 5/7): C wins pool 2 but the broken walk still says A.
        XCTAssertEqual(Double(b.selectionMismatches), 2000 * (5.0 / 7 - 11.0 / 23), accuracy: 2)
    }

    /// conv1's sign changes from the roots equal the direct count on a grid
    /// (4 by hand); with every slope doubled (a wrong β) u₅'s root moves
    /// from 5/3 into (0, 1) and the two counts part.
    func testConv1RootCountAgainstGrid() throws {
        let net = try Self.handNetwork()
        let (x0, x1) = Self.handSegment()
        let (alpha, beta) = net.conv1Affine(from: x0, to: x1)
        XCTAssertEqual(PiecewiseAffineConvNet.conv1SignChanges(alpha: alpha, beta: beta), 4)
        XCTAssertEqual(RegionsAlongLines.conv1SignChangesOnGrid(network: net, x0: x0, x1: x1, points: 1001), 4)
        XCTAssertEqual(RegionsAlongLines.conv1SignChangesOnGrid(network: net, x0: x0, x1: x1, points: 2), 4)
        XCTAssertEqual(PiecewiseAffineConvNet.conv1SignChanges(alpha: alpha, beta: beta.map { 2 * $0 }), 5)
    }

    /// The generic forward pass is TinyConvNet's: against the plain-loop
    /// float64 reference (DirectReference) on random images, 1e-12 (float64
    /// sums of O(10) terms in another order).
    func testForwardMatchesDirectReference() throws {
        let weights = try Fixture.weights()
        let net = PiecewiseAffineConvNet(try HostReferenceNet(weights: weights))
        let reference = DirectReference<Double>(weights)
        let b = 3
        let images = randomFloats(b * 784, scale: 2, seed: 77).map(Double.init)
        let act = net.forward(images: images, count: b)
        for img in 0..<b {
            let r = reference.forward(Array(images[(img * 784)..<((img + 1) * 784)]))
            for c in 0..<8 {
                for q in 0..<676 {
                    XCTAssertEqual(act.conv1[(c * b + img) * 676 + q], r.conv1[c * 676 + q], accuracy: 1e-12)
                }
            }
            for c in 0..<16 {
                for q in 0..<121 {
                    XCTAssertEqual(act.conv2[(c * b + img) * 121 + q], r.conv2[c * 121 + q], accuracy: 1e-12)
                }
            }
            for o in 0..<10 { XCTAssertEqual(act.logits[img * 10 + o], r.logits[o], accuracy: 1e-12) }
        }
    }

    /// TinyConvNet (the fixture) between two MNIST test digits: the midpoint
    /// identity on every piece, dense sampling at or below the exact count
    /// with no selection mismatch, conv1's roots against the grid; and each
    /// check failing on a perturbed input: every other breakpoint dropped
    /// (midpoints), the second pool's events dropped (sampling).
    func testFixtureNetworkOnMNISTDigits() throws {
        let weights = try Fixture.weights()
        let net = PiecewiseAffineConvNet(try HostReferenceNet(weights: weights))
        let test = try Fixture.mnist(testCount: 2, trainCount: 0).test
        let x0 = test.normalizedImages([0]).map(Double.init)
        let x1 = test.normalizedImages([1]).map(Double.init)
        let p = net.pieces(from: x0, to: x1)
        XCTAssertGreaterThan(p.pieces, 50)
        XCTAssertLessThan(p.largestRootBacktrack, 1e-12)
        let all = Array(0..<p.pieces)
        let mid = RegionsAlongLines.midpointCheck(network: net, x0: x0, x1: x1, breakpoints: p.breakpoints, pieces: all)
        XCTAssertLessThan(mid.maxRelativeError, RegionsAlongLines.midpointTolerance)
        let halved = p.breakpoints.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let broken = RegionsAlongLines.midpointCheck(
            network: net, x0: x0, x1: x1, breakpoints: halved,
            pieces: Array(0...halved.count))
        XCTAssertGreaterThan(broken.maxRelativeError, RegionsAlongLines.midpointTolerance)

        let s = RegionsAlongLines.sampleSegment(network: net, x0: x0, x1: x1, pieces: p, samples: 4000, segment: 0)
        XCTAssertLessThanOrEqual(s.sampledPieces, p.pieces)
        XCTAssertGreaterThan(s.sampledPieces, p.pieces / 2, "4000 samples should resolve most pieces")
        XCTAssertEqual(s.selectionMismatches, 0)
        let dropped = Self.droppingSecondPool(p, firstLayerWindows: net.pool1Windows)
        let b = RegionsAlongLines.sampleSegment(
            network: net, x0: x0, x1: x1, pieces: dropped, samples: 4000, segment: 0)
        XCTAssertGreaterThan(b.sampledPieces, b.exactPieces)
        XCTAssertGreaterThan(b.selectionMismatches, 0)

        XCTAssertEqual(
            p.conv1SignChanges, RegionsAlongLines.conv1SignChangesOnGrid(network: net, x0: x0, x1: x1, points: 101))

        // Breakpoints whose events cannot reach the logits (the first pool's
        // row and column 12, which no kept conv2 output reads): the forward
        // pass's logits have the same slope on both sides of each (relative
        // 1e-6 of the slopes' size, one-sided differences over at most 1e-7
        // in t), and sampling at the windows that reach the logits finds no
        // more pieces than the exact count of such pieces.
        XCTAssertLessThan(p.piecesReachingLogits, p.pieces, "this segment has events at row or column 12")
        XCTAssertEqual(s.exactPiecesReachingLogits, p.piecesReachingLogits)
        XCTAssertLessThanOrEqual(try XCTUnwrap(s.sampledPiecesReachingLogits), p.piecesReachingLogits)
        let h = 1e-7
        let cuts = [0] + p.breakpoints + [1]
        for (i, t) in p.breakpoints.enumerated() where !p.breakpointReachesLogits[i] {
            // Stay inside the two neighbouring pieces.
            let d = min(h, (t - cuts[i]) / 3, (cuts[i + 2] - t) / 3)
            let f = net.forward(images: net.interpolate(x0, x1, at: [t - d, t, t + d]), count: 3).logits
            let classes = f.count / 3
            let left = (0..<classes).map { (f[classes + $0] - f[$0]) / d }
            let right = (0..<classes).map { (f[2 * classes + $0] - f[classes + $0]) / d }
            let size = (left + right).map(abs).max()!
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(left, right), 1e-6 * size, "breakpoint \(i) at t = \(t)")
        }
    }

    /// The whole section on the hand network: statistics, checks passing,
    /// and each check failing when fed a perturbed result.
    func testSectionReportAndChecks() throws {
        let net = try Self.handNetwork()
        let (x0, x1) = Self.handSegment()
        let ends = [
            SegmentEnds(first: 0, second: 1, firstLabel: 3, secondLabel: 3, x0: x0, x1: x1),
            SegmentEnds(first: 1, second: 0, firstLabel: 3, secondLabel: 3, x0: x1, x1: x0),
            SegmentEnds(first: 0, second: 2, firstLabel: 3, secondLabel: 5, x0: x0, x1: x1),
        ]
        let options = RegionsAlongLinesOptions(
            midpointPiecesPerSegment: 3, samplesPerSegment: 500, signGridPoints: 11, threads: 2)
        let r = RegionsAlongLines.run(network: net, segments: ends, options: options)
        XCTAssertEqual(r.segments.map(\.pieces), [6, 6, 6], "the reversed segment has the same breakpoints, 1 − t")
        XCTAssertEqual(r.sameDigit?.segments, 2)
        XCTAssertEqual(r.sameDigit?.piecesMedian, 6)
        XCTAssertEqual(r.differentDigits?.segments, 1)
        XCTAssertEqual(r.segments[0].piecesPerUnitLength, 6 / r.segments[0].length, accuracy: 1e-12)
        XCTAssertEqual(r.segments.map(\.midpointPiecesChecked), [3, 3, 6], "the figure's segment checks every piece")
        XCTAssertEqual(r.segments[0].shortestPiece, 1.0 / 3 - 0.3, accuracy: 1e-14)
        XCTAssertEqual(r.sampled.map(\.segment), [0, 2])
        XCTAssertEqual(r.figure?.segment, 2)
        XCTAssertEqual(r.figure?.t.count, 7)
        XCTAssertEqual(r.conv1SignCountMismatches, 0)
        let checks = RegionsAlongLines.checks(r)
        XCTAssertEqual(
            checks.map(\.id),
            [
                "regions.midpoint-affine", "regions.sampling-not-above-exact",
                "regions.sampling-not-above-exact-reaching-logits", "regions.sampled-selection",
                "regions.conv1-sign-count",
            ])
        XCTAssertTrue(checks.allSatisfy(\.passed), "\(checks.filter { !$0.passed })")

        // Perturbed inputs into the same checks.
        var perturbed = r
        let dropped = net.pieces(from: x0, to: x1).breakpoints.filter { abs($0 - 11.0 / 23) > 1e-9 }
        perturbed.midpointMaxRelativeError =
            RegionsAlongLines.midpointCheck(
                network: net, x0: x0, x1: x1, breakpoints: dropped,
                pieces: Array(0..<5)
            ).maxRelativeError
        let broken = Self.droppingSecondPool(net.pieces(from: x0, to: x1), firstLayerWindows: net.pool1Windows)
        perturbed.sampled = [
            RegionsAlongLines.sampleSegment(network: net, x0: x0, x1: x1, pieces: broken, samples: 500, segment: 0)
        ]
        let (alpha, beta) = net.conv1Affine(from: x0, to: x1)
        perturbed.conv1SignCountMismatches = abs(
            PiecewiseAffineConvNet.conv1SignChanges(alpha: alpha, beta: beta.map { 2 * $0 })
                - RegionsAlongLines.conv1SignChangesOnGrid(network: net, x0: x0, x1: x1, points: 11))
        XCTAssertEqual(
            RegionsAlongLines.checks(perturbed).filter { !$0.passed }.map(\.id),
            [
                "regions.midpoint-affine", "regions.sampling-not-above-exact",
                "regions.sampling-not-above-exact-reaching-logits", "regions.sampled-selection",
                "regions.conv1-sign-count",
            ])
    }

    func testPairsAreReproducibleAndGrouped() {
        let labels: [UInt8] = [0, 1, 0, 2, 1, 1, 3, 0]
        let a = RegionsAlongLines.pairs(labels: labels, perGroup: 20, seed: 5)
        let b = RegionsAlongLines.pairs(labels: labels, perGroup: 20, seed: 5)
        XCTAssertEqual(a.same.map { [$0.0, $0.1] }, b.same.map { [$0.0, $0.1] })
        XCTAssertEqual(a.different.map { [$0.0, $0.1] }, b.different.map { [$0.0, $0.1] })
        XCTAssertEqual(a.same.count, 20)
        XCTAssertEqual(a.different.count, 20)
        XCTAssertTrue(a.same.allSatisfy { $0.0 != $0.1 && labels[$0.0] == labels[$0.1] })
        XCTAssertTrue(a.different.allSatisfy { labels[$0.0] != labels[$0.1] })
        // One class: no different pair; all labels distinct: no same pair.
        XCTAssertEqual(RegionsAlongLines.pairs(labels: [4, 4, 4], perGroup: 3, seed: 0).different.count, 0)
        XCTAssertEqual(RegionsAlongLines.pairs(labels: [1, 2, 3], perGroup: 3, seed: 0).same.count, 0)
    }

    /// `p` without the second pool's events and the breakpoints only they made.
    static func droppingSecondPool(_ p: SegmentPieces, firstLayerWindows: Int) -> SegmentPieces {
        var q = p
        q.events = p.events.filter { $0.window < firstLayerWindows }
        let keep = p.breakpointLayers.map { $0 & 1 != 0 }
        q.breakpoints = zip(p.breakpoints, keep).filter(\.1).map(\.0)
        q.breakpointLayers = zip(p.breakpointLayers, keep).filter(\.1).map { _ in 1 }
        q.breakpointReachesLogits = zip(p.breakpointReachesLogits, keep).filter(\.1).map(\.0)
        return q
    }
}
