/// The project's one random number generator: SplitMix64, small, fully
/// specified and so reproducible on every platform and Swift version
/// (Swift's default generator is not seedable).
///
/// Everything random derives from a seed: in training the initial weights
/// from `--seed`, the order of epoch e from `(seed, e)`, so that a resumed
/// run needs no saved generator state; in the analysis the random patch
/// sample; in the tests their data.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// An independent stream for `purpose` (e.g. an epoch number) under `seed`.
    public init(seed: UInt64, stream: UInt64) {
        var mixer = SeededRandom(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        state = mixer.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<n (n > 0), by rejection so that no value is favoured;
    /// spelled out rather than `Int.random(in:using:)`, whose algorithm the
    /// standard library does not promise to keep.
    public mutating func uniform(below n: Int) -> Int {
        precondition(n > 0)
        let bound = UInt64(n)
        let threshold = (0 &- bound) % bound  // 2⁶⁴ mod n
        while true {
            let x = next()
            if x >= threshold { return Int(x % bound) }
        }
    }

    /// A float uniform in [−bound, bound), from the top 24 bits.
    public mutating func uniform(_ bound: Float) -> Float {
        let unit = Float(next() >> 40) * (1 / Float(1 << 24))
        return (2 * unit - 1) * bound
    }
}
