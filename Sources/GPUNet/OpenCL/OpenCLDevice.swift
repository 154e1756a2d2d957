import COpenCL
import Foundation
import Kernels

/// The ``Device`` operations as OpenCL kernels, on any OpenCL 1.2 device (a
/// GPU, or PoCL on the CPU).
///
/// One context, one in-order queue, and one program per kernel, built the
/// first time that kernel is launched and cached on disk
/// (``OpenCLProgramCache``, one entry per kernel). Each program is
/// `KernelSource.all` built with `-D KERNEL_<name>`: every kernel in
/// `Sources/Kernels` sits in `#ifdef KERNEL_<name>`, so the preprocessor
/// drops the others. On PoCL here a build costs ~0.75 s once per process,
/// ~0.15–0.3 s a program, and the code generation of each kernel in it
/// (0.06–0.65 s), and builds from several threads run one at a time, so
/// building only what is launched (a training step uses 14 of the 61
/// kernels) is what shortens a first run; a cached kernel loads in about a
/// millisecond. Operations
/// only enqueue work: nothing is read back inside an operation, and uploads
/// are copied to host staging areas and queued (``OpenCLUploadStaging``), so
/// a training step waits for the device only in the downloads the caller
/// asks for. Each wait empties the queue and costs a round trip to PoCL's
/// worker threads (~10 µs for an empty kernel here on a quiet machine,
/// several times that when the machine is busy).
///
/// Not thread-safe: use one device from one thread at a time (kernel
/// arguments are set on shared kernel objects).
public final class OpenCLDevice: Device {
    public let info: DeviceInfo
    /// The kernels this device launches for a step's operations, fixed at
    /// creation (``KernelFamily/Choice/resolve(deviceType:environment:)``):
    /// `--kernels`, else `CONVSVD_KERNELS`, else the device type. Also in
    /// ``info`` (``DeviceInfo/kernelFamily``), so every report names it.
    public let kernelFamily: KernelFamily
    /// Why ``kernelFamily`` was chosen: "device type CPU", "--kernels gpu", …
    public let kernelFamilyReason: String
    /// When non-nil, every launch from now on is appended (``KernelLaunch``):
    /// `convsvd bench` shows each operation's launch geometry this way.
    public var launchLog: [KernelLaunch]?
    public let counters = DeviceCounters()
    /// The build options of every kernel's program (plus `-D KERNEL_<name>`).
    public static let buildOptions = "-cl-std=CL1.2"

    /// The kernels of `Sources/Kernels`, sorted: the `#ifdef KERNEL_<name>`
    /// guards of `KernelSource.all`.
    public static let kernelNames: [String] = guardedKernels(in: KernelSource.all)

    /// The kernels of the files in one folder of `Sources/Kernels` ("common",
    /// "cpu", "gpu"), sorted.
    public static func kernelNames(inFolder folder: String) -> [String] {
        guardedKernels(
            in: KernelSource.names.filter { $0.hasPrefix(folder + "/") }
                .compactMap(KernelSource.named).joined(separator: "\n"))
    }

