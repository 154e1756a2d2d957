import CLAPACK
import Foundation
import NetIO

/// Training in SVD coordinates: a network whose conv weights are learned as
/// three parameter groups each, W = U·diag(σ⊙m)·Vᵀ with W (out × in·kH·kW,
/// PyTorch's flattening), U (out × r) and V (in·kH·kW × r) orthonormal,
/// σ (r), r = min(out, in·kH·kW), and m a 0/1 mask of the components kept.
/// Every other parameter (linear layers, biases, BatchNorm) is the base
/// network's own. Names: `name.U`, `name.S`, `name.V` for `name.weight`.
///
/// Each step, on the device, with no read-back:
/// - forward: if a step moved the factors, retract U and V onto the
///   Stiefel manifold and compose US = U·diag(σ⊙m) and W = US·Vᵀ into the
///   base's weight buffer; then the base's forward;
/// - backward: the base's backward gives dW; then G = dW·V,
///   ∂L/∂σ_j = m_j·(Σ_i U_ij G_ij + λ·sign σ_j) (λ the L1 weight on σ,
///   Yang et al. 2020), ∂L/∂U = G·diag(σ⊙m), ∂L/∂V = dWᵀ·US. The
///   optimiser then updates U, σ, V like any parameter.
///
/// The retraction is the polar one, X ↦ X(XᵀX)^{-1/2}, the orthonormal
/// factor of X's polar decomposition: a retraction on the Stiefel manifold
/// (Absil, Mahony & Sepulchre, *Optimization Algorithms on Matrix
/// Manifolds*, §4.1.1). It is computed by ``newtonSchulzIterations`` steps
/// of Newton–Schulz, X ← X·(3/2·I − ½·XᵀX), two GEMMs each: every singular
/// value s of X maps to s(3 − s²)/2, so s = 1 + δ becomes 1 − 3δ²/2 + O(δ³).
/// The iteration converges only for s in (0, √3), and a large step (SGD at
/// lr 0.2 on a ResNet) leaves it: the first iteration is therefore taken
/// on c·X with c = 1/√‖XᵀX‖_∞ ≤ 1/‖X‖₂ (the polar factor of c·X is X's),
/// which puts every s in (0, 1], and s ↦ s(3 − s²)/2 keeps them there for
/// the unscaled iterations after it. Near the manifold c = 1 − O(r·δ),
/// which the quadratic convergence absorbs; far from it the small singular
/// values grow by about 3/2 an iteration, so a very large step may take the
/// next steps' retractions too to come back (the epoch's report shows the
/// error). Three iterations: from factors moved by up to 5e-3 an entry
/// (five Adam steps at lr 1e-3), `SVDParameterizationTests` measures
/// ‖XᵀX − I‖_max = 6.0e-3, 3.2e-5 and 2.6e-7 after 1, 2 and 3 (the scaled
/// first iteration gives up O(r·δ); the next two square the error).
///
/// Weight decay (SGD's λ) applies to every tensor the optimiser holds, the
/// factors included: on σ it is exactly plain weight decay on W, since
/// ‖W‖²_F = Σσ²; on U and V it shrinks X to (1 − ηλ)X, which the polar
/// retraction maps back to X's own orthonormal factor, so it has no effect
/// there beyond scaling that step's gradient by 1/(1 − ηλ).
///
/// At the end of each epoch (``finishEpoch()``), with λ > 0, every σ_j with
/// |σ_j| < ``SVDTrainingSettings/pruneThreshold``·max|σ| of its layer is
/// pruned: m_j = 0 from then on (σ_j stays zero in W, in its gradient and
/// in the checkpoint). The orthogonality errors and the ranks are measured
/// there, on the host.
public final class SVDParameterizedNetwork<Base: TrainableNetwork>: TrainableNetwork {
    public typealias Workspace = Base.Workspace

    /// Newton–Schulz iterations per retraction (see the type's comment),
    /// 3 by default; `SVDParameterizationTests` measures the error of 1–3.
    public var newtonSchulzIterations = 3

