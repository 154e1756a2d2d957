import Foundation
import NetIO
import TestSupport
import XCTest

/// One writer per output folder: while a process holds the folder's lock
/// (an exclusive `flock` on `.convsvd.lock`), `train`, `train --resume`,
/// `run` and `analyze` into that folder exit 5 naming the folder and the
/// holder's pid, and write nothing; the kernel releases the lock of a
/// killed holder, so the next run proceeds.
final class OutputLockTests: XCTestCase {
    var mnist: String { TestEnvironment.mnistDirectory?.path ?? "/nonexistent" }

    func temporaryDirectory() throws -> URL {
        let dir = try TestEnvironment.makeTemporaryDirectory("convsvd-lock")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Holds the lock the way any process would, with flock(2) on the file,
    /// not through the code under test. Returns the descriptor to close.
    func holdLock(on directory: URL, holder: String) throws -> Int32 {
        let fd = open(directory.appendingPathComponent(".convsvd.lock").path, O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0, "the test could not take the lock")
        let text = Array(holder.utf8)
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        return fd
    }

    func testEveryWritingCommandIsRefusedWhileAnotherProcessHoldsTheFolder() throws {
        let out = try temporaryDirectory()
        let elsewhere = try temporaryDirectory()
        let checkpoint = elsewhere.appendingPathComponent("checkpoint.safetensors")
        let weights = TinyConvNetWeights(
            conv1: (0..<72).map { Float($0 % 7) / 10 - 0.3 },
            conv2: (0..<1152).map { Float($0 % 11) / 20 - 0.25 },
            fcWeight: (0..<4000).map { Float($0 % 13) / 50 - 0.12 },
            fcBias: [Float](repeating: 0, count: 10))
        try Checkpoint(weights: weights).write(to: checkpoint)
        let fd = try holdLock(on: out, holder: "pid \(getpid()): the test")
        defer { close(fd) }

        let small = [
            "--device", "host", "--epochs", "1", "--train-limit", "500", "--test-limit", "100", "--data", mnist,
            "--out", out.path,
        ]
        for arguments in [
            ["train"] + small, ["train", "--resume"] + small, ["run", "--no-sweep"] + small,
            [
                "analyze", "--no-sweep", "--checkpoint", checkpoint.path, "--device", "host", "--data", mnist,
                "--out", out.path,
            ],
        ] {
            let r = try CLI.run(arguments)
            XCTAssertEqual(r.status, 5, "convsvd \(arguments.joined(separator: " ")):\n\(r.output)")
            XCTAssertTrue(r.stderr.contains("the output folder \(out.path) is in use"), r.stderr)
            XCTAssertTrue(r.stderr.contains("pid \(getpid())"), "the holder's pid is named:\n\(r.stderr)")
        }
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: out.path), [".convsvd.lock"],
            "a refused process writes nothing")
    }

    /// The holder is a real `convsvd train`, killed with SIGKILL: no exit
    /// handler runs, the kernel alone drops its lock.
    func testAKilledHoldersLockIsReleased() throws {
        let out = try temporaryDirectory()
        let small = [
            "--device", "host", "--train-limit", "500", "--test-limit", "100", "--data", mnist, "--out", out.path,
        ]
        let (holder, _, _) = try CLI.start(["train", "--epochs", "1000"] + small)
        let pid = holder.processIdentifier
        let lockFile = out.appendingPathComponent(".convsvd.lock")
        let deadline = Date().addingTimeInterval(60)
        func written() -> Bool {
            (try? String(contentsOf: lockFile, encoding: .utf8))?.hasPrefix("pid \(pid):") ?? false
        }
        while Date() < deadline, holder.isRunning, !written() { usleep(10_000) }
        XCTAssertTrue(written(), "the holder writes its pid into the lock file once it has the lock")

        let refused = try CLI.run(["train", "--epochs", "1"] + small)
        XCTAssertEqual(refused.status, 5, refused.output)
        XCTAssertTrue(refused.stderr.contains(out.path) && refused.stderr.contains("pid \(pid)"), refused.stderr)
        XCTAssertTrue(holder.isRunning, "the holder must still be running for the refusal to mean anything")

        kill(pid, SIGKILL)
        holder.waitUntilExit()
        XCTAssertEqual(holder.terminationReason, .uncaughtSignal)
        let after = try CLI.run(["train", "--epochs", "1"] + small)
        XCTAssertEqual(after.status, 0, after.output)
        XCTAssertEqual(
            try Checkpoint.read(from: out.appendingPathComponent("checkpoint.safetensors")).metadata["epoch"], "1")
    }
}