    /// The names of the `#ifdef KERNEL_<name>` guards in `source`, sorted.
    private static func guardedKernels(in source: String) -> [String] {
        let marker = "#ifdef KERNEL_"
        return Set(
            source.split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix(marker) else { return nil }
                return String(line.dropFirst(marker.count).prefix { $0.isLetter || $0.isNumber || $0 == "_" })
            }
        ).sorted()
    }

    let context: OpenCLContext
    /// `KernelSource.all` plus the program tag, the source of every kernel's program.
    private let source: String
    private let cache: OpenCLProgramCache?
    private var kernels: [String: OpenCLKernel] = [:]
    /// How each kernel built so far was made ready (cache hit or compile, seconds), by name.
    public private(set) var kernelPreparations: [String: OpenCLProgram.Preparation] = [:]
    /// Work buffers of the convolutions (rearranged weights and gradients,
    /// partial sums), grown on demand and reused: the queue is in order, so a
    /// later operation never overwrites one an earlier one still reads.
    private var scratch: [String: OpenCLBuffer] = [:]
    /// The per-channel scales and shifts the last per-channel gather used,
    /// and the buffer holding them: a training run uploads them once.
    var gatherNormalization: (values: [Float], buffer: OpenCLBuffer)?
    /// The gpu family's chunk work-group and whether its fused BatchNorm
    /// passes fit this device's local memory, found on first use (a
    /// training step asks at every BatchNorm; ``gpuChunkGroup()``).
    var gpuChunkLayout: (group: Int, fusedPassesFit: Bool)?
    /// The argument list ``launch(_:items:local:appending:)`` fills, its storage reused.
    private var reusableArguments: [OpenCLKernel.Argument] = []
    /// Host copies of uploads whose writes may still be queued.
    private let staging = OpenCLUploadStaging()

    /// The live OpenCL objects of this process (all devices together).
    public static var liveObjects: OpenCLLiveObjects { OpenCLLiveObjects.current }

    /// The device `opencl:platform:device`, with its kernels' programs cached
    /// in `cache` (nil: always compile). Builds nothing: each kernel is built
    /// when first launched (or by ``prepareKernel(_:)``). A `programTag` is
    /// appended to the program source as a constant's name: a new tag makes
    /// programs that neither our cache nor the driver's own (PoCL keeps one)
    /// has seen, which is how a truly cold build is measured.
    public convenience init(
        platform platformIndex: Int = 0, device deviceIndex: Int = 0,
        cache: OpenCLProgramCache? = OpenCLProgramCache(directory: OpenCLProgramCache.defaultDirectory),
        programTag: String? = nil, kernels: KernelFamily.Choice = .auto
    ) throws {
        let entries = try OpenCLPlatforms.entries()
        if entries.isEmpty, try OpenCLPlatforms.platforms().isEmpty {
            throw OpenCLError.noPlatform(OpenCLPlatforms.noPlatformHint)
        }
        guard let entry = entries.first(where: { $0.platformIndex == platformIndex && $0.deviceIndex == deviceIndex })
        else {
            throw OpenCLError.noSuchDevice(
                platform: platformIndex, device: deviceIndex,
                available: entries.map { "\($0.info.selector) \($0.info.name)" })
        }
        try self.init(entry: entry, cache: cache, programTag: programTag, kernels: kernels)
    }

    init(
        entry: OpenCLDeviceEntry, cache: OpenCLProgramCache?, programTag: String? = nil,
        kernels: KernelFamily.Choice = .auto
    ) throws {
        (kernelFamily, kernelFamilyReason) = try kernels.resolve(deviceType: entry.info.type)
        var entry = entry
        entry.info.kernelFamily = kernelFamily
        info = entry.info
        context = try OpenCLContext(entry: entry)
        self.cache = cache
        // A declaration, not a comment: a driver may hash the preprocessed source.
        source =
            KernelSource.all
            + (programTag.map {
                let name = String($0.map { $0.isLetter || $0.isNumber ? $0 : "_" })
                return "\n__constant int convsvd_program_tag_\(name) = 0;\n"
            } ?? "")
    }

    /// Builds the program of kernel `name` (from the cache when it holds
    /// it) unless already built, and says how it was made ready. An unknown
    /// name throws ``OpenCLError/invalidArgument(_:)``; a compile error
    /// ``OpenCLError/buildFailed(device:status:log:)`` with the log.
    @discardableResult
    public func prepareKernel(_ name: String) throws -> OpenCLProgram.Preparation {
        _ = try kernel(name)
        return kernelPreparations[name]!
    }

    /// Seconds spent making kernels ready so far (cache reads and compiles).
    public var preparationSeconds: Double { kernelPreparations.values.reduce(0) { $0 + $1.seconds } }

    /// Builds arbitrary OpenCL C on this device's context, without the
    /// cache: for tests and diagnostics. A compile error throws
    /// ``OpenCLError/buildFailed(device:status:log:)`` with the compiler's log.
    public func buildProgram(source: String, options: String = OpenCLDevice.buildOptions) throws -> OpenCLProgram {
        try OpenCLProgram(owner: context, source: source, options: options, cache: nil)
    }

    // MARK: Plumbing

    func kernel(_ name: String) throws -> OpenCLKernel {
        if let kernel = kernels[name] { return kernel }
        guard Self.kernelNames.contains(name) else {
            throw OpenCLError.invalidArgument("Sources/Kernels has no kernel \(name)")
        }
        let program = try OpenCLProgram(
            owner: context, source: source,
            options: Self.buildOptions + " -D KERNEL_" + name, cache: cache)
        let kernel = try OpenCLKernel(program: program, name: name)
        kernels[name] = kernel
        kernelPreparations[name] = program.preparation
        return kernel
    }

    /// Enqueues `items` work-items of kernel `name` in work-groups of
    /// `local` (nil: ``OpenCLKernel/workGroupSize(items:computeUnits:)``).
    func launch(_ name: String, items: Int, local: Int? = nil, _ arguments: [OpenCLKernel.Argument]) throws {
        guard
            let geometry = try kernel(name).launch(
                items: items, computeUnits: info.computeUnits, local: local,
                arguments)
        else { return }
        counters.launches += 1
        launchLog?.append(
            KernelLaunch(
                kernel: name, family: kernelFamily, globalSize: geometry.global,
                localSize: geometry.local, computeUnits: info.computeUnits))
    }

    /// ``launch(_:items:local:_:)`` with the arguments that `fill` appends to
    /// a list the device keeps: for the few launch sites whose array literal
    /// the optimiser does not keep on the stack (measured with heaptrack),
    /// where a literal would be a heap allocation every step.
    func launch(
        _ name: String, items: Int, local: Int? = nil, appending fill: (inout [OpenCLKernel.Argument]) throws -> Void
    ) throws {
        var arguments: [OpenCLKernel.Argument] = []
        swap(&arguments, &reusableArguments)
        defer { swap(&arguments, &reusableArguments) }
        arguments.removeAll(keepingCapacity: true)
        try fill(&arguments)
        try launch(name, items: items, local: local, arguments)
    }

    /// `buffer` as this device's buffer holding at least `count` elements of `kind`.
    func cl(
        _ buffer: Buffer, _ role: String, atLeast count: Int, kind: ElementKind = .float32,
        in operation: @autoclosure () -> String
    ) throws -> OpenCLBuffer {
        guard let buffer = buffer as? OpenCLBuffer, buffer.owner === context else {
            throw OpenCLError.invalidArgument("\(operation()): \(role) is not a buffer of \(info.summary)")
        }
        guard buffer.kind == kind else {
            throw OpenCLError.invalidArgument("\(operation()): \(role) holds \(buffer.kind), expected \(kind)")
        }
        guard buffer.count >= count else {
            throw OpenCLError.invalidArgument("\(operation()): \(role) has \(buffer.count) elements, needs \(count)")
        }
        return buffer
    }

    /// A work buffer named `name` of at least `count` floats.
    func scratchBuffer(_ name: String, count: Int) throws -> OpenCLBuffer {
        if let buffer = scratch[name], buffer.count >= count { return buffer }
        let buffer = try OpenCLBuffer(count: count, kind: .float32, owner: context)
        scratch[name] = buffer
        return buffer
    }

    // MARK: Buffers

    public func makeBuffer(count: Int, kind: ElementKind) throws -> Buffer {
        let buffer = try OpenCLBuffer(count: count, kind: kind, owner: context)
        try zero(buffer)
        return buffer
    }

    private func zero(_ buffer: OpenCLBuffer) throws {
        // A byte buffer's size need not be a multiple of four: fill it byte by byte.
        var pattern: UInt32 = 0
        let patternSize = buffer.kind == .uint8 ? 1 : 4
        try OpenCLError.check(
            clEnqueueFillBuffer(
                context.queue, buffer.memory, &pattern, patternSize, 0, max(buffer.byteCount, 4),
                0, nil, nil), "clEnqueueFillBuffer(zero, \(buffer.byteCount) bytes)")
    }

    public func upload(_ values: UnsafeBufferPointer<Float>, to buffer: Buffer) throws {
        try write(UnsafeRawBufferPointer(values), count: values.count, kind: .float32, to: buffer)
    }

    public func upload(_ values: UnsafeBufferPointer<Int32>, to buffer: Buffer) throws {
        try write(UnsafeRawBufferPointer(values), count: values.count, kind: .int32, to: buffer)
    }

    public func upload(_ values: UnsafeBufferPointer<UInt8>, to buffer: Buffer) throws {
        try write(UnsafeRawBufferPointer(values), count: values.count, kind: .uint8, to: buffer)
    }

    /// Uploads of more bytes than this (a data set, once) are written
    /// blocking, straight from the caller's memory: staged, each would keep
    /// a copy of its size in the staging ring for the device's lifetime.
    static let stagedUploadLimit = 4 << 20

    /// Copies the values into a staging area and enqueues the write from
    /// there without waiting: the caller's memory may be gone once upload
    /// returns, and a blocking write would drain the queue, leaving the
    /// device idle for a round trip to the host (a training step's batch
    /// upload did; the next blocking read waits for the write anyway).
    private func write(_ bytes: UnsafeRawBufferPointer, count: Int, kind: ElementKind, to buffer: Buffer) throws {
        let target = try cl(buffer, "upload target", atLeast: count, kind: kind, in: "upload")
        guard target.count == count else {
            throw OpenCLError.invalidArgument("upload: \(count) values into a buffer of \(target.count)")
        }
        let byteCount = count * kind.size
        guard count > 0, let base = bytes.baseAddress else { return }
        counters.bytesToDevice += byteCount
        if byteCount > Self.stagedUploadLimit {
            counters.hostWaits += 1
            return try OpenCLError.check(
                clEnqueueWriteBuffer(
                    context.queue, target.memory, cl_bool(CL_TRUE), 0, byteCount,
                    base, 0, nil, nil), "clEnqueueWriteBuffer(\(byteCount) bytes)")
        }
        let source = try staging.next(bytes: byteCount) { self.counters.hostWaits += 1 }
        source.copyMemory(from: base, byteCount: byteCount)
        var event: cl_event?
        try OpenCLError.check(
            clEnqueueWriteBuffer(
                context.queue, target.memory, cl_bool(CL_FALSE), 0, byteCount, source,
                0, nil, &event), "clEnqueueWriteBuffer(\(byteCount) bytes)")
        staging.inFlight(event)
    }

    public func download(_ buffer: Buffer, into values: UnsafeMutableBufferPointer<Float>) throws {
        try read(buffer, into: UnsafeMutableRawBufferPointer(values), count: values.count, kind: .float32)
    }

    public func download(_ buffer: Buffer, into values: UnsafeMutableBufferPointer<Int32>) throws {
        try read(buffer, into: UnsafeMutableRawBufferPointer(values), count: values.count, kind: .int32)
    }

    private func read(_ buffer: Buffer, into bytes: UnsafeMutableRawBufferPointer, count: Int, kind: ElementKind) throws
    {
        let source = try cl(buffer, "download source", atLeast: count, kind: kind, in: "download")
        guard source.count == count else {
            throw OpenCLError.invalidArgument("download: a buffer of \(source.count) into \(count) values")
        }
        guard count > 0, let base = bytes.baseAddress else { return try finish() }
        counters.hostWaits += 1
        counters.bytesToHost += count * kind.size
        try OpenCLError.check(
            clEnqueueReadBuffer(
                context.queue, source.memory, cl_bool(CL_TRUE), 0, count * kind.size, base,
                0, nil, nil), "clEnqueueReadBuffer(\(count * kind.size) bytes)")
    }

    public func startDownload(_ buffer: Buffer) throws -> PendingDownload {
        let source = try cl(buffer, "download source", atLeast: 0, kind: .float32, in: "startDownload")
        let read = try OpenCLPendingRead(queue: context.queue, source: source, counters: counters)
        counters.bytesToHost += source.byteCount
        return PendingDownload { try read.floats() }
    }

    public func fill(_ buffer: Buffer, value: Float) throws {
        let target = try cl(buffer, "buffer", atLeast: 0, in: "fill")
        guard target.count > 0 else { return }
        var pattern = value
        counters.launches += 1
        try OpenCLError.check(
            clEnqueueFillBuffer(
                context.queue, target.memory, &pattern, 4, 0, target.byteCount,
                0, nil, nil), "clEnqueueFillBuffer(\(target.byteCount) bytes)")
    }

    public func copy(_ source: Buffer, to destination: Buffer) throws {
        let from = try cl(source, "source", atLeast: 0, kind: source.kind, in: "copy")
        let to = try cl(destination, "destination", atLeast: 0, kind: source.kind, in: "copy")
        guard from.count == to.count else {
            throw OpenCLError.invalidArgument("copy: source has \(from.count) elements, destination \(to.count)")
        }
        guard from.count > 0, from !== to else { return }
        counters.launches += 1
        try OpenCLError.check(
            clEnqueueCopyBuffer(
                context.queue, from.memory, to.memory, 0, 0, from.byteCount,
                0, nil, nil), "clEnqueueCopyBuffer(\(from.byteCount) bytes)")
    }

    public func finish() throws {
        counters.hostWaits += 1
        try context.finish()
    }
}
