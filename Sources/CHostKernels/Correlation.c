#include "CHostKernels.h"

// Direct 2-D correlations (stride 1, no padding) and their weight gradients,
// AVX2/FMA, and the check for those instructions that every AVX2 path of
// this library asks first.

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

int hk_has_avx2_fma(void) {
    static int answer = -1;
    if (answer < 0) {
        __builtin_cpu_init();
        answer = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return answer;
}

#define HK_TARGET __attribute__((target("avx2,fma")))

/// The start of each 8-wide run of a row of `outWidth` (>= 8) outputs: 0, 8, …,
/// and a last run ending at outWidth that may overlap the one before.
/// `fresh[r]` is the first lane of run r not covered by an earlier run.
static int hk_runs(int outWidth, int *starts, int *fresh) {
    int count = 0, covered = 0;
    for (int x = 0; covered < outWidth; x += 8) {
        int start = x + 8 <= outWidth ? x : outWidth - 8;
        starts[count] = start;
        fresh[count] = covered - start;
        covered = start + 8;
        count += 1;
    }
    return count;
}

HK_TARGET
void hk_correlate_image(const float *in, int width, const int *offsets, int taps,
                        const float *weightsT, int outChannels, int outPad,
                        int outHeight, int outWidth, float *out) {
    int starts[64], fresh[64];
    int runsPerRow = hk_runs(outWidth, starts, fresh);
    int runs = runsPerRow * outHeight;
    int plane = outHeight * outWidth;
    for (int o0 = 0; o0 < outChannels; o0 += 4) {
        const float *w = weightsT + o0;
        // Two runs at a time (4 channels × 2 runs = 8 accumulators); an odd
        // last run is computed twice (equal values written twice).
        for (int r = 0; r < runs; r += 2) {
            int r1 = r + 1 < runs ? r + 1 : r;
            int y0 = r / runsPerRow, x0 = starts[r % runsPerRow];
            int y1 = r1 / runsPerRow, x1 = starts[r1 % runsPerRow];
            const float *p0 = in + y0 * width + x0, *p1 = in + y1 * width + x1;
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
            __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
            for (int k = 0; k < taps; k++) {
                __m256 v0 = _mm256_loadu_ps(p0 + offsets[k]);
                __m256 v1 = _mm256_loadu_ps(p1 + offsets[k]);
                const float *wk = w + k * outPad;
                __m256 w0 = _mm256_broadcast_ss(wk), w1 = _mm256_broadcast_ss(wk + 1);
                __m256 w2 = _mm256_broadcast_ss(wk + 2), w3 = _mm256_broadcast_ss(wk + 3);
                a00 = _mm256_fmadd_ps(w0, v0, a00); a10 = _mm256_fmadd_ps(w0, v1, a10);
                a01 = _mm256_fmadd_ps(w1, v0, a01); a11 = _mm256_fmadd_ps(w1, v1, a11);
                a02 = _mm256_fmadd_ps(w2, v0, a02); a12 = _mm256_fmadd_ps(w2, v1, a12);
                a03 = _mm256_fmadd_ps(w3, v0, a03); a13 = _mm256_fmadd_ps(w3, v1, a13);
            }
            float *q0 = out + o0 * plane + y0 * outWidth + x0;
            float *q1 = out + o0 * plane + y1 * outWidth + x1;
            int valid = outChannels - o0;
            _mm256_storeu_ps(q0, a00); _mm256_storeu_ps(q1, a10);
            if (valid > 1) { _mm256_storeu_ps(q0 + plane, a01); _mm256_storeu_ps(q1 + plane, a11); }
            if (valid > 2) { _mm256_storeu_ps(q0 + 2 * plane, a02); _mm256_storeu_ps(q1 + 2 * plane, a12); }
            if (valid > 3) { _mm256_storeu_ps(q0 + 3 * plane, a03); _mm256_storeu_ps(q1 + 3 * plane, a13); }
        }
    }
}

/// The sum of the 8 lanes, in a fixed order.
HK_TARGET static inline float hk_sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// gradWeight += the weight gradient of images [b0, b1): 4 output channels ×
/// 3 taps = 12 accumulators; a short last block repeats its last channel or
/// tap (computed, not stored). Lane sums in a fixed order.
HK_TARGET
static void hk_weight_gradient_chunk(const float *in, int inStride, int width, const int *offsets, int taps,
                                     const float *gradOut, int gradOutStride, int outChannels,
                                     int outHeight, int outWidth, int b0, int b1, int runsPerRow,
                                     const int *starts, const __m256 *masks, int plane, float *gradWeight) {
    for (int o0 = 0; o0 < outChannels; o0 += 4) {
        int oc[4];
        for (int t = 0; t < 4; t++) oc[t] = (o0 + t < outChannels ? o0 + t : outChannels - 1) * plane;
        for (int k0 = 0; k0 < taps; k0 += 3) {
            int k1 = k0 + 1 < taps ? k0 + 1 : taps - 1, k2 = k0 + 2 < taps ? k0 + 2 : taps - 1;
            int f0 = offsets[k0], f1 = offsets[k1], f2 = offsets[k2];
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
            __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
            for (int b = b0; b < b1; b++) {
                const float *ib = in + (long)b * inStride, *gb = gradOut + (long)b * gradOutStride;
                for (int y = 0; y < outHeight; y++) {
                    for (int r = 0; r < runsPerRow; r++) {
                        int x = starts[r];
                        const float *ip = ib + y * width + x;
                        const float *gp = gb + y * outWidth + x;
                        // One gradient vector live at a time: 12 accumulators + 3
                        // inputs + 1 gradient fill the 16 registers without spilling.
                        __m256 v0 = _mm256_loadu_ps(ip + f0), v1 = _mm256_loadu_ps(ip + f1);
                        __m256 v2 = _mm256_loadu_ps(ip + f2);
                        __m256 g = _mm256_and_ps(masks[r], _mm256_loadu_ps(gp + oc[0]));
                        c00 = _mm256_fmadd_ps(g, v0, c00); c01 = _mm256_fmadd_ps(g, v1, c01); c02 = _mm256_fmadd_ps(g, v2, c02);
                        g = _mm256_and_ps(masks[r], _mm256_loadu_ps(gp + oc[1]));
                        c10 = _mm256_fmadd_ps(g, v0, c10); c11 = _mm256_fmadd_ps(g, v1, c11); c12 = _mm256_fmadd_ps(g, v2, c12);
                        g = _mm256_and_ps(masks[r], _mm256_loadu_ps(gp + oc[2]));
                        c20 = _mm256_fmadd_ps(g, v0, c20); c21 = _mm256_fmadd_ps(g, v1, c21); c22 = _mm256_fmadd_ps(g, v2, c22);
                        g = _mm256_and_ps(masks[r], _mm256_loadu_ps(gp + oc[3]));
                        c30 = _mm256_fmadd_ps(g, v0, c30); c31 = _mm256_fmadd_ps(g, v1, c31); c32 = _mm256_fmadd_ps(g, v2, c32);
                    }
                }
            }
            float sums[4][3] = {
                {hk_sum8(c00), hk_sum8(c01), hk_sum8(c02)}, {hk_sum8(c10), hk_sum8(c11), hk_sum8(c12)},
                {hk_sum8(c20), hk_sum8(c21), hk_sum8(c22)}, {hk_sum8(c30), hk_sum8(c31), hk_sum8(c32)}};
            for (int t = 0; t < 4 && o0 + t < outChannels; t++) {
                for (int u = 0; u < 3 && k0 + u < taps; u++) gradWeight[(o0 + t) * taps + k0 + u] += sums[t][u];
            }
        }
    }
}

HK_TARGET
void hk_correlate_weight_gradient(const float *in, int inStride, int width, const int *offsets, int taps,
                                  const float *gradOut, int gradOutStride, int outChannels,
                                  int outHeight, int outWidth, int images, float *gradWeight) {
    int starts[64], fresh[64];
    int runsPerRow = hk_runs(outWidth, starts, fresh);
    __m256 masks[64];
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int r = 0; r < runsPerRow; r++) {
        masks[r] = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(fresh[r] - 1)));
    }
    int plane = outHeight * outWidth;
    for (int i = 0; i < outChannels * taps; i++) gradWeight[i] = 0;
    // Images in chunks small enough that a chunk's inputs and gradients stay
    // in L2 while every (channel, tap) block passes over them.
    const int chunkImages = 8;
    for (int b0 = 0; b0 < images; b0 += chunkImages) {
        int b1 = b0 + chunkImages < images ? b0 + chunkImages : images;
        hk_weight_gradient_chunk(in, inStride, width, offsets, taps, gradOut, gradOutStride, outChannels,
                                 outHeight, outWidth, b0, b1, runsPerRow, starts, masks, plane, gradWeight);
    }
}

