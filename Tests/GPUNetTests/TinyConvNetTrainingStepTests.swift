import GPUNet
import NetIO
import TestSupport
import XCTest

/// ``TinyConvNet/trainingStep(_:)`` (in the gpu kernel family one kernel
/// per image for the forward pass, loss and backward pass, and one ordered
/// sum of the images' gradients) against the float64 chain of naive loops
/// of ``TinyConvNetTests/ReferencePass``, on every device, and the gpu
/// family against the host.
///
/// Rule: forward outputs (logits, per-sample losses and correct flags)
/// within 1e-4 absolute; gradients within 1e-4 relative to their tensor's
/// largest magnitude, because a gradient sums thousands of float32 terms in
/// an order that differs between correct implementations. The fused step's
/// sums have a fixed order: two runs give the same bits.
final class TinyConvNetTrainingStepTests: XCTestCase {
    /// The kernels of the fused step, in launch order.
    static let fusedKernels = ["gpu_tiny_step_image", "gpu_sum_image_partials"]

    func batch(_ count: Int, from start: Int = 0) throws -> (images: [Float], labels: [Int32]) {
        let dir = try XCTUnwrap(
            TestEnvironment.mnistDirectory, "MNIST_DIR is not set and ../shared/data/mnist is missing")
        let test = try MNISTLoader.load(kind: .mnist, directory: dir).test
        return (
            test.normalizedImages(start..<(start + count)), (start..<(start + count)).map { Int32(test.labels[$0]) }
        )
    }

    /// Runs one training step of `net` on `images`; the launches it made on OpenCL.
    func step(_ net: TinyConvNet, images: [Float], labels: [Int32]) throws -> (
        w: TinyConvNet.Workspace, kernels: [String]
    ) {
        let w = try net.workspace(batch: labels.count)
        try net.setBatch(w, images: images, labels: labels)
        let openCL = net.device as? OpenCLDevice
        openCL?.launchLog = []
        try net.trainingStep(w)
        let kernels = (openCL?.launchLog ?? []).map(\.kernel)
        openCL?.launchLog = nil
        return (w, kernels)
    }

    /// Batch 64 (a full batch), 1 and 5 (a partial last batch) of real
    /// MNIST images, every device: forward outputs and gradients against
    /// float64; in the gpu family the step is exactly the two fused launches.
    func testTrainingStepMatchesFloat64ReferenceOnEveryDevice() throws {
        let weights = TinyConvNet.initialWeights(seed: 42)
        for (count, start) in [(64, 0), (1, 100), (5, 200)] {
            let data = try batch(count, from: start)
            let reference = TinyConvNetTests.ReferencePass(weights: weights, images: data.images, labels: data.labels)
            for device in try testDevices() {
                let net = try TinyConvNet(device: device)
                try net.load(weights)
                let (w, kernels) = try step(net, images: data.images, labels: data.labels)
                let on = "\(device.info.summary) batch \(count)"
                if let openCL = device as? OpenCLDevice, openCL.kernelFamily == .gpu {
                    XCTAssertEqual(kernels, Self.fusedKernels, on)
                }
                for (what, buffer, expected) in [
                    ("logits", w.logits, reference.logits),
                    ("per-sample loss, correct", w.perSample, reference.perSample),
                ] {
                    let diff = maxAbsoluteDifference(try device.floats(buffer), expected)
                    XCTAssertLessThan(diff, TinyConvNetTests.forwardTolerance, "\(on) \(what): max |Δ| \(diff)")
                }
                let expected = [reference.gradConv1, reference.gradConv2, reference.gradFcWeight, reference.gradFcBias]
                for (name, (buffer, expected)) in zip(TinyConvNet.Parameters.names, zip(net.gradients.all, expected)) {
                    let diff = maxRelativeToScale(try device.floats(buffer), expected)
                    XCTAssertLessThan(
                        diff, TinyConvNetTests.gradientTolerance, "\(on) ∂loss/∂\(name): max |Δ|/scale \(diff)")
                }
            }
        }
    }

    /// The OpenCL devices of the gpu family (PoCL's CPU run with `--kernels gpu`).
    func gpuFamilyDevices() throws -> [OpenCLDevice] {
        let devices = try openCLTestDevices().compactMap { $0 as? OpenCLDevice }.filter { $0.kernelFamily == .gpu }
        if devices.isEmpty { throw XCTSkip("CONVSVD_KERNELS excludes the gpu family") }
        return devices
    }

