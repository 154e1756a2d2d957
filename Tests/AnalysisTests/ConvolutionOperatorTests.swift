import Analysis
import TestSupport
import XCTest

final class ConvolutionOperatorTests: XCTestCase {
    /// Direct unpadded convolution, float64 loops: (O, n−2, n−2).
    func directConv(_ x: [Double], channels: Int, side n: Int, weight w: [Double], outChannels: Int) -> [Double] {
        let o = n - 2
        var out = [Double](repeating: 0, count: outChannels * o * o)
        for oc in 0..<outChannels {
            for y in 0..<o {
                for xx in 0..<o {
                    var s = 0.0
                    for c in 0..<channels {
                        for i in 0..<3 {
                            for j in 0..<3 {
                                s += w[((oc * channels + c) * 3 + i) * 3 + j] * x[(c * n + y + i) * n + xx + j]
                            }
                        }
                    }
                    out[(oc * o + y) * o + xx] = s
                }
            }
        }
        return out
    }

    func testOperatorOfTinyConvolution() {
        for (channels, outChannels, n) in [(2, 3, 5), (1, 2, 3), (3, 2, 6)] {
            let weight = randomFloats(outChannels * channels * 9, seed: UInt64(n)).map(Double.init)
            let w = Matrix(rows: outChannels, columns: channels * 9, values: weight)
            let a = ConvolutionOperator.matrix(weight: w, inChannels: channels, kernel: 3, inputSide: n)
            let o = n - 2
            XCTAssertEqual(a.rows, outChannels * o * o)
            XCTAssertEqual(a.columns, channels * n * n)
            // ‖A‖²_F = (n − k + 1)²·‖W‖²_F.
            let wSquared = weight.reduce(0) { $0 + $1 * $1 }
            let aSquared = a.values.reduce(0) { $0 + $1 * $1 }
            XCTAssertEqual(aSquared, Double(o * o) * wSquared, accuracy: 1e-12 * aSquared)
            // A is the convolution.
            let x = randomFloats(channels * n * n, seed: 77).map(Double.init)
            let applied = (a * Matrix(rows: x.count, columns: 1, values: x)).values
            XCTAssertLessThan(
                maxAbsoluteDifference(
                    applied, directConv(x, channels: channels, side: n, weight: weight, outChannels: outChannels)),
                1e-13)
        }
    }
}
