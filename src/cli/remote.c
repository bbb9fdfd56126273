/*
 * eddy — the CLI's REST clients: `eddy run` on a cluster, `eddy list`,
 * `status`, `cancel`, `savepoint` and `stop` (DESIGN.md §8).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Each command is a few REST calls (src/rest/client.h) to the
 * JobManager named by --jobmanager URL, else $EDDY_JOBMANAGER, else
 * http://127.0.0.1:8081. Results go to stdout: a table or "key: value"
 * lines for people, or with --json the JobManager's JSON, one document per
 * line, for scripts. Errors are one line on stderr: the REST client's line
 * when the JobManager cannot be reached, the server's {"error"} text
 * otherwise, so that the CLI never invents a second wording for what the
 * server already said. Exit status: 0 success, 1 failure, 2 bad usage, 130
 * for a cluster run that ended CANCELED or that the user stopped following.
 *
 * Anything that takes time on the cluster (a job, a savepoint, a cancel) is
 * followed by polling every POLL_MS: the REST API has no push channel, and
 * five requests a second to a local JobManager cost nothing. Job ids are
 * checked (32 hex digits) before they go into a URL, so that "../overview"
 * cannot turn `eddy status` into a request for some other resource.
 *
 * Following a job (`eddy run` without --detached) does not own it: Ctrl-C
 * stops following and prints how to cancel, as Flink's client does, because
 * a detached terminal must never take a long-running job down with it.
 *
 * THREADS. The CLI's main thread only. SIGINT and SIGTERM, while `eddy run`
 * follows a job, set a flag that the polling loop looks at.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "rest/client.h"
#include "runtime/config.h"

#define DEFAULT_JOBMANAGER "http://127.0.0.1:8081"
#define POLL_MS 200
/* Uploading a large .so and inspecting it in a child takes a while. */
#define SUBMIT_TIMEOUT_MS 300000
/* How long cancel and stop wait for the job to reach its final state; the
 * JobManager itself gives tasks 10 s to stop. */
#define END_WAIT_MS 60000
/* How long `eddy run` keeps following through an unreachable JobManager
 * (one restarted on the same data dir resumes its jobs). */
#define UNREACHABLE_MS 10000
/* Default of --timeout for savepoints: checkpoint.timeout's default. */
#define SAVEPOINT_TIMEOUT_MS (10 * 60 * 1000)

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_CANCELED 130

/* ---- usage ---- */

#define COMMON_OPTIONS                                                         \
    "  --jobmanager URL   the JobManager's REST address (default\n"            \
    "                     $EDDY_JOBMANAGER, else http://127.0.0.1:8081)\n"     \
    "  --json             print the JobManager's JSON (one document per\n"     \
    "                     line) instead of text\n"                             \
    "  -h, --help         show this help\n"

const char *const eddy__cli_list_usage =
    "usage: eddy list [--jobmanager URL] [--json]\n"
    "\n"
    "Lists the cluster's jobs, newest first: id, name, state, start time\n"
    "(local time) and duration.\n"
    "\n"
    "Options:\n" COMMON_OPTIONS;

const char *const eddy__cli_status_usage =
    "usage: eddy status JOB_ID [--jobmanager URL] [--json]\n"
    "\n"
    "Shows a job: its state, times, parallelism, restarts, checkpointing,\n"
    "its last failure, and the state of every subtask of every vertex\n"
    "with the TaskManager it runs on. --json prints GET /jobs/JOB_ID with\n"
    "the fields of GET /jobs/JOB_ID/status added.\n"
    "\n"
    "Options:\n" COMMON_OPTIONS "\n"
    "Exit status: 0, or 1 for an unknown job or an unreachable JobManager.\n";

const char *const eddy__cli_cancel_usage =
    "usage: eddy cancel JOB_ID [--jobmanager URL] [--json]\n"
    "\n"
    "Cancels a job without a savepoint, waits (up to 60 s) until it has\n"
    "stopped, and prints its final state (CANCELED, or FINISHED or FAILED\n"
    "if it ended first). To keep its state, use 'eddy stop' instead.\n"
    "\n"
    "Options:\n" COMMON_OPTIONS "\n"
    "Exit status: 0 once the job has ended; 1 if it had already ended, is\n"
    "unknown, or did not stop in time.\n";

