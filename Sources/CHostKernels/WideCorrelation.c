#include "CHostKernels.h"

#include <string.h>

// Stride-1 correlations of zero-padded images on the "wide" grid, AVX2/FMA.
//
// An image padded to (channels, paddedHeight, paddedWidth) is read as one
// long row per channel: output position q = y*paddedWidth + x reads
// in[offsets[k] + q] for tap k, so every tap is one contiguous run of the
// whole map and no columns (im2col) are written. Positions with x >= outWidth
// (the last kW - 1 of each wide row) are computed and dropped (forward) or
// carry a zero gradient (weight gradient).

// Both copies below write each padded row as zeros, one contiguous run of
// the source row and zeros, with no per-element test: the training step
// runs them before every padded or strided convolution and its gradients,
// and per-element bounds tests cost about as much as the copy (a C harness,
// 128 images of 16×28×28 on one core: pad 311 → 237 µs, stride-2 phases
// 935 → 584 µs). hk_infer_phase_planes16's AVX-512 gathers were slower in
// training's 1×1 stride-2 shortcuts (0.64 → 1.03 ms a forward pass).

void hk_pad_planes(const float *in, int planes, int height, int width, int padding, float *out) {
    int paddedHeight = height + 2 * padding, paddedWidth = width + 2 * padding;
    long plane = (long)height * width, paddedPlane = (long)paddedHeight * paddedWidth;
    if (padding == 0) {
        memcpy(out, in, sizeof(float) * plane * planes);
        return;
    }
    // Row y's zeros after its values and the next row's before them are one run of 2·padding.
    long top = (long)padding * paddedWidth + padding;
    for (int c = 0; c < planes; c++) {
        const float *source = in + c * plane;
        float *target = out + c * paddedPlane;
        memset(target, 0, sizeof(float) * top);
        for (int y = 0; y < height; y++) {
            float *row = target + top + (long)y * paddedWidth;
            const float *line = source + (long)y * width;
            for (int x = 0; x < width; x++) row[x] = line[x];
            for (int x = width; x < width + 2 * padding; x++) row[x] = 0;
        }
        long written = top + (long)height * paddedWidth;
        memset(target + written, 0, sizeof(float) * (paddedPlane - written));
    }
}

