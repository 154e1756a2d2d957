import NetIO

/// The unpadded, stride-1 convolution as an explicit matrix.
public enum ConvolutionOperator {
    /// A ((out·o·o) × (in·n·n)), o = n − k + 1, with W (out, in·k·k) in
    /// PyTorch's flattening: A[(oc·o + y)·o + x, (c·n + y+i)·n + x+j] =
    /// W[oc, (c·k + i)·k + j], so that A·vec(x) = vec(conv(x)) for an input
    /// x (in, n, n) flattened row-major.
    public static func matrix(weight w: Matrix, inChannels: Int, kernel k: Int, inputSide n: Int) -> Matrix {
        explicit(weight: w, inChannels: inChannels, kernel: k, inputSide: n, outputSide: n - k + 1)
    }

    /// The operator with `outputSide` o output positions a side:
    /// A[(oc·o + y)·o + x, (c·n + (y+i) mod n)·n + (x+j) mod n] += W[oc, (c·k + i)·k + j].
    /// o = n − k + 1 never wraps (the valid operator); o = n is the circular
    /// one (``circulantMatrix(weight:inChannels:kernel:inputSide:)``).
    static func explicit(weight w: Matrix, inChannels: Int, kernel k: Int, inputSide n: Int, outputSide o: Int)
        -> Matrix
    {
        precondition(
            w.columns == inChannels * k * k && n >= k && o <= n,
            "ConvolutionOperator: W \(w.rows)×\(w.columns), in \(inChannels), k \(k), n \(n), o \(o)")
        var a = Matrix(rows: w.rows * o * o, columns: inChannels * n * n)
        for oc in 0..<w.rows {
            for y in 0..<o {
                for x in 0..<o {
                    let row = (oc * o + y) * o + x
                    for c in 0..<inChannels {
                        for i in 0..<k {
                            for j in 0..<k {
                                // += : with n < 2k − 1 two offsets could wrap onto one column.
                                a[row, (c * n + (y + i) % n) * n + (x + j) % n] += w[oc, (c * k + i) * k + j]
                            }
                        }
                    }
                }
            }
        }
        return a
    }
}

/// Phase 7 for one layer: Parseval and the operator identity.
public struct FrobeniusLayerReport: Codable, Sendable, Equatable {
    public var layer: String
    /// ‖W‖²_F = Σᵢⱼ wᵢⱼ² (float64 of the float32 weights).
    public var squaredFrobeniusNorm: Double
    /// Σᵢ σᵢ².
    public var sumOfSquaredSingularValues: Double
    /// |‖W‖²_F − Σσᵢ²| / ‖W‖²_F (tolerance 1e-10).
    public var parsevalRelativeDifference: Double
    /// n, the side of the input the operator A acts on (28 for conv1, 13 for conv2).
    public var operatorInputSide: Int
    /// A's shape [out·(n−k+1)², in·n²].
    public var operatorShape: [Int]
    /// ‖A‖²_F summed over A's entries.
    public var operatorSquaredFrobeniusNorm: Double
    /// (n − k + 1)²·‖W‖²_F: every weight appears once per output position.
    public var operatorExpectedSquaredFrobeniusNorm: Double
    /// |‖A‖²_F − (n−k+1)²‖W‖²_F| / that (tolerance 1e-12).
    public var operatorRelativeDifference: Double
    /// Real inputs A was applied to: the first `operatorApplicationImages`
    /// test images for conv1, their pooled ReLU conv1 outputs for conv2.
    public var operatorApplicationImages: Int
    /// max |A·vec(x) − W·im2col(x)| over those inputs: the explicit operator
    /// against the host's im2col + dgemm convolution, two computations that
    /// index the input differently (tolerance 1e-12: float64 rounding of
    /// O(10) sums of 9 or 72 terms).
    public var operatorApplicationMaxAbsDifference: Double
    /// max |A·vec(x)| over those inputs: the scale of the outputs compared.
    public var operatorApplicationLargestOutput: Double

    /// `inputs` is x (count, in, n, n) as float64; `convolved` the host
    /// im2col W·p of each (count, out, o, o).
    static func compute(
        layer: String, w: Matrix, svd: SingularValueDecomposition, inChannels: Int,
        inputSide n: Int, inputs: [Double], count: Int, convolved: [Double]
    ) -> FrobeniusLayerReport {
        let k = TinyConvNetGeometry.kernelSide
        let squared = w.squaredFrobeniusNorm
        let sigmaSquared = svd.singularValues.reduce(0) { $0 + $1 * $1 }
        let a = ConvolutionOperator.matrix(weight: w, inChannels: inChannels, kernel: k, inputSide: n)
        let operatorSquared = a.squaredFrobeniusNorm
        let positions = Double((n - k + 1) * (n - k + 1))
        let expected = positions * squared
        let applied = a * Matrix(rows: count, columns: a.columns, values: inputs).transposed  // (out·o², count)
        var worst = 0.0
        var largest = 0.0
        for row in 0..<a.rows {
            for image in 0..<count {
                let value = applied[row, image]
                worst = worstDifference(worst, value, convolved[image * a.rows + row])
                largest = max(largest, abs(value))
            }
        }
        return FrobeniusLayerReport(
            layer: layer, squaredFrobeniusNorm: squared, sumOfSquaredSingularValues: sigmaSquared,
            parsevalRelativeDifference: abs(squared - sigmaSquared) / squared,
            operatorInputSide: n, operatorShape: [a.rows, a.columns],
            operatorSquaredFrobeniusNorm: operatorSquared, operatorExpectedSquaredFrobeniusNorm: expected,
            operatorRelativeDifference: abs(operatorSquared - expected) / expected,
            operatorApplicationImages: count,
            operatorApplicationMaxAbsDifference: worst, operatorApplicationLargestOutput: largest)
    }
}
