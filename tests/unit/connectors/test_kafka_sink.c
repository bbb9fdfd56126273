/*
 * eddy — unit tests for the Kafka sink (src/connectors/kafka_sink.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Two layers:
 *
 * 1. The transactional logic against a test double of the Kafka client
 *    (fake_*): a broker with per-transactional-id epochs (fencing), open
 *    transactions whose records stay invisible until committed, and faults
 *    injected at every seam of a commit. The tests call the operator's hooks
 *    directly (open, process, snapshot, checkpoint complete/abort, end,
 *    close), encode snapshots as the runtime does, "crash" an operator by
 *    closing it without the calls that would have followed, and restore a
 *    new one from a chosen checkpoint, possibly at another parallelism.
 *    Each test asserts exactly which records ended up committed.
 *
 * 2. The librdkafka client against librdkafka's mock cluster, in process
 *    (mock_*): produce, transactions, markers and reading them back, and
 *    recovery re-sending only what no marker names. The mock cluster has no
 *    transaction isolation and no producer fencing, so these tests prove
 *    the client's calls and the marker round trip, not fencing.
 */
#include "test_util.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "checkpoint/checkpoint.h"
#include "common/bytes.h"
#include "connectors/kafka_sink.h"
#include "runtime/runtime.h"

/* ------------------------------------------------------------------------ */
/* Messages as a broker keeps them                                          */
/* ------------------------------------------------------------------------ */

typedef struct fmsg {
    bool has_key;
    char *key; /* NUL-terminated copies */
    char *val;
    size_t vlen;
    int64_t ts;
} fmsg_t;

typedef struct fmsgs {
    fmsg_t *v;
    size_t n;
    size_t cap;
} fmsgs_t;

static char *dup_bytes(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (n > 0) {
        memcpy(s, p, n);
    }
    s[n] = '\0';
    return s;
}

static void msgs_push(fmsgs_t *m, bool has_key, const void *key, size_t klen,
                      const void *val, size_t vlen, int64_t ts)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->v = realloc(m->v, m->cap * sizeof(fmsg_t));
    }
    m->v[m->n++] = (fmsg_t){has_key, has_key ? dup_bytes(key, klen) : NULL,
                            dup_bytes(val, vlen), vlen, ts};
}

static void msgs_move(fmsgs_t *to, fmsgs_t *from)
{
    for (size_t i = 0; i < from->n; i++) {
        if (to->n == to->cap) {
            to->cap = to->cap ? 2 * to->cap : 16;
            to->v = realloc(to->v, to->cap * sizeof(fmsg_t));
        }
        to->v[to->n++] = from->v[i];
    }
    from->n = 0;
}

static void msgs_clear(fmsgs_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        free(m->v[i].val);
    }
    m->n = 0;
}

