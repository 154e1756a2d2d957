import Analysis
import NetIO
import TestSupport
import XCTest

/// A random n×n orthogonal matrix as a product of Givens rotations (built
/// here, independently of LAPACK), row-major.
func givensOrthogonal(_ n: Int, seed: UInt64) -> [Double] {
    var g = SeededRandom(seed: seed)
    var q = [Double](repeating: 0, count: n * n)
    for i in 0..<n { q[i * n + i] = 1 }
    for _ in 0..<(3 * n * n) {
        let i = Int(g.next() % UInt64(n))
        let j = Int(g.next() % UInt64(n))
        if i == j { continue }
        let angle = Double.random(in: 0..<(2 * Double.pi), using: &g)
        let (c, s) = (cos(angle), sin(angle))
        for col in 0..<n {  // rows i, j of q ← G·q
            let a = q[i * n + col]
            let b = q[j * n + col]
            q[i * n + col] = c * a - s * b
            q[j * n + col] = s * a + c * b
        }
    }
    return q
}

/// Naive row-major product (m×k)·(k×n).
func naiveProduct(_ a: [Double], _ b: [Double], _ m: Int, _ k: Int, _ n: Int) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k { s += a[i * k + p] * b[p * n + j] }
            c[i * n + j] = s
        }
    }
    return c
}

/// Q₁·D·Q₂ᵀ for an m×n "diagonal" D with the given entries.
func matrixWithSingularValues(_ sigma: [Double], m: Int, n: Int, seed: UInt64) -> Matrix {
    let q1 = givensOrthogonal(m, seed: seed)
    let q2 = givensOrthogonal(n, seed: seed &+ 1)
    var d = [Double](repeating: 0, count: m * n)
    for (i, s) in sigma.enumerated() { d[i * n + i] = s }
    var q2t = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in 0..<n { q2t[j * n + i] = q2[i * n + j] } }
    return Matrix(rows: m, columns: n, values: naiveProduct(naiveProduct(q1, d, m, m, n), q2t, m, n, n))
}

/// max |Uᵀ U − I| etc. computed with loops.
func orthonormalityError(columnsOf a: Matrix) -> Double {
    var worst = 0.0
    for i in 0..<a.columns {
        for j in 0..<a.columns {
            var s = 0.0
            for r in 0..<a.rows { s += a[r, i] * a[r, j] }
            worst = max(worst, abs(s - (i == j ? 1 : 0)))
        }
    }
    return worst
}

/// max |U·diag(σ)·Vᵀ − A| with loops.
func reconstructionError(_ svd: SingularValueDecomposition, _ a: Matrix) -> Double {
    var worst = 0.0
    for i in 0..<a.rows {
        for j in 0..<a.columns {
            var s = 0.0
            for k in 0..<svd.rank { s += svd.u[i, k] * svd.singularValues[k] * svd.vt[k, j] }
            worst = max(worst, abs(s - a[i, j]))
        }
    }
    return worst
}

final class DecompositionTests: XCTestCase {
    func testGivensMatricesAreOrthogonal() {
        let q = Matrix(rows: 7, columns: 7, values: givensOrthogonal(7, seed: 3))
        XCTAssertLessThan(orthonormalityError(columnsOf: q), 1e-13)
    }

    func testDiagonalMatrix() throws {
        // Unsorted and negative entries: σ are the sorted magnitudes.
        var a = Matrix(rows: 4, columns: 6)
        for (i, v) in [0.5, -3.0, 2.0, 1.0].enumerated() { a[i, i] = v }
        let svd = try SingularValueDecomposition(a)
        XCTAssertEqual(svd.singularValues.count, 4)
        for (got, want) in zip(svd.singularValues, [3.0, 2.0, 1.0, 0.5]) { XCTAssertEqual(got, want, accuracy: 1e-15) }
        XCTAssertLessThan(reconstructionError(svd, a), 1e-15)
    }

    func testRotatedMatricesWithKnownSingularValues() throws {
        for (m, n, seed) in [(8, 9, UInt64(1)), (16, 72, 2), (9, 5, 3)] {
            let r = min(m, n)
            let sigma = (0..<r).map { 5.0 * pow(0.7, Double($0)) }
            let a = matrixWithSingularValues(sigma, m: m, n: n, seed: seed)
            let svd = try SingularValueDecomposition(a)
            for (got, want) in zip(svd.singularValues, sigma) {
                XCTAssertEqual(got, want, accuracy: 1e-13, "\(m)×\(n)")
            }
            XCTAssertLessThan(reconstructionError(svd, a), 1e-13)
            XCTAssertLessThan(orthonormalityError(columnsOf: svd.u), 1e-13)
            XCTAssertLessThan(orthonormalityError(columnsOf: svd.vt.transposed), 1e-13)
            // Sign convention: each right singular vector's largest-magnitude entry is positive.
            for i in 0..<r {
                let row = svd.vt.row(i)
                let biggest = row.max { abs($0) < abs($1) }!
                XCTAssertGreaterThan(biggest, 0)
            }
        }
    }

    func testRankDeficientMatrix() throws {
        let sigma = [4.0, 1.5, 0, 0, 0, 0]
        let a = matrixWithSingularValues(sigma, m: 6, n: 10, seed: 11)
        let svd = try SingularValueDecomposition(a)
        XCTAssertEqual(svd.singularValues[0], 4, accuracy: 1e-13)
        XCTAssertEqual(svd.singularValues[1], 1.5, accuracy: 1e-13)
        for s in svd.singularValues[2...] { XCTAssertLessThan(s, 1e-13) }
        XCTAssertLessThan(reconstructionError(svd, a), 1e-13)
        XCTAssertLessThan(orthonormalityError(columnsOf: svd.u), 1e-13)
    }

