/*
 * eddy-cluster-bench — eddy as a cluster of processes on this machine:
 * data-plane throughput, recovery time, TaskManager footprint.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Every case starts the real `eddy` binary (fork + exec) as a
 * JobManager and TaskManagers on free loopback ports, with private data
 * dirs under one temporary directory, drives them through the REST API
 * (libcurl, one reused handle) and kills them at the end. Jobs come from
 * bench/jobs/cluster_jobs.c; they report through a mapped file
 * (cluster_jobs.h) because they run in other processes. Each case runs
 * --repeat times and prints the median of every figure:
 *
 *   shuffle     100-byte records from a generator in one TaskManager to a
 *               counting sink in another, every record over the data plane;
 *               records/s and MB/s (10^6 bytes of record values) from the
 *               generator's first record to the sink's N-th. Baseline: a
 *               bare TCP pump between two processes moving the same bytes
 *               in 32 KiB writes, run alternately in the same invocation.
 *   recovery    a keyed job (checkpoint every 500 ms) on two TaskManagers
 *               plus a spare; one is killed with SIGKILL. seconds: from the
 *               kill until GET /jobs/{id}/status shows RUNNING with a new
 *               attempt (polled every 10 ms); processing_s: until both
 *               sink subtasks processed records again, with restored state
 *               (checked: the counts continue from the checkpoint).
 *               recovery-delay0 is the same with -D restart.delay=0.
 *   taskmanager ms from spawning a TaskManager until GET /taskmanagers
 *               lists it ACTIVE, and its VmRSS after 1 s idle. Baselines:
 *               spawn + exit of /bin/true and of `eddy --version`.
 *
 * Figures cross processes through CLOCK_MONOTONIC, one clock for the
 * whole machine. Every child gets PR_SET_PDEATHSIG, so nothing outlives
 * the benchmark, even when it is killed.
 *
 * THREADS. One thread; children are processes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/internal.h"
#include "jobs/cluster_jobs.h"

#define EXIT_RUN_FAILED 1
#define EXIT_USAGE 2

#define MAX_REPEAT 99
#define MAX_PROCS 16
#define MAX_TMS 4
#define PUMP_CHUNK 32768
/* The recovery job: its keys and its rate in records/s (both subtasks),
 * low enough to leave CPU for recovery on two vCPUs. */
#define REC_KEYS "1000"
#define REC_RATE "200000"
#define REC_CKPT_MS "500"
#define STATUS_POLL_MS 10

static const char *const usage =
    "usage: eddy-cluster-bench [options] [CASE...]\n"
    "\n"
    "Starts the eddy binary as a JobManager and TaskManagers on loopback\n"
    "and measures (median of --repeat runs; one line per case):\n"
    "\n"
    "  case=shuffle eddy_rps=N eddy_mbps=N baseline_mbps=N ratio=R\n"
    "      crossed=F job_s=S\n"
    "      N 100-byte records from a generator (parallelism 1) in one\n"
    "      TaskManager to a counting sink in another (2 TaskManagers x 1\n"
    "      slot; the key routes every record to the remote sink subtask,\n"
    "      crossed = fraction that crossed the network). Time from the\n"
    "      first record leaving the generator to the N-th reaching the\n"
    "      sink; MB are 10^6 bytes of record values. Baseline: a TCP pump\n"
    "      between two processes (32 KiB writes, reader discards), same\n"
    "      bytes.\n"
    "      ratio = eddy_mbps / baseline_mbps. job_s: RUNNING to FINISHED\n"
    "      as GET /jobs/{id}/status shows it.\n"
    "  case=recovery seconds=S processing_s=S\n"
    "  case=recovery-delay0 seconds=S processing_s=S\n"
    "      A keyed count job (parallelism 2, checkpoint every 500 ms) on\n"
    "      2 TaskManagers plus a spare; one TaskManager running it is\n"
    "      killed with SIGKILL. seconds: until the JobManager reports\n"
    "      RUNNING with a new attempt (status polled every 10 ms);\n"
    "      processing_s: until both sink subtasks process records again\n"
    "      with restored counts. recovery uses the default restart\n"
    "      strategy (exponential-delay, 1 s first delay); recovery-delay0\n"
    "      starts the JobManager with -D restart.delay=0.\n"
    "  case=taskmanager startup_ms=N idle_rss_mb=N idle_rss_anon_mb=N\n"
    "      baseline_true_ms=N baseline_version_ms=N\n"
    "      baseline_version_rss_mb=N\n"
    "      Spawn of `eddy taskmanager` (4 slots) until GET /taskmanagers\n"
    "      lists it ACTIVE (polled every ms), and its VmRSS in MiB (of it\n"
    "      RssAnon: private memory) after 1 s idle. Baselines: spawn +\n"
    "      exit of /bin/true and of `eddy --version`, and the latter's\n"
    "      peak RSS (the binary and its libraries).\n"
    "\n"
    "Runs every case unless CASEs are named.\n"
    "\n"
    "Options:\n"
    "  -n, --records N   shuffle: records per run (default 10000000)\n"
    "  -r, --repeat R    runs per case; medians are reported (default 3)\n"
    "  --eddy PATH       the eddy binary (default: the one built with this)\n"
    "  --job PATH        cluster_jobs.so (default: the one built with this)\n"
    "  --keep            keep the temporary directory (logs, data dirs)\n"
    "  -l, --list        list the case names and exit\n"
    "  -v, --verbose     describe every run on stderr\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 success, 1 a case failed, 2 bad usage.\n";

typedef struct options {
    uint64_t o_records;
    int o_repeat;
    bool o_verbose;
    bool o_keep;
    const char *o_eddy;
    const char *o_job;
} options_t;

