#ifndef CONVSVD_C_HOST_KERNELS_H
#define CONVSVD_C_HOST_KERNELS_H

/// Direct 2-D correlations (stride 1, no padding) for HostDevice, written with
/// AVX2/FMA intrinsics. The functions are compiled for AVX2+FMA with target
/// attributes, so the library builds for any x86-64: call them only when
/// hk_has_avx2_fma() returns 1 (on other CPUs, or non-x86 builds, it returns 0
/// and the functions must not be called).
///
/// Every function needs outWidth >= 8 (one 8-lane vector per output row run).
/// Sums run in a fixed order that depends only on the shapes, so results are
/// bit-identical from run to run.

/// 1 when this CPU runs AVX2 and FMA (checked once, at run time).
int hk_has_avx2_fma(void);

/// The tap layout of a kH×kW correlation over a (channels, height, width) image:
/// offsets[(c*kH + i)*kW + j] = c*height*width + i*width + j.
void hk_tap_offsets(int channels, int height, int width, int kernelHeight, int kernelWidth, int *offsets);

/// One image: out[o, y, x] = Σ_k weightsT[k*outPad + o] * in[offsets[k] + y*width + x]
/// for o < outChannels, y < outHeight, x < outWidth, k < taps. `weightsT` is
/// (taps × outPad) with outPad = outChannels rounded up to a multiple of 4
/// (padding columns are read but never stored). Overwrites `out`
/// (outChannels, outHeight, outWidth).
void hk_correlate_image(const float *in, int width, const int *offsets, int taps,
                        const float *weightsT, int outChannels, int outPad,
                        int outHeight, int outWidth, float *out);

/// Weight gradient over `images` images: gradWeight[o*taps + k] =
/// Σ_b Σ_{y,x} gradOut[b*gradOutStride + o*outHeight*outWidth + y*outWidth + x]
///           * in[b*inStride + offsets[k] + y*width + x].
/// Overwrites gradWeight (outChannels × taps).
void hk_correlate_weight_gradient(const float *in, int inStride, int width, const int *offsets, int taps,
                                  const float *gradOut, int gradOutStride, int outChannels,
                                  int outHeight, int outWidth, int images, float *gradWeight);

/// The same weight gradient with output channels in the vector lanes
/// (outChannels rounded up to 8): no lane is wasted on short output rows, so
/// it suits many taps and narrow rows (conv2: 72 taps, rows of 11). `work`
/// holds hk_weight_gradient_wide_work(...) floats (any alignment): 8 images
/// of transposed gradient and the transposed sums.
int hk_weight_gradient_wide_work(int taps, int outChannels, int outHeight, int outWidth);
void hk_correlate_weight_gradient_wide(const float *in, int inStride, int width, const int *offsets, int taps,
                                       const float *gradOut, int gradOutStride, int outChannels,
                                       int outHeight, int outWidth, int images, float *work, float *gradWeight);

/// 2×2, stride-2 max-pooling (floor mode) of `planes` planes height×width:
/// out and argmax (flat index y*width + x of the winner in its plane;
/// candidates in row-major order, a later one wins only when strictly
/// larger, so ties go to the first and NaN never wins). Needs width/2 >= 4.
void hk_max_pool2_forward(const float *in, int planes, int height, int width, float *out, int *argmax);

/// gradIn = gradOut routed to each argmax, zero elsewhere (every input
/// element written once, no scatter). Needs width/2 >= 4. Returns 0 when
/// every argmax lies in its own 2×2 window; otherwise nonzero, and gradIn
/// is then wrong and must be recomputed by a scatter.
int hk_max_pool2_backward(const float *gradOut, const int *argmax, int planes, int height, int width, float *gradIn);

/// One image's stride-1, unpadded correlation and its 2x2 max-pool (floor
/// mode), output channels in the vector lanes:
/// out[o, y, x] = sum_k weightsT[k*outPad + o] * in[offsets[k] + y*width + x],
/// pooled[o, q] = the max of window q's four pixels and argmax[o, q] its flat
/// index y*outWidth + x (row-major candidates, a later one wins only when
/// strictly larger: ties to the first, NaN never wins). outPad is 8 or 16,
/// outChannels <= outPad, weightsT (taps x outPad) zero in the padding lanes.
/// `work` holds 2 * (outHeight/2) * (outWidth/2) * outPad floats. AVX2/FMA only.
void hk_conv_pool_image(const float *in, int width, const int *offsets, int taps, const float *weightsT,
                        int outChannels, int outPad, int outHeight, int outWidth, float *pooled, int *argmax,
                        float *work);

