/*
 * eddy — internal helpers shared by every subsystem.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Allocation: control-plane allocations go through eddy__malloc and friends,
 * which abort on out of memory (a half-built graph or plan is not worth
 * recovering). Data-path code never allocates per record: it uses arenas
 * (bump allocators reset in bulk) and pooled buffers.
 */
#ifndef EDDY_COMMON_INTERNAL_H
#define EDDY_COMMON_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eddy/eddy.h"

#define EDDY_LIKELY(x) __builtin_expect(!!(x), 1)
#define EDDY_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define EDDY_UNUSED(x) ((void)(x))
#define EDDY_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define EDDY_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EDDY_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Memory: abort on failure (control plane). */
void *eddy__malloc(size_t size);
void *eddy__calloc(size_t n, size_t size);
void *eddy__realloc(void *p, size_t size);
char *eddy__strdup(const char *s);
void eddy__free(void *p);
/* Try-variants for the data path: return NULL on failure. */
void *eddy__try_malloc(size_t size);
void *eddy__try_realloc(void *p, size_t size);

/* Grows *arr (element size `elem`) so that it holds at least `need` items. */
void eddy__grow(void **arr, size_t *cap, size_t need, size_t elem);

/*
 * Arena: a bump allocator over a list of chunks. Allocation is a pointer bump;
 * reset keeps the first chunk (so steady-state use never mallocs) and frees
 * the others.
 */
typedef struct eddy__arena_chunk eddy__arena_chunk_t;
typedef struct eddy__arena {
    eddy__arena_chunk_t *ar_head; /* current chunk (list, newest first) */
    size_t ar_chunk_size;         /* default chunk size */
    size_t ar_bytes;              /* bytes handed out since creation/reset */
} eddy__arena_t;

void eddy__arena_init(eddy__arena_t *ar, size_t chunk_size);
void eddy__arena_close(eddy__arena_t *ar);
/* Returns 8-byte aligned memory, or NULL on out of memory. */
void *eddy__arena_alloc(eddy__arena_t *ar, size_t size);
/* Frees everything allocated; keeps the largest chunk for reuse. */
void eddy__arena_reset(eddy__arena_t *ar);
char *eddy__arena_strdup(eddy__arena_t *ar, const char *s);
void *eddy__arena_memdup(eddy__arena_t *ar, const void *p, size_t n);

/*
 * The 64-bit key hash. It decides key groups, so it is part of the on-disk
 * format of checkpoints: never change it. Reads bytes little-endian so the
 * result does not depend on the host.
 */
uint64_t eddy__hash64(const void *data, size_t len);

/* Key groups (DESIGN §3): hash → key group → owning subtask. */
static inline int eddy__key_group(uint64_t hash, int max_parallelism)
{
    /* Multiply-shift maps the high 32 bits uniformly onto [0, max_par). */
    return (int)(((hash >> 32) * (uint64_t)max_parallelism) >> 32);
}
static inline int eddy__key_group_subtask(int key_group, int max_parallelism,
                                          int parallelism)
{
    return (int)((int64_t)key_group * parallelism / max_parallelism);
}
/* First and last (inclusive) key group owned by `subtask`. */
void eddy__key_group_range(int subtask, int max_parallelism, int parallelism,
                           int *first, int *last);

/* Mutexes: a failed lock or unlock is a broken invariant, not an error to
 * return (STYLE §8), so these abort. */
static inline void eddy__mutex_lock(pthread_mutex_t *mu)
{
    if (pthread_mutex_lock(mu) != 0) {
        abort();
    }
}

static inline void eddy__mutex_unlock(pthread_mutex_t *mu)
{
    if (pthread_mutex_unlock(mu) != 0) {
        abort();
    }
}

/* An aggregate needs an accumulator size, add and result. */
static inline bool eddy__aggregate_usable(const eddy_aggregate_t *agg)
{
    return agg != NULL && agg->add != NULL && agg->result != NULL &&
           agg->acc_size > 0;
}

/* Monotonic clock in nanoseconds. */
uint64_t eddy__now_ns(void);

/* Crash tests: kills the process at a named point when EDDY_FAULT asks
 * (src/common/fault.c). */
void eddy__fault(const char *point);

/* snprintf that always terminates and never overflows; returns `buf`. */
char *eddy__fmt(char *buf, size_t size, const char *fmt, ...)
    EDDY_PRINTF_LIKE(3, 4);

#endif /* EDDY_COMMON_INTERNAL_H */
