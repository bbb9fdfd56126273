/*
 * eddy — a distributed stream processing engine in C11.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * This is the umbrella header that job authors include. A job is a shared
 * object exporting one entry point, declared with EDDY_JOB(); the entry point
 * receives an environment and builds a dataflow graph on it:
 *
 *     static int build(eddy_env_t *env, int argc, char **argv) {
 *         eddy_stream_t *lines = eddy_source_text_file(env, argv[0]);
 *         eddy_stream_t *words = eddy_flat_map(lines, tokenize, NULL);
 *         ...
 *         return 0;
 *     }
 *     EDDY_JOB("word-count", build)
 *
 * The entry point must be deterministic: every process that runs a part of
 * the job loads the shared object and builds the same graph again, which is
 * how function pointers are bound in that process.
 *
 * THREADS. Graph building (everything taking an eddy_env_t or eddy_stream_t)
 * happens on one thread before execution. User functions (map, filter, ...)
 * run on the thread of the subtask that owns them; one function instance is
 * never called concurrently, but different subtasks call the same function
 * pointer concurrently with different contexts, so any shared `opaque` must be
 * read-only or synchronised by the user.
 *
 * MEMORY. Records passed to user functions point into engine-owned memory that
 * is valid only for the duration of the call. Records a user function emits
 * may point into its input, into static memory, or into scratch memory from
 * eddy_ctx_scratch(); the engine copies what it needs before the function
 * returns.
 */
#ifndef EDDY_EDDY_H
#define EDDY_EDDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eddy/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** ABI version of the job entry point; bumped on incompatible changes. */
#define EDDY_ABI_VERSION 1

#define EDDY_VERSION_MAJOR 0
#define EDDY_VERSION_MINOR 1
#define EDDY_VERSION_PATCH 0
#define EDDY_VERSION_STR "0.1.0"

/** @brief The version string of the linked library ("0.1.0"). */
EDDY_EXPORT const char *eddy_version(void);

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

/** Timestamp value meaning "this record has no event timestamp". */
#define EDDY_TS_NONE INT64_MIN

/**
 * A record: optional key bytes, value bytes, optional event timestamp
 * (milliseconds since the epoch, or EDDY_TS_NONE).
 *
 * A record without a key has key == NULL and key_len == 0. On a keyed stream
 * (after eddy_key_by) every record carries its key. An empty value may be
 * given as value == NULL with value_len == 0. A record sent between tasks
 * may hold at most 256 MiB of key and value; a larger one fails the job.
 */
typedef struct eddy_record {
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t ts;
} eddy_record_t;

/** @brief Reads a record's value as a host-order int64 (0 if shorter). */
EDDY_EXPORT int64_t eddy_record_value_i64(const eddy_record_t *rec);

/* ------------------------------------------------------------------------ */
/* Handles                                                                  */
/* ------------------------------------------------------------------------ */

/** The execution environment a job builds its graph on. */
typedef struct eddy_env_s eddy_env_t;
/** A stream of records: the output of a source or an operator. */
typedef struct eddy_stream_s eddy_stream_t;
/** Per-subtask context handed to every user function. */
typedef struct eddy_ctx_s eddy_ctx_t;
/** Where a flat_map (or other multi-output function) sends its records. */
typedef struct eddy_collector_s eddy_collector_t;
/** An in-memory, thread-safe result set filled by eddy_sink_collect(). */
typedef struct eddy_collection_s eddy_collection_t;

/* ------------------------------------------------------------------------ */
/* Context available to user functions                                      */
/* ------------------------------------------------------------------------ */

/** @brief Index of the running subtask, 0 .. parallelism-1. */
EDDY_EXPORT int eddy_ctx_subtask(const eddy_ctx_t *ctx);
/** @brief Parallelism of the operator the function belongs to. */
EDDY_EXPORT int eddy_ctx_parallelism(const eddy_ctx_t *ctx);
/** @brief Name of the operator the function belongs to. */
EDDY_EXPORT const char *eddy_ctx_operator(const eddy_ctx_t *ctx);

/**
 * @brief Reports that the user function failed.
 *
 * The message (printf format) is attached to the job failure, which names the
 * operator and subtask. Return the result from the user function:
 * `return eddy_ctx_fail(ctx, "bad record: %s", why);`
 *
 * @returns EDDY_ERR_USER (negative), so it can be returned directly.
 */
EDDY_EXPORT int eddy_ctx_fail(eddy_ctx_t *ctx, const char *fmt, ...)
    EDDY_PRINTF_LIKE(2, 3);

/**
 * @brief Scratch memory for building output records.
 *
 * Each call returns `size` fresh bytes (8-byte aligned) that stay valid until
 * the user function returns; the engine consumes emitted records
 * synchronously, so emitted records may point into scratch memory. The memory
 * is recycled between calls without freeing, so using it costs no malloc per
 * record.
 *
 * @returns NULL only if the allocation fails (then fail the function).
 */
EDDY_EXPORT void *eddy_ctx_scratch(eddy_ctx_t *ctx, size_t size);

/**
 * @brief Emits one record to the collector (flat_map and friends).
 *
 * The record is consumed before this returns: its memory may be reused at once.
 * @returns 0, or a negative eddy_err_t if the downstream failed; a user
 *          function should return that value unchanged.
 */
EDDY_EXPORT int eddy_collect(eddy_collector_t *out, const eddy_record_t *rec);

/* ------------------------------------------------------------------------ */
/* User function types. All return 0 on success or a negative error (use   */
/* eddy_ctx_fail). `opaque` is the pointer given when the operator was      */
/* added.                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * Map: one record in, one record out. `out` starts as a copy of `in` (same
 * key, value and timestamp pointers); change the fields you need.
 */
typedef int (*eddy_map_fn)(eddy_ctx_t *ctx, const eddy_record_t *in,
                           eddy_record_t *out, void *opaque);

/** Filter: return 1 to keep the record, 0 to drop it, negative on error. */
typedef int (*eddy_filter_fn)(eddy_ctx_t *ctx, const eddy_record_t *in,
                              void *opaque);

/** Flat map: emit zero or more records with eddy_collect(). */
typedef int (*eddy_flat_map_fn)(eddy_ctx_t *ctx, const eddy_record_t *in,
                                eddy_collector_t *out, void *opaque);

/**
 * Key selector: set `*key`/`*key_len` to the record's key. The key may point
 * into the record, static memory or scratch memory.
 */
typedef int (*eddy_key_fn)(eddy_ctx_t *ctx, const eddy_record_t *in,
                           const void **key, size_t *key_len, void *opaque);

/**
 * Running reduce: combine the key's current value `acc` with the new record
 * `in` into `out` (which starts as a copy of `in`; set out->value). The first
 * record of a key becomes its value unchanged.
 */
typedef int (*eddy_reduce_fn)(eddy_ctx_t *ctx, const eddy_record_t *acc,
                              const eddy_record_t *in, eddy_record_t *out,
                              void *opaque);

/**
 * Generator: fill `out` with the record number `index` (0-based, global across
 * subtasks). Use scratch memory for the bytes.
 */
typedef int (*eddy_generator_fn)(eddy_ctx_t *ctx, uint64_t index,
                                 eddy_record_t *out, void *opaque);