static void msgs_free(fmsgs_t *m)
{
    msgs_clear(m);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The values joined by ',' (in order, or sorted). Caller frees. */
static char *msgs_values(const fmsgs_t *m, bool sorted)
{
    char **v = calloc(m->n + 1, sizeof(char *));
    size_t len = 1;
    for (size_t i = 0; i < m->n; i++) {
        v[i] = m->v[i].val;
        len += m->v[i].vlen + 1;
    }
    if (sorted) {
        qsort(v, m->n, sizeof(char *), cmp_str);
    }
    char *s = calloc(1, len);
    for (size_t i = 0; i < m->n; i++) {
        if (i > 0) {
            strcat(s, ",");
        }
        strcat(s, v[i]);
    }
    free(v);
    return s;
}

#define ASSERT_VALUES(msgs, sorted, expect)                                    \
    do {                                                                       \
        char *got_ = msgs_values((msgs), (sorted));                            \
        if (strcmp(got_, (expect)) != 0) {                                     \
            fail_msg("committed \"%s\", expected \"%s\"", got_, (expect));     \
        }                                                                      \
        free(got_);                                                            \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The test double: a broker and its clients                                */
/* ------------------------------------------------------------------------ */

#define T_DATA EDDY__KTOPIC_DATA
#define T_MARK EDDY__KTOPIC_MARKERS

/* Faults injected into the n-th commit call. */
enum {
    FAIL_NONE,
    FAIL_CRASH_BEFORE_COMMIT, /* dies before the commit request is sent */
    FAIL_CRASH_DURING_COMMIT, /* dies after sending it: the coordinator
                                 finishes the commit when the id is fenced */
    FAIL_CRASH_AFTER_COMMIT,  /* committed, dies before hearing so */
    FAIL_ABORTABLE,           /* the transaction was aborted; retriable */
    FAIL_FATAL                /* a fatal error; transaction left open */
};

typedef struct ftxn {
    char id[160];
    int epoch;
    bool open;
    bool commit_requested;
    fmsgs_t pending[2];
} ftxn_t;

typedef struct fbroker {
    fmsgs_t log[2]; /* committed (or delivered) records per topic */
    ftxn_t txns[16];
    int ntxns;
    int commit_fail; /* FAIL_* */
    int commit_fail_at;
    int commit_calls;
    int commits;
    bool delivery_fails;
    char inits[64][160]; /* transactional ids, in init order */
    int ninits;
    int clients; /* live */
    int marker_reads;
} fbroker_t;

typedef struct fclient {
    eddy__kclient_t fc_base;
    fbroker_t *fc_b;
    ftxn_t *fc_txn; /* NULL: a plain producer */
    int fc_epoch;
    fmsgs_t fc_inflight; /* plain producer: produced, not yet delivered */
} fclient_t;

static void broker_free(fbroker_t *b)
{
    for (int t = 0; t < 2; t++) {
        msgs_free(&b->log[t]);
    }
    for (int i = 0; i < b->ntxns; i++) {
        msgs_free(&b->txns[i].pending[0]);
        msgs_free(&b->txns[i].pending[1]);
    }
}

static void txn_commit(fbroker_t *b, ftxn_t *t)
{
    msgs_move(&b->log[T_DATA], &t->pending[T_DATA]);
    msgs_move(&b->log[T_MARK], &t->pending[T_MARK]);
    t->open = false;
    t->commit_requested = false;
    b->commits++;
}

static void txn_discard(ftxn_t *t)
{
    msgs_clear(&t->pending[0]);
    msgs_clear(&t->pending[1]);
    t->open = false;
    t->commit_requested = false;
}

static int fenced(fclient_t *c, eddy_error_t *err)
{
    if (c->fc_epoch != c->fc_txn->epoch) {
        return eddy_error_set(err, EDDY_ERR_STATE,
                              "fenced: transactional id '%s' has a newer "
                              "producer",
                              c->fc_txn->id);
    }
    return 0;
}

static int fake_init(eddy__kclient_t *kc, eddy_error_t *err)
{
    EDDY_UNUSED(err);
    fclient_t *c = (fclient_t *)kc;
    fbroker_t *b = c->fc_b;
    ftxn_t *t = c->fc_txn;
    /* Like a transaction coordinator: a new epoch completes what the old
     * producer left (commit if requested, else abort). */
    if (t->open) {
        if (t->commit_requested) {
            txn_commit(b, t);
        } else {
            txn_discard(t);
        }
    }
    c->fc_epoch = ++t->epoch;
    assert_true(b->ninits < 64);
    snprintf(b->inits[b->ninits++], 160, "%s", t->id);
    return 0;
}

static int fake_begin(eddy__kclient_t *kc, eddy_error_t *err)
{
    fclient_t *c = (fclient_t *)kc;
    int rc = fenced(c, err);
    if (rc == 0 && c->fc_txn->open) {
        rc = eddy_error_set(err, EDDY_ERR_STATE, "transaction already open");
    }
    if (rc == 0) {
        c->fc_txn->open = true;
    }
    return rc;
}

static int fake_produce(eddy__kclient_t *kc, int topic,
                        const eddy_record_t *rec, eddy_error_t *err)
{
    fclient_t *c = (fclient_t *)kc;
    fmsgs_t *to;
    if (c->fc_txn != NULL) {
        int rc = fenced(c, err);
        if (rc != 0) {
            return rc;
        }
        if (!c->fc_txn->open) {
            return eddy_error_set(err, EDDY_ERR_STATE, "no transaction");
        }
        to = &c->fc_txn->pending[topic];
    } else {
        assert_int_equal(topic, T_DATA);
        to = &c->fc_inflight;
    }
    msgs_push(to, rec->key != NULL, rec->key, rec->key_len,
              rec->value != NULL ? rec->value : "", rec->value_len, rec->ts);
    return 0;
}

static int fake_commit(eddy__kclient_t *kc, eddy_error_t *err)
{
    fclient_t *c = (fclient_t *)kc;
    fbroker_t *b = c->fc_b;
    ftxn_t *t = c->fc_txn;
    int rc = fenced(c, err);
    if (rc != 0) {
        return rc;
    }
    int mode =
        ++b->commit_calls == b->commit_fail_at ? b->commit_fail : FAIL_NONE;
    switch (mode) {
    case FAIL_CRASH_BEFORE_COMMIT:
        return eddy_error_set(err, EDDY_ERR_EXTERNAL,
                              "simulated crash before commit");
    case FAIL_CRASH_DURING_COMMIT:
        t->commit_requested = true;
        return eddy_error_set(err, EDDY_ERR_EXTERNAL,
                              "simulated crash during commit");
    case FAIL_CRASH_AFTER_COMMIT:
        txn_commit(b, t);
        return eddy_error_set(err, EDDY_ERR_EXTERNAL,
                              "simulated crash after commit");
    case FAIL_ABORTABLE:
        txn_discard(t);
        eddy_error_set(err, EDDY_ERR_EXTERNAL, "simulated abortable error");
        err->retriable = 1;
        return EDDY_ERR_EXTERNAL;
    case FAIL_FATAL:
        eddy_error_set(err, EDDY_ERR_EXTERNAL, "simulated fatal error");
        err->fatal = 1;
        return EDDY_ERR_EXTERNAL;
    default:
        txn_commit(b, t);
        return 0;
    }
}

static int fake_abort(eddy__kclient_t *kc, eddy_error_t *err)
{
    fclient_t *c = (fclient_t *)kc;
    int rc = fenced(c, err);
    if (rc == 0) {
        txn_discard(c->fc_txn);
    }
    return rc;
}

static int fake_poll(eddy__kclient_t *kc, eddy_error_t *err)
{
    fclient_t *c = (fclient_t *)kc;
    if (c->fc_b->delivery_fails && c->fc_inflight.n > 0) {
        return eddy_error_set(err, EDDY_ERR_EXTERNAL,
                              "delivery to Kafka topic 'out' failed: "
                              "simulated");
    }
    return 0;
}

static int fake_flush(eddy__kclient_t *kc, eddy_error_t *err)
{
    fclient_t *c = (fclient_t *)kc;
    int rc = fake_poll(kc, err);
    if (rc == 0) {
        msgs_move(&c->fc_b->log[T_DATA], &c->fc_inflight);
    }
    return rc;
}

static int fake_read_markers(eddy__kclient_t *kc, eddy__kmarker_fn fn,
                             void *arg, eddy_error_t *err)
{
    EDDY_UNUSED(err);
    fclient_t *c = (fclient_t *)kc;
    fbroker_t *b = c->fc_b;
    b->marker_reads++;
    for (size_t i = 0; i < b->log[T_MARK].n; i++) {
        const fmsg_t *m = &b->log[T_MARK].v[i];
        int rc = fn(arg, m->key, strlen(m->key), m->val, m->vlen);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void fake_destroy(eddy__kclient_t *kc)
{
    fclient_t *c = (fclient_t *)kc;
    /* Like a crashed process: an open transaction stays open. */
    c->fc_b->clients--;
    msgs_free(&c->fc_inflight);
    free(c);
}

static const eddy__kclient_ops_t fake_ops = {
    .init_transactions = fake_init,
    .begin = fake_begin,
    .produce = fake_produce,
    .commit = fake_commit,
    .abort = fake_abort,
    .flush = fake_flush,
    .poll = fake_poll,
    .read_markers = fake_read_markers,
    .destroy = fake_destroy,
};

static int fake_new(void *arg, const eddy__ksink_conf_t *conf,
                    const char *txn_id, atomic_int *cancel,
                    eddy__kclient_t **out, eddy_error_t *err)
{
    EDDY_UNUSED(conf);
    EDDY_UNUSED(cancel);
    EDDY_UNUSED(err);
    fbroker_t *b = arg;
    fclient_t *c = calloc(1, sizeof(*c));
    c->fc_base.kc_ops = &fake_ops;
    c->fc_b = b;
    if (txn_id != NULL) {
        for (int i = 0; i < b->ntxns && c->fc_txn == NULL; i++) {
            if (strcmp(b->txns[i].id, txn_id) == 0) {
                c->fc_txn = &b->txns[i];
            }
        }
        if (c->fc_txn == NULL) {
            assert_true(b->ntxns < 16);
            c->fc_txn = &b->txns[b->ntxns++];
            snprintf(c->fc_txn->id, sizeof(c->fc_txn->id), "%s", txn_id);
        }
    }
    b->clients++;
    *out = &c->fc_base;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Operator harness: a sink built through the job API, its hooks called     */
/* directly as the task would                                               */
/* ------------------------------------------------------------------------ */

typedef struct fx {
    eddy_env_t *env;
    eddy_stream_t *sink;
    fbroker_t b;
} fx_t;

/* A sink with uid "ks" and transactional id prefix "tp" on a fake broker
 * (bootstrap NULL) or a real cluster. */
static void fx_init_at(fx_t *f, eddy_kafka_guarantee_t g, size_t max_staged,
                       const char *bootstrap, const char *topic)
{
    memset(f, 0, sizeof(*f));
    f->env = eddy_env_new();
    eddy_env_set_name(f->env, "kjob");
    eddy_stream_t *src = eddy_source_collection(f->env, NULL, 0);
    eddy_kafka_sink_opts_t o = {0};
    o.bootstrap = bootstrap != NULL ? bootstrap : "fake:9092";
    o.topic = topic;
    o.guarantee = g;
    o.transactional_id_prefix = "tp";
    o.max_staged_bytes = max_staged;
    f->sink = eddy_uid(eddy_sink_kafka(src, &o), "ks");
    if (f->sink == NULL) {
        fail_msg("eddy_sink_kafka failed: %s", f->env->e_error.msg);
    }
    if (bootstrap == NULL) {
        eddy__kafka_sink_set_client(f->sink, fake_new, &f->b);
    } else {
        eddy__kafka_sink_conf(f->sink)->kc_timeout_ms = tu_timeout_ms(30000);
    }
}

static void fx_init(fx_t *f, eddy_kafka_guarantee_t g)
{
    fx_init_at(f, g, 0, NULL, "out");
}

static void fx_close(fx_t *f)
{
    assert_int_equal(f->b.clients, 0);
    broker_free(&f->b);
    eddy_env_destroy(f->env);
}

typedef struct sub {
    eddy__task_t task;
    eddy__op_t *ops[1];
    eddy__op_t op;
    eddy__op_restore_t *restore;
} sub_t;

/* Opens subtask `subtask` of `par`, restoring from `r` (taken over) when
 * not NULL. Returns oc_open's result. */
static int sub_open(fx_t *f, sub_t *s, int subtask, int par,
                    eddy__op_restore_t *r)
{
    memset(s, 0, sizeof(*s));
    eddy__op_t *op = &s->op;
    s->ops[0] = op;
    s->task.t_ops = s->ops;
    s->task.t_nops = 1;
    s->task.t_subtask = subtask;
    s->task.t_parallelism = par;
    s->task.t_name = "test";
    s->task.t_next_tick_ms = INT64_MAX;
    eddy__op_init(op, &s->task, f->sink);
    s->restore = r;
    op->op_restore = r;
    return op->op_class->oc_open(op);
}

static void sub_open_ok(fx_t *f, sub_t *s, int subtask, int par,
                        eddy__op_restore_t *r)
{
    if (sub_open(f, s, subtask, par, r) != 0) {
        fail_msg("oc_open failed: %s", s->op.op_errmsg);
    }
}

/* Closes the operator: after a clean end, or as a crash (no further
 * calls were made). */
static void sub_close(sub_t *s)
{
    eddy__op_t *op = &s->op;
    op->op_class->oc_close(op);
    eddy__op_release(op);
    eddy__op_restore_free(s->restore);
    s->restore = NULL;
}

static int sub_send_rec(sub_t *s, const eddy_record_t *rec)
{
    return s->op.op_class->oc_process(&s->op, rec);
}

static void sub_send(sub_t *s, const char *val)
{
    char key[64];
    snprintf(key, sizeof(key), "k-%s", val);
    eddy_record_t rec = {key, strlen(key), val, strlen(val), 1000};
    if (sub_send_rec(s, &rec) != 0) {
        fail_msg("oc_process failed: %s", s->op.op_errmsg);
    }
}

/* Takes checkpoint `id`: oc_snapshot, then the bytes the runtime would
 * write for this subtask (caller frees with bytes_del). */
static eddy__bytes_t *sub_snap(sub_t *s, int64_t id)
{
    eddy__op_snap_t *snap = eddy__op_snap_new(id, false);
    if (s->op.op_class->oc_snapshot(&s->op, snap) != 0) {
        fail_msg("oc_snapshot(%lld) failed: %s", (long long)id,
                 s->op.op_errmsg);
    }
    eddy__bytes_t *b = calloc(1, sizeof(*b));
    eddy__op_snap_encode(snap, b);
    eddy__op_snap_free(snap);
    return b;
}

static void bytes_del(eddy__bytes_t *b)
{
    if (b != NULL) {
        eddy__bytes_free(b);
        free(b);
    }
}

static int sub_complete(sub_t *s, int64_t id)
{
    return s->op.op_class->oc_checkpoint_complete(&s->op, id);
}

static void sub_complete_ok(sub_t *s, int64_t id)
{
    if (sub_complete(s, id) != 0) {
        fail_msg("oc_checkpoint_complete(%lld) failed: %s", (long long)id,
                 s->op.op_errmsg);
    }
}

static void sub_end_ok(sub_t *s)
{
    if (s->op.op_class->oc_end_input(&s->op) != 0) {
        fail_msg("oc_end_input failed: %s", s->op.op_errmsg);
    }
}

/* The restore of checkpoint `id` for `subtask` of `par`, from the bytes
 * every old subtask wrote. */
static eddy__op_restore_t *restore_of(int64_t id, eddy__bytes_t **old, int nold,
                                      int subtask, int par)
{
    eddy__op_restore_t *r = NULL;
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy__op_restore_new(id, (const eddy__bytes_t *const *)old,
                                      nold, subtask, par, &r, &err),
                 &err);
    return r;
}

/* Parses the i-th committed marker. */
static void marker_at(const fbroker_t *b, size_t i, char *txn, size_t cap,
                      uint64_t *nonce, int64_t *ckpt)
{
    assert_true(i < b->log[T_MARK].n);
    const fmsg_t *m = &b->log[T_MARK].v[i];
    assert_int_equal(
        eddy__ksink_marker_parse(m->val, m->vlen, txn, cap, nonce, ckpt), 0);
    /* The key names the same (transactional id, nonce), for compaction. */
    char key[256];
    snprintf(key, sizeof(key), "%s/%016llx", txn, (unsigned long long)*nonce);
    assert_string_equal(m->key, key);
}

static void assert_marker(const fbroker_t *b, size_t i, const char *txn,
                          int64_t ckpt)
{
    char t[160];
    uint64_t nonce;
    int64_t c;
    marker_at(b, i, t, sizeof(t), &nonce, &c);
    assert_string_equal(t, txn);
    assert_int_equal(c, ckpt);
}

/* ------------------------------------------------------------------------ */
/* Exactly-once: the normal path                                            */
/* ------------------------------------------------------------------------ */

static void test_eo_commits_on_checkpoint_complete(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    assert_string_equal(f.b.inits[0], "tp-ks-0");
    sub_send(&s, "a");
    sub_send(&s, "b");
    eddy__bytes_t *c1 = sub_snap(&s, 1);
    sub_send(&s, "c"); /* after barrier 1: belongs to checkpoint 2 */
    /* Nothing is visible before the checkpoint completes. */
    assert_int_equal(f.b.log[T_DATA].n, 0);
    assert_int_equal(f.b.ntxns, 1);
    assert_false(f.b.txns[0].open);

    sub_complete_ok(&s, 1);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b");
    assert_int_equal(f.b.log[T_MARK].n, 1);
    assert_marker(&f.b, 0, "tp-ks-0", 1);
    assert_int_equal(f.b.commits, 1);

    /* A repeated notification commits nothing more. */
    sub_complete_ok(&s, 1);
    assert_int_equal(f.b.commits, 1);

    eddy__bytes_t *c2 = sub_snap(&s, 2);
    sub_complete_ok(&s, 2);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b,c");
    assert_marker(&f.b, 1, "tp-ks-0", 2);
    assert_int_equal(f.b.commits, 2);

    /* A checkpoint without records opens no transaction. */
    eddy__bytes_t *c3 = sub_snap(&s, 3);
    sub_complete_ok(&s, 3);
    assert_int_equal(f.b.commits, 2);
    assert_int_equal(f.b.marker_reads, 0); /* fresh start: no recovery */

    /* Records keep their key and timestamp. */
    assert_true(f.b.log[T_DATA].v[0].has_key);
    assert_string_equal(f.b.log[T_DATA].v[0].key, "k-a");
    assert_int_equal(f.b.log[T_DATA].v[0].ts, 1000);
    sub_close(&s);
    bytes_del(c1);
    bytes_del(c2);
    bytes_del(c3);
    fx_close(&f);
}

static void test_eo_aborted_and_lost_notifications(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    sub_send(&s, "a");
    bytes_del(sub_snap(&s, 1));
    assert_int_equal(s.op.op_class->oc_checkpoint_abort(&s.op, 1), 0);
    sub_send(&s, "b");
    bytes_del(sub_snap(&s, 2)); /* its notification is lost */
    sub_send(&s, "c");
    bytes_del(sub_snap(&s, 3));
    sub_send(&s, "d");
    assert_int_equal(f.b.log[T_DATA].n, 0);
    /* Completing 3 covers the aborted 1 and the unnotified 2: one
     * transaction, in order, one marker naming 3. */
    sub_complete_ok(&s, 3);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b,c");
    assert_int_equal(f.b.commits, 1);
    assert_int_equal(f.b.log[T_MARK].n, 1);
    assert_marker(&f.b, 0, "tp-ks-0", 3);
    /* A late notification of an older checkpoint changes nothing. */
    sub_complete_ok(&s, 2);
    assert_int_equal(f.b.commits, 1);
    sub_close(&s);
    fx_close(&f);
}

static void test_eo_abortable_commit_is_retried(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    f.b.commit_fail = FAIL_ABORTABLE;
    f.b.commit_fail_at = 1;
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    sub_send(&s, "a");
    sub_send(&s, "b");
    bytes_del(sub_snap(&s, 1));
    sub_complete_ok(&s, 1);
    /* The aborted attempt left nothing; the second committed once. */
    assert_int_equal(f.b.commit_calls, 2);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b");
    assert_int_equal(f.b.log[T_MARK].n, 1);
    sub_close(&s);
    fx_close(&f);
}

static void test_eo_end_of_input_commits_the_rest(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    sub_send(&s, "a");
    bytes_del(sub_snap(&s, 1));
    sub_send(&s, "b");
    bytes_del(sub_snap(&s, 2)); /* not yet complete at the end */
    sub_send(&s, "c");
    sub_end_ok(&s);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b,c");
    assert_int_equal(f.b.commits, 1);
    assert_marker(&f.b, 0, "tp-ks-0", 3);
    sub_close(&s);
    fx_close(&f);
}

static void test_eo_staging_is_bounded(void **state)
{
    (void)state;
    fx_t f;
    fx_init_at(&f, EDDY_KAFKA_EXACTLY_ONCE, 100, NULL, "out");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    eddy_record_t rec = {NULL, 0, "0123456789", 10, EDDY_TS_NONE};
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++) {
        rc = sub_send_rec(&s, &rec);
    }
    assert_int_equal(rc, EDDY_ERR_NOMEM);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "staged more than 100 bytes");
    sub_close(&s);
    fx_close(&f);
}

static void test_eo_checkpoint_ids_must_increase(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    bytes_del(sub_snap(&s, 5));
    eddy__op_snap_t *snap = eddy__op_snap_new(5, false);
    assert_int_equal(s.op.op_class->oc_snapshot(&s.op, snap), EDDY_ERR_STATE);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "checkpoint 5 after checkpoint 5");
    eddy__op_snap_free(snap);
    sub_close(&s);
    fx_close(&f);
}

/* Records without key, with an empty key, with an empty (NULL) value and
 * without timestamp keep those properties through the direct commit and
 * through the checkpoint and re-send path. */
static void test_eo_record_fields_survive_staging(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    eddy_record_t recs[] = {
        {NULL, 0, "nokey", 5, EDDY_TS_NONE},
        {"", 0, NULL, 0, 5},
        {"k\0k", 3, "bin\0v", 5, -7},
    };
    for (int path = 0; path < 2; path++) {
        sub_t s;
        sub_open_ok(&f, &s, 0, 1, NULL);
        for (size_t i = 0; i < EDDY_ARRAY_SIZE(recs); i++) {
            assert_int_equal(sub_send_rec(&s, &recs[i]), 0);
        }
        eddy__bytes_t *c1 = sub_snap(&s, 1);
        if (path == 0) {
            sub_complete_ok(&s, 1);
            sub_close(&s);
        } else {
            sub_close(&s); /* crash, then recovery re-sends */
            sub_open_ok(&f, &s, 0, 1, restore_of(1, &c1, 1, 0, 1));
            sub_close(&s);
        }
        bytes_del(c1);
        assert_int_equal(f.b.log[T_DATA].n, 3);
        const fmsg_t *m = f.b.log[T_DATA].v;
        assert_false(m[0].has_key);
        assert_string_equal(m[0].val, "nokey");
        assert_int_equal(m[0].ts, EDDY_TS_NONE);
        assert_true(m[1].has_key);
        assert_string_equal(m[1].key, "");
        assert_int_equal(m[1].vlen, 0);
        assert_int_equal(m[1].ts, 5);
        assert_true(m[2].has_key);
        assert_memory_equal(m[2].key, "k\0k", 3);
        assert_int_equal(m[2].vlen, 5);
        assert_memory_equal(m[2].val, "bin\0v", 5);
        assert_int_equal(m[2].ts, -7);
        msgs_clear(&f.b.log[T_DATA]);
    }
    fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Exactly-once: crashes at every seam                                      */
/* ------------------------------------------------------------------------ */

/* THE gap: checkpoint 1 completed (its metadata is written) but the
 * process died before the sink committed. The restore re-sends batch 1;
 * the record after barrier 1 is not re-sent (the source replays it). */
static void test_eo_crash_after_complete_before_commit(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    sub_send(&s, "a");
    sub_send(&s, "b");
    eddy__bytes_t *c1 = sub_snap(&s, 1);
    sub_send(&s, "c");
    sub_close(&s); /* crash: oc_checkpoint_complete(1) never ran */
    assert_int_equal(f.b.log[T_DATA].n, 0);

    sub_open_ok(&f, &s, 0, 1, restore_of(1, &c1, 1, 0, 1));
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b");
    assert_int_equal(f.b.marker_reads, 1);
    assert_marker(&f.b, 0, "tp-ks-0", 1);
    /* The source replays "c"; it goes out with checkpoint 2. */
    sub_send(&s, "c");
    eddy__bytes_t *c2 = sub_snap(&s, 2);
    sub_complete_ok(&s, 2);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b,c");
    sub_close(&s);

    /* Another failure restores checkpoint 1 again: the re-send of batch 1
     * committed a marker, so nothing is sent twice. */
    sub_open_ok(&f, &s, 0, 1, restore_of(1, &c1, 1, 0, 1));
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b,c");
    sub_close(&s);
    /* Nor from checkpoint 2, committed by the notification. */
    sub_open_ok(&f, &s, 0, 1, restore_of(2, &c2, 1, 0, 1));
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b,c");
    assert_int_equal(f.b.commits, 2);
    sub_close(&s);
    bytes_del(c1);
    bytes_del(c2);
    fx_close(&f);
}

/* A commit interrupted at `fault`, then a restore of checkpoint 1: batch 1
 * must be committed exactly once in every case. */
static void crash_in_commit(int fault, const char *why, int expect_commits)
{
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    f.b.commit_fail = fault;
    f.b.commit_fail_at = 1;
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    sub_send(&s, "a");
    sub_send(&s, "b");
    eddy__bytes_t *c1 = sub_snap(&s, 1);
    assert_int_not_equal(sub_complete(&s, 1), 0);
    TU_ASSERT_CONTAINS(s.op.op_errmsg,
                       "cannot commit checkpoint 1 to Kafka topic 'out'");
    TU_ASSERT_CONTAINS(s.op.op_errmsg, why);
    sub_close(&s); /* the task failed: its process goes away */

    sub_open_ok(&f, &s, 0, 1, restore_of(1, &c1, 1, 0, 1));
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b");
    assert_int_equal(f.b.log[T_MARK].n, 1);
    assert_int_equal(f.b.commits, expect_commits);
    assert_false(f.b.txns[0].open);
    sub_close(&s);
    bytes_del(c1);
    fx_close(&f);
}

static void test_eo_crash_before_commit(void **state)
{
    (void)state;
    /* The open transaction is aborted by the fence; recovery re-sends. */
    crash_in_commit(FAIL_CRASH_BEFORE_COMMIT, "simulated crash before commit",
                    1);
}

static void test_eo_crash_during_commit(void **state)
{
    (void)state;
    /* The fence completes the requested commit; its marker is then read
     * and nothing is re-sent. */
    crash_in_commit(FAIL_CRASH_DURING_COMMIT, "simulated crash during commit",
                    1);
}

static void test_eo_crash_after_commit(void **state)
{
    (void)state;
    /* Committed, but the process died before hearing so: the marker says
     * so and nothing is re-sent. */
    crash_in_commit(FAIL_CRASH_AFTER_COMMIT, "simulated crash after commit", 1);
}

static void test_eo_fatal_commit_error(void **state)
{
    (void)state;
    crash_in_commit(FAIL_FATAL, "simulated fatal error", 1);
}

/* A crash during the recovery's own re-send: the next restore completes or
 * aborts it through the fence, and the batch is still committed once. */
static void test_eo_crash_during_recovery(void **state)
{
    (void)state;
    static const int faults[] = {FAIL_CRASH_BEFORE_COMMIT,
                                 FAIL_CRASH_DURING_COMMIT,
                                 FAIL_CRASH_AFTER_COMMIT};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(faults); i++) {
        fx_t f;
        fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
        sub_t s;
        sub_open_ok(&f, &s, 0, 1, NULL);
        sub_send(&s, "a");
        eddy__bytes_t *c1 = sub_snap(&s, 1);
        sub_close(&s); /* the gap */
        f.b.commit_fail = faults[i];
        f.b.commit_fail_at = 1; /* the recovery's commit */
        assert_int_not_equal(
            sub_open(&f, &s, 0, 1, restore_of(1, &c1, 1, 0, 1)), 0);
        TU_ASSERT_CONTAINS(s.op.op_errmsg, "cannot re-commit checkpoint 1 of "
                                           "transactional id 'tp-ks-0'");
        sub_close(&s);
        sub_open_ok(&f, &s, 0, 1, restore_of(1, &c1, 1, 0, 1));
        ASSERT_VALUES(&f.b.log[T_DATA], false, "a");
        assert_int_equal(f.b.log[T_MARK].n, 1);
        sub_close(&s);
        bytes_del(c1);
        fx_close(&f);
    }
}

/* A zombie (the old producer, still alive after the restore) can no
 * longer commit: the restore fenced its transactional id. */
static void test_eo_zombie_is_fenced(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    sub_t old, s;
    sub_open_ok(&f, &old, 0, 1, NULL);
    sub_send(&old, "a");
    eddy__bytes_t *c1 = sub_snap(&old, 1);
    /* The job restarts elsewhere while `old` still runs. */
    sub_open_ok(&f, &s, 0, 1, restore_of(1, &c1, 1, 0, 1));
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a");
    /* The zombie's late notification fails instead of committing again. */
    assert_int_not_equal(sub_complete(&old, 1), 0);
    TU_ASSERT_CONTAINS(old.op.op_errmsg, "fenced");
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a");
    sub_close(&old);
    sub_close(&s);
    bytes_del(c1);
    fx_close(&f);
}

/*
 * Restoring an older checkpoint (a savepoint) reuses checkpoint ids; the
 * nonce keeps a marker of the first run from passing for a batch of the
 * second: batch 2 of run B must be re-sent although run A committed its own
 * batch 2 under the same transactional id.
 */
static void test_eo_restore_of_older_checkpoint(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL); /* run A */
    sub_send(&s, "a1");
    eddy__bytes_t *c1 = sub_snap(&s, 1);
    sub_complete_ok(&s, 1);
    sub_send(&s, "a2");
    bytes_del(sub_snap(&s, 2));
    sub_complete_ok(&s, 2);
    sub_close(&s);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a1,a2");

    sub_open_ok(&f, &s, 0, 1, restore_of(1, &c1, 1, 0, 1)); /* run B */
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a1,a2");
    sub_send(&s, "b2");
    eddy__bytes_t *b2 = sub_snap(&s, 2);
    sub_close(&s); /* crash in the gap */

    sub_open_ok(&f, &s, 0, 1, restore_of(2, &b2, 1, 0, 1)); /* run C */
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a1,a2,b2");
    sub_close(&s);
    bytes_del(c1);
    bytes_del(b2);
    fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Exactly-once: restore with another parallelism                           */
/* ------------------------------------------------------------------------ */

static bool inited(const fbroker_t *b, int from, const char *txn)
{
    for (int i = from; i < b->ninits; i++) {
        if (strcmp(b->inits[i], txn) == 0) {
            return true;
        }
    }
    return false;
}

static void rescale(int from, int to)
{
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    sub_t *s = calloc((size_t)(from > to ? from : to), sizeof(sub_t));
    eddy__bytes_t **c1 = calloc((size_t)from, sizeof(void *));
    char v[32];
    for (int i = 0; i < from; i++) {
        sub_open_ok(&f, &s[i], i, from, NULL);
        snprintf(v, sizeof(v), "s%d-a", i);
        sub_send(&s[i], v);
        snprintf(v, sizeof(v), "s%d-b", i);
        sub_send(&s[i], v);
        c1[i] = sub_snap(&s[i], 1);
        snprintf(v, sizeof(v), "s%d-late", i);
        sub_send(&s[i], v); /* after the barrier */
    }
    /* Subtask 1 committed before the crash; the others did not. */
    if (from > 1) {
        sub_complete_ok(&s[1], 1);
    }
    for (int i = 0; i < from; i++) {
        sub_close(&s[i]);
    }
    int base = f.b.ninits;
    for (int i = 0; i < to; i++) {
        sub_open_ok(&f, &s[i], i, to, restore_of(1, c1, from, i, to));
    }
    /* Every old subtask's batch exactly once, and nothing after barrier 1. */
    char expect[512] = "";
    for (int i = 0; i < from; i++) {
        snprintf(v, sizeof(v), "%ss%d-a,s%d-b", i ? "," : "", i, i);
        strcat(expect, v);
    }
    ASSERT_VALUES(&f.b.log[T_DATA], true, expect);
    /* Each old transactional id was fenced (by its new owner, j % to). */
    for (int j = 0; j < from; j++) {
        snprintf(v, sizeof(v), "tp-ks-%d", j);
        assert_true(inited(&f.b, base, v));
    }
    /* One marker per old subtask: its commit or its re-send. */
    assert_int_equal(f.b.log[T_MARK].n, (size_t)from);
    for (int i = 0; i < to; i++) {
        snprintf(v, sizeof(v), "n%d", i);
        sub_send(&s[i], v);
        bytes_del(sub_snap(&s[i], 2));
        sub_complete_ok(&s[i], 2);
        sub_close(&s[i]);
    }
    assert_int_equal(f.b.log[T_DATA].n, (size_t)(2 * from + to));
    for (int i = 0; i < from; i++) {
        bytes_del(c1[i]);
    }
    free(c1);
    free(s);
    fx_close(&f);
}

static void test_eo_restore_with_lower_parallelism(void **state)
{
    (void)state;
    rescale(3, 2);
    rescale(4, 1);
}

static void test_eo_restore_with_higher_parallelism(void **state)
{
    (void)state;
    rescale(2, 3);
    rescale(1, 4);
}

/*
 * Old subtask 2 died with its commit requested but not finished, and the
 * restore has 2 subtasks, so no new subtask uses its transactional id. Its
 * new owner (subtask 0) must fence that id before reading markers: the
 * fence finishes the commit, the marker shows, and nothing is re-sent.
 * Without the fence the commit would complete later (at the next use of
 * the id, or the broker's transaction timeout) after a re-send.
 */
static void test_eo_orphaned_commit_in_flight(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    sub_t s[3];
    eddy__bytes_t *c1[3];
    char v[16];
    for (int i = 0; i < 3; i++) {
        sub_open_ok(&f, &s[i], i, 3, NULL);
        snprintf(v, sizeof(v), "s%d", i);
        sub_send(&s[i], v);
        c1[i] = sub_snap(&s[i], 1);
    }
    f.b.commit_fail = FAIL_CRASH_DURING_COMMIT;
    f.b.commit_fail_at = 1;
    assert_int_not_equal(sub_complete(&s[2], 1), 0);
    for (int i = 0; i < 3; i++) {
        sub_close(&s[i]);
    }
    assert_int_equal(f.b.log[T_DATA].n, 0);
    for (int i = 0; i < 2; i++) {
        sub_open_ok(&f, &s[i], i, 2, restore_of(1, c1, 3, i, 2));
    }
    ASSERT_VALUES(&f.b.log[T_DATA], true, "s0,s1,s2");
    for (int i = 0; i < 2; i++) {
        sub_close(&s[i]);
    }
    /* The id is used again later (a restore at parallelism 3). */
    for (int i = 0; i < 3; i++) {
        sub_open_ok(&f, &s[i], i, 3, restore_of(1, c1, 3, i, 3));
    }
    ASSERT_VALUES(&f.b.log[T_DATA], true, "s0,s1,s2");
    for (int i = 0; i < 3; i++) {
        sub_close(&s[i]);
        bytes_del(c1[i]);
    }
    fx_close(&f);
}

static void test_eo_malformed_state_fails_open(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    eddy__op_snap_t *snap = eddy__op_snap_new(7, false);
    assert_int_equal(eddy__op_snap_list_add(snap, EDDY__KSINK_STATE,
                                            EDDY__OPLIST_UNION, "garbage", 7),
                     0);
    eddy__bytes_t *b = calloc(1, sizeof(*b));
    eddy__op_snap_encode(snap, b);
    eddy__op_snap_free(snap);
    sub_t s;
    assert_int_equal(sub_open(&f, &s, 0, 1, restore_of(7, &b, 1, 0, 1)),
                     EDDY_ERR_FORMAT);
    assert_string_equal(s.op.op_errmsg,
                        "malformed staged records in checkpoint 7 "
                        "(element 1)");
    sub_close(&s);
    bytes_del(b);
    fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* At-least-once and none                                                   */
/* ------------------------------------------------------------------------ */

static void test_alo_checkpoint_waits_for_delivery(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_AT_LEAST_ONCE);
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    assert_int_equal(f.b.ntxns, 0); /* not transactional */
    sub_send(&s, "a");
    sub_send(&s, "b");
    assert_int_equal(f.b.log[T_DATA].n, 0); /* in flight */
    eddy__op_snap_t *snap = eddy__op_snap_new(1, false);
    assert_int_equal(s.op.op_class->oc_snapshot(&s.op, snap), 0);
    assert_true(eddy__op_snap_empty(snap)); /* no state to keep */
    eddy__op_snap_free(snap);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b");
    sub_send(&s, "c");
    sub_end_ok(&s);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a,b,c");
    sub_close(&s);
    fx_close(&f);
}

static void test_alo_delivery_failure_fails_checkpoint(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_AT_LEAST_ONCE);
    f.b.delivery_fails = true;
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    sub_send(&s, "a");
    eddy__op_snap_t *snap = eddy__op_snap_new(4, false);
    assert_int_equal(s.op.op_class->oc_snapshot(&s.op, snap),
                     EDDY_ERR_EXTERNAL);
    eddy__op_snap_free(snap);
    assert_string_equal(s.op.op_errmsg,
                        "checkpoint 4 failed: delivery to Kafka topic 'out' "
                        "failed: simulated");
    sub_close(&s);
    fx_close(&f);
}

