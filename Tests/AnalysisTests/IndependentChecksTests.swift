import Analysis
import Foundation
import NetIO
import TestSupport
import XCTest

/// The independent checks, those that can fail: each number recomputed here
/// by loops, and each check shown to fail on a wrong input that a
/// consistency check (one that holds by construction) lets through.
final class IndependentChecksTests: XCTestCase {
    func fixture() throws -> AnalyzerFixtureTests.Shared { try AnalyzerFixtureTests.shared.get() }

    /// The operator identity against an operator built here from its
    /// definition, column by column: A·e_j is the direct-loop convolution of
    /// the j-th basis input, so ‖A‖²_F = Σ_j ‖conv(e_j)‖²; and A applied to
    /// the report's real inputs against the direct convolution of each.
    func testFrobeniusIdentities() throws {
        let f = try fixture()
        let images = Analyzer.operatorApplicationImages
        for (layer, weights, channels, n, outChannels) in [
            (0, f.weights.conv1, 1, 28, 8), (1, f.weights.conv2, 8, 13, 16),
        ] {
            let r = f.report.frobenius[layer]
            let w = weights.map(Double.init)
            let o = n - 2
            XCTAssertEqual(r.operatorShape, [outChannels * o * o, channels * n * n])
            let squared = w.reduce(0) { $0 + $1 * $1 }
            XCTAssertEqual(r.squaredFrobeniusNorm, squared, accuracy: 1e-12 * squared)
            XCTAssertLessThan(r.parsevalRelativeDifference, 1e-10)
            // Columns of A from the direct convolution of basis inputs.
            var columns = [[Double]]()
            var operatorSquared = 0.0
            for j in 0..<(channels * n * n) {
                var basis = [Double](repeating: 0, count: channels * n * n)
                basis[j] = 1
                let column = DirectReference<Double>.convolve(
                    basis, channels: channels, side: n, weight: w, outChannels: outChannels)
                operatorSquared += column.reduce(0) { $0 + $1 * $1 }
                columns.append(column)
            }
            XCTAssertEqual(r.operatorSquaredFrobeniusNorm, operatorSquared, accuracy: 1e-12 * operatorSquared)
            XCTAssertEqual(
                r.operatorExpectedSquaredFrobeniusNorm, Double(o * o) * squared, accuracy: 1e-12 * operatorSquared)
            // The library's A entry by entry against these columns.
            let a = ConvolutionOperator.matrix(
                weight: Matrix(rows: outChannels, columns: channels * 9, values: w),
                inChannels: channels, kernel: 3, inputSide: n)
            var entries = 0.0
            for j in columns.indices { for i in 0..<a.rows { entries = max(entries, abs(a[i, j] - columns[j][i])) } }
            XCTAssertEqual(
                entries, 0, "\(r.layer): ConvolutionOperator.matrix differs from the convolution of basis inputs")
            // A on the report's inputs: the first test images, or their pooled conv1 outputs.
            XCTAssertEqual(r.operatorApplicationImages, images)
            var worst = 0.0
            var largest = 0.0
            for i in 0..<images {
                let x = layer == 0 ? f.traces[i].conv1Input : f.traces[i].pooled1
                let direct = DirectReference<Double>.convolve(
                    x, channels: channels, side: n, weight: w, outChannels: outChannels)
                for row in 0..<a.rows {
                    var v = 0.0
                    for j in 0..<a.columns where x[j] != 0 { v += columns[j][row] * x[j] }
                    worst = max(worst, abs(v - direct[row]))
                    largest = max(largest, abs(direct[row]))
                }
            }
            XCTAssertLessThan(worst, 1e-12)
            XCTAssertLessThan(r.operatorApplicationMaxAbsDifference, 1e-12)
            XCTAssertEqual(
                r.operatorApplicationLargestOutput, largest, accuracy: 1e-12 * largest,
                "\(r.layer): A was applied to the first \(images) real inputs")
        }
    }

