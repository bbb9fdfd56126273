/*
 * eddy — integration: a real cluster of one JobManager and TaskManagers on
 * loopback (issue 5 §10).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Every test starts its own cluster: `eddy jobmanager` and `eddy
 * taskmanager` processes on ports picked free for the run, sharing a
 * private data dir, and talks to it only as a user would, through the REST
 * API (libcurl) and the job's outputs. The daemons' stdout (where print
 * sinks write) and stderr (their logs) go to files in the test's
 * directory, so nothing can block on a full pipe and a failure can show
 * the logs. The tests:
 *
 *   1. word count at parallelism 4 over 3 TaskManagers: tasks on all three,
 *      FINISHED, the TaskManagers' stdout together exactly the expected
 *      running counts (computed here);
 *   2. the exactly-once job reading the dev broker and writing PostgreSQL
 *      and part files; one TaskManager SIGKILLed mid-run: RESTARTING, then
 *      RUNNING on the two left, then FINISHED, with every key's counts
 *      exactly 1..n in both outputs and no prepared transaction left;
 *   3. the JobManager SIGKILLed mid-run and started again on the same data
 *      dir and ports: the TaskManagers re-register, the job resumes and
 *      finishes, outputs exact;
 *   4. a slow sink back-pressures an unthrottled source across the data
 *      plane: the TaskManagers' RSS stays flat, the sink keeps printing,
 *      and the job cancels cleanly;
 *   5. REST hostility (malformed bodies, wrong methods, unknown ids, an
 *      oversized upload, files that are not jobs or crash, path tricks):
 *      each a clean 4xx, and then the cluster still runs a job;
 *   6. a job needing more slots than exist fails with both numbers;
 *   7. addresses, as on several machines: the JobManager on 127.0.0.4
 *      (--bind-host), two TaskManagers announcing 127.0.0.2 and 127.0.0.3
 *      (--host). Each listens only there (127.0.0.1 is refused), GET
 *      /taskmanagers shows those addresses, the /metrics URLs answer, and
 *      word count runs across both, exact.
 *
 * A test that went well ends its cluster with SIGTERM: every daemon must
 * exit 0, and no log may hold a sanitizer report (LeakSanitizer runs at
 * those exits in ASan builds). Each test waits for states and outputs with
 * deadlines (scaled by EDDY_TEST_TIMEOUT_MULTIPLIER), never fixed sleeps,
 * except where time itself is measured (RSS samples).
 *
 * CLEAN-UP. Teardown SIGKILLs every daemon the test started, whatever
 * happened, and rolls back prepared transactions a failed test left.
 * Daemons are forked with PR_SET_PDEATHSIG, so they die with the test
 * process even if it is killed itself (ctest's timeout); an atexit handler
 * and fatal-signal handlers kill them too. For debugging,
 * EDDY_TEST_KEEP=1 keeps each test's directory (logs, data dir) and
 * EDDY_TEST_FILTER=PATTERN runs only the matching tests.
 *
 * THREADS. Single-threaded (cmocka); librdkafka's producer threads live
 * only inside produce().
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "harness.h"
#include "pg_util.h"

#define MAX_TMS 4
#define MAX_PIDS 16
#define PATHLEN 1024

/* ---- daemons ---- */

/* Every daemon still running, for the last-resort kill. */
static volatile pid_t live_pids[MAX_PIDS];

static void pid_register(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++) {
        if (live_pids[i] == 0) {
            live_pids[i] = pid;
            return;
        }
    }
    fail_msg("too many daemons");
}

static void pid_unregister(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++) {
        if (live_pids[i] == pid) {
            live_pids[i] = 0;
        }
    }
}

static void kill_all(void)
{
    for (int i = 0; i < MAX_PIDS; i++) {
        if (live_pids[i] > 0) {
            kill(live_pids[i], SIGKILL);
        }
    }
}

