/*
 * eddy — integration: the text file source and the print sink, byte exact.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * jobs/cat.so prints every line of a file. With parallelism 1 the output must
 * be the input with each "\n" or "\r\n" terminator turned into "\n" and a
 * final "\n" added to an unterminated last line. With parallelism N the file
 * is split into byte ranges; every line must still come out exactly once
 * (compared as sorted multisets) and unbroken. The input has empty lines,
 * CRLF, lines much longer than the reader's and the print sink's buffers,
 * and no trailing newline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#define RUN_TIMEOUT 30.0

static char *tmpdir;
static char *input_path;
static char *expected; /* the normalized text */
static size_t expected_len;

static void append(char **buf, size_t *len, size_t *cap, const char *s,
                   size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
        assert_non_null(*buf);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static int group_setup(void **state)
{
    (void)state;
    char *in = NULL, *big = NULL;
    size_t in_len = 0, in_cap = 0, exp_cap = 0;
    uint64_t x = 88172645463325252ULL;
    expected = NULL;
    expected_len = 0;
    tmpdir = integ_tmpdir_new();
    /* Lines up to 200 KiB: the print sink buffers 64 KiB per subtask. */
    big = malloc(200 * 1024 + 4);
    assert_non_null(big);
    for (int l = 0; l < 3000; l++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n;
        unsigned kind = (unsigned)(x % 100);
        if (kind < 10) {
            n = 0;
        } else if (kind < 12) {
            n = 70 * 1024 + (size_t)(x >> 40) % (130 * 1024);
        } else {
            n = 1 + (size_t)(x >> 32) % 120;
        }
        for (size_t i = 0; i < n; i++) {
            /* Printable text with tabs; no '\r' or '\n' inside a line. */
            big[i] = (char)(i % 61 == 60 ? '\t' : ' ' + (l * 7 + i) % 95);
        }
        if (l + 1 == 3000) {
            /* The last line is unterminated and not empty. */
            memcpy(big + n, "last", 4);
            n += 4;
        }
        append(&in, &in_len, &in_cap, big, n);
        append(&expected, &expected_len, &exp_cap, big, n);
        append(&expected, &expected_len, &exp_cap, "\n", 1);
        if (l + 1 < 3000) {
            bool crlf = (x >> 20) % 3 == 0;
            append(&in, &in_len, &in_cap, crlf ? "\r\n" : "\n", crlf ? 2 : 1);
        }
    }
    input_path = integ_path(tmpdir, "lines.txt");
    integ_write_file(input_path, in, in_len);
    free(in);
    free(big);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(expected);
    free(input_path);
    integ_tmpdir_remove(tmpdir);
    return 0;
}

/* Splits text into its lines (each with its '\n'), sorted. */
typedef struct line {
    const char *s;
    size_t n;
} line_t;

static int line_cmp(const void *a, const void *b)
{
    const line_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

static line_t *sorted_lines(const char *s, size_t len, size_t *count)
{
    size_t n = integ_count_lines(s, len), k = 0;
    line_t *lines = calloc(n + 1, sizeof(*lines));
    assert_non_null(lines);
    for (size_t pos = 0; pos < len && k < n; k++) {
        const char *nl = memchr(s + pos, '\n', len - pos);
        lines[k] = (line_t){s + pos, (size_t)(nl - (s + pos)) + 1};
        pos += lines[k].n;
    }
    qsort(lines, k, sizeof(*lines), line_cmp);
    *count = k;
    return lines;
}

static integ_proc_t *run_cat(const char *par)
{
    const char *argv[] = {EDDY_BIN, "run", "--local", CAT_SO,     "-q",
                          "-p",     par,   "--",      input_path, NULL};
    integ_proc_t *p = integ_run(argv, NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(p, 0);
    if (p->pr_err_len != 0) {
        print_error("expected nothing on stderr\n");
        integ_dump(p);
        fail();
    }
    return p;
}

static void in_order_with_one_subtask(void **state)
{
    (void)state;
    integ_proc_t *p = run_cat("1");
    if (p->pr_out_len != expected_len ||
        memcmp(p->pr_out, expected, expected_len) != 0) {
        size_t i = 0;
        while (i < p->pr_out_len && i < expected_len &&
               p->pr_out[i] == expected[i]) {
            i++;
        }
        print_error("output differs from the input at byte %zu (of %zu, "
                    "expected %zu)\n",
                    i, p->pr_out_len, expected_len);
        fail();
    }
    integ_proc_free(p);
}

static void every_line_once(const char *par)
{
    size_t ne, no;
    integ_proc_t *p = run_cat(par);
    line_t *want = sorted_lines(expected, expected_len, &ne);
    line_t *got = sorted_lines(p->pr_out, p->pr_out_len, &no);
    if (p->pr_out_len != expected_len || no != ne) {
        print_error("-p %s: %zu lines (%zu bytes), expected %zu (%zu bytes)\n",
                    par, no, p->pr_out_len, ne, expected_len);
        fail();
    }
    for (size_t i = 0; i < ne; i++) {
        if (line_cmp(&want[i], &got[i]) != 0) {
            print_error("-p %s: the lines differ from the input's (sorted "
                        "line %zu)\n",
                        par, i);
            fail();
        }
    }
    free(want);
    free(got);
    integ_proc_free(p);
}

static void split_between_subtasks(void **state)
{
    (void)state;
    every_line_once("2");
    every_line_once("3");
    every_line_once("8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order_with_one_subtask),
        cmocka_unit_test(split_between_subtasks),
    };
    return cmocka_run_group_tests_name("integ_text_lines", tests, group_setup,
                                       group_teardown);
}
