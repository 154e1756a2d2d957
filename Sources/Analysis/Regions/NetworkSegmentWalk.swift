/// A ``FoldedNetwork``'s nonlinearities as *sites* of selection units, and
/// the network's steps in terms of them: what the exact walk along a segment
/// (``NetworkSegmentWalk``) and the forward pass that samples activation
/// patterns (``NetworkRegionsAlongLines/patterns(walk:images:batch:)``) share.
///
/// A site is a ReLU (its units are the ReLU's inputs: on when > 0), a ReLU
/// followed by a 2×2 max-pool (its units are the pool windows: the window
/// passes on one of five candidates, "off" or one of its four inputs, as
/// TinyConvNet's windows do), or a max-pool alone (four candidates). A
/// residual block's ReLU after the add is a site on the sum.
public struct NetworkSites: Sendable {
    public enum Kind: String, Codable, Sendable {
        case relu
        case reluMaxPool
        case maxPool
    }

    public struct Site: Sendable {
        /// Where it sits: the affine layer before it ("layer1.0.conv2 + add") or the pool's shape.
        public var name: String
        public var kind: Kind
        /// Selection units (ReLU units or pool windows) per image.
        public var units: Int
        /// Per unit, whether its selection can reach the logits: read,
        /// through some chain of later layers' taps (whatever their
        /// weights), by a logit. A floor-mode pool drops an odd map's last
        /// row and column, and what only they read feeds nothing.
        public var live: [Bool]
    }

    indirect enum Op: Sendable {
        case affine(Int)
        case relu(site: Int)
        /// (C, H, W) in, (C, ⌊H/2⌋, ⌊W/2⌋) out; `fused`: a ReLU before it (candidate "off").
        case pool(site: Int, fused: Bool, channels: Int, height: Int, width: Int)
        case globalAveragePool(channels: Int, plane: Int)
        case residual(body: [Op], shortcut: [Op]?, reluSite: Int?)
    }

    public let sites: [Site]
    let ops: [Op]

    /// Units over all sites.
    public var totalUnits: Int { sites.reduce(0) { $0 + $1.units } }

    public init(_ network: FoldedNetwork) {
        var builder = Builder(network: network)
        let ops = builder.compile(network.steps, inputSize: network.inputSize).ops
        _ = builder.liveInput(ops, outputLive: [Bool](repeating: true, count: network.classes))
        self.ops = ops
        sites = builder.sites
    }

    private struct Builder {
        let network: FoldedNetwork
        var sites: [Site] = []

        init(network: FoldedNetwork) { self.network = network }

        /// Ops of `steps` on inputs of `inputSize`, and their output size.
        mutating func compile(_ steps: [FoldedNetwork.Step], inputSize: Int) -> (ops: [Op], outputSize: Int) {
            var ops: [Op] = []
            var size = inputSize
            var lastName = "input"
            var i = 0
            while i < steps.count {
                switch steps[i] {
                case .affine(let l):
                    ops.append(.affine(l))
                    size = network.layers[l].outputSize
                    lastName = network.layers[l].batchNorm ?? network.layers[l].name
                case .relu:
                    if i + 1 < steps.count, case .maxPool2(let c, let h, let w) = steps[i + 1] {
                        let units = c * (h / 2) * (w / 2)
                        sites.append(
                            Site(name: "\(lastName) → ReLU, max-pool", kind: .reluMaxPool, units: units, live: []))
                        ops.append(.pool(site: sites.count - 1, fused: true, channels: c, height: h, width: w))
                        size = units
                        i += 1
                    } else {
                        sites.append(Site(name: "\(lastName) → ReLU", kind: .relu, units: size, live: []))
                        ops.append(.relu(site: sites.count - 1))
                    }
                case .maxPool2(let c, let h, let w):
                    let units = c * (h / 2) * (w / 2)
                    sites.append(Site(name: "\(lastName) → max-pool", kind: .maxPool, units: units, live: []))
                    ops.append(.pool(site: sites.count - 1, fused: false, channels: c, height: h, width: w))
                    size = units
                case .globalAveragePool(let c, let plane):
                    ops.append(.globalAveragePool(channels: c, plane: plane))
                    size = c
                case .residual(let body, let shortcut, let relu):
                    let b = compile(body, inputSize: size)
                    let s = shortcut.map { compile($0, inputSize: size).ops }
                    size = b.outputSize
                    var reluSite: Int?
                    if relu {
                        let name = body.last.flatMap { step -> String? in
                            if case .affine(let l) = step {
                                return network.layers[l].batchNorm ?? network.layers[l].name
                            }
                            return nil
                        }
                        sites.append(
                            Site(name: "\(name ?? "block") + shortcut → ReLU", kind: .relu, units: size, live: []))
                        reluSite = sites.count - 1
                    }
                    ops.append(.residual(body: b.ops, shortcut: s, reluSite: reluSite))
                }
                i += 1
            }
            return (ops, size)
        }

