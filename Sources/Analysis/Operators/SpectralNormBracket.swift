import CLAPACK
import Foundation
import NetIO

/// An upper bound on σ₁ of a complex matrix by Gram iteration, and the steps it took.
public struct GramIterationBound: Codable, Sendable, Equatable {
    /// ‖G_t‖_F^{1/2^t} at the last step t, ≥ σ₁.
    public var bound: Double
    /// t, the number of Gram steps taken.
    public var iterations: Int
}

/// Gram iteration (Delattre, Barthélemy, Araujo & Allauzen, ICML 2023):
/// G₀ = B, G_{t+1} = G_t^*·G_t, so that σ₁(G_t) = σ₁(B)^{2^t} and, since
/// σ₁ ≤ ‖·‖_F, σ₁(B) ≤ ‖G_t‖_F^{1/2^t}. The bound falls monotonically to σ₁,
/// quadratically once G_t is close to rank one: with r singular values tied
/// at σ₁ it is at most σ₁·(rank/r)^{1/2^{t+1}}. Each G_t is rescaled to unit
/// Frobenius norm and the scale kept as a logarithm L_t (G_t = e^{L_t}·N_t,
/// L_{t+1} = 2L_t + log‖N_t^*N_t‖_F, bound e^{L_t/2^t}), so nothing
/// overflows. The first Gram step forms the smaller of B^*B and BB^* (their
/// powers have the same Frobenius norms: tr((B^*B)^k) = tr((BB^*)^k)); the
/// later ones square a Hermitian matrix with zgemm.
///
/// `interleaved` is rows×columns, row-major, (re, im) pairs. It stops when a
/// step lowers the bound by less than 1e-15 relative (float64 rounding) or
/// after `maxIterations` steps. In float64 the bound is ≥ σ₁ up to rounding
/// (~1e-15 relative): each step's Frobenius norm carries a relative error
/// ~√d·ε, divided by 2^t in the bound.
public func gramIterationBound(_ interleaved: [Double], rows m: Int, columns n: Int, maxIterations: Int = 60)
    -> GramIterationBound
{
    precondition(interleaved.count == 2 * m * n && m > 0 && n > 0)
    func frobenius(_ a: [Double]) -> Double {
        // Scaled sum of squares: the entries of a rescaled iterate stay O(1).
        var sum = 0.0
        for v in a { sum += v * v }
        return sum.squareRoot()
    }
    let f0 = frobenius(interleaved)
    if f0 == 0 || !f0.isFinite { return GramIterationBound(bound: f0, iterations: 0) }
    var logScale = log(f0)
    let normalized = interleaved.map { $0 / f0 }
    let d = min(m, n)
    var current = [Double](repeating: 0, count: 2 * d * d)
    var one = [1.0, 0.0]
    var zero = [0.0, 0.0]
    normalized.withUnsafeBufferPointer { a in
        current.withUnsafeMutableBufferPointer { c in
            if m <= n {
                // B·B^* (m×m): row-major A (m×n), A·A^H.
                cblas_zgemm(
                    CblasRowMajor, CblasNoTrans, CblasConjTrans, Int32(m), Int32(m), Int32(n), &one,
                    a.baseAddress!, Int32(n), a.baseAddress!, Int32(n), &zero, c.baseAddress!, Int32(m))
            } else {
                // B^*·B (n×n).
                cblas_zgemm(
                    CblasRowMajor, CblasConjTrans, CblasNoTrans, Int32(n), Int32(n), Int32(m), &one,
                    a.baseAddress!, Int32(n), a.baseAddress!, Int32(n), &zero, c.baseAddress!, Int32(n))
            }
        }
    }
    var best = f0
    var t = 0
    var next = [Double](repeating: 0, count: 2 * d * d)
    while t < maxIterations {
        // `current` holds N_t^*N_t for the iterate N_t of scale e^{logScale}.
        let f = frobenius(current)
        if f == 0 || !f.isFinite { break }
        t += 1
        logScale = 2 * logScale + log(f)
        let scale = 1 / f
        for k in current.indices { current[k] *= scale }
        let bound = exp(logScale / pow(2, Double(t)))
        let improvement = best - bound
        if bound < best { best = bound }
        if improvement <= 1e-15 * bound || t == maxIterations { break }
        current.withUnsafeBufferPointer { a in
            next.withUnsafeMutableBufferPointer { c in
                cblas_zgemm(
                    CblasRowMajor, CblasConjTrans, CblasNoTrans, Int32(d), Int32(d), Int32(d), &one,
                    a.baseAddress!, Int32(d), a.baseAddress!, Int32(d), &zero, c.baseAddress!, Int32(d))
            }
        }
        swap(&current, &next)
    }
    return GramIterationBound(bound: best, iterations: t)
}

