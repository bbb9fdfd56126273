/*
 * inspect_good — the well-behaved job of the job inspector's tests
 * (tests/unit/jobmanager/test_inspect.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 *   inspect_good.so [-- [NAME [CHECKPOINT_INTERVAL_MS]]]
 *
 * numbers (generator, uid "src") -> by-key (key_by, derived uid) -> sum
 * (reduce, uid "sum") -> out (discard sink, parallelism 1, uid "sink"),
 * with checkpoints every 5 s unless the arguments say otherwise. Nothing
 * ever runs: the tests only plan it.
 */
#include <stdlib.h>

#include <eddy/eddy.h>

static int gen(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
               void *opaque)
{
    (void)ctx;
    (void)index;
    (void)out;
    (void)opaque;
    return 0;
}

static int key(eddy_ctx_t *ctx, const eddy_record_t *in, const void **k,
               size_t *k_len, void *opaque)
{
    (void)ctx;
    (void)opaque;
    *k = in->value;
    *k_len = in->value_len;
    return 0;
}

static int sum(eddy_ctx_t *ctx, const eddy_record_t *acc,
               const eddy_record_t *in, eddy_record_t *out, void *opaque)
{
    (void)ctx;
    (void)acc;
    (void)in;
    (void)out;
    (void)opaque;
    return 0;
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    long interval = 5000;
    if (argc >= 1) {
        eddy_env_set_name(env, argv[0]);
    }
    if (argc >= 2) {
        interval = strtol(argv[1], NULL, 10);
    }
    eddy_env_enable_checkpointing(env, interval);
    eddy_stream_t *src = eddy_uid(
        eddy_name(eddy_source_generator(env, 1000, 0, gen, NULL), "numbers"),
        "src");
    eddy_stream_t *keyed = eddy_name(eddy_key_by(src, key, NULL), "by-key");
    eddy_stream_t *summed =
        eddy_uid(eddy_name(eddy_reduce(keyed, sum, NULL), "sum"), "sum");
    eddy_uid(eddy_parallelism(eddy_name(eddy_sink_discard(summed), "out"), 1),
             "sink");
    return 0;
}

EDDY_JOB("inspect-good", build)
