import Foundation
import GPUNet
import NetIO
import TestSupport
import XCTest

/// Training in SVD coordinates (`SVDParameterizedNetwork` around
/// TinyConvNet), on every test device (the host variants, PoCL × both
/// kernel families), against the float64 loops of
/// `Tests/TestSupport/NaiveReferenceSVD.swift` and central differences.
///
/// Rules: forward values (W, the scaled columns, logits) within 1e-4
/// absolute (1e-5 where the test says why it can be tighter); gradients
/// within 1e-4 of the reference tensor's largest magnitude; orthogonality
/// ‖XᵀX − I‖_max ≤ 1e-5.
final class SVDParameterizationTests: XCTestCase {
    /// TinyConvNet from `seed`'s initial weights, wrapped.
    func network(on device: any Device, seed: UInt64 = 3, l1: Float = 0) throws -> SVDParameterizedNetwork<
        TinyConvNet
    > {
        let tiny = try TinyConvNet(device: device)
        try tiny.load(TinyConvNet.initialWeights(seed: seed))
        return try SVDParameterizedNetwork(base: tiny, settings: SVDTrainingSettings(sigmaL1: l1))
    }

    /// The wrapper's parameter buffer called `name` (`conv2.U`, …).
    func parameter(_ net: SVDParameterizedNetwork<TinyConvNet>, _ name: String) throws -> Buffer {
        try XCTUnwrap(zip(net.parameterNames, net.parameterBuffers).first { $0.0 == name }?.1, name)
    }

    func gradient(_ net: SVDParameterizedNetwork<TinyConvNet>, _ name: String) throws -> Buffer {
        try XCTUnwrap(zip(net.parameterNames, net.gradientBuffers).first { $0.0 == name }?.1, name)
    }

    /// (name, out, columns, rank) of TinyConvNet's two conv layers.
    static let layers = [("conv1", 8, 9, 8), ("conv2", 16, 72, 16)]

    // MARK: The two kernels

