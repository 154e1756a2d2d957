import GPUNet
import Models
import NetIO

/// Any ``NetworkDescription`` run in float64 by composing the naive loops of
/// ``NaiveReference`` layer by layer: the independent reference a network
/// plan's forward pass, loss, gradients and running statistics are tested
/// against.
///
/// Semantics are PyTorch's: `Conv2d` with stride, zero padding and optional
/// bias; `BatchNorm2d` normalising by the batch mean and biased variance in
/// training (and moving the running statistics by momentum 0.1 towards the
/// batch mean and the unbiased variance), by the running statistics in eval;
/// ReLU; `MaxPool2d(2)` in floor mode (ties to the first in row-major
/// order); `AdaptiveAvgPool2d(1)`; `flatten` channel-major; `Linear`; a
/// residual block y = body(x) + shortcut(x), then ReLU when the block says
/// so; the loss is the mean softmax cross-entropy over the batch.
///
/// Layers and tensor names come from ``NetworkDescription/summary(input:classes:)``:
/// the description is walked in the summary's order (a residual block's
/// body rows, its shortcut's rows, its add row, its ReLU row), so every
/// tensor is read and every gradient written under the summary's
/// `state_dict` name, and layer outputs line up with ``NetworkSummary/layers``.
///
/// BatchNorm's ε is the float32 nearest 1e-5 that ``BatchNormShape`` holds
/// (as the float32 devices use; it differs from 1e-5 by 2.5e-13 relative,
/// which moves no output by more than ~1e-13 relative); the running
/// statistics use ``BatchNorm2dSpec/momentum`` (0.1) in float64.
public struct NaiveNetwork {
    /// The description bound to the input shape: rows, paths and tensors.
    public let summary: NetworkSummary
    public let classes: Int
    private let nodes: [Node]

    /// A layer of the description, by the index of its summary row, or a
    /// residual block with the rows of its add and of its ReLU.
    private enum Node {
        case layer(row: Int, kind: LayerKind)
        case residual(body: [Node], shortcut: [Node]?, addRow: Int, reluRow: Int?)
    }

    /// - Throws: ``ModelError`` when the description does not chain from
    ///   `input` to `classes` outputs (shape inference's error).
    public init(_ description: NetworkDescription, input: (channels: Int, height: Int, width: Int), classes: Int)
        throws
    {
        summary = try description.summary(
            input: .map(channels: input.channels, height: input.height, width: input.width), classes: classes)
        self.classes = classes
        var cursor = RowCursor(rows: summary.layers)
        nodes = cursor.nodes(description.layers)
        precondition(
            cursor.next == summary.layers.count,
            "NaiveNetwork: the walk took \(cursor.next) of the summary's \(summary.layers.count) rows")
    }

    /// The learned tensors (weights, biases, BatchNorm γ and β), in `state_dict` order.
    public var learnedParameters: [ParameterDescription] { summary.parameters.filter { $0.role == .learned } }

    /// The float32 tensors ``run(images:labels:batch:parameters:training:)``
    /// reads: the learned ones and BatchNorm's `running_mean` and
    /// `running_var` (not `num_batches_tracked`, which changes no value).
    public var inputParameters: [ParameterDescription] {
        summary.parameters.filter { $0.elementType == .float32 }
    }

    /// Test values for every tensor of ``inputParameters``, from `seed`: learned
    /// tensors uniform in [−scale, scale], running means uniform in
    /// [−0.5, 0.5], running variances uniform in [0.5, 1.5]. Not an
    /// initialisation scheme; varied values for comparisons.
    public func sampleParameters(seed: UInt64, scale: Double = 0.5) -> [String: [Double]] {
        var random = SeededRandom(seed: seed)
        var values: [String: [Double]] = [:]
        for p in inputParameters {
            let range: ClosedRange<Double>
            if p.role == .learned {
                range = -scale...scale
            } else if p.name.hasSuffix(".running_var") {
                range = 0.5...1.5
            } else {
                range = -0.5...0.5
            }
            values[p.name] = (0..<p.count).map { _ in Double.random(in: range, using: &random) }
        }
        return values
    }

    /// One forward and backward pass in float64.
    public struct Result {
        /// (batch, classes).
        public var logits: [Double]
        /// −log softmax(logits_b)[label_b], as ``NaiveReference/softmaxCrossEntropy(batch:classes:logits:labels:)``.
        public var lossPerSample: [Double]
        public var meanLoss: Double
        /// ∂(mean loss)/∂ each learned tensor, by `state_dict` name.
        public var gradients: [String: [Double]]
        /// Every `running_mean` and `running_var` after the pass: moved by
        /// momentum 0.1 towards the batch mean and unbiased variance in
        /// training, the given values in eval.
        public var runningStatistics: [String: [Double]]
        /// The output of each row of ``NaiveNetwork/summary``'s layers, in
        /// that order, (batch, row output shape) row-major.
        public var layerOutputs: [[Double]]
        /// The same outputs by the row's path. Where two rows share a path
        /// (torchvision's blocks apply their `relu` twice, so a block's body
        /// ReLU and its ReLU after the add are both "layer1.0.relu") the
        /// later row's output is kept; ``layerOutputs`` has both.
        public var activations: [String: [Double]]
    }

