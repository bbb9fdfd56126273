/*
 * eddy — joins of two keyed streams: interval join and window join.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Both are two-input keyed operators built like eddy_co_process
 * (process.c): per subtask a keyed state backend for the subtask's key
 * groups and a timer service; the planner hash-partitions both inputs.
 * Buffered records live in the backend, so they are snapshotted and
 * rescaled with the key groups like any keyed state.
 *
 * INTERVAL JOIN (Flink's IntervalJoinOperator, event time). A left record
 * at l joins every right record r of its key with l + lower <= r <= l +
 * upper (both bounds inclusive).
 *   - A record is late when its timestamp is below the current input
 *     watermark (ts < wm, Flink's isLate); late records are dropped
 *     (counted) and never buffered or joined. A record with ts == wm is on
 *     time.
 *   - An on-time record is added to its side's buffer, then joined with the
 *     other side's buffer. Results are emitted in the order the buffers are
 *     walked (unordered within one arriving record, as in Flink).
 *   - Cleanup: Flink registers the cleanup timer of a left record at
 *     l + max(upper, 0) and of a right record at r + max(-lower, 0); a timer
 *     fires once the watermark reaches it (wm >= timestamp). We keep each
 *     record one millisecond longer: the timers are registered at those
 *     times + 1, so a record is removed once wm > l + max(upper, 0)
 *     (right: wm > r + max(-lower, 0)). Reason: with lateness defined as
 *     ts < wm, a right record with r == wm == l + upper is on time and must
 *     still find l; Flink's timer at exactly l + upper removes l at that
 *     watermark and loses the pair. For inputs that respect their
 *     watermarks the results are identical to Flink's, and keeping a record
 *     any longer could not produce more matches: once wm > l + upper every
 *     right record that could match l would be late.
 *   - The max(.., 0) terms follow Flink: with upper < 0 a left record is
 *     kept until the watermark passes l itself (it can match nothing after
 *     wm > l + upper, so this only costs memory, never changes results).
 *   - Each result a join function emits without a timestamp (ts ==
 *     EDDY_TS_NONE) gets max(left.ts, right.ts), Flink's result timestamp;
 *     one emitted with a timestamp keeps it.
 *   - Records without a timestamp fail the job (Flink throws too).
 *   State: per side a LIST state whose namespace is the record timestamp
 *   (8 bytes; one list per (key, timestamp) bucket, values only) and a MAP
 *   state (empty namespace) indexing the key's buckets: timestamp -> number
 *   of records. Joining walks the other side's index and reads the buckets
 *   inside the interval; cleanup removes one bucket in O(1). Cleanup timers
 *   carry namespace (side byte, bucket timestamp), so equal records share
 *   one timer and no timestamp arithmetic has to be inverted.
 *
 * WINDOW JOIN (Flink's JoinedStreams: a co-group over a window operator).
 * Tumbling and sliding time windows, event or processing time. Each record
 * is added to every window it belongs to; per (key, window) a LIST state per
 * side holds (timestamp, value) with the window as namespace (start, end as
 * two host-order int64). When the window fires, every (left, right) pair of
 * the key in the window is passed to the join function (left-major, in
 * arrival order); results without a timestamp get end - 1 (the window's
 * max timestamp, as Flink). Then the window's state is cleared.
 *   - Event time: the window fires when the watermark reaches end - 1
 *     (Flink's EventTimeTrigger). A record is late for a window when
 *     end - 1 + allowed_lateness <= wm (Flink's isWindowLate); a record late
 *     for all its windows is dropped (counted) or sent to late_output. With
 *     allowed lateness the window's state is kept until the watermark
 *     reaches end - 1 + allowed_lateness, and a record arriving after the
 *     first firing fires the window again at once with all its contents
 *     (every pair again, as Flink's join). A purging spec clears the
 *     contents after each firing.
 *   - Processing time: a record goes to the windows of the wall clock at
 *     its arrival, and a window fires once the clock reaches end - 1; never
 *     late. At the end of a bounded input the pending processing-time
 *     windows fire (Flink drops them), so bounded jobs lose nothing.
 *   Records without a timestamp fail an event-time window join.
 *
 * The join function runs with the key set (eddy_ctx_key works) but without
 * keyed state or timers: they belong to the operator. In a window join
 * eddy_ctx_window gives the window being fired.
 *
 * THREADS. An operator instance belongs to its subtask's thread; the
 * counters behind eddy__join_stats are atomics shared by the subtasks.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "operators/join.h"
#include "runtime/runtime.h"
#include "runtime/timers.h"

enum { LEFT = 0, RIGHT = 1 };

/* State ids: the side's buffer (LIST) and, for the interval join, its
 * bucket index (MAP). */
#define SID_BUF(side) (side)
#define SID_INDEX(side) (2 + (side))

