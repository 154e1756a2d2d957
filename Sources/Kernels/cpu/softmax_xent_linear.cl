// The linear layer and the softmax cross-entropy in one launch (a step's
// last forward operation): one work-item per four samples computes their
// logits as linear_forward does (linear_dots4: each weight row loaded once
// for the four) and stores them, then each sample's loss, correctness and
// logit gradients as softmax_cross_entropy does (softmax_xent_sample). The
// same floats as the two kernels, in one launch instead of two. Samples
// past the batch read the last sample and are not stored.
#ifdef KERNEL_linear_softmax_cross_entropy
__kernel void linear_softmax_cross_entropy(__global const float* input, __global const float* weight,
                                           __global const float* bias, __global float* logits,
                                           __global const int* labels, __global float* gradLogits,
                                           __global float* perSample, int batch, int inFeatures, int classes) {
    const int b0 = get_global_id(0) * 4;
    if (b0 >= batch) return;
    __global const float* x0 = input + (size_t)b0 * inFeatures;
    __global const float* x1 = input + (size_t)min(b0 + 1, batch - 1) * inFeatures;
    __global const float* x2 = input + (size_t)min(b0 + 2, batch - 1) * inFeatures;
    __global const float* x3 = input + (size_t)min(b0 + 3, batch - 1) * inFeatures;
    for (int o = 0; o < classes; o++) {
        float sums[4];
        linear_dots4(weight + (size_t)o * inFeatures, x0, x1, x2, x3, inFeatures, sums);
        for (int r = 0; r < 4 && b0 + r < batch; r++) logits[(size_t)(b0 + r) * classes + o] = sums[r] + bias[o];
    }
    for (int b = b0; b < min(b0 + 4, batch); b++)
        softmax_xent_sample(b, logits + (size_t)b * classes, labels[b], gradLogits + (size_t)b * classes, perSample,
                            batch, classes);
}
#endif