static void test_none_does_not_wait_at_checkpoints(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_NONE);
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    sub_send(&s, "a");
    bytes_del(sub_snap(&s, 1));
    assert_int_equal(f.b.log[T_DATA].n, 0);
    sub_end_ok(&s); /* a bounded job's output is complete at its end */
    ASSERT_VALUES(&f.b.log[T_DATA], false, "a");
    sub_close(&s);
    fx_close(&f);
}

/* A whole job through eddy_env_execute, on the test double. */
static void test_alo_job_end_to_end(void **state)
{
    (void)state;
    fx_t f;
    memset(&f, 0, sizeof(f));
    f.env = eddy_env_new();
    const char *strs[] = {"x", "y", "z", "w"};
    eddy_stream_t *src = eddy_source_strings(f.env, strs, 4);
    eddy_kafka_sink_opts_t o = {0};
    o.bootstrap = "fake:9092";
    o.topic = "out";
    f.sink = eddy_sink_kafka(src, &o);
    assert_non_null(f.sink);
    eddy__kafka_sink_set_client(f.sink, fake_new, &f.b);
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy_env_execute(f.env, &err), &err);
    ASSERT_VALUES(&f.b.log[T_DATA], false, "x,y,z,w");
    assert_false(f.b.log[T_DATA].v[0].has_key);
    fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Option checking                                                          */
