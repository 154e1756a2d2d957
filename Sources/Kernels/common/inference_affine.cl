// The per-channel affine map of an eval-mode convolution layer
// (InferenceDevice.inferenceAffine): with a BatchNorm, g = γ/√(v + ε),
// scale = g, shift = β − μ·g + g·bias; without, scale = 1, shift = bias
// (0 without a bias). One work-item per channel; the host rounds the same
// formula from float64, this float32 one agrees within 1e-6 on values of
// order 1 (InferenceFusionTests). A flag of 0 leaves its buffers unread.

#ifdef KERNEL_inference_affine
__kernel void inference_affine(__global const float* bias, int hasBias, __global const float* gamma,
                               __global const float* beta, __global const float* runningMean,
                               __global const float* runningVar, int hasBatchNorm, float epsilon,
                               __global float* scale, __global float* shift, int channels) {
    const int o = get_global_id(0);
    if (o >= channels) return;
    const float b = hasBias ? bias[o] : 0.0f;
    if (hasBatchNorm) {
        const float g = gamma[o] / sqrt(runningVar[o] + epsilon);
        scale[o] = g;
        shift[o] = beta[o] - runningMean[o] * g + g * b;
    } else {
        scale[o] = 1.0f;
        shift[o] = b;
    }
}
#endif
