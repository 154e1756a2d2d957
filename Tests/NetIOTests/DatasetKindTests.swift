import Foundation
import NetIO
import TestSupport
import XCTest

/// The `--dataset` table (shapes, sizes, normalisation constants) and the
/// per-channel normalisation: the constants against the published values,
/// MNIST's floats against the ones its code paths have always used (bit for
/// bit), Fashion-MNIST's statistics recomputed from the real files, and the
/// normalised values against float64 references.
final class DatasetKindTests: XCTestCase {
    func testTable() {
        XCTAssertEqual(DatasetKind.allCases.map(\.rawValue), ["mnist", "fashion-mnist", "cifar10"])
        XCTAssertEqual(DatasetKind.allCases.map(\.displayName), ["MNIST", "Fashion-MNIST", "CIFAR-10"])
        XCTAssertEqual(DatasetKind.mnist.inputShape, ImageShape(channels: 1, height: 28, width: 28))
        XCTAssertEqual(DatasetKind.fashionMNIST.inputShape, ImageShape(channels: 1, height: 28, width: 28))
        XCTAssertEqual(DatasetKind.cifar10.inputShape, ImageShape(channels: 3, height: 32, width: 32))
        XCTAssertEqual(DatasetKind.cifar10.inputShape.description, "3×32×32")
        XCTAssertEqual(DatasetKind.cifar10.inputShape.elementCount, 3072)
        XCTAssertEqual(DatasetKind.allCases.map(\.classCount), [10, 10, 10])
        XCTAssertEqual(DatasetKind.allCases.map(\.trainingCount), [60000, 60000, 50000])
        XCTAssertEqual(DatasetKind.allCases.map(\.testCount), [10000, 10000, 10000])
        XCTAssertEqual(
            DatasetKind.allCases.map(\.environmentVariable), ["MNIST_DIR", "FASHION_MNIST_DIR", "CIFAR10_DIR"])
        XCTAssertEqual(DatasetKind.allCases.map(\.format), [.idx, .idx, .cifar10Binary])
    }

    /// The standard constants, as float32 literals of the published decimals.
    func testNormalisationConstants() {
        XCTAssertEqual(DatasetKind.mnist.normalization.mean, [0.1307])
        XCTAssertEqual(DatasetKind.mnist.normalization.standardDeviation, [0.3081])
        XCTAssertEqual(DatasetKind.fashionMNIST.normalization.mean, [0.2860])
        XCTAssertEqual(DatasetKind.fashionMNIST.normalization.standardDeviation, [0.3530])
        XCTAssertEqual(DatasetKind.cifar10.normalization.mean, [0.4914, 0.4822, 0.4465])
        XCTAssertEqual(DatasetKind.cifar10.normalization.standardDeviation, [0.2470, 0.2435, 0.2616])
        for kind in DatasetKind.allCases {
            XCTAssertEqual(kind.normalization.channels, kind.inputShape.channels, kind.rawValue)
        }
    }

    /// MNIST's scale and shift are the very floats of ``Dataset/pixelScale``
    /// and ``Dataset/pixelShift`` (which devices use too), and a set with the
    /// default normalisation gives x·pixelScale − pixelShift bit for bit.
    func testMNISTNormalisationIsBitIdentical() {
        XCTAssertEqual(Normalization.mnist.pixelScales.map(\.bitPattern), [Dataset.pixelScale.bitPattern])
        XCTAssertEqual(Normalization.mnist.pixelShifts.map(\.bitPattern), [Dataset.pixelShift.bitPattern])
        let pixels: [UInt8] = (0..<(3 * 784)).map { UInt8(($0 * 37 + 11) % 256) }
        let set = Dataset(name: "t", count: 3, rows: 28, columns: 28, pixels: pixels, labels: [0, 1, 2])
        XCTAssertEqual(set.channels, 1)
        XCTAssertEqual(set.normalization, Normalization.mnist)
        let x: [Float] = set.normalizedImages([2, 0])
        var reference: [Float] = []
        for p in Array(pixels[1568..<2352]) + Array(pixels[0..<784]) {
            let product: Float = Float(p) * Dataset.pixelScale
            reference.append(product - Dataset.pixelShift)
        }
        XCTAssertEqual(x.map { $0.bitPattern }, reference.map { $0.bitPattern })
    }

