/*
 * eddy — window operators: tumbling, sliding, session, global and count
 * windows with reduce, aggregate or process window functions.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Semantics are Flink's WindowOperator: an assigner maps a record to
 * windows, a trigger decides when a window emits, allowed lateness keeps a
 * window's state after it fired (late records then cause late firings), and
 * window state is cleaned up at end - 1 + allowed lateness. Each subtask owns
 * a keyed state backend (src/state/state.h) and a timer service
 * (src/runtime/timers.h), like keyed process functions (process.c).
 *
 * State ids (internal states, none declared by the user):
 *   ACC   value: reduce value or aggregate accumulator of a window, prefixed
 *         by a 16-byte header [u64 count][i64 last ts] when a count trigger
 *         or a global window needs it;
 *   LIST  list: process functions keep records as [i64 ts][value bytes];
 *   META  value: the header for process functions; [u64 seq][i64 last ts]
 *         per key for count-sliding windows;
 *   SESS  value: a key's session windows (merging window set);
 *   RING  value: count-sliding windows keep the last `count` records of a
 *         key, one per slot (namespace = slot index).
 * The namespace of window state is the window (or, for sliding windows, the
 * slice; for sessions, the session's state window): 16 bytes, start and end
 * big-endian with the sign bit flipped, so byte order is time order.
 *
 * Modes:
 *   WINDOWS  tumbling, global and count-tumbling windows (and sliding windows
 *            that cannot use slices): state and timers per window, as Flink.
 *   SLICED   sliding windows with their natural time trigger, not purging,
 *            and a function that can combine partial results (reduce,
 *            process, aggregate with merge). Records go to one slice of
 *            gcd(size, slide) ms, so a record costs one state update, as in a
 *            tumbling window, not size/slide. A window fires by combining its
 *            slices. Timers: a new slice registers the first window that
 *            contains it and is still pending; a window that fires registers
 *            the next one if it shares slices with it (a chain per key), and
 *            the cleanup timer of a slice's last window removes the slices
 *            whose last window it is. Reduce functions must therefore be
 *            associative (they combine slices in time order).
 *   SESSION  merging windows: the key's sessions are kept sorted and
 *            disjoint in SESS; each has a state window (the namespace of its
 *            contents) that stays fixed while the session grows, so growing
 *            a session moves no state; merging two sessions folds one's
 *            contents into the other's (aggregate merge, reduce function, or
 *            list copy). Timers use the actual session window.
 *   RING     count-sliding windows (Flink: CountTrigger(slide) with
 *            CountEvictor(count)).
 *
 * Timers are (time, key, window): the same namespace carries the trigger's
 * timer (end - 1) and the cleanup timer (end - 1 + lateness), distinguished
 * by their time; with no lateness they coincide and one timer fires then
 * cleans. Cleanup times that saturate at INT64_MAX are not registered (Flink).
 * Processing-time windows fire and are cleaned up at `end` (see trig_time).
 *
 * Decisions beyond Flink's model, documented in the report and here:
 *   - Results carry the key and the timestamp end - 1 (count and global
 *     windows: the last record's timestamp). Records a process function emits
 *     get that timestamp, and the key when they have none.
 *   - Global windows with the default (never) trigger keep no state.
 *   - At the end of a bounded input, pending processing-time windows fire
 *     (the clock is taken to jump to the end of time, as Flink's BATCH mode
 *     does), so no record is lost; event-time windows fire on the final
 *     watermark.
 *   - eddy_ctx_window is set while a window's result is computed and
 *     emitted (aggregate merge/result, reduce over slices or a count window,
 *     process functions), NULL while a record is folded into the state.
 *
 * Steady state allocates nothing per record: buffers are scratch memory or
 * grow-only buffers of the operator; state and timers recycle their memory.
 */
#include <stdio.h>
#include <stdlib.h>

#include "operators/join.h"
#include "runtime/runtime.h"
#include "runtime/timers.h"

/* ---- configuration (graph building) ---- */

enum { FN_REDUCE, FN_AGGREGATE, FN_PROCESS };
enum { MODE_WINDOWS, MODE_SLICED, MODE_SESSION, MODE_RING };
enum { TRIG_NEVER, TRIG_EVENT, TRIG_PROC, TRIG_COUNT };
enum { SID_ACC, SID_LIST, SID_META, SID_SESS, SID_RING, NSTATES };

#define HDR 16     /* [u64 count][i64 last ts] */
#define NS_LEN 16  /* window namespace */
#define SLOT_LEN 8 /* ring slot namespace */
#define ELEM_TS 8  /* list elements and ring slots: [i64 ts][value] */
/* Sizes, slides and gaps above this could overflow the window arithmetic. */
#define MAX_SPAN (INT64_MAX / 4)
/* Sliding windows prefetch this many slices ahead when they fire. */
#define PREFETCH_SLICES 16
/* The task never sleeps longer than this for a processing-time timer. */
#define MAX_TICK_WAIT_MS 3600000

typedef struct win_cfg {
    eddy_window_spec_t wc_spec;
    int wc_fn;
    eddy_reduce_fn wc_reduce;
    eddy_window_process_fn wc_process;
    void *wc_opaque;
    eddy_aggregate_t wc_agg;
    int wc_mode;
    int wc_trig;            /* TRIG_* */
    int wc_trig_dom;        /* EDDY__TIME_* for time triggers */
    uint64_t wc_trig_count; /* TRIG_COUNT */
    bool wc_purging;
    bool wc_time;        /* tumbling, sliding or session: records have a time */
    bool wc_event;       /* ... and it is event time */
    int wc_cleanup_dom;  /* EDDY__TIME_*, or -1: windows are never cleaned */
    bool wc_global;      /* global window: results carry the last ts */
    bool wc_hdr;         /* window contents carry the header */
    int64_t wc_size;     /* TUMBLING, SLIDING */
    int64_t wc_slide;    /* SLIDING (= size for tumbling) */
    int64_t wc_slice;    /* SLICED: gcd(size, slide) */
    int64_t wc_offset;   /* in [0, slide) */
    int64_t wc_gap;      /* SESSION */
    int64_t wc_lateness; /* event time only */
    uint64_t wc_count;   /* COUNT_SLIDING */
    uint64_t wc_count_slide;
    int wc_late_tag; /* side output id, or -1 */
    atomic_uint_least64_t wc_dropped;
    atomic_uint_least64_t wc_leftover; /* test hook, see below */
} win_cfg_t;

/* ---- the operator instance ---- */

typedef struct win {
    eddy__op_t *w_op;
    const win_cfg_t *w_cfg;
    eddy__kstate_t *w_ks;
    eddy__timers_t *w_timers;
    eddy__state_spec_t w_specs[NSTATES];
    int w_max_par;
    size_t w_hdr;            /* HDR or 0 */
    eddy_window_t w_cur;     /* the window being emitted */
    int64_t w_emit_ts;       /* timestamp of process function output */
    eddy_collector_t w_pout; /* the collector given to process functions */
    unsigned char *w_tkey;   /* key and namespace of the timer being fired */
    size_t w_tkey_cap;
    unsigned char *w_sess; /* the current key's sessions */
    size_t w_sess_cap;
    unsigned char *w_mbuf; /* list elements being merged */
    size_t w_mbuf_cap;
    unsigned char *w_rbuf[2]; /* reduce folds: accumulator, next value */
    size_t w_rbuf_cap[2];
    /* The last alignment (records come in time order, so most repeat it):
     * WINDOWS mode: times in [w_al_lo, w_al_hi) align to the window start
     * w_al_lo; SLICED mode: to the slice [w_al_lo, w_al_hi), whose windows
     * end at w_al_e1 .. w_al_elast. Empty while w_al_lo >= w_al_hi. */
    int64_t w_al_lo, w_al_hi;
    int64_t w_al_e1, w_al_elast;
} win_t;

/* An iterator over a window's records (process window functions). */
enum { WE_ONE, WE_SLICES, WE_RING };
struct eddy_window_elements {
    win_t *we_w;
    int we_kind;
    unsigned char we_ns[NS_LEN];
    eddy__siter_t we_it;
    bool we_open;
    int64_t we_next; /* WE_SLICES: next slice start; WE_RING: next seq */
    int64_t we_end;
    int64_t we_step;
    uint64_t we_seq, we_seq_end;
};

/* A session: the window and where its contents live. */
typedef struct sess {
    int64_t s_start, s_end;
    int64_t s_st_start, s_st_end;
} sess_t;

/* ---- small helpers ---- */

/* Big-endian u64s, one byte swap each (namespaces are encoded for every
 * record). */
