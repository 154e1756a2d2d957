#include "PooledGather.h"

// The weight gradient of a correlation followed by a 2×2 max-pool: the
// input channels in the lanes (C = 8, 3×3), else the output channels in the
// lanes, else scalar loops (see PooledGather.h).

static int hk_weight_gradient_scalar(const float *in, int channels, int height, int width, int kernelHeight,
                                     int kernelWidth, const float *gradPooled, const int *argmax, int outChannels,
                                     int outHeight, int outWidth, int images, float *work, float *gradWeight) {
    int pooledHeight = outHeight / 2, pooledWidth = outWidth / 2, windows = pooledHeight * pooledWidth;
    int taps = channels * kernelHeight * kernelWidth, plane = height * width;
    float *values = work;
    int *offsets = (int *)(work + windows);
    memset(gradWeight, 0, sizeof(float) * (size_t)outChannels * taps);
    for (int b = 0; b < images; b++) {
        const float *image = in + (long)b * channels * plane;
        for (int o = 0; o < outChannels; o++) {
            long q0 = ((long)b * outChannels + o) * windows;
            int count = hk_gather_winners(gradPooled + q0, argmax + q0, pooledHeight, pooledWidth, outWidth, width,
                                          values, offsets);
            if (count < 0) return 1;
            float *gw = gradWeight + (long)o * taps;
            for (int n = 0; n < count; n++) {
                const float *patch = image + offsets[n];
                for (int c = 0; c < channels; c++)
                    for (int i = 0; i < kernelHeight; i++)
                        for (int j = 0; j < kernelWidth; j++)
                            gw[(c * kernelHeight + i) * kernelWidth + j] += values[n] * patch[c * plane + i * width + j];
            }
        }
    }
    return 0;
}

#if defined(__x86_64__) || defined(__i386__)

static int hk_output_lanes_path(void) { return hk_has_avx2_fma(); }

/// Input channels in the lanes (C = 8, 3×3). `work`: images·H·W·8 floats
/// (the images channels-last), then the gathers and the window tables (4·windows + 16).
HK_TARGET
static int hk_weight_gradient_c8(const float *in, int height, int width, const float *gradPooled, const int *argmax,
                                 int outChannels, int outHeight, int outWidth, int images, float *work,
                                 float *gradWeight) {
    int pooledHeight = outHeight / 2, pooledWidth = outWidth / 2, windows = pooledHeight * pooledWidth;
    int plane = height * width;
    float *lanes = work, *values = work + (long)images * plane * 8;
    int *offsets = (int *)(values + windows + 8);
    hk_windows table = hk_window_tables(pooledHeight, pooledWidth, outWidth, width, offsets + windows + 8);
    pthread_once(&hk_pack_once, hk_make_pack_table);
    for (int b = 0; b < images; b++)
        hk_planes_to_lanes8(in + (long)b * 8 * plane, plane, plane, lanes + (long)b * plane * 8, 8);
    const int row = 8 * width;
    for (int o = 0; o < outChannels; o++) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0, s8 = s0;
        for (int b = 0; b < images; b++) {
            long q0 = ((long)b * outChannels + o) * windows;
            int count = hk_gather_winners8(gradPooled + q0, argmax + q0, windows, table, outWidth, width, values,
                                           offsets);
            if (count < 0) return 1;
            const float *image = lanes + (long)b * plane * 8;
            for (int n = 0; n < count; n++) {
                const float *p = image + 8 * offsets[n];
                __m256 v = _mm256_set1_ps(values[n]);
                s0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(p), s0);
                s1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(p + 8), s1);
                s2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(p + 16), s2);
                s3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(p + row), s3);
                s4 = _mm256_fmadd_ps(v, _mm256_loadu_ps(p + row + 8), s4);
                s5 = _mm256_fmadd_ps(v, _mm256_loadu_ps(p + row + 16), s5);
                s6 = _mm256_fmadd_ps(v, _mm256_loadu_ps(p + 2 * row), s6);
                s7 = _mm256_fmadd_ps(v, _mm256_loadu_ps(p + 2 * row + 8), s7);
                s8 = _mm256_fmadd_ps(v, _mm256_loadu_ps(p + 2 * row + 16), s8);
            }
        }
        // Sums are (kernel position, channel); the weight is (channel, kernel position).
        float sums[9][8];
        _mm256_storeu_ps(sums[0], s0); _mm256_storeu_ps(sums[1], s1); _mm256_storeu_ps(sums[2], s2);
        _mm256_storeu_ps(sums[3], s3); _mm256_storeu_ps(sums[4], s4); _mm256_storeu_ps(sums[5], s5);
        _mm256_storeu_ps(sums[6], s6); _mm256_storeu_ps(sums[7], s7); _mm256_storeu_ps(sums[8], s8);
        float *gw = gradWeight + (long)o * 72;
        for (int c = 0; c < 8; c++)
            for (int t = 0; t < 9; t++) gw[c * 9 + t] = sums[t][c];
    }
    return 0;
}

