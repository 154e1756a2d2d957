import Foundation
import GPUNet
import NetIO
import TestSupport
import XCTest

/// Training on real MNIST: reproducibility, device agreement over several
/// steps, a short run's accuracy, resume, divergence and interruption.
final class TrainingTests: XCTestCase {
    nonisolated(unsafe) static var cached: (train: Dataset, test: Dataset)?

    func mnist() throws -> (train: Dataset, test: Dataset) {
        if let sets = Self.cached { return sets }
        let dir = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST_DIR is not set and ../shared/data/mnist is missing")
        let sets = try MNISTLoader.load(kind: .mnist, directory: dir)
        Self.cached = sets
        return sets
    }

    func testSameSeedGivesBitIdenticalWeightsOnTheHost() throws {
        let data = try mnist()
        let settings = TrainingSettings(epochs: 1, seed: 5, trainLimit: 640, testLimit: 100)
        func train() throws -> TinyConvNetWeights {
            let t = try Trainer(device: HostDevice(), settings: settings, train: data.train, test: data.test)
            try t.run(outputDirectory: nil)
            return try t.network.weights()
        }
        let first = try train()
        let second = try train()
        XCTAssertEqual(first, second, "two runs with seed 5 must give bit-identical weights")
        XCTAssertNotEqual(first, TinyConvNet.initialWeights(seed: 5), "training must change the weights")
    }

    /// SGD with momentum keeps the devices' difference proportional to the
    /// gradients' (Adam's first steps divide by √v and would amplify the
    /// rounding differences of near-zero gradients into ±lr). Rule: weights
    /// within 1e-4 relative to each tensor's largest magnitude after 10 steps.
    func testOpenCLStaysWithinToleranceOfHostOverTenSteps() throws {
        let devices = try openCLTestDevices()
        let data = try mnist()
        let settings = TrainingSettings(
            epochs: 1, batchSize: 64, learningRate: 0.05, optimizer: .sgd(momentum: 0.9),
            seed: 11, trainLimit: 640, testLimit: 100)
        func train(_ device: any Device) throws -> TinyConvNetWeights {
            let t = try Trainer(device: device, settings: settings, train: data.train, test: data.test)
            try t.run(outputDirectory: nil)
            return try t.network.weights()
        }
        let host = try train(HostDevice())
        for device in devices {
            let other = try train(device)
            for (a, b) in zip(other.tensors, host.tensors) {
                let diff = maxRelativeToScale(a.values, b.values)
                XCTAssertLessThan(diff, 1e-4, "\(device.info.selector) vs host after 10 steps, \(a.name): \(diff)")
            }
        }
    }

    /// The short run of the acceptance list: one epoch on the first 10,000
    /// training images, evaluated on the whole test set, on each OpenCL device
    /// (PoCL in CI). Batch 16 and lr 2e-3 give the 625 steps this needs
    /// (measured on the host: 96.1%; batch 32 at lr 1e-3 stops near 94%).
    func testOneEpochOnTenThousandImagesReaches95Percent() throws {
        let data = try mnist()
        let settings = TrainingSettings(epochs: 1, batchSize: 16, learningRate: 2e-3, seed: 1, trainLimit: 10_000)
        // Without OpenCL (and without CONVSVD_REQUIRE_OPENCL=1) the host trains instead.
        let devices: [any Device]
        do { devices = try openCLTestDevices() } catch is XCTSkip { devices = [HostDevice()] }
        for device in devices {
            let t = try Trainer(device: device, settings: settings, train: data.train, test: data.test)
            try t.run(outputDirectory: nil)
            let accuracy = try XCTUnwrap(t.history.last).testAccuracy
            XCTAssertGreaterThanOrEqual(accuracy, 0.95, "\(device.info.selector): \(accuracy)")
        }
    }

    func testResumeEndsWhereAnUninterruptedRunEnds() throws {
        let data = try mnist()
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let full = TrainingSettings(epochs: 2, seed: 9, trainLimit: 320, testLimit: 100)
        let straight = try Trainer(device: HostDevice(), settings: full, train: data.train, test: data.test)
        try straight.run(outputDirectory: nil)

        var firstHalf = full
        firstHalf.epochs = 1
        try Trainer(device: HostDevice(), settings: firstHalf, train: data.train, test: data.test)
            .run(outputDirectory: dir)
        let resumed = try Trainer(device: HostDevice(), settings: full, train: data.train, test: data.test)
        XCTAssertEqual(try resumed.resume(from: dir), 1)
        try resumed.run(outputDirectory: dir)
        XCTAssertEqual(
            try resumed.network.weights(), try straight.network.weights(),
            "resumed weights must be bit-identical to the uninterrupted run's")
        XCTAssertEqual(resumed.history.map(\.epoch), [1, 2])
        XCTAssertEqual(resumed.history.map(\.loss), straight.history.map(\.loss))
        let saved = try Checkpoint.read(from: dir.appendingPathComponent(Trainer.checkpointFile))
        XCTAssertEqual(saved.weights, try straight.network.weights())
        XCTAssertEqual(saved.metadata["epoch"], "2")
    }

