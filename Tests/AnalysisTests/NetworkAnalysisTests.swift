import Analysis
import Foundation
import Models
import NetIO
import TestSupport
import XCTest

/// A network under test computed by TestSupport's ``NaiveNetwork`` (naive
/// float64 loops over the unfolded description, BatchNorm in eval mode),
/// rounded to float32 as a device returns it; optionally with one row's
/// output perturbed.
final class NaiveNetworkUnderTest: DifferentiableNetworkUnderTest {
    let naive: NaiveNetwork
    let parameters: [String: [Double]]
    var outputs: [[Double]] = []
    private var lastImages: (values: [Double], count: Int) = ([], 0)
    /// Multiplies every input gradient (1: none).
    var gradientScale: Float = 1
    /// Added to every value of this summary row's output.
    var corruption: (row: Int, amount: Float)?

    init(_ naive: NaiveNetwork, parameters: [String: [Double]]) {
        self.naive = naive
        self.parameters = parameters
    }

    func forward(normalizedImages: [Float], count: Int) throws -> [Float] {
        let r = naive.run(
            images: normalizedImages.map(Double.init), labels: [Int32](repeating: 0, count: count), batch: count,
            parameters: parameters, training: false)
        outputs = r.layerOutputs
        lastImages = (normalizedImages.map(Double.init), count)
        return r.logits.map(Float.init)
    }

    func inputGradient(cotangent: [Float]) throws -> [Float] {
        naive.inputGradient(
            images: lastImages.values, cotangent: cotangent.map(Double.init), batch: lastImages.count,
            parameters: parameters
        ).map { Float($0) * gradientScale }
    }

    func output(row: Int) throws -> [Float] {
        var values = outputs[row].map(Float.init)
        if let corruption, corruption.row == row { values = values.map { $0 + corruption.amount } }
        return values
    }
}

