#include "CHostKernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HK_PAUSE() _mm_pause()
#else
#define HK_PAUSE() ((void)0)
#endif

// A training step issues about fifteen operations of 10–250 µs each. Waking a
// sleeping thread for each (as a dispatch queue does) cost 20–100 µs per
// operation on the project's virtual machines, so the workers here spin on a
// generation counter for a while after each job and sleep only when no work
// has come for HK_SPIN_ROUNDS rounds of pause (a few hundred microseconds),
// e.g. between epochs or outside training.

#define HK_SPIN_ROUNDS 40000

struct hk_pool {
    int threads;
    pthread_t *handles;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Atomic unsigned long generation;  // bumped for each job: wakes the workers
    _Atomic int stop;
    // The current job, written before its ticket is published and stable
    // while any of its tasks is unfinished.
    hk_task_fn function;
    void *context;
    // (generation << 32) | tasks not yet claimed. Claims are compare-and-swap
    // decrements within one generation, so a worker that wakes late for an
    // old job cannot take a task of a newer one.
    _Atomic unsigned long ticket;
    _Atomic int pending;  // tasks not yet finished
};

static _Thread_local int hk_in_pool_task = 0;

/// Claims and runs tasks of job `generation` until none is left.
static void hk_run_tasks(struct hk_pool *pool, unsigned long generation) {
    unsigned long ticket = atomic_load_explicit(&pool->ticket, memory_order_acquire);
    for (;;) {
        if ((ticket >> 32) != (generation & 0xffffffffUL) || (ticket & 0xffffffffUL) == 0) return;
        if (!atomic_compare_exchange_weak_explicit(&pool->ticket, &ticket, ticket - 1, memory_order_acq_rel,
                                                   memory_order_acquire)) continue;
        int task = (int)(ticket & 0xffffffffUL) - 1;
        hk_in_pool_task = 1;
        pool->function(pool->context, task);
        hk_in_pool_task = 0;
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
        ticket = atomic_load_explicit(&pool->ticket, memory_order_acquire);
    }
}

static void *hk_worker(void *argument) {
    struct hk_pool *pool = argument;
    unsigned long seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
    for (;;) {
        int rounds = 0;
        unsigned long now;
        while ((now = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) return 0;
            if (++rounds < HK_SPIN_ROUNDS) { HK_PAUSE(); continue; }
            pthread_mutex_lock(&pool->lock);
            while (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen &&
                   !atomic_load_explicit(&pool->stop, memory_order_relaxed))
                pthread_cond_wait(&pool->wake, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
            rounds = 0;
        }
        if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) return 0;
        seen = now;
        hk_run_tasks(pool, now);
    }
}

hk_pool *hk_pool_create(int threads) {
    struct hk_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return 0;
    pthread_mutex_init(&pool->lock, 0);
    pthread_cond_init(&pool->wake, 0);
    pool->handles = calloc(threads > 0 ? threads : 1, sizeof(pthread_t));
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&pool->handles[i], 0, hk_worker, pool) != 0) break;
        pool->threads = i + 1;
    }
    return pool;
}

void hk_pool_destroy(hk_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->threads; i++) pthread_join(pool->handles[i], 0);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->handles);
    free(pool);
}

int hk_pool_threads(const hk_pool *pool) { return pool ? pool->threads : 0; }

void hk_pool_run(hk_pool *pool, int tasks, hk_task_fn function, void *context) {
    if (tasks <= 0) return;
    // One task, no workers, or a call from inside a task (which would wait
    // for itself): run here, in order.
    if (tasks == 1 || !pool || pool->threads == 0 || hk_in_pool_task) {
        for (int t = 0; t < tasks; t++) function(context, t);
        return;
    }
    unsigned long generation = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
    pool->function = function;
    pool->context = context;
    atomic_store_explicit(&pool->pending, tasks, memory_order_relaxed);
    atomic_store_explicit(&pool->ticket, ((generation & 0xffffffffUL) << 32) | (unsigned long)tasks,
                          memory_order_release);
    pthread_mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->generation, generation, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    hk_run_tasks(pool, generation);
    // A worker still on a task may have lost its core to another process:
    // after a short spin, yield so that it can run on ours.
    for (int rounds = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; rounds++) {
        if (rounds < 2000) HK_PAUSE();
        else sched_yield();
    }
}

// Chunks of 0..<count as one job, calling a Swift closure of type
// `(Int, Range<Int>) -> Void` directly: Swift declares this function with
// `@_silgen_name` (HostDevice.parallelChunks), passing the closure as its two
// words (function, context) in Swift's calling convention, which clang's
// `swiftcall` and `swift_context` attributes speak. A non-escaping Swift
// closure cannot be stored in a Swift value for the workers to call without
// `withoutActuallyEscaping`, which heap-allocates a checking thunk at every
// call; passing its words through C allocates nothing. The closure's context
// lives on the caller's stack, which outlives the job (hk_pool_run returns
// only when every task has finished). It is declared only here, not in the
// imported header, so that Swift sees it once, with the closure type.

typedef void (*hk_chunk_fn)(intptr_t chunk, intptr_t lower, intptr_t upper,
                            void *context __attribute__((swift_context))) __attribute__((swiftcall));

struct hk_chunk_job {
    intptr_t count, chunks;
    hk_chunk_fn function;
    void *context;
};

static void hk_run_chunk(void *context, int task) {
    const struct hk_chunk_job *job = context;
    intptr_t chunk = task;
    job->function(chunk, chunk * job->count / job->chunks, (chunk + 1) * job->count / job->chunks, job->context);
}

__attribute__((swiftcall)) void hk_pool_run_chunks(hk_pool *pool, intptr_t count, intptr_t chunks,
                                                    hk_chunk_fn function, void *context) {
    struct hk_chunk_job job = {count, chunks, function, context};
    hk_pool_run(pool, (int)chunks, hk_run_chunk, &job);
}
