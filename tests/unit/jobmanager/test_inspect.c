/*
 * eddy — unit tests for src/jobmanager/inspect.c: a job's graph built in a
 * child process, and every way a job can fail to give one (DESIGN §3), plus
 * eddy__config_to_json (src/runtime/config.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The child is this binary: main() dispatches `__inspect` to
 * eddy__inspect_main, as the eddy CLI does. The test jobs are shared
 * objects built next to it (tests/unit/CMakeLists.txt); inspect_modes.so
 * misbehaves in the way its first argument names.
 *
 * The process is a child subreaper, so processes a job forks are
 * re-parented here when the inspector's child dies: the tests reap them and
 * check that they were killed, and that no child of any kind is left.
 */
#include "test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "eddy/runner.h"
#include "jobmanager/inspect.h"
#include "runtime/runtime.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* ---- helpers ---- */

static eddy__inspect_options_t opts(void)
{
    eddy__inspect_options_t o;
    eddy__inspect_options_init(&o);
    o.io_timeout_ms = tu_timeout_ms(10000);
    return o;
}

/* Runs the inspector on `so` with the given job arguments (NULL-ended). */
static int inspect_with(const eddy__inspect_options_t *o, const char *so, int p,
                        const char *const *args, json_t **plan,
                        eddy_error_t *err)
{
    int n = 0;
    while (args != NULL && args[n] != NULL) {
        n++;
    }
    eddy_error_clear(err);
    int rc = eddy__inspect_job(o, so, p, (char *const *)args, n, plan, err);
    assert_int_equal(rc, err->code);
    if (rc != 0) {
        assert_null(*plan);
    }
    return rc;
}

static int inspect(const char *so, int p, const char *const *args,
                   json_t **plan, eddy_error_t *err)
{
    eddy__inspect_options_t o = opts();
    return inspect_with(&o, so, p, args, plan, err);
}

/* Runs inspect_modes.so in `mode` and expects error `code`. */
static void expect_mode_error(const char *mode, const char *arg, int code,
                              eddy_error_t *err)
{
    const char *args[] = {mode, arg, NULL};
    json_t *plan = NULL;
    int rc = inspect(INSPECT_MODES_SO, 1, args, &plan, err);
    if (rc != code) {
        fail_msg("mode %s: expected %s, got %s: %s", mode, eddy_err_name(code),
                 eddy_err_name(rc), err->msg);
    }
}

/* No child of this process is left running. As a subreaper this process
 * also inherits the killed grandchildren of a job, a moment after they
 * die: reap those (they were killed, which is the point) and give a
 * loaded machine two seconds before calling a live one a leak. */
static void assert_no_children(void)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(2000);
    for (;;) {
        int st;
        errno = 0;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p > 0) {
            continue; /* a dead one: reaped */
        }
        if (p == -1 && errno == ECHILD) {
            return;
        }
        if (tu_now_ms() >= deadline) {
            fail_msg("a child process is still running");
        }
        usleep(10000);
    }
}

/* Reaps `pid` (re-parented here) and checks that SIGKILL ended it. */
static void assert_killed(pid_t pid)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(5000);
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && tu_now_ms() < deadline) {
        tu_sleep_us(1000);
    }
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fail_msg("process %d forked by the job was still running", (int)pid);
    }
    assert_int_equal(w, pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
}

static pid_t read_pid(const char *path)
{
    size_t len;
    char *s = tu_read_file(path, &len);
    pid_t pid = (pid_t)atoi(s);
    free(s);
    assert_true(pid > 0);
    return pid;
}

/* The plan without config.job.id (random per build). */
static json_t *comparable(const json_t *plan)
{
    json_t *c = json_deep_copy(plan);
    json_object_del(json_object_get(c, "config"), "job.id");
    return c;
}

static void assert_json_equal(const json_t *got, const char *want_text)
{
    json_error_t jerr;
    json_t *want = json_loads(want_text, 0, &jerr);
    if (want == NULL) {
        fail_msg("bad expected JSON: %s", jerr.text);
    }
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_SORT_KEYS);
        fprintf(stderr, "got:  %s\nwant: %s\n", g, w);
        free(g);
        free(w);
        json_decref(want);
        fail_msg("JSON differs");
    }
    json_decref(want);
}

/* The plan's parts other than config, which test_good_config checks. */
static void assert_plan(const json_t *plan, const char *name,
                        const char *vertices, const char *edges,
                        const char *operators, int tasks)
{
    char *text;
    json_t *c = json_deep_copy(plan);
    json_object_del(c, "config");
    int n = asprintf(&text,
                     "{\"format\": 1, \"name\": \"%s\", \"max_parallelism\": "
                     "128, \"vertices\": %s, \"edges\": %s, \"operators\": "
                     "%s, \"tasks\": %d}",
                     name, vertices, edges, operators, tasks);
    assert_true(n > 0);
    assert_json_equal(c, text);
    free(text);
    json_decref(c);
}

