import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// A synchronised BatchNorm (``BatchNormSynchronization``) on two ranks in
/// one process, each a thread with its own device and plan, joined by
/// ``ThreadGroup``: rank 0 takes the first ⌊B/2⌋ images of a batch, rank 1
/// the rest (unequal shares when B is odd; four ranks in one test, each
/// taking the reducer's share), and their results are compared
/// with the float64 network (``NaiveNetwork``) run on the whole batch.
///
/// Rules (as ``NetworkPlanTests``): each rank's logits and per-sample
/// losses within 1e-4 absolute of the whole batch's rows; the gradient that
/// ``GradientReducer`` forms, Σ_r (b_r/B)·g_r, within 1e-4 of each tensor's
/// largest float64 magnitude (below 1e-5 absolute where that gradient is
/// zero in float64: a conv bias before BatchNorm); every rank's running
/// statistics within 1e-4 absolute of the whole batch's, and bit-identical
/// across the ranks. Without the synchronisation the ranks' running
/// statistics differ from the whole batch's by more than 1e-3, so the
/// comparison can fail.
final class SynchronizedBatchNormTests: XCTestCase {
    func testTwoRanksMatchTheWholeBatchOnEveryDevice() throws {
        try compare(
            NetworkPlanTests.smallResidual, channels: 2, height: 9, width: 9, classes: 3, batch: 5, seed: 4)
    }

    /// Four ranks, shares of 1, 2, 2 and 2 images (the reducer's rule).
    func testFourRanksWithUnequalShares() throws {
        try compare(
            NetworkPlanTests.smallResidual, channels: 2, height: 9, width: 9, classes: 3, batch: 7, ranks: 4, seed: 7)
    }

    func testResNet8OnTwoRanks() throws {
        let resnet8 = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        try compare(resnet8, channels: 1, height: 28, width: 28, classes: 10, batch: 4, seed: 5)
    }

    /// A synchronisation over one process takes the phases' path and gives
    /// the unsynchronised plan's result within float32 rounding: 1e-6
    /// absolute on the logits, 1e-5 relative to each gradient's and running
    /// statistic's largest magnitude (1e-5 absolute where that magnitude is
    /// below 1e-5, a conv bias before BatchNorm, whose gradient is rounding
    /// noise around zero).
    func testOneProcessEqualsTheUnsynchronisedPlan() throws {
        let description = NetworkPlanTests.smallResidual
        let reference = try NaiveNetwork(description, input: (channels: 2, height: 9, width: 9), classes: 3)
        let parameters = reference.sampleParameters(seed: 6)
        var random = SeededRandom(seed: 106)
        let images = (0..<(4 * 2 * 81)).map { _ in Float.random(in: -1...1, using: &random) }
        let labels: [Int32] = [0, 2, 1, 1]
        for device in try testDevices() {
            var results: [([Float], [[Float]])] = []
            for synchronised in [false, true] {
                let plan = try NetworkPlan(description, channels: 2, height: 9, width: 9, classes: 3, device: device)
                try load(parameters, into: plan)
                if synchronised { plan.batchNormSynchronization = BatchNormSynchronization(group: ThreadGroup.one()) }
                let w = try plan.workspace(batch: 4)
                try plan.setBatch(w, images: images, labels: labels)
                try plan.forward(w, training: true)
                try plan.backward(w)
                results.append(
                    (
                        try device.floats(w.logits),
                        try (plan.gradients + plan.statistics.map(\.buffer)).map(device.floats)
                    ))
            }
            let context = device.info.selector
            XCTAssertLessThanOrEqual(maxAbsoluteDifference(results[1].0, results[0].0.map(Double.init)), 1e-6, context)
            for (a, b) in zip(results[1].1, results[0].1) {
                // A conv bias before BatchNorm has a gradient of zero plus rounding noise: compared absolutely.
                if b.map(abs).max()! < 1e-5 {
                    XCTAssertLessThanOrEqual(maxAbsoluteDifference(a, b.map(Double.init)), 1e-5, context)
                } else {
                    XCTAssertLessThanOrEqual(maxRelativeToScale(a, b.map(Double.init)), 1e-5, context)
                }
            }
        }
    }