        /// Which inputs of `ops` some live output reads (structurally), marking each site's live units.
        mutating func liveInput(_ ops: [Op], outputLive: [Bool]) -> [Bool] {
            var live = outputLive
            for op in ops.reversed() { live = liveInput(op, live) }
            return live
        }

        mutating func liveInput(_ op: Op, _ out: [Bool]) -> [Bool] {
            switch op {
            case .affine(let l):
                let layer = network.layers[l]
                switch layer.kind {
                case .linear:
                    return [Bool](repeating: out.contains(true), count: layer.inputSize)
                case .conv(let spec, let h, let w, let oh, let ow):
                    var position = [Bool](repeating: false, count: oh * ow)
                    for o in 0..<spec.outChannels {
                        for p in 0..<(oh * ow) where out[o * oh * ow + p] { position[p] = true }
                    }
                    var plane = [Bool](repeating: false, count: h * w)
                    let k = spec.kernelSize
                    for oy in 0..<oh {
                        for ox in 0..<ow where position[oy * ow + ox] {
                            for ky in 0..<k {
                                let y = oy * spec.stride + ky - spec.padding
                                guard y >= 0 && y < h else { continue }
                                for kx in 0..<k {
                                    let x = ox * spec.stride + kx - spec.padding
                                    if x >= 0 && x < w { plane[y * w + x] = true }
                                }
                            }
                        }
                    }
                    return Array((0..<spec.inChannels).map { _ in plane }.joined())
                }
            case .relu(let site):
                sites[site].live = out
                return out
            case .pool(let site, _, let c, let h, let w):
                sites[site].live = out
                var input = [Bool](repeating: false, count: c * h * w)
                let (ph, pw) = (h / 2, w / 2)
                for ch in 0..<c {
                    for i in 0..<ph {
                        for j in 0..<pw where out[(ch * ph + i) * pw + j] {
                            for s in 0..<4 { input[(ch * h + 2 * i + s / 2) * w + 2 * j + s % 2] = true }
                        }
                    }
                }
                return input
            case .globalAveragePool(let c, let plane):
                return Array((0..<c).map { [Bool](repeating: out[$0], count: plane) }.joined())
            case .residual(let body, let shortcut, let reluSite):
                if let reluSite { sites[reluSite].live = out }
                let fromBody = liveInput(body, outputLive: out)
                let fromShortcut = shortcut.map { liveInput($0, outputLive: out) } ?? out
                return zip(fromBody, fromShortcut).map { $0 || $1 }
            }
        }
    }
}

/// The exact pieces of a ``FoldedNetwork`` along one segment
/// x(t) = x₀ + t(x₁ − x₀), t ∈ [0, 1]; see ``NetworkSegmentWalk``.
public struct NetworkSegmentPieces: Sendable {
    /// The breakpoints in (0, 1), increasing.
    public var breakpoints: [Double]
    /// Per breakpoint, whether a unit whose selection changes there can
    /// reach the logits (``NetworkSites/Site/live``).
    public var breakpointReachesLogits: [Bool]
    /// Per breakpoint, the selection units that change there (several
    /// when events within ``NetworkSegmentWalk/mergeTolerance`` merged).
    public var breakpointEvents: [Int]
    /// Per breakpoint, the first site in forward order (``NetworkSites/sites``
    /// index) whose selection changes there; −1 where none does.
    public var breakpointSites: [Int]
    /// Per site, the selection changes along the segment.
    public var eventsPerSite: [Int]
    /// The logits at the range's start, every breakpoint and its end, as the walk carries them
    /// (classes values each).
    public var knotLogits: [Double]
    /// ‖x₁ − x₀‖₂ in the network's input units.
    public var length: Double
    /// The part of [0, 1] walked; the pieces are those of this range.
    public var range: ClosedRange<Double>

