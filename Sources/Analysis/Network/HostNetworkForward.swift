import CLAPACK
import Foundation
import Models

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
        apply(patches, columns: n, into: out, outputStride: n)
    }

    /// The same, writing row i of the result at `out + i·outputStride`
    /// (a block of columns of a wider matrix). Each entry is one dot product
    /// of length patch (then, factored, one of length k), whatever n is, so
    /// the values do not depend on how the columns are split into blocks.
    func apply(
        _ patches: UnsafePointer<Double>, columns n: Int, into out: UnsafeMutablePointer<Double>, outputStride: Int
    ) {
        switch self {
        case .dense(let m):
            m.values.withUnsafeBufferPointer { w in
                rowMajorProduct(m: m.rows, n: n, k: m.columns, a: w.baseAddress!, b: patches, c: out, ldc: outputStride)
            }
        case .factored(let u, let sigma, let vt):
            let k = sigma.count
            if k == 0 {
                for i in 0..<u.rows { (out + i * outputStride).update(repeating: 0, count: n) }
                return
            }
            let z = UnsafeMutablePointer<Double>.allocate(capacity: k * n)
            defer { z.deallocate() }
            vt.values.withUnsafeBufferPointer { v in
                rowMajorProduct(m: k, n: n, k: vt.columns, a: v.baseAddress!, b: patches, c: z, ldc: n)
            }
            for i in 0..<k {
                let s = sigma[i]
                let row = z + i * n
                for j in 0..<n { row[j] *= s }
            }
            u.values.withUnsafeBufferPointer { up in
                rowMajorProduct(m: u.rows, n: n, k: k, a: up.baseAddress!, b: z, c: out, ldc: outputStride)
            }
        }
    }

    /// Rows of the result (the layer's output channels or features).
    var outputs: Int {
        switch self {
        case .dense(let m): return m.rows
        case .factored(let u, _, _): return u.rows
        }
    }
}

/// C (m × n, row i at c + i·ldc) = A (m × k) · B (k × n), row-major, float64 dgemm.
private func rowMajorProduct(
    m: Int, n: Int, k: Int, a: UnsafePointer<Double>, b: UnsafePointer<Double>, c: UnsafeMutablePointer<Double>,
    ldc: Int
) {
    cblas_dgemm(
        CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1.0, a, Int32(k), b, Int32(n), 0.0,
        c, Int32(ldc))
}

/// A chunk of `batch` activations of `size` values per image, in one of two
/// layouts: image-major (batch, C, H, W), the public layout of
/// ``HostNetworkForward``, or channel-major (C, batch, H·W), the layout
/// W·im2col produces and consumes (the columns of P run over (image, y, x)),
/// so that a chain of layers needs no transposition between them.
struct ChunkActivations: Sendable {
    var values: [Double]
    let batch: Int
    /// Values per image.
    let size: Int
    /// nil: image-major; else channel-major with this many channels.
    var channels: Int?

    init(imageMajor values: [Double], batch: Int) {
        precondition(
            batch > 0 && values.count % batch == 0, "HostNetworkForward: \(values.count) values, batch \(batch)")
        self.values = values
        self.batch = batch
        self.size = values.count / batch
        self.channels = nil
    }

    init(channelMajor values: [Double], batch: Int, channels: Int) {
        self.values = values
        self.batch = batch
        self.size = values.count / batch
        self.channels = channels
    }

    /// The values in the image-major layout.
    var imageMajor: [Double] {
        guard let c = channels, c > 1, batch > 1 else { return values }
        return transposeBlocks(values, outer: c, inner: batch, block: size / c)
    }

    /// The same activations channel-major with `c` channels.
    func channelMajor(_ c: Int) -> ChunkActivations {
        if channels == c { return self }
        let image = imageMajor
        precondition(size % c == 0, "HostNetworkForward: \(size) values per image in \(c) channels")
        let values = c > 1 && batch > 1 ? transposeBlocks(image, outer: batch, inner: c, block: size / c) : image
        return ChunkActivations(channelMajor: values, batch: batch, channels: c)
    }
}

/// (outer, inner, block) → (inner, outer, block).
private func transposeBlocks(_ x: [Double], outer: Int, inner: Int, block: Int) -> [Double] {
    [Double](unsafeUninitializedCapacity: x.count) { out, count in
        x.withUnsafeBufferPointer { src in
            for o in 0..<outer {
                for i in 0..<inner {
                    (out.baseAddress! + (i * outer + o) * block).initialize(
                        from: src.baseAddress! + (o * inner + i) * block, count: block)
                }
            }
        }
        count = x.count
    }
}

