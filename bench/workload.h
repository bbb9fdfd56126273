/*
 * eddy-bench — the user functions of the benchmark jobs.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. These are ordinary job functions (eddy_generator_fn, eddy_map_fn,
 * eddy_filter_fn, eddy_key_fn), compiled in their own translation unit
 * (workload.c) so that neither the engine nor the baseline loop can inline
 * them: both call them through function pointers, as the engine does with
 * the functions of a job loaded from a shared object.
 *
 * The per-record work is small but real:
 *   generate  writes a 16-byte value [u64 index][u64 mix64(index)] into
 *             scratch memory;
 *   map       copies the index and applies a multiply-xorshift to the
 *             payload, into fresh scratch memory;
 *   filter    keeps the record when the payload's two low bits are not both
 *             zero (3 records in 4);
 *   key       the 8-byte key spread(index % nkeys), written to scratch
 *             memory; spread() is a bijection, so there are exactly nkeys
 *             distinct keys.
 *
 * Scratch memory comes from the `wl_scratch` hook of the opaque: in an eddy
 * job it is eddy_ctx_scratch; in the baseline loop it is an equivalent bump
 * allocator over a per-function block. That lets both run the very same
 * function bodies (a bare loop has no eddy_ctx_t to pass to
 * eddy_ctx_scratch).
 *
 * THREADS. The opaque is read-only once a run starts, so parallel subtasks
 * may share it.
 */
#ifndef EDDY_BENCH_WORKLOAD_H
#define EDDY_BENCH_WORKLOAD_H

#include <stdint.h>

#include <eddy/eddy.h>

/* Returns `size` bytes of 8-byte aligned scratch memory, or NULL. */
typedef void *(*wl_scratch_fn)(eddy_ctx_t *ctx, size_t size);

/* The opaque shared by all user functions of one run. */
typedef struct wl_opaque {
    wl_scratch_fn wl_scratch;
    uint64_t wl_nkeys; /* distinct keys (keyed cases); 0 otherwise */
} wl_opaque_t;

/* Bytes of every generated and mapped value: [u64 index][u64 payload]. */
#define WL_VALUE_SIZE 16
/* Bytes of a key. */
#define WL_KEY_SIZE 8

int wl_generate(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                void *opaque);
int wl_map(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
           void *opaque);
int wl_filter(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque);
int wl_key(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
           size_t *key_len, void *opaque);

#endif /* EDDY_BENCH_WORKLOAD_H */
