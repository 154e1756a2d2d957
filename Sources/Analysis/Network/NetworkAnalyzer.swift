import Foundation
import NetIO

/// The per-layer analysis of any ``FoldedNetwork``: one code path over its
/// list of conv layers and its linear layer, whatever the depth.
///
/// - Phase 2, per layer: the SVD of W̃ (BatchNorm folded) and of W, energies,
///   90/95/99% ranks, stable and entropy ranks, the decomposition's identities.
/// - Phases 1, 3 and 4, one pass over the test images: the folded float64
///   network against the network under test (logits, 1e-4, and predictions);
///   the network in SVD coordinates (z = Vᵀp, s = σ⊙z, a = Us + b̃ for every
///   layer) against the folded one (1e-10) and the device (1e-4); every
///   layer's W̃p + b̃ on the device's own input of the layer against the
///   device's output of the layer (conv + BatchNorm in eval mode, 1e-4).
/// - Phase 5: test accuracy with one layer truncated to rank k, the others
///   full, and with every layer truncated at an energy threshold, on the
///   host in float64.
///
/// - Phase 6, per conv layer a ReLU follows: the distinct masks of
///   W̃p + b̃ and of its rank-k truncations over sampled patches, against
///   the region bound (``MaskPhase``).
/// - Phase 9, per conv layer: the layer as an operator on its input
///   (``OperatorPhase``), and the residual blocks' and the network's
///   Lipschitz bounds.
public struct NetworkAnalyzer {
    public let network: FoldedNetwork
    public let testSet: Dataset
    public let options: NetworkAnalysisOptions

    public init(network: FoldedNetwork, testSet: Dataset, options: NetworkAnalysisOptions = NetworkAnalysisOptions()) {
        self.network = network
        self.testSet = testSet
        self.options = options
    }

    /// Phase 2 of one layer, without phases 3–5's fields.
    struct Spectra {
        var folded: SingularValueDecomposition
        var record: NetworkLayerRecord
    }