static const eddy__state_spec_t interval_specs[] = {
    {"left", EDDY_STATE_LIST, 0},
    {"right", EDDY_STATE_LIST, 0},
    {"left-index", EDDY_STATE_MAP, 0},
    {"right-index", EDDY_STATE_MAP, 0},
};

static const eddy__state_spec_t window_specs[] = {
    {"left", EDDY_STATE_LIST, 0},
    {"right", EDDY_STATE_LIST, 0},
};

/* Configuration of one join node (env arena). */
typedef struct join_config {
    eddy_join_fn jc_fn;
    void *jc_opaque;
    int64_t jc_lower; /* interval join */
    int64_t jc_upper;
    eddy_window_spec_t jc_w; /* window join */
    int jc_late_tag;         /* window join: side output id, or -1 */
    /* Counters (eddy__join_stats), summed over subtasks. */
    atomic_uint_least64_t jc_late;
    atomic_uint_least64_t jc_expired;
    atomic_uint_least64_t jc_peak;
    atomic_uint_least64_t jc_leftover;
} join_config_t;

/* One subtask of a join. */
typedef struct join_state {
    const join_config_t *js_cfg;
    eddy__kstate_t *js_ks;
    eddy__timers_t *js_timers;
    int js_max_par;
    eddy_collector_t js_out; /* wraps op_out: default result timestamps */
    int64_t js_default_ts;
    unsigned char *js_buf; /* window join: element being stored */
    size_t js_buf_cap;
    uint64_t js_buffered; /* records (window join: copies) buffered now */
    uint64_t js_peak;
    uint64_t js_late;
    uint64_t js_expired;
} join_state_t;

static const eddy__op_class_t interval_join_class;
static const eddy__op_class_t window_join_class;

/* ---- arithmetic on timestamps (saturating: no overflow near the ends) */

static inline int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

static inline int64_t sat_neg(int64_t a)
{
    return a == INT64_MIN ? INT64_MAX : -a;
}

/* ---- common operator plumbing ---- */

static int join_emit(void *target, const eddy_record_t *rec)
{
    eddy__op_t *op = target;
    join_state_t *js = op->op_data;
    if (rec->ts != EDDY_TS_NONE) {
        return eddy__emit(op, rec);
    }
    eddy_record_t r = *rec;
    r.ts = js->js_default_ts;
    return eddy__emit(op, &r);
}

static int join_open(eddy__op_t *op)
{
    const eddy_stream_t *n = op->op_node;
    bool interval = n->s_class == &interval_join_class;
    join_state_t *js = eddy__calloc(1, sizeof(*js));
    op->op_data = js;
    js->js_cfg = n->s_config;
    js->js_max_par = n->s_env->e_max_parallelism;
    js->js_out = (eddy_collector_t){join_emit, op};
    int first, last;
    eddy__key_group_range(op->op_ctx.cx_subtask, js->js_max_par,
                          op->op_ctx.cx_parallelism, &first, &last);
    EDDY_UNUSED(first);
    EDDY_UNUSED(last);
    int rc = interval
                 ? eddy__op_kstate_new(op, interval_specs,
                                       (int)EDDY_ARRAY_SIZE(interval_specs),
                                       &js->js_ks)
                 : eddy__op_kstate_new(op, window_specs,
                                       (int)EDDY_ARRAY_SIZE(window_specs),
                                       &js->js_ks);
    if (rc == 0) {
        rc = eddy__op_timers_new(op, &js->js_timers);
    }
    if (rc != 0) {
        return rc;
    }
    eddy__kstate_set_time(js->js_ks, eddy__now_ms());
    /* The join function sees the key, but neither state nor timers. */
    op->op_ctx.cx_state = NULL;
    op->op_ctx.cx_timers = NULL;
    return 0;
}

static void join_close(eddy__op_t *op)
{
    join_state_t *js = op->op_data;
    if (js == NULL) {
        return;
    }
    join_config_t *cfg = (join_config_t *)js->js_cfg;
    atomic_fetch_add(&cfg->jc_late, js->js_late);
    atomic_fetch_add(&cfg->jc_expired, js->js_expired);
    atomic_fetch_add(&cfg->jc_leftover, js->js_buffered);
    uint64_t peak = atomic_load(&cfg->jc_peak);
    while (js->js_peak > peak &&
           !atomic_compare_exchange_weak(&cfg->jc_peak, &peak, js->js_peak)) {
    }
    eddy__kstate_destroy(js->js_ks);
    eddy__timers_destroy(js->js_timers);
    free(js->js_buf);
    free(js);
    op->op_data = NULL;
    op->op_ctx.cx_has_key = false;
}

