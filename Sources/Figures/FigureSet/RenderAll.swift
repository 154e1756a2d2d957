import Analysis
import Foundation

extension Figures {
    /// Activations of a few test digits, which analysis.json does not hold:
    /// the lead runs the host network on them and hands the result here.
    public struct ActivationSample: Sendable {
        /// The digits' pixels, count × 28 × 28 row-major, any scale (drawn in grey from min to max).
        public var images: [Double]
        /// The digits' classes, 0–9.
        public var labels: [Int]
        /// conv1 pre-activations, count × 8 × 26 × 26 (NCHW).
        public var conv1: [Double]
        /// conv2 pre-activations, count × 16 × 11 × 11 (NCHW).
        public var conv2: [Double]

        public var count: Int { labels.count }

        public init(images: [Double], labels: [Int], conv1: [Double], conv2: [Double]) {
            self.images = images
            self.labels = labels
            self.conv1 = conv1
            self.conv2 = conv2
        }

        /// From a host forward pass (`HostReferenceNet.forward` or `AnalyticalNet.forward`) on the same digits.
        public init(images: [Double], labels: [Int], activations: NetworkActivations) {
            self.init(images: images, labels: labels, conv1: activations.conv1, conv2: activations.conv2)
        }
    }

    /// Every figure the inputs allow, in report order: training curves (with
    /// a history), spectra, energy, reconstruction error, accuracy against
    /// rank (when the report holds the sweep), eigenfilters, low-rank filters,
    /// U, ReLU mask counts, the truncated layers' masks against Cover's bound,
    /// and (when the report lists them) the most common
    /// masks, and, with a sample, the projections and feature maps.
    public static func figures(
        report: AnalysisReport, history: TrainingHistory?, sample: ActivationSample?,
        digitsShown: Int = 4
    ) throws -> [Figure] {
        var figures: [Figure] = []
        if let history { figures.append(try trainingCurves(history)) }
        let spectra = report.spectra
        figures.append(try singularValues(spectra.map { SigmaSeries(name: $0.layer, sigma: $0.singularValues) }))
        figures.append(
            try cumulativeEnergy(spectra.map { EnergySeries(name: $0.layer, cumulativeEnergy: $0.cumulativeEnergy) }))
        figures.append(
            try reconstructionError(
                report.lowRank.layers.map { l in
                    ReconstructionSeries(
                        name: l.layer, ranks: l.rows.map(\.rank),
                        fromMatrices: l.rows.map(\.relativeFrobeniusErrorFromMatrix),
                        fromSigma: l.rows.map(\.relativeFrobeniusErrorFromSigma))
                }))
        if let sweep = report.lowRank.sweep {
            var curves: [AccuracySeries] = report.lowRank.layers.compactMap { l in
                let accuracy = l.rows.compactMap(\.testAccuracy)
                guard accuracy.count == l.rows.count else { return nil }
                return AccuracySeries(label: "\(l.layer) alone", ranks: l.rows.map(\.rank), accuracy: accuracy)
            }
            let same = sweep.sameRankAccuracy
            if !same.isEmpty {
                curves.append(AccuracySeries(label: "both at rank k", ranks: Array(1...same.count), accuracy: same))
            }
            if !curves.isEmpty { figures.append(try accuracyVsRank(curves, fullRankAccuracy: report.testAccuracy)) }
        }
        for s in spectra {
            figures.append(
                try eigenfilters(
                    layer: s.layer, vt: matrix(s.vt), sigma: s.singularValues,
                    inputChannels: s.eigenfilterShape[0], kernelSize: s.eigenfilterShape[1]))
        }
        for s in spectra {
            let lowRank = report.lowRank.layers.first { $0.layer == s.layer }
            figures.append(try lowRankFilterFigure(spectrum: s, lowRank: lowRank))
        }
        figures.append(try leftSingularVectors(spectra.map { (name: $0.layer, u: matrix($0.u)) }))
        figures.append(
            try reluMaskCounts(
                report.reluRegions.map { r in
                    MaskCountPanel(
                        name: r.layer, units: r.units, rank: r.rank, coverBound: r.coverBound.map(Double.init),
                        observed: [
                            (
                                "\(grouped(r.randomTrainingPatches.patches)) random training patches",
                                r.randomTrainingPatches.distinctMasks
                            ),
                            ("all \(grouped(r.testSetPatches.patches)) test patches", r.testSetPatches.distinctMasks),
                        ])
                }))
        figures.append(
            try truncatedMaskCounts(
                report.reluRegions.map { r in
                    TruncatedMaskPanel(
                        name: r.layer, units: r.units, coverBound: r.coverBound.map(Double.init),
                        observed: [
                            (
                                "\(grouped(r.truncatedRandomTrainingPatches.patches)) random training patches",
                                r.truncatedRandomTrainingPatches.distinctMasks
                            ),
                            (
                                "all \(grouped(r.truncatedTestSetPatches.patches)) test patches",
                                r.truncatedTestSetPatches.distinctMasks
                            ),
                        ])
                }))
        // The most common masks are listed only when the analysis kept some (mostCommonMaskCount > 0).
        if report.reluRegions.allSatisfy({ !$0.testSetPatches.mostCommon.isEmpty }) {
            figures.append(
                try reluMaskFrequencies(
                    report.reluRegions.map { r in
                        MaskFrequencyPanel(
                            name: r.layer, source: "all test patches",
                            masks: r.testSetPatches.mostCommon.map { (mask: $0.bits, count: $0.count) },
                            total: r.testSetPatches.patches)
                    }))
        }
        if let layerOperators = report.layerOperators { figures += try layerOperatorFigures(layerOperators) }
        if let sample {
            let g = TinyConvNetGeometry.self
            let layers: [(String, [Double], Int, Int)] = [
                ("conv1", sample.conv1, g.conv1Channels, g.conv1OutputSide * g.conv1OutputSide),
                ("conv2", sample.conv2, g.conv2Channels, g.conv2OutputSide * g.conv2OutputSide),
            ]
            var panels: [ProjectionPanel] = []
            for (name, values, channels, positions) in layers {
                guard let s = spectra.first(where: { $0.layer == name }) else { continue }
                panels += try projectionPanels(
                    layer: name, preActivations: values, count: sample.count, channels: channels,
                    positions: positions, u: s.u, classes: sample.labels)
            }
            figures.append(
                try activationProjections(
                    panels, layerDescription: "layer output (the channel vector a) at its 8 strongest positions"))
            figures.append(try digitFeatureMaps(digitMaps(sample, count: digitsShown), afterReLU: false))
        }
        return figures
    }

