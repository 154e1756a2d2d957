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
}
