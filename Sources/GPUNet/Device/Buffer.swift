import Foundation
import NetIO

/// The element type of a ``Buffer``.
public enum ElementKind: String, Sendable {
    /// Four bytes each.
    case float32, int32
    /// One byte each: pixels and labels of a data set on the device.
    case uint8

    /// Bytes per element.
    public var size: Int { self == .uint8 ? 1 : 4 }
}

/// Storage on a ``Device``. Each device subclasses it; a buffer is used only
/// with the device that made it.
open class Buffer {
    public let count: Int
    public let kind: ElementKind
    public init(count: Int, kind: ElementKind) {
        self.count = count
        self.kind = kind
    }
    public var byteCount: Int { count * kind.size }
}

/// A download queued by ``Device/startDownload(_:)``.
public final class PendingDownload {
    private var wait: (() throws -> [Float])?
    private var values: [Float]?

    /// A download that `wait` completes (called at most once).
    public init(wait: @escaping () throws -> [Float]) { self.wait = wait }
    /// A download that is already complete.
    public init(values: [Float]) { self.values = values }

    /// Waits for the copy, then returns the buffer's contents.
    public func floats() throws -> [Float] {
        if let values { return values }
        guard let wait else { preconditionFailure("PendingDownload: an earlier wait failed") }
        self.wait = nil
        let result = try wait()
        values = result
        return result
    }
}
