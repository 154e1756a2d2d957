#include "CHostKernels.h"

// BatchNorm's per-channel float64 sums in 8 lanes. A single running sum is
// a chain of dependent float64 additions (4 cycles each); 8 independent
// lanes let the compiler use vector additions and keep several in flight.
// Lane l takes the positions p ≡ l (mod 8) of each plane (the plane's tail
// included), and the lanes are added pairwise at the end, so the order
// depends only on the shape. Each function is compiled three times, for the
// baseline, for AVX2 and for AVX-512 (no multiply-add is contracted,
// FP_CONTRACT OFF, so all three give the same bits: the same float64
// operations in the same order, 2, 4 or 8 lanes to a register), and calls
// the widest one the CPU has. The float64 loops are bound by their
// arithmetic, not by memory (one channel of a 128-image 28×28 batch: its
// two forward sums take ~2.5× the time of a float32 pass over the values
// with AVX2), so the wider registers pay.
#pragma STDC FP_CONTRACT OFF

static double hk_lanes_total(const double *lanes) {
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

#define HK_INLINE static inline __attribute__((always_inline))

HK_INLINE double hk_channel_sum_body(const float *x, int images, long imageStride, int plane, double mean, int squares) {
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int b = 0; b < images; b++) {
        const float *row = x + b * imageStride;
        int p = 0;
        if (squares) {
            for (; p + 8 <= plane; p += 8) {
                for (int l = 0; l < 8; l++) {
                    double d = (double)row[p + l] - mean;
                    lanes[l] += d * d;
                }
            }
            for (int l = 0; p + l < plane; l++) {
                double d = (double)row[p + l] - mean;
                lanes[l] += d * d;
            }
        } else {
            for (; p + 8 <= plane; p += 8) {
                for (int l = 0; l < 8; l++) lanes[l] += (double)row[p + l];
            }
            for (int l = 0; p + l < plane; l++) lanes[l] += (double)row[p + l];
        }
    }
    return hk_lanes_total(lanes);
}

// The gradient that reaches BatchNorm's output: dy, or with a ReLU after it
// (masked, y its output), dy where y > 0 and 0 elsewhere, as reluGradient
// writes it. Both values are loaded before the choice, so that it compiles
// to a vector select rather than a branch (which mispredicts on half the
// values); `masked` is a constant in every caller.
HK_INLINE float hk_passed(const float *y, const float *dy, long i, int masked) {
    float g = dy[i];
    if (!masked) return g;
    float v = y[i];
    return v > 0.0f ? g : 0.0f;
}

HK_INLINE void hk_channel_gradient_sums_body(const float *x, const float *dy, const float *y, int masked, int images,
                                            long imageStride, int plane, double mean, double *sumDy,
                                            double *sumDyCentred) {
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, c[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int b = 0; b < images; b++) {
        const float *xr = x + b * imageStride, *gr = dy + b * imageStride;
        const float *yr = masked ? y + b * imageStride : 0;
        int p = 0;
        for (; p + 8 <= plane; p += 8) {
            for (int l = 0; l < 8; l++) {
                double g = (double)hk_passed(yr, gr, p + l, masked);
                a[l] += g;
                c[l] += g * ((double)xr[p + l] - mean);
            }
        }
        for (int l = 0; p + l < plane; l++) {
            double g = (double)hk_passed(yr, gr, p + l, masked);
            a[l] += g;
            c[l] += g * ((double)xr[p + l] - mean);
        }
    }
    *sumDy = hk_lanes_total(a);
    *sumDyCentred = hk_lanes_total(c);
}

