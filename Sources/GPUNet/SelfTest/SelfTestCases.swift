import NetIO

/// The cases of ``SelfTest``: every ``Device`` operation at TinyConvNet's
/// shapes (batch 64) and at a small odd shape (batch 3, 3→5 channels on a
/// 9×11 image, whose 7×9 convolution output leaves an odd row and column
/// to the floor-mode pool; a 37→7 linear layer; 13×17×19 products).
enum SelfTestCases {
    /// One operation on one shape: `body` makes its seeded inputs on a
    /// device, runs the operation and returns the outputs to compare.
    struct Case {
        var operation: String
        var shape: String
        var body: (any Device) throws -> [(String, SelfTest.Rule, Buffer)]
    }

    /// Seeded inputs: the same values on every device.
    struct Inputs {
        var random: SeededRandom
        init(_ seed: UInt64) { random = SeededRandom(seed: seed, stream: 0x5e1f) }
        mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in random.uniform(1) } }
        /// A winner inside each 2×2 window of `pool`: a flat y·W + x in its plane.
        mutating func argmax(_ pool: PoolShape) -> [Int32] {
            var out: [Int32] = []
            for _ in 0..<(pool.batch * pool.channels) {
                for qy in 0..<pool.outHeight {
                    for qx in 0..<pool.outWidth {
                        let r = Int(random.next() % 4)
                        out.append(Int32((2 * qy + r / 2) * pool.width + 2 * qx + r % 2))
                    }
                }
            }
            return out
        }
        mutating func labels(_ n: Int, classes: Int) -> [Int32] {
            (0..<n).map { _ in Int32(random.next() % UInt64(classes)) }
        }
    }

    static var all: [Case] {
        let tiny = TinyConvNet.Shapes(batch: 64)
        let oddConv = ConvShape(batch: 3, inChannels: 3, outChannels: 5, height: 9, width: 11)
        let oddPool = PoolShape(batch: 3, channels: 5, height: 7, width: 9)
        var cases: [Case] = []
        let gemms: [(String, GEMMShape)] = [
            ("conv1 forward", GEMMShape(m: 8, n: tiny.conv1.patchCount, k: 9)),
            ("conv2 forward", GEMMShape(m: 16, n: tiny.conv2.patchCount, k: 72)),
            ("conv2 weight gradient", GEMMShape(m: 16, n: 72, k: tiny.conv2.patchCount, transposeB: true)),
            ("conv2 column gradient", GEMMShape(m: 72, n: tiny.conv2.patchCount, k: 16, transposeA: true)),
            ("conv1 weight gradient", GEMMShape(m: 8, n: 9, k: tiny.conv1.patchCount, transposeB: true)),
            ("fc forward", GEMMShape(m: 64, n: 10, k: 400, transposeB: true)),
            ("odd NN", GEMMShape(m: 13, n: 17, k: 19)),
            ("odd TN", GEMMShape(m: 13, n: 17, k: 19, transposeA: true)),
            ("odd NT", GEMMShape(m: 13, n: 17, k: 19, transposeB: true)),
            ("odd TT", GEMMShape(m: 13, n: 17, k: 19, transposeA: true, transposeB: true, alpha: 0.5, beta: 0.25)),
        ]
        for (index, (name, s)) in gemms.enumerated() {
            // A product over thousands of terms is a gradient-like sum.
            let rule: SelfTest.Rule = s.k > 1000 ? .gradient : .forward
            cases.append(
                Case(operation: "gemm", shape: "\(name) \(s)") { d in
                    var r = Inputs(UInt64(index))
                    let a = try d.makeBuffer(r.floats(s.m * s.k))
                    let b = try d.makeBuffer(r.floats(s.k * s.n))
                    let c = try d.makeBuffer(r.floats(s.m * s.n))
                    try d.gemm(s, a: a, b: b, c: c)
                    return [("C", rule, c)]
                })
        }
        for (index, (name, conv, pool)) in [
            ("conv1", tiny.conv1, tiny.pool1), ("conv2", tiny.conv2, tiny.pool2),
            ("odd", oddConv, oddPool),
        ].enumerated() {
            cases += convolutionCases(name: name, conv, pool, seed: 100 + UInt64(index))
        }
        for (index, (name, pool)) in [("pool1", tiny.pool1), ("pool2", tiny.pool2), ("odd", oddPool)].enumerated() {
            let words = "\(name) (\(pool.batch),\(pool.channels),\(pool.height),\(pool.width))"
            cases.append(
                Case(operation: "relu", shape: "\(name) \(pool.outputCount)") { d in
                    var r = Inputs(200 + UInt64(index))
                    let n = pool.outputCount
                    let input = try d.makeBuffer(r.floats(n))
                    let output = try d.makeBuffer(count: n, kind: .float32)
                    let gradOutput = try d.makeBuffer(r.floats(n))
                    let gradInput = try d.makeBuffer(count: n, kind: .float32)
                    try d.reluForward(count: n, input: input, output: output)
                    try d.reluBackward(count: n, output: output, gradOutput: gradOutput, gradInput: gradInput)
                    return [("output", .forward, output), ("gradInput", .gradient, gradInput)]
                })
            cases.append(
                Case(operation: "maxpool2", shape: words) { d in
                    var r = Inputs(300 + UInt64(index))
                    let input = try d.makeBuffer(r.floats(pool.inputCount))
                    let output = try d.makeBuffer(count: pool.outputCount, kind: .float32)
                    let argmax = try d.makeBuffer(count: pool.outputCount, kind: .int32)
                    try d.maxPool2Forward(pool, input: input, output: output, argmax: argmax)
                    let gradOutput = try d.makeBuffer(r.floats(pool.outputCount))
                    let gradInput = try d.makeBuffer(count: pool.inputCount, kind: .float32)
                    try d.maxPool2Backward(pool, gradOutput: gradOutput, argmax: argmax, gradInput: gradInput)
                    return [
                        ("output", .forward, output), ("argmax", .exact, argmax), ("gradInput", .gradient, gradInput),
                    ]
                })
        }
        for (index, (name, s)) in [("fc", tiny.fc), ("odd", LinearShape(batch: 3, inFeatures: 37, outFeatures: 7))]
            .enumerated()
        {
            let words = "\(name) \(s.batch)×\(s.inFeatures)→\(s.outFeatures)"
            cases.append(
                Case(operation: "linear", shape: words) { d in
                    var r = Inputs(400 + UInt64(index))
                    let input = try d.makeBuffer(r.floats(s.batch * s.inFeatures))
                    let weight = try d.makeBuffer(r.floats(s.outFeatures * s.inFeatures))
                    let bias = try d.makeBuffer(r.floats(s.outFeatures))
                    let output = try d.makeBuffer(count: s.batch * s.outFeatures, kind: .float32)
                    try d.linearForward(s, input: input, weight: weight, bias: bias, output: output)
                    let gradOutput = try d.makeBuffer(r.floats(s.batch * s.outFeatures))
                    let gradInput = try d.makeBuffer(count: s.batch * s.inFeatures, kind: .float32)
                    let gradWeight = try d.makeBuffer(count: s.outFeatures * s.inFeatures, kind: .float32)
                    let gradBias = try d.makeBuffer(count: s.outFeatures, kind: .float32)
                    try d.linearBackward(
                        s, input: input, weight: weight, gradOutput: gradOutput, gradInput: gradInput,
                        gradWeight: gradWeight, gradBias: gradBias)
                    return [
                        ("output", .forward, output), ("gradInput", .gradient, gradInput),
                        ("gradWeight", .gradient, gradWeight), ("gradBias", .gradient, gradBias),
                    ]
                })
            cases.append(
                Case(operation: "softmax_cross_entropy", shape: "\(name) \(s.batch)×\(s.outFeatures)") { d in
                    var r = Inputs(500 + UInt64(index))
                    let logits = try d.makeBuffer(r.floats(s.batch * s.outFeatures).map { 4 * $0 })
                    let labels = try d.makeBuffer(r.labels(s.batch, classes: s.outFeatures))
                    let gradLogits = try d.makeBuffer(count: s.batch * s.outFeatures, kind: .float32)
                    let perSample = try d.makeBuffer(count: 2 * s.batch, kind: .float32)
                    try d.softmaxCrossEntropy(
                        batch: s.batch, classes: s.outFeatures, logits: logits, labels: labels,
                        gradLogits: gradLogits, perSample: perSample)
                    return [("perSample", .forward, perSample), ("gradLogits", .gradient, gradLogits)]
                })
        }
        for (index, (name, sizes)) in [("TinyConvNet", [72, 1152, 4000, 10]), ("odd", [5, 37])].enumerated() {
            let words = "\(name) " + sizes.map(String.init).joined(separator: "+")
            cases.append(
                optimizerCase("adam", words, sizes, state: "m", seed: 600 + UInt64(index)) { d, params, grads, state in
                    let tensors = sizes.indices.map {
                        AdamTensor(
                            count: sizes[$0], parameter: params[$0], gradient: grads[$0], m: state[$0][0],
                            v: state[$0][1])
                    }
                    try d.adamStep(tensors, step: AdamStep(learningRate: 1e-3, step: 3))
                })
            cases.append(
                optimizerCase("sgd_momentum", words, sizes, state: "velocity", seed: 700 + UInt64(index)) {
                    d, params, grads, state in
                    let tensors = sizes.indices.map {
                        MomentumTensor(
                            count: sizes[$0], parameter: params[$0], gradient: grads[$0], velocity: state[$0][0])
                    }
                    try d.sgdMomentumStep(
                        tensors, step: SGDStep(learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4))
                })
        }
        for (side, count, range) in [(28, 100, 10..<74), (28, 100, 99..<100), (5, 50, 40..<50)] {
            cases.append(
                Case(operation: "gather_batch", shape: "\(count) images \(side)×\(side), order[\(range)]") { d in
                    var r = Inputs(UInt64(800 + side + range.lowerBound))
                    let size = side * side
                    let pixels: [UInt8] = (0..<(count * size)).map { _ in UInt8(truncatingIfNeeded: r.random.next()) }
                    let labels: [UInt8] = (0..<count).map { _ in UInt8(r.random.next() % 10) }
                    var order = Array(0..<count)
                    for i in stride(from: count - 1, to: 0, by: -1) {
                        order.swapAt(i, Int(r.random.next() % UInt64(i + 1)))
                    }
                    let pixelBuffer = try d.makeBuffer(count: pixels.count, kind: .uint8)
                    try pixels.withUnsafeBufferPointer { try d.upload($0, to: pixelBuffer) }
                    let labelBuffer = try d.makeBuffer(count: count, kind: .uint8)
                    try labels.withUnsafeBufferPointer { try d.upload($0, to: labelBuffer) }
                    let images = try d.makeBuffer(count: range.count * size, kind: .float32)
                    let batchLabels = try d.makeBuffer(count: range.count, kind: .int32)
                    try d.gatherBatch(
                        BatchGatherShape(count: count, imageSize: size, range: range), pixels: pixelBuffer,
                        labels: labelBuffer, order: try d.makeBuffer(order.map { Int32($0) }),
                        images: images, batchLabels: batchLabels)
                    return [("images", .exact, images), ("labels", .exact, batchLabels)]
                })
        }
        cases += [64, 3].map(trainingStepCase)
        return cases
    }

    /// TinyConvNet's training pass (``TinyConvNet/trainingStep(_:)``: one
    /// kernel per image and an ordered sum in the gpu family, the separate
    /// operations elsewhere) on `batch` seeded images. Images and
    /// convolution weights lie on a 1/8 grid, so every convolution sum is
    /// exact and a pooling tie is a tie on every device (both take the
    /// first): the winners, and so the gradients, cannot differ by rounding.
    static func trainingStepCase(batch: Int) -> Case {
        Case(operation: "tiny_training_step", shape: "TinyConvNet batch \(batch)") { d in
            var r = Inputs(900 + UInt64(batch))
            func grid(_ values: [Float]) -> [Float] { values.map { ($0 * 8).rounded() / 8 } }
            let initial = TinyConvNet.initialWeights(seed: 900 + UInt64(batch))
            let net = try TinyConvNet(device: d)
            try net.load(
                TinyConvNetWeights(
                    conv1: grid(initial.conv1), conv2: grid(initial.conv2), fcWeight: initial.fcWeight,
                    fcBias: initial.fcBias))
            let w = try net.workspace(batch: batch)
            try net.setBatch(
                w, images: grid(r.floats(batch * 784).map { 2 * $0 }), labels: r.labels(batch, classes: 10))
            try net.trainingStep(w)
            return [("logits", .forward, w.logits), ("perSample", .forward, w.perSample)]
                + zip(TinyConvNet.Parameters.names, net.gradients.all).map { ("∂" + $0, .gradient, $1) }
        }
    }

    /// The dense and pooled convolution operations of one shape.
    static func convolutionCases(name: String, _ conv: ConvShape, _ pool: PoolShape, seed: UInt64) -> [Case] {
        let words = "\(name) (\(conv.batch),\(conv.inChannels),\(conv.height),\(conv.width))→\(conv.outChannels)"
        return [
            Case(operation: "im2col/col2im", shape: words) { d in
                var r = Inputs(seed)
                let input = try d.makeBuffer(r.floats(conv.inputCount))
                let columns = try d.makeBuffer(count: conv.patchSize * conv.patchCount, kind: .float32)
                try d.im2col(conv, input: input, columns: columns)
                let gradColumns = try d.makeBuffer(r.floats(conv.patchSize * conv.patchCount))
                let gradInput = try d.makeBuffer(count: conv.inputCount, kind: .float32)
                try d.col2im(conv, columns: gradColumns, input: gradInput)
                return [("columns", .forward, columns), ("col2im", .gradient, gradInput)]
            },
            Case(operation: "conv2d", shape: words) { d in
                var r = Inputs(seed + 10)
                let input = try d.makeBuffer(r.floats(conv.inputCount))
                let weight = try d.makeBuffer(r.floats(conv.weightCount))
                let output = try d.makeBuffer(count: conv.outputCount, kind: .float32)
                try d.conv2dForward(conv, input: input, weight: weight, output: output)
                let gradOutput = try d.makeBuffer(r.floats(conv.outputCount))
                let gradInput = try d.makeBuffer(count: conv.inputCount, kind: .float32)
                let gradWeight = try d.makeBuffer(count: conv.weightCount, kind: .float32)
                try d.conv2dBackwardData(conv, gradOutput: gradOutput, weight: weight, gradInput: gradInput)
                try d.conv2dBackwardWeight(conv, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
                return [
                    ("output", .forward, output), ("gradInput", .gradient, gradInput),
                    ("gradWeight", .gradient, gradWeight),
                ]
            },
            Case(operation: "conv2d+maxpool2+relu (pooled)", shape: words) { d in
                var r = Inputs(seed + 20)
                let input = try d.makeBuffer(r.floats(conv.inputCount))
                let weight = try d.makeBuffer(r.floats(conv.weightCount))
                let pooled = try d.makeBuffer(count: pool.outputCount, kind: .float32)
                let argmax = try d.makeBuffer(count: pool.outputCount, kind: .int32)
                try d.conv2dMaxPool2Forward(
                    conv, input: input, weight: weight, pooled: pooled, argmax: argmax, relu: true)
                // The backward passes on seeded winners and ReLU outputs (about
                // half ≤ 0, masked), the same on both devices.
                let gradient = PooledGradient(
                    pool: pool, values: try d.makeBuffer(r.floats(pool.outputCount)),
                    argmax: try d.makeBuffer(r.argmax(pool)),
                    reluOutput: try d.makeBuffer(r.floats(pool.outputCount)))
                let gradWeight = try d.makeBuffer(count: conv.weightCount, kind: .float32)
                let gradInput = try d.makeBuffer(count: conv.inputCount, kind: .float32)
                try d.conv2dBackwardWeight(conv, input: input, pooledGradient: gradient, gradWeight: gradWeight)
                try d.conv2dBackwardData(conv, pooledGradient: gradient, weight: weight, gradInput: gradInput)
                return [
                    ("pooled", .forward, pooled), ("argmax", .exact, argmax),
                    ("gradWeight", .gradient, gradWeight), ("gradInput", .gradient, gradInput),
                ]
            },
        ]
    }

    /// An optimiser step on tensors of `sizes`: the parameters' change (a
    /// gradient-sized quantity, compared by the gradient rule) and the new state.
    static func optimizerCase(
        _ name: String, _ words: String, _ sizes: [Int], state stateName: String, seed: UInt64,
        step: @escaping (any Device, [Buffer], [Buffer], [[Buffer]]) throws -> Void
    ) -> Case {
        Case(operation: name, shape: words) { d in
            var r = Inputs(seed)
            let before = sizes.map { r.floats($0) }
            let params = try before.map { try d.makeBuffer($0) }
            let grads = try sizes.map { try d.makeBuffer(r.floats($0)) }
            // Adam's v must be ≥ 0; the same squares serve as SGD's velocity.
            let state = try sizes.map { n in
                [try d.makeBuffer(r.floats(n)), try d.makeBuffer(r.floats(n).map { $0 * $0 })]
            }
            try step(d, params, grads, state)
            var outputs: [(String, SelfTest.Rule, Buffer)] = []
            for (i, p) in params.enumerated() {
                let change = zip(try d.floats(p), before[i]).map { $0 - $1 }
                outputs.append(("Δparam[\(i)]", .gradient, try d.makeBuffer(change)))
                outputs.append(("\(stateName)[\(i)]", .gradient, state[i][0]))
            }
            return outputs
        }
    }
}
