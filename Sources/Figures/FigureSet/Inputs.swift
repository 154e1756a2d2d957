import Foundation

// The figures' inputs, nested in `Figures` so that their names never clash
// with another module's (write them as `Figures.TrainingHistory` etc.).
extension Figures {
    /// One epoch of training, as the figures need it.
    public struct EpochRecord: Codable, Equatable, Sendable {
        /// 1-based epoch number.
        public var epoch: Int
        /// Mean training cross-entropy over the epoch.
        public var loss: Double
        /// Fractions in [0, 1].
        public var trainAccuracy: Double
        public var testAccuracy: Double
        /// Wall time of the epoch.
        public var seconds: Double

        public init(epoch: Int, loss: Double, trainAccuracy: Double, testAccuracy: Double, seconds: Double) {
            self.epoch = epoch
            self.loss = loss
            self.trainAccuracy = trainAccuracy
            self.testAccuracy = testAccuracy
            self.seconds = seconds
        }
    }

    /// The per-epoch record of a training run.
    public struct TrainingHistory: Codable, Equatable, Sendable {
        public var epochs: [EpochRecord]
        public init(epochs: [EpochRecord]) { self.epochs = epochs }
    }

    /// A layer's singular values, largest first.
    public struct SigmaSeries: Sendable {
        public var name: String
        public var sigma: [Double]
        public init(name: String, sigma: [Double]) {
            self.name = name
            self.sigma = sigma
        }
    }

    /// Cumulative energy E_k = Σ_{i≤k} σᵢ² / Σᵢ σᵢ² for k = 1…r, as the analysis computed it.
    public struct EnergySeries: Sendable {
        public var name: String
        public var cumulativeEnergy: [Double]
        public init(name: String, cumulativeEnergy: [Double]) {
            self.name = name
            self.cumulativeEnergy = cumulativeEnergy
        }
    }

    /// Relative Frobenius error ‖W − W_k‖_F / ‖W‖_F against rank k, measured from
    /// the matrices and predicted from σ (Eckart–Young: √(Σ_{i>k} σᵢ²) / √(Σ σᵢ²)).
    public struct ReconstructionSeries: Sendable {
        public var name: String
        public var ranks: [Int]
        public var fromMatrices: [Double]
        public var fromSigma: [Double]
        public init(name: String, ranks: [Int], fromMatrices: [Double], fromSigma: [Double]) {
            self.name = name
            self.ranks = ranks
            self.fromMatrices = fromMatrices
            self.fromSigma = fromSigma
        }
    }

    /// Test accuracy (fraction in [0, 1]) with a layer (or both) replaced by its rank-k approximation.
    public struct AccuracySeries: Sendable {
        public var label: String
        public var ranks: [Int]
        public var accuracy: [Double]
        public init(label: String, ranks: [Int], accuracy: [Double]) {
            self.label = label
            self.ranks = ranks
            self.accuracy = accuracy
        }
    }

    /// Distinct ReLU masks of one layer: observed counts beside the bounds.
    public struct MaskCountPanel: Sendable {
        public var name: String
        /// Output units n (the mask has n bits; 2ⁿ masks exist).
        public var units: Int
        /// The layer's rank r.
        public var rank: Int
        /// Cover's bound 2·Σ_{k<r'} C(n−1, k) for r' = 1…n (index r'−1).
        public var coverBound: [Double]
        /// (which patches, how many distinct masks), e.g. ("500 random training patches", 40).
        public var observed: [(label: String, count: Int)]

        public init(name: String, units: Int, rank: Int, coverBound: [Double], observed: [(label: String, count: Int)])
        {
            self.name = name
            self.units = units
            self.rank = rank
            self.coverBound = coverBound
            self.observed = observed
        }
    }

    /// How often the most common masks of one layer occur.
    public struct MaskFrequencyPanel: Sendable {
        public var name: String
        /// Where the patches come from, e.g. "every test-set patch".
        public var source: String
        /// The most common masks, most frequent first: bit string (unit 1 first) and count.
        public var masks: [(mask: String, count: Int)]
        /// Number of patches counted.
        public var total: Int

        public init(name: String, source: String, masks: [(mask: String, count: Int)], total: Int) {
            self.name = name
            self.source = source
            self.masks = masks
            self.total = total
        }
    }

    /// Points of test-digit activations in the plane of the top two U directions.
    public struct ProjectionPanel: Sendable {
        public var title: String
        /// Coordinates along u₁ and u₂.
        public var x: [Double]
        public var y: [Double]
        /// Class (digit 0–9) of each point.
        public var classes: [Int]
        public var xLabel: String
        public var yLabel: String

        public init(
            title: String, x: [Double], y: [Double], classes: [Int],
            xLabel: String = "projection on u₁", yLabel: String = "projection on u₂"
        ) {
            self.title = title
            self.x = x
            self.y = y
            self.classes = classes
            self.xLabel = xLabel
            self.yLabel = yLabel
        }
    }

    /// A test digit (28×28, pixel values as the network sees them or in [0, 1])
    /// and its conv1 feature maps (each 26×26).
    public struct DigitFeatureMaps: Sendable {
        public var label: Int
        public var image: MatrixValues
        public var maps: [MatrixValues]
        public init(label: Int, image: MatrixValues, maps: [MatrixValues]) {
            self.label = label
            self.image = image
            self.maps = maps
        }
    }
}
