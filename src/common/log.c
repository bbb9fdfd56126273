/*
 * eddy — process logs (log.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static char g_component[64] = "eddy";
static int g_fd = 2;
static int g_level = EDDY__LOG_INFO;

static _Thread_local char t_ctx[160];

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int eddy__log_level_parse(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; s != NULL && i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int eddy__log_init(const char *component, const char *path, int level,
                   eddy_error_t *err)
{
    eddy__fmt(g_component, sizeof(g_component), "%s", component);
    g_level = level;
    if (path != NULL && *path != '\0') {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            return eddy_error_set(err, EDDY_ERR_IO,
                                  "cannot open log file %s: %s", path,
                                  strerror(errno));
        }
        g_fd = fd;
    }
    return 0;
}

void eddy__log_component(const char *component)
{
    eddy__fmt(g_component, sizeof(g_component), "%s", component);
}

void eddy__log_context(const char *job_id, const char *task, int subtask,
                       int parallelism)
{
    if (job_id == NULL) {
        t_ctx[0] = '\0';
    } else if (task == NULL) {
        eddy__fmt(t_ctx, sizeof(t_ctx), " [job %.8s]", job_id);
    } else {
        eddy__fmt(t_ctx, sizeof(t_ctx), " [job %.8s, %s %d/%d]", job_id, task,
                  subtask + 1, parallelism);
    }
}

void eddy__log(int level, const char *fmt, ...)
{
    if (level > g_level) {
        return;
    }
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s%s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     level_names[level < 0   ? 0
                                 : level > 3 ? 3
                                             : level],
                     g_component, t_ctx);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0
                              : (size_t)m >= sizeof(line) - (size_t)n - 1
                                  ? sizeof(line) - (size_t)n - 2
                                  : (size_t)m);
    line[len++] = '\n';
    ssize_t w = write(g_fd, line, len);
    EDDY_UNUSED(w);
}
