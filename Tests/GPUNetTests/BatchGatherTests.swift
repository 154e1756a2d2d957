import Foundation
import GPUNet
import NetIO
import TestSupport
import XCTest

/// Batches gathered on the device (`Device.gatherBatch`, `DeviceDataset`)
/// against the host's own normalisation, `Dataset.normalizedImages`, the
/// readable definition of a batch's floats. The rule here is
/// exact equality (bit patterns): both compute Float(x)·scale − shift with
/// the product rounded first, and the OpenCL kernel forbids the fused
/// multiply-add (`FP_CONTRACT OFF`) that would round once.
final class BatchGatherTests: XCTestCase {
    /// A set whose pixels run through every byte value (image k, pixel p:
    /// (k·P + 7p) mod 256) with labels k mod 10.
    func syntheticSet(count: Int, side: Int) -> Dataset {
        let size = side * side
        let pixels = (0..<(count * size)).map { UInt8(truncatingIfNeeded: ($0 / size) * size + 7 * ($0 % size)) }
        return Dataset(
            name: "synthetic", count: count, rows: side, columns: side, pixels: pixels,
            labels: (0..<count).map { UInt8($0 % 10) })
    }

    /// A fixed shuffle of 0..<count.
    func shuffled(_ count: Int) -> [Int] { Trainer.order(count: count, seed: 9, epoch: 1) }

    /// Gathers `range` of `order` from `set` on `device` straight through the
    /// protocol operation: the images and labels as the host reads them back.
    func gather(_ set: Dataset, order: [Int], range: Range<Int>, on device: any Device) throws -> ([Float], [Int32]) {
        let pixels = try device.makeBuffer(count: set.pixels.count, kind: .uint8)
        try set.pixels.withUnsafeBufferPointer { try device.upload($0, to: pixels) }
        let labels = try device.makeBuffer(count: set.count, kind: .uint8)
        try set.labels.withUnsafeBufferPointer { try device.upload($0, to: labels) }
        let orderBuffer = try device.makeBuffer(order.map { Int32($0) })
        let images = try device.makeBuffer(count: range.count * set.imageSize, kind: .float32)
        let batchLabels = try device.makeBuffer(count: range.count, kind: .int32)
        try device.gatherBatch(
            BatchGatherShape(count: set.count, imageSize: set.imageSize, range: range),
            pixels: pixels, labels: labels, order: orderBuffer, images: images, batchLabels: batchLabels)
        return (try device.floats(images), try device.int32s(batchLabels))
    }

    /// A set with Fashion-MNIST's normalisation (0.2860, 0.3530) is gathered
    /// by ``DeviceDataset`` with its own scale and shift: bit for bit the
    /// host's `normalizedImages`, which a float64 reference checks.
    func testDeviceDatasetGathersWithTheSetsNormalisation() throws {
        var set = syntheticSet(count: 100, side: 28)
        set.normalization = .fashionMNIST
        let order = shuffled(100)
        let expected = set.normalizedImages(order[50..<87])
        for (k, n) in order[50..<87].enumerated() {
            for p in [0, 391, 783] {
                let reference = (Double(set.pixels[n * 784 + p]) / 255 - 0.2860) / 0.3530
                XCTAssertEqual(Double(expected[k * 784 + p]), reference, accuracy: 1e-5)
            }
        }
        for device in try testDevices() {
            let network = try TinyConvNet(device: device)
            let data = try DeviceDataset(set, on: device)
            XCTAssertEqual(data.normalization, .fashionMNIST)
            try data.setOrder(order)
            let w = try network.workspace(batch: 37)
            try data.gather(50..<87, into: w)
            let images = try device.floats(w.input)
            XCTAssertEqual(images.map { $0.bitPattern }, expected.map { $0.bitPattern }, device.info.selector)
        }
    }

    /// MNIST's 28×28 (784 pixels: the 16-pixel vector kernel on a CPU
    /// device) and 5×5 (25: the one-pixel kernel everywhere); a full batch,
    /// batch 1 and the last partial batch of a shuffled order of 300.
    func testGatheredBatchEqualsHostNormalisationBitForBitOnEveryDevice() throws {
        for side in [28, 5] {
            let set = syntheticSet(count: 300, side: side)
            let order = shuffled(300)
            for range in [0..<64, 137..<138, 256..<300, 0..<300] {
                let expected = set.normalizedImages(order[range])
                let expectedLabels = order[range].map { Int32(set.labels[$0]) }
                for device in try testDevices() {
                    let (images, labels) = try gather(set, order: order, range: range, on: device)
                    let context = "\(device.info.selector), \(side)×\(side), order[\(range)]"
                    XCTAssertEqual(labels, expectedLabels, context)
                    XCTAssertEqual(images.count, expected.count, context)
                    let differing = zip(images, expected).filter { $0.bitPattern != $1.bitPattern }.count
                    XCTAssertEqual(differing, 0, "\(context): \(differing) pixels differ from Dataset.normalizedImages")
                }
            }
        }
    }

