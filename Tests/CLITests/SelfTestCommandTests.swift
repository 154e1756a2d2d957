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
            XCTAssertTrue(table.stdout.contains("106 of 106 outputs pass"), table.stdout)
            XCTAssertFalse(table.stdout.contains(" NO"), table.stdout)

            let json = try CLI.run(["selftest", "--device", device, "--json"])
            XCTAssertEqual(json.status, 0, json.stderr)
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(report["failed"] as? Int, 0)
            XCTAssertEqual(report["passed"] as? Int, 106)
            let rows = try XCTUnwrap(report["rows"] as? [[String: Any]])
            XCTAssertEqual(rows.count, 106)
            XCTAssertTrue(rows.allSatisfy { ($0["passed"] as? Bool) == true })
        }
    }

    /// `selftest --model resnet8`: the plan on the host and on PoCL against
    /// the host's portable path, every row passing (73: the eval logits, 21
    /// layer outputs and the losses of a training pass, 23 gradients, 18
    /// running statistics), in the table and in JSON; an unknown model is a
    /// usage error.
    func testSelftestOfAModel() throws {
        var devices = ["host"]
        if try CLI.run(["devices"]).stdout.contains("opencl:0:0") { devices.append("opencl") }
        for device in devices {
            let table = try CLI.run(["selftest", "--model", "resnet8", "--device", device])
            XCTAssertEqual(table.status, 0, "selftest --model resnet8 --device \(device):\n\(table.output)")
            XCTAssertTrue(table.stdout.contains(": model resnet8 on mnist's input shape against the host reference"))
            XCTAssertTrue(table.stdout.contains("73 of 73 outputs pass"), table.stdout)
            XCTAssertTrue(table.stdout.contains("∂layer2.0.downsample.0.weight"), table.stdout)
            let json = try CLI.run(["selftest", "--model", "resnet8", "--device", device, "--json"])
            XCTAssertEqual(json.status, 0, json.stderr)
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(report["passed"] as? Int, 73)
            XCTAssertEqual(report["failed"] as? Int, 0)
        }
        let cifar = try CLI.run(["selftest", "--model", "resnet8", "--dataset", "cifar10", "--device", "host"])
        XCTAssertEqual(cifar.status, 0, cifar.output)
        XCTAssertTrue(cifar.stdout.contains("batch 3 of (3,32,32), 10 classes"), cifar.stdout)
        let bad = try CLI.run(["selftest", "--model", "resnet9", "--device", "host"])
        XCTAssertEqual(bad.status, 64, bad.output)
        XCTAssertTrue(bad.stderr.contains("resnet9"), bad.stderr)
    }

    func testUnknownDeviceFailsWithTheDeviceExitCode() throws {
        let r = try CLI.run(["selftest", "--device", "tpu"])
        XCTAssertEqual(r.status, 3, r.output)
        XCTAssertTrue(r.stderr.contains("tpu"), r.stderr)
    }
}
