/*
 * stream_join — match orders with their payments (event-time interval join).
 *
 *   eddy run --local build/examples/stream_join.so -p 4 -- ORDERS PAYMENTS
 *
 * Input:  two files, one record per line.
 *           ORDERS:    "<ts_ms>,<order_id>,<amount>"
 *           PAYMENTS:  "<ts_ms>,<order_id>,<method>"
 *         ts_ms is a decimal integer of 1 to 15 digits (milliseconds since
 *         the epoch, below 10^15; digits only); order_id is one or more
 *         bytes other than ','; amount is a decimal number: an optional '-',
 *         digits, and optionally '.' and more digits ("12", "-3.50"); method
 *         is the rest of the line (may be empty, may hold commas). Empty
 *         lines are skipped. Any other line fails the job with
 *         `malformed line "<the line>": <reason>` (from the operator
 *         "parse-orders" or "parse-payments").
 *
 * Output: one line per matching (order, payment) pair:
 *           "order_id,order_ts,payment_ts,amount,method"
 *         with amount and method as they appear in the input and the
 *         timestamps as decimal integers without leading zeros. A payment
 *         matches an order with the same order_id when
 *           order_ts <= payment_ts <= order_ts + 900000
 *         (from 0 to 15 minutes after the order, both bounds included:
 *         eddy_interval_join with lower 0, upper 900000). Every matching
 *         pair is printed once (an order paid twice gives two lines, a
 *         payment that fits two orders with the same id gives two lines).
 *         Lines interleave in any order across subtasks: sort them to
 *         compare runs.
 *
 * Event time and lateness. Each input has its own watermarks: bounded
 * out-of-orderness with a bound of 5 s, punctuated (after every record the
 * input's watermark becomes max_ts - 5001, max_ts the largest timestamp of
 * the file so far). Each file is read, parsed, stamped and keyed at parallelism
 * 1, in file order. A record whose timestamp is at or below its own input's
 * watermark when it arrives (ts <= max timestamp of the earlier lines of its
 * file - 5001) is late and dropped before the join, so it matches nothing.
 * Lateness is decided per input rather than by the join's combined
 * watermark (the minimum over both inputs, which depends on how far the
 * other file has been read at that moment): that makes the output a function
 * of the two files alone, the same at every parallelism and every run. The
 * join itself (at the job's parallelism, -p) then never sees a late record:
 * a record that passed its input's check is above that input's watermark,
 * hence above the combined one. The join keeps an order until the combined
 * watermark passes order_ts + 15 min and a payment until it passes
 * payment_ts; the output is all matching pairs of the records that were on
 * time. At the end of both files the watermark jumps to +infinity.
 *
 * The graph:  orders file (p 1) → flat_map(parse-orders) (p 1)
 *               → timestamps/watermarks (p 1) → filter(on-time) (p 1)
 *               → key_by(order_id) (p 1) ─┐
 *             payments file (p 1) → ... the same ... → key_by (p 1) ─┤
 *             → interval_join(0, +15 min) → print
 */
#include <stdio.h>
#include <string.h>

#include <eddy/eddy.h>

#define PAYMENT_WINDOW_MS 900000 /* 15 minutes */
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

/* A decimal amount: -?[0-9]+(\.[0-9]+)? */
static int valid_amount(const char *p, size_t n)
{
    size_t i = n > 0 && p[0] == '-' ? 1 : 0, digits = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        digits++;
    }
    if (digits == 0) {
        return 0;
    }
    if (i < n && p[i] == '.') {
        size_t frac = 0;
        for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            frac++;
        }
        if (frac == 0) {
            return 0;
        }
    }
    return i == n;
}

/* Which input a parser reads: the third field's rules and name. */
typedef struct input_kind {
    int is_orders;
    const char *format;
} input_kind_t;

static const input_kind_t orders_kind = {1, "<ts_ms>,<order_id>,<amount>"};
static const input_kind_t payments_kind = {0, "<ts_ms>,<order_id>,<method>"};

/* Parses a line into a record keyed by order_id, stamped with ts_ms, whose
 * value is the third field (amount or method). */
