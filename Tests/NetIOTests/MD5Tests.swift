import Foundation
import NetIO
import TestSupport
import XCTest

final class MD5Tests: XCTestCase {
    /// RFC 1321 appendix A.5 test suite.
    func testRFC1321Vectors() {
        let vectors = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            (String(repeating: "1234567890", count: 8), "57edf4a22be3c955ac49da2e2107b67a"),
        ]
        for (text, digest) in vectors { XCTAssertEqual(MD5.hex(Array(text.utf8)), digest, text) }
    }

    /// Lengths around the padding boundaries (55, 56, 63, 64, 65 …), fed in
    /// uneven pieces, against coreutils' md5sum.
    func testAgainstMd5sumAcrossBlockBoundaries() throws {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-md5")
        defer { try? FileManager.default.removeItem(at: dir) }
        var generator = SeededRandom(seed: 7)
        for length in [1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 4099] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let url = dir.appendingPathComponent("m\(length)")
            try Data(bytes).write(to: url)
            let expected = String(try runProgram("/usr/bin/md5sum", [url.path]).prefix(32))
            var md5 = MD5()
            var i = 0
            var piece = 1
            while i < length {
                let j = min(length, i + piece)
                md5.update(bytes[i..<j])
                i = j
                piece = piece * 3 % 97 + 1
            }
            XCTAssertEqual(md5.hexDigest(), expected, "length \(length)")
            XCTAssertEqual(MD5.hex(Data(bytes)), expected, "length \(length), one piece")
        }
    }
}
