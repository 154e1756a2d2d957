// Per-channel sums over activations (B, C, P) (P = H·W pixels), in a fixed
// order and without atomics, so that a seed gives the same result on every
// run: each channel's N = B·P values are cut into chunks of `chunkLength`
// consecutive values (image by image, pixel by pixel), one work-item sums a
// chunk in order (channel_partials), then one work-item per channel adds its
// chunks in order (channel_sum_chunks). Chunks keep each float sum short
// (the error of a sum of n terms grows with n) and give the launch
// C·chunks work-items instead of C. Both steps sum with Kahan's
// compensation: a β's gradient Σ dy over ~100,000 values nearly cancels, and
// a plain float32 sum there ends ~5e-4 from the float64 one relative to the
// channel's largest (ResNet-8, batch 128, measured against PyTorch in
// float64), the compensated one within the float32 rounding of the result.
//
// mode 0: partials[c·chunks + k] = Σ a;
// mode 1: partials[c·chunks + k] = Σ (a − saved[c])²  (saved[c] a mean);
// mode 2: partials[c·chunks + k] = Σ a and partials[(C + c)·chunks + k] =
//         Σ a·(b − saved[c])·saved[C + c]  (a = dy, b = x, saved = μ, σ:
//         batch normalisation's Σ dy and Σ dy·x̂);
// mode 3: mode 2 with a taken as 0 where mask ≤ 0 (mask the output of a
//         ReLU after the BatchNorm: the gradient relu_backward would pass).
// `mask` is read in mode 3 alone (any buffer elsewhere).

#ifdef KERNEL_channel_partials
__kernel void channel_partials(__global const float* a, __global const float* b, __global const float* saved,
                               __global const float* mask, __global float* partials, int batch, int channels,
                               int plane, int chunkLength, int chunks, int mode) {
    const int index = get_global_id(0);
    if (index >= channels * chunks) return;
    const int c = index / chunks, chunk = index - c * chunks;
    const int count = batch * plane;
    const int start = chunk * chunkLength, end = min(start + chunkLength, count);
    const float mean = mode > 0 ? saved[c] : 0.0f;
    const float invStd = mode >= 2 ? saved[channels + c] : 0.0f;
    int image = start / plane, p = start - image * plane;
    float sum = 0.0f, sum2 = 0.0f, carry = 0.0f, carry2 = 0.0f;
    for (int n = start; n < end; n++) {
        const size_t at = ((size_t)image * channels + c) * plane + p;
        const float v = mode == 3 && !(mask[at] > 0.0f) ? 0.0f : a[at];
        if (mode == 0) {
            KAHAN_ADD(float, sum, carry, v)
        } else if (mode == 1) {
            const float d = v - mean;
            KAHAN_ADD(float, sum, carry, d * d)
        } else {
            KAHAN_ADD(float, sum, carry, v)
            KAHAN_ADD(float, sum2, carry2, v * ((b[at] - mean) * invStd))
        }
        if (++p == plane) {
            p = 0;
            image++;
        }
    }
    partials[index] = sum;
    if (mode >= 2) partials[channels * chunks + index] = sum2;
}
#endif

// total[c] = scale·Σ_k partials[offset + c·chunks + k], the chunks in order.
// One work-item per channel.
#ifdef KERNEL_channel_sum_chunks
__kernel void channel_sum_chunks(__global const float* partials, __global float* total, int channels, int chunks,
                                 int offset, float scale) {
    const int c = get_global_id(0);
    if (c >= channels) return;
    __global const float* p = partials + offset + (size_t)c * chunks;
    float sum = 0.0f, carry = 0.0f;
    for (int k = 0; k < chunks; k++) KAHAN_ADD(float, sum, carry, p[k])
    total[c] = sum * scale;
}
#endif

// Mode 2's two sums in one launch: first[c] = Σ_k partials[c·chunks + k] (Σ dy)
// and second[c] = Σ_k partials[(C + c)·chunks + k] (Σ dy·x̂), each in the
// order and with the compensation of channel_sum_chunks (the same bits).
// One work-item per (sum, channel): 2·C work-items.
#ifdef KERNEL_channel_sum_chunk_pairs
__kernel void channel_sum_chunk_pairs(__global const float* partials, __global float* first, __global float* second,
                                      int channels, int chunks) {
    const int i = get_global_id(0);
    if (i >= 2 * channels) return;
    __global const float* p = partials + (size_t)i * chunks;
    float sum = 0.0f, carry = 0.0f;
    for (int k = 0; k < chunks; k++) KAHAN_ADD(float, sum, carry, p[k])
    if (i < channels) {
        first[i] = sum;
    } else {
        second[i - channels] = sum;
    }
}
#endif
