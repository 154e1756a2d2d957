// The general convolution (stride s, zero padding p) for the cpu family as
// register-blocked implicit GEMMs over an input that conv_pad_gradient
// (common/conv2d.cl) first zero-padded (or the input itself where no
// padding is needed), so that no read needs a bounds check: every (pixel,
// tap) address is a pixel's base plus a tap's offset. Each work-item keeps a
// block of W channels × P pixels or taps in P floatW accumulators (PoCL
// vectorises explicit vector types, reference-figures.md): W = 16 with
// P = 6 (12 AVX2 registers of sums, two weight loads and six broadcasts per
// twelve multiply-adds; with AVX-512, as PoCL compiles for here, six
// registers and six multiply-adds with embedded broadcasts), W = 8 or 4
// with P = 8. W is the smallest of 4, 8,
// 16 ≥ the channels kept in the lanes, so a narrow layer's cost goes with
// its channels. The data gradient is the forward kernel once per stride
// phase (conv_weight_phase). Each sum runs in a fixed order (taps for the
// forward, images then pixels for the weight gradient), so a seed gives
// the same result on every run.

#define BLOCK_P16(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define BLOCK_P8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define BLOCK_P4(M) BLOCK_P8(M)
#define BLOCK_SIZE16 6
#define BLOCK_SIZE8 8
#define BLOCK_SIZE4 8

// Forward over the padded input (B, C, Hp, Wp) on a grid of gH × gW
// output pixels per image:
// output[b,o,Y,X] = bias[o] + Σ_{c,i,j} weightT[(c·kH + i)·kW + j, o]·padded[b,c,y·s+y0+i,x·s+x0+j]
// at Y = Y0 + y·t, X = X0 + x·t of an (oH, oW) output (y0, x0 = inRow,
// inColumn; Y0, X0 = outRow, outColumn; t = outStep), weightT from
// conv_weight_patch_major or conv_weight_phase (patch-major, outPad =
// groups·W columns, zero past O). The forward is y0 = x0 = Y0 = X0 = 0,
// t = 1 on the (oH, oW) grid; the data gradient runs it once per stride
// phase (see conv_weight_phase). One work-item per (block of P consecutive
// pixels of the flattened B·gH·gW, group of W output channels), the group
// fastest so that neighbouring work-items share their input rows in cache.
// The last block's pixels past the end repeat the last pixel and are not
// stored; with no taps (kH·kW = 0) the sums are 0.
// The block's pixels step along the grid from n0's (b, y, x), so that only
// n0 is divided; a pixel past the end keeps the last pixel's place.
#define BLOCKED_GRID_START \
    b = n0 / gridPlane; \
    y = (n0 - b * gridPlane) / gridWidth; \
    x = n0 - b * gridPlane - y * gridWidth;
#define BLOCKED_GRID_STEP(p) \
    if (n0 + p + 1 < pixels && ++x == gridWidth) { \
        x = 0; \
        if (++y == gridHeight) { y = 0; b++; } \
    }
#define BLOCKED_FORWARD_BASE(p) \
    __global const float* in##p = input + ((size_t)b * inChannels * paddedHeight + y * stride + inRow) * paddedWidth \
        + x * stride + inColumn; \
    BLOCKED_GRID_STEP(p)
#define BLOCKED_ACC_DECLARE16(p) float16 acc##p = 0.0f;
#define BLOCKED_ACC_DECLARE8(p) float8 acc##p = 0.0f;
#define BLOCKED_ACC_DECLARE4(p) float4 acc##p = 0.0f;
#define BLOCKED_FORWARD_FMA(p) acc##p += in##p[offset] * w;
// A pixel's W results go to W planes: one pointer stepped by a plane, and
// scalar stores (PoCL vectorised the indexed form of this loop into
// scatters with 64-bit index products, perf record here).
#define BLOCKED_FORWARD_STORE(W, p) \
    if (n0 + p < pixels) { \
        __global float* out = output + ((size_t)b * outChannels + group * W) * outPlane \
            + (outRow + y * outStep) * outWidth + outColumn + x * outStep; \
        float lanes[W]; \
        vstore##W(acc##p, 0, lanes); \
        _Pragma("clang loop vectorize(disable)") \
        for (int l = 0; l < lanesStored; l++, out += outPlane) \
            *out = lanes[l] + (hasBias ? bias[group * W + l] : 0.0f); \
    } \
    BLOCKED_GRID_STEP(p)