    func testRepeatedSingularValues() throws {
        let sigma = [2.0, 2.0, 2.0, 1.0, 1.0]
        let a = matrixWithSingularValues(sigma, m: 5, n: 7, seed: 21)
        let svd = try SingularValueDecomposition(a)
        for (got, want) in zip(svd.singularValues, sigma) { XCTAssertEqual(got, want, accuracy: 1e-13) }
        XCTAssertLessThan(reconstructionError(svd, a), 1e-13)
        // The vectors of a repeated σ are not unique, but the subspace is: the
        // projector onto U[:, :3] equals the one onto Q₁[:, :3].
        let q1 = givensOrthogonal(5, seed: 21)
        var worst = 0.0
        for i in 0..<5 {
            for j in 0..<5 {
                var fromSVD = 0.0
                var fromQ = 0.0
                for k in 0..<3 {
                    fromSVD += svd.u[i, k] * svd.u[j, k]
                    fromQ += q1[i * 5 + k] * q1[j * 5 + k]
                }
                worst = max(worst, abs(fromSVD - fromQ))
            }
        }
        XCTAssertLessThan(worst, 1e-13)
    }

    func testSymmetricEigenvaluesOfKnownMatrix() throws {
        // [[2, 1], [1, 2]] has eigenvalues 3 and 1.
        let e = try symmetricEigenvalues(Matrix(rows: 2, columns: 2, values: [2, 1, 1, 2]))
        XCTAssertEqual(e[0], 3, accuracy: 1e-15)
        XCTAssertEqual(e[1], 1, accuracy: 1e-15)
    }

    func testSingularValuesAgainstGramEigenvalues() throws {
        for (m, n, seed) in [(8, 9, UInt64(5)), (16, 72, 6)] {
            let a = Matrix(rows: m, columns: n, float32: randomFloats(m * n, scale: 0.3, seed: seed))
            let svd = try SingularValueDecomposition(a)
            var gram = Matrix(rows: n, columns: n)
            for i in 0..<n { for j in 0..<n { for r in 0..<m { gram[i, j] += a[r, i] * a[r, j] } } }
            let lambda = try symmetricEigenvalues(gram)
            let scale = svd.singularValues[0] * svd.singularValues[0]
            for i in 0..<n {
                let expected = i < m ? svd.singularValues[i] * svd.singularValues[i] : 0
                XCTAssertEqual(lambda[i], expected, accuracy: 1e-13 * scale, "λ\(i) of \(m)×\(n)")
            }
        }
    }

    func testEckartYoungOnRandomMatrices() throws {
        for (m, n, seed) in [(8, 9, UInt64(7)), (16, 72, 8), (10, 6, 9)] {
            let a = Matrix(rows: m, columns: n, float32: randomFloats(m * n, scale: 1, seed: seed))
            let svd = try SingularValueDecomposition(a)
            let total = svd.singularValues.reduce(0) { $0 + $1 * $1 }
            var g = SeededRandom(seed: seed &+ 100)
            for k in 1...svd.rank {
                // W_k from the factors, with loops here.
                var wk = [Double](repeating: 0, count: m * n)
                for i in 0..<m {
                    for j in 0..<n {
                        for p in 0..<k { wk[i * n + j] += svd.u[i, p] * svd.singularValues[p] * svd.vt[p, j] }
                    }
                }
                let library = svd.truncated(rank: k)
                XCTAssertLessThan(zip(library.values, wk).map { abs($0 - $1) }.max()!, 1e-13)
                let error = zip(a.values, wk).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
                let tail = svd.singularValues[k...].reduce(0) { $0 + $1 * $1 }.squareRoot()
                XCTAssertEqual(error, tail, accuracy: 1e-12 * total.squareRoot(), "‖W − W_\(k)‖_F = √(Σ_{i>k} σᵢ²)")
                // Optimality: perturbed rank-k matrices (B·C with B = U_kΣ_k + noise) do no better.
                for _ in 0..<20 {
                    var b = [Double](repeating: 0, count: m * k)
                    var c = [Double](repeating: 0, count: k * n)
                    for i in 0..<m {
                        for p in 0..<k {
                            b[i * k + p] =
                                svd.u[i, p] * svd.singularValues[p] + 0.05 * Double.random(in: -1...1, using: &g)
                        }
                    }
                    for p in 0..<k {
                        for j in 0..<n { c[p * n + j] = svd.vt[p, j] + 0.05 * Double.random(in: -1...1, using: &g) }
                    }
                    let y = naiveProduct(b, c, m, k, n)
                    let other = zip(a.values, y).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
                    XCTAssertGreaterThanOrEqual(other, error - 1e-12)
                }
            }
        }
    }

    func testEnergyAndEffectiveRanksFromHandValues() {
        // σ = (4, 3): energies 16/25, 1; p = (4/7, 3/7).
        let cumulative = cumulativeEnergyFractions([4, 3])
        XCTAssertEqual(cumulative[0], 16.0 / 25, accuracy: 1e-15)
        XCTAssertEqual(cumulative[1], 1, accuracy: 1e-15)
        let p = [4.0 / 7, 3.0 / 7]
        XCTAssertEqual(
            entropyEffectiveRank(singularValues: [4, 3]), exp(-(p[0] * log(p[0]) + p[1] * log(p[1]))), accuracy: 1e-14)
        XCTAssertEqual(entropyEffectiveRank(singularValues: [2, 2, 2]), 3, accuracy: 1e-14)
        XCTAssertEqual(entropyEffectiveRank(singularValues: [2, 0]), 1, accuracy: 1e-14)
    }
}