    /// Phase 4's pooled outputs and winners against float64 loops, and the
    /// near-tie rule: a flipped winner in a window with a clear maximum fails
    /// device.pool1-argmax; a corrupted pooled value fails device.pooled2.
    func testPooledOutputsAndWinnersAgainstLoops() throws {
        let f = try fixture()
        let d = try XCTUnwrap(f.report.deviceVerification)
        let reference32 = DirectReference<Float>(f.weights)
        let images = f.test.normalizedImages(0..<f.test.count)
        var pooled1 = 0.0
        var pooled2 = 0.0
        var mismatches = [0, 0]
        var beyond = [0, 0]
        func winners(_ a: [Double], channels: Int, side: Int) -> [(best: Int32, gap: Double)] {
            let o = side / 2
            var out = [(Int32, Double)]()
            for c in 0..<channels {
                for y in 0..<o {
                    for x in 0..<o {
                        let window = [(0, 0), (0, 1), (1, 0), (1, 1)].map { (i, j) in
                            ((2 * y + i) * side + 2 * x + j, a[c * side * side + (2 * y + i) * side + 2 * x + j])
                        }
                        let best = window.reduce(window[0]) { $1.1 > $0.1 ? $1 : $0 }
                        let sorted = window.map(\.1).sorted(by: >)
                        out.append((Int32(best.0), sorted[0] - sorted[1]))
                    }
                }
            }
            return out
        }
        for i in 0..<f.test.count {
            let t = reference32.forward(Array(images[(i * 784)..<((i + 1) * 784)]))
            pooled1 = max(pooled1, maxAbsoluteDifference(t.pooled1, f.traces[i].pooled1))
            pooled2 = max(pooled2, maxAbsoluteDifference(t.pooled2, f.traces[i].pooled2))
            for (l, device, host) in [
                (
                    0, DirectReference<Float>.poolArgmax(t.conv1, channels: 8, side: 26),
                    winners(f.traces[i].conv1, channels: 8, side: 26)
                ),
                (
                    1, DirectReference<Float>.poolArgmax(t.conv2, channels: 16, side: 11),
                    winners(f.traces[i].conv2, channels: 16, side: 11)
                ),
            ] {
                for (dv, h) in zip(device, host) where dv != h.best {
                    mismatches[l] += 1
                    if h.gap > DeviceVerification.argmaxTieBound { beyond[l] += 1 }
                }
            }
        }
        XCTAssertGreaterThan(pooled1, 0, "float32 and float64 differ somewhere")
        XCTAssertEqual(d.pooled1MaxAbsDifference, pooled1, accuracy: 1e-12)
        XCTAssertEqual(d.pooled2MaxAbsDifference, pooled2, accuracy: 1e-12)
        XCTAssertEqual(d.argmaxMismatches, mismatches)
        XCTAssertEqual(d.argmaxMismatchesBeyondTies, beyond)
        XCTAssertEqual(d.poolWindows, [f.test.count * 8 * 13 * 13, f.test.count * 16 * 5 * 5])
        XCTAssertEqual(d.argmaxTieBound, 2e-4)

        // A winner moved within a window whose maximum is clear (image 0).
        let host = winners(f.traces[0].conv1, channels: 8, side: 26)
        let clear = try XCTUnwrap(host.firstIndex { $0.gap > 0.05 })
        var options = AnalyzerFixtureTests.options
        options.runAccuracySweep = false
        let moved = Float32Network(f.weights)
        moved.argmaxCorruption = clear
        let report = try Analyzer(weights: f.weights, testSet: f.test.prefix(20), trainSet: f.train, options: options)
            .run(network: moved)
        XCTAssertEqual(report.failedChecks.map(\.id), ["device.pool1-argmax"])
        XCTAssertEqual(report.deviceVerification?.argmaxMismatchesBeyondTies, [1, 0])
        // A pooled conv2 value off by 3e-4 (conv2's own output left intact).
        let corrupted = Float32Network(f.weights)
        corrupted.pooledCorruption = (index: 123, amount: 3e-4)
        let second = try Analyzer(weights: f.weights, testSet: f.test.prefix(20), trainSet: f.train, options: options)
            .run(network: corrupted)
        XCTAssertEqual(second.failedChecks.map(\.id), ["device.pooled2"])
        XCTAssertEqual(second.check("device.pooled2")!.value, 3e-4, accuracy: 1e-5)
    }

