import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file could not be written or read as a whole.
public enum FileIOError: Error, CustomStringConvertible, Equatable {
    /// `operation` on `path` failed with the system's message.
    case system(path: String, operation: String, message: String)
    /// A folder stands where a file is expected.
    case isDirectory(path: String)
    /// Something other than a regular file (a FIFO, a device) stands there.
    case notRegularFile(path: String)

    public var description: String {
        switch self {
        case .system(let path, let operation, let message): return "\(path): \(operation) failed: \(message)"
        case .isDirectory(let path): return "\(path): is a folder, expected a file"
        case .notRegularFile(let path): return "\(path): is not a regular file"
        }
    }
}

private func errnoMessage(_ code: Int32) -> String { String(cString: strerror(code)) }

/// Writes `data` to `url` so that a reader sees either the old file or the
/// complete new one, never a part.
///
/// Steps: create a unique temporary file in the same folder (so that the final
/// rename stays within one file system and is atomic), write every byte,
/// `fsync` it, `rename` it over `url`, then `fsync` the folder so that the
/// rename itself survives a crash. On any failure the temporary file is
/// removed and an existing file at `url` is left untouched.
///
/// The new file gets mode 0644 (less the umask).
public func writeAtomically(_ data: Data, to url: URL) throws {
    let path = url.path
    let folder = url.deletingLastPathComponent().path
    let template = folder + "/." + url.lastPathComponent + ".tmp-XXXXXX"
    var templateBytes = Array(template.utf8CString)
    let fd = templateBytes.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    if fd < 0 {
        throw FileIOError.system(
            path: path, operation: "creating a temporary file in \(folder)", message: errnoMessage(errno))
    }
    let temporaryPath = String(cString: templateBytes)
    var closed = false
    var renamed = false
    defer {
        if !closed { close(fd) }
        if !renamed { unlink(temporaryPath) }
    }
    // mkstemp creates 0600; a data file should be readable like any other.
    let mask = umask(0)
    umask(mask)
    fchmod(fd, 0o644 & ~mask)

    try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileIOError.system(path: path, operation: "writing", message: errnoMessage(errno))
            }
            offset += n
        }
    }
    if fsync(fd) != 0 {
        throw FileIOError.system(path: path, operation: "fsync", message: errnoMessage(errno))
    }
    closed = true
    if close(fd) != 0 {
        throw FileIOError.system(path: path, operation: "closing", message: errnoMessage(errno))
    }
    if rename(temporaryPath, path) != 0 {
        let code = errno
        if code == EISDIR || code == ENOTEMPTY || code == EEXIST { throw FileIOError.isDirectory(path: path) }
        throw FileIOError.system(
            path: path, operation: "renaming the temporary file into place", message: errnoMessage(code))
    }
    renamed = true
    // Persist the directory entry; a failure here leaves the new file in
    // place, so it is not reported as a failed write.
    let folderFD = open(folder, O_RDONLY | O_DIRECTORY)
    if folderFD >= 0 {
        fsync(folderFD)
        close(folderFD)
    }
}

/// Reads a whole regular file with POSIX calls, so that every failure carries
/// the system's own reason (a folder, a permission, an I/O error) and the path.
///
/// The size is not trusted in advance (files in /proc report 0): the file is
/// read until end of file.
public func readWholeFile(at url: URL) throws -> Data {
    let path = url.path
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        let code = errno
        if code == EISDIR { throw FileIOError.isDirectory(path: path) }
        throw FileIOError.system(path: path, operation: "opening", message: errnoMessage(code))
    }
    defer { close(fd) }
    var info = stat()
    if fstat(fd, &info) != 0 {
        throw FileIOError.system(path: path, operation: "stat", message: errnoMessage(errno))
    }
    let kind = info.st_mode & S_IFMT
    if kind == S_IFDIR { throw FileIOError.isDirectory(path: path) }
    if kind != S_IFREG { throw FileIOError.notRegularFile(path: path) }

    var bytes = [UInt8]()
    bytes.reserveCapacity(max(Int(info.st_size), 0))
    let chunk = 1 << 20
    var buffer = [UInt8](repeating: 0, count: chunk)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, chunk) }
        if n < 0 {
            if errno == EINTR { continue }
            throw FileIOError.system(path: path, operation: "reading", message: errnoMessage(errno))
        }
        if n == 0 { break }
        bytes.append(contentsOf: buffer[0..<n])
    }
    return Data(bytes)
}
