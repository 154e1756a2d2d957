import GPUNet
import TestSupport
import XCTest

/// The sweep's shapes for the layers of residual networks, small enough for
/// Oclgrind: each vector width (4, 8, 16) of the cpu family's blocked and
/// strided convolutions for output channels (forward, weight gradient) and
/// input channels (data gradient), blocks of pixels and taps that end
/// partway, 1×1/3×3/5×5 kernels, stride 2 on odd and even sizes,
/// padding 0–2, a 1×1 map, batch 1; batch normalisation in training and
/// eval with batch 1, 1×1 maps and 297 values per channel (several chunks
/// of the per-channel sums, ending inside planes; planes of 99 values, the
/// cpu family's 64-, 16- and 1-value steps), 49-value planes and 3 images
/// of 17×241 (two
/// chunks in the cpu family, of two images and one), and its phases (a
/// synchronised BatchNorm's sums, normalisation and input gradient) up to
/// 297 values per channel, and BatchNorm with a ReLU fused in, both ways;
/// the residual sum (in place too, and with a ReLU fused in) and the global
/// average pool on planes of 3 and 35 values.
extension KernelSweepTests {
    /// (batch, in, out, height, width, kernel, stride, padding).
    static let residualConvShapes: [Conv2dShape] = [
        (1, 3, 5, 5, 7, 3, 2, 1), (2, 9, 3, 6, 5, 1, 1, 0), (2, 6, 17, 5, 5, 5, 1, 2), (1, 2, 2, 1, 1, 3, 1, 1),
        (3, 4, 4, 5, 5, 1, 2, 0),
        // The blocked kernels' partial blocks: 70 pixels (blocks of 6 and 8),
        // 45 and 108 taps, three groups of 16 output channels, stride 2 on an even size.
        (2, 5, 12, 7, 5, 3, 1, 1), (1, 17, 33, 3, 3, 3, 1, 1), (2, 3, 9, 6, 6, 3, 2, 1),
    ].map {
        Conv2dShape(
            batch: $0.0, inChannels: $0.1, outChannels: $0.2, height: $0.3, width: $0.4, kernelHeight: $0.5,
            kernelWidth: $0.5, stride: $0.6, padding: $0.7)
    }

