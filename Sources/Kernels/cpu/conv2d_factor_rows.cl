// A factorised eval-mode convolution layer (InferenceDevice.fusedConvolutionForward
// with a pointwise factor) in one launch for the cpu family: the k×k stride-1
// convolution C → r over the zero-padded input (conv_pad_gradient, or the input
// itself where the padding is 0), then the 1×1 convolution r → O, the affine
// map, the residual sum and the ReLU, so that the rank-r map t never goes to
// memory:
// t[j,p] = Σ_{c,i,k} weightT[(c·kH + i)·kW + k, j]·padded[b,c,y+i,x+k] (+ bias[j]),
// output[b,o,y,x] = r(Σ_{j<r} pointwise[o,j]·t[j,p]·scale[o] + shift[o] + residual[b,o,y,x]),
// r the ReLU (common.cl's RELU) when `relu`, no residual term unless
// `hasResidual`. weightT from conv_weight_patch_major with outPad = R
// (zero past r), so the sums past r stay 0 and are never read.
// Lanes run along 16 consecutive output pixels of a row, R accumulators
// along the rank (R = 4, 6, 8, 12, 16 or 18, the smallest ≥ r; at most 18
// float16 sums and the row vector, within AVX-512's 32 registers): a tap
// costs one row load and R multiply-adds of 16 pixels, where the blocked
// forward with channels in its lanes pays a whole vector per pixel and per
// 16 channels begun (OpenCLDevice+FactorRows.swift compares the two).
// One work-item per (image, output row, block of 16 pixels). A row of
// oW ≥ 16: the last block starts at oW − 16 and stores only the pixels no
// earlier block wrote, so every read stays inside its padded row
// (x + k ≤ oW − 1 + kW − 1 = Wp − 1). A row of oW < 16: one block, whose
// lanes past oW read on into the next padded row (and, after the last row,
// into the 16 floats of slack the launch gives the padded copy) and are
// never stored; its residual reads stop at oW too. Every output is written once.

#define FACTOR_R4(M) M(0) M(1) M(2) M(3)
#define FACTOR_R6(M) FACTOR_R4(M) M(4) M(5)
#define FACTOR_R8(M) FACTOR_R6(M) M(6) M(7)
#define FACTOR_R12(M) FACTOR_R8(M) M(8) M(9) M(10) M(11)
#define FACTOR_R16(M) FACTOR_R12(M) M(12) M(13) M(14) M(15)
#define FACTOR_R18(M) FACTOR_R16(M) M(16) M(17)
#define FACTOR_DECLARE(j) float16 t##j = 0.0f;
#define FACTOR_FMA(j) t##j += w[j] * v;
#define FACTOR_BIAS(j) if (j < rank) t##j += bias[j];
#define FACTOR_EXPAND(j) if (j < rank) u += pointwise[o * rank + j] * t##j;

// Lanes first … first + n − 1 of v (0 < n, first + n ≤ 16) to p[first …],
// in pieces of 8, 4, 2 and 1 lanes, nothing else written.
static inline void factor_store_lanes(float16 v, int first, int n, __global float* p) {
    if (first == 0 && n == 16) {
        vstore16(v, 0, p);
        return;
    }
    float lanes[16];
    vstore16(v, 0, lanes);
    int l = first;
    if (n & 8) { vstore8(vload8(0, lanes + l), 0, p + l); l += 8; }
    if (n & 4) { vstore4(vload4(0, lanes + l), 0, p + l); l += 4; }
    if (n & 2) { vstore2(vload2(0, lanes + l), 0, p + l); l += 2; }
    if (n & 1) p[l] = lanes[l];
}

// p[0 … n − 1] in lanes 0 … n − 1 (0 < n ≤ 16), zeros after, nothing past p[n − 1] read.
static inline float16 factor_load_lanes(int n, __global const float* p) {
    if (n == 16) return vload16(0, p);
    float lanes[16];
    vstore16((float16)(0.0f), 0, lanes);
    int l = 0;
    if (n & 8) { vstore8(vload8(0, p + l), 0, lanes + l); l += 8; }
    if (n & 4) { vstore4(vload4(0, p + l), 0, lanes + l); l += 4; }
    if (n & 2) { vstore2(vload2(0, p + l), 0, lanes + l); l += 2; }
    if (n & 1) lanes[l] = p[l];
    return vload16(0, lanes);
}

#define DEFINE_CONV2D_FACTOR_ROWS(R) \
__kernel void conv2d_factor_rows_##R(__global const float* input, __global const float* weightT, \
        __global const float* bias, int hasBias, __global const float* pointwise, __global const float* scale, \
        __global const float* shift, __global const float* residual, int hasResidual, int relu, \
        __global float* output, int batch, int inChannels, int paddedHeight, int paddedWidth, int kernelHeight, \
        int kernelWidth, int rank, int outChannels, int outHeight, int outWidth) { \
    const int blocks = (outWidth + 15) / 16; \
    const int index = get_global_id(0); \
    if (index >= batch * outHeight * blocks) return; \
    const int block = index % blocks, rest = index / blocks; \
    const int y = rest % outHeight, b = rest / outHeight; \
    const int x0 = max(0, min(block * 16, outWidth - 16)), first = block * 16 - x0; \
    const int stored = min(16, outWidth) - first; \
    FACTOR_R##R(FACTOR_DECLARE) \
    __global const float* w = weightT; \
    for (int c = 0; c < inChannels; c++) { \
        for (int i = 0; i < kernelHeight; i++) { \
            __global const float* row = input + (((size_t)b * inChannels + c) * paddedHeight + y + i) * paddedWidth \
                + x0; \
            for (int k = 0; k < kernelWidth; k++, w += R) { \
                const float16 v = vload16(0, row + k); \
                FACTOR_R##R(FACTOR_FMA) \
            } \
        } \
    } \
    if (hasBias) { FACTOR_R##R(FACTOR_BIAS) } \
    const int plane = outHeight * outWidth; \
    size_t out = (size_t)b * outChannels * plane + y * outWidth + x0; \
    for (int o = 0; o < outChannels; o++, out += plane) { \
        float16 u = 0.0f; \
        FACTOR_R##R(FACTOR_EXPAND) \
        float16 v = u * scale[o] + shift[o]; \
        if (hasResidual) v += outWidth >= 16 ? vload16(0, residual + out) : factor_load_lanes(outWidth, residual + out); \
        if (relu) v = RELU(float16, v); \
        factor_store_lanes(v, first, stored, output + out); \
    } \
}

#ifdef KERNEL_conv2d_factor_rows_4
DEFINE_CONV2D_FACTOR_ROWS(4)
#endif
#ifdef KERNEL_conv2d_factor_rows_6
DEFINE_CONV2D_FACTOR_ROWS(6)
#endif
#ifdef KERNEL_conv2d_factor_rows_8
DEFINE_CONV2D_FACTOR_ROWS(8)
#endif
#ifdef KERNEL_conv2d_factor_rows_12
DEFINE_CONV2D_FACTOR_ROWS(12)
#endif
#ifdef KERNEL_conv2d_factor_rows_16
DEFINE_CONV2D_FACTOR_ROWS(16)
#endif
#ifdef KERNEL_conv2d_factor_rows_18
DEFINE_CONV2D_FACTOR_ROWS(18)
#endif