    /// One conv layer in SVD coordinates and its device buffers.
    final class Layer {
        let name: String
        /// The base parameter index of W, and its gradient.
        let index: Int
        let weight: Buffer, weightGradient: Buffer
        let out: Int, columns: Int, rank: Int
        let u: Buffer, s: Buffer, v: Buffer
        let du: Buffer, ds: Buffer, dv: Buffer
        let mask: Buffer
        /// U·diag(σ⊙m) of the last composition (out × r).
        let us: Buffer
        /// dW·V (out × r).
        let g: Buffer
        /// The retraction's scratch: XᵀX and the Newton–Schulz factor (r ×
        /// r each), and the iterates of U and of V.
        let gram: Buffer, factor: Buffer, iterateU: Buffer, iterateV: Buffer
        /// The mask on the host, as last uploaded.
        var kept: [Bool]

        init(name: String, index: Int, weight: Buffer, weightGradient: Buffer, shape: [Int], device: any Device) throws
        {
            guard let dims = SVDFactors.factorShapes(ofWeight: shape) else {
                preconditionFailure("SVDParameterizedNetwork: \(name) is not a conv weight (shape \(shape))")
            }
            self.name = name
            self.index = index
            self.weight = weight
            self.weightGradient = weightGradient
            (out, columns, rank) = (dims.out, dims.columns, dims.rank)
            func floats(_ n: Int) throws -> Buffer { try device.makeBuffer(count: n, kind: .float32) }
            u = try floats(out * rank)
            s = try floats(rank)
            v = try floats(columns * rank)
            du = try floats(out * rank)
            ds = try floats(rank)
            dv = try floats(columns * rank)
            mask = try floats(rank)
            us = try floats(out * rank)
            g = try floats(out * rank)
            gram = try floats(rank * rank)
            factor = try floats(rank * rank)
            iterateU = try floats(out * rank)
            iterateV = try floats(columns * rank)
            kept = Array(repeating: true, count: rank)
            try device.fill(mask, value: 1)
        }

        var learnedRank: Int { kept.filter { $0 }.count }
    }

    public let base: Base
    public let settings: SVDTrainingSettings
    let layers: [Layer]
    /// Base parameter index → its layer, for the conv weights.
    private let layerOfIndex: [Int: Layer]
    /// An optimiser step may have moved U and V off the manifold since
    /// the last retraction (set by a backward pass, which a step follows).
    private var needsRetraction = false
    /// W is not the product of the factors (set by a backward pass, a
    /// load, a pruning, and at the start). A load or a pruning composes
    /// without retracting: the factors a checkpoint holds were retracted
    /// before it was written, so `--resume` continues with the factors the
    /// uninterrupted run has, bit for bit.
    private var needsComposition = true

