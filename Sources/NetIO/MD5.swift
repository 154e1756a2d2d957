import Foundation

/// MD5 (RFC 1321), used only to recognise known data files (not for security).
///
/// The message is padded with a 1 bit, zeros to 56 mod 64 bytes, and its bit
/// length as a little-endian UInt64; each 64-byte block goes through 64 steps
/// a = b + ((a + F(b,c,d) + K[i] + M[g]) <<< s[i]).
public struct MD5 {
    private var state: (UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476)
    private var pending = [UInt8]()
    private var length: UInt64 = 0

    private static let shifts: [UInt32] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
        5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ]
    /// K[i] = floor(2^32 · |sin(i + 1)|).
    private static let constants: [UInt32] = (0..<64).map {
        UInt32(truncatingIfNeeded: Int64(abs(sin(Double($0 + 1))) * 4_294_967_296))
    }

    public init() {}

    /// Feeds more bytes.
    public mutating func update<D: DataProtocol>(_ data: D) {
        length &+= UInt64(data.count)
        for region in data.regions {
            region.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                var bytes = raw[...]
                if !pending.isEmpty {
                    let take = min(64 - pending.count, bytes.count)
                    pending.append(contentsOf: bytes.prefix(take))
                    bytes = bytes.dropFirst(take)
                    if pending.count == 64 {
                        pending.withUnsafeBytes { processBlock(UnsafeRawBufferPointer(rebasing: $0[...])) }
                        pending.removeAll(keepingCapacity: true)
                    }
                }
                while bytes.count >= 64 {
                    processBlock(UnsafeRawBufferPointer(rebasing: bytes.prefix(64)))
                    bytes = bytes.dropFirst(64)
                }
                pending.append(contentsOf: bytes)
            }
        }
    }

    /// The 16-byte digest of everything fed so far.
    public func finalize() -> [UInt8] {
        var copy = self
        let bitLength = length &* 8
        var tail: [UInt8] = [0x80]
        let padded = (pending.count + 1) % 64
        tail += [UInt8](repeating: 0, count: padded <= 56 ? 56 - padded : 120 - padded)
        for i in 0..<8 { tail.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        copy.update(tail)
        var out = [UInt8]()
        for word in [copy.state.0, copy.state.1, copy.state.2, copy.state.3] {
            for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: word >> (8 * UInt32(i)))) }
        }
        return out
    }

    /// The digest as 32 lowercase hex digits.
    public func hexDigest() -> String { finalize().map { String(format: "%02x", $0) }.joined() }

    /// The hex digest of `data`.
    public static func hex<D: DataProtocol>(_ data: D) -> String {
        var md5 = MD5()
        md5.update(data)
        return md5.hexDigest()
    }

    private mutating func processBlock(_ block: UnsafeRawBufferPointer) {
        // Message word g of the block, little-endian.
        @inline(__always) func m(_ g: Int) -> UInt32 {
            UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4 * g, as: UInt32.self))
        }
        var (a, b, c, d) = state
        MD5.constants.withUnsafeBufferPointer { k in
            MD5.shifts.withUnsafeBufferPointer { shift in
                for i in 0..<64 {
                    var f: UInt32
                    let g: Int
                    switch i {
                    case 0..<16:
                        f = (b & c) | (~b & d)
                        g = i
                    case 16..<32:
                        f = (d & b) | (~d & c)
                        g = (5 * i + 1) & 15
                    case 32..<48:
                        f = b ^ c ^ d
                        g = (3 * i + 5) & 15
                    default:
                        f = c ^ (b | ~d)
                        g = (7 * i) & 15
                    }
                    f = f &+ a &+ k[i] &+ m(g)
                    a = d
                    d = c
                    c = b
                    let s = shift[i]
                    b = b &+ ((f << s) | (f >> (32 - s)))
                }
            }
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d)
    }
}
