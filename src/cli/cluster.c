/*
 * eddy — `eddy cluster start|stop`: a local cluster in the background
 * (DESIGN.md §2, §8).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. `start` runs this same binary (/proc/self/exe) as one
 * `eddy jobmanager` and N `eddy taskmanager` processes, each in its own
 * session (setsid, so a closed terminal or a Ctrl-C in it does not reach
 * them), with stdin from /dev/null and stdout and stderr appended to
 * <data dir>/log/<name>.log (the previous run's log is kept as .log.1).
 * The TaskManagers' stdout is where their print sinks write. Each process
 * gets <data dir>/run/<name>.pid. `start` returns once the JobManager
 * answers GET / and all N TaskManagers are registered, so the next
 * command can submit at once; if anything fails on the way, it prints
 * the end of the failed process's log, stops what it started and exits 1,
 * leaving no half cluster behind; so does a Ctrl-C while it waits.
 *
 * Every process gets the resolved data dir, ports and slots as flags, plus
 * the user's --config and -D, so the processes agree with what `start`
 * checked and printed whatever their own environment says. They share the
 * data dir: the JobManager keeps jobs, checkpoints and savepoints there and
 * each TaskManager works in <data dir>/<its id>.
 *
 * `stop` trusts a pid file only if /proc/<pid>/cmdline is `eddy
 * jobmanager|taskmanager ... --data-dir <this data dir>`, so a stale pid
 * file whose number the kernel has given to another process never gets
 * that process killed. It stops the JobManager first and then the
 * TaskManagers: a JobManager that goes first records nothing about the
 * tasks that end afterwards, so a JobManager restarted on the same data
 * dir resumes the jobs that were running. Each gets SIGTERM and --timeout
 * (10 s) to exit, then SIGKILL.
 *
 * THREADS. The CLI's main thread. Between fork and exec the child calls
 * only async-signal-safe functions; everything it needs is prepared
 * before the fork.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/storage.h"
#include "cli/commands.h"
#include "common/settings.h"
#include "rest/client.h"
#include "runtime/config.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define MAX_TASKMANAGERS 256
#define START_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS 10000
#define LOG_TAIL_LINES 10

const char *const eddy__cli_cluster_usage =
    "usage: eddy cluster start [--taskmanagers N] [--slots N] [--data-dir "
    "DIR]\n"
    "                          [--rest-port P] [--rpc-port P] [--config "
    "FILE]\n"
    "                          [--timeout DURATION] [-D KEY=VALUE]...\n"
    "       eddy cluster stop  [--data-dir DIR] [--config FILE] [--timeout "
    "DURATION]\n"
    "\n"
    "start runs a JobManager and N TaskManagers on this machine in the\n"
    "background, waits until the TaskManagers have registered, and prints\n"
    "the REST address. Logs go to DIR/log/jobmanager.log and\n"
    "DIR/log/taskmanager-<i>.log (a TaskManager's log also holds what its\n"
    "print sinks write), pid files to DIR/run. It refuses to start while a\n"
    "cluster of the same data dir runs, or when a port is taken.\n"
    "\n"
    "stop sends SIGTERM to the JobManager and then to the TaskManagers of\n"
    "DIR/run/*.pid, waits for each to exit (SIGKILL after --timeout), and\n"
    "removes the pid files. With no cluster running it says so and exits 0.\n"
    "\n"
    "Options:\n"
    "  --taskmanagers N   TaskManagers to start (default 1)\n"
    "  --slots N          slots per TaskManager (taskmanager.slots, default "
    "4)\n"
    "  --data-dir DIR     the cluster's files (data.dir, default /tmp/eddy)\n"
    "  --rest-port P      REST API port (rest.port, default 8081)\n"
    "  --rpc-port P       TaskManager port (rpc.port, default 6123)\n"
    "  --config FILE      an eddy.yaml for every process (and for the keys\n"
    "                     above); EDDY_* variables apply too\n"
    "  -D KEY=VALUE       a configuration key for every process\n"
    "  --timeout DURATION start: how long to wait for the cluster (default\n"
    "                     30s); stop: for each process to exit (default "
    "10s)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 success, 1 the cluster could not be started or stopped,\n"
    "2 bad usage.\n"
    "\n"
    "Example:\n"
    "  eddy cluster start --taskmanagers 2\n"
    "  eddy run build/examples/word_count.so -p 2 -- $PWD/input.txt\n"
    "  eddy cluster stop\n";

/* What both subcommands parsed and resolved. */
typedef struct cluster {
    const char *cl_cmd; /* "cluster start", for messages */
    bool cl_start;
    eddy__settings_t *cl_st;
    char cl_dir[PATH_MAX]; /* data dir, absolute */
    char cl_run[PATH_MAX]; /* <dir>/run */
    char cl_logdir[PATH_MAX];
    char cl_config[PATH_MAX]; /* --config, absolute; "" if none */
    char cl_exe[PATH_MAX];
    int cl_ntms;
    int64_t cl_timeout_ms;
    const char **cl_defs; /* the -D KEY=VALUE arguments, passed on */
    int cl_ndefs;
} cluster_t;

