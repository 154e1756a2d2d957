// Shared helpers for every kernel file.
// Tensors are float32, row-major, NCHW for activations.
//
// Vector width helpers: PoCL's vectoriser does not turn per-channel scalar
// loops into SIMD code, explicit vector types do (reference-figures.md). The
// convolution kernels are written once as macros over a width W in
// {1, 4, 8, 16}; VEC_W is the type, vloadW/vstoreW move W floats.
#define VEC_1 float
#define VEC_4 float4
#define VEC_8 float8
#define VEC_16 float16
#define vload1(offset, pointer) ((pointer)[(offset)])
#define vstore1(value, offset, pointer) ((pointer)[(offset)] = (value))

// The i-th W-float vector at p, an aligned access: p must be W-float
// aligned, as every offset of a whole number of W-float vectors from a
// buffer's start is (OpenCL aligns buffers to at least 128 bytes,
// CL_DEVICE_MEM_BASE_ADDR_ALIGN). vloadW/vstoreW assume nothing, and PoCL
// splits their 32-byte stores into 16-byte halves; a whole load of two
// halves just stored cannot be forwarded from the stores and stalls, which
// made the pooled data gradient's read-modify-writes ~1.3× slower here.
#define VEC_REF(W, p, i) (((__global VEC_##W*)(p))[i])
#define VEC_READ(W, p, i) (((__global const VEC_##W*)(p))[i])

// ReLU with PyTorch's rule, for a float or floatN x: x where x > 0 or x is
// NaN (a diverging run shows in the loss instead of being silenced, as fmax
// would), else 0. T is x's type.
#define RELU(T, x) select((T)0.0f, (x), ((x) > 0.0f) | isnan(x))

// sum += value with Kahan's compensation `carry` (the low bits lost so far),
// for a value of type T (float or floatN). Long per-channel sums use it: a
// β's gradient Σ dy over ~100,000 values nearly cancels, and a plain
// float32 sum there ends ~5e-4 from the float64 one relative to the
// channel's largest value.
#define KAHAN_ADD(T, sum, carry, value) \
    { \
        const T y_ = (value) - (carry); \
        const T t_ = (sum) + y_; \
        (carry) = (t_ - (sum)) - y_; \
        (sum) = t_; \
    }

// sum += value, its rounding error added to `carry` exactly (Knuth's
// TwoSum: sum + value = s + error in floating point), so that sum + carry
// is the running total within a few roundings of the carries however much
// the terms cancel (Neumaier's cascade). KAHAN_ADD instead subtracts its
// carry from the next value, where it is lost whenever it is below half
// that value's ulp: on β's gradient of a ResNet layer (100,352 values that
// cancel to ~1e-3) a Kahan walk over float32 data on a 2⁻²⁴ grid ends no
// nearer the float64 sum than a plain pairwise tree (BatchNormSumAccuracyTests).
#define TWO_SUM_ADD(T, sum, carry, value) \
    { \
        const T a_ = (sum), b_ = (value); \
        const T s_ = a_ + b_; \
        const T bv_ = s_ - a_; \
        (carry) += (a_ - (s_ - bv_)) + (b_ - bv_); \
        (sum) = s_; \
    }

// The gpu family's chunked per-channel sums (gpu/batchnorm_statistics.cl,
// gpu/channel_partials.cl): a work-group of L items sums a chunk of
// GPU_CHUNK_VALUES·L consecutive values of one channel, item i reading the
// chunk's values i, L + i, 2L + i, … (neighbouring items read neighbouring
// addresses within an image plane, so that a warp's reads coalesce).
#define GPU_CHUNK_VALUES 4

// The address in (B, C, P) activations of channel c's value `at` from
// `start`, its values counted image by image, pixel by pixel.
static inline size_t channel_value_index(int start, int at, int channels, int plane, int c) {
    const int image = (start + at) / plane, p = start + at - image * plane;
    return ((size_t)image * channels + c) * plane + p;
}

// Σ of `value` over the work-group's `size` items (a power of two ≤ 256),
// returned to every item: a tree in local memory, pairs (i, i + span) for
// span = size/2, …, 1, so that the order of the additions is fixed and a
// seed gives the same sums on every run. Every item of the group calls it.
static inline float group_tree_sum(__local float* tree, float value, int item, int size) {
    tree[item] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int span = size / 2; span > 0; span >>= 1) {
        if (item < span) tree[item] += tree[item + span];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = tree[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

// Σ over the work-group of each item's compensated sum value + carry, as
// group_tree_sum's tree (the same pairs, the same order), each addition
// exact through Knuth's TwoSum: the rounding error of sum_i + sum_j joins
// the carries, which the tree adds alongside. The result is within a few
// roundings of the exact sum however much the terms cancel (a β's gradient
// Σdy), where a plain tree's error grows with log₂ size · Σ|terms|.
static inline float group_tree_sum_compensated(__local float* tree, __local float* carries, float sum, float carry,
                                               int item, int size) {
    tree[item] = sum;
    carries[item] = carry;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int span = size / 2; span > 0; span >>= 1) {
        if (item < span) {
            float total = tree[item], carry = carries[item] + carries[item + span];
            TWO_SUM_ADD(float, total, carry, tree[item + span])
            tree[item] = total;
            carries[item] = carry;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = tree[0] + carries[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}