static void on_fatal_signal(int sig)
{
    kill_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

typedef struct daemon {
    pid_t dm_pid; /* 0 when not running */
    char dm_name[32];
    char dm_out[PATHLEN]; /* its stdout (appended to across restarts) */
    char dm_log[PATHLEN]; /* its stderr */
} daemon_t;

/*
 * Forks and execs argv[0] with stdin from /dev/null and stdout and stderr
 * appended to dm_out and dm_log. The child dies with us (PDEATHSIG): a
 * test killed by ctest's timeout leaves no cluster behind.
 */
static void daemon_start(daemon_t *d, const char *const argv[])
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fail_msg("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int in = open("/dev/null", O_RDONLY);
        int out = open(d->dm_out, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int err = open(d->dm_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0 || err < 0) {
            _exit(127);
        }
        dup2(in, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    d->dm_pid = pid;
    pid_register(pid);
}

/* True while the daemon runs; reaps it once it has exited. */
static bool daemon_alive(daemon_t *d)
{
    if (d->dm_pid <= 0) {
        return false;
    }
    int status;
    pid_t r = waitpid(d->dm_pid, &status, WNOHANG);
    if (r == d->dm_pid) {
        pid_unregister(d->dm_pid);
        d->dm_pid = 0;
        return false;
    }
    return true;
}

static void daemon_kill(daemon_t *d)
{
    if (d->dm_pid <= 0) {
        return;
    }
    kill(d->dm_pid, SIGKILL);
    int status;
    while (waitpid(d->dm_pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid_unregister(d->dm_pid);
    d->dm_pid = 0;
}

/* The whole file, malloc'ed and NUL-terminated ("" if missing). */
static char *slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    if (f != NULL) {
        size_t n;
        while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
            len += n;
            if (cap - len - 1 == 0) {
                cap *= 2;
                buf = realloc(buf, cap);
                assert_non_null(buf);
            }
        }
        fclose(f);
    }
    buf[len] = '\0';
    if (len_out != NULL) {
        *len_out = len;
    }
    return buf;
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

/* Prints the last `max` bytes of a daemon's log. */
static void daemon_dump(const daemon_t *d, size_t max)
{
    size_t len;
    char *log = slurp(d->dm_log, &len);
    const char *from = len > max ? log + len - max : log;
    /* Not print_error: cmocka cuts long messages. */
    fprintf(stderr, "---- %s (pid %d) %s%s:\n%s\n", d->dm_name, (int)d->dm_pid,
            d->dm_log, len > max ? ", the end" : "", from);
    free(log);
}

/* VmRSS of a process in bytes, or -1. */
static long rss_bytes(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb < 0 ? -1 : kb * 1024;
}

/* ---- the cluster ---- */

typedef struct cluster {
    char *cl_tmp;  /* everything of this test */
    char *cl_data; /* the cluster's data dir */
    int cl_rest, cl_rpc;
    char cl_jm_host[32]; /* where the JobManager listens */
    char cl_url[64];
    const char *cl_jm_opts[8];          /* extra JobManager arguments */
    const char *cl_tm_opts[MAX_TMS][4]; /* extra TaskManager arguments */
    daemon_t cl_jm;
    daemon_t cl_tm[MAX_TMS];
    int cl_ntm;
} cluster_t;

static void cluster_dump(const cluster_t *cl)
{
    daemon_dump(&cl->cl_jm, 6000);
    for (int i = 0; i < cl->cl_ntm; i++) {
        daemon_dump(&cl->cl_tm[i], 3000);
    }
}

/* Fails the test after showing the daemons' logs. */
#define CL_FAIL(cl, ...)                                                       \
    do {                                                                       \
        cluster_dump(cl);                                                      \
        fail_msg(__VA_ARGS__);                                                 \
    } while (0)

#define CL_CHECK(cl, cond, ...)                                                \
    do {                                                                       \
        if (!(cond)) {                                                         \
            print_error("%s:%d: check failed: %s\n", __FILE__, __LINE__,       \
                        #cond);                                                \
            CL_FAIL(cl, __VA_ARGS__);                                          \
        }                                                                      \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Two ports nobody listens on now: bound to port 0, then released. Both
 * sockets stay open until both are known, so they differ. */
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

/* ---- HTTP ---- */

typedef struct http_res {
    long hr_status; /* 0: no answer */
    char *hr_body;  /* NUL-terminated */
    size_t hr_len;
    char hr_allow[128]; /* the Allow header, if any */
} http_res_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    http_res_t *r = arg;
    size_t k = size * n;
    char *nb = realloc(r->hr_body, r->hr_len + k + 1);
    if (nb == NULL) {
        return 0;
    }
    r->hr_body = nb;
    memcpy(r->hr_body + r->hr_len, p, k);
    r->hr_len += k;
    r->hr_body[r->hr_len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    http_res_t *r = arg;
    size_t k = size * n;
    if (k > 6 && strncasecmp(p, "Allow:", 6) == 0) {
        size_t m = k - 6;
        while (m > 0 && (p[6 + m - 1] == '\r' || p[6 + m - 1] == '\n')) {
            m--;
        }
        const char *v = p + 6;
        while (m > 0 && *v == ' ') {
            v++;
            m--;
        }
        snprintf(r->hr_allow, sizeof(r->hr_allow), "%.*s", (int)m, v);
    }
    return k;
}

static void http_res_free(http_res_t *r)
{
    free(r->hr_body);
    memset(r, 0, sizeof(*r));
}

/*
 * One request. `path` goes out exactly as given (no dot-segment removal);
 * `body` with `ctype` is sent when non-NULL, `mime` (multipart) otherwise.
 */
static http_res_t http_do(const cluster_t *cl, const char *method,
                          const char *path, const char *ctype, const char *body,
                          curl_mime *mime)
{
    http_res_t r = {0};
    r.hr_body = calloc(1, 1);
    char url[4096];
    /* An absolute URL: a TaskManager's own endpoint. */
    snprintf(url, sizeof(url), "%s%s",
             strncmp(path, "http://", 7) == 0 ? "" : cl->cl_url, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *hdrs = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(integ_timeout(30) * 1000.0));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (mime != NULL) {
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    } else if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (ctype != NULL) {
        char h[256];
        snprintf(h, sizeof(h), "Content-Type: %s", ctype);
        hdrs = curl_slist_append(hdrs, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.hr_status);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return r;
}

static http_res_t http_get(const cluster_t *cl, const char *path)
{
    return http_do(cl, "GET", path, NULL, NULL, NULL);
}

/* GET path: its JSON (the test fails on another status or no JSON). */
static json_t *get_json(const cluster_t *cl, const char *path)
{
    http_res_t r = http_get(cl, path);
    json_error_t je;
    json_t *v = r.hr_status == 200 ? json_loads(r.hr_body, 0, &je) : NULL;
    if (v == NULL) {
        print_error("GET %s: HTTP %ld: %s\n", path, r.hr_status, r.hr_body);
        http_res_free(&r);
        CL_FAIL(cl, "GET %s failed", path);
    }
    http_res_free(&r);
    return v;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static long long jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Submits a job: `args` a JSON array text (or NULL), `interval` "" for
 * none. Returns the HTTP result; *id the job id on 200. */
static http_res_t submit_raw(const cluster_t *cl, const char *so,
                             const char *parallelism, const char *interval,
                             const char *args)
{
    CURL *tmp = curl_easy_init();
    curl_mime *m = curl_mime_init(tmp);
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, "job_file");
    curl_mime_filedata(p, so);
    if (parallelism != NULL) {
        p = curl_mime_addpart(m);
        curl_mime_name(p, "parallelism");
        curl_mime_data(p, parallelism, CURL_ZERO_TERMINATED);
    }
    if (interval != NULL && interval[0] != '\0') {
        p = curl_mime_addpart(m);
        curl_mime_name(p, "checkpoint_interval");
        curl_mime_data(p, interval, CURL_ZERO_TERMINATED);
    }
    if (args != NULL) {
        p = curl_mime_addpart(m);
        curl_mime_name(p, "args");
        curl_mime_data(p, args, CURL_ZERO_TERMINATED);
    }
    http_res_t r = http_do(cl, "POST", "/jobs/submit", NULL, NULL, m);
    curl_mime_free(m);
    curl_easy_cleanup(tmp);
    return r;
}

static void submit(const cluster_t *cl, const char *so, int parallelism,
                   const char *interval, json_t *args, char id[33])
{
    char par[16];
    snprintf(par, sizeof(par), "%d", parallelism);
    char *a = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    http_res_t r = submit_raw(cl, so, par, interval, a);
    free(a);
    json_error_t je;
    json_t *o = r.hr_status == 200 ? json_loads(r.hr_body, 0, &je) : NULL;
    if (o == NULL || strlen(jstr(o, "job_id")) != 32) {
        print_error("submit %s: HTTP %ld: %s\n", so, r.hr_status, r.hr_body);
        CL_FAIL(cl, "the submission failed");
    }
    snprintf(id, 33, "%s", jstr(o, "job_id"));
    json_decref(o);
    http_res_free(&r);
}

/* The job's state and attempt; false if the JobManager did not answer. */
static bool job_status(const cluster_t *cl, const char *id, char *state,
                       size_t size, long long *attempt)
{
    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s/status", id);
    http_res_t r = http_get(cl, path);
    if (r.hr_status == 0) {
        http_res_free(&r);
        return false;
    }
    json_error_t je;
    json_t *o = r.hr_status == 200 ? json_loads(r.hr_body, 0, &je) : NULL;
    if (o == NULL) {
        print_error("GET %s: HTTP %ld: %s\n", path, r.hr_status, r.hr_body);
        http_res_free(&r);
        CL_FAIL(cl, "no status for job %s", id);
    }
    snprintf(state, size, "%s", jstr(o, "state"));
    if (attempt != NULL) {
        *attempt = jint(o, "attempt");
    }
    json_decref(o);
    http_res_free(&r);
    return true;
}

static bool terminal(const char *st)
{
    return strcmp(st, "FINISHED") == 0 || strcmp(st, "FAILED") == 0 ||
           strcmp(st, "CANCELED") == 0;
}

/*
 * Polls the job's status every 20 ms until it is `want`, appending each
 * new state to `trail` ("RUNNING RESTARTING RUNNING"); fails on another
 * terminal state or at the deadline. The JobManager may be unreachable
 * for a while (test 3): that only waits.
 */
static void wait_state(const cluster_t *cl, const char *id, const char *want,
                       double timeout, char *trail, size_t trail_size)
{
    double deadline = integ_now() + integ_timeout(timeout);
    char last[32] = "", st[32];
    if (trail != NULL) {
        /* The trail goes on from its last state. */
        const char *sp = strrchr(trail, ' ');
        snprintf(last, sizeof(last), "%s", sp != NULL ? sp + 1 : trail);
    }
    for (;;) {
        if (job_status(cl, id, st, sizeof(st), NULL) && strcmp(st, last) != 0) {
            snprintf(last, sizeof(last), "%s", st);
            if (trail != NULL) {
                size_t n = strlen(trail);
                snprintf(trail + n, trail_size - n, "%s%s", n > 0 ? " " : "",
                         st);
            }
            if (strcmp(st, want) != 0 && terminal(st)) {
                CL_FAIL(cl, "job %s ended %s, not %s (states: %s)", id, st,
                        want, trail != NULL ? trail : "");
            }
        }
        if (strcmp(last, want) == 0) {
            return;
        }
        if (integ_now() > deadline) {
            /* Where it is stuck: its tasks and its checkpoints. */
            static const char *const what[] = {"", "/checkpoints"};
            for (size_t i = 0; i < INTEG_ARRAY_SIZE(what); i++) {
                char path[128];
                snprintf(path, sizeof(path), "/jobs/%s%s", id, what[i]);
                http_res_t r = http_get(cl, path);
                fprintf(stderr, "GET %s: %s\n", path, r.hr_body);
                http_res_free(&r);
            }
            CL_FAIL(cl, "job %s is %s, not %s, after %.0f s (states: %s)", id,
                    last, want, integ_timeout(timeout),
                    trail != NULL ? trail : "");
        }
        sleep_ms(20);
    }
}

/* Waits until /cluster/metrics counts `n` active TaskManagers. */
static void wait_tms(const cluster_t *cl, int n)
{
    double deadline = integ_now() + integ_timeout(30);
    for (;;) {
        http_res_t r = http_get(cl, "/cluster/metrics");
        json_error_t je;
        json_t *o = r.hr_status == 200 ? json_loads(r.hr_body, 0, &je) : NULL;
        long long act = o != NULL ? jint(o, "active_task_managers") : -1;
        json_decref(o);
        http_res_free(&r);
        if (act == n) {
            return;
        }
        if (integ_now() > deadline) {
            CL_FAIL(cl, "%lld TaskManagers registered, not %d", act, n);
        }
        sleep_ms(20);
    }
}

static void jm_start(cluster_t *cl)
{
    char rest[16], rpc[16];
    snprintf(rest, sizeof(rest), "%d", cl->cl_rest);
    snprintf(rpc, sizeof(rpc), "%d", cl->cl_rpc);
    const char *argv[24] = {EDDY_BIN,     "jobmanager", "--rest-port",
                            rest,         "--rpc-port", rpc,
                            "--data-dir", cl->cl_data};
    int a = 8;
    for (int i = 0; cl->cl_jm_opts[i] != NULL; i++) {
        argv[a++] = cl->cl_jm_opts[i];
    }
    argv[a] = NULL;
    daemon_start(&cl->cl_jm, argv);
    /* Up once it answers GET /. */
    double deadline = integ_now() + integ_timeout(30);
    for (;;) {
        http_res_t r = http_get(cl, "/");
        long st = r.hr_status;
        http_res_free(&r);
        if (st == 200) {
            return;
        }
        if (!daemon_alive(&cl->cl_jm) || integ_now() > deadline) {
            CL_FAIL(cl, "the JobManager did not start");
        }
        sleep_ms(20);
    }
}

static void tm_start(cluster_t *cl, int i, int slots)
{
    char jm[64], sl[16];
    snprintf(jm, sizeof(jm), "%s:%d", cl->cl_jm_host, cl->cl_rpc);
    snprintf(sl, sizeof(sl), "%d", slots);
    const char *argv[16] = {EDDY_BIN,     "taskmanager", "--jobmanager",
                            jm,           "--slots",     sl,
                            "--data-dir", cl->cl_data};
    int a = 8;
    for (int k = 0; k < 4 && cl->cl_tm_opts[i][k] != NULL; k++) {
        argv[a++] = cl->cl_tm_opts[i][k];
    }
    argv[a] = NULL;
    daemon_start(&cl->cl_tm[i], argv);
}

/* A cluster not started yet: a JobManager on `jm_host` with `opts`
 * (NULL-terminated, may be NULL) and `ntm` TaskManagers. */
static cluster_t *cluster_new(int ntm, const char *jm_host,
                              const char *const *opts)
{
    cluster_t *cl = calloc(1, sizeof(*cl));
    assert_non_null(cl);
    cl->cl_tmp = integ_tmpdir_new();
    cl->cl_data = integ_path(cl->cl_tmp, "data");
    free_ports(&cl->cl_rest, &cl->cl_rpc);
    snprintf(cl->cl_jm_host, sizeof(cl->cl_jm_host), "%s", jm_host);
    snprintf(cl->cl_url, sizeof(cl->cl_url), "http://%s:%d", jm_host,
             cl->cl_rest);
    for (int i = 0; opts != NULL && opts[i] != NULL && i < 7; i++) {
        cl->cl_jm_opts[i] = opts[i];
    }
    snprintf(cl->cl_jm.dm_name, sizeof(cl->cl_jm.dm_name), "jobmanager");
    snprintf(cl->cl_jm.dm_out, PATHLEN, "%s/jobmanager.out", cl->cl_tmp);
    snprintf(cl->cl_jm.dm_log, PATHLEN, "%s/jobmanager.log", cl->cl_tmp);
    cl->cl_ntm = ntm;
    for (int i = 0; i < ntm; i++) {
        daemon_t *d = &cl->cl_tm[i];
        snprintf(d->dm_name, sizeof(d->dm_name), "taskmanager-%d", i + 1);
        snprintf(d->dm_out, PATHLEN, "%s/taskmanager-%d.out", cl->cl_tmp,
                 i + 1);
        snprintf(d->dm_log, PATHLEN, "%s/taskmanager-%d.log", cl->cl_tmp,
                 i + 1);
    }
    return cl;
}

/* Starts the JobManager and the TaskManagers of `slots` slots, and waits
 * until all are registered. */
static void cluster_boot(cluster_t *cl, int slots)
{
    int ntm = cl->cl_ntm;
    jm_start(cl);
    for (int i = 0; i < ntm; i++) {
        tm_start(cl, i, slots);
    }
    wait_tms(cl, ntm);
}

/* A JobManager with `opts` (NULL-terminated, may be NULL) and `ntm`
 * TaskManagers of `slots` slots, all on 127.0.0.1 and registered. */
static cluster_t *cluster_start(int ntm, int slots, const char *const *opts)
{
    cluster_t *cl = cluster_new(ntm, "127.0.0.1", opts);
    cluster_boot(cl, slots);
    return cl;
}

static void cluster_stop(cluster_t *cl)
{
    if (cl == NULL) {
        return;
    }
    daemon_kill(&cl->cl_jm);
    for (int i = 0; i < cl->cl_ntm; i++) {
        daemon_kill(&cl->cl_tm[i]);
    }
    if (getenv("EDDY_TEST_KEEP") != NULL) {
        /* For debugging: the logs and data dir stay. */
        fprintf(stderr, "kept %s\n", cl->cl_tmp);
        free(cl->cl_tmp);
    } else {
        integ_tmpdir_remove(cl->cl_tmp);
    }
    free(cl->cl_data);
    free(cl);
}

/*
 * Ends a test that went well: SIGTERM to the JobManager, then to each
 * TaskManager; each must exit 0 within its deadline, and no log may hold a
 * sanitizer report (in ASan builds LeakSanitizer runs at that exit).
 */
static void cluster_finish(cluster_t *cl)
{
    daemon_t *all[1 + MAX_TMS];
    int n = 0;
    all[n++] = &cl->cl_jm;
    for (int i = 0; i < cl->cl_ntm; i++) {
        all[n++] = &cl->cl_tm[i];
    }
    for (int i = 0; i < n; i++) {
        daemon_t *d = all[i];
        if (d->dm_pid <= 0) {
            continue; /* killed by the test */
        }
        pid_t pid = d->dm_pid;
        kill(pid, SIGTERM);
        double deadline = integ_now() + integ_timeout(20);
        int status = 0;
        pid_t r;
        while ((r = waitpid(pid, &status, WNOHANG)) == 0 &&
               integ_now() < deadline) {
            sleep_ms(10);
        }
        if (r != pid) {
            CL_FAIL(cl, "%s did not stop within %.0f s of SIGTERM", d->dm_name,
                    integ_timeout(20));
        }
        pid_unregister(pid);
        d->dm_pid = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            CL_FAIL(cl, "%s ended with status 0x%x after SIGTERM", d->dm_name,
                    (unsigned)status);
        }
    }
    for (int i = 0; i < n; i++) {
        char *log = slurp(all[i]->dm_log, NULL);
        bool bad = strstr(log, "Sanitizer") != NULL ||
                   strstr(log, "runtime error:") != NULL;
        free(log);
        if (bad) {
            CL_FAIL(cl, "a sanitizer report in %s", all[i]->dm_log);
        }
    }
}

/* The TaskManager ids of the job's tasks, in task order (n at most). */
static int task_tms(const cluster_t *cl, const char *id, char ids[][64],
                    int max)
{
    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s", id);
    json_t *j = get_json(cl, path);
    int n = 0;
    size_t vi, ti;
    json_t *v, *t;
    json_array_foreach(json_object_get(j, "vertices"), vi, v)
    {
        json_array_foreach(json_object_get(v, "tasks"), ti, t)
        {
            if (n < max) {
                snprintf(ids[n++], 64, "%s", jstr(t, "taskmanager"));
            }
        }
    }
    json_decref(j);
    return n;
}

static int distinct(char ids[][64], int n)
{
    int d = 0;
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int k = 0; k < i && !seen; k++) {
            seen = strcmp(ids[k], ids[i]) == 0;
        }
        d += !seen;
    }
    return d;
}

/* The id the JobManager knows daemon `d` by: its log names it. */
static void tm_id_of(const daemon_t *d, char *id, size_t size)
{
    char *log = slurp(d->dm_log, NULL);
    const char *p = strstr(log, "TaskManager tm-");
    assert_non_null(p);
    p += strlen("TaskManager ");
    size_t n = strcspn(p, ": ");
    assert_true(n < size);
    memcpy(id, p, n);
    id[n] = '\0';
    free(log);
}

/* Completed checkpoints so far (GET /jobs/{id}/checkpoints). */
static long long checkpoints_completed(const cluster_t *cl, const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s/checkpoints", id);
    json_t *j = get_json(cl, path);
    long long n = jint(json_object_get(j, "counts"), "completed");
    json_decref(j);
    return n;
}

static void wait_checkpoints(const cluster_t *cl, const char *id, long long n)
{
    double deadline = integ_now() + integ_timeout(30);
    while (checkpoints_completed(cl, id) < n) {
        if (integ_now() > deadline) {
            CL_FAIL(cl, "fewer than %lld checkpoints of job %s completed", n,
                    id);
        }
        sleep_ms(20);
    }
}

/* ---- PostgreSQL and the dev broker (tests 2 and 3) ---- */

static tu_pg_t pg;
static bool pg_up;

static int group_setup(void **state)
{
    (void)state;
    atexit(kill_all);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGINT, on_fatal_signal);
    signal(SIGABRT, on_fatal_signal);
    signal(SIGSEGV, on_fatal_signal);
    curl_global_init(CURL_GLOBAL_ALL);
    char msg[512];
    int rc = tu_pg_start(&pg, NULL, msg, sizeof(msg));
    if (rc == TU_PG_SKIP) {
        fprintf(stderr, "PostgreSQL tests skipped: %s\n", msg);
        return 0;
    }
    if (rc != TU_PG_OK) {
        fprintf(stderr, "cannot start PostgreSQL: %s\n", msg);
        return -1;
    }
    pg_up = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kill_all();
    tu_pg_stop(&pg);
    curl_global_cleanup();
    return 0;
}

/* Rolls back every prepared transaction: one that a test failing
 * mid-way left must not count against the next test. */
static void pg_rollback_prepared(void)
{
    char msg[512];
    char *gids = tu_pg_query(
        pg.pg_conninfo, "SELECT gid FROM pg_prepared_xacts", msg, sizeof(msg));
    char *save = NULL;
    for (char *g = gids != NULL ? strtok_r(gids, "\n", &save) : NULL; g != NULL;
         g = strtok_r(NULL, "\n", &save)) {
        char sql[512];
        snprintf(sql, sizeof(sql), "ROLLBACK PREPARED '%s'", g);
        tu_pg_exec(pg.pg_conninfo, sql, msg, sizeof(msg));
    }
    free(gids);
}

static int test_teardown(void **state)
{
    cluster_stop(*state);
    *state = NULL;
    if (pg_up) {
        pg_rollback_prepared();
    }
    return 0;
}

/* Starts the dev broker (killed in the test's teardown through its pid);
 * writes its bootstrap address. */
static integ_proc_t *start_broker(char *bootstrap, size_t size)
{
    const char *argv[] = {EDDY_BIN,  "kafka-dev", "--port", "0",
                          "--topic", "numbers:4", NULL};
    integ_proc_t *p = integ_spawn(argv, NULL);
    pid_register(p->pr_pid);
    if (!integ_wait_stdout_lines(p, 1, integ_timeout(20))) {
        integ_dump(p);
        fail_msg("the dev broker did not start");
    }
    const char *line = strstr(p->pr_out, "bootstrap: ");
    assert_non_null(line);
    line += strlen("bootstrap: ");
    size_t n = strcspn(line, "\n");
    assert_true(n < size);
    memcpy(bootstrap, line, n);
    bootstrap[n] = '\0';
    return p;
}

static void stop_broker(integ_proc_t *p)
{
    pid_unregister(p->pr_pid);
    integ_proc_free(p);
}

/* Records "0".."n-1" into the 4 partitions of `topic`, round robin. */
static void produce(const char *bootstrap, const char *topic, int n)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap,
                                       err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(rk);
    for (int i = 0; i < n; i++) {
        char v[16];
        int len = snprintf(v, sizeof(v), "%d", i);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(i % 4),
                    RD_KAFKA_V_VALUE(v, (size_t)len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 10);
        }
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

/* The exactly-once job keys record i as "k<i mod 7>". */
#define EO_KEYS 7

/*
 * Checks that `text` ("k3|17" or "k3,17" lines) holds, for each key k,
 * exactly the counts 1..n_k once each, where n_k is how many of the records
 * 0..n-1 have key k.
 */
static void check_counts(const cluster_t *cl, const char *what,
                         const char *text, int n)
{
    int per = n / EO_KEYS + 2;
    int *seen = calloc((size_t)(EO_KEYS * per), sizeof(int));
    assert_non_null(seen);
    long rows = 0;
    const char *p = text;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        int k;
        long c;
        char line[64];
        snprintf(line, sizeof(line), "%.*s", (int)(len < 63 ? len : 63), p);
        if (sscanf(line, "k%d%*[|,]%ld", &k, &c) != 2 || k < 0 ||
            k >= EO_KEYS || c < 1 || c >= per) {
            free(seen);
            CL_FAIL(cl, "%s: bad row '%s'", what, line);
        }
        seen[k * per + c]++;
        rows++;
        p = nl != NULL ? nl + 1 : p + len;
    }
    for (int k = 0; k < EO_KEYS; k++) {
        long nk = n / EO_KEYS + (k < n % EO_KEYS ? 1 : 0);
        for (long i = 1; i <= nk; i++) {
            if (seen[k * per + i] != 1) {
                int times = seen[k * per + i];
                free(seen);
                CL_FAIL(cl, "%s: key k%d count %ld appears %d times (%ld rows)",
                        what, k, i, times, rows);
            }
        }
    }
    free(seen);
    CL_CHECK(cl, rows == n, "%s: %ld rows, not %d", what, rows, n);
}

/* The committed part files' lines, concatenated; no in-progress file may
 * be left (the job finished). */
static char *read_parts(const cluster_t *cl, const char *dir)
{
    size_t cap = 1 << 16, len = 0;
    char *all = malloc(cap);
    assert_non_null(all);
    DIR *d = opendir(dir);
    CL_CHECK(cl, d != NULL, "no output directory %s", dir);
    struct dirent *de;
    int inprogress = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            inprogress += strstr(de->d_name, ".inprogress") != NULL;
            continue;
        }
        char path[PATHLEN * 2];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        size_t n;
        char *f = slurp(path, &n);
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            all = realloc(all, cap);
            assert_non_null(all);
        }
        memcpy(all + len, f, n);
        len += n;
        free(f);
    }
    closedir(d);
    all[len] = '\0';
    CL_CHECK(cl, inprogress == 0, "%d in-progress part files left", inprogress);
    return all;
}

