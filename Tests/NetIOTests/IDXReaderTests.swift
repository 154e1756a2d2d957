import Foundation
import NetIO
import TestSupport
import XCTest

/// The IDX reader's rejections, one malformed input each, written to a
/// temporary folder under MNIST's file names; every error must name the file
/// and the problem.
final class IDXReaderTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try TestEnvironment.makeTemporaryDirectory("convsvd-idx") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func file(_ name: String, _ data: Data) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try data.write(to: url)
        return url
    }

    /// Images file content with `count` images of rows×columns, pixel i = i mod 256.
    private func images(count: Int, rows: Int = 28, columns: Int = 28) -> Data {
        idxBytes(dims: [count, rows, columns], payload: (0..<(count * rows * columns)).map { UInt8($0 % 256) })
    }

    private func readImages(_ url: URL) throws -> Int {
        try IDXReader.images(IDXReader.readFile(url), fileName: url.lastPathComponent).count
    }

    private func readLabels(_ url: URL) throws -> [UInt8] {
        try IDXReader.labels(IDXReader.readFile(url), fileName: url.lastPathComponent)
    }

    func testValidRawAndGzipFilesGiveTheSameArray() throws {
        let raw = images(count: 3)
        let a = try IDXReader.images(raw, fileName: "raw")
        let b = try IDXReader.images(gzipped(raw), fileName: "gz")
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(a.rows, 28)
        XCTAssertEqual(a.columns, 28)
        XCTAssertEqual(a.pixels, (0..<(3 * 784)).map { UInt8($0 % 256) })
        XCTAssertEqual(b.pixels, a.pixels)
    }

    func testEmptyFile() throws {
        let url = try file("train-images-idx3-ubyte", Data())
        assertThrows(IDXError.self, containing: ["train-images-idx3-ubyte", "empty"]) { try readImages(url) }
    }

    func testEmptyGzipContent() throws {
        let url = try file("train-images-idx3-ubyte.gz", try gzipped(Data()))
        assertThrows(IDXError.self, containing: ["train-images-idx3-ubyte.gz", "empty"]) { try readImages(url) }
    }

    func testTruncatedHeader() throws {
        // Three dimensions need 16 header bytes; give 10.
        let url = try file("train-images-idx3-ubyte", Data([0, 0, 8, 3, 0, 0, 0, 2, 0, 0]))
        assertThrows(
            IDXError.self, containing: ["train-images-idx3-ubyte", "truncated IDX header", "10 bytes", "needs 16"]
        ) { try readImages(url) }
    }

    func testTruncatedData() throws {
        let full = images(count: 2)
        let url = try file("train-images-idx3-ubyte", full.prefix(full.count - 100))
        assertThrows(
            IDXError.self, containing: ["train-images-idx3-ubyte", "truncated data", "declares 1568 bytes", "has 1468"]
        ) { try readImages(url) }
    }

    func testTrailingGarbage() throws {
        let url = try file("train-labels-idx1-ubyte", idxBytes(dims: [3], payload: [1, 2, 3, 4, 5]))
        assertThrows(IDXError.self, containing: ["train-labels-idx1-ubyte", "2 bytes of trailing garbage"]) {
            try readLabels(url)
        }
    }

    func testWrongMagic() throws {
        var bytes = [UInt8](images(count: 1))
        bytes[0] = 0x12
        bytes[1] = 0x34
        let url = try file("t10k-images-idx3-ubyte", Data(bytes))
        assertThrows(IDXError.self, containing: ["t10k-images-idx3-ubyte", "magic number 0x12340803"]) {
            try readImages(url)
        }
    }

    func testWrongElementType() throws {
        // 0x0D is IDX's float type; 1 image of 28×28 floats.
        let url = try file(
            "t10k-images-idx3-ubyte",
            idxBytes(type: 0x0D, dims: [1, 28, 28], payload: [UInt8](repeating: 0, count: 4 * 784)))
        assertThrows(IDXError.self, containing: ["t10k-images-idx3-ubyte", "element type 0xd", "expected 0x08"]) {
            try readImages(url)
        }
    }

    func testLabelsFileWhereImagesAreExpected() throws {
        let url = try file("train-images-idx3-ubyte", idxBytes(dims: [3], payload: [1, 2, 3]))
        assertThrows(IDXError.self, containing: ["train-images-idx3-ubyte", "1 dimensions, expected 3"]) {
            try readImages(url)
        }
    }

    func testImagesOf28By29() throws {
        let url = try file("train-images-idx3-ubyte", images(count: 2, rows: 28, columns: 29))
        assertThrows(IDXError.self, containing: ["train-images-idx3-ubyte", "28×29", "expected 28×28"]) {
            try readImages(url)
        }
    }

    /// Every image size but 28×28 is refused, whichever dimension is wrong:
    /// rows alone (29×28, 27×28), columns alone (28×27), both, and 784×1 or
    /// 1×784, which hold as many pixels as 28×28 (so the data length alone
    /// would pass them).
    func testEveryOtherImageSizeIsRefused() throws {
        for (rows, columns) in [(29, 28), (27, 28), (28, 27), (29, 29), (784, 1), (1, 784), (0, 28)] {
            let url = try file("train-images-idx3-ubyte", images(count: 2, rows: rows, columns: columns))
            assertThrows(
                IDXError.self, containing: ["train-images-idx3-ubyte", "\(rows)×\(columns)", "expected 28×28"]
            ) {
                try readImages(url)
            }
        }
    }

    func testHugeDeclaredCountIsRejectedWithoutAllocating() throws {
        // 0xFFFFFFFF images of 28×28 declared in a 16-byte file.
        let url = try file("train-images-idx3-ubyte", idxBytes(dims: [0xFFFF_FFFF, 28, 28], payload: []))
        assertThrows(IDXError.self, containing: ["train-images-idx3-ubyte", "truncated data", "has 0"]) {
            try readImages(url)
        }
    }

    func testImageAndLabelCountMismatch() throws {
        let imagesURL = try file("train-images-idx3-ubyte", images(count: 3))
        let labelsURL = try file("train-labels-idx1-ubyte", idxBytes(dims: [2], payload: [1, 2]))
        assertThrows(
            IDXError.self, containing: ["train-images-idx3-ubyte has 3 images", "train-labels-idx1-ubyte has 2 labels"]
        ) {
            try IDXReader.dataset(name: "t", imagesFile: imagesURL, labelsFile: labelsURL)
        }
    }

    func testLabelOutOfRange() throws {
        var labels = [UInt8](repeating: 3, count: 20)
        labels[17] = 10
        let url = try file("t10k-labels-idx1-ubyte.gz", try gzipped(idxBytes(dims: [20], payload: labels)))
        let error = assertThrows(IDXError.self, containing: []) { try readLabels(url) }
        XCTAssertEqual(error?.description, "t10k-labels-idx1-ubyte.gz: label 10 at index 17 is outside 0…9")
    }

    func testGzipWithBadCRC() throws {
        var gz = [UInt8](try gzipped(idxBytes(dims: [4], payload: [1, 2, 3, 4])))
        gz[gz.count - 8] ^= 0xFF  // first byte of the CRC-32 in the trailer
        let url = try file("train-labels-idx1-ubyte.gz", Data(gz))
        assertThrows(IDXError.self, containing: ["train-labels-idx1-ubyte.gz", "gzip", "CRC-32 mismatch"]) {
            try readLabels(url)
        }
    }

    func testGzipWithBadLength() throws {
        var gz = [UInt8](try gzipped(idxBytes(dims: [4], payload: [1, 2, 3, 4])))
        gz[gz.count - 4] ^= 0x01  // ISIZE
        let url = try file("train-labels-idx1-ubyte.gz", Data(gz))
        assertThrows(IDXError.self, containing: ["train-labels-idx1-ubyte.gz", "gzip", "length mismatch"]) {
            try readLabels(url)
        }
    }

    func testGzipWithCorruptDeflateData() throws {
        var gz = [UInt8](try gzipped(images(count: 2)))
        for i in 12..<40 { gz[i] = 0xFF }  // inside the deflate stream, past the 10-byte header
        let url = try file("train-images-idx3-ubyte.gz", Data(gz))
        assertThrows(
            IDXError.self, containing: ["train-images-idx3-ubyte.gz", "gzip decompression failed", "corrupt stream"]
        ) { try readImages(url) }
    }

    func testTruncatedGzip() throws {
        let gz = try gzipped(images(count: 2))
        let url = try file("train-images-idx3-ubyte.gz", gz.prefix(gz.count / 2))
        assertThrows(IDXError.self, containing: ["train-images-idx3-ubyte.gz", "truncated stream"]) {
            try readImages(url)
        }
    }

    func testBytesAfterTheGzipStream() throws {
        let gz = try gzipped(idxBytes(dims: [4], payload: [1, 2, 3, 4])) + Data([0x00, 0x01, 0x02])
        let url = try file("train-labels-idx1-ubyte.gz", gz)
        assertThrows(
            IDXError.self, containing: ["train-labels-idx1-ubyte.gz", "3 bytes of trailing data after the gzip stream"]
        ) { try readLabels(url) }
    }

    func testConcatenatedGzipMembersAreOneFile() throws {
        // gzip(1) itself reads concatenated members as one stream (RFC 1952 §2.2).
        let whole = idxBytes(dims: [6], payload: [1, 2, 3, 4, 5, 6])
        let url = try file("train-labels-idx1-ubyte.gz", try gzipped(whole.prefix(9)) + gzipped(whole.suffix(from: 9)))
        XCTAssertEqual(try readLabels(url), [1, 2, 3, 4, 5, 6])
    }

    func testFolderWhereAFileShouldBe() throws {
        let url = dir.appendingPathComponent("train-images-idx3-ubyte.gz")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        assertThrows(IDXError.self, containing: ["train-images-idx3-ubyte.gz", "is a folder"]) { try readImages(url) }
    }

    func testMissingFile() throws {
        let url = dir.appendingPathComponent("train-images-idx3-ubyte")
        assertThrows(IDXError.self, containing: ["train-images-idx3-ubyte", "cannot be read", "No such file"]) {
            try readImages(url)
        }
    }

    /// An unreadable file. Tests run as root, and root's CAP_DAC_OVERRIDE
    /// ignores permission bits (chmod 000 still reads), so a permission
    /// denial cannot be staged. /proc/self/mem is a regular file that opens
    /// but whose first read fails for every user (EIO: address 0 is not
    /// mapped): the same code path, a read error after a successful open.
    func testUnreadableFile() throws {
        let url = URL(fileURLWithPath: "/proc/self/mem")
        assertThrows(
            IDXError.self, containing: ["mem", "cannot be read", "reading /proc/self/mem", "Input/output error"]
        ) { try readImages(url) }
    }

    func testNonRegularFile() throws {
        let url = URL(fileURLWithPath: "/dev/null")
        assertThrows(IDXError.self, containing: ["null", "not a regular file"]) { try readImages(url) }
    }
}
