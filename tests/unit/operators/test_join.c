/*
 * eddy — unit tests for src/operators/join.c: interval join and window join.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Two kinds of tests:
 *   - operator tests drive one join instance directly (records on either
 *     input and watermarks in an exact order), which is the only way to pin
 *     down lateness and the cleanup boundaries: in a running job the
 *     interleaving of two input channels is up to the scheduler;
 *   - job tests run joins end to end through eddy_env_execute with inputs
 *     whose watermarks never make a record late, so results are
 *     deterministic and checked against a brute-force join, at parallelism
 *     1 and 4.
 */
#include "test_util.h"

#include <stdatomic.h>

#include "operators/join.h"
#include "runtime/runtime.h"

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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The join function of most tests: emits "lvalue|rvalue" without a
 * timestamp (so the join's default applies) and with the left key. */
static int pair_fn(eddy_ctx_t *ctx, const eddy_record_t *l,
                   const eddy_record_t *r, eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    size_t klen;
    const void *key = eddy_ctx_key(ctx, &klen);
    if (key == NULL || klen != l->key_len || memcmp(key, l->key, klen) != 0 ||
        r->key_len != l->key_len || memcmp(r->key, l->key, klen) != 0) {
        return eddy_ctx_fail(ctx, "pair_fn: wrong key");
    }
    size_t n = l->value_len + 1 + r->value_len;
    char *v = eddy_ctx_scratch(ctx, n);
    memcpy(v, l->value, l->value_len);
    v[l->value_len] = '|';
    memcpy(v + l->value_len + 1, r->value, r->value_len);
    eddy_record_t o = {l->key, l->key_len, v, n, EDDY_TS_NONE};
    return eddy_collect(out, &o);
}

/* ------------------------------------------------------------------------ */
/* Operator harness                                                         */
/* ------------------------------------------------------------------------ */

typedef struct harness {
    eddy_env_t *env;
    eddy_stream_t *join;
    eddy__task_t task;
    eddy__op_t *ops[1];
    eddy__op_t op;
    eddy_collector_t side[4];
    char *out[512]; /* "key:value@ts", malloc'ed */
    size_t nout;
    char *late[64]; /* late side output: "key:value@ts" */
    size_t nlate;
} harness_t;

static char *fmt_rec(const eddy_record_t *rec)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%.*s:%.*s@%lld", (int)rec->key_len,
             (const char *)rec->key, (int)rec->value_len,
             (const char *)rec->value, (long long)rec->ts);
    return strdup(buf);
}

static int capture(void *target, const eddy_record_t *rec)
{
    harness_t *h = target;
    assert_true(h->nout < EDDY_ARRAY_SIZE(h->out));
    h->out[h->nout++] = fmt_rec(rec);
    return 0;
}

static int capture_late(void *target, const eddy_record_t *rec)
{
    harness_t *h = target;
    assert_true(h->nlate < EDDY_ARRAY_SIZE(h->late));
    h->late[h->nlate++] = fmt_rec(rec);
    return 0;
}

/* Two empty keyed inputs for join builders. */
static void harness_inputs(eddy_env_t *env, eddy_stream_t **l,
                           eddy_stream_t **r)
{
    *l = eddy_key_by(eddy_source_collection(env, NULL, 0), NULL, NULL);
    *r = eddy_key_by(eddy_source_collection(env, NULL, 0), NULL, NULL);
}

/* Opens the operator of `join` (built on h->env) as subtask 0 of 1. */
static void harness_open(harness_t *h, eddy_stream_t *join)
{
    assert_non_null(join);
    assert_false(h->env->e_failed);
    h->join = join;
    eddy__op_t *op = &h->op;
    memset(&h->task, 0, sizeof(h->task));
    h->ops[0] = op;
    h->task.t_ops = h->ops;
    h->task.t_nops = 1;
    h->task.t_parallelism = 1;
    h->task.t_name = "test";
    h->task.t_next_tick_ms = INT64_MAX;
    memset(op, 0, sizeof(*op));
    op->op_ctx.cx_op = op;
    op->op_ctx.cx_subtask = 0;
    op->op_ctx.cx_parallelism = 1;
    op->op_ctx.cx_name = join->s_name;
    op->op_ctx.cx_scratch.sc_cap = 4096;
    op->op_ctx.cx_scratch.sc_base = malloc(4096);
    eddy__arena_init(&op->op_ctx.cx_scratch.sc_overflow, 16 * 1024);
    op->op_class = join->s_class;
    op->op_node = join;
    op->op_task = &h->task;
    op->op_out = (eddy_collector_t){capture, h};
    op->op_nside = join->s_ntags;
    for (int i = 0; i < join->s_ntags; i++) {
        h->side[i] = (eddy_collector_t){capture_late, h};
    }
    op->op_side = h->side;
    op->op_next_tick_ms = INT64_MAX;
    op->op_in_wm = INT64_MIN;
    op->op_out_wm = INT64_MIN;
    assert_int_equal(op->op_class->oc_open(op), 0);
}

