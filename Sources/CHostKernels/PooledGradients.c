#include "CHostKernels.h"

#include <string.h>

// The backward passes of a correlation whose output went through a 2×2
// max-pool: only each window's winner carries gradient. Three ways, chosen
// per shape by the two entry points at the end:
// - eight input channels and a 3×3 kernel (conv2), AVX2: the input channels
//   in the vector lanes, images moved to channels-last; each nonzero pooled
//   gradient is one broadcast times nine 8-lane rows of the patch;
// - any other shape (conv1), AVX2: the output channels in the lanes, 8 at a
//   time; each window's gradient goes to the one of its four pixels that its
//   argmax names (a compare per pixel, no branch), summed like a dense
//   correlation over the windows the pool kept;
// - anything else: scalar loops over the nonzero gradients.
// Every winner is checked against its window, so a corrupt argmax is
// reported (return value 1) instead of read or written out of bounds.

/// Appends one window's gradient and the input offset of its winner (the
/// value is kept, i.e. the count advances, only when nonzero). `first` is the
/// flat output index of the window's top-left pixel, `corner` that pixel's
/// input offset. Returns 1 when the argmax lies outside the window.
static inline int hk_gather_one(float gradient, int winner, int first, int corner, int outWidth, int width,
                                float *values, int *offsets, int *count) {
    int d = winner - first;
    int dy = d >= outWidth, dx = d - dy * outWidth;
    int outside = ((unsigned)dx > 1u) | ((unsigned)d > (unsigned)(outWidth + 1));
    values[*count] = gradient;
    offsets[*count] = outside ? 0 : corner + dy * width + dx;
    *count += gradient != 0;
    return outside;
}

/// Gathers the nonzero gradients of one pooled plane and, for each, the flat
/// offset y*width + x of its winner (y, x) in a width-wide input image.
/// Branch-free: ReLU leaves a random half of the gradients zero and winners
/// fall anywhere in their windows, so branches would mispredict. Returns the
/// count, or -1 when an argmax lies outside its own 2×2 window.
static int hk_gather_winners(const float *gradient, const int *argmax, int pooledHeight, int pooledWidth,
                             int outWidth, int width, float *values, int *offsets) {
    int count = 0, bad = 0;
    for (int qy = 0; qy < pooledHeight; qy++)
        for (int qx = 0; qx < pooledWidth; qx++) {
            int q = qy * pooledWidth + qx;
            bad |= hk_gather_one(gradient[q], argmax[q], 2 * qy * outWidth + 2 * qx, 2 * qy * width + 2 * qx,
                                 outWidth, width, values, offsets, &count);
        }
    return bad ? -1 : count;
}

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

static int hk_data_gradient_scalar(const float *gradPooled, const int *argmax, const float *weight, int outChannels,
                                   int outHeight, int outWidth, int channels, int height, int width,
                                   int kernelHeight, int kernelWidth, int images, float *work, float *gradIn) {
    int pooledHeight = outHeight / 2, pooledWidth = outWidth / 2, windows = pooledHeight * pooledWidth;
    int taps = channels * kernelHeight * kernelWidth, plane = height * width;
    float *values = work;
    int *offsets = (int *)(work + windows);
    memset(gradIn, 0, sizeof(float) * (size_t)images * channels * plane);
    for (int b = 0; b < images; b++) {
        float *image = gradIn + (long)b * channels * plane;
        for (int o = 0; o < outChannels; o++) {
            long q0 = ((long)b * outChannels + o) * windows;
            int count = hk_gather_winners(gradPooled + q0, argmax + q0, pooledHeight, pooledWidth, outWidth, width,
                                          values, offsets);
            if (count < 0) return 1;
            const float *w = weight + (long)o * taps;
            for (int n = 0; n < count; n++) {
                float *patch = image + offsets[n];
                for (int c = 0; c < channels; c++)
                    for (int i = 0; i < kernelHeight; i++)
                        for (int j = 0; j < kernelWidth; j++)
                            patch[c * plane + i * width + j] += values[n] * w[(c * kernelHeight + i) * kernelWidth + j];
            }
        }
    }
    return 0;
}

#if defined(__x86_64__) || defined(__i386__)
#include "Transpose8.h"

#include <pthread.h>