/* ------------------------------------------------------------------------ */

static void expect_build_error(const eddy_kafka_sink_opts_t *o, const char *msg)
{
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *src = eddy_source_collection(env, NULL, 0);
    assert_null(eddy_sink_kafka(src, o));
    assert_true(env->e_failed);
    TU_ASSERT_CONTAINS(env->e_error.msg, msg);
    eddy_env_destroy(env);
}

static void test_options_are_checked(void **state)
{
    (void)state;
    expect_build_error(NULL, "eddy_sink_kafka: no options given");
    eddy_kafka_sink_opts_t o = {0};
    o.topic = "t";
    expect_build_error(&o, "eddy_sink_kafka: no bootstrap servers given");
    o.bootstrap = "b:1";
    o.topic = "bad topic";
    expect_build_error(&o, "invalid topic name 'bad topic'");
    o.topic = "t";
    o.guarantee = (eddy_kafka_guarantee_t)9;
    expect_build_error(&o, "unknown guarantee 9");
    o.guarantee = EDDY_KAFKA_EXACTLY_ONCE;
    o.marker_topic = "t";
    expect_build_error(&o, "invalid marker topic 't'");
    o.marker_topic = NULL;
    o.transactional_id_prefix = "";
    expect_build_error(&o, "empty transactional_id_prefix");
    o.transactional_id_prefix = NULL;
    const char *odd[] = {"linger.ms", NULL};
    o.props = odd;
    expect_build_error(&o, "'linger.ms' has no value");
    const char *unknown[] = {"no.such.property", "1", NULL};
    o.props = unknown;
    expect_build_error(&o, "property 'no.such.property': No such "
                           "configuration property");
    const char *bad[] = {"linger.ms", "soon", NULL};
    o.props = bad;
    expect_build_error(&o, "property 'linger.ms': ");
    const char *owned[] = {"transactional.id", "x", NULL};
    o.props = owned;
    expect_build_error(&o, "property 'transactional.id' is set by the sink");

    /* A transactional id too long for its markers fails the subtask. */
    char prefix[600];
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    o.props = NULL;
    fx_t f;
    fx_init(&f, EDDY_KAFKA_EXACTLY_ONCE);
    eddy__kafka_sink_conf(f.sink)->kc_txn_prefix = prefix;
    sub_t s0;
    assert_int_equal(sub_open(&f, &s0, 0, 1, NULL), EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(s0.op.op_errmsg, "is longer than 511 characters");
    sub_close(&s0);
    fx_close(&f);

    /* A good configuration builds, and the default marker topic is
     * "<topic>.eddy-commits". */
    const char *good[] = {"linger.ms", "5", NULL};
    o.props = good;
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *s =
        eddy_sink_kafka(eddy_source_collection(env, NULL, 0), &o);
    assert_non_null(s);
    eddy__ksink_conf_t *c = eddy__kafka_sink_conf(s);
    assert_string_equal(c->kc_marker_topic, "t.eddy-commits");
    assert_int_equal(c->kc_nprops, 1);
    assert_int_equal(c->kc_max_staged, EDDY_KAFKA_DEFAULT_MAX_STAGED);
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* The librdkafka client against the mock cluster                           */
/* ------------------------------------------------------------------------ */

typedef struct mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    const char *bootstrap;
} mock_t;

static void mock_start(mock_t *m)
{
    char errstr[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    /* The cluster's own handle never connects anywhere: silence its
     * warning about having no bootstrap servers. */
    rd_kafka_conf_set(kc, "log_level", "3", errstr, sizeof(errstr));
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    assert_non_null(m->rk);
    m->mc = rd_kafka_mock_cluster_new(m->rk, 1);
    assert_non_null(m->mc);
    m->bootstrap = rd_kafka_mock_cluster_bootstraps(m->mc);
}

static void mock_stop(mock_t *m)
{
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
}

/* Reads every record of `topic` up to its end (all partitions). */
static void mock_consume(const mock_t *m, const char *topic, fmsgs_t *out)
{
    char errstr[512], group[64];
    static int seq;
    snprintf(group, sizeof(group), "test-%d-%d", (int)getpid(), ++seq);
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    const char *kv[][2] = {
        {"bootstrap.servers", m->bootstrap},   {"group.id", group},
        {"enable.auto.commit", "false"},       {"enable.partition.eof", "true"},
        {"isolation.level", "read_committed"}, {"fetch.wait.max.ms", "20"}};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(kv); i++) {
        assert_int_equal(
            rd_kafka_conf_set(kc, kv[i][0], kv[i][1], errstr, sizeof(errstr)),
            RD_KAFKA_CONF_OK);
    }
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const rd_kafka_metadata_t *md;
    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, tu_timeout_ms(10000)),
                     0);
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    int64_t hw[64];
    int left = 0;
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np && p < 64; p++) {
        int64_t lo;
        assert_int_equal(rd_kafka_query_watermark_offsets(
                             rk, topic, p, &lo, &hw[p], tu_timeout_ms(10000)),
                         0);
        if (hw[p] > lo) {
            rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
            left++;
        } else {
            hw[p] = -1;
        }
    }
    assert_int_equal(rd_kafka_assign(rk, parts), 0);
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(20000);
    while (left > 0) {
        if (tu_now_ms() > deadline) {
            fail_msg("timed out consuming '%s'", topic);
        }
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 100);
        if (msg == NULL) {
            continue;
        }
        int64_t next = -1;
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            next = msg->offset;
        } else if (msg->err == 0) {
            rd_kafka_timestamp_type_t tt;
            int64_t ts = rd_kafka_message_timestamp(msg, &tt);
            msgs_push(out, msg->key != NULL, msg->key, msg->key_len,
                      msg->payload != NULL ? msg->payload : "", msg->len, ts);
            next = msg->offset + 1;
        }
        if (next >= 0 && hw[msg->partition] > 0 && next >= hw[msg->partition]) {
            hw[msg->partition] = -1;
            left--;
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* An at-least-once job end to end: every record arrives with its key,
 * value and timestamp. */
static void test_mock_alo_job(void **state)
{
    (void)state;
    mock_t m;
    mock_start(&m);
    enum { N = 300 };
    eddy_record_t *recs = calloc(N, sizeof(*recs));
    char(*keys)[16] = calloc(N, 16);
    char(*vals)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], 16, "k%d", i);
        snprintf(vals[i], 16, "v%03d", i);
        recs[i] = (eddy_record_t){i % 3 == 0 ? NULL : keys[i],
                                  i % 3 == 0 ? 0 : strlen(keys[i]), vals[i],
                                  strlen(vals[i]), 1700000000000 + i};
    }
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *src = eddy_source_collection(env, recs, N);
    eddy_kafka_sink_opts_t o = {0};
    o.bootstrap = m.bootstrap;
    o.topic = "alo-out";
    const char *props[] = {"linger.ms", "5", NULL};
    o.props = props;
    assert_non_null(eddy_parallelism(eddy_sink_kafka(src, &o), 2));
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy_env_execute(env, &err), &err);
    eddy_env_destroy(env);

    fmsgs_t got = {0};
    mock_consume(&m, "alo-out", &got);
    assert_int_equal(got.n, N);
    bool *seen = calloc(N, sizeof(bool));
    for (size_t i = 0; i < got.n; i++) {
        int k = atoi(got.v[i].val + 1);
        assert_true(k >= 0 && k < N && !seen[k]);
        seen[k] = true;
        assert_int_equal(got.v[i].ts, recs[k].ts);
        assert_int_equal(got.v[i].has_key, recs[k].key != NULL);
        if (recs[k].key != NULL) {
            assert_string_equal(got.v[i].key, keys[k]);
        }
    }
    free(seen);
    msgs_free(&got);
    free(recs);
    free(keys);
    free(vals);
    mock_stop(&m);
}

