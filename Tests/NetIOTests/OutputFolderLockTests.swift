import Foundation
import NetIO
import TestSupport
import XCTest

/// flock locks belong to open files, so a second open of the lock file in
/// this same process conflicts exactly as another process would.
final class OutputFolderLockTests: XCTestCase {
    func testASecondLockIsRefusedNamingTheHolderUntilTheFirstIsReleased() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-lock")
        defer { try? FileManager.default.removeItem(at: dir) }
        var first: OutputFolderLock? = try OutputFolderLock(directory: dir, command: "convsvd train --out x")
        XCTAssertEqual(
            try String(contentsOf: dir.appendingPathComponent(".convsvd.lock"), encoding: .utf8),
            "pid \(getpid()): convsvd train --out x\n")
        XCTAssertThrowsError(try OutputFolderLock(directory: dir, command: "second")) { error in
            XCTAssertEqual(
                error as? OutputFolderLockError,
                .held(directory: dir.path, holder: "pid \(getpid()): convsvd train --out x"))
            XCTAssertTrue(
                "\(error)".contains("the output folder \(dir.path) is in use by another process (pid \(getpid())"),
                "\(error)")
        }
        XCTAssertNotNil(first)
        first = nil
        let second = try OutputFolderLock(directory: dir, command: "second")
        XCTAssertEqual(second.directory, dir)
        XCTAssertEqual(
            try String(contentsOf: dir.appendingPathComponent(".convsvd.lock"), encoding: .utf8),
            "pid \(getpid()): second\n", "the new holder replaces the old text")
    }

    func testAFolderThatDoesNotExistIsASystemError() {
        XCTAssertThrowsError(try OutputFolderLock(directory: URL(fileURLWithPath: "/nonexistent/convsvd-lock"))) {
            error in
            guard case .system(let path, _, _)? = error as? OutputFolderLockError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "/nonexistent/convsvd-lock/.convsvd.lock")
        }
    }
}
