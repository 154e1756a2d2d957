// Shared helpers for every kernel file.
// Tensors are float32, row-major, NCHW for activations.
