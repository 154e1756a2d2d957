import Foundation
import NetIO
import TestSupport
import XCTest

/// Bad command lines and unusable outputs: each gives one clear message
/// naming the option, the documented exit code, and touches no output.
final class CommandLineErrorTests: XCTestCase {
    var mnist: String { TestEnvironment.mnistDirectory?.path ?? "/nonexistent" }

    func assertFails(
        _ arguments: [String], status: Int32, mentions words: [String],
        environment: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let r = try CLI.run(arguments, environment: environment)
        XCTAssertEqual(
            r.status, status, "convsvd \(arguments.joined(separator: " ")):\n\(r.output)", file: file, line: line)
        for word in words {
            XCTAssertTrue(r.stderr.contains(word), "expected “\(word)” in:\n\(r.stderr)", file: file, line: line)
        }
    }

    func testNonPositiveEpochs() throws {
        try assertFails(["train", "--epochs", "0", "--data", mnist], status: 64, mentions: ["--epochs", "at least 1"])
    }

    func testZeroBatchSize() throws {
        try assertFails(["train", "--batch-size", "0", "--data", mnist], status: 64, mentions: ["--batch-size"])
    }

    func testNonPositiveLearningRate() throws {
        try assertFails(["train", "--lr=-1", "--data", mnist], status: 64, mentions: ["--lr", "positive"])
        try assertFails(["train", "--lr", "0", "--data", mnist], status: 64, mentions: ["--lr"])
    }

    func testUnknownOptimizer() throws {
        try assertFails(["train", "--optimizer", "rmsprop", "--data", mnist], status: 64, mentions: ["--optimizer"])
    }

    func testUnknownDevice() throws {
        try assertFails(
            ["train", "--device", "tpu", "--epochs", "1", "--data", mnist, "--out", tempPath()],
            status: 3, mentions: ["tpu"])
    }

    func testOpenCLDeviceThatDoesNotExist() throws {
        try assertFails(
            ["train", "--device", "opencl:9:9", "--epochs", "1", "--data", mnist, "--out", tempPath()],
            status: 3, mentions: ["opencl:9:9"])
    }

    /// A kernel family that does not exist, in `CONVSVD_KERNELS` or in
    /// `--kernels`, is a bad setting: exit 64 (not 1, which is a failed
    /// check), naming the variable or option and the value, on every device
    /// (the host too: the setting is wrong whoever reads it) and in `bench`.
    func testUnknownKernelFamilyIsAUsageError() throws {
        for device in ["opencl", "host"] {
            let out = tempPath()
            defer { try? FileManager.default.removeItem(atPath: out) }
            try assertFails(
                ["train", "--device", device, "--epochs", "1", "--data", mnist, "--out", out],
                status: 64, mentions: ["CONVSVD_KERNELS", "'foo'", "auto, cpu or gpu"],
                environment: ["CONVSVD_KERNELS": "foo"])
            try assertFails(
                ["train", "--device", device, "--kernels", "fpga", "--epochs", "1", "--data", mnist, "--out", out],
                status: 64, mentions: ["--kernels", "'fpga'", "auto, cpu or gpu"])
        }
        try assertFails(
            ["bench", "--device", "host", "--quick"], status: 64, mentions: ["CONVSVD_KERNELS", "'foo'"],
            environment: ["CONVSVD_KERNELS": "foo"])
        try assertFails(
            ["bench", "--device", "host", "--kernels", "fpga", "--quick"], status: 64, mentions: ["'fpga'"])
    }

