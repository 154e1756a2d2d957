import Dispatch
import Foundation

/// A certified bound B(x) ≥ ‖f(x) − f̂(x)‖₂ on how far a compressed network's
/// logits move, for each input x, and its check.
///
/// f and f̂ are the same ``FoldedNetwork`` (BatchNorm folded: each conv or
/// linear layer i is x ↦ A_i x + b̃_i) except that the changed layers' linear
/// parts A_i become Â_i. Write h for f's activations and e for an upper
/// bound on ‖ĥ − h‖₂ at the same point of the network; e = 0 at the input.
/// Then, step by step (docs/compression.md derives each):
///
/// - layer i: ĥ' − h' = Â_i(ĥ − h) + (Â_i − A_i)h, so
///   e' = L_i·e + t_i(x), with L_i ≥ ‖Â_i‖₂ and t_i(x) = ‖(Â_i − A_i)h‖₂
///   computed exactly from f's own input to the layer (0 when unchanged).
///   Where ReLU and max-pool (g, 1-Lipschitz) follow the layer directly,
///   t_i(x) = ‖g(Â_i h + b̃) − g(A_i h + b̃)‖₂ instead, measured after them:
///   ‖g(ĥ') − g(h')‖ ≤ ‖g(ĥ') − g(Â_i h + b̃)‖ + ‖g(Â_i h + b̃) − g(h')‖
///   ≤ L_i·e + t_i(x), and g passes the bound unchanged;
/// - ReLU and max-pool 2 (disjoint windows): 1-Lipschitz, e' = e;
/// - global average pool over n positions: e' = e/√n (Cauchy–Schwarz per
///   channel);
/// - residual block y = body(x) + shortcut(x): e' = e_body + e_shortcut (the
///   triangle inequality; the ReLU after the add is 1-Lipschitz), each
///   propagated from the block's input e.
///
/// B(x) is e at the logits. A prediction cannot change where f's logit
/// margin (top minus runner-up) exceeds √2·B(x): for the top class a and
/// any c, |Δ_a − Δ_c| ≤ √2·‖Δ‖₂.
///
/// Everything is float64; the check allows B a relative 1e-9 below the
/// measured change for the rounding of the two float64 forward passes.
public struct CompressionBound: Sendable {
    public let original: HostNetworkForward
    public let compressed: HostNetworkForward
    /// The indices into `network.layers` of the changed layers.
    public let changed: [Int]
    /// Per layer: L_i ≥ ‖Â_i‖₂ (‖A_i‖₂ where unchanged).
    public let lipschitz: [Double]

    /// Per changed layer: the ReLU and max-pool steps that follow it directly.
    let trailing: [Int: [FoldedNetwork.Step]]

    /// The relative rounding allowance of the check B(x) ≥ ‖Δ(x)‖₂.
    public static let roundingAllowance = 1e-9

    /// - Parameters:
    ///   - network: f, folded.
    ///   - changedFolded: layer index → Â_i's folded matrix (out × patch),
    ///     e.g. diag(s)·(second·first) of a factorised conv.
    ///   - lipschitz: per layer, an upper bound on the operator norm of the
    ///     compressed network's linear part (``OperatorNormBound``).
    public init(network: FoldedNetwork, changedFolded: [Int: Matrix], lipschitz: [Double]) {
        precondition(lipschitz.count == network.layers.count, "CompressionBound: one Lipschitz bound per layer")
        original = .folded(network)
        compressed = HostNetworkForward(
            network,
            operators: network.layers.indices.map { .dense(changedFolded[$0] ?? network.layers[$0].folded) })
        changed = changedFolded.keys.sorted()
        self.lipschitz = lipschitz
        var trailing: [Int: [FoldedNetwork.Step]] = [:]
        func scan(_ steps: [FoldedNetwork.Step]) {
            for (position, step) in steps.enumerated() {
                switch step {
                case .affine(let i) where changedFolded[i] != nil:
                    trailing[i] = Array(
                        steps[(position + 1)...].prefix {
                            switch $0 {
                            case .relu, .maxPool2: return true
                            default: return false
                            }
                        })
                case .residual(let body, let shortcut, _):
                    scan(body)
                    if let shortcut { scan(shortcut) }
                default: break
                }
            }
        }
        scan(network.steps)
        self.trailing = trailing
    }

