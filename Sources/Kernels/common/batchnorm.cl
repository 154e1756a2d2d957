// Batch normalisation (PyTorch's BatchNorm2d) over (B, C, P), P = H·W:
// the per-channel statistics, both families. saved[0, C) holds each
// channel's μ, saved[C, 2C) σ = 1/√(v + ε), as the forward used them;
// channel_sums.cl computes the sums. The elementwise passes are per family:
// cpu/batchnorm_planes.cl, gpu/batchnorm_elements.cl.

// Training statistics, one work-item per channel, after saved[c] = μ_c and
// partials = Σ (x − μ_c)² per chunk: v = Σ/N (biased), σ = 1/√(v + ε);
// running mean and variance move by `momentum` towards μ and Σ/(N − 1).
#ifdef KERNEL_batchnorm_training_statistics
__kernel void batchnorm_training_statistics(__global const float* partials, __global float* saved,
                                            __global float* runningMean, __global float* runningVar, int channels,
                                            int chunks, int count, float epsilon, float momentum) {
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

// Eval statistics, one work-item per channel: μ and σ from the running ones.
#ifdef KERNEL_batchnorm_eval_statistics
__kernel void batchnorm_eval_statistics(__global const float* runningMean, __global const float* runningVar,
                                        __global float* saved, int channels, float epsilon) {
    const int c = get_global_id(0);
    if (c >= channels) return;
    saved[c] = runningMean[c];
    saved[channels + c] = 1.0f / sqrt(runningVar[c] + epsilon);
}
#endif
