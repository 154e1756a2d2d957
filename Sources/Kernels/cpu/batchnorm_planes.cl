// Batch normalisation's elementwise passes for the cpu family: one
// work-item per (b, c) plane, its per-channel constants computed once and
// the plane walked in float4 vectors (PoCL does not vectorise the scalar
// loop itself) with a scalar tail; common/batchnorm.cl has the statistics
// and the layout of `saved`. Semantics as gpu/batchnorm_elements.cl.

// output = x·(γσ) + (β − μγσ) over plane `index` = b·C + c; with `relu`
// non-zero, RELU of it (common.cl: the ReLU after a BatchNorm in the same
// pass, the values relu_forward would write).
#ifdef KERNEL_batchnorm_apply_planes
__kernel void batchnorm_apply_planes(__global const float* input, __global const float* gamma,
                                     __global const float* beta, __global const float* saved,
                                     __global float* output, int planes, int channels, int plane, int relu) {
    const int index = get_global_id(0);
    if (index >= planes) return;
    const int c = index % channels;
    const float scale = gamma[c] * saved[channels + c];
    const float shift = beta[c] - saved[c] * scale;
    __global const float* x = input + (size_t)index * plane;
    __global float* y = output + (size_t)index * plane;
    int p = 0;
    if (relu) {
        for (; p + 4 <= plane; p += 4) {
            const float4 v = vload4(0, x + p) * scale + shift;
            vstore4(RELU(float4, v), 0, y + p);
        }
        for (; p < plane; p++) {
            const float v = x[p] * scale + shift;
            y[p] = RELU(float, v);
        }
        return;
    }
    for (; p + 4 <= plane; p += 4) vstore4(vload4(0, x + p) * scale + shift, 0, y + p);
    for (; p < plane; p++) y[p] = x[p] * scale + shift;
}
#endif

// gradInput = γσ·(dy − training·(Σdy + x̂·Σdy·x̂)/N), x̂ = (x − μ)σ, over
// plane `index` = b·C + c; gradBeta = Σdy and gradGamma = Σdy·x̂. With
// `masked` non-zero, dy is taken as 0 where mask ≤ 0 (a fused ReLU's
// output: the gradient relu_backward would pass).
#ifdef KERNEL_batchnorm_backward_apply_planes
__kernel void batchnorm_backward_apply_planes(__global const float* input, __global const float* gamma,
                                              __global const float* saved, __global const float* gradOutput,
                                              __global const float* mask, __global const float* gradGamma,
                                              __global const float* gradBeta, __global float* gradInput, int planes,
                                              int channels, int plane, int valuesPerChannel, int training,
                                              int masked) {
    const int index = get_global_id(0);
    if (index >= planes) return;
    const int c = index % channels;
    const float mean = saved[c], invStd = saved[channels + c];
    const float scale = gamma[c] * invStd;
    const float meanDy = training ? gradBeta[c] / (float)valuesPerChannel : 0.0f;
    const float meanDyXhat = training ? gradGamma[c] / (float)valuesPerChannel : 0.0f;
    __global const float* x = input + (size_t)index * plane;
    __global const float* dy = gradOutput + (size_t)index * plane;
    __global const float* m = mask + (size_t)index * plane;
    __global float* dx = gradInput + (size_t)index * plane;
    int p = 0;
    for (; p + 4 <= plane; p += 4) {
        const float4 xHat = (vload4(0, x + p) - mean) * invStd;
        float4 g = vload4(0, dy + p);
        if (masked) g = select((float4)0.0f, g, vload4(0, m + p) > 0.0f);
        vstore4(scale * (g - meanDy - xHat * meanDyXhat), 0, dx + p);
    }
    for (; p < plane; p++) {
        const float g = masked && !(m[p] > 0.0f) ? 0.0f : dy[p];
        dx[p] = scale * (g - meanDy - (x[p] - mean) * invStd * meanDyXhat);
    }
}
#endif
