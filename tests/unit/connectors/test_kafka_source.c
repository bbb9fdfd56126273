/*
 * eddy — unit tests for src/connectors/kafka_source.c (eddy_source_kafka).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Every test runs against a librdkafka mock cluster started in this process
 * on loopback (rd_kafka_mock_cluster_new), the same broker `eddy kafka-dev`
 * runs. Topics are created with rd_kafka_mock_topic_create and get unique
 * names, group ids are unique too (a re-used group id would wait out a
 * session timeout on the mock), and consumers use a low fetch.wait.max.ms
 * because the mock makes empty fetches wait that long.
 *
 * Whole jobs (eddy_env_execute) check what records come out, from which
 * subtask, in which order. Checkpoint behaviour is tested by driving the
 * operator class's hooks directly, as the task would: open, poll, snapshot,
 * complete/abort, close, then a restore at another parallelism built with
 * eddy__op_restore_new from the encoded snapshots.
 *
 * NOT TESTABLE HERE: the mock answers ListOffsets by timestamp with -1
 * ("FIXME" in librdkafka 2.0.2), so EDDY_KAFKA_START_TIMESTAMP can only be
 * checked for a timestamp after every record (where a real broker answers
 * -1 too).
 */
#include "wm_test_util.h"

#include <arpa/inet.h>
#include <glob.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "checkpoint/checkpoint.h"
#include "connectors/kafka_source.h"
#include "eddy/runner.h"

#define EXECUTE_OK(env)                                                        \
    do {                                                                       \
        eddy_error_t err_;                                                     \
        eddy_error_clear(&err_);                                               \
        TU_ASSERT_OK(eddy_env_execute((env), &err_), &err_);                   \
    } while (0)

#define TS_BASE 1700000000000LL

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static const char *bootstrap;
static rd_kafka_t *producer;
static atomic_int delivery_errors;
static int name_seq;

/* Low fetch wait: the mock holds an empty fetch for that long. */
static const char *const fast_props[] = {"fetch.wait.max.ms", "10", NULL};

/* ------------------------------------------------------------------------ */
/* Fixture: the mock cluster and a producer                                 */
/* ------------------------------------------------------------------------ */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        atomic_fetch_add(&delivery_errors, 1);
    }
}

static int group_setup(void **state)
{
    (void)state;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (mock_rk == NULL) {
        fprintf(stderr, "rd_kafka_new: %s\n", errstr);
        return -1;
    }
    mock = rd_kafka_mock_cluster_new(mock_rk, 1);
    if (mock == NULL) {
        return -1;
    }
    bootstrap = rd_kafka_mock_cluster_bootstraps(mock);
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr));
    /* A topic the producer has not seen costs a metadata round that the
     * mock answers about a second late with the default refresh interval. */
    rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", "100", errstr,
                      sizeof(errstr));
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    return producer != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    rd_kafka_destroy(producer);
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_rk);
    return 0;
}

