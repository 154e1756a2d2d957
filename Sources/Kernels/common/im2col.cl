// im2col and its adjoint col2im for a stride-1, unpadded convolution.
// Columns are (C·kH·kW, B·oH·oW): row (c·kH + i)·kW + j, column
// b·oH·oW + y·oW + x holds input[b, c, y+i, x+j].

// One work-item per (row, image, output row y), copying oW floats: integer
// division (scalar on a CPU) once per row segment, not once per element.
#ifdef KERNEL_im2col
__kernel void im2col(__global const float* input, __global float* columns,
                     int batch, int channels, int height, int width, int kernelHeight, int kernelWidth) {
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1;
    const int patchCount = batch * outHeight * outWidth;
    const int patchSize = channels * kernelHeight * kernelWidth;
    const int index = get_global_id(0);
    if (index >= patchSize * batch * outHeight) return;
    const int row = index / (batch * outHeight);
    const int by = index - row * batch * outHeight;
    const int b = by / outHeight, y = by - b * outHeight;
    const int c = row / (kernelHeight * kernelWidth);
    const int ij = row - c * kernelHeight * kernelWidth;
    const int i = ij / kernelWidth, j = ij - i * kernelWidth;
    __global const float* source = input + ((size_t)(b * channels + c) * height + y + i) * width + j;
    __global float* target = columns + (size_t)row * patchCount + (size_t)by * outWidth;
    for (int x = 0; x < outWidth; x++) target[x] = source[x];
}
#endif

// One work-item per input row, each element summing the column entries that
// read it (a gather, so col2im overwrites its output with no atomics).
#ifdef KERNEL_col2im
__kernel void col2im(__global const float* columns, __global float* input,
                     int batch, int channels, int height, int width, int kernelHeight, int kernelWidth) {
    const int outHeight = height - kernelHeight + 1, outWidth = width - kernelWidth + 1;
    const int patchCount = batch * outHeight * outWidth;
    const int index = get_global_id(0);
    if (index >= batch * channels * height) return;
    const int h = index % height;
    const int c = (index / height) % channels;
    const int b = index / (height * channels);
    __global float* target = input + (size_t)index * width;
    for (int w = 0; w < width; w++) {
        float sum = 0.0f;
        for (int i = max(0, h - outHeight + 1); i <= min(kernelHeight - 1, h); i++) {
            for (int j = max(0, w - outWidth + 1); j <= min(kernelWidth - 1, w); j++) {
                const int row = (c * kernelHeight + i) * kernelWidth + j;
                const int column = b * outHeight * outWidth + (h - i) * outWidth + (w - j);
                sum += columns[(size_t)row * patchCount + column];
            }
        }
        target[w] = sum;
    }
}
#endif
