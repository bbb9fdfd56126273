/*
 * word_count — the reference eddy job, in two modes.
 *
 * RUNNING COUNTS (the original mode):
 *
 *   eddy run --local build/examples/word_count.so -p 4 -- FILE
 *
 * Input:  FILE, read line by line (split across the source's subtasks).
 * Output: one line "word<TAB>count" on stdout for every occurrence of a word:
 *         the word's running count after that occurrence. A word is a maximal
 *         run of ASCII letters and digits, lower-cased. For each word the
 *         counts appear as 1, 2, ..., n in that order, whatever the
 *         parallelism, because all of a word's records go to one subtask.
 *
 * The graph:  text file → flat_map(tokenize) → key_by(word)
 *             → aggregate(count) → map(format) → print
 *
 * EVENT TIME (10 s tumbling windows):
 *
 *   eddy run --local build/examples/word_count.so -p 4 -- --event-time FILE
 *
 * Input:  FILE, one record per line: "<timestamp_ms> <text...>". The
 *         timestamp is a decimal integer of 1 to 15 digits (milliseconds
 *         since the epoch, below 10^15; digits only), followed by one space
 *         or tab and the text, which may be empty ("<timestamp_ms>" alone is
 *         a line without words). Words are found in the text as in the other
 *         mode. Empty lines are skipped. Any other line (no timestamp, more
 *         than 15 digits, a timestamp not followed by a space or tab) fails
 *         the job with `malformed line "<the line>": <reason>`.
 * Output: once per (window, word) with at least one on-time occurrence, when
 *         the window fires: "window_start<TAB>word<TAB>count", window_start
 *         in ms (a multiple of 10000; the window is [start, start + 10000))
 *         and count the word's on-time occurrences in the window. Lines of
 *         different windows and words may interleave in any order across
 *         subtasks; sort them to compare runs.
 *
 * Event time and lateness. Watermarks are bounded out-of-orderness with a
 * bound of 5 s, like eddy_watermarks_bounded(5000), but punctuated: after
 * every line the watermark becomes max_ts - 5000 - 1, max_ts being the
 * largest timestamp of the lines read so far (lines without words count
 * too). A periodic watermark would depend on how fast the file is read; this
 * one depends on the file only. The file is read, parsed, stamped, tokenized
 * and keyed at parallelism 1, so every window subtask sees the words and the
 * watermarks in file order; the windows run at the job's parallelism (-p). A
 * window [s, s + 10000) fires once the watermark reaches s + 9999. A line is
 * late when the watermark left by the lines before it is already at or past
 * s + 9999 for its window s (the line's timestamp is then necessarily at or
 * below the watermark); its words are dropped (no allowed lateness). So the
 * output is a function of the file alone, identical at every parallelism. At
 * the end of the file the watermark jumps to +infinity and all remaining
 * windows fire.
 *
 * The graph:  text file (p 1) → flat_map(parse) (p 1)
 *             → timestamps/watermarks (p 1) → flat_map(tokenize) (p 1)
 *             → key_by(word) (p 1) → window_aggregate(tumbling 10 s, count)
 *             → print
 */
#include <stdio.h>
#include <string.h>

#include <eddy/eddy.h>

static int is_word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/* Emits one record per word, its value the lower-cased word. */
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
        size_t len = i - start;
        char *w = eddy_ctx_scratch(ctx, len);
        if (w == NULL) {
            return eddy_ctx_fail(ctx, "out of memory");
        }
        for (size_t k = 0; k < len; k++) {
            unsigned char c = p[start + k];
            w[k] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
        eddy_record_t word = {NULL, 0, w, len, in->ts};
        int rc = eddy_collect(out, &word);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The key is the word itself. */
static int word_key(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                    size_t *key_len, void *opaque)
{
    (void)ctx;
    (void)opaque;
    *key = in->value;
    *key_len = in->value_len;
    return 0;
}

/* Turns (word, count) into the text line "word<TAB>count". */
static int format(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
                  void *opaque)
{
    (void)opaque;
    size_t cap = in->key_len + 24;
    char *line = eddy_ctx_scratch(ctx, cap);
    if (line == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    int n =
        snprintf(line, cap, "%.*s\t%lld", (int)in->key_len,
                 (const char *)in->key, (long long)eddy_record_value_i64(in));
    out->value = line;
    out->value_len = (size_t)n;
    return 0;
}

/* ---- event-time mode ---- */

#define WINDOW_MS 10000
#define OUT_OF_ORDERNESS_MS 5000
#define TS_MAX_DIGITS 15 /* timestamps below 10^15 ms */
#define QUOTE_MAX 200    /* bytes of a malformed line quoted in the error */

/* Fails the job, quoting the offending line. */
static int malformed(eddy_ctx_t *ctx, const eddy_record_t *in, const char *why)
{
    int n = in->value_len > QUOTE_MAX ? QUOTE_MAX : (int)in->value_len;
    return eddy_ctx_fail(ctx, "malformed line \"%.*s%s\": %s", n,
                         (const char *)in->value,
                         in->value_len > QUOTE_MAX ? "..." : "", why);
}

/* Parses "<timestamp_ms> <text...>" into a record of the text stamped with
 * the timestamp. Empty lines emit nothing. */
static int parse_timed_line(eddy_ctx_t *ctx, const eddy_record_t *in,
                            eddy_collector_t *out, void *opaque)
{
    const char *p = in->value;
    size_t n = in->value_len, i = 0;
    int64_t ts = 0;
    if (n == 0) {
        return 0;
    }
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        if (i == TS_MAX_DIGITS) {
            return malformed(ctx, in, "the timestamp has more than 15 digits");
        }
        ts = ts * 10 + (p[i] - '0');
        i++;
    }
    if (i == 0) {
        return malformed(ctx, in,
                         "expected \"<timestamp_ms> <text>\", the timestamp "
                         "a decimal number of milliseconds");
    }
    if (i < n && p[i] != ' ' && p[i] != '\t') {
        return malformed(ctx, in,
                         "the timestamp must be followed by a space or a tab");
    }
    (void)opaque;
    eddy_record_t text = {NULL, 0, p + i, n - i, ts};
    return eddy_collect(out, &text);
}

/* Bounded out-of-orderness, punctuated: after every record the watermark is
 * the largest timestamp so far minus the bound minus 1 (the engine drops
 * watermarks that do not advance). */
typedef struct bounded_wm {
    int64_t max_ts;
    int seen;
} bounded_wm_t;

static int64_t bounded_on_event(void *state, const eddy_record_t *rec,
                                void *opaque)
{
    (void)opaque;
    bounded_wm_t *st = state;
    if (!st->seen || rec->ts > st->max_ts) {
        st->max_ts = rec->ts;
        st->seen = 1;
    }
    return st->max_ts - OUT_OF_ORDERNESS_MS - 1;
}

/* A count whose result is the output line "window_start<TAB>word<TAB>count".
 * The accumulator is one int64 (copied with memcpy: no alignment assumed). */
static void count_init(void *acc, void *opaque)
{
    (void)opaque;
    memset(acc, 0, sizeof(int64_t));
}

static int count_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                     void *opaque)
{
    (void)ctx;
    (void)in;
    (void)opaque;
    int64_t c;
    memcpy(&c, acc, sizeof(c));
    c++;
    memcpy(acc, &c, sizeof(c));
    return 0;
}