const char *const eddy__cli_savepoint_usage =
    "usage: eddy savepoint JOB_ID [--dir DIR] [--timeout DURATION]\n"
    "                      [--jobmanager URL] [--json]\n"
    "\n"
    "Takes a savepoint of a running job (one submitted with a checkpoint\n"
    "interval), waits until it is complete and prints its path; the job\n"
    "keeps running. Restore it with 'eddy run JOB.so --from-savepoint\n"
    "PATH'. Savepoints are never deleted automatically.\n"
    "\n"
    "Options:\n"
    "  --dir DIR          where the savepoint goes: DIR/savepoint-<id>-<n>\n"
    "                     on the JobManager's file system (a relative DIR\n"
    "                     is taken from the current directory; default:\n"
    "                     the JobManager's data dir/savepoints)\n"
    "  --timeout DURATION how long to wait for it (default "
    "10m)\n" COMMON_OPTIONS "\n"
    "Exit status: 0 completed, 1 failed (the job keeps running).\n";

const char *const eddy__cli_stop_usage =
    "usage: eddy stop JOB_ID [--savepoint-dir DIR] [--drain]\n"
    "                 [--timeout DURATION] [--jobmanager URL] [--json]\n"
    "\n"
    "Stops a running job with a savepoint: takes the savepoint, then ends\n"
    "the job (state FINISHED), prints the savepoint's path and the job's\n"
    "final state. Resume it with 'eddy run JOB.so --from-savepoint PATH'.\n"
    "\n"
    "Options:\n"
    "  --savepoint-dir DIR  where the savepoint goes (as 'eddy savepoint\n"
    "                     --dir')\n"
    "  --drain            let the sources send end-of-input first, so that\n"
    "                     windows and timers fire before the job ends\n"
    "  --timeout DURATION how long to wait for the savepoint (default "
    "10m)\n" COMMON_OPTIONS "\n"
    "Exit status: 0 stopped, 1 the savepoint failed (the job keeps running)\n"
    "or the job did not end.\n";

/* ---- messages ---- */

typedef struct remote {
    const char *rm_cmd; /* "status": messages start with "eddy status: " */
    const char *rm_url; /* the JobManager's base URL */
    bool rm_json;       /* --json */
    bool rm_url_given;  /* --jobmanager was given (hints repeat it) */
} remote_t;

static int fail(const remote_t *rm, const char *fmt, ...)
    EDDY_PRINTF_LIKE(2, 3);
static int usage_error(const char *cmd, const char *fmt, ...)
    EDDY_PRINTF_LIKE(2, 3);

/* One line on stderr; returns EXIT_FAILED. The message is formatted first
 * so that the line reaches stderr in one write. */
static int fail(const remote_t *rm, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "eddy %s: %s\n", rm->rm_cmd, msg);
    return EXIT_FAILED;
}

static int usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "eddy %s: %s (see 'eddy %s --help')\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

static const char *jm_url(const char *flag)
{
    if (flag != NULL) {
        return flag;
    }
    const char *env = getenv("EDDY_JOBMANAGER");
    return env != NULL && env[0] != '\0' ? env : DEFAULT_JOBMANAGER;
}

/* ---- command lines ---- */

/* One flag: a valued one stores into od_value, a switch into od_set. */
typedef struct opt_def {
    const char *od_name;
    const char **od_value;
    bool *od_set;
} opt_def_t;

/*
 * Parses `--flag VALUE`, `--flag=VALUE`, switches and at most one
 * positional argument (the job id, when `id` is not NULL).
 * @returns -1 to go on, or the exit status (0 after --help, 2 on error).
 */
static int parse_args(const char *cmd, const char *usage, int argc, char **argv,
                      const opt_def_t *defs, size_t ndefs, const char **id)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (id == NULL || *id != NULL) {
                return usage_error(cmd, "unexpected argument '%s'", a);
            }
            *id = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t n = eq != NULL ? (size_t)(eq - a) : strlen(a);
        const opt_def_t *d = NULL;
        for (size_t k = 0; k < ndefs && d == NULL; k++) {
            if (strlen(defs[k].od_name) == n &&
                strncmp(a, defs[k].od_name, n) == 0) {
                d = &defs[k];
            }
        }
        if (d == NULL) {
            return usage_error(cmd, "unknown option '%.*s'", (int)n, a);
        }
        if (d->od_set != NULL) {
            if (eq != NULL) {
                return usage_error(cmd, "%s takes no value", d->od_name);
            }
            *d->od_set = true;
            continue;
        }
        const char *v = eq != NULL ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (v == NULL || v[0] == '\0') {
            return usage_error(cmd, "%s needs a value", d->od_name);
        }
        *d->od_value = v;
    }
    if (id != NULL && *id == NULL) {
        return usage_error(cmd, "missing the job id (JOB_ID)");
    }
    return -1;
}

/* A job id from the command line, in lower case; false (with the error
 * printed) unless it is 32 hex digits. */
static bool job_id_arg(const remote_t *rm, const char *arg, char id[33])
{
    size_t n = strlen(arg);
    bool ok = n == 32;
    for (size_t i = 0; ok && i < n; i++) {
        char c = arg[i];
        if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        }
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        id[i] = c;
    }
    if (!ok) {
        fail(rm, "no job with id '%.64s' (a job id is 32 hex digits)", arg);
        return false;
    }
    id[32] = '\0';
    return true;
}

