/// The two factors of a conv weight at rank r, from its SVD in float64.
///
/// The weight (C_out, C_in, k, k) is the matrix W (C_out, C_in·k²) =
/// U·diag(σ)·Vᵀ. At rank r the factors are
///
/// - `first` = Σ_r^{1/2}·V_rᵀ, the weight (r, C_in, k, k) of a k×k conv
///   C_in → r;
/// - `second` = U_r·Σ_r^{1/2}, the weight (C_out, r, 1, 1) of a 1×1 conv
///   r → C_out;
///
/// so that `second`·`first` = W_r = U_r·diag(σ_r)·V_rᵀ, the best rank-r
/// approximation of W in both the spectral and the Frobenius norm
/// (Eckart–Young): ‖W − W_r‖_F² = Σ_{i>r} σᵢ² and ‖W − W_r‖₂ = σ_{r+1}.
/// Splitting √σ between the factors gives both the same scale, which keeps
/// fine-tuning's two gradients balanced.
///
/// The SVD is of W as stored, not of W̃ = diag(s)·W with a following
/// BatchNorm's scale s folded in: on ResNet-20 (Fashion-MNIST, 93.54%) the
/// same ranks (0.491 of the conv multiply-adds) keep 89.65% from W's
/// factors and 85.90% from W̃'s. W̃'s Frobenius norm weighs a row by s,
/// which is large where the channel's pre-BatchNorm variance is small, so
/// it spends rank on outputs the data hardly excites (docs/compression.md).
public struct ConvFactorization: Sendable {
    /// (C_out, C_in, k, k).
    public let weightShape: [Int]
    public let rank: Int
    /// All of W's singular values, descending.
    public let singularValues: [Double]
    /// (rank, C_in, k, k), rounded to float32.
    public let first: [Float]
    /// (C_out, rank, 1, 1), rounded to float32.
    public let second: [Float]

    /// - Parameters:
    ///   - weight: the float32 weight, (C_out, C_in, k, k) row-major, widened exactly.
    ///   - context: names the tensor in an error.
    /// - Throws: ``LAPACKError``.
    public init(weight: [Float], shape: [Int], rank: Int, context: String) throws {
        precondition(shape.count == 4 && weight.count == shape.reduce(1, *), "ConvFactorization: weight shape")
        let (out, columns) = (shape[0], shape[1] * shape[2] * shape[3])
        precondition(rank >= 1 && rank <= min(out, columns), "ConvFactorization: rank \(rank)")
        let svd = try SingularValueDecomposition(
            Matrix(rows: out, columns: columns, float32: weight), context: context)
        weightShape = shape
        self.rank = rank
        singularValues = svd.singularValues
        let roots = svd.singularValues.prefix(rank).map { $0.squareRoot() }
        var first = [Float](repeating: 0, count: rank * columns)
        for i in 0..<rank {
            for j in 0..<columns { first[i * columns + j] = Float(roots[i] * svd.vt[i, j]) }
        }
        var second = [Float](repeating: 0, count: out * rank)
        for o in 0..<out {
            for i in 0..<rank { second[o * rank + i] = Float(svd.u[o, i] * roots[i]) }
        }
        self.first = first
        self.second = second
    }

    /// Σ_{i>r} σᵢ² / Σσᵢ²: the fraction of W's energy the factors drop.
    public var droppedEnergy: Double {
        let total = singularValues.reduce(0) { $0 + $1 * $1 }
        let dropped = singularValues.dropFirst(rank).reduce(0) { $0 + $1 * $1 }
        return total > 0 ? dropped / total : 0
    }

    /// The smallest rank that keeps at least `energy` (0 < energy ≤ 1) of
    /// Σσᵢ²: the first k with Σ_{i≤k} σᵢ² ≥ energy·Σσᵢ².
    public static func rank(keeping energy: Double, of singularValues: [Double]) -> Int {
        componentsFor(energy: energy, cumulative: cumulativeEnergyFractions(singularValues))
    }
}
