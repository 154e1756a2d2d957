import Foundation

/// The clocks every timing in ConvSVD reads, in seconds.
///
/// - ``wall()``: monotonic elapsed time (`CLOCK_MONOTONIC`), for durations:
///   only differences mean anything (the origin is arbitrary), and a change
///   of the system's date does not move it, as it moves `Date()`.
/// - ``processCPU()``: CPU time of every thread of this process so far
///   (`CLOCK_PROCESS_CPUTIME_ID`). Over the same interval, processCPU / wall
///   is the number of cores kept busy.
/// - ``threadCPU()``: CPU time of the calling thread so far
///   (`CLOCK_THREAD_CPUTIME_ID`), for the share of one worker's time that a
///   step of its loop takes.
public enum Clocks {
    /// Monotonic elapsed time, seconds from an arbitrary origin.
    @inline(__always)
    public static func wall() -> Double { read(CLOCK_MONOTONIC) }

    /// CPU time of all threads of this process so far, seconds.
    @inline(__always)
    public static func processCPU() -> Double { read(CLOCK_PROCESS_CPUTIME_ID) }

    /// CPU time of the calling thread so far, seconds.
    @inline(__always)
    public static func threadCPU() -> Double { read(CLOCK_THREAD_CPUTIME_ID) }

    /// Seconds of the wall clock since `start`, a reading of ``wall()``.
    @inline(__always)
    public static func seconds(since start: Double) -> Double { wall() - start }

    @inline(__always)
    private static func read(_ clock: clockid_t) -> Double {
        var t = timespec()
        clock_gettime(clock, &t)
        return Double(t.tv_sec) + 1e-9 * Double(t.tv_nsec)
    }
}
