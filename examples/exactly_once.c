/*
 * exactly_once — numbered records -> keyed running count -> "key,count"
 * rows into part files (and optionally PostgreSQL), both exactly once
 * across crashes. The job tests/integration/test_exactly_once.c and
 * test_cluster.c kill and restart; also the one to watch recover by hand:
 *
 *   eddy cluster start --taskmanagers 3
 *   eddy run build/examples/exactly_once.so -p 4 --checkpoint-interval 1s \
 *       -- --count 200000 --rate 20000 --out /tmp/eo-out
 *   (kill -9 a TaskManager while it runs: /tmp/eddy/run/taskmanager-1.pid)
 *   cat /tmp/eo-out/part-* | wc -l            -> 200000
 *   cat /tmp/eo-out/part-* | sort | uniq -d   -> nothing
 *
 * Input: generated (--count N, records "0".."N-1" at --rate R records/s), or
 * a Kafka topic (--kafka, bounded at the end offsets seen at start).
 * Output: one line "k<i>,<c>" per record: key k<i mod K> and that key's
 * running count c, so every key's counts are exactly 1, 2, ..., n once each
 * in the committed part files (and PostgreSQL table), whatever crashed.
 *
 * Arguments (after `--`):
 *   --kafka BOOTSTRAP --topic T   read records from Kafka (bounded: up to the
 *                                 end offsets at start)
 *   --count N [--rate R]          or generate N records (R records/s)
 *   --keys K                      key of record i: "k<i mod K>" (default 7)
 *   --pg CONNINFO --table T       PostgreSQL sink (columns k text, c bigint)
 *   --out DIR                     exactly-once part files
 *   --throttle R                  at most R records/s per subtask (so a test
 *                                 has time to kill the job mid-way)
 * Record values are the decimal record number.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <eddy/eddy.h>

static long keys = 7;
static double throttle;

/* Sleeps 1 ms every throttle/1000 records (a counter per task thread). */
static int slow(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
                void *op)
{
    (void)in;
    (void)out;
    (void)op;
    static _Thread_local unsigned long n;
    unsigned long every = (unsigned long)(throttle / 1000.0);
    (void)ctx;
    if (every == 0 || ++n % every == 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int gen(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out, void *op)
{
    (void)op;
    char *b = eddy_ctx_scratch(ctx, 24);
    out->value = b;
    out->value_len = (size_t)snprintf(b, 24, "%llu", (unsigned long long)index);
    return 0;
}

static int key_of(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                  size_t *len, void *op)
{
    (void)op;
    char num[24];
    size_t n = in->value_len < sizeof(num) - 1 ? in->value_len : 0;
    memcpy(num, in->value, n);
    num[n] = '\0';
    char *end;
    long long v = strtoll(num, &end, 10);
    if (n == 0 || *end != '\0' || v < 0) {
        return eddy_ctx_fail(ctx, "record '%.*s' is not a record number",
                             (int)in->value_len, (const char *)in->value);
    }
    char *k = eddy_ctx_scratch(ctx, 24);
    *len = (size_t)snprintf(k, 24, "k%lld", v % keys);
    *key = k;
    return 0;
}

static int to_csv(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
                  void *op)
{
    (void)op;
    long long c;
    memcpy(&c, in->value, sizeof(c));
    char *b = eddy_ctx_scratch(ctx, in->key_len + 24);
    out->value_len =
        (size_t)snprintf(b, in->key_len + 24, "%.*s,%lld", (int)in->key_len,
                         (const char *)in->key, c);
    out->value = b;
    return 0;
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    const char *kafka = NULL, *topic = NULL, *pg = NULL, *table = NULL,
               *out = NULL;
    long long count = -1;
    double rate = 0;
    for (int i = 0; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--kafka") == 0) {
            kafka = v;
        } else if (strcmp(k, "--topic") == 0) {
            topic = v;
        } else if (strcmp(k, "--count") == 0) {
            count = atoll(v);
        } else if (strcmp(k, "--rate") == 0) {
            rate = atof(v);
        } else if (strcmp(k, "--keys") == 0) {
            keys = atol(v) > 0 ? atol(v) : 7;
        } else if (strcmp(k, "--pg") == 0) {
            pg = v;
        } else if (strcmp(k, "--table") == 0) {
            table = v;
        } else if (strcmp(k, "--out") == 0) {
            out = v;
        } else if (strcmp(k, "--throttle") == 0) {
            throttle = atof(v);
        } else {
            return eddy_env_fail(env, "unknown argument '%s'", k);
        }
    }
    eddy_stream_t *s;
    if (kafka != NULL) {
        eddy_kafka_source_opts_t ko = {0};
        static const char *const props[] = {"fetch.wait.max.ms", "20", NULL};
        ko.bootstrap = kafka;
        ko.topic = topic;
        ko.bounded = true;
        ko.props = props;
        s = eddy_source_kafka(env, &ko);
    } else {
        s = eddy_source_generator(env, (uint64_t)count, rate, gen, NULL);
    }
    s = eddy_uid(s, "numbers");
    if (throttle > 0) {
        s = eddy_uid(eddy_map(s, slow, NULL), "throttle");
    }
    s = eddy_key_by(s, key_of, NULL);
    s = eddy_uid(eddy_aggregate(s, eddy_agg_count()), "count");
    s = eddy_uid(eddy_map(s, to_csv, NULL), "csv");
    if (pg != NULL) {
        static const char *const cols[] = {"k", "c"};
        eddy_pg_sink_opts_t po = {0};
        po.conninfo = pg;
        po.table = table;
        po.columns = cols;
        po.ncolumns = 2;
        eddy_uid(eddy_sink_postgres(s, &po), "pg");
    }
    if (out != NULL) {
        eddy_uid(eddy_sink_part_files(s, out), "files");
    }
    return 0;
}

EDDY_JOB("exactly_once", build)