    private func load(_ parameters: [String: [Double]], into plan: NetworkPlan) throws {
        try plan.load(float64: parameters)
    }

    private func compare(
        _ description: NetworkDescription, channels: Int, height: Int, width: Int, classes: Int, batch: Int,
        ranks: Int = 2, seed: UInt64, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let reference = try NaiveNetwork(
            description, input: (channels: channels, height: height, width: width), classes: classes)
        let parameters = reference.sampleParameters(seed: seed)
        var random = SeededRandom(seed: seed &+ 100)
        let images = (0..<(batch * channels * height * width)).map { _ in Double.random(in: -1...1, using: &random) }
        let labels = (0..<batch).map { _ in Int32(random.uniform(below: classes)) }
        let expected = reference.run(
            images: images, labels: labels, batch: batch, parameters: parameters, training: true)
        let imageSize = channels * height * width
        let shares = (0..<ranks).map { HostStagedGradientReducer.share(of: batch, rank: $0, processes: ranks) }

        // Each rank's device made separately (two threads, two queues); the
        // device list twice gives the same kinds in the same order.
        let devices = try (0..<ranks).map { _ in try testDevices() }
        for index in devices[0].indices {
            for synchronised in [true, false] {
                let context =
                    "\(description.name) batch \(batch) on \(ranks) ranks on \(devices[0][index].info.selector)"
                let groups = ThreadGroup.world(of: ranks)
                let outcome = Outcome(ranks: ranks)
                let running = DispatchGroup()
                for rank in 0..<ranks {
                    running.enter()
                    Thread {
                        defer { running.leave() }
                        do {
                            let device = devices[rank][index]
                            let plan = try NetworkPlan(
                                description, channels: channels, height: height, width: width, classes: classes,
                                device: device)
                            try self.load(parameters, into: plan)
                            if synchronised {
                                plan.batchNormSynchronization = BatchNormSynchronization(group: groups[rank])
                            }
                            let share = shares[rank]
                            let w = try plan.workspace(batch: share.count)
                            try plan.setBatch(
                                w,
                                images: images[(share.lowerBound * imageSize)..<(share.upperBound * imageSize)].map {
                                    Float($0)
                                }, labels: Array(labels[share]))
                            try plan.forward(w, training: true)
                            try plan.backward(w)
                            let result = RankResult(
                                logits: try device.floats(w.logits),
                                losses: Array(try device.floats(w.perSample).prefix(share.count)),
                                gradients: try plan.gradients.map(device.floats),
                                statistics: try plan.statistics.map { try device.floats($0.buffer) })
                            outcome.lock.withLock { outcome.results[rank] = result }
                        } catch {
                            outcome.lock.withLock { outcome.failures[rank] = error }
                            groups[rank].abandon()
                        }
                    }.start()
                }
                running.wait()
                if let failure = outcome.failures.compactMap({ $0 }).first { throw failure }
                let ranks = outcome.results.map { $0! }
                let plan = try NetworkPlan(
                    description, channels: channels, height: height, width: width, classes: classes,
                    device: devices[0][index])

                if !synchronised {
                    let worst = plan.statistics.indices.map {
                        maxAbsoluteDifference(
                            ranks[0].statistics[$0], expected.runningStatistics[plan.statistics[$0].name]!)
                    }.max()!
                    XCTAssertGreaterThan(worst, 1e-3, "\(context): unsynchronised statistics", file: file, line: line)
                    continue
                }
                for (rank, share) in shares.enumerated() {
                    XCTAssertLessThanOrEqual(
                        maxAbsoluteDifference(
                            ranks[rank].logits,
                            Array(expected.logits[(share.lowerBound * classes)..<(share.upperBound * classes)])), 1e-4,
                        "\(context): rank \(rank) logits", file: file, line: line)
                    XCTAssertLessThanOrEqual(
                        maxAbsoluteDifference(ranks[rank].losses, Array(expected.lossPerSample[share])), 1e-4,
                        "\(context): rank \(rank) losses", file: file, line: line)
                }
                for (i, p) in plan.parameters.enumerated() {
                    let reduced = (0..<ranks[0].gradients[i].count).map { k in
                        shares.indices.reduce(Float(0)) {
                            $0 + Float(shares[$1].count) / Float(batch) * ranks[$1].gradients[i][k]
                        }
                    }
                    let exact = expected.gradients[p.name]!
                    if exact.map(abs).max()! < 1e-12 {
                        XCTAssertLessThanOrEqual(
                            maxAbsoluteDifference(reduced, exact), 1e-5, "\(context): gradient of \(p.name), zero",
                            file: file, line: line)
                    } else {
                        XCTAssertLessThanOrEqual(
                            maxRelativeToScale(reduced, exact), 1e-4, "\(context): gradient of \(p.name)",
                            file: file, line: line)
                    }
                }
                for (i, s) in plan.statistics.enumerated() {
                    XCTAssertLessThanOrEqual(
                        maxAbsoluteDifference(ranks[0].statistics[i], expected.runningStatistics[s.name]!), 1e-4,
                        "\(context): \(s.name)", file: file, line: line)
                    XCTAssertEqual(
                        ranks[0].statistics[i], ranks[1].statistics[i], "\(context): \(s.name) differs across ranks",
                        file: file, line: line)
                }
            }
        }
    }

