import Analysis
import Foundation
import Models
import NetIO
import TestSupport
import XCTest

/// Phase 6 of the per-layer analysis against independent references: the
/// masks counted again with naive float64 loops over ``NaiveNetwork``'s
/// unfolded eval-mode outputs (conv, then BatchNorm), the region bound on
/// known values, TinyConvNet's counts against today's ``Analyzer``, and a
/// bound check that fails for a count above the bound.
final class NetworkMaskTests: XCTestCase, SmallResNetFixture {
    /// Distinct sign patterns (no entry exactly 0) of `pre` (images × C × plane)
    /// at the flat positions image·plane + j listed, and the positions with a 0.
    func naiveMasks(_ pre: [Double], channels: Int, plane: Int, positions: [Int]) -> (distinct: Int, ties: Int) {
        var seen = Set<String>()
        var ties = 0
        for position in positions {
            let (image, j) = (position / plane, position % plane)
            var bits = ""
            var tie = false
            for c in 0..<channels {
                let a = pre[(image * channels + c) * plane + j]
                if a == 0 { tie = true }
                bits += a > 0 ? "1" : "0"
            }
            if tie { ties += 1 } else { seen.insert(bits) }
        }
        return (seen.count, ties)
    }

    /// The masks of W̃_k·p + b̃ = Σ_{i≤k} uᵢσᵢ(vᵢᵀp) + b̃ for k = 1…min(out, patch),
    /// the patches taken from `input` (images × C_in × H × W) by naive loops.
    func naiveTruncatedMasks(_ layer: AffineLayer, input: [Double], positions: [Int]) throws -> [Int] {
        guard case .conv(let spec, let h, let w, let oh, let ow) = layer.kind else { return [] }
        let svd = try SingularValueDecomposition(layer.folded)
        let k = spec.kernelSize
        let plane = oh * ow
        var patches: [[Double]] = []
        for position in positions {
            let (image, j) = (position / plane, position % plane)
            var p: [Double] = []
            for c in 0..<spec.inChannels {
                for ky in 0..<k {
                    for kx in 0..<k {
                        let y = (j / ow) * spec.stride + ky - spec.padding
                        let x = (j % ow) * spec.stride + kx - spec.padding
                        let inside = y >= 0 && y < h && x >= 0 && x < w
                        p.append(inside ? input[((image * spec.inChannels + c) * h + y) * w + x] : 0)
                    }
                }
            }
            patches.append(p)
        }
        // z = Vᵀp per patch, once.
        let coordinates = patches.map { p in
            (0..<svd.rank).map { i in (0..<p.count).reduce(0.0) { $0 + svd.vt[i, $1] * p[$1] } }
        }
        var counts: [Int] = []
        for rank in 1...svd.rank {
            var seen = Set<[Bool]>()
            for z in coordinates {
                var bits: [Bool] = []
                var tie = false
                for c in 0..<layer.folded.rows {
                    var a = layer.bias[c]
                    for i in 0..<rank { a += svd.u[c, i] * svd.singularValues[i] * z[i] }
                    if a == 0 { tie = true }
                    bits.append(a > 0)
                }
                if !tie { seen.insert(bits) }
            }
            counts.append(seen.count)
        }
        return counts
    }

