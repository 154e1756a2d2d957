import Foundation

/// Built program binaries on disk, so that a second run skips the OpenCL C
/// compiler (seconds on PoCL) and loads the binary (hundredths of a second).
///
/// An entry is keyed by the device name, its driver version and a 64-bit
/// FNV-1a hash of (source, build options): a new driver or any change of a
/// kernel makes a new key. Files are written atomically (temporary file, then
/// rename) and carry their length and checksum, so a truncated or corrupt
/// entry is detected and rebuilt from source instead of reaching the driver.
public struct OpenCLProgramCache: Sendable {
    /// Where entries live.
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// `$CONVSVD_KERNEL_CACHE`, else `$XDG_CACHE_HOME/convsvd/kernels`, else
    /// `~/.cache/convsvd/kernels`.
    public static var defaultDirectory: URL {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["CONVSVD_KERNEL_CACHE"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg, isDirectory: true).appendingPathComponent("convsvd/kernels")
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/convsvd/kernels")
    }

    /// The file for one (device, driver, source, options).
    public func entryURL(deviceName: String, driverVersion: String, source: String, options: String) -> URL {
        let hash = Self.fnv1a64(Array(source.utf8) + [0] + Array(options.utf8))
        let name =
            "\(Self.fileSafe(deviceName))-\(Self.fileSafe(driverVersion))-\(String(format: "%016llx", hash)).clbin"
        return directory.appendingPathComponent(name)
    }

    /// What reading an entry found.
    enum Lookup {
        case hit([UInt8])
        case missing
        /// The file exists but its header, length or checksum is wrong.
        case corrupt(String)
    }

    func read(_ url: URL) -> Lookup {
        guard let data = try? Data(contentsOf: url) else { return .missing }
        let bytes = [UInt8](data)
        let magic = Array(Self.magic.utf8)
        guard bytes.count >= magic.count + 16, Array(bytes[0..<magic.count]) == magic else {
            return .corrupt("bad header")
        }
        let length = Self.uint64(bytes, at: magic.count)
        let checksum = Self.uint64(bytes, at: magic.count + 8)
        let payload = Array(bytes[(magic.count + 16)...])
        guard UInt64(payload.count) == length else {
            return .corrupt("length \(payload.count), header says \(length)")
        }
        guard Self.fnv1a64(payload) == checksum else { return .corrupt("checksum mismatch") }
        return .hit(payload)
    }

    /// Writes an entry atomically; returns why it could not, or nil.
    func write(_ binary: [UInt8], to url: URL) -> String? {
        var bytes = Array(Self.magic.utf8)
        bytes += Self.littleEndian(UInt64(binary.count))
        bytes += Self.littleEndian(Self.fnv1a64(binary))
        bytes += binary
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(bytes).write(to: url, options: .atomic)
            return nil
        } catch {
            return "could not write the kernel cache entry \(url.path): \(error.localizedDescription)"
        }
    }

    private static let magic = "CONVSVD-CLBIN-1\n"

    static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    private static func fileSafe(_ text: String) -> String {
        String(text.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "_" ? $0 : "_" }.prefix(60))
    }

    private static func littleEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    private static func uint64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
}
