import Models

/// A step of the eval-mode forward pass: one operation, or a convolution
/// layer fused into one device operation (``FusedConvolution``).
enum InferenceStep {
    case single(Operation)
    case fused(FusedLayer)
}

/// The operations a fused layer covers: a convolution, then in this order
/// and each optional, a 1×1 stride-1 unpadded convolution of its output, a
/// BatchNorm, a residual sum with an activation computed earlier, a ReLU.
/// Every activation inside the layer is read by the next of these
/// operations alone, so none needs to be written.
struct FusedLayer {
    /// The index of the convolution among the plan's operations (its affine buffers' key).
    var first: Int
    var conv: Operation
    var pointwise: Operation?
    var batchNorm: Operation?
    var add: Operation?
    /// The other addend of `add`: an activation written before the layer starts.
    var residual: Int?
    var relu: Operation?
    /// The activation the layer writes: its last operation's output.
    var output: Int
    var input: Int { conv.inputs[0] }
}

extension NetworkPlan {
    /// Groups the operations into fused layers where the pattern of
    /// ``FusedLayer`` holds, single operations elsewhere.
    func makeInferenceSteps() -> [InferenceStep] {
        let readers = Self.readers(of: operations, activations: activationSizes.count)
        var steps: [InferenceStep] = []
        var i = 0
        while i < operations.count {
            let op = operations[i]
            guard case .conv = op.kind else {
                steps.append(.single(op))
                i += 1
                continue
            }
            var layer = FusedLayer(
                first: i, conv: op, pointwise: nil, batchNorm: nil, add: nil, residual: nil, relu: nil,
                output: op.output)
            var next = i + 1
            /// The next operation when it reads the layer's current output, which nothing else reads.
            func follower() -> Operation? {
                guard next < operations.count, readers[layer.output].count == 1,
                    operations[next].inputs.contains(layer.output)
                else { return nil }
                return operations[next]
            }
            if let f = follower(), case .conv(let spec, _, _, _, _) = f.kind, spec.kernelSize == 1, spec.stride == 1,
                spec.padding == 0
            {
                (layer.pointwise, layer.output, next) = (f, f.output, next + 1)
            }
            if let f = follower(), case .batchNorm = f.kind {
                (layer.batchNorm, layer.output, next) = (f, f.output, next + 1)
            }
            if let f = follower(), case .add = f.kind, f.inputs.count == 2 {
                let other = f.inputs[0] == layer.output ? f.inputs[1] : f.inputs[0]
                // The other addend is written before the layer starts (by an earlier step).
                if other != layer.output, other < layer.conv.output {
                    (layer.add, layer.residual, layer.output, next) = (f, other, f.output, next + 1)
                }
            }
            if let f = follower(), case .relu = f.kind {
                (layer.relu, layer.output, next) = (f, f.output, next + 1)
            }
            if next == i + 1 {
                steps.append(.single(op))
            } else {
                steps.append(.fused(layer))
            }
            i = next
        }
        return steps
    }

    /// The eval-mode forward pass with fused layers where `d` supports them,
    /// then the loss, as ``forward(_:training:)``.
    func fusedInferenceForward(_ w: Workspace, device d: InferenceDevice) throws {
        let b = w.batch
        var fusedAny = false
        // Consecutive fused layers go to the device as one sequence (which the host runs image by image),
        // except under an ``operationHook``, which sees each layer as its own operation.
        var sequence: [FusedConvolutionCall] = []
        func flush() throws {
            guard !sequence.isEmpty else { return }
            try d.fusedConvolutionSequence(sequence)
            sequence.removeAll()
        }
        for step in inferenceSteps {
            switch step {
            case .single(let op):
                try flush()
                try forwardOperation(op, w, training: false)
            case .fused(let layer):
                let description = fusedConvolution(layer, batch: b)
                guard d.supportsFusedConvolution(description) else {
                    try flush()
                    for op in [layer.conv, layer.pointwise, layer.batchNorm, layer.add, layer.relu].compactMap({ $0 }) {
                        try forwardOperation(op, w, training: false)
                    }
                    continue
                }
                if operationHook == nil {
                    sequence.append(try fusedCall(layer, description, w, device: d))
                } else {
                    try runFused(layer, description, w, device: d)
                }
                fusedAny = true
            }
        }
        try flush()
        w.holdsFusedPass = fusedAny
        try perform("loss", "loss", "forward", floats: 2 * b * classes + 3 * b) {
            try d.softmaxCrossEntropy(
                batch: b, classes: classes, logits: w.logits, labels: w.labels,
                gradLogits: w.gradients[w.gradients.count - 1]!, perSample: w.perSample)
        }
    }

    /// Writes the activations a fused pass skipped, by the layer-by-layer
    /// eval pass over the same batch (nothing when the last pass did not fuse).
    func writeFusedActivations(_ w: Workspace) throws {
        guard w.holdsFusedPass else { return }
        let fuses = fusesInference
        fusesInference = false
        defer { fusesInference = fuses }
        try forward(w, training: false)
    }

