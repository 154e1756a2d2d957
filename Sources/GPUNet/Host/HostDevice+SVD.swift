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
}
