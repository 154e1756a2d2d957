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
// (any image size) exposes batch·P work-items, 50,176 at batch 64 for MNIST,
// for a GPU; batch_gather16 (P a multiple of 16·run) gives a CPU work-item
// `run` whole vectors (PoCL does not vectorise across work-items by itself),
// its stores aligned (k·P + 16·run·j is a whole number of float16s; written
// without common.cl's VEC_REF, which this file, sorted before it, cannot see).

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

#ifdef KERNEL_batch_gather16
#pragma OPENCL FP_CONTRACT OFF
// `run` float16s per work-item (imageSize a multiple of 16·run): 7 for
// MNIST, 448 work-items at batch 64 (one float16 per item took ~35–40 µs
// a batch on PoCL here, seven ~22–30 µs; a whole image per item varied
// 20–56 µs).
__kernel void batch_gather16(const int count, const int imageSize, const int start, const int batch,
                             __global const uchar* pixels, __global const uchar* labels,
                             __global const int* order, const float scale, const float shift,
                             __global float* images, __global int* batchLabels, const int run)
{
    BATCH_GATHER_BODY(16 * run)
    __global float16* target = (__global float16*)images + index * run;
    __global const uchar* source = pixels + (size_t)n * imageSize + j * 16 * run;
    for (int v = 0; v < run; v++)
        target[v] = valid ? convert_float16(vload16(v, source)) * scale - shift : (float16)(NAN);
}
#endif