/**
 * An aggregate function with a fixed-size accumulator kept per key.
 *
 * - init: set up a fresh accumulator (acc_size bytes, zeroed before the call).
 * - add: fold one record into the accumulator.
 * - result: set out->value (and out->value_len) from the accumulator; `out`
 *   starts as a copy of the input record, with its key.
 *
 * Accumulators are plain bytes: they are copied, snapshotted and restored by
 * the engine, so they must not contain pointers.
 */
typedef struct eddy_aggregate {
    size_t acc_size;
    void (*init)(void *acc, void *opaque);
    int (*add)(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
               void *opaque);
    int (*result)(eddy_ctx_t *ctx, const void *acc, eddy_record_t *out,
                  void *opaque);
    void *opaque;
    /* Optional: fold accumulator `other` into `acc`. Lets sliding windows
     * share work between overlapping windows and session windows merge;
     * without it they keep one accumulator per window. */
    int (*merge)(eddy_ctx_t *ctx, void *acc, const void *other, void *opaque);
} eddy_aggregate_t;

/**
 * Built-in aggregates. Their results are host-order int64 values (8 bytes);
 * read them with eddy_record_value_i64(). The sum/min/max variants read each
 * input value with eddy_record_value_i64().
 */
EDDY_EXPORT const eddy_aggregate_t *eddy_agg_count(void);
EDDY_EXPORT const eddy_aggregate_t *eddy_agg_sum_i64(void);
EDDY_EXPORT const eddy_aggregate_t *eddy_agg_min_i64(void);
EDDY_EXPORT const eddy_aggregate_t *eddy_agg_max_i64(void);

/* ------------------------------------------------------------------------ */
/* Environment                                                              */
/* ------------------------------------------------------------------------ */

/**
 * @brief Creates an environment for building (and, in-process, running) a job.
 * @returns a new environment; never NULL (aborts on out of memory).
 */
EDDY_EXPORT eddy_env_t *eddy_env_new(void);

/** @brief Destroys an environment and every stream built on it. NULL is a
 * no-op. */
EDDY_EXPORT void eddy_env_destroy(eddy_env_t *env);

/** @brief Sets the job name (default: the EDDY_JOB name, or "job"). */
EDDY_EXPORT void eddy_env_set_name(eddy_env_t *env, const char *name);

/**
 * @brief Sets the default parallelism of operators that do not set their own.
 * Overrides the `-p` flag of `eddy run` when called from a job. Default 1.
 */
EDDY_EXPORT void eddy_env_set_parallelism(eddy_env_t *env, int parallelism);

/**
 * @brief Sets the number of key groups (default 128, at most 32768). It bounds
 * the parallelism of keyed operators and must stay fixed for a job's life.
 */
EDDY_EXPORT void eddy_env_set_max_parallelism(eddy_env_t *env, int max_par);

/**
 * @brief Sets the network buffer size in bytes (default 32768, 4096..1048576).
 */
EDDY_EXPORT void eddy_env_set_buffer_size(eddy_env_t *env, size_t size);

/**
 * @brief Sets how many full buffers a channel may hold before its sender
 * blocks (back pressure). Default 4, at least 1.
 */
EDDY_EXPORT void eddy_env_set_channel_capacity(eddy_env_t *env, int buffers);

/**
 * @brief Takes a checkpoint every `interval_ms` (at least 10): barriers flow
 * with the records, every operator's state is saved, and after a failure the
 * job restarts from the latest completed checkpoint with exactly-once state.
 * `eddy run --checkpoint-interval` overrides it. Default: off.
 */
EDDY_EXPORT void eddy_env_enable_checkpointing(eddy_env_t *env,
                                               int64_t interval_ms);

/**
 * @brief Records a graph-building error (printf format). The first error
 * wins; building continues (all builders accept NULL streams) and the job is
 * rejected with this message. Returns EDDY_ERR_INVALID for convenience.
 */
EDDY_EXPORT int eddy_env_fail(eddy_env_t *env, const char *fmt, ...)
    EDDY_PRINTF_LIKE(2, 3);

/**
 * @brief Runs the job in this process and waits until it finishes.
 *
 * Bounded jobs finish when every source is exhausted; unbounded ones run until
 * a user function fails or eddy_env_cancel() is called from another thread.
 * The environment may be executed once.
 *
 * @returns 0, or a negative eddy_err_t with details in `err` (may be NULL).
 */
EDDY_EXPORT int eddy_env_execute(eddy_env_t *env, eddy_error_t *err);

/**
 * @brief Asks a running eddy_env_execute() to stop; it then returns
 * EDDY_ERR_CANCELED. Safe from any thread and from signal handlers.
 */
EDDY_EXPORT void eddy_env_cancel(eddy_env_t *env);

/* ------------------------------------------------------------------------ */
/* Sources                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * @brief A bounded source emitting a copy of `records` (copied now).
 * Default parallelism 1 (emission order preserved); with parallelism N,
 * subtask i emits the records at indexes i, i+N, ...
 */
EDDY_EXPORT eddy_stream_t *eddy_source_collection(eddy_env_t *env,
                                                  const eddy_record_t *records,
                                                  size_t count);

/** @brief Convenience: a collection of value-only records from C strings. */
EDDY_EXPORT eddy_stream_t *
eddy_source_strings(eddy_env_t *env, const char *const *strings, size_t count);

/**
 * @brief A source calling `fn` to generate records 0..count-1.
 *
 * @param count  number of records in total, or 0 for an unbounded stream.
 * @param rate   records per second in total (split across subtasks), or 0
 *               for as fast as possible.
 * Subtask i of N generates the indexes i, i+N, i+2N, ...
 */
EDDY_EXPORT eddy_stream_t *eddy_source_generator(eddy_env_t *env,
                                                 uint64_t count, double rate,
                                                 eddy_generator_fn fn,
                                                 void *opaque);

/**
 * @brief A source emitting the lines of a text file (without the line
 * terminator; a trailing '\r' is removed too) as value-only records.
 * With parallelism N the file is split into N byte ranges; each line is read
 * by the subtask whose range contains the line's first byte. A missing or
 * unreadable file fails the job with the path and the reason.
 */
EDDY_EXPORT eddy_stream_t *eddy_source_text_file(eddy_env_t *env,
                                                 const char *path);

/**
 * @brief A bounded source over in-memory partitions, like the partitions of
 * a Kafka topic (for tests and demos). Partition k holds `counts[k]` records
 * from `partitions[k]` (copied now; a partition may be empty, and NULL when
 * its count is 0).
 *
 * Partition k is read by subtask k % parallelism (default: the environment's
 * parallelism); a subtask with no partition ends at once. A subtask
 * interleaves its partitions round robin, one record at a time, so records
 * of one partition keep their order but timestamps are out of order across
 * partitions. Without eddy_source_with_watermarks the records keep their
 * timestamps and the source emits no watermark but the final one.
 */
EDDY_EXPORT eddy_stream_t *
eddy_source_partitions(eddy_env_t *env, const eddy_record_t *const *partitions,
                       const size_t *counts, size_t npartitions);

/* ------------------------------------------------------------------------ */
/* Transformations                                                          */
/* ------------------------------------------------------------------------ */

EDDY_EXPORT eddy_stream_t *eddy_map(eddy_stream_t *in, eddy_map_fn fn,
                                    void *opaque);
EDDY_EXPORT eddy_stream_t *eddy_filter(eddy_stream_t *in, eddy_filter_fn fn,
                                       void *opaque);
