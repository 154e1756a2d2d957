#include "CHostKernels.h"

// 2×2, stride-2 max-pooling (floor mode) and its gradient, AVX2: even and odd
// input columns split into vector lanes, blocks of 8 (or 4) outputs at a time.

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define HK_TARGET __attribute__((target("avx2,fma")))

/// The even and the odd elements of the 16 floats (lo, hi), in order.
HK_TARGET static inline __m256 hk_evens(__m256 lo, __m256 hi) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
}
HK_TARGET static inline __m256 hk_odds(__m256 lo, __m256 hi) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
}

/// One output row of 4 <= outWidth < 8 outputs in 4-lane blocks (the
/// 8-lane block would read past the row): as hk_max_pool2_forward.
HK_TARGET
static void hk_max_pool2_forward_row4(const float *plane, int rowStart, int width, int outWidth, float *o, int *a) {
    for (int x = 0; x < outWidth; x += 4) {
        int ox = x + 4 <= outWidth ? x : outWidth - 4;
        int top = rowStart + 2 * ox;
        const float *t = plane + top, *b = t + width;
        __m128 t0 = _mm_loadu_ps(t), t1 = _mm_loadu_ps(t + 4), b0 = _mm_loadu_ps(b), b1 = _mm_loadu_ps(b + 4);
        __m128i first = _mm_add_epi32(_mm_setr_epi32(0, 2, 4, 6), _mm_set1_epi32(top));
        __m128 best = _mm_shuffle_ps(t0, t1, 0x88);
        __m128i index = first;
        __m128 candidate = _mm_shuffle_ps(t0, t1, 0xDD);
        __m128 wins = _mm_cmpgt_ps(candidate, best);
        best = _mm_blendv_ps(best, candidate, wins);
        index = _mm_blendv_epi8(index, _mm_add_epi32(first, _mm_set1_epi32(1)), _mm_castps_si128(wins));
        candidate = _mm_shuffle_ps(b0, b1, 0x88);
        wins = _mm_cmpgt_ps(candidate, best);
        best = _mm_blendv_ps(best, candidate, wins);
        index = _mm_blendv_epi8(index, _mm_add_epi32(first, _mm_set1_epi32(width)), _mm_castps_si128(wins));
        candidate = _mm_shuffle_ps(b0, b1, 0xDD);
        wins = _mm_cmpgt_ps(candidate, best);
        best = _mm_blendv_ps(best, candidate, wins);
        index = _mm_blendv_epi8(index, _mm_add_epi32(first, _mm_set1_epi32(width + 1)), _mm_castps_si128(wins));
        _mm_storeu_ps(o + ox, best);
        _mm_storeu_si128((__m128i *)(a + ox), index);
    }
}

/// One output row's gradient, 4 <= outWidth < 8, in 4-lane blocks; returns
/// nonzero when an argmax lies outside its window.
HK_TARGET
static int hk_max_pool2_backward_row4(const float *g, const int *a, int rowStart, int width, int outWidth, float *plane) {
    int outside = 0;
    for (int x = 0; x < outWidth; x += 4) {
        int ox = x + 4 <= outWidth ? x : outWidth - 4;
        int top = rowStart + 2 * ox;
        __m128 value = _mm_loadu_ps(g + ox);
        __m128i winner = _mm_loadu_si128((const __m128i *)(a + ox));
        __m128i first = _mm_add_epi32(_mm_setr_epi32(0, 2, 4, 6), _mm_set1_epi32(top));
        __m128 m00 = _mm_castsi128_ps(_mm_cmpeq_epi32(winner, first));
        __m128 m01 = _mm_castsi128_ps(_mm_cmpeq_epi32(winner, _mm_add_epi32(first, _mm_set1_epi32(1))));
        __m128 m10 = _mm_castsi128_ps(_mm_cmpeq_epi32(winner, _mm_add_epi32(first, _mm_set1_epi32(width))));
        __m128 m11 = _mm_castsi128_ps(_mm_cmpeq_epi32(winner, _mm_add_epi32(first, _mm_set1_epi32(width + 1))));
        outside |= _mm_movemask_ps(_mm_or_ps(_mm_or_ps(m00, m01), _mm_or_ps(m10, m11))) != 0xF;
        __m128 e = _mm_and_ps(value, m00), o = _mm_and_ps(value, m01);
        _mm_storeu_ps(plane + top, _mm_unpacklo_ps(e, o));
        _mm_storeu_ps(plane + top + 4, _mm_unpackhi_ps(e, o));
        e = _mm_and_ps(value, m10); o = _mm_and_ps(value, m11);
        _mm_storeu_ps(plane + top + width, _mm_unpacklo_ps(e, o));
        _mm_storeu_ps(plane + top + width + 4, _mm_unpackhi_ps(e, o));
    }
    return outside;
}

