// The general convolution (stride s, zero padding p) for the cpu family:
// each work-item keeps W channels in one floatW accumulator (PoCL does not
// vectorise across channels by itself), W = 4, 8 or 16, the smallest width
// ≥ the channel count up to 16 (OpenCLDevice+ResidualOps.swift picks it).
// Zero padding is never stored: each work-item clips its kernel window to
// the image, so no out-of-image address is read.

// Forward, one work-item per (four consecutive output pixels of a row,
// group of W output channels), so that each weight vector read serves four
// pixels: output[b,o,y,x] = bias[o] + Σ_{c,i,j} weight[o,c,i,j]·input[b,c,y·s+i−p,x·s+j−p].
// weightT from conv_weight_patch_major: (C·kH·kW, groups·W), row
// (c·kH + i)·kW + j holding the output channels of one tap. A pixel whose
// input column falls outside the image (or beyond the row's end) reads 0.
#define CONV_STRIDED_TAP(k) \
    (x##k < outWidth && ix##k >= 0 && ix##k < width ? input[row + ix##k] : 0.0f)
#define CONV_STRIDED_STORE(W, k, acc) \
    if (x##k < outWidth) { \
        vstore##W(acc, 0, lanes); \
        for (int l = 0; l < W; l++) { \
            const int o = group * W + l; \
            if (o < outChannels) \
                output[(size_t)(b * outChannels + o) * plane + y * outWidth + x##k] = \
                    lanes[l] + (hasBias ? bias[o] : 0.0f); \
        } \
    }
#define DEFINE_CONV2D_STRIDED_FORWARD(W) \
__kernel void conv2d_strided_forward_##W(__global const float* input, __global const float* weightT, \
        __global const float* bias, __global float* output, int batch, int inChannels, int height, int width, \
        int outChannels, int kernelHeight, int kernelWidth, int stride, int padding, int outHeight, \
        int outWidth, int hasBias) { \
    const int groups = (outChannels + W - 1) / W; \
    const int plane = outHeight * outWidth; \
    const int quads = (outWidth + 3) / 4; \
    const int rows = batch * outHeight; \
    const int index = get_global_id(0); \
    if (index >= rows * quads * groups) return; \
    const int group = index / (rows * quads), rest = index - group * rows * quads; \
    const int by = rest / quads, x0 = (rest - by * quads) * 4; \
    const int b = by / outHeight, y = by - b * outHeight; \
    const int x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3; \
    const int y0 = y * stride - padding; \
    const int iBegin = max(0, -y0), iEnd = min(kernelHeight, height - y0); \
    VEC_##W acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f; \
    for (int c = 0; c < inChannels; c++) { \
        for (int i = iBegin; i < iEnd; i++) { \
            const size_t row = ((size_t)(b * inChannels + c) * height + y0 + i) * width; \
            for (int j = 0; j < kernelWidth; j++) { \
                const int ix0 = x0 * stride + j - padding, ix1 = ix0 + stride; \
                const int ix2 = ix1 + stride, ix3 = ix2 + stride; \
                const VEC_##W w = VEC_READ(W, weightT, ((c * kernelHeight + i) * kernelWidth + j) * groups + group); \
                acc0 += CONV_STRIDED_TAP(0) * w; \
                acc1 += CONV_STRIDED_TAP(1) * w; \
                acc2 += CONV_STRIDED_TAP(2) * w; \
                acc3 += CONV_STRIDED_TAP(3) * w; \
            } \
        } \
    } \
    float lanes[W]; \
    CONV_STRIDED_STORE(W, 0, acc0) \
    CONV_STRIDED_STORE(W, 1, acc1) \
    CONV_STRIDED_STORE(W, 2, acc2) \
    CONV_STRIDED_STORE(W, 3, acc3) \
}

// Data gradient, one work-item per (input pixel, group of W input channels),
// gathering what reaches it: gradInput[b,c,Y,X] = Σ gradOutput[b,o,y,x]·weight[o,c,i,j]
// over the taps (i, j) with Y + p − i = y·s and X + p − j = x·s inside the
// output. weightT from conv_weight_tap_major: (O·kH·kW, groups·W).
#define DEFINE_CONV2D_STRIDED_DATA(W) \
__kernel void conv2d_strided_data_##W(__global const float* gradOutput, __global const float* weightT, \
        __global float* gradInput, int batch, int inChannels, int height, int width, int outChannels, \
        int kernelHeight, int kernelWidth, int stride, int padding, int outHeight, int outWidth) { \
    const int groups = (inChannels + W - 1) / W; \
    const int plane = height * width; \
    const int pixels = batch * plane; \
    const int index = get_global_id(0); \
    if (index >= pixels * groups) return; \
    const int group = index / pixels, pixel = index - group * pixels; \
    const int b = pixel / plane, q = pixel - b * plane; \
    const int Y = q / width, X = q - Y * width; \
    const int kernelArea = kernelHeight * kernelWidth; \
    VEC_##W acc = 0.0f; \
    for (int i = 0; i < kernelHeight; i++) { \
        const int ny = Y + padding - i; \
        if (ny < 0 || ny % stride != 0 || ny / stride >= outHeight) continue; \
        const int y = ny / stride; \
        for (int j = 0; j < kernelWidth; j++) { \
            const int nx = X + padding - j; \
            if (nx < 0 || nx % stride != 0 || nx / stride >= outWidth) continue; \
            const int x = nx / stride; \
            __global const float* g = gradOutput + (size_t)b * outChannels * outHeight * outWidth \
                + y * outWidth + x; \
            for (int o = 0; o < outChannels; o++) \
                acc += g[(size_t)o * outHeight * outWidth] \
                    * VEC_READ(W, weightT, (o * kernelArea + i * kernelWidth + j) * groups + group); \
        } \
    } \
    float lanes[W]; \
    vstore##W(acc, 0, lanes); \
    for (int l = 0; l < W; l++) { \
        const int c = group * W + l; \
        if (c < inChannels) gradInput[(size_t)(b * inChannels + c) * plane + q] = lanes[l]; \
    } \
}

