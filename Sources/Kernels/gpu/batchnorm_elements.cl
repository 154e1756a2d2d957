// Batch normalisation's elementwise passes for the gpu family, one
// work-item per element (common/batchnorm.cl has the statistics and the
// layout of `saved`).

// output = x·(γσ) + (β − μγσ), one work-item per element; with `relu`
// non-zero, RELU of it (common.cl: the ReLU after a BatchNorm in the same
// pass, the value relu_forward would write).
#ifdef KERNEL_gpu_batchnorm_apply
__kernel void gpu_batchnorm_apply(__global const float* input, __global const float* gamma,
                                  __global const float* beta, __global const float* saved, __global float* output,
                                  int count, int channels, int plane, int relu) {
    const int index = get_global_id(0);
    if (index >= count) return;
    const int c = (index / plane) % channels;
    const float scale = gamma[c] * saved[channels + c];
    const float y = input[index] * scale + (beta[c] - saved[c] * scale);
    output[index] = relu ? RELU(float, y) : y;
}
#endif

// gradInput = γσ·(dy − training·(Σdy + x̂·Σdy·x̂)/N), x̂ = (x − μ)σ, with
// sums[c] = Σ dy and sums[C + c] = Σ dy·x̂ (gradBeta and gradGamma). One
// work-item per element. With `masked` non-zero, dy is taken as 0 where
// mask ≤ 0 (a fused ReLU's output: the gradient relu_backward would pass).
#ifdef KERNEL_gpu_batchnorm_backward_apply
__kernel void gpu_batchnorm_backward_apply(__global const float* input, __global const float* gamma,
                                           __global const float* saved, __global const float* gradOutput,
                                           __global const float* mask, __global const float* gradGamma,
                                           __global const float* gradBeta, __global float* gradInput, int count,
                                           int channels, int plane, int valuesPerChannel, int training, int masked) {
    const int index = get_global_id(0);
    if (index >= count) return;
    const int c = (index / plane) % channels;
    const float invStd = saved[channels + c];
    float dy = gradOutput[index];
    if (masked && !(mask[index] > 0.0f)) dy = 0.0f;
    if (training) {
        const float xHat = (input[index] - saved[c]) * invStd;
        dy -= (gradBeta[c] + xHat * gradGamma[c]) / (float)valuesPerChannel;
    }
    gradInput[index] = gamma[c] * invStd * dy;
}
#endif

// The most chunks a channel may have for the fused kernels below: their
// work-groups hold a channel's chunk partials in local memory (2 × 1,024
// floats, 8 KiB). ResNet-8's largest layer at batch 128 has 98 (100,352
// values a channel in chunks of 1,024); beyond the limit the host launches
// the separate kernels.
#define GPU_BN_FUSED_CHUNKS 1024

