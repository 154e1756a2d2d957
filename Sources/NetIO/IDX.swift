import Foundation

/// Why an IDX file (MNIST's format) was rejected. Every case names the file.
public enum IDXError: Error, CustomStringConvertible, Equatable {
    case empty(file: String)
    case notAFile(file: String, reason: String)
    case unreadable(file: String, reason: String)
    case gzip(file: String, reason: String)
    /// Fewer bytes than the header needs (4 magic bytes + 4 per dimension).
    case truncatedHeader(file: String, bytes: Int, needed: Int)
    /// The first two magic bytes must be zero.
    case badMagic(file: String, magic: UInt32)
    case wrongElementType(file: String, code: UInt8)
    case wrongDimensionCount(file: String, found: Int, expected: Int)
    /// An image size other than the expected one (MNIST: 28×28).
    case wrongImageSize(file: String, rows: Int, columns: Int, expectedRows: Int, expectedColumns: Int)
    /// The dimensions' product overflows or exceeds what a file can hold.
    case dimensionsTooLarge(file: String, dimensions: [Int])
    /// Data shorter or longer than the header's dimensions say.
    case dataLength(file: String, expected: Int, actual: Int)
    case countMismatch(imagesFile: String, images: Int, labelsFile: String, labels: Int)
    case labelOutOfRange(file: String, label: Int, index: Int, classes: Int)

    public var description: String {
        switch self {
        case .empty(let file): return "\(file): empty file"
        case .notAFile(let file, let reason): return "\(file): not a readable file: \(reason)"
        case .unreadable(let file, let reason): return "\(file): cannot be read: \(reason)"
        case .gzip(let file, let reason): return "\(file): gzip decompression failed: \(reason)"
        case .truncatedHeader(let file, let bytes, let needed):
            return "\(file): truncated IDX header: \(bytes) bytes, the header needs \(needed)"
        case .badMagic(let file, let magic):
            return
                "\(file): not an IDX file: magic number 0x\(hex8(magic)), expected 0x00000803 (images) or 0x00000801 (labels)"
        case .wrongElementType(let file, let code):
            return
                "\(file): IDX element type 0x\(String(code, radix: 16, uppercase: false)), expected 0x08 (unsigned byte)"
        case .wrongDimensionCount(let file, let found, let expected):
            return "\(file): IDX file has \(found) dimensions, expected \(expected) (magic 0x0000080\(expected))"
        case .wrongImageSize(let file, let rows, let columns, let expectedRows, let expectedColumns):
            return "\(file): images are \(rows)×\(columns), expected \(expectedRows)×\(expectedColumns)"
        case .dimensionsTooLarge(let file, let dimensions):
            return "\(file): IDX dimensions \(dimensions.map(String.init).joined(separator: "×")) are too large"
        case .dataLength(let file, let expected, let actual):
            if actual < expected {
                return "\(file): truncated data: the header declares \(expected) bytes of data, the file has \(actual)"
            }
            return
                "\(file): \(actual - expected) bytes of trailing garbage after the \(expected) bytes of data the header declares"
        case .countMismatch(let imagesFile, let images, let labelsFile, let labels):
            return "\(imagesFile) has \(images) images but \(labelsFile) has \(labels) labels"
        case .labelOutOfRange(let file, let label, let index, let classes):
            return "\(file): label \(label) at index \(index) is outside 0…\(classes - 1)"
        }
    }
}

private func hex8(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - s.count)) + s
}

/// One IDX array: dimensions and unsigned-byte elements, row-major.
public struct IDXArray: Equatable, Sendable {
    public var dimensions: [Int]
    public var bytes: [UInt8]
}

/// Reads IDX files (http://yann.lecun.com/exdb/mnist/ "file formats"):
/// magic 00 00 TT DD (TT element type, DD number of dimensions), DD big-endian
/// UInt32 sizes, then the elements. Only TT = 0x08 (unsigned byte) is read,
/// the only type MNIST uses.
///
/// Gzip is recognised by content (1f 8b), not by name, so raw and .gz files
/// are read alike.
public enum IDXReader {
    /// Largest decompressed IDX file accepted (MNIST's largest is 47 MB).
    public static let maximumDecompressedSize = 1 << 30

    /// The raw IDX bytes of a file's content, decompressed when gzipped.
    /// `fileName` is used in error messages.
    public static func idxBytes(_ content: Data, fileName: String) throws -> Data {
        if content.isEmpty { throw IDXError.empty(file: fileName) }
        guard Gzip.isGzip(content) else { return content }
        do {
            let raw = try Gzip.decompress(content, limit: maximumDecompressedSize)
            if raw.isEmpty { throw IDXError.empty(file: fileName) }
            return raw
        } catch let error as GzipError {
            throw IDXError.gzip(file: fileName, reason: error.reason)
        }
    }

