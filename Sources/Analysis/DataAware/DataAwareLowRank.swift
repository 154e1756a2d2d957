import CLAPACK
import Foundation
import NetIO

/// The eigen-decomposition A = Q·diag(λ)·Qᵀ of a symmetric matrix, λ
/// descending, from LAPACKE_dsyevd (upper triangle read). Each eigenvector
/// (column of Q) is signed so that its entry of largest magnitude is
/// positive, as ``SingularValueDecomposition`` signs its vᵢ.
public struct SymmetricEigenDecomposition: Sendable {
    public var values: [Double]
    /// n×n, column i is the eigenvector of values[i].
    public var vectors: Matrix

    public init(_ a: Matrix, context: String) throws {
        precondition(a.rows == a.columns && a.rows > 0)
        let n = a.rows
        var work = a.values
        var w = [Double](repeating: 0, count: n)
        let info = LAPACKE_dsyevd(
            LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")),
            Int32(n), &work, Int32(n), &w)
        if info != 0 { throw LAPACKError(routine: "LAPACKE_dsyevd", info: Int(info), context: context) }
        // Ascending from LAPACK; reverse the columns.
        var q = Matrix(rows: n, columns: n)
        for j in 0..<n {
            let src = n - 1 - j
            var best = 0
            for i in 0..<n where abs(work[i * n + src]) > abs(work[best * n + src]) { best = i }
            let sign: Double = work[best * n + src] < 0 ? -1 : 1
            for i in 0..<n { q[i, j] = sign * work[i * n + src] }
        }
        values = w.reversed()
        vectors = q
    }

    /// A^{1/2} = Q·diag(√max(λ, 0))·Qᵀ (a second moment is positive
    /// semidefinite; rounding can leave its smallest λ at −1e-17).
    public var squareRoot: Matrix {
        vectors.scalingColumns(by: values.map { max($0, 0).squareRoot() }) * vectors.transposed
    }
}

/// The rank-k map that minimises E‖(W − Ŵ)p‖² over patches p with second
/// moment C = E[ppᵀ]: Ŵ_k = U_kU_kᵀW, U_k the top k eigenvectors of W·C·Wᵀ
/// (Eckart–Young applied to W·C^{1/2}); E‖(W − Ŵ_k)p‖² = Σ_{i>k} σᵢ²(W·C^{1/2}).
public struct DataAwareProjection: Sendable {
    /// Eigenvectors of W·C·Wᵀ (out×out), columns by decreasing eigenvalue.
    public var basis: Matrix
    /// The eigenvalues of W·C·Wᵀ, descending.
    public var eigenvalues: [Double]
    public let weight: Matrix

    public init(weight w: Matrix, secondMoment c: Matrix, layer: String) throws {
        precondition(c.rows == w.columns && c.columns == w.columns)
        let e = try SymmetricEigenDecomposition(w * c * w.transposed, context: "\(layer) W·C·Wᵀ")
        basis = e.vectors
        eigenvalues = e.values
        weight = w
    }

    /// Ŵ_k = U_kU_kᵀW (k = 0: zero).
    public func projected(rank k: Int) -> Matrix {
        if k == 0 { return Matrix(rows: weight.rows, columns: weight.columns) }
        let uk = basis.leadingColumns(k)
        return uk * (uk.transposed * weight)
    }

    /// W = U·diag(1)·(UᵀW) as a factorisation the AnalyticalNet and the
    /// accuracy sweeps run: its "coordinates" are UᵀWp and truncating it
    /// after k terms is Ŵ_k.
    var factorization: SingularValueDecomposition {
        SingularValueDecomposition(
            u: basis, singularValues: [Double](repeating: 1, count: basis.columns),
            vt: basis.transposed * weight)
    }
}

extension SingularValueDecomposition {
    /// A factorisation U·diag(σ)·Vᵀ given directly (no decomposition).
    init(u: Matrix, singularValues: [Double], vt: Matrix) {
        self.u = u
        self.singularValues = singularValues
        self.vt = vt
    }
}

