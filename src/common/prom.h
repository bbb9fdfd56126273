/*
 * eddy — Prometheus text exposition (format 0.0.4) in a growable buffer.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The JobManager and every TaskManager serve /metrics; both write with
 * these helpers, so the escaping of label values and the per-task series
 * (names, types, help, labels of DESIGN.md §8) are defined once. The buffer
 * grows as needed: no section can run out of room.
 */
#ifndef EDDY_COMMON_PROM_H
#define EDDY_COMMON_PROM_H

#include "common/bytes.h"
#include "common/internal.h"

/* The per-task series both processes serve: id, name, type, help. */
#define EDDY__PROM_TASK_SERIES(XX)                                             \
    XX(RECORDS_IN, "eddy_records_in_total", "counter",                         \
       "Records a task took in.")                                              \
    XX(RECORDS_OUT, "eddy_records_out_total", "counter",                       \
       "Records a task sent to other tasks.")                                  \
    XX(BACKPRESSURE, "eddy_backpressure_ratio", "gauge",                       \
       "Share of time a task's writers waited for room downstream.")           \
    XX(WATERMARK, "eddy_current_input_watermark_seconds", "gauge",             \
       "A task's input watermark.")

typedef enum eddy__prom_task_series {
#define EDDY__PROM_ENUM_(id, name, type, help) EDDY__PROM_##id,
    EDDY__PROM_TASK_SERIES(EDDY__PROM_ENUM_)
#undef EDDY__PROM_ENUM_
        EDDY__PROM_TASK_SERIES_COUNT
} eddy__prom_task_series_t;

/* Appends printf-formatted text. */
void eddy__prom_printf(eddy__bytes_t *b, const char *fmt, ...)
    EDDY_PRINTF_LIKE(2, 3);
/* "# HELP name help\n# TYPE name type\n". */
void eddy__prom_header(eddy__bytes_t *b, const char *name, const char *type,
                       const char *help);
/* The header of a per-task series. */
void eddy__prom_task_header(eddy__bytes_t *b, eddy__prom_task_series_t s);
/* "name{job_id=...,job_name=...,task=...,subtask=...,tm_id=...[,extra]} "
 * with the values escaped; `name` NULL: the series' name; `extra` (an
 * already escaped label pair such as le="0.5") may be NULL. */
void eddy__prom_task_labels(eddy__bytes_t *b, const char *name,
                            const char *job_id, const char *job_name,
                            const char *task, int subtask, const char *tm_id,
                            const char *extra);
/* The name of a per-task series. */
const char *eddy__prom_task_name(eddy__prom_task_series_t s);

#endif /* EDDY_COMMON_PROM_H */
