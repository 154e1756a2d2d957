import Foundation
import TestSupport
import XCTest

/// `scripts/test`, the README's test command, runs the suite with OpenCL
/// required (as `.ci/run` does), unless the caller says otherwise.
final class TestScriptTests: XCTestCase {
    /// Runs scripts/test with stand-ins for `swift` (prints the variable and
    /// an XCTest summary) and `dpkg-query` (every package installed, so
    /// setup installs nothing) first on PATH.
    private func runScript(environment extra: [String: String]) throws -> String {
        let bin = try TestEnvironment.makeTemporaryDirectory("convsvd-fake-bin")
        defer { try? FileManager.default.removeItem(at: bin) }
        let fakes = [
            "swift":
                "#!/bin/sh\n[ \"$1\" = test ] && echo \"CONVSVD_REQUIRE_OPENCL=[${CONVSVD_REQUIRE_OPENCL-unset}]\" "
                + "&& echo 'Executed 1 test, with 0 failures (0 unexpected) in 0.0 seconds'\nexit 0\n",
            "dpkg-query": "#!/bin/sh\nprintf 'install ok installed'\n",
        ]
        for (name, text) in fakes {
            let url = bin.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [TestEnvironment.packageRoot.appendingPathComponent("scripts/test").path]
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = bin.path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["POCL_CACHE_DIR"] = bin.appendingPathComponent("pocl").path
        environment.removeValue(forKey: "CONVSVD_REQUIRE_OPENCL")
        environment.merge(extra) { $1 }
        p.environment = environment
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, output)
        return output
    }

    func testScriptRequiresOpenCLByDefault() throws {
        let output = try runScript(environment: [:])
        XCTAssertTrue(output.contains("CONVSVD_REQUIRE_OPENCL=[1]"), output)
        XCTAssertTrue(output.contains("tests: 1 passed, 0 failed, 0 skipped"), output)
    }

    func testCallerCanLetOpenCLTestsSkip() throws {
        XCTAssertTrue(
            try runScript(environment: ["CONVSVD_REQUIRE_OPENCL": "0"]).contains("CONVSVD_REQUIRE_OPENCL=[0]"))
    }
}