/* Both outputs of the exactly-once job, and no prepared transaction. */
static void check_eo_outputs(const cluster_t *cl, const char *table,
                             const char *out, int n)
{
    char msg[512], sql[128];
    snprintf(sql, sizeof(sql), "SELECT k, c FROM %s", table);
    char *rows = tu_pg_query(pg.pg_conninfo, sql, msg, sizeof(msg));
    CL_CHECK(cl, rows != NULL, "query failed: %s", msg);
    check_counts(cl, "PostgreSQL", rows, n);
    free(rows);
    char *files = read_parts(cl, out);
    check_counts(cl, "part files", files, n);
    free(files);
    rows = tu_pg_query(pg.pg_conninfo, "SELECT count(*) FROM pg_prepared_xacts",
                       msg, sizeof(msg));
    assert_non_null(rows);
    CL_CHECK(cl, strcmp(rows, "0\n") == 0, "prepared transactions left: %s",
             rows);
    free(rows);
}

/* Rows committed to `table` so far. */
static long table_rows(const char *table)
{
    char msg[512], sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    char *rows = tu_pg_query(pg.pg_conninfo, sql, msg, sizeof(msg));
    if (rows == NULL) {
        fail_msg("%s", msg);
    }
    long n = strtol(rows, NULL, 10);
    free(rows);
    return n;
}