/// For each 8-bit mask, the lane indices of its set bits first (the
/// left-packing permutation), 3 bits each.
static unsigned hk_pack_table[256];
static pthread_once_t hk_pack_once = PTHREAD_ONCE_INIT;
static void hk_make_pack_table(void) {
    for (int mask = 0; mask < 256; mask++) {
        unsigned packed = 0;
        int n = 0;
        for (int lane = 0; lane < 8; lane++)
            if (mask & (1 << lane)) packed |= (unsigned)lane << (3 * n++);
        hk_pack_table[mask] = packed;
    }
}

/// Per window q of a pooled plane: the flat output index of its top-left
/// pixel (first) and the input offset of that pixel (corner).
typedef struct { int *first, *corner; } hk_windows;

static hk_windows hk_window_tables(int pooledHeight, int pooledWidth, int outWidth, int width, int *storage) {
    hk_windows w = {storage, storage + pooledHeight * pooledWidth};
    for (int qy = 0; qy < pooledHeight; qy++)
        for (int qx = 0; qx < pooledWidth; qx++) {
            w.first[qy * pooledWidth + qx] = 2 * qy * outWidth + 2 * qx;
            w.corner[qy * pooledWidth + qx] = 2 * qy * width + 2 * qx;
        }
    return w;
}

/// hk_gather_winners, 8 windows at a time: the nonzero gradients are packed
/// to the front of each group of 8 with a permutation looked up by their mask
/// (values and offsets need 8 floats of slack past the windows).
HK_TARGET
static int hk_gather_winners8(const float *gradient, const int *argmax, int windows, hk_windows table,
                              int outWidth, int width, float *values, int *offsets) {
    const __m256i one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
    const __m256i lastRow = _mm256_set1_epi32(outWidth - 1), rowOut = _mm256_set1_epi32(outWidth);
    const __m256i rowIn = _mm256_set1_epi32(width), shifts = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21);
    __m256i bad = zero;
    int count = 0, q = 0;
    for (; q + 8 <= windows; q += 8) {
        __m256 g = _mm256_loadu_ps(gradient + q);
        __m256i d = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(argmax + q)),
                                     _mm256_loadu_si256((const __m256i *)(table.first + q)));
        __m256i lower = _mm256_cmpgt_epi32(d, lastRow);  // the winner is in the window's second row
        __m256i dx = _mm256_sub_epi32(d, _mm256_and_si256(lower, rowOut));
        __m256i outside = _mm256_or_si256(_mm256_cmpgt_epi32(dx, one), _mm256_cmpgt_epi32(zero, dx));
        bad = _mm256_or_si256(bad, outside);
        __m256i offset = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(table.corner + q)),
                                          _mm256_add_epi32(_mm256_and_si256(lower, rowIn), dx));
        offset = _mm256_andnot_si256(outside, offset);
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_NEQ_UQ));
        __m256i order = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)hk_pack_table[mask]), shifts),
                                         _mm256_set1_epi32(7));
        _mm256_storeu_ps(values + count, _mm256_permutevar8x32_ps(g, order));
        _mm256_storeu_si256((__m256i *)(offsets + count), _mm256_permutevar8x32_epi32(offset, order));
        count += __builtin_popcount(mask);
    }
    int badTail = 0;
    for (; q < windows; q++)
        badTail |= hk_gather_one(gradient[q], argmax[q], table.first[q], table.corner[q], outWidth, width, values,
                                 offsets, &count);
    return (badTail || !_mm256_testz_si256(bad, bad)) ? -1 : count;
}

static int hk_channels8_path(int channels, int kernelHeight, int kernelWidth) {
    return channels == 8 && kernelHeight == 3 && kernelWidth == 3 && hk_has_avx2_fma();
}
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