/// Phase 9, section 2, one rank k of one layer.
public struct DataAwareRow: Codable, Sendable, Equatable {
    public var rank: Int
    /// Σ_{i>k} σᵢ²(W·C^{1/2}) (from the SVD of W·C^{1/2}).
    public var predictedError: Double
    /// (1/N)·Σ_p ‖(W − Ŵ_k)p‖² over the same N patches, from the layer's
    /// outputs a = Wp on each (see ``PatchMoments``).
    public var measuredError: Double
    /// (1/N)·Σ_p ‖(W − W_k)p‖² for the plain truncation W_k = U_kΣ_kV_kᵀ (likewise).
    public var plainMeasuredError: Double
    /// measuredError / E‖Wp‖².
    public var relativeError: Double
    /// plainMeasuredError / E‖Wp‖².
    public var plainRelativeError: Double
    /// Test accuracy with this layer replaced by Ŵ_k, the other at full
    /// rank (nil without the accuracy sweep).
    public var testAccuracy: Double?
    /// The same with the plain W_k (phase 5's sweep).
    public var plainTestAccuracy: Double?
}

/// Phase 9, section 2, one layer.
public struct DataAwareLayer: Codable, Sendable, Equatable {
    public var layer: String
    /// Where the patches come from, in words.
    public var patchSource: String
    /// N, the patches C is the mean over.
    public var patchCount: Int
    /// The eigenvalues of C = E[ppᵀ], descending.
    public var secondMomentEigenvalues: [Double]
    /// σᵢ(W·C^{1/2}), descending.
    public var weightedSingularValues: [Double]
    /// E‖Wp‖², measured.
    public var meanOutputEnergy: Double
    /// k = 1…r.
    public var rows: [DataAwareRow]
    /// max_{k=0…r} |measured − predicted| / E‖Wp‖² (tolerance 1e-10: both
    /// are float64 sums over the same N patches, via dgemm on one side and
    /// dsyrk + dsyevd + dgesdd on the other).
    public var errorIdentityDiscrepancy: Double
    /// max_k ‖Ŵ_k(C = I) − W_k‖_F / ‖W‖_F: with C = I the data-aware map is
    /// the plain truncation (tolerance 1e-10: two eigen-solvers agree on each
    /// top-k subspace to ~ε/gap), over the k whose gap σ_k − σ_{k+1} is
    /// above ``resolvedGap``·σ₁ (and k = r).
    public var identityReductionError: Double
    /// The relative gap below which a top-k subspace counts as undetermined:
    /// dsyevd of WWᵀ resolves eigenvalues to ~1e-16·σ₁², singular values to
    /// ~1e-8·σ₁; 1e-6 leaves a factor of 100.
    public static let resolvedGap = 1e-6
    /// max_k (measured data-aware error − measured plain error) / E‖Wp‖²:
    /// ≤ 0 since Ŵ_k is optimal for these very patches (tolerance 1e-10).
    public var truncationExcess: Double

    /// `layer`'s checks (kinds: error-identity and beats-truncation
    /// `independent` — measured over the patches against LAPACK's
    /// factorisations of C; identity-reduction `independent` — dsyevd of
    /// WWᵀ against dgesdd of W).
    public var checks: [Check] {
        [
            Check(
                id: "\(layer).data-aware.error-identity",
                description:
                    "\(layer) max_k |mean‖(W−Ŵ_k)p‖² over \(patchCount) patches − Σ_{i>k}σᵢ²(WC^{1/2})| / E‖Wp‖²",
                value: errorIdentityDiscrepancy, relation: .lessThan, limit: 1e-10, kind: .independent),
            Check(
                id: "\(layer).data-aware.identity-reduces-to-truncation",
                description: "\(layer) max_k ‖Ŵ_k(C = I) − W_k‖_F / ‖W‖_F",
                value: identityReductionError, relation: .lessThan, limit: 1e-10, kind: .independent),
            Check(
                id: "\(layer).data-aware.beats-truncation",
                description:
                    "\(layer) max_k (data-aware − plain W_k error on the patches) / E‖Wp‖² (≤ 0: none beats it)",
                value: truncationExcess, relation: .lessThan, limit: 1e-10, kind: .independent),
        ]
    }

