// ReLU: output = RELU(input) (common.cl: PyTorch's rule, a NaN passes
// through); its gradient passes where the output is > 0. With `summed`
// non-zero the gradient is gradOutput + addend (a residual block's input's
// two parts), summed and masked in one pass; addend is unread otherwise.
// One work-item per 16 consecutive elements, moved as one aligned float16
// (VEC_READ/VEC_REF, common.cl: whole stores, not halves): PoCL's
// per-work-item cost outweighs one element's arithmetic (measured here:
// one element per work-item ran at ~1 GB/s), and explicit vectors are what
// it turns into SIMD code. The last work-item finishes a count that is not
// a multiple of 16 element by element.

#ifdef KERNEL_relu_forward
__kernel void relu_forward(__global const float* input, __global float* output, int count) {
    const int first = get_global_id(0) * 16;
    if (first >= count) return;
    if (first + 16 <= count) {
        const float16 x = VEC_READ(16, input + first, 0);
        VEC_REF(16, output + first, 0) = RELU(float16, x);
    } else {
        for (int index = first; index < count; index++) {
            const float x = input[index];
            output[index] = RELU(float, x);
        }
    }
}
#endif

#ifdef KERNEL_relu_backward
__kernel void relu_backward(__global const float* output, __global const float* gradOutput,
                            __global const float* addend, __global float* gradInput, int count, int summed) {
    const int first = get_global_id(0) * 16;
    if (first >= count) return;
    if (first + 16 <= count) {
        const float16 passes = VEC_READ(16, output + first, 0);
        float16 g = VEC_READ(16, gradOutput + first, 0);
        if (summed) g += VEC_READ(16, addend + first, 0);
        // select(a, b, c) takes b where c's lane is true (all bits set).
        VEC_REF(16, gradInput + first, 0) = select((float16)0.0f, g, passes > 0.0f);
    } else {
        for (int index = first; index < count; index++) {
            const float g = summed ? gradOutput[index] + addend[index] : gradOutput[index];
            gradInput[index] = output[index] > 0.0f ? g : 0.0f;
        }
    }
}
#endif