static void harness_close(harness_t *h)
{
    eddy__op_t *op = &h->op;
    op->op_class->oc_close(op);
    free(op->op_ctx.cx_scratch.sc_base);
    eddy__arena_close(&op->op_ctx.cx_scratch.sc_overflow);
    for (size_t i = 0; i < h->nout; i++) {
        free(h->out[i]);
    }
    for (size_t i = 0; i < h->nlate; i++) {
        free(h->late[i]);
    }
    h->nout = h->nlate = 0;
}

static void send(harness_t *h, int side, const char *key, const char *val,
                 int64_t ts)
{
    eddy_record_t rec = {key, strlen(key), val, strlen(val), ts};
    eddy__op_t *op = &h->op;
    int rc = side == 0 ? op->op_class->oc_process(op, &rec)
                       : op->op_class->oc_process2(op, &rec);
    if (rc != 0) {
        fail_msg("join failed: %s", op->op_errmsg);
    }
}

#define L(h, k, v, ts) send((h), 0, (k), (v), (ts))
#define R(h, k, v, ts) send((h), 1, (k), (v), (ts))

static void watermark(harness_t *h, int64_t wm)
{
    eddy__op_t *op = &h->op;
    op->op_in_wm = wm;
    int rc = op->op_class->oc_watermark(op, wm);
    if (rc != 0) {
        fail_msg("join failed: %s", op->op_errmsg);
    }
    assert_int_equal(op->op_out_wm, wm);
}

/* Asserts the results since the last call, as a set. */
static void expect_out(harness_t *h, const char *const *exp, size_t n)
{
    qsort(h->out, h->nout, sizeof(char *), cmp_str);
    const char **e = calloc(n + 1, sizeof(char *));
    if (n > 0) {
        memcpy(e, exp, n * sizeof(char *));
    }
    qsort(e, n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < EDDY_MAX(n, h->nout); i++) {
        const char *got = i < h->nout ? h->out[i] : "(none)";
        const char *want = i < n ? e[i] : "(none)";
        if (strcmp(got, want) != 0) {
            fail_msg("result %zu of %zu: got %s, expected %s (%zu results)", i,
                     n, got, want, h->nout);
        }
    }
    free(e);
    for (size_t i = 0; i < h->nout; i++) {
        free(h->out[i]);
    }
    h->nout = 0;
}

#define EXPECT(h, ...)                                                         \
    do {                                                                       \
        static const char *const exp_[] = {__VA_ARGS__};                       \
        expect_out((h), exp_, EDDY_ARRAY_SIZE(exp_));                          \
    } while (0)
#define EXPECT_NONE(h) expect_out((h), NULL, 0)

static uint64_t buffered(harness_t *h)
{
    return eddy__join_buffered(&h->op);
}