/// The float64 forward pass of a ``FoldedNetwork`` on the host, one batch
/// of images at a time (batch-major, each image (C, H, W) row-major), with
/// one ``LayerOperator`` per layer: conv by im2col (the layer's stride and
/// zero padding) and dgemm, then + b̃; ReLU; max-pool 2 in floor mode;
/// global average pool; linear; residual adds.
///
/// Inside, a batch runs channel-major (``ChunkActivations``); a conv layer
/// unfolds its input a block of output rows at a time, about
/// ``patchBlockValues`` values of P, so that P stays in the core's cache
/// between im2col and dgemm. Every output is one dot product of W̃'s row
/// with a patch (then + b̃), whatever the batch or the block, so the
/// results do not depend on either.
public struct HostNetworkForward: Sendable {
    public let network: FoldedNetwork
    public let operators: [LayerOperator]

    /// Values of P unfolded at once per conv layer (512 KiB of float64).
    static let patchBlockValues = 1 << 16

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
        let hooks = Hooks(
            record: record.map { f in { f($0, $1.imageMajor) } },
            layerInputs: layerInputs.map { f in { f($0, $1.imageMajor) } })
        return forward(
            ChunkActivations(imageMajor: input, batch: batch), from: start, hooks,
            topLevelInputs: topLevelInputs.map { f in { f($0, $1.imageMajor) } }
        ).imageMajor
    }

    /// `steps` applied to `x` (batch × their input size).
    public func apply(_ steps: [FoldedNetwork.Step], _ x: [Double], batch: Int) -> [Double] {
        var a = ChunkActivations(imageMajor: x, batch: batch)
        for s in steps { a = run(s, a, Hooks()) }
        return a.imageMajor
    }

    /// What a pass reports besides its result, in either layout.
    struct Hooks {
        var record: ((Int, ChunkActivations) -> Void)?
        var layerInputs: ((Int, ChunkActivations) -> Void)?
        /// A layer's output from an earlier pass, taken instead of computing
        /// it (the caller vouches that the layer and its input are the same);
        /// `layerInputs` is not called for such a layer.
        var reuse: ((Int) -> ChunkActivations?)?
    }

    /// The top-level steps from `start` on `x` (the input of step `start`).
    func forward(
        _ x: ChunkActivations, from start: Int = 0, _ hooks: Hooks = Hooks(),
        topLevelInputs: ((Int, ChunkActivations) -> Void)? = nil
    ) -> ChunkActivations {
        var x = x
        for index in start..<network.steps.count {
            topLevelInputs?(index, x)
            x = run(network.steps[index], x, hooks)
        }
        return x
    }

    /// The output a = op(p) + b̃ of layer `index` for `input` (batch × the layer's input size).
    public func layerOutput(_ index: Int, _ input: [Double], batch: Int) -> [Double] {
        layerOutput(index, ChunkActivations(imageMajor: input, batch: batch)).imageMajor
    }

    /// The output of layer `index`, channel-major.
    func layerOutput(_ index: Int, _ x: ChunkActivations) -> ChunkActivations {
        let layer = network.layers[index]
        let op = operators[index]
        let batch = x.batch
        switch layer.kind {
        case .conv(let spec, let h, let w, let oh, let ow):
            let input = x.channelMajor(spec.inChannels)
            let n = batch * oh * ow
            let patch = spec.inChannels * spec.kernelSize * spec.kernelSize
            let rows = batch * oh
            let rowsPerBlock = max(1, min(rows, Self.patchBlockValues / max(1, patch * ow)))
            let out = [Double](unsafeUninitializedCapacity: spec.outChannels * n) { buffer, count in
                let block = UnsafeMutablePointer<Double>.allocate(capacity: patch * rowsPerBlock * ow)
                defer { block.deallocate() }
                input.values.withUnsafeBufferPointer { xp in
                    var r0 = 0
                    while r0 < rows {
                        let r1 = min(rows, r0 + rowsPerBlock)
                        let columns = (r1 - r0) * ow
                        im2colRows(
                            xp.baseAddress!, spec: spec, batch: batch, height: h, width: w, outHeight: oh,
                            outWidth: ow, rows: r0..<r1, into: block)
                        op.apply(block, columns: columns, into: buffer.baseAddress! + r0 * ow, outputStride: n)
                        r0 = r1
                    }
                }
                for c in 0..<spec.outChannels {
                    let bias = layer.bias[c]
                    let row = buffer.baseAddress! + c * n
                    for j in 0..<n { row[j] += bias }
                }
                count = spec.outChannels * n
            }
            return ChunkActivations(channelMajor: out, batch: batch, channels: spec.outChannels)
        case .linear:
            // P = Xᵀ (in × batch): the channel-major vector itself when each channel is one value.
            let features = layer.weight.columns
            precondition(x.size == features, "HostNetworkForward: \(layer.name) takes \(features) values per image")
            let m = layer.weight.rows
            let p: [Double]
            if let c = x.channels, c == features {
                p = x.values
            } else if let c = x.channels {
                // (C, batch, plane) → row c·plane + q, column b.
                let plane = features / c
                p = [Double](unsafeUninitializedCapacity: features * batch) { out, count in
                    for ch in 0..<c {
                        for b in 0..<batch {
                            for q in 0..<plane {
                                out[(ch * plane + q) * batch + b] = x.values[(ch * batch + b) * plane + q]
                            }
                        }
                    }
                    count = features * batch
                }
            } else {
                p = transposeBlocks(x.values, outer: batch, inner: features, block: 1)
            }
            let out = [Double](unsafeUninitializedCapacity: m * batch) { buffer, count in
                p.withUnsafeBufferPointer { pp in
                    op.apply(pp.baseAddress!, columns: batch, into: buffer.baseAddress!, outputStride: batch)
                }
                for o in 0..<m {
                    let bias = layer.bias[o]
                    for b in 0..<batch { buffer[o * batch + b] += bias }
                }
                count = m * batch
            }
            return ChunkActivations(channelMajor: out, batch: batch, channels: m)
        }
    }

    func run(_ step: FoldedNetwork.Step, _ x: ChunkActivations, _ hooks: Hooks) -> ChunkActivations {
        switch step {
        case .affine(let index):
            if let out = hooks.reuse?(index) {
                hooks.record?(index, out)
                return out
            }
            hooks.layerInputs?(index, x)
            let out = layerOutput(index, x)
            hooks.record?(index, out)
            return out
        case .relu:
            var y = x
            y.values.withUnsafeMutableBufferPointer { v in
                for i in v.indices { v[i] = max(v[i], 0) }
            }
            return y
        case .maxPool2(let c, let h, let w):
            // Per plane in either layout: (batch·C) planes of h × w.
            let input = x.channelMajor(c)
            let (oh, ow) = (h / 2, w / 2)
            let planes = x.batch * c
            let out = [Double](unsafeUninitializedCapacity: planes * oh * ow) { out, count in
                input.values.withUnsafeBufferPointer { xp in
                    for plane in 0..<planes {
                        let base = xp.baseAddress! + plane * h * w
                        let dst = out.baseAddress! + plane * oh * ow
                        for i in 0..<oh {
                            let r0 = base + 2 * i * w
                            let r1 = r0 + w
                            for j in 0..<ow {
                                dst[i * ow + j] = max(max(r0[2 * j], r0[2 * j + 1]), max(r1[2 * j], r1[2 * j + 1]))
                            }
                        }
                    }
                }
                count = planes * oh * ow
            }
            return ChunkActivations(channelMajor: out, batch: x.batch, channels: c)
        case .globalAveragePool(let c, let plane):
            let input = x.channelMajor(c)
            let planes = x.batch * c
            let out = [Double](unsafeUninitializedCapacity: planes) { out, count in
                input.values.withUnsafeBufferPointer { xp in
                    for i in 0..<planes {
                        var sum = 0.0
                        for j in 0..<plane { sum += xp[i * plane + j] }
                        out[i] = sum / Double(plane)
                    }
                }
                count = planes
            }
            return ChunkActivations(channelMajor: out, batch: x.batch, channels: c)
        case .residual(let body, let shortcut, let relu):
            var y = x
            for s in body { y = run(s, y, hooks) }
            var skip = x
            if let shortcut { for s in shortcut { skip = run(s, skip, hooks) } }
            if let c = y.channels {
                skip = skip.channelMajor(c)
            } else if let c = skip.channels {
                y = y.channelMajor(c)
            }
            skip.values.withUnsafeBufferPointer { sp in
                y.values.withUnsafeMutableBufferPointer { yp in
                    for i in 0..<yp.count {
                        let v = yp[i] + sp[i]
                        yp[i] = relu ? max(v, 0) : v
                    }
                }
            }
            return y
        }
    }
}