#define GOOD_OPS(p_head, p_sum, p_sink)                                        \
    "{\"src\": {\"name\": \"numbers\", \"parallelism\": " #p_head              \
    ", \"max_parallelism\": 128}, \"auto-1\": {\"name\": \"by-key\", "         \
    "\"parallelism\": " #p_head ", \"max_parallelism\": 128}, \"sum\": "       \
    "{\"name\": \"sum\", \"parallelism\": " #p_sum                             \
    ", \"max_parallelism\": 128}, \"sink\": {\"name\": \"out\", "              \
    "\"parallelism\": " #p_sink ", \"max_parallelism\": 128}}"

#define HEAD_VERTEX(p)                                                         \
    "{\"index\": 0, \"name\": \"numbers -> by-key\", \"parallelism\": " #p     \
    ", \"source\": true, \"sink\": false, \"operators\": [{\"node\": 0, "      \
    "\"uid\": \"src\", \"name\": \"numbers\"}, {\"node\": 1, \"uid\": "        \
    "\"auto-1\", \"name\": \"by-key\"}]}"

/* ---- a good job ---- */

static void test_good_p1(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    TU_ASSERT_OK(inspect(INSPECT_GOOD_SO, 1, NULL, &plan, &err), &err);
    /* At -p 1 the sink has the reduce's parallelism: chained to it. */
    assert_plan(plan, "inspect-good",
                "[" HEAD_VERTEX(1) ", {\"index\": 1, \"name\": \"sum -> out\", "
                                   "\"parallelism\": 1, \"source\": false, "
                                   "\"sink\": true, \"operators\": "
                                   "[{\"node\": 2, \"uid\": \"sum\", "
                                   "\"name\": \"sum\"}, {\"node\": 3, "
                                   "\"uid\": \"sink\", \"name\": \"out\"}]}]",
                "[{\"from\": 0, \"to\": 1, \"partitioner\": \"hash\"}]",
                GOOD_OPS(1, 1, 1), 2);
    json_decref(plan);
    assert_no_children();
}

static void test_good_p4(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    TU_ASSERT_OK(inspect(INSPECT_GOOD_SO, 4, NULL, &plan, &err), &err);
    assert_plan(
        plan, "inspect-good",
        "[" HEAD_VERTEX(4) ", {\"index\": 1, \"name\": \"sum\", "
                           "\"parallelism\": 4, \"source\": false, \"sink\": "
                           "false, \"operators\": [{\"node\": 2, \"uid\": "
                           "\"sum\", \"name\": \"sum\"}]}, {\"index\": 2, "
                           "\"name\": \"out\", \"parallelism\": 1, "
                           "\"source\": false, \"sink\": true, "
                           "\"operators\": [{\"node\": 3, \"uid\": "
                           "\"sink\", \"name\": \"out\"}]}]",
        "[{\"from\": 0, \"to\": 1, \"partitioner\": \"hash\"}, {\"from\": 1, "
        "\"to\": 2, \"partitioner\": \"rebalance\"}]",
        GOOD_OPS(4, 4, 1), 9);
    json_decref(plan);
    assert_no_children();
}

/* Parallelism 0 means 1. */
static void test_good_p0(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    TU_ASSERT_OK(inspect(INSPECT_GOOD_SO, 0, NULL, &plan, &err), &err);
    assert_int_equal(json_integer_value(json_object_get(plan, "tasks")), 2);
    json_decref(plan);
}

/* The job's own configuration, after its build function ran. */
static void test_good_config(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    TU_ASSERT_OK(inspect(INSPECT_GOOD_SO, 1, NULL, &plan, &err), &err);
    json_t *cfg = json_object_get(plan, "config");
    const char *id = json_string_value(json_object_get(cfg, "job.id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 32);
    json_t *c = comparable(plan);
    assert_json_equal(
        json_object_get(c, "config"),
        "{\"checkpoint.interval\": \"5000\", \"checkpoint.timeout\": "
        "\"600000\", \"checkpoint.min_pause\": \"0\", "
        "\"checkpoint.max_concurrent\": \"1\", \"checkpoint.retained\": \"3\", "
        "\"checkpoint.mode\": \"exactly_once\", \"checkpoint.dir\": "
        "\"/tmp/eddy/checkpoints\", \"state.backend\": \"heap\", "
        "\"state.rocksdb.dir\": \"/tmp/eddy/rocksdb\", \"restart.attempts\": "
        "\"3\", \"restart.delay\": \"1000\", \"restart.max_delay\": "
        "\"60000\", \"restart.multiplier\": \"2\", "
        "\"savepoint.allow_non_restored\": \"false\"}");
    json_decref(c);
    json_decref(plan);
}

/* Arguments reach the build function unchanged (spaces, UTF-8). */
static void test_good_args(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    const char *args[] = {"my job \xc3\xbc -p 9 --", "250", NULL};
    TU_ASSERT_OK(inspect(INSPECT_GOOD_SO, 1, args, &plan, &err), &err);
    assert_string_equal(json_string_value(json_object_get(plan, "name")),
                        "my job \xc3\xbc -p 9 --");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(plan, "config"),
                                          "checkpoint.interval")),
        "250");
    assert_int_equal(json_integer_value(json_object_get(plan, "tasks")), 2);
    json_decref(plan);
}

