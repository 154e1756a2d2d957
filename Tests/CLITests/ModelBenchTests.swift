import Foundation
import TestSupport
import XCTest

/// `convsvd bench --model resnet8` at a tiny size on the host: every field
/// of the JSON is there and the figures agree with each other, each
/// recomputed here from the others (no time is asserted beyond that).
final class ModelBenchTests: XCTestCase {
    var mnist: String {
        get throws { try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set").path }
    }

    func testResNet8BenchJSONIsConsistent() throws {
        let r = try CLI.run([
            "bench", "--model", "resnet8", "--device", "host", "--data", try mnist, "--batch-sizes", "8",
            "--repeats", "5", "--epoch", "--train-limit", "20", "--json", "--pytorch", "--python",
            "/nonexistent/python",
        ])
        XCTAssertEqual(r.status, 0, r.output)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["model"] as? String, "resnet8")
        XCTAssertEqual(report["batch"] as? Int, 8)
        XCTAssertEqual(report["epoch_images"] as? Int, 20)
        let peak = try XCTUnwrap((report["sgemm_peak"] as? [String: Any])?["gflops_per_second"] as? Double)
        XCTAssertGreaterThan(peak, 0)
        XCTAssertGreaterThan(try XCTUnwrap(report["peak_resident_bytes"] as? Int), 10_000_000)
        let devices = try XCTUnwrap(report["devices"] as? [[String: Any]])
        XCTAssertEqual(devices.count, 1)
        let d = devices[0]
        XCTAssertEqual((d["device"] as? [String: Any])?["selector"] as? String, "host")
        // Forward, backward and update hand work to the workers; the host
        // waits once per block of 50 steps, for the block's results.
        XCTAssertGreaterThan(try XCTUnwrap(d["launchesPerStep"] as? Double), 0)
        XCTAssertEqual(try XCTUnwrap(d["hostWaitsPerStep"] as? Double), 1.0 / 50, "one wait per block of 50 steps")

        let step = try XCTUnwrap((d["step"] as? [String: Any])?["median_seconds"] as? Double)
        let operations = try XCTUnwrap(d["operations"] as? [[String: Any]])
        var sum = 0.0
        var madds = 0
        var passes: Set<String> = []
        for op in operations {
            let median = try XCTUnwrap(op["median_seconds"] as? Double)
            XCTAssertGreaterThan(median, 0)
            sum += median
            passes.insert("\(op["kind"] as? String ?? "?").\(op["pass"] as? String ?? "?")")
            if let m = op["multiply_adds"] as? Int {
                madds += m
                let gflops = try XCTUnwrap(op["gflops_per_second"] as? Double)
                XCTAssertEqual(gflops, 2 * Double(m) / median / 1e9, accuracy: 1e-9 * gflops, "\(op)")
            } else {
                XCTAssertNil(op["gflops_per_second"])
            }
        }
        for expected in [
            "conv.forward", "conv.data_grad", "conv.weight_grad", "batchnorm.forward", "batchnorm.backward",
            "relu.forward", "relu.backward", "add.forward", "avgpool.forward", "linear.forward", "linear.backward",
            "loss.forward", "optimizer.update",
        ] {
            XCTAssertTrue(passes.contains(expected), "no \(expected) in \(passes.sorted())")
        }
        // Operations are timed one at a time inside steps, the host runs one
        // at a time: their medians add up to about a step (2× for a noisy,
        // shared machine; each is also timed between two clock reads).
        XCTAssertLessThanOrEqual(sum, 2 * step + 0.005, "operations \(sum) s, step \(step) s")
        // The operations' multiply-adds are the model's training work of a
        // batch, which the summary gives per image: 3,351 GFLOP an epoch of
        // 60,000 MNIST images for ResNet-8 (reference-figures.md).
        let epochGFLOP = try XCTUnwrap(report["training_gflop_per_epoch"] as? Double)
        XCTAssertEqual(2 * Double(madds) / 8 * 20 / 1e9, epochGFLOP, accuracy: 1e-9 * epochGFLOP)
        XCTAssertEqual(epochGFLOP / 20 * 60_000, 3351, accuracy: 1)

        let epoch = try XCTUnwrap(d["epoch"] as? [String: Any])
        XCTAssertEqual(epoch["measured"] as? Bool, true)
        XCTAssertEqual(epoch["images"] as? Int, 20)
        XCTAssertEqual(epoch["steps"] as? Int, 3)
        let seconds = try XCTUnwrap(epoch["seconds"] as? Double)
        let epochGflops = try XCTUnwrap(epoch["gflops_per_second"] as? Double)
        XCTAssertEqual(epochGflops, epochGFLOP / seconds, accuracy: 1e-9 * epochGflops)
        let fraction = try XCTUnwrap((report["epoch_fraction_of_peak"] as? [Double])?.first)
        XCTAssertEqual(fraction, epochGflops / peak, accuracy: 1e-12)

        // No torch at that path: no PyTorch figure, and the reason.
        let torch = try XCTUnwrap(report["pytorch"] as? [String: Any])
        XCTAssertNil(torch["seconds"])
        XCTAssertTrue((torch["note"] as? String ?? "").contains("no torch"), "\(torch)")
    }

    /// The text report says which epoch figure it prints and that PyTorch gave none.
    func testResNet8BenchTextLabelsTheEpochEstimate() throws {
        let r = try CLI.run([
            "bench", "--model", "resnet8", "--device", "host", "--data", try mnist, "--quick",
        ])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("estimate: step median × 7500 steps, not measured"), r.stdout)
        XCTAssertTrue(r.stdout.contains("results read every 50): "), r.stdout)
        XCTAssertTrue(r.stdout.contains("0.020 host waits"), r.stdout)
        XCTAssertTrue(r.stdout.contains("enqueue time"), r.stdout)
        XCTAssertTrue(r.stdout.contains("PyTorch: not asked (--pytorch); no PyTorch figure"), r.stdout)
        XCTAssertTrue(r.stdout.contains("layer3.0.downsample.0.weight_grad"), r.stdout)
    }
}
