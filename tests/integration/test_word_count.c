/*
 * eddy — integration: examples/word_count.so through `eddy run --local`.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The test writes its own inputs (a few thousand generated lines with mixed
 * case, punctuation, digits, UTF-8, tabs, empty lines, CRLF and LF endings
 * and no trailing newline, plus small edge-case files), counts the words
 * itself with an independent tokenizer (maximal runs of ASCII letters and
 * digits, lower-cased), runs the real CLI at several parallelisms and checks
 * the output exactly:
 *   - every stdout line is "word<TAB>count", the word in [a-z0-9]+ and the
 *     count a positive decimal without leading zeros;
 *   - for every word the counts appear as 1, 2, ..., n in that order, with n
 *     the independent count (so nothing is lost, duplicated or reordered
 *     within a key, whatever the parallelism);
 *   - the number of lines equals the number of words in the input;
 *   - exit status 0, and stderr holds only the one-line job summary (or
 *     nothing with -q).
 *
 * The input generator is seeded (EDDY_TEST_SEED overrides the seed, which is
 * printed on failure), so a failure can be replayed.
 */
#include <stdbool.h>
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
#define MIXED_LINES 4000

/* ---- an independent word counter: string -> (expected, seen) ---- */

typedef struct wc_entry {
    char *word; /* NULL = empty slot */
    long expected;
    long seen;
} wc_entry_t;

typedef struct wc_table {
    wc_entry_t *slots;
    size_t cap; /* power of two */
    size_t used;
    long total; /* words in the input */
} wc_table_t;

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    }
    return h;
}

static void table_init(wc_table_t *t)
{
    t->cap = 1024;
    t->used = 0;
    t->total = 0;
    t->slots = calloc(t->cap, sizeof(wc_entry_t));
    assert_non_null(t->slots);
}

static void table_free(wc_table_t *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        free(t->slots[i].word);
    }
    free(t->slots);
    t->slots = NULL;
}

/* Finds the word's slot; with `add`, creates it if missing. */
static wc_entry_t *table_find(wc_table_t *t, const char *w, size_t n, bool add)
{
    if (add && (t->used + 1) * 2 > t->cap) {
        wc_table_t big = {calloc(t->cap * 2, sizeof(wc_entry_t)), t->cap * 2, 0,
                          t->total};
        assert_non_null(big.slots);
        for (size_t i = 0; i < t->cap; i++) {
            wc_entry_t *e = &t->slots[i];
            if (e->word != NULL) {
                size_t j = fnv1a(e->word, strlen(e->word)) & (big.cap - 1);
                while (big.slots[j].word != NULL) {
                    j = (j + 1) & (big.cap - 1);
                }
                big.slots[j] = *e;
                big.used++;
            }
        }
        free(t->slots);
        *t = big;
    }
    size_t j = fnv1a(w, n) & (t->cap - 1);
    while (t->slots[j].word != NULL) {
        if (strlen(t->slots[j].word) == n &&
            memcmp(t->slots[j].word, w, n) == 0) {
            return &t->slots[j];
        }
        j = (j + 1) & (t->cap - 1);
    }
    if (!add) {
        return NULL;
    }
    t->slots[j].word = strndup(w, n);
    assert_non_null(t->slots[j].word);
    t->used++;
    return &t->slots[j];
}