/* The real client's transactions and markers through the hooks. */
static void test_mock_eo_commit_and_markers(void **state)
{
    (void)state;
    mock_t m;
    mock_start(&m);
    fx_t f;
    fx_init_at(&f, EDDY_KAFKA_EXACTLY_ONCE, 0, m.bootstrap, "eo-out");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    sub_send(&s, "a");
    sub_send(&s, "b");
    bytes_del(sub_snap(&s, 1));
    sub_send(&s, "c");
    sub_complete_ok(&s, 1);
    sub_close(&s);

    fmsgs_t got = {0};
    mock_consume(&m, "eo-out", &got);
    ASSERT_VALUES(&got, true, "a,b");
    assert_string_equal(got.v[0].key, got.v[0].val[0] == 'a' ? "k-a" : "k-b");
    assert_int_equal(got.v[0].ts, 1000);
    msgs_clear(&got);

    mock_consume(&m, "eo-out.eddy-commits", &got);
    assert_int_equal(got.n, 1);
    char txn[160];
    uint64_t nonce;
    int64_t ckpt;
    assert_int_equal(eddy__ksink_marker_parse(got.v[0].val, got.v[0].vlen, txn,
                                              sizeof(txn), &nonce, &ckpt),
                     0);
    assert_string_equal(txn, "tp-ks-0");
    assert_int_equal(ckpt, 1);
    msgs_free(&got);
    fx_close(&f);
    mock_stop(&m);
}

