// Batch normalisation's training statistics for the gpu family: each
// chunk's moments for common/batchnorm.cl's batchnorm_combine_moments (the
// layout of `partials` and `saved` is there).

// Chunk k of channel c (its n_k ≤ 4L values, consecutive image by image,
// pixel by pixel): Σx into partials[c·chunks + k] and Σ(x − m_k)² about
// its own mean m_k = Σx/n_k into partials[(C + c)·chunks + k]. A work-group
// of L (a power of two ≤ 256) per (channel, chunk): item i reads the
// chunk's values i, L + i, 2L + i, 3L + i (neighbouring items read
// neighbouring addresses within an image plane), keeps them in registers
// for the second sum, and the group adds the items' sums in a fixed tree
// (group_tree_sum, common.cl): the input is read once, and a seed gives the
// same statistics on every run. Trees of ≤ 256 plus four-term sums keep
// each chunk's float error at ~10 roundings; batchnorm_combine_moments
// joins the chunks compensated.
#ifdef KERNEL_gpu_batchnorm_chunk_moments
__kernel void gpu_batchnorm_chunk_moments(__global const float* input, __global float* partials, int batch,
                                          int channels, int plane, int chunks) {
    __local float tree[256];
    const int item = get_local_id(0), size = get_local_size(0), group = get_group_id(0);
    if (group >= channels * chunks) return;
    const int c = group / chunks, chunk = group - c * chunks;
    const int start = chunk * GPU_CHUNK_VALUES * size;
    const int n = min(GPU_CHUNK_VALUES * size, batch * plane - start);
    float x[GPU_CHUNK_VALUES];
    float sum = 0.0f;
    for (int v = 0; v < GPU_CHUNK_VALUES; v++) {
        const int at = v * size + item;
        x[v] = 0.0f;
        if (at < n) x[v] = input[channel_value_index(start, at, channels, plane, c)];
        sum += x[v];
    }
    const float total = group_tree_sum(tree, sum, item, size);
    const float mean = total / (float)n;
    float squares = 0.0f;
    for (int v = 0; v < GPU_CHUNK_VALUES; v++) {
        const float d = x[v] - mean;
        if (v * size + item < n) squares += d * d;
    }
    const float deviations = group_tree_sum(tree, squares, item, size);
    if (item == 0) {
        partials[group] = total;
        partials[channels * chunks + group] = deviations;
    }
}
#endif
