/*
 * eddy — unit tests for src/operators/window.c: every window kind, trigger
 * and function, negative timestamps, out-of-order input, session merging,
 * allowed lateness with the exact sequence of late firings, late side output
 * and the dropped counter, count windows, processing time, and parallelism.
 * Expected results are computed independently in the tests (brute force over
 * every window a record belongs to), never with the operator's arithmetic.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <stdatomic.h>

#define MAXN 8192
#define NKEYS 16

static inline int64_t floor_mod_i64(int64_t x, int64_t m)
{
    int64_t r = x % m;
    return r < 0 ? r + m : r;
}

/* Test hook in window.c: state entries and timers left when the window
 * operator's subtasks closed. */
uint64_t eddy__window_leftover(const eddy_stream_t *window_op);

static bool time_window(const eddy_window_spec_t *w)
{
    return w->kind == EDDY_WINDOW_TUMBLING || w->kind == EDDY_WINDOW_SLIDING ||
           w->kind == EDDY_WINDOW_SESSION;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define EXECUTE_OK(env)                                                        \
    do {                                                                       \
        eddy_error_t err_;                                                     \
        eddy_error_clear(&err_);                                               \
        TU_ASSERT_OK(eddy_env_execute((env), &err_), &err_);                   \
    } while (0)

/* ---- input ---- */

/* Keyed int64 records: key "k<key>", value v, timestamp ts. */
typedef struct input {
    char keys[NKEYS][8];
    int64_t vals[MAXN];
    eddy_record_t recs[MAXN];
    size_t n;
} input_t;

static input_t *input_new(void)
{
    input_t *in = calloc(1, sizeof(*in));
    assert_non_null(in);
    for (int k = 0; k < NKEYS; k++) {
        snprintf(in->keys[k], sizeof(in->keys[k]), "k%d", k);
    }
    return in;
}

static void in_add(input_t *in, int key, int64_t ts, int64_t v)
{
    assert_true(key >= 0 && key < NKEYS && in->n < MAXN);
    in->vals[in->n] = v;
    in->recs[in->n] = (eddy_record_t){in->keys[key], strlen(in->keys[key]),
                                      &in->vals[in->n], sizeof(int64_t), ts};
    in->n++;
}

static int key_index(const void *key, size_t len)
{
    char buf[16];
    assert_non_null(key);
    assert_true(len >= 2 && len < sizeof(buf));
    memcpy(buf, key, len);
    buf[len] = '\0';
    assert_int_equal(buf[0], 'k');
    return atoi(buf + 1);
}

/* Punctuated watermarks: max timestamp - bound - 1 after every record, so
 * event time advances deterministically with the input. */
typedef struct pw_state {
    int64_t max;
    int64_t seen;
} pw_state_t;

static int64_t pw_on_event(void *state, const eddy_record_t *rec, void *opaque)
{
    pw_state_t *s = state;
    int64_t bound = (int64_t)(intptr_t)opaque;
    if (!s->seen || rec->ts > s->max) {
        s->max = rec->ts;
        s->seen = 1;
    }
    return s->max - bound - 1;
}

/*
 * The input as a keyed stream, in order: source, timestamps (bound >= 0:
 * punctuated watermarks with that bound; < 0: no timestamps) and key_by all
 * at parallelism 1, so each key's records reach the window in input order
 * at any window parallelism.
 */
static eddy_stream_t *keyed_src(eddy_env_t *env, const input_t *in,
                                int64_t bound)
{
    eddy_env_set_watermark_interval(env, 0);
    eddy_stream_t *s = eddy_source_collection(env, in->recs, in->n);
    if (bound >= 0) {
        eddy_watermark_strategy_t ws = eddy_watermarks_custom(
            pw_on_event, NULL, sizeof(pw_state_t), (void *)(intptr_t)bound);
        s = eddy_parallelism(eddy_assign_timestamps(s, &ws), 1);
    }
    return eddy_parallelism(eddy_key_by(s, NULL, NULL), 1);
}

/* ---- results ---- */

typedef struct res {
    int key;
    int64_t ts;
    int64_t v;
} res_t;

static int res_cmp(const void *a, const void *b)
{
    const res_t *x = a, *y = b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }
    return x->v < y->v ? -1 : x->v > y->v;
}

/* The collected results (key, ts, int64 value), in arrival order. */
static res_t *collect(eddy_collection_t *c, size_t *n)
{
    *n = eddy_collection_count(c);
    res_t *r = calloc(*n + 1, sizeof(*r));
    for (size_t i = 0; i < *n; i++) {
        const eddy_record_t *rec = eddy_collection_get(c, i);
        r[i].key = key_index(rec->key, rec->key_len);
        r[i].ts = rec->ts;
        assert_int_equal(rec->value_len, sizeof(int64_t));
        r[i].v = eddy_record_value_i64(rec);
    }
    return r;
}

static void assert_res_equal(const res_t *got, size_t ngot, const res_t *want,
                             size_t nwant)
{
    for (size_t i = 0; i < ngot && i < nwant; i++) {
        if (got[i].key != want[i].key || got[i].ts != want[i].ts ||
            got[i].v != want[i].v) {
            fail_msg("result %zu: got (k%d, ts %lld, %lld), want (k%d, ts "
                     "%lld, %lld)",
                     i, got[i].key, (long long)got[i].ts, (long long)got[i].v,
                     want[i].key, (long long)want[i].ts, (long long)want[i].v);
        }
    }
    assert_int_equal(ngot, nwant);
}

/* Compares the collected results as a multiset with the expected ones. */
static void assert_results_sorted(eddy_collection_t *c, res_t *want,
                                  size_t nwant)
{
    size_t n;
    res_t *got = collect(c, &n);
    qsort(got, n, sizeof(*got), res_cmp);
    qsort(want, nwant, sizeof(*want), res_cmp);
    assert_res_equal(got, n, want, nwant);
    free(got);
}

/* Compares the collected results, in order, with the expected sequence. */
static void assert_results_seq(eddy_collection_t *c, const res_t *want,
                               size_t nwant)
{
    size_t n;
    res_t *got = collect(c, &n);
    assert_res_equal(got, n, want, nwant);
    free(got);
}

/*
 * Expected sums of time windows, by brute force: every window start
 * s = offset + j * slide (j over a generous range) with s <= ts < s + size.
 * Results: (key, end - 1, sum of values), or (key, end - 1, count).
 */
