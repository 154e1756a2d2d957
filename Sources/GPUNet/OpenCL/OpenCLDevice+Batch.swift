import Foundation

/// ``Device/gatherBatch(_:pixels:labels:order:images:batchLabels:)`` as one
/// launch of `batch_gather1` (Sources/Kernels/common/batch_gather.cl) or,
/// in the cpu family, `batch_gather16` (Sources/Kernels/cpu/batch_gather16.cl).
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
        let sourcePixels = try cl(pixels, "pixels", atLeast: s.count * s.imageSize, kind: .uint8, in: operation)
        let sourceLabels = try cl(labels, "labels", atLeast: s.count, kind: .uint8, in: operation)
        let indices = try cl(order, "order", atLeast: s.range.upperBound, kind: .int32, in: operation)
        let target = try cl(images, "images", atLeast: s.outputCount, in: operation)
        let targetLabels = try cl(batchLabels, "batchLabels", atLeast: s.batch, kind: .int32, in: operation)
        let arguments: [OpenCLKernel.Argument] = [
            .int(s.count), .int(s.imageSize), .int(s.range.lowerBound), .int(s.batch),
            .buffer(sourcePixels), .buffer(sourceLabels), .buffer(indices), .float(s.scale), .float(s.shift),
            .buffer(target), .buffer(targetLabels),
        ]
        if gatherWidth(imageSize: s.imageSize) == 16 {
            // The most float16s per work-item, up to 8, that divide an image's.
            let vectors = s.imageSize / 16
            let run = (1...8).last { vectors % $0 == 0 }!
            try launch("batch_gather16", items: s.outputCount / (16 * run), arguments + [.int(run)])
        } else {
            try launch("batch_gather1", items: s.outputCount, arguments)
        }
    }
}