    /// Renders `figures(report:history:sample:)` into `directory` as
    /// `<name>.<format>` files (atomically) and returns them in report order.
    public static func renderAll(
        report: AnalysisReport, history: TrainingHistory?, sample: ActivationSample?,
        to directory: URL, format: FigureFormat = .png
    ) throws -> [FigureFile] {
        try figures(report: report, history: history, sample: sample).map {
            try $0.write(to: directory, format: format)
        }
    }

    /// Rows (as in the report) → a MatrixValues.
    static func matrix(_ rows: [[Double]]) -> MatrixValues {
        MatrixValues(rows: rows.count, columns: rows.first?.count ?? 0, values: rows.flatMap { $0 })
    }

    /// The learned filters W = U·diag(σ)·Vᵀ (from the report's factors, equal to
    /// the checkpoint's W within the reported reconstruction error, < 1e-12)
    /// beside W_k for a few k: 1, 2, 4 (1, 4 for a layer of rank > 8) and the
    /// 95%-energy count, each below the full rank.
    static func lowRankFilterFigure(spectrum s: LayerSpectrum, lowRank: LowRankLayer?) throws -> Figure {
        let u = Matrix(rows: s.u.count, columns: s.u.first?.count ?? 0, values: s.u.flatMap { $0 })
        let vt = Matrix(rows: s.vt.count, columns: s.vt.first?.count ?? 0, values: s.vt.flatMap { $0 })
        let r = s.singularValues.count
        func truncated(_ k: Int) -> MatrixValues {
            let w = u.leadingColumns(k).scalingColumns(by: Array(s.singularValues[0..<k])) * vt.leadingRows(k)
            return MatrixValues(rows: w.rows, columns: w.columns, values: w.values)
        }
        // Three or four columns of reconstructions: more would shrink the wide conv2 tiles below readable size.
        let candidates = (r > 8 ? [1, 4] : [1, 2, 4]) + [s.componentsFor95PercentEnergy]
        let ranks = Array(Set(candidates.filter { $0 < r })).sorted()
        let errors = ranks.map { k in
            lowRank?.rows.first { $0.rank == k }?.relativeFrobeniusErrorFromMatrix ?? .nan
        }
        return try lowRankFilters(
            layer: s.layer, weights: truncated(r), reconstructions: ranks.map { ($0, truncated($0)) },
            relativeErrors: errors, inputChannels: s.eigenfilterShape[0], kernelSize: s.eigenfilterShape[1])
    }

