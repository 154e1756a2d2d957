import Foundation

/// One inequality of the chain σ₁(W) ≤ ‖A_valid‖₂ ≤ ‖A_circ‖₂ ≤ √(kH·kW)·σ₁(W),
/// with its slack.
public struct InequalityLink: Codable, Sendable, Equatable {
    /// The claim in words, e.g. "σ₁(W) ≤ ‖A_valid‖₂".
    public var claim: String
    public var lower: Double
    public var upper: Double
    /// upper − lower (≥ 0 when the claim holds).
    public var slack: Double
    /// (lower − upper)/upper: the value its check compares with the
    /// tolerance; negative by the relative slack when the claim holds.
    public var relativeExcess: Double

    init(_ claim: String, lower: Double, upper: Double) {
        self.claim = claim
        self.lower = lower
        self.upper = upper
        slack = upper - lower
        relativeExcess = (lower - upper) / upper
    }
}

/// Phase 9, section 1, one conv layer: the convolution as the linear
/// operator it is on its real input size, and its exact spectrum.
///
/// - A_valid: the unpadded, stride-1 convolution on the layer's input
///   (conv1: 1×28×28 → 8×26×26, 5408×784; conv2: 8×13×13 → 16×11×11,
///   1936×1352), built explicitly; all its singular values by dgesdd
///   (values only) in float64.
/// - A_circ: the circular convolution on the same input, (out·n²)×(in·n²);
///   its singular values are those of the n² frequency matrices K̂(ω)
///   (zgesvd), and are checked against a dense dgesdd of A_circ itself.
public struct OperatorSpectrum: Codable, Sendable, Equatable {
    public var layer: String
    /// n, the input side (28 for conv1, 13 for conv2).
    public var inputSide: Int
    public var kernelSide: Int
    public var inChannels: Int
    public var outChannels: Int
    /// A_valid's shape [out·(n−k+1)², in·n²].
    public var validShape: [Int]
    /// A_circ's shape [out·n², in·n²].
    public var circulantShape: [Int]
    /// All singular values of A_valid, descending, as many as A_circ's
    /// (min(out, in)·n²; for TinyConvNet in·n²: 784 and 1352), zeros appended
    /// where A_valid has fewer rows than that.
    public var validSingularValues: [Double]
    /// All singular values of A_circ from the frequency matrices K̂(ω),
    /// n²·min(out, in) of them, descending.
    public var circulantSingularValues: [Double]
    /// max_i |σᵢ(K̂ route) − σᵢ(dense dgesdd of A_circ)| / σ₁(A_circ).
    /// Tolerance 1e-10: both are backward-stable float64
    /// routes to the same numbers, so they agree to ~1e-14.
    public var circulantDFTVersusDenseError: Double
    /// σᵢ(W) of the reshaped weight (out, in·k²) (phase 2's).
    public var weightSingularValues: [Double]
    /// σ₁(W).
    public var weightSpectralNorm: Double
    /// ‖A_valid‖₂ = σ₁(A_valid).
    public var validSpectralNorm: Double
    /// ‖A_circ‖₂ from the dense SVD of A_circ.
    public var circulantDenseSpectralNorm: Double
    /// max_ω σ₁(K̂(ω)).
    public var maxFrequencySpectralNorm: Double
    /// √(kH·kW)·σ₁(W).
    public var kernelSizeBound: Double
    /// The chain, in order: σ₁(W) ≤ ‖A_valid‖₂, ‖A_valid‖₂ ≤ ‖A_circ‖₂,
    /// max_ω σ₁(K̂(ω)) ≤ √(kH·kW)·σ₁(W). (‖A_circ‖₂ = max_ω σ₁(K̂(ω)) is
    /// `circulantNormVersusFrequencyError`.) Each holds exactly; tolerance
    /// 1e-11 on `relativeExcess` covers dgesdd's rounding (≲ 1e-14·σ₁).
    public var chain: [InequalityLink]
    /// |‖A_circ‖₂ (dense) − max_ω σ₁(K̂(ω))| / ‖A_circ‖₂ (tolerance 1e-10).
    public var circulantNormVersusFrequencyError: Double
    /// max_i (σᵢ(A_valid) − σᵢ(A_circ)) / σ₁(A_circ) over every i: A_valid is
    /// a row subset of A_circ, so σᵢ(A_valid) ≤ σᵢ(A_circ) (Cauchy
    /// interlacing); ≤ 0 up to rounding (tolerance 1e-11).
    public var validCirculantInterlacingExcess: Double
    /// min_i (σᵢ(A_circ) − σᵢ(A_valid)) / σ₁(A_circ): the smallest slack of that interlacing.
    public var validCirculantInterlacingMinimumSlack: Double
    /// max_{i ≤ r} (σᵢ(W) − σᵢ(A_valid)) / σ₁(W), r = rank count of W
    /// (= out here): W is the submatrix of A_valid at output position (0, 0)
    /// and input window (0…k−1)², so σᵢ(A_valid) ≥ σᵢ(W) (tolerance 1e-11).
    public var weightValidInterlacingExcess: Double
    /// Σ_ω ‖K̂(ω)‖²_F.
    public var frequencySquaredFrobeniusSum: Double
    /// n²·‖W‖²_F.
    public var expectedFrequencySquaredFrobeniusSum: Double
    /// |Σ_ω ‖K̂(ω)‖²_F − n²‖W‖²_F| / n²‖W‖²_F (Parseval over the DFT;
    /// tolerance 1e-12).
    public var frequencyParsevalRelativeDifference: Double
    /// ‖R₁‖₂ … ‖R₄‖₂ of Singla & Feizi's four reshapes (R₃ = W).
    public var fantasticFourReshapeNorms: [Double]
    /// √(kH·kW)·min(‖R₁‖₂, …, ‖R₄‖₂), an upper bound on ‖A_circ‖₂ (their theorem 1).
    public var fantasticFourBound: Double
    /// fantasticFourBound / ‖A_circ‖₂ (≥ 1 when the theorem holds).
    public var fantasticFourRatio: Double
    /// fantasticFourBound / ‖A_valid‖₂.
    public var fantasticFourRatioToValid: Double
    /// Metrics of W's own singular values.
    public var weightMetrics: SpectralMetrics
    /// Metrics of A_valid's singular values.
    public var validMetrics: SpectralMetrics
    /// Metrics of A_circ's singular values.
    public var circulantMetrics: SpectralMetrics