    /// The gpu family's step against the host's on a batch of 64: logits
    /// and per-sample results absolutely, gradients relative to the host
    /// tensor's largest magnitude, over three steps of Adam (the later
    /// steps start from each device's own updated weights, which agree to
    /// float32 rounding).
    func testGPUFamilyStepMatchesTheHost() throws {
        let data = try batch(64, from: 1000)
        let weights = TinyConvNet.initialWeights(seed: 5)
        func run(_ device: any Device) throws -> [(logits: [Float], perSample: [Float], grads: [[Float]])] {
            let net = try TinyConvNet(device: device)
            try net.load(weights)
            let optimizer = try Optimizer(
                .adam(), learningRate: 1e-3, parameters: net.parameterBuffers, names: net.parameterNames,
                device: device)
            return try (0..<3).map { _ in
                let (w, _) = try step(net, images: data.images, labels: data.labels)
                let result = (
                    try device.floats(w.logits), try device.floats(w.perSample),
                    try net.gradients.all.map { try device.floats($0) }
                )
                try optimizer.update(parameters: net.parameterBuffers, gradients: net.gradientBuffers)
                return result
            }
        }
        let host = try run(HostDevice())
        for device in try gpuFamilyDevices() {
            for (index, (a, e)) in zip(try run(device), host).enumerated() {
                let on = "\(device.info.summary) step \(index + 1)"
                XCTAssertLessThan(maxAbsoluteDifference(a.logits, e.logits), 1e-4, "\(on) logits")
                XCTAssertLessThan(maxAbsoluteDifference(a.perSample, e.perSample), 1e-4, "\(on) per-sample")
                for (name, (x, y)) in zip(TinyConvNet.Parameters.names, zip(a.grads, e.grads)) {
                    let diff = maxRelativeToScale(x, y)
                    XCTAssertLessThan(diff, 1e-4, "\(on) ∂loss/∂\(name) vs host: \(diff)")
                }
            }
        }
    }

    /// Two runs of five steps of Adam from the same weights end with the
    /// same weights, bit for bit: no sum depends on scheduling.
    func testGPUFamilyStepIsDeterministic() throws {
        let data = try batch(37, from: 300)
        for device in try gpuFamilyDevices() {
            func train() throws -> TinyConvNetWeights {
                let net = try TinyConvNet(device: device)
                try net.load(TinyConvNet.initialWeights(seed: 11))
                let optimizer = try Optimizer(
                    .adam(), learningRate: 1e-3, parameters: net.parameterBuffers, names: net.parameterNames,
                    device: device)
                for _ in 0..<5 {
                    _ = try step(net, images: data.images, labels: data.labels)
                    try optimizer.update(parameters: net.parameterBuffers, gradients: net.gradientBuffers)
                }
                return try net.weights()
            }
            let first = try train()
            XCTAssertEqual(try train(), first, device.info.summary)
            XCTAssertNotEqual(first, TinyConvNet.initialWeights(seed: 11), "the steps moved the weights")
        }
    }

    /// The step that gathers its own batch from a data set on the device
    /// (``TinyConvNet/trainingStep(_:gathering:from:)``) on every device
    /// against the gather then the step, bit for bit: the same input,
    /// labels, logits, per-sample results and gradients; in the gpu family
    /// it is the two fused launches and no gather. A full batch and a
    /// partial last one of a shuffled order of real MNIST images.
    func testGatheringStepEqualsGatherThenStepBitForBit() throws {
        let dir = try XCTUnwrap(TestEnvironment.mnistDirectory, "MNIST_DIR is not set")
        let set = try MNISTLoader.load(kind: .mnist, directory: dir).test.prefix(40)
        let order = (0..<40).map { ($0 * 17 + 3) % 40 }
        for device in try testDevices() {
            let data = try DeviceDataset(set, on: device)
            try data.setOrder(order)
            for range in [0..<16, 32..<40] {
                func run(fused: Bool) throws -> (kernels: [String], outputs: [[Float]]) {
                    let net = try TinyConvNet(device: device)
                    try net.load(TinyConvNet.initialWeights(seed: 8))
                    let w = try net.workspace(batch: range.count)
                    let openCL = device as? OpenCLDevice
                    openCL?.launchLog = []
                    if fused {
                        try net.trainingStep(w, gathering: range, from: data)
                    } else {
                        try data.gather(range, into: w)
                        try net.trainingStep(w)
                    }
                    let kernels = (openCL?.launchLog ?? []).map(\.kernel)
                    openCL?.launchLog = nil
                    let labels = try device.int32s(w.labels).map(Float.init)
                    return (
                        kernels,
                        [
                            try device.floats(w.input), labels, try device.floats(w.logits),
                            try device.floats(w.perSample),
                        ]
                            + (try net.gradients.all.map { try device.floats($0) })
                    )
                }
                let fused = try run(fused: true)
                let separate = try run(fused: false)
                let on = "\(device.info.summary) \(range)"
                for (index, (a, b)) in zip(fused.outputs, separate.outputs).enumerated() {
                    XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(on) output \(index)")
                }
                XCTAssertEqual(
                    fused.outputs[1], order[range].map { Float(set.labels[$0]) }, "\(on) the batch's labels")
                if let openCL = device as? OpenCLDevice, openCL.kernelFamily == .gpu {
                    XCTAssertEqual(fused.kernels, Self.fusedKernels, on)
                }
            }
        }
    }

    /// A label outside 0..<10 gives that image a NaN loss and no correct
    /// prediction (as the separate loss kernel), the other images theirs.
    func testGPUFamilyStepGivesANaNLossForALabelOutOfRange() throws {
        let data = try batch(3, from: 7)
        for device in try gpuFamilyDevices() {
            let net = try TinyConvNet(device: device)
            try net.load(TinyConvNet.initialWeights(seed: 2))
            let (w, kernels) = try step(net, images: data.images, labels: [data.labels[0], 10, data.labels[2]])
            XCTAssertEqual(kernels, Self.fusedKernels)
            let perSample = try device.floats(w.perSample)
            XCTAssertTrue(perSample[1].isNaN, "\(perSample)")
            XCTAssertEqual(perSample[4], 0)
            XCTAssertTrue(perSample[0].isFinite && perSample[2].isFinite, "\(perSample)")
        }
    }
}
