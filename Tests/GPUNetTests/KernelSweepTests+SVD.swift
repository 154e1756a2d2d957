import GPUNet
import NetIO
import TestSupport
import XCTest

extension KernelSweepTests {
    /// The SVD-coordinate kernels at odd shapes (one element; rows < rank;
    /// rows > rank), with a zero σ, a negative σ and a masked column.
    func sweepSVD(_ agree: Agree) throws {
        for (rows, rank) in [(1, 1), (3, 5), (9, 7)] {
            let s = SVDFactorShape(rows: rows, rank: rank)
            let x = randomFloats(s.count, seed: 71)
            let g = randomFloats(s.count, seed: 72)
            var sigma = randomFloats(rank, scale: 2, seed: 73)
            var mask = [Float](repeating: 1, count: rank)
            if rank > 2 {
                sigma[0] = 0
                mask[1] = 0
            }
            try agree("svdScaleColumns \(s)", false) { d in
                let out = try d.makeBuffer(count: s.count, kind: .float32)
                try d.svdScaleColumns(
                    s, x: try d.makeBuffer(x), sigma: try d.makeBuffer(sigma), mask: try d.makeBuffer(mask), output: out
                )
                return [try d.floats(out)]
            }
            try agree("svdNewtonSchulzFactor \(rank)", false) { d in
                let gram = randomFloats(rank * rank, seed: 74)
                let out = try d.makeBuffer(count: rank * rank, kind: .float32)
                let plain = try d.makeBuffer(count: rank * rank, kind: .float32)
                try d.svdNewtonSchulzFactor(rank: rank, gram: try d.makeBuffer(gram), factor: out, scaled: true)
                try d.svdNewtonSchulzFactor(rank: rank, gram: try d.makeBuffer(gram), factor: plain, scaled: false)
                return [try d.floats(out), try d.floats(plain)]
            }
            try agree("svdSigmaGradient \(s)", true) { d in
                let out = try d.makeBuffer(count: rank, kind: .float32)
                try d.svdSigmaGradient(
                    s, u: try d.makeBuffer(x), g: try d.makeBuffer(g), sigma: try d.makeBuffer(sigma),
                    mask: try d.makeBuffer(mask), l1: 0.5, gradSigma: out)
                return [try d.floats(out)]
            }
        }
    }
}
