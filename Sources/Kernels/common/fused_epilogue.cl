// The end of an eval-mode convolution layer (InferenceDevice.fusedConvolutionForward)
// in one pass over the convolution's output t (B, O₁, P), P = oH·oW:
// u = pointwise·t over the channels (a 1×1 stride-1 convolution O₁ → O, a
// plain product over NCHW: no columns) or u = t (O = O₁), then
// output[b,o,p] = r(u·scale[o] + shift[o] + residual[b,o,p]), r the ReLU
// (common.cl's RELU) when `relu`, no residual term unless `hasResidual`.
// One work-item per (image, output channel, 16 consecutive pixels),
// output channels fastest, so the work-items of one image's pixels share
// t's O₁ rows in cache; nothing larger than one float16 is private (no
// spills on a GPU). Unaligned vload16/vstore16 (a plane of 7×7 is not a
// multiple of 16); the last chunk of a plane goes pixel by pixel and reads
// nothing past it. A flag of 0 leaves its buffer unread.

#ifdef KERNEL_fused_epilogue
__kernel void fused_epilogue(__global const float* t, int inChannels, __global const float* pointwise,
                             int hasPointwise, int outChannels, int plane, int batch,
                             __global const float* scale, __global const float* shift,
                             __global const float* residual, int hasResidual, int relu, __global float* output) {
    const int chunks = (plane + 15) / 16;
    const int index = get_global_id(0);
    if (index >= batch * chunks * outChannels) return;
    const int o = index % outChannels, rest = index / outChannels;
    const int chunk = rest % chunks, b = rest / chunks;
    const int p0 = chunk * 16;
    const float sc = scale[o], sh = shift[o];
    const size_t out = ((size_t)b * outChannels + o) * plane + p0;
    if (p0 + 16 <= plane) {
        float16 u;
        if (hasPointwise) {
            u = (float16)(0.0f);
            for (int c = 0; c < inChannels; c++)
                u += pointwise[o * inChannels + c] * vload16(0, t + ((size_t)b * inChannels + c) * plane + p0);
        } else {
            u = vload16(0, t + out);
        }
        float16 v = u * sc + sh;
        if (hasResidual) v += vload16(0, residual + out);
        if (relu) v = RELU(float16, v);
        vstore16(v, 0, output + out);
    } else {
        for (int p = 0; p < plane - p0; p++) {
            float u = 0.0f;
            if (hasPointwise) {
                for (int c = 0; c < inChannels; c++)
                    u += pointwise[o * inChannels + c] * t[((size_t)b * inChannels + c) * plane + p0 + p];
            } else {
                u = t[out + p];
            }
            float v = u * sc + sh;
            if (hasResidual) v += residual[out + p];
            if (relu) v = RELU(float, v);
            output[out + p] = v;
        }
    }
}
#endif
