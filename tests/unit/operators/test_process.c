/*
 * eddy — unit tests for src/operators/process.c through the public API:
 * keyed process functions (every kind of keyed state, TTL, event- and
 * processing-time timers, the current key, side outputs, misuse errors) and
 * co-process functions (state and timers shared by both inputs).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <stdatomic.h>

#include "runtime/runtime.h"

#define EXECUTE_OK(env)                                                        \
    do {                                                                       \
        eddy_error_t err_;                                                     \
        eddy_error_clear(&err_);                                               \
        TU_ASSERT_OK(eddy_env_execute((env), &err_), &err_);                   \
    } while (0)

static void run_expect_failure(eddy_env_t *env, const char *msg)
{
    eddy_error_t err;
    eddy_error_clear(&err);
    int rc = eddy_env_execute(env, &err);
    if (rc == 0) {
        fail_msg("expected the job to fail with \"%s\"", msg);
    }
    TU_ASSERT_CONTAINS(err.msg, msg);
}

/* Keys a parallelism-1 source by the keys its records carry, keeping each
 * key's order into the keyed operator at any parallelism. */
static eddy_stream_t *keyed_in_order(eddy_stream_t *src)
{
    return eddy_parallelism(eddy_key_by(src, NULL, NULL), 1);
}

/* Emits "key:text". */
static int emitf(eddy_ctx_t *ctx, eddy_collector_t *out, int64_t ts,
                 const char *fmt, ...) EDDY_PRINTF_LIKE(4, 5);
static int emitf(eddy_ctx_t *ctx, eddy_collector_t *out, int64_t ts,
                 const char *fmt, ...)
{
    size_t klen;
    const char *key = eddy_ctx_key(ctx, &klen);
    char *buf = eddy_ctx_scratch(ctx, 256);
    int n = snprintf(buf, 256, "%.*s:", (int)klen, key != NULL ? key : "");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, 256 - (size_t)n, fmt, ap);
    va_end(ap);
    eddy_record_t rec = {key, klen, buf, (size_t)n, ts};
    return eddy_collect(out, &rec);
}

/* The collected values, stably grouped by key (each key's order kept). */
typedef struct lines {
    char **v;
    size_t n;
} lines_t;

static size_t key_prefix(const char *s)
{
    const char *c = strchr(s, ':');
    return c != NULL ? (size_t)(c - s) : strlen(s);
}

static lines_t lines_by_key(eddy_collection_t *c)
{
    lines_t l = {calloc(eddy_collection_count(c) + 1, sizeof(char *)),
                 eddy_collection_count(c)};
    for (size_t i = 0; i < l.n; i++) {
        l.v[i] = (char *)eddy_collection_get(c, i)->value;
    }
    /* Insertion sort on the key prefix only: stable. */
    for (size_t i = 1; i < l.n; i++) {
        char *x = l.v[i];
        size_t j = i;
        while (j > 0) {
            size_t a = key_prefix(l.v[j - 1]), b = key_prefix(x);
            int cmp = strncmp(l.v[j - 1], x, EDDY_MIN(a, b));
            if (cmp < 0 || (cmp == 0 && a <= b)) {
                break;
            }
            l.v[j] = l.v[j - 1];
            j--;
        }
        l.v[j] = x;
    }
    return l;
}

static void assert_lines(eddy_collection_t *c, const char *const *want,
                         size_t n)
{
    lines_t l = lines_by_key(c);
    for (size_t i = 0; i < EDDY_MAX(n, l.n); i++) {
        const char *g = i < l.n ? l.v[i] : "(none)";
        const char *w = i < n ? want[i] : "(none)";
        if (strcmp(g, w) != 0) {
            fail_msg("line %zu: got \"%s\", expected \"%s\" (%zu lines)", i, g,
                     w, l.n);
        }
    }
    free(l.v);
}

#define ASSERT_LINES(c, ...)                                                   \
    do {                                                                       \
        static const char *const want_[] = {__VA_ARGS__};                      \
        assert_lines((c), want_, EDDY_ARRAY_SIZE(want_));                      \
    } while (0)

static eddy_record_t krec(const char *key, const char *val, int64_t ts)
{
    return (eddy_record_t){key, strlen(key), val, strlen(val), ts};
}

/* Record values are not NUL-terminated: compare with the length. */
static bool val_is(const eddy_record_t *rec, const char *s)
{
    return rec->value_len == strlen(s) &&
           memcmp(rec->value, s, rec->value_len) == 0;
}

/* ------------------------------------------------------------------------ */
/* Value, list and map state                                                */
/* ------------------------------------------------------------------------ */

