import CLAPACK

/// A dense float64 matrix, row-major: entry (i, j) is `values[i·columns + j]`.
///
/// The analysis does every decomposition and identity in float64 (the
/// float32 weights are widened exactly), so that the identities it checks
/// hold to ~1e-15 and a failed check points at a real error, not rounding.
public struct Matrix: Equatable, Sendable {
    public let rows: Int
    public let columns: Int
    public var values: [Double]

    public init(rows: Int, columns: Int, values: [Double]) {
        precondition(
            rows >= 0 && columns >= 0 && values.count == rows * columns,
            "Matrix: \(values.count) values for \(rows)×\(columns)")
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    /// The zero matrix.
    public init(rows: Int, columns: Int) {
        self.init(rows: rows, columns: columns, values: [Double](repeating: 0, count: rows * columns))
    }

    /// Widens float32 values (exact) into a rows×columns matrix.
    public init(rows: Int, columns: Int, float32 values: [Float]) {
        self.init(rows: rows, columns: columns, values: values.map(Double.init))
    }

    /// The n×n identity.
    public static func identity(_ n: Int) -> Matrix {
        var m = Matrix(rows: n, columns: n)
        for i in 0..<n { m[i, i] = 1 }
        return m
    }

    public subscript(i: Int, j: Int) -> Double {
        get { values[i * columns + j] }
        set { values[i * columns + j] = newValue }
    }

    /// Row i as an array.
    public func row(_ i: Int) -> [Double] { Array(values[(i * columns)..<((i + 1) * columns)]) }

    /// Column j as an array.
    public func column(_ j: Int) -> [Double] { (0..<rows).map { self[$0, j] } }

    /// The rows as nested arrays (for JSON).
    public var nestedRows: [[Double]] { (0..<rows).map(row) }

    public var transposed: Matrix {
        var t = Matrix(rows: columns, columns: rows)
        for i in 0..<rows { for j in 0..<columns { t[j, i] = self[i, j] } }
        return t
    }

    /// ‖M‖²_F = Σᵢⱼ mᵢⱼ², summed with Neumaier's compensation: the
    /// identities compare sums of millions of terms (‖A‖²_F of the conv1
    /// operator has 4.2 M entries) at 1e-12, where plain summation's error
    /// (~1e-13 there) would leave little margin.
    public var squaredFrobeniusNorm: Double {
        var sum = 0.0
        var compensation = 0.0
        for v in values {
            let term = v * v
            let t = sum + term
            compensation += abs(sum) >= abs(term) ? (sum - t) + term : (term - t) + sum
            sum = t
        }
        return sum + compensation
    }

    /// ‖M‖_F.
    public var frobeniusNorm: Double { squaredFrobeniusNorm.squareRoot() }

    /// max |mᵢⱼ| (0 for an empty matrix).
    public var maxAbsoluteValue: Double { values.reduce(0) { max($0, abs($1)) } }

    /// The product self·other, with OpenBLAS dgemm.
    public static func * (a: Matrix, b: Matrix) -> Matrix {
        precondition(a.columns == b.rows, "Matrix product: \(a.rows)×\(a.columns) · \(b.rows)×\(b.columns)")
        var c = Matrix(rows: a.rows, columns: b.columns)
        if a.rows == 0 || b.columns == 0 { return c }
        if a.columns == 0 { return c }
        a.values.withUnsafeBufferPointer { pa in
            b.values.withUnsafeBufferPointer { pb in
                c.values.withUnsafeMutableBufferPointer { pc in
                    denseProduct(
                        m: a.rows, n: b.columns, k: a.columns,
                        a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!)
                }
            }
        }
        return c
    }

    public static func - (a: Matrix, b: Matrix) -> Matrix {
        precondition(a.rows == b.rows && a.columns == b.columns, "Matrix difference: shapes differ")
        return Matrix(rows: a.rows, columns: a.columns, values: zip(a.values, b.values).map { $0 - $1 })
    }

    /// The first k columns.
    public func leadingColumns(_ k: Int) -> Matrix {
        var m = Matrix(rows: rows, columns: k)
        for i in 0..<rows { for j in 0..<k { m[i, j] = self[i, j] } }
        return m
    }

    /// The first k rows.
    public func leadingRows(_ k: Int) -> Matrix {
        Matrix(rows: k, columns: columns, values: Array(values[0..<(k * columns)]))
    }

    /// self with column j multiplied by `scales[j]` (i.e. self·diag(scales)).
    public func scalingColumns(by scales: [Double]) -> Matrix {
        precondition(scales.count == columns)
        var m = self
        for i in 0..<rows { for j in 0..<columns { m[i, j] *= scales[j] } }
        return m
    }
}

/// C (m×n) = A (m×k) · B (k×n), all row-major and contiguous, float64.
/// One call site for dgemm, so that every product in the analysis goes
/// through the same routine.
@inline(__always)
func denseProduct(
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Double>, b: UnsafePointer<Double>, c: UnsafeMutablePointer<Double>,
    transposeA: Bool = false, accumulate: Bool = false
) {
    // A stored (k×m) when transposed.
    let lda = transposeA ? m : k
    cblas_dgemm(
        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, CblasNoTrans,
        Int32(m), Int32(n), Int32(k), 1.0, a, Int32(lda), b, Int32(n),
        accumulate ? 1.0 : 0.0, c, Int32(n))
}
