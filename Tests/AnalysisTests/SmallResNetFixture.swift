import Analysis
import Models
import NetIO
import TestSupport

/// The per-layer analysis tests' small network and images.
protocol SmallResNetFixture {}

extension SmallResNetFixture {
    /// ResNet-8 on 1×12×12 images (12 → 6 → 3 through the strided stages)
    /// with NaiveNetwork's varied test values, rounded to float32 (what a
    /// checkpoint holds), and BatchNorm running statistics that make the
    /// scales differ from 1.
    func resnet8() throws -> (description: NetworkDescription, naive: NaiveNetwork, floats: [String: [Float]]) {
        let description = BuiltinModels.cifarResNet(blocksPerStage: 1, inputChannels: 1, classes: 10)
        let naive = try NaiveNetwork(description, input: (1, 12, 12), classes: 10)
        let floats = naive.sampleParameters(seed: 3).mapValues { $0.map(Float.init) }
        return (description, naive, floats)
    }

    /// ``resnet8()`` with its BatchNorms folded, and the float64 naive
    /// network with the same float32 values as the network under test.
    func resnet8UnderTest() throws -> (network: FoldedNetwork, device: NaiveNetworkUnderTest) {
        let (description, naive, floats) = try resnet8()
        let network = try FoldedNetwork(
            description, input: .map(channels: 1, height: 12, width: 12), classes: 10, tensors: floats)
        return (network, NaiveNetworkUnderTest(naive, parameters: floats.mapValues { $0.map(Double.init) }))
    }

    func images(_ count: Int, side: Int = 12, seed: UInt64 = 5) -> Dataset {
        var random = SeededRandom(seed: seed, stream: 1)
        let pixels = (0..<(count * side * side)).map { _ in UInt8(truncatingIfNeeded: random.next() >> 56) }
        let labels = (0..<count).map { UInt8($0 % 10) }
        return Dataset(name: "synthetic/test", count: count, rows: side, columns: side, pixels: pixels, labels: labels)
    }
}
