// ReLU: output = max(input, 0); its gradient passes where the output is > 0.

__kernel void relu_forward(__global const float* input, __global float* output, int count) {
    const int index = get_global_id(0);
    if (index >= count) return;
    output[index] = fmax(input[index], 0.0f);
}

__kernel void relu_backward(__global const float* output, __global const float* gradOutput,
                            __global float* gradInput, int count) {
    const int index = get_global_id(0);
    if (index >= count) return;
    gradInput[index] = output[index] > 0.0f ? gradOutput[index] : 0.0f;
}
