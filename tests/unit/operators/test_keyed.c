/*
 * eddy — unit tests for src/operators/keyed.c and basic.c's key_by: running
 * reduce and aggregate per key, the built-in aggregates, key selectors, and
 * word count checked against an independent count.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <ctype.h>
#include <stdatomic.h>

#include "runtime/runtime.h"

#define EXECUTE_OK(env)                                                        \
    do {                                                                       \
        eddy_error_t err_;                                                     \
        eddy_error_clear(&err_);                                               \
        TU_ASSERT_OK(eddy_env_execute((env), &err_), &err_);                   \
    } while (0)

static void run_expect_failure(eddy_env_t *env, int code, const char *msg)
{
    eddy_error_t err;
    eddy_error_clear(&err);
    int rc = eddy_env_execute(env, &err);
    if (rc != code) {
        fail_msg("expected %s, got %d (%s): %s", eddy_err_name(code), rc,
                 eddy_err_name(rc), err.msg);
    }
    assert_string_equal(err.msg, msg);
}

/* Keyed int64 records: key "k<key>", value v. */
typedef struct kv_input {
    char keys[64][8];
    int64_t vals[4096];
    eddy_record_t recs[4096];
    size_t n;
} kv_input_t;

static void kv_add(kv_input_t *in, int key, int64_t v)
{
    assert_true(key < 64 && in->n < 4096);
    snprintf(in->keys[key], sizeof(in->keys[key]), "k%d", key);
    in->vals[in->n] = v;
    in->recs[in->n] =
        (eddy_record_t){in->keys[key], strlen(in->keys[key]), &in->vals[in->n],
                        sizeof(int64_t), EDDY_TS_NONE};
    in->n++;
}

static int key_index(const eddy_record_t *r)
{
    assert_non_null(r->key);
    assert_true(r->key_len >= 2);
    const char *k = r->key;
    assert_int_equal(k[0], 'k');
    return atoi(k + 1);
}

/*
 * Keys a parallelism-1 source's records by the key they carry, keeping
 * key_by at parallelism 1 so it chains with the source: the hash edge into
 * the keyed operator then preserves each key's order at any parallelism. (A
 * key_by at the env's parallelism would be fed round robin, and records of
 * one key could overtake each other, as in Flink.)
 */
static eddy_stream_t *keyed_in_order(eddy_stream_t *src)
{
    return eddy_parallelism(eddy_key_by(src, NULL, NULL), 1);
}

/* ---- reduce ---- */

static int sum_reduce(eddy_ctx_t *ctx, const eddy_record_t *acc,
                      const eddy_record_t *in, eddy_record_t *out, void *opaque)
{
    atomic_int *calls = opaque;
    atomic_fetch_add(calls, 1);
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    *v = eddy_record_value_i64(acc) + eddy_record_value_i64(in);
    out->value = v;
    out->value_len = sizeof(*v);
    return 0;
}

static void check_running_sums(eddy_collection_t *out, const kv_input_t *in,
                               int nkeys)
{
    /* Per key, the outputs are the prefix sums of that key's inputs, in
     * input order. */
    assert_int_equal(eddy_collection_count(out), in->n);
    int64_t expect_sum[64] = {0};
    size_t expect_pos[64] = {0};
    int64_t prefix[4096];
    int prefix_key[4096];
    for (size_t i = 0; i < in->n; i++) {
        int k = key_index(&in->recs[i]);
        expect_sum[k] += in->vals[i];
        prefix[i] = expect_sum[k];
        prefix_key[i] = k;
    }
    for (size_t i = 0; i < eddy_collection_count(out); i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int k = key_index(r);
        assert_in_range(k, 0, nkeys - 1);
        /* Find this key's next expected output. */
        size_t p = expect_pos[k];
        while (p < in->n && prefix_key[p] != k) {
            p++;
        }
        assert_true(p < in->n);
        assert_int_equal(eddy_record_value_i64(r), prefix[p]);
        assert_int_equal(r->value_len, sizeof(int64_t));
        expect_pos[k] = p + 1;
    }
}