/* A relative path from the command line made absolute, for a server that
 * takes absolute paths only; the directory need not exist yet. */
static const char *absolute(const char *path, char *buf, size_t size)
{
    if (path[0] == '/') {
        return path;
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        return path; /* the server's error will name it */
    }
    return eddy__fmt(buf, size, "%s/%s", cwd, path);
}

static int parse_timeout(const char *cmd, const char *v, int64_t *ms)
{
    if (v != NULL &&
        (eddy__parse_duration_ms(v, ms) != 0 || *ms <= 0 || *ms > INT_MAX)) {
        return usage_error(cmd,
                           "--timeout must be a positive duration (500, 30s, "
                           "5m), got '%s'",
                           v);
    }
    return 0;
}

/* ---- REST ---- */

/*
 * One request. Returns 0 when an answer arrived whose body is a JSON
 * object, or that is not a success (eddy__rest_error_text explains it);
 * otherwise fills `err` (no answer, or a success that is not JSON).
 */
static int request(const remote_t *rm, const char *method, const char *path,
                   json_t *body, eddy__rest_result_t *res, eddy_error_t *err)
{
    int rc = eddy__rest_call(rm->rm_url, method, path, body, 0, res, err);
    if (rc != 0) {
        return rc;
    }
    if (res->rr_status >= 200 && res->rr_status < 300 &&
        !json_is_object(res->rr_json)) {
        int status = res->rr_status;
        eddy__rest_result_close(res);
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "unexpected answer from %s%s (HTTP %d, not a "
                              "JSON object); is that a JobManager?",
                              rm->rm_url, path, status);
    }
    return 0;
}

/* Prints the error of a non-2xx answer and closes it; returns 1. A 404
 * about job `id` is worded alike by every command, whichever of the
 * JobManager's handlers answered. */
static int answer_error(const remote_t *rm, const char *id,
                        eddy__rest_result_t *res)
{
    if (res->rr_status == 404 && id != NULL) {
        fail(rm, "no job with id '%s'", id);
    } else {
        fail(rm, "%s", eddy__rest_error_text(res));
    }
    eddy__rest_result_close(res);
    return EXIT_FAILED;
}

/* A request about job `id` (NULL: none) that must succeed: 0 with a JSON
 * object in *res, or 1 with the one error line printed and *res closed. */
static int call(const remote_t *rm, const char *id, const char *method,
                const char *path, json_t *body, eddy__rest_result_t *res)
{
    eddy_error_t err = {0};
    if (request(rm, method, path, body, res, &err) != 0) {
        return fail(rm, "%s", err.msg);
    }
    if (res->rr_status < 200 || res->rr_status >= 300) {
        return answer_error(rm, id, res);
    }
    return 0;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static json_int_t jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    if (s != NULL) {
        puts(s);
        free(s);
    }
    fflush(stdout);
}

static bool terminal_state(const char *state)
{
    return strcmp(state, "FINISHED") == 0 || strcmp(state, "FAILED") == 0 ||
           strcmp(state, "CANCELED") == 0;
}

/* ---- formatting ---- */

/* Milliseconds since the epoch as local time, "-" for none. */
static const char *fmt_time(char *buf, size_t size, json_int_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || localtime_r(&t, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        return eddy__fmt(buf, size, "-");
    }
    return buf;
}

/* 5ms, 1.2s, 3m04s, 2h03m, 3d04h. */
static const char *fmt_duration(char *buf, size_t size, json_int_t ms)
{
    long long v = ms < 0 ? 0 : (long long)ms;
    long long s = v / 1000;
    if (v < 1000) {
        return eddy__fmt(buf, size, "%lldms", v);
    }
    if (s < 60) {
        return eddy__fmt(buf, size, "%.1fs", (double)v / 1000.0);
    }
    if (s < 3600) {
        return eddy__fmt(buf, size, "%lldm%02llds", s / 60, s % 60);
    }
    if (s < 86400) {
        return eddy__fmt(buf, size, "%lldh%02lldm", s / 3600, s / 60 % 60);
    }
    return eddy__fmt(buf, size, "%lldd%02lldh", s / 86400, s / 3600 % 24);
}

/* ---- waiting ---- */

static volatile sig_atomic_t g_interrupted;

/* The first signal asks the polling loop to stop following; a second one
 * ends the process at once, should a request be stuck on a JobManager that
 * does not answer. */
static void on_interrupt(int sig)
{
    EDDY_UNUSED(sig);
    if (g_interrupted) {
        _exit(EXIT_CANCELED);
    }
    g_interrupted = 1;
}