/// gradWeightT[k*outPad + o] += Σ over images [0, images) of the chunk and
/// their pixels of in[offsets[k] + pixel] * gradOutT[pixel*outPad + o]:
/// 6 taps × 2 channel vectors = 12 accumulators, lanes = output channels.
/// A short last block repeats its last tap or vector (computed, not added).
HK_TARGET
static void hk_weight_gradient_wide_chunk(const float *in, int inStride, int width, const int *offsets, int taps,
                                          const float *gradOutT, int outPad, int outHeight, int outWidth,
                                          int images, float *gradWeightT) {
    int vectors = outPad / 8, plane = outHeight * outWidth;
    for (int k0 = 0; k0 < taps; k0 += 6) {
        int f[6];
        for (int t = 0; t < 6; t++) f[t] = offsets[k0 + t < taps ? k0 + t : taps - 1];
        for (int v0 = 0; v0 < vectors; v0 += 2) {
            int v1 = v0 + 1 < vectors ? v0 + 1 : v0;
            __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0;
            __m256 a3 = a0, b3 = a0, a4 = a0, b4 = a0, a5 = a0, b5 = a0;
            for (int b = 0; b < images; b++) {
                const float *ib = in + (long)b * inStride;
                const float *gb = gradOutT + (long)b * plane * outPad;
                for (int y = 0; y < outHeight; y++) {
                    const float *ip = ib + y * width;
                    const float *gp = gb + (long)y * outWidth * outPad;
                    for (int x = 0; x < outWidth; x++, ip++, gp += outPad) {
                        __m256 g0 = _mm256_loadu_ps(gp + 8 * v0), g1 = _mm256_loadu_ps(gp + 8 * v1);
                        __m256 s = _mm256_broadcast_ss(ip + f[0]);
                        a0 = _mm256_fmadd_ps(s, g0, a0); b0 = _mm256_fmadd_ps(s, g1, b0);
                        s = _mm256_broadcast_ss(ip + f[1]);
                        a1 = _mm256_fmadd_ps(s, g0, a1); b1 = _mm256_fmadd_ps(s, g1, b1);
                        s = _mm256_broadcast_ss(ip + f[2]);
                        a2 = _mm256_fmadd_ps(s, g0, a2); b2 = _mm256_fmadd_ps(s, g1, b2);
                        s = _mm256_broadcast_ss(ip + f[3]);
                        a3 = _mm256_fmadd_ps(s, g0, a3); b3 = _mm256_fmadd_ps(s, g1, b3);
                        s = _mm256_broadcast_ss(ip + f[4]);
                        a4 = _mm256_fmadd_ps(s, g0, a4); b4 = _mm256_fmadd_ps(s, g1, b4);
                        s = _mm256_broadcast_ss(ip + f[5]);
                        a5 = _mm256_fmadd_ps(s, g0, a5); b5 = _mm256_fmadd_ps(s, g1, b5);
                    }
                }
            }
            __m256 sa[6] = {a0, a1, a2, a3, a4, a5}, sb[6] = {b0, b1, b2, b3, b4, b5};
            for (int t = 0; t < 6 && k0 + t < taps; t++) {
                float *row = gradWeightT + (long)(k0 + t) * outPad;
                _mm256_storeu_ps(row + 8 * v0, _mm256_add_ps(_mm256_loadu_ps(row + 8 * v0), sa[t]));
                if (v1 != v0) _mm256_storeu_ps(row + 8 * v1, _mm256_add_ps(_mm256_loadu_ps(row + 8 * v1), sb[t]));
            }
        }
    }
}

