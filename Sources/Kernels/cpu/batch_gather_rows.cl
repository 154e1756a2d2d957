// The cpu family's per-channel, augmented batch gather (Augmentation.swift
// defines it, HostDevice+Batch.swift is the reference; common/batch_gather.cl
// says why FP_CONTRACT is off): one work-item per output row (image k,
// channel c, row y), 12,288 at batch 128 for CIFAR-10's 3×32×32 and 3,584
// for 1×28×28. Output pixel x of the row reads byte
// pixels[n, c, y + dy - p, x' + dx - p] (x' = columns - 1 - x when flipped),
// 0 outside the image, and writes byte·scale[c] - shift[c];
// `normalization` holds the scales, then the shifts. The choice is hashed
// once per row. An n outside 0..<count reads nothing: a NaN row, label -1.
// The plain one-channel gather without augmentation keeps batch_gather16.

#ifdef KERNEL_batch_gather_rows
#pragma OPENCL FP_CONTRACT OFF
__kernel void batch_gather_rows(const int count, const int channels, const int rows, const int columns,
                                const int start, const int batch, __global const uchar* pixels,
                                __global const uchar* labels, __global const int* order,
                                __global const float* normalization, const uint key, const int padding,
                                const int flips, __global float* images, __global int* batchLabels)
{
    const int index = get_global_id(0);
    if (index >= batch * channels * rows) return;
    const int k = index / (channels * rows), r = index - k * (channels * rows);
    const int c = r / rows, y = r - c * rows;
    const int n = order[start + k];
    const bool valid = n >= 0 && n < count;
    if (r == 0) batchLabels[k] = valid ? (int)labels[n] : -1;
    __global float* target = images + (size_t)index * columns;
    if (!valid) {
        for (int x = 0; x < columns; x++) target[x] = NAN;
        return;
    }
    AUGMENT_CHOICE(key, start + k, padding, flips, dy, dx, flip)
    const float scale = normalization[c], shift = normalization[channels + c];
    const float outside = 0.0f * scale - shift;
    const int sy = y + dy - padding;
    if (sy < 0 || sy >= rows) {
        for (int x = 0; x < columns; x++) target[x] = outside;
        return;
    }
    __global const uchar* line = pixels + ((size_t)n * channels + c) * rows * columns + (size_t)sy * columns;
    for (int x = 0; x < columns; x++) {
        const int sx = (flip ? columns - 1 - x : x) + dx - padding;
        target[x] = sx >= 0 && sx < columns ? (float)line[sx] * scale - shift : outside;
    }
}
#endif