/* A process of the cluster, from its pid file or as just started. */
typedef struct member {
    char mb_name[64]; /* "jobmanager", "taskmanager-2" */
    pid_t mb_pid;
    bool mb_child; /* started by this process (waitpid works) */
    bool mb_gone;
} member_t;

static int fail(const cluster_t *cl, const char *fmt, ...)
    EDDY_PRINTF_LIKE(2, 3);
static int usage_error(const char *fmt, ...) EDDY_PRINTF_LIKE(1, 2);

static int fail(const cluster_t *cl, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "eddy %s: %s\n", cl->cl_cmd, msg);
    return EXIT_FAILED;
}

static int usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "eddy cluster: %s (see 'eddy cluster --help')\n", msg);
    return EXIT_USAGE;
}

/* SIGINT/SIGTERM during `start`: stop waiting and roll back. */
static volatile sig_atomic_t g_interrupted;

static void on_interrupt(int sig)
{
    EDDY_UNUSED(sig);
    g_interrupted = 1;
}

static int64_t now_ms(void)
{
    return (int64_t)(eddy__now_ns() / 1000000u);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *absolute(const char *path, char *buf, size_t size)
{
    char cwd[PATH_MAX];
    if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL) {
        return eddy__fmt(buf, size, "%s", path);
    }
    return eddy__fmt(buf, size, "%s/%s", cwd, path);
}

/* ---- command line ---- */

static void cluster_close(cluster_t *cl)
{
    eddy__settings_destroy(cl->cl_st);
    free(cl->cl_defs);
}

/*
 * Parses the flags after `start` or `stop` and loads the settings they
 * name. @returns -1 to go on, else the exit status.
 */
