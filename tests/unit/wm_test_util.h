/*
 * eddy — test-only operators for event-time tests: a recorder that logs
 * every record and watermark it receives, and a scripted source.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The recorder (wmt_recorder) is an operator class defined here, attached
 * with the internal eddy__node_add: it logs, in arrival order, each record
 * (timestamp and value) and each watermark its input delivers, then passes
 * both on. Its log also publishes the largest watermark and the number of
 * records seen so far, which scripted sources wait on.
 *
 * The scripted source (wmt_script_source) runs a list of steps: emit a
 * record, forward a watermark (or write one raw to its channels, bypassing
 * the "only forward" rule), mark its output idle or active, wait until the
 * recorder has seen a watermark or a number of records, sleep, end. Waiting
 * on what a recorder saw orders events across sources and channels, so the
 * tests can assert exact watermark sequences without depending on timing.
 * A wait gives up after a deadline and fails the job with a message.
 *
 * THREADS. Operators run on task threads: they append to the log under its
 * mutex and never use cmocka asserts; tests read the log after
 * eddy_env_execute returns (or under the mutex).
 */
#ifndef EDDY_TESTS_UNIT_WM_TEST_UTIL_H
#define EDDY_TESTS_UNIT_WM_TEST_UTIL_H

#include "test_util.h"

#include <stdatomic.h>

#include "runtime/runtime.h"

#define WMT_MAX_EVENTS 4096

typedef struct wmt_event {
    char kind; /* 'r' record, 'w' watermark */
    int subtask;
    int64_t v; /* the record's timestamp, or the watermark */
    char val[24];
} wmt_event_t;

typedef struct wmt_log {
    pthread_mutex_t mu;
    wmt_event_t *ev;
    size_t nev;
    size_t cap;
    bool overflow;
    atomic_llong max_wm; /* largest watermark seen; INT64_MIN: none */
    atomic_llong nrec;   /* records seen */
} wmt_log_t;

/* A log holding up to `cap` events (later ones set `overflow`). */
static inline wmt_log_t *wmt_log_new_cap(size_t cap)
{
    wmt_log_t *log = calloc(1, sizeof(*log));
    log->ev = calloc(cap, sizeof(*log->ev));
    log->cap = cap;
    pthread_mutex_init(&log->mu, NULL);
    atomic_init(&log->max_wm, INT64_MIN);
    atomic_init(&log->nrec, 0);
    return log;
}

static inline wmt_log_t *wmt_log_new(void)
{
    return wmt_log_new_cap(WMT_MAX_EVENTS);
}

static inline void wmt_log_free(wmt_log_t *log)
{
    pthread_mutex_destroy(&log->mu);
    free(log->ev);
    free(log);
}

static inline void wmt_log_add(wmt_log_t *log, char kind, int subtask,
                               int64_t v, const void *val, size_t len)
{
    pthread_mutex_lock(&log->mu);
    if (log->nev < log->cap) {
        wmt_event_t *e = &log->ev[log->nev++];
        e->kind = kind;
        e->subtask = subtask;
        e->v = v;
        size_t n = EDDY_MIN(len, sizeof(e->val) - 1);
        if (n > 0) {
            memcpy(e->val, val, n);
        }
        e->val[n] = '\0';
    } else {
        log->overflow = true;
    }
    pthread_mutex_unlock(&log->mu);
}

static inline int wmt_rec_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    wmt_log_t *log = op->op_node->s_config;
    wmt_log_add(log, 'r', op->op_ctx.cx_subtask, rec->ts, rec->value,
                rec->value_len);
    atomic_fetch_add(&log->nrec, 1);
    return eddy__emit(op, rec);
}

static inline int wmt_rec_watermark(eddy__op_t *op, int64_t wm)
{
    wmt_log_t *log = op->op_node->s_config;
    wmt_log_add(log, 'w', op->op_ctx.cx_subtask, wm, NULL, 0);
    long long cur = atomic_load(&log->max_wm);
    while (wm > cur && !atomic_compare_exchange_weak(&log->max_wm, &cur, wm)) {
    }
    return eddy__op_forward_watermark(op, wm);
}

/* Attaches a recorder logging into `log` (parallelism: the env default). */
static inline eddy_stream_t *wmt_recorder(eddy_stream_t *in, wmt_log_t *log)
{
    static const eddy__op_class_t cls = {
        .oc_kind = "Recorder",
        .oc_inputs = 1,
        .oc_process = wmt_rec_process,
        .oc_watermark = wmt_rec_watermark,
    };
    if (in == NULL) {
        return NULL;
    }
    eddy_stream_t *s = eddy__node_add(in->s_env, &cls, &in, 1);
    if (s != NULL) {
        s->s_config = log;
    }
    return s;
}

