import NetIO

/// A labelled image set kept on a ``Device``: its pixels and labels are
/// uploaded once, as bytes (a quarter of the floats' size: 47 MB for
/// MNIST's 60,000 training images), with an order (int32) that batches are
/// gathered from, normalised on the device
/// (``Device/gatherBatch(_:pixels:labels:order:images:batchLabels:)``).
/// A training epoch uploads its permutation once (``setOrder(_:)``) and
/// each step takes a slice of it: no step uploads anything.
public final class DeviceDataset {
    public let device: any Device
    /// The set's name, count and image size, as on the host.
    public let name: String
    public let count: Int
    public let imageSize: Int
    /// Colour planes per image and a plane's rows and columns (imageSize = channels·rows·columns).
    public let channels: Int, rows: Int, columns: Int
    /// The set's per-channel normalisation, applied as the batches are gathered.
    public let normalization: Normalization
    /// The labels, kept on the host too for ``Evaluation``'s confusion matrix.
    public let hostLabels: [UInt8]
    let pixels: Buffer, labels: Buffer
    /// Indices into the set: the identity until ``setOrder(_:)``.
    let order: Buffer
    /// Whether the order is still the identity (evaluation needs it).
    public private(set) var isInSetOrder = true
    /// The gathers' shapes, made once: a step sets its range (and an
    /// augmented gather its augmentation, seed and epoch), so that its
    /// per-channel scales and shifts are not rebuilt (allocated) per step.
    private let plainGather: BatchGatherShape
    private var augmentedGather: BatchGatherShape

    /// Uploads `set` to `device`, with the identity order.
    public init(_ set: Dataset, on device: any Device) throws {
        self.device = device
        name = set.name
        count = set.count
        imageSize = set.imageSize
        (channels, rows, columns) = (set.channels, set.rows, set.columns)
        normalization = set.normalization
        hostLabels = set.labels
        plainGather = BatchGatherShape(
            count: set.count, imageSize: set.imageSize, range: 0..<0, scale: set.normalization.pixelScales[0],
            shift: set.normalization.pixelShifts[0])
        augmentedGather = BatchGatherShape(
            count: set.count, rows: set.rows, columns: set.columns, range: 0..<0, normalization: set.normalization)
        let pixels = try device.makeBuffer(count: set.pixels.count, kind: .uint8)
        try set.pixels.withUnsafeBufferPointer { try device.upload($0, to: pixels) }
        let labels = try device.makeBuffer(count: set.count, kind: .uint8)
        try set.labels.withUnsafeBufferPointer { try device.upload($0, to: labels) }
        (self.pixels, self.labels) = (pixels, labels)
        order = try device.makeBuffer(count: set.count, kind: .int32)
        try device.upload((0..<set.count).map { Int32($0) }, to: order)
    }

    /// Uploads `indices` (count of them, each in 0..<count; checked here,
    /// since the device kernel cannot throw) as the order batches come from.
    public func setOrder(_ indices: [Int]) throws {
        precondition(indices.count == count, "DeviceDataset.setOrder: \(indices.count) indices for \(count) images")
        if let bad = indices.firstIndex(where: { $0 < 0 || $0 >= count }) {
            preconditionFailure("DeviceDataset.setOrder: index \(indices[bad]) at \(bad) is outside 0..<\(count)")
        }
        try device.upload(indices.map { Int32($0) }, to: order)
        isInSetOrder = false
    }

    /// Queues the gather of the images and labels at positions `range` of
    /// the order into `w`'s input and labels (`w.batch == range.count`).
    public func gather<W: NetworkWorkspace>(_ range: Range<Int>, into w: W) throws {
        precondition(
            w.batch == range.count && w.input.count >= range.count * imageSize,
            "DeviceDataset.gather: \(range.count) images of \(imageSize) pixels into a workspace of \(w.batch)")
        guard normalization.channels == 1 else {
            return try gather(range, images: w.input, labels: w.labels)
        }
        // One channel: the set's one scale and shift.
        try device.gatherBatch(
            plainGatherShape(range), pixels: pixels, labels: labels, order: order, images: w.input,
            batchLabels: w.labels)
    }

    /// The plain gather of positions `range` of a one-channel set (its one
    /// scale and shift), from the shape made once.
    func plainGatherShape(_ range: Range<Int>) -> BatchGatherShape {
        var shape = plainGather
        shape.range = range
        return shape
    }

    /// Queues the gather of the images and labels at positions `range` of
    /// the order into `images` (range.count·imageSize floats, NCHW) and
    /// `labels` (range.count int32s), normalised per channel and augmented
    /// with `augmentation` (crop padding ``Augmentation/padding(rows:columns:)``
    /// of the set's images): each image's crop and flip follow from `seed`,
    /// `epoch` and its position in the order (``AugmentationChoice``), the
    /// same on every device. Any image shape; ``Augmentation/none`` on a
    /// one-channel set is ``gather(_:into:)``'s gather.
    public func gather(
        _ range: Range<Int>, images: Buffer, labels batchLabels: Buffer, augmentation: Augmentation = .none,
        seed: UInt64 = 0, epoch: Int = 0
    ) throws {
        augmentedGather.range = range
        augmentedGather.augmentation = augmentation
        augmentedGather.padding = augmentation.crops ? Augmentation.padding(rows: rows, columns: columns) : 0
        (augmentedGather.seed, augmentedGather.epoch) = (seed, epoch)
        try device.gatherBatch(
            augmentedGather, pixels: pixels, labels: labels, order: order, images: images, batchLabels: batchLabels)
    }
}
