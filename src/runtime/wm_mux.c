/*
 * eddy — watermark multiplexer: per-partition watermarks inside a source.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * See wm_mux.h for the design. The generators follow the same rules as
 * eddy_assign_timestamps (src/operators/watermarks.c), once per partition.
 */
#include <assert.h>
#include <stdlib.h>

#include "runtime/wm_mux.h"

bool eddy__wm_strategy_check(eddy_env_t *env, const char *fn,
                             const eddy_watermark_strategy_t *ws)
{
    if (ws == NULL) {
        eddy_env_fail(env, "%s: no strategy given", fn);
        return false;
    }
    if (ws->kind > EDDY_WATERMARKS_CUSTOM) {
        eddy_env_fail(env, "%s: unknown strategy kind %d", fn, (int)ws->kind);
        return false;
    }
    if (ws->kind == EDDY_WATERMARKS_BOUNDED &&
        ws->max_out_of_orderness_ms < 0) {
        eddy_env_fail(env,
                      "%s: the out-of-orderness bound must be >= 0 ms, "
                      "got %lld",
                      fn, (long long)ws->max_out_of_orderness_ms);
        return false;
    }
    if (ws->idleness_ms < 0) {
        eddy_env_fail(env, "%s: idleness must be >= 0 ms, got %lld", fn,
                      (long long)ws->idleness_ms);
        return false;
    }
    return true;
}

void eddy__wm_mux_init(eddy__wm_mux_t *mx, eddy__op_t *op,
                       const eddy_watermark_strategy_t *ws, int64_t interval_ms,
                       int64_t now_ms)
{
    memset(mx, 0, sizeof(*mx));
    mx->wx_op = op;
    mx->wx_ws = ws;
    mx->wx_interval_ms = interval_ms;
    /* Idleness is checked on the periodic tick; without periodic emission
     * the idleness timeout sets the pace. */
    mx->wx_step_ms = interval_ms > 0 ? interval_ms : ws->idleness_ms;
    mx->wx_next_tick_ms =
        mx->wx_step_ms > 0 ? now_ms + mx->wx_step_ms : INT64_MAX;
}

void eddy__wm_mux_close(eddy__wm_mux_t *mx)
{
    for (size_t i = 0; i < mx->wx_nparts; i++) {
        free(mx->wx_parts[i].wp_custom);
    }
    free(mx->wx_parts);
    mx->wx_parts = NULL;
    mx->wx_nparts = mx->wx_cap = mx->wx_nlive = 0;
}

int eddy__wm_mux_add(eddy__wm_mux_t *mx, int64_t now_ms)
{
    const eddy_watermark_strategy_t *ws = mx->wx_ws;
    size_t slot = 0;
    while (slot < mx->wx_nparts &&
           mx->wx_parts[slot].wp_state != EDDY__WM_PART_FREE) {
        slot++;
    }
    if (slot == mx->wx_nparts) {
        eddy__grow((void **)&mx->wx_parts, &mx->wx_cap, mx->wx_nparts + 1,
                   sizeof(*mx->wx_parts));
        mx->wx_nparts++;
    }
    eddy__wm_part_t *p = &mx->wx_parts[slot];
    memset(p, 0, sizeof(*p));
    p->wp_state = EDDY__WM_PART_LIVE;
    p->wp_max_ts = INT64_MIN;
    p->wp_wm = INT64_MIN;
    p->wp_last_active_ms = now_ms;
    if (ws->kind == EDDY_WATERMARKS_CUSTOM && ws->state_size > 0) {
        p->wp_custom = eddy__calloc(1, ws->state_size);
    }
    mx->wx_nlive++;
    return (int)slot;
}

/*
 * Forwards the minimum over the live, non-idle partitions if it advanced.
 * With `at_tick`, also marks the output idle when no partition is active;
 * elsewhere (finish, remove) the next tick decides, as in Flink.
 */
static int combine(eddy__wm_mux_t *mx, bool at_tick)
{
    eddy__op_t *op = mx->wx_op;
    int64_t min = INT64_MAX;
    bool any_active = false;
    for (size_t i = 0; i < mx->wx_nparts; i++) {
        const eddy__wm_part_t *p = &mx->wx_parts[i];
        if (p->wp_state != EDDY__WM_PART_LIVE || p->wp_idle) {
            continue;
        }
        any_active = true;
        if (p->wp_wm < min) {
            min = p->wp_wm;
        }
    }
    if (!any_active) {
        return at_tick ? eddy__task_set_idle(op->op_task, true) : 0;
    }
    if (min <= op->op_out_wm) {
        return 0;
    }
    if (op->op_task->t_idle) {
        int rc = eddy__task_set_idle(op->op_task, false);
        if (rc != 0) {
            return rc;
        }
    }
    return eddy__op_forward_watermark(op, min);
}

