/*
 * eddy — unit tests for src/connectors/sources.c: the collection, generator
 * and text-file sources, at several parallelisms.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <math.h>
#include <sys/stat.h>

#include "common/internal.h"

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

/* Key = the subtask that emitted the record (one byte). */
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

/* ---- collection ---- */

static void test_collection_order_p1(void **state)
{
    (void)state;
    enum { N = 5000 };
    char(*buf)[12] = calloc(N, 12);
    const char **strs = calloc(N, sizeof(char *));
    for (int i = 0; i < N; i++) {
        snprintf(buf[i], 12, "r%d", i);
        strs[i] = buf[i];
    }
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 4); /* the source stays at 1 */
    eddy_collection_t *out = eddy_collection_new();
    eddy_parallelism(eddy_sink_collect(eddy_source_strings(env, strs, N), out),
                     1);
    /* The source copied the strings: changing them now has no effect. */
    for (int i = 0; i < N; i++) {
        buf[i][0] = '?';
    }
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), N);
    for (int i = 0; i < N; i++) {
        char expect[12];
        snprintf(expect, sizeof(expect), "r%d", i);
        assert_string_equal(tu_coll_str(out, (size_t)i), expect);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
    free(buf);
    free(strs);
}

static void test_collection_parallel(void **state)
{
    (void)state;
    enum { N = 1000, P = 3 };
    int64_t *vals = calloc(N, sizeof(int64_t));
    eddy_record_t *recs = calloc(N, sizeof(*recs));
    for (int i = 0; i < N; i++) {
        vals[i] = i;
        recs[i] = (eddy_record_t){NULL, 0, &vals[i], 8, EDDY_TS_NONE};
    }
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, P); /* the tagging map chains */
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src =
        eddy_parallelism(eddy_source_collection(env, recs, N), P);
    eddy_sink_collect(eddy_map(src, tag_subtask, NULL), out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), N);
    int seen[N] = {0};
    int64_t last[P] = {-1, -1, -1};
    for (size_t i = 0; i < N; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int64_t v = eddy_record_value_i64(r);
        int s = subtask_of(r);
        /* Subtask s emits the records at indexes s, s+P, ... in order. */
        assert_int_equal(v % P, s);
        assert_true(v > last[s]);
        last[s] = v;
        seen[v]++;
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(seen[i], 1);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
    free(vals);
    free(recs);
}

static void test_collection_keys_timestamps_empty(void **state)
{
    (void)state;
    eddy_record_t recs[] = {
        {"key", 3, "v1", 2, 17},
        {NULL, 0, NULL, 5, EDDY_TS_NONE}, /* NULL value: empty */
        {"", 0, "", 0, -1},
    };
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(eddy_source_collection(env, recs, 3), out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 3);
    const eddy_record_t *r = eddy_collection_get(out, 0);
    assert_string_equal(r->key, "key");
    assert_int_equal(r->key_len, 3);
    assert_string_equal(r->value, "v1");
    assert_true(r->ts == 17);
    r = eddy_collection_get(out, 1);
    assert_null(r->key);
    assert_int_equal(r->value_len, 0);
    assert_true(r->ts == EDDY_TS_NONE);
    r = eddy_collection_get(out, 2);
    assert_non_null(r->key);
    assert_int_equal(r->key_len, 0);
    assert_int_equal(r->value_len, 0);
    assert_true(r->ts == -1);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static void test_collection_empty_and_errors(void **state)
{
    (void)state;
    /* An empty collection finishes at once, at any parallelism. */
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(eddy_parallelism(eddy_source_collection(env, NULL, 0), 3),
                      out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 0);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);

    env = eddy_env_new();
    assert_null(eddy_source_collection(env, NULL, 2));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_source_collection: records is NULL");
    eddy_env_destroy(env);

    env = eddy_env_new();
    const char *const strs[] = {"a", NULL, "c"};
    assert_null(eddy_source_strings(env, strs, 3));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_source_strings: string 1 is NULL");
    eddy_env_destroy(env);

    env = eddy_env_new();
    assert_null(eddy_source_strings(env, NULL, 1));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_source_strings: strings is NULL");
    eddy_env_destroy(env);
}

