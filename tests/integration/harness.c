/*
 * eddy — integration test harness (see harness.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#define DUMP_LIMIT 4000 /* bytes of each stream shown on failure */

double integ_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double integ_timeout(double base_seconds)
{
    const char *m = getenv("EDDY_TEST_TIMEOUT_MULTIPLIER");
    double mult = m != NULL ? strtod(m, NULL) : 1.0;
    if (!(mult >= 1.0)) {
        mult = 1.0;
    }
    return base_seconds * mult;
}

static void die(const char *what)
{
    print_error("integration harness: %s: %s\n", what, strerror(errno));
    fail();
}

static bool env_overridden(const char *entry, const char *const env_set[])
{
    const char *eq = strchr(entry, '=');
    size_t n = eq != NULL ? (size_t)(eq - entry) : strlen(entry);
    for (size_t i = 0; env_set != NULL && env_set[i] != NULL; i++) {
        if (strncmp(env_set[i], entry, n) == 0 && env_set[i][n] == '=') {
            return true;
        }
    }
    return false;
}

/* The environment of the child: ours, with env_set replacing or adding. */
static char **child_env(const char *const env_set[])
{
    size_t n = 0, k = 0, extra = 0;
    while (environ[n] != NULL) {
        n++;
    }
    while (env_set != NULL && env_set[extra] != NULL) {
        extra++;
    }
    char **envp = calloc(n + extra + 1, sizeof(char *));
    if (envp == NULL) {
        die("calloc");
    }
    for (size_t i = 0; i < n; i++) {
        if (!env_overridden(environ[i], env_set)) {
            envp[k++] = environ[i];
        }
    }
    for (size_t i = 0; i < extra; i++) {
        envp[k++] = (char *)env_set[i];
    }
    envp[k] = NULL;
    return envp;
}

static char *join_argv(const char *const argv[])
{
    size_t len = 1;
    for (size_t i = 0; argv[i] != NULL; i++) {
        len += strlen(argv[i]) + 3;
    }
    char *s = calloc(1, len);
    if (s == NULL) {
        die("calloc");
    }
    for (size_t i = 0; argv[i] != NULL; i++) {
        bool quote = argv[i][0] == '\0' || strchr(argv[i], ' ') != NULL;
        if (i > 0) {
            strcat(s, " ");
        }
        if (quote) {
            strcat(s, "'");
        }
        strcat(s, argv[i]);
        if (quote) {
            strcat(s, "'");
        }
    }
    return s;
}

integ_proc_t *integ_spawn(const char *const argv[], const char *const env_set[])
{
    return integ_spawn_input(argv, env_set, NULL, 0);
}

