// The cpu family's batch gather (common/batch_gather.cl says what it
// computes and why FP_CONTRACT is off): P a multiple of 16·run, a work-item
// gives `run` whole float16s (PoCL does not vectorise across work-items by
// itself), its stores aligned (k·P + 16·run·j is a whole number of float16s).

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