/* Makes the record's key current (key group computed once per record). */
static void set_key(eddy__op_t *op, const eddy_record_t *rec)
{
    join_state_t *js = op->op_data;
    eddy__skey_t *k = &op->op_ctx.cx_key;
    k->sk_key = rec->key;
    k->sk_klen = rec->key_len;
    k->sk_hash = eddy__hash64(rec->key, rec->key_len);
    k->sk_kg = eddy__key_group(k->sk_hash, js->js_max_par);
    k->sk_ns = NULL;
    k->sk_nslen = 0;
    op->op_ctx.cx_has_key = true;
}

static void buffered_add(join_state_t *js, uint64_t n)
{
    js->js_buffered += n;
    if (js->js_buffered > js->js_peak) {
        js->js_peak = js->js_buffered;
    }
}

static void buffered_remove(eddy__op_t *op, join_state_t *js, uint64_t n)
{
    js->js_buffered = js->js_buffered >= n ? js->js_buffered - n : 0;
    if (op->op_in_wm != INT64_MAX) {
        js->js_expired += n;
    }
}

/* Calls the join function for one pair; results without a timestamp get
 * `ts`. */
static int call_join(eddy__op_t *op, join_state_t *js, const eddy_record_t *l,
                     const eddy_record_t *r, int64_t ts)
{
    const join_config_t *cfg = js->js_cfg;
    js->js_default_ts = ts;
    eddy__op_enter(op);
    int rc = cfg->jc_fn(&op->op_ctx, l, r, &js->js_out, cfg->jc_opaque);
    return rc != 0 ? eddy__op_user_rc(op, rc) : 0;
}

static int state_error(eddy__op_t *op, int rc)
{
    return eddy__op_fail(op, rc, "keyed state failed: %s", eddy_strerror(rc));
}

static int join_fail_no_ts(eddy__op_t *op, int side, const char *what)
{
    return eddy__op_fail(op, EDDY_ERR_INVALID,
                         "%s: a record of the %s input has no timestamp; give "
                         "both inputs event timestamps with "
                         "eddy_assign_timestamps",
                         what, side == LEFT ? "left" : "right");
}

/* ---- interval join ---- */

/* Joins a record of `side` at `ts` with the other side's buckets in
 * [lo, hi]. */