    /// svdScaleColumns and svdSigmaGradient at odd shapes (one row, one
    /// column, rows < rank, a factor's full size), with a negative σ, a
    /// zero σ and a masked column, against the float64 loops.
    func testKernelsMatchFloat64Loops() throws {
        for device in try testDevices() {
            for (rows, rank) in [(1, 1), (7, 5), (3, 13), (72, 16)] {
                let shape = SVDFactorShape(rows: rows, rank: rank)
                let x = randomFloats(rows * rank, seed: 5)
                let g = randomFloats(rows * rank, seed: 6)
                var sigma = randomFloats(rank, scale: 2, seed: 7)
                var mask = [Float](repeating: 1, count: rank)
                if rank > 2 {
                    sigma[1] = 0
                    mask[2] = 0
                }
                let on = "\(shape) on \(device.info.summary)"
                let out = try device.makeBuffer(count: rows * rank, kind: .float32)
                let bx = try device.makeBuffer(x)
                let bs = try device.makeBuffer(sigma)
                let bm = try device.makeBuffer(mask)
                try device.svdScaleColumns(shape, x: bx, sigma: bs, mask: bm, output: out)
                let scaled = NaiveReference.svdScaleColumns(rows: rows, rank: rank, x: x, sigma: sigma, mask: mask)
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(try device.floats(out), scaled), 1e-6, on)
                // In place.
                try device.svdScaleColumns(shape, x: bx, sigma: bs, mask: bm, output: bx)
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(try device.floats(bx), scaled), 1e-6, on)
                let ds = try device.makeBuffer(count: rank, kind: .float32)
                try device.svdSigmaGradient(
                    shape, u: try device.makeBuffer(x), g: try device.makeBuffer(g), sigma: bs, mask: bm, l1: 0.25,
                    gradSigma: ds)
                let expected = NaiveReference.svdSigmaGradient(
                    rows: rows, rank: rank, u: x, g: g, sigma: sigma, mask: mask, l1: 0.25)
                XCTAssertLessThanOrEqual(maxRelativeToScale(try device.floats(ds), expected), 1e-5, on)
            }
        }
    }

    /// svdNewtonSchulzFactor at ranks 1, 2, 5, 16 and 64 (a random Gram, a
    /// near-identity one, and zero), scaled and not, against the float64
    /// loop. The scaled entries are ≤ 1.5 (1e-6 absolute is a few float32
    /// roundings); the unscaled ones of the random Gram up to ~1.5·r: the
    /// rule there is 1e-6 of the largest.
    func testNewtonSchulzFactorMatchesFloat64Loop() throws {
        for device in try testDevices() {
            for rank in [1, 2, 5, 16, 64] {
                let random = randomFloats(rank * rank, scale: 3, seed: UInt64(rank))
                let near = (0..<(rank * rank)).map { ($0 % (rank + 1) == 0 ? 1 : 0) + random[$0] * 1e-3 }
                for gram in [random, near, [Float](repeating: 0, count: rank * rank)] {
                    for scaled in [true, false] {
                        let out = try device.makeBuffer(count: rank * rank, kind: .float32)
                        try device.svdNewtonSchulzFactor(
                            rank: rank, gram: try device.makeBuffer(gram), factor: out, scaled: scaled)
                        let expected = NaiveReference.svdNewtonSchulzFactor(rank: rank, gram: gram, scaled: scaled)
                        let actual = try device.floats(out)
                        XCTAssertLessThanOrEqual(
                            scaled ? maxAbsoluteDifference(actual, expected) : maxRelativeToScale(actual, expected),
                            1e-6, "rank \(rank), scaled \(scaled) on \(device.info.summary)")
                    }
                }
            }
        }
    }

    /// Factors thrown far off the manifold (3·X plus noise of ±0.5 an entry:
    /// singular values up to ~5, outside plain Newton–Schulz's region of
    /// convergence (0, √3), where it diverges): the scaled iteration stays
    /// finite, its error falls with every iteration, and 12 iterations
    /// reach ≤ 1e-5.
    func testRetractionRecoversFromALargeStep() throws {
        for device in try testDevices() {
            let on = device.info.summary
            var previous = Double.infinity
            for iterations in [1, 3, 6, 12] {
                let net = try network(on: device)
                net.newtonSchulzIterations = iterations
                let buffer = try parameter(net, "conv2.V")
                let x = zip(try device.floats(buffer), randomFloats(72 * 16, scale: 0.5, seed: 77)).map { 3 * $0 + $1 }
                try device.upload(x, to: buffer)
                net.markFactorsChanged()
                try net.composeIfChanged()
                let error = NaiveReference.orthogonalityError(try device.floats(buffer), rows: 72, rank: 16)
                XCTAssertTrue(error.isFinite, "\(iterations) iterations on \(on)")
                XCTAssertLessThan(error, previous, "\(iterations) iterations on \(on)")
                previous = error
            }
            XCTAssertLessThanOrEqual(previous, 1e-5, on)
        }
    }

    /// Factors left far off the manifold at an epoch's end (conv2's V as in
    /// the test above): the epoch's report shows the last step's error
    /// (> 1e-5), retracts further, and leaves factors within 1e-5, which the
    /// checkpoint then holds and a fresh network loads.
    func testEpochEndRetractsFactorsThatTheLastStepLeftOffTheManifold() throws {
        for device in try testDevices() {
            let on = device.info.summary
            let net = try network(on: device)
            let buffer = try parameter(net, "conv2.V")
            let x = zip(try device.floats(buffer), randomFloats(72 * 16, scale: 0.5, seed: 77)).map { 3 * $0 + $1 }
            try device.upload(x, to: buffer)
            net.markFactorsChanged()
            let report = try XCTUnwrap(try net.finishEpoch(), on)
            let conv2 = try XCTUnwrap(report.layers.last, on)
            XCTAssertGreaterThan(conv2.lastStepOrthogonalityError, 1e-5, on)
            XCTAssertLessThanOrEqual(max(conv2.uOrthogonalityError, conv2.vOrthogonalityError), 1e-5, on)
            XCTAssertLessThanOrEqual(
                NaiveReference.orthogonalityError(try device.floats(buffer), rows: 72, rank: 16), 1e-5, on)
            XCTAssertTrue(report.summary.contains("(last step "), report.summary)
            let conv1 = try XCTUnwrap(report.layers.first, on)
            XCTAssertEqual(conv1.lastStepOrthogonalityError, max(conv1.uOrthogonalityError, conv1.vOrthogonalityError))
            try network(on: device, seed: 8).load(checkpointTensors: try net.checkpointTensors())
        }
    }

    // MARK: Composition and gradients

    /// The wrapper's first composition gives back the base's initial W (the
    /// SVD's reconstruction) and equals the float64 product of the factors
    /// it holds; the factors are orthonormal. W's entries are ≤ 1/3 and a
    /// sum of ≤ 16 float32 products: 1e-5 is ~100 roundings.
    func testComposedWeightIsTheInitialWeightAndTheFactorsProduct() throws {
        let initial = TinyConvNet.initialWeights(seed: 3)
        for device in try testDevices() {
            let net = try network(on: device)
            try net.composeIfChanged()
            let on = device.info.summary
            for ((name, out, columns, rank), original) in zip(Self.layers, [initial.conv1, initial.conv2]) {
                let u = try device.floats(try parameter(net, name + ".U"))
                let s = try device.floats(try parameter(net, name + ".S"))
                let v = try device.floats(try parameter(net, name + ".V"))
                let w = try device.floats(name == "conv1" ? net.base.parameters.conv1 : net.base.parameters.conv2)
                let product = NaiveReference.svdCompose(
                    out: out, columns: columns, rank: rank, u: u.map(Double.init), sigma: s.map(Double.init),
                    mask: [Double](repeating: 1, count: rank), v: v.map(Double.init))
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(w, product), 1e-5, "\(name) W vs U·diag(σ)·Vᵀ on \(on)")
                XCTAssertLessThanOrEqual(
                    maxAbsoluteDifference(w, original), 1e-5, "\(name) W vs the initial W on \(on)")
                XCTAssertLessThanOrEqual(NaiveReference.orthogonalityError(u, rows: out, rank: rank), 1e-5, on)
                XCTAssertLessThanOrEqual(NaiveReference.orthogonalityError(v, rows: columns, rank: rank), 1e-5, on)
            }
        }
    }

    /// ∂L/∂U, ∂L/∂σ, ∂L/∂V from a random dW (with λ = 0.01 and conv2's σ₃
    /// pruned) against (a) the float64 loops and (b) central differences of
    /// L(U,σ,V) = Σ dW ⊙ W(U,σ⊙m,V) + λ·Σ_{m_j=1}|σ_j| in float64 at the
    /// device's factors, whose gradient through W is the chain rule the
    /// device applies to any upstream dW. L is multilinear in the factors
    /// (|σ_j| ≥ 1e-2 ≫ h = 1e-4 away from the L1 kink), so the central
    /// difference is exact but for float64 rounding (~1e-12 relative); the
    /// device's float32 sums of ≤ 72 terms stay below 1e-5 of the scale.
    func testFactorGradientsMatchFloat64AndCentralDifferences() throws {
        let l1: Float = 0.01
        var checkedDifferences = false
        for device in try testDevices() {
            let net = try network(on: device, l1: l1)
            var state = try net.checkpointTensors()
            let s2 = try XCTUnwrap(state.firstIndex { $0.name == "conv2.S" })
            state[s2].values[3] = 0
            try net.load(checkpointTensors: state)
            try net.composeIfChanged()
            let on = device.info.summary
            for (name, out, columns, _) in Self.layers {
                let dW = randomFloats(out * columns, seed: UInt64(out))
                try device.upload(dW, to: name == "conv1" ? net.base.gradients.conv1 : net.base.gradients.conv2)
            }
            try net.backpropagateToFactors()
            for (name, out, columns, rank) in Self.layers {
                let dW = randomFloats(out * columns, seed: UInt64(out))
                let u = try device.floats(try parameter(net, name + ".U"))
                let s = try device.floats(try parameter(net, name + ".S"))
                let v = try device.floats(try parameter(net, name + ".V"))
                let mask: [Float] = (0..<rank).map { name == "conv2" && $0 == 3 ? 0 : 1 }
                let expected = NaiveReference.svdFactorGradients(
                    out: out, columns: columns, rank: rank, u: u, sigma: s, mask: mask, v: v, dW: dW, l1: l1)
                let du = try device.floats(try gradient(net, name + ".U"))
                let ds = try device.floats(try gradient(net, name + ".S"))
                let dv = try device.floats(try gradient(net, name + ".V"))
                XCTAssertLessThanOrEqual(maxRelativeToScale(du, expected.u), 1e-4, "\(name).U on \(on)")
                XCTAssertLessThanOrEqual(maxRelativeToScale(ds, expected.sigma), 1e-4, "\(name).S on \(on)")
                XCTAssertLessThanOrEqual(maxRelativeToScale(dv, expected.v), 1e-4, "\(name).V on \(on)")
                XCTAssertEqual(ds[name == "conv2" ? 3 : 0] == 0, name == "conv2", "masked σ's gradient on \(on)")
                guard !checkedDifferences else { continue }
                let mask64 = mask.map(Double.init)
                func loss(_ u: [Double], _ s: [Double], _ v: [Double]) -> Double {
                    let w = NaiveReference.svdCompose(
                        out: out, columns: columns, rank: rank, u: u, sigma: s, mask: mask64, v: v)
                    return zip(w, dW).reduce(0) { $0 + $1.0 * Double($1.1) }
                        + Double(l1) * zip(s, mask64).reduce(0) { $0 + abs($1.0) * $1.1 }
                }
                let (u64, s64, v64) = (u.map(Double.init), s.map(Double.init), v.map(Double.init))
                XCTAssertGreaterThan(zip(s64, mask64).filter { $1 == 1 }.map { abs($0.0) }.min() ?? 0, 1e-2)
                let h = 1e-4
                func differences(_ x: [Double], _ f: ([Double]) -> Double) -> [Double] {
                    var probe = x
                    return x.indices.map { i in
                        probe[i] = x[i] + h
                        let up = f(probe)
                        probe[i] = x[i] - h
                        let down = f(probe)
                        probe[i] = x[i]
                        return (up - down) / (2 * h)
                    }
                }
                let fdU = differences(u64) { loss($0, s64, v64) }
                let fdS = differences(s64) { loss(u64, $0, v64) }
                let fdV = differences(v64) { loss(u64, s64, $0) }
                XCTAssertLessThanOrEqual(maxRelativeToScale(du, fdU), 1e-5, "\(name).U vs differences on \(on)")
                XCTAssertLessThanOrEqual(maxRelativeToScale(ds, fdS), 1e-5, "\(name).S vs differences on \(on)")
                XCTAssertLessThanOrEqual(maxRelativeToScale(dv, fdV), 1e-5, "\(name).V vs differences on \(on)")
            }
            checkedDifferences = true
        }
    }

    // MARK: Retraction

    /// The retraction of factors moved off the manifold (each entry by up to
    /// 5e-3, a few Adam steps at lr 1e-3: δ ≈ 0.05 in spectral norm for conv2's V) is
    /// its polar factor Q: QᵀQ = I (≤ 1e-5), and QᵀX symmetric positive
    /// definite (the characterisation of the polar factor; asymmetry ≤ 1e-5,
    /// Cholesky in float64 succeeds). The error after 1, 2 and 3
    /// Newton–Schulz iterations is printed (the measurement behind the
    /// default of 3); on the manifold the retraction moves nothing (≤ 1e-6).
    func testRetractionIsThePolarFactorWithinFloat32() throws {
        for device in try testDevices() {
            let on = device.info.summary
            var errors: [Int: Double] = [:]
            for iterations in 1...3 {
                let net = try network(on: device)
                net.newtonSchulzIterations = iterations
                let before = try Self.layers.flatMap { l in
                    try [l.0 + ".U", l.0 + ".V"].map { try device.floats(try parameter(net, $0)) }
                }
                net.markFactorsChanged()
                try net.composeIfChanged()
                if iterations == 3 {
                    for (l, index) in zip(Self.layers, [0, 2]) {
                        let q = try device.floats(try parameter(net, l.0 + ".V"))
                        XCTAssertLessThanOrEqual(maxAbsoluteDifference(q, before[index + 1]), 1e-6, "fixed point \(on)")
                    }
                }
                var worst = 0.0
                for (k, (name, out, columns, rank)) in Self.layers.enumerated() {
                    for (factor, rows, seed) in [("U", out, UInt64(10 + k)), ("V", columns, UInt64(20 + k))] {
                        let buffer = try parameter(net, "\(name).\(factor)")
                        let x = zip(try device.floats(buffer), randomFloats(rows * rank, scale: 5e-3, seed: seed)).map {
                            $0 + $1
                        }
                        try device.upload(x, to: buffer)
                        net.markFactorsChanged()
                        try net.composeIfChanged()
                        let q = try device.floats(buffer)
                        let error = NaiveReference.orthogonalityError(q, rows: rows, rank: rank)
                        worst = max(worst, error)
                        guard iterations == 3 else { continue }
                        XCTAssertLessThanOrEqual(error, 1e-5, "\(name).\(factor) on \(on)")
                        // QᵀX (rank × rank) in float64.
                        var m = [Double](repeating: 0, count: rank * rank)
                        for a in 0..<rank {
                            for b in 0..<rank {
                                for i in 0..<rows {
                                    m[a * rank + b] += Double(q[i * rank + a]) * Double(x[i * rank + b])
                                }
                            }
                        }
                        var asymmetry = 0.0
                        for a in 0..<rank {
                            for b in 0..<rank { asymmetry = max(asymmetry, abs(m[a * rank + b] - m[b * rank + a])) }
                        }
                        XCTAssertLessThanOrEqual(asymmetry, 1e-5, "\(name).\(factor): QᵀX symmetric on \(on)")
                        XCTAssertTrue(Self.isPositiveDefinite(m, n: rank), "\(name).\(factor): QᵀX > 0 on \(on)")
                    }
                }
                errors[iterations] = worst
            }
            print(
                "Newton–Schulz on \(on): max ‖XᵀX − I‖ after 1/2/3 iterations from X + U(±5e-3): "
                    + (1...3).map { String(format: "%.1e", errors[$0] ?? .nan) }.joined(separator: " / "))
        }
    }

    /// Cholesky of the symmetric part in float64: every pivot > 0.
    static func isPositiveDefinite(_ a: [Double], n: Int) -> Bool {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var sum = 0.5 * (a[i * n + j] + a[j * n + i])
                for k in 0..<j { sum -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard sum > 0 else { return false }
                    l[i * n + i] = sum.squareRoot()
                } else {
                    l[i * n + j] = sum / l[j * n + j]
                }
            }
        }
        return true
    }

    // MARK: Steps

    /// One training step (forward, backward, Adam, the next composition) on
    /// the host and on each OpenCL device from the same weights and batch:
    /// logits and the composed W after the step within 1e-4 absolute, every
    /// gradient (factors, fc) within 1e-4 of the host tensor's largest magnitude.
    func testOneStepAgreesBetweenHostAndOpenCL() throws {
        let batch = 5
        var random = SeededRandom(seed: 9, stream: 0)
        let images = (0..<(batch * 784)).map { _ in random.uniform(1) }
        let labels = (0..<batch).map { _ in Int32(random.next() % 10) }
        func step(_ device: any Device) throws -> (logits: [Float], gradients: [[Float]], weights: [[Float]]) {
            let net = try network(on: device, l1: 0.01)
            let w = try net.workspace(batch: batch)
            try net.base.setBatch(w, images: images, labels: labels)
            let optimizer = try Optimizer(
                .adam(), learningRate: 1e-3, parameters: net.parameterBuffers, names: net.parameterNames,
                device: device)
            try net.forward(w, training: true)
            let logits = try device.floats(w.logits)
            try net.backward(w)
            let gradients = try net.gradientBuffers.map { try device.floats($0) }
            try optimizer.update(parameters: net.parameterBuffers, gradients: net.gradientBuffers)
            try net.composeIfChanged()
            return (
                logits, gradients,
                [try device.floats(net.base.parameters.conv1), try device.floats(net.base.parameters.conv2)]
            )
        }
        let host = try step(HostDevice())
        for device in try openCLTestDevices() {
            let on = device.info.summary
            let other = try step(device)
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(other.logits, host.logits), 1e-4, "logits on \(on)")
            for (k, (a, e)) in zip(other.gradients, host.gradients).enumerated() {
                XCTAssertLessThanOrEqual(maxRelativeToScale(a, e), 1e-4, "gradient \(k) on \(on)")
            }
            for (a, e) in zip(other.weights, host.weights) {
                XCTAssertLessThanOrEqual(maxAbsoluteDifference(a, e), 1e-4, "W after the step on \(on)")
            }
        }
    }

    /// The trainer's step with the SVD wrapper, queued as the trainer
    /// queues it over a block of 20 steps: one host wait per block (its
    /// results), nothing uploaded: the retraction and composition add no wait.
    func testStepWaitsOncePerBlockAndUploadsNothing() throws {
        for device in try testDevices() {
            let net = try network(on: device)
            let batch = 16
            let w = try net.workspace(batch: batch)
            var random = SeededRandom(seed: 2, stream: 0)
            try net.base.setBatch(
                w, images: (0..<(batch * 784)).map { _ in random.uniform(1) },
                labels: (0..<batch).map { _ in Int32(random.next() % 10) })
            let optimizer = try Optimizer(
                .adam(), learningRate: 1e-3, parameters: net.parameterBuffers, names: net.parameterNames,
                device: device)
            try optimizer.prepare()
            let s = try measureTrainingSteps(net, on: w, optimizer: optimizer, stepsPerRead: 20)
            XCTAssertEqual(s.hostWaitsPerStep, 1.0 / 20, device.info.summary)
            XCTAssertEqual(s.bytesToDevicePerStep, 0, device.info.summary)
            print("SVD step on \(device.info.summary): \(s.launchesPerStep) launches")
        }
    }

    // MARK: Checkpoints

    /// checkpointTensors names the factors in state_dict order; loading them
    /// into a fresh wrapper gives the same tensors back (factors within
    /// 1e-6: the load's composition retracts them again) and keeps a σ of 0
    /// pruned (its mask 0: W is the product without it, within 1e-5).
    func testCheckpointRoundTripKeepsFactorsAndMask() throws {
        let device = HostDevice()
        let net = try network(on: device, seed: 4)
        var state = try net.checkpointTensors()
        XCTAssertEqual(
            state.map(\.name),
            ["conv1.U", "conv1.S", "conv1.V", "conv2.U", "conv2.S", "conv2.V", "fc.weight", "fc.bias"])
        XCTAssertEqual(state.map(\.shape), [[8, 8], [8], [9, 8], [16, 16], [16], [72, 16], [10, 400], [10]])
        XCTAssertEqual(net.parameterNames, state.map(\.name))
        let s2 = try XCTUnwrap(state.firstIndex { $0.name == "conv2.S" })
        state[s2].values[5] = 0
        let other = try network(on: device, seed: 99)
        try other.load(checkpointTensors: state)
        let back = try other.checkpointTensors()
        for (a, e) in zip(back, state) {
            XCTAssertEqual(a.name, e.name)
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(a.values, e.values), 1e-6, a.name)
        }
        XCTAssertEqual(back[s2].values[5], 0)
        let u = state[3].values.map(Double.init)
        let s = state[4].values.map(Double.init)
        let v = state[5].values.map(Double.init)
        let w = NaiveReference.svdCompose(
            out: 16, columns: 72, rank: 16, u: u, sigma: s, mask: (0..<16).map { $0 == 5 ? 0 : 1 }, v: v)
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(try device.floats(other.base.parameters.conv2), w), 1e-5)
    }

    /// A U or V that is not orthonormal beyond 1e-3 is refused by the
    /// wrapper's load and by the checkpoint reader, each naming the tensor;
    /// the wrapper's state is then unchanged.
    func testNonOrthonormalFactorIsRefusedNamingIt() throws {
        let device = HostDevice()
        let net = try network(on: device)
        let good = try net.checkpointTensors()
        for target in ["conv1.U", "conv2.V"] {
            var state = good
            let i = try XCTUnwrap(state.firstIndex { $0.name == target })
            state[i].values[0] += 0.05
            let fresh = try network(on: device, seed: 7)
            let before = try fresh.checkpointTensors()
            XCTAssertThrowsError(try fresh.load(checkpointTensors: state)) { error in
                XCTAssertTrue("\(error)".contains(target), "\(error)")
                XCTAssertTrue("\(error)".contains("orthonormal"), "\(error)")
            }
            XCTAssertEqual(try fresh.checkpointTensors(), before, "nothing loaded")
            let file = Checkpoint(tensors: state).safetensors
            XCTAssertThrowsError(try Checkpoint(file)) { error in
                XCTAssertTrue("\(error)".contains(target), "\(error)")
            }
        }
        // The reader composes an orthonormal file into TinyConvNet's W (float64 product).
        let read = try Checkpoint(Checkpoint(tensors: good).safetensors)
        XCTAssertEqual(read.tensors.map(\.name), TinyConvNetWeights.tensorShapes.map(\.name))
        let w = NaiveReference.svdCompose(
            out: 16, columns: 72, rank: 16, u: good[3].values.map(Double.init), sigma: good[4].values.map(Double.init),
            mask: [Double](repeating: 1, count: 16), v: good[5].values.map(Double.init))
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(read.weights.conv2, w), 1e-7)
        XCTAssertEqual(read.svdSigmas["conv2"], good[4].values)
    }

    // MARK: Training

    /// Two epochs in one run, and one epoch then `resume` for the second,
    /// with pruning in both (λ = 0.1, threshold 0.2): the same checkpoint
    /// tensors bit for bit (a load composes without retracting again), the
    /// same ranks and losses.
    func testResumeContinuesToTheSameFactors() throws {
        let dir = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST_DIR is not set and ../shared/data/mnist is missing")
        let sets = try MNISTLoader.load(kind: .mnist, directory: dir)
        let svd = SVDTrainingSettings(sigmaL1: 0.1, pruneThreshold: 0.2)
        let device = HostDevice()
        func trainer(epochs: Int) throws -> ModelTrainer<SVDParameterizedNetwork<TinyConvNet>> {
            let tiny = try TinyConvNet(device: device)
            try tiny.load(TinyConvNet.initialWeights(seed: 5))
            return try ModelTrainer(
                network: try SVDParameterizedNetwork(base: tiny, settings: svd),
                settings: TrainingSettings(epochs: epochs, seed: 5, trainLimit: 640, testLimit: 100, svd: svd),
                train: sets.train, test: sets.test)
        }
        let whole = try TestEnvironment.makeTemporaryDirectory("svd-whole")
        let split = try TestEnvironment.makeTemporaryDirectory("svd-split")
        addTeardownBlock {
            try? FileManager.default.removeItem(at: whole)
            try? FileManager.default.removeItem(at: split)
        }
        let a = try trainer(epochs: 2)
        try a.run(outputDirectory: whole)
        try trainer(epochs: 1).run(outputDirectory: split)
        let b = try trainer(epochs: 2)
        XCTAssertEqual(try b.resume(from: split), 1)
        try b.run(outputDirectory: split)
        let first = try XCTUnwrap(a.history[0].svd)
        XCTAssertLessThan(first.layers.map(\.rank).reduce(0, +), 24, "pruning happened in epoch 1")
        XCTAssertEqual(a.history.map(\.loss), b.history.map(\.loss))
        XCTAssertEqual(a.history.map(\.svd), b.history.map(\.svd))
        let ca = try Checkpoint.read(
            from: whole.appendingPathComponent("checkpoint.safetensors"),
            model: try a.network.checkpointTensors().map { ($0.name, $0.shape) })
        let cb = try Checkpoint.read(
            from: split.appendingPathComponent("checkpoint.safetensors"),
            model: try b.network.checkpointTensors().map { ($0.name, $0.shape) })
        XCTAssertEqual(ca.tensors, cb.tensors)
        XCTAssertEqual(ca.optimizerState, cb.optimizerState)
    }

    /// Two short epochs on the first 1,280 MNIST images with λ = 1e-3 on
    /// each device (host and PoCL × both families): the loss falls, the
    /// epoch's report has both layers with ‖XᵀX − I‖_max ≤ 1e-5, and the
    /// test accuracy on 500 images beats chance by far (> 50%).
    func testShortTrainingReducesTheLossAndKeepsOrthogonality() throws {
        let dir = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST_DIR is not set and ../shared/data/mnist is missing")
        let sets = try MNISTLoader.load(kind: .mnist, directory: dir)
        let settings = TrainingSettings(
            epochs: 2, trainLimit: 1280, testLimit: 500, svd: SVDTrainingSettings(sigmaL1: 1e-3))
        for device in [HostDevice()] + (try openCLTestDevices()) {
            let on = device.info.summary
            let net = try network(on: device, seed: 0, l1: 1e-3)
            let trainer = try ModelTrainer(network: net, settings: settings, train: sets.train, test: sets.test)
            try trainer.run(outputDirectory: nil)
            let h = trainer.history
            XCTAssertEqual(h.count, 2)
            XCTAssertLessThan(h[1].loss, h[0].loss, on)
            XCTAssertGreaterThan(h[1].testAccuracy, 0.5, on)
            for epoch in h {
                let report = try XCTUnwrap(epoch.svd, on)
                XCTAssertEqual(report.layers.map(\.name), ["conv1", "conv2"])
                XCTAssertLessThanOrEqual(report.maxOrthogonalityError, 1e-5, on)
                XCTAssertTrue(report.layers.allSatisfy { (1...$0.fullRank).contains($0.rank) }, on)
            }
        }
    }
}
