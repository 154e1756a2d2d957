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
// Lanes run along 16 consecutive output pixels of a row (output width ≥ 16),
// R accumulators along the rank (R = 4, 8 or 16, the smallest ≥ r): a tap
// costs one row load and R multiply-adds of 16 pixels, where the blocked
// forward with channels in its lanes pays a whole vector per pixel for r ≤ 8.
// One work-item per (image, output row, block of 16 pixels): the last block
// of a row starts at oW − 16 and stores only the pixels no earlier block
// wrote, so every read stays inside its row of the padded input (x + k ≤
// oW − 1 + kW − 1 = Wp − 1) and every output is written once.

#define FACTOR_R4(M) M(0) M(1) M(2) M(3)
#define FACTOR_R8(M) FACTOR_R4(M) M(4) M(5) M(6) M(7)
#define FACTOR_R16(M) FACTOR_R8(M) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define FACTOR_DECLARE(j) float16 t##j = 0.0f;
#define FACTOR_FMA(j) t##j += w[j] * v;
#define FACTOR_BIAS(j) if (j < rank) t##j += bias[j];
#define FACTOR_EXPAND(j) if (j < rank) u += pointwise[o * rank + j] * t##j;
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
    const int x0 = min(block * 16, outWidth - 16), skip = block * 16 - x0; \
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
        if (hasResidual) v += vload16(0, residual + out); \
        if (relu) v = RELU(float16, v); \
        if (skip == 0) { \
            vstore16(v, 0, output + out); \
        } else { \
            float lanes[16]; \
            vstore16(v, 0, lanes); \
            for (int l = skip; l < 16; l++) output[out + l] = lanes[l]; \
        } \
    } \
}

#ifdef KERNEL_conv2d_factor_rows_4
DEFINE_CONV2D_FACTOR_ROWS(4)
#endif
#ifdef KERNEL_conv2d_factor_rows_8
DEFINE_CONV2D_FACTOR_ROWS(8)
#endif
#ifdef KERNEL_conv2d_factor_rows_16
DEFINE_CONV2D_FACTOR_ROWS(16)
#endif
