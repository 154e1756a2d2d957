import GPUNet
import XCTest

/// The devices every parity test runs on: the host with its AVX2 kernels,
/// the host on its portable im2col + OpenBLAS path (what a CPU without AVX2
/// runs), then each OpenCL device. With `CONVSVD_REQUIRE_OPENCL=1` (as
/// `.ci/run` sets) a machine without an OpenCL device fails the test instead
/// of testing the host alone.
public func testDevices(file: StaticString = #filePath, line: UInt = #line) throws -> [any Device] {
    [HostDevice(), HostDevice(directKernels: false)] + (try openCLTestDevices(file: file, line: line))
}

/// Every OpenCL device of this machine (PoCL in CI).
public func openCLTestDevices(file: StaticString = #filePath, line: UInt = #line) throws -> [any Device] {
    let infos = Devices.available().filter { $0.kind != .host }
    if infos.isEmpty && ProcessInfo.processInfo.environment["CONVSVD_REQUIRE_OPENCL"] == "1" {
        XCTFail("CONVSVD_REQUIRE_OPENCL=1 but no OpenCL device was found", file: file, line: line)
    }
    return try infos.map { try Devices.make(try DeviceSelector(parsing: $0.selector)) }
}
