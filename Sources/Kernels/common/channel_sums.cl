// Per-channel sums over activations (B, C, P) (P = H·W pixels), in a fixed
// order and without atomics, so that a seed gives the same result on every
// run: each channel's N = B·P values are cut into chunks of consecutive
// values (image by image, pixel by pixel), the family's channel_partials
// kernel sums each chunk (cpu/channel_partials.cl: a work-item walks 256
// values in order; gpu/channel_partials.cl: a work-group tree over 1,024,
// its reads coalesced), then one work-item per channel adds its chunks in
// order (channel_sum_chunks, channel_sum_chunk_pairs here). Chunks keep
// each float sum short (the error of a sum of n terms grows with n) and
// give the launch C·chunks work-items (or groups) instead of C. Every step
// sums with compensation: a β's gradient Σ dy over ~100,000 values nearly
// cancels, and a plain float32 sum there ends ~5e-4 from the float64 one
// relative to the channel's largest (ResNet-8, batch 128, measured against
// PyTorch in float64), the compensated one within the float32 rounding of
// the result.
//
// The partials' modes, for chunk k of channel c:
// mode 0: partials[c·chunks + k] = Σ a;
// mode 1: partials[c·chunks + k] = Σ (a − saved[c])²  (saved[c] a mean);
// mode 2: partials[c·chunks + k] = Σ a and partials[(C + c)·chunks + k] =
//         Σ a·(b − saved[c])·saved[C + c]  (a = dy, b = x, saved = μ, σ:
//         batch normalisation's Σ dy and Σ dy·x̂);
// mode 3: mode 2 with a taken as 0 where mask ≤ 0 (mask the output of a
//         ReLU after the BatchNorm: the gradient relu_backward would pass).
// `mask` is read in mode 3 alone, `b` in modes 2 and 3 (any buffer elsewhere).

// sum = Σ_k row[k] for k < chunks, in order, with Kahan's compensation:
// the chunks' sum of every kernel here, and of gpu/batchnorm_elements.cl's
// fused backward pass (its row in local memory), so that they agree bit for
// bit.
#define CHUNK_SUM(row, chunks, sum) \
    { \
        float carry_ = 0.0f; \
        (sum) = 0.0f; \
        for (int k_ = 0; k_ < (chunks); k_++) KAHAN_ADD(float, (sum), carry_, (row)[k_]) \
    }

// total[c] = scale·Σ_k partials[offset + c·chunks + k], the chunks in order.
// One work-item per channel.
#ifdef KERNEL_channel_sum_chunks
__kernel void channel_sum_chunks(__global const float* partials, __global float* total, int channels, int chunks,
                                 int offset, float scale) {
    const int c = get_global_id(0);
    if (c >= channels) return;
    float sum;
    CHUNK_SUM(partials + offset + (size_t)c * chunks, chunks, sum)
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
    float sum;
    CHUNK_SUM(partials + (size_t)i * chunks, chunks, sum)
    if (i < channels) {
        first[i] = sum;
    } else {
        second[i - channels] = sum;
    }
}
#endif
