// The GPU family's pooled convolutions: a convolution (stride 1, no
// padding, no bias) followed by a 2×2, stride-2 max-pool in floor mode, and
// its two backward passes, shaped for a device that runs tens of thousands
// of slow work-items at once: one work-item per output element (or per
// few terms of a reduction), work-groups sized by the host from the
// kernel's limits, data that a group reuses staged in local memory, and
// every sum in a fixed order (no atomics): a seed gives the same weights on
// every run. Semantics as the CPU family's (cpu/conv2d_pool_forward.cl,
// cpu/conv2d_pooled_backward.cl): argmax is the winner's flat index
// y·oW + x in the (oH, oW) conv output plane, ties go to the first candidate
// in row-major order and NaN never replaces a number; with relu ≠ 0 the
// pooled output is RELU(max) and the backward passes pass gradient where
// reluOutput > 0; a winner outside its own window passes nothing.

// Forward: one work-group per (image, chunk of its O·pH·pW pooled outputs),
// `groupsPerImage` chunks per image; the image's C·H·W inputs (each read by
// the windows of every output channel: O times) and all O·C·kH·kW weights
// (read by every work-item) are first copied into `tile`, which holds
// C·H·W + O·C·kH·kW floats. Work-item t of the image computes output
// (o, q) = (t / windows, t % windows): windows fastest, so neighbouring
// work-items read neighbouring inputs and store contiguously.
#ifdef KERNEL_gpu_conv2d_maxpool2_forward
__kernel void gpu_conv2d_maxpool2_forward(__global const float* input, __global const float* weight,
        __global float* pooled, __global int* argmax, __local float* tile, int batch, int inChannels,
        int height, int width, int outChannels, int kernelHeight, int kernelWidth, int relu, int groupsPerImage) {
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1;
    const int poolHeight = outHeight / 2, poolWidth = outWidth / 2, windows = poolHeight * poolWidth;
    const int area = height * width, inputCount = inChannels * area;
    const int kernelArea = kernelHeight * kernelWidth, weightCount = outChannels * inChannels * kernelArea;
    const int lid = get_local_id(0), size = get_local_size(0);
    const int b = get_group_id(0) / groupsPerImage;
    const int t = (get_group_id(0) - b * groupsPerImage) * size + lid;
    __local float* image = tile;
    __local float* w = tile + inputCount;
    // The host launches batch·groupsPerImage groups: b < batch in all of them.
    __global const float* source = input + (size_t)b * inputCount;
    for (int k = lid; k < inputCount; k += size) image[k] = source[k];
    for (int k = lid; k < weightCount; k += size) w[k] = weight[k];
    barrier(CLK_LOCAL_MEM_FENCE);
    if (t >= outChannels * windows) return;
    const int o = t / windows, q = t - o * windows;
    const int qy = q / poolWidth, qx = q - qy * poolWidth;
    const int y = 2 * qy, x = 2 * qx;
    float s00 = 0.0f, s01 = 0.0f, s10 = 0.0f, s11 = 0.0f;
    __local const float* wo = w + o * inChannels * kernelArea;
    for (int c = 0; c < inChannels; c++) {
        __local const float* corner = image + c * area + y * width + x;
        __local const float* wc = wo + c * kernelArea;
        for (int i = 0; i < kernelHeight; i++) {
            __local const float* top = corner + i * width;
            __local const float* bottom = top + width;
            for (int j = 0; j < kernelWidth; j++) {
                const float k = wc[i * kernelWidth + j];
                s00 += k * top[j]; s01 += k * top[j + 1];
                s10 += k * bottom[j]; s11 += k * bottom[j + 1];
            }
        }
    }
    const int first = y * outWidth + x;
    float best = s00;
    int winner = first;
    if (s01 > best) { best = s01; winner = first + 1; }
    if (s10 > best) { best = s10; winner = first + outWidth; }
    if (s11 > best) { best = s11; winner = first + outWidth + 1; }
    const size_t out = ((size_t)b * outChannels + o) * windows + q;
    pooled[out] = relu ? RELU(float, best) : best;
    argmax[out] = winner;
}
#endif

