import Foundation

/// What went wrong while drawing or writing a figure or the report.
public enum FigureError: Error, CustomStringConvertible, Equatable {
    /// cairo reported an error status; `context` says which step.
    case cairo(context: String, status: String)
    /// The input to a figure does not have the shape the figure needs.
    case invalidInput(figure: String, reason: String)
    /// Writing or renaming a file failed.
    case write(path: String, reason: String)

    public var description: String {
        switch self {
        case .cairo(let context, let status):
            return "cairo failed while \(context): \(status)"
        case .invalidInput(let figure, let reason):
            return "figure '\(figure)': invalid input: \(reason)"
        case .write(let path, let reason):
            return "could not write \(path): \(reason)"
        }
    }
}

/// Writes files atomically: the bytes go to a hidden temporary file in the
/// destination's folder, then one rename replaces the destination, so a reader
/// never sees a half-written file and an interrupted run leaves the old one.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try data.write(to: temporary)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw FigureError.write(path: url.path, reason: "\(error)")
        }
        // rename(2) replaces an existing destination in one step on POSIX.
        if rename(temporary.path, url.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw FigureError.write(
                path: url.path, reason: "rename from \(temporary.lastPathComponent) failed: \(reason)")
        }
    }
}