/* Sleeps `ms`, or less when a signal arrives. */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    return (int64_t)(eddy__now_ns() / 1000000u);
}

/*
 * Polls the job until it reaches a final state, for at most `wait_ms`.
 * @returns 0 with its last status in *out (caller decrefs), or 1 with the
 * error printed.
 */
static int wait_end(const remote_t *rm, const char *id, int64_t wait_ms,
                    json_t **out)
{
    char path[64];
    eddy__fmt(path, sizeof(path), "/jobs/%s/status", id);
    int64_t deadline = now_ms() + wait_ms;
    for (;;) {
        eddy__rest_result_t res;
        if (call(rm, id, "GET", path, NULL, &res) != 0) {
            return EXIT_FAILED;
        }
        const char *state = jstr(res.rr_json, "state");
        if (terminal_state(state)) {
            *out = json_incref(res.rr_json);
            eddy__rest_result_close(&res);
            return 0;
        }
        if (now_ms() >= deadline) {
            fail(rm, "job %s is still %s after %lld s; see 'eddy status %s'",
                 id, state, (long long)(wait_ms / 1000), id);
            eddy__rest_result_close(&res);
            return EXIT_FAILED;
        }
        eddy__rest_result_close(&res);
        sleep_ms(POLL_MS);
    }
}

/*
 * Polls a savepoint request until it is COMPLETED or FAILED, for at most
 * `wait_ms`. @returns 0 with the request's JSON in *out (COMPLETED), or 1
 * with the error printed.
 */
static int wait_savepoint(const remote_t *rm, const char *id, const char *rid,
                          int64_t wait_ms, bool stopping, json_t **out)
{
    char path[128];
    eddy__fmt(path, sizeof(path), "/jobs/%s/savepoints/%s", id, rid);
    int64_t deadline = now_ms() + wait_ms;
    const char *keeps = stopping ? "; the job keeps running" : "";
    for (;;) {
        eddy__rest_result_t res;
        if (call(rm, NULL, "GET", path, NULL, &res) != 0) {
            return EXIT_FAILED;
        }
        const char *status = jstr(res.rr_json, "status");
        if (strcmp(status, "COMPLETED") == 0) {
            *out = json_incref(res.rr_json);
            eddy__rest_result_close(&res);
            return 0;
        }
        if (strcmp(status, "FAILED") == 0) {
            const char *why = jstr(res.rr_json, "error");
            fail(rm, "the savepoint failed: %s%s",
                 why[0] ? why : "no reason given", keeps);
            eddy__rest_result_close(&res);
            return EXIT_FAILED;
        }
        eddy__rest_result_close(&res);
        if (now_ms() >= deadline) {
            return fail(rm,
                        "the savepoint is not complete after %lld s; see "
                        "'eddy status %s'",
                        (long long)(wait_ms / 1000), id);
        }
        sleep_ms(POLL_MS);
    }
}

/* ---- eddy list ---- */

typedef struct row {
    const json_t *rw_job;
    size_t rw_index; /* the server's order, to keep ties stable */
} row_t;

static int newest_first(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    json_int_t tx = jint(x->rw_job, "start_time");
    json_int_t ty = jint(y->rw_job, "start_time");
    if (tx != ty) {
        return tx > ty ? -1 : 1;
    }
    return x->rw_index < y->rw_index ? -1 : x->rw_index > y->rw_index;
}

#define NAME_WIDTH_MAX 40

static void print_table(const json_t *jobs)
{
    size_t n = json_array_size(jobs);
    row_t *rows = eddy__calloc(n + 1, sizeof(*rows));
    int wname = 4, wstate = 5;
    for (size_t i = 0; i < n; i++) {
        rows[i].rw_job = json_array_get(jobs, i);
        rows[i].rw_index = i;
        wname = EDDY_MAX(wname, (int)strlen(jstr(rows[i].rw_job, "name")));
        wstate = EDDY_MAX(wstate, (int)strlen(jstr(rows[i].rw_job, "state")));
    }
    wname = EDDY_MIN(wname, NAME_WIDTH_MAX);
    qsort(rows, n, sizeof(*rows), newest_first);
    printf("%-32s  %-*s  %-*s  %-19s  %s\n", "ID", wname, "NAME", wstate,
           "STATE", "START", "DURATION");
    for (size_t i = 0; i < n; i++) {
        const json_t *j = rows[i].rw_job;
        char start[32], dur[32];
        printf("%-32s  %-*.*s  %-*s  %-19s  %s\n", jstr(j, "job_id"), wname,
               wname, jstr(j, "name"), wstate, jstr(j, "state"),
               fmt_time(start, sizeof(start), jint(j, "start_time")),
               fmt_duration(dur, sizeof(dur), jint(j, "duration_ms")));
    }
    free(rows);
}