    /// The numbers of one layer from its patch statistics.
    /// - Parameters:
    ///   - secondMoment: C (mean of ppᵀ over `patchCount` patches).
    ///   - dataEnergies: mean (uᵢᵀWp)² for the columns uᵢ of the data-aware
    ///     basis (``DataAwareProjection/basis`` for this C).
    ///   - plainEnergies: mean (uᵢᵀWp)² for the columns of W's own U (σᵢ²(vᵢᵀp)²).
    ///   - identity: the "C = I" the reduction check uses (I in the analysis;
    ///     a test passes a perturbed one to see the check fail).
    ///
    /// Public so that a test can hand it perturbed statistics and see the checks fail.
    public static func compute(
        layer: String, patchSource: String, patchCount: Int, weight w: Matrix,
        svd: SingularValueDecomposition, secondMoment c: Matrix,
        dataEnergies: [Double], plainEnergies: [Double], identity: Matrix
    ) throws -> DataAwareLayer {
        let r = svd.rank
        precondition(
            w.rows == r && dataEnergies.count == r && plainEnergies.count == r,
            "data-aware low rank needs out ≤ in·k·k (U square)")
        let cEigen = try SymmetricEigenDecomposition(c, context: "\(layer) C = E[ppᵀ]")
        let weighted = try SingularValueDecomposition(w * cEigen.squareRoot, context: "\(layer) W·C^{1/2}")
            .singularValues
        let total = dataEnergies.reduce(0, +)
        func tail(_ e: [Double], _ k: Int) -> Double { e[k...].reduce(0, +) }
        var rows = [DataAwareRow]()
        var discrepancy = 0.0
        var excess = -Double.infinity
        for k in 0...r {
            let predicted = weighted[min(k, weighted.count)...].reduce(0) { $0 + $1 * $1 }
            let measured = k == r ? 0 : tail(dataEnergies, k)
            let plain = k == r ? 0 : tail(plainEnergies, k)
            discrepancy = worstDifference(discrepancy, measured / total, predicted / total)
            excess = largestPropagatingNaN(excess, (measured - plain) / total)
            if k > 0 {
                rows.append(
                    DataAwareRow(
                        rank: k, predictedError: predicted, measuredError: measured, plainMeasuredError: plain,
                        relativeError: measured / total, plainRelativeError: plain / total,
                        testAccuracy: nil, plainTestAccuracy: nil))
            }
        }
        let plainProjection = try DataAwareProjection(weight: w, secondMoment: identity, layer: layer)
        let norm = w.frobeniusNorm
        var reduction = 0.0
        // The top-k subspace is determined only where σ_k − σ_{k+1} exceeds
        // the solvers' rounding: where it does not (a weight of lower rank
        // than r up to float32 rounding, such as a pruned layer), any
        // rotation within the cluster is a right answer, and k is skipped.
        let sigma = svd.singularValues
        for k in 1...r where k == r || sigma[k - 1] - sigma[k] > Self.resolvedGap * sigma[0] {
            reduction = worstDifference(
                reduction, (plainProjection.projected(rank: k) - svd.truncated(rank: k)).frobeniusNorm / norm, 0)
        }
        return DataAwareLayer(
            layer: layer, patchSource: patchSource, patchCount: patchCount,
            secondMomentEigenvalues: cEigen.values, weightedSingularValues: weighted,
            meanOutputEnergy: total, rows: rows, errorIdentityDiscrepancy: discrepancy,
            identityReductionError: reduction, truncationExcess: excess)
    }
}

/// Both layers replaced at the same rank k.
public struct DataAwareBothRow: Codable, Sendable, Equatable {
    public var rank: Int
    /// Test accuracy with conv1 → Ŵ₁,k and conv2 → Ŵ₂,k.
    public var testAccuracy: Double
    /// With the plain W₁,k and W₂,k (phase 5's grid diagonal), nil without it.
    public var plainTestAccuracy: Double?
}

/// The sums over a set of training images that phase 9 needs, in one pass:
/// Σppᵀ over each layer's input patches p (conv1: the normalised images;
/// conv2: the pooled ReLU of conv1's output), and Σaaᵀ over the layer's
/// outputs a = Wp on the same patches (W applied to each patch by dgemm, then
/// the outer products).
///
/// Why the outputs' sum is the measurement: for any map B,
/// Σ_p ‖(W − Ŵ)p‖² = Σ_p ‖(I − U_kU_kᵀ)a_p‖² = tr((I − U_kU_kᵀ)·Σaaᵀ), so
/// Σ_{i>k} uᵢᵀ(Σaaᵀ)uᵢ is the error summed over every patch, computed from
/// the layer's actual outputs; the prediction Σ_{i>k}σᵢ²(W·C^{1/2}) comes
/// from C (a different sum: the patches' own outer products) through
/// dsyevd and dgesdd.
struct PatchMoments {
    var conv1: [Double]
    var conv2: [Double]
    var outputs1: [Double]
    var outputs2: [Double]
    var conv1Patches = 0
    var conv2Patches = 0

    init() {
        let g = TinyConvNetGeometry.self
        conv1 = [Double](repeating: 0, count: g.conv1PatchSize * g.conv1PatchSize)
        conv2 = [Double](repeating: 0, count: g.conv2PatchSize * g.conv2PatchSize)
        outputs1 = [Double](repeating: 0, count: g.conv1Channels * g.conv1Channels)
        outputs2 = [Double](repeating: 0, count: g.conv2Channels * g.conv2Channels)
    }