    /// Points of each digit's layer output in the plane of u₁, u₂: at the
    /// `positionsPerDigit` positions where the pre-activation a (the channel
    /// vector) is largest in norm — the digit's strokes, not its blank
    /// background, which maps to a = 0 — the point (u₁ᵀa, u₂ᵀa) before the
    /// ReLU and (u₁ᵀReLU(a), u₂ᵀReLU(a)) after it, coloured by the digit's class.
    /// - Parameters:
    ///   - preActivations: count × channels × positions (NCHW, the plane flattened).
    ///   - u: U as rows (channels × r); columns 0 and 1 are u₁ and u₂.
    public static func projectionPanels(
        layer: String, preActivations: [Double], count: Int, channels: Int, positions: Int,
        u: [[Double]], classes: [Int], positionsPerDigit: Int = 8
    ) throws -> [ProjectionPanel] {
        let name = "activation_projections"
        try require(
            preActivations.count == count * channels * positions, name,
            "\(layer): \(preActivations.count) values for \(count)×\(channels)×\(positions)")
        try require(classes.count == count, name, "\(layer): \(classes.count) classes for \(count) digits")
        try require(
            u.count == channels && u.allSatisfy { $0.count >= 2 }, name, "\(layer): U must be \(channels)×r with r ≥ 2")
        var before = (x: [Double](), y: [Double]())
        var after = (x: [Double](), y: [Double]())
        var pointClasses: [Int] = []
        for n in 0..<count {
            func a(_ c: Int, _ p: Int) -> Double { preActivations[(n * channels + c) * positions + p] }
            let norms = (0..<positions).map { p in (0..<channels).reduce(0.0) { $0 + a($1, p) * a($1, p) } }
            // Strongest positions first; ties by position, so that the choice is deterministic.
            let strongest = (0..<positions).sorted { norms[$0] != norms[$1] ? norms[$0] > norms[$1] : $0 < $1 }
                .prefix(positionsPerDigit).filter { norms[$0] > 0 }
            for p in strongest {
                var b = (0.0, 0.0)
                var h = (0.0, 0.0)
                for c in 0..<channels {
                    let v = a(c, p)
                    let r = max(0, v)
                    b.0 += u[c][0] * v
                    b.1 += u[c][1] * v
                    h.0 += u[c][0] * r
                    h.1 += u[c][1] * r
                }
                before.x.append(b.0)
                before.y.append(b.1)
                after.x.append(h.0)
                after.y.append(h.1)
                pointClasses.append(classes[n])
            }
        }
        return [
            ProjectionPanel(
                title: "\(layer), before ReLU", x: before.x, y: before.y, classes: pointClasses,
                xLabel: "u₁ᵀa", yLabel: "u₂ᵀa"),
            ProjectionPanel(
                title: "\(layer), after ReLU", x: after.x, y: after.y, classes: pointClasses,
                xLabel: "u₁ᵀReLU(a)", yLabel: "u₂ᵀReLU(a)"),
        ]
    }

    /// The first `count` digits of the sample with their conv1 pre-activation maps
    /// (one digit of each class first, when the sample has them, so that the rows differ).
    static func digitMaps(_ sample: ActivationSample, count: Int) throws -> [DigitFeatureMaps] {
        let g = TinyConvNetGeometry.self
        let side = g.imageSide
        let mapSide = g.conv1OutputSide
        let channels = g.conv1Channels
        let n = sample.count
        try require(
            sample.images.count == n * side * side && sample.conv1.count == n * channels * mapSide * mapSide,
            "digit_feature_maps",
            "sample has \(sample.images.count) pixels and \(sample.conv1.count) conv1 values for \(n) digits")
        var chosen: [Int] = []
        for i in 0..<n where chosen.count < count && !chosen.contains(where: { sample.labels[$0] == sample.labels[i] })
        {
            chosen.append(i)
        }
        for i in 0..<n where chosen.count < count && !chosen.contains(i) { chosen.append(i) }
        return chosen.map { i in
            DigitFeatureMaps(
                label: sample.labels[i],
                image: MatrixValues(
                    rows: side, columns: side, values: Array(sample.images[(i * side * side)..<((i + 1) * side * side)])
                ),
                maps: (0..<channels).map { c in
                    let start = (i * channels + c) * mapSide * mapSide
                    return MatrixValues(
                        rows: mapSide, columns: mapSide,
                        values: Array(sample.conv1[start..<(start + mapSide * mapSide)]))
                })
        }
    }
}
