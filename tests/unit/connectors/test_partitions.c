/*
 * eddy — unit tests for src/connectors/partitions.c (eddy_source_partitions,
 * eddy_source_with_watermarks) and, through a test-only partitioned source,
 * for per-partition watermarks of unbounded sources (idle partitions).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The bounded partitions source emits everything it has without pause, so
 * its periodic watermarks depend on when ticks happen; exact sequences use
 * punctuated generators. Idleness needs partitions that stop producing
 * without ending, which is what the test-only "stall" source below provides:
 * it uses the watermark multiplexer like a Kafka source would, and holds
 * partitions open until the pipeline has shown the expected effect (the
 * recorder saw a watermark, a window fired), so the job then ends by itself.
 */
#include "wm_test_util.h"

#include "runtime/wm_mux.h"

#define EXECUTE_OK(env)                                                        \
    do {                                                                       \
        eddy_error_t err_;                                                     \
        eddy_error_clear(&err_);                                               \
        TU_ASSERT_OK(eddy_env_execute((env), &err_), &err_);                   \
    } while (0)

static void run_expect_failure(eddy_env_t *env, const char *msg)
{
    eddy_error_t err;
    eddy_error_clear(&err);
    int rc = eddy_env_execute(env, &err);
    if (rc == 0) {
        fail_msg("expected the job to fail with \"%s\"", msg);
    }
    TU_ASSERT_CONTAINS(err.msg, msg);
}

static eddy_record_t rec_ts(const char *v, int64_t ts)
{
    return (eddy_record_t){NULL, 0, v, strlen(v), ts};
}

/* Tags each value with its subtask: "s<i>:<value>". */
static int tag_subtask(eddy_ctx_t *ctx, const eddy_record_t *in,
                       eddy_record_t *out, void *opaque)
{
    (void)opaque;
    char *buf = eddy_ctx_scratch(ctx, in->value_len + 16);
    int n = snprintf(buf, in->value_len + 16, "s%d:%.*s", eddy_ctx_subtask(ctx),
                     (int)in->value_len, (const char *)in->value);
    out->value = buf;
    out->value_len = (size_t)n;
    return 0;
}

/* The collected values of one subtask tag, joined by spaces. */
static char *values_of(eddy_collection_t *c, const char *tag)
{
    size_t cap = 16 + eddy_collection_count(c) * 32, used = 0;
    char *buf = calloc(1, cap);
    for (size_t i = 0; i < eddy_collection_count(c); i++) {
        const char *v = tu_coll_str(c, i);
        size_t tl = strlen(tag);
        if (strncmp(v, tag, tl) == 0 && v[tl] == ':') {
            used += (size_t)snprintf(buf + used, cap - used, "%s%s",
                                     used > 0 ? " " : "", v + tl + 1);
        }
    }
    return buf;
}

/* ------------------------------------------------------------------------ */
/* The partitions source                                                    */
/* ------------------------------------------------------------------------ */

static void test_interleaves_round_robin(void **state)
{
    (void)state;
    eddy_record_t p0[] = {rec_ts("a0", 1), rec_ts("a1", 2), rec_ts("a2", 3)};
    eddy_record_t p1[] = {rec_ts("b0", 4)};
    eddy_record_t p2[] = {rec_ts("c0", 5), rec_ts("c1", 6)};
    const eddy_record_t *parts[] = {p0, p1, NULL, p2};
    size_t counts[] = {3, 1, 0, 2};
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_source_partitions(env, parts, counts, 4);
    eddy_sink_collect(src, out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 6);
    static const char *const want[] = {"a0", "b0", "c0", "a1", "c1", "a2"};
    static const int64_t want_ts[] = {1, 4, 5, 2, 6, 3};
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(tu_coll_str(out, i), want[i]);
        assert_int_equal(eddy_collection_get(out, i)->ts, want_ts[i]);
    }
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

