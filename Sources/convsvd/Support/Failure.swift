import Analysis
import ArgumentParser
import Foundation
import GPUNet
import NetIO

/// The tool's exit codes (also in `convsvd --help` and the README).
enum Exit {
    static let checkFailed: Int32 = 1
    static let badInput: Int32 = 2
    static let device: Int32 = 3
    static let diverged: Int32 = 4
    static let output: Int32 = 5
    static let usage: Int32 = 64
    static let interrupted: Int32 = 130
}

/// An error the tool reports with its own exit code.
struct ToolError: Error, CustomStringConvertible {
    var code: Int32
    var description: String
}

/// Runs a command's body; any error is printed as one clear line on
/// standard error and turned into the documented exit code.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        log("convsvd: error: \(error)")
        throw ExitCode(exitCode(for: error))
    }
}

func exitCode(for error: Error) -> Int32 {
    switch error {
    case let e as ToolError: return e.code
    case is ValidationError, is KernelFamilyError: return Exit.usage
    case let e as TrainingError:
        switch e {
        case .invalidSetting: return Exit.usage
        case .nonFiniteLoss: return Exit.diverged
        case .interrupted: return Exit.interrupted
        case .resume: return Exit.badInput
        }
    case is OpenCLError, is DeviceSelectionError: return Exit.device
    case is IDXError, is SafetensorsError, is DatasetError: return Exit.badInput
    case let e as NetworkAnalysisError:
        if case .networkOutputSize = e { return Exit.device }
        return Exit.badInput
    case is FileIOError, is OutputFolderLockError: return Exit.output
    default: return Exit.checkFailed
    }
}

/// The output folders this process has locked; never released before exit,
/// so the kernel drops each lock when the process ends, however it ends.
private var heldOutputLocks: [OutputFolderLock] = []

/// Makes `--out` usable: a folder (created if missing), never an existing
/// file, and locked for this process's life (``OutputFolderLock``), so a
/// second process writing into it is refused with exit 5. `lock: false` is
/// for the processes of a job that already holds the lock: the ranks of an
/// MPI job other than rank 0 (which alone writes), a study's member
/// processes (whose parent holds the study's folder).
func prepareOutputDirectory(_ path: String, lock: Bool = true) throws -> URL {
    let url = URL(fileURLWithPath: path)
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
        throw ToolError(code: Exit.output, description: "--out \(path) is an existing file; give a folder")
    }
    do {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    } catch {
        throw ToolError(
            code: Exit.output, description: "cannot create the output folder \(path): \(error.localizedDescription)")
    }
    guard FileManager.default.isWritableFile(atPath: url.path) else {
        throw ToolError(code: Exit.output, description: "the output folder \(path) is not writable")
    }
    if lock { heldOutputLocks.append(try OutputFolderLock(directory: url)) }
    return url
}
