import Foundation

/// All singular values of a layer's circular (periodic) convolution on an
/// N₁×N₂ grid, stride included, from its polyphase blocks
/// (``ConvOperator/circularSpectrum(gridHeight:gridWidth:threads:)``).
public struct CircularSpectrum: Codable, Sendable, Equatable {
    /// N₁ and N₂, the periodic grid (the layer's input size unless asked otherwise).
    public var gridHeight: Int
    public var gridWidth: Int
    public var stride: Int
    /// (N₁/s)·(N₂/s) blocks, one per output frequency.
    public var blockCount: Int
    /// c_out, each block's rows.
    public var blockRows: Int
    /// c_in·s², each block's columns.
    public var blockColumns: Int
    /// All blockCount·min(c_out, c_in·s²) singular values, descending: as
    /// many as the dense circular operator (out·N₁N₂/s²) × (in·N₁N₂) has.
    public var singularValues: [Double]
    /// Σσᵢ² against (N₁N₂/s²)·‖W‖²_F (every output position reads every weight
    /// once, in distinct columns, when kh ≤ N₁ and kw ≤ N₂): |Σσᵢ² − that| / that,
    /// nil when the kernel wraps onto itself. Tolerance 1e-12: a sum of
    /// squares of backward-stable singular values against an exact count.
    public var frobeniusRelativeDifference: Double?

    /// σ₁, the circular operator's spectral norm.
    public var spectralNorm: Double { singularValues.first ?? 0 }
}

extension ConvOperator {
    /// The circular operator's spectrum on the layer's own input size
    /// (``circularSpectrum(gridHeight:gridWidth:threads:)`` with N₁ = H, N₂ = W).
    public func circularSpectrum(threads: Int = 2) throws -> CircularSpectrum {
        try circularSpectrum(gridHeight: inputHeight, gridWidth: inputWidth, threads: threads)
    }

    /// All singular values of the strided circular convolution on an N₁×N₂ grid,
    ///
    ///     y[o, a, b] = Σ_{c,i,j} W[o, c, i, j]·x[c, (a·s + i − p) mod N₁, (b·s + j − p) mod N₂],
    ///
    /// x (in, N₁, N₂), y (out, N₁/s, N₂/s): the layer with its zero padding
    /// made periodic (an input shift, which is a permutation, so p does not
    /// change the singular values).
    ///
    /// Stride 1 (Sedghi, Gupta & Long 2019): the unitary 2-D DFT turns the
    /// operator into N₁N₂ independent out×in matrices
    /// K̂(ω)[o, c] = Σ_{i,j} W[o, c, i, j]·e^{2πi((i−p)ω₁/N₁ + (j−p)ω₂/N₂)}.
    /// Stride s: y is z = (stride-1 circular conv)(x) sampled every s-th
    /// position, and sampling aliases: with M = N/s, the unitary DFTs give
    /// ỹ(ν) = (1/s)·Σ_{r ∈ {0…s−1}²} K̂(ν + r∘M)·x̃(ν + r∘M), so each of the
    /// M₁M₂ output frequencies ν has one c_out × (c_in·s²) polyphase block
    /// B(ν) = (1/s)·[K̂(ν + r∘M)]_r, the s² aliased input frequencies side by
    /// side; the blocks' input frequencies partition all N₁N₂, so the operator
    /// is unitarily block diagonal and its singular values are those of the
    /// blocks together (docs/operators.md derives it). Each block by
    /// LAPACKE_zgesvd (values only), `threads` at a time.
    ///
    /// Throws ``ConvOperatorError/strideDoesNotDivideGrid(layer:stride:height:width:)``
    /// when s does not divide N₁ and N₂: the strided circular operator then
    /// has no block structure, and only a dense SVD of it would do.
    public func circularSpectrum(gridHeight n1: Int, gridWidth n2: Int, threads: Int = 2) throws
        -> CircularSpectrum
    {
        let blocks = try PolyphaseBlocks(self, gridHeight: n1, gridWidth: n2)
        let results = parallelMap(blocks.count, threads: threads) { index -> Result<[Double], Error> in
            Result {
                try complexSingularValues(
                    blocks.block(index), rows: blocks.rows, columns: blocks.columns,
                    context: "\(name) polyphase block \(index) of the circular operator on \(n1)×\(n2)")
            }
        }
        var sigma = [Double]()
        sigma.reserveCapacity(blocks.count * min(blocks.rows, blocks.columns))
        for r in results { sigma += try r.get() }
        sigma.sort(by: >)
        var frobenius: Double? = nil
        if kernelHeight <= n1 && kernelWidth <= n2 {
            let expected = Double(blocks.count) * squaredWeightNorm
            let sum = sigma.reduce(0) { $0 + $1 * $1 }
            frobenius = expected > 0 ? abs(sum - expected) / expected : abs(sum)
        }
        return CircularSpectrum(
            gridHeight: n1, gridWidth: n2, stride: stride, blockCount: blocks.count, blockRows: blocks.rows,
            blockColumns: blocks.columns, singularValues: sigma, frobeniusRelativeDifference: frobenius)
    }
}

