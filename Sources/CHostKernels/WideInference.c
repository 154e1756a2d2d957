#include "CHostKernels.h"

// Eval-mode convolution layers on 16-lane AVX-512 vectors (see
// hk_infer_correlate16 in CHostKernels.h). Every output is one lane's sum of
// FMAs over the taps in order, from zero, as in hk_wide_correlate16, and the
// affine map is a separate multiply and add: the results equal the wide-grid
// kernels' followed by the Swift epilogue, bit for bit, wherever a lane reads
// a zero that the padded copy would have held.
#pragma clang fp contract(off)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define HK_T512 __attribute__((target("avx512f,avx2,fma")))
#define HK_INLINE static inline __attribute__((always_inline))

/// Lanes l of the vector starting at q with q + l < length.
HK_T512 HK_INLINE __mmask16 hk_tail_mask(int q, int length) {
    int n = length - q;
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/// r(((x + bias)·scale + shift) + residual), each term only where given, r the
/// ReLU (x ≥ 0 ? x : 0, which keeps −0) or the identity.
HK_T512 HK_INLINE __m512 hk_epilogue(__m512 v, const hk_infer_conv *c, int o, const float *residual, __mmask16 lanes) {
    if (c->bias) v = _mm512_add_ps(v, _mm512_set1_ps(c->bias[o]));
    if (c->scale) {
        v = _mm512_mul_ps(v, _mm512_set1_ps(c->scale[o]));
        v = _mm512_add_ps(v, _mm512_set1_ps(c->shift[o]));
    }
    if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, residual));
    if (c->relu) v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ), v);
    return v;
}

/// Output channels o0 ..< o0 + CB at the NV vectors from v0: CB·NV
/// accumulators over all taps, then the epilogue and the stores.
HK_T512 HK_INLINE void hk_infer_block(const hk_infer_conv *c, int o0, int v0, const int CB, const int NV,
                                      const int masked) {
    __m512 acc[8][8];
    int q[8];
    const unsigned short *rows[8];
#pragma clang loop unroll(full)
    for (int j = 0; j < NV; j++) {
        q[j] = 16 * (v0 + j);
        rows[j] = masked ? c->masks + (long)(v0 + j) * c->classes : 0;
    }
#pragma clang loop unroll(full)
    for (int t = 0; t < CB; t++) {
#pragma clang loop unroll(full)
        for (int j = 0; j < NV; j++) acc[t][j] = _mm512_setzero_ps();
    }
    const float *w = c->weights + (long)o0 * c->taps;
    int cls = 0;
    for (int k = 0; k < c->taps; k++) {
        const float *p = c->input + c->offsets[k];
        __m512 x[8];
#pragma clang loop unroll(full)
        for (int j = 0; j < NV; j++)
            x[j] = masked ? _mm512_maskz_loadu_ps(rows[j][cls], p + q[j]) : _mm512_loadu_ps(p + q[j]);
        const float *wk = w + (long)k * CB;
#pragma clang loop unroll(full)
        for (int t = 0; t < CB; t++) {
            __m512 s = _mm512_set1_ps(wk[t]);
#pragma clang loop unroll(full)
            for (int j = 0; j < NV; j++) acc[t][j] = _mm512_fmadd_ps(s, x[j], acc[t][j]);
        }
        if (masked && ++cls == c->classes) cls = 0;
    }
#pragma clang loop unroll(full)
    for (int t = 0; t < CB; t++) {
        int o = o0 + t;
        float *row = c->output + (long)o * c->outStride;
        const float *residual = c->residual ? c->residual + (long)o * c->outStride : 0;
#pragma clang loop unroll(full)
        for (int j = 0; j < NV; j++) {
            __mmask16 lanes = hk_tail_mask(q[j], c->length);
            __m512 v = hk_epilogue(acc[t][j], c, o, residual ? residual + q[j] : 0, lanes);
            if (c->compact) _mm512_mask_storeu_ps(row + q[j], lanes, v);
            else _mm512_storeu_ps(row + q[j], v);
        }
    }
}

typedef void (*hk_block_fn)(const hk_infer_conv *, int, int);

// One function per (channels, vectors, masked): the vectors per block give
// CB·NV ≥ 16 accumulators where the map allows (8 FMA latencies of 2 per
// cycle hidden twice over) within the 32 registers.
#define HK_BLOCK(CB, NV)                                                                                              \
    HK_T512 static void hk_block_##CB##_##NV(const hk_infer_conv *c, int o0, int v0) {                               \
        hk_infer_block(c, o0, v0, CB, NV, 0);                                                                         \
    }                                                                                                                 \
    HK_T512 static void hk_block_m##CB##_##NV(const hk_infer_conv *c, int o0, int v0) {                              \
        hk_infer_block(c, o0, v0, CB, NV, 1);                                                                         \
    }