static res_t *expect_time_windows(const input_t *in, int64_t size,
                                  int64_t slide, int64_t offset, bool count,
                                  size_t *nout)
{
    size_t cap = in->n * (size_t)(size / slide + 2) + 1, n = 0;
    res_t *pairs = calloc(cap, sizeof(*pairs));
    for (size_t i = 0; i < in->n; i++) {
        int64_t ts = in->recs[i].ts;
        int key = key_index(in->recs[i].key, in->recs[i].key_len);
        /* j0 is at or below the first window that can contain ts. */
        int64_t j0 = (ts - size - offset) / slide - 2;
        for (int64_t j = j0;; j++) {
            int64_t s = offset + j * slide;
            if (s > ts) {
                break;
            }
            if (s <= ts && ts < s + size) {
                assert_true(n < cap);
                pairs[n++] =
                    (res_t){key, s + size - 1, count ? 1 : in->vals[i]};
            }
        }
    }
    qsort(pairs, n, sizeof(*pairs), res_cmp);
    /* Sum runs of equal (key, ts). */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && pairs[m - 1].key == pairs[i].key &&
            pairs[m - 1].ts == pairs[i].ts) {
            pairs[m - 1].v += pairs[i].v;
        } else {
            pairs[m++] = pairs[i];
        }
    }
    *nout = m;
    return pairs;
}

/* Expected session sums: per key, sorted timestamps; a record joins the
 * current session when ts <= its end (Flink merges touching windows). */
static res_t *expect_sessions(const input_t *in, int64_t gap, size_t *nout)
{
    res_t *recs = calloc(in->n + 1, sizeof(*recs));
    for (size_t i = 0; i < in->n; i++) {
        recs[i] = (res_t){key_index(in->recs[i].key, in->recs[i].key_len),
                          in->recs[i].ts, in->vals[i]};
    }
    qsort(recs, in->n, sizeof(*recs), res_cmp);
    res_t *out = calloc(in->n + 1, sizeof(*out));
    size_t m = 0;
    int cur_key = -1;
    int64_t end = 0, sum = 0;
    for (size_t i = 0; i < in->n; i++) {
        if (recs[i].key == cur_key && recs[i].ts <= end) {
            end = recs[i].ts + gap > end ? recs[i].ts + gap : end;
            sum += recs[i].v;
            continue;
        }
        if (cur_key >= 0) {
            out[m++] = (res_t){cur_key, end - 1, sum};
        }
        cur_key = recs[i].key;
        end = recs[i].ts + gap;
        sum = recs[i].v;
    }
    if (cur_key >= 0) {
        out[m++] = (res_t){cur_key, end - 1, sum};
    }
    free(recs);
    *nout = m;
    return out;
}

/* ---- window functions ---- */

enum { F_AGG, F_AGG_NOMERGE, F_REDUCE, F_PROCESS };

static int sum_reduce(eddy_ctx_t *ctx, const eddy_record_t *acc,
                      const eddy_record_t *in, eddy_record_t *out, void *opaque)
{
    (void)opaque;
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    *v = eddy_record_value_i64(acc) + eddy_record_value_i64(in);
    out->value = v;
    out->value_len = sizeof(*v);
    return 0;
}

/* What process functions saw that they should not have. */
typedef struct pcheck {
    atomic_int bad;
    atomic_int calls;
} pcheck_t;

static int proc_sum(eddy_ctx_t *ctx, const eddy_window_t *win,
                    eddy_window_elements_t *els, eddy_collector_t *out,
                    void *opaque)
{
    static pcheck_t ignored;
    pcheck_t *pc = opaque != NULL ? opaque : &ignored;
    atomic_fetch_add(&pc->calls, 1);
    if (eddy_ctx_window(ctx) != win) {
        atomic_fetch_add(&pc->bad, 1);
    }
    size_t klen;
    const void *key = eddy_ctx_key(ctx, &klen);
    int64_t sum = 0;
    eddy_record_t r;
    while (eddy_window_elements_next(els, &r) == 1) {
        if (key == NULL || r.key_len != klen || memcmp(r.key, key, klen) != 0) {
            atomic_fetch_add(&pc->bad, 1);
        }
        /* (Processing-time windows keep the records' own timestamps.) */
        if (win->start != INT64_MIN && r.ts != EDDY_TS_NONE &&
            (r.ts < win->start || r.ts >= win->end)) {
            atomic_fetch_add(&pc->bad, 1);
        }
        sum += eddy_record_value_i64(&r);
    }
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    *v = sum;
    /* No key and a wrong timestamp: the operator supplies both. */
    eddy_record_t o = {NULL, 0, v, sizeof(*v), 12345};
    return eddy_collect(out, &o);
}

static eddy_aggregate_t sum_nomerge;

static eddy_stream_t *apply_fn(eddy_stream_t *keyed,
                               const eddy_window_spec_t *w, int fn,
                               pcheck_t *pc)
{
    switch (fn) {
    case F_AGG:
        return eddy_window_aggregate(keyed, w, eddy_agg_sum_i64());
    case F_AGG_NOMERGE:
        sum_nomerge = *eddy_agg_sum_i64();
        sum_nomerge.merge = NULL;
        return eddy_window_aggregate(keyed, w, &sum_nomerge);
    case F_REDUCE:
        return eddy_window_reduce(keyed, w, sum_reduce, NULL);
    default:
        return eddy_window_process(keyed, w, proc_sum, pc);
    }
}

/* Runs `w` with function `fn` at window parallelism `par` over `in`;
 * returns the collected results (caller destroys). */
static eddy_collection_t *run_window(const input_t *in, int64_t bound,
                                     const eddy_window_spec_t *w, int fn,
                                     int par)
{
    pcheck_t pc;
    atomic_init(&pc.bad, 0);
    atomic_init(&pc.calls, 0);
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *win = apply_fn(keyed_src(env, in, bound), w, fn, &pc);
    eddy_sink_collect(eddy_parallelism(win, par), out);
    EXECUTE_OK(env);
    /* Time windows clean up everything by the end of the input. */
    if (time_window(w)) {
        assert_int_equal(eddy__window_leftover(win), 0);
    }
    eddy_env_destroy(env);
    assert_int_equal(atomic_load(&pc.bad), 0);
    if (fn == F_PROCESS) {
        assert_int_equal((size_t)atomic_load(&pc.calls),
                         eddy_collection_count(out));
    }
    return out;
}

/* ---- tumbling ---- */

/* Keys spread over NKEYS, timestamps from negative to positive, out of
 * order by up to `disorder` ms (always within the watermark bound). */