typedef struct vlm_ids {
    int count; /* VALUE, i64 */
    int seen;  /* LIST */
    int freq;  /* MAP value -> i64 */
} vlm_ids_t;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Per record: "!" clears every state of the key; "-x" removes x from the
 * map; anything else counts (value), is appended (list) and counted per
 * value (map). Then emits "key:count|list|sorted map".
 */
static int vlm_process(eddy_ctx_t *ctx, const eddy_record_t *in,
                       eddy_collector_t *out, void *opaque)
{
    const vlm_ids_t *ids = opaque;
    const char *v = in->value;
    int rc;
    if (val_is(in, "!")) {
        if ((rc = eddy_state_clear(ctx, ids->count)) != 0 ||
            (rc = eddy_state_clear(ctx, ids->seen)) != 0 ||
            (rc = eddy_state_clear(ctx, ids->freq)) != 0) {
            return rc;
        }
    } else if (in->value_len > 0 && v[0] == '-') {
        if ((rc = eddy_map_remove(ctx, ids->freq, v + 1, in->value_len - 1)) !=
            0) {
            return rc;
        }
    } else {
        const void *cur;
        size_t len;
        int64_t count = 0;
        rc = eddy_value_get(ctx, ids->count, &cur, &len);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            if (len != sizeof(count)) {
                return eddy_ctx_fail(ctx, "count has %zu bytes", len);
            }
            memcpy(&count, cur, sizeof(count));
        }
        count++;
        if ((rc = eddy_value_set(ctx, ids->count, &count, sizeof(count))) !=
                0 ||
            (rc = eddy_list_add(ctx, ids->seen, v, in->value_len)) != 0) {
            return rc;
        }
        int64_t f = 0;
        rc = eddy_map_get(ctx, ids->freq, v, in->value_len, &cur, &len);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            memcpy(&f, cur, sizeof(f));
        }
        f++;
        if ((rc = eddy_map_put(ctx, ids->freq, v, in->value_len, &f,
                               sizeof(f))) != 0) {
            return rc;
        }
    }
    /* Render the state. */
    char list[128] = "", map[128] = "";
    const void *cur;
    size_t len;
    int64_t count = 0;
    if (eddy_value_get(ctx, ids->count, &cur, &len) == 1) {
        memcpy(&count, cur, sizeof(count));
    }
    eddy_state_iter_t it;
    if (eddy_list_iter(ctx, ids->seen, &it) == 1) {
        while (eddy_list_next(&it, &cur, &len) == 1) {
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%.*s",
                     list[0] ? "," : "", (int)len, (const char *)cur);
        }
    }
    char *entries[16];
    int ne = 0;
    if (eddy_map_iter(ctx, ids->freq, &it) == 1) {
        const void *mk;
        size_t mklen;
        while (eddy_map_next(&it, &mk, &mklen, &cur, &len) == 1 && ne < 16) {
            int64_t f;
            memcpy(&f, cur, sizeof(f));
            entries[ne] = eddy_ctx_scratch(ctx, 32);
            snprintf(entries[ne], 32, "%.*s=%lld", (int)mklen, (const char *)mk,
                     (long long)f);
            ne++;
        }
    }
    qsort(entries, (size_t)ne, sizeof(char *), cmp_str);
    for (int i = 0; i < ne; i++) {
        snprintf(map + strlen(map), sizeof(map) - strlen(map), "%s%s",
                 i ? "," : "", entries[i]);
    }
    return emitf(ctx, out, in->ts, "%lld|%s|%s", (long long)count, list, map);
}

static void test_value_list_map_state(void **state)
{
    (void)state;
    eddy_record_t recs[] = {
        krec("a", "x", 1), krec("b", "z", 2),  krec("a", "y", 3),
        krec("a", "x", 4), krec("a", "-x", 5), krec("b", "!", 6),
        krec("b", "w", 7), krec("a", "-y", 8),
    };
    static const int ps[] = {1, 4};
    for (int pi = 0; pi < 2; pi++) {
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_parallelism(env, ps[pi]);
        eddy_collection_t *out = eddy_collection_new();
        vlm_ids_t ids;
        eddy_process_fn_t fn = {vlm_process, NULL, &ids};
        eddy_stream_t *p = eddy_process(
            keyed_in_order(eddy_source_collection(env, recs, 8)), &fn);
        eddy_state_desc_t d = {.name = "count",
                               .kind = EDDY_STATE_VALUE,
                               .serializer = eddy_serializer_i64()};
        ids.count = eddy_declare_state(p, &d);
        d = (eddy_state_desc_t){.name = "seen", .kind = EDDY_STATE_LIST};
        ids.seen = eddy_declare_state(p, &d);
        d = (eddy_state_desc_t){.name = "freq",
                                .kind = EDDY_STATE_MAP,
                                .serializer = eddy_serializer_i64()};
        ids.freq = eddy_declare_state(p, &d);
        assert_int_equal(ids.count, 0);
        assert_int_equal(ids.seen, 1);
        assert_int_equal(ids.freq, 2);
        eddy_sink_collect(p, out);
        EXECUTE_OK(env);
        ASSERT_LINES(out, "a:1|x|x=1", "a:2|x,y|x=1,y=1", "a:3|x,y,x|x=2,y=1",
                     "a:3|x,y,x|y=1", "a:3|x,y,x|", "b:1|z|z=1", "b:0||",
                     "b:1|w|w=1");
        eddy_collection_destroy(out);
        eddy_env_destroy(env);
    }
}