EDDY_EXPORT eddy_stream_t *eddy_flat_map(eddy_stream_t *in, eddy_flat_map_fn fn,
                                         void *opaque);

/**
 * @brief Partitions the stream by key: every record gets the key `fn` selects,
 * and all records with equal keys go to the same subtask of the next operator
 * (by key group, see docs/architecture.md). Pass fn == NULL to key by the key
 * the records already carry.
 */
EDDY_EXPORT eddy_stream_t *eddy_key_by(eddy_stream_t *in, eddy_key_fn fn,
                                       void *opaque);

/**
 * @brief Running reduce on a keyed stream: emits the key's new value after
 * every record.
 */
EDDY_EXPORT eddy_stream_t *eddy_reduce(eddy_stream_t *keyed, eddy_reduce_fn fn,
                                       void *opaque);

/**
 * @brief Running aggregate on a keyed stream: emits the key's result after
 * every record. `agg` is copied.
 */
EDDY_EXPORT eddy_stream_t *eddy_aggregate(eddy_stream_t *keyed,
                                          const eddy_aggregate_t *agg);

/**
 * @brief Merges streams of the same environment. Record order is kept per
 * input, not across inputs.
 */
EDDY_EXPORT eddy_stream_t *eddy_union(eddy_stream_t *a, eddy_stream_t *b);

/** @brief Sends records round robin to all subtasks of the next operator. */
EDDY_EXPORT eddy_stream_t *eddy_rebalance(eddy_stream_t *in);
/** @brief Sends every record to every subtask of the next operator. */
EDDY_EXPORT eddy_stream_t *eddy_broadcast(eddy_stream_t *in);
/**
 * @brief Sends subtask i's records to subtask i of the next operator; the
 * next operator must have the same parallelism.
 */
EDDY_EXPORT eddy_stream_t *eddy_forward(eddy_stream_t *in);

/* ------------------------------------------------------------------------ */
/* Event time: timestamps and watermarks                                    */
/* ------------------------------------------------------------------------ */

/** Default bound of bounded out-of-orderness watermarks (5 s). */
#define EDDY_DEFAULT_OUT_OF_ORDERNESS_MS 5000
/** Default interval of periodic watermark emission (200 ms). */
#define EDDY_DEFAULT_WATERMARK_INTERVAL_MS 200

/**
 * Extracts a record's event timestamp (ms since the epoch). `prev` is the
 * timestamp the record already carries (or EDDY_TS_NONE).
 */
typedef int64_t (*eddy_timestamp_fn)(eddy_ctx_t *ctx, const eddy_record_t *rec,
                                     int64_t prev, void *opaque);

/**
 * Custom watermark generators. `state` is `state_size` bytes per subtask,
 * zeroed at start. on_event sees every record after its timestamp is
 * assigned and may return a watermark to emit at once (punctuated
 * watermarks), or EDDY_TS_NONE. on_periodic is called every watermark
 * interval and returns the current watermark, or EDDY_TS_NONE.
 * Watermarks that do not advance are dropped.
 */
typedef int64_t (*eddy_wm_on_event_fn)(void *state, const eddy_record_t *rec,
                                       void *opaque);
typedef int64_t (*eddy_wm_on_periodic_fn)(void *state, void *opaque);

typedef enum eddy_watermark_kind {
    EDDY_WATERMARKS_BOUNDED = 0, /* max timestamp - bound - 1 */
    EDDY_WATERMARKS_MONOTONOUS,  /* max timestamp - 1 */
    EDDY_WATERMARKS_CUSTOM,      /* on_event / on_periodic */
} eddy_watermark_kind_t;

/**
 * How a stream's timestamps and watermarks are made. Build one with
 * eddy_watermarks_bounded(), _monotonous() or _custom(), then set the
 * optional fields:
 *
 *     eddy_watermark_strategy_t ws = eddy_watermarks_bounded(5000);
 *     ws.timestamp = my_ts;          // default: keep the record's timestamp
 *     ws.idleness_ms = 10000;        // default 0: never idle
 *     stream = eddy_assign_timestamps(stream, &ws);
 */
typedef struct eddy_watermark_strategy {
    eddy_watermark_kind_t kind;
    int64_t max_out_of_orderness_ms; /* BOUNDED */
    /* Marks the stream idle after this long (processing time) without
     * records, so it does not hold back downstream event time. 0 = never. */
    int64_t idleness_ms;
    eddy_timestamp_fn timestamp; /* NULL: records must carry timestamps */
    void *timestamp_opaque;
    eddy_wm_on_event_fn on_event;       /* CUSTOM (optional) */
    eddy_wm_on_periodic_fn on_periodic; /* CUSTOM (optional) */
    size_t state_size;                  /* CUSTOM */
    void *opaque;                       /* CUSTOM */
} eddy_watermark_strategy_t;

EDDY_EXPORT eddy_watermark_strategy_t eddy_watermarks_bounded(int64_t max_ms);
EDDY_EXPORT eddy_watermark_strategy_t eddy_watermarks_monotonous(void);
EDDY_EXPORT eddy_watermark_strategy_t eddy_watermarks_custom(
    eddy_wm_on_event_fn on_event, eddy_wm_on_periodic_fn on_periodic,
    size_t state_size, void *opaque);

/**
 * @brief Assigns timestamps and generates watermarks (chained after its
 * input). Watermarks arriving from upstream are replaced by this strategy's,
 * except the final one at the end of a bounded input. Periodic watermarks are
 * emitted every eddy_env_set_watermark_interval() ms. `ws` is copied.
 */
EDDY_EXPORT eddy_stream_t *
eddy_assign_timestamps(eddy_stream_t *in, const eddy_watermark_strategy_t *ws);

/**
 * @brief Sets the periodic watermark interval in ms (default 200); 0 turns
 * periodic emission off (only punctuated watermarks and the final one).
 */
EDDY_EXPORT void eddy_env_set_watermark_interval(eddy_env_t *env,
                                                 int64_t interval_ms);

/** @brief The current input watermark of the calling operator (ms), or
 * EDDY_TS_NONE before the first one. */
EDDY_EXPORT int64_t eddy_ctx_watermark(const eddy_ctx_t *ctx);

/** @brief Processing time (wall clock, ms since the epoch). */
EDDY_EXPORT int64_t eddy_ctx_processing_time(const eddy_ctx_t *ctx);

/**
 * @brief Makes a source generate timestamps and watermarks itself, per
 * partition, as Flink's WatermarkStrategy given to a source does. `ws` is
 * copied.
 *
 * A partitioned source (eddy_source_partitions, eddy_source_kafka) runs one
 * watermark generator per partition and emits, every watermark interval,
 * the minimum over its partitions: a partition that lags behind holds the
 * subtask's watermark back, so its records are not late. A partition
 * without records for ws->idleness_ms is idle and left out of the minimum
 * until its next record; when all of a subtask's partitions are idle, the
 * subtask's output is idle (downstream does not wait for it). A finished
 * partition no longer holds the watermark back. Punctuated watermarks (custom
 * on_event) apply to the partition of the record; a custom generator's state is
 * per partition.
 *
 * Any other source counts as one partition per subtask: the call then adds
 * eddy_assign_timestamps(source, ws) with the source's parallelism (chained
 * to it) and returns that operator, so set the source's parallelism first.
 *
 * @returns `source` (a partitioned source) or the timestamp assigner; NULL
 *          with an error recorded in the environment if `source` is not a
 *          source, already has a strategy, or `ws` is invalid.
 */
