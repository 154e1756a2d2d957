import Analysis
import Foundation
import NetIO
import TestSupport
import XCTest

/// The network under test of these tests: TinyConvNet in float32 plain
/// loops (DirectReference<Float>), optionally with one conv2 value corrupted.
final class Float32Network: NetworkUnderTest {
    let net: DirectReference<Float>
    /// Added to conv2's output at this flat index of the first batch.
    var corruption: (index: Int, amount: Float)?
    var batchSizes = [Int]()
    /// When set, the logits come back one value short (a wrong-size output).
    var truncateLogits = false
    /// Added to pooled2 at this flat index of the first batch.
    var pooledCorruption: (index: Int, amount: Float)?
    /// conv1's pool winner at this flat index of the first batch moves to
    /// its horizontal neighbour (x ^ 1 stays in the window).
    var argmaxCorruption: Int?

    init(_ weights: TinyConvNetWeights) { net = DirectReference<Float>(weights) }

    func forward(normalizedImages: [Float], count: Int) throws -> NetworkOutputs {
        var out = NetworkOutputs(conv1: [], conv2: [], pooled1: [], argmax1: [], pooled2: [], argmax2: [], logits: [])
        for i in 0..<count {
            let t = net.forward(Array(normalizedImages[(i * 784)..<((i + 1) * 784)]))
            out.conv1 += t.conv1
            out.conv2 += t.conv2
            out.logits += t.logits
            out.pooled1 += t.pooled1
            out.pooled2 += t.pooled2
            out.argmax1 += DirectReference<Float>.poolArgmax(t.conv1, channels: 8, side: 26)
            out.argmax2 += DirectReference<Float>.poolArgmax(t.conv2, channels: 16, side: 11)
        }
        if let corruption, batchSizes.isEmpty { out.conv2[corruption.index] += corruption.amount }
        if let pooledCorruption, batchSizes.isEmpty { out.pooled2[pooledCorruption.index] += pooledCorruption.amount }
        if let argmaxCorruption, batchSizes.isEmpty { out.argmax1[argmaxCorruption] ^= 1 }
        if truncateLogits { out.logits.removeLast() }
        batchSizes.append(count)
        return out
    }
}

/// Every phase on the fixture checkpoint and the first MNIST images, each
/// number checked against an independent computation in this file
/// (DirectReference: float64 direct convolution loops).
final class AnalyzerFixtureTests: XCTestCase {
    static let testCount = 300
    static let options = AnalysisOptions(
        batchSize: 128, threads: 2, samplingSeed: 7, randomPatchCount: 200,
        mostCommonMaskCount: 5, runAccuracySweep: true)

    struct Shared {
        let weights: TinyConvNetWeights
        let test: Dataset
        let train: Dataset
        let report: AnalysisReport
        let network: Float32Network
        /// The float64 reference trace of each test image.
        let traces: [DirectReference<Double>.Trace]
    }

    static let shared: Result<Shared, Error> = Result {
        let weights = try Fixture.weights()
        let sets = try Fixture.mnist(testCount: testCount, trainCount: 1000)
        let network = Float32Network(weights)
        let report = try Analyzer(weights: weights, testSet: sets.test, trainSet: sets.train, options: options).run(
            network: network)
        let reference = DirectReference<Double>(weights)
        let images = sets.test.normalizedImages(0..<sets.test.count).map(Double.init)
        let traces = (0..<sets.test.count).map { i in reference.forward(Array(images[(i * 784)..<((i + 1) * 784)])) }
        return Shared(
            weights: weights, test: sets.test, train: sets.train, report: report, network: network, traces: traces)
    }

    func fixture() throws -> Shared { try Self.shared.get() }

    func testAllChecksPassAndDeviceWasCalledInBatches() throws {
        let f = try fixture()
        XCTAssertTrue(f.report.allChecksPassed, "failed: \(f.report.failedChecks.map { "\($0.id) = \($0.value)" })")
        XCTAssertEqual(f.network.batchSizes, [128, 128, 44])
        XCTAssertNotNil(f.report.check("device.conv2"))
        // The fixture is far above chance (its fc was fitted to MNIST).
        XCTAssertGreaterThan(f.report.testAccuracy, 0.7)
    }

