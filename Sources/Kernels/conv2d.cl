// Direct convolution (stride 1, no padding, no bias): forward, data
// gradient, weight gradient. Each kernel keeps W channels in one vector
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

// weight (O, C, kH, kW) → (O, kH, kW, inPad): input channels contiguous.
__kernel void conv_weight_channel_minor(__global const float* weight, __global float* weightC,
                                        int outChannels, int inChannels, int kernelArea, int inPad) {
    const int index = get_global_id(0);
    if (index >= outChannels * kernelArea * inPad) return;
    const int c = index % inPad;
    const int rest = index / inPad;
    const int ij = rest % kernelArea, o = rest / kernelArea;
    weightC[index] = c < inChannels ? weight[(o * inChannels + c) * kernelArea + ij] : 0.0f;
}

// gradOutput (B, O, oH, oW) → (B·oH·oW, outPad): pixel-major, channels contiguous.
__kernel void conv_output_pixel_major(__global const float* gradOutput, __global float* gradT,
                                      int batch, int outChannels, int planeSize, int outPad) {
    const int index = get_global_id(0);
    if (index >= batch * planeSize * outPad) return;
    const int o = index % outPad;
    const int n = index / outPad;
    const int b = n / planeSize, p = n - b * planeSize;
    gradT[index] = o < outChannels ? gradOutput[(size_t)(b * outChannels + o) * planeSize + p] : 0.0f;
}

// output[b,o,y,x] = Σ_{c,i,j} weight[o,c,i,j]·input[b,c,y+i,x+j].
// One work-item per (channel group, output pixel); weightT from
// conv_weight_patch_major.
#define DEFINE_CONV2D_FORWARD(W) \
__kernel void conv2d_forward_##W(__global const float* input, __global const float* weightT, \
        __global float* output, int batch, int inChannels, int height, int width, \
        int outChannels, int kernelHeight, int kernelWidth) { \
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1; \
    const int pixels = batch * outHeight * outWidth; \
    const int groups = (outChannels + W - 1) / W; \
    const int outPad = groups * W; \
    const int index = get_global_id(0); \
    if (index >= pixels * groups) return; \
    const int group = index / pixels, pixel = index - group * pixels; \
    const int b = pixel / (outHeight * outWidth); \
    const int yx = pixel - b * outHeight * outWidth; \
    const int y = yx / outWidth, x = yx - y * outWidth; \
    __global const float* weights = weightT + group * W; \
    VEC_##W acc = 0.0f; \
    int k = 0; \
    for (int c = 0; c < inChannels; c++) { \
        for (int i = 0; i < kernelHeight; i++) { \
            __global const float* row = input + ((size_t)(b * inChannels + c) * height + y + i) * width + x; \
            for (int j = 0; j < kernelWidth; j++, k++) \
                acc += row[j] * vload##W(0, weights + (size_t)k * outPad); \
        } \
    } \
    float result[W]; \
    vstore##W(acc, 0, result); \
    for (int t = 0; t < W; t++) { \
        const int o = group * W + t; \
        if (o < outChannels) \
            output[((size_t)(b * outChannels + o) * outHeight + y) * outWidth + x] = result[t]; \
    } \
}

