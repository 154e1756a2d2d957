// OpenCL 1.2 is the common denominator of PoCL and NVIDIA's driver; the
// target version silences the headers' deprecation of 1.2 entry points.
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
