import _CLAPACK

/// The loops behind ``HostDevice``: one image or one row range at a time,
/// over raw pointers, allocation-free. The device checks arguments and splits
/// work; these only compute.
enum HostKernels {
    /// C ← α·op(A)·op(B) + β·C through OpenBLAS, row-major, with explicit
    /// leading dimensions (so sub-matrices can be passed).
    @inline(__always)
    static func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// im2col of one image (C,H,W) into columns whose rows are `rowStride`
    /// apart: row (c·kH + i)·kW + j, column y·oW + x ← image[c, y+i, x+j].
    /// Each (row, y) is one contiguous run of oW floats.
    static func im2colImage(_ s: ConvShape, image: UnsafePointer<Float>,
                            columns: UnsafeMutablePointer<Float>, rowStride: Int) {
        let (h, w, kH, kW) = (s.height, s.width, s.kernelHeight, s.kernelWidth)
        let (oH, oW) = (s.outHeight, s.outWidth)
        var row = 0
        for c in 0..<s.inChannels {
            let plane = image + c * h * w
            for i in 0..<kH {
                for j in 0..<kW {
                    let target = columns + row * rowStride
                    for y in 0..<oH {
                        (target + y * oW).update(from: plane + (y + i) * w + j, count: oW)
                    }
                    row += 1
                }
            }
        }
    }

    /// The adjoint of ``im2colImage``: image[c, y+i, x+j] += column entries.
    /// Accumulates: the caller zeroes `image` first.
    static func col2imImage(_ s: ConvShape, columns: UnsafePointer<Float>, rowStride: Int,
                            image: UnsafeMutablePointer<Float>) {
        let (h, w, kH, kW) = (s.height, s.width, s.kernelHeight, s.kernelWidth)
        let (oH, oW) = (s.outHeight, s.outWidth)
        var row = 0
        for c in 0..<s.inChannels {
            let plane = image + c * h * w
            for i in 0..<kH {
                for j in 0..<kW {
                    let source = columns + row * rowStride
                    for y in 0..<oH {
                        let from = source + y * oW
                        let to = plane + (y + i) * w + j
                        for x in 0..<oW { to[x] += from[x] }
                    }
                    row += 1
                }
            }
        }
    }
}