    /// One layer whose operators ``computeAll(_:threads:)`` builds.
    public struct Layer: Sendable {
        public var name: String
        /// W (out, in·k·k).
        public var weight: Matrix
        /// σ(W), phase 2's.
        public var weightSingularValues: [Double]
        public var inChannels: Int
        public var kernel: Int
        /// n, the input side.
        public var inputSide: Int

        public init(
            name: String, weight: Matrix, weightSingularValues: [Double], inChannels: Int, kernel: Int, inputSide: Int
        ) {
            self.name = name
            self.weight = weight
            self.weightSingularValues = weightSingularValues
            self.inChannels = inChannels
            self.kernel = kernel
            self.inputSide = inputSide
        }
    }

    /// Builds both operators of each layer on its n×n input and takes their
    /// spectra. The dense SVDs (the bulk of the time: dgebrd is half
    /// matrix–vector work, which OpenBLAS threads poorly) run side by side on
    /// `threads` threads, each with single-threaded BLAS, largest first.
    public static func computeAll(_ layers: [Layer], threads: Int) throws -> [OperatorSpectrum] {
        struct Job {
            let layer: Int
            let circulant: Bool
            let flops: Double
        }
        let jobs = layers.indices.flatMap { i -> [Job] in
            let l = layers[i]
            let n = l.inputSide
            let o = n - l.kernel + 1
            func cost(_ rows: Int) -> Double {
                let c = Double(l.inChannels * n * n)
                return Double(rows) * c * c
            }
            return [
                Job(layer: i, circulant: true, flops: cost(l.weight.rows * n * n)),
                Job(layer: i, circulant: false, flops: cost(l.weight.rows * o * o)),
            ]
        }.sorted { $0.flops > $1.flops }
        let results = parallelMap(jobs.count, threads: threads) { j -> Result<[Double], Error> in
            let job = jobs[j]
            let l = layers[job.layer]
            let a =
                job.circulant
                ? ConvolutionOperator.circulantMatrix(
                    weight: l.weight, inChannels: l.inChannels, kernel: l.kernel, inputSide: l.inputSide)
                : ConvolutionOperator.matrix(
                    weight: l.weight, inChannels: l.inChannels, kernel: l.kernel, inputSide: l.inputSide)
            return Result {
                try singularValuesOnly(
                    a, context: "\(l.name) \(job.circulant ? "A_circ" : "A_valid") (\(a.rows)×\(a.columns))")
            }
        }
        return try layers.indices.map { i in
            let l = layers[i]
            func sigma(circulant: Bool) throws -> [Double] {
                try results[jobs.firstIndex { $0.layer == i && $0.circulant == circulant }!].get()
            }
            return try OperatorSpectrum(
                layer: l.name, weight: l.weight, weightSingularValues: l.weightSingularValues, inChannels: l.inChannels,
                kernel: l.kernel, inputSide: l.inputSide, validSingularValues: try sigma(circulant: false),
                circulantDenseSingularValues: try sigma(circulant: true),
                frequencyMatrices: ConvolutionOperator.frequencyMatrices(
                    weight: l.weight, inChannels: l.inChannels,
                    kernel: l.kernel, inputSide: l.inputSide))
        }
    }

