import GPUNet

extension NaiveReference {
    /// The random choices of `Augmentation`'s documented formula, written
    /// out again in 64-bit arithmetic with explicit 32-bit masks (not
    /// `AugmentationChoice`): h = mix(key ^ position) with
    /// key = mix(mix(mix(low ^ 0x9e3779b9) ^ high) ^ epoch); dy, dx the
    /// 16-bit halves of h scaled to 0…2p; flip the top bit of mix(h ^ 0x2545f491).
    public static func augmentationChoice(
        seed: UInt64, epoch: Int, position: Int, padding: Int, flips: Bool
    ) -> (dy: Int, dx: Int, flip: Bool) {
        let mask: UInt64 = 0xffff_ffff
        func mix(_ value: UInt64) -> UInt64 {
            var x = value & mask
            x ^= x >> 16
            x = (x * 0x7feb_352d) & mask
            x ^= x >> 15
            x = (x * 0x846c_a68b) & mask
            x ^= x >> 16
            return x
        }
        var key = mix((seed & mask) ^ 0x9e37_79b9)
        key = mix(key ^ (seed >> 32))
        key = mix(key ^ (UInt64(bitPattern: Int64(epoch)) & mask))
        let h = mix(key ^ (UInt64(bitPattern: Int64(position)) & mask))
        let span = UInt64(2 * padding + 1)
        let flip = flips && mix(h ^ 0x2545_f491) >> 31 == 1
        return (Int(((h >> 16) * span) >> 16), Int(((h & 0xffff) * span) >> 16), flip)
    }

    /// A batch gathered, augmented and normalised in float64: for k < range.count,
    /// n = order[range.lowerBound + k], and each channel c, row y, column x,
    ///
    ///     x'   = columns − 1 − x if the image is flipped, else x
    ///     byte = pixels[n, c, y + dy − p, x' + dx − p], or 0 outside the image
    ///     out[k, c, y, x] = (byte/255 − mean[c]) / std[c]
    ///
    /// with (dy, dx, flip) from ``augmentationChoice(seed:epoch:position:padding:flips:)``
    /// at position range.lowerBound + k (dy = dx = p = 0, no flip, for
    /// `Augmentation.none`). This is PyTorch's RandomCrop(padding: p) (zero
    /// bytes), RandomHorizontalFlip, ToTensor, Normalize, as a plain loop.
    public static func gatherBatch(
        pixels: [UInt8], channels: Int, rows: Int, columns: Int, order: [Int], range: Range<Int>,
        mean: [Double], standardDeviation: [Double], augmentation: Augmentation, padding: Int,
        seed: UInt64, epoch: Int
    ) -> [Double] {
        let plane = rows * columns
        let imageSize = channels * plane
        let p = augmentation == .none ? 0 : padding
        var out: [Double] = []
        out.reserveCapacity(range.count * imageSize)
        for position in range {
            let n = order[position]
            let choice =
                augmentation == .none
                ? (dy: 0, dx: 0, flip: false)
                : augmentationChoice(
                    seed: seed, epoch: epoch, position: position, padding: p, flips: augmentation == .cropFlip)
            for c in 0..<channels {
                for y in 0..<rows {
                    for x in 0..<columns {
                        let sy = y + choice.dy - p
                        let sx = (choice.flip ? columns - 1 - x : x) + choice.dx - p
                        var byte = 0.0
                        if sy >= 0 && sy < rows && sx >= 0 && sx < columns {
                            byte = Double(pixels[n * imageSize + c * plane + sy * columns + sx])
                        }
                        out.append((byte / 255 - mean[c]) / standardDeviation[c])
                    }
                }
            }
        }
        return out
    }
}
