// ReLU: output = input where input > 0 or is NaN, else 0 (PyTorch's rule: a
// NaN passes through, so a diverging run shows in the loss instead of being
// silenced, as fmax would); its gradient passes where the output is > 0.
// One work-item per 16 consecutive elements, moved as one float16: PoCL's
// per-work-item cost outweighs one element's arithmetic (measured here:
// one element per work-item ran at ~1 GB/s), and explicit vectors are what
// it turns into SIMD code. The last work-item finishes a count that is not
// a multiple of 16 element by element.

__kernel void relu_forward(__global const float* input, __global float* output, int count) {
    const int first = get_global_id(0) * 16;
    if (first >= count) return;
    if (first + 16 <= count) {
        const float16 x = vload16(0, input + first);
        vstore16(select((float16)0.0f, x, (x > 0.0f) | isnan(x)), 0, output + first);
    } else {
        for (int index = first; index < count; index++) {
            const float x = input[index];
            output[index] = (x > 0.0f || isnan(x)) ? x : 0.0f;
        }
    }
}

__kernel void relu_backward(__global const float* output, __global const float* gradOutput,
                            __global float* gradInput, int count) {
    const int first = get_global_id(0) * 16;
    if (first >= count) return;
    if (first + 16 <= count) {
        const float16 passes = vload16(0, output + first);
        // select(a, b, c) takes b where c's lane is true (all bits set).
        vstore16(select((float16)0.0f, vload16(0, gradOutput + first), passes > 0.0f), 0, gradInput + first);
    } else {
        for (int index = first; index < count; index++)
            gradInput[index] = output[index] > 0.0f ? gradOutput[index] : 0.0f;
    }
}
