import CZlib
import Foundation

/// Why a gzip stream could not be decompressed.
public struct GzipError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, in zlib's words where it has them ("incorrect data
    /// check" is a bad CRC-32, "incorrect length check" a bad ISIZE).
    public var reason: String
    public var description: String { "gzip: \(reason)" }
}

/// gzip decompression with zlib.
public enum Gzip {
    /// True when `bytes` start with the gzip magic 1f 8b.
    public static func isGzip<D: DataProtocol>(_ bytes: D) -> Bool {
        var it = bytes.makeIterator()
        return it.next() == 0x1f && it.next() == 0x8b
    }

    /// Decompresses a gzip stream (one or more concatenated members, RFC 1952).
    ///
    /// zlib checks each member's header, its CRC-32 and its length (ISIZE);
    /// any mismatch, a truncated stream, or bytes after the last member that
    /// do not start another member are errors. `limit` bounds the output so
    /// that a small crafted input cannot demand gigabytes.
    public static func decompress(_ input: Data, limit: Int = 1 << 30) throws -> Data {
        var output = [UInt8]()
        output.reserveCapacity(min(limit, max(input.count * 4, 1 << 16)))
        try input.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress, raw.count > 0 else {
                throw GzipError(reason: "empty input")
            }
            var stream = z_stream()
            // 16 + MAX_WBITS: expect a gzip header and trailer (no zlib/raw).
            var status = inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
            guard status == Z_OK else { throw GzipError(reason: "inflateInit2 failed (\(status))") }
            defer { inflateEnd(&stream) }
            stream.next_in = UnsafeMutablePointer(mutating: base)
            stream.avail_in = uInt(raw.count)
            let chunk = 1 << 18
            var buffer = [UInt8](repeating: 0, count: chunk)
            while true {
                let produced: Int = buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(chunk)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return chunk - Int(stream.avail_out)
                }
                if output.count + produced > limit {
                    throw GzipError(reason: "decompressed size exceeds the limit of \(limit) bytes")
                }
                output.append(contentsOf: buffer[0..<produced])
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    let remaining = Int(stream.avail_in)
                    if remaining == 0 { return }
                    let next = stream.next_in!
                    if remaining >= 2 && next[0] == 0x1f && next[1] == 0x8b {
                        // Another member follows (gzip allows concatenation).
                        guard inflateReset(&stream) == Z_OK else { throw GzipError(reason: "inflateReset failed") }
                        continue
                    }
                    throw GzipError(reason: "\(remaining) bytes of trailing data after the gzip stream")
                case Z_BUF_ERROR:
                    // No progress possible: the input ended inside the stream.
                    if stream.avail_in == 0 {
                        throw GzipError(reason: "truncated stream (input ended before the gzip trailer)")
                    }
                    throw GzipError(reason: "inflate made no progress")
                case Z_DATA_ERROR:
                    let message = stream.msg.map { String(cString: $0) } ?? "invalid data"
                    let meaning =
                        message == "incorrect data check"
                        ? " (CRC-32 mismatch)"
                        : message == "incorrect length check" ? " (length mismatch)" : ""
                    throw GzipError(reason: "corrupt stream: \(message)\(meaning)")
                case Z_MEM_ERROR:
                    throw GzipError(reason: "out of memory")
                default:
                    throw GzipError(reason: "inflate failed (\(status))")
                }
            }
        }
        return Data(output)
    }
}
