/// What a device counts as it works, for `convsvd bench` and the tests that
/// hold a training step's structure fixed.
///
/// - ``launches``: work handed to the device. On OpenCL, each command that
///   runs on the device: a kernel enqueue, a fill or a device-to-device copy
///   (uploads and downloads are transfers, not launches). On the host, each
///   hand-off of an operation to the worker threads (one wake-up and one
///   join; an operation small enough to run on the calling thread alone
///   launches nothing).
/// - ``hostWaits``: times the host blocks until the device has caught up:
///   a blocking read, the wait for a non-blocking read, `finish`, a blocking
///   upload, the wait for an upload's staging area. On the host, a
///   download (the host's copy of a result; nothing is queued to wait for).
///
/// - ``bytesToDevice``, ``bytesToHost``: bytes copied between host memory
///   and the device's memory by uploads and downloads (OpenCL only: the
///   host device's memory is the host's, and it copies nothing across).
///
/// Counting is one integer increment on the thread that calls the device
/// (a device is used from one thread at a time), so it is always on.
public final class DeviceCounters {
    public internal(set) var launches = 0
    public internal(set) var hostWaits = 0
    public internal(set) var bytesToDevice = 0
    public internal(set) var bytesToHost = 0

    public init() {}

    /// Sets every count to zero.
    public func reset() {
        launches = 0
        hostWaits = 0
        bytesToDevice = 0
        bytesToHost = 0
    }
}
