/*
 * eddy — subtasks: the loop that runs an operator chain, writers, contexts.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. A task is one thread running one chain of operators:
 * - a source task polls its head operator for batches of records;
 * - any other task pops buffers from its input gate, deserializes their
 *   elements per channel, and pushes records through the chain by function
 *   call. Events (end of partition now; watermarks and barriers later) are
 *   handled between records, in order.
 * Before the task would block on an empty gate it flushes its output buffers
 * and sinks ("flush on idle"), so records never sit in a half-filled buffer
 * while the task has nothing else to do; under load buffers ship when full.
 * When every input channel has ended, operators see end_input in chain order,
 * then every writer sends end-of-partition downstream.
 *
 * Failure: the first operator that fails records its message; the task
 * reports it to the job, which raises the cancel flag and wakes every waiting
 * thread so the other tasks stop.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/runtime.h"

_Thread_local eddy__op_t *eddy__tls_op
    __attribute__((tls_model("initial-exec")));

/* ---- contexts (public API for user functions) ---- */

int eddy_ctx_subtask(const eddy_ctx_t *ctx)
{
    return ctx->cx_subtask;
}
int eddy_ctx_parallelism(const eddy_ctx_t *ctx)
{
    return ctx->cx_parallelism;
}
const char *eddy_ctx_operator(const eddy_ctx_t *ctx)
{
    return ctx->cx_name;
}

int64_t eddy_ctx_watermark(const eddy_ctx_t *ctx)
{
    int64_t wm = ctx->cx_op->op_in_wm;
    return wm == INT64_MIN ? EDDY_TS_NONE : wm;
}

const eddy_window_t *eddy_ctx_window(const eddy_ctx_t *ctx)
{
    return ctx != NULL ? ctx->cx_window : NULL;
}

int64_t eddy_ctx_processing_time(const eddy_ctx_t *ctx)
{
    EDDY_UNUSED(ctx);
    return eddy__now_ms();
}

/* Records op's failure message; the first failure of a task wins. */
static void op_vfail(eddy__op_t *op, const char *fmt, va_list ap)
{
    eddy__task_t *t = op->op_task;
    if (t->t_failed_op == NULL) {
        vsnprintf(op->op_errmsg, sizeof(op->op_errmsg), fmt, ap);
        op->op_failed = true;
        t->t_failed_op = op;
    }
}

int eddy_ctx_fail(eddy_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op_vfail(ctx->cx_op, fmt, ap);
    va_end(ap);
    return EDDY_ERR_USER;
}

void eddy__scratch_grow_reset(eddy__scratch_t *sc)
{
    /* A call needed more than the block: grow it so the next ones fit. */
    size_t want = sc->sc_peak;
    eddy__arena_close(&sc->sc_overflow);
    sc->sc_overflowed = false;
    if (want > sc->sc_cap) {
        size_t cap = sc->sc_cap ? sc->sc_cap : 4096;
        while (cap < want) {
            cap *= 2;
        }
        unsigned char *p = eddy__try_malloc(cap);
        if (p != NULL) {
            free(sc->sc_base);
            sc->sc_base = p;
            sc->sc_cap = cap;
        }
    }
    sc->sc_peak = 0;
}

void *eddy_ctx_scratch(eddy_ctx_t *ctx, size_t size)
{
    eddy__scratch_t *sc = &ctx->cx_scratch;
    size_t need = (size + 7) & ~(size_t)7;
    if (EDDY_LIKELY(sc->sc_cap - sc->sc_used >= need)) {
        void *p = sc->sc_base + sc->sc_used;
        sc->sc_used += need;
        return p;
    }
    sc->sc_overflowed = true;
    sc->sc_peak = EDDY_MAX(sc->sc_peak, sc->sc_used) + need;
    sc->sc_used = sc->sc_cap; /* the block is exhausted for this call */
    return eddy__arena_alloc(&sc->sc_overflow, need);
}

