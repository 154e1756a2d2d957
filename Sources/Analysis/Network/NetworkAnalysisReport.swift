import Foundation
import NetIO

/// The network the per-layer analysis verifies: a network description
/// bound to a device (GPUNet's plan, adapted by the caller so that Analysis
/// need not depend on GPUNet), run in eval mode (BatchNorm by its running
/// statistics).
public protocol LayeredNetworkUnderTest {
    /// The eval-mode forward pass of `count` normalised images (count, C, H, W),
    /// as ``NetIO/Dataset/normalizedImages(_:)`` makes them; returns the
    /// logits (count, classes). Called from one thread, batch after batch.
    func forward(normalizedImages: [Float], count: Int) throws -> [Float]
    /// The output of row `row` of the network's summary for the last
    /// forward pass (count × the row's output size); a flatten row gives its
    /// input.
    func output(row: Int) throws -> [Float]
}

/// A network under test that also runs its backward pass to the input
/// (the device's, in eval mode): phase 9 measures ‖∂logits/∂x‖₂ with it.
public protocol DifferentiableNetworkUnderTest: LayeredNetworkUnderTest {
    /// ∂(Σ u·logits)/∂input for the images of the last ``forward(normalizedImages:count:)``,
    /// u = `cotangent` (count × classes); returns count × the input's size.
    func inputGradient(cotangent: [Float]) throws -> [Float]
}

/// Settings of one per-layer analysis; recorded in the report.
public struct NetworkAnalysisOptions: Codable, Sendable, Equatable {
    /// Test images of phases 1, 3 and 4 (the first ones); nil: the whole test set.
    public var images: Int?
    /// Test images of phase 5's accuracies (the first ones); nil: the whole test set.
    public var sweepImages: Int?
    /// Images per call of the network under test.
    public var deviceBatch: Int
    /// Images per host work item (each thread takes whole chunks).
    public var chunk: Int
    public var threads: Int
    /// Energy thresholds at which every layer is truncated at once (phase 5).
    public var energyThresholds: [Double]
    /// Layers of rank r ≤ this are swept at every k = 1…r; larger ones at
    /// k = 1, 2, 4, 8, … < r and r.
    public var everyRankUpTo: Int
    /// Test images at which phase 9 measures ‖∂logits/∂x‖₂ (the first
    /// ones; nil: 512; 0: none). Each costs the network's classes backward
    /// passes.
    public var gradientImages: Int?
    /// Test images whose patches phase 9's data-aware low rank uses (the
    /// first ones; nil: 1,000; 0: none).
    public var dataAwareImages: Int?
    /// Phase 6: test images whose patches form each layer's pool (the first
    /// ones; nil: 256; 0: no mask census).
    public var maskImages: Int?
    /// Phase 6: patches drawn per layer from its pool (nil: 4096).
    public var maskPatches: Int?
    /// Phase 9's regions along lines: segments between same-class test
    /// images, and as many between different-class ones (nil: 2; 0: none).
    public var regionPairs: Int? = nil
    /// Samples on each of the first same-class and different-class segments
    /// (nil: 128; 0: no sampling).
    public var regionSamples: Int? = nil
    /// The fraction of each segment walked, centred on its midpoint (nil: 1/64; see
    /// ``NetworkRegionsOptions/span``).
    public var regionSpan: Double? = nil
    /// Phase 9: the most columns (input values) of a layer's zero-padded
    /// operator whose singular values are all computed by dense SVD (nil:
    /// ``OperatorPhase/denseColumnLimit``; at most
    /// ``ConvOperator/denseColumnLimit``).
    public var denseOperatorColumns: Int? = nil

    public init(
        images: Int? = nil, sweepImages: Int? = nil, deviceBatch: Int = 64, chunk: Int = 8,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount,
        energyThresholds: [Double] = [0.90, 0.95, 0.99, 0.999], everyRankUpTo: Int = 16,
        gradientImages: Int? = nil, dataAwareImages: Int? = nil, maskImages: Int? = nil, maskPatches: Int? = nil,
        regionPairs: Int? = nil, regionSamples: Int? = nil, regionSpan: Double? = nil,
        denseOperatorColumns: Int? = nil
    ) {
        self.denseOperatorColumns = denseOperatorColumns
        self.regionSpan = regionSpan
        self.regionPairs = regionPairs
        self.regionSamples = regionSamples
        self.gradientImages = gradientImages
        self.dataAwareImages = dataAwareImages
        self.maskImages = maskImages
        self.maskPatches = maskPatches
        self.images = images
        self.sweepImages = sweepImages
        self.deviceBatch = deviceBatch
        self.chunk = chunk
        self.threads = threads
        self.energyThresholds = energyThresholds
        self.everyRankUpTo = everyRankUpTo
    }

