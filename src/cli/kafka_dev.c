/*
 * eddy — `eddy kafka-dev`: a Kafka-protocol broker for development and tests.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §2, §6). The broker is librdkafka's mock cluster
 * (rd_kafka_mock_cluster_new), kept in memory in this process: producers,
 * consumers, consumer groups and offset commits of any Kafka client work
 * against it, with the limits listed in --help. The command prints the
 * bootstrap address as one line on stdout, then sleeps in sigwait() until
 * SIGINT or SIGTERM, destroys the cluster and exits 0.
 *
 * PORTS. librdkafka 2.0.2 has no API to choose the mock brokers' ports: each
 * broker creates a socket and binds it to 127.0.0.1 port 0 (a kernel-chosen
 * port) inside rd_kafka_mock_cluster_new, on the calling thread. Nor may
 * that bind fail: its error path destroys the half-built cluster and trips
 * an assertion in librdkafka (abort). So kafka_dev_start() first binds one
 * socket per broker itself, to --port, --port+1, ... (with SO_REUSEADDR, so
 * a restart right after clients disconnected does not fail on connections
 * in TIME_WAIT); a port in use is then our clear error, before librdkafka
 * runs. Then, while rd_kafka_mock_cluster_new runs on this thread (a
 * thread-local plan), the `bind` defined here, which librdkafka's call
 * resolves to because the executable comes first in the dynamic symbol
 * lookup, moves the next pre-bound socket onto librdkafka's descriptor
 * (dup2) instead of binding to port 0. Every other bind goes unchanged to
 * the C library. The brokers then listen on, and advertise in their
 * metadata, exactly the requested ports. `--port 0` skips all this and lets
 * the kernel choose.
 *
 * THREADS. Signals are blocked before librdkafka starts its threads, so they
 * inherit the mask and only sigwait() in the main thread receives SIGINT and
 * SIGTERM. librdkafka logs from its own threads through log_cb.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "commands.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2

#define MAX_BROKERS 32
#define MAX_PARTITIONS 10000
#define MAX_TOPIC_NAME 249 /* Kafka's limit */

const char *const eddy__cli_kafka_dev_usage =
    "usage: eddy kafka-dev [--port 9092] [--brokers 1] "
    "[--topic NAME:PARTITIONS]...\n"
    "\n"
    "Runs a Kafka-protocol broker for development and tests in this process\n"
    "(librdkafka's mock cluster, data in memory only) until SIGINT or\n"
    "SIGTERM, then exits 0. Once it accepts connections it prints one line\n"
    "on standard output:\n"
    "  bootstrap: 127.0.0.1:PORT[,127.0.0.1:PORT...]\n"
    "Brokers listen on 127.0.0.1 only.\n"
    "\n"
    "Options:\n"
    "  --port N                 port of the first broker; broker k listens on\n"
    "                           N+k-1 (default 9092; 0: ports chosen by the\n"
    "                           system)\n"
    "  --brokers N              number of brokers, 1..32 (default 1)\n"
    "  --topic NAME:PARTITIONS  create topic NAME with PARTITIONS partitions\n"
    "                           (1..10000); repeat for more topics\n"
    "  -h, --help               show this help\n"
    "\n"
    "Limits of the mock cluster (librdkafka 2.0.2): topics that are not\n"
    "created with --topic are created on first use with 4 partitions;\n"
    "CreateTopics requests time out; about 5 MiB (or 100k batches) are kept\n"
    "per partition and older records are dropped silently; fetching by\n"
    "timestamp (ListOffsets with a time) is not supported; transactions are\n"
    "accepted but not isolated (read_committed consumers see aborted\n"
    "records) and send_offsets_to_transaction stores nothing.\n"
    "\n"
    "Exit status: 0 stopped by a signal, 1 the broker could not start (for\n"
    "example a port in use), 2 bad usage.\n"
    "\n"
    "Example:\n"
    "  eddy kafka-dev --port 9092 --topic orders:8 --topic audit:1\n";

/* ---- bind(2) interposition (see PORTS above) ---- */

typedef struct bind_plan {
    bool bp_active;
    int bp_fds[MAX_BROKERS]; /* pre-bound sockets, in port order */
    int bp_nfds;
    int bp_next; /* the next one to hand out */
} bind_plan_t;

static _Thread_local bind_plan_t bind_plan;

typedef int (*bind_fn_t)(int, const struct sockaddr *, socklen_t);

