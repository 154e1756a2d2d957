import Foundation

/// A power law p(x) ∝ x^{−α} for x ≥ x_min fitted to a spectrum's
/// eigenvalues λᵢ = σᵢ² by Clauset, Shalizi & Newman (2009): for each
/// candidate x_min (each distinct value with at least ``minimumTail`` values
/// at or above it) the continuous maximum-likelihood
/// α = 1 + n_tail / Σ_{x ≥ x_min} ln(x / x_min); x_min is the candidate whose
/// fit is closest to the tail's empirical distribution in Kolmogorov–Smirnov
/// distance D = max_x |S(x) − P(x)|, P(x) = 1 − (x/x_min)^{1−α}.
public struct PowerLawFit: Codable, Sendable, Equatable {
    /// The exponent α of the density.
    public var alpha: Double
    /// (α − 1)/√n_tail, the MLE's asymptotic standard error.
    public var alphaStandardError: Double
    public var xMin: Double
    /// Values ≥ x_min.
    public var tailCount: Int
    /// The KS distance of the chosen fit.
    public var ksDistance: Double

    /// The fewest tail values a candidate x_min may leave (a smaller tail
    /// fits any exponent: the KS distance of two points is tiny).
    public static let minimumTail = 10

    /// Fits `values` (only the positive ones are used); nil when fewer than
    /// ``minimumTail`` are positive.
    public static func fit(_ values: [Double]) -> PowerLawFit? {
        let x = values.filter { $0 > 0 && $0.isFinite }.sorted()
        let n = x.count
        guard n >= minimumTail else { return nil }
        let logs = x.map { log($0) }
        // suffix[j] = Σ_{i ≥ j} ln xᵢ, so that Σ ln(x/x_min) = suffix[j] − n_tail·ln x_min.
        var suffix = [Double](repeating: 0, count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) { suffix[i] = suffix[i + 1] + logs[i] }
        var best: PowerLawFit?
        var j = 0
        while j <= n - minimumTail {
            let tail = n - j
            let xMin = x[j]
            let sumLog = suffix[j] - Double(tail) * logs[j]
            if sumLog > 0 {
                let alpha = 1 + Double(tail) / sumLog
                var d = 0.0
                for i in 0..<tail {
                    let fitted = 1 - pow(x[j + i] / xMin, 1 - alpha)
                    d = max(d, abs(fitted - Double(i) / Double(tail)), abs(fitted - Double(i + 1) / Double(tail)))
                }
                if best == nil || d < best!.ksDistance {
                    best = PowerLawFit(
                        alpha: alpha, alphaStandardError: (alpha - 1) / Double(tail).squareRoot(),
                        xMin: xMin, tailCount: tail, ksDistance: d)
                }
            }
            // The next distinct value (equal values give the same x_min).
            var next = j + 1
            while next < n && x[next] == xMin { next += 1 }
            j = next
        }
        return best
    }
}

/// Spectral metrics of one list of singular values (a reshaped weight or
/// an exact operator).
public struct SpectralMetrics: Codable, Sendable, Equatable {
    /// How many singular values.
    public var count: Int
    /// σ₁.
    public var spectralNorm: Double
    /// Σσᵢ² / σ₁² (between 1 and count).
    public var stableRank: Double
    /// exp(−Σ pᵢ log pᵢ), pᵢ = σᵢ/Σσⱼ: the same definition as phase 2's
    /// `entropyEffectiveRank`.
    public var entropyRank: Double
    /// Eigenvalues λᵢ = σᵢ² that count as non-zero: σᵢ > max(m, n)·ε·σ₁
    /// (LAPACK's rank tolerance); the power law is fitted to these.
    public var nonzeroEigenvalues: Int
    /// The power-law fit of the non-zero eigenvalues, nil when there are
    /// fewer than ``minimumEigenvaluesForPowerLaw``.
    public var powerLaw: PowerLawFit?
    /// Why there is or is not a fit, in words.
    public var powerLawNote: String

    /// The least number of non-zero eigenvalues for a power-law fit: one fitted to fewer says nothing.
    public static let minimumEigenvaluesForPowerLaw = 50

    /// `shape` is the matrix's [rows, columns] (for the rank tolerance).
    public init(singularValues sigma: [Double], shape: [Int]) {
        precondition(!sigma.isEmpty && shape.count == 2)
        let s1 = sigma.max()!
        count = sigma.count
        spectralNorm = s1
        stableRank = sigma.reduce(0) { $0 + $1 * $1 } / (s1 * s1)
        entropyRank = entropyEffectiveRank(singularValues: sigma)
        let tolerance = Double(max(shape[0], shape[1])) * Double.ulpOfOne * s1
        let eigenvalues = sigma.filter { $0 > tolerance }.map { $0 * $0 }
        nonzeroEigenvalues = eigenvalues.count
        if eigenvalues.count >= Self.minimumEigenvaluesForPowerLaw, let fit = PowerLawFit.fit(eigenvalues) {
            powerLaw = fit
            powerLawNote = "CSN fit to the \(eigenvalues.count) non-zero eigenvalues σᵢ²"
        } else {
            powerLaw = nil
            powerLawNote =
                "not fitted: \(eigenvalues.count) non-zero eigenvalues, fewer than \(Self.minimumEigenvaluesForPowerLaw)"
        }
    }
}

/// max(a, b), NaN when either is NaN (Swift's max drops a NaN second
/// argument), so that a NaN reaches the check and fails it.
func largestPropagatingNaN(_ a: Double, _ b: Double) -> Double {
    a.isNaN || b.isNaN ? .nan : max(a, b)
}
