/*
 * eddy — the JobManager (DESIGN.md §2, §6, §7, §8).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. One process: a REST server (src/rest/http.h) for users, an RPC
 * endpoint for TaskManagers (src/rpc/), a checkpoint coordinator per job
 * (src/checkpoint/coordinator.h) and the metadata store (src/meta/).
 *
 * One thread, the main loop, owns everything that changes: it accepts and
 * reads TaskManager connections, sends heartbeats and detects lost
 * TaskManagers, schedules jobs onto slots, drives the coordinators and
 * moves jobs through their states. It holds the JobManager's mutex while it
 * works and drops it while it waits in poll(). REST handlers run on the
 * HTTP server's threads: reads take the mutex and look; actions (cancel,
 * savepoint, stop) are queued as commands for the main loop and wait for
 * its answer, so no two threads ever drive a job or a coordinator at once.
 * Submission inspects the job's .so in a child process (inspect.h) without
 * the mutex, then adds the job.
 *
 * THREADS. See above: the main loop, the HTTP server's pool, and the
 * inspection children (processes).
 */
#ifndef EDDY_JOBMANAGER_JOBMANAGER_H
#define EDDY_JOBMANAGER_JOBMANAGER_H

#include "common/internal.h"
#include "common/settings.h"

typedef struct eddy__jm eddy__jm_t;

/* Opens the metadata store and the data dir, binds the REST and RPC ports
 * (settings rest.port, rpc.port, data.dir, metadata.store, heartbeat.*,
 * scheduler.*, checkpoint.*). `exe`: the eddy binary, for inspecting
 * jobs (NULL: /proc/self/exe). */
int eddy__jm_new(const eddy__settings_t *st, const char *exe, eddy__jm_t **out,
                 eddy_error_t *err);
/* Runs the main loop until *stop becomes non-zero (SIGTERM). */
int eddy__jm_run(eddy__jm_t *jm, volatile int *stop);
void eddy__jm_destroy(eddy__jm_t *jm);
int eddy__jm_rest_port(const eddy__jm_t *jm);
int eddy__jm_rpc_port(const eddy__jm_t *jm);

#endif /* EDDY_JOBMANAGER_JOBMANAGER_H */