/// The sums of 9 taps × 8 output channels over one image's windows: gT and
/// aT are the pooled gradient and argmax with the channels in the lanes
/// (window-major); each window's gradient goes to the pixel its argmax names.
/// `valid` keeps, per lane, whether every argmax named a pixel of its window.
HK_TARGET
static void hk_tap_block9x8(const float *image, const float *gT, const float *aT, int pooledHeight, int pooledWidth,
                            int outWidth, int width, const int *offsets, __m256 *sums, __m256i *valid) {
    __m256 s0 = sums[0], s1 = sums[1], s2 = sums[2], s3 = sums[3], s4 = sums[4];
    __m256 s5 = sums[5], s6 = sums[6], s7 = sums[7], s8 = sums[8];
    __m256i ok = *valid;
    const int f0 = offsets[0], f1 = offsets[1], f2 = offsets[2], f3 = offsets[3], f4 = offsets[4];
    const int f5 = offsets[5], f6 = offsets[6], f7 = offsets[7], f8 = offsets[8];
    for (int qy = 0; qy < pooledHeight; qy++) {
        for (int qx = 0; qx < pooledWidth; qx++) {
            int q = qy * pooledWidth + qx, first = 2 * qy * outWidth + 2 * qx;
            __m256 g = _mm256_loadu_ps(gT + 8 * q);
            __m256i a = _mm256_castps_si256(_mm256_loadu_ps(aT + 8 * q));
            __m256i any = _mm256_setzero_si256();
            const float *p = image + 2 * qy * width + 2 * qx;
            for (int sp = 0; sp < 4; sp++) {
                __m256i hit = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(first + (sp >> 1) * outWidth + (sp & 1)));
                any = _mm256_or_si256(any, hit);
                __m256 v = _mm256_and_ps(g, _mm256_castsi256_ps(hit));
                const float *x = p + (sp >> 1) * width + (sp & 1);
                s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + f0), v, s0);
                s1 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + f1), v, s1);
                s2 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + f2), v, s2);
                s3 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + f3), v, s3);
                s4 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + f4), v, s4);
                s5 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + f5), v, s5);
                s6 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + f6), v, s6);
                s7 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + f7), v, s7);
                s8 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + f8), v, s8);
            }
            ok = _mm256_and_si256(ok, any);
        }
    }
    sums[0] = s0; sums[1] = s1; sums[2] = s2; sums[3] = s3; sums[4] = s4;
    sums[5] = s5; sums[6] = s6; sums[7] = s7; sums[8] = s8;
    *valid = ok;
}

