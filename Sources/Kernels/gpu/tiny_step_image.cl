// TinyConvNet's whole training pass for one image, in one work-group (the
// gpu family's fused step; TinyConvNet.swift has the layers, and the
// semantics are those of gpu/conv2d_pooled.cl and gpu/dense.cl):
//
//   relu1 = ReLU(maxpool2(conv1(image)))         (8, 13, 13)
//   relu2 = ReLU(maxpool2(conv2(relu1)))         (16, 5, 5)
//   z     = fc.weight · relu2 + fc.bias          (10)
//   loss  = logsumexp(z) − z[label];  ∂loss/∂z = (softmax(z) − onehot)/batch
//
// then the backward pass through all of it. With `gathered` set, the group
// first gathers its image as batch_gather1 does (n = order[start + b]:
// image = pixels[n]·scale − shift, label = pixelLabels[n]; NaN pixels and
// label −1 where n is outside 0..<count) and stores both in `input` and
// `labels`; otherwise it reads them there (and the gather's buffers are
// not read). Image b writes its logits, its
// loss and correct flag (perSample[b], perSample[batch + b]: the first
// largest logit is the label), and its share of every weight gradient to
// partials[b·5234 + k], k in checkpoint order: conv1 (72), conv2 (1,152),
// fc.weight (4,000), fc.bias (10). gpu_sum_image_partials adds the images'
// shares in image order: no atomics, the same weights on every run.
//
// Every activation of the image stays in local memory: `tile` holds 5,532
// floats (22,128 bytes) and `winners` 1,752 bytes, each pool's winner as its
// offset dy·2 + dx in its window. Ties go to the first candidate in
// row-major order and NaN never replaces a number; gradients pass where the
// ReLU output is > 0; a label outside [0, 10) gives a NaN loss (as
// gpu_softmax_cross_entropy). The work-items of the group share each phase
// (loops of stride get_local_size(0), any size ≥ 1), with a barrier between
// phases; each sum runs in a fixed order for a given group size.
#ifdef KERNEL_gpu_tiny_step_image
#define TS_SIDE 28
#define TS_C1 8
#define TS_P1 13
#define TS_C2 16
#define TS_O2 11
#define TS_P2 5
#define TS_FEATURES 400
#define TS_CLASSES 10
#define TS_W1 72
#define TS_W2 1152
#define TS_FCW 4000
#define TS_PARAMETERS 5234
#define TS_POOLED1 (TS_C1 * TS_P1 * TS_P1)
#define TS_POOLED2 (TS_C2 * TS_P2 * TS_P2)

// s00…s11 += the 3×3 taps `k` (row-major) at the four positions of a 2×2
// pool window whose top-left input is `corner`, in rows of `stride` floats.
static inline void ts_window_taps(__local const float* corner, int stride, __local const float* k, float* s00,
                                  float* s01, float* s10, float* s11) {
    for (int i = 0; i < 3; i++) {
        __local const float* top = corner + i * stride;
        __local const float* bottom = top + stride;
        for (int j = 0; j < 3; j++) {
            const float w = k[i * 3 + j];
            *s00 += w * top[j]; *s01 += w * top[j + 1];
            *s10 += w * bottom[j]; *s11 += w * bottom[j + 1];
        }
    }
}

// The window's maximum into *best and its offset dy·2 + dx; ties go to the
// first in row-major order, and NaN never replaces a number.
static inline uchar ts_window_winner(float s00, float s01, float s10, float s11, float* best) {
    uchar winner = 0;
    *best = s00;
    if (s01 > *best) { *best = s01; winner = 1; }
    if (s10 > *best) { *best = s10; winner = 2; }
    if (s11 > *best) { *best = s11; winner = 3; }
    return winner;
}

