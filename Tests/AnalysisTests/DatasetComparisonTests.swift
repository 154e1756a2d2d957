import Analysis
import Foundation
import Models
import NetIO
import TestSupport
import XCTest

/// A study over datasets: the per-layer aggregation (mean ± sd over the
/// seeds, per dataset, side by side) against hand-computed values, and the
/// per-layer numbers read from a real per-layer analysis.
final class DatasetComparisonTests: XCTestCase {
    func metric(_ key: String, _ value: Double) -> StudyMetric { StudyMetric(key: key, label: key, value: value) }

    /// Dataset a, seeds 0, 1, 2: layer1.0.conv1 rank95 3, 4, 8: mean 5, sd
    /// √(((−2)² + (−1)² + 3²)/2) = √7; accuracy at k = 1: 0.5, 0.6, 0.7
    /// (mean 0.6, sd 0.1), at k = 10 and 2 given out of order. Dataset b:
    /// rank95 2, 2, 2 (sd 0); its masks missing in seed 2, so not summarised.
    func testAggregationAgainstHandComputedValues() throws {
        let a = [
            [
                metric("test_accuracy", 0.9), metric("layer1.0.conv1/rank95", 3),
                metric("layer1.0.conv1/accuracy_at_rank/10", 0.9), metric("layer1.0.conv1/accuracy_at_rank/2", 0.8),
                metric("layer1.0.conv1/accuracy_at_rank/1", 0.5), metric("fc/operator_norm", 1.5),
            ],
            [
                metric("test_accuracy", 0.8), metric("layer1.0.conv1/rank95", 4),
                metric("layer1.0.conv1/accuracy_at_rank/10", 0.9), metric("layer1.0.conv1/accuracy_at_rank/2", 0.8),
                metric("layer1.0.conv1/accuracy_at_rank/1", 0.6), metric("fc/operator_norm", 2.5),
            ],
            [
                metric("test_accuracy", 0.7), metric("layer1.0.conv1/rank95", 8),
                metric("layer1.0.conv1/accuracy_at_rank/10", 0.9), metric("layer1.0.conv1/accuracy_at_rank/2", 0.8),
                metric("layer1.0.conv1/accuracy_at_rank/1", 0.7), metric("fc/operator_norm", 3.5),
            ],
        ]
        let b = (0..<3).map { seed in
            [metric("layer1.0.conv1/rank95", 2)]
                + (seed < 2 ? [metric("layer1.0.conv1/distinct_masks", Double(10 + seed))] : [])
        }
        let c = DatasetComparison(
            model: "m",
            members: [
                .init(dataset: "a", seeds: [0, 1, 2], metrics: a), .init(dataset: "b", seeds: [0, 1, 2], metrics: b),
            ])
        XCTAssertEqual(c.datasets, ["a", "b"])
        XCTAssertEqual(c.layers.map(\.name), ["layer1.0.conv1", "fc"])
        let rank = try XCTUnwrap(c.layers[0].quantities["rank95"])
        XCTAssertEqual(try XCTUnwrap(rank["a"]).mean, 5, accuracy: 1e-15)
        XCTAssertEqual(try XCTUnwrap(rank["a"]).standardDeviation, 7.0.squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(try XCTUnwrap(rank["a"]).values, [3, 4, 8])
        XCTAssertEqual(try XCTUnwrap(rank["b"]).mean, 2)
        XCTAssertEqual(try XCTUnwrap(rank["b"]).standardDeviation, 0)
        XCTAssertNil(c.layers[0].quantities["distinct_masks"])
        XCTAssertEqual(c.summaries["b"]?.incomplete, ["layer1.0.conv1/distinct_masks"])
        let curve = try XCTUnwrap(c.layers[0].accuracyVersusRank["a"])
        XCTAssertEqual(curve.map(\.k), [1, 2, 10])
        XCTAssertEqual(curve[0].accuracy.mean, 0.6, accuracy: 1e-15)
        XCTAssertEqual(curve[0].accuracy.standardDeviation, 0.1, accuracy: 1e-15)
        XCTAssertEqual(curve[2].accuracy.standardDeviation, 0)
        XCTAssertNil(c.layers[0].accuracyVersusRank["b"])
        let norm = try XCTUnwrap(c.layers[1].quantities["operator_norm"]?["a"])
        XCTAssertEqual([norm.mean, norm.standardDeviation], [2.5, 1])
        XCTAssertEqual(c.summaries["a"]?.row("test_accuracy")?.summary.mean ?? 0, 0.8, accuracy: 1e-15)
        XCTAssertEqual(try DatasetComparison(jsonData: c.jsonData()), c)
    }

    /// The numbers read from a per-layer analysis of a small ResNet-8 are the
    /// report's own: ranks, stable rank, the dense σ_max or else the power
    /// iteration's value and the Gram upper bound (σ₁ for the linear layer),
    /// the masks of the ReLU-fed layers, every swept k.
    func testLayerMetricsAreTheReportsNumbers() throws {
        let description = BuiltinModels.cifarResNet(blocksPerStage: 1, inputChannels: 1, classes: 10)
        let naive = try NaiveNetwork(description, input: (1, 12, 12), classes: 10)
        let floats = naive.sampleParameters(seed: 3).mapValues { $0.map(Float.init) }
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: floats)
        var random = SeededRandom(seed: 5, stream: 1)
        let pixels = (0..<(8 * 144)).map { _ in UInt8(truncatingIfNeeded: random.next() >> 56) }
        let data = Dataset(
            name: "synthetic/test", count: 8, rows: 12, columns: 12, pixels: pixels, labels: (0..<8).map { UInt8($0) })
        let report = try NetworkAnalyzer(
            network: network, testSet: data,
            options: NetworkAnalysisOptions(sweepImages: 4, threads: 2, gradientImages: 0, maskImages: 2)
        ).run()
        let metrics = Dictionary(LayerStudyMetrics.extract(report).map { ($0.key, $0.value) }, uniquingKeysWith: +)
        XCTAssertEqual(metrics["analysis_accuracy"], report.comparison.hostAccuracy)
        for l in report.layers {
            XCTAssertEqual(metrics["\(l.name)/rank95"], Double(l.rank95))
            XCTAssertEqual(metrics["\(l.name)/rank99"], Double(l.rank99))
            XCTAssertEqual(metrics["\(l.name)/stable_rank"], l.stableRank)
            let o = report.operators.layers.first { $0.name == l.name }
            let norm = l.kind == "linear" ? l.sigma[0] : o?.denseSingularValues?.first ?? o?.bracket.lower
            XCTAssertEqual(metrics["\(l.name)/operator_norm"], norm, l.name)
            XCTAssertEqual(metrics["\(l.name)/operator_norm_upper"], o?.bracket.upper, l.name)
            XCTAssertEqual(metrics["\(l.name)/distinct_masks"], l.reluMasks.map { Double($0.distinctMasks) }, l.name)
            for t in l.truncation { XCTAssertEqual(metrics["\(l.name)/accuracy_at_rank/\(t.k)"], t.accuracy) }
        }
        XCTAssertEqual(metrics.keys.filter { $0.hasSuffix("/distinct_masks") }.count, 4)
    }
}