/* A fresh topic with `partitions` partitions; `out` gets its name. */
static void new_topic(char *out, size_t size, int partitions)
{
    snprintf(out, size, "t%d-%d", (int)getpid(), ++name_seq);
    assert_int_equal(rd_kafka_mock_topic_create(mock, out, partitions, 1),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void new_group(char *out, size_t size)
{
    snprintf(out, size, "g%d-%d", (int)getpid(), ++name_seq);
}

/* Produces one message (key/value may be NULL; hdrs is NULL or owned). */
static void produce_raw(const char *topic, int partition, const void *key,
                        size_t klen, const void *val, size_t vlen, int64_t ts,
                        rd_kafka_headers_t *hdrs)
{
    rd_kafka_resp_err_t err;
    if (hdrs != NULL) {
        err = rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    } else {
        err = rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
            RD_KAFKA_V_END);
    }
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void flush_producer(void)
{
    assert_int_equal(rd_kafka_flush(producer, tu_timeout_ms(10000)),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(atomic_load(&delivery_errors), 0);
}

/*
 * Records first .. first+n-1 of a numbered topic: record i has key "k<i>",
 * value "v<i>", timestamp TS_BASE + i, and goes to partition i % partitions,
 * so partition p holds p, p+P, p+2P, ... in that order.
 */
static void produce_numbered(const char *topic, int partitions, int first,
                             int n)
{
    for (int i = first; i < first + n; i++) {
        char k[16], v[16];
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        produce_raw(topic, i % partitions, k, strlen(k), v, strlen(v),
                    TS_BASE + i, NULL);
    }
    flush_producer();
}

static eddy_kafka_source_opts_t opts_for(const char *topic)
{
    eddy_kafka_source_opts_t o;
    memset(&o, 0, sizeof(o));
    o.bootstrap = bootstrap;
    o.topic = topic;
    o.props = fast_props;
    o.bounded = true;
    return o;
}

/* "v<i>" → i (-1 if not numbered). */
static int value_index(const void *v, size_t len)
{
    char buf[16];
    if (len < 2 || len >= sizeof(buf) || ((const char *)v)[0] != 'v') {
        return -1;
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    return atoi(buf + 1);
}

/* Key = the subtask that emitted the record, as text "s<i>". */
static int tag_subtask(eddy_ctx_t *ctx, const eddy_record_t *in,
                       eddy_record_t *out, void *opaque)
{
    (void)in;
    (void)opaque;
    char *k = eddy_ctx_scratch(ctx, 8);
    int n = snprintf(k, 8, "s%d", eddy_ctx_subtask(ctx));
    out->key = k;
    out->key_len = (size_t)n;
    return 0;
}

/*
 * Checks that `coll` holds numbered records 0..n-1 exactly once each, with
 * their timestamps, and that each partition's records arrive in order. With
 * `par` > 0 the keys are subtask tags (tag_subtask), which must name the
 * owner of the record's partition; otherwise the keys are "k<i>".
 */
static void check_numbered(eddy_collection_t *coll, const char *topic,
                           int partitions, int n, int par)
{
    assert_int_equal(eddy_collection_count(coll), (size_t)n);
    bool *seen = calloc((size_t)n, sizeof(bool));
    int last[64];
    for (int p = 0; p < 64; p++) {
        last[p] = -1;
    }
    for (size_t j = 0; j < eddy_collection_count(coll); j++) {
        const eddy_record_t *r = eddy_collection_get(coll, j);
        int i = value_index(r->value, r->value_len);
        assert_true(i >= 0 && i < n);
        assert_false(seen[i]);
        seen[i] = true;
        assert_int_equal(r->ts, TS_BASE + i);
        int p = i % partitions;
        assert_true(i > last[p]);
        last[p] = i;
        char want[16];
        if (par > 0) {
            snprintf(want, sizeof(want), "s%d",
                     eddy__kafka_partition_owner(topic, p, par));
        } else {
            snprintf(want, sizeof(want), "k%d", i);
        }
        TU_ASSERT_BYTES(r->key, r->key_len, want, strlen(want));
    }
    free(seen);
}

/* ------------------------------------------------------------------------ */
/* Driving the operator class directly                                      */
/* ------------------------------------------------------------------------ */

/* One subtask of the source, outside any job, collecting its records. */
typedef struct hop {
    eddy__op_t op;
    eddy__task_t task;
    eddy__job_t job;
    atomic_int cancel;
    int *vals; /* value indexes, in emission order */
    size_t n;
    size_t cap;
    bool ended;
} hop_t;

static int hop_collect(void *target, const eddy_record_t *rec)
{
    hop_t *h = target;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->vals = realloc(h->vals, h->cap * sizeof(int));
    }
    h->vals[h->n++] = value_index(rec->value, rec->value_len);
    return 0;
}

static hop_t *hop_open(eddy_stream_t *src, int subtask, int parallelism,
                       const eddy__op_restore_t *restore)
{
    hop_t *h = calloc(1, sizeof(*h));
    atomic_init(&h->cancel, 0);
    h->job.j_cancel = &h->cancel;
    h->task.t_job = &h->job;
    h->task.t_subtask = subtask;
    h->task.t_parallelism = parallelism;
    eddy__op_t *op = &h->op;
    eddy__op_init(op, &h->task, src);
    op->op_out.co_fn = hop_collect;
    op->op_out.co_target = h;
    op->op_restore = restore;
    int rc = op->op_class->oc_open(op);
    if (rc != 0) {
        fail_msg("open of subtask %d failed: %d: %s", subtask, rc,
                 op->op_errmsg);
    }
    return h;
}

/* Polls (budget `budget`) until at least `want` records came, the source
 * ended, or the deadline passed. */
static void hop_poll_until(hop_t *h, size_t want, int budget)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(10000);
    while (!h->ended && h->n < want && tu_now_ms() < deadline) {
        int rc = h->op.op_class->oc_poll(&h->op, budget);
        if (rc < 0) {
            fail_msg("poll failed: %d: %s", rc, h->op.op_errmsg);
        }
        h->ended = rc == EDDY__POLL_END;
    }
}

static void hop_close(hop_t *h)
{
    h->op.op_class->oc_close(&h->op);
    eddy__op_release(&h->op);
    free(h->vals);
    free(h);
}

/* The source node of a fresh environment (never executed). */
static eddy_stream_t *source_node(eddy_env_t *env,
                                  const eddy_kafka_source_opts_t *o)
{
    eddy_stream_t *s = eddy_source_kafka(env, o);
    assert_non_null(s);
    return s;
}

/* The committed offset of `group` for each of `n` partitions. */
static void committed(const char *group, const char *topic, int n, int64_t *out)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_t *c =
        rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++) {
        rd_kafka_topic_partition_list_add(l, topic, p);
    }
    assert_int_equal(rd_kafka_committed(c, l, tu_timeout_ms(10000)),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int p = 0; p < n; p++) {
        out[p] = l->elems[p].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
}

/* Commits offsets[p] for each of `n` partitions (< 0: none) for `group`. */
static void commit_offsets(const char *group, const char *topic, int n,
                           const int64_t *offsets)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_t *c =
        rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++) {
        if (offsets[p] >= 0) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = offsets[p];
        }
    }
    assert_int_equal(rd_kafka_commit(c, l, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
}

/* ------------------------------------------------------------------------ */
/* Reading whole topics                                                     */
/* ------------------------------------------------------------------------ */

static void run_numbered(int parallelism)
{
    char topic[64];
    new_topic(topic, sizeof(topic), 4);
    produce_numbered(topic, 4, 0, 60);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, parallelism);
    eddy_collection_t *out = eddy_collection_new();
    eddy_kafka_source_opts_t o = opts_for(topic);
    eddy_stream_t *s = eddy_source_kafka(env, &o);
    if (parallelism > 1) {
        s = eddy_map(s, tag_subtask, NULL);
    }
    eddy_sink_collect(s, out);
    EXECUTE_OK(env);
    check_numbered(out, topic, 4, 60, parallelism > 1 ? parallelism : 0);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

static void test_bounded_parallelism_1(void **state)
{
    (void)state;
    run_numbered(1);
}

/* Four partitions on three subtasks: each record comes from the subtask
 * that owns its partition, and one subtask reads two partitions. */
static void test_bounded_parallelism_3(void **state)
{
    (void)state;
    run_numbered(3);
}

static void test_partition_owner(void **state)
{
    (void)state;
    /* Consecutive partitions go to consecutive subtasks; every subtask of a
     * parallelism <= the partition count gets at least one. */
    for (int par = 1; par <= 8; par++) {
        int count[8] = {0};
        int first = eddy__kafka_partition_owner("orders", 0, par);
        for (int p = 0; p < 16; p++) {
            int s = eddy__kafka_partition_owner("orders", p, par);
            assert_int_equal(s, (first + p) % par);
            count[s]++;
        }
        for (int s = 0; s < par; s++) {
            int extra = (s - first + par) % par < 16 % par;
            assert_int_equal(count[s], 16 / par + extra);
        }
    }
    /* Different topics start at different subtasks (with this hash). */
    bool differs = false;
    for (int t = 0; t < 8 && !differs; t++) {
        char name[16];
        snprintf(name, sizeof(name), "topic-%d", t);
        differs = eddy__kafka_partition_owner(name, 0, 16) !=
                  eddy__kafka_partition_owner("topic-x", 0, 16);
    }
    assert_true(differs);
}

/* Two topics, comma-separated (with spaces), read by one source. */
static void test_two_topics(void **state)
{
    (void)state;
    char a[64], b[64], list[160];
    new_topic(a, sizeof(a), 2);
    new_topic(b, sizeof(b), 3);
    produce_numbered(a, 2, 0, 10);
    produce_numbered(b, 3, 10, 9);
    snprintf(list, sizeof(list), "%s, %s", a, b);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_collection_t *out = eddy_collection_new();
    eddy_kafka_source_opts_t o = opts_for(list);
    eddy_sink_collect(eddy_source_kafka(env, &o), out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 19);
    int sum = 0;
    for (size_t j = 0; j < 19; j++) {
        const eddy_record_t *r = eddy_collection_get(out, j);
        sum += value_index(r->value, r->value_len);
    }
    assert_int_equal(sum, 18 * 19 / 2);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* Checkpoints: snapshot, restore at another parallelism, commits           */
/* ------------------------------------------------------------------------ */

static void test_snapshot_restore_rescale(void **state)
{
    (void)state;
    char topic[64];
    new_topic(topic, sizeof(topic), 4);
    produce_numbered(topic, 4, 0, 40);
    eddy_env_t *env = eddy_env_new();
    eddy_kafka_source_opts_t o = opts_for(topic);
    eddy_stream_t *src = source_node(env, &o);

    /* Two subtasks read part of their partitions, then checkpoint 7. */
    bool got[100] = {false};
    eddy__bytes_t enc[2] = {{0}, {0}};
    size_t before = 0;
    for (int s = 0; s < 2; s++) {
        hop_t *h = hop_open(src, s, 2, NULL);
        hop_poll_until(h, 7, 3);
        assert_true(h->n >= 7 && h->n < 20);
        for (size_t i = 0; i < h->n; i++) {
            assert_false(got[h->vals[i]]);
            got[h->vals[i]] = true;
        }
        before += h->n;
        eddy__op_snap_t *snap = eddy__op_snap_new(7, false);
        assert_int_equal(h->op.op_class->oc_snapshot(&h->op, snap), 0);
        eddy__op_snap_encode(snap, &enc[s]);
        eddy__op_snap_free(snap);
        hop_close(h);
    }
    /* More records arrive while the job is down. */
    produce_numbered(topic, 4, 40, 20);

    /* Three subtasks restore from it and read to the (new) end. */
    const eddy__bytes_t *old[2] = {&enc[0], &enc[1]};
    size_t after = 0;
    for (int s = 0; s < 3; s++) {
        eddy__op_restore_t *r = NULL;
        eddy_error_t err;
        eddy_error_clear(&err);
        TU_ASSERT_OK(eddy__op_restore_new(7, old, 2, s, 3, &r, &err), &err);
        hop_t *h = hop_open(src, s, 3, r);
        hop_poll_until(h, SIZE_MAX, 5);
        assert_true(h->ended);
        for (size_t i = 0; i < h->n; i++) {
            int v = h->vals[i];
            if (got[v]) {
                fail_msg("record v%d read before and after the restore", v);
            }
            got[v] = true;
            /* It belongs to the new subtask s. */
            assert_int_equal(eddy__kafka_partition_owner(topic, v % 4, 3), s);
        }
        after += h->n;
        hop_close(h);
        eddy__op_restore_free(r);
    }
    for (int v = 0; v < 60; v++) {
        if (!got[v]) {
            fail_msg("record v%d lost", v);
        }
    }
    assert_int_equal(before + after, 60);
    eddy__bytes_free(&enc[0]);
    eddy__bytes_free(&enc[1]);
    eddy_env_destroy(env);
}

/* Collects decoded offset elements (restore_list callback). */
typedef struct offsets_seen {
    const char *topic;
    int64_t next[8];
    int n;
} offsets_seen_t;

static int note_offset(void *arg, const void *elem, size_t len)
{
    offsets_seen_t *o = arg;
    const char *topic;
    size_t tlen;
    int32_t p;
    int64_t next;
    if (!eddy__kafka_offset_decode(elem, len, &topic, &tlen, &p, &next) ||
        tlen != strlen(o->topic) || memcmp(topic, o->topic, tlen) != 0 ||
        p < 0 || p >= 8) {
        return EDDY_ERR_FORMAT;
    }
    o->next[p] = next;
    o->n++;
    return 0;
}

/* The snapshot holds one element per owned partition: its next offset,
 * also for a partition that has not been read from yet. */
static void test_snapshot_contents(void **state)
{
    (void)state;
    char topic[64];
    new_topic(topic, sizeof(topic), 3);
    produce_numbered(topic, 3, 0, 6); /* p0: v0 v3, p1: v1 v4, p2: v2 v5 */
    eddy_env_t *env = eddy_env_new();
    eddy_kafka_source_opts_t o = opts_for(topic);
    o.bounded = false;
    eddy_stream_t *src = source_node(env, &o);
    hop_t *h = hop_open(src, 0, 1, NULL);
    hop_poll_until(h, 6, 100);
    assert_int_equal(h->n, 6);
    /* A partition that gets records later, and one that never does. */
    produce_numbered(topic, 3, 6, 1); /* p0: v6 */
    hop_poll_until(h, 7, 100);
    assert_int_equal(h->n, 7);
    eddy__op_snap_t *snap = eddy__op_snap_new(4, false);
    assert_int_equal(h->op.op_class->oc_snapshot(&h->op, snap), 0);
    eddy__bytes_t enc = {0};
    eddy__op_snap_encode(snap, &enc);
    const eddy__bytes_t *old[1] = {&enc};
    for (int s = 0; s < 2; s++) {
        /* UNION: every new subtask sees every partition's offset. */
        eddy__op_restore_t *r = NULL;
        eddy_error_t err;
        eddy_error_clear(&err);
        TU_ASSERT_OK(eddy__op_restore_new(4, old, 1, s, 2, &r, &err), &err);
        offsets_seen_t seen = {topic, {0}, 0};
        assert_int_equal(eddy__op_restore_list(r, EDDY__KAFKA_OFFSETS_STATE,
                                               note_offset, &seen),
                         0);
        assert_int_equal(seen.n, 3);
        assert_int_equal(seen.next[0], 3);
        assert_int_equal(seen.next[1], 2);
        assert_int_equal(seen.next[2], 2);
        eddy__op_restore_free(r);
    }
    /* A corrupt element fails the restore with a clear message. */
    eddy__op_snap_t *bad = eddy__op_snap_new(5, false);
    assert_int_equal(eddy__op_snap_list_add(bad, EDDY__KAFKA_OFFSETS_STATE,
                                            EDDY__OPLIST_UNION, "xx", 2),
                     0);
    eddy__bytes_t benc = {0};
    eddy__op_snap_encode(bad, &benc);
    const eddy__bytes_t *bold[1] = {&benc};
    eddy__op_restore_t *r = NULL;
    eddy_error_t err;
    TU_ASSERT_OK(eddy__op_restore_new(5, bold, 1, 0, 1, &r, &err), &err);
    hop_t *h2 = calloc(1, sizeof(*h2));
    atomic_init(&h2->cancel, 0);
    h2->job.j_cancel = &h2->cancel;
    h2->task.t_job = &h2->job;
    h2->op.op_ctx.cx_op = &h2->op;
    h2->op.op_ctx.cx_parallelism = 1;
    h2->op.op_ctx.cx_name = src->s_name;
    h2->op.op_class = src->s_class;
    h2->op.op_node = src;
    h2->op.op_task = &h2->task;
    h2->op.op_next_tick_ms = INT64_MAX;
    h2->op.op_restore = r;
    assert_int_equal(src->s_class->oc_open(&h2->op), EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(h2->op.op_errmsg,
                       "malformed Kafka offsets in checkpoint 5");
    src->s_class->oc_close(&h2->op);
    free(h2);
    eddy__op_restore_free(r);
    eddy__bytes_free(&benc);
    eddy__op_snap_free(bad);
    eddy__bytes_free(&enc);
    eddy__op_snap_free(snap);
    hop_close(h);
    eddy_env_destroy(env);
}

static void test_checkpoint_commits(void **state)
{
    (void)state;
    char topic[64], group[64];
    new_topic(topic, sizeof(topic), 2);
    new_group(group, sizeof(group));
    produce_numbered(topic, 2, 0, 20);
    eddy_env_t *env = eddy_env_new();
    eddy_kafka_source_opts_t o = opts_for(topic);
    o.group_id = group;
    o.bounded = false;
    eddy_stream_t *src = source_node(env, &o);
    hop_t *h = hop_open(src, 0, 1, NULL);

    /* Checkpoint 1 after some records, checkpoint 2 after more. */
    hop_poll_until(h, 5, 5);
    int64_t at1[2] = {0, 0};
    for (size_t i = 0; i < h->n; i++) {
        at1[h->vals[i] % 2] = h->vals[i] / 2 + 1;
    }
    eddy__op_snap_t *s1 = eddy__op_snap_new(1, false);
    assert_int_equal(h->op.op_class->oc_snapshot(&h->op, s1), 0);
    hop_poll_until(h, 12, 5);
    eddy__op_snap_t *s2 = eddy__op_snap_new(2, false);
    assert_int_equal(h->op.op_class->oc_snapshot(&h->op, s2), 0);

    /* 2 is aborted, 1 completes: the offsets of 1 are committed. */
    assert_int_equal(h->op.op_class->oc_checkpoint_abort(&h->op, 2), 0);
    assert_int_equal(h->op.op_class->oc_checkpoint_complete(&h->op, 1), 0);
    uint64_t ok = 0, bad = 0;
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(10000);
    while (ok == 0 && bad == 0 && tu_now_ms() < deadline) {
        h->op.op_class->oc_poll(&h->op, 1);
        eddy__kafka_source_commits(src, &ok, &bad);
    }
    assert_int_equal(ok, 1);
    assert_int_equal(bad, 0);
    int64_t got[2];
    committed(group, topic, 2, got);
    assert_int_equal(got[0], at1[0]);
    assert_int_equal(got[1], at1[1]);

    /* Completing the aborted 2 commits nothing more. */
    assert_int_equal(h->op.op_class->oc_checkpoint_complete(&h->op, 2), 0);
    for (int i = 0; i < 5; i++) {
        h->op.op_class->oc_poll(&h->op, 1);
    }
    eddy__kafka_source_commits(src, &ok, &bad);
    assert_int_equal(ok, 1);

    /* Checkpoint 3 (everything read) completes: committed = the end. */
    hop_poll_until(h, 20, 5);
    eddy__op_snap_t *s3 = eddy__op_snap_new(3, false);
    assert_int_equal(h->op.op_class->oc_snapshot(&h->op, s3), 0);
    assert_int_equal(h->op.op_class->oc_checkpoint_complete(&h->op, 3), 0);
    deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(10000);
    while (ok < 2 && tu_now_ms() < deadline) {
        h->op.op_class->oc_poll(&h->op, 1);
        eddy__kafka_source_commits(src, &ok, &bad);
    }
    assert_int_equal(ok, 2);
    committed(group, topic, 2, got);
    assert_int_equal(got[0], 10);
    assert_int_equal(got[1], 10);
    hop_close(h);

    /* A restore from checkpoint 1 commits its offsets again (its completion
     * could have been lost), moving the group back. */
    eddy__bytes_t enc = {0};
    eddy__op_snap_encode(s1, &enc);
    const eddy__bytes_t *old[1] = {&enc};
    eddy__op_restore_t *r = NULL;
    eddy_error_t err;
    eddy_error_clear(&err);
    TU_ASSERT_OK(eddy__op_restore_new(1, old, 1, 0, 1, &r, &err), &err);
    h = hop_open(src, 0, 1, r);
    deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(10000);
    while (ok < 3 && tu_now_ms() < deadline) {
        h->op.op_class->oc_poll(&h->op, 1);
        eddy__kafka_source_commits(src, &ok, &bad);
    }
    assert_int_equal(ok, 3);
    committed(group, topic, 2, got);
    assert_int_equal(got[0], at1[0]);
    assert_int_equal(got[1], at1[1]);
    /* ... and resumes each partition right there, to the end. */
    size_t left = (size_t)(20 - at1[0] - at1[1]);
    hop_poll_until(h, left, 5);
    assert_int_equal(h->n, left);
    int64_t next[2] = {at1[0], at1[1]};
    for (size_t i = 0; i < h->n; i++) {
        int v = h->vals[i];
        assert_int_equal(v / 2, next[v % 2]);
        next[v % 2]++;
    }
    hop_close(h);
    eddy__op_restore_free(r);
    eddy__bytes_free(&enc);
    eddy__op_snap_free(s1);
    eddy__op_snap_free(s2);
    eddy__op_snap_free(s3);
    eddy_env_destroy(env);
}

/*
 * Through the real runtime: a bounded Kafka source feeding a keyed count
 * (state in checkpoints). Run A fails once (or for good) at the first record
 * from v<fail_at> on that arrives after a checkpoint holding progress
 * completed; after the
 * restart (or a new run B restoring A's checkpoint at another parallelism)
 * each key's final count must be exactly the number of its records: a
 * source rewinding to the wrong offsets would count records twice or never.
 */
#define CK_RECORDS 240
#define CK_KEYS 6

static atomic_int ck_fail_at;
static atomic_int ck_failed;
/* The pattern of completed checkpoints' metadata files of the run. */
static char ck_glob[512];

/* The newest completed checkpoint when the map saw its first record; -1
 * before. */
static atomic_int ck_baseline;

/* The id of the newest completed checkpoint, 0 if none. */
static int ck_completed(void)
{
    glob_t g;
    int newest = 0;
    if (glob(ck_glob, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const char *c = strstr(g.gl_pathv[i], "/chk-");
            int id = c != NULL ? atoi(c + 5) : 0;
            newest = id > newest ? id : newest;
        }
    }
    globfree(&g);
    return newest;
}

static int ck_slow_fail(eddy_ctx_t *ctx, const eddy_record_t *in,
                        eddy_record_t *out, void *opaque)
{
    (void)out;
    (void)opaque;
    int i = value_index(in->value, in->value_len);
    int expected = -1;
    if (atomic_load(&ck_baseline) < 0) {
        atomic_compare_exchange_strong(&ck_baseline, &expected, ck_completed());
    }
    /* Two checkpoints later: that one was triggered after the one in
     * flight when the first record went through, so it holds progress. */
    expected = 0;
    if (i >= atomic_load(&ck_fail_at) && atomic_load(&ck_failed) == 0 &&
        ck_completed() >= atomic_load(&ck_baseline) + 2 &&
        atomic_compare_exchange_strong(&ck_failed, &expected, 1)) {
        return eddy_ctx_fail(ctx, "injected failure at v%d", i);
    }
    tu_sleep_us(3000); /* let checkpoints happen while records flow */
    return 0;
}

static int ck_key(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                  size_t *len, void *opaque)
{
    (void)opaque;
    char *k = eddy_ctx_scratch(ctx, 8);
    *len = (size_t)snprintf(k, 8, "k%d",
                            value_index(in->value, in->value_len) % CK_KEYS);
    *key = k;
    return 0;
}

static int ck_run(const char *topic, int parallelism, const char *dir,
                  const char *job_id, const char *restart, const char *restore,
                  eddy_collection_t *out, eddy_error_t *err)
{
    snprintf(ck_glob, sizeof(ck_glob), "%s/%s/chk-*/_metadata", dir, job_id);
    atomic_store(&ck_baseline, -1);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, parallelism);
    eddy_kafka_source_opts_t o = opts_for(topic);
    eddy_stream_t *s = eddy_uid(eddy_source_kafka(env, &o), "kafka");
    s = eddy_uid(eddy_map(s, ck_slow_fail, NULL), "map");
    s = eddy_uid(eddy_aggregate(eddy_key_by(s, ck_key, NULL), eddy_agg_count()),
                 "count");
    eddy_sink_collect(s, out);
    const char *kv[][2] = {{"checkpoint.interval", "20ms"},
                           {"checkpoint.dir", dir},
                           {"job.id", job_id},
                           {"restart.strategy", restart},
                           {"restart.delay", "10ms"},
                           {"savepoint.path", restore}};
    int rc = 0;
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(kv) && rc == 0; i++) {
        if (kv[i][1] != NULL) {
            rc = eddy_env_set_option(env, kv[i][0], kv[i][1], err);
        }
    }
    if (rc == 0) {
        rc = eddy_env_execute(env, err);
    }
    eddy_env_destroy(env);
    return rc;
}

/* Each key's largest count must be exactly CK_RECORDS / CK_KEYS. */
static void ck_check(eddy_collection_t *c)
{
    int64_t max[CK_KEYS] = {0};
    for (size_t i = 0; i < eddy_collection_count(c); i++) {
        const eddy_record_t *r = eddy_collection_get(c, i);
        int k = atoi((const char *)r->key + 1);
        max[k] = EDDY_MAX(max[k], eddy_record_value_i64(r));
    }
    for (int k = 0; k < CK_KEYS; k++) {
        if (max[k] != CK_RECORDS / CK_KEYS) {
            fail_msg("key k%d counted %" PRId64 " records, not %d", k, max[k],
                     CK_RECORDS / CK_KEYS);
        }
    }
}

static void test_checkpoint_restart_exact(void **state)
{
    (void)state;
    char topic[64], dir[256];
    new_topic(topic, sizeof(topic), 4);
    produce_numbered(topic, 4, 0, CK_RECORDS);
    tu_tmpdir(dir, sizeof(dir));
    atomic_store(&ck_fail_at, 60);
    atomic_store(&ck_failed, 0);
    eddy_collection_t *out = eddy_collection_new();
    eddy_error_t err;
    eddy_error_clear(&err);
    TU_ASSERT_OK(ck_run(topic, 2, dir, "00000000000000000000000000000a01",
                        "fixed-delay", NULL, out, &err),
                 &err);
    assert_int_equal(atomic_load(&ck_failed), 1);
    ck_check(out);
    eddy_collection_destroy(out);
    tu_rmtree(dir);
}

static void test_checkpoint_restore_rescaled(void **state)
{
    (void)state;
    char topic[64], dir[256], job_dir[400];
    new_topic(topic, sizeof(topic), 4);
    produce_numbered(topic, 4, 0, CK_RECORDS);
    tu_tmpdir(dir, sizeof(dir));
    /* A: parallelism 3, fails for good after a checkpoint. */
    atomic_store(&ck_fail_at, 60);
    atomic_store(&ck_failed, 0);
    eddy_collection_t *a = eddy_collection_new();
    eddy_error_t err;
    eddy_error_clear(&err);
    assert_int_equal(ck_run(topic, 3, dir, "00000000000000000000000000000a02",
                            "none", NULL, a, &err),
                     EDDY_ERR_USER);
    TU_ASSERT_CONTAINS(err.msg, "injected failure at v");
    assert_int_equal(atomic_load(&ck_failed), 1);
    eddy_collection_destroy(a);
    /* B: parallelism 2, from A's latest checkpoint; it must not fail. */
    atomic_store(&ck_fail_at, INT32_MAX);
    snprintf(job_dir, sizeof(job_dir), "%s/00000000000000000000000000000a02",
             dir);
    eddy_collection_t *b = eddy_collection_new();
    eddy_error_clear(&err);
    TU_ASSERT_OK(ck_run(topic, 2, dir, "00000000000000000000000000000b02",
                        "none", job_dir, b, &err),
                 &err);
    ck_check(b);
    /* B started from the checkpoint, not from the beginning. */
    assert_true(eddy_collection_count(b) < CK_RECORDS);
    eddy_collection_destroy(b);
    tu_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Start modes                                                              */
/* ------------------------------------------------------------------------ */

static void test_start_latest(void **state)
{
    (void)state;
    char topic[64];
    new_topic(topic, sizeof(topic), 2);
    produce_numbered(topic, 2, 0, 10);
    eddy_env_t *env = eddy_env_new();
    eddy_kafka_source_opts_t o = opts_for(topic);
    o.start = EDDY_KAFKA_START_LATEST;
    o.bounded = false;
    eddy_stream_t *src = source_node(env, &o);
    hop_t *h = hop_open(src, 0, 1, NULL);
    /* The start was resolved at open: later records are read, older not. */
    produce_numbered(topic, 2, 10, 6);
    hop_poll_until(h, 6, 100);
    assert_int_equal(h->n, 6);
    for (size_t i = 0; i < h->n; i++) {
        assert_true(h->vals[i] >= 10);
    }
    hop_close(h);

    /* Bounded and latest: nothing to read. */
    eddy_collection_t *out = eddy_collection_new();
    o.bounded = true;
    eddy_env_t *env2 = eddy_env_new();
    eddy_sink_collect(eddy_source_kafka(env2, &o), out);
    EXECUTE_OK(env2);
    assert_int_equal(eddy_collection_count(out), 0);
    eddy_collection_destroy(out);
    eddy_env_destroy(env2);
    eddy_env_destroy(env);
}

static void run_collect(const eddy_kafka_source_opts_t *o,
                        eddy_collection_t *out)
{
    eddy_env_t *env = eddy_env_new();
    eddy_sink_collect(eddy_source_kafka(env, o), out);
    EXECUTE_OK(env);
    eddy_env_destroy(env);
}

/* The values read, sorted, as "v1 v3 ..." */
static char *sorted_values(eddy_collection_t *c)
{
    size_t n = eddy_collection_count(c);
    int *v = calloc(n + 1, sizeof(int));
    for (size_t i = 0; i < n; i++) {
        const eddy_record_t *r = eddy_collection_get(c, i);
        v[i] = value_index(r->value, r->value_len);
    }
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    char *s = calloc(1, n * 8 + 1);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        used += (size_t)sprintf(s + used, "%sv%d", i ? " " : "", v[i]);
    }
    free(v);
    return s;
}

static void test_start_group_offsets(void **state)
{
    (void)state;
    char topic[64], group[64];
    new_topic(topic, sizeof(topic), 3);
    new_group(group, sizeof(group));
    produce_numbered(topic, 3, 0, 12); /* p0: 0 3 6 9, p1: 1 4 7 10, ... */
    int64_t offs[3] = {3, 1, -1};      /* p2 has no committed offset */
    commit_offsets(group, topic, 3, offs);

    eddy_kafka_source_opts_t o = opts_for(topic);
    o.start = EDDY_KAFKA_START_GROUP_OFFSETS;
    o.group_id = group;
    eddy_collection_t *out = eddy_collection_new();
    run_collect(&o, out);
    char *got = sorted_values(out);
    /* p0 from offset 3 (v9), p1 from 1 (v4 v7 v10), p2 from the start. */
    assert_string_equal(got, "v2 v4 v5 v7 v8 v9 v10 v11");
    free(got);
    eddy_collection_destroy(out);

    /* Without a committed offset, auto.offset.reset=latest: p2 is skipped. */
    static const char *const latest[] = {"fetch.wait.max.ms", "10",
                                         "auto.offset.reset", "latest", NULL};
    o.props = latest;
    out = eddy_collection_new();
    run_collect(&o, out);
    got = sorted_values(out);
    assert_string_equal(got, "v4 v7 v9 v10");
    free(got);
    eddy_collection_destroy(out);

    /* auto.offset.reset=error: the job fails, naming the partition. */
    static const char *const error[] = {"fetch.wait.max.ms", "10",
                                        "auto.offset.reset", "error", NULL};
    o.props = error;
    eddy_env_t *env = eddy_env_new();
    eddy_sink_discard(eddy_source_kafka(env, &o));
    eddy_error_t err;
    eddy_error_clear(&err);
    assert_int_equal(eddy_env_execute(env, &err), EDDY_ERR_NOT_FOUND);
    TU_ASSERT_CONTAINS(err.msg, "has no committed offset");
    TU_ASSERT_CONTAINS(err.msg, "partition 2");
    eddy_env_destroy(env);
}

/* The mock cannot look offsets up by time (see the top); a timestamp after
 * every record gives nothing on every broker. */
static void test_start_timestamp_after_end(void **state)
{
    (void)state;
    char topic[64];
    new_topic(topic, sizeof(topic), 2);
    produce_numbered(topic, 2, 0, 6);
    eddy_kafka_source_opts_t o = opts_for(topic);
    o.start = EDDY_KAFKA_START_TIMESTAMP;
    o.start_ts = TS_BASE + 1000;
    eddy_collection_t *out = eddy_collection_new();
    run_collect(&o, out);
    assert_int_equal(eddy_collection_count(out), 0);
    eddy_collection_destroy(out);
}

/* ------------------------------------------------------------------------ */
/* Formats                                                                  */
/* ------------------------------------------------------------------------ */

static void test_json_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "1.5e-3",
        "-12E+2",
        "\"\"",
        "true",
        "false",
        "null",
        " {\"a\" : [1, {\"b\": null}], \"c\": \"\\u00e9\\n\"} ",
        "\"caf\xc3\xa9\"",
        "[\"\xf0\x9f\x98\x80\"]",
        "\t\r\n[ ]\n"};
    static const char *const bad[] = {"",
                                      " ",
                                      "{",
                                      "}",
                                      "[1,]",
                                      "{\"a\":1,}",
                                      "{a:1}",
                                      "01",
                                      "1.",
                                      ".5",
                                      "+1",
                                      "1e",
                                      "tru",
                                      "nul",
                                      "\"abc",
                                      "\"\\x\"",
                                      "\"\\u12\"",
                                      "\"\t\"",
                                      "[1] [2]",
                                      "{\"a\" 1}",
                                      "\"\xff\"",
                                      "\"\xc0\x80\"",
                                      "\"\xed\xa0\x80\"",
                                      "[1}",
                                      "{\"a\":1]",
                                      "1 2",
                                      "NaN"};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(good); i++) {
        if (!eddy__json_valid(good[i], strlen(good[i]))) {
            fail_msg("rejected valid JSON %s", good[i]);
        }
    }
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(bad); i++) {
        if (eddy__json_valid(bad[i], strlen(bad[i]))) {
            fail_msg("accepted invalid JSON '%s'", bad[i]);
        }
    }
    /* Nesting: 512 levels are fine, 513 are not (and do not crash). */
    char deep[2 * 513 + 1];
    for (int depth = 512; depth <= 513; depth++) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        assert_int_equal(eddy__json_valid(deep, 2 * (size_t)depth),
                         depth == 512);
    }
    char hostile[100000];
    memset(hostile, '[', sizeof(hostile));
    assert_false(eddy__json_valid(hostile, sizeof(hostile)));
}