static void test_reduce_running_sum(void **state)
{
    (void)state;
    static const int ps[] = {1, 3};
    for (size_t pi = 0; pi < EDDY_ARRAY_SIZE(ps); pi++) {
        kv_input_t *in = calloc(1, sizeof(*in));
        uint64_t rng = 5;
        for (int i = 0; i < 3000; i++) {
            kv_add(in, (int)(tu_rand(&rng) % 20),
                   (int64_t)(tu_rand(&rng) % 2001) - 1000);
        }
        atomic_int calls;
        atomic_init(&calls, 0);
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_parallelism(env, ps[pi]);
        eddy_collection_t *out = eddy_collection_new();
        eddy_stream_t *src = eddy_source_collection(env, in->recs, in->n);
        eddy_sink_collect(eddy_reduce(keyed_in_order(src), sum_reduce, &calls),
                          out);
        EXECUTE_OK(env);
        check_running_sums(out, in, 20);
        /* The first record of each key is its value unchanged: the
         * function runs once per record after the first. */
        assert_int_equal(atomic_load(&calls), 3000 - 20);
        eddy_env_destroy(env);
        eddy_collection_destroy(out);
        free(in);
    }
}

static void test_reduce_exact_small(void **state)
{
    (void)state;
    kv_input_t *in = calloc(1, sizeof(*in));
    kv_add(in, 1, 5);
    kv_add(in, 2, 100);
    kv_add(in, 1, -3);
    kv_add(in, 1, 10);
    kv_add(in, 2, 1);
    atomic_int calls;
    atomic_init(&calls, 0);
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_reduce(eddy_key_by(eddy_source_collection(env, in->recs, in->n),
                                NULL, NULL),
                    sum_reduce, &calls),
        out);
    EXECUTE_OK(env);
    /* Parallelism 1 end to end: the global order is kept. */
    static const struct {
        const char *key;
        int64_t v;
    } expect[] = {{"k1", 5}, {"k2", 100}, {"k1", 2}, {"k1", 12}, {"k2", 101}};
    assert_int_equal(eddy_collection_count(out), 5);
    for (size_t i = 0; i < 5; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        assert_string_equal(r->key, expect[i].key);
        assert_int_equal(r->key_len, 2);
        assert_int_equal(eddy_record_value_i64(r), expect[i].v);
    }
    assert_int_equal(atomic_load(&calls), 3);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
    free(in);
}

/* Appends the input's value to the accumulated string: values grow far
 * beyond the state's initial space. */
static int concat_reduce(eddy_ctx_t *ctx, const eddy_record_t *acc,
                         const eddy_record_t *in, eddy_record_t *out,
                         void *opaque)
{
    (void)opaque;
    char *p = eddy_ctx_scratch(ctx, acc->value_len + in->value_len);
    memcpy(p, acc->value, acc->value_len);
    memcpy(p + acc->value_len, in->value, in->value_len);
    out->value = p;
    out->value_len = acc->value_len + in->value_len;
    return 0;
}

