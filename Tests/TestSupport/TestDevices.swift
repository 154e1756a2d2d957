import Foundation
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

/// The kernel families every OpenCL test runs: both, or only the one that
/// `CONVSVD_KERNELS` names (`cpu` or `gpu`), as `scripts/oclgrind` sets it.
public func openCLTestFamilies() -> [KernelFamily] {
    let text = ProcessInfo.processInfo.environment[KernelFamily.environmentVariable]?.lowercased() ?? ""
    return KernelFamily(rawValue: text).map { [$0] } ?? KernelFamily.allCases
}

/// Every OpenCL device of this machine (PoCL in CI), once per kernel family
/// (``openCLTestFamilies()``).
public func openCLTestDevices(file: StaticString = #filePath, line: UInt = #line) throws -> [any Device] {
    let infos = Devices.available().filter { $0.kind != .host }
    if infos.isEmpty && ProcessInfo.processInfo.environment["CONVSVD_REQUIRE_OPENCL"] == "1" {
        XCTFail("CONVSVD_REQUIRE_OPENCL=1 but no OpenCL device was found", file: file, line: line)
    }
    return try infos.flatMap { info in
        try openCLTestFamilies().map { try Devices.make(try DeviceSelector(parsing: info.selector), kernels: .family($0)) }
    }
}
