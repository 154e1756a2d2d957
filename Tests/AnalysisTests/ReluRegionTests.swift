import Analysis
import TestSupport
import XCTest

final class ReluRegionTests: XCTestCase {
    func testMasksOfHandMadePatches() {
        // W = [[1, 0], [0, 1], [1, 1]]: three units on ℝ².
        let w = Matrix(rows: 3, columns: 2, values: [1, 0, 0, 1, 1, 1])
        // Patches as columns: (1,1) → a = (1,1,2) → 111; (−1,2) → (−1,2,1) → 011;
        // (0,0) → all zero → 000 (0 is not > 0); (1,−1) → (1,−1,0) → 100;
        // (2,2) → 111 again.
        let patches = Matrix(
            rows: 2, columns: 5,
            values: [
                1, -1, 0, 1, 2,
                1, 2, 0, -1, 2,
            ])
        let census = MaskCensus(weights: w, patches: patches, mostCommon: 10)
        XCTAssertEqual(census.patches, 5)
        XCTAssertEqual(census.distinctMasks, 4)
        XCTAssertEqual(census.mostCommon.map(\.bits), ["111", "000", "100", "011"])
        XCTAssertEqual(census.mostCommon.map(\.count), [2, 1, 1, 1])
        XCTAssertEqual(census.mostCommon.map(\.mask), [7, 0, 1, 6])
        XCTAssertEqual(census.mostCommon[0].fraction, 0.4, accuracy: 1e-15)
        XCTAssertEqual(ReluMask.mask(preActivation: [0, 0.5, -1, 3]), 0b1010)
        XCTAssertEqual(ReluMask.bits(0b1010, units: 4), "0101")
    }

    func testCoverBoundSmallCasesByHand() {
        XCTAssertEqual(coverBound(units: 1, rank: 1), 2)
        XCTAssertEqual(coverBound(units: 2, rank: 1), 2)
        XCTAssertEqual(coverBound(units: 2, rank: 2), 4)
        XCTAssertEqual(coverBound(units: 3, rank: 2), 6)  // 2·(1 + 2)
        XCTAssertEqual(coverBound(units: 3, rank: 3), 8)
        XCTAssertEqual(coverBound(units: 4, rank: 2), 8)  // 2·(1 + 3)
        XCTAssertEqual(coverBound(units: 4, rank: 3), 14)  // 2·(1 + 3 + 3)
        XCTAssertEqual(coverBound(units: 5, rank: 3), 22)  // 2·(1 + 4 + 6)
        XCTAssertEqual(coverBound(units: 8, rank: 8), 256)
        XCTAssertEqual(coverBound(units: 16, rank: 16), 65536)
        XCTAssertEqual(coverBound(units: 16, rank: 1), 2)
    }

    func testCoverBoundIsReachedByLinesInThePlane() {
        // n generic lines through the origin of ℝ² cut it into 2n regions =
        // coverBound(n, 2); dense random points find every one.
        for n in [3, 5] {
            let w = Matrix(rows: n, columns: 2, values: randomFloats(2 * n, seed: UInt64(n)).map(Double.init))
            let points = Matrix(rows: 2, columns: 20000, values: randomFloats(40000, seed: 99).map(Double.init))
            XCTAssertEqual(
                MaskCensus(weights: w, patches: points, mostCommon: 0).distinctMasks, coverBound(units: n, rank: 2))
        }
    }
}