static int cluster_parse(cluster_t *cl, int argc, char **argv)
{
    static const struct {
        const char *f_flag;
        const char *f_key; /* NULL: handled here */
        bool f_start_only;
    } flags[] = {
        {"--taskmanagers", NULL, true},
        {"--slots", "taskmanager.slots", true},
        {"--data-dir", "data.dir", false},
        {"--rest-port", "rest.port", true},
        {"--rpc-port", "rpc.port", true},
        {"--config", NULL, false},
        {"--timeout", NULL, false},
    };
    eddy__setting_kv_t *kv = eddy__calloc((size_t)argc + 1, sizeof(*kv));
    char **owned = eddy__calloc((size_t)argc + 1, sizeof(char *));
    size_t nkv = 0, nowned = 0;
    const char *config = NULL, *timeout = NULL, *ntms = NULL;
    int status = -1;
    cl->cl_defs = eddy__calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc && status < 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(eddy__cli_cluster_usage, stdout);
            status = 0;
            break;
        }
        if (strncmp(a, "-D", 2) == 0) {
            const char *def = a[2] != '\0'   ? a + 2
                              : i + 1 < argc ? argv[++i]
                                             : NULL;
            const char *eq = def != NULL ? strchr(def, '=') : NULL;
            if (eq == NULL || eq == def) {
                status = usage_error("-D needs KEY=VALUE");
                break;
            }
            char *k = eddy__strdup(def);
            k[eq - def] = '\0';
            owned[nowned++] = k;
            kv[nkv++] = (eddy__setting_kv_t){k, k + (eq - def) + 1, NULL};
            cl->cl_defs[cl->cl_ndefs++] = def;
            continue;
        }
        const char *eqs = strchr(a, '=');
        size_t n = eqs != NULL ? (size_t)(eqs - a) : strlen(a);
        size_t f = 0;
        while (f < EDDY_ARRAY_SIZE(flags) &&
               !(strlen(flags[f].f_flag) == n &&
                 strncmp(a, flags[f].f_flag, n) == 0)) {
            f++;
        }
        if (f == EDDY_ARRAY_SIZE(flags) ||
            (flags[f].f_start_only && !cl->cl_start)) {
            status = a[0] == '-' ? usage_error("%s: unknown option '%.*s'",
                                               cl->cl_start ? "start" : "stop",
                                               (int)n, a)
                                 : usage_error("unexpected argument '%s'", a);
            break;
        }
        const char *v = eqs != NULL ? eqs + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (v == NULL || v[0] == '\0') {
            status = usage_error("%s needs a value", flags[f].f_flag);
            break;
        }
        if (flags[f].f_key != NULL) {
            kv[nkv++] =
                (eddy__setting_kv_t){flags[f].f_key, v, flags[f].f_flag};
        } else if (strcmp(flags[f].f_flag, "--taskmanagers") == 0) {
            ntms = v;
        } else if (strcmp(flags[f].f_flag, "--config") == 0) {
            config = v;
        } else {
            timeout = v;
        }
    }
    cl->cl_ntms = 1;
    if (status < 0 && ntms != NULL) {
        char *end;
        errno = 0;
        long v = strtol(ntms, &end, 10);
        if (*end != '\0' || errno != 0 || v < 1 || v > MAX_TASKMANAGERS) {
            status = usage_error("--taskmanagers must be an integer from 1 "
                                 "to %d, got '%s'",
                                 MAX_TASKMANAGERS, ntms);
        }
        cl->cl_ntms = (int)v;
    }
    cl->cl_timeout_ms = cl->cl_start ? START_TIMEOUT_MS : STOP_TIMEOUT_MS;
    if (status < 0 && timeout != NULL &&
        (eddy__parse_duration_ms(timeout, &cl->cl_timeout_ms) != 0 ||
         cl->cl_timeout_ms <= 0)) {
        status = usage_error("--timeout must be a positive duration (10s, "
                             "1m), got '%s'",
                             timeout);
    }
    if (status < 0) {
        eddy_error_t err = {0};
        cl->cl_st = eddy__settings_new();
        if (eddy__settings_load(cl->cl_st, config, NULL, kv, nkv, &err) != 0) {
            fprintf(stderr, "eddy %s: %s\n", cl->cl_cmd, err.msg);
            status = EXIT_USAGE;
        }
    }
    if (status < 0) {
        absolute(eddy__settings_get_str(cl->cl_st, "data.dir"), cl->cl_dir,
                 sizeof(cl->cl_dir));
        eddy__fmt(cl->cl_run, sizeof(cl->cl_run), "%s/run", cl->cl_dir);
        eddy__fmt(cl->cl_logdir, sizeof(cl->cl_logdir), "%s/log", cl->cl_dir);
        if (config != NULL) {
            absolute(config, cl->cl_config, sizeof(cl->cl_config));
        }
    }
    for (size_t i = 0; i < nowned; i++) {
        free(owned[i]);
    }
    free(owned);
    free(kv);
    return status;
}

/* ---- processes and pid files ---- */

/* True while `pid` runs (a zombie has ended; an init that does not reap
 * leaves those around). */
static bool alive(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno != EPERM) {
        return false;
    }
    char path[64], buf[512];
    eddy__fmt(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren == NULL || paren[1] != ' ' || paren[2] != 'Z';
}

/* True if `pid` is this data dir's `eddy jobmanager` or `eddy taskmanager`
 * (see DESIGN above). */
