// The last step of two pooled convolutions' weight gradients in one launch
// (TinyConvNet's conv1 and conv2, when conv2's partial sums come in several
// chunks of images: on more than 2 compute units): work-items [0, A) are
// conv2d_weight_reduce's for the first (the per-image sums of
// conv2d_pooled_weight_outlanes3x3, A = outA·patchA), the next B
// conv2d_pooled_weight_reduce's for the second (its chunks, B = its weights).
// The same floats as the two kernels (their shared helpers), one launch.
#ifdef KERNEL_conv2d_weight_reduce_pair
__kernel void conv2d_weight_reduce_pair(__global const float* partialsA, __global float* gradWeightA, int chunksA,
                                        int patchSizeA, int outChannelsA, int outPadA,
                                        __global const float* partialsB, __global float* gradWeightB, int chunksB,
                                        int outChannelsB, int inChannelsB, int kernelAreaB, int lanesB) {
    const int index = get_global_id(0), itemsA = outChannelsA * patchSizeA;
    if (index < itemsA) {
        conv2d_weight_reduce_item(index, partialsA, gradWeightA, chunksA, patchSizeA, outPadA);
    } else if (index - itemsA < outChannelsB * inChannelsB * kernelAreaB) {
        conv2d_pooled_weight_reduce_item(index - itemsA, partialsB, gradWeightB, chunksB, outChannelsB, inChannelsB,
                                         kernelAreaB, lanesB);
    }
}
#endif
