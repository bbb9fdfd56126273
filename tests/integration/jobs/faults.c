/*
 * faults — a test job that misbehaves in the way its first argument names.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 *   eddy run --local faults.so [-p N] -- MODE [ARG]
 *
 * Modes (the integration tests check what `eddy run` makes of each):
 *   build-fail         the build function reports an error (eddy_env_fail)
 *   build-rc           the build function returns -1 without a message
 *   build-crash        the build function dereferences NULL
 *   map-fail S         operator 'validate' fails with eddy_ctx_fail on the
 *                      first record of subtask S (0-based)
 *   map-rc S           ... returns -1 without a message instead
 *   map-crash S        ... dereferences NULL instead
 *   map-fpe S          ... divides an integer by zero instead
 *   map-overflow S     ... recurses until its stack overflows instead
 *   crash-all          operator 'validate' dereferences NULL in every
 *                      subtask at once
 *   keyed-crash        operator 'summing', a reduce behind key_by, crashes in
 *                      its last subtask
 *   unbounded RATE     an endless generator ("tick N") at RATE records/s,
 *                      printed
 *   unbounded-keyed RATE  the same through key_by and a running count
 *   fail-at N          1000 records/s through operator 'validate', which
 *                      fails on record N (so checkpoints complete first)
 *
 * Failing and crashing graphs end in a discard sink, so that nothing reaches
 * stdout and the tests can assert that eddy's only output is its one-line
 * error on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <eddy/eddy.h>

/* Where the crashing modes write. Volatile, so the compiler cannot see that
 * it is NULL and replace the faulting store with a trap instruction. */
static int *volatile nowhere;

/*
 * The crash must be a real SIGSEGV even in sanitizer builds: UBSan's null
 * check would otherwise report the store and abort first.
 */
#if defined(__GNUC__) || defined(__clang__)
#define NO_UBSAN __attribute__((no_sanitize("undefined")))
#else
#define NO_UBSAN
#endif

NO_UBSAN static void crash(void)
{
    *nowhere = 42;
}

/* Volatile for the same reason: the compiler must emit a real division. */
static volatile int zero;

NO_UBSAN static int divide_by_zero(int x)
{
    return x / zero;
}

/* Never reached; volatile so the compiler cannot prove the recursion
 * infinite (and warn, or turn it into a loop). */
static volatile int bottom = -1;

NO_UBSAN static int recurse(int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    if (depth == bottom) {
        return 0;
    }
    return recurse(depth + 1) + frame[0];
}

/* Which subtask misbehaves (map-* modes). */
static int bad_subtask;

