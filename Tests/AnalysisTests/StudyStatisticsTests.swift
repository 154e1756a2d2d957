import Analysis
import Foundation
import XCTest

/// The study's statistics against hand-computed values and published
/// t-table quantiles (R's qt to 15 digits), and the extraction of the
/// headline numbers from an analysis.json written by hand.
final class StudyStatisticsTests: XCTestCase {
    /// [1, 2, 3, 4, 5]: mean 3, sd √(10/4) = 1.5811388300841898, the 95 %
    /// interval 3 ± 2.7764451051977987·sd/√5 = [1.0367568385224393, 4.9632431614775605].
    func testSummaryOfFiveValues() {
        let s = SampleSummary([1, 2, 3, 4, 5])
        XCTAssertEqual(s.count, 5)
        XCTAssertEqual(s.mean, 3, accuracy: 1e-15)
        XCTAssertEqual(s.standardDeviation, 1.5811388300841898, accuracy: 1e-15)
        XCTAssertEqual(s.min, 1)
        XCTAssertEqual(s.max, 5)
        XCTAssertEqual(s.interval95[0], 1.0367568385224393, accuracy: 1e-10)
        XCTAssertEqual(s.interval95[1], 4.9632431614775605, accuracy: 1e-10)
        XCTAssertEqual(s.values, [1, 2, 3, 4, 5])
    }

    /// [0.25, 0.5, 1]: mean 0.5833333333333334, sd 0.3818813079129867
    /// (Σ(x − x̄)² = 0.2916666…, over n − 1 = 2); order kept in `values`.
    func testSummaryOfThreeValuesInOrder() {
        let s = SampleSummary([1.0, 0.25, 0.5])
        XCTAssertEqual(s.mean, 0.5833333333333334, accuracy: 1e-15)
        XCTAssertEqual(s.standardDeviation, 0.3818813079129867, accuracy: 1e-15)
        XCTAssertEqual(s.values, [1.0, 0.25, 0.5])
        XCTAssertEqual(s.min, 0.25)
        XCTAssertEqual(s.max, 1.0)
    }

    /// One member: no spread can be estimated, so sd and the interval are NaN.
    func testOneValueHasNoSpread() {
        let s = SampleSummary([0.98])
        XCTAssertEqual(s.mean, 0.98)
        XCTAssertTrue(s.standardDeviation.isNaN)
        XCTAssertTrue(s.interval95.allSatisfy(\.isNaN))
    }

    /// Two-sided 95 % (p = 0.975) and one 90 % quantile, to 1e-9: the table
    /// values qt(0.975, ν) for ν = 1, 4, 9, 30 and qt(0.95, 2).
    func testStudentTQuantilesMatchTheTable() {
        let table: [(p: Double, nu: Double, t: Double)] = [
            (0.975, 1, 12.7062047361747), (0.975, 4, 2.77644510519779), (0.975, 9, 2.26215716279820),
            (0.975, 30, 2.04227245630124), (0.95, 2, 2.91998558035372),
        ]
        for row in table {
            XCTAssertEqual(
                StudentT.quantile(row.p, degreesOfFreedom: row.nu), row.t, accuracy: 1e-9 * row.t,
                "qt(\(row.p), \(row.nu))")
        }
        XCTAssertEqual(StudentT.quantile(0.025, degreesOfFreedom: 4), -2.77644510519779, accuracy: 1e-9)
        // ν = 1 is the Cauchy distribution: P(T ≤ 1) = 3/4 exactly.
        XCTAssertEqual(StudentT.cdf(1, degreesOfFreedom: 1), 0.75, accuracy: 1e-13)
    }

    /// The headline numbers are found by name; an unknown section (phase 9's
    /// kind) is taken whole, less its timings, Booleans and long arrays.
    func testExtractionFromAHandWrittenAnalysis() throws {
        let json = """
            {"testAccuracy": 0.975, "formatVersion": 3, "timings": {"totalSeconds": 9},
             "spectra": [{"layer": "conv1", "singularValues": [3.0, 2.0], "componentsFor95PercentEnergy": 2, "componentsFor99PercentEnergy": 2},
                         {"layer": "conv2", "singularValues": [5.0], "componentsFor95PercentEnergy": 1, "componentsFor99PercentEnergy": 1}],
             "reluRegions": [{"layer": "conv1", "randomTrainingPatches": {"patches": 500, "distinctMasks": 41},
                              "testSetPatches": {"patches": 9000, "distinctMasks": 60}}],
             "lowRank": {"layers": [{"layer": "conv1", "rows": [{"rank": 1, "testAccuracy": 0.5}, {"rank": 2, "testAccuracy": 0.9}]}],
                         "sweep": {"accuracy": [[0.4, 0.6], [0.7, 0.95]], "images": 10, "seconds": 1}},
             "layerOperators": {"layers": [{"layer": "conv1", "operatorNorm": 4.5, "passed": true, "seconds": 2.0,
                                    "long": [\((0..<65).map(String.init).joined(separator: ","))], "short": [1, "nan"]}]}}
            """
        let metrics = try StudyMetrics.extract(analysisJSON: Data(json.utf8))
        let byKey = Dictionary(uniqueKeysWithValues: metrics.map { ($0.key, $0.value) })
        XCTAssertEqual(
            metrics.map(\.key),
            [
                "test_accuracy", "conv1.sigma.1", "conv1.sigma.2", "conv1.components_95", "conv1.components_99",
                "conv2.sigma.1", "conv2.components_95", "conv2.components_99",
                "conv1.distinct_masks.random_patches", "conv1.distinct_masks.test_set",
                "conv1.low_rank_accuracy.1", "conv1.low_rank_accuracy.2", "both.low_rank_accuracy.1",
                "both.low_rank_accuracy.2",
                "layerOperators.layers[conv1].operatorNorm", "layerOperators.layers[conv1].short[0]",
                "layerOperators.layers[conv1].short[1]",
            ])
        XCTAssertEqual(byKey["conv1.sigma.2"], 2)
        XCTAssertEqual(byKey["conv1.distinct_masks.random_patches"], 41)
        XCTAssertEqual(byKey["both.low_rank_accuracy.2"], 0.95)
        XCTAssertEqual(byKey["layerOperators.layers[conv1].operatorNorm"], 4.5)
        XCTAssertTrue(byKey["layerOperators.layers[conv1].short[1]"]!.isNaN)
        XCTAssertEqual(
            metrics.first { $0.key == "conv1.distinct_masks.random_patches" }?.label,
            "conv1 distinct masks, 500 random patches")
    }

    /// A key every member has is summarised; one some lack is listed instead.
    func testSummaryOverMembers() throws {
        let a = [StudyMetric(key: "x", label: "x", value: 1), StudyMetric(key: "y", label: "y", value: 10)]
        let b = [StudyMetric(key: "x", label: "x", value: 3)]
        let summary = StudySummary(seeds: [4, 7], members: [a, b])
        XCTAssertEqual(summary.rows.map(\.key), ["x"])
        XCTAssertEqual(summary.incomplete, ["y"])
        let x = try XCTUnwrap(summary.row("x")).summary
        XCTAssertEqual(x.mean, 2)
        XCTAssertEqual(x.standardDeviation, 2.squareRoot(), accuracy: 1e-15)
        // ν = 1: 2 ± 12.7062047361747·√2/√2.
        XCTAssertEqual(x.interval95[1], 2 + 12.7062047361747, accuracy: 1e-9)
        let decoded = try StudySummary(jsonData: try summary.jsonData())
        XCTAssertEqual(decoded, summary)
    }
}