    /// Wraps `base` as it is (initialised or loaded): each 4-D `….weight`
    /// parameter is factorised by the SVD (LAPACK, float64, on the host,
    /// once), so that the first forward computes the base's W up to float32
    /// rounding.
    public init(base: Base, settings: SVDTrainingSettings = SVDTrainingSettings()) throws {
        self.base = base
        self.settings = settings
        let state = Dictionary(
            try base.checkpointTensors().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var layers: [Layer] = []
        for (index, name) in base.parameterNames.enumerated() {
            guard let tensor = state[name], SVDFactors.factorNames(ofWeight: name) != nil,
                SVDFactors.factorShapes(ofWeight: tensor.shape) != nil
            else { continue }
            let layer = try Layer(
                name: String(name.dropLast(".weight".count)), index: index, weight: base.parameterBuffers[index],
                weightGradient: base.gradientBuffers[index], shape: tensor.shape, device: base.device)
            try Self.factorise(tensor.values, into: layer, device: base.device)
            layers.append(layer)
        }
        self.layers = layers
        layerOfIndex = Dictionary(uniqueKeysWithValues: layers.map { ($0.index, $0) })
    }

    /// The thin SVD of W (out × columns) by LAPACKE_dgesdd in float64,
    /// uploaded as U, σ and V (Vᵀ's rows as V's columns).
    static func factorise(_ w: [Float], into layer: Layer, device: any Device) throws {
        let (m, n, r) = (layer.out, layer.columns, layer.rank)
        var a = w.map(Double.init)
        var s = [Double](repeating: 0, count: r)
        var u = [Double](repeating: 0, count: m * r)
        var vt = [Double](repeating: 0, count: r * n)
        let info = LAPACKE_dgesdd(
            LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "S")), Int32(m), Int32(n), &a, Int32(n), &s, &u, Int32(r), &vt,
            Int32(n))
        guard info == 0 else {
            throw TrainingError.invalidSetting("the SVD of \(layer.name).weight failed (LAPACKE_dgesdd info \(info))")
        }
        var v = [Float](repeating: 0, count: n * r)
        for j in 0..<r { for c in 0..<n { v[c * r + j] = Float(vt[j * n + c]) } }
        try device.upload(u.map(Float.init), to: layer.u)
        try device.upload(s.map(Float.init), to: layer.s)
        try device.upload(v, to: layer.v)
    }

    public var device: any Device { base.device }
    public var classes: Int { base.classes }
    public var inputSize: Int { base.inputSize }
    public var modelName: String { base.modelName }
    public var evaluationBatch: Int { base.evaluationBatch }
    public func workspace(batch: Int) throws -> Workspace { try base.workspace(batch: batch) }
    public func checkpointCounters() -> [String: Int64] { base.checkpointCounters() }
    public func load(checkpointCounters counters: [String: Int64]) throws {
        try base.load(checkpointCounters: counters)
    }

    public var parameterBuffers: [Buffer] {
        base.parameterBuffers.enumerated().flatMap { i, b in layerOfIndex[i].map { [$0.u, $0.s, $0.v] } ?? [b] }
    }

    public var gradientBuffers: [Buffer] {
        base.gradientBuffers.enumerated().flatMap { i, b in layerOfIndex[i].map { [$0.du, $0.ds, $0.dv] } ?? [b] }
    }

    public var parameterNames: [String] {
        base.parameterNames.enumerated().flatMap { i, name in
            layerOfIndex[i].map { ["\($0.name).U", "\($0.name).S", "\($0.name).V"] } ?? [name]
        }
    }

    /// The layers' names (`conv1`, …) in parameter order.
    public var factorisedLayers: [String] { layers.map(\.name) }

    /// The base's, after composing any changed factors: the composed
    /// weights then stay fixed inside `body` as the base needs.
    public func withParametersFixed<Result>(_ body: () throws -> Result) throws -> Result {
        try composeIfChanged()
        return try base.withParametersFixed(body)
    }

    public func forward(_ w: Workspace, training: Bool) throws {
        try composeIfChanged()
        try base.forward(w, training: training)
    }

    public func backward(_ w: Workspace) throws {
        try base.backward(w)
        try backpropagateToFactors()
    }

    /// ∂L/∂U, ∂L/∂σ and ∂L/∂V of every factorised layer from the dW in the
    /// base's gradient buffers and the factors of the last composition
    /// (what ``backward(_:)`` runs after the base's backward pass); the
    /// factors then count as changed.
    public func backpropagateToFactors() throws {
        let d = device
        for l in layers {
            let shape = SVDFactorShape(rows: l.out, rank: l.rank)
            // G = dW·V (out × r).
            try d.gemm(GEMMShape(m: l.out, n: l.rank, k: l.columns), a: l.weightGradient, b: l.v, c: l.g)
            try d.svdSigmaGradient(
                shape, u: l.u, g: l.g, sigma: l.s, mask: l.mask, l1: settings.sigmaL1, gradSigma: l.ds)
            try d.svdScaleColumns(shape, x: l.g, sigma: l.s, mask: l.mask, output: l.du)
            // dV = dWᵀ·US (columns × r), dW stored (out × columns).
            try d.gemm(
                GEMMShape(m: l.columns, n: l.rank, k: l.out, transposeA: true), a: l.weightGradient, b: l.us, c: l.dv)
        }
        needsRetraction = true
        needsComposition = true
    }

    /// Makes the next forward (or ``composeIfChanged()``) retract and
    /// compose: for a caller that wrote the factor buffers itself.
    public func markFactorsChanged() {
        needsRetraction = true
        needsComposition = true
    }

    /// Retracts U and V if a step may have moved them, and composes W if
    /// the factors changed.
    public func composeIfChanged() throws {
        guard needsComposition || needsRetraction else { return }
        let d = device
        for l in layers {
            if needsRetraction {
                try retract(l.u, scratch: l.iterateU, rows: l.out, layer: l)
                try retract(l.v, scratch: l.iterateV, rows: l.columns, layer: l)
            }
            try d.svdScaleColumns(
                SVDFactorShape(rows: l.out, rank: l.rank), x: l.u, sigma: l.s, mask: l.mask, output: l.us)
            // W = US·Vᵀ (out × columns), V stored (columns × r).
            try d.gemm(
                GEMMShape(m: l.out, n: l.columns, k: l.rank, transposeB: true), a: l.us, b: l.v, c: l.weight)
        }
        needsRetraction = false
        needsComposition = false
    }

    /// ``newtonSchulzIterations`` Newton–Schulz steps on X (rows × r), the
    /// first scaled, in place: A = XᵀX (GEMM), F = c·(3/2·I − ½·c²A)
    /// (``Device/svdNewtonSchulzFactor(rank:gram:factor:scaled:)``), Y = X·F
    /// (GEMM); the iterate alternates between X and `scratch` (an odd count
    /// copies the last one back into X).
    private func retract(
        _ x: Buffer, scratch: Buffer, rows: Int, layer l: Layer, iterations: Int? = nil
    ) throws {
        let iterations = iterations ?? newtonSchulzIterations
        let d = device
        let r = l.rank
        var (from, to) = (x, scratch)
        for iteration in 0..<iterations {
            try d.gemm(GEMMShape(m: r, n: r, k: rows, transposeA: true), a: from, b: from, c: l.gram)
            try d.svdNewtonSchulzFactor(rank: r, gram: l.gram, factor: l.factor, scaled: iteration == 0)
            try d.gemm(GEMMShape(m: rows, n: r, k: r), a: from, b: l.factor, c: to)
            (from, to) = (to, from)
        }
        if iterations % 2 == 1 { try d.copy(scratch, to: x) }
    }

    /// The base's state with each factorised weight replaced by its U, σ⊙m
    /// and V (after the retraction and composition a step leaves pending).
    public func checkpointTensors() throws -> [NamedTensor] {
        try composeIfChanged()
        var out: [NamedTensor] = []
        let byName = Dictionary(layers.map { ($0.name + ".weight", $0) }, uniquingKeysWith: { a, _ in a })
        for t in try base.checkpointTensors() {
            guard let l = byName[t.name] else {
                out.append(t)
                continue
            }
            let sigma = zip(try device.floats(l.s), l.kept).map { $1 ? $0 : 0 }
            out.append(NamedTensor(name: l.name + ".U", shape: [l.out, l.rank], values: try device.floats(l.u)))
            out.append(NamedTensor(name: l.name + ".S", shape: [l.rank], values: sigma))
            out.append(NamedTensor(name: l.name + ".V", shape: [l.columns, l.rank], values: try device.floats(l.v)))
        }
        return out
    }

    /// Loads what ``checkpointTensors()`` wrote: U and V must be orthonormal
    /// within ``SVDFactors/orthonormalityLimit`` (else an error naming the
    /// tensor); a σ of exactly 0 is a pruned component (mask 0).
    public func load(checkpointTensors tensors: [NamedTensor]) throws {
        let named = TensorsByName(tensors)
        func take(_ name: String, _ shape: [Int]) throws -> [Float] { try named.values(name, shape: shape) }
        // Every factor is checked before anything is loaded: a refused file changes nothing.
        var baseTensors: [NamedTensor] = tensors
        var factors: [(u: [Float], s: [Float], v: [Float])] = []
        for l in layers {
            let u = try take(l.name + ".U", [l.out, l.rank])
            let s = try take(l.name + ".S", [l.rank])
            let v = try take(l.name + ".V", [l.columns, l.rank])
            for (name, values, rows) in [(l.name + ".U", u, l.out), (l.name + ".V", v, l.columns)] {
                let error = SVDFactors.orthogonalityError(values, rows: rows, rank: l.rank)
                guard error <= SVDFactors.orthonormalityLimit else {
                    throw SafetensorsError.badEntry(
                        file: "checkpoint", tensor: name,
                        reason:
                            "an SVD factor must be orthonormal: max|XᵀX − I| = \(error) exceeds \(SVDFactors.orthonormalityLimit)"
                    )
                }
            }
            baseTensors.append(
                NamedTensor(
                    name: l.name + ".weight", shape: [l.out, l.columns],
                    values: SVDFactors.compose(u: u, sigma: s, v: v, out: l.out, columns: l.columns, rank: l.rank)))
            factors.append((u, s, v))
        }
        // The base checks its own tensors' shapes: give it W in its own shape.
        let baseShapes = Dictionary(
            try base.checkpointTensors().map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        baseTensors = baseTensors.map { t in
            guard let shape = baseShapes[t.name], shape.reduce(1, *) == t.values.count else { return t }
            return NamedTensor(name: t.name, shape: shape, values: t.values)
        }
        try base.load(checkpointTensors: baseTensors)
        for (l, f) in zip(layers, factors) {
            l.kept = f.s.map { $0 != 0 }
            try device.upload(f.u, to: l.u)
            try device.upload(f.s, to: l.s)
            try device.upload(f.v, to: l.v)
            try device.upload(l.kept.map { $0 ? Float(1) : 0 }, to: l.mask)
        }
        needsRetraction = false
        needsComposition = true
    }

    /// Newton–Schulz iterations of the end-of-epoch retraction that runs
    /// when the last step's factors are off the manifold by more than
    /// ``settleLimit`` (a step at a large learning rate): from the scaled
    /// start the error falls below 1e-5 within 12 from singular values of
    /// up to ~5 (`SVDParameterizationTests`), so the checkpoint holds
    /// orthonormal factors.
    public static var settleIterations: Int { 12 }
    /// 1e-5, the orthogonality the factors are held to.
    public static var settleLimit: Double { 1e-5 }

    /// Prunes (with λ > 0), then measures ‖XᵀX − I‖_max of the factors the
    /// last step left (after its retraction); where that exceeds
    /// ``settleLimit``, retracts them with ``settleIterations`` and
    /// measures again: the report has both. Reads the factors back (the
    /// epoch's one host wait for them).
    public func finishEpoch() throws -> SVDEpochReport? {
        try composeIfChanged()
        func errors(_ l: Layer) throws -> (u: Double, v: Double) {
            (
                SVDFactors.orthogonalityError(try device.floats(l.u), rows: l.out, rank: l.rank),
                SVDFactors.orthogonalityError(try device.floats(l.v), rows: l.columns, rank: l.rank)
            )
        }
        var rows: [SVDEpochReport.Layer] = []
        for l in layers {
            if settings.sigmaL1 > 0 {
                var sigma = try device.floats(l.s)
                let largest = zip(sigma, l.kept).map { $1 ? abs($0) : 0 }.max() ?? 0
                for j in 0..<l.rank where l.kept[j] && abs(sigma[j]) < settings.pruneThreshold * largest {
                    l.kept[j] = false
                    sigma[j] = 0
                }
                try device.upload(sigma, to: l.s)
                try device.upload(l.kept.map { $0 ? Float(1) : 0 }, to: l.mask)
                needsComposition = true
            }
            var (u, v) = try errors(l)
            let lastStep = max(u, v)
            if !(lastStep <= Self.settleLimit) {
                try retract(l.u, scratch: l.iterateU, rows: l.out, layer: l, iterations: Self.settleIterations)
                try retract(l.v, scratch: l.iterateV, rows: l.columns, layer: l, iterations: Self.settleIterations)
                needsComposition = true
                (u, v) = try errors(l)
            }
            rows.append(
                SVDEpochReport.Layer(
                    name: l.name, rank: l.learnedRank, fullRank: l.rank, uOrthogonalityError: u,
                    vOrthogonalityError: v, lastStepOrthogonalityError: lastStep))
        }
        try composeIfChanged()
        return SVDEpochReport(layers: rows)
    }
}

