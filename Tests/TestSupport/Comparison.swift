import NetIO

/// Generic comparison helpers: every parity and reference test states its
/// rule through one of these.

/// The largest |a − b| over two equal-length sequences.
public func maxAbsoluteDifference<A: Collection, B: Collection>(_ a: A, _ b: B) -> Double
where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    precondition(a.count == b.count, "maxAbsoluteDifference: \(a.count) vs \(b.count) elements")
    var worst = 0.0
    for (x, y) in zip(a, b) {
        let d = abs(Double(x) - Double(y))
        if d.isNaN { return .nan }
        worst = max(worst, d)
    }
    return worst
}

/// The largest |a − b| divided by the largest |b|: the gradient rule
/// ("within 1e-4 relative to the tensor's largest magnitude"). A sum of tens
/// of thousands of float32 terms differs between two correct orderings by far
/// more than 1e-4 absolute, but stays within ~1e-5 of the tensor's scale.
public func maxRelativeToScale<A: Collection, B: Collection>(_ a: A, _ reference: B) -> Double
where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    let scale = reference.reduce(0.0) { max($0, abs(Double($1))) }
    let diff = maxAbsoluteDifference(a, reference)
    return scale == 0 ? diff : diff / scale
}

/// `count` floats uniform in [-scale, scale], from the project's one
/// generator (`SeededRandom`) so that a failing case can be replayed exactly.
public func randomFloats(_ count: Int, scale: Float = 1, seed: UInt64) -> [Float] {
    var g = SeededRandom(seed: seed)
    return (0..<count).map { _ in Float.random(in: -scale...scale, using: &g) }
}
