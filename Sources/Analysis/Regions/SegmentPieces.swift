/// One change of a pool window's selection along a segment: from `t` on,
/// window `window` passes on `winner`.
public struct RegionEvent: Sendable, Equatable {
    public var t: Double
    /// 0 ..< c₁·p₁² for the first pool's windows (c, py, px), then
    /// c₁·p₁² ..< c₁·p₁² + c₂·p₂² for the second pool's.
    public var window: Int
    /// −1 for "off" (the window's output is 0), else the slot 0…3 of the
    /// 2×2 window in row-major order whose pre-activation is passed on.
    public var winner: Int8
}

/// The exact pieces of the network along one segment x(t) = x₀ + t(x₁ − x₀),
/// t ∈ [0, 1]; see ``PiecewiseAffineConvNet/pieces(from:to:)``.
public struct SegmentPieces: Sendable {
    /// The breakpoints in (0, 1), increasing.
    public var breakpoints: [Double]
    /// Per breakpoint, which pools had an event there: bit 0 the first pool,
    /// bit 1 the second (3: both, merged events).
    public var breakpointLayers: [UInt8]
    /// Per breakpoint, whether one of its events can change the logits: a
    /// second-pool event, or a first-pool event in a window that a kept
    /// conv2 output reads. With a pool₁ side of 13 (MNIST) conv2's 11×11
    /// output loses its row and column 10 to the floor-mode pool, so the
    /// first pool's row and column 12 feed nothing the logits see: their
    /// events change the activation pattern, not the function.
    public var breakpointReachesLogits: [Bool]
    /// The selection of every window (layer-1 windows, then layer-2) on the
    /// first piece, as ``RegionEvent/winner`` codes it.
    public var initialWinners: [Int8]
    /// Every selection change in order (several may share one breakpoint).
    public var events: [RegionEvent]
    /// Sign changes of conv1's pre-activations a(t) = α + βt in [0, 1],
    /// counted from their roots (see ``PiecewiseAffineConvNet/conv1SignChanges(from:to:)``).
    public var conv1SignChanges: Int
    /// ‖x₁ − x₀‖₂ in the network's input units (normalised pixels).
    public var length: Double
    /// The largest amount by which a computed crossing time fell before the
    /// current time and was moved up to it (rounding; ~1e-16 expected).
    public var largestRootBacktrack: Double

    /// Pieces of [0, 1]: breakpoints + 1.
    public var pieces: Int { breakpoints.count + 1 }
    /// Pieces of the function along the segment: the breakpoints that can
    /// change the logits (``breakpointReachesLogits``) + 1.
    public var piecesReachingLogits: Int { breakpointReachesLogits.filter { $0 }.count + 1 }
    /// Events at pool-1 and pool-2 windows.
    public var eventsPerLayer: (first: Int, second: Int) {
        let first = events.reduce(0) { $0 + ($1.window < firstLayerWindows ? 1 : 0) }
        return (first, events.count - first)
    }
    let firstLayerWindows: Int
}

extension PiecewiseAffineConvNet {
    /// Whether first-pool window `w` (c, py, px) of a side-`side` pool is
    /// read by one of the `used` × `used` conv2 outputs that the second pool
    /// keeps: conv2 at (y, x) reads pooled rows y…y+2, so rows and columns
    /// up to used + 1.
    static func reachesConv2(window w: Int, side: Int, used: Int) -> Bool {
        (w / side) % side <= used + 1 && w % side <= used + 1
    }

    /// Events closer than this (in t) to the previous breakpoint, or to 0 or
    /// 1, join it: the rounding of a crossing time computed from O(1)
    /// intercepts and slopes is ~1e-16, and a selection change that follows
    /// from another one at the same t (a conv2 unit that turns on exactly
    /// when one of its inputs does) must not open a piece of length 1e-17.
    public static let breakpointMergeTolerance = 1e-12

