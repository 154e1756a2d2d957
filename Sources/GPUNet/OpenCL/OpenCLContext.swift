import COpenCL
import Foundation

/// One device's OpenCL context and in-order command queue. Buffers, programs
/// and kernels keep it alive, so that it is released after the last of them.
///
/// Training queues up to a block of steps plus a few ahead of the host
/// (``StepResultLog``) and every step reuses the same activation, gradient,
/// parameter and scratch buffers. That is safe because the queue runs its
/// commands in order: step n + 1's first write to a buffer starts after
/// step n's last read of it has finished. An out-of-order queue
/// (CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) would break this: each launch
/// would then have to wait for the events of the launches whose buffers it
/// overwrites (the step record ring alone is safe either way, see
/// ``StepResultLog``).
final class OpenCLContext {
    let entry: OpenCLDeviceEntry
    let context: cl_context
    let queue: cl_command_queue

    init(entry: OpenCLDeviceEntry) throws {
        self.entry = entry
        var status: cl_int = CL_SUCCESS
        var device: cl_device_id? = entry.device
        guard let context = clCreateContext(nil, 1, &device, nil, nil, &status), status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateContext(\(entry.info.name))", status: status)
        }
        OpenCLLiveObjects.created(.context)
        guard let queue = clCreateCommandQueue(context, entry.device, 0, &status), status == CL_SUCCESS else {
            clReleaseContext(context)
            OpenCLLiveObjects.released(.context)
            throw OpenCLError.call("clCreateCommandQueue(\(entry.info.name))", status: status)
        }
        OpenCLLiveObjects.created(.queue)
        self.context = context
        self.queue = queue
    }

    deinit {
        // Nothing can be reported from deinit; a failed release leaves a leak
        // that the live-object counts do not hide (they count our references).
        clFinish(queue)
        clReleaseCommandQueue(queue)
        OpenCLLiveObjects.released(.queue)
        clReleaseContext(context)
        OpenCLLiveObjects.released(.context)
    }

    func finish() throws {
        try OpenCLError.check(clFinish(queue), "clFinish")
    }
}

/// A device buffer: `count` four-byte elements in one cl_mem.
public final class OpenCLBuffer: Buffer {
    let memory: cl_mem
    let owner: OpenCLContext
    /// The buffer a sub-buffer views, kept alive while the view is.
    private let parent: OpenCLBuffer?
    /// This buffer's number, unique in the process (``OpenCLBuffer/nextSerial()``).
    let serial = OpenCLBuffer.nextSerial()

    private static let serialLock = NSLock()
    nonisolated(unsafe) private static var serials: UInt64 = 0
    private static func nextSerial() -> UInt64 {
        serialLock.lock()
        defer { serialLock.unlock() }
        serials += 1
        return serials
    }

    init(count: Int, kind: ElementKind, owner: OpenCLContext) throws {
        let bytes = count * kind.size
        let limit = owner.entry.maxAllocationBytes
        // Refused here, with the size, rather than by an opaque driver status
        // (CL_INVALID_BUFFER_SIZE, or a failure only at first use).
        if count < 0 || count > Int.max / 4 || UInt64(bytes) > limit {
            throw OpenCLError.allocationTooLarge(
                requestedBytes: count < 0 || count > Int.max / 4 ? Int.max : bytes,
                maxAllocationBytes: limit,
                globalMemoryBytes: owner.entry.info.globalMemoryBytes,
                device: owner.entry.info.summary)
        }
        var status: cl_int = CL_SUCCESS
        // OpenCL has no empty buffers; an empty Buffer still owns 4 bytes.
        guard let memory = clCreateBuffer(owner.context, cl_mem_flags(CL_MEM_READ_WRITE), max(bytes, 4), nil, &status),
            status == CL_SUCCESS
        else {
            throw OpenCLError.call("clCreateBuffer(\(bytes) bytes)", status: status)
        }
        OpenCLLiveObjects.created(.buffer)
        self.memory = memory
        self.owner = owner
        parent = nil
        super.init(count: count, kind: kind)
    }

