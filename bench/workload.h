/*
 * eddy-bench — the user functions of the benchmark jobs.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. These are ordinary job functions (eddy_generator_fn, eddy_map_fn,
 * eddy_filter_fn, eddy_key_fn, eddy_join_fn), compiled in their own translation
 * unit (workload.c) so that neither the engine nor the baseline loop can inline
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
 * Event-time workloads (windows, interval join) add:
 *   generate_ts  the same 16-byte value, with the event timestamp
 *                ts_base + ts_shift + index / per_ms (ascending: per_ms
 *                records share each millisecond);
 *   key_mixed    the 8-byte key spread(mix64(index) % nkeys), read from the
 *                payload: consecutive records go to unrelated keys;
 *   key_session  key_mixed, except that a key is idle for one second in
 *                every ten: while ((ts - ts_base) / 1000 + k) % 10 == 0 the
 *                records of key index k go to key index (k + 1) % nkeys;
 *   key_id       the 8-byte index itself (a unique key per record);
 *   join         a join function emitting [u64 left index][u64 right
 *                payload] through the `wl_emit` hook (eddy_collect in a
 *                job, a counter in the baseline loop);
 *   count        a filter that counts the records reaching it and sums
 *                their first 8 bytes into a wl_counter_t (its opaque), so a
 *                run's result can be checked against the baseline's.
 *
 * THREADS. The opaque is read-only once a run starts, so parallel subtasks
 * may share it. The count filter writes the slot of its own subtask only.
 */
#ifndef EDDY_BENCH_WORKLOAD_H
#define EDDY_BENCH_WORKLOAD_H

#include <stdatomic.h>
#include <stdint.h>

#include <eddy/eddy.h>

/* Returns `size` bytes of 8-byte aligned scratch memory, or NULL. */
typedef void *(*wl_scratch_fn)(eddy_ctx_t *ctx, size_t size);

/* Emits a join result: eddy_collect in a job. */
typedef int (*wl_emit_fn)(eddy_collector_t *out, const eddy_record_t *rec);

/* The opaque shared by all user functions of one run. */
typedef struct wl_opaque {
    wl_scratch_fn wl_scratch;
    uint64_t wl_nkeys;   /* distinct keys (keyed cases); 0 otherwise */
    int64_t wl_ts_base;  /* event time of record 0 (ms) */
    int64_t wl_ts_shift; /* added to every timestamp (ms) */
    uint64_t wl_per_ms;  /* records per millisecond of event time */
    wl_emit_fn wl_emit;  /* join results */
} wl_opaque_t;

/* Bytes of every generated and mapped value: [u64 index][u64 payload]. */
#define WL_VALUE_SIZE 16
/* Bytes of a key. */
#define WL_KEY_SIZE 8
/* key_session: a key idles for WL_IDLE_MS in every WL_CYCLE_MS. */
#define WL_IDLE_MS 1000
#define WL_CYCLE_MS 10000

/* What the count filter saw, one slot per subtask (each slot has a single
 * writer; read it after the job finished). */
#define WL_MAX_SUBTASKS 16
typedef struct wl_counter {
    struct {
        _Alignas(64) _Atomic uint64_t records;
        _Atomic uint64_t sum;
    } wc_slot[WL_MAX_SUBTASKS];
} wl_counter_t;

int wl_generate(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                void *opaque);
int wl_map(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
           void *opaque);
int wl_filter(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque);
int wl_key(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
           size_t *key_len, void *opaque);

int wl_generate_ts(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                   void *opaque);
int wl_key_mixed(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                 size_t *key_len, void *opaque);
int wl_key_session(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                   size_t *key_len, void *opaque);
int wl_key_id(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
              size_t *key_len, void *opaque);
int wl_join(eddy_ctx_t *ctx, const eddy_record_t *left,
            const eddy_record_t *right, eddy_collector_t *out, void *opaque);
int wl_count(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque);

#endif /* EDDY_BENCH_WORKLOAD_H */
