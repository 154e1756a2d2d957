import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an output folder could not be locked.
public enum OutputFolderLockError: Error, CustomStringConvertible, Equatable {
    /// Another process holds the folder's lock; `holder` is what that process
    /// wrote into the lock file ("pid 1234: convsvd train …"), nil when it
    /// had not written it yet.
    case held(directory: String, holder: String?)
    /// The lock file could not be opened or locked.
    case system(path: String, operation: String, message: String)

    public var description: String {
        switch self {
        case .held(let directory, let holder):
            return
                "the output folder \(directory) is in use by another process (\(holder ?? "its pid is not written yet")); "
                + "wait for it to finish, or give another --out"
        case .system(let path, let operation, let message):
            return "\(path): \(operation) failed: \(message)"
        }
    }
}

/// An advisory lock (`flock`, exclusive) on the file ``fileName`` in an
/// output folder, so that two processes never write into one folder at once
/// (one run's checkpoint beside the other's metrics).
///
/// The lock belongs to the open file, not to the path: it is released when
/// the lock is deinitialised, when the process exits, and by the kernel when
/// the process is killed, so a crash never leaves a folder locked. The file
/// itself stays behind (removing it would let a process that opened the old
/// file and one that creates a new one both hold "the" lock); after taking
/// the lock the holder writes its pid and command line into it, so that a
/// refused process can name it. The descriptor is close-on-exec, so a child
/// such as curl does not inherit the lock.
public final class OutputFolderLock {
    /// The lock file's name inside the folder.
    public static let fileName = ".convsvd.lock"

    public let directory: URL
    private let descriptor: Int32

    /// Takes the lock on `directory` (which must exist) without waiting, and
    /// writes "pid <pid>: <command>" into the lock file. Throws
    /// ``OutputFolderLockError/held(directory:holder:)`` when another open
    /// file, in this process or another, holds it.
    public init(directory: URL, command: String = CommandLine.arguments.joined(separator: " ")) throws {
        let path = directory.appendingPathComponent(Self.fileName).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 {
            throw OutputFolderLockError.system(
                path: path, operation: "opening the lock file", message: String(cString: strerror(errno)))
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK {
                let holder = (try? readWholeFile(at: URL(fileURLWithPath: path)))
                    .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
                close(fd)
                throw OutputFolderLockError.held(
                    directory: directory.path, holder: holder?.isEmpty == false ? holder : nil)
            }
            close(fd)
            throw OutputFolderLockError.system(
                path: path, operation: "locking", message: String(cString: strerror(code)))
        }
        // Who holds it, for the message of a refused process; not the lock itself.
        let text = Array("pid \(getpid()): \(command)\n".utf8)
        if ftruncate(fd, 0) == 0 { _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) } }
        self.directory = directory
        self.descriptor = fd
    }

    deinit { close(descriptor) }
}