/* The child's plan is exactly what this process computes by loading the
 * job itself (what a TaskManager does to check its rebuild). */
static void test_matches_in_process(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    const char *args[] = {"twin", "750", NULL};
    TU_ASSERT_OK(inspect(INSPECT_GOOD_SO, 4, args, &plan, &err), &err);

    eddy_job_t *job = NULL;
    eddy__plan_t *pl = NULL;
    TU_ASSERT_OK(eddy_job_open(INSPECT_GOOD_SO, &job, &err), &err);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_default_parallelism(env, 4);
    TU_ASSERT_OK(eddy_job_build(job, env, 2, (char **)args, &err), &err);
    eddy__plan_assign_uids(env);
    TU_ASSERT_OK(eddy__plan_build(env, &pl, &err), &err);
    json_t *mine = eddy__plan_to_json(env, pl);
    char why[160];
    assert_true(eddy__plan_json_valid(mine, why, sizeof(why)));
    json_t *a = comparable(plan);
    json_t *b = comparable(mine);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    json_decref(mine);
    json_decref(plan);
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
    eddy_job_close(job);
}

/* Megabytes of garbage on stdout and stderr change nothing. */
static void test_noisy(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    const char *args[] = {"noisy", NULL};
    TU_ASSERT_OK(inspect(INSPECT_MODES_SO, 1, args, &plan, &err), &err);
    assert_plan(plan, "inspect-modes",
                "[{\"index\": 0, \"name\": \"numbers -> out\", "
                "\"parallelism\": 1, \"source\": true, \"sink\": true, "
                "\"operators\": [{\"node\": 0, \"uid\": \"auto-0\", "
                "\"name\": \"numbers\"}, {\"node\": 1, \"uid\": \"auto-1\", "
                "\"name\": \"out\"}]}]",
                "[]",
                "{\"auto-0\": {\"name\": \"numbers\", \"parallelism\": 1, "
                "\"max_parallelism\": 128}, \"auto-1\": {\"name\": \"out\", "
                "\"parallelism\": 1, \"max_parallelism\": 128}}",
                1);
    json_decref(plan);
    assert_no_children();
}

/* The child's surroundings: limits, descriptors, signals, stdin, group. A
 * descriptor without close-on-exec, an ignored SIGUSR1 and a blocked
 * SIGUSR2 here must not reach it. */
static void test_child_surroundings(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    int leak = open("/dev/null", O_RDONLY);
    assert_true(leak >= 0);
    struct sigaction ign, old_usr1;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGUSR1, &ign, &old_usr1);
    sigset_t usr2, old_mask;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, &old_mask);

    eddy__inspect_options_t o = opts();
    o.io_timeout_ms = 3000;
    o.io_max_memory = SANITIZED ? 0 : (uint64_t)3 << 30;
    const char *args[] = {"report", NULL};
    int rc = inspect_with(&o, INSPECT_MODES_SO, 1, args, &plan, &err);

    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    close(leak);
    assert_int_equal(rc, EDDY_ERR_USER);
    char want[256];
    snprintf(want, sizeof(want),
             "the job's build function failed: core=0 cpu=4 as=%s fds=5 "
             "usr1=default mask=empty stdin=eof pgrp=own",
             SANITIZED ? "-1" : "3221225472");
    assert_string_equal(err.msg, want);
}

/* ---- jobs that fail ---- */

static void test_build_fails(void **state)
{
    (void)state;
    eddy_error_t err;
    expect_mode_error("fail", NULL, EDDY_ERR_USER, &err);
    assert_string_equal(err.msg, "the job's build function failed: fail: the "
                                 "table 'orders' is missing");
    /* A multi-line, invalid UTF-8 message becomes one clean line. */
    expect_mode_error("fail-dirty", NULL, EDDY_ERR_USER, &err);
    assert_string_equal(err.msg, "the job's build function failed: first "
                                 "line?second ? line");
}

