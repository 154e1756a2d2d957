import Foundation
import GPUNet
import NetIO
import TestSupport
import XCTest

/// The per-channel and augmented batch gather (`Device.gatherBatch` with
/// several channels or an `Augmentation`, `DeviceDataset.gather(_:images:labels:…)`).
/// Rules: every device's batch equals the host's bit for bit (the same
/// float32 operations in the same order, no fused multiply-add, integer
/// choices); the host's equals `Dataset.normalizedImages` of the image,
/// cropped and flipped, bit for bit; and it is within 1e-6 absolute of the
/// float64 reference `NaiveReference.gatherBatch` (two float32 roundings of
/// values of magnitude < 3: at most a few 1e-7).
final class AugmentationTests: XCTestCase {
    /// A CIFAR-like set of `count` images of channels×rows×columns whose
    /// bytes run through every value (image k, byte i of the image:
    /// (k·size + 7i + 3c) mod 256), labels k mod 10.
    func syntheticSet(count: Int, channels: Int, rows: Int, columns: Int) -> Dataset {
        let plane = rows * columns
        let size = channels * plane
        let pixels = (0..<(count * size)).map {
            UInt8(truncatingIfNeeded: ($0 / size) * size + 7 * ($0 % size) + 3 * (($0 % size) / plane))
        }
        let normalization: Normalization =
            channels == 3
            ? .cifar10
            : Normalization(
                mean: (0..<channels).map { 0.2 + 0.1 * Float($0) },
                standardDeviation: (0..<channels).map { 0.3 + 0.05 * Float($0) })
        return Dataset(
            name: "synthetic", count: count, channels: channels, rows: rows, columns: columns, pixels: pixels,
            labels: (0..<count).map { UInt8($0 % 10) }, normalization: normalization)
    }

    /// The batch of `shape` gathered on `device` from `set` in `order`.
    func gather(_ set: Dataset, order: [Int], _ shape: BatchGatherShape, on device: any Device) throws -> (
        [Float], [Int32]
    ) {
        let pixels = try device.makeBuffer(count: set.pixels.count, kind: .uint8)
        try set.pixels.withUnsafeBufferPointer { try device.upload($0, to: pixels) }
        let labels = try device.makeBuffer(count: set.count, kind: .uint8)
        try set.labels.withUnsafeBufferPointer { try device.upload($0, to: labels) }
        let images = try device.makeBuffer(count: shape.outputCount, kind: .float32)
        let batchLabels = try device.makeBuffer(count: shape.batch, kind: .int32)
        try device.gatherBatch(
            shape, pixels: pixels, labels: labels, order: try device.makeBuffer(order.map { Int32($0) }),
            images: images, batchLabels: batchLabels)
        return (try device.floats(images), try device.int32s(batchLabels))
    }

    /// The float32 batch from the host's own normalisation: image n of
    /// `Dataset.normalizedImages`, cropped and flipped by `shape.choice(k)`,
    /// padding 0·scale[c] − shift[c] (a black byte normalised).
    func croppedNormalizedImages(_ set: Dataset, order: [Int], _ shape: BatchGatherShape) -> [Float] {
        let (rows, columns, plane, p) = (set.rows, set.columns, set.planeSize, shape.padding)
        var out: [Float] = []
        for k in 0..<shape.batch {
            let image = set.normalizedImages([order[shape.range.lowerBound + k]])
            let choice = shape.choice(k)
            for c in 0..<set.channels {
                let black = Float(0) * set.normalization.pixelScales[c] - set.normalization.pixelShifts[c]
                for y in 0..<rows {
                    for x in 0..<columns {
                        let sy = y + choice.dy - p
                        let sx = (choice.flip ? columns - 1 - x : x) + choice.dx - p
                        let inside = sy >= 0 && sy < rows && sx >= 0 && sx < columns
                        out.append(inside ? image[c * plane + sy * columns + sx] : black)
                    }
                }
            }
        }
        return out
    }

    func reference(_ set: Dataset, order: [Int], _ shape: BatchGatherShape) -> [Double] {
        NaiveReference.gatherBatch(
            pixels: set.pixels, channels: set.channels, rows: set.rows, columns: set.columns, order: order,
            range: shape.range, mean: set.normalization.mean.map(Double.init),
            standardDeviation: set.normalization.standardDeviation.map(Double.init),
            augmentation: shape.augmentation, padding: shape.padding, seed: shape.seed, epoch: shape.epoch)
    }

    /// Bit patterns that differ between two batches.
    func differing(_ a: [Float], _ b: [Float]) -> Int {
        a.count == b.count ? zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count : max(a.count, b.count)
    }

