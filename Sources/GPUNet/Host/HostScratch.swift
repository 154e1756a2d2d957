/// Per-task scratch memory (one region per piece of parallel work) that grows on demand and is reused across
/// operations, so the hot path allocates nothing.
final class HostScratch {
    let workers: Int
    let slots: Int
    /// slots × workers pointers (slot-major), and their capacities in floats.
    private let pointers: UnsafeMutablePointer<UnsafeMutablePointer<Float>>
    private var capacities: [Int]

    init(workers: Int, slots: Int = 2) {
        self.workers = workers
        self.slots = slots
        pointers = .allocate(capacity: workers * slots)
        for i in 0..<(workers * slots) { (pointers + i).initialize(to: .allocate(capacity: 16)) }
        capacities = Array(repeating: 16, count: workers * slots)
    }

    deinit {
        for i in 0..<(workers * slots) { pointers[i].deallocate() }
        pointers.deallocate()
    }

    /// Slot `slot` of every worker, each grown to at least `count` floats:
    /// element w is worker w's region. Call before going parallel.
    func slot(_ slot: Int, floats count: Int) -> UnsafeMutablePointer<UnsafeMutablePointer<Float>> {
        precondition(slot < slots, "HostScratch has \(slots) slots")
        for w in 0..<workers where capacities[slot * workers + w] < count {
            pointers[slot * workers + w].deallocate()
            pointers[slot * workers + w] = .allocate(capacity: count)
            capacities[slot * workers + w] = count
        }
        return pointers + slot * workers
    }
}
