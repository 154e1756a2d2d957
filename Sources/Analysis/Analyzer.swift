import Foundation
import NetIO

/// Runs phases 2–7 and 9 of the analysis of a trained TinyConvNet on the host.
///
/// Usage: `try Analyzer(weights: w, testSet: test, trainSet: train).run(network: device)`.
/// The network under test is optional: without it phase 4's device
/// comparison is absent from the report (and from the checks); every other
/// phase runs.
public struct Analyzer {
    public let weights: TinyConvNetWeights
    public let testSet: Dataset
    public let trainSet: Dataset
    public let options: AnalysisOptions

    public init(
        weights: TinyConvNetWeights, testSet: Dataset, trainSet: Dataset, options: AnalysisOptions = AnalysisOptions()
    ) {
        self.weights = weights
        self.testSet = testSet
        self.trainSet = trainSet
        self.options = options
    }

    /// Test images the explicit convolution operators of phase 7 are applied to.
    public static let operatorApplicationImages = 16

    /// The whole analysis. `progress` receives one line per step.
    /// Throws ``AnalysisError`` for non-finite or all-zero weights, a data set
    /// that is not 28×28 or is empty, a bad option, or a network output of the
    /// wrong size; ``LAPACKError`` if LAPACK fails.
    public func run(network: NetworkUnderTest? = nil, progress: (String) -> Void = { _ in }) throws -> AnalysisReport {
        try validate()
        let matrices = try ConvMatrices(weights: weights)
        return try analyse(matrices, network: network, progress: progress)
    }

    private func validate() throws {
        for set in [testSet, trainSet] {
            if set.rows != TinyConvNetGeometry.imageSide || set.columns != TinyConvNetGeometry.imageSide {
                throw AnalysisError.unsupportedDataset(
                    name: set.name, reason: "images are \(set.rows)×\(set.columns), TinyConvNet takes 28×28")
            }
            if set.count == 0 { throw AnalysisError.unsupportedDataset(name: set.name, reason: "no images") }
        }
        if options.batchSize < 1 {
            throw AnalysisError.invalidOption(name: "batchSize", reason: "\(options.batchSize) < 1")
        }
        if options.threads < 1 { throw AnalysisError.invalidOption(name: "threads", reason: "\(options.threads) < 1") }
        if options.randomPatchCount < 1 {
            throw AnalysisError.invalidOption(name: "randomPatchCount", reason: "\(options.randomPatchCount) < 1")
        }
        if options.mostCommonMaskCount < 0 {
            throw AnalysisError.invalidOption(name: "mostCommonMaskCount", reason: "\(options.mostCommonMaskCount) < 0")
        }
    }