HK_INLINE void hk_channel_gradient_apply_body(const float *x, const float *dy, const float *y, int masked, int images,
                                             long imageStride, int plane, double mean, double invStd, double scale,
                                             double meanDy, double meanDyXhat, float *dx) {
    for (int b = 0; b < images; b++) {
        const float *xr = x + b * imageStride, *gr = dy + b * imageStride;
        const float *yr = masked ? y + b * imageStride : 0;
        float *out = dx + b * imageStride;
        for (int p = 0; p < plane; p++) {
            double xHat = ((double)xr[p] - mean) * invStd;
            out[p] = (float)(scale * ((double)hk_passed(yr, gr, p, masked) - meanDy - xHat * meanDyXhat));
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
#define HK_AVX2 __attribute__((target("avx2")))
#define HK_HAS_AVX2 (hk_has_avx2_fma() != 0)
#define HK_AVX512 __attribute__((target("avx512f,avx2")))
#define HK_HAS_AVX512 (hk_has_avx512() != 0)
#else
#define HK_AVX2
#define HK_HAS_AVX2 0
#define HK_AVX512
#define HK_HAS_AVX512 0
#endif

HK_AVX2 static double hk_channel_sum_avx2(const float *x, int images, long imageStride, int plane, double mean,
                                          int squares) {
    return hk_channel_sum_body(x, images, imageStride, plane, mean, squares);
}

HK_AVX512 static double hk_channel_sum_avx512(const float *x, int images, long imageStride, int plane, double mean,
                                          int squares) {
    return hk_channel_sum_body(x, images, imageStride, plane, mean, squares);
}

double hk_channel_sum(const float *x, int images, long imageStride, int plane, double mean, int squares) {
    if (HK_HAS_AVX512) return hk_channel_sum_avx512(x, images, imageStride, plane, mean, squares);
    if (HK_HAS_AVX2) return hk_channel_sum_avx2(x, images, imageStride, plane, mean, squares);
    return hk_channel_sum_body(x, images, imageStride, plane, mean, squares);
}

// Each of the two gradient passes is compiled without and with the ReLU's
// mask (the always-inlined body specialised on a constant `masked`), so
// that the pass without a ReLU keeps its plain loop.
HK_AVX2 static void hk_channel_gradient_sums_avx2(const float *x, const float *dy, int images, long imageStride,
                                                  int plane, double mean, double *sumDy, double *sumDyCentred) {
    hk_channel_gradient_sums_body(x, dy, 0, 0, images, imageStride, plane, mean, sumDy, sumDyCentred);
}

HK_AVX512 static void hk_channel_gradient_sums_avx512(const float *x, const float *dy, int images, long imageStride,
                                                  int plane, double mean, double *sumDy, double *sumDyCentred) {
    hk_channel_gradient_sums_body(x, dy, 0, 0, images, imageStride, plane, mean, sumDy, sumDyCentred);
}

HK_AVX2 static void hk_channel_gradient_sums_masked_avx2(const float *x, const float *dy, const float *y, int images,
                                                         long imageStride, int plane, double mean, double *sumDy,
                                                         double *sumDyCentred) {
    hk_channel_gradient_sums_body(x, dy, y, 1, images, imageStride, plane, mean, sumDy, sumDyCentred);
}

HK_AVX512 static void hk_channel_gradient_sums_masked_avx512(const float *x, const float *dy, const float *y, int images,
                                                         long imageStride, int plane, double mean, double *sumDy,
                                                         double *sumDyCentred) {
    hk_channel_gradient_sums_body(x, dy, y, 1, images, imageStride, plane, mean, sumDy, sumDyCentred);
}

static void hk_channel_gradient_sums_masked_base(const float *x, const float *dy, const float *y, int images,
                                                 long imageStride, int plane, double mean, double *sumDy,
                                                 double *sumDyCentred) {
    hk_channel_gradient_sums_body(x, dy, y, 1, images, imageStride, plane, mean, sumDy, sumDyCentred);
}

void hk_channel_gradient_sums(const float *x, const float *dy, int images, long imageStride, int plane, double mean,
                              double *sumDy, double *sumDyCentred) {
    if (HK_HAS_AVX512) {
        hk_channel_gradient_sums_avx512(x, dy, images, imageStride, plane, mean, sumDy, sumDyCentred);
        return;
    }
    if (HK_HAS_AVX2) {
        hk_channel_gradient_sums_avx2(x, dy, images, imageStride, plane, mean, sumDy, sumDyCentred);
        return;
    }
    hk_channel_gradient_sums_body(x, dy, 0, 0, images, imageStride, plane, mean, sumDy, sumDyCentred);
}

void hk_channel_gradient_sums_masked(const float *x, const float *dy, const float *y, int images, long imageStride,
                                     int plane, double mean, double *sumDy, double *sumDyCentred) {
    if (HK_HAS_AVX512) {
        hk_channel_gradient_sums_masked_avx512(x, dy, y, images, imageStride, plane, mean, sumDy, sumDyCentred);
        return;
    }
    if (HK_HAS_AVX2) {
        hk_channel_gradient_sums_masked_avx2(x, dy, y, images, imageStride, plane, mean, sumDy, sumDyCentred);
        return;
    }
    hk_channel_gradient_sums_masked_base(x, dy, y, images, imageStride, plane, mean, sumDy, sumDyCentred);
}

HK_AVX2 static void hk_channel_gradient_apply_avx2(const float *x, const float *dy, int images, long imageStride,
                                                   int plane, double mean, double invStd, double scale,
                                                   double meanDy, double meanDyXhat, float *dx) {
    hk_channel_gradient_apply_body(x, dy, 0, 0, images, imageStride, plane, mean, invStd, scale, meanDy, meanDyXhat,
                                   dx);
}

HK_AVX512 static void hk_channel_gradient_apply_avx512(const float *x, const float *dy, int images, long imageStride,
                                                   int plane, double mean, double invStd, double scale,
                                                   double meanDy, double meanDyXhat, float *dx) {
    hk_channel_gradient_apply_body(x, dy, 0, 0, images, imageStride, plane, mean, invStd, scale, meanDy, meanDyXhat,
                                   dx);
}

HK_AVX2 static void hk_channel_gradient_apply_masked_avx2(const float *x, const float *dy, const float *y, int images,
                                                          long imageStride, int plane, double mean, double invStd,
                                                          double scale, double meanDy, double meanDyXhat,
                                                          float *dx) {
    hk_channel_gradient_apply_body(x, dy, y, 1, images, imageStride, plane, mean, invStd, scale, meanDy, meanDyXhat,
                                   dx);
}

HK_AVX512 static void hk_channel_gradient_apply_masked_avx512(const float *x, const float *dy, const float *y, int images,
                                                          long imageStride, int plane, double mean, double invStd,
                                                          double scale, double meanDy, double meanDyXhat,
                                                          float *dx) {
    hk_channel_gradient_apply_body(x, dy, y, 1, images, imageStride, plane, mean, invStd, scale, meanDy, meanDyXhat,
                                   dx);
}

static void hk_channel_gradient_apply_masked_base(const float *x, const float *dy, const float *y, int images,
                                                  long imageStride, int plane, double mean, double invStd,
                                                  double scale, double meanDy, double meanDyXhat, float *dx) {
    hk_channel_gradient_apply_body(x, dy, y, 1, images, imageStride, plane, mean, invStd, scale, meanDy, meanDyXhat,
                                   dx);
}

void hk_channel_gradient_apply(const float *x, const float *dy, int images, long imageStride, int plane,
                               double mean, double invStd, double scale, double meanDy, double meanDyXhat,
                               float *dx) {
    if (HK_HAS_AVX512) {
        hk_channel_gradient_apply_avx512(x, dy, images, imageStride, plane, mean, invStd, scale, meanDy, meanDyXhat,
                                       dx);
        return;
    }
    if (HK_HAS_AVX2) {
        hk_channel_gradient_apply_avx2(x, dy, images, imageStride, plane, mean, invStd, scale, meanDy, meanDyXhat,
                                       dx);
        return;
    }
    hk_channel_gradient_apply_body(x, dy, 0, 0, images, imageStride, plane, mean, invStd, scale, meanDy, meanDyXhat, dx);
}

void hk_channel_gradient_apply_masked(const float *x, const float *dy, const float *y, int images, long imageStride,
                                      int plane, double mean, double invStd, double scale, double meanDy,
                                      double meanDyXhat, float *dx) {
    if (HK_HAS_AVX512) {
        hk_channel_gradient_apply_masked_avx512(x, dy, y, images, imageStride, plane, mean, invStd, scale, meanDy,
                                              meanDyXhat, dx);
        return;
    }
    if (HK_HAS_AVX2) {
        hk_channel_gradient_apply_masked_avx2(x, dy, y, images, imageStride, plane, mean, invStd, scale, meanDy,
                                              meanDyXhat, dx);
        return;
    }
    hk_channel_gradient_apply_masked_base(x, dy, y, images, imageStride, plane, mean, invStd, scale, meanDy,
                                          meanDyXhat, dx);
}
