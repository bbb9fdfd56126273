/*
 * inspect_modes — a job that misbehaves while building its graph in the
 * way its first argument names, for the job inspector's tests
 * (tests/unit/jobmanager/test_inspect.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 *   inspect_modes.so -- MODE [ARG]
 *
 * Modes:
 *   fail          eddy_env_fail with a message
 *   fail-dirty    eddy_env_fail with a newline and an invalid UTF-8 byte
 *   crash         prints a line on stderr, then dereferences NULL
 *   loop          spins forever
 *   exit N        prints on stdout (buffered), then exit(N)
 *   noisy         megabytes of garbage on stdout (stdio and fd 1) and
 *                 stderr, then a valid graph
 *   no-source     builds nothing
 *   bad-name      names an operator with invalid UTF-8
 *   hog           allocates 64 MiB blocks until malloc fails (at most
 *                 64 GiB, never touched), then fails saying how much
 *   spawn-loop F  forks a process that writes its pid to file F and
 *                 sleeps, then spins forever
 *   spawn-ok F    the same, then builds a valid graph and returns
 *   report        fails with a description of its process: limits, open
 *                 descriptors, signal state, stdin and process group
 *
 * Valid graphs are "numbers -> out" (one vertex).
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <eddy/eddy.h>

static int *volatile nowhere;

/* A real SIGSEGV even in sanitizer builds (see faults.c). */
#if defined(__GNUC__) || defined(__clang__)
#define NO_UBSAN __attribute__((no_sanitize("undefined")))
#else
#define NO_UBSAN
#endif

NO_UBSAN static void crash(void)
{
    *nowhere = 42;
}

static volatile unsigned long spins;

static void spin(void)
{
    for (;;) {
        spins++;
    }
}

static int gen(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
               void *opaque)
{
    (void)ctx;
    (void)index;
    (void)out;
    (void)opaque;
    return 0;
}

static int valid_graph(eddy_env_t *env)
{
    eddy_stream_t *src =
        eddy_name(eddy_source_generator(env, 10, 0, gen, NULL), "numbers");
    eddy_name(eddy_sink_discard(src), "out");
    return 0;
}

static void spawn(const char *pidfile)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen(pidfile, "w");
        if (f != NULL) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
        for (;;) {
            pause();
        }
    }
    /* Wait until the pid is written, so the test can find the process. */
    for (int i = 0; i < 5000; i++) {
        FILE *f = fopen(pidfile, "r");
        int got = 0, v;
        if (f != NULL) {
            got = fscanf(f, "%d", &v) == 1;
            fclose(f);
        }
        if (got) {
            return;
        }
        usleep(1000);
    }
}

static int noisy(eddy_env_t *env)
{
    static char block[64 * 1024];
    for (size_t i = 0; i < sizeof(block); i++) {
        block[i] = "{\"format\": 1, \xff garbage }\n"[i % 26];
    }
    for (int i = 0; i < 16; i++) {
        fwrite(block, 1, sizeof(block), stdout);
        if (write(1, block, sizeof(block)) < 0) {
            return eddy_env_fail(env, "noisy: write(1) failed");
        }
    }
    fflush(stdout);
    for (int i = 0; i < 64; i++) {
        if (write(2, block, sizeof(block)) < 0) {
            return eddy_env_fail(env, "noisy: write(2) failed");
        }
    }
    fprintf(stderr, "\nnoisy: done\n");
    return valid_graph(env);
}

static int hog(eddy_env_t *env)
{
    size_t mib = 0;
    while (mib < 64 * 1024) {
        /* Never freed and never touched: only the address space grows. */
        if (malloc((size_t)64 << 20) == NULL) {
            return eddy_env_fail(env, "hog: out of memory after %zu MiB", mib);
        }
        mib += 64;
    }
    return eddy_env_fail(env, "hog: allocated %zu MiB without a limit", mib);
}

static long long lim(int resource)
{
    struct rlimit rl;
    if (getrlimit(resource, &rl) != 0) {
        return -2;
    }
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur;
}

static int report(eddy_env_t *env)
{
    /* Descriptors: 0, 1, 2, the inspector's private copy of stdout, and
     * the one this listing uses. */
    int nfds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            nfds += e->d_name[0] != '.';
        }
        closedir(d);
    }
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    char c;
    ssize_t in = read(0, &c, 1);
    return eddy_env_fail(
        env,
        "core=%lld cpu=%lld as=%lld fds=%d usr1=%s mask=%s stdin=%s "
        "pgrp=%s",
        lim(RLIMIT_CORE), lim(RLIMIT_CPU), lim(RLIMIT_AS), nfds,
        sa.sa_handler == SIG_DFL ? "default" : "changed",
        sigismember(&mask, SIGUSR2) ? "blocked" : "empty",
        in == 0 ? "eof" : "data", getpgrp() == getpid() ? "own" : "shared");
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    if (argc < 1) {
        return eddy_env_fail(env, "usage: inspect_modes.so -- MODE [ARG]");
    }
    const char *mode = argv[0];
    const char *arg = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "fail") == 0) {
        return eddy_env_fail(env, "fail: the table '%s' is missing", "orders");
    } else if (strcmp(mode, "fail-dirty") == 0) {
        return eddy_env_fail(env, "first line\nsecond \xff line");
    } else if (strcmp(mode, "crash") == 0) {
        fprintf(stderr, "crash: about to dereference NULL\n");
        crash();
    } else if (strcmp(mode, "loop") == 0) {
        spin();
    } else if (strcmp(mode, "exit") == 0) {
        printf("exit: leaving with status %s\n", arg);
        exit(atoi(arg));
    } else if (strcmp(mode, "noisy") == 0) {
        return noisy(env);
    } else if (strcmp(mode, "no-source") == 0) {
        return 0;
    } else if (strcmp(mode, "bad-name") == 0) {
        eddy_name(eddy_source_generator(env, 10, 0, gen, NULL), "caf\xe9");
        return 0;
    } else if (strcmp(mode, "hog") == 0) {
        return hog(env);
    } else if (strcmp(mode, "spawn-loop") == 0) {
        spawn(arg);
        spin();
    } else if (strcmp(mode, "spawn-ok") == 0) {
        spawn(arg);
        return valid_graph(env);
    } else if (strcmp(mode, "report") == 0) {
        return report(env);
    }
    return eddy_env_fail(env, "inspect_modes: unknown mode '%s'", mode);
}

EDDY_JOB("inspect-modes", build)
