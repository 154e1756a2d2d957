import Foundation
import NetIO

/// Phase 9's data-aware low rank for every conv layer of a folded network
/// (TinyConvNet's section 2, ``DataAwareLayer``, per layer): the rank-k map
/// Ŵ_k = U_kU_kᵀW̃ that minimises the mean ‖(W̃ − Ŵ)p‖² over the layer's own
/// input patches p (its stride and padding, its input the folded float64
/// network's activation on the given images, ``LayerInputMoment``), its
/// error against the plain truncation's at every k, and the three checks
/// of each layer (the measured error against Σ_{i>k}σᵢ²(W̃·C^{1/2}); C = I
/// reduces to the truncation; the plain truncation never beats it).
///
/// W̃ is the BatchNorm-folded matrix: the error is what the next layer
/// receives, as `compress --data-aware` minimises it. A layer with more
/// outputs than patch values (a ResNet's first conv on one channel, its 1×1
/// projections) has a rank below its output count; ``DataAwareLayer`` is
/// for square U, so those layers are listed as skipped.
public struct NetworkDataAware: Codable, Sendable, Equatable {
    public var images: Int
    public var layers: [DataAwareLayer]
    /// Conv layers not analysed, with the reason.
    public var skipped: [PhaseNotRun]
    public var seconds: Double

    public var checks: [Check] { layers.flatMap(\.checks) }

    /// The phase over the first `count` of `images` (normalised, count ×
    /// the network's input size), described as `source` in the report.
    public static func run(
        _ network: FoldedNetwork, images: [Float], count: Int, source: String, threads: Int
    ) throws -> NetworkDataAware {
        let started = Clocks.wall()
        var chosen = Set<Int>()
        var skipped: [PhaseNotRun] = []
        for (index, layer) in network.layers.enumerated() {
            guard case .conv = layer.kind else { continue }
            if layer.folded.rows > layer.folded.columns {
                skipped.append(
                    PhaseNotRun(
                        phase: layer.name,
                        reason: "\(layer.folded.rows) outputs from \(layer.folded.columns) patch values: rank below "
                            + "the outputs"))
            } else {
                chosen.insert(index)
            }
        }
        let moments = LayerInputMoment.measure(
            network, layers: chosen, images: images, count: count, threads: threads, outputs: true)
        let layers = try chosen.sorted().map { index -> DataAwareLayer in
            let layer = network.layers[index]
            let m = moments[index]!
            let w = layer.folded
            let svd = try SingularValueDecomposition(w, context: "\(layer.name) W̃")
            let projection = try DataAwareProjection(weight: w, secondMoment: m.moment, layer: layer.name)
            return try DataAwareLayer.compute(
                layer: layer.name, patchSource: source, patchCount: m.patches, weight: w, svd: svd,
                secondMoment: m.moment, dataEnergies: componentEnergies(m.outputMoment!, basis: projection.basis),
                plainEnergies: componentEnergies(m.outputMoment!, basis: svd.u), identity: .identity(w.columns))
        }
        return NetworkDataAware(
            images: count, layers: layers, skipped: skipped, seconds: Clocks.seconds(since: started))
    }
}