    func testAccuracyAndPredictionsAgainstDirectReference() throws {
        let f = try fixture()
        let correct = f.traces.enumerated().filter {
            DirectReference<Double>.argmax($0.element.logits) == Int(f.test.labels[$0.offset])
        }.count
        XCTAssertEqual(f.report.testAccuracy, Double(correct) / Double(Self.testCount))
        XCTAssertEqual(f.report.analyticalComparison.analyticalTestAccuracy, Double(correct) / Double(Self.testCount))
        // The AnalyticalNet's public forward against the direct loops.
        let net = try AnalyticalNet(weights: f.weights)
        let out = net.forward(normalizedImages: f.test.normalizedImages(0..<5), count: 5)
        XCTAssertLessThan(maxAbsoluteDifference(out.conv1, f.traces[0..<5].flatMap(\.conv1)), 1e-12)
        XCTAssertLessThan(maxAbsoluteDifference(out.conv2, f.traces[0..<5].flatMap(\.conv2)), 1e-12)
        XCTAssertLessThan(maxAbsoluteDifference(out.logits, f.traces[0..<5].flatMap(\.logits)), 1e-12)
        let host = try HostReferenceNet(weights: f.weights).forward(
            normalizedImages: f.test.normalizedImages(0..<5), count: 5)
        XCTAssertLessThan(maxAbsoluteDifference(host.conv2, f.traces[0..<5].flatMap(\.conv2)), 1e-12)
    }

    func testSpectraFromTheFactors() throws {
        let f = try fixture()
        for (s, weights, rows, cols) in [
            (f.report.spectra[0], f.weights.conv1, 8, 9), (f.report.spectra[1], f.weights.conv2, 16, 72),
        ] {
            XCTAssertEqual(s.matrixShape, [rows, cols])
            XCTAssertEqual(s.singularValues.count, rows)
            // U·diag(σ)·Vᵀ = W and orthonormal factors, by loops: with σ
            // sorted and ≥ 0 this pins σ down (the SVD's uniqueness).
            var worst = 0.0
            for i in 0..<rows {
                for j in 0..<cols {
                    var v = 0.0
                    for k in 0..<rows { v += s.u[i][k] * s.singularValues[k] * s.vt[k][j] }
                    worst = max(worst, abs(v - Double(weights[i * cols + j])))
                }
            }
            XCTAssertLessThan(worst, 1e-12)
            for a in 0..<rows {
                for b in 0..<rows {
                    let uu = (0..<rows).reduce(0.0) { $0 + s.u[$1][a] * s.u[$1][b] }
                    let vv = (0..<cols).reduce(0.0) { $0 + s.vt[a][$1] * s.vt[b][$1] }
                    XCTAssertEqual(uu, a == b ? 1 : 0, accuracy: 1e-12)
                    XCTAssertEqual(vv, a == b ? 1 : 0, accuracy: 1e-12)
                }
            }
            XCTAssertEqual(s.singularValues, s.singularValues.sorted(by: >))
            // Derived numbers from σ.
            let squares = s.singularValues.map { $0 * $0 }
            let total = squares.reduce(0, +)
            var running = 0.0
            for (k, e) in squares.enumerated() {
                running += e
                XCTAssertEqual(s.cumulativeEnergy[k], running / total, accuracy: 1e-14)
            }
            func count(_ t: Double) -> Int { (1...rows).first { squares[0..<$0].reduce(0, +) / total >= t }! }
            XCTAssertEqual(s.componentsFor90PercentEnergy, count(0.90))
            XCTAssertEqual(s.componentsFor95PercentEnergy, count(0.95))
            XCTAssertEqual(s.componentsFor99PercentEnergy, count(0.99))
            let frobenius = weights.reduce(0.0) { $0 + Double($1) * Double($1) }
            XCTAssertEqual(s.stableRank, frobenius / squares[0], accuracy: 1e-12)
            let sum = s.singularValues.reduce(0, +)
            XCTAssertEqual(
                s.entropyEffectiveRank, exp(-s.singularValues.reduce(0.0) { $0 + ($1 / sum) * log($1 / sum) }),
                accuracy: 1e-12)
            XCTAssertEqual(s.gramEigenvalues.count, cols)
            XCTAssertEqual(s.eigenfilter(1)[0][2][1], s.vt[1][2 * 3 + 1])
        }
        for i in f.report.svdIdentities {
            XCTAssertLessThan(i.reconstructionMaxAbsError, 1e-12)
            XCTAssertGreaterThan(
                i.reconstructionMaxAbsError, 0,
                "a float64 product has some rounding; exactly 0 would mean nothing was compared")
        }
    }

