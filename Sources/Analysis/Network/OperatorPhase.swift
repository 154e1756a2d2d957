import Dispatch
import Foundation
import NetIO

/// Phase 9 of the per-layer analysis: every conv layer as an operator on its
/// real input (BatchNorm folded), and the network's Lipschitz bound built
/// from them.
///
/// Per conv layer (docs/operators.md derives each):
/// - the circular operator's spectrum on the input's grid through the DFT
///   (a strided layer by its polyphase blocks), σ_max of it reported;
/// - the zero-padded operator as used: its spectral norm bracketed between
///   power iteration (a lower bound) and the smaller of Gram iteration on a
///   circular grid that holds it and a Cholesky certificate of μI − AᵀA (an
///   upper bound), the relative gap printed; where the
///   dense matrix has at most ``denseColumnLimit`` columns, all its singular
///   values by LAPACK, and the check lower ≤ σ_max ≤ upper;
/// - per residual block, the Lipschitz bound ‖S‖ + ‖A₂‖·‖A₁‖ (1 for the
///   identity shortcut), and for the network the product of every step's
///   bound (ReLU and max-pool 2: 1; global average pool over n: 1/√n).
public struct OperatorPhase: Sendable {
    /// Columns up to which the dense operator's full SVD is computed by
    /// default: every layer of TinyConvNet's size and the first conv of a
    /// 28×28 ResNet (784 columns, about 3 s here); 8,192 (`convsvd analyze
    /// --dense-operator-columns 8192`) gives a ResNet-20 thirteen dense SVDs
    /// of up to 6,272 columns, 227 s of phase 9 on 2 cores (measured),
    /// against its 30 s.
    public static let denseColumnLimit = 2_048

    /// One conv layer as an operator.
    public struct Layer: Codable, Sendable, Equatable {
        public var name: String
        /// (C_in, H, W) → (C_out, H', W').
        public var inputShape: [Int]
        public var outputShape: [Int]
        public var stride: Int
        public var padding: Int
        /// σ_max of the circular operator on the H×W grid (nil when the
        /// stride does not divide the grid).
        public var circularNorm: Double?
        /// Singular values of the circular operator (all of them).
        public var circularSingularValueCount: Int?
        public var bracket: SpectralNormBracket
        /// All singular values of the zero-padded operator, when it has at
        /// most ``Report/denseColumnLimit`` columns.
        public var denseSingularValues: [Double]?
        /// ⌈k/s⌉·σ_max(W̃): the patch-count bound, for comparison.
        public var patchCountBound: Double
        public var seconds: Double
    }

    /// A residual block's bound.
    public struct Block: Codable, Sendable, Equatable {
        /// The body's first conv, naming the block.
        public var firstLayer: String
        /// Π of the body's layers' upper bounds.
        public var body: Double
        /// The shortcut's bound (1 for the identity).
        public var shortcut: Double
        /// body + shortcut.
        public var bound: Double
    }

    public struct Report: Codable, Sendable, Equatable {
        /// The most columns of an operator given a dense SVD in this run.
        public var denseColumnLimit: Int
        public var layers: [Layer]
        public var blocks: [Block]
        /// The network's Lipschitz upper bound from its inputs to its logits.
        public var networkBound: Double
        /// Per layer upper bounds used: the bracket's upper for a conv, σ_max for a linear layer.
        public var upperBounds: [Double]
        /// ‖∂logits/∂x‖₂ measured with the network under test's backward
        /// pass (nil without one): a lower bound of the Lipschitz constant.
        public var measuredGradient: MeasuredInputGradient? = nil
    }

    /// The largest ‖∂logits/∂x‖₂ over test images: per image the Jacobian
    /// J (classes × input) from one backward pass per class (row k for the
    /// cotangent e_k), its largest singular value by LAPACK in float64.
    /// Every such value is a lower bound of the network's Lipschitz
    /// constant, so the largest must not exceed ``Report/networkBound``.
    public struct MeasuredInputGradient: Codable, Sendable, Equatable {
        public var images: Int
        public var maxNorm: Double
        /// The test image (0-based) with the largest norm.
        public var argmaxImage: Int
        public var meanNorm: Double
        /// networkBound / maxNorm: how loose the product bound is here.
        public var slack: Double
        public var seconds: Double
    }