/// ‖A‖₂ of a layer's zero-padded operator, bracketed: a lower bound from
/// power iteration on AᵀA and an upper bound, the smaller of Gram
/// iteration on a circular operator that contains A and, where that one's
/// gap exceeds the tolerance, a Cholesky certificate of μI − AᵀA
/// (``ConvOperator/spectralNormBracket(tolerance:maxPowerIterations:gridCandidates:threads:seed:)``).
public struct SpectralNormBracket: Codable, Sendable, Equatable {
    /// √(vᵀAᵀAv) for the last unit iterate v: ≤ ‖A‖₂ for any unit v.
    public var lower: Double
    /// Power-iteration steps taken (one A and one Aᵀ each).
    public var powerIterations: Int
    /// Whether the Rayleigh quotient's last relative change was < 1e-12 (else the cap ended it).
    public var powerConverged: Bool
    /// |λ_k − λ_{k−1}| / λ_k at the last step.
    public var powerLastRelativeChange: Double
    /// The smaller of ``circularUpper`` and the ``certificate``'s bound: ≥ ‖A‖₂.
    public var upper: Double
    /// max over the polyphase blocks of their Gram iteration bounds, for the
    /// strided circular operator on the grid below: ≥ ‖A‖₂. (nil in an
    /// analysis.json written before this field: its `upper` is this bound.)
    public var circularUpper: Double?
    /// A bound just above `lower` certified by a banded Cholesky
    /// factorisation of μI − AᵀA, where the circular one leaves a gap above
    /// the tolerance; nil where it was not needed or no μ up to
    /// (lower·(1 + 64·tolerance))² factorised.
    public var certificate: CholeskyCertificate?
    /// The most Gram steps any block took.
    public var gramIterations: Int
    /// N₁ and N₂, the periodic grid whose circular operator gave `circularUpper`
    /// (the smallest bound among the grids tried).
    public var gridHeight: Int
    public var gridWidth: Int
    /// (upper − lower) / upper.
    public var relativeGap: Double
    /// The gap asked for.
    public var tolerance: Double
    /// relativeGap ≤ tolerance: can be false (the circular operator's norm
    /// exceeds the zero-padded one's by its boundary effect, or the power
    /// iteration stopped early); report it then, don't hide it.
    public var withinTolerance: Bool { relativeGap <= tolerance }
}

extension ConvOperator {
    /// The smallest periodic grid side N with the zero-padded operator inside the strided
    /// circular one on N: N ≥ extent + p (a tap on padding wraps onto zeros, never onto the
    /// input), N ≥ k (the taps of one output stay distinct mod N), N ≥ s·outputs (each output
    /// row exists) and s | N (the polyphase blocks exist).
    static func smallestGrid(extent: Int, kernel k: Int, stride s: Int, padding p: Int, outputs: Int) -> Int {
        let least = max(extent + p, k, s * outputs)
        return (least + s - 1) / s * s
    }

