/// Which update rule trains the network, with its hyper-parameters.
public enum OptimizerKind: Codable, Hashable, Sendable, CustomStringConvertible {
    /// PyTorch's Adam (β₁ 0.9, β₂ 0.999, ε 1e-8), the default.
    case adam(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8)
    /// PyTorch's SGD with (non-Nesterov) momentum.
    case sgd(momentum: Float = 0.9)

    public var name: String {
        switch self {
        case .adam: return "adam"
        case .sgd: return "sgd"
        }
    }

    public var description: String {
        switch self {
        case .adam(let b1, let b2, let eps): return "adam(β1=\(b1), β2=\(b2), ε=\(eps))"
        case .sgd(let m): return "sgd(momentum=\(m))"
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
    public let learningRate: Float
    /// Updates taken so far (Adam's t after the last step).
    public private(set) var step: Int = 0
    private let device: any Device
    /// Per parameter: [m, v] for Adam, [velocity] for SGD.
    private let slots: [[Buffer]]

    /// The names of the state tensors, per parameter, for checkpoints:
    /// `m.conv1.weight`, `velocity.fc.bias` … (NetIO adds the `optimizer.` prefix).
    public var slotNames: [String] {
        switch kind {
        case .adam: return ["m", "v"]
        case .sgd: return ["velocity"]
        }
    }

    public init(
        _ kind: OptimizerKind, learningRate: Float, parameters: TinyConvNet.Parameters,
        device: any Device
    ) throws {
        self.kind = kind
        self.learningRate = learningRate
        self.device = device
        let count: Int
        switch kind {
        case .adam: count = 2
        case .sgd: count = 1
        }
        slots = try parameters.all.map { p in
            try (0..<count).map { _ in try device.makeBuffer(count: p.count, kind: .float32) }
        }
    }

    /// One update of every parameter from its gradient.
    public func update(parameters: TinyConvNet.Parameters, gradients: TinyConvNet.Parameters) throws {
        step += 1
        let tensors = zip(zip(parameters.all, gradients.all), slots)
        switch kind {
        case .adam(let b1, let b2, let eps):
            let adam = tensors.map { pair, state in
                AdamTensor(count: pair.0.count, parameter: pair.0, gradient: pair.1, m: state[0], v: state[1])
            }
            try device.adamStep(
                adam,
                step: AdamStep(
                    learningRate: learningRate, beta1: b1, beta2: b2, epsilon: eps,
                    step: step))
        case .sgd(let momentum):
            let sgd = tensors.map { pair, state in
                MomentumTensor(count: pair.0.count, parameter: pair.0, gradient: pair.1, velocity: state[0])
            }
            try device.sgdMomentumStep(sgd, learningRate: learningRate, momentum: momentum)
        }
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
        case .sgd(let momentum):
            try device.sgdMomentumStep(
                [MomentumTensor(count: 1, parameter: p, gradient: g, velocity: a)],
                learningRate: learningRate, momentum: momentum)
        }
    }

    /// The state tensors by checkpoint name.
    public func state() throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (i, name) in TinyConvNet.Parameters.names.enumerated() {
            for (j, slot) in slotNames.enumerated() {
                out["\(slot).\(name)"] = try device.floats(slots[i][j])
            }
        }
        return out
    }

    /// Restores the state saved by ``state()`` after `step` updates.
    public func restore(_ state: [String: [Float]], step: Int) throws {
        for (i, name) in TinyConvNet.Parameters.names.enumerated() {
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