    /// Measures ``MeasuredInputGradient`` at the first `count` images of
    /// `set` through `network`, `batch` images per call.
    public static func measureInputGradient(
        _ network: DifferentiableNetworkUnderTest, set: Dataset, count: Int, batch: Int, classes: Int,
        bound: Double
    ) throws -> MeasuredInputGradient {
        let started = Clocks.wall()
        var norms: [Double] = []
        var start = 0
        while start < count {
            let n = min(batch, count - start)
            let images = set.normalizedImages(start..<(start + n))
            _ = try network.forward(normalizedImages: images, count: n)
            let size = set.imageSize
            var jacobians = [[Double]](repeating: [Double](repeating: 0, count: classes * size), count: n)
            for k in 0..<classes {
                var cotangent = [Float](repeating: 0, count: n * classes)
                for b in 0..<n { cotangent[b * classes + k] = 1 }
                let gradient = try network.inputGradient(cotangent: cotangent)
                guard gradient.count == n * size else {
                    throw NetworkAnalysisError.invalidInput(
                        "the network under test's input gradient has \(gradient.count) values, expected \(n * size)")
                }
                for b in 0..<n {
                    for i in 0..<size { jacobians[b][k * size + i] = Double(gradient[b * size + i]) }
                }
            }
            for j in jacobians {
                let svd = try SingularValueDecomposition(
                    Matrix(rows: classes, columns: size, values: j), context: "∂logits/∂x")
                norms.append(svd.singularValues[0])
            }
            start += n
        }
        let maxNorm = norms.max() ?? 0
        return MeasuredInputGradient(
            images: count, maxNorm: maxNorm, argmaxImage: norms.firstIndex(of: maxNorm) ?? 0,
            meanNorm: norms.reduce(0, +) / Double(max(norms.count, 1)), slack: bound / maxNorm,
            seconds: Clocks.seconds(since: started))
    }

    /// Runs the phase over `network`'s layers, `threads` layers at a time,
    /// with the dense SVD of each operator of at most `denseColumns` columns
    /// (at most ``ConvOperator/denseColumnLimit``).
    public static func run(
        _ network: FoldedNetwork, threads: Int = 2, denseColumns: Int = denseColumnLimit
    ) throws -> Report {
        precondition(
            (0...ConvOperator.denseColumnLimit).contains(denseColumns),
            "OperatorPhase: dense SVDs up to \(denseColumns) columns")
        var results = [Result<(Layer?, Double), Error>?](repeating: nil, count: network.layers.count)
        let lock = NSLock()
        let next = ChunkCounter()
        withSingleThreadedBLAS {
            DispatchQueue.concurrentPerform(iterations: max(1, min(threads, network.layers.count))) { _ in
                while let i = next.take(below: network.layers.count) {
                    let r = Result { try analyse(network.layers[i], denseColumns: denseColumns) }
                    lock.lock()
                    results[i] = r
                    lock.unlock()
                }
            }
        }
        var layers: [Layer] = []
        var upper: [Double] = []
        for r in results {
            let (layer, bound) = try r!.get()
            if let layer { layers.append(layer) }
            upper.append(bound)
        }
        var blocks: [Block] = []
        collectBlocks(network.steps, network: network, upper: upper, into: &blocks)
        let networkBound = CompressionBound.propagate(network.steps, [1], local: [:], lipschitz: upper)[0]
        return Report(
            denseColumnLimit: denseColumns, layers: layers, blocks: blocks, networkBound: networkBound,
            upperBounds: upper)
    }

    private static func analyse(_ layer: AffineLayer, denseColumns: Int) throws -> (Layer?, Double) {
        let started = Clocks.wall()
        guard case .conv(let spec, let h, let w, let oh, let ow) = layer.kind else {
            let sigma = try SingularValueDecomposition(layer.folded, context: layer.name).singularValues[0]
            return (nil, sigma * (1 + 1e-12))
        }
        let op = try ConvOperator(
            name: layer.name, weight: layer.folded, inChannels: spec.inChannels, kernelHeight: spec.kernelSize,
            kernelWidth: spec.kernelSize, stride: spec.stride, padding: spec.padding, inputHeight: h, inputWidth: w)
        var circular: CircularSpectrum?
        if h % spec.stride == 0 && w % spec.stride == 0 && h >= spec.kernelSize && w >= spec.kernelSize {
            circular = try? op.circularSpectrum(threads: 1)
        }
        let bracket = try op.spectralNormBracket(threads: 1)
        let dense = op.inputCount <= denseColumns ? try op.singularValues() : nil
        let record = Layer(
            name: layer.name, inputShape: [spec.inChannels, h, w], outputShape: [spec.outChannels, oh, ow],
            stride: spec.stride, padding: spec.padding, circularNorm: circular?.spectralNorm,
            circularSingularValueCount: circular?.singularValues.count, bracket: bracket,
            denseSingularValues: dense, patchCountBound: try OperatorNormBound.patchCount(layer, matrix: layer.folded),
            seconds: Clocks.seconds(since: started))
        return (record, min(bracket.upper * (1 + 1e-9), record.patchCountBound))
    }

    /// The residual blocks of `steps`, in order, with their bounds.
    private static func collectBlocks(
        _ steps: [FoldedNetwork.Step], network: FoldedNetwork, upper: [Double], into blocks: inout [Block]
    ) {
        for step in steps {
            guard case .residual(let body, let shortcut, _) = step else { continue }
            let throughBody = CompressionBound.propagate(body, [1], local: [:], lipschitz: upper)[0]
            let throughShortcut =
                shortcut.map { CompressionBound.propagate($0, [1], local: [:], lipschitz: upper)[0] } ?? 1
            let first: String =
                body.lazy.compactMap { s -> String? in
                    if case .affine(let i) = s { return network.layers[i].name }
                    return nil
                }.first ?? "block"
            blocks.append(
                Block(
                    firstLayer: first, body: throughBody, shortcut: throughShortcut,
                    bound: throughBody + throughShortcut))
            collectBlocks(body, network: network, upper: upper, into: &blocks)
        }
    }
}
