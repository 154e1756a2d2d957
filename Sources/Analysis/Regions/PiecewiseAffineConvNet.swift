/// TinyConvNet's architecture at any (square) input size and channel
/// counts, in float64: conv1 (c₁×1×3×3, no bias) → ReLU → 2×2 max-pool →
/// conv2 (c₂×c₁×3×3, no bias) → ReLU → 2×2 max-pool (floor mode) → flatten
/// channel-major → fc (classes × c₂·p₂² + bias).
///
/// The network is continuous and piecewise affine in its input; this type
/// is what ``PiecewiseAffineConvNet/pieces(from:to:)`` walks along a
/// segment. TinyConvNet is `inputSide` 28, c₁ = 8, c₂ = 16, 10 classes
/// (``init(_:)``); the tests build small ones whose breakpoints can be
/// derived by hand.
///
/// Sizes: conv1 output o₁ = n − 2, pooled p₁ = ⌊o₁/2⌋, conv2 output
/// o₂ = p₁ − 2, pooled p₂ = ⌊o₂/2⌋.
public struct PiecewiseAffineConvNet: Sendable {
    public let inputSide: Int
    /// (c₁, 9), row-major, columns (kH, kW).
    public let conv1: Matrix
    /// (c₂, c₁·9), columns (in, kH, kW) as PyTorch flattens them.
    public let conv2: Matrix
    /// (classes, c₂·p₂²).
    public let fcWeight: Matrix
    public let fcBias: [Double]

    public var conv1Channels: Int { conv1.rows }
    public var conv2Channels: Int { conv2.rows }
    public var classes: Int { fcWeight.rows }
    public var conv1Side: Int { inputSide - 2 }
    public var pool1Side: Int { conv1Side / 2 }
    public var conv2Side: Int { pool1Side - 2 }
    public var pool2Side: Int { conv2Side / 2 }
    /// 2×2 windows of the first pool: c₁·p₁².
    public var pool1Windows: Int { conv1Channels * pool1Side * pool1Side }
    /// 2×2 windows of the second pool: c₂·p₂².
    public var pool2Windows: Int { conv2Channels * pool2Side * pool2Side }

    /// Refuses shapes that do not chain (named in the error) and non-finite values.
    public init(inputSide: Int, conv1: Matrix, conv2: Matrix, fcWeight: Matrix, fcBias: [Double]) throws {
        func refuse(_ reason: String) -> AnalysisError {
            .invalidOption(name: "PiecewiseAffineConvNet", reason: reason)
        }
        guard inputSide >= 10 else {
            throw refuse("input side \(inputSide) < 10: nothing is left after the second pool")
        }
        guard conv1.columns == 9, conv1.rows >= 1 else {
            throw refuse("conv1 is \(conv1.rows)×\(conv1.columns), expected c₁×9")
        }
        guard conv2.columns == 9 * conv1.rows, conv2.rows >= 1 else {
            throw refuse("conv2 is \(conv2.rows)×\(conv2.columns), expected c₂×\(9 * conv1.rows)")
        }
        let p2 = ((inputSide - 2) / 2 - 2) / 2
        guard fcWeight.columns == conv2.rows * p2 * p2, fcWeight.rows >= 1, fcBias.count == fcWeight.rows else {
            throw refuse(
                "fc is \(fcWeight.rows)×\(fcWeight.columns) with \(fcBias.count) biases, expected classes×\(conv2.rows * p2 * p2)"
            )
        }
        for (name, values) in [
            ("conv1", conv1.values), ("conv2", conv2.values), ("fc.weight", fcWeight.values), ("fc.bias", fcBias),
        ]
        where values.contains(where: { !$0.isFinite }) {
            throw refuse("\(name) holds a non-finite value")
        }
        self.inputSide = inputSide
        self.conv1 = conv1
        self.conv2 = conv2
        self.fcWeight = fcWeight
        self.fcBias = fcBias
    }

    /// TinyConvNet's float64 weights (the host reference network's).
    public init(_ network: HostReferenceNet) {
        // The shapes are TinyConvNet's by construction of HostReferenceNet.
        try! self.init(
            inputSide: TinyConvNetGeometry.imageSide, conv1: network.conv1, conv2: network.conv2,
            fcWeight: network.fcWeight, fcBias: network.fcBias)
    }

    /// A forward pass's pre-activations and logits, channel-major across the
    /// batch ("CBHW"): conv1 (c₁, b, o₁, o₁), conv2 (c₂, b, o₂, o₂), logits (b, classes).
    public struct Activations: Sendable {
        public var count: Int
        public var conv1: [Double]
        public var conv2: [Double]
        public var logits: [Double]
    }

    /// The forward pass of `count` images (count, n, n) with the same
    /// operations as the analysis' host network (`runChain`: im2col, dgemm,
    /// fused ReLU and pool, flatten, fc).
    public func forward(images: [Double], count b: Int) -> Activations {
        precondition(
            images.count == b * inputSide * inputSide,
            "forward: \(images.count) values for \(b) images of \(inputSide)²")
        let n1 = b * conv1Side * conv1Side
        let n2 = b * conv2Side * conv2Side
        let cols1 = uninitializedArray(9 * n1) { dst in
            images.withUnsafeBufferPointer {
                im2col3x3($0.baseAddress!, channels: 1, count: b, side: inputSide, into: dst)
            }
        }
        let a1 = uninitializedArray(conv1Channels * n1) { dst in
            conv1.values.withUnsafeBufferPointer { w in
                cols1.withUnsafeBufferPointer {
                    denseProduct(m: conv1Channels, n: n1, k: 9, a: w.baseAddress!, b: $0.baseAddress!, c: dst)
                }
            }
        }
        let pooled1 = reluPool(a1, planes: conv1Channels * b, side: conv1Side)
        let cols2 = uninitializedArray(9 * conv1Channels * n2) { dst in
            pooled1.withUnsafeBufferPointer {
                im2col3x3($0.baseAddress!, channels: conv1Channels, count: b, side: pool1Side, into: dst)
            }
        }
        let a2 = uninitializedArray(conv2Channels * n2) { dst in
            conv2.values.withUnsafeBufferPointer { w in
                cols2.withUnsafeBufferPointer {
                    denseProduct(
                        m: conv2Channels, n: n2, k: 9 * conv1Channels, a: w.baseAddress!, b: $0.baseAddress!, c: dst)
                }
            }
        }
        let pooled2 = reluPool(a2, planes: conv2Channels * b, side: conv2Side)
        let plane = pool2Side * pool2Side
        let features = uninitializedArray(b * conv2Channels * plane) { dst in
            pooled2.withUnsafeBufferPointer {
                flattenImageMajor($0.baseAddress!, channels: conv2Channels, count: b, planeSize: plane, into: dst)
            }
        }
        let logits = features.withUnsafeBufferPointer {
            DenseLayer(weight: fcWeight, bias: fcBias).apply($0.baseAddress!, count: b)
        }
        return Activations(count: b, conv1: a1, conv2: a2, logits: logits)
    }

    /// The images x(t) = x₀ + t·(x₁ − x₀) for each t, (ts.count, n, n); the
    /// difference is taken once per pixel, as ``pieces(from:to:)`` takes it.
    public func interpolate(_ x0: [Double], _ x1: [Double], at ts: [Double]) -> [Double] {
        let d = zip(x1, x0).map { $0 - $1 }
        var out = [Double](repeating: 0, count: ts.count * x0.count)
        for (k, t) in ts.enumerated() {
            for p in 0..<x0.count { out[k * x0.count + p] = x0[p] + t * d[p] }
        }
        return out
    }
}
