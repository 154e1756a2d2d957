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
