import Foundation

/// A study's headline numbers of one member, read from its analysis.json.
///
/// Read from the JSON rather than from ``AnalysisReport`` on purpose: the
/// headline numbers of phases 2–7 are picked by name (test accuracy, each σᵢ,
/// components for 95/99 % energy, distinct masks, low-rank accuracy at each
/// k), and every other top-level section a newer analysis adds (phase 9's,
/// for one) is taken whole: each of its numeric leaves, named by its JSON
/// path, except timings (keys containing "seconds") and arrays longer than
/// ``maximumArray`` (matrices, per-image data). A study of members written
/// by different versions therefore still summarises what they share.
public struct StudyMetric: Codable, Sendable, Equatable {
    /// Stable identifier: "test_accuracy", "conv1.sigma.3", "layerOperators.…".
    public var key: String
    /// What a reader sees: "conv1 σ3".
    public var label: String
    public var value: Double

    public init(key: String, label: String, value: Double) {
        self.key = key
        self.label = label
        self.value = value
    }
}

public enum StudyMetrics {
    /// The top-level sections of phases 2–7 (read by name or not summarised).
    static let knownSections: Set<String> = [
        "formatVersion", "testSet", "trainSet", "options", "testAccuracy", "spectra", "svdIdentities",
        "composition", "analyticalComparison", "deviceVerification", "lowRank", "reluRegions", "frobenius",
        "checks", "timings",
    ]
    /// Longer arrays in new sections are data, not headline numbers.
    public static let maximumArray = 64

    /// The headline numbers of one analysis.json, in a fixed order.
    public static func extract(analysisJSON data: Data) throws -> [StudyMetric] {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw StudyError.malformed("analysis.json is not a JSON object")
        }
        var out: [StudyMetric] = []
        func add(_ key: String, _ label: String, _ value: Any?) {
            if let v = number(value) { out.append(StudyMetric(key: key, label: label, value: v)) }
        }
        add("test_accuracy", "test accuracy", root["testAccuracy"])
        for s in root["spectra"] as? [[String: Any]] ?? [] {
            let layer = s["layer"] as? String ?? "?"
            for (i, v) in (s["singularValues"] as? [Any] ?? []).enumerated() {
                add("\(layer).sigma.\(i + 1)", "\(layer) σ\(i + 1)", v)
            }
            add("\(layer).components_95", "\(layer) components for 95% energy", s["componentsFor95PercentEnergy"])
            add("\(layer).components_99", "\(layer) components for 99% energy", s["componentsFor99PercentEnergy"])
        }
        for r in root["reluRegions"] as? [[String: Any]] ?? [] {
            let layer = r["layer"] as? String ?? "?"
            let random = r["randomTrainingPatches"] as? [String: Any]
            let test = r["testSetPatches"] as? [String: Any]
            add(
                "\(layer).distinct_masks.random_patches",
                "\(layer) distinct masks, \(number(random?["patches"]).map { String(Int($0)) } ?? "") random patches",
                random?["distinctMasks"])
            add("\(layer).distinct_masks.test_set", "\(layer) distinct masks, test set", test?["distinctMasks"])
        }
        if let lowRank = root["lowRank"] as? [String: Any] {
            for l in lowRank["layers"] as? [[String: Any]] ?? [] {
                let layer = l["layer"] as? String ?? "?"
                for row in l["rows"] as? [[String: Any]] ?? [] {
                    guard let k = number(row["rank"]) else { continue }
                    add(
                        "\(layer).low_rank_accuracy.\(Int(k))", "\(layer) at rank \(Int(k)): test accuracy",
                        row["testAccuracy"])
                }
            }
            if let grid = (lowRank["sweep"] as? [String: Any])?["accuracy"] as? [[Any]] {
                for k in 0..<min(grid.count, grid.first?.count ?? 0) {
                    add("both.low_rank_accuracy.\(k + 1)", "both layers at rank \(k + 1): test accuracy", grid[k][k])
                }
            }
        }
        for key in root.keys.sorted() where !knownSections.contains(key) {
            flatten(root[key]!, path: key, into: &out)
        }
        return out
    }

    private static func flatten(_ value: Any, path: String, into out: inout [StudyMetric]) {
        if let v = number(value) {
            out.append(StudyMetric(key: path, label: path, value: v))
        } else if let object = value as? [String: Any] {
            for key in object.keys.sorted() where !key.lowercased().contains("seconds") {
                flatten(object[key]!, path: "\(path).\(key)", into: &out)
            }
        } else if let array = value as? [Any], array.count <= maximumArray {
            // An array of objects with a "layer" name is indexed by it.
            for (i, element) in array.enumerated() {
                let name = ((element as? [String: Any])?["layer"] as? String) ?? String(i)
                flatten(element, path: "\(path)[\(name)]", into: &out)
            }
        }
    }

    /// A JSON number (not a Boolean), or the strings "nan", "inf", "-inf"
    /// that AnalysisReport writes for non-finite values.
    static func number(_ value: Any?) -> Double? {
        if let n = value as? NSNumber {
            // Foundation's JSON parser gives Booleans as NSNumbers of type char ("c") or Bool ("B").
            let type = String(cString: n.objCType)
            return type == "c" || type == "B" ? nil : n.doubleValue
        }
        switch value as? String {
        case "nan": return .nan
        case "inf": return .infinity
        case "-inf": return -.infinity
        default: return nil
        }
    }
}

public enum StudyError: Error, CustomStringConvertible, Equatable {
    case malformed(String)
    case badSeeds(String)

    public var description: String {
        switch self {
        case .malformed(let m): return m
        case .badSeeds(let m): return m
        }
    }
}

/// study.json: every headline number over the members.
public struct StudySummary: Codable, Sendable, Equatable {
    public struct Row: Codable, Sendable, Equatable {
        public var key: String
        public var label: String
        public var summary: SampleSummary
    }

    public var seeds: [UInt64]
    public var interval: String
    public var rows: [Row]
    /// Keys some members have and others lack (not summarised).
    public var incomplete: [String]

    /// Summarises the members' metrics (in seed order); a key is summarised
    /// when every member has it.
    public init(seeds: [UInt64], members: [[StudyMetric]]) {
        precondition(seeds.count == members.count && !members.isEmpty)
        self.seeds = seeds
        interval =
            "95% confidence interval for the mean: Student's t with n − 1 degrees of freedom, "
            + "mean ± t(0.975, n−1)·sd/√n (assumes independent, normally distributed per-seed values)"
        let maps = members.map { Dictionary($0.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a }) }
        var order: [String] = []
        var seen = Set<String>()
        for m in members { for metric in m where seen.insert(metric.key).inserted { order.append(metric.key) } }
        rows = []
        incomplete = []
        for key in order {
            let values = maps.compactMap { $0[key]?.value }
            if values.count == members.count {
                let label = maps.first { $0[key] != nil }![key]!.label
                rows.append(Row(key: key, label: label, summary: SampleSummary(values)))
            } else {
                incomplete.append(key)
            }
        }
    }

    public func row(_ key: String) -> Row? { rows.first { $0.key == key } }

    public func jsonData() throws -> Data { try JSONEncoder.analysisFile.encode(self) }

    public init(jsonData: Data) throws {
        self = try JSONDecoder.analysisFile.decode(StudySummary.self, from: jsonData)
    }
}