/// The weight gradient of a stride-1, unpadded correlation whose output
/// (outChannels, outHeight, outWidth) per image went through a 2x2 max-pool
/// (floor mode): gradPooled and argmax are (images, outChannels, outHeight/2,
/// outWidth/2), argmax the winner's flat index y*outWidth + x in its output
/// plane. gradWeight[o, c, i, j] = sum over images b and pooled elements q of
/// gradPooled[b,o,q] * in[b, c, y_q + i, x_q + j]. Overwrites gradWeight
/// (outChannels x channels*kH*kW). Any CPU (vectorised with AVX2/FMA for 8
/// input channels and a 3x3 kernel, or at most 16 output channels). `work`
/// holds hk_pooled_weight_gradient_work(...) floats. Returns 0, or 1 when an
/// argmax lies outside its own 2x2 window (gradWeight is then incomplete).
long hk_pooled_weight_gradient_work(int channels, int height, int width, int kernelHeight, int kernelWidth,
                                    int outChannels, int outHeight, int outWidth, int images);
int hk_pooled_weight_gradient(const float *in, int channels, int height, int width, int kernelHeight,
                              int kernelWidth, const float *gradPooled, const int *argmax, int outChannels,
                              int outHeight, int outWidth, int images, float *work, float *gradWeight);

/// The data gradient for the same pooled output gradient, image by image:
/// gradIn[b, c, y_q + i, x_q + j] += gradPooled[b,o,q] * weight[o, c, i, j] over
/// o and q, from zero. Overwrites gradIn (images, channels, height, width).
/// `work` holds hk_pooled_data_gradient_work(...) floats. Returns 0, or 1 as above.
long hk_pooled_data_gradient_work(int channels, int height, int width, int outChannels, int outHeight, int outWidth);
int hk_pooled_data_gradient(const float *gradPooled, const int *argmax, const float *weight, int outChannels,
                            int outHeight, int outWidth, int channels, int height, int width, int kernelHeight,
                            int kernelWidth, int images, float *work, float *gradIn);

/// Stride-1 correlation of a zero-padded image on its wide grid (AVX2/FMA
/// only): `in` is (channels, paddedHeight, paddedWidth) and offsets[k] =
/// c*paddedHeight*paddedWidth + i*paddedWidth + j (hk_tap_offsets over the
/// padded image). out[o*outStride + q] = sum_k weightsT[k*outPad + o] *
/// in[offsets[k] + q] for o < outChannels and q < length rounded up to 8, sums
/// over k in order. Output position (y, x) is q = y*paddedWidth + x; the
/// positions x >= outWidth are computed and meant to be dropped. weightsT is
/// (taps x outPad), outPad a multiple of 6, zero in the padding columns. Reads
/// `in` up to offsets[taps-1] + length rounded up to 8: the caller keeps that
/// many floats readable.
void hk_wide_correlate(const float *in, const int *offsets, int taps, const float *weightsT, int outChannels,
                       int outPad, int length, float *out, int outStride);

/// The weight gradient on the same wide grid over `images` images (AVX2/FMA
/// only): gradWeight[o*taps + k] += sum_b sum_q gradOut[b*gradImageStride +
/// o*gradStride + q] * in[b*inStride + offsets[k] + q] over q < length rounded
/// up to 8, in 8 lane partial sums (images, then positions, in order) added in
/// a fixed order. gradOut must be zero at the dropped positions and up to the
/// rounded length, and `in` finite wherever it is read.
void hk_wide_weight_gradient(const float *in, long inStride, const int *offsets, int taps, const float *gradOut,
                             int gradStride, long gradImageStride, int outChannels, int length, int images,
                             float *gradWeight);

/// 1 when this CPU runs AVX-512F as well as AVX2 and FMA (checked once).
int hk_has_avx512(void);

