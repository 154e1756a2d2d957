import COpenCL

/// A non-blocking read of a float buffer into host memory that this object
/// owns until the read's event has completed (``OpenCLDevice/startDownload(_:)``).
/// It keeps the source buffer alive while the read is queued; dropped
/// unread, it still waits for the read before freeing the memory.
final class OpenCLPendingRead {
    private let source: OpenCLBuffer
    private let memory: UnsafeMutablePointer<Float>
    private var event: cl_event?
    /// Counts the wait in ``floats()`` (``DeviceCounters/hostWaits``).
    private let counters: DeviceCounters

    init(queue: cl_command_queue?, source: OpenCLBuffer, counters: DeviceCounters) throws {
        self.source = source
        self.counters = counters
        memory = .allocate(capacity: max(source.count, 1))
        guard source.count > 0 else { return }
        var event: cl_event?
        let status = clEnqueueReadBuffer(
            queue, source.memory, cl_bool(CL_FALSE), 0, source.byteCount, memory,
            0, nil, &event)
        // On failure deinit frees the memory (every property is set by now).
        try OpenCLError.check(status, "clEnqueueReadBuffer(\(source.byteCount) bytes, non-blocking)")
        self.event = event
    }

    deinit {
        if let event {
            var events: [cl_event?] = [event]
            clWaitForEvents(1, &events)
            clReleaseEvent(event)
        }
        memory.deallocate()
    }

    /// Waits for the read, then returns the buffer's contents.
    func floats() throws -> [Float] {
        if let event {
            self.event = nil
            counters.hostWaits += 1
            defer { clReleaseEvent(event) }
            var events: [cl_event?] = [event]
            try OpenCLError.check(clWaitForEvents(1, &events), "clWaitForEvents(a non-blocking read)")
        }
        return Array(UnsafeBufferPointer(start: memory, count: source.count))
    }
}
