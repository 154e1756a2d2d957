// 2×2, stride-2 max-pooling, floor mode, with the winner's flat index y·W + x
// within its (b,c) plane. Ties go to the first candidate in row-major order:
// a later candidate replaces the best only when strictly larger (so NaN
// never replaces a number, and a NaN first candidate stays).
//
// Both kernels give one work-item a whole output row and, when it has at
// least 8 (or 4) windows, handle 8 (or 4) windows at a time as vectors:
// PoCL turns explicit vectors into SIMD code but not scalar loops
// (reference-figures.md; measured here, the scalar row loops took ~1–2 ms
// per pool1 pass at batch 64, the vector ones ~0.1 ms). A row's last block
// is shifted left to end at the row's last window, recomputing (and
// rewriting with the same values) a few windows instead of a scalar tail.

// The offsets of lanes' windows' first columns from the block's first.
#define POOL_LANES_8 ((int8)(0, 2, 4, 6, 8, 10, 12, 14))
#define POOL_LANES_4 ((int4)(0, 2, 4, 6))

// N windows (N ∈ {4, 8}) of one output row from `start`: two float(2N)
// loads per input row pair, the four candidates compared lane-wise in order.
#define POOL_FORWARD_BLOCK(N, N2, startExpression) { \
    const int start = (startExpression); \
    const int firstColumn = rowFirst + 2 * start; \
    const float##N2 top = vload##N2(0, planeInput + firstColumn); \
    const float##N2 bottom = vload##N2(0, planeInput + firstColumn + width); \
    const int##N first = firstColumn + POOL_LANES_##N; \
    float##N best = top.even; \
    int##N winner = first; \
    int##N larger = top.odd > best; \
    best = select(best, top.odd, larger); winner = select(winner, first + 1, larger); \
    larger = bottom.even > best; \
    best = select(best, bottom.even, larger); winner = select(winner, first + width, larger); \
    larger = bottom.odd > best; \
    best = select(best, bottom.odd, larger); winner = select(winner, first + width + 1, larger); \
    vstore##N(best, 0, outputRow + start); \
    vstore##N(winner, 0, argmaxRow + start); \
}

// The gradients of N windows from `start` into both input rows, even and
// odd columns interleaved back by shuffle2.
#define POOL_BACKWARD_BLOCK(N, N2, startExpression, interleave) { \
    const int start = (startExpression); \
    /* The winner's position in its window: 0, 1, width or width + 1. */ \
    const int##N position = vload##N(0, argmax + out + start) - (rowFirst + 2 * start + POOL_LANES_##N); \
    const float##N gradient = vload##N(0, gradOutput + out + start), zero = 0.0f; \
    vstore##N2(shuffle2(select(zero, gradient, position == 0), select(zero, gradient, position == 1), \
                        interleave), 0, top + 2 * start); \
    vstore##N2(shuffle2(select(zero, gradient, position == width), \
                        select(zero, gradient, position == width + 1), interleave), 0, bottom + 2 * start); \
}

#ifdef KERNEL_maxpool2_forward
__kernel void maxpool2_forward(__global const float* input, __global float* output,
                               __global int* argmax, int planes, int height, int width) {
    const int outHeight = height / 2, outWidth = width / 2;
    const int index = get_global_id(0);
    if (index >= planes * outHeight) return;
    const int plane = index / outHeight, oy = index - plane * outHeight;
    __global const float* planeInput = input + (size_t)plane * height * width;
    __global float* outputRow = output + (size_t)index * outWidth;
    __global int* argmaxRow = argmax + (size_t)index * outWidth;
    const int rowFirst = 2 * oy * width;
    if (outWidth >= 8) {
        for (int block = 0; block < outWidth; block += 8) POOL_FORWARD_BLOCK(8, 16, min(block, outWidth - 8))
        return;
    }
    if (outWidth >= 4) {
        for (int block = 0; block < outWidth; block += 4) POOL_FORWARD_BLOCK(4, 8, min(block, outWidth - 4))
        return;
    }
    for (int ox = 0; ox < outWidth; ox++) {
        const int first = rowFirst + 2 * ox;
        const int candidates[4] = { first, first + 1, first + width, first + width + 1 };
        int best = first;
        float bestValue = planeInput[first];
        for (int n = 1; n < 4; n++) {
            const float value = planeInput[candidates[n]];
            if (value > bestValue) { bestValue = value; best = candidates[n]; }
        }
        outputRow[ox] = bestValue;
        argmaxRow[ox] = best;
    }
}
#endif

// One work-item per pair of input rows (2r, 2r+1), i.e. per output row r,
// plus, when the height is odd, one for the dropped last row: each window's
// argmax and gradient are read once and its four elements written (the
// winner receives the gradient, the others 0). Windows do not overlap, so
// this overwrites gradInput in one pass with no atomics. Elements in no
// window (a dropped odd last row or column) receive 0. (argmax must come
// from maxpool2_forward: each index lies inside its own window.)
#ifdef KERNEL_maxpool2_backward
__kernel void maxpool2_backward(__global const float* gradOutput, __global const int* argmax,
                                __global float* gradInput, int planes, int height, int width) {
    const int outHeight = height / 2, outWidth = width / 2;
    const int pairs = (height + 1) / 2;
    const int index = get_global_id(0);
    if (index >= planes * pairs) return;
    const int plane = index / pairs, r = index - plane * pairs;
    __global float* top = gradInput + ((size_t)plane * height + 2 * r) * width;
    if (r >= outHeight) {  // the odd last row
        for (int x = 0; x < width; x++) top[x] = 0.0f;
        return;
    }
    __global float* bottom = top + width;
    const int out = (plane * outHeight + r) * outWidth;
    const int rowFirst = 2 * r * width;
    if (outWidth >= 8) {
        const uint16 interleave = (uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
        for (int block = 0; block < outWidth; block += 8)
            POOL_BACKWARD_BLOCK(8, 16, min(block, outWidth - 8), interleave)
    } else if (outWidth >= 4) {
        const uint8 interleave = (uint8)(0, 4, 1, 5, 2, 6, 3, 7);
        for (int block = 0; block < outWidth; block += 4)
            POOL_BACKWARD_BLOCK(4, 8, min(block, outWidth - 4), interleave)
    } else {
        for (int ox = 0; ox < outWidth; ox++) {
            const int position = argmax[out + ox] - rowFirst - 2 * ox;
            const float gradient = gradOutput[out + ox];
            top[2 * ox] = position == 0 ? gradient : 0.0f;
            top[2 * ox + 1] = position == 1 ? gradient : 0.0f;
            bottom[2 * ox] = position == width ? gradient : 0.0f;
            bottom[2 * ox + 1] = position == width + 1 ? gradient : 0.0f;
        }
    }
    if (width % 2 != 0) { top[width - 1] = 0.0f; bottom[width - 1] = 0.0f; }
}
#endif
