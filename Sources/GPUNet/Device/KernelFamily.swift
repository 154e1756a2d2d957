import Foundation

/// Which of the two OpenCL kernel families an ``OpenCLDevice`` launches for
/// the operations of a training step and of evaluation (the pooled
/// convolutions, the linear layer, the loss, Adam; Sources/Kernels/README.md
/// maps each operation to its kernels). The other operations launch the
/// kernels of `Sources/Kernels/common` in both families.
public enum KernelFamily: String, Codable, CaseIterable, Sendable {
    /// Shaped for a CPU driver such as PoCL (`Sources/Kernels/cpu`): few
    /// work-items, each with several vectors of work, as PoCL's threads want.
    case cpu
    /// Shaped for a GPU (`Sources/Kernels/gpu`): at batch 64 every launch of
    /// a step has at least 16,384 work-items, or one per output element where
    /// the output is smaller; data reused within a work-group sits in local
    /// memory; weight gradients are fixed-order work-group trees, so a seed
    /// gives the same weights on every run.
    case gpu

    /// The family for an OpenCL device of type `type` (``DeviceInfo/type``,
    /// e.g. "GPU" or "CPU"): gpu for a GPU or an accelerator, whose many
    /// slow lanes the CPU family's few long work-items would leave idle;
    /// cpu otherwise, where the gpu family's many short work-items and
    /// barriers cost more than they give (PoCL runs each work-item as a
    /// loop iteration on two threads).
    public static func automatic(forDeviceType type: String) -> KernelFamily {
        let words = type.uppercased().split(separator: "+")
        return words.contains("GPU") || words.contains("ACCELERATOR") ? .gpu : .cpu
    }

    /// The environment variable that chooses the family where nothing else
    /// does (`auto`): `cpu`, `gpu` or `auto`. The tests use it.
    public static let environmentVariable = "CONVSVD_KERNELS"

    /// `--kernels` as written: `auto` or a family.
    public enum Choice: Equatable, Sendable, CustomStringConvertible {
        case auto
        case family(KernelFamily)

        /// Parses `auto` | `cpu` | `gpu` (case-insensitive); `what` names the
        /// source in the error (an option or the environment variable).
        public init(parsing text: String, what: String = "--kernels") throws {
            let word = text.trimmingCharacters(in: .whitespaces).lowercased()
            if word == "auto" {
                self = .auto
                return
            }
            guard let family = KernelFamily(rawValue: word) else {
                throw KernelFamilyError.unknown(text, what: what)
            }
            self = .family(family)
        }

        public var description: String {
            switch self {
            case .auto: return "auto"
            case .family(let f): return f.rawValue
            }
        }

        /// The family and why, for a device of OpenCL type `deviceType`: an
        /// explicit family first, then `CONVSVD_KERNELS` in `environment`,
        /// then the device type (``automatic(forDeviceType:)``).
        public func resolve(
            deviceType: String,
            environment: [String: String] = ProcessInfo.processInfo.environment
        ) throws
            -> (family: KernelFamily, reason: String)
        {
            if case .family(let family) = self { return (family, "--kernels \(family.rawValue)") }
            if let text = environment[KernelFamily.environmentVariable], !text.isEmpty,
                case .family(let family) = try Choice(parsing: text, what: KernelFamily.environmentVariable)
            {
                return (family, "\(KernelFamily.environmentVariable)=\(family.rawValue)")
            }
            let family = KernelFamily.automatic(forDeviceType: deviceType)
            return (family, "device type \(deviceType)")
        }
    }
}

/// A kernel family name that is not `auto`, `cpu` or `gpu`.
public enum KernelFamilyError: Error, CustomStringConvertible, Equatable {
    case unknown(String, what: String)

    public var description: String {
        switch self {
        case .unknown(let text, let what):
            return "unknown kernel family '\(text)' in \(what): expected auto, cpu or gpu"
        }
    }
}
