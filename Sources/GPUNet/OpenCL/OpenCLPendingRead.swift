import COpenCL

/// A non-blocking read of a float buffer into host memory that this object
/// owns until the read's event has completed (``OpenCLDevice/startDownload(_:)``).
/// It keeps the source buffer alive while the read is queued; dropped
/// unread, it still waits for the read before freeing the memory.
final class OpenCLPendingRead {
    private let source: OpenCLBuffer
    private let memory: UnsafeMutablePointer<Float>
    /// The read's event; declared after `memory` so that it is waited for
    /// (when dropped unread) before `deinit` frees the memory.
    private var read: OpenCLEventWait?

    init(queue: cl_command_queue?, source: OpenCLBuffer, counters: DeviceCounters) throws {
        self.source = source
        memory = .allocate(capacity: max(source.count, 1))
        guard source.count > 0 else { return }
        var event: cl_event?
        let status = clEnqueueReadBuffer(
            queue, source.memory, cl_bool(CL_FALSE), 0, source.byteCount, memory,
            0, nil, &event)
        // On failure deinit frees the memory (every property is set by now).
        try OpenCLError.check(status, "clEnqueueReadBuffer(\(source.byteCount) bytes, non-blocking)")
        read = OpenCLEventWait(event: event, counters: counters)
    }

    deinit {
        read = nil  // waits for a read still in flight
        memory.deallocate()
    }

    /// Waits for the read (one host wait, ``DeviceCounters/hostWaits``), then returns the buffer's contents.
    func floats() throws -> [Float] {
        try read?.wait("clWaitForEvents(a non-blocking read)")
        return Array(UnsafeBufferPointer(start: memory, count: source.count))
    }
}
