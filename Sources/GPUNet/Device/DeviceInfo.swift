/// What a device is, as listed by `convsvd devices` and stored in reports.
public struct DeviceInfo: Codable, Hashable, Sendable {
    public enum Kind: String, Codable, Sendable {
        /// This machine's CPU: AVX2/FMA C kernels, OpenBLAS for the matrix products, Swift for the rest.
        case host
        /// An OpenCL device whose type is GPU.
        case openCLGPU = "opencl-gpu"
        /// Any other OpenCL device (PoCL's CPU device, accelerators).
        case openCLOther = "opencl-other"
    }

    public var kind: Kind
    /// The selector that picks this device again: `host` or `opencl:P:D`.
    public var selector: String
    public var name: String
    public var vendor: String
    /// CL_DEVICE_TYPE as text (GPU, CPU, ACCELERATOR …) or "host".
    public var type: String
    public var computeUnits: Int
    public var globalMemoryBytes: UInt64
    /// OpenCL C version, or the BLAS for the host.
    public var languageVersion: String
    public var driverVersion: String
    public var platformName: String
    /// The OpenCL kernel family: the one this device runs (``OpenCLDevice``),
    /// or in a listing the one `--kernels auto` would choose; nil for the host.
    public var kernelFamily: KernelFamily?

    public init(
        kind: Kind, selector: String, name: String, vendor: String, type: String,
        computeUnits: Int, globalMemoryBytes: UInt64, languageVersion: String,
        driverVersion: String, platformName: String, kernelFamily: KernelFamily? = nil
    ) {
        self.kind = kind
        self.selector = selector
        self.name = name
        self.vendor = vendor
        self.type = type
        self.computeUnits = computeUnits
        self.globalMemoryBytes = globalMemoryBytes
        self.languageVersion = languageVersion
        self.driverVersion = driverVersion
        self.platformName = platformName
        self.kernelFamily = kernelFamily
    }

    /// One line for logs and reports: "PoCL pthread-haswell-AMD EPYC
    /// (opencl:0:0, cpu kernels)".
    public var summary: String { "\(name) (\(selector)\(kernelFamily.map { ", \($0.rawValue) kernels" } ?? ""))" }
}
