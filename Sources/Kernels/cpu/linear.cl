// Fully connected layer: input (B, in), weight (out, in), bias (out).
// Rows are read eight floats at a time (vload8) with a scalar tail, since
// PoCL vectorises explicit vector types and not scalar loops.

// output[b,o] = Σ_i input[b,i]·weight[o,i] + bias[o]. One work-item per
// (output feature, four samples): each weight vector loaded feeds four dot
// products (measured on PoCL here: ~2× one output per work-item). Samples
// past the batch read the last sample and are not stored.
#ifdef KERNEL_linear_forward
__kernel void linear_forward(__global const float* input, __global const float* weight,
                             __global const float* bias, __global float* output,
                             int batch, int inFeatures, int outFeatures) {
    const int sampleGroups = (batch + 3) / 4;
    const int index = get_global_id(0);
    if (index >= sampleGroups * outFeatures) return;
    const int o = index / sampleGroups, b0 = (index - o * sampleGroups) * 4;
    __global const float* w = weight + (size_t)o * inFeatures;
    __global const float* x0 = input + (size_t)min(b0, batch - 1) * inFeatures;
    __global const float* x1 = input + (size_t)min(b0 + 1, batch - 1) * inFeatures;
    __global const float* x2 = input + (size_t)min(b0 + 2, batch - 1) * inFeatures;
    __global const float* x3 = input + (size_t)min(b0 + 3, batch - 1) * inFeatures;
    float8 acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
    const int blocks = inFeatures / 8;
    for (int q = 0; q < blocks; q++) {
        const float8 wv = vload8(q, w);
        acc0 += vload8(q, x0) * wv; acc1 += vload8(q, x1) * wv;
        acc2 += vload8(q, x2) * wv; acc3 += vload8(q, x3) * wv;
    }
    float sums[4];
    sums[0] = dot(acc0.lo, (float4)1.0f) + dot(acc0.hi, (float4)1.0f);
    sums[1] = dot(acc1.lo, (float4)1.0f) + dot(acc1.hi, (float4)1.0f);
    sums[2] = dot(acc2.lo, (float4)1.0f) + dot(acc2.hi, (float4)1.0f);
    sums[3] = dot(acc3.lo, (float4)1.0f) + dot(acc3.hi, (float4)1.0f);
    for (int i = blocks * 8; i < inFeatures; i++) {
        sums[0] += x0[i] * w[i]; sums[1] += x1[i] * w[i];
        sums[2] += x2[i] * w[i]; sums[3] += x3[i] * w[i];
    }
    for (int r = 0; r < 4 && b0 + r < batch; r++) output[(size_t)(b0 + r) * outFeatures + o] = sums[r] + bias[o];
}
#endif

// The whole backward pass in one launch (three launches cost ~1.5× as much
// on PoCL here, batch 64, 400→10: each launch has a fixed cost, and the
// bias alone is ten work-items). Work-items by index:
// - [0, out·G), G = ⌈in/8⌉: gradWeight[o, i..i+7] = Σ_b gradOutput[b,o]·input[b, i..i+7],
//   one (o, group of 8 input features) each;
// - the next ⌈B/4⌉·G when gradInput is wanted: gradInput[b, i..i+7] =
//   Σ_o gradOutput[b,o]·weight[o, i..i+7] for four samples b, each weight
//   vector loaded once for the four (fewer, fuller work-items: PoCL's cost
//   per work-item is ~5–10 ns here); samples past the batch are skipped;
// - the next `out`: gradBias[o] = Σ_b gradOutput[b,o].
// Inputs with in % 8 ≠ 0 finish their last group element by element.
#ifdef KERNEL_linear_backward
__kernel void linear_backward(__global const float* input, __global const float* weight,
                              __global const float* gradOutput, __global float* gradWeight,
                              __global float* gradBias, __global float* gradInput,
                              int batch, int inFeatures, int outFeatures, int withGradInput) {
    const int groups = (inFeatures + 7) / 8;
    const int weightItems = outFeatures * groups;
    const int inputItems = withGradInput ? (batch + 3) / 4 * groups : 0;
    int index = get_global_id(0);
    if (index < weightItems) {
        const int o = index / groups, i0 = (index - o * groups) * 8;
        __global float* out = gradWeight + (size_t)o * inFeatures + i0;
        if (i0 + 8 <= inFeatures) {
            float8 acc = 0.0f;
            for (int b = 0; b < batch; b++)
                acc += gradOutput[b * outFeatures + o] * vload8(0, input + (size_t)b * inFeatures + i0);
            vstore8(acc, 0, out);
        } else {
            for (int i = i0; i < inFeatures; i++) {
                float sum = 0.0f;
                for (int b = 0; b < batch; b++) sum += gradOutput[b * outFeatures + o] * input[(size_t)b * inFeatures + i];
                out[i - i0] = sum;
            }
        }
        return;
    }
    index -= weightItems;
    if (index < inputItems) {
        const int b0 = index / groups * 4, i0 = (index % groups) * 8;
        const int rows = min(4, batch - b0);
        if (i0 + 8 <= inFeatures) {
            __global const float* g = gradOutput + (size_t)b0 * outFeatures;
            // Rows past the batch read row b0 again and are not stored.
            const int s1 = rows > 1 ? outFeatures : 0, s2 = rows > 2 ? 2 * outFeatures : 0;
            const int s3 = rows > 3 ? 3 * outFeatures : 0;
            float8 acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
            for (int o = 0; o < outFeatures; o++) {
                const float8 w = vload8(0, weight + (size_t)o * inFeatures + i0);
                acc0 += g[o] * w; acc1 += g[s1 + o] * w; acc2 += g[s2 + o] * w; acc3 += g[s3 + o] * w;
            }
            __global float* out = gradInput + (size_t)b0 * inFeatures + i0;
            vstore8(acc0, 0, out);
            if (rows > 1) vstore8(acc1, 0, out + inFeatures);
            if (rows > 2) vstore8(acc2, 0, out + 2 * inFeatures);
            if (rows > 3) vstore8(acc3, 0, out + 3 * inFeatures);
        } else {
            for (int b = b0; b < b0 + rows; b++) {
                __global const float* g = gradOutput + (size_t)b * outFeatures;
                for (int i = i0; i < inFeatures; i++) {
                    float sum = 0.0f;
                    for (int o = 0; o < outFeatures; o++) sum += g[o] * weight[(size_t)o * inFeatures + i];
                    gradInput[(size_t)b * inFeatures + i] = sum;
                }
            }
        }
        return;
    }
    index -= inputItems;
    if (index < outFeatures) {
        float sum = 0.0f;
        for (int b = 0; b < batch; b++) sum += gradOutput[b * outFeatures + index];
        gradBias[index] = sum;
    }
}
#endif