static void test_assigns_partitions_to_subtasks(void **state)
{
    (void)state;
    /* Five partitions on two subtasks: 0, 2, 4 and 1, 3; on six subtasks
     * the sixth has none and ends at once. */
    eddy_record_t recs[5][2];
    char names[5][2][8];
    const eddy_record_t *parts[5];
    size_t counts[5];
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < 2; i++) {
            snprintf(names[k][i], sizeof(names[k][i]), "p%dr%d", k, i);
            recs[k][i] = rec_ts(names[k][i], 10 * k + i);
        }
        parts[k] = recs[k];
        counts[k] = 2;
    }
    for (int par = 2; par <= 6; par += 4) {
        eddy_env_t *env = eddy_env_new();
        eddy_collection_t *out = eddy_collection_new();
        eddy_stream_t *src = eddy_parallelism(
            eddy_source_partitions(env, parts, counts, 5), par);
        eddy_sink_collect(
            eddy_parallelism(eddy_map(src, tag_subtask, NULL), par), out);
        EXECUTE_OK(env);
        assert_int_equal(eddy_collection_count(out), 10);
        char *s0 = values_of(out, "s0"), *s1 = values_of(out, "s1");
        if (par == 2) {
            assert_string_equal(s0, "p0r0 p2r0 p4r0 p0r1 p2r1 p4r1");
            assert_string_equal(s1, "p1r0 p3r0 p1r1 p3r1");
        } else {
            assert_string_equal(s0, "p0r0 p0r1");
            assert_string_equal(s1, "p1r0 p1r1");
            char *s5 = values_of(out, "s5");
            assert_string_equal(s5, "");
            free(s5);
        }
        free(s0);
        free(s1);
        eddy_collection_destroy(out);
        eddy_env_destroy(env);
    }
}

static void test_without_strategy_only_final_watermark(void **state)
{
    (void)state;
    eddy_record_t p0[] = {rec_ts("a", 100), rec_ts("b", 200)};
    eddy_record_t p1[] = {rec_ts("c", 50)};
    const eddy_record_t *parts[] = {p0, p1};
    size_t counts[] = {2, 1};
    wmt_log_t *log = wmt_log_new();
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 1);
    wmt_recorder(eddy_source_partitions(env, parts, counts, 2), log);
    EXECUTE_OK(env);
    WMT_ASSERT_EVENTS(log, -1, "r100 r50 r200 wMAX");
    eddy_env_destroy(env);
    wmt_log_free(log);
}

static int64_t wm_is_ts(void *state, const eddy_record_t *rec, void *opaque)
{
    (void)state;
    (void)opaque;
    return rec->ts;
}

/* One partition far behind the other: the source's watermark follows the
 * slow one until it finishes, then the fast one. */
