import Foundation

/// ℓ2 Lipschitz constants of a network's pieces and the product bound on
/// the whole network, in float64.
///
/// Conventions: BatchNorm in eval mode is folded into the convolution before
/// it (W̃ = diag(γ/√(v + ε))·W, an affine map whose linear part is W̃'s
/// operator), so a conv's norm here is the folded operator's; biases do not
/// change a Lipschitz constant; ReLU is 1-Lipschitz (|max(a, 0) − max(b, 0)| ≤ |a − b|
/// elementwise). The norms passed in should be upper bounds (σ₁ of the dense
/// operator, or ``SpectralNormBracket/upper``), so that the product is one too.
public enum LipschitzBounds {
    /// A residual block y = ReLU(A₂·ReLU(A₁·x) + S·x): ‖S‖₂ + ‖A₂‖₂·‖A₁‖₂,
    /// with ‖S‖₂ = 1 for the identity shortcut (`shortcut` nil). The final
    /// ReLU is 1-Lipschitz; the triangle inequality splits the sum, and
    /// ‖A₂∘ReLU∘A₁‖ ≤ ‖A₂‖·1·‖A₁‖.
    public static func residualBlock(conv1: Double, conv2: Double, shortcut: Double? = nil) -> Double {
        (shortcut ?? 1) + conv2 * conv1
    }

    /// Max-pool with a k×k window and stride s, per channel, in ℓ2: ≤ ⌈k/s⌉.
    /// |max_w x − max_w y| ≤ max_{i∈w} |xᵢ − yᵢ|, so
    /// ‖pool(x) − pool(y)‖² ≤ Σ_windows Σ_{i∈w} (xᵢ − yᵢ)² ≤ m·‖x − y‖², where
    /// m = ⌈k/s⌉² bounds the windows that share one input. Non-overlapping
    /// windows (k ≤ s, e.g. 2×2 stride 2) give exactly 1: changing the
    /// window's largest entry alone moves the output by as much.
    public static func maxPool(kernel k: Int, stride s: Int) -> Double {
        precondition(k > 0 && s > 0)
        return Double((k + s - 1) / s)
    }

    /// Global average pool over n positions, per channel: y_c = (1/n)·Σ_q x_{c,q}.
    /// Each channel's row is (1/n)·1ᵀ, of ℓ2 norm ‖1‖/n = √n/n = 1/√n, and
    /// the channels are disjoint blocks, so ‖GAP‖₂ = 1/√n exactly.
    public static func globalAveragePool(positions n: Int) -> Double {
        precondition(n > 0)
        return 1 / Double(n).squareRoot()
    }

    /// Π constants: a composition's Lipschitz constant is at most the product of its pieces'.
    public static func product(_ factors: [LipschitzFactor]) -> Double {
        factors.reduce(1) { $0 * $1.constant }
    }
}

/// One piece of a network's product bound: its name, its ℓ2 Lipschitz
/// constant (an upper bound) and where that comes from.
public struct LipschitzFactor: Codable, Sendable, Equatable {
    public var name: String
    public var constant: Double
    /// E.g. "‖A‖₂ dense SVD", "1 + ‖A₂‖·‖A₁‖", "1/√49".
    public var source: String

    public init(name: String, constant: Double, source: String) {
        self.name = name
        self.constant = constant
        self.source = source
    }
}
