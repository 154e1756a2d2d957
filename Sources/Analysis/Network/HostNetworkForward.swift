import Foundation

/// How an ``AffineLayer`` maps its patches p (columns of P) to a − b̃.
public enum LayerOperator: Sendable {
    /// M·p with a dense M (out × patch): W̃ itself for the folded network.
    case dense(Matrix)
    /// U·(σ ⊙ (Vᵀ·p)) in three steps, z = Vᵀp, s = σ⊙z, U·s: the network
    /// in SVD coordinates with all r components, or truncated to the
    /// leading k (U out×k, σ k, Vᵀ k×patch).
    case factored(u: Matrix, sigma: [Double], vt: Matrix)

    /// The rank-k truncation of `svd` (k = rank: all components).
    public static func truncated(_ svd: SingularValueDecomposition, rank k: Int) -> LayerOperator {
        .factored(u: svd.u.leadingColumns(k), sigma: Array(svd.singularValues[0..<k]), vt: svd.vt.leadingRows(k))
    }

    /// Out × n = self applied to `patches` (patch × n, row-major), float64 dgemm.
    func apply(_ patches: UnsafePointer<Double>, columns n: Int, into out: UnsafeMutablePointer<Double>) {
        switch self {
        case .dense(let m):
            m.values.withUnsafeBufferPointer { w in
                denseProduct(m: m.rows, n: n, k: m.columns, a: w.baseAddress!, b: patches, c: out)
            }
        case .factored(let u, let sigma, let vt):
            let k = sigma.count
            if k == 0 {
                out.update(repeating: 0, count: u.rows * n)
                return
            }
            var z = [Double](repeating: 0, count: k * n)
            z.withUnsafeMutableBufferPointer { zp in
                vt.values.withUnsafeBufferPointer { v in
                    denseProduct(m: k, n: n, k: vt.columns, a: v.baseAddress!, b: patches, c: zp.baseAddress!)
                }
                for i in 0..<k {
                    let s = sigma[i]
                    for j in 0..<n { zp[i * n + j] *= s }
                }
                u.values.withUnsafeBufferPointer { up in
                    denseProduct(m: u.rows, n: n, k: k, a: up.baseAddress!, b: zp.baseAddress!, c: out)
                }
            }
        }
    }
}

/// The float64 forward pass of a ``FoldedNetwork`` on the host, one batch
/// of images at a time (batch-major, each image (C, H, W) row-major), with
/// one ``LayerOperator`` per layer: conv by im2col (the layer's stride and
/// zero padding) and dgemm, then + b̃; ReLU; max-pool 2 in floor mode;
/// global average pool; linear; residual adds.
public struct HostNetworkForward: Sendable {
    public let network: FoldedNetwork
    public let operators: [LayerOperator]

    public init(_ network: FoldedNetwork, operators: [LayerOperator]) {
        precondition(operators.count == network.layers.count)
        self.network = network
        self.operators = operators
    }

    /// The folded network: W̃ for every layer.
    public static func folded(_ network: FoldedNetwork) -> HostNetworkForward {
        HostNetworkForward(network, operators: network.layers.map { .dense($0.folded) })
    }

    /// Logits (batch × classes) of `input` (batch images). `record` receives
    /// each layer's output a = W̃p + b̃ (batch × the layer's output size) by
    /// layer index, `layerInputs` each layer's input (batch × the layer's
    /// input size); `topLevelInputs` receives the input of each top-level
    /// step (for restarting the pass at a step).
    public func logits(
        _ input: [Double], batch: Int, from start: Int = 0, record: ((Int, [Double]) -> Void)? = nil,
        layerInputs: ((Int, [Double]) -> Void)? = nil, topLevelInputs: ((Int, [Double]) -> Void)? = nil
    ) -> [Double] {
        var x = input
        let hooks = Hooks(record: record, layerInputs: layerInputs)
        for index in start..<network.steps.count {
            topLevelInputs?(index, x)
            x = run(network.steps[index], x, batch: batch, hooks)
        }
        return x
    }

    /// `steps` applied to `x` (batch × their input size).
    public func apply(_ steps: [FoldedNetwork.Step], _ x: [Double], batch: Int) -> [Double] {
        steps.reduce(x) { run($1, $0, batch: batch, Hooks()) }
    }

    private struct Hooks {
        var record: ((Int, [Double]) -> Void)?
        var layerInputs: ((Int, [Double]) -> Void)?
    }

