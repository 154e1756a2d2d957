import Dispatch
import Foundation

/// Ranks for the conv layers of a network chosen to save the most
/// multiply-adds while the mean of ``CompressionBound``'s B(x) over a set of
/// inputs stays at most ε (`compress --max-logit-change ε`).
///
/// With W̃ = Ũ·diag(σ̃)·Ṽᵀ (BatchNorm folded) truncated to rank k, the local
/// error at an input whose patches are P is, since Ũ is orthonormal,
///
///   t(x, k)² = ‖(W̃ − W̃_k)·P‖²_F = Σ_{j>k} σ̃_j² · ‖ṽ_jᵀP‖²,
///
/// so one pass of the dense network gives every layer's t(x, k) for every
/// k. The operator norm of the truncated layer is bounded by
/// L(k) = min(L + ⌈k/s⌉·σ̃_{k+1}, ⌈k/s⌉·σ̃₁) (the triangle inequality with
/// the patch-count bound of ``OperatorNormBound/patchCount(_:matrix:)`` for
/// A − A_k, or that bound for A_k itself), L the dense layer's bound. These
/// give B(x) for any choice of ranks without running the compressed network.
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
                network.layers[c.layer].folded, context: network.layers[c.layer].name)
        }
        // q[layer][image·r + j] = ‖ṽ_jᵀP‖² over the image's positions.
        let energies = projectedEnergies(network: network, svds: svds, images: images, count: count, threads: threads)

        func tails(_ layer: Int, _ k: Int) -> [Double] {
            let sigma = svds[layer]!.singularValues
            let r = sigma.count
            let q = energies[layer]!
            return (0..<count).map { image in
                var sum = 0.0
                for j in k..<r { sum += sigma[j] * sigma[j] * q[image * r + j] }
                return sum.squareRoot()
            }
        }
        func lipschitz(_ layer: Int, _ k: Int) -> Double {
            let sigma = svds[layer]!.singularValues
            guard k < sigma.count else { return denseLipschitz[layer] }
            let overlap: Double
            if case .conv(let spec, _, _, _, _) = network.layers[layer].kind {
                overlap = Double((spec.kernelSize + spec.stride - 1) / spec.stride)
            } else {
                overlap = 1
            }
            return min(denseLipschitz[layer] + overlap * sigma[k] * (1 + 1e-12), overlap * sigma[0] * (1 + 1e-12))
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

    /// For each candidate layer and image, ‖ṽ_jᵀP‖² for j < r, from the dense
    /// network's own input to the layer.
    static func projectedEnergies(
        network: FoldedNetwork, svds: [Int: SingularValueDecomposition], images: [Float], count: Int, threads: Int
    ) -> [Int: [Double]] {
        let forward = HostNetworkForward.folded(network)
        let size = network.inputSize
        let batch = 25
        let chunks = stride(from: 0, to: count, by: batch).map { $0..<min($0 + batch, count) }
        var parts = [[Int: [Double]]](repeating: [:], count: chunks.count)
        let lock = NSLock()
        let next = ChunkCounter()
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, chunks.count))) { _ in
            while let c = next.take(below: chunks.count) {
                let range = chunks[c]
                let x = images[(range.lowerBound * size)..<(range.upperBound * size)].map(Double.init)
                var part: [Int: [Double]] = [:]
                _ = forward.logits(
                    x, batch: range.count,
                    layerInputs: { layer, input in
                        guard let svd = svds[layer] else { return }
                        part[layer] = energies(network.layers[layer], svd: svd, input: input, batch: range.count)
                    })
                lock.lock()
                parts[c] = part
                lock.unlock()
            }
        }
        var result: [Int: [Double]] = [:]
        for layer in svds.keys { result[layer] = parts.flatMap { $0[layer]! } }
        return result
    }

    /// ‖ṽ_jᵀP‖² per image and component j (image-major).
    private static func energies(_ layer: AffineLayer, svd: SingularValueDecomposition, input: [Double], batch: Int)
        -> [Double]
    {
        guard case .conv(let spec, let h, let w, let oh, let ow) = layer.kind else {
            preconditionFailure("RankSelection: only conv layers are truncated")
        }
        let r = svd.singularValues.count
        let k = spec.kernelSize
        let patch = spec.inChannels * k * k
        let plane = oh * ow
        var out = [Double](repeating: 0, count: batch * r)
        var cols = [Double](repeating: 0, count: patch * plane)
        var z = [Double](repeating: 0, count: r * plane)
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
                for j in 0..<r {
                    var sum = 0.0
                    for p in 0..<plane { sum += z[j * plane + p] * z[j * plane + p] }
                    out[b * r + j] = sum
                }
            }
        }
        return out
    }
}
