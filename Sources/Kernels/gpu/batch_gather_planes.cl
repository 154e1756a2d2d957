// The gpu family's per-channel, augmented batch gather (Augmentation.swift
// defines it, HostDevice+Batch.swift is the reference; common/batch_gather.cl
// says why FP_CONTRACT is off): one work-item per output pixel (image k,
// channel c, row y, column x), 393,216 at batch 128 for CIFAR-10's
// 3×32×32 and 100,352 for 1×28×28; neighbouring work-items read
// neighbouring bytes (reversed in a flipped row). Pixel (c, y, x) reads byte
// pixels[n, c, y + dy - p, x' + dx - p] (x' = columns - 1 - x when flipped),
// 0 outside the image, and writes byte·scale[c] - shift[c];
// `normalization` holds the scales, then the shifts. An n outside
// 0..<count reads nothing: NaN pixels, label -1. The plain one-channel
// gather without augmentation keeps batch_gather1.

#ifdef KERNEL_gpu_batch_gather_planes
#pragma OPENCL FP_CONTRACT OFF
__kernel void gpu_batch_gather_planes(const int count, const int channels, const int rows, const int columns,
                                      const int start, const int batch, __global const uchar* pixels,
                                      __global const uchar* labels, __global const int* order,
                                      __global const float* normalization, const uint key, const int padding,
                                      const int flips, __global float* images, __global int* batchLabels)
{
    const int plane = rows * columns, imageSize = channels * plane;
    const int index = get_global_id(0);
    if (index >= batch * imageSize) return;
    const int k = index / imageSize, j = index - k * imageSize;
    const int c = j / plane, q = j - c * plane;
    const int y = q / columns, x = q - y * columns;
    const int n = order[start + k];
    const bool valid = n >= 0 && n < count;
    if (j == 0) batchLabels[k] = valid ? (int)labels[n] : -1;
    if (!valid) {
        images[index] = NAN;
        return;
    }
    AUGMENT_CHOICE(key, start + k, padding, flips, dy, dx, flip)
    const int sy = y + dy - padding, sx = (flip ? columns - 1 - x : x) + dx - padding;
    const bool inside = sy >= 0 && sy < rows && sx >= 0 && sx < columns;
    const float value = inside ? (float)pixels[(size_t)n * imageSize + c * plane + sy * columns + sx] : 0.0f;
    images[index] = value * normalization[c] - normalization[channels + c];
}
#endif
