// Optimiser updates, PyTorch's rules without weight decay.

// velocity = μ·velocity + grad; parameter −= lr·velocity. One element per
// work-item.
#ifdef KERNEL_sgd_momentum_step
__kernel void sgd_momentum_step(__global float* parameter, __global const float* gradient,
                                __global float* velocity, float learningRate, float momentum, int count) {
    const int index = get_global_id(0);
    if (index >= count) return;
    const float v = momentum * velocity[index] + gradient[index];
    velocity[index] = v;
    parameter[index] -= learningRate * v;
}
#endif

// m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; parameter −= lr·(m/c₁)/(√(v/c₂) + ε).
// One work-item per four consecutive elements, moved as float4 (a quarter
// of the work-items: PoCL's cost per work-item outweighs one element's
// arithmetic); the last work-item finishes a count that is not a multiple
// of 4 element by element, with the same formula.
#define ADAM_UPDATE(g, mOld, vOld, mNew, vNew, step) \
    mNew = beta1 * (mOld) + (1.0f - beta1) * (g); \
    vNew = beta2 * (vOld) + (1.0f - beta2) * (g) * (g); \
    step = learningRate * (mNew / correction1) / (sqrt(vNew / correction2) + epsilon);
#ifdef KERNEL_adam_step
__kernel void adam_step(__global float* parameter, __global const float* gradient,
                        __global float* m, __global float* v,
                        float learningRate, float beta1, float beta2, float epsilon,
                        float correction1, float correction2, int count) {
    const int first = get_global_id(0) * 4;
    if (first >= count) return;
    if (first + 4 <= count) {
        const float4 g = vload4(0, gradient + first);
        float4 mNew, vNew, step;
        ADAM_UPDATE(g, vload4(0, m + first), vload4(0, v + first), mNew, vNew, step)
        vstore4(mNew, 0, m + first);
        vstore4(vNew, 0, v + first);
        vstore4(vload4(0, parameter + first) - step, 0, parameter + first);
    } else {
        for (int index = first; index < count; index++) {
            const float g = gradient[index];
            float mNew, vNew, step;
            ADAM_UPDATE(g, m[index], v[index], mNew, vNew, step)
            m[index] = mNew;
            v[index] = vNew;
            parameter[index] -= step;
        }
    }
}
#endif