    /// The output a = op(p) + b̃ of layer `index` for `input` (batch × the layer's input size).
    public func layerOutput(_ index: Int, _ input: [Double], batch: Int) -> [Double] {
        let layer = network.layers[index]
        let op = operators[index]
        var out = [Double](repeating: 0, count: batch * layer.outputSize)
        input.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op2 in
                switch layer.kind {
                case .conv(let spec, _, _, let oh, let ow):
                    // One product for the whole batch (``batchPatches``).
                    let plane = oh * ow
                    let n = batch * plane
                    let cols = batchPatches(layer, xp.baseAddress!, batch: batch)
                    var a = [Double](repeating: 0, count: spec.outChannels * n)
                    cols.withUnsafeBufferPointer { cp in
                        a.withUnsafeMutableBufferPointer { ap in
                            op.apply(cp.baseAddress!, columns: n, into: ap.baseAddress!)
                        }
                    }
                    for b in 0..<batch {
                        for c in 0..<spec.outChannels {
                            let bias = layer.bias[c]
                            let target = b * layer.outputSize + c * plane
                            let source = c * n + b * plane
                            for j in 0..<plane { op2[target + j] = a[source + j] + bias }
                        }
                    }
                case .linear:
                    // P = Xᵀ (in × batch); A = op(P) (out × batch), then transposed.
                    let n = layer.weight.columns
                    let m = layer.weight.rows
                    var cols = [Double](repeating: 0, count: n * batch)
                    for b in 0..<batch { for i in 0..<n { cols[i * batch + b] = xp[b * n + i] } }
                    var a = [Double](repeating: 0, count: m * batch)
                    cols.withUnsafeBufferPointer { cp in
                        a.withUnsafeMutableBufferPointer { ap in
                            op.apply(cp.baseAddress!, columns: batch, into: ap.baseAddress!)
                        }
                    }
                    for b in 0..<batch { for o in 0..<m { op2[b * m + o] = a[o * batch + b] + layer.bias[o] } }
                }
            }
        }
        return out
    }

    private func run(_ step: FoldedNetwork.Step, _ x: [Double], batch: Int, _ hooks: Hooks) -> [Double] {
        switch step {
        case .affine(let index):
            hooks.layerInputs?(index, x)
            let out = layerOutput(index, x, batch: batch)
            hooks.record?(index, out)
            return out
        case .relu:
            return x.map { max($0, 0) }
        case .maxPool2(let c, let h, let w):
            let (oh, ow) = (h / 2, w / 2)
            var out = [Double](repeating: 0, count: batch * c * oh * ow)
            var o = 0
            for plane in 0..<(batch * c) {
                let base = plane * h * w
                for i in 0..<oh {
                    for j in 0..<ow {
                        let p = base + 2 * i * w + 2 * j
                        out[o] = max(max(x[p], x[p + 1]), max(x[p + w], x[p + w + 1]))
                        o += 1
                    }
                }
            }
            return out
        case .globalAveragePool(let c, let plane):
            var out = [Double](repeating: 0, count: batch * c)
            for i in 0..<(batch * c) {
                var sum = 0.0
                for j in 0..<plane { sum += x[i * plane + j] }
                out[i] = sum / Double(plane)
            }
            return out
        case .residual(let body, let shortcut, let relu):
            var y = x
            for s in body { y = run(s, y, batch: batch, hooks) }
            var skip = x
            if let shortcut { for s in shortcut { skip = run(s, skip, batch: batch, hooks) } }
            for i in 0..<y.count {
                let v = y[i] + skip[i]
                y[i] = relu ? max(v, 0) : v
            }
            return y
        }
    }
}

/// The patches of `batch` inputs of conv layer `layer` as one matrix P
/// (patch size × batch·H'·W'): image b's patches in columns
/// b·H'W' ..< (b + 1)·H'W' (``im2col``).
func batchPatches(_ layer: AffineLayer, _ x: UnsafePointer<Double>, batch: Int) -> [Double] {
    guard case .conv(let spec, let h, let w, let oh, let ow) = layer.kind else { return [] }
    let k = spec.kernelSize
    let plane = oh * ow
    let n = batch * plane
    let inSize = spec.inChannels * h * w
    var cols = [Double](repeating: 0, count: spec.inChannels * k * k * n)
    cols.withUnsafeMutableBufferPointer { cp in
        for b in 0..<batch {
            im2col(
                x + b * inSize, channels: spec.inChannels, height: h, width: w, kernel: k, stride: spec.stride,
                padding: spec.padding, outHeight: oh, outWidth: ow, into: cp.baseAddress! + b * plane, rowStride: n)
        }
    }
    return cols
}

/// Patches of one image (C, H, W) as columns: row (c, ky, kx) (PyTorch's
/// weight flattening) at `cols + row·rowStride`, column (oy, ox); zero
/// outside the image.
func im2col(
    _ x: UnsafePointer<Double>, channels: Int, height h: Int, width w: Int, kernel k: Int, stride: Int,
    padding: Int, outHeight oh: Int, outWidth ow: Int, into cols: UnsafeMutablePointer<Double>, rowStride: Int
) {
    for c in 0..<channels {
        for ky in 0..<k {
            for kx in 0..<k {
                let row = cols + ((c * k + ky) * k + kx) * rowStride
                for oy in 0..<oh {
                    let y = oy * stride + ky - padding
                    if y < 0 || y >= h {
                        for ox in 0..<ow { row[oy * ow + ox] = 0 }
                        continue
                    }
                    let src = x + (c * h + y) * w
                    for ox in 0..<ow {
                        let xx = ox * stride + kx - padding
                        row[oy * ow + ox] = xx >= 0 && xx < w ? src[xx] : 0
                    }
                }
            }
        }
    }
}