/// hk_wide_correlate and hk_wide_weight_gradient with 16-lane AVX-512
/// vectors: the same arguments, with length rounded up to 16 instead of 8
/// (the reads, the zero gradient past `length` and the output rows extend to
/// it) and, for hk_wide_correlate16, outPad a multiple of 8. The forward results equal hk_wide_correlate's; the weight gradient
/// adds 16 lane partial sums. Call only when hk_has_avx512() returns 1.
void hk_wide_correlate16(const float *in, const int *offsets, int taps, const float *weightsT, int outChannels,
                         int outPad, int length, float *out, int outStride);
void hk_wide_weight_gradient16(const float *in, long inStride, const int *offsets, int taps, const float *gradOut,
                               int gradStride, long gradImageStride, int outChannels, int length, int images,
                               float *gradWeight);

/// One eval-mode correlation for hk_infer_correlate16: output[o*outStride + q]
/// = e_o(sum_k weight[o, k] * input[offsets[k] + q]) for o < outChannels and
/// q < length, the sum over k in order as one lane's FMAs from zero. With
/// `masks`, tap k of the 16-lane vector v reads only the lanes set in
/// masks[v*classes + k % classes] (zero elsewhere; those lanes' memory is never
/// touched), so that `input` may be an unpadded image and offsets[k] negative;
/// without, every lane up to `length` rounded up to 16 is read. `weights` as
/// hk_infer_pack_weights writes them. e_o(x) = r(((x + bias[o])*scale[o] +
/// shift[o]) + residual[o*outStride + q]), each term only where its pointer is
/// given (shift with scale), r the ReLU (x >= 0 ? x : 0) where `relu`. With
/// `compact` only q < length is written; else whole vectors (up to `length`
/// rounded up to 16). The prefetchCount[i] floats at prefetch[i] (i < 3; the
/// next image's input, residual and output, or none) are fetched into the L2
/// cache over the course of the call.
typedef struct hk_infer_conv {
    const float *input;
    const int *offsets;
    int taps;
    int classes;
    const unsigned short *masks;
    const float *weights;
    int outChannels;
    int length;
    float *output;
    long outStride;
    const float *bias, *scale, *shift, *residual;
    int relu;
    int compact;
    const float *prefetch[3];
    long prefetchCount[3];
} hk_infer_conv;

/// The correlation of `job` (AVX-512F; call only when hk_has_avx512() returns
/// 1): output channels in ceil(outChannels/8) blocks of at most 8, their
/// sizes within one of each other (no channel is computed that is not
/// written), each over 2 to 8 vectors of positions.
void hk_infer_correlate16(const hk_infer_conv *job);

/// weight (outChannels x taps, row-major) in hk_infer_correlate16's blocks of
/// output channels: packed[o0*taps + k*cb + t] = weight[(o0 + t)*taps + k] for
/// the block of cb channels from o0.
void hk_infer_pack_weights(const float *weight, int outChannels, int taps, float *packed);

/// The taps of a stride-1 correlation read straight from an unpadded image
/// (channels, height, width) whose output position (y, x) is q = y*width + x,
/// q < length: offsets[(c*kH + i)*kW + j] = c*height*width + (i - padding)*width
/// + (j - padding), and masks[v*kH*kW + i*kW + j] (for v < length rounded up to
/// 16, over 16) holds lane l where q = 16v + l < length and pixel (y + i -
/// padding, x + j - padding) lies in the image.
void hk_infer_direct_taps(int channels, int height, int width, int kernelHeight, int kernelWidth, int padding,
                          int length, int *offsets, unsigned short *masks);

/// hk_phase_planes with 16-lane AVX-512 gathers (the same values; call only
/// when hk_has_avx512() returns 1).
void hk_infer_phase_planes16(const float *in, int planes, int height, int width, int padding, int stride,
                             int phasesHigh, int phasesWide, int phaseHeight, int phaseWidth, float *out);

/// out[o, y, x] = e_o(in[o*channelStride + y*rowStride + x]) for (channels,
/// height, width), e_o as in hk_infer_conv with residual (channels, height,
/// width) (AVX-512F only).
void hk_infer_epilogue16(const float *in, int rowStride, long channelStride, int channels, int height, int width,
                         const float *bias, const float *scale, const float *shift, const float *residual, int relu,
                         float *out);

/// Returns *counter, then adds 1 to it, atomically: the next item of a list
/// that threads take one at a time.
long hk_claim(long *counter);

