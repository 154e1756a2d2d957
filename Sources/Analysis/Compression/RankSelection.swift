import Dispatch
import Foundation

/// Ranks for the conv layers of a network chosen to save the most
/// multiply-adds while the mean of ``CompressionBound``'s B(x) over a set of
/// inputs stays at most ε (`compress --max-logit-change ε`).
///
/// With W = U·diag(σ)·Vᵀ truncated to rank k (``ConvFactorization``) and a
/// following BatchNorm's scale s (1 without one), the local error at an
/// input whose patches are P is
///
///   t(x, k) = ‖diag(s)·(W − W_k)·P‖_F = ‖Σ_{j>k} (s⊙u_j)·σ_j·(v_jᵀP)‖_F,
///
/// a sum of rank-one terms added from j = r down, so one pass of the dense
/// network gives every layer's t(x, k) for every k (O(C_out·positions·r) an
/// image and layer, a conv's own cost). The operator norm of the truncated
/// layer is bounded by L(k) = min(L + ⌈k/s⌉·max|s|·σ_{k+1},
/// ⌈k/s⌉·max|s|·σ₁) (the triangle inequality with the patch-count bound of
/// ``OperatorNormBound/patchCount(_:matrix:)`` for A − A_k, or that bound
/// for A_k itself), L the dense layer's bound. These give B(x) for any
/// choice of ranks without running the compressed network.
///
/// The search is greedy: from all layers dense, repeatedly lower one layer's
/// rank by a step (a sixteenth of its full rank, at least 1) where that is
/// feasible (mean B ≤ ε) and saves the most multiply-adds per unit of mean B
/// added, until no step is feasible. Only ranks that save multiply-adds
/// (≤ the break-even rank) are taken.
public struct RankSelection: Sendable {
    /// A conv layer the search may truncate.
    public struct Candidate: Sendable {
        /// Index into the folded network's layers.
        public var layer: Int
        /// The largest rank that saves multiply-adds.
        public var breakEvenRank: Int
        /// Multiply-adds per image, dense.
        public var denseMultiplyAdds: Int
        /// Multiply-adds per image at rank k: k·(C_in·k² + C_out)·H'·W'.
        public var multiplyAddsPerRank: Int

        public init(layer: Int, breakEvenRank: Int, denseMultiplyAdds: Int, multiplyAddsPerRank: Int) {
            self.layer = layer
            self.breakEvenRank = breakEvenRank
            self.denseMultiplyAdds = denseMultiplyAdds
            self.multiplyAddsPerRank = multiplyAddsPerRank
        }
    }

    /// Layer index → the chosen rank, only for truncated layers.
    public var ranks: [Int: Int]
    /// The mean B(x) of the choice over the inputs searched.
    public var meanBound: Double
    /// Multiply-adds per image saved in the conv layers.
    public var savedMultiplyAdds: Int
    /// Per truncated layer, the bound L(k) used (an upper bound on ‖A_k‖₂).
    public var lipschitz: [Int: Double]

    /// - Parameters:
    ///   - denseLipschitz: per layer of `network`, an upper bound on its operator norm.
    ///   - images: (count, C, H, W) as the device receives them.
    public static func search(
        network: FoldedNetwork, candidates: [Candidate], denseLipschitz: [Double], images: [Float], count: Int,
        epsilon: Double, threads: Int = 2
    ) throws -> RankSelection {
        var svds: [Int: SingularValueDecomposition] = [:]
        for c in candidates {
            svds[c.layer] = try SingularValueDecomposition(
                network.layers[c.layer].weight, context: network.layers[c.layer].name)
        }
        // tails[layer][image·(r + 1) + k] = t(x, k), k = 0…r.
        let errors = truncationErrors(network: network, svds: svds, images: images, count: count, threads: threads)
        func tails(_ layer: Int, _ k: Int) -> [Double] {
            let r = svds[layer]!.singularValues.count
            let t = errors[layer]!
            return (0..<count).map { t[$0 * (r + 1) + k] }
        }
        func lipschitz(_ layer: Int, _ k: Int) -> Double {
            let sigma = svds[layer]!.singularValues
            guard k < sigma.count else { return denseLipschitz[layer] }
            var overlap = network.layers[layer].scale.reduce(0) { max($0, abs($1)) } * (1 + 1e-12)
            if case .conv(let spec, _, _, _, _) = network.layers[layer].kind {
                overlap *= Double((spec.kernelSize + spec.stride - 1) / spec.stride)
            }
            return min(denseLipschitz[layer] + overlap * sigma[k], overlap * sigma[0])
        }
        func meanBound(_ ranks: [Int: Int]) -> Double {
            var local: [Int: [Double]] = [:]
            var l = denseLipschitz
            for (layer, k) in ranks {
                local[layer] = tails(layer, k)
                l[layer] = lipschitz(layer, k)
            }
            let b = CompressionBound.propagate(
                network.steps, [Double](repeating: 0, count: count), local: local, lipschitz: l)
            return b.reduce(0, +) / Double(max(1, count))
        }

        var ranks: [Int: Int] = [:]
        var current = 0.0
        var saved = 0
        while true {
            var best: (layer: Int, rank: Int, bound: Double, saving: Int, score: Double)?
            for c in candidates {
                let full = svds[c.layer]!.singularValues.count
                let now = ranks[c.layer] ?? full
                let step = max(1, full / 16)
                let k = min(now - step, c.breakEvenRank)
                if k < 1 { continue }
                var trial = ranks
                trial[c.layer] = k
                let bound = meanBound(trial)
                guard bound <= epsilon else { continue }
                let before = ranks[c.layer].map { $0 * c.multiplyAddsPerRank } ?? c.denseMultiplyAdds
                let saving = before - k * c.multiplyAddsPerRank
                let score = Double(saving) / max(bound - current, 1e-300)
                if best == nil || score > best!.score { best = (c.layer, k, bound, saving, score) }
            }
            guard let move = best else { break }
            ranks[move.layer] = move.rank
            current = move.bound
            saved += move.saving
        }
        return RankSelection(
            ranks: ranks, meanBound: current, savedMultiplyAdds: saved,
            lipschitz: Dictionary(uniqueKeysWithValues: ranks.map { ($0.key, lipschitz($0.key, $0.value)) }))
    }

