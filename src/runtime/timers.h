/*
 * eddy — the timer service of a keyed operator subtask.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Two domains: event time (fired as the input watermark passes a
 * timer's timestamp) and processing time (fired by the task's clock). A
 * timer is (timestamp, key, namespace); registering the same timer twice is a
 * no-op (deduplicated), and deleting an absent timer is a no-op. Timers fire
 * in timestamp order; timers with equal timestamps fire in registration
 * order, so runs are deterministic. A timer callback may register new timers,
 * including ones due at once: eddy__timers_pop() returns them in the same
 * pass.
 *
 * Implementation: per domain a binary min-heap of entries ordered by
 * (timestamp, sequence number) plus a hash set for deduplication and deletion.
 * Entries (with copies of the key and namespace bytes) are recycled through
 * free lists: registering timers in steady state costs no malloc.
 *
 * THREADS. Belongs to one subtask thread.
 */
#ifndef EDDY_RUNTIME_TIMERS_H
#define EDDY_RUNTIME_TIMERS_H

#include "state/state.h"

#define EDDY__TIME_EVENT 0
#define EDDY__TIME_PROCESSING 1

/* A fired timer; the pointers stay valid until the next call on the service. */
typedef struct eddy__timer {
    int64_t tm_ts;
    eddy__skey_t tm_key; /* key, hash, key group, namespace */
} eddy__timer_t;

typedef struct eddy__timers eddy__timers_t;

eddy__timers_t *eddy__timers_new(void);
void eddy__timers_destroy(eddy__timers_t *ts);

/* Registers a timer (copies the key and namespace). Returns 0, or
 * EDDY_ERR_NOMEM. */
int eddy__timers_add(eddy__timers_t *ts, int domain, int64_t when,
                     const eddy__skey_t *k);
/* Deletes a registered timer; 0 whether or not it existed. */
int eddy__timers_delete(eddy__timers_t *ts, int domain, int64_t when,
                        const eddy__skey_t *k);
/* Takes the earliest timer with timestamp <= limit: 1 and *out filled, or 0
 * if none is due. */
int eddy__timers_pop(eddy__timers_t *ts, int domain, int64_t limit,
                     eddy__timer_t *out);
/* Timestamp of the earliest timer of the domain, or INT64_MAX if none. */
int64_t eddy__timers_next(const eddy__timers_t *ts, int domain);
/* Registered timers of the domain. */
size_t eddy__timers_count(const eddy__timers_t *ts, int domain);
/* Every timer of a key group, in no particular order (snapshots). Stops at
 * the first non-zero return of fn and passes it on. */
int eddy__timers_for_each(eddy__timers_t *ts, int domain, int kg,
                          int (*fn)(void *arg, const eddy__timer_t *t),
                          void *arg);

#endif /* EDDY_RUNTIME_TIMERS_H */
