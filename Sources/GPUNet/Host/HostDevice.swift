import CHostKernels
import CLAPACK
import Foundation

/// The reference ``Device``, on this machine's CPU: OpenBLAS `cblas_sgemm`
/// for every product (the linear layer's too); C kernels (`CHostKernels`:
/// AVX2/FMA where the CPU has them, chosen at run time, plain C otherwise
/// and for SGD) for the convolutions, the pooled convolutions and their
/// gradients, max-pool and the optimisers; plain Swift over unsafe pointers
/// for the rest (ReLU, the loss, im2col and col2im, the batch gather).
///
/// Operations run synchronously when called, so ``finish()`` has nothing to
/// wait for. Work over a batch is split into a fixed number of contiguous
/// chunks of images (``tasksPerWorker`` per core), run by the calling thread
/// and the device's own worker threads (`hk_pool` in `CHostKernels`). The
/// workers spin briefly between operations instead of sleeping: waking a
/// sleeping thread, as a dispatch queue does, costs 20–100 µs per operation
/// on the project's machines, as much as a whole ReLU pass; a TinyConvNet
/// step takes 0.56 ms with the spinning pool against 1.07 ms with a
/// dispatch queue (`convsvd bench`, batch 64).
/// OpenBLAS is set to one thread (`openblas_set_num_threads(1)`, process-wide) so that two
/// chunks calling `sgemm` do not each start a BLAS thread pool and
/// oversubscribe the cores. A single large ``gemm(_:a:b:c:)`` is split by
/// rows of C instead.
///
/// Convolutions use direct AVX2/FMA correlation kernels (the `CHostKernels`
/// C target) when the CPU has AVX2 and FMA and the shape suits them (see
/// `HostDevice+Convolution.swift`); otherwise im2col + `sgemm`.
///
/// Every buffer must be a ``HostBuffer`` of the right kind holding at least
/// the elements the operation touches; otherwise the operation throws a
/// ``HostDeviceError`` naming the operation and the argument.
///
/// Not thread-safe: one caller issues operations, in order (as the protocol
/// says). Parallelism is inside each operation.
public final class HostDevice: Device {
    public let info: DeviceInfo
    public let counters = DeviceCounters()
    /// How many threads share batch work: the active cores by default.
    let workers: Int
    /// How many pieces batch work is cut into: 1 for one worker, else
    /// ``tasksPerWorker`` per worker (see there).
    let tasks: Int
    /// Work pieces per worker when there are several. Each thread takes the
    /// next piece when it comes free, so on a shared machine a worker that the
    /// OS deschedules holds up one small piece instead of half the batch:
    /// measured on the 2-core project machine under load with a dispatch
    /// queue for the workers, a TinyConvNet step took 3.0–3.3 ms with one
    /// piece per worker against 1.8 ms on one worker.
    static let tasksPerWorker = 4
    /// Per-task scratch memory (columns, partial weight gradients).
    let scratch: HostScratch
    /// Whether convolutions may use the AVX2/FMA direct kernels.
    public let usesDirectKernels: Bool
    /// Whether the convolutions of ``Conv2dShape`` use the 16-lane AVX-512
    /// versions of the wide-grid kernels (only with the direct kernels).
    public let usesAVX512: Bool
    /// Whether this CPU runs AVX-512F (and AVX2 and FMA).
    public static var cpuHasAVX512: Bool { hk_has_avx512() != 0 }
    /// The worker threads besides the caller (workers − 1 of them).
    private let pool: OpaquePointer?