    /// An upper bound on ‖C_N‖₂, the strided circular operator on N₁×N₂
    /// (``circularSpectrum(gridHeight:gridWidth:threads:)``): the largest
    /// ``gramIterationBound(_:rows:columns:maxIterations:)`` over its polyphase blocks
    /// (‖C_N‖₂ = max_ν σ₁(B(ν)), the operator being unitarily block diagonal;
    /// the paper iterates on the whole block-diagonal matrix at once, whose
    /// bound is never lower than the largest block's).
    public func circularGramBound(gridHeight n1: Int, gridWidth n2: Int, threads: Int = 2) throws
        -> GramIterationBound
    {
        try gramBoundWithBlock(gridHeight: n1, gridWidth: n2, threads: threads).bound
    }

    /// ``circularGramBound(gridHeight:gridWidth:threads:)`` and the index of the block that gave it.
    func gramBoundWithBlock(gridHeight n1: Int, gridWidth n2: Int, threads: Int) throws -> (
        bound: GramIterationBound, block: Int
    ) {
        let blocks = try PolyphaseBlocks(self, gridHeight: n1, gridWidth: n2)
        let bounds = parallelMap(blocks.count, threads: threads) { index in
            gramIterationBound(blocks.block(index), rows: blocks.rows, columns: blocks.columns)
        }
        var result = GramIterationBound(bound: 0, iterations: 0)
        var block = 0
        for (index, b) in bounds.enumerated() {
            if !(b.bound <= result.bound) {  // NaN propagates
                result.bound = b.bound
                block = index
            }
            result.iterations = max(result.iterations, b.iterations)
        }
        return (result, block)
    }

