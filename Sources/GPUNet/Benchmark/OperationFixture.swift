import NetIO

/// Buffers filled with random values at TinyConvNet's shapes for one batch
/// size, and a closure per operation to time on them.
struct OperationFixture {
    struct Operation {
        var name: String
        var shape: String
        var flops: Double?
        /// The bytes the operation must move at least: each input read and
        /// each output written once, in 4-byte elements (``Benchmark/Timing/bytes``).
        var bytes: Double?
        var run: () throws -> Void
    }

    let device: any Device
    let batch: Int
    let network: TinyConvNet
    let optimizer: Optimizer
    let workspace: TinyConvNet.Workspace
    private(set) var operations: [Operation] = []

    /// How many times each timed operation occurs in one training step: the
    /// parts of ``Benchmark/DeviceReport/stepBreakdown``.
    /// The ReLUs are fused into the pooled convolutions (``TinyConvNet``).
    static let stepComposition: [(String, Int)] = [
        ("conv1.forward_pool", 1), ("conv2.forward_pool", 1), ("fc.forward", 1), ("softmax_cross_entropy", 1),
        ("fc.backward", 1), ("conv2.backward_weight_pooled", 1), ("conv2.backward_data_pooled", 1),
        ("conv1.backward_weight_pooled", 1), ("adam.update", 1),
    ]

    init(device: any Device, batch: Int) throws {
        self.device = device
        self.batch = batch
        network = try TinyConvNet(device: device)
        try network.load(TinyConvNet.initialWeights(seed: 7))
        optimizer = try Optimizer(.adam(), learningRate: 1e-3, parameters: network.parameters, device: device)
        workspace = try network.workspace(batch: batch)
        var random = SeededRandom(seed: UInt64(batch))
        try device.upload((0..<workspace.shapes.conv1.inputCount).map { _ in random.uniform(2) }, to: workspace.input)
        try device.upload((0..<batch).map { _ in Int32(random.next() % 10) }, to: workspace.labels)
        // One real step fills every activation and gradient with meaningful values.
        try network.forward(workspace)
        try network.backward(workspace)
        try device.finish()
        try makeOperations(&random)
    }