EDDY_EXPORT eddy_stream_t *
eddy_source_with_watermarks(eddy_stream_t *source,
                            const eddy_watermark_strategy_t *ws);

/* ------------------------------------------------------------------------ */
/* Keyed state, timers and process functions                               */
/* ------------------------------------------------------------------------ */

typedef enum eddy_state_kind {
    EDDY_STATE_VALUE,      /* one value per key */
    EDDY_STATE_LIST,       /* a list of values per key */
    EDDY_STATE_MAP,        /* a map (user key -> value) per key */
    EDDY_STATE_REDUCING,   /* one value, combined on add by `reduce` */
    EDDY_STATE_AGGREGATING /* one accumulator, folded on add by `aggregate` */
} eddy_state_kind_t;

/**
 * Describes the byte format of state values (or map keys). State holds bytes;
 * the serializer's name and version are recorded with checkpoints so that a
 * restore with an incompatible format is refused, and `fixed_size` (when
 * non-zero) is checked on every write.
 */
typedef struct eddy_serializer {
    const char *name;
    int version;
    size_t fixed_size;
} eddy_serializer_t;

/** Built-in serializers: raw bytes (the default), int64, double, string. */
EDDY_EXPORT const eddy_serializer_t *eddy_serializer_bytes(void);
EDDY_EXPORT const eddy_serializer_t *eddy_serializer_i64(void);
EDDY_EXPORT const eddy_serializer_t *eddy_serializer_f64(void);
EDDY_EXPORT const eddy_serializer_t *eddy_serializer_string(void);

/** Declares a keyed state (see eddy_declare_state). */
typedef struct eddy_state_desc {
    const char *name; /* unique within the operator */
    eddy_state_kind_t kind;
    const eddy_serializer_t *serializer;     /* values; NULL = bytes */
    const eddy_serializer_t *key_serializer; /* MAP keys; NULL = bytes */
    /* Time to live in ms of processing time, measured from the last write;
     * expired state reads as absent and is cleaned up. 0 = forever. */
    int64_t ttl_ms;
    eddy_reduce_fn reduce;             /* REDUCING */
    void *reduce_opaque;               /* REDUCING */
    const eddy_aggregate_t *aggregate; /* AGGREGATING (copied) */
} eddy_state_desc_t;

/**
 * @brief Declares a keyed state on a keyed operator (eddy_process,
 * eddy_co_process). Call it while building the graph.
 * @returns the state's id (0, 1, ... in declaration order), used by the
 *          state functions at run time; -1 on error (recorded in the env).
 */
EDDY_EXPORT int eddy_declare_state(eddy_stream_t *op,
                                   const eddy_state_desc_t *desc);

/*
 * State access, from a keyed process function (record or timer callback):
 * every call works on the state of the current key. Return values: 0 (or 1
 * for "found") on success, a negative eddy_err_t on misuse (wrong kind, no
 * keyed context) or out of memory. Bytes returned stay valid until the next
 * call that changes the same state.
 */
EDDY_EXPORT int eddy_value_get(eddy_ctx_t *ctx, int state, const void **value,
                               size_t *len);
EDDY_EXPORT int eddy_value_set(eddy_ctx_t *ctx, int state, const void *value,
                               size_t len);
EDDY_EXPORT int eddy_state_clear(eddy_ctx_t *ctx, int state);

/** Iterates list or map state (filled by eddy_list_iter / eddy_map_iter). */
typedef struct eddy_state_iter {
    void *impl[6];
} eddy_state_iter_t;

EDDY_EXPORT int eddy_list_add(eddy_ctx_t *ctx, int state, const void *value,
                              size_t len);
/** @returns 1 if the list has elements (then iterate), 0 if empty. */
EDDY_EXPORT int eddy_list_iter(eddy_ctx_t *ctx, int state,
                               eddy_state_iter_t *it);
/** @returns 1 with the next element, 0 at the end. */
EDDY_EXPORT int eddy_list_next(eddy_state_iter_t *it, const void **value,
                               size_t *len);

EDDY_EXPORT int eddy_map_put(eddy_ctx_t *ctx, int state, const void *key,
                             size_t key_len, const void *value, size_t len);
/** @returns 1 and the value if the map has the key, 0 if not. */
EDDY_EXPORT int eddy_map_get(eddy_ctx_t *ctx, int state, const void *key,
                             size_t key_len, const void **value, size_t *len);
EDDY_EXPORT int eddy_map_remove(eddy_ctx_t *ctx, int state, const void *key,
                                size_t key_len);
EDDY_EXPORT int eddy_map_iter(eddy_ctx_t *ctx, int state,
                              eddy_state_iter_t *it);
EDDY_EXPORT int eddy_map_next(eddy_state_iter_t *it, const void **key,
                              size_t *key_len, const void **value, size_t *len);

/** REDUCING: combines `value` into the state with the declared reduce
 * function (read the result with eddy_value_get). */
EDDY_EXPORT int eddy_reducing_add(eddy_ctx_t *ctx, int state, const void *value,
                                  size_t len);
/** AGGREGATING: folds a record into the accumulator. */
EDDY_EXPORT int eddy_aggregating_add(eddy_ctx_t *ctx, int state,
                                     const eddy_record_t *rec);
/** AGGREGATING: the aggregate's result; `out` gets the value (1), or 0 if
 * the key has no accumulator. */
EDDY_EXPORT int eddy_aggregating_get(eddy_ctx_t *ctx, int state,
                                     eddy_record_t *out);

/** The key of the record or timer being processed (NULL outside keyed
 * operators). */
EDDY_EXPORT const void *eddy_ctx_key(const eddy_ctx_t *ctx, size_t *len);

typedef enum eddy_time_domain {
    EDDY_EVENT_TIME,
    EDDY_PROCESSING_TIME
} eddy_time_domain_t;

/**
 * Timers of the current key: an event-time timer fires once the watermark
 * reaches `ts`, a processing-time timer once the wall clock does. The same
 * timer registered twice fires once; deleting an absent timer does nothing.
 */
EDDY_EXPORT int eddy_timer_register(eddy_ctx_t *ctx, eddy_time_domain_t domain,
                                    int64_t ts);
EDDY_EXPORT int eddy_timer_delete(eddy_ctx_t *ctx, eddy_time_domain_t domain,
                                  int64_t ts);

/**
 * A keyed process function: `process` sees every record of a keyed stream,
 * `on_timer` every timer the function registered (with the timer's key as
 * the current key). Both emit through `out`. Either may be NULL except
 * `process`.
 */
typedef struct eddy_process_fn {
    int (*process)(eddy_ctx_t *ctx, const eddy_record_t *in,
                   eddy_collector_t *out, void *opaque);
    int (*on_timer)(eddy_ctx_t *ctx, int64_t ts, eddy_time_domain_t domain,
                    eddy_collector_t *out, void *opaque);
    void *opaque;
} eddy_process_fn_t;

/** @brief Runs a process function on a keyed stream. `fn` is copied. */
EDDY_EXPORT eddy_stream_t *eddy_process(eddy_stream_t *keyed,
                                        const eddy_process_fn_t *fn);

