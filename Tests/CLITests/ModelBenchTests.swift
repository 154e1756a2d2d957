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
            "batchnorm_relu.forward", "batchnorm_relu.backward", "add_relu.forward", "relu.backward",
            "avgpool.forward", "linear.forward", "linear.backward", "loss.forward", "optimizer.update",
        ] {
            XCTAssertTrue(passes.contains(expected), "no \(expected) in \(passes.sorted())")
        }
        // Every ReLU of ResNet-8 follows a BatchNorm or a residual sum and runs inside it in training.
        for fused in ["relu.forward", "add.forward"] {
            XCTAssertFalse(passes.contains(fused), "\(fused) in \(passes.sorted())")
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

        // Bytes are each tensor once, counted by hand here: conv1 reads 8
        // images of 28×28 and its 16×1×3×3 weight and writes 16 maps of 28×28
        // per image; SGD with momentum reads the 77,754 parameters, their
        // gradients and velocities and writes parameters and velocities.
        // (A block's one ReLU module runs twice: its names repeat.)
        let bytes = Dictionary(
            operations.map { ($0["operation"] as? String ?? "?", $0["bytes"] as? Int) }, uniquingKeysWith: { a, _ in a }
        )
        XCTAssertEqual(bytes["conv1.forward"], 4 * (8 * 784 + 144 + 8 * 16 * 784))
        XCTAssertEqual(bytes["conv1.weight_grad"], 4 * (8 * 784 + 8 * 16 * 784 + 144))
        XCTAssertEqual(bytes["optimizer.update"], 4 * 77_754 * 5)
        XCTAssertTrue(bytes.values.allSatisfy { ($0 ?? 0) > 0 }, "\(bytes)")
        // The host runs no kernels: no GPU model.
        XCTAssertNil(d["gpu_model"])

        // No torch at that path: no PyTorch figure, and the reason.
        let torch = try XCTUnwrap(report["pytorch"] as? [String: Any])
        XCTAssertNil(torch["seconds"])
        XCTAssertTrue((torch["note"] as? String ?? "").contains("no torch"), "\(torch)")
    }

    /// On an OpenCL device the report carries the modelled GPU step, each
    /// figure of it recomputed here from the operations' bytes and
    /// multiply-adds and the launches counted per step.
    func testResNet8GPUModelFollowsTheOperations() throws {
        _ = try openCLTestDeviceInfos()
        let r = try CLI.run([
            "bench", "--model", "resnet8", "--device", "opencl:0:0", "--data", try mnist, "--batch-sizes", "4",
            "--repeats", "1", "--json",
        ])
        XCTAssertEqual(r.status, 0, r.output)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let d = try XCTUnwrap((report["devices"] as? [[String: Any]])?.first)
        let model = try XCTUnwrap(d["gpu_model"] as? [String: Any])
        let bandwidth = try XCTUnwrap(model["bandwidth_bytes_per_second"] as? Double)
        let peak = try XCTUnwrap(model["fp32_flops_per_second"] as? Double)
        let launch = try XCTUnwrap(model["launch_seconds"] as? Double)
        let launches = try XCTUnwrap(d["launchesPerStep"] as? Double)
        XCTAssertEqual(model["launches"] as? Int, Int(launches.rounded()))
        var device = 0.0
        for op in try XCTUnwrap(d["operations"] as? [[String: Any]]) {
            let bytes = Double(try XCTUnwrap(op["bytes"] as? Int, "\(op)"))
            let flops = 2 * Double(op["multiply_adds"] as? Int ?? 0)
            device += max(bytes / bandwidth, flops / peak)
        }
        let modelled = try XCTUnwrap(model["device_seconds"] as? Double)
        XCTAssertEqual(modelled, device, accuracy: 1e-12 * device)
        let enqueue = Double(Int(launches.rounded())) * launch
        XCTAssertEqual(try XCTUnwrap(model["step_seconds"] as? Double), max(enqueue, device), accuracy: 1e-15)
        let epoch = try XCTUnwrap(model["epoch_seconds"] as? Double)
        XCTAssertEqual(epoch, max(enqueue, device) * 15_000, accuracy: 1e-9 * epoch, "60,000 images at batch 4")
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