/* The watermarks of the log (of every subtask), in arrival order. */
static inline size_t wmt_wms(wmt_log_t *log, int64_t *out, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&log->mu);
    for (size_t i = 0; i < log->nev; i++) {
        if (log->ev[i].kind == 'w' && n < cap) {
            out[n++] = log->ev[i].v;
        }
    }
    pthread_mutex_unlock(&log->mu);
    return n;
}

static inline const char *wmt_fmt_ts(char *buf, size_t size, int64_t v)
{
    if (v == INT64_MAX) {
        snprintf(buf, size, "MAX");
    } else if (v == INT64_MIN) {
        snprintf(buf, size, "MIN");
    } else {
        snprintf(buf, size, "%lld", (long long)v);
    }
    return buf;
}

/* Renders a sequence as "a, b, MAX". */
static inline void wmt_fmt_seq(char *buf, size_t size, const int64_t *v,
                               size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        char t[32];
        int k = snprintf(buf + used, size - used, "%s%s", i > 0 ? ", " : "",
                         wmt_fmt_ts(t, sizeof(t), v[i]));
        if (k < 0) {
            break;
        }
        used += (size_t)k;
    }
}

static inline void wmt_assert_seq(const int64_t *got, size_t ngot,
                                  const int64_t *want, size_t nwant,
                                  const char *what)
{
    bool same = ngot == nwant;
    for (size_t i = 0; same && i < ngot; i++) {
        same = got[i] == want[i];
    }
    if (!same) {
        char g[1024], w[1024];
        wmt_fmt_seq(g, sizeof(g), got, ngot);
        wmt_fmt_seq(w, sizeof(w), want, nwant);
        fail_msg("%s: got [%s], expected [%s]", what, g, w);
    }
}

/* Asserts the recorder's exact watermark sequence. */
#define WMT_ASSERT_WMS(log, ...)                                               \
    do {                                                                       \
        static const int64_t want_[] = {__VA_ARGS__};                          \
        int64_t got_[WMT_MAX_EVENTS];                                          \
        size_t n_ = wmt_wms((log), got_, WMT_MAX_EVENTS);                      \
        wmt_assert_seq(got_, n_, want_, EDDY_ARRAY_SIZE(want_), "watermarks"); \
    } while (0)

/*
 * Renders the log of subtask `subtask` (-1: all) as "r100 r300 w249 wMAX":
 * records by timestamp, watermarks by value, in arrival order.
 */
static inline char *wmt_events(wmt_log_t *log, int subtask)
{
    size_t cap = 64 + log->nev * 24, used = 0;
    char *buf = malloc(cap);
    buf[0] = '\0';
    pthread_mutex_lock(&log->mu);
    for (size_t i = 0; i < log->nev; i++) {
        const wmt_event_t *e = &log->ev[i];
        if (subtask >= 0 && e->subtask != subtask) {
            continue;
        }
        char t[32];
        used += (size_t)snprintf(buf + used, cap - used, "%s%c%s",
                                 used > 0 ? " " : "", e->kind,
                                 wmt_fmt_ts(t, sizeof(t), e->v));
    }
    pthread_mutex_unlock(&log->mu);
    return buf;
}

#define WMT_ASSERT_EVENTS(log, subtask, want)                                  \
    do {                                                                       \
        char *got_ = wmt_events((log), (subtask));                             \
        if (strcmp(got_, (want)) != 0) {                                       \
            fprintf(stderr, "events: got \"%s\"\n   expected \"%s\"\n", got_,  \
                    (want));                                                   \
            free(got_);                                                        \
            fail_msg("event sequence differs (see above)");                    \
        }                                                                      \
        free(got_);                                                            \
    } while (0)

/* ---- the scripted source ---- */

typedef enum wmt_op {
    WMT_REC,      /* emit a record with timestamp v (value: the script name) */
    WMT_WM,       /* eddy__op_forward_watermark(v) */
    WMT_WM_RAW,   /* write watermark v to every output channel as is */
    WMT_IDLE,     /* mark the output idle */
    WMT_ACTIVE,   /* mark the output active */
    WMT_WAIT_WM,  /* wait until the recorder saw a watermark >= v */
    WMT_WAIT_REC, /* wait until the recorder saw >= v records */
    WMT_SLEEP,    /* wait v ms (ticks keep running) */
    WMT_END
} wmt_op_t;

