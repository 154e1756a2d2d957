// The linear layer and the softmax cross-entropy in one launch (the gpu
// family's form of linear_softmax_cross_entropy): one work-item per logit
// (b, k), which computes it as gpu_linear_forward does and stores it, then,
// the row's logits shared through local memory (`rows`, one float per
// work-item), its gradient and the loss as gpu_softmax_cross_entropy does
// (GPU_SOFTMAX_XENT_LOGIT). Work-groups hold whole rows: the host makes the
// group size a multiple of `classes`. Work-items past the batch take part
// in the barrier only.
#ifdef KERNEL_gpu_linear_softmax_cross_entropy
__kernel void gpu_linear_softmax_cross_entropy(__global const float* input, __global const float* weight,
                                               __global const float* bias, __global float* logits,
                                               __global const int* labels, __global float* gradLogits,
                                               __global float* perSample, __local float* rows, int batch,
                                               int inFeatures, int classes) {
    const int index = get_global_id(0), lid = get_local_id(0);
    const int b = index / classes, k = index - b * classes;
    if (b < batch) {
        __global const float* x = input + (size_t)b * inFeatures;
        __global const float* w = weight + (size_t)k * inFeatures;
        float sum = 0.0f;
        for (int i = 0; i < inFeatures; i++) sum += x[i] * w[i];
        const float logit = sum + bias[k];
        logits[index] = logit;
        rows[lid] = logit;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (b >= batch) return;
    __local const float* z = rows + (lid - k);
    GPU_SOFTMAX_XENT_LOGIT(z)
}
#endif
