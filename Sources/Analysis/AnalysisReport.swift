import Foundation
import NetIO

/// A data set as the report names it.
public struct DatasetSummary: Codable, Sendable, Equatable {
    /// Dataset.name, e.g. "mnist-test".
    public var name: String
    public var count: Int
}

/// Phase 3's network check on the host: the AnalyticalNet (SVD coordinates)
/// against the im2col network (W·p), both float64, over the whole test set,
/// each chain fed by its own previous layer.
public struct AnalyticalComparison: Codable, Sendable, Equatable {
    public var images: Int
    /// max |U₁(σ₁⊙V₁ᵀp) − W₁p| (tolerance 1e-10: float64 rounding of O(10) values).
    public var conv1MaxAbsDifference: Double
    /// max |U₂(σ₂⊙V₂ᵀp) − W₂p| (tolerance 1e-10). Also phase 7's layer-2 analytical check.
    public var conv2MaxAbsDifference: Double
    /// max |logits difference| (tolerance 1e-10).
    public var logitsMaxAbsDifference: Double
    /// Images whose predictions differ (must be 0).
    public var predictionMismatches: Int
    /// Test accuracy of the im2col network (the trained network, float64).
    public var hostTestAccuracy: Double
    /// Test accuracy of the AnalyticalNet.
    public var analyticalTestAccuracy: Double
}

/// How a check compares its value with its limit.
public enum CheckRelation: String, Codable, Sendable {
    /// passes when value < limit (a NaN value fails).
    case lessThan = "<"
    /// passes when value == limit (counts).
    case equalTo = "=="
}

/// What a check can detect.
public enum CheckKind: String, Codable, Sendable {
    /// Holds by construction once LAPACK is accurate (reconstruction,
    /// Parseval, the Eckart–Young formulas, …): guards against our own
    /// bookkeeping bugs, cannot catch a wrong decomposition of the right kind.
    case consistency
    /// Two different computations that could disagree (dgesdd vs dsyevd,
    /// AnalyticalNet vs the im2col network, device vs host, a theorem's bound
    /// vs a measured count).
    case independent
}

/// One verified claim with its tolerance.
public struct Check: Codable, Sendable, Equatable {
    /// Stable identifier, e.g. "conv1.reconstruction".
    public var id: String
    /// What is measured, in words.
    public var description: String
    public var value: Double
    public var relation: CheckRelation
    public var limit: Double
    public var passed: Bool
    /// What the check can detect.
    public var kind: CheckKind

    public init(
        id: String, description: String, value: Double, relation: CheckRelation, limit: Double,
        kind: CheckKind
    ) {
        self.id = id
        self.description = description
        self.value = value
        self.relation = relation
        self.limit = limit
        self.kind = kind
        switch relation {
        case .lessThan: passed = value < limit
        case .equalTo: passed = value == limit
        }
    }
}

/// Wall time of each phase, seconds.
public struct PhaseTimings: Codable, Sendable, Equatable {
    /// Phase 2: the SVDs and Gram eigenvalues.
    public var svdSeconds: Double
    /// Phase 3's matrix identities and composition overlaps.
    public var identitiesSeconds: Double
    /// The host side of the test-set pass (phase 3's network check, phase 4's
    /// host reference, phase 6's masks and energies), without device time.
    public var testSetPassSeconds: Double
    /// Inside the network under test's forward calls (0 without one).
    public var deviceSeconds: Double
    /// Phase 5 from the matrices (errors for every k).
    public var lowRankSeconds: Double
    /// Phase 5's accuracy sweep (0 when not run).
    public var sweepSeconds: Double
    /// Phase 6's random training patches and Cover bounds.
    public var randomPatchSeconds: Double
    /// Phase 7.
    public var frobeniusSeconds: Double
    /// The whole analysis less the sweep, the device's forward calls and
    /// phase 9: the figure the < 5 s target is about.
    public var analysisSeconds: Double
    /// Everything.
    public var totalSeconds: Double
    /// Phase 9, all of it (its own target: ≤ 10 s), accuracy curves included.
    public var layerOperatorSeconds: Double
    /// Phase 9's accuracy curves over the test set (0 without the sweep).
    public var layerOperatorAccuracySeconds: Double
}

/// Every number of phases 2–7 and 9, under stable names (JSON keys are the
/// property names). Layer arrays are ordered conv1, conv2.
public struct AnalysisReport: Codable, Sendable, Equatable {
    /// Bumped when a field changes meaning or is removed: 2 names phase 9's
    /// section `layerOperators` (and its timings `layerOperatorSeconds`,
    /// `layerOperatorAccuracySeconds`), which format 1 called `phase9`.
    public var formatVersion: Int

