/// How one convolution maps its im2col patches p (columns) to
/// pre-activations a, in float64.
enum ConvLayerMap {
    /// a = W·p, W (out × patch): the network as trained (im2col + dgemm).
    case direct(Matrix)
    /// a = U·(σ ⊙ (Vᵀ·p)): the same map in SVD coordinates (AnalyticalNet).
    /// z = Vᵀp are the coordinates of the patch along the eigenfilters,
    /// s = σ⊙z the pre-activation's coordinates along the U directions.
    case spectral(SingularValueDecomposition)

    var outputs: Int {
        switch self {
        case .direct(let w): return w.rows
        case .spectral(let svd): return svd.u.rows
        }
    }

    /// Pre-activations (out, n) for patches `cols` (patch, n); for the
    /// spectral map also s = σ⊙Vᵀp (r, n).
    func apply(_ cols: UnsafePointer<Double>, count n: Int) -> (a: [Double], s: [Double]?) {
        switch self {
        case .direct(let w):
            let a = uninitializedArray(w.rows * n) { pa in
                w.values.withUnsafeBufferPointer { pw in
                    denseProduct(m: w.rows, n: n, k: w.columns, a: pw.baseAddress!, b: cols, c: pa)
                }
            }
            return (a, nil)
        case .spectral(let svd):
            let out = svd.u.rows
            let r = svd.rank
            let s = spectralCoordinates(svd, cols, count: n)
            let a = uninitializedArray(out * n) { pa in
                svd.u.values.withUnsafeBufferPointer { pu in
                    s.withUnsafeBufferPointer { ps in
                        // a = U·s
                        denseProduct(m: out, n: n, k: r, a: pu.baseAddress!, b: ps.baseAddress!, c: pa)
                    }
                }
            }
            return (a, s)
        }
    }
}

/// s = σ ⊙ (Vᵀ·p) (r, n) for patches `cols` (patch, n): z = Vᵀp are the
/// patches' coordinates along the eigenfilters, s the pre-activations'
/// coordinates along the columns of U.
func spectralCoordinates(_ svd: SingularValueDecomposition, _ cols: UnsafePointer<Double>, count n: Int) -> [Double] {
    let r = svd.rank
    let patch = svd.vt.columns
    return uninitializedArray(r * n) { ps in
        svd.vt.values.withUnsafeBufferPointer { pv in
            // z = Vᵀ·p
            denseProduct(m: r, n: n, k: patch, a: pv.baseAddress!, b: cols, c: ps)
        }
        // s = σ ⊙ z
        for i in 0..<r {
            let sigma = svd.singularValues[i]
            let row = ps + i * n
            for q in 0..<n { row[q] *= sigma }
        }
    }
}

/// The fc layer: logits (b, 10) = features (b, 400)·Wᵀ + bias.
struct DenseLayer: Sendable {
    /// Wᵀ, (400, 10) row-major.
    let weightTransposed: [Double]
    let bias: [Double]
    let inputs: Int
    let outputs: Int

    init(weight: Matrix, bias: [Double]) {
        self.weightTransposed = weight.transposed.values
        self.bias = bias
        self.inputs = weight.columns
        self.outputs = weight.rows
    }

    func apply(_ features: UnsafePointer<Double>, count b: Int) -> [Double] {
        var logits = [Double](repeating: 0, count: b * outputs)
        logits.withUnsafeMutableBufferPointer { pl in
            for img in 0..<b { for o in 0..<outputs { pl[img * outputs + o] = bias[o] } }
            weightTransposed.withUnsafeBufferPointer { pw in
                denseProduct(
                    m: b, n: outputs, k: inputs, a: features, b: pw.baseAddress!,
                    c: pl.baseAddress!, accumulate: true)
            }
        }
        return logits
    }
}

/// One forward pass of a chunk of images through conv1 → ReLU → pool →
/// conv2 → ReLU → pool → fc, in float64, layers in CBHW layout.
struct ChainActivations {
    let count: Int
    /// conv1 pre-activation (8, b, 26, 26).
    var conv1: [Double]
    /// σ⊙Vᵀp for conv1 (r₁, b·676), spectral map only.
    var conv1Coordinates: [Double]?
    /// The pooled ReLU of conv1, conv2's input (8, b, 13, 13).
    var pooled1: [Double]
    /// conv2 pre-activation (16, b, 11, 11).
    var conv2: [Double]
    /// σ⊙Vᵀp for conv2 (r₂, b·121), spectral map only.
    var conv2Coordinates: [Double]?
    /// The pooled ReLU of conv2, fc's input (16, b, 5, 5).
    var pooled2: [Double]
    /// (b, 10).
    var logits: [Double]
}

/// conv1's im2col of a chunk of normalised images (b, 1, 28, 28) as float64
/// (9, b·676). Shared by both chains (they read the same input).
func conv1Patches(_ images: UnsafeBufferPointer<Float>, count b: Int) -> [Double] {
    let g = TinyConvNetGeometry.self
    let wide = images.map(Double.init)
    let n = b * g.conv1OutputSide * g.conv1OutputSide
    return uninitializedArray(g.conv1PatchSize * n) { dst in
        wide.withUnsafeBufferPointer { src in
            im2col3x3(src.baseAddress!, channels: 1, count: b, side: g.imageSide, into: dst)
        }
    }
}

