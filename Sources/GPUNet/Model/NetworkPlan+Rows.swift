import Models

extension NetworkPlan {
    /// The output of row `row` of ``summary`` for the last forward pass in
    /// `w`, (batch, the row's output shape) row-major; a flatten row gives
    /// its input (flatten renames it).
    ///
    /// Rows and activations line up: every row but a flatten one makes one
    /// operation, in the summary's order, and operation i writes activation
    /// i + 1, so row r's output is activation n(r), the number of non-flatten
    /// rows up to and including r. A path alone cannot name every output
    /// (a torchvision block's body ReLU and its ReLU after the add share
    /// "layer1.0.relu"); a row can.
    public func activation(_ w: Workspace, row: Int) throws -> [Float] {
        precondition(summary.layers.indices.contains(row), "activation(row: \(row)) of \(summary.layers.count) rows")
        let index = summary.layers[...row].reduce(0) { $0 + (isFlatten($1) ? 0 : 1) }
        try writeUnwrittenActivations(w)
        let values = try device.floats(w.activations[index])
        return Array(values.prefix(w.batch * summary.layers[row].output.elementCount))
    }

    private func isFlatten(_ row: LayerSummary) -> Bool { row.operation == "flatten" }
}