/* Waits until the sinks committed something: the kill that follows then
 * falls after at least one commit, and (checked by the caller) before the
 * last. */
static long wait_rows(const cluster_t *cl, const char *table)
{
    double deadline = integ_now() + integ_timeout(30);
    long n;
    while ((n = table_rows(table)) == 0) {
        if (integ_now() > deadline) {
            CL_FAIL(cl, "nothing committed to %s", table);
        }
        sleep_ms(20);
    }
    return n;
}

static void create_table(const char *table)
{
    char msg[512], sql[256];
    snprintf(sql, sizeof(sql),
             "DROP TABLE IF EXISTS %s; CREATE TABLE %s (k text, c bigint)",
             table, table);
    if (tu_pg_exec(pg.pg_conninfo, sql, msg, sizeof(msg)) != 0) {
        fail_msg("%s", msg);
    }
}

/* ---- 1. word count over three TaskManagers ---- */

#define WC_WORDS 40
#define WC_LINES 3000

static const char *const vocab[WC_WORDS] = {
    "alpha",  "bravo",   "charlie", "delta",  "echo",    "foxtrot", "golf",
    "hotel",  "india",   "juliett", "kilo",   "lima",    "mike",    "november",
    "oscar",  "papa",    "quebec",  "romeo",  "sierra",  "tango",   "uniform",
    "victor", "whiskey", "xray",    "yankee", "zulu",    "one",     "two",
    "three",  "four",    "five",    "six",    "seven",   "eight",   "nine",
    "ten",    "river",   "stone",   "x42",    "b52bomb",
};

/* Runs word count at parallelism 4 and checks that its tasks ran on every
 * TaskManager of the cluster and that their stdout together is exact. */
