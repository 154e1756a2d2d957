import CLAPACK

/// The loops behind ``HostDevice``: one image or one row range at a time,
/// over raw pointers, allocation-free. The device checks arguments and splits
/// work; these only compute.
enum HostLoops {
    /// C ← α·op(A)·op(B) + β·C through OpenBLAS, row-major, with explicit
    /// leading dimensions (so sub-matrices can be passed).
    @inline(__always)
    static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// im2col of one image (C,H,W) into columns whose rows are `rowStride`
    /// apart: row (c·kH + i)·kW + j, column y·oW + x ← image[c, y+i, x+j].
    /// Each (row, y) is one contiguous run of oW floats.
    static func im2colImage(
        _ s: ConvShape, image: UnsafePointer<Float>,
        columns: UnsafeMutablePointer<Float>, rowStride: Int
    ) {
        let (h, w, kH, kW) = (s.height, s.width, s.kernelHeight, s.kernelWidth)
        let (oH, oW) = (s.outHeight, s.outWidth)
        var row = 0
        for c in 0..<s.inChannels {
            let plane = image + c * h * w
            for i in 0..<kH {
                for j in 0..<kW {
                    let target = columns + row * rowStride
                    for y in 0..<oH {
                        copyRun(from: plane + (y + i) * w + j, to: target + y * oW, count: oW)
                    }
                    row += 1
                }
            }
        }
    }

    /// The adjoint of ``im2colImage``: image[c, y+i, x+j] += column entries.
    /// Accumulates: the caller zeroes `image` first.
    static func col2imImage(
        _ s: ConvShape, columns: UnsafePointer<Float>, rowStride: Int,
        image: UnsafeMutablePointer<Float>
    ) {
        let (h, w, kH, kW) = (s.height, s.width, s.kernelHeight, s.kernelWidth)
        let (oH, oW) = (s.outHeight, s.outWidth)
        var row = 0
        for c in 0..<s.inChannels {
            let plane = image + c * h * w
            for i in 0..<kH {
                for j in 0..<kW {
                    let source = columns + row * rowStride
                    for y in 0..<oH {
                        addRun(from: source + y * oW, to: plane + (y + i) * w + j, count: oW)
                    }
                    row += 1
                }
            }
        }
    }
}

/// Short copies and sums (one image row, 5–30 floats) inline: a `memmove`
/// call per row costs more than the copy.
extension HostLoops {
    /// to[0..<count] = from[0..<count] for non-overlapping ranges. Whole
    /// 8-lane blocks, then a last block ending at `count` (re-writing a few
    /// equal values) when count ≥ 8; 4-lane blocks likewise below 8.
    @inline(__always)
    static func copyRun(from: UnsafePointer<Float>, to: UnsafeMutablePointer<Float>, count: Int) {
        if count >= 8 {
            var x = 0
            while x + 8 <= count {
                store(load(from + x), to + x)
                x += 8
            }
            if x < count { store(load(from + count - 8), to + count - 8) }
        } else if count >= 4 {
            let head = UnsafeRawPointer(from).loadUnaligned(as: SIMD4<Float>.self)
            let tail = UnsafeRawPointer(from + count - 4).loadUnaligned(as: SIMD4<Float>.self)
            UnsafeMutableRawPointer(to).storeBytes(of: head, as: SIMD4<Float>.self)
            UnsafeMutableRawPointer(to + count - 4).storeBytes(of: tail, as: SIMD4<Float>.self)
        } else {
            for x in 0..<count { to[x] = from[x] }
        }
    }

    /// to[0..<count] += from[0..<count] for non-overlapping ranges: 8-lane
    /// blocks, then single elements (a sum cannot re-do overlapping lanes).
    @inline(__always)
    static func addRun(from: UnsafePointer<Float>, to: UnsafeMutablePointer<Float>, count: Int) {
        var x = 0
        while x + 8 <= count {
            store(load(to + x) + load(from + x), to + x)
            x += 8
        }
        if x + 4 <= count {
            let sum =
                UnsafeRawPointer(to + x).loadUnaligned(as: SIMD4<Float>.self)
                + UnsafeRawPointer(from + x).loadUnaligned(as: SIMD4<Float>.self)
            UnsafeMutableRawPointer(to + x).storeBytes(of: sum, as: SIMD4<Float>.self)
            x += 4
        }
        while x < count {
            to[x] += from[x]
            x += 1
        }
    }
}

