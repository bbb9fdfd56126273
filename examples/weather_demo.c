/*
 * weather_demo — per-station averages per minute, plus heat alerts on a side
 * output.
 *
 *   eddy run --local build/examples/weather_demo.so -p 4 -- FILE [THRESHOLD]
 *
 * Input:  FILE, one reading per line: "<ts_ms>,<station>,<temperature>".
 *           ts_ms        a decimal integer of 1 to 15 digits (milliseconds
 *                        since the epoch, below 10^15; digits only);
 *           station      one or more bytes other than ',';
 *           temperature  a decimal number: an optional '-', 1 to 6 digits,
 *                        and optionally '.' and 1 to 3 digits ("21",
 *                        "-3.5", "35.125").
 *         Empty lines are skipped. Any other line fails the job with
 *         `malformed line "<the line>": <reason>`.
 *         THRESHOLD (optional, default 35.0) has the temperature's format;
 *         another value makes the job fail to build with the usage line.
 *
 * Output: two kinds of lines on stdout, from two print sinks, interleaved in
 *         any order (sort them, or split them on the "ALERT," prefix):
 *   - "window_start,station,avg": when a one-minute tumbling event-time
 *     window [window_start, window_start + 60000) fires, one line per
 *     station with on-time readings in it. avg is the mean temperature of
 *     those readings with exactly two digits after the point, rounded half
 *     away from zero from the exact mean (temperatures are read as integer
 *     thousandths of a degree, so no floating point is involved); a mean
 *     that rounds to zero prints "0.00".
 *   - "ALERT,<ts_ms>,<station>,<temperature>": for every reading whose
 *     temperature is strictly above THRESHOLD, the reading's line unchanged
 *     behind the "ALERT," prefix. Alerts come from the parser (a side output
 *     named "alerts"), so every hot reading alerts, late or not; lateness
 *     only concerns the averages.
 *
 * Event time and lateness. Watermarks are bounded out-of-orderness with a
 * bound of 5 s, like eddy_watermarks_bounded(5000), but punctuated: after
 * every reading the watermark becomes max_ts - 5001, max_ts the largest
 * timestamp read so far, so it depends on the file only (not on how fast it
 * is read). The file is read, parsed, stamped and keyed at parallelism 1, in
 * file order; the windows run at the job's parallelism (-p) and see readings
 * and watermarks in file order. A window fires when the watermark reaches its
 * end - 1; a reading arriving when the watermark is already at or past its
 * window's end - 1 is late and left out of the averages (no allowed
 * lateness). The output is therefore a function of the file, the same at
 * every parallelism. At the end of the file every remaining window fires.
 *
 * The graph:  text file (p 1) → flat_map(parse) (p 1) ─[alerts]→ print
 *             → timestamps/watermarks (p 1) → key_by(station) (p 1)
 *             → window_aggregate(tumbling 1 min, mean) → print
 */
#include <stdio.h>
#include <string.h>

#include <eddy/eddy.h>

#define WINDOW_MS 60000
#define OUT_OF_ORDERNESS_MS 5000
#define DEFAULT_THRESHOLD_MILLI 35000 /* 35.0 degrees */
#define TS_MAX_DIGITS 15              /* timestamps below 10^15 ms */
#define QUOTE_MAX 200 /* bytes of a malformed line quoted in the error */

/* What the parser needs: the threshold and the alert side output's id. */
typedef struct weather {
    int64_t threshold_milli;
    int alerts;
} weather_t;

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

/* A temperature -?[0-9]{1,6}(\.[0-9]{1,3})? in thousandths of a degree. */
static int parse_milli(const char *p, size_t n, int64_t *out)
{
    size_t i = n > 0 && p[0] == '-' ? 1 : 0, digits = 0;
    int64_t v = 0;
    int neg = i == 1;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        if (++digits > 6) {
            return 0;
        }
        v = v * 10 + (p[i] - '0');
    }
    if (digits == 0) {
        return 0;
    }
    int frac = 0;
    if (i < n && p[i] == '.') {
        for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            if (++frac > 3) {
                return 0;
            }
            v = v * 10 + (p[i] - '0');
        }
        if (frac == 0) {
            return 0;
        }
    }
    if (i != n) {
        return 0;
    }
    for (; frac < 3; frac++) {
        v *= 10;
    }
    *out = neg ? -v : v;
    return 1;
}

/* Parses a reading into a record keyed by the station, stamped with ts_ms,
 * valued by the temperature in thousandths (8 host-order bytes); a reading
 * above the threshold also goes to the alert side output. */
