import Foundation
import NetIO
import TestSupport
import XCTest

/// CIFAR-10's binary reader on files these tests write in the published
/// format (no copy of CIFAR-10 is reachable here): records of one label byte
/// and 3,072 pixel bytes, the R, G and B 32×32 planes. Expected values come
/// from the bytes written, placed by hand, never from the reader.
final class CIFAR10LoaderTests: XCTestCase {
    private var directories: [URL] = []

    override func tearDown() {
        for d in directories { try? FileManager.default.removeItem(at: d) }
        directories = []
    }

    private func temporaryDirectory() throws -> URL {
        let d = try TestEnvironment.makeTemporaryDirectory("convsvd-cifar10")
        directories.append(d)
        return d
    }

    /// A record whose planes are constant (r, g, b) except the pixels in `marks`:
    /// (channel, row, column) → value.
    private func record(label: UInt8, r: UInt8, g: UInt8, b: UInt8, marks: [(Int, Int, Int, UInt8)] = []) -> [UInt8] {
        var bytes = [label]
        bytes += [UInt8](repeating: r, count: 1024)
        bytes += [UInt8](repeating: g, count: 1024)
        bytes += [UInt8](repeating: b, count: 1024)
        for (c, y, x, v) in marks { bytes[1 + c * 1024 + y * 32 + x] = v }
        return bytes
    }

    /// Writes the six files; record k of file f has label (f + k) % 10 and
    /// red plane value 10·f + k, so that order and origin can be read back.
    @discardableResult
    private func writeSet(in dir: URL, recordsPerFile: [Int] = [2, 1, 3, 1, 2, 2]) throws -> [[UInt8]] {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var files = [[UInt8]]()
        for (f, name) in CIFAR10Loader.fileNames.enumerated() {
            var bytes = [UInt8]()
            for k in 0..<recordsPerFile[f] {
                bytes += record(label: UInt8((f + k) % 10), r: UInt8(10 * f + k), g: 100, b: 200)
            }
            try Data(bytes).write(to: dir.appendingPathComponent(name))
            files.append(bytes)
        }
        return files
    }

    private func md5sum(_ url: URL) throws -> String {
        String(try runProgram("/usr/bin/md5sum", [url.path]).prefix(32))
    }

    func testFileNamesAndConstants() {
        XCTAssertEqual(
            CIFAR10Loader.fileNames,
            [
                "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin",
                "test_batch.bin",
            ])
        XCTAssertEqual(CIFAR10Loader.recordSize, 3073)
        XCTAssertEqual(CIFAR10Loader.archiveName, "cifar-10-binary.tar.gz")
        XCTAssertEqual(CIFAR10Loader.archiveMD5, "c32a1d4ab5d03f1284b67883e8d87530")
        XCTAssertEqual(
            DatasetKind.cifar10.mirrors[0].appendingPathComponent(CIFAR10Loader.archiveName).absoluteString,
            "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz")
    }