    /// A synthetic 3×32×32 set (CIFAR-10's constants) without augmentation:
    /// `Dataset.normalizedImages` bit for bit on every device, for batch 1,
    /// a partial last batch and the whole set; and within 1e-6 of float64.
    func testThreeChannelGatherEqualsHostNormalisationBitForBit() throws {
        let set = syntheticSet(count: 47, channels: 3, rows: 32, columns: 32)
        let order = Trainer.order(count: 47, seed: 5, epoch: 2)
        for range in [0..<1, 23..<24, 32..<47, 0..<47] {
            let shape = BatchGatherShape(
                count: 47, rows: 32, columns: 32, range: range, normalization: set.normalization)
            let expected = set.normalizedImages(order[range])
            let exact = reference(set, order: order, shape)
            let error = zip(expected, exact).map { abs(Double($0) - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(error, 1e-6, "normalizedImages against float64, order[\(range)]")
            for device in try testDevices() {
                let (images, labels) = try gather(set, order: order, shape, on: device)
                let context = "\(device.info.selector) 3×32×32 order[\(range)]"
                XCTAssertEqual(labels, order[range].map { Int32(set.labels[$0]) }, context)
                XCTAssertEqual(differing(images, expected), 0, "\(context): pixels differ from normalizedImages")
            }
        }
    }

    /// Every augmentation at odd shapes (1 and 3 channels, 28×28 with
    /// padding 2, 32×32 with 4, 5×7, and 3×3 with a padding of 2 that can
    /// leave a crop all padding), batch 1, a partial last batch and a full
    /// one: the host against the cropped normalised images (bit for bit)
    /// and float64 (1e-6), every OpenCL device against the host (bit for bit).
    func testAugmentedGatherIsIdenticalOnEveryDevice() throws {
        let cases = [(1, 28, 28), (3, 32, 32), (3, 5, 7), (1, 3, 3), (2, 4, 6)]
        let devices = try testDevices()
        var worst = 0.0
        for (channels, rows, columns) in cases {
            let count = 23
            let set = syntheticSet(count: count, channels: channels, rows: rows, columns: columns)
            let order = Trainer.order(count: count, seed: 11, epoch: 3)
            for augmentation in Augmentation.allCases {
                for range in [0..<1, 9..<10, 16..<23, 0..<16] {
                    let shape = BatchGatherShape(
                        count: count, rows: rows, columns: columns, range: range, normalization: set.normalization,
                        augmentation: augmentation, seed: 0x1234_5678_9abc, epoch: 3)
                    let context = "\(channels)×\(rows)×\(columns) \(augmentation.rawValue) order[\(range)]"
                    XCTAssertEqual(
                        shape.padding, augmentation == .none ? 0 : (rows >= 32 ? 4 : 2), context)
                    let (host, hostLabels) = try gather(set, order: order, shape, on: HostDevice())
                    XCTAssertEqual(hostLabels, order[range].map { Int32(set.labels[$0]) }, context)
                    XCTAssertEqual(
                        differing(host, croppedNormalizedImages(set, order: order, shape)), 0,
                        "\(context): host differs from the cropped normalizedImages")
                    let exact = reference(set, order: order, shape)
                    XCTAssertEqual(host.count, exact.count, context)
                    let error = zip(host, exact).map { abs(Double($0) - $1) }.max() ?? .infinity
                    worst = max(worst, error)
                    XCTAssertLessThanOrEqual(error, 1e-6, "\(context): host against float64")
                    for device in devices.dropFirst() {
                        let (images, labels) = try gather(set, order: order, shape, on: device)
                        XCTAssertEqual(labels, hostLabels, "\(device.info.selector) \(context)")
                        XCTAssertEqual(
                            differing(images, host), 0, "\(device.info.selector) \(context): pixels differ from host")
                    }
                }
            }
        }
        print("augmented gather: largest difference from float64 \(worst)")
    }

    /// The choices the devices use are the documented hash: AugmentationChoice
    /// equals the reference's independent 64-bit implementation; over
    /// 60,000 positions (three seeds and epochs) dy and dx each take every
    /// value in 0…2p equally often and the 25 or 81 (dy, dx) pairs too (a
    /// χ² test, p-value > 1e-6), and flips happen half the time (within 5σ
    /// of N/2). The same χ² test rejects a biased sample (dy = position mod 2p),
    /// so it can fail.
    func testChoicesAreUniformAndFlipHalfTheTime() throws {
        for padding in [2, 4] {
            let span = 2 * padding + 1
            var dy = [Int](repeating: 0, count: span)
            var dx = [Int](repeating: 0, count: span)
            var pairs = [Int](repeating: 0, count: span * span)
            var flips = 0
            var total = 0
            for (seed, epoch) in [(UInt64(0), 1), (UInt64(7), 2), (UInt64.max - 3, 40)] {
                let key = AugmentationChoice.key(seed: seed, epoch: epoch)
                for position in 0..<20000 {
                    let choice = AugmentationChoice(key: key, position: position, padding: padding, flips: true)
                    if position % 97 == 0 {
                        let expected = NaiveReference.augmentationChoice(
                            seed: seed, epoch: epoch, position: position, padding: padding, flips: true)
                        XCTAssertEqual(choice.dy, expected.dy)
                        XCTAssertEqual(choice.dx, expected.dx)
                        XCTAssertEqual(choice.flip, expected.flip)
                    }
                    dy[choice.dy] += 1
                    dx[choice.dx] += 1
                    pairs[choice.dy * span + choice.dx] += 1
                    flips += choice.flip ? 1 : 0
                    total += 1
                }
            }
            for (name, counts) in [("dy", dy), ("dx", dx), ("(dy, dx)", pairs)] {
                let p = chiSquarePValue(counts)
                print("padding \(padding) \(name): counts \(counts.prefix(9)) χ² p-value \(p)")
                XCTAssertGreaterThan(
                    p, 1e-6, "padding \(padding): \(name) is not uniform on 0…\(2 * padding): \(counts)")
            }
            let sigma = (Double(total) / 4).squareRoot()
            print("padding \(padding): \(flips) flips of \(total) (σ \(sigma))")
            XCTAssertLessThan(abs(Double(flips) - Double(total) / 2), 5 * sigma, "flips \(flips) of \(total)")
            let biased = (0..<total).reduce(into: [Int](repeating: 0, count: span)) { $0[$1 % (2 * padding)] += 1 }
            XCTAssertLessThan(chiSquarePValue(biased), 1e-6, "the χ² test accepts a sample that never reaches 2p")
        }
        // Crop without flip never flips; no augmentation has one choice.
        let key = AugmentationChoice.key(seed: 3, epoch: 1)
        XCTAssertFalse(
            (0..<1000).contains { AugmentationChoice(key: key, position: $0, padding: 2, flips: false).flip })
        let plain = BatchGatherShape(
            count: 5, rows: 2, columns: 2, range: 0..<5, normalization: .mnist, seed: 3, epoch: 1)
        XCTAssertEqual(Set((0..<5).map(plain.choice)), [AugmentationChoice(dy: 0, dx: 0, flip: false)])
    }

    /// The upper tail of the χ² distribution of Σ (o − e)²/e for counts
    /// expected equal, with an even number of degrees of freedom ν = 2m
    /// (here 4, 8, 24, 80): P = e^(−χ²/2) Σ_{j<m} (χ²/2)^j / j!.
    func chiSquarePValue(_ counts: [Int]) -> Double {
        let expected = Double(counts.reduce(0, +)) / Double(counts.count)
        let statistic = counts.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
        let degrees = counts.count - 1
        precondition(degrees % 2 == 0, "an even number of degrees of freedom")
        let half = statistic / 2
        var term = 1.0
        var sum = 1.0
        for j in 1..<(degrees / 2) {
            term *= half / Double(j)
            sum += term
        }
        return exp(-half) * sum
    }

    /// `DeviceDataset.gather(_:images:labels:augmentation:seed:epoch:)` on a
    /// 3×32×32 set, into plain buffers: the float64 reference within 1e-6 and
    /// the host's batch bit for bit on every device; a different epoch
    /// crops differently.
    func testDeviceDatasetGathersAugmentedBatchesOfAnyShape() throws {
        let set = syntheticSet(count: 30, channels: 3, rows: 32, columns: 32)
        let order = Trainer.order(count: 30, seed: 2, epoch: 1)
        var hostBatch: [Float]?
        for device in try testDevices() {
            let data = try DeviceDataset(set, on: device)
            XCTAssertEqual([data.channels, data.rows, data.columns], [3, 32, 32])
            try data.setOrder(order)
            let images = try device.makeBuffer(count: 13 * 3072, kind: .float32)
            let labels = try device.makeBuffer(count: 13, kind: .int32)
            try data.gather(17..<30, images: images, labels: labels, augmentation: .cropFlip, seed: 9, epoch: 4)
            let batch = try device.floats(images)
            XCTAssertEqual(try device.int32s(labels), order[17..<30].map { Int32(set.labels[$0]) })
            let shape = BatchGatherShape(
                count: 30, rows: 32, columns: 32, range: 17..<30, normalization: set.normalization,
                augmentation: .cropFlip, seed: 9, epoch: 4)
            XCTAssertEqual(shape.padding, 4)
            let error = zip(batch, reference(set, order: order, shape)).map { abs(Double($0) - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(error, 1e-6, device.info.selector)
            if let hostBatch {
                XCTAssertEqual(differing(batch, hostBatch), 0, device.info.selector)
            } else {
                hostBatch = batch
            }
            try data.gather(17..<30, images: images, labels: labels, augmentation: .cropFlip, seed: 9, epoch: 5)
            XCTAssertGreaterThan(differing(try device.floats(images), batch), 0, "epoch 5 gave epoch 4's crops")
        }
    }

    /// Shapes a device cannot gather are refused with what is wrong, on
    /// the host and on OpenCL.
    func testInconsistentShapesAreRefused() throws {
        let set = syntheticSet(count: 4, channels: 3, rows: 5, columns: 5)
        var shapes: [(BatchGatherShape, String)] = []
        var shape = BatchGatherShape(
            count: 4, rows: 5, columns: 5, range: 0..<2, normalization: set.normalization, augmentation: .crop)
        shape.padding = -1
        shapes.append((shape, "padding -1"))
        shape = BatchGatherShape(count: 4, rows: 5, columns: 5, range: 0..<2, normalization: set.normalization)
        shape.shifts.removeLast()
        shapes.append((shape, "3 scales and 2 shifts"))
        shape = BatchGatherShape(count: 4, rows: 5, columns: 5, range: 0..<2, normalization: set.normalization)
        shape.rows = 4
        shapes.append((shape, "image size 75 is not 3 channels × 4 × 5"))
        for device in try testDevices() {
            for (shape, message) in shapes {
                XCTAssertThrowsError(try gather(set, order: [0, 1, 2, 3], shape, on: device)) { error in
                    XCTAssertTrue("\(error)".contains(message), "\(device.info.selector): \(error)")
                }
            }
        }
    }

    /// Which kernel each gather launches, with how many work-items, at
    /// batch 128 on each OpenCL device: the plain one-channel gather keeps
    /// `batch_gather16` (cpu family, 7 float16s per item) or `batch_gather1`;
    /// several channels or an augmentation take `batch_gather_rows` (a row
    /// per item) or `gpu_batch_gather_planes` (a pixel per item). Prints the
    /// sizes and each gather's median time over 15 runs (information, not a check).
    func testLaunchSizesAtBatch128() throws {
        let cases: [(Int, Int, Augmentation)] = [
            (1, 28, .none), (1, 28, .cropFlip), (3, 32, .none), (3, 32, .cropFlip),
        ]
        for device in try openCLTestDevices() {
            let openCL = try XCTUnwrap(device as? OpenCLDevice)
            for (channels, side, augmentation) in cases {
                let set = syntheticSet(count: 128, channels: channels, rows: side, columns: side)
                let data = try DeviceDataset(set, on: device)
                let images = try device.makeBuffer(count: 128 * set.imageSize, kind: .float32)
                let labels = try device.makeBuffer(count: 128, kind: .int32)
                try data.gather(0..<128, images: images, labels: labels, augmentation: augmentation, seed: 1, epoch: 1)
                try device.finish()
                openCL.launchLog = []
                var times: [Double] = []
                for _ in 0..<15 {
                    let start = DispatchTime.now().uptimeNanoseconds
                    try data.gather(
                        0..<128, images: images, labels: labels, augmentation: augmentation, seed: 1, epoch: 1)
                    try device.finish()
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                }
                let launches = openCL.launchLog ?? []
                openCL.launchLog = nil
                let plain = channels == 1 && augmentation == .none
                let (kernel, items) =
                    openCL.kernelFamily == .cpu
                    ? (plain ? ("batch_gather16", 128 * 784 / (16 * 7)) : ("batch_gather_rows", 128 * channels * side))
                    : (plain ? ("batch_gather1", 128 * 784) : ("gpu_batch_gather_planes", 128 * set.imageSize))
                let context = "\(device.info.summary) \(channels)×\(side)×\(side) \(augmentation.rawValue)"
                XCTAssertEqual(launches.count, 15, context)
                guard let launch = launches.first else { continue }
                XCTAssertEqual(launch.kernel, kernel, context)
                XCTAssertGreaterThanOrEqual(launch.globalSize, items, context)
                XCTAssertLessThan(launch.globalSize, items + launch.localSize, context)
                print(
                    "\(context): \(launch.kernel), \(items) work-items (global \(launch.globalSize), local "
                        + "\(launch.localSize)), median \(times.sorted()[7]) ms a batch")
            }
        }
    }
}