    /// Rule: counts are exact. Every patch of 6 images (and then 40 drawn
    /// patches per layer): the distinct masks of each ReLU-fed conv layer's
    /// W̃p + b̃ equal the sign patterns of NaiveNetwork's unfolded
    /// BatchNorm output at the same positions, and those of each W̃_k·p + b̃
    /// equal naive loops over the layer's naive input; every bound check passes.
    func testResNet8MasksMatchNaiveLoops() throws {
        let (description, naive, floats) = try resnet8()
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: floats)
        let data = images(6)
        let outputs = naive.run(
            images: data.normalizedImages(0..<6).map(Double.init), labels: [Int32](repeating: 0, count: 6), batch: 6,
            parameters: floats.mapValues { $0.map(Double.init) }, training: false
        ).layerOutputs
        for patches in [1_000_000, 40] {
            let options = NetworkAnalysisOptions(
                sweepImages: 0, chunk: 4, threads: 2, gradientImages: 0, maskImages: 6, maskPatches: patches)
            let report = try NetworkAnalyzer(network: network, testSet: data, options: options).run()
            XCTAssertTrue(report.allChecksPassed, "\(report.failedChecks.map { "\($0.id) = \($0.value)" })")
            XCTAssertEqual(
                report.layers.filter { $0.reluMasks != nil }.map(\.name),
                ["conv1", "layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1"])
            XCTAssertFalse(report.phasesNotRun.contains { $0.phase == "6" })
            for (index, record) in report.layers.enumerated() {
                guard let m = record.reluMasks else { continue }
                let layer = network.layers[index]
                guard case .conv(let spec, _, _, let oh, let ow) = layer.kind else { return XCTFail(layer.name) }
                let plane = oh * ow
                let positions = MaskPhase.samplePositions(
                    pool: 6 * plane, count: patches, seed: 0, stream: UInt64(index))
                XCTAssertEqual(positions.count, min(patches, 6 * plane))
                XCTAssertEqual(Set(positions).count, positions.count)
                XCTAssertEqual([m.patches, m.pool, m.images], [positions.count, 6 * plane, 6], layer.name)
                let full = naiveMasks(
                    outputs[layer.outputRow], channels: spec.outChannels, plane: plane, positions: positions)
                XCTAssertEqual(m.distinctMasks, full.distinct, "\(layer.name), \(patches) patches")
                XCTAssertEqual(m.patchesOnAHyperplane, full.ties, layer.name)
                XCTAssertGreaterThan(m.distinctMasks, 1, layer.name)
                let input = layer.inputRow.map { outputs[$0] } ?? data.normalizedImages(0..<6).map(Double.init)
                XCTAssertEqual(
                    m.truncatedDistinctMasks, try naiveTruncatedMasks(layer, input: input, positions: positions),
                    "\(layer.name), \(patches) patches")
                XCTAssertEqual(m.boundKind, "affine")
                XCTAssertEqual(m.ranks, min(spec.outChannels, spec.inChannels * 9))
                XCTAssertEqual(m.ranksAboveTheBound, [])
            }
        }
    }

    /// Mask options out of range are refused, naming them.
    func testBadMaskOptionsAreRefused() throws {
        let (description, _, floats) = try resnet8()
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: floats)
        for options in [
            NetworkAnalysisOptions(sweepImages: 0, maskPatches: 0),
            NetworkAnalysisOptions(sweepImages: 0, maskImages: -1),
        ] {
            XCTAssertThrowsError(try NetworkAnalyzer(network: network, testSet: images(2), options: options).run()) {
                XCTAssertTrue("\($0)".contains("mask images must be ≥ 0 and mask patches positive"), "\($0)")
            }
        }
    }

    /// C(n, k) = 2·Σ_{j<k} binom(n−1, j) through the origin: C(3, 2) = 6,
    /// C(8, 8) = 2⁸; Σ_{j≤k} binom(n, j) for affine ones: 7 for (3, 2), 2⁶⁴
    /// for (64, 64); both agree with the integer ``coverBound(units:rank:)``.
    func testRegionBoundOnKnownValues() {
        XCTAssertEqual(regionBound(units: 3, rank: 2, throughOrigin: true), 6)
        XCTAssertEqual(regionBound(units: 3, rank: 2, throughOrigin: false), 7)
        XCTAssertEqual(regionBound(units: 8, rank: 8, throughOrigin: true), 256)
        // Above 2⁵³ the float64 sum rounds.
        XCTAssertEqual(regionBound(units: 64, rank: 64, throughOrigin: false), pow(2, 64), accuracy: 1e-12 * pow(2, 64))
        XCTAssertEqual(regionBound(units: 5, rank: 1, throughOrigin: false), 6)
        for n in 1...12 {
            for k in 1...n {
                XCTAssertEqual(
                    regionBound(units: n, rank: k, throughOrigin: true), Double(coverBound(units: n, rank: k)))
            }
        }
    }

    /// A census whose count at rank 2 exceeds the bound is reported at
    /// rank 2, and one bounded by its patch count at rank 1 (3 patches off
    /// the hyperplanes, 4 masks): the layer's bound check fails with 2
    /// ranks; the untruncated check fails by the excess over min(patches,
    /// bound) and passes at the bound.
    func testTheBoundChecksCanFail() {
        var m = LayerMaskCensus(
            layer: "x", units: 3, numericalRank: 3, images: 1, pool: 10, patches: 10, seed: 0, boundKind: "affine",
            bound: [4, 7, 8], distinctMasks: 9, patchesOnAHyperplane: 0, boundAtRank: 8,
            truncatedDistinctMasks: [4, 8, 8], truncatedPatchesOnAHyperplane: [7, 0, 0])
        XCTAssertEqual(m.ranksAboveTheBound, [1, 2])
        var checks = MaskPhase.checks(m)
        XCTAssertEqual(checks.map(\.id), ["x.masks-bound", "x.masks-full-bound"])
        XCTAssertEqual(checks.map(\.value), [2, 1])
        XCTAssertEqual(checks.map(\.passed), [false, false])
        m.truncatedDistinctMasks = [3, 7, 8]
        m.distinctMasks = 8
        checks = MaskPhase.checks(m)
        XCTAssertEqual(checks.map(\.passed), [true, true])
    }

    /// TinyConvNet (no bias: Cover's linear bound) over every patch of the
    /// fixture's test set: the counts equal today's ``Analyzer``'s test-set
    /// censuses of W_k·p and of W·p (up to the mask 0 of patches on a
    /// hyperplane, which today's census counts), and the bound its Cover bound.
    func testTinyConvNetMatchesTheAnalyzer() throws {
        let shared = try AnalyzerFixtureTests.shared.get()
        let w = shared.weights
        let network = try FoldedNetwork(
            BuiltinModels.tinyConvNet(), input: .map(channels: 1, height: 28, width: 28), classes: 10,
            tensors: ["conv1.weight": w.conv1, "conv2.weight": w.conv2, "fc.weight": w.fcWeight, "fc.bias": w.fcBias])
        let options = NetworkAnalysisOptions(
            sweepImages: 0, threads: 2, gradientImages: 0, maskImages: shared.test.count, maskPatches: 10_000_000)
        let report = try NetworkAnalyzer(network: network, testSet: shared.test, options: options).run()
        XCTAssertTrue(report.allChecksPassed, "\(report.failedChecks.map { "\($0.id) = \($0.value)" })")
        let masked = report.layers.compactMap(\.reluMasks)
        XCTAssertEqual(masked.map(\.layer), ["conv1", "conv2"])
        for (m, today) in zip(masked, shared.report.reluRegions) {
            XCTAssertEqual(m.boundKind, "linear")
            XCTAssertEqual(m.patches, today.testSetPatches.patches)
            // Today's census gives a patch on a hyperplane (an all-zero conv2 patch, W·p = 0) the mask 0,
            // a mask the other patches may or may not have; here such patches are counted apart.
            let extra = today.testSetPatches.distinctMasks - m.distinctMasks
            XCTAssertTrue(m.patchesOnAHyperplane > 0 ? (0...1).contains(extra) : extra == 0, "\(m.layer): \(extra)")
            XCTAssertEqual(m.truncatedDistinctMasks, today.truncatedTestSetPatches.distinctMasks, m.layer)
            XCTAssertEqual(m.truncatedPatchesOnAHyperplane, today.truncatedTestSetPatches.patchesOnAHyperplane)
            XCTAssertEqual(m.bound, Array(today.coverBound.prefix(m.ranks).map(Double.init)))
        }
    }
}