static bool is_member(const cluster_t *cl, pid_t pid)
{
    char path[64];
    static char buf[65536];
    eddy__fmt(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    const char *args[64];
    int nargs = 0;
    for (ssize_t i = 0; i < n && nargs < 64;
         i += (ssize_t)strlen(buf + i) + 1) {
        args[nargs++] = buf + i;
    }
    if (nargs < 2 || (strcmp(args[1], "jobmanager") != 0 &&
                      strcmp(args[1], "taskmanager") != 0)) {
        return false;
    }
    for (int i = 2; i + 1 < nargs; i++) {
        if (strcmp(args[i], "--data-dir") == 0 &&
            strcmp(args[i + 1], cl->cl_dir) == 0) {
            return alive(pid);
        }
    }
    return false;
}

static void pid_path(const cluster_t *cl, const char *name, char *buf,
                     size_t size)
{
    eddy__fmt(buf, size, "%s/%s.pid", cl->cl_run, name);
}

/* Writes the pid file whole or not at all (a rename). */
static int write_pid(const cluster_t *cl, const member_t *m)
{
    char path[PATH_MAX + 64], tmp[PATH_MAX + 80];
    pid_path(cl, m->mb_name, path, sizeof(path));
    eddy__fmt(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    int ok = fprintf(f, "%d\n", (int)m->mb_pid) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    const member_t *x = a, *y = b;
    bool jx = strcmp(x->mb_name, "jobmanager") == 0;
    bool jy = strcmp(y->mb_name, "jobmanager") == 0;
    if (jx != jy) {
        return jx ? -1 : 1;
    }
    /* taskmanager-2 before taskmanager-10 */
    size_t lx = strlen(x->mb_name), ly = strlen(y->mb_name);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x->mb_name, y->mb_name);
}

/*
 * Reads the pid files in <run>: the processes of this cluster that still run,
 * the JobManager first. A pid file of a process that has ended, or whose pid
 * now belongs to another process, is removed and reported on stdout when
 * `say_stale`.
 */
static int read_members(const cluster_t *cl, bool say_stale, member_t **out,
                        int *nout)
{
    *out = NULL;
    *nout = 0;
    DIR *d = opendir(cl->cl_run);
    if (d == NULL) {
        return errno == ENOENT ? 0 : -1;
    }
    member_t *ms = NULL;
    size_t cap = 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || len - 4 >= sizeof(ms->mb_name) ||
            strcmp(e->d_name + len - 4, ".pid") != 0) {
            continue;
        }
        char path[PATH_MAX + 300];
        eddy__fmt(path, sizeof(path), "%s/%s", cl->cl_run, e->d_name);
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f != NULL) {
            if (fscanf(f, "%d", &pid) != 1) {
                pid = 0;
            }
            fclose(f);
        }
        if (pid <= 1 || !is_member(cl, (pid_t)pid)) {
            unlink(path);
            if (say_stale) {
                char why[96];
                if (pid <= 1) {
                    eddy__fmt(why, sizeof(why), "it holds no valid pid");
                } else if (alive((pid_t)pid)) {
                    eddy__fmt(why, sizeof(why),
                              "pid %d now belongs to another process", pid);
                } else {
                    eddy__fmt(why, sizeof(why), "process %d is not running",
                              pid);
                }
                printf("removed the stale pid file %s (%s)\n", path, why);
            }
            continue;
        }
        eddy__grow((void **)&ms, &cap, (size_t)n + 1, sizeof(*ms));
        memset(&ms[n], 0, sizeof(ms[n]));
        eddy__fmt(ms[n].mb_name, sizeof(ms[n].mb_name), "%.*s", (int)(len - 4),
                  e->d_name);
        ms[n].mb_pid = (pid_t)pid;
        n++;
    }
    closedir(d);
    if (n > 1) {
        qsort(ms, (size_t)n, sizeof(*ms), by_name);
    }
    *out = ms;
    *nout = n;
    return 0;
}

/* True once the member has exited (reaped, if it is our child). */
static bool member_gone(member_t *m, int *wstatus)
{
    if (m->mb_gone) {
        return true;
    }
    if (m->mb_child) {
        int ws = 0;
        pid_t r = waitpid(m->mb_pid, &ws, WNOHANG);
        if (r == m->mb_pid || (r < 0 && errno == ECHILD)) {
            m->mb_gone = true;
            if (wstatus != NULL) {
                *wstatus = ws;
            }
        }
    } else {
        m->mb_gone = !alive(m->mb_pid);
    }
    return m->mb_gone;
}

/* SIGTERM, up to `timeout_ms` to exit, then SIGKILL. Returns 0 if it
 * exited on SIGTERM, 1 if it had to be killed, -1 if it could not be. */
