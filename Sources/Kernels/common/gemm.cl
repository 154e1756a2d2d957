// General matrix product C ← α·op(A)·op(B) + β·C, row-major, in two
// register-blocked kernels (no local memory: on a CPU device it is ordinary
// cache, and on a GPU these shapes are small). β = 0 never reads C, as BLAS.

// "Row-vector" form: op(B) is contiguous along n (B stored k×n, not
// transposed). op(A)[i,p] = A[i·aRow + p·aCol] covers A and Aᵀ; C[i,j] is at
// C[i·cRow + j·cCol], so Cᵀ = Bᵀ·Aᵀ computed here serves op(A)ᵀ·op(B)ᵀ too.
// One work-item per 4 rows × 16 columns of C, the 16 columns in one float16
// (two loads of B and four of A feed eight AVX2 multiply-adds); full tiles
// of a unit-stride C are stored as vectors.
#ifdef KERNEL_gemm_rows
__kernel void gemm_rows(int m, int n, int k,
                        __global const float* a, int aRow, int aCol,
                        __global const float* b, int ldb,
                        __global float* c, int cRow, int cCol,
                        float alpha, float beta) {
    const int columnGroups = (n + 15) / 16;
    const int index = get_global_id(0);
    if (index >= ((m + 3) / 4) * columnGroups) return;
    const int i0 = (index / columnGroups) * 4;
    const int j0 = (index % columnGroups) * 16;
    // Rows past m read row m−1 (always valid) and are never stored.
    __global const float* a0 = a + (size_t)min(i0, m - 1) * aRow;
    __global const float* a1 = a + (size_t)min(i0 + 1, m - 1) * aRow;
    __global const float* a2 = a + (size_t)min(i0 + 2, m - 1) * aRow;
    __global const float* a3 = a + (size_t)min(i0 + 3, m - 1) * aRow;
    float16 acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
    const bool fullColumns = j0 + 16 <= n;
    if (fullColumns) {
        for (int p = 0; p < k; p++) {
            const float16 bv = vload16(0, b + (size_t)p * ldb + j0);
            const size_t ap = (size_t)p * aCol;
            acc0 += a0[ap] * bv; acc1 += a1[ap] * bv; acc2 += a2[ap] * bv; acc3 += a3[ap] * bv;
        }
    } else {
        for (int p = 0; p < k; p++) {
            float bs[16];
            for (int t = 0; t < 16; t++) bs[t] = j0 + t < n ? b[(size_t)p * ldb + j0 + t] : 0.0f;
            const float16 bv = vload16(0, bs);
            const size_t ap = (size_t)p * aCol;
            acc0 += a0[ap] * bv; acc1 += a1[ap] * bv; acc2 += a2[ap] * bv; acc3 += a3[ap] * bv;
        }
    }
    if (fullColumns && cCol == 1 && i0 + 4 <= m) {
        __global float* c0 = c + (size_t)i0 * cRow + j0;
        if (beta == 0.0f) {
            vstore16(alpha * acc0, 0, c0); vstore16(alpha * acc1, 0, c0 + cRow);
            vstore16(alpha * acc2, 0, c0 + 2 * cRow); vstore16(alpha * acc3, 0, c0 + 3 * cRow);
        } else {
            vstore16(alpha * acc0 + beta * vload16(0, c0), 0, c0);
            vstore16(alpha * acc1 + beta * vload16(0, c0 + cRow), 0, c0 + cRow);
            vstore16(alpha * acc2 + beta * vload16(0, c0 + 2 * cRow), 0, c0 + 2 * cRow);
            vstore16(alpha * acc3 + beta * vload16(0, c0 + 3 * cRow), 0, c0 + 3 * cRow);
        }
        return;
    }
    float rows[4][16];
    vstore16(acc0, 0, rows[0]); vstore16(acc1, 0, rows[1]);
    vstore16(acc2, 0, rows[2]); vstore16(acc3, 0, rows[3]);
    for (int r = 0; r < 4 && i0 + r < m; r++) {
        for (int t = 0; t < 16 && j0 + t < n; t++) {
            __global float* out = c + (size_t)(i0 + r) * cRow + (size_t)(j0 + t) * cCol;
            *out = beta == 0.0f ? alpha * rows[r][t] : alpha * rows[r][t] + beta * *out;
        }
    }
}
#endif

