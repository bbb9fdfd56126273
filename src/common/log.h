/*
 * eddy — process logs for the JobManager and TaskManagers.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. One line per event: time (UTC, ms), level, component
 * ("jobmanager", "taskmanager tm-1a2b"), the job and subtask the calling
 * thread works for (a thread-local context set by task threads), then the
 * message. Logs go to stderr or to log.file, never to stdout, where print
 * sinks write their records. A line is written with one write() call so
 * lines from concurrent threads never interleave.
 *
 * THREADS. eddy__log may be called from any thread after eddy__log_init.
 */
#ifndef EDDY_COMMON_LOG_H
#define EDDY_COMMON_LOG_H

#include "common/internal.h"

#define EDDY__LOG_ERROR 0
#define EDDY__LOG_WARN 1
#define EDDY__LOG_INFO 2
#define EDDY__LOG_DEBUG 3

/* Parses "error|warn|info|debug"; -1 if none of them. */
int eddy__log_level_parse(const char *s);
/* Sets the component name and where lines go (`path` NULL: stderr; the
 * file is opened for appending). Returns 0 or EDDY_ERR_IO. */
int eddy__log_init(const char *component, const char *path, int level,
                   eddy_error_t *err);
/* Renames the component ("taskmanager tm-1a2b" once the id is known). */
void eddy__log_component(const char *component);
/* The calling thread's context: job id (first 8 hex digits are shown) and
 * task (NULL: none). */
void eddy__log_context(const char *job_id, const char *task, int subtask,
                       int parallelism);
void eddy__log(int level, const char *fmt, ...) EDDY_PRINTF_LIKE(2, 3);

#define eddy__log_error(...) eddy__log(EDDY__LOG_ERROR, __VA_ARGS__)
#define eddy__log_warn(...) eddy__log(EDDY__LOG_WARN, __VA_ARGS__)
#define eddy__log_info(...) eddy__log(EDDY__LOG_INFO, __VA_ARGS__)
#define eddy__log_debug(...) eddy__log(EDDY__LOG_DEBUG, __VA_ARGS__)

#endif /* EDDY_COMMON_LOG_H */