    /// One pass over a batch: the forward pass to the mean loss, then every
    /// learned tensor's gradient by the chain rule (a residual block's input
    /// gradient is the sum of its body's and its shortcut's).
    ///
    /// - Parameters:
    ///   - images: (batch, C, H, W) row-major.
    ///   - labels: one class in 0..<classes per image.
    ///   - parameters: `state_dict` name → values for every tensor of
    ///     ``inputParameters`` (learned tensors and the BatchNorm buffers).
    ///   - training: BatchNorm's mode: batch statistics (and a running
    ///     statistics update) or the running statistics.
    /// - Precondition: sizes match the summary; a BatchNorm in training
    ///   sees more than one value per channel (PyTorch's rule, the unbiased
    ///   variance needs two).
    public func run(
        images: [Double], labels: [Int32], batch: Int, parameters: [String: [Double]], training: Bool
    ) -> Result {
        precondition(batch > 0 && labels.count == batch, "NaiveNetwork.run: \(labels.count) labels for batch \(batch)")
        precondition(
            images.count == batch * summary.input.elementCount,
            "NaiveNetwork.run: \(images.count) image values, want \(batch)×\(summary.input)")
        for p in inputParameters {
            precondition(
                parameters[p.name]?.count == p.count,
                "NaiveNetwork.run: \(p.name) needs \(p.count) values, got \(parameters[p.name]?.count ?? 0)")
        }
        var pass = Pass(rows: summary.layers, batch: batch, training: training, parameters: parameters)
        let logits = pass.forward(nodes, images)
        let loss = NaiveReference.softmaxCrossEntropy(batch: batch, classes: classes, logits: logits, labels: labels)
        _ = pass.backward(nodes, loss.gradLogits)
        var activations: [String: [Double]] = [:]
        for (row, output) in zip(summary.layers, pass.outputs) { activations[row.path] = output }
        return Result(
            logits: logits, lossPerSample: loss.loss, meanLoss: loss.meanLoss, gradients: pass.gradients,
            runningStatistics: pass.running, layerOutputs: pass.outputs, activations: activations)
    }

    /// ∂(Σ u·logits)/∂images of the eval-mode network (BatchNorm with the
    /// running statistics in `parameters`), u = `cotangent` (batch ×
    /// classes): the same backward walk as ``run(images:labels:batch:parameters:training:)``'s,
    /// from u instead of the loss's gradient.
    public func inputGradient(
        images: [Double], cotangent: [Double], batch: Int, parameters: [String: [Double]]
    ) -> [Double] {
        precondition(cotangent.count == batch * classes, "NaiveNetwork.inputGradient: \(cotangent.count) values")
        var pass = Pass(rows: summary.layers, batch: batch, training: false, parameters: parameters)
        _ = pass.forward(nodes, images)
        return pass.backward(nodes, cotangent)
    }

    /// The eval-mode forward pass alone (BatchNorm by the running
    /// statistics in `parameters`): every row's input and output, (batch,
    /// shape) row-major, in ``summary``'s order; a residual block's add row
    /// records the block's input, its ReLU row the sum.
    public func evalRows(images: [Double], batch: Int, parameters: [String: [Double]]) -> (
        inputs: [[Double]], outputs: [[Double]]
    ) {
        var pass = Pass(rows: summary.layers, batch: batch, training: false, parameters: parameters)
        _ = pass.forward(nodes, images)
        return (pass.inputs, pass.outputs)
    }

    /// Walks a description in shape inference's order, taking one summary row per layer.
    private struct RowCursor {
        let rows: [LayerSummary]
        var next = 0

        mutating func take() -> Int {
            precondition(next < rows.count, "NaiveNetwork: the description has more layers than the summary rows")
            next += 1
            return next - 1
        }

        mutating func nodes(_ layers: [LayerDescription]) -> [Node] {
            var result: [Node] = []
            for layer in layers {
                guard case .residual(let block) = layer.kind else {
                    result.append(.layer(row: take(), kind: layer.kind))
                    continue
                }
                let body = nodes(block.body)
                var shortcut: [Node]?
                if case .projection(let projection) = block.shortcut { shortcut = nodes(projection) }
                let addRow = take()
                let reluRow = block.reluAfterAdd ? take() : nil
                result.append(.residual(body: body, shortcut: shortcut, addRow: addRow, reluRow: reluRow))
            }
            return result
        }
    }