    /// The ranks phase 5 sweeps for a layer of rank r.
    public func sweptRanks(rank r: Int) -> [Int] {
        if r <= everyRankUpTo { return Array(1...r) }
        var ks: [Int] = []
        var k = 1
        while k < r {
            ks.append(k)
            k *= 2
        }
        return ks + [r]
    }
}

/// Test accuracy with one layer truncated to rank k (the others full).
public struct RankAccuracy: Codable, Sendable, Equatable {
    public var k: Int
    public var accuracy: Double
}

/// Everything the analysis finds for one conv or linear layer.
public struct NetworkLayerRecord: Codable, Sendable, Equatable {
    /// The layer's PyTorch path ("layer1.0.conv1", "fc").
    public var name: String
    /// "conv" or "linear".
    public var kind: String
    /// The BatchNorm folded into it (eval mode), if any.
    public var batchNorm: String?
    /// The weight tensor's shape [out, in, k, k] or [out, in].
    public var shape: [Int]
    /// The matrix analysed, [out, in·k·k].
    public var matrixShape: [Int]
    /// 1 and 0 for a linear layer.
    public var stride: Int
    public var padding: Int
    /// One image's input and output shapes.
    public var inputShape: [Int]
    public var outputShape: [Int]
    /// σ of W̃ (BatchNorm folded; W itself without one), descending, LAPACK dgesdd float64.
    public var sigma: [Double]
    /// σ of the stored W (unfolded).
    public var unfoldedSigma: [Double]
    /// Σ_{i≤k} σᵢ²/Σσᵢ², k = 1…r.
    public var cumulativeEnergy: [Double]
    public var rank90: Int
    public var rank95: Int
    public var rank99: Int
    /// ‖W̃‖²_F / σ₁².
    public var stableRank: Double
    /// exp(−Σ pᵢ log pᵢ), pᵢ = σᵢ/Σσⱼ.
    public var entropyEffectiveRank: Double
    /// σᵢ > max(out, patch)·ε·σ₁.
    public var numericalRank: Int
    /// max|UΣVᵀ − W̃| / max|W̃|.
    public var reconstructionError: Double
    /// ‖UᵀU − I‖_F and ‖VᵀV − I‖_F.
    public var uOrthogonalityError: Double
    public var vOrthogonalityError: Double
    /// max|σᵢ² − λᵢ(W̃ᵀW̃)| / σ₁² (dgesdd against dsyevd).
    public var sigmaVersusGramError: Double
    /// Phase 3: max|U(σ⊙Vᵀp) + b̃ − (W̃p + b̃)| along the two host chains.
    public var svdCoordinatesMaxAbsDifference: Double
    /// Phase 4: max|device output − (W̃p + b̃)| with p the device's own input
    /// of the layer; nil without a network under test.
    public var deviceMaxAbsDifference: Double?
    /// Phase 5: accuracy with this layer alone truncated to rank k.
    public var truncation: [RankAccuracy]
    /// Phase 6: the ReLU masks of W̃p + b̃ over sampled patches, for a conv
    /// layer a ReLU follows directly; nil otherwise or when not run.
    public var reluMasks: LayerMaskCensus? = nil
}

/// Phase 5's every-layer truncation at one energy threshold.
public struct ThresholdTruncation: Codable, Sendable, Equatable {
    public var energy: Double
    /// k per layer (in ``NetworkAnalysisReport/layers`` order): the smallest
    /// k with cumulative energy ≥ the threshold.
    public var ranks: [Int]
    public var accuracy: Double
}

/// Phases 1 and 3 over the test set.
public struct NetworkComparison: Codable, Sendable, Equatable {
    public var images: Int
    /// The folded float64 network's test accuracy.
    public var hostAccuracy: Double
    /// max|logits in SVD coordinates − folded logits| (host, float64).
    public var svdLogitsMaxAbsDifference: Double
    public var svdPredictionMismatches: Int
    /// Against the network under test (nil without one).
    public var deviceAccuracy: Double?
    /// max|device logits − folded logits|, and images whose predictions differ.
    public var foldedVersusDeviceMaxAbsDifference: Double?
    public var foldedVersusDevicePredictionMismatches: Int?
    /// max|device logits − SVD-coordinate logits|, and images whose predictions differ.
    public var svdVersusDeviceMaxAbsDifference: Double?
    public var svdVersusDevicePredictionMismatches: Int?
}

