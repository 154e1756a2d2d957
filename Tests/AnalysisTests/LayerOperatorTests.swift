import Analysis
import Foundation
import NetIO
import TestSupport
import XCTest

/// Phase 9, sections 1–3 (see `LayerOperatorReport`): each computation against an independent
/// reference on small known matrices, and each check shown failing with a
/// perturbed input.
final class LayerOperatorTests: XCTestCase {
    // MARK: - Section 1: operator spectra

    /// Direct circular convolution, float64 loops: (out, n, n).
    func circularConv(_ x: [Double], channels: Int, side n: Int, weight w: Matrix, kernel k: Int) -> [Double] {
        var out = [Double](repeating: 0, count: w.rows * n * n)
        for oc in 0..<w.rows {
            for p in 0..<n {
                for q in 0..<n {
                    var s = 0.0
                    for c in 0..<channels {
                        for i in 0..<k {
                            for j in 0..<k {
                                s += w[oc, (c * k + i) * k + j] * x[(c * n + (p + i) % n) * n + (q + j) % n]
                            }
                        }
                    }
                    out[(oc * n + p) * n + q] = s
                }
            }
        }
        return out
    }

    func randomWeight(out: Int, columns: Int, seed: UInt64) -> Matrix {
        Matrix(rows: out, columns: columns, values: randomFloats(out * columns, seed: seed).map(Double.init))
    }

    func failing(_ checks: [Check]) -> Set<String> { Set(checks.filter { !$0.passed }.map(\.id)) }

    /// A 1×1 kernel: both operators are W ⊗ I_{n²}, so their singular values
    /// are W's, each n² times; every bound is tight.
    func testOneByOneKernelSpectrumIsWeightsRepeated() throws {
        let sigma = [2.0, 0.5]
        let w = matrixWithSingularValues(sigma, m: 3, n: 2, seed: 11)
        let n = 4
        let s = try OperatorSpectrum.compute(
            layer: "t", weight: w, weightSingularValues: sigma, inChannels: 2, kernel: 1, inputSide: n)
        let expected = [Double](repeating: 2.0, count: n * n) + [Double](repeating: 0.5, count: n * n)
        XCTAssertEqual(s.validSingularValues.count, expected.count)
        XCTAssertLessThan(maxAbsoluteDifference(s.validSingularValues, expected), 1e-13)
        XCTAssertLessThan(maxAbsoluteDifference(s.circulantSingularValues, expected), 1e-13)
        XCTAssertEqual(s.fantasticFourBound, 2.0, accuracy: 1e-13)
        XCTAssertEqual(s.kernelSizeBound, 2.0, accuracy: 1e-13)
        XCTAssertTrue(failing(s.checks).isEmpty, "\(failing(s.checks))")
    }

    /// A separable single-channel kernel K = a·bᵀ: the circular operator is
    /// C_a ⊗ C_b (1-D circulants) with singular values |â(ω₁)|·|b̂(ω₂)|, the
    /// valid one T_a ⊗ T_b (1-D (n−2)×n Toeplitz) with σᵢ(T_a)·σⱼ(T_b).
    func testSeparableKernelSpectraInClosedForm() throws {
        let a = [1.0, 2.0, -1.0]
        let b = [0.5, -1.0, 3.0]
        let n = 7
        let w = Matrix(rows: 1, columns: 9, values: (0..<3).flatMap { i in (0..<3).map { j in a[i] * b[j] } })
        let sigmaW = try SingularValueDecomposition(w).singularValues
        let s = try OperatorSpectrum.compute(
            layer: "t", weight: w, weightSingularValues: sigmaW, inChannels: 1, kernel: 3, inputSide: n)
        func dftModulus(_ f: [Double], _ omega: Int) -> Double {
            var re = 0.0
            var im = 0.0
            for (i, v) in f.enumerated() {
                let t = -2 * Double.pi * Double(i * omega) / Double(n)
                re += v * cos(t)
                im += v * sin(t)
            }
            return (re * re + im * im).squareRoot()
        }
        let circulant = (0..<n).flatMap { w1 in (0..<n).map { w2 in dftModulus(a, w1) * dftModulus(b, w2) } }.sorted(
            by: >)
        XCTAssertLessThan(maxAbsoluteDifference(s.circulantSingularValues, circulant), 1e-12)
        func toeplitz(_ f: [Double]) -> Matrix {
            var t = Matrix(rows: n - 2, columns: n)
            for r in 0..<(n - 2) { for i in 0..<3 { t[r, r + i] = f[i] } }
            return t
        }
        let ta = try SingularValueDecomposition(toeplitz(a)).singularValues
        let tb = try SingularValueDecomposition(toeplitz(b)).singularValues
        // T_a ⊗ T_b is (n−2)²×n², so n² − (n−2)² of its n² singular values are zero.
        var valid = ta.flatMap { x in tb.map { x * $0 } }
        valid += [Double](repeating: 0, count: n * n - valid.count)
        valid.sort(by: >)
        XCTAssertLessThan(maxAbsoluteDifference(s.validSingularValues, valid), 1e-12)
        XCTAssertTrue(failing(s.checks).isEmpty, "\(failing(s.checks))")
    }

