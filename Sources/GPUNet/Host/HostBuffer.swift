/// A ``Buffer`` of ``HostDevice``: `count` elements in host memory, 64-byte
/// aligned (one cache line, any SIMD width) and zero-filled.
public final class HostBuffer: Buffer {
    /// The storage, bound to `Float` or `Int32` according to `kind`.
    public let storage: UnsafeMutableRawPointer

    override init(count: Int, kind: ElementKind) {
        // At least one cache line, so that a zero-count buffer still owns memory.
        let bytes = max(count * kind.size, 64)
        storage = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        switch kind {
        case .float32: storage.bindMemory(to: Float.self, capacity: count)
        case .int32: storage.bindMemory(to: Int32.self, capacity: count)
        case .uint8: storage.bindMemory(to: UInt8.self, capacity: count)
        }
        super.init(count: count, kind: kind)
    }

    deinit { storage.deallocate() }

    /// The elements as floats (valid for a `.float32` buffer).
    var floats: UnsafeMutablePointer<Float> { storage.assumingMemoryBound(to: Float.self) }
    /// The elements as int32 (valid for an `.int32` buffer).
    var int32s: UnsafeMutablePointer<Int32> { storage.assumingMemoryBound(to: Int32.self) }
    /// The elements as bytes (valid for a `.uint8` buffer).
    var uint8s: UnsafeMutablePointer<UInt8> { storage.assumingMemoryBound(to: UInt8.self) }
}