    func testCompositionOverlapsByLoops() throws {
        let f = try fixture()
        let u1 = f.report.spectra[0].u
        let vt2 = f.report.spectra[1].vt
        let c = f.report.composition
        XCTAssertEqual(c.overlaps.count, 16)
        XCTAssertEqual(c.overlaps[0].count, 9)
        XCTAssertEqual(c.overlaps[0][0].count, 8)
        for j in 0..<16 {
            for o in 0..<9 {
                for m in 0..<8 {
                    let expected = (0..<8).reduce(0.0) { $0 + u1[$1][m] * vt2[j][$1 * 9 + o] }
                    XCTAssertEqual(c.overlaps[j][o][m], expected, accuracy: 1e-14)
                }
            }
        }
        for j in 0..<16 {
            XCTAssertEqual(c.directionEnergy[j].reduce(0, +), 1, accuracy: 1e-12)
            XCTAssertEqual(c.offsetEnergy[j].reduce(0, +), 1, accuracy: 1e-12)
        }
    }

    func testDeviceVerificationAgainstOwnComparison() throws {
        let f = try fixture()
        let d = try XCTUnwrap(f.report.deviceVerification)
        let reference32 = DirectReference<Float>(f.weights)
        let images = f.test.normalizedImages(0..<f.test.count)
        var c1 = 0.0
        var c2 = 0.0
        var lg = 0.0
        var mismatches = 0
        var correct = 0
        for i in 0..<f.test.count {
            let t = reference32.forward(Array(images[(i * 784)..<((i + 1) * 784)]))
            c1 = max(c1, maxAbsoluteDifference(t.conv1, f.traces[i].conv1))
            c2 = max(c2, maxAbsoluteDifference(t.conv2, f.traces[i].conv2))
            lg = max(lg, maxAbsoluteDifference(t.logits, f.traces[i].logits))
            let p = DirectReference<Float>.argmax(t.logits)
            if p != DirectReference<Double>.argmax(f.traces[i].logits) { mismatches += 1 }
            if p == Int(f.test.labels[i]) { correct += 1 }
        }
        XCTAssertGreaterThan(c1, 0, "float32 and float64 differ somewhere")
        XCTAssertEqual(d.conv1MaxAbsDifference, c1, accuracy: 1e-12)
        XCTAssertEqual(d.conv2MaxAbsDifference, c2, accuracy: 1e-12)
        XCTAssertEqual(d.logitsMaxAbsDifference, lg, accuracy: 1e-12)
        XCTAssertEqual(d.predictionMismatches, mismatches)
        XCTAssertEqual(d.deviceTestAccuracy, Double(correct) / Double(f.test.count))
        XCTAssertEqual(d.images, f.test.count)
    }

    func testCorruptedDeviceOutputFailsItsCheck() throws {
        let f = try fixture()
        let network = Float32Network(f.weights)
        network.corruption = (index: 1234, amount: 3e-4)
        var options = Self.options
        options.runAccuracySweep = false
        let report = try Analyzer(weights: f.weights, testSet: f.test.prefix(40), trainSet: f.train, options: options)
            .run(network: network)
        XCTAssertFalse(report.allChecksPassed)
        XCTAssertEqual(report.failedChecks.map(\.id), ["device.conv2"])
        XCTAssertEqual(report.check("device.conv2")!.value, 3e-4, accuracy: 1e-5)
        XCTAssertTrue(ResultsTable.render(report).contains("FAIL"))
    }

