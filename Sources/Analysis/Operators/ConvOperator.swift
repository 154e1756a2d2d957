import Foundation

/// What is wrong with a convolution operator's description, or why a
/// quantity of it cannot be computed.
public enum ConvOperatorError: Error, CustomStringConvertible, Equatable {
    /// A size, the stride, the padding or the weight's length or values do not describe a convolution.
    case invalidLayer(layer: String, reason: String)
    /// The dense operator has more columns than ``ConvOperator/denseColumnLimit``.
    case tooLargeForDenseSVD(layer: String, rows: Int, columns: Int, limit: Int)
    /// The polyphase route needs the periodic grid to be a whole number of strides a side.
    case strideDoesNotDivideGrid(layer: String, stride: Int, height: Int, width: Int)

    public var description: String {
        switch self {
        case .invalidLayer(let layer, let reason):
            return "\(layer): \(reason)"
        case .tooLargeForDenseSVD(let layer, let rows, let columns, let limit):
            return
                "\(layer): the dense operator is \(rows)×\(columns); its SVD is taken only up to \(limit) columns "
                + "(bracket its spectral norm with spectralNormBracket instead)"
        case .strideDoesNotDivideGrid(let layer, let stride, let height, let width):
            return
                "\(layer): stride \(stride) does not divide the periodic grid \(height)×\(width), so the strided "
                + "circular operator has no polyphase blocks (its dense SVD is the only route)"
        }
    }
}

/// One convolution layer as the linear operator it is on its input size, in float64.
///
/// y[o, a, b] = Σ_{c,i,j} W[o, c, i, j]·x[c, a·s + i − p, b·s + j − p], terms
/// outside the H×W input being zero (PyTorch's `Conv2d` with zero padding p,
/// stride s, no bias: a bias or a folded BatchNorm shift does not change the
/// operator). Shapes: W (out, in, kh, kw), x (in, H, W), y (out, Ho, Wo) with
/// Ho = ⌊(H + 2p − kh)/s⌋ + 1 and Wo = ⌊(W + 2p − kw)/s⌋ + 1, all flattened
/// row-major, so that the operator is the (out·Ho·Wo) × (in·H·W) matrix A
/// with A·vec(x) = vec(y).
public struct ConvOperator: Sendable, Equatable {
    /// Names the layer in errors and reports.
    public var name: String
    /// W (out, in, kh, kw), row-major.
    public let weight: [Double]
    public let outChannels: Int
    public let inChannels: Int
    public let kernelHeight: Int
    public let kernelWidth: Int
    /// s ≥ 1, the same in both directions.
    public let stride: Int
    /// p ≥ 0 zero rows and columns on each side.
    public let padding: Int
    /// H, the input's height.
    public let inputHeight: Int
    /// W, the input's width.
    public let inputWidth: Int

    /// The largest number of columns (in·H·W) whose dense SVD ``singularValues()``
    /// takes (the analysis's limit for "all singular values"): the matrix
    /// alone is rows·8192 doubles (0.5 GiB when square) and dgesdd's values-only
    /// reduction ~(8/3)·n³ flops, half of it matrix–vector work that
    /// OpenBLAS runs near memory speed; docs/operators.md lists the measured
    /// times (minutes at 6272 columns on this 2-core machine). Beyond it,
    /// ``spectralNormBracket(tolerance:maxPowerIterations:gridCandidates:threads:seed:)``
    /// bounds ‖A‖₂.
    public static let denseColumnLimit = 8192

    /// Checks the description: positive sizes, s ≥ 1, p ≥ 0, an output of
    /// at least one position, out·in·kh·kw weights, all finite.
    public init(
        name: String = "conv", weight: [Double], outChannels: Int, inChannels: Int, kernelHeight: Int,
        kernelWidth: Int, stride: Int = 1, padding: Int = 0, inputHeight: Int, inputWidth: Int
    ) throws {
        func fail(_ reason: String) -> ConvOperatorError { .invalidLayer(layer: name, reason: reason) }
        guard outChannels > 0, inChannels > 0, kernelHeight > 0, kernelWidth > 0, inputHeight > 0, inputWidth > 0
        else {
            throw fail(
                "sizes must be positive (out \(outChannels), in \(inChannels), kernel \(kernelHeight)×\(kernelWidth), "
                    + "input \(inputHeight)×\(inputWidth))")
        }
        guard stride >= 1 else { throw fail("stride \(stride) < 1") }
        guard padding >= 0 else { throw fail("padding \(padding) < 0") }
        guard inputHeight + 2 * padding >= kernelHeight, inputWidth + 2 * padding >= kernelWidth else {
            throw fail(
                "the \(kernelHeight)×\(kernelWidth) kernel does not fit the padded input "
                    + "\(inputHeight + 2 * padding)×\(inputWidth + 2 * padding)")
        }
        let expected = outChannels * inChannels * kernelHeight * kernelWidth
        guard weight.count == expected else {
            throw fail(
                "\(weight.count) weights for (\(outChannels), \(inChannels), \(kernelHeight), \(kernelWidth)) = \(expected)"
            )
        }
        if let bad = weight.firstIndex(where: { !$0.isFinite }) {
            throw fail("weight \(bad) is \(weight[bad])")
        }
        self.name = name
        self.weight = weight
        self.outChannels = outChannels
        self.inChannels = inChannels
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.stride = stride
        self.padding = padding
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
    }