    /// The activation pattern's pieces along x(t) = x₀ + t(x₁ − x₀), t ∈ [0, 1], exactly.
    ///
    /// Each pool window outputs max(0, a₁, a₂, a₃, a₄) = ReLU(max a) (ReLU
    /// commutes with max), a maximum of five candidates: "off" (the constant
    /// 0) and its four pre-activations. On a piece every candidate is affine
    /// in t, a(t) = α + βt, and the window passes on one of them, its
    /// *winner*; the network is affine in t as long as no winner changes. So
    /// the events are exactly the times where a candidate j overtakes the
    /// winner k, a strict sign change of a_j − a_k from ≤ 0 to > 0: the
    /// winner's own ReLU (k a unit, j off: a_k falls through 0), a unit
    /// rising through 0 in a window that was off (k off), and a max-pool
    /// argmax change (both units). A unit that does not win its window
    /// changes nothing when its own sign changes, and neither does a change
    /// of order among the units of a window that is off. The piece count is
    /// that of activation patterns (the winners of every window); the logits
    /// are affine on each piece, and may be affine across a breakpoint too
    /// when the change does not reach them.
    ///
    /// Rules for ties: the winner on a piece is the candidate with the
    /// largest value at its start, then the largest slope (the one that is
    /// largest just after), then the first in the order off, slot 0…3
    /// (row-major), as the forward pass takes the first maximum and calls a
    /// pre-activation of exactly 0 off. Candidates identical along the
    /// segment (equal α and β: blank background, where the four units of a
    /// window read identical patches, or a conv2 unit whose inputs are all
    /// off and equals "off") never cross, so they create no event. Events
    /// within ``breakpointMergeTolerance`` of each other form one breakpoint.
    ///
    /// Method: conv1's pre-activations are exactly affine in t (α = W₁p(x₀),
    /// β = W₁p(x₁ − x₀)). A window's next event is its earliest crossing
    /// root t* = (α_k − α_j)/(β_j − β_k) over candidates with β_j > β_k;
    /// a priority tree gives the earliest over all windows. At a first-pool
    /// event the pooled value's (α, β) changes, so every conv2 unit that
    /// reads it is recomputed from its 72 inputs (a fixed order, so that
    /// units with identical inputs stay bitwise identical, and ties stay
    /// ties) and the affected second-pool windows get new next events.
    public func pieces(from x0: [Double], to x1: [Double]) -> SegmentPieces {
        precondition(
            x0.count == inputSide * inputSide && x1.count == x0.count,
            "pieces: images must be \(inputSide)×\(inputSide)")
        var walk = SegmentWalk(self, x0, x1)
        return walk.run()
    }

    /// conv1's pre-activations along the segment as (α, β), a(t) = α + βt,
    /// (c₁, o₁, o₁) each: α = W₁·p(x₀), β = W₁·p(x₁ − x₀), each sum over the
    /// nine taps in (kH, kW) order.
    public func conv1Affine(from x0: [Double], to x1: [Double]) -> (alpha: [Double], beta: [Double]) {
        let n = inputSide
        let o = conv1Side
        let c1 = conv1Channels
        let d = zip(x1, x0).map { $0 - $1 }
        var alpha = [Double](repeating: 0, count: c1 * o * o)
        var beta = alpha
        for c in 0..<c1 {
            for y in 0..<o {
                for x in 0..<o {
                    var a = 0.0
                    var b = 0.0
                    for i in 0..<3 {
                        for j in 0..<3 {
                            let w = conv1.values[c * 9 + i * 3 + j]
                            a += w * x0[(y + i) * n + x + j]
                            b += w * d[(y + i) * n + x + j]
                        }
                    }
                    alpha[(c * o + y) * o + x] = a
                    beta[(c * o + y) * o + x] = b
                }
            }
        }
        return (alpha, beta)
    }

    /// The number of conv1 pre-activations whose on-state (a > 0) differs
    /// between t = 0 and t = 1, counted from their roots t* = −α/β: a unit
    /// with β > 0 turns on just after t*, counted when 0 ≤ t* < 1; one with
    /// β < 0 turns off at t*, counted when 0 < t* ≤ 1; β = 0 never changes.
    /// An affine function changes sign at most once, so this is also the
    /// number of sign changes on any grid of [0, 1] that holds both ends.
    public static func conv1SignChanges(alpha: [Double], beta: [Double]) -> Int {
        var count = 0
        for (a, b) in zip(alpha, beta) where b != 0 {
            let root = -a / b
            if b > 0 ? (root >= 0 && root < 1) : (root > 0 && root <= 1) { count += 1 }
        }
        return count
    }
}

