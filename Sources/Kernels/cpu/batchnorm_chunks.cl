// Batch normalisation's per-channel sums for the cpu family, over
// activations (B, C, P), P = H·W, in a fixed order and without atomics, so
// that a seed gives the same result on every run. Each channel's images are
// cut into chunks of `imagesPerChunk` consecutive images (the last may hold
// fewer); one work-item sums a (channel, chunk) pair over its planes, each
// plane contiguous, in float16 vectors (PoCL turns explicit vectors into
// SIMD code, not a scalar loop), four vectors added as a pair of pairs
// before each compensated step (the step's four dependent additions are
// its latency: once per 64 values instead of 16); the plane's remaining
// whole vectors (at most three) added plainly into one compensated step,
// and its last P mod 16 values (at most 15) into one step of a scalar
// accumulator, so that small planes (7×7) take two steps each, not one per
// vector and value; the 16 lanes and the scalar are then added in lane
// order.
// Every running sum is Kahan-compensated (KAHAN_ADD, common.cl).
// partials[c·chunks + k] and partials[(C + c)·chunks + k] hold a chunk's
// two results; per channel, the chunks are then added in chunk order
// (batchnorm_combine_moments in common/batchnorm.cl, channel_sum_chunk_pairs
// in common/channel_sums.cl). A chunk of ~8,192 values (32 KiB) stays in the
// core's cache for the forward's second pass over it.

// The compensated total of 16 vector lanes and a scalar sum with their
// carries: the lanes in order, then the scalar, each its sum and then its
// carry's negative (sum − carry is what it holds).
static inline float bn_lanes_total(const float16 sum, const float16 carry, const float scalar,
                                   const float scalarCarry) {
    float lanes[16];
    float carries[16];
    vstore16(sum, 0, lanes);
    vstore16(carry, 0, carries);
    float total = 0.0f, compensation = 0.0f;
    for (int i = 0; i < 16; i++) {
        KAHAN_ADD(float, total, compensation, lanes[i])
        KAHAN_ADD(float, total, compensation, -carries[i])
    }
    KAHAN_ADD(float, total, compensation, scalar)
    KAHAN_ADD(float, total, compensation, -scalarCarry)
    return total;
}

// Forward (training) statistics of chunk k of channel c: its Σx into
// partials[c·chunks + k], and Σ(x − m)² about its own mean m = Σx/n (n its
// values) into partials[(C + c)·chunks + k], the second pass reading the
// chunk again while it is in cache.
#ifdef KERNEL_batchnorm_chunk_moments
__kernel void batchnorm_chunk_moments(__global const float* input, __global float* partials, int batch,
                                      int channels, int plane, int imagesPerChunk, int chunks) {
    const int index = get_global_id(0);
    if (index >= channels * chunks) return;
    const int c = index / chunks, chunk = index - c * chunks;
    const int first = chunk * imagesPerChunk, end = min(first + imagesPerChunk, batch);
    float16 sum = 0.0f, carry = 0.0f;
    float tail = 0.0f, tailCarry = 0.0f;
    for (int b = first; b < end; b++) {
        __global const float* x = input + ((size_t)b * channels + c) * plane;
        int p = 0;
        for (; p + 64 <= plane; p += 64) {
            const float16 pair0 = vload16(0, x + p) + vload16(0, x + p + 16);
            const float16 pair1 = vload16(0, x + p + 32) + vload16(0, x + p + 48);
            KAHAN_ADD(float16, sum, carry, pair0 + pair1)
        }
        float16 rest = 0.0f;
        for (; p + 16 <= plane; p += 16) rest += vload16(0, x + p);
        KAHAN_ADD(float16, sum, carry, rest)
        float restTail = 0.0f;
        for (; p < plane; p++) restTail += x[p];
        KAHAN_ADD(float, tail, tailCarry, restTail)
    }
    const float total = bn_lanes_total(sum, carry, tail, tailCarry);
    const float mean = total / (float)((end - first) * plane);
    sum = 0.0f;
    carry = 0.0f;
    tail = 0.0f;
    tailCarry = 0.0f;
    for (int b = first; b < end; b++) {
        __global const float* x = input + ((size_t)b * channels + c) * plane;
        int p = 0;
        for (; p + 64 <= plane; p += 64) {
            const float16 d0 = vload16(0, x + p) - mean, d1 = vload16(0, x + p + 16) - mean;
            const float16 d2 = vload16(0, x + p + 32) - mean, d3 = vload16(0, x + p + 48) - mean;
            KAHAN_ADD(float16, sum, carry, (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3))
        }
        float16 rest = 0.0f;
        for (; p + 16 <= plane; p += 16) {
            const float16 d = vload16(0, x + p) - mean;
            rest += d * d;
        }
        KAHAN_ADD(float16, sum, carry, rest)
        float restTail = 0.0f;
        for (; p < plane; p++) {
            const float d = x[p] - mean;
            restTail += d * d;
        }
        KAHAN_ADD(float, tail, tailCarry, restTail)
    }
    partials[index] = total;
    partials[channels * chunks + index] = bn_lanes_total(sum, carry, tail, tailCarry);
}
#endif

