import Foundation

/// ``Device/gatherBatch(_:pixels:labels:order:images:batchLabels:)`` as one
/// launch. The plain one-channel gather without augmentation: `batch_gather1`
/// (Sources/Kernels/common/batch_gather.cl) or, in the cpu family,
/// `batch_gather16` (Sources/Kernels/cpu/batch_gather16.cl). Several
/// channels or an augmentation: `batch_gather_rows` in the cpu family (a
/// work-item per output row), `gpu_batch_gather_planes` in the gpu family (a
/// work-item per output pixel).
extension OpenCLDevice {
    /// Pixels per work-item of the batch gather, by ``kernelFamily``: 1 in
    /// the gpu family (one work-item per pixel: 50,176 at batch 64 for
    /// MNIST), 16 in the cpu family when the image size allows (PoCL runs
    /// each work-item's few instructions at a cost of a few ns; float16s,
    /// several per item, make far fewer items).
    func gatherWidth(imageSize: Int) -> Int {
        kernelFamily == .cpu && imageSize % 16 == 0 ? 16 : 1
    }

    public func gatherBatch(
        _ s: BatchGatherShape, pixels: Buffer, labels: Buffer, order: Buffer,
        images: Buffer, batchLabels: Buffer
    ) throws {
        let operation = "gatherBatch"
        guard s.count >= 0, s.imageSize > 0, s.range.lowerBound >= 0 else {
            throw OpenCLError.invalidArgument(
                "\(operation): count \(s.count), image size \(s.imageSize), range \(s.range)")
        }
        if let problem = s.problem { throw OpenCLError.invalidArgument("\(operation): \(problem)") }
        let sourcePixels = try cl(pixels, "pixels", atLeast: s.count * s.imageSize, kind: .uint8, in: operation)
        let sourceLabels = try cl(labels, "labels", atLeast: s.count, kind: .uint8, in: operation)
        let indices = try cl(order, "order", atLeast: s.range.upperBound, kind: .int32, in: operation)
        let target = try cl(images, "images", atLeast: s.outputCount, in: operation)
        let targetLabels = try cl(batchLabels, "batchLabels", atLeast: s.batch, kind: .int32, in: operation)
        guard s.isPlain else {
            let normalization = try gatherNormalizationBuffer(scales: s.scales, shifts: s.shifts)
            let key = Int(Int32(bitPattern: s.augmentationKey))
            let arguments: [OpenCLKernel.Argument] = [
                .int(s.count), .int(s.channels), .int(s.rows), .int(s.columns), .int(s.range.lowerBound),
                .int(s.batch), .buffer(sourcePixels), .buffer(sourceLabels), .buffer(indices), .buffer(normalization),
                .int(key), .int(s.padding), .int(s.augmentation.flips ? 1 : 0), .buffer(target), .buffer(targetLabels),
            ]
            if kernelFamily == .cpu {
                try launch("batch_gather_rows", items: s.batch * s.channels * s.rows, arguments)
            } else {
                try launch("gpu_batch_gather_planes", items: s.outputCount, arguments)
            }
            return
        }
        if gatherWidth(imageSize: s.imageSize) == 16 {
            // The most float16s per work-item, up to 8, that divide an image's.
            let vectors = s.imageSize / 16
            let run = (1...8).last { vectors % $0 == 0 }!
            try launch(
                "batch_gather16", items: s.outputCount / (16 * run),
                [
                    .int(s.count), .int(s.imageSize), .int(s.range.lowerBound), .int(s.batch),
                    .buffer(sourcePixels), .buffer(sourceLabels), .buffer(indices), .float(s.scales[0]),
                    .float(s.shifts[0]), .buffer(target), .buffer(targetLabels), .int(run),
                ])
        } else {
            try launch(
                "batch_gather1", items: s.outputCount,
                [
                    .int(s.count), .int(s.imageSize), .int(s.range.lowerBound), .int(s.batch),
                    .buffer(sourcePixels), .buffer(sourceLabels), .buffer(indices), .float(s.scales[0]),
                    .float(s.shifts[0]), .buffer(target), .buffer(targetLabels),
                ])
        }
    }

    /// A buffer holding the scales, then the shifts, uploaded only when
    /// they differ from the last gather's (compared bit for bit in place:
    /// a step allocates nothing): the queue is in order, so a gather queued
    /// earlier reads its own values before a new buffer's upload matters,
    /// and a replaced buffer stays alive until its kernels finish.
    func gatherNormalizationBuffer(scales: [Float], shifts: [Float]) throws -> OpenCLBuffer {
        if let last = gatherNormalization, last.values.count == scales.count + shifts.count,
            scales.indices.allSatisfy({ last.values[$0].bitPattern == scales[$0].bitPattern }),
            shifts.indices.allSatisfy({ last.values[scales.count + $0].bitPattern == shifts[$0].bitPattern })
        {
            return last.buffer
        }
        let values = scales + shifts
        let buffer = try OpenCLBuffer(count: values.count, kind: .float32, owner: context)
        try upload(values, to: buffer)
        gatherNormalization = (values, buffer)
        return buffer
    }
}
