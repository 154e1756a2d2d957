import Foundation
import GPUNet
import TestSupport
import XCTest

/// `DeviceSelector` parsing and the `Devices` listing and auto rule.
final class OpenCLDeviceSelectionTests: XCTestCase {
    func testSelectorsParseAndPrint() throws {
        XCTAssertEqual(try DeviceSelector(parsing: "auto"), .auto)
        XCTAssertEqual(try DeviceSelector(parsing: "host"), .host)
        XCTAssertEqual(try DeviceSelector(parsing: "opencl"), .openCLAny)
        XCTAssertEqual(try DeviceSelector(parsing: "OpenCL:2:13"), .openCL(platform: 2, device: 13))
        for text in ["auto", "host", "opencl", "opencl:0:1"] {
            XCTAssertEqual(try DeviceSelector(parsing: text).description, text)
        }
        for bad in ["", "tpu", "opencl:1", "opencl:a:0", "opencl:-1:0", "opencl:0:0:0", "cuda:0:0"] {
            XCTAssertThrowsError(try DeviceSelector(parsing: bad), bad) { error in
                XCTAssertTrue("\(error)".contains("'\(bad)'") && "\(error)".contains("opencl:P:D"), "\(error)")
            }
        }
    }

    /// The rule on made-up listings: a GPU beats the first other OpenCL
    /// device, which beats the host.
    func testAutoRule() {
        func info(_ kind: DeviceInfo.Kind, _ selector: String) -> DeviceInfo {
            DeviceInfo(
                kind: kind, selector: selector, name: selector, vendor: "v", type: "t", computeUnits: 1,
                globalMemoryBytes: 1, languageVersion: "l", driverVersion: "d", platformName: "p")
        }
        let host = info(.host, "host")
        let cpu = info(.openCLOther, "opencl:0:0")
        let cpu2 = info(.openCLOther, "opencl:0:1")
        let gpu = info(.openCLGPU, "opencl:1:0")
        XCTAssertEqual(Devices.autoChoice(from: [host]), host)
        XCTAssertEqual(Devices.autoChoice(from: [host, cpu, cpu2]), cpu)
        XCTAssertEqual(Devices.autoChoice(from: [host, cpu, gpu]), gpu)
    }

