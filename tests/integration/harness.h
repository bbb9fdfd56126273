/*
 * eddy — integration test harness: run real processes, capture everything.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The integration tests run the real `eddy` binary on real job shared
 * objects. This harness starts a child with posix_spawn (stdin from
 * /dev/null, stdout and stderr on pipes), drains both pipes with poll() so
 * the child never blocks on a full pipe, and reaps it. Every wait has a
 * deadline; a child still running at its deadline is killed with SIGKILL and
 * reported as timed out, so a hung eddy fails its test instead of hanging
 * the suite. Deadlines are multiplied by EDDY_TEST_TIMEOUT_MULTIPLIER (for
 * slow machines and sanitizer builds).
 *
 * THREADS. Single-threaded, like the cmocka tests that use it.
 */
#ifndef EDDY_TESTS_INTEGRATION_HARNESS_H
#define EDDY_TESTS_INTEGRATION_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define INTEG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A child process and what it has written so far. */
typedef struct integ_proc {
    pid_t pr_pid;
    int pr_out_fd; /* -1 once stdout reached EOF */
    int pr_err_fd; /* -1 once stderr reached EOF */
    char *pr_out;  /* always NUL-terminated */
    size_t pr_out_len;
    size_t pr_out_cap;
    char *pr_err; /* always NUL-terminated */
    size_t pr_err_len;
    size_t pr_err_cap;
    char *pr_cmd; /* the command line, for failure messages */
    bool pr_reaped;
    bool pr_timed_out; /* killed with SIGKILL at the deadline */
    int pr_exit;       /* exit status, or -1 if killed by a signal */
    int pr_signal;     /* the signal that killed it, or 0 */
    double pr_start;   /* monotonic seconds */
    double pr_end;     /* when it was reaped */
} integ_proc_t;

/* Monotonic clock in seconds. */
double integ_now(void);

/* `base_seconds` times EDDY_TEST_TIMEOUT_MULTIPLIER (default 1). */
double integ_timeout(double base_seconds);

/*
 * Starts argv[0] (a path) with argv and stdin from /dev/null. `env_set` is NULL
 * or a NULL-terminated list of "NAME=VALUE" strings that replace or extend the
 * environment. Fails the running cmocka test if the process cannot be started.
 */
integ_proc_t *integ_spawn(const char *const argv[],
                          const char *const env_set[]);

/*
 * integ_spawn with stdin a pipe that holds `len` bytes of `data` and then
 * ends (len must fit in a pipe: at most 64 KiB).
 */
integ_proc_t *integ_spawn_input(const char *const argv[],
                                const char *const env_set[], const void *data,
                                size_t len);

/*
 * Reads output until stdout holds at least `lines` complete lines, stdout is
 * closed, or `timeout` seconds pass. Returns true if the lines arrived.
 */
bool integ_wait_stdout_lines(integ_proc_t *p, size_t lines, double timeout);

/*
 * Reads output until the child closes both pipes and exits, for at most
 * `timeout` seconds; then kills it (pr_timed_out). Always reaps the child.
 */
void integ_finish(integ_proc_t *p, double timeout);

/* Closes our end of the child's stdout (its writes then fail with EPIPE);
 * what it wrote so far stays in pr_out. */
void integ_close_stdout(integ_proc_t *p);

/* Kills (if still running) and reaps the child, and frees `p`. NULL is ok. */
void integ_proc_free(integ_proc_t *p);

/* integ_spawn + integ_finish. */
integ_proc_t *integ_run(const char *const argv[], const char *const env_set[],
                        double timeout);

/* Prints the command, how it ended, and its output (cmocka's print_error). */
void integ_dump(const integ_proc_t *p);

/* Number of '\n' in s[0..len). */
size_t integ_count_lines(const char *s, size_t len);

/* True if `hay` contains `needle`. */
bool integ_contains(const char *hay, const char *needle);

/*
 * Asserts that the child exited normally with status `exit_code` (not killed,
 * not timed out); dumps the process and fails the test otherwise.
 */
void integ_assert_exit(const integ_proc_t *p, int exit_code);

/*
 * Asserts the shape of every eddy error: the given exit status, nothing on
 * stdout, exactly one line on stderr, and that line containing each string of
 * the NULL-terminated `phrases`.
 */
void integ_assert_error(const integ_proc_t *p, int exit_code,
                        const char *const phrases[]);

/* Creates a fresh temporary directory; returns its malloc'ed path. */
char *integ_tmpdir_new(void);
/* Removes a directory tree made by integ_tmpdir_new and frees `path`. */
void integ_tmpdir_remove(char *path);

/* malloc'ed "dir/name". */
char *integ_path(const char *dir, const char *name);
/* Writes `len` bytes to a new file at `path` (fails the test on error). */
void integ_write_file(const char *path, const void *data, size_t len);

#endif /* EDDY_TESTS_INTEGRATION_HARNESS_H */
