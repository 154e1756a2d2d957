import Foundation
import NetIO

/// Every ``Device`` operation run on a device and on the host reference
/// with the same seeded inputs, each output compared by the project's parity
/// rule: `convsvd selftest`, and the first thing to run on a new device
/// (a GPU machine: `scripts/gpu-check`).
///
/// The reference is ``HostDevice`` on its portable path (im2col and
/// OpenBLAS `sgemm`, one worker), which `GPUNetTests` holds to naive float64
/// loops; so testing the host device itself also compares its AVX2 kernels
/// with that path. Inputs are uniform in [−1, 1] (seeded), argmaxes a
/// random winner inside each 2×2 window, labels random classes.
///
/// Rules, per output (``Rule``):
/// - forward outputs: max |device − reference| ≤ 1e-4;
/// - gradients (sums over a batch or over pixels, whose float32 rounding
///   grows with the number of terms): max |device − reference| ≤ 1e-4 ·
///   max |reference|;
/// - exact: integer outputs (argmax, labels) and the batch gather, whose
///   normalisation is specified bit for bit: no element may differ.
public struct SelfTest {
    /// How one output is compared.
    public enum Rule: String, Codable, Sendable {
        /// max |Δ| ≤ 1e-4.
        case forward
        /// max |Δ| ≤ 1e-4 · max |reference|.
        case gradient
        /// No element differs (for floats, no bit pattern).
        case exact
    }

    /// One compared output.
    public struct Row: Codable, Sendable {
        public var operation: String
        /// The case's shapes in words.
        public var shape: String
        /// Which output of the operation.
        public var output: String
        public var rule: Rule
        /// forward: max |Δ|; gradient: max |Δ| / max |reference|; exact: the
        /// number of differing elements. NaN (any NaN difference) fails.
        public var maxError: Double
        public var limit: Double
        public var passed: Bool
        /// Set when the operation threw on the device (then nothing was compared).
        public var error: String?
    }

    public static let limit = 1e-4

    public let device: any Device
    public let reference: any Device

    public init(device: any Device, reference: any Device = HostDevice(workers: 1, directKernels: false)) {
        self.device = device
        self.reference = reference
    }

    /// Runs every case; `progress` hears each operation's name before it runs.
    public func run(progress: (String) -> Void = { _ in }) -> [Row] {
        var rows: [Row] = []
        for c in SelfTestCases.all {
            progress("\(c.operation) \(c.shape)")
            do {
                let ours = try c.body(device)
                let theirs = try c.body(reference)
                try device.finish()
                for ((name, rule, a), (_, _, b)) in zip(ours, theirs) {
                    rows.append(try compare(c, output: name, rule: rule, a, b))
                }
            } catch {
                rows.append(
                    Row(
                        operation: c.operation, shape: c.shape, output: "-", rule: .forward, maxError: .nan,
                        limit: Self.limit, passed: false, error: "\(error)"))
            }
        }
        return rows
    }

    private func compare(_ c: SelfTestCases.Case, output: String, rule: Rule, _ mine: Buffer, _ ref: Buffer) throws
        -> Row
    {
        let error: Double
        if mine.kind == .int32 {
            let a = try device.int32s(mine)
            let b = try reference.int32s(ref)
            error = Double(zip(a, b).filter { $0 != $1 }.count + abs(a.count - b.count))
        } else {
            error = Self.error(try device.floats(mine), reference: try reference.floats(ref), rule: rule)
        }
        let limit = rule == .exact ? 0 : Self.limit
        return Row(
            operation: c.operation, shape: c.shape, output: output, rule: rule, maxError: error, limit: limit,
            passed: Self.passes(error, rule), error: nil)
    }

    /// The error of `values` against `reference` as `rule` measures it
    /// (``Row/maxError``); NaN where a difference is NaN or the counts differ.
    public static func error(_ values: [Float], reference: [Float], rule: Rule) -> Double {
        guard values.count == reference.count else { return .nan }
        switch rule {
        case .exact:
            return Double(zip(values, reference).filter { $0.bitPattern != $1.bitPattern }.count)
        case .forward, .gradient:
            var worst = 0.0
            for (x, y) in zip(values, reference) {
                let d = abs(Double(x) - Double(y))
                if d.isNaN { return .nan }
                worst = max(worst, d)
            }
            guard rule == .gradient else { return worst }
            let scale = reference.reduce(0.0) { max($0, abs(Double($1))) }
            return scale > 0 ? worst / scale : worst
        }
    }

    /// Whether an error passes its rule's limit (1e-4, or 0 for exact).
    public static func passes(_ error: Double, _ rule: Rule) -> Bool {
        !error.isNaN && error <= (rule == .exact ? 0 : limit)
    }
}
