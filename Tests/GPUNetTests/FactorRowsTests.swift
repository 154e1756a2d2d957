import GPUNet
import TestSupport
import XCTest

/// The cpu family's one-launch factorised layer (`conv2d_factor_rows_R`,
/// cpu/conv2d_factor_rows.cl) on each OpenCL test device, against the
/// float64 loops of `NaiveReference.fusedConvolutionForward`, and the rule
/// that picks it (OpenCLDevice+FactorRows.swift): stride 1, a pointwise
/// factor, rank ≤ 18 with R·⌈oW/16⌉ ≤ ⌈r/16⌉·oW (R = 4, 6, 8, 12, 16, 18,
/// the smallest ≥ r), rows ≥ 16 wide or a padded input. The layers marked
/// below must launch it with the cpu family and no `fused_epilogue`, the
/// others (rank 9 on 20-wide rows, rank 16 on 14, rank 20, stride 2, a 1×1
/// map, 12-wide rows unpadded, no pointwise factor) and every layer with the
/// gpu family must not.
///
/// Rule: outputs within 1e-4 absolute. Shapes: batch 1 and odd batches,
/// ranks 3, 5, 7, 9, 16, 17 (R = 4, 6, 8, 12, 16, 18), rows of 16 (one
/// whole block), 17, 18 and 33 (a last block overlapping the one before),
/// 28 (ResNet's first stage), and narrower than 16 (15, 14, 7: lanes past
/// the row read into the next padded row or the slack and are not stored),
/// 1×1, 3×3 and 5×5 kernels.
final class FactorRowsTests: XCTestCase {
    /// (batch, in, rank, height, width, kernel, stride, padding, pointwise out or 0, one launch on cpu).
    static let layers: [(shape: Conv2dShape, pointwise: Int?, oneLaunch: Bool)] = [
        (1, 2, 3, 1, 17, 3, 1, 1, 4, true), (3, 3, 5, 2, 16, 1, 1, 0, 7, true), (1, 1, 9, 3, 16, 3, 1, 1, 2, true),
        (2, 4, 5, 4, 33, 5, 1, 2, 16, true), (1, 16, 7, 3, 28, 3, 1, 1, 16, true), (5, 2, 16, 3, 18, 3, 1, 0, 3, true),
        (1, 3, 17, 2, 18, 3, 1, 1, 5, true), (2, 3, 5, 4, 15, 3, 1, 1, 6, true), (1, 5, 17, 3, 14, 3, 1, 1, 9, true),
        (1, 2, 3, 7, 7, 3, 1, 1, 4, true), (1, 1, 9, 3, 20, 3, 1, 1, 2, false), (1, 3, 16, 2, 14, 3, 1, 1, 4, false),
        (1, 2, 20, 2, 16, 3, 1, 1, 3, false), (3, 3, 5, 5, 35, 3, 2, 1, 6, false), (1, 4, 3, 1, 1, 1, 1, 0, 5, false),
        (2, 3, 3, 3, 14, 3, 1, 0, 5, false), (2, 3, 5, 3, 17, 3, 1, 1, 0, false),
    ].map {
        (
            Conv2dShape(
                batch: $0.0, inChannels: $0.1, outChannels: $0.2, height: $0.3, width: $0.4, kernelHeight: $0.5,
                kernelWidth: $0.5, stride: $0.6, padding: $0.7), $0.8 == 0 ? nil : $0.8, $0.9
        )
    }

    func testFactorRowsMatchTheFloat64Reference() throws {
        var worst = 0.0
        var (launchedFactorRows, cpuDevices) = (0, 0)
        for device in try openCLTestDevices() {
            let openCL = try XCTUnwrap(device as? OpenCLDevice)
            let on = device.info.summary
            if openCL.kernelFamily == .cpu { cpuDevices += 1 }
            for (index, (shape, pointwise, oneLaunch)) in Self.layers.enumerated() {
                for (bias, residual, relu) in [(false, false, false), (true, true, true), (false, true, false)] {
                    let layer = FusedConvolution(
                        shape: shape, pointwiseChannels: pointwise, residual: residual, relu: relu)
                    let c = FusedConvolutionCase(layer, bias: bias, seed: UInt64(1300 + 10 * index))
                    let expected = c.expected
                    openCL.launchLog = []
                    let out = try c.run(on: openCL)
                    let launched = (openCL.launchLog ?? []).map(\.kernel)
                    openCL.launchLog = nil
                    let difference = maxAbsoluteDifference(out, expected)
                    XCTAssertLessThanOrEqual(difference, 1e-4, "\(layer) bias \(bias) on \(on)")
                    worst = max(worst, difference)
                    let factorRows = launched.filter { $0.hasPrefix("conv2d_factor_rows_") }
                    if openCL.kernelFamily == .cpu, oneLaunch {
                        let accumulators = [4, 6, 8, 12, 16, 18].first { $0 >= shape.outChannels }!
                        XCTAssertEqual(factorRows, ["conv2d_factor_rows_\(accumulators)"], "\(layer) on \(on)")
                        XCTAssertFalse(launched.contains("fused_epilogue"), "\(layer) on \(on)")
                        launchedFactorRows += 1
                    } else {
                        XCTAssertEqual(factorRows, [], "\(layer) on \(on)")
                        XCTAssertTrue(launched.contains("fused_epilogue"), "\(layer) on \(on)")
                    }
                }
            }
        }
        // Ten of the layers, each with three epilogues, on every cpu-family device.
        XCTAssertEqual(launchedFactorRows, cpuDevices * 3 * 10, "one-launch layers")
        if openCLTestFamilies().contains(.cpu) { XCTAssertGreaterThan(cpuDevices, 0) }
        print("FactorRowsTests: largest difference \(worst) (abs)")
    }
}
