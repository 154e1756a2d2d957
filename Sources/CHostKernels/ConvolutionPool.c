#include "CHostKernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include "Transpose8.h"

// A correlation and its 2×2 max-pool, one image at a time, output channels in
// the vector lanes: each tap is one weight vector (or two) times the input
// pixel broadcast, so no lane is wasted on short rows, and the four pixels of
// a pool window are in registers when the pool takes their maximum. Only the
// windows that floor mode keeps are computed.

/// The max and argmax over a window's four pixel vectors, in row-major
/// order; a later pixel wins only when strictly larger (ties to the first,
/// NaN never wins). `index` holds the flat output index of the first pixel.
HK_TARGET static inline void hk_window_max(__m256 p00, __m256 p01, __m256 p10, __m256 p11, int first,
                                           int outWidth, __m256 *best, __m256 *winner) {
    __m256 b = p00;
    __m256 w = _mm256_castsi256_ps(_mm256_set1_epi32(first));
    __m256 m = _mm256_cmp_ps(p01, b, _CMP_GT_OQ);
    b = _mm256_blendv_ps(b, p01, m);
    w = _mm256_blendv_ps(w, _mm256_castsi256_ps(_mm256_set1_epi32(first + 1)), m);
    m = _mm256_cmp_ps(p10, b, _CMP_GT_OQ);
    b = _mm256_blendv_ps(b, p10, m);
    w = _mm256_blendv_ps(w, _mm256_castsi256_ps(_mm256_set1_epi32(first + outWidth)), m);
    m = _mm256_cmp_ps(p11, b, _CMP_GT_OQ);
    b = _mm256_blendv_ps(b, p11, m);
    w = _mm256_blendv_ps(w, _mm256_castsi256_ps(_mm256_set1_epi32(first + outWidth + 1)), m);
    *best = b;
    *winner = w;
}

/// 16 lanes (two vectors) per pixel: one window at a time keeps 8 sums.
HK_TARGET
static void hk_conv_pool_windows16(const float *in, int width, const int *offsets, int taps, const float *weightsT,
                                   int pooledHeight, int pooledWidth, int outWidth, float *best, float *winner) {
    for (int qy = 0; qy < pooledHeight; qy++) {
        for (int qx = 0; qx < pooledWidth; qx++) {
            const float *p = in + 2 * qy * width + 2 * qx;
            __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
            for (int k = 0; k < taps; k++) {
                const float *t = p + offsets[k];
                __m256 lo = _mm256_loadu_ps(weightsT + 16 * k), hi = _mm256_loadu_ps(weightsT + 16 * k + 8);
                __m256 v = _mm256_broadcast_ss(t);
                a0 = _mm256_fmadd_ps(v, lo, a0); b0 = _mm256_fmadd_ps(v, hi, b0);
                v = _mm256_broadcast_ss(t + 1);
                a1 = _mm256_fmadd_ps(v, lo, a1); b1 = _mm256_fmadd_ps(v, hi, b1);
                v = _mm256_broadcast_ss(t + width);
                a2 = _mm256_fmadd_ps(v, lo, a2); b2 = _mm256_fmadd_ps(v, hi, b2);
                v = _mm256_broadcast_ss(t + width + 1);
                a3 = _mm256_fmadd_ps(v, lo, a3); b3 = _mm256_fmadd_ps(v, hi, b3);
            }
            int q = qy * pooledWidth + qx, first = 2 * qy * outWidth + 2 * qx;
            __m256 m, w;
            hk_window_max(a0, a1, a2, a3, first, outWidth, &m, &w);
            _mm256_storeu_ps(best + 16 * q, m); _mm256_storeu_ps(winner + 16 * q, w);
            hk_window_max(b0, b1, b2, b3, first, outWidth, &m, &w);
            _mm256_storeu_ps(best + 16 * q + 8, m); _mm256_storeu_ps(winner + 16 * q + 8, w);
        }
    }
}

/// 8 lanes per pixel: two windows side by side keep 8 sums (a lone last
/// window of a row is computed twice and stored once).
HK_TARGET
static void hk_conv_pool_windows8(const float *in, int width, const int *offsets, int taps, const float *weightsT,
                                  int pooledHeight, int pooledWidth, int outWidth, float *best, float *winner) {
    for (int qy = 0; qy < pooledHeight; qy++) {
        for (int qx = 0; qx < pooledWidth; qx += 2) {
            int qx1 = qx + 1 < pooledWidth ? qx + 1 : qx;
            const float *p = in + 2 * qy * width + 2 * qx, *r = in + 2 * qy * width + 2 * qx1;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int k = 0; k < taps; k++) {
                __m256 w = _mm256_loadu_ps(weightsT + 8 * k);
                const float *t = p + offsets[k], *u = r + offsets[k];
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(t), w, a0);
                a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(t + 1), w, a1);
                a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(t + width), w, a2);
                a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(t + width + 1), w, a3);
                b0 = _mm256_fmadd_ps(_mm256_broadcast_ss(u), w, b0);
                b1 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + 1), w, b1);
                b2 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + width), w, b2);
                b3 = _mm256_fmadd_ps(_mm256_broadcast_ss(u + width + 1), w, b3);
            }
            int q = qy * pooledWidth + qx, q1 = qy * pooledWidth + qx1;
            __m256 m, w;
            hk_window_max(a0, a1, a2, a3, 2 * qy * outWidth + 2 * qx, outWidth, &m, &w);
            _mm256_storeu_ps(best + 8 * q, m); _mm256_storeu_ps(winner + 8 * q, w);
            hk_window_max(b0, b1, b2, b3, 2 * qy * outWidth + 2 * qx1, outWidth, &m, &w);
            _mm256_storeu_ps(best + 8 * q1, m); _mm256_storeu_ps(winner + 8 * q1, w);
        }
    }
}