static void run_word_count(cluster_t *cl)
{
    int ntm = cl->cl_ntm;
    /* The input: words in mixed case between assorted separators. */
    static char text[WC_LINES * 128]; /* at most 10 * 12 + 1 per line */
    long expect[WC_WORDS] = {0};
    long total = 0;
    size_t len = 0;
    uint32_t seed = 12345;
    static const char *const seps[] = {" ", ", ", "; ", " - ", "\t", "!? "};
    for (int l = 0; l < WC_LINES; l++) {
        seed = seed * 1103515245u + 12345u;
        int words = 1 + (int)((seed >> 16) % 10);
        for (int w = 0; w < words; w++) {
            seed = seed * 1103515245u + 12345u;
            int k = (int)((seed >> 16) % WC_WORDS);
            const char *word = vocab[k];
            for (size_t i = 0; word[i] != '\0'; i++) {
                char c = word[i];
                text[len++] =
                    (char)((i == 0 && (seed & 1)) && c >= 'a' ? c - 32 : c);
            }
            text[len++] = ' ';
            len += (size_t)sprintf(text + len, "%s", seps[(seed >> 8) % 6]);
            expect[k]++;
            total++;
        }
        text[len++] = '\n';
    }
    char *input = integ_path(cl->cl_tmp, "input.txt");
    integ_write_file(input, text, len);

    char id[33], trail[256] = "";
    submit(cl, WORD_COUNT_SO, 4, "", json_pack("[s]", input), id);
    wait_state(cl, id, "FINISHED", 60, trail, sizeof(trail));

    /* Eight tasks (two vertices at parallelism 4), all finished, on all
     * the TaskManagers. */
    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s", id);
    json_t *j = get_json(cl, path);
    assert_int_equal(jint(j, "tasks"), 8);
    assert_int_equal(jint(j, "parallelism"), 4);
    size_t vi, ti;
    json_t *v, *t;
    json_array_foreach(json_object_get(j, "vertices"), vi, v)
    {
        assert_int_equal(json_array_size(json_object_get(v, "tasks")), 4);
        json_array_foreach(json_object_get(v, "tasks"), ti, t)
        {
            assert_string_equal(jstr(t, "state"), "FINISHED");
        }
    }
    json_decref(j);
    char ids[8][64];
    assert_int_equal(task_tms(cl, id, ids, 8), 8);
    CL_CHECK(cl, distinct(ids, 8) == ntm, "tasks on %d TaskManagers, not %d",
             distinct(ids, 8), ntm);
    for (int i = 0; i < ntm; i++) {
        char tm[64];
        tm_id_of(&cl->cl_tm[i], tm, sizeof(tm));
        bool used = false;
        for (int k = 0; k < 8; k++) {
            used = used || strcmp(ids[k], tm) == 0;
        }
        CL_CHECK(cl, used, "no task on %s (%s)", cl->cl_tm[i].dm_name, tm);
    }

    /* The TaskManagers' stdout together: for every word w, "w\t1" ..
     * "w\tn_w" once each, and nothing else. */
    long *seen[WC_WORDS];
    for (int k = 0; k < WC_WORDS; k++) {
        seen[k] = calloc((size_t)expect[k] + 1, sizeof(long));
    }
    long lines = 0;
    for (int i = 0; i < ntm; i++) {
        char *out = slurp(cl->cl_tm[i].dm_out, NULL);
        char *save = NULL;
        for (char *line = strtok_r(out, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            char word[64];
            long c;
            int k = -1;
            if (sscanf(line, "%63[^\t]\t%ld", word, &c) == 2) {
                for (int w = 0; w < WC_WORDS; w++) {
                    if (strcmp(vocab[w], word) == 0) {
                        k = w;
                    }
                }
            }
            if (k < 0 || c < 1 || c > expect[k]) {
                CL_FAIL(cl, "unexpected output line '%s'", line);
            }
            seen[k][c]++;
            lines++;
        }
        free(out);
    }
    for (int k = 0; k < WC_WORDS; k++) {
        for (long c = 1; c <= expect[k]; c++) {
            CL_CHECK(cl, seen[k][c] == 1, "'%s\t%ld' printed %ld times",
                     vocab[k], c, seen[k][c]);
        }
        free(seen[k]);
    }
    assert_int_equal(lines, total);
    free(input);
}

static void test_word_count(void **state)
{
    cluster_t *cl = cluster_start(3, 2, NULL);
    *state = cl;
    run_word_count(cl);
    cluster_finish(cl);
}

/* ---- 2. exactly-once through the loss of a TaskManager ---- */

#define EO_N 12000

static void test_taskmanager_killed(void **state)
{
    if (!pg_up) {
        skip();
    }
    cluster_t *cl = cluster_start(3, 2, NULL);
    *state = cl;
    create_table("counts_tm");
    char bootstrap[256];
    integ_proc_t *broker = start_broker(bootstrap, sizeof(bootstrap));
    produce(bootstrap, "numbers", EO_N);
    char *out = integ_path(cl->cl_tmp, "out");

    /* At most 1000 records/s per source subtask: 3000 each, about 3 s. */
    char id[33], trail[256] = "";
    submit(cl, EXACTLY_ONCE_SO, 4, "200",
           json_pack("[s,s,s,s,s,s,s,s,s,s,s,s]", "--kafka", bootstrap,
                     "--topic", "numbers", "--pg", pg.pg_conninfo, "--table",
                     "counts_tm", "--out", out, "--throttle", "1000"),
           id);
    wait_state(cl, id, "RUNNING", 30, trail, sizeof(trail));
    long long first_attempt;
    char st[32];
    assert_true(job_status(cl, id, st, sizeof(st), &first_attempt));
    wait_checkpoints(cl, id, 2);
    long rows = wait_rows(cl, "counts_tm");

    /* SIGKILL the TaskManager that runs subtask 0 of the source. */
    char ids[8][64], victim[64] = "";
    assert_int_equal(task_tms(cl, id, ids, 8), 8);
    int vi = -1;
    for (int i = 0; i < 3 && vi < 0; i++) {
        tm_id_of(&cl->cl_tm[i], victim, sizeof(victim));
        if (strcmp(victim, ids[0]) == 0) {
            vi = i;
        }
    }
    CL_CHECK(cl, vi >= 0, "no TaskManager runs %s", ids[0]);
    assert_true(job_status(cl, id, st, sizeof(st), NULL));
    CL_CHECK(cl, strcmp(st, "RUNNING") == 0,
             "the job was %s before the kill; it must still run", st);
    /* Its data address: the other TaskManagers know it by that. */
    char victim_addr[160] = "";
    json_t *tms = get_json(cl, "/taskmanagers");
    size_t k;
    json_t *e;
    json_array_foreach(json_object_get(tms, "taskmanagers"), k, e)
    {
        if (strcmp(jstr(e, "id"), victim) == 0) {
            snprintf(victim_addr, sizeof(victim_addr), "%s",
                     jstr(e, "data_address"));
        }
    }
    json_decref(tms);
    CL_CHECK(cl, victim_addr[0] != '\0', "%s not in /taskmanagers", victim);
    daemon_kill(&cl->cl_tm[vi]);
    CL_CHECK(cl, rows < EO_N, "the job had committed everything (%ld rows)",
             rows);

    wait_state(cl, id, "RESTARTING", 30, trail, sizeof(trail));
    wait_state(cl, id, "RUNNING", 30, trail, sizeof(trail));
    long long attempt;
    assert_true(job_status(cl, id, st, sizeof(st), &attempt));
    CL_CHECK(cl, attempt > first_attempt, "still attempt %lld", attempt);
    /* The new attempt runs on the two TaskManagers left. */
    assert_int_equal(task_tms(cl, id, ids, 8), 8);
    CL_CHECK(cl, distinct(ids, 8) == 2, "tasks on %d TaskManagers",
             distinct(ids, 8));
    for (int t = 0; t < 8; t++) {
        CL_CHECK(cl, strcmp(ids[t], victim) != 0,
                 "task %d is on the dead TaskManager %s", t, victim);
    }
    wait_state(cl, id, "FINISHED", 60, trail, sizeof(trail));
    const char *from = strncmp(trail, "CREATED ", 8) == 0 ? trail + 8 : trail;
    CL_CHECK(cl, strcmp(from, "RUNNING RESTARTING RUNNING FINISHED") == 0,
             "states: %s", trail);

    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s", id);
    json_t *j = get_json(cl, path);
    assert_int_equal(jint(j, "restarts"), 1);
    json_decref(j);
    /* The failure history names the lost TaskManager (by its id, or by
     * its data address when a peer noticed first). */
    snprintf(path, sizeof(path), "/jobs/%s/exceptions", id);
    j = get_json(cl, path);
    json_t *ex = json_object_get(j, "exceptions");
    CL_CHECK(cl, json_array_size(ex) >= 1, "no exception recorded");
    const char *msg = jstr(json_array_get(ex, 0), "message");
    CL_CHECK(
        cl,
        (strstr(msg, victim) != NULL || strstr(msg, victim_addr) != NULL) &&
            strstr(msg, "lost") != NULL,
        "exception '%s' does not name the lost %s (%s)", msg, victim,
        victim_addr);
    const char *once = strstr(msg, victim_addr);
    CL_CHECK(cl, once == NULL || strstr(once + 1, victim_addr) == NULL,
             "exception '%s' names %s twice", msg, victim_addr);
    json_decref(j);

    check_eo_outputs(cl, "counts_tm", out, EO_N);
    stop_broker(broker);
    free(out);
    cluster_finish(cl);
}

/* ---- 3. the JobManager killed and started again ---- */

static void test_jobmanager_killed(void **state)
{
    if (!pg_up) {
        skip();
    }
    cluster_t *cl = cluster_start(3, 2, NULL);
    *state = cl;
    create_table("counts_jm");
    char *out = integ_path(cl->cl_tmp, "out");
    char count[16];
    snprintf(count, sizeof(count), "%d", EO_N);

    /* 12000 generated records at 3000/s: about 4 s. */
    char id[33], trail[256] = "";
    submit(cl, EXACTLY_ONCE_SO, 4, "200",
           json_pack("[s,s,s,s,s,s,s,s,s,s]", "--count", count, "--rate",
                     "3000", "--pg", pg.pg_conninfo, "--table", "counts_jm",
                     "--out", out),
           id);
    wait_state(cl, id, "RUNNING", 30, trail, sizeof(trail));
    long long first_attempt;
    char st[32];
    assert_true(job_status(cl, id, st, sizeof(st), &first_attempt));
    wait_checkpoints(cl, id, 2);
    long rows = wait_rows(cl, "counts_jm");
    assert_true(job_status(cl, id, st, sizeof(st), NULL));
    CL_CHECK(cl, strcmp(st, "RUNNING") == 0,
             "the job was %s before the kill; it must still run", st);

    daemon_kill(&cl->cl_jm);
    CL_CHECK(cl, rows < EO_N, "the job had committed everything (%ld rows)",
             rows);
    /* The TaskManagers notice at once, cancel what they run, and stay. */
    sleep_ms(300);
    for (int i = 0; i < 3; i++) {
        CL_CHECK(cl, daemon_alive(&cl->cl_tm[i]), "%s died with the JM",
                 cl->cl_tm[i].dm_name);
    }
    jm_start(cl);
    /* The new JobManager took the job up again from its store: RESTARTING
     * until the TaskManagers are back and it is deployed again. */
    char trail2[256] = "";
    wait_state(cl, id, "RESTARTING", 5, trail2, sizeof(trail2));
    CL_CHECK(cl, strcmp(trail2, "RESTARTING") == 0, "states: %s", trail2);
    /* The same three TaskManagers re-register. */
    wait_tms(cl, 3);
    json_t *tms = get_json(cl, "/taskmanagers");
    for (int i = 0; i < 3; i++) {
        char tm[64];
        tm_id_of(&cl->cl_tm[i], tm, sizeof(tm));
        bool found = false;
        size_t k;
        json_t *e;
        json_array_foreach(json_object_get(tms, "taskmanagers"), k, e)
        {
            found = found || (strcmp(jstr(e, "id"), tm) == 0 &&
                              strcmp(jstr(e, "state"), "ACTIVE") == 0);
        }
        CL_CHECK(cl, found, "%s (%s) did not re-register", cl->cl_tm[i].dm_name,
                 tm);
    }
    json_decref(tms);
    wait_state(cl, id, "FINISHED", 60, trail2, sizeof(trail2));
    CL_CHECK(cl, strcmp(trail2, "RESTARTING RUNNING FINISHED") == 0,
             "states after the restart: %s", trail2);
    long long attempt;
    assert_true(job_status(cl, id, st, sizeof(st), &attempt));
    CL_CHECK(cl, attempt != first_attempt, "attempt %lld again", attempt);
    char *log = slurp(cl->cl_jm.dm_log, NULL);
    CL_CHECK(cl, strstr(log, "resuming job") != NULL,
             "the JobManager did not say it resumed the job");
    free(log);
    char ids[8][64];
    assert_int_equal(task_tms(cl, id, ids, 8), 8);
    CL_CHECK(cl, distinct(ids, 8) == 3, "tasks on %d TaskManagers",
             distinct(ids, 8));

    check_eo_outputs(cl, "counts_jm", out, EO_N);
    free(out);
    cluster_finish(cl);
}

/* From GET /jobs/{id}/metrics: subtask `sub` of vertex `v`'s `field`. */
static double subtask_metric(const cluster_t *cl, const char *id, int v,
                             int sub, const char *field)
{
    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s/metrics", id);
    json_t *j = get_json(cl, path);
    json_t *vx = json_array_get(json_object_get(j, "vertices"), (size_t)v);
    json_t *st = json_array_get(json_object_get(vx, "subtasks"), (size_t)sub);
    json_t *x = json_object_get(st, field);
    CL_CHECK(cl, json_is_number(x), "no %s for subtask %d of vertex %d", field,
             sub, v);
    double d = json_number_value(x);
    json_decref(j);
    return d;
}

/* ---- 4. back pressure: a slow sink across the data plane ---- */

static void test_back_pressure(void **state)
{
    cluster_t *cl = cluster_start(2, 2, NULL);
    *state = cl;
    char id[33], trail[256] = "";
    /* 2 ms per record and 512-byte records: each sink subtask prints about
     * 250 KB/s, in 64 KiB writes. */
    submit(cl, SLOW_SINK_SO, 2, "", json_pack("[s,s]", "2000", "512"), id);
    wait_state(cl, id, "RUNNING", 30, trail, sizeof(trail));
    /* One sink subtask on each TaskManager: rebalance sends half of each
     * source's records to the other TaskManager. */
    char ids[4][64];
    assert_int_equal(task_tms(cl, id, ids, 4), 4);
    CL_CHECK(cl, distinct(ids, 4) == 2 && strcmp(ids[2], ids[3]) != 0,
             "the sink subtasks share a TaskManager");

    /* Warm-up: buffers fill up, back pressure sets in. */
    sleep_ms(2000);
    long base[2], peak[2], out0[2], last_out[2];
    for (int i = 0; i < 2; i++) {
        base[i] = peak[i] = rss_bytes(cl->cl_tm[i].dm_pid);
        out0[i] = last_out[i] = file_size(cl->cl_tm[i].dm_out);
        CL_CHECK(cl, base[i] > 0, "no RSS for %s", cl->cl_tm[i].dm_name);
    }
    double in0[2];
    for (int k = 0; k < 2; k++) {
        in0[k] = subtask_metric(cl, id, 1, k, "records_in");
    }
    /* Then 4 s of samples: memory flat, output growing. */
    int grew[2] = {0, 0};
    for (int s = 0; s < 20; s++) {
        sleep_ms(200);
        for (int i = 0; i < 2; i++) {
            long r = rss_bytes(cl->cl_tm[i].dm_pid);
            CL_CHECK(cl, r > 0, "%s is gone", cl->cl_tm[i].dm_name);
            peak[i] = r > peak[i] ? r : peak[i];
            long o = file_size(cl->cl_tm[i].dm_out);
            grew[i] += o > last_out[i];
            last_out[i] = o;
        }
    }
    for (int i = 0; i < 2; i++) {
        print_message("%s: RSS %ld MiB after warm-up, peak %ld MiB; printed "
                      "%ld KiB in 4 s\n",
                      cl->cl_tm[i].dm_name, base[i] >> 20, peak[i] >> 20,
                      (last_out[i] - out0[i]) >> 10);
        CL_CHECK(cl, peak[i] - base[i] < 64L * 1024 * 1024,
                 "%s grew by %ld MiB under back pressure", cl->cl_tm[i].dm_name,
                 (peak[i] - base[i]) >> 20);
        /* The sink made progress all along: at least 256 KiB printed, in
         * many separate writes. */
        CL_CHECK(cl, last_out[i] - out0[i] >= 256 * 1024,
                 "%s printed only %ld bytes in 4 s", cl->cl_tm[i].dm_name,
                 last_out[i] - out0[i]);
        CL_CHECK(cl, grew[i] >= 8, "%s printed in only %d of 20 samples",
                 cl->cl_tm[i].dm_name, grew[i]);
    }
    /* The sources spend their time waiting for credit; the sinks keep
     * taking records in (about 500/s each). */
    for (int k = 0; k < 2; k++) {
        double bp = subtask_metric(cl, id, 0, k, "backpressure_ratio");
        double in = subtask_metric(cl, id, 1, k, "records_in") - in0[k];
        print_message("source %d: back-pressure ratio %.2f; sink %d: %.0f "
                      "records in 4 s\n",
                      k, bp, k, in);
        CL_CHECK(cl, bp >= 0.5, "source subtask %d back-pressured only %.2f", k,
                 bp);
        CL_CHECK(cl, in >= 500, "sink subtask %d took %.0f records in 4 s", k,
                 in);
    }
    /* Each TaskManager serves its own tasks' series (DESIGN.md §8); both
     * run a source and a sink subtask of the job. */
    json_t *tms = get_json(cl, "/taskmanagers");
    size_t ti;
    json_t *tmj;
    int served = 0;
    json_array_foreach(json_object_get(tms, "taskmanagers"), ti, tmj)
    {
        const char *url = jstr(tmj, "metrics_url");
        http_res_t mr = http_get(cl, url);
        char want[128];
        snprintf(want, sizeof(want), "eddy_records_in_total{job_id=\"%s\"", id);
        CL_CHECK(cl,
                 mr.hr_status == 200 && strstr(mr.hr_body, want) != NULL &&
                     strstr(mr.hr_body, "eddy_backpressure_ratio{") != NULL,
                 "GET %s: HTTP %ld, no series of job %s:\n%s", url,
                 mr.hr_status, id, mr.hr_body);
        http_res_free(&mr);
        served++;
    }
    json_decref(tms);
    CL_CHECK(cl, served == 2, "%d TaskManagers listed", served);
    /* What it printed is the records, whole. */
    char *o = slurp(cl->cl_tm[0].dm_out, NULL);
    char *nl = strchr(o, '\n');
    CL_CHECK(cl, nl != NULL && nl - o == 512, "a line of %ld bytes",
             nl != NULL ? (long)(nl - o) : -1L);
    free(o);

    /* Cancel: 202, then CANCELED, and every slot free again. */
    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s/cancel", id);
    http_res_t r = http_do(cl, "POST", path, NULL, "", NULL);
    CL_CHECK(cl, r.hr_status == 202, "cancel: HTTP %ld %s", r.hr_status,
             r.hr_body);
    http_res_free(&r);
    wait_state(cl, id, "CANCELED", 30, trail, sizeof(trail));
    json_t *m = get_json(cl, "/cluster/metrics");
    assert_int_equal(jint(m, "available_slots"), 4);
    assert_int_equal(jint(m, "running_jobs"), 0);
    json_decref(m);
    /* Canceling again is refused: the job has ended. */
    r = http_do(cl, "POST", path, NULL, "", NULL);
    CL_CHECK(cl, r.hr_status == 409, "second cancel: HTTP %ld", r.hr_status);
    http_res_free(&r);
    cluster_finish(cl);
}

/* ---- 5. REST hostility ---- */

/* Expects `status` and, for our own errors, a body {"error": "..."} with
 * nothing else that contains `phrase` (if not NULL). */
static void expect_error(const cluster_t *cl, http_res_t r, long status,
                         const char *phrase, const char *what)
{
    if (r.hr_status != status) {
        print_error("%s: HTTP %ld, not %ld: %s\n", what, r.hr_status, status,
                    r.hr_body);
        http_res_free(&r);
        CL_FAIL(cl, "%s", what);
    }
    json_error_t je;
    json_t *o = json_loads(r.hr_body, 0, &je);
    bool ok = json_is_object(o) && json_object_size(o) == 1 &&
              json_is_string(json_object_get(o, "error")) &&
              jstr(o, "error")[0] != '\0' &&
              (phrase == NULL || strstr(jstr(o, "error"), phrase) != NULL);
    json_decref(o);
    if (!ok) {
        print_error("%s: body %s (expected {\"error\": \"...%s...\"})\n", what,
                    r.hr_body, phrase != NULL ? phrase : "");
        http_res_free(&r);
        CL_FAIL(cl, "%s", what);
    }
    http_res_free(&r);
}

/* A raw request on a new connection; returns the status line's code. */
static long raw_request(const cluster_t *cl, const char *req, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cl->cl_rest);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {(long)integ_timeout(10), 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    char buf[4096];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(buf) - 1 &&
           (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0) {
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL) {
            break;
        }
    }
    buf[got] = '\0';
    close(fd);
    long code = 0;
    if (sscanf(buf, "HTTP/1.%*d %ld", &code) != 1) {
        print_error("raw request: answer '%s'\n", buf);
    }
    return code;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        n += de->d_name[0] != '.';
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

static void test_rest_hostility(void **state)
{
    cluster_t *cl = cluster_start(3, 2, NULL);
    *state = cl;
    const char *nobody = "0123456789abcdef0123456789abcdef";
    char p[512];

    /* Malformed and mistyped JSON bodies. */
    snprintf(p, sizeof(p), "/jobs/%s/savepoint", nobody);
    expect_error(cl,
                 http_do(cl, "POST", p, "application/json", "{\"dir\":", NULL),
                 400, "malformed JSON", "truncated JSON");
    expect_error(
        cl, http_do(cl, "POST", p, "application/json", "{\"dir\": 5}", NULL),
        400, "\"dir\" must be a string", "a number for dir");
    expect_error(cl,
                 http_do(cl, "POST", p, "application/json",
                         "{\"dir\": \"relative/path\"}", NULL),
                 400, "absolute path", "a relative savepoint dir");
    snprintf(p, sizeof(p), "/jobs/%s/stop", nobody);
    expect_error(cl, http_do(cl, "POST", p, "application/json", "[1, 2", NULL),
                 400, "malformed JSON", "truncated array");
    expect_error(cl,
                 http_do(cl, "POST", p, "application/json",
                         "{\"drain\": \"yes\"}", NULL),
                 400, "boolean", "a string for drain");

    /* Wrong methods: 405 with an Allow header. */
    static const struct {
        const char *method, *path, *allow;
    } wrong[] = {
        {"DELETE", "/jobs", "GET"},
        {"POST", "/cluster/metrics", "GET"},
        {"PUT", "/jobs/submit", "POST"},
        {"GET", "/jobs/0123456789abcdef0123456789abcdef/cancel", "POST"},
        {"PATCH", "/overview", "GET"},
    };
    for (size_t i = 0; i < INTEG_ARRAY_SIZE(wrong); i++) {
        http_res_t r =
            http_do(cl, wrong[i].method, wrong[i].path, NULL, NULL, NULL);
        char what[128];
        snprintf(what, sizeof(what), "%s %s", wrong[i].method, wrong[i].path);
        CL_CHECK(cl, strstr(r.hr_allow, wrong[i].allow) != NULL,
                 "%s: Allow '%s'", what, r.hr_allow);
        expect_error(cl, r, 405, "not allowed", what);
    }

    /* Unknown ids and endpoints: 404. */
    static const char *const unknown[] = {
        "/jobs/0123456789abcdef0123456789abcdef",
        "/jobs/0123456789abcdef0123456789abcdef/status",
        "/jobs/0123456789abcdef0123456789abcdef/exceptions",
        "/jobs/0123456789abcdef0123456789abcdef/checkpoints",
        "/jobs/0123456789abcdef0123456789abcdef/artifact",
        "/jobs/0123456789abcdef0123456789abcdef/savepoints/"
        "0123456789abcdef0123456789abcdef",
        "/jobs/not-an-id/status",
        "/jobs/overview/metrics",
        "/no/such/endpoint",
    };
    for (size_t i = 0; i < INTEG_ARRAY_SIZE(unknown); i++) {
        expect_error(cl, http_get(cl, unknown[i]), 404, NULL, unknown[i]);
    }
    snprintf(p, sizeof(p), "/jobs/%s/cancel", nobody);
    expect_error(cl, http_do(cl, "POST", p, NULL, "", NULL), 404, NULL,
                 "cancel of an unknown job");

    /* Path tricks: a clean 400, never a file. */
    static const char *const tricks[] = {
        "/jobs/..%2f..%2fetc/status",
        "/jobs/../../etc/status",
        "/jobs/%2e%2e/status",
        "/jobs/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd/artifact",
        "/jobs/%00/status",
        "/jobs/abc%zz/status",
        "/jobs//status",
        "/jobs/a%0d%0aX-Injected:%201/status",
    };
    for (size_t i = 0; i < INTEG_ARRAY_SIZE(tricks); i++) {
        expect_error(cl, http_get(cl, tricks[i]), 400, "invalid path",
                     tricks[i]);
    }

    /* An oversized upload: refused from its Content-Length, before any of
     * the body is read. */
    const char big[] =
        "POST /jobs/submit HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        "Content-Length: 629145600\r\n"
        "\r\n"
        "--XyZ\r\nContent-Disposition: form-data; name=\"job_file\"; "
        "filename=\"big.so\"\r\n\r\n\x7f"
        "ELF";
    CL_CHECK(cl, raw_request(cl, big, sizeof(big) - 1) == 413,
             "an oversized upload was not refused with 413");

    /* Bodies that are not what /jobs/submit takes. */
    expect_error(cl,
                 http_do(cl, "POST", "/jobs/submit", "application/json",
                         "{\"job_file\": \"x\"}", NULL),
                 400, "job_file", "a JSON submission");
    expect_error(cl,
                 http_do(cl, "POST", "/jobs/submit", "multipart/form-data",
                         "--x\r\n", NULL),
                 400, "multipart", "multipart without a boundary");
    expect_error(cl,
                 http_do(cl, "POST", "/jobs/submit",
                         "multipart/form-data; boundary=b",
                         "--b\r\nContent-Disposition: form-data; "
                         "name=\"job_file\"; filename=\"j.so\"\r\n\r\nabc",
                         NULL),
                 400, "malformed multipart", "a multipart body cut short");

    /* Files that are not jobs, or crash: 400 with the reason. */
    char *text = integ_path(cl->cl_tmp, "notes.txt");
    integ_write_file(text, "hello\n", 6);
    expect_error(cl, submit_raw(cl, text, NULL, NULL, NULL), 400,
                 "is not an eddy job", "a text file");
    expect_error(cl, submit_raw(cl, NOT_A_JOB_SO, NULL, NULL, NULL), 400, NULL,
                 "a shared object without a job");
    expect_error(cl, submit_raw(cl, CTOR_CRASH_SO, NULL, NULL, NULL), 400,
                 "crashed while loading", "a .so crashing while loaded");
    expect_error(cl, submit_raw(cl, FAULTS_SO, NULL, NULL, "[\"build-crash\"]"),
                 400, "crashed while building", "a build that crashes");
    expect_error(cl, submit_raw(cl, FAULTS_SO, NULL, NULL, "[\"build-fail\"]"),
                 400, NULL, "a build that fails");
    /* And bad form fields. */
    expect_error(cl, submit_raw(cl, WORD_COUNT_SO, "0", NULL, NULL), 400,
                 "parallelism", "parallelism 0");
    expect_error(cl, submit_raw(cl, WORD_COUNT_SO, "4; rm -rf /", NULL, NULL),
                 400, "parallelism", "parallelism with junk");
    expect_error(cl, submit_raw(cl, WORD_COUNT_SO, NULL, "soon", NULL), 400,
                 "checkpoint_interval", "a bad interval");
    expect_error(cl, submit_raw(cl, WORD_COUNT_SO, NULL, NULL, "[1, 2]"), 400,
                 "args", "args of numbers");
    expect_error(cl, submit_raw(cl, WORD_COUNT_SO, NULL, NULL, "[\"a\""), 400,
                 "args", "args cut short");
    free(text);

    /* Nothing of all that left a job or a file behind, and the JobManager
     * is the same process. */
    json_t *jobs = get_json(cl, "/jobs");
    assert_int_equal(json_array_size(json_object_get(jobs, "jobs")), 0);
    json_decref(jobs);
    char *uploads = integ_path(cl->cl_data, "uploads");
    CL_CHECK(cl, count_entries(uploads) == 0, "files left in %s", uploads);
    free(uploads);
    char *artifacts = integ_path(cl->cl_data, "jobs");
    CL_CHECK(cl, count_entries(artifacts) == 0, "artifacts left in %s",
             artifacts);
    free(artifacts);
    CL_CHECK(cl, daemon_alive(&cl->cl_jm), "the JobManager died");

    /* The cluster still runs a job. */
    char *input = integ_path(cl->cl_tmp, "input.txt");
    integ_write_file(input, "b a b\nc b\n", 10);
    char id[33], trail[128] = "";
    submit(cl, WORD_COUNT_SO, 3, "", json_pack("[s]", input), id);
    wait_state(cl, id, "FINISHED", 60, trail, sizeof(trail));
    free(input);

    /* /cluster/metrics: exactly the seven fields of DESIGN.md §8. */
    json_t *m = get_json(cl, "/cluster/metrics");
    static const char *const fields[] = {
        "total_task_managers", "active_task_managers", "total_slots",
        "available_slots",     "utilization",          "total_jobs",
        "running_jobs"};
    assert_int_equal(json_object_size(m), INTEG_ARRAY_SIZE(fields));
    for (size_t i = 0; i < INTEG_ARRAY_SIZE(fields); i++) {
        CL_CHECK(cl, json_is_number(json_object_get(m, fields[i])),
                 "no number %s", fields[i]);
    }
    assert_int_equal(jint(m, "total_task_managers"), 3);
    assert_int_equal(jint(m, "active_task_managers"), 3);
    assert_int_equal(jint(m, "total_slots"), 6);
    assert_int_equal(jint(m, "available_slots"), 6);
    assert_true(json_number_value(json_object_get(m, "utilization")) == 0.0);
    assert_int_equal(jint(m, "total_jobs"), 1);
    assert_int_equal(jint(m, "running_jobs"), 0);
    json_decref(m);
    cluster_finish(cl);
}

/* ---- 6. not enough slots ---- */

static void test_not_enough_slots(void **state)
{
    static const char *const opts[] = {"-D", "scheduler.slot_wait=1s", NULL};
    cluster_t *cl = cluster_start(3, 2, opts);
    *state = cl;
    char *input = integ_path(cl->cl_tmp, "input.txt");
    integ_write_file(input, "a b c\n", 6);
    char id[33], trail[128] = "";
    double t0 = integ_now();
    submit(cl, WORD_COUNT_SO, 8, "", json_pack("[s]", input), id);
    wait_state(cl, id, "FAILED", 30, trail, sizeof(trail));
    double took = integ_now() - t0;
    CL_CHECK(cl, took >= 0.9, "failed after %.2f s, before slot_wait", took);
    CL_CHECK(cl,
             strcmp(trail, "CREATED FAILED") == 0 ||
                 strcmp(trail, "FAILED") == 0,
             "states: %s", trail);

    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s/exceptions", id);
    json_t *j = get_json(cl, path);
    json_t *ex = json_object_get(j, "exceptions");
    CL_CHECK(cl, json_array_size(ex) == 1, "%zu exceptions",
             json_array_size(ex));
    const char *msg = jstr(json_array_get(ex, 0), "message");
    CL_CHECK(cl,
             strstr(msg, "not enough slots") != NULL &&
                 strstr(msg, "needs 8") != NULL && strstr(msg, "of 6") != NULL,
             "exception: %s", msg);
    json_decref(j);
    snprintf(path, sizeof(path), "/jobs/%s/status", id);
    j = get_json(cl, path);
    CL_CHECK(cl, strstr(jstr(j, "failure"), "needs 8") != NULL, "failure: %s",
             jstr(j, "failure"));
    json_decref(j);

    /* The slots it never got are all free, and a job that fits runs. */
    json_t *m = get_json(cl, "/cluster/metrics");
    assert_int_equal(jint(m, "available_slots"), 6);
    json_decref(m);
    trail[0] = '\0';
    submit(cl, WORD_COUNT_SO, 6, "", json_pack("[s]", input), id);
    wait_state(cl, id, "FINISHED", 60, trail, sizeof(trail));
    free(input);
    cluster_finish(cl);
}

/* ---- 7. addresses, as on several machines ---- */

/* Whether a TCP connection to host:port is refused (nothing listens). */
static bool refused(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, host, &sa.sin_addr), 1);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(fd);
    return rc != 0 && e == ECONNREFUSED;
}

