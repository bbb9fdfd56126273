/*
 * eddy — timestamp assignment and watermark generation.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Semantics follow Flink's WatermarkStrategy: bounded out-of-orderness emits
 * max_timestamp - bound - 1 (so a record at exactly the watermark's
 * timestamp + 1 is still on time), monotonous is the bound 0, and custom
 * generators may emit on every record (punctuated) and/or periodically.
 * Periodic emission runs on the task's processing-time tick. Idleness is
 * measured in ticks: a tick that finds no record since the last one starts
 * the idle clock; once idle, the first record makes the stream active again.
 */
#include <stdlib.h>

#include "runtime/runtime.h"

typedef struct wm_state {
    int64_t max_ts;
    uint64_t records_since_tick;
    int64_t last_active_ms;
    int64_t interval_ms;
    unsigned char *custom; /* CUSTOM generator state */
} wm_state_t;

eddy_watermark_strategy_t eddy_watermarks_bounded(int64_t max_ms)
{
    eddy_watermark_strategy_t ws;
    memset(&ws, 0, sizeof(ws));
    ws.kind = EDDY_WATERMARKS_BOUNDED;
    ws.max_out_of_orderness_ms = max_ms;
    return ws;
}

eddy_watermark_strategy_t eddy_watermarks_monotonous(void)
{
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    ws.kind = EDDY_WATERMARKS_MONOTONOUS;
    return ws;
}

eddy_watermark_strategy_t
eddy_watermarks_custom(eddy_wm_on_event_fn on_event,
                       eddy_wm_on_periodic_fn periodic, size_t state_size,
                       void *opaque)
{
    eddy_watermark_strategy_t ws = eddy_watermarks_bounded(0);
    ws.kind = EDDY_WATERMARKS_CUSTOM;
    ws.on_event = on_event;
    ws.on_periodic = periodic;
    ws.state_size = state_size;
    ws.opaque = opaque;
    return ws;
}

static int64_t current(const eddy_watermark_strategy_t *ws,
                       const wm_state_t *st)
{
    if (ws->kind == EDDY_WATERMARKS_CUSTOM) {
        return ws->on_periodic != NULL ? ws->on_periodic(st->custom, ws->opaque)
                                       : EDDY_TS_NONE;
    }
    return eddy__bounded_watermark(
        st->max_ts,
        ws->kind == EDDY_WATERMARKS_BOUNDED ? ws->max_out_of_orderness_ms : 0);
}

static int wm_open(eddy__op_t *op)
{
    const eddy_watermark_strategy_t *ws = op->op_node->s_config;
    wm_state_t *st = eddy__calloc(1, sizeof(*st));
    op->op_data = st;
    st->max_ts = INT64_MIN;
    st->interval_ms = op->op_node->s_env->e_wm_interval_ms;
    st->last_active_ms = eddy__now_ms();
    if (ws->kind == EDDY_WATERMARKS_CUSTOM && ws->state_size > 0) {
        st->custom = eddy__calloc(1, ws->state_size);
    }
    if (st->interval_ms > 0 || ws->idleness_ms > 0) {
        int64_t step = st->interval_ms > 0 ? st->interval_ms : ws->idleness_ms;
        op->op_next_tick_ms = eddy__now_ms() + step;
    }
    return 0;
}

static void wm_close(eddy__op_t *op)
{
    wm_state_t *st = op->op_data;
    if (st != NULL) {
        free(st->custom);
        free(st);
        op->op_data = NULL;
    }
}

