/*
 * eddy — a private PostgreSQL server for tests, and query helpers.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * See pg_util.h. initdb and the postmaster are started with fork + exec
 * rather than `runuser -u postgres` and `pg_ctl start`: the child drops to
 * the postgres user itself and asks for SIGQUIT when its parent dies, which
 * neither runuser (it stays as a parent) nor pg_ctl (it daemonizes the
 * server) would let us do.
 */
#include "pg_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_ATTEMPTS 5

static void setmsg(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void setmsg(char *msg, size_t msglen, const char *fmt, ...)
{
    if (msg == NULL || msglen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

static int timeout_ms(int ms)
{
    const char *m = getenv("EDDY_TEST_TIMEOUT_MULTIPLIER");
    int k = m != NULL ? atoi(m) : 1;
    return ms * (k > 0 ? k : 1);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- servers still running at exit ---- */

typedef struct live {
    pid_t pid;
    char dir[256];
} live_t;

static live_t live_servers[16];
static bool atexit_done;

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Stops a postmaster: SIGINT is PostgreSQL's fast shutdown (roll back open
 * transactions, keep prepared ones, checkpoint, exit). */
static void stop_pid(pid_t pid)
{
    if (pid <= 0) {
        return;
    }
    kill(pid, SIGINT);
    long long deadline = now_ms() + timeout_ms(30000);
    for (;;) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) {
            return;
        }
        if (now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return;
        }
        sleep_ms(5);
    }
}

static void stop_all_at_exit(void)
{
    for (size_t i = 0; i < sizeof(live_servers) / sizeof(live_servers[0]);
         i++) {
        if (live_servers[i].pid > 0) {
            stop_pid(live_servers[i].pid);
            nftw(live_servers[i].dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
            live_servers[i].pid = 0;
        }
    }
}

static void live_add(pid_t pid, const char *dir)
{
    if (!atexit_done) {
        atexit(stop_all_at_exit);
        atexit_done = true;
    }
    for (size_t i = 0; i < sizeof(live_servers) / sizeof(live_servers[0]);
         i++) {
        if (live_servers[i].pid == 0) {
            live_servers[i].pid = pid;
            snprintf(live_servers[i].dir, sizeof(live_servers[i].dir), "%s",
                     dir);
            return;
        }
    }
}

static void live_remove(pid_t pid)
{
    for (size_t i = 0; i < sizeof(live_servers) / sizeof(live_servers[0]);
         i++) {
        if (live_servers[i].pid == pid) {
            live_servers[i].pid = 0;
        }
    }
}

/* ---- finding and running the binaries ---- */

static bool is_server_bindir(const char *dir)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/postgres", dir);
    if (access(p, X_OK) != 0) {
        return false;
    }
    snprintf(p, sizeof(p), "%s/initdb", dir);
    return access(p, X_OK) == 0;
}

/* The highest /usr/lib/postgresql/<N>/bin holding a server. */
static bool find_bindir(char *out, size_t size)
{
    DIR *d = opendir("/usr/lib/postgresql");
    if (d == NULL) {
        return false;
    }
    long best = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end != '\0' || v <= best) {
            continue;
        }
        char dir[64];
        snprintf(dir, sizeof(dir), "/usr/lib/postgresql/%ld/bin", v);
        if (is_server_bindir(dir) && strlen(dir) < size) {
            best = v;
            memcpy(out, dir, strlen(dir) + 1);
        }
    }
    closedir(d);
    return best >= 0;
}

typedef struct runas {
    bool ra_switch; /* running as root: become ra_uid/ra_gid */
    uid_t ra_uid;
    gid_t ra_gid;
} runas_t;

/*
 * Forks and execs argv with stdout and stderr appended to `log`. With
 * `tie`, the child gets SIGQUIT (PostgreSQL's immediate shutdown) when the
 * calling thread dies. Returns the child's pid or -1.
 */