    /// The whole analysis; `progress` receives one line per step.
    /// - Throws: ``NetworkAnalysisError`` for bad options, a data set that
    ///   does not fit, an all-zero layer or a network output of the wrong
    ///   size; ``LAPACKError``; the network under test's errors.
    public func run(device: LayeredNetworkUnderTest? = nil, progress: (String) -> Void = { _ in }) throws
        -> NetworkAnalysisReport
    {
        guard testSet.imageSize == network.inputSize, testSet.count > 0 else {
            throw NetworkAnalysisError.invalidInput(
                "data set \(testSet.name): \(testSet.count) images of \(testSet.imageSize) values, "
                    + "the model takes \(network.summary.input)")
        }
        guard options.deviceBatch > 0, options.chunk > 0, options.threads > 0, options.everyRankUpTo >= 0 else {
            throw NetworkAnalysisError.invalidInput("analysis options: batch, chunk and threads must be positive")
        }
        guard (options.maskImages ?? 0) >= 0, (options.maskPatches ?? 1) > 0 else {
            throw NetworkAnalysisError.invalidInput(
                "analysis options: mask images must be ≥ 0 and mask patches positive (got "
                    + "\(options.maskImages.map(String.init) ?? "default") and "
                    + "\(options.maskPatches.map(String.init) ?? "default"))")
        }
        let started = Clocks.wall()
        var timings: [NetworkPhaseTime] = []
        let startedCPU = Clocks.processCPU()
        var clock = (wall: started, cpu: startedCPU)
        func lap(_ phase: String) {
            let now = (wall: Clocks.wall(), cpu: Clocks.processCPU())
            timings.append(
                NetworkPhaseTime(phase: phase, seconds: now.wall - clock.wall, cpuSeconds: now.cpu - clock.cpu))
            clock = now
        }

        progress("phase 2: SVD of \(network.layers.count) layers (BatchNorm folded)")
        var spectra = try network.layers.map(Self.spectra)
        lap("phase 2: SVD per layer")

        let images = min(options.images ?? testSet.count, testSet.count)
        progress(
            "phases 1, 3, 4: \(images) test images through the folded network, SVD coordinates"
                + (device == nil ? "" : " and the network under test"))
        let pass = try testSetPass(images: images, svds: spectra.map(\.folded), device: device)
        for l in spectra.indices {
            spectra[l].record.svdCoordinatesMaxAbsDifference = pass.svdLayer[l]
            spectra[l].record.deviceMaxAbsDifference = device == nil ? nil : pass.deviceLayer[l]
        }
        let n = Double(images)
        let comparison = NetworkComparison(
            images: images, hostAccuracy: Double(pass.foldedCorrect) / n,
            svdLogitsMaxAbsDifference: pass.svdLogits, svdPredictionMismatches: pass.svdMismatches,
            deviceAccuracy: device == nil ? nil : Double(pass.deviceCorrect) / n,
            foldedVersusDeviceMaxAbsDifference: device == nil ? nil : pass.deviceLogits,
            foldedVersusDevicePredictionMismatches: device == nil ? nil : pass.deviceMismatches,
            svdVersusDeviceMaxAbsDifference: device == nil ? nil : pass.svdDeviceLogits,
            svdVersusDevicePredictionMismatches: device == nil ? nil : pass.svdDeviceMismatches)
        lap("phases 1, 3, 4: test-set pass (the host's float64 and the network under test)")
        timings.append(
            NetworkPhaseTime(
                phase: "  of which the network under test (wall)", seconds: pass.deviceSeconds, cpuSeconds: nil))

        let sweepImages = min(options.sweepImages ?? testSet.count, testSet.count)
        progress("phase 5: accuracy with one layer truncated, and at energy thresholds, on \(sweepImages) images")
        let sweep = truncationSweep(images: sweepImages, spectra: spectra)
        for l in spectra.indices { spectra[l].record.truncation = sweep.perLayer[l] }
        lap("phase 5: truncated accuracies")

        let maskImages = min(options.maskImages ?? 256, testSet.count)
        let maskLayers = MaskPhase.reluLayers(network)
        if maskImages > 0 && !maskLayers.isEmpty {
            let patches = options.maskPatches ?? 4096
            progress(
                "phase 6: ReLU masks of \(maskLayers.count) layers, \(patches) patches each from \(maskImages) "
                    + "test images")
            let censuses = MaskPhase.run(
                network, layers: maskLayers, svds: spectra.map(\.folded),
                numericalRanks: spectra.map(\.record.numericalRank), set: testSet, images: maskImages,
                patches: patches, seed: 0, chunk: options.chunk, threads: options.threads)
            for (l, census) in zip(maskLayers, censuses) { spectra[l].record.reluMasks = census }
            lap("phase 6: ReLU masks and the region bound")
        }

        let denseColumns = options.denseOperatorColumns ?? OperatorPhase.denseColumnLimit
        progress(
            "phase 9: every conv layer as an operator (circular spectrum, norm bracket, dense SVD up to "
                + "\(denseColumns) columns), Lipschitz bounds")
        var operators = try OperatorPhase.run(network, threads: options.threads, denseColumns: denseColumns)
        lap("phase 9: operators and Lipschitz bounds")
        let gradientImages = min(options.gradientImages ?? 512, testSet.count)
        if let differentiable = device as? DifferentiableNetworkUnderTest, gradientImages > 0 {
            let count = gradientImages
            progress("phase 9: ‖∂logits/∂x‖₂ on \(count) test images (\(network.classes) backward passes a batch)")
            operators.measuredGradient = try OperatorPhase.measureInputGradient(
                differentiable, set: testSet, count: count, batch: options.deviceBatch, classes: network.classes,
                bound: operators.networkBound)
            lap("phase 9: measured input gradients (the network under test)")
        }
        let dataAwareImages = min(options.dataAwareImages ?? 1000, testSet.count)
        var dataAware: NetworkDataAware?
        if dataAwareImages > 0 {
            progress(
                "phase 9: data-aware low rank of every conv layer on the patches of \(dataAwareImages) test images")
            dataAware = try NetworkDataAware.run(
                network, images: testSet.normalizedImages(0..<dataAwareImages), count: dataAwareImages,
                source: "the patches of the first \(dataAwareImages) test images", threads: options.threads)
            lap("phase 9: data-aware low rank")
        }

        let regions = try regionsAlongLines(progress: progress)
        if regions != nil { lap("phase 9: regions along lines") }

        let layers = spectra.map(\.record)
        let total = Clocks.seconds(since: started)
        timings.append(
            NetworkPhaseTime(phase: "total", seconds: total, cpuSeconds: Clocks.processCPU() - startedCPU))
        let checks =
            Self.checks(
                layers: layers, comparison: comparison, device: device != nil,
                fullRankMismatches: sweep.fullRankMismatches, sweepImages: sweepImages)
            + Self.operatorChecks(operators) + (dataAware?.checks ?? [])
            + (regions.map(NetworkRegionsAlongLines.checks) ?? [])
        var report = NetworkAnalysisReport(
            model: network.name, testSet: DatasetSummary(name: testSet.name, count: testSet.count), options: options,
            foldedBatchNorms: network.layers.compactMap(\.batchNorm), layers: layers, comparison: comparison,
            sweepImages: sweepImages, sweepBaselineAccuracy: sweep.baselineAccuracy, thresholds: sweep.thresholds,
            operators: operators,
            phasesNotRun: [
                PhaseNotRun(phase: "7", reason: "Frobenius and operator identities run for TinyConvNet only")
            ]
                + (maskImages > 0 && !maskLayers.isEmpty
                    ? [] : [PhaseNotRun(phase: "6", reason: "no mask images, or no conv layer followed by a ReLU")]),
            checks: checks, timings: timings)
        report.dataAware = dataAware
        report.regions = regions
        return report
    }