static void test_build_crashes(void **state)
{
    (void)state;
    eddy_error_t err;
    expect_mode_error("crash", NULL, EDDY_ERR_CRASHED, &err);
    assert_string_equal(err.msg, "the job crashed while building its graph "
                                 "(SIGSEGV): crash: about to dereference "
                                 "NULL");
    assert_no_children();
}

static void test_constructor_crashes(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    assert_int_equal(inspect(CTOR_CRASH_SO, 1, NULL, &plan, &err),
                     EDDY_ERR_CRASHED);
    assert_string_equal(err.msg, "the job crashed while loading its shared "
                                 "object (SIGSEGV)");
}

static void test_exits(void **state)
{
    (void)state;
    eddy_error_t err;
    expect_mode_error("exit", "3", EDDY_ERR_USER, &err);
    assert_string_equal(err.msg, "the job exited (status 3) while building "
                                 "its graph: exit: leaving with status 3");
    /* exit(0) before the graph is built is no success either. */
    expect_mode_error("exit", "0", EDDY_ERR_USER, &err);
    TU_ASSERT_CONTAINS(err.msg, "the job exited (status 0) while building");
}

static void test_hangs(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    eddy__inspect_options_t o = opts();
    o.io_timeout_ms = 500;
    const char *args[] = {"loop", NULL};
    uint64_t t0 = tu_now_ms();
    assert_int_equal(inspect_with(&o, INSPECT_MODES_SO, 1, args, &plan, &err),
                     EDDY_ERR_TIMEOUT);
    uint64_t took = tu_now_ms() - t0;
    assert_string_equal(err.msg, "the job did not finish building its graph "
                                 "within 500 ms");
    assert_true(took >= 500);
    assert_true(took < (uint64_t)tu_timeout_ms(3000));
    assert_no_children();
}

/* A hanging job's own children die with it (the process group). */
static void test_hangs_with_children(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    char dir[PATH_MAX], pidfile[PATH_MAX + 16];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
    eddy__inspect_options_t o = opts();
    o.io_timeout_ms = tu_timeout_ms(1500);
    const char *args[] = {"spawn-loop", pidfile, NULL};
    assert_int_equal(inspect_with(&o, INSPECT_MODES_SO, 1, args, &plan, &err),
                     EDDY_ERR_TIMEOUT);
    assert_killed(read_pid(pidfile));
    assert_no_children();
    tu_rmtree(dir);
}

/* A job that forks a process holding the pipes open and then returns: the
 * plan comes back at once (no waiting for end of file), and the process
 * is killed. */
static void test_children_left_behind(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    char dir[PATH_MAX], pidfile[PATH_MAX + 16];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
    const char *args[] = {"spawn-ok", pidfile, NULL};
    uint64_t t0 = tu_now_ms();
    TU_ASSERT_OK(inspect(INSPECT_MODES_SO, 1, args, &plan, &err), &err);
    assert_true(tu_now_ms() - t0 < (uint64_t)tu_timeout_ms(5000));
    assert_int_equal(json_integer_value(json_object_get(plan, "tasks")), 1);
    json_decref(plan);
    assert_killed(read_pid(pidfile));
    assert_no_children();
    tu_rmtree(dir);
}

static void test_invalid_graphs(void **state)
{
    (void)state;
    eddy_error_t err;
    expect_mode_error("no-source", NULL, EDDY_ERR_INVALID, &err);
    TU_ASSERT_CONTAINS(err.msg,
                       "the job's graph is invalid: the job defines no "
                       "sources");
    expect_mode_error("bad-name", NULL, EDDY_ERR_INVALID, &err);
    assert_string_equal(err.msg, "the job's graph is invalid: the name of "
                                 "operator 0 is not valid UTF-8");
}

/* Unbounded allocation meets the address-space limit. */
static void test_memory_limit(void **state)
{
    (void)state;
    if (SANITIZED) {
        skip(); /* sanitizers need the address space: no limit there */
    }
    eddy_error_t err;
    json_t *plan = NULL;
    eddy__inspect_options_t o = opts();
    o.io_max_memory = (uint64_t)1 << 30;
    const char *args[] = {"hog", NULL};
    assert_int_equal(inspect_with(&o, INSPECT_MODES_SO, 1, args, &plan, &err),
                     EDDY_ERR_USER);
    TU_ASSERT_CONTAINS(err.msg, "the job's build function failed: hog: out of "
                                "memory after ");
    int mib = atoi(strstr(err.msg, "after ") + 6);
    assert_true(mib < 1024);
}

