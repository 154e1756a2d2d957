import Models

/// One device operation of a plan.
struct Operation {
    enum Kind {
        /// Weight and optional bias: indices into the plan's parameters.
        case conv(Conv2dSpec, height: Int, width: Int, weight: Int, bias: Int?)
        /// γ, β (parameters), running mean and variance (statistics), and the slot of its saved μ, σ.
        case batchNorm(
            channels: Int, height: Int, width: Int, gamma: Int, beta: Int, mean: Int, variance: Int, slot: Int)
        case relu
        case maxPool2(channels: Int, height: Int, width: Int, slot: Int)
        case globalAveragePool(channels: Int, height: Int, width: Int)
        case linear(LinearSpec, weight: Int, bias: Int?)
        /// activations[inputs[0]] + activations[inputs[1]].
        case add
    }
    let kind: Kind
    /// The layer path (PyTorch's module name) this operation computes.
    let path: String
    let inputs: [Int]
    let output: Int
}

/// Turns layers into operations, consuming the summary's rows in the order
/// its shape walk made them (a block's body, its shortcut, the add, the
/// ReLU), which gives every operation its path and tensor names.
struct PlanBuilder {
    var rows: ArraySlice<LayerSummary>
    var operations: [Operation] = []
    var sizes: [Int]
    var needsGradient = [false]
    var learned: [ParameterDescription] = []
    var statistics: [ParameterDescription] = []
    var argmaxSlots = 0
    var savedSlots: [Int] = []

    init(rows: [LayerSummary], input: Int) {
        self.rows = rows[...]
        sizes = [input]
    }

    /// Adds `layers` reading activation `input`; returns the activation they write.
    @discardableResult
    mutating func add(_ layers: [LayerDescription], input: Int) throws -> Int {
        var current = input
        for layer in layers { current = try add(layer.kind, input: current) }
        return current
    }

    private mutating func newActivation(_ row: LayerSummary, dependsOnLearned: Bool) -> Int {
        sizes.append(row.output.elementCount)
        needsGradient.append(dependsOnLearned)
        return sizes.count - 1
    }

    private mutating func nextRow() -> LayerSummary { rows.removeFirst() }

    private mutating func tensor(_ row: LayerSummary, _ suffix: String) -> Int? {
        guard let p = row.parameters.first(where: { $0.name == "\(row.path).\(suffix)" }) else { return nil }
        if p.role == .learned {
            learned.append(p)
            return learned.count - 1
        }
        statistics.append(p)
        return statistics.count - 1
    }

    private func dims(_ shape: ActivationShape) -> (Int, Int, Int) {
        guard case .map(let c, let h, let w) = shape else { return (shape.elementCount, 1, 1) }
        return (c, h, w)
    }

    private mutating func add(_ kind: LayerKind, input: Int) throws -> Int {
        switch kind {
        case .conv(let spec):
            let row = nextRow()
            let (_, h, w) = dims(row.input)
            let weight = tensor(row, "weight")!
            let bias = tensor(row, "bias")
            let output = newActivation(row, dependsOnLearned: true)
            operations.append(
                Operation(
                    kind: .conv(spec, height: h, width: w, weight: weight, bias: bias), path: row.path,
                    inputs: [input], output: output))
            return output
        case .batchNorm:
            let row = nextRow()
            let (c, h, w) = dims(row.input)
            let gamma = tensor(row, "weight")!
            let beta = tensor(row, "bias")!
            let mean = tensor(row, "running_mean")!
            let variance = tensor(row, "running_var")!
            savedSlots.append(c)
            let output = newActivation(row, dependsOnLearned: true)
            operations.append(
                Operation(
                    kind: .batchNorm(
                        channels: c, height: h, width: w, gamma: gamma, beta: beta, mean: mean, variance: variance,
                        slot: savedSlots.count - 1), path: row.path, inputs: [input], output: output))
            return output
        case .relu:
            let row = nextRow()
            let output = newActivation(row, dependsOnLearned: needsGradient[input])
            operations.append(Operation(kind: .relu, path: row.path, inputs: [input], output: output))
            return output
        case .maxPool2:
            let row = nextRow()
            let (c, h, w) = dims(row.input)
            let output = newActivation(row, dependsOnLearned: needsGradient[input])
            operations.append(
                Operation(
                    kind: .maxPool2(channels: c, height: h, width: w, slot: argmaxSlots), path: row.path,
                    inputs: [input], output: output))
            argmaxSlots += 1
            return output
        case .globalAveragePool:
            let row = nextRow()
            let (c, h, w) = dims(row.input)
            let output = newActivation(row, dependsOnLearned: needsGradient[input])
            operations.append(
                Operation(
                    kind: .globalAveragePool(channels: c, height: h, width: w), path: row.path, inputs: [input],
                    output: output))
            return output
        case .flatten:
            _ = nextRow()
            return input
        case .linear(let spec):
            let row = nextRow()
            let weight = tensor(row, "weight")!
            let bias = tensor(row, "bias")
            let output = newActivation(row, dependsOnLearned: true)
            operations.append(
                Operation(
                    kind: .linear(spec, weight: weight, bias: bias), path: row.path, inputs: [input], output: output))
            return output
        case .residual(let block):
            let body = try add(block.body, input: input)
            let shortcut: Int
            switch block.shortcut {
            case .identity: shortcut = input
            case .projection(let layers): shortcut = try add(layers, input: input)
            }
            let row = nextRow()
            let sum = newActivation(row, dependsOnLearned: needsGradient[body] || needsGradient[shortcut])
            operations.append(Operation(kind: .add, path: row.path, inputs: [body, shortcut], output: sum))
            guard block.reluAfterAdd else { return sum }
            let reluRow = nextRow()
            let output = newActivation(reluRow, dependsOnLearned: needsGradient[sum])
            operations.append(Operation(kind: .relu, path: reluRow.path, inputs: [sum], output: output))
            return output
        }
    }
}