/// The polyphase blocks B(ν) of a layer's strided circular operator on an
/// N₁×N₂ grid (``ConvOperator/circularSpectrum(gridHeight:gridWidth:threads:)``),
/// each built on demand: out × (in·s²) complex, row-major, interleaved
/// (re, im), column (c·s + r₁)·s + r₂ holding (1/s)·K̂(ν + r∘M)[·, c].
struct PolyphaseBlocks: Sendable {
    let layer: ConvOperator
    let n1: Int
    let n2: Int
    /// M₁ = N₁/s, M₂ = N₂/s.
    let m1: Int
    let m2: Int
    /// e^{2πi·(i−p)·ω₁/N₁} for kernel row i and frequency ω₁, interleaved, index (i·N₁ + ω₁).
    let rowPhase: [Double]
    /// e^{2πi·(j−p)·ω₂/N₂}, index (j·N₂ + ω₂).
    let columnPhase: [Double]

    init(_ layer: ConvOperator, gridHeight n1: Int, gridWidth n2: Int) throws {
        let s = layer.stride
        guard n1 > 0, n2 > 0 else {
            throw ConvOperatorError.invalidLayer(layer: layer.name, reason: "periodic grid \(n1)×\(n2)")
        }
        guard n1 % s == 0, n2 % s == 0 else {
            throw ConvOperatorError.strideDoesNotDivideGrid(layer: layer.name, stride: s, height: n1, width: n2)
        }
        self.layer = layer
        self.n1 = n1
        self.n2 = n2
        m1 = n1 / s
        m2 = n2 / s
        func phases(taps: Int, period n: Int) -> [Double] {
            var table = [Double](repeating: 0, count: 2 * taps * n)
            for i in 0..<taps {
                for w in 0..<n {
                    // (i − p)·ω mod n exactly in integers, then one angle per residue.
                    var m = ((i - layer.padding) * w) % n
                    if m < 0 { m += n }
                    let t = 2 * Double.pi * Double(m) / Double(n)
                    table[2 * (i * n + w)] = cos(t)
                    table[2 * (i * n + w) + 1] = sin(t)
                }
            }
            return table
        }
        rowPhase = phases(taps: layer.kernelHeight, period: n1)
        columnPhase = phases(taps: layer.kernelWidth, period: n2)
    }

    var count: Int { m1 * m2 }
    var rows: Int { layer.outChannels }
    var columns: Int { layer.inChannels * layer.stride * layer.stride }

    /// B(ν) for ν = (index / M₂, index mod M₂).
    func block(_ index: Int) -> [Double] {
        let (s, cout, cin) = (layer.stride, layer.outChannels, layer.inChannels)
        let (kh, kw) = (layer.kernelHeight, layer.kernelWidth)
        let nu1 = index / m2
        let nu2 = index % m2
        let cols = columns
        let scale = 1 / Double(s)
        var b = [Double](repeating: 0, count: 2 * cout * cols)
        layer.weight.withUnsafeBufferPointer { w in
            for r1 in 0..<s {
                let w1 = nu1 + r1 * m1
                for r2 in 0..<s {
                    let w2 = nu2 + r2 * m2
                    for i in 0..<kh {
                        let pr = rowPhase[2 * (i * n1 + w1)]
                        let pi = rowPhase[2 * (i * n1 + w1) + 1]
                        for j in 0..<kw {
                            let qr = columnPhase[2 * (j * n2 + w2)]
                            let qi = columnPhase[2 * (j * n2 + w2) + 1]
                            let re = scale * (pr * qr - pi * qi)
                            let im = scale * (pr * qi + pi * qr)
                            for o in 0..<cout {
                                for c in 0..<cin {
                                    let v = w[((o * cin + c) * kh + i) * kw + j]
                                    let e = 2 * (o * cols + (c * s + r1) * s + r2)
                                    b[e] += v * re
                                    b[e + 1] += v * im
                                }
                            }
                        }
                    }
                }
            }
        }
        return b
    }
}