static inline void put_be64(unsigned char *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline uint64_t get_be64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

#define SIGN_FLIP (UINT64_C(1) << 63)

static inline void ns_encode(unsigned char *ns, int64_t start, int64_t end)
{
    put_be64(ns, (uint64_t)start ^ SIGN_FLIP);
    put_be64(ns + 8, (uint64_t)end ^ SIGN_FLIP);
}

static inline eddy_window_t ns_decode(const unsigned char *ns)
{
    eddy_window_t w;
    w.start = (int64_t)(get_be64(ns) ^ SIGN_FLIP);
    w.end = (int64_t)(get_be64(ns + 8) ^ SIGN_FLIP);
    return w;
}

static inline int64_t floor_mod(int64_t x, int64_t m)
{
    int64_t r = x % m;
    return r < 0 ? r + m : r;
}

/* The largest t' <= t with t' = off (mod m), off in [0, m) and m <= MAX_SPAN;
 * false if it is below INT64_MIN. Correct for negative t. */
static inline bool align_down(int64_t t, int64_t off, int64_t m, int64_t *out)
{
    int64_t r = floor_mod(t, m) - off;
    if (r < 0) {
        r += m;
    }
    return !__builtin_sub_overflow(t, r, out);
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b != 0) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/*
 * When a time trigger fires window [start, end): event time at end - 1 (the
 * window's max timestamp, Flink's EventTimeTrigger); processing time once
 * the clock has passed end - 1, i.e. at `end`. (Flink's ProcessingTimeTrigger
 * uses end - 1, so a record arriving in that very millisecond after the
 * timer fired makes the window fire twice; one millisecond later no record
 * of the window can still arrive, so every window fires once with all its
 * records — which sliding windows built from slices rely on.)
 */
static inline int64_t trig_time(const win_cfg_t *c, int64_t end)
{
    return c->wc_trig == TRIG_PROC ? end : end - 1;
}

/* When the state of a window ending at `end` is cleaned up (Flink's
 * cleanupTime: end - 1 + lateness in event time, saturating; processing
 * time: when it fires). */
static inline int64_t cleanup_time(const win_cfg_t *c, int64_t end)
{
    if (!c->wc_event) {
        return end;
    }
    int64_t t = end - 1;
    if (__builtin_add_overflow(t, c->wc_lateness, &t)) {
        t = INT64_MAX;
    }
    return t;
}

static inline int64_t watermark(const win_t *w)
{
    return w->w_op->op_in_wm;
}

/* Flink's isWindowLate: an event-time window whose cleanup time has passed
 * takes no more records. */
static inline bool window_late(const win_t *w, int64_t end)
{
    return w->w_cfg->wc_event && cleanup_time(w->w_cfg, end) <= watermark(w);
}

static inline eddy__skey_t wkey(const win_t *w, const void *ns, size_t nslen)
{
    eddy__skey_t k = w->w_op->op_ctx.cx_key;
    k.sk_ns = ns;
    k.sk_nslen = nslen;
    return k;
}

#define KS(w) ((w)->w_ks)
#define KO(w) ((w)->w_ks->ks_ops)

static int state_fail(win_t *w, int rc)
{
    return eddy__op_fail(w->w_op, rc, "window state: %s", eddy_strerror(rc));
}

static int nomem(win_t *w)
{
    return eddy__op_fail(w->w_op, EDDY_ERR_NOMEM, "out of memory");
}

/* Grows an operator buffer (never shrinks: no allocation in steady state). */
static int grow(win_t *w, unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap ? *cap : 256;
    while (n < need) {
        n *= 2;
    }
    unsigned char *p = eddy__try_realloc(*buf, n);
    if (p == NULL) {
        return nomem(w);
    }
    *buf = p;
    *cap = n;
    return 0;
}

static inline void hdr_read(const void *v, uint64_t *count, int64_t *last_ts)
{
    memcpy(count, v, 8);
    memcpy(last_ts, (const unsigned char *)v + 8, 8);
}

static inline void hdr_write(void *v, uint64_t count, int64_t last_ts)
{
    memcpy(v, &count, 8);
    memcpy((unsigned char *)v + 8, &last_ts, 8);
}

/* ---- timers ---- */

static int wtimer_add(win_t *w, int dom, int64_t when, const unsigned char *ns)
{
    eddy__skey_t k = wkey(w, ns, NS_LEN);
    if (eddy__timers_add(w->w_timers, dom, when, &k) != 0) {
        return eddy__op_fail(w->w_op, EDDY_ERR_NOMEM,
                             "out of memory registering a timer");
    }
    eddy__op_t *op = w->w_op;
    if (dom == EDDY__TIME_PROCESSING && when < op->op_next_tick_ms) {
        int64_t cap = eddy__now_ms() + MAX_TICK_WAIT_MS;
        op->op_next_tick_ms = EDDY_MIN(when, cap);
        eddy__task_update_tick(op->op_task);
    }
    return 0;
}

static int wtimer_delete(win_t *w, int dom, int64_t when,
                         const unsigned char *ns)
{
    eddy__skey_t k = wkey(w, ns, NS_LEN);
    return eddy__timers_delete(w->w_timers, dom, when, &k);
}

/* ---- emitting ---- */

/* Records a process window function emits: the window's timestamp, and the
 * key unless the function gave one. */
static int pout_emit(void *target, const eddy_record_t *rec)
{
    win_t *w = target;
    eddy__op_t *op = w->w_op;
    eddy_record_t r = *rec;
    r.ts = w->w_emit_ts;
    if (r.key == NULL) {
        r.key = op->op_ctx.cx_key.sk_key;
        r.key_len = op->op_ctx.cx_key.sk_klen;
    }
    return eddy__emit(op, &r);
}

static int emit_value(win_t *w, const void *v, size_t len, int64_t ts)
{
    eddy__op_t *op = w->w_op;
    eddy_record_t r = {op->op_ctx.cx_key.sk_key, op->op_ctx.cx_key.sk_klen, v,
                       len, ts};
    return eddy__emit(op, &r);
}

/* Emits an aggregate's result for the window in w_cur. */
static int emit_acc(win_t *w, const void *acc, int64_t ts)
{
    eddy__op_t *op = w->w_op;
    const eddy_aggregate_t *agg = &w->w_cfg->wc_agg;
    eddy_record_t out = {op->op_ctx.cx_key.sk_key, op->op_ctx.cx_key.sk_klen,
                         NULL, 0, ts};
    op->op_ctx.cx_window = &w->w_cur;
    eddy__tls_op = op;
    int rc = agg->result(&op->op_ctx, acc, &out, agg->opaque);
    op->op_ctx.cx_window = NULL;
    if (rc != 0) {
        return eddy__op_user_rc(op, rc);
    }
    out.ts = ts;
    return eddy__emit(op, &out);
}

static int call_process(win_t *w, eddy_window_elements_t *it, int64_t ts)
{
    eddy__op_t *op = w->w_op;
    const win_cfg_t *c = w->w_cfg;
    w->w_emit_ts = ts;
    op->op_ctx.cx_window = &w->w_cur;
    eddy__tls_op = op;
    int rc =
        c->wc_process(&op->op_ctx, &w->w_cur, it, &w->w_pout, c->wc_opaque);
    op->op_ctx.cx_window = NULL;
    return rc != 0 ? eddy__op_user_rc(op, rc) : 0;
}

/*
 * Folding values with the reduce function (slices, count windows). The
 * accumulator lives in an operator buffer and scratch memory is recycled
 * after every call, so folding many values needs no more memory than two.
 */
typedef struct rfold {
    bool rf_have;
    int rf_cur;
    eddy_record_t rf_acc;
} rfold_t;

static int rfold_add(win_t *w, rfold_t *f, const void *v, size_t len,
                     int64_t ts)
{
    eddy__op_t *op = w->w_op;
    eddy_ctx_t *ctx = &op->op_ctx;
    const void *src = v;
    size_t srclen = len;
    if (f->rf_have) {
        eddy_record_t in = {ctx->cx_key.sk_key, ctx->cx_key.sk_klen, v, len,
                            ts};
        eddy_record_t out = in;
        eddy__tls_op = op;
        int rc = w->w_cfg->wc_reduce(ctx, &f->rf_acc, &in, &out,
                                     w->w_cfg->wc_opaque);
        if (rc != 0) {
            return eddy__op_user_rc(op, rc);
        }
        src = out.value;
        srclen = out.value_len;
    }
    /* Copy into the buffer that does not hold the accumulator: the result
     * may point into it. */
    int next = f->rf_have ? 1 - f->rf_cur : f->rf_cur;
    int rc = grow(w, &w->w_rbuf[next], &w->w_rbuf_cap[next], srclen + 1);
    if (rc != 0) {
        return rc;
    }
    if (srclen > 0) {
        memcpy(w->w_rbuf[next], src, srclen);
    }
    eddy__scratch_reset(&ctx->cx_scratch);
    f->rf_cur = next;
    f->rf_have = true;
    f->rf_acc = (eddy_record_t){ctx->cx_key.sk_key, ctx->cx_key.sk_klen,
                                w->w_rbuf[next], srclen, ts};
    return 0;
}

/* ---- window contents (WINDOWS and SESSION modes; SLICED per slice) ---- */

/*
 * Adds a record to the contents at `ns`. *created: there were none (the
 * window is new, or was purged). *count_fire: a count trigger fires (its
 * count is reset in the same write).
 */
static int contents_add(win_t *w, const unsigned char *ns,
                        const eddy_record_t *rec, bool *created,
                        bool *count_fire)
{
    const win_cfg_t *c = w->w_cfg;
    eddy__op_t *op = w->w_op;
    eddy_ctx_t *ctx = &op->op_ctx;
    eddy__skey_t k = wkey(w, ns, NS_LEN);
    size_t hdr = w->w_hdr;
    uint64_t count = 0;
    int rc;
    *count_fire = false;

    if (c->wc_fn == FN_PROCESS) {
        eddy__siter_t it;
        *created = KO(w)->ko_list_iter(KS(w), SID_LIST, &k, &it) != 1;
        unsigned char *el = eddy_ctx_scratch(ctx, ELEM_TS + rec->value_len);
        if (el == NULL) {
            return nomem(w);
        }
        memcpy(el, &rec->ts, ELEM_TS);
        if (rec->value_len > 0) {
            memcpy(el + ELEM_TS, rec->value, rec->value_len);
        }
        rc = KO(w)->ko_list_add(KS(w), SID_LIST, &k, el,
                                ELEM_TS + rec->value_len);
        if (rc != 0) {
            return state_fail(w, rc);
        }
        if (hdr == 0) {
            return 0;
        }
        const void *cur;
        size_t curlen;
        rc = KO(w)->ko_get(KS(w), SID_META, &k, &cur, &curlen);
        if (rc < 0) {
            return state_fail(w, rc);
        }
        if (rc == 1 && curlen == HDR) {
            int64_t ts;
            hdr_read(cur, &count, &ts);
        }
        count++;
        if (c->wc_trig == TRIG_COUNT && count >= c->wc_trig_count) {
            *count_fire = true;
            count = 0;
        }
        unsigned char h[HDR];
        hdr_write(h, count, rec->ts);
        rc = KO(w)->ko_put(KS(w), SID_META, &k, h, HDR);
        return rc != 0 ? state_fail(w, rc) : 0;
    }

    if (c->wc_fn == FN_AGGREGATE) {
        /* One lookup: the accumulator is updated in place in the state. */
        const eddy_aggregate_t *agg = &c->wc_agg;
        size_t n = hdr + agg->acc_size;
        void *p;
        rc = KO(w)->ko_get_for_update(KS(w), SID_ACC, &k, n, &p, created);
        if (rc == EDDY_ERR_FORMAT) {
            return eddy__op_fail(op, EDDY_ERR_FORMAT, "corrupt window state");
        }
        if (rc != 0) {
            return state_fail(w, rc);
        }
        unsigned char *buf = p; /* zeroed if created */
        if (hdr > 0) {
            if (!*created) {
                int64_t ts;
                hdr_read(buf, &count, &ts);
            }
            count++;
            if (c->wc_trig == TRIG_COUNT && count >= c->wc_trig_count) {
                *count_fire = true;
                count = 0;
            }
        }
        if (*created && agg->init != NULL) {
            agg->init(buf + hdr, agg->opaque);
        }
        int urc = agg->add(ctx, buf + hdr, rec, agg->opaque);
        if (urc != 0) {
            if (*created) {
                /* As before: a failed first add leaves no contents. */
                (void)KO(w)->ko_remove(KS(w), SID_ACC, &k);
            }
            return eddy__op_user_rc(op, urc);
        }
        if (hdr > 0) {
            hdr_write(buf, count, rec->ts);
        }
        return 0;
    }

    /* FN_REDUCE: values vary in size, so a get, then a put. */
    const void *cur;
    size_t curlen;
    rc = KO(w)->ko_get(KS(w), SID_ACC, &k, &cur, &curlen);
    if (rc < 0) {
        return state_fail(w, rc);
    }
    *created = rc == 0;
    if (!*created && curlen < hdr) {
        return eddy__op_fail(op, EDDY_ERR_FORMAT, "corrupt window state");
    }
    if (hdr > 0) {
        if (!*created) {
            int64_t ts;
            hdr_read(cur, &count, &ts);
        }
        count++;
        if (c->wc_trig == TRIG_COUNT && count >= c->wc_trig_count) {
            *count_fire = true;
            count = 0;
        }
    }

    const void *v = rec->value;
    size_t len = rec->value_len;
    if (!*created) {
        eddy_record_t acc = *rec;
        acc.value = (const unsigned char *)cur + hdr;
        acc.value_len = curlen - hdr;
        eddy_record_t out = *rec;
        int urc = c->wc_reduce(ctx, &acc, rec, &out, c->wc_opaque);
        if (urc != 0) {
            return eddy__op_user_rc(op, urc);
        }
        v = out.value;
        len = out.value_len;
    }
    if (hdr > 0) {
        unsigned char *buf = eddy_ctx_scratch(ctx, hdr + len);
        if (buf == NULL) {
            return nomem(w);
        }
        hdr_write(buf, count, rec->ts);
        if (len > 0) {
            memcpy(buf + hdr, v, len);
        }
        v = buf;
        len += hdr;
    }
    rc = KO(w)->ko_put(KS(w), SID_ACC, &k, v, len);
    return rc != 0 ? state_fail(w, rc) : 0;
}

/* Emits the contents at `ns` as the result of window w_cur (nothing if
 * there are none). */
static int contents_emit(win_t *w, const unsigned char *ns)
{
    const win_cfg_t *c = w->w_cfg;
    eddy__skey_t k = wkey(w, ns, NS_LEN);
    size_t hdr = w->w_hdr;
    int64_t ts = w->w_cur.end - 1;
    uint64_t count;
    const void *cur;
    size_t curlen;
    int rc;

    if (c->wc_fn == FN_PROCESS) {
        if (c->wc_global) {
            rc = KO(w)->ko_get(KS(w), SID_META, &k, &cur, &curlen);
            if (rc < 0) {
                return state_fail(w, rc);
            }
            ts = EDDY_TS_NONE;
            if (rc == 1 && curlen == HDR) {
                hdr_read(cur, &count, &ts);
            }
        }
        eddy_window_elements_t it;
        memset(&it, 0, sizeof(it));
        it.we_w = w;
        it.we_kind = WE_ONE;
        memcpy(it.we_ns, ns, NS_LEN);
        if (KO(w)->ko_list_iter(KS(w), SID_LIST, &k, &it.we_it) != 1) {
            return 0;
        }
        it.we_open = true;
        return call_process(w, &it, ts);
    }

    rc = KO(w)->ko_get(KS(w), SID_ACC, &k, &cur, &curlen);
    if (rc <= 0) {
        return rc < 0 ? state_fail(w, rc) : 0;
    }
    if (curlen < hdr) {
        return eddy__op_fail(w->w_op, EDDY_ERR_FORMAT, "corrupt window state");
    }
    if (c->wc_global) {
        hdr_read(cur, &count, &ts);
    }
    const unsigned char *payload = (const unsigned char *)cur + hdr;
    if (c->wc_fn == FN_REDUCE) {
        return emit_value(w, payload, curlen - hdr, ts);
    }
    return emit_acc(w, payload, ts);
}

static int contents_clear(win_t *w, const unsigned char *ns)
{
    eddy__skey_t k = wkey(w, ns, NS_LEN);
    int rc;
    if (w->w_cfg->wc_fn == FN_PROCESS) {
        rc = KO(w)->ko_remove(KS(w), SID_LIST, &k);
        if (rc == 0 && w->w_hdr > 0) {
            rc = KO(w)->ko_remove(KS(w), SID_META, &k);
        }
    } else {
        rc = KO(w)->ko_remove(KS(w), SID_ACC, &k);
    }
    return rc != 0 ? state_fail(w, rc) : 0;
}

/* Sessions: folds the contents at `src` into those at `dst` and removes
 * them. */
static int contents_merge(win_t *w, const unsigned char *dst,
                          const unsigned char *src)
{
    const win_cfg_t *c = w->w_cfg;
    eddy__op_t *op = w->w_op;
    eddy_ctx_t *ctx = &op->op_ctx;
    eddy__skey_t kd = wkey(w, dst, NS_LEN);
    eddy__skey_t ksrc = wkey(w, src, NS_LEN);
    size_t hdr = w->w_hdr;
    const void *sv, *dv;
    size_t slen, dlen;
    int rc;

    if (c->wc_fn == FN_PROCESS) {
        /* Copy the source's elements out first: adding to the destination
         * may invalidate pointers into the list state. */
        eddy__siter_t it;
        size_t used = 0;
        if (KO(w)->ko_list_iter(KS(w), SID_LIST, &ksrc, &it) == 1) {
            while (KO(w)->ko_list_next(&it, &sv, &slen) == 1) {
                rc = grow(w, &w->w_mbuf, &w->w_mbuf_cap, used + 8 + slen);
                if (rc != 0) {
                    return rc;
                }
                uint64_t l = slen;
                memcpy(w->w_mbuf + used, &l, 8);
                if (slen > 0) {
                    memcpy(w->w_mbuf + used + 8, sv, slen);
                }
                used += 8 + slen;
            }
        }
        rc = KO(w)->ko_remove(KS(w), SID_LIST, &ksrc);
        for (size_t off = 0; rc == 0 && off < used;) {
            uint64_t l;
            memcpy(&l, w->w_mbuf + off, 8);
            rc = KO(w)->ko_list_add(KS(w), SID_LIST, &kd, w->w_mbuf + off + 8,
                                    (size_t)l);
            off += 8 + (size_t)l;
        }
        if (rc == 0 && hdr > 0) {
            uint64_t cs = 0, cd = 0;
            int64_t ts_s = EDDY_TS_NONE, ts_d = EDDY_TS_NONE;
            if (KO(w)->ko_get(KS(w), SID_META, &ksrc, &sv, &slen) == 1 &&
                slen == HDR) {
                hdr_read(sv, &cs, &ts_s);
            }
            if (KO(w)->ko_get(KS(w), SID_META, &kd, &dv, &dlen) == 1 &&
                dlen == HDR) {
                hdr_read(dv, &cd, &ts_d);
            }
            unsigned char h[HDR];
            hdr_write(h, cs + cd, EDDY_MAX(ts_s, ts_d));
            rc = KO(w)->ko_put(KS(w), SID_META, &kd, h, HDR);
            if (rc == 0) {
                rc = KO(w)->ko_remove(KS(w), SID_META, &ksrc);
            }
        }
        return rc != 0 ? state_fail(w, rc) : 0;
    }

    rc = KO(w)->ko_get(KS(w), SID_ACC, &ksrc, &sv, &slen);
    if (rc <= 0) {
        return rc < 0 ? state_fail(w, rc) : 0;
    }
    if (slen < hdr) {
        return eddy__op_fail(op, EDDY_ERR_FORMAT, "corrupt window state");
    }
    /* A copy: writing the destination may move the source's bytes. */
    unsigned char *s = eddy_ctx_scratch(ctx, slen);
    if (s == NULL) {
        return nomem(w);
    }
    memcpy(s, sv, slen);
    rc = KO(w)->ko_get(KS(w), SID_ACC, &kd, &dv, &dlen);
    if (rc < 0) {
        return state_fail(w, rc);
    }
    const void *out = s;
    size_t outlen = slen;
    if (rc == 1) {
        if (dlen < hdr) {
            return eddy__op_fail(op, EDDY_ERR_FORMAT, "corrupt window state");
        }
        uint64_t cs = 0, cd = 0;
        int64_t ts_s = EDDY_TS_NONE, ts_d = EDDY_TS_NONE;
        if (hdr > 0) {
            hdr_read(s, &cs, &ts_s);
            hdr_read(dv, &cd, &ts_d);
        }
        const void *pv;
        size_t plen;
        if (c->wc_fn == FN_REDUCE) {
            eddy_record_t acc = {ctx->cx_key.sk_key, ctx->cx_key.sk_klen,
                                 (const unsigned char *)dv + hdr, dlen - hdr,
                                 EDDY_TS_NONE};
            eddy_record_t in = acc;
            in.value = s + hdr;
            in.value_len = slen - hdr;
            eddy_record_t r = in;
            eddy__tls_op = op;
            int urc = c->wc_reduce(ctx, &acc, &in, &r, c->wc_opaque);
            if (urc != 0) {
                return eddy__op_user_rc(op, urc);
            }
            pv = r.value;
            plen = r.value_len;
        } else {
            if (dlen != slen) {
                return eddy__op_fail(op, EDDY_ERR_FORMAT,
                                     "corrupt window state");
            }
            unsigned char *a = eddy_ctx_scratch(ctx, dlen);
            if (a == NULL) {
                return nomem(w);
            }
            memcpy(a, dv, dlen);
            eddy__tls_op = op;
            int urc = c->wc_agg.merge(ctx, a + hdr, s + hdr, c->wc_agg.opaque);
            if (urc != 0) {
                return eddy__op_user_rc(op, urc);
            }
            pv = a + hdr;
            plen = dlen - hdr;
        }
        unsigned char *buf = eddy_ctx_scratch(ctx, hdr + plen);
        if (buf == NULL) {
            return nomem(w);
        }
        if (hdr > 0) {
            hdr_write(buf, cs + cd, EDDY_MAX(ts_s, ts_d));
        }
        if (plen > 0) {
            memmove(buf + hdr, pv, plen);
        }
        out = buf;
        outlen = hdr + plen;
    }
    rc = KO(w)->ko_put(KS(w), SID_ACC, &kd, out, outlen);
    if (rc == 0) {
        rc = KO(w)->ko_remove(KS(w), SID_ACC, &ksrc);
    }
    return rc != 0 ? state_fail(w, rc) : 0;
}

/* ---- triggers ---- */

/* Fires window `win` (contents at st_ns): emit, then purge if purging. */
static int window_fire(win_t *w, const eddy_window_t *win,
                       const unsigned char *st_ns)
{
    w->w_cur = *win;
    int rc = contents_emit(w, st_ns);
    if (rc == 0 && w->w_cfg->wc_purging) {
        rc = contents_clear(w, st_ns);
    }
    return rc;
}

/*
 * The trigger's and cleanup's part after a record was added to window `win`
 * (timers under win_ns, contents at st_ns). `fresh`: the window (or its
 * contents) is new, so its timers must be registered.
 */
static int trigger_element(win_t *w, const eddy_window_t *win,
                           const unsigned char *win_ns,
                           const unsigned char *st_ns, bool fresh,
                           bool count_fire)
{
    const win_cfg_t *c = w->w_cfg;
    int64_t fire_at = trig_time(c, win->end);
    bool fire = count_fire;
    int rc = 0;
    if (c->wc_trig == TRIG_EVENT) {
        /* Flink's EventTimeTrigger fires at once when the watermark is
         * already past the window (a late firing). */
        if (fire_at <= watermark(w)) {
            fire = true;
        } else if (fresh) {
            rc = wtimer_add(w, EDDY__TIME_EVENT, fire_at, win_ns);
        }
    } else if (c->wc_trig == TRIG_PROC) {
        /* A timer that may have fired already is registered again, so a
         * record added after it still fires (Flink registers every time). */
        if (fresh || eddy__now_ms() >= fire_at) {
            rc = wtimer_add(w, EDDY__TIME_PROCESSING, fire_at, win_ns);
        }
    }
    if (rc == 0 && fresh && c->wc_cleanup_dom >= 0) {
        int64_t ct = cleanup_time(c, win->end);
        if (ct != INT64_MAX) {
            rc = wtimer_add(w, c->wc_cleanup_dom, ct, win_ns);
        }
    }
    if (rc == 0 && fire) {
        rc = window_fire(w, win, st_ns);
    }
    return rc;
}

/* ---- WINDOWS mode ---- */

static const eddy_window_t global_window = {INT64_MIN, INT64_MAX};

static int range_fail(win_t *w, int64_t ts)
{
    return eddy__op_fail(w->w_op, EDDY_ERR_INVALID,
                         "timestamp %lld is out of range for the window",
                         (long long)ts);
}

static int windows_add(win_t *w, const eddy_window_t *win,
                       const eddy_record_t *rec, bool *skipped)
{
    if (window_late(w, win->end)) {
        return 0;
    }
    *skipped = false;
    unsigned char ns[NS_LEN];
    ns_encode(ns, win->start, win->end);
    bool created, count_fire;
    int rc = contents_add(w, ns, rec, &created, &count_fire);
    if (rc == 0) {
        rc = trigger_element(w, win, ns, ns, created, count_fire);
    }
    return rc;
}

static int windows_process(win_t *w, const eddy_record_t *rec, int64_t ts,
                           bool *skipped)
{
    const win_cfg_t *c = w->w_cfg;
    eddy__op_enter(w->w_op);
    if (!c->wc_time) {
        *skipped = false;
        return windows_add(w, &global_window, rec, skipped);
    }
    /* Windows in descending start order, as Flink's assigners list them. */
    int64_t start;
    if (EDDY_LIKELY(ts >= w->w_al_lo && ts < w->w_al_hi)) {
        start = w->w_al_lo; /* what align_down gives: no division */
    } else {
        if (!align_down(ts, c->wc_offset, c->wc_slide, &start)) {
            return range_fail(w, ts);
        }
        w->w_al_lo = start;
        if (__builtin_add_overflow(start, c->wc_slide, &w->w_al_hi)) {
            w->w_al_hi = start; /* nothing cached */
        }
    }
    for (;;) {
        eddy_window_t win = {start, 0};
        if (__builtin_add_overflow(start, c->wc_size, &win.end)) {
            return range_fail(w, ts);
        }
        if (win.end <= ts) {
            break;
        }
        int rc = windows_add(w, &win, rec, skipped);
        if (rc != 0) {
            return rc;
        }
        if (__builtin_sub_overflow(start, c->wc_slide, &start)) {
            break;
        }
    }
    return 0;
}

static int windows_timer(win_t *w, int dom, int64_t t, const eddy_window_t *win,
                         const unsigned char *ns)
{
    const win_cfg_t *c = w->w_cfg;
    int rc = 0;
    bool time_trig = c->wc_trig == TRIG_EVENT || c->wc_trig == TRIG_PROC;
    if (time_trig && dom == c->wc_trig_dom && t == trig_time(c, win->end)) {
        rc = window_fire(w, win, ns);
    }
    if (rc == 0 && dom == c->wc_cleanup_dom && t == cleanup_time(c, win->end)) {
        rc = contents_clear(w, ns);
    }
    return rc;
}

/* ---- SLICED mode (sliding windows) ---- */

/* The windows containing slice `a`: ends *e1, *e1 + slide, ..., *elast. */
static bool slice_windows(const win_cfg_t *c, int64_t a, int64_t *e1,
                          int64_t *elast)
{
    int64_t last_start;
    if (!align_down(a, c->wc_offset, c->wc_slide, &last_start) ||
        __builtin_add_overflow(last_start, c->wc_size, elast)) {
        return false;
    }
    /* Starts s in (a - size, last_start] step slide. */
    int64_t n = (last_start - a + c->wc_size - 1) / c->wc_slide + 1;
    *e1 = *elast - (n - 1) * c->wc_slide;
    return true;
}

/* Emits window [e - size, e) from its slices. *shares_next: some slice of it
 * also belongs to the next window (so the chain continues). */
static int sliced_fire(win_t *w, int64_t e, bool *shares_next)
{
    const win_cfg_t *c = w->w_cfg;
    eddy__op_t *op = w->w_op;
    eddy_ctx_t *ctx = &op->op_ctx;
    int64_t from = e - c->wc_size;
    int64_t next_from = from + c->wc_slide;
    unsigned char ns[NS_LEN];
    int rc = 0;
    *shares_next = false;
    w->w_cur = (eddy_window_t){from, e};

    if (c->wc_fn == FN_PROCESS) {
        bool any = false;
        for (int64_t a = from; a < e; a += c->wc_slice) {
            ns_encode(ns, a, a + c->wc_slice);
            eddy__skey_t k = wkey(w, ns, NS_LEN);
            eddy__siter_t it;
            if (KO(w)->ko_list_iter(KS(w), SID_LIST, &k, &it) == 1) {
                any = true;
                if (a >= next_from) {
                    *shares_next = true;
                    break;
                }
            }
        }
        if (!any) {
            return 0;
        }
        eddy_window_elements_t it;
        memset(&it, 0, sizeof(it));
        it.we_w = w;
        it.we_kind = WE_SLICES;
        it.we_next = from;
        it.we_end = e;
        it.we_step = c->wc_slice;
        return call_process(w, &it, e - 1);
    }

    rfold_t f = {false, 0, {0}};
    unsigned char *acc = NULL;
    const void *only = NULL; /* aggregate: the only slice so far */
    const eddy_aggregate_t *agg = &c->wc_agg;
    /* The slices' entries are cold (written long ago, or by other keys
     * since): ask for up to PREFETCH_SLICES of them ahead of the reads. */
    void (*prefetch)(eddy__kstate_t *, int, const eddy__skey_t *) =
        KO(w)->ko_prefetch;
    int64_t pa = from; /* next slice to prefetch */
    int64_t ahead = c->wc_slice <= MAX_SPAN / PREFETCH_SLICES
                        ? c->wc_slice * PREFETCH_SLICES
                        : c->wc_slice;
    ctx->cx_window = &w->w_cur;
    for (int64_t a = from; a < e && rc == 0; a += c->wc_slice) {
        while (prefetch != NULL && pa < e && pa - a < ahead) {
            ns_encode(ns, pa, pa + c->wc_slice);
            eddy__skey_t pk = wkey(w, ns, NS_LEN);
            prefetch(KS(w), SID_ACC, &pk);
            pa += c->wc_slice;
        }
        ns_encode(ns, a, a + c->wc_slice);
        eddy__skey_t k = wkey(w, ns, NS_LEN);
        const void *v;
        size_t len;
        int got = KO(w)->ko_get(KS(w), SID_ACC, &k, &v, &len);
        if (got < 0) {
            rc = state_fail(w, got);
            break;
        }
        if (got == 0) {
            continue;
        }
        if (a >= next_from) {
            *shares_next = true;
        }
        if (c->wc_fn == FN_REDUCE) {
            rc = rfold_add(w, &f, v, len, e - 1);
        } else if (len != agg->acc_size) {
            rc = eddy__op_fail(op, EDDY_ERR_FORMAT, "corrupt window state");
        } else if (only == NULL && acc == NULL) {
            only = v; /* reads do not move state: valid until a write */
        } else {
            if (acc == NULL) {
                acc = eddy_ctx_scratch(ctx, agg->acc_size);
                if (acc == NULL) {
                    rc = nomem(w);
                    break;
                }
                memcpy(acc, only, agg->acc_size);
            }
            eddy__tls_op = op;
            int urc = agg->merge(ctx, acc, v, agg->opaque);
            if (urc != 0) {
                rc = eddy__op_user_rc(op, urc);
            }
        }
    }
    ctx->cx_window = NULL;
    if (rc != 0) {
        return rc;
    }
    if (c->wc_fn == FN_REDUCE) {
        return f.rf_have
                   ? emit_value(w, f.rf_acc.value, f.rf_acc.value_len, e - 1)
                   : 0;
    }
    if (acc != NULL || only != NULL) {
        return emit_acc(w, acc != NULL ? acc : only, e - 1);
    }
    return 0;
}

static int sliced_process(win_t *w, const eddy_record_t *rec, int64_t ts,
                          bool *skipped)
{
    const win_cfg_t *c = w->w_cfg;
    int64_t a, e1, elast, a_end;
    if (EDDY_LIKELY(ts >= w->w_al_lo && ts < w->w_al_hi)) {
        /* The slice of the previous record: no division. */
        a = w->w_al_lo;
        a_end = w->w_al_hi;
        e1 = w->w_al_e1;
        elast = w->w_al_elast;
    } else {
        if (!align_down(ts, c->wc_offset % c->wc_slice, c->wc_slice, &a) ||
            __builtin_add_overflow(a, c->wc_slice, &a_end) ||
            !slice_windows(c, a, &e1, &elast)) {
            return range_fail(w, ts);
        }
        w->w_al_lo = a;
        w->w_al_hi = a_end;
        w->w_al_e1 = e1;
        w->w_al_elast = elast;
    }
    if (window_late(w, elast)) {
        return 0; /* late for every window of its slice */
    }
    *skipped = false;
    eddy__op_enter(w->w_op);
    unsigned char ns[NS_LEN], wns[NS_LEN];
    ns_encode(ns, a, a_end);
    bool created, count_fire;
    int rc = contents_add(w, ns, rec, &created, &count_fire);
    if (rc != 0) {
        return rc;
    }
    int64_t wm = watermark(w);
    if (created) {
        /* The first window of the slice still to fire starts the chain. */
        int64_t e = e1;
        if (c->wc_trig == TRIG_EVENT) {
            while (e <= elast && e - 1 <= wm) {
                e += c->wc_slide;
            }
        }
        if (e <= elast) {
            ns_encode(wns, e - c->wc_size, e);
            rc = wtimer_add(w, c->wc_trig_dom, trig_time(c, e), wns);
        }
        /* The cleanup timer of the slice's last window. Without allowed
         * lateness a window is cleaned up when it fires (same time, same
         * domain, so one timer does both), and the chain started above
         * reaches that window (every window of the slice shares it with
         * the next): the chain's timer cleans up, and this one is left
         * out, so a key holds one or two timers rather than one per
         * slice. */
        int64_t ct = cleanup_time(c, elast);
        bool chained =
            ct == trig_time(c, elast) && c->wc_cleanup_dom == c->wc_trig_dom;
        if (rc == 0 && ct != INT64_MAX && !chained) {
            ns_encode(wns, elast - c->wc_size, elast);
            rc = wtimer_add(w, c->wc_cleanup_dom, ct, wns);
        }
    }
    if (rc != 0 || c->wc_trig != TRIG_EVENT || e1 - 1 > wm) {
        return rc;
    }
    /* Late firings of the windows the watermark has passed, latest first
     * (Flink's order); windows past their cleanup time stay closed. */
    int64_t e_hi = wm >= elast - 1
                       ? elast
                       : e1 + ((wm + 1 - e1) / c->wc_slide) * c->wc_slide;
    for (int64_t e = e_hi; e >= e1 && rc == 0; e -= c->wc_slide) {
        if (cleanup_time(c, e) > wm) {
            bool shares;
            rc = sliced_fire(w, e, &shares);
        }
    }
    return rc;
}

static int sliced_timer(win_t *w, int dom, int64_t t, const eddy_window_t *win)
{
    const win_cfg_t *c = w->w_cfg;
    int64_t e = win->end;
    int rc = 0;
    if (dom == c->wc_trig_dom && t == trig_time(c, e)) {
        bool shares;
        rc = sliced_fire(w, e, &shares);
        int64_t ne;
        if (rc == 0 && shares && !__builtin_add_overflow(e, c->wc_slide, &ne)) {
            unsigned char wns[NS_LEN];
            ns_encode(wns, ne - c->wc_size, ne);
            rc = wtimer_add(w, c->wc_trig_dom, trig_time(c, ne), wns);
        }
    }
    if (rc == 0 && dom == c->wc_cleanup_dom && t == cleanup_time(c, e)) {
        /* The slices whose last window this is. */
        int64_t from = e - c->wc_size;
        for (int64_t a = from; a < from + c->wc_slide && rc == 0;
             a += c->wc_slice) {
            unsigned char ns[NS_LEN];
            ns_encode(ns, a, a + c->wc_slice);
            rc = contents_clear(w, ns);
        }
    }
    return rc;
}

/* ---- SESSION mode ---- */

/* Loads the current key's sessions into w_sess, with room for one more. */
static int sess_load(win_t *w, size_t *n)
{
    eddy__skey_t k = wkey(w, NULL, 0);
    const void *v;
    size_t len;
    int rc = KO(w)->ko_get(KS(w), SID_SESS, &k, &v, &len);
    if (rc < 0) {
        return state_fail(w, rc);
    }
    if (rc == 0) {
        len = 0;
    }
    if (len % sizeof(sess_t) != 0) {
        return eddy__op_fail(w->w_op, EDDY_ERR_FORMAT, "corrupt session state");
    }
    rc = grow(w, &w->w_sess, &w->w_sess_cap, len + sizeof(sess_t));
    if (rc != 0) {
        return rc;
    }
    if (len > 0) {
        memcpy(w->w_sess, v, len);
    }
    *n = len / sizeof(sess_t);
    return 0;
}

static int sess_store(win_t *w, size_t n)
{
    eddy__skey_t k = wkey(w, NULL, 0);
    int rc = n == 0 ? KO(w)->ko_remove(KS(w), SID_SESS, &k)
                    : KO(w)->ko_put(KS(w), SID_SESS, &k, w->w_sess,
                                    n * sizeof(sess_t));
    return rc != 0 ? state_fail(w, rc) : 0;
}

/* Deletes the trigger and cleanup timers of a window that was merged away. */
static int sess_forget_timers(win_t *w, const sess_t *s)
{
    const win_cfg_t *c = w->w_cfg;
    unsigned char ns[NS_LEN];
    ns_encode(ns, s->s_start, s->s_end);
    if (c->wc_trig == TRIG_EVENT || c->wc_trig == TRIG_PROC) {
        wtimer_delete(w, c->wc_trig_dom, trig_time(c, s->s_end), ns);
    }
    int64_t ct = cleanup_time(c, s->s_end);
    if (ct != INT64_MAX) {
        wtimer_delete(w, c->wc_cleanup_dom, ct, ns);
    }
    return 0;
}

static int session_process(win_t *w, const eddy_record_t *rec, int64_t ts,
                           bool *skipped)
{
    const win_cfg_t *c = w->w_cfg;
    eddy_window_t nw = {ts, 0};
    if (__builtin_add_overflow(ts, c->wc_gap, &nw.end)) {
        return range_fail(w, ts);
    }
    eddy__op_enter(w->w_op);
    size_t n;
    int rc = sess_load(w, &n);
    if (rc != 0) {
        return rc;
    }
    sess_t *s = (sess_t *)(void *)w->w_sess;
    /* Sessions are sorted and strictly apart, so those the new window
     * touches (Flink's intersects: bounds included) are a run. */
    size_t first = n, last = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].s_start <= nw.end && s[i].s_end >= nw.start) {
            if (first == n) {
                first = i;
            }
            last = i;
        }
    }
    sess_t actual;
    bool fresh;
    if (first == n) {
        if (window_late(w, nw.end)) {
            return 0;
        }
        size_t pos = 0;
        while (pos < n && s[pos].s_start < nw.start) {
            pos++;
        }
        memmove(&s[pos + 1], &s[pos], (n - pos) * sizeof(sess_t));
        actual = (sess_t){nw.start, nw.end, nw.start, nw.end};
        s[pos] = actual;
        n++;
        fresh = true;
    } else {
        int64_t ms = EDDY_MIN(nw.start, s[first].s_start);
        int64_t me = EDDY_MAX(nw.end, s[last].s_end);
        if (first == last && ms == s[first].s_start && me == s[first].s_end) {
            actual = s[first];
            fresh = false;
        } else {
            /* Merge: the first session's state window keeps the
             * contents; the others' contents fold into it. */
            unsigned char dst[NS_LEN], src[NS_LEN];
            ns_encode(dst, s[first].s_st_start, s[first].s_st_end);
            for (size_t i = first; i <= last && rc == 0; i++) {
                rc = sess_forget_timers(w, &s[i]);
                if (rc == 0 && i > first) {
                    ns_encode(src, s[i].s_st_start, s[i].s_st_end);
                    rc = contents_merge(w, dst, src);
                }
            }
            if (rc != 0) {
                return rc;
            }
            actual = (sess_t){ms, me, s[first].s_st_start, s[first].s_st_end};
            s[first] = actual;
            memmove(&s[first + 1], &s[last + 1],
                    (n - last - 1) * sizeof(sess_t));
            n -= last - first;
            fresh = true;
        }
    }
    *skipped = false;
    if (fresh) {
        rc = sess_store(w, n);
    }
    unsigned char wns[NS_LEN], sns[NS_LEN];
    ns_encode(wns, actual.s_start, actual.s_end);
    ns_encode(sns, actual.s_st_start, actual.s_st_end);
    bool created, count_fire;
    if (rc == 0) {
        rc = contents_add(w, sns, rec, &created, &count_fire);
    }
    if (rc == 0) {
        eddy_window_t win = {actual.s_start, actual.s_end};
        rc = trigger_element(w, &win, wns, sns, fresh, count_fire);
    }
    return rc;
}

