import Foundation
import XCTest

/// `convsvd selftest` on the host and on PoCL: exit 0, a table whose every
/// row passes, and JSON with the same verdicts.
final class SelfTestCommandTests: XCTestCase {
    func testSelftestPassesOnTheHostAndOpenCL() throws {
        var devices = ["host"]
        if try CLI.run(["devices"]).stdout.contains("opencl:0:0") {
            devices.append("opencl")
        } else if ProcessInfo.processInfo.environment["CONVSVD_REQUIRE_OPENCL"] == "1" {
            XCTFail("CONVSVD_REQUIRE_OPENCL=1 but `convsvd devices` lists no OpenCL device")
        }
        for device in devices {
            let table = try CLI.run(["selftest", "--device", device])
            XCTAssertEqual(table.status, 0, "selftest --device \(device):\n\(table.output)")
            XCTAssertTrue(table.stdout.contains("94 of 94 outputs pass"), table.stdout)
            XCTAssertFalse(table.stdout.contains(" NO"), table.stdout)

            let json = try CLI.run(["selftest", "--device", device, "--json"])
            XCTAssertEqual(json.status, 0, json.stderr)
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(report["failed"] as? Int, 0)
            XCTAssertEqual(report["passed"] as? Int, 94)
            let rows = try XCTUnwrap(report["rows"] as? [[String: Any]])
            XCTAssertEqual(rows.count, 94)
            XCTAssertTrue(rows.allSatisfy { ($0["passed"] as? Bool) == true })
        }
    }

    func testUnknownDeviceFailsWithTheDeviceExitCode() throws {
        let r = try CLI.run(["selftest", "--device", "tpu"])
        XCTAssertEqual(r.status, 3, r.output)
        XCTAssertTrue(r.stderr.contains("tpu"), r.stderr)
    }
}