static input_t *random_input(size_t n, int64_t step, int64_t base,
                             int64_t disorder, int nkeys, uint64_t seed)
{
    input_t *in = input_new();
    uint64_t rs = seed;
    for (size_t i = 0; i < n; i++) {
        int64_t ts = base + (int64_t)i * step +
                     (int64_t)(tu_rand(&rs) % (uint64_t)disorder);
        in_add(in, (int)(tu_rand(&rs) % (uint64_t)nkeys), ts,
               (int64_t)(tu_rand(&rs) % 1000) + 1);
    }
    return in;
}

static void check_tumbling(int fn, int par)
{
    input_t *in = random_input(3000, 3, -4000, 50, 8, 42);
    eddy_window_spec_t w = eddy_window_tumbling(100);
    w.offset_ms = 30;
    size_t nwant;
    res_t *want = expect_time_windows(in, 100, 100, 30, false, &nwant);
    eddy_collection_t *out = run_window(in, 60, &w, fn, par);
    assert_results_sorted(out, want, nwant);
    eddy_collection_destroy(out);
    free(want);
    free(in);
}

static void test_tumbling_aggregate(void **state)
{
    (void)state;
    check_tumbling(F_AGG, 1);
}

static void test_tumbling_reduce(void **state)
{
    (void)state;
    check_tumbling(F_REDUCE, 1);
}

static void test_tumbling_process(void **state)
{
    (void)state;
    check_tumbling(F_PROCESS, 1);
}

static void test_tumbling_parallel(void **state)
{
    (void)state;
    check_tumbling(F_AGG, 4);
    check_tumbling(F_PROCESS, 4);
}

/* Window bounds around zero and for negative timestamps, with an offset:
 * the process function reports each window's start and end. */
static int proc_bounds(eddy_ctx_t *ctx, const eddy_window_t *win,
                       eddy_window_elements_t *els, eddy_collector_t *out,
                       void *opaque)
{
    (void)opaque;
    (void)els;
    int64_t *v = eddy_ctx_scratch(ctx, 2 * sizeof(int64_t));
    v[0] = win->start;
    v[1] = win->end;
    eddy_record_t o = {NULL, 0, v, 2 * sizeof(int64_t), 0};
    return eddy_collect(out, &o);
}

static void test_tumbling_negative_timestamps(void **state)
{
    (void)state;
    /* size 10, offset 3: windows [..., -17, -7, 3, 13, ...) */
    static const int64_t ts[] = {-18, -17, -8, -7, -1, 0, 2, 3, 12, 13};
    static const int64_t starts[] = {-27, -17, -17, -7, -7, -7, -7, 3, 3, 13};
    input_t *in = input_new();
    for (size_t i = 0; i < NELEM(ts); i++) {
        in_add(in, 0, ts[i], 1);
    }
    eddy_window_spec_t w = eddy_window_tumbling(10);
    w.offset_ms = 3;
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_window_process(keyed_src(env, in, 0), &w, proc_bounds, NULL), out);
    EXECUTE_OK(env);
    /* Distinct windows, in firing order. */
    static const int64_t want[] = {-27, -17, -7, 3, 13};
    assert_int_equal(eddy_collection_count(out), NELEM(want));
    for (size_t i = 0; i < NELEM(want); i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int64_t b[2];
        memcpy(b, r->value, sizeof(b));
        assert_int_equal(b[0], want[i]);
        assert_int_equal(b[1], want[i] + 10);
        assert_int_equal(r->ts, want[i] + 9);
        assert_int_equal(key_index(r->key, r->key_len), 0);
    }
    /* The table above agrees with floor division. */
    for (size_t i = 0; i < NELEM(ts); i++) {
        int64_t q = (ts[i] - 3) / 10;
        if ((ts[i] - 3) % 10 != 0 && ts[i] - 3 < 0) {
            q--;
        }
        assert_int_equal(starts[i], 3 + q * 10);
    }
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
    free(in);
}

/* ---- sliding ---- */

static void check_sliding(int64_t size, int64_t slide, int64_t offset, int fn,
                          int par)
{
    input_t *in = random_input(2000, 2, -1500, 40, 6, 7);
    eddy_window_spec_t w = eddy_window_sliding(size, slide);
    w.offset_ms = offset;
    size_t nwant;
    res_t *want = expect_time_windows(
        in, size, slide, floor_mod_i64(offset, slide), false, &nwant);
    eddy_collection_t *out = run_window(in, 50, &w, fn, par);
    assert_results_sorted(out, want, nwant);
    eddy_collection_destroy(out);
    free(want);
    free(in);
}

static void test_sliding_sliced(void **state)
{
    (void)state;
    /* size a multiple of slide, and not (slices of gcd = 10 ms) */
    check_sliding(100, 20, 0, F_AGG, 1);
    check_sliding(100, 30, 7, F_AGG, 1);
    check_sliding(100, 30, -7, F_REDUCE, 1);
    check_sliding(100, 30, 7, F_PROCESS, 1);
    check_sliding(50, 50, 0, F_AGG, 1);
}

static void test_sliding_per_window(void **state)
{
    (void)state;
    /* Without merge: one accumulator per window, same results. */
    check_sliding(100, 30, 7, F_AGG_NOMERGE, 1);
    check_sliding(100, 20, 0, F_AGG_NOMERGE, 1);
}

static void test_sliding_parallel(void **state)
{
    (void)state;
    check_sliding(100, 30, 7, F_AGG, 4);
    check_sliding(100, 30, 7, F_PROCESS, 4);
    check_sliding(100, 30, 7, F_AGG_NOMERGE, 4);
}

/* ---- sessions ---- */

static void test_session_bridging(void **state)
{
    (void)state;
    input_t *in = input_new();
    /* gap 10. k0: [0,10) and [18,28), then 9 bridges them: [0,28). */
    in_add(in, 0, 0, 1);
    in_add(in, 0, 18, 2);
    in_add(in, 0, 9, 4);
    /* k1: [100,110) and [110,120) touch: Flink merges them. */
    in_add(in, 1, 100, 8);
    in_add(in, 1, 110, 16);
    /* k1: a separate session later; k2: one record. */
    in_add(in, 1, 121, 32);
    in_add(in, 2, 50, 64);
    eddy_window_spec_t w = eddy_window_session(10);
    res_t want[] = {{0, 27, 7}, {1, 119, 24}, {1, 130, 32}, {2, 59, 64}};
    for (int fn = F_AGG; fn <= F_PROCESS; fn++) {
        if (fn == F_AGG_NOMERGE) {
            continue;
        }
        eddy_collection_t *out = run_window(in, 100, &w, fn, 1);
        assert_results_sorted(out, want, NELEM(want));
        eddy_collection_destroy(out);
    }
    free(in);
}

