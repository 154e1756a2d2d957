// Optimiser updates, PyTorch's rules without weight decay, one element per
// work-item.

// velocity = μ·velocity + grad; parameter −= lr·velocity.
__kernel void sgd_momentum_step(__global float* parameter, __global const float* gradient,
                                __global float* velocity, float learningRate, float momentum, int count) {
    const int index = get_global_id(0);
    if (index >= count) return;
    const float v = momentum * velocity[index] + gradient[index];
    velocity[index] = v;
    parameter[index] -= learningRate * v;
}

// m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; parameter −= lr·(m/c₁)/(√(v/c₂) + ε).
__kernel void adam_step(__global float* parameter, __global const float* gradient,
                        __global float* m, __global float* v,
                        float learningRate, float beta1, float beta2, float epsilon,
                        float correction1, float correction2, int count) {
    const int index = get_global_id(0);
    if (index >= count) return;
    const float g = gradient[index];
    const float mNew = beta1 * m[index] + (1.0f - beta1) * g;
    const float vNew = beta2 * v[index] + (1.0f - beta2) * g * g;
    m[index] = mNew;
    v[index] = vNew;
    parameter[index] -= learningRate * (mNew / correction1) / (sqrt(vNew / correction2) + epsilon);
}