static void test_reduce_growing_values(void **state)
{
    (void)state;
    enum { KEYS = 37, ROUNDS = 60 };
    static char keys[KEYS][8];
    static char vals[KEYS * ROUNDS][16];
    static eddy_record_t recs[KEYS * ROUNDS];
    size_t n = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(keys[k], sizeof(keys[k]), "w%d", k);
            int len = snprintf(vals[n], sizeof(vals[n]), "%d.%d;", k, r);
            recs[n] = (eddy_record_t){keys[k], strlen(keys[k]), vals[n],
                                      (size_t)len, EDDY_TS_NONE};
            n++;
        }
    }
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_reduce(keyed_in_order(eddy_source_collection(env, recs, n)),
                    concat_reduce, NULL),
        out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), n);
    /* Per key, the i-th output is the concatenation of its first i+1
     * values. */
    int rounds_seen[KEYS] = {0};
    char expect[KEYS * 16 * 8];
    for (size_t i = 0; i < n; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        const char *key = r->key;
        assert_int_equal(key[0], 'w');
        int k = atoi(key + 1);
        assert_in_range(k, 0, KEYS - 1);
        int upto = rounds_seen[k]++;
        size_t len = 0;
        for (int j = 0; j <= upto; j++) {
            len += (size_t)snprintf(expect + len, sizeof(expect) - len,
                                    "%d.%d;", k, j);
        }
        TU_ASSERT_BYTES(r->value, r->value_len, expect, len);
    }
    for (int k = 0; k < KEYS; k++) {
        assert_int_equal(rounds_seen[k], ROUNDS);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

/* Empties the value on every second record of a key (NULL pointer, length
 * 0), then sets it again: state must take both. */
static int toggle_reduce(eddy_ctx_t *ctx, const eddy_record_t *acc,
                         const eddy_record_t *in, eddy_record_t *out,
                         void *opaque)
{
    (void)ctx;
    (void)in;
    (void)opaque;
    if (acc->value_len > 0) {
        out->value = NULL;
        out->value_len = 0;
    }
    return 0;
}

static void test_reduce_null_empty_value(void **state)
{
    (void)state;
    eddy_record_t recs[] = {
        {"k", 1, "x1", 2, EDDY_TS_NONE},
        {"k", 1, "x2", 2, EDDY_TS_NONE},
        {"k", 1, "x3", 2, EDDY_TS_NONE},
        {"k", 1, "x4", 2, EDDY_TS_NONE},
    };
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_reduce(keyed_in_order(eddy_source_collection(env, recs, 4)),
                    toggle_reduce, NULL),
        out);
    EXECUTE_OK(env);
    static const char *const expect[] = {"x1", "", "x3", ""};
    assert_int_equal(eddy_collection_count(out), 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(tu_coll_str(out, i), expect[i]);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static int reduce_fails(eddy_ctx_t *ctx, const eddy_record_t *acc,
                        const eddy_record_t *in, eddy_record_t *out,
                        void *opaque)
{
    (void)acc;
    (void)in;
    (void)out;
    (void)opaque;
    return eddy_ctx_fail(ctx, "cannot combine");
}

static void test_reduce_failure(void **state)
{
    (void)state;
    kv_input_t *in = calloc(1, sizeof(*in));
    kv_add(in, 1, 1);
    kv_add(in, 2, 1);
    kv_add(in, 1, 1);
    eddy_env_t *env = eddy_env_new();
    eddy_sink_discard(eddy_name(
        eddy_reduce(eddy_key_by(eddy_source_collection(env, in->recs, in->n),
                                NULL, NULL),
                    reduce_fails, NULL),
        "Combiner"));
    run_expect_failure(env, EDDY_ERR_USER,
                       "operator 'Combiner' (subtask 1 of 1) failed: cannot "
                       "combine");
    eddy_env_destroy(env);
    free(in);
}

/* ---- aggregate ---- */

static void run_builtin(const eddy_aggregate_t *agg, int p,
                        const kv_input_t *in, eddy_collection_t *out)
{
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, p);
    eddy_stream_t *src = eddy_source_collection(env, in->recs, in->n);
    eddy_sink_collect(eddy_aggregate(keyed_in_order(src), agg), out);
    EXECUTE_OK(env);
    eddy_env_destroy(env);
}

static void test_builtin_aggregates(void **state)
{
    (void)state;
    kv_input_t *in = calloc(1, sizeof(*in));
    uint64_t rng = 77;
    enum { KEYS = 13 };
    for (int i = 0; i < 2000; i++) {
        int64_t v = (int64_t)(tu_rand(&rng) % 1000001) - 500000;
        if (i % 97 == 0) {
            v = i % 2 ? INT64_MAX : INT64_MIN; /* extremes */
        }
        kv_add(in, (int)(tu_rand(&rng) % KEYS), v);
    }
    enum { COUNT, SUM, MIN, MAX };
    const eddy_aggregate_t *aggs[4] = {eddy_agg_count(), eddy_agg_sum_i64(),
                                       eddy_agg_min_i64(), eddy_agg_max_i64()};
    static const int ps[] = {1, 2};
    for (size_t pi = 0; pi < EDDY_ARRAY_SIZE(ps); pi++) {
        for (int a = 0; a < 4; a++) {
            eddy_collection_t *out = eddy_collection_new();
            run_builtin(aggs[a], ps[pi], in, out);
            assert_int_equal(eddy_collection_count(out), in->n);
            /* Expected running results per key, in input order. */
            int64_t acc[KEYS] = {0};
            bool seen[KEYS] = {false};
            int64_t **expect = calloc(KEYS, sizeof(int64_t *));
            size_t nexp[KEYS] = {0};
            for (int k = 0; k < KEYS; k++) {
                expect[k] = calloc(in->n, sizeof(int64_t));
            }
            for (size_t i = 0; i < in->n; i++) {
                int k = key_index(&in->recs[i]);
                int64_t v = in->vals[i];
                if (!seen[k]) {
                    acc[k] = a == COUNT ? 0 : a == SUM ? 0 : v;
                    seen[k] = true;
                }
                switch (a) {
                case COUNT:
                    acc[k]++;
                    break;
                case SUM:
                    acc[k] = (int64_t)((uint64_t)acc[k] + (uint64_t)v);
                    break;
                case MIN:
                    acc[k] = v < acc[k] ? v : acc[k];
                    break;
                default:
                    acc[k] = v > acc[k] ? v : acc[k];
                    break;
                }
                expect[k][nexp[k]++] = acc[k];
            }
            size_t pos[KEYS] = {0};
            for (size_t i = 0; i < in->n; i++) {
                const eddy_record_t *r = eddy_collection_get(out, i);
                int k = key_index(r);
                assert_in_range(k, 0, KEYS - 1);
                assert_int_equal(r->value_len, sizeof(int64_t));
                assert_true(pos[k] < nexp[k]);
                int64_t got = eddy_record_value_i64(r);
                if (got != expect[k][pos[k]]) {
                    fail_msg("aggregate %d p %d key %d output %zu: %lld, "
                             "expected %lld",
                             a, ps[pi], k, pos[k], (long long)got,
                             (long long)expect[k][pos[k]]);
                }
                pos[k]++;
            }
            for (int k = 0; k < KEYS; k++) {
                assert_int_equal(pos[k], nexp[k]);
                free(expect[k]);
            }
            free(expect);
            eddy_collection_destroy(out);
        }
    }
    free(in);
}

static void test_builtin_aggregates_exact_small(void **state)
{
    (void)state;
    kv_input_t *in = calloc(1, sizeof(*in));
    kv_add(in, 0, 4);
    kv_add(in, 0, -2);
    kv_add(in, 1, 7);
    kv_add(in, 0, 9);
    static const int64_t count[] = {1, 2, 1, 3};
    static const int64_t sum[] = {4, 2, 7, 11};
    static const int64_t min[] = {4, -2, 7, -2};
    static const int64_t max[] = {4, 4, 7, 9};
    const int64_t *expect[4] = {count, sum, min, max};
    const eddy_aggregate_t *aggs[4] = {eddy_agg_count(), eddy_agg_sum_i64(),
                                       eddy_agg_min_i64(), eddy_agg_max_i64()};
    for (int a = 0; a < 4; a++) {
        eddy_collection_t *out = eddy_collection_new();
        run_builtin(aggs[a], 1, in, out);
        assert_int_equal(eddy_collection_count(out), 4);
        for (size_t i = 0; i < 4; i++) {
            const eddy_record_t *r = eddy_collection_get(out, i);
            assert_int_equal(eddy_record_value_i64(r), expect[a][i]);
            /* The result carries the input's key. */
            assert_string_equal(r->key, i == 2 ? "k1" : "k0");
        }
        eddy_collection_destroy(out);
    }
    free(in);
}

/* A custom aggregate: starts at `*opaque`, subtracts each value, and
 * renders "key=acc" as text into scratch memory. */
static void sub_init(void *acc, void *opaque)
{
    memcpy(acc, opaque, sizeof(int64_t));
}

static int sub_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                   void *opaque)
{
    (void)ctx;
    (void)opaque;
    int64_t a;
    memcpy(&a, acc, sizeof(a));
    a -= eddy_record_value_i64(in);
    memcpy(acc, &a, sizeof(a));
    return 0;
}

