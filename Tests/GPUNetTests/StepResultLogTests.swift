import Foundation
import GPUNet
import NetIO
import TestSupport
import XCTest

/// The device's record of step results (``StepRecordRing``,
/// ``StepResultLog``) and the trainer built on it: what the host reads is
/// what each step wrote, summed as float64 loops sum it here; the host
/// waits once per block of steps and nowhere else; and the numbers of a
/// training run do not depend on how often the host reads them.
final class StepResultLogTests: XCTestCase {
    /// Each slot, written on the device, reads back as written, alone or in
    /// a run of slots, on every device (OpenCL: sub-buffers at the device's
    /// alignment, read into pinned memory).
    func testRingReadsBackWhatEachSlotHolds() throws {
        for device in try testDevices() {
            let ring = try device.makeStepRecordRing(slots: 6, floatsPerSlot: 5)
            XCTAssertEqual(ring.slots.count, 6)
            for (k, slot) in ring.slots.enumerated() {
                XCTAssertEqual(slot.count, 5)
                try device.fill(slot, value: Float(k) + 0.5)
            }
            let distinct: [Float] = [-1, 2, -3, 4, -5]
            try distinct.withUnsafeBufferPointer { try device.upload($0, to: ring.slots[2]) }
            let middle = try ring.startReading(1..<4).floats()
            XCTAssertEqual(middle, [Float](repeating: 1.5, count: 5) + distinct + [Float](repeating: 3.5, count: 5))
            let last = try ring.startReading(5..<6).floats()
            XCTAssertEqual(last, [Float](repeating: 5.5, count: 5), device.info.summary)
            XCTAssertThrowsError(try ring.startReading(4..<7), device.info.summary)
        }
    }

    /// Seven steps in blocks of three (the last batch smaller), collected two
    /// steps after each block: the results arrive in step order, with
    /// the per-step sums of a float64 loop over what was written; one host
    /// wait per block read.
    func testLogSumsEachStepAndWaitsOncePerBlock() throws {
        for device in try testDevices() {
            let log = try StepResultLog(device: device, maxBatch: 4, stepsPerRead: 3)
            let batches = [4, 4, 4, 4, 4, 4, 2]
            var random = SeededRandom(seed: 11, stream: 0)
            var expected: [StepResultLog.StepResult] = []
            var arrived: [[Int]] = []
            var results: [StepResultLog.StepResult] = []
            try device.finish()
            let waitsBefore = device.counters.hostWaits
            var uploads = 0
            for (step, batch) in batches.enumerated() {
                let losses = (0..<batch).map { _ in random.uniform(3) + 3 }
                let correct = (0..<batch).map { _ in Float(random.next() % 2) }
                var values = losses + correct
                values += [Float](repeating: .nan, count: 8 - values.count)  // beyond 2·batch: never read
                try values.withUnsafeBufferPointer { try device.upload($0, to: log.slot(forStep: step)) }
                uploads += 1
                expected.append(
                    StepResultLog.StepResult(
                        step: step, batch: batch, lossSum: losses.reduce(0.0) { $0 + Double($1) },
                        correct: Int(correct.reduce(0.0) { $0 + Double($1) })))
                let block = try log.queued(step: step, batch: batch)
                arrived.append(block.map(\.step))
                results += block
            }
            let rest = try log.drain()
            results += rest
            XCTAssertEqual(arrived, [[], [], [], [], [0, 1, 2], [], []], device.info.summary)
            XCTAssertEqual(rest.map(\.step), [3, 4, 5, 6], device.info.summary)
            XCTAssertEqual(results, expected, device.info.summary)
            // Three block reads, one wait each (an upload's staging area may
            // also wait for an earlier upload on OpenCL; uploads here stand in
            // for the loss kernel, which a training step runs instead).
            let waits = device.counters.hostWaits - waitsBefore
            XCTAssertGreaterThanOrEqual(waits, 3, device.info.summary)
            XCTAssertLessThanOrEqual(waits, 3 + uploads, device.info.summary)
        }
    }