    /// `--kernels cpu|gpu` with the host: the run goes on, with a warning
    /// that names the option, the device and that it has no effect; with
    /// `--kernels auto` (nothing asked) there is none.
    func testKernelFamilyForTheHostIsWarnedAbout() throws {
        let warning = "has no effect on"
        for kernels in ["gpu", "cpu"] {
            let out = tempPath()
            defer { try? FileManager.default.removeItem(atPath: out) }
            let r = try CLI.run([
                "train", "--device", "host", "--kernels", kernels, "--epochs", "1", "--batch-size", "32",
                "--train-limit", "64", "--test-limit", "32", "--data", mnist, "--out", out,
            ])
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(
                r.stderr.contains("convsvd: warning: --kernels \(kernels) \(warning)")
                    && r.stderr.contains("--device host"), r.stderr)
        }
        let out = tempPath()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let quiet = try CLI.run([
            "train", "--device", "host", "--kernels", "auto", "--epochs", "1", "--batch-size", "32",
            "--train-limit", "64", "--test-limit", "32", "--data", mnist, "--out", out,
        ])
        XCTAssertEqual(quiet.status, 0, quiet.output)
        XCTAssertFalse(quiet.stderr.contains(warning), quiet.stderr)
        // bench warns before measuring: here it then stops at the empty
        // data files of --epoch (exit 2), so nothing is timed or downloaded.
        let empty = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        for name in [
            "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
        ] {
            try Data().write(to: empty.appendingPathComponent(name))
        }
        try assertFails(
            ["bench", "--device", "host", "--kernels", "gpu", "--epoch", "--data", empty.path],
            status: 2, mentions: ["convsvd: warning: --kernels gpu \(warning)", "--device host", "empty file"])
    }

    func testOutNamingAnExistingFile() throws {
        let file = tempPath()
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        try assertFails(
            ["train", "--epochs", "1", "--data", mnist, "--out", file], status: 5, mentions: [file, "existing file"])
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), "keep me")
    }

    func testOutputFolderThatCannotBeCreated() throws {
        // /proc refuses new folders even to root, unlike a chmod'ed folder.
        try assertFails(
            ["train", "--epochs", "1", "--data", mnist, "--out", "/proc/convsvd-cannot-write"],
            status: 5, mentions: ["/proc/convsvd-cannot-write"])
    }

    func testUnknownDataset() throws {
        try assertFails(
            ["train", "--dataset", "cifar", "--data", mnist, "--out", tempPath()], status: 64,
            mentions: ["--dataset", "cifar"])
    }

    /// CIFAR-10's 3×32×32 images do not fit TinyConvNet: refused before any file is read.
    /// Refused before anything is written: no --out folder appears.
    func testDatasetWhoseImagesDoNotFitTheModel() throws {
        for command in ["train", "run", "study"] {
            let out = tempPath()
            try assertFails(
                [command, "--dataset", "cifar10", "--data", "/nonexistent", "--out", out], status: 64,
                mentions: ["--dataset cifar10", "CIFAR-10 images are 3×32×32", "takes 1×28×28"])
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(command) created \(out)")
        }
    }

    func testMissingDataFolderSaysWhichFilesToPutWhere() throws {
        let empty = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        let r = try CLI.run(["train", "--epochs", "1", "--data", empty.path, "--out", tempPath()])
        XCTAssertEqual(r.status, 2, r.output)
        XCTAssertTrue(r.stderr.contains(empty.path), r.stderr)
        XCTAssertTrue(r.stderr.contains("train-images-idx3-ubyte"), r.stderr)
    }

    func testNoOpenCLPlatform() throws {
        let empty = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        let env = ["OCL_ICD_VENDORS": empty.path]
        let listing = try CLI.run(["devices"], environment: env)
        XCTAssertEqual(listing.status, 0, listing.output)
        XCTAssertTrue(listing.stdout.contains("host  ← auto"), listing.stdout)
        XCTAssertTrue(listing.stdout.contains("no OpenCL platform"), listing.stdout)
        try assertFails(
            ["train", "--device", "opencl", "--epochs", "1", "--data", mnist, "--out", tempPath()],
            status: 3, mentions: ["OpenCL"], environment: env)
    }

    func tempPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("convsvd-cli-\(UUID().uuidString)").path
    }
}
