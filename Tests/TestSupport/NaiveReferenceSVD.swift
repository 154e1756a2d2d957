import Foundation

/// Float64 loops of training in SVD coordinates (`SVDParameterizedNetwork`):
/// W = U·diag(σ⊙m)·Vᵀ with U (out × r), V (columns × r), σ and the 0/1
/// mask m (r), all row-major, and the gradients of a loss L through W.
extension NaiveReference {
    /// x[i,j]·σ_j·m_j.
    public static func svdScaleColumns(rows: Int, rank: Int, x: [Float], sigma: [Float], mask: [Float]) -> [Double] {
        precondition(x.count == rows * rank && sigma.count == rank && mask.count == rank)
        return (0..<(rows * rank)).map { Double(x[$0]) * Double(sigma[$0 % rank]) * Double(mask[$0 % rank]) }
    }

    /// m_j·(Σ_i u[i,j]·g[i,j] + λ·sign σ_j), sign(0) = 0.
    public static func svdSigmaGradient(
        rows: Int, rank: Int, u: [Float], g: [Float], sigma: [Float], mask: [Float], l1: Float
    ) -> [Double] {
        precondition(u.count == rows * rank && g.count == rows * rank && sigma.count == rank)
        return (0..<rank).map { j in
            var sum = 0.0
            for i in 0..<rows { sum += Double(u[i * rank + j]) * Double(g[i * rank + j]) }
            let sign: Double = sigma[j] > 0 ? 1 : (sigma[j] < 0 ? -1 : 0)
            return Double(mask[j]) * (sum + Double(l1) * sign)
        }
    }

    /// W[o,c] = Σ_j U[o,j]·σ_j·m_j·V[c,j] (out × columns).
    public static func svdCompose(
        out: Int, columns: Int, rank: Int, u: [Double], sigma: [Double], mask: [Double], v: [Double]
    ) -> [Double] {
        var w = [Double](repeating: 0, count: out * columns)
        for o in 0..<out {
            for c in 0..<columns {
                var sum = 0.0
                for j in 0..<rank { sum += u[o * rank + j] * sigma[j] * mask[j] * v[c * rank + j] }
                w[o * columns + c] = sum
            }
        }
        return w
    }

    /// ∂/∂U, ∂/∂σ, ∂/∂V of L(W(U,σ,V)) + λ·Σ_{m_j=1}|σ_j| given dW = ∂L/∂W
    /// (out × columns): ∂U[o,j] = Σ_c dW[o,c]·V[c,j]·σ_j·m_j,
    /// ∂σ_j = m_j·(Σ_{o,c} U[o,j]·dW[o,c]·V[c,j] + λ·sign σ_j),
    /// ∂V[c,j] = Σ_o dW[o,c]·U[o,j]·σ_j·m_j, each a direct sum.
    public static func svdFactorGradients(
        out: Int, columns: Int, rank: Int, u: [Float], sigma: [Float], mask: [Float], v: [Float], dW: [Float],
        l1: Float
    ) -> (u: [Double], sigma: [Double], v: [Double]) {
        var du = [Double](repeating: 0, count: out * rank)
        var dv = [Double](repeating: 0, count: columns * rank)
        var ds = [Double](repeating: 0, count: rank)
        for j in 0..<rank {
            let s = Double(sigma[j]) * Double(mask[j])
            for o in 0..<out {
                var sum = 0.0
                for c in 0..<columns { sum += Double(dW[o * columns + c]) * Double(v[c * rank + j]) }
                du[o * rank + j] = sum * s
                ds[j] += Double(u[o * rank + j]) * sum
            }
            let sign: Double = sigma[j] > 0 ? 1 : (sigma[j] < 0 ? -1 : 0)
            ds[j] = Double(mask[j]) * (ds[j] + Double(l1) * sign)
            for c in 0..<columns {
                var sum = 0.0
                for o in 0..<out { sum += Double(dW[o * columns + c]) * Double(u[o * rank + j]) }
                dv[c * rank + j] = sum * s
            }
        }
        return (du, ds, dv)
    }

    /// ‖XᵀX − I‖_max for X (rows × rank).
    public static func orthogonalityError<T: BinaryFloatingPoint>(_ x: [T], rows: Int, rank: Int) -> Double {
        var worst = 0.0
        for a in 0..<rank {
            for b in 0..<rank {
                var sum = 0.0
                for i in 0..<rows { sum += Double(x[i * rank + a]) * Double(x[i * rank + b]) }
                worst = max(worst, abs(sum - (a == b ? 1 : 0)))
            }
        }
        return worst
    }
}

extension NaiveReference {
    /// c·(3/2·δ_ij − ½·c²·A_ij) with c = 1/√(max_k Σ_j |A_kj|) (1 for A = 0)
    /// when `scaled`, else c = 1, in float64.
    public static func svdNewtonSchulzFactor(rank: Int, gram: [Float], scaled: Bool) -> [Double] {
        precondition(gram.count == rank * rank)
        let bound = (0..<rank).map { k in (0..<rank).reduce(0.0) { $0 + abs(Double(gram[k * rank + $1])) } }.max() ?? 0
        let c2 = scaled && bound > 0 ? 1 / bound : 1
        let c = c2.squareRoot()
        return (0..<(rank * rank)).map { index in
            let (i, j) = (index / rank, index % rank)
            return c * ((i == j ? 1.5 : 0) - 0.5 * c2 * Double(gram[index]))
        }
    }
}