static int ij_join(eddy__op_t *op, join_state_t *js, const eddy_record_t *rec,
                   int side, int64_t lo, int64_t hi)
{
    eddy__kstate_t *ks = js->js_ks;
    const eddy__kstate_ops_t *ko = ks->ks_ops;
    int other = 1 - side;
    eddy__skey_t k = op->op_ctx.cx_key;
    eddy__siter_t mi;
    if (ko->ko_map_iter(ks, SID_INDEX(other), &k, &mi) != 1) {
        return 0;
    }
    const void *uk, *v;
    size_t uklen, vlen;
    while (ko->ko_map_next(&mi, &uk, &uklen, &v, &vlen) == 1) {
        int64_t b;
        if (uklen != sizeof(b)) {
            continue;
        }
        memcpy(&b, uk, sizeof(b));
        if (b < lo || b > hi) {
            continue;
        }
        eddy__skey_t bk = k;
        bk.sk_ns = uk;
        bk.sk_nslen = sizeof(b);
        eddy__siter_t li;
        if (ko->ko_list_iter(ks, SID_BUF(other), &bk, &li) != 1) {
            continue;
        }
        const void *ov;
        size_t ovlen;
        while (ko->ko_list_next(&li, &ov, &ovlen) == 1) {
            eddy_record_t o = {rec->key, rec->key_len, ov, ovlen, b};
            int64_t ts = EDDY_MAX(rec->ts, b);
            int rc = side == LEFT ? call_join(op, js, rec, &o, ts)
                                  : call_join(op, js, &o, rec, ts);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int ij_process_side(eddy__op_t *op, const eddy_record_t *rec, int side)
{
    join_state_t *js = op->op_data;
    const join_config_t *cfg = js->js_cfg;
    eddy__kstate_t *ks = js->js_ks;
    const eddy__kstate_ops_t *ko = ks->ks_ops;
    int64_t t = rec->ts;
    if (EDDY_UNLIKELY(t == EDDY_TS_NONE)) {
        return join_fail_no_ts(op, side, "interval join");
    }
    if (op->op_in_wm != INT64_MIN && t < op->op_in_wm) {
        js->js_late++;
        return 0;
    }
    set_key(op, rec);
    eddy__skey_t k = op->op_ctx.cx_key;
    unsigned char tsb[sizeof(int64_t)];
    memcpy(tsb, &t, sizeof(t));

    /* Buffer the record: bucket list, then the bucket's count. */
    eddy__skey_t bk = k;
    bk.sk_ns = tsb;
    bk.sk_nslen = sizeof(tsb);
    int rc =
        ko->ko_list_add(ks, SID_BUF(side), &bk, rec->value, rec->value_len);
    if (rc != 0) {
        return state_error(op, rc);
    }
    uint64_t count = 0;
    const void *cv;
    size_t cvlen;
    if (ko->ko_map_get(ks, SID_INDEX(side), &k, tsb, sizeof(tsb), &cv,
                       &cvlen) == 1 &&
        cvlen == sizeof(count)) {
        memcpy(&count, cv, sizeof(count));
    }
    count++;
    rc = ko->ko_map_put(ks, SID_INDEX(side), &k, tsb, sizeof(tsb), &count,
                        sizeof(count));
    if (rc != 0) {
        return state_error(op, rc);
    }
    buffered_add(js, 1);

    /* Join with the other side. A left record matches right records in
     * [t + lower, t + upper]; a right one left records in
     * [t - upper, t - lower]. */
    int64_t lo, hi, keep;
    if (side == LEFT) {
        lo = sat_add(t, cfg->jc_lower);
        hi = sat_add(t, cfg->jc_upper);
        keep = EDDY_MAX(cfg->jc_upper, 0);
    } else {
        lo = sat_add(t, sat_neg(cfg->jc_upper));
        hi = sat_add(t, sat_neg(cfg->jc_lower));
        keep = EDDY_MAX(sat_neg(cfg->jc_lower), 0);
    }
    rc = ij_join(op, js, rec, side, lo, hi);
    op->op_ctx.cx_has_key = false;
    if (rc != 0) {
        return rc;
    }

    /* Cleanup once the watermark passes t + keep (see the header). */
    unsigned char ns[1 + sizeof(int64_t)];
    ns[0] = (unsigned char)side;
    memcpy(ns + 1, &t, sizeof(t));
    eddy__skey_t tk = k;
    tk.sk_ns = ns;
    tk.sk_nslen = sizeof(ns);
    rc = eddy__timers_add(js->js_timers, EDDY__TIME_EVENT,
                          sat_add(sat_add(t, keep), 1), &tk);
    if (rc != 0) {
        return eddy__op_fail(op, rc, "out of memory registering a timer");
    }
    return 0;
}

static int ij_process1(void *op, const eddy_record_t *rec)
{
    return ij_process_side(op, rec, LEFT);
}

static int ij_process2(void *op, const eddy_record_t *rec)
{
    return ij_process_side(op, rec, RIGHT);
}

/* A cleanup timer: drops one bucket of one side. */
static int ij_cleanup(eddy__op_t *op, join_state_t *js, const eddy__timer_t *tm)
{
    eddy__kstate_t *ks = js->js_ks;
    const eddy__kstate_ops_t *ko = ks->ks_ops;
    const unsigned char *ns = tm->tm_key.sk_ns;
    if (tm->tm_key.sk_nslen != 1 + sizeof(int64_t) || ns[0] > RIGHT) {
        return eddy__op_fail(op, EDDY_ERR_STATE,
                             "interval join: malformed cleanup timer");
    }
    int side = ns[0];
    eddy__skey_t k = tm->tm_key;
    k.sk_ns = NULL;
    k.sk_nslen = 0;
    uint64_t count = 0;
    const void *cv;
    size_t cvlen;
    if (ko->ko_map_get(ks, SID_INDEX(side), &k, ns + 1, sizeof(int64_t), &cv,
                       &cvlen) == 1 &&
        cvlen == sizeof(count)) {
        memcpy(&count, cv, sizeof(count));
    }
    int rc =
        ko->ko_map_remove(ks, SID_INDEX(side), &k, ns + 1, sizeof(int64_t));
    if (rc == 0) {
        eddy__skey_t bk = tm->tm_key;
        bk.sk_ns = ns + 1;
        bk.sk_nslen = sizeof(int64_t);
        rc = ko->ko_remove(ks, SID_BUF(side), &bk);
    }
    if (rc != 0) {
        return state_error(op, rc);
    }
    buffered_remove(op, js, count);
    return 0;
}

static int ij_watermark(eddy__op_t *op, int64_t wm)
{
    join_state_t *js = op->op_data;
    eddy__timer_t tm;
    while (eddy__timers_pop(js->js_timers, EDDY__TIME_EVENT, wm, &tm) == 1) {
        int rc = ij_cleanup(op, js, &tm);
        if (rc != 0) {
            return rc;
        }
    }
    return eddy__op_forward_watermark(op, wm);
}

static const eddy__op_class_t interval_join_class = {
    .oc_kind = "IntervalJoin",
    .oc_keyed_input = true,
    .oc_inputs = 2,
    .oc_open = join_open,
    .oc_process = ij_process1,
    .oc_process2 = ij_process2,
    .oc_watermark = ij_watermark,
    .oc_close = join_close,
};

/* ---- window join ---- */

#define WIN_NS 16 /* namespace: start, end (host-order int64) */
#define WIN_MAX_SIZE ((int64_t)1 << 61)

static void win_encode(unsigned char ns[WIN_NS], int64_t start, int64_t end)
{
    memcpy(ns, &start, 8);
    memcpy(ns + 8, &end, 8);
}

static void win_decode(const unsigned char *ns, int64_t *start, int64_t *end)
{
    memcpy(start, ns, 8);
    memcpy(end, ns + 8, 8);
}

/* Flink's TimeWindow.getWindowStartWithOffset, without overflow: 1 and
 * *start, or 0 if the window start is out of range. */
static int window_start(int64_t ts, int64_t offset, int64_t size,
                        int64_t *start)
{
    int64_t rem = (ts % size - offset % size) % size;
    if (rem < 0) {
        rem += size;
    }
    return !__builtin_sub_overflow(ts, rem, start);
}

static int64_t win_cleanup_time(const eddy_window_spec_t *w, int64_t end)
{
    int64_t max_ts = end - 1;
    if (w->domain != EDDY_EVENT_TIME) {
        return max_ts;
    }
    return sat_add(max_ts, w->allowed_lateness_ms);
}

/* Fires one window of the current key: every (left, right) pair, with the
 * window visible to the join function (eddy_ctx_window). */
static int wj_fire(eddy__op_t *op, join_state_t *js, const eddy__skey_t *wk,
                   int64_t start, int64_t end)
{
    eddy__kstate_t *ks = js->js_ks;
    const eddy__kstate_ops_t *ko = ks->ks_ops;
    eddy__siter_t li, ri;
    if (ko->ko_list_iter(ks, SID_BUF(LEFT), wk, &li) != 1 ||
        ko->ko_list_iter(ks, SID_BUF(RIGHT), wk, &ri) != 1) {
        return 0;
    }
    const void *lv, *rv;
    size_t llen, rlen;
    eddy_window_t win = {start, end};
    int rc = 0;
    op->op_ctx.cx_window = &win;
    while (rc == 0 && ko->ko_list_next(&li, &lv, &llen) == 1) {
        eddy_record_t l = {wk->sk_key, wk->sk_klen, (const char *)lv + 8,
                           llen - 8, EDDY_TS_NONE};
        memcpy(&l.ts, lv, 8);
        ko->ko_list_iter(ks, SID_BUF(RIGHT), wk, &ri);
        while (rc == 0 && ko->ko_list_next(&ri, &rv, &rlen) == 1) {
            eddy_record_t r = {wk->sk_key, wk->sk_klen, (const char *)rv + 8,
                               rlen - 8, EDDY_TS_NONE};
            memcpy(&r.ts, rv, 8);
            rc = call_join(op, js, &l, &r, end - 1);
        }
    }
    op->op_ctx.cx_window = NULL;
    return rc;
}

/* Counts a window's elements (both sides) and removes them. */
static int wj_clear(eddy__op_t *op, join_state_t *js, const eddy__skey_t *wk)
{
    eddy__kstate_t *ks = js->js_ks;
    const eddy__kstate_ops_t *ko = ks->ks_ops;
    uint64_t n = 0;
    for (int side = LEFT; side <= RIGHT; side++) {
        eddy__siter_t it;
        const void *v;
        size_t len;
        if (ko->ko_list_iter(ks, SID_BUF(side), wk, &it) == 1) {
            while (ko->ko_list_next(&it, &v, &len) == 1) {
                n++;
            }
        }
        int rc = ko->ko_remove(ks, SID_BUF(side), wk);
        if (rc != 0) {
            return state_error(op, rc);
        }
    }
    buffered_remove(op, js, n);
    return 0;
}

/* A window timer of the current key (wk carries the window namespace). */
static int wj_on_timer(eddy__op_t *op, join_state_t *js, const eddy__skey_t *wk,
                       int64_t ts)
{
    const eddy_window_spec_t *w = &js->js_cfg->jc_w;
    int64_t start, end;
    if (wk->sk_nslen != WIN_NS) {
        return eddy__op_fail(op, EDDY_ERR_STATE,
                             "window join: malformed window timer");
    }
    win_decode(wk->sk_ns, &start, &end);
    int rc = 0;
    bool cleanup = ts == win_cleanup_time(w, end);
    if (ts == end - 1) {
        rc = wj_fire(op, js, wk, start, end);
        if (rc == 0 && w->purging && !cleanup) {
            rc = wj_clear(op, js, wk);
        }
    }
    if (rc == 0 && cleanup) {
        rc = wj_clear(op, js, wk);
    }
    return rc;
}

static int wj_fire_timers(eddy__op_t *op, int domain, int64_t limit)
{
    join_state_t *js = op->op_data;
    eddy__timer_t tm;
    while (eddy__timers_pop(js->js_timers, domain, limit, &tm) == 1) {
        op->op_ctx.cx_key = tm.tm_key;
        op->op_ctx.cx_has_key = true;
        int rc = wj_on_timer(op, js, &tm.tm_key, tm.tm_ts);
        op->op_ctx.cx_has_key = false;
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int wj_register(eddy__op_t *op, join_state_t *js, int domain,
                       int64_t when, const eddy__skey_t *wk)
{
    int rc = eddy__timers_add(js->js_timers, domain, when, wk);
    if (rc != 0) {
        return eddy__op_fail(op, rc, "out of memory registering a timer");
    }
    if (domain == EDDY__TIME_PROCESSING && when < op->op_next_tick_ms) {
        op->op_next_tick_ms = when;
        eddy__task_update_tick(op->op_task);
    }
    return 0;
}

/* Adds the element to one window; fires it at once when the watermark has
 * already passed its end (a late record within the allowed lateness). */
static int wj_add(eddy__op_t *op, join_state_t *js, int side, int64_t start,
                  int64_t end, size_t elen)
{
    const eddy_window_spec_t *w = &js->js_cfg->jc_w;
    eddy__kstate_t *ks = js->js_ks;
    unsigned char ns[WIN_NS];
    win_encode(ns, start, end);
    eddy__skey_t wk = op->op_ctx.cx_key;
    wk.sk_ns = ns;
    wk.sk_nslen = WIN_NS;
    int rc = ks->ks_ops->ko_list_add(ks, SID_BUF(side), &wk, js->js_buf, elen);
    if (rc != 0) {
        return state_error(op, rc);
    }
    buffered_add(js, 1);
    if (w->domain == EDDY_PROCESSING_TIME) {
        return wj_register(op, js, EDDY__TIME_PROCESSING, end - 1, &wk);
    }
    int64_t wm = op->op_in_wm;
    int64_t cleanup = win_cleanup_time(w, end);
    if (wm != INT64_MIN && end - 1 <= wm) {
        rc = wj_fire(op, js, &wk, start, end);
        if (rc == 0 && w->purging) {
            rc = wj_clear(op, js, &wk);
        }
    } else {
        rc = wj_register(op, js, EDDY__TIME_EVENT, end - 1, &wk);
    }
    if (rc == 0 && cleanup != end - 1) {
        rc = wj_register(op, js, EDDY__TIME_EVENT, cleanup, &wk);
    }
    return rc;
}

static int wj_process_side(eddy__op_t *op, const eddy_record_t *rec, int side)
{
    join_state_t *js = op->op_data;
    const join_config_t *cfg = js->js_cfg;
    const eddy_window_spec_t *w = &cfg->jc_w;
    bool event = w->domain == EDDY_EVENT_TIME;
    int64_t t = rec->ts;
    if (event && EDDY_UNLIKELY(t == EDDY_TS_NONE)) {
        return join_fail_no_ts(op, side, "window join (event time)");
    }
    int64_t at = event ? t : eddy__now_ms();
    int64_t slide = w->kind == EDDY_WINDOW_SLIDING ? w->slide_ms : w->size_ms;
    int64_t last;
    if (!window_start(at, w->offset_ms, slide, &last)) {
        return eddy__op_fail(op, EDDY_ERR_INVALID,
                             "window join: timestamp %lld is out of range",
                             (long long)at);
    }
    /* Element: the record's timestamp, then its value. */
    size_t elen = 8 + rec->value_len;
    if (elen > js->js_buf_cap) {
        size_t cap = EDDY_MAX(elen, 2 * js->js_buf_cap);
        unsigned char *p = eddy__try_realloc(js->js_buf, cap);
        if (p == NULL) {
            return eddy__op_fail(op, EDDY_ERR_NOMEM, "out of memory");
        }
        js->js_buf = p;
        js->js_buf_cap = cap;
    }
    memcpy(js->js_buf, &t, 8);
    if (rec->value_len > 0) {
        memcpy(js->js_buf + 8, rec->value, rec->value_len);
    }
    set_key(op, rec);
    int64_t wm = op->op_in_wm;
    int64_t lowest; /* windows start after at - size */
    if (__builtin_sub_overflow(at, w->size_ms, &lowest)) {
        lowest = INT64_MIN;
    }
    bool added = false;
    int rc = 0;
    for (int64_t start = last; rc == 0 && start > lowest;) {
        int64_t end;
        if (__builtin_add_overflow(start, w->size_ms, &end)) {
            rc = eddy__op_fail(op, EDDY_ERR_INVALID,
                               "window join: timestamp %lld is out of range",
                               (long long)at);
            break;
        }
        if (!event || wm == INT64_MIN || win_cleanup_time(w, end) > wm) {
            rc = wj_add(op, js, side, start, end, elen);
            added = true;
        }
        if (__builtin_sub_overflow(start, slide, &start)) {
            break;
        }
    }
    op->op_ctx.cx_has_key = false;
    if (rc == 0 && !added) {
        /* Late for every window. */
        if (cfg->jc_late_tag >= 0) {
            eddy__tls_op = op;
            rc = eddy_collect(&op->op_side[cfg->jc_late_tag], rec);
        } else {
            js->js_late++;
        }
    }
    return rc;
}

static int wj_process1(void *op, const eddy_record_t *rec)
{
    return wj_process_side(op, rec, LEFT);
}

static int wj_process2(void *op, const eddy_record_t *rec)
{
    return wj_process_side(op, rec, RIGHT);
}

static int wj_watermark(eddy__op_t *op, int64_t wm)
{
    int rc = wj_fire_timers(op, EDDY__TIME_EVENT, wm);
    return rc != 0 ? rc : eddy__op_forward_watermark(op, wm);
}

static int wj_tick(eddy__op_t *op, int64_t now)
{
    join_state_t *js = op->op_data;
    int rc = wj_fire_timers(op, EDDY__TIME_PROCESSING, now);
    op->op_next_tick_ms =
        eddy__timers_next(js->js_timers, EDDY__TIME_PROCESSING);
    return rc;
}

/* End of a bounded input: processing-time windows fire now rather than
 * being lost. */
static int wj_end_input(eddy__op_t *op)
{
    int rc = wj_fire_timers(op, EDDY__TIME_PROCESSING, INT64_MAX);
    op->op_next_tick_ms = INT64_MAX;
    eddy__task_update_tick(op->op_task);
    return rc;
}

static const eddy__op_class_t window_join_class = {
    .oc_kind = "WindowJoin",
    .oc_keyed_input = true,
    .oc_inputs = 2,
    .oc_open = join_open,
    .oc_process = wj_process1,
    .oc_process2 = wj_process2,
    .oc_watermark = wj_watermark,
    .oc_tick = wj_tick,
    .oc_end_input = wj_end_input,
    .oc_close = join_close,
};

/* ---- graph building ---- */

static join_config_t *config_new(eddy_env_t *env, eddy_join_fn fn, void *opaque)
{
    join_config_t *cfg = eddy__arena_alloc(&env->e_arena, sizeof(*cfg));
    if (cfg == NULL) {
        eddy_env_fail(env, "out of memory");
        return NULL;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->jc_fn = fn;
    cfg->jc_opaque = opaque;
    cfg->jc_late_tag = -1;
    atomic_init(&cfg->jc_late, 0);
    atomic_init(&cfg->jc_expired, 0);
    atomic_init(&cfg->jc_peak, 0);
    atomic_init(&cfg->jc_leftover, 0);
    return cfg;
}

eddy_stream_t *eddy_interval_join(eddy_stream_t *left, eddy_stream_t *right,
                                  int64_t lower_ms, int64_t upper_ms,
                                  eddy_join_fn fn, void *opaque)
{
    if (left == NULL || right == NULL) {
        eddy_env_t *env = eddy__stream_env(left != NULL ? left : right);
        if (env != NULL && !env->e_failed) {
            eddy_env_fail(env, "eddy_interval_join: a stream is NULL");
        }
        return NULL;
    }
    eddy_env_t *env = left->s_env;
    if (fn == NULL) {
        eddy_env_fail(env, "eddy_interval_join: the join function must not "
                           "be NULL");
        return NULL;
    }
    if (lower_ms > upper_ms) {
        eddy_env_fail(env,
                      "eddy_interval_join: the lower bound (%lld ms) "
                      "must not exceed the upper bound (%lld ms)",
                      (long long)lower_ms, (long long)upper_ms);
        return NULL;
    }
    eddy_stream_t *in[2] = {left, right};
    eddy_stream_t *s = eddy__node_add(env, &interval_join_class, in, 2);
    if (s == NULL) {
        return NULL;
    }
    join_config_t *cfg = config_new(env, fn, opaque);
    if (cfg == NULL) {
        return NULL;
    }
    cfg->jc_lower = lower_ms;
    cfg->jc_upper = upper_ms;
    s->s_config = cfg;
    return s;
}

static const char *window_kind_name(int kind)
{
    switch (kind) {
    case EDDY_WINDOW_SESSION:
        return "session";
    case EDDY_WINDOW_GLOBAL:
        return "global";
    case EDDY_WINDOW_COUNT_TUMBLING:
        return "count";
    case EDDY_WINDOW_COUNT_SLIDING:
        return "sliding count";
    default:
        return "unknown";
    }
}

/* Checks a window spec for a join; records the error and returns false. */
static bool window_spec_ok(eddy_env_t *env, const eddy_window_spec_t *w)
{
    const char *api = "eddy_window_join";
    if (w->kind != EDDY_WINDOW_TUMBLING && w->kind != EDDY_WINDOW_SLIDING) {
        eddy_env_fail(env,
                      "%s: %s windows are not supported; joins take "
                      "tumbling or sliding time windows",
                      api, window_kind_name(w->kind));
        return false;
    }
    if (w->domain != EDDY_EVENT_TIME && w->domain != EDDY_PROCESSING_TIME) {
        eddy_env_fail(env, "%s: unknown time domain %d", api, (int)w->domain);
        return false;
    }
    /* The upper limit (~73 million years) keeps window arithmetic free of
     * overflow. */
    if (w->size_ms <= 0 || w->size_ms > WIN_MAX_SIZE) {
        eddy_env_fail(env,
                      "%s: the window size must be > 0 ms and at most "
                      "%lld ms, got %lld",
                      api, (long long)WIN_MAX_SIZE, (long long)w->size_ms);
        return false;
    }
    int64_t slide = w->size_ms;
    if (w->kind == EDDY_WINDOW_SLIDING) {
        if (w->slide_ms <= 0 || w->slide_ms > WIN_MAX_SIZE) {
            eddy_env_fail(env,
                          "%s: the window slide must be > 0 ms and at "
                          "most %lld ms, got %lld",
                          api, (long long)WIN_MAX_SIZE, (long long)w->slide_ms);
            return false;
        }
        slide = w->slide_ms;
    }
    if (w->offset_ms <= -slide || w->offset_ms >= slide) {
        eddy_env_fail(env,
                      "%s: the window offset (%lld ms) must be smaller "
                      "than the %s (%lld ms) in absolute value",
                      api, (long long)w->offset_ms,
                      w->kind == EDDY_WINDOW_SLIDING ? "slide" : "size",
                      (long long)slide);
        return false;
    }
    bool trigger_ok = w->trigger == EDDY_TRIGGER_DEFAULT ||
                      (w->trigger == EDDY_TRIGGER_EVENT_TIME &&
                       w->domain == EDDY_EVENT_TIME) ||
                      (w->trigger == EDDY_TRIGGER_PROCESSING_TIME &&
                       w->domain == EDDY_PROCESSING_TIME);
    if (!trigger_ok) {
        eddy_env_fail(env,
                      "%s: window joins fire when their windows end; "
                      "other triggers are not supported",
                      api);
        return false;
    }
    if (w->allowed_lateness_ms < 0) {
        eddy_env_fail(env,
                      "%s: the allowed lateness must be >= 0 ms, got "
                      "%lld",
                      api, (long long)w->allowed_lateness_ms);
        return false;
    }
    return true;
}

eddy_stream_t *eddy_window_join(eddy_stream_t *left, eddy_stream_t *right,
                                const eddy_window_spec_t *w, eddy_join_fn fn,
                                void *opaque)
{
    if (left == NULL || right == NULL) {
        eddy_env_t *env = eddy__stream_env(left != NULL ? left : right);
        if (env != NULL && !env->e_failed) {
            eddy_env_fail(env, "eddy_window_join: a stream is NULL");
        }
        return NULL;
    }
    eddy_env_t *env = left->s_env;
    if (fn == NULL) {
        eddy_env_fail(env, "eddy_window_join: the join function must not be "
                           "NULL");
        return NULL;
    }
    if (w == NULL) {
        eddy_env_fail(env, "eddy_window_join: no window given");
        return NULL;
    }
    if (!window_spec_ok(env, w)) {
        return NULL;
    }
    eddy_stream_t *in[2] = {left, right};
    eddy_stream_t *s = eddy__node_add(env, &window_join_class, in, 2);
    if (s == NULL) {
        return NULL;
    }
    join_config_t *cfg = config_new(env, fn, opaque);
    if (cfg == NULL) {
        return NULL;
    }
    cfg->jc_w = *w;
    if (w->late_output != NULL) {
        cfg->jc_w.late_output =
            eddy__arena_strdup(&env->e_arena, w->late_output);
        if (w->domain == EDDY_EVENT_TIME) {
            cfg->jc_late_tag = eddy_side_output_id(s, w->late_output);
            if (cfg->jc_late_tag < 0) {
                return NULL;
            }
        }
    }
    s->s_config = cfg;
    return s;
}

int eddy__join_stats(const eddy_stream_t *join, eddy__join_stats_t *out)
{
    if (join == NULL || join->s_kind != EDDY__NODE_OPERATOR ||
        (join->s_class != &interval_join_class &&
         join->s_class != &window_join_class)) {
        return EDDY_ERR_INVALID;
    }
    join_config_t *cfg = join->s_config;
    out->jst_late = atomic_load(&cfg->jc_late);
    out->jst_expired = atomic_load(&cfg->jc_expired);
    out->jst_peak = atomic_load(&cfg->jc_peak);
    out->jst_leftover = atomic_load(&cfg->jc_leftover);
    return 0;
}

uint64_t eddy__join_buffered(const eddy__op_t *op)
{
    const join_state_t *js = op->op_data;
    return js != NULL ? js->js_buffered : 0;
}
