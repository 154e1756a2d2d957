// Direct convolution (stride 1, no padding, no bias): the forward sum (which
// also serves the data gradient, see conv_pad_gradient) and the weight
// gradient. Every kernel keeps a vector of results in one accumulator,
// because PoCL vectorises explicit vector types and not scalar loops
// (reference-figures.md):
// - conv2d_forward_W and conv2d_weight_partials_W: W output channels
//   (W ∈ {1, 4, 8, 16}, see common.cl), reading weights or gradients that a
//   layout kernel below first rearranged so that those channels are
//   contiguous (vloadW); channel counts that are not multiples of W are
//   padded with zeros there and the padding lanes are never stored;
// - conv2d_forward_rows8x2: 8 neighbouring pixels of two rows, for few channels.

// weight (O, K) with K = C·kH·kW → weightT (K, outPad): patch-major, output
// channels contiguous, zero in the padding columns.
#ifdef KERNEL_conv_weight_patch_major
__kernel void conv_weight_patch_major(__global const float* weight, __global float* weightT,
                                      int outChannels, int patchSize, int outPad) {
    const int index = get_global_id(0);
    if (index >= patchSize * outPad) return;
    const int k = index / outPad, o = index - k * outPad;
    weightT[index] = o < outChannels ? weight[o * patchSize + k] : 0.0f;
}
#endif

// gradOutput (B, O, oH, oW) → (B·oH·oW, outPad): pixel-major, channels contiguous.
#ifdef KERNEL_conv_output_pixel_major
__kernel void conv_output_pixel_major(__global const float* gradOutput, __global float* gradT,
                                      int batch, int outChannels, int planeSize, int outPad) {
    // One work-item per (image, output channel) plane, scattering it into
    // every pixel's slot: PoCL's per-work-item overhead (~10 ns) outweighs
    // such a copy's arithmetic, so each work-item moves a whole plane.
    const int index = get_global_id(0);
    if (index >= batch * outPad) return;
    const int b = index / outPad, o = index - b * outPad;
    __global const float* source = gradOutput + ((size_t)b * outChannels + o) * planeSize;
    __global float* target = gradT + (size_t)b * planeSize * outPad + o;
    if (o < outChannels) {
        for (int p = 0; p < planeSize; p++) target[(size_t)p * outPad] = source[p];
    } else {
        for (int p = 0; p < planeSize; p++) target[(size_t)p * outPad] = 0.0f;
    }
}
#endif

// The same rearrangement for outPad = 16 and planes of at least 8 pixels,
// transposed in registers: one work-item per (image, block of 8 pixels)
// loads each channel's 8 pixels as one float8 and stores each pixel's 16
// channels as one float16 (measured on PoCL here: ~2× the plane-per-item
// kernel above). A plane's last block is shifted left to end at the plane's
// end, rewriting a few pixels with the same values; channels ≥ outChannels
// are zero.
#define PIXEL_MAJOR16_LOAD(o) \
    const float8 c##o = o < outChannels ? vload8(0, source + (size_t)(o) * planeSize) : (float8)0.0f;
