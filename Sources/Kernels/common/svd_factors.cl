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

// One Newton–Schulz factor for the polar retraction of X (rows × r) from
// its Gram matrix A = XᵀX (r × r):
//   factor[i, j] = c·(3/2·δ_ij − ½·c²·A_ij),
// so that X·factor is one Newton–Schulz step X₀ ← X₀(3/2·I − ½·X₀ᵀX₀) on
// X₀ = c·X. With `scaled`, c = 1/√(max_k Σ_j |A_kj|) ≤ 1/‖X‖₂ (‖XᵀX‖₂ is
// at most its largest absolute row sum), which puts every singular value
// of X₀ in (0, 1], inside the iteration's region of convergence (0, √3);
// without, c = 1 (the later iterations, which s ↦ s(3 − s²)/2 keeps in
// (0, 1]). One work-item per row of the factor; each finds c itself (r²
// reads, r ≤ a few hundred) in the same order, so every row uses the same c.
#ifdef KERNEL_svd_newton_schulz_factor
__kernel void svd_newton_schulz_factor(__global const float* gram, __global float* factor, int rank, int scaled) {
    const int i = get_global_id(0);
    if (i >= rank) return;
    float c2 = 1.0f;
    if (scaled) {
        float bound = 0.0f;
        for (int k = 0; k < rank; k++) {
            float sum = 0.0f;
            for (int j = 0; j < rank; j++) sum += fabs(gram[k * rank + j]);
            bound = fmax(bound, sum);
        }
        if (bound > 0.0f) c2 = 1.0f / bound;
    }
    const float c = sqrt(c2);
    for (int j = 0; j < rank; j++)
        factor[i * rank + j] = c * ((i == j ? 1.5f : 0.0f) - 0.5f * c2 * gram[i * rank + j]);
}
#endif
