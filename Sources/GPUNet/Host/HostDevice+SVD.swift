/// The host twins of the SVD-coordinate operations: plain loops (a factor
/// is at most a few thousand floats, below any threading threshold).
extension HostDevice {
    public func svdScaleColumns(_ s: SVDFactorShape, x: Buffer, sigma: Buffer, mask: Buffer, output: Buffer) throws {
        let operation = "svdScaleColumns \(s)"
        guard s.isValid else { throw HostDeviceError.invalidShape(operation: operation, reason: "empty factor") }
        let px = try floats(x, at: s.count, operation, "x")
        let ps = try floats(sigma, at: s.rank, operation, "sigma")
        let pm = try floats(mask, at: s.rank, operation, "mask")
        let po = try floats(output, at: s.count, operation, "output")
        for i in 0..<s.rows {
            for j in 0..<s.rank { po[i * s.rank + j] = px[i * s.rank + j] * (ps[j] * pm[j]) }
        }
    }

    public func svdSigmaGradient(
        _ s: SVDFactorShape, u: Buffer, g: Buffer, sigma: Buffer, mask: Buffer, l1: Float, gradSigma: Buffer
    ) throws {
        let operation = "svdSigmaGradient \(s)"
        guard s.isValid else { throw HostDeviceError.invalidShape(operation: operation, reason: "empty factor") }
        let pu = try floats(u, at: s.count, operation, "u")
        let pg = try floats(g, at: s.count, operation, "g")
        let ps = try floats(sigma, at: s.rank, operation, "sigma")
        let pm = try floats(mask, at: s.rank, operation, "mask")
        let pd = try floats(gradSigma, at: s.rank, operation, "gradSigma")
        for j in 0..<s.rank {
            var sum: Float = 0
            for i in 0..<s.rows { sum += pu[i * s.rank + j] * pg[i * s.rank + j] }
            let sign: Float = ps[j] > 0 ? 1 : (ps[j] < 0 ? -1 : 0)
            pd[j] = pm[j] * (sum + l1 * sign)
        }
    }

    public func svdNewtonSchulzFactor(rank: Int, gram: Buffer, factor: Buffer, scaled: Bool) throws {
        let operation = "svdNewtonSchulzFactor rank \(rank)"
        guard rank >= 1 else { throw HostDeviceError.invalidShape(operation: operation, reason: "rank < 1") }
        let pa = try floats(gram, at: rank * rank, operation, "gram")
        let pf = try floats(factor, at: rank * rank, operation, "factor")
        var c2: Float = 1
        if scaled {
            var bound: Float = 0
            for k in 0..<rank {
                var sum: Float = 0
                for j in 0..<rank { sum += abs(pa[k * rank + j]) }
                bound = max(bound, sum)
            }
            if bound > 0 { c2 = 1 / bound }
        }
        let c = c2.squareRoot()
        for i in 0..<rank {
            for j in 0..<rank { pf[i * rank + j] = c * ((i == j ? 1.5 : 0) - 0.5 * c2 * pa[i * rank + j]) }
        }
    }
}
