/// One kernel launch as enqueued: what a step's parallel slack looks like
/// without a GPU to time it on (`convsvd bench` lists these per operation).
public struct KernelLaunch: Codable, Equatable, Sendable {
    public var kernel: String
    /// The family of the device that launched it (a common kernel launched
    /// by a gpu-family device says gpu).
    public var family: KernelFamily
    /// Work-items enqueued (the items asked for, padded to whole work-groups).
    public var globalSize: Int
    /// Work-items per work-group.
    public var localSize: Int
    /// CL_DEVICE_MAX_COMPUTE_UNITS of the device.
    public var computeUnits: Int

    public init(kernel: String, family: KernelFamily, globalSize: Int, localSize: Int, computeUnits: Int) {
        self.kernel = kernel
        self.family = family
        self.globalSize = globalSize
        self.localSize = localSize
        self.computeUnits = computeUnits
    }

    /// globalSize / computeUnits: how many work-items each compute unit gets.
    public var itemsPerComputeUnit: Double { Double(globalSize) / Double(max(computeUnits, 1)) }
}