/// `--parameterization svd`'s settings (``SVDParameterizedNetwork``).
public struct SVDTrainingSettings: Codable, Equatable, Sendable {
    /// λ of the L1 penalty λ·Σ|σ| added to each factorised layer's loss
    /// (`--sigma-l1`); 0: none, and nothing is pruned.
    public var sigmaL1: Float
    /// With λ > 0, σ_j is pruned at the end of an epoch when |σ_j| is below
    /// this fraction of its layer's largest |σ| (`--sigma-threshold`).
    public var pruneThreshold: Float

    public init(sigmaL1: Float = 0, pruneThreshold: Float = 1e-2) {
        self.sigmaL1 = sigmaL1
        self.pruneThreshold = pruneThreshold
    }
}

/// What an epoch of training in SVD coordinates leaves: per layer, the
/// rank kept and ‖UᵀU − I‖_max, ‖VᵀV − I‖_max (float64 sums of the float32
/// factors). The `svd` entry of a metrics.json row.
public struct SVDEpochReport: Codable, Equatable, Sendable {
    public struct Layer: Codable, Equatable, Sendable {
        public var name: String
        /// Components kept (σ not pruned), of `fullRank` = min(out, in·kH·kW).
        public var rank: Int
        public var fullRank: Int
        /// ‖UᵀU − I‖_max and ‖VᵀV − I‖_max of the factors the epoch ends
        /// with (and the checkpoint holds).
        public var uOrthogonalityError: Double
        public var vOrthogonalityError: Double
        /// The larger of the two for the factors the last step left, before
        /// the end-of-epoch retraction that runs when it exceeds 1e-5.
        public var lastStepOrthogonalityError: Double

