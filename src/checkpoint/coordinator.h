/*
 * eddy — the checkpoint coordinator (DESIGN.md §6).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Transport-agnostic: it decides when to trigger, collects acknowledgements
 * and declines, completes (writes _metadata, applies retention) and tells
 * the runtime through hooks. The local runtime calls it from a thread of
 * its own and from snapshot threads; the JobManager will host it unchanged,
 * feeding it acknowledgements that arrive over RPC.
 *
 *   - Periodic triggers every checkpoint.interval, at most
 *     checkpoint.max_concurrent in flight (default 1), and at least
 *     checkpoint.min_pause between the end of one and the start of the next.
 *   - A checkpoint not acknowledged by every task within checkpoint.timeout
 *     is aborted; a decline aborts it at once. Aborting deletes its
 *     directory and calls ch_abort; the next trigger comes as scheduled.
 *   - Completion: every task acknowledged with its operators' handles; the
 *     coordinator writes chk-n/_metadata atomically, then calls
 *     ch_complete (sinks commit), then drops the oldest completed
 *     checkpoints beyond checkpoint.retained, deleting their directories and
 *     the shared files no retained checkpoint lists. Savepoints are written
 *     to their own directory and never deleted.
 *
 * THREADS. All calls are serialized by an internal mutex; hooks are called
 * with it held, so they must not call back into the coordinator.
 */
#ifndef EDDY_CHECKPOINT_COORDINATOR_H
#define EDDY_CHECKPOINT_COORDINATOR_H

#include <jansson.h>

#include "runtime/config.h"

typedef struct eddy__coord eddy__coord_t;

typedef struct eddy__coord_hooks {
    void *ch_arg;
    /* Start checkpoint id at every source (savepoint: canonical format). */
    void (*ch_trigger)(void *arg, int64_t id, bool savepoint);
    /* Checkpoint id completed: notify every task. */
    void (*ch_complete)(void *arg, int64_t id);
    /* Checkpoint id aborted: notify every task. */
    void (*ch_abort)(void *arg, int64_t id);
} eddy__coord_hooks_t;

/* Statistics for metrics and REST (a copy). */
typedef struct eddy__coord_stats {
    uint64_t cs_triggered;
    uint64_t cs_completed;
    uint64_t cs_failed;
    int64_t cs_latest_id;          /* latest completed, 0 if none */
    int64_t cs_latest_duration_ms; /* trigger to completion */
    int64_t cs_latest_end_ms;      /* wall clock of completion */
    char cs_latest_path[1024];
    char cs_last_failure[256];
} eddy__coord_stats_t;

/*
 * `job_dir` is <checkpoint dir>/<job id> (created if missing). `operators`
 * describes the job: {uid: {"name", "parallelism", "max_parallelism"}}
 * (borrowed reference kept: incref'ed). `ntasks` tasks must acknowledge
 * each checkpoint. Ids start after `last_id` (and after any chk-<n>
 * already in job_dir).
 */
int eddy__coord_new(const eddy__config_t *cfg, const char *job_dir,
                    const char *job_name, json_t *operators, int ntasks,
                    int64_t last_id, const eddy__coord_hooks_t *hooks,
                    eddy__coord_t **out, eddy_error_t *err);
void eddy__coord_destroy(eddy__coord_t *c);

/* Starts periodic triggering (first one after an interval). */
void eddy__coord_start(eddy__coord_t *c, int64_t now_ms);
/* Stops triggering and aborts what is in flight (job ending, failing or
 * restarting). eddy__coord_start resumes. */
void eddy__coord_stop(eddy__coord_t *c);

/* Moves the next periodic trigger to now (still respecting min_pause and
 * max_concurrent): sources have ended and wait for a final checkpoint. */
void eddy__coord_trigger_soon(eddy__coord_t *c, int64_t now_ms);

/* Triggers and times out what is due; returns the ms until the next thing
 * to do (at most `max_wait`). */
int64_t eddy__coord_poll(eddy__coord_t *c, int64_t now_ms, int64_t max_wait);

/* Triggers a savepoint into `dir` now (in addition to periodic ones).
 * Returns its id, or an error if none can start. */
int64_t eddy__coord_trigger_savepoint(eddy__coord_t *c, const char *dir,
                                      eddy_error_t *err);

/* Task `task` acknowledges `id` with {uid: handle} for its operators
 * (stolen). Acks of unknown, finished or aborted checkpoints are dropped. */
void eddy__coord_ack(eddy__coord_t *c, int64_t id, int task, json_t *ops);
/* Task `task` cannot take `id`: abort it. */
void eddy__coord_decline(eddy__coord_t *c, int64_t id, int task,
                         const char *reason);
/* Copies the directory of pending checkpoint `id` into buf: 0, or -1 if
 * the checkpoint is not pending (aborted, completed, unknown). */
int eddy__coord_dir(eddy__coord_t *c, int64_t id, char *buf, size_t size,
                    bool *savepoint);
/* The job directory (<checkpoint dir>/<job id>). */
const char *eddy__coord_job_dir(const eddy__coord_t *c);

void eddy__coord_stats(eddy__coord_t *c, eddy__coord_stats_t *out);
/* Waits until checkpoint `id` completes or aborts, or timeout_ms passes:
 * 1 completed, 0 aborted, EDDY_ERR_TIMEOUT. Error text in *err. */
int eddy__coord_wait(eddy__coord_t *c, int64_t id, int64_t timeout_ms,
                     eddy_error_t *err);

#endif /* EDDY_CHECKPOINT_COORDINATOR_H */
