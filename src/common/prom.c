/*
 * eddy — Prometheus text exposition (prom.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "common/prom.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const series[][3] = {
#define EDDY__PROM_ROW_(id, name, type, help) {name, type, help},
    EDDY__PROM_TASK_SERIES(EDDY__PROM_ROW_)
#undef EDDY__PROM_ROW_
};

void eddy__prom_printf(eddy__bytes_t *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof(line)) {
        eddy__bytes_put(b, line, (size_t)n);
        return;
    }
    char *big = eddy__malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    eddy__bytes_put(b, big, (size_t)n);
    free(big);
}

void eddy__prom_header(eddy__bytes_t *b, const char *name, const char *type,
                       const char *help)
{
    eddy__prom_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                      type);
}

void eddy__prom_task_header(eddy__bytes_t *b, eddy__prom_task_series_t s)
{
    eddy__prom_header(b, series[s][0], series[s][1], series[s][2]);
}

const char *eddy__prom_task_name(eddy__prom_task_series_t s)
{
    return series[s][0];
}

/* A label value: backslash, double quote and newline escaped. */
static void put_value(eddy__bytes_t *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '\\' || *s == '"') {
            eddy__bytes_put_u8(b, '\\');
            eddy__bytes_put_u8(b, (uint8_t)*s);
        } else if (*s == '\n') {
            eddy__bytes_put(b, "\\n", 2);
        } else {
            eddy__bytes_put_u8(b, (uint8_t)*s);
        }
    }
}

void eddy__prom_task_labels(eddy__bytes_t *b, const char *name,
                            const char *job_id, const char *job_name,
                            const char *task, int subtask, const char *tm_id,
                            const char *extra)
{
    eddy__prom_printf(b, "%s{job_id=\"", name);
    put_value(b, job_id);
    eddy__bytes_put(b, "\",job_name=\"", 12);
    put_value(b, job_name);
    eddy__bytes_put(b, "\",task=\"", 8);
    put_value(b, task);
    eddy__prom_printf(b, "\",subtask=\"%d\",tm_id=\"", subtask);
    put_value(b, tm_id);
    eddy__bytes_put_u8(b, '"');
    if (extra != NULL) {
        eddy__bytes_put_u8(b, ',');
        eddy__bytes_put(b, extra, strlen(extra));
    }
    eddy__bytes_put(b, "} ", 2);
}