/// conv2's im2col (72, b·121) of a pooled conv1 output (8, b, 13, 13).
func conv2Patches(_ pooled1: [Double], count b: Int) -> [Double] {
    let g = TinyConvNetGeometry.self
    let n = b * g.conv2OutputSide * g.conv2OutputSide
    return uninitializedArray(g.conv2PatchSize * n) { dst in
        pooled1.withUnsafeBufferPointer { src in
            im2col3x3(src.baseAddress!, channels: g.conv1Channels, count: b, side: g.pool1Side, into: dst)
        }
    }
}

/// ReLU then 2×2 max-pool of a (C, b, h, h) pre-activation, fused:
/// max(0, max of the window) = max of the window of ReLU(a).
func reluPool(_ pre: [Double], planes: Int, side h: Int) -> [Double] {
    let o = h / 2
    return [Double](unsafeUninitializedCapacity: planes * o * o) { out, initialized in
        pre.withUnsafeBufferPointer { src in
            maxPool2(src.baseAddress!, planes: planes, side: h, into: out.baseAddress!)
        }
        for i in 0..<(planes * o * o) where !(out[i] > 0) { out[i] = 0 }
        initialized = planes * o * o
    }
}

/// An array of `count` doubles whose every element `body` writes (a gemm
/// output with β = 0), without zero-filling it first.
func uninitializedArray(_ count: Int, _ body: (UnsafeMutablePointer<Double>) -> Void) -> [Double] {
    [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { body(buffer.baseAddress!) }
        initialized = count
    }
}

/// The pooled conv2 output (16, b, 5, 5) through flatten and fc: logits (b, 10).
func classify(_ pooled2: [Double], count b: Int, fc: DenseLayer) -> [Double] {
    let g = TinyConvNetGeometry.self
    var features = [Double](repeating: 0, count: b * g.features)
    pooled2.withUnsafeBufferPointer { src in
        features.withUnsafeMutableBufferPointer { dst in
            flattenImageMajor(
                src.baseAddress!, channels: g.conv2Channels, count: b,
                planeSize: g.pool2Side * g.pool2Side, into: dst.baseAddress!)
        }
    }
    return features.withUnsafeBufferPointer { fc.apply($0.baseAddress!, count: b) }
}

/// Runs the whole chain on conv1 patches `cols1` of b images.
func runChain(cols1: [Double], count b: Int, conv1: ConvLayerMap, conv2: ConvLayerMap, fc: DenseLayer)
    -> ChainActivations
{
    let g = TinyConvNetGeometry.self
    let n1 = b * g.conv1OutputSide * g.conv1OutputSide
    let (a1, s1) = cols1.withUnsafeBufferPointer { conv1.apply($0.baseAddress!, count: n1) }
    let pooled1 = reluPool(a1, planes: g.conv1Channels * b, side: g.conv1OutputSide)
    let cols2 = conv2Patches(pooled1, count: b)
    let n2 = b * g.conv2OutputSide * g.conv2OutputSide
    let (a2, s2) = cols2.withUnsafeBufferPointer { conv2.apply($0.baseAddress!, count: n2) }
    let pooled2 = reluPool(a2, planes: g.conv2Channels * b, side: g.conv2OutputSide)
    let logits = classify(pooled2, count: b, fc: fc)
    return ChainActivations(
        count: b, conv1: a1, conv1Coordinates: s1, pooled1: pooled1,
        conv2: a2, conv2Coordinates: s2, pooled2: pooled2, logits: logits)
}

/// (C, b, plane) → (b, C, plane).
func cbhwToNCHW(_ x: [Double], channels: Int, count b: Int, planeSize: Int) -> [Double] {
    var out = [Double](repeating: 0, count: x.count)
    for c in 0..<channels {
        for img in 0..<b {
            let src = (c * b + img) * planeSize
            let dst = (img * channels + c) * planeSize
            for q in 0..<planeSize { out[dst + q] = x[src + q] }
        }
    }
    return out
}

/// A forward pass's activations for `count` images, NCHW, float64.
public struct NetworkActivations: Sendable {
    public var count: Int
    /// conv1 pre-activation (count, 8, 26, 26).
    public var conv1: [Double]
    /// conv2 pre-activation (count, 16, 11, 11).
    public var conv2: [Double]
    /// (count, 10).
    public var logits: [Double]
}

extension ChainActivations {
    var nchw: NetworkActivations {
        let g = TinyConvNetGeometry.self
        return NetworkActivations(
            count: count,
            conv1: cbhwToNCHW(
                conv1, channels: g.conv1Channels, count: count, planeSize: g.conv1OutputSide * g.conv1OutputSide),
            conv2: cbhwToNCHW(
                conv2, channels: g.conv2Channels, count: count, planeSize: g.conv2OutputSide * g.conv2OutputSide),
            logits: logits)
    }
}
