import Foundation
import NetIO

/// C ← α·op(A)·op(B) + β·C with op(A) m×k, op(B) k×n, C m×n, row-major.
public struct GEMMShape: Hashable, Sendable, CustomStringConvertible {
    public var m: Int, n: Int, k: Int
    public var transposeA: Bool, transposeB: Bool
    public var alpha: Float, beta: Float
    public init(
        m: Int, n: Int, k: Int, transposeA: Bool = false, transposeB: Bool = false,
        alpha: Float = 1, beta: Float = 0
    ) {
        self.m = m
        self.n = n
        self.k = k
        self.transposeA = transposeA
        self.transposeB = transposeB
        self.alpha = alpha
        self.beta = beta
    }
    /// 2·m·n·k: the multiply-adds of the product.
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    public var description: String {
        "\(m)×\(n)×\(k)\(transposeA ? " Aᵀ" : "")\(transposeB ? " Bᵀ" : "")"
    }
}

/// A stride-1, unpadded convolution: input (B,C,H,W), weight (O,C,kH,kW),
/// output (B,O,H−kH+1,W−kW+1).
public struct ConvShape: Hashable, Sendable {
    public var batch: Int, inChannels: Int, outChannels: Int
    public var height: Int, width: Int
    public var kernelHeight: Int, kernelWidth: Int
    public init(
        batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int,
        kernelHeight: Int = 3, kernelWidth: Int = 3
    ) {
        self.batch = batch
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.height = height
        self.width = width
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
    }
    public var outHeight: Int { height - kernelHeight + 1 }
    public var outWidth: Int { width - kernelWidth + 1 }
    /// C·kH·kW: the length of one patch, the columns' row count.
    public var patchSize: Int { inChannels * kernelHeight * kernelWidth }
    /// B·oH·oW: the number of patches, the columns' column count.
    public var patchCount: Int { batch * outHeight * outWidth }
    public var inputCount: Int { batch * inChannels * height * width }
    public var outputCount: Int { batch * outChannels * outHeight * outWidth }
    public var weightCount: Int { outChannels * patchSize }
    /// 2·O·patchSize·patchCount: one forward pass (each backward pass is the same).
    public var flops: Double { 2 * Double(outChannels) * Double(patchSize) * Double(patchCount) }
}

/// 2×2, stride-2 max-pooling of (B,C,H,W) to (B,C,H/2,W/2), floor mode.
public struct PoolShape: Hashable, Sendable {
    public var batch: Int, channels: Int, height: Int, width: Int
    public init(batch: Int, channels: Int, height: Int, width: Int) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
    }
    public var outHeight: Int { height / 2 }
    public var outWidth: Int { width / 2 }
    public var inputCount: Int { batch * channels * height * width }
    public var outputCount: Int { batch * channels * outHeight * outWidth }
}

/// The gradient of a convolution's output (B,O,oH,oW) when a 2×2 max-pool
/// follows it: `values[b,o,q]` at the winner `argmax[b,o,q]` (a flat
/// `y·oW + x` in the output plane, as ``Device/maxPool2Forward(_:input:output:argmax:)``
/// writes it) of each pool window q, zero at every other pixel; with
/// `reluOutput`, also zero where `reluOutput[b,o,q]` ≤ 0.
public struct PooledGradient {
    /// The pool over the convolution's output: (B, O, oH, oW) → (B, O, oH/2, oW/2).
    public var pool: PoolShape
    /// ∂L/∂pooled, (B, O, oH/2, oW/2).
    public var values: Buffer
    /// The pool's winners (int32), (B, O, oH/2, oW/2).
    public var argmax: Buffer
    /// When a ReLU follows the pool (``Device/conv2dMaxPool2Forward(_:input:weight:pooled:argmax:relu:)``
    /// with `relu`), its output, (B, O, oH/2, oW/2): `values` is then the
    /// gradient of the ReLU's output and passes where this is > 0, as
    /// ``Device/reluBackward(count:output:gradOutput:gradInput:)`` would
    /// pass it, fused into the backward passes. nil: `values` is ∂L/∂pooled.
    public var reluOutput: Buffer?
    public init(pool: PoolShape, values: Buffer, argmax: Buffer, reluOutput: Buffer? = nil) {
        self.pool = pool
        self.values = values
        self.argmax = argmax
        self.reluOutput = reluOutput
    }
    /// True when `pool` is the pool over `conv`'s output.
    public func matches(_ conv: ConvShape) -> Bool {
        pool.batch == conv.batch && pool.channels == conv.outChannels
            && pool.height == conv.outHeight && pool.width == conv.outWidth
    }
}

/// A fully connected layer: input (B,in), weight (out,in), bias (out).
public struct LinearShape: Hashable, Sendable {
    public var batch: Int, inFeatures: Int, outFeatures: Int
    public init(batch: Int, inFeatures: Int, outFeatures: Int) {
        self.batch = batch
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
    }
    public var flops: Double { 2 * Double(batch) * Double(inFeatures) * Double(outFeatures) }
}

