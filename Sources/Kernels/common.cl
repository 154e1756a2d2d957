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