    /// Pieces of the activation pattern: breakpoints + 1.
    public var pieces: Int { breakpoints.count + 1 }
    /// Pieces of the function: breakpoints that can reach the logits + 1.
    public var piecesReachingLogits: Int { breakpointReachesLogits.filter { $0 }.count + 1 }
}

/// The exact pieces of a ``FoldedNetwork`` (eval mode, BatchNorm folded)
/// along x(t) = x₀ + t(x₁ − x₀), layer by layer.
///
/// On a partition of [0, 1] on which every quantity computed so far is
/// affine in t, a continuous piecewise-affine function is its values at the
/// knots. The walk carries every layer's values at the knots (one image per
/// knot): an affine layer (conv or linear, BatchNorm folded) and the global
/// average pool are applied to every knot (``HostNetworkForward/layerOutput(_:_:batch:)``,
/// the host's dgemm), a residual addition adds knot by knot. A site changes
/// the selection of a unit inside an interval [tₖ, tₖ₊₁] only where its
/// affine pieces cross: a ReLU unit z at t* = tₖ + (tₖ₊₁ − tₖ)·z(tₖ)/(z(tₖ) − z(tₖ₊₁))
/// when z(tₖ), z(tₖ₊₁) have strictly opposite signs; a pool window where a
/// candidate overtakes the one passed on (the upper envelope of at most
/// five lines, in order). Each such time becomes a knot, and every tensor
/// still needed (the current one and the inputs of open residual blocks)
/// gets its value there by linear interpolation, exact since it is affine
/// on the interval. After the last layer the knots are the breakpoints of
/// the activation pattern, and the logits are known at each of them.
///
/// Each breakpoint's events are found by comparing every unit's selection
/// on the two pieces next to it (at their midpoints), so a unit whose
/// crossing falls on an existing knot counts there. Times within
/// ``mergeTolerance`` of a knot (or of 0 or 1) join it, as in
/// ``PiecewiseAffineConvNet/pieces(from:to:)``; selection on a piece
/// follows the forward pass: a ReLU unit is on when > 0, a pool window
/// passes the first largest candidate, "off" first.
public struct NetworkSegmentWalk: Sendable {
    public let network: FoldedNetwork
    public let sites: NetworkSites
    let forward: HostNetworkForward

    /// See ``PiecewiseAffineConvNet/breakpointMergeTolerance``.
    public static let mergeTolerance = PiecewiseAffineConvNet.breakpointMergeTolerance

    /// Knots per dgemm call (bounds the im2col matrix: 64 knots of a 16×28×28 layer are 58 MB).
    static let knotChunk = 64

    public init(_ network: FoldedNetwork) {
        self.network = network
        sites = NetworkSites(network)
        forward = HostNetworkForward.folded(network)
    }