static options_t g_opt;
static char g_tmp[64]; /* everything of this run lives here */

/* ------------------------------------------------------------------------ */
/* Time and small helpers                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("eddy-cluster-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

static void verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void verbose(const char *fmt, ...)
{
    if (!g_opt.o_verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("  ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A port that was free a moment ago. The daemons refuse port 0, so the
 * benchmark picks ports itself; another process could take one in between,
 * which then shows as a JobManager that does not start. */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int port = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

/* ------------------------------------------------------------------------ */
/* Child processes                                                          */
/* ------------------------------------------------------------------------ */

typedef struct proc {
    pid_t p_pid; /* 0: none */
    char p_name[32];
    char p_log[256];
} proc_t;

/* Every live child, for the signal handler and the final cleanup. */
static volatile pid_t g_children[MAX_PROCS];

static void track(pid_t pid, bool add)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        if (add ? g_children[i] == 0 : g_children[i] == pid) {
            g_children[i] = add ? pid : 0;
            return;
        }
    }
}

static void on_signal(int sig)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        if (g_children[i] > 0) {
            kill(g_children[i], SIGKILL);
        }
    }
    _exit(128 + sig);
}

/* Starts argv[0] with stdout and stderr appended to `log` (NULL: discarded)
 * and stdin from /dev/null. Returns the pid, or -1. */
static pid_t spawn(char *const argv[], const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fail("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Die with the benchmark; check the parent did not die first. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int in = open("/dev/null", O_RDONLY);
        int out = open(log != NULL ? log : "/dev/null",
                       O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(out, 2) < 0) {
            _exit(127);
        }
        execv(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    track(pid, true);
    return pid;
}

/* Waits for `pid` (already signalled or exiting); returns its status. */
static int reap(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    track(pid, false);
    return st;
}

/* True if `p` has exited (and reaps it). */
static bool proc_exited(proc_t *p, int *status)
{
    if (p->p_pid <= 0) {
        return true;
    }
    if (waitpid(p->p_pid, status, WNOHANG) == p->p_pid) {
        track(p->p_pid, false);
        p->p_pid = 0;
        return true;
    }
    return false;
}

/* SIGTERM, up to 5 s to exit, then SIGKILL. */
static void proc_stop(proc_t *p)
{
    if (p->p_pid <= 0) {
        return;
    }
    kill(p->p_pid, SIGTERM);
    int st;
    for (int i = 0; i < 500; i++) {
        if (proc_exited(p, &st)) {
            return;
        }
        sleep_ms(10);
    }
    kill(p->p_pid, SIGKILL);
    reap(p->p_pid);
    p->p_pid = 0;
}

/* Prints the end of a child's log after an error. */
static void print_log_tail(const proc_t *p)
{
    FILE *f = fopen(p->p_log, "r");
    if (f == NULL) {
        return;
    }
    char buf[4096];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0,
          SEEK_SET);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "--- end of %s (%s) ---\n%s---\n", p->p_name, p->p_log,
            buf);
}

/* ------------------------------------------------------------------------ */
/* REST                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct body {
    char *b_data;
    size_t b_len;
    size_t b_cap;
} body_t;

static CURL *g_curl; /* reused: polls ride one keep-alive connection */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    body_t *b = arg;
    size_t len = size * n;
    if (b->b_len + len + 1 > b->b_cap) {
        size_t cap = (b->b_len + len + 1) * 2;
        char *p = realloc(b->b_data, cap);
        if (p == NULL) {
            return 0;
        }
        b->b_data = p;
        b->b_cap = cap;
    }
    memcpy(b->b_data + b->b_len, data, len);
    b->b_len += len;
    b->b_data[b->b_len] = '\0';
    return len;
}

/* One request to the JobManager at `base`. `mime` makes it a multipart
 * POST; `method` "POST" without mime posts an empty body. Returns the HTTP
 * status (0 when no answer arrived) and, if `json` is set, the parsed body
 * (NULL when it is not JSON). */
