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
        componentEnergies = svd.singularValues.map { $0 * $0 }
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

    /// What each component carries, descending: σᵢ² (the SVD's), or with
    /// data the eigenvalues λᵢ of diag(s)·W·C·Wᵀ·diag(s), E[(uᵢᵀ·diag(s)·W·p)²].
    public let componentEnergies: [Double]

    /// Σ_{i>r} eᵢ / Σeᵢ over ``componentEnergies``: the fraction the factors
    /// drop (of ‖W‖_F², or with data of E‖diag(s)·W·p‖²).
    public var droppedEnergy: Double {
        let total = componentEnergies.reduce(0, +)
        let dropped = componentEnergies.dropFirst(rank).reduce(0, +)
        return total > 0 ? dropped / total : 0
    }

    /// The data-aware factors: the rank-r map Ŵ that minimises
    /// E‖diag(s)·(W − Ŵ)·p‖² over patches p with second moment
    /// C = E[p·pᵀ] (``LayerInputMoment``), s the scale of the BatchNorm that
    /// follows (γ/√(var + eps); all ones without one), i.e. the error the
    /// next layer sees. With M = diag(s)·W, Eckart–Young applied to
    /// M·C^{1/2} gives diag(s)·Ŵ = U_r·U_rᵀ·M, U_r the top r eigenvectors of
    /// M·C·Mᵀ (``DataAwareProjection``), and the error
    /// Σ_{i>r} λᵢ(M·C·Mᵀ). The factors:
    ///
    /// - `first` = D·U_rᵀ·M (r, C_in, k, k),
    /// - `second` = diag(1/s)·U_r·D⁻¹ (C_out, r, 1, 1), a row 0 where s is
    ///   0 (a BatchNorm with γ = 0 passes nothing of that channel on);
    ///
    /// D diagonal, chosen so that row i of `first` and column i of `second`
    /// have the same norm, as the SVD split gives them.
    /// - Throws: ``LAPACKError``.
    public init(
        weight: [Float], shape: [Int], rank: Int, secondMoment c: Matrix, outputScale s: [Double], context: String
    ) throws {
        precondition(shape.count == 4 && weight.count == shape.reduce(1, *), "ConvFactorization: weight shape")
        let (out, columns) = (shape[0], shape[1] * shape[2] * shape[3])
        precondition(rank >= 1 && rank <= min(out, columns), "ConvFactorization: rank \(rank)")
        precondition(s.count == out && s.allSatisfy(\.isFinite), "ConvFactorization: output scale")
        // A channel whose scale is 0 (γ = 0) reaches nothing: its row of Ŵ is 0.
        let inverse = s.map { $0 == 0 ? 0 : 1 / $0 }
        let w = Matrix(rows: out, columns: columns, float32: weight)
        var m = w
        for o in 0..<out { for j in 0..<columns { m[o, j] *= s[o] } }
        let projection = try DataAwareProjection(weight: m, secondMoment: c, layer: context)
        let ur = projection.basis.leadingColumns(rank)
        let rows = ur.transposed * m
        weightShape = shape
        self.rank = rank
        singularValues = try SingularValueDecomposition(w, context: context).singularValues
        componentEnergies = projection.eigenvalues.map { max($0, 0) }
        var first = [Float](repeating: 0, count: rank * columns)
        var second = [Float](repeating: 0, count: out * rank)
        for i in 0..<rank {
            let rowNorm = (0..<columns).reduce(0.0) { $0 + rows[i, $1] * rows[i, $1] }.squareRoot()
            let columnNorm = (0..<out).reduce(0.0) { sum, o in
                let v = ur[o, i] * inverse[o]
                return sum + v * v
            }.squareRoot()
            // Both norms become √(rowNorm·columnNorm); a zero row keeps D = 1.
            let d = rowNorm > 0 ? (columnNorm / rowNorm).squareRoot() : 1
            for j in 0..<columns { first[i * columns + j] = Float(d * rows[i, j]) }
            for o in 0..<out { second[o * rank + i] = Float(ur[o, i] * inverse[o] / d) }
        }
        self.first = first
        self.second = second
    }

    /// The smallest rank that keeps at least `energy` (0 < energy ≤ 1) of
    /// Σσᵢ²: the first k with Σ_{i≤k} σᵢ² ≥ energy·Σσᵢ².
    public static func rank(keeping energy: Double, of singularValues: [Double]) -> Int {
        componentsFor(energy: energy, cumulative: cumulativeEnergyFractions(singularValues))
    }

    /// The smallest k with Σ_{i≤k} eᵢ ≥ `share`·Σeᵢ over component energies
    /// e (descending, ≥ 0), e.g. ``componentEnergies``.
    public static func rank(keepingShare share: Double, of energies: [Double]) -> Int {
        rank(keeping: share, of: energies.map { $0.squareRoot() })
    }
}
