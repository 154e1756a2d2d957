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