    // MARK: Phase 9, regions along lines

    /// The exact pieces along ``NetworkAnalysisOptions/regionPairs`` segments
    /// of each kind (nil when 0).
    func regionsAlongLines(progress: (String) -> Void) throws -> NetworkRegionsReport? {
        let pairs = options.regionPairs ?? 2
        guard pairs > 0 else { return nil }
        let regionOptions = NetworkRegionsOptions(
            pairsPerGroup: pairs, samplesPerSegment: options.regionSamples ?? 128,
            span: options.regionSpan ?? 1.0 / 64, threads: options.threads)
        progress(
            "phase 9: regions along lines, \(pairs) same-class and \(pairs) different-class segments, the middle "
                + "\(regionOptions.span) of each (exact pieces, \(regionOptions.samplesPerSegment) samples on one of each)"
        )
        return try NetworkRegionsAlongLines.run(network: network, testSet: testSet, options: regionOptions)
    }

    // MARK: Phase 2

    static func spectra(_ layer: AffineLayer) throws -> Spectra {
        let w = layer.folded
        guard w.maxAbsoluteValue > 0 else {
            throw NetworkAnalysisError.unsupported(
                layer: layer.name, reason: "the (folded) weight is all zeros; its SVD, energies and ranks are undefined"
            )
        }
        let svd = try SingularValueDecomposition(w, context: "\(layer.name) W̃ (\(w.rows)×\(w.columns))")
        let unfolded = try SingularValueDecomposition(
            layer.weight, context: "\(layer.name) W (\(w.rows)×\(w.columns))")
        let spectrum = try LayerSpectrum.compute(layer: layer.name, weightShape: layer.weightShape, w: w, svd: svd)
        let identities = SVDIdentities.compute(layer: layer.name, w: w, svd: svd)
        let (kind, stride, padding, input, output): (String, Int, Int, [Int], [Int])
        switch layer.kind {
        case .conv(let spec, let h, let wd, let oh, let ow):
            (kind, stride, padding) = ("conv", spec.stride, spec.padding)
            (input, output) = ([spec.inChannels, h, wd], [spec.outChannels, oh, ow])
        case .linear:
            (kind, stride, padding, input, output) = ("linear", 1, 0, [w.columns], [w.rows])
        }
        let record = NetworkLayerRecord(
            name: layer.name, kind: kind, batchNorm: layer.batchNorm, shape: layer.weightShape,
            matrixShape: [w.rows, w.columns], stride: stride, padding: padding, inputShape: input,
            outputShape: output, sigma: spectrum.singularValues, unfoldedSigma: unfolded.singularValues,
            cumulativeEnergy: spectrum.cumulativeEnergy, rank90: spectrum.componentsFor90PercentEnergy,
            rank95: spectrum.componentsFor95PercentEnergy, rank99: spectrum.componentsFor99PercentEnergy,
            stableRank: spectrum.stableRank, entropyEffectiveRank: spectrum.entropyEffectiveRank,
            numericalRank: spectrum.numericalRank,
            reconstructionError: identities.reconstructionMaxAbsError / w.maxAbsoluteValue,
            uOrthogonalityError: identities.uOrthogonalityError, vOrthogonalityError: identities.vOrthogonalityError,
            sigmaVersusGramError: spectrum.sigmaVersusGramEigenvaluesError, svdCoordinatesMaxAbsDifference: .nan,
            deviceMaxAbsDifference: nil, truncation: [])
        return Spectra(folded: svd, record: record)
    }

