import Foundation

/// One number over the members of a study (one value per seed): mean,
/// sample standard deviation, range and a 95 % confidence interval for the
/// mean.
///
/// The interval is Student's t: mean ± t₀.₉₇₅,ₙ₋₁ · s/√n, which assumes the
/// per-seed values are independent draws from a normal distribution; with
/// n = 5 seeds t₀.₉₇₅,₄ = 2.776, so the half-width is 1.24·s. With one
/// member the standard deviation and the interval are undefined (NaN,
/// written as "nan").
public struct SampleSummary: Codable, Sendable, Equatable {
    public var count: Int
    public var mean: Double
    /// Sample standard deviation, √(Σ(xᵢ − x̄)²/(n − 1)).
    public var standardDeviation: Double
    public var min: Double
    public var max: Double
    /// The 95 % t-interval for the mean.
    public var interval95: [Double]
    /// The values, in member (seed) order.
    public var values: [Double]

    public init(_ values: [Double]) {
        precondition(!values.isEmpty, "a summary needs at least one value")
        let n = Double(values.count)
        self.values = values
        count = values.count
        mean = values.reduce(0, +) / n
        let m = mean
        let squares = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        standardDeviation = values.count > 1 ? (squares / (n - 1)).squareRoot() : .nan
        min = values.min()!
        max = values.max()!
        if values.count > 1 {
            let half =
                StudentT.quantile(0.975, degreesOfFreedom: Double(values.count - 1)) * standardDeviation
                / n.squareRoot()
            interval95 = [mean - half, mean + half]
        } else {
            interval95 = [.nan, .nan]
        }
    }
}

/// Student's t distribution.
public enum StudentT {
    /// P(T ≤ t) with ν degrees of freedom: for t ≥ 0, 1 − ½·I_{ν/(ν+t²)}(ν/2, ½),
    /// I the regularised incomplete beta function.
    public static func cdf(_ t: Double, degreesOfFreedom nu: Double) -> Double {
        let tail = 0.5 * regularizedIncompleteBeta(x: nu / (nu + t * t), a: nu / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The p-quantile (0 < p < 1), by bisection on ``cdf(_:degreesOfFreedom:)``
    /// to 1e-12 relative: t₀.₉₇₅ is 12.706 for ν = 1, 2.776 for ν = 4, 2.262 for ν = 9.
    public static func quantile(_ p: Double, degreesOfFreedom nu: Double) -> Double {
        precondition(p > 0 && p < 1 && nu > 0)
        if p < 0.5 { return -quantile(1 - p, degreesOfFreedom: nu) }
        var low = 0.0
        var high = 1.0
        while cdf(high, degreesOfFreedom: nu) < p { high *= 2 }
        for _ in 0..<200 {
            let mid = (low + high) / 2
            if cdf(mid, degreesOfFreedom: nu) < p { low = mid } else { high = mid }
            if high - low <= 1e-12 * high { break }
        }
        return (low + high) / 2
    }

    /// I_x(a, b) by the continued fraction of Numerical Recipes (§6.4, modified
    /// Lentz), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where it converges faster.
    static func regularizedIncompleteBeta(x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let front = exp(logGammas + logPowers)
        if x < (a + 1) / (a + b + 2) { return front * continuedFraction(x: x, a: a, b: b) / a }
        return 1 - front * continuedFraction(x: 1 - x, a: b, b: a) / b
    }

    private static func continuedFraction(x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...10_000 {
            let m = Double(m)
            var numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + numerator * d
            if abs(d) < tiny { d = tiny }
            c = 1 + numerator / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + numerator * d
            if abs(d) < tiny { d = tiny }
            c = 1 + numerator / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return h
    }
}
