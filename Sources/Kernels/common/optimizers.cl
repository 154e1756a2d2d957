// Optimiser updates, PyTorch's rules, on several tensors per launch (a
// model's tensors are updated together: one launch instead of one per
// tensor). Tensor t has count n_t (0 for an unused slot) and owns a
// contiguous range of work-items, in slot order; TENSOR_SLOT finds the
// work-item's tensor and its index within it among Adam's four slots.
#define TENSOR_SLOT(items0, items1, items2, items3, index, slot) \
    int slot = 0, index = get_global_id(0); \
    if (index >= (items0)) { index -= (items0); slot = 1; \
        if (index >= (items1)) { index -= (items1); slot = 2; \
            if (index >= (items2)) { index -= (items2); slot = 3; \
                if (index >= (items3)) return; } } }
#define PICK(slot, a0, a1, a2, a3) ((slot) == 0 ? (a0) : (slot) == 1 ? (a1) : (slot) == 2 ? (a2) : (a3))

// PyTorch's SGD (dampening 0): d = grad + λ·parameter; velocity = μ·velocity + d;
// parameter −= lr·(nesterov ? d + μ·velocity : velocity). One element per
// work-item, on up to SGD_SLOTS tensors a launch (a ResNet's 29 to 65
// tensors in 2 to 5 launches; the arguments fit OpenCL's smallest
// parameter space of 1,024 bytes): slot k holds p_k, g_k, u_k and n_k, its
// work-items the range after slot k − 1's, found by SGD_FIND in slot order.
#define SGD_SLOTS 16
#define SGD_SLOT_ARGUMENTS(k) __global float *p##k, __global const float *g##k, __global float *u##k,
#define SGD_FIND(k)                                                                                                    \
    if (!found) {                                                                                                      \
        if (index < n##k) {                                                                                            \
            found = 1;                                                                                                 \
            parameter = p##k;                                                                                          \
            gradient = g##k;                                                                                           \
            velocity = u##k;                                                                                           \
        } else {                                                                                                       \
            index -= n##k;                                                                                             \
        }                                                                                                              \
    }
#ifdef KERNEL_sgd_momentum_step
__kernel void sgd_momentum_step(
    SGD_SLOT_ARGUMENTS(0) SGD_SLOT_ARGUMENTS(1) SGD_SLOT_ARGUMENTS(2) SGD_SLOT_ARGUMENTS(3)
    SGD_SLOT_ARGUMENTS(4) SGD_SLOT_ARGUMENTS(5) SGD_SLOT_ARGUMENTS(6) SGD_SLOT_ARGUMENTS(7)
    SGD_SLOT_ARGUMENTS(8) SGD_SLOT_ARGUMENTS(9) SGD_SLOT_ARGUMENTS(10) SGD_SLOT_ARGUMENTS(11)
    SGD_SLOT_ARGUMENTS(12) SGD_SLOT_ARGUMENTS(13) SGD_SLOT_ARGUMENTS(14) SGD_SLOT_ARGUMENTS(15)
    int n0, int n1, int n2, int n3, int n4, int n5, int n6, int n7, int n8, int n9, int n10, int n11, int n12,
    int n13, int n14, int n15, float learningRate, float momentum, float weightDecay, int nesterov) {
    int index = get_global_id(0), found = 0;
    __global float* parameter = p0;
    __global const float* gradient = g0;
    __global float* velocity = u0;
    SGD_FIND(0) SGD_FIND(1) SGD_FIND(2) SGD_FIND(3) SGD_FIND(4) SGD_FIND(5) SGD_FIND(6) SGD_FIND(7)
    SGD_FIND(8) SGD_FIND(9) SGD_FIND(10) SGD_FIND(11) SGD_FIND(12) SGD_FIND(13) SGD_FIND(14) SGD_FIND(15)
    if (!found) return;
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