/// A phase the analysis leaves out, and why.
public struct PhaseNotRun: Codable, Sendable, Equatable {
    public var phase: String
    public var reason: String
}

/// Time of one phase: wall, and the process's CPU time (all threads), which
/// says how much of the machine the phase had when others share it.
public struct NetworkPhaseTime: Codable, Sendable, Equatable {
    public var phase: String
    public var seconds: Double
    /// nil where not measured (the network under test's share).
    public var cpuSeconds: Double?
}

/// analysis.json of the per-layer analysis of any network description.
public struct NetworkAnalysisReport: Codable, Sendable, Equatable {
    /// The layout of this file; readers check it. 3: phase 6 (each layer's
    /// `reluMasks`, the options' `maskImages` and `maskPatches`). 4: phase
    /// 9's `regions` and the options' `regionPairs` and `regionSamples`.
    /// 5: the regions' `trace` (one segment's cut points and logits).
    /// 6: `device` and `command`, so that `convsvd report` redraws a
    /// report.html that names them.
    public var schemaVersion: Int
    public var model: String
    public var testSet: DatasetSummary
    public var options: NetworkAnalysisOptions
    /// The BatchNorm layers folded into their convs.
    public var foldedBatchNorms: [String]
    public var layers: [NetworkLayerRecord]
    public var comparison: NetworkComparison
    /// Test images of phase 5 and the folded network's accuracy on them.
    public var sweepImages: Int
    public var sweepBaselineAccuracy: Double
    public var thresholds: [ThresholdTruncation]
    /// Phase 9: every conv layer as an operator, and the Lipschitz bounds.
    public var operators: OperatorPhase.Report
    /// Phase 9: each conv layer's data-aware low rank on its own input patches.
    public var dataAware: NetworkDataAware? = nil
    /// Phase 9: the exact linear pieces along segments between test images.
    public var regions: NetworkRegionsReport? = nil
    public var phasesNotRun: [PhaseNotRun]
    public var checks: [Check]
    public var timings: [NetworkPhaseTime]
    /// The device the network under test ran on, in words (nil: none, or a
    /// file of schema 5 or older).
    public var device: String? = nil
    /// The command line that wrote the file (nil: a file of schema 5 or older).
    public var command: String? = nil

    public static let currentSchemaVersion = 6

    public var allChecksPassed: Bool { checks.allSatisfy(\.passed) }
    public var failedChecks: [Check] { checks.filter { !$0.passed } }

    public func jsonData() throws -> Data { try JSONEncoder.analysisFile.encode(self) }

    /// Reads analysis.json; a file of a later schema than this build writes
    /// is refused (``NetworkAnalysisError/invalidInput(_:)``) rather than
    /// read with its new fields silently dropped.
    public init(jsonData: Data) throws {
        struct Version: Decodable { var schemaVersion: Int }
        let version = try JSONDecoder.analysisFile.decode(Version.self, from: jsonData).schemaVersion
        guard version <= Self.currentSchemaVersion else {
            throw NetworkAnalysisError.invalidInput(
                "analysis.json has schema \(version); this build reads up to \(Self.currentSchemaVersion)")
        }
        self = try JSONDecoder.analysisFile.decode(NetworkAnalysisReport.self, from: jsonData)
    }

    /// Writes the file atomically.
    public func write(to url: URL) throws { try writeAtomically(try jsonData(), to: url) }

    init(
        model: String, testSet: DatasetSummary, options: NetworkAnalysisOptions, foldedBatchNorms: [String],
        layers: [NetworkLayerRecord], comparison: NetworkComparison, sweepImages: Int, sweepBaselineAccuracy: Double,
        thresholds: [ThresholdTruncation], operators: OperatorPhase.Report, phasesNotRun: [PhaseNotRun],
        checks: [Check], timings: [NetworkPhaseTime]
    ) {
        schemaVersion = Self.currentSchemaVersion
        self.model = model
        self.testSet = testSet
        self.options = options
        self.foldedBatchNorms = foldedBatchNorms
        self.layers = layers
        self.comparison = comparison
        self.sweepImages = sweepImages
        self.sweepBaselineAccuracy = sweepBaselineAccuracy
        self.thresholds = thresholds
        self.operators = operators
        self.phasesNotRun = phasesNotRun
        self.checks = checks
        self.timings = timings
    }
}
