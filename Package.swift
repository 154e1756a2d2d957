// swift-tools-version:6.0
import PackageDescription

/// ConvSVD: train TinyConvNet on MNIST with our own OpenCL kernels, then take
/// it apart with the SVD.
///
/// Layers, bottom up:
/// - `COpenCL`, `CLAPACK`, `CCairo`, `CZlib`: one system-library shim per C
///   library (Debian packages; see README).
/// - `Kernels`: the OpenCL C sources, embedded in the binary at build time by
///   the `EmbedKernels` plugin.
/// - `NetIO`: IDX (MNIST) and safetensors readers and writers, the checkpoint.
/// - `GPUNet`: the `Device` protocol, `HostDevice` and `OpenCLDevice`, layers,
///   TinyConvNet, optimisers, the training loop.
/// - `Analysis`: the SVD phases on the host with LAPACK.
/// - `Figures`: cairo figures and the HTML report.
/// - `CMPI`, `DataParallel`: Open MPI found at run time, data-parallel training.
/// - `convsvd`: the command-line tool.
let package = Package(
    name: "ConvSVD",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "convsvd", targets: ["convsvd"]),
        .library(name: "GPUNet", targets: ["GPUNet"]),
        .library(name: "Analysis", targets: ["Analysis"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        .systemLibrary(name: "COpenCL", path: "Sources/COpenCL"),
        .systemLibrary(name: "CLAPACK", path: "Sources/CLAPACK"),
        .systemLibrary(name: "CCairo", path: "Sources/CCairo"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Open MPI, loaded at run time (dlopen): see Sources/CMPI/include/cmpi.h.
        .target(name: "CMPI", linkerSettings: [.linkedLibrary("dl")]),

        .executableTarget(name: "embed-kernels", path: "Sources/embed-kernels"),
        .plugin(name: "EmbedKernels", capability: .buildTool(), dependencies: ["embed-kernels"]),
        .target(
            name: "Kernels",
            exclude: ["README.md"],
            plugins: ["EmbedKernels"]
        ),

        .target(name: "CHostKernels"),
        .target(name: "NetIO", dependencies: ["CZlib"]),
        .target(name: "GPUNet", dependencies: ["COpenCL", "CLAPACK", "CHostKernels", "Kernels", "NetIO"]),
        .target(name: "Analysis", dependencies: ["CLAPACK", "NetIO"]),
        .target(name: "Figures", dependencies: ["CCairo", "Analysis"]),
        .target(name: "DataParallel", dependencies: ["CMPI", "GPUNet"]),
        .executableTarget(
            name: "convsvd",
            dependencies: [
                "GPUNet", "NetIO", "Analysis", "Figures", "DataParallel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .target(name: "TestSupport", dependencies: ["GPUNet"], path: "Tests/TestSupport"),
        .testTarget(name: "NetIOTests", dependencies: ["NetIO", "TestSupport"]),
        .testTarget(name: "GPUNetTests", dependencies: ["GPUNet", "NetIO", "TestSupport"]),
        .testTarget(
            name: "AnalysisTests", dependencies: ["Analysis", "NetIO", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "FiguresTests", dependencies: ["Figures", "Analysis", "NetIO", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["NetIO", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