    /// Hand-placed pixels land in channel planes (NCHW): the green pixel at
    /// row 1, column 2 of image 1 is pixels[3072 + 1·1024 + 1·32 + 2]; the
    /// blue one at row 31, column 31 is the image's last byte. The
    /// normalised values match (x/255 − mean[c])/std[c] in float64 within 1e-5.
    func testRecordsKeepChannelPlanesAndNormalisePerChannel() throws {
        let bytes =
            record(label: 3, r: 1, g: 2, b: 3)
            + record(label: 9, r: 10, g: 20, b: 30, marks: [(1, 1, 2, 200), (2, 31, 31, 255), (0, 0, 0, 0)])
        let (pixels, labels) = try CIFAR10Loader.records(Data(bytes), fileName: "hand.bin")
        XCTAssertEqual(labels, [3, 9])
        XCTAssertEqual(pixels.count, 2 * 3072)
        XCTAssertEqual(pixels[0], 1)
        XCTAssertEqual(pixels[1024], 2)
        XCTAssertEqual(pixels[3071], 3)
        XCTAssertEqual(pixels[3072 + 0], 0)
        XCTAssertEqual(pixels[3072 + 1], 10)
        XCTAssertEqual(pixels[3072 + 1024 + 1 * 32 + 2], 200)
        XCTAssertEqual(pixels[3072 + 1024 + 1 * 32 + 3], 20)
        XCTAssertEqual(pixels[3072 + 2048 + 31 * 32 + 31], 255)
        XCTAssertEqual(pixels[3072 + 2048], 30)

        let set = Dataset(
            name: "t", count: 2, channels: 3, rows: 32, columns: 32, pixels: pixels, labels: labels,
            normalization: .cifar10)
        let x = set.normalizedImages([1])
        XCTAssertEqual(x.count, 3072)
        let mean = [0.4914, 0.4822, 0.4465]
        let std = [0.2470, 0.2435, 0.2616]
        func expected(_ value: Double, _ c: Int) -> Double { (value / 255 - mean[c]) / std[c] }
        XCTAssertEqual(Double(x[0]), expected(0, 0), accuracy: 1e-5)
        XCTAssertEqual(Double(x[1]), expected(10, 0), accuracy: 1e-5)
        XCTAssertEqual(Double(x[1024 + 34]), expected(200, 1), accuracy: 1e-5)
        XCTAssertEqual(Double(x[1024 + 35]), expected(20, 1), accuracy: 1e-5)
        XCTAssertEqual(Double(x[2048 + 5]), expected(30, 2), accuracy: 1e-5)
        XCTAssertEqual(Double(x[3071]), expected(255, 2), accuracy: 1e-5)
    }

    /// Five training files concatenated in order (2 + 1 + 3 + 1 + 2 records),
    /// the test file alone; both from the folder itself and from its
    /// cifar-10-batches-bin (where the archive unpacks).
    func testLoadsTheSixFilesInOrder() throws {
        for nested in [false, true] {
            let root = try temporaryDirectory()
            let folder = nested ? root.appendingPathComponent("cifar-10-batches-bin") : root
            let files = try writeSet(in: folder)
            let (train, test) = try CIFAR10Loader.load(directory: root)
            XCTAssertEqual(train.name, "cifar10/train")
            XCTAssertEqual(test.name, "cifar10/test")
            XCTAssertEqual([train.count, test.count], [9, 2])
            XCTAssertEqual([train.channels, train.rows, train.columns], [3, 32, 32])
            XCTAssertEqual(train.imageSize, 3072)
            XCTAssertEqual(train.normalization, .cifar10)
            XCTAssertEqual(train.labels, [0, 1, 1, 2, 3, 4, 3, 4, 5])
            XCTAssertEqual(test.labels, [5, 6])
            // Red planes: 10·file + record, in file order.
            XCTAssertEqual((0..<9).map { train.pixels[$0 * 3072] }, [0, 1, 10, 20, 21, 22, 30, 40, 41])
            XCTAssertEqual((0..<2).map { test.pixels[$0 * 3072 + 1023] }, [50, 51])
            XCTAssertEqual(test.pixels[1024], 100)
            XCTAssertEqual(test.pixels[2048 + 7], 200)
            // The whole training set is the files' records without their label bytes.
            var expected = [UInt8]()
            for bytes in files.prefix(5) {
                for k in 0..<(bytes.count / 3073) { expected += bytes[(k * 3073 + 1)..<((k + 1) * 3073)] }
            }
            XCTAssertEqual(train.pixels, expected)
            // The generic loader reaches the same reader.
            let again = try DatasetLoader.load(kind: .cifar10, directory: root)
            XCTAssertEqual(again.train.pixels, train.pixels)
            XCTAssertEqual(again.test.labels, test.labels)
        }
    }

