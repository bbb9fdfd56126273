/*
 * keyed_order — a test job checking that eddy_key_by keeps the order of each
 * key's records from a single upstream subtask.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 *   eddy run --local keyed_order.so [-p N] -- FILE
 *
 * FILE holds lines "<key>,<seq>" with seq increasing per key. The file is
 * read and parsed at parallelism 1; eddy_key_by is left at its default
 * parallelism (it takes its input's, so it is chained to the parser); a
 * keyed process function at the job's parallelism checks, with value state,
 * that each key's seq values arrive in increasing order, and prints every
 * line. A record out of order fails the job naming the key and both values.
 */
#include <stdlib.h>
#include <string.h>

#include <eddy/eddy.h>

static int parse(eddy_ctx_t *ctx, const eddy_record_t *in,
                 eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    const char *comma = memchr(in->value, ',', in->value_len);
    if (comma == NULL) {
        return eddy_ctx_fail(ctx, "expected \"<key>,<seq>\"");
    }
    eddy_record_t rec = {in->value, (size_t)(comma - (const char *)in->value),
                         in->value, in->value_len, EDDY_TS_NONE};
    return eddy_collect(out, &rec);
}

static int check(eddy_ctx_t *ctx, const eddy_record_t *in,
                 eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    const char *comma = memchr(in->value, ',', in->value_len);
    char digits[24] = {0};
    size_t n = in->value_len - (size_t)(comma + 1 - (const char *)in->value);
    memcpy(digits, comma + 1, n < sizeof(digits) ? n : sizeof(digits) - 1);
    int64_t seq = strtoll(digits, NULL, 10), last = -1;
    const void *v;
    size_t len;
    int rc = eddy_value_get(ctx, 0, &v, &len);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        memcpy(&last, v, sizeof(last));
    }
    if (seq <= last) {
        return eddy_ctx_fail(ctx, "key %.*s: seq %lld after %lld",
                             (int)in->key_len, (const char *)in->key,
                             (long long)seq, (long long)last);
    }
    rc = eddy_value_set(ctx, 0, &seq, sizeof(seq));
    return rc != 0 ? rc : eddy_collect(out, in);
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    if (argc != 1) {
        return eddy_env_fail(env, "usage: keyed_order.so -- FILE");
    }
    eddy_stream_t *lines = eddy_parallelism(
        eddy_name(eddy_source_text_file(env, argv[0]), "lines"), 1);
    eddy_stream_t *parsed = eddy_parallelism(
        eddy_name(eddy_flat_map(lines, parse, NULL), "parse"), 1);
    eddy_process_fn_t fn = {check, NULL, NULL};
    eddy_stream_t *checked = eddy_name(
        eddy_process(eddy_key_by(parsed, NULL, NULL), &fn), "check-order");
    eddy_state_desc_t last = {.name = "last-seq", .kind = EDDY_STATE_VALUE};
    eddy_declare_state(checked, &last);
    eddy_name(eddy_sink_print(checked), "print");
    return 0;
}

EDDY_JOB("keyed-order", build)