static int count_marker(void *arg, const void *key, size_t key_len,
                        const void *value, size_t value_len)
{
    EDDY_UNUSED(key);
    EDDY_UNUSED(key_len);
    char txn[160];
    uint64_t nonce;
    int64_t ckpt;
    if (eddy__ksink_marker_parse(value, value_len, txn, sizeof(txn), &nonce,
                                 &ckpt) == 0) {
        (*(int *)arg)++;
    }
    return 0;
}

/* Recovery with the real client: markers are read back from the cluster,
 * batches they name are not re-sent, others are; and restoring into fewer
 * subtasks uses a second transactional producer for the orphaned id. */
static void test_mock_eo_recovery(void **state)
{
    (void)state;
    mock_t m;
    mock_start(&m);
    fx_t f;
    fx_init_at(&f, EDDY_KAFKA_EXACTLY_ONCE, 0, m.bootstrap, "rec-out");
    sub_t s[2];
    eddy__bytes_t *c1[2], *c2[2];
    for (int i = 0; i < 2; i++) {
        char v[16];
        sub_open_ok(&f, &s[i], i, 2, NULL);
        snprintf(v, sizeof(v), "s%d-a", i);
        sub_send(&s[i], v);
        c1[i] = sub_snap(&s[i], 1);
        sub_complete_ok(&s[i], 1);
        snprintf(v, sizeof(v), "s%d-b", i);
        sub_send(&s[i], v);
        c2[i] = sub_snap(&s[i], 2);
        sub_close(&s[i]); /* crash in the gap of checkpoint 2 */
    }
    fmsgs_t got = {0};
    mock_consume(&m, "rec-out", &got);
    ASSERT_VALUES(&got, true, "s0-a,s1-a");
    msgs_clear(&got);

    /* Restore checkpoint 2 into one subtask: it owns both old elements. */
    sub_open_ok(&f, &s[0], 0, 1, restore_of(2, c2, 2, 0, 1));
    sub_close(&s[0]);
    mock_consume(&m, "rec-out", &got);
    ASSERT_VALUES(&got, true, "s0-a,s0-b,s1-a,s1-b");
    msgs_clear(&got);

    /* Again from 2, and from 1: everything is named by markers now. */
    sub_open_ok(&f, &s[0], 0, 1, restore_of(2, c2, 2, 0, 1));
    sub_close(&s[0]);
    sub_open_ok(&f, &s[0], 0, 2, restore_of(1, c1, 2, 0, 2));
    sub_close(&s[0]);
    sub_open_ok(&f, &s[1], 1, 2, restore_of(1, c1, 2, 1, 2));
    sub_close(&s[1]);
    mock_consume(&m, "rec-out", &got);
    ASSERT_VALUES(&got, true, "s0-a,s0-b,s1-a,s1-b");
    msgs_free(&got);

    /* The client reads the four markers back itself. */
    eddy__kclient_t *kc;
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy__kclient_rdkafka_new(NULL, eddy__kafka_sink_conf(f.sink),
                                           NULL, NULL, &kc, &err),
                 &err);
    int n = 0;
    TU_ASSERT_OK(kc->kc_ops->read_markers(kc, count_marker, &n, &err), &err);
    assert_int_equal(n, 4); /* two commits of 1, two re-sends of 2 */
    kc->kc_ops->destroy(kc);
    for (int i = 0; i < 2; i++) {
        bytes_del(c1[i]);
        bytes_del(c2[i]);
    }
    fx_close(&f);
    mock_stop(&m);
}

