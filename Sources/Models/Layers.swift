/// A network as a value: an ordered list of layers, read by shape inference,
/// the parameter names, the counts, the JSON model files and `describe`.
///
/// The forward pass applies `layers` in order to one image. Parameter names
/// are PyTorch's `state_dict` keys: a layer's path (the names of the layers
/// that hold it, joined by dots) and then `weight`, `bias`, … (see
/// ``NetworkSummary``).
public struct NetworkDescription: Hashable, Sendable {
    /// For people ("resnet8", a model file's `name`).
    public var name: String
    public var layers: [LayerDescription]

    public init(name: String, layers: [LayerDescription]) {
        self.name = name
        self.layers = layers
    }
}

/// One layer and its name in PyTorch's module tree.
///
/// Without a name a layer is called by its index in its list, as
/// `nn.Sequential` names its children ("0", "1", …), and a projection
/// shortcut's layers "downsample.0", "downsample.1", … as torchvision's
/// BasicBlock does. A name is one or more parts of letters, digits and `_`
/// joined by dots ("conv1", "layer2.0"): a dotted name stands for the nested
/// modules a PyTorch model would hold (`layer2` a Sequential, `0` its block).
public struct LayerDescription: Hashable, Sendable {
    public var name: String?
    public var kind: LayerKind

    public init(_ kind: LayerKind, name: String? = nil) {
        self.name = name
        self.kind = kind
    }
}

/// What a layer computes. Shapes are per image: (C, H, W) maps, (F) vectors.
public enum LayerKind: Hashable, Sendable {
    /// `nn.Conv2d`: (C_in, H, W) → (C_out, H', W'), see ``Conv2dSpec``.
    case conv(Conv2dSpec)
    /// `nn.BatchNorm2d`: (C, H, W) → (C, H, W), see ``BatchNorm2dSpec``.
    case batchNorm(BatchNorm2dSpec)
    /// max(x, 0), any shape.
    case relu
    /// `nn.MaxPool2d(2)`: 2×2 windows, stride 2, floor mode (an odd last row
    /// or column is dropped): (C, H, W) → (C, ⌊H/2⌋, ⌊W/2⌋).
    case maxPool2
    /// `nn.AdaptiveAvgPool2d(1)`: the mean of each map, (C, H, W) → (C, 1, 1).
    case globalAveragePool
    /// `torch.flatten(x, 1)`: (C, H, W) → (C·H·W), channel-major; a vector
    /// passes unchanged.
    case flatten
    /// `nn.Linear`: (F_in) → (F_out), see ``LinearSpec``.
    case linear(LinearSpec)
    /// A residual block, see ``ResidualBlockSpec``.
    case residual(ResidualBlockSpec)
}

/// `nn.Conv2d(inChannels, outChannels, kernelSize, stride, padding, bias)`:
/// square kernel, zero padding on all four sides, no dilation, no groups.
///
/// Output side: ⌊(n + 2·padding − kernelSize) / stride⌋ + 1 for an input side n.
/// Parameters: `weight` [C_out, C_in, k, k], `bias` [C_out] when `bias`.
/// Multiply-adds per image: C_out · C_in · k² · H' · W' (the bias add is not one).
public struct Conv2dSpec: Hashable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var kernelSize: Int
    public var stride: Int
    public var padding: Int
    public var bias: Bool

    /// PyTorch's defaults: stride 1, padding 0, bias.
    public init(
        inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true
    ) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        self.bias = bias
    }
}

/// `nn.BatchNorm2d(channels)` with PyTorch's defaults: affine (γ `weight`,
/// β `bias`, learned) and tracking running statistics (`running_mean`,
/// `running_var`, `num_batches_tracked`, buffers); y = γ (x − μ) / √(σ² + ε) + β.
public struct BatchNorm2dSpec: Hashable, Sendable {
    public var channels: Int

    /// ε added to the variance, PyTorch's default.
    public static let epsilon = 1e-5
    /// Weight of the new batch in the running statistics, PyTorch's default.
    public static let momentum = 0.1

    public init(channels: Int) { self.channels = channels }
}

/// `nn.Linear(inFeatures, outFeatures, bias)`: y = W x + b.
/// Parameters: `weight` [F_out, F_in], `bias` [F_out] when `bias`.
/// Multiply-adds per image: F_out · F_in.
public struct LinearSpec: Hashable, Sendable {
    public var inFeatures: Int
    public var outFeatures: Int
    public var bias: Bool

    /// PyTorch's default: bias.
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.bias = bias
    }
}

/// y = body(x) + shortcut(x), then max(y, 0) when `reluAfterAdd`: the basic
/// block of He et al. 2016 (torchvision's `BasicBlock`, whose ReLU after the
/// add is the block's own `relu`). Body and shortcut must give the same shape.
public struct ResidualBlockSpec: Hashable, Sendable {
    public var body: [LayerDescription]
    public var shortcut: Shortcut
    public var reluAfterAdd: Bool

    public init(body: [LayerDescription], shortcut: Shortcut = .identity, reluAfterAdd: Bool = true) {
        self.body = body
        self.shortcut = shortcut
        self.reluAfterAdd = reluAfterAdd
    }
}

/// The path that carries a residual block's input to its add.
public enum Shortcut: Hashable, Sendable {
    /// x itself.
    case identity
    /// A list of layers (usually a 1×1 strided conv and a batchnorm), named
    /// "downsample.0", "downsample.1", … unless they carry names.
    case projection([LayerDescription])
}