/* ---- files that are not jobs ---- */

static void test_not_jobs(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    char dir[PATH_MAX], path[PATH_MAX + 32], want[PATH_MAX + 256];
    tu_tmpdir(dir, sizeof(dir));

    assert_int_equal(inspect(NOT_A_JOB_SO, 1, NULL, &plan, &err),
                     EDDY_ERR_NOT_A_JOB);
    snprintf(want, sizeof(want),
             "'%s' is not an eddy job: it has no entry point (declare one "
             "with EDDY_JOB(name, build))",
             NOT_A_JOB_SO);
    assert_string_equal(err.msg, want);

    snprintf(path, sizeof(path), "%s/text.so", dir);
    /* Longer than an ELF header, or dlopen says "file too short". */
    static const char text[] = "This is a text file named like a job. It is "
                               "long enough to hold an ELF header, which it "
                               "does not.\n";
    tu_write_file(path, text, sizeof(text) - 1);
    assert_int_equal(inspect(path, 1, NULL, &plan, &err), EDDY_ERR_NOT_A_JOB);
    snprintf(want, sizeof(want),
             "'%s' is not an eddy job: it is not a loadable shared object: "
             "invalid ELF header",
             path);
    assert_string_equal(err.msg, want);

    snprintf(path, sizeof(path), "%s/empty.so", dir);
    tu_write_file(path, "", 0);
    assert_int_equal(inspect(path, 1, NULL, &plan, &err), EDDY_ERR_NOT_A_JOB);
    snprintf(want, sizeof(want),
             "'%s' is not an eddy job: it is not a loadable shared object: "
             "file too short",
             path);
    assert_string_equal(err.msg, want);

    assert_int_equal(inspect(dir, 1, NULL, &plan, &err), EDDY_ERR_NOT_A_JOB);
    snprintf(want, sizeof(want),
             "'%s' is not an eddy job: it is a directory, not a job shared "
             "object",
             dir);
    assert_string_equal(err.msg, want);

    assert_int_equal(inspect(ABI_MISMATCH_SO, 1, NULL, &plan, &err),
                     EDDY_ERR_NOT_A_JOB);
    snprintf(want, sizeof(want),
             "'%s' is not an eddy job: it was built for job ABI 999",
             ABI_MISMATCH_SO);
    TU_ASSERT_CONTAINS(err.msg, want);

    snprintf(path, sizeof(path), "%s/missing.so", dir);
    assert_int_equal(inspect(path, 1, NULL, &plan, &err), EDDY_ERR_NOT_FOUND);
    snprintf(want, sizeof(want),
             "cannot open job '%s': No such file or directory", path);
    assert_string_equal(err.msg, want);

    assert_int_equal(inspect("", 1, NULL, &plan, &err), EDDY_ERR_INVALID);
    tu_rmtree(dir);
    assert_no_children();
}

/* ---- the child program itself ---- */

static void test_bad_inspector(void **state)
{
    (void)state;
    eddy_error_t err;
    json_t *plan = NULL;
    eddy__inspect_options_t o = opts();
    o.io_exe = "/nonexistent/eddy-inspect";
    assert_int_equal(inspect_with(&o, INSPECT_GOOD_SO, 1, NULL, &plan, &err),
                     EDDY_ERR_IO);
    assert_string_equal(err.msg, "cannot run the job inspector "
                                 "'/nonexistent/eddy-inspect': No such file "
                                 "or directory");
    /* A program that prints something else. */
    o.io_exe = "/bin/echo";
    assert_int_equal(inspect_with(&o, INSPECT_GOOD_SO, 1, NULL, &plan, &err),
                     EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "the job inspector printed no valid JSON");
    /* A plan larger than allowed. */
    o = opts();
    o.io_max_output = 64;
    assert_int_equal(inspect_with(&o, INSPECT_GOOD_SO, 1, NULL, &plan, &err),
                     EDDY_ERR_FORMAT);
    assert_string_equal(err.msg,
                        "the job's graph description is larger than 64 bytes");
    assert_no_children();
}

/* Several inspections at once, from several threads, stay apart. */
typedef struct concurrent {
    const char *cc_so;
    const char *cc_mode;
    int cc_rc;
    int cc_tasks;
    char cc_msg[256];
} concurrent_t;

