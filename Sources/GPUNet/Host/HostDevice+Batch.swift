/// ``Device/gatherBatch(_:pixels:labels:order:images:batchLabels:)`` on the
/// host: the reference the OpenCL kernel (`batch_gather.cl`) is held to.
extension HostDevice {
    public func gatherBatch(
        _ s: BatchGatherShape, pixels: Buffer, labels: Buffer, order: Buffer,
        images: Buffer, batchLabels: Buffer
    ) throws {
        let operation = "gatherBatch"
        guard s.count >= 0, s.imageSize > 0, s.range.lowerBound >= 0 else {
            throw HostDeviceError.invalidShape(
                operation: operation,
                reason: "count \(s.count), image size \(s.imageSize), range \(s.range)")
        }
        let source = try uint8s(pixels, at: s.count * s.imageSize, operation, "pixels")
        let sourceLabels = try uint8s(labels, at: s.count, operation, "labels")
        let indices = try int32s(order, at: s.range.upperBound, operation, "order")
        let target = try floats(images, at: s.outputCount, operation, "images")
        let targetLabels = try int32s(batchLabels, at: s.batch, operation, "batchLabels")
        for position in s.range where indices[position] < 0 || Int(indices[position]) >= s.count {
            throw HostDeviceError.indexOutOfRange(
                operation: operation, argument: "order", position: position,
                value: indices[position], count: s.count)
        }
        let (scale, shift, size) = (s.scale, s.shift, s.imageSize)
        // Dataset.normalizeImages's loop, term for term: a product rounded
        // to float, then the difference (Swift contracts no float
        // expression into a fused multiply-add).
        for k in 0..<s.batch {
            let n = Int(indices[s.range.lowerBound + k])
            let from = source + n * size
            let to = target + k * size
            for p in 0..<size { to[p] = Float(from[p]) * scale - shift }
            targetLabels[k] = Int32(sourceLabels[n])
        }
    }
}