#define HK_BLOCKS(CB) HK_BLOCK(CB, 1) HK_BLOCK(CB, 2) HK_BLOCK(CB, 3) HK_BLOCK(CB, 4)
HK_BLOCKS(1) HK_BLOCKS(2) HK_BLOCKS(3) HK_BLOCKS(4) HK_BLOCKS(5) HK_BLOCKS(6) HK_BLOCKS(7) HK_BLOCKS(8)
HK_BLOCK(1, 5) HK_BLOCK(1, 6) HK_BLOCK(1, 7) HK_BLOCK(1, 8)
HK_BLOCK(2, 5) HK_BLOCK(2, 6) HK_BLOCK(2, 7) HK_BLOCK(2, 8)
HK_BLOCK(3, 5) HK_BLOCK(3, 6)

#define HK_ROW(CB)                                                                                                    \
    {hk_block_##CB##_1, hk_block_##CB##_2, hk_block_##CB##_3, hk_block_##CB##_4, 0, 0, 0, 0},                          \
    {hk_block_m##CB##_1, hk_block_m##CB##_2, hk_block_m##CB##_3, hk_block_m##CB##_4, 0, 0, 0, 0}
static hk_block_fn hk_blocks[9][2][8] = {
    {{0}, {0}},
    {{hk_block_1_1, hk_block_1_2, hk_block_1_3, hk_block_1_4, hk_block_1_5, hk_block_1_6, hk_block_1_7, hk_block_1_8},
     {hk_block_m1_1, hk_block_m1_2, hk_block_m1_3, hk_block_m1_4, hk_block_m1_5, hk_block_m1_6, hk_block_m1_7,
      hk_block_m1_8}},
    {{hk_block_2_1, hk_block_2_2, hk_block_2_3, hk_block_2_4, hk_block_2_5, hk_block_2_6, hk_block_2_7, hk_block_2_8},
     {hk_block_m2_1, hk_block_m2_2, hk_block_m2_3, hk_block_m2_4, hk_block_m2_5, hk_block_m2_6, hk_block_m2_7,
      hk_block_m2_8}},
    {{hk_block_3_1, hk_block_3_2, hk_block_3_3, hk_block_3_4, hk_block_3_5, hk_block_3_6, 0, 0},
     {hk_block_m3_1, hk_block_m3_2, hk_block_m3_3, hk_block_m3_4, hk_block_m3_5, hk_block_m3_6, 0, 0}},
    {HK_ROW(4)}, {HK_ROW(5)}, {HK_ROW(6)}, {HK_ROW(7)}, {HK_ROW(8)},
};

/// The channels of block i when o channels go in ceil(o/8) blocks of sizes
/// that differ by at most one (17 = 6 + 6 + 5, not 8 + 8 + 1: a block of
/// few channels reads as many inputs per multiply-add as it does).
static int hk_block_channels(int o, int i) {
    int blocks = (o + 7) / 8;
    return o / blocks + (i < o % blocks ? 1 : 0);
}

/// Vectors per block of CB channels: CB·NV ≥ 16 where possible, at most 8
/// vectors, and accumulators, inputs and a broadcast within 32 registers.
static int hk_block_vectors(int cb) {
    static const int vectors[9] = {0, 8, 8, 6, 4, 3, 3, 2, 2};
    return vectors[cb];
}

/// Vectors in the next group when `rest` remain and groups hold `nv`: the
/// last 2·nv − 1 or fewer go in two near-equal groups (49 vectors at nv = 3:
/// 15 groups of 3, then 2 and 2, not 3 and 1), so that no group of one
/// vector leaves the FMAs waiting on their own latency.
static int hk_group(int rest, int nv) {
    if (rest >= 2 * nv || rest <= nv) return rest < nv ? rest : nv;
    return (rest + 1) / 2;
}

HK_T512
void hk_infer_correlate16(const hk_infer_conv *c) {
    int vectors = (c->length + 15) / 16;
    int masked = c->masks != 0;
    // The next image's lines, a share before each block: its input is read
    // where the previous layer wrote it (in L3 or memory), by taps over 9 and
    // more rows, and its residual and output by 8 channels at once, more
    // streams than the hardware prefetcher follows.
    long lines = 0, line = 0;
    for (int i = 0; i < 3; i++) lines += c->prefetch[i] ? (c->prefetchCount[i] * 4 + 63) / 64 : 0;
    int blocks = 0;
    for (int i = 0, o0 = 0; o0 < c->outChannels; o0 += hk_block_channels(c->outChannels, i++)) {
        int nv = hk_block_vectors(hk_block_channels(c->outChannels, i));
        for (int v = 0; v < vectors; v += hk_group(vectors - v, nv)) blocks++;
    }
    long share = blocks ? (lines + blocks - 1) / blocks : 0;
    int range = 0;
    long rangeLine = 0;
    for (int i = 0, o0 = 0; o0 < c->outChannels; o0 += hk_block_channels(c->outChannels, i++)) {
        int cb = hk_block_channels(c->outChannels, i);
        int nv = hk_block_vectors(cb);
        for (int v = 0, n; v < vectors; v += n) {
            for (long end = line + share < lines ? line + share : lines; line < end; line++) {
                while (!c->prefetch[range] || rangeLine * 64 >= c->prefetchCount[range] * 4) range++, rangeLine = 0;
                _mm_prefetch((const char *)c->prefetch[range] + 64 * rangeLine++, _MM_HINT_T1);
            }
            n = hk_group(vectors - v, nv);
            hk_blocks[cb][masked][n - 1](c, o0, v);
        }
    }
}

HK_T512
void hk_infer_phase_planes16(const float *in, int planes, int height, int width, int padding, int stride,
                             int phasesHigh, int phasesWide, int phaseHeight, int phaseWidth, float *out) {
    long phasePlane = (long)phaseHeight * phaseWidth;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int a = 0; a < phasesHigh; a++) {
        for (int b = 0; b < phasesWide; b++) {
            float *phase = out + (long)(a * phasesWide + b) * planes * phasePlane;
            for (int v0 = 0; v0 < phaseWidth; v0 += 16) {
                // Lane l holds column x = stride·(v0 + l) + b − padding of each row, read where it lies in the image.
                __m512i x = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(v0)),
                                                                _mm512_set1_epi32(stride)),
                                             _mm512_set1_epi32(b - padding));
                __mmask16 lanes = hk_tail_mask(v0, phaseWidth);
                __mmask16 inside = lanes & _mm512_cmpge_epi32_mask(x, _mm512_setzero_si512()) &
                                   _mm512_cmplt_epi32_mask(x, _mm512_set1_epi32(width));
                for (int ch = 0; ch < planes; ch++) {
                    const float *source = in + (long)ch * height * width;
                    float *target = phase + ch * phasePlane + v0;
                    for (int u = 0; u < phaseHeight; u++) {
                        int y = stride * u + a - padding;
                        __m512 row = y >= 0 && y < height
                                         ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), inside, x,
                                                                    source + (long)y * width, 4)
                                         : _mm512_setzero_ps();
                        _mm512_mask_storeu_ps(target + (long)u * phaseWidth, lanes, row);
                    }
                }
            }
        }
    }
}

