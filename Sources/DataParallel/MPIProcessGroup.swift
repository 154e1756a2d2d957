import CMPI
import Foundation
import GPUNet

/// An MPI failure: what was called and MPI's own message.
public struct MPIError: Error, CustomStringConvertible {
    public var description: String
}

/// MPI_COMM_WORLD of an Open MPI job, as a ``ProcessGroup``.
///
/// libmpi is loaded at run time (see `CMPI`), so a build without MPI
/// installed still builds and runs; only `--distributed mpi` needs it. (Not `Distributed`: that name is Swift's distributed-actor module.).
/// Errors are returned, not fatal inside the library: each becomes an
/// ``MPIError`` naming the call. A rank that dies is seen by `mpirun`, which
/// ends the whole job.
public final class MPIProcessGroup: ProcessGroup {
    public let rank: Int
    public let processes: Int
    /// The node-local rank Open MPI's launcher exports
    /// (OMPI_COMM_WORLD_LOCAL_RANK), for choosing a GPU per process.
    public let localRank: Int?
    /// The shared library that was loaded.
    public let library: String

    /// The one group of this process: MPI can be initialised once.
    public static func world() throws -> MPIProcessGroup {
        if let shared { return shared }
        let made = try MPIProcessGroup()
        shared = made
        atexit { MPIProcessGroup.finalize() }
        return made
    }

    nonisolated(unsafe) private static var shared: MPIProcessGroup?

    private init() throws {
        guard cmpi_load() == 0 else { throw MPIError(description: String(cString: cmpi_load_error())) }
        library = String(cString: cmpi_library_path())
        try Self.check(cmpi_init(), "MPI_Init_thread")
        var r: Int32 = 0
        var n: Int32 = 0
        try Self.check(cmpi_comm_rank(&r), "MPI_Comm_rank")
        try Self.check(cmpi_comm_size(&n), "MPI_Comm_size")
        rank = Int(r)
        processes = Int(n)
        localRank = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_RANK"].flatMap(Int.init)
    }

    /// MPI_Finalize, once, at exit of a process that initialised MPI.
    private static func finalize() {
        guard shared != nil else { return }
        shared = nil
        _ = cmpi_finalize()
    }

    public func sum(_ values: inout [Float]) throws {
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer {
            try Self.check(cmpi_allreduce_sum_float($0.baseAddress, n), "MPI_Allreduce(float, \(n))")
        }
    }

    public func sum(_ values: inout [Double]) throws {
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer {
            try Self.check(cmpi_allreduce_sum_double($0.baseAddress, n), "MPI_Allreduce(double, \(n))")
        }
    }

    public func broadcast(_ values: inout [Float]) throws {
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer {
            try Self.check(cmpi_bcast_float($0.baseAddress, n, 0), "MPI_Bcast(float, \(n))")
        }
    }

    public func broadcast(_ values: inout [Double]) throws {
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer {
            try Self.check(cmpi_bcast_double($0.baseAddress, n, 0), "MPI_Bcast(double, \(n))")
        }
    }

    public func barrier() throws { try Self.check(cmpi_barrier(), "MPI_Barrier") }

    /// Ends every process of the job (MPI_Abort) with `code`: for an error
    /// on one rank that the others cannot know of.
    public func abort(code: Int32) -> Never {
        _ = cmpi_abort(code)
        exit(code)
    }

    private static func check(_ code: Int32, _ call: String) throws {
        guard code != 0 else { return }
        var text = [CChar](repeating: 0, count: 512)
        cmpi_error_string(code, &text, Int32(text.count))
        throw MPIError(description: "\(call) failed: \(String(cString: text))")
    }
}