/// The stride-phases of a zero-padded image, for a strided correlation on the
/// wide grid: phase (a, b), a < phasesHigh, b < phasesWide, is the block
/// out[((a*phasesWide + b)*planes + c)*phaseHeight*phaseWidth + u*phaseWidth + v]
/// = padded[c, stride*u + a, stride*v + b], where padded is `in` (planes,
/// height, width) with `padding` zeros on every side (0 past its edge).
void hk_phase_planes(const float *in, int planes, int height, int width, int padding, int stride, int phasesHigh,
                     int phasesWide, int phaseHeight, int phaseWidth, float *out);

/// out (planes, height + 2*padding, width + 2*padding) = in (planes, height,
/// width) with `padding` zero rows and columns on every side.
void hk_pad_planes(const float *in, int planes, int height, int width, int padding, float *out);

/// BatchNorm's sums over one channel of `images` planes of `plane` floats,
/// imageStride apart, in float64: sum of x (squares = 0) or of (x - mean)^2
/// (squares = 1). Eight lanes (lane l takes the positions p = l mod 8 of each
/// plane), added pairwise at the end: a fixed order for a given shape.
double hk_channel_sum(const float *x, int images, long imageStride, int plane, double mean, int squares);

/// sumDy = sum of dy, sumDyCentred = sum of dy * (x - mean) over one channel,
/// float64, in the lanes of hk_channel_sum.
void hk_channel_gradient_sums(const float *x, const float *dy, int images, long imageStride, int plane, double mean,
                              double *sumDy, double *sumDyCentred);

/// hk_channel_gradient_sums with dy replaced by (y > 0 ? dy : 0): the
/// gradient through a ReLU whose output is y, as BatchNorm's output sees it
/// when the ReLU after it is fused into it. The same sums, bit for bit, as
/// the ReLU's backward pass followed by hk_channel_gradient_sums.
void hk_channel_gradient_sums_masked(const float *x, const float *dy, const float *y, int images, long imageStride,
                                     int plane, double mean, double *sumDy, double *sumDyCentred);

/// dx = float(scale * (dy - meanDy - xHat * meanDyXhat)), xHat = (x - mean) * invStd
/// in float64, over one channel.
void hk_channel_gradient_apply(const float *x, const float *dy, int images, long imageStride, int plane,
                               double mean, double invStd, double scale, double meanDy, double meanDyXhat,
                               float *dx);

/// hk_channel_gradient_apply with dy replaced by (y > 0 ? dy : 0), as
/// hk_channel_gradient_sums_masked.
void hk_channel_gradient_apply_masked(const float *x, const float *dy, const float *y, int images, long imageStride,
                                      int plane, double mean, double invStd, double scale, double meanDy,
                                      double meanDyXhat, float *dx);

/// A pool of worker threads that run a job's tasks together with the
/// caller. Workers spin for a few hundred microseconds after each job
/// before they sleep, so back-to-back jobs (a training step's operations)
/// start without a thread wake-up.
typedef struct hk_pool hk_pool;
typedef void (*hk_task_fn)(void *context, int task);
/// A pool with `threads` workers besides the caller (0: everything runs on the caller).
hk_pool *hk_pool_create(int threads);
/// Stops and joins the workers.
void hk_pool_destroy(hk_pool *pool);
int hk_pool_threads(const hk_pool *pool);
/// Runs function(context, t) for t in 0..<tasks on the caller and the
/// workers, each task once, in any order; returns when all have finished. A
/// call from inside a task runs its tasks on that thread, in order.
void hk_pool_run(hk_pool *pool, int tasks, hk_task_fn function, void *context);

/// Adam (PyTorch's rule, no weight decay): m = b1*m + (1-b1)*g,
/// v = b2*v + (1-b2)*g*g, p -= lr*(m/c1)/(sqrt(v/c2) + eps), each operation
/// rounded as written (no fused multiply-add). The four arrays must not overlap.
void hk_adam_step(int count, float *parameter, const float *gradient, float *m, float *v, float learningRate,
                  float beta1, float beta2, float epsilon, float correction1, float correction2);
/// PyTorch's SGD (dampening 0): d = g + weightDecay*p; velocity = mu*velocity + d;
/// p -= lr*(nesterov ? d + mu*velocity : velocity).
void hk_sgd_momentum_step(int count, float *parameter, const float *gradient, float *velocity, float learningRate,
                          float momentum, float weightDecay, int nesterov);

#endif
