#include "HostKernels.h"

#include <stdlib.h>
#include <string.h>

// The backward passes of a convolution whose output went through a 2×2
// max-pool: only each window's winner carries gradient, so both passes visit
// the pooled elements, skip the zeros (ReLU zeroes about half), and touch the
// kH×kW patch under each winner. The winner is checked against its window, so a
// corrupt argmax is reported instead of read or written out of bounds.

/// Gathers the nonzero gradients of one pooled plane (pooledHeight x
/// pooledWidth) and, for each, the offset of its winner's pixel in a
/// width-wide image: y*width + x for the winner (y, x) in the outWidth-wide
/// output plane. Branch-free (ReLU leaves a random half of the gradients zero,
/// and winners fall anywhere in their windows, so branches would mispredict).
/// Returns the count, or -1 when an argmax lies outside its own 2x2 window.
static int hk_gather_winners(const float *gradient, const int *argmax, int pooledHeight, int pooledWidth,
                             int outWidth, int width, float *values, int *offsets) {
    int count = 0, bad = 0;
    for (int qy = 0; qy < pooledHeight; qy++) {
        for (int qx = 0; qx < pooledWidth; qx++) {
            int q = qy * pooledWidth + qx;
            int d = argmax[q] - (2 * qy * outWidth + 2 * qx);
            int dy = d >= outWidth, dx = d - dy * outWidth;
            int outside = ((unsigned)dx > 1u) | ((unsigned)d > (unsigned)(outWidth + 1));
            bad |= outside;
            values[count] = gradient[q];
            offsets[count] = outside ? 0 : (2 * qy + dy) * width + 2 * qx + dx;
            count += gradient[q] != 0;
        }
    }
    return bad ? -1 : count;
}

static void hk_weight_gradient_scalar(const float *image, int channels, int plane, int width, int kernelHeight,
                                      int kernelWidth, int count, const float *values, const int *offsets,
                                      float *gw) {
    for (int n = 0; n < count; n++) {
        const float *patch = image + offsets[n];
        for (int c = 0; c < channels; c++)
            for (int i = 0; i < kernelHeight; i++)
                for (int j = 0; j < kernelWidth; j++)
                    gw[(c * kernelHeight + i) * kernelWidth + j] += values[n] * patch[c * plane + i * width + j];
    }
}