static int session_timer(win_t *w, int dom, int64_t t, const eddy_window_t *win)
{
    const win_cfg_t *c = w->w_cfg;
    size_t n;
    int rc = sess_load(w, &n);
    if (rc != 0) {
        return rc;
    }
    sess_t *s = (sess_t *)(void *)w->w_sess;
    size_t i = 0;
    while (i < n && !(s[i].s_start == win->start && s[i].s_end == win->end)) {
        i++;
    }
    if (i == n) {
        return 0; /* merged away or cleaned up */
    }
    unsigned char sns[NS_LEN];
    ns_encode(sns, s[i].s_st_start, s[i].s_st_end);
    bool time_trig = c->wc_trig == TRIG_EVENT || c->wc_trig == TRIG_PROC;
    if (time_trig && dom == c->wc_trig_dom && t == trig_time(c, win->end)) {
        rc = window_fire(w, win, sns);
    }
    if (rc == 0 && dom == c->wc_cleanup_dom && t == cleanup_time(c, win->end)) {
        rc = contents_clear(w, sns);
        if (rc == 0) {
            memmove(&s[i], &s[i + 1], (n - i - 1) * sizeof(sess_t));
            rc = sess_store(w, n - 1);
        }
    }
    return rc;
}

/* ---- RING mode (count-sliding windows) ---- */

