/// Random data augmentation applied to each image as a batch is gathered
/// (``Device/gatherBatch(_:pixels:labels:order:images:batchLabels:)``).
///
/// It is PyTorch's usual training pipeline
///
///     RandomCrop((rows, columns), padding: p), RandomHorizontalFlip(), ToTensor(), Normalize(mean, std)
///
/// on a byte image: the image is padded with p zero (black) bytes on every
/// side, a rows×columns window at offsets (dy, dx) ∈ [0, 2p]² is cut out,
/// flipped left–right with probability ½, and normalised. So for pixel
/// (c, y, x) of the output, with x' = columns − 1 − x when flipped, else x,
///
///     byte = pixels[c, y + dy − p, x' + dx − p]   (0 outside the image)
///     out  = Float(byte)·scale[c] − shift[c]
///
/// and a padded pixel becomes 0·scale[c] − shift[c] = −mean[c]/std[c], the
/// normalised value of black, as in PyTorch (not 0 in the normalised space).
public enum Augmentation: String, CaseIterable, Hashable, Sendable, Codable {
    /// The image as it is.
    case none
    /// A random crop from zero padding.
    case crop
    /// A random crop from zero padding, then a horizontal flip with probability ½.
    case cropFlip = "crop+flip"

    /// Whether the crop offsets are random (else dy = dx = p with p = 0: the image itself).
    public var crops: Bool { self != .none }
    /// Whether an image may be flipped.
    public var flips: Bool { self == .cropFlip }

    /// The crop's zero padding for images of rows×columns: 4 pixels when
    /// both sides are at least 32 (CIFAR-10's 32×32, as in He et al. 2016),
    /// else 2 (MNIST's and Fashion-MNIST's 28×28: 4 would cut away a
    /// seventh of a digit's width).
    public static func padding(rows: Int, columns: Int) -> Int { min(rows, columns) >= 32 ? 4 : 2 }
}

/// The random choices for one image of an epoch, from a counter-based hash:
/// no state on any device, the same choices on the host and in every OpenCL
/// kernel (32-bit integer arithmetic, exact everywhere).
///
/// With mix(x) the 32-bit finaliser `x ^= x >> 16; x *= 0x7feb352d;
/// x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16` (C. Wellons' "lowbias32",
/// a bijection with low bias), all arithmetic modulo 2³²:
///
///     key  = mix(mix(mix(low32(seed) ^ 0x9e3779b9) ^ high32(seed)) ^ epoch)
///     h    = mix(key ^ position)            (position in the epoch's order)
///     dy   = ((h >> 16)    · (2p + 1)) >> 16
///     dx   = ((h & 0xffff) · (2p + 1)) >> 16
///     flip = mix(h ^ 0x2545f491) >> 31      (only for ``Augmentation/cropFlip``)
///
/// dy and dx take each value of 0…2p for ⌊65536/(2p+1)⌋ or one more of the
/// 65,536 16-bit halves (a bias below 2⁻¹⁶). The key is computed once per
/// batch on the host; the kernels get it as one argument.
public struct AugmentationChoice: Hashable, Sendable {
    /// Crop offsets in the padded image, each in 0…2·padding.
    public var dy: Int, dx: Int
    /// Whether the crop is mirrored left–right.
    public var flip: Bool

    public init(dy: Int, dx: Int, flip: Bool) {
        self.dy = dy
        self.dx = dx
        self.flip = flip
    }

    /// The choice for the image at `position` of an epoch's order, given
    /// ``key(seed:epoch:)``, the padding p and whether flips happen.
    public init(key: UInt32, position: Int, padding: Int, flips: Bool) {
        let h = Self.mix(key ^ UInt32(truncatingIfNeeded: position))
        let span = UInt32(2 * padding + 1)
        dy = Int(((h >> 16) &* span) >> 16)
        dx = Int(((h & 0xffff) &* span) >> 16)
        flip = flips && Self.mix(h ^ 0x2545_f491) >> 31 == 1
    }

    /// The per-epoch key of every image's choice (see the type's formula).
    public static func key(seed: UInt64, epoch: Int) -> UInt32 {
        var k = mix(UInt32(truncatingIfNeeded: seed) ^ 0x9e37_79b9)
        k = mix(k ^ UInt32(truncatingIfNeeded: seed >> 32))
        return mix(k ^ UInt32(truncatingIfNeeded: epoch))
    }

    /// The "lowbias32" finaliser (the kernels' `AUGMENT_MIX`).
    public static func mix(_ value: UInt32) -> UInt32 {
        var x = value
        x ^= x >> 16
        x &*= 0x7feb_352d
        x ^= x >> 15
        x &*= 0x846c_a68b
        x ^= x >> 16
        return x
    }
}
