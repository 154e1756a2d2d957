// A linear layer's backward pass and the data gradient of the pooled
// convolution before it, in one launch (the gpu family's form of
// linear_backward_pooled_data3x3_W): the linear layer's input is the pooled
// convolution's ReLU output, flattened (O·pH·pW features an image).
// Work-groups by index:
// - [0, B·groupsPerImage): gpu_conv2d_pooled_data's groups, whose staging
//   computes each pooled gradient as gpu_linear_backward's input gradient
//   (gpu_linear_input_gradient) instead of reading it; the image's first
//   group also stores it to `gradient` (the convolution's weight gradient
//   reads it next); then GPU_POOLED_DATA_GATHER, as there;
// - the rest, one work-item per element: gradFcWeight (O_fc·in) then
//   gradFcBias (O_fc), as gpu_linear_backward's.
// The same floats as gpu_linear_backward then gpu_conv2d_pooled_data.
#ifdef KERNEL_gpu_linear_backward_pooled_data
__kernel void gpu_linear_backward_pooled_data(__global const float* fcInput, __global const float* fcWeight,
        __global const float* gradOutput, __global float* gradFcWeight, __global float* gradFcBias, int outFeatures,
        __global float* gradient, __global const int* argmax, __global const float* reluOutput,
        __global const float* weight, __global float* gradInput, __local float* tile, __local int* winners,
        int batch, int inChannels, int height, int width, int outChannels, int kernelHeight, int kernelWidth,
        int relu, int groupsPerImage) {
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1;
    const int poolHeight = outHeight / 2, poolWidth = outWidth / 2, windows = poolHeight * poolWidth;
    const int kernelArea = kernelHeight * kernelWidth, weightCount = outChannels * inChannels * kernelArea;
    const int inFeatures = outChannels * windows;
    const int lid = get_local_id(0), size = get_local_size(0);
    if (get_group_id(0) >= batch * groupsPerImage) {
        // A whole group takes this branch: no barrier is skipped by part of one.
        const int index = (get_group_id(0) - batch * groupsPerImage) * size + lid;
        const int weights = outFeatures * inFeatures;
        if (index < weights)
            gpu_linear_weight_gradient(index, fcInput, gradOutput, gradFcWeight, batch, inFeatures, outFeatures);
        else if (index - weights < outFeatures)
            gpu_linear_bias_gradient(index - weights, gradOutput, gradFcBias, batch, outFeatures);
        return;
    }
    const int b = get_group_id(0) / groupsPerImage, chunk = get_group_id(0) - b * groupsPerImage;
    const int t = chunk * size + lid;
    __local float* w = tile;
    __local float* g = tile + weightCount;
    for (int k = lid; k < weightCount; k += size) w[k] = weight[k];
    const size_t planes = (size_t)b * outChannels * windows;
    for (int k = lid; k < inFeatures; k += size) {
        const float linear = gpu_linear_input_gradient(b, k, fcWeight, gradOutput, inFeatures, outFeatures);
        if (chunk == 0) gradient[planes + k] = linear;
        const int q = k % windows, qy = q / poolWidth, qx = q - qy * poolWidth;
        int dy, dx;
        const float value = gpu_winner_passes(argmax, reluOutput, relu, planes + k, 2 * qy * outWidth + 2 * qx,
                                              outWidth, &dy, &dx) ? linear : 0.0f;
        g[k] = value;
        winners[k] = value != 0.0f ? dy * outWidth + dx : -1;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    GPU_POOLED_DATA_GATHER
}
#endif
