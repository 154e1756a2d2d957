// The weight gradient of a convolution followed by a 2×2 max-pool, over the
// winners only (see conv2d_pooled_backward.cl for the conventions, the
// gather and the lane macros): partial sums per chunk of images with the
// input channels in the lanes (the images moved channels-last first), or
// with the output channels in the lanes (conv1), then their reduction.

// planes (B, C, H, W) → lanes (B, H, W, W_c): lanes[b, p, c] = planes[b, c, p],
// zero for c ≥ C. One work-item per (image, row), a row's channels read
// as contiguous plane rows.
#define PLANES_TO_LANES_ROW(W, n) \
    for (int x = 0; x < width; x++) VEC_REF(W, target, x) = LANES_FROM_##W(source + x, plane, n);
#define DEFINE_CONV_PLANES_TO_LANES(W) \
__kernel void conv_planes_to_lanes_##W(__global const float* planes, __global float* lanes, \
                                       int batch, int channels, int height, int width) { \
    const int index = get_global_id(0); \
    if (index >= batch * height) return; \
    const int b = index / height, y = index - b * height; \
    __global const float* source = planes + ((size_t)b * channels * height + y) * width; \
    __global float* target = lanes + (size_t)index * width * W; \
    const size_t plane = (size_t)height * width; \
    WITH_LANE_COUNT(PLANES_TO_LANES_ROW, W, channels) \
}

// Partial weight gradients: partials[chunk, o, i·kW + j, c] = Σ over the
// chunk's images and every window q of g[b,o,q]·input[b,c,y+i,x+j], (y, x)
// the winner of q. One work-item per (chunk of images, output channel,
// block of P kernel positions), one W-lane accumulator per position, each
// a named variable (POSITION_*_P: P = 1 for any kernel size, one work-item
// per position; P = 9 for 3×3, nine accumulators fed by each winner —
// named rather than an array, which measured ~15% slower on PoCL here).
// lanes from conv_planes_to_lanes_W. With a single chunk the sums are the
// gradient itself, written straight to gradWeight (O, C, kH, kW) without
// the reduce launch.
#define POSITION_ACCUMULATORS_1(W) VEC_##W acc0 = 0.0f;
#define POSITION_ADD_1(W) acc0 += value * VEC_READ(W, patch, iFirst * width + jFirst);
#define POSITION_STORE_1(W, STORE) STORE(W, acc0, 0)
#define POSITION_ACCUMULATORS_9(W) \
    VEC_##W acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f, acc4 = 0.0f, acc5 = 0.0f, acc6 = 0.0f, \
            acc7 = 0.0f, acc8 = 0.0f;
#define POSITION_ADD_9(W) \
    acc0 += value * VEC_READ(W, patch, 0); acc1 += value * VEC_READ(W, patch, 1); \
    acc2 += value * VEC_READ(W, patch, 2); acc3 += value * VEC_READ(W, patch, width); \
    acc4 += value * VEC_READ(W, patch, width + 1); acc5 += value * VEC_READ(W, patch, width + 2); \
    acc6 += value * VEC_READ(W, patch, 2 * width); acc7 += value * VEC_READ(W, patch, 2 * width + 1); \
    acc8 += value * VEC_READ(W, patch, 2 * width + 2);
#define POSITION_STORE_9(W, STORE) \
    STORE(W, acc0, 0) STORE(W, acc1, 1) STORE(W, acc2, 2) STORE(W, acc3, 3) STORE(W, acc4, 4) \
    STORE(W, acc5, 5) STORE(W, acc6, 6) STORE(W, acc7, 7) STORE(W, acc8, 8)
// Accumulator t of the block: into the weight gradient, lanes strided by
// the kernel area, or into the chunk's partial sums, lanes contiguous.
#define STORE_GRADIENT(W, acc, t) { LANES_TO_##W(acc, out + (t), area, inChannels) }
#define STORE_PARTIAL(W, acc, t) VEC_REF(W, out, t) = acc;
#define CONV2D_POOLED_WEIGHT_BODY(W, KH, KW, P) \
    const int outHeight = height - (KH) + 1, outWidth = width - (KW) + 1; \
    const int poolHeight = outHeight / 2, poolWidth = outWidth / 2; \
    const int windows = poolHeight * poolWidth; \
    const int area = (KH) * (KW); \
    const int chunks = (batch + imagesPerChunk - 1) / imagesPerChunk; \
    const int blocks = area / (P); \
    const int index = get_global_id(0); \
    if (index >= chunks * outChannels * blocks) return; \
    const int first = (index % blocks) * (P); \
    const int iFirst = first / (KW), jFirst = first - iFirst * (KW); \
    const int chunkO = index / blocks; \
    const int chunk = chunkO / outChannels, o = chunkO - chunk * outChannels; \
    POSITION_ACCUMULATORS_##P(W) \
    const int bEnd = min(batch, (chunk + 1) * imagesPerChunk); \
    WINNER_ARRAYS \
    FOR_EACH_WINDOW_CHUNK(0, \
        for (int b = chunk * imagesPerChunk; b < bEnd; b++) { \
            const size_t plane = ((size_t)b * outChannels + o) * windows + q0; \
            const int n = gather_winners(gradient + plane, argmax + plane, reluOutput + plane, relu, count, firsts, \
                                         corners, outWidth, width, values, offsets); \
            __global const float* image = lanes + (size_t)b * height * width * W; \
            for (int k = 0; k < n; k++) { \
                const float value = values[k]; \
                __global const float* patch = image + (size_t)offsets[k] * W; \
                POSITION_ADD_##P(W) \
            } \
        }) \
    if (chunks == 1) { /* the whole sum: the weight gradient itself, (O, C, kH, kW) */ \
        __global float* out = gradWeight + (size_t)o * inChannels * area + first; \
        POSITION_STORE_##P(W, STORE_GRADIENT) \
    } else { \
        __global float* out = partials + ((size_t)chunkO * area + first) * W; \
        POSITION_STORE_##P(W, STORE_PARTIAL) \
    }

