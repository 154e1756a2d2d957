// A residual block's sum and the global average pool.

// output = a + b, 16 consecutive elements per work-item moved as one
// aligned float16 (as relu.cl, for the same reason: PoCL's per-work-item
// cost outweighs a few elements' arithmetic, and explicit vectors are what
// it turns into SIMD code); the last work-item finishes a count that is not
// a multiple of 16 element by element. output may be a or b: each element
// is read, then written, by the same work-item. With `relu` non-zero,
// output = RELU(a + b) (common.cl: a block's sum and the ReLU after it in
// one pass, the values relu_forward would write).
#ifdef KERNEL_residual_add
__kernel void residual_add(__global const float* a, __global const float* b, __global float* output, int count,
                           int relu) {
    const int first = get_global_id(0) * 16;
    if (first >= count) return;
    if (first + 16 <= count) {
        const float16 sum = VEC_READ(16, a + first, 0) + VEC_READ(16, b + first, 0);
        VEC_REF(16, output + first, 0) = relu ? RELU(float16, sum) : sum;
    } else {
        for (int i = first; i < count; i++) {
            const float sum = a[i] + b[i];
            output[i] = relu ? RELU(float, sum) : sum;
        }
    }
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

// gradInput[b, c, p] = gradOutput[b, c]/P, 16 consecutive elements per
// work-item stored as one aligned float16 (a per-element work-item with
// its integer division ran at ~4 GB/s on PoCL). With P ≥ 16 the 16
// elements lie in at most two planes, q and q + 1: each lane takes its
// plane's value by comparing its index with the boundary (q + 1)·P.
// Smaller planes and the last partial work-item go element by element.
#ifdef KERNEL_global_avgpool_backward
__kernel void global_avgpool_backward(__global const float* gradOutput, __global float* gradInput, int count,
                                      int plane) {
    const int first = get_global_id(0) * 16;
    if (first >= count) return;
    if (first + 16 <= count && plane >= 16) {
        const int q = first / plane;
        const int boundary = (q + 1) * plane;
        const float inFirst = gradOutput[q] / (float)plane;
        // gradOutput[q + 1] exists when plane q + 1 starts before first + 16 ≤ count.
        const float inNext = boundary < first + 16 ? gradOutput[q + 1] / (float)plane : inFirst;
        const int16 index = (int16)(first) + (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        VEC_REF(16, gradInput + first, 0) = select((float16)(inFirst), (float16)(inNext), index >= boundary);
    } else {
        const int end = min(first + 16, count);
        for (int i = first; i < end; i++) gradInput[i] = gradOutput[i / plane] / (float)plane;
    }
}
#endif
