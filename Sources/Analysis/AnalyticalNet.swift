import NetIO

/// TinyConvNet with each convolution computed in its SVD coordinates:
/// for a patch p, z = Vᵀp (coordinates along the eigenfilters), s = σ⊙z,
/// a = U·s (the pre-activation), h = ReLU(a), then 2×2 max-pool; after conv2
/// flatten and fc. Mathematically the same map as the trained network
/// (UΣVᵀ = W); computed in float64.
public struct AnalyticalNet: Sendable {
    public let conv1: SingularValueDecomposition
    public let conv2: SingularValueDecomposition
    /// fc weight (10, 400) and bias, widened to float64.
    public let fcWeight: Matrix
    public let fcBias: [Double]

    public init(
        conv1: SingularValueDecomposition, conv2: SingularValueDecomposition, fcWeight: Matrix, fcBias: [Double]
    ) {
        let g = TinyConvNetGeometry.self
        precondition(
            conv1.u.rows == g.conv1Channels && conv1.vt.columns == g.conv1PatchSize
                && conv2.u.rows == g.conv2Channels && conv2.vt.columns == g.conv2PatchSize
                && fcWeight.rows == g.classes && fcWeight.columns == g.features && fcBias.count == g.classes,
            "AnalyticalNet: shapes are not TinyConvNet's")
        self.conv1 = conv1
        self.conv2 = conv2
        self.fcWeight = fcWeight
        self.fcBias = fcBias
    }

    /// Decomposes the weights' conv layers (float64).
    public init(weights: TinyConvNetWeights) throws {
        let m = try ConvMatrices(weights: weights)
        self.init(
            conv1: try SingularValueDecomposition(m.conv1, context: "conv1.weight (8×9)"),
            conv2: try SingularValueDecomposition(m.conv2, context: "conv2.weight (16×72)"),
            fcWeight: m.fcWeight, fcBias: m.fcBias)
    }

    var fc: DenseLayer { DenseLayer(weight: fcWeight, bias: fcBias) }

    /// The forward pass of `count` normalised images (count, 1, 28, 28):
    /// pre-activations and logits, NCHW, float64.
    public func forward(normalizedImages: [Float], count: Int) -> NetworkActivations {
        precondition(
            normalizedImages.count == count * TinyConvNetGeometry.imageSide * TinyConvNetGeometry.imageSide,
            "AnalyticalNet.forward: \(normalizedImages.count) values for \(count) images")
        let cols = normalizedImages.withUnsafeBufferPointer { conv1Patches($0, count: count) }
        return runChain(cols1: cols, count: count, conv1: .spectral(conv1), conv2: .spectral(conv2), fc: fc).nchw
    }
}

/// The trained network on the host in float64, each convolution as im2col
/// then a = W·p (dgemm): the reference the device and the AnalyticalNet are
/// compared with.
public struct HostReferenceNet: Sendable {
    public let conv1: Matrix
    public let conv2: Matrix
    public let fcWeight: Matrix
    public let fcBias: [Double]

    public init(weights: TinyConvNetWeights) throws {
        self.init(try ConvMatrices(weights: weights))
    }

    init(_ m: ConvMatrices) {
        conv1 = m.conv1
        conv2 = m.conv2
        fcWeight = m.fcWeight
        fcBias = m.fcBias
    }

    var fc: DenseLayer { DenseLayer(weight: fcWeight, bias: fcBias) }

    /// The forward pass of `count` normalised images: pre-activations and logits, NCHW.
    public func forward(normalizedImages: [Float], count: Int) -> NetworkActivations {
        precondition(
            normalizedImages.count == count * TinyConvNetGeometry.imageSide * TinyConvNetGeometry.imageSide,
            "HostReferenceNet.forward: \(normalizedImages.count) values for \(count) images")
        let cols = normalizedImages.withUnsafeBufferPointer { conv1Patches($0, count: count) }
        return runChain(cols1: cols, count: count, conv1: .direct(conv1), conv2: .direct(conv2), fc: fc).nchw
    }
}

/// The weights as float64 matrices, after refusing non-finite or all-zero tensors.
struct ConvMatrices {
    let conv1: Matrix
    let conv2: Matrix
    let fcWeight: Matrix
    let fcBias: [Double]