    /// The normalisation of every byte value, against float64: within half
    /// an ulp of each float32 step (product, difference) of the result, so
    /// 1e-6 absolute for values of at most |−0.43|…2.83.
    func testNormalisedBytesAgreeWithFloat64Formula() throws {
        let set = syntheticSet(count: 1, side: 16)  // 256 pixels: 0…255 in some order
        XCTAssertEqual(Set(set.pixels).count, 256)
        let (images, _) = try gather(set, order: [0], range: 0..<1, on: HostDevice())
        for (x, y) in zip(set.pixels, images) {
            let exact = (Double(x) / 255 - 0.1307) / 0.3081
            XCTAssertEqual(Double(y), exact, accuracy: 1e-6, "byte \(x)")
        }
    }

    /// An order entry outside the set: the host refuses it by name; an
    /// OpenCL kernel cannot throw, so it writes NaN pixels and label −1
    /// (and reads nothing out of bounds) for that image only.
    func testOrderEntryOutsideTheSet() throws {
        let set = syntheticSet(count: 10, side: 28)
        XCTAssertThrowsError(try gather(set, order: [3, 10], range: 0..<2, on: HostDevice())) { error in
            XCTAssertEqual(
                error as? HostDeviceError,
                .indexOutOfRange(operation: "gatherBatch", argument: "order", position: 1, value: 10, count: 10))
        }
        for device in try openCLTestDevices() {
            let (images, labels) = try gather(set, order: [3, -1], range: 0..<2, on: device)
            XCTAssertEqual(labels, [3, -1], device.info.selector)
            XCTAssertEqual(Array(images[0..<784]), set.normalizedImages([3]), device.info.selector)
            XCTAssertTrue(images[784...].allSatisfy(\.isNaN), device.info.selector)
        }
    }

    nonisolated(unsafe) static var cached: Dataset?

    func mnistTest() throws -> Dataset {
        if let set = Self.cached { return set }
        let dir = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST_DIR is not set and ../shared/data/mnist is missing")
        let set = try MNISTLoader.load(kind: .mnist, directory: dir).test
        Self.cached = set
        return set
    }

    /// Evaluation on the device (the set uploaded once, batches gathered)
    /// gives what the per-batch upload of host-normalised images gave, the
    /// way `Evaluation.run` worked before: the same predictions and correct
    /// count, and the same mean loss (summed in the same order, exactly).
    /// 1,234 images at batch 500: two full batches and a partial one.
    func testEvaluationOnTheDeviceEqualsTheUploadPath() throws {
        let set = try mnistTest().prefix(1234)
        for device in try testDevices() {
            let network = try TinyConvNet(device: device)
            try network.load(TinyConvNet.initialWeights(seed: 4))
            let onDevice = try Evaluation.run(network: network, on: set, batchSize: 500)
            var predictions: [Int] = []
            var lossSum = 0.0
            var correct = 0
            for start in stride(from: 0, to: set.count, by: 500) {
                let indices = start..<min(set.count, start + 500)
                let w = try network.workspace(batch: indices.count)
                try network.setBatch(
                    w, images: set.normalizedImages(indices), labels: indices.map { Int32(set.labels[$0]) })
                try network.forward(w)
                let result = try network.batchResult(w)
                lossSum += result.lossSum
                correct += result.correct
                let logits = try device.floats(w.logits)
                for b in 0..<indices.count {
                    var best = 0
                    for c in 1..<10 where logits[b * 10 + c] > logits[b * 10 + best] { best = c }
                    predictions.append(best)
                }
            }
            XCTAssertEqual(onDevice.count, 1234)
            XCTAssertEqual(onDevice.predictions, predictions, device.info.selector)
            XCTAssertEqual(onDevice.correct, correct, device.info.selector)
            XCTAssertEqual(onDevice.meanLoss, lossSum / 1234, device.info.selector)
            XCTAssertEqual(onDevice.labels, set.labels.map(Int.init))
        }
    }

    /// Training with the data on the device gives the weights, bit for bit,
    /// of a plain loop that uploads each step's host-normalised batch and
    /// runs the same training step, on every device: 200 images at batch 64,
    /// so the last step is a partial batch of 8; Adam, one epoch.
    func testTrainerGivesTheWeightsOfTheUploadLoop() throws {
        let dir = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST_DIR is not set and ../shared/data/mnist is missing")
        let sets = try MNISTLoader.load(kind: .mnist, directory: dir)
        let settings = TrainingSettings(epochs: 1, batchSize: 64, seed: 3, trainLimit: 200, testLimit: 50)
        let train = sets.train.prefix(200)
        for device in try testDevices() {
            let trainer = try Trainer(device: device, settings: settings, train: sets.train, test: sets.test)
            try trainer.run(outputDirectory: nil)

            let network = try TinyConvNet(device: device)
            try network.load(TinyConvNet.initialWeights(seed: 3))
            let optimizer = try Optimizer(
                settings.optimizer, learningRate: settings.learningRate,
                parameters: network.parameters, device: device)
            let order = Trainer.order(count: 200, seed: 3, epoch: 1)
            for start in stride(from: 0, to: 200, by: 64) {
                let indices = order[start..<min(200, start + 64)]
                let w = try network.workspace(batch: indices.count)
                try network.setBatch(
                    w, images: train.normalizedImages(indices), labels: indices.map { Int32(train.labels[$0]) })
                try network.trainingStep(w)
                try optimizer.update(parameters: network.parameters, gradients: network.gradients)
            }
            XCTAssertEqual(try trainer.network.weights(), try network.weights(), device.info.selector)
        }
    }
}