#define PIXEL_MAJOR16_STORE(p) \
    vstore16((float16)(c0.s##p, c1.s##p, c2.s##p, c3.s##p, c4.s##p, c5.s##p, c6.s##p, c7.s##p, \
                       c8.s##p, c9.s##p, c10.s##p, c11.s##p, c12.s##p, c13.s##p, c14.s##p, c15.s##p), \
             0, target + (p) * 16);
#ifdef KERNEL_conv_output_pixel_major16
__kernel void conv_output_pixel_major16(__global const float* gradOutput, __global float* gradT,
                                        int batch, int outChannels, int planeSize) {
    const int blocks = (planeSize + 7) / 8;
    const int index = get_global_id(0);
    if (index >= batch * blocks) return;
    const int b = index / blocks;
    const int start = min((index - b * blocks) * 8, planeSize - 8);
    __global const float* source = gradOutput + (size_t)b * outChannels * planeSize + start;
    __global float* target = gradT + ((size_t)b * planeSize + start) * 16;
    PIXEL_MAJOR16_LOAD(0) PIXEL_MAJOR16_LOAD(1) PIXEL_MAJOR16_LOAD(2) PIXEL_MAJOR16_LOAD(3)
    PIXEL_MAJOR16_LOAD(4) PIXEL_MAJOR16_LOAD(5) PIXEL_MAJOR16_LOAD(6) PIXEL_MAJOR16_LOAD(7)
    PIXEL_MAJOR16_LOAD(8) PIXEL_MAJOR16_LOAD(9) PIXEL_MAJOR16_LOAD(10) PIXEL_MAJOR16_LOAD(11)
    PIXEL_MAJOR16_LOAD(12) PIXEL_MAJOR16_LOAD(13) PIXEL_MAJOR16_LOAD(14) PIXEL_MAJOR16_LOAD(15)
    PIXEL_MAJOR16_STORE(0) PIXEL_MAJOR16_STORE(1) PIXEL_MAJOR16_STORE(2) PIXEL_MAJOR16_STORE(3)
    PIXEL_MAJOR16_STORE(4) PIXEL_MAJOR16_STORE(5) PIXEL_MAJOR16_STORE(6) PIXEL_MAJOR16_STORE(7)
}
#endif

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

// The same sum with the vector along a row of output pixels instead:
// one work-item per (block of 4 output channels, image, pair of output
// rows, block of 8 pixels), one float8 accumulator per (channel, row), the
// input rows read with vload8 and the weights in their own (O, C, kH, kW)
// layout; each weight loaded feeds both rows (measured on PoCL here: ~25%
// faster than 8 channels × 1 row, the same sums in the same order). Each
// result row is one vstore8 — the better kernel when channels are few and
// rows long (conv1, and conv2's data gradient). Needs oW ≥ 8 and oH ≥ 2: a
// row's last block is shifted left to end at oW, and an odd last row pair
// up to end at oH, rewriting a few outputs with the same values. Channels
// past the last read the last channel's weights and are not stored.
#define ROWS8X2_ACCUMULATE(t) { const float wt = w##t[k]; acc##t##a += wt * upper; acc##t##b += wt * lower; }
#define ROWS8X2_STORE(t) \
    if (o0 + t < outChannels) { \
        __global float* out = output + ((size_t)(b * outChannels + o0 + t) * outHeight + y) * outWidth + start; \
        vstore8(acc##t##a, 0, out); vstore8(acc##t##b, 0, out + outWidth); \
    }
#ifdef KERNEL_conv2d_forward_rows8x2
__kernel void conv2d_forward_rows8x2(__global const float* input, __global const float* weight,
        __global float* output, int batch, int inChannels, int height, int width,
        int outChannels, int kernelHeight, int kernelWidth) {
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1;
    const int xBlocks = (outWidth + 7) / 8;
    const int rowPairs = (outHeight + 1) / 2;
    const int oBlocks = (outChannels + 3) / 4;
    const int index = get_global_id(0);
    if (index >= oBlocks * batch * rowPairs * xBlocks) return;
    const int ob = index % oBlocks;
    const int rest = index / oBlocks;
    const int bPair = rest / xBlocks, x0 = (rest - bPair * xBlocks) * 8;
    const int b = bPair / rowPairs, y = min((bPair - b * rowPairs) * 2, outHeight - 2);
    const int start = min(x0, outWidth - 8);
    const int o0 = ob * 4;
    const int patchSize = inChannels * kernelHeight * kernelWidth;
    __global const float* w0 = weight + (size_t)min(o0, outChannels - 1) * patchSize;
    __global const float* w1 = weight + (size_t)min(o0 + 1, outChannels - 1) * patchSize;
    __global const float* w2 = weight + (size_t)min(o0 + 2, outChannels - 1) * patchSize;
    __global const float* w3 = weight + (size_t)min(o0 + 3, outChannels - 1) * patchSize;
    float8 acc0a = 0.0f, acc1a = 0.0f, acc2a = 0.0f, acc3a = 0.0f;
    float8 acc0b = 0.0f, acc1b = 0.0f, acc2b = 0.0f, acc3b = 0.0f;
    int k = 0;
    for (int c = 0; c < inChannels; c++) {
        for (int i = 0; i < kernelHeight; i++) {
            __global const float* row = input + ((size_t)(b * inChannels + c) * height + y + i) * width + start;
            for (int j = 0; j < kernelWidth; j++, k++) {
                const float8 upper = vload8(0, row + j), lower = vload8(0, row + width + j);
                ROWS8X2_ACCUMULATE(0) ROWS8X2_ACCUMULATE(1) ROWS8X2_ACCUMULATE(2) ROWS8X2_ACCUMULATE(3)
            }
        }
    }
    ROWS8X2_STORE(0) ROWS8X2_STORE(1) ROWS8X2_STORE(2) ROWS8X2_STORE(3)
}
#endif

// weight (O, C, kH, kW) → flipped (C, O, kH, kW): flipped[c,o,i',j'] =
// weight[o, c, kH−1−i', kW−1−j'], the data gradient's kernel for conv2d_forward_rows8x2.
#ifdef KERNEL_conv_weight_flipped
__kernel void conv_weight_flipped(__global const float* weight, __global float* flipped,
                                  int outChannels, int inChannels, int kernelHeight, int kernelWidth) {
    const int index = get_global_id(0);
    const int kernelArea = kernelHeight * kernelWidth;
    if (index >= outChannels * inChannels * kernelArea) return;
    const int ij = index % kernelArea;
    const int co = index / kernelArea;
    const int c = co / outChannels, o = co - c * outChannels;
    const int i = ij / kernelWidth, j = ij - i * kernelWidth;
    flipped[index] = weight[((o * inChannels + c) * kernelHeight + kernelHeight - 1 - i) * kernelWidth
                            + kernelWidth - 1 - j];
}
#endif

// The data gradient is a forward convolution of the gradient, zero-padded by
// kH−1 rows and kW−1 columns on each side, with the kernel flipped and input
// and output channels swapped:
// gradInput[b,c,h,w] = Σ_{o,i',j'} padded[b,o,h+i',w+j']·weight[o,c,kH−1−i',kW−1−j'].
// conv_pad_gradient and conv_weight_flipped prepare its operands.

// gradOutput (B, O, oH, oW) → (B, O, oH + 2·padY, oW + 2·padX), zero border.
#ifdef KERNEL_conv_pad_gradient
__kernel void conv_pad_gradient(__global const float* gradOutput, __global float* padded,
                                int planes, int outHeight, int outWidth, int padY, int padX) {
    // One work-item per plane (see conv_output_pixel_major on why whole planes).
    const int paddedHeight = outHeight + 2 * padY, paddedWidth = outWidth + 2 * padX;
    const int plane = get_global_id(0);
    if (plane >= planes) return;
    __global float* target = padded + (size_t)plane * paddedHeight * paddedWidth;
    __global const float* source = gradOutput + (size_t)plane * outHeight * outWidth;
    for (int y = 0; y < paddedHeight; y++) {
        const int sy = y - padY;
        __global float* row = target + y * paddedWidth;
        if (sy < 0 || sy >= outHeight) {
            for (int x = 0; x < paddedWidth; x++) row[x] = 0.0f;
            continue;
        }
        for (int x = 0; x < padX; x++) row[x] = 0.0f;
        for (int x = 0; x < outWidth; x++) row[padX + x] = source[sy * outWidth + x];
        for (int x = padX + outWidth; x < paddedWidth; x++) row[x] = 0.0f;
    }
}
#endif


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

#ifdef KERNEL_conv2d_forward_1
DEFINE_CONV2D_FORWARD(1)
#endif
#ifdef KERNEL_conv2d_forward_4
DEFINE_CONV2D_FORWARD(4)
#endif
#ifdef KERNEL_conv2d_forward_8
DEFINE_CONV2D_FORWARD(8)
#endif
#ifdef KERNEL_conv2d_forward_16
DEFINE_CONV2D_FORWARD(16)
#endif
#ifdef KERNEL_conv2d_weight_partials_1
DEFINE_CONV2D_WEIGHT_PARTIALS(1)
#endif
#ifdef KERNEL_conv2d_weight_partials_4
DEFINE_CONV2D_WEIGHT_PARTIALS(4)
#endif
#ifdef KERNEL_conv2d_weight_partials_8
DEFINE_CONV2D_WEIGHT_PARTIALS(8)
#endif
#ifdef KERNEL_conv2d_weight_partials_16
DEFINE_CONV2D_WEIGHT_PARTIALS(16)
#endif

// Partial weight gradients for 3×3 kernels with the vector along a row of
// output pixels instead of across output channels — the better form when
// output channels are few and rows long (conv1: measured on PoCL here,
// ~2× the channel-vector form with its transpose):
// partials[b, o, c·9 + i·3 + j] = Σ_{y,x} input[b,c,y+i,x+j]·gradOutput[b,o,y,x].
// One work-item per (image, output channel, input channel), nine float8
// accumulators, each gradient vector feeding all nine. Needs oW ≥ 8: a row's
// last block is shifted left to end at oW and its lanes already counted
// are zeroed. conv_sum_images adds the images.
#ifdef KERNEL_conv2d_weight_rows3x3
__kernel void conv2d_weight_rows3x3(__global const float* input, __global const float* gradOutput,
        __global float* partials, int batch, int inChannels, int height, int width, int outChannels) {
    const int outHeight = height - 2, outWidth = width - 2;
    const int index = get_global_id(0);
    if (index >= batch * outChannels * inChannels) return;
    const int bo = index / inChannels, c = index - bo * inChannels;
    const int b = bo / outChannels;
    __global const float* plane = input + (size_t)(b * inChannels + c) * height * width;
    __global const float* grad = gradOutput + (size_t)bo * outHeight * outWidth;
    const int8 lane = (int8)(0, 1, 2, 3, 4, 5, 6, 7);
    float8 a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f, a7 = 0.0f, a8 = 0.0f;
    for (int y = 0; y < outHeight; y++) {
        __global const float* r0 = plane + y * width;
        __global const float* r1 = r0 + width;
        __global const float* r2 = r1 + width;
        for (int x0 = 0; x0 < outWidth; x0 += 8) {
            const int s = min(x0, outWidth - 8);
            const float8 g = select(vload8(0, grad + y * outWidth + s), (float8)0.0f, lane < x0 - s);
            a0 += vload8(0, r0 + s) * g; a1 += vload8(0, r0 + s + 1) * g; a2 += vload8(0, r0 + s + 2) * g;
            a3 += vload8(0, r1 + s) * g; a4 += vload8(0, r1 + s + 1) * g; a5 += vload8(0, r1 + s + 2) * g;
            a6 += vload8(0, r2 + s) * g; a7 += vload8(0, r2 + s + 1) * g; a8 += vload8(0, r2 + s + 2) * g;
        }
    }
    __global float* out = partials + (size_t)index * 9;
#define LANE_SUM(v) ((((v).s0 + (v).s1) + ((v).s2 + (v).s3)) + (((v).s4 + (v).s5) + ((v).s6 + (v).s7)))
    out[0] = LANE_SUM(a0); out[1] = LANE_SUM(a1); out[2] = LANE_SUM(a2);
    out[3] = LANE_SUM(a3); out[4] = LANE_SUM(a4); out[5] = LANE_SUM(a5);
    out[6] = LANE_SUM(a6); out[7] = LANE_SUM(a7); out[8] = LANE_SUM(a8);
#undef LANE_SUM
}
#endif

// total[i] = Σ_b partials[b·count + i]: per-image partial sums added over
// the batch. One work-item per element of the total.
#ifdef KERNEL_conv_sum_images
__kernel void conv_sum_images(__global const float* partials, __global float* total, int batch, int count) {
    const int index = get_global_id(0);
    if (index >= count) return;
    float sum = 0.0f;
    for (int b = 0; b < batch; b++) sum += partials[(size_t)b * count + index];
    total[index] = sum;
}
#endif

// gradWeight[o, k] = Σ_chunk partials[chunk, k, o]: the weight gradient in
// the (O, C, kH, kW) layout. One work-item per weight.
#ifdef KERNEL_conv2d_weight_reduce
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
#endif
