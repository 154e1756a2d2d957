// Batch normalisation's training statistics for the gpu family (the
// layout of `saved`: common/batchnorm.cl), after common/channel_sums.cl's
// per-channel sums: saved[c] = μ_c by channel_sum_chunks, then the chunks'
// squared deviations from it by channel_partials mode 1.

// Training statistics, one work-item per channel, after saved[c] = μ_c and
// partials = Σ (x − μ_c)² per chunk: v = Σ/N (biased), σ = 1/√(v + ε);
// running mean and variance move by `momentum` towards μ and Σ/(N − 1).
#ifdef KERNEL_gpu_batchnorm_training_statistics
__kernel void gpu_batchnorm_training_statistics(__global const float* partials, __global float* saved,
                                                __global float* runningMean, __global float* runningVar,
                                                int channels, int chunks, int count, float epsilon,
                                                float momentum) {
    const int c = get_global_id(0);
    if (c >= channels) return;
    float squares = 0.0f;
    for (int k = 0; k < chunks; k++) squares += partials[(size_t)c * chunks + k];
    const float variance = squares / (float)count;
    saved[channels + c] = 1.0f / sqrt(variance + epsilon);
    runningMean[c] = (1.0f - momentum) * runningMean[c] + momentum * saved[c];
    runningVar[c] = (1.0f - momentum) * runningVar[c] + momentum * (squares / (float)(count - 1));
}
#endif