/**
 * A co-process function over two keyed streams (eddy_co_process): process1
 * sees the first input, process2 the second; they share the keyed state and
 * timers of the key.
 */
typedef struct eddy_co_process_fn {
    int (*process1)(eddy_ctx_t *ctx, const eddy_record_t *in,
                    eddy_collector_t *out, void *opaque);
    int (*process2)(eddy_ctx_t *ctx, const eddy_record_t *in,
                    eddy_collector_t *out, void *opaque);
    int (*on_timer)(eddy_ctx_t *ctx, int64_t ts, eddy_time_domain_t domain,
                    eddy_collector_t *out, void *opaque);
    void *opaque;
} eddy_co_process_fn_t;

/** @brief Connects two keyed streams into one keyed co-process operator. */
EDDY_EXPORT eddy_stream_t *eddy_co_process(eddy_stream_t *keyed1,
                                           eddy_stream_t *keyed2,
                                           const eddy_co_process_fn_t *fn);

/**
 * @brief Declares (or finds) the side output `name` of an operator and returns
 * the stream of the records emitted to it, to which operators and sinks can
 * be attached like to any stream.
 */
EDDY_EXPORT eddy_stream_t *eddy_side_output(eddy_stream_t *op,
                                            const char *name);
/**
 * @brief The id of an operator's side output `name` (declaring it), for
 * eddy_collect_side. -1 on error.
 */
EDDY_EXPORT int eddy_side_output_id(eddy_stream_t *op, const char *name);
/** @brief Emits a record to the side output with id `tag`. */
EDDY_EXPORT int eddy_collect_side(eddy_ctx_t *ctx, int tag,
                                  const eddy_record_t *rec);

/* ------------------------------------------------------------------------ */
/* Windows                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum eddy_window_kind {
    EDDY_WINDOW_TUMBLING,       /* fixed size, no overlap */
    EDDY_WINDOW_SLIDING,        /* fixed size, a new window every slide */
    EDDY_WINDOW_SESSION,        /* per key, closed by a gap of inactivity */
    EDDY_WINDOW_GLOBAL,         /* one window per key; fires by trigger only */
    EDDY_WINDOW_COUNT_TUMBLING, /* every `count` records of a key */
    EDDY_WINDOW_COUNT_SLIDING   /* the last `count` records, every `slide` */
} eddy_window_kind_t;

typedef enum eddy_trigger_kind {
    EDDY_TRIGGER_DEFAULT,         /* the window kind's natural trigger */
    EDDY_TRIGGER_EVENT_TIME,      /* fire when the watermark passes the end */
    EDDY_TRIGGER_PROCESSING_TIME, /* fire when the clock passes the end */
    EDDY_TRIGGER_COUNT            /* fire every trigger_count records */
} eddy_trigger_kind_t;

/**
 * A window definition. Build it with eddy_window_tumbling() and friends,
 * then adjust fields:
 *
 *     eddy_window_spec_t w = eddy_window_sliding(30000, 10000);
 *     w.allowed_lateness_ms = 5000;
 *     w.late_output = "late";       // late records to a side output
 */
typedef struct eddy_window_spec {
    eddy_window_kind_t kind;
    eddy_time_domain_t domain; /* event time (default) or processing time */
    int64_t size_ms;           /* TUMBLING, SLIDING */
    int64_t slide_ms;          /* SLIDING */
    int64_t offset_ms;         /* TUMBLING, SLIDING: shifts window starts */
    int64_t gap_ms;            /* SESSION */
    uint64_t count;            /* COUNT_*: window size in records */
    uint64_t count_slide;      /* COUNT_SLIDING */
    eddy_trigger_kind_t trigger;
    uint64_t trigger_count; /* EDDY_TRIGGER_COUNT */
    bool purging;           /* clear the window's contents after each firing */
    /* Event time: records up to this much behind the watermark still update
     * their windows (a late firing emits the updated result). */
    int64_t allowed_lateness_ms;
    /* Records later than that go to this side output of the window
     * operator, or are dropped and counted when NULL. */
    const char *late_output;
} eddy_window_spec_t;

EDDY_EXPORT eddy_window_spec_t eddy_window_tumbling(int64_t size_ms);
EDDY_EXPORT eddy_window_spec_t eddy_window_sliding(int64_t size_ms,
                                                   int64_t slide_ms);
EDDY_EXPORT eddy_window_spec_t eddy_window_session(int64_t gap_ms);
EDDY_EXPORT eddy_window_spec_t eddy_window_global(void);
EDDY_EXPORT eddy_window_spec_t eddy_window_count(uint64_t count);
EDDY_EXPORT eddy_window_spec_t eddy_window_count_sliding(uint64_t count,
                                                         uint64_t slide);

/** A time window [start, end): its records have start <= ts < end. */
typedef struct eddy_window {
    int64_t start;
    int64_t end;
} eddy_window_t;

/** @brief The window being emitted, inside window functions (aggregate
 * result, reduce, process); NULL elsewhere. Count and global windows report
 * start = INT64_MIN, end = INT64_MAX. */
EDDY_EXPORT const eddy_window_t *eddy_ctx_window(const eddy_ctx_t *ctx);

/** The records of a window, for process window functions. */
typedef struct eddy_window_elements eddy_window_elements_t;
/** @returns 1 with the next record of the window, 0 at the end. */
EDDY_EXPORT int eddy_window_elements_next(eddy_window_elements_t *it,
                                          eddy_record_t *rec);

/** A process window function: sees all records of one key's window. */
typedef int (*eddy_window_process_fn)(eddy_ctx_t *ctx,
                                      const eddy_window_t *window,
                                      eddy_window_elements_t *elements,
                                      eddy_collector_t *out, void *opaque);

/**
 * Window operators on a keyed stream. Results are emitted when the trigger
 * fires, as records with the key, the result value and the timestamp
 * end - 1 (time windows). Reduce and aggregate keep one value per window
 * (sliding windows share per-slice partial results); process keeps the
 * records.
 */
EDDY_EXPORT eddy_stream_t *eddy_window_reduce(eddy_stream_t *keyed,
                                              const eddy_window_spec_t *w,
                                              eddy_reduce_fn fn, void *opaque);
EDDY_EXPORT eddy_stream_t *eddy_window_aggregate(eddy_stream_t *keyed,
                                                 const eddy_window_spec_t *w,
                                                 const eddy_aggregate_t *agg);
EDDY_EXPORT eddy_stream_t *eddy_window_process(eddy_stream_t *keyed,
                                               const eddy_window_spec_t *w,
                                               eddy_window_process_fn fn,
                                               void *opaque);

/** @brief Records a window or join operator dropped as late (those not sent
 * to a late output), summed over its subtasks; read it after the job ran. */
EDDY_EXPORT uint64_t eddy_late_records_dropped(eddy_stream_t *window_op);

/* ------------------------------------------------------------------------ */
/* Joins                                                                    */
/* ------------------------------------------------------------------------ */

/**
 * Join function: called for every matching pair (left from the first
 * stream, right from the second, same key); emit results through `out`.
 */
typedef int (*eddy_join_fn)(eddy_ctx_t *ctx, const eddy_record_t *left,
                            const eddy_record_t *right, eddy_collector_t *out,
                            void *opaque);

/**
 * @brief Interval join of two keyed streams in event time: pairs with
 * left.ts + lower_ms <= right.ts <= left.ts + upper_ms. State for a record is
 * dropped once the watermark makes further matches impossible.
 */
