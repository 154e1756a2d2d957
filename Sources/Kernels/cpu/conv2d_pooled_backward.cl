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
//
// This file holds what both passes share: the gather of the winners and the
// moves between planes and vector lanes. The weight gradient is in
// conv2d_pooled_backward_weight.cl, the data gradient in
// conv2d_pooled_backward_data.cl; KernelSource.all joins the files in name
// order, so these definitions come before their uses.

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
