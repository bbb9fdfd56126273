/*
 * eddy — unit tests for src/connectors/sinks.c: collect, file, print and
 * discard sinks.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
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

/* "line<i>" for i in 0..n-1, as a strings array. */
typedef struct lines {
    char (*buf)[32];
    const char **ptrs;
    size_t n;
} lines_t;

static lines_t make_lines(size_t n)
{
    lines_t l = {calloc(n + 1, 32), calloc(n + 1, sizeof(char *)), n};
    for (size_t i = 0; i < n; i++) {
        if (i % 10 == 9) {
            l.buf[i][0] = '\0'; /* some empty lines */
        } else {
            snprintf(l.buf[i], 32, "line%zu", i);
        }
        l.ptrs[i] = l.buf[i];
    }
    return l;
}

static void free_lines(lines_t *l)
{
    free(l->buf);
    free(l->ptrs);
}

/* The expected file content: every line followed by '\n'. */
static char *joined(const lines_t *l, size_t *len)
{
    size_t cap = l->n * 32 + 1, n = 0;
    char *s = malloc(cap);
    for (size_t i = 0; i < l->n; i++) {
        n += (size_t)snprintf(s + n, cap - n, "%s\n", l->ptrs[i]);
    }
    *len = n;
    return s;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits text into lines (each must end with '\n') and sorts them. */
static char **sorted_lines(char *text, size_t len, size_t *n)
{
    char **v = calloc(len + 1, sizeof(char *));
    size_t k = 0;
    char *p = text;
    while (p < text + len) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        assert_non_null(nl);
        *nl = '\0';
        v[k++] = p;
        p = nl + 1;
    }
    qsort(v, k, sizeof(char *), str_cmp);
    *n = k;
    return v;
}

static void assert_same_lines(char *got, size_t glen, char *expect, size_t elen)
{
    size_t ng, ne;
    char **g = sorted_lines(got, glen, &ng);
    char **e = sorted_lines(expect, elen, &ne);
    assert_int_equal(ng, ne);
    for (size_t i = 0; i < ng; i++) {
        assert_string_equal(g[i], e[i]);
    }
    free(g);
    free(e);
}

/* ---- collect ---- */

static void test_collect_copies_and_terminates(void **state)
{
    (void)state;
    eddy_collection_t *c = eddy_collection_new();
    assert_int_equal(eddy_collection_count(c), 0);
    assert_null(eddy_collection_get(c, 0));
    char key[] = {'a', 'b'}; /* not NUL-terminated */
    char val[] = {'x', 'y', 'z'};
    eddy_record_t recs[] = {
        {key, 2, val, 3, 5},
        {NULL, 0, val, 0, EDDY_TS_NONE},
        {key, 0, val, 1, EDDY_TS_NONE},
    };
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *src = eddy_source_collection(env, recs, 3);
    /* Two sinks may share one collection. */
    eddy_sink_collect(src, c);
    eddy_sink_collect(src, c);
    EXECUTE_OK(env);
    eddy_env_destroy(env); /* the records outlive the job */
    assert_int_equal(eddy_collection_count(c), 6);
    int seen[3] = {0};
    for (size_t i = 0; i < 6; i++) {
        const eddy_record_t *r = eddy_collection_get(c, i);
        if (r->key != NULL && r->key_len == 2) {
            assert_string_equal(r->key, "ab");
            assert_string_equal(r->value, "xyz");
            assert_true(r->ts == 5);
            seen[0]++;
        } else if (r->key == NULL) {
            assert_string_equal(r->value, "");
            seen[1]++;
        } else {
            assert_int_equal(r->key_len, 0);
            assert_string_equal(r->key, "");
            assert_string_equal(r->value, "x");
            seen[2]++;
        }
    }
    assert_int_equal(seen[0], 2);
    assert_int_equal(seen[1], 2);
    assert_int_equal(seen[2], 2);
    assert_null(eddy_collection_get(c, 6));
    eddy_collection_destroy(c);
    eddy_collection_destroy(NULL);
}

