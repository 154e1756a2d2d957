import Foundation

/// Phase 2: the singular value decomposition of one conv layer's weight,
/// reshaped to W (out, in·kH·kW) with PyTorch's flattening (in, kH, kW).
public struct LayerSpectrum: Codable, Sendable, Equatable {
    /// "conv1" or "conv2".
    public var layer: String
    /// The weight tensor's shape [out, in, kH, kW].
    public var weightShape: [Int]
    /// W's shape [out, in·kH·kW].
    public var matrixShape: [Int]
    /// σ₁ ≥ … ≥ σ_r, r = min(out, in·kH·kW), from LAPACKE_dgesdd in float64.
    public var singularValues: [Double]
    /// Element k−1 is Σ_{i≤k} σᵢ² / Σᵢ σᵢ² (k = 1…r); the last is 1.
    public var cumulativeEnergy: [Double]
    /// The smallest k whose cumulative energy is ≥ 0.90.
    public var componentsFor90PercentEnergy: Int
    /// The smallest k whose cumulative energy is ≥ 0.95.
    public var componentsFor95PercentEnergy: Int
    /// The smallest k whose cumulative energy is ≥ 0.99.
    public var componentsFor99PercentEnergy: Int
    /// ‖W‖²_F / σ₁² (between 1 and r).
    public var stableRank: Double
    /// exp(−Σ pᵢ log pᵢ) with pᵢ = σᵢ / Σⱼ σⱼ (0·log 0 = 0; between 1 and r).
    public var entropyEffectiveRank: Double
    /// The number of σᵢ > max(out, patch)·ε·σ₁ (ε = 2⁻⁵², LAPACK's usual rank tolerance).
    public var numericalRank: Int
    /// All eigenvalues of WᵀW (patch×patch) from LAPACKE_dsyevd, descending:
    /// σᵢ² then patch − r values that are zero up to rounding.
    public var gramEigenvalues: [Double]
    /// max over i ≤ r of |σᵢ² − λᵢ(WᵀW)| and over i > r of |λᵢ|, divided by σ₁².
    /// Tolerance 1e-12: both are float64 backward-stable, so the eigenvalues
    /// of the Gram matrix carry absolute errors ~patch·ε·σ₁².
    public var sigmaVersusGramEigenvaluesError: Double
    /// U, out×r, as rows (u[i][j] = U_ij; column j is the j-th output direction).
    public var u: [[Double]]
    /// Vᵀ, r×patch, as rows. Row j is the j-th right singular vector, i.e.
    /// the j-th eigenfilter, flattened in the order (in, kH, kW).
    public var vt: [[Double]]
    /// The shape [in, kH, kW] of each eigenfilter (a row of `vt`).
    public var eigenfilterShape: [Int]

    /// Eigenfilter j as [in][kH][kW] (row j of Vᵀ reshaped).
    public func eigenfilter(_ j: Int) -> [[[Double]]] {
        let (c, h, w) = (eigenfilterShape[0], eigenfilterShape[1], eigenfilterShape[2])
        return (0..<c).map { ci in (0..<h).map { i in (0..<w).map { k in vt[j][(ci * h + i) * w + k] } } }
    }
}

/// The energy thresholds the report counts components for.
func componentsFor(energy threshold: Double, cumulative: [Double]) -> Int {
    // The last entry is 1 up to rounding; the count never exceeds r.
    (cumulative.firstIndex { $0 >= threshold } ?? (cumulative.count - 1)) + 1
}

/// Cumulative energy fractions Σ_{i≤k} σᵢ²/Σσᵢ², k = 1…r.
public func cumulativeEnergyFractions(_ sigma: [Double]) -> [Double] {
    let total = sigma.reduce(0) { $0 + $1 * $1 }
    var running = 0.0
    return sigma.map { s in
        running += s * s
        return running / total
    }
}

/// exp(−Σ pᵢ log pᵢ), pᵢ = σᵢ/Σσⱼ.
public func entropyEffectiveRank(singularValues sigma: [Double]) -> Double {
    let total = sigma.reduce(0, +)
    var entropy = 0.0
    for s in sigma where s > 0 {
        let p = s / total
        entropy -= p * log(p)
    }
    return exp(entropy)
}

extension LayerSpectrum {
    /// Decomposes `w` and derives every phase-2 number.
    static func compute(layer: String, weightShape: [Int], w: Matrix, svd: SingularValueDecomposition) throws
        -> LayerSpectrum
    {
        let sigma = svd.singularValues
        let cumulative = cumulativeEnergyFractions(sigma)
        let sigma1 = sigma[0]
        let gram = w.transposed * w
        let eigenvalues = try symmetricEigenvalues(gram, context: "\(layer) WᵀW (\(gram.rows)×\(gram.columns))")
        var worst = 0.0
        for (i, lambda) in eigenvalues.enumerated() {
            let expected = i < sigma.count ? sigma[i] * sigma[i] : 0
            worst = max(worst, abs(expected - lambda))
        }
        let tolerance = Double(max(w.rows, w.columns)) * Double.ulpOfOne * sigma1
        return LayerSpectrum(
            layer: layer, weightShape: weightShape, matrixShape: [w.rows, w.columns],
            singularValues: sigma, cumulativeEnergy: cumulative,
            componentsFor90PercentEnergy: componentsFor(energy: 0.90, cumulative: cumulative),
            componentsFor95PercentEnergy: componentsFor(energy: 0.95, cumulative: cumulative),
            componentsFor99PercentEnergy: componentsFor(energy: 0.99, cumulative: cumulative),
            stableRank: w.squaredFrobeniusNorm / (sigma1 * sigma1),
            entropyEffectiveRank: Analysis.entropyEffectiveRank(singularValues: sigma),
            numericalRank: sigma.filter { $0 > tolerance }.count,
            gramEigenvalues: eigenvalues,
            sigmaVersusGramEigenvaluesError: worst / (sigma1 * sigma1),
            u: svd.u.nestedRows, vt: svd.vt.nestedRows,
            eigenfilterShape: Array(weightShape[1...]))
    }
}
