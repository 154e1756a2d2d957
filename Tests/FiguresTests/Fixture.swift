import Analysis
import Figures
import Foundation
import NetIO
import TestSupport

/// Synthetic inputs made in the test: a small data set of drawn strokes, random
/// weights, the analysis report the real `Analyzer` makes of them, a training
/// history, and the host network's activations on a few digits.
enum Fixture {
    static let imageSide = 28

    /// `count` 28×28 images: digit class c is a bright bar through the centre at
    /// angle c·18°, with a little seeded noise, so that the classes differ.
    static func dataset(name: String, count: Int, seed: UInt64) -> Dataset {
        var g = SeededRandom(seed: seed)
        var pixels = [UInt8](repeating: 0, count: count * imageSide * imageSide)
        var labels = [UInt8]()
        for n in 0..<count {
            let c = n % 10
            labels.append(UInt8(c))
            let angle = Double(c) * .pi / 10
            for t in stride(from: -9.0, through: 9.0, by: 0.25) {
                let x = Int((13.5 + t * cos(angle)).rounded())
                let y = Int((13.5 + t * sin(angle)).rounded())
                for (dx, dy) in [(0, 0), (1, 0), (0, 1)]
                where (0..<imageSide).contains(x + dx) && (0..<imageSide).contains(y + dy) {
                    pixels[n * imageSide * imageSide + (y + dy) * imageSide + x + dx] = UInt8(200 + Int(g.next() % 56))
                }
            }
        }
        return Dataset(name: name, count: count, rows: imageSide, columns: imageSide, pixels: pixels, labels: labels)
    }

    static let weights = TinyConvNetWeights(
        conv1: randomFloats(72, scale: 0.5, seed: 1),
        conv2: randomFloats(1152, scale: 0.15, seed: 2),
        fcWeight: randomFloats(4000, scale: 0.05, seed: 3),
        fcBias: randomFloats(10, scale: 0.01, seed: 4))
    static let testSet = dataset(name: "synthetic-test", count: 60, seed: 11)
    static let trainSet = dataset(name: "synthetic-train", count: 60, seed: 12)

    /// The analysis of the random weights, with the accuracy sweep (computed once per test run).
    static let report: AnalysisReport = {
        let options = AnalysisOptions(
            batchSize: 20, threads: 1, samplingSeed: 5, randomPatchCount: 100,
            mostCommonMaskCount: 10, runAccuracySweep: true)
        do {
            return try Analyzer(weights: weights, testSet: testSet, trainSet: trainSet, options: options).run()
        } catch {
            fatalError("Fixture: the analysis of synthetic weights failed: \(error)")
        }
    }()

    static let history = Figures.TrainingHistory(
        epochs: (1...5).map { e in
            Figures.EpochRecord(
                epoch: e, loss: 0.5 / Double(e), trainAccuracy: 0.9 + 0.015 * Double(e),
                testAccuracy: 0.89 + 0.014 * Double(e), seconds: 2 + 0.1 * Double(e))
        })

    /// The host network's pre-activations on the first 30 test digits.
    static let sample: Figures.ActivationSample = {
        let n = 30
        do {
            let net = try HostReferenceNet(weights: weights)
            let activations = net.forward(normalizedImages: testSet.normalizedImages(0..<n), count: n)
            return Figures.ActivationSample(
                images: testSet.pixels[0..<(n * imageSide * imageSide)].map { Double($0) / 255 },
                labels: testSet.labels[0..<n].map(Int.init), activations: activations)
        } catch {
            fatalError("Fixture: the host forward pass failed: \(error)")
        }
    }()

    /// Every figure the full inputs give.
    static func allFigures() throws -> [Figure] {
        try Figures.figures(report: report, history: history, sample: sample)
    }

    /// The figures every report carries, by name, in report order.
    static let expectedNames = [
        "training_curves", "singular_values", "cumulative_energy", "reconstruction_error", "accuracy_vs_rank",
        "conv1_eigenfilters", "conv2_eigenfilters", "conv1_low_rank_filters", "conv2_low_rank_filters",
        "u_matrices", "relu_mask_counts", "cover_truncated_masks", "relu_mask_frequencies",
        "operator_spectra", "data_aware_low_rank", "principal_angles",
        "conv1_filters_vs_patch_components", "conv2_filters_vs_patch_components", "logits_along_segment",
        "activation_projections", "digit_feature_maps",
    ]
}
