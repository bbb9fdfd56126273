/*
 * eddy — integration: the CLI against a real cluster.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * `eddy cluster start` runs a JobManager and two TaskManagers (two slots
 * each) in the background on loopback, on ports picked free for this run
 * and a private data dir, so that parallel test runs and a developer's own
 * cluster on 8081/6123 never meet. The tests then drive the REST commands
 * through the real binary — run (detached and following), list, status,
 * cancel, savepoint, stop — and check stdout, the one-line errors and the
 * exit statuses exactly; `eddy cluster stop` comes last and must leave no
 * process and no pid file behind.
 *
 * Records that print sinks write go to the TaskManagers' logs, so nothing
 * here asserts record output. Teardown stops the cluster whatever
 * happened, and a process that survives that is killed with SIGKILL, as
 * is every daemon if the test binary itself is killed or aborts.
 *
 * THREADS. Single-threaded (cmocka).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"

#define CMD_TIMEOUT 30.0
#define JOB_TIMEOUT 30.0

#define ARGS(...) ((const char *const[]){EDDY_BIN, __VA_ARGS__, NULL})
#define PHRASES(...) ((const char *const[]){__VA_ARGS__, NULL})

static char *tmpdir;  /* everything of this run */
static char *datadir; /* the cluster's data dir */
static int rest_port, rpc_port;
static char url[64];
static char env_jm[96]; /* EDDY_JOBMANAGER=url */
static const char *env[2] = {env_jm, NULL};
static char *input; /* the word count's input file */
static char wc_id[33];

/* The daemons' pids, for the last-resort kill. */
#define MAX_PIDS 8
static volatile pid_t daemon_pids[MAX_PIDS];
static volatile int ndaemons;

/* ---- helpers ---- */

/* A port nobody listens on now: bound to port 0, then released. Both
 * sockets stay open until both ports are known, so they differ. */
static void free_ports(int *a, int *b)
{
    int fds[2];
    int *out[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
        socklen_t len = sizeof(sa);
        assert_int_equal(getsockname(fds[i], (struct sockaddr *)&sa, &len), 0);
        *out[i] = ntohs(sa.sin_port);
    }
    close(fds[0]);
    close(fds[1]);
}

/* True while `pid` runs (a zombie does not count: our init may not reap
 * the daemons' zombies). */
static bool pid_alive(pid_t pid)
{
    if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) {
        return false;
    }
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren == NULL || paren[2] != 'Z';
}

static void kill_daemons(void)
{
    for (int i = 0; i < ndaemons; i++) {
        if (daemon_pids[i] > 0) {
            kill(daemon_pids[i], SIGKILL);
        }
    }
}

static void on_fatal_signal(int sig)
{
    kill_daemons();
    signal(sig, SIG_DFL);
    raise(sig);
}

