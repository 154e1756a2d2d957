import GPUNet
import TestSupport
import XCTest

/// ReLU on special values, on every device: a NaN must pass through (as in
/// PyTorch) so that a diverging run reaches the loss check instead of being
/// silenced to 0. Exact comparison: no arithmetic is involved.
final class ReLUSpecialValueTests: XCTestCase {
    func testNaNPassesAndEverythingElseFollowsMaxWithZero() throws {
        // 37 values: two full 16-wide vectors and a 5-element tail.
        let specials: [Float] = [.nan, -1, 0, 2, -0.0, .infinity, -.infinity, 1e-30, -1e-30]
        let input = (0..<37).map { specials[$0 % specials.count] }
        for device in try testDevices() {
            let x = try device.makeBuffer(input)
            let y = try device.makeBuffer(count: 37, kind: .float32)
            try device.reluForward(count: 37, input: x, output: y)
            let out = try device.floats(y)
            for (i, (a, b)) in zip(input, out).enumerated() {
                if a.isNaN {
                    XCTAssertTrue(b.isNaN, "\(device.info.selector) [\(i)]: NaN became \(b)")
                } else {
                    XCTAssertEqual(b, a > 0 ? a : 0, "\(device.info.selector) [\(i)]: relu(\(a))")
                }
            }
        }
    }
}
