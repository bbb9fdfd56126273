/*
 * eddy — integration: `eddy kafka-dev`, the development Kafka broker.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Each test starts the real `eddy kafka-dev` as a child process on free
 * loopback ports, waits for its one stdout line ("bootstrap: ..."), talks to
 * it with librdkafka as any Kafka client would (metadata, produce, consume),
 * and stops it with SIGTERM or SIGINT, which must end it with status 0 and
 * nothing on stderr. Usage errors follow the CLI's one-line contract.
 *
 * The last tests run a job (jobs/kafka_cat.c: a bounded Kafka source and a
 * print sink) with `eddy run --local` against the broker in the other
 * process: what it prints, and its one-line errors for an unreachable
 * broker and a missing topic.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>

#include "harness.h"

#define START_TIMEOUT 20.0
#define STOP_TIMEOUT 5.0
#define RUN_TIMEOUT 20.0

#define ARGS(...) ((const char *const[]){EDDY_BIN, __VA_ARGS__, NULL})
#define PHRASES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- helpers ---- */

static int bind_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A port P such that P .. P+n-1 are free on 127.0.0.1 right now. */
static int free_ports(int n)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = bind_port(0);
        assert_true(fd >= 0);
        struct sockaddr_in sin;
        socklen_t len = sizeof(sin);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
        int port = ntohs(sin.sin_port);
        int fds[8] = {fd};
        bool ok = port + n - 1 <= 65535;
        for (int i = 1; i < n && ok; i++) {
            fds[i] = bind_port(port + i);
            ok = fds[i] >= 0;
        }
        for (int i = 0; i < n; i++) {
            if (fds[i] > 0) {
                close(fds[i]);
            }
        }
        if (ok) {
            return port;
        }
    }
    fail_msg("no %d consecutive free ports", n);
    return -1;
}

/* Starts kafka-dev with `argv` and returns it once it printed its line. */
static integ_proc_t *start_dev(const char *const argv[])
{
    integ_proc_t *p = integ_spawn(argv, NULL);
    if (!integ_wait_stdout_lines(p, 1, integ_timeout(START_TIMEOUT))) {
        print_error("kafka-dev printed no bootstrap line\n");
        integ_finish(p, 0);
        integ_dump(p);
        fail();
    }
    return p;
}

/* Stops it with `sig`; it must exit 0 at once, silently, with exactly the
 * one stdout line. */
static void stop_dev(integ_proc_t *p, int sig)
{
    double t0 = integ_now();
    assert_int_equal(kill(p->pr_pid, sig), 0);
    integ_finish(p, integ_timeout(STOP_TIMEOUT));
    integ_assert_exit(p, 0);
    if (p->pr_err_len != 0 ||
        integ_count_lines(p->pr_out, p->pr_out_len) != 1) {
        print_error("expected one stdout line and an empty stderr\n");
        integ_dump(p);
        fail();
    }
    print_message("    stopped by signal %d in %.3f s\n", sig,
                  integ_now() - t0);
    integ_proc_free(p);
}

/* The address after "bootstrap: " (malloc'ed, without the newline). */
static char *bootstrap_of(const integ_proc_t *p)
{
    const char *prefix = "bootstrap: ";
    if (strncmp(p->pr_out, prefix, strlen(prefix)) != 0) {
        print_error("unexpected stdout: %s\n", p->pr_out);
        fail();
    }
    const char *s = p->pr_out + strlen(prefix);
    size_t n = strcspn(s, "\n");
    char *out = malloc(n + 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap,
                                       errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", "100", errstr,
                      sizeof(errstr));
    if (type == RD_KAFKA_CONSUMER) {
        char group[64];
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", errstr,
                          sizeof(errstr));
        snprintf(group, sizeof(group), "integ-%d", (int)getpid());
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fail_msg("rd_kafka_new: %s", errstr);
    }
    return rk;
}

/* Partition count of `topic` on the cluster (-1 if absent), and the number
 * of brokers. */