    /// The explicit circulant operator against circular convolution loops,
    /// and a multi-channel kernel whose every chain link and route agrees.
    func testCirculantOperatorIsCircularConvolutionAndChecksPass() throws {
        let (cin, out, k, n) = (3, 4, 3, 6)
        let w = randomWeight(out: out, columns: cin * k * k, seed: 5)
        let a = ConvolutionOperator.circulantMatrix(weight: w, inChannels: cin, kernel: k, inputSide: n)
        let x = randomFloats(cin * n * n, seed: 9).map(Double.init)
        let applied = (a * Matrix(rows: x.count, columns: 1, values: x)).values
        XCTAssertLessThan(
            maxAbsoluteDifference(applied, circularConv(x, channels: cin, side: n, weight: w, kernel: k)), 1e-13)
        let s = try OperatorSpectrum.compute(
            layer: "t", weight: w, weightSingularValues: try SingularValueDecomposition(w).singularValues,
            inChannels: cin, kernel: k, inputSide: n)
        XCTAssertEqual(s.circulantSingularValues.count, n * n * min(out, cin))
        XCTAssertTrue(failing(s.checks).isEmpty, "\(failing(s.checks))")
        XCTAssertGreaterThanOrEqual(s.fantasticFourRatio, 1)
    }

    /// Every section-1 check fails when one of its inputs is perturbed.
    func testOperatorChecksFailWithPerturbedInputs() throws {
        let (cin, out, k, n) = (2, 3, 3, 5)
        let w = randomWeight(out: out, columns: cin * k * k, seed: 21)
        let sigmaW = try SingularValueDecomposition(w).singularValues
        let valid = try singularValuesOnly(
            ConvolutionOperator.matrix(weight: w, inChannels: cin, kernel: k, inputSide: n), context: "t")
        let dense = try singularValuesOnly(
            ConvolutionOperator.circulantMatrix(weight: w, inChannels: cin, kernel: k, inputSide: n), context: "t")
        let freq = ConvolutionOperator.frequencyMatrices(weight: w, inChannels: cin, kernel: k, inputSide: n)
        func spectrum(
            sigmaW: [Double]? = nil, valid v: [Double]? = nil, dense d: [Double]? = nil, freq f: [[Double]]? = nil
        ) throws -> Set<String> {
            failing(
                try OperatorSpectrum(
                    layer: "t", weight: w, weightSingularValues: sigmaW ?? sigmaW0, inChannels: cin, kernel: k,
                    inputSide: n, validSingularValues: v ?? valid, circulantDenseSingularValues: d ?? dense,
                    frequencyMatrices: f ?? freq
                ).checks)
        }
        let sigmaW0 = sigmaW
        XCTAssertEqual(try spectrum(), [])
        XCTAssertEqual(
            try spectrum(dense: dense.map { $0 * (1 + 1e-8) }),
            ["t.operator.circulant-dft-vs-dense", "t.operator.circulant-norm-vs-frequency"])
        var bigW = sigmaW
        bigW[0] *= 10
        XCTAssertEqual(
            try spectrum(sigmaW: bigW), ["t.operator.weight-le-valid", "t.operator.weight-valid-interlacing"])
        var bigValid = valid
        bigValid[0] = dense[0] * 1.01
        XCTAssertEqual(
            try spectrum(valid: bigValid), ["t.operator.valid-le-circulant", "t.operator.valid-circulant-interlacing"])
        XCTAssert(
            try spectrum(freq: freq.map { $0.map { 4 * $0 } }).isSuperset(of: [
                "t.operator.frequency-le-kernel-bound", "t.operator.frequency-parseval",
            ]))
        var nudged = freq
        nudged[3][0] += 1e-6
        XCTAssert(try spectrum(freq: nudged).contains("t.operator.frequency-parseval"))
        XCTAssert(try spectrum(dense: dense.map { 10 * $0 }).contains("t.operator.fantastic-four-bound"))
    }

