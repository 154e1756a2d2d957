// Softmax cross-entropy, one work-item per sample (classes are few).
// loss_b = logsumexp(z_b) − z_b[label] with the maximum subtracted first;
// gradLogits = (softmax − onehot)/batch; perSample[b] = loss_b,
// perSample[batch + b] = 1 when the first largest logit is the label.
// A label outside [0, classes) has no one-hot entry and a NaN loss, so a bad
// label shows up in the reported loss instead of reading out of bounds.
#ifdef KERNEL_softmax_cross_entropy
__kernel void softmax_cross_entropy(__global const float* logits, __global const int* labels,
                                    __global float* gradLogits, __global float* perSample,
                                    int batch, int classes) {
    const int b = get_global_id(0);
    if (b >= batch) return;
    __global const float* z = logits + (size_t)b * classes;
    __global float* grad = gradLogits + (size_t)b * classes;
    const int label = labels[b];
    int best = 0;
    for (int k = 1; k < classes; k++) if (z[k] > z[best]) best = k;
    const float top = z[best];
    float sumExp = 0.0f;
    for (int k = 0; k < classes; k++) sumExp += exp(z[k] - top);
    const bool valid = label >= 0 && label < classes;
    perSample[b] = valid ? log(sumExp) + top - z[label] : NAN;
    perSample[batch + b] = (valid && best == label) ? 1.0f : 0.0f;
    const float scale = 1.0f / (float)batch;
    for (int k = 0; k < classes; k++) {
        const float p = exp(z[k] - top) / sumExp;
        grad[k] = (p - (k == label ? 1.0f : 0.0f)) * scale;
    }
}
#endif