    func testLengthNotAMultipleOfTheRecordSizeNamesFileAndLength() throws {
        let dir = try temporaryDirectory()
        try writeSet(in: dir)
        let bad = dir.appendingPathComponent("data_batch_3.bin")
        try Data(record(label: 1, r: 0, g: 0, b: 0) + record(label: 2, r: 0, g: 0, b: 0) + [1, 2, 3, 4, 5])
            .write(to: bad)
        assertThrows(
            DatasetError.self,
            containing: [bad.path, "6151 bytes", "3073 bytes each", "2 records and 5 bytes over"]
        ) { try CIFAR10Loader.load(directory: dir) }

        try Data().write(to: bad)
        assertThrows(DatasetError.self, containing: [bad.path, "empty", "3073"]) {
            try CIFAR10Loader.load(directory: dir)
        }
        // A single short record: 0 records and 3072 bytes over.
        assertThrows(DatasetError.self, containing: ["short.bin", "3072 bytes", "0 records and 3072 bytes over"]) {
            try CIFAR10Loader.records(Data(count: 3072), fileName: "short.bin")
        }
    }

    func testLabelAboveNineNamesFileRecordAndByte() throws {
        let dir = try temporaryDirectory()
        try writeSet(in: dir)
        let bad = dir.appendingPathComponent("test_batch.bin")
        try Data(record(label: 9, r: 0, g: 0, b: 0) + record(label: 10, r: 0, g: 0, b: 0)).write(to: bad)
        let error = assertThrows(
            DatasetError.self, containing: [bad.path, "record 1", "byte 3073", "label 10", "0…9"]
        ) { try CIFAR10Loader.load(directory: dir) }
        XCTAssertEqual(error, .badLabel(file: bad.path, record: 1, offset: 3073, label: 10))
        assertThrows(DatasetError.self, containing: ["x.bin", "record 0", "byte 0", "label 255"]) {
            try CIFAR10Loader.records(Data(record(label: 255, r: 0, g: 0, b: 0)), fileName: "x.bin")
        }
    }

