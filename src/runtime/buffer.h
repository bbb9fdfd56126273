/*
 * eddy — network buffers and the buffer pool.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Records cross task boundaries serialized into fixed-size segments
 * (default 32 KiB). A pool owns every segment of one runtime (one TaskManager,
 * or the local mini-cluster). Segments are allocated lazily up to the pool's
 * limit, then recycled through a free list, so a steady-state job allocates
 * nothing. The limit bounds memory; when it is reached, writers block in
 * eddy__pool_get() until a consumer releases a buffer — that is one of the two
 * ways back pressure reaches the sources (the other is the per-channel
 * capacity, see channel.h).
 *
 * THREADS. All functions are thread-safe. A buffer has one owner at a time:
 * the writer filling it, the channel queue holding it, then the reader
 * consuming it, who releases it.
 */
#ifndef EDDY_RUNTIME_BUFFER_H
#define EDDY_RUNTIME_BUFFER_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/internal.h"

typedef struct eddy__pool eddy__pool_t;

typedef struct eddy__buffer {
    struct eddy__buffer *buf_next; /* free list / queue link */
    eddy__pool_t *buf_pool;
    uint32_t buf_len; /* bytes written */
    uint32_t buf_cap; /* segment size */
    _Alignas(16) unsigned char buf_data[];
} eddy__buffer_t;

struct eddy__pool {
    pthread_mutex_t pl_mu;
    pthread_cond_t pl_cv;
    eddy__buffer_t *pl_free;         /* free list */
    size_t pl_segment_size;          /* bytes per buffer */
    size_t pl_max;                   /* at most this many buffers exist */
    size_t pl_allocated;             /* buffers created so far */
    size_t pl_available;             /* buffers on the free list */
    int pl_waiters;                  /* threads blocked in get */
    atomic_int *pl_cancel;           /* when non-zero, blocked gets give up */
    atomic_uint_fast64_t pl_wait_ns; /* total time spent blocked in get */
};

/* Creates a pool of at most `max_buffers` segments of `segment_size` bytes. */
eddy__pool_t *eddy__pool_new(size_t segment_size, size_t max_buffers);
/* Destroys the pool; every buffer must have been released (asserts). */
void eddy__pool_destroy(eddy__pool_t *pl);
/* Blocks woken by eddy__pool_wake() return NULL once *cancel is non-zero. */
void eddy__pool_set_cancel(eddy__pool_t *pl, atomic_int *cancel);
/*
 * Takes a buffer, waiting while the pool is exhausted. Returns NULL if the
 * pool's cancel flag is raised while waiting (or memory runs out).
 */
eddy__buffer_t *eddy__pool_get(eddy__pool_t *pl);
/* Takes a buffer or returns NULL at once if none is available. */
eddy__buffer_t *eddy__pool_try_get(eddy__pool_t *pl);
/* Returns a buffer to its pool and wakes one waiter. NULL is a no-op. */
void eddy__buffer_release(eddy__buffer_t *buf);
/* Wakes every waiter (used on cancellation). */
void eddy__pool_wake(eddy__pool_t *pl);
/* Buffers currently free or not yet allocated. */
size_t eddy__pool_available(eddy__pool_t *pl);
/*
 * Raises the pool's limit by `n` segments (the data plane grows its receive
 * pool as remote input channels are added).
 */
void eddy__pool_add_capacity(eddy__pool_t *pl, size_t n);
/*
 * Lowers the limit by `n` (not below zero). Free segments above the new limit
 * are freed at once, and buffers released while the pool holds more than its
 * limit are freed instead of kept, so memory follows the limit down.
 */
void eddy__pool_remove_capacity(eddy__pool_t *pl, size_t n);

#endif /* EDDY_RUNTIME_BUFFER_H */
