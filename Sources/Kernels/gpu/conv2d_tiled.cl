// The general convolution (stride s, zero padding p) for the gpu family as
// implicit GEMMs: C (M×N) = A (M×K)·B (K×N) where B is the unfolded input
// (im2col) read straight from the tensor, never stored. One work-group of
// TILE×TILE = 256 work-items per TILE×TILE block of C, one element each;
// each step of K stages a TILE×TILE block of A and one of B in local memory
// (2 KiB together), so that each value read from global memory serves TILE
// multiply-adds. Threads of a group run along N (pixels), so that their
// global reads and writes of activations are consecutive. Zero padding is a
// bounds test in the B loader. Launched by OpenCLDevice+ResidualOps.swift,
// which falls back to the cpu family where a work-group of 256 is not
// allowed.
#define CONV_TILE 16

// Σ_kk aTile[ty, kk]·bTile[kk, tx] over one staged step of K.
static inline float conv_tile_product(__local const float* aTile, __local const float* bTile, int ty, int tx) {
    float sum = 0.0f;
    for (int kk = 0; kk < CONV_TILE; kk++) sum += aTile[ty * CONV_TILE + kk] * bTile[kk * CONV_TILE + tx];
    return sum;
}

// Forward: M = O (output channels), N = B·oH·oW (pixels), K = C·kH·kW (taps);
// A = weight (O, K), B[(c,i,j), (b,y,x)] = input[b, c, y·s+i−p, x·s+j−p]
// (0 outside the image). output[b,o,y,x] = C[o, (b,y,x)] + bias[o].
#ifdef KERNEL_gpu_conv2d_tiled_forward
__kernel void gpu_conv2d_tiled_forward(__global const float* input, __global const float* weight,
                                       __global const float* bias, __global float* output, int batch,
                                       int inChannels, int height, int width, int outChannels, int kernelHeight,
                                       int kernelWidth, int stride, int padding, int outHeight, int outWidth,
                                       int hasBias) {
    __local float aTile[CONV_TILE * CONV_TILE], bTile[CONV_TILE * CONV_TILE];
    const int plane = outHeight * outWidth, kernelArea = kernelHeight * kernelWidth;
    const int M = outChannels, N = batch * plane, K = inChannels * kernelArea;
    const int mTiles = (M + CONV_TILE - 1) / CONV_TILE;
    const int group = get_group_id(0), tm = group % mTiles, tn = group / mTiles;
    const int lid = get_local_id(0), ty = lid / CONV_TILE, tx = lid - ty * CONV_TILE;
    const int m = tm * CONV_TILE + ty, n = tn * CONV_TILE + tx;
    int b = 0, q = 0, y0 = 0, x0 = 0;
    if (n < N) {
        b = n / plane;
        q = n - b * plane;
        const int y = q / outWidth;
        y0 = y * stride - padding;
        x0 = (q - y * outWidth) * stride - padding;
    }
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += CONV_TILE) {
        const int ka = k0 + tx, kb = k0 + ty;
        aTile[lid] = m < M && ka < K ? weight[(size_t)m * K + ka] : 0.0f;
        float v = 0.0f;
        if (n < N && kb < K) {
            const int c = kb / kernelArea, ij = kb - c * kernelArea;
            const int i = ij / kernelWidth, j = ij - i * kernelWidth;
            const int iy = y0 + i, ix = x0 + j;
            if (iy >= 0 && iy < height && ix >= 0 && ix < width)
                v = input[((size_t)(b * inChannels + c) * height + iy) * width + ix];
        }
        bTile[lid] = v;
        barrier(CLK_LOCAL_MEM_FENCE);
        acc += conv_tile_product(aTile, bTile, ty, tx);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (m < M && n < N) output[(size_t)(b * M + m) * plane + q] = acc + (hasBias ? bias[m] : 0.0f);
}
#endif