    func testNaNFromTheDeviceFailsItsCheck() throws {
        let f = try fixture()
        let network = Float32Network(f.weights)
        network.corruption = (index: 5, amount: .nan)
        var options = Self.options
        options.runAccuracySweep = false
        let report = try Analyzer(weights: f.weights, testSet: f.test.prefix(20), trainSet: f.train, options: options)
            .run(network: network)
        XCTAssertTrue(report.check("device.conv2")!.value.isNaN)
        XCTAssertEqual(report.failedChecks.map(\.id), ["device.conv2"])
        XCTAssertNoThrow(try report.jsonData(), "NaN is written as a string, not refused")
    }

    func testWrongSizeNetworkOutputIsRefused() throws {
        let f = try fixture()
        let network = Float32Network(f.weights)
        network.truncateLogits = true
        XCTAssertThrowsError(
            try Analyzer(weights: f.weights, testSet: f.test.prefix(10), trainSet: f.train, options: Self.options).run(
                network: network)
        ) { error in
            XCTAssertEqual(
                error as? AnalysisError, .networkOutputSize(output: "logits", batchStart: 0, expected: 100, actual: 99))
        }
    }

    func testNonFiniteWeightIsRefusedByName() throws {
        let f = try fixture()
        var w = f.weights
        w.fcBias[3] = .infinity
        XCTAssertThrowsError(try Analyzer(weights: w, testSet: f.test.prefix(10), trainSet: f.train).run()) { error in
            XCTAssertEqual(error as? AnalysisError, .nonFiniteWeight(tensor: "fc.bias", index: 3, value: .infinity))
            XCTAssertTrue("\(error)".contains("fc.bias"))
        }
        w = f.weights
        w.conv2[17] = .nan
        XCTAssertThrowsError(try Analyzer(weights: w, testSet: f.test.prefix(10), trainSet: f.train).run()) { error in
            guard case .nonFiniteWeight(let tensor, let index, _)? = error as? AnalysisError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(tensor, "conv2.weight")
            XCTAssertEqual(index, 17)
        }
    }

    func testLowRankRowsByLoops() throws {
        let f = try fixture()
        for (l, s, weights) in [
            (f.report.lowRank.layers[0], f.report.spectra[0], f.weights.conv1),
            (f.report.lowRank.layers[1], f.report.spectra[1], f.weights.conv2),
        ] {
            let rows = s.u.count
            let cols = s.vt[0].count
            let norm = weights.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            XCTAssertEqual(l.rows.map(\.rank), Array(1...rows))
            for row in l.rows {
                var error = 0.0
                for i in 0..<rows {
                    for j in 0..<cols {
                        var v = 0.0
                        for k in 0..<row.rank { v += s.u[i][k] * s.singularValues[k] * s.vt[k][j] }
                        error += (Double(weights[i * cols + j]) - v) * (Double(weights[i * cols + j]) - v)
                    }
                }
                XCTAssertEqual(row.relativeFrobeniusErrorFromMatrix, error.squareRoot() / norm, accuracy: 1e-12)
                XCTAssertEqual(row.relativeFrobeniusErrorFromSigma, error.squareRoot() / norm, accuracy: 1e-12)
                XCTAssertEqual(row.spectralErrorFromSigma, row.rank < rows ? s.singularValues[row.rank] : 0)
                XCTAssertEqual(row.spectralErrorFromMatrix, row.spectralErrorFromSigma, accuracy: 1e-12)
                XCTAssertEqual(row.cumulativeEnergy, s.cumulativeEnergy[row.rank - 1])
            }
        }
    }

