// One training or evaluation batch gathered from a data set kept on the
// device as bytes (Device.gatherBatch; HostDevice+Batch.swift is the
// reference): for k < batch, n = order[start + k],
//     images[k·P + p] = (float)pixels[n·P + p] * scale - shift
//     batchLabels[k]  = labels[n]
// An n outside 0..<count reads nothing: NaN pixels and label -1.
//
// FP_CONTRACT OFF: OpenCL C may fuse x*scale - shift into one fma (one
// rounding), and the host rounds the product first (Swift never fuses):
// with the pragma the two agree bit for bit, which GPUNetTests checks for
// every byte value.
//
// BATCH_GATHER_BODY(W): one work-item per W pixels of one image. batch_gather1
// (any image size; the gpu family's, and the cpu family's where P is not a
// multiple of 16) exposes batch·P work-items, 50,176 at batch 64 for MNIST;
// cpu/batch_gather16.cl uses the same body with W = 16·run.

#define BATCH_GATHER_BODY(W) \
    const int vectors = imageSize / (W); \
    const int index = get_global_id(0); \
    if (index >= batch * vectors) return; \
    const int k = index / vectors, j = index - k * vectors; \
    const int n = order[start + k]; \
    const bool valid = n >= 0 && n < count; \
    if (j == 0) batchLabels[k] = valid ? (int)labels[n] : -1;

#ifdef KERNEL_batch_gather1
#pragma OPENCL FP_CONTRACT OFF
__kernel void batch_gather1(const int count, const int imageSize, const int start, const int batch,
                            __global const uchar* pixels, __global const uchar* labels,
                            __global const int* order, const float scale, const float shift,
                            __global float* images, __global int* batchLabels)
{
    BATCH_GATHER_BODY(1)
    images[index] = valid ? (float)pixels[(size_t)n * imageSize + j] * scale - shift : NAN;
}
#endif

// The augmented and per-channel gathers (cpu/batch_gather_rows.cl,
// gpu/batch_gather_planes.cl; Augmentation.swift is the definition): the
// random choices of the image at position `position` of the epoch's order,
// from the epoch's key (computed on the host), as AugmentationChoice
// computes them: h = mix(key ^ position), dy and dx from h's 16-bit halves
// scaled to 0..2p, flip from the top bit of mix(h ^ 0x2545f491). Integer
// arithmetic modulo 2^32: the same choices on every device.
#define AUGMENT_MIX(v)                                                                                    \
    do {                                                                                                  \
        v ^= v >> 16;                                                                                     \
        v *= 0x7feb352du;                                                                                 \
        v ^= v >> 15;                                                                                     \
        v *= 0x846ca68bu;                                                                                 \
        v ^= v >> 16;                                                                                     \
    } while (0)
#define AUGMENT_CHOICE(key, position, padding, flips, dy, dx, flip)                                       \
    uint h_ = (key) ^ (uint)(position);                                                                   \
    AUGMENT_MIX(h_);                                                                                      \
    uint f_ = h_ ^ 0x2545f491u;                                                                           \
    AUGMENT_MIX(f_);                                                                                      \
    const uint span_ = 2u * (uint)(padding) + 1u;                                                         \
    const int dy = (int)(((h_ >> 16) * span_) >> 16);                                                     \
    const int dx = (int)(((h_ & 0xffffu) * span_) >> 16);                                                 \
    const bool flip = (flips) != 0 && (f_ >> 31) != 0;
