/// The OpenCL C sources of ConvSVD, embedded in the binary.
///
/// Each `.cl` file has one job (GEMM, im2col, convolution, pooling, …) and
/// sits in the folder of its kernel family: `common/` (helpers and the
/// kernels both families launch), `cpu/`, `gpu/` (see README.md). The
/// `EmbedKernels` build plugin turns them into string literals at build
/// time, so the tool works from any directory and as an installed binary.
public enum KernelSource {
    /// The names of the embedded files ("common/gemm", "cpu/…", "gpu/…"):
    /// `common/common` (the helpers every file uses) first, then the rest sorted.
    public static var names: [String] {
        embedded.keys.sorted { $0 != $1 && ($0 == helpers || ($1 != helpers && $0 < $1)) }
    }

    private static let helpers = "common/common"

    /// The source of one file, by "folder/name" without `.cl`.
    public static func named(_ name: String) -> String? { embedded[name] }

    /// All files concatenated in ``names`` order: the source of every kernel's
    /// program (`-D KERNEL_<name>` keeps only that kernel).
    public static var all: String {
        names.map { "// ---- \($0).cl ----\n" + embedded[$0]! }.joined(separator: "\n")
    }
}
