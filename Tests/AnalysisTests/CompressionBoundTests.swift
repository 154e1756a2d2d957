import Analysis
import Foundation
import Models
import NetIO
import TestSupport
import XCTest

/// ``CompressionBound``: B(x) ≥ ‖f(x) − f̂(x)‖₂ on a ResNet with BatchNorm,
/// projection shortcuts and global average pooling, whose measured change
/// is checked against TestSupport's ``NaiveNetwork`` (an independent float64
/// interpreter of the unfolded description); exact where nothing follows
/// the changed layer; and a check that fails when the Lipschitz bounds are
/// too small.
final class CompressionBoundTests: XCTestCase {
    func resnet8() throws -> (FoldedNetwork, NaiveNetwork, [String: [Double]]) {
        let description = BuiltinModels.cifarResNet(blocksPerStage: 1, inputChannels: 1, classes: 10)
        let naive = try NaiveNetwork(description, input: (1, 12, 12), classes: 10)
        let parameters = naive.sampleParameters(seed: 3).mapValues { $0.map { Double(Float($0)) } }
        let folded = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10,
            tensors: parameters.mapValues { $0.map(Float.init) })
        return (folded, naive, parameters)
    }

    /// layer1.0.conv1 and layer2.0.downsample.0 truncated (BatchNorm folded):
    /// 0 violations over 40 random images; the compressed logits equal
    /// NaiveNetwork's with the same weights replaced (1e-9 absolute, both
    /// float64); and 1 ≤ B/change.
    func testBoundHoldsOnAResNetAndTheChangeIsTheNaiveNetworksChange() throws {
        let (folded, naive, parameters) = try resnet8()
        var changed: [Int: Matrix] = [:]
        var replaced = parameters
        for (name, rank) in [("layer1.0.conv1", 2), ("layer2.0.downsample.0", 3)] {
            let index = try XCTUnwrap(folded.layers.firstIndex { $0.name == name })
            let layer = folded.layers[index]
            let truncated = try SingularValueDecomposition(layer.folded).truncated(rank: rank)
            changed[index] = truncated
            // The unfolded weight NaiveNetwork needs: diag(1/s)·W̃_r.
            var w = truncated
            for o in 0..<w.rows { for j in 0..<w.columns { w[o, j] /= layer.scale[o] } }
            replaced[name + ".weight"] = w.values
        }
        let lipschitz = try folded.layers.enumerated().map { i, layer in
            try OperatorNormBound.best(layer, matrix: changed[i] ?? layer.folded)
        }
        let bound = CompressionBound(network: folded, changedFolded: changed, lipschitz: lipschitz)
        let count = 40
        let images = randomFloats(count * 144, scale: 2, seed: 9)
        let results = bound.evaluate(images: images, count: count, batch: 7, threads: 2)
        XCTAssertEqual(results.count, count)

        let x = images.map(Double.init)
        let labels = [Int32](repeating: 0, count: count)
        let f = naive.run(images: x, labels: labels, batch: count, parameters: parameters, training: false).logits
        let g = naive.run(images: x, labels: labels, batch: count, parameters: replaced, training: false).logits
        for (i, r) in results.enumerated() {
            let change = (0..<10).reduce(0.0) {
                $0 + (f[i * 10 + $1] - g[i * 10 + $1]) * (f[i * 10 + $1] - g[i * 10 + $1])
            }
            .squareRoot()
            XCTAssertEqual(r.change, change, accuracy: 1e-9 * max(1, change), "image \(i)")
            XCTAssertGreaterThan(r.change, 0)
            XCTAssertFalse(r.violates, "image \(i): B \(r.bound) < change \(r.change)")
            XCTAssertGreaterThanOrEqual(r.bound / r.change, 1)
        }
        let summary = CompressionBoundSummary(results)
        XCTAssertEqual(summary.violations, 0)
        XCTAssertEqual(summary.certifiedButChanged, 0)

        // The same bound with every Lipschitz constant a hundredth: the check fails.
        let tooSmall = CompressionBound(network: folded, changedFolded: changed, lipschitz: lipschitz.map { $0 / 100 })
        XCTAssertGreaterThan(CompressionBoundSummary(tooSmall.evaluate(images: images, count: count)).violations, 0)
    }

    /// Only the last layer changed, and nothing after it: B(x) is the
    /// change itself (relative 1e-12), whatever the Lipschitz bounds are.
    func testBoundIsExactWhenTheLastLayerChanges() throws {
        let (folded, _, _) = try resnet8()
        let last = folded.layers.count - 1
        XCTAssertEqual(folded.layers[last].name, "fc")
        let fc = try SingularValueDecomposition(folded.layers[last].folded).truncated(rank: 4)
        let bound = CompressionBound(
            network: folded, changedFolded: [last: fc], lipschitz: [Double](repeating: 5, count: folded.layers.count))
        for r in bound.evaluate(images: randomFloats(10 * 144, seed: 2), count: 10) {
            XCTAssertEqual(r.bound, r.change, accuracy: 1e-12 * r.change)
        }
    }

    /// The operator-norm bounds are upper bounds: against the dense
    /// operator's σ_max (LAPACK on the explicit matrix) for every conv of
    /// the small ResNet.
    func testOperatorNormBoundsAreAboveTheDenseNorm() throws {
        let (folded, _, _) = try resnet8()
        for layer in folded.layers {
            guard case .conv(let spec, let h, let w, _, _) = layer.kind else { continue }
            let op = try ConvOperator(
                name: layer.name, weight: layer.folded, inChannels: spec.inChannels, kernelHeight: spec.kernelSize,
                kernelWidth: spec.kernelSize, stride: spec.stride, padding: spec.padding, inputHeight: h, inputWidth: w)
            let exact = try op.singularValues()[0]
            let best = try OperatorNormBound.best(layer, matrix: layer.folded)
            XCTAssertGreaterThanOrEqual(best, exact, layer.name)
            XCTAssertGreaterThanOrEqual(try OperatorNormBound.patchCount(layer, matrix: layer.folded), best, layer.name)
        }
    }
}