    /// The host is listed first; `make` follows the rule on this machine;
    /// a device that does not exist is refused with the list of those that do.
    func testListingAndMaking() throws {
        let listed = Devices.available()
        XCTAssertEqual(listed.first?.kind, .host)
        XCTAssertEqual(listed.filter { $0.kind == .host }.count, 1)
        XCTAssertTrue(try Devices.make(.host) is HostDevice)
        let auto = try Devices.make(.auto)
        XCTAssertEqual(auto.info.selector, Devices.autoChoice(from: listed).selector)
        XCTAssertThrowsError(try Devices.make(.openCL(platform: 9, device: 9))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("opencl:9:9"), text)
            for device in listed where device.kind != .host {
                XCTAssertTrue(text.contains(device.selector), text)
            }
        }
        XCTAssertNil(try Benchmark.measureProgramPreparation(.host))
    }

    /// The OpenCL half: `auto` and `opencl` make an OpenCL device, each
    /// listed selector makes the device it names, and a cold program build
    /// takes longer than a cached one. Skipped without an OpenCL device
    /// (failed under CONVSVD_REQUIRE_OPENCL=1).
    func testMakingOpenCLDevices() throws {
        let infos = try openCLTestDeviceInfos()
        XCTAssertTrue(try Devices.make(.auto) is OpenCLDevice, "auto must prefer an OpenCL device to the host")
        XCTAssertTrue(try Devices.make(.openCLAny) is OpenCLDevice)
        for info in infos {
            let device = try Devices.make(try DeviceSelector(parsing: info.selector))
            XCTAssertTrue(device is OpenCLDevice, info.selector)
            XCTAssertEqual(device.info.selector, info.selector)
        }
        let preparation = try XCTUnwrap(try Benchmark.measureProgramPreparation(.openCLAny))
        XCTAssertGreaterThan(preparation.coldSeconds, preparation.warmSeconds)
    }

    /// With no OpenCL device the OpenCL tests are skipped with the reason, and
    /// fail when CONVSVD_REQUIRE_OPENCL=1 (child test processes whose ICD
    /// loader sees an empty vendor folder).
    func testOpenCLTestsSkipOrFailWithoutADevice() throws {
        let tests = [
            "GPUNetTests.OpenCLDeviceSelectionTests/testMakingOpenCLDevices",
            "GPUNetTests.TrainingTests/testTrainingReleasesEveryOpenCLObject",
            "GPUNetTests.TrainingTests/testOpenCLStaysWithinToleranceOfHostOverTenSteps",
            "GPUNetTests.TinyConvNetTests/testOpenCLMatchesHostOnARealBatch",
        ]
        let skipped = try runWithoutOpenCL(tests, environment: ["CONVSVD_REQUIRE_OPENCL": "0"])
        XCTAssertEqual(skipped.status, 0, skipped.output)
        XCTAssertTrue(skipped.output.contains("Executed 4 tests, with 4 tests skipped and 0 failures"), skipped.output)
        XCTAssertTrue(skipped.output.contains("no OpenCL device on this machine"), skipped.output)
        let required = try runWithoutOpenCL(tests, environment: ["CONVSVD_REQUIRE_OPENCL": "1"])
        XCTAssertNotEqual(required.status, 0, required.output)
        XCTAssertTrue(required.output.contains("Executed 4 tests, with 4 failures"), required.output)
        XCTAssertTrue(
            required.output.contains("CONVSVD_REQUIRE_OPENCL=1 but no OpenCL device was found"), required.output)
    }

    /// Runs `tests` in a child test process whose OpenCL loader finds no platform.
    private func runWithoutOpenCL(_ tests: [String], environment extra: [String: String]) throws -> (
        status: Int32, output: String
    ) {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("convsvd-no-icd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = [tests.joined(separator: ",")]
        var environment = ProcessInfo.processInfo.environment
        environment["OCL_ICD_VENDORS"] = empty.path
        environment.merge(extra) { $1 }
        child.environment = environment
        let pipe = Pipe()
        child.standardOutput = pipe
        child.standardError = pipe
        try child.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        return (child.terminationStatus, output)
    }

    /// With no OpenCL platform (the ICD loader pointed at an empty vendor
    /// folder; the loader reads OCL_ICD_VENDORS once per process, so this
    /// runs in a child test process): the listing is just the host, `auto`
    /// gives the host, and `opencl` says that no platform was found.
    func testWithoutAnyOpenCLPlatform() throws {
        let environment = ProcessInfo.processInfo.environment
        if environment["CONVSVD_NO_OPENCL_CHILD"] == "1" {
            let listed = Devices.available()
            XCTAssertEqual(listed.map(\.kind), [.host])
            XCTAssertTrue(try Devices.make(.auto) is HostDevice)
            XCTAssertThrowsError(try Devices.make(.openCLAny)) { error in
                XCTAssertTrue("\(error)".contains("no OpenCL platform found"), "\(error)")
                XCTAssertTrue("\(error)".contains("OCL_ICD_VENDORS"), "\(error)")
            }
            XCTAssertThrowsError(try Devices.make(.openCL(platform: 0, device: 0))) { error in
                XCTAssertTrue("\(error)".contains("no OpenCL platform found"), "\(error)")
            }
            return
        }
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("convsvd-no-icd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["GPUNetTests.OpenCLDeviceSelectionTests/testWithoutAnyOpenCLPlatform"]
        var childEnvironment = environment
        childEnvironment["CONVSVD_NO_OPENCL_CHILD"] = "1"
        childEnvironment["OCL_ICD_VENDORS"] = empty.path
        child.environment = childEnvironment
        let pipe = Pipe()
        child.standardOutput = pipe
        child.standardError = pipe
        try child.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        XCTAssertEqual(child.terminationStatus, 0, output)
        XCTAssertTrue(output.contains("Executed 1 test, with 0 failures"), output)
    }
}
