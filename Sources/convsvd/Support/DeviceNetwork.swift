import Analysis
import GPUNet
import NetIO

/// TinyConvNet on a device, as the analysis sees it (phase 4): the network
/// whose conv outputs and logits the host's float64 computation must match.
final class DeviceNetwork: NetworkUnderTest {
    let network: TinyConvNet

    init(device: any Device, weights: TinyConvNetWeights) throws {
        network = try TinyConvNet(device: device)
        try network.load(weights)
    }

    func forward(normalizedImages: [Float], count: Int) throws -> (conv1: [Float], conv2: [Float], logits: [Float]) {
        let w = try network.workspace(batch: count)
        // The loss needs labels; any valid ones do, only the activations are read.
        try network.setBatch(w, images: normalizedImages, labels: [Int32](repeating: 0, count: count))
        try network.forward(w)
        try network.convOutputs(w)
        let d = network.device
        return (try d.floats(w.conv1), try d.floats(w.conv2), try d.floats(w.logits))
    }
}
