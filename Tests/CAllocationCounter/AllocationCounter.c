#include "CAllocationCounter.h"

#include <stdatomic.h>
#include <stddef.h>

// glibc's allocator under its internal names (exported by glibc 2.x).
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);

static _Atomic int ac_counting;
static _Atomic long ac_count;

static inline void ac_note(void) {
    if (atomic_load_explicit(&ac_counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&ac_count, 1, memory_order_relaxed);
}

void *malloc(size_t size) {
    ac_note();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    ac_note();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    ac_note();
    return __libc_realloc(pointer, size);
}

void ac_start(void) {
    atomic_store(&ac_count, 0);
    atomic_store(&ac_counting, 1);
}

long ac_stop(void) {
    atomic_store(&ac_counting, 0);
    return atomic_load(&ac_count);
}