    /// One input's figures.
    public struct Image: Sendable, Equatable {
        /// B(x).
        public var bound: Double
        /// ‖f(x) − f̂(x)‖₂, measured in float64.
        public var change: Double
        /// f's top logit minus its runner-up.
        public var margin: Double
        public var originalClass: Int
        public var compressedClass: Int
        /// margin > √2·B(x): the prediction provably stays.
        public var certified: Bool { margin > 2.0.squareRoot() * bound }
        public var violates: Bool { bound < change * (1 - CompressionBound.roundingAllowance) }
    }

    /// B(x), the measured change and the margins of `count` images
    /// ((count, C, H, W) float32 as the device receives them), `threads` batches at a time.
    public func evaluate(images: [Float], count: Int, batch: Int = 50, threads: Int = 2) -> [Image] {
        let size = original.network.inputSize
        precondition(
            images.count == count * size, "CompressionBound.evaluate: \(images.count) values for \(count) images")
        let chunks = stride(from: 0, to: count, by: batch).map { $0..<min($0 + batch, count) }
        var results = [[Image]](repeating: [], count: chunks.count)
        let lock = NSLock()
        let next = ChunkCounter()
        withSingleThreadedBLAS {
            DispatchQueue.concurrentPerform(iterations: max(1, min(threads, chunks.count))) { _ in
                while let c = next.take(below: chunks.count) {
                    let range = chunks[c]
                    let x = images[(range.lowerBound * size)..<(range.upperBound * size)].map(Double.init)
                    let r = evaluateBatch(x, batch: range.count)
                    lock.lock()
                    results[c] = r
                    lock.unlock()
                }
            }
        }
        return results.flatMap { $0 }
    }

    private func evaluateBatch(_ x: [Double], batch: Int) -> [Image] {
        let changedSet = Set(changed)
        var inputs: [Int: [Double]] = [:]
        let f = original.logits(x, batch: batch, layerInputs: { i, v in if changedSet.contains(i) { inputs[i] = v } })
        let g = compressed.logits(x, batch: batch)
        var local: [Int: [Double]] = [:]
        for i in changed {
            let h = inputs[i]!
            let after = trailing[i] ?? []
            let a = original.apply(after, original.layerOutput(i, h, batch: batch), batch: batch)
            let b = original.apply(after, compressed.layerOutput(i, h, batch: batch), batch: batch)
            let n = a.count / batch
            local[i] = (0..<batch).map { image in
                var sum = 0.0
                for j in (image * n)..<((image + 1) * n) { sum += (b[j] - a[j]) * (b[j] - a[j]) }
                return sum.squareRoot()
            }
        }
        let bounds = Self.propagate(
            original.network.steps, [Double](repeating: 0, count: batch), local: local, lipschitz: lipschitz)
        let classes = original.network.classes
        return (0..<batch).map { image in
            let row = (image * classes)..<((image + 1) * classes)
            var change = 0.0
            for j in row { change += (f[j] - g[j]) * (f[j] - g[j]) }
            let top = Self.argmax(f[row])
            var runnerUp = -Double.infinity
            for j in row where j - row.lowerBound != top { runnerUp = max(runnerUp, f[j]) }
            return Image(
                bound: bounds[image], change: change.squareRoot(), margin: f[row.lowerBound + top] - runnerUp,
                originalClass: top, compressedClass: Self.argmax(g[row]))
        }
    }

    /// e at the end of `steps` from e at their start, per image.
    static func propagate(_ steps: [FoldedNetwork.Step], _ start: [Double], local: [Int: [Double]], lipschitz: [Double])
        -> [Double]
    {
        var e = start
        for step in steps {
            switch step {
            case .affine(let i):
                let t = local[i]
                for j in e.indices { e[j] = lipschitz[i] * e[j] + (t?[j] ?? 0) }
            case .relu, .maxPool2:
                break
            case .globalAveragePool(_, let plane):
                let factor = 1 / Double(plane).squareRoot()
                for j in e.indices { e[j] *= factor }
            case .residual(let body, let shortcut, _):
                let throughBody = propagate(body, e, local: local, lipschitz: lipschitz)
                let throughShortcut = shortcut.map { propagate($0, e, local: local, lipschitz: lipschitz) } ?? e
                for j in e.indices { e[j] = throughBody[j] + throughShortcut[j] }
            }
        }
        return e
    }