    // MARK: Phases 1, 3, 4

    struct PassStats {
        var foldedCorrect = 0, deviceCorrect = 0
        var svdLogits = 0.0, svdMismatches = 0
        var deviceLogits = 0.0, deviceMismatches = 0
        var svdDeviceLogits = 0.0, svdDeviceMismatches = 0
        var svdLayer: [Double]
        var deviceLayer: [Double]
        var deviceSeconds = 0.0

        init(layers: Int) {
            svdLayer = [Double](repeating: 0, count: layers)
            deviceLayer = [Double](repeating: 0, count: layers)
        }

        mutating func merge(_ o: PassStats) {
            foldedCorrect += o.foldedCorrect
            deviceCorrect += o.deviceCorrect
            svdLogits = worst(svdLogits, o.svdLogits)
            svdMismatches += o.svdMismatches
            deviceLogits = worst(deviceLogits, o.deviceLogits)
            deviceMismatches += o.deviceMismatches
            svdDeviceLogits = worst(svdDeviceLogits, o.svdDeviceLogits)
            svdDeviceMismatches += o.svdDeviceMismatches
            for l in svdLayer.indices {
                svdLayer[l] = worst(svdLayer[l], o.svdLayer[l])
                deviceLayer[l] = worst(deviceLayer[l], o.deviceLayer[l])
            }
        }
    }