    /// A view of `count` elements of `parent` from element `offset`
    /// (clCreateSubBuffer); `offset` bytes must be a multiple of the
    /// device's ``OpenCLDeviceEntry/baseAddressAlignmentBytes``.
    init(subBufferOf parent: OpenCLBuffer, offset: Int, count: Int) throws {
        let size = parent.kind.size
        guard offset >= 0, count > 0, offset + count <= parent.count,
            (offset * size) % parent.owner.entry.baseAddressAlignmentBytes == 0
        else {
            throw OpenCLError.invalidArgument(
                "sub-buffer: elements \(offset)..<\(offset + count) of \(parent.count), the origin "
                    + "aligned to \(parent.owner.entry.baseAddressAlignmentBytes) bytes")
        }
        var region = cl_buffer_region(origin: offset * size, size: count * size)
        var status: cl_int = CL_SUCCESS
        guard
            let memory = clCreateSubBuffer(
                parent.memory, cl_mem_flags(CL_MEM_READ_WRITE),
                cl_buffer_create_type(CL_BUFFER_CREATE_TYPE_REGION), &region, &status),
            status == CL_SUCCESS
        else {
            throw OpenCLError.call("clCreateSubBuffer(\(count * size) bytes at \(offset * size))", status: status)
        }
        OpenCLLiveObjects.created(.buffer)
        self.memory = memory
        self.owner = parent.owner
        self.parent = parent
        super.init(count: count, kind: parent.kind)
    }

    deinit {
        clReleaseMemObject(memory)
        OpenCLLiveObjects.released(.buffer)
    }
}

/// One kernel of a built program, with its per-device launch limits.
final class OpenCLKernel {
    let name: String
    let kernel: cl_kernel
    let program: OpenCLProgram
    /// CL_KERNEL_WORK_GROUP_SIZE: the largest work-group this kernel allows here.
    let maxWorkGroupSize: Int
    /// CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE (8 on PoCL, 32 on NVIDIA).
    let preferredMultiple: Int
    /// CL_KERNEL_LOCAL_MEM_SIZE: local memory the kernel uses besides its
    /// `__local` arguments.
    let staticLocalBytes: Int