HK_T512
void hk_infer_epilogue16(const float *in, int rowStride, long channelStride, int channels, int height, int width,
                         const float *bias, const float *scale, const float *shift, const float *residual, int relu,
                         float *out) {
    hk_infer_conv c = {0};
    c.bias = bias;
    c.scale = scale;
    c.shift = shift;
    c.relu = relu;
    for (int o = 0; o < channels; o++) {
        for (int y = 0; y < height; y++) {
            const float *from = in + o * channelStride + (long)y * rowStride;
            long at = ((long)o * height + y) * width;
            for (int x = 0; x < width; x += 16) {
                __mmask16 lanes = hk_tail_mask(x, width);
                __m512 v = _mm512_maskz_loadu_ps(lanes, from + x);
                v = hk_epilogue(v, &c, o, residual ? residual + at + x : 0, lanes);
                _mm512_mask_storeu_ps(out + at + x, lanes, v);
            }
        }
    }
}

#else

void hk_infer_correlate16(const hk_infer_conv *c) {}
void hk_infer_phase_planes16(const float *in, int planes, int height, int width, int padding, int stride,
                             int phasesHigh, int phasesWide, int phaseHeight, int phaseWidth, float *out) {}
void hk_infer_epilogue16(const float *in, int rowStride, long channelStride, int channels, int height, int width,
                         const float *bias, const float *scale, const float *shift, const float *residual, int relu,
                         float *out) {}

#endif

long hk_claim(long *counter) { return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

void hk_infer_pack_weights(const float *weight, int outChannels, int taps, float *packed) {
    for (int i = 0, o0 = 0; o0 < outChannels; o0 += hk_block_channels(outChannels, i++)) {
        int cb = hk_block_channels(outChannels, i);
        float *block = packed + (long)o0 * taps;
        for (int k = 0; k < taps; k++) {
            for (int t = 0; t < cb; t++) block[(long)k * cb + t] = weight[(long)(o0 + t) * taps + k];
        }
    }
}

void hk_infer_direct_taps(int channels, int height, int width, int kernelHeight, int kernelWidth, int padding,
                          int length, int *offsets, unsigned short *masks) {
    for (int ch = 0; ch < channels; ch++) {
        for (int i = 0; i < kernelHeight; i++) {
            for (int j = 0; j < kernelWidth; j++) {
                offsets[(ch * kernelHeight + i) * kernelWidth + j] =
                    ch * height * width + (i - padding) * width + (j - padding);
            }
        }
    }
    int vectors = (length + 15) / 16, classes = kernelHeight * kernelWidth;
    for (int v = 0; v < vectors; v++) {
        for (int i = 0; i < kernelHeight; i++) {
            for (int j = 0; j < kernelWidth; j++) {
                unsigned mask = 0;
                for (int l = 0; l < 16; l++) {
                    int q = 16 * v + l, y = q / width + i - padding, x = q % width + j - padding;
                    if (q < length && y >= 0 && y < height && x >= 0 && x < width) mask |= 1u << l;
                }
                masks[v * classes + i * kernelWidth + j] = (unsigned short)mask;
            }
        }
    }
}