static eddy__join_stats_t stats_of(eddy_stream_t *join)
{
    eddy__join_stats_t st;
    assert_int_equal(eddy__join_stats(join, &st), 0);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Interval join: operator tests                                            */
/* ------------------------------------------------------------------------ */

/*
 * lower = -2, upper = 3: left l matches right r with l-2 <= r <= l+3. A left
 * record is kept until wm > l+3, a right one until wm > r+2.
 */
static void test_interval_pairs_and_boundaries(void **state)
{
    (void)state;
    harness_t *h = calloc(1, sizeof(*h));
    h->env = eddy_env_new();
    eddy_stream_t *l, *r;
    harness_inputs(h->env, &l, &r);
    harness_open(h, eddy_interval_join(l, r, -2, 3, pair_fn, NULL));

    L(h, "k1", "a", 10);
    EXPECT_NONE(h);
    R(h, "k1", "r8", 8); /* lower bound, inclusive: 10-2 */
    EXPECT(h, "k1:a|r8@10");
    R(h, "k1", "r13", 13); /* upper bound, inclusive: 10+3 */
    EXPECT(h, "k1:a|r13@13");
    R(h, "k1", "r7", 7);
    R(h, "k1", "r14", 14);
    R(h, "k2", "x", 10); /* another key */
    EXPECT_NONE(h);
    /* Out of order: an older left record joins the buffered right ones. */
    L(h, "k1", "b", 5); /* r in [3, 8] */
    EXPECT(h, "k1:b|r7@7", "k1:b|r8@8");
    assert_int_equal(buffered(h), 7);

    watermark(h, 9); /* b (kept until wm > 8) goes */
    assert_int_equal(buffered(h), 6);
    L(h, "k1", "late", 8); /* 8 < wm: late, dropped unjoined */
    EXPECT_NONE(h);
    assert_int_equal(buffered(h), 6);
    /* ts == wm is on time; r7 is kept until wm > 7+2, so it still joins. */
    L(h, "k1", "c", 9); /* r in [7, 12] */
    EXPECT(h, "k1:c|r7@9", "k1:c|r8@9");

    watermark(h, 10); /* r7 goes */
    assert_int_equal(buffered(h), 6);
    L(h, "k1", "d", 10); /* r in [8, 13] */
    EXPECT(h, "k1:d|r8@10", "k1:d|r13@13");
    R(h, "k1", "e", 13); /* l in [10, 15] */
    EXPECT(h, "k1:a|e@13", "k1:d|e@13");

    /* c (until wm > 12), r8 (until wm > 10) and x (until wm > 12) go. */
    watermark(h, 13);
    assert_int_equal(buffered(h), 5);
    /* r == wm == l + upper: on time, and a/d are kept until wm > 13. */
    R(h, "k1", "f", 13);
    EXPECT(h, "k1:a|f@13", "k1:d|f@13");

    watermark(h, 14);    /* a and d go */
    R(h, "k1", "g", 14); /* l in [11, 16]: nothing left to match */
    EXPECT_NONE(h);
    watermark(h, INT64_MAX);
    assert_int_equal(buffered(h), 0);
    EXPECT_NONE(h);

    harness_close(h);
    eddy__join_stats_t st = stats_of(h->join);
    assert_int_equal(st.jst_late, 1);
    /* The public counter reports joins too. */
    assert_int_equal(eddy_late_records_dropped(h->join), 1);
    assert_int_equal(st.jst_leftover, 0);
    assert_int_equal(st.jst_peak, 8);
    /* Removed by cleanup before the end: b, r7, r8, x, c, a, d. */
    assert_int_equal(st.jst_expired, 7);
    eddy_env_destroy(h->env);
    free(h);
}

/* Both bounds negative: right records in [l-5, l-1]. A left record is kept
 * until wm > l (Flink's max(upper, 0)), a right one until wm > r+5. */
static void test_interval_negative_bounds(void **state)
{
    (void)state;
    harness_t *h = calloc(1, sizeof(*h));
    h->env = eddy_env_new();
    eddy_stream_t *l, *r;
    harness_inputs(h->env, &l, &r);
    harness_open(h, eddy_interval_join(l, r, -5, -1, pair_fn, NULL));

    R(h, "k", "r4", 4);
    R(h, "k", "r5", 5);
    R(h, "k", "r9", 9);
    R(h, "k", "r10", 10);
    L(h, "k", "a", 10);
    EXPECT(h, "k:a|r5@10", "k:a|r9@10");
    watermark(h, 10); /* r4 goes (until wm > 9) */
    assert_int_equal(buffered(h), 4);
    L(h, "k", "b", 10); /* on time */
    EXPECT(h, "k:b|r5@10", "k:b|r9@10");
    R(h, "k", "r11", 11); /* l in [12, 16] */
    EXPECT_NONE(h);
    L(h, "k", "c", 14); /* r in [9, 13] */
    EXPECT(h, "k:c|r9@14", "k:c|r10@14", "k:c|r11@14");
    watermark(h, 11); /* a, b (until wm > 10) and r5 (until wm > 10) go */
    assert_int_equal(buffered(h), 4);
    watermark(h, INT64_MAX);
    assert_int_equal(buffered(h), 0);
    harness_close(h);
    eddy_env_destroy(h->env);
    free(h);
}

/* lower == upper == 0: equal timestamps only. */
static void test_interval_equal_timestamps(void **state)
{
    (void)state;
    harness_t *h = calloc(1, sizeof(*h));
    h->env = eddy_env_new();
    eddy_stream_t *l, *r;
    harness_inputs(h->env, &l, &r);
    harness_open(h, eddy_interval_join(l, r, 0, 0, pair_fn, NULL));
    L(h, "k", "a", 7);
    R(h, "k", "b", 7);
    R(h, "k", "c", 8);
    R(h, "k", "d", 6);
    L(h, "k", "e", 7);
    EXPECT(h, "k:a|b@7", "k:e|b@7");
    watermark(h, 7); /* d goes */
    assert_int_equal(buffered(h), 4);
    watermark(h, 8); /* everything at 7 and below goes */
    assert_int_equal(buffered(h), 1);
    watermark(h, INT64_MAX);
    harness_close(h);
    eddy_env_destroy(h->env);
    free(h);
}

/* A join function that sets its own timestamp keeps it. */
static int stamped_fn(eddy_ctx_t *ctx, const eddy_record_t *l,
                      const eddy_record_t *r, eddy_collector_t *out,
                      void *opaque)
{
    (void)opaque;
    if (eddy_ctx_window(ctx) != NULL) {
        return eddy_ctx_fail(ctx, "an interval join has no window");
    }
    eddy_record_t o = *l;
    o.value = r->value;
    o.value_len = r->value_len;
    return eddy_collect(out, &o); /* o.ts = l->ts */
}

static void test_interval_result_timestamps(void **state)
{
    (void)state;
    harness_t *h = calloc(1, sizeof(*h));
    h->env = eddy_env_new();
    eddy_stream_t *l, *r;
    harness_inputs(h->env, &l, &r);
    harness_open(h, eddy_interval_join(l, r, -10, 10, stamped_fn, NULL));
    L(h, "k", "a", 100);
    R(h, "k", "b", 105);
    R(h, "k", "c", 95);
    EXPECT(h, "k:b@100", "k:c@100");
    watermark(h, INT64_MAX);
    harness_close(h);
    eddy_env_destroy(h->env);
    free(h);
}

/* ------------------------------------------------------------------------ */
/* Window join: operator tests                                              */
/* ------------------------------------------------------------------------ */

static eddy_window_spec_t spec_time(eddy_window_kind_t kind, int64_t size,
                                    int64_t slide)
{
    eddy_window_spec_t w;
    memset(&w, 0, sizeof(w));
    w.kind = kind;
    w.domain = EDDY_EVENT_TIME;
    w.size_ms = size;
    w.slide_ms = slide;
    return w;
}

static void test_window_tumbling_event_time(void **state)
{
    (void)state;
    harness_t *h = calloc(1, sizeof(*h));
    h->env = eddy_env_new();
    eddy_stream_t *l, *r;
    harness_inputs(h->env, &l, &r);
    eddy_window_spec_t w = spec_time(EDDY_WINDOW_TUMBLING, 10, 0);
    harness_open(h, eddy_window_join(l, r, &w, pair_fn, NULL));

    L(h, "k", "l1", 1);
    R(h, "k", "r5", 5);
    L(h, "k", "l9", 9);
    R(h, "k", "r12", 12);
    L(h, "k2", "m3", 3);
    R(h, "k3", "n3", 3);
    watermark(h, 8);
    EXPECT_NONE(h);
    watermark(h, 9); /* [0, 10) fires at its max timestamp 9 */
    EXPECT(h, "k:l1|r5@9", "k:l9|r5@9");
    assert_int_equal(buffered(h), 1); /* r12 */
    L(h, "k", "late", 3);             /* its only window has fired: late */
    L(h, "k", "l10", 10);
    EXPECT_NONE(h);
    watermark(h, INT64_MAX);
    EXPECT(h, "k:l10|r12@19");
    assert_int_equal(buffered(h), 0);
    harness_close(h);
    eddy__join_stats_t st = stats_of(h->join);
    assert_int_equal(st.jst_late, 1);
    assert_int_equal(st.jst_leftover, 0);
    eddy_env_destroy(h->env);
    free(h);
}

/* Emits "lvalue|rvalue[start,end)" (eddy_ctx_window). */
static int window_fn(eddy_ctx_t *ctx, const eddy_record_t *l,
                     const eddy_record_t *r, eddy_collector_t *out,
                     void *opaque)
{
    (void)opaque;
    const eddy_window_t *w = eddy_ctx_window(ctx);
    if (w == NULL) {
        return eddy_ctx_fail(ctx, "no window");
    }
    char *v = eddy_ctx_scratch(ctx, 128);
    int n = snprintf(v, 128, "%.*s|%.*s[%lld,%lld)", (int)l->value_len,
                     (const char *)l->value, (int)r->value_len,
                     (const char *)r->value, (long long)w->start,
                     (long long)w->end);
    eddy_record_t o = {l->key, l->key_len, v, (size_t)n, EDDY_TS_NONE};
    return eddy_collect(out, &o);
}

/* Sliding 10/5: [0,10), [5,15), [10,20), ... */
static void test_window_sliding_event_time(void **state)
{
    (void)state;
    harness_t *h = calloc(1, sizeof(*h));
    h->env = eddy_env_new();
    eddy_stream_t *l, *r;
    harness_inputs(h->env, &l, &r);
    eddy_window_spec_t w = spec_time(EDDY_WINDOW_SLIDING, 10, 5);
    harness_open(h, eddy_window_join(l, r, &w, window_fn, NULL));

    L(h, "k", "l7", 7);   /* [0,10) [5,15) */
    R(h, "k", "r3", 3);   /* [-5,5) [0,10) */
    R(h, "k", "r12", 12); /* [5,15) [10,20) */
    L(h, "k", "l-1", -1); /* [-10,0) [-5,5) */
    L(h, "k", "l15", 15); /* [10,20) [15,25) */
    assert_int_equal(buffered(h), 10);
    watermark(h, 9);
    EXPECT(h, "k:l-1|r3[-5,5)@4", "k:l7|r3[0,10)@9");
    watermark(h, INT64_MAX);
    EXPECT(h, "k:l7|r12[5,15)@14", "k:l15|r12[10,20)@19");
    harness_close(h);
    eddy_env_destroy(h->env);
    free(h);
}

/* Allowed lateness: a record arriving after the firing fires the window
 * again with all its contents; after end-1+lateness it is late and goes to
 * the late output. */
static void test_window_allowed_lateness(void **state)
{
    (void)state;
    harness_t *h = calloc(1, sizeof(*h));
    h->env = eddy_env_new();
    eddy_stream_t *l, *r;
    harness_inputs(h->env, &l, &r);
    eddy_window_spec_t w = spec_time(EDDY_WINDOW_TUMBLING, 10, 0);
    w.allowed_lateness_ms = 5;
    w.late_output = "late";
    eddy_stream_t *j = eddy_window_join(l, r, &w, pair_fn, NULL);
    assert_non_null(eddy_side_output(j, "late"));
    harness_open(h, j);

    L(h, "k", "l1", 1);
    R(h, "k", "r5", 5);
    watermark(h, 9);
    EXPECT(h, "k:l1|r5@9");
    L(h, "k", "l4", 4); /* within the lateness: fires again at once */
    EXPECT(h, "k:l1|r5@9", "k:l4|r5@9");
    watermark(h, 13);
    EXPECT_NONE(h);
    assert_int_equal(buffered(h), 3);
    watermark(h, 14); /* end - 1 + 5: the window's state goes */
    assert_int_equal(buffered(h), 0);
    R(h, "k", "r2", 2);
    EXPECT_NONE(h);
    assert_int_equal(h->nlate, 1);
    assert_string_equal(h->late[0], "k:r2@2");
    watermark(h, INT64_MAX);
    EXPECT_NONE(h);
    harness_close(h);
    eddy_env_destroy(h->env);
    free(h);
}

/* ------------------------------------------------------------------------ */
/* Job tests                                                                */
/* ------------------------------------------------------------------------ */

#define MAXREC 1024

/* One input of a job test: keyed records "k<i>" with values "<side><n>". */
typedef struct input {
    char keys[MAXREC][8];
    char vals[MAXREC][16];
    eddy_record_t recs[MAXREC];
    size_t n;
} input_t;

/* Records with timestamps increasing by 0..4 ms and then shuffled within a
 * disorder of at most `disorder` ms. */
static void make_input(input_t *in, char side, size_t n, int nkeys,
                       int64_t disorder, uint64_t seed)
{
    uint64_t rng = seed;
    int64_t ts = 1000;
    assert_true(n <= MAXREC);
    in->n = n;
    for (size_t i = 0; i < n; i++) {
        ts += (int64_t)(tu_rand(&rng) % 5);
        int k = (int)(tu_rand(&rng) % (uint64_t)nkeys) % 100;
        snprintf(in->keys[i], sizeof(in->keys[i]), "k%d", k);
        snprintf(in->vals[i], sizeof(in->vals[i]), "%c%u", side,
                 (unsigned)(i % MAXREC));
        in->recs[i] = (eddy_record_t){in->keys[i], strlen(in->keys[i]),
                                      in->vals[i], strlen(in->vals[i]), ts};
    }
    /* Bounded disorder: swap neighbours whose timestamps are close. */
    for (size_t i = 0; i + 1 < n; i++) {
        if (tu_rand(&rng) % 3 == 0 &&
            in->recs[i + 1].ts - in->recs[i].ts <= disorder) {
            eddy_record_t t = in->recs[i];
            in->recs[i] = in->recs[i + 1];
            in->recs[i + 1] = t;
        }
    }
}

/* Punctuated watermarks: max timestamp - 21 after every record (the inputs'
 * disorder is below 20 ms, so no record is ever late). */
static int64_t wm_on_event(void *state, const eddy_record_t *rec, void *opaque)
{
    (void)opaque;
    int64_t *max = state;
    if (rec->ts > *max) {
        *max = rec->ts;
    }
    return *max - 21;
}

static eddy_stream_t *timed_keyed(eddy_env_t *env, const input_t *in)
{
    eddy_watermark_strategy_t ws =
        eddy_watermarks_custom(wm_on_event, NULL, sizeof(int64_t), NULL);
    eddy_stream_t *s = eddy_source_collection(env, in->recs, in->n);
    s = eddy_assign_timestamps(s, &ws);
    return eddy_parallelism(eddy_key_by(s, NULL, NULL), 1);
}

/* Collected results as sorted "key:value@ts" strings. */
typedef struct results {
    char **v;
    size_t n;
} results_t;

static results_t results_of(eddy_collection_t *c)
{
    results_t r = {calloc(eddy_collection_count(c) + 1, sizeof(char *)),
                   eddy_collection_count(c)};
    for (size_t i = 0; i < r.n; i++) {
        r.v[i] = fmt_rec(eddy_collection_get(c, i));
    }
    qsort(r.v, r.n, sizeof(char *), cmp_str);
    return r;
}

static void results_free(results_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i]);
    }
    free(r->v);
}