// Weight gradient partial sums, one work-item per (chunk of images, tap
// (c, i, j), group of W output channels): partials[chunk, tap, o] =
// Σ over the chunk's images and the output pixels whose input pixel
// (y·s+i−p, x·s+j−p) lies inside the image of input·gradOutput[b,o,y,x].
// gradT from conv_output_pixel_major: (B·oH·oW, groups·W);
// conv2d_weight_reduce adds the chunks in order.
#define DEFINE_CONV2D_STRIDED_WEIGHT_PARTIALS(W) \
__kernel void conv2d_strided_weight_partials_##W(__global const float* input, __global const float* gradT, \
        __global float* partials, int batch, int inChannels, int height, int width, int outChannels, \
        int kernelHeight, int kernelWidth, int stride, int padding, int outHeight, int outWidth, \
        int imagesPerChunk) { \
    const int groups = (outChannels + W - 1) / W; \
    const int kernelArea = kernelHeight * kernelWidth; \
    const int patchSize = inChannels * kernelArea; \
    const int chunks = (batch + imagesPerChunk - 1) / imagesPerChunk; \
    const int index = get_global_id(0); \
    if (index >= chunks * patchSize * groups) return; \
    const int group = index % groups, rest = index / groups; \
    const int tap = rest % patchSize, chunk = rest / patchSize; \
    const int c = tap / kernelArea, ij = tap - c * kernelArea; \
    const int i = ij / kernelWidth, j = ij - i * kernelWidth; \
    /* The outputs whose input row or column lies inside the image. */ \
    const int yBegin = i >= padding ? 0 : (padding - i + stride - 1) / stride; \
    const int yEnd = min(outHeight, (height + padding - i + stride - 1) / stride); \
    const int xBegin = j >= padding ? 0 : (padding - j + stride - 1) / stride; \
    const int xEnd = min(outWidth, (width + padding - j + stride - 1) / stride); \
    const int first = chunk * imagesPerChunk, last = min(first + imagesPerChunk, batch); \
    VEC_##W acc = 0.0f; \
    for (int b = first; b < last; b++) { \
        __global const float* image = input + (size_t)(b * inChannels + c) * height * width; \
        for (int y = yBegin; y < yEnd; y++) { \
            const int iy = y * stride + i - padding; \
            for (int x = xBegin; x < xEnd; x++) { \
                const int pixel = (b * outHeight + y) * outWidth + x; \
                acc += image[iy * width + x * stride + j - padding] * VEC_READ(W, gradT, pixel * groups + group); \
            } \
        } \
    } \
    VEC_REF(W, partials, ((size_t)chunk * patchSize + tap) * groups + group) = acc; \
}

#ifdef KERNEL_conv2d_strided_forward_4
DEFINE_CONV2D_STRIDED_FORWARD(4)
#endif
#ifdef KERNEL_conv2d_strided_forward_8
DEFINE_CONV2D_STRIDED_FORWARD(8)
#endif
#ifdef KERNEL_conv2d_strided_forward_16
DEFINE_CONV2D_STRIDED_FORWARD(16)
#endif
#ifdef KERNEL_conv2d_strided_data_4
DEFINE_CONV2D_STRIDED_DATA(4)
#endif
#ifdef KERNEL_conv2d_strided_data_8
DEFINE_CONV2D_STRIDED_DATA(8)
#endif
#ifdef KERNEL_conv2d_strided_data_16
DEFINE_CONV2D_STRIDED_DATA(16)
#endif
#ifdef KERNEL_conv2d_strided_weight_partials_4
DEFINE_CONV2D_STRIDED_WEIGHT_PARTIALS(4)
#endif
#ifdef KERNEL_conv2d_strided_weight_partials_8
DEFINE_CONV2D_STRIDED_WEIGHT_PARTIALS(8)
#endif
#ifdef KERNEL_conv2d_strided_weight_partials_16
DEFINE_CONV2D_STRIDED_WEIGHT_PARTIALS(16)
#endif