#define DEFINE_CONV2D_POOLED_WEIGHT(W) \
__kernel void conv2d_pooled_weight_partials_##W(__global const float* lanes, __global const float* gradient, \
        __global const int* argmax, __global const float* reluOutput, __global float* partials, \
        __global float* gradWeight, int batch, int inChannels, int height, int width, int outChannels, int relu, \
        int kernelHeight, int kernelWidth, int imagesPerChunk) { \
    CONV2D_POOLED_WEIGHT_BODY(W, kernelHeight, kernelWidth, 1) \
}
#define DEFINE_CONV2D_POOLED_WEIGHT3X3(W) \
__kernel void conv2d_pooled_weight_partials3x3_##W(__global const float* lanes, __global const float* gradient, \
        __global const int* argmax, __global const float* reluOutput, __global float* partials, \
        __global float* gradWeight, int batch, int inChannels, int height, int width, int outChannels, int relu, \
        int imagesPerChunk) { \
    CONV2D_POOLED_WEIGHT_BODY(W, 3, 3, 9) \
}

// The same partial sums with the output channels in the lanes instead, for
// 3×3 kernels and at most 8 output channels (conv1: one input channel,
// which would leave 7 of 8 lanes of the form above idle):
// partials[b, c·9 + i·3 + j, o] (o < 8) = Σ_q g[b,o,q]·input[b,c,y_q+i,x_q+j].
// One work-item per (image, input channel), nine float8 accumulators. Per
// window the eight channels' gradients and winners are gathered into
// vectors, the gradient masked to each of the window's four pixels (the
// winner's lanes only), and the window's 4×4 input patch feeds all 36
// multiply-adds. Lanes ≥ outChannels read the last channel and are zeroed.
// conv2d_weight_reduce (conv2d.cl) adds the images.
#define GATHER_LANES8(p, s) \
    (p)[0], (p)[(s).s1], (p)[(s).s2], (p)[(s).s3], (p)[(s).s4], (p)[(s).s5], (p)[(s).s6], (p)[(s).s7]
