import Models
import NetIO

extension SelfTest {
    /// A network's plan on ``device`` against the same plan on ``reference``,
    /// with the same seeded state and images: `convsvd selftest --model M`
    /// for a model other than TinyConvNet.
    ///
    /// The state: PyTorch's default initialisation (seed 0), then BatchNorm's
    /// γ in [0.5, 1.5], β and the running mean in [−0.5, 0.5] and the running
    /// variance in [0.5, 1.5] (seeded), so that no normalisation is the
    /// identity; images uniform in [−1, 1], labels random classes. One batch
    /// of `batch` images:
    /// - eval mode (running statistics): the logits, forward rule;
    /// - training mode: every layer's output (``NetworkPlan/activation(_:path:)``)
    ///   and the per-sample losses, forward rule; every parameter's
    ///   gradient, gradient rule, except where the reference's largest
    ///   magnitude is below 1e-5 (a conv bias before BatchNorm, whose
    ///   gradient is zero but for rounding), compared by the forward rule
    ///   instead; the running statistics after the pass, forward rule.
    public func run(
        model description: NetworkDescription, channels: Int, height: Int, width: Int, classes: Int, batch: Int = 3,
        progress: (String) -> Void = { _ in }
    ) -> [Row] {
        let operation = "model \(description.name)"
        let shape = "batch \(batch) of (\(channels),\(height),\(width)), \(classes) classes"
        progress("\(operation) \(shape)")
        do {
            func plan(on d: any Device) throws -> NetworkPlan {
                let p = try NetworkPlan(
                    description, channels: channels, height: height, width: width, classes: classes, device: d)
                try p.initialise(seed: 0)
                return p
            }
            let (mine, theirs) = (try plan(on: device), try plan(on: reference))
            var random = SeededRandom(seed: 0x5e1f_0de1, stream: 0x5e1f)
            let batchNorms = Set(
                theirs.statistics.map(\.name).filter { $0.hasSuffix(".running_mean") }.map {
                    String($0.dropLast(".running_mean".count))
                })
            var state: [String: (shape: [Int], values: [Float])] = [:]
            for t in try theirs.stateDict() {
                let module = t.name.split(separator: ".").dropLast().joined(separator: ".")
                let batchNorm = batchNorms.contains(module)
                var values = t.values
                if t.name.hasSuffix(".running_var") || (batchNorm && t.name.hasSuffix(".weight")) {
                    values = values.map { _ in 1 + random.uniform(0.5) }
                } else if t.name.hasSuffix(".running_mean") || (batchNorm && t.name.hasSuffix(".bias")) {
                    values = values.map { _ in random.uniform(0.5) }
                }
                state[t.name] = (t.shape, values)
            }
            let images = (0..<(batch * channels * height * width)).map { _ in random.uniform(1) }
            let labels = (0..<batch).map { _ in Int32(random.next() % UInt64(classes)) }
            var outputs: [(plan: NetworkPlan, w: NetworkPlan.Workspace)] = []
            for p in [mine, theirs] {
                try p.load(state)
                let w = try p.workspace(batch: batch)
                try p.setBatch(w, images: images, labels: labels)
                outputs.append((p, w))
            }
            var rows: [Row] = []
            func compare(_ output: String, _ rule: Rule, _ a: [Float], _ b: [Float]) {
                var rule = rule
                var name = output
                if rule == .gradient, b.reduce(0, { max($0, abs($1)) }) < 1e-5 {
                    (rule, name) = (.forward, output + " (≈0)")
                }
                let error = Self.error(a, reference: b, rule: rule)
                rows.append(
                    Row(
                        operation: operation, shape: shape, output: name, rule: rule, maxError: error,
                        limit: Self.limit, passed: Self.passes(error, rule), error: nil))
            }
            func floats(_ i: Int, _ buffer: Buffer, count: Int) throws -> [Float] {
                Array(try outputs[i].plan.device.floats(buffer).prefix(count))
            }

            for (p, w) in outputs { try p.forward(w, training: false) }
            compare(
                "logits (eval)", .forward, try floats(0, outputs[0].w.logits, count: batch * classes),
                try floats(1, outputs[1].w.logits, count: batch * classes))

            for (p, w) in outputs {
                try p.forward(w, training: true)
                try p.backward(w)
            }
            for row in theirs.summary.layers where theirs.summary.layers.filter({ $0.path == row.path }).count == 1 {
                guard let b = try theirs.activation(outputs[1].w, path: row.path),
                    let a = try mine.activation(outputs[0].w, path: row.path)
                else { continue }
                compare("\(row.path) (training)", .forward, a, b)
            }
            compare(
                "losses (training)", .forward, try floats(0, outputs[0].w.perSample, count: batch),
                try floats(1, outputs[1].w.perSample, count: batch))
            for (i, p) in theirs.parameters.enumerated() {
                compare(
                    "∂\(p.name)", .gradient, try floats(0, mine.gradients[i], count: p.count),
                    try floats(1, theirs.gradients[i], count: p.count))
            }
            for (i, s) in theirs.statistics.enumerated() {
                compare(
                    s.name, .forward, try floats(0, mine.statistics[i].buffer, count: s.count),
                    try floats(1, s.buffer, count: s.count))
            }
            try device.finish()
            return rows
        } catch {
            return [
                Row(
                    operation: operation, shape: shape, output: "-", rule: .forward, maxError: .nan, limit: Self.limit,
                    passed: false, error: "\(error)")
            ]
        }
    }
}
