/*
 * eddy — integration: crashes inside job code (src/runtime/crash.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * A job's code runs inside the eddy process, so a NULL dereference in a user
 * function kills it. The crash guard must turn that into exactly one line on
 * stderr naming the operator and subtask (or the phase, outside operators)
 * and exit status 70, with nothing on stdout.
 *
 * SANITIZERS. In an AddressSanitizer build ASan installs its own SIGSEGV
 * handler at startup; eddy installs its handler later, in main(), and ASan's
 * default allow_user_segv_handler=1 lets that replace ASan's. These tests run
 * the child with the environment unchanged, so they verify that eddy's line
 * (not an ASan report) comes out in ASan builds too. The faulting functions
 * in jobs/ are exempt from UBSan (no_sanitize), which would otherwise report
 * the NULL store itself and abort before any signal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#define RUN_TIMEOUT 20.0
#define EXIT_CRASHED 70

#define ARGS(...) ((const char *const[]){EDDY_BIN, __VA_ARGS__, NULL})

/* Runs eddy, expects status 70, no stdout and exactly `line` on stderr. */
static void expect_crash(const char *const argv[], const char *line)
{
    integ_proc_t *p = integ_run(argv, NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_error(p, EXIT_CRASHED, NULL);
    if (strcmp(p->pr_err, line) != 0) {
        print_error("expected stderr: %s", line);
        integ_dump(p);
        fail();
    }
    integ_proc_free(p);
}

/* f. A map function dereferences NULL in one subtask. */
static void map_segfault_names_operator(void **state)
{
    (void)state;
    expect_crash(
        ARGS("run", "--local", FAULTS_SO, "-p", "3", "--", "map-crash", "1"),
        "eddy: job crashed: SIGSEGV (invalid memory access) in "
        "operator 'validate' (subtask 2 of 3)\n");
    expect_crash(ARGS("run", "--local", FAULTS_SO, "--", "map-crash", "0"),
                 "eddy: job crashed: SIGSEGV (invalid memory access) in "
                 "operator 'validate' (subtask 1 of 1)\n");
}

/* Other fatal signals get their own names. */
static void map_divide_by_zero_names_operator(void **state)
{
    (void)state;
    expect_crash(
        ARGS("run", "--local", FAULTS_SO, "-p", "2", "--", "map-fpe", "0"),
        "eddy: job crashed: SIGFPE (arithmetic error) in operator "
        "'validate' (subtask 1 of 2)\n");
}

/* A stack overflow: the handler runs on the thread's alternate stack. */
static void map_stack_overflow_names_operator(void **state)
{
    (void)state;
    expect_crash(
        ARGS("run", "--local", FAULTS_SO, "-p", "2", "--", "map-overflow", "1"),
        "eddy: job crashed: SIGSEGV (invalid memory access) in "
        "operator 'validate' (subtask 2 of 2)\n");
}

/* Every subtask faults at once: still exactly one line (the first thread to
 * fault reports; the others must not add theirs). Repeated, as the race
 * shows in a fraction of runs only. */
static void simultaneous_segfaults_one_line(void **state)
{
    (void)state;
    static const char prefix[] = "eddy: job crashed: SIGSEGV (invalid memory "
                                 "access) in operator 'validate' (subtask ";
    for (int i = 0; i < 20; i++) {
        integ_proc_t *p = integ_run(
            ARGS("run", "--local", FAULTS_SO, "-p", "16", "--", "crash-all"),
            NULL, integ_timeout(RUN_TIMEOUT));
        integ_assert_error(p, EXIT_CRASHED, NULL);
        size_t n = strlen(prefix);
        if (strncmp(p->pr_err, prefix, n) != 0 ||
            !integ_contains(p->pr_err + n, " of 16)\n")) {
            print_error("run %d: unexpected crash line\n", i + 1);
            integ_dump(p);
            fail();
        }
        integ_proc_free(p);
    }
}

/* The same behind a network edge (key_by), in a reduce's last subtask. */
static void keyed_segfault_names_operator(void **state)
{
    (void)state;
    expect_crash(
        ARGS("run", "--local", FAULTS_SO, "-p", "4", "--", "keyed-crash"),
        "eddy: job crashed: SIGSEGV (invalid memory access) in "
        "operator 'summing' (subtask 4 of 4)\n");
}

/* g. The build function crashes: no operator runs yet, so the line names
 * the phase. */
static void build_segfault_names_phase(void **state)
{
    (void)state;
    expect_crash(
        ARGS("run", "--local", FAULTS_SO, "-p", "2", "--", "build-crash"),
        "eddy: job crashed: SIGSEGV (invalid memory access) while "
        "building the job's graph (in its EDDY_JOB build "
        "function)\n");
}

/* A constructor of the job's shared object crashes while it is loaded. */
static void load_segfault_names_phase(void **state)
{
    (void)state;
    expect_crash(ARGS("run", "--local", CTOR_CRASH_SO),
                 "eddy: job crashed: SIGSEGV (invalid memory access) while "
                 "loading the job's shared object\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(map_segfault_names_operator),
        cmocka_unit_test(map_divide_by_zero_names_operator),
        cmocka_unit_test(map_stack_overflow_names_operator),
        cmocka_unit_test(simultaneous_segfaults_one_line),
        cmocka_unit_test(keyed_segfault_names_operator),
        cmocka_unit_test(build_segfault_names_phase),
        cmocka_unit_test(load_segfault_names_phase),
    };
    return cmocka_run_group_tests_name("integ_crash", tests, NULL, NULL);
}
