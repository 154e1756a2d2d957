/// The layer operations of the host float64 forward pass, on raw buffers.
///
/// Layout "CBHW": a chunk of b images holds each layer as (C, b, H, W), i.e.
/// channel-major across the chunk. That is the layout W·im2col produces
/// (W is (out, patch), the columns are (image, y, x)), so no transposition is
/// needed between layers; NCHW appears only at the boundaries (device outputs,
/// public forward results).

/// Unfolds (C, b, H, H) into columns (C·9, b·o·o), o = H − 2: row
/// (c·3 + i)·3 + j, column (img·o + y)·o + x holds input[c, img, y+i, x+j].
/// The row order is PyTorch's weight flattening (in, kH, kW).
func im2col3x3(
    _ input: UnsafePointer<Double>, channels: Int, count b: Int, side h: Int,
    into out: UnsafeMutablePointer<Double>
) {
    let o = h - 2
    let n = b * o * o
    for c in 0..<channels {
        for i in 0..<3 {
            for j in 0..<3 {
                let row = out + ((c * 3 + i) * 3 + j) * n
                for img in 0..<b {
                    let plane = input + (c * b + img) * h * h
                    for y in 0..<o {
                        let src = plane + (y + i) * h + j
                        let dst = row + (img * o + y) * o
                        for x in 0..<o { dst[x] = src[x] }
                    }
                }
            }
        }
    }
}

/// x ← max(x, 0), in place.
func reluInPlace(_ x: UnsafeMutablePointer<Double>, count: Int) {
    for i in 0..<count where !(x[i] > 0) { x[i] = 0 }
}

/// 2×2 max-pool, stride 2, floor mode, over `planes` planes of h×h into
/// planes of (h/2)×(h/2).
func maxPool2(_ input: UnsafePointer<Double>, planes: Int, side h: Int, into out: UnsafeMutablePointer<Double>) {
    let o = h / 2
    for p in 0..<planes {
        let src = input + p * h * h
        let dst = out + p * o * o
        for y in 0..<o {
            let r0 = src + 2 * y * h
            let r1 = r0 + h
            for x in 0..<o {
                dst[y * o + x] = max(max(r0[2 * x], r0[2 * x + 1]), max(r1[2 * x], r1[2 * x + 1]))
            }
        }
    }
}

/// (C, b, s, s) → (b, C·s·s): each image's features channel-major, as
/// PyTorch's flatten of NCHW gives them.
func flattenImageMajor(
    _ input: UnsafePointer<Double>, channels: Int, count b: Int, planeSize: Int,
    into out: UnsafeMutablePointer<Double>
) {
    for c in 0..<channels {
        for img in 0..<b {
            let src = input + (c * b + img) * planeSize
            let dst = out + img * channels * planeSize + c * planeSize
            for q in 0..<planeSize { dst[q] = src[q] }
        }
    }
}

/// Index of the largest of n values (the first on a tie), as argmax does.
@inline(__always)
func argmax(_ x: UnsafePointer<Double>, _ n: Int) -> Int {
    var best = 0
    for i in 1..<n where x[i] > x[best] { best = i }
    return best
}
