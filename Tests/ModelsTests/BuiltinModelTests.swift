import Models
import NetIO
import XCTest

/// The built-in models against figures worked out by hand, outside the code
/// under test: counts from the layer formulas written out below, names from
/// torchvision's ResNet and from TinyConvNet's checkpoint (NetIO).
final class BuiltinModelTests: XCTestCase {
    /// Hand counts of the CIFAR-style ResNet (He et al. 2016 §4.2, projection
    /// shortcuts) on a square image: a k×k conv from i to o channels has
    /// k²·i·o weights and k²·i·o·side² multiply-adds at its output side; a
    /// BatchNorm has 2·C learned parameters; fc has 64·classes + classes.
    private func handCounts(blocksPerStage n: Int, channels: Int, side: Int, classes: Int) -> (
        parameters: Int, macs: Int, firstConvMACs: Int
    ) {
        var parameters = 0
        var macs = 0
        func conv(_ k: Int, _ i: Int, _ o: Int, outputSide: Int) {
            parameters += k * k * i * o
            macs += k * k * i * o * outputSide * outputSide
        }
        func bn(_ c: Int) { parameters += 2 * c }
        conv(3, channels, 16, outputSide: side)
        bn(16)
        let firstConvMACs = macs
        var s = side
        var c = 16
        for width in [16, 32, 64] {
            for block in 0..<n {
                let stride = width > 16 && block == 0 ? 2 : 1
                let out = (s + 2 - 3) / stride + 1
                conv(3, c, width, outputSide: out)
                bn(width)
                conv(3, width, width, outputSide: out)
                bn(width)
                if stride != 1 || c != width {
                    conv(1, c, width, outputSide: out)
                    bn(width)
                }
                s = out
                c = width
            }
        }
        parameters += 64 * classes + classes
        macs += 64 * classes
        return (parameters, macs, firstConvMACs)
    }

    func testResNet8OnMNISTMatchesTheIssueAndTheReferenceFigures() throws {
        let s = try BuiltinModels.named("resnet8", inputChannels: 1, classes: 10)!
            .summary(input: .map(channels: 1, height: 28, width: 28), classes: 10)
        let hand = handCounts(blocksPerStage: 1, channels: 1, side: 28, classes: 10)
        // 77,754 parameters is the issue's figure; the hand count must agree with it too.
        XCTAssertEqual(hand.parameters, 77_754)
        XCTAssertEqual(s.learnedParameterCount, 77_754)
        // Written out: 112,896 (conv1) + 2·1,806,336 (layer1) + 2·(903,168 + 1,806,336 + 100,352)
        // (layer2, layer3) + 640 (fc) = 9,345,920; the reference figures say 9.35 M.
        XCTAssertEqual(hand.macs, 9_345_920)
        XCTAssertEqual(s.multiplyAdds, hand.macs)
        XCTAssertEqual((Double(s.multiplyAdds) / 1e4).rounded() / 100, 9.35)
        // 3,351 GFLOP an epoch of 60k images: 2 FLOP × (3 × MACs − conv1's input gradient) × 60,000
        // = 3,350.98 GFLOP. 3 × 2 × MACs × 60,000 alone would be 3,364.5, 0.4% off the figure.
        let perImage = 2 * (3 * hand.macs - hand.firstConvMACs)
        XCTAssertEqual(s.trainingFLOPsPerImage, perImage)
        XCTAssertEqual((s.trainingFLOPs(images: 60_000) / 1e9).rounded(), 3_351)
        XCTAssertEqual((6 * Double(hand.macs) * 60_000 / 1e9).rounded(), 3_365)
    }

    func testResNet20And32() throws {
        // ResNet-20: 11,154 GFLOP an epoch of 60k MNIST images (reference figures).
        let r20 = try BuiltinModels.cifarResNet(blocksPerStage: 3, inputChannels: 1, classes: 10)
            .summary(input: .map(channels: 1, height: 28, width: 28), classes: 10)
        let hand20 = handCounts(blocksPerStage: 3, channels: 1, side: 28, classes: 10)
        XCTAssertEqual(r20.learnedParameterCount, hand20.parameters)
        XCTAssertEqual(r20.multiplyAdds, hand20.macs)
        XCTAssertEqual(r20.trainingFLOPsPerImage, 2 * (3 * hand20.macs - hand20.firstConvMACs))
        XCTAssertEqual((r20.trainingFLOPs(images: 60_000) / 1e9).rounded(), 11_154)

        // On CIFAR-10 (3×32×32): 272,474 parameters for ResNet-20 and 466,906 for ResNet-32 with
        // projection shortcuts (269,722 and 464,154 with the parameter-free option-A shortcut,
        // as commonly quoted, plus 2,752 for the two downsample convs and BatchNorms).
        for (n, expected) in [(3, 272_474), (5, 466_906)] {
            let s = try BuiltinModels.cifarResNet(blocksPerStage: n, inputChannels: 3, classes: 10)
                .summary(input: .map(channels: 3, height: 32, width: 32), classes: 10)
            let hand = handCounts(blocksPerStage: n, channels: 3, side: 32, classes: 10)
            XCTAssertEqual(hand.parameters, expected)
            XCTAssertEqual(s.learnedParameterCount, expected)
            XCTAssertEqual(s.multiplyAdds, hand.macs)
            XCTAssertEqual(s.output, .vector(features: 10))
            // Depth 6n + 2: the conv and linear layers on the longest path (shortcuts excluded).
            let weighted = s.layers.filter { $0.multiplyAdds > 0 && !$0.path.contains("downsample") }
            XCTAssertEqual(weighted.count, 6 * n + 2)
        }
        XCTAssertEqual(BuiltinModels.named("resnet20", inputChannels: 3, classes: 10)?.name, "resnet20")
        XCTAssertEqual(BuiltinModels.named("resnet32", inputChannels: 3, classes: 10)?.name, "resnet32")
        XCTAssertNil(BuiltinModels.named("resnet18", inputChannels: 3, classes: 10))
    }

