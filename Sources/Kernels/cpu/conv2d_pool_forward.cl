// A convolution (stride 1, no padding, no bias) followed by a 2×2, stride-2
// max-pool in floor mode, without storing the convolution's output:
// pooled[b,o,py,px] = max over the window's four conv outputs
// conv[b,o,2py+dy,2px+dx] (dy, dx ∈ {0, 1}), and argmax the winner's flat
// index y·oW + x in the (oH, oW) conv output plane. Candidates are compared
// in row-major order and a later one wins only when strictly larger, so
// ties go to the first and NaN never replaces a number (a NaN first
// candidate stays), exactly as maxpool2_forward.
//
// conv2d_maxpool2_forward_W (any kernel size) and
// conv2d_maxpool2_forward3x3_W: one work-item per (channel group, image,
// window), the W output channels of the group in one vector accumulator per
// window pixel (W ∈ {1, 4, 8, 16}, see common.cl): each weight vector loaded
// feeds the window's four pixels, and the max and argmax are taken lane-wise
// in vector registers. weightT is (C·kH·kW, outPad) from
// conv_weight_patch_major; lanes ≥ outChannels are never stored. Only the
// windows that floor mode keeps are computed (an odd last conv row or column
// is never evaluated).
//
// With `relu` ≠ 0 every kernel stores RELU(pooled) instead (common.cl: a
// NaN passes), the winners unchanged: ReLU commutes with the max.

#define POOL_INT_1 int
#define POOL_INT_4 int4
#define POOL_INT_8 int8
#define POOL_INT_16 int16