/// The per-layer analysis against independent references: the folded
/// float64 network against ``NaiveNetwork`` (conv, then BatchNorm, unfolded),
/// phase 2 on a matrix with known singular values, the failures of bad
/// weights, and TinyConvNet's numbers against today's ``Analyzer``.
final class NetworkAnalysisTests: XCTestCase, SmallResNetFixture {
    /// Rule: the folded float64 network's logits and every folded layer's
    /// output (conv then BatchNorm, one affine map) equal NaiveNetwork's
    /// unfolded eval-mode outputs within 1e-9 absolute (both float64; they
    /// differ by rounding and by NaiveNetwork's float32 ε, 2.5e-13 relative).
    func testFoldedForwardMatchesNaiveNetwork() throws {
        let (description, naive, floats) = try resnet8()
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: floats)
        XCTAssertEqual(network.layers.count, 10)  // 7 convs + 2 downsample convs + fc
        XCTAssertEqual(network.layers.compactMap(\.batchNorm).count, 9)
        let data = images(6)
        let x = data.normalizedImages(0..<6).map(Double.init)
        var outputs = [[Double]](repeating: [], count: network.layers.count)
        let logits = HostNetworkForward.folded(network).logits(x, batch: 6, record: { outputs[$0] = $1 })
        let reference = naive.run(
            images: x, labels: [Int32](repeating: 0, count: 6), batch: 6,
            parameters: floats.mapValues { $0.map(Double.init) }, training: false)
        XCTAssertLessThan(maxAbsoluteDifference(logits, reference.logits), 1e-9)
        for (l, layer) in network.layers.enumerated() {
            XCTAssertLessThan(
                maxAbsoluteDifference(outputs[l], reference.layerOutputs[layer.outputRow]), 1e-9, layer.name)
        }
        // The downsample conv is stride 2, pad 0; its folded BatchNorm is its own.
        let down = try XCTUnwrap(network.layers.first { $0.name == "layer2.0.downsample.0" })
        XCTAssertEqual(down.batchNorm, "layer2.0.downsample.1")
    }

    /// A conv with its own bias folded with its BatchNorm (b̃ = β + s·(b − μ)),
    /// a conv with a bias and no BatchNorm (b̃ = b), max-pool, and a residual
    /// block without a ReLU after its add, against NaiveNetwork (rule as above).
    func testFoldingWithConvBiasesAgainstNaiveNetwork() throws {
        func conv(_ i: Int, _ o: Int, stride: Int = 1, padding: Int = 1) -> LayerKind {
            .conv(
                Conv2dSpec(inChannels: i, outChannels: o, kernelSize: 3, stride: stride, padding: padding, bias: true))
        }
        let description = NetworkDescription(
            name: "biased",
            layers: [
                LayerDescription(conv(2, 5, stride: 2), name: "c1"),
                LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 5)), name: "b1"),
                LayerDescription(.relu),
                LayerDescription(
                    .residual(
                        ResidualBlockSpec(
                            body: [LayerDescription(conv(5, 5), name: "c")], shortcut: .identity, reluAfterAdd: false)),
                    name: "block"),
                LayerDescription(conv(5, 4, padding: 0), name: "c2"),
                LayerDescription(.maxPool2),
                LayerDescription(.flatten),
                LayerDescription(.linear(LinearSpec(inFeatures: 4, outFeatures: 3)), name: "fc"),
            ])
        let naive = try NaiveNetwork(description, input: (2, 9, 9), classes: 3)
        let floats = naive.sampleParameters(seed: 11).mapValues { $0.map(Float.init) }
        let network = try FoldedNetwork(
            description, input: .map(channels: 2, height: 9, width: 9), classes: 3, tensors: floats)
        XCTAssertEqual(network.layers.map(\.batchNorm), ["b1", nil, nil, nil])
        var random = SeededRandom(seed: 2)
        let x = (0..<(4 * 2 * 81)).map { _ in Double(random.uniform(2)) }
        var outputs = [[Double]](repeating: [], count: network.layers.count)
        let logits = HostNetworkForward.folded(network).logits(x, batch: 4, record: { outputs[$0] = $1 })
        let reference = naive.run(
            images: x, labels: [0, 1, 2, 0], batch: 4, parameters: floats.mapValues { $0.map(Double.init) },
            training: false)
        XCTAssertLessThan(maxAbsoluteDifference(logits, reference.logits), 1e-9)
        for (l, layer) in network.layers.enumerated() {
            XCTAssertLessThan(
                maxAbsoluteDifference(outputs[l], reference.layerOutputs[layer.outputRow]), 1e-9, layer.name)
        }
    }

    /// Phase 9's measured ‖∂logits/∂x‖₂: the largest over the images equals
    /// σ_max of that image's Jacobian by central differences of the host's
    /// float64 folded network (1e-6 relative), lies below the Lipschitz
    /// bound (a passed check), and a gradient 10⁶ times too large fails
    /// that check.
    func testMeasuredInputGradientMatchesFiniteDifferencesAndTheBoundCheckCanFail() throws {
        let (network, device) = try resnet8UnderTest()
        let options = NetworkAnalysisOptions(
            images: 6, sweepImages: 4, deviceBatch: 4, chunk: 3, threads: 2, gradientImages: 6)
        let data = images(6)
        let report = try NetworkAnalyzer(network: network, testSet: data, options: options).run(device: device)
        let g = try XCTUnwrap(report.operators.measuredGradient)
        XCTAssertEqual(g.images, 6)
        XCTAssertTrue(report.allChecksPassed, "\(report.failedChecks.map { "\($0.id) = \($0.value)" })")
        XCTAssertTrue(report.checks.contains { $0.id == "network.gradient-within-bound" })
        XCTAssertEqual(g.slack, report.operators.networkBound / g.maxNorm, accuracy: 1e-12 * g.slack)

        // The Jacobian of image argmax by central differences, h = 1e-6.
        let x = data.normalizedImages([g.argmaxImage]).map(Double.init)
        let forward = HostNetworkForward.folded(network)
        var jacobian = [Double](repeating: 0, count: 10 * x.count)
        for i in x.indices {
            var plus = x
            var minus = x
            plus[i] += 1e-6
            minus[i] -= 1e-6
            let up = forward.logits(plus, batch: 1)
            let down = forward.logits(minus, batch: 1)
            for k in 0..<10 { jacobian[k * x.count + i] = (up[k] - down[k]) / 2e-6 }
        }
        let sigma = try SingularValueDecomposition(Matrix(rows: 10, columns: x.count, values: jacobian))
            .singularValues[0]
        XCTAssertEqual(g.maxNorm, sigma, accuracy: 1e-6 * sigma)

        device.gradientScale = 1e6
        let corrupted = try NetworkAnalyzer(network: network, testSet: data, options: options).run(device: device)
        XCTAssertEqual(corrupted.failedChecks.map(\.id), ["network.gradient-within-bound"])
    }

    /// Phase 9 with dense SVDs beyond the default's 2,048 columns: at 2,304
    /// the first stage's operators (16×12×12 inputs, none by default) get all
    /// their singular values, each σ_max inside its norm bracket (a check
    /// that passes), and the report records the limit used.
    func testDenseOperatorColumnsBeyondTheDefault() throws {
        let (network, device) = try resnet8UnderTest()
        let options = NetworkAnalysisOptions(
            sweepImages: 0, deviceBatch: 7, chunk: 3, threads: 2, gradientImages: 0, dataAwareImages: 0,
            maskImages: 0, regionPairs: 0, denseOperatorColumns: 2_304)
        let report = try NetworkAnalyzer(network: network, testSet: images(8), options: options).run(device: device)
        XCTAssertTrue(report.allChecksPassed, "\(report.failedChecks.map { "\($0.id) = \($0.value)" })")
        XCTAssertEqual(report.operators.denseColumnLimit, 2_304)
        for l in report.operators.layers {
            XCTAssertNotNil(l.denseSingularValues, l.name)
            XCTAssertTrue(report.checks.contains { $0.id == "\(l.name).dense-in-bracket" }, l.name)
        }
        XCTAssertTrue(report.operators.layers.contains { $0.inputShape.reduce(1, *) > OperatorPhase.denseColumnLimit })
    }

    /// Against the naive network as the network under test: every check
    /// passes; a 1e-3 error in one layer's output fails that layer's check
    /// and only that one.
    func testAnalysisChecksPassAndCatchALayerError() throws {
        let (network, device) = try resnet8UnderTest()
        let options = NetworkAnalysisOptions(sweepImages: 8, deviceBatch: 7, chunk: 3, threads: 2)
        let data = images(20)
        let report = try NetworkAnalyzer(network: network, testSet: data, options: options).run(device: device)
        XCTAssertTrue(report.allChecksPassed, "\(report.failedChecks.map { "\($0.id) = \($0.value)" })")
        XCTAssertEqual(report.schemaVersion, 6)
        // Phase 9's regions along lines: 2 same-class and 2 different-class segments, their checks passed.
        XCTAssertEqual(report.regions?.segments.count, 4)
        XCTAssertEqual(report.regions?.sampled.count, 2)
        XCTAssertTrue(report.checks.contains { $0.id == "regions.sampled-changes-bracketed" })
        XCTAssertEqual(report.layers.map(\.name).first, "conv1")
        XCTAssertEqual(report.layers.last?.kind, "linear")
        XCTAssertEqual(report.comparison.images, 20)
        XCTAssertEqual(report.comparison.foldedVersusDevicePredictionMismatches, 0)
        // Phase 9: every conv layer bracketed; the dense SVD exactly where the input has at most 2,048
        // values (layer1's 16×12×12 = 2,304 has none), its σ_max inside the bracket (a passed check).
        XCTAssertEqual(report.operators.layers.count, report.layers.count - 1)
        for l in report.operators.layers {
            XCTAssertEqual(l.denseSingularValues != nil, l.inputShape.reduce(1, *) <= 2048, l.name)
        }
        XCTAssertTrue(report.checks.contains { $0.id == "conv1.dense-in-bracket" })
        XCTAssertTrue(report.checks.contains { $0.id == "layer3.0.conv2.dense-in-bracket" })
        XCTAssertEqual(report.operators.blocks.count, 3)
        XCTAssertGreaterThan(report.operators.networkBound, 0)
        // Phase 5: every k of the 16-rank layers, the grid for the 32- and 64-rank ones.
        let l3 = try XCTUnwrap(report.layers.first { $0.name == "layer3.0.conv2" })
        XCTAssertEqual(l3.truncation.map(\.k), [1, 2, 4, 8, 16, 32, 64])
        XCTAssertEqual(report.thresholds.map(\.energy), [0.90, 0.95, 0.99, 0.999])
        // Folded σ differs from the unfolded one when the scale is not 1.
        XCTAssertNotEqual(report.layers[0].sigma, report.layers[0].unfoldedSigma)
        let json = try NetworkAnalysisReport(jsonData: report.jsonData())
        XCTAssertEqual(json, report)

        // Row of layer1.0.bn2's output: the device's layer1.0.conv2 (+bn2) is off by 1e-3.
        let target = try XCTUnwrap(network.layers.first { $0.name == "layer1.0.conv2" })
        device.corruption = (target.outputRow, 1e-3)
        let bad = try NetworkAnalyzer(
            network: network, testSet: data, options: NetworkAnalysisOptions(sweepImages: 0, threads: 2)
        ).run(device: device)
        XCTAssertEqual(bad.failedChecks.map(\.id), ["layer1.0.conv2.device"])
        let value = try XCTUnwrap(bad.checks.first { $0.id == "layer1.0.conv2.device" }?.value)
        XCTAssertEqual(value, 1e-3, accuracy: 1e-6)
    }

    /// The forward pass does not depend on how images are grouped: each
    /// image alone gives bit for bit the logits and layer outputs it gets in
    /// a batch of 7 (every output is one dot product per entry, whatever the
    /// batch or the block of patches). Rule: exact equality.
    func testForwardIsTheSameImageByImageAndInABatch() throws {
        let (description, _, floats) = try resnet8()
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: floats)
        let forward = HostNetworkForward.folded(network)
        let x = images(7).normalizedImages(0..<7).map(Double.init)
        var outputs = [[Double]](repeating: [], count: network.layers.count)
        let logits = forward.logits(x, batch: 7, record: { outputs[$0] = $1 })
        for i in 0..<7 {
            let size = network.inputSize
            var alone = [[Double]](repeating: [], count: network.layers.count)
            let one = forward.logits(Array(x[(i * size)..<((i + 1) * size)]), batch: 1, record: { alone[$0] = $1 })
            XCTAssertEqual(one, Array(logits[(i * 10)..<((i + 1) * 10)]), "image \(i)")
            for (l, layer) in network.layers.enumerated() {
                let n = layer.outputSize
                XCTAssertEqual(alone[l], Array(outputs[l][(i * n)..<((i + 1) * n)]), "image \(i) \(layer.name)")
            }
        }
    }

    /// Phase 5 restarts each variant at the truncated layer's block and
    /// takes the outputs of the block's layers that do not depend on it from
    /// the folded pass. Rule: every accuracy equals the count from a whole
    /// forward pass of the truncated network through the public interface
    /// (all images in one batch, from the first step), exactly.
    func testSweepAccuraciesEqualWholePasses() throws {
        let (description, _, floats) = try resnet8()
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: floats)
        let count = 30
        let data = images(count, seed: 11)
        let options = NetworkAnalysisOptions(
            sweepImages: count, chunk: 4, threads: 2, gradientImages: 0, dataAwareImages: 0, maskImages: 0)
        let report = try NetworkAnalyzer(network: network, testSet: data, options: options).run()
        let x = data.normalizedImages(0..<count).map(Double.init)
        let svds = try network.layers.map { try SingularValueDecomposition($0.folded) }
        func accuracy(_ operators: [LayerOperator]) -> Double {
            let logits = HostNetworkForward(network, operators: operators).logits(x, batch: count)
            var correct = 0
            for i in 0..<count {
                let row = Array(logits[(i * 10)..<((i + 1) * 10)])
                if row.firstIndex(of: row.max()!) == Int(data.labels[i]) { correct += 1 }
            }
            return Double(correct) / Double(count)
        }
        let dense = network.layers.map { LayerOperator.dense($0.folded) }
        for (l, layer) in report.layers.enumerated() {
            XCTAssertFalse(layer.truncation.isEmpty, layer.name)
            for t in layer.truncation {
                var ops = dense
                ops[l] = .truncated(svds[l], rank: t.k)
                XCTAssertEqual(t.accuracy, accuracy(ops), "\(layer.name) k = \(t.k)")
            }
        }
        for t in report.thresholds {
            XCTAssertEqual(
                t.accuracy, accuracy(svds.enumerated().map { .truncated($0.element, rank: t.ranks[$0.offset]) }),
                "energy \(t.energy)")
        }
    }

    /// Phase 2 on a layer with known singular values 3, 2, 1: energies
    /// 9/14, 13/14, 1; 90% rank 2, 95% and 99% rank 3; stable rank 14/9;
    /// entropy rank exp(−Σ p log p) with p = (1/2, 1/3, 1/6).
    func testRanksOfAKnownMatrix() throws {
        let description = NetworkDescription(
            name: "known",
            layers: [
                LayerDescription(.flatten), LayerDescription(.linear(LinearSpec(inFeatures: 4, outFeatures: 3))),
            ])
        // Rows permuted and signs flipped: still σ = 3, 2, 1.
        let weight: [Float] = [0, 0, -1, 0, 3, 0, 0, 0, 0, -2, 0, 0]
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 2, width: 2), classes: 3,
            tensors: ["1.weight": weight, "1.bias": [0.5, -0.5, 0]])
        var data = images(4, side: 2)
        data.labels = [0, 1, 2, 0]
        let report = try NetworkAnalyzer(
            network: network, testSet: data, options: NetworkAnalysisOptions(sweepImages: 4, threads: 1)
        ).run()
        let layer = try XCTUnwrap(report.layers.first)
        XCTAssertEqual(layer.name, "1")
        XCTAssertEqual(layer.matrixShape, [3, 4])
        for (s, e) in zip(layer.sigma, [3.0, 2, 1]) { XCTAssertEqual(s, e, accuracy: 1e-14) }
        for (c, e) in zip(layer.cumulativeEnergy, [9.0 / 14, 13.0 / 14, 1]) { XCTAssertEqual(c, e, accuracy: 1e-14) }
        XCTAssertEqual([layer.rank90, layer.rank95, layer.rank99], [2, 3, 3])
        XCTAssertEqual(layer.stableRank, 14.0 / 9, accuracy: 1e-14)
        let p = [1.0 / 2, 1.0 / 3, 1.0 / 6]
        XCTAssertEqual(layer.entropyEffectiveRank, exp(-p.map { $0 * log($0) }.reduce(0, +)), accuracy: 1e-13)
        XCTAssertEqual(layer.truncation.map(\.k), [1, 2, 3])
        XCTAssertTrue(report.allChecksPassed, "\(report.failedChecks.map(\.id))")
    }

    /// Bad weights name their tensor: a missing BatchNorm buffer, a running
    /// variance ≤ 0, a NaN.
    func testBadWeightsNameTheTensor() throws {
        let (description, _, floats) = try resnet8()
        func fold(_ t: [String: [Float]]) throws {
            _ = try FoldedNetwork(description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: t)
        }
        var missing = floats
        missing["layer1.0.bn1.running_mean"] = nil
        XCTAssertThrowsError(try fold(missing)) {
            XCTAssertEqual($0 as? NetworkAnalysisError, .missingTensor("layer1.0.bn1.running_mean"))
        }
        var variance = floats
        variance["layer2.0.bn2.running_var"]![5] = 0
        XCTAssertThrowsError(try fold(variance)) {
            XCTAssertEqual(
                $0 as? NetworkAnalysisError,
                .nonPositiveVariance(tensor: "layer2.0.bn2.running_var", channel: 5, value: 0))
        }
        var nan = floats
        nan["fc.weight"]![7] = .nan
        XCTAssertThrowsError(try fold(nan)) {
            guard case .nonFinite(let name, let index, _) = $0 as? NetworkAnalysisError else {
                return XCTFail("\($0)")
            }
            XCTAssertEqual(name, "fc.weight")
            XCTAssertEqual(index, 7)
        }
    }

    /// TinyConvNet through the general path gives today's ``Analyzer``'s
    /// numbers: per layer σ, energies, 90/95/99% ranks, stable and entropy
    /// ranks (the matrices reshaped independently: ConvMatrices against the
    /// description's walk), the host accuracy, and phase 5's one-layer
    /// accuracies against the (k₁, k₂) sweep at the other layer's full rank.
    func testTinyConvNetMatchesTheAnalyzer() throws {
        let shared = try AnalyzerFixtureTests.shared.get()
        let w = shared.weights
        let network = try FoldedNetwork(
            BuiltinModels.tinyConvNet(), input: .map(channels: 1, height: 28, width: 28), classes: 10,
            tensors: ["conv1.weight": w.conv1, "conv2.weight": w.conv2, "fc.weight": w.fcWeight, "fc.bias": w.fcBias])
        let report = try NetworkAnalyzer(
            network: network, testSet: shared.test, options: NetworkAnalysisOptions(threads: 2)
        ).run()
        XCTAssertTrue(report.allChecksPassed, "\(report.failedChecks.map { "\($0.id) = \($0.value)" })")
        XCTAssertEqual(report.layers.map(\.name), ["conv1", "conv2", "fc"])
        let today = shared.report
        XCTAssertEqual(report.comparison.hostAccuracy, today.testAccuracy)
        for (l, s) in zip(report.layers, today.spectra) {
            XCTAssertEqual(l.name, s.layer)
            XCTAssertEqual(l.matrixShape, s.matrixShape)
            XCTAssertLessThan(maxAbsoluteDifference(l.sigma, s.singularValues), 1e-12)
            XCTAssertLessThan(maxAbsoluteDifference(l.cumulativeEnergy, s.cumulativeEnergy), 1e-12)
            XCTAssertEqual(
                [l.rank90, l.rank95, l.rank99],
                [s.componentsFor90PercentEnergy, s.componentsFor95PercentEnergy, s.componentsFor99PercentEnergy])
            XCTAssertEqual(l.stableRank, s.stableRank, accuracy: 1e-12)
            XCTAssertEqual(l.entropyEffectiveRank, s.entropyEffectiveRank, accuracy: 1e-12)
            XCTAssertEqual(l.unfoldedSigma, l.sigma)
        }
        for (l, low) in zip(report.layers, today.lowRank.layers) {
            XCTAssertEqual(l.truncation.count, low.rows.count)
            for (t, row) in zip(l.truncation, low.rows) {
                XCTAssertEqual(t.k, row.rank)
                XCTAssertEqual(t.accuracy, try XCTUnwrap(row.testAccuracy), "\(l.name) k = \(t.k)")
            }
        }
    }
}