/* Exported from the executable so that librdkafka's calls resolve here. */
__attribute__((visibility("default"))) int
bind(int fd, const struct sockaddr *addr, socklen_t len);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static _Atomic(bind_fn_t) real_bind;
    bind_fn_t real = atomic_load(&real_bind);
    if (real == NULL) {
        real = (bind_fn_t)dlsym(RTLD_NEXT, "bind");
        if (real == NULL) {
            errno = ENOSYS;
            return -1;
        }
        atomic_store(&real_bind, real);
    }
    bind_plan_t *bp = &bind_plan;
    if (!bp->bp_active || addr == NULL || addr->sa_family != AF_INET ||
        len < (socklen_t)sizeof(struct sockaddr_in)) {
        return real(fd, addr, len);
    }
    struct sockaddr_in sin;
    memcpy(&sin, addr, sizeof(sin));
    if (sin.sin_port != 0 || sin.sin_addr.s_addr != htonl(INADDR_LOOPBACK) ||
        bp->bp_next == bp->bp_nfds) {
        return real(fd, addr, len);
    }
    /* Replace librdkafka's unbound socket by our bound one, keeping its
     * descriptor number and close-on-exec flag. */
    int ours = bp->bp_fds[bp->bp_next];
    int fdflags = fcntl(fd, F_GETFD);
    if (dup2(ours, fd) < 0) {
        return -1;
    }
    if (fdflags >= 0) {
        (void)fcntl(fd, F_SETFD, fdflags);
    }
    close(ours);
    bp->bp_fds[bp->bp_next++] = -1;
    return 0;
}

/* ---- the command ---- */

typedef struct dev_topic {
    char *dt_name;
    int dt_partitions;
} dev_topic_t;

typedef struct dev_opts {
    int do_port;
    int do_brokers;
    dev_topic_t *do_topics;
    int do_ntopics;
} dev_opts_t;

/* librdkafka logs silently while the cluster starts (failures become one
 * clear error line of ours); afterwards warnings and errors go to stderr. */
static atomic_bool dev_logging;

static void dev_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                       const char *buf)
{
    (void)rk;
    if (level <= LOG_WARNING && atomic_load(&dev_logging)) {
        fprintf(stderr, "eddy kafka-dev: %s: %s\n", fac, buf);
    }
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("eddy kafka-dev: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see 'eddy kafka-dev --help')\n", stderr);
    return EXIT_USAGE;
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        return false;
    }
    *out = (int)v;
    return true;
}

static bool topic_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAX_TOPIC_NAME || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

static int add_topic(dev_opts_t *o, const char *spec)
{
    const char *colon = strrchr(spec, ':');
    if (colon == NULL) {
        return usage_error("--topic needs NAME:PARTITIONS, got '%s'", spec);
    }
    size_t n = (size_t)(colon - spec);
    if (!topic_name_ok(spec, n)) {
        return usage_error("invalid topic name in '%s' (1..249 characters "
                           "of a-z A-Z 0-9 . _ -)",
                           spec);
    }
    int parts;
    if (!parse_int(colon + 1, 1, MAX_PARTITIONS, &parts)) {
        return usage_error("the partition count in '%s' must be an integer "
                           "in 1..10000",
                           spec);
    }
    char *name = malloc(n + 1);
    if (name == NULL) {
        fputs("eddy kafka-dev: out of memory\n", stderr);
        return EXIT_FAILED;
    }
    memcpy(name, spec, n);
    name[n] = '\0';
    for (int i = 0; i < o->do_ntopics; i++) {
        if (strcmp(o->do_topics[i].dt_name, name) == 0) {
            int rc = usage_error("topic '%s' is given twice", name);
            free(name);
            return rc;
        }
    }
    dev_topic_t *t =
        realloc(o->do_topics, sizeof(*t) * (size_t)(o->do_ntopics + 1));
    if (t == NULL) {
        free(name);
        fputs("eddy kafka-dev: out of memory\n", stderr);
        return EXIT_FAILED;
    }
    o->do_topics = t;
    o->do_topics[o->do_ntopics].dt_name = name;
    o->do_topics[o->do_ntopics].dt_partitions = parts;
    o->do_ntopics++;
    return 0;
}

/* The value of option `a` (as "--opt V" or "--opt=V"); NULL if missing. */
static const char *opt_value(const char *a, const char *name, int argc,
                             char **argv, int *i)
{
    size_t n = strlen(name);
    if (a[n] == '=') {
        return a + n + 1;
    }
    return *i + 1 < argc ? argv[++*i] : NULL;
}