/// The state of ``PiecewiseAffineConvNet/pieces(from:to:)`` along one segment.
private struct SegmentWalk {
    let c1: Int, c2: Int, p1: Int, p2: Int, used2: Int
    let windows1: Int, windows2: Int
    /// conv2's weights transposed, (c₁·9, lanes) vectors of four output
    /// channels (zero-padded): a unit's c₂ channels in one pass over its inputs.
    let w2v: [SIMD4<Double>]
    let lanes: Int
    /// Input k = (c, i, j) of conv2 at (0, 0) as an index into the pooled layer.
    let inputOffsets: [Int]
    var dirty: [Int] = []
    /// Candidates of each window, 4 per window: layer 1 (α, β) fixed, layer 2 recomputed.
    var alpha1: [Double], beta1: [Double]
    var alpha2: [Double], beta2: [Double]
    /// The pooled first layer's (α, β), (c₁, p₁, p₁).
    var pooledAlpha: [Double], pooledBeta: [Double]
    var winners: [Int8]
    /// Per window its next event's time (∞: none) and candidate.
    var nextTime: [Double], nextWinner: [Int8]
    /// A min-tree over the windows' next times: node i holds the window with
    /// the smallest time under it; leaves at `leafBase + w`.
    var tree: [Int32]
    let leafBase: Int
    var sumAlpha: [SIMD4<Double>], sumBeta: [SIMD4<Double>]
    /// The update of a first-pool event marks each second-pool window once.
    var stamp: [Int], epoch = 0
    var largestBacktrack = 0.0
    let conv1SignChanges: Int, length: Double

    init(_ net: PiecewiseAffineConvNet, _ x0: [Double], _ x1: [Double]) {
        c1 = net.conv1Channels
        c2 = net.conv2Channels
        p1 = net.pool1Side
        p2 = net.pool2Side
        used2 = 2 * p2
        windows1 = net.pool1Windows
        windows2 = net.pool2Windows
        let k2 = 9 * c1
        lanes = (c2 + 3) / 4
        var t = [SIMD4<Double>](repeating: .zero, count: k2 * lanes)
        for o in 0..<c2 { for k in 0..<k2 { t[k * lanes + o / 4][o % 4] = net.conv2.values[o * k2 + k] } }
        w2v = t
        let side = net.pool1Side
        inputOffsets = (0..<k2).map { k in ((k / 9) * side + (k / 3) % 3) * side + k % 3 }

        let (a, b) = net.conv1Affine(from: x0, to: x1)
        conv1SignChanges = PiecewiseAffineConvNet.conv1SignChanges(alpha: a, beta: b)
        length = zip(x1, x0).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        let o1 = net.conv1Side
        alpha1 = [Double](repeating: 0, count: 4 * windows1)
        beta1 = alpha1
        for w in 0..<windows1 {
            let c = w / (p1 * p1)
            let py = (w / p1) % p1
            let px = w % p1
            for s in 0..<4 {
                let q = (c * o1 + 2 * py + s / 2) * o1 + 2 * px + s % 2
                alpha1[4 * w + s] = a[q]
                beta1[4 * w + s] = b[q]
            }
        }
        alpha2 = [Double](repeating: 0, count: 4 * windows2)
        beta2 = alpha2
        pooledAlpha = [Double](repeating: 0, count: windows1)
        pooledBeta = pooledAlpha
        winners = [Int8](repeating: -1, count: windows1 + windows2)
        nextTime = [Double](repeating: .infinity, count: windows1 + windows2)
        nextWinner = [Int8](repeating: -1, count: windows1 + windows2)
        var base = 1
        while base < windows1 + windows2 { base *= 2 }
        leafBase = base
        tree = [Int32](repeating: 0, count: 2 * base)
        sumAlpha = [SIMD4<Double>](repeating: .zero, count: lanes)
        sumBeta = sumAlpha
        stamp = [Int](repeating: 0, count: windows2)
    }

