/*
 * eddy — the TaskManager (DESIGN.md §2, §7).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. A TaskManager offers slots to one JobManager and runs the
 * subtasks placed on it. It connects to the JobManager's RPC port,
 * registers (id, slots, data-plane address), then beats every
 * heartbeat.interval. When its connection to the JobManager drops it
 * cancels everything it runs (the JobManager will redeploy from the latest
 * checkpoint) and reconnects with a growing delay, so a restarted
 * JobManager finds it again.
 *
 * A deployment (DeployJob) is one attempt of a job: a thread downloads the
 * job's .so from the JobManager (cached per job under the data dir, checked
 * against the SHA-256 the JobManager sends with the deployment), builds
 * the job's graph again with the same arguments, plans it, and runs the
 * tasks placed here (src/runtime/job.c with a placement); edges to tasks
 * elsewhere go through the data plane (src/net/dataplane.h). Task states
 * and checkpoint acknowledgements go back over the RPC connection.
 *
 * THREADS. The main loop (RPC reads, heartbeats, cancellations), one thread
 * per attempt plus its task and snapshot threads, and the data plane's I/O
 * thread. tm_mu guards the list of attempts.
 */
#ifndef EDDY_TASKMANAGER_TASKMANAGER_H
#define EDDY_TASKMANAGER_TASKMANAGER_H

#include "common/internal.h"
#include "common/settings.h"

typedef struct eddy__tm eddy__tm_t;

/* `jobmanager`: "host:port" of the JobManager's RPC endpoint. */
int eddy__tm_new(const eddy__settings_t *st, const char *jobmanager,
                 eddy__tm_t **out, eddy_error_t *err);
/* Runs until *stop becomes non-zero; then cancels what runs and returns. */
int eddy__tm_run(eddy__tm_t *tm, volatile int *stop);
void eddy__tm_destroy(eddy__tm_t *tm);

/*
 * A job's .so for an attempt: `dest` if it is there already (an earlier
 * attempt's download) and matches `sha256`, else downloaded from base+url
 * to `dest` (atomically: a temporary file renamed). With a non-empty
 * `sha256` (lowercase hex) the file must match it: a cached file that does
 * not is downloaded again, a download that does not is deleted and fails
 * naming both digests. Returns 0 or the error.
 */
int eddy__tm_fetch_artifact(const char *base, const char *url,
                            const char *sha256, const char *dest,
                            eddy_error_t *err);

#endif /* EDDY_TASKMANAGER_TASKMANAGER_H */