    /// A host device splitting batch work into `workers` chunks (default:
    /// the active cores; 1 runs everything on the calling thread).
    /// `directKernels`: allow the AVX2/FMA convolution kernels (default
    /// true; they are used only where the CPU has AVX2 and FMA). False
    /// forces im2col + `sgemm` everywhere, e.g. to test that path.
    /// `avx512`: allow the AVX-512 wide-grid kernels where the CPU has them
    /// (default true; false keeps their AVX2 versions, e.g. to test those).
    public init(workers: Int? = nil, directKernels: Bool = true, avx512: Bool = true) {
        openblas_set_num_threads(1)
        self.workers = max(1, workers ?? ProcessInfo.processInfo.activeProcessorCount)
        tasks = self.workers == 1 ? 1 : self.workers * Self.tasksPerWorker
        usesDirectKernels = directKernels && hk_has_avx2_fma() != 0
        usesAVX512 = usesDirectKernels && avx512 && hk_has_avx512() != 0
        scratch = HostScratch(workers: tasks, slots: 4)
        pool = hk_pool_create(Int32(self.workers - 1))
        info = DeviceInfo(
            kind: .host, selector: "host", name: HostDevice.processorName(), vendor: "host",
            type: "host", computeUnits: self.workers,
            globalMemoryBytes: ProcessInfo.processInfo.physicalMemory,
            languageVersion: usesDirectKernels
                ? "OpenBLAS cblas_sgemm [\(HostDevice.blasCore)] + AVX2/FMA convolutions (1 thread per worker)"
                : "OpenBLAS cblas_sgemm [\(HostDevice.blasCore)] (1 thread per worker)", driverVersion: "Swift",
            platformName: "host")
    }

    deinit { hk_pool_destroy(pool) }

