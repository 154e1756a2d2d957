// Fully connected layer: input (B, in), weight (out, in), bias (out).
// Rows are read eight floats at a time (vload8) with a scalar tail, since
// PoCL vectorises explicit vector types and not scalar loops.

// output[b,o] = Σ_i input[b,i]·weight[o,i] + bias[o]. One work-item per
// (output feature, four samples): each weight vector loaded feeds four dot
// products (measured on PoCL here: ~2× one output per work-item). Samples
// past the batch read the last sample and are not stored.
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

// gradWeight[o, i..i+7] = Σ_b gradOutput[b,o]·input[b, i..i+7]. One work-item
// per (o, group of 8 input features).
__kernel void linear_grad_weight(__global const float* input, __global const float* gradOutput,
                                 __global float* gradWeight, int batch, int inFeatures, int outFeatures) {
    const int groups = (inFeatures + 7) / 8;
    const int index = get_global_id(0);
    if (index >= outFeatures * groups) return;
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
}

// gradBias[o] = Σ_b gradOutput[b,o]. One work-item per output feature.
__kernel void linear_grad_bias(__global const float* gradOutput, __global float* gradBias,
                               int batch, int outFeatures) {
    const int o = get_global_id(0);
    if (o >= outFeatures) return;
    float sum = 0.0f;
    for (int b = 0; b < batch; b++) sum += gradOutput[b * outFeatures + o];
    gradBias[o] = sum;
}

// gradInput[b, i..i+7] = Σ_o gradOutput[b,o]·weight[o, i..i+7]. One work-item
// per (b, group of 8 input features).
__kernel void linear_grad_input(__global const float* gradOutput, __global const float* weight,
                                __global float* gradInput, int batch, int inFeatures, int outFeatures) {
    const int groups = (inFeatures + 7) / 8;
    const int index = get_global_id(0);
    if (index >= batch * groups) return;
    const int b = index / groups, i0 = (index - b * groups) * 8;
    __global const float* g = gradOutput + (size_t)b * outFeatures;
    __global float* out = gradInput + (size_t)b * inFeatures + i0;
    if (i0 + 8 <= inFeatures) {
        float8 acc = 0.0f;
        for (int o = 0; o < outFeatures; o++) acc += g[o] * vload8(0, weight + (size_t)o * inFeatures + i0);
        vstore8(acc, 0, out);
    } else {
        for (int i = i0; i < inFeatures; i++) {
            float sum = 0.0f;
            for (int o = 0; o < outFeatures; o++) sum += g[o] * weight[(size_t)o * inFeatures + i];
            out[i - i0] = sum;
        }
    }
}