    /// A start for the power iteration: the top right singular vector of
    /// polyphase block `index` on the N₁×N₂ grid as an input, x[c, u] =
    /// Σ_r v[(c·s + r₁)·s + r₂]·e^{2πi⟨ν + r∘M, u⟩/N} (its unitary DFT is v on
    /// the block's input frequencies), real part (the operator is real, so
    /// it lies in the same singular space), on the H×W input only. nil if
    /// zgesvd fails or the vector vanishes there.
    func circularTopInput(gridHeight n1: Int, gridWidth n2: Int, block index: Int) throws -> [Double]? {
        let blocks = try PolyphaseBlocks(self, gridHeight: n1, gridWidth: n2)
        let (m, n) = (blocks.rows, blocks.columns)
        var a = blocks.block(index)
        let r = min(m, n)
        var sigma = [Double](repeating: 0, count: r)
        var superb = [Double](repeating: 0, count: max(1, r - 1))
        var vt = [Double](repeating: 0, count: 2 * r * n)
        var noU = [Double](repeating: 0, count: 2)
        let info = a.withUnsafeMutableBufferPointer { pa in
            vt.withUnsafeMutableBufferPointer { pv in
                noU.withUnsafeMutableBufferPointer { pu in
                    LAPACKE_zgesvd(
                        LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "S")), Int32(m), Int32(n),
                        OpaquePointer(pa.baseAddress!), Int32(n), &sigma, OpaquePointer(pu.baseAddress!), 1,
                        OpaquePointer(pv.baseAddress!), Int32(n), &superb)
                }
            }
        }
        if info != 0 { return nil }
        let s = stride
        let nu1 = index / blocks.m2
        let nu2 = index % blocks.m2
        var real = [Double](repeating: 0, count: inputCount)
        var imaginary = [Double](repeating: 0, count: inputCount)
        for c in 0..<inChannels {
            for r1 in 0..<s {
                for r2 in 0..<s {
                    // Row 0 of Vᴴ is v₁ᴴ: v₁ = its conjugate.
                    let column = (c * s + r1) * s + r2
                    let vr = vt[2 * column]
                    let vi = -vt[2 * column + 1]
                    let w1 = nu1 + r1 * blocks.m1
                    let w2 = nu2 + r2 * blocks.m2
                    for u1 in 0..<inputHeight {
                        for u2 in 0..<inputWidth {
                            let t =
                                2 * Double.pi
                                * (Double((w1 * u1) % n1) / Double(n1) + Double((w2 * u2) % n2) / Double(n2))
                            let (er, ei) = (cos(t), sin(t))
                            let k = (c * inputHeight + u1) * inputWidth + u2
                            real[k] += vr * er - vi * ei
                            imaginary[k] += vr * ei + vi * er
                        }
                    }
                }
            }
        }
        let realNorm = real.reduce(0) { $0 + $1 * $1 }
        let imaginaryNorm = imaginary.reduce(0) { $0 + $1 * $1 }
        let x = realNorm >= imaginaryNorm ? real : imaginary
        return max(realNorm, imaginaryNorm) > 0 ? x : nil
    }

    /// ‖A‖₂ of the zero-padded operator as used, never forming A.
    ///
    /// Lower bound: power iteration on AᵀA with the direct convolution and
    /// its transpose (``apply(_:)``, ``adjoint(_:)``, OpenBLAS single-threaded:
    /// callers run layers side by side). λ_k = ‖A·v_k‖² for a unit v_k is ≤ σ₁²
    /// at every step and rises to it; the iteration stops when
    /// |λ_k − λ_{k−1}| < 1e-12·λ_k or after `maxPowerIterations` steps (both
    /// reported). It starts from the circular operator's top singular
    /// vector (the one behind `upper`) on the H×W input, plus a seeded random
    /// 1e-3 part so that no direction is missing: the zero-padded operator's
    /// top vector is close to it, so fewer steps are needed than from a
    /// random start (measured on ResNet-20's 28×28 shapes: 535 against 1370
    /// for conv1, 1036 against more than 2000 for 16→16; docs/operators.md).
    ///
    /// Upper bound: zero padding is a restriction of a circular convolution.
    /// Embed the H×W input in an N₁×N₂ periodic grid (N₁ ≥ H + p, N₁ ≥ kh,
    /// N₁ ≥ s·Ho, s | N₁; likewise N₂): every tap that reads padding then
    /// reads a grid cell outside the embedded input, which holds 0, so
    /// A = P·C_N·E with E the embedding (an isometry), C_N the strided circular
    /// operator on the grid and P the selection of the Ho×Wo outputs (a
    /// coordinate projection), and ‖A‖₂ ≤ ‖C_N‖₂. Gram iteration bounds
    /// ‖C_N‖₂ from above (``circularGramBound(gridHeight:gridWidth:threads:)``);
    /// any such grid gives a valid bound, so the smallest over `gridCandidates`
    /// grids (N, N + s, N + 2s, … a side) is taken.
    ///
    /// The circular bound's gap mixes two things: the power iteration's
    /// convergence and the boundary: ‖C_N‖₂ samples the kernel's symbol on
    /// the grid's frequencies, ‖A‖₂ is the zero-padded (Toeplitz) operator's,
    /// smaller by a boundary effect that shrinks with the input size
    /// (docs/operators.md). Where that gap is above `tolerance`, a Cholesky
    /// factorisation of μI − AᵀA certifies a bound just above the lower one
    /// (``choleskyCertificate(above:tolerance:)``), and `upper` is the
    /// smaller of the two. A gap still above `tolerance` is reported, not hidden.
    public func spectralNormBracket(
        tolerance: Double = 1e-3, maxPowerIterations: Int = 2000, gridCandidates: Int = 4, threads: Int = 2,
        seed: UInt64 = 0x5EED
    ) throws -> SpectralNormBracket {
        precondition(gridCandidates >= 1 && maxPowerIterations >= 1)
        let base1 = Self.smallestGrid(
            extent: inputHeight, kernel: kernelHeight, stride: stride, padding: padding, outputs: outputHeight)
        let base2 = Self.smallestGrid(
            extent: inputWidth, kernel: kernelWidth, stride: stride, padding: padding, outputs: outputWidth)
        var upper = GramIterationBound(bound: .infinity, iterations: 0)
        var grid = (base1, base2)
        var topBlock = 0
        for t in 0..<gridCandidates {
            let g = (base1 + t * stride, base2 + t * stride)
            let b = try gramBoundWithBlock(gridHeight: g.0, gridWidth: g.1, threads: threads)
            if b.bound.bound.isNaN {
                throw ConvOperatorError.invalidLayer(layer: name, reason: "Gram iteration gave NaN")
            }
            if b.bound.bound < upper.bound {
                upper = b.bound
                grid = g
                topBlock = b.block
            }
        }
        var random = SeededRandom(seed: seed)
        var start = (0..<inputCount).map { _ in Double.random(in: -1...1, using: &random) }
        if let top = try circularTopInput(gridHeight: grid.0, gridWidth: grid.1, block: topBlock) {
            let topNorm = top.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let randomNorm = start.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for i in start.indices { start[i] = top[i] / topNorm + 1e-3 * start[i] / randomNorm }
        }
        let power = withSingleThreadedBLAS { powerIteration(start: start, maxIterations: maxPowerIterations) }
        let lower = power.rayleigh.squareRoot()
        let circularGap = upper.bound > 0 ? (upper.bound - lower) / upper.bound : 0
        let certificate =
            circularGap > tolerance
            ? withSingleThreadedBLAS { choleskyCertificate(above: lower, tolerance: tolerance) } : nil
        let best = min(upper.bound, certificate?.bound ?? .infinity)
        return SpectralNormBracket(
            lower: lower, powerIterations: power.iterations, powerConverged: power.converged,
            powerLastRelativeChange: power.change, upper: best, circularUpper: upper.bound, certificate: certificate,
            gramIterations: upper.iterations, gridHeight: grid.0, gridWidth: grid.1,
            relativeGap: best > 0 ? (best - lower) / best : 0, tolerance: tolerance)
    }

    /// Power iteration on AᵀA from `start`: the last Rayleigh quotient λ = ‖A·v‖² (v unit).
    func powerIteration(start: [Double], maxIterations: Int) -> (
        rayleigh: Double, iterations: Int, converged: Bool, change: Double
    ) {
        precondition(start.count == inputCount)
        var v = start
        var u = [Double](repeating: 0, count: outputCount)
        var patches = [Double](repeating: 0, count: patchRows * outputHeight * outputWidth)
        func normalize(_ x: inout [Double]) -> Double {
            var sum = 0.0
            for t in x { sum += t * t }
            let n = sum.squareRoot()
            if n > 0 {
                let scale = 1 / n
                for i in x.indices { x[i] *= scale }
            }
            return n
        }
        if normalize(&v) == 0 { return (0, 0, true, 0) }
        var previous = 0.0
        var lambda = 0.0
        var change = Double.infinity
        var k = 0
        var converged = false
        while k < maxIterations {
            k += 1
            v.withUnsafeBufferPointer { vp in
                u.withUnsafeMutableBufferPointer { up in
                    patches.withUnsafeMutableBufferPointer { pp in
                        apply(vp.baseAddress!, into: up.baseAddress!, patches: pp.baseAddress!)
                    }
                }
            }
            lambda = 0
            for t in u { lambda += t * t }
            change = lambda > 0 ? abs(lambda - previous) / lambda : 0
            if lambda == 0 || change < 1e-12 {
                converged = true
                break
            }
            previous = lambda
            u.withUnsafeBufferPointer { up in
                v.withUnsafeMutableBufferPointer { vp in
                    patches.withUnsafeMutableBufferPointer { pp in
                        adjoint(up.baseAddress!, into: vp.baseAddress!, patches: pp.baseAddress!)
                    }
                }
            }
            if normalize(&v) == 0 {
                converged = true
                break
            }
        }
        return (lambda, k, converged, change)
    }
}
