// The backward passes of a convolution followed by a 2×2 max-pool, from the
// pooled gradient g (B, O, pH, pW) and the pool's winners (argmax, flat
// y·oW + x in the (oH, oW) conv output plane, as conv2d_maxpool2_forward_W
// and maxpool2_forward write them). The conv output gradient is g at each
// window's winner and zero elsewhere, so both passes visit each (image,
// output channel, window) with a nonzero g once, at its winner only: at
// most a quarter of the dense passes' multiply-adds, nothing at a dropped
// odd last row or column.
//
// Mostly the input channels are the vector lanes (W = vectorWidth(C) ∈ {1,
// 4, 8, 16}, see common.cl; lanes ≥ C are zero and never stored): the input
// image is first moved channels-last (conv_planes_to_lanes_W) for the weight
// gradient, and the weights are gathered lane-wise for the data gradient, so
// that one winner's gradient times nine W-lane rows is a 3×3 kernel's whole
// contribution. With fewer than 4 input channels (conv1) the weight gradient
// has the output channels in the lanes instead
// (conv2d_pooled_weight_outlanes3x3). Every sum runs in a fixed order (no
// atomics): results are deterministic.
//
// With relu ≠ 0, reluOutput (B, O, pH, pW) is the output of a ReLU fused
// after the pool and g the gradient of that output: it passes where
// reluOutput > 0 (relu_backward's rule); with relu = 0 reluOutput is not
// read.
//
// A winner that is not one of its own window's four pixels (a corrupt
// argmax) is ignored: that window passes no gradient for that channel, and
// nothing outside the image is read or written.

// The nonzero pooled gradients are first gathered, per (image, output
// channel) and chunk of at most WINNER_CHUNK windows, into private arrays of
// values and input offsets (gather_winners), so that the multiply-adds run
// over the windows that pass gradient only: after the ReLU about half of
// them are zero. The gather is branch-free, 8 windows at a time (a branchy
// scalar gather, mispredicting on the winner's row, cost more than the
// multiply-adds it saved; vectorised it took conv2's weight partials from
// 0.12–0.18 to 0.08 ms and its data gradient from 0.20–0.28 to 0.11–0.15 ms
// on PoCL here, C harness, medians).
#define WINNER_CHUNK 64

// firsts[k] (the flat conv-output index of the top-left pixel) and
// corners[k] (its input offset y·width + x, plus `odd` in windows with an
// odd qx) of windows q0 + k, k < count.
static inline void window_tables(int q0, int count, int poolWidth, int outWidth, int width, int odd,
                                 int* firsts, int* corners) {
    int qy = q0 / poolWidth, qx = q0 - qy * poolWidth;
    for (int k = 0; k < count; k++) {
        firsts[k] = 2 * qy * outWidth + 2 * qx;
        corners[k] = 2 * qy * width + 2 * qx + (qx & 1) * odd;
        qx++;
        if (qx == poolWidth) { qx = 0; qy++; }
    }
}

// Appends window k's gradient and its winner's input offset at n, and
// returns n + 1 if the gradient is nonzero, passes the fused ReLU (`passes`:
// its output > 0, or no ReLU) and the winner is one of the window's four
// pixels (position 0, 1, outWidth or outWidth + 1 from its first), n
// otherwise: a corrupt argmax passes no gradient.
static inline int gather_one(float value, int passes, int winner, int first, int corner, int outWidth, int width,
                             float* values, int* offsets, int n) {
    const int position = winner - first;
    const int dy = position >= outWidth;
    const int dx = position - dy * outWidth;
    values[n] = value;
    offsets[n] = corner + dy * width + dx;
    return n + (((uint)dx <= 1u) & (position >= 0) & (value != 0.0f) & passes);
}

// The same for 8 windows in vector registers, then packed lane by lane
// (each lane stored at n, n advanced by its keep flag).
#define PACK_WINNER(L) values[n] = value.s##L; offsets[n] = offset.s##L; n -= keep.s##L;
static inline int gather_winners(__global const float* gradient, __global const int* argmax,
                                 __global const float* reluOutput, int relu, int count,
                                 const int* firsts, const int* corners, int outWidth, int width,
                                 float* values, int* offsets) {
    int n = 0, k = 0;
    for (; k + 8 <= count; k += 8) {
        const float8 value = vload8(0, gradient + k);
        const int8 passes = relu ? vload8(0, reluOutput + k) > 0.0f : (int8)(-1);
        const int8 position = vload8(0, argmax + k) - vload8(0, firsts + k);
        const int8 lower = position >= (int8)outWidth; /* −1 where the winner is in the second row */
        const int8 dx = position - (lower & (int8)outWidth);
        const int8 offset = vload8(0, corners + k) + (lower & (int8)width) + dx;
        const int8 keep = (dx >= (int8)0) & (dx <= (int8)1) & (position >= (int8)0) & (value != (float8)0.0f)
                          & passes;
        PACK_WINNER(0) PACK_WINNER(1) PACK_WINNER(2) PACK_WINNER(3)
        PACK_WINNER(4) PACK_WINNER(5) PACK_WINNER(6) PACK_WINNER(7)
    }
    for (; k < count; k++)
        n = gather_one(gradient[k], relu ? reluOutput[k] > 0.0f : 1, argmax[k], firsts[k], corners[k], outWidth,
                       width, values, offsets, n);
    return n;
}

