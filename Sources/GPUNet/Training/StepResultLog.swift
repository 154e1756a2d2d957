/// The results of an epoch's steps (each step's per-sample losses and
/// correct predictions), kept on the device and read by the host a block
/// of ``stepsPerRead`` steps at a time, so that the device's queue never
/// waits for the host inside an epoch.
///
/// Step n's loss writes its `perSample` into slot n mod 2k of a
/// ``StepRecordRing`` (k = ``stepsPerRead``, each slot 2·``maxBatch``
/// floats). When step n completes a block of k steps, the log queues one
/// read of the block's slots, then collects the block before it, whose read
/// was queued k steps earlier: that is the only host wait of a block, and
/// the device has normally finished that read long before.
///
/// Bounds and safety:
/// - The host runs at most 2k steps ahead of the results it has read (the
///   queue holds at most 2k steps' work), whatever the device's speed.
/// - A slot is written again 2k steps later, by a step queued only after
///   the read of its block has been waited for, so no read can see a later
///   step's results, and this holds on an out-of-order queue too.
/// - A block's read sees its steps' results because the queue runs in
///   order; an out-of-order queue would need the read to wait for the
///   events of the block's loss operations.
public final class StepResultLog {
    /// One step's results, as ``TinyConvNet/PendingBatchResult/value()`` sums them.
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
    private let ring: any StepRecordRing
    /// Batches of the steps queued since the last read was queued, from step `openStart`.
    private var openStart = 0
    private var openBatches: [Int]
    /// The block whose read is queued and not yet collected.
    private var inFlight: (start: Int, batches: [Int], download: PendingDownload)?

    public init(device: any Device, maxBatch: Int, stepsPerRead: Int) throws {
        precondition(maxBatch > 0 && stepsPerRead > 0)
        self.stepsPerRead = stepsPerRead
        self.maxBatch = maxBatch
        ring = try device.makeStepRecordRing(slots: 2 * stepsPerRead, floatsPerSlot: 2 * maxBatch)
        openBatches = []
        openBatches.reserveCapacity(stepsPerRead)
    }

    /// Where step `step` (counted from 0 in the epoch) writes its per-sample results.
    public func slot(forStep step: Int) -> Buffer { ring.slots[step % ring.slots.count] }

    /// Records that step `step` of `batch` images is queued (steps come in
    /// order from 0). Returns the results of a block when one arrives
    /// (in step order), else nothing.
    public func queued(step: Int, batch: Int) throws -> [StepResult] {
        precondition(step == openStart + openBatches.count && batch <= maxBatch, "steps must come in order")
        openBatches.append(batch)
        guard openBatches.count == stepsPerRead else { return [] }
        return try readOpenBlock()
    }

    /// Reads every result not yet read (the open block and the block in
    /// flight), waiting for them: at an epoch's end, or before stopping.
    /// The next step is step 0 again.
    public func drain() throws -> [StepResult] {
        var results = try readOpenBlock()
        results += try collect()
        openStart = 0
        return results
    }

    /// Queues the read of the open block, then collects the block in flight before it.
    private func readOpenBlock() throws -> [StepResult] {
        guard !openBatches.isEmpty else { return [] }
        let first = openStart % ring.slots.count
        let download = try ring.startReading(first..<(first + openBatches.count))
        let earlier = try collect()
        inFlight = (openStart, openBatches, download)
        openStart += openBatches.count
        openBatches.removeAll(keepingCapacity: true)
        return earlier
    }

    /// Waits for the block in flight and sums each of its steps' results.
    private func collect() throws -> [StepResult] {
        guard let block = inFlight else { return [] }
        inFlight = nil
        let values = try block.download.floats()
        let stride = ring.floatsPerSlot
        return block.batches.enumerated().map { index, batch in
            var loss = 0.0
            var correct = 0.0
            for i in 0..<batch {
                loss += Double(values[index * stride + i])
                correct += Double(values[index * stride + batch + i])
            }
            return StepResult(step: block.start + index, batch: batch, lossSum: loss, correct: Int(correct.rounded()))
        }
    }
}