    /// The phases in order, each timed.
    private func analyse(_ m: ConvMatrices, network: NetworkUnderTest?, progress: (String) -> Void) throws
        -> AnalysisReport
    {
        let started = Clocks.wall()
        var clock = started
        func lap() -> Double {
            let now = Clocks.wall()
            defer { clock = now }
            return now - clock
        }

        progress("phase 2: SVD of conv1 (8×9) and conv2 (16×72)")
        let (svd1, svd2, spectra) = try decompose(m)
        let svdSeconds = lap()

        progress("phase 3: reconstruction, orthogonality, composition overlaps")
        let identities = [
            SVDIdentities.compute(layer: "conv1", w: m.conv1, svd: svd1),
            SVDIdentities.compute(layer: "conv2", w: m.conv2, svd: svd2),
        ]
        let composition = CompositionOverlaps.compute(conv1: svd1, conv2: svd2)
        let identitiesSeconds = lap()

        let reference = HostReferenceNet(m)
        let analytical = AnalyticalNet(conv1: svd1, conv2: svd2, fcWeight: m.fcWeight, fcBias: m.fcBias)
        progress(
            "test-set pass over \(testSet.count) images" + (network == nil ? "" : " (with the network under test)"))
        let pass = try passTestSet(reference: reference, analytical: analytical, network: network, progress: progress)
        let testSetPassSeconds = lap() - pass.deviceSeconds

        progress("phase 5: low-rank errors for every k")
        var lowRankLayers = [
            try LowRankLayer.compute(layer: "conv1", w: m.conv1, svd: svd1),
            try LowRankLayer.compute(layer: "conv2", w: m.conv2, svd: svd2),
        ]
        let lowRankSeconds = lap()
        let sweep = accuracySweep(
            analytical, svd1: svd1, svd2: svd2, predictions: pass.stats.directPredictions, into: &lowRankLayers,
            progress: progress)
        let sweepSeconds = lap()

        progress("phase 6: masks of \(options.randomPatchCount) random training patches per layer")
        let reluRegions = reluRegionCensuses(
            m, svd1: svd1, svd2: svd2, spectra: spectra, stats: pass.stats, reference: reference)
        let randomPatchSeconds = lap()

        progress("phase 7: Frobenius identities, explicit convolution operators")
        let frobenius = frobeniusIdentities(m, svd1: svd1, svd2: svd2, reference: reference)
        let frobeniusSeconds = lap()

        // Phase 9: operators, data-aware low rank, filters against the data.
        let layerOperators = try LayerOperatorReport.compute(
            m, svd1: svd1, svd2: svd2, network: reference, trainSet: trainSet,
            testSet: testSet, options: options, sweep: sweep, networkCorrect: pass.stats.directCorrect,
            progress: progress)
        _ = lap()

        let total = Clocks.seconds(since: started)
        let timings = PhaseTimings(
            svdSeconds: svdSeconds, identitiesSeconds: identitiesSeconds, testSetPassSeconds: testSetPassSeconds,
            deviceSeconds: pass.deviceSeconds, lowRankSeconds: lowRankSeconds, sweepSeconds: sweepSeconds,
            randomPatchSeconds: randomPatchSeconds, frobeniusSeconds: frobeniusSeconds,
            analysisSeconds: total - sweepSeconds - pass.deviceSeconds - layerOperators.timings.totalSeconds,
            totalSeconds: total, layerOperatorSeconds: layerOperators.timings.totalSeconds,
            layerOperatorAccuracySeconds: layerOperators.timings.accuracySeconds)

        let checks =
            Self.checks(
                spectra: spectra, identities: identities, composition: composition,
                comparison: pass.comparison, device: pass.device, lowRank: lowRankLayers, sweep: sweep,
                reluRegions: reluRegions, frobenius: frobenius) + layerOperators.checks
        return AnalysisReport(
            formatVersion: AnalysisReport.currentFormatVersion,
            testSet: DatasetSummary(name: testSet.name, count: testSet.count),
            trainSet: DatasetSummary(name: trainSet.name, count: trainSet.count),
            options: options, testAccuracy: pass.comparison.hostTestAccuracy,
            spectra: spectra, svdIdentities: identities, composition: composition,
            analyticalComparison: pass.comparison, deviceVerification: pass.device,
            lowRank: LowRankReport(layers: lowRankLayers, sweep: sweep),
            reluRegions: reluRegions, frobenius: frobenius, layerOperators: layerOperators, checks: checks,
            timings: timings)
    }

    /// Phase 2: each layer's SVD and spectrum.
    private func decompose(_ m: ConvMatrices) throws
        -> (svd1: SingularValueDecomposition, svd2: SingularValueDecomposition, spectra: [LayerSpectrum])
    {
        let svd1 = try SingularValueDecomposition(m.conv1, context: "conv1.weight (8×9)")
        let svd2 = try SingularValueDecomposition(m.conv2, context: "conv2.weight (16×72)")
        let spectra = [
            try LayerSpectrum.compute(
                layer: "conv1", weightShape: TinyConvNetWeights.conv1Shape, w: m.conv1, svd: svd1),
            try LayerSpectrum.compute(
                layer: "conv2", weightShape: TinyConvNetWeights.conv2Shape, w: m.conv2, svd: svd2),
        ]
        return (svd1, svd2, spectra)
    }