/* At least once with the real client: a record the broker refuses fails
 * the checkpoint with librdkafka's reason. */
static void test_mock_alo_delivery_failure(void **state)
{
    (void)state;
    mock_t m;
    mock_start(&m);
    fx_t f;
    fx_init_at(&f, EDDY_KAFKA_AT_LEAST_ONCE, 0, m.bootstrap, "refused");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    /* Produce is API key 0; a non-retriable error fails the delivery. */
    rd_kafka_mock_push_request_errors(
        m.mc, 0, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    sub_send(&s, "a");
    eddy__op_snap_t *snap = eddy__op_snap_new(1, false);
    assert_int_equal(s.op.op_class->oc_snapshot(&s.op, snap),
                     EDDY_ERR_EXTERNAL);
    eddy__op_snap_free(snap);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "checkpoint 1 failed: delivery to "
                                       "Kafka topic 'refused' failed: ");
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "authorization");
    sub_close(&s);
    fx_close(&f);
    mock_stop(&m);
}

/* A client destroyed inside a transaction (a crash) returns at once, and a
 * new producer with the same transactional id takes over and commits. */
static void test_mock_crash_inside_transaction(void **state)
{
    (void)state;
    mock_t m;
    mock_start(&m);
    fx_t f;
    fx_init_at(&f, EDDY_KAFKA_EXACTLY_ONCE, 0, m.bootstrap, "crash-out");
    const eddy__ksink_conf_t *conf = eddy__kafka_sink_conf(f.sink);
    eddy_record_t rec = {NULL, 0, "x", 1, EDDY_TS_NONE};
    eddy__kclient_t *a, *b;
    eddy_error_t err = {0};
    TU_ASSERT_OK(
        eddy__kclient_rdkafka_new(NULL, conf, "tp-crash", NULL, &a, &err),
        &err);
    TU_ASSERT_OK(a->kc_ops->init_transactions(a, &err), &err);
    TU_ASSERT_OK(a->kc_ops->begin(a, &err), &err);
    TU_ASSERT_OK(a->kc_ops->produce(a, EDDY__KTOPIC_DATA, &rec, &err), &err);
    uint64_t t0 = tu_now_ms();
    a->kc_ops->destroy(a);
    assert_true(tu_now_ms() - t0 < (uint64_t)tu_timeout_ms(5000));

    TU_ASSERT_OK(
        eddy__kclient_rdkafka_new(NULL, conf, "tp-crash", NULL, &b, &err),
        &err);
    TU_ASSERT_OK(b->kc_ops->init_transactions(b, &err), &err);
    TU_ASSERT_OK(b->kc_ops->begin(b, &err), &err);
    rec.value = "y";
    TU_ASSERT_OK(b->kc_ops->produce(b, EDDY__KTOPIC_DATA, &rec, &err), &err);
    TU_ASSERT_OK(b->kc_ops->commit(b, &err), &err);
    /* An aborted transaction leaves the producer usable. */
    TU_ASSERT_OK(b->kc_ops->begin(b, &err), &err);
    TU_ASSERT_OK(b->kc_ops->abort(b, &err), &err);
    b->kc_ops->destroy(b);
    fmsgs_t got = {0};
    mock_consume(&m, "crash-out", &got);
    /* The mock cluster has no isolation: "x" of the dead transaction may
     * be visible too; "y" must be. */
    bool y = false;
    for (size_t i = 0; i < got.n; i++) {
        y = y || strcmp(got.v[i].val, "y") == 0;
    }
    assert_true(y);
    msgs_free(&got);
    fx_close(&f);
    mock_stop(&m);
}

