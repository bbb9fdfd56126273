/*
 * eddy — watermark multiplexer: per-partition watermarks inside a source.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §4). A source subtask that reads several partitions
 * (Kafka partitions, file splits, the partitions of eddy_source_partitions)
 * must not derive one watermark from its merged output: when one partition
 * runs ahead of another, the merged maximum timestamp would make the slow
 * partition's records late. Each partition therefore gets its own watermark
 * generator, all driven by the source's one eddy_watermark_strategy_t, and
 * the subtask emits the minimum over its partitions. This is Flink's
 * WatermarkOutputMultiplexer as used by its SourceOperator:
 *
 *   per record   the strategy's timestamp function assigns the timestamp;
 *                the record is emitted; the partition's generator sees it
 *                (a custom on_event may advance the partition's watermark
 *                at once: punctuated watermarks, combined immediately);
 *   per tick     every watermark interval, each active partition's periodic
 *                watermark is computed (bounded: max_ts - bound - 1;
 *                monotonous: max_ts - 1; custom: on_periodic) and the
 *                minimum over the non-idle partitions is forwarded with
 *                eddy__op_forward_watermark when it advanced;
 *   idleness     a partition without records for idleness_ms (measured in
 *                ticks, as eddy_assign_timestamps does) is idle and left out
 *                of the minimum; when every partition is idle (or none is
 *                assigned) the subtask's output is marked idle with
 *                eddy__task_set_idle. A record on an idle partition makes it,
 *                and the output, active again before the record is emitted;
 *   finish       a finished partition (a bounded split that is exhausted)
 *                or a removed one (revoked by a rebalance) leaves the
 *                minimum at once, which may advance the watermark.
 *
 * A partition that has seen no record yet has no watermark and holds the
 * minimum back until it receives records or turns idle (as in Flink: a new
 * partition may still deliver old records). Watermarks never regress: a
 * partition's watermark is the largest its generator produced, and the
 * combined one is forwarded only when it advances. When the output turned
 * idle, it becomes active again on a record or when the minimum advances.
 *
 * USE. The source operator embeds an eddy__wm_mux_t in its op_data, calls
 * eddy__wm_mux_init in oc_open, eddy__wm_mux_add per assigned partition,
 * eddy__wm_mux_emit for every record (instead of eddy__emit), and from its
 * oc_tick eddy__wm_mux_tick, setting op_next_tick_ms from
 * eddy__wm_mux_next_tick. The task runs ticks between polls, so a source
 * waiting for data (an empty Kafka fetch) must return from oc_poll at least
 * once per tick period, or idleness and periodic watermarks stall with it.
 * A bounded source still ends with the maximal watermark that the task
 * delivers after the last poll.
 *
 * THREADS. A multiplexer belongs to one source operator instance and is used
 * only on its task's thread.
 */
#ifndef EDDY_RUNTIME_WM_MUX_H
#define EDDY_RUNTIME_WM_MUX_H

#include "runtime/runtime.h"

typedef enum eddy__wm_part_state {
    EDDY__WM_PART_FREE = 0, /* slot unused: never added, or removed */
    EDDY__WM_PART_LIVE,     /* assigned and still producing */
    EDDY__WM_PART_FINISHED  /* exhausted: excluded, slot kept */
} eddy__wm_part_state_t;

/* One partition's watermark generator. */
typedef struct eddy__wm_part {
    eddy__wm_part_state_t wp_state;
    bool wp_idle;
    int64_t wp_max_ts;         /* largest timestamp seen; INT64_MIN: none */
    int64_t wp_wm;             /* the partition's watermark; INT64_MIN: none */
    uint64_t wp_records;       /* records since the last tick */
    int64_t wp_last_active_ms; /* last tick that found records (or added) */
    unsigned char *wp_custom;  /* CUSTOM generator state (state_size bytes) */
} eddy__wm_part_t;