static int partitions_of(rd_kafka_t *rk, const char *topic, int *brokers)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(rk, 1, NULL, &md, (int)(integ_timeout(10) * 1000));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fail_msg("metadata: %s", rd_kafka_err2str(err));
    }
    int n = -1;
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0) {
            n = md->topics[i].partition_cnt;
        }
    }
    if (brokers != NULL) {
        *brokers = md->broker_cnt;
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

/* Produces `n` records "r0".."r<n-1>" to `partition` of `topic`, then reads
 * that partition from the start and checks it holds exactly them. */
static void produce_consume(const char *bootstrap, const char *topic,
                            int partition, int n)
{
    rd_kafka_t *p = client(RD_KAFKA_PRODUCER, bootstrap);
    for (int i = 0; i < n; i++) {
        char v[16];
        snprintf(v, sizeof(v), "r%d", i);
        assert_int_equal(
            rd_kafka_producev(
                p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                RD_KAFKA_V_VALUE(v, strlen(v)),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(p, (int)(integ_timeout(10) * 1000)),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);

    /* librdkafka 2.0.2 needs a group id even for assign() (never joined). */
    rd_kafka_t *c = client(RD_KAFKA_CONSUMER, bootstrap);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    int got = 0;
    double deadline = integ_now() + integ_timeout(10);
    while (got < n && integ_now() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (m == NULL) {
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            char want[16];
            snprintf(want, sizeof(want), "r%d", got);
            assert_int_equal(m->len, strlen(want));
            assert_memory_equal(m->payload, want, m->len);
            assert_int_equal(m->offset, got);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(got, n);
    rd_kafka_destroy(c);
}

/* ---- tests ---- */

static void help_documents_every_flag(void **state)
{
    (void)state;
    integ_proc_t *p = integ_run(ARGS("kafka-dev", "--help"), NULL,
                                integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(p, 0);
    const char *flags[] = {"--port N",
                           "--brokers N",
                           "--topic NAME:PARTITIONS",
                           "-h, --help",
                           "bootstrap: 127.0.0.1:PORT",
                           "Exit status"};
    for (size_t i = 0; i < INTEG_ARRAY_SIZE(flags); i++) {
        if (!integ_contains(p->pr_out, flags[i])) {
            print_error("--help does not mention \"%s\"\n", flags[i]);
            integ_dump(p);
            fail();
        }
    }
    assert_int_equal(p->pr_err_len, 0);
    integ_proc_t *h =
        integ_run(ARGS("help", "kafka-dev"), NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(h, 0);
    assert_string_equal(h->pr_out, p->pr_out);
    integ_proc_free(h);
    integ_proc_free(p);
    p = integ_run(ARGS("--help"), NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(p, 0);
    assert_true(integ_contains(p->pr_out, "  kafka-dev  "));
    integ_proc_free(p);
}

static void bad_usage_is_one_line(void **state)
{
    (void)state;
    const struct {
        const char *const *argv;
        const char *phrase;
    } cases[] = {
        {ARGS("kafka-dev", "--nope"), "unknown option '--nope'"},
        {ARGS("kafka-dev", "extra"), "unexpected argument 'extra'"},
        {ARGS("kafka-dev", "--port"), "--port needs a value"},
        {ARGS("kafka-dev", "--port", "x"),
         "--port must be an integer in 0..65535, got 'x'"},
        {ARGS("kafka-dev", "--port=70000"),
         "--port must be an integer in 0..65535, got '70000'"},
        {ARGS("kafka-dev", "--brokers", "0"),
         "--brokers must be an integer in 1..32, got '0'"},
        {ARGS("kafka-dev", "--topic", "orders"),
         "--topic needs NAME:PARTITIONS, got 'orders'"},
        {ARGS("kafka-dev", "--topic", "orders:0"),
         "the partition count in 'orders:0' must be an integer in 1..10000"},
        {ARGS("kafka-dev", "--topic", "bad name:2"),
         "invalid topic name in 'bad name:2'"},
        {ARGS("kafka-dev", "--topic", "a:1", "--topic", "a:2"),
         "topic 'a' is given twice"},
        {ARGS("kafka-dev", "--port", "65535", "--brokers", "2"),
         "needs ports past 65535"},
    };
    for (size_t i = 0; i < INTEG_ARRAY_SIZE(cases); i++) {
        integ_proc_t *p =
            integ_run(cases[i].argv, NULL, integ_timeout(RUN_TIMEOUT));
        integ_assert_error(p, 2,
                           PHRASES("eddy kafka-dev: ", cases[i].phrase,
                                   "(see 'eddy kafka-dev --help')"));
        integ_proc_free(p);
    }
}

static void topics_produce_consume_sigterm(void **state)
{
    (void)state;
    int port = free_ports(1);
    char ps[16], want[64];
    snprintf(ps, sizeof(ps), "%d", port);
    integ_proc_t *p = start_dev(ARGS("kafka-dev", "--port", ps, "--topic",
                                     "orders:3", "--topic=audit:1"));
    snprintf(want, sizeof(want), "bootstrap: 127.0.0.1:%d\n", port);
    assert_string_equal(p->pr_out, want);
    char *bs = bootstrap_of(p);
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, bs);
    int brokers = 0;
    assert_int_equal(partitions_of(rk, "orders", &brokers), 3);
    assert_int_equal(brokers, 1);
    assert_int_equal(partitions_of(rk, "audit", NULL), 1);
    assert_int_equal(partitions_of(rk, "other", NULL), -1);
    produce_consume(bs, "orders", 2, 5);
    produce_consume(bs, "audit", 0, 3);
    /* A topic nobody created appears on first use with 4 partitions. */
    produce_consume(bs, "fresh", 1, 2);
    assert_int_equal(partitions_of(rk, "fresh", NULL), 4);
    rd_kafka_destroy(rk);
    free(bs);
    stop_dev(p, SIGTERM);
}

static void two_brokers_sigint(void **state)
{
    (void)state;
    int port = free_ports(2);
    char ps[16], want[96];
    snprintf(ps, sizeof(ps), "%d", port);
    integ_proc_t *p =
        start_dev(ARGS("kafka-dev", "--port", ps, "--brokers", "2"));
    snprintf(want, sizeof(want), "bootstrap: 127.0.0.1:%d,127.0.0.1:%d\n", port,
             port + 1);
    assert_string_equal(p->pr_out, want);
    /* The second broker alone is enough to bootstrap from. */
    char second[32];
    snprintf(second, sizeof(second), "127.0.0.1:%d", port + 1);
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, second);
    int brokers = 0;
    partitions_of(rk, "x", &brokers);
    assert_int_equal(brokers, 2);
    rd_kafka_destroy(rk);
    produce_consume(second, "t2", 3, 4);
    stop_dev(p, SIGINT);
}

static void port_in_use_and_restart(void **state)
{
    (void)state;
    int port = free_ports(1);
    char ps[16], msg[96];
    snprintf(ps, sizeof(ps), "%d", port);
    integ_proc_t *a = start_dev(ARGS("kafka-dev", "--port", ps));
    char *bs = bootstrap_of(a);
    produce_consume(bs, "t", 0, 2);

    integ_proc_t *b = integ_run(ARGS("kafka-dev", "--port", ps), NULL,
                                integ_timeout(RUN_TIMEOUT));
    snprintf(msg, sizeof(msg), "cannot listen on 127.0.0.1:%d: ", port);
    integ_assert_error(b, 1, PHRASES(msg, "Address already in use"));
    integ_proc_free(b);

    /* Stopped while a client was connected, it restarts on the same port
     * at once (connections left in TIME_WAIT do not block it). */
    stop_dev(a, SIGTERM);
    integ_proc_t *c = start_dev(ARGS("kafka-dev", "--port", ps));
    produce_consume(bs, "t", 0, 2); /* an empty broker again */
    free(bs);
    stop_dev(c, SIGTERM);
}

static void port_zero_picks_a_port(void **state)
{
    (void)state;
    integ_proc_t *p = start_dev(ARGS("kafka-dev", "--port", "0"));
    char *bs = bootstrap_of(p);
    assert_true(strncmp(bs, "127.0.0.1:", 10) == 0 && atoi(bs + 10) > 0);
    produce_consume(bs, "z", 0, 1);
    free(bs);
    stop_dev(p, SIGTERM);
}

/* Produces "p<P>-<i>" for i in 0..n-1 to each of `parts` partitions. */
static void produce_tagged(const char *bootstrap, const char *topic, int parts,
                           int n)
{
    rd_kafka_t *p = client(RD_KAFKA_PRODUCER, bootstrap);
    for (int i = 0; i < n; i++) {
        for (int part = 0; part < parts; part++) {
            char v[32];
            snprintf(v, sizeof(v), "p%d-%d", part, i);
            assert_int_equal(
                rd_kafka_producev(
                    p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                    RD_KAFKA_V_VALUE(v, strlen(v)),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                RD_KAFKA_RESP_ERR_NO_ERROR);
        }
    }
    assert_int_equal(rd_kafka_flush(p, (int)(integ_timeout(10) * 1000)),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
}

static void job_reads_from_kafka_dev(void **state)
{
    (void)state;
    int port = free_ports(1);
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    integ_proc_t *dev =
        start_dev(ARGS("kafka-dev", "--port", ps, "--topic", "in:3"));
    char *bs = bootstrap_of(dev);
    produce_tagged(bs, "in", 3, 20);
    integ_proc_t *job = integ_run(
        ARGS("run", "--local", KAFKA_CAT_SO, "-p", "2", "-q", "--", bs, "in"),
        NULL, integ_timeout(RUN_TIMEOUT));
    integ_assert_exit(job, 0);
    if (job->pr_err_len != 0) {
        print_error("expected an empty stderr\n");
        integ_dump(job);
        fail();
    }
    /* Every record once; each partition's records in order. */
    assert_int_equal(integ_count_lines(job->pr_out, job->pr_out_len), 60);
    int next[3] = {0, 0, 0};
    for (const char *l = job->pr_out; *l != '\0'; l = strchr(l, '\n') + 1) {
        int part = -1, i = -1;
        if (sscanf(l, "p%d-%d\n", &part, &i) != 2 || part < 0 || part > 2 ||
            i != next[part]) {
            print_error("unexpected line: %.*s\n", (int)strcspn(l, "\n"), l);
            integ_dump(job);
            fail();
        }
        next[part]++;
    }
    integ_proc_free(job);

    /* A topic that does not exist: one line naming it. */
    job = integ_run(ARGS("run", "--local", KAFKA_CAT_SO, "--", bs, "nope"),
                    NULL, integ_timeout(RUN_TIMEOUT));
    char msg[160];
    snprintf(msg, sizeof(msg), "Kafka topic 'nope' does not exist on '%s'", bs);
    integ_assert_error(job, 1,
                       PHRASES("eddy run: job 'kafka-cat' failed: ", msg));
    integ_proc_free(job);
    free(bs);
    stop_dev(dev, SIGTERM);
}

static void job_fails_on_unreachable_broker(void **state)
{
    (void)state;
    /* Bound but not listening: connections are refused. */
    int fd = bind_port(0);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    char bs[32], msg[128];
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", ntohs(sin.sin_port));
    double t0 = integ_now();
    integ_proc_t *job = integ_run(
        ARGS("run", "--local", KAFKA_CAT_SO, "--", bs, "in", "raw", "1000"),
        NULL, integ_timeout(RUN_TIMEOUT));
    double took = integ_now() - t0;
    snprintf(msg, sizeof(msg), "cannot reach Kafka at '%s' within 1000 ms", bs);
    integ_assert_error(job, 1,
                       PHRASES("eddy run: job 'kafka-cat' failed: ", msg));
    print_message("    failed after %.3f s\n", took);
    assert_true(took < integ_timeout(8.0));
    integ_proc_free(job);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_documents_every_flag),
        cmocka_unit_test(bad_usage_is_one_line),
        cmocka_unit_test(topics_produce_consume_sigterm),
        cmocka_unit_test(two_brokers_sigint),
        cmocka_unit_test(port_in_use_and_restart),
        cmocka_unit_test(port_zero_picks_a_port),
        cmocka_unit_test(job_reads_from_kafka_dev),
        cmocka_unit_test(job_fails_on_unreachable_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