    /// The state of one pass: every row's input and output, what backward
    /// needs of the forward, the gradients and the running statistics.
    private struct Pass {
        let rows: [LayerSummary]
        let batch: Int
        let training: Bool
        let parameters: [String: [Double]]
        var inputs: [[Double]]
        var outputs: [[Double]]
        var argmax: [Int: [Int32]] = [:]
        var batchNorm: [Int: NaiveReference.BatchNormResult] = [:]
        var gradients: [String: [Double]] = [:]
        var running: [String: [Double]] = [:]

        init(rows: [LayerSummary], batch: Int, training: Bool, parameters: [String: [Double]]) {
            self.rows = rows
            self.batch = batch
            self.training = training
            self.parameters = parameters
            inputs = Array(repeating: [], count: rows.count)
            outputs = Array(repeating: [], count: rows.count)
        }

        /// The `state_dict` name of row `row`'s tensor `key` ("weight", "running_mean", …).
        func name(_ row: Int, _ key: String) -> String {
            guard let p = rows[row].parameters.first(where: { $0.name.hasSuffix(".\(key)") }) else {
                preconditionFailure("NaiveNetwork: \(rows[row].path) has no tensor \(key)")
            }
            return p.name
        }

        func tensor(_ row: Int, _ key: String) -> [Double] { parameters[name(row, key)]! }

        /// (C, H, W) of row `row`'s input.
        func map(_ row: Int) -> (c: Int, h: Int, w: Int) {
            guard case .map(let c, let h, let w) = rows[row].input else {
                preconditionFailure("NaiveNetwork: \(rows[row].path) expects maps")
            }
            return (c, h, w)
        }

        func convShape(_ row: Int, _ spec: Conv2dSpec) -> Conv2dShape {
            let (_, h, w) = map(row)
            return Conv2dShape(
                batch: batch, inChannels: spec.inChannels, outChannels: spec.outChannels, height: h, width: w,
                kernelHeight: spec.kernelSize, kernelWidth: spec.kernelSize, stride: spec.stride,
                padding: spec.padding)
        }

        func batchNormShape(_ row: Int) -> BatchNormShape {
            let (c, h, w) = map(row)
            return BatchNormShape(batch: batch, channels: c, height: h, width: w)
        }

        func poolShape(_ row: Int) -> PoolShape {
            let (c, h, w) = map(row)
            return PoolShape(batch: batch, channels: c, height: h, width: w)
        }

        func featureMapShape(_ row: Int) -> FeatureMapShape {
            let (c, h, w) = map(row)
            return FeatureMapShape(batch: batch, channels: c, height: h, width: w)
        }

        func linearShape(_ spec: LinearSpec) -> LinearShape {
            LinearShape(batch: batch, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures)
        }

        mutating func record(_ row: Int, input: [Double], output: [Double]) {
            precondition(
                output.count == batch * rows[row].output.elementCount,
                "NaiveNetwork: \(rows[row].path) gives \(output.count) values, want \(batch)×\(rows[row].output)")
            inputs[row] = input
            outputs[row] = output
        }

        mutating func forward(_ nodes: [Node], _ input: [Double]) -> [Double] {
            var x = input
            for node in nodes {
                switch node {
                case .layer(let row, let kind):
                    let y = forward(row, kind, x)
                    record(row, input: x, output: y)
                    x = y
                case .residual(let body, let shortcut, let addRow, let reluRow):
                    let bodyOutput = forward(body, x)
                    var shortcutOutput = x
                    if let shortcut { shortcutOutput = forward(shortcut, x) }
                    var y = NaiveReference.residualAdd(bodyOutput, shortcutOutput)
                    record(addRow, input: x, output: y)
                    if let reluRow {
                        let r = NaiveReference.reluForward(y)
                        record(reluRow, input: y, output: r)
                        y = r
                    }
                    x = y
                }
            }
            return x
        }