/// Elementwise loops written with explicit 8-lane SIMD selects: the scalar
/// `x > 0 ? a : b` compiles to a branch, which mispredicts on half the
/// elements of a ReLU and costs ~10× the vector version.
extension HostLoops {
    typealias Lanes = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Lanes { UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }

    @inline(__always)
    static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
    }

    /// output = input where input > 0 or input is NaN, else 0. NaN passes
    /// through, as in PyTorch, so that a diverging run shows a NaN loss
    /// instead of a silently dead layer.
    static func relu(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let x = load(input + i)
            store(Lanes(repeating: 0).replacing(with: x, where: (x .> 0) .| (x .!= x)), output + i)
            i += 8
        }
        while i < count {
            let x = input[i]
            output[i] = x > 0 || x.isNaN ? x : 0
            i += 1
        }
    }

    /// output = RELU(input·scale + shift) (``relu(_:_:count:)``'s rule): a
    /// BatchNorm's normalisation and the ReLU after it in one pass, each
    /// value rounded as the two passes round it (a product, then a sum).
    static func affineRelu(
        _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, scale: Float, shift: Float, count: Int
    ) {
        var i = 0
        let (s, t) = (Lanes(repeating: scale), Lanes(repeating: shift))
        while i + 8 <= count {
            let x = load(input + i) * s + t
            store(Lanes(repeating: 0).replacing(with: x, where: (x .> 0) .| (x .!= x)), output + i)
            i += 8
        }
        while i < count {
            let x = input[i] * scale + shift
            output[i] = x > 0 || x.isNaN ? x : 0
            i += 1
        }
    }

    /// output = RELU(a + b) (``relu(_:_:count:)``'s rule): a residual sum
    /// and the ReLU after it in one pass.
    static func addRelu(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int
    ) {
        var i = 0
        while i + 8 <= count {
            let x = load(a + i) + load(b + i)
            store(Lanes(repeating: 0).replacing(with: x, where: (x .> 0) .| (x .!= x)), output + i)
            i += 8
        }
        while i < count {
            let x = a[i] + b[i]
            output[i] = x > 0 || x.isNaN ? x : 0
            i += 1
        }
    }

    /// gradInput = gradOutput (+ addend, where one is given) where output > 0, else 0.
    static func reluGradient(
        output: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>, addend: UnsafePointer<Float>?,
        gradInput: UnsafeMutablePointer<Float>, count: Int
    ) {
        var i = 0
        if let addend {
            while i + 8 <= count {
                let y = load(output + i)
                let g = load(gradOutput + i) + load(addend + i)
                store(Lanes(repeating: 0).replacing(with: g, where: y .> 0), gradInput + i)
                i += 8
            }
            while i < count {
                gradInput[i] = output[i] > 0 ? gradOutput[i] + addend[i] : 0
                i += 1
            }
            return
        }
        while i + 8 <= count {
            let y = load(output + i)
            store(Lanes(repeating: 0).replacing(with: load(gradOutput + i), where: y .> 0), gradInput + i)
            i += 8
        }
        while i < count {
            gradInput[i] = output[i] > 0 ? gradOutput[i] : 0
            i += 1
        }
    }
}