EDDY_EXPORT eddy_stream_t *
eddy_interval_join(eddy_stream_t *left, eddy_stream_t *right, int64_t lower_ms,
                   int64_t upper_ms, eddy_join_fn fn, void *opaque);

/**
 * @brief Window join of two keyed streams: every pair of records with the
 * same key in the same window (tumbling or sliding; event or processing
 * time) is joined when the window fires. Allowed lateness re-fires a window
 * with all its records; records late for all their windows are dropped, or
 * sent to `late_output`.
 */
EDDY_EXPORT eddy_stream_t *eddy_window_join(eddy_stream_t *left,
                                            eddy_stream_t *right,
                                            const eddy_window_spec_t *w,
                                            eddy_join_fn fn, void *opaque);

/* ------------------------------------------------------------------------ */
/* Kafka                                                                    */
/* ------------------------------------------------------------------------ */

/** Where a Kafka source starts reading partitions it has no checkpointed
 * offset for. */
typedef enum eddy_kafka_start {
    EDDY_KAFKA_START_EARLIEST = 0, /* the oldest record kept (default) */
    EDDY_KAFKA_START_LATEST,       /* only records produced after the start */
    /* The offsets committed by `group_id`; partitions without one follow
     * the librdkafka property auto.offset.reset (default here: earliest;
     * "error" fails the job). */
    EDDY_KAFKA_START_GROUP_OFFSETS,
    /* The first record with a timestamp >= start_ts (Kafka's
     * offsets-for-times lookup); partitions without one start at their
     * end. */
    EDDY_KAFKA_START_TIMESTAMP
} eddy_kafka_start_t;

/** What a Kafka source's records hold. */
typedef enum eddy_kafka_format {
    /* key = the message key, value = the message value, unchanged. */
    EDDY_KAFKA_RAW = 0,
    /* As RAW, but a value that is not one JSON text (RFC 8259, UTF-8) is
     * skipped and counted (eddy_kafka_malformed_records); so is a null
     * value (a tombstone). */
    EDDY_KAFKA_JSON,
    /* key = the message key; value = a JSON object describing the message:
     *   {"topic":"t","partition":0,"offset":42,"timestamp":1700000000000,
     *    "timestamp_type":"create","key":"k","value":"v",
     *    "headers":{"name":"value",...}}
     * Byte strings (key, value, header values) are JSON strings when they
     * are valid UTF-8, null when absent, and {"base64":"..."} otherwise.
     * "timestamp" and "timestamp_type" ("create" or "log_append") are null
     * when the broker gave none. A header name that occurs several times
     * appears several times, in order. */
    EDDY_KAFKA_ENVELOPE
} eddy_kafka_format_t;

/**
 * Options of eddy_source_kafka. Zero-initialise, then set at least
 * `bootstrap` and `topic`:
 *
 *     eddy_kafka_source_opts_t o = {0};
 *     o.bootstrap = "127.0.0.1:9092";
 *     o.topic = "orders";
 *     o.group_id = "orders-job";      // offsets are committed there
 */
typedef struct eddy_kafka_source_opts {
    /** Brokers to bootstrap from: "host:port[,host:port...]". */
    const char *bootstrap;
    /** A topic, or several separated by commas ("a,b,c"). */
    const char *topic;
    /** Consumer group that receives the offsets of completed checkpoints
     * (for monitoring and EDDY_KAFKA_START_GROUP_OFFSETS); NULL: none. The
     * source never joins the group: partitions are assigned by eddy. */
    const char *group_id;
    eddy_kafka_start_t start;
    /** EDDY_KAFKA_START_TIMESTAMP: ms since the epoch. */
    int64_t start_ts;
    eddy_kafka_format_t format;
    /** Extra librdkafka consumer properties as key, value pairs, ended by
     * NULL: {"fetch.wait.max.ms", "50", "security.protocol", "ssl", NULL}.
     * Unknown keys and bad values are graph-building errors. The source
     * owns bootstrap.servers, group.id, enable.auto.commit,
     * enable.auto.offset.store and enable.partition.eof. */
    const char *const *props;
    /** Stop at the end offsets found when the subtask starts (tests,
     * backfills); false: read until the job is canceled. */
    bool bounded;
    /** How long a subtask waits at start for the cluster's metadata before
     * failing the job with an error naming `bootstrap`; 0: 10000 ms. */
    int64_t connect_timeout_ms;
} eddy_kafka_source_opts_t;

/**
 * @brief A source reading Kafka topics through librdkafka. Strings in
 * `opts` are copied.
 *
 * Records carry the message key, the value (per `opts->format`) and the
 * message timestamp as event timestamp (EDDY_TS_NONE if it has none).
 *
 * Partitions are assigned by eddy, never by a consumer-group rebalance:
 * partition p of topic T is read by subtask (h(T) + p) % parallelism, h
 * being a stable hash, so every subtask reads a fixed set of partitions and
 * a subtask reads its partitions in offset order. The partitions a topic
 * has when a subtask starts are read (partitions added later are not).
 * Default parallelism: the environment's.
 *
 * With checkpointing, every checkpoint stores each partition's next offset
 * (operator list state, union redistribution); a restore, also at another
 * parallelism, resumes every partition exactly there, and partitions the
 * checkpoint does not know start per `opts->start`. When a checkpoint
 * completes, its offsets are committed to `group_id` (asynchronously; a
 * failed commit is counted, never fatal: the checkpoint holds the truth).
 *
 * Watermarks: eddy_source_with_watermarks() gives the source per-partition
 * watermark generators (the subtask emits the minimum over its partitions;
 * idleness as documented there).
 *
 * Errors: a cluster that cannot be reached within `connect_timeout_ms`, a
 * topic that does not exist, or an unrecoverable consumer error fails the
 * job with a message naming the bootstrap servers or the topic.
 *
 * @returns the source; NULL with an error recorded in the environment when
 *          an option is invalid.
 */
EDDY_EXPORT eddy_stream_t *
eddy_source_kafka(eddy_env_t *env, const eddy_kafka_source_opts_t *opts);

/** @brief Records a Kafka source skipped as malformed (EDDY_KAFKA_JSON),
 * summed over its subtasks; 0 for other streams. */
EDDY_EXPORT uint64_t eddy_kafka_malformed_records(eddy_stream_t *source);

/* ------------------------------------------------------------------------ */
/* Kafka sink                                                               */
/* ------------------------------------------------------------------------ */

/** Delivery guarantee of eddy_sink_kafka. */
typedef enum eddy_kafka_guarantee {
    /* Every record reaches the topic at least once: a checkpoint waits
     * until everything produced before its barrier is acknowledged. A
     * restore may send records again. (Default.) */
    EDDY_KAFKA_AT_LEAST_ONCE = 0,
    /* Every record is committed exactly once, in Kafka transactions, when
     * the checkpoint that covers it completes (see eddy_sink_kafka). */
    EDDY_KAFKA_EXACTLY_ONCE,
    /* Produce and forget: records can be lost on failure. */
    EDDY_KAFKA_NONE
} eddy_kafka_guarantee_t;

/** Default bound of the records an exactly-once Kafka sink subtask holds
 * between checkpoints (64 MiB). */
#define EDDY_KAFKA_DEFAULT_MAX_STAGED ((size_t)64 * 1024 * 1024)