    mutating func merge(_ o: PatchMoments) {
        for i in conv1.indices { conv1[i] += o.conv1[i] }
        for i in conv2.indices { conv2[i] += o.conv2[i] }
        for i in outputs1.indices { outputs1[i] += o.outputs1[i] }
        for i in outputs2.indices { outputs2[i] += o.outputs2[i] }
        conv1Patches += o.conv1Patches
        conv2Patches += o.conv2Patches
    }

    static func mean(_ s: [Double], _ d: Int, _ n: Int) -> Matrix {
        var m = Matrix(rows: d, columns: d)
        for i in 0..<d {
            for j in i..<d {
                m[i, j] = s[i * d + j] / Double(n)
                m[j, i] = m[i, j]
            }
        }
        return m
    }

    /// The means C = Σppᵀ/N, symmetrised from dsyrk's upper triangle.
    func secondMoments() -> (conv1: Matrix, conv2: Matrix) {
        let g = TinyConvNetGeometry.self
        return (Self.mean(conv1, g.conv1PatchSize, conv1Patches), Self.mean(conv2, g.conv2PatchSize, conv2Patches))
    }

    /// The means Σaaᵀ/N of the outputs.
    func outputMoments() -> (conv1: Matrix, conv2: Matrix) {
        let g = TinyConvNetGeometry.self
        return (Self.mean(outputs1, g.conv1Channels, conv1Patches), Self.mean(outputs2, g.conv2Channels, conv2Patches))
    }
}

/// mean (bᵢᵀa)² = bᵢᵀ·E[aaᵀ]·bᵢ for each column bᵢ of `basis`.
func componentEnergies(_ outputMoment: Matrix, basis b: Matrix) -> [Double] {
    let mb = outputMoment * b
    return (0..<b.columns).map { j in (0..<b.rows).reduce(0.0) { $0 + b[$1, j] * mb[$1, j] } }
}

/// The pass over the training images.
enum TrainingPatchPasses {
    /// Σppᵀ and Σ(Wp)(Wp)ᵀ for each layer.
    static func moments(_ set: Dataset, conv1 w1: Matrix, conv2 w2: Matrix, options: AnalysisOptions) -> PatchMoments {
        var total = PatchMoments()
        forEachPiece(set, options: options) { images, b, _ in
            let g = TinyConvNetGeometry.self
            var m = PatchMoments()
            let cols1 = conv1Patches(images, count: b)
            let n1 = b * g.conv1OutputSide * g.conv1OutputSide
            syrk(cols1, rows: g.conv1PatchSize, count: n1, into: &m.conv1)
            let (a1, _) = cols1.withUnsafeBufferPointer { ConvLayerMap.direct(w1).apply($0.baseAddress!, count: n1) }
            syrk(a1, rows: g.conv1Channels, count: n1, into: &m.outputs1)
            let pooled1 = reluPool(a1, planes: g.conv1Channels * b, side: g.conv1OutputSide)
            let cols2 = conv2Patches(pooled1, count: b)
            let n2 = b * g.conv2OutputSide * g.conv2OutputSide
            syrk(cols2, rows: g.conv2PatchSize, count: n2, into: &m.conv2)
            let (a2, _) = cols2.withUnsafeBufferPointer { ConvLayerMap.direct(w2).apply($0.baseAddress!, count: n2) }
            syrk(a2, rows: g.conv2Channels, count: n2, into: &m.outputs2)
            m.conv1Patches = n1
            m.conv2Patches = n2
            return m
        } merge: {
            total.merge($0)
        }
        return total
    }

    /// Runs `body(images, count, index of the first image)` over pieces of ``TestSetPass/pieceSize`` images on
    /// `options.threads` threads, batch after batch, merging in order.
    static func forEachPiece<T>(
        _ set: Dataset, options: AnalysisOptions,
        _ body: (UnsafeBufferPointer<Float>, Int, Int) -> T, merge: (T) -> Void
    ) {
        let side = TinyConvNetGeometry.imageSide
        let piece = TestSetPass.pieceSize
        var start = 0
        while start < set.count {
            let end = min(start + max(options.batchSize, piece), set.count)
            let images = set.normalizedImages(start..<end)
            let b = end - start
            let pieces = (b + piece - 1) / piece
            let results = images.withUnsafeBufferPointer { img in
                parallelMap(pieces, threads: options.threads) { p in
                    let lo = p * piece
                    let hi = min(lo + piece, b)
                    return body(
                        UnsafeBufferPointer(rebasing: img[(lo * side * side)..<(hi * side * side)]), hi - lo, start + lo
                    )
                }
            }
            for r in results { merge(r) }
            start = end
        }
    }

