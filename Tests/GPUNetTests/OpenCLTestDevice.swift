import Foundation
import GPUNet
import TestSupport
import XCTest

/// The OpenCL devices the OpenCL tests run on (PoCL here and in CI), each
/// once per kernel family (`openCLTestFamilies()`), made once per test
/// process with a kernel cache in the temporary folder.
///
/// Skips (XCTSkip) only when this machine genuinely has no OpenCL device;
/// with `CONVSVD_REQUIRE_OPENCL=1` (scripts/test, CI) that is a failure
/// instead (``openCLTestDeviceInfos()``).
enum OpenCLTestDevice {
    static let cache = OpenCLProgramCache(
        directory: FileManager.default.temporaryDirectory.appendingPathComponent("convsvd-test-kernel-cache"))

    nonisolated(unsafe) private static var made: [OpenCLDevice]?

    static func all(file: StaticString = #filePath, line: UInt = #line) throws -> [OpenCLDevice] {
        if let made { return made }
        let infos = try openCLTestDeviceInfos()
        let devices = try infos.flatMap { info -> [OpenCLDevice] in
            guard case .openCL(let platform, let device) = try DeviceSelector(parsing: info.selector) else {
                throw OpenCLError.invalidArgument("unexpected selector \(info.selector)")
            }
            return try openCLTestFamilies().map {
                try OpenCLDevice(platform: platform, device: device, cache: cache, kernels: .family($0))
            }
        }
        made = devices
        return devices
    }

    /// The first OpenCL device (PoCL in CI) with the first family (cpu
    /// unless `CONVSVD_KERNELS` says gpu).
    static func first(file: StaticString = #filePath, line: UInt = #line) throws -> OpenCLDevice {
        try all(file: file, line: line)[0]
    }
}
