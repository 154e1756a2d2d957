/// A labelled image set held on the host, as read from IDX or CIFAR-10 files.
///
/// Pixels stay as bytes (0…255) so that a 60k-image set is 47 MB, not 188;
/// ``normalizedImages(_:)`` gives the network's input.
public struct Dataset: Sendable {
    /// Which set: the ``DatasetKind`` raw value ("mnist", "fashion-mnist",
    /// "cifar10"), a slash, and "train" or "test".
    public var name: String
    public var count: Int
    /// Colour planes per image: 1 for MNIST and Fashion-MNIST, 3 (R, G, B) for CIFAR-10.
    public var channels: Int
    public var rows: Int
    public var columns: Int
    /// count·channels·rows·columns bytes: image-major, then channel planes
    /// (NCHW), row-major within a plane.
    public var pixels: [UInt8]
    /// count labels in 0…9.
    public var labels: [UInt8]
    /// The per-channel mean and standard deviation that ``normalizeImages(_:into:)``
    /// applies (one entry per channel).
    public var normalization: Normalization

    public init(
        name: String, count: Int, channels: Int = 1, rows: Int, columns: Int, pixels: [UInt8], labels: [UInt8],
        normalization: Normalization = .mnist
    ) {
        precondition(channels >= 1 && normalization.channels == channels)
        precondition(pixels.count == count * channels * rows * columns && labels.count == count)
        self.name = name
        self.count = count
        self.channels = channels
        self.rows = rows
        self.columns = columns
        self.pixels = pixels
        self.labels = labels
        self.normalization = normalization
    }

    /// Bytes (and floats once normalised) per image: channels·rows·columns.
    public var imageSize: Int { channels * rows * columns }
    /// Bytes per channel plane: rows·columns.
    public var planeSize: Int { rows * columns }

    /// MNIST's normalisation, the default of ``normalization``: x/255, then
    /// (x − mean)/std with MNIST's training mean 0.1307 and std 0.3081
    /// (the constants PyTorch's MNIST examples use).
    public static let mean: Float = 0.1307
    public static let standardDeviation: Float = 0.3081
    /// x·pixelScale − pixelShift is a byte x normalised: 1/(255·std) and
    /// mean/std, each rounded to float32 once. Devices that normalise on
    /// their side use these same two floats, so that they match the host
    /// bit for bit.
    public static let pixelScale: Float = 1 / (255 * standardDeviation)
    public static let pixelShift: Float = mean / standardDeviation

    /// Normalised float images for the given indices, (indices.count, channels, rows, columns).
    public func normalizedImages<C: Collection>(_ indices: C) -> [Float] where C.Element == Int {
        var out: [Float] = []
        normalizeImages(indices, into: &out)
        return out
    }

    /// ``normalizedImages(_:)`` into `out`, resized to fit: a loop that
    /// reuses one array allocates nothing (a fresh 200 kB array per training
    /// step cost page faults and zeroing on the host device). Channel c's
    /// bytes x become x·scale[c] − shift[c] (``Normalization/pixelScales``,
    /// ``Normalization/pixelShifts``); for MNIST these are
    /// ``pixelScale`` and ``pixelShift``, bit for bit.
    public func normalizeImages<C: Collection>(_ indices: C, into out: inout [Float]) where C.Element == Int {
        let count = indices.count * imageSize
        if out.count != count {
            if out.count > count {
                out.removeLast(out.count - count)
            } else {
                out += repeatElement(0, count: count - out.count)
            }
        }
        guard !indices.isEmpty else { return }
        let scales = normalization.pixelScales
        let shifts = normalization.pixelShifts
        let (imageSize, planeSize) = (imageSize, planeSize)
        out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                // Raw pointers and a fixed-length inner loop: the compiler
                // vectorises the conversion (indexing the buffers did not: 3 ns
                // a pixel, 0.15 s of a 60k-image epoch).
                var target = dst.baseAddress!
                for i in indices {
                    var source = src.baseAddress! + i * imageSize
                    for c in 0..<scales.count {
                        let (scale, shift) = (scales[c], shifts[c])
                        for p in 0..<planeSize { target[p] = Float(source[p]) * scale - shift }
                        source += planeSize
                        target += planeSize
                    }
                }
            }
        }
    }

    /// The first `n` images and labels (or all when n ≥ count).
    public func prefix(_ n: Int) -> Dataset {
        let k = min(n, count)
        return Dataset(
            name: name, count: k, channels: channels, rows: rows, columns: columns,
            pixels: Array(pixels[0..<(k * imageSize)]), labels: Array(labels[0..<k]), normalization: normalization)
    }
}
