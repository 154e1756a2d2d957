import NetIO

/// Phase 5's independent check of the Eckart–Young theorem: no matrix B of
/// rank ≤ k is closer to W than W_k = U_k·Σ_k·V_kᵀ, in the Frobenius norm or
/// the spectral norm. The formula checks (‖W − W_k‖ against σ) hold for any
/// orthogonal U and V; these candidates fail if W_k is not the best rank-k
/// matrix (wrong vectors, wrong order, a wrong truncation).
///
/// Candidates for each k = 1…r − 1, from a SplitMix64 stream (seed fixed):
/// for ε in 1e-3, 1e-1, 1 and `draws` draws each, G uniform in [−1, 1],
/// - Q·Qᵀ·W with Q an orthonormal basis of U_k + ε·G (the best matrix with
///   that column space: W_k's nearest competitors, worse by O(ε²));
/// - W·P·Pᵀ with P an orthonormal basis of V_k + ε·G (same for the row space);
/// - (U_k + ε·G)·Σ_k·(V_k + ε·G′)ᵀ (W_k's factors perturbed);
/// and U·Σ·Vᵀ restricted to components {1…k−1, k+1} (the k-th triplet
/// swapped for the next).
public struct EckartYoungOptimality: Codable, Sendable, Equatable {
    /// Candidates tried over all k.
    public var candidates: Int
    /// min over candidates B of (‖W − B‖_F − ‖W − W_k‖_F) / ‖W‖_F: how much
    /// the closest candidate loses to W_k (≥ 0 up to rounding; < 0 means a
    /// candidate beats W_k).
    public var frobeniusMargin: Double
    /// min over candidates of (‖W − B‖₂ − ‖W − W_k‖₂) / σ₁.
    public var spectralMargin: Double

    static let epsilons = [1e-3, 1e-1, 1.0]

    /// The candidates above for W and a decomposition of it (`svd` need not
    /// be LAPACK's: the tests hand it a wrong one).
    public static func compute(
        layer: String, w: Matrix, svd: SingularValueDecomposition, draws: Int = 3, seed: UInt64 = 0x5eed
    )
        throws -> EckartYoungOptimality
    {
        var rng = SeededRandom(seed: seed)
        func noise(_ rows: Int, _ columns: Int) -> Matrix {
            Matrix(rows: rows, columns: columns, values: (0..<(rows * columns)).map { _ in Double(rng.uniform(1)) })
        }
        func spectralNorm(_ a: Matrix, _ what: String) throws -> Double {
            try SingularValueDecomposition(a, context: "\(layer) \(what)").singularValues[0]
        }
        let normW = w.frobeniusNorm
        let sigma1 = svd.singularValues[0]
        var frobeniusMargin = Double.infinity
        var spectralMargin = Double.infinity
        var candidates = 0
        for k in 1..<max(svd.rank, 1) {
            let wk = svd.truncated(rank: k)
            let bestFrobenius = (w - wk).frobeniusNorm
            let bestSpectral = try spectralNorm(w - wk, "W − W_\(k)")
            let uk = svd.u.leadingColumns(k)
            let vk = svd.vt.leadingRows(k).transposed
            let sk = Array(svd.singularValues[0..<k])
            var others = [Matrix]()
            for epsilon in epsilons {
                for _ in 0..<draws {
                    let q = orthonormalColumns(uk + epsilon * noise(uk.rows, k))
                    others.append(q * (q.transposed * w))
                    let p = orthonormalColumns(vk + epsilon * noise(vk.rows, k))
                    others.append((w * p) * p.transposed)
                    others.append(
                        (uk + epsilon * noise(uk.rows, k)).scalingColumns(by: sk)
                            * (vk + epsilon * noise(vk.rows, k)).transposed)
                }
            }
            let swapped = Array(0..<(k - 1)) + [k]
            others.append(
                svd.u.selectingColumns(swapped).scalingColumns(by: swapped.map { svd.singularValues[$0] })
                    * svd.vt.selectingRows(swapped))
            for b in others {
                let difference = w - b
                frobeniusMargin = min(frobeniusMargin, (difference.frobeniusNorm - bestFrobenius) / normW)
                spectralMargin = min(
                    spectralMargin, (try spectralNorm(difference, "W − B, rank \(k)") - bestSpectral) / sigma1)
                candidates += 1
            }
        }
        return EckartYoungOptimality(
            candidates: candidates, frobeniusMargin: candidates == 0 ? 0 : frobeniusMargin,
            spectralMargin: candidates == 0 ? 0 : spectralMargin)
    }
}

/// An orthonormal basis of A's column space (A: m × k, k ≤ m, full column
/// rank), by modified Gram–Schmidt applied twice (enough for float64
/// orthogonality at these sizes).
func orthonormalColumns(_ a: Matrix) -> Matrix {
    var q = a
    for _ in 0..<2 {
        for j in 0..<q.columns {
            for i in 0..<j {
                var dot = 0.0
                for r in 0..<q.rows { dot += q[r, i] * q[r, j] }
                for r in 0..<q.rows { q[r, j] -= dot * q[r, i] }
            }
            var norm = 0.0
            for r in 0..<q.rows { norm += q[r, j] * q[r, j] }
            norm = norm.squareRoot()
            for r in 0..<q.rows { q[r, j] /= norm }
        }
    }
    return q
}

extension Matrix {
    static func + (a: Matrix, b: Matrix) -> Matrix {
        precondition(
            a.rows == b.rows && a.columns == b.columns, "Matrix +: \(a.rows)×\(a.columns) vs \(b.rows)×\(b.columns)")
        return Matrix(rows: a.rows, columns: a.columns, values: zip(a.values, b.values).map { $0 + $1 })
    }

    static func * (s: Double, a: Matrix) -> Matrix {
        Matrix(rows: a.rows, columns: a.columns, values: a.values.map { s * $0 })
    }

    /// The columns at `indices`, in that order.
    func selectingColumns(_ indices: [Int]) -> Matrix {
        var out = Matrix(rows: rows, columns: indices.count)
        for r in 0..<rows { for (j, c) in indices.enumerated() { out[r, j] = self[r, c] } }
        return out
    }

    /// The rows at `indices`, in that order.
    func selectingRows(_ indices: [Int]) -> Matrix {
        Matrix(rows: indices.count, columns: columns, values: indices.flatMap { row($0) })
    }
}