    /// One layer, on the calling thread (``computeAll(_:threads:)`` with one layer and one thread).
    public static func compute(
        layer: String, weight w: Matrix, weightSingularValues sigmaW: [Double],
        inChannels: Int, kernel k: Int, inputSide n: Int
    ) throws -> OperatorSpectrum {
        try computeAll(
            [
                Layer(
                    name: layer, weight: w, weightSingularValues: sigmaW, inChannels: inChannels, kernel: k,
                    inputSide: n)
            ],
            threads: 1)[0]
    }

    /// This layer's checks, in the results table's order (all kind
    /// `independent`: each compares two different computations or a theorem's
    /// two sides, except `frequency-parseval`, which is `consistency`).
    public var checks: [Check] {
        let l = layer
        var c = [
            Check(
                id: "\(l).operator.circulant-dft-vs-dense",
                description:
                    "\(l) max_i |σᵢ(A_circ) via K̂(ω) − σᵢ(dense A_circ)| / σ₁ (\(circulantShape[0])×\(circulantShape[1]))",
                value: circulantDFTVersusDenseError, relation: .lessThan, limit: 1e-10, kind: .independent),
            Check(
                id: "\(l).operator.circulant-norm-vs-frequency",
                description: "\(l) |‖A_circ‖₂ − max_ω σ₁(K̂(ω))| / ‖A_circ‖₂",
                value: circulantNormVersusFrequencyError, relation: .lessThan, limit: 1e-10, kind: .independent),
        ]
        let ids = ["weight-le-valid", "valid-le-circulant", "frequency-le-kernel-bound"]
        for (id, link) in zip(ids, chain) {
            c.append(
                Check(
                    id: "\(l).operator.\(id)",
                    description:
                        "\(l) \(link.claim): (lhs − rhs)/rhs, negative = slack \(String(format: "%.3g", link.slack))",
                    value: link.relativeExcess, relation: .lessThan, limit: 1e-11, kind: .independent))
        }
        c.append(
            Check(
                id: "\(l).operator.valid-circulant-interlacing",
                description:
                    "\(l) max_i (σᵢ(A_valid) − σᵢ(A_circ))/σ₁, all \(validSingularValues.count) i (least slack \(String(format: "%.3g", validCirculantInterlacingMinimumSlack)))",
                value: validCirculantInterlacingExcess, relation: .lessThan, limit: 1e-11, kind: .independent))
        c.append(
            Check(
                id: "\(l).operator.weight-valid-interlacing",
                description: "\(l) max_{i≤\(outChannels)} (σᵢ(W) − σᵢ(A_valid))/σ₁(W)",
                value: weightValidInterlacingExcess, relation: .lessThan, limit: 1e-11, kind: .independent))
        c.append(
            Check(
                id: "\(l).operator.frequency-parseval",
                description: "\(l) |Σ_ω ‖K̂(ω)‖²_F − n²‖W‖²_F| / n²‖W‖²_F, n = \(inputSide)",
                value: frequencyParsevalRelativeDifference, relation: .lessThan, limit: 1e-12, kind: .consistency))
        c.append(
            Check(
                id: "\(l).operator.fantastic-four-bound",
                description:
                    "\(l) ‖A_circ‖₂ ≤ √(hw)·min‖Rᵢ‖₂ (Singla & Feizi): (‖A_circ‖₂ − bound)/bound, ratio bound/‖A_circ‖₂ = \(String(format: "%.3f", fantasticFourRatio))",
                value: (circulantDenseSpectralNorm - fantasticFourBound) / fantasticFourBound, relation: .lessThan,
                limit: 1e-11, kind: .independent))
        return c
    }
}