int eddy_collect(eddy_collector_t *out, const eddy_record_t *rec)
{
    /* Restore the crash attribution to the calling operator afterwards: the
     * user function continues running after the downstream returns. */
    eddy__op_t *self = eddy__tls_op;
    int rc = out->co_fn(out->co_target, rec);
    eddy__tls_op = self;
    return rc;
}

int eddy__op_fail(eddy__op_t *op, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op_vfail(op, fmt, ap);
    va_end(ap);
    return rc;
}

int eddy__op_user_rc(eddy__op_t *op, int rc)
{
    if (rc == EDDY_ERR_CANCELED || op->op_task->t_failed_op != NULL) {
        return rc;
    }
    /* Only known codes pass through: the job must fail with an eddy_err_t. */
    bool known = rc < 0 && strcmp(eddy_err_name(rc), "EDDY_ERR_UNKNOWN") != 0;
    return eddy__op_fail(op, known ? rc : EDDY_ERR_USER,
                         "user function returned %d (%s) without a message "
                         "(use eddy_ctx_fail)",
                         rc, eddy_strerror(rc));
}

void eddy__op_init(eddy__op_t *op, eddy__task_t *t, eddy_stream_t *node)
{
    op->op_ctx.cx_op = op;
    op->op_ctx.cx_subtask = t->t_subtask;
    op->op_ctx.cx_parallelism = t->t_parallelism;
    op->op_ctx.cx_name = node->s_name;
    op->op_ctx.cx_scratch.sc_cap = 4096;
    op->op_ctx.cx_scratch.sc_base = eddy__malloc(4096);
    eddy__arena_init(&op->op_ctx.cx_scratch.sc_overflow, 16 * 1024);
    op->op_class = node->s_class;
    op->op_node = node;
    op->op_task = t;
    op->op_next_tick_ms = INT64_MAX;
    op->op_in_wm = INT64_MIN;
    op->op_out_wm = INT64_MIN;
}

void eddy__op_release(eddy__op_t *op)
{
    free(op->op_ctx.cx_scratch.sc_base);
    op->op_ctx.cx_scratch.sc_base = NULL;
    eddy__arena_close(&op->op_ctx.cx_scratch.sc_overflow);
}

/* ---- writers ---- */

static int route(eddy__writer_t *wr, const eddy_record_t *rec);

/* Cold path of eddy__writer_emit: say why a record could not be written. */
static int writer_error(eddy__writer_t *wr, const eddy_record_t *rec, int rc)
{
    if (rc == EDDY_ERR_INVALID) {
        return eddy__op_fail(wr->wr_op, rc,
                             "record of %zu bytes exceeds the largest record "
                             "eddy can send (%u bytes)",
                             rec->key_len + rec->value_len,
                             (unsigned)EDDY__MAX_ELEMENT);
    }
    return rc;
}

int eddy__writer_emit(void *writer, const eddy_record_t *rec)
{
    eddy__writer_t *wr = writer;
    wr->wr_records++;
    int rc = route(wr, rec);
    if (EDDY_UNLIKELY(rc != 0)) {
        return writer_error(wr, rec, rc);
    }
    return 0;
}