/* ---- generator ---- */

static int gen_index(eddy_ctx_t *ctx, uint64_t i, eddy_record_t *out,
                     void *opaque)
{
    (void)opaque;
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    *v = (int64_t)i;
    out->value = v;
    out->value_len = sizeof(*v);
    return 0;
}

static void check_generator(int p, uint64_t n, double rate)
{
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, p);
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_source_generator(env, n, rate, gen_index, NULL);
    eddy_sink_collect(eddy_map(src, tag_subtask, NULL), out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), n);
    unsigned char *seen = calloc(n, 1);
    int64_t last[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    for (size_t i = 0; i < n; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        int64_t v = eddy_record_value_i64(r);
        assert_in_range(v, 0, (int64_t)n - 1);
        assert_int_equal(seen[v], 0);
        seen[v] = 1;
        /* Subtask s generates s, s+p, s+2p, ... in order. */
        int s = subtask_of(r);
        assert_int_equal(v % p, s);
        assert_true(v > last[s]);
        last[s] = v;
    }
    free(seen);
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static void test_generator_each_index_once(void **state)
{
    (void)state;
    check_generator(1, 50000, 0);
    check_generator(3, 50000, 0);
    check_generator(3, 2, 0); /* fewer records than subtasks */
    check_generator(5, 10001, 0);
}

static void test_generator_rate_limit(void **state)
{
    (void)state;
    /* 40 records at 800/s cannot finish in less than 39/800 s. */
    uint64_t t0 = tu_now_ms();
    check_generator(1, 40, 800);
    uint64_t took = tu_now_ms() - t0;
    if (took < 45) {
        fail_msg("40 records at 800/s took only %llu ms",
                 (unsigned long long)took);
    }
    /* Split across two subtasks: 400/s each, 20 records each. */
    t0 = tu_now_ms();
    check_generator(2, 40, 800);
    took = tu_now_ms() - t0;
    if (took < 45) {
        fail_msg("40 records at 2 x 400/s took only %llu ms",
                 (unsigned long long)took);
    }
}

static int gen_nothing(eddy_ctx_t *ctx, uint64_t i, eddy_record_t *out,
                       void *opaque)
{
    (void)ctx;
    (void)i;
    (void)out;
    (void)opaque;
    return 0;
}

static void test_generator_default_record(void **state)
{
    (void)state;
    /* A function that sets nothing emits empty value-only records. */
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(eddy_source_generator(env, 5, 0, gen_nothing, NULL), out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 5);
    for (size_t i = 0; i < 5; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        assert_null(r->key);
        assert_int_equal(r->value_len, 0);
        assert_true(r->ts == EDDY_TS_NONE);
    }
    eddy_env_destroy(env);
    eddy_collection_destroy(out);
}

static int gen_fails(eddy_ctx_t *ctx, uint64_t i, eddy_record_t *out,
                     void *opaque)
{
    (void)out;
    (void)opaque;
    if (i == 77) {
        return eddy_ctx_fail(ctx, "index %llu is cursed",
                             (unsigned long long)i);
    }
    return 0;
}

static void test_generator_errors(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_sink_discard(
        eddy_name(eddy_source_generator(env, 1000, 0, gen_fails, NULL), "Gen"));
    run_expect_failure(env, EDDY_ERR_USER,
                       "operator 'Gen' (subtask 1 of 1) failed: index 77 is "
                       "cursed");
    eddy_env_destroy(env);

    env = eddy_env_new();
    assert_null(eddy_source_generator(env, 1, 0, NULL, NULL));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_source_generator: the function must not be NULL");
    eddy_env_destroy(env);

    static const double bad_rates[] = {-1.0, NAN};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(bad_rates); i++) {
        env = eddy_env_new();
        assert_null(
            eddy_source_generator(env, 1, bad_rates[i], gen_index, NULL));
        run_expect_failure(env, EDDY_ERR_INVALID,
                           "eddy_source_generator: rate must be >= 0");
        eddy_env_destroy(env);
    }
}

