/// The two factors of a conv weight at rank r, from the SVD in float64 of
/// the weight as the network applies it: BatchNorm folded.
///
/// The weight (C_out, C_in, k, k) is the matrix W (C_out, C_in·k²); a
/// BatchNorm after the conv scales its rows by s = γ/√(running_var + ε), so
/// the network applies W̃ = diag(s)·W = U·diag(σ)·Vᵀ (s = 1 without one).
/// At rank r the factors are
///
/// - `first` = Σ_r^{1/2}·V_rᵀ, the weight (r, C_in, k, k) of a k×k conv
///   C_in → r;
/// - `second` = diag(s)⁺·U_r·Σ_r^{1/2}, the weight (C_out, r, 1, 1) of a
///   1×1 conv r → C_out (s⁺ = 1/s, and 0 where s = 0: that channel's
///   output is β whatever its weights);
///
/// so that diag(s)·`second`·`first` = W̃_r = U_r·diag(σ_r)·V_rᵀ, the best
/// rank-r approximation of W̃ in the spectral and the Frobenius norm
/// (Eckart–Young): ‖W̃ − W̃_r‖_F² = Σ_{i>r} σᵢ² and ‖W̃ − W̃_r‖₂ = σ_{r+1}.
/// Truncating W̃ rather than W minimises the error of what the next layer
/// sees. Splitting √σ between the factors gives them one scale.
public struct ConvFactorization: Sendable {
    /// (C_out, C_in, k, k).
    public let weightShape: [Int]
    public let rank: Int
    /// All of W̃'s singular values, descending.
    public let singularValues: [Double]
    /// (rank, C_in, k, k), rounded to float32.
    public let first: [Float]
    /// (C_out, rank, 1, 1), rounded to float32.
    public let second: [Float]

    /// - Parameters:
    ///   - weight: the float32 weight, (C_out, C_in, k, k) row-major, widened exactly.
    ///   - rowScale: s, one per output channel (nil: no BatchNorm, s = 1).
    ///   - context: names the tensor in an error.
    /// - Throws: ``LAPACKError``.
    public init(weight: [Float], shape: [Int], rowScale: [Double]? = nil, rank: Int, context: String) throws {
        precondition(shape.count == 4 && weight.count == shape.reduce(1, *), "ConvFactorization: weight shape")
        let (out, columns) = (shape[0], shape[1] * shape[2] * shape[3])
        precondition(rank >= 1 && rank <= min(out, columns), "ConvFactorization: rank \(rank)")
        let scale = rowScale ?? [Double](repeating: 1, count: out)
        precondition(scale.count == out, "ConvFactorization: one scale per output channel")
        var folded = Matrix(rows: out, columns: columns, float32: weight)
        for o in 0..<out { for j in 0..<columns { folded[o, j] *= scale[o] } }
        let svd = try SingularValueDecomposition(folded, context: context)
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
            let inverse = scale[o] == 0 ? 0 : 1 / scale[o]
            for i in 0..<rank { second[o * rank + i] = Float(inverse * svd.u[o, i] * roots[i]) }
        }
        self.first = first
        self.second = second
    }

    /// Σ_{i>r} σᵢ² / Σσᵢ²: the fraction of W̃'s energy the factors drop.
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