    /// sweep.full-rank counts images whose prediction differs: two images
    /// that disagree in opposite directions (one right → wrong, one wrong →
    /// right) leave the accuracy unchanged, which a difference of correct
    /// counts would report as 0.
    func testSweepFullRankCountsDifferingPredictions() throws {
        let f = try fixture()
        let predictions = f.traces.map { DirectReference<Double>.argmax($0.logits) }
        let labels = f.test.labels.map(Int.init)
        let net = try AnalyticalNet(weights: f.weights)
        var options = AnalyzerFixtureTests.options
        options.threads = 1
        XCTAssertEqual(
            AccuracySweep.run(
                analytical: net, testSet: f.test, referencePredictions: predictions,
                options: options
            ).fullRankPredictionMismatches, 0)
        var other = predictions
        let right = try XCTUnwrap(labels.indices.first { predictions[$0] == labels[$0] })
        let wrong = try XCTUnwrap(labels.indices.first { predictions[$0] != labels[$0] })
        other[right] = (labels[right] + 1) % 10
        other[wrong] = labels[wrong]
        XCTAssertEqual(
            zip(other, labels).filter { $0 == $1 }.count, zip(predictions, labels).filter { $0 == $1 }.count,
            "the same number of correct predictions")
        let sweep = AccuracySweep.run(analytical: net, testSet: f.test, referencePredictions: other, options: options)
        XCTAssertEqual(sweep.fullRankPredictionMismatches, 2)
        XCTAssertEqual(f.report.check("sweep.full-rank")?.value, 0)
        XCTAssertEqual(f.report.lowRank.sweep?.fullRankPredictionMismatches, 0)
    }

    /// The masks of W_k·p for every k, by loops over the fixture's test
    /// patches and the report's rule (patches with an exact zero in W_k·p
    /// counted apart), and Cover's bound at rank k as checks.
    func testTruncatedMasksByLoops() throws {
        let f = try fixture()
        for (layer, units, side) in [(0, 8, 28), (1, 16, 13)] {
            let s = f.report.spectra[layer]
            let patchSize = s.vt[0].count
            var seen = [Set<Int>](repeating: [], count: units)
            var tied = [Int](repeating: 0, count: units)
            var patches = 0
            for t in f.traces {
                let input = layer == 0 ? t.conv1Input : t.pooled1
                for y in 0..<(side - 2) {
                    for x in 0..<(side - 2) {
                        let p = (0..<patchSize).map { q in input[((q / 9) * side + y + (q % 9) / 3) * side + x + q % 3]
                        }
                        patches += 1
                        let z = (0..<units).map { i in
                            s.singularValues[i] * (0..<patchSize).reduce(0.0) { $0 + s.vt[i][$1] * p[$1] }
                        }
                        var a = [Double](repeating: 0, count: units)
                        for k in 0..<units {
                            for c in 0..<units { a[c] += s.u[c][k] * z[k] }
                            if a.contains(0) {
                                tied[k] += 1
                                continue
                            }
                            seen[k].insert(a.enumerated().reduce(0) { $0 | ($1.element > 0 ? 1 << $1.offset : 0) })
                        }
                    }
                }
            }
            let r = f.report.reluRegions[layer]
            XCTAssertEqual(r.truncatedTestSetPatches.patches, patches)
            XCTAssertEqual(r.truncatedTestSetPatches.distinctMasks, seen.map(\.count), r.layer)
            XCTAssertEqual(r.truncatedTestSetPatches.patchesOnAHyperplane, tied, r.layer)
            XCTAssertEqual(r.truncatedRandomTrainingPatches.patches, AnalyzerFixtureTests.options.randomPatchCount)
            for (census, name) in [(r.truncatedTestSetPatches, "test"), (r.truncatedRandomTrainingPatches, "random")] {
                for k in 1...units {
                    XCTAssertLessThanOrEqual(census.distinctMasks[k - 1], r.coverBound[k - 1], "\(r.layer) k = \(k)")
                }
                let check = try XCTUnwrap(f.report.check("\(r.layer).cover-\(name)"))
                XCTAssertEqual(check.kind, .independent)
                XCTAssertTrue(check.passed)
            }
            XCTAssertEqual(seen[0].count, 2, "rank 1: W_1·p = u₁σ₁v₁ᵀp has the two masks of ±u₁")
        }
        // The check counts ranks above the bound.
        let census = TruncatedMaskCensus(patches: 10, distinctMasks: [2, 5, 4], patchesOnAHyperplane: [0, 0, 0])
        XCTAssertEqual(census.ranksAbove([2, 4, 8]), [2])
    }