int hk_weight_gradient_wide_work(int taps, int outChannels, int outHeight, int outWidth) {
    int outPad = (outChannels + 7) / 8 * 8;
    return 8 * outHeight * outWidth * outPad + taps * outPad;
}

HK_TARGET
void hk_correlate_weight_gradient_wide(const float *in, int inStride, int width, const int *offsets, int taps,
                                       const float *gradOut, int gradOutStride, int outChannels,
                                       int outHeight, int outWidth, int images, float *work, float *gradWeight) {
    const int chunkImages = 8;
    int outPad = (outChannels + 7) / 8 * 8, plane = outHeight * outWidth;
    float *gradOutT = work, *gradWeightT = work + (long)chunkImages * plane * outPad;
    for (long i = 0; i < (long)taps * outPad; i++) gradWeightT[i] = 0;
    for (int b0 = 0; b0 < images; b0 += chunkImages) {
        int count = b0 + chunkImages < images ? chunkImages : images - b0;
        // gradOutT[b][pixel][o]: each pixel's channels side by side, zero-padded to outPad.
        for (int b = 0; b < count; b++) {
            const float *g = gradOut + (long)(b0 + b) * gradOutStride;
            float *t = gradOutT + (long)b * plane * outPad;
            for (int p = 0; p < plane; p++) {
                for (int o = 0; o < outChannels; o++) t[p * outPad + o] = g[o * plane + p];
                for (int o = outChannels; o < outPad; o++) t[p * outPad + o] = 0;
            }
        }
        hk_weight_gradient_wide_chunk(in + (long)b0 * inStride, inStride, width, offsets, taps,
                                      gradOutT, outPad, outHeight, outWidth, count, gradWeightT);
    }
    for (int o = 0; o < outChannels; o++)
        for (int k = 0; k < taps; k++) gradWeight[o * taps + k] = gradWeightT[(long)k * outPad + o];
}

#else

int hk_has_avx2_fma(void) { return 0; }
void hk_correlate_image(const float *in, int width, const int *offsets, int taps,
                        const float *weightsT, int outChannels, int outPad,
                        int outHeight, int outWidth, float *out) {}
void hk_correlate_weight_gradient(const float *in, int inStride, int width, const int *offsets, int taps,
                                  const float *gradOut, int gradOutStride, int outChannels,
                                  int outHeight, int outWidth, int images, float *gradWeight) {}
int hk_weight_gradient_wide_work(int taps, int outChannels, int outHeight, int outWidth) { return 0; }
void hk_correlate_weight_gradient_wide(const float *in, int inStride, int width, const int *offsets, int taps,
                                       const float *gradOut, int gradOutStride, int outChannels,
                                       int outHeight, int outWidth, int images, float *work, float *gradWeight) {}

#endif

void hk_tap_offsets(int channels, int height, int width, int kernelHeight, int kernelWidth, int *offsets) {
    int k = 0;
    for (int c = 0; c < channels; c++)
        for (int i = 0; i < kernelHeight; i++)
            for (int j = 0; j < kernelWidth; j++) offsets[k++] = c * height * width + i * width + j;
}
