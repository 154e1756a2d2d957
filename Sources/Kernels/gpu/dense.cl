// The GPU family's linear layer, loss and optimiser: outputs too small to
// fill a GPU (at batch 64: 640 logits, 29,610 gradients, 5,234 parameters),
// so one work-item per output element, each summing its terms in a fixed
// order (no atomics). Semantics as common/linear.cl, common/softmax_xent.cl
// and common/optimizers.cl.

// output[b,o] = Σ_k input[b,k]·weight[o,k] + bias[o]; one work-item per
// (b, o), o fastest.
#ifdef KERNEL_gpu_linear_forward
__kernel void gpu_linear_forward(__global const float* input, __global const float* weight,
                                 __global const float* bias, __global float* output,
                                 int batch, int inFeatures, int outFeatures) {
    const int index = get_global_id(0);
    if (index >= batch * outFeatures) return;
    const int b = index / outFeatures, o = index - b * outFeatures;
    __global const float* x = input + (size_t)b * inFeatures;
    __global const float* w = weight + (size_t)o * inFeatures;
    float sum = 0.0f;
    for (int k = 0; k < inFeatures; k++) sum += x[k] * w[k];
    output[index] = sum + bias[o];
}
#endif

// One launch for the three gradients, one work-item per element:
// [0, O·K): gradWeight[o,k] = Σ_b gradOutput[b,o]·input[b,k];
// [O·K, O·K + O): gradBias[o] = Σ_b gradOutput[b,o];
// then, with hasGradInput, B·K more: gradInput[b,k] = Σ_o gradOutput[b,o]·weight[o,k].
#ifdef KERNEL_gpu_linear_backward
__kernel void gpu_linear_backward(__global const float* input, __global const float* weight,
                                  __global const float* gradOutput, __global float* gradWeight,
                                  __global float* gradBias, __global float* gradInput,
                                  int batch, int inFeatures, int outFeatures, int hasGradInput) {
    int index = get_global_id(0);
    const int weights = outFeatures * inFeatures;
    if (index < weights) {
        const int o = index / inFeatures, k = index - o * inFeatures;
        float sum = 0.0f;
        for (int b = 0; b < batch; b++)
            sum += gradOutput[(size_t)b * outFeatures + o] * input[(size_t)b * inFeatures + k];
        gradWeight[index] = sum;
        return;
    }
    index -= weights;
    if (index < outFeatures) {
        float sum = 0.0f;
        for (int b = 0; b < batch; b++) sum += gradOutput[(size_t)b * outFeatures + index];
        gradBias[index] = sum;
        return;
    }
    index -= outFeatures;
    if (!hasGradInput || index >= batch * inFeatures) return;
    const int b = index / inFeatures, k = index - b * inFeatures;
    float sum = 0.0f;
    for (int o = 0; o < outFeatures; o++)
        sum += gradOutput[(size_t)b * outFeatures + o] * weight[(size_t)o * inFeatures + k];
    gradInput[index] = sum;
}
#endif

// Softmax cross-entropy, one work-item per logit (b, k): each takes its
// row's maximum and sum of exponentials (classes are few) and writes
// gradLogits[b,k] = (softmax − onehot)/batch; the row's first work-item also
// writes perSample[b] = logsumexp(z_b) − z_b[label] and perSample[batch + b]
// = 1 when the first largest logit is the label. A label outside
// [0, classes) gives a NaN loss, as in the CPU family.
#ifdef KERNEL_gpu_softmax_cross_entropy
__kernel void gpu_softmax_cross_entropy(__global const float* logits, __global const int* labels,
                                        __global float* gradLogits, __global float* perSample,
                                        int batch, int classes) {
    const int index = get_global_id(0);
    if (index >= batch * classes) return;
    const int b = index / classes, k = index - b * classes;
    __global const float* z = logits + (size_t)b * classes;
    const int label = labels[b];
    int best = 0;
    for (int n = 1; n < classes; n++) if (z[n] > z[best]) best = n;
    const float top = z[best];
    float sumExp = 0.0f;
    for (int n = 0; n < classes; n++) sumExp += exp(z[n] - top);
    const float p = exp(z[k] - top) / sumExp;
    gradLogits[index] = (p - (k == label ? 1.0f : 0.0f)) * (1.0f / (float)batch);
    if (k == 0) {
        const bool valid = label >= 0 && label < classes;
        perSample[b] = valid ? log(sumExp) + top - z[label] : NAN;
        perSample[batch + b] = (valid && best == label) ? 1.0f : 0.0f;
    }
}
#endif

// Adam, one work-item per element of up to four tensors (tensor t owns the
// next n_t work-items), PyTorch's rule as adam_step:
// m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; parameter −= lr·(m/c₁)/(√(v/c₂) + ε).
#ifdef KERNEL_gpu_adam_step
__kernel void gpu_adam_step(
        __global float* p0, __global const float* g0, __global float* m0, __global float* v0,
        __global float* p1, __global const float* g1, __global float* m1, __global float* v1,
        __global float* p2, __global const float* g2, __global float* m2, __global float* v2,
        __global float* p3, __global const float* g3, __global float* m3, __global float* v3,
        int n0, int n1, int n2, int n3, float learningRate, float beta1, float beta2, float epsilon,
        float correction1, float correction2) {
    TENSOR_SLOT(n0, n1, n2, n3, index, slot)
    __global float* parameter = PICK(slot, p0, p1, p2, p3);
    __global const float* gradient = PICK(slot, g0, g1, g2, g3);
    __global float* m = PICK(slot, m0, m1, m2, m3);
    __global float* v = PICK(slot, v0, v1, v2, v3);
    ADAM_ELEMENT(index)
}
#endif
