// Batch normalisation (PyTorch's BatchNorm2d) over (B, C, P), P = H·W:
// the statistics both families launch. saved[0, C) holds each channel's μ,
// saved[C, 2C) σ = 1/√(v + ε), as the forward used them. Training cuts each
// channel's N = B·P values (image by image, pixel by pixel) into chunks of
// `chunkValues` consecutive values, the last maybe shorter, and a family's
// kernel gives each chunk's Σx and Σ(x − m_k)² about its own mean m_k
// (cpu/batchnorm_chunks.cl: a work-item per chunk of whole images;
// gpu/batchnorm_statistics.cl: a work-group tree per chunk); then
// batchnorm_combine_moments joins them. The elementwise passes are per
// family: cpu/batchnorm_planes.cl, gpu/batchnorm_elements.cl.

// Eval statistics, one work-item per channel: μ and σ from the running ones.
#ifdef KERNEL_batchnorm_eval_statistics
__kernel void batchnorm_eval_statistics(__global const float* runningMean, __global const float* runningVar,
                                        __global float* saved, int channels, float epsilon) {
    const int c = get_global_id(0);
    if (c >= channels) return;
    saved[c] = runningMean[c];
    saved[channels + c] = 1.0f / sqrt(runningVar[c] + epsilon);
}
#endif

// A channel's training statistics from its chunks' (Σx, Σ(x − m_k)²) in
// partials[c·chunks + k] and partials[(C + c)·chunks + k], one work-item
// per channel: μ = Σ_k Σx_k / N, then the sum of squared deviations from μ,
// Σ_k [Σ(x − m_k)² + n_k·(m_k − μ)²] (Chan's update: exact for the chunks'
// true means; m_k = Σx_k/n_k as the chunk formed it), both in chunk order
// with compensation. saved[c] = μ, saved[C + c] = σ = 1/√(v + ε) with the
// biased v = Σ/N; the running mean and variance move by `momentum` towards
// μ and the unbiased Σ/(N − 1).
//
// BN_COMBINE_CHUNKS is that arithmetic on rows `sums` and `squares` of
// `chunks` values in either address space (gpu/batchnorm_elements.cl's
// fused pass reads them from local memory): one definition, so the fused
// pass gives this kernel's bits. It sets `mean` and `deviations` (Σ of
// squared deviations from μ).
#define BN_COMBINE_CHUNKS(sums, squares, chunks, chunkValues, count, mean, deviations) \
    { \
        float total_ = 0.0f, carry_ = 0.0f; \
        for (int k_ = 0; k_ < (chunks); k_++) KAHAN_ADD(float, total_, carry_, (sums)[k_]) \
        (mean) = total_ / (float)(count); \
        (deviations) = 0.0f; \
        carry_ = 0.0f; \
        for (int k_ = 0; k_ < (chunks); k_++) { \
            const float n_ = (float)min((chunkValues), (count) - k_ * (chunkValues)); \
            const float offset_ = (sums)[k_] / n_ - (mean); \
            KAHAN_ADD(float, (deviations), carry_, (squares)[k_] + n_ * offset_ * offset_) \
        } \
    }
#ifdef KERNEL_batchnorm_combine_moments
__kernel void batchnorm_combine_moments(__global const float* partials, __global float* saved,
                                        __global float* runningMean, __global float* runningVar, int channels,
                                        int chunks, int chunkValues, int count, float epsilon, float momentum) {
    const int c = get_global_id(0);
    if (c >= channels) return;
    float mean, deviations;
    BN_COMBINE_CHUNKS(partials + (size_t)c * chunks, partials + ((size_t)channels + c) * chunks, chunks, chunkValues,
                      count, mean, deviations)
    saved[c] = mean;
    saved[channels + c] = 1.0f / sqrt(deviations / (float)count + epsilon);
    runningMean[c] = (1.0f - momentum) * runningMean[c] + momentum * mean;
    runningVar[c] = (1.0f - momentum) * runningVar[c] + momentum * (deviations / (float)(count - 1));
}
#endif