    /// The same layer from W as the analysis stores it, a (out) × (in·kh·kw)
    /// matrix in PyTorch's flattening (row o holds W[o, c, i, j] at
    /// (c·kh + i)·kw + j, which is the (out, in, kh, kw) row-major order).
    public init(
        name: String = "conv", weight: Matrix, inChannels: Int, kernelHeight: Int, kernelWidth: Int,
        stride: Int = 1, padding: Int = 0, inputHeight: Int, inputWidth: Int
    ) throws {
        guard weight.columns == inChannels * kernelHeight * kernelWidth else {
            throw ConvOperatorError.invalidLayer(
                layer: name,
                reason:
                    "W is \(weight.rows)×\(weight.columns), not out × in·kh·kw = \(inChannels * kernelHeight * kernelWidth)"
            )
        }
        try self.init(
            name: name, weight: weight.values, outChannels: weight.rows, inChannels: inChannels,
            kernelHeight: kernelHeight, kernelWidth: kernelWidth, stride: stride, padding: padding,
            inputHeight: inputHeight, inputWidth: inputWidth)
    }

    /// Ho = ⌊(H + 2p − kh)/s⌋ + 1.
    public var outputHeight: Int { (inputHeight + 2 * padding - kernelHeight) / stride + 1 }
    /// Wo = ⌊(W + 2p − kw)/s⌋ + 1.
    public var outputWidth: Int { (inputWidth + 2 * padding - kernelWidth) / stride + 1 }
    /// in·H·W, A's columns.
    public var inputCount: Int { inChannels * inputHeight * inputWidth }
    /// out·Ho·Wo, A's rows.
    public var outputCount: Int { outChannels * outputHeight * outputWidth }

    /// ‖W‖²_F.
    var squaredWeightNorm: Double { weight.reduce(0) { $0 + $1 * $1 } }

    /// The output rows a with 0 ≤ a·s + i − p < extent: the taps of kernel
    /// row i that read the input rather than the padding.
    @inline(__always)
    static func validOutputs(tap i: Int, stride s: Int, padding p: Int, extent: Int, outputs: Int) -> Range<Int> {
        // a ≥ ⌈(p − i)/s⌉ and a ≤ ⌊(extent − 1 + p − i)/s⌋.
        let lowNumerator = p - i
        let low = lowNumerator <= 0 ? 0 : (lowNumerator + s - 1) / s
        let highNumerator = extent - 1 + p - i
        let high = highNumerator < 0 ? -1 : min(outputs - 1, highNumerator / s)
        return low <= high ? low..<(high + 1) : 0..<0
    }

    /// in·kh·kw, the rows of the patch matrix.
    var patchRows: Int { inChannels * kernelHeight * kernelWidth }