static void results_assert_equal(const results_t *got, const results_t *want)
{
    for (size_t i = 0; i < EDDY_MAX(got->n, want->n); i++) {
        const char *g = i < got->n ? got->v[i] : "(none)";
        const char *w = i < want->n ? want->v[i] : "(none)";
        if (strcmp(g, w) != 0) {
            fail_msg("result %zu: got %s, expected %s (%zu vs %zu results)", i,
                     g, w, got->n, want->n);
        }
    }
}

static void results_add(results_t *r, const eddy_record_t *l,
                        const eddy_record_t *rr, int64_t ts)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%.*s:%.*s|%.*s@%lld", (int)l->key_len,
             (const char *)l->key, (int)l->value_len, (const char *)l->value,
             (int)rr->value_len, (const char *)rr->value, (long long)ts);
    r->v = realloc(r->v, sizeof(char *) * (r->n + 1));
    r->v[r->n++] = strdup(buf);
}

static bool same_key(const eddy_record_t *a, const eddy_record_t *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

static results_t brute_interval(const input_t *l, const input_t *r,
                                int64_t lower, int64_t upper)
{
    results_t res = {NULL, 0};
    for (size_t i = 0; i < l->n; i++) {
        for (size_t j = 0; j < r->n; j++) {
            const eddy_record_t *a = &l->recs[i], *b = &r->recs[j];
            if (same_key(a, b) && b->ts >= a->ts + lower &&
                b->ts <= a->ts + upper) {
                results_add(&res, a, b, EDDY_MAX(a->ts, b->ts));
            }
        }
    }
    qsort(res.v, res.n, sizeof(char *), cmp_str);
    return res;
}

static int64_t floor_start(int64_t ts, int64_t slide)
{
    int64_t rem = ts % slide;
    return ts - (rem < 0 ? rem + slide : rem);
}

static results_t brute_window(const input_t *l, const input_t *r, int64_t size,
                              int64_t slide)
{
    results_t res = {NULL, 0};
    for (size_t i = 0; i < l->n; i++) {
        for (size_t j = 0; j < r->n; j++) {
            const eddy_record_t *a = &l->recs[i], *b = &r->recs[j];
            if (!same_key(a, b)) {
                continue;
            }
            for (int64_t s = floor_start(a->ts, slide); s > a->ts - size;
                 s -= slide) {
                if (b->ts >= s && b->ts < s + size) {
                    results_add(&res, a, b, s + size - 1);
                }
            }
        }
    }
    qsort(res.v, res.n, sizeof(char *), cmp_str);
    return res;
}

static void test_interval_job_parallelism(void **state)
{
    (void)state;
    input_t *li = calloc(1, sizeof(*li)), *ri = calloc(1, sizeof(*ri));
    make_input(li, 'L', 600, 7, 15, 11);
    make_input(ri, 'R', 600, 7, 15, 12);
    results_t want = brute_interval(li, ri, -15, 10);
    assert_true(want.n > 300);
    results_t got[2];
    static const int ps[] = {1, 4};
    for (int pi = 0; pi < 2; pi++) {
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_watermark_interval(env, 0);
        eddy_collection_t *out = eddy_collection_new();
        eddy_stream_t *j = eddy_interval_join(
            timed_keyed(env, li), timed_keyed(env, ri), -15, 10, pair_fn, NULL);
        eddy_sink_collect(eddy_parallelism(j, ps[pi]), out);
        EXECUTE_OK(env);
        got[pi] = results_of(out);
        results_assert_equal(&got[pi], &want);
        eddy__join_stats_t st = stats_of(j);
        assert_int_equal(st.jst_late, 0);
        assert_int_equal(st.jst_leftover, 0);
        /* Cleanup ran while the job did: most records expired before the
         * end, and no subtask ever held close to all 1200 (one input may
         * arrive entirely before the other starts). */
        assert_true(st.jst_expired > 600);
        assert_true(st.jst_peak < 900);
        eddy_collection_destroy(out);
        eddy_env_destroy(env);
    }
    results_assert_equal(&got[0], &got[1]);
    results_free(&got[0]);
    results_free(&got[1]);
    results_free(&want);
    free(li);
    free(ri);
}

static void window_job(const eddy_window_spec_t *w)
{
    input_t *li = calloc(1, sizeof(*li)), *ri = calloc(1, sizeof(*ri));
    make_input(li, 'L', 400, 5, 15, 21);
    make_input(ri, 'R', 400, 5, 15, 22);
    int64_t slide = w->kind == EDDY_WINDOW_SLIDING ? w->slide_ms : w->size_ms;
    results_t want = brute_window(li, ri, w->size_ms, slide);
    assert_true(want.n > 100);
    results_t got[2];
    static const int ps[] = {1, 4};
    for (int pi = 0; pi < 2; pi++) {
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_watermark_interval(env, 0);
        eddy_collection_t *out = eddy_collection_new();
        eddy_stream_t *j = eddy_window_join(
            timed_keyed(env, li), timed_keyed(env, ri), w, pair_fn, NULL);
        eddy_sink_collect(eddy_parallelism(j, ps[pi]), out);
        EXECUTE_OK(env);
        got[pi] = results_of(out);
        results_assert_equal(&got[pi], &want);
        eddy__join_stats_t st = stats_of(j);
        assert_int_equal(st.jst_late, 0);
        assert_int_equal(st.jst_leftover, 0);
        assert_true(st.jst_expired > 0); /* windows fired during the run */
        eddy_collection_destroy(out);
        eddy_env_destroy(env);
    }
    results_assert_equal(&got[0], &got[1]);
    results_free(&got[0]);
    results_free(&got[1]);
    results_free(&want);
    free(li);
    free(ri);
}

static void test_window_job_tumbling(void **state)
{
    (void)state;
    eddy_window_spec_t w = spec_time(EDDY_WINDOW_TUMBLING, 50, 0);
    window_job(&w);
}

static void test_window_job_sliding(void **state)
{
    (void)state;
    eddy_window_spec_t w = spec_time(EDDY_WINDOW_SLIDING, 60, 20);
    window_job(&w);
}

/* A stream joined with itself: both inputs read the same key_by. */
static void test_interval_self_join(void **state)
{
    (void)state;
    static const eddy_record_t recs[] = {{"k", 1, "a", 1, 10},
                                         {"k", 1, "b", 1, 10},
                                         {"k", 1, "c", 1, 11},
                                         {"j", 1, "d", 1, 10}};
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *s =
        eddy_key_by(eddy_source_collection(env, recs, 4), NULL, NULL);
    eddy_sink_collect(eddy_interval_join(s, s, 0, 0, pair_fn, NULL), out);
    EXECUTE_OK(env);
    results_t got = results_of(out);
    static char *want_v[] = {"j:d|d@10", "k:a|a@10", "k:a|b@10",
                             "k:b|a@10", "k:b|b@10", "k:c|c@11"};
    results_t want = {want_v, EDDY_ARRAY_SIZE(want_v)};
    results_assert_equal(&got, &want);
    results_free(&got);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

/* ---- processing time ---- */

typedef struct pt_gen {
    char side;
    int nkeys;
} pt_gen_t;

static int pt_generate(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                       void *opaque)
{
    const pt_gen_t *g = opaque;
    char *k = eddy_ctx_scratch(ctx, 8);
    char *v = eddy_ctx_scratch(ctx, 24);
    snprintf(k, 8, "k%d", (int)(index % (uint64_t)g->nkeys));
    snprintf(v, 24, "%c%llu", g->side, (unsigned long long)index);
    *out = (eddy_record_t){k, strlen(k), v, strlen(v), EDDY_TS_NONE};
    return 0;
}

static eddy_stream_t *pt_keyed(eddy_env_t *env, const pt_gen_t *g,
                               uint64_t count, double rate)
{
    eddy_stream_t *s =
        eddy_source_generator(env, count, rate, pt_generate, (void *)g);
    return eddy_parallelism(eddy_key_by(s, NULL, NULL), 1);
}

/* One processing-time window that spans the whole run (the clock is in its
 * middle): it fires at the end of input, and the totals are exact. */
static void test_window_processing_time_totals(void **state)
{
    (void)state;
    static const pt_gen_t gl = {'L', 3}, gr = {'R', 3};
    static const int ps[] = {1, 4};
    for (int pi = 0; pi < 2; pi++) {
        eddy_env_t *env = eddy_env_new();
        eddy_collection_t *out = eddy_collection_new();
        eddy_window_spec_t w = spec_time(EDDY_WINDOW_TUMBLING, 86400000, 0);
        w.domain = EDDY_PROCESSING_TIME;
        int64_t now = (int64_t)time(NULL) * 1000;
        w.offset_ms = (now + w.size_ms / 2) % w.size_ms;
        eddy_stream_t *j =
            eddy_window_join(pt_keyed(env, &gl, 30, 0),
                             pt_keyed(env, &gr, 20, 0), &w, pair_fn, NULL);
        eddy_sink_collect(eddy_parallelism(j, ps[pi]), out);
        EXECUTE_OK(env);
        /* Left: 10 records per key; right: 7, 7, 6 → 70 + 70 + 60. */
        assert_int_equal(eddy_collection_count(out), 200);
        int per_key[3] = {0};
        int64_t ts0 = eddy_collection_get(out, 0)->ts;
        for (size_t i = 0; i < eddy_collection_count(out); i++) {
            const eddy_record_t *rec = eddy_collection_get(out, i);
            per_key[((const char *)rec->key)[1] - '0']++;
            assert_int_equal(rec->ts, ts0);
        }
        assert_int_equal(per_key[0], 70);
        assert_int_equal(per_key[1], 70);
        assert_int_equal(per_key[2], 60);
        assert_true(ts0 > now);
        eddy_collection_destroy(out);
        eddy_env_destroy(env);
    }
}

/* Short processing-time windows fire while the (rate-limited) inputs run. */
static void test_window_processing_time_fires_during_run(void **state)
{
    (void)state;
    static const pt_gen_t gl = {'L', 1}, gr = {'R', 1};
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_window_spec_t w = spec_time(EDDY_WINDOW_TUMBLING, 40, 0);
    w.domain = EDDY_PROCESSING_TIME;
    eddy_stream_t *j =
        eddy_window_join(pt_keyed(env, &gl, 40, 200.0),
                         pt_keyed(env, &gr, 40, 200.0), &w, pair_fn, NULL);
    eddy_sink_collect(j, out);
    EXECUTE_OK(env);
    size_t n = eddy_collection_count(out);
    assert_true(n > 0);
    /* Distinct windows (result timestamps end - 1). */
    int distinct = 0;
    int64_t seen[64];
    for (size_t i = 0; i < n; i++) {
        int64_t ts = eddy_collection_get(out, i)->ts;
        bool dup = false;
        for (int k = 0; k < distinct; k++) {
            dup |= seen[k] == ts;
        }
        if (!dup && distinct < 64) {
            seen[distinct++] = ts;
        }
        assert_int_equal((ts + 1) % 40, 0);
    }
    assert_true(distinct >= 2);
    /* Every pair is counted once: no window has more than all 40 x 40. */
    assert_true(n < 40 * 40);
    eddy__join_stats_t st = stats_of(j);
    assert_true(st.jst_expired > 0); /* fired before the end of input */
    assert_int_equal(st.jst_leftover, 0);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

/* ---- errors ---- */

static void expect_build_error(eddy_env_t *env, const char *msg)
{
    eddy_error_t err;
    eddy_error_clear(&err);
    assert_int_not_equal(eddy_env_execute(env, &err), 0);
    TU_ASSERT_CONTAINS(err.msg, msg);
    eddy_env_destroy(env);
}

static void test_build_errors(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *l, *r;
    harness_inputs(env, &l, &r);
    assert_null(eddy_interval_join(l, r, 5, 4, pair_fn, NULL));
    expect_build_error(env, "eddy_interval_join: the lower bound (5 ms) must "
                            "not exceed the upper bound (4 ms)");

    env = eddy_env_new();
    harness_inputs(env, &l, &r);
    assert_null(eddy_interval_join(l, r, 0, 4, NULL, NULL));
    expect_build_error(env, "the join function must not be NULL");

    env = eddy_env_new();
    harness_inputs(env, &l, &r);
    eddy_window_spec_t w = spec_time(EDDY_WINDOW_SESSION, 0, 0);
    w.gap_ms = 10;
    assert_null(eddy_window_join(l, r, &w, pair_fn, NULL));
    expect_build_error(env, "eddy_window_join: session windows are not "
                            "supported; joins take tumbling or sliding time "
                            "windows");

    env = eddy_env_new();
    harness_inputs(env, &l, &r);
    w = spec_time(EDDY_WINDOW_COUNT_TUMBLING, 0, 0);
    w.count = 3;
    assert_null(eddy_window_join(l, r, &w, pair_fn, NULL));
    expect_build_error(env, "count windows are not supported");

    env = eddy_env_new();
    harness_inputs(env, &l, &r);
    w = spec_time(EDDY_WINDOW_SLIDING, 10, 0);
    assert_null(eddy_window_join(l, r, &w, pair_fn, NULL));
    expect_build_error(env, "the window slide must be > 0 ms");

    env = eddy_env_new();
    harness_inputs(env, &l, &r);
    w = spec_time(EDDY_WINDOW_TUMBLING, 10, 0);
    w.offset_ms = 10;
    assert_null(eddy_window_join(l, r, &w, pair_fn, NULL));
    expect_build_error(env, "the window offset (10 ms) must be smaller than "
                            "the size (10 ms)");

    env = eddy_env_new();
    harness_inputs(env, &l, &r);
    w = spec_time(EDDY_WINDOW_TUMBLING, 10, 0);
    w.trigger = EDDY_TRIGGER_COUNT;
    w.trigger_count = 2;
    assert_null(eddy_window_join(l, r, &w, pair_fn, NULL));
    expect_build_error(env, "other triggers are not supported");

    /* Inputs must be keyed. */
    env = eddy_env_new();
    eddy_stream_t *plain = eddy_source_collection(env, NULL, 0);
    harness_inputs(env, &l, &r);
    assert_non_null(eddy_interval_join(l, plain, 0, 1, pair_fn, NULL));
    expect_build_error(env, "operator 'IntervalJoin' needs a keyed stream");
}

static void test_records_without_timestamps_fail(void **state)
{
    (void)state;
    static const eddy_record_t recs[] = {{"k", 1, "v", 1, EDDY_TS_NONE}};
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *l =
        eddy_key_by(eddy_source_collection(env, recs, 1), NULL, NULL);
    eddy_stream_t *r =
        eddy_key_by(eddy_source_collection(env, NULL, 0), NULL, NULL);
    eddy_sink_discard(eddy_interval_join(l, r, 0, 1, pair_fn, NULL));
    run_expect_failure(env, "operator 'IntervalJoin' (subtask 1 of 1) failed: "
                            "interval join: a record of the left input has no "
                            "timestamp");
    eddy_env_destroy(env);

    env = eddy_env_new();
    l = eddy_key_by(eddy_source_collection(env, NULL, 0), NULL, NULL);
    r = eddy_key_by(eddy_source_collection(env, recs, 1), NULL, NULL);
    eddy_window_spec_t w = spec_time(EDDY_WINDOW_TUMBLING, 10, 0);
    eddy_sink_discard(eddy_window_join(l, r, &w, pair_fn, NULL));
    run_expect_failure(env, "window join (event time): a record of the right "
                            "input has no timestamp");
    eddy_env_destroy(env);
}

/* The join function has the key, but no keyed state or timers. */
static int timer_fn(eddy_ctx_t *ctx, const eddy_record_t *l,
                    const eddy_record_t *r, eddy_collector_t *out, void *opaque)
{
    (void)l;
    (void)r;
    (void)out;
    (void)opaque;
    return eddy_timer_register(ctx, EDDY_EVENT_TIME, 5);
}

static void test_join_fn_has_no_timers(void **state)
{
    (void)state;
    static const eddy_record_t recs[] = {{"k", 1, "v", 1, 10}};
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *l =
        eddy_key_by(eddy_source_collection(env, recs, 1), NULL, NULL);
    eddy_stream_t *r =
        eddy_key_by(eddy_source_collection(env, recs, 1), NULL, NULL);
    eddy_sink_discard(eddy_interval_join(l, r, 0, 0, timer_fn, NULL));
    run_expect_failure(env, "eddy_timer_register: timers are only available "
                            "in keyed process functions");
    eddy_env_destroy(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interval_pairs_and_boundaries),
        cmocka_unit_test(test_interval_negative_bounds),
        cmocka_unit_test(test_interval_equal_timestamps),
        cmocka_unit_test(test_interval_result_timestamps),
        cmocka_unit_test(test_window_tumbling_event_time),
        cmocka_unit_test(test_window_sliding_event_time),
        cmocka_unit_test(test_window_allowed_lateness),
        cmocka_unit_test(test_interval_job_parallelism),
        cmocka_unit_test(test_interval_self_join),
        cmocka_unit_test(test_window_job_tumbling),
        cmocka_unit_test(test_window_job_sliding),
        cmocka_unit_test(test_window_processing_time_totals),
        cmocka_unit_test(test_window_processing_time_fires_during_run),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_records_without_timestamps_fail),
        cmocka_unit_test(test_join_fn_has_no_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