/// One batch of ``Device/gatherBatch(_:pixels:labels:order:images:batchLabels:)``:
/// the set's size, which slice of the order it takes, the image's geometry,
/// the per-channel normalisation and the augmentation.
public struct BatchGatherShape: Hashable, Sendable {
    /// Images in the set (the length of its labels; pixels hold count·imageSize bytes).
    public var count: Int
    /// Pixels per image, channels·rows·columns (784 for MNIST, 3,072 for CIFAR-10).
    public var imageSize: Int
    /// Positions in the order buffer: the batch is order[range].
    public var range: Range<Int>
    /// Channel c's bytes x ↦ x·scales[c] − shifts[c] (one entry per channel,
    /// ``NetIO/Normalization/pixelScales`` and ``NetIO/Normalization/pixelShifts``).
    public var scales: [Float], shifts: [Float]
    /// A channel plane's rows and columns. Only an augmentation reads them;
    /// ``init(count:imageSize:range:scale:shift:)`` sets 1 × imageSize.
    public var rows: Int, columns: Int
    /// What is done to each image before it is normalised (``Augmentation``).
    public var augmentation: Augmentation
    /// The crop's zero padding p (offsets in 0…2p); read only when ``augmentation`` crops.
    public var padding: Int
    /// The run's seed and the epoch: with each image's position in the
    /// order they pick its crop and flip (``AugmentationChoice``).
    public var seed: UInt64, epoch: Int

    /// One channel, no augmentation; MNIST's normalisation by default
    /// (``NetIO/Dataset/pixelScale`` and ``NetIO/Dataset/pixelShift``, the
    /// constants the host uses).
    public init(
        count: Int, imageSize: Int, range: Range<Int>,
        scale: Float = Dataset.pixelScale, shift: Float = Dataset.pixelShift
    ) {
        self.count = count
        self.imageSize = imageSize
        self.range = range
        scales = [scale]
        shifts = [shift]
        rows = 1
        columns = imageSize
        augmentation = .none
        padding = 0
        seed = 0
        epoch = 0
    }

    /// Images of `scales.count` channel planes of rows×columns, normalised
    /// per channel and augmented with `augmentation` (padding: by default
    /// ``Augmentation/padding(rows:columns:)``; 0 whatever is given when
    /// the augmentation does not crop).
    public init(
        count: Int, rows: Int, columns: Int, range: Range<Int>, scales: [Float], shifts: [Float],
        augmentation: Augmentation = .none, padding: Int? = nil, seed: UInt64 = 0, epoch: Int = 0
    ) {
        self.count = count
        imageSize = scales.count * rows * columns
        self.range = range
        self.scales = scales
        self.shifts = shifts
        self.rows = rows
        self.columns = columns
        self.augmentation = augmentation
        self.padding = augmentation.crops ? padding ?? Augmentation.padding(rows: rows, columns: columns) : 0
        self.seed = seed
        self.epoch = epoch
    }

    /// ``init(count:rows:columns:range:scales:shifts:augmentation:padding:seed:epoch:)``
    /// with a set's normalisation (one channel per entry).
    public init(
        count: Int, rows: Int, columns: Int, range: Range<Int>, normalization: Normalization,
        augmentation: Augmentation = .none, padding: Int? = nil, seed: UInt64 = 0, epoch: Int = 0
    ) {
        self.init(
            count: count, rows: rows, columns: columns, range: range, scales: normalization.pixelScales,
            shifts: normalization.pixelShifts, augmentation: augmentation, padding: padding, seed: seed,
            epoch: epoch)
    }

    /// Colour planes per image.
    public var channels: Int { scales.count }
    /// The first channel's scale and shift: a one-channel shape's x ↦ x·scale − shift.
    public var scale: Float {
        get { scales[0] }
        set { scales[0] = newValue }
    }
    public var shift: Float {
        get { shifts[0] }
        set { shifts[0] = newValue }
    }
    /// Images in the batch.
    public var batch: Int { range.count }
    /// Floats in the batch's images.
    public var outputCount: Int { range.count * imageSize }
    /// Whether this is the plain one-channel gather (scale, shift, no augmentation).
    public var isPlain: Bool { scales.count == 1 && augmentation == .none }
    /// ``AugmentationChoice/key(seed:epoch:)`` of this batch's epoch.
    public var augmentationKey: UInt32 { AugmentationChoice.key(seed: seed, epoch: epoch) }
    /// The choice for the image at position k of the batch (order[range.lowerBound + k]).
    public func choice(_ k: Int) -> AugmentationChoice {
        guard augmentation.crops else { return AugmentationChoice(dy: 0, dx: 0, flip: false) }
        return AugmentationChoice(
            key: augmentationKey, position: range.lowerBound + k, padding: padding, flips: augmentation.flips)
    }
    /// The largest padding a shape may ask for (2p + 1 times a 16-bit half fits in 32 bits).
    public static let maximumPadding = 4096

    /// Why the shape is not one a device can gather, or nil: counts,
    /// geometry, normalisation and padding checked together.
    public var problem: String? {
        if count < 0 || range.lowerBound < 0 { return "count \(count), range \(range)" }
        if scales.isEmpty || scales.count != shifts.count {
            return "\(scales.count) scales and \(shifts.count) shifts (one each per channel)"
        }
        if rows < 1 || columns < 1 || channels * rows * columns != imageSize {
            return "image size \(imageSize) is not \(channels) channels × \(rows) × \(columns)"
        }
        if padding < 0 || padding > Self.maximumPadding || (!augmentation.crops && padding != 0) {
            return
                "padding \(padding) with augmentation \(augmentation.rawValue) (0…\(Self.maximumPadding) when cropping)"
        }
        return nil
    }
}

/// A factor of a weight trained in SVD coordinates: `rows` × `rank`,
/// row-major (U: out × r, V: in·kH·kW × r, and their gradients).
public struct SVDFactorShape: Hashable, Sendable, CustomStringConvertible {
    public var rows: Int, rank: Int
    public init(rows: Int, rank: Int) {
        self.rows = rows
        self.rank = rank
    }
    public var count: Int { rows * rank }
    public var isValid: Bool { rows >= 1 && rank >= 1 }
    public var description: String { "\(rows)×\(rank)" }
}