static bool is_opt(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

/* 0, EXIT_USAGE / EXIT_FAILED after printing the error, or -1 for --help. */
static int parse_args(int argc, char **argv, dev_opts_t *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            return -1;
        }
        if (is_opt(a, "--port")) {
            const char *v = opt_value(a, "--port", argc, argv, &i);
            if (v == NULL) {
                return usage_error("%s needs a value", "--port");
            }
            if (!parse_int(v, 0, 65535, &o->do_port)) {
                return usage_error("--port must be an integer in 0..65535, "
                                   "got '%s'",
                                   v);
            }
        } else if (is_opt(a, "--brokers")) {
            const char *v = opt_value(a, "--brokers", argc, argv, &i);
            if (v == NULL) {
                return usage_error("%s needs a value", "--brokers");
            }
            if (!parse_int(v, 1, MAX_BROKERS, &o->do_brokers)) {
                return usage_error("--brokers must be an integer in 1..32, "
                                   "got '%s'",
                                   v);
            }
        } else if (is_opt(a, "--topic")) {
            const char *v = opt_value(a, "--topic", argc, argv, &i);
            if (v == NULL) {
                return usage_error("%s needs a value", "--topic");
            }
            int rc = add_topic(o, v);
            if (rc != 0) {
                return rc;
            }
        } else if (a[0] == '-') {
            return usage_error("unknown option '%s'", a);
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    if (o->do_port != 0 && o->do_port + o->do_brokers - 1 > 65535) {
        fprintf(stderr,
                "eddy kafka-dev: --port %d with %d brokers needs ports past "
                "65535 (see 'eddy kafka-dev --help')\n",
                o->do_port, o->do_brokers);
        return EXIT_USAGE;
    }
    return 0;
}

/* Binds a socket to 127.0.0.1:port; -1 with errno on failure. */
static int prebind(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        return -1;
    }
    int on = 1;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (const struct sockaddr *)&sin, sizeof(sin)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Creates the cluster on this thread with the ports of `o` (see PORTS). */
static rd_kafka_mock_cluster_t *kafka_dev_start(rd_kafka_t *rk,
                                                const dev_opts_t *o)
{
    bind_plan_t *bp = &bind_plan;
    rd_kafka_mock_cluster_t *mc = NULL;
    memset(bp, 0, sizeof(*bp));
    for (int i = 0; o->do_port != 0 && i < o->do_brokers; i++) {
        int fd = prebind(o->do_port + i);
        if (fd < 0) {
            fprintf(stderr,
                    "eddy kafka-dev: cannot listen on 127.0.0.1:%d: %s%s\n",
                    o->do_port + i, strerror(errno),
                    errno == EADDRINUSE
                        ? " (choose another --port, or 0 for any free port)"
                        : "");
            goto out;
        }
        bp->bp_fds[bp->bp_nfds++] = fd;
    }
    bp->bp_active = bp->bp_nfds > 0;
    mc = rd_kafka_mock_cluster_new(rk, o->do_brokers);
    bp->bp_active = false;
    if (mc == NULL) {
        fputs("eddy kafka-dev: librdkafka could not start the mock cluster\n",
              stderr);
    }
out:
    for (int i = bp->bp_next; i < bp->bp_nfds; i++) {
        close(bp->bp_fds[i]);
    }
    bp->bp_nfds = bp->bp_next = 0;
    return mc;
}

static void free_opts(dev_opts_t *o)
{
    for (int i = 0; i < o->do_ntopics; i++) {
        free(o->do_topics[i].dt_name);
    }
    free(o->do_topics);
}

int eddy__cli_kafka_dev(int argc, char **argv)
{
    dev_opts_t o = {.do_port = 9092, .do_brokers = 1};
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    int status = EXIT_FAILED;
    char errstr[512];

    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        free_opts(&o);
        if (rc < 0) {
            fputs(eddy__cli_kafka_dev_usage, stdout);
            return 0;
        }
        return rc;
    }

    /* Before any librdkafka thread exists: they inherit this mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    /* The mock cluster needs a client handle to live in; it never connects
     * anywhere (no bootstrap.servers), so its own notices stay quiet. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, dev_log_cb);
    if (rd_kafka_conf_set(conf, "client.id", "eddy-kafka-dev", errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "eddy kafka-dev: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        goto done;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "eddy kafka-dev: cannot create the broker: %s\n",
                errstr);
        rd_kafka_conf_destroy(conf);
        goto done;
    }
    mc = kafka_dev_start(rk, &o);
    if (mc == NULL) {
        goto done;
    }
    int repl = o.do_brokers < 3 ? o.do_brokers : 3;
    for (int i = 0; i < o.do_ntopics; i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
            mc, o.do_topics[i].dt_name, o.do_topics[i].dt_partitions, repl);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "eddy kafka-dev: cannot create topic '%s': %s\n",
                    o.do_topics[i].dt_name, rd_kafka_err2str(err));
            goto done;
        }
    }
    atomic_store(&dev_logging, true);
    if (printf("bootstrap: %s\n", rd_kafka_mock_cluster_bootstraps(mc)) < 0 ||
        fflush(stdout) != 0) {
        fprintf(stderr, "eddy kafka-dev: cannot write to stdout: %s\n",
                strerror(errno));
        goto done;
    }
    for (;;) {
        int sig;
        if (sigwait(&stop, &sig) == 0) {
            break;
        }
    }
    status = 0;

done:
    atomic_store(&dev_logging, false);
    if (mc != NULL) {
        rd_kafka_mock_cluster_destroy(mc);
    }
    if (rk != NULL) {
        rd_kafka_destroy(rk);
    }
    free_opts(&o);
    return status;
}
