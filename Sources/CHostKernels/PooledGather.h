#ifndef CONVSVD_C_HOST_KERNELS_POOLED_GATHER_H
#define CONVSVD_C_HOST_KERNELS_POOLED_GATHER_H

// Internal to CHostKernels: what the pooled weight gradient
// (PooledWeightGradient.c) and the pooled data gradient
// (PooledDataGradient.c) share. Everything is static (inline where it sits
// in an inner loop), so each file compiles it into its own code; the pack
// table is filled once per file that uses it.
//
// The backward passes of a correlation whose output went through a 2×2
// max-pool: only each window's winner carries gradient. Three ways, chosen
// per shape by hk_pooled_weight_gradient and hk_pooled_data_gradient:
// - eight input channels and a 3×3 kernel (conv2), AVX2: the input channels
//   in the vector lanes, images moved to channels-last; each nonzero pooled
//   gradient is one broadcast times nine 8-lane rows of the patch;
// - any other shape (conv1), AVX2, the weight gradient only: the output
//   channels in the lanes, 8 at a time; each window's gradient goes to the
//   one of its four pixels that its argmax names (a compare per pixel, no
//   branch), summed like a dense correlation over the windows the pool kept;
// - anything else: scalar loops over the nonzero gradients.
// Every winner is checked against its window, so a corrupt argmax is
// reported (return value 1) instead of read or written out of bounds.

#include "CHostKernels.h"

#include <string.h>

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

#else

static int hk_channels8_path(int channels, int kernelHeight, int kernelWidth) { return 0; }

#endif

#endif