static int count_merge(eddy_ctx_t *ctx, void *acc, const void *other,
                       void *opaque)
{
    (void)ctx;
    (void)opaque;
    int64_t a, b;
    memcpy(&a, acc, sizeof(a));
    memcpy(&b, other, sizeof(b));
    a += b;
    memcpy(acc, &a, sizeof(a));
    return 0;
}

static int count_result(eddy_ctx_t *ctx, const void *acc, eddy_record_t *out,
                        void *opaque)
{
    (void)opaque;
    const eddy_window_t *w = eddy_ctx_window(ctx);
    if (w == NULL) {
        return eddy_ctx_fail(ctx, "no window in the aggregate's result");
    }
    int64_t c;
    memcpy(&c, acc, sizeof(c));
    size_t cap = out->key_len + 48;
    char *line = eddy_ctx_scratch(ctx, cap);
    if (line == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    int n = snprintf(line, cap, "%lld\t%.*s\t%lld", (long long)w->start,
                     (int)out->key_len, (const char *)out->key, (long long)c);
    out->value = line;
    out->value_len = (size_t)n;
    return 0;
}

static const eddy_aggregate_t window_count = {
    .acc_size = sizeof(int64_t),
    .init = count_init,
    .add = count_add,
    .result = count_result,
    .merge = count_merge,
};

static int build_event_time(eddy_env_t *env, const char *path)
{
    /* Parallelism 1 up to the watermarks keeps the file's order, which makes
     * lateness (and so the output) a function of the file alone. */
    eddy_stream_t *lines = eddy_parallelism(
        eddy_name(eddy_source_text_file(env, path), "lines"), 1);
    eddy_stream_t *texts = eddy_parallelism(
        eddy_name(eddy_flat_map(lines, parse_timed_line, NULL), "parse"), 1);
    /* Watermarks come from lines, before tokenizing, so that a line without
     * words advances event time too. */
    eddy_watermark_strategy_t ws = eddy_watermarks_custom(
        bounded_on_event, NULL, sizeof(bounded_wm_t), NULL);
    eddy_stream_t *stamped = eddy_parallelism(
        eddy_name(eddy_assign_timestamps(texts, &ws), "watermarks"), 1);
    eddy_stream_t *words = eddy_parallelism(
        eddy_name(eddy_flat_map(stamped, tokenize, NULL), "tokenize"), 1);
    /* The key selector (eddy_key_by) runs at its input's parallelism by
     * default; it is pinned to 1 here as the order matters: chained to its
     * input, it hands records to the keyed exchange in file order (at another
     * parallelism a round-robin exchange would come first and reorder
     * them). */
    eddy_stream_t *keyed =
        eddy_parallelism(eddy_key_by(words, word_key, NULL), 1);
    eddy_window_spec_t win = eddy_window_tumbling(WINDOW_MS);
    eddy_stream_t *counts =
        eddy_uid(eddy_name(eddy_window_aggregate(keyed, &win, &window_count),
                           "window-count"),
                 "window-word-counts");
    eddy_name(eddy_sink_print(counts), "print");
    return 0;
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[0], "--event-time") == 0) {
        return build_event_time(env, argv[1]);
    }
    if (argc != 1) {
        return eddy_env_fail(env, "usage: word_count.so -- FILE, or "
                                  "word_count.so -- --event-time FILE");
    }
    eddy_stream_t *lines = eddy_source_text_file(env, argv[0]);
    eddy_name(lines, "lines");
    eddy_stream_t *words =
        eddy_name(eddy_flat_map(lines, tokenize, NULL), "tokenize");
    eddy_stream_t *keyed = eddy_key_by(words, word_key, NULL);
    eddy_stream_t *counts =
        eddy_uid(eddy_name(eddy_aggregate(keyed, eddy_agg_count()), "count"),
                 "word-counts");
    eddy_stream_t *text = eddy_name(eddy_map(counts, format, NULL), "format");
    eddy_name(eddy_sink_print(text), "print");
    return 0;
}

EDDY_JOB("word-count", build)