static int parse(eddy_ctx_t *ctx, const eddy_record_t *in,
                 eddy_collector_t *out, void *opaque)
{
    const weather_t *wx = opaque;
    const char *p = in->value;
    size_t n = in->value_len;
    if (n == 0) {
        return 0;
    }
    const char *c1 = memchr(p, ',', n);
    const char *c2 =
        c1 != NULL ? memchr(c1 + 1, ',', n - (size_t)(c1 + 1 - p)) : NULL;
    if (c2 == NULL) {
        return malformed(ctx, in,
                         "expected \"<ts_ms>,<station>,<temperature>\"");
    }
    int64_t ts, milli;
    if (!parse_ts(p, (size_t)(c1 - p), &ts)) {
        return malformed(ctx, in,
                         "the timestamp must be 1 to 15 decimal digits");
    }
    if (c2 == c1 + 1) {
        return malformed(ctx, in, "the station is empty");
    }
    if (!parse_milli(c2 + 1, n - (size_t)(c2 + 1 - p), &milli)) {
        return malformed(ctx, in,
                         "the temperature must be a decimal number with at "
                         "most 6 digits before the point and 3 after");
    }
    if (milli > wx->threshold_milli) {
        static const char prefix[] = "ALERT,";
        char *alert = eddy_ctx_scratch(ctx, sizeof(prefix) - 1 + n);
        if (alert == NULL) {
            return eddy_ctx_fail(ctx, "out of memory");
        }
        memcpy(alert, prefix, sizeof(prefix) - 1);
        memcpy(alert + sizeof(prefix) - 1, p, n);
        eddy_record_t rec = {NULL, 0, alert, sizeof(prefix) - 1 + n, ts};
        int rc = eddy_collect_side(ctx, wx->alerts, &rec);
        if (rc != 0) {
            return rc;
        }
    }
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    if (v == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    *v = milli;
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

/* ---- the mean: count and sum of thousandths ---- */

typedef struct mean {
    int64_t count;
    int64_t sum_milli; /* |t| < 10^9, so 2^63 / 10^9 readings fit */
} mean_t;

static int mean_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                    void *opaque)
{
    (void)ctx;
    (void)opaque;
    mean_t m;
    memcpy(&m, acc, sizeof(m));
    m.count++;
    m.sum_milli += eddy_record_value_i64(in);
    memcpy(acc, &m, sizeof(m));
    return 0;
}

static int mean_merge(eddy_ctx_t *ctx, void *acc, const void *other,
                      void *opaque)
{
    (void)ctx;
    (void)opaque;
    mean_t a, b;
    memcpy(&a, acc, sizeof(a));
    memcpy(&b, other, sizeof(b));
    a.count += b.count;
    a.sum_milli += b.sum_milli;
    memcpy(acc, &a, sizeof(a));
    return 0;
}

/* "window_start,station,avg": the mean in hundredths of a degree is
 * sum_milli / (count * 10), rounded half away from zero. */
static int mean_result(eddy_ctx_t *ctx, const void *acc, eddy_record_t *out,
                       void *opaque)
{
    (void)opaque;
    const eddy_window_t *w = eddy_ctx_window(ctx);
    if (w == NULL) {
        return eddy_ctx_fail(ctx, "no window in the aggregate's result");
    }
    mean_t m;
    memcpy(&m, acc, sizeof(m));
    int neg = m.sum_milli < 0;
    uint64_t mag =
        neg ? (uint64_t)0 - (uint64_t)m.sum_milli : (uint64_t)m.sum_milli;
    uint64_t div = (uint64_t)m.count * 10;
    uint64_t hundredths = mag / div;
    if ((mag % div) * 2 >= div) {
        hundredths++;
    }
    size_t cap = out->key_len + 80;
    char *line = eddy_ctx_scratch(ctx, cap);
    if (line == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    int n = snprintf(line, cap, "%lld,%.*s,%s%llu.%02llu", (long long)w->start,
                     (int)out->key_len, (const char *)out->key,
                     neg && hundredths != 0 ? "-" : "",
                     (unsigned long long)(hundredths / 100),
                     (unsigned long long)(hundredths % 100));
    out->value = line;
    out->value_len = (size_t)n;
    return 0;
}

static const eddy_aggregate_t mean_agg = {
    .acc_size = sizeof(mean_t),
    .add = mean_add,
    .result = mean_result,
    .merge = mean_merge,
};

/* ---- the job ---- */

/* Read-only once built (the parser's subtasks share it). */
static weather_t weather;

static int build(eddy_env_t *env, int argc, char **argv)
{
    weather.threshold_milli = DEFAULT_THRESHOLD_MILLI;
    if (argc < 1 || argc > 2 ||
        (argc == 2 &&
         !parse_milli(argv[1], strlen(argv[1]), &weather.threshold_milli))) {
        return eddy_env_fail(env, "usage: weather_demo.so -- FILE [THRESHOLD], "
                                  "THRESHOLD a decimal number such as 35.0");
    }
    /* Parallelism 1 up to the watermarks keeps the file's order, which makes
     * lateness (and so the output) a function of the file alone. */
    eddy_stream_t *lines = eddy_parallelism(
        eddy_name(eddy_source_text_file(env, argv[0]), "lines"), 1);
    eddy_stream_t *readings = eddy_parallelism(
        eddy_name(eddy_flat_map(lines, parse, &weather), "parse"), 1);
    weather.alerts = eddy_side_output_id(readings, "alerts");
    eddy_name(eddy_sink_print(eddy_side_output(readings, "alerts")),
              "print-alerts");
    eddy_watermark_strategy_t ws = eddy_watermarks_custom(
        bounded_on_event, NULL, sizeof(bounded_wm_t), NULL);
    eddy_stream_t *stamped = eddy_parallelism(
        eddy_name(eddy_assign_timestamps(readings, &ws), "watermarks"), 1);
    /* The key selector (eddy_key_by) runs at its input's parallelism by
     * default; it is pinned to 1 here as the order matters: chained to its
     * input, it hands records to the keyed exchange in file order (at another
     * parallelism a round-robin exchange would come first and reorder
     * them). */
    eddy_stream_t *keyed =
        eddy_parallelism(eddy_key_by(stamped, NULL, NULL), 1);
    eddy_window_spec_t win = eddy_window_tumbling(WINDOW_MS);
    eddy_stream_t *means = eddy_uid(
        eddy_name(eddy_window_aggregate(keyed, &win, &mean_agg), "averages"),
        "station-averages");
    eddy_name(eddy_sink_print(means), "print-averages");
    return 0;
}

EDDY_JOB("weather-demo", build)
