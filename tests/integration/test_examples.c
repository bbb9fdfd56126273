/*
 * eddy — integration: the event-time, state, window and join examples
 * through `eddy run --local`.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Covered: word_count.so --event-time, windowed_aggregation.so,
 * stateful_deduplication.so, stream_join.so and weather_demo.so (the header
 * comment of each example states the semantics checked here).
 *
 * Every test builds its input as an array of records: a hand-written part
 * with the edge cases (window boundaries, records exactly at the watermark,
 * out-of-order records that are still on time, records late by a little and
 * by a lot, empty lines, odd keys) followed by a generated part (seeded,
 * EDDY_TEST_SEED overrides; the seed is printed on failure) with random
 * out-of-order jitter and occasional records far behind. It writes the
 * input file, computes the expected output from the array with a
 * straightforward reimplementation of the documented semantics (per record
 * in file order: the watermark left by the records before it, the windows
 * the record belongs to, lateness), runs the real CLI at parallelism 1 and
 * 4 (and 3 for some), sorts stdout's lines (parallel subtasks interleave)
 * and compares them with the sorted expected lines, exactly. Runs must exit
 * 0 with the one-line job summary on stderr.
 *
 * The outputs are deterministic by design of the examples: their sources,
 * parsers and watermark generators run at parallelism 1 with punctuated
 * watermarks (after every record: max timestamp so far - 5000 - 1), so
 * lateness depends on the file's order only, not on timing; stream_join
 * decides lateness per input for the same reason.
 *
 * Malformed input fails the job with exit status 1 and one stderr line
 * quoting the line; a bad usage fails the build.
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

#define RUN_TIMEOUT 60.0
#define BOUND_MS 5000 /* the examples' out-of-orderness bound */
#define BASE_TS 1700000000000LL

/* ---- random numbers (seeded, replayable) ---- */

static uint64_t seed;
static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static int64_t pick(int64_t n)
{
    return (int64_t)(rnd() % (uint64_t)n);
}

/* Next timestamp of a generated stream: a clock moving forward by up to
 * `step` ms, most records on it, some behind it by up to 9 s (out of order;
 * beyond the 5 s bound some are late), a few far behind (late). */
static int64_t next_ts(int64_t *clock, int64_t step)
{
    *clock += pick(step);
    int64_t r = pick(100);
    int64_t ts = *clock;
    if (r < 3) {
        ts -= 40000 + pick(200000);
    } else if (r < 30) {
        ts -= pick(9000);
    }
    return ts < 0 ? 0 : ts;
}

/* ---- growable text and line lists ---- */

typedef struct text {
    char *buf;
    size_t len;
    size_t cap;
} text_t;

static void text_printf(text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void text_printf(text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n =
            vsnprintf(t->buf != NULL ? t->buf + t->len : NULL, room, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        assert_non_null(t->buf);
    }
}

typedef struct lines {
    char **v;
    size_t n;
    size_t cap;
} lines_t;

static void lines_add(lines_t *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(char *));
        assert_non_null(l->v);
    }
    l->v[l->n] = strndup(s, n);
    assert_non_null(l->v[l->n]);
    l->n++;
}

static void lines_printf(lines_t *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void lines_printf(lines_t *l, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(buf));
    lines_add(l, buf, (size_t)n);
}