    func testAccuracySweepAgainstDirectLowRankNetworks() throws {
        let f = try fixture()
        let sweep = try XCTUnwrap(f.report.lowRank.sweep)
        XCTAssertEqual(sweep.accuracy.count, 8)
        XCTAssertEqual(sweep.accuracy[0].count, 16)
        let s1 = f.report.spectra[0]
        let s2 = f.report.spectra[1]
        func truncated(_ s: LayerSpectrum, _ k: Int) -> [Double] {
            let rows = s.u.count
            let cols = s.vt[0].count
            var w = [Double](repeating: 0, count: rows * cols)
            for i in 0..<rows {
                for j in 0..<cols { for p in 0..<k { w[i * cols + j] += s.u[i][p] * s.singularValues[p] * s.vt[p][j] } }
            }
            return w
        }
        let images = f.test.normalizedImages(0..<f.test.count).map(Double.init)
        for (k1, k2) in [(1, 16), (3, 5), (8, 2), (8, 16), (2, 1)] {
            let net = DirectReference<Double>(
                conv1: truncated(s1, k1), conv2: truncated(s2, k2),
                fcWeight: f.weights.fcWeight.map(Double.init), fcBias: f.weights.fcBias.map(Double.init))
            let correct = (0..<f.test.count).filter { i in
                DirectReference<Double>.argmax(net.forward(Array(images[(i * 784)..<((i + 1) * 784)])).logits)
                    == Int(f.test.labels[i])
            }.count
            XCTAssertEqual(
                sweep.accuracy[k1 - 1][k2 - 1], Double(correct) / Double(f.test.count), "k₁ = \(k1), k₂ = \(k2)")
        }
        XCTAssertEqual(f.report.lowRank.layers[0].rows[2].testAccuracy, sweep.accuracy[2][15])
        XCTAssertEqual(f.report.lowRank.layers[1].rows[4].testAccuracy, sweep.accuracy[7][4])
        XCTAssertEqual(sweep.sameRankAccuracy.count, 8)
        XCTAssertGreaterThan(sweep.seconds, 0)
    }

    func testMaskCensusesAndEnergiesByLoops() throws {
        let f = try fixture()
        // Every test patch: masks from the float64 direct pre-activations.
        for (layer, units, plane, trace) in [
            (0, 8, 676, { (t: DirectReference<Double>.Trace) in t.conv1 }),
            (1, 16, 121, { (t: DirectReference<Double>.Trace) in t.conv2 }),
        ] {
            var counts = [String: Int]()
            let u = f.report.spectra[layer].u
            var before = [Double](repeating: 0, count: units)
            var after = before
            for t in f.traces {
                let a = trace(t)
                for q in 0..<plane {
                    let column = (0..<units).map { a[$0 * plane + q] }
                    counts[String(column.map { $0 > 0 ? "1" : "0" }), default: 0] += 1
                    for i in 0..<units {
                        let x = (0..<units).reduce(0.0) { $0 + u[$1][i] * column[$1] }
                        let y = (0..<units).reduce(0.0) { $0 + u[$1][i] * max(column[$1], 0) }
                        before[i] += x * x
                        after[i] += y * y
                    }
                }
            }
            let r = f.report.reluRegions[layer]
            let patches = Double(f.traces.count * plane)
            XCTAssertEqual(r.testSetPatches.patches, f.traces.count * plane)
            XCTAssertEqual(r.testSetPatches.distinctMasks, counts.count)
            // Most frequent first; ties by the mask's integer value (bit c = unit c).
            func value(_ bits: String) -> Int {
                bits.enumerated().reduce(0) { $0 | ($1.element == "1" ? 1 << $1.offset : 0) }
            }
            let ranked = counts.sorted { $0.value != $1.value ? $0.value > $1.value : value($0.key) < value($1.key) }
                .prefix(5)
            XCTAssertEqual(r.testSetPatches.mostCommon.map(\.bits), ranked.map(\.key))
            XCTAssertEqual(r.testSetPatches.mostCommon.map(\.count), ranked.map(\.value))
            XCTAssertEqual(r.testSetPatches.mostCommon.map(\.mask), ranked.map { value($0.key) })
            for i in 0..<units {
                XCTAssertEqual(
                    r.energyBeforeReLU[i], before[i] / patches, accuracy: 1e-10 * max(1, before[i] / patches))
                XCTAssertEqual(r.energyAfterReLU[i], after[i] / patches, accuracy: 1e-10 * max(1, after[i] / patches))
            }
            XCTAssertEqual(r.coverBound.count, units)
            XCTAssertEqual(r.coverBound.last, 1 << units)
        }
    }