    /// TinyConvNet's training step queued as the trainer queues it: over a
    /// block of 20 steps the host waits exactly once (for the block's
    /// results), uploads nothing, reads back one block of records, and on
    /// OpenCL launches exactly its family's kernels.
    func testTrainingStepWaitsOncePerBlockAndUploadsNothing() throws {
        for device in try testDevices() {
            let network = try TinyConvNet(device: device)
            try network.load(TinyConvNet.initialWeights(seed: 1))
            let batch = 16
            let w = try network.workspace(batch: batch)
            var random = SeededRandom(seed: 2, stream: 0)
            try network.setBatch(
                w, images: (0..<(batch * 784)).map { _ in random.uniform(1) },
                labels: (0..<batch).map { _ in Int32(random.next() % 10) })
            let optimizer = try Optimizer(
                .adam(), learningRate: 1e-3, parameters: network.parameterBuffers, names: network.parameterNames,
                device: device)
            try optimizer.prepare()
            let s = try measureTrainingSteps(network, on: w, optimizer: optimizer, stepsPerRead: 20)
            XCTAssertEqual(s.hostWaitsPerStep, 1.0 / 20, device.info.summary)
            XCTAssertEqual(s.bytesToDevicePerStep, 0, device.info.summary)
            XCTAssertGreaterThan(s.launchesPerStep, 0, device.info.summary)
            if device is OpenCLDevice {
                // Kernels a step launches, exactly, so that a change that adds one fails: cpu family 12
                // (13 where conv2's weight partials come in more than one chunk of images, on more than
                // 2 compute units), gpu family 3 (the fused pass per image, the sum of the images'
                // gradients, Adam).
                let expected = device.info.kernelFamily == .gpu ? 3.0 : device.info.computeUnits > 2 ? 13 : 12
                XCTAssertEqual(s.launchesPerStep, expected, device.info.summary)
                // One read of 20 slots of 2·16 floats, each but the last padded to the device's alignment.
                XCTAssertGreaterThanOrEqual(s.bytesToHostPerStep, Double(2 * batch * 4), device.info.summary)
            } else {
                XCTAssertEqual(s.bytesToHostPerStep, 0, device.info.summary)
            }
        }
    }

    /// Progress trails the queued steps by at most a block and the lag (two
    /// steps): every step is reported once, in order, and when step s is
    /// reported at most stepsPerRead + 2 optimiser steps have been queued
    /// beyond it (the rate and ETA shown are computed from it).
    func testProgressTrailsTheQueuedStepsByAtMostABlockAndTheLag() throws {
        let dir = try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set")
        let data = try MNISTLoader.load(kind: .mnist, directory: dir)
        let settings = TrainingSettings(epochs: 1, seed: 4, trainLimit: 64 * 23, testLimit: 10)
        final class Recorder: TrainingObserver {
            var reports: [(step: Int, queued: Int)] = []
            var queued: () -> Int = { 0 }
            func epochStarted(epoch: Int, of epochs: Int, steps: Int) {}
            func stepFinished(epoch: Int, step: Int, steps: Int, images: Int, meanLoss: Double) {
                reports.append((step, queued()))
            }
            func epochFinished(_ metrics: EpochMetrics, of epochs: Int) {}
        }
        let t = try Trainer(device: HostDevice(), settings: settings, train: data.train, test: data.test)
        t.stepsPerRead = 5
        let recorder = Recorder()
        recorder.queued = { t.optimizer.step }
        try t.run(outputDirectory: nil, observer: recorder)
        XCTAssertEqual(recorder.reports.map(\.step), Array(1...23))
        for r in recorder.reports {
            XCTAssertLessThanOrEqual(r.queued - r.step, 5 + 2, "step \(r.step) reported with \(r.queued) queued")
        }
    }

    /// The trainer's results do not depend on how often it reads them: a
    /// read after every step, every 3 steps, and once per epoch give the same
    /// losses, accuracies and weights, bit for bit (11 steps, the last one
    /// smaller), on the host and on each OpenCL device.
    func testTrainingIsTheSameWhateverTheReadInterval() throws {
        let dir = try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set")
        let data = try MNISTLoader.load(kind: .mnist, directory: dir)
        let settings = TrainingSettings(epochs: 2, seed: 4, trainLimit: 650, testLimit: 100)
        for device in [HostDevice() as any Device] + (try openCLTestDevices()) {
            var runs: [(metrics: [EpochMetrics], weights: TinyConvNetWeights)] = []
            for interval in [1, 3, 50] {
                let network = try TinyConvNet(device: device)
                try network.load(TinyConvNet.initialWeights(seed: settings.seed))
                let t = try ModelTrainer(network: network, settings: settings, train: data.train, test: data.test)
                t.stepsPerRead = interval
                try t.run(outputDirectory: nil)
                runs.append((t.history, try network.weights()))
            }
            for run in runs.dropFirst() {
                XCTAssertEqual(run.weights, runs[0].weights, device.info.summary)
                XCTAssertEqual(run.metrics.map(\.loss), runs[0].metrics.map(\.loss), device.info.summary)
                XCTAssertEqual(
                    run.metrics.map(\.trainAccuracy), runs[0].metrics.map(\.trainAccuracy), device.info.summary)
                XCTAssertEqual(
                    run.metrics.map(\.testAccuracy), runs[0].metrics.map(\.testAccuracy), device.info.summary)
            }
        }
    }
}
