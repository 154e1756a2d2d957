// The cpu family's Adam (common/optimizers.cl has the rule, ADAM_UPDATE, and
// the four-tensor slots, TENSOR_SLOT and PICK).
// m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; parameter −= lr·(m/c₁)/(√(v/c₂) + ε).
// One work-item per four consecutive elements, moved as float4 (a quarter
// of the work-items: PoCL's cost per work-item outweighs one element's
// arithmetic); a tensor's last work-item finishes a count that is not a
// multiple of 4 element by element, with the same formula.
#ifdef KERNEL_adam_step
__kernel void adam_step(
        __global float* p0, __global const float* g0, __global float* m0, __global float* v0,
        __global float* p1, __global const float* g1, __global float* m1, __global float* v1,
        __global float* p2, __global const float* g2, __global float* m2, __global float* v2,
        __global float* p3, __global const float* g3, __global float* m3, __global float* v3,
        int n0, int n1, int n2, int n3, float learningRate, float beta1, float beta2, float epsilon,
        float correction1, float correction2) {
    TENSOR_SLOT((n0 + 3) / 4, (n1 + 3) / 4, (n2 + 3) / 4, (n3 + 3) / 4, item, slot)
    __global float* parameter = PICK(slot, p0, p1, p2, p3);
    __global const float* gradient = PICK(slot, g0, g1, g2, g3);
    __global float* m = PICK(slot, m0, m1, m2, m3);
    __global float* v = PICK(slot, v0, v1, v2, v3);
    const int count = PICK(slot, n0, n1, n2, n3);
    const int first = item * 4;
    if (first + 4 <= count) {
        const float4 g = vload4(0, gradient + first);
        float4 mNew, vNew, step;
        ADAM_UPDATE(g, vload4(0, m + first), vload4(0, v + first), mNew, vNew, step)
        vstore4(mNew, 0, m + first);
        vstore4(vNew, 0, v + first);
        vstore4(vload4(0, parameter + first) - step, 0, parameter + first);
    } else {
        for (int index = first; index < count; index++) ADAM_ELEMENT(index)
    }
}
#endif
