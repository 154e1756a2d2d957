/// A 2-D convolution as PyTorch's `Conv2d` defines it (no dilation, no
/// groups): input (B,C,H,W), weight (O,C,kH,kW), optional bias (O), output
/// (B,O,oH,oW) with oH = ⌊(H + 2p − kH)/s⌋ + 1 (likewise oW), s the stride
/// and p the zero padding on every side.
///
/// A type of its own rather than stride and padding fields on
/// ``ConvShape``: every operation that takes a `ConvShape` (the stride-1
/// convolutions, im2col, and TinyConvNet's fused pooled kernels) is written
/// for stride 1 and no padding, and with defaulted fields a strided shape
/// would reach those kernels and be silently misread, or each of them would
/// need a check that TinyConvNet's hot path pays for. As separate types the
/// compiler keeps the two apart; ``init(_:)`` converts a `ConvShape` (stride
/// 1, padding 0), for which both give the same numbers.
public struct Conv2dShape: Hashable, Sendable, CustomStringConvertible {
    public var batch: Int, inChannels: Int, outChannels: Int
    public var height: Int, width: Int
    public var kernelHeight: Int, kernelWidth: Int
    /// The step between output positions, in both directions (PyTorch's `stride`).
    public var stride: Int
    /// Zero rows and columns added on each side of the input (PyTorch's `padding`).
    public var padding: Int

    public init(
        batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int,
        kernelHeight: Int = 3, kernelWidth: Int = 3, stride: Int = 1, padding: Int = 0
    ) {
        self.batch = batch
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.height = height
        self.width = width
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.stride = stride
        self.padding = padding
    }

    /// The same convolution as a stride-1, unpadded ``ConvShape`` describes.
    public init(_ s: ConvShape) {
        self.init(
            batch: s.batch, inChannels: s.inChannels, outChannels: s.outChannels, height: s.height, width: s.width,
            kernelHeight: s.kernelHeight, kernelWidth: s.kernelWidth)
    }

    /// ⌊(H + 2p − kH)/s⌋ + 1 (0 when the kernel does not fit).
    public var outHeight: Int { Self.outSize(height, kernelHeight, stride, padding) }
    /// ⌊(W + 2p − kW)/s⌋ + 1 (0 when the kernel does not fit).
    public var outWidth: Int { Self.outSize(width, kernelWidth, stride, padding) }
    /// C·kH·kW: the length of one patch.
    public var patchSize: Int { inChannels * kernelHeight * kernelWidth }
    /// B·oH·oW: the number of patches.
    public var patchCount: Int { batch * outHeight * outWidth }
    public var inputCount: Int { batch * inChannels * height * width }
    public var outputCount: Int { batch * outChannels * outHeight * outWidth }
    public var weightCount: Int { outChannels * patchSize }
    /// O·patchSize·patchCount: one forward pass (each backward pass is the same).
    public var multiplyAdds: Int { outChannels * patchSize * patchCount }
    /// 2·O·patchSize·patchCount: one forward pass (each backward pass is the same).
    public var flops: Double { 2 * Double(outChannels) * Double(patchSize) * Double(patchCount) }
    /// True when every size is positive (batch may be 0), the stride is
    /// positive, the padding not negative and the output at least 1×1.
    public var isValid: Bool {
        batch >= 0 && inChannels > 0 && outChannels > 0 && height > 0 && width > 0 && kernelHeight > 0
            && kernelWidth > 0 && stride > 0 && padding >= 0 && height + 2 * padding >= kernelHeight
            && width + 2 * padding >= kernelWidth
    }

    public var description: String {
        "conv (\(batch),\(inChannels),\(height),\(width)) → \(outChannels) \(kernelHeight)×\(kernelWidth)"
            + " stride \(stride) padding \(padding)"
    }

    private static func outSize(_ n: Int, _ k: Int, _ s: Int, _ p: Int) -> Int {
        guard s > 0, n + 2 * p >= k else { return 0 }
        return (n + 2 * p - k) / s + 1
    }
}

/// Activations (B,C,H,W) seen per channel: the global average pool's input,
/// and what a batch normalisation normalises.
public struct FeatureMapShape: Hashable, Sendable, CustomStringConvertible {
    public var batch: Int, channels: Int, height: Int, width: Int
    public init(batch: Int, channels: Int, height: Int, width: Int) {
        self.batch = batch
        self.channels = channels
        self.height = height
        self.width = width
    }
    /// H·W.
    public var planeSize: Int { height * width }
    /// B·C·H·W.
    public var count: Int { batch * channels * height * width }
    /// True when no size is negative and a plane is not empty.
    public var isValid: Bool { batch >= 0 && channels >= 0 && height > 0 && width > 0 }
    public var description: String { "(\(batch),\(channels),\(height),\(width))" }
}

/// A BatchNorm2d over activations (B,C,H,W): PyTorch's defaults, ε = 1e-5
/// added to the variance and momentum 0.1 for the running statistics.
public struct BatchNormShape: Hashable, Sendable, CustomStringConvertible {
    public var map: FeatureMapShape
    public var epsilon: Float
    /// The weight of the new batch in the running statistics (PyTorch's `momentum`).
    public var momentum: Float

    public init(
        batch: Int, channels: Int, height: Int, width: Int, epsilon: Float = 1e-5, momentum: Float = 0.1
    ) {
        map = FeatureMapShape(batch: batch, channels: channels, height: height, width: width)
        self.epsilon = epsilon
        self.momentum = momentum
    }

    public var batch: Int { map.batch }
    public var channels: Int { map.channels }
    /// B·H·W: the values each channel's statistics are taken over.
    public var valuesPerChannel: Int { map.batch * map.planeSize }
    /// B·C·H·W.
    public var count: Int { map.count }
    public var description: String { "batchnorm \(map) ε \(epsilon) momentum \(momentum)" }
}