static long http(const char *base, const char *method, const char *path,
                 curl_mime *mime, json_t **json)
{
    char url[512];
    body_t b = {0};
    long status = 0;
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_reset(g_curl);
    curl_easy_setopt(g_curl, CURLOPT_URL, url);
    curl_easy_setopt(g_curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(g_curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(g_curl, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(g_curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(g_curl, CURLOPT_WRITEDATA, &b);
    if (mime != NULL) {
        curl_easy_setopt(g_curl, CURLOPT_MIMEPOST, mime);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(g_curl, CURLOPT_POSTFIELDS, "");
    }
    if (curl_easy_perform(g_curl) == CURLE_OK) {
        curl_easy_getinfo(g_curl, CURLINFO_RESPONSE_CODE, &status);
    }
    if (json != NULL) {
        *json = b.b_data != NULL ? json_loads(b.b_data, 0, NULL) : NULL;
    }
    free(b.b_data);
    return status;
}

/* The {"error"} text of a JSON answer, for messages. */
static const char *error_text(json_t *j)
{
    const char *s = json_string_value(json_object_get(j, "error"));
    return s != NULL ? s : "(no error text)";
}

/* ------------------------------------------------------------------------ */
/* A cluster                                                                */
/* ------------------------------------------------------------------------ */

typedef struct cluster {
    char cl_dir[128];
    char cl_base[64]; /* http://127.0.0.1:REST */
    int cl_rpc_port;
    proc_t cl_jm;
    proc_t cl_tm[MAX_TMS];
    int cl_ntm; /* TaskManagers started (some may have been killed) */
} cluster_t;

/* Number of ACTIVE TaskManagers (-1 on error). */
static int active_tms(cluster_t *cl)
{
    json_t *j = NULL;
    int n = -1;
    if (http(cl->cl_base, "GET", "/taskmanagers", NULL, &j) == 200) {
        json_t *a = json_object_get(j, "taskmanagers");
        size_t i;
        json_t *tm;
        n = 0;
        json_array_foreach(a, i, tm)
        {
            const char *st = json_string_value(json_object_get(tm, "state"));
            n += st != NULL && strcmp(st, "ACTIVE") == 0;
        }
    }
    json_decref(j);
    return n;
}

/* Starts one more TaskManager; returns its index. */
static int cluster_add_tm(cluster_t *cl, const char *slots)
{
    if (cl->cl_ntm == MAX_TMS) {
        return fail("too many TaskManagers");
    }
    int i = cl->cl_ntm++;
    proc_t *p = &cl->cl_tm[i];
    char jm[64], dir[200];
    snprintf(p->p_name, sizeof(p->p_name), "taskmanager-%d", i);
    snprintf(dir, sizeof(dir), "%s/%s", cl->cl_dir, p->p_name);
    snprintf(p->p_log, sizeof(p->p_log), "%s.log", dir);
    snprintf(jm, sizeof(jm), "127.0.0.1:%d", cl->cl_rpc_port);
    char *argv[] = {(char *)g_opt.o_eddy,
                    "taskmanager",
                    "--jobmanager",
                    jm,
                    "--data-dir",
                    dir,
                    "--slots",
                    (char *)slots,
                    NULL};
    if (slots == NULL) {
        argv[6] = NULL; /* the default number of slots */
    }
    p->p_pid = spawn(argv, p->p_log);
    return p->p_pid > 0 ? i : -1;
}

/* Waits until `want` TaskManagers are ACTIVE (10 s at most). */
static int cluster_wait_tms(cluster_t *cl, int want)
{
    for (int i = 0; i < 1000; i++) {
        int st;
        for (int t = 0; t < cl->cl_ntm; t++) {
            if (cl->cl_tm[t].p_pid > 0 && proc_exited(&cl->cl_tm[t], &st)) {
                print_log_tail(&cl->cl_tm[t]);
                return fail("%s exited while starting", cl->cl_tm[t].p_name);
            }
        }
        if (active_tms(cl) == want) {
            return 0;
        }
        sleep_ms(10);
    }
    return fail("%d TaskManagers did not register within 10 s", want);
}

static void cluster_stop(cluster_t *cl)
{
    /* The JobManager first, so it records nothing about tasks that end
     * because their TaskManager stops. */
    proc_stop(&cl->cl_jm);
    for (int i = 0; i < cl->cl_ntm; i++) {
        proc_stop(&cl->cl_tm[i]);
    }
}

/* A JobManager (with `define`, a -D KEY=VALUE, unless NULL) and `ntm`
 * TaskManagers of `slots` slots each, under a new directory named `name`. */
static int cluster_start(cluster_t *cl, const char *name, int ntm,
                         const char *slots, const char *define)
{
    memset(cl, 0, sizeof(*cl));
    snprintf(cl->cl_dir, sizeof(cl->cl_dir), "%s/%s", g_tmp, name);
    if (mkdir(cl->cl_dir, 0755) != 0) {
        return fail("cannot create %s: %s", cl->cl_dir, strerror(errno));
    }
    int rest = free_port(), rpc = free_port();
    if (rest < 0 || rpc < 0 || rest == rpc) {
        return fail("cannot find free loopback ports");
    }
    cl->cl_rpc_port = rpc;
    snprintf(cl->cl_base, sizeof(cl->cl_base), "http://127.0.0.1:%d", rest);
    char rest_s[16], rpc_s[16], dir[256];
    snprintf(rest_s, sizeof(rest_s), "%d", rest);
    snprintf(rpc_s, sizeof(rpc_s), "%d", rpc);
    snprintf(dir, sizeof(dir), "%s/jobmanager", cl->cl_dir);
    proc_t *p = &cl->cl_jm;
    snprintf(p->p_name, sizeof(p->p_name), "jobmanager");
    snprintf(p->p_log, sizeof(p->p_log), "%s/jobmanager.log", cl->cl_dir);
    char *argv[] = {(char *)g_opt.o_eddy,
                    "jobmanager",
                    "--rest-port",
                    rest_s,
                    "--rpc-port",
                    rpc_s,
                    "--data-dir",
                    dir,
                    define != NULL ? "-D" : NULL,
                    (char *)define,
                    NULL};
    p->p_pid = spawn(argv, p->p_log);
    if (p->p_pid < 0) {
        return -1;
    }
    bool up = false;
    for (int i = 0; i < 1000 && !up; i++) {
        int st;
        if (proc_exited(p, &st)) {
            print_log_tail(p);
            return fail("the JobManager exited while starting");
        }
        up = http(cl->cl_base, "GET", "/", NULL, NULL) == 200;
        if (!up) {
            sleep_ms(10);
        }
    }
    if (!up) {
        print_log_tail(p);
        cluster_stop(cl);
        return fail("the JobManager did not answer GET / within 10 s");
    }
    for (int i = 0; i < ntm; i++) {
        if (cluster_add_tm(cl, slots) < 0) {
            cluster_stop(cl);
            return -1;
        }
    }
    if (cluster_wait_tms(cl, ntm) != 0) {
        cluster_stop(cl);
        return -1;
    }
    return 0;
}

/* Submits cluster_jobs.so with `args` (a JSON array text); fills job_id. */
static int submit(cluster_t *cl, const char *args, const char *ckpt_ms,
                  char job_id[33])
{
    curl_mime *m = curl_mime_init(g_curl);
    curl_mimepart *pt = curl_mime_addpart(m);
    curl_mime_name(pt, "job_file");
    curl_mime_filedata(pt, g_opt.o_job);
    pt = curl_mime_addpart(m);
    curl_mime_name(pt, "parallelism");
    curl_mime_data(pt, "2", CURL_ZERO_TERMINATED);
    pt = curl_mime_addpart(m);
    curl_mime_name(pt, "args");
    curl_mime_data(pt, args, CURL_ZERO_TERMINATED);
    if (ckpt_ms != NULL) {
        pt = curl_mime_addpart(m);
        curl_mime_name(pt, "checkpoint_interval");
        curl_mime_data(pt, ckpt_ms, CURL_ZERO_TERMINATED);
    }
    json_t *j = NULL;
    long st = http(cl->cl_base, "POST", "/jobs/submit", m, &j);
    curl_mime_free(m);
    const char *id = json_string_value(json_object_get(j, "job_id"));
    int rc = 0;
    if (st != 200 || id == NULL || strlen(id) != 32) {
        rc = fail("POST /jobs/submit: HTTP %ld: %s", st,
                  j != NULL ? error_text(j) : "no answer");
    } else {
        memcpy(job_id, id, 33);
    }
    json_decref(j);
    return rc;
}

typedef struct job_status {
    char js_state[16];
    int js_attempt;
} job_status_t;

static int job_status(cluster_t *cl, const char *id, job_status_t *js)
{
    char path[128];
    json_t *j = NULL;
    snprintf(path, sizeof(path), "/jobs/%s/status", id);
    long st = http(cl->cl_base, "GET", path, NULL, &j);
    const char *s = json_string_value(json_object_get(j, "state"));
    int rc = 0;
    if (st != 200 || s == NULL) {
        rc = fail("GET %s: HTTP %ld: %s", path, st,
                  j != NULL ? error_text(j) : "no answer");
    } else {
        snprintf(js->js_state, sizeof(js->js_state), "%s", s);
        js->js_attempt = (int)json_integer_value(json_object_get(j, "attempt"));
    }
    json_decref(j);
    return rc;
}

/* The job's failure text, for a message. */
static void print_failure(cluster_t *cl, const char *id)
{
    char path[128];
    json_t *j = NULL;
    snprintf(path, sizeof(path), "/jobs/%s/status", id);
    http(cl->cl_base, "GET", path, NULL, &j);
    const char *f = json_string_value(json_object_get(j, "failure"));
    fprintf(stderr, "eddy-cluster-bench: job %s: %s\n", id,
            f != NULL ? f : "(no failure text)");
    json_decref(j);
}

static int64_t completed_checkpoints(cluster_t *cl, const char *id)
{
    char path[128];
    json_t *j = NULL;
    snprintf(path, sizeof(path), "/jobs/%s/checkpoints", id);
    int64_t n = -1;
    if (http(cl->cl_base, "GET", path, NULL, &j) == 200) {
        n = json_integer_value(
            json_object_get(json_object_get(j, "counts"), "completed"));
    }
    json_decref(j);
    return n;
}

static void cancel_job(cluster_t *cl, const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s/cancel", id);
    http(cl->cl_base, "POST", path, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* The report page                                                          */
/* ------------------------------------------------------------------------ */

/* Creates `path` as a zeroed report page and maps it. */
static cj_page_t *page_new(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fail("cannot create %s: %s", path, strerror(errno));
        return NULL;
    }
    void *p = MAP_FAILED;
    if (ftruncate(fd, sizeof(cj_page_t)) == 0) {
        p = mmap(NULL, sizeof(cj_page_t), PROT_READ | PROT_WRITE, MAP_SHARED,
                 fd, 0);
    }
    close(fd);
    if (p == MAP_FAILED) {
        fail("cannot map %s: %s", path, strerror(errno));
        return NULL;
    }
    ((cj_page_t *)p)->cp_magic = CJ_MAGIC;
    return p;
}

static uint64_t ld(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* shuffle                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct shuffle_run {
    double sr_secs;    /* first record generated -> N-th counted */
    double sr_job_s;   /* RUNNING -> FINISHED in the JobManager's view */
    double sr_crossed; /* fraction counted in another process */
} shuffle_run_t;

/* The one-byte key whose key group sink subtask 1 (of 2) owns. */
static int remote_key(void)
{
    for (int k = 0; k < 256; k++) {
        unsigned char b = (unsigned char)k;
        int kg = eddy__key_group(eddy__hash64(&b, 1), CJ_MAX_PARALLELISM);
        if (eddy__key_group_subtask(kg, CJ_MAX_PARALLELISM, 2) == 1) {
            return k;
        }
    }
    return -1;
}

static int run_shuffle_eddy(cluster_t *cl, int run, shuffle_run_t *sr)
{
    char page_path[256], args[512], id[33];
    snprintf(page_path, sizeof(page_path), "%s/shuffle-%d.page", cl->cl_dir,
             run);
    cj_page_t *pg = page_new(page_path);
    if (pg == NULL) {
        return -1;
    }
    int key = remote_key();
    int rc = -1;
    snprintf(args, sizeof(args),
             "[\"shuffle\", \"%" PRIu64 "\", \"%d\", \"%s\"]", g_opt.o_records,
             key, page_path);
    if (submit(cl, args, NULL, id) != 0) {
        goto out;
    }
    uint64_t t_running = 0, t_end = 0;
    /* A minute plus 1 us per record: far beyond any plausible run. */
    uint64_t t_submit = now_ns();
    uint64_t deadline =
        t_submit + UINT64_C(60000000000) + g_opt.o_records * UINT64_C(1000);
    job_status_t js;
    for (;;) {
        if (job_status(cl, id, &js) != 0) {
            goto out;
        }
        uint64_t t = now_ns();
        if (t > deadline) {
            fail("shuffle: the job is still %s after %.0f s; the sinks "
                 "counted %" PRIu64 " and %" PRIu64 " of %" PRIu64 " records",
                 js.js_state, (double)(t - t_submit) / 1e9,
                 ld(&pg->cp_sub[0].cs_records), ld(&pg->cp_sub[1].cs_records),
                 g_opt.o_records);
            cancel_job(cl, id);
            goto out;
        }
        if (t_running == 0 && strcmp(js.js_state, "CREATED") != 0) {
            t_running = t;
        }
        if (strcmp(js.js_state, "FINISHED") == 0) {
            t_end = t;
            break;
        }
        if (strcmp(js.js_state, "RUNNING") != 0 &&
            strcmp(js.js_state, "CREATED") != 0) {
            print_failure(cl, id);
            fail("shuffle: the job ended %s", js.js_state);
            goto out;
        }
        sleep_ms(STATUS_POLL_MS);
    }
    uint64_t total = 0, crossed = 0, last = 0;
    uint64_t src_pid = ld(&pg->cp_src_pid);
    for (int s = 0; s < 2; s++) {
        cj_sub_t *sub = &pg->cp_sub[s];
        uint64_t n = ld(&sub->cs_records);
        total += n;
        if (n > 0 && ld(&sub->cs_pid) != src_pid) {
            crossed += n;
        }
        if (ld(&sub->cs_last_ns) > last) {
            last = ld(&sub->cs_last_ns);
        }
    }
    if (total != g_opt.o_records || last == 0) {
        fail("shuffle: the sink counted %" PRIu64 " records, not %" PRIu64,
             total, g_opt.o_records);
        goto out;
    }
    sr->sr_secs = (double)(last - ld(&pg->cp_src_first_ns)) / 1e9;
    sr->sr_job_s = (double)(t_end - t_running) / 1e9;
    sr->sr_crossed = (double)crossed / (double)total;
    verbose("shuffle run %d: eddy %" PRIu64 " records in %.3f s (%.0f MB/s), "
            "%.3f crossed, job RUNNING->FINISHED %.3f s",
            run, total, sr->sr_secs,
            (double)total * CJ_VALUE_BYTES / sr->sr_secs / 1e6, sr->sr_crossed,
            sr->sr_job_s);
    rc = 0;
out:
    munmap(pg, sizeof(*pg));
    return rc;
}

/* The bare pump: a writer process sends `bytes` in PUMP_CHUNK writes over
 * loopback TCP to a reader process that reads and discards them. Returns
 * the seconds from the writer's first write to the reader's last read. */
static int run_pump(uint64_t bytes, double *secs)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
        if (lfd >= 0) {
            close(lfd);
        }
        return fail("pump: cannot listen on loopback: %s", strerror(errno));
    }
    /* [0] writer's start, [1] reader's end, [2] bytes the reader got. */
    uint64_t *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        close(lfd);
        return fail("pump: mmap: %s", strerror(errno));
    }
    pid_t reader = fork();
    if (reader == 0) {
        static char buf[PUMP_CHUNK];
        int fd = accept(lfd, NULL, NULL);
        uint64_t got = 0;
        ssize_t n;
        while (fd >= 0 && got < bytes &&
               ((n = read(fd, buf, sizeof(buf))) > 0 ||
                (n < 0 && errno == EINTR))) {
            got += n > 0 ? (uint64_t)n : 0;
        }
        shared[1] = now_ns();
        shared[2] = got;
        _exit(got == bytes ? 0 : 1);
    }
    pid_t writer = reader > 0 ? fork() : -1;
    if (writer == 0) {
        static char buf[PUMP_CHUNK];
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            _exit(1);
        }
        memset(buf, 'x', sizeof(buf));
        shared[0] = now_ns();
        uint64_t sent = 0;
        while (sent < bytes) {
            size_t want = bytes - sent < sizeof(buf) ? (size_t)(bytes - sent)
                                                     : sizeof(buf);
            ssize_t n = write(fd, buf, want);
            if (n < 0 && errno != EINTR) {
                _exit(1);
            }
            sent += n > 0 ? (uint64_t)n : 0;
        }
        close(fd);
        _exit(0);
    }
    close(lfd);
    int rc = 0;
    if (reader < 0 || writer < 0) {
        rc = fail("pump: fork: %s", strerror(errno));
        if (reader > 0) {
            kill(reader, SIGKILL);
        }
    }
    if (reader > 0) {
        track(reader, true);
    }
    if (writer > 0) {
        track(writer, true);
    }
    int rst = reader > 0 ? reap(reader) : 0;
    int wst = writer > 0 ? reap(writer) : 0;
    if (rc == 0 && (!WIFEXITED(rst) || WEXITSTATUS(rst) != 0 ||
                    !WIFEXITED(wst) || WEXITSTATUS(wst) != 0)) {
        rc = fail("pump: the reader got %" PRIu64 " of %" PRIu64 " bytes",
                  shared[2], bytes);
    }
    if (rc == 0) {
        *secs = (double)(shared[1] - shared[0]) / 1e9;
        verbose("shuffle pump: %" PRIu64 " bytes in %.3f s (%.0f MB/s)", bytes,
                *secs, (double)bytes / *secs / 1e6);
    }
    munmap(shared, 4096);
    return rc;
}

static int case_shuffle(void)
{
    cluster_t cl;
    int rc = -1, n = g_opt.o_repeat;
    double rps[MAX_REPEAT], mbps[MAX_REPEAT], base[MAX_REPEAT];
    double crossed[MAX_REPEAT], job[MAX_REPEAT];
    uint64_t bytes = g_opt.o_records * CJ_VALUE_BYTES;
    if (remote_key() < 0) {
        return fail("shuffle: no one-byte key lands on subtask 1");
    }
    if (cluster_start(&cl, "shuffle", 2, "1", NULL) != 0) {
        return -1;
    }
    /* Alternate, so both sides see the same machine. */
    for (int r = 0; r < n; r++) {
        shuffle_run_t sr;
        double secs = 0;
        if (run_shuffle_eddy(&cl, r, &sr) != 0 || run_pump(bytes, &secs) != 0) {
            goto out;
        }
        rps[r] = (double)g_opt.o_records / sr.sr_secs;
        mbps[r] = (double)bytes / sr.sr_secs / 1e6;
        base[r] = (double)bytes / secs / 1e6;
        crossed[r] = sr.sr_crossed;
        job[r] = sr.sr_job_s;
    }
    double m_mbps = median(mbps, n), m_base = median(base, n);
    printf("case=shuffle eddy_rps=%.0f eddy_mbps=%.0f baseline_mbps=%.0f "
           "ratio=%.3f crossed=%.3f job_s=%.3f\n",
           median(rps, n), m_mbps, m_base, m_mbps / m_base, median(crossed, n),
           median(job, n));
    fflush(stdout);
    rc = 0;
out:
    cluster_stop(&cl);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* recovery                                                                 */
/* ------------------------------------------------------------------------ */

/* Smallest cs_last_count of the two subtasks; 0 if one has none. */
static uint64_t min_count(cj_page_t *pg)
{
    uint64_t a = ld(&pg->cp_sub[0].cs_last_count);
    uint64_t b = ld(&pg->cp_sub[1].cs_last_count);
    return a < b ? a : b;
}

/* Waits (1 ms polls, `timeout_s`) until both subtasks processed a record
 * after `t`; returns the time it saw that, or 0. */
static uint64_t wait_progress(cj_page_t *pg, uint64_t t, double timeout_s)
{
    uint64_t end = now_ns() + (uint64_t)(timeout_s * 1e9);
    while (now_ns() < end) {
        if (ld(&pg->cp_sub[0].cs_last_ns) > t &&
            ld(&pg->cp_sub[1].cs_last_ns) > t) {
            return now_ns();
        }
        sleep_ms(1);
    }
    return 0;
}

static int run_recovery(const char *define, int run, double *secs,
                        double *proc_s)
{
    cluster_t cl;
    char name[64], page_path[256], args[512], id[33] = "";
    snprintf(name, sizeof(name), "recovery%s-%d", define ? "-delay0" : "", run);
    /* Two TaskManagers for the job and a spare to take over. */
    if (cluster_start(&cl, name, 3, "1", define) != 0) {
        return -1;
    }
    int rc = -1;
    snprintf(page_path, sizeof(page_path), "%s/keyed.page", cl.cl_dir);
    cj_page_t *pg = page_new(page_path);
    if (pg == NULL) {
        goto out;
    }
    snprintf(args, sizeof(args),
             "[\"keyed\", \"" REC_KEYS "\", \"" REC_RATE "\", \"%s\"]",
             page_path);
    if (submit(&cl, args, REC_CKPT_MS, id) != 0) {
        goto out;
    }
    /* Running, both subtasks counting, and a checkpoint taken entirely
     * after the counts reached `mark`: the state to restore. */
    if (wait_progress(pg, now_ns(), 30) == 0) {
        print_failure(&cl, id);
        fail("recovery: the job did not start processing within 30 s");
        goto out;
    }
    sleep_ms(1000);
    uint64_t mark = min_count(pg);
    int64_t ck0 = completed_checkpoints(&cl, id);
    for (int i = 0; i < 1000 && completed_checkpoints(&cl, id) < ck0 + 2; i++) {
        sleep_ms(10);
    }
    int64_t ck1 = completed_checkpoints(&cl, id);
    if (ck0 < 0 || ck1 < ck0 + 2) {
        fail("recovery: checkpoints do not complete (%" PRId64 " -> %" PRId64
             " in 10 s)",
             ck0, ck1);
        goto out;
    }
    job_status_t js;
    if (job_status(&cl, id, &js) != 0) {
        goto out;
    }
    if (strcmp(js.js_state, "RUNNING") != 0) {
        fail("recovery: the job is %s before the kill", js.js_state);
        goto out;
    }
    int attempt0 = js.js_attempt;
    /* The victim: the TaskManager running progress subtask 1. */
    pid_t victim = (pid_t)ld(&pg->cp_sub[1].cs_pid);
    int vi = -1;
    for (int i = 0; i < cl.cl_ntm; i++) {
        if (cl.cl_tm[i].p_pid == victim) {
            vi = i;
        }
    }
    if (vi < 0) {
        fail("recovery: subtask 1 runs in pid %d, not one of ours", victim);
        goto out;
    }
    uint64_t t_kill = now_ns();
    kill(victim, SIGKILL);
    uint64_t t_running = 0;
    while (now_ns() - t_kill < UINT64_C(60000000000)) {
        if (job_status(&cl, id, &js) != 0) {
            goto out;
        }
        if (strcmp(js.js_state, "RUNNING") == 0 && js.js_attempt > attempt0) {
            t_running = now_ns();
            break;
        }
        if (strcmp(js.js_state, "RUNNING") != 0 &&
            strcmp(js.js_state, "RESTARTING") != 0) {
            print_failure(&cl, id);
            fail("recovery: the job went %s", js.js_state);
            goto out;
        }
        sleep_ms(STATUS_POLL_MS);
    }
    reap(victim);
    cl.cl_tm[vi].p_pid = 0;
    if (t_running == 0) {
        fail("recovery: the job was not RUNNING again within 60 s");
        goto out;
    }
    uint64_t t_proc = wait_progress(pg, t_running, 30);
    if (t_proc == 0) {
        print_failure(&cl, id);
        fail("recovery: RUNNING again, but no records within 30 s");
        goto out;
    }
    uint64_t restored = min_count(pg);
    *secs = (double)(t_running - t_kill) / 1e9;
    *proc_s = (double)(t_proc - t_kill) / 1e9;
    verbose("%s run %d: killed pid %d; RUNNING (attempt %d -> %d) after "
            "%.3f s, processing after %.3f s; counts %" PRIu64
            " at the mark, %" PRIu64 " after the restart",
            define ? "recovery-delay0" : "recovery", run, victim, attempt0,
            js.js_attempt, *secs, *proc_s, mark, restored);
    /* Restored counts continue from a checkpoint taken after the mark;
     * counts that started over would be near 1 this soon after restart. */
    if (mark < 50 || restored < mark / 2) {
        fail("recovery: the state was not restored (count %" PRIu64
             " at the mark, %" PRIu64 " after the restart)",
             mark, restored);
        goto out;
    }
    rc = 0;
out:
    if (id[0] != '\0') {
        cancel_job(&cl, id);
    }
    if (pg != NULL) {
        munmap(pg, sizeof(*pg));
    }
    cluster_stop(&cl);
    return rc;
}

static int case_recovery(bool delay0)
{
    int n = g_opt.o_repeat;
    double secs[MAX_REPEAT], proc_s[MAX_REPEAT];
    for (int r = 0; r < n; r++) {
        if (run_recovery(delay0 ? "restart.delay=0" : NULL, r, &secs[r],
                         &proc_s[r]) != 0) {
            return -1;
        }
    }
    printf("case=%s seconds=%.3f processing_s=%.3f\n",
           delay0 ? "recovery-delay0" : "recovery", median(secs, n),
           median(proc_s, n));
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* taskmanager                                                              */
/* ------------------------------------------------------------------------ */

/* `field` ("VmRSS", "RssAnon") of /proc/PID/status in KiB, or -1. */
static long proc_status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t n = strlen(field);
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kib = strtol(line + n + 1, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kib;
}

/* ms to spawn `argv` and see it exit with status 0, and its peak RSS. */
static int time_exit(char *const argv[], double *ms, double *rss_mib)
{
    struct rusage ru;
    int st = 0;
    uint64_t t0 = now_ns();
    pid_t pid = spawn(argv, NULL);
    if (pid < 0) {
        return -1;
    }
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {
    }
    *ms = (double)(now_ns() - t0) / 1e6;
    track(pid, false);
    *rss_mib = (double)ru.ru_maxrss / 1024; /* ru_maxrss is in KiB */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        return fail("%s exited with status %d", argv[0], st);
    }
    return 0;
}

static int case_taskmanager(void)
{
    cluster_t cl;
    int rc = -1, n = g_opt.o_repeat;
    double start[MAX_REPEAT], rss[MAX_REPEAT], btrue[MAX_REPEAT],
        bver[MAX_REPEAT], bver_rss[MAX_REPEAT], rss_anon[MAX_REPEAT], true_rss;
    char *true_argv[] = {"/bin/true", NULL};
    char *ver_argv[] = {(char *)g_opt.o_eddy, "--version", NULL};
    if (cluster_start(&cl, "taskmanager", 0, NULL, NULL) != 0) {
        return -1;
    }
    for (int r = 0; r < n; r++) {
        if (time_exit(true_argv, &btrue[r], &true_rss) != 0 ||
            time_exit(ver_argv, &bver[r], &bver_rss[r]) != 0) {
            goto out;
        }
        uint64_t t0 = now_ns();
        int i = cluster_add_tm(&cl, NULL);
        if (i < 0) {
            goto out;
        }
        proc_t *p = &cl.cl_tm[i];
        bool up = false;
        while (!up && now_ns() - t0 < UINT64_C(10000000000)) {
            int st;
            if (proc_exited(p, &st)) {
                print_log_tail(p);
                fail("%s exited while starting", p->p_name);
                goto out;
            }
            up = active_tms(&cl) == 1;
            if (!up) {
                sleep_ms(1);
            }
        }
        start[r] = (double)(now_ns() - t0) / 1e6;
        if (!up) {
            fail("the TaskManager did not register within 10 s");
            goto out;
        }
        sleep_ms(1000);
        long kib = proc_status_kib(p->p_pid, "VmRSS");
        long anon = proc_status_kib(p->p_pid, "RssAnon");
        if (kib < 0 || anon < 0) {
            fail("cannot read VmRSS of pid %d", (int)p->p_pid);
            goto out;
        }
        rss[r] = (double)kib / 1024;
        rss_anon[r] = (double)anon / 1024;
        verbose("taskmanager run %d: registered after %.1f ms, VmRSS %.1f "
                "MiB (anonymous %.1f) after 1 s idle; /bin/true %.1f ms, eddy "
                "--version %.1f ms (peak RSS %.1f MiB)",
                r, start[r], rss[r], rss_anon[r], btrue[r], bver[r],
                bver_rss[r]);
        /* Gone from the JobManager's view before the next one starts. */
        proc_stop(p);
        for (int k = 0; k < 500 && active_tms(&cl) != 0; k++) {
            sleep_ms(10);
        }
        if (active_tms(&cl) != 0) {
            fail("a stopped TaskManager stays ACTIVE");
            goto out;
        }
        cl.cl_ntm--; /* its slot in cl_tm serves the next run */
    }
    printf("case=taskmanager startup_ms=%.1f idle_rss_mb=%.1f "
           "idle_rss_anon_mb=%.1f baseline_true_ms=%.1f "
           "baseline_version_ms=%.1f baseline_version_rss_mb=%.1f\n",
           median(start, n), median(rss, n), median(rss_anon, n),
           median(btrue, n), median(bver, n), median(bver_rss, n));
    fflush(stdout);
    rc = 0;
out:
    cluster_stop(&cl);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

typedef enum case_id {
    CASE_SHUFFLE,
    CASE_RECOVERY,
    CASE_RECOVERY_DELAY0,
    CASE_TASKMANAGER,
    NCASES
} case_id_t;

static const char *const case_names[NCASES] = {
    "shuffle", "recovery", "recovery-delay0", "taskmanager"};

static int run_case(case_id_t c)
{
    switch (c) {
    case CASE_SHUFFLE:
        return case_shuffle();
    case CASE_RECOVERY:
        return case_recovery(false);
    case CASE_RECOVERY_DELAY0:
        return case_recovery(true);
    default:
        return case_taskmanager();
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static bool parse_count(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0 ||
        v > max) {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

/* The value of option argv[*i] ("--opt=V", "--opt V" or "-o V"), or NULL
 * after a message. */
static const char *option_value(int argc, char **argv, int *i)
{
    const char *arg = argv[*i], *eq = strchr(arg, '=');
    if (arg[1] == '-' && eq != NULL) {
        return eq + 1;
    }
    if (*i + 1 >= argc) {
        fail("option '%s' needs a value", arg);
        return NULL;
    }
    return argv[++*i];
}

static bool is_option(const char *arg, const char *s, const char *l)
{
    size_t n = strlen(l);
    return (s != NULL && strcmp(arg, s) == 0) || strcmp(arg, l) == 0 ||
           (strncmp(arg, l, n) == 0 && arg[n] == '=');
}

/* Parses argv into g_opt and `run`; returns -1 to go on, else an exit
 * status. */
static int parse_args(int argc, char **argv, bool run[NCASES], int *nrun)
{
    bool names_only = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        uint64_t u;
        if (names_only || arg[0] != '-') {
            int c = 0;
            while (c < NCASES && strcmp(case_names[c], arg) != 0) {
                c++;
            }
            if (c == NCASES) {
                fail("unknown case '%s' (see eddy-cluster-bench --list)", arg);
                return EXIT_USAGE;
            }
            run[c] = true;
            (*nrun)++;
        } else if (strcmp(arg, "--") == 0) {
            names_only = true;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(arg, "-l") == 0 || strcmp(arg, "--list") == 0) {
            for (int c = 0; c < NCASES; c++) {
                puts(case_names[c]);
            }
            return 0;
        } else if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
            g_opt.o_verbose = true;
        } else if (strcmp(arg, "--keep") == 0) {
            g_opt.o_keep = true;
        } else if (is_option(arg, "-n", "--records")) {
            if ((v = option_value(argc, argv, &i)) == NULL) {
                return EXIT_USAGE;
            }
            if (!parse_count(v, UINT64_C(1) << 36, &g_opt.o_records)) {
                fail("--records: '%s' is not a count in 1..2^36", v);
                return EXIT_USAGE;
            }
        } else if (is_option(arg, "-r", "--repeat")) {
            if ((v = option_value(argc, argv, &i)) == NULL) {
                return EXIT_USAGE;
            }
            if (!parse_count(v, MAX_REPEAT, &u)) {
                fail("--repeat: '%s' is not a count in 1..%d", v, MAX_REPEAT);
                return EXIT_USAGE;
            }
            g_opt.o_repeat = (int)u;
        } else if (is_option(arg, NULL, "--eddy") ||
                   is_option(arg, NULL, "--job")) {
            if ((v = option_value(argc, argv, &i)) == NULL) {
                return EXIT_USAGE;
            }
            *(arg[2] == 'e' ? &g_opt.o_eddy : &g_opt.o_job) = v;
        } else {
            fail("unknown option '%s' (see eddy-cluster-bench --help)", arg);
            return EXIT_USAGE;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    bool run[NCASES] = {false};
    int nrun = 0;
    g_opt = (options_t){10000000, 3, false, false, EDDY_BIN, CLUSTER_JOBS_SO};
    int status = parse_args(argc, argv, run, &nrun);
    if (status >= 0) {
        return status;
    }
    if (access(g_opt.o_eddy, X_OK) != 0 || access(g_opt.o_job, R_OK) != 0) {
        fail("cannot use %s or %s: %s (build them, or see --eddy, --job)",
             g_opt.o_eddy, g_opt.o_job, strerror(errno));
        return EXIT_RUN_FAILED;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/eddy-cluster-bench-XXXXXX");
    if (mkdtemp(g_tmp) == NULL) {
        fail("cannot create a directory under /tmp: %s", strerror(errno));
        return EXIT_RUN_FAILED;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
        (g_curl = curl_easy_init()) == NULL) {
        fail("cannot initialise libcurl");
        return EXIT_RUN_FAILED;
    }
    status = 0;
    for (int c = 0; c < NCASES; c++) {
        if ((nrun == 0 || run[c]) && run_case((case_id_t)c) != 0) {
            fail("case %s failed%s", case_names[c],
                 g_opt.o_keep ? "" : " (--keep keeps the logs)");
            status = EXIT_RUN_FAILED;
        }
    }
    curl_easy_cleanup(g_curl);
    curl_global_cleanup();
    if (g_opt.o_keep) {
        fprintf(stderr, "eddy-cluster-bench: logs and data dirs kept in %s\n",
                g_tmp);
    } else {
        nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    return status;
}