static int sub_result(eddy_ctx_t *ctx, const void *acc, eddy_record_t *out,
                      void *opaque)
{
    (void)opaque;
    int64_t a;
    memcpy(&a, acc, sizeof(a));
    char *s = eddy_ctx_scratch(ctx, 64);
    int n = snprintf(s, 64, "%.*s=%lld", (int)out->key_len,
                     (const char *)out->key, (long long)a);
    out->value = s;
    out->value_len = (size_t)n;
    return 0;
}

static void test_custom_aggregate(void **state)
{
    (void)state;
    kv_input_t *in = calloc(1, sizeof(*in));
    kv_add(in, 3, 10);
    kv_add(in, 4, 1);
    kv_add(in, 3, 5);
    kv_add(in, 4, 2);
    kv_add(in, 3, 100);
    int64_t start = 1000;
    eddy_aggregate_t agg = {sizeof(int64_t), sub_init, sub_add, sub_result,
                            &start};
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *a = eddy_aggregate(
        eddy_key_by(eddy_source_collection(env, in->recs, in->n), NULL, NULL),
        &agg);
    /* The aggregate was copied: changing ours now has no effect. */
    agg.add = NULL;
    eddy_sink_collect(a, out);
    EXECUTE_OK(env);
    static const char *const expect[] = {"k3=990", "k4=999", "k3=985", "k4=997",
                                         "k3=885"};
    assert_int_equal(eddy_collection_count(out), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(tu_coll_str(out, i), expect[i]);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
    free(in);
}

static void test_aggregate_builder_errors(void **state)
{
    (void)state;
    const char *const s[] = {"a"};
    eddy_aggregate_t agg = *eddy_agg_count();
    agg.acc_size = 0;
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *k = eddy_key_by(eddy_source_strings(env, s, 1), NULL, NULL);
    assert_null(eddy_aggregate(k, &agg));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_aggregate: acc_size must be between 1 and 65536 "
                       "bytes, got 0");
    eddy_env_destroy(env);

    agg.acc_size = 65537;
    env = eddy_env_new();
    k = eddy_key_by(eddy_source_strings(env, s, 1), NULL, NULL);
    assert_null(eddy_aggregate(k, &agg));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_aggregate: acc_size must be between 1 and 65536 "
                       "bytes, got 65537");
    eddy_env_destroy(env);

    env = eddy_env_new();
    k = eddy_key_by(eddy_source_strings(env, s, 1), NULL, NULL);
    assert_null(eddy_aggregate(k, NULL));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_aggregate: the aggregate needs add and result "
                       "functions");
    eddy_env_destroy(env);

    env = eddy_env_new();
    k = eddy_key_by(eddy_source_strings(env, s, 1), NULL, NULL);
    assert_null(eddy_reduce(k, NULL, NULL));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_reduce: the function must not be NULL");
    eddy_env_destroy(env);
}