static void lines_free(lines_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lines_sort(lines_t *l)
{
    if (l->n > 1) {
        qsort(l->v, l->n, sizeof(char *), cmp_str);
    }
}

/* ---- fixture ---- */

static char *dir;

static int group_setup(void **state)
{
    (void)state;
    const char *s = getenv("EDDY_TEST_SEED");
    seed = s != NULL ? strtoull(s, NULL, 0) : 0xe7e27715ULL;
    dir = integ_tmpdir_new();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (getenv("EDDY_TEST_KEEP") != NULL) {
        /* For debugging: keep the inputs. */
        print_message("inputs kept in %s\n", dir);
        free(dir);
        return 0;
    }
    integ_tmpdir_remove(dir);
    return 0;
}

/* Every test starts from the seed, so each replays on its own. */
static int test_setup(void **state)
{
    (void)state;
    rng_state = seed != 0 ? seed : 1;
    return 0;
}

static char *write_input(const char *name, const text_t *t)
{
    char *path = integ_path(dir, name);
    integ_write_file(path, t->buf != NULL ? t->buf : "", t->len);
    return path;
}

/* ---- running the examples ---- */

/* Runs `eddy run --local SO -p PAR -q? -- ARGS...` and waits for it. */
static integ_proc_t *run_example(const char *so, const char *par,
                                 const char *const args[])
{
    const char *argv[16];
    int n = 0;
    argv[n++] = EDDY_BIN;
    argv[n++] = "run";
    argv[n++] = "--local";
    argv[n++] = so;
    if (par != NULL) {
        argv[n++] = "-p";
        argv[n++] = par;
    }
    argv[n++] = "--";
    for (int i = 0; args[i] != NULL; i++) {
        assert_true(n < 15);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    return integ_run(argv, NULL, integ_timeout(RUN_TIMEOUT));
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Exit 0 and exactly the summary line on stderr. */
static void check_success(const integ_proc_t *p, const char *job)
{
    integ_assert_exit(p, 0);
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "eddy run: job '%s' finished in ", job);
    if (integ_count_lines(p->pr_err, p->pr_err_len) != 1 ||
        strncmp(p->pr_err, prefix, strlen(prefix)) != 0) {
        print_error("expected one summary line on stderr\n");
        integ_dump(p);
        fail();
    }
    if (p->pr_out_len > 0 && p->pr_out[p->pr_out_len - 1] != '\n') {
        print_error("stdout does not end with a newline\n");
        integ_dump(p);
        fail();
    }
}

/* Compares stdout's lines, sorted, with the expected lines, sorted. */
static void check_lines(const integ_proc_t *p, lines_t *expected)
{
    lines_t got = {0};
    const char *out = p->pr_out;
    for (size_t pos = 0; pos < p->pr_out_len;) {
        const char *nl = memchr(out + pos, '\n', p->pr_out_len - pos);
        assert_non_null(nl);
        lines_add(&got, out + pos, (size_t)(nl - (out + pos)));
        pos = (size_t)(nl - out) + 1;
    }
    lines_sort(&got);
    lines_sort(expected);
    size_t i = 0, j = 0, shown = 0, diffs = 0;
    while (i < got.n || j < expected->n) {
        int c = i == got.n         ? 1
                : j == expected->n ? -1
                                   : strcmp(got.v[i], expected->v[j]);
        if (c == 0) {
            i++;
            j++;
            continue;
        }
        diffs++;
        if (shown++ < 12) {
            print_error("  %s: %s\n", c < 0 ? "unexpected" : "missing   ",
                        c < 0 ? got.v[i] : expected->v[j]);
        }
        if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    if (diffs != 0) {
        print_error("%zu lines differ: got %zu lines, expected %zu (input "
                    "seed 0x%llx)\n",
                    diffs, got.n, expected->n, (unsigned long long)seed);
        integ_dump(p);
        lines_free(&got);
        fail();
    }
    lines_free(&got);
}

/* Runs the example at parallelism 1, 3 and 4 and checks each output. */
static void run_and_check(const char *so, const char *job,
                          const char *const args[], lines_t *expected)
{
    static const char *const pars[] = {"1", "4", "3"};
    for (size_t k = 0; k < INTEG_ARRAY_SIZE(pars); k++) {
        integ_proc_t *p = run_example(so, pars[k], args);
        check_success(p, job);
        check_lines(p, expected);
        integ_proc_free(p);
    }
}

/* A file holding `content` fails the job with one line quoting `quoted`. */
static void check_malformed(const char *so, const char *job, const char *flag,
                            const char *name, const char *content,
                            const char *quoted, const char *reason)
{
    text_t t = {0};
    text_printf(&t, "%s", content);
    char *path = write_input(name, &t);
    free(t.buf);
    char failed[128], quote[256];
    snprintf(failed, sizeof(failed), "eddy run: job '%s' failed", job);
    snprintf(quote, sizeof(quote), "malformed line \"%s\": ", quoted);
    integ_proc_t *p = flag != NULL ? run_example(so, "2", ARGS(flag, path))
                                   : run_example(so, "2", ARGS(path));
    integ_assert_error(
        p, 1,
        (const char *const[]){failed, "operator 'parse", quote, reason, NULL});
    integ_proc_free(p);
    free(path);
}

/* ---- reference helpers ---- */

/* The watermark the examples' generators have emitted after a prefix of a
 * file: max timestamp - BOUND - 1, or none before the first record. */
typedef struct wm {
    bool seen;
    int64_t max_ts;
} wm_t;

static int64_t wm_value(const wm_t *w)
{
    return w->seen ? w->max_ts - BOUND_MS - 1 : INT64_MIN;
}

static void wm_observe(wm_t *w, int64_t ts)
{
    if (!w->seen || ts > w->max_ts) {
        w->max_ts = ts;
        w->seen = true;
    }
}

static int64_t floor_to(int64_t ts, int64_t size)
{
    int64_t r = ts % size;
    return r < 0 ? ts - r - size : ts - r;
}

/* One value in a (window, key) group. */
typedef struct item {
    int64_t start;
    char key[48];
    int64_t value;
} item_t;

typedef struct items {
    item_t *v;
    size_t n;
    size_t cap;
} items_t;

static void items_add(items_t *it, int64_t start, const char *key, size_t len,
                      int64_t value)
{
    if (it->n == it->cap) {
        it->cap = it->cap ? it->cap * 2 : 256;
        it->v = realloc(it->v, it->cap * sizeof(item_t));
        assert_non_null(it->v);
    }
    item_t *x = &it->v[it->n++];
    assert_true(len < sizeof(x->key));
    memset(x, 0, sizeof(*x));
    x->start = start;
    memcpy(x->key, key, len);
    x->value = value;
}

static int cmp_item(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if (x->start != y->start) {
        return x->start < y->start ? -1 : 1;
    }
    return strcmp(x->key, y->key);
}

/* Sorts the items so each (window, key) group is a run; returns the length
 * of the run starting at `i`. */
static size_t group_len(const items_t *it, size_t i)
{
    size_t j = i + 1;
    while (j < it->n && cmp_item(&it->v[i], &it->v[j]) == 0) {
        j++;
    }
    return j - i;
}

/* num / den (den > 0) in hundredths, rounded half away from zero, printed
 * with two decimals, using 128-bit arithmetic (not the examples' method). */
static void hundredths(char *buf, size_t cap, __int128 num, __int128 den)
{
    __int128 scaled = num * 100;
    __int128 q = scaled / den, r = scaled % den;
    if (r < 0) {
        r = -r;
    }
    if (2 * r >= den) {
        q += scaled < 0 ? -1 : 1;
    }
    bool neg = q < 0;
    if (neg) {
        q = -q;
    }
    snprintf(buf, cap, "%s%llu.%02u", neg ? "-" : "",
             (unsigned long long)(q / 100), (unsigned)(q % 100));
}

/* ======================================================================
 * word_count.so -- --event-time FILE
 * ====================================================================== */

typedef struct wline {
    int64_t ts; /* -1: an empty line */
    const char *sep;
    char text[160];
} wline_t;

static bool is_alnum_ascii(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

static const char *const vocab[] = {
    "the",  "Stream", "EDDY",  "flink", "window", "water", "x86", "42",
    "late", "On",     "time",  "a",     "River",  "zz",    "007", "event",
    "wAtE", "mark",   "Tumb1", "q",     "KEY",    "ok",
};

static void wc_expected(const wline_t *lines, size_t n, lines_t *exp)
{
    items_t occ = {0};
    wm_t wm = {0};
    for (size_t i = 0; i < n; i++) {
        const wline_t *l = &lines[i];
        if (l->ts < 0) {
            continue;
        }
        int64_t start = floor_to(l->ts, 10000);
        bool late = start + 10000 - 1 <= wm_value(&wm);
        for (size_t k = 0; l->text[k] != '\0' && !late;) {
            while (l->text[k] != '\0' &&
                   !is_alnum_ascii((unsigned char)l->text[k])) {
                k++;
            }
            char word[48];
            size_t w = 0;
            while (is_alnum_ascii((unsigned char)l->text[k])) {
                char c = l->text[k++];
                word[w++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            }
            if (w > 0) {
                items_add(&occ, start, word, w, 1);
            }
        }
        wm_observe(&wm, l->ts);
    }
    if (occ.n > 0) {
        qsort(occ.v, occ.n, sizeof(item_t), cmp_item);
    }
    for (size_t i = 0; i < occ.n;) {
        size_t g = group_len(&occ, i);
        lines_printf(exp, "%lld\t%s\t%zu", (long long)occ.v[i].start,
                     occ.v[i].key, g);
        i += g;
    }
    free(occ.v);
}

static void word_count_event_time(void **state)
{
    (void)state;
    static const wline_t fixed[] = {
        {1000, " ", "Hello world, hello!"},
        {9999, " ", "edge of window zero"},
        {10000, " ", "first of window one"},
        {3000, " ", "out of order but on time: hello"},
        {14999, "\t", "tab separated, wm now 9998"},
        {2000, " ", "still on time hello"},
        {15000, " ", "wm now 9999"},
        {9999, " ", "late at exactly the watermark"},
        {5, " ", "very late hello"},
        {-1, "", ""},
        {16000, "", ""},
        {16001, " ", ""},
        {17000, " ", "  ...  "},
        {19999, " ", "MiXeD CaSe mixed case MIXED"},
        {20000, " ", "window two"},
        {24999, " ", "x"},
        {19999, " ", "on time: the watermark is 19998"},
        {25001, " ", "y"},
        {12000, " ", "late: the watermark is 20000"},
        {1000000, " ", "far ahead"},
        {989999, " ", "window 980000 ends at 989999: late"},
        {990000, " ", "window 990000: on time"},
    };
    size_t nfixed = INTEG_ARRAY_SIZE(fixed), ngen = 1500;
    wline_t *lines = calloc(nfixed + ngen, sizeof(wline_t));
    assert_non_null(lines);
    memcpy(lines, fixed, sizeof(fixed));
    int64_t clock = BASE_TS;
    for (size_t i = nfixed; i < nfixed + ngen; i++) {
        wline_t *l = &lines[i];
        if (pick(40) == 0) {
            l->ts = -1;
            continue;
        }
        l->ts = next_ts(&clock, 300);
        l->sep = pick(5) == 0 ? "\t" : " ";
        size_t len = 0;
        for (int64_t w = pick(7); w > 0; w--) {
            const char *word = vocab[pick(INTEG_ARRAY_SIZE(vocab))];
            len += (size_t)snprintf(l->text + len, sizeof(l->text) - len,
                                    "%s%s", word, pick(3) == 0 ? ", " : " ");
        }
    }
    text_t t = {0};
    for (size_t i = 0; i < nfixed + ngen; i++) {
        if (lines[i].ts >= 0) {
            text_printf(&t, "%lld%s%s", (long long)lines[i].ts, lines[i].sep,
                        lines[i].text);
        }
        text_printf(&t, "\n");
    }
    char *path = write_input("wc_event_time.txt", &t);
    free(t.buf);
    lines_t exp = {0};
    wc_expected(lines, nfixed + ngen, &exp);
    assert_true(exp.n > 100);
    run_and_check(WORD_COUNT_SO, "word-count", ARGS("--event-time", path),
                  &exp);
    lines_free(&exp);
    free(lines);
    free(path);
}

static void word_count_event_time_edge_files(void **state)
{
    (void)state;
    text_t t = {0};
    char *empty = write_input("wc_empty.txt", &t);
    lines_t exp = {0};
    run_and_check(WORD_COUNT_SO, "word-count", ARGS("--event-time", empty),
                  &exp);
    /* Lines without words, a CRLF ending, no final newline. */
    text_printf(&t, "\n5\n6 \r\n7 ...\n8 Last words");
    char *blank = write_input("wc_blank.txt", &t);
    lines_printf(&exp, "0\tlast\t1");
    lines_printf(&exp, "0\twords\t1");
    run_and_check(WORD_COUNT_SO, "word-count", ARGS("--event-time", blank),
                  &exp);
    lines_free(&exp);
    free(t.buf);
    free(empty);
    free(blank);
}

static void word_count_event_time_malformed(void **state)
{
    (void)state;
    check_malformed(WORD_COUNT_SO, "word-count", "--event-time", "wc_bad1.txt",
                    "\nno timestamp here\n", "no timestamp here",
                    "expected \"<timestamp_ms> <text>\"");
    check_malformed(WORD_COUNT_SO, "word-count", "--event-time", "wc_bad2.txt",
                    "12x words\n", "12x words", "followed by a space or a tab");
    check_malformed(WORD_COUNT_SO, "word-count", "--event-time", "wc_bad3.txt",
                    "1234567890123456 too long\n", "1234567890123456 too long",
                    "more than 15 digits");
}

/* ======================================================================
 * windowed_aggregation.so -- FILE
 * ====================================================================== */

typedef struct agg_rec {
    int64_t ts; /* -1: an empty line */
    const char *key;
    int64_t value;
} agg_rec_t;

static void agg_expected(const agg_rec_t *recs, size_t n, lines_t *exp)
{
    items_t in_windows = {0};
    wm_t wm = {0};
    for (size_t i = 0; i < n; i++) {
        const agg_rec_t *r = &recs[i];
        if (r->ts < 0) {
            continue;
        }
        /* The windows of 30 s every 10 s holding the record. */
        for (int64_t s = floor_to(r->ts, 10000); s > r->ts - 30000;
             s -= 10000) {
            if (s + 30000 - 1 > wm_value(&wm)) {
                items_add(&in_windows, s, r->key, strlen(r->key), r->value);
            }
        }
        wm_observe(&wm, r->ts);
    }
    if (in_windows.n > 0) {
        qsort(in_windows.v, in_windows.n, sizeof(item_t), cmp_item);
    }
    for (size_t i = 0; i < in_windows.n;) {
        size_t g = group_len(&in_windows, i);
        __int128 sum = 0;
        int64_t mn = INT64_MAX, mx = INT64_MIN;
        for (size_t k = i; k < i + g; k++) {
            int64_t v = in_windows.v[k].value;
            sum += v;
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
        char avg[64];
        hundredths(avg, sizeof(avg), sum, (__int128)g);
        const item_t *x = &in_windows.v[i];
        lines_printf(exp, "%lld,%lld,%s,%zu,%lld,%lld,%s", (long long)x->start,
                     (long long)(x->start + 30000), x->key, g, (long long)mn,
                     (long long)mx, avg);
        i += g;
    }
    free(in_windows.v);
}

static void windowed_aggregation(void **state)
{
    (void)state;
    static const agg_rec_t fixed[] = {
        /* Near 0: windows starting at -20000 and -10000 too. */
        {0, "a", 1},
        {9999, "a", 2},
        {10000, "a", -4},
        {-1, NULL, 0},
        {3000, "key with spaces", 7},
        {14000, "b", 5},
        {1000, "b", 6}, /* wm 8999: on time for all its windows */
        {20000, "a", 10},
        {14998, "b", 1}, /* wm 14999: on time, 19999 > 14999 */
        {14999, "b", 2},
        {3000, "b", 3}, /* wm 14999: late for [-20000, 10000) only */
        {35000, "c", 0},
        {10000, "b", 100}, /* wm 29999: on time for [10000, 40000) only */
        /* Rounding of means: 1/3, -1/2, -1/200 (-0.005 -> -0.01) ... */
        {40000, "r1", 1},
        {40000, "r1", 0},
        {40000, "r1", 0},
        {40001, "r2", -1},
        {40002, "r2", 0},
        {40003, "r3", 2},
        {40003, "r3", 2},
        {40003, "r3", 1},
        /* Extremes: the sum stays in range per window. */
        {41000, "big", 4000000000000000000LL},
        {41001, "big", -4000000000000000000LL},
        {41002, "big", INT64_MAX},
        {42000, "min", INT64_MIN},
        {42000, "max", INT64_MAX},
        {5, "a", 99}, /* late for all three windows: dropped */
    };
    size_t nfixed = INTEG_ARRAY_SIZE(fixed);
    size_t ntiny = 200, ngen = 2500, n = nfixed + ntiny + 1 + ngen;
    agg_rec_t *recs = calloc(n, sizeof(agg_rec_t));
    assert_non_null(recs);
    memcpy(recs, fixed, sizeof(fixed));
    /* -1 and 200 zeros: -1/201 = -0.00497... -> "0.00". */
    for (size_t i = 0; i < ntiny; i++) {
        recs[nfixed + i] = (agg_rec_t){43000, "tiny", 0};
    }
    recs[nfixed + ntiny] = (agg_rec_t){43000, "tiny", -1};
    static const char *const keys[] = {"k0", "k1", "k2", "k3",   "k4",
                                       "k5", "k6", "k7", "k ey", "K0"};
    int64_t clock = BASE_TS;
    for (size_t i = nfixed + ntiny + 1; i < n; i++) {
        if (pick(50) == 0) {
            recs[i].ts = -1;
            continue;
        }
        recs[i].ts = next_ts(&clock, 250);
        recs[i].key = keys[pick(INTEG_ARRAY_SIZE(keys))];
        recs[i].value = pick(2001) - 1000;
    }
    text_t t = {0};
    for (size_t i = 0; i < n; i++) {
        if (recs[i].ts >= 0) {
            text_printf(&t, "%lld,%s,%lld", (long long)recs[i].ts, recs[i].key,
                        (long long)recs[i].value);
        }
        text_printf(&t, "\n");
    }
    char *path = write_input("windowed.csv", &t);
    free(t.buf);
    lines_t exp = {0};
    agg_expected(recs, n, &exp);
    assert_true(exp.n > 100);
    run_and_check(WINDOWED_AGGREGATION_SO, "windowed-aggregation", ARGS(path),
                  &exp);
    lines_free(&exp);
    free(recs);
    free(path);
}

static void windowed_aggregation_malformed(void **state)
{
    (void)state;
    const char *so = WINDOWED_AGGREGATION_SO, *job = "windowed-aggregation";
    check_malformed(so, job, NULL, "agg_bad1.csv", "1000,k\n", "1000,k",
                    "expected \"<ts_ms>,<key>,<value>\"");
    check_malformed(so, job, NULL, "agg_bad2.csv", "1000,k,1,2\n", "1000,k,1,2",
                    "more than three fields");
    check_malformed(so, job, NULL, "agg_bad3.csv", "1000,,1\n", "1000,,1",
                    "the key is empty");
    check_malformed(
        so, job, NULL, "agg_bad4.csv", "1000,k,9223372036854775808\n",
        "1000,k,9223372036854775808", "the value is not a decimal int64");
    check_malformed(so, job, NULL, "agg_bad5.csv", "-5,k,1\n", "-5,k,1",
                    "the timestamp must be 1 to 15 decimal digits");
}

/* ======================================================================
 * stateful_deduplication.so -- FILE
 * ====================================================================== */

typedef struct dd_rec {
    int64_t ts; /* -1: an empty line */
    char id[16];
    char payload[32];
} dd_rec_t;

static void dedup_expected(const dd_rec_t *recs, size_t n, lines_t *exp)
{
    /* id -> latest timestamp seen, by linear search (few ids). */
    const char *ids[256];
    int64_t last[256];
    size_t nids = 0;
    for (size_t i = 0; i < n; i++) {
        const dd_rec_t *r = &recs[i];
        if (r->ts < 0) {
            continue;
        }
        size_t k = 0;
        while (k < nids && strcmp(ids[k], r->id) != 0) {
            k++;
        }
        if (k == nids) {
            assert_true(nids < 256);
            ids[nids] = r->id;
            last[nids++] = r->ts;
            lines_printf(exp, "%lld,%s,%s", (long long)r->ts, r->id,
                         r->payload);
            continue;
        }
        if (r->ts >= last[k] + 3600000) {
            lines_printf(exp, "%lld,%s,%s", (long long)r->ts, r->id,
                         r->payload);
        }
        if (r->ts > last[k]) {
            last[k] = r->ts;
        }
    }
}

static void stateful_deduplication(void **state)
{
    (void)state;
    static const dd_rec_t fixed[] = {
        {1000, "a", "first a"},
        {1000, "a", "first a"}, /* an exact duplicate */
        {500, "a", "behind a"},
        {3600999, "a", "59:59.999 after: dropped"},
        {3601000, "a", "1 ms after the latest: dropped"},
        {7201999, "a", "an hour after 3601000: printed"},
        {-1, "", ""},
        {7201999, "a", "same ts: dropped"},
        {10801999, "a", "exactly an hour after: printed"},
        {1, "b", "b, with, commas"},
        {3600001, "b", ""},
        {3600000, "c", "c first, late but new"},
        {2, "c", "far behind: dropped"},
        {900000000, "d", "d"},
        {1, "d", "far behind d: dropped"},
        {10, "e", "a new id far behind the others"},
    };
    size_t nfixed = INTEG_ARRAY_SIZE(fixed), ngen = 3000;
    dd_rec_t *recs = calloc(nfixed + ngen, sizeof(dd_rec_t));
    assert_non_null(recs);
    memcpy(recs, fixed, sizeof(fixed));
    /* Skewed ids: frequent ones repeat within the hour, rare ones come back
     * after longer gaps. */
    int64_t clock = BASE_TS;
    for (size_t i = nfixed; i < nfixed + ngen; i++) {
        dd_rec_t *r = &recs[i];
        if (pick(60) == 0) {
            r->ts = -1;
            continue;
        }
        clock += pick(120000);
        r->ts = clock - (pick(10) == 0 ? pick(7200000) : 0);
        int64_t k = pick(1 + pick(60));
        snprintf(r->id, sizeof(r->id), k % 7 == 3 ? "u %lld" : "u%lld",
                 (long long)k);
        snprintf(r->payload, sizeof(r->payload), "p%zu,%lld", i,
                 (long long)pick(3));
    }
    text_t t = {0};
    for (size_t i = 0; i < nfixed + ngen; i++) {
        if (recs[i].ts >= 0) {
            text_printf(&t, "%lld,%s,%s", (long long)recs[i].ts, recs[i].id,
                        recs[i].payload);
        }
        text_printf(&t, "\n");
    }
    char *path = write_input("dedup.csv", &t);
    free(t.buf);
    lines_t exp = {0};
    dedup_expected(recs, nfixed + ngen, &exp);
    assert_true(exp.n > 50 && exp.n < ngen);
    run_and_check(STATEFUL_DEDUPLICATION_SO, "stateful-deduplication",
                  ARGS(path), &exp);
    lines_free(&exp);
    free(recs);
    free(path);
}

static void stateful_deduplication_malformed(void **state)
{
    (void)state;
    const char *so = STATEFUL_DEDUPLICATION_SO, *job = "stateful-deduplication";
    check_malformed(so, job, NULL, "dd_bad1.csv", "1000,id-only\n",
                    "1000,id-only", "expected \"<ts_ms>,<id>,<payload>\"");
    check_malformed(so, job, NULL, "dd_bad2.csv", "1000,,x\n", "1000,,x",
                    "the id is empty");
    check_malformed(so, job, NULL, "dd_bad3.csv", "t,id,x\n", "t,id,x",
                    "the timestamp must be 1 to 15 decimal digits");
}

/* ======================================================================
 * stream_join.so -- ORDERS PAYMENTS
 * ====================================================================== */

typedef struct jn_rec {
    int64_t ts; /* -1: an empty line */
    char id[16];
    char field[24];  /* amount or method */
    int64_t arrival; /* generated payments: sort key of the file order */
} jn_rec_t;

/* Marks the records of one input that are on time for their own input's
 * watermark: ts above max(earlier ts) - 5001. */
static void on_time_marks(const jn_rec_t *recs, size_t n, bool *on_time)
{
    wm_t wm = {0};
    for (size_t i = 0; i < n; i++) {
        on_time[i] = recs[i].ts >= 0 && recs[i].ts > wm_value(&wm);
        if (recs[i].ts >= 0) {
            wm_observe(&wm, recs[i].ts);
        }
    }
}

static void join_expected(const jn_rec_t *orders, size_t no,
                          const jn_rec_t *payments, size_t np, lines_t *exp)
{
    bool *ok_o = calloc(no + 1, sizeof(bool));
    bool *ok_p = calloc(np + 1, sizeof(bool));
    assert_true(ok_o != NULL && ok_p != NULL);
    on_time_marks(orders, no, ok_o);
    on_time_marks(payments, np, ok_p);
    for (size_t i = 0; i < no; i++) {
        for (size_t j = 0; j < np && ok_o[i]; j++) {
            const jn_rec_t *o = &orders[i], *p = &payments[j];
            if (ok_p[j] && strcmp(o->id, p->id) == 0 && o->ts <= p->ts &&
                p->ts <= o->ts + 900000) {
                lines_printf(exp, "%s,%lld,%lld,%s,%s", o->id, (long long)o->ts,
                             (long long)p->ts, o->field, p->field);
            }
        }
    }
    free(ok_o);
    free(ok_p);
}

static char *write_jn(const char *name, const jn_rec_t *recs, size_t n)
{
    text_t t = {0};
    for (size_t i = 0; i < n; i++) {
        if (recs[i].ts >= 0) {
            text_printf(&t, "%lld,%s,%s", (long long)recs[i].ts, recs[i].id,
                        recs[i].field);
        }
        text_printf(&t, "\n");
    }
    char *path = write_input(name, &t);
    free(t.buf);
    return path;
}

static int cmp_jn_ts(const void *a, const void *b)
{
    const jn_rec_t *x = a, *y = b;
    return x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
}

static void stream_join(void **state)
{
    (void)state;
    static const jn_rec_t fixed_orders[] = {
        {1000, "o1", "10.00"},
        {2000, "o2", "-3.5"},
        {3000, "o3", "7"},
        {-1, "", ""},
        {4000, "o4", "1"},
        {5000, "o5", "2"},
        {1500, "o6", "0.5"}, /* out of order, on time (wm -1) */
        {3000, "o12", "12"}, /* on time */
        {2000000, "o7", "70"},
        {1000, "o8", "8"},       /* late: its on-time payment finds nothing */
        {1995000, "o9", "9"},    /* wm 1994999: on time */
        {1994999, "o10", "10"},  /* exactly at the watermark: late */
        {2000000, "o7", "70.5"}, /* a second order o7 */
    };
    static const jn_rec_t fixed_payments[] = {
        {1000, "o1", "card"}, /* at the order's time */
        {2000, "o8", "card"},
        {2999, "o3", "too early"}, /* before o3: no */
        {3000, "o3", ""},          /* empty method */
        {6000, "o5", "card"},
        {4000, "o4", "out of order, on time"},
        {5000, "none", "no order"},
        {901000, "o1", "cash"},       /* exactly 15 min after */
        {902001, "o2", "card,split"}, /* 15 min + 1 ms after o2: no */
        {1995000, "o10", "card"},
        {1995001, "o9", "card"},
        {2000001, "o7", "card"},       /* matches both o7 orders */
        {3500, "o12", "late payment"}, /* wm 1995000: late */
    };
    size_t nfo = INTEG_ARRAY_SIZE(fixed_orders);
    size_t nfp = INTEG_ARRAY_SIZE(fixed_payments);
    size_t ngen = 1500;
    jn_rec_t *orders = calloc(nfo + ngen, sizeof(jn_rec_t));
    jn_rec_t *payments = calloc(nfp + 2 * ngen, sizeof(jn_rec_t));
    assert_true(orders != NULL && payments != NULL);
    memcpy(orders, fixed_orders, sizeof(fixed_orders));
    memcpy(payments, fixed_payments, sizeof(fixed_payments));
    static const char *const methods[] = {"card", "cash", "wire", "pay, later"};
    int64_t clock = BASE_TS;
    size_t no = nfo, np = nfp;
    size_t first_gen_payment = np;
    for (size_t i = 0; i < ngen; i++) {
        jn_rec_t *o = &orders[no++];
        o->ts = next_ts(&clock, 2000);
        /* Ids repeat now and then: several orders per id. */
        snprintf(o->id, sizeof(o->id), "g%lld", (long long)pick(1200));
        snprintf(o->field, sizeof(o->field), "%lld.%02lld",
                 (long long)pick(500), (long long)pick(100));
        for (int64_t k = pick(10) < 8 ? 1 + pick(2) : 0; k > 0; k--) {
            jn_rec_t *p = &payments[np++];
            /* Mostly inside [0, 15 min], some just outside. */
            p->ts = o->ts + pick(960000) - 30000;
            if (p->ts < 0) {
                p->ts = 0;
            }
            memcpy(p->id, o->id, sizeof(p->id));
            snprintf(p->field, sizeof(p->field), "%s",
                     methods[pick(INTEG_ARRAY_SIZE(methods))]);
        }
    }
    /* Payments arrive in time order with noise: some delayed by up to 9 s
     * (out of order, some of them late), a few by 5 min (late). */
    for (size_t i = first_gen_payment; i < np; i++) {
        int64_t r = pick(100);
        payments[i].arrival = payments[i].ts + (r < 20   ? pick(9000)
                                                : r < 23 ? 300000
                                                         : 0);
    }
    qsort(payments + first_gen_payment, np - first_gen_payment,
          sizeof(jn_rec_t), cmp_jn_ts);
    char *opath = write_jn("orders.csv", orders, no);
    char *ppath = write_jn("payments.csv", payments, np);
    lines_t exp = {0};
    join_expected(orders, no, payments, np, &exp);
    assert_true(exp.n > 500);
    run_and_check(STREAM_JOIN_SO, "stream-join", ARGS(opath, ppath), &exp);
    lines_free(&exp);
    free(orders);
    free(payments);
    free(opath);
    free(ppath);
}

static void stream_join_malformed(void **state)
{
    (void)state;
    const char *so = STREAM_JOIN_SO, *job = "stream-join";
    text_t t = {0};
    text_printf(&t, "1000,o1,card\n");
    char *good = write_input("payments_good.csv", &t);
    t.len = 0;
    text_printf(&t, "1000,o1,12.x\n");
    char *bad = write_input("orders_bad.csv", &t);
    free(t.buf);
    integ_proc_t *p = run_example(so, "2", ARGS(bad, good));
    integ_assert_error(
        p, 1,
        (const char *const[]){"eddy run: job 'stream-join' failed",
                              "operator 'parse-orders'",
                              "malformed line \"1000,o1,12.x\": ",
                              "the amount must be a decimal number", NULL});
    integ_proc_free(p);
    p = run_example(so, "1", ARGS(good));
    integ_assert_error(p, 1,
                       (const char *const[]){
                           "could not be built",
                           "usage: stream_join.so -- ORDERS PAYMENTS", NULL});
    integ_proc_free(p);
    (void)job;
    free(good);
    free(bad);
}

/* ======================================================================
 * weather_demo.so -- FILE [THRESHOLD]
 * ====================================================================== */

typedef struct wx_rec {
    int64_t ts; /* -1: an empty line */
    const char *station;
    char temp[32];
} wx_rec_t;

/* The reference reading of a temperature: thousandths of a degree, by
 * splitting at the point and padding the fraction to three digits. */
static int64_t temp_milli(const char *s)
{
    bool neg = s[0] == '-';
    const char *digits = neg ? s + 1 : s;
    const char *dot = strchr(digits, '.');
    char whole[16] = {0}, frac[4] = "000";
    size_t wl = dot != NULL ? (size_t)(dot - digits) : strlen(digits);
    memcpy(whole, digits, wl);
    if (dot != NULL) {
        memcpy(frac, dot + 1, strlen(dot + 1));
    }
    int64_t v = strtoll(whole, NULL, 10) * 1000 + strtoll(frac, NULL, 10);
    return neg ? -v : v;
}

static void weather_expected(const wx_rec_t *recs, size_t n,
                             int64_t threshold_milli, lines_t *exp)
{
    items_t in_windows = {0};
    wm_t wm = {0};
    for (size_t i = 0; i < n; i++) {
        const wx_rec_t *r = &recs[i];
        if (r->ts < 0) {
            continue;
        }
        int64_t milli = temp_milli(r->temp);
        if (milli > threshold_milli) {
            lines_printf(exp, "ALERT,%lld,%s,%s", (long long)r->ts, r->station,
                         r->temp);
        }
        int64_t start = floor_to(r->ts, 60000);
        if (start + 60000 - 1 > wm_value(&wm)) {
            items_add(&in_windows, start, r->station, strlen(r->station),
                      milli);
        }
        wm_observe(&wm, r->ts);
    }
    if (in_windows.n > 0) {
        qsort(in_windows.v, in_windows.n, sizeof(item_t), cmp_item);
    }
    for (size_t i = 0; i < in_windows.n;) {
        size_t g = group_len(&in_windows, i);
        __int128 sum = 0;
        for (size_t k = i; k < i + g; k++) {
            sum += in_windows.v[k].value;
        }
        char avg[64];
        hundredths(avg, sizeof(avg), sum, (__int128)g * 1000);
        lines_printf(exp, "%lld,%s,%s", (long long)in_windows.v[i].start,
                     in_windows.v[i].key, avg);
        i += g;
    }
    free(in_windows.v);
}

static void weather_demo(void **state)
{
    (void)state;
    static const wx_rec_t fixed[] = {
        {0, "berlin", "20"},
        {59999, "berlin", "21.5"},
        {60000, "berlin", "35"},     /* not above 35.0 */
        {30000, "berlin", "35.001"}, /* alert; on time */
        {-1, NULL, ""},
        {65000, "oslo", "-3.125"},
        {64999, "oslo", "-3.13"},  /* wm 59999: window 60000 on time */
        {70000, "oslo", "-0.004"}, /* wm 59999 */
        {59999, "berlin", "99"},   /* wm 64999: late; alerts anyway */
        {120000, "rome", "0.005"},
        {120001, "rome", "0"},      /* mean 0.0025 -> 0.00 */
        {180000, "rome", "-0.005"}, /* mean -0.005 -> -0.01 */
        {240000, "lima", "-0.004"}, /* mean -0.004 -> 0.00 */
        {300000, "x y", "999999.999"},
        {300000, "x y", "-999999.999"},
        {300001, "x y", "0.001"},
        {180000, "rome", "40"}, /* wm 295000: late, alert */
    };
    size_t nfixed = INTEG_ARRAY_SIZE(fixed), ngen = 3000;
    wx_rec_t *recs = calloc(nfixed + ngen, sizeof(wx_rec_t));
    assert_non_null(recs);
    memcpy(recs, fixed, sizeof(fixed));
    static const char *const stations[] = {"s1", "s2",       "s3", "s4",
                                           "s5", "San Jose", "S1"};
    int64_t clock = BASE_TS;
    for (size_t i = nfixed; i < nfixed + ngen; i++) {
        wx_rec_t *r = &recs[i];
        if (pick(50) == 0) {
            r->ts = -1;
            continue;
        }
        r->ts = next_ts(&clock, 1500);
        r->station = stations[pick(INTEG_ARRAY_SIZE(stations))];
        int64_t milli = pick(60000) - 15000;
        int64_t mag = milli < 0 ? -milli : milli;
        switch (pick(4)) {
        case 0:
            snprintf(r->temp, sizeof(r->temp), "%s%lld", milli < 0 ? "-" : "",
                     (long long)(mag / 1000));
            break;
        case 1:
            snprintf(r->temp, sizeof(r->temp), "%s%lld.%lld",
                     milli < 0 ? "-" : "", (long long)(mag / 1000),
                     (long long)(mag % 1000 / 100));
            break;
        case 2:
            snprintf(r->temp, sizeof(r->temp), "%s%lld.%02lld",
                     milli < 0 ? "-" : "", (long long)(mag / 1000),
                     (long long)(mag % 1000 / 10));
            break;
        default:
            snprintf(r->temp, sizeof(r->temp), "%s%lld.%03lld",
                     milli < 0 ? "-" : "", (long long)(mag / 1000),
                     (long long)(mag % 1000));
            break;
        }
    }
    text_t t = {0};
    for (size_t i = 0; i < nfixed + ngen; i++) {
        if (recs[i].ts >= 0) {
            text_printf(&t, "%lld,%s,%s", (long long)recs[i].ts,
                        recs[i].station, recs[i].temp);
        }
        text_printf(&t, "\n");
    }
    char *path = write_input("weather.csv", &t);
    free(t.buf);

    lines_t exp = {0};
    weather_expected(recs, nfixed + ngen, 35000, &exp);
    assert_true(exp.n > 200);
    run_and_check(WEATHER_DEMO_SO, "weather-demo", ARGS(path), &exp);
    lines_free(&exp);

    weather_expected(recs, nfixed + ngen, -2500, &exp);
    run_and_check(WEATHER_DEMO_SO, "weather-demo", ARGS(path, "-2.5"), &exp);
    lines_free(&exp);
    free(recs);
    free(path);
}

static void weather_demo_malformed(void **state)
{
    (void)state;
    const char *so = WEATHER_DEMO_SO, *job = "weather-demo";
    check_malformed(so, job, NULL, "wx_bad1.csv", "1000,s1,1.2345\n",
                    "1000,s1,1.2345",
                    "the temperature must be a decimal number");
    check_malformed(so, job, NULL, "wx_bad2.csv", "1000,s1,,\n", "1000,s1,,",
                    "the temperature must be a decimal number");
    check_malformed(so, job, NULL, "wx_bad3.csv", "1000,,20\n", "1000,,20",
                    "the station is empty");
    check_malformed(so, job, NULL, "wx_bad4.csv", "1000;s1;20\n", "1000;s1;20",
                    "expected \"<ts_ms>,<station>,<temperature>\"");
    text_t t = {0};
    text_printf(&t, "1000,s1,20\n");
    char *good = write_input("wx_good.csv", &t);
    free(t.buf);
    integ_proc_t *p = run_example(so, "1", ARGS(good, "hot"));
    integ_assert_error(p, 1,
                       (const char *const[]){
                           "job 'weather-demo' could not be built",
                           "usage: weather_demo.so -- FILE [THRESHOLD]", NULL});
    integ_proc_free(p);
    free(good);
}

/* ======================================================================
 * eddy_key_by keeps each key's order (tests/integration/jobs/keyed_order.c)
 * ====================================================================== */

/* The examples pin eddy_key_by to parallelism 1; this job leaves it at its
 * default, which must be its input's parallelism (1 here), not the job's:
 * otherwise a round-robin exchange before the key selector reorders each
 * key's records and the job fails. */
static void key_by_keeps_order_per_key(void **state)
{
    (void)state;
    text_t t = {0};
    lines_t exp = {0};
    int64_t seq[7] = {0};
    for (int i = 0; i < 3000; i++) {
        int k = (int)pick(7);
        text_printf(&t, "key%d,%lld\n", k, (long long)++seq[k]);
        lines_printf(&exp, "key%d,%lld", k, (long long)seq[k]);
    }
    char *path = write_input("keyed_order.txt", &t);
    free(t.buf);
    run_and_check(KEYED_ORDER_SO, "keyed-order", ARGS(path), &exp);
    lines_free(&exp);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(word_count_event_time, test_setup),
        cmocka_unit_test_setup(word_count_event_time_edge_files, test_setup),
        cmocka_unit_test_setup(word_count_event_time_malformed, test_setup),
        cmocka_unit_test_setup(windowed_aggregation, test_setup),
        cmocka_unit_test_setup(windowed_aggregation_malformed, test_setup),
        cmocka_unit_test_setup(stateful_deduplication, test_setup),
        cmocka_unit_test_setup(stateful_deduplication_malformed, test_setup),
        cmocka_unit_test_setup(stream_join, test_setup),
        cmocka_unit_test_setup(stream_join_malformed, test_setup),
        cmocka_unit_test_setup(weather_demo, test_setup),
        cmocka_unit_test_setup(weather_demo_malformed, test_setup),
        cmocka_unit_test_setup(key_by_keeps_order_per_key, test_setup),
    };
    return cmocka_run_group_tests_name("integ_examples", tests, group_setup,
                                       group_teardown);
}