extension CompressionBoundTests {
    /// The search's bound, from ‖Σ_{j≥k} (s⊙u_j)σ_j(v_jᵀP)‖ in SVD
    /// coordinates, equals ``CompressionBound``'s with the layer truncated directly
    /// (‖(Â − A)h‖ from two forward passes) and the search's Lipschitz
    /// constant, to 1e-9 relative. layer1.0.conv2 has no ReLU or pool right
    /// after it (its BatchNorm is folded, the add follows), so both use the
    /// same local term. The search honours ε and stops at the break-even rank.
    func testSearchBoundMatchesTheDirectBound() throws {
        let (folded, _, _) = try resnet8()
        let index = try XCTUnwrap(folded.layers.firstIndex { $0.name == "layer1.0.conv2" })
        let dense = try folded.layers.map { try OperatorNormBound.best($0, matrix: $0.folded) }
        let count = 12
        let images = randomFloats(count * 144, scale: 2, seed: 4)
        let candidate = RankSelection.Candidate(
            layer: index, breakEvenRank: 14, denseMultiplyAdds: 16 * 144 * 144,
            multiplyAddsPerRank: (144 + 16) * 144)
        let selection = try RankSelection.search(
            network: folded, candidates: [candidate], denseLipschitz: dense, images: images, count: count,
            epsilon: .infinity)
        // With no limit the search walks down to rank 1 in steps of 1 (16/16).
        let rank = try XCTUnwrap(selection.ranks[index])
        XCTAssertEqual(rank, 1)
        var lipschitz = dense
        lipschitz[index] = try XCTUnwrap(selection.lipschitz[index])
        // W's own truncation, then BatchNorm's scale: diag(s)·W_k.
        var applied = try SingularValueDecomposition(folded.layers[index].weight).truncated(rank: rank)
        for o in 0..<applied.rows {
            for j in 0..<applied.columns { applied[o, j] *= folded.layers[index].scale[o] }
        }
        let direct = CompressionBound(network: folded, changedFolded: [index: applied], lipschitz: lipschitz)
            .evaluate(images: images, count: count)
        let mean = direct.reduce(0) { $0 + $1.bound } / Double(count)
        XCTAssertEqual(selection.meanBound, mean, accuracy: 1e-9 * mean)

        // ε between the bounds of ranks 14 and 1: the chosen rank's bound is within it.
        let limited = try RankSelection.search(
            network: folded, candidates: [candidate], denseLipschitz: dense, images: images, count: count,
            epsilon: mean / 2)
        XCTAssertLessThanOrEqual(limited.meanBound, mean / 2)
        XCTAssertGreaterThan(try XCTUnwrap(limited.ranks[index]), 1)
        XCTAssertLessThanOrEqual(try XCTUnwrap(limited.ranks[index]), 14)
    }
}
