// The batch's gradient from per-image shares (gpu_tiny_step_image's
// `partials`, images × (n0 + n1 + n2 + n3) floats, image-major):
// gradient[k] = Σ_b partials[b·total + k], the images added in order (the
// same sum on every run). One work-item per element of up to four tensors
// (tensor t owns the next n_t work-items, as the optimisers' kernels);
// neighbouring work-items read neighbouring floats of each image's row.
#ifdef KERNEL_gpu_sum_image_partials
__kernel void gpu_sum_image_partials(__global const float* partials, __global float* out0,
        __global float* out1, __global float* out2, __global float* out3, int n0, int n1, int n2, int n3,
        int images) {
    const int total = n0 + n1 + n2 + n3;
    const int column = get_global_id(0);
    TENSOR_SLOT(n0, n1, n2, n3, index, slot)
    __global float* out = PICK(slot, out0, out1, out2, out3);
    float sum = 0.0f;
    for (int b = 0; b < images; b++) sum += partials[(size_t)b * total + column];
    out[index] = sum;
}
#endif