/* The elements of a merged session, in order: the process function joins
 * their values as decimal digits. */
static int proc_digits(eddy_ctx_t *ctx, const eddy_window_t *win,
                       eddy_window_elements_t *els, eddy_collector_t *out,
                       void *opaque)
{
    (void)opaque;
    (void)win;
    int64_t acc = 0;
    eddy_record_t r;
    while (eddy_window_elements_next(els, &r) == 1) {
        acc = acc * 10 + eddy_record_value_i64(&r);
    }
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    *v = acc;
    eddy_record_t o = {NULL, 0, v, sizeof(*v), 0};
    return eddy_collect(out, &o);
}

static void test_session_process_elements(void **state)
{
    (void)state;
    input_t *in = input_new();
    /* Three sessions of k0 merged by the last two records. */
    in_add(in, 0, 0, 1);  /* [0,10) */
    in_add(in, 0, 20, 2); /* [20,30) */
    in_add(in, 0, 40, 3); /* [40,50) */
    in_add(in, 0, 3, 4);  /* extends [0,10) to [0,13) */
    in_add(in, 0, 30, 5); /* [30,40) bridges [20,30) and [40,50) */
    in_add(in, 0, 12, 6); /* [12,22) bridges [0,13) and [20,50) */
    eddy_window_spec_t w = eddy_window_session(10);
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_window_process(keyed_src(env, in, 1000), &w, proc_digits, NULL),
        out);
    EXECUTE_OK(env);
    /* The first session's elements, then the merged ones (each session's
     * elements in arrival order), then the new record. */
    res_t want[] = {{0, 49, 142356}};
    assert_results_seq(out, want, 1);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
    free(in);
}

static void check_sessions_random(int fn, int par)
{
    input_t *in = input_new();
    uint64_t rs = 99;
    for (size_t i = 0; i < 3000; i++) {
        int64_t ts = -2000 + (int64_t)i * 4 + (int64_t)(tu_rand(&rs) % 30);
        /* Bursts and pauses per key. */
        int key = (int)(tu_rand(&rs) % 5);
        if ((ts / 200) % 3 == key % 3) {
            continue;
        }
        in_add(in, key, ts, (int64_t)(tu_rand(&rs) % 100) + 1);
    }
    eddy_window_spec_t w = eddy_window_session(25);
    size_t nwant;
    res_t *want = expect_sessions(in, 25, &nwant);
    eddy_collection_t *out = run_window(in, 40, &w, fn, par);
    assert_results_sorted(out, want, nwant);
    eddy_collection_destroy(out);
    free(want);
    free(in);
}

static void test_session_random(void **state)
{
    (void)state;
    check_sessions_random(F_AGG, 1);
    check_sessions_random(F_REDUCE, 1);
    check_sessions_random(F_PROCESS, 1);
}

static void test_session_parallel(void **state)
{
    (void)state;
    check_sessions_random(F_AGG, 4);
    check_sessions_random(F_PROCESS, 4);
}

/* ---- allowed lateness, late firings, late records ---- */

typedef struct late_run {
    eddy_collection_t *out;
    eddy_collection_t *late;
    uint64_t dropped;
} late_run_t;

static late_run_t run_late(const input_t *in, const eddy_window_spec_t *w,
                           int fn)
{
    late_run_t lr = {eddy_collection_new(), NULL, 0};
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *win = apply_fn(keyed_src(env, in, 0), w, fn, NULL);
    eddy_sink_collect(win, lr.out);
    if (w->late_output != NULL) {
        lr.late = eddy_collection_new();
        eddy_sink_collect(eddy_side_output(win, w->late_output), lr.late);
    }
    EXECUTE_OK(env);
    lr.dropped = eddy_late_records_dropped(win);
    assert_int_equal(eddy__window_leftover(win), 0);
    eddy_env_destroy(env);
    return lr;
}

static void late_run_free(late_run_t *lr)
{
    eddy_collection_destroy(lr->out);
    eddy_collection_destroy(lr->late);
}

/* Monotonous punctuated watermarks (ts - 1 after each record). */
static input_t *lateness_input(void)
{
    input_t *in = input_new();
    in_add(in, 0, 1, 1);
    in_add(in, 0, 5, 2);
    in_add(in, 0, 12, 4);  /* wm 11: [0,10) fires 3 */
    in_add(in, 0, 3, 8);   /* within lateness: late firing 11 */
    in_add(in, 0, 15, 16); /* wm 14: [0,10) cleaned up (9 + 5) */
    in_add(in, 0, 4, 32);  /* late for [0,10): dropped or side output */
    return in;
}

static void test_lateness_late_firings(void **state)
{
    (void)state;
    input_t *in = lateness_input();
    eddy_window_spec_t w = eddy_window_tumbling(10);
    w.allowed_lateness_ms = 5;
    res_t want[] = {{0, 9, 3}, {0, 9, 11}, {0, 19, 20}};
    for (int fn = F_AGG; fn <= F_PROCESS; fn++) {
        late_run_t lr = run_late(in, &w, fn);
        assert_results_seq(lr.out, want, NELEM(want));
        assert_int_equal(lr.dropped, 1);
        late_run_free(&lr);
    }
    free(in);
}

static void test_lateness_purging(void **state)
{
    (void)state;
    input_t *in = lateness_input();
    eddy_window_spec_t w = eddy_window_tumbling(10);
    w.allowed_lateness_ms = 5;
    w.purging = true;
    /* A late firing after a purge emits only the late record. */
    res_t want[] = {{0, 9, 3}, {0, 9, 8}, {0, 19, 20}};
    for (int fn = F_AGG; fn <= F_PROCESS; fn++) {
        late_run_t lr = run_late(in, &w, fn);
        assert_results_seq(lr.out, want, NELEM(want));
        late_run_free(&lr);
    }
    free(in);
}

static void test_lateness_zero(void **state)
{
    (void)state;
    input_t *in = lateness_input();
    eddy_window_spec_t w = eddy_window_tumbling(10);
    /* No lateness: both records for [0,10) after wm 11 are dropped. */
    res_t want[] = {{0, 9, 3}, {0, 19, 20}};
    late_run_t lr = run_late(in, &w, F_AGG);
    assert_results_seq(lr.out, want, NELEM(want));
    assert_int_equal(lr.dropped, 2);
    late_run_free(&lr);
    free(in);
}