    /// What the test-set pass gives phases 3, 4 and 6.
    private struct TestSetResults {
        var stats: PassStatistics
        var deviceSeconds: Double
        var comparison: AnalyticalComparison
        var device: DeviceVerification?
    }

    /// Phases 3, 4 and 6 over the test set: the AnalyticalNet against the
    /// host's float64 network, the network under test against both, and the
    /// test set's ReLU masks.
    private func passTestSet(
        reference: HostReferenceNet, analytical: AnalyticalNet, network: NetworkUnderTest?,
        progress: (String) -> Void
    ) throws -> TestSetResults {
        let g = TinyConvNetGeometry.self
        let (stats, deviceSeconds) = try TestSetPass(reference: reference, analytical: analytical)
            .run(testSet: testSet, network: network, options: options, progress: progress)
        let n = Double(testSet.count)
        let comparison = AnalyticalComparison(
            images: testSet.count,
            conv1MaxAbsDifference: stats.analyticalConv1Difference,
            conv2MaxAbsDifference: stats.analyticalConv2Difference,
            logitsMaxAbsDifference: stats.analyticalLogitsDifference,
            predictionMismatches: stats.analyticalPredictionMismatches,
            hostTestAccuracy: Double(stats.directCorrect) / n,
            analyticalTestAccuracy: Double(stats.analyticalCorrect) / n)
        let device =
            network == nil
            ? nil
            : DeviceVerification(
                images: testSet.count,
                conv1MaxAbsDifference: stats.deviceConv1Difference,
                conv2MaxAbsDifference: stats.deviceConv2Difference,
                pooled1MaxAbsDifference: stats.devicePooled1Difference,
                pooled2MaxAbsDifference: stats.devicePooled2Difference,
                poolWindows: [
                    testSet.count * g.conv1Channels * g.pool1Side * g.pool1Side,
                    testSet.count * g.conv2Channels * g.pool2Side * g.pool2Side,
                ],
                argmaxMismatches: stats.deviceArgmaxMismatches,
                argmaxMismatchesBeyondTies: stats.deviceArgmaxMismatchesBeyondTies,
                argmaxTieBound: DeviceVerification.argmaxTieBound,
                logitsMaxAbsDifference: stats.deviceLogitsDifference,
                predictionMismatches: stats.devicePredictionMismatches,
                deviceTestAccuracy: Double(stats.deviceCorrect) / n,
                deviceSeconds: deviceSeconds)
        return TestSetResults(stats: stats, deviceSeconds: deviceSeconds, comparison: comparison, device: device)
    }

    /// Phase 5's test accuracy for every (k₁, k₂) (when the options ask for
    /// it), written into each layer's low-rank rows with the other layer at
    /// full rank.
    private func accuracySweep(
        _ analytical: AnalyticalNet, svd1: SingularValueDecomposition, svd2: SingularValueDecomposition,
        predictions: [Int], into lowRankLayers: inout [LowRankLayer], progress: (String) -> Void
    ) -> AccuracySweep? {
        guard options.runAccuracySweep else { return nil }
        progress("phase 5: test accuracy for every (k₁, k₂)")
        let s = AccuracySweep.run(
            analytical: analytical, testSet: testSet, referencePredictions: predictions, options: options,
            progress: progress)
        for k in 0..<svd1.rank { lowRankLayers[0].rows[k].testAccuracy = s.accuracy[k][svd2.rank - 1] }
        for k in 0..<svd2.rank { lowRankLayers[1].rows[k].testAccuracy = s.accuracy[svd1.rank - 1][k] }
        return s
    }

