// Direct convolution (stride 1, no padding, no bias): forward (which also
// serves the data gradient, see conv_pad_gradient) and weight gradient. Each kernel keeps W channels in one vector
// accumulator (W ∈ {1, 4, 8, 16}, see common.cl), reading weights or
// gradients that a layout kernel below first rearranged so that those W
// channels are contiguous (vloadW). Channel counts that are not multiples of
// W are padded with zeros in the rearranged copy and the padding lanes are
// never stored.

// weight (O, K) with K = C·kH·kW → weightT (K, outPad): patch-major, output
// channels contiguous, zero in the padding columns.
__kernel void conv_weight_patch_major(__global const float* weight, __global float* weightT,
                                      int outChannels, int patchSize, int outPad) {
    const int index = get_global_id(0);
    if (index >= patchSize * outPad) return;
    const int k = index / outPad, o = index - k * outPad;
    weightT[index] = o < outChannels ? weight[o * patchSize + k] : 0.0f;
}

// gradOutput (B, O, oH, oW) → (B·oH·oW, outPad): pixel-major, channels contiguous.
__kernel void conv_output_pixel_major(__global const float* gradOutput, __global float* gradT,
                                      int batch, int outChannels, int planeSize, int outPad) {
    // One work-item per pixel, writing its outPad contiguous floats: integer
    // division (scalar on a CPU) once per pixel, not once per element.
    const int n = get_global_id(0);
    if (n >= batch * planeSize) return;
    const int b = n / planeSize, p = n - b * planeSize;
    __global const float* source = gradOutput + (size_t)b * outChannels * planeSize + p;
    __global float* target = gradT + (size_t)n * outPad;
    for (int o = 0; o < outChannels; o++) target[o] = source[(size_t)o * planeSize];
    for (int o = outChannels; o < outPad; o++) target[o] = 0.0f;
}

// output[b,o,y,x] = Σ_{c,i,j} weight[o,c,i,j]·input[b,c,y+i,x+j].
// One work-item per (channel group, four neighbouring output pixels of a
// row): each weight vector loaded feeds four accumulators (measured on PoCL
// here: ~3× one pixel per work-item). Pixels past the row's end repeat the
// last pixel and are not stored. weightT from conv_weight_patch_major.
#define DEFINE_CONV2D_FORWARD(W) \
__kernel void conv2d_forward_##W(__global const float* input, __global const float* weightT, \
        __global float* output, int batch, int inChannels, int height, int width, \
        int outChannels, int kernelHeight, int kernelWidth) { \
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1; \
    const int quads = (outWidth + 3) / 4; \
    const int rows = batch * outHeight; \
    const int groups = (outChannels + W - 1) / W; \
    const int outPad = groups * W; \
    const int index = get_global_id(0); \
    if (index >= rows * quads * groups) return; \
    const int group = index / (rows * quads); \
    const int rest = index - group * rows * quads; \
    const int by = rest / quads, x = (rest - by * quads) * 4; \
    const int b = by / outHeight, y = by - b * outHeight; \
    const int d1 = min(x + 1, outWidth - 1) - x, d2 = min(x + 2, outWidth - 1) - x; \
    const int d3 = min(x + 3, outWidth - 1) - x; \
    __global const float* w = weightT + group * W; \
    VEC_##W acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f; \
    for (int c = 0; c < inChannels; c++) { \
        for (int i = 0; i < kernelHeight; i++) { \
            __global const float* row = input + ((size_t)(b * inChannels + c) * height + y + i) * width + x; \
            for (int j = 0; j < kernelWidth; j++) { \
                const VEC_##W wv = vload##W(0, w); \
                w += outPad; \
                acc0 += row[j] * wv; acc1 += row[j + d1] * wv; \
                acc2 += row[j + d2] * wv; acc3 += row[j + d3] * wv; \
            } \
        } \
    } \
    float result[4][W]; \
    vstore##W(acc0, 0, result[0]); vstore##W(acc1, 0, result[1]); \
    vstore##W(acc2, 0, result[2]); vstore##W(acc3, 0, result[3]); \
    for (int t = 0; t < W; t++) { \
        const int o = group * W + t; \
        if (o >= outChannels) break; \
        __global float* out = output + ((size_t)(b * outChannels + o) * outHeight + y) * outWidth + x; \
        for (int p = 0; p < 4 && x + p < outWidth; p++) out[p] = result[p][t]; \
    } \
}

// The data gradient is a forward convolution of the gradient, zero-padded by
// kH−1 rows and kW−1 columns on each side, with the kernel flipped and input
// and output channels swapped:
// gradInput[b,c,h,w] = Σ_{o,i',j'} padded[b,o,h+i',w+j']·weight[o,c,kH−1−i',kW−1−j'].
// These two layout kernels prepare its operands for conv2d_forward_W.

// gradOutput (B, O, oH, oW) → (B, O, oH + 2·padY, oW + 2·padX), zero border.
__kernel void conv_pad_gradient(__global const float* gradOutput, __global float* padded,
                                int planes, int outHeight, int outWidth, int padY, int padX) {
    // One work-item per padded row.
    const int paddedHeight = outHeight + 2 * padY, paddedWidth = outWidth + 2 * padX;
    const int index = get_global_id(0);
    if (index >= planes * paddedHeight) return;
    const int plane = index / paddedHeight, y = index - plane * paddedHeight - padY;
    __global float* target = padded + (size_t)index * paddedWidth;
    if (y < 0 || y >= outHeight) {
        for (int x = 0; x < paddedWidth; x++) target[x] = 0.0f;
        return;
    }
    __global const float* source = gradOutput + ((size_t)plane * outHeight + y) * outWidth;
    for (int x = 0; x < padX; x++) target[x] = 0.0f;
    for (int x = 0; x < outWidth; x++) target[padX + x] = source[x];
    for (int x = padX + outWidth; x < paddedWidth; x++) target[x] = 0.0f;
}

