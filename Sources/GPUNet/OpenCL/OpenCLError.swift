import COpenCL

/// Every failure of the OpenCL device, with what failed and where.
///
/// A failed OpenCL call names the call and its status by name
/// (`clEnqueueNDRangeKernel(conv2d_forward_16) failed: CL_INVALID_WORK_GROUP_SIZE (-54)`),
/// a failed build carries the compiler's log.
public enum OpenCLError: Error, CustomStringConvertible, Equatable {
    /// An OpenCL call returned a status other than CL_SUCCESS.
    case call(String, status: Int32)
    /// clBuildProgram failed; `log` is the device compiler's build log.
    case buildFailed(device: String, status: Int32, log: String)
    /// A buffer larger than the device can allocate, refused before asking the driver.
    case allocationTooLarge(requestedBytes: Int, maxAllocationBytes: UInt64, globalMemoryBytes: UInt64, device: String)
    /// No OpenCL platform is installed or visible to the ICD loader.
    case noPlatform(String)
    /// A selector asked for a platform/device that does not exist.
    case noSuchDevice(platform: Int, device: Int, available: [String])
    /// An operation was called with arguments that do not fit its shape.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .call(let function, let status):
            return "\(function) failed: \(OpenCLError.name(of: status)) (\(status))"
        case .buildFailed(let device, let status, let log):
            return
                "OpenCL program build failed on \(device): \(OpenCLError.name(of: status)) (\(status)); build log:\n\(log)"
        case .allocationTooLarge(let requested, let maxAllocation, let global, let device):
            return "cannot allocate an OpenCL buffer of \(requested) bytes on \(device): "
                + "the device allows at most \(maxAllocation) bytes per buffer (global memory \(global) bytes)"
        case .noPlatform(let detail):
            return "no OpenCL platform found (\(detail))"
        case .noSuchDevice(let platform, let device, let available):
            let list = available.isEmpty ? "none" : available.joined(separator: "; ")
            return "no OpenCL device opencl:\(platform):\(device); available: \(list)"
        case .invalidArgument(let detail):
            return "invalid OpenCL device operation: \(detail)"
        }
    }

    /// The symbolic name of an OpenCL 1.2 status code (plus the ICD loader's
    /// CL_PLATFORM_NOT_FOUND_KHR), or "unknown OpenCL error" for others.
    public static func name(of status: Int32) -> String {
        names[status] ?? "unknown OpenCL error"
    }

    /// Throws ``call(_:status:)`` unless `status` is CL_SUCCESS.
    static func check(_ status: cl_int, _ function: @autoclosure () -> String) throws {
        if status != CL_SUCCESS { throw OpenCLError.call(function(), status: status) }
    }

    /// The ICD extension's status for "no platform" (cl_ext.h is not imported).
    static let platformNotFoundKHR: Int32 = -1001

    /// Every status of the OpenCL 1.2 headers, keyed by the header's own constants.
    private static let names: [Int32: String] = [
        CL_SUCCESS: "CL_SUCCESS",
        CL_DEVICE_NOT_FOUND: "CL_DEVICE_NOT_FOUND",
        CL_DEVICE_NOT_AVAILABLE: "CL_DEVICE_NOT_AVAILABLE",
        CL_COMPILER_NOT_AVAILABLE: "CL_COMPILER_NOT_AVAILABLE",
        CL_MEM_OBJECT_ALLOCATION_FAILURE: "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        CL_OUT_OF_RESOURCES: "CL_OUT_OF_RESOURCES",
        CL_OUT_OF_HOST_MEMORY: "CL_OUT_OF_HOST_MEMORY",
        CL_PROFILING_INFO_NOT_AVAILABLE: "CL_PROFILING_INFO_NOT_AVAILABLE",
        CL_MEM_COPY_OVERLAP: "CL_MEM_COPY_OVERLAP",
        CL_IMAGE_FORMAT_MISMATCH: "CL_IMAGE_FORMAT_MISMATCH",
        CL_IMAGE_FORMAT_NOT_SUPPORTED: "CL_IMAGE_FORMAT_NOT_SUPPORTED",
        CL_BUILD_PROGRAM_FAILURE: "CL_BUILD_PROGRAM_FAILURE",
        CL_MAP_FAILURE: "CL_MAP_FAILURE",
        CL_MISALIGNED_SUB_BUFFER_OFFSET: "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        CL_COMPILE_PROGRAM_FAILURE: "CL_COMPILE_PROGRAM_FAILURE",
        CL_LINKER_NOT_AVAILABLE: "CL_LINKER_NOT_AVAILABLE",
        CL_LINK_PROGRAM_FAILURE: "CL_LINK_PROGRAM_FAILURE",
        CL_DEVICE_PARTITION_FAILED: "CL_DEVICE_PARTITION_FAILED",
        CL_KERNEL_ARG_INFO_NOT_AVAILABLE: "CL_KERNEL_ARG_INFO_NOT_AVAILABLE",
        CL_INVALID_VALUE: "CL_INVALID_VALUE",
        CL_INVALID_DEVICE_TYPE: "CL_INVALID_DEVICE_TYPE",
        CL_INVALID_PLATFORM: "CL_INVALID_PLATFORM",
        CL_INVALID_DEVICE: "CL_INVALID_DEVICE",
        CL_INVALID_CONTEXT: "CL_INVALID_CONTEXT",
        CL_INVALID_QUEUE_PROPERTIES: "CL_INVALID_QUEUE_PROPERTIES",
        CL_INVALID_COMMAND_QUEUE: "CL_INVALID_COMMAND_QUEUE",
        CL_INVALID_HOST_PTR: "CL_INVALID_HOST_PTR",
        CL_INVALID_MEM_OBJECT: "CL_INVALID_MEM_OBJECT",
        CL_INVALID_IMAGE_FORMAT_DESCRIPTOR: "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR",
        CL_INVALID_IMAGE_SIZE: "CL_INVALID_IMAGE_SIZE",
        CL_INVALID_SAMPLER: "CL_INVALID_SAMPLER",
        CL_INVALID_BINARY: "CL_INVALID_BINARY",
        CL_INVALID_BUILD_OPTIONS: "CL_INVALID_BUILD_OPTIONS",
        CL_INVALID_PROGRAM: "CL_INVALID_PROGRAM",
        CL_INVALID_PROGRAM_EXECUTABLE: "CL_INVALID_PROGRAM_EXECUTABLE",
        CL_INVALID_KERNEL_NAME: "CL_INVALID_KERNEL_NAME",
        CL_INVALID_KERNEL_DEFINITION: "CL_INVALID_KERNEL_DEFINITION",
        CL_INVALID_KERNEL: "CL_INVALID_KERNEL",
        CL_INVALID_ARG_INDEX: "CL_INVALID_ARG_INDEX",
        CL_INVALID_ARG_VALUE: "CL_INVALID_ARG_VALUE",
        CL_INVALID_ARG_SIZE: "CL_INVALID_ARG_SIZE",
        CL_INVALID_KERNEL_ARGS: "CL_INVALID_KERNEL_ARGS",
        CL_INVALID_WORK_DIMENSION: "CL_INVALID_WORK_DIMENSION",
        CL_INVALID_WORK_GROUP_SIZE: "CL_INVALID_WORK_GROUP_SIZE",
        CL_INVALID_WORK_ITEM_SIZE: "CL_INVALID_WORK_ITEM_SIZE",
        CL_INVALID_GLOBAL_OFFSET: "CL_INVALID_GLOBAL_OFFSET",
        CL_INVALID_EVENT_WAIT_LIST: "CL_INVALID_EVENT_WAIT_LIST",
        CL_INVALID_EVENT: "CL_INVALID_EVENT",
        CL_INVALID_OPERATION: "CL_INVALID_OPERATION",
        CL_INVALID_GL_OBJECT: "CL_INVALID_GL_OBJECT",
        CL_INVALID_BUFFER_SIZE: "CL_INVALID_BUFFER_SIZE",
        CL_INVALID_MIP_LEVEL: "CL_INVALID_MIP_LEVEL",
        CL_INVALID_GLOBAL_WORK_SIZE: "CL_INVALID_GLOBAL_WORK_SIZE",
        CL_INVALID_PROPERTY: "CL_INVALID_PROPERTY",
        CL_INVALID_IMAGE_DESCRIPTOR: "CL_INVALID_IMAGE_DESCRIPTOR",
        CL_INVALID_COMPILER_OPTIONS: "CL_INVALID_COMPILER_OPTIONS",
        CL_INVALID_LINKER_OPTIONS: "CL_INVALID_LINKER_OPTIONS",
        CL_INVALID_DEVICE_PARTITION_COUNT: "CL_INVALID_DEVICE_PARTITION_COUNT",
        platformNotFoundKHR: "CL_PLATFORM_NOT_FOUND_KHR",
    ]
}