static int ring_get(win_t *w, uint64_t seq, const void **v, size_t *len)
{
    unsigned char slot[SLOT_LEN];
    put_be64(slot, seq % w->w_cfg->wc_count);
    eddy__skey_t k = wkey(w, slot, SLOT_LEN);
    int rc = KO(w)->ko_get(KS(w), SID_RING, &k, v, len);
    if (rc < 0) {
        return state_fail(w, rc);
    }
    return rc == 1 && *len >= ELEM_TS ? 1 : 0;
}

static int ring_process(win_t *w, const eddy_record_t *rec)
{
    const win_cfg_t *c = w->w_cfg;
    eddy__op_t *op = w->w_op;
    eddy_ctx_t *ctx = &op->op_ctx;
    eddy__op_enter(op);
    eddy__skey_t km = wkey(w, NULL, 0);
    const void *v;
    size_t len;
    uint64_t seq = 0;
    int64_t last_ts;
    int rc = KO(w)->ko_get(KS(w), SID_META, &km, &v, &len);
    if (rc < 0) {
        return state_fail(w, rc);
    }
    if (rc == 1 && len == HDR) {
        hdr_read(v, &seq, &last_ts);
    }
    unsigned char *el = eddy_ctx_scratch(ctx, ELEM_TS + rec->value_len);
    if (el == NULL) {
        return nomem(w);
    }
    memcpy(el, &rec->ts, ELEM_TS);
    if (rec->value_len > 0) {
        memcpy(el + ELEM_TS, rec->value, rec->value_len);
    }
    unsigned char slot[SLOT_LEN];
    put_be64(slot, seq % c->wc_count);
    eddy__skey_t ks = wkey(w, slot, SLOT_LEN);
    rc = KO(w)->ko_put(KS(w), SID_RING, &ks, el, ELEM_TS + rec->value_len);
    if (rc == 0) {
        unsigned char h[HDR];
        hdr_write(h, ++seq, rec->ts);
        rc = KO(w)->ko_put(KS(w), SID_META, &km, h, HDR);
    }
    if (rc != 0) {
        return state_fail(w, rc);
    }
    if (seq % c->wc_count_slide != 0) {
        return 0;
    }
    /* Fire over the last min(seq, count) records, oldest first. */
    uint64_t from = seq - EDDY_MIN(seq, c->wc_count);
    w->w_cur = global_window;
    if (c->wc_fn == FN_PROCESS) {
        eddy_window_elements_t it;
        memset(&it, 0, sizeof(it));
        it.we_w = w;
        it.we_kind = WE_RING;
        it.we_seq = from;
        it.we_seq_end = seq;
        return call_process(w, &it, rec->ts);
    }
    const eddy_aggregate_t *agg = &c->wc_agg;
    unsigned char *acc = NULL;
    rfold_t f = {false, 0, {0}};
    if (c->wc_fn == FN_AGGREGATE) {
        acc = eddy_ctx_scratch(ctx, agg->acc_size);
        if (acc == NULL) {
            return nomem(w);
        }
        memset(acc, 0, agg->acc_size);
        if (agg->init != NULL) {
            agg->init(acc, agg->opaque);
        }
    }
    ctx->cx_window = &w->w_cur;
    for (uint64_t q = from; q < seq && rc == 0; q++) {
        int got = ring_get(w, q, &v, &len);
        if (got <= 0) {
            rc = got;
            continue;
        }
        int64_t ets;
        memcpy(&ets, v, ELEM_TS);
        const unsigned char *ev = (const unsigned char *)v + ELEM_TS;
        if (c->wc_fn == FN_REDUCE) {
            rc = rfold_add(w, &f, ev, len - ELEM_TS, ets);
        } else {
            eddy_record_t r = {ctx->cx_key.sk_key, ctx->cx_key.sk_klen, ev,
                               len - ELEM_TS, ets};
            eddy__tls_op = op;
            int urc = agg->add(ctx, acc, &r, agg->opaque);
            if (urc != 0) {
                rc = eddy__op_user_rc(op, urc);
            }
        }
    }
    ctx->cx_window = NULL;
    if (rc != 0) {
        return rc;
    }
    if (c->wc_fn == FN_REDUCE) {
        return f.rf_have
                   ? emit_value(w, f.rf_acc.value, f.rf_acc.value_len, rec->ts)
                   : 0;
    }
    return emit_acc(w, acc, rec->ts);
}