// weight (O, C, kH, kW) → flippedT (O·kH·kW, inPad): row (o·kH + i')·kW + j'
// holds weight[o, c, kH−1−i', kW−1−j'] for each input channel c, zero padding.
__kernel void conv_weight_flipped_patch_major(__global const float* weight, __global float* flippedT,
                                              int outChannels, int inChannels, int kernelHeight,
                                              int kernelWidth, int inPad) {
    const int index = get_global_id(0);
    const int kernelArea = kernelHeight * kernelWidth;
    if (index >= outChannels * kernelArea * inPad) return;
    const int c = index % inPad;
    const int row = index / inPad;
    const int o = row / kernelArea, ij = row - o * kernelArea;
    const int i = ij / kernelWidth, j = ij - i * kernelWidth;
    flippedT[index] = c < inChannels
        ? weight[((o * inChannels + c) * kernelHeight + kernelHeight - 1 - i) * kernelWidth + kernelWidth - 1 - j]
        : 0.0f;
}

// Partial weight gradients: partials[chunk, k, o] = Σ over the images of the
// chunk and every output pixel (y,x) of input[b,c,y+i,x+j]·gradOutput[b,o,y,x],
// k = (c·kH + i)·kW + j. One work-item per (chunk, input channel, block of
// four kernel positions (i,j), channel group): each gradient vector loaded
// feeds four accumulators. gradT from conv_output_pixel_major;
// conv2d_weight_reduce sums the chunks.
#define DEFINE_CONV2D_WEIGHT_PARTIALS(W) \
__kernel void conv2d_weight_partials_##W(__global const float* input, __global const float* gradT, \
        __global float* partials, int batch, int inChannels, int height, int width, \
        int outChannels, int kernelHeight, int kernelWidth, int imagesPerChunk) { \
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1; \
    const int kernelArea = kernelHeight * kernelWidth; \
    const int blocks = (kernelArea + 3) / 4; \
    const int patchSize = inChannels * kernelArea; \
    const int groups = (outChannels + W - 1) / W; \
    const int outPad = groups * W; \
    const int chunks = (batch + imagesPerChunk - 1) / imagesPerChunk; \
    const int index = get_global_id(0); \
    if (index >= chunks * inChannels * blocks * groups) return; \
    const int group = index % groups; \
    const int rest = index / groups; \
    const int block = rest % blocks; \
    const int chunkC = rest / blocks; \
    const int chunk = chunkC / inChannels, c = chunkC - chunk * inChannels; \
    int q[4], offset[4]; \
    for (int p = 0; p < 4; p++) { \
        q[p] = min(block * 4 + p, kernelArea - 1); \
        offset[p] = (q[p] / kernelWidth) * width + q[p] % kernelWidth; \
    } \
    VEC_##W acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f; \
    const int o0 = offset[0], o1 = offset[1], o2 = offset[2], o3 = offset[3]; \
    const int bEnd = min(batch, (chunk + 1) * imagesPerChunk); \
    for (int b = chunk * imagesPerChunk; b < bEnd; b++) { \
        __global const float* plane = input + (size_t)(b * inChannels + c) * height * width; \
        __global const float* g = gradT + (size_t)b * outHeight * outWidth * outPad + group * W; \
        for (int y = 0; y < outHeight; y++) { \
            __global const float* row = plane + y * width; \
            for (int x = 0; x < outWidth; x++) { \
                const VEC_##W gv = vload##W(0, g); \
                g += outPad; \
                acc0 += row[x + o0] * gv; acc1 += row[x + o1] * gv; \
                acc2 += row[x + o2] * gv; acc3 += row[x + o3] * gv; \
            } \
        } \
    } \
    __global float* out = partials + ((size_t)chunk * patchSize + c * kernelArea) * outPad + group * W; \
    const int first = block * 4; \
    vstore##W(acc0, 0, out + (size_t)first * outPad); \
    if (first + 1 < kernelArea) vstore##W(acc1, 0, out + (size_t)(first + 1) * outPad); \
    if (first + 2 < kernelArea) vstore##W(acc2, 0, out + (size_t)(first + 2) * outPad); \
    if (first + 3 < kernelArea) vstore##W(acc3, 0, out + (size_t)(first + 3) * outPad); \
}

DEFINE_CONV2D_FORWARD(1)
DEFINE_CONV2D_FORWARD(4)
DEFINE_CONV2D_FORWARD(8)
DEFINE_CONV2D_FORWARD(16)
DEFINE_CONV2D_WEIGHT_PARTIALS(1)
DEFINE_CONV2D_WEIGHT_PARTIALS(4)
DEFINE_CONV2D_WEIGHT_PARTIALS(8)
DEFINE_CONV2D_WEIGHT_PARTIALS(16)

// gradWeight[o, k] = Σ_chunk partials[chunk, k, o]: the weight gradient in
// the (O, C, kH, kW) layout. One work-item per weight.
__kernel void conv2d_weight_reduce(__global const float* partials, __global float* gradWeight,
                                   int chunks, int patchSize, int outChannels, int outPad) {
    const int index = get_global_id(0);
    if (index >= outChannels * patchSize) return;
    const int o = index / patchSize, k = index - o * patchSize;
    float sum = 0.0f;
    for (int chunk = 0; chunk < chunks; chunk++)
        sum += partials[((size_t)chunk * patchSize + k) * outPad + o];
    gradWeight[index] = sum;
}