static int terminate(member_t *m, int64_t timeout_ms)
{
    if (member_gone(m, NULL)) {
        return 0;
    }
    if (kill(m->mb_pid, SIGTERM) != 0 && errno != ESRCH) {
        return -1;
    }
    int64_t deadline = now_ms() + timeout_ms;
    while (!member_gone(m, NULL) && now_ms() < deadline) {
        sleep_ms(20);
    }
    if (m->mb_gone) {
        return 0;
    }
    kill(m->mb_pid, SIGKILL);
    deadline = now_ms() + 5000;
    while (!member_gone(m, NULL) && now_ms() < deadline) {
        sleep_ms(20);
    }
    return m->mb_gone ? 1 : -1;
}

/* ---- start ---- */

/* Port `port` is free if we can bind it (as the daemons will: any
 * address, SO_REUSEADDR, so a port in TIME_WAIT counts as free). */
static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return true; /* the daemon will say what is wrong */
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
              errno != EADDRINUSE;
    close(fd);
    return ok;
}

static void log_path(const cluster_t *cl, const char *name, char *buf,
                     size_t size)
{
    eddy__fmt(buf, size, "%s/%s.log", cl->cl_logdir, name);
}

/* Prints the last lines of the member's log on stderr, indented. */
static void print_log_tail(const cluster_t *cl, const char *name)
{
    char path[PATH_MAX + 64];
    log_path(cl, name, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    char buf[4097];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > 4096 ? size - 4096 : 0;
    ssize_t n = pread(fd, buf, (size_t)(size - from), from);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "  (%s is empty)\n", path);
        return;
    }
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n') {
        buf[--n] = '\0';
    }
    int lines = 0;
    const char *p = buf + n;
    while (p > buf && lines < LOG_TAIL_LINES) {
        p--;
        if (*p == '\n') {
            lines++;
        }
    }
    if (*p == '\n') {
        p++;
    }
    fprintf(stderr, "  the end of %s:\n", path);
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        int len = nl != NULL ? (int)(nl - p) : (int)strlen(p);
        fprintf(stderr, "    %.*s\n", len, p);
        p += len + (nl != NULL);
    }
}

/*
 * Starts `argv` (argv[0] is the eddy binary) in the background as
 * described in DESIGN. Returns the pid, or -1 with `err` set.
 */
static pid_t spawn(const cluster_t *cl, const char *name, char *const argv[],
                   eddy_error_t *err)
{
    char path[PATH_MAX + 64], old[PATH_MAX + 80];
    log_path(cl, name, path, sizeof(path));
    eddy__fmt(old, sizeof(old), "%s.1", path);
    rename(path, old); /* keep one previous log; none is fine */
    int logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pfd[2] = {-1, -1};
    pid_t pid = -1;
    if (logfd < 0 || nullfd < 0 || pipe2(pfd, O_CLOEXEC) != 0) {
        eddy_error_set(err, EDDY_ERR_IO, "cannot open %s: %s", path,
                       strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        eddy_error_set(err, EDDY_ERR_IO, "cannot start %s: %s", name,
                       strerror(errno));
        goto out;
    }
    if (pid == 0) {
        /* The child: async-signal-safe calls only. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setsid();
        dup2(nullfd, STDIN_FILENO);
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        /* Nothing else we hold (sockets, the caller's pipes) may leak into
         * a daemon that outlives us. */
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            for (int fd = 3; fd < 4096; fd++) {
                if (fd != pfd[1]) {
                    close(fd);
                }
            }
        }
        execv(argv[0], argv);
        int e = errno;
        ssize_t w = write(pfd[1], &e, sizeof(e));
        (void)w;
        _exit(127);
    }
    close(pfd[1]);
    pfd[1] = -1;
    int e = 0;
    ssize_t r;
    while ((r = read(pfd[0], &e, sizeof(e))) < 0 && errno == EINTR) {
    }
    if (r == (ssize_t)sizeof(e)) {
        waitpid(pid, NULL, 0);
        eddy_error_set(err, EDDY_ERR_IO, "cannot run %s: %s", argv[0],
                       strerror(e));
        pid = -1;
    }
out:
    if (logfd >= 0) {
        close(logfd);
    }
    if (nullfd >= 0) {
        close(nullfd);
    }
    if (pfd[0] >= 0) {
        close(pfd[0]);
    }
    if (pfd[1] >= 0) {
        close(pfd[1]);
    }
    return pid;
}

/* The command line of a member: the binary, the command, what `start`
 * resolved, --config and -D as given. The strings live in `store`. */
