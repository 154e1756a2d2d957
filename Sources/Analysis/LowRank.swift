import Foundation
import NetIO

/// Phase 5, one rank k of one layer: W_k = U[:, :k]·diag(σ[:k])·Vᵀ[:k, :].
public struct LowRankRow: Codable, Sendable, Equatable {
    public var rank: Int
    /// ‖W − W_k‖_F / ‖W‖_F with W_k formed explicitly (float64).
    public var relativeFrobeniusErrorFromMatrix: Double
    /// √(Σ_{i>k} σᵢ²) / √(Σᵢ σᵢ²): the Eckart–Young value.
    public var relativeFrobeniusErrorFromSigma: Double
    /// ‖W − W_k‖₂ = σ_{k+1} (0 at k = r).
    public var spectralErrorFromSigma: Double
    /// ‖W − W_k‖₂ computed as the largest singular value of the explicit difference.
    public var spectralErrorFromMatrix: Double
    /// Σ_{i≤k} σᵢ² / Σᵢ σᵢ².
    public var cumulativeEnergy: Double
    /// Test accuracy with this layer replaced by W_k and the other at full
    /// rank (nil when the sweep was not run).
    public var testAccuracy: Double?
}

/// Phase 5 for one layer, k = 1…r.
public struct LowRankLayer: Codable, Sendable, Equatable {
    public var layer: String
    public var rows: [LowRankRow]
    /// max_k |fromMatrix − fromSigma| of the relative Frobenius error
    /// (tolerance 1e-12: both are float64 evaluations of the same number).
    public var frobeniusAgreement: Double
    /// max_k |spectral from matrix − σ_{k+1}| / σ₁ (tolerance 1e-12).
    public var spectralAgreement: Double
    /// W_k against other rank-k matrices (the independent Eckart–Young check).
    public var optimality: EckartYoungOptimality

    static func compute(layer: String, w: Matrix, svd: SingularValueDecomposition) throws -> LowRankLayer {
        let sigma = svd.singularValues
        let total = sigma.reduce(0) { $0 + $1 * $1 }
        let norm = w.frobeniusNorm
        let cumulative = cumulativeEnergyFractions(sigma)
        var rows = [LowRankRow]()
        var frobenius = 0.0
        var spectral = 0.0
        for k in 1...svd.rank {
            let difference = w - svd.truncated(rank: k)
            let fromMatrix = difference.frobeniusNorm / norm
            let tail = sigma[k...].reduce(0) { $0 + $1 * $1 }
            let fromSigma = (tail / total).squareRoot()
            let sigmaNext = k < svd.rank ? sigma[k] : 0
            let spectralFromMatrix = try SingularValueDecomposition(difference, context: "\(layer) W − W_\(k)")
                .singularValues[0]
            frobenius = worstDifference(frobenius, fromMatrix, fromSigma)
            spectral = worstDifference(spectral, spectralFromMatrix / sigma[0], sigmaNext / sigma[0])
            rows.append(
                LowRankRow(
                    rank: k, relativeFrobeniusErrorFromMatrix: fromMatrix,
                    relativeFrobeniusErrorFromSigma: fromSigma,
                    spectralErrorFromSigma: sigmaNext, spectralErrorFromMatrix: spectralFromMatrix,
                    cumulativeEnergy: cumulative[k - 1], testAccuracy: nil))
        }
        return LowRankLayer(
            layer: layer, rows: rows, frobeniusAgreement: frobenius, spectralAgreement: spectral,
            optimality: try EckartYoungOptimality.compute(layer: layer, w: w, svd: svd))
    }
}

/// Phase 5's accuracy sweep: test accuracy with conv1 replaced by W₁,k₁ and
/// conv2 by W₂,k₂ for every pair (k₁, k₂), k₁ = 1…r₁, k₂ = 1…r₂.
///
/// Choice: "both at once" is the whole grid, not only k₁ = k₂, because the
/// layers' ranks differ (8 and 16) and the grid shows which layer limits
/// accuracy. Each layer alone is the grid's last row/column (the other
/// layer at full rank r, i.e. W itself up to ~1e-15).
///
/// How it is fast: per image chunk s₁ = σ⊙V₁ᵀp is computed once; a₁ for
/// k₁ is the one for k₁ − 1 plus the rank-one term u₁,k₁·s₁,k₁; likewise for
/// conv2 within each k₁. So the grid costs r₁ conv2 products plus r₁·r₂
/// ReLU/pool/fc passes, threaded over image chunks.
public struct AccuracySweep: Codable, Sendable, Equatable {
    public var images: Int
    /// accuracy[k₁ − 1][k₂ − 1] (fractions).
    public var accuracy: [[Double]]
    /// Images whose prediction at full rank (k₁ = r₁, k₂ = r₂) differs from
    /// the host im2col network's: the sweep's own rank-one accumulation
    /// against W·p (must be 0; counts disagreements in either direction,
    /// which a difference of accuracies would cancel).
    public var fullRankPredictionMismatches: Int
    /// Wall time of the sweep.
    public var seconds: Double

    /// Accuracy with both layers at the same rank k, k = 1…min(r₁, r₂).
    public var sameRankAccuracy: [Double] {
        (0..<min(accuracy.count, accuracy.first?.count ?? 0)).map { accuracy[$0][$0] }
    }

