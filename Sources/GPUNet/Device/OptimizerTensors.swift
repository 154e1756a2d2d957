import Foundation
import NetIO

/// A tensor that ``Device/adamStep(_:step:)`` updates: the first `count`
/// floats of each buffer (four distinct buffers).
public struct AdamTensor {
    public var count: Int
    public var parameter: Buffer, gradient: Buffer, m: Buffer, v: Buffer
    public init(count: Int, parameter: Buffer, gradient: Buffer, m: Buffer, v: Buffer) {
        self.count = count
        self.parameter = parameter
        self.gradient = gradient
        self.m = m
        self.v = v
    }
}

/// A tensor that ``Device/sgdMomentumStep(_:step:)``
/// updates: the first `count` floats of each buffer (three distinct buffers).
public struct MomentumTensor {
    public var count: Int
    public var parameter: Buffer, gradient: Buffer, velocity: Buffer
    public init(count: Int, parameter: Buffer, gradient: Buffer, velocity: Buffer) {
        self.count = count
        self.parameter = parameter
        self.gradient = gradient
        self.velocity = velocity
    }
}

/// One SGD update's hyper-parameters, as PyTorch's `torch.optim.SGD` names
/// them (dampening 0). With `weightDecay` 0 and `nesterov` false the update
/// is velocity = μ·velocity + grad, param −= lr·velocity, bit for bit: the
/// decay term adds an exact zero.
public struct SGDStep: Hashable, Sendable {
    public var learningRate: Float, momentum: Float
    /// Nesterov momentum: the step is d + μ·velocity rather than velocity.
    public var nesterov: Bool
    /// L2 weight decay λ, added to the gradient as λ·param.
    public var weightDecay: Float
    public init(learningRate: Float, momentum: Float, nesterov: Bool = false, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }
}

/// One Adam update's hyper-parameters, bias corrections included
/// (computed on the host in Double so that no device round trip is needed).
public struct AdamStep: Hashable, Sendable {
    public var learningRate: Float, beta1: Float, beta2: Float, epsilon: Float
    /// 1 − β₁ᵗ and 1 − β₂ᵗ for the step t (1-based).
    public var correction1: Float, correction2: Float
    public init(
        learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
        epsilon: Float = 1e-8, step t: Int
    ) {
        precondition(t >= 1, "Adam steps count from 1")
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        correction1 = Float(1 - pow(Double(beta1), Double(t)))
        correction2 = Float(1 - pow(Double(beta2), Double(t)))
    }
}
