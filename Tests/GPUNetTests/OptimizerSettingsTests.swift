import Foundation
import GPUNet
import NetIO
import TestSupport
import XCTest

/// Learning-rate schedules against their closed forms worked by hand, the
/// settings' JSON across versions, and a scheduled Nesterov run on every
/// device against the host.
final class OptimizerSettingsTests: XCTestCase {
    nonisolated(unsafe) static var cached: (train: Dataset, test: Dataset)?

    func mnist() throws -> (train: Dataset, test: Dataset) {
        if let sets = Self.cached { return sets }
        let dir = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST_DIR is not set and ../shared/data/mnist is missing")
        let sets = try MNISTLoader.load(kind: .mnist, directory: dir)
        Self.cached = sets
        return sets
    }

    /// Rule: 1e-7 relative (the rates are computed in Double, rounded once to Float).
    func testSchedulesMatchTheirClosedForms() {
        let eta: Float = 0.2
        func check(
            _ s: LearningRateSchedule, _ t: Int, _ total: Int, _ expected: Double, file: StaticString = #filePath,
            line: UInt = #line
        ) {
            let got = Double(s.rate(peak: eta, step: t, of: total))
            XCTAssertEqual(got, expected, accuracy: 1e-7 * 0.2, "\(s) step \(t) of \(total)", file: file, line: line)
        }
        for t in [0, 5, 99] { check(.constant, t, 100, Double(eta)) }
        // Cosine, T = 100: η at 0, η/2 at 50, η·½(1 + cos(π/4)) at 25.
        check(.cosine, 0, 100, Double(eta))
        check(.cosine, 50, 100, Double(eta) / 2)
        check(.cosine, 25, 100, Double(eta) * 0.5 * (1 + 0.5.squareRoot()))
        // One-cycle, T = 10: W = ⌈3⌉ = 3 warm-up steps at η/3, 2η/3, η; then
        // η·½(1 + cos(π·(t − 3)/7)): η at t = 3, η/2 at t = 6.5 (not a step),
        // η·½(1 + cos(π·4/7)) at t = 7.
        check(.onecycle, 0, 10, Double(eta) / 3)
        check(.onecycle, 1, 10, Double(eta) * 2 / 3)
        check(.onecycle, 2, 10, Double(eta))
        check(.onecycle, 3, 10, Double(eta))
        check(.onecycle, 7, 10, Double(eta) * 0.5 * (1 + cos(Double.pi * 4 / 7)))
        check(.onecycle, 9, 10, Double(eta) * 0.5 * (1 + cos(Double.pi * 6 / 7)))
        // T = 7: W = ⌈2.1⌉ = 3.
        check(.onecycle, 0, 7, Double(eta) / 3)
        check(.onecycle, 3, 7, Double(eta))
    }

    /// metrics.json and checkpoints written before Nesterov, weight decay and
    /// schedules existed still read, as the plain-momentum constant-rate run
    /// they were; new settings survive a round trip.
    func testSettingsJSONReadsOldRunsAndRoundTrips() throws {
        let old = """
            {"dataset":"mnist","epochs":3,"batchSize":64,"learningRate":0.05,
             "optimizer":{"sgd":{"momentum":0.9}},"seed":4}
            """
        let decoded = try JSONDecoder().decode(TrainingSettings.self, from: Data(old.utf8))
        XCTAssertEqual(decoded.optimizer, .sgd(momentum: 0.9, nesterov: false, weightDecay: 0))
        XCTAssertEqual(decoded.schedule, .constant)
        XCTAssertEqual(decoded.epochs, 3)
        XCTAssertNil(decoded.trainLimit)

        let adam =
            #"{"dataset":"mnist","epochs":1,"batchSize":64,"learningRate":0.001,"#
            + #""optimizer":{"adam":{"beta1":0.9,"beta2":0.999,"epsilon":1e-08}},"seed":0}"#
        XCTAssertEqual(try JSONDecoder().decode(TrainingSettings.self, from: Data(adam.utf8)).optimizer, .adam())

        let new = TrainingSettings(
            epochs: 15, batchSize: 128, learningRate: 0.2, schedule: .onecycle,
            optimizer: .sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4), seed: 1, trainLimit: 100)
        let again = try JSONDecoder().decode(TrainingSettings.self, from: JSONEncoder().encode(new))
        XCTAssertEqual(again, new)
    }

    /// A scheduled run's rate depends on its length, so `--resume` with
    /// more epochs is refused under a schedule and allowed without one.
    func testResumeNeedsTheSameLengthUnderASchedule() throws {
        let data = try mnist()
        for schedule in [LearningRateSchedule.constant, .cosine] {
            let dir = try TestEnvironment.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            var settings = TrainingSettings(epochs: 1, schedule: schedule, seed: 9, trainLimit: 64, testLimit: 10)
            try Trainer(device: HostDevice(), settings: settings, train: data.train, test: data.test).run(
                outputDirectory: dir)
            settings.epochs = 2
            let t = try Trainer(device: HostDevice(), settings: settings, train: data.train, test: data.test)
            if schedule == .constant {
                XCTAssertEqual(try t.resume(from: dir), 1)
            } else {
                XCTAssertThrowsError(try t.resume(from: dir), "\(schedule)") { error in
                    XCTAssertTrue("\(error)".contains("other settings"), "\(error)")
                }
            }
        }
    }

    func testSettingsRefuseBadSGDValues() {
        XCTAssertThrowsError(try TrainingSettings(optimizer: .sgd(momentum: 0, nesterov: true)).validate())
        XCTAssertThrowsError(try TrainingSettings(optimizer: .sgd(momentum: 0.9, weightDecay: -1)).validate())
        XCTAssertNoThrow(
            try TrainingSettings(optimizer: .sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4)).validate())
    }

    /// Ten steps of one-cycle SGD with Nesterov and weight decay on each
    /// OpenCL device against the host. Rule: weights within 1e-4 relative
    /// to each tensor's largest magnitude (gradients' rule: the rounding of
    /// two correct float32 implementations grows with the update).
    func testScheduledNesterovRunAgreesWithTheHost() throws {
        let devices = try openCLTestDevices()
        let data = try mnist()
        let settings = TrainingSettings(
            epochs: 1, batchSize: 64, learningRate: 0.05, schedule: .onecycle,
            optimizer: .sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4),
            seed: 11, trainLimit: 640, testLimit: 100)
        func train(_ device: any Device) throws -> (TinyConvNetWeights, Trainer) {
            let t = try Trainer(device: device, settings: settings, train: data.train, test: data.test)
            try t.run(outputDirectory: nil)
            return (try t.network.weights(), t)
        }
        let (host, trainer) = try train(HostDevice())
        XCTAssertEqual(trainer.optimizer.step, 10)
        XCTAssertEqual(trainer.optimizer.totalSteps, 10)
        for device in devices {
            let (other, _) = try train(device)
            for (a, b) in zip(other.tensors, host.tensors) {
                let diff = maxRelativeToScale(a.values, b.values)
                XCTAssertLessThan(diff, 1e-4, "\(device.info.selector) vs host after 10 steps, \(a.name): \(diff)")
            }
        }
    }
}
