import Foundation
import NetIO
import TestSupport
import XCTest

/// Bytes of an IDX file built by hand: magic 00 00 `type` `dims.count`,
/// big-endian UInt32 sizes, then `payload` (independent of the reader).
func idxBytes(type: UInt8 = 0x08, dims: [Int], payload: [UInt8]) -> Data {
    var out: [UInt8] = [0, 0, type, UInt8(dims.count)]
    for d in dims { out += [UInt8(d >> 24 & 0xff), UInt8(d >> 16 & 0xff), UInt8(d >> 8 & 0xff), UInt8(d & 0xff)] }
    return Data(out + payload)
}

/// `data` compressed by the system's gzip(1), an independent compressor.
func gzipped(_ data: Data) throws -> Data {
    let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-gzip")
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("x")
    try data.write(to: file)
    try runProgram("/usr/bin/gzip", ["-n", "-f", file.path])
    return try Data(contentsOf: dir.appendingPathComponent("x.gz"))
}

/// Runs a program, failing the test setup when it exits non-zero; returns stdout.
@discardableResult
func runProgram(_ program: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw NSError(
            domain: "run", code: Int(process.terminationStatus),
            userInfo: [NSLocalizedDescriptionKey: "\(program) \(arguments) failed"])
    }
    return text
}

/// Asserts that `body` throws an error of type `E` whose description
/// contains every one of `fragments`; returns the error.
@discardableResult
func assertThrows<E: Error, T>(
    _ errorType: E.Type, containing fragments: [String], file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> T
) -> E? {
    do {
        _ = try body()
        XCTFail("expected \(E.self), nothing was thrown", file: file, line: line)
    } catch let error as E {
        let text = String(describing: error)
        for fragment in fragments where !text.contains(fragment) {
            XCTFail("error \"\(text)\" does not mention \"\(fragment)\"", file: file, line: line)
        }
        return error
    } catch {
        XCTFail("expected \(E.self), got \(type(of: error)): \(error)", file: file, line: line)
    }
    return nil
}