typedef struct eddy__wm_mux {
    eddy__op_t *wx_op; /* the source operator the watermarks leave from */
    const eddy_watermark_strategy_t *wx_ws; /* not owned; outlives the mux */
    int64_t wx_interval_ms;                 /* periodic emission; 0 = off */
    int64_t wx_step_ms;                     /* tick period; 0 = no ticks */
    int64_t wx_next_tick_ms;                /* INT64_MAX: no tick wanted */
    eddy__wm_part_t *wx_parts;
    size_t wx_nparts; /* slots in use or free, 0 .. wx_nparts-1 */
    size_t wx_cap;
    size_t wx_nlive; /* LIVE partitions */
} eddy__wm_mux_t;

/*
 * Sets up a multiplexer for the source operator `op`, with no partitions.
 * `ws` must have been checked (eddy__wm_strategy_check) and stay valid (the
 * graph's copy); `interval_ms` is the periodic interval (the environment's
 * watermark interval); `now_ms` is the current processing time.
 */
void eddy__wm_mux_init(eddy__wm_mux_t *mx, eddy__op_t *op,
                       const eddy_watermark_strategy_t *ws, int64_t interval_ms,
                       int64_t now_ms);
/* Releases the partitions' state. The struct may be initialised again. */
void eddy__wm_mux_close(eddy__wm_mux_t *mx);

/*
 * Registers a new partition, active and without a watermark; its idle clock
 * starts at `now_ms`. Returns its slot (reusing a removed partition's slot),
 * which names it in the calls below.
 */
int eddy__wm_mux_add(eddy__wm_mux_t *mx, int64_t now_ms);
/*
 * The partition is exhausted: it no longer holds the watermark back, and the
 * minimum over the others is forwarded at once if it advanced. Its slot stays
 * reserved (FINISHED); emitting on it is a bug. Returns 0 or a negative
 * eddy_err_t from downstream.
 */
int eddy__wm_mux_finish(eddy__wm_mux_t *mx, int slot);
/* Like eddy__wm_mux_finish, for a revoked partition: the slot is freed and
 * may be returned by a later eddy__wm_mux_add. */
int eddy__wm_mux_remove(eddy__wm_mux_t *mx, int slot);

/*
 * Emits a record of partition `slot` downstream: assigns its timestamp with
 * the strategy's timestamp function (keeping rec->ts without one; a record
 * left without a timestamp fails the operator), re-activates an idle
 * partition and output, emits the record and lets the custom on_event
 * generator see it (a watermark it returns is combined at once). It does not
 * reset the operator's scratch memory: `rec` may live there.
 * Returns 0 or a negative eddy_err_t.
 */
int eddy__wm_mux_emit(eddy__wm_mux_t *mx, int slot, const eddy_record_t *rec);

/*
 * Runs the periodic work if due (`now_ms` >= eddy__wm_mux_next_tick):
 * idleness of each partition, periodic watermarks, the combined watermark and
 * the output's idle status. Returns 0 or a negative eddy_err_t.
 */
int eddy__wm_mux_tick(eddy__wm_mux_t *mx, int64_t now_ms);

/* When the multiplexer next needs eddy__wm_mux_tick (INT64_MAX: never). */
static inline int64_t eddy__wm_mux_next_tick(const eddy__wm_mux_t *mx)
{
    return mx->wx_next_tick_ms;
}

/*
 * Checks a strategy given to a job-API function named `fn`; on a bad one
 * records the error in `env` and returns false.
 */
bool eddy__wm_strategy_check(eddy_env_t *env, const char *fn,
                             const eddy_watermark_strategy_t *ws);

/*
 * Partition-aware sources keep this first in their s_config, so that
 * eddy_source_with_watermarks can hand them a strategy (see
 * src/connectors/partitions.c for the list of such sources).
 */
typedef struct eddy__wm_source_conf {
    const eddy_watermark_strategy_t *wsc_strategy; /* NULL: none */
} eddy__wm_source_conf_t;

#endif /* EDDY_RUNTIME_WM_MUX_H */
