/*
 * windowed_aggregation — per-key statistics over sliding event-time windows.
 *
 *   eddy run --local build/examples/windowed_aggregation.so -p 4 -- FILE
 *
 * Input:  FILE, one record per line: "<ts_ms>,<key>,<value>".
 *           ts_ms  a decimal integer of 1 to 15 digits (milliseconds since
 *                  the epoch, below 10^15; digits only);
 *           key    one or more bytes other than ',' (kept as they are,
 *                  spaces included);
 *           value  a decimal int64: an optional '-' then digits.
 *         Empty lines are skipped. Any other line (a missing or extra field,
 *         an empty key, a number out of range) fails the job with
 *         `malformed line "<the line>": <reason>`.
 *
 * Windows: sliding windows of 30 s every 10 s in event time, so a record at
 *         ts belongs to the three windows [s, s + 30000) with s a multiple
 *         of 10000 and s <= ts < s + 30000.
 *
 * Output: when a window fires, one line per key with on-time records in it:
 *           "window_start,window_end,key,count,min,max,avg"
 *         window_start and window_end in ms (end = start + 30000, the end
 *         excluded), count the number of records, min and max the extreme
 *         values, avg the mean of the values as a decimal with exactly two
 *         digits after the point, rounded half away from zero ("-0.005"
 *         gives "-0.01", "2.5" gives "2.50", a mean that rounds to zero is
 *         "0.00"). Averages are computed exactly (integer arithmetic); a sum
 *         of a window's values beyond the int64 range fails the job. Lines
 *         of different keys and windows interleave across subtasks: sort
 *         them to compare runs.
 *
 * Event time and lateness. Watermarks are bounded out-of-orderness with a
 * bound of 5 s, like eddy_watermarks_bounded(5000), but punctuated: after
 * every record the watermark becomes max_ts - 5001, max_ts being the largest
 * timestamp read so far, so it depends on the file only (not on how fast it
 * is read). The file is read, parsed, stamped and keyed at parallelism 1, in
 * file order; the windows run at the job's parallelism (-p) and see every
 * record and watermark in file order. A window fires when the watermark
 * reaches end - 1. A record counts in each of its windows whose end - 1 is
 * above the watermark when the record arrives (the watermark left by the
 * lines before it); in the windows already fired it is missing, and a record
 * late for all three windows is dropped (no allowed lateness, Flink's rule).
 * The output is therefore a function of the file, the same at every
 * parallelism. At the end of the file the watermark jumps to +infinity and
 * every remaining window fires.
 *
 * The aggregate has a merge function, so the engine keeps one accumulator
 * per 10 s slice and combines three slices per window, instead of updating
 * three windows per record.
 *
 * The graph:  text file (p 1) → flat_map(parse) (p 1)
 *             → timestamps/watermarks (p 1) → key_by(key) (p 1)
 *             → window_aggregate(sliding 30 s / 10 s, stats) → print
 */
#include <stdio.h>
#include <string.h>

#include <eddy/eddy.h>

#define WINDOW_MS 30000
#define SLIDE_MS 10000
#define OUT_OF_ORDERNESS_MS 5000
#define TS_MAX_DIGITS 15 /* timestamps below 10^15 ms */
#define QUOTE_MAX 200    /* bytes of a malformed line quoted in the error */

/* ---- parsing ---- */

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

/* An int64: an optional '-' and 1 or more digits, in range. */
static int parse_i64(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = n > 0 && p[0] == '-';
    i = (size_t)neg;
    if (i == n) {
        return 0;
    }
    /* Accumulate negatively: INT64_MIN has no positive counterpart. */
    int64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_sub_overflow(v, p[i] - '0', &v)) {
            return 0;
        }
    }
    if (!neg && v == INT64_MIN) {
        return 0;
    }
    *out = neg ? v : -v;
    return 1;
}

/* Parses "<ts_ms>,<key>,<value>" into a record keyed by the key, valued by
 * the int64 (8 host-order bytes), stamped with ts_ms. */
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
        return malformed(ctx, in, "expected \"<ts_ms>,<key>,<value>\"");
    }
    const char *end = p + n;
    if (memchr(c2 + 1, ',', (size_t)(end - (c2 + 1))) != NULL) {
        return malformed(ctx, in, "more than three fields");
    }
    int64_t ts, value;
    if (!parse_ts(p, (size_t)(c1 - p), &ts)) {
        return malformed(ctx, in,
                         "the timestamp must be 1 to 15 decimal digits");
    }
    if (c2 == c1 + 1) {
        return malformed(ctx, in, "the key is empty");
    }
    if (!parse_i64(c2 + 1, (size_t)(end - (c2 + 1)), &value)) {
        return malformed(ctx, in, "the value is not a decimal int64");
    }
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    if (v == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    *v = value;
    eddy_record_t rec = {c1 + 1, (size_t)(c2 - (c1 + 1)), v, sizeof(*v), ts};
    return eddy_collect(out, &rec);
}

/* ---- watermarks: bounded out-of-orderness, punctuated ---- */

typedef struct bounded_wm {
    int64_t max_ts;
    int seen;
} bounded_wm_t;

static int64_t bounded_on_event(void *state, const eddy_record_t *rec,
                                void *opaque)
{
    (void)opaque;
    bounded_wm_t *st = state;
    if (!st->seen || rec->ts > st->max_ts) {
        st->max_ts = rec->ts;
        st->seen = 1;
    }
    return st->max_ts - OUT_OF_ORDERNESS_MS - 1;
}

/* ---- the aggregate: count, min, max and an exact sum ---- */

/* Plain bytes, as the engine requires; read and written with memcpy, since
 * the engine promises no alignment. */
