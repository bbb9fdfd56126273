/*
 * eddy — unit tests for event time in the runtime: the watermark
 * multiplexer (src/runtime/wm_mux.c), watermark propagation and stream
 * status in tasks (src/runtime/task.c) and the timestamp assigner
 * (src/operators/watermarks.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Two kinds of tests:
 *   - multiplexer tests drive one eddy__wm_mux_t directly, with processing
 *     time passed in by hand, so idleness and periodic emission are exact;
 *   - job tests run pipelines through eddy_env_execute with the scripted
 *     sources and the recorder of wm_test_util.h: sources wait until the
 *     recorder has seen a watermark before their next step, which orders
 *     events across channels and makes the watermark sequences exact.
 */
#include "wm_test_util.h"

#include "runtime/wm_mux.h"

#define EXECUTE_OK(env)                                                        \
    do {                                                                       \
        eddy_error_t err_;                                                     \
        eddy_error_clear(&err_);                                               \
        TU_ASSERT_OK(eddy_env_execute((env), &err_), &err_);                   \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The multiplexer, driven directly                                         */
/* ------------------------------------------------------------------------ */

/* A source operator owning the multiplexer, with a chained successor that
 * logs the watermarks; the task has no channels. */
typedef struct mux_h {
    eddy__task_t task;
    eddy__op_t src;
    eddy__op_t rec;
    eddy__op_t *succ[1];
    eddy__op_t *ops[2];
    eddy__wm_mux_t mx;
    eddy_watermark_strategy_t ws;
    int64_t wms[64];
    size_t wm_after[64]; /* records emitted before each watermark */
    size_t nwm;
    int64_t ts[64];
    bool idle_at_emit[64]; /* the output's idle flag when the record left */
    size_t nts;
} mux_h_t;

static int h_capture(void *target, const eddy_record_t *rec)
{
    mux_h_t *h = target;
    assert_true(h->nts < EDDY_ARRAY_SIZE(h->ts));
    h->idle_at_emit[h->nts] = h->task.t_idle;
    h->ts[h->nts++] = rec->ts;
    return 0;
}

static int h_watermark(eddy__op_t *op, int64_t wm)
{
    mux_h_t *h = op->op_data;
    assert_true(h->nwm < EDDY_ARRAY_SIZE(h->wms));
    h->wm_after[h->nwm] = h->nts;
    h->wms[h->nwm++] = wm;
    return 0;
}

static const eddy__op_class_t h_rec_class = {
    .oc_kind = "Recorder",
    .oc_watermark = h_watermark,
};

static void h_init(mux_h_t *h, const eddy_watermark_strategy_t *ws,
                   int64_t interval_ms, int64_t now_ms)
{
    memset(h, 0, sizeof(*h));
    h->ws = *ws;
    h->task.t_name = "test";
    h->task.t_parallelism = 1;
    h->task.t_ops = h->ops;
    h->task.t_nops = 2;
    h->task.t_next_tick_ms = INT64_MAX;
    h->ops[0] = &h->src;
    h->ops[1] = &h->rec;
    eddy__op_t *ops[2] = {&h->src, &h->rec};
    for (int i = 0; i < 2; i++) {
        eddy__op_t *op = ops[i];
        op->op_ctx.cx_op = op;
        op->op_ctx.cx_parallelism = 1;
        op->op_ctx.cx_name = i == 0 ? "Source" : "Recorder";
        op->op_ctx.cx_scratch.sc_cap = 4096;
        op->op_ctx.cx_scratch.sc_base = malloc(4096);
        eddy__arena_init(&op->op_ctx.cx_scratch.sc_overflow, 16 * 1024);
        op->op_task = &h->task;
        op->op_next_tick_ms = INT64_MAX;
        op->op_in_wm = INT64_MIN;
        op->op_out_wm = INT64_MIN;
    }
    h->src.op_out = (eddy_collector_t){h_capture, h};
    h->succ[0] = &h->rec;
    h->src.op_succ = h->succ;
    h->src.op_nsucc = 1;
    h->rec.op_class = &h_rec_class;
    h->rec.op_data = h;
    eddy__wm_mux_init(&h->mx, &h->src, &h->ws, interval_ms, now_ms);
}

static void h_close(mux_h_t *h)
{
    eddy__wm_mux_close(&h->mx);
    eddy__op_t *ops[2] = {&h->src, &h->rec};
    for (int i = 0; i < 2; i++) {
        free(ops[i]->op_ctx.cx_scratch.sc_base);
        eddy__arena_close(&ops[i]->op_ctx.cx_scratch.sc_overflow);
    }
}

static void h_emit_rec(mux_h_t *h, int slot, const char *val, int64_t ts)
{
    eddy_record_t rec = {NULL, 0, val, strlen(val), ts};
    int rc = eddy__wm_mux_emit(&h->mx, slot, &rec);
    if (rc != 0) {
        fail_msg("emit failed (%d): %s", rc, h->src.op_errmsg);
    }
}

static void h_emit(mux_h_t *h, int slot, int64_t ts)
{
    h_emit_rec(h, slot, "x", ts);
}

static void h_tick(mux_h_t *h, int64_t now)
{
    assert_int_equal(eddy__wm_mux_tick(&h->mx, now), 0);
}

#define H_WMS(h, ...)                                                          \
    do {                                                                       \
        static const int64_t want_[] = {__VA_ARGS__};                          \
        wmt_assert_seq((h)->wms, (h)->nwm, want_, EDDY_ARRAY_SIZE(want_),      \
                       "watermarks");                                          \
    } while (0)

#define H_NO_WMS(h) assert_int_equal((h)->nwm, 0)

static void test_mux_bounded_periodic(void **state)
{
    (void)state;
    mux_h_t h;
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(50);
    h_init(&h, &ws, 10, 1000);
    int p = eddy__wm_mux_add(&h.mx, 1000);
    assert_int_equal(eddy__wm_mux_next_tick(&h.mx), 1010);
    h_emit(&h, p, 100);
    h_emit(&h, p, 300);
    h_emit(&h, p, 200);
    h_tick(&h, 1005); /* not due yet */
    H_NO_WMS(&h);
    h_tick(&h, 1010); /* max 300 - bound 50 - 1 */
    H_WMS(&h, 249);
    assert_int_equal(eddy__wm_mux_next_tick(&h.mx), 1020);
    h_emit(&h, p, 280); /* behind the maximum: no change */
    h_tick(&h, 1020);
    H_WMS(&h, 249);
    h_emit(&h, p, 400);
    h_tick(&h, 1030);
    H_WMS(&h, 249, 349);
    /* Records pass unchanged and in order. */
    assert_int_equal(h.nts, 5);
    assert_int_equal(h.ts[0], 100);
    assert_int_equal(h.ts[2], 200);
    assert_int_equal(h.ts[4], 400);
    h_close(&h);

    /* Monotonous: the largest timestamp - 1. */
    ws = eddy_watermarks_monotonous();
    h_init(&h, &ws, 10, 1000);
    p = eddy__wm_mux_add(&h.mx, 1000);
    h_emit(&h, p, 5);
    h_emit(&h, p, 7);
    h_emit(&h, p, 6);
    h_tick(&h, 1010);
    H_WMS(&h, 6);
    h_close(&h);
}

static void test_mux_follows_slowest_partition(void **state)
{
    (void)state;
    mux_h_t h;
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    h_init(&h, &ws, 10, 1000);
    int p0 = eddy__wm_mux_add(&h.mx, 1000);
    int p1 = eddy__wm_mux_add(&h.mx, 1000);
    assert_int_not_equal(p0, p1);
    h_emit(&h, p0, 1000);
    h_emit(&h, p0, 2000);
    h_tick(&h, 1010); /* p1 has no watermark yet: it holds back */
    H_NO_WMS(&h);
    h_emit(&h, p1, 10);
    h_tick(&h, 1020);
    H_WMS(&h, 9);
    h_emit(&h, p1, 500);
    h_tick(&h, 1030);
    H_WMS(&h, 9, 499);
    h_emit(&h, p0, 3000); /* the fast partition alone changes nothing */
    h_tick(&h, 1040);
    H_WMS(&h, 9, 499);
    h_emit(&h, p1, 2500);
    h_tick(&h, 1050);
    H_WMS(&h, 9, 499, 2499);
    assert_int_equal(h.mx.wx_parts[p0].wp_wm, 2999);
    assert_int_equal(h.mx.wx_parts[p1].wp_wm, 2499);
    h_close(&h);
}

static void test_mux_idle_partition_excluded(void **state)
{
    (void)state;
    mux_h_t h;
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    ws.idleness_ms = 50;
    h_init(&h, &ws, 10, 1000);
    int p0 = eddy__wm_mux_add(&h.mx, 1000);
    int p1 = eddy__wm_mux_add(&h.mx, 1000);
    h_emit(&h, p0, 100);
    h_emit(&h, p1, 10);
    h_tick(&h, 1010);
    H_WMS(&h, 9);
    /* p0 keeps producing; p1 was last active at the tick of 1010. */
    for (int64_t t = 1020; t <= 1050; t += 10) {
        h_emit(&h, p0, 100 + (t - 1000));
        h_tick(&h, t);
        assert_false(h.mx.wx_parts[p1].wp_idle);
    }
    H_WMS(&h, 9);
    h_emit(&h, p0, 160);
    h_tick(&h, 1060); /* 50 ms without records: p1 is idle */
    assert_true(h.mx.wx_parts[p1].wp_idle);
    assert_false(h.task.t_idle);
    H_WMS(&h, 9, 159);
    /* A late record wakes p1 up; its watermark (19) is behind: no
     * regression, and no progress while it is the minimum. */
    h_emit(&h, p1, 20);
    assert_false(h.mx.wx_parts[p1].wp_idle);
    h_emit(&h, p0, 170);
    h_tick(&h, 1070);
    H_WMS(&h, 9, 159);
    h_emit(&h, p1, 1000);
    h_emit(&h, p0, 180);
    h_tick(&h, 1080);
    H_WMS(&h, 9, 159, 179);
    h_close(&h);
}

static void test_mux_all_idle_marks_output_idle(void **state)
{
    (void)state;
    mux_h_t h;
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    ws.idleness_ms = 30;
    h_init(&h, &ws, 10, 1000);
    int p = eddy__wm_mux_add(&h.mx, 1000);
    h_emit(&h, p, 100);
    h_tick(&h, 1010);
    h_tick(&h, 1020);
    h_tick(&h, 1030);
    assert_false(h.task.t_idle);
    h_tick(&h, 1040); /* last active at 1010 */
    assert_true(h.task.t_idle);
    H_WMS(&h, 99);
    /* A record re-activates the output before it is emitted. */
    h_emit(&h, p, 50);
    assert_false(h.task.t_idle);
    assert_false(h.idle_at_emit[1]);
    h_tick(&h, 1050);
    H_WMS(&h, 99);
    h_close(&h);

    /* Without partitions a subtask is idle; a new partition without records
     * does not wake it, its first record does. */
    h_init(&h, &ws, 10, 1000);
    h_tick(&h, 1010);
    assert_true(h.task.t_idle);
    p = eddy__wm_mux_add(&h.mx, 1010);
    h_tick(&h, 1020);
    assert_true(h.task.t_idle);
    h_emit(&h, p, 7);
    assert_false(h.task.t_idle);
    h_tick(&h, 1030);
    H_WMS(&h, 6);
    h_close(&h);
}

static void test_mux_idle_without_interval(void **state)
{
    (void)state;
    /* Periodic emission off: the idleness timeout paces the ticks, and only
     * punctuated watermarks (none here) would be emitted. */
    mux_h_t h;
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    ws.idleness_ms = 30;
    h_init(&h, &ws, 0, 1000);
    assert_int_equal(eddy__wm_mux_next_tick(&h.mx), 1030);
    int p = eddy__wm_mux_add(&h.mx, 1000);
    h_emit(&h, p, 100);
    h_tick(&h, 1030);
    assert_false(h.task.t_idle);
    h_tick(&h, 1060);
    assert_true(h.task.t_idle);
    H_NO_WMS(&h);
    h_close(&h);

    /* Neither interval nor idleness: no ticks at all. */
    ws.idleness_ms = 0;
    h_init(&h, &ws, 0, 1000);
    assert_int_equal(eddy__wm_mux_next_tick(&h.mx), INT64_MAX);
    h_close(&h);
}

static void test_mux_finish_and_remove(void **state)
{
    (void)state;
    mux_h_t h;
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    h_init(&h, &ws, 10, 1000);
    int p0 = eddy__wm_mux_add(&h.mx, 1000);
    int p1 = eddy__wm_mux_add(&h.mx, 1000);
    h_emit(&h, p0, 1000);
    h_emit(&h, p1, 10);
    h_tick(&h, 1010);
    H_WMS(&h, 9);
    /* The slow partition finishes: the watermark moves on at once. */
    assert_int_equal(eddy__wm_mux_finish(&h.mx, p1), 0);
    H_WMS(&h, 9, 999);
    assert_int_equal(h.mx.wx_parts[p1].wp_state, EDDY__WM_PART_FINISHED);
    /* A new partition holds back until it has a watermark... */
    int p2 = eddy__wm_mux_add(&h.mx, 1010);
    assert_int_equal(p2, 2);
    h_emit(&h, p0, 2000);
    h_tick(&h, 1020);
    H_WMS(&h, 9, 999);
    /* ...or is revoked; its slot is then reused (the finished one is not). */
    assert_int_equal(eddy__wm_mux_remove(&h.mx, p2), 0);
    H_WMS(&h, 9, 999, 1999);
    assert_int_equal(eddy__wm_mux_add(&h.mx, 1020), 2);
    assert_int_equal(h.mx.wx_nlive, 2);
    h_close(&h);
}

/* Punctuated: every second record of a partition (counted in the
 * partition's own state) emits its timestamp. */
static int64_t every_second(void *state, const eddy_record_t *rec, void *opaque)
{
    (void)opaque;
    int64_t *count = state;
    return ++*count % 2 == 0 ? rec->ts : EDDY_TS_NONE;
}

static void test_mux_punctuated_per_partition(void **state)
{
    (void)state;
    mux_h_t h;
    eddy_watermark_strategy_t ws =
        eddy_watermarks_custom(every_second, NULL, sizeof(int64_t), NULL);
    h_init(&h, &ws, 10, 1000);
    int p0 = eddy__wm_mux_add(&h.mx, 1000);
    int p1 = eddy__wm_mux_add(&h.mx, 1000);
    h_emit(&h, p0, 10);
    h_emit(&h, p0, 20); /* p0: 20, p1: none */
    h_emit(&h, p1, 5);
    h_emit(&h, p1, 15); /* min(20, 15) */
    h_emit(&h, p0, 30);
    h_emit(&h, p0, 40); /* min(40, 15): no change */
    h_emit(&h, p1, 25);
    h_emit(&h, p1, 35); /* min(40, 35) */
    h_tick(&h, 1010);   /* no periodic generator */
    H_WMS(&h, 15, 35);
    /* Emitted right after the record that produced them. */
    assert_int_equal(h.wm_after[0], 4);
    assert_int_equal(h.wm_after[1], 8);
    h_close(&h);
}

static int64_t keep_max(void *state, const eddy_record_t *rec, void *opaque)
{
    (void)opaque;
    int64_t *max = state;
    if (*max == 0 || rec->ts > *max) {
        *max = rec->ts;
    }
    return EDDY_TS_NONE;
}

static int64_t max_minus_100(void *state, void *opaque)
{
    (void)opaque;
    const int64_t *max = state;
    return *max == 0 ? EDDY_TS_NONE : *max - 100;
}

static void test_mux_custom_periodic_per_partition(void **state)
{
    (void)state;
    mux_h_t h;
    eddy_watermark_strategy_t ws =
        eddy_watermarks_custom(keep_max, max_minus_100, sizeof(int64_t), NULL);
    h_init(&h, &ws, 10, 1000);
    int p0 = eddy__wm_mux_add(&h.mx, 1000);
    int p1 = eddy__wm_mux_add(&h.mx, 1000);
    h_emit(&h, p0, 500);
    h_tick(&h, 1010);
    H_NO_WMS(&h); /* p1's generator has nothing yet */
    h_emit(&h, p1, 300);
    h_emit(&h, p0, 450);
    h_tick(&h, 1020);
    H_WMS(&h, 200);
    h_close(&h);
}

static int64_t ts_from_value(eddy_ctx_t *ctx, const eddy_record_t *rec,
                             int64_t prev, void *opaque)
{
    (void)ctx;
    (void)prev;
    (void)opaque;
    char buf[32];
    size_t n = EDDY_MIN(rec->value_len, sizeof(buf) - 1);
    memcpy(buf, rec->value, n);
    buf[n] = '\0';
    return atoll(buf);
}

static void test_mux_timestamps(void **state)
{
    (void)state;
    mux_h_t h;
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    ws.timestamp = ts_from_value;
    h_init(&h, &ws, 10, 1000);
    int p = eddy__wm_mux_add(&h.mx, 1000);
    h_emit_rec(&h, p, "123", EDDY_TS_NONE);
    h_emit_rec(&h, p, "77", 5);
    assert_int_equal(h.ts[0], 123);
    assert_int_equal(h.ts[1], 77);
    h_tick(&h, 1010);
    H_WMS(&h, 122);
    h_close(&h);

    /* No timestamp function and a record without timestamp: an error. */
    ws = eddy_watermarks_bounded(0);
    h_init(&h, &ws, 10, 1000);
    p = eddy__wm_mux_add(&h.mx, 1000);
    eddy_record_t rec = {NULL, 0, "x", 1, EDDY_TS_NONE};
    assert_int_equal(eddy__wm_mux_emit(&h.mx, p, &rec), EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(h.src.op_errmsg, "no timestamp");
    assert_int_equal(h.nts, 0);
    h_close(&h);
}

/* ------------------------------------------------------------------------ */
/* Propagation through tasks                                                */
/* ------------------------------------------------------------------------ */

/* An operator's input watermark is the minimum over its input channels. */
static void test_min_over_channels(void **state)
{
    (void)state;
    wmt_log_t *log = wmt_log_new();
    WMT_SCRIPT(a, "a", log, {WMT_WM, 1000}, {WMT_WAIT_WM, 1000}, {WMT_WM, 2000},
               {WMT_WAIT_WM, 2000}, {WMT_WM, 6000}, {WMT_WAIT_WM, 6000},
               {WMT_END, 0});
    WMT_SCRIPT(b, "b", log, {WMT_WM, 5000}, {WMT_WAIT_WM, 5000}, {WMT_WM, 7000},
               {WMT_WAIT_WM, 7000}, {WMT_END, 0});
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *u =
        eddy_union(wmt_script_source(env, &a), wmt_script_source(env, &b));
    wmt_recorder(u, log);
    EXECUTE_OK(env);
    /* 2000 -> 6000 on a shows b's 5000; a's end shows b's 7000. */
    WMT_ASSERT_WMS(log, 1000, 2000, 5000, 6000, 7000, INT64_MAX);
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* The same through keyed event-time timers: a timer fires only once both
 * inputs passed it. */
static atomic_llong timer_fired;

static int timer_process(eddy_ctx_t *ctx, const eddy_record_t *in,
                         eddy_collector_t *out, void *opaque)
{
    (void)out;
    (void)opaque;
    return eddy_timer_register(ctx, EDDY_EVENT_TIME, in->ts + 100);
}

static int timer_fire(eddy_ctx_t *ctx, int64_t ts, eddy_time_domain_t domain,
                      eddy_collector_t *out, void *opaque)
{
    (void)domain;
    (void)opaque;
    /* The watermark that fired the timer, seen from the operator. */
    int64_t wm = eddy_ctx_watermark(ctx);
    long long cur = atomic_load(&timer_fired);
    while (ts > cur && !atomic_compare_exchange_weak(&timer_fired, &cur, ts)) {
    }
    eddy_record_t rec = {NULL, 0, &wm, sizeof(wm), ts};
    return eddy_collect(out, &rec);
}

static void test_min_over_channels_timers(void **state)
{
    (void)state;
    atomic_store(&timer_fired, 0);
    wmt_log_t *log = wmt_log_new();
    /* The records register timers at 110 and 150; a's watermark runs ahead
     * to 1000 while b holds at 120, so only the timer at 110 fires until b
     * moves on. The recorder after the timers shows what fired when. */
    WMT_SCRIPT(a, "k", log, {WMT_REC, 10}, {WMT_WM, 1000}, {WMT_WAIT_REC, 2},
               {WMT_END, 0});
    WMT_SCRIPT(b, "k", log, {WMT_REC, 50}, {WMT_WM, 120}, {WMT_WAIT_REC, 1},
               {WMT_WM, 2000}, {WMT_WAIT_WM, 2000}, {WMT_END, 0});
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *u =
        eddy_union(wmt_script_source(env, &a), wmt_script_source(env, &b));
    eddy_process_fn_t fn = {timer_process, timer_fire, NULL};
    eddy_stream_t *p = eddy_process(eddy_key_by(u, NULL, NULL), &fn);
    wmt_recorder(p, log);
    EXECUTE_OK(env);
    /* Timer 110 fires at the watermark 120 (= min(1000, 120)); 150 only
     * once b moved to 2000, at 1000 (= min(1000, 2000)); a's end leaves
     * b's 2000. Timers fire before the watermark that fired them leaves. */
    WMT_ASSERT_EVENTS(log, -1, "r110 w120 r150 w1000 w2000 wMAX");
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* Watermarks only move forward, even when a channel's goes back. */
static void test_never_regress(void **state)
{
    (void)state;
    wmt_log_t *log = wmt_log_new();
    WMT_SCRIPT(s, "s", log, {WMT_WM_RAW, 100}, {WMT_WAIT_WM, 100},
               {WMT_WM_RAW, 50}, {WMT_WM_RAW, 80}, {WMT_WM_RAW, 120},
               {WMT_WAIT_WM, 120}, {WMT_END, 0});
    eddy_env_t *env = eddy_env_new();
    eddy_disable_chaining(wmt_recorder(wmt_script_source(env, &s), log));
    EXECUTE_OK(env);
    WMT_ASSERT_WMS(log, 100, 120, INT64_MAX);
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* A channel back from idleness with an older watermark does not pull the
 * operator's watermark back; it holds it until it catches up. */
static void test_idle_channel_returns_behind(void **state)
{
    (void)state;
    wmt_log_t *log = wmt_log_new();
    WMT_SCRIPT(a, "a", log, {WMT_WM, 300}, {WMT_WAIT_REC, 1}, {WMT_WM, 500},
               {WMT_WAIT_WM, 500}, {WMT_END, 0});
    WMT_SCRIPT(b, "b", log, {WMT_WM, 100}, {WMT_WAIT_WM, 100}, {WMT_IDLE, 0},
               {WMT_WAIT_WM, 300}, {WMT_ACTIVE, 0}, {WMT_WM, 150},
               {WMT_WM, 250}, {WMT_WM, 400}, {WMT_REC, 1}, {WMT_WAIT_WM, 400},
               {WMT_END, 0});
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *u =
        eddy_union(wmt_script_source(env, &a), wmt_script_source(env, &b));
    wmt_recorder(u, log);
    EXECUTE_OK(env);
    /* 100: min; 300: b idle; b's 150 and 250 change nothing; 400: a moved
     * to 500, b holds at 400; 500: b ended. */
    WMT_ASSERT_WMS(log, 100, 300, 400, 500, INT64_MAX);
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* When the last active channel goes idle, the watermark advances to the
 * largest over the channels (Flink's valve), then the output is idle. */
static void test_all_channels_idle(void **state)
{
    (void)state;
    wmt_log_t *log = wmt_log_new();
    WMT_SCRIPT(a, "a", log, {WMT_WM, 1000}, {WMT_WAIT_WM, 100}, {WMT_IDLE, 0},
               {WMT_WAIT_WM, 1000}, {WMT_END, 0});
    WMT_SCRIPT(b, "b", log, {WMT_WM, 100}, {WMT_WAIT_WM, 100}, {WMT_SLEEP, 30},
               {WMT_IDLE, 0}, {WMT_WAIT_WM, 1000}, {WMT_END, 0});
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *u =
        eddy_union(wmt_script_source(env, &a), wmt_script_source(env, &b));
    wmt_recorder(u, log);
    EXECUTE_OK(env);
    WMT_ASSERT_WMS(log, 100, 1000, INT64_MAX);
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* ------------------------------------------------------------------------ */
/* Idleness of eddy_assign_timestamps                                       */
/* ------------------------------------------------------------------------ */

/* Records 0, 10, 20 of key "a"; later indexes get timestamps the filter
 * drops, so the stream produces a few records and then nothing. */
static int gen_few(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                   void *opaque)
{
    (void)ctx;
    (void)opaque;
    out->key = "a";
    out->key_len = 1;
    out->value = "a";
    out->value_len = 1;
    out->ts = (int64_t)index * 10;
    return 0;
}

static int keep_first_three(eddy_ctx_t *ctx, const eddy_record_t *in,
                            void *opaque)
{
    (void)ctx;
    (void)opaque;
    return in->ts < 30;
}

static int gen_steady(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                      void *opaque)
{
    (void)ctx;
    (void)opaque;
    out->key = "b";
    out->key_len = 1;
    out->value = "b";
    out->value_len = 1;
    out->ts = 1000 + (int64_t)index * 10;
    return 0;
}

static int first_a_timer(eddy_ctx_t *ctx, const eddy_record_t *in,
                         eddy_collector_t *out, void *opaque)
{
    (void)out;
    (void)opaque;
    if (in->key_len == 1 && ((const char *)in->key)[0] == 'a' && in->ts == 0) {
        return eddy_timer_register(ctx, EDDY_EVENT_TIME, 500);
    }
    return 0;
}

static int timer_flag(eddy_ctx_t *ctx, int64_t ts, eddy_time_domain_t domain,
                      eddy_collector_t *out, void *opaque)
{
    (void)ctx;
    (void)ts;
    (void)domain;
    (void)out;
    (void)opaque;
    atomic_store(&timer_fired, 1);
    return 0;
}

typedef struct async_run {
    eddy_env_t *env;
    eddy_error_t err;
    int rc;
} async_run_t;

static void *run_thread(void *arg)
{
    async_run_t *ar = arg;
    ar->rc = eddy_env_execute(ar->env, &ar->err);
    return NULL;
}

static bool timer_has_fired(void *arg)
{
    (void)arg;
    return atomic_load(&timer_fired) != 0;
}

/* An unbounded input that stops producing goes idle after idleness_ms and
 * no longer holds back the timer of the other input. */
static void test_assigner_idleness_releases_timer(void **state)
{
    (void)state;
    atomic_store(&timer_fired, 0);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 10);
    eddy_watermark_strategy_t wa = eddy_watermarks_bounded(0);
    wa.idleness_ms = 30;
    eddy_watermark_strategy_t wb = eddy_watermarks_bounded(0);
    eddy_stream_t *a = eddy_assign_timestamps(
        eddy_filter(eddy_source_generator(env, 0, 500, gen_few, NULL),
                    keep_first_three, NULL),
        &wa);
    eddy_stream_t *b = eddy_assign_timestamps(
        eddy_source_generator(env, 0, 500, gen_steady, NULL), &wb);
    eddy_process_fn_t fn = {first_a_timer, timer_flag, NULL};
    eddy_sink_discard(
        eddy_process(eddy_key_by(eddy_union(a, b), NULL, NULL), &fn));
    async_run_t ar = {env, {0}, 0};
    eddy_error_clear(&ar.err);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_thread, &ar), 0);
    bool fired = tu_wait_until(timer_has_fired, NULL, 5000);
    eddy_env_cancel(env);
    tu_join(th, 10000, "job");
    assert_true(fired);
    assert_int_equal(ar.rc, EDDY_ERR_CANCELED);
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* eddy_assign_timestamps                                                   */
/* ------------------------------------------------------------------------ */

static void test_bounded_input_ends_with_max(void **state)
{
    (void)state;
    eddy_record_t recs[] = {{NULL, 0, "a", 1, 10}, {NULL, 0, "b", 1, 20}};
    /* Without any strategy, and with one that emits nothing periodic. */
    for (int with_ws = 0; with_ws < 2; with_ws++) {
        wmt_log_t *log = wmt_log_new();
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_watermark_interval(env, 0);
        eddy_stream_t *s = eddy_source_collection(env, recs, 2);
        eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
        if (with_ws) {
            s = eddy_assign_timestamps(s, &ws);
        }
        eddy_disable_chaining(wmt_recorder(s, log));
        EXECUTE_OK(env);
        WMT_ASSERT_EVENTS(log, -1, "r10 r20 wMAX");
        eddy_env_destroy(env);
        wmt_log_free(log);
    }
}

/* Upstream watermarks are replaced by the assigner's, except the final one;
 * chained to the source and behind a channel. */
static void test_assigner_replaces_upstream(void **state)
{
    (void)state;
    for (int chained = 0; chained < 2; chained++) {
        wmt_log_t *log = wmt_log_new();
        WMT_SCRIPT(s, "s", log, {WMT_REC, 5}, {WMT_WM, 100}, {WMT_REC, 6},
                   {WMT_WM, 200}, {WMT_END, 0});
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_watermark_interval(env, 0);
        eddy_watermark_strategy_t ws = eddy_watermarks_monotonous();
        eddy_stream_t *a =
            eddy_assign_timestamps(wmt_script_source(env, &s), &ws);
        if (!chained) {
            eddy_disable_chaining(a);
        }
        wmt_recorder(a, log);
        EXECUTE_OK(env);
        WMT_ASSERT_EVENTS(log, -1, "r5 r6 wMAX");
        eddy_env_destroy(env);
        wmt_log_free(log);
    }
}

/* Punctuated: emits exactly on the records whose value starts with '!'. */
static int64_t on_bang(void *state, const eddy_record_t *rec, void *opaque)
{
    (void)state;
    (void)opaque;
    return rec->value_len > 0 && ((const char *)rec->value)[0] == '!'
               ? rec->ts
               : EDDY_TS_NONE;
}

static void test_assigner_punctuated(void **state)
{
    (void)state;
    eddy_record_t recs[] = {
        {NULL, 0, "a", 1, 10},  {NULL, 0, "!b", 2, 20}, {NULL, 0, "c", 1, 30},
        {NULL, 0, "!d", 2, 40}, {NULL, 0, "!e", 2, 35}, {NULL, 0, "f", 1, 50},
    };
    wmt_log_t *log = wmt_log_new();
    eddy_env_t *env = eddy_env_new();
    eddy_watermark_strategy_t ws =
        eddy_watermarks_custom(on_bang, NULL, 0, NULL);
    wmt_recorder(
        eddy_assign_timestamps(eddy_source_collection(env, recs, 6), &ws), log);
    EXECUTE_OK(env);
    /* 35 < 40 is dropped: watermarks only advance. */
    WMT_ASSERT_EVENTS(log, -1, "r10 r20 w20 r30 r40 w40 r35 r50 wMAX");
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* Bounded out-of-orderness emits max_ts - bound - 1 on the periodic tick. */
static void test_assigner_bounded_value(void **state)
{
    (void)state;
    wmt_log_t *log = wmt_log_new();
    WMT_SCRIPT(s, "s", log, {WMT_REC, 100}, {WMT_REC, 300}, {WMT_REC, 200},
               {WMT_WAIT_WM, 249}, {WMT_END, 0});
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 10);
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(50);
    wmt_recorder(eddy_assign_timestamps(wmt_script_source(env, &s), &ws), log);
    EXECUTE_OK(env);
    WMT_ASSERT_EVENTS(log, -1, "r100 r300 r200 w249 wMAX");
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* An idle assigner emits no periodic watermark (which would make
 * downstream wait for the channel again). */
static int64_t clock_wm(void *state, void *opaque)
{
    (void)state;
    (void)opaque;
    return eddy__now_ms();
}

static void test_assigner_idle_emits_nothing(void **state)
{
    (void)state;
    wmt_log_t *log = wmt_log_new();
    WMT_SCRIPT(s, "s", log, {WMT_REC, 1}, {WMT_SLEEP, 120}, {WMT_END, 0});
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 10);
    eddy_watermark_strategy_t ws =
        eddy_watermarks_custom(NULL, clock_wm, 0, NULL);
    ws.idleness_ms = 30;
    wmt_recorder(eddy_assign_timestamps(wmt_script_source(env, &s), &ws), log);
    EXECUTE_OK(env);
    /* Watermarks follow the clock while active (at least two ticks before
     * the idleness timeout), then stop: the last one before MAX is at most
     * about idleness + one interval after the first. */
    int64_t wms[WMT_MAX_EVENTS];
    size_t n = wmt_wms(log, wms, WMT_MAX_EVENTS);
    assert_true(n >= 2);
    assert_int_equal(wms[n - 1], INT64_MAX);
    if (n >= 3) {
        int64_t span = wms[n - 2] - wms[0];
        if (span > 100) {
            fail_msg("watermarks kept coming for %lld ms after idleness",
                     (long long)span);
        }
    }
    eddy_env_destroy(env);
    wmt_log_free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mux_bounded_periodic),
        cmocka_unit_test(test_mux_follows_slowest_partition),
        cmocka_unit_test(test_mux_idle_partition_excluded),
        cmocka_unit_test(test_mux_all_idle_marks_output_idle),
        cmocka_unit_test(test_mux_idle_without_interval),
        cmocka_unit_test(test_mux_finish_and_remove),
        cmocka_unit_test(test_mux_punctuated_per_partition),
        cmocka_unit_test(test_mux_custom_periodic_per_partition),
        cmocka_unit_test(test_mux_timestamps),
        cmocka_unit_test(test_min_over_channels),
        cmocka_unit_test(test_min_over_channels_timers),
        cmocka_unit_test(test_never_regress),
        cmocka_unit_test(test_idle_channel_returns_behind),
        cmocka_unit_test(test_all_channels_idle),
        cmocka_unit_test(test_assigner_idleness_releases_timer),
        cmocka_unit_test(test_bounded_input_ends_with_max),
        cmocka_unit_test(test_assigner_replaces_upstream),
        cmocka_unit_test(test_assigner_punctuated),
        cmocka_unit_test(test_assigner_bounded_value),
        cmocka_unit_test(test_assigner_idle_emits_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
