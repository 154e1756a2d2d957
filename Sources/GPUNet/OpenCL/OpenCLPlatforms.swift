import COpenCL
import Foundation

/// One OpenCL device of this machine: where it sits (platform and device
/// index, as in the selector `opencl:P:D`) and what it is.
struct OpenCLDeviceEntry {
    let platformIndex: Int
    let deviceIndex: Int
    let platform: cl_platform_id
    let device: cl_device_id
    /// What the device is; an ``OpenCLDevice``'s own entry carries the
    /// kernel family it chose, a listing's the one `auto` would choose.
    var info: DeviceInfo
    /// CL_DEVICE_MAX_MEM_ALLOC_SIZE: the largest single buffer.
    let maxAllocationBytes: UInt64
    /// CL_DEVICE_LOCAL_MEM_SIZE: the local memory one work-group may use.
    let localMemoryBytes: Int
    /// CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: the alignment of a sub-buffer's origin.
    let baseAddressAlignmentBytes: Int
}

/// Enumeration of OpenCL platforms and devices, every call checked.
enum OpenCLPlatforms {
    /// The platforms the ICD loader sees; empty (not an error) when there are
    /// none, which ocl-icd reports as CL_PLATFORM_NOT_FOUND_KHR.
    static func platforms() throws -> [cl_platform_id] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        if status == OpenCLError.platformNotFoundKHR || (status == CL_SUCCESS && count == 0) { return [] }
        try OpenCLError.check(status, "clGetPlatformIDs(count)")
        var ids = [cl_platform_id?](repeating: nil, count: Int(count))
        try OpenCLError.check(clGetPlatformIDs(count, &ids, nil), "clGetPlatformIDs")
        return ids.compactMap { $0 }
    }

    /// Every device of every platform, in platform then device order.
    static func entries() throws -> [OpenCLDeviceEntry] {
        var result: [OpenCLDeviceEntry] = []
        for (platformIndex, platform) in try platforms().enumerated() {
            let platformName = try platformString(platform, cl_platform_info(CL_PLATFORM_NAME), "CL_PLATFORM_NAME")
            for (deviceIndex, device) in try devices(of: platform).enumerated() {
                result.append(
                    try entry(
                        platformIndex: platformIndex, deviceIndex: deviceIndex, platform: platform,
                        platformName: platformName, device: device))
            }
        }
        return result
    }

    /// A hint for when no platform is found, for error messages.
    static let noPlatformHint =
        "the OpenCL ICD loader found no platform; install a driver such as pocl-opencl-icd "
        + "and check /etc/OpenCL/vendors or OCL_ICD_VENDORS, or use --device host"

    private static func devices(of platform: cl_platform_id) throws -> [cl_device_id] {
        var count: cl_uint = 0
        let status = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &count)
        if status == CL_DEVICE_NOT_FOUND { return [] }
        try OpenCLError.check(status, "clGetDeviceIDs(count)")
        var ids = [cl_device_id?](repeating: nil, count: Int(count))
        try OpenCLError.check(
            clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), count, &ids, nil),
            "clGetDeviceIDs")
        return ids.compactMap { $0 }
    }

    private static func entry(
        platformIndex: Int, deviceIndex: Int, platform: cl_platform_id, platformName: String,
        device: cl_device_id
    ) throws -> OpenCLDeviceEntry {
        let type: cl_device_type = try deviceValue(device, cl_device_info(CL_DEVICE_TYPE), "CL_DEVICE_TYPE")
        let isGPU = type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0
        let info = DeviceInfo(
            kind: isGPU ? .openCLGPU : .openCLOther,
            selector: "opencl:\(platformIndex):\(deviceIndex)",
            name: try deviceString(device, cl_device_info(CL_DEVICE_NAME), "CL_DEVICE_NAME"),
            vendor: try deviceString(device, cl_device_info(CL_DEVICE_VENDOR), "CL_DEVICE_VENDOR"),
            type: typeName(type),
            computeUnits: Int(
                try deviceValue(
                    device, cl_device_info(CL_DEVICE_MAX_COMPUTE_UNITS),
                    "CL_DEVICE_MAX_COMPUTE_UNITS") as cl_uint),
            globalMemoryBytes: try deviceValue(
                device, cl_device_info(CL_DEVICE_GLOBAL_MEM_SIZE),
                "CL_DEVICE_GLOBAL_MEM_SIZE"),
            languageVersion: try deviceString(
                device, cl_device_info(CL_DEVICE_OPENCL_C_VERSION),
                "CL_DEVICE_OPENCL_C_VERSION"),
            driverVersion: try deviceString(device, cl_device_info(CL_DRIVER_VERSION), "CL_DRIVER_VERSION"),
            platformName: platformName, kernelFamily: KernelFamily.automatic(forDeviceType: typeName(type)))
        let maxAllocation: cl_ulong = try deviceValue(
            device, cl_device_info(CL_DEVICE_MAX_MEM_ALLOC_SIZE),
            "CL_DEVICE_MAX_MEM_ALLOC_SIZE")
        let localMemory: cl_ulong = try deviceValue(
            device, cl_device_info(CL_DEVICE_LOCAL_MEM_SIZE),
            "CL_DEVICE_LOCAL_MEM_SIZE")
        let alignmentBits: cl_uint = try deviceValue(
            device, cl_device_info(CL_DEVICE_MEM_BASE_ADDR_ALIGN),
            "CL_DEVICE_MEM_BASE_ADDR_ALIGN")
        return OpenCLDeviceEntry(
            platformIndex: platformIndex, deviceIndex: deviceIndex, platform: platform,
            device: device, info: info, maxAllocationBytes: maxAllocation,
            localMemoryBytes: Int(localMemory), baseAddressAlignmentBytes: max(Int(alignmentBits) / 8, 4))
    }

    /// CL_DEVICE_TYPE as words: "GPU", "CPU", "ACCELERATOR", joined with "+".
    static func typeName(_ type: cl_device_type) -> String {
        let names: [(Int32, String)] = [
            (CL_DEVICE_TYPE_GPU, "GPU"), (CL_DEVICE_TYPE_CPU, "CPU"),
            (CL_DEVICE_TYPE_ACCELERATOR, "ACCELERATOR"), (CL_DEVICE_TYPE_CUSTOM, "CUSTOM"),
            (CL_DEVICE_TYPE_DEFAULT, "DEFAULT"),
        ]
        let parts = names.filter { type & cl_device_type($0.0) != 0 }.map(\.1)
        return parts.isEmpty ? "UNKNOWN" : parts.joined(separator: "+")
    }

    static func deviceString(_ device: cl_device_id, _ parameter: cl_device_info, _ name: String) throws -> String {
        var size = 0
        try OpenCLError.check(clGetDeviceInfo(device, parameter, 0, nil, &size), "clGetDeviceInfo(\(name))")
        var bytes = [CChar](repeating: 0, count: max(size, 1))
        try OpenCLError.check(clGetDeviceInfo(device, parameter, size, &bytes, nil), "clGetDeviceInfo(\(name))")
        return trimmed(bytes)
    }

    static func deviceValue<T: FixedWidthInteger>(
        _ device: cl_device_id, _ parameter: cl_device_info,
        _ name: String
    ) throws -> T {
        var value: T = 0
        try OpenCLError.check(
            clGetDeviceInfo(device, parameter, MemoryLayout<T>.size, &value, nil),
            "clGetDeviceInfo(\(name))")
        return value
    }

    static func platformString(
        _ platform: cl_platform_id, _ parameter: cl_platform_info,
        _ name: String
    ) throws -> String {
        var size = 0
        try OpenCLError.check(clGetPlatformInfo(platform, parameter, 0, nil, &size), "clGetPlatformInfo(\(name))")
        var bytes = [CChar](repeating: 0, count: max(size, 1))
        try OpenCLError.check(clGetPlatformInfo(platform, parameter, size, &bytes, nil), "clGetPlatformInfo(\(name))")
        return trimmed(bytes)
    }

    /// A C string from OpenCL, without its terminator and surrounding spaces.
    static func trimmed(_ bytes: [CChar]) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        let text = String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