// The conv-output gradient of window `plane` (index (b·O + o)·windows + q)
// at pixel (dy, dx) of the window, or 0: the pooled gradient where the
// winner is that pixel and the fused ReLU (if any) passed.
static inline float gpu_winner_gradient(__global const float* gradient, __global const int* argmax,
                                        __global const float* reluOutput, int relu, size_t plane, int first,
                                        int outWidth, int* dy, int* dx) {
    const int position = argmax[plane] - first;
    *dy = position >= outWidth;
    *dx = position - *dy * outWidth;
    const int inWindow = position >= 0 && *dx >= 0 && *dx <= 1;
    const int passes = !relu || reluOutput[plane] > 0.0f;
    return inWindow && passes ? gradient[plane] : 0.0f;
}

// Weight gradient, step 1 of 2: gradWeight[o,c,i,j] = Σ over the batch·pH·pW
// terms (b, q) of g'[b,o,q]·input[b, c, 2qy+dy+i, 2qx+dx+j], (dy, dx) the
// window's winner, g' the pooled gradient where it passes. One work-group
// per (weight, chunk of terms), `chunks` chunks per weight: work-item l of
// the group sums terms chunk·size·termsPerItem + k·size + l (k <
// termsPerItem; neighbouring work-items take neighbouring windows), then
// the group adds its work-items' sums as a tree in local memory (`sums`,
// one float per work-item; the group size is a power of two) and stores
// partials[weight·chunks + chunk]. gpu_sum_chunks adds the chunks in order.
#ifdef KERNEL_gpu_conv2d_pooled_weight_partials
__kernel void gpu_conv2d_pooled_weight_partials(__global const float* input, __global const float* gradient,
        __global const int* argmax, __global const float* reluOutput, __global float* partials,
        __local float* sums, int batch, int inChannels, int height, int width, int outChannels,
        int kernelHeight, int kernelWidth, int relu, int chunks, int termsPerItem) {
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1;
    const int poolHeight = outHeight / 2, poolWidth = outWidth / 2, windows = poolHeight * poolWidth;
    const int lid = get_local_id(0), size = get_local_size(0);
    const int group = get_group_id(0);
    const int weightIndex = group / chunks, chunk = group - weightIndex * chunks;
    const int kernelArea = kernelHeight * kernelWidth;
    const int ij = weightIndex % kernelArea, oc = weightIndex / kernelArea;
    const int i = ij / kernelWidth, j = ij - i * kernelWidth;
    const int c = oc % inChannels, o = oc / inChannels;
    const int terms = batch * windows;
    float sum = 0.0f;
    for (int k = 0; k < termsPerItem; k++) {
        const int term = (chunk * termsPerItem + k) * size + lid;
        if (term >= terms) break;
        const int b = term / windows, q = term - b * windows;
        const int qy = q / poolWidth, qx = q - qy * poolWidth;
        int dy, dx;
        const float g = gpu_winner_gradient(gradient, argmax, reluOutput, relu,
                                            ((size_t)b * outChannels + o) * windows + q,
                                            2 * qy * outWidth + 2 * qx, outWidth, &dy, &dx);
        if (g != 0.0f)
            sum += g * input[(((size_t)b * inChannels + c) * height + 2 * qy + dy + i) * width + 2 * qx + dx + j];
    }
    sums[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int step = size / 2; step > 0; step /= 2) {
        if (lid < step) sums[lid] += sums[lid + step];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) partials[group] = sums[0];
}
#endif

// Weight gradient, step 2 of 2: total[w] = Σ_chunk partials[w·chunks + chunk],
// the chunks added in order. One work-item per weight.
#ifdef KERNEL_gpu_sum_chunks
__kernel void gpu_sum_chunks(__global const float* partials, __global float* total, int count, int chunks) {
    const int index = get_global_id(0);
    if (index >= count) return;
    __global const float* p = partials + (size_t)index * chunks;
    float sum = 0.0f;
    for (int chunk = 0; chunk < chunks; chunk++) sum += p[chunk];
    total[index] = sum;
}
#endif