// A later candidate replaces the best where it is strictly larger.
#define POOL_CANDIDATE(W, value, index) { \
    const POOL_INT_##W larger = (value) > best; \
    best = select(best, (value), larger); \
    winner = select(winner, (POOL_INT_##W)(index), larger); \
}

// The kernel body for kernel sizes KH × KW: runtime arguments in the
// general kernel, the constants 3 and 3 in the 3×3 one, whose loops UNROLL
// (_Pragma("unroll")) unrolls: PoCL does not unroll them by itself, and
// unrolled they measured ~1.3–2× faster here.
#define CONV2D_MAXPOOL2_FORWARD_BODY(W, KH, KW, UNROLL) \
    const int outHeight = height - (KH) + 1, outWidth = width - (KW) + 1; \
    const int poolHeight = outHeight / 2, poolWidth = outWidth / 2; \
    const int windows = poolHeight * poolWidth; \
    const int groups = (outChannels + W - 1) / W; \
    const int outPad = groups * W; \
    const int index = get_global_id(0); \
    if (index >= groups * batch * windows) return; \
    const int group = index / (batch * windows); \
    const int rest = index - group * batch * windows; \
    const int b = rest / windows, q = rest - b * windows; \
    const int py = q / poolWidth, px = q - py * poolWidth; \
    const int y = 2 * py, x = 2 * px; \
    __global const float* w = weightT + group * W; \
    VEC_##W acc00 = 0.0f, acc01 = 0.0f, acc10 = 0.0f, acc11 = 0.0f; \
    for (int c = 0; c < inChannels; c++) { \
        UNROLL for (int i = 0; i < (KH); i++) { \
            __global const float* top = input + ((size_t)(b * inChannels + c) * height + y + i) * width + x; \
            __global const float* bottom = top + width; \
            UNROLL for (int j = 0; j < (KW); j++) { \
                const VEC_##W wv = vload##W(0, w); \
                w += outPad; \
                acc00 += top[j] * wv; acc01 += top[j + 1] * wv; \
                acc10 += bottom[j] * wv; acc11 += bottom[j + 1] * wv; \
            } \
        } \
    } \
    const int first = y * outWidth + x; \
    VEC_##W best = acc00; \
    POOL_INT_##W winner = (POOL_INT_##W)(first); \
    POOL_CANDIDATE(W, acc01, first + 1) \
    POOL_CANDIDATE(W, acc10, first + outWidth) \
    POOL_CANDIDATE(W, acc11, first + outWidth + 1) \
    if (relu) best = RELU(VEC_##W, best); \
    const int o0 = group * W; \
    const size_t out = ((size_t)(b * outChannels + o0) * poolHeight + py) * poolWidth + px; \
    STORE_LANES_##W(best, winner, pooled + out, argmax + out, windows, outChannels - o0)

// Stores lanes t < n of `value` and `index` at value_out[t·stride] and
// index_out[t·stride], lane by lane: PoCL keeps a private array in memory,
// where a vector stored to one and read back per lane measured ~2× slower.
#define STORE_LANE(value, index, value_out, index_out, stride, n, t, L) \
    if ((t) < (n)) { (value_out)[(t) * (size_t)(stride)] = (value).s##L; (index_out)[(t) * (size_t)(stride)] = (index).s##L; }
#define STORE_LANES_1(value, index, value_out, index_out, stride, n) \
    if (0 < (n)) { (value_out)[0] = (value); (index_out)[0] = (index); }
#define STORE_LANES_4(v, i, vo, io, stride, n) \
    STORE_LANE(v, i, vo, io, stride, n, 0, 0) STORE_LANE(v, i, vo, io, stride, n, 1, 1) \
    STORE_LANE(v, i, vo, io, stride, n, 2, 2) STORE_LANE(v, i, vo, io, stride, n, 3, 3)
#define STORE_LANES_8(v, i, vo, io, stride, n) STORE_LANES_4(v, i, vo, io, stride, n) \
    STORE_LANE(v, i, vo, io, stride, n, 4, 4) STORE_LANE(v, i, vo, io, stride, n, 5, 5) \
    STORE_LANE(v, i, vo, io, stride, n, 6, 6) STORE_LANE(v, i, vo, io, stride, n, 7, 7)
#define STORE_LANES_16(v, i, vo, io, stride, n) STORE_LANES_8(v, i, vo, io, stride, n) \
    STORE_LANE(v, i, vo, io, stride, n, 8, 8) STORE_LANE(v, i, vo, io, stride, n, 9, 9) \
    STORE_LANE(v, i, vo, io, stride, n, 10, a) STORE_LANE(v, i, vo, io, stride, n, 11, b) \
    STORE_LANE(v, i, vo, io, stride, n, 12, c) STORE_LANE(v, i, vo, io, stride, n, 13, d) \
    STORE_LANE(v, i, vo, io, stride, n, 14, e) STORE_LANE(v, i, vo, io, stride, n, 15, f)

#define DEFINE_CONV2D_MAXPOOL2_FORWARD(W) \
__kernel void conv2d_maxpool2_forward_##W(__global const float* input, __global const float* weightT, \
        __global float* pooled, __global int* argmax, int batch, int inChannels, int height, int width, \
        int outChannels, int relu, int kernelHeight, int kernelWidth) { \
    CONV2D_MAXPOOL2_FORWARD_BODY(W, kernelHeight, kernelWidth, ) \
}
#define DEFINE_CONV2D_MAXPOOL2_FORWARD3X3(W) \
__kernel void conv2d_maxpool2_forward3x3_##W(__global const float* input, __global const float* weightT, \
        __global float* pooled, __global int* argmax, int batch, int inChannels, int height, int width, \
        int outChannels, int relu) { \
    CONV2D_MAXPOOL2_FORWARD_BODY(W, 3, 3, _Pragma("unroll")) \
}

#ifdef KERNEL_conv2d_maxpool2_forward_1
DEFINE_CONV2D_MAXPOOL2_FORWARD(1)
#endif
#ifdef KERNEL_conv2d_maxpool2_forward_4
DEFINE_CONV2D_MAXPOOL2_FORWARD(4)
#endif
#ifdef KERNEL_conv2d_maxpool2_forward_8
DEFINE_CONV2D_MAXPOOL2_FORWARD(8)
#endif
#ifdef KERNEL_conv2d_maxpool2_forward_16
DEFINE_CONV2D_MAXPOOL2_FORWARD(16)
#endif
#ifdef KERNEL_conv2d_maxpool2_forward3x3_1
DEFINE_CONV2D_MAXPOOL2_FORWARD3X3(1)
#endif
#ifdef KERNEL_conv2d_maxpool2_forward3x3_4
DEFINE_CONV2D_MAXPOOL2_FORWARD3X3(4)
#endif
#ifdef KERNEL_conv2d_maxpool2_forward3x3_8
DEFINE_CONV2D_MAXPOOL2_FORWARD3X3(8)
#endif
#ifdef KERNEL_conv2d_maxpool2_forward3x3_16
DEFINE_CONV2D_MAXPOOL2_FORWARD3X3(16)
#endif

// The same for 3×3 kernels and at least 8 pool windows per row, with the
// vectors along the rows instead (the better form when output channels are
// few and rows long: conv1). One work-item per (block of 4 output
// channels, image, pooled row, block of 8 windows). Two output channels at
// a time: each of the 4 input rows under the block's two conv rows, at the
// three kernel offsets, is read once (vload16) and feeds both channels'
// float16 accumulators of conv rows 2py (taps of kernel rows 0–2) and
// 2py+1 (1–3): eight independent accumulation chains. (One channel at a
// time left four chains of nine dependent multiply-adds each and read
// every row once per channel: ~1.2–1.4× the time here.) The four
// candidates of the 8 windows are then the even and odd lanes of the two
// rows, compared lane-wise, and pooled values and winners stored with one
// vstore8 each. A row's last block is shifted left to end at its last
// window (rewriting a few windows with the same values); channels past the
// last read the last channel's weights and are not stored.
#define ROWS_POOL_STORE(top, bottom, t) { \
    float8 best = top.even; \
    int8 winner = first; \
    int8 larger = top.odd > best; \
    best = select(best, top.odd, larger); winner = select(winner, first + 1, larger); \
    larger = bottom.even > best; \
    best = select(best, bottom.even, larger); winner = select(winner, first + outWidth, larger); \
    larger = bottom.odd > best; \
    best = select(best, bottom.odd, larger); winner = select(winner, first + outWidth + 1, larger); \
    if (relu) best = RELU(float8, best); \
    if (ob * 4 + (t) < outChannels) { \
        const size_t out = ((size_t)(b * outChannels + ob * 4 + (t)) * poolHeight + py) * poolWidth + start; \
        vstore8(best, 0, pooled + out); \
        vstore8(winner, 0, argmax + out); \
    } \
}
#ifdef KERNEL_conv2d_maxpool2_forward_rows3x3
__kernel void conv2d_maxpool2_forward_rows3x3(__global const float* restrict input,
        __global const float* restrict weight, __global float* restrict pooled, __global int* restrict argmax,
        int batch, int inChannels, int height, int width, int outChannels, int relu) {
    const int outHeight = height - 2, outWidth = width - 2;
    const int poolHeight = outHeight / 2, poolWidth = outWidth / 2;
    const int xBlocks = (poolWidth + 7) / 8, oBlocks = (outChannels + 3) / 4;
    const int index = get_global_id(0);
    if (index >= oBlocks * batch * poolHeight * xBlocks) return;
    const int ob = index % oBlocks;
    const int rest = index / oBlocks;
    const int bpy = rest / xBlocks, xb = rest - bpy * xBlocks;
    const int b = bpy / poolHeight, py = bpy - b * poolHeight;
    const int start = min(xb * 8, poolWidth - 8);
    const int y = 2 * py, x = 2 * start;
    const int8 first = (int8)(y * outWidth + x) + (int8)(0, 2, 4, 6, 8, 10, 12, 14);
    _Pragma("unroll") for (int t = 0; t < 4; t += 2) {
        const int o0 = min(ob * 4 + t, outChannels - 1), o1 = min(ob * 4 + t + 1, outChannels - 1);
        float16 top0 = 0.0f, bottom0 = 0.0f, top1 = 0.0f, bottom1 = 0.0f;
        for (int c = 0; c < inChannels; c++) {
            __global const float* row = input + ((size_t)(b * inChannels + c) * height + y) * width + x;
            __global const float* w0 = weight + ((size_t)o0 * inChannels + c) * 9;
            __global const float* w1 = weight + ((size_t)o1 * inChannels + c) * 9;
            _Pragma("unroll") for (int r = 0; r < 4; r++) {
                _Pragma("unroll") for (int j = 0; j < 3; j++) {
                    const float16 v = vload16(0, row + r * width + j);
                    if (r < 3) { top0 += w0[r * 3 + j] * v; top1 += w1[r * 3 + j] * v; }
                    if (r > 0) { bottom0 += w0[(r - 1) * 3 + j] * v; bottom1 += w1[(r - 1) * 3 + j] * v; }
                }
            }
        }
        ROWS_POOL_STORE(top0, bottom0, t)
        ROWS_POOL_STORE(top1, bottom1, t + 1)
    }
}
#endif