    func testResumeRefusesOtherSettings() throws {
        let data = try mnist()
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let settings = TrainingSettings(epochs: 1, seed: 9, trainLimit: 64, testLimit: 10)
        try Trainer(device: HostDevice(), settings: settings, train: data.train, test: data.test).run(
            outputDirectory: dir)
        var other = settings
        other.seed = 10
        let t = try Trainer(device: HostDevice(), settings: other, train: data.train, test: data.test)
        XCTAssertThrowsError(try t.resume(from: dir)) { error in
            XCTAssertTrue("\(error)".contains("other settings"), "\(error)")
        }
    }

    func testDivergingRunStopsAtTheFirstNonFiniteLossAndKeepsTheLastCheckpoint() throws {
        let data = try mnist()
        let dir = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = TrainingSettings(epochs: 1, seed: 2, trainLimit: 128, testLimit: 10)
        try Trainer(device: HostDevice(), settings: good, train: data.train, test: data.test).run(outputDirectory: dir)
        let checkpoint = dir.appendingPathComponent(Trainer.checkpointFile)
        let metrics = dir.appendingPathComponent(Trainer.metricsFile)
        let before = (try Data(contentsOf: checkpoint), try Data(contentsOf: metrics))

        // A learning rate of 1e38 overflows float32 within a few steps. (A merely
        // large one, say 1e4, tends to switch every ReLU off instead, after
        // which the loss stays finite and nothing diverges.)
        let diverging = TrainingSettings(
            epochs: 3, learningRate: 1e38, optimizer: .sgd(momentum: 0.9), seed: 2,
            trainLimit: 6400, testLimit: 10)
        let t = try Trainer(device: HostDevice(), settings: diverging, train: data.train, test: data.test)
        XCTAssertThrowsError(try t.run(outputDirectory: dir)) { error in
            guard case TrainingError.nonFiniteLoss(let epoch, let step, let loss)? = error as? TrainingError else {
                return XCTFail("expected nonFiniteLoss, got \(error)")
            }
            XCTAssertEqual(epoch, 1)
            XCTAssertGreaterThan(step, 1)
            XCTAssertFalse(loss.isFinite)
            XCTAssertTrue("\(error)".contains("epoch 1, step \(step)"))
        }
        XCTAssertEqual(try Data(contentsOf: checkpoint), before.0, "the last good checkpoint must be intact")
        XCTAssertEqual(try Data(contentsOf: metrics), before.1)
    }

    func testStopRequestEndsAfterTheCurrentStep() throws {
        let data = try mnist()
        let settings = TrainingSettings(epochs: 1, seed: 2, trainLimit: 640, testLimit: 10)
        let t = try Trainer(device: HostDevice(), settings: settings, train: data.train, test: data.test)
        var calls = 0
        t.shouldStop = {
            calls += 1
            return calls == 3
        }
        XCTAssertThrowsError(try t.run(outputDirectory: nil)) { error in
            XCTAssertEqual(error as? TrainingError, .interrupted(epoch: 1, step: 3, epochsFinished: 0))
        }
        XCTAssertEqual(t.optimizer.step, 3, "the step in progress finishes before stopping")
    }

    /// Every OpenCL object a training run creates (context, queue, program,
    /// kernels, buffers of the network, optimiser and workspaces) is released
    /// when the run is torn down. Skipped (failed under
    /// CONVSVD_REQUIRE_OPENCL=1) without an OpenCL device.
    func testTrainingReleasesEveryOpenCLObject() throws {
        let infos = try openCLTestDeviceInfos()
        let data = try mnist()
        for info in infos {
            let baseline = OpenCLDevice.liveObjects
            // Everything the run makes lives in this function's frame.
            func trainOnce() throws {
                let device = try Devices.make(try DeviceSelector(parsing: info.selector))
                let settings = TrainingSettings(epochs: 1, seed: 3, trainLimit: 200, testLimit: 100)
                let t = try Trainer(device: device, settings: settings, train: data.train, test: data.test)
                try t.run(outputDirectory: nil)
                XCTAssertGreaterThan(
                    OpenCLDevice.liveObjects.buffers, baseline.buffers + 20, "the run holds its buffers")
            }
            try trainOnce()
            XCTAssertEqual(OpenCLDevice.liveObjects, baseline, "\(info.selector): objects left after teardown")
        }
    }

    func testEpochOrderIsAPermutationFixedBySeedAndEpoch() {
        let a = Trainer.order(count: 1000, seed: 1, epoch: 1)
        XCTAssertEqual(a.sorted(), Array(0..<1000))
        XCTAssertEqual(a, Trainer.order(count: 1000, seed: 1, epoch: 1))
        XCTAssertNotEqual(a, Trainer.order(count: 1000, seed: 1, epoch: 2))
        XCTAssertNotEqual(a, Trainer.order(count: 1000, seed: 2, epoch: 1))
    }
}