/// True when the taps are a 3×3 kernel over a single input channel
/// (offsets i·width + j): the form `hk_conv_pool_windows8_3x3` serves.
static int hk_taps_are_3x3(const int *offsets, int taps, int width) {
    if (taps != 9) return 0;
    for (int k = 0; k < 9; k++)
        if (offsets[k] != (k / 3) * width + k % 3) return 0;
    return 1;
}

/// 8 lanes, a 3×3 kernel over one input channel (conv1): the nine weight
/// vectors stay in registers, and each pixel of a window's 4×4 input patch
/// is broadcast once and feeds the window's four pixels through every tap
/// that covers it (36 multiply-adds from 16 loads, where the general form
/// loads one broadcast per multiply-add and is bound by loads).
HK_TARGET
static void hk_conv_pool_windows8_3x3(const float *in, int width, const float *weightsT, int pooledHeight,
                                      int pooledWidth, int outWidth, float *best, float *winner) {
    const __m256 w00 = _mm256_loadu_ps(weightsT), w01 = _mm256_loadu_ps(weightsT + 8);
    const __m256 w02 = _mm256_loadu_ps(weightsT + 16), w10 = _mm256_loadu_ps(weightsT + 24);
    const __m256 w11 = _mm256_loadu_ps(weightsT + 32), w12 = _mm256_loadu_ps(weightsT + 40);
    const __m256 w20 = _mm256_loadu_ps(weightsT + 48), w21 = _mm256_loadu_ps(weightsT + 56);
    const __m256 w22 = _mm256_loadu_ps(weightsT + 64);
    for (int qy = 0; qy < pooledHeight; qy++) {
        for (int qx = 0; qx < pooledWidth; qx++) {
            const float *p = in + 2 * qy * width + 2 * qx;
            // s_dy_dx: the conv output at (2qy + dy, 2qx + dx); input row a
            // feeds output row dy through kernel row a − dy.
            __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00;
#define HK_ROW(a, k0, k1, k2, dy) { \
                const float *r = p + (a) * width; \
                __m256 v0 = _mm256_broadcast_ss(r), v1 = _mm256_broadcast_ss(r + 1); \
                __m256 v2 = _mm256_broadcast_ss(r + 2), v3 = _mm256_broadcast_ss(r + 3); \
                s##dy##0 = _mm256_fmadd_ps(v0, k0, s##dy##0); s##dy##1 = _mm256_fmadd_ps(v1, k0, s##dy##1); \
                s##dy##0 = _mm256_fmadd_ps(v1, k1, s##dy##0); s##dy##1 = _mm256_fmadd_ps(v2, k1, s##dy##1); \
                s##dy##0 = _mm256_fmadd_ps(v2, k2, s##dy##0); s##dy##1 = _mm256_fmadd_ps(v3, k2, s##dy##1); }
            HK_ROW(0, w00, w01, w02, 0)
            HK_ROW(1, w10, w11, w12, 0) HK_ROW(1, w00, w01, w02, 1)
            HK_ROW(2, w20, w21, w22, 0) HK_ROW(2, w10, w11, w12, 1)
            HK_ROW(3, w20, w21, w22, 1)
#undef HK_ROW
            int q = qy * pooledWidth + qx;
            __m256 m, w;
            hk_window_max(s00, s01, s10, s11, 2 * qy * outWidth + 2 * qx, outWidth, &m, &w);
            _mm256_storeu_ps(best + 8 * q, m); _mm256_storeu_ps(winner + 8 * q, w);
        }
    }
}

HK_TARGET
void hk_conv_pool_image(const float *in, int width, const int *offsets, int taps, const float *weightsT,
                        int outChannels, int outPad, int outHeight, int outWidth, float *pooled, int *argmax,
                        float *work) {
    int pooledHeight = outHeight / 2, pooledWidth = outWidth / 2, windows = pooledHeight * pooledWidth;
    float *best = work, *winner = work + (long)windows * outPad;
    if (outPad == 16)
        hk_conv_pool_windows16(in, width, offsets, taps, weightsT, pooledHeight, pooledWidth, outWidth, best, winner);
    else if (hk_taps_are_3x3(offsets, taps, width))
        hk_conv_pool_windows8_3x3(in, width, weightsT, pooledHeight, pooledWidth, outWidth, best, winner);
    else
        hk_conv_pool_windows8(in, width, offsets, taps, weightsT, pooledHeight, pooledWidth, outWidth, best, winner);
    // Window-major lanes to (channel, window) planes, 8 channels at a time;
    // a partial last group of channels goes element by element.
    for (int o0 = 0; o0 < outChannels; o0 += 8) {
        if (o0 + 8 <= outChannels) {
            hk_lanes_to_planes8(best + o0, outPad, windows, pooled + (long)o0 * windows, windows);
            hk_lanes_to_planes8(winner + o0, outPad, windows, argmax + (long)o0 * windows, windows);
        } else {
            for (int o = o0; o < outChannels; o++)
                for (int q = 0; q < windows; q++) {
                    pooled[(long)o * windows + q] = best[(long)q * outPad + o];
                    memcpy(argmax + (long)o * windows + q, winner + (long)q * outPad + o, 4);
                }
        }
    }
}

#else

void hk_conv_pool_image(const float *in, int width, const int *offsets, int taps, const float *weightsT,
                        int outChannels, int outPad, int outHeight, int outWidth, float *pooled, int *argmax,
                        float *work) {}

#endif