static void test_follows_slowest_then_finished(void **state)
{
    (void)state;
    eddy_record_t fast[] = {rec_ts("f", 100), rec_ts("f", 200),
                            rec_ts("f", 300), rec_ts("f", 400),
                            rec_ts("f", 500), rec_ts("f", 600)};
    eddy_record_t slow[] = {rec_ts("s", 10), rec_ts("s", 20), rec_ts("s", 30)};
    const eddy_record_t *parts[] = {fast, slow};
    size_t counts[] = {6, 3};
    wmt_log_t *log = wmt_log_new();
    eddy_env_t *env = eddy_env_new();
    eddy_watermark_strategy_t ws =
        eddy_watermarks_custom(wm_is_ts, NULL, 0, NULL);
    eddy_stream_t *src = eddy_source_with_watermarks(
        eddy_parallelism(eddy_source_partitions(env, parts, counts, 2), 1),
        &ws);
    wmt_recorder(src, log);
    EXECUTE_OK(env);
    /* 100 alone: the slow partition has no watermark yet. The slow one
     * finishes with its last record (30): the fast one's 300 takes over. */
    WMT_ASSERT_EVENTS(log, -1,
                      "r100 r10 w10 r200 r20 w20 r300 r30 w30 w300 r400 w400 "
                      "r500 w500 r600 w600 wMAX");
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* Periodic watermarks of a partitioned source never pass the slow
 * partition, whenever the ticks happen. */
static void test_periodic_never_passes_slowest(void **state)
{
    (void)state;
    /* More records than one poll emits (4096), so ticks fall in between. */
    enum { N = 20000 };
    eddy_record_t *fast = calloc(N, sizeof(*fast));
    eddy_record_t *slow = calloc(N, sizeof(*slow));
    for (int i = 0; i < N; i++) {
        fast[i] = rec_ts("f", 1000000 + i);
        slow[i] = rec_ts("s", i);
    }
    const eddy_record_t *parts[] = {fast, slow};
    size_t counts[] = {N, N};
    wmt_log_t *log = wmt_log_new_cap(4 * N);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 1);
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    eddy_stream_t *src = eddy_source_with_watermarks(
        eddy_parallelism(eddy_source_partitions(env, parts, counts, 2), 1),
        &ws);
    wmt_recorder(src, log);
    EXECUTE_OK(env);
    assert_false(log->overflow);
    /* Every watermark before the slow partition's last record is below the
     * slow partition's largest timestamp so far. */
    int64_t slow_max = INT64_MIN;
    size_t nslow = 0;
    for (size_t i = 0; i < log->nev; i++) {
        const wmt_event_t *e = &log->ev[i];
        if (e->kind == 'r' && e->val[0] == 's') {
            slow_max = e->v;
            nslow++;
        } else if (e->kind == 'w' && nslow < N && e->v > slow_max - 1) {
            fail_msg("watermark %lld after slow record %lld", (long long)e->v,
                     (long long)slow_max);
        }
    }
    assert_int_equal(nslow, N);
    free(fast);
    free(slow);
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* Per-partition watermarks keep out-of-order partitions on time: with odd
 * partitions 1.5 s ahead of even ones on the same subtask, no window record
 * is late. */
static void test_windows_on_partitions(void **state)
{
    (void)state;
    enum { NP = 4, NR = 300 };
    static eddy_record_t recs[NP][NR];
    static char keys[5][4] = {"k0", "k1", "k2", "k3", "k4"};
    const eddy_record_t *parts[NP];
    size_t counts[NP];
    int64_t want[5][64] = {{0}}; /* per key, per 100 ms window */
    for (int k = 0; k < NP; k++) {
        for (int i = 0; i < NR; i++) {
            int64_t ts = (int64_t)i * 10 + (k % 2) * 1500;
            recs[k][i] = (eddy_record_t){keys[i % 5], 2, "v", 1, ts};
            want[i % 5][ts / 100]++;
        }
        parts[k] = recs[k];
        counts[k] = NR;
    }
    for (int par = 1; par <= 3; par++) {
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_parallelism(env, par);
        eddy_env_set_watermark_interval(env, 1);
        eddy_collection_t *out = eddy_collection_new();
        eddy_watermark_strategy_t ws = eddy_watermarks_monotonous();
        eddy_stream_t *src = eddy_source_with_watermarks(
            eddy_source_partitions(env, parts, counts, NP), &ws);
        eddy_window_spec_t w = eddy_window_tumbling(100);
        eddy_stream_t *win = eddy_window_aggregate(eddy_key_by(src, NULL, NULL),
                                                   &w, eddy_agg_count());
        eddy_sink_collect(win, out);
        EXECUTE_OK(env);
        assert_int_equal(eddy_late_records_dropped(win), 0);
        int64_t got[5][64] = {{0}};
        for (size_t i = 0; i < eddy_collection_count(out); i++) {
            const eddy_record_t *r = eddy_collection_get(out, i);
            int key = ((const char *)r->key)[1] - '0';
            got[key][r->ts / 100] += eddy_record_value_i64(r);
        }
        for (int key = 0; key < 5; key++) {
            for (int win_i = 0; win_i < 64; win_i++) {
                if (got[key][win_i] != want[key][win_i]) {
                    fail_msg("p=%d key k%d window %d: %lld records, want %lld",
                             par, key, win_i, (long long)got[key][win_i],
                             (long long)want[key][win_i]);
                }
            }
        }
        eddy_collection_destroy(out);
        eddy_env_destroy(env);
    }
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

static void test_timestamps_assigned_per_record(void **state)
{
    (void)state;
    eddy_record_t p0[] = {rec_ts("30", EDDY_TS_NONE), rec_ts("40", 1)};
    eddy_record_t p1[] = {rec_ts("35", EDDY_TS_NONE)};
    const eddy_record_t *parts[] = {p0, p1};
    size_t counts[] = {2, 1};
    wmt_log_t *log = wmt_log_new();
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 1);
    eddy_watermark_strategy_t ws =
        eddy_watermarks_custom(wm_is_ts, NULL, 0, NULL);
    ws.timestamp = ts_from_value;
    wmt_recorder(eddy_source_with_watermarks(
                     eddy_source_partitions(env, parts, counts, 2), &ws),
                 log);
    EXECUTE_OK(env);
    /* p1 finishes with 35 (after min(30, 35)); p0 is then alone. */
    WMT_ASSERT_EVENTS(log, -1, "r30 r35 w30 r40 w40 wMAX");
    eddy_env_destroy(env);
    wmt_log_free(log);

    /* Records without timestamps and no timestamp function: a clear error. */
    env = eddy_env_new();
    ws = eddy_watermarks_bounded(0);
    eddy_sink_discard(eddy_source_with_watermarks(
        eddy_source_partitions(env, parts, counts, 2), &ws));
    run_expect_failure(env, "no timestamp");
    eddy_env_destroy(env);
}

/* Any other source: a timestamp assigner chained after it. */
static int64_t on_bang(void *state, const eddy_record_t *rec, void *opaque)
{
    (void)state;
    (void)opaque;
    return rec->value_len > 0 && ((const char *)rec->value)[0] == '!'
               ? rec->ts
               : EDDY_TS_NONE;
}

static void test_with_watermarks_on_plain_source(void **state)
{
    (void)state;
    eddy_record_t recs[] = {rec_ts("a", 10), rec_ts("!b", 20), rec_ts("c", 30),
                            rec_ts("!d", 40)};
    wmt_log_t *log = wmt_log_new();
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 3);
    eddy_watermark_strategy_t ws =
        eddy_watermarks_custom(on_bang, NULL, 0, NULL);
    eddy_stream_t *src = eddy_source_collection(env, recs, 4);
    eddy_stream_t *s = eddy_source_with_watermarks(src, &ws);
    assert_non_null(s);
    assert_ptr_not_equal(s, src);
    eddy_parallelism(wmt_recorder(s, log), 1);
    EXECUTE_OK(env);
    /* The collection's parallelism (1) is kept: one chain, in order. */
    WMT_ASSERT_EVENTS(log, -1, "r10 r20 w20 r30 r40 w40 wMAX");
    eddy_env_destroy(env);
    wmt_log_free(log);
}