extension OperatorSpectrum {
    /// Every number and comparison from the three routes' results: A_valid's
    /// singular values, the dense A_circ's, and the frequency matrices K̂(ω)
    /// (``ConvolutionOperator/frequencyMatrices(weight:inChannels:kernel:inputSide:)``,
    /// decomposed here with zgesvd). Public so that a test can hand it a
    /// perturbed input and see the checks fail.
    public init(
        layer: String, weight w: Matrix, weightSingularValues sigmaW: [Double], inChannels: Int, kernel k: Int,
        inputSide n: Int, validSingularValues validSigma: [Double], circulantDenseSingularValues denseSigma: [Double],
        frequencyMatrices frequencies: [[Double]]
    ) throws {
        precondition(frequencies.count == n * n)
        // A_valid has fewer rows than A_circ; where it has fewer rows than
        // columns its remaining singular values (as a map on R^{in·n²}) are 0.
        let validSigma = validSigma + [Double](repeating: 0, count: max(0, denseSigma.count - validSigma.count))
        var dftSigma = [Double]()
        var maxPerFrequency = 0.0
        var frequencyFrobenius = 0.0
        for (index, m) in frequencies.enumerated() {
            let s = try complexSingularValues(
                m, rows: w.rows, columns: inChannels,
                context: "\(layer) K̂(ω) at ω = (\(index / n), \(index % n))")
            dftSigma += s
            maxPerFrequency = max(maxPerFrequency, s[0])
            frequencyFrobenius += m.reduce(0) { $0 + $1 * $1 }
        }
        dftSigma.sort(by: >)
        precondition(
            dftSigma.count == denseSigma.count && validSigma.count == denseSigma.count,
            "\(layer): \(dftSigma.count) DFT, \(denseSigma.count) dense, \(validSigma.count) valid singular values")
        let circNorm = denseSigma[0]
        var dftError = 0.0
        for i in 0..<denseSigma.count {
            dftError = worstDifference(dftError, dftSigma[i] / circNorm, denseSigma[i] / circNorm)
        }
        var interlacing = -Double.infinity
        var minSlack = Double.infinity
        for i in 0..<validSigma.count {
            let d = (validSigma[i] - dftSigma[i]) / circNorm
            interlacing = largestPropagatingNaN(interlacing, d)
            minSlack = min(minSlack, -d)
        }
        let sigma1 = sigmaW[0]
        var weightExcess = -Double.infinity
        for i in 0..<min(sigmaW.count, w.rows) {
            weightExcess = largestPropagatingNaN(weightExcess, (sigmaW[i] - validSigma[i]) / sigma1)
        }
        let expected = Double(n * n) * w.squaredFrobeniusNorm
        let reshapes = fantasticFourReshapes(weight: w, inChannels: inChannels, kernel: k)
        let reshapeNorms = try reshapes.enumerated().map { i, r in
            try singularValuesOnly(r, context: "\(layer) Singla–Feizi reshape R\(i + 1) (\(r.rows)×\(r.columns))")[0]
        }
        let root = Double(k * k).squareRoot()
        let ffBound = root * reshapeNorms.min()!
        let kernelBound = root * sigma1
        let o = n - k + 1
        self.init(
            layer: layer, inputSide: n, kernelSide: k, inChannels: inChannels, outChannels: w.rows,
            validShape: [w.rows * o * o, inChannels * n * n], circulantShape: [w.rows * n * n, inChannels * n * n],
            validSingularValues: validSigma, circulantSingularValues: dftSigma,
            circulantDFTVersusDenseError: dftError, weightSingularValues: sigmaW, weightSpectralNorm: sigma1,
            validSpectralNorm: validSigma[0],
            circulantDenseSpectralNorm: circNorm, maxFrequencySpectralNorm: maxPerFrequency,
            kernelSizeBound: kernelBound,
            chain: [
                InequalityLink("σ₁(W) ≤ ‖A_valid‖₂", lower: sigma1, upper: validSigma[0]),
                InequalityLink("‖A_valid‖₂ ≤ ‖A_circ‖₂", lower: validSigma[0], upper: circNorm),
                InequalityLink("max_ω σ₁(K̂(ω)) ≤ √(kH·kW)·σ₁(W)", lower: maxPerFrequency, upper: kernelBound),
            ],
            circulantNormVersusFrequencyError: abs(circNorm - maxPerFrequency) / circNorm,
            validCirculantInterlacingExcess: interlacing, validCirculantInterlacingMinimumSlack: minSlack,
            weightValidInterlacingExcess: weightExcess,
            frequencySquaredFrobeniusSum: frequencyFrobenius, expectedFrequencySquaredFrobeniusSum: expected,
            frequencyParsevalRelativeDifference: abs(frequencyFrobenius - expected) / expected,
            fantasticFourReshapeNorms: reshapeNorms, fantasticFourBound: ffBound,
            fantasticFourRatio: ffBound / circNorm, fantasticFourRatioToValid: ffBound / validSigma[0],
            weightMetrics: SpectralMetrics(singularValues: sigmaW, shape: [w.rows, w.columns]),
            validMetrics: SpectralMetrics(singularValues: validSigma, shape: [w.rows * o * o, inChannels * n * n]),
            circulantMetrics: SpectralMetrics(singularValues: dftSigma, shape: [w.rows * n * n, inChannels * n * n]))
    }
}