static void *concurrent_main(void *arg)
{
    concurrent_t *c = arg;
    eddy__inspect_options_t o = opts();
    eddy_error_t err;
    json_t *plan = NULL;
    const char *args[] = {c->cc_mode, NULL};
    eddy_error_clear(&err);
    c->cc_rc = eddy__inspect_job(&o, c->cc_so, 4, (char *const *)args,
                                 c->cc_mode != NULL, &plan, &err);
    c->cc_tasks = (int)json_integer_value(json_object_get(plan, "tasks"));
    snprintf(c->cc_msg, sizeof(c->cc_msg), "%s", err.msg);
    json_decref(plan);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    concurrent_t c[6] = {
        {INSPECT_GOOD_SO, NULL, -99, 0, ""},
        {INSPECT_MODES_SO, "crash", -99, 0, ""},
        {INSPECT_GOOD_SO, NULL, -99, 0, ""},
        {INSPECT_MODES_SO, "fail", -99, 0, ""},
        {INSPECT_MODES_SO, "noisy", -99, 0, ""},
        {INSPECT_GOOD_SO, NULL, -99, 0, ""},
    };
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, concurrent_main, &c[i]),
                         0);
    }
    for (int i = 0; i < 6; i++) {
        tu_join(th[i], 30000, "inspect");
    }
    for (int i = 0; i < 6; i++) {
        if (c[i].cc_mode == NULL) {
            assert_int_equal(c[i].cc_rc, 0);
            assert_int_equal(c[i].cc_tasks, 9);
        }
    }
    assert_int_equal(c[1].cc_rc, EDDY_ERR_CRASHED);
    TU_ASSERT_CONTAINS(c[1].cc_msg, "dereference NULL");
    assert_int_equal(c[3].cc_rc, EDDY_ERR_USER);
    TU_ASSERT_CONTAINS(c[3].cc_msg, "orders");
    assert_int_equal(c[4].cc_rc, 0);
    assert_int_equal(c[4].cc_tasks, 4);
    assert_no_children();
}

/* ---- plan validation ---- */

static json_t *valid_plan(void)
{
    eddy_error_t err;
    json_t *plan = NULL;
    TU_ASSERT_OK(inspect(INSPECT_GOOD_SO, 4, NULL, &plan, &err), &err);
    return plan;
}

static void expect_invalid(json_t *plan, const char *why_part)
{
    char why[160];
    why[0] = '\0';
    if (eddy__plan_json_valid(plan, why, sizeof(why))) {
        char *s = json_dumps(plan, JSON_COMPACT);
        fprintf(stderr, "accepted: %s\n", s);
        free(s);
        fail_msg("a malformed plan was accepted (expected: %s)", why_part);
    }
    TU_ASSERT_CONTAINS(why, why_part);
    json_decref(plan);
}

static json_t *vertex(json_t *plan, size_t i)
{
    return json_array_get(json_object_get(plan, "vertices"), i);
}

static void test_plan_validation(void **state)
{
    (void)state;
    char why[160];
    json_t *good = valid_plan();
    assert_true(eddy__plan_json_valid(good, why, sizeof(why)));
    json_t *p;

    expect_invalid(json_array(), "not a JSON object");
    p = json_deep_copy(good);
    json_object_set_new(p, "format", json_integer(2));
    expect_invalid(p, "format is not 1");
    p = json_deep_copy(good);
    json_object_set_new(p, "name", json_string(""));
    expect_invalid(p, "no job name");
    p = json_deep_copy(good);
    json_object_set_new(p, "max_parallelism", json_integer(0));
    expect_invalid(p, "max_parallelism");
    p = json_deep_copy(good);
    json_object_set_new(json_object_get(p, "config"), "checkpoint.interval",
                        json_integer(5));
    expect_invalid(p, "config key 'checkpoint.interval' is not a string");
    p = json_deep_copy(good);
    json_object_set_new(vertex(p, 1), "index", json_integer(7));
    expect_invalid(p, "vertex 1: not an object with index 1");
    p = json_deep_copy(good);
    json_object_set_new(vertex(p, 0), "parallelism", json_integer(129));
    expect_invalid(p, "vertex 0: needs a name, a parallelism 1..128");
    p = json_deep_copy(good);
    json_object_set_new(vertex(p, 2), "parallelism", json_integer(2));
    expect_invalid(p, "vertex 2: operator 'sink' is not listed");
    p = json_deep_copy(good);
    json_object_set_new(
        json_array_get(json_object_get(vertex(p, 1), "operators"), 0), "uid",
        json_string("ghost"));
    expect_invalid(p, "operator 'ghost' is not listed");
    p = json_deep_copy(good);
    json_object_set_new(json_object_get(p, "operators"), "extra",
                        json_pack("{s:s, s:i, s:i}", "name", "x", "parallelism",
                                  1, "max_parallelism", 128));
    expect_invalid(p, "the vertices hold 4 operators, operators lists 5");
    p = json_deep_copy(good);
    json_object_set_new(vertex(p, 0), "source", json_false());
    expect_invalid(p, "no source vertex");
    p = json_deep_copy(good);
    json_object_set_new(json_array_get(json_object_get(p, "edges"), 1), "to",
                        json_integer(3));
    expect_invalid(p, "edge 1: needs from < to");
    p = json_deep_copy(good);
    json_object_set_new(json_array_get(json_object_get(p, "edges"), 0), "from",
                        json_integer(1));
    expect_invalid(p, "edge 0: needs from < to");
    p = json_deep_copy(good);
    json_object_set_new(json_array_get(json_object_get(p, "edges"), 0),
                        "partitioner", json_string("default"));
    expect_invalid(p, "edge 0");
    p = json_deep_copy(good);
    json_object_set_new(p, "tasks", json_integer(8));
    expect_invalid(p, "tasks is not the sum of the vertex parallelisms (9)");
    p = json_deep_copy(good);
    json_object_del(p, "edges");
    expect_invalid(p, "edges is not an array");
    json_decref(good);
}