static int parse(eddy_ctx_t *ctx, const eddy_record_t *in,
                 eddy_collector_t *out, void *opaque)
{
    const input_kind_t *kind = opaque;
    const char *p = in->value;
    size_t n = in->value_len;
    if (n == 0) {
        return 0;
    }
    const char *c1 = memchr(p, ',', n);
    const char *c2 =
        c1 != NULL ? memchr(c1 + 1, ',', n - (size_t)(c1 + 1 - p)) : NULL;
    if (c2 == NULL) {
        char why[96];
        snprintf(why, sizeof(why), "expected \"%s\"", kind->format);
        return malformed(ctx, in, why);
    }
    int64_t ts;
    if (!parse_ts(p, (size_t)(c1 - p), &ts)) {
        return malformed(ctx, in,
                         "the timestamp must be 1 to 15 decimal digits");
    }
    if (c2 == c1 + 1) {
        return malformed(ctx, in, "the order id is empty");
    }
    const char *third = c2 + 1;
    size_t third_len = n - (size_t)(third - p);
    if (kind->is_orders && !valid_amount(third, third_len)) {
        return malformed(ctx, in,
                         "the amount must be a decimal number such as "
                         "12 or -3.50");
    }
    eddy_record_t rec = {c1 + 1, (size_t)(c2 - (c1 + 1)), third, third_len, ts};
    return eddy_collect(out, &rec);
}

/* ---- watermarks: bounded out-of-orderness, punctuated, per input ---- */

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

/* Keeps the records above their own input's watermark (the one the
 * assigner chained before this filter emitted after the previous record). */
static int on_time(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque)
{
    (void)opaque;
    int64_t wm = eddy_ctx_watermark(ctx);
    return wm == EDDY_TS_NONE || in->ts > wm;
}

/* ---- the join ---- */

/* Emits "order_id,order_ts,payment_ts,amount,method". */
static int join(eddy_ctx_t *ctx, const eddy_record_t *order,
                const eddy_record_t *payment, eddy_collector_t *out,
                void *opaque)
{
    (void)opaque;
    size_t cap = order->key_len + order->value_len + payment->value_len + 64;
    char *line = eddy_ctx_scratch(ctx, cap);
    if (line == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    int n = snprintf(line, cap, "%.*s,%lld,%lld,%.*s,%.*s", (int)order->key_len,
                     (const char *)order->key, (long long)order->ts,
                     (long long)payment->ts, (int)order->value_len,
                     (const char *)order->value, (int)payment->value_len,
                     (const char *)payment->value);
    eddy_record_t rec = {order->key, order->key_len, line, (size_t)n,
                         EDDY_TS_NONE};
    return eddy_collect(out, &rec);
}

/* One input: file → parse → watermarks → on-time filter → key_by, all at
 * parallelism 1 so that lateness follows the file's order. */
static eddy_stream_t *input(eddy_env_t *env, const char *path, const char *name,
                            const input_kind_t *kind)
{
    char nm[64];
    snprintf(nm, sizeof(nm), "%s", name);
    eddy_stream_t *lines =
        eddy_parallelism(eddy_name(eddy_source_text_file(env, path), nm), 1);
    snprintf(nm, sizeof(nm), "parse-%s", name);
    eddy_stream_t *records = eddy_parallelism(
        eddy_name(eddy_flat_map(lines, parse, (void *)kind), nm), 1);
    eddy_watermark_strategy_t ws = eddy_watermarks_custom(
        bounded_on_event, NULL, sizeof(bounded_wm_t), NULL);
    snprintf(nm, sizeof(nm), "watermarks-%s", name);
    eddy_stream_t *stamped = eddy_parallelism(
        eddy_name(eddy_assign_timestamps(records, &ws), nm), 1);
    snprintf(nm, sizeof(nm), "on-time-%s", name);
    eddy_stream_t *timely =
        eddy_parallelism(eddy_name(eddy_filter(stamped, on_time, NULL), nm), 1);
    /* The key selector (eddy_key_by) runs at its input's parallelism by
     * default; it is pinned to 1 here as the order matters: chained to its
     * input, it hands records to the keyed exchange in file order (at another
     * parallelism a round-robin exchange would come first and reorder
     * them). */
    return eddy_parallelism(eddy_key_by(timely, NULL, NULL), 1);
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    if (argc != 2) {
        return eddy_env_fail(env, "usage: stream_join.so -- ORDERS PAYMENTS");
    }
    eddy_stream_t *orders = input(env, argv[0], "orders", &orders_kind);
    eddy_stream_t *payments = input(env, argv[1], "payments", &payments_kind);
    eddy_stream_t *joined =
        eddy_uid(eddy_name(eddy_interval_join(orders, payments, 0,
                                              PAYMENT_WINDOW_MS, join, NULL),
                           "join"),
                 "orders-payments");
    eddy_name(eddy_sink_print(joined), "print");
    return 0;
}

EDDY_JOB("stream-join", build)