/* Reading markers from a marker topic nobody wrote finds none. */
static void test_mock_no_markers(void **state)
{
    (void)state;
    mock_t m;
    mock_start(&m);
    fx_t f;
    fx_init_at(&f, EDDY_KAFKA_EXACTLY_ONCE, 0, m.bootstrap, "fresh");
    eddy__kclient_t *kc;
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy__kclient_rdkafka_new(NULL, eddy__kafka_sink_conf(f.sink),
                                           NULL, NULL, &kc, &err),
                 &err);
    int n = 0;
    TU_ASSERT_OK(kc->kc_ops->read_markers(kc, count_marker, &n, &err), &err);
    assert_int_equal(n, 0);
    kc->kc_ops->destroy(kc);
    fx_close(&f);
    mock_stop(&m);
}

/* An exactly-once job without checkpoints commits everything at its end. */
static void test_mock_eo_job_commits_at_end(void **state)
{
    (void)state;
    mock_t m;
    mock_start(&m);
    const char *strs[] = {"p", "q", "r"};
    eddy_env_t *env = eddy_env_new();
    eddy_kafka_sink_opts_t o = {0};
    o.bootstrap = m.bootstrap;
    o.topic = "end-out";
    o.guarantee = EDDY_KAFKA_EXACTLY_ONCE;
    assert_non_null(eddy_sink_kafka(eddy_source_strings(env, strs, 3), &o));
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy_env_execute(env, &err), &err);
    eddy_env_destroy(env);
    fmsgs_t got = {0};
    mock_consume(&m, "end-out", &got);
    ASSERT_VALUES(&got, true, "p,q,r");
    msgs_clear(&got);
    mock_consume(&m, "end-out.eddy-commits", &got);
    assert_int_equal(got.n, 1);
    msgs_free(&got);
    mock_stop(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eo_commits_on_checkpoint_complete),
        cmocka_unit_test(test_eo_aborted_and_lost_notifications),
        cmocka_unit_test(test_eo_abortable_commit_is_retried),
        cmocka_unit_test(test_eo_end_of_input_commits_the_rest),
        cmocka_unit_test(test_eo_staging_is_bounded),
        cmocka_unit_test(test_eo_checkpoint_ids_must_increase),
        cmocka_unit_test(test_eo_record_fields_survive_staging),
        cmocka_unit_test(test_eo_crash_after_complete_before_commit),
        cmocka_unit_test(test_eo_crash_before_commit),
        cmocka_unit_test(test_eo_crash_during_commit),
        cmocka_unit_test(test_eo_crash_after_commit),
        cmocka_unit_test(test_eo_fatal_commit_error),
        cmocka_unit_test(test_eo_crash_during_recovery),
        cmocka_unit_test(test_eo_zombie_is_fenced),
        cmocka_unit_test(test_eo_restore_of_older_checkpoint),
        cmocka_unit_test(test_eo_restore_with_lower_parallelism),
        cmocka_unit_test(test_eo_restore_with_higher_parallelism),
        cmocka_unit_test(test_eo_orphaned_commit_in_flight),
        cmocka_unit_test(test_eo_malformed_state_fails_open),
        cmocka_unit_test(test_alo_checkpoint_waits_for_delivery),
        cmocka_unit_test(test_alo_delivery_failure_fails_checkpoint),
        cmocka_unit_test(test_none_does_not_wait_at_checkpoints),
        cmocka_unit_test(test_alo_job_end_to_end),
        cmocka_unit_test(test_options_are_checked),
        cmocka_unit_test(test_mock_alo_job),
        cmocka_unit_test(test_mock_eo_commit_and_markers),
        cmocka_unit_test(test_mock_eo_recovery),
        cmocka_unit_test(test_mock_alo_delivery_failure),
        cmocka_unit_test(test_mock_crash_inside_transaction),
        cmocka_unit_test(test_mock_no_markers),
        cmocka_unit_test(test_mock_eo_job_commits_at_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
