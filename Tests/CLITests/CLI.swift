import Foundation
import XCTest

/// Runs the built `convsvd` binary (it sits beside the test bundle in the
/// build folder) and captures what it prints and its exit status.
struct CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var output: String { stdout + stderr }
    }

    static var binary: URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // On Linux the test runner is the .xctest file itself; elsewhere it may be nested.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("convsvd").path), dir.path != "/" {
            dir.deleteLastPathComponent()
        }
        return dir.appendingPathComponent("convsvd")
    }

    /// Starts the tool (or `executable`, e.g. mpirun); the caller waits or signals.
    static func start(_ arguments: [String], environment: [String: String] = [:], executable: URL? = nil) throws
        -> (process: Process, stdout: Pipe, stderr: Pipe)
    {
        let p = Process()
        p.executableURL = executable ?? binary
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        p.environment = env
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    /// Runs the tool to completion.
    static func run(_ arguments: [String], environment: [String: String] = [:], executable: URL? = nil) throws -> Result
    {
        let (p, out, err) = try start(arguments, environment: environment, executable: executable)
        // Read both pipes before waiting so that a chatty run cannot block on a full pipe.
        let outData = ReadBack()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            outData.data = out.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return Result(
            status: p.terminationStatus, stdout: String(decoding: outData.data, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Standard output read on another thread: written there once, read
    /// here only after `group.wait()`, which orders the two.
    private final class ReadBack: @unchecked Sendable { var data = Data() }
}