    func testSetPass(images: Int, svds: [SingularValueDecomposition], device: LayeredNetworkUnderTest?) throws
        -> PassStats
    {
        let folded = HostNetworkForward.folded(network)
        let analytical = HostNetworkForward(network, operators: svds.map { .truncated($0, rank: $0.rank) })
        let classes = network.classes
        let layers = network.layers
        let size = network.inputSize
        var total = PassStats(layers: layers.count)
        var start = 0
        while start < images {
            let count = min(options.deviceBatch, images - start)
            let x = testSet.normalizedImages(start..<(start + count))
            let labels = (start..<(start + count)).map { Int(testSet.labels[$0]) }
            var deviceLogits: [Float]?
            var deviceRows: [Int: [Float]] = [:]
            if let device {
                let t0 = Clocks.wall()
                let logits = try device.forward(normalizedImages: x, count: count)
                guard logits.count == count * classes else {
                    throw NetworkAnalysisError.networkOutputSize(
                        output: "logits", expected: count * classes, actual: logits.count)
                }
                deviceLogits = logits
                for layer in layers {
                    for row in [layer.inputRow, layer.outputRow].compactMap({ $0 }) where deviceRows[row] == nil {
                        let values = try device.output(row: row)
                        let expected = count * network.summary.layers[row].output.elementCount
                        guard values.count == expected else {
                            throw NetworkAnalysisError.networkOutputSize(
                                output: network.summary.layers[row].path, expected: expected, actual: values.count)
                        }
                        deviceRows[row] = values
                    }
                }
                total.deviceSeconds += Clocks.seconds(since: t0)
            }
            let chunks = (count + options.chunk - 1) / options.chunk
            let parts = parallelMap(chunks, threads: options.threads) { c -> PassStats in
                let lo = c * options.chunk
                let hi = min(lo + options.chunk, count)
                let b = hi - lo
                var s = PassStats(layers: layers.count)
                let input = x[(lo * size)..<(hi * size)].map(Double.init)
                // Both passes channel-major inside: the layers' outputs share one layout.
                let chunk = ChunkActivations(imageMajor: input, batch: b)
                var foldedOutputs = [[Double]](repeating: [], count: layers.count)
                let fLogits = folded.forward(
                    chunk, HostNetworkForward.Hooks(record: { foldedOutputs[$0] = $1.values })
                ).imageMajor
                var svdOutputs = [[Double]](repeating: [], count: layers.count)
                let aLogits = analytical.forward(
                    chunk, HostNetworkForward.Hooks(record: { svdOutputs[$0] = $1.values })
                ).imageMajor
                for l in layers.indices { s.svdLayer[l] = maxAbsDifference(svdOutputs[l], foldedOutputs[l]) }
                s.svdLogits = maxAbsDifference(aLogits, fLogits)
                for i in 0..<b {
                    let f = argmax(fLogits, i * classes, classes)
                    let a = argmax(aLogits, i * classes, classes)
                    if f == labels[lo + i] { s.foldedCorrect += 1 }
                    if a != f { s.svdMismatches += 1 }
                    if let d = deviceLogits {
                        let dv = d[((lo + i) * classes)..<((lo + i + 1) * classes)].map(Double.init)
                        let dp = argmax(dv, 0, classes)
                        if dp == labels[lo + i] { s.deviceCorrect += 1 }
                        if dp != f { s.deviceMismatches += 1 }
                        if dp != a { s.svdDeviceMismatches += 1 }
                        let fl = Array(fLogits[(i * classes)..<((i + 1) * classes)])
                        let al = Array(aLogits[(i * classes)..<((i + 1) * classes)])
                        s.deviceLogits = worst(s.deviceLogits, maxAbsDifference(dv, fl))
                        s.svdDeviceLogits = worst(s.svdDeviceLogits, maxAbsDifference(dv, al))
                    }
                }
                if deviceLogits != nil {
                    for (l, layer) in layers.enumerated() {
                        let inSize = layer.inputSize
                        let layerInput: [Double] =
                            layer.inputRow.map { deviceRows[$0]![(lo * inSize)..<(hi * inSize)].map(Double.init) }
                            ?? input
                        let host = folded.layerOutput(l, layerInput, batch: b)
                        let outSize = layer.outputSize
                        let dev = deviceRows[layer.outputRow]![(lo * outSize)..<(hi * outSize)].map(Double.init)
                        s.deviceLayer[l] = maxAbsDifference(dev, host)
                    }
                }
                return s
            }
            for p in parts { total.merge(p) }
            start += count
        }
        return total
    }

    // MARK: Phase 5