/* ---- eddy__config_to_json ---- */

static const char *const all_keys[] = {
    "checkpoint.interval",
    "checkpoint.timeout",
    "checkpoint.min_pause",
    "checkpoint.max_concurrent",
    "checkpoint.retained",
    "checkpoint.mode",
    "checkpoint.dir",
    "state.backend",
    "state.rocksdb.dir",
    "restart.strategy",
    "restart.attempts",
    "restart.delay",
    "restart.max_delay",
    "restart.multiplier",
    "savepoint.path",
    "savepoint.allow_non_restored",
    "job.id",
};

/* Applies every pair of `j` to a fresh configuration. */
static void apply(const json_t *j, eddy__config_t *c)
{
    const char *key;
    json_t *val;
    eddy_error_t err;
    eddy__config_init(c);
    json_object_foreach((json_t *)j, key, val)
    {
        assert_true(json_is_string(val));
        TU_ASSERT_OK(eddy__config_set(c, key, json_string_value(val), &err),
                     &err);
    }
}

static void assert_config_equal(const eddy__config_t *a,
                                const eddy__config_t *b)
{
    assert_int_equal(a->ck_interval_ms, b->ck_interval_ms);
    assert_int_equal(a->ck_timeout_ms, b->ck_timeout_ms);
    assert_int_equal(a->ck_min_pause_ms, b->ck_min_pause_ms);
    assert_int_equal(a->ck_max_concurrent, b->ck_max_concurrent);
    assert_int_equal(a->ck_retained, b->ck_retained);
    assert_int_equal(a->ck_exactly_once, b->ck_exactly_once);
    assert_string_equal(a->ck_dir, b->ck_dir);
    assert_string_equal(a->state_backend, b->state_backend);
    assert_string_equal(a->rocksdb_dir, b->rocksdb_dir);
    assert_int_equal(a->restart_strategy, b->restart_strategy);
    assert_int_equal(a->restart_explicit, b->restart_explicit);
    assert_int_equal(a->restart_attempts, b->restart_attempts);
    assert_int_equal(a->restart_delay_ms, b->restart_delay_ms);
    assert_int_equal(a->restart_max_delay_ms, b->restart_max_delay_ms);
    assert_true(a->restart_multiplier == b->restart_multiplier);
    if (a->restore_path == NULL || b->restore_path == NULL) {
        assert_ptr_equal(a->restore_path, b->restore_path);
    } else {
        assert_string_equal(a->restore_path, b->restore_path);
    }
    assert_int_equal(a->allow_non_restored, b->allow_non_restored);
    assert_string_equal(a->job_id, b->job_id);
}

