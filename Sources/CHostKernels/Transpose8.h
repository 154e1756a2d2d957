#ifndef CONVSVD_HOST_KERNELS_TRANSPOSE8_H
#define CONVSVD_HOST_KERNELS_TRANSPOSE8_H

// Internal to CHostKernels: moving 8 channels between the vector lanes
// (pixel-major, "channels last") and planes (channel-major, NCHW), which the
// channel-vectorised kernels do at their edges. 32-bit elements of any type:
// the loads and stores are bit copies.

#include <immintrin.h>
#include <string.h>

#define HK_TARGET __attribute__((target("avx2,fma")))

/// 8×8 transpose of r0..r7 in place.
HK_TARGET static inline void hk_transpose8(__m256 *r) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20); r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20); r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31); r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31); r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/// dst[c*dstStride + p] = src[p*srcStride + c] for c < 8, p < count: pixels
/// with 8 channels each to 8 planes.
HK_TARGET static inline void hk_lanes_to_planes8(const void *source, int srcStride, int count, void *destination,
                                                 int dstStride) {
    const float *src = source;
    float *dst = destination;
    int p = 0;
    for (; p + 8 <= count; p += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (long)(p + i) * srcStride);
        hk_transpose8(r);
        for (int c = 0; c < 8; c++) _mm256_storeu_ps(dst + (long)c * dstStride + p, r[c]);
    }
    for (; p < count; p++)
        for (int c = 0; c < 8; c++) memcpy(dst + (long)c * dstStride + p, src + (long)p * srcStride + c, 4);
}

/// dst[p*dstStride + c] = src[c*srcStride + p] for c < 8, p < count: 8
/// planes to pixels with 8 channels each.
HK_TARGET static inline void hk_planes_to_lanes8(const void *source, int srcStride, int count, void *destination,
                                                 int dstStride) {
    const float *src = source;
    float *dst = destination;
    int p = 0;
    for (; p + 8 <= count; p += 8) {
        __m256 r[8];
        for (int c = 0; c < 8; c++) r[c] = _mm256_loadu_ps(src + (long)c * srcStride + p);
        hk_transpose8(r);
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (long)(p + i) * dstStride, r[i]);
    }
    for (; p < count; p++)
        for (int c = 0; c < 8; c++) memcpy(dst + (long)p * dstStride + c, src + (long)c * srcStride + p, 4);
}

#endif