static int ident(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
                 void *opaque)
{
    (void)ctx;
    (void)in;
    (void)out;
    (void)opaque;
    return 0;
}

static void expect_build_error(eddy_env_t *env, const char *msg)
{
    run_expect_failure(env, msg);
    eddy_env_destroy(env);
}

static void test_errors(void **state)
{
    (void)state;
    eddy_record_t p0[] = {rec_ts("a", 1)};
    const eddy_record_t *parts[] = {p0, NULL};
    size_t counts[] = {1, 1};
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    eddy_env_t *env;

    env = eddy_env_new();
    assert_null(eddy_source_partitions(env, parts, counts, 2));
    expect_build_error(env, "partition 1 is NULL but has 1 records");

    env = eddy_env_new();
    assert_null(eddy_source_partitions(env, NULL, counts, 1));
    expect_build_error(env, "partitions or counts is NULL");

    assert_null(eddy_source_partitions(NULL, parts, counts, 1));
    assert_null(eddy_source_with_watermarks(NULL, &ws));

    env = eddy_env_new();
    eddy_stream_t *m =
        eddy_map(eddy_source_partitions(env, parts, counts, 1), ident, NULL);
    assert_null(eddy_source_with_watermarks(m, &ws));
    expect_build_error(env, "is not a source; use eddy_assign_timestamps");

    env = eddy_env_new();
    eddy_stream_t *src = eddy_source_partitions(env, parts, counts, 1);
    assert_ptr_equal(eddy_source_with_watermarks(src, &ws), src);
    assert_null(eddy_source_with_watermarks(src, &ws));
    expect_build_error(env, "already has a watermark strategy");

    env = eddy_env_new();
    src = eddy_source_partitions(env, parts, counts, 1);
    assert_null(eddy_source_with_watermarks(src, NULL));
    expect_build_error(env, "no strategy given");

    env = eddy_env_new();
    src = eddy_source_partitions(env, parts, counts, 1);
    eddy_watermark_strategy_t bad = eddy_watermarks_bounded(-1);
    assert_null(eddy_source_with_watermarks(src, &bad));
    expect_build_error(env, "bound must be >= 0 ms");

    env = eddy_env_new();
    src = eddy_source_partitions(env, parts, counts, 1);
    bad = eddy_watermarks_bounded(0);
    bad.idleness_ms = -5;
    assert_null(eddy_source_with_watermarks(src, &bad));
    expect_build_error(env, "idleness must be >= 0 ms");

    /* No partitions at all: a source that ends at once. */
    env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(eddy_source_with_watermarks(
                          eddy_source_partitions(env, NULL, NULL, 0), &ws),
                      out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 0);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* Unbounded partitions: a test-only source on the multiplexer              */
/* ------------------------------------------------------------------------ */

typedef enum stall_after {
    AFTER_FINISH, /* finish right after the last record */
    AFTER_HOLD,   /* stay open, silent, until released */
    AFTER_REPEAT  /* re-emit the last record every 2 ms until released */
} stall_after_t;

typedef struct stall_part {
    const int64_t *ts;
    size_t n;
    stall_after_t after;
    int64_t release; /* finish once *watch >= release */
} stall_part_t;

typedef struct stall_cfg {
    eddy_watermark_strategy_t ws;
    const char *key;
    const stall_part_t *parts;
    size_t nparts;
    atomic_llong *watch;
} stall_cfg_t;

typedef struct stall_state {
    eddy__wm_mux_t mx;
    int slot[8];
    size_t next[8];
    bool done[8];
    int64_t last_repeat_ms[8];
    size_t ndone;
    size_t cursor;
    int64_t start_ms;
} stall_state_t;

static int stall_open(eddy__op_t *op)
{
    const stall_cfg_t *cfg = op->op_node->s_config;
    stall_state_t *st = calloc(1, sizeof(*st));
    op->op_data = st;
    int64_t now = eddy__now_ms();
    st->start_ms = now;
    eddy__wm_mux_init(&st->mx, op, &cfg->ws,
                      op->op_node->s_env->e_wm_interval_ms, now);
    for (size_t i = 0; i < cfg->nparts; i++) {
        st->slot[i] = eddy__wm_mux_add(&st->mx, now);
    }
    op->op_next_tick_ms = eddy__wm_mux_next_tick(&st->mx);
    return 0;
}

static int stall_emit(eddy__op_t *op, stall_state_t *st, size_t i, int64_t ts)
{
    const stall_cfg_t *cfg = op->op_node->s_config;
    eddy_record_t rec = {cfg->key, strlen(cfg->key), cfg->key, strlen(cfg->key),
                         ts};
    eddy__op_enter(op);
    return eddy__wm_mux_emit(&st->mx, st->slot[i], &rec);
}

static int stall_finish(eddy__op_t *op, stall_state_t *st, size_t i)
{
    EDDY_UNUSED(op);
    st->done[i] = true;
    st->ndone++;
    return eddy__wm_mux_finish(&st->mx, st->slot[i]);
}

static int stall_poll(eddy__op_t *op, int budget)
{
    const stall_cfg_t *cfg = op->op_node->s_config;
    stall_state_t *st = op->op_data;
    int64_t now = eddy__now_ms();
    int rc;
    EDDY_UNUSED(budget);
    /* Release the partitions whose condition holds. */
    for (size_t i = 0; i < cfg->nparts; i++) {
        const stall_part_t *p = &cfg->parts[i];
        if (!st->done[i] && st->next[i] == p->n && p->after != AFTER_FINISH &&
            atomic_load(cfg->watch) >= p->release) {
            if ((rc = stall_finish(op, st, i)) != 0) {
                return rc;
            }
        }
    }
    if (st->ndone == cfg->nparts) {
        return EDDY__POLL_END;
    }
    /* Records still due, round robin, one at a time. */
    bool pending = true;
    while (pending) {
        pending = false;
        for (size_t k = 0; k < cfg->nparts; k++) {
            size_t i = (st->cursor + k) % cfg->nparts;
            const stall_part_t *p = &cfg->parts[i];
            if (st->done[i] || st->next[i] == p->n) {
                continue;
            }
            if ((rc = stall_emit(op, st, i, p->ts[st->next[i]++])) != 0) {
                return rc;
            }
            if (st->next[i] == p->n && p->after == AFTER_FINISH &&
                (rc = stall_finish(op, st, i)) != 0) {
                return rc;
            }
            st->cursor = (i + 1) % cfg->nparts;
            pending = true;
            break;
        }
    }
    for (size_t i = 0; i < cfg->nparts; i++) {
        const stall_part_t *p = &cfg->parts[i];
        if (!st->done[i] && p->after == AFTER_REPEAT && p->n > 0 &&
            now - st->last_repeat_ms[i] >= 2) {
            st->last_repeat_ms[i] = now;
            if ((rc = stall_emit(op, st, i, p->ts[p->n - 1])) != 0) {
                return rc;
            }
        }
    }
    if (now - st->start_ms > tu_timeout_ms(5000)) {
        return eddy__op_fail(op, EDDY_ERR_STATE,
                             "stall source: not released in time");
    }
    if ((rc = eddy__task_flush(op->op_task)) != 0) {
        return rc;
    }
    tu_sleep_us(500);
    return EDDY__POLL_MORE;
}

static int stall_tick(eddy__op_t *op, int64_t now_ms)
{
    stall_state_t *st = op->op_data;
    int rc = eddy__wm_mux_tick(&st->mx, now_ms);
    op->op_next_tick_ms = eddy__wm_mux_next_tick(&st->mx);
    return rc;
}

static void stall_close(eddy__op_t *op)
{
    stall_state_t *st = op->op_data;
    if (st != NULL) {
        eddy__wm_mux_close(&st->mx);
        free(st);
        op->op_data = NULL;
    }
}

static const eddy__op_class_t stall_class = {
    .oc_kind = "Source: Stall",
    .oc_default_parallelism = 1,
    .oc_source = true,
    .oc_open = stall_open,
    .oc_poll = stall_poll,
    .oc_tick = stall_tick,
    .oc_close = stall_close,
};

static eddy_stream_t *stall_source(eddy_env_t *env, const stall_cfg_t *cfg)
{
    eddy_stream_t *s = eddy__node_add(env, &stall_class, NULL, 0);
    assert_non_null(s);
    s->s_config = (void *)cfg;
    return s;
}

/* A partition that stops producing goes idle and leaves the minimum. */
static void test_idle_partition_excluded(void **state)
{
    (void)state;
    static const int64_t ts0[] = {100, 200, 300, 400, 500};
    static const int64_t ts1[] = {10};
    wmt_log_t *log = wmt_log_new();
    stall_part_t parts[] = {{ts0, 5, AFTER_REPEAT, 499},
                            {ts1, 1, AFTER_HOLD, 499}};
    stall_cfg_t cfg = {eddy_watermarks_bounded(0), "k", parts, 2, &log->max_wm};
    cfg.ws.idleness_ms = 30;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 10);
    wmt_recorder(stall_source(env, &cfg), log);
    EXECUTE_OK(env);
    /* The first tick follows the first poll, which emitted both partitions'
     * records: min(499, 9); then partition 1 is idle. */
    WMT_ASSERT_WMS(log, 9, 499, INT64_MAX);
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* A held (not idle) partition holds back until it finishes. */
static void test_finished_partition_releases(void **state)
{
    (void)state;
    static const int64_t ts0[] = {1000};
    static const int64_t ts1[] = {10, 20};
    wmt_log_t *log = wmt_log_new();
    stall_part_t parts[] = {{ts0, 1, AFTER_HOLD, 999},
                            {ts1, 2, AFTER_HOLD, 19}};
    stall_cfg_t cfg = {eddy_watermarks_bounded(0), "k", parts, 2, &log->max_wm};
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 10);
    wmt_recorder(stall_source(env, &cfg), log);
    EXECUTE_OK(env);
    WMT_ASSERT_WMS(log, 19, 999, INT64_MAX);
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* When every partition of a source is idle, the source's output is idle:
 * the operator after a union follows the other input. */
static void test_all_partitions_idle(void **state)
{
    (void)state;
    static const int64_t a0[] = {10}, a1[] = {20}, b0[] = {1000};
    wmt_log_t *log = wmt_log_new();
    stall_part_t pa[] = {{a0, 1, AFTER_HOLD, 999}, {a1, 1, AFTER_HOLD, 999}};
    stall_part_t pb[] = {{b0, 1, AFTER_HOLD, 999}};
    stall_cfg_t ca = {eddy_watermarks_bounded(0), "a", pa, 2, &log->max_wm};
    stall_cfg_t cb = {eddy_watermarks_bounded(0), "b", pb, 1, &log->max_wm};
    ca.ws.idleness_ms = 30;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 10);
    wmt_recorder(eddy_union(stall_source(env, &ca), stall_source(env, &cb)),
                 log);
    EXECUTE_OK(env);
    int64_t wms[WMT_MAX_EVENTS];
    size_t n = wmt_wms(log, wms, WMT_MAX_EVENTS);
    /* Maybe min(9, 999) first, if b's first watermark came before a went
     * idle; then b alone. */
    assert_true(n >= 2);
    assert_int_equal(wms[n - 2], 999);
    assert_int_equal(wms[n - 1], INT64_MAX);
    for (size_t i = 0; i + 2 < n; i++) {
        assert_true(wms[i] <= 9);
    }
    eddy_env_destroy(env);
    wmt_log_free(log);
}

