#include "PooledGather.h"

// The data gradient of a correlation followed by a 2×2 max-pool: the input
// channels in the lanes (C = 8, 3×3), else scalar loops (see PooledGather.h).

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

#else

static int hk_data_gradient_c8(const float *gradPooled, const int *argmax, const float *weight, int outChannels,
                               int outHeight, int outWidth, int height, int width, int images, float *work,
                               float *gradIn) { return 1; }

#endif

long hk_pooled_data_gradient_work(int channels, int height, int width, int outChannels, int outHeight, int outWidth) {
    long windows = (long)(outHeight / 2) * (outWidth / 2);
    return (long)outChannels * 72 + (long)height * width * 8 + 4 * windows + 16;
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
