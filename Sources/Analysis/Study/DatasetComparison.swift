import Foundation

/// The per-layer headline numbers of one member's per-layer analysis
/// (``NetworkAnalysisReport``), keyed "LAYER/QUANTITY" (a layer's path has
/// no "/"):
///
/// - `rank95`, `rank99`: components holding 95 % and 99 % of ‖W̃‖²_F;
/// - `stable_rank`: ‖W̃‖²_F/σ₁²;
/// - `operator_norm`: ‖A‖₂ of the layer as an operator on its input: for a
///   conv the dense SVD's σ_max where phase 9 has it, else the converged
///   power iteration's value (a lower bound, within phase 9's bracket of
///   its upper bound); σ₁(W̃) (exact) for a linear layer;
/// - `operator_norm_upper`: phase 9's upper bound (conv layers: the smaller
///   of the circular Gram bound and the Cholesky certificate);
/// - `distinct_masks`: phase 6's distinct masks of W̃p + b̃ (layers a ReLU follows);
/// - `accuracy_at_rank/K`: phase 5's accuracy with the layer alone at rank K;
///
/// and `analysis_accuracy`, the folded network's accuracy on the analysed images.
public enum LayerStudyMetrics {
    /// The per-layer quantities compared across datasets, in figure order.
    public static let quantities: [(key: String, label: String)] = [
        ("rank95", "components for 95% energy"), ("rank99", "components for 99% energy"),
        ("stable_rank", "stable rank ‖W̃‖²_F/σ₁²"), ("operator_norm", "operator norm ‖A‖₂"),
        ("distinct_masks", "distinct ReLU masks"),
    ]

    public static func extract(_ report: NetworkAnalysisReport) -> [StudyMetric] {
        var out = [
            StudyMetric(
                key: "analysis_accuracy",
                label: "folded network's accuracy on the \(report.comparison.images) analysed test images",
                value: report.comparison.hostAccuracy)
        ]
        let operators = Dictionary(report.operators.layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for l in report.layers {
            func add(_ key: String, _ label: String, _ value: Double) {
                out.append(StudyMetric(key: "\(l.name)/\(key)", label: "\(l.name) \(label)", value: value))
            }
            add("rank95", "components for 95% energy", Double(l.rank95))
            add("rank99", "components for 99% energy", Double(l.rank99))
            add("stable_rank", "stable rank", l.stableRank)
            if l.kind == "linear" {
                add("operator_norm", "‖A‖₂ = σ₁(W̃)", l.sigma[0])
            } else if let o = operators[l.name] {
                add(
                    "operator_norm", o.denseSingularValues == nil ? "‖A‖₂ (power iteration)" : "‖A‖₂ (dense SVD)",
                    o.denseSingularValues?.first ?? o.bracket.lower)
                add("operator_norm_upper", "‖A‖₂ upper bound (Gram iteration)", o.bracket.upper)
            }
            if let m = l.reluMasks {
                add("distinct_masks", "distinct ReLU masks (\(m.patches) patches)", Double(m.distinctMasks))
            }
            for t in l.truncation {
                add("accuracy_at_rank/\(t.k)", "accuracy with rank \(t.k)", t.accuracy)
            }
        }
        return out
    }
}

/// study.json of a study over datasets: per dataset a ``StudySummary`` of
/// every member's numbers, and the per-layer quantities of
/// ``LayerStudyMetrics`` side by side, each a ``SampleSummary`` over the seeds.
public struct DatasetComparison: Codable, Sendable, Equatable {
    /// One dataset's members.
    public struct Members: Sendable {
        public var dataset: String
        public var seeds: [UInt64]
        /// One list per seed.
        public var metrics: [[StudyMetric]]
        public init(dataset: String, seeds: [UInt64], metrics: [[StudyMetric]]) {
            self.dataset = dataset
            self.seeds = seeds
            self.metrics = metrics
        }
    }

    /// Rank k and the accuracy there over the seeds.
    public struct RankPoint: Codable, Sendable, Equatable {
        public var k: Int
        public var accuracy: SampleSummary
    }

    /// One layer across the datasets.
    public struct Layer: Codable, Sendable, Equatable {
        public var name: String
        /// quantities[quantity][dataset]: absent where a dataset's members lack it.
        public var quantities: [String: [String: SampleSummary]]
        /// accuracyVersusRank[dataset]: phase 5's curve, k ascending.
        public var accuracyVersusRank: [String: [RankPoint]]
    }

    public var model: String
    public var datasets: [String]
    public var interval: String
    /// summaries[dataset]: every number of its members (training metrics included).
    public var summaries: [String: StudySummary]
    /// The layers in forward order.
    public var layers: [Layer]

    public init(model: String, members: [Members]) {
        precondition(!members.isEmpty)
        self.model = model
        datasets = members.map(\.dataset)
        var summaries: [String: StudySummary] = [:]
        for m in members { summaries[m.dataset] = StudySummary(seeds: m.seeds, members: m.metrics) }
        self.summaries = summaries
        interval = summaries[datasets[0]]!.interval
        var names: [String] = []
        for m in members {
            for row in summaries[m.dataset]!.rows {
                guard let slash = row.key.firstIndex(of: "/") else { continue }
                let name = String(row.key[..<slash])
                if !names.contains(name) { names.append(name) }
            }
        }
        layers = names.map { name in
            var quantities: [String: [String: SampleSummary]] = [:]
            var curves: [String: [RankPoint]] = [:]
            for d in members.map(\.dataset) {
                let summary = summaries[d]!
                for q in LayerStudyMetrics.quantities {
                    if let row = summary.row("\(name)/\(q.key)") { quantities[q.key, default: [:]][d] = row.summary }
                }
                let prefix = "\(name)/accuracy_at_rank/"
                let points = summary.rows.filter { $0.key.hasPrefix(prefix) }.compactMap { row in
                    Int(row.key.dropFirst(prefix.count)).map { RankPoint(k: $0, accuracy: row.summary) }
                }
                if !points.isEmpty { curves[d] = points.sorted { $0.k < $1.k } }
            }
            return Layer(name: name, quantities: quantities, accuracyVersusRank: curves)
        }
    }

    public func jsonData() throws -> Data { try JSONEncoder.analysisFile.encode(self) }

    public init(jsonData: Data) throws {
        self = try JSONDecoder.analysisFile.decode(DatasetComparison.self, from: jsonData)
    }
}