    // MARK: - Power law

    /// Samples of a Pareto law p(x) ∝ x^{−α}, x ≥ x_min, by inversion.
    func pareto(_ count: Int, alpha: Double, xMin: Double, seed: UInt64) -> [Double] {
        var g = SeededRandom(seed: seed)
        return (0..<count).map { _ in xMin * pow(1 - Double.random(in: 0..<1, using: &g), -1 / (alpha - 1)) }
    }

    func testPowerLawEstimatorRecoversKnownExponentAndCutoff() throws {
        // Pure power law: α̂'s standard error is (α−1)/√n ≈ 0.03 here; x_min̂ stays near the true minimum.
        let pure = try XCTUnwrap(PowerLawFit.fit(pareto(3000, alpha: 2.5, xMin: 1, seed: 3)))
        XCTAssertEqual(pure.alpha, 2.5, accuracy: 0.12)
        XCTAssertLessThan(pure.xMin, 1.6)
        // A uniform body below 1 and a power-law tail above: the KS choice finds the cut.
        var g = SeededRandom(seed: 4)
        let mixed =
            (0..<2000).map { _ in Double.random(in: 0.01..<1, using: &g) } + pareto(3000, alpha: 3, xMin: 1, seed: 5)
        let fit = try XCTUnwrap(PowerLawFit.fit(mixed))
        XCTAssertEqual(fit.alpha, 3, accuracy: 0.2)
        XCTAssertGreaterThan(fit.xMin, 0.85)
        XCTAssertLessThan(fit.xMin, 1.6)
        // Fewer than 50 eigenvalues: no fit, and the note says so.
        let few = SpectralMetrics(singularValues: (1...16).map { 1 / Double($0) }, shape: [16, 72])
        XCTAssertNil(few.powerLaw)
        XCTAssertTrue(few.powerLawNote.contains("fewer than 50"))
        let many = SpectralMetrics(
            singularValues: pareto(400, alpha: 2, xMin: 1, seed: 6).map { $0.squareRoot() }.sorted(by: >),
            shape: [400, 400])
        XCTAssertNotNil(many.powerLaw)
    }

    // MARK: - Section 2: data-aware low rank

    struct Synthetic {
        let w: Matrix
        let patches: [[Double]]
        var c: Matrix { LayerOperatorTests.secondMoment(patches) }
    }

    static func secondMoment(_ patches: [[Double]]) -> Matrix {
        let d = patches[0].count
        var c = Matrix(rows: d, columns: d)
        for p in patches { for i in 0..<d { for j in 0..<d { c[i, j] += p[i] * p[j] / Double(patches.count) } } }
        return c
    }

    /// W 3×5 and 400 anisotropic patches p = L·z.
    func synthetic() -> Synthetic {
        let w = randomWeight(out: 3, columns: 5, seed: 31)
        let l = randomWeight(out: 5, columns: 5, seed: 32).scalingColumns(by: [3, 1.5, 1, 0.3, 0.1])
        let z = randomFloats(400 * 5, seed: 33).map(Double.init)
        let patches = (0..<400).map { i in (0..<5).map { r in (0..<5).reduce(0.0) { $0 + l[r, $1] * z[i * 5 + $1] } } }
        return Synthetic(w: w, patches: patches)
    }

    /// mean over patches of (bᵢᵀWp)², loops.
    func energies(_ s: Synthetic, basis b: Matrix) -> [Double] {
        (0..<b.columns).map { i in
            s.patches.reduce(0.0) { sum, p in
                let a = (0..<s.w.rows).map { r in (0..<p.count).reduce(0.0) { $0 + s.w[r, $1] * p[$1] } }
                let t = (0..<b.rows).reduce(0.0) { $0 + b[$1, i] * a[$1] }
                return sum + t * t
            } / Double(s.patches.count)
        }
    }