static void test_sink_builder_errors(void **state)
{
    (void)state;
    const char *const in[] = {"a"};
    eddy_env_t *env = eddy_env_new();
    assert_null(eddy_sink_collect(eddy_source_strings(env, in, 1), NULL));
    run_expect_failure(env, EDDY_ERR_INVALID,
                       "eddy_sink_collect: collection is NULL");
    eddy_env_destroy(env);

    env = eddy_env_new();
    assert_null(eddy_sink_file(eddy_source_strings(env, in, 1), ""));
    run_expect_failure(env, EDDY_ERR_INVALID, "eddy_sink_file: no path given");
    eddy_env_destroy(env);

    assert_null(eddy_sink_print(NULL));
    assert_null(eddy_sink_discard(NULL));
    assert_null(eddy_sink_file(NULL, "x"));
    assert_null(eddy_sink_collect(NULL, NULL));
}

/* ---- file ---- */

static void test_file_sink_single(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX + 16];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/out.txt", dir);
    /* An existing file is replaced. */
    tu_write_file(path, "old content that is longer than the new one\n", 44);
    lines_t l = make_lines(5000);
    eddy_env_t *env = eddy_env_new();
    eddy_sink_file(eddy_source_strings(env, l.ptrs, l.n), path);
    EXECUTE_OK(env);
    eddy_env_destroy(env);
    size_t glen, elen;
    char *got = tu_read_file(path, &glen);
    char *expect = joined(&l, &elen);
    /* Parallelism 1: the exact bytes, in order. */
    TU_ASSERT_BYTES(got, glen, expect, elen);
    free(got);
    free(expect);
    free_lines(&l);
    tu_rmtree(dir);
}

static void test_file_sink_parallel_parts(void **state)
{
    (void)state;
    enum { P = 3 };
    char dir[PATH_MAX], path[PATH_MAX + 16];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/out", dir);
    lines_t l = make_lines(3001);
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *src = eddy_source_strings(env, l.ptrs, l.n);
    eddy_parallelism(eddy_sink_file(eddy_rebalance(src), path), P);
    EXECUTE_OK(env);
    eddy_env_destroy(env);
    /* A directory holding part-0 .. part-2 and nothing else. */
    DIR *d = opendir(path);
    assert_non_null(d);
    int entries = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            entries++;
        }
    }
    closedir(d);
    assert_int_equal(entries, P);
    size_t total = 0, cap = 1 << 20;
    char *all = malloc(cap);
    for (int i = 0; i < P; i++) {
        char part[PATH_MAX + 32];
        snprintf(part, sizeof(part), "%s/part-%d", path, i);
        size_t len;
        char *s = tu_read_file(part, &len);
        /* Round robin: each part holds a third of the lines. */
        size_t nl = 0;
        for (size_t k = 0; k < len; k++) {
            nl += s[k] == '\n';
        }
        assert_in_range(nl, 1000, 1001);
        assert_true(total + len < cap);
        memcpy(all + total, s, len);
        total += len;
        free(s);
    }
    size_t elen;
    char *expect = joined(&l, &elen);
    assert_same_lines(all, total, expect, elen);
    free(all);
    free(expect);
    free_lines(&l);
    tu_rmtree(dir);
}

static void test_file_sink_unwritable(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX + 32], msg[2 * PATH_MAX];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/missing/out.txt", dir);
    const char *const in[] = {"a"};
    eddy_env_t *env = eddy_env_new();
    eddy_sink_file(eddy_source_strings(env, in, 1), path);
    snprintf(msg, sizeof(msg),
             "operator 'Sink: File' (subtask 1 of 1) failed: cannot open '%s' "
             "for writing: No such file or directory",
             path);
    run_expect_failure(env, EDDY_ERR_IO, msg);
    eddy_env_destroy(env);
    tu_rmtree(dir);
}

/* ---- print ---- */

/* Runs the job with stdout redirected into `path`. */
static int execute_capturing_stdout(eddy_env_t *env, const char *path,
                                    eddy_error_t *err)
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || fd < 0 || dup2(fd, STDOUT_FILENO) < 0) {
        return -1000;
    }
    close(fd);
    int rc = eddy_env_execute(env, err);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    return rc;
}

