import Models
import XCTest

/// `factorizingConvolutions(ranks:)`: the conv becomes `p.0` (k×k to r
/// channels, the stride and padding) and `p.1` (1×1 to C_out, the bias);
/// every other tensor keeps its name, and the multiply-adds are the counted
/// r·(C_in·k² + C_out) per output position.
final class FactorizationTests: XCTestCase {
    func testResNetProjectionAndBodyConvsSplitUnderTheirNames() throws {
        let resnet = BuiltinModels.named("resnet8", inputChannels: 1, classes: 10)!
        let input = ActivationShape.map(channels: 1, height: 28, width: 28)
        let dense = try resnet.summary(input: input, classes: 10)
        let split = try resnet.factorizingConvolutions(ranks: ["layer2.0.conv1": 5, "layer2.0.downsample.0": 3])
            .summary(input: input, classes: 10)

        let denseNames = Set(dense.parameters.map(\.name))
        let names = Set(split.parameters.map(\.name))
        XCTAssertEqual(
            denseNames.subtracting(names), ["layer2.0.conv1.weight", "layer2.0.downsample.0.weight"])
        XCTAssertEqual(
            names.subtracting(denseNames),
            [
                "layer2.0.conv1.0.weight", "layer2.0.conv1.1.weight", "layer2.0.downsample.0.0.weight",
                "layer2.0.downsample.0.1.weight",
            ])
        let shapes = Dictionary(uniqueKeysWithValues: split.parameters.map { ($0.name, $0.shape) })
        XCTAssertEqual(shapes["layer2.0.conv1.0.weight"], [5, 16, 3, 3])
        XCTAssertEqual(shapes["layer2.0.conv1.1.weight"], [32, 5, 1, 1])
        XCTAssertEqual(shapes["layer2.0.downsample.0.0.weight"], [3, 16, 1, 1])
        XCTAssertEqual(shapes["layer2.0.downsample.0.1.weight"], [32, 3, 1, 1])
        // The shortcut's BatchNorm keeps its index name although its list now holds three layers.
        XCTAssertNotNil(shapes["layer2.0.downsample.1.weight"])

        // Stride 2 stays on the first factor: both give 32×14×14 maps. Per
        // image: conv1 5·(16·9 + 32)·14², downsample 3·(16 + 32)·14², against
        // 32·16·9·14² and 32·16·14².
        let rows = Dictionary(split.layers.map { ($0.path, $0) }, uniquingKeysWith: { _, later in later })
        XCTAssertEqual(rows["layer2.0.conv1.1"]?.output, .map(channels: 32, height: 14, width: 14))
        XCTAssertEqual(rows["layer2.0.downsample.0.1"]?.output, .map(channels: 32, height: 14, width: 14))
        let saved = (32 * 16 * 9 - 5 * (16 * 9 + 32) + 32 * 16 - 3 * (16 + 32)) * 14 * 14
        XCTAssertEqual(dense.multiplyAdds - split.multiplyAdds, saved)
    }

    func testAListWithoutASplitKeepsItsNamesAsGiven() throws {
        let tiny = BuiltinModels.tinyConvNet()
        XCTAssertEqual(try tiny.factorizingConvolutions(ranks: [:]), tiny)
        let split = try tiny.factorizingConvolutions(ranks: ["conv2": 4])
        XCTAssertEqual(split.layers.count, tiny.layers.count + 1)
        XCTAssertEqual(split.layers[3].name, "conv2.0")
        XCTAssertEqual(split.layers[4].name, "conv2.1")
        XCTAssertEqual(split.layers[5].name, "relu2")
    }

    func testUnknownLayersAndRanksOutOfRangeAreRefused() {
        let tiny = BuiltinModels.tinyConvNet()
        for (ranks, fragment) in [
            (["conv3": 2], "no conv layer conv3"), (["fc": 2], "no conv layer fc"),
            (["conv1": 0], "outside 1…8"), (["conv2": 17], "outside 1…16"),
        ] {
            XCTAssertThrowsError(try tiny.factorizingConvolutions(ranks: ranks)) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(ranks): \(error)")
            }
        }
    }

    /// Break-even: r·(C_in·k² + C_out) < C_out·C_in·k² exactly for r ≤ the rank returned.
    func testBreakEvenRankIsTheLastSavingRank() {
        for (i, o, k) in [(1, 8, 3), (8, 16, 3), (16, 16, 3), (16, 32, 1), (64, 64, 3), (3, 3, 1)] {
            let conv = Conv2dSpec(inChannels: i, outChannels: o, kernelSize: k)
            let r = FactorizedConvCost.largestSavingRank(conv)
            for rank in 1...min(o, i * k * k) {
                let cost = FactorizedConvCost(conv, rank: rank)
                XCTAssertEqual(cost.factorized < cost.dense, rank <= r, "\(i)→\(o) \(k)×\(k) rank \(rank)")
            }
        }
    }
}