static pid_t spawn(const runas_t *ra, char *const argv[], const char *log,
                   bool tie)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) {
        return pid;
    }
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);
    if (fd < 0 || null < 0) {
        _exit(126);
    }
    dup2(null, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (ra->ra_switch && (setgroups(0, NULL) != 0 || setgid(ra->ra_gid) != 0 ||
                          setuid(ra->ra_uid) != 0)) {
        dprintf(fd, "cannot switch to the postgres user: %s\n",
                strerror(errno));
        _exit(126);
    }
    /* After setuid: a credential change clears the death signal. */
    if (tie && (prctl(PR_SET_PDEATHSIG, SIGQUIT) != 0 || getppid() != parent)) {
        _exit(126);
    }
    execv(argv[0], argv);
    dprintf(fd, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* The last `n` bytes of a file, for error messages. */
static void file_tail(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)n - 1 ? size - ((long)n - 1) : 0;
    fseek(f, from, SEEK_SET);
    size_t k = fread(out, 1, n - 1, f);
    out[k] = '\0';
    fclose(f);
}

/* A port that was free a moment ago (the kernel's pick for port 0). The
 * server may still lose it to someone else: tu_pg_start retries then. */
static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

/* ---- start and stop ---- */

static int run_initdb(tu_pg_t *pg, const runas_t *ra, char *msg, size_t msglen)
{
    char initdb[256], data[320], log[320];
    snprintf(initdb, sizeof(initdb), "%s/initdb", pg->pg_bindir);
    snprintf(data, sizeof(data), "%s/data", pg->pg_dir);
    snprintf(log, sizeof(log), "%s/initdb.log", pg->pg_dir);
    char *argv[] = {initdb,  "-D", data,   "-U",         "postgres",  "-A",
                    "trust", "-E", "UTF8", "--locale=C", "--no-sync", NULL};
    pid_t pid = spawn(ra, argv, log, true);
    if (pid < 0) {
        setmsg(msg, msglen, "fork: %s", strerror(errno));
        return TU_PG_FAIL;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char tail[400];
        file_tail(log, tail, sizeof(tail));
        setmsg(msg, msglen, "initdb failed (status %d): %s", status, tail);
        return TU_PG_FAIL;
    }
    return TU_PG_OK;
}

/* Starts the postmaster on a fresh port; 1 = the port was taken (retry). */
static int run_server(tu_pg_t *pg, const runas_t *ra, int max_prepared,
                      char *msg, size_t msglen)
{
    char postgres[256], data[320], log[320], port[16], mpx[64];
    snprintf(postgres, sizeof(postgres), "%s/postgres", pg->pg_bindir);
    snprintf(data, sizeof(data), "%s/data", pg->pg_dir);
    snprintf(log, sizeof(log), "%s/pg.log", pg->pg_dir);
    pg->pg_port = pick_port();
    if (pg->pg_port < 0) {
        setmsg(msg, msglen, "no free TCP port: %s", strerror(errno));
        return TU_PG_FAIL;
    }
    snprintf(port, sizeof(port), "%d", pg->pg_port);
    snprintf(mpx, sizeof(mpx), "max_prepared_transactions=%d", max_prepared);
    char *argv[] = {postgres,
                    "-D",
                    data,
                    "-p",
                    port,
                    "-k",
                    pg->pg_dir,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "shared_buffers=32MB",
                    "-c",
                    mpx,
                    NULL};
    snprintf(pg->pg_conninfo, sizeof(pg->pg_conninfo),
             "postgresql://postgres@127.0.0.1:%d/postgres", pg->pg_port);
    pid_t pid = spawn(ra, argv, log, true);
    if (pid < 0) {
        setmsg(msg, msglen, "fork: %s", strerror(errno));
        return TU_PG_FAIL;
    }
    long long deadline = now_ms() + timeout_ms(30000);
    for (;;) {
        if (PQping(pg->pg_conninfo) == PQPING_OK) {
            pg->pg_pid = pid;
            live_add(pid, pg->pg_dir);
            return TU_PG_OK;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char tail[600];
            file_tail(log, tail, sizeof(tail));
            if (strstr(tail, "could not bind") != NULL ||
                strstr(tail, "already in use") != NULL) {
                return 1;
            }
            setmsg(msg, msglen, "PostgreSQL server exited (status %d): %s",
                   status, tail);
            return TU_PG_FAIL;
        }
        if (now_ms() >= deadline) {
            stop_pid(pid);
            char tail[600];
            file_tail(log, tail, sizeof(tail));
            setmsg(msg, msglen, "PostgreSQL server not ready after %d ms: %s",
                   timeout_ms(30000), tail);
            return TU_PG_FAIL;
        }
        sleep_ms(10);
    }
}

int tu_pg_start(tu_pg_t *pg, const tu_pg_opts_t *opts, char *msg, size_t msglen)
{
    memset(pg, 0, sizeof(*pg));
    int max_prepared = 64;
    if (opts != NULL && opts->max_prepared_transactions >= 0) {
        max_prepared = opts->max_prepared_transactions;
    }
    const char *env = getenv("EDDY_PG_BINDIR");
    if (env != NULL && env[0] != '\0') {
        /* Set on purpose: a wrong value is an error, not a reason to skip. */
        snprintf(pg->pg_bindir, sizeof(pg->pg_bindir), "%s", env);
        if (!is_server_bindir(pg->pg_bindir)) {
            setmsg(msg, msglen,
                   "EDDY_PG_BINDIR=%s holds no executable postgres and initdb",
                   env);
            return TU_PG_FAIL;
        }
    } else if (!find_bindir(pg->pg_bindir, sizeof(pg->pg_bindir))) {
        setmsg(msg, msglen,
               "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
               "(install the 'postgresql' package, or set EDDY_PG_BINDIR)");
        return TU_PG_SKIP;
    }
    runas_t ra = {0};
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL) {
            setmsg(msg, msglen,
                   "running as root needs the 'postgres' user (initdb "
                   "refuses to run as root)");
            return TU_PG_FAIL;
        }
        ra = (runas_t){true, pw->pw_uid, pw->pw_gid};
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(pg->pg_dir, sizeof(pg->pg_dir), "%s/eddy-pg-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(pg->pg_dir) == NULL) {
        setmsg(msg, msglen, "mkdtemp(%s): %s", pg->pg_dir, strerror(errno));
        pg->pg_dir[0] = '\0';
        return TU_PG_FAIL;
    }
    if (ra.ra_switch && chown(pg->pg_dir, ra.ra_uid, ra.ra_gid) != 0) {
        setmsg(msg, msglen, "chown(%s): %s", pg->pg_dir, strerror(errno));
        tu_pg_stop(pg);
        return TU_PG_FAIL;
    }
    int rc = run_initdb(pg, &ra, msg, msglen);
    if (rc == TU_PG_OK) {
        rc = 1;
        for (int i = 0; rc == 1 && i < START_ATTEMPTS; i++) {
            rc = run_server(pg, &ra, max_prepared, msg, msglen);
        }
        if (rc == 1) {
            setmsg(msg, msglen, "no free TCP port after %d attempts",
                   START_ATTEMPTS);
            rc = TU_PG_FAIL;
        }
    }
    if (rc != TU_PG_OK) {
        tu_pg_stop(pg);
    }
    return rc;
}

