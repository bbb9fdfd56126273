/*
 * ticks — a test job that runs for a known time and then finishes.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 *   eddy run ticks.so [-p N] -- COUNT RATE
 *
 * A generator of COUNT records at RATE records/s in total, into a discard
 * sink: it runs COUNT / RATE seconds, prints nothing, and ends FINISHED.
 * The CLI tests use it to watch a job go through RUNNING to FINISHED,
 * which a job that ends within one status poll would not show.
 */
#include <stdlib.h>

#include <eddy/eddy.h>

static int gen(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
               void *opaque)
{
    (void)opaque;
    uint64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    if (v == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    *v = index;
    out->value = v;
    out->value_len = sizeof(*v);
    return 0;
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    char *end1, *end2;
    long count = argc == 2 ? strtol(argv[0], &end1, 10) : 0;
    double rate = argc == 2 ? strtod(argv[1], &end2) : 0;
    if (argc != 2 || *end1 != '\0' || *end2 != '\0' || count < 1 ||
        !(rate > 0)) {
        return eddy_env_fail(env, "usage: ticks.so -- COUNT RATE");
    }
    eddy_stream_t *s = eddy_name(
        eddy_source_generator(env, (uint64_t)count, rate, gen, NULL), "ticks");
    eddy_sink_discard(s);
    return 0;
}

EDDY_JOB("ticks", build)