/* ---- window elements (process functions) ---- */

static int element_out(win_t *w, const void *v, size_t len, eddy_record_t *rec)
{
    const eddy_ctx_t *ctx = &w->w_op->op_ctx;
    int64_t ts;
    memcpy(&ts, v, ELEM_TS);
    rec->key = ctx->cx_key.sk_key;
    rec->key_len = ctx->cx_key.sk_klen;
    rec->value = (const unsigned char *)v + ELEM_TS;
    rec->value_len = len - ELEM_TS;
    rec->ts = ts;
    return 1;
}

int eddy_window_elements_next(eddy_window_elements_t *it, eddy_record_t *rec)
{
    if (it == NULL || rec == NULL) {
        return 0;
    }
    win_t *w = it->we_w;
    const void *v;
    size_t len;
    for (;;) {
        if (it->we_kind == WE_RING) {
            if (it->we_seq >= it->we_seq_end) {
                return 0;
            }
            int got = ring_get(w, it->we_seq++, &v, &len);
            if (got < 0) {
                return got;
            }
            if (got == 1) {
                return element_out(w, v, len, rec);
            }
            continue;
        }
        if (it->we_open) {
            if (KO(w)->ko_list_next(&it->we_it, &v, &len) == 1 &&
                len >= ELEM_TS) {
                return element_out(w, v, len, rec);
            }
            it->we_open = false;
        }
        if (it->we_kind != WE_SLICES || it->we_next >= it->we_end) {
            return 0;
        }
        ns_encode(it->we_ns, it->we_next, it->we_next + it->we_step);
        it->we_next += it->we_step;
        eddy__skey_t k = wkey(w, it->we_ns, NS_LEN);
        it->we_open = KO(w)->ko_list_iter(KS(w), SID_LIST, &k, &it->we_it) == 1;
    }
}