        mutating func forward(_ row: Int, _ kind: LayerKind, _ x: [Double]) -> [Double] {
            switch kind {
            case .conv(let spec):
                return NaiveReference.conv2dForward(
                    convShape(row, spec), input: x, weight: tensor(row, "weight"),
                    bias: spec.bias ? tensor(row, "bias") : nil)
            case .batchNorm:
                let s = batchNormShape(row)
                let (meanName, varName) = (name(row, "running_mean"), name(row, "running_var"))
                let (runningMean, runningVar) = (parameters[meanName]!, parameters[varName]!)
                let result = NaiveReference.batchNormForward(
                    s, input: x, gamma: tensor(row, "weight"), beta: tensor(row, "bias"), runningMean: runningMean,
                    runningVar: runningVar, training: training)
                batchNorm[row] = result
                if training {
                    let n = Double(s.valuesPerChannel)
                    precondition(
                        n > 1, "NaiveNetwork: \(rows[row].path) in training needs more than one value per channel")
                    let m = BatchNorm2dSpec.momentum
                    running[meanName] = (0..<s.channels).map { (1 - m) * runningMean[$0] + m * result.mean[$0] }
                    running[varName] = (0..<s.channels).map {
                        (1 - m) * runningVar[$0] + m * result.variance[$0] * n / (n - 1)
                    }
                } else {
                    running[meanName] = runningMean
                    running[varName] = runningVar
                }
                return result.output
            case .relu:
                return NaiveReference.reluForward(x)
            case .maxPool2:
                let pooled = NaiveReference.maxPool2Forward(poolShape(row), input: x)
                argmax[row] = pooled.argmax
                return pooled.output
            case .globalAveragePool:
                return NaiveReference.globalAveragePoolForward(featureMapShape(row), input: x)
            case .flatten:
                return x
            case .linear(let spec):
                let bias = spec.bias ? tensor(row, "bias") : [Double](repeating: 0, count: spec.outFeatures)
                return NaiveReference.linearForward(
                    linearShape(spec), input: x, weight: tensor(row, "weight"), bias: bias)
            case .residual:
                preconditionFailure("NaiveNetwork: a residual block is walked as a node, not a row")
            }
        }

        /// Returns ∂L/∂(the nodes' input) from ∂L/∂(their output), writing the
        /// learned tensors' gradients on the way.
        mutating func backward(_ nodes: [Node], _ gradOutput: [Double]) -> [Double] {
            var g = gradOutput
            for node in nodes.reversed() {
                switch node {
                case .layer(let row, let kind):
                    g = backward(row, kind, g)
                case .residual(let body, let shortcut, _, let reluRow):
                    if let reluRow { g = NaiveReference.reluBackward(output: outputs[reluRow], gradOutput: g) }
                    let bodyGradient = backward(body, g)
                    var shortcutGradient = g
                    if let shortcut { shortcutGradient = backward(shortcut, g) }
                    g = NaiveReference.residualAdd(bodyGradient, shortcutGradient)
                }
            }
            return g
        }

        mutating func backward(_ row: Int, _ kind: LayerKind, _ g: [Double]) -> [Double] {
            switch kind {
            case .conv(let spec):
                let s = convShape(row, spec)
                let weight = tensor(row, "weight")
                let grads = NaiveReference.conv2dBackwardWeight(s, input: inputs[row], gradOutput: g)
                gradients[name(row, "weight")] = grads.weight
                if spec.bias { gradients[name(row, "bias")] = grads.bias }
                return NaiveReference.conv2dBackwardData(s, gradOutput: g, weight: weight)
            case .batchNorm:
                let stats = batchNorm[row]!
                let grads = NaiveReference.batchNormBackward(
                    batchNormShape(row), input: inputs[row], gamma: tensor(row, "weight"), gradOutput: g,
                    mean: stats.mean, variance: stats.variance, training: training)
                gradients[name(row, "weight")] = grads.gamma
                gradients[name(row, "bias")] = grads.beta
                return grads.input
            case .relu:
                return NaiveReference.reluBackward(output: outputs[row], gradOutput: g)
            case .maxPool2:
                return NaiveReference.maxPool2Backward(poolShape(row), gradOutput: g, argmax: argmax[row]!)
            case .globalAveragePool:
                return NaiveReference.globalAveragePoolBackward(featureMapShape(row), gradOutput: g)
            case .flatten:
                return g
            case .linear(let spec):
                let grads = NaiveReference.linearBackward(
                    linearShape(spec), input: inputs[row], weight: tensor(row, "weight"), gradOutput: g)
                gradients[name(row, "weight")] = grads.gradWeight
                if spec.bias { gradients[name(row, "bias")] = grads.gradBias }
                return grads.gradInput
            case .residual:
                preconditionFailure("NaiveNetwork: a residual block is walked as a node, not a row")
            }
        }
    }
}

extension NetworkPlan {
    /// Loads every parameter and running statistic from float64 values by
    /// name (``NaiveNetwork/sampleParameters(seed:)``), each rounded to float32.
    public func load(float64 values: [String: [Double]]) throws {
        try load(
            Dictionary(
                uniqueKeysWithValues: (parameters + statistics).map {
                    ($0.name, (shape: $0.shape, values: values[$0.name]!.map(Float.init)))
                }))
    }
}
