import CAllocationCounter
import Foundation
import GPUNet
import Models
import NetIO
import TestSupport
import XCTest

/// A training step's host work allocates nothing on the host device: its
/// argument lists, closures, labels, shapes, scratch and the optimiser's
/// tensor lists are made once and reused. Counted as calls to malloc,
/// calloc and realloc in the whole process (`CAllocationCounter`) while
/// steps are queued as the trainer queues them, after warm-up steps that
/// make what is made once (scratch, plans, tensor lists). The host device
/// only: an OpenCL driver allocates on its own in every launch (PoCL: its
/// worker threads, and ~2 dozen calls inside clEnqueueNDRangeKernel), so
/// there a count cannot tell its calls from ours; heaptrack measures those
/// (docs/speed.md). The OpenCL paths share the trainer, the optimiser, the
/// dataset's gather shapes and NetworkPlan's bookkeeping counted here.
final class StepAllocationTests: XCTestCase {
    /// TinyConvNet at batch 16, the batch gathered from a device-resident
    /// set, Adam: no allocation over six steps after three warm-up steps.
    func testTinyConvNetStepAllocatesNothing() throws {
        for device in [HostDevice()] as [any Device] {
            let network = try TinyConvNet(device: device)
            try network.load(TinyConvNet.initialWeights(seed: 1))
            let data = try DeviceDataset(Self.syntheticSet(count: 160, channels: 1, side: 28), on: device)
            let optimizer = try Optimizer(
                .adam(), learningRate: 1e-3, parameters: network.parameterBuffers, names: network.parameterNames,
                device: device)
            let w = try network.workspace(batch: 16)
            let allocations = try Self.countAllocations(device: device, workspace: w) { range in
                try network.trainingStep(w, gathering: range, from: data)
                try optimizer.update(parameters: network.parameterBuffers, gradients: network.gradientBuffers)
            }
            XCTAssertEqual(allocations, 0, "allocations over 6 steps on \(device.info.summary)")
        }
    }

    /// ResNet-8 through ``NetworkPlan`` at batch 4, the batch cropped on the
    /// device as the ResNet recipe gathers it, SGD with momentum: no
    /// allocation over six steps after three warm-up steps.
    func testResNet8StepAllocatesNothing() throws {
        let resnet8 = try XCTUnwrap(BuiltinModels.named("resnet8", inputChannels: 1, classes: 10))
        for device in [HostDevice()] as [any Device] {
            let network = try NetworkPlan(resnet8, channels: 1, height: 28, width: 28, classes: 10, device: device)
            let data = try DeviceDataset(Self.syntheticSet(count: 40, channels: 1, side: 28), on: device)
            let optimizer = try Optimizer(
                .sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4), learningRate: 0.05,
                parameters: network.parameterBuffers, names: network.parameterNames, device: device)
            let w = try network.workspace(batch: 4)
            let allocations = try Self.countAllocations(device: device, workspace: w) { range in
                try data.gather(range, images: w.input, labels: w.labels, augmentation: .crop, seed: 1, epoch: 1)
                try network.trainingStep(w)
                try optimizer.update(parameters: network.parameterBuffers, gradients: network.gradientBuffers)
            }
            XCTAssertEqual(allocations, 0, "allocations over 6 steps on \(device.info.summary)")
        }
    }

    /// The counter sees an allocation (so that the tests above can fail):
    /// an array of a size known only at run time is a heap allocation.
    func testCounterCountsAnAllocation() {
        let count = Int.random(in: 100...200)
        ac_start()
        let values = [Float](repeating: 1, count: count)
        let allocations = ac_stop()
        XCTAssertEqual(values.count, count)
        XCTAssertGreaterThanOrEqual(allocations, 1)
    }

    /// Runs 3 warm-up steps, then counts the allocations made while 6
    /// more are queued, each step's results redirected into a slot of a
    /// ``StepResultLog`` as the trainer does (no block read falls among them).
    private static func countAllocations(
        device: any Device, workspace w: some NetworkWorkspace, step: (Range<Int>) throws -> Void
    ) throws -> Int {
        let batch = w.batch
        let log = try StepResultLog(device: device, maxBatch: batch, stepsPerRead: 50)
        let own = w.perSample
        defer { w.perSample = own }
        func run(_ steps: Range<Int>) throws {
            for s in steps {
                w.perSample = log.slot(forStep: s)
                try step((s * batch)..<((s + 1) * batch))
                _ = try log.queued(step: s, batch: batch)
            }
        }
        try run(0..<3)
        try device.finish()
        ac_start()
        try run(3..<9)
        let allocations = ac_stop()
        try device.finish()
        return allocations
    }

    /// `count` images of random bytes and labels.
    private static func syntheticSet(count: Int, channels: Int, side: Int) -> Dataset {
        var random = SeededRandom(seed: 5, stream: 0)
        return Dataset(
            name: "synthetic/train", count: count, channels: channels, rows: side, columns: side,
            pixels: (0..<(count * channels * side * side)).map { _ in UInt8(random.next() % 256) },
            labels: (0..<count).map { _ in UInt8(random.next() % 10) })
    }
}