/* ---- the operator class ---- */

/* Lanes (state.h) for the state of time windows: window or slice number
 * modulo the lanes, so the live ones, the newest of which every record
 * writes, keep their entries in tables of their own. */
static unsigned win_lane(const void *ns, size_t nslen, const void *arg)
{
    const win_cfg_t *c = arg;
    if (nslen != NS_LEN) {
        return 0;
    }
    int64_t start = (int64_t)(get_be64(ns) ^ SIGN_FLIP);
    int64_t unit = c->wc_mode == MODE_SLICED ? c->wc_slice : c->wc_slide;
    int64_t q = start / unit;
    if (start % unit != 0 && start < 0) {
        q--; /* floor */
    }
    return (unsigned)(uint64_t)q;
}

/* How many lanes: the windows or slices live at once (size and allowed
 * lateness, plus one being cleaned up and one ahead), at most
 * EDDY__STATE_MAX_LANES; 0 for windows whose namespaces are not shared
 * time windows (sessions, count and global windows). */
static unsigned win_lanes(const win_cfg_t *c)
{
    if (!c->wc_time ||
        (c->wc_mode != MODE_WINDOWS && c->wc_mode != MODE_SLICED)) {
        return 0;
    }
    int64_t unit = c->wc_mode == MODE_SLICED ? c->wc_slice : c->wc_slide;
    int64_t span;
    if (__builtin_add_overflow(c->wc_size, c->wc_lateness, &span)) {
        return EDDY__STATE_MAX_LANES;
    }
    int64_t live = span / unit + 2;
    return live >= EDDY__STATE_MAX_LANES ? EDDY__STATE_MAX_LANES
                                         : (unsigned)live;
}

static int win_open(eddy__op_t *op)
{
    const eddy_stream_t *n = op->op_node;
    const win_cfg_t *c = n->s_config;
    win_t *w = eddy__calloc(1, sizeof(*w));
    op->op_data = w;
    w->w_op = op;
    w->w_cfg = c;
    w->w_max_par = n->s_env->e_max_parallelism;
    w->w_hdr = c->wc_hdr ? HDR : 0;
    w->w_pout = (eddy_collector_t){pout_emit, w};
    static const char *const names[NSTATES] = {
        "window-contents", "window-elements", "window-meta", "window-sessions",
        "window-ring"};
    static const int kinds[NSTATES] = {EDDY_STATE_VALUE, EDDY_STATE_LIST,
                                       EDDY_STATE_VALUE, EDDY_STATE_VALUE,
                                       EDDY_STATE_VALUE};
    unsigned lanes = win_lanes(c);
    for (int i = 0; i < NSTATES; i++) {
        w->w_specs[i].ss_name = names[i];
        w->w_specs[i].ss_kind = kinds[i];
        w->w_specs[i].ss_ttl_ms = 0;
        if (lanes > 0 && (i == SID_ACC || i == SID_LIST || i == SID_META)) {
            w->w_specs[i].ss_lanes = lanes;
            w->w_specs[i].ss_lane = win_lane;
            w->w_specs[i].ss_lane_arg = c;
        }
    }
    int first, last;
    eddy__key_group_range(op->op_ctx.cx_subtask, w->w_max_par,
                          op->op_ctx.cx_parallelism, &first, &last);
    EDDY_UNUSED(first);
    EDDY_UNUSED(last);
    int rc = eddy__op_kstate_new(op, w->w_specs, NSTATES, &w->w_ks);
    if (rc == 0) {
        rc = eddy__op_timers_new(op, &w->w_timers);
    }
    if (rc != 0) {
        return rc;
    }
    eddy__kstate_set_time(w->w_ks, eddy__now_ms());
    /* User functions get no access to the operator's internal state and
     * timers: cx_state and cx_timers stay NULL. */
    return 0;
}

static int count_entry(void *arg, const void *key, size_t klen, const void *ns,
                       size_t nslen)
{
    EDDY_UNUSED(key);
    EDDY_UNUSED(klen);
    EDDY_UNUSED(ns);
    EDDY_UNUSED(nslen);
    (*(uint64_t *)arg)++;
    return 0;
}

/* State entries and timers still held (test hook: every window of a
 * bounded input must have been cleaned up, except global ones). */
static uint64_t leftover(win_t *w)
{
    uint64_t n = 0;
    for (int sid = 0; sid < NSTATES; sid++) {
        for (int kg = KS(w)->ks_kg_first; kg <= KS(w)->ks_kg_last; kg++) {
            KO(w)->ko_for_each(KS(w), sid, kg, count_entry, &n);
        }
    }
    return n + eddy__timers_count(w->w_timers, EDDY__TIME_EVENT) +
           eddy__timers_count(w->w_timers, EDDY__TIME_PROCESSING);
}