    /// Phase 6: masks of random training patches, Cover's bound, and the
    /// test set's censuses from the pass.
    private func reluRegionCensuses(
        _ m: ConvMatrices, svd1: SingularValueDecomposition, svd2: SingularValueDecomposition,
        spectra: [LayerSpectrum], stats: PassStatistics, reference: HostReferenceNet
    ) -> [ReluRegionLayerReport] {
        let sample = sampleTrainingPatches(
            trainSet, count: options.randomPatchCount, seed: options.samplingSeed, reference: reference)
        let k = options.mostCommonMaskCount
        func regions(
            _ layer: String, svd: SingularValueDecomposition, w: Matrix, spectrum: LayerSpectrum, randomPatches: Matrix,
            counts: [Int], patches: Int, before: [Double], after: [Double], totalBefore: Double, totalAfter: Double,
            truncated: TruncatedMaskAccumulator
        ) -> ReluRegionLayerReport {
            let units = w.rows
            let rank = max(spectrum.numericalRank, 1)
            return ReluRegionLayerReport(
                layer: layer, units: units, rank: spectrum.numericalRank, possibleMasks: 1 << units,
                coverBound: (1...units).map { coverBound(units: units, rank: $0) },
                coverBoundAtRank: coverBound(units: units, rank: rank),
                randomTrainingPatches: MaskCensus(weights: w, patches: randomPatches, mostCommon: k),
                testSetPatches: MaskCensus(counts: counts, units: units, mostCommon: k),
                energyBeforeReLU: before.map { $0 / Double(patches) },
                energyAfterReLU: after.map { $0 / Double(patches) },
                totalEnergyBeforeReLU: totalBefore / Double(patches),
                totalEnergyAfterReLU: totalAfter / Double(patches),
                truncatedRandomTrainingPatches: TruncatedMaskCensus(svd: svd, patches: randomPatches),
                truncatedTestSetPatches: truncated.census)
        }
        return [
            regions(
                "conv1", svd: svd1, w: m.conv1, spectrum: spectra[0], randomPatches: sample.conv1,
                counts: stats.conv1MaskCounts, patches: stats.conv1Patches, before: stats.conv1EnergyBefore,
                after: stats.conv1EnergyAfter, totalBefore: stats.conv1TotalBefore, totalAfter: stats.conv1TotalAfter,
                truncated: stats.conv1Truncated),
            regions(
                "conv2", svd: svd2, w: m.conv2, spectrum: spectra[1], randomPatches: sample.conv2,
                counts: stats.conv2MaskCounts, patches: stats.conv2Patches, before: stats.conv2EnergyBefore,
                after: stats.conv2EnergyAfter, totalBefore: stats.conv2TotalBefore, totalAfter: stats.conv2TotalAfter,
                truncated: stats.conv2Truncated),
        ]
    }

    /// Phase 7: Parseval, and the explicit convolution operators applied to
    /// the first ``operatorApplicationImages`` test images.
    private func frobeniusIdentities(
        _ m: ConvMatrices, svd1: SingularValueDecomposition, svd2: SingularValueDecomposition,
        reference: HostReferenceNet
    ) -> [FrobeniusLayerReport] {
        let g = TinyConvNetGeometry.self
        let operatorImages = min(Self.operatorApplicationImages, testSet.count)
        let firstImages = testSet.normalizedImages(0..<operatorImages)
        let cols = firstImages.withUnsafeBufferPointer { conv1Patches($0, count: operatorImages) }
        let chain = runChain(
            cols1: cols, count: operatorImages, conv1: .direct(m.conv1), conv2: .direct(m.conv2), fc: reference.fc)
        let plane1 = g.pool1Side * g.pool1Side
        return [
            FrobeniusLayerReport.compute(
                layer: "conv1", w: m.conv1, svd: svd1, inChannels: 1, inputSide: g.imageSide,
                inputs: firstImages.map(Double.init), count: operatorImages,
                convolved: chain.nchw.conv1),
            FrobeniusLayerReport.compute(
                layer: "conv2", w: m.conv2, svd: svd2, inChannels: g.conv1Channels, inputSide: g.pool1Side,
                inputs: cbhwToNCHW(chain.pooled1, channels: g.conv1Channels, count: operatorImages, planeSize: plane1),
                count: operatorImages, convolved: chain.nchw.conv2),
        ]
    }