static void test_late_side_output(void **state)
{
    (void)state;
    input_t *in = lateness_input();
    eddy_window_spec_t w = eddy_window_tumbling(10);
    w.allowed_lateness_ms = 5;
    w.late_output = "late";
    late_run_t lr = run_late(in, &w, F_REDUCE);
    res_t want[] = {{0, 9, 3}, {0, 9, 11}, {0, 19, 20}};
    assert_results_seq(lr.out, want, NELEM(want));
    /* The late record itself, unchanged; nothing counted as dropped. */
    res_t want_late[] = {{0, 4, 32}};
    assert_results_seq(lr.late, want_late, 1);
    assert_int_equal(lr.dropped, 0);
    late_run_free(&lr);
    free(in);
}

/* Sliding windows with lateness: the exact sequence of Flink's
 * WindowOperator (late firings of a record's windows, latest first), for
 * the sliced implementation and for one accumulator per window. */
static void test_sliding_lateness_sequence(void **state)
{
    (void)state;
    input_t *in = input_new();
    in_add(in, 0, 2, 1);
    in_add(in, 0, 11, 2);   /* wm 10: [-5,5) = 1, [0,10) = 1 */
    in_add(in, 0, 3, 4);    /* late firings [0,10) = 5, [-5,5) = 5 */
    in_add(in, 0, 16, 8);   /* wm 15: [5,15) = 2; [-5,5) closes at 14 */
    in_add(in, 0, 1, 16);   /* late firing [0,10) = 21 only */
    in_add(in, 0, -20, 64); /* late for all its windows */
    eddy_window_spec_t w = eddy_window_sliding(10, 5);
    w.allowed_lateness_ms = 10;
    res_t want[] = {{0, 4, 1},  {0, 9, 1},  {0, 9, 5},   {0, 4, 5},
                    {0, 14, 2}, {0, 9, 21}, {0, 19, 10}, {0, 24, 8}};
    for (int fn = F_AGG; fn <= F_PROCESS; fn++) {
        late_run_t lr = run_late(in, &w, fn);
        assert_results_seq(lr.out, want, NELEM(want));
        assert_int_equal(lr.dropped, 1);
        late_run_free(&lr);
    }
    free(in);
}

static void test_session_late(void **state)
{
    (void)state;
    input_t *in = input_new();
    in_add(in, 0, 0, 1);
    in_add(in, 0, 20, 2); /* wm 19: [0,5) fires and is cleaned up */
    in_add(in, 0, 2, 4);  /* a new session [2,7): late */
    in_add(in, 0, 23, 8); /* extends [20,25) */
    eddy_window_spec_t w = eddy_window_session(5);
    w.late_output = "late";
    late_run_t lr = run_late(in, &w, F_AGG);
    res_t want[] = {{0, 4, 1}, {0, 27, 10}};
    assert_results_seq(lr.out, want, NELEM(want));
    res_t want_late[] = {{0, 2, 4}};
    assert_results_seq(lr.late, want_late, 1);
    late_run_free(&lr);
    free(in);
}

/* ---- triggers ---- */

static input_t *five_records(void)
{
    input_t *in = input_new();
    static const int64_t v[] = {1, 2, 4, 8, 16};
    for (int i = 0; i < 5; i++) {
        in_add(in, 0, 10 + i, v[i]);
    }
    for (int i = 0; i < 5; i++) {
        in_add(in, 1, 20 + i, v[i] * 100);
    }
    return in;
}

static void check_count_trigger(eddy_window_spec_t w, const res_t *want,
                                size_t nwant)
{
    input_t *in = five_records();
    for (int fn = F_AGG; fn <= F_PROCESS; fn++) {
        eddy_collection_t *out = run_window(in, 0, &w, fn, 1);
        res_t *copy = malloc(nwant * sizeof(*copy) + 1);
        if (nwant > 0) {
            memcpy(copy, want, nwant * sizeof(*copy));
        }
        assert_results_sorted(out, copy, nwant);
        free(copy);
        eddy_collection_destroy(out);
    }
    free(in);
}

static void test_count_trigger_tumbling(void **state)
{
    (void)state;
    /* Every 2 records of a window; the 5th never fires (the cleanup at the
     * window's end does not fire, as Flink's CountTrigger). */
    eddy_window_spec_t w = eddy_window_tumbling(100);
    w.trigger = EDDY_TRIGGER_COUNT;
    w.trigger_count = 2;
    res_t keep[] = {{0, 99, 3}, {0, 99, 15}, {1, 99, 300}, {1, 99, 1500}};
    check_count_trigger(w, keep, NELEM(keep));
    w.purging = true;
    res_t purge[] = {{0, 99, 3}, {0, 99, 12}, {1, 99, 300}, {1, 99, 1200}};
    check_count_trigger(w, purge, NELEM(purge));
}

static void test_global_windows(void **state)
{
    (void)state;
    /* Default trigger: never fires. */
    eddy_window_spec_t w = eddy_window_global();
    check_count_trigger(w, NULL, 0);
    /* Count trigger: results carry the last record's timestamp. */
    w.trigger = EDDY_TRIGGER_COUNT;
    w.trigger_count = 2;
    res_t keep[] = {{0, 11, 3}, {0, 13, 15}, {1, 21, 300}, {1, 23, 1500}};
    check_count_trigger(w, keep, NELEM(keep));
    w.purging = true;
    res_t purge[] = {{0, 11, 3}, {0, 13, 12}, {1, 21, 300}, {1, 23, 1200}};
    check_count_trigger(w, purge, NELEM(purge));
    /* Event-time trigger: fires once, at the end of the input. */
    w = eddy_window_global();
    w.trigger = EDDY_TRIGGER_EVENT_TIME;
    res_t end[] = {{0, 14, 31}, {1, 24, 3100}};
    check_count_trigger(w, end, NELEM(end));
    /* Processing-time trigger: the clock never reaches the end of time, but
     * a bounded input's end fires pending processing-time windows. */
    w.trigger = EDDY_TRIGGER_PROCESSING_TIME;
    check_count_trigger(w, end, NELEM(end));
}

static void test_event_trigger_on_count_input(void **state)
{
    (void)state;
    /* An explicit event-time trigger equals the default one. */
    eddy_window_spec_t w = eddy_window_tumbling(12);
    w.trigger = EDDY_TRIGGER_EVENT_TIME;
    res_t want[] = {{0, 11, 3}, {0, 23, 28}, {1, 23, 1500}, {1, 35, 1600}};
    check_count_trigger(w, want, NELEM(want));
}

/* ---- count windows ---- */