/* ------------------------------------------------------------------------ */
/* Reducing and aggregating state                                           */
/* ------------------------------------------------------------------------ */

static int max_reduce(eddy_ctx_t *ctx, const eddy_record_t *acc,
                      const eddy_record_t *in, eddy_record_t *out, void *opaque)
{
    (void)opaque;
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    int64_t a = eddy_record_value_i64(acc), b = eddy_record_value_i64(in);
    *v = a > b ? a : b;
    out->value = v;
    out->value_len = sizeof(*v);
    return 0;
}

static int ra_process(eddy_ctx_t *ctx, const eddy_record_t *in,
                      eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    int rc;
    if ((rc = eddy_reducing_add(ctx, 0, in->value, in->value_len)) != 0 ||
        (rc = eddy_aggregating_add(ctx, 1, in)) != 0) {
        return rc;
    }
    const void *cur;
    size_t len;
    if (eddy_value_get(ctx, 0, &cur, &len) != 1 || len != 8) {
        return eddy_ctx_fail(ctx, "reducing state is empty");
    }
    int64_t max;
    memcpy(&max, cur, sizeof(max));
    eddy_record_t agg = *in;
    if (eddy_aggregating_get(ctx, 1, &agg) != 1) {
        return eddy_ctx_fail(ctx, "aggregating state is empty");
    }
    return emitf(ctx, out, in->ts, "max=%lld sum=%lld", (long long)max,
                 (long long)eddy_record_value_i64(&agg));
}