int eddy__cli_list(int argc, char **argv)
{
    const char *url = NULL;
    bool json = false;
    const opt_def_t defs[] = {{"--jobmanager", &url, NULL},
                              {"--json", NULL, &json}};
    int st = parse_args("list", eddy__cli_list_usage, argc, argv, defs,
                        EDDY_ARRAY_SIZE(defs), NULL);
    if (st >= 0) {
        return st;
    }
    remote_t rm = {"list", jm_url(url), json, url != NULL};
    eddy__rest_result_t res;
    if (call(&rm, NULL, "GET", "/jobs", NULL, &res) != 0) {
        return EXIT_FAILED;
    }
    const json_t *jobs = json_object_get(res.rr_json, "jobs");
    if (!json_is_array(jobs)) {
        eddy__rest_result_close(&res);
        return fail(&rm, "unexpected answer from %s/jobs: no \"jobs\" list",
                    rm.rm_url);
    }
    if (json) {
        print_json(res.rr_json);
    } else {
        print_table(jobs);
    }
    eddy__rest_result_close(&res);
    return 0;
}

/* ---- eddy status ---- */

#define KV "%-14s"

static void print_status(const json_t *st, const json_t *job)
{
    char b1[32], b2[32];
    json_int_t end = jint(st, "end_time");
    printf(KV "%s\n", "id:", jstr(st, "job_id"));
    printf(KV "%s\n", "name:", jstr(st, "name"));
    printf(KV "%s\n", "state:", jstr(st, "state"));
    printf(KV "%s\n",
           "start:", fmt_time(b1, sizeof(b1), jint(st, "start_time")));
    printf(KV "%s\n", "end:", fmt_time(b1, sizeof(b1), end));
    printf(KV "%s%s\n",
           "duration:", fmt_duration(b2, sizeof(b2), jint(st, "duration_ms")),
           end == 0 ? " (running)" : "");
    printf(KV "%lld\n", "parallelism:", (long long)jint(st, "parallelism"));
    printf(KV "%lld\n", "tasks:", (long long)jint(st, "tasks"));
    printf(KV "%lld\n", "attempt:", (long long)jint(st, "attempt"));
    printf(KV "%lld\n", "restarts:", (long long)jint(st, "restarts"));
    json_int_t ck = jint(st, "checkpoint_interval_ms");
    if (ck > 0) {
        printf(KV "every %s\n",
               "checkpoints:", fmt_duration(b2, sizeof(b2), ck));
    } else {
        printf(KV "off\n", "checkpoints:");
    }
    const char *failure = jstr(st, "failure");
    if (failure[0] != '\0') {
        printf(KV "%s\n", "failure:", failure);
    }
    const json_t *vs = json_object_get(job, "vertices");
    printf("vertices:\n");
    size_t vi, ti;
    const json_t *v, *t;
    json_array_foreach(vs, vi, v)
    {
        printf("  %lld  %s (parallelism %lld)\n", (long long)jint(v, "index"),
               jstr(v, "name"), (long long)jint(v, "parallelism"));
        json_array_foreach(json_object_get(v, "tasks"), ti, t)
        {
            const char *tm = jstr(t, "taskmanager");
            printf("      subtask %lld: %s%s%s\n",
                   (long long)jint(t, "subtask"), jstr(t, "state"),
                   tm[0] ? " on " : "", tm);
        }
    }
    fflush(stdout);
}

int eddy__cli_status(int argc, char **argv)
{
    const char *url = NULL, *arg = NULL;
    bool json = false;
    const opt_def_t defs[] = {{"--jobmanager", &url, NULL},
                              {"--json", NULL, &json}};
    int rc = parse_args("status", eddy__cli_status_usage, argc, argv, defs,
                        EDDY_ARRAY_SIZE(defs), &arg);
    if (rc >= 0) {
        return rc;
    }
    remote_t rm = {"status", jm_url(url), json, url != NULL};
    char id[33], path[64];
    if (!job_id_arg(&rm, arg, id)) {
        return EXIT_FAILED;
    }
    eddy__rest_result_t st, job;
    eddy__fmt(path, sizeof(path), "/jobs/%s/status", id);
    if (call(&rm, id, "GET", path, NULL, &st) != 0) {
        return EXIT_FAILED;
    }
    eddy__fmt(path, sizeof(path), "/jobs/%s", id);
    if (call(&rm, id, "GET", path, NULL, &job) != 0) {
        eddy__rest_result_close(&st);
        return EXIT_FAILED;
    }
    if (json) {
        /* The details, with what only the status has (attempt, failure,
         * checkpoint interval); the status is the newer of the two. */
        json_object_update(job.rr_json, st.rr_json);
        print_json(job.rr_json);
    } else {
        print_status(st.rr_json, job.rr_json);
    }
    eddy__rest_result_close(&job);
    eddy__rest_result_close(&st);
    return 0;
}