static void test_count_tumbling(void **state)
{
    (void)state;
    input_t *in = input_new();
    for (int i = 1; i <= 7; i++) {
        in_add(in, 0, 100 + i, i);
        in_add(in, 1, 200 + i, 10 * i);
    }
    eddy_window_spec_t w = eddy_window_count(3);
    /* 7 is left over: count windows never fire incomplete. */
    res_t want[] = {{0, 103, 6}, {0, 106, 15}, {1, 203, 60}, {1, 206, 150}};
    for (int fn = F_AGG; fn <= F_PROCESS; fn++) {
        eddy_collection_t *out = run_window(in, 0, &w, fn, 1);
        res_t copy[4];
        memcpy(copy, want, sizeof(copy));
        assert_results_sorted(out, copy, 4);
        eddy_collection_destroy(out);
    }
    /* Without timestamps, results have none either. */
    input_t *none = input_new();
    for (int i = 1; i <= 7; i++) {
        in_add(none, 0, EDDY_TS_NONE, i);
        in_add(none, 1, EDDY_TS_NONE, 10 * i);
    }
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_window_aggregate(keyed_src(env, none, -1), &w, eddy_agg_count()),
        out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 4);
    for (size_t i = 0; i < 4; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        assert_true(r->ts == EDDY_TS_NONE);
        assert_int_equal(eddy_record_value_i64(r), 3);
    }
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
    free(none);
    free(in);
}

static void test_count_sliding(void **state)
{
    (void)state;
    input_t *in = input_new();
    for (int i = 1; i <= 8; i++) {
        in_add(in, 0, 100 + i, i);
    }
    /* Every 2 records, the last (up to) 3. */
    eddy_window_spec_t w = eddy_window_count_sliding(3, 2);
    res_t want[] = {{0, 102, 1 + 2},
                    {0, 104, 2 + 3 + 4},
                    {0, 106, 4 + 5 + 6},
                    {0, 108, 6 + 7 + 8}};
    for (int fn = F_AGG; fn <= F_PROCESS; fn++) {
        eddy_collection_t *out = run_window(in, 0, &w, fn, 1);
        assert_results_seq(out, want, NELEM(want));
        eddy_collection_destroy(out);
    }
    /* The process function sees exactly those records, oldest first. */
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_window_process(keyed_src(env, in, 0), &w, proc_digits, NULL), out);
    EXECUTE_OK(env);
    res_t digits[] = {
        {0, 102, 12}, {0, 104, 234}, {0, 106, 456}, {0, 108, 678}};
    assert_results_seq(out, digits, NELEM(digits));
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
    free(in);
}

/* ---- process functions and the window context ---- */

static void test_process_sees_all_elements(void **state)
{
    (void)state;
    input_t *in = input_new();
    /* Arrival order within a window is kept; out-of-order input. */
    in_add(in, 0, 5, 1);
    in_add(in, 0, 2, 2);
    in_add(in, 0, 8, 3);
    in_add(in, 0, 14, 4);
    in_add(in, 0, 0, 5);
    in_add(in, 0, 11, 6);
    eddy_window_spec_t w = eddy_window_tumbling(10);
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_window_process(keyed_src(env, in, 10), &w, proc_digits, NULL),
        out);
    EXECUTE_OK(env);
    res_t want[] = {{0, 9, 1235}, {0, 19, 46}};
    assert_results_seq(out, want, NELEM(want));
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
    free(in);
}

/* An aggregate that checks eddy_ctx_window: NULL while adding records,
 * the emitted window while computing the result. */
typedef struct wcheck {
    atomic_int bad;
    atomic_int results;
    int64_t size;
} wcheck_t;

static int wc_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                  void *opaque)
{
    wcheck_t *wc = opaque;
    if (eddy_ctx_window(ctx) != NULL) {
        atomic_fetch_add(&wc->bad, 1);
    }
    int64_t v;
    memcpy(&v, acc, sizeof(v));
    v += eddy_record_value_i64(in);
    memcpy(acc, &v, sizeof(v));
    return 0;
}

static int wc_merge(eddy_ctx_t *ctx, void *acc, const void *other, void *opaque)
{
    wcheck_t *wc = opaque;
    const eddy_window_t *win = eddy_ctx_window(ctx);
    if (win == NULL || win->end - win->start != wc->size) {
        atomic_fetch_add(&wc->bad, 1);
    }
    int64_t a, b;
    memcpy(&a, acc, sizeof(a));
    memcpy(&b, other, sizeof(b));
    a += b;
    memcpy(acc, &a, sizeof(a));
    return 0;
}

static int wc_result(eddy_ctx_t *ctx, const void *acc, eddy_record_t *out,
                     void *opaque)
{
    wcheck_t *wc = opaque;
    const eddy_window_t *win = eddy_ctx_window(ctx);
    atomic_fetch_add(&wc->results, 1);
    if (win == NULL || win->end - win->start != wc->size ||
        out->ts != win->end - 1 || out->key == NULL) {
        atomic_fetch_add(&wc->bad, 1);
    }
    out->value = acc;
    out->value_len = sizeof(int64_t);
    return 0;
}

static void test_ctx_window(void **state)
{
    (void)state;
    input_t *in = random_input(500, 3, -300, 20, 4, 5);
    for (int sliding = 0; sliding <= 1; sliding++) {
        wcheck_t wc;
        atomic_init(&wc.bad, 0);
        atomic_init(&wc.results, 0);
        wc.size = 60;
        eddy_aggregate_t agg = {sizeof(int64_t), NULL, wc_add,
                                wc_result,       &wc,  wc_merge};
        eddy_window_spec_t w =
            sliding ? eddy_window_sliding(60, 20) : eddy_window_tumbling(60);
        eddy_env_t *env = eddy_env_new();
        eddy_collection_t *out = eddy_collection_new();
        eddy_sink_collect(
            eddy_window_aggregate(keyed_src(env, in, 30), &w, &agg), out);
        EXECUTE_OK(env);
        assert_int_equal(atomic_load(&wc.bad), 0);
        assert_true(atomic_load(&wc.results) > 0);
        assert_int_equal((size_t)atomic_load(&wc.results),
                         eddy_collection_count(out));
        size_t nwant;
        res_t *want =
            expect_time_windows(in, 60, sliding ? 20 : 60, 0, false, &nwant);
        assert_results_sorted(out, want, nwant);
        free(want);
        eddy_collection_destroy(out);
        eddy_env_destroy(env);
    }
    free(in);
}

/* ---- processing time ---- */