static void hk_data_gradient_scalar(const float *w, int channels, int plane, int width, int kernelHeight,
                                    int kernelWidth, int count, const float *values, const int *offsets,
                                    float *gradIn) {
    for (int n = 0; n < count; n++) {
        float *patch = gradIn + offsets[n];
        for (int c = 0; c < channels; c++)
            for (int i = 0; i < kernelHeight; i++)
                for (int j = 0; j < kernelWidth; j++)
                    patch[c * plane + i * width + j] += values[n] * w[(c * kernelHeight + i) * kernelWidth + j];
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define HK_TARGET __attribute__((target("avx2,fma")))

/// At most this many (channel, kernel row) pairs keep a vector each (conv2:
/// 8 x 3 = 24); more go the scalar way.
#define HK_MAX_PATCH_ROWS 64

static int hk_fast_path(int channels, int kernelHeight, int kernelWidth) {
    return kernelWidth == 3 && channels * kernelHeight <= HK_MAX_PATCH_ROWS && hk_has_avx2_fma();
}

/// kW = 3: one 4-lane vector per (channel, kernel row) of the patch, its
/// fourth lane masked off on load, so nothing past a row is read.
HK_TARGET
static void hk_weight_gradient_k3(const float *image, int rows, const int *rowOffset, int count,
                                  const float *values, const int *offsets, __m128 *sums) {
    const __m128i three = _mm_setr_epi32(-1, -1, -1, 0);
    if (rows == 3) {  // one input channel (conv1): the sums stay in registers
        __m128 s0 = sums[0], s1 = sums[1], s2 = sums[2];
        for (int n = 0; n < count; n++) {
            const float *patch = image + offsets[n];
            __m128 v = _mm_set1_ps(values[n]);
            s0 = _mm_fmadd_ps(v, _mm_maskload_ps(patch + rowOffset[0], three), s0);
            s1 = _mm_fmadd_ps(v, _mm_maskload_ps(patch + rowOffset[1], three), s1);
            s2 = _mm_fmadd_ps(v, _mm_maskload_ps(patch + rowOffset[2], three), s2);
        }
        sums[0] = s0; sums[1] = s1; sums[2] = s2;
        return;
    }
    for (int n = 0; n < count; n++) {
        const float *patch = image + offsets[n];
        __m128 v = _mm_set1_ps(values[n]);
        for (int r = 0; r < rows; r++)
            sums[r] = _mm_fmadd_ps(v, _mm_maskload_ps(patch + rowOffset[r], three), sums[r]);
    }
}

/// kW = 3: each patch row is a 4-lane read-modify-write whose fourth lane is
/// blended back unchanged (exact, whatever the gradient holds); `gradIn`
/// has one float of slack past the image for the last row's fourth lane.
HK_TARGET
static void hk_data_gradient_k3(const __m128 *w, int rows, const int *rowOffset, int count, const float *values,
                                const int *offsets, float *gradIn) {
    for (int n = 0; n < count; n++) {
        float *patch = gradIn + offsets[n];
        __m128 v = _mm_set1_ps(values[n]);
        for (int r = 0; r < rows; r++) {
            float *p = patch + rowOffset[r];
            __m128 old = _mm_loadu_ps(p);
            _mm_storeu_ps(p, _mm_blend_ps(old, _mm_fmadd_ps(v, w[r], old), 0x7));
        }
    }
}

HK_TARGET
static void hk_load_rows3(const float *w, int rows, __m128 *out) {
    const __m128i three = _mm_setr_epi32(-1, -1, -1, 0);
    for (int r = 0; r < rows; r++) out[r] = _mm_maskload_ps(w + 3 * r, three);
}

HK_TARGET
static void hk_store_rows3(const __m128 *sums, int rows, float *gw) {
    for (int r = 0; r < rows; r++) {
        float lanes[4];
        _mm_storeu_ps(lanes, sums[r]);
        gw[3 * r] = lanes[0]; gw[3 * r + 1] = lanes[1]; gw[3 * r + 2] = lanes[2];
    }
}

#else

#define HK_MAX_PATCH_ROWS 1
typedef struct { float lanes[4]; } __m128;
static int hk_fast_path(int channels, int kernelHeight, int kernelWidth) { return 0; }
static void hk_weight_gradient_k3(const float *image, int rows, const int *rowOffset, int count,
                                  const float *values, const int *offsets, __m128 *sums) {}
static void hk_data_gradient_k3(const __m128 *w, int rows, const int *rowOffset, int count, const float *values,
                                const int *offsets, float *gradIn) {}
static void hk_load_rows3(const float *w, int rows, __m128 *out) {}
static void hk_store_rows3(const __m128 *sums, int rows, float *gw) {}

#endif

int hk_pooled_weight_gradient(const float *in, int channels, int height, int width, int kernelHeight,
                              int kernelWidth, const float *gradPooled, const int *argmax, int outChannels,
                              int outHeight, int outWidth, int images, float *gradWeight) {
    int pooledHeight = outHeight / 2, pooledWidth = outWidth / 2, pooledPlane = pooledHeight * pooledWidth;
    int taps = channels * kernelHeight * kernelWidth, plane = height * width, rows = channels * kernelHeight;
    int fast = hk_fast_path(channels, kernelHeight, kernelWidth);
    int rowOffset[HK_MAX_PATCH_ROWS];
    if (fast)
        for (int r = 0; r < rows; r++) rowOffset[r] = (r / kernelHeight) * plane + (r % kernelHeight) * width;
    float *values = malloc(sizeof(float) * (size_t)(pooledPlane + 1));
    int *offsets = malloc(sizeof(int) * (size_t)(pooledPlane + 1));
    int status = 0;
    memset(gradWeight, 0, sizeof(float) * (size_t)outChannels * taps);
    for (int o = 0; o < outChannels && status == 0; o++) {
        __m128 sums[HK_MAX_PATCH_ROWS];
        if (fast) memset(sums, 0, sizeof(__m128) * (size_t)rows);
        for (int b = 0; b < images; b++) {
            long q0 = ((long)b * outChannels + o) * pooledPlane;
            int count = hk_gather_winners(gradPooled + q0, argmax + q0, pooledHeight, pooledWidth, outWidth, width,
                                          values, offsets);
            if (count < 0) { status = 1; break; }
            const float *image = in + (long)b * channels * plane;
            if (fast) hk_weight_gradient_k3(image, rows, rowOffset, count, values, offsets, sums);
            else hk_weight_gradient_scalar(image, channels, plane, width, kernelHeight, kernelWidth, count, values,
                                           offsets, gradWeight + (long)o * taps);
        }
        if (fast) hk_store_rows3(sums, rows, gradWeight + (long)o * taps);
    }
    free(values);
    free(offsets);
    return status;
}

int hk_pooled_data_gradient(const float *gradPooled, const int *argmax, const float *weight, int outChannels,
                            int outHeight, int outWidth, int channels, int height, int width, int kernelHeight,
                            int kernelWidth, float *work, float *gradIn) {
    int pooledHeight = outHeight / 2, pooledWidth = outWidth / 2, pooledPlane = pooledHeight * pooledWidth;
    int taps = channels * kernelHeight * kernelWidth, plane = height * width, rows = channels * kernelHeight;
    int fast = hk_fast_path(channels, kernelHeight, kernelWidth);
    int rowOffset[HK_MAX_PATCH_ROWS];
    if (fast)
        for (int r = 0; r < rows; r++) rowOffset[r] = (r / kernelHeight) * plane + (r % kernelHeight) * width;
    float *values = malloc(sizeof(float) * (size_t)(pooledPlane + 1));
    int *offsets = malloc(sizeof(int) * (size_t)(pooledPlane + 1));
    int status = 0;
    memset(work, 0, sizeof(float) * ((size_t)channels * plane + 4));
    for (int o = 0; o < outChannels; o++) {
        int count = hk_gather_winners(gradPooled + (long)o * pooledPlane, argmax + (long)o * pooledPlane,
                                      pooledHeight, pooledWidth, outWidth, width, values, offsets);
        if (count < 0) { status = 1; break; }
        if (fast) {
            __m128 w[HK_MAX_PATCH_ROWS];
            hk_load_rows3(weight + (long)o * taps, rows, w);
            hk_data_gradient_k3(w, rows, rowOffset, count, values, offsets, work);
        } else {
            hk_data_gradient_scalar(weight + (long)o * taps, channels, plane, width, kernelHeight, kernelWidth,
                                    count, values, offsets, work);
        }
    }
    memcpy(gradIn, work, sizeof(float) * (size_t)channels * plane);
    free(values);
    free(offsets);
    return status;
}