    /// The first index of the largest value (PyTorch's argmax on ties).
    static func argmax(_ x: ArraySlice<Double>) -> Int {
        var best = x.startIndex
        for j in x.indices where x[j] > x[best] { best = j }
        return best - x.startIndex
    }
}

/// A counter that hands out 0, 1, 2, … to threads.
final class ChunkCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}

/// The bound's figures over a set of inputs.
public struct CompressionBoundSummary: Codable, Sendable, Equatable {
    public var images: Int
    /// Inputs with B(x) below the measured change (beyond rounding): must be 0.
    public var violations: Int
    public var meanBound: Double
    public var meanChange: Double
    /// B(x)/‖Δ(x)‖ over inputs with a change, median and 95th percentile
    /// (nil when no input changed).
    public var medianRatio: Double?
    public var p95Ratio: Double?
    /// Inputs whose margin exceeds √2·B(x).
    public var certified: Int
    /// Certified inputs whose prediction changed anyway: must be 0.
    public var certifiedButChanged: Int
    public var changedPredictions: Int

    public init(_ images: [CompressionBound.Image]) {
        self.images = images.count
        violations = images.filter(\.violates).count
        meanBound = images.reduce(0) { $0 + $1.bound } / Double(max(1, images.count))
        meanChange = images.reduce(0) { $0 + $1.change } / Double(max(1, images.count))
        let ratios = images.filter { $0.change > 0 }.map { $0.bound / $0.change }.sorted()
        func quantile(_ q: Double) -> Double? {
            ratios.isEmpty ? nil : ratios[min(ratios.count - 1, Int((q * Double(ratios.count - 1)).rounded()))]
        }
        medianRatio = quantile(0.5)
        p95Ratio = quantile(0.95)
        certified = images.filter(\.certified).count
        certifiedButChanged = images.filter { $0.certified && $0.originalClass != $0.compressedClass }.count
        changedPredictions = images.filter { $0.originalClass != $0.compressedClass }.count
    }
}

/// Upper bounds on a layer's operator norm ‖A‖₂ (the map of its whole input).
public enum OperatorNormBound {
    /// The smaller of ``patchCount(_:matrix:)`` and, for a conv, the upper
    /// end of its ``ConvOperator/spectralNormBracket(tolerance:maxPowerIterations:gridCandidates:threads:seed:)``:
    /// Gram iteration on circular grids that hold the zero-padded operator
    /// (docs/operators.md: ‖A‖₂ ≤ ‖C_N‖₂ ≤ the Gram bound) or, where that
    /// leaves a gap above 1e-3, the Cholesky certificate of μI − AᵀA just
    /// above the power iteration's lower bound; with a relative 1e-9 added
    /// for its float64 rounding.
    public static func best(_ layer: AffineLayer, matrix: Matrix, threads: Int = 2) throws -> Double {
        let simple = try patchCount(layer, matrix: matrix)
        guard case .conv(let spec, let h, let w, _, _) = layer.kind else { return simple }
        let op = try ConvOperator(
            name: layer.name, weight: matrix, inChannels: spec.inChannels, kernelHeight: spec.kernelSize,
            kernelWidth: spec.kernelSize, stride: spec.stride, padding: spec.padding, inputHeight: h, inputWidth: w)
        return min(simple, try op.spectralNormBracket(threads: threads).upper * (1 + 1e-9))
    }

    /// ⌈k/s⌉·σ_max(M) for a conv with kernel k, stride s and folded matrix M
    /// (out × in·k²); σ_max(M) for a linear layer. Each input element lies
    /// in at most ⌈k/s⌉² of the patches, so Σ_pos ‖p_pos‖² ≤ ⌈k/s⌉²‖x‖² and
    /// ‖Ax‖² = Σ_pos ‖M p_pos‖² ≤ σ_max²·⌈k/s⌉²‖x‖² (zero padding only
    /// removes terms). σ_max comes from LAPACK with a relative 1e-12 added
    /// for its rounding.
    public static func patchCount(_ layer: AffineLayer, matrix: Matrix) throws -> Double {
        let sigma = try SingularValueDecomposition(matrix, context: layer.name).singularValues[0] * (1 + 1e-12)
        switch layer.kind {
        case .conv(let spec, _, _, _, _):
            return Double((spec.kernelSize + spec.stride - 1) / spec.stride) * sigma
        case .linear:
            return sigma
        }
    }
}