// gradInput[b,c,h,w] = Σ_{o,i,j} gradOutput[b,o,h−i,w−j]·weight[o,c,i,j] over
// the (i,j) that keep (h−i, w−j) inside the output. One work-item per
// (channel group, input pixel): a gather, so it overwrites with no atomics.
// weightC from conv_weight_channel_minor.
#define DEFINE_CONV2D_BACKWARD_DATA(W) \
__kernel void conv2d_backward_data_##W(__global const float* gradOutput, __global const float* weightC, \
        __global float* gradInput, int batch, int inChannels, int height, int width, \
        int outChannels, int kernelHeight, int kernelWidth) { \
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1; \
    const int pixels = batch * height * width; \
    const int groups = (inChannels + W - 1) / W; \
    const int inPad = groups * W; \
    const int index = get_global_id(0); \
    if (index >= pixels * groups) return; \
    const int group = index / pixels, pixel = index - group * pixels; \
    const int b = pixel / (height * width); \
    const int hw = pixel - b * height * width; \
    const int h = hw / width, w = hw - h * width; \
    const int i0 = max(0, h - outHeight + 1), i1 = min(kernelHeight - 1, h); \
    const int j0 = max(0, w - outWidth + 1), j1 = min(kernelWidth - 1, w); \
    VEC_##W acc = 0.0f; \
    for (int o = 0; o < outChannels; o++) { \
        __global const float* g = gradOutput + (size_t)(b * outChannels + o) * outHeight * outWidth; \
        __global const float* wo = weightC + (size_t)o * kernelHeight * kernelWidth * inPad + group * W; \
        for (int i = i0; i <= i1; i++) \
            for (int j = j0; j <= j1; j++) \
                acc += g[(h - i) * outWidth + (w - j)] * vload##W(0, wo + (i * kernelWidth + j) * inPad); \
    } \
    float result[W]; \
    vstore##W(acc, 0, result); \
    for (int t = 0; t < W; t++) { \
        const int c = group * W + t; \
        if (c < inChannels) \
            gradInput[((size_t)(b * inChannels + c) * height + h) * width + w] = result[t]; \
    } \
}

// Partial weight gradients: partials[chunk, k, o] = Σ over the images of the
// chunk and every output pixel (y,x) of input[b,c,y+i,x+j]·gradOutput[b,o,y,x],
// k = (c·kH + i)·kW + j. One work-item per (chunk, k, channel group); gradT
// from conv_output_pixel_major; conv2d_weight_reduce sums the chunks.
#define DEFINE_CONV2D_WEIGHT_PARTIALS(W) \
__kernel void conv2d_weight_partials_##W(__global const float* input, __global const float* gradT, \
        __global float* partials, int batch, int inChannels, int height, int width, \
        int outChannels, int kernelHeight, int kernelWidth, int imagesPerChunk) { \
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1; \
    const int patchSize = inChannels * kernelHeight * kernelWidth; \
    const int groups = (outChannels + W - 1) / W; \
    const int outPad = groups * W; \
    const int chunks = (batch + imagesPerChunk - 1) / imagesPerChunk; \
    const int index = get_global_id(0); \
    if (index >= chunks * patchSize * groups) return; \
    const int group = index % groups; \
    const int chunkK = index / groups; \
    const int chunk = chunkK / patchSize, k = chunkK - chunk * patchSize; \
    const int c = k / (kernelHeight * kernelWidth); \
    const int ij = k - c * kernelHeight * kernelWidth; \
    const int i = ij / kernelWidth, j = ij - i * kernelWidth; \
    VEC_##W acc = 0.0f; \
    const int bEnd = min(batch, (chunk + 1) * imagesPerChunk); \
    for (int b = chunk * imagesPerChunk; b < bEnd; b++) { \
        __global const float* in = input + ((size_t)(b * inChannels + c) * height + i) * width + j; \
        __global const float* g = gradT + (size_t)b * outHeight * outWidth * outPad + group * W; \
        for (int y = 0; y < outHeight; y++) \
            for (int x = 0; x < outWidth; x++) \
                acc += in[y * width + x] * vload##W(0, g + (size_t)(y * outWidth + x) * outPad); \
    } \
    vstore##W(acc, 0, partials + ((size_t)chunkK * outPad + group * W)); \
}

DEFINE_CONV2D_FORWARD(1)
DEFINE_CONV2D_FORWARD(4)
DEFINE_CONV2D_FORWARD(8)
DEFINE_CONV2D_FORWARD(16)
DEFINE_CONV2D_BACKWARD_DATA(1)
DEFINE_CONV2D_BACKWARD_DATA(4)
DEFINE_CONV2D_BACKWARD_DATA(8)
DEFINE_CONV2D_BACKWARD_DATA(16)
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