static void test_json_format_skips_malformed(void **state)
{
    (void)state;
    char topic[64];
    new_topic(topic, sizeof(topic), 1);
    static const char *const values[] = {"{\"a\":1}",
                                         "not json",
                                         "[1,2]",
                                         "{\"a\":",
                                         "\"str\"",
                                         "",
                                         NULL /* tombstone */,
                                         "  42  ",
                                         "{\"a\":\"\xff\"}",
                                         "{\"b\":true}"};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(values); i++) {
        produce_raw(topic, 0, "k", 1, values[i],
                    values[i] != NULL ? strlen(values[i]) : 0, TS_BASE, NULL);
    }
    flush_producer();
    eddy_env_t *env = eddy_env_new();
    eddy_kafka_source_opts_t o = opts_for(topic);
    o.format = EDDY_KAFKA_JSON;
    eddy_collection_t *out = eddy_collection_new();
    eddy_stream_t *src = eddy_source_kafka(env, &o);
    eddy_sink_collect(src, out);
    EXECUTE_OK(env);
    static const char *const want[] = {"{\"a\":1}", "[1,2]", "\"str\"",
                                       "  42  ", "{\"b\":true}"};
    assert_int_equal(eddy_collection_count(out), EDDY_ARRAY_SIZE(want));
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(want); i++) {
        assert_string_equal(tu_coll_str(out, i), want[i]);
    }
    assert_int_equal(eddy_kafka_malformed_records(src), 5);
    /* Not a Kafka source: 0. */
    assert_int_equal(eddy_kafka_malformed_records(NULL), 0);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