/* A window on a source with an idle partition fires before the job ends. */
static atomic_llong windows_fired;

static int note_window(eddy_ctx_t *ctx, const eddy_record_t *in,
                       eddy_record_t *out, void *opaque)
{
    (void)ctx;
    (void)out;
    (void)opaque;
    if (in->ts == 199) {
        atomic_store(&windows_fired, 1);
    }
    return 0;
}

static void test_window_fires_with_idle_partition(void **state)
{
    (void)state;
    atomic_store(&windows_fired, 0);
    static const int64_t ts0[] = {105, 150, 250};
    static const int64_t ts1[] = {10};
    stall_part_t parts[] = {{ts0, 3, AFTER_REPEAT, 1}, {ts1, 1, AFTER_HOLD, 1}};
    stall_cfg_t cfg = {eddy_watermarks_bounded(0), "k", parts, 2,
                       &windows_fired};
    cfg.ws.idleness_ms = 30;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 10);
    eddy_collection_t *out = eddy_collection_new();
    eddy_window_spec_t w = eddy_window_tumbling(100);
    eddy_stream_t *win = eddy_window_aggregate(
        eddy_key_by(stall_source(env, &cfg), NULL, NULL), &w, eddy_agg_count());
    eddy_sink_collect(eddy_map(win, note_window, NULL), out);
    EXECUTE_OK(env);
    assert_int_equal(atomic_load(&windows_fired), 1);
    /* [0, 100) holds the idle partition's record, [100, 200) two. */
    int64_t counts[3] = {0, 0, 0};
    for (size_t i = 0; i < eddy_collection_count(out); i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        assert_true(r->ts == 99 || r->ts == 199 || r->ts == 299);
        counts[r->ts / 100] = eddy_record_value_i64(r);
    }
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 2);
    assert_true(counts[2] >= 1);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleaves_round_robin),
        cmocka_unit_test(test_assigns_partitions_to_subtasks),
        cmocka_unit_test(test_without_strategy_only_final_watermark),
        cmocka_unit_test(test_follows_slowest_then_finished),
        cmocka_unit_test(test_periodic_never_passes_slowest),
        cmocka_unit_test(test_windows_on_partitions),
        cmocka_unit_test(test_timestamps_assigned_per_record),
        cmocka_unit_test(test_with_watermarks_on_plain_source),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_idle_partition_excluded),
        cmocka_unit_test(test_finished_partition_releases),
        cmocka_unit_test(test_all_partitions_idle),
        cmocka_unit_test(test_window_fires_with_idle_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