typedef struct argv_builder {
    char *ab_argv[32 + 2 * 64];
    int ab_n;
    char ab_store[8][PATH_MAX + 64];
    int ab_nstore;
} argv_builder_t;

static void arg_add(argv_builder_t *ab, const char *s)
{
    if (ab->ab_n < (int)EDDY_ARRAY_SIZE(ab->ab_argv) - 1) {
        ab->ab_argv[ab->ab_n++] = (char *)s;
        ab->ab_argv[ab->ab_n] = NULL;
    }
}

static const char *arg_fmt(argv_builder_t *ab, const char *fmt, ...)
    EDDY_PRINTF_LIKE(2, 3);

static const char *arg_fmt(argv_builder_t *ab, const char *fmt, ...)
{
    char *buf = ab->ab_store[ab->ab_nstore++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(ab->ab_store[0]), fmt, ap);
    va_end(ap);
    return buf;
}

static void build_argv(const cluster_t *cl, argv_builder_t *ab,
                       const char *name, bool jobmanager)
{
    memset(ab, 0, sizeof(*ab));
    arg_add(ab, cl->cl_exe);
    arg_add(ab, jobmanager ? "jobmanager" : "taskmanager");
    /* -D first: the resolved flags that follow win over them. */
    for (int i = 0; i < cl->cl_ndefs && i < 64; i++) {
        arg_add(ab, "-D");
        arg_add(ab, cl->cl_defs[i]);
    }
    if (cl->cl_config[0] != '\0') {
        arg_add(ab, "--config");
        arg_add(ab, cl->cl_config);
    }
    const eddy__settings_t *st = cl->cl_st;
    if (jobmanager) {
        arg_add(ab, "--rest-port");
        arg_add(ab, arg_fmt(ab, "%d", eddy__settings_get_int(st, "rest.port")));
        arg_add(ab, "--rpc-port");
        arg_add(ab, arg_fmt(ab, "%d", eddy__settings_get_int(st, "rpc.port")));
    } else {
        arg_add(ab, "--jobmanager");
        arg_add(ab, arg_fmt(ab, "127.0.0.1:%d",
                            eddy__settings_get_int(st, "rpc.port")));
        arg_add(ab, "--slots");
        arg_add(ab, arg_fmt(ab, "%d",
                            eddy__settings_get_int(st, "taskmanager.slots")));
    }
    char lp[PATH_MAX + 64];
    log_path(cl, name, lp, sizeof(lp));
    arg_add(ab, "--log-file");
    arg_add(ab, arg_fmt(ab, "%s", lp));
    /* Last: the identity `stop` checks in /proc/<pid>/cmdline. */
    arg_add(ab, "--data-dir");
    arg_add(ab, cl->cl_dir);
}

/* Starts one member and writes its pid file. */
static int start_member(const cluster_t *cl, member_t *m, const char *name,
                        bool jobmanager)
{
    argv_builder_t ab;
    build_argv(cl, &ab, name, jobmanager);
    eddy_error_t err = {0};
    memset(m, 0, sizeof(*m));
    eddy__fmt(m->mb_name, sizeof(m->mb_name), "%s", name);
    m->mb_pid = spawn(cl, name, ab.ab_argv, &err);
    if (m->mb_pid < 0) {
        m->mb_gone = true;
        return fail(cl, "%s", err.msg);
    }
    m->mb_child = true;
    if (write_pid(cl, m) != 0) {
        return fail(cl, "cannot write the pid file of %s in %s: %s", name,
                    cl->cl_run, strerror(errno));
    }
    return 0;
}

/* Stops what start started (after a failure) and removes the pid files. */
static void roll_back(const cluster_t *cl, member_t *ms, int n)
{
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 64];
        terminate(&ms[i], 5000);
        pid_path(cl, ms[i].mb_name, path, sizeof(path));
        unlink(path);
    }
}

/* How a member that has exited ended, for the error message. */
static const char *how_exited(int ws, char *buf, size_t size)
{
    if (WIFEXITED(ws)) {
        return eddy__fmt(buf, size, "exit status %d", WEXITSTATUS(ws));
    }
    if (WIFSIGNALED(ws)) {
        return eddy__fmt(buf, size, "killed by signal %d", WTERMSIG(ws));
    }
    return eddy__fmt(buf, size, "ended");
}

