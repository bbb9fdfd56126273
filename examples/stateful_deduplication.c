/*
 * stateful_deduplication — drop records whose id was seen in the last hour.
 *
 *   eddy run --local build/examples/stateful_deduplication.so -p 4 -- FILE
 *
 * Input:  FILE, one record per line: "<ts_ms>,<id>,<payload>".
 *           ts_ms    a decimal integer of 1 to 15 digits (milliseconds since
 *                    the epoch, below 10^15; digits only);
 *           id       one or more bytes other than ',';
 *           payload  the rest of the line (may be empty, may hold commas).
 *         Empty lines are skipped. Any other line (fewer than three fields,
 *         a bad timestamp, an empty id) fails the job with
 *         `malformed line "<the line>": <reason>`.
 *
 * Output: every record that is not a duplicate, its line printed unchanged.
 *         Records of different ids interleave across subtasks in any order;
 *         the records of one id keep their file order.
 *
 * Semantics (event time). For each id the job keeps, in keyed value state,
 * the largest event timestamp `last` among the id's records read so far
 * (printed or dropped). A record of the id with timestamp ts is
 *   - printed if the id has no state (its first record), or if
 *     ts - last >= 3,600,000 (at least one hour of event time after every
 *     record of the id seen so far);
 *   - dropped otherwise: ts - last < 3,600,000, which includes every record
 *     at or behind `last` (a repetition, or an out-of-order record arriving
 *     after a later record of its id, however far behind).
 * Then last = max(last, ts). So an id that keeps recurring less than an hour
 * apart is printed once; after a gap of at least an hour it is printed
 * again. Decisions depend only on the order in which each id's records
 * arrive, which is the file order: the file is read, parsed and keyed at
 * parallelism 1, and the keyed exchange delivers each id's records in that
 * order to the deduplicator, which runs at the job's parallelism (-p). The
 * output is therefore a function of the file, the same at every
 * parallelism. No watermarks are involved.
 *
 * State size. The value state has a TTL of one hour (eddy_state_desc_t
 * ttl_ms = 3,600,000), which is processing time measured from the last
 * write: an id not seen for an hour of wall-clock time is forgotten, so
 * state does not grow forever on a live stream. Replaying a file takes far
 * less than an hour, so there the TTL never expires and only the event-time
 * rule above decides. On a live stream whose event time runs close to the
 * wall clock the two agree; if they diverge (a replay slower than an hour,
 * or event time far behind the clock), an id forgotten by the TTL is printed
 * again at its next record.
 *
 * The graph:  text file (p 1) → flat_map(parse) (p 1) → key_by(id) (p 1)
 *             → process(dedup, value state "last-ts" with TTL 1 h) → print
 */
#include <stdio.h>
#include <string.h>

#include <eddy/eddy.h>

#define DEDUP_WINDOW_MS 3600000
#define TS_MAX_DIGITS 15 /* timestamps below 10^15 ms */
#define QUOTE_MAX 200    /* bytes of a malformed line quoted in the error */

/* Fails the job, quoting the offending line. */
static int malformed(eddy_ctx_t *ctx, const eddy_record_t *in, const char *why)
{
    int n = in->value_len > QUOTE_MAX ? QUOTE_MAX : (int)in->value_len;
    return eddy_ctx_fail(ctx, "malformed line \"%.*s%s\": %s", n,
                         (const char *)in->value,
                         in->value_len > QUOTE_MAX ? "..." : "", why);
}

/* A timestamp: 1 to 15 decimal digits. */
static int parse_ts(const char *p, size_t n, int64_t *ts)
{
    if (n == 0 || n > TS_MAX_DIGITS) {
        return 0;
    }
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
        v = v * 10 + (p[i] - '0');
    }
    *ts = v;
    return 1;
}

/* Parses "<ts_ms>,<id>,<payload>" into a record keyed by the id, stamped
 * with ts_ms, whose value is the whole line (printed as it is). */
static int parse(eddy_ctx_t *ctx, const eddy_record_t *in,
                 eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    const char *p = in->value;
    size_t n = in->value_len;
    if (n == 0) {
        return 0;
    }
    const char *c1 = memchr(p, ',', n);
    const char *c2 =
        c1 != NULL ? memchr(c1 + 1, ',', n - (size_t)(c1 + 1 - p)) : NULL;
    if (c2 == NULL) {
        return malformed(ctx, in, "expected \"<ts_ms>,<id>,<payload>\"");
    }
    int64_t ts;
    if (!parse_ts(p, (size_t)(c1 - p), &ts)) {
        return malformed(ctx, in,
                         "the timestamp must be 1 to 15 decimal digits");
    }
    if (c2 == c1 + 1) {
        return malformed(ctx, in, "the id is empty");
    }
    eddy_record_t rec = {c1 + 1, (size_t)(c2 - (c1 + 1)), p, n, ts};
    return eddy_collect(out, &rec);
}

/* The state id of "last-ts", set while building (the same in every process,
 * as building is deterministic). */
typedef struct dedup {
    int last_ts;
} dedup_t;

static int dedup_process(eddy_ctx_t *ctx, const eddy_record_t *in,
                         eddy_collector_t *out, void *opaque)
{
    const dedup_t *d = opaque;
    const void *v;
    size_t len;
    int rc = eddy_value_get(ctx, d->last_ts, &v, &len);
    if (rc < 0) {
        return rc;
    }
    int64_t last = 0;
    int found = rc == 1 && len == sizeof(last);
    if (found) {
        memcpy(&last, v, sizeof(last));
    }
    /* Timestamps are below 10^15, so the difference cannot overflow. */
    if (!found || in->ts - last >= DEDUP_WINDOW_MS) {
        rc = eddy_collect(out, in);
        if (rc != 0) {
            return rc;
        }
    }
    if (!found || in->ts > last) {
        return eddy_value_set(ctx, d->last_ts, &in->ts, sizeof(in->ts));
    }
    return 0;
}

static dedup_t dedup_ids;

static int build(eddy_env_t *env, int argc, char **argv)
{
    if (argc != 1) {
        return eddy_env_fail(env, "usage: stateful_deduplication.so -- FILE");
    }
    /* Parallelism 1 up to the key_by keeps the file's order per id. */
    eddy_stream_t *lines = eddy_parallelism(
        eddy_name(eddy_source_text_file(env, argv[0]), "lines"), 1);
    eddy_stream_t *records = eddy_parallelism(
        eddy_name(eddy_flat_map(lines, parse, NULL), "parse"), 1);
    /* The key selector (eddy_key_by) runs at its input's parallelism by
     * default; it is pinned to 1 here as the order matters: chained to its
     * input, it hands records to the keyed exchange in file order (at another
     * parallelism a round-robin exchange would come first and reorder
     * them). */
    eddy_stream_t *keyed =
        eddy_parallelism(eddy_key_by(records, NULL, NULL), 1);
    eddy_process_fn_t fn = {dedup_process, NULL, &dedup_ids};
    eddy_stream_t *unique =
        eddy_uid(eddy_name(eddy_process(keyed, &fn), "dedup"), "dedup");
    eddy_state_desc_t last_ts = {
        .name = "last-ts",
        .kind = EDDY_STATE_VALUE,
        .serializer = eddy_serializer_i64(),
        .ttl_ms = DEDUP_WINDOW_MS,
    };
    dedup_ids.last_ts = eddy_declare_state(unique, &last_ts);
    eddy_name(eddy_sink_print(unique), "print");
    return 0;
}

EDDY_JOB("stateful-deduplication", build)
