import COpenCL

/// Host memory that uploads are copied into before their non-blocking
/// writes are enqueued: a ring of areas, each reused only after the write
/// from it has completed (its event waited for, normally long finished).
final class OpenCLUploadStaging {
    private struct Area {
        var memory: UnsafeMutableRawPointer?
        var capacity = 0
        var pending: cl_event?
    }

    /// Four areas: a training step uploads two (images, labels), so an
    /// area comes back two steps later, when its write is long done.
    private var areas = [Area](repeating: Area(), count: 4)
    private var current = 0
    /// The area handed out by the last ``next(bytes:)``.
    private var handedOut: Int?

    deinit {
        for area in areas {
            if let event = area.pending {
                var events: [cl_event?] = [event]
                clWaitForEvents(1, &events)
                clReleaseEvent(event)
            }
            area.memory?.deallocate()
        }
    }

    /// An area of at least `bytes` bytes that no queued write reads from;
    /// `waited` is called when that takes a wait for an earlier write.
    /// Throws when the write last made from it failed.
    func next(bytes: Int, waited: () -> Void = {}) throws -> UnsafeMutableRawPointer {
        current = (current + 1) % areas.count
        if areas[current].pending != nil { waited() }
        try settle(current)
        if areas[current].capacity < bytes {
            areas[current].memory?.deallocate()
            // 64-byte alignment: whole cache lines for the driver's copy.
            areas[current].memory = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            areas[current].capacity = bytes
        }
        handedOut = current
        return areas[current].memory!
    }

    /// Records the event of the write just enqueued from the last area handed out.
    func inFlight(_ event: cl_event?) {
        guard let index = handedOut else { return }
        areas[index].pending = event
        handedOut = nil
    }

    /// Waits for the write from area `index`, if any, and releases its event.
    private func settle(_ index: Int) throws {
        guard let event = areas[index].pending else { return }
        areas[index].pending = nil
        defer { clReleaseEvent(event) }
        var events: [cl_event?] = [event]
        try OpenCLError.check(clWaitForEvents(1, &events), "clWaitForEvents(an earlier upload's write)")
    }
}