        enum CodingKeys: String, CodingKey {
            case name, rank
            case fullRank = "full_rank"
            case uOrthogonalityError = "u_orthogonality_error"
            case vOrthogonalityError = "v_orthogonality_error"
            case lastStepOrthogonalityError = "last_step_orthogonality_error"
        }
    }
    public var layers: [Layer]

    /// The largest of every layer's two errors.
    public var maxOrthogonalityError: Double {
        layers.map { max($0.uOrthogonalityError, $0.vOrthogonalityError) }.max() ?? 0
    }

    /// The largest ``Layer/lastStepOrthogonalityError``.
    public var maxLastStepOrthogonalityError: Double { layers.map(\.lastStepOrthogonalityError).max() ?? 0 }

    /// For the epoch line: "ranks conv1 8/8 conv2 12/16, orth 3.1e-07", and
    /// "(last step 7.1e-04)" after it where the end-of-epoch retraction ran.
    public var summary: String {
        "ranks " + layers.map { "\($0.name) \($0.rank)/\($0.fullRank)" }.joined(separator: " ")
            + String(format: ", orth %.1e", maxOrthogonalityError)
            + (maxLastStepOrthogonalityError > maxOrthogonalityError
                ? String(format: " (last step %.1e)", maxLastStepOrthogonalityError) : "")
    }
}
