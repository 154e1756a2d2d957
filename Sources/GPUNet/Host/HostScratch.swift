/// Per-task scratch memory (one region per piece of parallel work) that grows on demand and is reused across
/// operations, so the hot path allocates nothing.
final class HostScratch {
    let workers: Int
    let slots: Int
    /// slots × workers pointers (slot-major), and their capacities in floats.
    private let pointers: UnsafeMutablePointer<UnsafeMutablePointer<Float>>
    private var capacities: [Int]
    /// Regions shared by the tasks (written before going parallel, read
    /// inside): an operation's rearranged weights (two float regions, for an
    /// operation that rearranges weights for another) and tap offsets.
    private var sharedFloats: [UnsafeMutablePointer<Float>] = [.allocate(capacity: 16), .allocate(capacity: 16)]
    private var sharedFloatCapacities = [16, 16]
    private var sharedInt32s = UnsafeMutablePointer<Int32>.allocate(capacity: 16), sharedInt32Capacity = 16
    /// ``HostDevice/widePlan(_:)``'s plans by shape (nil: the wide kernels do not apply).
    var widePlans: [Conv2dShape: HostDevice.WidePlan?] = [:]
    /// ``HostDevice/directTaps(_:)``'s taps by shape (nil: the unpadded reads do not apply).
    var directTaps: [Conv2dShape: HostDevice.DirectTaps?] = [:]

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
        for region in sharedFloats { region.deallocate() }
        sharedInt32s.deallocate()
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

    /// Shared float region `region` (0 or 1), grown to at least `count`
    /// floats (contents undefined).
    func shared(floats count: Int, region: Int = 0) -> UnsafeMutablePointer<Float> {
        if sharedFloatCapacities[region] < count {
            sharedFloats[region].deallocate()
            sharedFloats[region] = .allocate(capacity: count)
            sharedFloatCapacities[region] = count
        }
        return sharedFloats[region]
    }

    /// The shared int32 region, grown to at least `count` values (contents undefined).
    func shared(int32s count: Int) -> UnsafeMutablePointer<Int32> {
        if sharedInt32Capacity < count {
            sharedInt32s.deallocate()
            sharedInt32s = .allocate(capacity: count)
            sharedInt32Capacity = count
        }
        return sharedInt32s
    }
}