// Copies channel c's two chunk-partials rows (`partials` rows c and C + c
// of `chunks` floats) into local memory, the group's items sharing the
// loads (one round trip to memory, not `chunks` of them one after
// another), then waits for the whole group.
static inline void gpu_bn_stage_rows(__local float* first, __local float* second, __global const float* partials,
                                     int channels, int c, int chunks, int item, int size) {
    for (int k = item; k < chunks; k += size) {
        first[k] = partials[(size_t)c * chunks + k];
        second[k] = partials[((size_t)channels + c) * chunks + k];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

// Training: batchnorm_combine_moments (common/batchnorm.cl) and
// gpu_batchnorm_apply in one launch, on the grid of
// gpu_batchnorm_chunk_moments (a work-group of L per (channel, chunk of
// GPU_CHUNK_VALUES·L values), whose `partials` it reads). Each group stages
// its channel's chunk partials in local memory and its item 0 combines them
// with batchnorm_combine_moments' arithmetic (BN_COMBINE_CHUNKS, so μ and σ
// are that kernel's bits in every group); the group of chunk 0 writes
// `saved` and moves the running statistics (once per channel, and no other
// group reads them); then every item normalises its chunk's values i,
// L + i, … as gpu_batchnorm_apply does (with `relu`, RELU of it). Saves a
// launch per BatchNorm, and the combine's chunk loop reads local memory
// instead of walking global memory one dependent load after another.
#ifdef KERNEL_gpu_batchnorm_combine_apply
__kernel void gpu_batchnorm_combine_apply(__global const float* input, __global const float* partials,
                                          __global const float* gamma, __global const float* beta,
                                          __global float* saved, __global float* runningMean,
                                          __global float* runningVar, __global float* output, int batch,
                                          int channels, int plane, int chunks, float epsilon, float momentum,
                                          int relu) {
    __local float sums[GPU_BN_FUSED_CHUNKS], squares[GPU_BN_FUSED_CHUNKS], statistics[2];
    const int item = get_local_id(0), size = get_local_size(0), group = get_group_id(0);
    if (group >= channels * chunks) return;
    const int c = group / chunks, chunk = group - c * chunks;
    const int chunkValues = GPU_CHUNK_VALUES * size, count = batch * plane;
    gpu_bn_stage_rows(sums, squares, partials, channels, c, chunks, item, size);
    if (item == 0) {
        float mean, deviations;
        BN_COMBINE_CHUNKS(sums, squares, chunks, chunkValues, count, mean, deviations)
        const float invStd = 1.0f / sqrt(deviations / (float)count + epsilon);
        statistics[0] = mean;
        statistics[1] = invStd;
        if (chunk == 0) {
            saved[c] = mean;
            saved[channels + c] = invStd;
            runningMean[c] = (1.0f - momentum) * runningMean[c] + momentum * mean;
            runningVar[c] = (1.0f - momentum) * runningVar[c] + momentum * (deviations / (float)(count - 1));
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float scale = gamma[c] * statistics[1];
    const float shift = beta[c] - statistics[0] * scale;
    const int start = chunk * chunkValues, n = min(chunkValues, count - start);
    for (int v = 0; v < GPU_CHUNK_VALUES && v * size + item < n; v++) {
        const size_t i = channel_value_index(start, v * size + item, channels, plane, c);
        const float y = input[i] * scale + shift;
        output[i] = relu ? RELU(float, y) : y;
    }
}
#endif

// Training: channel_sum_chunk_pairs (common/channel_sums.cl) and
// gpu_batchnorm_backward_apply in one launch, on the grid of
// gpu_channel_partials (a work-group of L per (channel, chunk of
// GPU_CHUNK_VALUES·L values)) whose mode-2 or mode-3 `partials` it reads.
// Each group stages its channel's two partials rows in local memory; item 0
// adds each in chunk order (CHUNK_SUM: channel_sum_chunk_pairs' bits); the
// group of chunk 0 writes gradBeta = Σdy and gradGamma = Σdy·x̂; then every
// item computes gradInput for its chunk's values i, L + i, … as
// gpu_batchnorm_backward_apply does in training (dy taken as 0 where
// mask ≤ 0 when `masked`). Saves a launch per BatchNorm.
#ifdef KERNEL_gpu_batchnorm_sums_backward_apply
__kernel void gpu_batchnorm_sums_backward_apply(__global const float* input, __global const float* partials,
                                                __global const float* gamma, __global const float* saved,
                                                __global const float* gradOutput, __global const float* mask,
                                                __global float* gradGamma, __global float* gradBeta,
                                                __global float* gradInput, int batch, int channels, int plane,
                                                int chunks, int masked) {
    __local float first[GPU_BN_FUSED_CHUNKS], second[GPU_BN_FUSED_CHUNKS], sums[2];
    const int item = get_local_id(0), size = get_local_size(0), group = get_group_id(0);
    if (group >= channels * chunks) return;
    const int c = group / chunks, chunk = group - c * chunks;
    const int chunkValues = GPU_CHUNK_VALUES * size, count = batch * plane;
    gpu_bn_stage_rows(first, second, partials, channels, c, chunks, item, size);
    if (item == 0) {
        float sumDy, sumDyXhat;
        CHUNK_SUM(first, chunks, sumDy)
        CHUNK_SUM(second, chunks, sumDyXhat)
        sums[0] = sumDy;
        sums[1] = sumDyXhat;
        if (chunk == 0) {
            gradBeta[c] = sumDy;
            gradGamma[c] = sumDyXhat;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const float mean = saved[c], invStd = saved[channels + c];
    const int start = chunk * chunkValues, n = min(chunkValues, count - start);
    for (int v = 0; v < GPU_CHUNK_VALUES && v * size + item < n; v++) {
        const size_t i = channel_value_index(start, v * size + item, channels, plane, c);
        float dy = gradOutput[i];
        if (masked && !(mask[i] > 0.0f)) dy = 0.0f;
        const float xHat = (input[i] - mean) * invStd;
        dy -= (sums[0] + xHat * sums[1]) / (float)count;
        gradInput[i] = gamma[c] * invStd * dy;
    }
}
#endif
