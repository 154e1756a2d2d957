/// The SVD-coordinate operations (`common/svd_factors.cl`), the same
/// kernels in both families: each launch is a few thousand elements at most.
extension OpenCLDevice {
    /// `svd_scale_columns`, one work-item per element.
    public func svdScaleColumns(_ s: SVDFactorShape, x: Buffer, sigma: Buffer, mask: Buffer, output: Buffer) throws {
        func operation() -> String { "svdScaleColumns \(s)" }
        guard s.isValid else { throw OpenCLError.invalidArgument("\(operation()): empty factor") }
        let bx = try cl(x, "x", atLeast: s.count, in: operation())
        let bs = try cl(sigma, "sigma", atLeast: s.rank, in: operation())
        let bm = try cl(mask, "mask", atLeast: s.rank, in: operation())
        let bo = try cl(output, "output", atLeast: s.count, in: operation())
        try launch(
            "svd_scale_columns", items: s.count,
            [.buffer(bx), .buffer(bs), .buffer(bm), .buffer(bo), .int(s.rows), .int(s.rank)])
    }

    /// `svd_sigma_gradient`, one work-item per column (rank ≤ a few hundred:
    /// a sum of at most in·kH·kW terms each).
    public func svdSigmaGradient(
        _ s: SVDFactorShape, u: Buffer, g: Buffer, sigma: Buffer, mask: Buffer, l1: Float, gradSigma: Buffer
    ) throws {
        func operation() -> String { "svdSigmaGradient \(s)" }
        guard s.isValid else { throw OpenCLError.invalidArgument("\(operation()): empty factor") }
        let bu = try cl(u, "u", atLeast: s.count, in: operation())
        let bg = try cl(g, "g", atLeast: s.count, in: operation())
        let bs = try cl(sigma, "sigma", atLeast: s.rank, in: operation())
        let bm = try cl(mask, "mask", atLeast: s.rank, in: operation())
        let bd = try cl(gradSigma, "gradSigma", atLeast: s.rank, in: operation())
        try launch(
            "svd_sigma_gradient", items: s.rank,
            [
                .buffer(bu), .buffer(bg), .buffer(bs), .buffer(bm), .buffer(bd), .int(s.rows), .int(s.rank),
                .float(l1),
            ])
    }

    /// `svd_newton_schulz_factor`, one work-item per row of the factor.
    public func svdNewtonSchulzFactor(rank: Int, gram: Buffer, factor: Buffer, scaled: Bool) throws {
        func operation() -> String { "svdNewtonSchulzFactor rank \(rank)" }
        guard rank >= 1 else { throw OpenCLError.invalidArgument("\(operation()): rank < 1") }
        let bg = try cl(gram, "gram", atLeast: rank * rank, in: operation())
        let bf = try cl(factor, "factor", atLeast: rank * rank, in: operation())
        try launch(
            "svd_newton_schulz_factor", items: rank, [.buffer(bg), .buffer(bf), .int(rank), .int(scaled ? 1 : 0)])
    }
}