static void test_reducing_aggregating_state(void **state)
{
    (void)state;
    static const int64_t vals[] = {5, 3, 9, -2, 7};
    static const char *const keys[] = {"a", "a", "b", "a", "b"};
    eddy_record_t recs[5];
    for (int i = 0; i < 5; i++) {
        recs[i] = (eddy_record_t){keys[i], 1, &vals[i], 8, EDDY_TS_NONE};
    }
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_process_fn_t fn = {ra_process, NULL, NULL};
    eddy_stream_t *p =
        eddy_process(keyed_in_order(eddy_source_collection(env, recs, 5)), &fn);
    eddy_state_desc_t d = {.name = "max",
                           .kind = EDDY_STATE_REDUCING,
                           .serializer = eddy_serializer_i64(),
                           .reduce = max_reduce};
    assert_int_equal(eddy_declare_state(p, &d), 0);
    d = (eddy_state_desc_t){.name = "sum",
                            .kind = EDDY_STATE_AGGREGATING,
                            .aggregate = eddy_agg_sum_i64()};
    assert_int_equal(eddy_declare_state(p, &d), 1);
    eddy_sink_collect(eddy_parallelism(p, 2), out);
    EXECUTE_OK(env);
    ASSERT_LINES(out, "a:max=5 sum=5", "a:max=5 sum=8", "a:max=5 sum=6",
                 "b:max=9 sum=9", "b:max=9 sum=16");
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* Event-time timers                                                        */
/* ------------------------------------------------------------------------ */

/*
 * Per record at t: timers at t+10 (twice: deduplicated), t+5 (deleted
 * again) and, for value "2", t+3 registered before t+10's duplicate. A
 * timer at an odd offset re-registers one at +5 from on_timer, which fires
 * in the same pass.
 */
static int et_process(eddy_ctx_t *ctx, const eddy_record_t *in,
                      eddy_collector_t *out, void *opaque)
{
    (void)out;
    (void)opaque;
    int64_t t = in->ts;
    int rc;
    if ((rc = eddy_timer_register(ctx, EDDY_EVENT_TIME, t + 10)) != 0 ||
        (rc = eddy_timer_register(ctx, EDDY_EVENT_TIME, t + 5)) != 0) {
        return rc;
    }
    if (val_is(in, "2") &&
        (rc = eddy_timer_register(ctx, EDDY_EVENT_TIME, t + 3)) != 0) {
        return rc;
    }
    if ((rc = eddy_timer_register(ctx, EDDY_EVENT_TIME, t + 10)) != 0 ||
        (rc = eddy_timer_delete(ctx, EDDY_EVENT_TIME, t + 5)) != 0 ||
        (rc = eddy_timer_delete(ctx, EDDY_EVENT_TIME, t + 6)) != 0) {
        return rc;
    }
    return 0;
}

static int et_on_timer(eddy_ctx_t *ctx, int64_t ts, eddy_time_domain_t domain,
                       eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    if (domain != EDDY_EVENT_TIME) {
        return eddy_ctx_fail(ctx, "wrong domain");
    }
    if (ts % 2 != 0) {
        int rc = eddy_timer_register(ctx, EDDY_EVENT_TIME, ts + 5);
        if (rc != 0) {
            return rc;
        }
    }
    return emitf(ctx, out, ts, "%lld", (long long)ts);
}

static void test_event_time_timers(void **state)
{
    (void)state;
    eddy_record_t recs[] = {krec("a", "1", 100), krec("b", "1", 50),
                            krec("a", "2", 120), krec("a", "1", 100)};
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 0);
    eddy_collection_t *out = eddy_collection_new();
    eddy_process_fn_t fn = {et_process, et_on_timer, NULL};
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(100);
    eddy_stream_t *src = eddy_source_collection(env, recs, 4);
    eddy_stream_t *p =
        eddy_process(keyed_in_order(eddy_assign_timestamps(src, &ws)), &fn);
    eddy_sink_collect(p, out);
    EXECUTE_OK(env);
    /* One subtask, everything fires at the final watermark: in timestamp
     * order, each timer once; 123 (odd) adds 128 in the same pass. */
    size_t n = eddy_collection_count(out);
    static const char *const want[] = {"b:60", "a:110", "a:123", "a:128",
                                       "a:130"};
    assert_int_equal(n, EDDY_ARRAY_SIZE(want));
    for (size_t i = 0; i < n; i++) {
        const eddy_record_t *r = eddy_collection_get(out, i);
        assert_string_equal(r->value, want[i]);
        assert_int_equal(r->ts, atoll(strchr(want[i], ':') + 1));
    }
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* Processing-time timers                                                   */
/* ------------------------------------------------------------------------ */

typedef struct pt_log {
    atomic_llong base;
    int64_t fired[16]; /* offsets from base, in firing order */
    int64_t late[16];  /* how long after its time each timer fired */
    atomic_int nfired;
} pt_log_t;

static int pt_process(eddy_ctx_t *ctx, const eddy_record_t *in,
                      eddy_collector_t *out, void *opaque)
{
    (void)out;
    pt_log_t *log = opaque;
    if (eddy_record_value_i64(in) != 0) {
        return 0;
    }
    int64_t now = eddy_ctx_processing_time(ctx);
    atomic_store(&log->base, now);
    int rc;
    if ((rc = eddy_timer_register(ctx, EDDY_PROCESSING_TIME, now + 60)) != 0 ||
        (rc = eddy_timer_register(ctx, EDDY_PROCESSING_TIME, now + 20)) != 0 ||
        (rc = eddy_timer_register(ctx, EDDY_PROCESSING_TIME, now + 40)) != 0 ||
        (rc = eddy_timer_register(ctx, EDDY_PROCESSING_TIME, now + 40)) != 0 ||
        (rc = eddy_timer_register(ctx, EDDY_PROCESSING_TIME, now + 30)) != 0 ||
        (rc = eddy_timer_delete(ctx, EDDY_PROCESSING_TIME, now + 30)) != 0) {
        return rc;
    }
    return 0;
}

static int pt_on_timer(eddy_ctx_t *ctx, int64_t ts, eddy_time_domain_t domain,
                       eddy_collector_t *out, void *opaque)
{
    pt_log_t *log = opaque;
    if (domain != EDDY_PROCESSING_TIME) {
        return eddy_ctx_fail(ctx, "wrong domain");
    }
    int i = atomic_load(&log->nfired);
    if (i < 16) {
        log->fired[i] = ts - atomic_load(&log->base);
        log->late[i] = eddy_ctx_processing_time(ctx) - ts;
        atomic_store(&log->nfired, i + 1);
    }
    return emitf(ctx, out, EDDY_TS_NONE, "%lld",
                 (long long)(ts - atomic_load(&log->base)));
}

static int gen_i64(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                   void *opaque)
{
    const char *key = opaque;
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    *v = (int64_t)index;
    *out = (eddy_record_t){key, strlen(key), v, sizeof(*v), EDDY_TS_NONE};
    return 0;
}

static void test_processing_time_timers(void **state)
{
    (void)state;
    pt_log_t *log = calloc(1, sizeof(*log));
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_process_fn_t fn = {pt_process, pt_on_timer, log};
    /* 20 records at 50/s keep the job running for ~400 ms. */
    eddy_stream_t *src = eddy_source_generator(env, 20, 50.0, gen_i64, "k");
    eddy_sink_collect(eddy_process(eddy_key_by(src, NULL, NULL), &fn), out);
    EXECUTE_OK(env);
    assert_int_equal(atomic_load(&log->nfired), 3);
    assert_int_equal(log->fired[0], 20);
    assert_int_equal(log->fired[1], 40);
    assert_int_equal(log->fired[2], 60);
    for (int i = 0; i < 3; i++) {
        assert_true(log->late[i] >= 0); /* never early */
    }
    assert_int_equal(eddy_collection_count(out), 3);
    assert_string_equal(eddy_collection_get(out, 0)->value, "k:20");
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
    free(log);
}

/* ------------------------------------------------------------------------ */
/* Current key and side outputs                                             */
/* ------------------------------------------------------------------------ */

typedef struct side_cfg {
    int odd_tag;
} side_cfg_t;

static int side_process(eddy_ctx_t *ctx, const eddy_record_t *in,
                        eddy_collector_t *out, void *opaque)
{
    const side_cfg_t *cfg = opaque;
    size_t klen;
    const void *key = eddy_ctx_key(ctx, &klen);
    if (key == NULL || klen != in->key_len || memcmp(key, in->key, klen) != 0) {
        return eddy_ctx_fail(ctx, "eddy_ctx_key is not the record's key");
    }
    if (eddy_record_value_i64(in) % 2 != 0) {
        return eddy_collect_side(ctx, cfg->odd_tag, in);
    }
    return eddy_collect(out, in);
}

static int map_key_probe(eddy_ctx_t *ctx, const eddy_record_t *in,
                         eddy_record_t *out, void *opaque)
{
    (void)in;
    (void)out;
    (void)opaque;
    size_t len = 99;
    if (eddy_ctx_key(ctx, &len) != NULL || len != 0) {
        return eddy_ctx_fail(ctx, "eddy_ctx_key outside a keyed operator");
    }
    return 0;
}

static void test_ctx_key_and_side_outputs(void **state)
{
    (void)state;
    static const int ps[] = {1, 3};
    for (int pi = 0; pi < 2; pi++) {
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_parallelism(env, ps[pi]);
        eddy_collection_t *evens = eddy_collection_new();
        eddy_collection_t *odds = eddy_collection_new();
        side_cfg_t cfg;
        eddy_process_fn_t fn = {side_process, NULL, &cfg};
        eddy_stream_t *src =
            eddy_map(eddy_source_generator(env, 100, 0, gen_i64, "key"),
                     map_key_probe, NULL);
        eddy_stream_t *p = eddy_process(eddy_key_by(src, NULL, NULL), &fn);
        cfg.odd_tag = eddy_side_output_id(p, "odd");
        assert_int_equal(cfg.odd_tag, 0);
        assert_int_equal(eddy_side_output_id(p, "odd"), 0);
        eddy_sink_collect(p, evens);
        eddy_sink_collect(eddy_side_output(p, "odd"), odds);
        EXECUTE_OK(env);
        assert_int_equal(eddy_collection_count(evens), 50);
        assert_int_equal(eddy_collection_count(odds), 50);
        int64_t sum_even = 0, sum_odd = 0;
        for (size_t i = 0; i < 50; i++) {
            const eddy_record_t *e = eddy_collection_get(evens, i);
            const eddy_record_t *o = eddy_collection_get(odds, i);
            assert_int_equal(eddy_record_value_i64(e) % 2, 0);
            assert_int_equal(eddy_record_value_i64(o) % 2, 1);
            TU_ASSERT_BYTES(o->key, o->key_len, "key", 3);
            sum_even += eddy_record_value_i64(e);
            sum_odd += eddy_record_value_i64(o);
        }
        assert_int_equal(sum_even, 2450);
        assert_int_equal(sum_odd, 2500);
        eddy_collection_destroy(evens);
        eddy_collection_destroy(odds);
        eddy_env_destroy(env);
    }
}

/* ------------------------------------------------------------------------ */
/* TTL                                                                      */
/* ------------------------------------------------------------------------ */

static int ttl_process(eddy_ctx_t *ctx, const eddy_record_t *in,
                       eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    const void *v;
    size_t len;
    int s = eddy_value_get(ctx, 0, &v, &len);
    int l = eddy_value_get(ctx, 1, &v, &len);
    if (s < 0 || l < 0) {
        return s < 0 ? s : l;
    }
    int64_t one = 1;
    int rc;
    if ((rc = eddy_value_set(ctx, 0, &one, sizeof(one))) != 0 ||
        (rc = eddy_value_set(ctx, 1, &one, sizeof(one))) != 0) {
        return rc;
    }
    return emitf(ctx, out, EDDY_TS_NONE, "%lld short=%d long=%d",
                 (long long)eddy_record_value_i64(in), s, l);
}

static void test_value_state_ttl(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_collection_t *out = eddy_collection_new();
    eddy_process_fn_t fn = {ttl_process, NULL, NULL};
    /* Two records ~330 ms apart: beyond the short TTL, within the long. */
    eddy_stream_t *src = eddy_source_generator(env, 2, 3.0, gen_i64, "k");
    eddy_stream_t *p = eddy_process(eddy_key_by(src, NULL, NULL), &fn);
    eddy_state_desc_t d = {.name = "short",
                           .kind = EDDY_STATE_VALUE,
                           .serializer = eddy_serializer_i64(),
                           .ttl_ms = 100};
    assert_int_equal(eddy_declare_state(p, &d), 0);
    d.name = "long";
    d.ttl_ms = 60000;
    assert_int_equal(eddy_declare_state(p, &d), 1);
    eddy_sink_collect(p, out);
    uint64_t t0 = tu_now_ms();
    EXECUTE_OK(env);
    assert_true(tu_now_ms() - t0 >= 300);
    ASSERT_LINES(out, "k:0 short=0 long=0", "k:1 short=0 long=1");
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* Misuse                                                                   */
/* ------------------------------------------------------------------------ */

static int misuse_process(eddy_ctx_t *ctx, const eddy_record_t *in,
                          eddy_collector_t *out, void *opaque)
{
    (void)in;
    (void)out;
    const char *what = opaque;
    int32_t small = 1;
    if (strcmp(what, "kind") == 0) {
        return eddy_list_add(ctx, 0, "x", 1);
    }
    if (strcmp(what, "id") == 0) {
        const void *v;
        size_t len;
        return eddy_value_get(ctx, 5, &v, &len);
    }
    if (strcmp(what, "size") == 0) {
        return eddy_value_set(ctx, 0, &small, sizeof(small));
    }
    return eddy_ctx_fail(ctx, "unknown misuse %s", what);
}

static void misuse_job(const char *what, const char *msg)
{
    static const eddy_record_t recs[] = {{"k", 1, "v", 1, EDDY_TS_NONE}};
    eddy_env_t *env = eddy_env_new();
    eddy_process_fn_t fn = {misuse_process, NULL, (void *)what};
    eddy_stream_t *p = eddy_process(
        eddy_key_by(eddy_source_collection(env, recs, 1), NULL, NULL), &fn);
    eddy_state_desc_t d = {.name = "v",
                           .kind = EDDY_STATE_VALUE,
                           .serializer = eddy_serializer_i64()};
    assert_int_equal(eddy_declare_state(p, &d), 0);
    eddy_sink_discard(p);
    run_expect_failure(env, msg);
    eddy_env_destroy(env);
}

static int map_uses_state(eddy_ctx_t *ctx, const eddy_record_t *in,
                          eddy_record_t *out, void *opaque)
{
    (void)in;
    (void)out;
    if (opaque != NULL) {
        return eddy_timer_register(ctx, EDDY_EVENT_TIME, 1);
    }
    const void *v;
    size_t len;
    return eddy_value_get(ctx, 0, &v, &len);
}

static void test_state_misuse(void **state)
{
    (void)state;
    misuse_job("kind", "operator 'Process' (subtask 1 of 1) failed: "
                       "eddy_list_add: state 'v' is not of that kind");
    misuse_job("id", "eddy_value_get: no state with id 5");
    misuse_job("size", "state 'v' (i64) takes 8-byte values, got 4 bytes");

    /* State and timers outside keyed operators. */
    static const eddy_record_t recs[] = {{"k", 1, "v", 1, EDDY_TS_NONE}};
    for (int timers = 0; timers < 2; timers++) {
        eddy_env_t *env = eddy_env_new();
        eddy_sink_discard(eddy_map(eddy_source_collection(env, recs, 1),
                                   map_uses_state, timers ? "t" : NULL));
        run_expect_failure(
            env, timers ? "operator 'Map' (subtask 1 of 1) failed: "
                          "eddy_timer_register: timers are only available in "
                          "keyed process functions"
                        : "operator 'Map' (subtask 1 of 1) failed: "
                          "eddy_value_get: keyed state is only available in "
                          "keyed process functions");
        eddy_env_destroy(env);
    }

    /* Declaring state on an operator that has none. */
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *m =
        eddy_map(eddy_source_collection(env, recs, 1), map_uses_state, NULL);
    eddy_state_desc_t d = {.name = "v", .kind = EDDY_STATE_VALUE};
    assert_int_equal(eddy_declare_state(m, &d), -1);
    run_expect_failure(env, "eddy_declare_state: 'Map' is not a keyed process "
                            "operator");
    eddy_env_destroy(env);

    /* A process function needs a keyed input. */
    env = eddy_env_new();
    eddy_process_fn_t fn = {misuse_process, NULL, "kind"};
    eddy_sink_discard(eddy_process(eddy_source_collection(env, recs, 1), &fn));
    run_expect_failure(env, "operator 'Process' needs a keyed stream");
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* Co-process                                                               */
/* ------------------------------------------------------------------------ */

/*
 * A control stream ("on"/"off" per key) and a data stream filtered by it:
 * process1 writes the key's flag, process2 reads it. The data source waits
 * until every control record has been processed, so the result does not
 * depend on how the two inputs interleave.
 */
typedef struct gate_ctl {
    atomic_int control_done;
    int ncontrol;
    atomic_bool timed_out;
} gate_ctl_t;

static int ctl_process1(eddy_ctx_t *ctx, const eddy_record_t *in,
                        eddy_collector_t *out, void *opaque)
{
    (void)out;
    gate_ctl_t *g = opaque;
    int64_t on = val_is(in, "on");
    int rc = eddy_value_set(ctx, 0, &on, sizeof(on));
    atomic_fetch_add(&g->control_done, 1);
    return rc;
}

static int ctl_process2(eddy_ctx_t *ctx, const eddy_record_t *in,
                        eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    const void *v;
    size_t len;
    int rc = eddy_value_get(ctx, 0, &v, &len);
    if (rc < 0) {
        return rc;
    }
    int64_t on = 0;
    if (rc == 1) {
        memcpy(&on, v, sizeof(on));
    }
    /* Count what passes per key in a second state. */
    int64_t n = 0;
    if ((rc = eddy_value_get(ctx, 1, &v, &len)) == 1) {
        memcpy(&n, v, sizeof(n));
    }
    n += on;
    if ((rc = eddy_value_set(ctx, 1, &n, sizeof(n))) != 0) {
        return rc;
    }
    return on ? eddy_collect(out, in) : 0;
}

static bool control_done(void *arg)
{
    gate_ctl_t *g = arg;
    return atomic_load(&g->control_done) >= g->ncontrol;
}

static int gen_data(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                    void *opaque)
{
    gate_ctl_t *g = opaque;
    if (index == 0 && !tu_wait_until(control_done, g, 10000)) {
        atomic_store(&g->timed_out, true);
    }
    char *k = eddy_ctx_scratch(ctx, 8);
    snprintf(k, 8, "k%d", (int)(index % 10));
    int64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    *v = (int64_t)index;
    *out = (eddy_record_t){k, strlen(k), v, sizeof(*v), EDDY_TS_NONE};
    return 0;
}

static void test_co_process_shared_state(void **state)
{
    (void)state;
    /* Keys k0..k9 on, then k5 and k7 off, then k7 on again. */
    char keys[13][4];
    eddy_record_t ctl[13];
    for (int i = 0; i < 10; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        ctl[i] = krec(keys[i], "on", EDDY_TS_NONE);
    }
    ctl[10] = krec("k5", "off", EDDY_TS_NONE);
    ctl[11] = krec("k7", "off", EDDY_TS_NONE);
    ctl[12] = krec("k7", "on", EDDY_TS_NONE);
    static const int ps[] = {1, 4};
    for (int pi = 0; pi < 2; pi++) {
        gate_ctl_t *g = calloc(1, sizeof(*g));
        g->ncontrol = 13;
        eddy_env_t *env = eddy_env_new();
        eddy_collection_t *out = eddy_collection_new();
        eddy_co_process_fn_t fn = {ctl_process1, ctl_process2, NULL, g};
        eddy_stream_t *control =
            keyed_in_order(eddy_source_collection(env, ctl, 13));
        eddy_stream_t *data = eddy_key_by(
            eddy_source_generator(env, 200, 0, gen_data, g), NULL, NULL);
        eddy_stream_t *p = eddy_co_process(control, data, &fn);
        eddy_state_desc_t d = {.name = "enabled",
                               .kind = EDDY_STATE_VALUE,
                               .serializer = eddy_serializer_i64()};
        assert_int_equal(eddy_declare_state(p, &d), 0);
        d.name = "passed";
        assert_int_equal(eddy_declare_state(p, &d), 1);
        eddy_sink_collect(eddy_parallelism(p, ps[pi]), out);
        EXECUTE_OK(env);
        assert_false(atomic_load(&g->timed_out));
        /* 20 records per key; k5 is off. */
        assert_int_equal(eddy_collection_count(out), 180);
        for (size_t i = 0; i < 180; i++) {
            const eddy_record_t *r = eddy_collection_get(out, i);
            assert_int_not_equal(eddy_record_value_i64(r) % 10, 5);
            assert_string_not_equal((const char *)r->key, "k5");
        }
        eddy_collection_destroy(out);
        eddy_env_destroy(env);
        free(g);
    }
}

/*
 * Event-time timers in a co-process function: orders (input 1) wait 10 ms
 * of event time for their payment (input 2). Payments are never later than
 * their order's deadline, so each arrives before the deadline's timer can
 * fire, whatever the interleaving of the inputs.
 */
static int ord_process1(eddy_ctx_t *ctx, const eddy_record_t *in,
                        eddy_collector_t *out, void *opaque)
{
    (void)out;
    (void)opaque;
    return eddy_timer_register(ctx, EDDY_EVENT_TIME, in->ts + 10);
}

static int ord_process2(eddy_ctx_t *ctx, const eddy_record_t *in,
                        eddy_collector_t *out, void *opaque)
{
    (void)in;
    (void)out;
    (void)opaque;
    int64_t one = 1;
    return eddy_value_set(ctx, 0, &one, sizeof(one));
}

static int ord_on_timer(eddy_ctx_t *ctx, int64_t ts, eddy_time_domain_t domain,
                        eddy_collector_t *out, void *opaque)
{
    (void)opaque;
    if (domain != EDDY_EVENT_TIME) {
        return eddy_ctx_fail(ctx, "wrong domain");
    }
    const void *v;
    size_t len;
    int rc = eddy_value_get(ctx, 0, &v, &len);
    if (rc < 0) {
        return rc;
    }
    return emitf(ctx, out, ts, "%s@%lld", rc == 1 ? "paid" : "unpaid",
                 (long long)ts);
}

/* Punctuated watermarks: the largest timestamp so far - 1. */
static int64_t wm_monotonous(void *state, const eddy_record_t *rec,
                             void *opaque)
{
    (void)opaque;
    int64_t *max = state;
    if (rec->ts > *max) {
        *max = rec->ts;
    }
    return *max - 1;
}

static void test_co_process_event_timers(void **state)
{
    (void)state;
    char keys[40][8];
    eddy_record_t orders[40], payments[40];
    size_t np = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof(keys[i]), "o%02d", i);
        orders[i] = krec(keys[i], "order", 1000 + 5 * i);
        if (i % 3 != 0) {
            /* Paid within the deadline (0..10 ms after the order). */
            payments[np++] = krec(keys[i], "pay", 1000 + 5 * i + (i % 11));
        }
    }
    /* Payments sorted by time (monotonous watermarks). */
    for (size_t i = 1; i < np; i++) {
        for (size_t j = i; j > 0 && payments[j - 1].ts > payments[j].ts; j--) {
            eddy_record_t t = payments[j];
            payments[j] = payments[j - 1];
            payments[j - 1] = t;
        }
    }
    static const int ps[] = {1, 4};
    for (int pi = 0; pi < 2; pi++) {
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_watermark_interval(env, 0);
        eddy_collection_t *out = eddy_collection_new();
        eddy_watermark_strategy_t ws =
            eddy_watermarks_custom(wm_monotonous, NULL, sizeof(int64_t), NULL);
        eddy_stream_t *o = keyed_in_order(eddy_assign_timestamps(
            eddy_source_collection(env, orders, 40), &ws));
        eddy_stream_t *p = keyed_in_order(eddy_assign_timestamps(
            eddy_source_collection(env, payments, np), &ws));
        eddy_co_process_fn_t fn = {ord_process1, ord_process2, ord_on_timer,
                                   NULL};
        eddy_stream_t *cp = eddy_co_process(o, p, &fn);
        eddy_state_desc_t d = {.name = "paid", .kind = EDDY_STATE_VALUE};
        assert_int_equal(eddy_declare_state(cp, &d), 0);
        eddy_sink_collect(eddy_parallelism(cp, ps[pi]), out);
        EXECUTE_OK(env);
        assert_int_equal(eddy_collection_count(out), 40);
        lines_t l = lines_by_key(out);
        for (int i = 0; i < 40; i++) {
            char want[64];
            snprintf(want, sizeof(want), "o%02d:%s@%d", i,
                     i % 3 != 0 ? "paid" : "unpaid", 1000 + 5 * i + 10);
            assert_string_equal(l.v[i], want);
        }
        free(l.v);
        eddy_collection_destroy(out);
        eddy_env_destroy(env);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_list_map_state),
        cmocka_unit_test(test_reducing_aggregating_state),
        cmocka_unit_test(test_event_time_timers),
        cmocka_unit_test(test_processing_time_timers),
        cmocka_unit_test(test_ctx_key_and_side_outputs),
        cmocka_unit_test(test_value_state_ttl),
        cmocka_unit_test(test_state_misuse),
        cmocka_unit_test(test_co_process_shared_state),
        cmocka_unit_test(test_co_process_event_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
