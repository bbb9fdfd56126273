/*
 * eddy — unit tests for the in-process runtime (src/runtime/local.c,
 * task.c, graph.c): jobs built with the public API, run with
 * eddy_env_execute, results checked exactly through eddy_sink_collect.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Covered: stateless operator semantics, partitioners (rebalance, broadcast,
 * forward, hash), records larger than a buffer on a network edge, back
 * pressure with tiny buffers, failures and their messages, builder errors,
 * cancellation, and scratch memory.
 */
#include "test_util.h"

#include <stdatomic.h>

#include "runtime/runtime.h"

#define EXECUTE_OK(env)                                                        \
    do {                                                                       \
        eddy_error_t err_;                                                     \
        eddy_error_clear(&err_);                                               \
        TU_ASSERT_OK(eddy_env_execute((env), &err_), &err_);                   \
        assert_int_equal(err_.code, 0);                                        \
    } while (0)

/* ---- shared user functions ---- */

/* Record value: the generator's index as a host-order int64. */
static int gen_index(eddy_ctx_t *ctx, uint64_t i, eddy_record_t *out,
                     void *opaque)
{
    (void)opaque;
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    if (v == NULL) {
        return eddy_ctx_fail(ctx, "no scratch");
    }
    *v = (int64_t)i;
    out->value = v;
    out->value_len = sizeof(*v);
    return 0;
}