/* ---- eddy cancel ---- */

int eddy__cli_cancel(int argc, char **argv)
{
    const char *url = NULL, *arg = NULL;
    bool json = false;
    const opt_def_t defs[] = {{"--jobmanager", &url, NULL},
                              {"--json", NULL, &json}};
    int rc = parse_args("cancel", eddy__cli_cancel_usage, argc, argv, defs,
                        EDDY_ARRAY_SIZE(defs), &arg);
    if (rc >= 0) {
        return rc;
    }
    remote_t rm = {"cancel", jm_url(url), json, url != NULL};
    char id[33], path[64];
    if (!job_id_arg(&rm, arg, id)) {
        return EXIT_FAILED;
    }
    eddy__fmt(path, sizeof(path), "/jobs/%s/cancel", id);
    eddy__rest_result_t res;
    eddy_error_t err = {0};
    if (request(&rm, "POST", path, NULL, &res, &err) != 0) {
        return fail(&rm, "%s", err.msg);
    }
    if (res.rr_status == 409 &&
        json_is_string(json_object_get(res.rr_json, "state"))) {
        fail(&rm, "job %s has already ended (%s)", id,
             jstr(res.rr_json, "state"));
        eddy__rest_result_close(&res);
        return EXIT_FAILED;
    }
    if (res.rr_status < 200 || res.rr_status >= 300) {
        return answer_error(&rm, id, &res);
    }
    eddy__rest_result_close(&res);
    json_t *final = NULL;
    if (wait_end(&rm, id, END_WAIT_MS, &final) != 0) {
        return EXIT_FAILED;
    }
    if (json) {
        print_json(final);
    } else {
        printf("job %s (%s): %s\n", id, jstr(final, "name"),
               jstr(final, "state"));
    }
    json_decref(final);
    return 0;
}

/* ---- eddy savepoint, eddy stop ---- */

/* POSTs `body` to /jobs/{id}/{what} and waits for the savepoint it starts.
 * @returns 0 with the completed request in *out, or 1 (printed). */
static int savepoint(const remote_t *rm, const char *id, const char *what,
                     json_t *body, int64_t wait_ms, json_t **out)
{
    char path[64];
    eddy__fmt(path, sizeof(path), "/jobs/%s/%s", id, what);
    eddy__rest_result_t res;
    if (call(rm, id, "POST", path, body, &res) != 0) {
        return EXIT_FAILED;
    }
    /* The request id goes into a URL: take it only if it is a token. */
    char rid[33];
    const char *r = jstr(res.rr_json, "request_id");
    size_t n = strspn(r, "0123456789abcdef");
    if (n == 0 || n >= sizeof(rid) || r[n] != '\0') {
        eddy__rest_result_close(&res);
        return fail(rm, "unexpected answer from %s%s: no request id",
                    rm->rm_url, path);
    }
    memcpy(rid, r, n + 1);
    eddy__rest_result_close(&res);
    return wait_savepoint(rm, id, rid, wait_ms, strcmp(what, "stop") == 0, out);
}

int eddy__cli_savepoint(int argc, char **argv)
{
    const char *url = NULL, *arg = NULL, *dir = NULL, *timeout = NULL;
    bool json = false;
    const opt_def_t defs[] = {{"--jobmanager", &url, NULL},
                              {"--json", NULL, &json},
                              {"--dir", &dir, NULL},
                              {"--timeout", &timeout, NULL}};
    int rc = parse_args("savepoint", eddy__cli_savepoint_usage, argc, argv,
                        defs, EDDY_ARRAY_SIZE(defs), &arg);
    if (rc >= 0) {
        return rc;
    }
    int64_t wait_ms = SAVEPOINT_TIMEOUT_MS;
    if (parse_timeout("savepoint", timeout, &wait_ms) != 0) {
        return EXIT_USAGE;
    }
    remote_t rm = {"savepoint", jm_url(url), json, url != NULL};
    char id[33], buf[PATH_MAX + 64];
    if (!job_id_arg(&rm, arg, id)) {
        return EXIT_FAILED;
    }
    json_t *body = json_object();
    if (dir != NULL) {
        json_object_set_new(body, "dir",
                            json_string(absolute(dir, buf, sizeof(buf))));
    }
    json_t *sp = NULL;
    rc = savepoint(&rm, id, "savepoint", body, wait_ms, &sp);
    json_decref(body);
    if (rc != 0) {
        return rc;
    }
    if (json) {
        print_json(sp);
    } else {
        printf("savepoint completed: %s\n", jstr(sp, "path"));
    }
    json_decref(sp);
    return 0;
}