    init(weights: TinyConvNetWeights) throws {
        for (name, _, values) in weights.tensors {
            if let index = values.firstIndex(where: { !$0.isFinite }) {
                throw AnalysisError.nonFiniteWeight(tensor: name, index: index, value: values[index])
            }
        }
        if weights.conv1.allSatisfy({ $0 == 0 }) { throw AnalysisError.zeroWeight(tensor: "conv1.weight") }
        if weights.conv2.allSatisfy({ $0 == 0 }) { throw AnalysisError.zeroWeight(tensor: "conv2.weight") }
        let g = TinyConvNetGeometry.self
        conv1 = Matrix(rows: g.conv1Channels, columns: g.conv1PatchSize, float32: weights.conv1)
        conv2 = Matrix(rows: g.conv2Channels, columns: g.conv2PatchSize, float32: weights.conv2)
        fcWeight = Matrix(rows: g.classes, columns: g.features, float32: weights.fcWeight)
        fcBias = weights.fcBias.map(Double.init)
    }
}

/// Phase 3, per layer: how exactly the SVD factors reproduce W.
public struct SVDIdentities: Codable, Sendable, Equatable {
    public var layer: String
    /// max |U·diag(σ)·Vᵀ − W| (float64; tolerance 1e-12, W's entries are O(1)).
    public var reconstructionMaxAbsError: Double
    /// ‖UᵀU − I_r‖_F (tolerance 1e-12).
    public var uOrthogonalityError: Double
    /// ‖VᵀV − I_r‖_F, V = (Vᵀ)ᵀ patch×r, i.e. the rows of Vᵀ are orthonormal (tolerance 1e-12).
    public var vOrthogonalityError: Double

    static func compute(layer: String, w: Matrix, svd: SingularValueDecomposition) -> SVDIdentities {
        let r = svd.rank
        let uu = svd.u.transposed * svd.u - Matrix.identity(r)
        let vv = svd.vt * svd.vt.transposed - Matrix.identity(r)
        return SVDIdentities(
            layer: layer,
            reconstructionMaxAbsError: (svd.reconstruction - w).maxAbsoluteValue,
            uOrthogonalityError: uu.frobeniusNorm,
            vOrthogonalityError: vv.frobeniusNorm)
    }
}

/// Phase 3, the two-layer composition: how conv2's eigenfilters read conv1's
/// output directions. conv2's input channels are conv1's output channels, so
/// for conv2 component j and kernel offset o = (i, k) the 8-vector
/// v_j[:, i, k] (row j of V₂ᵀ over the input channels c) is projected on
/// conv1's left singular vectors u₁,m.
public struct CompositionOverlaps: Codable, Sendable, Equatable {
    /// overlaps[j][o][m] = u₁,mᵀ · v₂,j[:, i, k], o = i·3 + k (16 × 9 × 8).
    public var overlaps: [[[Double]]]
    /// directionEnergy[j][m] = Σ_o overlaps[j][o][m]²: the share of conv2
    /// eigenfilter j's unit norm that reads conv1 direction m. Since U₁ is
    /// 8×8 orthogonal, each row sums to ‖v₂,j‖² = 1.
    public var directionEnergy: [[Double]]
    /// offsetEnergy[j][o] = ‖v₂,j[:, i, k]‖²: the share of eigenfilter j at offset o.
    public var offsetEnergy: [[Double]]
    /// max_j |Σ_m directionEnergy[j][m] − 1| (tolerance 1e-12; checks that the
    /// projection is a complete change of basis).
    public var completenessError: Double

    static func compute(conv1: SingularValueDecomposition, conv2: SingularValueDecomposition) -> CompositionOverlaps {
        let channels = conv1.u.rows  // 8 = conv2's input channels
        let directions = conv1.rank  // 8
        let offsets = conv2.vt.columns / channels  // 9
        var overlaps = [[[Double]]]()
        var directionEnergy = [[Double]]()
        var offsetEnergy = [[Double]]()
        var worst = 0.0
        for j in 0..<conv2.rank {
            var perOffset = [[Double]]()
            var energy = [Double](repeating: 0, count: directions)
            var offsetShare = [Double]()
            for o in 0..<offsets {
                let piece = (0..<channels).map { c in conv2.vt[j, c * offsets + o] }
                offsetShare.append(piece.reduce(0) { $0 + $1 * $1 })
                let projections = (0..<directions).map { m in
                    (0..<channels).reduce(0.0) { $0 + conv1.u[$1, m] * piece[$1] }
                }
                for m in 0..<directions { energy[m] += projections[m] * projections[m] }
                perOffset.append(projections)
            }
            worst = max(worst, abs(energy.reduce(0, +) - 1))
            overlaps.append(perOffset)
            directionEnergy.append(energy)
            offsetEnergy.append(offsetShare)
        }
        return CompositionOverlaps(
            overlaps: overlaps, directionEnergy: directionEnergy,
            offsetEnergy: offsetEnergy, completenessError: worst)
    }
}
