/*
 * word_count — the reference eddy job.
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

static int build(eddy_env_t *env, int argc, char **argv)
{
    if (argc != 1) {
        return eddy_env_fail(env, "usage: word_count.so -- FILE");
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