/// hk_tap_block9x8 for a 3×3 kernel over one input channel (conv1): each
/// pixel of a window's 4×4 input patch is broadcast once and feeds every
/// (tap, window pixel) pair it belongs to, 36 multiply-adds from 16 loads
/// instead of 36 (each tap's sum gets its four window pixels in the same
/// order as there, so the sums are the same).
HK_TARGET
static void hk_tap_block3x3(const float *image, const float *gT, const float *aT, int pooledHeight, int pooledWidth,
                            int outWidth, int width, __m256 *sums, __m256i *valid) {
    __m256 s00 = sums[0], s01 = sums[1], s02 = sums[2], s10 = sums[3], s11 = sums[4];
    __m256 s12 = sums[5], s20 = sums[6], s21 = sums[7], s22 = sums[8];
    __m256i ok = *valid;
    for (int qy = 0; qy < pooledHeight; qy++) {
        for (int qx = 0; qx < pooledWidth; qx++) {
            int q = qy * pooledWidth + qx, first = 2 * qy * outWidth + 2 * qx;
            __m256 g = _mm256_loadu_ps(gT + 8 * q);
            __m256i a = _mm256_castps_si256(_mm256_loadu_ps(aT + 8 * q));
            __m256i h00 = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(first));
            __m256i h01 = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(first + 1));
            __m256i h10 = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(first + outWidth));
            __m256i h11 = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(first + outWidth + 1));
            ok = _mm256_and_si256(ok, _mm256_or_si256(_mm256_or_si256(h00, h01), _mm256_or_si256(h10, h11)));
            // v_dy_dx: the gradient of the lanes whose winner is window pixel (dy, dx).
            __m256 v00 = _mm256_and_ps(g, _mm256_castsi256_ps(h00)), v01 = _mm256_and_ps(g, _mm256_castsi256_ps(h01));
            __m256 v10 = _mm256_and_ps(g, _mm256_castsi256_ps(h10)), v11 = _mm256_and_ps(g, _mm256_castsi256_ps(h11));
            const float *p = image + 2 * qy * width + 2 * qx;
            // Input row a: kernel row a − dy for window row dy; x: the row's four pixels.
#define HK_X(a, b) __m256 x##b = _mm256_broadcast_ss(p + (a) * width + (b));
#define HK_ROW(a, vl, vr, t0, t1, t2) { HK_X(a, 0) HK_X(a, 1) HK_X(a, 2) HK_X(a, 3) \
                t0 = _mm256_fmadd_ps(x0, vl, t0); t0 = _mm256_fmadd_ps(x1, vr, t0); \
                t1 = _mm256_fmadd_ps(x1, vl, t1); t1 = _mm256_fmadd_ps(x2, vr, t1); \
                t2 = _mm256_fmadd_ps(x2, vl, t2); t2 = _mm256_fmadd_ps(x3, vr, t2); }
            // Tap row i takes window row 0 from input row i, then window row 1 from input row i + 1.
            HK_ROW(0, v00, v01, s00, s01, s02)
            HK_ROW(1, v10, v11, s00, s01, s02)
            HK_ROW(1, v00, v01, s10, s11, s12)
            HK_ROW(2, v10, v11, s10, s11, s12)
            HK_ROW(2, v00, v01, s20, s21, s22)
            HK_ROW(3, v10, v11, s20, s21, s22)
#undef HK_ROW
#undef HK_X
        }
    }
    sums[0] = s00; sums[1] = s01; sums[2] = s02; sums[3] = s10; sums[4] = s11;
    sums[5] = s12; sums[6] = s20; sums[7] = s21; sums[8] = s22;
    *valid = ok;
}

