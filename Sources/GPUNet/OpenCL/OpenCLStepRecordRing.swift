import COpenCL

/// ``StepRecordRing`` on OpenCL: one buffer whose slots are sub-buffers at
/// aligned offsets (`stride` floats apart), and a pinned mirror of it in
/// host memory (a `CL_MEM_ALLOC_HOST_PTR` buffer mapped once for the ring's
/// life) into which ``startReading(_:)`` copies a run of slots with one
/// non-blocking read. A GPU's copy engine moves pinned memory without a
/// staging copy; PoCL, whose device memory is host memory, copies it once.
final class OpenCLStepRecordRing: StepRecordRing {
    let slots: [Buffer]
    let floatsPerSlot: Int
    /// Floats from one slot's start to the next's.
    private let stride: Int
    private let records: OpenCLBuffer
    private let pinned: cl_mem
    private let mirror: UnsafeMutablePointer<Float>
    private let context: OpenCLContext
    private let counters: DeviceCounters

    init(slots count: Int, floatsPerSlot: Int, context: OpenCLContext, counters: DeviceCounters) throws {
        let alignment = context.entry.baseAddressAlignmentBytes
        let slotBytes = (floatsPerSlot * 4 + alignment - 1) / alignment * alignment
        stride = slotBytes / 4
        let records = try OpenCLBuffer(count: stride * count, kind: .float32, owner: context)
        self.records = records
        slots = try (0..<count).map {
            try OpenCLBuffer(subBufferOf: records, offset: $0 * slotBytes / 4, count: floatsPerSlot)
        }
        self.floatsPerSlot = floatsPerSlot
        self.context = context
        self.counters = counters
        var status: cl_int = CL_SUCCESS
        let bytes = records.byteCount
        guard
            let pinned = clCreateBuffer(
                context.context, cl_mem_flags(CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR), bytes, nil, &status),
            status == CL_SUCCESS
        else { throw OpenCLError.call("clCreateBuffer(\(bytes) bytes, CL_MEM_ALLOC_HOST_PTR)", status: status) }
        OpenCLLiveObjects.created(.buffer)
        // Mapped once, blocking (the ring is made before training starts).
        let mapped = clEnqueueMapBuffer(
            context.queue, pinned, cl_bool(CL_TRUE), cl_map_flags(CL_MAP_READ | CL_MAP_WRITE), 0, bytes,
            0, nil, nil, &status)
        guard let mapped, status == CL_SUCCESS else {
            clReleaseMemObject(pinned)
            OpenCLLiveObjects.released(.buffer)
            throw OpenCLError.call("clEnqueueMapBuffer(\(bytes) bytes)", status: status)
        }
        counters.hostWaits += 1
        self.pinned = pinned
        mirror = mapped.bindMemory(to: Float.self, capacity: stride * count)
    }

    deinit {
        // A read still queued writes into the mirror: the queue drains first.
        clFinish(context.queue)
        clEnqueueUnmapMemObject(context.queue, pinned, UnsafeMutableRawPointer(mirror), 0, nil, nil)
        clFinish(context.queue)
        clReleaseMemObject(pinned)
        OpenCLLiveObjects.released(.buffer)
    }

    func startReading(_ range: Range<Int>) throws -> PendingDownload {
        guard range.lowerBound >= 0, range.upperBound <= slots.count else {
            throw OpenCLError.invalidArgument("startReading: slots \(range) of \(slots.count)")
        }
        guard !range.isEmpty else { return PendingDownload(values: []) }
        let offset = range.lowerBound * stride
        let floats = (range.count - 1) * stride + floatsPerSlot
        var event: cl_event?
        try OpenCLError.check(
            clEnqueueReadBuffer(
                context.queue, records.memory, cl_bool(CL_FALSE), offset * 4, floats * 4, mirror + offset,
                0, nil, &event), "clEnqueueReadBuffer(\(floats * 4) bytes of step records, non-blocking)")
        counters.bytesToHost += floats * 4
        let read = OpenCLEventWait(event: event, counters: counters)
        return PendingDownload { [self] in
            try read.wait("clWaitForEvents(a read of step records)")
            var values = [Float]()
            values.reserveCapacity(range.count * floatsPerSlot)
            for slot in range {
                values.append(contentsOf: UnsafeBufferPointer(start: mirror + slot * stride, count: floatsPerSlot))
            }
            return values
        }
    }
}

/// The wait for one event, counted as a host wait (``DeviceCounters``);
/// the event is released once waited for, or when dropped unwaited (after
/// waiting, so that nothing it writes outlives what it writes into).
final class OpenCLEventWait {
    private var event: cl_event?
    private let counters: DeviceCounters

    init(event: cl_event?, counters: DeviceCounters) {
        self.event = event
        self.counters = counters
    }

    deinit {
        if let event {
            var events: [cl_event?] = [event]
            clWaitForEvents(1, &events)
            clReleaseEvent(event)
        }
    }

    func wait(_ what: String) throws {
        guard let event else { return }
        self.event = nil
        counters.hostWaits += 1
        defer { clReleaseEvent(event) }
        var events: [cl_event?] = [event]
        try OpenCLError.check(clWaitForEvents(1, &events), what)
    }
}

extension OpenCLDevice {
    public func makeStepRecordRing(slots: Int, floatsPerSlot: Int) throws -> any StepRecordRing {
        guard slots > 0, floatsPerSlot > 0 else {
            throw OpenCLError.invalidArgument("makeStepRecordRing: \(slots) slots of \(floatsPerSlot) floats")
        }
        return try OpenCLStepRecordRing(
            slots: slots, floatsPerSlot: floatsPerSlot, context: context, counters: counters)
    }
}