static int wm_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    const eddy_watermark_strategy_t *ws = op->op_node->s_config;
    wm_state_t *st = op->op_data;
    eddy_record_t out;
    eddy__record_copy(&out, rec);
    if (ws->timestamp != NULL) {
        eddy__op_enter(op);
        out.ts = ws->timestamp(&op->op_ctx, rec, rec->ts, ws->timestamp_opaque);
    }
    if (EDDY_UNLIKELY(out.ts == EDDY_TS_NONE)) {
        return eddy__op_fail(op, EDDY_ERR_INVALID,
                             "record has no timestamp: give the watermark "
                             "strategy a timestamp function");
    }
    if (EDDY_UNLIKELY(op->op_task->t_idle)) {
        int rc = eddy__task_set_idle(op->op_task, false);
        if (rc != 0) {
            return rc;
        }
    }
    st->records_since_tick++;
    if (out.ts > st->max_ts) {
        st->max_ts = out.ts;
    }
    int rc = eddy__emit(op, &out);
    if (rc != 0) {
        return rc;
    }
    if (ws->on_event != NULL) {
        eddy__tls_op = op;
        int64_t wm = ws->on_event(st->custom, &out, ws->opaque);
        if (wm != EDDY_TS_NONE) {
            return eddy__op_forward_watermark(op, wm);
        }
    }
    return 0;
}

static int wm_tick(eddy__op_t *op, int64_t now)
{
    const eddy_watermark_strategy_t *ws = op->op_node->s_config;
    wm_state_t *st = op->op_data;
    int rc = 0;
    if (st->records_since_tick > 0) {
        st->last_active_ms = now;
        st->records_since_tick = 0;
    } else if (ws->idleness_ms > 0 && !op->op_task->t_idle &&
               now - st->last_active_ms >= ws->idleness_ms) {
        rc = eddy__task_set_idle(op->op_task, true);
    }
    /* An idle stream generates no watermark: one would make downstream
     * count the channel as active again and wait for it. */
    if (rc == 0 && st->interval_ms > 0 && !op->op_task->t_idle) {
        int64_t wm = current(ws, st);
        if (wm != EDDY_TS_NONE) {
            rc = eddy__op_forward_watermark(op, wm);
        }
    }
    int64_t step = st->interval_ms > 0 ? st->interval_ms : ws->idleness_ms;
    op->op_next_tick_ms = now + step;
    return rc;
}

static int wm_watermark(eddy__op_t *op, int64_t wm)
{
    /* Upstream event time is replaced by ours; only the end of input (the
     * maximal watermark) passes, so bounded jobs fire everything. */
    if (wm == INT64_MAX) {
        return eddy__op_forward_watermark(op, wm);
    }
    return 0;
}

const eddy__op_class_t eddy__assign_timestamps_class = {
    .oc_kind = "Timestamps/Watermarks",
    .oc_open = wm_open,
    .oc_process = wm_process,
    .oc_watermark = wm_watermark,
    .oc_tick = wm_tick,
    .oc_close = wm_close,
};

eddy_stream_t *eddy_assign_timestamps(eddy_stream_t *in,
                                      const eddy_watermark_strategy_t *ws)
{
    if (in == NULL) {
        return NULL;
    }
    eddy_env_t *env = in->s_env;
    if (ws == NULL) {
        eddy_env_fail(env, "eddy_assign_timestamps: no strategy given");
        return NULL;
    }
    if (ws->kind == EDDY_WATERMARKS_BOUNDED &&
        ws->max_out_of_orderness_ms < 0) {
        eddy_env_fail(env,
                      "eddy_assign_timestamps: the out-of-orderness bound "
                      "must be >= 0 ms, got %lld",
                      (long long)ws->max_out_of_orderness_ms);
        return NULL;
    }
    if (ws->idleness_ms < 0) {
        eddy_env_fail(env, "eddy_assign_timestamps: idleness must be >= 0 ms");
        return NULL;
    }
    if (ws->kind > EDDY_WATERMARKS_CUSTOM) {
        eddy_env_fail(env, "eddy_assign_timestamps: unknown strategy kind %d",
                      (int)ws->kind);
        return NULL;
    }
    eddy_stream_t *s =
        eddy__node_add(env, &eddy__assign_timestamps_class, &in, 1);
    if (s != NULL) {
        s->s_config = eddy__arena_memdup(&env->e_arena, ws, sizeof(*ws));
    }
    return s;
}
