// swift-tools-version:6.0
import PackageDescription

/// libFuzzer targets for NetIO's readers and the model-file reader. NetIO, its
/// zlib shim and Models are the main package's own sources, reached through
/// the symbolic links in Sources/, so that this package needs nothing else
/// (the main package's remote dependencies and its GPU targets stay out of
/// the instrumented build).
/// Build and run: see README.md.
let package = Package(
    name: "ConvSVDFuzz",
    targets: [
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .target(name: "NetIO", dependencies: ["CZlib"], path: "Sources/NetIO"),
        .executableTarget(name: "FuzzIDX", dependencies: ["NetIO"]),
        .executableTarget(name: "FuzzSafetensors", dependencies: ["NetIO"]),
        .target(name: "Models", dependencies: ["NetIO"], path: "Sources/Models"),
        .executableTarget(name: "FuzzModelFile", dependencies: ["Models"]),
        .executableTarget(name: "FuzzCIFAR10", dependencies: ["NetIO"]),
    ],
    swiftLanguageModes: [.v5]
)