int eddy__cli_stop(int argc, char **argv)
{
    const char *url = NULL, *arg = NULL, *dir = NULL, *timeout = NULL;
    bool json = false, drain = false;
    const opt_def_t defs[] = {{"--jobmanager", &url, NULL},
                              {"--json", NULL, &json},
                              {"--savepoint-dir", &dir, NULL},
                              {"--drain", NULL, &drain},
                              {"--timeout", &timeout, NULL}};
    int rc = parse_args("stop", eddy__cli_stop_usage, argc, argv, defs,
                        EDDY_ARRAY_SIZE(defs), &arg);
    if (rc >= 0) {
        return rc;
    }
    int64_t wait_ms = SAVEPOINT_TIMEOUT_MS;
    if (parse_timeout("stop", timeout, &wait_ms) != 0) {
        return EXIT_USAGE;
    }
    remote_t rm = {"stop", jm_url(url), json, url != NULL};
    char id[33], buf[PATH_MAX + 64];
    if (!job_id_arg(&rm, arg, id)) {
        return EXIT_FAILED;
    }
    json_t *body = json_pack("{s:b}", "drain", drain);
    if (dir != NULL) {
        json_object_set_new(body, "savepoint_dir",
                            json_string(absolute(dir, buf, sizeof(buf))));
    }
    json_t *sp = NULL, *final = NULL;
    rc = savepoint(&rm, id, "stop", body, wait_ms, &sp);
    json_decref(body);
    if (rc != 0) {
        return rc;
    }
    if (!json) {
        printf("savepoint completed: %s\n", jstr(sp, "path"));
        fflush(stdout);
    }
    if (wait_end(&rm, id, END_WAIT_MS, &final) != 0) {
        json_decref(sp);
        return EXIT_FAILED;
    }
    if (json) {
        json_t *o = json_pack("{s:O, s:O}", "savepoint", sp, "job", final);
        print_json(o);
        json_decref(o);
    } else {
        printf("job %s (%s): %s\n", id, jstr(final, "name"),
               jstr(final, "state"));
    }
    json_decref(final);
    json_decref(sp);
    return 0;
}

/* ---- eddy run (cluster) ---- */

/* The line for a state change: "RUNNING", "RUNNING (attempt 2)",
 * "RESTARTING: <why>", "FINISHED after 1.2s". */
static void print_state(const json_t *st)
{
    const char *state = jstr(st, "state");
    const char *failure = jstr(st, "failure");
    json_int_t attempt = jint(st, "attempt");
    char dur[32];
    if (strcmp(state, "RUNNING") == 0 && attempt > 1) {
        printf("RUNNING (attempt %lld)\n", (long long)attempt);
    } else if (strcmp(state, "FAILING") == 0 ||
               strcmp(state, "RESTARTING") == 0 ||
               strcmp(state, "FAILED") == 0) {
        printf("%s%s%s\n", state, failure[0] ? ": " : "", failure);
    } else if (terminal_state(state)) {
        printf("%s after %s\n", state,
               fmt_duration(dur, sizeof(dur), jint(st, "duration_ms")));
    } else {
        printf("%s\n", state);
    }
    fflush(stdout);
}

/* Follows the job until it ends or the user interrupts; the exit status. */
static int follow(const remote_t *rm, const char *id, bool quiet)
{
    char path[64];
    eddy__fmt(path, sizeof(path), "/jobs/%s/status", id);
    char last_state[32] = "";
    json_int_t last_attempt = 0;
    int64_t unreachable_since = 0;
    json_t *st = NULL;
    int status = -1;
    while (status < 0) {
        if (g_interrupted) {
            fail(rm,
                 "stopped following job %s, which keeps running (%s); cancel "
                 "it with 'eddy cancel %s%s%s'",
                 id, last_state[0] ? last_state : "submitted", id,
                 rm->rm_url_given ? " --jobmanager " : "",
                 rm->rm_url_given ? rm->rm_url : "");
            status = EXIT_CANCELED;
            break;
        }
        eddy__rest_result_t res;
        eddy_error_t err = {0};
        if (request(rm, "GET", path, NULL, &res, &err) != 0) {
            if (unreachable_since == 0) {
                unreachable_since = now_ms();
            }
            if (now_ms() - unreachable_since >= UNREACHABLE_MS) {
                status =
                    fail(rm, "%s (job %s may still be running)", err.msg, id);
                break;
            }
            sleep_ms(POLL_MS);
            continue;
        }
        unreachable_since = 0;
        if (res.rr_status != 200) {
            status = answer_error(rm, id, &res);
            break;
        }
        json_decref(st);
        st = json_incref(res.rr_json);
        eddy__rest_result_close(&res);
        const char *state = jstr(st, "state");
        json_int_t attempt = jint(st, "attempt");
        if (last_state[0] == '\0' && !quiet && !rm->rm_json) {
            printf("submitted job %s (%s)\n", id, jstr(st, "name"));
        }
        if (strcmp(state, last_state) != 0 || attempt != last_attempt) {
            if (rm->rm_json) {
                print_json(st);
            } else if (!quiet) {
                print_state(st);
            }
            eddy__fmt(last_state, sizeof(last_state), "%s", state);
            last_attempt = attempt;
        }
        if (strcmp(state, "FINISHED") == 0) {
            status = 0;
        } else if (strcmp(state, "FAILED") == 0) {
            const char *why = jstr(st, "failure");
            status = fail(rm, "job '%s' (%s) failed: %s", jstr(st, "name"), id,
                          why[0] ? why : "no reason given");
        } else if (strcmp(state, "CANCELED") == 0) {
            fail(rm, "job '%s' (%s) was canceled", jstr(st, "name"), id);
            status = EXIT_CANCELED;
        } else {
            sleep_ms(POLL_MS);
        }
    }
    json_decref(st);
    return status;
}

