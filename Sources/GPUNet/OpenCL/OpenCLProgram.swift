import COpenCL
import Foundation
import NetIO

/// A built OpenCL program on one device's context.
public final class OpenCLProgram {
    let program: cl_program
    let owner: OpenCLContext
    /// How this program was made ready, and how long it took.
    public let preparation: Preparation

    /// How a program was made ready: from the disk cache or by compiling.
    public struct Preparation: Sendable, CustomStringConvertible {
        /// Wall-clock seconds from start to a built program (cache read or
        /// compile, plus writing the cache entry).
        public let seconds: Double
        /// True when the program came from a valid cache entry.
        public let cacheHit: Bool
        /// The cache entry used or written, nil without a cache.
        public let cacheFile: String?
        /// Anything worth knowing: a corrupt entry rebuilt, a cache write that failed.
        public let notes: [String]

        public var description: String {
            let how = cacheHit ? "loaded from the kernel cache" : "compiled from source"
            let note = notes.isEmpty ? "" : " (" + notes.joined(separator: "; ") + ")"
            return "\(how) in \(String(format: "%.3f", seconds)) s\(note)"
        }
    }

    /// Builds `source` with `options`, through `cache` when given: a valid
    /// entry is loaded, anything else compiles from source and writes the entry.
    init(owner: OpenCLContext, source: String, options: String, cache: OpenCLProgramCache?) throws {
        let start = Clocks.wall()
        let info = owner.entry.info
        var notes: [String] = []
        var built: cl_program?
        var entryURL: URL?
        if let cache {
            let url = cache.entryURL(
                deviceName: info.name, driverVersion: info.driverVersion,
                source: source, options: options)
            entryURL = url
            switch cache.read(url) {
            case .hit(let binary):
                do {
                    built = try Self.buildFromBinary(binary, owner: owner, options: options)
                } catch {
                    notes.append("cache entry rejected by the driver (\(error)); rebuilt from source")
                }
            case .corrupt(let why):
                notes.append("corrupt cache entry (\(why)); rebuilt from source")
            case .missing:
                break
            }
        }
        let cacheHit = built != nil
        if built == nil {
            let program = try Self.buildFromSource(source, owner: owner, options: options)
            built = program
            if let cache, let url = entryURL {
                do {
                    if let failure = cache.write(try Self.binary(of: program, owner: owner), to: url) {
                        notes.append(failure)
                    }
                } catch {
                    notes.append("could not read the program binary for the cache: \(error)")
                }
            }
        }
        self.program = built!
        self.owner = owner
        preparation = Preparation(
            seconds: Clocks.seconds(since: start),
            cacheHit: cacheHit, cacheFile: entryURL?.path, notes: notes)
    }

    deinit {
        clReleaseProgram(program)
        OpenCLLiveObjects.released(.program)
    }

    /// The names of the kernels in this program.
    public func kernelNames() throws -> [String] {
        var size = 0
        try OpenCLError.check(
            clGetProgramInfo(program, cl_program_info(CL_PROGRAM_KERNEL_NAMES), 0, nil, &size),
            "clGetProgramInfo(CL_PROGRAM_KERNEL_NAMES)")
        var bytes = [CChar](repeating: 0, count: max(size, 1))
        try OpenCLError.check(
            clGetProgramInfo(program, cl_program_info(CL_PROGRAM_KERNEL_NAMES), size, &bytes, nil),
            "clGetProgramInfo(CL_PROGRAM_KERNEL_NAMES)")
        return OpenCLPlatforms.trimmed(bytes).split(separator: ";").map(String.init).sorted()
    }

    /// Checks that the program has a kernel called `name` (creates and
    /// releases it): an unknown name throws CL_INVALID_KERNEL_NAME.
    public func validateKernel(named name: String) throws {
        _ = try OpenCLKernel(program: self, name: name)
    }

