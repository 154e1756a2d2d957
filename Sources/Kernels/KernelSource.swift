/// The OpenCL C sources of ConvSVD, embedded in the binary.
///
/// Each `.cl` file in this folder has one job (GEMM, im2col, convolution,
/// pooling, …). The `EmbedKernels` build plugin turns them into string
/// literals at build time, so the tool works from any directory and as an
/// installed binary.
public enum KernelSource {
    /// The names of the embedded files, sorted.
    public static var names: [String] { embedded.keys.sorted() }

    /// The source of one file, by name without `.cl`.
    public static func named(_ name: String) -> String? { embedded[name] }

    /// All files concatenated in name order: the source of every kernel's
    /// program (`-D KERNEL_<name>` keeps only that kernel).
    public static var all: String {
        names.map { "// ---- \($0).cl ----\n" + embedded[$0]! }.joined(separator: "\n")
    }
}
