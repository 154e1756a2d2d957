import Models
import XCTest

/// Shape inference: output sides against hand-worked values, and every
/// error class naming the layer's path and both shapes.
final class ShapeInferenceTests: XCTestCase {
    private func conv(_ i: Int, _ o: Int, k: Int, s: Int = 1, p: Int = 0, bias: Bool = false, _ name: String? = nil)
        -> LayerDescription
    {
        LayerDescription(
            .conv(Conv2dSpec(inChannels: i, outChannels: o, kernelSize: k, stride: s, padding: p, bias: bias)),
            name: name)
    }

    private func assertError(
        _ layers: [LayerDescription], input: ActivationShape = .map(channels: 1, height: 28, width: 28),
        classes: Int? = nil, _ kind: ModelError.Kind, at location: String, mentions words: [String],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(
            try NetworkDescription(name: "t", layers: layers).summary(input: input, classes: classes), file: file,
            line: line
        ) { error in
            guard let e = error as? ModelError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, kind, "\(e)", file: file, line: line)
            XCTAssertEqual(e.location, location, "\(e)", file: file, line: line)
            for w in words {
                XCTAssertTrue(e.description.contains(w), "expected “\(w)” in: \(e)", file: file, line: line)
            }
        }
    }

    /// ⌊(n + 2p − k)/s⌋ + 1, worked by hand for each case.
    func testConvOutputSides() throws {
        let cases: [(k: Int, s: Int, p: Int, n: Int, out: Int)] = [
            (3, 1, 0, 28, 26), (3, 1, 1, 28, 28), (3, 2, 1, 28, 14), (3, 2, 1, 7, 4), (1, 2, 0, 7, 4),
            (5, 1, 2, 5, 5), (5, 2, 2, 28, 14), (5, 1, 0, 5, 1), (1, 1, 0, 1, 1), (3, 2, 0, 4, 1),
        ]
        for c in cases {
            let s = try NetworkDescription(name: "t", layers: [conv(2, 3, k: c.k, s: c.s, p: c.p, bias: true)])
                .summary(input: .map(channels: 2, height: c.n, width: c.n + 1))
            let widthOut = (c.n + 1 + 2 * c.p - c.k) / c.s + 1
            XCTAssertEqual(s.output, .map(channels: 3, height: c.out, width: widthOut), "\(c)")
            // 3·2·k² multiply-adds per output position; weight [3, 2, k, k] and bias [3].
            XCTAssertEqual(s.multiplyAdds, 3 * 2 * c.k * c.k * c.out * widthOut, "\(c)")
            XCTAssertEqual(s.parameters.map(\.shape), [[3, 2, c.k, c.k], [3]])
            XCTAssertEqual(s.parameters.map(\.name), ["0.weight", "0.bias"])
        }
    }

    func testPoolsFlattenAndDefaultNames() throws {
        let s = try NetworkDescription(
            name: "t",
            layers: [
                LayerDescription(.maxPool2), LayerDescription(.maxPool2), LayerDescription(.globalAveragePool),
                LayerDescription(.flatten), LayerDescription(.linear(LinearSpec(inFeatures: 1, outFeatures: 4))),
            ]
        ).summary(input: .map(channels: 1, height: 7, width: 5), classes: 4)
        // 7×5 → 3×2 (floor) → 1×1 → 1×1 → 1 → 4.
        XCTAssertEqual(s.layers.map(\.output.dimensions), [[1, 3, 2], [1, 1, 1], [1, 1, 1], [1], [4]])
        XCTAssertEqual(s.layers.map(\.path), ["0", "1", "2", "3", "4"])
        XCTAssertEqual(s.parameters.map(\.name), ["4.weight", "4.bias"])
    }

    /// A conv after a BatchNorm on the image needs its input gradient; the first conv does not.
    func testInputGradientsFollowLearnedParameters() throws {
        let first = try NetworkDescription(name: "t", layers: [conv(1, 2, k: 3), conv(2, 2, k: 3)])
            .summary(input: .map(channels: 1, height: 8, width: 8))
        XCTAssertEqual(first.layers.map(\.inputGradientNeeded), [false, true])
        // 2·1·9·36 + 2·2·9·16 = 648 + 576 forward; training 2·(2·648 + 3·576).
        XCTAssertEqual(first.multiplyAdds, 648 + 576)
        XCTAssertEqual(first.trainingFLOPsPerImage, 2 * (2 * 648 + 3 * 576))
        let normalised = try NetworkDescription(
            name: "t", layers: [LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 1))), conv(1, 2, k: 3)]
        ).summary(input: .map(channels: 1, height: 8, width: 8))
        XCTAssertEqual(normalised.trainingFLOPsPerImage, 2 * 3 * 648)
    }

    func testChannelsThatDoNotChain() {
        assertError(
            [conv(1, 8, k: 3, "a"), conv(16, 4, k: 3, "b")], .channelMismatch, at: "b",
            mentions: ["16 input channels", "8×26×26"])
        assertError(
            [conv(1, 8, k: 3), LayerDescription(.batchNorm(BatchNorm2dSpec(channels: 4)), name: "bn")],
            .channelMismatch, at: "bn", mentions: ["4 channels", "8×26×26"])
    }

    func testMapsThatShrinkToNothing() {
        assertError(
            [conv(1, 1, k: 5, "c")], input: .map(channels: 1, height: 4, width: 9), .emptyMap, at: "c",
            mentions: ["1×4×9", "5×5 kernel"])
        assertError(
            [LayerDescription(.maxPool2), LayerDescription(.maxPool2, name: "p")],
            input: .map(channels: 1, height: 3, width: 3), .emptyMap, at: "p", mentions: ["1×1×1"])
    }

    func testResidualBlockWhoseShapesDiffer() {
        let block = ResidualBlockSpec(body: [conv(1, 2, k: 3, s: 2, p: 1, "conv1")], shortcut: .identity)
        assertError(
            [LayerDescription(.residual(block), name: "layer1.0")], .residualMismatch, at: "layer1.0",
            mentions: ["2×14×14", "1×28×28", "identity"])
        let projected = ResidualBlockSpec(
            body: [conv(1, 2, k: 3, s: 2, p: 1, "conv1")], shortcut: .projection([conv(1, 2, k: 1)]))
        assertError(
            [LayerDescription(.residual(projected), name: "b")], .residualMismatch, at: "b",
            mentions: ["2×14×14", "2×28×28", "projection"])
        // Errors inside a block name the full path.
        let inner = ResidualBlockSpec(body: [conv(3, 1, k: 3, p: 1, "conv1")])
        assertError(
            [LayerDescription(.residual(inner), name: "layer2.0")], .channelMismatch, at: "layer2.0.conv1",
            mentions: ["1×28×28"])
        let shortcutError = ResidualBlockSpec(body: [conv(1, 1, k: 1)], shortcut: .projection([conv(2, 1, k: 1)]))
        assertError(
            [LayerDescription(.residual(shortcutError), name: "r")], .channelMismatch, at: "r.downsample.0",
            mentions: ["2 input"])
    }

    func testLinearInputSizeAndRank() {
        let fc = LayerDescription(.linear(LinearSpec(inFeatures: 100, outFeatures: 10)), name: "fc")
        assertError(
            [LayerDescription(.flatten), fc], input: .map(channels: 2, height: 7, width: 7), .featureMismatch,
            at: "fc", mentions: ["100 input features", "98"])
        assertError([fc], .wrongRank, at: "fc", mentions: ["1×28×28", "flatten"])
        assertError([LayerDescription(.flatten), conv(1, 1, k: 1, "c")], .wrongRank, at: "c", mentions: ["784"])
    }

    func testOutputThatIsNotTheClasses() {
        let fc = LayerDescription(.linear(LinearSpec(inFeatures: 784, outFeatures: 7)), name: "fc")
        assertError(
            [LayerDescription(.flatten), fc], classes: 10, .classMismatch, at: "", mentions: ["7", "10 classes"])
        assertError([LayerDescription(.relu)], classes: 10, .classMismatch, at: "", mentions: ["1×28×28", "flatten"])
    }

    func testDuplicateNamesBadValuesAndOverflow() {
        assertError(
            [conv(1, 1, k: 1, "c"), conv(1, 1, k: 1, "c")], .duplicateName, at: "c", mentions: ["c.weight"])
        assertError([conv(1, 1, k: 1, s: 0, "c")], .badValue, at: "c", mentions: ["stride"])
        assertError([conv(1, 1, k: 1, p: -1, "c")], .badValue, at: "c", mentions: ["padding"])
        assertError([conv(1, 1, k: 1, "bad name")], .badValue, at: "bad name", mentions: ["letters"])
        assertError([conv(1, 1, k: 1, "a..b")], .badValue, at: "a..b", mentions: ["letters"])
        assertError(
            [conv(1, 1 << 40, k: 1, "wide"), conv(1 << 40, 1 << 40, k: 1, "huge")], .tooLarge, at: "huge",
            mentions: ["2^63"])
        assertError(
            [LayerDescription(.residual(ResidualBlockSpec(body: [])), name: "r")], .badValue, at: "r",
            mentions: ["at least one layer"])
    }
}
