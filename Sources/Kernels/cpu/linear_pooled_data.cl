// A linear layer's backward pass and the data gradient of the pooled 3×3
// convolution before it, in one launch (TinyConvNet's fc and conv2): the
// linear layer's input is the pooled convolution's ReLU output, flattened
// (C·pH·pW features an image). Work-items by index:
// - [0, B): image b's gradient of the linear input, gradient[b, ·] =
//   Σ_o gradOutput[b,o]·fcWeight[o, ·] (linear_input_gradient_row: the
//   floats of linear_backward), stored, then the pooled data gradient of
//   image b from it exactly as conv2d_pooled_data3x3_W (same sums, same
//   order; `work` and the lane macros as there);
// - the next out·⌈in/8⌉: gradFcWeight, as linear_backward's weight items;
// - the next `out`: gradFcBias, as linear_backward's bias items.
// The image items come first and the host launches them in the work-group
// size of the data kernel alone, so that they spread over the threads as
// that kernel's did; the linear layer's items are light and fill in.
#define DEFINE_LINEAR_BACKWARD_POOLED_DATA3X3(W) \
__kernel void linear_backward_pooled_data3x3_##W(__global const float* fcInput, __global const float* fcWeight, \
        __global const float* gradOutput, __global float* gradFcWeight, __global float* gradFcBias, int outFeatures, \
        __global float* gradient, __global const int* argmax, __global const float* reluOutput, \
        __global const float* weight, __global float* work, __global float* gradInput, int batch, int inChannels, \
        int height, int width, int outChannels, int relu) { \
    const int inFeatures = outChannels * ((height - 2) / 2) * ((width - 2) / 2); \
    const int item = get_global_id(0); \
    if (item >= batch) { \
        const int index = item - batch, weightItems = outFeatures * ((inFeatures + 7) / 8); \
        if (index < weightItems) \
            linear_weight_gradient_item(index, fcInput, gradOutput, gradFcWeight, batch, inFeatures, outFeatures); \
        else if (index - weightItems < outFeatures) \
            linear_bias_gradient_item(index - weightItems, gradOutput, gradFcBias, batch, outFeatures); \
        return; \
    } \
    linear_input_gradient_row(item, fcWeight, gradOutput, gradient, inFeatures, outFeatures); \
    CONV2D_POOLED_DATA_PROLOGUE(W, 3, 3) \
    FOR_EACH_WINNER(W, \
        __global const float* w = weight + (size_t)o * inChannels * 9; \
        DATA3X3_ROW(W, 0, 0) DATA3X3_ROW(W, 0, 1) DATA3X3_ROW(W, 0, 2) \
        DATA3X3_ROW(W, 1, 0) DATA3X3_ROW(W, 1, 1) DATA3X3_ROW(W, 1, 2) \
        DATA3X3_ROW(W, 2, 0) DATA3X3_ROW(W, 2, 1) DATA3X3_ROW(W, 2, 2), \
        DATA3X3_ADD(W, 0, 0) DATA3X3_ADD(W, 0, 1) DATA3X3_ADD(W, 0, 2) \
        DATA3X3_ADD(W, 1, 0) DATA3X3_ADD(W, 1, 1) DATA3X3_ADD(W, 1, 2) \
        DATA3X3_ADD(W, 2, 0) DATA3X3_ADD(W, 2, 1) DATA3X3_ADD(W, 2, 2)) \
    CONV2D_POOLED_DATA_EPILOGUE(W) \
}

#ifdef KERNEL_linear_backward_pooled_data3x3_1
DEFINE_LINEAR_BACKWARD_POOLED_DATA3X3(1)
#endif
#ifdef KERNEL_linear_backward_pooled_data3x3_4
DEFINE_LINEAR_BACKWARD_POOLED_DATA3X3(4)
#endif
#ifdef KERNEL_linear_backward_pooled_data3x3_8
DEFINE_LINEAR_BACKWARD_POOLED_DATA3X3(8)
#endif
#ifdef KERNEL_linear_backward_pooled_data3x3_16
DEFINE_LINEAR_BACKWARD_POOLED_DATA3X3(16)
#endif