// Data gradient: M = C (input channels), N = B·H·W (input pixels), K =
// O·kH·kW; A[c, (o,i,j)] = weight[o,c,i,j], B[(o,i,j), (b,Y,X)] =
// gradOutput[b,o,y,x] where Y + p − i = y·s and X + p − j = x·s inside the
// output, else 0. gradInput[b,c,Y,X] = C[c, (b,Y,X)].
#ifdef KERNEL_gpu_conv2d_tiled_data
__kernel void gpu_conv2d_tiled_data(__global const float* gradOutput, __global const float* weight,
                                    __global float* gradInput, int batch, int inChannels, int height, int width,
                                    int outChannels, int kernelHeight, int kernelWidth, int stride, int padding,
                                    int outHeight, int outWidth) {
    __local float aTile[CONV_TILE * CONV_TILE], bTile[CONV_TILE * CONV_TILE];
    const int plane = height * width, outPlane = outHeight * outWidth, kernelArea = kernelHeight * kernelWidth;
    const int M = inChannels, N = batch * plane, K = outChannels * kernelArea;
    const int mTiles = (M + CONV_TILE - 1) / CONV_TILE;
    const int group = get_group_id(0), tm = group % mTiles, tn = group / mTiles;
    const int lid = get_local_id(0), ty = lid / CONV_TILE, tx = lid - ty * CONV_TILE;
    const int m = tm * CONV_TILE + ty, n = tn * CONV_TILE + tx;
    int b = 0, q = 0, Y = 0, X = 0;
    if (n < N) {
        b = n / plane;
        q = n - b * plane;
        Y = q / width;
        X = q - Y * width;
    }
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += CONV_TILE) {
        const int ka = k0 + tx, kb = k0 + ty;
        float w = 0.0f;
        if (m < M && ka < K) {
            const int o = ka / kernelArea, ij = ka - o * kernelArea;
            w = weight[((size_t)o * inChannels + m) * kernelArea + ij];
        }
        aTile[lid] = w;
        float v = 0.0f;
        if (n < N && kb < K) {
            const int o = kb / kernelArea, ij = kb - o * kernelArea;
            const int i = ij / kernelWidth, j = ij - i * kernelWidth;
            const int ny = Y + padding - i, nx = X + padding - j;
            if (ny >= 0 && nx >= 0 && ny % stride == 0 && nx % stride == 0 && ny / stride < outHeight
                && nx / stride < outWidth)
                v = gradOutput[(size_t)(b * outChannels + o) * outPlane + (ny / stride) * outWidth + nx / stride];
        }
        bTile[lid] = v;
        barrier(CLK_LOCAL_MEM_FENCE);
        acc += conv_tile_product(aTile, bTile, ty, tx);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (m < M && n < N) gradInput[(size_t)(b * M + m) * plane + q] = acc;
}
#endif

// Weight gradient partial sums: M = O, N = C·kH·kW (taps), the sum over
// P = B·oH·oW output pixels cut into `chunks` chunks of `chunkLength` (a
// multiple of CONV_TILE); A[o, (b,y,x)] = gradOutput[b,o,y,x],
// B[(b,y,x), (c,i,j)] = input[b,c,y·s+i−p,x·s+j−p] (0 outside).
// partials[(o·N + tap)·chunks + chunk] = the chunk's sum; gpu_sum_chunks
// adds the chunks in order (no atomics: the same result on every run).
// Work-groups: chunk-major over the M×N tiles.
#ifdef KERNEL_gpu_conv2d_tiled_weight
__kernel void gpu_conv2d_tiled_weight(__global const float* input, __global const float* gradOutput,
                                      __global float* partials, int batch, int inChannels, int height, int width,
                                      int outChannels, int kernelHeight, int kernelWidth, int stride, int padding,
                                      int outHeight, int outWidth, int chunks, int chunkLength) {
    __local float aTile[CONV_TILE * CONV_TILE], bTile[CONV_TILE * CONV_TILE];
    const int outPlane = outHeight * outWidth, kernelArea = kernelHeight * kernelWidth;
    const int M = outChannels, N = inChannels * kernelArea, P = batch * outPlane;
    const int mTiles = (M + CONV_TILE - 1) / CONV_TILE, nTiles = (N + CONV_TILE - 1) / CONV_TILE;
    const int group = get_group_id(0), chunk = group / (mTiles * nTiles), tile = group - chunk * mTiles * nTiles;
    const int tm = tile % mTiles, tn = tile / mTiles;
    const int lid = get_local_id(0), ty = lid / CONV_TILE, tx = lid - ty * CONV_TILE;
    const int m = tm * CONV_TILE + ty, n = tn * CONV_TILE + tx;
    int c = 0, i = 0, j = 0;
    if (n < N) {
        c = n / kernelArea;
        const int ij = n - c * kernelArea;
        i = ij / kernelWidth;
        j = ij - i * kernelWidth;
    }
    const int start = chunk * chunkLength, end = min(start + chunkLength, P);
    float acc = 0.0f;
    for (int p0 = start; p0 < end; p0 += CONV_TILE) {
        const int pa = p0 + tx, pb = p0 + ty;
        float g = 0.0f;
        if (m < M && pa < end) {
            const int b = pa / outPlane, q = pa - b * outPlane;
            g = gradOutput[(size_t)(b * outChannels + m) * outPlane + q];
        }
        aTile[lid] = g;
        float v = 0.0f;
        if (n < N && pb < end) {
            const int b = pb / outPlane, q = pb - b * outPlane;
            const int y = q / outWidth, x = q - y * outWidth;
            const int iy = y * stride + i - padding, ix = x * stride + j - padding;
            if (iy >= 0 && iy < height && ix >= 0 && ix < width)
                v = input[((size_t)(b * inChannels + c) * height + iy) * width + ix];
        }
        bTile[lid] = v;
        barrier(CLK_LOCAL_MEM_FENCE);
        acc += conv_tile_product(aTile, bTile, ty, tx);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (m < M && n < N) partials[((size_t)m * N + n) * chunks + chunk] = acc;
}
#endif
