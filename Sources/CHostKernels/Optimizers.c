#include "CHostKernels.h"

#include <math.h>

// The optimiser updates, each operation rounded as the formula is written (no
// fused multiply-add), as the OpenCL kernels and PyTorch compute them. Adam
// runs 8 lanes at a time where AVX is there: its two divisions and square
// root per parameter are long-latency instructions, and scalar code spent
// 27 µs on TinyConvNet's 5,234 parameters (8-lane: about 4 µs).
#pragma STDC FP_CONTRACT OFF

static void hk_adam_scalar(int from, int count, float *parameter, const float *gradient, float *m, float *v,
                           float learningRate, float beta1, float beta2, float epsilon, float correction1,
                           float correction2) {
    for (int i = from; i < count; i++) {
        float g = gradient[i];
        float mi = beta1 * m[i] + (1 - beta1) * g;
        float vi = beta2 * v[i] + (1 - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        parameter[i] -= learningRate * (mi / correction1) / (sqrtf(vi / correction2) + epsilon);
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static int hk_adam_avx(int count, float *parameter, const float *gradient, float *m, float *v, float learningRate,
                       float beta1, float beta2, float epsilon, float correction1, float correction2) {
    const __m256 b1 = _mm256_set1_ps(beta1), b2 = _mm256_set1_ps(beta2);
    const __m256 a1 = _mm256_set1_ps(1 - beta1), a2 = _mm256_set1_ps(1 - beta2);
    const __m256 lr = _mm256_set1_ps(learningRate), eps = _mm256_set1_ps(epsilon);
    const __m256 c1 = _mm256_set1_ps(correction1), c2 = _mm256_set1_ps(correction2);
    int i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 g = _mm256_loadu_ps(gradient + i);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(a1, g));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(a2, g), g));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 step = _mm256_div_ps(_mm256_mul_ps(lr, _mm256_div_ps(mi, c1)),
                                    _mm256_add_ps(_mm256_sqrt_ps(_mm256_div_ps(vi, c2)), eps));
        _mm256_storeu_ps(parameter + i, _mm256_sub_ps(_mm256_loadu_ps(parameter + i), step));
    }
    return i;
}
#else
static int hk_adam_avx(int count, float *parameter, const float *gradient, float *m, float *v, float learningRate,
                       float beta1, float beta2, float epsilon, float correction1, float correction2) { return 0; }
#endif

void hk_adam_step(int count, float *parameter, const float *gradient, float *m, float *v, float learningRate,
                  float beta1, float beta2, float epsilon, float correction1, float correction2) {
    int done = hk_has_avx2_fma() ? hk_adam_avx(count, parameter, gradient, m, v, learningRate, beta1, beta2,
                                               epsilon, correction1, correction2) : 0;
    hk_adam_scalar(done, count, parameter, gradient, m, v, learningRate, beta1, beta2, epsilon, correction1,
                   correction2);
}

void hk_sgd_momentum_step(int count, float *restrict parameter, const float *restrict gradient,
                          float *restrict velocity, float learningRate, float momentum, float weightDecay,
                          int nesterov) {
    for (int i = 0; i < count; i++) {
        float d = gradient[i] + weightDecay * parameter[i];
        float vi = momentum * velocity[i] + d;
        velocity[i] = vi;
        parameter[i] -= learningRate * (nesterov ? d + momentum * vi : vi);
    }
}