/*
 * Waits until the JobManager answers (ntms == 0) or `ntms` TaskManagers
 * are registered, while every member runs. Returns 0, or 1 after printing
 * what went wrong.
 */
static int wait_ready(const cluster_t *cl, const char *url, member_t *ms, int n,
                      int ntms, int64_t deadline)
{
    for (;;) {
        for (int i = 0; i < n; i++) {
            int ws = 0;
            char how[64];
            if (member_gone(&ms[i], &ws)) {
                fail(cl, "the %s exited while starting (%s)",
                     i == 0 ? "JobManager" : ms[i].mb_name,
                     how_exited(ws, how, sizeof(how)));
                print_log_tail(cl, ms[i].mb_name);
                return EXIT_FAILED;
            }
        }
        eddy__rest_result_t res;
        eddy_error_t err = {0};
        int active = -1;
        if (eddy__rest_call(url, "GET", ntms == 0 ? "/" : "/cluster/metrics",
                            NULL, 2000, &res, &err) == 0) {
            if (res.rr_status == 200 && json_is_object(res.rr_json)) {
                active = ntms == 0 ? 0
                                   : (int)json_integer_value(json_object_get(
                                         res.rr_json, "active_task_managers"));
            }
            eddy__rest_result_close(&res);
        }
        if (active >= ntms) {
            return 0;
        }
        if (g_interrupted) {
            return fail(cl, "interrupted; stopping what was started");
        }
        if (now_ms() >= deadline) {
            if (ntms == 0) {
                fail(cl, "the JobManager did not answer at %s within %lld s",
                     url, (long long)(cl->cl_timeout_ms / 1000));
                print_log_tail(cl, "jobmanager");
            } else {
                fail(cl,
                     "%d of %d TaskManagers registered within %lld s; see "
                     "their logs in %s",
                     active < 0 ? 0 : active, ntms,
                     (long long)(cl->cl_timeout_ms / 1000), cl->cl_logdir);
                print_log_tail(cl, ms[n - 1].mb_name);
            }
            return EXIT_FAILED;
        }
        sleep_ms(100);
    }
}

