// The weights of a convolution (O, C, kH, kW) as (O·kH·kW, cPad): row
// (o·kH + i)·kW + j holds weight[o, c, i, j] for c < C and zeros up to cPad,
// so that one tap's input channels are one vector for the data gradient's
// kernels, which sum over output channels and taps with vectors along the
// input channels. One work-item per element of the result.
#ifdef KERNEL_conv_weight_tap_major
__kernel void conv_weight_tap_major(__global const float* weight, __global float* weightT, int outChannels,
                                    int inChannels, int kernelArea, int inPad) {
    const int index = get_global_id(0);
    if (index >= outChannels * kernelArea * inPad) return;
    const int tap = index / inPad, c = index - tap * inPad;
    const int o = tap / kernelArea, ij = tap - o * kernelArea;
    weightT[index] = c < inChannels ? weight[((size_t)o * inChannels + c) * kernelArea + ij] : 0.0f;
}
#endif