static int agg_add_fails(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                         void *opaque)
{
    (void)ctx;
    (void)acc;
    (void)opaque;
    return eddy_record_value_i64(in) == 3 ? EDDY_ERR_NOMEM : 0;
}

static void test_aggregate_failure(void **state)
{
    (void)state;
    kv_input_t *in = calloc(1, sizeof(*in));
    for (int i = 0; i < 5; i++) {
        kv_add(in, i % 2, i);
    }
    eddy_aggregate_t agg = *eddy_agg_count();
    agg.add = agg_add_fails;
    eddy_env_t *env = eddy_env_new();
    eddy_sink_discard(eddy_aggregate(
        eddy_key_by(eddy_source_collection(env, in->recs, in->n), NULL, NULL),
        &agg));
    run_expect_failure(env, EDDY_ERR_NOMEM,
                       "operator 'Aggregate' (subtask 1 of 1) failed: user "
                       "function returned -2 (out of memory) without a "
                       "message (use eddy_ctx_fail)");
    eddy_env_destroy(env);
    free(in);
}

/* ---- key selectors ---- */

/* Keys by the first character of the value. */
static int first_char(eddy_ctx_t *ctx, const eddy_record_t *in,
                      const void **key, size_t *key_len, void *opaque)
{
    (void)ctx;
    (void)opaque;
    *key = in->value;
    *key_len = in->value_len > 0 ? 1 : 0;
    return 0;
}

