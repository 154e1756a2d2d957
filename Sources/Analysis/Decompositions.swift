import CLAPACK

/// A LAPACK routine reported failure.
public struct LAPACKError: Error, CustomStringConvertible, Equatable {
    /// The routine, e.g. "LAPACKE_dgesdd".
    public var routine: String
    /// LAPACK's `info`: < 0 an illegal argument (its position), > 0 no convergence.
    public var info: Int
    /// What was being decomposed.
    public var context: String
    public var description: String {
        "\(routine) failed with info = \(info) while decomposing \(context)"
            + (info < 0 ? " (argument \(-info) was illegal)" : " (the iteration did not converge)")
    }
}

/// The thin singular value decomposition W = U·diag(σ)·Vᵀ of an m×n matrix,
/// r = min(m, n): U is m×r with orthonormal columns, σ₁ ≥ … ≥ σ_r ≥ 0, Vᵀ is
/// r×n with orthonormal rows. Computed by LAPACKE_dgesdd (divide and
/// conquer) in float64.
///
/// Sign convention (an SVD fixes each pair (uᵢ, vᵢ) only up to a common sign):
/// each right singular vector vᵢ is flipped, with its uᵢ, so that its entry of
/// largest magnitude (the first such entry on a tie) is positive. The
/// product U·diag(σ)·Vᵀ is unchanged; eigenfilters then render the same way
/// on every run.
public struct SingularValueDecomposition: Sendable {
    /// m×r.
    public var u: Matrix
    /// r values, descending.
    public var singularValues: [Double]
    /// r×n.
    public var vt: Matrix

    public var rank: Int { singularValues.count }

    /// Decomposes `a` (copied; `a` is not changed). `context` names the matrix
    /// in an error.
    public init(_ a: Matrix, context: String = "a matrix") throws {
        let m = a.rows
        let n = a.columns
        let r = min(m, n)
        precondition(r > 0, "SVD of an empty matrix")
        var work = a.values
        var s = [Double](repeating: 0, count: r)
        var u = [Double](repeating: 0, count: m * r)
        var vt = [Double](repeating: 0, count: r * n)
        let info = LAPACKE_dgesdd(
            LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "S")), Int32(m), Int32(n),
            &work, Int32(n), &s, &u, Int32(r), &vt, Int32(n))
        if info != 0 { throw LAPACKError(routine: "LAPACKE_dgesdd", info: Int(info), context: context) }
        var um = Matrix(rows: m, columns: r, values: u)
        var vm = Matrix(rows: r, columns: n, values: vt)
        for i in 0..<r {
            var best = 0
            for j in 0..<n where abs(vm[i, j]) > abs(vm[i, best]) { best = j }
            if vm[i, best] < 0 {
                for j in 0..<n { vm[i, j] = -vm[i, j] }
                for row in 0..<m { um[row, i] = -um[row, i] }
            }
        }
        self.u = um
        self.singularValues = s
        self.vt = vm
    }

    /// U·diag(σ)·Vᵀ.
    public var reconstruction: Matrix { u.scalingColumns(by: singularValues) * vt }

    /// W_k = U[:, :k]·diag(σ[:k])·Vᵀ[:k, :], the best rank-k approximation
    /// (Eckart–Young). k = 0 gives the zero matrix.
    public func truncated(rank k: Int) -> Matrix {
        precondition(k >= 0 && k <= rank, "truncated(rank: \(k)) of a rank-\(rank) decomposition")
        if k == 0 { return Matrix(rows: u.rows, columns: vt.columns) }
        return u.leadingColumns(k).scalingColumns(by: Array(singularValues[0..<k])) * vt.leadingRows(k)
    }
}

/// The eigenvalues of a symmetric matrix, descending, from LAPACKE_dsyevd
/// (only the upper triangle is read). Used to cross-check σ: the eigenvalues
/// of WᵀW are σᵢ² and then n − r zeros.
public func symmetricEigenvalues(_ a: Matrix, context: String = "a symmetric matrix") throws -> [Double] {
    precondition(a.rows == a.columns && a.rows > 0, "symmetricEigenvalues: \(a.rows)×\(a.columns)")
    let n = a.rows
    var work = a.values
    var w = [Double](repeating: 0, count: n)
    let info = LAPACKE_dsyevd(
        LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "U")),
        Int32(n), &work, Int32(n), &w)
    if info != 0 { throw LAPACKError(routine: "LAPACKE_dsyevd", info: Int(info), context: context) }
    return w.reversed()
}
