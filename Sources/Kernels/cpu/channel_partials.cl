// The cpu family's per-channel partial sums (the modes and layout of
// common/channel_sums.cl): a work-item per (channel, chunk of
// `chunkLength` values) walks its chunk in order with Kahan's
// compensation. Resnet8's first layer at batch 128 (16 channels × 100,352
// values) makes 16 × 392 work-items at 256 values a chunk: plenty for a CPU.
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