static void test_key_selector(void **state)
{
    (void)state;
    const char *const words[] = {"apple",     "avocado", "banana", "",
                                 "blueberry", "apricot", "",       "cherry"};
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 3);
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_source_strings(env, words, 8);
    eddy_sink_collect(
        eddy_aggregate(eddy_key_by(src, first_char, NULL), eddy_agg_count()),
        out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 8);
    /* Running counts per first letter; "" is a key too (the empty key). */
    int64_t last[256] = {0};
    int64_t empty_last = 0;
    for (size_t i = 0; i < 8; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int64_t c = eddy_record_value_i64(r);
        assert_non_null(r->key);
        if (r->key_len == 0) {
            assert_int_equal(c, ++empty_last);
        } else {
            assert_int_equal(r->key_len, 1);
            unsigned char k = ((const unsigned char *)r->key)[0];
            assert_int_equal(c, ++last[k]);
        }
    }
    assert_int_equal(last['a'], 3);
    assert_int_equal(last['b'], 2);
    assert_int_equal(last['c'], 1);
    assert_int_equal(empty_last, 2);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static int null_key(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                    size_t *key_len, void *opaque)
{
    (void)ctx;
    (void)in;
    (void)opaque;
    *key = NULL;
    *key_len = 0;
    return 0;
}

static int null_key_with_len(eddy_ctx_t *ctx, const eddy_record_t *in,
                             const void **key, size_t *key_len, void *opaque)
{
    (void)ctx;
    (void)in;
    (void)opaque;
    *key = NULL;
    *key_len = 3;
    return 0;
}

static void test_key_selector_edge_cases(void **state)
{
    (void)state;
    const char *const words[] = {"x", "y", "z"};
    /* A NULL key of length 0 is the empty key: all records share it. */
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_aggregate(
            eddy_key_by(eddy_source_strings(env, words, 3), null_key, NULL),
            eddy_agg_count()),
        out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 3);
    for (size_t i = 0; i < 3; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        assert_non_null(r->key);
        assert_int_equal(r->key_len, 0);
        assert_int_equal(eddy_record_value_i64(r), (int64_t)i + 1);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);

    /* A NULL key with a length is an error. */
    env = eddy_env_new();
    eddy_sink_discard(eddy_key_by(eddy_source_strings(env, words, 3),
                                  null_key_with_len, NULL));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "operator 'KeyBy' (subtask 1 of 1) failed: key "
                       "selector returned a NULL key of length 3");
    eddy_env_destroy(env);

    /* Keying by the records' own key needs records that have one. */
    env = eddy_env_new();
    eddy_sink_discard(
        eddy_key_by(eddy_source_strings(env, words, 3), NULL, NULL));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "operator 'KeyBy' (subtask 1 of 1) failed: record has "
                       "no key (eddy_key_by with a NULL selector keys by the "
                       "key records carry)");
    eddy_env_destroy(env);
}

