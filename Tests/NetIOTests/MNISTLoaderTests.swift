import Foundation
import NetIO
import TestSupport
import XCTest

/// The loader on the real MNIST files (TestEnvironment.mnistDirectory), with
/// every expected number taken from shared/data/mnist/README.md, plus the
/// locator and the missing-file and download-failure paths.
final class MNISTLoaderTests: XCTestCase {
    /// Loaded once for the class: decompressing and checking 55 MB is the
    /// slow part, and every test here reads the same sets.
    nonisolated(unsafe) static var cached: (train: Dataset, test: Dataset)?

    private func mnist() throws -> (train: Dataset, test: Dataset) {
        if let c = Self.cached { return c }
        let directory = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST not found: set MNIST_DIR or provide ../shared/data/mnist")
        let sets = try MNISTLoader.load(kind: .mnist, directory: directory, download: nil, verifyChecksums: true)
        Self.cached = sets
        return sets
    }

    private func classCounts(_ labels: [UInt8]) -> [Int] {
        var counts = [Int](repeating: 0, count: 10)
        for l in labels { counts[Int(l)] += 1 }
        return counts
    }

    func testCountsShapesAndFirstLabels() throws {
        let (train, test) = try mnist()
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual(test.count, 10000)
        XCTAssertEqual([train.rows, train.columns, test.rows, test.columns], [28, 28, 28, 28])
        XCTAssertEqual(train.pixels.count, 60000 * 784)
        XCTAssertEqual(Array(train.labels.prefix(10)), [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
        XCTAssertEqual(train.name, "mnist/train")
        XCTAssertEqual(test.name, "mnist/test")
    }

    func testClassCounts() throws {
        let (train, test) = try mnist()
        XCTAssertEqual(classCounts(train.labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
        XCTAssertEqual(classCounts(test.labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    }

    /// Mean and (population) standard deviation of the training pixels on a
    /// 0–1 scale, summed in Double: 0.1307 and 0.3081 to 4 decimals.
    func testTrainingPixelMeanAndStandardDeviation() throws {
        let (train, _) = try mnist()
        let (mean, std) = pixelStatistics(train.pixels)
        XCTAssertEqual(rounded(mean, decimals: 4), 0.1307)
        XCTAssertEqual(rounded(std, decimals: 4), 0.3081)
    }

    /// The decompressed content's MD5 (our MD5, which MD5Tests checks against
    /// RFC 1321 and md5sum) against the README's table.
    func testDecompressedMD5sMatchTheREADME() throws {
        let directory = try XCTUnwrap(TestEnvironment.mnistDirectory)
        let table = [
            "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
        ]
        for (name, expected) in table {
            let url = directory.appendingPathComponent(name)
            let raw = try IDXReader.idxBytes(IDXReader.readFile(url), fileName: name)
            XCTAssertEqual(MD5.hex(raw), expected, name)
        }
    }

    func testNormalizedImagesUseTheStatedConstants() throws {
        let (train, _) = try mnist()
        let x = train.normalizedImages([0])
        XCTAssertEqual(x.count, 784)
        for (p, v) in zip(train.pixels.prefix(784), x) {
            let expected = (Double(p) / 255 - 0.1307) / 0.3081
            XCTAssertEqual(Double(v), expected, accuracy: 1e-5)
        }
    }

    /// Fashion-MNIST from Debian's dataset-fashion-mnist (scripts/setup
    /// installs it) at the locator's default folder: the published sizes,
    /// balanced classes (6000 per class in training, 1000 in test) and the
    /// first training labels (ankle boot, T-shirt, T-shirt, dress, …), with
    /// the MD5 table checked on load.
    func testFashionMNISTFromTheDebianPackage() throws {
        let directory = DatasetLocator.directory(for: .fashionMNIST, environment: [:])
        XCTAssertEqual(directory.path, "/usr/share/datasets/fashion-mnist")
        let (train, test) = try MNISTLoader.load(
            kind: .fashionMNIST, directory: directory, download: nil, verifyChecksums: true)
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual(test.count, 10000)
        XCTAssertEqual(classCounts(train.labels), [Int](repeating: 6000, count: 10))
        XCTAssertEqual(classCounts(test.labels), [Int](repeating: 1000, count: 10))
        XCTAssertEqual(Array(train.labels.prefix(10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
        XCTAssertEqual(Array(test.labels.prefix(10)), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
    }

    // MARK: synthetic folders

    private func writeSyntheticSet(in dir: URL, train: Int, test: Int, gzip: Bool) throws {
        func write(_ name: String, _ data: Data) throws {
            try (gzip ? gzipped(data) : data).write(to: dir.appendingPathComponent(name + (gzip ? ".gz" : "")))
        }
        try write(
            "train-images-idx3-ubyte",
            idxBytes(dims: [train, 28, 28], payload: (0..<(train * 784)).map { UInt8($0 % 251) }))
        try write("train-labels-idx1-ubyte", idxBytes(dims: [train], payload: (0..<train).map { UInt8($0 % 10) }))
        try write(
            "t10k-images-idx3-ubyte", idxBytes(dims: [test, 28, 28], payload: (0..<(test * 784)).map { UInt8($0 % 7) }))
        try write("t10k-labels-idx1-ubyte", idxBytes(dims: [test], payload: (0..<test).map { UInt8(9 - $0 % 10) }))
    }

    func testOtherContentFailsTheChecksumButPassesWithoutIt() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-mnist")
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeSyntheticSet(in: dir, train: 5, test: 3, gzip: true)
        assertThrows(
            DatasetError.self, containing: ["train-images-idx3-ubyte.gz", "expected 6bbc9ace898e44ae57da46a324031adb"]
        ) {
            try MNISTLoader.load(kind: .mnist, directory: dir, download: nil, verifyChecksums: true)
        }
        let (train, test) = try MNISTLoader.load(kind: .mnist, directory: dir, download: nil, verifyChecksums: false)
        XCTAssertEqual(train.count, 5)
        XCTAssertEqual(test.count, 3)
        XCTAssertEqual(test.labels, [9, 8, 7])
        XCTAssertEqual(Array(train.pixels.suffix(2)), [UInt8((5 * 784 - 2) % 251), UInt8((5 * 784 - 1) % 251)])
    }

    /// A test set of 29×28 images (one row too many, the right number of
    /// columns) is refused by the loader, naming the file and both sizes.
    func testImagesWithARowTooManyAreRefused() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-mnist")
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeSyntheticSet(in: dir, train: 5, test: 3, gzip: false)
        try idxBytes(dims: [3, 29, 28], payload: [UInt8](repeating: 1, count: 3 * 29 * 28))
            .write(to: dir.appendingPathComponent("t10k-images-idx3-ubyte"))
        assertThrows(IDXError.self, containing: ["t10k-images-idx3-ubyte", "29×28", "expected 28×28"]) {
            try MNISTLoader.load(kind: .mnist, directory: dir, download: nil, verifyChecksums: false)
        }
    }

    func testUncompressedFilesAreReadToo() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-mnist")
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeSyntheticSet(in: dir, train: 4, test: 2, gzip: false)
        let (train, test) = try MNISTLoader.load(
            kind: .fashionMNIST, directory: dir, download: nil, verifyChecksums: false)
        XCTAssertEqual(train.labels, [0, 1, 2, 3])
        XCTAssertEqual(test.count, 2)
        XCTAssertEqual(train.name, "fashion-mnist/train")
    }

    func testMissingFilesWithoutDownloadingSayWhatToPutWhere() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-mnist")
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeSyntheticSet(in: dir, train: 2, test: 2, gzip: true)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("t10k-labels-idx1-ubyte.gz"))
        let error = assertThrows(
            DatasetError.self,
            containing: [
                "MNIST files missing in \(dir.path): t10k-labels-idx1-ubyte.gz",
                "\(dir.path)/t10k-labels-idx1-ubyte.gz", "--data DIR", "MNIST_DIR",
            ]
        ) { try MNISTLoader.load(kind: .mnist, directory: dir, download: nil) }
        XCTAssertFalse(error?.description.contains("train-images") ?? true, "only the missing file is listed")
        // The whole text, so that a doubled ".gz.gz" (which contains ".gz") cannot pass.
        XCTAssertEqual(
            error?.description,
            """
            MNIST files missing in \(dir.path): t10k-labels-idx1-ubyte.gz.
            Put these files (gzip'd as published, or uncompressed) into \(dir.path):
              \(dir.path)/t10k-labels-idx1-ubyte.gz   (from https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz)
            or name another folder with --data DIR or MNIST_DIR=DIR.
            """)
    }

    /// Downloading from a mirror that refuses connections (a closed port on
    /// the loopback address) fails within the connect timeout, the error
    /// quotes the URL and curl's reason, and nothing is left in the folder.
    func testDownloadFailureIsFastAndClear() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-mnist")
        defer { try? FileManager.default.removeItem(at: dir) }
        let mirror = URL(string: "http://127.0.0.1:9/mnist/")!
        let start = Date()
        let error = assertThrows(
            DatasetError.self,
            containing: [
                "MNIST files missing in \(dir.path)", "Downloading them failed",
                "http://127.0.0.1:9/mnist/train-images-idx3-ubyte.gz: ", "curl",
                "\(dir.path)/train-labels-idx1-ubyte.gz",
                "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
            ]
        ) {
            try MNISTLoader.load(
                kind: .mnist, directory: dir,
                download: DatasetDownload(mirrors: [mirror], connectTimeout: 2, totalTimeout: 5))
        }
        XCTAssertNotNil(error)
        XCTAssertFalse(error?.description.contains(".gz.gz") ?? true, error?.description ?? "")
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    func testFashionMNISTMessageNamesTheDebianPackage() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-fashion")
        defer { try? FileManager.default.removeItem(at: dir) }
        assertThrows(
            DatasetError.self,
            containing: ["Fashion-MNIST files missing", "dataset-fashion-mnist", "FASHION_MNIST_DIR"]
        ) {
            try MNISTLoader.load(kind: .fashionMNIST, directory: dir, download: nil)
        }
    }

    func testLocatorOrder() {
        let explicit = URL(fileURLWithPath: "/x/data")
        let env = ["MNIST_DIR": "/env/mnist", "XDG_DATA_HOME": "/xdg", "HOME": "/home/u"]
        XCTAssertEqual(DatasetLocator.directory(for: .mnist, explicit: explicit, environment: env).path, "/x/data")
        XCTAssertEqual(DatasetLocator.directory(for: .mnist, environment: env).path, "/env/mnist")
        XCTAssertEqual(
            DatasetLocator.directory(for: .mnist, environment: ["MNIST_DIR": "", "XDG_DATA_HOME": "/xdg"]).path,
            "/xdg/convsvd/mnist")
        XCTAssertEqual(
            DatasetLocator.directory(for: .mnist, environment: ["HOME": "/home/u"]).path,
            "/home/u/.local/share/convsvd/mnist")
        XCTAssertEqual(
            DatasetLocator.directory(for: .fashionMNIST, environment: env).path, "/usr/share/datasets/fashion-mnist")
        XCTAssertEqual(
            DatasetLocator.directory(for: .fashionMNIST, environment: ["FASHION_MNIST_DIR": "/f"]).path, "/f")
    }
}