integ_proc_t *integ_spawn_input(const char *const argv[],
                                const char *const env_set[], const void *data,
                                size_t len)
{
    int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1};
    integ_proc_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        die("calloc");
    }
    p->pr_out_cap = p->pr_err_cap = 4096;
    p->pr_out = calloc(1, p->pr_out_cap + 1);
    p->pr_err = calloc(1, p->pr_err_cap + 1);
    if (p->pr_out == NULL || p->pr_err == NULL) {
        die("calloc");
    }
    p->pr_cmd = join_argv(argv);
    p->pr_exit = -1;
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        die("pipe2");
    }
    if (data != NULL) {
        /* The whole input waits in the pipe, so writing cannot block. */
        assert_true(len <= 65536);
        if (pipe2(in, O_CLOEXEC) != 0) {
            die("pipe2");
        }
        if (len > 0 && write(in[1], data, len) != (ssize_t)len) {
            die("write");
        }
        close(in[1]);
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, deflt;
    posix_spawn_file_actions_init(&fa);
    if (data != NULL) {
        posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    } else {
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
                                         O_RDONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
    /* The child starts with default dispositions and nothing blocked, as it
     * would from a shell, whatever the test runner did to us. */
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGINT);
    sigaddset(&deflt, SIGTERM);
    sigaddset(&deflt, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &deflt);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    char **envp = child_env(env_set);
    p->pr_start = integ_now();
    int rc = posix_spawn(&p->pr_pid, argv[0], &fa, &attr, (char **)argv, envp);
    free(envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(out[1]);
    close(err[1]);
    if (in[0] >= 0) {
        close(in[0]);
    }
    if (rc != 0) {
        errno = rc;
        print_error("cannot start %s\n", p->pr_cmd);
        die("posix_spawn");
    }
    p->pr_out_fd = out[0];
    p->pr_err_fd = err[0];
    fcntl(p->pr_out_fd, F_SETFL, O_NONBLOCK);
    fcntl(p->pr_err_fd, F_SETFL, O_NONBLOCK);
    return p;
}

/* Reads what is available on *fd into the buffer; closes it at EOF. */
static void drain(int *fd, char **buf, size_t *len, size_t *cap)
{
    for (;;) {
        if (*cap - *len < 4096) {
            size_t ncap = *cap * 2;
            char *nb = realloc(*buf, ncap + 1);
            if (nb == NULL) {
                die("realloc");
            }
            *buf = nb;
            *cap = ncap;
        }
        ssize_t n = read(*fd, *buf + *len, *cap - *len);
        if (n > 0) {
            *len += (size_t)n;
            (*buf)[*len] = '\0';
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        close(*fd);
        *fd = -1;
        return;
    }
}

/* Waits up to `ms` for output and reads it. Returns false if both pipes are
 * closed (nothing more can come). */
static bool pump(integ_proc_t *p, int ms)
{
    struct pollfd fds[2];
    int n = 0;
    if (p->pr_out_fd >= 0) {
        fds[n++] = (struct pollfd){.fd = p->pr_out_fd, .events = POLLIN};
    }
    if (p->pr_err_fd >= 0) {
        fds[n++] = (struct pollfd){.fd = p->pr_err_fd, .events = POLLIN};
    }
    if (n == 0) {
        return false;
    }
    int rc = poll(fds, (nfds_t)n, ms < 0 ? 0 : ms);
    if (rc < 0 && errno != EINTR) {
        die("poll");
    }
    if (p->pr_out_fd >= 0) {
        drain(&p->pr_out_fd, &p->pr_out, &p->pr_out_len, &p->pr_out_cap);
    }
    if (p->pr_err_fd >= 0) {
        drain(&p->pr_err_fd, &p->pr_err, &p->pr_err_len, &p->pr_err_cap);
    }
    return true;
}

static int ms_until(double deadline)
{
    double left = deadline - integ_now();
    if (left <= 0) {
        return 0;
    }
    if (left > 1000.0) {
        left = 1000.0;
    }
    return (int)(left * 1000.0) + 1;
}

bool integ_wait_stdout_lines(integ_proc_t *p, size_t lines, double timeout)
{
    double deadline = integ_now() + timeout;
    while (integ_count_lines(p->pr_out, p->pr_out_len) < lines) {
        if (p->pr_out_fd < 0 || integ_now() >= deadline) {
            return false;
        }
        pump(p, ms_until(deadline));
    }
    return true;
}

static void record_status(integ_proc_t *p, int status)
{
    p->pr_reaped = true;
    p->pr_end = integ_now();
    if (WIFEXITED(status)) {
        p->pr_exit = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        p->pr_signal = WTERMSIG(status);
    }
}

static void kill_and_reap(integ_proc_t *p)
{
    int status;
    kill(p->pr_pid, SIGKILL);
    while (waitpid(p->pr_pid, &status, 0) < 0) {
        if (errno != EINTR) {
            die("waitpid");
        }
    }
    record_status(p, status);
}

void integ_finish(integ_proc_t *p, double timeout)
{
    double deadline = integ_now() + timeout;
    if (p->pr_reaped) {
        return;
    }
    while (integ_now() < deadline && pump(p, ms_until(deadline))) {
    }
    /* Both pipes closed (or out of time): the child is exiting. Poll for its
     * status in short steps until the deadline. */
    for (;;) {
        int status;
        pid_t r = waitpid(p->pr_pid, &status, WNOHANG);
        if (r == p->pr_pid) {
            record_status(p, status);
            break;
        }
        if (r < 0 && errno != EINTR) {
            die("waitpid");
        }
        if (integ_now() >= deadline) {
            p->pr_timed_out = true;
            kill_and_reap(p);
            break;
        }
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Whatever is still buffered in the pipes belongs to the result; the
     * child is gone, so EOF follows at once. */
    deadline = integ_now() + 1.0;
    while (integ_now() < deadline && pump(p, ms_until(deadline))) {
    }
}

void integ_close_stdout(integ_proc_t *p)
{
    if (p->pr_out_fd >= 0) {
        close(p->pr_out_fd);
        p->pr_out_fd = -1;
    }
}

void integ_proc_free(integ_proc_t *p)
{
    if (p == NULL) {
        return;
    }
    if (!p->pr_reaped) {
        kill_and_reap(p);
    }
    if (p->pr_out_fd >= 0) {
        close(p->pr_out_fd);
    }
    if (p->pr_err_fd >= 0) {
        close(p->pr_err_fd);
    }
    free(p->pr_out);
    free(p->pr_err);
    free(p->pr_cmd);
    free(p);
}

integ_proc_t *integ_run(const char *const argv[], const char *const env_set[],
                        double timeout)
{
    integ_proc_t *p = integ_spawn(argv, env_set);
    integ_finish(p, timeout);
    return p;
}

static void dump_stream(const char *name, const char *s, size_t len)
{
    if (len == 0) {
        print_error("  %s: (empty)\n", name);
        return;
    }
    print_error("  %s (%zu bytes%s):\n%.*s%s\n", name, len,
                len > DUMP_LIMIT ? ", truncated" : "",
                (int)(len > DUMP_LIMIT ? DUMP_LIMIT : len), s,
                len > DUMP_LIMIT ? "..." : "");
}

void integ_dump(const integ_proc_t *p)
{
    print_error("  command: %s\n", p->pr_cmd);
    if (!p->pr_reaped) {
        print_error("  still running\n");
    } else if (p->pr_timed_out) {
        print_error("  TIMED OUT after %.1f s (killed)\n",
                    p->pr_end - p->pr_start);
    } else if (p->pr_signal != 0) {
        print_error("  killed by signal %d (%s)\n", p->pr_signal,
                    strsignal(p->pr_signal));
    } else {
        print_error("  exit status %d after %.3f s\n", p->pr_exit,
                    p->pr_end - p->pr_start);
    }
    dump_stream("stdout", p->pr_out, p->pr_out_len);
    dump_stream("stderr", p->pr_err, p->pr_err_len);
}

size_t integ_count_lines(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += s[i] == '\n';
    }
    return n;
}

bool integ_contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

void integ_assert_exit(const integ_proc_t *p, int exit_code)
{
    if (p->pr_reaped && !p->pr_timed_out && p->pr_signal == 0 &&
        p->pr_exit == exit_code) {
        return;
    }
    print_error("expected exit status %d\n", exit_code);
    integ_dump(p);
    fail();
}

void integ_assert_error(const integ_proc_t *p, int exit_code,
                        const char *const phrases[])
{
    integ_assert_exit(p, exit_code);
    if (p->pr_out_len != 0) {
        print_error("expected nothing on stdout\n");
        integ_dump(p);
        fail();
    }
    if (integ_count_lines(p->pr_err, p->pr_err_len) != 1 ||
        p->pr_err[p->pr_err_len - 1] != '\n') {
        print_error("expected exactly one line on stderr\n");
        integ_dump(p);
        fail();
    }
    for (size_t i = 0; phrases != NULL && phrases[i] != NULL; i++) {
        if (!integ_contains(p->pr_err, phrases[i])) {
            print_error("expected stderr to contain \"%s\"\n", phrases[i]);
            integ_dump(p);
            fail();
        }
    }
}

char *integ_tmpdir_new(void)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    char *path = integ_path(base, "eddy-integ-XXXXXX");
    if (mkdtemp(path) == NULL) {
        die("mkdtemp");
    }
    return path;
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void integ_tmpdir_remove(char *path)
{
    if (path == NULL) {
        return;
    }
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

char *integ_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s == NULL) {
        die("malloc");
    }
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

void integ_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        print_error("cannot create %s\n", path);
        die("fopen");
    }
    if ((len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        die("fwrite");
    }
}
