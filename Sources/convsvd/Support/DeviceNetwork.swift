import Analysis
import GPUNet
import NetIO

/// TinyConvNet on a device, as the analysis sees it (phase 4): the network
/// whose conv outputs, fused pooled outputs and winners (what training runs)
/// and logits the host's float64 computation must match.
final class DeviceNetwork: NetworkUnderTest {
    let network: TinyConvNet

    init(device: any Device, weights: TinyConvNetWeights) throws {
        network = try TinyConvNet(device: device)
        try network.load(weights)
    }

    func forward(normalizedImages: [Float], count: Int) throws -> NetworkOutputs {
        let w = try network.workspace(batch: count)
        // The loss needs labels; any valid ones do, only the activations are read.
        try network.setBatch(w, images: normalizedImages, labels: [Int32](repeating: 0, count: count))
        try network.forward(w)
        try network.convOutputs(w)
        let d = network.device
        return NetworkOutputs(
            conv1: try d.floats(w.conv1), conv2: try d.floats(w.conv2),
            pooled1: try d.floats(w.relu1), argmax1: try d.int32s(w.argmax1),
            pooled2: try d.floats(w.relu2), argmax2: try d.int32s(w.argmax2),
            logits: try d.floats(w.logits))
    }
}
