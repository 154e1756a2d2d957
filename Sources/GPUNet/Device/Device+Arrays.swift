/// Array conveniences over the pointer-based transfers of ``Device``.
extension Device {
    /// A new float buffer holding `values`.
    public func makeBuffer(_ values: [Float]) throws -> Buffer {
        let buffer = try makeBuffer(count: values.count, kind: .float32)
        try values.withUnsafeBufferPointer { try upload($0, to: buffer) }
        return buffer
    }

    /// A new int32 buffer holding `values`.
    public func makeBuffer(_ values: [Int32]) throws -> Buffer {
        let buffer = try makeBuffer(count: values.count, kind: .int32)
        try values.withUnsafeBufferPointer { try upload($0, to: buffer) }
        return buffer
    }

    public func upload(_ values: [Float], to buffer: Buffer) throws {
        try values.withUnsafeBufferPointer { try upload($0, to: buffer) }
    }

    public func upload(_ values: [Int32], to buffer: Buffer) throws {
        try values.withUnsafeBufferPointer { try upload($0, to: buffer) }
    }

    /// The contents of a float buffer (waits for queued work).
    public func floats(_ buffer: Buffer) throws -> [Float] {
        precondition(buffer.kind == .float32, "floats(_:) reads a float32 buffer")
        var values = [Float](repeating: 0, count: buffer.count)
        try values.withUnsafeMutableBufferPointer { try download(buffer, into: $0) }
        return values
    }

    /// The contents of an int32 buffer (waits for queued work).
    public func int32s(_ buffer: Buffer) throws -> [Int32] {
        precondition(buffer.kind == .int32, "int32s(_:) reads an int32 buffer")
        var values = [Int32](repeating: 0, count: buffer.count)
        try values.withUnsafeMutableBufferPointer { try download(buffer, into: $0) }
        return values
    }
}