#ifdef KERNEL_conv2d_pooled_weight_outlanes3x3
__kernel void conv2d_pooled_weight_outlanes3x3(__global const float* input, __global const float* gradient,
        __global const int* argmax, __global const float* reluOutput, __global float* partials, int batch,
        int inChannels, int height, int width, int outChannels, int relu) {
    const int outHeight = height - 2, outWidth = width - 2;
    const int poolHeight = outHeight / 2, poolWidth = outWidth / 2;
    const int windows = poolHeight * poolWidth;
    const int index = get_global_id(0);
    if (index >= batch * inChannels) return;
    const int b = index / inChannels, c = index - b * inChannels;
    const int8 lane = (int8)(0, 1, 2, 3, 4, 5, 6, 7);
    // Both operands int8: the min(int8, int) form read lane indices as
    // garbage under Oclgrind 21.10 (127,764 reads outside the buffers in a
    // short training run), and vector-vector min is the form every
    // implementation has.
    const int8 planes = min(lane, (int8)(outChannels - 1)) * (int8)windows;
    const int8 live = lane < outChannels;
    __global const float* plane = input + (size_t)index * height * width;
    __global const float* g = gradient + (size_t)b * outChannels * windows;
    __global const int* a = argmax + (size_t)b * outChannels * windows;
    __global const float* rOut = reluOutput + (size_t)b * outChannels * windows;
    float8 a00 = 0.0f, a01 = 0.0f, a02 = 0.0f, a10 = 0.0f, a11 = 0.0f, a12 = 0.0f;
    float8 a20 = 0.0f, a21 = 0.0f, a22 = 0.0f;
    for (int qy = 0; qy < poolHeight; qy++) {
        for (int qx = 0; qx < poolWidth; qx++) {
            const int q = qy * poolWidth + qx;
            const int8 passes = relu ? (float8)(GATHER_LANES8(rOut + q, planes)) > 0.0f : (int8)(-1);
            const float8 value = select((float8)0.0f, (float8)(GATHER_LANES8(g + q, planes)), live & passes);
            const int8 position = (int8)(GATHER_LANES8(a + q, planes)) - (2 * qy * outWidth + 2 * qx);
            const float8 zero = 0.0f;
            const float8 u0 = select(zero, value, position == 0), u1 = select(zero, value, position == 1);
            const float8 l0 = select(zero, value, position == outWidth);
            const float8 l1 = select(zero, value, position == outWidth + 1);
            __global const float* r = plane + 2 * qy * width + 2 * qx;
            float p0 = r[0], p1 = r[1], p2 = r[2], p3 = r[3];
            a00 += p0 * u0 + p1 * u1; a01 += p1 * u0 + p2 * u1; a02 += p2 * u0 + p3 * u1;
            r += width; p0 = r[0]; p1 = r[1]; p2 = r[2]; p3 = r[3];
            a00 += p0 * l0 + p1 * l1; a01 += p1 * l0 + p2 * l1; a02 += p2 * l0 + p3 * l1;
            a10 += p0 * u0 + p1 * u1; a11 += p1 * u0 + p2 * u1; a12 += p2 * u0 + p3 * u1;
            r += width; p0 = r[0]; p1 = r[1]; p2 = r[2]; p3 = r[3];
            a10 += p0 * l0 + p1 * l1; a11 += p1 * l0 + p2 * l1; a12 += p2 * l0 + p3 * l1;
            a20 += p0 * u0 + p1 * u1; a21 += p1 * u0 + p2 * u1; a22 += p2 * u0 + p3 * u1;
            r += width; p0 = r[0]; p1 = r[1]; p2 = r[2]; p3 = r[3];
            a20 += p0 * l0 + p1 * l1; a21 += p1 * l0 + p2 * l1; a22 += p2 * l0 + p3 * l1;
        }
    }
    __global float* out = partials + (size_t)index * 9 * 8;
    vstore8(a00, 0, out); vstore8(a01, 1, out); vstore8(a02, 2, out);
    vstore8(a10, 3, out); vstore8(a11, 4, out); vstore8(a12, 5, out);
    vstore8(a20, 6, out); vstore8(a21, 7, out); vstore8(a22, 8, out);
}
#endif

// gradWeight[o, c, ij] = Σ_chunk partials[chunk, o, ij, c]: the chunks added
// in order. One work-item per weight.
#ifdef KERNEL_conv2d_pooled_weight_reduce
__kernel void conv2d_pooled_weight_reduce(__global const float* partials, __global float* gradWeight, int chunks,
                                          int outChannels, int inChannels, int kernelArea, int lanes) {
    const int index = get_global_id(0);
    if (index >= outChannels * inChannels * kernelArea) return;
    const int ij = index % kernelArea, oc = index / kernelArea;
    const int c = oc % inChannels, o = oc / inChannels;
    const size_t stride = (size_t)outChannels * kernelArea * lanes;
    __global const float* p = partials + ((size_t)o * kernelArea + ij) * lanes + c;
    float sum = 0.0f;
    for (int chunk = 0; chunk < chunks; chunk++) sum += p[chunk * stride];
    gradWeight[index] = sum;
}
#endif

#ifdef KERNEL_conv_planes_to_lanes_1
DEFINE_CONV_PLANES_TO_LANES(1)
#endif
#ifdef KERNEL_conv_planes_to_lanes_4
DEFINE_CONV_PLANES_TO_LANES(4)
#endif
#ifdef KERNEL_conv_planes_to_lanes_8
DEFINE_CONV_PLANES_TO_LANES(8)
#endif
#ifdef KERNEL_conv_planes_to_lanes_16
DEFINE_CONV_PLANES_TO_LANES(16)
#endif
#ifdef KERNEL_conv2d_pooled_weight_partials_1
DEFINE_CONV2D_POOLED_WEIGHT(1)
#endif
#ifdef KERNEL_conv2d_pooled_weight_partials_4
DEFINE_CONV2D_POOLED_WEIGHT(4)
#endif
#ifdef KERNEL_conv2d_pooled_weight_partials_8
DEFINE_CONV2D_POOLED_WEIGHT(8)
#endif
#ifdef KERNEL_conv2d_pooled_weight_partials_16
DEFINE_CONV2D_POOLED_WEIGHT(16)
#endif
#ifdef KERNEL_conv2d_pooled_weight_partials3x3_1
DEFINE_CONV2D_POOLED_WEIGHT3X3(1)
#endif
#ifdef KERNEL_conv2d_pooled_weight_partials3x3_4
DEFINE_CONV2D_POOLED_WEIGHT3X3(4)
#endif
#ifdef KERNEL_conv2d_pooled_weight_partials3x3_8
DEFINE_CONV2D_POOLED_WEIGHT3X3(8)
#endif
#ifdef KERNEL_conv2d_pooled_weight_partials3x3_16
DEFINE_CONV2D_POOLED_WEIGHT3X3(16)
#endif
