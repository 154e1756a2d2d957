import Foundation
import GPUNet
import Kernels
import TestSupport
import XCTest

/// The OpenCL runtime around the kernels: error names, build logs, the
/// program cache, object lifetimes, allocation limits, device listing.
final class OpenCLRuntimeTests: XCTestCase {
    /// Names come from the OpenCL 1.2 specification's status table, not from
    /// the code under test; an unknown code says so.
    func testStatusCodesHaveTheirSpecificationNames() {
        let expected: [Int32: String] = [
            0: "CL_SUCCESS", -1: "CL_DEVICE_NOT_FOUND", -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE",
            -5: "CL_OUT_OF_RESOURCES", -11: "CL_BUILD_PROGRAM_FAILURE", -30: "CL_INVALID_VALUE",
            -46: "CL_INVALID_KERNEL_NAME", -54: "CL_INVALID_WORK_GROUP_SIZE", -61: "CL_INVALID_BUFFER_SIZE",
            -63: "CL_INVALID_GLOBAL_WORK_SIZE", -68: "CL_INVALID_DEVICE_PARTITION_COUNT",
            -1001: "CL_PLATFORM_NOT_FOUND_KHR",
        ]
        for (code, name) in expected { XCTAssertEqual(OpenCLError.name(of: code), name, "status \(code)") }
        XCTAssertEqual(OpenCLError.name(of: -9999), "unknown OpenCL error")
        let error = OpenCLError.call("clEnqueueNDRangeKernel(relu_forward)", status: -54)
        XCTAssertEqual("\(error)", "clEnqueueNDRangeKernel(relu_forward) failed: CL_INVALID_WORK_GROUP_SIZE (-54)")
    }

    /// A real failing call: asking a built program for a kernel it lacks
    /// names the call, the kernel and the status.
    func testFailingCallNamesCallAndStatus() throws {
        let device = try OpenCLTestDevice.first()
        let program = try device.buildProgram(source: "__kernel void only(__global float* x) { x[0] = 1.0f; }")
        XCTAssertEqual(try program.kernelNames(), ["only"])
        XCTAssertNoThrow(try program.validateKernel(named: "only"))
        XCTAssertThrowsError(try program.validateKernel(named: "missing")) { error in
            XCTAssertEqual(error as? OpenCLError, .call("clCreateKernel(missing)", status: -46))
            XCTAssertTrue("\(error)".contains("CL_INVALID_KERNEL_NAME"), "\(error)")
        }
    }

    /// Source that does not compile throws buildFailed whose text holds the
    /// compiler's log (which names the undeclared identifier).
    func testBuildFailureCarriesTheBuildLog() throws {
        let device = try OpenCLTestDevice.first()
        let source = "__kernel void broken(__global float* x) { x[0] = undeclared_identifier_xyz; }"
        XCTAssertThrowsError(try device.buildProgram(source: source)) { error in
            guard case .buildFailed(_, let status, let log)? = error as? OpenCLError else {
                return XCTFail("expected buildFailed, got \(error)")
            }
            XCTAssertEqual(status, -11)
            XCTAssertTrue(log.contains("undeclared_identifier_xyz"), "build log: \(log)")
            XCTAssertTrue(
                "\(error)".contains("undeclared_identifier_xyz") && "\(error)".contains("CL_BUILD_PROGRAM_FAILURE"))
        }
    }

    /// Every kernel of Sources/Kernels compiles: one program with every
    /// `KERNEL_<name>` defined holds exactly the guarded kernels (devices
    /// build only what they launch, so this is where an unused one is checked).
    func testEveryGuardedKernelBuilds() throws {
        let device = try OpenCLTestDevice.first()
        let names = OpenCLDevice.kernelNames
        XCTAssertEqual(names.count, 114, "\(names)")
        XCTAssertEqual(OpenCLDevice.kernelNames(inFolder: "gpu").count, 20)
        XCTAssertTrue(names.contains("relu_forward") && names.contains("conv2d_pooled_data3x3_16"), "\(names)")
        let options = OpenCLDevice.buildOptions + names.map { " -D KERNEL_" + $0 }.joined()
        let program = try device.buildProgram(source: KernelSource.all, options: options)
        XCTAssertEqual(try program.kernelNames(), names)
    }