static bool is_alnum_ascii(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/* The reference tokenizer: line terminators are separators like any other
 * non-alphanumeric byte, so the whole file can be scanned at once. */
static void count_words(wc_table_t *t, const char *text, size_t len)
{
    char word[16384];
    size_t i = 0;
    while (i < len) {
        while (i < len && !is_alnum_ascii((unsigned char)text[i])) {
            i++;
        }
        size_t n = 0;
        while (i < len && is_alnum_ascii((unsigned char)text[i])) {
            unsigned char c = (unsigned char)text[i++];
            assert_true(n < sizeof(word));
            word[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        if (n > 0) {
            table_find(t, word, n, true)->expected++;
            t->total++;
        }
    }
}

/* ---- input generation ---- */

typedef struct text {
    char *buf;
    size_t len;
    size_t cap;
} text_t;

static void put(text_t *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        assert_non_null(t->buf);
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void puts_(text_t *t, const char *s)
{
    put(t, s, strlen(s));
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static const char *const vocabulary[] = {
    "the",   "stream", "Eddy",   "flink",  "window",  "state",     "KEY",
    "value", "record", "Map",    "reduce", "count",   "word",      "a",
    "I",     "river",  "water",  "flows",  "Under",   "bridge",    "x86",
    "2026",  "42",     "0",      "007",    "v2",      "utf8",      "HTTP",
    "json",  "Kafka",  "sink",   "source", "barrier", "epoch",     "q",
    "zebra", "Zz",     "abc123", "123abc", "MiXeD",   "camelCase", "snake",
    "case",  "end",    "begin",  "thread", "lock",    "queue",
};

static const char *const separators[] = {
    " ",  "  ",   "\t", ", ",  ". ",   "; ",       ": ",
    "! ", "? ",   "-",  "_",   "'",    "\"",       "(",
    ")",  " -- ", "/",  "...", " \t ", "\xc3\xa9", "\xe2\x80\x94",
    "@",  "#",    "+",  "=",   "[",    "]",        "*",
};

/* Flips the case of some letters, so the test sees every case mix. */
static void put_word(text_t *t, const char *w)
{
    char buf[64];
    size_t n = strlen(w);
    memcpy(buf, w, n);
    unsigned mode = pick(4);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (mode == 1 && c >= 'a' && c <= 'z') {
            buf[i] = (char)(c - 'a' + 'A');
        } else if (mode == 2 && pick(2) == 0) {
            if (c >= 'a' && c <= 'z') {
                buf[i] = (char)(c - 'a' + 'A');
            } else if (c >= 'A' && c <= 'Z') {
                buf[i] = (char)(c - 'A' + 'a');
            }
        }
    }
    put(t, buf, n);
}

static void generate_mixed(text_t *t, int lines)
{
    for (int l = 0; l < lines; l++) {
        unsigned kind = pick(100);
        if (kind < 6) {
            /* Empty line (LF or CRLF below). */
        } else if (kind < 8) {
            puts_(t, "  \t ,.;:!? -- ");
        } else if (kind < 9) {
            /* A long line: crosses the reader's buffers. */
            for (int i = 0; i < 900; i++) {
                put_word(t, vocabulary[pick(INTEG_ARRAY_SIZE(vocabulary))]);
                puts_(t, separators[pick(INTEG_ARRAY_SIZE(separators))]);
            }
        } else if (kind < 10) {
            /* A long word (a long key). */
            for (int i = 0; i < 300; i++) {
                put(t, &"abcdefghijKLMNOPQRST0123456789"[i % 30], 1);
            }
            puts_(t, " tail");
        } else {
            unsigned words = 1 + pick(12);
            if (pick(5) == 0) {
                puts_(t, separators[pick(INTEG_ARRAY_SIZE(separators))]);
            }
            for (unsigned i = 0; i < words; i++) {
                put_word(t, vocabulary[pick(INTEG_ARRAY_SIZE(vocabulary))]);
                if (i + 1 < words) {
                    puts_(t, separators[pick(INTEG_ARRAY_SIZE(separators))]);
                }
            }
            if (pick(3) == 0) {
                puts_(t, separators[pick(INTEG_ARRAY_SIZE(separators))]);
            }
        }
        if (l + 1 == lines) {
            /* The last line has no terminator. */
            puts_(t, " final Line");
        } else {
            puts_(t, pick(4) == 0 ? "\r\n" : "\n");
        }
    }
}

/* ---- fixture ---- */

typedef struct fixture {
    char *dir;
    char *mixed;    /* the generated file */
    char *crlf;     /* CRLF everywhere, with a trailing CRLF */
    char *empty;    /* 0 bytes */
    char *blank;    /* lines without words */
    char *tiny;     /* 3 bytes, fewer than most parallelisms */
    char *one_line; /* one line, no newline */
    uint64_t seed;
} fixture_t;

static fixture_t fx;

static char *write_input(const char *name, const char *data, size_t len)
{
    char *path = integ_path(fx.dir, name);
    integ_write_file(path, data, len);
    return path;
}

static char *write_str(const char *name, const char *data)
{
    return write_input(name, data, strlen(data));
}

static int group_setup(void **state)
{
    (void)state;
    const char *s = getenv("EDDY_TEST_SEED");
    fx.seed = s != NULL ? strtoull(s, NULL, 0) : 0x5eed2026ULL;
    rng_state = fx.seed != 0 ? fx.seed : 1;
    fx.dir = integ_tmpdir_new();

    text_t t = {NULL, 0, 0};
    generate_mixed(&t, MIXED_LINES);
    fx.mixed = write_input("mixed.txt", t.buf, t.len);
    t.len = 0;
    for (int l = 0; l < 500; l++) {
        for (unsigned i = 0, n = pick(8); i < n; i++) {
            put_word(&t, vocabulary[pick(INTEG_ARRAY_SIZE(vocabulary))]);
            puts_(&t, separators[pick(INTEG_ARRAY_SIZE(separators))]);
        }
        puts_(&t, "\r\n");
    }
    fx.crlf = write_input("crlf.txt", t.buf, t.len);
    free(t.buf);
    fx.empty = write_input("empty.txt", "", 0);
    fx.blank = write_str("blank.txt", "\n\r\n\n  \t\n.,;\r\n\n");
    fx.tiny = write_str("tiny.txt", "x\ny");
    fx.one_line = write_str("one_line.txt", "Only ONE line, no newline: one");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(fx.mixed);
    free(fx.crlf);
    free(fx.empty);
    free(fx.blank);
    free(fx.tiny);
    free(fx.one_line);
    integ_tmpdir_remove(fx.dir);
    return 0;
}

/* ---- checking the output ---- */

static void fail_output(const integ_proc_t *p, size_t line, const char *why)
{
    print_error("word count output line %zu: %s (input seed 0x%llx)\n",
                line + 1, why, (unsigned long long)fx.seed);
    integ_dump(p);
    fail();
}

static void check_output(const integ_proc_t *p, const char *input)
{
    wc_table_t t;
    FILE *f = fopen(input, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    table_init(&t);
    count_words(&t, text, (size_t)size);
    free(text);

    const char *out = p->pr_out;
    size_t len = p->pr_out_len, line = 0;
    if (len > 0 && out[len - 1] != '\n') {
        fail_output(p, integ_count_lines(out, len), "no final newline");
    }
    for (size_t pos = 0; pos < len; line++) {
        const char *nl = memchr(out + pos, '\n', len - pos);
        const char *tab = memchr(out + pos, '\t', (size_t)(nl - (out + pos)));
        if (tab == NULL || tab == out + pos) {
            fail_output(p, line, "not \"word<TAB>count\"");
        }
        size_t wlen = (size_t)(tab - (out + pos));
        for (const char *c = out + pos; c < tab; c++) {
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'))) {
                fail_output(p, line, "the word is not lower-case [a-z0-9]+");
            }
        }
        long count = 0;
        const char *c = tab + 1;
        if (c == nl || *c == '0') {
            fail_output(p, line, "the count is empty or has a leading zero");
        }
        for (; c < nl; c++) {
            if (*c < '0' || *c > '9' || count > 100000000) {
                fail_output(p, line, "the count is not a decimal number");
            }
            count = count * 10 + (*c - '0');
        }
        wc_entry_t *e = table_find(&t, out + pos, wlen, false);
        if (e == NULL) {
            fail_output(p, line, "a word that is not in the input");
        }
        if (count != e->seen + 1) {
            char why[128];
            snprintf(why, sizeof(why),
                     "count %ld follows %ld for this word (expected %ld)",
                     count, e->seen, e->seen + 1);
            fail_output(p, line, why);
        }
        if (count > e->expected) {
            fail_output(p, line, "more occurrences than in the input");
        }
        e->seen = count;
        pos = (size_t)(nl - out) + 1;
    }
    for (size_t i = 0; i < t.cap; i++) {
        wc_entry_t *e = &t.slots[i];
        if (e->word != NULL && e->seen != e->expected) {
            char why[256];
            snprintf(why, sizeof(why),
                     "word '%.64s' counted to %ld, the input has %ld", e->word,
                     e->seen, e->expected);
            fail_output(p, line, why);
        }
    }
    if ((long)line != t.total) {
        fail_output(p, line, "line count differs from the input's word count");
    }
    table_free(&t);
}

/* Success: exit 0 and exactly the summary line (or, quiet, nothing). */
static void check_success(const integ_proc_t *p, bool quiet)
{
    integ_assert_exit(p, 0);
    if (quiet) {
        if (p->pr_err_len != 0) {
            print_error("expected nothing on stderr with -q\n");
            integ_dump(p);
            fail();
        }
        return;
    }
    static const char prefix[] = "eddy run: job 'word-count' finished in ";
    if (integ_count_lines(p->pr_err, p->pr_err_len) != 1 ||
        strncmp(p->pr_err, prefix, sizeof(prefix) - 1) != 0 ||
        strcmp(p->pr_err + p->pr_err_len - 3, " s\n") != 0) {
        print_error("expected one summary line on stderr\n");
        integ_dump(p);
        fail();
    }
}

/* Runs word_count on `input` with the given flags between the job and "--". */
static void run_wc(const char *input, const char *const flags[], bool quiet)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = EDDY_BIN;
    argv[n++] = "run";
    argv[n++] = "--local";
    argv[n++] = WORD_COUNT_SO;
    for (int i = 0; flags != NULL && flags[i] != NULL; i++) {
        argv[n++] = flags[i];
    }
    argv[n++] = "--";
    argv[n++] = input;
    argv[n] = NULL;
    integ_proc_t *p = integ_run(argv, NULL, integ_timeout(RUN_TIMEOUT));
    check_success(p, quiet);
    check_output(p, input);
    integ_proc_free(p);
}

#define FLAGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- tests ---- */

static void mixed_p1(void **state)
{
    (void)state;
    run_wc(fx.mixed, FLAGS("-p", "1"), false);
}

static void mixed_p3(void **state)
{
    (void)state;
    run_wc(fx.mixed, FLAGS("-p", "3"), false);
}

static void mixed_p4(void **state)
{
    (void)state;
    run_wc(fx.mixed, FLAGS("-p", "4"), false);
}

static void mixed_p7(void **state)
{
    (void)state;
    run_wc(fx.mixed, FLAGS("-p", "7"), false);
}

static void mixed_default_parallelism(void **state)
{
    (void)state;
    run_wc(fx.mixed, NULL, false);
}

static void mixed_flag_spellings(void **state)
{
    (void)state;
    run_wc(fx.mixed, FLAGS("-p2", "-q"), true);
    run_wc(fx.mixed, FLAGS("--parallelism=5", "--quiet"), true);
    run_wc(fx.mixed, FLAGS("--parallelism", "6"), false);
}

static void crlf_p4(void **state)
{
    (void)state;
    run_wc(fx.crlf, FLAGS("-p", "4", "-q"), true);
}

static void empty_file(void **state)
{
    (void)state;
    run_wc(fx.empty, FLAGS("-p", "1"), false);
    run_wc(fx.empty, FLAGS("-p", "4"), false);
}

static void blank_lines_only(void **state)
{
    (void)state;
    run_wc(fx.blank, FLAGS("-p", "3"), false);
}

static void file_smaller_than_parallelism(void **state)
{
    (void)state;
    run_wc(fx.tiny, FLAGS("-p", "7"), false);
}

static void one_line_without_newline(void **state)
{
    (void)state;
    run_wc(fx.one_line, FLAGS("-p", "1"), false);
    run_wc(fx.one_line, FLAGS("-p", "4"), false);
}

/* A pipe cannot be split into byte ranges: one subtask reads it all, and
 * the result is the same. */
static void stdin_pipe(void **state)
{
    (void)state;
    static const char input[] = "Pipes: cannot SEEK, cannot split\r\n"
                                "so subtask 1 reads the pipe\n\n"
                                "and the others read nothing; pipes!";
    char *copy = write_str("stdin.txt", input);
    const char *argv[] = {EDDY_BIN, "run", "--local",    WORD_COUNT_SO, "-p",
                          "3",      "--",  "/dev/stdin", NULL};
    integ_proc_t *p = integ_spawn_input(argv, NULL, input, sizeof(input) - 1);
    integ_finish(p, integ_timeout(RUN_TIMEOUT));
    check_success(p, false);
    check_output(p, copy);
    integ_proc_free(p);
    free(copy);
}

/* A missing input is a job failure, not a crash: exit 1, one line naming the
 * source operator and the file. */
static void missing_input(void **state)
{
    (void)state;
    char *path = integ_path(fx.dir, "no-such-input.txt");
    const char *argv[] = {EDDY_BIN, "run", "--local", WORD_COUNT_SO, "-p",
                          "2",      "--",  path,      NULL};
    integ_proc_t *p = integ_run(argv, NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_error(p, 1,
                       (const char *const[]){
                           "eddy run: job 'word-count' failed",
                           "operator 'lines'", "subtask", "no-such-input.txt",
                           "No such file or directory", NULL});
    integ_proc_free(p);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mixed_p1),
        cmocka_unit_test(mixed_p3),
        cmocka_unit_test(mixed_p4),
        cmocka_unit_test(mixed_p7),
        cmocka_unit_test(mixed_default_parallelism),
        cmocka_unit_test(mixed_flag_spellings),
        cmocka_unit_test(crlf_p4),
        cmocka_unit_test(empty_file),
        cmocka_unit_test(blank_lines_only),
        cmocka_unit_test(file_smaller_than_parallelism),
        cmocka_unit_test(one_line_without_newline),
        cmocka_unit_test(stdin_pipe),
        cmocka_unit_test(missing_input),
    };
    return cmocka_run_group_tests_name("integ_word_count", tests, group_setup,
                                       group_teardown);
}