HK_TARGET
void hk_max_pool2_forward(const float *in, int planes, int height, int width, float *out, int *argmax) {
    int outHeight = height / 2, outWidth = width / 2;
    const __m256i steps = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    for (int c = 0; c < planes; c++) {
        const float *plane = in + (long)c * height * width;
        float *o = out + (long)c * outHeight * outWidth;
        int *a = argmax + (long)c * outHeight * outWidth;
        for (int oy = 0; oy < outHeight; oy++) {
            if (outWidth < 8) {
                hk_max_pool2_forward_row4(plane, 2 * oy * width, width, outWidth, o + oy * outWidth, a + oy * outWidth);
                continue;
            }
            for (int x = 0; x < outWidth; x += 8) {
                int ox = x + 8 <= outWidth ? x : outWidth - 8;  // a short tail redoes the last full block
                int top = 2 * oy * width + 2 * ox;
                const float *t = plane + top, *b = t + width;
                __m256 t0 = _mm256_loadu_ps(t), t1 = _mm256_loadu_ps(t + 8);
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
                __m256i first = _mm256_add_epi32(steps, _mm256_set1_epi32(top));
                // Candidates in row-major order; a later one wins only when strictly larger.
                __m256 best = hk_evens(t0, t1);
                __m256i index = first;
                __m256 candidate = hk_odds(t0, t1);
                __m256 wins = _mm256_cmp_ps(candidate, best, _CMP_GT_OQ);
                best = _mm256_blendv_ps(best, candidate, wins);
                index = _mm256_blendv_epi8(index, _mm256_add_epi32(first, _mm256_set1_epi32(1)), _mm256_castps_si256(wins));
                candidate = hk_evens(b0, b1);
                wins = _mm256_cmp_ps(candidate, best, _CMP_GT_OQ);
                best = _mm256_blendv_ps(best, candidate, wins);
                index = _mm256_blendv_epi8(index, _mm256_add_epi32(first, _mm256_set1_epi32(width)), _mm256_castps_si256(wins));
                candidate = hk_odds(b0, b1);
                wins = _mm256_cmp_ps(candidate, best, _CMP_GT_OQ);
                best = _mm256_blendv_ps(best, candidate, wins);
                index = _mm256_blendv_epi8(index, _mm256_add_epi32(first, _mm256_set1_epi32(width + 1)), _mm256_castps_si256(wins));
                _mm256_storeu_ps(o + oy * outWidth + ox, best);
                _mm256_storeu_si256((__m256i *)(a + oy * outWidth + ox), index);
            }
        }
    }
}

HK_TARGET
int hk_max_pool2_backward(const float *gradOut, const int *argmax, int planes, int height, int width, float *gradIn) {
    int outHeight = height / 2, outWidth = width / 2;
    const __m256i steps = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    int outside = 0;
    for (int c = 0; c < planes; c++) {
        float *plane = gradIn + (long)c * height * width;
        const float *g = gradOut + (long)c * outHeight * outWidth;
        const int *a = argmax + (long)c * outHeight * outWidth;
        for (int oy = 0; oy < outHeight; oy++) {
            if (outWidth < 8) {
                outside |= hk_max_pool2_backward_row4(g + oy * outWidth, a + oy * outWidth, 2 * oy * width, width,
                                                      outWidth, plane);
            } else
            for (int x = 0; x < outWidth; x += 8) {
                int ox = x + 8 <= outWidth ? x : outWidth - 8;  // a short tail rewrites equal values
                int top = 2 * oy * width + 2 * ox;
                __m256 value = _mm256_loadu_ps(g + oy * outWidth + ox);
                __m256i winner = _mm256_loadu_si256((const __m256i *)(a + oy * outWidth + ox));
                __m256i first = _mm256_add_epi32(steps, _mm256_set1_epi32(top));
                __m256 m00 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(winner, first));
                __m256 m01 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(winner, _mm256_add_epi32(first, _mm256_set1_epi32(1))));
                __m256 m10 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(winner, _mm256_add_epi32(first, _mm256_set1_epi32(width))));
                __m256 m11 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(winner, _mm256_add_epi32(first, _mm256_set1_epi32(width + 1))));
                __m256 any = _mm256_or_ps(_mm256_or_ps(m00, m01), _mm256_or_ps(m10, m11));
                outside |= _mm256_movemask_ps(any) != 0xFF;
                __m256 e = _mm256_and_ps(value, m00), o = _mm256_and_ps(value, m01);
                __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);
                _mm256_storeu_ps(plane + top, _mm256_permute2f128_ps(lo, hi, 0x20));
                _mm256_storeu_ps(plane + top + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
                e = _mm256_and_ps(value, m10); o = _mm256_and_ps(value, m11);
                lo = _mm256_unpacklo_ps(e, o); hi = _mm256_unpackhi_ps(e, o);
                _mm256_storeu_ps(plane + top + width, _mm256_permute2f128_ps(lo, hi, 0x20));
                _mm256_storeu_ps(plane + top + width + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
            }
            if (width & 1) { plane[2 * oy * width + width - 1] = 0; plane[(2 * oy + 1) * width + width - 1] = 0; }
        }
        if (height & 1) for (int x = 0; x < width; x++) plane[(height - 1) * width + x] = 0;
    }
    return outside;
}

#else

void hk_max_pool2_forward(const float *in, int planes, int height, int width, float *out, int *argmax) {}
int hk_max_pool2_backward(const float *gradOut, const int *argmax, int planes, int height, int width, float *gradIn) { return 1; }

#endif