    /// A kernel is built on first use, once, and an unknown name is refused
    /// before anything is built.
    func testKernelsAreBuiltOnFirstUseOnly() throws {
        let info = try OpenCLTestDevice.first().info
        guard case .openCL(let platform, let index) = try DeviceSelector(parsing: info.selector) else {
            return XCTFail("selector \(info.selector)")
        }
        let device = try OpenCLDevice(platform: platform, device: index, cache: OpenCLTestDevice.cache)
        XCTAssertTrue(device.kernelPreparations.isEmpty)
        let input = try device.makeBuffer([-1, 2, -3, 4] as [Float])
        let output = try device.makeBuffer(count: 4, kind: .float32)
        try device.reluForward(count: 4, input: input, output: output)
        try device.reluForward(count: 4, input: output, output: input)
        XCTAssertEqual(try device.floats(input), [0, 2, 0, 4])
        XCTAssertEqual(Array(device.kernelPreparations.keys), ["relu_forward"])
        XCTAssertThrowsError(try device.prepareKernel("no_such_kernel")) { error in
            XCTAssertTrue("\(error)".contains("no_such_kernel"), "\(error)")
        }
        XCTAssertEqual(device.kernelPreparations.count, 1)
    }

    /// First construction compiles and writes the entry; the second loads it
    /// (a hit, and faster); a corrupted entry is detected, rebuilt from
    /// source, and the rebuilt device computes correctly; then it hits again.
    /// A fresh program tag keeps PoCL's own cache from making the first build warm.
    func testProgramCacheHitsAndRecoversFromCorruption() throws {
        let info = try OpenCLTestDevice.first().info
        guard case .openCL(let platform, let index) = try DeviceSelector(parsing: info.selector) else {
            return XCTFail("selector \(info.selector)")
        }
        let folder = try TestEnvironment.makeTemporaryDirectory("convsvd-kernel-cache")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = OpenCLProgramCache(directory: folder)
        let tag = UUID().uuidString
        func make() throws -> OpenCLDevice {
            try OpenCLDevice(platform: platform, device: index, cache: cache, programTag: tag)
        }
        func prepared() throws -> OpenCLProgram.Preparation {
            try make().prepareKernel("relu_forward")
        }

        let cold = try prepared()
        XCTAssertFalse(cold.cacheHit, "\(cold)")
        let file = try XCTUnwrap(cold.cacheFile)
        XCTAssertTrue(FileManager.default.fileExists(atPath: file))
        XCTAssertTrue(file.hasPrefix(folder.path), file)
        let warm = try prepared()
        XCTAssertTrue(warm.cacheHit, "\(warm)")
        XCTAssertEqual(warm.cacheFile, file)
        XCTAssertLessThan(warm.seconds, cold.seconds, "warm \(warm) vs cold \(cold)")

        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: file))
        let rebuilt = try make()
        let recovered = try rebuilt.prepareKernel("relu_forward")
        XCTAssertFalse(recovered.cacheHit)
        XCTAssertTrue(recovered.notes.contains { $0.contains("corrupt") }, "\(recovered)")
        let input: [Float] = [-1, 2, -3, 4]
        let output = try rebuilt.makeBuffer(count: 4, kind: .float32)
        try rebuilt.reluForward(count: 4, input: try rebuilt.makeBuffer(input), output: output)
        XCTAssertEqual(try rebuilt.floats(output), [0, 2, 0, 4])
        XCTAssertTrue(try prepared().cacheHit)
    }

    /// The cache folder: CONVSVD_KERNEL_CACHE, else $XDG_CACHE_HOME/convsvd/kernels.
    func testCacheFolderFollowsTheEnvironment() {
        let saved = (
            ProcessInfo.processInfo.environment["CONVSVD_KERNEL_CACHE"],
            ProcessInfo.processInfo.environment["XDG_CACHE_HOME"]
        )
        defer {
            if let value = saved.0 {
                setenv("CONVSVD_KERNEL_CACHE", value, 1)
            } else {
                unsetenv("CONVSVD_KERNEL_CACHE")
            }
            if let value = saved.1 { setenv("XDG_CACHE_HOME", value, 1) } else { unsetenv("XDG_CACHE_HOME") }
        }
        setenv("CONVSVD_KERNEL_CACHE", "/tmp/convsvd-override", 1)
        XCTAssertEqual(OpenCLProgramCache.defaultDirectory.path, "/tmp/convsvd-override")
        unsetenv("CONVSVD_KERNEL_CACHE")
        setenv("XDG_CACHE_HOME", "/tmp/xdg-cache", 1)
        XCTAssertEqual(OpenCLProgramCache.defaultDirectory.path, "/tmp/xdg-cache/convsvd/kernels")
    }

    /// Every context, queue, program, kernel and buffer a device makes is
    /// released with it: the counts return to where they were.
    func testLiveObjectsReturnToBaselineAfterRelease() throws {
        let info = try OpenCLTestDevice.first().info
        guard case .openCL(let platform, let index) = try DeviceSelector(parsing: info.selector) else {
            return XCTFail("selector \(info.selector)")
        }
        let baseline = OpenCLDevice.liveObjects
        do {
            let device = try OpenCLDevice(platform: platform, device: index, cache: OpenCLTestDevice.cache)
            let s = ConvShape(batch: 2, inChannels: 3, outChannels: 5, height: 6, width: 7)
            let input = try device.makeBuffer(randomFloats(s.inputCount, seed: 1))
            let weight = try device.makeBuffer(randomFloats(s.weightCount, seed: 2))
            let output = try device.makeBuffer(count: s.outputCount, kind: .float32)
            try device.conv2dForward(s, input: input, weight: weight, output: output)
            try device.conv2dBackwardData(s, gradOutput: output, weight: weight, gradInput: input)
            try device.finish()
            let during = OpenCLDevice.liveObjects
            XCTAssertEqual(during.contexts, baseline.contexts + 1)
            XCTAssertEqual(during.queues, baseline.queues + 1)
            // One program per kernel, built on first launch.
            XCTAssertEqual(during.programs, baseline.programs + device.kernelPreparations.count)
            XCTAssertEqual(during.kernels, baseline.kernels + device.kernelPreparations.count)
            XCTAssertGreaterThanOrEqual(device.kernelPreparations.count, 4)
            XCTAssertGreaterThanOrEqual(during.buffers, baseline.buffers + 3)
        }
        XCTAssertEqual(OpenCLDevice.liveObjects, baseline)
    }

    /// An allocation beyond CL_DEVICE_MAX_MEM_ALLOC_SIZE is refused before
    /// the driver is asked, with the size in the message.
    func testAbsurdAllocationIsRefusedNamingTheSize() throws {
        let device = try OpenCLTestDevice.first()
        let count = 1 << 40
        XCTAssertThrowsError(try device.makeBuffer(count: count, kind: .float32)) { error in
            guard case .allocationTooLarge(let requested, let limit, _, _)? = error as? OpenCLError else {
                return XCTFail("expected allocationTooLarge, got \(error)")
            }
            XCTAssertEqual(requested, 4 << 40)
            XCTAssertLessThan(limit, UInt64(4 << 40))
            XCTAssertTrue("\(error)".contains("\(4 << 40) bytes"), "\(error)")
        }
        XCTAssertThrowsError(try device.makeBuffer(count: -1, kind: .int32))
    }

    /// Operations check their buffers: too small, wrong kind, wrong device.
    func testMisusedBuffersThrowDescriptiveErrors() throws {
        let device = try OpenCLTestDevice.first()
        let small = try device.makeBuffer(count: 5, kind: .float32)
        let big = try device.makeBuffer(count: 10, kind: .float32)
        XCTAssertThrowsError(try device.reluForward(count: 10, input: small, output: big)) { error in
            XCTAssertTrue(
                "\(error)".contains("reluForward") && "\(error)".contains("input") && "\(error)".contains("5"),
                "\(error)")
        }
        let ints = try device.makeBuffer(count: 10, kind: .int32)
        XCTAssertThrowsError(try device.reluForward(count: 10, input: ints, output: big)) { error in
            XCTAssertTrue("\(error)".contains("int32"), "\(error)")
        }
        let host = try HostDevice().makeBuffer(count: 10, kind: .float32)
        XCTAssertThrowsError(try device.reluForward(count: 10, input: host, output: big)) { error in
            XCTAssertTrue("\(error)".contains("not a buffer of"), "\(error)")
        }
        XCTAssertThrowsError(try device.upload([Float](repeating: 0, count: 4), to: big))
    }

    /// Every listed OpenCL device has every field filled, and its selector
    /// makes a device reporting the same information.
    func testDeviceInformationIsComplete() throws {
        for device in try OpenCLTestDevice.all() {
            let info = device.info
            XCTAssertTrue(
                info.selector.range(of: #"^opencl:\d+:\d+$"#, options: .regularExpression) != nil, info.selector)
            XCTAssertFalse(info.name.isEmpty)
            XCTAssertFalse(info.vendor.isEmpty)
            XCTAssertFalse(info.platformName.isEmpty)
            XCTAssertFalse(info.driverVersion.isEmpty)
            XCTAssertTrue(["GPU", "CPU", "ACCELERATOR"].contains { info.type.contains($0) }, info.type)
            XCTAssertEqual(info.kind, info.type.contains("GPU") ? .openCLGPU : .openCLOther)
            XCTAssertGreaterThan(info.computeUnits, 0)
            XCTAssertGreaterThan(info.globalMemoryBytes, 1 << 20)
            XCTAssertTrue(info.languageVersion.hasPrefix("OpenCL C"), info.languageVersion)
            // The listing shows the family `auto` would pick; the device, the one it runs.
            var listed = info
            listed.kernelFamily = KernelFamily.automatic(forDeviceType: info.type)
            XCTAssertTrue(Devices.available().contains(listed))
        }
    }
}
