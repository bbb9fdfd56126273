/*
 * eddy — fault injection for crash tests (DESIGN.md §10).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * EDDY_FAULT=POINT[:N] makes the process kill itself with SIGKILL the N-th
 * time (default: the first) execution reaches the named point, so tests
 * can crash a job exactly where exactly-once is hardest:
 *   align     a task has blocked a channel and waits for the other barriers
 *   snapshot  the asynchronous part of a snapshot, before acknowledging
 *   complete  checkpoint metadata written, before any sink was told (the
 *             gap between "checkpoint complete" and "committed")
 *   commit    a sink is about to commit what a checkpoint covers
 *   meta_commit  the metadata store is inside a write transaction
 *                (src/meta/meta_sqlite.c)
 * Without the variable a point costs one relaxed load.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "common/internal.h"

static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static char fault_point[32];
static long fault_after;
static atomic_long fault_hits;
static atomic_bool fault_armed;

static void fault_init(void)
{
    const char *v = getenv("EDDY_FAULT");
    if (v == NULL || *v == '\0') {
        return;
    }
    const char *colon = strchr(v, ':');
    size_t n = colon ? (size_t)(colon - v) : strlen(v);
    if (n == 0 || n >= sizeof(fault_point)) {
        return;
    }
    memcpy(fault_point, v, n);
    fault_point[n] = '\0';
    fault_after = colon ? strtol(colon + 1, NULL, 10) : 1;
    if (fault_after < 1) {
        fault_after = 1;
    }
    atomic_store(&fault_armed, true);
}

void eddy__fault(const char *point)
{
    pthread_once(&fault_once, fault_init);
    if (!atomic_load_explicit(&fault_armed, memory_order_relaxed) ||
        strcmp(point, fault_point) != 0) {
        return;
    }
    if (atomic_fetch_add(&fault_hits, 1) + 1 == fault_after) {
        char msg[96];
        int len =
            snprintf(msg, sizeof(msg),
                     "eddy: EDDY_FAULT: killing the process at '%s'\n", point);
        if (write(STDERR_FILENO, msg, (size_t)len) < 0) {
            /* nothing to do: we are about to die */
        }
        kill(getpid(), SIGKILL);
    }
}
