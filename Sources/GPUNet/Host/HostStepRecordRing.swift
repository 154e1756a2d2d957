/// ``StepRecordRing`` on the host: the slots are host buffers, and a read
/// is a copy made at once (host operations are done when they return).
final class HostStepRecordRing: StepRecordRing {
    private let hostSlots: [HostBuffer]
    let floatsPerSlot: Int
    let slots: [Buffer]
    private let counters: DeviceCounters

    init(slots: Int, floatsPerSlot: Int, counters: DeviceCounters) {
        hostSlots = (0..<slots).map { _ in HostBuffer(count: floatsPerSlot, kind: .float32) }
        self.slots = hostSlots
        self.floatsPerSlot = floatsPerSlot
        self.counters = counters
    }

    func startReading(_ range: Range<Int>) throws -> PendingDownload {
        guard range.lowerBound >= 0, range.upperBound <= hostSlots.count else {
            throw HostDeviceError.invalidShape(
                operation: "startReading", reason: "slots \(range) of \(hostSlots.count)")
        }
        // The host's copy of a result counts as a wait, as a download does (``DeviceCounters``).
        counters.hostWaits += 1
        var values = [Float]()
        values.reserveCapacity(range.count * floatsPerSlot)
        for slot in range {
            values.append(contentsOf: UnsafeBufferPointer(start: hostSlots[slot].floats, count: floatsPerSlot))
        }
        return PendingDownload(values: values)
    }
}

extension HostDevice {
    public func makeStepRecordRing(slots: Int, floatsPerSlot: Int) throws -> any StepRecordRing {
        guard slots > 0, floatsPerSlot > 0 else {
            throw HostDeviceError.invalidShape(
                operation: "makeStepRecordRing", reason: "\(slots) slots of \(floatsPerSlot) floats")
        }
        return HostStepRecordRing(slots: slots, floatsPerSlot: floatsPerSlot, counters: counters)
    }
}