    struct Sweep {
        var perLayer: [[RankAccuracy]]
        var thresholds: [ThresholdTruncation]
        var baselineAccuracy: Double
        /// Images whose prediction with any single layer at full rank k = r
        /// (through its SVD factors) differs from the folded network's.
        var fullRankMismatches: Int
    }

    /// One variant of the network: its forward pass, the top-level step it
    /// differs from the folded network at, and where its count goes.
    private struct Variant {
        var forward: HostNetworkForward
        var start: Int
        var layer: Int?
        var k: Int
        var fullRank: Bool
        /// Layers inside the step at `start` whose outputs the folded pass's
        /// serve unchanged (they do not depend on the truncated layer).
        var reuse: Set<Int> = []
    }

    func truncationSweep(images: Int, spectra: [Spectra]) -> Sweep {
        let base = HostNetworkForward.folded(network)
        let baseOperators = base.operators
        let start = network.layers.indices.map { l in
            network.steps.firstIndex { Self.holds($0, l) }!
        }
        var variants: [Variant] = []
        for (l, s) in spectra.enumerated() {
            for k in options.sweptRanks(rank: s.folded.rank) {
                var ops = baseOperators
                ops[l] = .truncated(s.folded, rank: k)
                variants.append(
                    Variant(
                        forward: HostNetworkForward(network, operators: ops), start: start[l], layer: l, k: k,
                        fullRank: k == s.folded.rank,
                        reuse: Set(Self.layers(in: [network.steps[start[l]]], independentOf: l))))
            }
        }
        let thresholdRanks = options.energyThresholds.map { t in
            spectra.map { componentsFor(energy: t, cumulative: $0.record.cumulativeEnergy) }
        }
        for ranks in thresholdRanks {
            let ops = spectra.enumerated().map { LayerOperator.truncated($0.element.folded, rank: ranks[$0.offset]) }
            variants.append(
                Variant(
                    forward: HostNetworkForward(network, operators: ops), start: 0, layer: nil, k: 0, fullRank: false))
        }
        let reusable = variants.reduce(into: Set<Int>()) { $0.formUnion($1.reuse) }
        let classes = network.classes
        let chunks = (images + options.chunk - 1) / options.chunk
        // Per chunk: [baseline correct, then per variant correct, then full-rank mismatches].
        let counts = parallelMap(chunks, threads: options.threads) { c -> [Int] in
            let lo = c * options.chunk
            let hi = min(lo + options.chunk, images)
            let b = hi - lo
            let input = testSet.normalizedImages(lo..<hi).map(Double.init)
            var stepInputs = [ChunkActivations?](repeating: nil, count: network.steps.count)
            var outputs = [Int: ChunkActivations]()
            let logits = base.forward(
                ChunkActivations(imageMajor: input, batch: b),
                HostNetworkForward.Hooks(record: { if reusable.contains($0) { outputs[$0] = $1 } }),
                topLevelInputs: { stepInputs[$0] = $1 }
            ).imageMajor
            let labels = (lo..<hi).map { Int(testSet.labels[$0]) }
            let predictions = (0..<b).map { argmax(logits, $0 * classes, classes) }
            var out = [Int](repeating: 0, count: variants.count + 2)
            out[0] = zip(predictions, labels).filter { $0 == $1 }.count
            for (v, variant) in variants.enumerated() {
                let reuse = variant.reuse
                let l = variant.forward.forward(
                    stepInputs[variant.start]!, from: variant.start,
                    HostNetworkForward.Hooks(reuse: { reuse.contains($0) ? outputs[$0] : nil })
                ).imageMajor
                for i in 0..<b {
                    let p = argmax(l, i * classes, classes)
                    if p == labels[i] { out[v + 1] += 1 }
                    if variant.fullRank && p != predictions[i] { out[variants.count + 1] += 1 }
                }
            }
            return out
        }
        var sum = [Int](repeating: 0, count: variants.count + 2)
        for c in counts { for i in sum.indices { sum[i] += c[i] } }
        let n = Double(images)
        var perLayer = [[RankAccuracy]](repeating: [], count: spectra.count)
        var thresholds: [ThresholdTruncation] = []
        for (v, variant) in variants.enumerated() {
            let accuracy = Double(sum[v + 1]) / n
            if let l = variant.layer {
                perLayer[l].append(RankAccuracy(k: variant.k, accuracy: accuracy))
            } else {
                let t = thresholds.count
                thresholds.append(
                    ThresholdTruncation(
                        energy: options.energyThresholds[t], ranks: thresholdRanks[t], accuracy: accuracy))
            }
        }
        return Sweep(
            perLayer: perLayer, thresholds: thresholds, baselineAccuracy: Double(sum[0]) / n,
            fullRankMismatches: sum[variants.count + 1])
    }

