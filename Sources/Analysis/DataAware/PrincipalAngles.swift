import Foundation

/// The principal angles between span(Q_A) and span(Q_B), both d×k with
/// orthonormal columns (Björck & Golub 1973): cos θᵢ are the singular
/// values of Q_AᵀQ_B, θ₁ ≤ … ≤ θ_k.
public struct PrincipalAngles: Codable, Sendable, Equatable {
    public var k: Int
    /// d, the ambient dimension.
    public var dimension: Int
    /// cos θᵢ, descending (clamped to ≤ 1: rounding can give 1 + 1e-16).
    public var cosines: [Double]
    /// θᵢ in degrees, ascending.
    public var anglesDegrees: [Double]
    /// Σ cos²θᵢ over the cosines reported (clamped): with orthonormal bases
    /// every σ(Q_AᵀQ_B) ≤ 1 + O(ε), so the clamp changes nothing; a basis
    /// that is not orthonormal shows as a cosine above 1, clamped away, and
    /// the identity check below fails.
    public var sumOfSquaredCosines: Double
    /// ‖Q_AᵀQ_B‖²_F summed over the product's entries.
    public var productSquaredFrobenius: Double
    /// k²/d: E[Σcos²θ] for span(Q_B) uniformly random (E‖Q_AᵀQ_B‖²_F =
    /// k·k/d for a random k-dimensional subspace of R^d).
    public var randomExpectation: Double

    public init(_ qa: Matrix, _ qb: Matrix, context: String) throws {
        precondition(qa.rows == qb.rows && qa.columns == qb.columns && qa.columns > 0)
        let product = qa.transposed * qb
        let s = try SingularValueDecomposition(product, context: context).singularValues
        k = qa.columns
        dimension = qa.rows
        cosines = s.map { min($0, 1) }
        anglesDegrees = cosines.map { acos($0) * 180 / Double.pi }
        sumOfSquaredCosines = cosines.reduce(0) { $0 + $1 * $1 }
        productSquaredFrobenius = product.squaredFrobeniusNorm
        randomExpectation = Double(k * k) / Double(qa.rows)
    }
}

/// Phase 9, section 3, one layer: the eigenfilters (top right singular
/// vectors of W) against the patch principal components (top eigenvectors
/// of C = E[ppᵀ]).
public struct FilterDataAngles: Codable, Sendable, Equatable {
    public var layer: String
    /// One entry per k (conv1: 1…4; conv2: 1…15).
    public var angles: [PrincipalAngles]
    /// W's eigenfilters (rows of Vᵀ), as many as `patchComponents`.
    public var eigenfilters: [[Double]]
    /// The top eigenvectors of C as rows (max(k, 8) of them, at most W's
    /// rank), each flattened like an eigenfilter (in, kH, kW).
    public var patchComponents: [[Double]]
    /// max_k |Σcos²θ − ‖Q_AᵀQ_B‖²_F| (tolerance 1e-12: two float64 routes
    /// to the same sum of k ≤ 15 terms each ≤ 1).
    public var cosineIdentityError: Double

    public init(layer: String, angles: [PrincipalAngles], eigenfilters: [[Double]], patchComponents: [[Double]]) {
        self.layer = layer
        self.angles = angles
        self.eigenfilters = eigenfilters
        self.patchComponents = patchComponents
        cosineIdentityError = angles.reduce(0.0) {
            worstDifference($0, $1.sumOfSquaredCosines, $1.productSquaredFrobenius)
        }
    }

    /// The check (kind `consistency`: the reported cosines against the
    /// entries of Q_AᵀQ_B; it fails for a wrong SVD or a basis that is not
    /// orthonormal).
    public var check: Check {
        Check(
            id: "\(layer).principal-angles.cosine-identity",
            description: "\(layer) max_k |Σcos²θᵢ − ‖Q_AᵀQ_B‖²_F|, k = 1…\(angles.count)",
            value: cosineIdentityError, relation: .lessThan, limit: 1e-12, kind: .consistency)
    }

    /// `svd`: W's; `secondMoment`: C's eigen-decomposition.
    static func compute(
        layer: String, svd: SingularValueDecomposition, secondMoment: SymmetricEigenDecomposition,
        maxK: Int
    ) throws -> FilterDataAngles {
        let v = svd.vt.transposed
        let angles = try (1...maxK).map { k in
            try PrincipalAngles(
                v.leadingColumns(k), secondMoment.vectors.leadingColumns(k),
                context: "\(layer) principal angles, k = \(k)")
        }
        let shown = min(max(maxK, 8), svd.rank, secondMoment.vectors.columns)
        let pcs = secondMoment.vectors.transposed.leadingRows(shown).nestedRows
        return FilterDataAngles(
            layer: layer, angles: angles, eigenfilters: svd.vt.leadingRows(shown).nestedRows,
            patchComponents: pcs)
    }
}