static eddy__wm_part_t *live_part(eddy__wm_mux_t *mx, int slot)
{
    assert(slot >= 0 && (size_t)slot < mx->wx_nparts);
    eddy__wm_part_t *p = &mx->wx_parts[slot];
    assert(p->wp_state == EDDY__WM_PART_LIVE);
    return p;
}

static int leave(eddy__wm_mux_t *mx, int slot, eddy__wm_part_state_t state)
{
    eddy__wm_part_t *p = live_part(mx, slot);
    free(p->wp_custom);
    p->wp_custom = NULL;
    p->wp_state = state;
    mx->wx_nlive--;
    return combine(mx, false);
}

int eddy__wm_mux_finish(eddy__wm_mux_t *mx, int slot)
{
    return leave(mx, slot, EDDY__WM_PART_FINISHED);
}

int eddy__wm_mux_remove(eddy__wm_mux_t *mx, int slot)
{
    return leave(mx, slot, EDDY__WM_PART_FREE);
}

int eddy__wm_mux_emit(eddy__wm_mux_t *mx, int slot, const eddy_record_t *rec)
{
    eddy__op_t *op = mx->wx_op;
    const eddy_watermark_strategy_t *ws = mx->wx_ws;
    eddy__wm_part_t *p = live_part(mx, slot);
    eddy_record_t out;
    eddy__record_copy(&out, rec);
    int rc;
    if (ws->timestamp != NULL) {
        eddy__tls_op = op;
        out.ts = ws->timestamp(&op->op_ctx, rec, rec->ts, ws->timestamp_opaque);
    }
    if (EDDY_UNLIKELY(out.ts == EDDY_TS_NONE)) {
        return eddy__op_fail(op, EDDY_ERR_INVALID,
                             "record has no timestamp: give the watermark "
                             "strategy a timestamp function");
    }
    p->wp_idle = false;
    if (EDDY_UNLIKELY(op->op_task->t_idle)) {
        rc = eddy__task_set_idle(op->op_task, false);
        if (rc != 0) {
            return rc;
        }
    }
    p->wp_records++;
    if (out.ts > p->wp_max_ts) {
        p->wp_max_ts = out.ts;
    }
    rc = eddy__emit(op, &out);
    if (rc != 0 || ws->on_event == NULL) {
        return rc;
    }
    /* `p` is still valid: only the owning source adds partitions (which may
     * move wx_parts), never from inside a downstream call. */
    eddy__tls_op = op;
    int64_t wm = ws->on_event(p->wp_custom, &out, ws->opaque);
    if (wm == EDDY_TS_NONE || wm <= p->wp_wm) {
        return 0;
    }
    p->wp_wm = wm;
    return combine(mx, false);
}

/* The partition's periodic watermark (EDDY_TS_NONE: none yet). */
static int64_t periodic(const eddy__wm_mux_t *mx, const eddy__wm_part_t *p)
{
    const eddy_watermark_strategy_t *ws = mx->wx_ws;
    if (ws->kind == EDDY_WATERMARKS_CUSTOM) {
        if (ws->on_periodic == NULL) {
            return EDDY_TS_NONE;
        }
        eddy__tls_op = mx->wx_op;
        return ws->on_periodic(p->wp_custom, ws->opaque);
    }
    return eddy__bounded_watermark(
        p->wp_max_ts,
        ws->kind == EDDY_WATERMARKS_BOUNDED ? ws->max_out_of_orderness_ms : 0);
}

int eddy__wm_mux_tick(eddy__wm_mux_t *mx, int64_t now_ms)
{
    if (now_ms < mx->wx_next_tick_ms) {
        return 0;
    }
    mx->wx_next_tick_ms = now_ms + mx->wx_step_ms;
    int64_t idleness = mx->wx_ws->idleness_ms;
    for (size_t i = 0; i < mx->wx_nparts; i++) {
        eddy__wm_part_t *p = &mx->wx_parts[i];
        if (p->wp_state != EDDY__WM_PART_LIVE) {
            continue;
        }
        if (p->wp_records > 0) {
            p->wp_last_active_ms = now_ms;
            p->wp_records = 0;
        } else if (idleness > 0 && !p->wp_idle &&
                   now_ms - p->wp_last_active_ms >= idleness) {
            p->wp_idle = true;
        }
        /* An idle partition generates nothing (Flink's idleness wrapper
         * skips the periodic emission too). */
        if (!p->wp_idle && mx->wx_interval_ms > 0) {
            int64_t wm = periodic(mx, p);
            if (wm != EDDY_TS_NONE && wm > p->wp_wm) {
                p->wp_wm = wm;
            }
        }
    }
    return combine(mx, true);
}