// "Dot" form for op(A)·Bᵀ: A stored m×k and B stored n×k, both contiguous
// along k, so every C entry is a dot product of two rows read as float8.
// One work-item per 4 rows × 2 columns of C; C[i,j] at c[i·ldc + j].
#ifdef KERNEL_gemm_dots
__kernel void gemm_dots(int m, int n, int k,
                        __global const float* a, int lda,
                        __global const float* b, int ldb,
                        __global float* c, int ldc,
                        float alpha, float beta) {
    const int columnGroups = (n + 1) / 2;
    const int index = get_global_id(0);
    if (index >= ((m + 3) / 4) * columnGroups) return;
    const int i0 = (index / columnGroups) * 4;
    const int j0 = (index % columnGroups) * 2;
    __global const float* a0 = a + (size_t)min(i0, m - 1) * lda;
    __global const float* a1 = a + (size_t)min(i0 + 1, m - 1) * lda;
    __global const float* a2 = a + (size_t)min(i0 + 2, m - 1) * lda;
    __global const float* a3 = a + (size_t)min(i0 + 3, m - 1) * lda;
    __global const float* b0 = b + (size_t)min(j0, n - 1) * ldb;
    __global const float* b1 = b + (size_t)min(j0 + 1, n - 1) * ldb;
    float8 s00 = 0.0f, s01 = 0.0f, s10 = 0.0f, s11 = 0.0f;
    float8 s20 = 0.0f, s21 = 0.0f, s30 = 0.0f, s31 = 0.0f;
    const int k8 = k / 8;
    for (int q = 0; q < k8; q++) {
        const float8 bv0 = vload8(q, b0), bv1 = vload8(q, b1);
        float8 av = vload8(q, a0); s00 += av * bv0; s01 += av * bv1;
        av = vload8(q, a1); s10 += av * bv0; s11 += av * bv1;
        av = vload8(q, a2); s20 += av * bv0; s21 += av * bv1;
        av = vload8(q, a3); s30 += av * bv0; s31 += av * bv1;
    }
    float sums[4][2];
    sums[0][0] = dot(s00.lo, (float4)1.0f) + dot(s00.hi, (float4)1.0f);
    sums[0][1] = dot(s01.lo, (float4)1.0f) + dot(s01.hi, (float4)1.0f);
    sums[1][0] = dot(s10.lo, (float4)1.0f) + dot(s10.hi, (float4)1.0f);
    sums[1][1] = dot(s11.lo, (float4)1.0f) + dot(s11.hi, (float4)1.0f);
    sums[2][0] = dot(s20.lo, (float4)1.0f) + dot(s20.hi, (float4)1.0f);
    sums[2][1] = dot(s21.lo, (float4)1.0f) + dot(s21.hi, (float4)1.0f);
    sums[3][0] = dot(s30.lo, (float4)1.0f) + dot(s30.hi, (float4)1.0f);
    sums[3][1] = dot(s31.lo, (float4)1.0f) + dot(s31.hi, (float4)1.0f);
    for (int p = k8 * 8; p < k; p++) {
        sums[0][0] += a0[p] * b0[p]; sums[0][1] += a0[p] * b1[p];
        sums[1][0] += a1[p] * b0[p]; sums[1][1] += a1[p] * b1[p];
        sums[2][0] += a2[p] * b0[p]; sums[2][1] += a2[p] * b1[p];
        sums[3][0] += a3[p] * b0[p]; sums[3][1] += a3[p] * b1[p];
    }
    for (int r = 0; r < 4 && i0 + r < m; r++) {
        for (int t = 0; t < 2 && j0 + t < n; t++) {
            __global float* out = c + (size_t)(i0 + r) * ldc + j0 + t;
            *out = beta == 0.0f ? alpha * sums[r][t] : alpha * sums[r][t] + beta * *out;
        }
    }
}
#endif
