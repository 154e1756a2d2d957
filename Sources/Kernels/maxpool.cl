// 2×2, stride-2 max-pooling, floor mode, with the winner's flat index y·W + x
// within its (b,c) plane. Ties go to the first candidate in row-major order:
// a later candidate replaces the best only when strictly larger.

__kernel void maxpool2_forward(__global const float* input, __global float* output,
                               __global int* argmax, int planes, int height, int width) {
    const int outHeight = height / 2, outWidth = width / 2;
    const int index = get_global_id(0);
    if (index >= planes * outHeight * outWidth) return;
    const int plane = index / (outHeight * outWidth);
    const int rest = index - plane * outHeight * outWidth;
    const int oy = rest / outWidth, ox = rest - oy * outWidth;
    __global const float* planeInput = input + (size_t)plane * height * width;
    int best = (2 * oy) * width + 2 * ox;
    float bestValue = planeInput[best];
    const int candidates[3] = { best + 1, best + width, best + width + 1 };
    for (int n = 0; n < 3; n++) {
        const float value = planeInput[candidates[n]];
        if (value > bestValue) { bestValue = value; best = candidates[n]; }
    }
    output[index] = bestValue;
    argmax[index] = best;
}

// One work-item per input element: it receives its window's gradient when
// it is that window's argmax, else 0. Windows do not overlap, so this gather
// overwrites gradInput in one pass with no atomics. (argmax must come from
// maxpool2_forward: each index lies inside its own window.)
__kernel void maxpool2_backward(__global const float* gradOutput, __global const int* argmax,
                                __global float* gradInput, int planes, int height, int width) {
    const int outHeight = height / 2, outWidth = width / 2;
    const int index = get_global_id(0);
    if (index >= planes * height * width) return;
    const int plane = index / (height * width);
    const int within = index - plane * height * width;
    const int y = within / width, x = within - y * width;
    const int oy = y / 2, ox = x / 2;
    float gradient = 0.0f;
    if (oy < outHeight && ox < outWidth) {
        const int out = (plane * outHeight + oy) * outWidth + ox;
        if (argmax[out] == within) gradient = gradOutput[out];
    }
    gradInput[index] = gradient;
}
