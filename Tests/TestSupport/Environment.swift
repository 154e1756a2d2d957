import Foundation

/// Where the tests find things, from the environment `.ci/run` sets.
public enum TestEnvironment {
    /// The real MNIST folder: `MNIST_DIR`, else `../shared/data/mnist`
    /// relative to the package root. Nil when neither exists.
    public static var mnistDirectory: URL? {
        if let dir = ProcessInfo.processInfo.environment["MNIST_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        let fallback = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/mnist")
        return FileManager.default.fileExists(atPath: fallback.path) ? fallback : nil
    }

    /// The package root (the folder holding Package.swift), from this file's path.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    /// A fresh temporary folder, removed by the caller.
    public static func makeTemporaryDirectory(_ prefix: String = "convsvd-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