void hk_phase_planes(const float *in, int planes, int height, int width, int padding, int stride, int phasesHigh,
                     int phasesWide, int phaseHeight, int phaseWidth, float *out) {
    long phasePlane = (long)phaseHeight * phaseWidth;
    for (int a = 0; a < phasesHigh; a++) {
        for (int b = 0; b < phasesWide; b++) {
            float *phase = out + (long)(a * phasesWide + b) * planes * phasePlane;
            // Column v reads x = stride·v + shift: inside the image for v in [first, end).
            int shift = b - padding;
            int first = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
            int end = width - 1 - shift < 0 ? 0 : (width - 1 - shift) / stride + 1;
            if (end > phaseWidth) end = phaseWidth;
            if (first > end) first = end;
            for (int c = 0; c < planes; c++) {
                const float *source = in + (long)c * height * width;
                float *target = phase + c * phasePlane;
                for (int u = 0; u < phaseHeight; u++) {
                    int y = stride * u + a - padding;
                    float *row = target + (long)u * phaseWidth;
                    if (y < 0 || y >= height) {
                        for (int v = 0; v < phaseWidth; v++) row[v] = 0;
                        continue;
                    }
                    const float *line = source + (long)y * width + shift;
                    for (int v = 0; v < first; v++) row[v] = 0;
                    // A literal stride of 2 (every strided layer of the built-in models) lets the
                    // compiler load pairs and keep the even lanes.
                    if (stride == 2) {
                        for (int v = first; v < end; v++) row[v] = line[2 * v];
                    } else {
                        for (int v = first; v < end; v++) row[v] = line[stride * v];
                    }
                    for (int v = end; v < phaseWidth; v++) row[v] = 0;
                }
            }
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define HK_TARGET __attribute__((target("avx2,fma")))

HK_TARGET
void hk_wide_correlate(const float *in, const int *offsets, int taps, const float *weightsT, int outChannels,
                       int outPad, int length, float *out, int outStride) {
    int vectors = (length + 7) / 8;
    for (int o0 = 0; o0 < outChannels; o0 += 6) {
        const float *w = weightsT + o0;
        int valid = outChannels - o0 < 6 ? outChannels - o0 : 6;
        // 6 channels × 2 vectors = 12 accumulators, 2 inputs and 1 weight:
        // 15 of the 16 registers, so nothing spills. A short last block
        // repeats its last vector (equal values written twice).
        for (int v = 0; v < vectors; v += 2) {
            int q0 = 8 * v, q1 = 8 * (v + 1 < vectors ? v + 1 : vectors - 1);
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
            __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0;
            for (int k = 0; k < taps; k++) {
                const float *p = in + offsets[k];
                __m256 v0 = _mm256_loadu_ps(p + q0), v1 = _mm256_loadu_ps(p + q1);
                const float *wk = w + (long)k * outPad;
                __m256 s = _mm256_broadcast_ss(wk);
                a0 = _mm256_fmadd_ps(s, v0, a0); b0 = _mm256_fmadd_ps(s, v1, b0);
                s = _mm256_broadcast_ss(wk + 1);
                a1 = _mm256_fmadd_ps(s, v0, a1); b1 = _mm256_fmadd_ps(s, v1, b1);
                s = _mm256_broadcast_ss(wk + 2);
                a2 = _mm256_fmadd_ps(s, v0, a2); b2 = _mm256_fmadd_ps(s, v1, b2);
                s = _mm256_broadcast_ss(wk + 3);
                a3 = _mm256_fmadd_ps(s, v0, a3); b3 = _mm256_fmadd_ps(s, v1, b3);
                s = _mm256_broadcast_ss(wk + 4);
                a4 = _mm256_fmadd_ps(s, v0, a4); b4 = _mm256_fmadd_ps(s, v1, b4);
                s = _mm256_broadcast_ss(wk + 5);
                a5 = _mm256_fmadd_ps(s, v0, a5); b5 = _mm256_fmadd_ps(s, v1, b5);
            }
            __m256 sa[6] = {a0, a1, a2, a3, a4, a5}, sb[6] = {b0, b1, b2, b3, b4, b5};
            for (int t = 0; t < valid; t++) {
                float *r = out + (long)(o0 + t) * outStride;
                _mm256_storeu_ps(r + q0, sa[t]);
                _mm256_storeu_ps(r + q1, sb[t]);
            }
        }
    }
}

/// The sum of the 8 lanes, in a fixed order.
HK_TARGET static inline float hk_wide_sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

HK_TARGET
void hk_wide_weight_gradient(const float *in, long inStride, const int *offsets, int taps, const float *gradOut,
                             int gradStride, long gradImageStride, int outChannels, int length, int images,
                             float *gradWeight) {
    int vectors = (length + 7) / 8;
    for (int o0 = 0; o0 < outChannels; o0 += 4) {
        const float *g0p = gradOut + (long)o0 * gradStride;
        const float *g1p = gradOut + (long)(o0 + 1 < outChannels ? o0 + 1 : outChannels - 1) * gradStride;
        const float *g2p = gradOut + (long)(o0 + 2 < outChannels ? o0 + 2 : outChannels - 1) * gradStride;
        const float *g3p = gradOut + (long)(o0 + 3 < outChannels ? o0 + 3 : outChannels - 1) * gradStride;
        // 4 channels × 3 taps = 12 accumulators; a short last block repeats
        // its last channel or tap (computed, not added).
        for (int k0 = 0; k0 < taps; k0 += 3) {
            const float *i0 = in + offsets[k0];
            const float *i1 = in + offsets[k0 + 1 < taps ? k0 + 1 : taps - 1];
            const float *i2 = in + offsets[k0 + 2 < taps ? k0 + 2 : taps - 1];
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
            __m256 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
            for (int b = 0; b < images; b++) {
                long fi = b * inStride, fg = b * gradImageStride;
                for (int q = 0; q < 8 * vectors; q += 8) {
                    __m256 v0 = _mm256_loadu_ps(i0 + fi + q), v1 = _mm256_loadu_ps(i1 + fi + q);
                    __m256 v2 = _mm256_loadu_ps(i2 + fi + q);
                    __m256 g = _mm256_loadu_ps(g0p + fg + q);
                    c00 = _mm256_fmadd_ps(g, v0, c00); c01 = _mm256_fmadd_ps(g, v1, c01); c02 = _mm256_fmadd_ps(g, v2, c02);
                    g = _mm256_loadu_ps(g1p + fg + q);
                    c10 = _mm256_fmadd_ps(g, v0, c10); c11 = _mm256_fmadd_ps(g, v1, c11); c12 = _mm256_fmadd_ps(g, v2, c12);
                    g = _mm256_loadu_ps(g2p + fg + q);
                    c20 = _mm256_fmadd_ps(g, v0, c20); c21 = _mm256_fmadd_ps(g, v1, c21); c22 = _mm256_fmadd_ps(g, v2, c22);
                    g = _mm256_loadu_ps(g3p + fg + q);
                    c30 = _mm256_fmadd_ps(g, v0, c30); c31 = _mm256_fmadd_ps(g, v1, c31); c32 = _mm256_fmadd_ps(g, v2, c32);
                }
            }
            float sums[4][3] = {
                {hk_wide_sum8(c00), hk_wide_sum8(c01), hk_wide_sum8(c02)},
                {hk_wide_sum8(c10), hk_wide_sum8(c11), hk_wide_sum8(c12)},
                {hk_wide_sum8(c20), hk_wide_sum8(c21), hk_wide_sum8(c22)},
                {hk_wide_sum8(c30), hk_wide_sum8(c31), hk_wide_sum8(c32)}};
            for (int t = 0; t < 4 && o0 + t < outChannels; t++) {
                for (int u = 0; u < 3 && k0 + u < taps; u++) gradWeight[(long)(o0 + t) * taps + k0 + u] += sums[t][u];
            }
        }
    }
}

// The same two kernels with 16-lane AVX-512 vectors, for CPUs that run them
// at full width (twice the multiply-adds per instruction). The forward
// kernel's sums are the AVX2 kernel's, element for element (each output is
// one lane's sum over the taps in order), so its results are identical; the
// weight gradient's partial sums have 16 lanes instead of 8.

#define HK_TARGET512 __attribute__((target("avx512f,avx2,fma")))

int hk_has_avx512(void) {
    static int answer = -1;
    if (answer < 0) {
        __builtin_cpu_init();
        answer = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return answer;
}

HK_TARGET512
void hk_wide_correlate16(const float *in, const int *offsets, int taps, const float *weightsT, int outChannels,
                         int outPad, int length, float *out, int outStride) {
    int vectors = (length + 15) / 16;
    for (int o0 = 0; o0 < outChannels; o0 += 8) {
        const float *w = weightsT + o0;
        int valid = outChannels - o0 < 8 ? outChannels - o0 : 8;
        // 8 channels × 2 vectors = 16 accumulators (of 32 registers); the
        // weights are broadcast from memory inside the multiply-adds.
        for (int v = 0; v < vectors; v += 2) {
            int q0 = 16 * v, q1 = 16 * (v + 1 < vectors ? v + 1 : vectors - 1);
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
            for (int k = 0; k < taps; k++) {
                const float *p = in + offsets[k];
                __m512 v0 = _mm512_loadu_ps(p + q0), v1 = _mm512_loadu_ps(p + q1);
                const float *wk = w + (long)k * outPad;
#define HK_TAP(t) do { __m512 s = _mm512_set1_ps(wk[t]); \
    a##t = _mm512_fmadd_ps(s, v0, a##t); b##t = _mm512_fmadd_ps(s, v1, b##t); } while (0)
                HK_TAP(0); HK_TAP(1); HK_TAP(2); HK_TAP(3); HK_TAP(4); HK_TAP(5); HK_TAP(6); HK_TAP(7);
#undef HK_TAP
            }
            __m512 sa[8] = {a0, a1, a2, a3, a4, a5, a6, a7}, sb[8] = {b0, b1, b2, b3, b4, b5, b6, b7};
            for (int t = 0; t < valid; t++) {
                float *r = out + (long)(o0 + t) * outStride;
                _mm512_storeu_ps(r + q0, sa[t]);
                _mm512_storeu_ps(r + q1, sb[t]);
            }
        }
    }
}

/// The sum of the 16 lanes, in a fixed order: the halves lane by lane, then
/// hk_wide_sum8's order.
HK_TARGET512 static inline float hk_wide_sum16(__m512 v) {
    __m256 half = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return hk_wide_sum8(half);
}

HK_TARGET512
void hk_wide_weight_gradient16(const float *in, long inStride, const int *offsets, int taps, const float *gradOut,
                               int gradStride, long gradImageStride, int outChannels, int length, int images,
                               float *gradWeight) {
    int vectors = (length + 15) / 16;
    for (int o0 = 0; o0 < outChannels; o0 += 4) {
        const float *g0p = gradOut + (long)o0 * gradStride;
        const float *g1p = gradOut + (long)(o0 + 1 < outChannels ? o0 + 1 : outChannels - 1) * gradStride;
        const float *g2p = gradOut + (long)(o0 + 2 < outChannels ? o0 + 2 : outChannels - 1) * gradStride;
        const float *g3p = gradOut + (long)(o0 + 3 < outChannels ? o0 + 3 : outChannels - 1) * gradStride;
        // 4 channels × 4 taps = 16 accumulators: with 4 inputs and a
        // gradient, 21 of the 32 registers (at 4 × 6 clang spills).
        for (int k0 = 0; k0 < taps; k0 += 4) {
            const float *i0 = in + offsets[k0];
            const float *i1 = in + offsets[k0 + 1 < taps ? k0 + 1 : taps - 1];
            const float *i2 = in + offsets[k0 + 2 < taps ? k0 + 2 : taps - 1];
            const float *i3 = in + offsets[k0 + 3 < taps ? k0 + 3 : taps - 1];
#define HK_ROW(t) __m512 c##t##0 = _mm512_setzero_ps(), c##t##1 = c##t##0, c##t##2 = c##t##0, c##t##3 = c##t##0
            HK_ROW(0); HK_ROW(1); HK_ROW(2); HK_ROW(3);
#undef HK_ROW
            for (int b = 0; b < images; b++) {
                long fi = b * inStride, fg = b * gradImageStride;
                for (int q = 0; q < 16 * vectors; q += 16) {
                    __m512 x0 = _mm512_loadu_ps(i0 + fi + q), x1 = _mm512_loadu_ps(i1 + fi + q);
                    __m512 x2 = _mm512_loadu_ps(i2 + fi + q), x3 = _mm512_loadu_ps(i3 + fi + q);
#define HK_FMA4(t, gp) do { __m512 g = _mm512_loadu_ps(gp + fg + q); \
    c##t##0 = _mm512_fmadd_ps(g, x0, c##t##0); c##t##1 = _mm512_fmadd_ps(g, x1, c##t##1); \
    c##t##2 = _mm512_fmadd_ps(g, x2, c##t##2); c##t##3 = _mm512_fmadd_ps(g, x3, c##t##3); } while (0)
                    HK_FMA4(0, g0p); HK_FMA4(1, g1p); HK_FMA4(2, g2p); HK_FMA4(3, g3p);
#undef HK_FMA4
                }
            }
            float sums[4][4] = {
                {hk_wide_sum16(c00), hk_wide_sum16(c01), hk_wide_sum16(c02), hk_wide_sum16(c03)},
                {hk_wide_sum16(c10), hk_wide_sum16(c11), hk_wide_sum16(c12), hk_wide_sum16(c13)},
                {hk_wide_sum16(c20), hk_wide_sum16(c21), hk_wide_sum16(c22), hk_wide_sum16(c23)},
                {hk_wide_sum16(c30), hk_wide_sum16(c31), hk_wide_sum16(c32), hk_wide_sum16(c33)}};
            for (int t = 0; t < 4 && o0 + t < outChannels; t++) {
                for (int u = 0; u < 4 && k0 + u < taps; u++) gradWeight[(long)(o0 + t) * taps + k0 + u] += sums[t][u];
            }
        }
    }
}

#else

int hk_has_avx512(void) { return 0; }
void hk_wide_correlate16(const float *in, const int *offsets, int taps, const float *weightsT, int outChannels,
                         int outPad, int length, float *out, int outStride) {}
void hk_wide_weight_gradient16(const float *in, long inStride, const int *offsets, int taps, const float *gradOut,
                               int gradStride, long gradImageStride, int outChannels, int length, int images,
                               float *gradWeight) {}
void hk_wide_correlate(const float *in, const int *offsets, int taps, const float *weightsT, int outChannels,
                       int outPad, int length, float *out, int outStride) {}
void hk_wide_weight_gradient(const float *in, long inStride, const int *offsets, int taps, const float *gradOut,
                             int gradStride, long gradImageStride, int outChannels, int length, int images,
                             float *gradWeight) {}

#endif