    /// torchvision's names, written out for resnet8: every state_dict key in PyTorch's order.
    func testResNet8StateDictNamesAreTorchvisions() throws {
        let s = try BuiltinModels.cifarResNet(blocksPerStage: 1, inputChannels: 1, classes: 10)
            .summary(input: .map(channels: 1, height: 28, width: 28), classes: 10)
        func bn(_ p: String) -> [String] {
            ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"].map { "\(p).\($0)" }
        }
        var expected = ["conv1.weight"] + bn("bn1")
        expected += ["layer1.0.conv1.weight"] + bn("layer1.0.bn1") + ["layer1.0.conv2.weight"] + bn("layer1.0.bn2")
        for stage in ["layer2", "layer3"] {
            expected += ["\(stage).0.conv1.weight"] + bn("\(stage).0.bn1") + ["\(stage).0.conv2.weight"]
            expected += bn("\(stage).0.bn2") + ["\(stage).0.downsample.0.weight"] + bn("\(stage).0.downsample.1")
        }
        expected += ["fc.weight", "fc.bias"]
        XCTAssertEqual(s.parameters.map(\.name), expected)

        let byName = Dictionary(uniqueKeysWithValues: s.parameters.map { ($0.name, $0) })
        XCTAssertEqual(byName["conv1.weight"]?.shape, [16, 1, 3, 3])
        XCTAssertEqual(byName["layer2.0.conv1.weight"]?.shape, [32, 16, 3, 3])
        XCTAssertEqual(byName["layer2.0.downsample.0.weight"]?.shape, [32, 16, 1, 1])
        XCTAssertEqual(byName["layer3.0.bn2.running_var"]?.shape, [64])
        XCTAssertEqual(byName["layer3.0.bn2.running_var"]?.role, .buffer)
        XCTAssertEqual(byName["layer3.0.bn2.weight"]?.role, .learned)
        XCTAssertEqual(byName["bn1.num_batches_tracked"]?.shape, [])
        XCTAssertEqual(byName["bn1.num_batches_tracked"]?.elementType, .int64)
        XCTAssertEqual(byName["fc.weight"]?.shape, [10, 64])
        XCTAssertEqual(byName["fc.bias"]?.shape, [10])
        // Buffers: 9 BatchNorms (bn1 and layer1.0's two of 16 channels; three of 32 in layer2.0,
        // three of 64 in layer3.0), a running mean and variance per channel and one
        // num_batches_tracked each.
        XCTAssertEqual(s.bufferElementCount, 2 * (3 * 16 + 3 * 32 + 3 * 64) + 9)
        // Stage shapes: 28 → 14 → 7 (stride-2 3×3 with padding 1: ⌊(28 + 2 − 3)/2⌋ + 1 = 14).
        let outputs = Dictionary(s.layers.map { ($0.path, $0.output) }, uniquingKeysWith: { $1 })
        XCTAssertEqual(outputs["layer1.0"], .map(channels: 16, height: 28, width: 28))
        XCTAssertEqual(outputs["layer2.0"], .map(channels: 32, height: 14, width: 14))
        XCTAssertEqual(outputs["layer3.0"], .map(channels: 64, height: 7, width: 7))
        XCTAssertEqual(outputs["avgpool"], .map(channels: 64, height: 1, width: 1))
    }

    /// TinyConvNet's description against its checkpoint's names and shapes
    /// (NetIO's TinyConvNetWeights) and GPUNet's documented layer shapes.
    func testTinyIsTinyConvNet() throws {
        let s = try BuiltinModels.named("tiny", inputChannels: 1, classes: 10)!
            .summary(input: .map(channels: 1, height: 28, width: 28), classes: 10)
        XCTAssertEqual(s.parameters.map(\.name), TinyConvNetWeights.tensorShapes.map(\.name))
        XCTAssertEqual(s.parameters.map(\.shape), TinyConvNetWeights.tensorShapes.map(\.shape))
        XCTAssertTrue(s.parameters.allSatisfy { $0.role == .learned })
        XCTAssertEqual(s.learnedParameterCount, 5_234)
        XCTAssertEqual(s.bufferElementCount, 0)
        XCTAssertEqual(
            s.layers.map(\.output.dimensions),
            [[8, 26, 26], [8, 26, 26], [8, 13, 13], [16, 11, 11], [16, 11, 11], [16, 5, 5], [400], [10]])
        // 72·26² + 1,152·11² + 4,000 = 48,672 + 139,392 + 4,000.
        XCTAssertEqual(s.multiplyAdds, 192_064)
        XCTAssertEqual(s.trainingFLOPsPerImage, 2 * (3 * 192_064 - 48_672))
        // On 32×32 images fc's 400 inputs do not fit: 16·6·6 = 576 arrive.
        XCTAssertThrowsError(
            try BuiltinModels.tinyConvNet(inputChannels: 3).summary(input: .map(channels: 3, height: 32, width: 32))
        ) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .featureMismatch)
            XCTAssertEqual((error as? ModelError)?.location, "fc")
        }
    }
}
