/*
 * eddy — join operators: internal counters (test hook).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The joins themselves are public (eddy_interval_join, eddy_window_join in
 * eddy.h). This header only exposes what tests need to observe state
 * cleanup, which the joins' output cannot show by construction.
 */
#ifndef EDDY_OPERATORS_JOIN_H
#define EDDY_OPERATORS_JOIN_H

#include "runtime/runtime.h"

/* Counters of a join operator, summed over its subtasks. Valid once
 * eddy_env_execute has returned. */
typedef struct eddy__join_stats {
    uint64_t jst_late;     /* records dropped as late */
    uint64_t jst_expired;  /* buffered records removed by cleanup (interval
                              join) or by a window's end, before end of input */
    uint64_t jst_peak;     /* most records one subtask buffered at once */
    uint64_t jst_leftover; /* records still buffered when subtasks closed */
} eddy__join_stats_t;

/* Fills `out` for a stream returned by eddy_interval_join or
 * eddy_window_join; returns 0, or EDDY_ERR_INVALID for any other stream. */
int eddy__join_stats(const eddy_stream_t *join, eddy__join_stats_t *out);

/* Records buffered right now by one running join instance (op_data of an
 * opened join operator); for tests that drive the operator directly. */
uint64_t eddy__join_buffered(const eddy__op_t *op);

#endif /* EDDY_OPERATORS_JOIN_H */