/// Input channels in the lanes (C = 8, 3×3), one image after another.
/// `work`: O·9·8 floats (the weights as (o, kernel position, channel)), one
/// channels-last image, then the gathers and the window tables (4·windows + 16).
HK_TARGET
static int hk_data_gradient_c8(const float *gradPooled, const int *argmax, const float *weight, int outChannels,
                               int outHeight, int outWidth, int height, int width, int images, float *work,
                               float *gradIn) {
    int pooledHeight = outHeight / 2, pooledWidth = outWidth / 2, windows = pooledHeight * pooledWidth;
    int plane = height * width;
    float *weightT = work, *image = work + (long)outChannels * 72;
    float *values = image + (long)plane * 8;
    int *offsets = (int *)(values + windows + 8);
    hk_windows table = hk_window_tables(pooledHeight, pooledWidth, outWidth, width, offsets + windows + 8);
    pthread_once(&hk_pack_once, hk_make_pack_table);
    for (int o = 0; o < outChannels; o++)
        for (int c = 0; c < 8; c++)
            for (int t = 0; t < 9; t++) weightT[((long)o * 9 + t) * 8 + c] = weight[(long)o * 72 + c * 9 + t];
    const int row = 8 * width;
    for (int b = 0; b < images; b++) {
        memset(image, 0, sizeof(float) * (size_t)plane * 8);
        for (int o = 0; o < outChannels; o++) {
            long q0 = ((long)b * outChannels + o) * windows;
            int count = hk_gather_winners8(gradPooled + q0, argmax + q0, windows, table, outWidth, width, values,
                                           offsets);
            if (count < 0) return 1;
            const float *w = weightT + (long)o * 72;
            __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8), w2 = _mm256_loadu_ps(w + 16);
            __m256 w3 = _mm256_loadu_ps(w + 24), w4 = _mm256_loadu_ps(w + 32), w5 = _mm256_loadu_ps(w + 40);
            __m256 w6 = _mm256_loadu_ps(w + 48), w7 = _mm256_loadu_ps(w + 56), w8 = _mm256_loadu_ps(w + 64);
            for (int n = 0; n < count; n++) {
                float *p = image + 8 * offsets[n];
                __m256 v = _mm256_set1_ps(values[n]);
                // Every pixel is one aligned-to-8-floats slot, so a load meets
                // the earlier store to the same slot whole (store forwarding works).
                _mm256_storeu_ps(p, _mm256_fmadd_ps(v, w0, _mm256_loadu_ps(p)));
                _mm256_storeu_ps(p + 8, _mm256_fmadd_ps(v, w1, _mm256_loadu_ps(p + 8)));
                _mm256_storeu_ps(p + 16, _mm256_fmadd_ps(v, w2, _mm256_loadu_ps(p + 16)));
                _mm256_storeu_ps(p + row, _mm256_fmadd_ps(v, w3, _mm256_loadu_ps(p + row)));
                _mm256_storeu_ps(p + row + 8, _mm256_fmadd_ps(v, w4, _mm256_loadu_ps(p + row + 8)));
                _mm256_storeu_ps(p + row + 16, _mm256_fmadd_ps(v, w5, _mm256_loadu_ps(p + row + 16)));
                _mm256_storeu_ps(p + 2 * row, _mm256_fmadd_ps(v, w6, _mm256_loadu_ps(p + 2 * row)));
                _mm256_storeu_ps(p + 2 * row + 8, _mm256_fmadd_ps(v, w7, _mm256_loadu_ps(p + 2 * row + 8)));
                _mm256_storeu_ps(p + 2 * row + 16, _mm256_fmadd_ps(v, w8, _mm256_loadu_ps(p + 2 * row + 16)));
            }
        }
        hk_lanes_to_planes8(image, 8, plane, gradIn + (long)b * 8 * plane, plane);
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

static int hk_channels8_path(int channels, int kernelHeight, int kernelWidth) { return 0; }
static int hk_output_lanes_path(void) { return 0; }
static int hk_weight_gradient_c8(const float *in, int height, int width, const float *gradPooled, const int *argmax,
                                 int outChannels, int outHeight, int outWidth, int images, float *work,
                                 float *gradWeight) { return 1; }
static int hk_data_gradient_c8(const float *gradPooled, const int *argmax, const float *weight, int outChannels,
                               int outHeight, int outWidth, int height, int width, int images, float *work,
                               float *gradIn) { return 1; }
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

long hk_pooled_data_gradient_work(int channels, int height, int width, int outChannels, int outHeight, int outWidth) {
    long windows = (long)(outHeight / 2) * (outWidth / 2);
    return (long)outChannels * 72 + (long)height * width * 8 + 4 * windows + 16;
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

int hk_pooled_data_gradient(const float *gradPooled, const int *argmax, const float *weight, int outChannels,
                            int outHeight, int outWidth, int channels, int height, int width, int kernelHeight,
                            int kernelWidth, int images, float *work, float *gradIn) {
    if (hk_channels8_path(channels, kernelHeight, kernelWidth))
        return hk_data_gradient_c8(gradPooled, argmax, weight, outChannels, outHeight, outWidth, height, width,
                                   images, work, gradIn);
    return hk_data_gradient_scalar(gradPooled, argmax, weight, outChannels, outHeight, outWidth, channels, height,
                                   width, kernelHeight, kernelWidth, images, work, gradIn);
}
