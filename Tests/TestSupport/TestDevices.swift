import Foundation
import GPUNet
import XCTest

/// The devices every parity test runs on: the host with its AVX2 kernels
/// (AVX-512 where the CPU has it, and then again with AVX2 only), the host
/// on its portable im2col + OpenBLAS path (what a CPU without AVX2
/// runs), then each OpenCL device. On a machine without an OpenCL device the
/// host half still runs (it is a real test of its own); with
/// `CONVSVD_REQUIRE_OPENCL=1` (as `scripts/test` and `.ci/run` set) the test
/// fails instead.
public func testDevices(file: StaticString = #filePath, line: UInt = #line) throws -> [any Device] {
    let openCL: [any Device]
    do { openCL = try openCLTestDevices(file: file, line: line) } catch is XCTSkip { openCL = [] }
    // Where the CPU has AVX-512, the host's AVX2 versions of those kernels are tested too.
    let avx2: [any Device] = HostDevice.cpuHasAVX512 ? [HostDevice(avx512: false)] : []
    return [HostDevice()] + avx2 + [HostDevice(directKernels: false)] + openCL
}

/// The kernel families every OpenCL test runs: both, or only the one that
/// `CONVSVD_KERNELS` names (`cpu` or `gpu`), as `scripts/oclgrind` sets it.
public func openCLTestFamilies() -> [KernelFamily] {
    let text = ProcessInfo.processInfo.environment[KernelFamily.environmentVariable]?.lowercased() ?? ""
    return KernelFamily(rawValue: text).map { [$0] } ?? KernelFamily.allCases
}

/// Every OpenCL device of this machine (PoCL in CI), once per kernel family
/// (``openCLTestFamilies()``), never empty: without one, the test is skipped
/// visibly (`XCTSkip` with the reason), or fails with ``MissingOpenCLDevice``
/// when `CONVSVD_REQUIRE_OPENCL=1`.
public func openCLTestDevices(file: StaticString = #filePath, line: UInt = #line) throws -> [any Device] {
    try openCLTestDeviceInfos().flatMap { info in
        try openCLTestFamilies().map {
            try Devices.make(try DeviceSelector(parsing: info.selector), kernels: .family($0))
        }
    }
}

/// The listing of this machine's OpenCL devices, never empty; throws as
/// ``openCLTestDevices(file:line:)`` says.
public func openCLTestDeviceInfos() throws -> [DeviceInfo] {
    let infos = Devices.available().filter { $0.kind != .host }
    if infos.isEmpty {
        if openCLIsRequired { throw MissingOpenCLDevice() }
        throw XCTSkip("no OpenCL device on this machine (set CONVSVD_REQUIRE_OPENCL=1 to make this a failure)")
    }
    return infos
}

/// True when `CONVSVD_REQUIRE_OPENCL=1`: a missing OpenCL device fails the
/// OpenCL tests instead of skipping them.
public var openCLIsRequired: Bool { ProcessInfo.processInfo.environment["CONVSVD_REQUIRE_OPENCL"] == "1" }

/// Thrown (so that XCTest records a failure) by the OpenCL test helpers when
/// OpenCL is required and this machine lists no OpenCL device.
public struct MissingOpenCLDevice: Error, CustomStringConvertible {
    public init() {}
    public var description: String {
        "CONVSVD_REQUIRE_OPENCL=1 but no OpenCL device was found (`convsvd devices` lists them; PoCL: apt-get install pocl-opencl-icd)"
    }
}

/// The unpooled layers as the parity tests chain them on `device`:
/// `reluForward`, `maxPool2Forward` of its output, `maxPool2Backward` of
/// `gradOutput` through the winners, `reluBackward` of `gradRelu`. Returns
/// the ReLU output, the pooled output, the winners (as floats), the pool's
/// input gradient and the ReLU's input gradient.
public func reluPoolChain(
    on device: any Device, _ s: PoolShape, input: [Float], gradOutput: [Float],
    gradRelu: [Float]
) throws -> [[Float]] {
    let d = device
    let relu = try d.makeBuffer(count: s.inputCount, kind: .float32)
    let pooled = try d.makeBuffer(count: s.outputCount, kind: .float32)
    let argmax = try d.makeBuffer(count: s.outputCount, kind: .int32)
    let gradPool = try d.makeBuffer(count: s.inputCount, kind: .float32)
    let gradInput = try d.makeBuffer(count: s.inputCount, kind: .float32)
    try d.reluForward(count: s.inputCount, input: try d.makeBuffer(input), output: relu)
    try d.maxPool2Forward(s, input: relu, output: pooled, argmax: argmax)
    try d.maxPool2Backward(s, gradOutput: try d.makeBuffer(gradOutput), argmax: argmax, gradInput: gradPool)
    try d.reluBackward(count: s.inputCount, output: relu, gradOutput: try d.makeBuffer(gradRelu), gradInput: gradInput)
    return [
        try d.floats(relu), try d.floats(pooled), try d.int32s(argmax).map(Float.init),
        try d.floats(gradPool), try d.floats(gradInput),
    ]
}
