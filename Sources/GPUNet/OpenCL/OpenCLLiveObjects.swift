import Foundation

/// How many OpenCL objects this process holds, by kind: every create adds
/// one, every release removes one, so a test can check that tearing a device
/// down returns the counts to where they were.
public struct OpenCLLiveObjects: Equatable, Sendable, CustomStringConvertible {
    public var contexts = 0, queues = 0, programs = 0, kernels = 0, buffers = 0
    public var total: Int { contexts + queues + programs + kernels + buffers }
    public var description: String {
        "contexts \(contexts), queues \(queues), programs \(programs), kernels \(kernels), buffers \(buffers)"
    }

    enum Kind { case context, queue, program, kernel, buffer }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var counts = OpenCLLiveObjects()

    /// A snapshot of the counts.
    static var current: OpenCLLiveObjects {
        lock.lock()
        defer { lock.unlock() }
        return counts
    }

    static func created(_ kind: Kind) { adjust(kind, by: 1) }
    static func released(_ kind: Kind) { adjust(kind, by: -1) }

    private static func adjust(_ kind: Kind, by delta: Int) {
        lock.lock()
        defer { lock.unlock() }
        switch kind {
        case .context: counts.contexts += delta
        case .queue: counts.queues += delta
        case .program: counts.programs += delta
        case .kernel: counts.kernels += delta
        case .buffer: counts.buffers += delta
        }
    }
}