    /// What the rank threads hand back, under `lock`.
    private final class Outcome: @unchecked Sendable {
        let lock = NSLock()
        var results: [RankResult?]
        var failures: [Error?]
        init(ranks: Int) {
            results = Array(repeating: nil, count: ranks)
            failures = Array(repeating: nil, count: ranks)
        }
    }

    private struct RankResult {
        var logits: [Float], losses: [Float], gradients: [[Float]], statistics: [[Float]]
    }
}

/// Processes as threads of one test: each collective waits for every rank,
/// then every rank reads the same result (the contributions added in rank
/// order). ``abandon()`` releases the others when a rank fails, so that a
/// failing test ends instead of hanging.
final class ThreadGroup: ProcessGroup {
    final class Shared {
        let condition = NSCondition()
        var contributions: [[Double]]
        var arrived = 0, generation = 0
        var result: [Double] = []
        var abandoned = false
        init(processes: Int) { contributions = Array(repeating: [], count: processes) }
    }

    struct Abandoned: Error {}

    let rank: Int, processes: Int
    let shared: Shared

    private init(rank: Int, shared: Shared) {
        self.rank = rank
        processes = shared.contributions.count
        self.shared = shared
    }

    static func world(of processes: Int) -> [ThreadGroup] {
        let shared = Shared(processes: processes)
        return (0..<processes).map { ThreadGroup(rank: $0, shared: shared) }
    }

    static func one() -> ThreadGroup { world(of: 1)[0] }

    func abandon() {
        shared.condition.lock()
        shared.abandoned = true
        shared.condition.broadcast()
        shared.condition.unlock()
    }

    /// Every rank's `values`, combined by `combine` once all have arrived.
    private func collective(_ values: [Double], _ combine: ([[Double]]) -> [Double]) throws -> [Double] {
        let s = shared
        s.condition.lock()
        defer { s.condition.unlock() }
        let generation = s.generation
        s.contributions[rank] = values
        s.arrived += 1
        if s.arrived == processes {
            s.result = combine(s.contributions)
            s.arrived = 0
            s.generation += 1
            s.condition.broadcast()
        } else {
            while s.generation == generation && !s.abandoned { s.condition.wait() }
            if s.generation == generation { throw Abandoned() }
        }
        return s.result
    }

    func sum(_ values: inout [Double]) throws {
        values = try collective(values) { all in
            all.dropFirst().reduce(all[0]) { zip($0, $1).map { $0 + $1 } }
        }
    }

    func sum(_ values: inout [Float]) throws {
        var wide = values.map(Double.init)
        try sum(&wide)
        values = wide.map { Float($0) }
    }

    func broadcast(_ values: inout [Double]) throws {
        values = try collective(values) { $0[0] }
    }

    func broadcast(_ values: inout [Float]) throws {
        var wide = values.map(Double.init)
        try broadcast(&wide)
        values = wide.map { Float($0) }
    }
}
