/// The networks `--model` names: TinyConvNet and the CIFAR-style ResNets.
public enum BuiltinModels {
    /// The names `--model` accepts besides a `.json` file, in the order help lists them.
    public static let names = ["tiny", "resnet8", "resnet20", "resnet32"]

    /// The built-in model `name` for images of `inputChannels` channels and
    /// `classes` classes, or nil when `name` is not one.
    public static func named(_ name: String, inputChannels: Int, classes: Int) -> NetworkDescription? {
        switch name {
        case "tiny": return tinyConvNet(inputChannels: inputChannels, classes: classes)
        case "resnet8": return cifarResNet(blocksPerStage: 1, inputChannels: inputChannels, classes: classes)
        case "resnet20": return cifarResNet(blocksPerStage: 3, inputChannels: inputChannels, classes: classes)
        case "resnet32": return cifarResNet(blocksPerStage: 5, inputChannels: inputChannels, classes: classes)
        default: return nil
        }
    }

    /// TinyConvNet, GPUNet's default network, under its checkpoint's names:
    ///
    /// conv1 Conv2d(C→8, 3×3, no bias) → relu1 → pool1 MaxPool 2 →
    /// conv2 Conv2d(8→16, 3×3, no bias) → relu2 → pool2 MaxPool 2 →
    /// flatten → fc Linear(400→classes).
    ///
    /// The 400 inputs of `fc` are 16·5·5, a 28×28 image's (28 → 26 → 13 →
    /// 11 → 5); other image sizes are rejected by shape inference at `fc`.
    public static func tinyConvNet(inputChannels: Int = 1, classes: Int = 10) -> NetworkDescription {
        NetworkDescription(
            name: "tiny",
            layers: [
                LayerDescription(
                    .conv(Conv2dSpec(inChannels: inputChannels, outChannels: 8, kernelSize: 3, bias: false)),
                    name: "conv1"),
                LayerDescription(.relu, name: "relu1"),
                LayerDescription(.maxPool2, name: "pool1"),
                LayerDescription(
                    .conv(Conv2dSpec(inChannels: 8, outChannels: 16, kernelSize: 3, bias: false)), name: "conv2"),
                LayerDescription(.relu, name: "relu2"),
                LayerDescription(.maxPool2, name: "pool2"),
                LayerDescription(.flatten, name: "flatten"),
                LayerDescription(.linear(LinearSpec(inFeatures: 400, outFeatures: classes)), name: "fc"),
            ])
    }

    /// The CIFAR-style ResNet of He et al. 2016, §4.2, with torchvision's
    /// names, depth 6n + 2 for n = `blocksPerStage`:
    ///
    /// conv1 3×3 (C→16, pad 1) → bn1 → relu →
    /// layer1…layer3: n basic blocks each, 16, 32, 64 channels →
    /// avgpool (global) → flatten → fc Linear(64→classes).
    ///
    /// A basic block (`layerS.i`) is conv1 3×3 (stride s, pad 1) → bn1 →
    /// relu → conv2 3×3 (pad 1) → bn2, plus the shortcut, then relu; convs
    /// without bias. The first block of layer2 and layer3 has stride 2 and
    /// the projection shortcut `downsample` = 1×1 conv (stride 2, no bias) →
    /// BatchNorm; every other shortcut is the identity.
    public static func cifarResNet(blocksPerStage n: Int, inputChannels: Int = 3, classes: Int = 10)
        -> NetworkDescription
    {
        precondition(n >= 1, "cifarResNet: blocksPerStage must be at least 1")
        func conv(_ i: Int, _ o: Int, kernel: Int, stride: Int, padding: Int, _ name: String) -> LayerDescription {
            LayerDescription(
                .conv(
                    Conv2dSpec(
                        inChannels: i, outChannels: o, kernelSize: kernel, stride: stride, padding: padding,
                        bias: false)),
                name: name)
        }
        func bn(_ c: Int, _ name: String) -> LayerDescription {
            LayerDescription(.batchNorm(BatchNorm2dSpec(channels: c)), name: name)
        }

        var layers = [
            conv(inputChannels, 16, kernel: 3, stride: 1, padding: 1, "conv1"), bn(16, "bn1"),
            LayerDescription(.relu, name: "relu"),
        ]
        var channels = 16
        for (stage, width) in [16, 32, 64].enumerated() {
            for block in 0..<n {
                let stride = stage > 0 && block == 0 ? 2 : 1
                let body = [
                    conv(channels, width, kernel: 3, stride: stride, padding: 1, "conv1"), bn(width, "bn1"),
                    LayerDescription(.relu, name: "relu"),
                    conv(width, width, kernel: 3, stride: 1, padding: 1, "conv2"), bn(width, "bn2"),
                ]
                let shortcut: Shortcut =
                    stride == 1 && channels == width
                    ? .identity
                    : .projection([
                        conv(channels, width, kernel: 1, stride: stride, padding: 0, "downsample.0"),
                        bn(width, "downsample.1"),
                    ])
                layers.append(
                    LayerDescription(
                        .residual(ResidualBlockSpec(body: body, shortcut: shortcut, reluAfterAdd: true)),
                        name: "layer\(stage + 1).\(block)"))
                channels = width
            }
        }
        layers += [
            LayerDescription(.globalAveragePool, name: "avgpool"), LayerDescription(.flatten, name: "flatten"),
            LayerDescription(.linear(LinearSpec(inFeatures: 64, outFeatures: classes)), name: "fc"),
        ]
        return NetworkDescription(name: "resnet\(6 * n + 2)", layers: layers)
    }
}