// Data gradient by gather: one work-group per (image, chunk of its C·H·W
// input elements), `groupsPerImage` chunks per image, one work-item per
// element (b, c, y, x), which adds g'[b,o,q]·weight[o,c,i,j] over output
// channels o and the windows q whose winner (wy, wx) lies within the
// kernel's reach, i = y − wy ∈ [0, kH), j = x − wx ∈ [0, kW): at most
// ⌈(kH+1)/2⌉·⌈(kW+1)/2⌉ windows per channel (4 for 3×3) instead of kH·kW
// candidate pixels. First the group copies into `tile` what all its
// work-items read: the O·C·kH·kW weights, and the image's O·pH·pW pooled
// gradients (zero where the fused ReLU or a corrupt winner stops them) with
// their winners' offsets within the window (dy·outWidth + dx, or −1). No
// two work-items write one element (no atomics), and each sums in the same
// order on every run.
#ifdef KERNEL_gpu_conv2d_pooled_data
__kernel void gpu_conv2d_pooled_data(__global const float* gradient, __global const int* argmax,
        __global const float* reluOutput, __global const float* weight, __global float* gradInput,
        __local float* tile, __local int* winners, int batch, int inChannels, int height, int width,
        int outChannels, int kernelHeight, int kernelWidth, int relu, int groupsPerImage) {
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1;
    const int poolHeight = outHeight / 2, poolWidth = outWidth / 2, windows = poolHeight * poolWidth;
    const int kernelArea = kernelHeight * kernelWidth, weightCount = outChannels * inChannels * kernelArea;
    const int lid = get_local_id(0), size = get_local_size(0);
    const int b = get_group_id(0) / groupsPerImage;
    const int t = (get_group_id(0) - b * groupsPerImage) * size + lid;
    __local float* w = tile;
    __local float* g = tile + weightCount;
    for (int k = lid; k < weightCount; k += size) w[k] = weight[k];
    // The host launches batch·groupsPerImage groups: b < batch in all of them.
    const size_t planes = (size_t)b * outChannels * windows;
    for (int k = lid; k < outChannels * windows; k += size) {
        const int q = k % windows, qy = q / poolWidth, qx = q - qy * poolWidth;
        int dy, dx;
        const float value = gpu_winner_gradient(gradient, argmax, reluOutput, relu, planes + k,
                                                2 * qy * outWidth + 2 * qx, outWidth, &dy, &dx);
        g[k] = value;
        winners[k] = value != 0.0f ? dy * outWidth + dx : -1;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    const int area = height * width;
    if (t >= inChannels * area) return;
    const int c = t / area, p = t - c * area;
    const int y = p / width, x = p - y * width;
    // Windows whose rows 2qy, 2qy+1 meet [y − kH + 1, y]: ⌈(y − kH)/2⌉ ≤ qy ≤ ⌊y/2⌋
    // (a negative first is clamped to 0, so truncation does no harm); columns likewise.
    const int qyFirst = max(0, (y - kernelHeight + 1) / 2), qyLast = min(poolHeight - 1, y / 2);
    const int qxFirst = max(0, (x - kernelWidth + 1) / 2), qxLast = min(poolWidth - 1, x / 2);
    float sum = 0.0f;
    for (int o = 0; o < outChannels; o++) {
        __local const float* wk = w + (o * inChannels + c) * kernelArea;
        for (int qy = qyFirst; qy <= qyLast; qy++) {
            for (int qx = qxFirst; qx <= qxLast; qx++) {
                const int k = o * windows + qy * poolWidth + qx;
                const int winner = winners[k];
                const int dy = winner >= outWidth, dx = winner - dy * outWidth;
                const int i = y - 2 * qy - dy, j = x - 2 * qx - dx;
                if (winner >= 0 && i >= 0 && i < kernelHeight && j >= 0 && j < kernelWidth)
                    sum += g[k] * wk[i * kernelWidth + j];
            }
        }
    }
    gradInput[(size_t)b * inChannels * area + t] = sum;
}
#endif
