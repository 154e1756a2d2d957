// A residual block's sum and the global average pool.

// output = a + b, four elements per work-item (output may be a or b: each
// element is read, then written, by the same work-item).
#ifdef KERNEL_residual_add
__kernel void residual_add(__global const float* a, __global const float* b, __global float* output, int count) {
    const int first = get_global_id(0) * 4;
    const int end = min(first + 4, count);
    for (int i = first; i < end; i++) output[i] = a[i] + b[i];
}
#endif

// output[b, c] = the mean of plane (b, c) of (B, C, P): one work-item per
// plane, its pixels summed in order.
#ifdef KERNEL_global_avgpool_forward
__kernel void global_avgpool_forward(__global const float* input, __global float* output, int planes, int plane) {
    const int index = get_global_id(0);
    if (index >= planes) return;
    __global const float* x = input + (size_t)index * plane;
    float sum = 0.0f;
    for (int p = 0; p < plane; p++) sum += x[p];
    output[index] = sum / (float)plane;
}
#endif

// gradInput[b, c, p] = gradOutput[b, c]/P, one work-item per element.
#ifdef KERNEL_global_avgpool_backward
__kernel void global_avgpool_backward(__global const float* gradOutput, __global float* gradInput, int count,
                                      int plane) {
    const int index = get_global_id(0);
    if (index >= count) return;
    gradInput[index] = gradOutput[index / plane] / (float)plane;
}
#endif