    func testRandomTrainingPatchesFollowTheDocumentedSampling() throws {
        let f = try fixture()
        // The documented draw: SplitMix64(seed); per patch image, y, x each
        // uniform by rejection; conv1's 200 draws, then conv2's 200.
        var g = SeededRandom(seed: Self.options.samplingSeed)
        func uniform(_ n: Int) -> Int {
            let bound = UInt64(n)
            let threshold = (0 &- bound) % bound
            while true {
                let x = g.next()
                if x >= threshold { return Int(x % bound) }
            }
        }
        let reference = DirectReference<Double>(f.weights)
        var masks1 = Set<[Bool]>()
        var masks2 = Set<[Bool]>()
        for _ in 0..<Self.options.randomPatchCount {
            let image = uniform(f.train.count)
            let y = uniform(26)
            let x = uniform(26)
            let pixels = f.train.normalizedImages([image]).map(Double.init)
            masks1.insert(
                (0..<8).map { o in
                    (0..<9).reduce(0.0) { $0 + reference.conv1[o * 9 + $1] * pixels[(y + $1 / 3) * 28 + x + $1 % 3] }
                        > 0
                })
        }
        for _ in 0..<Self.options.randomPatchCount {
            let image = uniform(f.train.count)
            let y = uniform(11)
            let x = uniform(11)
            let pooled = reference.forward(f.train.normalizedImages([image]).map(Double.init)).pooled1
            masks2.insert(
                (0..<16).map { o in
                    (0..<72).reduce(0.0) { s, p in
                        let (c, i, k) = (p / 9, (p % 9) / 3, p % 3)
                        return s + reference.conv2[o * 72 + p] * pooled[(c * 13 + y + i) * 13 + x + k]
                    } > 0
                })
        }
        XCTAssertEqual(f.report.reluRegions[0].randomTrainingPatches.distinctMasks, masks1.count)
        XCTAssertEqual(f.report.reluRegions[1].randomTrainingPatches.distinctMasks, masks2.count)
        XCTAssertEqual(f.report.reluRegions[0].randomTrainingPatches.patches, Self.options.randomPatchCount)
    }

    func testReportWithoutNetworkHasNoDeviceChecks() throws {
        let f = try fixture()
        var options = Self.options
        options.runAccuracySweep = false
        let report = try Analyzer(weights: f.weights, testSet: f.test.prefix(50), trainSet: f.train, options: options)
            .run()
        XCTAssertNil(report.deviceVerification)
        XCTAssertNil(report.lowRank.sweep)
        XCTAssertFalse(report.checks.contains { $0.id.hasPrefix("device.") })
        XCTAssertTrue(report.allChecksPassed, "\(report.failedChecks)")
        XCTAssertTrue(ResultsTable.render(report).contains("not run: no network under test"))
    }

    func testJSONRoundTripAndTable() throws {
        let f = try fixture()
        let folder = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("analysis.json")
        try f.report.write(to: url)
        let back = try AnalysisReport(jsonData: Data(contentsOf: url))
        XCTAssertEqual(back, f.report)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        for key in [
            "spectra", "svdIdentities", "composition", "analyticalComparison", "deviceVerification", "lowRank",
            "reluRegions", "frobenius", "checks", "timings", "testAccuracy",
        ] {
            XCTAssertNotNil(object[key], key)
        }
        let table = ResultsTable.render(f.report)
        XCTAssertFalse(table.contains("FAIL"), table)
        XCTAssertTrue(table.contains("conv1 max|UΣVᵀ − W|"))
        XCTAssertTrue(table.contains("All \(f.report.checks.count) checks passed."))
        let t = f.report.timings
        XCTAssertLessThanOrEqual(t.analysisSeconds, t.totalSeconds)
        XCTAssertGreaterThan(t.testSetPassSeconds, 0)
    }
}