    /// The pieces of t ∈ `range` ⊆ [0, 1] (the whole segment by default).
    /// The range is walked in windows of at most `knotLimit` knots (a
    /// window whose knots pass the limit at some layer is halved and walked
    /// again), which bounds the memory to `knotLimit` images of the widest
    /// layer per open tensor; a breakpoint within ``mergeTolerance`` of a
    /// window's edge is not counted.
    public func pieces(
        from x0: [Double], to x1: [Double], over range: ClosedRange<Double> = 0...1, knotLimit: Int = 4096
    ) -> NetworkSegmentPieces {
        precondition(x0.count == network.inputSize && x1.count == x0.count, "pieces: images of the model's input size")
        precondition(range.lowerBound >= 0 && range.upperBound <= 1, "pieces: a range inside [0, 1]")
        let d = zip(x1, x0).map { $0 - $1 }
        func image(_ t: Double) -> [Double] { (0..<x0.count).map { x0[$0] + t * d[$0] } }
        func walk(_ lo: Double, _ hi: Double, limit: Int) -> [WalkState] {
            var state = WalkState(ts: [lo, hi], x: image(lo) + image(hi), size: x0.count, sites: sites.sites.count)
            state.knotLimit = limit
            run(sites.ops, &state)
            guard state.overflow else { return [state] }
            let mid = (lo + hi) / 2
            let next = hi - lo > 1e-6 ? limit : Int.max
            return walk(lo, mid, limit: next) + walk(mid, hi, limit: next)
        }
        let windows = walk(range.lowerBound, range.upperBound, limit: knotLimit)
        var result = NetworkSegmentPieces(
            breakpoints: [], breakpointReachesLogits: [], breakpointEvents: [], breakpointSites: [],
            eventsPerSite: [Int](repeating: 0, count: sites.sites.count), knotLogits: [],
            length: d.reduce(0.0) { $0 + $1 * $1 }.squareRoot(), range: range)
        let k = network.classes
        result.knotLogits = Array(windows[0].x[0..<k])
        for w in windows {
            let n = w.ts.count
            result.breakpoints += w.ts[1..<(n - 1)]
            result.breakpointReachesLogits += w.live[1..<(n - 1)]
            result.breakpointEvents += w.events[1..<(n - 1)]
            result.breakpointSites += w.firstSite[1..<(n - 1)]
            result.knotLogits += w.x[k..<((n - 1) * k)]
            for i in result.eventsPerSite.indices { result.eventsPerSite[i] += w.eventsPerSite[i] }
        }
        let last = windows[windows.count - 1]
        result.knotLogits += last.x[((last.ts.count - 1) * k)...]
        return result
    }

    private func run(_ ops: [NetworkSites.Op], _ s: inout WalkState) {
        for op in ops where !s.overflow { run(op, &s) }
    }

    private func run(_ op: NetworkSites.Op, _ s: inout WalkState) {
        switch op {
        case .affine(let l):
            let n = s.ts.count
            let outSize = network.layers[l].outputSize
            var out = [Double]()
            out.reserveCapacity(n * outSize)
            var start = 0
            while start < n {
                let b = min(Self.knotChunk, n - start)
                out += forward.layerOutput(l, Array(s.x[(start * s.size)..<((start + b) * s.size)]), batch: b)
                start += b
            }
            s.x = out
            s.size = outSize
        case .globalAveragePool(let c, let plane):
            s.x = forward.apply([.globalAveragePool(channels: c, plane: plane)], s.x, batch: s.ts.count)
            s.size = c
        case .relu(let site):
            relu(site, &s)
        case .pool(let site, let fused, let c, let h, let w):
            pool(site, fused: fused, channels: c, height: h, width: w, &s)
        case .residual(let body, let shortcut, let reluSite):
            s.pending.append((s.x, s.size))
            run(body, &s)
            guard !s.overflow else { return }
            let skip = s.pending.removeLast()
            if let shortcut {
                s.pending.append((s.x, s.size))
                (s.x, s.size) = skip
                run(shortcut, &s)
                guard !s.overflow else { return }
                let bodyOut = s.pending.removeLast()
                for i in s.x.indices { s.x[i] += bodyOut.0[i] }
            } else {
                for i in s.x.indices { s.x[i] += skip.0[i] }
            }
            if let reluSite { relu(reluSite, &s) }
        }
    }