// Backward sums of chunk k of channel c: Σdy into partials[c·chunks + k] and
// Σdy·x̂, x̂ = (x − μ)σ (saved = μ, σ), into partials[(C + c)·chunks + k];
// channel_sum_chunk_pairs then adds the chunks into gradBeta and gradGamma.
// With `masked` non-zero, dy is taken as 0 where mask ≤ 0 (mask the output
// of a ReLU after the BatchNorm: the gradient relu_backward would pass, so
// the sums are those of relu_backward then this kernel, bit for bit).
#ifdef KERNEL_batchnorm_chunk_grad_sums
// dy where the mask passes it (16 lanes at `at`, or one value).
#define BN_PASSED16(g, at) (masked ? select((float16)0.0f, (g), vload16(0, m + (at)) > 0.0f) : (g))
#define BN_PASSED1(g, at) (masked && !(m[at] > 0.0f) ? 0.0f : (g))
__kernel void batchnorm_chunk_grad_sums(__global const float* input, __global const float* gradOutput,
                                        __global const float* mask, __global const float* saved,
                                        __global float* partials, int batch, int channels, int plane,
                                        int imagesPerChunk, int chunks, int masked) {
    const int index = get_global_id(0);
    if (index >= channels * chunks) return;
    const int c = index / chunks, chunk = index - c * chunks;
    const int first = chunk * imagesPerChunk, end = min(first + imagesPerChunk, batch);
    const float mean = saved[c], invStd = saved[channels + c];
    float16 sumDy = 0.0f, carryDy = 0.0f, sumDyXhat = 0.0f, carryDyXhat = 0.0f;
    float tailDy = 0.0f, tailCarryDy = 0.0f, tailDyXhat = 0.0f, tailCarryDyXhat = 0.0f;
    for (int b = first; b < end; b++) {
        const size_t at = ((size_t)b * channels + c) * plane;
        __global const float* x = input + at;
        __global const float* dy = gradOutput + at;
        __global const float* m = mask + at;
        int p = 0;
        for (; p + 64 <= plane; p += 64) {
            const float16 g0 = BN_PASSED16(vload16(0, dy + p), p), g1 = BN_PASSED16(vload16(0, dy + p + 16), p + 16);
            const float16 g2 = BN_PASSED16(vload16(0, dy + p + 32), p + 32);
            const float16 g3 = BN_PASSED16(vload16(0, dy + p + 48), p + 48);
            const float16 h0 = (vload16(0, x + p) - mean) * invStd, h1 = (vload16(0, x + p + 16) - mean) * invStd;
            const float16 h2 = (vload16(0, x + p + 32) - mean) * invStd;
            const float16 h3 = (vload16(0, x + p + 48) - mean) * invStd;
            KAHAN_ADD(float16, sumDy, carryDy, (g0 + g1) + (g2 + g3))
            KAHAN_ADD(float16, sumDyXhat, carryDyXhat, (g0 * h0 + g1 * h1) + (g2 * h2 + g3 * h3))
        }
        float16 restDy = 0.0f, restDyXhat = 0.0f;
        for (; p + 16 <= plane; p += 16) {
            const float16 g = BN_PASSED16(vload16(0, dy + p), p);
            restDy += g;
            restDyXhat += g * ((vload16(0, x + p) - mean) * invStd);
        }
        KAHAN_ADD(float16, sumDy, carryDy, restDy)
        KAHAN_ADD(float16, sumDyXhat, carryDyXhat, restDyXhat)
        float restTailDy = 0.0f, restTailDyXhat = 0.0f;
        for (; p < plane; p++) {
            const float g = BN_PASSED1(dy[p], p);
            restTailDy += g;
            restTailDyXhat += g * ((x[p] - mean) * invStd);
        }
        KAHAN_ADD(float, tailDy, tailCarryDy, restTailDy)
        KAHAN_ADD(float, tailDyXhat, tailCarryDyXhat, restTailDyXhat)
    }
    partials[index] = bn_lanes_total(sumDy, carryDy, tailDy, tailCarryDy);
    partials[channels * chunks + index] = bn_lanes_total(sumDyXhat, carryDyXhat, tailDyXhat, tailCarryDyXhat);
}
#endif
