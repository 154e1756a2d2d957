// The two elementwise pieces of training in SVD coordinates, W = U·diag(σ⊙m)·Vᵀ
// (m the 0/1 rank mask): the GEMMs around them are the common GEMM kernels.

// output[i, j] = x[i, j]·sigma[j]·mask[j] for x (rows × rank), row-major:
// U·diag(σ⊙m) for the composition and G·diag(σ⊙m) for ∂L/∂U. One
// work-item per element; output may be x (each element is read, then
// written, by the same work-item).
#ifdef KERNEL_svd_scale_columns
__kernel void svd_scale_columns(__global const float* x, __global const float* sigma, __global const float* mask,
                                __global float* output, int rows, int rank) {
    const int index = get_global_id(0);
    if (index >= rows * rank) return;
    const int j = index % rank;
    output[index] = x[index] * (sigma[j] * mask[j]);
}
#endif

// gradSigma[j] = mask[j]·(Σ_i u[i, j]·g[i, j] + l1·sign(sigma[j])) for u and
// g (rows × rank): ∂L/∂σ_j = Σ_i U_ij (∂L/∂W·V)_ij plus the L1 penalty's
// subgradient (sign(0) = 0). One work-item per column, the rows summed in
// order (a fixed order: the same sum on every run).
#ifdef KERNEL_svd_sigma_gradient
__kernel void svd_sigma_gradient(__global const float* u, __global const float* g, __global const float* sigma,
                                 __global const float* mask, __global float* gradSigma, int rows, int rank,
                                 float l1) {
    const int j = get_global_id(0);
    if (j >= rank) return;
    float sum = 0.0f;
    for (int i = 0; i < rows; i++) sum += u[i * rank + j] * g[i * rank + j];
    const float s = sigma[j];
    const float sign = s > 0.0f ? 1.0f : (s < 0.0f ? -1.0f : 0.0f);
    gradSigma[j] = mask[j] * (sum + l1 * sign);
}
#endif