    mutating func run() -> SegmentPieces {
        // The first piece: winners at t = 0 (largest value, then slope, then first).
        for w in 0..<windows1 {
            winners[w] = Self.initialWinner(alpha1, beta1, 4 * w)
            setPooled(w)
        }
        for y in 0..<used2 { for x in 0..<used2 { recomputeConv2(y, x) } }
        for v in 0..<windows2 { winners[windows1 + v] = Self.initialWinner(alpha2, beta2, 4 * v) }
        let initial = winners
        for w in 0..<(windows1 + windows2) { schedule(w, now: 0) }
        for i in 0..<leafBase { tree[leafBase + i] = Int32(min(i, windows1 + windows2 - 1)) }
        for i in stride(from: leafBase - 1, through: 1, by: -1) { tree[i] = smaller(tree[2 * i], tree[2 * i + 1]) }

        let tol = PiecewiseAffineConvNet.breakpointMergeTolerance
        var breakpoints: [Double] = []
        var layers: [UInt8] = []
        var reaches: [Bool] = []
        var events: [RegionEvent] = []
        var now = 0.0
        var lastBreak = 0.0
        while true {
            let w = Int(tree[1])
            let te = nextTime[w]
            guard te < 1 - tol else { break }
            now = max(now, te)
            winners[w] = nextWinner[w]
            events.append(RegionEvent(t: now, window: w, winner: winners[w]))
            let layer: UInt8 = w < windows1 ? 1 : 2
            let live = w >= windows1 || PiecewiseAffineConvNet.reachesConv2(window: w, side: p1, used: used2)
            if now - lastBreak > tol {
                breakpoints.append(now)
                layers.append(layer)
                reaches.append(live)
                lastBreak = now
            } else if !layers.isEmpty {
                layers[layers.count - 1] |= layer
                reaches[reaches.count - 1] = reaches[reaches.count - 1] || live
            }
            if w < windows1 {
                setPooled(w)
                // conv2 at (y, x) reads pooled rows y…y+2 and columns x…x+2.
                let py = (w / p1) % p1
                let px = w % p1
                if PiecewiseAffineConvNet.reachesConv2(window: w, side: p1, used: used2) {
                    let ys = max(0, py - 2)...min(used2 - 1, py)
                    let xs = max(0, px - 2)...min(used2 - 1, px)
                    epoch += 1
                    dirty.removeAll(keepingCapacity: true)
                    for y in ys {
                        for x in xs {
                            recomputeConv2(y, x)
                            for o in 0..<c2 {
                                let v = (o * p2 + y / 2) * p2 + x / 2
                                if stamp[v] != epoch {
                                    stamp[v] = epoch
                                    dirty.append(v)
                                }
                            }
                        }
                    }
                    for v in dirty {
                        schedule(windows1 + v, now: now)
                        update(windows1 + v)
                    }
                }
            }
            schedule(w, now: now)
            update(w)
        }
        return SegmentPieces(
            breakpoints: breakpoints, breakpointLayers: layers, breakpointReachesLogits: reaches,
            initialWinners: initial, events: events,
            conv1SignChanges: conv1SignChanges, length: length, largestRootBacktrack: largestBacktrack,
            firstLayerWindows: windows1)
    }

    /// The winner at t = 0 among off (0, 0) and the four candidates at `base`.
    static func initialWinner(_ alpha: [Double], _ beta: [Double], _ base: Int) -> Int8 {
        var best: Int8 = -1
        var ba = 0.0
        var bb = 0.0
        for s in 0..<4 {
            let a = alpha[base + s]
            let b = beta[base + s]
            if a > ba || (a == ba && b > bb) {
                best = Int8(s)
                ba = a
                bb = b
            }
        }
        return best
    }

    mutating func setPooled(_ w: Int) {
        let k = Int(winners[w])
        pooledAlpha[w] = k < 0 ? 0 : alpha1[4 * w + k]
        pooledBeta[w] = k < 0 ? 0 : beta1[4 * w + k]
    }