    /// A ReLU site on the current tensor (its pre-activations).
    private func relu(_ site: Int, _ s: inout WalkState) {
        let u = s.size
        var roots = [[Double]](repeating: [], count: s.ts.count - 1)
        s.x.withUnsafeBufferPointer { z in
            for k in 0..<(s.ts.count - 1) {
                let (t0, t1) = (s.ts[k], s.ts[k + 1])
                let a = z.baseAddress! + k * u
                let b = a + u
                for i in 0..<u {
                    let z0 = a[i]
                    let z1 = b[i]
                    if (z0 < 0 && z1 > 0) || (z0 > 0 && z1 < 0) { roots[k].append(t0 + (t1 - t0) * (z0 / (z0 - z1))) }
                }
            }
        }
        s.insert(roots)
        guard !s.overflow else { return }
        // Events: each unit's state on the pieces either side of each interior knot (midpoint signs).
        let live = sites.sites[site].live
        s.x.withUnsafeBufferPointer { z in
            for k in 1..<max(1, s.ts.count - 1) {
                let l = z.baseAddress! + (k - 1) * u
                let m = l + u
                let r = m + u
                var changed = 0
                var reaches = false
                for i in 0..<u where (l[i] + m[i] > 0) != (m[i] + r[i] > 0) {
                    changed += 1
                    if live[i] { reaches = true }
                }
                s.events[k] += changed
                s.eventsPerSite[site] += changed
                if changed > 0 && s.firstSite[k] < 0 { s.firstSite[k] = site }
                if reaches { s.live[k] = true }
            }
        }
        for i in s.x.indices where !(s.x[i] > 0) { s.x[i] = 0 }
    }

    /// A pool site: windows of 4 candidates (5 with "off" when `fused`).
    private func pool(
        _ site: Int, fused: Bool, channels c: Int, height h: Int, width w: Int, _ s: inout WalkState
    ) {
        let (ph, pw) = (h / 2, w / 2)
        let windows = c * ph * pw
        // Candidate j of window v: its offset in the (C, H, W) map (j = 0…3), or off (j = 4).
        var offsets = [Int](repeating: 0, count: 4 * windows)
        for v in 0..<windows {
            let (ch, i, j) = (v / (ph * pw), (v / pw) % ph, v % pw)
            for q in 0..<4 { offsets[4 * v + q] = (ch * h + 2 * i + q / 2) * w + 2 * j + q % 2 }
        }
        let size = s.size
        let first = fused ? -1 : 0  // candidate -1 is off (value 0)
        func value(_ z: UnsafePointer<Double>, _ v: Int, _ j: Int) -> Double { j < 0 ? 0 : z[offsets[4 * v + j]] }
        var roots = [[Double]](repeating: [], count: s.ts.count - 1)
        s.x.withUnsafeBufferPointer { zb in
            for k in 0..<(s.ts.count - 1) {
                let (t0, t1) = (s.ts[k], s.ts[k + 1])
                let a = zb.baseAddress! + k * size
                let b = a + size
                for v in 0..<windows {
                    // The winner just after t₀: largest value, then largest rise, then first.
                    var win = first
                    for j in (first + 1)..<4 {
                        let (vj, vw) = (value(a, v, j), value(a, v, win))
                        if vj > vw || (vj == vw && value(b, v, j) - vj > value(b, v, win) - vw) { win = j }
                    }
                    var now = 0.0
                    for _ in 0..<5 {
                        var best = Double.infinity
                        var bestJ = win
                        var bestRise = 0.0
                        let riseW = value(b, v, win) - value(a, v, win)
                        for j in first..<4 where j != win {
                            let rise = (value(b, v, j) - value(a, v, j)) - riseW
                            guard rise > 0 else { continue }
                            let lambda = max(now, (value(a, v, win) - value(a, v, j)) / rise)
                            if lambda < best || (lambda == best && rise > bestRise) {
                                best = lambda
                                bestJ = j
                                bestRise = rise
                            }
                        }
                        guard best < 1 else { break }
                        if best > 0 { roots[k].append(t0 + (t1 - t0) * best) }
                        win = bestJ
                        now = best
                    }
                }
            }
        }
        s.insert(roots)
        guard !s.overflow else { return }
        let live = sites.sites[site].live
        var out = [Double](repeating: 0, count: s.ts.count * windows)
        s.x.withUnsafeBufferPointer { zb in
            // The winner on the piece between knots k and k+1, from its midpoint (first largest, off first).
            func winner(_ k: Int, _ v: Int) -> Int {
                let a = zb.baseAddress! + k * size
                let b = a + size
                var win = first
                var top = fused ? 0.0 : value(a, v, 0) + value(b, v, 0)
                for j in (first + 1)..<4 {
                    let m = value(a, v, j) + value(b, v, j)
                    if m > top {
                        top = m
                        win = j
                    }
                }
                return win
            }
            let n = s.ts.count
            for v in 0..<windows {
                var left = winner(0, v)
                for k in 1..<max(1, n - 1) {
                    let right = winner(k, v)
                    if right != left {
                        s.events[k] += 1
                        s.eventsPerSite[site] += 1
                        if s.firstSite[k] < 0 { s.firstSite[k] = site }
                        if live[v] { s.live[k] = true }
                    }
                    left = right
                }
                for k in 0..<n {
                    let z = zb.baseAddress! + k * size
                    var top = fused ? 0.0 : value(z, v, 0)
                    for j in 0..<4 { top = max(top, value(z, v, j)) }
                    out[k * windows + v] = top
                }
            }
        }
        s.x = out
        s.size = windows
    }
}

