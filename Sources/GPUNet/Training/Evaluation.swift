import NetIO

/// A network's results on a labelled set.
public struct Evaluation: Sendable {
    public var count: Int
    public var correct: Int
    public var meanLoss: Double
    /// The predicted class of every image, in set order.
    public var predictions: [Int]
    public var labels: [Int]

    public var accuracy: Double { count == 0 ? 0 : Double(correct) / Double(count) }

    /// confusion[label][prediction] counts.
    public var confusionMatrix: [[Int]] {
        var m = Array(repeating: Array(repeating: 0, count: 10), count: 10)
        for (l, p) in zip(labels, predictions) { m[l][p] += 1 }
        return m
    }

    /// Accuracy of each class (nan for a class absent from the set).
    public var perClassAccuracy: [Double] {
        confusionMatrix.enumerated().map { label, row in
            let total = row.reduce(0, +)
            return total == 0 ? .nan : Double(row[label]) / Double(total)
        }
    }

    /// Runs `network` over `set` in batches on its device, uploading the
    /// set once (see ``run(network:on:batchSize:)-(_,DeviceDataset,_)``).
    public static func run<Network: TrainableNetwork>(network: Network, on set: Dataset, batchSize: Int? = nil) throws
        -> Evaluation
    {
        try run(network: network, on: DeviceDataset(set, on: network.device), batchSize: batchSize)
    }

    /// Runs `network` over a set already on its device, in set order: each
    /// batch is gathered there (nothing is uploaded), and its logits and
    /// per-sample losses come back, `batchSize` images at a time
    /// (``TrainableNetwork/evaluationBatch`` unless given).
    public static func run<Network: TrainableNetwork>(network: Network, on set: DeviceDataset, batchSize: Int? = nil)
        throws -> Evaluation
    {
        precondition(set.device === network.device, "Evaluation.run: the set is on another device than the network")
        precondition(set.isInSetOrder, "Evaluation.run: the set's order was shuffled (DeviceDataset.setOrder)")
        var predictions: [Int] = []
        predictions.reserveCapacity(set.count)
        var lossSum = 0.0
        var correct = 0
        var start = 0
        let batchSize = batchSize ?? network.evaluationBatch
        try network.withParametersFixed {
            while start < set.count {
                let indices = start..<min(set.count, start + batchSize)
                let w = try network.workspace(batch: indices.count)
                try set.gather(indices, into: w)
                try network.forward(w, training: false)
                let result = try network.requestBatchResult(w).value()
                lossSum += result.lossSum
                correct += result.correct
                let logits = try network.device.floats(w.logits)
                for b in 0..<indices.count {
                    var best = 0
                    let k = network.classes
                    for c in 1..<k where logits[b * k + c] > logits[b * k + best] { best = c }
                    predictions.append(best)
                }
                start = indices.upperBound
            }
        }
        return Evaluation(
            count: set.count, correct: correct, meanLoss: lossSum / Double(max(1, set.count)),
            predictions: predictions, labels: set.hostLabels.map(Int.init))
    }
}