typedef struct wmt_step {
    wmt_op_t op;
    int64_t v;
} wmt_step_t;

typedef struct wmt_script {
    const char *name;
    const wmt_step_t *steps;
    size_t nsteps;
    wmt_log_t *log; /* what WAIT steps look at */
} wmt_script_t;

typedef struct wmt_script_state {
    size_t pc;
    int64_t since_ms; /* when the current wait/sleep step started; 0: not */
} wmt_script_state_t;

static inline int wmt_script_open(eddy__op_t *op)
{
    op->op_data = calloc(1, sizeof(wmt_script_state_t));
    return 0;
}

static inline void wmt_script_close(eddy__op_t *op)
{
    free(op->op_data);
    op->op_data = NULL;
}

/* Ships what is buffered and naps, so the task runs its ticks. */
static inline int wmt_nap(eddy__op_t *op)
{
    int rc = eddy__task_flush(op->op_task);
    tu_sleep_us(500);
    return rc != 0 ? rc : EDDY__POLL_MORE;
}

static inline int wmt_script_poll(eddy__op_t *op, int budget)
{
    const wmt_script_t *sc = op->op_node->s_config;
    wmt_script_state_t *st = op->op_data;
    EDDY_UNUSED(budget);
    while (st->pc < sc->nsteps) {
        const wmt_step_t *s = &sc->steps[st->pc];
        int64_t now = eddy__now_ms();
        int rc = 0;
        bool done = true;
        switch (s->op) {
        case WMT_REC: {
            eddy_record_t rec = {sc->name, strlen(sc->name), sc->name,
                                 strlen(sc->name), s->v};
            rc = eddy__emit(op, &rec);
            break;
        }
        case WMT_WM:
            rc = eddy__op_forward_watermark(op, s->v);
            break;
        case WMT_WM_RAW:
            for (int i = 0; i < op->op_nwriters && rc == 0; i++) {
                rc = eddy__writer_event(op->op_writers[i], EDDY__EL_WATERMARK,
                                        s->v);
            }
            break;
        case WMT_IDLE:
        case WMT_ACTIVE:
            rc = eddy__task_set_idle(op->op_task, s->op == WMT_IDLE);
            break;
        case WMT_WAIT_WM:
        case WMT_WAIT_REC: {
            long long seen = s->op == WMT_WAIT_WM
                                 ? atomic_load(&sc->log->max_wm)
                                 : atomic_load(&sc->log->nrec);
            if (seen >= s->v) {
                break;
            }
            if (st->since_ms == 0) {
                st->since_ms = now;
            } else if (now - st->since_ms > tu_timeout_ms(5000)) {
                return eddy__op_fail(op, EDDY_ERR_STATE,
                                     "%s: step %zu timed out waiting for %s "
                                     ">= %lld",
                                     sc->name, st->pc,
                                     s->op == WMT_WAIT_WM ? "a watermark"
                                                          : "records",
                                     (long long)s->v);
            }
            done = false;
            break;
        }
        case WMT_SLEEP:
            if (st->since_ms == 0) {
                st->since_ms = now;
            }
            done = now - st->since_ms >= s->v;
            break;
        case WMT_END:
            return EDDY__POLL_END;
        }
        if (rc != 0) {
            return rc;
        }
        if (!done) {
            return wmt_nap(op);
        }
        st->since_ms = 0;
        st->pc++;
    }
    return EDDY__POLL_END;
}

/* A parallelism-1 source running `sc` (which must outlive the job). */
static inline eddy_stream_t *wmt_script_source(eddy_env_t *env,
                                               const wmt_script_t *sc)
{
    static const eddy__op_class_t cls = {
        .oc_kind = "Source: Script",
        .oc_default_parallelism = 1,
        .oc_source = true,
        .oc_open = wmt_script_open,
        .oc_poll = wmt_script_poll,
        .oc_close = wmt_script_close,
    };
    eddy_stream_t *s = eddy__node_add(env, &cls, NULL, 0);
    if (s != NULL) {
        s->s_config = (void *)sc;
        s->s_name = (char *)sc->name;
    }
    return s;
}

#define WMT_SCRIPT(var, nm, logp, ...)                                         \
    static const wmt_step_t var##_steps_[] = {__VA_ARGS__};                    \
    wmt_script_t var = {(nm), var##_steps_, EDDY_ARRAY_SIZE(var##_steps_),     \
                        (logp)}

#endif /* EDDY_TESTS_UNIT_WM_TEST_UTIL_H */