static int gen_keyed(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                     void *opaque)
{
    (void)opaque;
    char *k = eddy_ctx_scratch(ctx, 8);
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    snprintf(k, 8, "k%d", (int)(index % 3));
    *v = 1;
    out->key = k;
    out->key_len = strlen(k);
    out->value = v;
    out->value_len = sizeof(*v);
    out->ts = EDDY_TS_NONE;
    return 0;
}

static void run_processing_time(int fn, int par)
{
    const uint64_t n = 600;
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    /* 600 records over ~200 ms: several 50 ms windows per key. */
    eddy_stream_t *src = eddy_source_generator(env, n, 3000.0, gen_keyed, NULL);
    eddy_stream_t *keyed = eddy_key_by(src, NULL, NULL);
    eddy_window_spec_t w = eddy_window_tumbling(50);
    w.domain = EDDY_PROCESSING_TIME;
    pcheck_t pc;
    atomic_init(&pc.bad, 0);
    atomic_init(&pc.calls, 0);
    eddy_stream_t *win = apply_fn(keyed, &w, fn, &pc);
    eddy_sink_collect(eddy_parallelism(win, par), out);
    EXECUTE_OK(env);
    assert_int_equal(eddy__window_leftover(win), 0);
    assert_int_equal(atomic_load(&pc.bad), 0);
    /* Totals, not timing: every record is counted exactly once (the last
     * windows fire at the end of the input), per key. */
    int64_t per_key[3] = {0, 0, 0};
    size_t nres = eddy_collection_count(out);
    assert_true(nres >= 3);
    int64_t prev_ts[3] = {INT64_MIN, INT64_MIN, INT64_MIN};
    for (size_t i = 0; i < nres; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int k = key_index(r->key, r->key_len);
        assert_in_range(k, 0, 2);
        per_key[k] += eddy_record_value_i64(r);
        /* Results carry end - 1 of a 50 ms window aligned to the epoch. */
        assert_int_equal(floor_mod_i64(r->ts + 1, 50), 0);
        if (par == 1) {
            /* Windows fire in order and once: a window fires when the
             * clock has passed its end - 1, so no record of it comes
             * later. */
            assert_true(r->ts > prev_ts[k]);
            prev_ts[k] = r->ts;
        }
    }
    for (int k = 0; k < 3; k++) {
        assert_int_equal(per_key[k], (int64_t)n / 3);
    }
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

static void test_processing_time_tumbling(void **state)
{
    (void)state;
    run_processing_time(F_AGG, 1);
    run_processing_time(F_PROCESS, 1);
}

static void test_processing_time_sliding(void **state)
{
    (void)state;
    /* Sliding processing-time windows: each record in size/slide windows. */
    const uint64_t n = 300;
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_source_generator(env, n, 3000.0, gen_keyed, NULL);
    eddy_window_spec_t w = eddy_window_sliding(40, 20);
    w.domain = EDDY_PROCESSING_TIME;
    eddy_sink_collect(eddy_window_aggregate(eddy_key_by(src, NULL, NULL), &w,
                                            eddy_agg_count()),
                      out);
    EXECUTE_OK(env);
    int64_t total = 0;
    for (size_t i = 0; i < eddy_collection_count(out); i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        total += eddy_record_value_i64(r);
        assert_int_equal(floor_mod_i64(r->ts + 1, 20), 0);
    }
    assert_int_equal(total, 2 * (int64_t)n);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

static void test_processing_time_session(void **state)
{
    (void)state;
    /* Records arrive every ~3 ms: one session per key, with all records
     * (a 1 s gap is never exceeded; the session fires at end of input). */
    const uint64_t n = 90;
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_source_generator(env, n, 1000.0, gen_keyed, NULL);
    eddy_window_spec_t w = eddy_window_session(1000);
    w.domain = EDDY_PROCESSING_TIME;
    eddy_sink_collect(eddy_window_aggregate(eddy_key_by(src, NULL, NULL), &w,
                                            eddy_agg_count()),
                      out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(eddy_record_value_i64(eddy_collection_get(out, i)),
                         30);
    }
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

/* ---- errors ---- */

static void expect_build_error(eddy_stream_t *(*build)(eddy_env_t *),
                               const char *needle)
{
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *s = build(env);
    assert_null(s);
    eddy_error_t err;
    eddy_error_clear(&err);
    int rc = eddy_env_execute(env, &err);
    assert_int_equal(rc, EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, needle);
    eddy_env_destroy(env);
}

static eddy_stream_t *src_for_errors(eddy_env_t *env)
{
    static const char *const lines[] = {"a"};
    return eddy_key_by(eddy_source_strings(env, lines, 1), NULL, NULL);
}

#define BUILD_ERR(name, expr)                                                  \
    static eddy_stream_t *name(eddy_env_t *env)                                \
    {                                                                          \
        eddy_stream_t *k = src_for_errors(env);                                \
        return (expr);                                                         \
    }

static const eddy_aggregate_t agg_no_add = {
    sizeof(int64_t), NULL, NULL, NULL, NULL, NULL};

static int64_t no_merge_acc;

static int nm_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                  void *opaque)
{
    (void)ctx;
    (void)acc;
    (void)in;
    (void)opaque;
    return 0;
}

static int nm_result(eddy_ctx_t *ctx, const void *acc, eddy_record_t *out,
                     void *opaque)
{
    (void)ctx;
    (void)acc;
    (void)opaque;
    out->value = &no_merge_acc;
    out->value_len = sizeof(no_merge_acc);
    return 0;
}

static const eddy_aggregate_t agg_no_merge = {sizeof(int64_t), NULL, nm_add,
                                              nm_result,       NULL, NULL};

BUILD_ERR(err_size,
          eddy_window_aggregate(k, &(eddy_window_spec_t){0}, eddy_agg_count()))
BUILD_ERR(err_slide, eddy_window_aggregate(k,
                                           &(eddy_window_spec_t){
                                               .kind = EDDY_WINDOW_SLIDING,
                                               .size_ms = 10,
                                               .slide_ms = 0},
                                           eddy_agg_count()))
BUILD_ERR(err_slide_size,
          eddy_window_reduce(k,
                             &(eddy_window_spec_t){.kind = EDDY_WINDOW_SLIDING,
                                                   .size_ms = 10,
                                                   .slide_ms = 20},
                             sum_reduce, NULL))
BUILD_ERR(err_gap, eddy_window_process(
                       k, &(eddy_window_spec_t){.kind = EDDY_WINDOW_SESSION},
                       proc_sum, NULL))
BUILD_ERR(err_count,
          eddy_window_aggregate(
              k, &(eddy_window_spec_t){.kind = EDDY_WINDOW_COUNT_TUMBLING},
              eddy_agg_count()))
BUILD_ERR(err_count_slide,
          eddy_window_aggregate(k,
                                &(eddy_window_spec_t){
                                    .kind = EDDY_WINDOW_COUNT_SLIDING,
                                    .count = 3,
                                    .count_slide = 0},
                                eddy_agg_count()))
BUILD_ERR(err_lateness, eddy_window_aggregate(k,
                                              &(eddy_window_spec_t){
                                                  .kind = EDDY_WINDOW_TUMBLING,
                                                  .size_ms = 10,
                                                  .allowed_lateness_ms = -1},
                                              eddy_agg_count()))
BUILD_ERR(err_null_reduce,
          eddy_window_reduce(k,
                             &(eddy_window_spec_t){.kind = EDDY_WINDOW_TUMBLING,
                                                   .size_ms = 10},
                             NULL, NULL))
BUILD_ERR(err_null_process,
          eddy_window_process(k,
                              &(eddy_window_spec_t){
                                  .kind = EDDY_WINDOW_TUMBLING, .size_ms = 10},
                              NULL, NULL))
BUILD_ERR(err_agg_no_add,
          eddy_window_aggregate(k,
                                &(eddy_window_spec_t){
                                    .kind = EDDY_WINDOW_TUMBLING,
                                    .size_ms = 10},
                                &agg_no_add))
BUILD_ERR(err_session_no_merge,
          eddy_window_aggregate(k,
                                &(eddy_window_spec_t){
                                    .kind = EDDY_WINDOW_SESSION, .gap_ms = 10},
                                &agg_no_merge))
BUILD_ERR(err_trigger_count,
          eddy_window_aggregate(k,
                                &(eddy_window_spec_t){
                                    .kind = EDDY_WINDOW_GLOBAL,
                                    .trigger = EDDY_TRIGGER_COUNT},
                                eddy_agg_count()))
BUILD_ERR(err_count_window_trigger,
          eddy_window_aggregate(k,
                                &(eddy_window_spec_t){
                                    .kind = EDDY_WINDOW_COUNT_TUMBLING,
                                    .count = 3,
                                    .trigger = EDDY_TRIGGER_EVENT_TIME},
                                eddy_agg_count()))
BUILD_ERR(err_null_spec, eddy_window_aggregate(k, NULL, eddy_agg_count()))

static void test_build_errors(void **state)
{
    (void)state;
    expect_build_error(err_size, "size must be > 0 ms");
    expect_build_error(err_slide, "slide must be > 0 ms");
    expect_build_error(err_slide_size, "must not exceed the window size");
    expect_build_error(err_gap, "gap must be > 0 ms");
    expect_build_error(err_count, "count must be > 0");
    expect_build_error(err_count_slide, "count slide must be > 0");
    expect_build_error(err_lateness, "allowed lateness must be >= 0");
    expect_build_error(err_null_reduce, "reduce function must not be NULL");
    expect_build_error(err_null_process, "process function must not be NULL");
    expect_build_error(err_agg_no_add, "needs acc_size, add and result");
    expect_build_error(err_session_no_merge, "needs a merge function");
    expect_build_error(err_trigger_count, "trigger_count > 0");
    expect_build_error(err_count_window_trigger, "have their own trigger");
    expect_build_error(err_null_spec, "no window spec");
}

static void test_no_timestamp_fails(void **state)
{
    (void)state;
    input_t *in = input_new();
    in_add(in, 0, EDDY_TS_NONE, 1);
    eddy_env_t *env = eddy_env_new();
    eddy_window_spec_t w = eddy_window_tumbling(10);
    eddy_sink_discard(
        eddy_window_aggregate(keyed_src(env, in, -1), &w, eddy_agg_count()));
    eddy_error_t err;
    eddy_error_clear(&err);
    int rc = eddy_env_execute(env, &err);
    assert_int_equal(rc, EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "record has no timestamp");
    TU_ASSERT_CONTAINS(err.msg, "Window(tumbling 10 ms, aggregate)");
    eddy_env_destroy(env);
    free(in);
}

static int failing_reduce(eddy_ctx_t *ctx, const eddy_record_t *acc,
                          const eddy_record_t *in, eddy_record_t *out,
                          void *opaque)
{
    (void)acc;
    (void)in;
    (void)out;
    (void)opaque;
    return eddy_ctx_fail(ctx, "reduce says no");
}

static void test_user_failure(void **state)
{
    (void)state;
    input_t *in = five_records();
    eddy_env_t *env = eddy_env_new();
    eddy_window_spec_t w = eddy_window_tumbling(100);
    eddy_sink_discard(
        eddy_window_reduce(keyed_src(env, in, 0), &w, failing_reduce, NULL));
    eddy_error_t err;
    eddy_error_clear(&err);
    int rc = eddy_env_execute(env, &err);
    assert_int_equal(rc, EDDY_ERR_USER);
    TU_ASSERT_CONTAINS(err.msg, "reduce says no");
    eddy_env_destroy(env);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tumbling_aggregate),
        cmocka_unit_test(test_tumbling_reduce),
        cmocka_unit_test(test_tumbling_process),
        cmocka_unit_test(test_tumbling_parallel),
        cmocka_unit_test(test_tumbling_negative_timestamps),
        cmocka_unit_test(test_sliding_sliced),
        cmocka_unit_test(test_sliding_per_window),
        cmocka_unit_test(test_sliding_parallel),
        cmocka_unit_test(test_session_bridging),
        cmocka_unit_test(test_session_process_elements),
        cmocka_unit_test(test_session_random),
        cmocka_unit_test(test_session_parallel),
        cmocka_unit_test(test_lateness_late_firings),
        cmocka_unit_test(test_lateness_purging),
        cmocka_unit_test(test_lateness_zero),
        cmocka_unit_test(test_late_side_output),
        cmocka_unit_test(test_sliding_lateness_sequence),
        cmocka_unit_test(test_session_late),
        cmocka_unit_test(test_count_trigger_tumbling),
        cmocka_unit_test(test_global_windows),
        cmocka_unit_test(test_event_trigger_on_count_input),
        cmocka_unit_test(test_count_tumbling),
        cmocka_unit_test(test_count_sliding),
        cmocka_unit_test(test_process_sees_all_elements),
        cmocka_unit_test(test_ctx_window),
        cmocka_unit_test(test_processing_time_tumbling),
        cmocka_unit_test(test_processing_time_sliding),
        cmocka_unit_test(test_processing_time_session),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_no_timestamp_fails),
        cmocka_unit_test(test_user_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