typedef struct stats {
    int64_t count;
    int64_t sum;
    int64_t min;
    int64_t max;
} stats_t;

static void stats_init(void *acc, void *opaque)
{
    (void)opaque;
    stats_t s = {0, 0, INT64_MAX, INT64_MIN};
    memcpy(acc, &s, sizeof(s));
}

static int sum_overflow(eddy_ctx_t *ctx)
{
    size_t len;
    const char *key = eddy_ctx_key(ctx, &len);
    return eddy_ctx_fail(ctx,
                         "the sum of the values of key \"%.*s\" in a window "
                         "leaves the int64 range",
                         key != NULL ? (int)len : 0, key != NULL ? key : "");
}

static int stats_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                     void *opaque)
{
    (void)opaque;
    stats_t s;
    memcpy(&s, acc, sizeof(s));
    int64_t v = eddy_record_value_i64(in);
    if (__builtin_add_overflow(s.sum, v, &s.sum)) {
        return sum_overflow(ctx);
    }
    s.count++;
    s.min = v < s.min ? v : s.min;
    s.max = v > s.max ? v : s.max;
    memcpy(acc, &s, sizeof(s));
    return 0;
}

static int stats_merge(eddy_ctx_t *ctx, void *acc, const void *other,
                       void *opaque)
{
    (void)opaque;
    stats_t a, b;
    memcpy(&a, acc, sizeof(a));
    memcpy(&b, other, sizeof(b));
    if (__builtin_add_overflow(a.sum, b.sum, &a.sum)) {
        return sum_overflow(ctx);
    }
    a.count += b.count;
    a.min = b.min < a.min ? b.min : a.min;
    a.max = b.max > a.max ? b.max : a.max;
    memcpy(acc, &a, sizeof(a));
    return 0;
}

/* Writes sum / count rounded half away from zero to two decimals. */
static int format_avg(char *buf, size_t cap, int64_t sum, int64_t count)
{
    int neg = sum < 0;
    uint64_t mag = neg ? (uint64_t)0 - (uint64_t)sum : (uint64_t)sum;
    uint64_t cnt = (uint64_t)count;
    uint64_t whole = mag / cnt, rem = mag % cnt;
    /* Hundredths: rem * 100 / cnt, then round on the remainder. With fewer
     * than 2^57 records per window, rem * 100 cannot overflow. */
    uint64_t frac = rem * 100 / cnt, frac_rem = rem * 100 % cnt;
    if (frac_rem * 2 >= cnt) {
        if (++frac == 100) {
            frac = 0;
            whole++;
        }
    }
    return snprintf(buf, cap, "%s%llu.%02llu",
                    neg && (whole != 0 || frac != 0) ? "-" : "",
                    (unsigned long long)whole, (unsigned long long)frac);
}

static int stats_result(eddy_ctx_t *ctx, const void *acc, eddy_record_t *out,
                        void *opaque)
{
    (void)opaque;
    const eddy_window_t *w = eddy_ctx_window(ctx);
    if (w == NULL) {
        return eddy_ctx_fail(ctx, "no window in the aggregate's result");
    }
    stats_t s;
    memcpy(&s, acc, sizeof(s));
    char avg[48];
    format_avg(avg, sizeof(avg), s.sum, s.count);
    size_t cap = out->key_len + 160;
    char *line = eddy_ctx_scratch(ctx, cap);
    if (line == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    int n = snprintf(line, cap, "%lld,%lld,%.*s,%lld,%lld,%lld,%s",
                     (long long)w->start, (long long)w->end, (int)out->key_len,
                     (const char *)out->key, (long long)s.count,
                     (long long)s.min, (long long)s.max, avg);
    out->value = line;
    out->value_len = (size_t)n;
    return 0;
}

static const eddy_aggregate_t stats_agg = {
    .acc_size = sizeof(stats_t),
    .init = stats_init,
    .add = stats_add,
    .result = stats_result,
    .merge = stats_merge,
};

/* ---- the job ---- */

static int build(eddy_env_t *env, int argc, char **argv)
{
    if (argc != 1) {
        return eddy_env_fail(env, "usage: windowed_aggregation.so -- FILE");
    }
    /* Parallelism 1 up to the watermarks keeps the file's order, which makes
     * lateness (and so the output) a function of the file alone. */
    eddy_stream_t *lines = eddy_parallelism(
        eddy_name(eddy_source_text_file(env, argv[0]), "lines"), 1);
    eddy_stream_t *records = eddy_parallelism(
        eddy_name(eddy_flat_map(lines, parse, NULL), "parse"), 1);
    eddy_watermark_strategy_t ws = eddy_watermarks_custom(
        bounded_on_event, NULL, sizeof(bounded_wm_t), NULL);
    eddy_stream_t *stamped = eddy_parallelism(
        eddy_name(eddy_assign_timestamps(records, &ws), "watermarks"), 1);
    /* The key selector (eddy_key_by) runs at its input's parallelism by
     * default; it is pinned to 1 here as the order matters: chained to its
     * input, it hands records to the keyed exchange in file order (at another
     * parallelism a round-robin exchange would come first and reorder
     * them). */
    eddy_stream_t *keyed =
        eddy_parallelism(eddy_key_by(stamped, NULL, NULL), 1);
    eddy_window_spec_t win = eddy_window_sliding(WINDOW_MS, SLIDE_MS);
    eddy_stream_t *stats = eddy_uid(
        eddy_name(eddy_window_aggregate(keyed, &win, &stats_agg), "stats"),
        "window-stats");
    eddy_name(eddy_sink_print(stats), "print");
    return 0;
}

EDDY_JOB("windowed-aggregation", build)