static char *path_in(const char *dir, const char *name)
{
    return integ_path(dir, name);
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The pid in DATA/run/NAME.pid, or 0. */
static pid_t read_pid(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/run/%s.pid", dir, name);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f != NULL) {
        if (fscanf(f, "%d", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }
    return (pid_t)pid;
}

static size_t pid_files(const char *dir)
{
    char path[4096];
    size_t n = 0;
    const char *names[] = {"jobmanager", "taskmanager-1", "taskmanager-2",
                           "taskmanager-3"};
    for (size_t i = 0; i < INTEG_ARRAY_SIZE(names); i++) {
        snprintf(path, sizeof(path), "%s/run/%s.pid", dir, names[i]);
        n += file_exists(path);
    }
    return n;
}

static integ_proc_t *run(const char *const argv[])
{
    return integ_run(argv, env, integ_timeout(CMD_TIMEOUT));
}

/* Exit status 0, nothing on stderr; returns stdout (malloc'ed). */
static char *expect_ok(const char *const argv[])
{
    integ_proc_t *p = run(argv);
    integ_assert_exit(p, 0);
    if (p->pr_err_len != 0) {
        print_error("expected nothing on stderr\n");
        integ_dump(p);
        fail();
    }
    char *out = strdup(p->pr_out);
    assert_non_null(out);
    integ_proc_free(p);
    return out;
}

static void expect_error(const char *const argv[], int code,
                         const char *const phrases[])
{
    integ_proc_t *p = run(argv);
    integ_assert_error(p, code, phrases);
    integ_proc_free(p);
}

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (v == NULL) {
        print_error("not JSON (%s): %s\n", je.text, text);
        fail();
    }
    return v;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

/* The job's state, from `eddy status ID --json`. */
static void job_state(const char *id, char *state, size_t size)
{
    char *out = expect_ok(ARGS("status", id, "--json"));
    json_t *st = parse_json(out);
    assert_string_equal(jstr(st, "job_id"), id);
    snprintf(state, size, "%s", jstr(st, "state"));
    json_decref(st);
    free(out);
}

/* Polls `eddy status` until the job is in `want`; fails the test at the
 * deadline. */
static void wait_state(const char *id, const char *want)
{
    double deadline = integ_now() + integ_timeout(JOB_TIMEOUT);
    char state[32] = "";
    for (;;) {
        job_state(id, state, sizeof(state));
        if (strcmp(state, want) == 0) {
            return;
        }
        if (integ_now() > deadline) {
            print_error("job %s is %s, not %s, after %.0f s\n", id, state, want,
                        integ_timeout(JOB_TIMEOUT));
            fail();
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* `eddy run --detached ARGS...`: the job id it prints. */
static void submit(const char *const argv[], char id[33])
{
    char *out = expect_ok(argv);
    size_t n = strlen(out);
    if (n != 33 || out[32] != '\n' || strspn(out, "0123456789abcdef") != 32) {
        print_error("expected a job id and a newline, got '%s'\n", out);
        fail();
    }
    memcpy(id, out, 32);
    id[32] = '\0';
    free(out);
}

/* The line of `text` that starts with `prefix` (its index), or -1. */
static int line_index(const char *text, const char *prefix)
{
    int i = 0;
    for (const char *p = text; *p != '\0'; i++) {
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            return i;
        }
        const char *nl = strchr(p, '\n');
        if (nl == NULL) {
            break;
        }
        p = nl + 1;
    }
    return -1;
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    (void)state;
    tmpdir = integ_tmpdir_new();
    datadir = path_in(tmpdir, "data");
    input = path_in(tmpdir, "input.txt");
    const char text[] = "to be or not to be\nthat is the question\n";
    integ_write_file(input, text, sizeof(text) - 1);
    atexit(kill_daemons);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGINT, on_fatal_signal);
    signal(SIGABRT, on_fatal_signal);
    signal(SIGSEGV, on_fatal_signal);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (pid_files(datadir) > 0) {
        const char *const argv[] = {EDDY_BIN, "cluster",   "stop", "--data-dir",
                                    datadir,  "--timeout", "5s",   NULL};
        integ_proc_free(integ_run(argv, NULL, integ_timeout(CMD_TIMEOUT)));
    }
    kill_daemons();
    ndaemons = 0;
    integ_tmpdir_remove(tmpdir);
    free(datadir);
    free(input);
    return 0;
}

/* ---- cluster start ---- */

static void cluster_start(void **state)
{
    (void)state;
    free_ports(&rest_port, &rpc_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", rest_port);
    snprintf(env_jm, sizeof(env_jm), "EDDY_JOBMANAGER=%s", url);
    char rest[16], rpc[16];
    snprintf(rest, sizeof(rest), "%d", rest_port);
    snprintf(rpc, sizeof(rpc), "%d", rpc_port);

    integ_proc_t *p = integ_run(ARGS("cluster", "start", "--taskmanagers", "2",
                                     "--slots", "2", "--data-dir", datadir,
                                     "--rest-port", rest, "--rpc-port", rpc),
                                NULL, integ_timeout(60));
    const char *names[] = {"jobmanager", "taskmanager-1", "taskmanager-2"};
    for (size_t i = 0; i < INTEG_ARRAY_SIZE(names); i++) {
        pid_t pid = read_pid(datadir, names[i]);
        if (pid > 0 && ndaemons < MAX_PIDS) {
            daemon_pids[ndaemons++] = pid;
        }
    }
    integ_assert_exit(p, 0);
    assert_int_equal(p->pr_err_len, 0);
    assert_true(integ_contains(p->pr_out, "started a JobManager (pid "));
    assert_true(integ_contains(p->pr_out, "and 2 TaskManagers (pids "));
    assert_true(integ_contains(p->pr_out, "with 2 slots each\n"));
    char want[128];
    snprintf(want, sizeof(want), "REST API: %s\n", url);
    assert_true(integ_contains(p->pr_out, want));
    snprintf(want, sizeof(want), "eddy run JOB.so --jobmanager %s", url);
    assert_true(integ_contains(p->pr_out, want));
    assert_true(integ_contains(p->pr_out, "eddy cluster stop --data-dir "));
    integ_proc_free(p);

    /* Three processes, each with its pid file and its log. */
    assert_int_equal(ndaemons, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(pid_alive(daemon_pids[i]));
        char log[4096];
        snprintf(log, sizeof(log), "%s/log/%s.log", datadir, names[i]);
        assert_true(file_exists(log));
    }

    /* A second start on the same data dir refuses, naming the JobManager. */
    char msg[128];
    snprintf(msg, sizeof(msg),
             "a cluster is already running (jobmanager pid %d)",
             (int)daemon_pids[0]);
    expect_error(ARGS("cluster", "start", "--data-dir", datadir), 1,
                 PHRASES("eddy cluster start: ", msg, "eddy cluster stop"));
    /* Another data dir on the same ports: the port is taken. */
    char *other = path_in(tmpdir, "other");
    snprintf(msg, sizeof(msg), "port %d (rest.port) is in use", rest_port);
    expect_error(ARGS("cluster", "start", "--data-dir", other, "--rest-port",
                      rest, "--rpc-port", "1"),
                 1, PHRASES("eddy cluster start: ", msg, "--rest-port"));
    free(other);
}

/* ---- list, run, status ---- */

static void list_empty(void **state)
{
    (void)state;
    char *out = expect_ok(ARGS("list"));
    assert_int_equal(integ_count_lines(out, strlen(out)), 1);
    assert_true(strncmp(out, "ID ", 3) == 0);
    assert_true(integ_contains(out, "  NAME  STATE  START "));
    assert_true(integ_contains(out, "  DURATION\n"));
    free(out);
    out = expect_ok(ARGS("list", "--json"));
    assert_string_equal(out, "{\"jobs\":[]}\n");
    free(out);
}

static void word_count_detached(void **state)
{
    (void)state;
    submit(ARGS("run", "--detached", WORD_COUNT_SO, "-p", "2", "--", input),
           wc_id);
    wait_state(wc_id, "FINISHED");

    /* status: key: value lines, then every subtask. */
    char *out = expect_ok(ARGS("status", wc_id));
    char want[128];
    snprintf(want, sizeof(want), "id:           %s\n", wc_id);
    assert_true(strncmp(out, want, strlen(want)) == 0);
    assert_true(integ_contains(out, "\nname:         word-count\n"));
    assert_true(integ_contains(out, "\nstate:        FINISHED\n"));
    assert_true(integ_contains(out, "\nparallelism:  2\n"));
    assert_true(integ_contains(out, "\ntasks:        4\n"));
    assert_true(integ_contains(out, "\nrestarts:     0\n"));
    assert_true(integ_contains(out, "\ncheckpoints:  off\n"));
    assert_true(integ_contains(out, "\nvertices:\n  0  "));
    assert_true(integ_contains(out, "(parallelism 2)\n      subtask 0: "
                                    "FINISHED on tm-"));
    assert_true(integ_contains(out, "\n  1  "));
    assert_true(integ_contains(out, "      subtask 1: FINISHED on tm-"));
    assert_false(integ_contains(out, "failure:"));
    free(out);

    /* status --json: the details with the status fields. */
    out = expect_ok(ARGS("status", wc_id, "--json"));
    assert_int_equal(integ_count_lines(out, strlen(out)), 1);
    json_t *st = parse_json(out);
    assert_string_equal(jstr(st, "name"), "word-count");
    assert_string_equal(jstr(st, "state"), "FINISHED");
    assert_int_equal(json_integer_value(json_object_get(st, "attempt")), 1);
    assert_true(json_is_null(json_object_get(st, "failure")));
    json_t *vs = json_object_get(st, "vertices");
    assert_int_equal(json_array_size(vs), 2);
    for (size_t v = 0; v < 2; v++) {
        json_t *tasks = json_object_get(json_array_get(vs, v), "tasks");
        assert_int_equal(json_array_size(tasks), 2);
        for (size_t t = 0; t < 2; t++) {
            assert_string_equal(jstr(json_array_get(tasks, t), "state"),
                                "FINISHED");
        }
    }
    json_decref(st);
    free(out);

    /* list: the header and the job. */
    out = expect_ok(ARGS("list"));
    assert_int_equal(integ_count_lines(out, strlen(out)), 2);
    const char *row = strchr(out, '\n') + 1;
    assert_true(strncmp(row, wc_id, 32) == 0);
    assert_true(integ_contains(row, "  word-count  FINISHED  "));
    free(out);

    out = expect_ok(ARGS("list", "--json"));
    json_t *l = parse_json(out);
    json_t *jobs = json_object_get(l, "jobs");
    assert_int_equal(json_array_size(jobs), 1);
    json_t *j = json_array_get(jobs, 0);
    assert_string_equal(jstr(j, "job_id"), wc_id);
    assert_string_equal(jstr(j, "name"), "word-count");
    assert_string_equal(jstr(j, "state"), "FINISHED");
    assert_int_equal(json_integer_value(json_object_get(j, "parallelism")), 2);
    json_int_t start = json_integer_value(json_object_get(j, "start_time"));
    json_int_t end = json_integer_value(json_object_get(j, "end_time"));
    assert_true(start > 1600000000000LL);
    assert_true(end >= start);
    assert_int_equal(json_integer_value(json_object_get(j, "duration_ms")),
                     end - start);
    json_decref(l);
    free(out);
}

/* Following a job: the submission, RUNNING, then FINISHED; exit 0. */
static void run_follow(void **state)
{
    (void)state;
    char *out = expect_ok(ARGS("run", TICKS_SO, "--", "300", "200"));
    assert_true(strncmp(out, "submitted job ", 14) == 0);
    assert_true(integ_contains(out, " (ticks)\n"));
    int running = line_index(out, "RUNNING\n");
    int finished = line_index(out, "FINISHED after ");
    if (running < 1 || finished <= running) {
        print_error("expected RUNNING then FINISHED:\n%s", out);
        fail();
    }
    assert_int_equal(integ_count_lines(out, strlen(out)), finished + 1);
    free(out);

    /* --json: one status per state change, the last one FINISHED. */
    out = expect_ok(ARGS("run", "--json", TICKS_SO, "--", "60", "200"));
    size_t n = integ_count_lines(out, strlen(out));
    assert_true(n >= 1);
    char *line = out;
    json_t *st = NULL;
    for (size_t i = 0; i < n; i++) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        json_decref(st);
        st = parse_json(line);
        assert_string_equal(jstr(st, "name"), "ticks");
        line = nl + 1;
    }
    assert_string_equal(jstr(st, "state"), "FINISHED");
    json_decref(st);
    free(out);
}

/* A job that fails: its state lines, one error line, exit 1. */
static void run_follow_failed(void **state)
{
    (void)state;
    integ_proc_t *p = run(ARGS("run", FAULTS_SO, "--", "map-fail", "0"));
    integ_assert_exit(p, 1);
    assert_int_equal(integ_count_lines(p->pr_err, p->pr_err_len), 1);
    assert_true(strncmp(p->pr_err, "eddy run: job 'faults' (", 24) == 0);
    assert_true(integ_contains(p->pr_err, ") failed: "));
    assert_true(line_index(p->pr_out, "FAILED") > 0);
    integ_proc_free(p);
}

/* ---- cancel ---- */

static void cancel(void **state)
{
    (void)state;
    char id[33], want[128];
    submit(ARGS("run", "--detached", FAULTS_SO, "--", "unbounded", "50"), id);
    wait_state(id, "RUNNING");
    char *out = expect_ok(ARGS("cancel", id));
    snprintf(want, sizeof(want), "job %s (faults): CANCELED\n", id);
    assert_string_equal(out, want);
    free(out);
    job_state(id, want, sizeof(want));
    assert_string_equal(want, "CANCELED");
    expect_error(
        ARGS("cancel", id), 1,
        PHRASES("eddy cancel: job ", id, "has already ended (CANCELED)"));

    /* A follower sees the cancel and exits 130 with one line. */
    integ_proc_t *f =
        integ_spawn(ARGS("run", FAULTS_SO, "--", "unbounded", "50"), env);
    assert_true(integ_wait_stdout_lines(f, 2, integ_timeout(JOB_TIMEOUT)));
    assert_true(strncmp(f->pr_out, "submitted job ", 14) == 0);
    memcpy(id, f->pr_out + 14, 32);
    id[32] = '\0';
    wait_state(id, "RUNNING");
    free(expect_ok(ARGS("cancel", id)));
    integ_finish(f, integ_timeout(JOB_TIMEOUT));
    integ_assert_exit(f, 130);
    assert_int_equal(integ_count_lines(f->pr_err, f->pr_err_len), 1);
    assert_true(integ_contains(f->pr_err, "eddy run: job 'faults' ("));
    assert_true(integ_contains(f->pr_err, ") was canceled\n"));
    assert_true(line_index(f->pr_out, "CANCELED after ") > 0);
    integ_proc_free(f);
}

/* Ctrl-C stops following, not the job. */
static void interrupt_follow(void **state)
{
    (void)state;
    integ_proc_t *f =
        integ_spawn(ARGS("run", FAULTS_SO, "--", "unbounded", "50"), env);
    assert_true(integ_wait_stdout_lines(f, 1, integ_timeout(JOB_TIMEOUT)));
    char id[33];
    memcpy(id, f->pr_out + 14, 32);
    id[32] = '\0';
    wait_state(id, "RUNNING");
    assert_true(integ_wait_stdout_lines(f, 2, integ_timeout(JOB_TIMEOUT)));
    kill(f->pr_pid, SIGINT);
    integ_finish(f, integ_timeout(CMD_TIMEOUT));
    integ_assert_exit(f, 130);
    assert_int_equal(integ_count_lines(f->pr_err, f->pr_err_len), 1);
    assert_true(integ_contains(f->pr_err, "eddy run: stopped following job "));
    assert_true(integ_contains(f->pr_err, "which keeps running"));
    char want[64];
    snprintf(want, sizeof(want), "'eddy cancel %s'", id);
    assert_true(integ_contains(f->pr_err, want));
    integ_proc_free(f);
    char st[32];
    job_state(id, st, sizeof(st));
    assert_string_equal(st, "RUNNING");
    free(expect_ok(ARGS("cancel", id)));
}

/* ---- savepoints ---- */

static void check_savepoint(const char *out, const char *prefix, char *path,
                            size_t size)
{
    const char *p = strstr(out, "savepoint completed: ");
    assert_non_null(p);
    p += strlen("savepoint completed: ");
    size_t n = strcspn(p, "\n");
    assert_true(n < size);
    memcpy(path, p, n);
    path[n] = '\0';
    assert_true(strncmp(path, prefix, strlen(prefix)) == 0);
    char *meta = integ_path(path, "_metadata");
    if (!file_exists(meta)) {
        print_error("no savepoint at %s\n", meta);
        fail();
    }
    free(meta);
}

static void savepoint_and_stop(void **state)
{
    (void)state;
    char id[33], want[128], path[4096], path2[4096];
    char *spdir = path_in(tmpdir, "savepoints");
    submit(ARGS("run", "--detached", FAULTS_SO, "--checkpoint-interval", "200",
                "--", "unbounded-keyed", "100"),
           id);
    wait_state(id, "RUNNING");

    char *out = expect_ok(ARGS("savepoint", id, "--dir", spdir));
    assert_int_equal(integ_count_lines(out, strlen(out)), 1);
    check_savepoint(out, spdir, path, sizeof(path));
    free(out);
    out = expect_ok(ARGS("savepoint", id, "--json", "--dir", spdir));
    json_t *sp = parse_json(out);
    assert_string_equal(jstr(sp, "status"), "COMPLETED");
    assert_true(strncmp(jstr(sp, "path"), spdir, strlen(spdir)) == 0);
    assert_string_not_equal(jstr(sp, "path"), path);
    json_decref(sp);
    free(out);

    /* stop: a savepoint, then the job ends FINISHED. */
    out = expect_ok(ARGS("stop", id, "--savepoint-dir", spdir));
    assert_int_equal(integ_count_lines(out, strlen(out)), 2);
    check_savepoint(out, spdir, path2, sizeof(path2));
    snprintf(want, sizeof(want), "\njob %s (faults): FINISHED\n", id);
    assert_true(integ_contains(out, want));
    free(out);

    /* The job resumes from it. */
    submit(ARGS("run", "--detached", FAULTS_SO, "--checkpoint-interval", "200",
                "--from-savepoint", path2, "--", "unbounded-keyed", "100"),
           id);
    wait_state(id, "RUNNING");
    out = expect_ok(
        ARGS("stop", id, "--savepoint-dir", spdir, "--drain", "--json"));
    json_t *o = parse_json(out);
    assert_string_equal(jstr(json_object_get(o, "savepoint"), "status"),
                        "COMPLETED");
    assert_string_equal(jstr(json_object_get(o, "job"), "state"), "FINISHED");
    json_decref(o);
    free(out);

    /* A job that is not running takes no savepoint. */
    expect_error(ARGS("savepoint", wc_id), 1,
                 PHRASES("eddy savepoint: ", "not RUNNING"));
    free(spdir);
}

/* ---- errors ---- */

static void unknown_jobs(void **state)
{
    (void)state;
    const char *id = "0123456789abcdef0123456789abcdef";
    expect_error(ARGS("status", id), 1,
                 PHRASES("eddy status: no job with id "
                         "'0123456789abcdef0123456789abcdef'"));
    expect_error(ARGS("status", "../overview"), 1,
                 PHRASES("eddy status: no job with id '../overview'"));
    expect_error(ARGS("cancel", id), 1, PHRASES("eddy cancel: no ", id));
    expect_error(ARGS("savepoint", id), 1, PHRASES("eddy savepoint: no ", id));
    expect_error(ARGS("stop", id), 1, PHRASES("eddy stop: no ", id));
    /* Upper case is the same id. */
    char upper[33];
    for (int i = 0; i < 32; i++) {
        upper[i] = (char)(wc_id[i] >= 'a' ? wc_id[i] - 32 : wc_id[i]);
    }
    upper[32] = '\0';
    free(expect_ok(ARGS("status", upper)));
}

static void unreachable(void **state)
{
    (void)state;
    int closed, unused;
    free_ports(&closed, &unused);
    char there[64], envv[96];
    snprintf(there, sizeof(there), "http://127.0.0.1:%d", closed);
    snprintf(envv, sizeof(envv), "EDDY_JOBMANAGER=%s", there);
    const char *const other_env[] = {envv, NULL};
    expect_error(ARGS("list", "--jobmanager", there), 1,
                 PHRASES("eddy list: cannot reach the JobManager at ", there,
                         "eddy cluster start"));
    integ_proc_t *p =
        integ_run(ARGS("status", wc_id), other_env, integ_timeout(CMD_TIMEOUT));
    integ_assert_error(
        p, 1, PHRASES("eddy status: cannot reach the JobManager at ", there));
    integ_proc_free(p);
    expect_error(ARGS("run", TICKS_SO, "--jobmanager", there, "--", "1", "1"),
                 1, PHRASES("eddy run: cannot reach the JobManager at "));
    /* The job file is checked before anything is sent. */
    char *missing = path_in(tmpdir, "missing.so");
    expect_error(ARGS("run", missing), 1,
                 PHRASES("eddy run: cannot open job '", "missing.so",
                         "No such file or directory"));
    expect_error(ARGS("run", tmpdir), 1,
                 PHRASES("eddy run: cannot open job '", "is a directory"));
    free(missing);
    /* The server's verdict on a file that is not a job, verbatim. */
    expect_error(ARGS("run", input), 1,
                 PHRASES("eddy run: ", "is not an eddy job"));
}

static void bad_usage(void **state)
{
    (void)state;
    const char *id = "0123456789abcdef0123456789abcdef";
    expect_error(
        ARGS("list", "--bogus"), 2,
        PHRASES("eddy list: unknown option '--bogus'", "eddy list --help"));
    expect_error(ARGS("list", "extra"), 2,
                 PHRASES("eddy list: unexpected argument 'extra'"));
    expect_error(
        ARGS("status"), 2,
        PHRASES("eddy status: missing the job id", "eddy status --help"));
    expect_error(ARGS("status", id, id), 2,
                 PHRASES("eddy status: unexpected argument"));
    expect_error(ARGS("status", id, "--jobmanager"), 2,
                 PHRASES("--jobmanager needs a value"));
    expect_error(ARGS("cancel", id, "--json=yes"), 2,
                 PHRASES("--json takes no value"));
    expect_error(ARGS("savepoint", id, "--dir"), 2,
                 PHRASES("eddy savepoint: --dir needs a value"));
    expect_error(ARGS("savepoint", id, "--timeout", "soon"), 2,
                 PHRASES("--timeout must be a positive duration"));
    expect_error(ARGS("stop", id, "--drain=no"), 2,
                 PHRASES("eddy stop: --drain takes no value"));
    expect_error(
        ARGS("run", TICKS_SO, "-D", "state.backend=rocksdb"), 2,
        PHRASES("eddy run: -D applies only with --local", "eddy run --help"));
    expect_error(ARGS("run", TICKS_SO, "--stop-with-savepoint", "/tmp"), 2,
                 PHRASES("--stop-with-savepoint applies only with --local"));
    expect_error(
        ARGS("run", TICKS_SO, "--checkpoint-interval", "often"), 2,
        PHRASES("--checkpoint-interval must be a duration", "'often'"));
    expect_error(ARGS("run", TICKS_SO, "-p", "0"), 2,
                 PHRASES("parallelism must be a positive integer"));
    expect_error(ARGS("run", TICKS_SO, "--jobmanager"), 2,
                 PHRASES("--jobmanager needs a URL"));
    expect_error(ARGS("run", "--local", TICKS_SO, "--json"), 2,
                 PHRASES("--json is for jobs submitted to a cluster"));
    expect_error(
        ARGS("cluster"), 2,
        PHRASES("eddy cluster: missing the subcommand", "eddy cluster --help"));
    expect_error(ARGS("cluster", "restart"), 2,
                 PHRASES("unknown subcommand 'restart'"));
    expect_error(ARGS("cluster", "start", "--taskmanagers", "0"), 2,
                 PHRASES("--taskmanagers must be an integer from 1"));
    expect_error(ARGS("cluster", "stop", "--slots", "2"), 2,
                 PHRASES("stop: unknown option '--slots'"));
    expect_error(ARGS("cluster", "start", "--rest-port", "70000"), 2,
                 PHRASES("eddy cluster start: ", "--rest-port", "70000"));
    expect_error(ARGS("cluster", "start", "--timeout", "-1"), 2,
                 PHRASES("--timeout must be a positive duration"));
}

static void help_texts(void **state)
{
    (void)state;
    static const struct {
        const char *cmd;
        const char *flags[9];
    } cmds[] = {
        {"list", {"--jobmanager URL", "--json", "--help"}},
        {"status", {"JOB_ID", "--jobmanager URL", "--json"}},
        {"cancel", {"JOB_ID", "--jobmanager URL", "--json"}},
        {"savepoint", {"--dir DIR", "--timeout DURATION", "--json"}},
        {"stop", {"--savepoint-dir DIR", "--drain", "--timeout", "--json"}},
        {"cluster",
         {"--taskmanagers N", "--slots N", "--data-dir DIR", "--rest-port P",
          "--rpc-port P", "--config FILE", "--timeout DURATION", "-D KEY=VALUE",
          "cluster stop"}},
    };
    for (size_t i = 0; i < INTEG_ARRAY_SIZE(cmds); i++) {
        char *h = expect_ok(ARGS(cmds[i].cmd, "--help"));
        char want[64];
        snprintf(want, sizeof(want), "usage: eddy %s", cmds[i].cmd);
        assert_true(strncmp(h, want, strlen(want)) == 0);
        for (size_t f = 0; f < 9 && cmds[i].flags[f] != NULL; f++) {
            if (!integ_contains(h, cmds[i].flags[f])) {
                print_error("eddy %s --help lacks %s\n", cmds[i].cmd,
                            cmds[i].flags[f]);
                fail();
            }
        }
        char *h2 = expect_ok(ARGS("help", cmds[i].cmd));
        assert_string_equal(h, h2);
        free(h2);
        free(h);
    }
    char *main_help = expect_ok(ARGS("--help"));
    assert_true(integ_contains(main_help, "  cluster "));
    assert_true(integ_contains(main_help, "  savepoint "));
    free(main_help);
}

/* A JobManager that cannot start: its log's end, no pid file, exit 1. */
static void jobmanager_fails_to_start(void **state)
{
    (void)state;
    char *dir = path_in(tmpdir, "broken");
    int rest, rpc;
    free_ports(&rest, &rpc);
    char rs[16], rp[16];
    snprintf(rs, sizeof(rs), "%d", rest);
    snprintf(rp, sizeof(rp), "%d", rpc);
    integ_proc_t *p =
        run(ARGS("cluster", "start", "--data-dir", dir, "--rest-port", rs,
                 "--rpc-port", rp, "-D", "metadata.store=/proc/none/meta.db"));
    integ_assert_exit(p, 1);
    assert_int_equal(p->pr_out_len, 0);
    const char first[] = "eddy cluster start: the JobManager exited while "
                         "starting (exit status 1)\n";
    if (strncmp(p->pr_err, first, strlen(first)) != 0) {
        integ_dump(p);
        fail();
    }
    assert_true(integ_contains(p->pr_err, "/log/jobmanager.log:\n"));
    assert_true(integ_contains(p->pr_err, "/proc/none/meta.db"));
    integ_proc_free(p);
    assert_int_equal(pid_files(dir), 0);
    free(dir);
}

/* ---- cluster stop ---- */

static void cluster_stop(void **state)
{
    (void)state;
    assert_int_equal(ndaemons, 3);
    /* A pid file naming a process that is not this cluster's (this test):
     * removed, never signalled. */
    char stale[4096], pid[32];
    snprintf(stale, sizeof(stale), "%s/run/taskmanager-9.pid", datadir);
    snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    integ_write_file(stale, pid, strlen(pid));
    integ_proc_t *p = integ_run(ARGS("cluster", "stop", "--data-dir", datadir),
                                NULL, integ_timeout(60));
    integ_assert_exit(p, 0);
    assert_int_equal(p->pr_err_len, 0);
    const char *names[] = {"jobmanager", "taskmanager-1", "taskmanager-2"};
    char want[4200];
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof(want), "stopped %s (pid %d)\n", names[i],
                 (int)daemon_pids[i]);
        if (!integ_contains(p->pr_out, want)) {
            integ_dump(p);
            fail_msg("expected '%s'", want);
        }
        assert_false(pid_alive(daemon_pids[i]));
    }
    snprintf(want, sizeof(want),
             "removed the stale pid file %s (pid %d now belongs to another "
             "process)\n",
             stale, (int)getpid());
    assert_true(integ_contains(p->pr_out, want));
    assert_false(file_exists(stale));
    /* The JobManager goes first. */
    assert_int_equal(line_index(p->pr_out, "stopped jobmanager"), 1);
    assert_int_equal(integ_count_lines(p->pr_out, p->pr_out_len), 4);
    integ_proc_free(p);
    assert_int_equal(pid_files(datadir), 0);
    ndaemons = 0;

    char *out = expect_ok(ARGS("cluster", "stop", "--data-dir", datadir));
    assert_true(strncmp(out, "no cluster is running", 21) == 0);
    free(out);

    /* The daemons ended cleanly: no sanitizer report in their logs. */
    for (int i = 0; i < 3; i++) {
        char log[4096];
        snprintf(log, sizeof(log), "%s/log/%s.log", datadir, names[i]);
        FILE *f = fopen(log, "r");
        assert_non_null(f);
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (integ_contains(buf, "Sanitizer") ||
            integ_contains(buf, "runtime error:")) {
            print_error("%s:\n%s\n", log, buf);
            fail();
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cluster_start),
        cmocka_unit_test(list_empty),
        cmocka_unit_test(word_count_detached),
        cmocka_unit_test(run_follow),
        cmocka_unit_test(run_follow_failed),
        cmocka_unit_test(cancel),
        cmocka_unit_test(interrupt_follow),
        cmocka_unit_test(savepoint_and_stop),
        cmocka_unit_test(unknown_jobs),
        cmocka_unit_test(unreachable),
        cmocka_unit_test(bad_usage),
        cmocka_unit_test(help_texts),
        cmocka_unit_test(jobmanager_fails_to_start),
        cmocka_unit_test(cluster_stop),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
