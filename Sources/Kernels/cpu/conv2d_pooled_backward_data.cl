// The data gradient of a convolution followed by a 2×2 max-pool, over the
// winners only (see conv2d_pooled_backward.cl for the conventions, the
// gather and the lane macros).

// The data gradient by scatter, one image per work-item so that no two
// work-items write the same element: the image's gradient is summed
// channels-last in `work` (B, 2, H, W, W_c) — for each output channel o and
// window, the winner's gradient times the W-lane weight rows
// weight[o, ·, i, j] (input channels as lanes, gathered from the (O, C, kH,
// kW) weights) added at pixel (y+i, x+j) — then written to gradInput
// (B, C, H, W) planes. Windows with an even and an odd qx add into two
// separate sums, added in the epilogue: neighbouring windows' patches share
// a column, and one sum made each read-modify-write wait for the store just
// before it (two: conv2 0.16 → 0.14 ms, C harness, medians of 9). The
// prologue zeroes the image's sums, the epilogue writes their total out.
#define CONV2D_POOLED_DATA_PROLOGUE(W, KH, KW) \
    const int outHeight = height - (KH) + 1, outWidth = width - (KW) + 1; \
    const int poolHeight = outHeight / 2, poolWidth = outWidth / 2; \
    const int windows = poolHeight * poolWidth; \
    const int b = get_global_id(0); \
    if (b >= batch) return; \
    const int pixels = height * width; \
    __global float* image = work + (size_t)b * 2 * pixels * W; \
    for (int p = 0; p < 2 * pixels; p++) VEC_REF(W, image, p) = (VEC_##W)0.0f;
#define DATA_SUMS_TO_PLANES(W, n) \
    for (int p = 0; p < pixels; p++) { \
        const VEC_##W sum = VEC_READ(W, image, p) + VEC_READ(W, image, pixels + p); \
        LANES_TO_##W(sum, out + p, pixels, n) \
    }
#define CONV2D_POOLED_DATA_EPILOGUE(W) \
    __global float* out = gradInput + (size_t)b * inChannels * pixels; \
    WITH_LANE_COUNT(DATA_SUMS_TO_PLANES, W, inChannels)
// For each chunk of windows and output channel o (after `per_channel`),
// `body` once per nonzero winner, with its gradient `value` and `patch`,
// the image's sum at the winner's pixel.
#define FOR_EACH_WINNER(W, per_channel, body) \
    WINNER_ARRAYS \
    FOR_EACH_WINDOW_CHUNK(pixels, \
        for (int o = 0; o < outChannels; o++) { \
            per_channel \
            const size_t plane = ((size_t)b * outChannels + o) * windows + q0; \
            const int n = gather_winners(gradient + plane, argmax + plane, reluOutput + plane, relu, count, firsts, \
                                         corners, outWidth, width, values, offsets); \
            for (int k = 0; k < n; k++) { \
                const float value = values[k]; \
                __global float* patch = image + (size_t)offsets[k] * W; \
                body \
            } \
        })

// Any kernel size: each weight row gathered where it is used.
#define DEFINE_CONV2D_POOLED_DATA(W) \
__kernel void conv2d_pooled_data_##W(__global const float* gradient, __global const int* argmax, \
        __global const float* reluOutput, __global const float* weight, __global float* work, \
        __global float* gradInput, int batch, int inChannels, int height, int width, int outChannels, int relu, \
        int kernelHeight, int kernelWidth) { \
    CONV2D_POOLED_DATA_PROLOGUE(W, kernelHeight, kernelWidth) \
    const int kernelArea = kernelHeight * kernelWidth; \
    FOR_EACH_WINNER(W, __global const float* w = weight + (size_t)o * inChannels * kernelArea;, \
        for (int i = 0; i < kernelHeight; i++) { \
            for (int j = 0; j < kernelWidth; j++) { \
                const int at = i * width + j; \
                const VEC_##W row = LANES_FROM_##W(w + i * kernelWidth + j, kernelArea, inChannels); \
                VEC_REF(W, patch, at) += value * row; \
            } \
        }) \
    CONV2D_POOLED_DATA_EPILOGUE(W) \
}

// 3×3: output channel o's nine weight rows gathered once, into registers,
// for all its windows.
#define DATA3X3_ROW(W, i, j) const VEC_##W w##i##j = inChannels == W ? LANES_FROM_##W(w + (i) * 3 + (j), 9, W) \
                                                                        : LANES_FROM_##W(w + (i) * 3 + (j), 9, inChannels);
#define DATA3X3_ADD(W, i, j) \
    VEC_REF(W, patch, (i) * width + (j)) += value * w##i##j;
#define DEFINE_CONV2D_POOLED_DATA3X3(W) \
__kernel void conv2d_pooled_data3x3_##W(__global const float* gradient, __global const int* argmax, \
        __global const float* reluOutput, __global const float* weight, __global float* work, \
        __global float* gradInput, int batch, int inChannels, int height, int width, int outChannels, int relu) { \
    CONV2D_POOLED_DATA_PROLOGUE(W, 3, 3) \
    FOR_EACH_WINNER(W, \
        __global const float* w = weight + (size_t)o * inChannels * 9; \
        DATA3X3_ROW(W, 0, 0) DATA3X3_ROW(W, 0, 1) DATA3X3_ROW(W, 0, 2) \
        DATA3X3_ROW(W, 1, 0) DATA3X3_ROW(W, 1, 1) DATA3X3_ROW(W, 1, 2) \
        DATA3X3_ROW(W, 2, 0) DATA3X3_ROW(W, 2, 1) DATA3X3_ROW(W, 2, 2), \
        DATA3X3_ADD(W, 0, 0) DATA3X3_ADD(W, 0, 1) DATA3X3_ADD(W, 0, 2) \
        DATA3X3_ADD(W, 1, 0) DATA3X3_ADD(W, 1, 1) DATA3X3_ADD(W, 1, 2) \
        DATA3X3_ADD(W, 2, 0) DATA3X3_ADD(W, 2, 1) DATA3X3_ADD(W, 2, 2)) \
    CONV2D_POOLED_DATA_EPILOGUE(W) \
}

#ifdef KERNEL_conv2d_pooled_data_1
DEFINE_CONV2D_POOLED_DATA(1)
#endif
#ifdef KERNEL_conv2d_pooled_data_4
DEFINE_CONV2D_POOLED_DATA(4)
#endif
#ifdef KERNEL_conv2d_pooled_data_8
DEFINE_CONV2D_POOLED_DATA(8)
#endif
#ifdef KERNEL_conv2d_pooled_data_16
DEFINE_CONV2D_POOLED_DATA(16)
#endif
#ifdef KERNEL_conv2d_pooled_data3x3_1
DEFINE_CONV2D_POOLED_DATA3X3(1)
#endif
#ifdef KERNEL_conv2d_pooled_data3x3_4
DEFINE_CONV2D_POOLED_DATA3X3(4)
#endif
#ifdef KERNEL_conv2d_pooled_data3x3_8
DEFINE_CONV2D_POOLED_DATA3X3(8)
#endif
#ifdef KERNEL_conv2d_pooled_data3x3_16
DEFINE_CONV2D_POOLED_DATA3X3(16)
#endif
