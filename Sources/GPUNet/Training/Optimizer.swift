import Foundation

/// Which update rule trains the network, with its hyper-parameters.
public enum OptimizerKind: Hashable, Sendable, CustomStringConvertible {
    /// PyTorch's Adam (β₁ 0.9, β₂ 0.999, ε 1e-8), the default.
    case adam(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8)
    /// PyTorch's SGD with momentum (dampening 0), optionally Nesterov's, with
    /// L2 weight decay λ added to the gradient (`torch.optim.SGD`'s `weight_decay`).
    case sgd(momentum: Float = 0.9, nesterov: Bool = false, weightDecay: Float = 0)

    public var name: String {
        switch self {
        case .adam: return "adam"
        case .sgd: return "sgd"
        }
    }

    public var description: String {
        switch self {
        case .adam(let b1, let b2, let eps): return "adam(β1=\(b1), β2=\(b2), ε=\(eps))"
        case .sgd(let m, let nesterov, let decay):
            return "sgd(momentum=\(m)\(nesterov ? ", nesterov" : ""), weight decay=\(decay))"
        }
    }
}

/// The JSON of metrics.json and checkpoints: `{"adam": {"beta1": …}}` or
/// `{"sgd": {"momentum": …, "nesterov": …, "weightDecay": …}}`. An SGD entry
/// without the last two (a run from before they existed) is plain momentum.
extension OptimizerKind: Codable {
    private enum Kind: String, CodingKey { case adam, sgd }
    private enum Field: String, CodingKey { case beta1, beta2, epsilon, momentum, nesterov, weightDecay }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Kind.self)
        if container.contains(.adam) {
            let f = try container.nestedContainer(keyedBy: Field.self, forKey: .adam)
            self = .adam(
                beta1: try f.decode(Float.self, forKey: .beta1), beta2: try f.decode(Float.self, forKey: .beta2),
                epsilon: try f.decode(Float.self, forKey: .epsilon))
        } else if container.contains(.sgd) {
            let f = try container.nestedContainer(keyedBy: Field.self, forKey: .sgd)
            self = .sgd(
                momentum: try f.decode(Float.self, forKey: .momentum),
                nesterov: try f.decodeIfPresent(Bool.self, forKey: .nesterov) ?? false,
                weightDecay: try f.decodeIfPresent(Float.self, forKey: .weightDecay) ?? 0)
        } else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "an optimiser is \"adam\" or \"sgd\""))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Kind.self)
        switch self {
        case .adam(let b1, let b2, let eps):
            var f = container.nestedContainer(keyedBy: Field.self, forKey: .adam)
            try f.encode(b1, forKey: .beta1)
            try f.encode(b2, forKey: .beta2)
            try f.encode(eps, forKey: .epsilon)
        case .sgd(let m, let nesterov, let decay):
            var f = container.nestedContainer(keyedBy: Field.self, forKey: .sgd)
            try f.encode(m, forKey: .momentum)
            try f.encode(nesterov, forKey: .nesterov)
            try f.encode(decay, forKey: .weightDecay)
        }
    }
}

/// How the learning rate moves over a run of T optimiser steps, the
/// peak rate η being `--lr`. Step t counts from 0; the rate of step t is
/// what update t + 1 uses.
/// - constant: η.
/// - cosine: η·½(1 + cos(π·t/T)), PyTorch's `CosineAnnealingLR` with
///   `T_max` = T and `eta_min` = 0 (its closed form).
/// - onecycle: a linear warm-up over the first W = ⌈0.3·T⌉ steps, η·(t + 1)/W,
///   reaching η at step W − 1; then cosine from η towards 0,
///   η·½(1 + cos(π·(t − W)/(T − W))). (PyTorch's `OneCycleLR` differs: it
///   warms up by a cosine from η/25.)
public enum LearningRateSchedule: String, Codable, CaseIterable, Sendable {
    case constant, cosine, onecycle

    /// The rate of step `t` (0-based) of `total`, computed in Double.
    public func rate(peak: Float, step t: Int, of total: Int) -> Float {
        let eta = Double(peak)
        let total = max(total, 1)
        switch self {
        case .constant:
            return peak
        case .cosine:
            return Float(eta * 0.5 * (1 + cos(Double.pi * Double(min(t, total)) / Double(total))))
        case .onecycle:
            let warm = Int((0.3 * Double(total)).rounded(.up))
            if t < warm { return Float(eta * Double(t + 1) / Double(warm)) }
            let rest = max(total - warm, 1)
            return Float(eta * 0.5 * (1 + cos(Double.pi * Double(min(t - warm, rest)) / Double(rest))))
        }
    }
}

/// An optimiser's state on the device, one slot set per parameter tensor.
///
/// Adam keeps `m` and `v`; SGD keeps `velocity`. The step counter `t` lives
/// here too: Adam's bias corrections 1 − βᵗ are computed on the host, so an
/// update needs no read-back.
public final class Optimizer {
    public let kind: OptimizerKind
    /// The peak rate η of ``schedule``.
    public let learningRate: Float
    public let schedule: LearningRateSchedule
    /// The run's length T in steps, which ``schedule`` needs (the trainer
    /// sets it once it knows the steps per epoch).
    public var totalSteps: Int = 1
    /// Updates taken so far (Adam's t after the last step).
    public private(set) var step: Int = 0
    private let device: any Device
    /// The parameters' names, in the order of the tensors ``update(parameters:gradients:)`` takes.
    public let names: [String]
    /// Per parameter: [m, v] for Adam, [velocity] for SGD.
    private let slots: [[Buffer]]
    /// The update's tensor lists, made at the first update and reused while
    /// the parameters and gradients are the same buffers: a step allocates none.
    private var adamTensors: [AdamTensor] = [], momentumTensors: [MomentumTensor] = []