static void test_envelope_format(void **state)
{
    (void)state;
    char topic[64];
    new_topic(topic, sizeof(topic), 1);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(3);
    rd_kafka_header_add(hdrs, "trace", -1, "abc", 3);
    rd_kafka_header_add(hdrs, "bin", -1, "\xff\x00\x01", 3);
    rd_kafka_header_add(hdrs, "none", -1, NULL, 0);
    rd_kafka_header_add(hdrs, "trace", -1, "x\"y", 3);
    const char v0[] = "hello \"w\"\n\x01 caf\xc3\xa9";
    produce_raw(topic, 0, "k1", 2, v0, strlen(v0), TS_BASE + 5, hdrs);
    produce_raw(topic, 0, NULL, 0, "\xfe\xfd", 2, TS_BASE + 6, NULL);
    produce_raw(topic, 0, "k3", 2, NULL, 0, TS_BASE + 7, NULL);
    flush_producer();
    eddy_env_t *env = eddy_env_new();
    eddy_kafka_source_opts_t o = opts_for(topic);
    o.format = EDDY_KAFKA_ENVELOPE;
    eddy_collection_t *out = eddy_collection_new();
    eddy_sink_collect(eddy_source_kafka(env, &o), out);
    EXECUTE_OK(env);
    assert_int_equal(eddy_collection_count(out), 3);
    char want[1024];
    snprintf(want, sizeof(want),
             "{\"topic\":\"%s\",\"partition\":0,\"offset\":0,"
             "\"timestamp\":%lld,\"timestamp_type\":\"create\","
             "\"key\":\"k1\",\"value\":\"hello \\\"w\\\"\\n\\u0001 "
             "caf\xc3\xa9\",\"headers\":{\"trace\":\"abc\",\"bin\":"
             "{\"base64\":\"/wAB\"},\"none\":null,\"trace\":\"x\\\"y\"}}",
             topic, TS_BASE + 5);
    assert_string_equal(tu_coll_str(out, 0), want);
    const eddy_record_t *r0 = eddy_collection_get(out, 0);
    TU_ASSERT_BYTES(r0->key, r0->key_len, "k1", 2);
    assert_int_equal(r0->ts, TS_BASE + 5);
    assert_true(eddy__json_valid(r0->value, r0->value_len));
    snprintf(want, sizeof(want),
             "{\"topic\":\"%s\",\"partition\":0,\"offset\":1,"
             "\"timestamp\":%lld,\"timestamp_type\":\"create\","
             "\"key\":null,\"value\":{\"base64\":\"/v0=\"},\"headers\":{}}",
             topic, TS_BASE + 6);
    assert_string_equal(tu_coll_str(out, 1), want);
    assert_null(eddy_collection_get(out, 1)->key);
    snprintf(want, sizeof(want),
             "{\"topic\":\"%s\",\"partition\":0,\"offset\":2,"
             "\"timestamp\":%lld,\"timestamp_type\":\"create\","
             "\"key\":\"k3\",\"value\":null,\"headers\":{}}",
             topic, TS_BASE + 7);
    assert_string_equal(tu_coll_str(out, 2), want);
    eddy_collection_destroy(out);
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* Watermarks per partition and idle partitions                             */
/* ------------------------------------------------------------------------ */

typedef struct exec_arg {
    eddy_env_t *env;
    int rc;
    eddy_error_t err;
} exec_arg_t;

static void *exec_thread(void *arg)
{
    exec_arg_t *a = arg;
    eddy_error_clear(&a->err);
    a->rc = eddy_env_execute(a->env, &a->err);
    return NULL;
}

typedef struct wm_wait {
    wmt_log_t *log;
    long long nrec;
    long long wm;
} wm_wait_t;

static bool wm_reached(void *arg)
{
    wm_wait_t *w = arg;
    return atomic_load(&w->log->nrec) >= w->nrec &&
           atomic_load(&w->log->max_wm) >= w->wm;
}

/*
 * Partition 0 has timestamps 1000..1009, partition 1 5000..5009. The
 * watermark of the subtask must follow the slower partition: 1008 (the
 * monotonous watermark of 1009), never the merged maximum.
 */
static void test_watermarks_follow_slowest_partition(void **state)
{
    (void)state;
    char topic[64];
    new_topic(topic, sizeof(topic), 2);
    for (int i = 0; i < 10; i++) {
        char v[16];
        snprintf(v, sizeof(v), "a%d", i);
        produce_raw(topic, 0, NULL, 0, v, strlen(v), 1000 + i, NULL);
        snprintf(v, sizeof(v), "b%d", i);
        produce_raw(topic, 1, NULL, 0, v, strlen(v), 5000 + i, NULL);
    }
    flush_producer();
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_watermark_interval(env, 10);
    eddy_kafka_source_opts_t o = opts_for(topic);
    o.bounded = false;
    eddy_watermark_strategy_t ws = eddy_watermarks_monotonous();
    eddy_stream_t *src = eddy_source_kafka(env, &o);
    assert_ptr_equal(eddy_source_with_watermarks(src, &ws), src);
    wmt_log_t *log = wmt_log_new();
    eddy_sink_discard(wmt_recorder(src, log));
    exec_arg_t a = {env, 0, {0}};
    pthread_t th;
    pthread_create(&th, NULL, exec_thread, &a);
    wm_wait_t w = {log, 20, 1008};
    bool reached = tu_wait_until(wm_reached, &w, 10000);
    /* Several more periodic ticks: the watermark must stay. */
    tu_sleep_us(100 * 1000);
    eddy_env_cancel(env);
    tu_join(th, 10000, "kafka job");
    assert_true(reached);
    assert_int_equal(a.rc, EDDY_ERR_CANCELED);
    assert_int_equal(atomic_load(&log->max_wm), 1008);
    /* No record was behind the watermark when it arrived. */
    int64_t wm = INT64_MIN;
    for (size_t i = 0; i < log->nev; i++) {
        if (log->ev[i].kind == 'w') {
            wm = log->ev[i].v;
        } else {
            assert_true(log->ev[i].v > wm);
        }
    }
    wmt_log_free(log);
    eddy_env_destroy(env);
}

/* Partition 1 never gets a record: with idleness it stops holding the
 * watermark back; without it the watermark never advances. */
static void test_idle_partition(void **state)
{
    (void)state;
    for (int idle = 1; idle >= 0; idle--) {
        char topic[64];
        new_topic(topic, sizeof(topic), 2);
        for (int i = 0; i < 10; i++) {
            char v[16];
            snprintf(v, sizeof(v), "a%d", i);
            produce_raw(topic, 0, NULL, 0, v, strlen(v), 1000 + i, NULL);
        }
        flush_producer();
        eddy_env_t *env = eddy_env_new();
        eddy_env_set_watermark_interval(env, 10);
        eddy_kafka_source_opts_t o = opts_for(topic);
        o.bounded = false;
        eddy_watermark_strategy_t ws = eddy_watermarks_monotonous();
        ws.idleness_ms = idle ? 50 : 0;
        eddy_stream_t *src = eddy_source_kafka(env, &o);
        eddy_source_with_watermarks(src, &ws);
        wmt_log_t *log = wmt_log_new();
        eddy_sink_discard(wmt_recorder(src, log));
        exec_arg_t a = {env, 0, {0}};
        pthread_t th;
        pthread_create(&th, NULL, exec_thread, &a);
        wm_wait_t w = {log, 10, 1008};
        bool reached = tu_wait_until(wm_reached, &w, idle ? 10000 : 1000);
        eddy_env_cancel(env);
        tu_join(th, 10000, "kafka job");
        assert_int_equal(a.rc, EDDY_ERR_CANCELED);
        assert_int_equal(atomic_load(&log->nrec), 10);
        if (idle) {
            assert_true(reached);
            assert_int_equal(atomic_load(&log->max_wm), 1008);
        } else {
            assert_false(reached);
            assert_int_equal(atomic_load(&log->max_wm), INT64_MIN);
        }
        wmt_log_free(log);
        eddy_env_destroy(env);
    }
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static void expect_build_error(const eddy_kafka_source_opts_t *o,
                               const char *msg)
{
    eddy_env_t *env = eddy_env_new();
    assert_null(eddy_source_kafka(env, o));
    eddy_error_t err;
    eddy_error_clear(&err);
    assert_int_equal(eddy_env_execute(env, &err), EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, msg);
    eddy_env_destroy(env);
}

static void test_option_errors(void **state)
{
    (void)state;
    eddy_kafka_source_opts_t o = opts_for("t");
    o.bootstrap = NULL;
    expect_build_error(&o, "no bootstrap servers given");
    o = opts_for("");
    expect_build_error(&o, "no topic given");
    o = opts_for("a,,b");
    expect_build_error(&o, "empty topic name in 'a,,b'");
    o = opts_for("a,b,a");
    expect_build_error(&o, "topic 'a' is listed twice");
    o = opts_for("t");
    o.start = EDDY_KAFKA_START_GROUP_OFFSETS;
    expect_build_error(&o, "needs a group_id");
    o = opts_for("t");
    o.start = EDDY_KAFKA_START_TIMESTAMP;
    o.start_ts = -5;
    expect_build_error(&o, "start_ts must be >= 0 ms, got -5");
    o = opts_for("t");
    o.format = (eddy_kafka_format_t)7;
    expect_build_error(&o, "unknown format 7");
    static const char *const unknown[] = {"no.such.property", "1", NULL};
    o = opts_for("t");
    o.props = unknown;
    expect_build_error(&o, "property no.such.property=1: No such "
                           "configuration property");
    static const char *const owned[] = {"group.id", "x", NULL};
    o.props = owned;
    expect_build_error(&o, "property 'group.id' is set by the source");
    static const char *const odd[] = {"fetch.wait.max.ms", NULL};
    o.props = odd;
    expect_build_error(&o, "property 'fetch.wait.max.ms' has no value");
    static const char *const badval[] = {"fetch.wait.max.ms", "abc", NULL};
    o.props = badval;
    expect_build_error(&o, "property fetch.wait.max.ms=abc");
}

static void expect_run_error(const eddy_kafka_source_opts_t *o, int code,
                             const char *msg, int max_ms)
{
    eddy_env_t *env = eddy_env_new();
    eddy_sink_discard(eddy_source_kafka(env, o));
    eddy_error_t err;
    eddy_error_clear(&err);
    uint64_t t0 = tu_now_ms();
    int rc = eddy_env_execute(env, &err);
    uint64_t took = tu_now_ms() - t0;
    if (rc != code) {
        fail_msg("expected %s, got %s: %s", eddy_err_name(code),
                 eddy_err_name(rc), err.msg);
    }
    TU_ASSERT_CONTAINS(err.msg, msg);
    if (took > (uint64_t)tu_timeout_ms(max_ms)) {
        fail_msg("the failure took %llu ms", (unsigned long long)took);
    }
    eddy_env_destroy(env);
}

static void test_unreachable_broker(void **state)
{
    (void)state;
    /* A port nobody listens on (bound, never listening). */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
    eddy_kafka_source_opts_t o = opts_for("t");
    o.bootstrap = addr;
    o.connect_timeout_ms = 1500;
    char msg[128];
    snprintf(msg, sizeof(msg), "cannot reach Kafka at '%s' within 1500 ms",
             addr);
    expect_run_error(&o, EDDY_ERR_TIMEOUT, msg, 6000);
    close(fd);
}

static void test_unknown_topic(void **state)
{
    (void)state;
    char topic[64], msg[160];
    snprintf(topic, sizeof(topic), "missing-%d", (int)getpid());
    eddy_kafka_source_opts_t o = opts_for(topic);
    snprintf(msg, sizeof(msg), "Kafka topic '%s' does not exist on '%s'", topic,
             bootstrap);
    expect_run_error(&o, EDDY_ERR_NOT_FOUND, msg, 10000);
    /* Asking did not create it. */
    expect_run_error(&o, EDDY_ERR_NOT_FOUND, msg, 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_owner),
        cmocka_unit_test(test_json_valid),
        cmocka_unit_test(test_bounded_parallelism_1),
        cmocka_unit_test(test_bounded_parallelism_3),
        cmocka_unit_test(test_two_topics),
        cmocka_unit_test(test_snapshot_restore_rescale),
        cmocka_unit_test(test_snapshot_contents),
        cmocka_unit_test(test_checkpoint_commits),
        cmocka_unit_test(test_checkpoint_restart_exact),
        cmocka_unit_test(test_checkpoint_restore_rescaled),
        cmocka_unit_test(test_start_latest),
        cmocka_unit_test(test_start_group_offsets),
        cmocka_unit_test(test_start_timestamp_after_end),
        cmocka_unit_test(test_json_format_skips_malformed),
        cmocka_unit_test(test_envelope_format),
        cmocka_unit_test(test_watermarks_follow_slowest_partition),
        cmocka_unit_test(test_idle_partition),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_unreachable_broker),
        cmocka_unit_test(test_unknown_topic),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