__kernel void gpu_tiny_step_image(__global float* input, __global int* labels,
        __global const float* conv1, __global const float* conv2, __global const float* fcWeight,
        __global const float* fcBias, __global float* logits, __global float* perSample,
        __global float* partials, __local float* tile, __local uchar* winners, int batch, int gathered,
        __global const uchar* pixels, __global const uchar* pixelLabels, __global const int* order, int start,
        int count, float scale, float shift) {
    const int lid = get_local_id(0), size = get_local_size(0);
    const int b = get_group_id(0);
    // The host launches `batch` groups: b < batch in all of them.
    __local float* image = tile;                    // 784
    __local float* w1 = image + TS_SIDE * TS_SIDE;  // 72
    __local float* w2 = w1 + TS_W1;                 // 1,152; then conv1's weight-gradient parts
    __local float* relu1 = w2 + TS_W2;              // 1,352
    __local float* relu2 = relu1 + TS_POOLED1;      // 400
    __local float* g2 = relu2 + TS_POOLED2;         // 400: fc's parts, then ∂loss/∂relu2 masked
    __local float* g1 = g2 + TS_POOLED2;            // 1,352: ∂loss/∂relu1 masked
    __local float* z = g1 + TS_POOLED1;             // 10 logits, then 10 of their gradient
    __local uchar* win1 = winners;                  // 1,352
    __local uchar* win2 = winners + TS_POOLED1;     // 400
    __global float* part = partials + (size_t)b * TS_PARAMETERS;

    __global float* source = input + (size_t)b * TS_SIDE * TS_SIDE;
    int label;
    if (gathered) {
        const int n = order[start + b];
        const bool valid = n >= 0 && n < count;
        __global const uchar* bytes = pixels + (size_t)n * TS_SIDE * TS_SIDE;
        for (int k = lid; k < TS_SIDE * TS_SIDE; k += size) {
            float value = NAN;
            if (valid) {
                // Two statements: the product is rounded before the
                // subtraction (no fma), as the gather and the host compute it.
                const float scaled = (float)bytes[k] * scale;
                value = scaled - shift;
            }
            image[k] = value;
            source[k] = value;
        }
        label = valid ? (int)pixelLabels[n] : -1;
        if (lid == 0) labels[b] = label;
    } else {
        for (int k = lid; k < TS_SIDE * TS_SIDE; k += size) image[k] = source[k];
        label = labels[b];
    }
    for (int k = lid; k < TS_W1; k += size) w1[k] = conv1[k];
    for (int k = lid; k < TS_W2; k += size) w2[k] = conv2[k];
    barrier(CLK_LOCAL_MEM_FENCE);

    // conv1 + pool + ReLU: a work-item per pooled output (o, qy, qx).
    for (int t = lid; t < TS_POOLED1; t += size) {
        const int o = t / (TS_P1 * TS_P1), q = t - o * (TS_P1 * TS_P1);
        const int qy = q / TS_P1, qx = q - qy * TS_P1;
        __local const float* corner = image + 2 * qy * TS_SIDE + 2 * qx;
        __local const float* wo = w1 + o * 9;
        float s00 = 0.0f, s01 = 0.0f, s10 = 0.0f, s11 = 0.0f;
        ts_window_taps(corner, TS_SIDE, wo, &s00, &s01, &s10, &s11);
        float best;
        win1[t] = ts_window_winner(s00, s01, s10, s11, &best);
        relu1[t] = RELU(float, best);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // conv2 + pool + ReLU: a work-item per pooled output; row and column 10
    // of conv2's 11×11 output belong to no window (floor mode).
    for (int t = lid; t < TS_POOLED2; t += size) {
        const int o = t / (TS_P2 * TS_P2), q = t - o * (TS_P2 * TS_P2);
        const int qy = q / TS_P2, qx = q - qy * TS_P2;
        float s00 = 0.0f, s01 = 0.0f, s10 = 0.0f, s11 = 0.0f;
        for (int c = 0; c < TS_C1; c++) {
            __local const float* corner = relu1 + c * TS_P1 * TS_P1 + 2 * qy * TS_P1 + 2 * qx;
            ts_window_taps(corner, TS_P1, w2 + (o * TS_C1 + c) * 9, &s00, &s01, &s10, &s11);
        }
        float best;
        win2[t] = ts_window_winner(s00, s01, s10, s11, &best);
        relu2[t] = RELU(float, best);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // fc: logit j's 400 terms in `parts` runs of consecutive features, a
    // work-item per (j, run), then the runs added in order.
    const int parts = clamp(size / TS_CLASSES, 1, 40);
    const int run = (TS_FEATURES + parts - 1) / parts;
    for (int t = lid; t < TS_CLASSES * parts; t += size) {
        const int j = t / parts, p = t - j * parts;
        const int first = p * run, last = min(TS_FEATURES, first + run);
        __global const float* wj = fcWeight + j * TS_FEATURES;
        float sum = 0.0f;
        for (int k = first; k < last; k++) sum += wj[k] * relu2[k];
        g2[t] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int j = lid; j < TS_CLASSES; j += size) {
        float sum = 0.0f;
        for (int p = 0; p < parts; p++) sum += g2[j * parts + p];
        z[j] = sum + fcBias[j];
        logits[(size_t)b * TS_CLASSES + j] = z[j];
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // Softmax cross-entropy: the logits' gradient into z[10..20).
    for (int k = lid; k < TS_CLASSES; k += size) {
        int best = 0;
        for (int n = 1; n < TS_CLASSES; n++) if (z[n] > z[best]) best = n;
        const float top = z[best];
        float sumExp = 0.0f;
        for (int n = 0; n < TS_CLASSES; n++) sumExp += exp(z[n] - top);
        const float p = exp(z[k] - top) / sumExp;
        z[TS_CLASSES + k] = (p - (k == label ? 1.0f : 0.0f)) * (1.0f / (float)batch);
        if (k == 0) {
            const bool valid = label >= 0 && label < TS_CLASSES;
            perSample[b] = valid ? log(sumExp) + top - z[label] : NAN;
            perSample[batch + b] = (valid && best == label) ? 1.0f : 0.0f;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __local const float* gz = z + TS_CLASSES;

    // fc backward: the weight and bias shares, and ∂loss/∂relu2 where the
    // ReLU passed.
    for (int k = lid; k < TS_FCW; k += size) {
        const int j = k / TS_FEATURES, i = k - j * TS_FEATURES;
        part[TS_W1 + TS_W2 + k] = gz[j] * relu2[i];
    }
    for (int j = lid; j < TS_CLASSES; j += size) part[TS_W1 + TS_W2 + TS_FCW + j] = gz[j];
    for (int i = lid; i < TS_FEATURES; i += size) {
        float sum = 0.0f;
        for (int j = 0; j < TS_CLASSES; j++) sum += gz[j] * fcWeight[j * TS_FEATURES + i];
        g2[i] = relu2[i] > 0.0f ? sum : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // conv2's weight share: w[o,c,i,j] = Σ over o's 25 windows q of
    // g2[o,q]·relu1[c, 2qy + dy + i, 2qx + dx + j], (dy, dx) q's winner.
    for (int k = lid; k < TS_W2; k += size) {
        const int o = k / (TS_C1 * 9), r = k - o * (TS_C1 * 9);
        const int c = r / 9, ij = r - c * 9, i = ij / 3, j = ij - i * 3;
        __local const float* plane = relu1 + c * TS_P1 * TS_P1 + i * TS_P1 + j;
        float sum = 0.0f;
        for (int q = 0; q < TS_P2 * TS_P2; q++) {
            const int qy = q / TS_P2, qx = q - qy * TS_P2;
            const int w = win2[o * TS_P2 * TS_P2 + q];
            sum += g2[o * TS_P2 * TS_P2 + q] * plane[(2 * qy + (w >> 1)) * TS_P1 + 2 * qx + (w & 1)];
        }
        part[TS_W1 + k] = sum;
    }

    // conv2's data gradient by gather, masked by relu1: input (c, y, x) adds
    // g2[o,q]·w2[o,c,y − wy, x − wx] over the windows q whose winner (wy, wx)
    // is within the kernel's reach (at most 2×2 windows per channel).
    for (int t = lid; t < TS_POOLED1; t += size) {
        const int c = t / (TS_P1 * TS_P1), p = t - c * (TS_P1 * TS_P1);
        const int y = p / TS_P1, x = p - y * TS_P1;
        const int qyFirst = max(0, (y - 2) / 2), qyLast = min(TS_P2 - 1, y / 2);
        const int qxFirst = max(0, (x - 2) / 2), qxLast = min(TS_P2 - 1, x / 2);
        float sum = 0.0f;
        for (int o = 0; o < TS_C2; o++) {
            __local const float* wk = w2 + (o * TS_C1 + c) * 9;
            for (int qy = qyFirst; qy <= qyLast; qy++) {
                for (int qx = qxFirst; qx <= qxLast; qx++) {
                    const int k = o * TS_P2 * TS_P2 + qy * TS_P2 + qx;
                    const int w = win2[k];
                    const int i = y - 2 * qy - (w >> 1), j = x - 2 * qx - (w & 1);
                    if (i >= 0 && i < 3 && j >= 0 && j < 3) sum += g2[k] * wk[i * 3 + j];
                }
            }
        }
        g1[t] = relu1[t] > 0.0f ? sum : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // conv1's weight share: w[o,i,j] = Σ over o's 169 windows q of
    // g1[o,q]·image[2qy + dy + i, 2qx + dx + j], in `pieces` runs of windows
    // per weight (a work-item each, sums into w2's space, no longer read),
    // then the runs added in order.
    const int pieces = clamp(size / TS_W1, 1, 13);
    const int span = (TS_P1 * TS_P1 + pieces - 1) / pieces;
    __local float* sums = w2;
    for (int t = lid; t < TS_W1 * pieces; t += size) {
        const int k = t / pieces, piece = t - k * pieces;
        const int o = k / 9, ij = k - o * 9, i = ij / 3, j = ij - i * 3;
        const int first = piece * span, last = min(TS_P1 * TS_P1, first + span);
        float sum = 0.0f;
        for (int q = first; q < last; q++) {
            const int qy = q / TS_P1, qx = q - qy * TS_P1;
            const int w = win1[o * TS_P1 * TS_P1 + q];
            sum += g1[o * TS_P1 * TS_P1 + q] * image[(2 * qy + (w >> 1) + i) * TS_SIDE + 2 * qx + (w & 1) + j];
        }
        sums[t] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = lid; k < TS_W1; k += size) {
        float sum = 0.0f;
        for (int piece = 0; piece < pieces; piece++) sum += sums[k * pieces + piece];
        part[k] = sum;
    }
}
#endif