    /// mean ‖(W − M)p‖² over the patches, loops.
    func meanError(_ s: Synthetic, _ m: Matrix) -> Double {
        s.patches.reduce(0.0) { sum, p in
            sum
                + (0..<s.w.rows).reduce(0.0) { acc, r in
                    let e = (0..<p.count).reduce(0.0) { $0 + (s.w[r, $1] - m[r, $1]) * p[$1] }
                    return acc + e * e
                }
        } / Double(s.patches.count)
    }

    func testDataAwareProjectionIsOptimalOnThePatches() throws {
        let s = synthetic()
        let c = s.c
        let projection = try DataAwareProjection(weight: s.w, secondMoment: c, layer: "t")
        let svd = try SingularValueDecomposition(s.w)
        let layer = try DataAwareLayer.compute(
            layer: "t", patchSource: "synthetic", patchCount: 400, weight: s.w, svd: svd,
            secondMoment: c, dataEnergies: energies(s, basis: projection.basis),
            plainEnergies: energies(s, basis: svd.u), identity: .identity(5))
        XCTAssertTrue(failing(layer.checks).isEmpty, "\(failing(layer.checks))")
        let total = meanError(s, Matrix(rows: 3, columns: 5))
        var g = SeededRandom(seed: 41)
        for row in layer.rows {
            let k = row.rank
            // The error of Ŵ_k measured patch by patch, and of W_k.
            let dataAware = meanError(s, projection.projected(rank: k))
            XCTAssertEqual(dataAware, row.predictedError, accuracy: 1e-12 * total)
            XCTAssertEqual(dataAware, row.measuredError, accuracy: 1e-12 * total)
            XCTAssertEqual(meanError(s, svd.truncated(rank: k)), row.plainMeasuredError, accuracy: 1e-12 * total)
            // No rank-k map Q_kQ_kᵀW with a random orthonormal Q_k (Gram–Schmidt, loops) does better.
            for _ in 0..<50 where k < 3 {
                var q = [[Double]]()
                while q.count < k {
                    var v = (0..<3).map { _ in Double.random(in: -1...1, using: &g) }
                    for u in q {
                        let d = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }
                        v = zip(v, u).map { $0 - d * $1 }
                    }
                    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    q.append(v.map { $0 / norm })
                }
                var m = Matrix(rows: 3, columns: 5)
                for r in 0..<3 {
                    for col in 0..<5 { for u in q { for r2 in 0..<3 { m[r, col] += u[r] * u[r2] * s.w[r2, col] } } }
                }
                XCTAssertGreaterThanOrEqual(meanError(s, m), dataAware - 1e-12 * total)
            }
        }
        // With C = I the projection is the plain truncation.
        let plain = try DataAwareProjection(weight: s.w, secondMoment: .identity(5), layer: "t")
        for k in 1...3 {
            XCTAssertLessThan((plain.projected(rank: k) - svd.truncated(rank: k)).maxAbsoluteValue, 1e-12)
        }
    }

    func testDataAwareChecksFailWithPerturbedInputs() throws {
        let s = synthetic()
        let c = s.c
        let svd = try SingularValueDecomposition(s.w)
        let basis = try DataAwareProjection(weight: s.w, secondMoment: c, layer: "t").basis
        func checks(c cc: Matrix? = nil, identity: Matrix = .identity(5), dataBasis: Matrix? = nil) throws -> Set<
            String
        > {
            failing(
                try DataAwareLayer.compute(
                    layer: "t", patchSource: "synthetic", patchCount: 400, weight: s.w, svd: svd,
                    secondMoment: cc ?? c, dataEnergies: energies(s, basis: dataBasis ?? basis),
                    plainEnergies: energies(s, basis: svd.u), identity: identity
                ).checks)
        }
        XCTAssertEqual(try checks(), [])
        // A second moment that is not the patches': the prediction misses the measurement.
        var shifted = c
        for i in 0..<5 { shifted[i, i] += 0.5 }
        XCTAssertEqual(try checks(c: shifted), ["t.data-aware.error-identity"])
        // "C = I" that is not the identity: the projection differs from the plain truncation.
        var notIdentity = Matrix.identity(5)
        for i in 0..<5 { notIdentity[i, i] = 1 + 0.1 * Double(i) }
        XCTAssertEqual(try checks(identity: notIdentity), ["t.data-aware.identity-reduces-to-truncation"])
        // Errors measured along W's U in reverse order (the weakest direction kept first): plain truncation beats it.
        var reversed = Matrix(rows: 3, columns: 3)
        for i in 0..<3 { for j in 0..<3 { reversed[i, j] = svd.u[i, 2 - j] } }
        XCTAssert(try checks(dataBasis: reversed).contains("t.data-aware.beats-truncation"))
    }

    /// A weight of rank 1 up to float32 rounding (σ = 2, 1e-8, 0.99e-8, as a
    /// pruned layer trained in SVD coordinates composes to): the top-2
    /// subspace is not determined (a gap of 1e-10 relative to σ₁, below the
    /// eigen-solvers' rounding of WWᵀ), so k = 2 is left out of the C = I
    /// reduction check, which then passes; with a "C = I" that is not the
    /// identity it still fails at k = 1, whose gap is resolved.
    func testIdentityReductionSkipsUnresolvedSubspaces() throws {
        let s = Synthetic(
            w: matrixWithSingularValues([2, 1e-8, 0.99e-8], m: 3, n: 5, seed: 12), patches: synthetic().patches)
        let svd = try SingularValueDecomposition(s.w)
        let basis = try DataAwareProjection(weight: s.w, secondMoment: s.c, layer: "t").basis
        func checks(identity: Matrix) throws -> Set<String> {
            failing(
                try DataAwareLayer.compute(
                    layer: "t", patchSource: "synthetic", patchCount: 400, weight: s.w, svd: svd,
                    secondMoment: s.c, dataEnergies: energies(s, basis: basis),
                    plainEnergies: energies(s, basis: svd.u), identity: identity
                ).checks)
        }
        XCTAssertFalse(try checks(identity: .identity(5)).contains("t.data-aware.identity-reduces-to-truncation"))
        var notIdentity = Matrix.identity(5)
        for i in 0..<5 { notIdentity[i, i] = 1 + 0.1 * Double(i) }
        XCTAssertTrue(try checks(identity: notIdentity).contains("t.data-aware.identity-reduces-to-truncation"))
    }

    // MARK: - Section 3: principal angles

    func testPrincipalAnglesOfKnownSubspaces() throws {
        let (a, b) = (20.0 * Double.pi / 180, 50.0 * Double.pi / 180)
        var qa = Matrix(rows: 5, columns: 2)
        var qb = Matrix(rows: 5, columns: 2)
        qa[0, 0] = 1
        qa[1, 1] = 1
        qb[0, 0] = cos(a)
        qb[2, 0] = sin(a)
        qb[1, 1] = cos(b)
        qb[3, 1] = sin(b)
        let angles = try PrincipalAngles(qa, qb, context: "t")
        XCTAssertEqual(angles.anglesDegrees[0], 20, accuracy: 1e-10)
        XCTAssertEqual(angles.anglesDegrees[1], 50, accuracy: 1e-10)
        XCTAssertEqual(angles.sumOfSquaredCosines, cos(a) * cos(a) + cos(b) * cos(b), accuracy: 1e-15)
        XCTAssertEqual(angles.randomExpectation, 4.0 / 5.0)
        // A subspace against itself in another basis (rotated within the span): all angles 0.
        var rotated = Matrix(rows: 5, columns: 2)
        rotated[0, 0] = cos(a)
        rotated[1, 0] = sin(a)
        rotated[0, 1] = -sin(a)
        rotated[1, 1] = cos(a)
        let same = try PrincipalAngles(qa, rotated, context: "t")
        XCTAssertLessThan(same.anglesDegrees.max()!, 1e-6)
        let good = FilterDataAngles(layer: "t", angles: [angles, same], eigenfilters: [], patchComponents: [])
        XCTAssertTrue(good.check.passed)
        // A basis that is not orthonormal: a cosine above 1 shows, and the check fails.
        let scaled = qa.scalingColumns(by: [1.2, 1.2])
        let bad = FilterDataAngles(
            layer: "t", angles: [try PrincipalAngles(scaled, rotated, context: "t")], eigenfilters: [],
            patchComponents: [])
        XCTAssertFalse(bad.check.passed)
    }

    // MARK: - The analysis on the fixture

    func testLayerOperatorsOnTheFixtureAgainstLoops() throws {
        let f = try AnalyzerFixtureTests.shared.get()
        let p = try XCTUnwrap(f.report.layerOperators)
        let ids = Set(p.checks.map(\.id))
        for layer in ["conv1", "conv2"] {
            for suffix in [
                "operator.circulant-dft-vs-dense", "operator.circulant-norm-vs-frequency", "operator.weight-le-valid",
                "operator.valid-le-circulant", "operator.frequency-le-kernel-bound",
                "operator.valid-circulant-interlacing",
                "operator.weight-valid-interlacing", "operator.frequency-parseval", "operator.fantastic-four-bound",
                "data-aware.error-identity", "data-aware.identity-reduces-to-truncation", "data-aware.beats-truncation",
                "principal-angles.cosine-identity",
            ] {
                XCTAssert(ids.contains("\(layer).\(suffix)"), "\(layer).\(suffix) missing")
                XCTAssertNotNil(f.report.check("\(layer).\(suffix)"), "\(layer).\(suffix) not in the report's checks")
            }
        }
        XCTAssertTrue(p.checks.allSatisfy(\.passed), "\(failing(p.checks))")
        XCTAssertEqual(p.operatorSpectra.map(\.validShape), [[5408, 784], [1936, 1352]])
        XCTAssertEqual(p.filtersVersusData.map { $0.angles.count }, [4, 15])
        // C of conv1 against a loop over every patch of the training images
        // (summed per image, then over images: a plain running sum of 676 000
        // terms would itself be off by ~N·ε ≈ 1e-10).
        let images = f.train.normalizedImages(0..<f.train.count).map(Double.init)
        var c = Matrix(rows: 9, columns: 9)
        var patches = 0
        var patch = [Double](repeating: 0, count: 9)
        for img in 0..<f.train.count {
            var perImage = Matrix(rows: 9, columns: 9)
            for y in 0..<26 {
                for x in 0..<26 {
                    for i in 0..<3 { for j in 0..<3 { patch[i * 3 + j] = images[img * 784 + (y + i) * 28 + x + j] } }
                    for i in 0..<9 { for j in 0..<9 { perImage[i, j] += patch[i] * patch[j] } }
                    patches += 1
                }
            }
            for i in 0..<81 { c.values[i] += perImage.values[i] }
        }
        for i in 0..<81 { c.values[i] /= Double(patches) }
        let layer1 = p.dataAwareLowRank.layers[0]
        XCTAssertEqual(layer1.patchCount, patches)
        let eigen = try symmetricEigenvalues(c)
        XCTAssertLessThan(maxAbsoluteDifference(layer1.secondMomentEigenvalues, eigen), 1e-12 * eigen[0])
        // The full-rank accuracy check fails when the counts differ.
        var perturbed = p
        perturbed.dataAwareLowRank.fullRankCorrect! += 1
        XCTAssertEqual(failing(perturbed.checks), ["data-aware.full-rank"])
        // conv2's patch count: 121 per training image.
        XCTAssertEqual(p.dataAwareLowRank.layers[1].patchCount, 121 * f.train.count)
        // JSON round trip keeps phase 9.
        XCTAssertEqual(try AnalysisReport(jsonData: f.report.jsonData()).layerOperators, p)
        // A format-1 file (an older build's, whose section was `phase9`) is
        // refused with the versions named, not read with its section missing.
        var old = try XCTUnwrap(try JSONSerialization.jsonObject(with: f.report.jsonData()) as? [String: Any])
        old["formatVersion"] = 1
        old["phase9"] = old.removeValue(forKey: "layerOperators")
        XCTAssertThrowsError(try AnalysisReport(jsonData: JSONSerialization.data(withJSONObject: old))) {
            XCTAssertEqual($0 as? AnalysisError, .unsupportedFormat(found: 1, expected: 2))
        }
    }
}
