import Foundation
import NetIO

/// Phase 9, section 2, both layers.
public struct DataAwareLowRankReport: Codable, Sendable, Equatable {
    /// conv1, conv2.
    public var layers: [DataAwareLayer]
    /// Both layers at the same k = 1…min(r₁, r₂); nil without the accuracy sweep.
    public var bothLayers: [DataAwareBothRow]?
    /// Test images the accuracies are over (nil without the sweep).
    public var accuracyImages: Int?
    /// Correct test predictions with both data-aware factorisations at full
    /// rank (Ŵ_r = UUᵀW = W), and of the network itself (host float64).
    public var fullRankCorrect: Int?
    public var networkCorrect: Int?
}

/// Wall time of phase 9, seconds.
public struct LayerOperatorTimings: Codable, Sendable, Equatable {
    /// Section 1: both operators of both layers, their dense SVDs and the DFT route.
    public var operatorSpectraSeconds: Double
    /// Section 2's pass over the training images and what follows from it.
    public var trainingPatchSeconds: Double
    /// Section 2's accuracy curves over the test set (0 without the sweep).
    public var accuracySeconds: Double
    /// Section 3.
    public var principalAnglesSeconds: Double
    /// Section 4 (nil in reports written before it).
    public var regionsAlongLinesSeconds: Double?
    /// Wall time of all of phase 9 (target ≤ 10 s).
    public var totalSeconds: Double
    /// Process CPU time over phase 9, all threads: on a shared machine the
    /// wall time depends on the other processes, this does not.
    public var cpuSeconds: Double
    /// The same per part: operators, training patches, accuracy, angles,
    /// regions along lines.
    public var cpuSecondsPerPart: [Double]
}

/// Phase 9, in four sections: 1 each conv layer as the operator it is,
/// 2 data-aware low rank, 3 the filters against the data, and 4 linear
/// regions along lines (``RegionsAlongLinesReport``).
public struct LayerOperatorReport: Codable, Sendable, Equatable {
    /// Section 1, per layer.
    public var operatorSpectra: [OperatorSpectrum]
    /// Section 2.
    public var dataAwareLowRank: DataAwareLowRankReport
    /// Section 3, per layer.
    public var filtersVersusData: [FilterDataAngles]
    /// Section 4, linear regions along lines between test images; nil in
    /// reports written before it.
    public var regionsAlongLines: RegionsAlongLinesReport?
    public var timings: LayerOperatorTimings

    /// Every phase-9 check, in the results table's order. Kinds:
    /// `<layer>.operator.*` independent except `frequency-parseval`
    /// (consistency); `<layer>.data-aware.*` independent;
    /// `data-aware.full-rank` independent (the factorised network against the
    /// im2col network); `<layer>.principal-angles.cosine-identity` consistency;
    /// `regions.*` independent (the exact piece walk against the plain forward
    /// pass, a sampling grid and conv1's sign changes on a grid).
    public var checks: [Check] {
        var c = operatorSpectra.flatMap(\.checks) + dataAwareLowRank.layers.flatMap(\.checks)
        if let full = dataAwareLowRank.fullRankCorrect, let network = dataAwareLowRank.networkCorrect {
            c.append(
                Check(
                    id: "data-aware.full-rank",
                    description:
                        "|correct predictions with both data-aware factorisations at full rank − the network's|",
                    value: Double(abs(full - network)), relation: .equalTo, limit: 0, kind: .independent))
        }
        c += filtersVersusData.map(\.check)
        if let regions = regionsAlongLines { c += RegionsAlongLines.checks(regions) }
        return c
    }

    /// The largest k of the principal angles per layer: conv1's two
    /// 8-dimensional subspaces of R⁹ share at least 7 dimensions, so only
    /// k ≤ 4 says anything; conv2's 16 of 72 leave room up to 15.
    static let principalAngleRanks = (conv1: 4, conv2: 15)

