import NetIO

/// The check `analyze` adds for a checkpoint trained in SVD coordinates
/// (``NetIO/SVDFactors``): the σ it stores against the singular values of
/// the W it composes to.
public enum SVDCoordinatesCheck {
    /// The limit of ``checks(sigmas:weights:)``: U and V are orthonormal to
    /// ~1e-6 after training (float32), which moves each singular value of
    /// U·diag(σ)·Vᵀ from |σ_j| by at most that much relative to σ₁.
    public static let limit = 1e-5

    /// One check per layer of `sigmas` (σ as stored, keyed by the layer
    /// name): max_i |s_i − |σ|_(i)| / s₁, with s the singular values of the
    /// layer's W (`name.weight` in `weights`, the checkpoint's composition)
    /// by LAPACKE_dgesdd in float64, descending, and |σ|_(i) the stored σ's
    /// magnitudes sorted the same way. Independent: the σ training kept
    /// against a fresh decomposition of the weight it composes to.
    public static func checks(sigmas: [String: [Float]], weights: [NamedTensor]) throws -> [Check] {
        try sigmas.keys.sorted().compactMap { layer in
            guard let w = weights.first(where: { $0.name == layer + ".weight" }), let sigma = sigmas[layer],
                let dims = SVDFactors.factorShapes(ofWeight: w.shape)
            else { return nil }
            let s = try singularValuesOnly(
                Matrix(rows: dims.out, columns: dims.columns, values: w.values.map(Double.init)),
                context: "\(layer).weight composed from its SVD factors")
            let stored = sigma.map { abs(Double($0)) }.sorted(by: >)
            let largest = max(s.first ?? 0, .leastNormalMagnitude)
            let error = zip(s, stored).map { abs($0 - $1) }.max() ?? 0
            return Check(
                id: "\(layer).stored-sigma",
                description:
                    "\(layer) max|σᵢ(U·diag(σ)·Vᵀ) − |σ|₍ᵢ₎| / σ₁: the stored σ against dgesdd of the composed W",
                value: error / largest, relation: .lessThan, limit: limit, kind: .independent)
        }
    }
}