static void win_close(eddy__op_t *op)
{
    win_t *w = op->op_data;
    if (w != NULL) {
        if (w->w_ks != NULL && w->w_timers != NULL) {
            atomic_fetch_add(&((win_cfg_t *)w->w_cfg)->wc_leftover,
                             leftover(w));
        }
        eddy__kstate_destroy(w->w_ks);
        eddy__timers_destroy(w->w_timers);
        free(w->w_tkey);
        free(w->w_sess);
        free(w->w_mbuf);
        free(w->w_rbuf[0]);
        free(w->w_rbuf[1]);
        free(w);
        op->op_data = NULL;
    }
    op->op_ctx.cx_window = NULL;
}

static inline void set_key(eddy__op_t *op, const eddy_record_t *rec)
{
    win_t *w = op->op_data;
    eddy__skey_t *k = &op->op_ctx.cx_key;
    k->sk_key = rec->key;
    k->sk_klen = rec->key_len;
    k->sk_hash = eddy__hash64(rec->key, rec->key_len);
    k->sk_kg = eddy__key_group(k->sk_hash, w->w_max_par);
    k->sk_ns = NULL;
    k->sk_nslen = 0;
    op->op_ctx.cx_has_key = true;
}

/* A record late for all its windows: to the late side output, or dropped
 * and counted. */
static int late_record(win_t *w, const eddy_record_t *rec)
{
    const win_cfg_t *c = w->w_cfg;
    eddy__op_t *op = w->w_op;
    if (c->wc_late_tag >= 0 && c->wc_late_tag < op->op_nside) {
        eddy_collector_t *side = &op->op_side[c->wc_late_tag];
        return side->co_fn(side->co_target, rec);
    }
    atomic_fetch_add_explicit(&((win_cfg_t *)c)->wc_dropped, 1,
                              memory_order_relaxed);
    return 0;
}

static int win_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    win_t *w = op->op_data;
    const win_cfg_t *c = w->w_cfg;
    if (c->wc_trig == TRIG_NEVER) {
        return 0; /* a global window that never fires keeps nothing */
    }
    int64_t ts = rec->ts;
    if (c->wc_time) {
        if (!c->wc_event) {
            ts = eddy__now_ms();
        } else if (EDDY_UNLIKELY(ts == EDDY_TS_NONE)) {
            return eddy__op_fail(op, EDDY_ERR_INVALID,
                                 "record has no timestamp: event-time windows "
                                 "need eddy_assign_timestamps upstream (or "
                                 "use processing time)");
        }
    }
    set_key(op, rec);
    bool skipped = true;
    int rc;
    switch (c->wc_mode) {
    case MODE_SLICED:
        rc = sliced_process(w, rec, ts, &skipped);
        break;
    case MODE_SESSION:
        rc = session_process(w, rec, ts, &skipped);
        break;
    case MODE_RING:
        skipped = false;
        rc = ring_process(w, rec);
        break;
    default:
        rc = windows_process(w, rec, ts, &skipped);
        break;
    }
    op->op_ctx.cx_has_key = false;
    if (rc == 0 && skipped) {
        rc = late_record(w, rec);
    }
    return rc;
}

