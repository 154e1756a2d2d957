import Foundation
import GPUNet
import NetIO
import TestSupport
import XCTest

/// The kernel families: how one is chosen, that the gpu family trains
/// deterministically, and that its step launches would fill a GPU. (Their
/// numbers are held to the float64 references by the parity tests, which
/// run every OpenCL test once per family.)
final class KernelFamilyTests: XCTestCase {
    func testFamilyFollowsTheOptionThenTheEnvironmentThenTheDeviceType() throws {
        XCTAssertEqual(KernelFamily.automatic(forDeviceType: "GPU"), .gpu)
        XCTAssertEqual(KernelFamily.automatic(forDeviceType: "ACCELERATOR"), .gpu)
        XCTAssertEqual(KernelFamily.automatic(forDeviceType: "GPU+CPU+ACCELERATOR"), .gpu)  // Oclgrind
        XCTAssertEqual(KernelFamily.automatic(forDeviceType: "CPU"), .cpu)
        XCTAssertEqual(KernelFamily.automatic(forDeviceType: "host"), .cpu)
        let quiet: [String: String] = [:]
        XCTAssertEqual(try KernelFamily.Choice.auto.resolve(deviceType: "CPU", environment: quiet).family, .cpu)
        XCTAssertEqual(
            try KernelFamily.Choice.auto.resolve(deviceType: "CPU", environment: quiet).reason,
            "device type CPU")
        let env = [KernelFamily.environmentVariable: "GPU"]
        XCTAssertEqual(try KernelFamily.Choice.auto.resolve(deviceType: "CPU", environment: env).family, .gpu)
        XCTAssertEqual(try KernelFamily.Choice.family(.cpu).resolve(deviceType: "GPU", environment: env).family, .cpu)
        XCTAssertEqual(try KernelFamily.Choice(parsing: " Gpu "), .family(.gpu))
        XCTAssertEqual(try KernelFamily.Choice(parsing: "auto"), .auto)
        XCTAssertThrowsError(try KernelFamily.Choice(parsing: "fpga")) { error in
            XCTAssertEqual("\(error)", "unknown kernel family 'fpga' in --kernels: expected auto, cpu or gpu")
        }
        XCTAssertThrowsError(
            try KernelFamily.Choice.auto.resolve(
                deviceType: "CPU", environment: [KernelFamily.environmentVariable: "fast"])
        ) { error in
            XCTAssertTrue("\(error)".contains("CONVSVD_KERNELS"), "\(error)")
        }
    }

    func testTheDeviceReportsItsFamily() throws {
        let info = try OpenCLTestDevice.first().info
        guard case .openCL(let platform, let index) = try DeviceSelector(parsing: info.selector) else {
            return XCTFail("unexpected selector \(info.selector)")
        }
        for family in KernelFamily.allCases {
            let device = try OpenCLDevice(
                platform: platform, device: index, cache: OpenCLTestDevice.cache,
                kernels: .family(family))
            XCTAssertEqual(device.kernelFamily, family)
            XCTAssertEqual(device.info.kernelFamily, family)
            XCTAssertEqual(device.kernelFamilyReason, "--kernels \(family.rawValue)")
            XCTAssertTrue(device.info.summary.hasSuffix(", \(family.rawValue) kernels)"), device.info.summary)
        }
    }

    /// Training twice with one seed on the gpu family gives bit-identical
    /// weights: its weight gradients are fixed-order trees, no atomics.
    func testGPUFamilyTrainingWithOneSeedIsBitIdentical() throws {
        let dir = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST_DIR is not set and ../shared/data/mnist is missing")
        let data = try MNISTLoader.load(kind: .mnist, directory: dir)
        let info = try OpenCLTestDevice.first().info
        guard case .openCL(let platform, let index) = try DeviceSelector(parsing: info.selector) else {
            return XCTFail("unexpected selector \(info.selector)")
        }
        // 5 steps: 4 full batches of 64 and a last partial one of 14.
        let settings = TrainingSettings(epochs: 1, batchSize: 64, seed: 7, trainLimit: 270, testLimit: 50)
        func train() throws -> TinyConvNetWeights {
            let device = try OpenCLDevice(
                platform: platform, device: index, cache: OpenCLTestDevice.cache,
                kernels: .family(.gpu))
            let t = try Trainer(device: device, settings: settings, train: data.train, test: data.test)
            try t.run(outputDirectory: nil)
            return try t.network.weights()
        }
        let first = try train()
        let second = try train()
        XCTAssertEqual(first, second, "two gpu-family runs with seed 7 must give bit-identical weights")
        XCTAssertNotEqual(first, TinyConvNet.initialWeights(seed: 7), "training must change the weights")
    }

    /// At batch 64 every launch of a gpu-family training step has at least
    /// 16,384 work-items, or at least one per element of its operation's
    /// output where that output is smaller (the linear layer, the loss, the
    /// optimiser, the last add of a weight gradient). The output sizes are
    /// TinyConvNet's, written out here; the work-items are what the device
    /// enqueued (``KernelLaunch/globalSize``).
    func testGPUFamilyStepLaunchesFillAGPU() throws {
        let info = try OpenCLTestDevice.first().info
        guard case .openCL(let platform, let index) = try DeviceSelector(parsing: info.selector) else {
            return XCTFail("unexpected selector \(info.selector)")
        }
        let device = try OpenCLDevice(
            platform: platform, device: index, cache: OpenCLTestDevice.cache,
            kernels: .family(.gpu))
        let batch = 64
        let outputs: [String: Int] = [
            "conv1.forward_pool": batch * 8 * 13 * 13, "conv2.forward_pool": batch * 16 * 5 * 5,
            "fc.forward": batch * 10, "softmax_cross_entropy": batch * 10,
            "fc.backward": 400 * 10 + 10 + batch * 400,
            "conv2.backward_weight_pooled": 16 * 8 * 9, "conv2.backward_data_pooled": batch * 8 * 13 * 13,
            "conv1.backward_weight_pooled": 8 * 1 * 9, "adam.update": 72 + 1152 + 4000 + 10,
        ]
        let steps = try Benchmark.stepLaunches(on: device, batch: batch)
        XCTAssertEqual(Set(steps.map(\.operation)), Set(outputs.keys))
        for (operation, launches) in steps {
            XCTAssertFalse(launches.isEmpty, "\(operation) launched nothing")
            let needed = min(16_384, outputs[operation] ?? .max)
            for launch in launches {
                XCTAssertEqual(launch.family, .gpu)
                XCTAssertGreaterThanOrEqual(
                    launch.globalSize, needed,
                    "\(operation): \(launch.kernel) launched \(launch.globalSize) work-items")
                XCTAssertEqual(launch.globalSize % launch.localSize, 0, "\(launch.kernel)")
            }
        }
        // The two big weight-gradient reductions run as trees over many work-items.
        let partials = steps.flatMap(\.launches).filter { $0.kernel == "gpu_conv2d_pooled_weight_partials" }
        XCTAssertEqual(partials.count, 2)
    }
}