/* The port of "HOST:PORT" or "http://HOST:PORT/...", after `prefix`. */
static int port_after(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    assert_true(strncmp(s, prefix, n) == 0);
    return atoi(s + n);
}

static void test_addresses(void **state)
{
    static const char *const opts[] = {"--bind-host", "127.0.0.4", NULL};
    static const char *const hosts[] = {"127.0.0.2", "127.0.0.3"};
    cluster_t *cl = cluster_new(2, "127.0.0.4", opts);
    *state = cl;
    for (int i = 0; i < 2; i++) {
        cl->cl_tm_opts[i][0] = "--host";
        cl->cl_tm_opts[i][1] = hosts[i];
    }
    cluster_boot(cl, 2);

    /* The JobManager: REST and RPC on 127.0.0.4 only. */
    CL_CHECK(cl, refused("127.0.0.1", cl->cl_rest),
             "the REST port answers on 127.0.0.1");
    CL_CHECK(cl, refused("127.0.0.1", cl->cl_rpc),
             "the RPC port answers on 127.0.0.1");

    /* The TaskManagers, as the JobManager knows them. */
    json_t *j = get_json(cl, "/taskmanagers");
    json_t *tms = json_object_get(j, "taskmanagers");
    CL_CHECK(cl, json_array_size(tms) == 2, "%zu TaskManagers",
             json_array_size(tms));
    bool seen[2] = {false, false};
    size_t i;
    json_t *t;
    json_array_foreach(tms, i, t)
    {
        const char *data = jstr(t, "data_address");
        const char *metrics = jstr(t, "metrics_url");
        int h = strncmp(data, "127.0.0.2:", 10) == 0   ? 0
                : strncmp(data, "127.0.0.3:", 10) == 0 ? 1
                                                       : -1;
        CL_CHECK(cl, h >= 0, "data address %s", data);
        seen[h] = true;
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "%s:", hosts[h]);
        int dport = port_after(data, prefix);
        snprintf(prefix, sizeof(prefix), "http://%s:", hosts[h]);
        int mport = port_after(metrics, prefix);
        /* Listening there and only there. */
        CL_CHECK(cl, refused("127.0.0.1", dport),
                 "the data plane of %s answers on 127.0.0.1", hosts[h]);
        CL_CHECK(cl, refused("127.0.0.1", mport),
                 "the /metrics of %s answers on 127.0.0.1", hosts[h]);
        http_res_t r = http_get(cl, metrics);
        CL_CHECK(cl,
                 r.hr_status == 200 &&
                     strstr(r.hr_body, "eddy_slots_total") != NULL,
                 "GET %s: %ld", metrics, r.hr_status);
        http_res_free(&r);
    }
    CL_CHECK(cl, seen[0] && seen[1], "not both hosts announced");
    json_decref(j);

    /* Records cross between the two addresses. */
    run_word_count(cl);
    cluster_finish(cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_word_count, test_teardown),
        cmocka_unit_test_teardown(test_taskmanager_killed, test_teardown),
        cmocka_unit_test_teardown(test_jobmanager_killed, test_teardown),
        cmocka_unit_test_teardown(test_back_pressure, test_teardown),
        cmocka_unit_test_teardown(test_rest_hostility, test_teardown),
        cmocka_unit_test_teardown(test_not_enough_slots, test_teardown),
        cmocka_unit_test_teardown(test_addresses, test_teardown),
    };
    /* EDDY_TEST_FILTER=test_back_pressure runs one test (a pattern). */
    if (getenv("EDDY_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("EDDY_TEST_FILTER"));
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
