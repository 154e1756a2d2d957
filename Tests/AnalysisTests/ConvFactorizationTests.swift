import Analysis
import TestSupport
import XCTest

/// ``ConvFactorization``: the factors' product is the rank-r truncation of
/// the weight matrix, each factor carrying √σ.
final class ConvFactorizationTests: XCTestCase {
    /// W (3, 1, 2, 2) as the 3×4 matrix with rows 3·e₀, 2·e₂, 1·e₃: σ = 3, 2, 1
    /// with right singular vectors e₀, e₂, e₃, so the factors are known exactly.
    func testKnownMatrixFactors() throws {
        var w = [Float](repeating: 0, count: 12)
        w[0] = 3
        w[4 + 2] = 2
        w[8 + 3] = 1
        let f = try ConvFactorization(weight: w, shape: [3, 1, 2, 2], rank: 2, context: "known")
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(f.singularValues, [3.0, 2, 1]), 1e-15)
        let r3 = Float(3).squareRoot()
        let r2 = Float(2).squareRoot()
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(f.first, [r3, 0, 0, 0, 0, 0, r2, 0]), 1e-6)
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(f.second, [r3, 0, 0, r2, 0, 0]), 1e-6)
        XCTAssertEqual(f.droppedEnergy, 1.0 / 14, accuracy: 1e-15)
        XCTAssertEqual(ConvFactorization.rank(keeping: 0.5, of: f.singularValues), 1)
        XCTAssertEqual(ConvFactorization.rank(keeping: 13.0 / 14, of: f.singularValues), 2)
        XCTAssertEqual(ConvFactorization.rank(keeping: 0.93, of: f.singularValues), 3)
        XCTAssertEqual(ConvFactorization.rank(keeping: 1, of: f.singularValues), 3)
    }

    /// A random 16×72 weight: ‖W − second·first‖_F² equals Σ_{i>r} σᵢ² (Eckart–Young)
    /// with σᵢ² the eigenvalues of W·Wᵀ from LAPACK's symmetric eigensolver
    /// (an independent routine), to float32 rounding of the factors
    /// (relative 1e-5 of ‖W‖_F²).
    func testProductIsTheTruncationOfARandomWeight() throws {
        let w = randomFloats(16 * 8 * 9, seed: 12345)
        let matrix = Matrix(rows: 16, columns: 72, float32: w)
        var gram = Matrix(rows: 16, columns: 16)
        for i in 0..<16 {
            for j in 0..<16 { gram[i, j] = (0..<72).reduce(0) { $0 + matrix[i, $1] * matrix[j, $1] } }
        }
        let eigenvalues = try symmetricEigenvalues(gram).sorted(by: >)
        let total = eigenvalues.reduce(0, +)
        for rank in [1, 5, 12, 16] {
            let f = try ConvFactorization(weight: w, shape: [16, 8, 3, 3], rank: rank, context: "random")
            var residual = 0.0
            for o in 0..<16 {
                for c in 0..<72 {
                    var product = 0.0
                    for i in 0..<rank { product += Double(f.second[o * rank + i]) * Double(f.first[i * 72 + c]) }
                    residual += (matrix[o, c] - product) * (matrix[o, c] - product)
                }
            }
            let expected = eigenvalues.dropFirst(rank).reduce(0, +)
            XCTAssertEqual(residual, expected, accuracy: 1e-5 * total, "rank \(rank)")
            XCTAssertEqual(f.droppedEnergy, expected / total, accuracy: 1e-10, "rank \(rank)")
        }
    }
}