/// Output channels in the lanes, 8 at a time (any input channels and
/// kernel). `work`: 2·windows·8 floats (one image's gradient and argmax with
/// the channels in the lanes).
HK_TARGET
static int hk_weight_gradient_output_lanes(const float *in, int channels, int height, int width, int kernelHeight,
                                           int kernelWidth, const float *gradPooled, const int *argmax,
                                           int outChannels, int outHeight, int outWidth, int images, float *work,
                                           float *gradWeight) {
    int pooledHeight = outHeight / 2, pooledWidth = outWidth / 2, windows = pooledHeight * pooledWidth;
    int taps = channels * kernelHeight * kernelWidth, plane = height * width, blocks = (taps + 8) / 9;
    float *gT = work, *aT = work + (long)windows * 8;
    __m256i valid = _mm256_set1_epi32(-1);
    int offsets[9];
    float lanes[8];
    for (int o0 = 0; o0 < outChannels; o0 += 8) {
        int group = outChannels - o0 < 8 ? outChannels - o0 : 8;
        for (int block = 0; block < blocks; block++) {
            // Nine taps per block; a short last block repeats its last tap (summed, not stored).
            for (int t = 0; t < 9; t++) {
                int k = 9 * block + t < taps ? 9 * block + t : taps - 1;
                int c = k / (kernelHeight * kernelWidth), ij = k % (kernelHeight * kernelWidth);
                offsets[t] = c * plane + (ij / kernelWidth) * width + ij % kernelWidth;
            }
            __m256 s[9];
            for (int t = 0; t < 9; t++) s[t] = _mm256_setzero_ps();
            for (int b = 0; b < images; b++) {
                const float *g = gradPooled + ((long)b * outChannels + o0) * windows;
                const int *a = argmax + ((long)b * outChannels + o0) * windows;
                if (group == 8) {
                    hk_planes_to_lanes8(g, windows, windows, gT, 8);
                    hk_planes_to_lanes8(a, windows, windows, aT, 8);
                } else {
                    // Missing channels: zero gradient, and an argmax naming the window's first pixel.
                    for (int q = 0; q < windows; q++) {
                        int first = 2 * (q / pooledWidth) * outWidth + 2 * (q % pooledWidth);
                        for (int o = 0; o < 8; o++) {
                            gT[8 * q + o] = o < group ? g[(long)o * windows + q] : 0;
                            int winner = o < group ? a[(long)o * windows + q] : first;
                            memcpy(aT + 8 * q + o, &winner, 4);
                        }
                    }
                }
                if (channels == 1 && kernelHeight == 3 && kernelWidth == 3)
                    hk_tap_block3x3(in + (long)b * plane, gT, aT, pooledHeight, pooledWidth, outWidth, width, s,
                                    &valid);
                else
                    hk_tap_block9x8(in + (long)b * channels * plane, gT, aT, pooledHeight, pooledWidth, outWidth,
                                    width, offsets, s, &valid);
            }
            for (int t = 0; t < 9 && 9 * block + t < taps; t++) {
                _mm256_storeu_ps(lanes, s[t]);
                for (int o = 0; o < group; o++) gradWeight[(long)(o0 + o) * taps + 9 * block + t] = lanes[o];
            }
        }
    }
    return _mm256_movemask_epi8(valid) != -1;
}

#else

static int hk_output_lanes_path(void) { return 0; }
static int hk_weight_gradient_c8(const float *in, int height, int width, const float *gradPooled, const int *argmax,
                                 int outChannels, int outHeight, int outWidth, int images, float *work,
                                 float *gradWeight) { return 1; }
static int hk_weight_gradient_output_lanes(const float *in, int channels, int height, int width, int kernelHeight,
                                           int kernelWidth, const float *gradPooled, const int *argmax,
                                           int outChannels, int outHeight, int outWidth, int images, float *work,
                                           float *gradWeight) { return 1; }

#endif

long hk_pooled_weight_gradient_work(int channels, int height, int width, int kernelHeight, int kernelWidth,
                                    int outChannels, int outHeight, int outWidth, int images) {
    long windows = (long)(outHeight / 2) * (outWidth / 2);
    long need = 2 * windows;
    if (hk_channels8_path(channels, kernelHeight, kernelWidth)) {
        long c8 = (long)images * height * width * 8 + 4 * windows + 16;
        if (c8 > need) need = c8;
    }
    long lanes = windows * 16;
    return need > lanes ? need : lanes;
}

int hk_pooled_weight_gradient(const float *in, int channels, int height, int width, int kernelHeight,
                              int kernelWidth, const float *gradPooled, const int *argmax, int outChannels,
                              int outHeight, int outWidth, int images, float *work, float *gradWeight) {
    if (hk_channels8_path(channels, kernelHeight, kernelWidth))
        return hk_weight_gradient_c8(in, height, width, gradPooled, argmax, outChannels, outHeight, outWidth, images,
                                     work, gradWeight);
    if (hk_output_lanes_path())
        return hk_weight_gradient_output_lanes(in, channels, height, width, kernelHeight, kernelWidth, gradPooled,
                                               argmax, outChannels, outHeight, outWidth, images, work, gradWeight);
    return hk_weight_gradient_scalar(in, channels, height, width, kernelHeight, kernelWidth, gradPooled, argmax,
                                     outChannels, outHeight, outWidth, images, work, gradWeight);
}

