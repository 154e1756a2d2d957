import Foundation
import NetIO
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class AtomicWriteTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try TestEnvironment.makeTemporaryDirectory("convsvd-atomic") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func entries() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() }

    func testWritesAndReplaces() throws {
        let url = dir.appendingPathComponent("a.bin")
        try writeAtomically(Data([1, 2, 3]), to: url)
        XCTAssertEqual(try Data(contentsOf: url), Data([1, 2, 3]))
        try writeAtomically(Data([9]), to: url)
        XCTAssertEqual(try Data(contentsOf: url), Data([9]))
        XCTAssertEqual(try entries(), ["a.bin"], "no temporary file is left behind")
        let mode = try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? Int
        XCTAssertEqual((mode ?? 0) & 0o444, 0o444, "readable by everyone like an ordinary data file")
    }

    func testParentIsAFile() throws {
        let parent = dir.appendingPathComponent("plain-file")
        try Data([1]).write(to: parent)
        let url = parent.appendingPathComponent("checkpoint.safetensors")
        assertThrows(FileIOError.self, containing: [url.path, "creating a temporary file", "Not a directory"]) {
            try writeAtomically(Data([1, 2]), to: url)
        }
        XCTAssertEqual(try Data(contentsOf: parent), Data([1]))
    }

    func testTargetIsAFolderLeavesItAndNoTemporaryFile() throws {
        let url = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        try Data([5]).write(to: url.appendingPathComponent("inside"))
        assertThrows(FileIOError.self, containing: [url.path, "is a folder"]) {
            try writeAtomically(Data([1]), to: url)
        }
        XCTAssertEqual(try Data(contentsOf: url.appendingPathComponent("inside")), Data([5]))
        XCTAssertEqual(try entries(), ["out"])
    }

    /// A write that fails half-way (the file-size limit RLIMIT_FSIZE makes
    /// write(2) fail with EFBIG once 4 KiB are written, even for root) must
    /// leave the old file byte for byte and no temporary file.
    func testFailureMidWriteKeepsTheOldFile() throws {
        let url = dir.appendingPathComponent("checkpoint.safetensors")
        let old = Data((0..<100).map { UInt8($0) })
        try writeAtomically(old, to: url)

        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved), 0)
        let previousHandler = signal(SIGXFSZ, SIG_IGN)
        var limited = saved
        limited.rlim_cur = 4096
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limited), 0)
        var thrown: Error?
        do { try writeAtomically(Data(repeating: 7, count: 1 << 20), to: url) } catch { thrown = error }
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved), 0)
        signal(SIGXFSZ, previousHandler)

        let text = String(describing: thrown ?? FileIOError.system(path: "", operation: "nothing thrown", message: ""))
        XCTAssertTrue(text.contains(url.path) && text.contains("writing") && text.contains("File too large"), text)
        XCTAssertEqual(try Data(contentsOf: url), old)
        XCTAssertEqual(try entries(), ["checkpoint.safetensors"])
    }
}