static int upper(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
                 void *opaque)
{
    (void)opaque;
    char *p = eddy_ctx_scratch(ctx, in->value_len);
    const char *s = in->value;
    for (size_t i = 0; i < in->value_len; i++) {
        p[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    }
    out->value = p;
    return 0;
}

/* Key = the subtask that processed the record (one byte). */
static int tag_subtask(eddy_ctx_t *ctx, const eddy_record_t *in,
                       eddy_record_t *out, void *opaque)
{
    (void)in;
    (void)opaque;
    unsigned char *k = eddy_ctx_scratch(ctx, 1);
    k[0] = (unsigned char)eddy_ctx_subtask(ctx);
    out->key = k;
    out->key_len = 1;
    return 0;
}

static int subtask_of(const eddy_record_t *r)
{
    assert_non_null(r->key);
    assert_int_equal(r->key_len, 1);
    return ((const unsigned char *)r->key)[0];
}

/* Builds a collection of int64 values 0..n-1 (value-only records). */
static eddy_stream_t *i64_source(eddy_env_t *env, int64_t *vals, size_t n)
{
    eddy_record_t *recs = calloc(n, sizeof(*recs));
    for (size_t i = 0; i < n; i++) {
        vals[i] = (int64_t)i;
        recs[i] =
            (eddy_record_t){NULL, 0, &vals[i], sizeof(int64_t), EDDY_TS_NONE};
    }
    eddy_stream_t *s = eddy_source_collection(env, recs, n);
    free(recs);
    return s;
}

/* ---- stateless operators ---- */

static void test_map_exact(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    const char *const in[] = {"alpha", "", "Beta 2", "x"};
    eddy_sink_collect(eddy_map(eddy_source_strings(env, in, 4), upper, NULL),
                      out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 4);
    assert_string_equal(tu_coll_str(out, 0), "ALPHA");
    assert_string_equal(tu_coll_str(out, 1), "");
    assert_string_equal(tu_coll_str(out, 2), "BETA 2");
    assert_string_equal(tu_coll_str(out, 3), "X");
    for (size_t i = 0; i < 4; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        assert_null(r->key);
        assert_true(r->ts == EDDY_TS_NONE);
        assert_int_equal(r->value_len, strlen(in[i]));
    }
    assert_null(eddy_collection_get(out, 4));
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static int keep_even(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque)
{
    (void)ctx;
    (void)opaque;
    return eddy_record_value_i64(in) % 2 == 0;
}

static void test_filter_exact(void **state)
{
    (void)state;
    enum { N = 1000 };
    int64_t vals[N];
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(eddy_filter(i64_source(env, vals, N), keep_even, NULL),
                      out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), N / 2);
    for (size_t i = 0; i < N / 2; i++) {
        assert_int_equal(eddy_record_value_i64(eddy_collection_get(out, i)),
                         2 * (int64_t)i);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

/* Splits on spaces; empty words are skipped. */
static int split(eddy_ctx_t *ctx, const eddy_record_t *in,
                 eddy_collector_t *out, void *opaque)
{
    (void)ctx;
    (void)opaque;
    const char *s = in->value;
    size_t i = 0, n = in->value_len;
    while (i < n) {
        size_t start = i;
        while (i < n && s[i] != ' ') {
            i++;
        }
        if (i > start) {
            eddy_record_t w = {NULL, 0, s + start, i - start, in->ts};
            int rc = eddy_collect(out, &w);
            if (rc != 0) {
                return rc;
            }
        }
        i++;
    }
    return 0;
}

static void test_flat_map_exact(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    const char *const in[] = {"a bb  c", "", "   ", "d", "e f"};
    eddy_sink_collect(
        eddy_flat_map(eddy_source_strings(env, in, 5), split, NULL), out);
    EXECUTE_OK(env);
    static const char *const expect[] = {"a", "bb", "c", "d", "e", "f"};
    assert_int_equal(eddy_collection_count(out), EDDY_ARRAY_SIZE(expect));
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(expect); i++) {
        assert_string_equal(tu_coll_str(out, i), expect[i]);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

/* A map may set the key and timestamp; both survive chained and network
 * edges. */
static int set_key_ts(eddy_ctx_t *ctx, const eddy_record_t *in,
                      eddy_record_t *out, void *opaque)
{
    (void)opaque;
    int64_t v = eddy_record_value_i64(in);
    char *k = eddy_ctx_scratch(ctx, 16);
    int n = snprintf(k, 16, "k%lld", (long long)(v % 5));
    out->key = k;
    out->key_len = (size_t)n;
    out->ts = v * 1000 - 500;
    return 0;
}

static void test_key_and_timestamp_survive_edges(void **state)
{
    (void)state;
    enum { N = 200 };
    int64_t vals[N];
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *chained = eddy_collection_new();
    eddy_collection_t *network = eddy_collection_new();
    eddy_stream_t *m = eddy_map(i64_source(env, vals, N), set_key_ts, NULL);
    eddy_sink_collect(m, chained);
    eddy_parallelism(eddy_sink_collect(eddy_rebalance(m), network), 1);
    eddy_stream_t *keyed_sink =
        eddy_sink_collect(eddy_key_by(m, NULL, NULL), network);
    eddy_parallelism(keyed_sink, 2);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(chained), N);
    assert_int_equal(eddy_collection_count(network), 2 * N);
    for (size_t i = 0; i < N; i++) {
        const eddy_record_t *r = eddy_collection_get(chained, i);
        char k[16];
        snprintf(k, sizeof(k), "k%d", (int)(i % 5));
        assert_string_equal(r->key, k);
        assert_int_equal(r->key_len, strlen(k));
        assert_true(r->ts == (int64_t)i * 1000 - 500);
        assert_int_equal(eddy_record_value_i64(r), (int64_t)i);
    }
    int seen[N] = {0};
    for (size_t i = 0; i < 2 * N; i++) {
        const eddy_record_t *r = eddy_collection_get(network, i);
        int64_t v = eddy_record_value_i64(r);
        assert_in_range(v, 0, N - 1);
        seen[v]++;
        char k[16];
        snprintf(k, sizeof(k), "k%d", (int)(v % 5));
        assert_string_equal(r->key, k);
        assert_true(r->ts == v * 1000 - 500);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(seen[i], 2);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(chained);
    eddy_collection_destroy(network);
}

/* A record with a NULL value pointer and zero length is an empty value. */
static int null_value(eddy_ctx_t *ctx, const eddy_record_t *in,
                      eddy_record_t *out, void *opaque)
{
    (void)ctx;
    (void)in;
    (void)opaque;
    out->value = NULL;
    out->value_len = 0;
    return 0;
}

static void test_null_empty_value(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    const char *const in[] = {"a", "b", "c"};
    eddy_stream_t *m =
        eddy_map(eddy_source_strings(env, in, 3), null_value, NULL);
    eddy_sink_collect(m, out); /* chained */
    eddy_sink_collect(eddy_disable_chaining(eddy_map(m, upper, NULL)), out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 6);
    for (size_t i = 0; i < 6; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        assert_int_equal(r->value_len, 0);
        assert_string_equal(r->value, "");
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static void test_union_semantics(void **state)
{
    (void)state;
    enum { N = 300 };
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_collection_t *out = eddy_collection_new();
    char(*a)[16] = calloc(N, 16);
    char(*b)[16] = calloc(N, 16);
    const char **pa = calloc(N, sizeof(char *));
    const char **pb = calloc(N, sizeof(char *));
    for (int i = 0; i < N; i++) {
        snprintf(a[i], 16, "a%d", i);
        snprintf(b[i], 16, "b%d", i);
        pa[i] = a[i];
        pb[i] = b[i];
    }
    eddy_stream_t *sa = eddy_source_strings(env, pa, N);
    eddy_stream_t *sb = eddy_source_strings(env, pb, N);
    /* Parallelism 1 sink: one subtask sees both inputs interleaved. */
    eddy_parallelism(eddy_sink_collect(eddy_union(sa, sb), out), 1);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 2 * N);
    /* Every record exactly once, and each input's order kept. */
    int next_a = 0, next_b = 0;
    for (size_t i = 0; i < 2 * N; i++) {
        const char *v = tu_coll_str(out, i);
        if (v[0] == 'a') {
            assert_int_equal(atoi(v + 1), next_a++);
        } else {
            assert_int_equal(v[0], 'b');
            assert_int_equal(atoi(v + 1), next_b++);
        }
    }
    assert_int_equal(next_a, N);
    assert_int_equal(next_b, N);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
    free(a);
    free(b);
    free(pa);
    free(pb);
}

/* ---- partitioners ---- */

static void test_rebalance_round_robin(void **state)
{
    (void)state;
    enum { N = 400, P = 4 };
    int64_t vals[N];
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = i64_source(env, vals, N); /* parallelism 1 */
    eddy_stream_t *m =
        eddy_parallelism(eddy_map(eddy_rebalance(src), tag_subtask, NULL), P);
    eddy_sink_collect(m, out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), N);
    int sub[N];
    int per[P] = {0};
    for (int i = 0; i < N; i++) {
        sub[i] = -1;
    }
    int64_t last[P];
    for (int s = 0; s < P; s++) {
        last[s] = -1;
    }
    for (size_t i = 0; i < N; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int64_t v = eddy_record_value_i64(r);
        int s = subtask_of(r);
        assert_in_range(s, 0, P - 1);
        assert_int_equal(sub[v], -1); /* exactly once */
        sub[v] = s;
        per[s]++;
        assert_true(v > last[s]); /* each subtask keeps the order */
        last[s] = v;
    }
    /* Round robin: consecutive records go to consecutive subtasks. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(sub[i], (sub[0] + i) % P);
    }
    for (int s = 0; s < P; s++) {
        assert_int_equal(per[s], N / P);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static void test_broadcast_reaches_every_subtask(void **state)
{
    (void)state;
    enum { N = 50, P = 3 };
    int64_t vals[N];
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *m = eddy_parallelism(
        eddy_map(eddy_broadcast(i64_source(env, vals, N)), tag_subtask, NULL),
        P);
    eddy_sink_collect(m, out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), N * P);
    int64_t next[P] = {0};
    for (size_t i = 0; i < N * P; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int s = subtask_of(r);
        assert_in_range(s, 0, P - 1);
        /* Every subtask sees every record, in order. */
        assert_int_equal(eddy_record_value_i64(r), next[s]);
        next[s]++;
    }
    for (int s = 0; s < P; s++) {
        assert_int_equal(next[s], N);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

/* Fails the record if it arrived at another subtask than it was tagged. */
static int check_same_subtask(eddy_ctx_t *ctx, const eddy_record_t *in,
                              void *opaque)
{
    atomic_int *mismatches = opaque;
    if (((const unsigned char *)in->key)[0] != eddy_ctx_subtask(ctx)) {
        atomic_fetch_add(mismatches, 1);
    }
    return 1;
}

static void test_forward_keeps_subtask(void **state)
{
    (void)state;
    enum { N = 100, P = 2 };
    int64_t vals[N];
    atomic_int mismatches;
    atomic_init(&mismatches, 0);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, P);
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_parallelism(i64_source(env, vals, N), P);
    eddy_stream_t *tagged = eddy_map(src, tag_subtask, NULL);
    /* A forward edge that is not chained: subtask i -> subtask i over a
     * channel. */
    eddy_stream_t *chk = eddy_disable_chaining(
        eddy_filter(eddy_forward(tagged), check_same_subtask, &mismatches));
    eddy_sink_collect(chk, out);
    EXECUTE_OK(env);
    assert_int_equal(atomic_load(&mismatches), 0);
    assert_int_equal(eddy_collection_count(out), N);
    int seen[N] = {0};
    for (size_t i = 0; i < N; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int64_t v = eddy_record_value_i64(r);
        seen[v]++;
        /* A parallel collection source: subtask i emits i, i+P, ... */
        assert_int_equal(subtask_of(r), (int)(v % P));
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(seen[i], 1);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static void test_keyed_routing_matches_key_groups(void **state)
{
    (void)state;
    enum { N = 600, P = 3 };
    static const int maxps[] = {128, 7};
    for (size_t m = 0; m < EDDY_ARRAY_SIZE(maxps); m++) {
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_max_parallelism(env, maxps[m]);
        eddy_collection_t *out = eddy_collection_new();
        char(*keys)[16] = calloc(N, 16);
        eddy_record_t *recs = calloc(N, sizeof(*recs));
        for (int i = 0; i < N; i++) {
            int n = snprintf(keys[i], 16, "key%d", i % 97);
            recs[i] = (eddy_record_t){keys[i], (size_t)n, "v", 1, EDDY_TS_NONE};
        }
        eddy_stream_t *k =
            eddy_key_by(eddy_source_collection(env, recs, N), NULL, NULL);
        /* Each record is tagged with the subtask that receives it. */
        eddy_stream_t *m2 = eddy_parallelism(eddy_map(k, tag_subtask, NULL), P);
        eddy_sink_collect(m2, out);
        EXECUTE_OK(env);
        assert_int_equal(eddy_collection_count(out), N);
        /* Count per subtask, and compare with the partitioner's choice. */
        int per[P] = {0};
        int expect[P] = {0};
        for (int i = 0; i < N; i++) {
            expect[eddy__hash_channel(&recs[i], maxps[m], P)]++;
        }
        for (size_t i = 0; i < N; i++) {
            per[subtask_of(eddy_collection_get(out, i))]++;
        }
        for (int s = 0; s < P; s++) {
            assert_int_equal(per[s], expect[s]);
        }
        eddy_env_destroy(env);
        eddy_collection_destroy(out);
        free(keys);
        free(recs);
    }
}

/* The key is kept in the value so the receiving subtask can be checked
 * per key. */
static int check_owner(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque)
{
    atomic_int *bad = opaque;
    int p = eddy_ctx_parallelism(ctx);
    int want = eddy__hash_channel(in, 128, p);
    if (want != eddy_ctx_subtask(ctx)) {
        atomic_fetch_add(bad, 1);
    }
    return 1;
}

static void test_every_key_reaches_its_owner(void **state)
{
    (void)state;
    enum { N = 2000 };
    atomic_int bad;
    atomic_init(&bad, 0);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 4);
    eddy_collection_t *out = eddy_collection_new();
    char(*keys)[16] = calloc(N, 16);
    eddy_record_t *recs = calloc(N, sizeof(*recs));
    for (int i = 0; i < N; i++) {
        int n = snprintf(keys[i], 16, "user-%d", i);
        recs[i] = (eddy_record_t){keys[i], (size_t)n, "v", 1, EDDY_TS_NONE};
    }
    eddy_stream_t *src =
        eddy_parallelism(eddy_source_collection(env, recs, N), 2);
    eddy_stream_t *f =
        eddy_filter(eddy_key_by(src, NULL, NULL), check_owner, &bad);
    eddy_sink_collect(f, out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), N);
    assert_int_equal(atomic_load(&bad), 0);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
    free(keys);
    free(recs);
}

/* ---- big records ---- */

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (unsigned char)(i * 31 + seed * 17 + (i >> 10));
    }
}

static void test_records_larger_than_buffer_on_keyed_edge(void **state)
{
    (void)state;
    /* Sizes around and far beyond the default 32 KiB buffer. */
    /* 19 bytes of framing (length, tag, timestamp, key length, 2-byte
     * key): the first record fills a 32 KiB buffer exactly. */
    static const size_t sizes[] = {32768 - 19, 32768 - 18, 32768, 40000,
                                   100 * 1024, 1,          0,     70000,
                                   1 << 20,    5000};
    enum { NS = EDDY_ARRAY_SIZE(sizes) };
    eddy_record_t recs[NS];
    unsigned char *vals[NS];
    char keys[NS][8];
    for (size_t i = 0; i < NS; i++) {
        vals[i] = malloc(sizes[i] + 1);
        fill_pattern(vals[i], sizes[i], (unsigned)i);
        snprintf(keys[i], sizeof(keys[i]), "k%zu", i % 4);
        recs[i] =
            (eddy_record_t){keys[i], 2, vals[i], sizes[i], (int64_t)i * 7};
    }
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *k =
        eddy_key_by(eddy_source_collection(env, recs, NS), NULL, NULL);
    eddy_parallelism(eddy_sink_collect(k, out), 2);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), NS);
    bool seen[NS] = {false};
    for (size_t i = 0; i < NS; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        size_t idx = (size_t)(r->ts / 7);
        assert_in_range(idx, 0, NS - 1);
        assert_false(seen[idx]);
        seen[idx] = true;
        TU_ASSERT_BYTES(r->key, r->key_len, keys[idx], 2);
        TU_ASSERT_BYTES(r->value, r->value_len, vals[idx], sizes[idx]);
    }
    for (size_t i = 0; i < NS; i++) {
        free(vals[i]);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

/* ---- back pressure ---- */

typedef struct flow {
    atomic_llong generated;
    atomic_llong consumed;
    atomic_llong max_lead; /* generated - consumed, at generation time */
    int sleep_every;       /* consumer sleeps after this many records */
    long sleep_us;
} flow_t;

static int gen_tracked(eddy_ctx_t *ctx, uint64_t i, eddy_record_t *out,
                       void *opaque)
{
    flow_t *f = opaque;
    long long lead =
        atomic_fetch_add(&f->generated, 1) + 1 - atomic_load(&f->consumed);
    long long prev = atomic_load(&f->max_lead);
    while (lead > prev &&
           !atomic_compare_exchange_weak(&f->max_lead, &prev, lead)) {
    }
    int rc = gen_index(ctx, i, out, NULL);
    /* Keys spread the records over the keyed variant's subtasks. */
    char *k = eddy_ctx_scratch(ctx, 1);
    k[0] = (char)('a' + i % 10);
    out->key = k;
    out->key_len = 1;
    return rc;
}

static int slow_consumer(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque)
{
    (void)ctx;
    (void)in;
    flow_t *f = opaque;
    long long n = atomic_fetch_add(&f->consumed, 1) + 1;
    if (f->sleep_every > 0 && n % f->sleep_every == 0) {
        tu_sleep_us(f->sleep_us);
    }
    return 1;
}

static void test_back_pressure_small_buffers(void **state)
{
    (void)state;
    enum { N = 20000, BUF = 4096 };
    flow_t f = {.sleep_every = 100, .sleep_us = 300};
    atomic_init(&f.generated, 0);
    atomic_init(&f.consumed, 0);
    atomic_init(&f.max_lead, 0);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_buffer_size(env, BUF);
    eddy_env_set_channel_capacity(env, 1);
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_source_generator(env, N, 0, gen_tracked, &f);
    eddy_stream_t *slow =
        eddy_disable_chaining(eddy_filter(src, slow_consumer, &f));
    eddy_sink_collect(slow, out);
    EXECUTE_OK(env);
    /* Nothing lost, nothing duplicated, order kept. */
    assert_int_equal(eddy_collection_count(out), N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(eddy_record_value_i64(eddy_collection_get(out, i)),
                         (int64_t)i);
    }
    /* The producer never ran further ahead than what the writer's buffer,
     * the one-buffer channel and the reader's buffer hold (a record is 4 +
     * 1 + 1 + 4 + 8 = 18 bytes here), plus slack. Without back pressure it
     * would run ahead by thousands. */
    long long per_buf = BUF / 18;
    long long lead = atomic_load(&f.max_lead);
    if (lead > 4 * per_buf) {
        fail_msg("producer ran %lld records ahead; at most %lld expected", lead,
                 4 * per_buf);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static void test_back_pressure_keyed_parallel(void **state)
{
    (void)state;
    enum { N = 20000, BUF = 4096 };
    flow_t f = {.sleep_every = 200, .sleep_us = 300};
    atomic_init(&f.generated, 0);
    atomic_init(&f.consumed, 0);
    atomic_init(&f.max_lead, 0);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_buffer_size(env, BUF);
    eddy_env_set_channel_capacity(env, 1);
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_source_generator(env, N, 0, gen_tracked, &f);
    eddy_stream_t *slow = eddy_parallelism(
        eddy_filter(eddy_key_by(src, NULL, NULL), slow_consumer, &f), 3);
    eddy_sink_collect(slow, out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), N);
    /* Per key, values arrive in generation order, each exactly once. */
    int64_t last[10];
    int count[10] = {0};
    for (int k = 0; k < 10; k++) {
        last[k] = -1;
    }
    for (size_t i = 0; i < N; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int key = ((const char *)r->key)[0] - 'a';
        assert_in_range(key, 0, 9);
        int64_t v = eddy_record_value_i64(r);
        assert_int_equal(v % 10, key);
        assert_true(v > last[key]);
        last[key] = v;
        count[key]++;
    }
    for (int k = 0; k < 10; k++) {
        assert_int_equal(count[k], N / 10);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

/* ---- failures ---- */

typedef struct fail_cfg {
    int64_t at; /* fail on the record with this value */
    int mode;   /* 0: eddy_ctx_fail, 1: return rc without message */
    int rc;     /* returned in mode 1 */
} fail_cfg_t;

static int failing_map(eddy_ctx_t *ctx, const eddy_record_t *in,
                       eddy_record_t *out, void *opaque)
{
    (void)out;
    const fail_cfg_t *fc = opaque;
    if (eddy_record_value_i64(in) != fc->at) {
        return 0;
    }
    if (fc->mode == 0) {
        return eddy_ctx_fail(ctx, "bad record %lld", (long long)fc->at);
    }
    return fc->rc;
}

static void run_expect_failure(eddy_env_t *env, int code, const char *msg)
{
    eddy_error_t err;
    eddy_error_clear(&err);
    int rc = eddy_env_execute(env, &err);
    if (rc != code) {
        fail_msg("expected %s, got %d (%s): %s", eddy_err_name(code), rc,
                 eddy_err_name(rc), err.msg);
    }
    assert_int_equal(err.code, code);
    assert_string_equal(err.msg, msg);
}

static void test_user_failure_message(void **state)
{
    (void)state;
    enum { N = 100 };
    int64_t vals[N];
    fail_cfg_t fc = {.at = 7, .mode = 0};
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *m = eddy_name(
        eddy_map(i64_source(env, vals, N), failing_map, &fc), "Exploder");
    eddy_sink_discard(m);
    run_expect_failure(env, EDDY_ERR_USER,
                       "operator 'Exploder' (subtask 1 of 1) failed: bad "
                       "record 7");
    eddy_env_destroy(env);
}

static void test_user_failure_parallel_downstream(void **state)
{
    (void)state;
    /* The failing operator runs behind a network edge at parallelism 3:
     * its subtask is the one that received record 1234. */
    fail_cfg_t fc = {.at = 1234, .mode = 0};
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *src = eddy_source_generator(env, 100000, 0, gen_index, NULL);
    eddy_stream_t *m = eddy_parallelism(
        eddy_name(eddy_map(eddy_rebalance(src), failing_map, &fc), "Exploder"),
        3);
    eddy_sink_discard(m);
    eddy_error_t err;
    int rc = eddy_env_execute(env, &err);
    assert_int_equal(rc, EDDY_ERR_USER);
    assert_int_equal(err.code, EDDY_ERR_USER);
    TU_ASSERT_CONTAINS(err.msg, "operator 'Exploder' (subtask ");
    TU_ASSERT_CONTAINS(err.msg, " of 3) failed: bad record 1234");
    eddy_env_destroy(env);
}

static void test_rc_without_message(void **state)
{
    (void)state;
    enum { N = 10 };
    int64_t vals[N];
    fail_cfg_t fc = {.at = 3, .mode = 1, .rc = EDDY_ERR_IO};
    eddy_env_t *env = eddy_env_new();
    eddy_sink_discard(eddy_map(i64_source(env, vals, N), failing_map, &fc));
    run_expect_failure(env, EDDY_ERR_IO,
                       "operator 'Map' (subtask 1 of 1) failed: user "
                       "function returned -3 (input/output error) without a "
                       "message (use eddy_ctx_fail)");
    eddy_env_destroy(env);

    /* A positive result is an error too (maps return 0 on success). */
    fc.rc = 5;
    env = eddy_env_new();
    eddy_sink_discard(eddy_map(i64_source(env, vals, N), failing_map, &fc));
    run_expect_failure(env, EDDY_ERR_USER,
                       "operator 'Map' (subtask 1 of 1) failed: user "
                       "function returned 5 (unknown error) without a "
                       "message (use eddy_ctx_fail)");
    eddy_env_destroy(env);

    /* A negative value that is no eddy error code: the job still fails
     * with a valid eddy_err_t, and the message shows what was returned. */
    fc.rc = -1000;
    env = eddy_env_new();
    eddy_sink_discard(eddy_map(i64_source(env, vals, N), failing_map, &fc));
    run_expect_failure(env, EDDY_ERR_USER,
                       "operator 'Map' (subtask 1 of 1) failed: user "
                       "function returned -1000 (unknown error) without a "
                       "message (use eddy_ctx_fail)");
    eddy_env_destroy(env);
}

static int bad_filter(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque)
{
    (void)ctx;
    (void)opaque;
    return eddy_record_value_i64(in) == 4 ? 2 : 1;
}

static void test_filter_bad_result(void **state)
{
    (void)state;
    enum { N = 10 };
    int64_t vals[N];
    eddy_env_t *env = eddy_env_new();
    eddy_sink_discard(eddy_filter(i64_source(env, vals, N), bad_filter, NULL));
    eddy_error_t err;
    assert_int_equal(eddy_env_execute(env, &err), EDDY_ERR_INVALID);
    /* The message tells what the filter really returned. */
    TU_ASSERT_CONTAINS(err.msg, "operator 'Filter' (subtask 1 of 1) failed: ");
    TU_ASSERT_CONTAINS(err.msg, "returned 2");
    eddy_env_destroy(env);
}

static int fail_in_flat_map(eddy_ctx_t *ctx, const eddy_record_t *in,
                            eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    int rc = eddy_collect(out, in);
    if (rc != 0) {
        return rc;
    }
    return eddy_ctx_fail(ctx, "flat map says no (%s)", eddy_ctx_operator(ctx));
}

static void test_failure_in_flat_map_after_emit(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    const char *const in[] = {"x"};
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *fm = eddy_name(
        eddy_flat_map(eddy_source_strings(env, in, 1), fail_in_flat_map, NULL),
        "Splitter");
    eddy_sink_collect(fm, out);
    run_expect_failure(env, EDDY_ERR_USER,
                       "operator 'Splitter' (subtask 1 of 1) failed: flat map "
                       "says no (Splitter)");
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static void test_builder_errors(void **state)
{
    (void)state;
    const char *const in[] = {"a"};
    /* A NULL function. */
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *s = eddy_source_strings(env, in, 1);
    assert_null(eddy_map(s, NULL, NULL));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_map: the function must not be NULL");
    eddy_env_destroy(env);

    env = eddy_env_new();
    s = eddy_source_strings(env, in, 1);
    assert_null(eddy_filter(s, NULL, NULL));
    assert_null(eddy_flat_map(s, NULL, NULL));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_filter: the function must not be NULL");
    eddy_env_destroy(env);

    /* Parallelism 0. */
    env = eddy_env_new();
    s = eddy_source_strings(env, in, 1);
    assert_null(eddy_parallelism(eddy_name(eddy_map(s, upper, NULL), "Up"), 0));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_parallelism: 'Up' parallelism must be between 1 "
                       "and the max parallelism 128, got 0");
    eddy_env_destroy(env);

    /* A duplicate uid. */
    env = eddy_env_new();
    s = eddy_uid(eddy_name(eddy_source_strings(env, in, 1), "Src"), "u1");
    assert_non_null(s);
    eddy_stream_t *m = eddy_name(eddy_map(s, upper, NULL), "Up");
    assert_null(eddy_uid(m, "u1"));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_uid: uid 'u1' is used by both 'Src' and 'Up'; "
                       "uids must be unique");
    eddy_env_destroy(env);

    /* An empty name, then more errors: the first one wins, and builders
     * keep accepting the NULL streams. */
    env = eddy_env_new();
    s = eddy_source_strings(env, in, 1);
    assert_null(eddy_name(s, ""));
    assert_null(eddy_map(NULL, upper, NULL));
    assert_null(eddy_sink_discard(eddy_map(eddy_name(s, NULL), NULL, NULL)));
    eddy_env_set_parallelism(env, -1);
    eddy_env_set_buffer_size(env, 1);
    eddy_env_set_channel_capacity(env, 0);
    eddy_env_set_max_parallelism(env, 0);
    eddy_env_set_name(env, "");
    assert_int_equal(eddy_env_fail(env, "custom %d", 1), EDDY_ERR_INVALID);
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_name: the name must not be empty");
    eddy_env_destroy(env);

    /* Settings on a virtual node. */
    env = eddy_env_new();
    s = eddy_rebalance(eddy_source_strings(env, in, 1));
    assert_null(eddy_parallelism(s, 2));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_parallelism: 'Rebalance' is not an operator "
                       "(apply it to the operator before or after)");
    eddy_env_destroy(env);

    /* Environment settings out of range. */
    static const struct {
        int which;
        const char *msg;
    } settings[] = {
        {0, "eddy_env_set_parallelism: parallelism must be at least 1, got 0"},
        {1, "eddy_env_set_buffer_size: must be between 4096 and 1048576 "
            "bytes, got 4095"},
        {2, "eddy_env_set_channel_capacity: must be between 1 and 1024 "
            "buffers, got 0"},
        {3, "eddy_env_set_max_parallelism: must be between 1 and 32768, got "
            "32769"},
        {4, "eddy_env_set_name: the job name must not be empty"},
        {5, "custom 7"},
    };
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(settings); i++) {
        env = eddy_env_new();
        eddy_sink_discard(eddy_source_strings(env, in, 1));
        switch (settings[i].which) {
        case 0:
            eddy_env_set_parallelism(env, 0);
            break;
        case 1:
            eddy_env_set_buffer_size(env, 4095);
            break;
        case 2:
            eddy_env_set_channel_capacity(env, 0);
            break;
        case 3:
            eddy_env_set_max_parallelism(env, 32769);
            break;
        case 4:
            eddy_env_set_name(env, "");
            break;
        default:
            eddy_env_fail(env, "custom %d", 7);
            break;
        }
        run_expect_failure(env, EDDY_ERR_INVALID, settings[i].msg);
        eddy_env_destroy(env);
    }
    /* NULL environments are tolerated everywhere. */
    assert_null(eddy_source_strings(NULL, in, 1));
    assert_null(eddy_source_generator(NULL, 1, 0, gen_index, NULL));
    assert_int_equal(eddy_env_fail(NULL, "x"), EDDY_ERR_INVALID);
    eddy_env_set_parallelism(NULL, 1);
    eddy_env_cancel(NULL);
    eddy_env_destroy(NULL);
    eddy_error_t err;
    assert_int_equal(eddy_env_execute(NULL, &err), EDDY_ERR_INVALID);
}

static void test_streams_of_other_envs(void **state)
{
    (void)state;
    const char *const in[] = {"a"};
    eddy_env_t *e1 = eddy_env_new();
    eddy_env_t *e2 = eddy_env_new();
    eddy_stream_t *a = eddy_source_strings(e1, in, 1);
    eddy_stream_t *b = eddy_source_strings(e2, in, 1);
    assert_null(eddy_union(a, b));
    run_expect_failure(e1, EDDY_ERR_INVALID,
                       "streams of different environments cannot be combined");
    eddy_env_destroy(e1);
    eddy_env_destroy(e2);
}

static void test_execute_only_once(void **state)
{
    (void)state;
    const char *const in[] = {"a"};
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(eddy_source_strings(env, in, 1), out);
    EXECUTE_OK(env);
    run_expect_failure(env, EDDY_ERR_STATE,
                       "this environment has already been executed");
    assert_int_equal(eddy_collection_count(out), 1);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

/* ---- cancellation ---- */

typedef struct runner {
    eddy_env_t *env;
    eddy_error_t err;
    int rc;
    atomic_int done;
} runner_t;

static void *runner_main(void *arg)
{
    runner_t *r = arg;
    r->rc = eddy_env_execute(r->env, &r->err);
    atomic_store(&r->done, 1);
    return NULL;
}

static int count_and_drop(eddy_ctx_t *ctx, const eddy_record_t *in,
                          void *opaque)
{
    (void)ctx;
    (void)in;
    flow_t *f = opaque;
    long long n = atomic_fetch_add(&f->consumed, 1) + 1;
    if (f->sleep_every > 0 && n % f->sleep_every == 0) {
        tu_sleep_us(f->sleep_us);
    }
    return 0;
}

typedef struct at_least {
    atomic_llong *v;
    long long n;
} at_least_t;

static bool reached(void *arg)
{
    at_least_t *a = arg;
    return atomic_load(a->v) >= a->n;
}

static void run_cancel(int sleep_every, long sleep_us, long long wait_for,
                       int max_ms)
{
    flow_t f = {.sleep_every = sleep_every, .sleep_us = sleep_us};
    atomic_init(&f.generated, 0);
    atomic_init(&f.consumed, 0);
    atomic_init(&f.max_lead, 0);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_buffer_size(env, 4096);
    eddy_env_set_channel_capacity(env, 1);
    /* Unbounded generator at parallelism 2, rebalanced into one counting
     * subtask. */
    eddy_stream_t *src =
        eddy_parallelism(eddy_source_generator(env, 0, 0, gen_tracked, &f), 2);
    eddy_stream_t *cnt = eddy_parallelism(
        eddy_filter(eddy_rebalance(src), count_and_drop, &f), 1);
    eddy_sink_discard(cnt);

    runner_t r = {.env = env};
    atomic_init(&r.done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, runner_main, &r), 0);
    at_least_t al = {&f.consumed, wait_for};
    if (!tu_wait_until(reached, &al, 10000)) {
        eddy_env_cancel(env);
        tu_join(th, 10000, "job");
        fail_msg("the job consumed only %lld records (rc %d: %s)",
                 (long long)atomic_load(&f.consumed), r.rc, r.err.msg);
    }
    assert_int_equal(atomic_load(&r.done), 0); /* unbounded: still running */
    uint64_t t0 = tu_now_ms();
    eddy_env_cancel(env);
    tu_join(th, 20000, "cancelled job");
    uint64_t took = tu_now_ms() - t0;
    assert_int_equal(r.rc, EDDY_ERR_CANCELED);
    assert_int_equal(r.err.code, EDDY_ERR_CANCELED);
    assert_string_equal(r.err.msg, "the job was canceled");
    if (took > (uint64_t)tu_timeout_ms(max_ms)) {
        fail_msg("cancellation took %llu ms", (unsigned long long)took);
    }
    eddy_env_destroy(env);
}

static void test_cancel_unbounded_job(void **state)
{
    (void)state;
    run_cancel(0, 0, 50000, 2000);
}

static void test_cancel_back_pressured_job(void **state)
{
    (void)state;
    /* The consumer needs 5 ms per record, so the buffered input (hundreds
     * of records per buffer) would take seconds to drain; cancellation must
     * not wait for it. */
    run_cancel(1, 5000, 20, 1000);
}

static void test_failure_stops_back_pressured_job(void **state)
{
    (void)state;
    /* An unbounded source blocked on a full channel: a failure downstream
     * must wake it and end the job. */
    fail_cfg_t fc = {.at = 5000, .mode = 0};
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_buffer_size(env, 4096);
    eddy_env_set_channel_capacity(env, 1);
    eddy_stream_t *src = eddy_source_generator(env, 0, 0, gen_index, NULL);
    eddy_stream_t *m = eddy_disable_chaining(
        eddy_name(eddy_map(src, failing_map, &fc), "Late"));
    eddy_sink_discard(m);
    runner_t r = {.env = env};
    atomic_init(&r.done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, runner_main, &r), 0);
    tu_join(th, 20000, "failing job");
    assert_int_equal(r.rc, EDDY_ERR_USER);
    assert_string_equal(r.err.msg,
                        "operator 'Late' (subtask 1 of 1) failed: bad record "
                        "5000");
    eddy_env_destroy(env);
}

/* ---- context and scratch ---- */

static int describe(eddy_ctx_t *ctx, const eddy_record_t *in,
                    eddy_record_t *out, void *opaque)
{
    (void)in;
    (void)opaque;
    char *s = eddy_ctx_scratch(ctx, 64);
    int n = snprintf(s, 64, "%s:%d/%d", eddy_ctx_operator(ctx),
                     eddy_ctx_subtask(ctx), eddy_ctx_parallelism(ctx));
    out->value = s;
    out->value_len = (size_t)n;
    return 0;
}

static void test_context_accessors(void **state)
{
    (void)state;
    enum { N = 30 };
    int64_t vals[N];
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *m = eddy_parallelism(
        eddy_name(
            eddy_map(eddy_rebalance(i64_source(env, vals, N)), describe, NULL),
            "Probe"),
        3);
    eddy_sink_collect(m, out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), N);
    int per[3] = {0};
    for (size_t i = 0; i < N; i++) {
        const char *v = tu_coll_str(out, i);
        assert_memory_equal(v, "Probe:", 6);
        int s = v[6] - '0';
        assert_in_range(s, 0, 2);
        assert_string_equal(v + 7, "/3");
        per[s]++;
    }
    assert_int_equal(per[0], 10);
    assert_int_equal(per[1], 10);
    assert_int_equal(per[2], 10);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

/* Emits four records from four scratch blocks of very different sizes,
 * all allocated before the first emit: every block must stay valid until
 * the function returns, including those served after the first block ran
 * out. */
static const size_t scratch_sizes[] = {100, 1 << 20, 5000, 64 * 1024, 3};

static int scratch_heavy(eddy_ctx_t *ctx, const eddy_record_t *in,
                         eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    int64_t idx = eddy_record_value_i64(in);
    enum { NB = EDDY_ARRAY_SIZE(scratch_sizes) };
    unsigned char *blk[NB];
    for (size_t b = 0; b < NB; b++) {
        blk[b] = eddy_ctx_scratch(ctx, scratch_sizes[b]);
        if (blk[b] == NULL) {
            return eddy_ctx_fail(ctx, "scratch of %zu bytes failed",
                                 scratch_sizes[b]);
        }
        if ((uintptr_t)blk[b] % 8 != 0) {
            return eddy_ctx_fail(ctx, "scratch not aligned");
        }
        fill_pattern(blk[b], scratch_sizes[b], (unsigned)(idx * 10 + b));
    }
    for (size_t b = 0; b < NB; b++) {
        int64_t *tag = eddy_ctx_scratch(ctx, sizeof(int64_t));
        *tag = idx * 10 + (int64_t)b;
        eddy_record_t r = {tag, sizeof(int64_t), blk[b], scratch_sizes[b],
                           EDDY_TS_NONE};
        int rc = eddy_collect(out, &r);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void test_scratch_memory_large_requests(void **state)
{
    (void)state;
    enum { N = 6, NB = EDDY_ARRAY_SIZE(scratch_sizes) };
    int64_t vals[N];
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *chained = eddy_collection_new();
    eddy_collection_t *network = eddy_collection_new();
    eddy_stream_t *fm =
        eddy_flat_map(i64_source(env, vals, N), scratch_heavy, NULL);
    eddy_sink_collect(fm, chained);
    eddy_parallelism(eddy_sink_collect(eddy_rebalance(fm), network), 2);
    EXECUTE_OK(env);
    eddy_collection_t *colls[2] = {chained, network};
    for (int c = 0; c < 2; c++) {
        assert_int_equal(eddy_collection_count(colls[c]), N * NB);
        bool seen[N * NB] = {false};
        unsigned char *expect = malloc(1 << 20);
        for (size_t i = 0; i < N * NB; i++) {
            const eddy_record_t *r = eddy_collection_get(colls[c], i);
            assert_int_equal(r->key_len, sizeof(int64_t));
            int64_t tag;
            memcpy(&tag, r->key, sizeof(tag));
            int64_t idx = tag / 10;
            size_t b = (size_t)(tag % 10);
            assert_in_range(idx, 0, N - 1);
            assert_in_range(b, 0, NB - 1);
            assert_false(seen[idx * NB + b]);
            seen[idx * NB + b] = true;
            fill_pattern(expect, scratch_sizes[b], (unsigned)tag);
            TU_ASSERT_BYTES(r->value, r->value_len, expect, scratch_sizes[b]);
        }
        free(expect);
    }
    /* In a chain, records arrive in emission order. */
    for (size_t i = 0; i < N * NB; i++) {
        const eddy_record_t *r = eddy_collection_get(chained, i);
        int64_t tag;
        memcpy(&tag, r->key, sizeof(tag));
        assert_int_equal(tag, (int64_t)(i / NB) * 10 + (int64_t)(i % NB));
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(chained);
    eddy_collection_destroy(network);
}

static void test_misc_api(void **state)
{
    (void)state;
    assert_string_equal(eddy_version(), EDDY_VERSION_STR);
    assert_string_equal(eddy_version(), "0.1.0");
    int64_t v = -42;
    eddy_record_t r = {NULL, 0, &v, sizeof(v), EDDY_TS_NONE};
    assert_int_equal(eddy_record_value_i64(&r), -42);
    r.value_len = 7; /* too short: 0 */
    assert_int_equal(eddy_record_value_i64(&r), 0);
    r.value = NULL;
    r.value_len = 8;
    assert_int_equal(eddy_record_value_i64(&r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_exact),
        cmocka_unit_test(test_filter_exact),
        cmocka_unit_test(test_flat_map_exact),
        cmocka_unit_test(test_key_and_timestamp_survive_edges),
        cmocka_unit_test(test_null_empty_value),
        cmocka_unit_test(test_union_semantics),
        cmocka_unit_test(test_rebalance_round_robin),
        cmocka_unit_test(test_broadcast_reaches_every_subtask),
        cmocka_unit_test(test_forward_keeps_subtask),
        cmocka_unit_test(test_keyed_routing_matches_key_groups),
        cmocka_unit_test(test_every_key_reaches_its_owner),
        cmocka_unit_test(test_records_larger_than_buffer_on_keyed_edge),
        cmocka_unit_test(test_back_pressure_small_buffers),
        cmocka_unit_test(test_back_pressure_keyed_parallel),
        cmocka_unit_test(test_user_failure_message),
        cmocka_unit_test(test_user_failure_parallel_downstream),
        cmocka_unit_test(test_rc_without_message),
        cmocka_unit_test(test_filter_bad_result),
        cmocka_unit_test(test_failure_in_flat_map_after_emit),
        cmocka_unit_test(test_builder_errors),
        cmocka_unit_test(test_streams_of_other_envs),
        cmocka_unit_test(test_execute_only_once),
        cmocka_unit_test(test_cancel_unbounded_job),
        cmocka_unit_test(test_cancel_back_pressured_job),
        cmocka_unit_test(test_failure_stops_back_pressured_job),
        cmocka_unit_test(test_context_accessors),
        cmocka_unit_test(test_scratch_memory_large_requests),
        cmocka_unit_test(test_misc_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