    /// The format this build writes and reads.
    public static let currentFormatVersion = 2
    public var testSet: DatasetSummary
    public var trainSet: DatasetSummary
    public var options: AnalysisOptions
    /// The trained network's test accuracy, computed on the host in float64
    /// (im2col W·p), as a fraction.
    public var testAccuracy: Double
    /// Phase 2, per layer.
    public var spectra: [LayerSpectrum]
    /// Phase 3, per layer.
    public var svdIdentities: [SVDIdentities]
    /// Phase 3, the two-layer composition.
    public var composition: CompositionOverlaps
    /// Phase 3 (and 7's layer-2 check): AnalyticalNet vs the host im2col network.
    public var analyticalComparison: AnalyticalComparison
    /// Phase 4; nil when no network under test was given.
    public var deviceVerification: DeviceVerification?
    /// Phase 5.
    public var lowRank: LowRankReport
    /// Phase 6, per layer.
    public var reluRegions: [ReluRegionLayerReport]
    /// Phase 7, per layer.
    public var frobenius: [FrobeniusLayerReport]
    /// Phase 9: operator spectra, data-aware low rank, filters
    /// against the data. Optional so that reports written before it decode.
    public var layerOperators: LayerOperatorReport?
    /// Every check, in the order the results table shows them.
    public var checks: [Check]
    public var timings: PhaseTimings

    /// True when every check passed.
    public var allChecksPassed: Bool { checks.allSatisfy(\.passed) }
    /// The checks that failed.
    public var failedChecks: [Check] { checks.filter { !$0.passed } }

    /// The check with this id.
    public func check(_ id: String) -> Check? { checks.first { $0.id == id } }

    /// Pretty, key-sorted JSON (NaN and ±∞, should any appear, as the strings
    /// "nan", "inf", "-inf").
    public func jsonData() throws -> Data { try JSONEncoder.analysisFile.encode(self) }

    /// Reads a report written by ``jsonData()``.
    /// - Throws: ``AnalysisError/unsupportedFormat(found:expected:)`` for a
    ///   file of another format (format 1 is an older build's: re-run
    ///   `convsvd analyze`), else the decoder's error.
    public init(jsonData: Data) throws {
        struct Version: Decodable { var formatVersion: Int? }
        let found = try JSONDecoder.analysisFile.decode(Version.self, from: jsonData).formatVersion
        guard found == Self.currentFormatVersion else {
            throw AnalysisError.unsupportedFormat(found: found, expected: Self.currentFormatVersion)
        }
        self = try JSONDecoder.analysisFile.decode(AnalysisReport.self, from: jsonData)
    }

    /// Writes `analysis.json` (or any name) atomically: a reader sees the old
    /// file or the complete new one.
    public func write(to url: URL) throws {
        try writeAtomically(try jsonData(), to: url)
    }

    init(
        formatVersion: Int, testSet: DatasetSummary, trainSet: DatasetSummary, options: AnalysisOptions,
        testAccuracy: Double, spectra: [LayerSpectrum], svdIdentities: [SVDIdentities],
        composition: CompositionOverlaps, analyticalComparison: AnalyticalComparison,
        deviceVerification: DeviceVerification?, lowRank: LowRankReport, reluRegions: [ReluRegionLayerReport],
        frobenius: [FrobeniusLayerReport], layerOperators: LayerOperatorReport?, checks: [Check], timings: PhaseTimings
    ) {
        self.formatVersion = formatVersion
        self.testSet = testSet
        self.trainSet = trainSet
        self.options = options
        self.testAccuracy = testAccuracy
        self.spectra = spectra
        self.svdIdentities = svdIdentities
        self.composition = composition
        self.analyticalComparison = analyticalComparison
        self.deviceVerification = deviceVerification
        self.lowRank = lowRank
        self.reluRegions = reluRegions
        self.frobenius = frobenius
        self.layerOperators = layerOperators
        self.checks = checks
        self.timings = timings
    }
}

extension JSONEncoder {
    /// analysis.json's and study.json's encoding: pretty, key-sorted, NaN
    /// and ±∞ as the strings "nan", "inf", "-inf" (JSON has no numbers for them).
    static var analysisFile: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }
}

extension JSONDecoder {
    /// Reads what ``Foundation/JSONEncoder/analysisFile`` writes.
    static var analysisFile: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }
}