    init(program: OpenCLProgram, name: String) throws {
        var status: cl_int = CL_SUCCESS
        guard let kernel = clCreateKernel(program.program, name, &status), status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateKernel(\(name))", status: status)
        }
        OpenCLLiveObjects.created(.kernel)
        self.name = name
        self.kernel = kernel
        self.program = program
        let device = program.owner.entry.device
        var maxSize = 0
        var multiple = 0
        var localBytes: cl_ulong = 0
        let s3 = clGetKernelWorkGroupInfo(
            kernel, device, cl_kernel_work_group_info(CL_KERNEL_LOCAL_MEM_SIZE),
            MemoryLayout<cl_ulong>.size, &localBytes, nil)
        staticLocalBytes = s3 == CL_SUCCESS ? Int(localBytes) : 0
        let s1 = clGetKernelWorkGroupInfo(
            kernel, device, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
            MemoryLayout<Int>.size, &maxSize, nil)
        let s2 = clGetKernelWorkGroupInfo(
            kernel, device,
            cl_kernel_work_group_info(CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE),
            MemoryLayout<Int>.size, &multiple, nil)
        maxWorkGroupSize = max(maxSize, 1)
        preferredMultiple = max(multiple, 1)
        if s1 != CL_SUCCESS || s2 != CL_SUCCESS {
            clReleaseKernel(kernel)
            OpenCLLiveObjects.released(.kernel)
            throw OpenCLError.call("clGetKernelWorkGroupInfo(\(name))", status: s1 != CL_SUCCESS ? s1 : s2)
        }
    }

    deinit {
        clReleaseKernel(kernel)
        OpenCLLiveObjects.released(.kernel)
    }

    /// What argument `index` was last set to (``BoundArgument``), so that a
    /// launch sets only the arguments that changed.
    private var bound: [BoundArgument] = []

    /// An argument as last set on the kernel: a buffer by its
    /// ``OpenCLBuffer/serial``, which no other buffer ever has (a handle
    /// may be reused once freed, and a driver may have resolved the old
    /// one's memory when the argument was set).
    private enum BoundArgument: Equatable {
        case unset
        case buffer(UInt64)
        case int(Int)
        case float(UInt32)
        case local(Int)

        init() { self = .unset }

        init(_ argument: Argument) {
            switch argument {
            case .buffer(let b): self = .buffer(b.serial)
            case .int(let v): self = .int(v)
            case .float(let v): self = .float(v.bitPattern)
            case .local(let bytes): self = .local(bytes)
            }
        }

        func holds(_ argument: Argument) -> Bool { self == BoundArgument(argument) }
    }

    /// One kernel argument.
    enum Argument {
        case buffer(OpenCLBuffer)
        case int(Int)
        case float(Float)
        /// A `__local` buffer of this many bytes for each work-group.
        case local(bytes: Int)
    }

    /// Sets the arguments and enqueues `items` work-items (1-D) in groups of
    /// `local` (nil: ``workGroupSize(items:computeUnits:)``), padded up to a
    /// whole number of work-groups; every kernel ignores indices ≥ its size.
    /// Returns the global and local sizes enqueued, nil when nothing was.
    @discardableResult
    func launch(
        items: Int, computeUnits: Int, local chosen: Int? = nil,
        _ arguments: [Argument]
    ) throws -> (global: Int, local: Int)? {
        guard items > 0 else { return nil }
        if bound.count < arguments.count {
            bound += Array(repeating: BoundArgument(), count: arguments.count - bound.count)
        }
        for index in arguments.indices {
            let argument = arguments[index]
            // A kernel keeps its arguments between launches: only those that
            // differ from the last launch's are set again (a training step
            // repeats most of them, and each set is a driver call).
            if bound[index].holds(argument) { continue }
            let status: cl_int
            switch argument {
            case .buffer(let buffer):
                var memory: cl_mem? = buffer.memory
                status = clSetKernelArg(kernel, cl_uint(index), MemoryLayout<cl_mem>.size, &memory)
            case .int(let value):
                guard let narrow = Int32(exactly: value) else {
                    throw OpenCLError.invalidArgument(
                        "\(name): argument \(index) = \(value) does not fit in a 32-bit int")
                }
                var v = narrow
                status = clSetKernelArg(kernel, cl_uint(index), 4, &v)
            case .float(let value):
                var v = value
                status = clSetKernelArg(kernel, cl_uint(index), 4, &v)
            case .local(let bytes):
                status = clSetKernelArg(kernel, cl_uint(index), max(bytes, 4), nil)
            }
            bound[index] = BoundArgument()
            try OpenCLError.check(status, "clSetKernelArg(\(name), \(index))")
            bound[index] = BoundArgument(argument)
        }
        guard Int32(exactly: items) != nil else {
            throw OpenCLError.invalidArgument("\(name): \(items) work-items exceed the kernels' 32-bit indices")
        }
        if let chosen, chosen < 1 || chosen > maxWorkGroupSize {
            throw OpenCLError.invalidArgument("\(name): work-group size \(chosen) outside 1…\(maxWorkGroupSize)")
        }
        var local = chosen ?? workGroupSize(items: items, computeUnits: computeUnits)
        var global = (items + local - 1) / local * local
        try OpenCLError.check(
            clEnqueueNDRangeKernel(program.owner.queue, kernel, 1, nil, &global, &local, 0, nil, nil),
            "clEnqueueNDRangeKernel(\(name), global \(global), local \(local))")
        return (global, local)
    }

    /// The work-group size for `items`: eight preferred multiples (64 on
    /// PoCL, 256 on NVIDIA), within the kernel's limit, halved while that
    /// would leave fewer than eight work-groups per compute unit, so that a
    /// small launch still spreads over every core. On a GPU it stops at one
    /// preferred multiple (smaller groups leave SIMD lanes idle); on a CPU
    /// it goes down to a single work-item: PoCL deals a launch's groups to
    /// its threads in halving chunks, and its second thread, waking tens of
    /// µs late, found nothing left of a launch of 2–4 groups (conv2's weight
    /// partials, 16 work-items, and data gradient, 64: ~0.10 → 0.08 and
    /// ~0.14 → 0.115 ms with 16 groups instead of 2 and 4, C harness,
    /// medians of 12). Large launches keep their size: from 25 groups up,
    /// the size made no difference there.
    func workGroupSize(items: Int, computeUnits: Int) -> Int {
        var local = min(maxWorkGroupSize, preferredMultiple * 8)
        let smallest = program.owner.entry.info.kind == .openCLGPU ? min(preferredMultiple, local) : 1
        while local > smallest && (items + local - 1) / local < 8 * max(computeUnits, 1) {
            local /= 2
        }
        guard local >= preferredMultiple else { return max(local, 1) }
        return local / preferredMultiple * preferredMultiple
    }
}