    /// Three channels of a 4×5 image, indices out of order, against
    /// (x/255 − mean[c])/std[c] in float64 (1e-5: float32 rounding of values
    /// of magnitude ≤ 3).
    func testMultiChannelNormalisationAgainstFloat64() {
        let (c, h, w, n) = (3, 4, 5, 3)
        let pixels = (0..<(n * c * h * w)).map { UInt8(($0 * 53 + 7) % 256) }
        let norm = Normalization.cifar10
        let set = Dataset(
            name: "t", count: n, channels: c, rows: h, columns: w, pixels: pixels, labels: [1, 2, 3],
            normalization: norm)
        XCTAssertEqual(set.imageSize, 60)
        XCTAssertEqual(set.planeSize, 20)
        let order = [2, 0, 1]
        let x = set.normalizedImages(order)
        XCTAssertEqual(x.count, n * 60)
        for (k, image) in order.enumerated() {
            for channel in 0..<c {
                for p in 0..<(h * w) {
                    let byte = Double(pixels[image * 60 + channel * 20 + p])
                    let expected =
                        (byte / 255 - Double(norm.mean[channel])) / Double(norm.standardDeviation[channel])
                    XCTAssertEqual(Double(x[k * 60 + channel * 20 + p]), expected, accuracy: 1e-5)
                }
            }
        }
        let first = set.prefix(2)
        XCTAssertEqual(first.channels, 3)
        XCTAssertEqual(first.normalization, norm)
        XCTAssertEqual(first.pixels, Array(pixels[0..<120]))
    }

    /// Recorded as `{"mean": [...], "std": [...]}` and read back; a record
    /// with unequal lengths or a zero deviation is refused.
    func testNormalisationRecordRoundTrip() throws {
        let data = try JSONEncoder().encode(Normalization.cifar10)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: [Double]])
        XCTAssertEqual(Set(object.keys), ["mean", "std"])
        XCTAssertEqual(object["mean"]?.map { Float($0) }, [0.4914, 0.4822, 0.4465])
        XCTAssertEqual(object["std"]?.map { Float($0) }, [0.2470, 0.2435, 0.2616])
        XCTAssertEqual(try JSONDecoder().decode(Normalization.self, from: data), .cifar10)
        for bad in [
            #"{"mean": [0.1, 0.2], "std": [0.3]}"#, #"{"mean": [0.1], "std": [0]}"#, #"{"mean": [], "std": []}"#,
        ] {
            XCTAssertThrowsError(try JSONDecoder().decode(Normalization.self, from: Data(bad.utf8)), bad)
        }
    }

    /// Fashion-MNIST's constants are its training pixels' own mean and
    /// population standard deviation (0–1 scale, summed in float64), to four
    /// decimals; the loader gives the sets that normalisation. Reads Debian's
    /// dataset-fashion-mnist (scripts/setup installs it).
    func testFashionMNISTStatisticsMatchTheConstants() throws {
        let directory = DatasetLocator.directory(for: .fashionMNIST, environment: [:])
        let (train, test) = try DatasetLoader.load(kind: .fashionMNIST, directory: directory, download: nil)
        XCTAssertEqual([train.count, test.count], [60000, 10000])
        XCTAssertEqual(train.normalization, .fashionMNIST)
        XCTAssertEqual(test.normalization, .fashionMNIST)
        let (mean, std) = pixelStatistics(train.pixels)
        XCTAssertEqual(rounded(mean, decimals: 4), 0.2860)
        XCTAssertEqual(rounded(std, decimals: 4), 0.3530)
        let x = train.normalizedImages([0])
        for (p, v) in zip(train.pixels.prefix(784), x) {
            XCTAssertEqual(Double(v), (Double(p) / 255 - 0.2860) / 0.3530, accuracy: 1e-5)
        }
    }
}