    /// Parses an IDX array from bytes (raw or gzip).
    ///
    /// Checks, in order: not empty; gzip integrity; a complete header; zero
    /// leading magic bytes; element type 0x08; `expectedDimensions` when
    /// given; and that the data length equals the product of the dimensions.
    public static func parse(_ content: Data, fileName: String, expectedDimensions: Int? = nil) throws -> IDXArray {
        let raw = try idxBytes(content, fileName: fileName)
        return try raw.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) -> IDXArray in
            let bytes = buffer.bindMemory(to: UInt8.self)
            guard bytes.count >= 4 else {
                throw IDXError.truncatedHeader(file: fileName, bytes: bytes.count, needed: 4)
            }
            let magic = UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])
            guard bytes[0] == 0, bytes[1] == 0 else { throw IDXError.badMagic(file: fileName, magic: magic) }
            guard bytes[2] == 0x08 else { throw IDXError.wrongElementType(file: fileName, code: bytes[2]) }
            let rank = Int(bytes[3])
            if let expected = expectedDimensions, rank != expected {
                throw IDXError.wrongDimensionCount(file: fileName, found: rank, expected: expected)
            }
            let headerSize = 4 + 4 * rank
            guard bytes.count >= headerSize else {
                throw IDXError.truncatedHeader(file: fileName, bytes: bytes.count, needed: headerSize)
            }
            var dimensions = [Int]()
            var total = 1
            var overflow = false
            for d in 0..<rank {
                let o = 4 + 4 * d
                let size = Int(
                    UInt32(bytes[o]) << 24 | UInt32(bytes[o + 1]) << 16 | UInt32(bytes[o + 2]) << 8
                        | UInt32(bytes[o + 3]))
                dimensions.append(size)
                let (product, didOverflow) = total.multipliedReportingOverflow(by: size)
                overflow = overflow || didOverflow
                total = product
            }
            if overflow { throw IDXError.dimensionsTooLarge(file: fileName, dimensions: dimensions) }
            let dataLength = bytes.count - headerSize
            guard dataLength == total else {
                throw IDXError.dataLength(file: fileName, expected: total, actual: dataLength)
            }
            return IDXArray(dimensions: dimensions, bytes: Array(bytes[headerSize...]))
        }
    }

    /// Reads a file's content, turning every file-system failure into an
    /// ``IDXError`` that names the file.
    public static func readFile(_ url: URL) throws -> Data {
        let name = url.lastPathComponent
        do {
            return try readWholeFile(at: url)
        } catch let error as FileIOError {
            switch error {
            case .isDirectory: throw IDXError.notAFile(file: name, reason: "\(url.path) is a folder")
            case .notRegularFile: throw IDXError.notAFile(file: name, reason: "\(url.path) is not a regular file")
            case .system(let path, let operation, let message):
                throw IDXError.unreadable(file: name, reason: "\(operation) \(path): \(message)")
            }
        }
    }

    /// Images from IDX bytes: three dimensions (count, rows, columns), each
    /// image `expectedRows`×`expectedColumns` when given.
    public static func images(_ content: Data, fileName: String, expectedRows: Int? = 28, expectedColumns: Int? = 28)
        throws -> (count: Int, rows: Int, columns: Int, pixels: [UInt8])
    {
        let array = try parse(content, fileName: fileName, expectedDimensions: 3)
        let (count, rows, columns) = (array.dimensions[0], array.dimensions[1], array.dimensions[2])
        if let r = expectedRows, let c = expectedColumns, rows != r || columns != c {
            throw IDXError.wrongImageSize(
                file: fileName, rows: rows, columns: columns, expectedRows: r, expectedColumns: c)
        }
        return (count, rows, columns, array.bytes)
    }

    /// Labels from IDX bytes: one dimension, every label in 0..<classes.
    public static func labels(_ content: Data, fileName: String, classes: Int = 10) throws -> [UInt8] {
        let array = try parse(content, fileName: fileName, expectedDimensions: 1)
        if let index = array.bytes.firstIndex(where: { Int($0) >= classes }) {
            throw IDXError.labelOutOfRange(
                file: fileName, label: Int(array.bytes[index]), index: index, classes: classes)
        }
        return array.bytes
    }

    /// A labelled set from an images file and a labels file (raw or gzip),
    /// with matching counts.
    public static func dataset(
        name: String, imagesFile: URL, labelsFile: URL,
        expectedRows: Int? = 28, expectedColumns: Int? = 28, classes: Int = 10
    ) throws -> Dataset {
        let imageSet = try images(
            readFile(imagesFile), fileName: imagesFile.lastPathComponent,
            expectedRows: expectedRows, expectedColumns: expectedColumns)
        let labelSet = try labels(readFile(labelsFile), fileName: labelsFile.lastPathComponent, classes: classes)
        guard imageSet.count == labelSet.count else {
            throw IDXError.countMismatch(
                imagesFile: imagesFile.lastPathComponent, images: imageSet.count,
                labelsFile: labelsFile.lastPathComponent, labels: labelSet.count)
        }
        return Dataset(
            name: name, count: imageSet.count, rows: imageSet.rows, columns: imageSet.columns,
            pixels: imageSet.pixels, labels: labelSet)
    }
}