    /// The layers inside `steps` whose outputs do not depend on layer `l`'s
    /// when `steps` get the same input: those of the steps before the one
    /// that holds l and, inside a residual block that holds it, those of the
    /// branch without it and those before l in its own branch.
    static func layers(in steps: [FoldedNetwork.Step], independentOf l: Int) -> [Int] {
        var result: [Int] = []
        for s in steps {
            if holds(s, l) {
                if case .residual(let body, let shortcut, _) = s {
                    if body.contains(where: { holds($0, l) }) {
                        result += layers(in: body, independentOf: l) + allLayers(shortcut ?? [])
                    } else {
                        result += allLayers(body) + layers(in: shortcut ?? [], independentOf: l)
                    }
                }
                return result
            }
            result += allLayers([s])
        }
        return result
    }

    private static func allLayers(_ steps: [FoldedNetwork.Step]) -> [Int] {
        steps.flatMap { s -> [Int] in
            switch s {
            case .affine(let i): return [i]
            case .residual(let body, let shortcut, _): return allLayers(body) + allLayers(shortcut ?? [])
            default: return []
            }
        }
    }

    private static func holds(_ step: FoldedNetwork.Step, _ layer: Int) -> Bool {
        switch step {
        case .affine(let i): return i == layer
        case .residual(let body, let shortcut, _):
            return body.contains { holds($0, layer) } || (shortcut ?? []).contains { holds($0, layer) }
        default: return false
        }
    }

    // MARK: Checks

