/// A conv weight stored in SVD coordinates (`convsvd train
/// --parameterization svd`): W (out × in·kH·kW, PyTorch's flattening) =
/// U·diag(σ)·Vᵀ with U (out × r) and V (in·kH·kW × r) orthonormal,
/// r = min(out, in·kH·kW), stored as the tensors `name.U` [out, r],
/// `name.S` [r] and `name.V` [in·kH·kW, r] in place of `name.weight`.
/// Pruned components have σ = 0.
public enum SVDFactors {
    /// The largest ‖XᵀX − I‖_max a stored U or V may have: training keeps
    /// it near 1e-6 (float32 rounding after the retraction); beyond 1e-3 the
    /// file was not written by such training (or was edited), and the
    /// composed W would silently be another network than σ describes.
    public static let orthonormalityLimit = 1e-3

    /// The factor names of a weight `prefix.weight`: `prefix.U`, `prefix.S`,
    /// `prefix.V`; nil for a name not ending in `.weight`.
    public static func factorNames(ofWeight name: String) -> (u: String, s: String, v: String)? {
        guard name.hasSuffix(".weight") else { return nil }
        let prefix = String(name.dropLast(".weight".count))
        return (prefix + ".U", prefix + ".S", prefix + ".V")
    }

    /// (rows, rank) of U and of V for a conv weight of `shape` (out, in, kH,
    /// kW); nil for any other shape.
    public static func factorShapes(ofWeight shape: [Int]) -> (out: Int, columns: Int, rank: Int)? {
        guard shape.count == 4, shape.allSatisfy({ $0 >= 1 }) else { return nil }
        let columns = shape[1] * shape[2] * shape[3]
        return (shape[0], columns, min(shape[0], columns))
    }

    /// ‖XᵀX − I‖_max for X (rows × rank), row-major, summed in float64.
    /// NaN if X holds a NaN.
    public static func orthogonalityError(_ x: [Float], rows: Int, rank: Int) -> Double {
        precondition(x.count == rows * rank)
        var worst = 0.0
        for a in 0..<rank {
            for b in a..<rank {
                var sum = 0.0
                for i in 0..<rows { sum += Double(x[i * rank + a]) * Double(x[i * rank + b]) }
                let error = abs(sum - (a == b ? 1 : 0))
                if !(error <= worst) { worst = error }
            }
        }
        return worst
    }

    /// W = U·diag(σ)·Vᵀ (out × columns), each entry summed in float64 over
    /// the rank, then rounded to float32.
    public static func compose(u: [Float], sigma: [Float], v: [Float], out: Int, columns: Int, rank: Int) -> [Float] {
        precondition(u.count == out * rank && sigma.count == rank && v.count == columns * rank)
        var w = [Float](repeating: 0, count: out * columns)
        for o in 0..<out {
            for c in 0..<columns {
                var sum = 0.0
                for j in 0..<rank { sum += Double(u[o * rank + j]) * Double(sigma[j]) * Double(v[c * rank + j]) }
                w[o * columns + c] = Float(sum)
            }
        }
        return w
    }
}

extension Checkpoint {
    /// For each weight of `model` that `file` holds in SVD coordinates
    /// instead (``SVDFactors``): W composed from its factors, after checking
    /// their shapes and that U and V are orthonormal within
    /// ``SVDFactors/orthonormalityLimit``. The error names the tensor.
    static func composedWeights(
        _ file: SafetensorsFile, fileName: String, model: [(name: String, shape: [Int])]
    ) throws -> (weights: [String: [Float]], sigmas: [String: [Float]], factorNames: Set<String>) {
        let present = Set(file.tensors.map(\.name))
        var weights: [String: [Float]] = [:]
        var sigmas: [String: [Float]] = [:]
        var consumed = Set<String>()
        for t in model where !present.contains(t.name) {
            guard let names = SVDFactors.factorNames(ofWeight: t.name), present.contains(names.u),
                let dims = SVDFactors.factorShapes(ofWeight: t.shape)
            else { continue }
            let u = try file.floats(names.u, shape: [dims.out, dims.rank], file: fileName)
            let s = try file.floats(names.s, shape: [dims.rank], file: fileName)
            let v = try file.floats(names.v, shape: [dims.columns, dims.rank], file: fileName)
            for (name, values, rows) in [(names.u, u, dims.out), (names.v, v, dims.columns)] {
                let error = SVDFactors.orthogonalityError(values, rows: rows, rank: dims.rank)
                guard error <= SVDFactors.orthonormalityLimit else {
                    throw SafetensorsError.badEntry(
                        file: fileName, tensor: name,
                        reason:
                            "an SVD factor must be orthonormal: max|XᵀX − I| = \(error) exceeds \(SVDFactors.orthonormalityLimit)"
                    )
                }
            }
            weights[t.name] = SVDFactors.compose(
                u: u, sigma: s, v: v, out: dims.out, columns: dims.columns, rank: dims.rank)
            sigmas[String(t.name.dropLast(".weight".count))] = s
            consumed.formUnion([names.u, names.s, names.v])
        }
        return (weights, sigmas, consumed)
    }
}
