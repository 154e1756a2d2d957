import NetIO

extension ModelTrainer {
    /// Makes every process of a data-parallel job start from rank 0's state:
    /// the weights and the optimiser state and step are broadcast from rank 0,
    /// after its `resume` (if any). Every rank must have resumed to the same
    /// number of finished epochs (they read the same `--out` folder, which
    /// must therefore be on a file system they share); otherwise this throws
    /// naming both counts, on every rank alike.
    public func synchronizeProcesses() throws {
        guard let group = gradientReducer?.group else { return }
        var counts = [Double(history.count), Double(optimizer.step)]
        let mine = counts
        try group.broadcast(&counts)
        var disagreements = [counts == mine ? 0.0 : 1.0]
        try group.sum(&disagreements)
        guard disagreements[0] == 0 else {
            throw TrainingError.resume(
                "the ranks found different checkpoints: rank 0 has \(Int(counts[0])) finished "
                    + "epoch(s) (optimiser step \(Int(counts[1]))), rank \(group.rank) has \(Int(mine[0])) (step \(Int(mine[1]))); "
                    + "every rank must see the same --out folder")
        }
        var tensors = try network.checkpointTensors()
        var flat = tensors.flatMap(\.values)
        try group.broadcast(&flat)
        var offset = 0
        for i in tensors.indices {
            let count = tensors[i].values.count
            tensors[i].values = Array(flat[offset..<(offset + count)])
            offset += count
        }
        try network.load(checkpointTensors: tensors)
        var state = try optimizer.state()
        for key in state.keys.sorted() {
            try group.broadcast(&state[key]!)
        }
        try optimizer.restore(state, step: optimizer.step)
    }
}