    /// Every check with its tolerance and kind (``CheckKind``); the order is
    /// the results table's.
    static func checks(
        spectra: [LayerSpectrum], identities: [SVDIdentities], composition: CompositionOverlaps,
        comparison: AnalyticalComparison, device: DeviceVerification?, lowRank: [LowRankLayer],
        sweep: AccuracySweep?, reluRegions: [ReluRegionLayerReport], frobenius: [FrobeniusLayerReport]
    ) -> [Check] {
        var checks = [Check]()
        func add(
            _ id: String, _ kind: CheckKind, _ description: String, _ value: Double,
            _ relation: CheckRelation = .lessThan,
            _ limit: Double
        ) {
            checks.append(
                Check(id: id, description: description, value: value, relation: relation, limit: limit, kind: kind))
        }
        // Identities of the decomposition (float64; W's entries are O(1)).
        for i in identities {
            add(
                "\(i.layer).reconstruction", .consistency, "\(i.layer) max|UΣVᵀ − W|", i.reconstructionMaxAbsError,
                .lessThan, 1e-12)
            add(
                "\(i.layer).u-orthogonality", .consistency, "\(i.layer) ‖UᵀU − I‖_F", i.uOrthogonalityError, .lessThan,
                1e-12)
            add(
                "\(i.layer).v-orthogonality", .consistency, "\(i.layer) ‖VᵀV − I‖_F", i.vOrthogonalityError, .lessThan,
                1e-12)
        }
        for s in spectra {
            add(
                "\(s.layer).sigma-vs-gram", .independent, "\(s.layer) max|σᵢ² − λᵢ(WᵀW)| / σ₁² (dgesdd vs dsyevd)",
                s.sigmaVersusGramEigenvaluesError, .lessThan, 1e-12)
        }
        add(
            "composition.completeness", .consistency,
            "max_j |Σ_m overlap energy(j, m) − 1| (conv2 eigenfilters in conv1's U basis)",
            composition.completenessError, .lessThan, 1e-12)
        // Parseval and the operator identity.
        for f in frobenius {
            add(
                "\(f.layer).parseval", .consistency, "\(f.layer) |‖W‖²_F − Σσ²| / ‖W‖²_F", f.parsevalRelativeDifference,
                .lessThan, 1e-10)
            add(
                "\(f.layer).operator-frobenius", .consistency,
                "\(f.layer) |‖A‖²_F − (n−k+1)²‖W‖²_F| / that, n = \(f.operatorInputSide)",
                f.operatorRelativeDifference, .lessThan, 1e-12)
            add(
                "\(f.layer).operator-application", .independent,
                "\(f.layer) max|A·x − W·im2col(x)| on the first \(f.operatorApplicationImages) test inputs",
                f.operatorApplicationMaxAbsDifference, .lessThan, 1e-12)
        }
        // The AnalyticalNet against the im2col network on the host (float64).
        add(
            "analytical.conv1", .independent, "AnalyticalNet vs im2col conv1 pre-activation, max|Δ| (host, float64)",
            comparison.conv1MaxAbsDifference, .lessThan, 1e-10)
        add(
            "analytical.conv2", .independent, "AnalyticalNet vs im2col conv2 pre-activation, max|Δ| (host, float64)",
            comparison.conv2MaxAbsDifference, .lessThan, 1e-10)
        add(
            "analytical.logits", .independent, "AnalyticalNet vs im2col logits, max|Δ| (host, float64)",
            comparison.logitsMaxAbsDifference, .lessThan, 1e-10)
        add(
            "analytical.predictions", .independent, "images where AnalyticalNet and im2col predictions differ (host)",
            Double(comparison.predictionMismatches), .equalTo, 0)
        // Phase 4: the network under test.
        if let d = device {
            add(
                "device.conv1", .independent, "device conv1 vs host W₁p, max|Δ| over the test set",
                d.conv1MaxAbsDifference, .lessThan, 1e-4)
            add(
                "device.conv2", .independent, "device conv2 vs host W₂p, max|Δ| over the test set",
                d.conv2MaxAbsDifference, .lessThan, 1e-4)
            add(
                "device.pooled1", .independent,
                "device fused conv1+pool+ReLU vs host float64, max|Δ| over the test set",
                d.pooled1MaxAbsDifference, .lessThan, 1e-4)
            add(
                "device.pooled2", .independent,
                "device fused conv2+pool+ReLU vs host float64, max|Δ| over the test set",
                d.pooled2MaxAbsDifference, .lessThan, 1e-4)
            for (l, layer) in ["pool1", "pool2"].enumerated() {
                add(
                    "device.\(layer)-argmax", .independent,
                    "\(layer) windows where the device's winner differs from float64's, top two > \(ResultsTable.sci(d.argmaxTieBound)) apart",
                    Double(d.argmaxMismatchesBeyondTies[l]), .equalTo, 0)
            }
            add(
                "device.logits", .independent, "device logits vs AnalyticalNet, max|Δ| over the test set",
                d.logitsMaxAbsDifference, .lessThan, 1e-4)
            add(
                "device.predictions", .independent, "images where device and AnalyticalNet predictions differ",
                Double(d.predictionMismatches), .equalTo, 0)
        }
        // Phase 5.
        for l in lowRank {
            add(
                "\(l.layer).eckart-young-frobenius", .consistency,
                "\(l.layer) max_k |‖W−W_k‖_F/‖W‖_F from matrices − from σ|",
                l.frobeniusAgreement, .lessThan, 1e-12)
            add(
                "\(l.layer).eckart-young-spectral", .consistency, "\(l.layer) max_k |‖W−W_k‖₂ − σ_{k+1}| / σ₁",
                l.spectralAgreement, .lessThan, 1e-12)
            add(
                "\(l.layer).eckart-young-optimal-frobenius", .independent,
                "\(l.layer) largest gain of \(l.optimality.candidates) other rank-k matrices B over W_k, (‖W−W_k‖_F − ‖W−B‖_F)/‖W‖_F",
                -l.optimality.frobeniusMargin, .lessThan, 1e-12)
            add(
                "\(l.layer).eckart-young-optimal-spectral", .independent,
                "\(l.layer) largest gain of \(l.optimality.candidates) other rank-k matrices B over W_k, (‖W−W_k‖₂ − ‖W−B‖₂)/σ₁",
                -l.optimality.spectralMargin, .lessThan, 1e-12)
        }
        if let s = sweep {
            add(
                "sweep.full-rank", .independent,
                "images whose prediction at full rank (k₁ = r₁, k₂ = r₂) differs from the network's",
                Double(s.fullRankPredictionMismatches), .equalTo, 0)
        }
        // Phase 6: Cover's bound on the truncated layers, and the energy
        // bookkeeping (U square orthogonal: Σᵢ (uᵢᵀx)² = ‖x‖²).
        for r in reluRegions {
            for (name, census) in [("random", r.truncatedRandomTrainingPatches), ("test", r.truncatedTestSetPatches)] {
                add(
                    "\(r.layer).cover-\(name)", .independent,
                    "\(r.layer) ranks k where the masks of W_k·p (\(census.patches) \(name) patches) exceed Cover's bound C(\(r.units), k)",
                    Double(census.ranksAbove(r.coverBound).count), .equalTo, 0)
            }
        }
        // Relative to the total; absolute when the total is 0 (a dead layer).
        func relative(_ parts: [Double], _ total: Double) -> Double {
            let d = abs(parts.reduce(0, +) - total)
            return total > 0 ? d / total : d
        }
        for r in reluRegions {
            add(
                "\(r.layer).energy-before-relu", .consistency,
                "\(r.layer) |Σᵢ energy along uᵢ − mean‖a‖²| / mean‖a‖², before ReLU",
                relative(r.energyBeforeReLU, r.totalEnergyBeforeReLU), .lessThan, 1e-10)
            add(
                "\(r.layer).energy-after-relu", .consistency,
                "\(r.layer) |Σᵢ energy along uᵢ − mean‖ReLU(a)‖²| / mean‖ReLU(a)‖², after ReLU",
                relative(r.energyAfterReLU, r.totalEnergyAfterReLU), .lessThan, 1e-10)
        }
        return checks
    }
}