static void test_binary_keys(void **state)
{
    (void)state;
    /* Keys with NUL bytes and keys that are prefixes of each other are
     * distinct keys. */
    static const unsigned char k1[] = {0};
    static const unsigned char k2[] = {0, 0};
    static const unsigned char k3[] = {0, 1};
    static const unsigned char k4[] = {1};
    const unsigned char *keys[] = {k1, k2, k3, k4, k2, k1, k1};
    size_t lens[] = {1, 2, 2, 1, 2, 1, 1};
    int64_t expect[] = {1, 1, 1, 1, 2, 2, 3};
    eddy_record_t recs[7];
    for (int i = 0; i < 7; i++) {
        recs[i] = (eddy_record_t){keys[i], lens[i], "", 0, EDDY_TS_NONE};
    }
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_aggregate(
            eddy_key_by(eddy_source_collection(env, recs, 7), NULL, NULL),
            eddy_agg_count()),
        out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 7);
    for (size_t i = 0; i < 7; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        TU_ASSERT_BYTES(r->key, r->key_len, keys[i], lens[i]);
        assert_int_equal(eddy_record_value_i64(r), expect[i]);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static int gen_many_keys(eddy_ctx_t *ctx, uint64_t i, eddy_record_t *out,
                         void *opaque)
{
    (void)opaque;
    char *k = eddy_ctx_scratch(ctx, 24);
    int n = snprintf(k, 24, "key-%llu", (unsigned long long)(i % 20011));
    out->key = k;
    out->key_len = (size_t)n;
    return 0;
}

static void test_many_keys(void **state)
{
    (void)state;
    /* 20011 keys, three records each, over 4 subtasks: the state tables
     * resize many times and must keep every key's count. */
    enum { KEYS = 20011, N = 3 * KEYS };
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 4);
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_source_generator(env, N, 0, gen_many_keys, NULL);
    eddy_sink_collect(
        eddy_aggregate(eddy_key_by(src, NULL, NULL), eddy_agg_count()), out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), N);
    int *last = calloc(KEYS, sizeof(int));
    for (size_t i = 0; i < N; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int k = atoi((const char *)r->key + 4);
        assert_in_range(k, 0, KEYS - 1);
        assert_int_equal(eddy_record_value_i64(r), ++last[k]);
    }
    for (int k = 0; k < KEYS; k++) {
        assert_int_equal(last[k], 3);
    }
    free(last);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

/* ---- word count ---- */