    /// The names of the state tensors, per parameter, for checkpoints:
    /// `m.conv1.weight`, `velocity.fc.bias` … (NetIO adds the `optimizer.` prefix).
    public var slotNames: [String] {
        switch kind {
        case .adam: return ["m", "v"]
        case .sgd: return ["velocity"]
        }
    }

    /// An optimiser of the tensors `parameters`, called `names` in checkpoints.
    public init(
        _ kind: OptimizerKind, learningRate: Float, schedule: LearningRateSchedule = .constant,
        parameters: [Buffer], names: [String], device: any Device
    ) throws {
        precondition(parameters.count == names.count, "Optimizer: \(parameters.count) tensors, \(names.count) names")
        self.kind = kind
        self.learningRate = learningRate
        self.schedule = schedule
        self.device = device
        self.names = names
        let count: Int
        switch kind {
        case .adam: count = 2
        case .sgd: count = 1
        }
        slots = try parameters.map { p in
            try (0..<count).map { _ in try device.makeBuffer(count: p.count, kind: .float32) }
        }
    }

    /// An optimiser of TinyConvNet's four tensors.
    public convenience init(
        _ kind: OptimizerKind, learningRate: Float, schedule: LearningRateSchedule = .constant,
        parameters: TinyConvNet.Parameters, device: any Device
    ) throws {
        try self.init(
            kind, learningRate: learningRate, schedule: schedule, parameters: parameters.all,
            names: TinyConvNet.Parameters.names, device: device)
    }

    /// The rate the next update uses.
    public var currentLearningRate: Float { schedule.rate(peak: learningRate, step: step, of: totalSteps) }

    /// One update of TinyConvNet's parameters from their gradients.
    public func update(parameters: TinyConvNet.Parameters, gradients: TinyConvNet.Parameters) throws {
        try update(parameters: parameters.all, gradients: gradients.all)
    }

    /// One update of every parameter from its gradient, in the order of ``names``.
    public func update(parameters: [Buffer], gradients: [Buffer]) throws {
        let rate = currentLearningRate
        step += 1
        let tensors = zip(zip(parameters, gradients), slots)
        switch kind {
        case .adam(let b1, let b2, let eps):
            if !Self.holds(adamTensors, parameters, gradients, { ($0.parameter, $0.gradient) }) {
                adamTensors = tensors.map { pair, state in
                    AdamTensor(count: pair.0.count, parameter: pair.0, gradient: pair.1, m: state[0], v: state[1])
                }
            }
            try device.adamStep(
                adamTensors,
                step: AdamStep(
                    learningRate: rate, beta1: b1, beta2: b2, epsilon: eps,
                    step: step))
        case .sgd(let momentum, let nesterov, let decay):
            if !Self.holds(momentumTensors, parameters, gradients, { ($0.parameter, $0.gradient) }) {
                momentumTensors = tensors.map { pair, state in
                    MomentumTensor(count: pair.0.count, parameter: pair.0, gradient: pair.1, velocity: state[0])
                }
            }
            try device.sgdMomentumStep(
                momentumTensors,
                step: SGDStep(learningRate: rate, momentum: momentum, nesterov: nesterov, weightDecay: decay))
        }
    }

    /// Whether `tensors` pair exactly these parameter and gradient buffers
    /// (the same objects, in order), so that they can be reused.
    private static func holds<T>(
        _ tensors: [T], _ parameters: [Buffer], _ gradients: [Buffer], _ buffers: (T) -> (Buffer, Buffer)
    ) -> Bool {
        guard tensors.count == parameters.count, tensors.count == gradients.count else { return false }
        for i in tensors.indices {
            let (p, g) = buffers(tensors[i])
            guard p === parameters[i], g === gradients[i] else { return false }
        }
        return true
    }

    /// Runs the update rule once on throwaway one-element buffers, so that a
    /// device which prepares its kernels on first use (OpenCL) has done so;
    /// the optimiser's own state and step count are untouched.
    public func prepare() throws {
        let p = try device.makeBuffer(count: 1, kind: .float32)
        let g = try device.makeBuffer(count: 1, kind: .float32)
        let a = try device.makeBuffer(count: 1, kind: .float32)
        let b = try device.makeBuffer(count: 1, kind: .float32)
        switch kind {
        case .adam(let b1, let b2, let eps):
            try device.adamStep(
                [AdamTensor(count: 1, parameter: p, gradient: g, m: a, v: b)],
                step: AdamStep(learningRate: learningRate, beta1: b1, beta2: b2, epsilon: eps, step: 1))
        case .sgd(let momentum, let nesterov, let decay):
            try device.sgdMomentumStep(
                [MomentumTensor(count: 1, parameter: p, gradient: g, velocity: a)],
                step: SGDStep(learningRate: learningRate, momentum: momentum, nesterov: nesterov, weightDecay: decay))
        }
    }

    /// The state tensors by checkpoint name.
    public func state() throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (i, name) in names.enumerated() {
            for (j, slot) in slotNames.enumerated() {
                out["\(slot).\(name)"] = try device.floats(slots[i][j])
            }
        }
        return out
    }

    /// Restores the state saved by ``state()`` after `step` updates.
    public func restore(_ state: [String: [Float]], step: Int) throws {
        for (i, name) in names.enumerated() {
            for (j, slot) in slotNames.enumerated() {
                let key = "\(slot).\(name)"
                guard let values = state[key], values.count == slots[i][j].count else {
                    throw TrainingError.resume(
                        "checkpoint lacks optimiser tensor \(key) with \(slots[i][j].count) values")
                }
                try device.upload(values, to: slots[i][j])
            }
        }
        self.step = step
    }
}