    /// `referencePredictions[i]`: the host im2col network's class for test image i.
    public static func run(
        analytical: AnalyticalNet, testSet: Dataset, referencePredictions: [Int], options: AnalysisOptions,
        progress: (String) -> Void = { _ in }
    ) -> AccuracySweep {
        precondition(referencePredictions.count == testSet.count, "AccuracySweep: one reference prediction per image")
        let t0 = Clocks.wall()
        let r1 = analytical.conv1.rank
        let r2 = analytical.conv2.rank
        var correct = [Int](repeating: 0, count: r1 * r2)
        var mismatches = 0
        let piece = TestSetPass.pieceSize
        var start = 0
        while start < testSet.count {
            let end = min(start + options.batchSize, testSet.count)
            let images = testSet.normalizedImages(start..<end)
            let b = end - start
            let pieces = (b + piece - 1) / piece
            let g = TinyConvNetGeometry.self
            let counts = images.withUnsafeBufferPointer { img in
                parallelMap(pieces, threads: options.threads) { p in
                    let lo = p * piece
                    let hi = min(lo + piece, b)
                    return gridCounts(
                        analytical,
                        UnsafeBufferPointer(
                            rebasing: img[(lo * g.imageSide * g.imageSide)..<(hi * g.imageSide * g.imageSide)]),
                        count: hi - lo, labels: Array(testSet.labels[(start + lo)..<(start + hi)]),
                        reference: Array(referencePredictions[(start + lo)..<(start + hi)]))
                }
            }
            for c in counts {
                for i in correct.indices { correct[i] += c.correct[i] }
                mismatches += c.fullRankMismatches
            }
            progress("accuracy sweep: \(end) of \(testSet.count) images")
            start = end
        }
        let n = Double(testSet.count)
        let accuracy = (0..<r1).map { k1 in (0..<r2).map { k2 in Double(correct[k1 * r2 + k2]) / n } }
        return AccuracySweep(
            images: testSet.count, accuracy: accuracy, fullRankPredictionMismatches: mismatches,
            seconds: Clocks.seconds(since: t0))
    }

    /// Correct predictions of one chunk for every (k₁, k₂), flat k₁-major,
    /// and the images whose full-rank prediction differs from `reference`.
    static func gridCounts(
        _ net: AnalyticalNet, _ images: UnsafeBufferPointer<Float>, count b: Int, labels: [UInt8],
        reference: [Int]
    ) -> (correct: [Int], fullRankMismatches: Int) {
        let g = TinyConvNetGeometry.self
        let r1 = net.conv1.rank
        let r2 = net.conv2.rank
        let fc = net.fc
        let n1 = b * g.conv1OutputSide * g.conv1OutputSide
        let n2 = b * g.conv2OutputSide * g.conv2OutputSide
        let cols1 = conv1Patches(images, count: b)
        let s1 = cols1.withUnsafeBufferPointer { spectralCoordinates(net.conv1, $0.baseAddress!, count: n1) }
        var a1 = [Double](repeating: 0, count: g.conv1Channels * n1)
        var counts = [Int](repeating: 0, count: r1 * r2)
        var mismatches = 0
        for k1 in 0..<r1 {
            addRankOneTerm(&a1, u: net.conv1.u, component: k1, s: s1, count: n1)
            let pooled1 = reluPool(a1, planes: g.conv1Channels * b, side: g.conv1OutputSide)
            let cols2 = conv2Patches(pooled1, count: b)
            let s2 = cols2.withUnsafeBufferPointer { spectralCoordinates(net.conv2, $0.baseAddress!, count: n2) }
            var a2 = [Double](repeating: 0, count: g.conv2Channels * n2)
            for k2 in 0..<r2 {
                addRankOneTerm(&a2, u: net.conv2.u, component: k2, s: s2, count: n2)
                let pooled2 = reluPool(a2, planes: g.conv2Channels * b, side: g.conv2OutputSide)
                let logits = classify(pooled2, count: b, fc: fc)
                var correct = 0
                let fullRank = k1 == r1 - 1 && k2 == r2 - 1
                logits.withUnsafeBufferPointer { pl in
                    for img in 0..<b {
                        let predicted = argmax(pl.baseAddress! + img * g.classes, g.classes)
                        if predicted == Int(labels[img]) { correct += 1 }
                        if fullRank && predicted != reference[img] { mismatches += 1 }
                    }
                }
                counts[k1 * r2 + k2] = correct
            }
        }
        return (counts, mismatches)
    }
}

/// a (out, n) += U[:, k] ⊗ s[k, :].
func addRankOneTerm(_ a: inout [Double], u: Matrix, component k: Int, s: [Double], count n: Int) {
    a.withUnsafeMutableBufferPointer { pa in
        s.withUnsafeBufferPointer { ps in
            let row = ps.baseAddress! + k * n
            for c in 0..<u.rows {
                let weight = u[c, k]
                let dst = pa.baseAddress! + c * n
                for q in 0..<n { dst[q] += weight * row[q] }
            }
        }
    }
}

/// Phase 5 for both layers.
public struct LowRankReport: Codable, Sendable, Equatable {
    public var layers: [LowRankLayer]
    /// The accuracy grid; nil when ``AnalysisOptions/runAccuracySweep`` is off.
    public var sweep: AccuracySweep?
}