static int gen_index(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                     void *opaque)
{
    (void)opaque;
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    if (v == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    *v = (int64_t)index;
    out->value = v;
    out->value_len = sizeof(*v);
    return 0;
}

static int validate_fail(eddy_ctx_t *ctx, const eddy_record_t *in,
                         eddy_record_t *out, void *opaque)
{
    (void)out;
    (void)opaque;
    if (eddy_ctx_subtask(ctx) == bad_subtask) {
        return eddy_ctx_fail(ctx, "record %lld is not valid: checksum mismatch",
                             (long long)eddy_record_value_i64(in));
    }
    return 0;
}

/* fail-at: bad_subtask holds the record number that fails. */
static int validate_fail_at(eddy_ctx_t *ctx, const eddy_record_t *in,
                            eddy_record_t *out, void *opaque)
{
    (void)out;
    (void)opaque;
    if (eddy_record_value_i64(in) == bad_subtask) {
        return eddy_ctx_fail(ctx, "record %d is not valid", bad_subtask);
    }
    return 0;
}

static int validate_rc(eddy_ctx_t *ctx, const eddy_record_t *in,
                       eddy_record_t *out, void *opaque)
{
    (void)in;
    (void)out;
    (void)opaque;
    return eddy_ctx_subtask(ctx) == bad_subtask ? -1 : 0;
}

static int validate_crash(eddy_ctx_t *ctx, const eddy_record_t *in,
                          eddy_record_t *out, void *opaque)
{
    (void)in;
    (void)out;
    (void)opaque;
    if (eddy_ctx_subtask(ctx) == bad_subtask) {
        crash();
    }
    return 0;
}

static int validate_crash_all(eddy_ctx_t *ctx, const eddy_record_t *in,
                              eddy_record_t *out, void *opaque)
{
    (void)ctx;
    (void)in;
    (void)out;
    (void)opaque;
    crash();
    return 0;
}

static int validate_fpe(eddy_ctx_t *ctx, const eddy_record_t *in,
                        eddy_record_t *out, void *opaque)
{
    (void)out;
    (void)opaque;
    if (eddy_ctx_subtask(ctx) == bad_subtask) {
        return divide_by_zero((int)eddy_record_value_i64(in) + 1);
    }
    return 0;
}

static int validate_overflow(eddy_ctx_t *ctx, const eddy_record_t *in,
                             eddy_record_t *out, void *opaque)
{
    (void)in;
    (void)out;
    (void)opaque;
    if (eddy_ctx_subtask(ctx) == bad_subtask) {
        return recurse(0);
    }
    return 0;
}

static int key_mod(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                   size_t *key_len, void *opaque)
{
    (void)opaque;
    int64_t *k = eddy_ctx_scratch(ctx, sizeof(*k));
    if (k == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    *k = eddy_record_value_i64(in) % 1024;
    *key = k;
    *key_len = sizeof(*k);
    return 0;
}

static int sum_crash(eddy_ctx_t *ctx, const eddy_record_t *acc,
                     const eddy_record_t *in, eddy_record_t *out, void *opaque)
{
    (void)acc;
    (void)in;
    (void)out;
    (void)opaque;
    if (eddy_ctx_subtask(ctx) == eddy_ctx_parallelism(ctx) - 1) {
        crash();
    }
    return 0;
}

static int tick_text(eddy_ctx_t *ctx, const eddy_record_t *in,
                     eddy_record_t *out, void *opaque)
{
    (void)opaque;
    char *line = eddy_ctx_scratch(ctx, 64);
    if (line == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    int n =
        snprintf(line, 64, "tick %lld", (long long)eddy_record_value_i64(in));
    out->value = line;
    out->value_len = (size_t)n;
    return 0;
}

static int parse_int(eddy_env_t *env, int argc, char **argv, int *out)
{
    char *end;
    if (argc < 2) {
        return eddy_env_fail(env, "faults: mode '%s' needs an argument",
                             argv[0]);
    }
    long v = strtol(argv[1], &end, 10);
    if (argv[1][0] == '\0' || *end != '\0' || v < 0 || v > 1000000) {
        return eddy_env_fail(env, "faults: bad argument '%s'", argv[1]);
    }
    *out = (int)v;
    return 0;
}

static int build_map(eddy_env_t *env, eddy_map_fn fn)
{
    eddy_stream_t *src = eddy_name(
        eddy_source_generator(env, 100000, 0, gen_index, NULL), "numbers");
    eddy_stream_t *checked = eddy_name(eddy_map(src, fn, NULL), "validate");
    eddy_sink_discard(checked);
    return 0;
}

static int build_unbounded(eddy_env_t *env, int rate, int keyed)
{
    eddy_stream_t *s = eddy_name(
        eddy_source_generator(env, 0, rate, gen_index, NULL), "ticks");
    if (keyed) {
        s = eddy_name(
            eddy_aggregate(eddy_key_by(s, key_mod, NULL), eddy_agg_count()),
            "count");
    }
    eddy_sink_print(eddy_name(eddy_map(s, tick_text, NULL), "format"));
    return 0;
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    int arg = 0;
    if (argc < 1) {
        return eddy_env_fail(env, "usage: faults.so -- MODE [ARG]");
    }
    const char *mode = argv[0];
    if (strcmp(mode, "build-fail") == 0) {
        return eddy_env_fail(env, "build refused: the table '%s' is missing",
                             "orders_2026");
    }
    if (strcmp(mode, "build-rc") == 0) {
        return -1;
    }
    if (strcmp(mode, "build-crash") == 0) {
        crash();
        return 0;
    }
    if (strcmp(mode, "crash-all") == 0) {
        return build_map(env, validate_crash_all);
    }
    if (strcmp(mode, "keyed-crash") == 0) {
        eddy_stream_t *src = eddy_name(
            eddy_source_generator(env, 100000, 0, gen_index, NULL), "numbers");
        eddy_stream_t *keyed = eddy_key_by(src, key_mod, NULL);
        eddy_sink_discard(
            eddy_name(eddy_reduce(keyed, sum_crash, NULL), "summing"));
        return 0;
    }
    if (parse_int(env, argc, argv, &arg) != 0) {
        return -1;
    }
    bad_subtask = arg;
    if (strcmp(mode, "map-fail") == 0) {
        return build_map(env, validate_fail);
    }
    if (strcmp(mode, "map-rc") == 0) {
        return build_map(env, validate_rc);
    }
    if (strcmp(mode, "map-crash") == 0) {
        return build_map(env, validate_crash);
    }
    if (strcmp(mode, "map-fpe") == 0) {
        return build_map(env, validate_fpe);
    }
    if (strcmp(mode, "map-overflow") == 0) {
        return build_map(env, validate_overflow);
    }
    if (strcmp(mode, "unbounded") == 0) {
        return build_unbounded(env, arg, 0);
    }
    if (strcmp(mode, "fail-at") == 0) {
        eddy_stream_t *src = eddy_name(
            eddy_source_generator(env, 0, 1000, gen_index, NULL), "numbers");
        eddy_sink_discard(
            eddy_name(eddy_map(src, validate_fail_at, NULL), "validate"));
        return 0;
    }
    if (strcmp(mode, "unbounded-keyed") == 0) {
        return build_unbounded(env, arg, 1);
    }
    return eddy_env_fail(env, "faults: unknown mode '%s'", mode);
}

EDDY_JOB("faults", build)