/// One output row of the 2×2, stride-2 max-pool: the outputs of input rows
/// `top` and `top + 1` of a plane `width` wide. Blocks of 8 (or 4) outputs
/// at a time in SIMD lanes, even and odd input columns split with
/// `evenHalf`/`oddHalf`; a short tail re-does the last full block
/// (overlapping writes of equal values), so there is no scalar loop unless
/// the row has fewer than 4 outputs. Candidates are taken in row-major
/// order and a later one wins only when strictly larger (ties to the first).
extension HostLoops {
    static func maxPoolRow(
        plane: UnsafePointer<Float>, top: Int, width: Int, outWidth: Int,
        output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>
    ) {
        if outWidth >= 8 {
            var ox = 0
            while true {
                let start = min(ox, outWidth - 8)
                maxPoolBlock8(plane: plane, top: top, width: width, ox: start, output: output, argmax: argmax)
                ox += 8
                if ox >= outWidth { break }
            }
        } else if outWidth >= 4 {
            var ox = 0
            while true {
                let start = min(ox, outWidth - 4)
                maxPoolBlock4(plane: plane, top: top, width: width, ox: start, output: output, argmax: argmax)
                ox += 4
                if ox >= outWidth { break }
            }
        } else {
            for ox in 0..<outWidth {
                let first = top + 2 * ox
                var index = first
                var best = plane[first]
                if plane[first + 1] > best {
                    index = first + 1
                    best = plane[index]
                }
                if plane[first + width] > best {
                    index = first + width
                    best = plane[index]
                }
                if plane[first + width + 1] > best {
                    index = first + width + 1
                    best = plane[index]
                }
                output[ox] = best
                argmax[ox] = Int32(truncatingIfNeeded: index)
            }
        }
    }

    @inline(__always)
    private static func maxPoolBlock8(
        plane: UnsafePointer<Float>, top: Int, width: Int, ox: Int,
        output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>
    ) {
        let upper = UnsafeRawPointer(plane + top + 2 * ox).loadUnaligned(as: SIMD16<Float>.self)
        let lower = UnsafeRawPointer(plane + top + width + 2 * ox).loadUnaligned(as: SIMD16<Float>.self)
        let first = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14) &+ Int32(truncatingIfNeeded: top + 2 * ox)
        var best = upper.evenHalf
        var index = first
        let b = upper.oddHalf
        let c = lower.evenHalf
        let d = lower.oddHalf
        let bWins = b .> best
        best.replace(with: b, where: bWins)
        index.replace(with: first &+ 1, where: bWins)
        let cWins = c .> best
        best.replace(with: c, where: cWins)
        index.replace(with: first &+ Int32(truncatingIfNeeded: width), where: cWins)
        let dWins = d .> best
        best.replace(with: d, where: dWins)
        index.replace(with: first &+ Int32(truncatingIfNeeded: width + 1), where: dWins)
        UnsafeMutableRawPointer(output + ox).storeBytes(of: best, as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(argmax + ox).storeBytes(of: index, as: SIMD8<Int32>.self)
    }

    @inline(__always)
    private static func maxPoolBlock4(
        plane: UnsafePointer<Float>, top: Int, width: Int, ox: Int,
        output: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>
    ) {
        let upper = UnsafeRawPointer(plane + top + 2 * ox).loadUnaligned(as: SIMD8<Float>.self)
        let lower = UnsafeRawPointer(plane + top + width + 2 * ox).loadUnaligned(as: SIMD8<Float>.self)
        let first = SIMD4<Int32>(0, 2, 4, 6) &+ Int32(truncatingIfNeeded: top + 2 * ox)
        var best = upper.evenHalf
        var index = first
        let b = upper.oddHalf
        let c = lower.evenHalf
        let d = lower.oddHalf
        let bWins = b .> best
        best.replace(with: b, where: bWins)
        index.replace(with: first &+ 1, where: bWins)
        let cWins = c .> best
        best.replace(with: c, where: cWins)
        index.replace(with: first &+ Int32(truncatingIfNeeded: width), where: cWins)
        let dWins = d .> best
        best.replace(with: d, where: dWins)
        index.replace(with: first &+ Int32(truncatingIfNeeded: width + 1), where: dWins)
        UnsafeMutableRawPointer(output + ox).storeBytes(of: best, as: SIMD4<Float>.self)
        UnsafeMutableRawPointer(argmax + ox).storeBytes(of: index, as: SIMD4<Int32>.self)
    }
}
