import Foundation

/// Settings of one analysis run. Every field is recorded in the report.
public struct AnalysisOptions: Codable, Sendable, Equatable {
    /// Images per call of ``NetworkUnderTest/forward(normalizedImages:count:)``
    /// and per step of the test-set pass.
    public var batchSize: Int
    /// Host threads for the test-set pass and the sweep (each thread takes
    /// whole chunks of images; OpenBLAS runs single-threaded inside them).
    public var threads: Int
    /// Seed of the SplitMix64 generator (NetIO.SeededRandom) that draws the random training patches.
    public var samplingSeed: UInt64
    /// How many random training patches each layer's mask census draws.
    public var randomPatchCount: Int
    /// How many of the most frequent masks the report lists per census.
    public var mostCommonMaskCount: Int
    /// Whether to run the test-accuracy-vs-rank sweep (phase 5's slow part).
    public var runAccuracySweep: Bool

    public init(
        batchSize: Int = 500, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
        samplingSeed: UInt64 = 0, randomPatchCount: Int = 500, mostCommonMaskCount: Int = 10,
        runAccuracySweep: Bool = true
    ) {
        self.batchSize = batchSize
        self.threads = threads
        self.samplingSeed = samplingSeed
        self.randomPatchCount = randomPatchCount
        self.mostCommonMaskCount = mostCommonMaskCount
        self.runAccuracySweep = runAccuracySweep
    }
}

/// Why the analysis could not run.
public enum AnalysisError: Error, CustomStringConvertible, Equatable {
    /// A weight tensor holds NaN or ±∞ (the first offending flat index).
    case nonFiniteWeight(tensor: String, index: Int, value: Float)
    /// A conv weight is all zeros: its SVD, energies and ranks are undefined.
    case zeroWeight(tensor: String)
    /// A data set's images are not 28×28, or it is empty.
    case unsupportedDataset(name: String, reason: String)
    /// An option is out of range.
    case invalidOption(name: String, reason: String)
    /// The network under test returned an array of the wrong length.
    case networkOutputSize(output: String, batchStart: Int, expected: Int, actual: Int)
    /// An analysis.json of another format version (nil: none recorded).
    case unsupportedFormat(found: Int?, expected: Int)

    public var description: String {
        switch self {
        case .nonFiniteWeight(let tensor, let index, let value):
            return
                "weight tensor \(tensor) holds a non-finite value (\(value)) at flat index \(index); refusing to analyse it"
        case .zeroWeight(let tensor):
            return "weight tensor \(tensor) is all zeros; its SVD, energies and ranks are undefined"
        case .unsupportedDataset(let name, let reason):
            return "data set \(name): \(reason)"
        case .invalidOption(let name, let reason):
            return "analysis option \(name): \(reason)"
        case .unsupportedFormat(let found, let expected):
            return
                "analysis.json has format \(found.map(String.init) ?? "none") and this build reads format \(expected)"
                + " (format 2 renamed phase 9's section phase9 to layerOperators): run convsvd analyze again"
        case .networkOutputSize(let output, let start, let expected, let actual):
            return
                "network under test: \(output) for the batch starting at image \(start) has \(actual) values, expected \(expected)"
        }
    }
}