/// Rows `rows` (each an (image, output row) pair, image-major) of the
/// patches of a channel-major input (C, batch, H, W) of a conv layer, as a
/// block (patch size × rows·W') row-major: row (c, ky, kx) (PyTorch's
/// weight flattening), column (row − rows.lowerBound)·W' + ox; zero outside
/// the image.
func im2colRows(
    _ x: UnsafePointer<Double>, spec: Conv2dSpec, batch: Int, height h: Int, width w: Int, outHeight oh: Int,
    outWidth ow: Int, rows: Range<Int>, into block: UnsafeMutablePointer<Double>
) {
    let k = spec.kernelSize
    let columns = rows.count * ow
    for c in 0..<spec.inChannels {
        for ky in 0..<k {
            for kx in 0..<k {
                let (lo, hi) = validOutputColumns(
                    kx, stride: spec.stride, padding: spec.padding, width: w, outWidth: ow)
                let dst = block + ((c * k + ky) * k + kx) * columns
                for (t, r) in rows.enumerated() {
                    let (image, oy) = r.quotientAndRemainder(dividingBy: oh)
                    let y = oy * spec.stride + ky - spec.padding
                    let row = dst + t * ow
                    if y < 0 || y >= h {
                        row.update(repeating: 0, count: ow)
                        continue
                    }
                    let src = x + ((c * batch + image) * h + y) * w
                    copyPatchRow(src, row, kx: kx, stride: spec.stride, padding: spec.padding, lo: lo, hi: hi, ow: ow)
                }
            }
        }
    }
}