/**
 * Options of eddy_sink_kafka. Zero-initialise, then set at least
 * `bootstrap` and `topic`:
 *
 *     eddy_kafka_sink_opts_t o = {0};
 *     o.bootstrap = "127.0.0.1:9092";
 *     o.topic = "totals";
 *     o.guarantee = EDDY_KAFKA_EXACTLY_ONCE;
 *     o.transactional_id_prefix = "totals-job";
 */
typedef struct eddy_kafka_sink_opts {
    /** Brokers to bootstrap from: "host:port[,host:port...]". */
    const char *bootstrap;
    /** The topic records are written to. */
    const char *topic;
    eddy_kafka_guarantee_t guarantee;
    /** EXACTLY_ONCE: subtask i of the sink with uid U uses the Kafka
     * transactional id "<prefix>-<U>-<i>". Two running jobs must not share
     * a prefix and uid (they would fence each other); a job restored from a
     * checkpoint or savepoint must keep them. NULL: "eddy-<job name>". */
    const char *transactional_id_prefix;
    /** EXACTLY_ONCE: the topic of the commit markers; NULL:
     * "<topic>.eddy-commits". It must keep its records as long as a
     * checkpoint may be restored: make it a compacted topic (markers are
     * keyed so that compaction keeps what recovery needs). */
    const char *marker_topic;
    /** EXACTLY_ONCE: the most bytes of records a subtask may hold between
     * checkpoints (they are kept in memory and in the checkpoint until
     * committed); more fails the job. 0: EDDY_KAFKA_DEFAULT_MAX_STAGED. */
    size_t max_staged_bytes;
    /** Extra librdkafka producer properties as key, value pairs, ended by
     * NULL: {"linger.ms", "20", "compression.type", "lz4", NULL}. Unknown
     * keys and bad values are graph-building errors. The sink owns
     * bootstrap.servers and transactional.id. */
    const char *const *props;
} eddy_kafka_sink_opts_t;

/**
 * @brief Writes every record to a Kafka topic through librdkafka: the
 * record's key is the message key (a record without key gives a message
 * without key), its value the message value (never null), its timestamp the
 * message timestamp (EDDY_TS_NONE: the time it is sent). Strings in `opts`
 * are copied. Default parallelism: the environment's.
 *
 * EXACTLY_ONCE needs checkpointing. Records are held back (in memory, and
 * in each checkpoint) until the checkpoint whose barrier follows them
 * completes; then the subtask commits them in one Kafka transaction
 * together with a marker record in the marker topic naming what was
 * committed. After a failure the restored checkpoint holds every batch that
 * may not be committed yet; the sink fences the old producers, reads the
 * marker topic, and commits exactly the batches no marker names. Consumers
 * must read with isolation.level=read_committed. At the end of a bounded
 * input the remaining records are committed at once. Without checkpoints
 * everything is committed at the end, so an unbounded job fails once
 * `max_staged_bytes` is reached.
 *
 * A delivery failure (after librdkafka's retries) fails the job.
 *
 * @returns the sink; NULL with an error recorded in the environment when an
 *          option is invalid.
 */
EDDY_EXPORT eddy_stream_t *eddy_sink_kafka(eddy_stream_t *in,
                                           const eddy_kafka_sink_opts_t *opts);

/* ------------------------------------------------------------------------ */
/* PostgreSQL sink                                                          */
/* ------------------------------------------------------------------------ */

/** Delivery guarantee of eddy_sink_postgres when checkpointing is on. */
typedef enum eddy_pg_guarantee {
    /* One transaction per checkpoint and subtask, prepared (PREPARE
     * TRANSACTION) at the barrier and committed when the checkpoint
     * completes: every record becomes a committed row exactly once, across
     * failures and restores, provided the job's checkpoints are exactly-once
     * too (checkpoint.mode, the default). The server needs
     * max_prepared_transactions > 0. */
    EDDY_PG_EXACTLY_ONCE = 0,
    /* One plain transaction per checkpoint and subtask, committed at the
     * barrier: after a failure, the rows of records replayed from the
     * restored checkpoint are written again. */
    EDDY_PG_AT_LEAST_ONCE
} eddy_pg_guarantee_t;

/** How a record becomes a row when no `to_row` function is given. */
typedef enum eddy_pg_format {
    /* The value is one CSV line (RFC 4180) with one field per column, in
     * `columns` order. An empty unquoted field is SQL NULL and "" the empty
     * string, as in PostgreSQL's COPY ... CSV. */
    EDDY_PG_CSV = 0,
    /* The value is a JSON object whose member "c" gives column c: a string
     * gives its text, a number or boolean its JSON text, an object or array
     * its compact JSON (for json/jsonb columns); null or a missing member
     * gives SQL NULL. Other members are ignored. */
    EDDY_PG_JSON
} eddy_pg_format_t;

/** Value length meaning "NUL-terminated" (see eddy_pg_row_fn). */
#define EDDY_PG_NTS ((size_t)-1)

/**
 * Makes the row of a record. values[i] (initially NULL, which writes SQL
 * NULL) gets column i's value in PostgreSQL's text input form: "42",
 * "2024-05-01 12:00:00+00", "t", "\\x00ff" for bytea. lengths[i] starts as
 * EDDY_PG_NTS (NUL-terminated); set it to use bytes that are not, such as a
 * part of the record. Values may point into the record, static memory or
 * eddy_ctx_scratch() memory: the sink copies them before going on. A value
 * must not contain a NUL byte. Return 0, or fail the job with
 * eddy_ctx_fail().
 */
typedef int (*eddy_pg_row_fn)(eddy_ctx_t *ctx, const eddy_record_t *in,
                              const char **values, size_t *lengths,
                              void *opaque);

/**
 * Options of eddy_sink_postgres. Zero-initialise, then set at least
 * `conninfo`, `table`, `columns` and `ncolumns`:
 *
 *     static const char *const cols[] = {"id", "name", "amount"};
 *     eddy_pg_sink_opts_t o = {0};
 *     o.conninfo = "postgresql://app@db:5432/shop";
 *     o.table = "orders";
 *     o.columns = cols;
 *     o.ncolumns = 3;                   // values are CSV lines "7,ann,9.5"
 */
typedef struct eddy_pg_sink_opts {
    /** A libpq connection string ("postgresql://user@host:5432/db" or
     * "host=... dbname=..."). Messages never show it (it may hold a
     * password); they name the host and port. */
    const char *conninfo;
    /** The table, written as in SQL: "orders", "shop.orders", "\"Orders\"".
     * It must exist when the job starts. */
    const char *table;
    /** Column names, in the order of a row's values. They are quoted
     * identifiers: "Amount" is not amount. */
    const char *const *columns;
    int ncolumns;
    /** Upsert: the columns of a unique constraint, all among `columns`.
     * Rows are then written with INSERT ... ON CONFLICT (keys) DO UPDATE
     * SET (the other columns), and within one transaction the last row of
     * a key wins. Rows of one key must go to one sink subtask (key_by those
     * columns, or parallelism 1). 0: plain inserts (COPY). */
    const char *const *key_columns;
    int nkey_columns;
    eddy_pg_guarantee_t guarantee;
    /** Without `to_row`: the format of record values. */
    eddy_pg_format_t format;
    eddy_pg_row_fn to_row; /* NULL: parse values per `format` */
    void *opaque;          /* passed to to_row */
    /** Upserts: rows per INSERT statement. Without checkpointing: rows per
     * transaction. 0: 1000. */
    size_t batch_rows;
    /** The name in this sink's prepared-transaction ids
     * ("eddy:<name>:<subtask>:<checkpoint>:<job id>"): 1-64 characters of
     * [A-Za-z0-9_.-]. NULL: derived from the operator's uid and the table.
     * Two jobs running at once must not use one name on one database: at
     * start, a sink rolls back prepared transactions of its name that its
     * checkpoint does not know. */
    const char *txn_name;
} eddy_pg_sink_opts_t;

