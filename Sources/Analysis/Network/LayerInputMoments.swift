import CLAPACK
import Foundation

/// The second moment C = (1/N)·Σ p·pᵀ of a conv layer's input patches:
/// every patch p (C_in·k², PyTorch's weight flattening, zero outside the
/// map) at every output position of every image, with the layer's own
/// stride and padding, its input the folded float64 network's activation
/// (``HostNetworkForward``). E‖A·p‖² = tr(A·C·Aᵀ) for any map A of the
/// patches, which is what a data-aware low rank minimises.
public struct LayerInputMoment: Sendable {
    /// (C_in·k²)×(C_in·k²), symmetric.
    public var moment: Matrix
    /// N: patches summed.
    public var patches: Int
    /// (1/N)·Σ a·aᵀ over the layer's outputs a = W̃·p on the same patches
    /// (the folded matrix applied by dgemm, then dsyrk), when asked for:
    /// E‖B·a‖² = tr(B·E[aaᵀ]·Bᵀ) measured from what the layer computes.
    public var outputMoment: Matrix?
}

extension LayerInputMoment {
    /// The moments of the conv layers `indices` of `network` over `count`
    /// normalised images (count × the network's input size), `batch` images
    /// a pass, the passes on `threads` threads, their sums added in order
    /// (the same figures whatever the thread count).
    public static func measure(
        _ network: FoldedNetwork, layers indices: Set<Int>, images: [Float], count: Int, batch: Int = 25,
        threads: Int = 2, outputs: Bool = false
    ) -> [Int: LayerInputMoment] {
        precondition(images.count == count * network.inputSize, "LayerInputMoment: image count")
        let forward = HostNetworkForward.folded(network)
        let convs = indices.sorted().filter {
            if case .conv = network.layers[$0].kind { return true }
            return false
        }
        let size = network.inputSize
        let pieces = (count + batch - 1) / batch
        let sums = parallelMap(pieces, threads: threads) { piece -> [Int: (inputs: [Double], outputs: [Double])] in
            let lo = piece * batch
            let hi = min(lo + batch, count)
            let x = images[(lo * size)..<(hi * size)].map(Double.init)
            var sums: [Int: (inputs: [Double], outputs: [Double])] = [:]
            _ = forward.logits(
                x, batch: hi - lo,
                layerInputs: { index, input in
                    guard convs.contains(index) else { return }
                    sums[index] = patchGram(network.layers[index], input, batch: hi - lo, outputs: outputs)
                })
            return sums
        }
        var result: [Int: LayerInputMoment] = [:]
        for index in convs {
            guard case .conv(let spec, _, _, let oh, let ow) = network.layers[index].kind else { continue }
            let d = spec.inChannels * spec.kernelSize * spec.kernelSize
            let n = count * oh * ow
            result[index] = LayerInputMoment(
                moment: mean(sums.compactMap { $0[index]?.inputs }, d, n),
                patches: n,
                outputMoment: outputs ? mean(sums.compactMap { $0[index]?.outputs }, spec.outChannels, n) : nil)
        }
        return result
    }

    /// The sums' total (added in order), over n, symmetrised from the upper triangle.
    private static func mean(_ sums: [[Double]], _ d: Int, _ n: Int) -> Matrix {
        var total = [Double](repeating: 0, count: d * d)
        for g in sums { for i in total.indices { total[i] += g[i] } }
        return PatchMoments.mean(total, d, n)
    }

    /// Σ p·pᵀ over the patches of `batch` inputs of a conv layer, upper
    /// triangle (dsyrk), d×d row-major; with `outputs`, Σ a·aᵀ for a = W̃·p too.
    static func patchGram(_ layer: AffineLayer, _ input: [Double], batch: Int, outputs: Bool)
        -> (inputs: [Double], outputs: [Double])
    {
        guard case .conv(let spec, _, _, let oh, let ow) = layer.kind else { return ([], []) }
        let d = spec.inChannels * spec.kernelSize * spec.kernelSize
        let n = batch * oh * ow
        let cols = input.withUnsafeBufferPointer { batchPatches(layer, $0.baseAddress!, batch: batch) }
        var gram = [Double](repeating: 0, count: d * d)
        TrainingPatchPasses.syrk(cols, rows: d, count: n, into: &gram)
        guard outputs else { return (gram, []) }
        let out = spec.outChannels
        var a = [Double](repeating: 0, count: out * n)
        var outputGram = [Double](repeating: 0, count: out * out)
        layer.folded.values.withUnsafeBufferPointer { wp in
            cols.withUnsafeBufferPointer { cp in
                a.withUnsafeMutableBufferPointer { ap in
                    denseProduct(m: out, n: n, k: d, a: wp.baseAddress!, b: cp.baseAddress!, c: ap.baseAddress!)
                }
            }
        }
        TrainingPatchPasses.syrk(a, rows: out, count: n, into: &outputGram)
        return (gram, outputGram)
    }
}