int eddy__cli_run_remote(const eddy__cli_run_opts_t *o)
{
    remote_t rm = {"run", jm_url(o->ro_jobmanager), o->ro_json != 0,
                   o->ro_jobmanager != NULL};
    /* The upload would fail too, but later and less clearly. */
    struct stat sb;
    if (stat(o->ro_job, &sb) != 0) {
        return fail(&rm, "cannot open job '%s': %s", o->ro_job,
                    strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) {
        return fail(&rm, "cannot open job '%s': it is a directory", o->ro_job);
    }
    if (!S_ISREG(sb.st_mode)) {
        return fail(&rm, "cannot open job '%s': not a regular file", o->ro_job);
    }
    const char *names[4], *values[4];
    int nfields = 0;
    char par[16], interval[32], spbuf[PATH_MAX + 64];
    if (o->ro_parallelism > 0) {
        names[nfields] = "parallelism";
        values[nfields++] =
            eddy__fmt(par, sizeof(par), "%d", o->ro_parallelism);
    }
    if (o->ro_checkpoint_interval != NULL) {
        int64_t ms;
        if (eddy__parse_duration_ms(o->ro_checkpoint_interval, &ms) != 0 ||
            ms < 0) {
            return usage_error("run",
                               "--checkpoint-interval must be a duration "
                               "(500, 10s, 1m), got '%s'",
                               o->ro_checkpoint_interval);
        }
        names[nfields] = "checkpoint_interval";
        values[nfields++] =
            eddy__fmt(interval, sizeof(interval), "%lld", (long long)ms);
    }
    if (o->ro_savepoint != NULL) {
        names[nfields] = "savepoint_path";
        values[nfields++] = absolute(o->ro_savepoint, spbuf, sizeof(spbuf));
    }
    json_t *args = json_array();
    for (int i = 0; i < o->ro_argc; i++) {
        json_array_append_new(args, json_string(o->ro_argv[i]));
    }
    char *args_text = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    if (args_text == NULL) {
        return fail(&rm, "the job arguments are not valid UTF-8");
    }
    names[nfields] = "args";
    values[nfields++] = args_text;

    eddy__rest_result_t res;
    eddy_error_t err = {0};
    int rc = eddy__rest_upload(rm.rm_url, "/jobs/submit", "job_file", o->ro_job,
                               names, values, nfields, SUBMIT_TIMEOUT_MS, &res,
                               &err);
    free(args_text);
    if (rc != 0) {
        return fail(&rm, "%s", err.msg);
    }
    if (res.rr_status < 200 || res.rr_status >= 300) {
        fail(&rm, "%s", eddy__rest_error_text(&res));
        eddy__rest_result_close(&res);
        return EXIT_FAILED;
    }
    char id[33];
    const char *jid = jstr(res.rr_json, "job_id");
    size_t n = strspn(jid, "0123456789abcdef");
    if (n != 32 || jid[n] != '\0') {
        eddy__rest_result_close(&res);
        return fail(&rm, "unexpected answer from %s/jobs/submit: no job id",
                    rm.rm_url);
    }
    memcpy(id, jid, sizeof(id));
    if (o->ro_detached) {
        if (rm.rm_json) {
            print_json(res.rr_json);
        } else {
            printf("%s\n", id);
        }
        eddy__rest_result_close(&res);
        return 0;
    }
    eddy__rest_result_close(&res);

    /* No SA_RESTART: a signal must cut the poll's sleep short. */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    g_interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int status = follow(&rm, id, o->ro_quiet != 0);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return status;
}