    func fusedConvolution(_ layer: FusedLayer, batch: Int) -> FusedConvolution {
        guard case .conv(let spec, let h, let wd, _, _) = layer.conv.kind else {
            preconditionFailure("a fused layer starts with a convolution")
        }
        var pointwiseChannels: Int?
        if let pointwise = layer.pointwise, case .conv(let second, _, _, _, _) = pointwise.kind {
            pointwiseChannels = second.outChannels
        }
        return FusedConvolution(
            shape: convShape(spec, batch: batch, height: h, width: wd), pointwiseChannels: pointwiseChannels,
            residual: layer.add != nil, relu: layer.relu != nil)
    }

    /// The fused layer's device call, its scale and shift computed first
    /// (``InferenceDevice/inferenceAffine(channels:bias:batchNorm:scale:shift:)``)
    /// unless ``withParametersFixed(_:)`` formed them already.
    private func fusedCall(_ layer: FusedLayer, _ f: FusedConvolution, _ w: Workspace, device d: InferenceDevice)
        throws -> FusedConvolutionCall
    {
        guard case .conv(_, _, _, let weight, let bias) = layer.conv.kind else {
            preconditionFailure("a fused layer starts with a convolution")
        }
        var pointwiseWeight: Buffer?
        var lastBias = bias
        if let pointwise = layer.pointwise, case .conv(_, _, _, let second, let secondBias) = pointwise.kind {
            pointwiseWeight = parameters[second].buffer
            lastBias = secondBias
        }
        var batchNorm: InferenceBatchNorm?
        if let bn = layer.batchNorm, case .batchNorm(_, _, _, let gamma, let beta, let mean, let variance, _) = bn.kind
        {
            batchNorm = InferenceBatchNorm(
                gamma: parameters[gamma].buffer, beta: parameters[beta].buffer, runningMean: statistics[mean].buffer,
                runningVar: statistics[variance].buffer)
        }
        let affine = try inferenceAffine(layer.first, channels: f.outChannels)
        // With a pointwise convolution the first one's bias is added before it, the second's
        // folds into the shift; without, the first one's is added before the scale.
        // Inside withParametersFixed, once a scope.
        if formedInferenceAffines?.contains(layer.first) != true {
            try d.inferenceAffine(
                channels: f.outChannels, bias: layer.pointwise == nil ? nil : lastBias.map { parameters[$0].buffer },
                batchNorm: batchNorm, scale: affine.scale, shift: affine.shift)
            formedInferenceAffines?.insert(layer.first)
        }
        return FusedConvolutionCall(
            layer: f, input: w.activations[layer.input], weight: parameters[weight].buffer,
            bias: bias.map { parameters[$0].buffer }, pointwiseWeight: pointwiseWeight, scale: affine.scale,
            shift: affine.shift, residual: layer.residual.map { w.activations[$0] }, output: w.activations[layer.output]
        )
    }

    private func runFused(_ layer: FusedLayer, _ f: FusedConvolution, _ w: Workspace, device d: InferenceDevice)
        throws
    {
        guard case .conv(_, _, _, let weight, let bias) = layer.conv.kind else { return }
        let pointwiseFloats = layer.pointwise.flatMap { op -> Int? in
            guard case .conv(_, _, _, let second, _) = op.kind else { return nil }
            return parameters[second].count
        }
        let b = w.batch
        let (inFloats, outFloats) = (b * activationSizes[layer.input], b * activationSizes[layer.output])
        let weights = weightFloats(weight, bias) + (pointwiseFloats ?? 0)
        try perform(
            layer.conv.path, "conv", "inference", multiplyAdds: f.multiplyAdds,
            floats: inFloats + weights + 2 * f.outChannels + (f.residual ? outFloats : 0) + outFloats
        ) {
            let c = try fusedCall(layer, f, w, device: d)
            try d.fusedConvolutionForward(
                f, input: c.input, weight: c.weight, bias: c.bias, pointwiseWeight: c.pointwiseWeight, scale: c.scale,
                shift: c.shift, residual: c.residual, output: c.output)
        }
    }

    /// The scale and shift buffers of the fused layer starting at operation `first`, made once.
    private func inferenceAffine(_ first: Int, channels: Int) throws -> (scale: Buffer, shift: Buffer) {
        if let made = inferenceAffines[first] { return made }
        let made = (
            scale: try device.makeBuffer(count: channels, kind: .float32),
            shift: try device.makeBuffer(count: channels, kind: .float32)
        )
        inferenceAffines[first] = made
        return made
    }

    /// Runs `body` with the parameters and running statistics fixed: each
    /// fused layer's scale and shift are formed by the first eval pass
    /// inside and reused by the rest (one `inferenceAffine` a fused layer
    /// per `body` instead of per batch: 21 launches a batch fewer for
    /// ResNet-20 on OpenCL). Nothing inside may write a parameter's buffer;
    /// a training pass inside stops the program.
    public func withParametersFixed<Result>(_ body: () throws -> Result) rethrows -> Result {
        guard formedInferenceAffines == nil else { return try body() }
        formedInferenceAffines = []
        defer { formedInferenceAffines = nil }
        return try body()
    }
}
