// Optimiser updates, PyTorch's rules, on up to four
// tensors per launch (a model's tensors are updated together: one launch
// instead of one per tensor). Tensor t has count n_t (0 for an unused slot)
// and owns a contiguous range of work-items, in slot order; TENSOR_SLOT
// finds the work-item's tensor and its index within it.
#define TENSOR_SLOT(items0, items1, items2, items3, index, slot) \
    int slot = 0, index = get_global_id(0); \
    if (index >= (items0)) { index -= (items0); slot = 1; \
        if (index >= (items1)) { index -= (items1); slot = 2; \
            if (index >= (items2)) { index -= (items2); slot = 3; \
                if (index >= (items3)) return; } } }
#define PICK(slot, a0, a1, a2, a3) ((slot) == 0 ? (a0) : (slot) == 1 ? (a1) : (slot) == 2 ? (a2) : (a3))

// PyTorch's SGD (dampening 0): d = grad + λ·parameter; velocity = μ·velocity + d;
// parameter −= lr·(nesterov ? d + μ·velocity : velocity). One element per
// work-item.
#ifdef KERNEL_sgd_momentum_step
__kernel void sgd_momentum_step(
        __global float* p0, __global const float* g0, __global float* u0,
        __global float* p1, __global const float* g1, __global float* u1,
        __global float* p2, __global const float* g2, __global float* u2,
        __global float* p3, __global const float* g3, __global float* u3,
        int n0, int n1, int n2, int n3, float learningRate, float momentum, float weightDecay, int nesterov) {
    TENSOR_SLOT(n0, n1, n2, n3, index, slot)
    __global float* parameter = PICK(slot, p0, p1, p2, p3);
    __global const float* gradient = PICK(slot, g0, g1, g2, g3);
    __global float* velocity = PICK(slot, u0, u1, u2, u3);
    const float d = gradient[index] + weightDecay * parameter[index];
    const float v = momentum * velocity[index] + d;
    velocity[index] = v;
    parameter[index] -= learningRate * (nesterov ? d + momentum * v : v);
}
#endif

// m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; parameter −= lr·(m/c₁)/(√(v/c₂) + ε):
// one element of Adam, for adam_step (cpu) and gpu_adam_step (gpu).
#define ADAM_UPDATE(g, mOld, vOld, mNew, vNew, step) \
    mNew = beta1 * (mOld) + (1.0f - beta1) * (g); \
    vNew = beta2 * (vOld) + (1.0f - beta2) * (g) * (g); \
    step = learningRate * (mNew / correction1) / (sqrt(vNew / correction2) + epsilon);

// ADAM_UPDATE on element `index` of the tensor in `parameter`, `gradient`,
// `m` and `v`, in place.
#define ADAM_ELEMENT(index) { \
    const float g = gradient[index]; \
    float mNew, vNew, step; \
    ADAM_UPDATE(g, m[index], v[index], mNew, vNew, step) \
    m[index] = mNew; \
    v[index] = vNew; \
    parameter[index] -= step; \
}
