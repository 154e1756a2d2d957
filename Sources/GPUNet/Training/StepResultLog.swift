/// The results of an epoch's steps (each step's per-sample losses and
/// correct predictions), kept on the device and read by the host a block
/// of ``stepsPerRead`` steps at a time, so that the device's queue never
/// runs dry inside an epoch and the host waits once per block.
///
/// Step n's loss writes its `perSample` into slot n mod R of a
/// ``StepRecordRing`` of 2·``maxBatch``-float slots, R the smallest
/// multiple of k = ``stepsPerRead`` that is at least k + ``lag`` (a block's
/// slots are then consecutive). When step n completes a block, the log queues
/// one read of the block's slots; the host collects it (the block's only
/// wait) once ``lag`` more steps are queued behind it, so that the device
/// has work while the host wakes, and the results (progress, the
/// divergence check) trail the queued steps by at most a block and ``lag``.
///
/// Bounds and safety:
/// - At most ``stepsPerRead`` + ``lag`` steps are queued beyond the last
///   collected result, whatever the device's speed.
/// - A slot is written again R steps later, by a step queued only after
///   the read of its block has been waited for (a block's last step n is
///   collected when step n + lag is queued, and R ≥ k + lag), so no read
///   can see a later step's results, and this holds on an out-of-order
///   queue too.
/// - A block's read sees its steps' results because the queue runs in
///   order; an out-of-order queue would need the read to wait for the
///   events of the block's loss operations.
public final class StepResultLog {
    /// One step's results, summed as ``TinyConvNet/PendingBatchResult/value()`` sums a batch's.
    public struct StepResult: Equatable, Sendable {
        public let step: Int
        public let batch: Int
        public let lossSum: Double
        public let correct: Int
        public init(step: Int, batch: Int, lossSum: Double, correct: Int) {
            self.step = step
            self.batch = batch
            self.lossSum = lossSum
            self.correct = correct
        }
    }

    public let stepsPerRead: Int
    public let maxBatch: Int
    /// Steps queued behind a block's read before the host waits for it.
    public let lag: Int
    private let ring: any StepRecordRing
    /// Batches of the steps queued since the last read was queued, from step `openStart`.
    private var openStart = 0
    private var openBatches: [Int]
    /// Blocks whose reads are queued and not yet collected, oldest first:
    /// each collected once step `collectAt` is queued.
    private var inFlight: [(start: Int, batches: [Int], download: PendingDownload, collectAt: Int)] = []

    public init(device: any Device, maxBatch: Int, stepsPerRead: Int, lag: Int = 2) throws {
        precondition(maxBatch > 0 && stepsPerRead > 0 && lag >= 0)
        self.stepsPerRead = stepsPerRead
        self.maxBatch = maxBatch
        self.lag = lag
        let blocks = (stepsPerRead + lag + stepsPerRead - 1) / stepsPerRead
        ring = try device.makeStepRecordRing(slots: blocks * stepsPerRead, floatsPerSlot: 2 * maxBatch)
        openBatches = []
        openBatches.reserveCapacity(stepsPerRead)
    }

    /// Where step `step` (counted from 0 in the epoch) writes its per-sample results.
    public func slot(forStep step: Int) -> Buffer { ring.slots[step % ring.slots.count] }

    /// Records that step `step` of `batch` images is queued (steps come in
    /// order from 0). Returns the results of a block when one is collected
    /// (in step order), else nothing.
    public func queued(step: Int, batch: Int) throws -> [StepResult] {
        precondition(step == openStart + openBatches.count && batch <= maxBatch, "steps must come in order")
        openBatches.append(batch)
        var results: [StepResult] = []
        while let first = inFlight.first, step >= first.collectAt { results += try collectOldest() }
        if openBatches.count == stepsPerRead { try readOpenBlock(after: step) }
        return results
    }

    /// Reads every result not yet read (the open block and the blocks in
    /// flight), waiting for them: at an epoch's end, or before stopping.
    /// The next step is step 0 again.
    public func drain() throws -> [StepResult] {
        try readOpenBlock(after: openStart)
        var results: [StepResult] = []
        while !inFlight.isEmpty { results += try collectOldest() }
        openStart = 0
        return results
    }

    /// Queues the read of the open block, to be collected `lag` steps after `step`.
    private func readOpenBlock(after step: Int) throws {
        guard !openBatches.isEmpty else { return }
        let first = openStart % ring.slots.count
        let download = try ring.startReading(first..<(first + openBatches.count))
        inFlight.append((openStart, openBatches, download, step + lag))
        openStart += openBatches.count
        openBatches.removeAll(keepingCapacity: true)
    }

    /// Waits for the oldest block in flight and sums each of its steps' results.
    private func collectOldest() throws -> [StepResult] {
        let block = inFlight.removeFirst()
        let values = try block.download.floats()
        let stride = ring.floatsPerSlot
        return block.batches.enumerated().map { index, batch in
            let sums = TinyConvNet.PendingBatchResult.sums(values, from: index * stride, batch: batch)
            return StepResult(step: block.start + index, batch: batch, lossSum: sums.lossSum, correct: sums.correct)
        }
    }
}