    /// W_k against other rank-k matrices: with the decomposition's triplets
    /// in the wrong order (still W = UΣVᵀ with orthonormal U and V, so the
    /// reconstruction, orthogonality and Frobenius-formula checks all hold)
    /// the truncation is not optimal, and the candidates show it.
    func testEckartYoungOptimalityCatchesAWrongTruncation() throws {
        let f = try fixture()
        let w = Matrix(rows: 16, columns: 72, float32: f.weights.conv2)
        let svd = try SingularValueDecomposition(w)
        let right = try EckartYoungOptimality.compute(layer: "conv2", w: w, svd: svd)
        XCTAssertGreaterThanOrEqual(right.frobeniusMargin, -1e-12)
        XCTAssertGreaterThanOrEqual(right.spectralMargin, -1e-12)
        XCTAssertEqual(right.candidates, 15 * (3 * 3 * 3 + 1))
        XCTAssertEqual(f.report.lowRank.layers[1].optimality, right)

        var reversed = svd
        let order = Array((0..<16).reversed())
        reversed.singularValues = order.map { svd.singularValues[$0] }
        reversed.u = Matrix(rows: 16, columns: 16, values: (0..<16).flatMap { r in order.map { svd.u[r, $0] } })
        reversed.vt = Matrix(rows: 16, columns: 72, values: order.flatMap { svd.vt.row($0) })
        XCTAssertLessThan((reversed.reconstruction - w).maxAbsoluteValue, 1e-12, "still a decomposition of W")
        // The Frobenius formula still holds for the wrong truncation.
        let k = 4
        let formula = (reversed.singularValues[k...].reduce(0) { $0 + $1 * $1 }).squareRoot()
        XCTAssertEqual((w - reversed.truncated(rank: k)).frobeniusNorm, formula, accuracy: 1e-12)
        let wrong = try EckartYoungOptimality.compute(layer: "conv2", w: w, svd: reversed)
        XCTAssertLessThan(wrong.frobeniusMargin, -0.01, "some rank-k candidate beats the wrong W_k")
        XCTAssertLessThan(wrong.spectralMargin, -0.01)
    }

    /// Every check is marked consistency or independent, and each
    /// consistency check of a quantity has an independent companion.
    func testChecksNameTheirKind() throws {
        let f = try fixture()
        let kinds = Dictionary(uniqueKeysWithValues: f.report.checks.map { ($0.id, $0.kind) })
        for id in [
            "conv1.reconstruction", "conv2.parseval", "conv1.operator-frobenius", "composition.completeness",
            "conv2.eckart-young-frobenius", "conv1.energy-before-relu",
        ] {
            XCTAssertEqual(kinds[id], .consistency, id)
        }
        for id in [
            "conv1.sigma-vs-gram", "conv1.operator-application", "analytical.logits", "device.conv2", "device.pooled1",
            "device.pool2-argmax", "sweep.full-rank", "conv2.eckart-young-optimal-frobenius",
            "conv2.eckart-young-optimal-spectral", "conv1.cover-test", "conv2.cover-random",
        ] {
            XCTAssertEqual(kinds[id], .independent, id)
        }
        let json = try JSONSerialization.jsonObject(with: try f.report.jsonData()) as! [String: Any]
        let checks = json["checks"] as! [[String: Any]]
        XCTAssertEqual(checks.map { $0["kind"] as? String }, f.report.checks.map(\.kind.rawValue))
        XCTAssertTrue(ResultsTable.render(f.report).contains("PASS, independent]"))
    }
}