// The private arrays of a gather, and a loop over the chunks of windows
// with their tables made (offsets in odd-qx windows shifted by `odd`).
#define WINNER_ARRAYS float values[WINNER_CHUNK]; int offsets[WINNER_CHUNK], firsts[WINNER_CHUNK], corners[WINNER_CHUNK];
#define FOR_EACH_WINDOW_CHUNK(odd, body) \
    for (int q0 = 0; q0 < windows; q0 += WINNER_CHUNK) { \
        const int count = min(WINNER_CHUNK, windows - q0); \
        window_tables(q0, count, poolWidth, outWidth, width, odd, firsts, corners); \
        body \
    }

// W lanes from p[t·stride] (t < n; 0 beyond), and their stores back to
// p[t·stride] (t < n), lane by lane: PoCL keeps private arrays in memory,
// and a vector moved through one measured several times slower here. The
// loops over pixels call them with n = W (a constant: no test left) when
// every lane is a channel: the per-lane tests cost conv2's data gradient
// ~0.03 ms (0.16–0.21 → 0.13–0.15 ms, C harness).
#define LANE_FROM(p, stride, n, t) ((t) < (n) ? (p)[(t) * (size_t)(stride)] : 0.0f)
// `loop(W, n)` with n = W when all `channels` fill the lanes, else n = channels.
#define WITH_LANE_COUNT(loop, W, channels) if ((channels) == W) { loop(W, W) } else { loop(W, channels) }
#define LANES_FROM_1(p, s, n) LANE_FROM(p, s, n, 0)
#define LANES_FROM_4(p, s, n) \
    (float4)(LANE_FROM(p, s, n, 0), LANE_FROM(p, s, n, 1), LANE_FROM(p, s, n, 2), LANE_FROM(p, s, n, 3))
#define LANES_FROM_8(p, s, n) (float8)(LANES_FROM_4(p, s, n), \
    LANE_FROM(p, s, n, 4), LANE_FROM(p, s, n, 5), LANE_FROM(p, s, n, 6), LANE_FROM(p, s, n, 7))
#define LANES_FROM_16(p, s, n) (float16)(LANES_FROM_8(p, s, n), \
    LANE_FROM(p, s, n, 8), LANE_FROM(p, s, n, 9), LANE_FROM(p, s, n, 10), LANE_FROM(p, s, n, 11), \
    LANE_FROM(p, s, n, 12), LANE_FROM(p, s, n, 13), LANE_FROM(p, s, n, 14), LANE_FROM(p, s, n, 15))
#define LANE_TO(v, p, stride, n, t, L) if ((t) < (n)) (p)[(t) * (size_t)(stride)] = (v).s##L;
#define LANES_TO_1(v, p, s, n) if (0 < (n)) (p)[0] = (v);
#define LANES_TO_4(v, p, s, n) \
    LANE_TO(v, p, s, n, 0, 0) LANE_TO(v, p, s, n, 1, 1) LANE_TO(v, p, s, n, 2, 2) LANE_TO(v, p, s, n, 3, 3)
#define LANES_TO_8(v, p, s, n) LANES_TO_4(v, p, s, n) \
    LANE_TO(v, p, s, n, 4, 4) LANE_TO(v, p, s, n, 5, 5) LANE_TO(v, p, s, n, 6, 6) LANE_TO(v, p, s, n, 7, 7)
#define LANES_TO_16(v, p, s, n) LANES_TO_8(v, p, s, n) \
    LANE_TO(v, p, s, n, 8, 8) LANE_TO(v, p, s, n, 9, 9) LANE_TO(v, p, s, n, 10, a) LANE_TO(v, p, s, n, 11, b) \
    LANE_TO(v, p, s, n, 12, c) LANE_TO(v, p, s, n, 13, d) LANE_TO(v, p, s, n, 14, e) LANE_TO(v, p, s, n, 15, f)

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