    /// c (d×d, upper triangle) += cols·colsᵀ for cols (d, n) row-major.
    static func syrk(_ cols: [Double], rows d: Int, count n: Int, into c: inout [Double]) {
        cols.withUnsafeBufferPointer { pa in
            c.withUnsafeMutableBufferPointer { pc in
                cblas_dsyrk(
                    CblasRowMajor, CblasUpper, CblasNoTrans, Int32(d), Int32(n), 1.0, pa.baseAddress!, Int32(n),
                    1.0, pc.baseAddress!, Int32(d))
            }
        }
    }
}

/// Test accuracy of a network whose conv layers are factorisations
/// truncated after k terms: conv1 alone (k₁ = 1…r₁, conv2 full), conv2 alone
/// (k₂ = 1…r₂, conv1 full), both at the same k = 1…min(r₁, r₂). The same
/// rank-one updates as ``AccuracySweep``, but only those 8 + 16 + 8 points,
/// not the whole grid.
struct RankCurves {
    /// Correct predictions.
    var conv1Alone: [Int]
    var conv2Alone: [Int]
    var both: [Int]

    init(r1: Int, r2: Int) {
        conv1Alone = [Int](repeating: 0, count: r1)
        conv2Alone = [Int](repeating: 0, count: r2)
        both = [Int](repeating: 0, count: min(r1, r2))
    }

    static func run(_ net: AnalyticalNet, testSet: Dataset, options: AnalysisOptions) -> RankCurves {
        var total = RankCurves(r1: net.conv1.rank, r2: net.conv2.rank)
        let fc = net.fc
        TrainingPatchPasses.forEachPiece(testSet, options: options) { images, b, first in
            counts(net, fc: fc, images, count: b, labels: Array(testSet.labels[first..<(first + b)]))
        } merge: { c in
            for i in total.conv1Alone.indices { total.conv1Alone[i] += c.conv1Alone[i] }
            for i in total.conv2Alone.indices { total.conv2Alone[i] += c.conv2Alone[i] }
            for i in total.both.indices { total.both[i] += c.both[i] }
        }
        return total
    }

    static func counts(
        _ net: AnalyticalNet, fc: DenseLayer, _ images: UnsafeBufferPointer<Float>, count b: Int,
        labels: [UInt8]
    ) -> RankCurves {
        let g = TinyConvNetGeometry.self
        let r1 = net.conv1.rank
        let r2 = net.conv2.rank
        var result = RankCurves(r1: r1, r2: r2)
        let n1 = b * g.conv1OutputSide * g.conv1OutputSide
        let n2 = b * g.conv2OutputSide * g.conv2OutputSide
        let cols1 = conv1Patches(images, count: b)
        let s1 = cols1.withUnsafeBufferPointer { spectralCoordinates(net.conv1, $0.baseAddress!, count: n1) }
        var a1 = [Double](repeating: 0, count: g.conv1Channels * n1)
        func correct(_ a2: [Double]) -> Int {
            let logits = classify(reluPool(a2, planes: g.conv2Channels * b, side: g.conv2OutputSide), count: b, fc: fc)
            return logits.withUnsafeBufferPointer { pl in
                (0..<b).filter { argmax(pl.baseAddress! + $0 * g.classes, g.classes) == Int(labels[$0]) }.count
            }
        }
        for k1 in 0..<r1 {
            addRankOneTerm(&a1, u: net.conv1.u, component: k1, s: s1, count: n1)
            let cols2 = conv2Patches(reluPool(a1, planes: g.conv1Channels * b, side: g.conv1OutputSide), count: b)
            let s2 = cols2.withUnsafeBufferPointer { spectralCoordinates(net.conv2, $0.baseAddress!, count: n2) }
            var a2 = [Double](repeating: 0, count: g.conv2Channels * n2)
            for k2 in 0..<r2 {
                addRankOneTerm(&a2, u: net.conv2.u, component: k2, s: s2, count: n2)
                if k2 == k1 { result.both[k1] = correct(a2) }
                if k1 == r1 - 1 { result.conv2Alone[k2] = correct(a2) }
                if k2 == r2 - 1 { result.conv1Alone[k1] = k1 == r1 - 1 ? result.conv2Alone[k2] : correct(a2) }
            }
        }
        return result
    }
}
