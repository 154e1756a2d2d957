/// A labelled image set held on the host, as read from IDX files.
///
/// Pixels stay as bytes (0…255) so that a 60k-image set is 47 MB, not 188;
/// ``normalizedImages(_:)`` gives the network's input.
public struct Dataset: Sendable {
    /// Which set: "mnist" or "fashion-mnist", and "train" or "test".
    public var name: String
    public var count: Int
    public var rows: Int
    public var columns: Int
    /// count·rows·columns bytes, image-major, row-major within an image.
    public var pixels: [UInt8]
    /// count labels in 0…9.
    public var labels: [UInt8]

    public init(name: String, count: Int, rows: Int, columns: Int, pixels: [UInt8], labels: [UInt8]) {
        precondition(pixels.count == count * rows * columns && labels.count == count)
        self.name = name
        self.count = count
        self.rows = rows
        self.columns = columns
        self.pixels = pixels
        self.labels = labels
    }

    public var imageSize: Int { rows * columns }

    /// The normalisation every model input goes through: x/255, then
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

    /// Normalised float images for the given indices, (indices.count, 1, rows, columns).
    public func normalizedImages<C: Collection>(_ indices: C) -> [Float] where C.Element == Int {
        var out: [Float] = []
        normalizeImages(indices, into: &out)
        return out
    }

    /// ``normalizedImages(_:)`` into `out`, resized to fit: a loop that
    /// reuses one array allocates nothing (a fresh 200 kB array per training
    /// step cost page faults and zeroing on the host device).
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
        let scale = Dataset.pixelScale
        let shift = Dataset.pixelShift
        out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                // Raw pointers and a fixed-length inner loop: the compiler
                // vectorises the conversion (indexing the buffers did not: 3 ns
                // a pixel, 0.15 s of a 60k-image epoch).
                var target = dst.baseAddress!
                for i in indices {
                    let source = src.baseAddress! + i * imageSize
                    for p in 0..<imageSize { target[p] = Float(source[p]) * scale - shift }
                    target += imageSize
                }
            }
        }
    }

    /// The first `n` images and labels (or all when n ≥ count).
    public func prefix(_ n: Int) -> Dataset {
        let k = min(n, count)
        return Dataset(
            name: name, count: k, rows: rows, columns: columns,
            pixels: Array(pixels[0..<(k * imageSize)]), labels: Array(labels[0..<k]))
    }
}