/**
 * @brief Writes every record as a row of a PostgreSQL table through libpq.
 * Strings in `opts` are copied; `opts` may be freed after the call.
 *
 * Every subtask keeps one connection (two when inserting with exactly-once:
 * commits then use a second one, as the first is busy with the next
 * transaction). Inserts are streamed with COPY; upserts go in multi-row
 * INSERT statements of `batch_rows` rows, one statement in flight.
 *
 * Exactly-once (with checkpointing): the rows between barriers n-1 and n
 * form one transaction, prepared at barrier n and committed (COMMIT
 * PREPARED) when checkpoint n completes, together with earlier ones still
 * prepared (those of aborted checkpoints). A restore commits the prepared
 * transactions the checkpoint names and rolls back the sink's other
 * prepared transactions (rows of the failed run, which the sources replay).
 * Upserts: while a subtask's transaction is prepared and its checkpoint not
 * yet complete, new rows wait in memory (they may update rows that
 * transaction holds locked) and rows still waiting at the next barrier are
 * stored in that checkpoint.
 *
 * At-least-once (with checkpointing): transactions are committed at every
 * barrier. Without checkpointing (either guarantee): a transaction is
 * committed every `batch_rows` rows and whenever the subtask goes idle; a
 * failed job leaves the rows written so far.
 *
 * At the end of a bounded input a subtask commits everything at once. If the
 * job then fails before all its tasks have finished, the restart writes that
 * subtask's rows again.
 *
 * Errors fail the job with one message: a record that cannot become a row
 * (to_row failed, malformed CSV/JSON, a NUL byte), an unreachable server or
 * a lost connection (naming host and port), a missing table or column, a
 * value the column rejects, max_prepared_transactions = 0 with
 * exactly-once.
 *
 * @returns the sink; NULL with an error recorded in the environment when an
 *          option is invalid (the server is not contacted until the job
 *          runs).
 */
EDDY_EXPORT eddy_stream_t *eddy_sink_postgres(eddy_stream_t *in,
                                              const eddy_pg_sink_opts_t *opts);

/* ------------------------------------------------------------------------ */
/* Operator settings (return their argument, so they can be nested)         */
/* ------------------------------------------------------------------------ */

/** @brief Sets the operator's name (shown in errors, logs and metrics). */
EDDY_EXPORT eddy_stream_t *eddy_name(eddy_stream_t *s, const char *name);
/**
 * @brief Sets the operator's stable uid, which keys its state in checkpoints
 * and savepoints. Uids must be unique within a job.
 */
EDDY_EXPORT eddy_stream_t *eddy_uid(eddy_stream_t *s, const char *uid);
/** @brief Sets the operator's parallelism (1..max parallelism). */
EDDY_EXPORT eddy_stream_t *eddy_parallelism(eddy_stream_t *s, int parallelism);
/** @brief Never chains this operator with its input (starts a new task). */
EDDY_EXPORT eddy_stream_t *eddy_disable_chaining(eddy_stream_t *s);

/* ------------------------------------------------------------------------ */
/* Sinks (return the sink operator so it can be named)                      */
/* ------------------------------------------------------------------------ */

/**
 * @brief Prints each record's value followed by '\n' to standard output.
 * Lines from parallel subtasks never interleave within a line, and each
 * subtask's lines appear in the order it produced them.
 */
EDDY_EXPORT eddy_stream_t *eddy_sink_print(eddy_stream_t *in);

/**
 * @brief Writes each record's value followed by '\n' to a file. With
 * parallelism 1 `path` is the file; with parallelism N it is a directory that
 * receives files part-0 .. part-(N-1). Existing files are replaced.
 */
EDDY_EXPORT eddy_stream_t *eddy_sink_file(eddy_stream_t *in, const char *path);

/**
 * @brief Writes each record's value followed by '\n' into part files in
 * directory `dir`, exactly once: with checkpointing, a subtask's records
 * between two checkpoints go to a hidden in-progress file that becomes
 * `part-<subtask>-<checkpoint id>` when that checkpoint completes (an atomic
 * rename, redone after a crash if needed), so after any failure and restart
 * the final files hold every record exactly once. Without checkpointing,
 * and at the end of a bounded input, files are committed directly. Files
 * whose names start with '.' are in progress: readers ignore them.
 */
EDDY_EXPORT eddy_stream_t *eddy_sink_part_files(eddy_stream_t *in,
                                                const char *dir);

/** @brief Consumes and drops every record (for benchmarks). */
EDDY_EXPORT eddy_stream_t *eddy_sink_discard(eddy_stream_t *in);

/**
 * @brief Appends a copy of every record to `coll` (for tests and embedding).
 * The collection must outlive the job's execution.
 */
EDDY_EXPORT eddy_stream_t *eddy_sink_collect(eddy_stream_t *in,
                                             eddy_collection_t *coll);

/* ------------------------------------------------------------------------ */
/* Collections (results of eddy_sink_collect)                               */
/* ------------------------------------------------------------------------ */

EDDY_EXPORT eddy_collection_t *eddy_collection_new(void);
EDDY_EXPORT void eddy_collection_destroy(eddy_collection_t *coll);
/** @brief Number of records collected so far. */
EDDY_EXPORT size_t eddy_collection_count(eddy_collection_t *coll);
/**
 * @brief The i-th collected record (in arrival order), or NULL past the end.
 * Records from one subtask keep their order. The pointer stays valid until
 * the collection is destroyed or receives more records (so read results after
 * eddy_env_execute returns); key and value bytes are NUL-terminated copies.
 */
EDDY_EXPORT const eddy_record_t *eddy_collection_get(eddy_collection_t *coll,
                                                     size_t i);

/* ------------------------------------------------------------------------ */
/* The job entry point                                                      */
/* ------------------------------------------------------------------------ */

/** Signature of the function that builds a job's graph. */
typedef int (*eddy_job_build_fn)(eddy_env_t *env, int argc, char **argv);

/** What EDDY_JOB exports; looked up by name when a job is loaded. */
typedef struct eddy_job_entry {
    int abi_version;
    const char *name;
    eddy_job_build_fn build;
} eddy_job_entry_t;

/** Name of the symbol that EDDY_JOB defines. */
#define EDDY_JOB_SYMBOL "eddy_job_entry"

/**
 * Declares a job's entry point. `name` is the default job name; `build` is
 * called with the environment and the program arguments (those after `--` on
 * the `eddy run` command line, argv[0] being the first of them).
 */
#define EDDY_JOB(name, build)                                                  \
    EDDY_EXPORT const eddy_job_entry_t eddy_job_entry = {EDDY_ABI_VERSION,     \
                                                         (name), (build)};

#ifdef __cplusplus
}
#endif

#endif /* EDDY_EDDY_H */