    /// For each candidate layer and image, t(x, k) for k = 0…r, from the
    /// dense network's own input to the layer.
    static func truncationErrors(
        network: FoldedNetwork, svds: [Int: SingularValueDecomposition], images: [Float], count: Int, threads: Int
    ) -> [Int: [Double]] {
        let forward = HostNetworkForward.folded(network)
        let size = network.inputSize
        let batch = 25
        let chunks = stride(from: 0, to: count, by: batch).map { $0..<min($0 + batch, count) }
        var parts = [[Int: [Double]]](repeating: [:], count: chunks.count)
        let lock = NSLock()
        let next = ChunkCounter()
        withSingleThreadedBLAS {
            DispatchQueue.concurrentPerform(iterations: max(1, min(threads, chunks.count))) { _ in
                while let c = next.take(below: chunks.count) {
                    let range = chunks[c]
                    let x = images[(range.lowerBound * size)..<(range.upperBound * size)].map(Double.init)
                    var part: [Int: [Double]] = [:]
                    _ = forward.logits(
                        x, batch: range.count,
                        layerInputs: { layer, input in
                            guard let svd = svds[layer] else { return }
                            part[layer] = errors(network.layers[layer], svd: svd, input: input, batch: range.count)
                        })
                    lock.lock()
                    parts[c] = part
                    lock.unlock()
                }
            }
        }
        var result: [Int: [Double]] = [:]
        for layer in svds.keys { result[layer] = parts.flatMap { $0[layer]! } }
        return result
    }

    /// t(x, k) = ‖Σ_{j≥k} (s⊙u_j)·σ_j·(v_jᵀP)‖_F for k = 0…r per image
    /// (image-major), the sum built from j = r − 1 down.
    private static func errors(_ layer: AffineLayer, svd: SingularValueDecomposition, input: [Double], batch: Int)
        -> [Double]
    {
        guard case .conv(let spec, let h, let w, let oh, let ow) = layer.kind else {
            preconditionFailure("RankSelection: only conv layers are truncated")
        }
        let r = svd.singularValues.count
        let out = svd.u.rows
        let k = spec.kernelSize
        let patch = spec.inChannels * k * k
        let plane = oh * ow
        var result = [Double](repeating: 0, count: batch * (r + 1))
        var cols = [Double](repeating: 0, count: patch * plane)
        var z = [Double](repeating: 0, count: r * plane)
        var e = [Double](repeating: 0, count: out * plane)
        let inSize = spec.inChannels * h * w
        input.withUnsafeBufferPointer { xp in
            for b in 0..<batch {
                cols.withUnsafeMutableBufferPointer { cp in
                    im2col(
                        xp.baseAddress! + b * inSize, channels: spec.inChannels, height: h, width: w, kernel: k,
                        stride: spec.stride, padding: spec.padding, outHeight: oh, outWidth: ow, into: cp.baseAddress!,
                        rowStride: plane)
                    z.withUnsafeMutableBufferPointer { zp in
                        svd.vt.values.withUnsafeBufferPointer { v in
                            denseProduct(
                                m: r, n: plane, k: patch, a: v.baseAddress!, b: cp.baseAddress!, c: zp.baseAddress!)
                        }
                    }
                }
                for i in e.indices { e[i] = 0 }
                var j = r - 1
                while j >= 0 {
                    let sigma = svd.singularValues[j]
                    for o in 0..<out {
                        let coefficient = layer.scale[o] * svd.u[o, j] * sigma
                        if coefficient == 0 { continue }
                        for p in 0..<plane { e[o * plane + p] += coefficient * z[j * plane + p] }
                    }
                    var sum = 0.0
                    for v in e { sum += v * v }
                    result[b * (r + 1) + j] = sum.squareRoot()
                    j -= 1
                }
            }
        }
        return result
    }
}
