import Foundation

/// Which device to compute on, as written on the command line:
/// `auto`, `host`, `opencl` or `opencl:P:D` (platform P, device D, as listed
/// by `convsvd devices`).
public enum DeviceSelector: Equatable, CustomStringConvertible, Sendable {
    /// The rule of ``Devices``: an OpenCL GPU, else the first OpenCL device, else the host.
    case auto
    /// ``HostDevice``: this CPU, with AVX2/FMA C kernels, OpenBLAS and Swift.
    case host
    /// `opencl`: the best OpenCL device by the same rule as `auto`, but
    /// never the host. (Swift does not allow a bare `openCL` beside
    /// `openCL(platform:device:)`, hence the name.)
    case openCLAny
    /// One OpenCL device by position.
    case openCL(platform: Int, device: Int)

    /// Parses `auto` | `host` | `opencl` | `opencl:P:D` (case-insensitive).
    public init(parsing text: String) throws {
        let word = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch word {
        case "auto": self = .auto
        case "host": self = .host
        case "opencl": self = .openCLAny
        default:
            let parts = word.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "opencl", let platform = Int(parts[1]), let device = Int(parts[2]),
                platform >= 0, device >= 0
            else {
                throw DeviceSelectionError.unknownSelector(text)
            }
            self = .openCL(platform: platform, device: device)
        }
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .host: return "host"
        case .openCLAny: return "opencl"
        case .openCL(let platform, let device): return "opencl:\(platform):\(device)"
        }
    }
}

/// A device selector that names nothing usable.
public enum DeviceSelectionError: Error, CustomStringConvertible, Equatable {
    case unknownSelector(String)

    public var description: String {
        switch self {
        case .unknownSelector(let text):
            return "unknown device '\(text)': expected auto, host, opencl or opencl:P:D "
                + "(P and D non-negative integers; see `convsvd devices`)"
        }
    }
}

/// The devices of this machine, and making one from a ``DeviceSelector``.
///
/// The `auto` rule, used everywhere: an OpenCL device of type GPU if there
/// is one (the first such), else the first OpenCL device (e.g. PoCL on the
/// CPU), else the host. A machine with no OpenCL platform at all is not an
/// error for `auto`: it gets the host.
public enum Devices {
    /// The host first, then every OpenCL device in platform and device order.
    /// Never throws: without an OpenCL platform (or when enumeration fails)
    /// the list is just the host.
    public static func available() -> [DeviceInfo] {
        let openCL = (try? OpenCLPlatforms.entries())?.map(\.info) ?? []
        return [HostDevice().info] + openCL
    }

    /// The device the `auto` rule picks from `devices` (as from ``available()``).
    public static func autoChoice(from devices: [DeviceInfo]) -> DeviceInfo {
        devices.first { $0.kind == .openCLGPU }
            ?? devices.first { $0.kind == .openCLOther }
            ?? devices.first { $0.kind == .host }
            ?? HostDevice().info
    }

    /// Makes the selected device; OpenCL devices build (or load from the
    /// kernel cache) each kernel when it is first launched, and run the
    /// kernel family `kernels` resolves to (the host has none and ignores it).
    public static func make(_ selector: DeviceSelector, kernels: KernelFamily.Choice = .auto) throws -> any Device {
        switch selector {
        case .host:
            return HostDevice()
        case .auto:
            guard let entry = try bestOpenCLEntry() else { return HostDevice() }
            return try OpenCLDevice(entry: entry, cache: defaultCache, kernels: kernels)
        case .openCLAny:
            guard let entry = try bestOpenCLEntry() else {
                throw OpenCLError.noPlatform(OpenCLPlatforms.noPlatformHint)
            }
            return try OpenCLDevice(entry: entry, cache: defaultCache, kernels: kernels)
        case .openCL(let platform, let device):
            return try OpenCLDevice(platform: platform, device: device, cache: defaultCache, kernels: kernels)
        }
    }

    static var defaultCache: OpenCLProgramCache {
        OpenCLProgramCache(directory: OpenCLProgramCache.defaultDirectory)
    }

    /// The auto rule over OpenCL devices only; nil when there are none.
    static func bestOpenCLEntry() throws -> OpenCLDeviceEntry? {
        let entries = try OpenCLPlatforms.entries()
        return entries.first { $0.info.kind == .openCLGPU } ?? entries.first
    }
}