/// The output columns ox whose tap kx falls inside a row of `width`:
/// 0 ≤ ox·stride + kx − padding < width, as lo..<hi.
@inline(__always)
private func validOutputColumns(_ kx: Int, stride: Int, padding: Int, width: Int, outWidth: Int) -> (Int, Int) {
    // The smallest ox with ox·stride ≥ padding − kx, and the first with ox·stride > width − 1 + padding − kx.
    let first = padding - kx
    let lo = first <= 0 ? 0 : (first + stride - 1) / stride
    let last = width - 1 + padding - kx
    let hi = last < 0 ? 0 : last / stride + 1
    return (min(lo, outWidth), min(max(hi, min(lo, outWidth)), outWidth))
}

/// row[ox] = src[ox·stride + kx − padding] for ox in lo..<hi, 0 elsewhere in 0..<ow.
@inline(__always)
private func copyPatchRow(
    _ src: UnsafePointer<Double>, _ row: UnsafeMutablePointer<Double>, kx: Int, stride: Int, padding: Int, lo: Int,
    hi: Int, ow: Int
) {
    if lo > 0 { row.update(repeating: 0, count: lo) }
    let start = src + (lo * stride + kx - padding)
    if stride == 1 {
        if hi > lo { row.advanced(by: lo).update(from: start, count: hi - lo) }
    } else {
        for ox in lo..<hi { row[ox] = start[(ox - lo) * stride] }
    }
    if hi < ow { row.advanced(by: hi).update(repeating: 0, count: ow - hi) }
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
    return [Double](unsafeUninitializedCapacity: spec.inChannels * k * k * n) { cp, count in
        for b in 0..<batch {
            im2col(
                x + b * inSize, channels: spec.inChannels, height: h, width: w, kernel: k, stride: spec.stride,
                padding: spec.padding, outHeight: oh, outWidth: ow, into: cp.baseAddress! + b * plane, rowStride: n)
        }
        count = spec.inChannels * k * k * n
    }
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
                let (lo, hi) = validOutputColumns(kx, stride: stride, padding: padding, width: w, outWidth: ow)
                let row = cols + ((c * k + ky) * k + kx) * rowStride
                for oy in 0..<oh {
                    let y = oy * stride + ky - padding
                    if y < 0 || y >= h {
                        (row + oy * ow).update(repeating: 0, count: ow)
                        continue
                    }
                    copyPatchRow(
                        x + (c * h + y) * w, row + oy * ow, kx: kx, stride: stride, padding: padding, lo: lo, hi: hi,
                        ow: ow)
                }
            }
        }
    }
}