static int cluster_start(cluster_t *cl)
{
    const eddy__settings_t *st = cl->cl_st;
    int rest_port = eddy__settings_get_int(st, "rest.port");
    int rpc_port = eddy__settings_get_int(st, "rpc.port");
    int slots = eddy__settings_get_int(st, "taskmanager.slots");
    bool custom_dir =
        eddy__settings_layer(st, "data.dir") != EDDY__LAYER_DEFAULT;
    char hint[PATH_MAX + 32] = "";
    if (custom_dir) {
        eddy__fmt(hint, sizeof(hint), " --data-dir %s", cl->cl_dir);
    }
    ssize_t len =
        readlink("/proc/self/exe", cl->cl_exe, sizeof(cl->cl_exe) - 1);
    if (len <= 0) {
        return fail(cl, "cannot find the eddy binary (/proc/self/exe): %s",
                    strerror(errno));
    }
    cl->cl_exe[len] = '\0';
    if (eddy__mkdirs(cl->cl_run, NULL) != 0 ||
        eddy__mkdirs(cl->cl_logdir, NULL) != 0) {
        return fail(cl, "cannot create %s: %s", cl->cl_dir, strerror(errno));
    }
    member_t *old = NULL;
    int nold = 0;
    if (read_members(cl, false, &old, &nold) != 0) {
        return fail(cl, "cannot read %s: %s", cl->cl_run, strerror(errno));
    }
    if (nold > 0) {
        fail(cl,
             "a cluster is already running (%s pid %d); stop it with 'eddy "
             "cluster stop%s'",
             old[0].mb_name, (int)old[0].mb_pid, hint);
        free(old);
        return EXIT_FAILED;
    }
    free(old);
    const int ports[2] = {rest_port, rpc_port};
    const char *const keys[2] = {"rest", "rpc"};
    for (int i = 0; i < 2; i++) {
        if (!port_free(ports[i])) {
            return fail(cl,
                        "port %d (%s.port) is in use, by another JobManager "
                        "or program; choose another with --%s-port",
                        ports[i], keys[i], keys[i]);
        }
    }

    char url[64];
    eddy__fmt(url, sizeof(url), "http://127.0.0.1:%d", rest_port);
    int n = 1 + cl->cl_ntms;
    member_t *ms = eddy__calloc((size_t)n, sizeof(*ms));
    int started = 0;
    int status = 0;
    int64_t deadline = now_ms() + cl->cl_timeout_ms;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    /* The JobManager first: TaskManagers would only retry until it
     * listens, and its failure (a bad key, a taken port) is the likelier
     * one to report. */
    status = start_member(cl, &ms[0], "jobmanager", true);
    started += !ms[0].mb_gone;
    if (status == 0) {
        status = wait_ready(cl, url, ms, started, 0, deadline);
    }
    for (int i = 1; i < n && status == 0; i++) {
        char name[32];
        eddy__fmt(name, sizeof(name), "taskmanager-%d", i);
        status = start_member(cl, &ms[i], name, false);
        started += !ms[i].mb_gone;
    }
    if (status == 0) {
        status = wait_ready(cl, url, ms, started, cl->cl_ntms, deadline);
    }
    if (status != 0) {
        roll_back(cl, ms, started);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (status != 0) {
        free(ms);
        return status;
    }
    printf("started a JobManager (pid %d) and %d TaskManager%s (pid%s",
           (int)ms[0].mb_pid, cl->cl_ntms, cl->cl_ntms == 1 ? "" : "s",
           cl->cl_ntms == 1 ? "" : "s");
    for (int i = 1; i < n; i++) {
        printf("%s%d", i == 1 ? " " : ", ", (int)ms[i].mb_pid);
    }
    printf(") with %d slot%s each\n", slots, slots == 1 ? "" : "s");
    printf("REST API: %s\n", url);
    printf("logs in %s, pid files in %s\n", cl->cl_logdir, cl->cl_run);
    printf("submit a job: eddy run JOB.so%s%s [-- ARGS]\n",
           rest_port != 8081 ? " --jobmanager " : "",
           rest_port != 8081 ? url : "");
    printf("stop the cluster: eddy cluster stop%s\n", hint);
    free(ms);
    return 0;
}

/* ---- stop ---- */

static int cluster_stop(cluster_t *cl)
{
    member_t *ms = NULL;
    int n = 0;
    if (read_members(cl, true, &ms, &n) != 0) {
        return fail(cl, "cannot read %s: %s", cl->cl_run, strerror(errno));
    }
    if (n == 0) {
        printf("no cluster is running (no live process in %s)\n", cl->cl_run);
        free(ms);
        return 0;
    }
    int status = 0;
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX + 64];
        int64_t t0 = now_ms();
        int r = terminate(&ms[i], cl->cl_timeout_ms);
        pid_path(cl, ms[i].mb_name, path, sizeof(path));
        if (r < 0) {
            status = fail(cl, "cannot stop %s (pid %d): %s", ms[i].mb_name,
                          (int)ms[i].mb_pid, strerror(errno));
            continue;
        }
        unlink(path);
        if (r == 0) {
            printf("stopped %s (pid %d)\n", ms[i].mb_name, (int)ms[i].mb_pid);
        } else {
            printf("killed %s (pid %d): it did not exit within %.1f s of "
                   "SIGTERM\n",
                   ms[i].mb_name, (int)ms[i].mb_pid,
                   (double)(now_ms() - t0) / 1000.0);
        }
        fflush(stdout);
    }
    free(ms);
    return status;
}

int eddy__cli_cluster(int argc, char **argv)
{
    if (argc < 1) {
        return usage_error("missing the subcommand: start or stop");
    }
    const char *sub = argv[0];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        fputs(eddy__cli_cluster_usage, stdout);
        return 0;
    }
    cluster_t cl;
    memset(&cl, 0, sizeof(cl));
    if (strcmp(sub, "start") == 0) {
        cl.cl_cmd = "cluster start";
        cl.cl_start = true;
    } else if (strcmp(sub, "stop") == 0) {
        cl.cl_cmd = "cluster stop";
    } else {
        return usage_error("unknown subcommand '%s' (start or stop)", sub);
    }
    int status = cluster_parse(&cl, argc - 1, argv + 1);
    if (status < 0) {
        status = cl.cl_start ? cluster_start(&cl) : cluster_stop(&cl);
    }
    cluster_close(&cl);
    return status;
}