    private static func buildFromSource(_ source: String, owner: OpenCLContext, options: String) throws -> cl_program {
        var status: cl_int = CL_SUCCESS
        let program: cl_program? = source.withCString { pointer in
            var strings: UnsafePointer<CChar>? = pointer
            return clCreateProgramWithSource(owner.context, 1, &strings, nil, &status)
        }
        guard let program, status == CL_SUCCESS else {
            throw OpenCLError.call("clCreateProgramWithSource", status: status)
        }
        OpenCLLiveObjects.created(.program)
        try build(program, owner: owner, options: options)
        return program
    }

    private static func buildFromBinary(_ binary: [UInt8], owner: OpenCLContext, options: String) throws -> cl_program {
        var status: cl_int = CL_SUCCESS
        var binaryStatus: cl_int = CL_SUCCESS
        var device: cl_device_id? = owner.entry.device
        var length = binary.count
        let program: cl_program? = binary.withUnsafeBufferPointer { bytes in
            var pointer: UnsafePointer<UInt8>? = bytes.baseAddress
            return clCreateProgramWithBinary(owner.context, 1, &device, &length, &pointer, &binaryStatus, &status)
        }
        guard let program, status == CL_SUCCESS, binaryStatus == CL_SUCCESS else {
            if let program { clReleaseProgram(program) }
            throw OpenCLError.call("clCreateProgramWithBinary", status: status != CL_SUCCESS ? status : binaryStatus)
        }
        OpenCLLiveObjects.created(.program)
        try build(program, owner: owner, options: options)
        return program
    }

    /// clBuildProgram; on failure the program is released and the error
    /// carries the build log.
    private static func build(_ program: cl_program, owner: OpenCLContext, options: String) throws {
        var device: cl_device_id? = owner.entry.device
        let status = clBuildProgram(program, 1, &device, options, nil, nil)
        if status != CL_SUCCESS {
            let log = (try? buildLog(program, owner: owner)) ?? "(the build log could not be read)"
            clReleaseProgram(program)
            OpenCLLiveObjects.released(.program)
            throw OpenCLError.buildFailed(device: owner.entry.info.summary, status: status, log: log)
        }
    }

    private static func buildLog(_ program: cl_program, owner: OpenCLContext) throws -> String {
        var size = 0
        let info = cl_program_build_info(CL_PROGRAM_BUILD_LOG)
        try OpenCLError.check(
            clGetProgramBuildInfo(program, owner.entry.device, info, 0, nil, &size),
            "clGetProgramBuildInfo(CL_PROGRAM_BUILD_LOG)")
        var bytes = [CChar](repeating: 0, count: max(size, 1))
        try OpenCLError.check(
            clGetProgramBuildInfo(program, owner.entry.device, info, size, &bytes, nil),
            "clGetProgramBuildInfo(CL_PROGRAM_BUILD_LOG)")
        return OpenCLPlatforms.trimmed(bytes)
    }

    /// The device binary of a built program (one device per context).
    private static func binary(of program: cl_program, owner: OpenCLContext) throws -> [UInt8] {
        var size = 0
        try OpenCLError.check(
            clGetProgramInfo(
                program, cl_program_info(CL_PROGRAM_BINARY_SIZES),
                MemoryLayout<Int>.size, &size, nil),
            "clGetProgramInfo(CL_PROGRAM_BINARY_SIZES)")
        guard size > 0 else { throw OpenCLError.invalidArgument("the driver returned an empty program binary") }
        var binary = [UInt8](repeating: 0, count: size)
        try binary.withUnsafeMutableBufferPointer { bytes in
            var pointer: UnsafeMutablePointer<UInt8>? = bytes.baseAddress
            try OpenCLError.check(
                clGetProgramInfo(
                    program, cl_program_info(CL_PROGRAM_BINARIES),
                    MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &pointer, nil),
                "clGetProgramInfo(CL_PROGRAM_BINARIES)")
        }
        return binary
    }
}
