/// Small per-step records (a training step's per-sample losses and
/// correctness) that operations write on the device and the host reads in
/// blocks, several steps per transfer, without waiting in between.
///
/// The ring is one allocation of ``slots`` equal regions. Each slot is a
/// float ``Buffer`` of ``floatsPerSlot`` elements that any operation may
/// write (a loss writes its `perSample` there); ``startReading(_:)`` queues
/// one copy of a run of consecutive slots to host memory. On OpenCL the
/// slots are sub-buffers of one buffer, their offsets aligned as the device
/// requires, and the copy lands in pinned host memory
/// (`CL_MEM_ALLOC_HOST_PTR`, mapped once), which a GPU's copy engine reads
/// and writes directly.
///
/// Ordering: a read queued after the operations that write a run of slots
/// sees what they wrote (the queue runs in order); an operation queued
/// after the read may overwrite the slots only once the read has been
/// waited for, which ``StepResultLog`` arranges by never reusing a slot
/// before its block's read has been collected.
public protocol StepRecordRing: AnyObject {
    /// Float buffers of ``floatsPerSlot`` elements each.
    var slots: [Buffer] { get }
    var floatsPerSlot: Int { get }
    /// Queues the copy of the slots in `range` to the host behind the work
    /// queued so far and returns without waiting. The download's
    /// ``PendingDownload/floats()`` waits for it and gives
    /// `range.count × floatsPerSlot` values, slot after slot.
    func startReading(_ range: Range<Int>) throws -> PendingDownload
}