/* ---- text file ---- */

typedef struct line {
    const char *p;
    size_t n;
} line_t;

static int line_cmp(const void *a, const void *b)
{
    const line_t *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = m > 0 ? memcmp(x->p, y->p, m) : 0;
    if (c != 0) {
        return c;
    }
    return x->n < y->n ? -1 : x->n > y->n;
}

/* The expected lines: split at '\n', drop a '\r' before it, no line after
 * a final '\n'. */
static line_t *split_lines(const char *s, size_t len, size_t *n)
{
    line_t *v = calloc(len + 1, sizeof(*v));
    size_t k = 0, start = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n') {
            size_t end = i;
            if (end > start && s[end - 1] == '\r') {
                end--;
            }
            v[k++] = (line_t){s + start, end - start};
            start = i + 1;
        }
    }
    if (start < len) {
        v[k++] = (line_t){s + start, len - start};
    }
    *n = k;
    return v;
}

/* Runs the text source over `content` at parallelism p and checks that the
 * lines come out exactly once each; returns the collection. */
static eddy_collection_t *read_text(const char *dir, const char *content,
                                    size_t len, int p)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/in.txt", dir);
    tu_write_file(path, content, len);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, p);
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(
        eddy_map(eddy_source_text_file(env, path), tag_subtask, NULL), out);
    EXECUTE_OK(env);
    eddy_env_destroy(env);

    size_t nexp;
    line_t *expect = split_lines(content, len, &nexp);
    size_t ngot = eddy_collection_count(out);
    if (ngot != nexp) {
        fail_msg("p=%d: %zu lines read, expected %zu", p, ngot, nexp);
    }
    line_t *got = calloc(ngot + 1, sizeof(*got));
    for (size_t i = 0; i < ngot; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        got[i] = (line_t){r->value, r->value_len};
        assert_in_range(subtask_of(r), 0, p - 1);
    }
    qsort(expect, nexp, sizeof(*expect), line_cmp);
    qsort(got, ngot, sizeof(*got), line_cmp);
    for (size_t i = 0; i < nexp; i++) {
        if (line_cmp(&expect[i], &got[i]) != 0) {
            fail_msg("p=%d: line mismatch: got '%.*s', expected '%.*s'", p,
                     (int)got[i].n, got[i].p, (int)expect[i].n, expect[i].p);
        }
    }
    free(expect);
    free(got);
    return out;
}

static void test_text_file_split_exactly_once(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
    } files[] = {
        {"a\nb\nc\n", 6},
        {"a\nb\nc", 5},
        {"", 0},
        {"\n\n\n", 3},
        {"\n", 1},
        {"just one line", 13},
        {"x\r\ny\r\n\r\nz", 9},
        {"crlf\r\nend\r\n", 11},
        {"mid\rdle\n\r\n", 10},
        {"nul\0byte\nok\n", 12},
        {"ab\n\n\ncd\n\n", 9},
        {"a\nbb\nccc\ndddd\neeeee\nffffff\n", 27},
    };
    char dir[PATH_MAX];
    tu_tmpdir(dir, sizeof(dir));
    for (size_t f = 0; f < EDDY_ARRAY_SIZE(files); f++) {
        for (int p = 1; p <= 5; p++) {
            eddy_collection_destroy(
                read_text(dir, files[f].s, files[f].len, p));
        }
    }
    /* A line longer than each subtask's byte range. */
    size_t len = 2 + 3000 + 1 + 4;
    char *s = malloc(len + 1);
    memcpy(s, "s\n", 2);
    memset(s + 2, 'L', 3000);
    memcpy(s + 3002, "\nend\n", 5);
    for (int p = 1; p <= 5; p++) {
        eddy_collection_destroy(read_text(dir, s, len, p));
    }
    free(s);
    tu_rmtree(dir);
}