#define BLOCKED_FORWARD_STORE16(p) BLOCKED_FORWARD_STORE(16, p)
#define BLOCKED_FORWARD_STORE8(p) BLOCKED_FORWARD_STORE(8, p)
#define BLOCKED_FORWARD_STORE4(p) BLOCKED_FORWARD_STORE(4, p)
#define DEFINE_CONV2D_BLOCKED_FORWARD(W) \
__kernel void conv2d_blocked_forward_##W(__global const float* input, __global const float* weightT, \
        __global const float* bias, __global float* output, int batch, int inChannels, int paddedHeight, \
        int paddedWidth, int outChannels, int kernelHeight, int kernelWidth, int stride, int gridHeight, \
        int gridWidth, int inRow, int inColumn, int outHeight, int outWidth, int outRow, int outColumn, \
        int outStep, int hasBias) { \
    const int groups = (outChannels + W - 1) / W; \
    const int gridPlane = gridHeight * gridWidth; \
    const int pixels = batch * gridPlane; \
    const int blocks = (pixels + BLOCK_SIZE##W - 1) / BLOCK_SIZE##W; \
    const int index = get_global_id(0); \
    if (index >= blocks * groups) return; \
    const int block = index / groups, group = index - block * groups; \
    const int n0 = block * BLOCK_SIZE##W; \
    int b, y, x; \
    BLOCKED_GRID_START \
    BLOCK_P##W(BLOCKED_FORWARD_BASE) \
    BLOCK_P##W(BLOCKED_ACC_DECLARE##W) \
    const size_t paddedPlane = (size_t)paddedHeight * paddedWidth; \
    int k = 0; \
    for (int c = 0; c < inChannels; c++) { \
        for (int i = 0; i < kernelHeight; i++) { \
            const size_t row = c * paddedPlane + (size_t)i * paddedWidth; \
            for (int j = 0; j < kernelWidth; j++, k++) { \
                const size_t offset = row + j; \
                const VEC_##W w = VEC_READ(W, weightT, (size_t)k * groups + group); \
                BLOCK_P##W(BLOCKED_FORWARD_FMA) \
            } \
        } \
    } \
    const int outPlane = outHeight * outWidth, lanesStored = min(W, outChannels - group * W); \
    BLOCKED_GRID_START \
    BLOCK_P##W(BLOCKED_FORWARD_STORE##W) \
}

// Weight gradient partial sums over the padded input: partials[chunk, k, o] =
// Σ over the chunk's images and every output pixel (y, x) of
// padded[b,c,y·s+i,x·s+j]·gradT[(b·oH + y)·oW + x, o], k = (c·kH + i)·kW + j
// (padding reads zeros, so the sum is the convolution's). gradT from
// conv_output_pixel_major (pixel-major, outPad = groups·W columns).
// One work-item per (chunk of images, block of P consecutive taps k, group
// of W output channels): each gradient vector loaded feeds P accumulators.
// The last block's taps past the end repeat the last tap and are not
// stored. conv2d_weight_reduce adds the chunks in order.
#define BLOCKED_WEIGHT_OFFSET(p) \
    int offset##p; \
    { \
        const int k = min(k0 + p, patchSize - 1); \
        const int c = k / kernelArea, ij = k - c * kernelArea; \
        const int i = ij / kernelWidth, j = ij - i * kernelWidth; \
        offset##p = (c * paddedHeight + i) * paddedWidth + j; \
    }
#define BLOCKED_WEIGHT_FMA(p) acc##p += pixel[offset##p] * g;
#define BLOCKED_WEIGHT_STORE(W, p) \
    if (k0 + p < patchSize) VEC_REF(W, partials, ((size_t)chunk * patchSize + k0 + p) * groups + group) = acc##p;
#define BLOCKED_WEIGHT_STORE16(p) BLOCKED_WEIGHT_STORE(16, p)
#define BLOCKED_WEIGHT_STORE8(p) BLOCKED_WEIGHT_STORE(8, p)
#define BLOCKED_WEIGHT_STORE4(p) BLOCKED_WEIGHT_STORE(4, p)
#define DEFINE_CONV2D_BLOCKED_WEIGHT_PARTIALS(W) \
__kernel void conv2d_blocked_weight_partials_##W(__global const float* input, __global const float* gradT, \
        __global float* partials, int batch, int inChannels, int paddedHeight, int paddedWidth, \
        int outChannels, int kernelHeight, int kernelWidth, int stride, int outHeight, int outWidth, \
        int imagesPerChunk) { \
    const int groups = (outChannels + W - 1) / W; \
    const int kernelArea = kernelHeight * kernelWidth; \
    const int patchSize = inChannels * kernelArea; \
    const int blocks = (patchSize + BLOCK_SIZE##W - 1) / BLOCK_SIZE##W; \
    const int chunks = (batch + imagesPerChunk - 1) / imagesPerChunk; \
    const int index = get_global_id(0); \
    if (index >= chunks * blocks * groups) return; \
    const int group = index % groups, rest = index / groups; \
    const int block = rest % blocks, chunk = rest / blocks; \
    const int k0 = block * BLOCK_SIZE##W; \
    BLOCK_P##W(BLOCKED_WEIGHT_OFFSET) \
    BLOCK_P##W(BLOCKED_ACC_DECLARE##W) \
    const int first = chunk * imagesPerChunk, last = min(first + imagesPerChunk, batch); \
    for (int b = first; b < last; b++) { \
        __global const float* image = input + (size_t)b * inChannels * paddedHeight * paddedWidth; \
        size_t q = (size_t)b * outHeight * outWidth * groups + group; \
        for (int y = 0; y < outHeight; y++) { \
            __global const float* pixel = image + y * stride * paddedWidth; \
            for (int x = 0; x < outWidth; x++, pixel += stride, q += groups) { \
                const VEC_##W g = VEC_READ(W, gradT, q); \
                BLOCK_P##W(BLOCKED_WEIGHT_FMA) \
            } \
        } \
    } \
    BLOCK_P##W(BLOCKED_WEIGHT_STORE##W) \
}

#ifdef KERNEL_conv2d_blocked_forward_4
DEFINE_CONV2D_BLOCKED_FORWARD(4)
#endif
#ifdef KERNEL_conv2d_blocked_forward_8
DEFINE_CONV2D_BLOCKED_FORWARD(8)
#endif
#ifdef KERNEL_conv2d_blocked_forward_16
DEFINE_CONV2D_BLOCKED_FORWARD(16)
#endif
#ifdef KERNEL_conv2d_blocked_weight_partials_4
DEFINE_CONV2D_BLOCKED_WEIGHT_PARTIALS(4)
#endif
#ifdef KERNEL_conv2d_blocked_weight_partials_8
DEFINE_CONV2D_BLOCKED_WEIGHT_PARTIALS(8)
#endif
#ifdef KERNEL_conv2d_blocked_weight_partials_16
DEFINE_CONV2D_BLOCKED_WEIGHT_PARTIALS(16)
#endif

// The data gradient of a convolution with stride s and padding p, phase by
// phase: the input rows Y ≡ Y0 (mod s) receive only the taps i ≡ (Y0 + p)
// (mod s), i = ry + s·t for t < tH, from the gradient rows y = (Y + p − i)/s.
// With the gradient zero-padded and these taps flipped (t' = tH − 1 − t), each
// phase is a forward sum of stride 1 over the gradient (see
// OpenCLDevice+BlockedConvolution.swift for the offsets); stride 1 is one
// phase with every tap, the transposed correlation.
// weight (O, C, kH, kW) → weightT (O·tH·tW, inPad): row (o·tH + i)·tW + j
// holds weight[o, c, ry + s·(tH−1−i), rx + s·(tW−1−j)] for c < C and zeros
// up to inPad. One work-item per element of the result.
#ifdef KERNEL_conv_weight_phase
__kernel void conv_weight_phase(__global const float* weight, __global float* weightT, int outChannels,
                                int inChannels, int kernelHeight, int kernelWidth, int stride, int rowPhase,
                                int columnPhase, int tapsHigh, int tapsWide, int inPad) {
    const int index = get_global_id(0);
    if (index >= outChannels * tapsHigh * tapsWide * inPad) return;
    const int tap = index / inPad, c = index - tap * inPad;
    const int o = tap / (tapsHigh * tapsWide), t = tap - o * tapsHigh * tapsWide;
    const int i = t / tapsWide, j = t - i * tapsWide;
    const int ki = rowPhase + stride * (tapsHigh - 1 - i), kj = columnPhase + stride * (tapsWide - 1 - j);
    weightT[index] = c < inChannels ? weight[(((size_t)o * inChannels + c) * kernelHeight + ki) * kernelWidth + kj]
                                    : 0.0f;
}
#endif