void tu_pg_stop(tu_pg_t *pg)
{
    if (pg->pg_pid > 0) {
        stop_pid(pg->pg_pid);
        live_remove(pg->pg_pid);
        pg->pg_pid = 0;
    }
    if (pg->pg_dir[0] != '\0') {
        nftw(pg->pg_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        pg->pg_dir[0] = '\0';
    }
}

/* ---- queries ---- */

/* NOTICEs ("table ... does not exist, skipping") would clutter test
 * output. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_or_msg(const char *conninfo, char *msg, size_t msglen)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        setmsg(msg, msglen, "%s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

int tu_pg_exec(const char *conninfo, const char *sql, char *msg, size_t msglen)
{
    PGconn *c = connect_or_msg(conninfo, msg, msglen);
    if (c == NULL) {
        return -1;
    }
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        setmsg(msg, msglen, "%s", PQresultErrorMessage(r));
        rc = -1;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

char *tu_pg_query(const char *conninfo, const char *sql, char *msg,
                  size_t msglen)
{
    PGconn *c = connect_or_msg(conninfo, msg, msglen);
    if (c == NULL) {
        return NULL;
    }
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        setmsg(msg, msglen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
        return NULL;
    }
    size_t cap = 256, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    int nrows = PQntuples(r), ncols = PQnfields(r);
    for (int i = 0; i < nrows; i++) {
        for (int j = 0; j < ncols; j++) {
            const char *v = PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j);
            size_t need = len + strlen(v) + 2;
            if (need + 1 > cap) {
                while (need + 1 > cap) {
                    cap *= 2;
                }
                out = realloc(out, cap);
            }
            len += (size_t)sprintf(out + len, "%s%c", v,
                                   j + 1 < ncols ? '|' : '\n');
        }
    }
    PQclear(r);
    PQfinish(c);
    return out;
}