static void test_text_file_generated_contiguous(void **state)
{
    (void)state;
    /* Numbered lines of varying length, some CRLF: every subtask reads a
     * contiguous run of lines in order, and the runs follow subtask
     * order. */
    enum { LINES = 3000 };
    size_t cap = LINES * 80, n = 0;
    char *s = malloc(cap);
    uint64_t rng = 3;
    for (int i = 0; i < LINES; i++) {
        int pad = (int)(tu_rand(&rng) % 50);
        n += (size_t)snprintf(s + n, cap - n, "%d:%.*s%s", i, pad,
                              "................................................"
                              "..",
                              i % 7 == 0 ? "\r\n" : "\n");
    }
    char dir[PATH_MAX];
    tu_tmpdir(dir, sizeof(dir));
    for (int p = 1; p <= 5; p++) {
        eddy_collection_t *out = read_text(dir, s, n, p);
        int last[5] = {-1, -1, -1, -1, -1};
        int first[5] = {-1, -1, -1, -1, -1};
        int count[5] = {0};
        for (size_t i = 0; i < eddy_collection_count(out); i++) {
            const eddy_record_t *r = eddy_collection_get(out, i);
            int sub = subtask_of(r);
            int num = atoi(r->value);
            if (last[sub] >= 0) {
                assert_int_equal(num, last[sub] + 1);
            } else {
                first[sub] = num;
            }
            last[sub] = num;
            count[sub]++;
        }
        int next = 0;
        for (int sub = 0; sub < p; sub++) {
            if (count[sub] == 0) {
                continue;
            }
            assert_int_equal(first[sub], next);
            next = last[sub] + 1;
        }
        assert_int_equal(next, LINES);
        /* The byte ranges are balanced: nobody reads nearly everything. */
        for (int sub = 0; sub < p; sub++) {
            assert_true(count[sub] > LINES / p / 2);
        }
        eddy_collection_destroy(out);
    }
    free(s);
    tu_rmtree(dir);
}

static void test_text_file_errors(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX + 32], msg[2 * PATH_MAX];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/does-not-exist.txt", dir);

    eddy_env_t *env = eddy_env_new();
    eddy_sink_discard(eddy_source_text_file(env, path));
    snprintf(msg, sizeof(msg),
             "operator 'Source: TextFile' (subtask 1 of 1) failed: cannot "
             "open '%s': No such file or directory",
             path);
    run_expect_failure(env, EDDY_ERR_IO, msg);
    eddy_env_destroy(env);

    /* In parallel, whichever subtask reports first names the path. */
    env = eddy_env_new();
    eddy_env_set_parallelism(env, 3);
    eddy_sink_discard(eddy_source_text_file(env, path));
    eddy_error_t err;
    assert_int_equal(eddy_env_execute(env, &err), EDDY_ERR_IO);
    TU_ASSERT_CONTAINS(err.msg, " of 3) failed: cannot open '");
    TU_ASSERT_CONTAINS(err.msg, path);
    TU_ASSERT_CONTAINS(err.msg, "No such file or directory");
    eddy_env_destroy(env);

    /* A directory is not a text file. */
    env = eddy_env_new();
    eddy_sink_discard(eddy_source_text_file(env, dir));
    snprintf(msg, sizeof(msg),
             "operator 'Source: TextFile' (subtask 1 of 1) failed: cannot "
             "read '%s': is a directory",
             dir);
    run_expect_failure(env, EDDY_ERR_IO, msg);
    eddy_env_destroy(env);

    env = eddy_env_new();
    assert_null(eddy_source_text_file(env, ""));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_source_text_file: no path given");
    eddy_env_destroy(env);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collection_order_p1),
        cmocka_unit_test(test_collection_parallel),
        cmocka_unit_test(test_collection_keys_timestamps_empty),
        cmocka_unit_test(test_collection_empty_and_errors),
        cmocka_unit_test(test_generator_each_index_once),
        cmocka_unit_test(test_generator_rate_limit),
        cmocka_unit_test(test_generator_default_record),
        cmocka_unit_test(test_generator_errors),
        cmocka_unit_test(test_text_file_split_exactly_once),
        cmocka_unit_test(test_text_file_generated_contiguous),
        cmocka_unit_test(test_text_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