    static func compute(
        _ m: ConvMatrices, svd1: SingularValueDecomposition, svd2: SingularValueDecomposition,
        network: HostReferenceNet, trainSet: Dataset, testSet: Dataset, options: AnalysisOptions, sweep: AccuracySweep?,
        networkCorrect: Int, progress: (String) -> Void
    ) throws -> LayerOperatorReport {
        let g = TinyConvNetGeometry.self
        let started = Clocks.wall()
        let cpuStarted = Clocks.processCPU()
        var clock = started
        var cpuClock = cpuStarted
        var cpuParts = [Double]()
        func lap() -> Double {
            let now = Clocks.wall()
            let cpu = Clocks.processCPU()
            defer {
                clock = now
                cpuClock = cpu
            }
            cpuParts.append(cpu - cpuClock)
            return now - clock
        }

        progress("phase 9: operator spectra (dense SVDs of the valid and circular operators, K̂(ω))")
        let spectra = try OperatorSpectrum.computeAll(
            [
                .init(
                    name: "conv1", weight: m.conv1, weightSingularValues: svd1.singularValues, inChannels: 1,
                    kernel: g.kernelSide, inputSide: g.imageSide),
                .init(
                    name: "conv2", weight: m.conv2, weightSingularValues: svd2.singularValues,
                    inChannels: g.conv1Channels,
                    kernel: g.kernelSide, inputSide: g.pool1Side),
            ], threads: options.threads)
        let operatorSeconds = lap()

        progress("phase 9: second moments of every training patch (\(trainSet.count) images)")
        let moments = TrainingPatchPasses.moments(trainSet, conv1: m.conv1, conv2: m.conv2, options: options)
        let (c1, c2) = moments.secondMoments()
        let (outputs1, outputs2) = moments.outputMoments()
        let projection1 = try DataAwareProjection(weight: m.conv1, secondMoment: c1, layer: "conv1")
        let projection2 = try DataAwareProjection(weight: m.conv2, secondMoment: c2, layer: "conv2")
        var layers = [
            try DataAwareLayer.compute(
                layer: "conv1", patchSource: "every 3×3 patch of the \(trainSet.count) normalised training images",
                patchCount: moments.conv1Patches, weight: m.conv1, svd: svd1, secondMoment: c1,
                dataEnergies: componentEnergies(outputs1, basis: projection1.basis),
                plainEnergies: componentEnergies(outputs1, basis: svd1.u), identity: .identity(m.conv1.columns)),
            try DataAwareLayer.compute(
                layer: "conv2",
                patchSource: "every 3×3 patch of the pooled ReLU conv1 output of the \(trainSet.count) training images",
                patchCount: moments.conv2Patches, weight: m.conv2, svd: svd2, secondMoment: c2,
                dataEnergies: componentEnergies(outputs2, basis: projection2.basis),
                plainEnergies: componentEnergies(outputs2, basis: svd2.u), identity: .identity(m.conv2.columns)),
        ]
        let patchSeconds = lap()

        var both: [DataAwareBothRow]?
        var fullRankCorrect: Int?
        if options.runAccuracySweep {
            progress("phase 9: test accuracy with data-aware Ŵ_k")
            let net = AnalyticalNet(
                conv1: projection1.factorization, conv2: projection2.factorization,
                fcWeight: m.fcWeight, fcBias: m.fcBias)
            let curves = RankCurves.run(net, testSet: testSet, options: options)
            let n = Double(testSet.count)
            let r1 = svd1.rank
            let r2 = svd2.rank
            for k in 0..<r1 {
                layers[0].rows[k].testAccuracy = Double(curves.conv1Alone[k]) / n
                layers[0].rows[k].plainTestAccuracy = sweep?.accuracy[k][r2 - 1]
            }
            for k in 0..<r2 {
                layers[1].rows[k].testAccuracy = Double(curves.conv2Alone[k]) / n
                layers[1].rows[k].plainTestAccuracy = sweep?.accuracy[r1 - 1][k]
            }
            both = curves.both.enumerated().map { k, correct in
                DataAwareBothRow(
                    rank: k + 1, testAccuracy: Double(correct) / n, plainTestAccuracy: sweep?.accuracy[k][k])
            }
            fullRankCorrect = curves.conv2Alone[r2 - 1]
        }
        let accuracySeconds = lap()

        progress("phase 9: principal angles between eigenfilters and patch principal components")
        let angles = [
            try FilterDataAngles.compute(
                layer: "conv1", svd: svd1, secondMoment: try SymmetricEigenDecomposition(c1, context: "conv1 C"),
                maxK: principalAngleRanks.conv1),
            try FilterDataAngles.compute(
                layer: "conv2", svd: svd2, secondMoment: try SymmetricEigenDecomposition(c2, context: "conv2 C"),
                maxK: principalAngleRanks.conv2),
        ]
        let anglesSeconds = lap()

        progress("phase 9: linear regions along lines between test images")
        let regions = RegionsAlongLines.run(
            network: network, testSet: testSet,
            options: RegionsAlongLinesOptions(threads: options.threads), progress: progress)
        let regionsSeconds = lap()
        return LayerOperatorReport(
            operatorSpectra: spectra,
            dataAwareLowRank: DataAwareLowRankReport(
                layers: layers, bothLayers: both,
                accuracyImages: options.runAccuracySweep ? testSet.count : nil,
                fullRankCorrect: fullRankCorrect,
                networkCorrect: options.runAccuracySweep ? networkCorrect : nil),
            filtersVersusData: angles,
            regionsAlongLines: regions,
            timings: LayerOperatorTimings(
                operatorSpectraSeconds: operatorSeconds, trainingPatchSeconds: patchSeconds,
                accuracySeconds: accuracySeconds, principalAnglesSeconds: anglesSeconds,
                regionsAlongLinesSeconds: regionsSeconds,
                totalSeconds: Clocks.seconds(since: started),
                cpuSeconds: Clocks.processCPU() - cpuStarted, cpuSecondsPerPart: cpuParts))
    }
}