/// The knots, the current tensor at each knot (knot-major), the tensors of
/// open residual blocks, and per knot its events.
private struct WalkState {
    var ts: [Double]
    var x: [Double]
    var size: Int
    var pending: [([Double], Int)] = []
    var live: [Bool]
    var events: [Int]
    /// Per knot, the first site whose selection changes there (−1: none yet).
    var firstSite: [Int]
    var eventsPerSite: [Int]
    /// Set when an insertion would pass `knotLimit` knots: the walk stops.
    var knotLimit = Int.max
    var overflow = false

    init(ts: [Double], x: [Double], size: Int, sites: Int) {
        self.ts = ts
        self.x = x
        self.size = size
        live = [Bool](repeating: false, count: ts.count)
        events = [Int](repeating: 0, count: ts.count)
        firstSite = [Int](repeating: -1, count: ts.count)
        eventsPerSite = [Int](repeating: 0, count: sites)
    }

    /// Adds the roots found in each interval as knots (sorted; a root within
    /// the merge tolerance of the previous knot of its interval, or of the
    /// interval's end, joins it), interpolating every tensor.
    mutating func insert(_ roots: [[Double]]) {
        let tol = NetworkSegmentWalk.mergeTolerance
        // The new partition as (interval k, λ): λ = 0 is old knot k.
        var plan: [(k: Int, lambda: Double, t: Double)] = []
        var added = 0
        for k in 0..<ts.count {
            plan.append((k, 0, ts[k]))
            guard k < ts.count - 1, !roots[k].isEmpty else { continue }
            let (t0, t1) = (ts[k], ts[k + 1])
            var last = t0
            for r in roots[k].sorted() where r - last > tol && t1 - r > tol {
                plan.append((k, (r - t0) / (t1 - t0), r))
                last = r
                added += 1
            }
        }
        guard added > 0 else { return }
        guard plan.count <= knotLimit else {
            overflow = true
            return
        }
        func interpolate(_ v: [Double], _ size: Int) -> [Double] {
            var out = [Double](repeating: 0, count: plan.count * size)
            v.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for (i, p) in plan.enumerated() {
                        let a = src.baseAddress! + p.k * size
                        let o = dst.baseAddress! + i * size
                        if p.lambda == 0 {
                            o.update(from: a, count: size)
                        } else {
                            let b = a + size
                            let l = p.lambda
                            for j in 0..<size { o[j] = a[j] + l * (b[j] - a[j]) }
                        }
                    }
                }
            }
            return out
        }
        x = interpolate(x, size)
        for i in pending.indices { pending[i].0 = interpolate(pending[i].0, pending[i].1) }
        live = plan.map { $0.lambda == 0 ? live[$0.k] : false }
        events = plan.map { $0.lambda == 0 ? events[$0.k] : 0 }
        firstSite = plan.map { $0.lambda == 0 ? firstSite[$0.k] : -1 }
        ts = plan.map(\.t)
    }
}