static bool is_word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/* The job's tokenizer: lower-cased maximal runs of letters and digits. */
static int tokenize(eddy_ctx_t *ctx, const eddy_record_t *in,
                    eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    const unsigned char *p = in->value;
    size_t n = in->value_len, i = 0;
    while (i < n) {
        while (i < n && !is_word_char(p[i])) {
            i++;
        }
        size_t start = i;
        while (i < n && is_word_char(p[i])) {
            i++;
        }
        if (i == start) {
            break;
        }
        char *w = eddy_ctx_scratch(ctx, i - start);
        for (size_t k = start; k < i; k++) {
            w[k - start] =
                (char)(p[k] >= 'A' && p[k] <= 'Z' ? p[k] + 32 : p[k]);
        }
        eddy_record_t word = {NULL, 0, w, i - start, EDDY_TS_NONE};
        int rc = eddy_collect(out, &word);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int word_key(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                    size_t *key_len, void *opaque)
{
    (void)ctx;
    (void)opaque;
    *key = in->value;
    *key_len = in->value_len;
    return 0;
}

/* The independent count: a sorted table of words built with ctype and
 * qsort, no engine code involved. */
typedef struct wc_entry {
    char word[32];
    long count;
    long seen; /* outputs checked so far */
} wc_entry_t;

static int wc_cmp(const void *a, const void *b)
{
    return strcmp(((const wc_entry_t *)a)->word, ((const wc_entry_t *)b)->word);
}

static wc_entry_t *count_words(const char *text, size_t *nwords, long *total)
{
    size_t cap = 1024, n = 0;
    wc_entry_t *all = malloc(cap * sizeof(*all));
    *total = 0;
    const char *p = text;
    while (*p) {
        while (*p && !isalnum((unsigned char)*p)) {
            p++;
        }
        char w[32];
        size_t len = 0;
        while (*p && isalnum((unsigned char)*p)) {
            assert_true(len < sizeof(w) - 1);
            w[len++] = (char)tolower((unsigned char)*p++);
        }
        if (len == 0) {
            continue;
        }
        w[len] = '\0';
        if (n == cap) {
            cap *= 2;
            all = realloc(all, cap * sizeof(*all));
        }
        snprintf(all[n].word, sizeof(all[n].word), "%s", w);
        all[n].count = 1;
        all[n].seen = 0;
        n++;
        (*total)++;
    }
    qsort(all, n, sizeof(*all), wc_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u > 0 && strcmp(all[u - 1].word, all[i].word) == 0) {
            all[u - 1].count++;
        } else {
            all[u++] = all[i];
        }
    }
    *nwords = u;
    return all;
}

/* Generates text: words from syllables, mixed case, punctuation, digits,
 * empty lines, CRLF and no final newline. */
static char *make_text(size_t lines, uint64_t seed, size_t *len)
{
    static const char *const syl[] = {"ka", "lo", "mi", "ne", "ru", "sta",
                                      "po", "X",  "Q",  "zz", "e",  "42"};
    static const char *const seps[] = {" ",   "  ", ", ", ". ", "!", "\t",
                                       " - ", "; ", "'",  "(",  ") "};
    size_t cap = lines * 160 + 64, n = 0; /* 12 words of <= 12 bytes */
    char *t = malloc(cap);
    uint64_t rng = seed;
    for (size_t l = 0; l < lines; l++) {
        int words = (int)(tu_rand(&rng) % 13);
        for (int w = 0; w < words; w++) {
            int nsyl = 1 + (int)(tu_rand(&rng) % 3);
            for (int s = 0; s < nsyl; s++) {
                n += (size_t)snprintf(t + n, cap - n, "%s",
                                      syl[tu_rand(&rng) % 12]);
            }
            n += (size_t)snprintf(t + n, cap - n, "%s",
                                  seps[tu_rand(&rng) % 11]);
        }
        if (l + 1 < lines) {
            n += (size_t)snprintf(t + n, cap - n, "%s",
                                  l % 17 == 3 ? "\r\n" : "\n");
        }
    }
    t[n] = '\0';
    *len = n;
    return t;
}

static void run_word_count(int p)
{
    char dir[PATH_MAX], path[PATH_MAX + 16];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/words.txt", dir);
    size_t len;
    char *text = make_text(3000, 1234 + (uint64_t)p, &len);
    tu_write_file(path, text, len);

    size_t nwords;
    long total;
    wc_entry_t *expect = count_words(text, &nwords, &total);
    assert_true(nwords > 100);
    assert_true(total > 10000);

    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, p);
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *lines = eddy_source_text_file(env, path);
    eddy_stream_t *words = eddy_flat_map(lines, tokenize, NULL);
    eddy_stream_t *counts =
        eddy_aggregate(eddy_key_by(words, word_key, NULL), eddy_agg_count());
    eddy_sink_collect(counts, out);
    EXECUTE_OK(env);

    /* One output per word occurrence; per word the outputs are exactly
     * 1, 2, ..., n in order. */
    assert_int_equal(eddy_collection_count(out), (size_t)total);
    for (size_t i = 0; i < (size_t)total; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        wc_entry_t probe;
        assert_true(r->key_len < sizeof(probe.word));
        snprintf(probe.word, sizeof(probe.word), "%s", (const char *)r->key);
        wc_entry_t *e =
            bsearch(&probe, expect, nwords, sizeof(*expect), wc_cmp);
        if (e == NULL) {
            fail_msg("unexpected word '%s'", probe.word);
        }
        long got = (long)eddy_record_value_i64(r);
        if (got != e->seen + 1) {
            fail_msg("word '%s': output %ld after %ld", e->word, got, e->seen);
        }
        e->seen = got;
    }
    for (size_t i = 0; i < nwords; i++) {
        if (expect[i].seen != expect[i].count) {
            fail_msg("word '%s': counted to %ld, expected %ld", expect[i].word,
                     expect[i].seen, expect[i].count);
        }
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
    free(expect);
    free(text);
    tu_rmtree(dir);
}

static void test_word_count_p1(void **state)
{
    (void)state;
    run_word_count(1);
}

static void test_word_count_p4(void **state)
{
    (void)state;
    run_word_count(4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_running_sum),
        cmocka_unit_test(test_reduce_exact_small),
        cmocka_unit_test(test_reduce_growing_values),
        cmocka_unit_test(test_reduce_null_empty_value),
        cmocka_unit_test(test_reduce_failure),
        cmocka_unit_test(test_builtin_aggregates),
        cmocka_unit_test(test_builtin_aggregates_exact_small),
        cmocka_unit_test(test_custom_aggregate),
        cmocka_unit_test(test_aggregate_builder_errors),
        cmocka_unit_test(test_aggregate_failure),
        cmocka_unit_test(test_key_selector),
        cmocka_unit_test(test_key_selector_edge_cases),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_word_count_p1),
        cmocka_unit_test(test_word_count_p4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