    private mutating func makeOperations(_ random: inout SeededRandom) throws {
        let d = device
        let w = workspace
        let s = w.shapes
        let p = network.parameters
        let g = network.gradients
        let batch = self.batch
        func floats(_ n: Int) throws -> Buffer {
            try d.makeBuffer((0..<n).map { _ in random.uniform(1) })
        }
        /// Bytes of these counts of 4-byte elements.
        func elements(_ counts: Int...) -> Double { 4 * Double(counts.reduce(0, +)) }
        // The im2col products of each layer, as in reference-figures.md.
        let gemms: [(String, GEMMShape)] = [
            ("gemm.conv1.forward", GEMMShape(m: 8, n: s.conv1.patchCount, k: 9)),
            ("gemm.conv2.forward", GEMMShape(m: 16, n: s.conv2.patchCount, k: 72)),
            ("gemm.conv2.weight_grad", GEMMShape(m: 16, n: 72, k: s.conv2.patchCount, transposeB: true)),
            ("gemm.conv2.column_grad", GEMMShape(m: 72, n: s.conv2.patchCount, k: 16, transposeA: true)),
            ("gemm.conv1.weight_grad", GEMMShape(m: 8, n: 9, k: s.conv1.patchCount, transposeB: true)),
            ("gemm.fc.forward", GEMMShape(m: batch, n: 10, k: 400, transposeB: true)),
        ]
        for (name, shape) in gemms {
            let a = try floats(shape.m * shape.k)
            let b = try floats(shape.k * shape.n)
            let c = try floats(shape.m * shape.n)
            operations.append(
                Operation(
                    name: name, shape: shape.description, flops: shape.flops,
                    bytes: elements(shape.m * shape.k, shape.k * shape.n, shape.m * shape.n)
                ) {
                    try d.gemm(shape, a: a, b: b, c: c)
                })
        }
        for (layer, conv, pool, input, weight, gradWeight, argmax, reluOutput, gradReluOutput, gradInput) in [
            ("conv1", s.conv1, s.pool1, w.input, p.conv1, g.conv1, w.argmax1, w.relu1, w.gradRelu1, Buffer?.none),
            ("conv2", s.conv2, s.pool2, w.relu1, p.conv2, g.conv2, w.argmax2, w.relu2, w.gradRelu2, w.gradRelu1),
        ] {
            let words = "(\(batch),\(conv.inChannels),\(conv.height),\(conv.width))→\(conv.outChannels)"
            let columns = try d.makeBuffer(count: conv.patchSize * conv.patchCount, kind: .float32)
            let scratchInput = try d.makeBuffer(count: conv.inputCount, kind: .float32)
            let output = try d.makeBuffer(count: conv.outputCount, kind: .float32)
            // A dense output gradient for the dense passes: the one through the
            // ReLU, routed to the pool's winners.
            let gradPooled = try d.makeBuffer(count: pool.outputCount, kind: .float32)
            try d.reluBackward(
                count: pool.outputCount, output: reluOutput, gradOutput: gradReluOutput,
                gradInput: gradPooled)
            let gradOutput = try d.makeBuffer(count: conv.outputCount, kind: .float32)
            try d.maxPool2Backward(pool, gradOutput: gradPooled, argmax: argmax, gradInput: gradOutput)
            // What training passes: the ReLU output's gradient, masked inside the passes.
            let sparse = PooledGradient(pool: pool, values: gradReluOutput, argmax: argmax, reluOutput: reluOutput)
            let scratchPooled = try d.makeBuffer(count: pool.outputCount, kind: .float32)
            let scratchArgmax = try d.makeBuffer(count: pool.outputCount, kind: .int32)
            let weights = conv.outChannels * conv.patchSize
            let columnCount = conv.patchSize * conv.patchCount
            // The pooled passes read the pooled gradient, its winners and the ReLU's output.
            let pooledGradient = 3 * pool.outputCount
            operations += [
                Operation(
                    name: "\(layer).im2col", shape: words, flops: nil, bytes: elements(conv.inputCount, columnCount)
                ) {
                    try d.im2col(conv, input: input, columns: columns)
                },
                Operation(
                    name: "\(layer).col2im", shape: words, flops: nil, bytes: elements(columnCount, conv.inputCount)
                ) {
                    try d.col2im(conv, columns: columns, input: scratchInput)
                },
                Operation(
                    name: "\(layer).forward", shape: words, flops: conv.flops,
                    bytes: elements(conv.inputCount, weights, conv.outputCount)
                ) {
                    try d.conv2dForward(conv, input: input, weight: weight, output: output)
                },
                Operation(
                    name: "\(layer).backward_weight", shape: words, flops: conv.flops,
                    bytes: elements(conv.inputCount, conv.outputCount, weights)
                ) {
                    try d.conv2dBackwardWeight(conv, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
                },
                Operation(
                    name: "\(layer).backward_data", shape: words, flops: conv.flops,
                    bytes: elements(conv.outputCount, weights, conv.inputCount)
                ) {
                    // conv1's input gradient is not needed in training; timed for completeness.
                    try d.conv2dBackwardData(
                        conv, gradOutput: gradOutput, weight: weight,
                        gradInput: gradInput ?? scratchInput)
                },
                // What training runs (with the fused ReLU). GFLOP/s count the dense
                // arithmetic the operation replaces, so they compare with the dense rows above.
                Operation(
                    name: "\(layer).forward_pool", shape: words, flops: conv.flops,
                    bytes: elements(conv.inputCount, weights, 2 * pool.outputCount)
                ) {
                    try d.conv2dMaxPool2Forward(
                        conv, input: input, weight: weight, pooled: scratchPooled,
                        argmax: scratchArgmax, relu: true)
                },
                Operation(
                    name: "\(layer).backward_weight_pooled", shape: words, flops: conv.flops,
                    bytes: elements(conv.inputCount, pooledGradient, weights)
                ) {
                    try d.conv2dBackwardWeight(conv, input: input, pooledGradient: sparse, gradWeight: gradWeight)
                },
                Operation(
                    name: "\(layer).backward_data_pooled", shape: words, flops: conv.flops,
                    bytes: elements(pooledGradient, weights, conv.inputCount)
                ) {
                    try d.conv2dBackwardData(
                        conv, pooledGradient: sparse, weight: weight,
                        gradInput: gradInput ?? scratchInput)
                },
            ]
        }
        // The standalone ReLU at the pooled sizes (training fuses it).
        for (layer, count) in [("relu1", s.pool1.outputCount), ("relu2", s.pool2.outputCount)] {
            let input = try floats(count)
            let output = try floats(count)
            let gradOutput = try floats(count)
            let gradInput = try floats(count)
            try d.reluForward(count: count, input: input, output: output)
            operations += [
                Operation(name: "\(layer).forward", shape: "\(count)", flops: nil, bytes: elements(count, count)) {
                    try d.reluForward(count: count, input: input, output: output)
                },
                Operation(
                    name: "\(layer).backward", shape: "\(count)", flops: nil, bytes: elements(count, count, count)
                ) {
                    try d.reluBackward(count: count, output: output, gradOutput: gradOutput, gradInput: gradInput)
                },
            ]
        }
        // The standalone pool at each convolution's output size (training fuses it).
        for (layer, pool, conv) in [("pool1", s.pool1, s.conv1), ("pool2", s.pool2, s.conv2)] {
            let words = "(\(batch),\(pool.channels),\(pool.height),\(pool.width))"
            let input = try floats(conv.outputCount)
            let gradInput = try floats(conv.outputCount)
            let output = try floats(pool.outputCount)
            let gradOutput = try floats(pool.outputCount)
            let argmax = try d.makeBuffer(count: pool.outputCount, kind: .int32)
            try d.maxPool2Forward(pool, input: input, output: output, argmax: argmax)
            operations += [
                Operation(
                    name: "\(layer).forward", shape: words, flops: nil,
                    bytes: elements(conv.outputCount, 2 * pool.outputCount)
                ) {
                    try d.maxPool2Forward(pool, input: input, output: output, argmax: argmax)
                },
                Operation(
                    name: "\(layer).backward", shape: words, flops: nil,
                    bytes: elements(2 * pool.outputCount, conv.outputCount)
                ) {
                    try d.maxPool2Backward(pool, gradOutput: gradOutput, argmax: argmax, gradInput: gradInput)
                },
            ]
        }
        let optimizer = self.optimizer
        let network = self.network
        operations += [
            Operation(
                name: "fc.forward", shape: "\(batch)×400→10", flops: s.fc.flops,
                bytes: elements(batch * 400, 4000, 10, batch * 10)
            ) {
                try d.linearForward(s.fc, input: w.relu2, weight: p.fcWeight, bias: p.fcBias, output: w.logits)
            },
            Operation(
                name: "fc.backward", shape: "\(batch)×400→10", flops: 2 * s.fc.flops,
                bytes: elements(batch * 10, batch * 400, 4000, 4000, 10, batch * 400)
            ) {
                try d.linearBackward(
                    s.fc, input: w.relu2, weight: p.fcWeight, gradOutput: w.gradLogits,
                    gradInput: w.gradRelu2, gradWeight: g.fcWeight, gradBias: g.fcBias)
            },
            Operation(
                name: "softmax_cross_entropy", shape: "\(batch)×10", flops: nil,
                bytes: elements(batch * 10, batch, batch * 10, 2 * batch)
            ) {
                try d.softmaxCrossEntropy(
                    batch: batch, classes: 10, logits: w.logits, labels: w.labels,
                    gradLogits: w.gradLogits, perSample: w.perSample)
            },
            // Parameter, gradient and both moments read; parameter and moments written.
            Operation(name: "adam.update", shape: "5,234 parameters", flops: nil, bytes: elements(7 * 5234)) {
                try optimizer.update(parameters: network.parameters, gradients: network.gradients)
            },
        ]
    }

    /// The step's structure (``StepStructure``): `stepsPerRead` steps
    /// queued as the trainer queues them. The batch's upload is not
    /// included (the trainer gathers it on the device).
    func stepStructure(stepsPerRead: Int) throws -> StepStructure {
        let network = self.network
        let optimizer = self.optimizer
        let w = workspace
        let own = w.perSample
        defer { w.perSample = own }
        return try StepStructure.measure(device: device, batch: batch, stepsPerRead: stepsPerRead) { slot in
            w.perSample = slot
            try network.trainingStep(w)
            try optimizer.update(parameters: network.parameters, gradients: network.gradients)
        }
    }

    /// A whole step as the stand-alone figure users compare: upload, the
    /// queued read-back of the previous step's loss, forward, backward,
    /// update, then the wait for that read-back.
    func stepTiming(_ benchmark: Benchmark) throws -> Benchmark.Timing {
        let images = try device.floats(workspace.input)
        let labels = try device.int32s(workspace.labels)
        let network = self.network
        let optimizer = self.optimizer
        let w = workspace
        let s = w.shapes
        let samples = try benchmark.time(device) {
            try network.setBatch(w, images: images, labels: labels)
            let previous = try network.requestBatchResult(w)
            try network.trainingStep(w)
            try optimizer.update(parameters: network.parameters, gradients: network.gradients)
            _ = try previous.value()
        }
        return Benchmark.Timing(
            operation: "step", batch: batch, shape: "forward+backward+update",
            samples: samples, flops: 3 * (s.conv1.flops + s.conv2.flops) + 3 * s.fc.flops)
    }
}