    /// y = A·x (x: in·H·W values, y: out·Ho·Wo) as W·P, where the patch
    /// matrix P ((in·kh·kw) × (Ho·Wo)) holds P[(c·kh + i)·kw + j, a·Wo + b] =
    /// x[c, a·s + i − p, b·s + j − p] (0 on padding) and W is (out, in·kh·kw):
    /// the same sum as the definition, one dgemm.
    public func apply(_ x: [Double]) -> [Double] {
        precondition(x.count == inputCount, "\(name).apply: \(x.count) values for \(inputCount)")
        var y = [Double](repeating: 0, count: outputCount)
        var patches = [Double](repeating: 0, count: patchRows * outputHeight * outputWidth)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                patches.withUnsafeMutableBufferPointer { pp in
                    apply(xp.baseAddress!, into: yp.baseAddress!, patches: pp.baseAddress!)
                }
            }
        }
        return y
    }

    /// x = Aᵀ·y, the exact transpose of ``apply(_:)``: P = Wᵀ·Y, then each
    /// P[(c·kh + i)·kw + j, a·Wo + b] added to the input pixel
    /// (a·s + i − p, b·s + j − p) the forward read (nothing for padding), so
    /// that ⟨A·x, y⟩ = ⟨x, Aᵀ·y⟩ up to rounding.
    public func adjoint(_ y: [Double]) -> [Double] {
        precondition(y.count == outputCount, "\(name).adjoint: \(y.count) values for \(outputCount)")
        var x = [Double](repeating: 0, count: inputCount)
        var patches = [Double](repeating: 0, count: patchRows * outputHeight * outputWidth)
        y.withUnsafeBufferPointer { yp in
            x.withUnsafeMutableBufferPointer { xp in
                patches.withUnsafeMutableBufferPointer { pp in
                    adjoint(yp.baseAddress!, into: xp.baseAddress!, patches: pp.baseAddress!)
                }
            }
        }
        return x
    }

    /// ``apply(_:)`` into caller-owned buffers: y (out·Ho·Wo), patches (in·kh·kw·Ho·Wo).
    func apply(_ x: UnsafePointer<Double>, into y: UnsafeMutablePointer<Double>, patches: UnsafeMutablePointer<Double>)
    {
        let (h, w, ho, wo, s, p) = (inputHeight, inputWidth, outputHeight, outputWidth, stride, padding)
        let positions = ho * wo
        for c in 0..<inChannels {
            for i in 0..<kernelHeight {
                let rows = Self.validOutputs(tap: i, stride: s, padding: p, extent: h, outputs: ho)
                for j in 0..<kernelWidth {
                    let columns = Self.validOutputs(tap: j, stride: s, padding: p, extent: w, outputs: wo)
                    let row = patches + ((c * kernelHeight + i) * kernelWidth + j) * positions
                    row.update(repeating: 0, count: positions)
                    if columns.isEmpty { continue }
                    for a in rows {
                        let source = (c * h + a * s + i - p) * w + j - p
                        let target = row + a * wo
                        for b in columns { target[b] = x[source + b * s] }
                    }
                }
            }
        }
        weight.withUnsafeBufferPointer { wp in
            denseProduct(m: outChannels, n: positions, k: patchRows, a: wp.baseAddress!, b: patches, c: y)
        }
    }

    /// ``adjoint(_:)`` into caller-owned buffers: x (in·H·W), patches (in·kh·kw·Ho·Wo).
    func adjoint(
        _ y: UnsafePointer<Double>, into x: UnsafeMutablePointer<Double>, patches: UnsafeMutablePointer<Double>
    ) {
        let (h, w, ho, wo, s, p) = (inputHeight, inputWidth, outputHeight, outputWidth, stride, padding)
        let positions = ho * wo
        weight.withUnsafeBufferPointer { wp in
            denseProduct(
                m: patchRows, n: positions, k: outChannels, a: wp.baseAddress!, b: y, c: patches, transposeA: true)
        }
        x.update(repeating: 0, count: inputCount)
        for c in 0..<inChannels {
            for i in 0..<kernelHeight {
                let rows = Self.validOutputs(tap: i, stride: s, padding: p, extent: h, outputs: ho)
                for j in 0..<kernelWidth {
                    let columns = Self.validOutputs(tap: j, stride: s, padding: p, extent: w, outputs: wo)
                    if columns.isEmpty { continue }
                    let row = patches + ((c * kernelHeight + i) * kernelWidth + j) * positions
                    for a in rows {
                        let target = (c * h + a * s + i - p) * w + j - p
                        let source = row + a * wo
                        for b in columns { x[target + b * s] += source[b] }
                    }
                }
            }
        }
    }

    /// A itself, (out·Ho·Wo) × (in·H·W): A[(o·Ho + a)·Wo + b, (c·H + a·s+i−p)·W + b·s+j−p] = W[o, c, i, j]
    /// for every tap inside the input (distinct taps of one output never
    /// share a column, so each entry is one weight or 0). Allocates
    /// rows·columns doubles: at most ``denseColumnLimit`` columns, else it throws.
    public func denseMatrix() throws -> Matrix {
        guard inputCount <= Self.denseColumnLimit else {
            throw ConvOperatorError.tooLargeForDenseSVD(
                layer: name, rows: outputCount, columns: inputCount, limit: Self.denseColumnLimit)
        }
        let (h, w, ho, wo, s, p) = (inputHeight, inputWidth, outputHeight, outputWidth, stride, padding)
        var a = Matrix(rows: outputCount, columns: inputCount)
        for o in 0..<outChannels {
            for y in 0..<ho {
                for x in 0..<wo {
                    let row = (o * ho + y) * wo + x
                    for c in 0..<inChannels {
                        for i in 0..<kernelHeight {
                            let iy = y * s + i - p
                            if iy < 0 || iy >= h { continue }
                            for j in 0..<kernelWidth {
                                let ix = x * s + j - p
                                if ix < 0 || ix >= w { continue }
                                a[row, (c * h + iy) * w + ix] =
                                    weight[((o * inChannels + c) * kernelHeight + i) * kernelWidth + j]
                            }
                        }
                    }
                }
            }
        }
        return a
    }

    /// All min(out·Ho·Wo, in·H·W) singular values of A, descending, by
    /// LAPACKE_dgesdd (values only) in float64: backward stable, so each is
    /// exact to ~1e-15·σ₁. Throws ``ConvOperatorError/tooLargeForDenseSVD(layer:rows:columns:limit:)``
    /// beyond ``denseColumnLimit`` columns, or a ``LAPACKError``.
    public func singularValues() throws -> [Double] {
        let a = try denseMatrix()
        return try singularValuesOnly(a, context: "\(name) zero-padded operator (\(a.rows)×\(a.columns))")
    }
}
