/*
 * slow_sink — a test job whose sink is much slower than its source, for
 * the back-pressure test of tests/integration/test_cluster.c.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 *   eddy run slow_sink.so [-p N] -- DELAY_US VALUE_BYTES
 *
 * An endless generator at full speed emits records of VALUE_BYTES bytes
 * ("<index>:xxxx..."); a rebalance spreads them round robin over the sink
 * subtasks (so with subtasks on several TaskManagers most records cross the
 * data plane); each sink subtask sleeps DELAY_US microseconds per record
 * and prints the record. The job never ends by itself: the test cancels it.
 *
 * Without back pressure the generator would queue records without bound;
 * with it, the generator stops whenever the sinks' input buffers are full,
 * and a TaskManager's memory stays flat however long the job runs. Values
 * are large enough that a sink fills its 64 KiB print buffer (and so writes
 * to stdout) every few hundred milliseconds, which is how the test sees it
 * make progress.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <eddy/eddy.h>

static long delay_us;
static size_t value_bytes;

static int gen(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
               void *opaque)
{
    (void)opaque;
    char *b = eddy_ctx_scratch(ctx, value_bytes + 1);
    if (b == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    int n = snprintf(b, value_bytes + 1, "%llu:", (unsigned long long)index);
    if (n > 0 && (size_t)n < value_bytes) {
        memset(b + n, 'x', value_bytes - (size_t)n);
    }
    out->value = b;
    out->value_len = value_bytes;
    return 0;
}

/* The slow part: a fixed sleep per record, then the record unchanged. */
static int slow(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
                void *opaque)
{
    (void)ctx;
    (void)opaque;
    struct timespec ts = {delay_us / 1000000, (delay_us % 1000000) * 1000};
    nanosleep(&ts, NULL);
    *out = *in;
    return 0;
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    char *end1 = NULL, *end2 = NULL;
    delay_us = argc == 2 ? strtol(argv[0], &end1, 10) : -1;
    long bytes = argc == 2 ? strtol(argv[1], &end2, 10) : -1;
    if (argc != 2 || *end1 != '\0' || *end2 != '\0' || delay_us < 0 ||
        delay_us > 1000000 || bytes < 24 || bytes > 16384) {
        return eddy_env_fail(env, "usage: slow_sink.so -- DELAY_US "
                                  "VALUE_BYTES (0..1000000, 24..16384)");
    }
    value_bytes = (size_t)bytes;
    eddy_stream_t *s = eddy_uid(
        eddy_name(eddy_source_generator(env, 0, 0, gen, NULL), "flood"),
        "flood");
    s = eddy_rebalance(s);
    s = eddy_uid(eddy_name(eddy_map(s, slow, NULL), "slow"), "slow");
    eddy_sink_print(s);
    return 0;
}

EDDY_JOB("slow-sink", build)
