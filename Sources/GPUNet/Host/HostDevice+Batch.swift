/// ``Device/gatherBatch(_:pixels:labels:order:images:batchLabels:)`` on the
/// host: the reference the OpenCL kernels (`batch_gather.cl`,
/// `batch_gather16.cl`, `batch_gather_rows.cl`, `batch_gather_planes.cl`)
/// are held to.
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
        if let problem = s.problem { throw HostDeviceError.invalidShape(operation: operation, reason: problem) }
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
        guard !s.isPlain else {
            let (scale, shift, size) = (s.scales[0], s.shifts[0], s.imageSize)
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
            return
        }
        // Per channel, cropped and flipped (Augmentation's formula): a row
        // at a time; a padded pixel is the byte 0, normalised like any other.
        let (rows, columns, plane, p) = (s.rows, s.columns, s.rows * s.columns, s.padding)
        for k in 0..<s.batch {
            let n = Int(indices[s.range.lowerBound + k])
            let choice = s.choice(k)
            targetLabels[k] = Int32(sourceLabels[n])
            for c in 0..<s.channels {
                let (scale, shift) = (s.scales[c], s.shifts[c])
                let outside = Float(0) * scale - shift
                let from = source + n * s.imageSize + c * plane
                for y in 0..<rows {
                    let to = target + k * s.imageSize + c * plane + y * columns
                    let sy = y + choice.dy - p
                    guard sy >= 0 && sy < rows else {
                        for x in 0..<columns { to[x] = outside }
                        continue
                    }
                    let line = from + sy * columns
                    for x in 0..<columns {
                        let sx = (choice.flip ? columns - 1 - x : x) + choice.dx - p
                        to[x] = sx >= 0 && sx < columns ? Float(line[sx]) * scale - shift : outside
                    }
                }
            }
        }
    }
}
