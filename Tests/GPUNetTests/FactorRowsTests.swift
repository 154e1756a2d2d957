import GPUNet
import TestSupport
import XCTest

/// The cpu family's one-launch factorised layer (`conv2d_factor_rows_R`,
/// cpu/conv2d_factor_rows.cl) on each OpenCL test device, against the
/// float64 loops of `NaiveReference.fusedConvolutionForward`, and the rule
/// that picks it: the layers below that it runs (stride 1, rank ≤ 16, output
/// rows ≥ 16 wide, a pointwise factor) must launch it with the cpu family,
/// the others (rank 17, stride 2, rows narrower than 16 such as a 1×1 map,
/// no pointwise factor) must not, nor any layer with the gpu family.
///
/// Rule: outputs within 1e-4 absolute. Shapes: batch 1 and odd batches,
/// ranks 3, 5, 9 (accumulators 4, 8, 16) and 17, rows of 16 (one whole
/// block), 17, 20 and 33 (a last block that overlaps the one before), a
/// 28-wide row (ResNet's first stage), 1×1, 3×3 and 5×5 kernels.
final class FactorRowsTests: XCTestCase {
    /// (batch, in, rank, height, width, kernel, stride, padding, pointwise out or 0).
    static let layers: [(shape: Conv2dShape, pointwise: Int?)] = [
        (1, 2, 3, 1, 17, 3, 1, 1, 4), (3, 3, 5, 2, 16, 1, 1, 0, 7), (1, 1, 9, 3, 20, 3, 1, 1, 2),
        (2, 4, 9, 4, 33, 5, 1, 2, 16), (1, 16, 7, 3, 28, 3, 1, 1, 16), (5, 2, 16, 3, 18, 3, 1, 0, 3),
        (1, 3, 17, 2, 18, 3, 1, 1, 5), (3, 3, 5, 5, 35, 3, 2, 1, 6), (1, 4, 3, 1, 1, 1, 1, 0, 5),
        (2, 3, 5, 4, 15, 3, 1, 1, 6), (2, 3, 5, 3, 17, 3, 1, 1, 0),
    ].map {
        (
            Conv2dShape(
                batch: $0.0, inChannels: $0.1, outChannels: $0.2, height: $0.3, width: $0.4, kernelHeight: $0.5,
                kernelWidth: $0.5, stride: $0.6, padding: $0.7), $0.8 == 0 ? nil : $0.8
        )
    }

    /// Whether the rule of `OpenCLDevice+FactorRows.swift` runs `layer` as one launch with the cpu family.
    static func runsFactorRows(_ layer: FusedConvolution) -> Bool {
        let s = layer.shape
        return layer.pointwiseChannels != nil && s.stride == 1 && s.outChannels <= 16 && s.outWidth >= 16
    }

    func testFactorRowsMatchTheFloat64Reference() throws {
        var worst = 0.0
        var (launchedFactorRows, cpuDevices) = (0, 0)
        for device in try openCLTestDevices() {
            let openCL = try XCTUnwrap(device as? OpenCLDevice)
            let on = device.info.summary
            if openCL.kernelFamily == .cpu { cpuDevices += 1 }
            for (index, (shape, pointwise)) in Self.layers.enumerated() {
                for (bias, residual, relu) in [(false, false, false), (true, true, true), (false, true, false)] {
                    let layer = FusedConvolution(
                        shape: shape, pointwiseChannels: pointwise, residual: residual, relu: relu)
                    let seed = UInt64(1300 + 10 * index)
                    let o = layer.outChannels
                    let input = randomFloats(shape.inputCount, seed: seed)
                    let weight = randomFloats(shape.weightCount, scale: 0.5, seed: seed + 1)
                    let b = bias ? randomFloats(shape.outChannels, scale: 0.5, seed: seed + 2) : nil
                    let pw = pointwise.map { randomFloats($0 * shape.outChannels, scale: 0.5, seed: seed + 3) }
                    let scale = randomFloats(o, seed: seed + 4).map { 1 + 0.5 * $0 }
                    let shift = randomFloats(o, scale: 0.5, seed: seed + 5)
                    let r = residual ? randomFloats(layer.outputCount, seed: seed + 6) : nil
                    let expected: [Double] = NaiveReference.fusedConvolutionForward(
                        layer, input: input, weight: weight, bias: b, pointwiseWeight: pw, scale: scale, shift: shift,
                        residual: r)
                    openCL.launchLog = []
                    let out = try openCL.fusedConvolutionForward(
                        layer, input: input, weight: weight, bias: b, pointwiseWeight: pw, scale: scale, shift: shift,
                        residual: r)
                    let launched = (openCL.launchLog ?? []).map(\.kernel)
                    openCL.launchLog = nil
                    let difference = maxAbsoluteDifference(out, expected)
                    XCTAssertLessThanOrEqual(difference, 1e-4, "\(layer) bias \(bias) on \(on)")
                    worst = max(worst, difference)
                    let factorRows = launched.filter { $0.hasPrefix("conv2d_factor_rows_") }
                    if openCL.kernelFamily == .cpu, Self.runsFactorRows(layer) {
                        let accumulators = shape.outChannels > 8 ? 16 : shape.outChannels > 4 ? 8 : 4
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
        // Six of the layers, each with three epilogues, on every cpu-family device.
        XCTAssertEqual(launchedFactorRows, cpuDevices * 3 * 6, "one-launch layers")
        if openCLTestFamilies().contains(.cpu) { XCTAssertGreaterThan(cpuDevices, 0) }
        print("FactorRowsTests: largest difference \(worst) (abs)")
    }
}