    /// Without files, archive or download: every absent file is named, with
    /// both folders searched, the archive's address and MD5, and how to name
    /// another folder; nothing is created.
    func testMissingFilesListWhatIsExpectedWhere() throws {
        let dir = try temporaryDirectory()
        try Data(record(label: 0, r: 0, g: 0, b: 0)).write(to: dir.appendingPathComponent("data_batch_1.bin"))
        let error = assertThrows(
            DatasetError.self,
            containing: [
                "CIFAR-10 files missing in \(dir.path) and in \(dir.path)/cifar-10-batches-bin",
                "data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin, test_batch.bin.",
                "\(dir.path)/cifar-10-binary.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
                "--data DIR", "CIFAR10_DIR=DIR",
            ]
        ) { try CIFAR10Loader.load(directory: dir, download: nil) }
        XCTAssertFalse(
            error?.description.contains("missing in \(dir.path) and in \(dir.path)/cifar-10-batches-bin: data_batch_1")
                ?? true)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["data_batch_1.bin"])
    }

    /// An archive made by tar(1) from test-written files, its MD5 from
    /// md5sum(1): unpacked into cifar-10-batches-bin and loaded, no scratch
    /// folder left. Against the published MD5 it is refused before unpacking.
    func testArchiveIsVerifiedAndUnpacked() throws {
        let source = try temporaryDirectory()
        try writeSet(in: source.appendingPathComponent("cifar-10-batches-bin"))
        let dir = try temporaryDirectory()
        let archive = dir.appendingPathComponent("cifar-10-binary.tar.gz")
        try runProgram("/usr/bin/tar", ["-c", "-z", "-f", archive.path, "-C", source.path, "cifar-10-batches-bin"])
        let md5 = try md5sum(archive)

        assertThrows(
            DatasetError.self,
            containing: [archive.path, "MD5 \(md5)", "expected c32a1d4ab5d03f1284b67883e8d87530", "archive"]
        ) { try CIFAR10Loader.load(directory: dir) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["cifar-10-binary.tar.gz"])

        let (train, test) = try CIFAR10Loader.load(directory: dir, archiveMD5: md5)
        XCTAssertEqual([train.count, test.count], [9, 2])
        XCTAssertEqual(train.labels, [0, 1, 1, 2, 3, 4, 3, 4, 5])
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
            ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"])
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("cifar-10-batches-bin").path)
                .sorted(), CIFAR10Loader.fileNames.sorted())
    }

    /// An archive without the six files is refused, naming what it lacks.
    func testArchiveWithoutTheFilesIsRefused() throws {
        let source = try temporaryDirectory()
        try writeSet(in: source.appendingPathComponent("cifar-10-batches-bin"))
        try FileManager.default.removeItem(at: source.appendingPathComponent("cifar-10-batches-bin/test_batch.bin"))
        let dir = try temporaryDirectory()
        let archive = dir.appendingPathComponent("cifar-10-binary.tar.gz")
        try runProgram("/usr/bin/tar", ["-c", "-z", "-f", archive.path, "-C", source.path, "cifar-10-batches-bin"])
        assertThrows(
            DatasetError.self, containing: ["cannot unpack \(archive.path)", "cifar-10-batches-bin/test_batch.bin"]
        ) {
            try CIFAR10Loader.load(directory: dir, archiveMD5: try md5sum(archive))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["cifar-10-binary.tar.gz"])
    }

    /// The download path through curl with a file:// mirror (no network
    /// needed): the archive is fetched, checked, written and unpacked; with
    /// the published MD5 the fetched bytes are refused, the failure is
    /// reported, and nothing is written.
    func testDownloadIsVerifiedBeforeAnythingIsWritten() throws {
        let source = try temporaryDirectory()
        try writeSet(in: source.appendingPathComponent("cifar-10-batches-bin"))
        let mirror = try temporaryDirectory()
        let archive = mirror.appendingPathComponent("cifar-10-binary.tar.gz")
        try runProgram("/usr/bin/tar", ["-c", "-z", "-f", archive.path, "-C", source.path, "cifar-10-batches-bin"])
        let md5 = try md5sum(archive)
        let download = DatasetDownload(mirrors: [mirror], connectTimeout: 2, totalTimeout: 10)

        let refused = try temporaryDirectory()
        assertThrows(
            DatasetError.self,
            containing: [
                "CIFAR-10 files missing in \(refused.path)", "Getting them failed",
                "\(archive.absoluteString): MD5 \(md5), expected c32a1d4ab5d03f1284b67883e8d87530",
            ]
        ) { try CIFAR10Loader.load(directory: refused, download: download) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: refused.path), [])

        let fetched = try temporaryDirectory()
        let (train, test) = try CIFAR10Loader.load(directory: fetched, download: download, archiveMD5: md5)
        XCTAssertEqual([train.count, test.count], [9, 2])
        XCTAssertEqual(try md5sum(fetched.appendingPathComponent("cifar-10-binary.tar.gz")), md5)
    }

    /// The locator: --data, then CIFAR10_DIR, then the user's data folder.
    func testLocator() {
        let explicit = URL(fileURLWithPath: "/x/y")
        XCTAssertEqual(DatasetLocator.directory(for: .cifar10, explicit: explicit, environment: [:]), explicit)
        XCTAssertEqual(
            DatasetLocator.directory(for: .cifar10, environment: ["CIFAR10_DIR": "/data/c10"]).path, "/data/c10")
        XCTAssertEqual(
            DatasetLocator.directory(for: .cifar10, environment: ["XDG_DATA_HOME": "/xdg"]).path,
            "/xdg/convsvd/cifar10")
        XCTAssertEqual(
            DatasetLocator.directory(for: .cifar10, environment: ["HOME": "/home/u"]).path,
            "/home/u/.local/share/convsvd/cifar10")
        XCTAssertEqual(
            DatasetLocator.directory(for: .mnist, environment: ["HOME": "/home/u"]).path,
            "/home/u/.local/share/convsvd/mnist")
    }
}