static int route_broadcast(eddy__writer_t *wr, const eddy_record_t *rec)
{
    for (int i = 0; i < wr->wr_nchan; i++) {
        int rc = eddy__outchan_write(&wr->wr_chans[i], rec);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int route(eddy__writer_t *wr, const eddy_record_t *rec)
{
    int ch;
    /* One call site of the (forced inline) record writer on the hot path. */
    switch (wr->wr_part) {
    case EDDY__PART_FORWARD:
        ch = 0;
        break;
    case EDDY__PART_HASH:
        if (EDDY_UNLIKELY(rec->key == NULL)) {
            return eddy__op_fail(wr->wr_op, EDDY_ERR_INVALID,
                                 "record without a key on a keyed edge");
        }
        if (wr->wr_nchan == 1) {
            ch = 0; /* one consumer: no need to hash */
            break;
        }
        ch = wr->wr_kg_chan[eddy__key_group(
            eddy__hash64(rec->key, rec->key_len), wr->wr_max_parallelism)];
        break;
    case EDDY__PART_REBALANCE:
        ch = wr->wr_next;
        wr->wr_next = ch + 1 == wr->wr_nchan ? 0 : ch + 1;
        break;
    case EDDY__PART_BROADCAST:
        return route_broadcast(wr, rec);
    default:
        return EDDY_ERR_STATE;
    }
    return eddy__outchan_write(&wr->wr_chans[ch], rec);
}

void eddy__writer_init_routing(eddy__writer_t *wr)
{
    int maxp = wr->wr_max_parallelism;
    wr->wr_kg_chan = eddy__calloc((size_t)maxp, sizeof(uint16_t));
    for (int kg = 0; kg < maxp; kg++) {
        wr->wr_kg_chan[kg] =
            (uint16_t)eddy__key_group_subtask(kg, maxp, wr->wr_nchan);
    }
}

int eddy__writer_flush(eddy__writer_t *wr)
{
    for (int i = 0; i < wr->wr_nchan; i++) {
        int rc = eddy__outchan_flush(&wr->wr_chans[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int eddy__writer_event(eddy__writer_t *wr, int kind, int64_t value)
{
    for (int i = 0; i < wr->wr_nchan; i++) {
        int rc = eddy__outchan_write_event(&wr->wr_chans[i], kind, value);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- the task loop ---- */

int eddy__task_flush(eddy__task_t *t)
{
    for (int i = 0; i < t->t_nops; i++) {
        eddy__op_t *op = t->t_ops[i];
        if (op->op_class->oc_flush != NULL) {
            eddy__tls_op = op;
            int rc = op->op_class->oc_flush(op);
            if (rc != 0) {
                return rc;
            }
        }
    }
    for (int i = 0; i < t->t_nwriters; i++) {
        int rc = eddy__writer_flush(t->t_writers[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int64_t eddy__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- watermarks and stream status ---- */

static int deliver_watermark(eddy__op_t *op, int64_t wm)
{
    eddy__tls_op = op;
    op->op_in_wm = wm;
    if (op->op_class->oc_watermark != NULL) {
        return op->op_class->oc_watermark(op, wm);
    }
    return eddy__op_forward_watermark(op, wm);
}

int eddy__task_drain(eddy__task_t *t)
{
    return deliver_watermark(t->t_ops[0], INT64_MAX);
}

int eddy__op_forward_watermark(eddy__op_t *op, int64_t wm)
{
    if (wm <= op->op_out_wm) {
        return 0;
    }
    op->op_out_wm = wm;
    for (int i = 0; i < op->op_nsucc; i++) {
        int rc = deliver_watermark(op->op_succ[i], wm);
        if (rc != 0) {
            return rc;
        }
    }
    for (int i = 0; i < op->op_nwriters; i++) {
        int rc = eddy__writer_event(op->op_writers[i], EDDY__EL_WATERMARK, wm);
        if (rc != 0) {
            return rc;
        }
    }
    eddy__tls_op = op;
    return 0;
}

int eddy__task_set_idle(eddy__task_t *t, bool idle)
{
    if (t->t_idle == idle) {
        return 0;
    }
    t->t_idle = idle;
    for (int i = 0; i < t->t_nwriters; i++) {
        int rc = eddy__writer_event(t->t_writers[i], EDDY__EL_STATUS, idle);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/*
 * The input watermark is the minimum over the channels that are active;
 * ended channels count as +infinity. If every channel is idle the task's
 * outputs become idle too, so downstream stops waiting for them. Before
 * that, as Flink's StatusWatermarkValve does, the watermark advances to the
 * largest of the channels' watermarks: no channel will advance it any more,
 * and the last channel to go idle must not keep event time at its own,
 * lower watermark.
 */
static int update_input_watermark(eddy__task_t *t)
{
    int64_t min = INT64_MAX, max = INT64_MIN;
    bool any_active = false;
    for (int c = 0; c < t->t_nin; c++) {
        if (t->t_in_wm[c] > max) {
            max = t->t_in_wm[c];
        }
        if (t->t_in_idle[c]) {
            continue;
        }
        any_active = true;
        if (t->t_in_wm[c] < min) {
            min = t->t_in_wm[c];
        }
    }
    if (!any_active) {
        if (max > t->t_wm) {
            t->t_wm = max;
            int rc = deliver_watermark(t->t_ops[0], max);
            if (rc != 0) {
                return rc;
            }
        }
        return eddy__task_set_idle(t, true);
    }
    int rc = eddy__task_set_idle(t, false);
    if (rc == 0 && min > t->t_wm) {
        t->t_wm = min;
        rc = deliver_watermark(t->t_ops[0], min);
    }
    return rc;
}

/* ---- processing-time ticks ---- */

void eddy__task_update_tick(eddy__task_t *t)
{
    int64_t next = INT64_MAX;
    for (int i = 0; i < t->t_nops; i++) {
        if (t->t_ops[i]->op_next_tick_ms < next) {
            next = t->t_ops[i]->op_next_tick_ms;
        }
    }
    t->t_next_tick_ms = next;
}

static int run_ticks(eddy__task_t *t)
{
    if (t->t_next_tick_ms == INT64_MAX) {
        return 0;
    }
    int64_t now = eddy__now_ms();
    if (now < t->t_next_tick_ms) {
        return 0;
    }
    for (int i = 0; i < t->t_nops; i++) {
        eddy__op_t *op = t->t_ops[i];
        if (op->op_next_tick_ms <= now && op->op_class->oc_tick != NULL) {
            eddy__tls_op = op;
            int rc = op->op_class->oc_tick(op, now);
            if (rc != 0) {
                return rc;
            }
        } else if (op->op_next_tick_ms <= now) {
            op->op_next_tick_ms = INT64_MAX;
        }
    }
    eddy__task_update_tick(t);
    return 0;
}

/* Metrics readers (a TaskManager's heartbeat) see these copies; publishing
 * once per buffer or poll keeps the per-record counters plain increments. */
static void publish_metrics(eddy__task_t *t)
{
    uint64_t out = 0;
    for (int i = 0; i < t->t_nwriters; i++) {
        out += t->t_writers[i]->wr_records;
    }
    atomic_store_explicit(&t->t_m_records_in, t->t_records_in,
                          memory_order_relaxed);
    atomic_store_explicit(&t->t_m_records_out, out, memory_order_relaxed);
    atomic_store_explicit(&t->t_m_wm, t->t_wm, memory_order_relaxed);
}

static int send_marker(eddy__task_t *t, int64_t born_us);
static int64_t wall_us(void);

/* ---- the loops ---- */

static int run_source(eddy__task_t *t)
{
    eddy__op_t *head = t->t_ops[0];
    for (;;) {
        if (eddy__task_cancelled(t)) {
            return EDDY_ERR_CANCELED;
        }
        int rc = eddy__task_mail(t);
        if (rc != 0) {
            return rc;
        }
        eddy__tls_op = head;
        rc = head->op_class->oc_poll(head, 4096);
        publish_metrics(t);
        if (rc >= 0 && t->t_nwriters > 0) {
            int64_t now = eddy__now_ms();
            if (now >= t->t_next_marker_ms) {
                t->t_next_marker_ms = now + EDDY__MARKER_INTERVAL_MS;
                int mrc = send_marker(t, wall_us());
                if (mrc != 0) {
                    return mrc;
                }
            }
        }
        if (rc < 0) {
            return rc;
        }
        if (rc == EDDY__POLL_END) {
            /* End of input: event time jumps to +infinity, so every pending
             * timer and window downstream fires before the end arrives. */
            return deliver_watermark(head, INT64_MAX);
        }
        rc = run_ticks(t);
        if (rc != 0) {
            return rc;
        }
    }
}

const double eddy__lat_bounds_ms[EDDY__LAT_BUCKETS - 1] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};

/* Wall clock in microseconds: markers cross processes (and machines). */
static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sends a latency marker (born at `born_us`, wall clock) down one channel
 * of each output, a different one each time, so markers sample every path
 * without multiplying. */
static int send_marker(eddy__task_t *t, int64_t born_us)
{
    unsigned rr = t->t_marker_rr++;
    for (int i = 0; i < t->t_nwriters; i++) {
        eddy__writer_t *wr = t->t_writers[i];
        int rc = eddy__outchan_write_event(
            &wr->wr_chans[rr % (unsigned)wr->wr_nchan], EDDY__EL_LATENCY,
            born_us);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* A marker arrived: its age is the end-to-end latency from the source to
 * here (wall clocks: across machines as good as their synchronisation). */
static int on_marker(eddy__task_t *t, int64_t born_us)
{
    int64_t age = wall_us() - born_us;
    if (age < 0) {
        age = 0;
    }
    int b = 0;
    while (b < EDDY__LAT_BUCKETS - 1 &&
           (double)age > eddy__lat_bounds_ms[b] * 1000.0) {
        b++;
    }
    atomic_fetch_add_explicit(&t->t_lat_buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->t_lat_sum_us, (uint64_t)age,
                              memory_order_relaxed);
    return send_marker(t, born_us);
}

static int handle_element(eddy__task_t *t, int ch, const eddy__element_t *el)
{
    eddy__op_t *head = t->t_ops[0];
    switch (el->el_kind) {
    case EDDY__EL_RECORD:
        t->t_records_in++;
        if (EDDY_UNLIKELY(t->t_in_port[ch] != 0)) {
            return head->op_class->oc_process2(head, &el->el_rec);
        }
        return head->op_class->oc_process(head, &el->el_rec);
    case EDDY__EL_WATERMARK:
        if (el->el_value > t->t_in_wm[ch]) {
            t->t_in_wm[ch] = el->el_value;
        }
        t->t_in_idle[ch] = false;
        return update_input_watermark(t);
    case EDDY__EL_STATUS:
        t->t_in_idle[ch] = el->el_value != 0;
        return update_input_watermark(t);
    case EDDY__EL_EOP: {
        if (!t->t_in_done[ch]) {
            t->t_in_done[ch] = true;
            t->t_nin_done++;
        }
        t->t_in_wm[ch] = INT64_MAX;
        t->t_in_idle[ch] = false;
        int rc = update_input_watermark(t);
        return rc != 0 ? rc : eddy__task_on_channel_end(t, ch);
    }
    case EDDY__EL_BARRIER:
        return eddy__task_on_barrier(t, ch, el->el_value);
    case EDDY__EL_LATENCY:
        return on_marker(t, el->el_value);
    default:
        return EDDY_ERR_FORMAT;
    }
}

/* Waits for input, waking for processing-time ticks when some are due. */
static eddy__buffer_t *wait_input(eddy__task_t *t, int *ch)
{
    for (;;) {
        if (t->t_next_tick_ms == INT64_MAX) {
            return eddy__gate_pop(t->t_gate, ch, true);
        }
        /* Wait at most an hour at a time: a timer far in the future (say at
         * INT64_MAX for "never") must not overflow the deadline. */
        int64_t now = eddy__now_ms(), delta = 0;
        if (t->t_next_tick_ms > now) {
            delta = t->t_next_tick_ms - now;
            if (delta > 3600 * 1000) {
                delta = 3600 * 1000;
            }
        }
        if (delta > 0) {
            eddy__buffer_t *b = eddy__gate_pop_until(
                t->t_gate, ch, eddy__now_ns() + (uint64_t)delta * 1000000u);
            if (b != NULL || eddy__task_cancelled(t) ||
                atomic_load_explicit(&t->t_mail, memory_order_relaxed)) {
                return b;
            }
        }
        if (run_ticks(t) != 0 || eddy__task_flush(t) != 0) {
            return NULL;
        }
    }
}

/* Processes what channel ch's deserializer holds, until it runs dry or the
 * channel is blocked by a checkpoint alignment. */
static int drain(eddy__task_t *t, int ch)
{
    eddy__deser_t *ds = &t->t_deser[ch];
    eddy__element_t el;
    bool align = t->t_job->j_env->e_cfg.ck_exactly_once;
    if (align && t->t_in_barrier[ch]) {
        return 0;
    }
    int rc;
    while ((rc = eddy__deser_next(ds, &el)) > 0) {
        /* Stop promptly on cancellation or a failure elsewhere, rather
         * than after processing everything already queued. */
        if (EDDY_UNLIKELY(eddy__task_cancelled(t))) {
            return EDDY_ERR_CANCELED;
        }
        rc = handle_element(t, ch, &el);
        if (rc != 0) {
            return rc;
        }
        if (EDDY_UNLIKELY(el.el_kind == EDDY__EL_BARRIER) && align &&
            t->t_in_barrier[ch]) {
            return 0; /* blocked until the alignment completes */
        }
    }
    if (rc < 0) {
        return eddy__op_fail(t->t_ops[0], rc,
                             "malformed data on input channel %d", ch);
    }
    return 0;
}

/* After an alignment: the channels it unblocked may still hold elements. */
static int drain_unblocked(eddy__task_t *t)
{
    while (t->t_ndrain > 0) {
        int ch = t->t_drain[--t->t_ndrain];
        int rc = drain(t, ch);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int run_input(eddy__task_t *t)
{
    while (t->t_nin_done < t->t_nin) {
        int ch;
        int rc = eddy__task_mail(t);
        if (rc == 0) {
            rc = drain_unblocked(t);
        }
        if (rc != 0) {
            return rc;
        }
        eddy__buffer_t *b = eddy__gate_pop(t->t_gate, &ch, false);
        if (b == NULL) {
            rc = eddy__task_flush(t);
            if (rc != 0) {
                return rc;
            }
            b = wait_input(t, &ch);
            if (b == NULL) {
                if (eddy__task_cancelled(t) || t->t_failed_op != NULL) {
                    return t->t_failed_op != NULL ? EDDY_ERR_USER
                                                  : EDDY_ERR_CANCELED;
                }
                continue; /* poked: look at the mailbox */
            }
        }
        eddy__deser_push(&t->t_deser[ch], b);
        rc = drain(t, ch);
        publish_metrics(t);
        if (rc == 0) {
            rc = drain_unblocked(t);
        }
        if (rc == 0) {
            rc = run_ticks(t);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int eddy__task_finish(eddy__task_t *t)
{
    if (t->t_ended) {
        return 0;
    }
    t->t_ended = true;
    for (int i = 0; i < t->t_nops; i++) {
        eddy__op_t *op = t->t_ops[i];
        if (op->op_class->oc_end_input != NULL) {
            eddy__tls_op = op;
            int rc = op->op_class->oc_end_input(op);
            if (rc != 0) {
                return rc;
            }
        }
    }
    int rc = eddy__task_flush(t);
    if (rc != 0) {
        return rc;
    }
    for (int i = 0; i < t->t_nwriters; i++) {
        rc = eddy__writer_event(t->t_writers[i], EDDY__EL_EOP, 0);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/*
 * With checkpointing, a task whose input ended stays until a checkpoint
 * taken after that completes (Flink's final checkpoint, FLIP-147): its
 * sinks' last records are pre-committed by that checkpoint and committed on
 * its completion, so a failure elsewhere in the job can never replay records
 * that a finished sink already committed. Sources take part in checkpoints
 * from their mailbox; other tasks keep reading their gate, where barriers
 * still arrive behind the end-of-partition marks.
 */
static int await_final_checkpoint(eddy__task_t *t)
{
    if (t->t_gate == NULL) {
        atomic_store(&t->t_job->j_want_trigger, true);
    }
    while (t->t_final_id == 0 || t->t_complete_seen < t->t_final_id) {
        if (eddy__task_cancelled(t)) {
            return EDDY_ERR_CANCELED;
        }
        int rc = eddy__task_mail(t);
        if (rc != 0) {
            return rc;
        }
        if (t->t_final_id != 0 && t->t_complete_seen >= t->t_final_id) {
            break;
        }
        if (t->t_gate == NULL) {
            /* Sources have no gate to wait on: nap briefly. */
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        int ch;
        eddy__buffer_t *b = eddy__gate_pop_until(
            t->t_gate, &ch, eddy__now_ns() + 50u * 1000 * 1000);
        if (b == NULL) {
            continue;
        }
        eddy__deser_push(&t->t_deser[ch], b);
        rc = drain(t, ch);
        if (rc == 0) {
            rc = drain_unblocked(t);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void report_failure(eddy__task_t *t, int rc)
{
    eddy__job_t *job = t->t_job;
    eddy__mutex_lock(&job->j_mu);
    if (!job->j_failed &&
        !(rc == EDDY_ERR_CANCELED && t->t_failed_op == NULL)) {
        eddy__op_t *op = t->t_failed_op;
        job->j_failed = true;
        if (op != NULL) {
            eddy_error_set(&job->j_error, rc,
                           "operator '%s' (subtask %d of %d) "
                           "failed: %s",
                           op->op_ctx.cx_name, t->t_subtask + 1,
                           t->t_parallelism, op->op_errmsg);
        } else {
            eddy_error_set(&job->j_error, rc,
                           "task '%s' (subtask %d of %d) "
                           "failed: %s",
                           t->t_name, t->t_subtask + 1, t->t_parallelism,
                           eddy_strerror(rc));
        }
    }
    eddy__mutex_unlock(&job->j_mu);
    /* Stop everyone: raise the flag, then wake every blocked thread. */
    atomic_store(job->j_cancel, 1);
    eddy__job_wake_all(job);
}

void eddy__job_wake_all(eddy__job_t *job)
{
    eddy__pool_wake(job->j_pool);
    for (int i = 0; i < job->j_ntasks; i++) {
        if (job->j_tasks[i]->t_gate != NULL) {
            eddy__gate_wake(job->j_tasks[i]->t_gate);
        }
    }
}

void *eddy__task_main(void *arg)
{
    eddy__task_t *t = arg;
    int rc = 0;
    eddy__crash_thread_init();
    for (int i = 0; i < t->t_nops && rc == 0; i++) {
        eddy__op_t *op = t->t_ops[i];
        if (op->op_class->oc_open != NULL) {
            eddy__tls_op = op;
            rc = op->op_class->oc_open(op);
        }
    }
    if (rc == 0 && t->t_job->j_on_task != NULL) {
        t->t_job->j_on_task(t->t_job->j_on_task_arg, t, true, 0);
    }
    if (rc == 0) {
        eddy__task_update_tick(t);
        rc = t->t_gate == NULL ? run_source(t) : run_input(t);
    }
    if (rc == 0) {
        rc = eddy__task_finish(t);
    }
    if (rc == 0 && t->t_job->j_ckpt != NULL) {
        rc = await_final_checkpoint(t);
    }
    if (rc == 0) {
        eddy__task_finished(t);
    }
    for (int i = 0; i < t->t_nops; i++) {
        eddy__op_t *op = t->t_ops[i];
        if (op->op_class->oc_close != NULL) {
            eddy__tls_op = op;
            op->op_class->oc_close(op);
        }
    }
    eddy__tls_op = NULL;
    if (rc != 0) {
        report_failure(t, rc);
    }
    if (t->t_job->j_on_task != NULL) {
        t->t_job->j_on_task(t->t_job->j_on_task_arg, t, false, rc);
    }
    eddy__crash_thread_close();
    eddy__mutex_lock(&t->t_job->j_mu);
    t->t_job->j_running--;
    pthread_cond_signal(&t->t_job->j_done);
    eddy__mutex_unlock(&t->t_job->j_mu);
    return NULL;
}
