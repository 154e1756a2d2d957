#ifndef CONVSVD_C_ALLOCATION_COUNTER_H
#define CONVSVD_C_ALLOCATION_COUNTER_H

/// Counts calls to malloc, calloc and realloc in the whole test process
/// while counting is on, for tests that hold a training step to allocating
/// nothing. The test executable defines these three functions, so every
/// library's calls (the Swift runtime's objects and arrays, Foundation, C
/// code) reach them; each forwards to glibc's own (`__libc_malloc`, …),
/// which `free` then releases, so nothing else changes. Counting covers
/// every thread: use it where no other thread allocates on its own (the
/// host device; an OpenCL driver's threads and its own calls would count).

/// Starts counting from zero.
void ac_start(void);
/// Stops counting; returns the calls counted since ac_start.
long ac_stop(void);

#endif