    func sweepResidualLayers(_ agree: Agree) throws {
        for s in Self.residualConvShapes {
            let input = randomFloats(s.inputCount, seed: 141)
            let weight = randomFloats(s.weightCount, scale: 0.5, seed: 142)
            let bias = randomFloats(s.outChannels, seed: 143)
            let gradOutput = randomFloats(s.outputCount, seed: 144)
            try agree("conv2dForward \(s)", false) { d in
                let out = try d.makeBuffer(count: s.outputCount, kind: .float32)
                try d.conv2dForward(
                    s, input: try d.makeBuffer(input), weight: try d.makeBuffer(weight), bias: try d.makeBuffer(bias),
                    output: out)
                return [try d.floats(out)]
            }
            try agree("conv2d backward \(s)", true) { d in
                let gradInput = try d.makeBuffer(count: s.inputCount, kind: .float32)
                let gradWeight = try d.makeBuffer(count: s.weightCount, kind: .float32)
                let gradBias = try d.makeBuffer(count: s.outChannels, kind: .float32)
                let g = try d.makeBuffer(gradOutput)
                try d.conv2dBackwardData(s, gradOutput: g, weight: try d.makeBuffer(weight), gradInput: gradInput)
                try d.conv2dBackwardWeight(
                    s, input: try d.makeBuffer(input), gradOutput: g, gradWeight: gradWeight, gradBias: gradBias)
                return [try d.floats(gradInput), try d.floats(gradWeight), try d.floats(gradBias)]
            }
        }
        for (batch, channels, height, width) in [
            (3, 2, 3, 3), (1, 3, 2, 3), (5, 2, 1, 1), (3, 2, 9, 11), (2, 3, 7, 7), (3, 2, 17, 241),
        ] {
            let s = BatchNormShape(batch: batch, channels: channels, height: height, width: width)
            let input = randomFloats(s.count, seed: 151).map { $0 * 3 + 0.5 }
            let gamma = randomFloats(channels, seed: 152).map { 1 + $0 / 2 }
            let beta = randomFloats(channels, seed: 153)
            let gradOutput = randomFloats(s.count, seed: 154)
            for training in [true, false] {
                try agree("batchnorm \(s) training \(training)", false) { d in
                    let x = try d.makeBuffer(input)
                    let g = try d.makeBuffer(gamma)
                    let rm = try d.makeBuffer([Float](repeating: 0.25, count: channels))
                    let rv = try d.makeBuffer([Float](repeating: 1.5, count: channels))
                    let saved = try d.makeBuffer(count: 2 * channels, kind: .float32)
                    let y = try d.makeBuffer(count: s.count, kind: .float32)
                    try d.batchNormForward(
                        s, input: x, gamma: g, beta: try d.makeBuffer(beta), runningMean: rm, runningVar: rv,
                        saved: saved, output: y, training: training)
                    let dx = try d.makeBuffer(count: s.count, kind: .float32)
                    let dg = try d.makeBuffer(count: channels, kind: .float32)
                    let db = try d.makeBuffer(count: channels, kind: .float32)
                    try d.batchNormBackward(
                        s, input: x, gamma: g, saved: saved, gradOutput: try d.makeBuffer(gradOutput), gradInput: dx,
                        gradGamma: dg, gradBeta: db, training: training)
                    return try [y, saved, rm, rv, dx, dg, db].map { try d.floats($0) }
                }
                // BatchNorm with the ReLU after it fused in (its flag in the normalising kernels), and its backward.
                try agree("batchnorm+relu \(s) training \(training)", false) { d in
                    let x = try d.makeBuffer(input)
                    let g = try d.makeBuffer(gamma)
                    let rm = try d.makeBuffer([Float](repeating: 0.25, count: channels))
                    let rv = try d.makeBuffer([Float](repeating: 1.5, count: channels))
                    let saved = try d.makeBuffer(count: 2 * channels, kind: .float32)
                    let y = try d.makeBuffer(count: s.count, kind: .float32)
                    try d.batchNormReluForward(
                        s, input: x, gamma: g, beta: try d.makeBuffer(beta), runningMean: rm, runningVar: rv,
                        saved: saved, output: y, training: training)
                    let dx = try d.makeBuffer(count: s.count, kind: .float32)
                    let dg = try d.makeBuffer(count: channels, kind: .float32)
                    let db = try d.makeBuffer(count: channels, kind: .float32)
                    try d.batchNormReluBackward(
                        s, input: x, gamma: g, saved: saved, output: y, gradOutput: try d.makeBuffer(gradOutput),
                        gradInput: dx, gradGamma: dg, gradBeta: db, training: training)
                    return try [y, saved, rm, rv, dx, dg, db].map { try d.floats($0) }
                }
            }
            // The phases of a synchronised BatchNorm, with given statistics and sums. Their sums
            // are compared absolutely: at the shapes of at most 297 values per channel.
            guard s.valuesPerChannel <= 297 else { continue }
            let mean = randomFloats(channels, seed: 155).map { $0 / 2 }
            let invStd = randomFloats(channels, seed: 156).map { 1 + $0 / 2 }
            let sums = randomFloats(2 * channels, seed: 157)
            try agree("batchnorm phases \(s)", false) { d in
                let x = try d.makeBuffer(input)
                let saved = try d.makeBuffer(mean + invStd)
                let (plain, centred) = (
                    try d.makeBuffer(count: channels, kind: .float32), try d.makeBuffer(count: channels, kind: .float32)
                )
                try d.batchNormChannelSums(s, input: x, saved: saved, centred: false, sums: plain)
                try d.batchNormChannelSums(s, input: x, saved: saved, centred: true, sums: centred)
                let y = try d.makeBuffer(count: s.count, kind: .float32)
                let g = try d.makeBuffer(gamma)
                try d.batchNormApply(s, input: x, gamma: g, beta: try d.makeBuffer(beta), saved: saved, output: y)
                let dy = try d.makeBuffer(gradOutput)
                let (dg, db) = (
                    try d.makeBuffer(count: channels, kind: .float32), try d.makeBuffer(count: channels, kind: .float32)
                )
                try d.batchNormBackwardSums(s, input: x, saved: saved, gradOutput: dy, gradGamma: dg, gradBeta: db)
                let dx = try d.makeBuffer(count: s.count, kind: .float32)
                try d.batchNormBackwardApply(
                    s, input: x, gamma: g, saved: saved, gradOutput: dy,
                    sumDy: try d.makeBuffer(Array(sums[..<channels])),
                    sumDyXhat: try d.makeBuffer(Array(sums[channels...])), gradInput: dx)
                return try [plain, centred, y, dg, db, dx].map { try d.floats($0) }
            }
        }
        // 3-value planes (element by element), 35-value planes (16-element vectors that span two planes, a tail).
        for map in [
            FeatureMapShape(batch: 2, channels: 3, height: 3, width: 1),
            FeatureMapShape(batch: 3, channels: 2, height: 5, width: 7),
        ] {
            let a = randomFloats(map.count, seed: 161)
            let b = randomFloats(map.count, seed: 162)
            let gradPooled = randomFloats(map.batch * map.channels, seed: 163)
            try agree("residual add, ReLU backward of a sum, global average pool \(map)", false) { d in
                let (ba, bb) = (try d.makeBuffer(a), try d.makeBuffer(b))
                let sum = try d.makeBuffer(count: map.count, kind: .float32)
                try d.residualAdd(count: map.count, ba, bb, output: sum)
                try d.residualAdd(count: map.count, ba, bb, output: bb)
                let rectified = try d.makeBuffer(count: map.count, kind: .float32)
                try d.residualAddRelu(count: map.count, ba, sum, output: rectified)
                // A ReLU's backward pass of a two-part gradient, masked by the rectified sum's zeros.
                let gradSum = try d.makeBuffer(count: map.count, kind: .float32)
                try d.reluBackwardSum(
                    count: map.count, output: rectified, gradOutput: ba, addend: bb, gradInput: gradSum)
                let pooled = try d.makeBuffer(count: map.batch * map.channels, kind: .float32)
                try d.globalAveragePoolForward(map, input: sum, output: pooled)
                let gradInput = try d.makeBuffer(count: map.count, kind: .float32)
                try d.globalAveragePoolBackward(map, gradOutput: try d.makeBuffer(gradPooled), gradInput: gradInput)
                return [
                    try d.floats(sum), try d.floats(bb), try d.floats(rectified), try d.floats(gradSum),
                    try d.floats(pooled), try d.floats(gradInput),
                ]
            }
        }
    }
}
