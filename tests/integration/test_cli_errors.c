/*
 * eddy — integration: the CLI's errors, usage and help.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The contract (src/cli/main.c): an error is exactly one line on stderr,
 * nothing on stdout, and a non-zero exit status: 1 when the job cannot be
 * loaded, built or run, 2 for bad usage (the line then points at --help).
 * Help and version go to stdout with status 0. Every case here runs the real
 * binary; none may crash it (a signal or status 70 fails the assertion on the
 * exit status).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <eddy/eddy.h>

#include "harness.h"

#define RUN_TIMEOUT 20.0

#define ARGS(...) ((const char *const[]){EDDY_BIN, __VA_ARGS__, NULL})
#define PHRASES(...) ((const char *const[]){__VA_ARGS__, NULL})

static char *tmpdir;

static int group_setup(void **state)
{
    (void)state;
    tmpdir = integ_tmpdir_new();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    integ_tmpdir_remove(tmpdir);
    return 0;
}

/* Runs eddy with `argv` and checks the one-line error contract. */
static void expect_error(const char *const argv[], int exit_code,
                         const char *const phrases[])
{
    integ_proc_t *p = integ_run(argv, NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_error(p, exit_code, phrases);
    integ_proc_free(p);
}

/* Runs eddy with `argv`, expects status 0, empty stderr, and returns the
 * malloc'ed stdout. */
static char *expect_stdout(const char *const argv[])
{
    integ_proc_t *p = integ_run(argv, NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(p, 0);
    if (p->pr_err_len != 0 || p->pr_out_len == 0) {
        print_error("expected output on stdout only\n");
        integ_dump(p);
        fail();
    }
    char *out = strdup(p->pr_out);
    assert_non_null(out);
    integ_proc_free(p);
    return out;
}

/* ---- loading ---- */

/* a. A text file named like a shared object. */
static void not_a_shared_object(void **state)
{
    (void)state;
    static const char text[] = "this is not an ELF file\n";
    char *bad = integ_path(tmpdir, "bad.so");
    char *empty = integ_path(tmpdir, "empty.so");
    integ_write_file(bad, text, sizeof(text) - 1);
    integ_write_file(empty, "", 0);
    expect_error(
        ARGS("run", "--local", bad), 1,
        PHRASES("eddy run: ", "bad.so", "is not a loadable shared object"));
    expect_error(ARGS("run", "--local", empty, "-p", "2"), 1,
                 PHRASES("empty.so", "is not a loadable shared object"));
    free(bad);
    free(empty);
}

/* A directory is not a job either. */
static void directory_as_job(void **state)
{
    (void)state;
    expect_error(ARGS("run", "--local", tmpdir), 1,
                 PHRASES("eddy run: ", "is a directory"));
}

/* b. A missing file. */
static void missing_job_file(void **state)
{
    (void)state;
    char *missing = integ_path(tmpdir, "missing.so");
    expect_error(ARGS("run", "--local", missing), 1,
                 PHRASES("eddy run: cannot open job", "missing.so",
                         "No such file or directory"));
    /* A bare name is a file in the current directory, never a library
     * searched on the library path. */
    expect_error(ARGS("run", "--local", "libc.so.6"), 1,
                 PHRASES("cannot open job 'libc.so.6'"));
    free(missing);
}

/* c. A valid shared object without the EDDY_JOB entry point. */
static void shared_object_without_entry_point(void **state)
{
    (void)state;
    expect_error(ARGS("run", "--local", NOT_A_JOB_SO), 1,
                 PHRASES("eddy run: ", "not_a_job.so", "is not an eddy job",
                         "EDDY_JOB"));
}

/* k. An entry point from another ABI version. */
static void abi_mismatch(void **state)
{
    (void)state;
    expect_error(ARGS("run", "--local", ABI_MISMATCH_SO), 1,
                 PHRASES("eddy run: ", "abi_mismatch.so", "ABI 999",
                         "runs ABI 1", "rebuild"));
}

/* ---- building ---- */

/* d. The build function fails with eddy_env_fail: the job's own text. */
static void build_fails_with_message(void **state)
{
    (void)state;
    expect_error(ARGS("run", "--local", FAULTS_SO, "--", "build-fail"), 1,
                 PHRASES("eddy run: job 'faults' could not be built: ",
                         "build refused: the table 'orders_2026' is missing"));
    /* The example job's own argument check takes the same path. */
    expect_error(ARGS("run", "--local", WORD_COUNT_SO), 1,
                 PHRASES("job 'word-count' could not be built",
                         "usage: word_count.so -- FILE"));
}

/* The build function returns an error without a message. */
static void build_fails_without_message(void **state)
{
    (void)state;
    expect_error(ARGS("run", "--local", FAULTS_SO, "--", "build-rc"), 1,
                 PHRASES("job 'faults' could not be built",
                         "returned -1 without a message", "eddy_env_fail"));
}

/* ---- running ---- */

/* e. A map function fails with eddy_ctx_fail: operator, subtask, message. */
static void map_fails_with_message(void **state)
{
    (void)state;
    expect_error(
        ARGS("run", "--local", FAULTS_SO, "-p", "3", "--", "map-fail", "1"), 1,
        PHRASES("eddy run: job 'faults' failed: ",
                "operator 'validate' (subtask 2 of 3)",
                "record 1 is not valid: checksum mismatch"));
    expect_error(ARGS("run", "--local", FAULTS_SO, "--", "map-fail", "0"), 1,
                 PHRASES("eddy run: job 'faults' failed: ",
                         "operator 'validate' (subtask 1 of 1)",
                         "record 0 is not valid: checksum mismatch"));
}

/* j. A map function returns -1 without a message. */
static void map_fails_without_message(void **state)
{
    (void)state;
    expect_error(
        ARGS("run", "--local", FAULTS_SO, "-p", "2", "--", "map-rc", "0"), 1,
        PHRASES("eddy run: job 'faults' failed: ",
                "operator 'validate' (subtask 1 of 2)", "returned -1",
                "without a message", "eddy_ctx_fail"));
}

/* A parallelism above the job's max parallelism is a job error. */
static void parallelism_above_max(void **state)
{
    (void)state;
    expect_error(
        ARGS("run", "--local", FAULTS_SO, "-p", "129", "--", "map-fail", "0"),
        1,
        PHRASES("job 'faults' failed", "parallelism 129",
                "max parallelism 128"));
}

/* ---- usage ---- */

/* h. Bad command lines: status 2, one line, pointing at --help. */
static void usage_errors(void **state)
{
    (void)state;
    char *job = integ_path(tmpdir, "x.so");
    expect_error(ARGS("run"), 2,
                 PHRASES("eddy run: missing the job file", "eddy run --help"));
    expect_error(ARGS("run", "--local"), 2,
                 PHRASES("missing the job file", "eddy run --help"));
    expect_error(ARGS("run", "--bogus"), 2,
                 PHRASES("unknown option '--bogus'", "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "-x"), 2,
                 PHRASES("unknown option '-x'", "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "-p", "0"), 2,
                 PHRASES("parallelism must be a positive integer, got '0'",
                         "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "-p", "abc"), 2,
                 PHRASES("got 'abc'", "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "-p", "-3"), 2,
                 PHRASES("got '-3'", "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "-p", "4x"), 2,
                 PHRASES("got '4x'", "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "-p", "99999999999"), 2,
                 PHRASES("got '99999999999'", "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "--parallelism="), 2,
                 PHRASES("got ''", "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "-p"), 2,
                 PHRASES("-p needs a value", "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "--parallelism"), 2,
                 PHRASES("--parallelism needs a value", "eddy run --help"));
    expect_error(
        ARGS("run", "--local", job, "extra.txt"), 2,
        PHRASES("unexpected argument 'extra.txt'", "'--'", "eddy run --help"));
    /* Without --local the job goes to a cluster: flags that configure the
     * local mini-cluster are refused before anything is sent, and
     * cluster-only flags are refused with --local. */
    expect_error(ARGS("run", job, "--state-backend", "rocksdb"), 2,
                 PHRASES("--state-backend applies only with --local",
                         "eddy run --help"));
    expect_error(ARGS("run", "--local", job, "--detached"), 2,
                 PHRASES("--detached", "cannot be used with --local",
                         "eddy run --help"));
    expect_error(ARGS("frobnicate"), 2,
                 PHRASES("eddy: unknown command 'frobnicate'", "eddy --help"));
    expect_error(ARGS("help", "frobnicate"), 2,
                 PHRASES("unknown command 'frobnicate'", "eddy --help"));
    expect_error(ARGS("version", "extra"), 2,
                 PHRASES("eddy version: unexpected argument 'extra'",
                         "eddy version --help"));
    free(job);
}

/* Checkpoint, state and restart options: one line naming the option. */
static void checkpoint_option_errors(void **state)
{
    (void)state;
    char *input = integ_path(tmpdir, "words.txt");
    integ_write_file(input, "a b\n", 4);
    expect_error(ARGS("run", "--local", WORD_COUNT_SO, "--checkpoint-interval"),
                 2, PHRASES("--checkpoint-interval needs a value"));
    expect_error(ARGS("run", "--local", WORD_COUNT_SO, "--checkpoint-interval",
                      "soon", "--", input),
                 2,
                 PHRASES("bad value 'soon' for checkpoint.interval",
                         "expected a duration"));
    expect_error(
        ARGS("run", "--local", WORD_COUNT_SO, "--state-backend", "memory", "--",
             input),
        2, PHRASES("bad value 'memory' for state.backend", "heap or rocksdb"));
    expect_error(
        ARGS("run", "--local", WORD_COUNT_SO, "-D", "no.such=1", "--", input),
        2, PHRASES("unknown configuration key 'no.such'"));
    expect_error(ARGS("run", "--local", WORD_COUNT_SO, "-D", "=1"), 2,
                 PHRASES("-D needs KEY=VALUE"));
    expect_error(
        ARGS("run", "--local", WORD_COUNT_SO, "--job-id", "xyz", "--", input),
        2, PHRASES("bad value 'xyz' for job.id"));
    expect_error(ARGS("run", "--local", WORD_COUNT_SO, "--from-savepoint",
                      "/nonexistent/eddy", "--", input),
                 1,
                 PHRASES("job 'word-count' failed",
                         "no checkpoint or savepoint found at "
                         "/nonexistent/eddy"));
    expect_error(ARGS("run", "--local", WORD_COUNT_SO, "--restart-strategy",
                      "fixed-delay", "--", input),
                 1, PHRASES("restart.strategy needs checkpointing"));
    /* eddy.yaml: errors name the file, line and column; a good file's job
     * keys apply (the run reports where its checkpoints go). */
    char *yaml = integ_path(tmpdir, "eddy.yaml");
    const char bad[] = "checkpoint:\n  interval: sometimes\n";
    integ_write_file(yaml, bad, sizeof(bad) - 1);
    expect_error(
        ARGS("run", "--local", WORD_COUNT_SO, "--config", yaml, "--", input), 2,
        PHRASES("eddy.yaml:2:13", "checkpoint.interval"));
    char *ckdir = integ_path(tmpdir, "ck");
    char good[512];
    snprintf(good, sizeof(good),
             "checkpoint:\n  interval: 50ms\n  dir: %s\njob:\n  id: "
             "%s\n",
             ckdir, "abcdefabcdefabcdefabcdefabcdefab");
    unlink(yaml);
    integ_write_file(yaml, good, strlen(good));
    integ_proc_t *q = integ_run(
        ARGS("run", "--local", WORD_COUNT_SO, "--config", yaml, "--", input),
        NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(q, 0);
    char want[600];
    snprintf(want, sizeof(want), "checkpoints to %s/%s", ckdir,
             "abcdefabcdefabcdefabcdefabcdefab");
    if (!integ_contains(q->pr_err, want)) {
        integ_dump(q);
        fail_msg("the configuration file was not applied");
    }
    integ_proc_free(q);
    free(ckdir);
    free(yaml);

    const char *env[] = {"EDDY_CHECKPOINT_INTERVAL=often", NULL};
    integ_proc_t *p =
        integ_run(ARGS("run", "--local", WORD_COUNT_SO, "--", input), env,
                  integ_timeout(RUN_TIMEOUT));
    integ_assert_error(p, 2,
                       PHRASES("bad value 'often' for checkpoint.interval",
                               "(from EDDY_CHECKPOINT_INTERVAL)"));
    integ_proc_free(p);
    free(input);
}

/* A job that fails after checkpoints: besides its error, the run says how
 * many checkpoints completed and which to resume from; that one restores
 * (the job then fails at the same record again, found by the restored
 * run, not a missing checkpoint). */
static void failure_names_latest_checkpoint(void **state)
{
    (void)state;
    char *ckdir = integ_path(tmpdir, "fail-ck");
    const char *id = "0123456789abcdef0123456789abcdef";
    integ_proc_t *p =
        integ_run(ARGS("run", "--local", FAULTS_SO, "--checkpoint-interval",
                       "50ms", "--checkpoint-dir", ckdir, "--job-id", id,
                       "--restart-strategy", "none", "--", "fail-at", "400"),
                  NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(p, 1);
    char latest[1024] = "", want[1200];
    snprintf(want, sizeof(want), "; the latest is %s/%s/chk-", ckdir, id);
    const char *at = strstr(p->pr_err, want);
    if (!integ_contains(p->pr_err, "job 'faults' failed") ||
        !integ_contains(p->pr_err, "record 400 is not valid") ||
        /* The checkpoint in flight when the job failed may count as
         * failed: the count is not asserted. */
        !integ_contains(p->pr_err, " completed, ") || at == NULL ||
        sscanf(at + 16, "%1023s", latest) != 1) {
        integ_dump(p);
        fail_msg("no checkpoint summary naming the latest checkpoint");
    }
    snprintf(want, sizeof(want), "eddy run --local %s --from-savepoint %s ...",
             FAULTS_SO, latest);
    if (!integ_contains(p->pr_err, want)) {
        integ_dump(p);
        fail_msg("no hint to resume from %s", latest);
    }
    integ_proc_free(p);
    char meta[1200];
    snprintf(meta, sizeof(meta), "%s/_metadata", latest);
    assert_int_equal(access(meta, R_OK), 0);

    p = integ_run(ARGS("run", "--local", FAULTS_SO, "--from-savepoint", latest,
                       "--restart-strategy", "none", "--", "fail-at", "400"),
                  NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(p, 1);
    if (!integ_contains(p->pr_err, "record 400 is not valid")) {
        integ_dump(p);
        fail_msg("the latest checkpoint did not restore");
    }
    integ_proc_free(p);
    free(ckdir);
}

/* No command at all: the overview, on stderr, with status 2. */
static void no_command(void **state)
{
    (void)state;
    const char *argv[] = {EDDY_BIN, NULL};
    integ_proc_t *p = integ_run(argv, NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(p, 2);
    assert_int_equal(p->pr_out_len, 0);
    assert_true(integ_contains(p->pr_err, "usage: eddy <command>"));
    integ_proc_free(p);
}

/* ---- help and version ---- */

/* i. Help goes to stdout, status 0; every spelling prints the same text. */
static void help_texts(void **state)
{
    (void)state;
    char *main_help = expect_stdout(ARGS("--help"));
    assert_true(strncmp(main_help, "usage: eddy <command>", 21) == 0);
    assert_true(integ_contains(main_help, "  run "));
    assert_true(integ_contains(main_help, "  version "));
    assert_true(integ_contains(main_help, "  help "));
    char *s = expect_stdout(ARGS("-h"));
    assert_string_equal(s, main_help);
    free(s);
    s = expect_stdout(ARGS("help"));
    assert_string_equal(s, main_help);
    free(s);

    char *run_help = expect_stdout(ARGS("run", "--help"));
    assert_true(strncmp(run_help, "usage: eddy run JOB.so [--local]", 32) == 0);
    assert_true(integ_contains(run_help, "-p, --parallelism N"));
    assert_true(integ_contains(run_help, "-q, --quiet"));
    assert_true(integ_contains(run_help, "--local"));
    assert_true(integ_contains(run_help, "--jobmanager URL"));
    assert_true(integ_contains(run_help, "--detached"));
    assert_true(integ_contains(run_help, "Exit status: 0 finished, 1 failed"));
    assert_true(integ_contains(run_help, "70 crashed (--local), 130 canceled"));
    s = expect_stdout(ARGS("run", "-h"));
    assert_string_equal(s, run_help);
    free(s);
    s = expect_stdout(ARGS("help", "run"));
    assert_string_equal(s, run_help);
    free(s);
    /* --help wins over everything else before "--". */
    s = expect_stdout(
        ARGS("run", "--local", "nowhere.so", "-p", "3", "--help"));
    assert_string_equal(s, run_help);
    free(s);

    char *version_help = expect_stdout(ARGS("version", "--help"));
    assert_true(strncmp(version_help, "usage: eddy version", 19) == 0);
    s = expect_stdout(ARGS("help", "version"));
    assert_string_equal(s, version_help);
    free(s);
    s = expect_stdout(ARGS("version", "-h"));
    assert_string_equal(s, version_help);
    free(s);

    free(main_help);
    free(run_help);
    free(version_help);
}

static void version(void **state)
{
    (void)state;
    char want[64];
    snprintf(want, sizeof(want), "eddy %s (job ABI %d)\n", EDDY_VERSION_STR,
             EDDY_ABI_VERSION);
    char *s = expect_stdout(ARGS("version"));
    assert_string_equal(s, want);
    free(s);
    s = expect_stdout(ARGS("--version"));
    assert_string_equal(s, want);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(not_a_shared_object),
        cmocka_unit_test(directory_as_job),
        cmocka_unit_test(missing_job_file),
        cmocka_unit_test(shared_object_without_entry_point),
        cmocka_unit_test(abi_mismatch),
        cmocka_unit_test(build_fails_with_message),
        cmocka_unit_test(build_fails_without_message),
        cmocka_unit_test(map_fails_with_message),
        cmocka_unit_test(map_fails_without_message),
        cmocka_unit_test(parallelism_above_max),
        cmocka_unit_test(usage_errors),
        cmocka_unit_test(checkpoint_option_errors),
        cmocka_unit_test(failure_names_latest_checkpoint),
        cmocka_unit_test(no_command),
        cmocka_unit_test(help_texts),
        cmocka_unit_test(version),
    };
    return cmocka_run_group_tests_name("integ_cli_errors", tests, group_setup,
                                       group_teardown);
}