    /// All c₂ channels of conv2 at (y, x) from the pooled first layer, each a
    /// sum over its c₁·9 inputs in (in, kH, kW) order, four channels to a
    /// vector. Inputs whose (α, β) is (0, 0) are skipped, which changes no
    /// bit of the sums: the result depends only on the inputs, so that units
    /// with identical inputs are bitwise identical.
    mutating func recomputeConv2(_ y: Int, _ x: Int) {
        let lanes = self.lanes
        let base = y * p1 + x
        sumAlpha.withUnsafeMutableBufferPointer { sa in
            sumBeta.withUnsafeMutableBufferPointer { sb in
                w2v.withUnsafeBufferPointer { wv in
                    pooledAlpha.withUnsafeBufferPointer { qa in
                        pooledBeta.withUnsafeBufferPointer { qb in
                            inputOffsets.withUnsafeBufferPointer { offsets in
                                for g in 0..<lanes {
                                    sa[g] = .zero
                                    sb[g] = .zero
                                }
                                for k in 0..<offsets.count {
                                    let q = base + offsets[k]
                                    let a = qa[q]
                                    let b = qb[q]
                                    if a == 0 && b == 0 { continue }
                                    let va = SIMD4(repeating: a)
                                    let vb = SIMD4(repeating: b)
                                    let row = wv.baseAddress! + k * lanes
                                    for g in 0..<lanes {
                                        sa[g] += row[g] * va
                                        sb[g] += row[g] * vb
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let slot = (y % 2) * 2 + x % 2
        for o in 0..<c2 {
            let v = (o * p2 + y / 2) * p2 + x / 2
            alpha2[4 * v + slot] = sumAlpha[o / 4][o % 4]
            beta2[4 * v + slot] = sumBeta[o / 4][o % 4]
        }
    }

    /// Window w's next event after `now`: the earliest root of a_j − a_k
    /// over candidates j rising faster than the winner k; on equal roots the
    /// steeper j (largest just after), then the first.
    mutating func schedule(_ w: Int, now: Double) {
        let layer1 = w < windows1
        let base = 4 * (layer1 ? w : w - windows1)
        let k = Int(winners[w])
        var alpha = (0.0, 0.0, 0.0, 0.0, 0.0)
        var beta = alpha  // off, slots 0…3
        if layer1 {
            alpha = (0, alpha1[base], alpha1[base + 1], alpha1[base + 2], alpha1[base + 3])
            beta = (0, beta1[base], beta1[base + 1], beta1[base + 2], beta1[base + 3])
        } else {
            alpha = (0, alpha2[base], alpha2[base + 1], alpha2[base + 2], alpha2[base + 3])
            beta = (0, beta2[base], beta2[base + 1], beta2[base + 2], beta2[base + 3])
        }
        var best = Double.infinity
        var bestJ: Int8 = -1
        var bestSlope = -Double.infinity
        withUnsafeBytes(of: alpha) { ra in
            withUnsafeBytes(of: beta) { rb in
                let a = ra.bindMemory(to: Double.self)
                let b = rb.bindMemory(to: Double.self)
                let ak = a[k + 1]
                let bk = b[k + 1]
                for j in 0..<5 where j != k + 1 {
                    let rise = b[j] - bk
                    guard rise > 0 else { continue }
                    var t = (ak - a[j]) / rise
                    if t < now {
                        largestBacktrack = max(largestBacktrack, now - t)
                        t = now
                    }
                    if t < best || (t == best && b[j] > bestSlope) {
                        best = t
                        bestJ = Int8(j - 1)
                        bestSlope = b[j]
                    }
                }
            }
        }
        nextTime[w] = best
        nextWinner[w] = bestJ
    }

    func smaller(_ a: Int32, _ b: Int32) -> Int32 { nextTime[Int(b)] < nextTime[Int(a)] ? b : a }

    mutating func update(_ w: Int) {
        var i = (leafBase + w) / 2
        while i >= 1 {
            tree[i] = smaller(tree[2 * i], tree[2 * i + 1])
            i /= 2
        }
    }
}
