// The gpu family's per-channel partial sums, in the modes and the layout of
// common/channel_sums.cl (BatchNorm's Σdy and Σdy·x̂, a conv's bias
// gradient, a synchronised BatchNorm's Σx and Σ(x − μ)²), in a GPU's
// shape. The cpu family's channel_partials gives each chunk to one
// work-item that walks it in order, so a warp's items would read addresses
// a chunk apart; here a work-group of L (a power of two ≤ 256) sums a
// chunk of GPU_CHUNK_VALUES·L values, item i reading the chunk's values i,
// L + i, 2L + i, 3L + i (common.cl: neighbouring items read neighbouring
// addresses), and the group adds the items' sums in a fixed tree, so that
// a seed gives the same sums on every run. Each item's sum and the tree
// carry every addition's rounding error exactly (TWO_SUM_ADD,
// group_tree_sum_compensated in common.cl): β's gradient Σdy nearly
// cancels. channel_sum_chunks and channel_sum_chunk_pairs then add the
// chunks in order, compensated.
//
// Chunk k of channel c holds n_k ≤ 4L values; `b` is read in modes 2 and
// 3, `mask` in mode 3 alone.
#ifdef KERNEL_gpu_channel_partials
__kernel void gpu_channel_partials(__global const float* a, __global const float* b, __global const float* saved,
                                   __global const float* mask, __global float* partials, int batch, int channels,
                                   int plane, int chunks, int mode) {
    __local float tree[256], carries[256];
    const int item = get_local_id(0), size = get_local_size(0), group = get_group_id(0);
    if (group >= channels * chunks) return;
    const int c = group / chunks, chunk = group - c * chunks;
    const int start = chunk * GPU_CHUNK_VALUES * size;
    const int n = min(GPU_CHUNK_VALUES * size, batch * plane - start);
    const float mean = mode > 0 ? saved[c] : 0.0f;
    const float invStd = mode >= 2 ? saved[channels + c] : 0.0f;
    float sum = 0.0f, carry = 0.0f, sum2 = 0.0f, carry2 = 0.0f;
    for (int v = 0; v < GPU_CHUNK_VALUES; v++) {
        const int at = v * size + item;
        if (at >= n) break;
        const size_t i = channel_value_index(start, at, channels, plane, c);
        const float value = mode == 3 && !(mask[i] > 0.0f) ? 0.0f : a[i];
        if (mode == 0) {
            TWO_SUM_ADD(float, sum, carry, value)
        } else if (mode == 1) {
            const float d = value - mean;
            TWO_SUM_ADD(float, sum, carry, d * d)
        } else {
            TWO_SUM_ADD(float, sum, carry, value)
            TWO_SUM_ADD(float, sum2, carry2, value * ((b[i] - mean) * invStd))
        }
    }
    const float total = group_tree_sum_compensated(tree, carries, sum, carry, item, size);
    // `mode` is the same for the whole group: every item reaches the second tree or none does.
    const float total2 = mode >= 2 ? group_tree_sum_compensated(tree, carries, sum2, carry2, item, size) : 0.0f;
    if (item == 0) {
        partials[group] = total;
        if (mode >= 2) partials[channels * chunks + group] = total2;
    }
}
#endif