static void test_print_sink(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX + 16];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/stdout.txt", dir);
    lines_t l = make_lines(20000);
    /* A line far larger than the print buffer, written whole. */
    char *huge = malloc(200001);
    memset(huge, 'H', 200000);
    huge[200000] = '\0';
    l.ptrs[7] = huge;

    /* Parallelism 1: exact output. */
    eddy_env_t *env = eddy_env_new();
    eddy_sink_print(eddy_source_strings(env, l.ptrs, l.n));
    eddy_error_t err;
    TU_ASSERT_OK(execute_capturing_stdout(env, path, &err), &err);
    eddy_env_destroy(env);
    size_t glen, elen;
    char *got = tu_read_file(path, &glen);
    size_t cap = l.n * 32 + 200002, n = 0;
    char *expect = malloc(cap);
    for (size_t i = 0; i < l.n; i++) {
        n += (size_t)snprintf(expect + n, cap - n, "%s\n", l.ptrs[i]);
    }
    elen = n;
    TU_ASSERT_BYTES(got, glen, expect, elen);
    free(got);

    /* Parallelism 3: lines never interleave, all are there. */
    env = eddy_env_new();
    eddy_parallelism(
        eddy_sink_print(eddy_rebalance(eddy_source_strings(env, l.ptrs, l.n))),
        3);
    TU_ASSERT_OK(execute_capturing_stdout(env, path, &err), &err);
    eddy_env_destroy(env);
    got = tu_read_file(path, &glen);
    assert_same_lines(got, glen, expect, elen);
    free(got);
    free(expect);
    free(huge);
    free_lines(&l);
    tu_rmtree(dir);
}

/* Emits an empty value as a NULL pointer with length 0. */
static int null_value(eddy_ctx_t *ctx, const eddy_record_t *in,
                      eddy_record_t *out, void *opaque)
{
    (void)ctx;
    (void)opaque;
    if (in->value_len > 0 && ((const char *)in->value)[0] == '-') {
        out->value = NULL;
        out->value_len = 0;
    }
    return 0;
}

static void test_sinks_accept_null_empty_values(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX + 16], out_path[PATH_MAX + 16];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/stdout.txt", dir);
    snprintf(out_path, sizeof(out_path), "%s/file.txt", dir);
    const char *const in[] = {"a", "-", "b", "-"};
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *c = eddy_collection_new();
    eddy_stream_t *m =
        eddy_map(eddy_source_strings(env, in, 4), null_value, NULL);
    eddy_sink_print(m);
    eddy_sink_file(m, out_path);
    eddy_sink_collect(m, c);
    eddy_sink_discard(m);
    eddy_error_t err;
    TU_ASSERT_OK(execute_capturing_stdout(env, path, &err), &err);
    eddy_env_destroy(env);
    size_t len;
    char *got = tu_read_file(path, &len);
    TU_ASSERT_BYTES(got, len, "a\n\nb\n\n", 6);
    free(got);
    got = tu_read_file(out_path, &len);
    TU_ASSERT_BYTES(got, len, "a\n\nb\n\n", 6);
    free(got);
    assert_int_equal(eddy_collection_count(c), 4);
    assert_string_equal(tu_coll_str(c, 1), "");
    assert_string_equal(tu_coll_str(c, 3), "");
    eddy_collection_destroy(c);
    tu_rmtree(dir);
}

static void test_discard_sink(void **state)
{
    (void)state;
    lines_t l = make_lines(1000);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_stream_t *s = eddy_sink_discard(eddy_source_strings(env, l.ptrs, l.n));
    assert_non_null(s);
    assert_non_null(eddy_name(s, "Drop"));
    EXECUTE_OK(env);
    eddy_env_destroy(env);
    free_lines(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collect_copies_and_terminates),
        cmocka_unit_test(test_sink_builder_errors),
        cmocka_unit_test(test_file_sink_single),
        cmocka_unit_test(test_file_sink_parallel_parts),
        cmocka_unit_test(test_file_sink_unwritable),
        cmocka_unit_test(test_print_sink),
        cmocka_unit_test(test_sinks_accept_null_empty_values),
        cmocka_unit_test(test_discard_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