    /// OpenBLAS's kernel for this CPU ("Haswell", "SkylakeX", "Zen", …):
    /// the host's float32 products, hence its training numbers, are
    /// bit-identical only between runs with the same one (`OPENBLAS_CORETYPE`
    /// chooses it before the library loads).
    public static var blasCore: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// The CPU's model name from /proc/cpuinfo (Linux), else "host CPU".
    private static func processorName() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "host CPU" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "host CPU"
    }

    // MARK: Buffers

    public func makeBuffer(count: Int, kind: ElementKind) throws -> Buffer {
        guard count >= 0 else {
            throw HostDeviceError.invalidShape(operation: "makeBuffer", reason: "count \(count) < 0")
        }
        return HostBuffer(count: count, kind: kind)
    }

    public func upload(_ values: UnsafeBufferPointer<Float>, to buffer: Buffer) throws {
        try upload(UnsafeRawBufferPointer(values), count: values.count, kind: .float32, to: buffer)
    }

    public func upload(_ values: UnsafeBufferPointer<Int32>, to buffer: Buffer) throws {
        try upload(UnsafeRawBufferPointer(values), count: values.count, kind: .int32, to: buffer)
    }

    public func upload(_ values: UnsafeBufferPointer<UInt8>, to buffer: Buffer) throws {
        try upload(UnsafeRawBufferPointer(values), count: values.count, kind: .uint8, to: buffer)
    }

    public func download(_ buffer: Buffer, into values: UnsafeMutableBufferPointer<Float>) throws {
        try download(buffer, kind: .float32, count: values.count, into: UnsafeMutableRawBufferPointer(values))
    }

    public func download(_ buffer: Buffer, into values: UnsafeMutableBufferPointer<Int32>) throws {
        try download(buffer, kind: .int32, count: values.count, into: UnsafeMutableRawBufferPointer(values))
    }

    /// Copies `count` elements of `kind` (the bytes of `values`) into
    /// `buffer`, which must be of that kind and hold exactly `count`.
    private func upload(_ values: UnsafeRawBufferPointer, count: Int, kind: ElementKind, to buffer: Buffer) throws {
        let target = try checked(buffer, kind, at: buffer.count, "upload", "buffer")
        guard count == buffer.count else {
            throw HostDeviceError.countMismatch(operation: "upload", bufferCount: buffer.count, arrayCount: count)
        }
        if let base = values.baseAddress { target.storage.copyMemory(from: base, byteCount: values.count) }
    }

    /// Copies `buffer`, of `kind` and exactly `count` elements, into the
    /// bytes of `values`.
    private func download(
        _ buffer: Buffer, kind: ElementKind, count: Int, into values: UnsafeMutableRawBufferPointer
    ) throws {
        let source = try checked(buffer, kind, at: buffer.count, "download", "buffer")
        guard count == buffer.count else {
            throw HostDeviceError.countMismatch(operation: "download", bufferCount: buffer.count, arrayCount: count)
        }
        counters.hostWaits += 1
        if let base = values.baseAddress { base.copyMemory(from: source.storage, byteCount: values.count) }
    }

    public func fill(_ buffer: Buffer, value: Float) throws {
        let target = try floats(buffer, at: buffer.count, "fill", "buffer")
        target.update(repeating: value, count: buffer.count)
    }

    public func copy(_ source: Buffer, to destination: Buffer) throws {
        let from = try host(source, "copy", "source")
        let to = try host(destination, "copy", "destination")
        guard source.kind == destination.kind else {
            throw HostDeviceError.wrongKind(
                operation: "copy", argument: "destination",
                expected: source.kind, actual: destination.kind)
        }
        guard source.count == destination.count else {
            throw HostDeviceError.countMismatch(
                operation: "copy", bufferCount: destination.count, arrayCount: source.count)
        }
        to.storage.copyMemory(from: from.storage, byteCount: source.byteCount)
    }

    /// Nothing is queued on the host: every operation has finished when it returns.
    public func finish() throws {}

    /// Host operations are done when they return: the copy is made now.
    public func startDownload(_ buffer: Buffer) throws -> PendingDownload {
        PendingDownload(values: try floats(buffer))
    }

    // MARK: Linear algebra

    public func gemm(_ shape: GEMMShape, a: Buffer, b: Buffer, c: Buffer) throws {
        let (m, n, k) = (shape.m, shape.n, shape.k)
        guard m >= 0, n >= 0, k >= 0 else {
            throw HostDeviceError.invalidShape(operation: "gemm", reason: "\(shape) has a negative dimension")
        }
        let pa = try floats(a, at: m * k, "gemm", "a")
        let pb = try floats(b, at: k * n, "gemm", "b")
        let pc = try floats(c, at: m * n, "gemm", "c")
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // An empty product: C ← β·C. (BLAS rejects a leading dimension of 0.)
            for i in 0..<(m * n) { pc[i] = shape.beta == 0 ? 0 : shape.beta * pc[i] }
            return
        }
        // One BLAS call per core when the product is worth two threads (~1
        // MFLOP; below that the dispatch costs more than it saves), each on a
        // block of C along its longer side: TinyConvNet's products have 8–72
        // rows and thousands of columns, and a call on a sliver of C runs far
        // below BLAS speed. The split depends only on the shape and the worker
        // count, so results are the same from run to run.
        let parts = shape.flops >= 1e6 ? workers : 1
        let lda = shape.transposeA ? m : k
        let ldb = shape.transposeB ? k : n
        if parts > 1 && k >= 16 * (m + n) {
            // A long sum and a small C (the weight-gradient products: 16×72
            // and 8×9 summed over thousands of pixels): each task sums a
            // fixed slice of k into its own C, then the slices are added in
            // task order. Splitting C instead would leave slivers of 9 or 36
            // columns per call, far below BLAS speed.
            let slices = min(tasks, k / 64)
            let partials = scratch.slot(1, floats: m * n)
            parallelChunks(k, chunks: slices) { task, range in
                let aSlice = shape.transposeA ? pa + range.lowerBound * m : pa + range.lowerBound
                let bSlice = shape.transposeB ? pb + range.lowerBound : pb + range.lowerBound * n
                HostLoops.sgemm(
                    transposeA: shape.transposeA, transposeB: shape.transposeB,
                    m: m, n: n, k: range.count, alpha: 1, a: aSlice, lda: lda,
                    b: bSlice, ldb: ldb, beta: 0, c: partials[task], ldc: n)
            }
            let used = max(1, min(slices, k))
            for i in 0..<(m * n) {
                var sum: Float = 0
                for t in 0..<used { sum += partials[t][i] }
                pc[i] = shape.beta == 0 ? shape.alpha * sum : shape.alpha * sum + shape.beta * pc[i]
            }
            return
        }
        if n >= m {
            parallelChunks(n, chunks: parts) { _, columns in
                // Columns j of op(B): stored column j (ldb n), or stored row j (ldb k).
                let bColumns = shape.transposeB ? pb + columns.lowerBound * k : pb + columns.lowerBound
                HostLoops.sgemm(
                    transposeA: shape.transposeA, transposeB: shape.transposeB,
                    m: m, n: columns.count, k: k, alpha: shape.alpha, a: pa, lda: lda,
                    b: bColumns, ldb: ldb, beta: shape.beta, c: pc + columns.lowerBound, ldc: n)
            }
        } else {
            parallelChunks(m, chunks: parts) { _, rows in
                // Rows i of op(A): stored row i (lda k), or stored column i (lda m).
                let aRows = shape.transposeA ? pa + rows.lowerBound : pa + rows.lowerBound * k
                HostLoops.sgemm(
                    transposeA: shape.transposeA, transposeB: shape.transposeB,
                    m: rows.count, n: n, k: k, alpha: shape.alpha, a: aRows, lda: lda,
                    b: pb, ldb: ldb, beta: shape.beta, c: pc + rows.lowerBound * n, ldc: n)
            }
        }
    }

    // MARK: Parallel chunks

    /// Calls `body(chunk, range)` for `chunks` contiguous, near-equal ranges
    /// covering 0..<count, concurrently when there is more than one. `chunk`
    /// indexes per-task scratch, so `chunks` is capped at `tasks`. Which
    /// thread runs which range varies; what each range computes does not.
    /// Allocates nothing: the closure goes to the pool as it is
    /// (``hkPoolRunChunks(_:_:_:_:)``).
    func parallelChunks(_ count: Int, chunks requested: Int, _ body: (Int, Range<Int>) -> Void) {
        let chunks = max(1, min(requested, count, tasks))
        if chunks == 1 {
            body(0, 0..<count)
            return
        }
        counters.launches += 1
        hkPoolRunChunks(pool, count, chunks, body)
    }

    // MARK: Argument checks

    func host(_ buffer: Buffer, _ operation: String, _ argument: String) throws -> HostBuffer {
        guard let hostBuffer = buffer as? HostBuffer else {
            throw HostDeviceError.foreignBuffer(operation: operation, argument: argument)
        }
        return hostBuffer
    }

    /// `buffer` as a host buffer of `kind` holding at least `needed` elements.
    func checked(
        _ buffer: Buffer, _ kind: ElementKind, at needed: Int, _ operation: String,
        _ argument: String
    ) throws -> HostBuffer {
        let h = try host(buffer, operation, argument)
        guard h.kind == kind else {
            throw HostDeviceError.wrongKind(operation: operation, argument: argument, expected: kind, actual: h.kind)
        }
        guard h.count >= needed else {
            throw HostDeviceError.bufferTooSmall(
                operation: operation, argument: argument, needed: needed, count: h.count)
        }
        return h
    }

    /// The float storage of `buffer`, checked to hold at least `needed` elements.
    func floats(_ buffer: Buffer, at needed: Int, _ operation: String, _ argument: String) throws
        -> UnsafeMutablePointer<Float>
    {
        try checked(buffer, .float32, at: needed, operation, argument).floats
    }

    /// The byte storage of `buffer`, checked to hold at least `needed` elements.
    func uint8s(_ buffer: Buffer, at needed: Int, _ operation: String, _ argument: String) throws
        -> UnsafeMutablePointer<UInt8>
    {
        try checked(buffer, .uint8, at: needed, operation, argument).uint8s
    }

    /// The int32 storage of `buffer`, checked to hold at least `needed` elements.
    func int32s(_ buffer: Buffer, at needed: Int, _ operation: String, _ argument: String) throws
        -> UnsafeMutablePointer<Int32>
    {
        try checked(buffer, .int32, at: needed, operation, argument).int32s
    }
}

/// Runs `body(chunk, (chunk·count/chunks)..<((chunk+1)·count/chunks))` for
/// each chunk on `pool` (`hk_pool_run`), returning when all have finished.
/// Defined in CHostKernels' WorkerPool.c in Swift's calling convention
/// (clang's `swiftcall`), which receives the non-escaping closure as its
/// function and context words: no escaping copy, so no allocation per call.
@_silgen_name("hk_pool_run_chunks")
private func hkPoolRunChunks(
    _ pool: OpaquePointer?, _ count: Int, _ chunks: Int, _ body: (Int, Range<Int>) -> Void)
