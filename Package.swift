// swift-tools-version:6.0
import PackageDescription

/// ConvSVD: train TinyConvNet on MNIST with our own OpenCL kernels or on the
/// host, then take it apart with the SVD.
///
/// Targets, bottom up (README.md and docs/architecture.md say more):
/// - `COpenCL`, `CLAPACK`, `CCairo`, `CZlib`: one system-library shim per C
///   library (Debian packages; see README).
/// - `CMPI`: a C shim that finds Open MPI at run time (`dlopen`), so the tool
///   builds and runs without it.
/// - `CHostKernels`: C for the host device: convolutions, pooled convolutions
///   and their gradients, max-pool and Adam with AVX2/FMA (plain C on CPUs
///   without them, chosen at run time), SGD, and the worker pool.
/// - `Kernels`: the OpenCL C sources (`common/`, `cpu/`, `gpu/`), embedded in
///   the binary at build time by the `EmbedKernels` plugin, which runs the
///   `embed-kernels` tool.
/// - `NetIO`: IDX (MNIST) and gzip, MD5, safetensors, the checkpoint, the
///   `--out` lock and atomic writes.
/// - `Models`: a network as a description (layers, shapes, PyTorch's names,
///   parameter and multiply-add counts, the built-in models, JSON model
///   files), below both training and analysis.
/// - `GPUNet`: the `Device` protocol, `HostDevice` and `OpenCLDevice` with its
///   kernel families, TinyConvNet, optimisers, the training loop, evaluation,
///   the benchmark and the self-test.
/// - `DataParallel`: the MPI process group for data-parallel training.
/// - `Analysis`: the analysis phases (2–7 and 9) on the host in float64 with
///   LAPACK, analysis.json, the results table and the study statistics; the
///   per-layer analysis of any `Models` description (BatchNorm folded).
/// - `Figures`: cairo figures (phase 8), report.html and study.html.
/// - `convsvd`: the command-line tool.
/// - `TestSupport`: the naive float64 references and helpers the test
///   targets share.
let package = Package(
    name: "ConvSVD",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "convsvd", targets: ["convsvd"]),
        .library(name: "Models", targets: ["Models"]),
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
        .target(name: "Models", dependencies: ["NetIO"]),
        .target(name: "GPUNet", dependencies: ["COpenCL", "CLAPACK", "CHostKernels", "Kernels", "NetIO", "Models"]),
        .target(name: "Analysis", dependencies: ["CLAPACK", "NetIO", "Models"]),
        .target(name: "Figures", dependencies: ["CCairo", "Analysis"]),
        .target(name: "DataParallel", dependencies: ["CMPI", "GPUNet"]),
        .executableTarget(
            name: "convsvd",
            dependencies: [
                "GPUNet", "NetIO", "Models", "Analysis", "Figures", "DataParallel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .target(name: "TestSupport", dependencies: ["GPUNet", "Models"], path: "Tests/TestSupport"),
        .target(name: "CAllocationCounter", path: "Tests/CAllocationCounter"),
        .testTarget(name: "NetIOTests", dependencies: ["NetIO", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "NetIO"]),
        .testTarget(
            name: "GPUNetTests", dependencies: ["GPUNet", "Models", "NetIO", "TestSupport", "CAllocationCounter"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "AnalysisTests", dependencies: ["Analysis", "Models", "NetIO", "TestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "FiguresTests", dependencies: ["Figures", "Analysis", "Models", "NetIO", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Models", "NetIO", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
