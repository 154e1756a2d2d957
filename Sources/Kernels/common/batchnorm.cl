// Batch normalisation (PyTorch's BatchNorm2d) over (B, C, P), P = H·W:
// the eval statistics, both families. saved[0, C) holds each channel's μ,
// saved[C, 2C) σ = 1/√(v + ε), as the forward used them. The training
// statistics are per family: cpu/batchnorm_chunks.cl (chunks' moments,
// combined), gpu/batchnorm_statistics.cl (after channel_sums.cl's sums);
// so are the elementwise passes: cpu/batchnorm_planes.cl,
// gpu/batchnorm_elements.cl.

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