static void test_config_round_trip(void **state)
{
    (void)state;
    eddy__config_t a, b;
    eddy_error_t err;

    /* Defaults: everything but the two implicit keys. */
    eddy__config_init(&a);
    json_t *j = eddy__config_to_json(&a);
    assert_int_equal(json_object_size(j), EDDY_ARRAY_SIZE(all_keys) - 2);
    assert_null(json_object_get(j, "restart.strategy"));
    assert_null(json_object_get(j, "savepoint.path"));
    apply(j, &b);
    assert_config_equal(&a, &b);
    json_decref(j);
    eddy__config_free(&a);
    eddy__config_free(&b);

    /* Every key set to something other than its default. */
    static const char *const values[][2] = {
        {"checkpoint.interval", "2s"},
        {"checkpoint.timeout", "90s"},
        {"checkpoint.min_pause", "250ms"},
        {"checkpoint.max_concurrent", "3"},
        {"checkpoint.retained", "7"},
        {"checkpoint.mode", "at_least_once"},
        {"checkpoint.dir", "file:///var/lib/eddy/ck \xc3\xa9"},
        {"state.backend", "rocksdb"},
        {"state.rocksdb.dir", "/data/rocks"},
        {"restart.strategy", "exponential-delay"},
        {"restart.attempts", "0"},
        {"restart.delay", "1h"},
        {"restart.max_delay", "2m"},
        {"restart.multiplier", "1.1"},
        {"savepoint.path", "/sp/savepoint-1"},
        {"savepoint.allow_non_restored", "yes"},
        {"job.id", "0123456789abcdef0123456789abcdef"},
    };
    assert_int_equal(EDDY_ARRAY_SIZE(values), EDDY_ARRAY_SIZE(all_keys));
    eddy__config_init(&a);
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(values); i++) {
        assert_string_equal(values[i][0], all_keys[i]);
        TU_ASSERT_OK(eddy__config_set(&a, values[i][0], values[i][1], &err),
                     &err);
    }
    j = eddy__config_to_json(&a);
    assert_int_equal(json_object_size(j), EDDY_ARRAY_SIZE(all_keys));
    assert_json_equal(
        j, "{\"checkpoint.interval\": \"2000\", \"checkpoint.timeout\": "
           "\"90000\", \"checkpoint.min_pause\": \"250\", "
           "\"checkpoint.max_concurrent\": \"3\", \"checkpoint.retained\": "
           "\"7\", \"checkpoint.mode\": \"at_least_once\", "
           "\"checkpoint.dir\": \"file:///var/lib/eddy/ck \xc3\xa9\", "
           "\"state.backend\": \"rocksdb\", \"state.rocksdb.dir\": "
           "\"/data/rocks\", \"restart.strategy\": \"exponential-delay\", "
           "\"restart.attempts\": \"0\", \"restart.delay\": \"3600000\", "
           "\"restart.max_delay\": \"120000\", \"restart.multiplier\": "
           "\"1.1\", \"savepoint.path\": \"/sp/savepoint-1\", "
           "\"savepoint.allow_non_restored\": \"true\", \"job.id\": "
           "\"0123456789abcdef0123456789abcdef\"}");
    apply(j, &b);
    assert_config_equal(&a, &b);
    json_t *j2 = eddy__config_to_json(&b);
    assert_true(json_equal(j, j2));
    json_decref(j2);
    json_decref(j);
    eddy__config_free(&a);
    eddy__config_free(&b);

    /* A multiplier that needs all 17 digits (1 + 2^-52) survives too. */
    eddy__config_init(&a);
    TU_ASSERT_OK(
        eddy__config_set(&a, "restart.multiplier", "1.0000000000000002", &err),
        &err);
    assert_true(a.restart_multiplier > 1.0);
    j = eddy__config_to_json(&a);
    assert_string_equal(
        json_string_value(json_object_get(j, "restart.multiplier")),
        "1.0000000000000002");
    apply(j, &b);
    assert_config_equal(&a, &b);
    json_decref(j);
    eddy__config_free(&a);
    eddy__config_free(&b);

    /* Each strategy survives, and "none" chosen explicitly stays explicit. */
    static const char *const strategies[] = {"none", "fixed-delay",
                                             "exponential-delay"};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(strategies); i++) {
        eddy__config_init(&a);
        TU_ASSERT_OK(
            eddy__config_set(&a, "restart.strategy", strategies[i], &err),
            &err);
        j = eddy__config_to_json(&a);
        assert_string_equal(
            json_string_value(json_object_get(j, "restart.strategy")),
            strategies[i]);
        apply(j, &b);
        assert_config_equal(&a, &b);
        json_decref(j);
        eddy__config_free(&a);
        eddy__config_free(&b);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "__inspect") == 0) {
        return eddy__inspect_main(argc, argv);
    }
    /* Orphans of the inspector's children come here to be checked. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("PR_SET_CHILD_SUBREAPER");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_p1),
        cmocka_unit_test(test_good_p4),
        cmocka_unit_test(test_good_p0),
        cmocka_unit_test(test_good_config),
        cmocka_unit_test(test_good_args),
        cmocka_unit_test(test_matches_in_process),
        cmocka_unit_test(test_noisy),
        cmocka_unit_test(test_child_surroundings),
        cmocka_unit_test(test_build_fails),
        cmocka_unit_test(test_build_crashes),
        cmocka_unit_test(test_constructor_crashes),
        cmocka_unit_test(test_exits),
        cmocka_unit_test(test_hangs),
        cmocka_unit_test(test_hangs_with_children),
        cmocka_unit_test(test_children_left_behind),
        cmocka_unit_test(test_invalid_graphs),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_not_jobs),
        cmocka_unit_test(test_bad_inspector),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_plan_validation),
        cmocka_unit_test(test_config_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
