// 2×2, stride-2 max-pooling, floor mode, with the winner's flat index y·W + x
// within its (b,c) plane. Ties go to the first candidate in row-major order:
// a later candidate replaces the best only when strictly larger.

__kernel void maxpool2_forward(__global const float* input, __global float* output,
                               __global int* argmax, int planes, int height, int width) {
    // One work-item per output row.
    const int outHeight = height / 2, outWidth = width / 2;
    const int index = get_global_id(0);
    if (index >= planes * outHeight) return;
    const int plane = index / outHeight, oy = index - plane * outHeight;
    __global const float* planeInput = input + (size_t)plane * height * width;
    for (int ox = 0; ox < outWidth; ox++) {
        const int first = (2 * oy) * width + 2 * ox;
        const int candidates[4] = { first, first + 1, first + width, first + width + 1 };
        int best = first;
        float bestValue = planeInput[first];
        for (int n = 1; n < 4; n++) {
            const float value = planeInput[candidates[n]];
            if (value > bestValue) { bestValue = value; best = candidates[n]; }
        }
        output[(size_t)index * outWidth + ox] = bestValue;
        argmax[(size_t)index * outWidth + ox] = best;
    }
}

// One work-item per input row; each element receives its window's gradient when
// it is that window's argmax, else 0. Windows do not overlap, so this gather
// overwrites gradInput in one pass with no atomics. (argmax must come from
// maxpool2_forward: each index lies inside its own window.)
__kernel void maxpool2_backward(__global const float* gradOutput, __global const int* argmax,
                                __global float* gradInput, int planes, int height, int width) {
    const int outHeight = height / 2, outWidth = width / 2;
    const int index = get_global_id(0);
    if (index >= planes * height) return;
    const int plane = index / height, y = index - plane * height;
    const int oy = y / 2;
    __global float* target = gradInput + (size_t)index * width;
    for (int x = 0; x < width; x++) {
        const int ox = x / 2;
        float gradient = 0.0f;
        if (oy < outHeight && ox < outWidth) {
            const int out = (plane * outHeight + oy) * outWidth + ox;
            if (argmax[out] == y * width + x) gradient = gradOutput[out];
        }
        target[x] = gradient;
    }
}
