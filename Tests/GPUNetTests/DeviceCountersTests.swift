import Foundation
import GPUNet
import TestSupport
import XCTest

/// ``DeviceCounters``: a known sequence of operations counts exactly the
/// launches and host waits that the counters' definition gives, on the host
/// and on each OpenCL device.
final class DeviceCountersTests: XCTestCase {
    /// Host: an operation launches when it hands work to the worker threads
    /// (at least 2 workers, and at least 2¹⁵ elements for an element-wise
    /// one), never when it runs on the calling thread; a download or a
    /// pending download is a wait; finish is not (nothing is queued).
    func testHostCountsHandOffsAndDownloads() throws {
        let device = HostDevice(workers: 2)
        let big = 1 << 16
        let a = try device.makeBuffer([Float](repeating: 1, count: big))
        let b = try device.makeBuffer([Float](repeating: 2, count: big))
        let out = try device.makeBuffer(count: big, kind: .float32)
        let small = try device.makeBuffer([Float](repeating: -1, count: 8))
        let smallOut = try device.makeBuffer(count: 8, kind: .float32)
        device.counters.reset()
        try device.residualAdd(count: big, a, b, output: out)  // 1 launch
        try device.reluForward(count: big, input: out, output: out)  // 1 launch
        try device.reluForward(count: 8, input: small, output: smallOut)  // on the calling thread: 0
        try device.finish()  // nothing queued: 0 waits
        XCTAssertEqual(device.counters.launches, 2)
        XCTAssertEqual(device.counters.hostWaits, 0)
        XCTAssertEqual(try device.floats(out)[0], 3)  // 1 wait
        _ = try device.startDownload(smallOut).floats()  // 1 wait
        XCTAssertEqual(device.counters.launches, 2)
        XCTAssertEqual(device.counters.hostWaits, 2)
        device.counters.reset()
        XCTAssertEqual(device.counters.launches, 0)
        XCTAssertEqual(device.counters.hostWaits, 0)
        // One worker runs everything on the calling thread: no launches.
        let single = HostDevice(workers: 1)
        let c = try single.makeBuffer([Float](repeating: 1, count: big))
        try single.residualAdd(count: big, c, c, output: c)
        XCTAssertEqual(single.counters.launches, 0)
    }

    /// OpenCL: ReLU and the residual sum are one kernel each, a fill and a
    /// copy one command each; a blocking read, the wait for a non-blocking
    /// read and finish are one wait each.
    func testOpenCLCountsEnqueuesAndWaits() throws {
        for device in try OpenCLTestDevice.all() {
            let n = 1000
            let a = try device.makeBuffer([Float](repeating: 1, count: n))
            let b = try device.makeBuffer([Float](repeating: 2, count: n))
            let out = try device.makeBuffer(count: n, kind: .float32)
            try device.finish()
            device.counters.reset()
            try device.residualAdd(count: n, a, b, output: out)  // 1 launch
            try device.reluForward(count: n, input: out, output: out)  // 1 launch
            try device.copy(out, to: b)  // 1 launch
            try device.fill(a, value: 0.5)  // 1 launch
            XCTAssertEqual(device.counters.launches, 4, device.info.summary)
            XCTAssertEqual(device.counters.hostWaits, 0, device.info.summary)
            XCTAssertEqual(try device.floats(b)[0], 3)  // 1 wait
            XCTAssertEqual(try device.startDownload(a).floats()[0], 0.5)  // 1 wait
            try device.finish()  // 1 wait
            XCTAssertEqual(device.counters.launches, 4, device.info.summary)
            XCTAssertEqual(device.counters.hostWaits, 3, device.info.summary)
        }
    }

    /// A TinyConvNet training step at batch 64 (forward, backward and Adam's
    /// update, as `convsvd bench` counts it; the trainer's batch gather and
    /// loss read-back are not part of it) launches exactly:
    /// - cpu family: 8: conv1's forward (staging conv2's input channels-last
    ///   and its weights patch-major), conv2's forward, the linear layer with
    ///   the loss, the linear backward with conv2's data gradient, conv2's
    ///   weight partials, conv1's weight partials, their reduce (conv1's
    ///   images; conv2's chunks too where it has several: more than 2
    ///   compute units), Adam.
    /// - gpu family: 9: the two pooled forwards, the linear layer with the
    ///   loss, the linear backward with conv2's data gradient, conv2's weight
    ///   partials and chunk sum, conv1's weight partials and chunk sum, Adam.
    /// A change that adds a launch fails here; one that removes one updates it.
    func testTinyConvNetStepLaunchesPerFamily() throws {
        for device in try OpenCLTestDevice.all() {
            let net = try TinyConvNet(device: device)
            try net.load(TinyConvNet.initialWeights(seed: 1))
            let w = try net.workspace(batch: 64)
            let optimizer = try Optimizer(.adam(), learningRate: 1e-3, parameters: net.parameters, device: device)
            let expected: Int
            switch device.kernelFamily {
            case .cpu: expected = 8
            case .gpu: expected = 9
            }
            // The first step builds the kernels; the second is counted.
            for counted in [false, true] {
                try device.finish()
                device.counters.reset()
                device.launchLog = []
                try net.forward(w)
                try net.backward(w)
                try optimizer.update(parameters: net.parameters, gradients: net.gradients)
                let kernels = (device.launchLog ?? []).map(\.kernel)
                device.launchLog = nil
                guard counted else { continue }
                XCTAssertEqual(device.counters.launches, expected, "\(device.info.summary): \(kernels)")
                XCTAssertEqual(kernels.count, device.counters.launches, "every launch a kernel: \(kernels)")
            }
        }
    }
}