static int fire_timers(eddy__op_t *op, int dom, int64_t limit)
{
    win_t *w = op->op_data;
    eddy_ctx_t *ctx = &op->op_ctx;
    eddy__timer_t tm;
    while (eddy__timers_pop(w->w_timers, dom, limit, &tm) == 1) {
        if (tm.tm_key.sk_nslen != NS_LEN) {
            continue;
        }
        /* The timer's bytes live until the next call on the service, and
         * firing registers and deletes timers: copy them. */
        size_t klen = tm.tm_key.sk_klen;
        int rc = grow(w, &w->w_tkey, &w->w_tkey_cap, klen + NS_LEN);
        if (rc != 0) {
            return rc;
        }
        if (klen > 0) {
            memcpy(w->w_tkey, tm.tm_key.sk_key, klen);
        }
        memcpy(w->w_tkey + klen, tm.tm_key.sk_ns, NS_LEN);
        ctx->cx_key = tm.tm_key;
        ctx->cx_key.sk_key = w->w_tkey;
        ctx->cx_key.sk_ns = NULL;
        ctx->cx_key.sk_nslen = 0;
        ctx->cx_has_key = true;
        eddy__op_enter(op);
        const unsigned char *ns = w->w_tkey + klen;
        eddy_window_t win = ns_decode(ns);
        switch (w->w_cfg->wc_mode) {
        case MODE_SLICED:
            rc = sliced_timer(w, dom, tm.tm_ts, &win);
            break;
        case MODE_SESSION:
            rc = session_timer(w, dom, tm.tm_ts, &win);
            break;
        default:
            rc = windows_timer(w, dom, tm.tm_ts, &win, ns);
            break;
        }
        ctx->cx_has_key = false;
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int win_watermark(eddy__op_t *op, int64_t wm)
{
    int rc = fire_timers(op, EDDY__TIME_EVENT, wm);
    return rc != 0 ? rc : eddy__op_forward_watermark(op, wm);
}

static void schedule_tick(eddy__op_t *op, int64_t now)
{
    win_t *w = op->op_data;
    int64_t next = eddy__timers_next(w->w_timers, EDDY__TIME_PROCESSING);
    op->op_next_tick_ms =
        next == INT64_MAX ? INT64_MAX : EDDY_MIN(next, now + MAX_TICK_WAIT_MS);
}

static int win_tick(eddy__op_t *op, int64_t now)
{
    int rc = fire_timers(op, EDDY__TIME_PROCESSING, now);
    schedule_tick(op, now);
    return rc;
}

static int win_end_input(eddy__op_t *op)
{
    /* Bounded input: pending processing-time windows fire now. */
    int rc = fire_timers(op, EDDY__TIME_PROCESSING, INT64_MAX);
    op->op_next_tick_ms = INT64_MAX;
    return rc;
}

static const eddy__op_class_t window_class = {
    .oc_kind = "Window",
    .oc_keyed_input = true,
    .oc_inputs = 1,
    .oc_open = win_open,
    .oc_process = win_process,
    .oc_watermark = win_watermark,
    .oc_tick = win_tick,
    .oc_end_input = win_end_input,
    .oc_close = win_close,
};

/* ---- window specs ---- */

static eddy_window_spec_t spec_new(eddy_window_kind_t kind)
{
    eddy_window_spec_t w;
    memset(&w, 0, sizeof(w));
    w.kind = kind;
    w.domain = EDDY_EVENT_TIME;
    w.trigger = EDDY_TRIGGER_DEFAULT;
    return w;
}

eddy_window_spec_t eddy_window_tumbling(int64_t size_ms)
{
    eddy_window_spec_t w = spec_new(EDDY_WINDOW_TUMBLING);
    w.size_ms = size_ms;
    return w;
}

eddy_window_spec_t eddy_window_sliding(int64_t size_ms, int64_t slide_ms)
{
    eddy_window_spec_t w = spec_new(EDDY_WINDOW_SLIDING);
    w.size_ms = size_ms;
    w.slide_ms = slide_ms;
    return w;
}

eddy_window_spec_t eddy_window_session(int64_t gap_ms)
{
    eddy_window_spec_t w = spec_new(EDDY_WINDOW_SESSION);
    w.gap_ms = gap_ms;
    return w;
}

eddy_window_spec_t eddy_window_global(void)
{
    return spec_new(EDDY_WINDOW_GLOBAL);
}

eddy_window_spec_t eddy_window_count(uint64_t count)
{
    eddy_window_spec_t w = spec_new(EDDY_WINDOW_COUNT_TUMBLING);
    w.count = count;
    return w;
}

eddy_window_spec_t eddy_window_count_sliding(uint64_t count, uint64_t slide)
{
    eddy_window_spec_t w = spec_new(EDDY_WINDOW_COUNT_SLIDING);
    w.count = count;
    w.count_slide = slide;
    return w;
}

/* ---- building ---- */

static int check_span(eddy_env_t *env, const char *api, const char *what,
                      int64_t v)
{
    if (v <= 0) {
        return eddy_env_fail(env, "%s: the window %s must be > 0 ms, got %lld",
                             api, what, (long long)v);
    }
    if (v > MAX_SPAN) {
        return eddy_env_fail(env,
                             "%s: the window %s of %lld ms is too large "
                             "(at most %lld ms)",
                             api, what, (long long)v, (long long)MAX_SPAN);
    }
    return 0;
}

/* Validates the spec and resolves the mode and trigger into `c`. */
static int configure(eddy_env_t *env, const char *api,
                     const eddy_window_spec_t *w, win_cfg_t *c)
{
    static const char *const kinds[] = {"tumbling", "sliding", "session",
                                        "global",   "count",   "count-sliding"};
    if ((unsigned)w->kind > EDDY_WINDOW_COUNT_SLIDING) {
        return eddy_env_fail(env, "%s: unknown window kind %d", api,
                             (int)w->kind);
    }
    if ((unsigned)w->domain > EDDY_PROCESSING_TIME) {
        return eddy_env_fail(env, "%s: unknown time domain %d", api,
                             (int)w->domain);
    }
    if ((unsigned)w->trigger > EDDY_TRIGGER_COUNT) {
        return eddy_env_fail(env, "%s: unknown trigger %d", api,
                             (int)w->trigger);
    }
    if (w->allowed_lateness_ms < 0) {
        return eddy_env_fail(env,
                             "%s: allowed lateness must be >= 0 ms, got "
                             "%lld",
                             api, (long long)w->allowed_lateness_ms);
    }
    if (w->trigger == EDDY_TRIGGER_COUNT && w->trigger_count == 0) {
        return eddy_env_fail(env, "%s: a count trigger needs trigger_count > 0",
                             api);
    }
    const char *kind = kinds[w->kind];
    bool time = w->kind == EDDY_WINDOW_TUMBLING ||
                w->kind == EDDY_WINDOW_SLIDING ||
                w->kind == EDDY_WINDOW_SESSION;
    c->wc_time = time;
    c->wc_event = time && w->domain == EDDY_EVENT_TIME;
    c->wc_cleanup_dom = !time                          ? -1
                        : w->domain == EDDY_EVENT_TIME ? EDDY__TIME_EVENT
                                                       : EDDY__TIME_PROCESSING;
    c->wc_lateness = c->wc_event ? w->allowed_lateness_ms : 0;
    c->wc_purging = w->purging;
    c->wc_late_tag = -1;
    int rc = 0;
    switch (w->kind) {
    case EDDY_WINDOW_TUMBLING:
        rc = check_span(env, api, "size", w->size_ms);
        c->wc_size = c->wc_slide = w->size_ms;
        break;
    case EDDY_WINDOW_SLIDING:
        rc = check_span(env, api, "size", w->size_ms);
        if (rc == 0) {
            rc = check_span(env, api, "slide", w->slide_ms);
        }
        if (rc == 0 && w->slide_ms > w->size_ms) {
            rc = eddy_env_fail(env,
                               "%s: the slide (%lld ms) must not exceed "
                               "the window size (%lld ms)",
                               api, (long long)w->slide_ms,
                               (long long)w->size_ms);
        }
        c->wc_size = w->size_ms;
        c->wc_slide = w->slide_ms;
        break;
    case EDDY_WINDOW_SESSION:
        rc = check_span(env, api, "gap", w->gap_ms);
        c->wc_gap = w->gap_ms;
        break;
    case EDDY_WINDOW_COUNT_SLIDING:
        if (w->count_slide == 0) {
            rc = eddy_env_fail(env, "%s: the count slide must be > 0", api);
        } else if (w->count_slide > w->count) {
            rc = eddy_env_fail(env,
                               "%s: the count slide (%llu) must not "
                               "exceed the window count (%llu)",
                               api, (unsigned long long)w->count_slide,
                               (unsigned long long)w->count);
        }
        /* fall through */
    case EDDY_WINDOW_COUNT_TUMBLING:
        if (rc == 0 && w->count == 0) {
            rc = eddy_env_fail(env, "%s: the window count must be > 0", api);
        }
        if (rc == 0 && w->trigger != EDDY_TRIGGER_DEFAULT) {
            rc = eddy_env_fail(env,
                               "%s: %s windows have their own trigger "
                               "(use a global window with a count "
                               "trigger instead)",
                               api, kind);
        }
        if (rc == 0 && w->kind == EDDY_WINDOW_COUNT_SLIDING && w->purging) {
            rc = eddy_env_fail(env, "%s: count-sliding windows cannot purge",
                               api);
        }
        c->wc_count = w->count;
        c->wc_count_slide = w->count_slide;
        break;
    case EDDY_WINDOW_GLOBAL:
        break;
    }
    if (rc != 0) {
        return rc;
    }
    if (c->wc_size > 0) {
        c->wc_offset = floor_mod(w->offset_ms, c->wc_slide);
    }

    /* The trigger. */
    switch (w->trigger) {
    case EDDY_TRIGGER_DEFAULT:
        if (time) {
            c->wc_trig = c->wc_event ? TRIG_EVENT : TRIG_PROC;
        } else if (w->kind == EDDY_WINDOW_GLOBAL) {
            c->wc_trig = TRIG_NEVER;
        } else {
            c->wc_trig = TRIG_COUNT;
            c->wc_trig_count = w->count;
        }
        break;
    case EDDY_TRIGGER_EVENT_TIME:
        c->wc_trig = TRIG_EVENT;
        break;
    case EDDY_TRIGGER_PROCESSING_TIME:
        c->wc_trig = TRIG_PROC;
        break;
    case EDDY_TRIGGER_COUNT:
        c->wc_trig = TRIG_COUNT;
        c->wc_trig_count = w->trigger_count;
        break;
    }
    c->wc_trig_dom =
        c->wc_trig == TRIG_PROC ? EDDY__TIME_PROCESSING : EDDY__TIME_EVENT;
    c->wc_global = !time;
    if (w->kind == EDDY_WINDOW_COUNT_TUMBLING) {
        c->wc_purging = true; /* Flink: PurgingTrigger(CountTrigger) */
    }
    c->wc_hdr = c->wc_global || c->wc_trig == TRIG_COUNT;

    /* The mode. */
    switch (w->kind) {
    case EDDY_WINDOW_SESSION:
        c->wc_mode = MODE_SESSION;
        break;
    case EDDY_WINDOW_COUNT_SLIDING:
        c->wc_mode = MODE_RING;
        c->wc_hdr = false;
        break;
    case EDDY_WINDOW_SLIDING: {
        int natural = c->wc_event ? TRIG_EVENT : TRIG_PROC;
        bool combinable = c->wc_fn != FN_AGGREGATE || c->wc_agg.merge != NULL;
        if (c->wc_trig == natural && !c->wc_purging && combinable) {
            c->wc_mode = MODE_SLICED;
            c->wc_slice = gcd64(c->wc_size, c->wc_slide);
        } else {
            c->wc_mode = MODE_WINDOWS;
        }
        break;
    }
    default:
        c->wc_mode = MODE_WINDOWS;
        break;
    }
    return 0;
}

static eddy_stream_t *window_build(eddy_stream_t *keyed, const char *api,
                                   const eddy_window_spec_t *w, win_cfg_t *c)
{
    if (keyed == NULL) {
        return NULL;
    }
    eddy_env_t *env = keyed->s_env;
    if (w == NULL) {
        eddy_env_fail(env, "%s: no window spec given", api);
        return NULL;
    }
    c->wc_spec = *w;
    if (configure(env, api, w, c) != 0) {
        return NULL;
    }
    if (c->wc_mode == MODE_SESSION && c->wc_fn == FN_AGGREGATE &&
        c->wc_agg.merge == NULL) {
        eddy_env_fail(env,
                      "%s: session windows merge accumulators: the "
                      "aggregate needs a merge function",
                      api);
        return NULL;
    }
    eddy_stream_t *s = eddy__node_add(env, &window_class, &keyed, 1);
    if (s == NULL) {
        return NULL;
    }
    eddy__arena_t *ar = &env->e_arena;
    win_cfg_t *cfg = eddy__arena_alloc(ar, sizeof(*cfg));
    if (cfg == NULL) {
        eddy_env_fail(env, "out of memory");
        return NULL;
    }
    *cfg = *c;
    atomic_init(&cfg->wc_dropped, 0);
    atomic_init(&cfg->wc_leftover, 0);
    if (w->late_output != NULL) {
        cfg->wc_spec.late_output = eddy__arena_strdup(ar, w->late_output);
        cfg->wc_late_tag = eddy_side_output_id(s, w->late_output);
        if (cfg->wc_late_tag < 0) {
            return NULL;
        }
    }
    s->s_config = cfg;
    char name[128];
    static const char *const fns[] = {"reduce", "aggregate", "process"};
    switch (w->kind) {
    case EDDY_WINDOW_TUMBLING:
        snprintf(name, sizeof(name), "Window(tumbling %lld ms, %s)",
                 (long long)w->size_ms, fns[c->wc_fn]);
        break;
    case EDDY_WINDOW_SLIDING:
        snprintf(name, sizeof(name), "Window(sliding %lld/%lld ms, %s)",
                 (long long)w->size_ms, (long long)w->slide_ms, fns[c->wc_fn]);
        break;
    case EDDY_WINDOW_SESSION:
        snprintf(name, sizeof(name), "Window(session gap %lld ms, %s)",
                 (long long)w->gap_ms, fns[c->wc_fn]);
        break;
    case EDDY_WINDOW_GLOBAL:
        snprintf(name, sizeof(name), "Window(global, %s)", fns[c->wc_fn]);
        break;
    case EDDY_WINDOW_COUNT_TUMBLING:
        snprintf(name, sizeof(name), "Window(count %llu, %s)",
                 (unsigned long long)w->count, fns[c->wc_fn]);
        break;
    case EDDY_WINDOW_COUNT_SLIDING:
        snprintf(name, sizeof(name), "Window(count %llu/%llu, %s)",
                 (unsigned long long)w->count,
                 (unsigned long long)w->count_slide, fns[c->wc_fn]);
        break;
    }
    s->s_name = eddy__arena_strdup(ar, name);
    return s;
}

eddy_stream_t *eddy_window_reduce(eddy_stream_t *keyed,
                                  const eddy_window_spec_t *w,
                                  eddy_reduce_fn fn, void *opaque)
{
    if (keyed != NULL && fn == NULL) {
        eddy_env_fail(keyed->s_env, "eddy_window_reduce: the reduce function "
                                    "must not be NULL");
        return NULL;
    }
    win_cfg_t c;
    memset(&c, 0, sizeof(c));
    c.wc_fn = FN_REDUCE;
    c.wc_reduce = fn;
    c.wc_opaque = opaque;
    return window_build(keyed, "eddy_window_reduce", w, &c);
}

eddy_stream_t *eddy_window_aggregate(eddy_stream_t *keyed,
                                     const eddy_window_spec_t *w,
                                     const eddy_aggregate_t *agg)
{
    if (keyed != NULL && !eddy__aggregate_usable(agg)) {
        eddy_env_fail(keyed->s_env, "eddy_window_aggregate: the aggregate "
                                    "needs acc_size, add and result");
        return NULL;
    }
    win_cfg_t c;
    memset(&c, 0, sizeof(c));
    c.wc_fn = FN_AGGREGATE;
    if (agg != NULL) {
        c.wc_agg = *agg;
    }
    return window_build(keyed, "eddy_window_aggregate", w, &c);
}

eddy_stream_t *eddy_window_process(eddy_stream_t *keyed,
                                   const eddy_window_spec_t *w,
                                   eddy_window_process_fn fn, void *opaque)
{
    if (keyed != NULL && fn == NULL) {
        eddy_env_fail(keyed->s_env, "eddy_window_process: the process "
                                    "function must not be NULL");
        return NULL;
    }
    win_cfg_t c;
    memset(&c, 0, sizeof(c));
    c.wc_fn = FN_PROCESS;
    c.wc_process = fn;
    c.wc_opaque = opaque;
    return window_build(keyed, "eddy_window_process", w, &c);
}

static win_cfg_t *window_cfg(const eddy_stream_t *s)
{
    if (s == NULL || s->s_kind != EDDY__NODE_OPERATOR ||
        s->s_class != &window_class) {
        return NULL;
    }
    return s->s_config;
}

uint64_t eddy_late_records_dropped(eddy_stream_t *window_op)
{
    win_cfg_t *c = window_cfg(window_op);
    if (c != NULL) {
        return atomic_load(&c->wc_dropped);
    }
    /* Joins count their late records too. */
    eddy__join_stats_t js;
    if (window_op != NULL && eddy__join_stats(window_op, &js) == 0) {
        return js.jst_late;
    }
    return 0;
}

/* Test hook (declared by tests/unit/operators/test_window.c, deliberately
 * not in a header): state entries and timers the operator's subtasks still
 * held when they closed, summed; valid after eddy_env_execute. */
uint64_t eddy__window_leftover(const eddy_stream_t *window_op);

uint64_t eddy__window_leftover(const eddy_stream_t *window_op)
{
    win_cfg_t *c = window_cfg(window_op);
    return c != NULL ? atomic_load(&c->wc_leftover) : UINT64_MAX;
}