    static func checks(
        layers: [NetworkLayerRecord], comparison c: NetworkComparison, device: Bool, fullRankMismatches: Int,
        sweepImages: Int
    ) -> [Check] {
        var checks = [Check]()
        func add(
            _ id: String, _ kind: CheckKind, _ description: String, _ value: Double, _ relation: CheckRelation,
            _ limit: Double
        ) {
            checks.append(
                Check(id: id, description: description, value: value, relation: relation, limit: limit, kind: kind))
        }
        for l in layers {
            add(
                "\(l.name).reconstruction", .consistency, "\(l.name) max|UΣVᵀ − W̃| / max|W̃|", l.reconstructionError,
                .lessThan, 1e-12)
            add(
                "\(l.name).u-orthogonality", .consistency, "\(l.name) ‖UᵀU − I‖_F", l.uOrthogonalityError, .lessThan,
                1e-12)
            add(
                "\(l.name).v-orthogonality", .consistency, "\(l.name) ‖VᵀV − I‖_F", l.vOrthogonalityError, .lessThan,
                1e-12)
            add(
                "\(l.name).sigma-vs-gram", .independent, "\(l.name) max|σᵢ² − λᵢ(W̃ᵀW̃)| / σ₁² (dgesdd vs dsyevd)",
                l.sigmaVersusGramError, .lessThan, 1e-12)
            add(
                "\(l.name).svd-coordinates", .independent,
                "\(l.name) max|U(σ⊙Vᵀp) + b̃ − (W̃p + b̃)| over \(c.images) images (host, float64)",
                l.svdCoordinatesMaxAbsDifference, .lessThan, 1e-10)
        }
        add(
            "svd.logits", .independent, "network in SVD coordinates vs folded network, max|Δ logits| (host, float64)",
            c.svdLogitsMaxAbsDifference, .lessThan, 1e-10)
        add(
            "svd.predictions", .independent, "images where SVD-coordinate and folded predictions differ (host)",
            Double(c.svdPredictionMismatches), .equalTo, 0)
        if device {
            add(
                "folding.logits", .independent,
                "device eval-mode logits vs folded float64 network, max|Δ| over \(c.images) images",
                c.foldedVersusDeviceMaxAbsDifference ?? .nan, .lessThan, 1e-4)
            add(
                "folding.predictions", .independent, "images where device and folded-network predictions differ",
                Double(c.foldedVersusDevicePredictionMismatches ?? -1), .equalTo, 0)
            add(
                "svd.device-logits", .independent, "device logits vs network in SVD coordinates, max|Δ|",
                c.svdVersusDeviceMaxAbsDifference ?? .nan, .lessThan, 1e-4)
            add(
                "svd.device-predictions", .independent, "images where device and SVD-coordinate predictions differ",
                Double(c.svdVersusDevicePredictionMismatches ?? -1), .equalTo, 0)
            for l in layers {
                add(
                    "\(l.name).device", .independent,
                    "\(l.name) device output vs host W̃p + b̃ on the device's input, max|Δ| over \(c.images) images",
                    l.deviceMaxAbsDifference ?? .nan, .lessThan, 1e-4)
            }
        }
        checks += layers.compactMap(\.reluMasks).flatMap(MaskPhase.checks)
        if sweepImages > 0 {
            add(
                "sweep.full-rank", .independent,
                "predictions with one layer at k = r through its SVD factors that differ from the folded network's "
                    + "(\(sweepImages) images, every layer)",
                Double(fullRankMismatches), .equalTo, 0)
        }
        return checks
    }
}

extension NetworkAnalyzer {
    /// Phase 9's checks: per conv layer the bracket is ordered (power
    /// iteration's Rayleigh quotient is a lower bound, Gram iteration an
    /// upper one), and where the dense SVD exists its σ_max lies inside the
    /// bracket (a relative 1e-9 for rounding), an independent check of both
    /// iterations.
    static func operatorChecks(_ report: OperatorPhase.Report) -> [Check] {
        var checks = [Check]()
        if let g = report.measuredGradient {
            // Float32 gradients: a relative 1e-3 above the bound is rounding, not a violation.
            checks.append(
                Check(
                    id: "network.gradient-within-bound",
                    description:
                        "largest measured ‖∂logits/∂x‖₂ over the Lipschitz bound, on \(g.images) test images",
                    value: g.maxNorm / report.networkBound, relation: .lessThan, limit: 1 + 1e-3,
                    kind: .independent))
        }
        for l in report.layers {
            let b = l.bracket
            checks.append(
                Check(
                    id: "\(l.name).bracket-order",
                    description: "\(l.name) power-iteration lower − upper bound (Gram or Cholesky)",
                    value: b.lower - b.upper * (1 + 1e-9), relation: .lessThan, limit: 0, kind: .consistency))
            if let sigma = l.denseSingularValues?.first {
                checks.append(
                    Check(
                        id: "\(l.name).dense-in-bracket",
                        description:
                            "\(l.name) distance of the dense operator's σ_max outside [lower, upper], relative",
                        value: max(b.lower - sigma, sigma - b.upper, 0) / sigma, relation: .lessThan, limit: 1e-9,
                        kind: .independent))
            }
        }
        return checks
    }
}

private func worst(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : max(a, b) }

/// The first index of the largest of `count` values from `offset`.
private func argmax(_ values: [Double], _ offset: Int, _ count: Int) -> Int {
    var best = 0
    for i in 1..<count where values[offset + i] > values[offset + best] { best = i }
    return best
}
