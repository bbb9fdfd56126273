/*
 * eddy — the Kafka sink: records to a Kafka topic, at least once or exactly
 * once.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §6). Record key → message key (no key when the record
 * has none), value → value, ts → message timestamp (EDDY_TS_NONE: the send
 * time).
 *
 * NONE and AT_LEAST_ONCE produce asynchronously through librdkafka. At a
 * checkpoint, AT_LEAST_ONCE waits until every record produced so far is
 * acknowledged; a failed delivery fails the task, so a checkpoint never
 * completes with a record lost (a restore may send some records again).
 *
 * EXACTLY_ONCE. librdkafka cannot resume another producer's open
 * transaction, so the classic "pre-commit a transaction at the barrier,
 * commit it on checkpoint complete" cannot redo a commit after a crash.
 * Instead the sink keeps Kafka transactions short and makes the checkpoint
 * the durable pre-commit:
 *
 *   1. Records are staged in memory (one growing byte buffer per subtask,
 *      bounded by max_staged_bytes). Barrier n seals the records since the
 *      previous barrier as batch n; oc_snapshot(n) writes every sealed,
 *      uncommitted batch into checkpoint n as one self-describing element
 *      of operator list state (transactional id, uid, subtask, nonce, and
 *      per batch: checkpoint id, record count, records).
 *   2. oc_checkpoint_complete(n) commits every sealed batch <= n, in order,
 *      in ONE Kafka transaction under the subtask's transactional id
 *      T = "<prefix>-<uid>-<subtask>", together with a marker record in the
 *      marker topic naming (T, nonce, highest checkpoint id committed). The
 *      marker and the data are atomic: either both are committed or
 *      neither. An aborted checkpoint's batch stays pending and goes out
 *      with the next completed one; a lost notification is covered by the
 *      next (<= n covers every earlier batch); a repeated one finds nothing
 *      left to commit.
 *   3. On restore from checkpoint r, every batch in r's elements is pending
 *      (either never committed, or committed after r was taken). The
 *      element of old subtask j is recovered by new subtask j % parallelism
 *      alone (the state is UNION, so every subtask sees every element and
 *      picks its own), which also fences T_j: init_transactions on T_j
 *      makes the broker finish T_j's open transaction (commit if its commit
 *      was already requested, abort otherwise) and reject the old producer
 *      from then on. Then the sink reads the marker topic to its end
 *      (read_committed) and re-sends, in one transaction under T_j with a
 *      new marker, exactly the batches above the highest checkpoint a
 *      marker reports for (T_j, nonce). This all happens in oc_open, before
 *      any record is processed.
 *
 * Why this is exactly once: every attempt to commit a batch uses the
 * batch's own T (the T of the subtask that staged it), and every attempt
 * after the first is preceded by fencing T and reading the markers under
 * the new producer epoch. So two attempts cannot both commit: the later one
 * either fenced the earlier before its commit (the broker rejects it) or
 * reads its marker and skips. Commits of a (T, nonce) are in checkpoint
 * order and each covers every pending batch <= n, so the committed batches
 * are always a prefix and one number per (T, nonce) says which.
 *
 * The nonce (random, drawn at every oc_open) names the staging run: after
 * a restore from an older checkpoint or savepoint, checkpoint ids repeat,
 * and (T, checkpoint id) alone would match a marker of a different run.
 *
 * Why UNION and not SPLIT state: SPLIT deals elements round robin, so the
 * batches of one T could land on two new subtasks that would then both
 * need to fence T, and fencing T while another subtask produces under T
 * breaks that subtask. With one element per old subtask and ownership by
 * j % parallelism, each T is fenced and recovered by exactly one subtask,
 * and T_j for j < parallelism is recovered by subtask j itself, which uses
 * T_j as its own id afterwards.
 *
 * End of input: the remaining records are committed at once (the task ends
 * and gets no further notification). If the job fails after that but
 * before the next checkpoint completes, the restore replays those records
 * and they are committed again.
 *
 * THREADS. Every callback runs on the subtask's task thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "common/bytes.h"
#include "connectors/kafka_sink.h"
#include "runtime/runtime.h"

#define ELEM_MAGIC 0x314b5345u /* "ESK1" */
#define ELEM_VERSION 1
#define REC_HAS_KEY 1
#define REC_HAS_TS 2
#define COMMIT_ATTEMPTS 3
#define DEFAULT_TIMEOUT_MS 60000
#define MARKER_SUFFIX ".eddy-commits"
#define MAX_TOPIC_NAME 249 /* Kafka's limit */
/* Longest transactional id: markers are matched by it, so every buffer that
 * holds one (parsing markers, their keys) is sized from this. */
#define TXN_MAX 511

/* A sealed batch: the records staged between two barriers. */
typedef struct kbatch {
    int64_t kb_ckpt; /* the checkpoint whose barrier sealed it */
    size_t kb_off;   /* its bytes in ks_stage */
    size_t kb_len;
    uint64_t kb_count;
} kbatch_t;

/* A batch to commit: bytes in the stage or in restored state. */
typedef struct kview {
    int64_t kv_ckpt;
    uint64_t kv_count;
    const unsigned char *kv_p;
    size_t kv_len;
} kview_t;

typedef struct ksink {
    eddy__op_t *ks_op;
    const eddy__ksink_conf_t *ks_conf;
    eddy__kclient_t *ks_client;
    char *ks_txn_id; /* exactly-once: this subtask's transactional id */
    const char *ks_uid;
    uint64_t ks_nonce;
    /* Exactly-once staging: sealed batches, then the open one. */
    eddy__bytes_t ks_stage;
    kbatch_t *ks_batches; /* oldest first */
    size_t ks_nbatches;
    size_t ks_batches_cap;
    size_t ks_open_off; /* where the open batch starts in ks_stage */
    uint64_t ks_open_count;
    int64_t ks_last_id;    /* highest checkpoint snapshotted or restored */
    eddy__bytes_t ks_elem; /* snapshot element, reused */
    bool ks_ended;
} ksink_t;

static atomic_int *op_cancel_flag(eddy__op_t *op)
{
    eddy__task_t *t = op->op_task;
    return t != NULL && t->t_job != NULL ? t->t_job->j_cancel : NULL;
}

static uint64_t draw_nonce(void)
{
    uint64_t n = 0;
    if (getrandom(&n, sizeof(n), 0) != (ssize_t)sizeof(n)) {
        /* No entropy source: time and pid still differ between opens. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        n = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
            ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)&n;
    }
    return n;
}

/* ---- staged records ---- */

/* One record: flags:u8 [key:blob] value:blob [ts:u64]. */
static void stage_put(eddy__bytes_t *b, const eddy_record_t *rec)
{
    uint8_t flags = (uint8_t)((rec->key != NULL ? REC_HAS_KEY : 0) |
                              (rec->ts != EDDY_TS_NONE ? REC_HAS_TS : 0));
    eddy__bytes_put_u8(b, flags);
    if (rec->key != NULL) {
        eddy__bytes_put_blob(b, rec->key, rec->key_len);
    }
    eddy__bytes_put_blob(b, rec->value, rec->value_len);
    if (rec->ts != EDDY_TS_NONE) {
        eddy__bytes_put_u64(b, (uint64_t)rec->ts);
    }
}

/* Reads the next staged record; false at a malformed one. */
static bool stage_next(eddy__rd_t *rd, eddy_record_t *rec)
{
    uint8_t flags = eddy__rd_u8(rd);
    rec->key = NULL;
    rec->key_len = 0;
    if (flags & REC_HAS_KEY) {
        rec->key = eddy__rd_blob(rd, &rec->key_len);
        if (rec->key != NULL && rec->key_len == 0) {
            rec->key = ""; /* an empty key is still a key */
        }
    }
    rec->value = eddy__rd_blob(rd, &rec->value_len);
    rec->ts = (flags & REC_HAS_TS) ? (int64_t)eddy__rd_u64(rd) : EDDY_TS_NONE;
    return eddy__rd_ok(rd) && (flags & ~(REC_HAS_KEY | REC_HAS_TS)) == 0;
}

/* True if p..len holds exactly `count` well-formed records. */
static bool stage_valid(const unsigned char *p, size_t len, uint64_t count)
{
    eddy__rd_t rd;
    eddy__rd_init(&rd, p, len);
    eddy_record_t rec;
    for (uint64_t i = 0; i < count; i++) {
        if (!stage_next(&rd, &rec)) {
            return false;
        }
    }
    return eddy__rd_done(&rd) && eddy__rd_ok(&rd);
}

/* ---- markers ---- */

static void marker_key(char *buf, size_t size, const char *txn, uint64_t nonce)
{
    eddy__fmt(buf, size, "%s/%016" PRIx64, txn, nonce);
}

/* The marker's JSON value (caller frees). */
static char *marker_value(const char *txn, uint64_t nonce, int64_t ckpt,
                          uint64_t records, const char *uid, int subtask)
{
    char hex[17];
    eddy__fmt(hex, sizeof(hex), "%016" PRIx64, nonce);
    json_t *o = json_pack(
        "{s:i, s:s, s:s, s:I, s:I, s:s, s:i}", "eddy_kafka_sink", 1,
        "transactional_id", txn, "nonce", hex, "checkpoint", (json_int_t)ckpt,
        "records", (json_int_t)records, "uid", uid, "subtask", subtask);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int eddy__ksink_marker_parse(const void *value, size_t len, char *txn_id,
                             size_t txn_cap, uint64_t *nonce,
                             int64_t *checkpoint)
{
    json_error_t jerr;
    json_t *o = json_loadb(value, len, 0, &jerr);
    const char *txn = NULL, *hex = NULL;
    json_int_t ckpt = 0;
    int version = 0;
    int rc = EDDY_ERR_FORMAT;
    if (o != NULL &&
        json_unpack(o, "{s:i, s:s, s:s, s:I}", "eddy_kafka_sink", &version,
                    "transactional_id", &txn, "nonce", &hex, "checkpoint",
                    &ckpt) == 0 &&
        version == 1 && strlen(hex) == 16 && strlen(txn) < txn_cap) {
        char *end;
        *nonce = strtoull(hex, &end, 16);
        if (*end == '\0') {
            memcpy(txn_id, txn, strlen(txn) + 1);
            *checkpoint = (int64_t)ckpt;
            rc = 0;
        }
    }
    json_decref(o);
    return rc;
}

/* ---- one transaction: batches plus their marker ---- */

/*
 * Commits the batches (in order) and one marker for (txn, nonce, last
 * batch's checkpoint) in one transaction on `c`. A commit the client
 * reports as retriable (the transaction was aborted) is attempted again
 * from the start, up to COMMIT_ATTEMPTS times.
 */
static int commit_views(ksink_t *ks, eddy__kclient_t *c, const char *txn,
                        uint64_t nonce, const kview_t *v, size_t n,
                        eddy_error_t *err)
{
    const eddy__kclient_ops_t *ops = c->kc_ops;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += v[i].kv_count;
    }
    char key[TXN_MAX + 32];
    marker_key(key, sizeof(key), txn, nonce);
    char *value = marker_value(txn, nonce, v[n - 1].kv_ckpt, total, ks->ks_uid,
                               ks->ks_op->op_ctx.cx_subtask);
    eddy_record_t marker = {key, strlen(key), value, strlen(value),
                            EDDY_TS_NONE};
    int rc = 0;
    for (int attempt = 1; attempt <= COMMIT_ATTEMPTS; attempt++) {
        rc = ops->begin(c, err);
        for (size_t i = 0; i < n && rc == 0; i++) {
            eddy__rd_t rd;
            eddy__rd_init(&rd, v[i].kv_p, v[i].kv_len);
            eddy_record_t rec;
            for (uint64_t k = 0; k < v[i].kv_count && rc == 0; k++) {
                if (!stage_next(&rd, &rec)) {
                    rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                                        "staged batch of checkpoint %" PRId64
                                        " is corrupt",
                                        v[i].kv_ckpt);
                    break;
                }
                rc = ops->produce(c, EDDY__KTOPIC_DATA, &rec, err);
            }
        }
        if (rc == 0) {
            rc = ops->produce(c, EDDY__KTOPIC_MARKERS, &marker, err);
        }
        if (rc == 0) {
            rc = ops->commit(c, err);
        }
        if (rc == 0 || !err->retriable) {
            break;
        }
    }
    free(value);
    return rc;
}

/* ---- staging and committing (exactly-once) ---- */

/* Seals the open batch as batch `id` (nothing if it is empty). */
static void seal_open(ksink_t *ks, int64_t id)
{
    if (ks->ks_open_count == 0) {
        return;
    }
    eddy__grow((void **)&ks->ks_batches, &ks->ks_batches_cap,
               ks->ks_nbatches + 1, sizeof(kbatch_t));
    ks->ks_batches[ks->ks_nbatches++] =
        (kbatch_t){id, ks->ks_open_off, ks->ks_stage.b_len - ks->ks_open_off,
                   ks->ks_open_count};
    ks->ks_open_off = ks->ks_stage.b_len;
    ks->ks_open_count = 0;
}

/* Commits the sealed batches <= id and drops them from the stage. */
static int commit_upto(ksink_t *ks, int64_t id)
{
    eddy__op_t *op = ks->ks_op;
    size_t k = 0;
    while (k < ks->ks_nbatches && ks->ks_batches[k].kb_ckpt <= id) {
        k++;
    }
    if (k == 0) {
        return 0; /* a repeated or empty notification */
    }
    kview_t *v = eddy__calloc(k, sizeof(*v));
    for (size_t i = 0; i < k; i++) {
        const kbatch_t *b = &ks->ks_batches[i];
        v[i] = (kview_t){b->kb_ckpt, b->kb_count,
                         ks->ks_stage.b_data + b->kb_off, b->kb_len};
    }
    eddy_error_t err = {0};
    int rc = commit_views(ks, ks->ks_client, ks->ks_txn_id, ks->ks_nonce, v, k,
                          &err);
    free(v);
    if (rc != 0) {
        return eddy__op_fail(op, rc,
                             "cannot commit checkpoint %" PRId64
                             " to Kafka topic '%s': %s",
                             id, ks->ks_conf->kc_topic, err.msg);
    }
    /* Drop the committed bytes: what follows (later batches and the open
     * one) moves to the front. */
    size_t cut =
        k < ks->ks_nbatches ? ks->ks_batches[k].kb_off : ks->ks_open_off;
    memmove(ks->ks_stage.b_data, ks->ks_stage.b_data + cut,
            ks->ks_stage.b_len - cut);
    ks->ks_stage.b_len -= cut;
    ks->ks_open_off -= cut;
    memmove(ks->ks_batches, ks->ks_batches + k,
            (ks->ks_nbatches - k) * sizeof(kbatch_t));
    ks->ks_nbatches -= k;
    for (size_t i = 0; i < ks->ks_nbatches; i++) {
        ks->ks_batches[i].kb_off -= cut;
    }
    return 0;
}

/*
 * The snapshot element: magic:u32 version:varint txn:blob uid:blob
 * subtask:varint parallelism:varint nonce:u64 nbatches:varint, then per
 * batch ckpt:u64 count:varint records:blob.
 */
static void elem_encode(ksink_t *ks, eddy__bytes_t *b)
{
    eddy__bytes_reset(b);
    eddy__bytes_put_u32(b, ELEM_MAGIC);
    eddy__bytes_put_varint(b, ELEM_VERSION);
    eddy__bytes_put_blob(b, ks->ks_txn_id, strlen(ks->ks_txn_id));
    eddy__bytes_put_blob(b, ks->ks_uid, strlen(ks->ks_uid));
    eddy__bytes_put_varint(b, (uint64_t)ks->ks_op->op_ctx.cx_subtask);
    eddy__bytes_put_varint(b, (uint64_t)ks->ks_op->op_ctx.cx_parallelism);
    eddy__bytes_put_u64(b, ks->ks_nonce);
    eddy__bytes_put_varint(b, ks->ks_nbatches);
    for (size_t i = 0; i < ks->ks_nbatches; i++) {
        const kbatch_t *kb = &ks->ks_batches[i];
        eddy__bytes_put_u64(b, (uint64_t)kb->kb_ckpt);
        eddy__bytes_put_varint(b, kb->kb_count);
        eddy__bytes_put_blob(b, ks->ks_stage.b_data + kb->kb_off, kb->kb_len);
    }
}

/* ---- restore (exactly-once) ---- */

/* A decoded element of restored state (pointers into the restore). */
typedef struct kelem {
    char *ke_txn;
    char *ke_uid;
    int ke_subtask;
    uint64_t ke_nonce;
    kview_t *ke_views;
    size_t ke_nviews;
    int64_t ke_committed;       /* highest checkpoint a marker reports */
    eddy__kclient_t *ke_client; /* NULL: the subtask's own client */
    bool ke_shares_client;      /* ke_client belongs to an earlier element */
} kelem_t;

typedef struct krestore {
    kelem_t *kr_elems;
    size_t kr_n;
    size_t kr_cap;
    int kr_bad; /* index + 1 of the first malformed element */
} krestore_t;

static char *blob_strdup(const void *p, size_t n)
{
    char *s = eddy__malloc(n + 1);
    if (n > 0) {
        memcpy(s, p, n);
    }
    s[n] = '\0';
    return s;
}

static int collect_elem(void *arg, const void *p, size_t len)
{
    krestore_t *kr = arg;
    eddy__rd_t rd;
    eddy__rd_init(&rd, p, len);
    kelem_t e = {0};
    e.ke_committed = INT64_MIN;
    size_t tlen, ulen;
    uint32_t magic = eddy__rd_u32(&rd);
    uint64_t version = eddy__rd_varint(&rd);
    const void *txn = eddy__rd_blob(&rd, &tlen);
    const void *uid = eddy__rd_blob(&rd, &ulen);
    uint64_t subtask = eddy__rd_varint(&rd);
    (void)eddy__rd_varint(&rd); /* parallelism: informative */
    e.ke_nonce = eddy__rd_u64(&rd);
    uint64_t n = eddy__rd_varint(&rd);
    if (!eddy__rd_ok(&rd) || magic != ELEM_MAGIC || version != ELEM_VERSION ||
        tlen == 0 || tlen > TXN_MAX || memchr(txn, '\0', tlen) != NULL ||
        subtask > INT32_MAX || n > len) {
        goto bad;
    }
    e.ke_subtask = (int)subtask;
    e.ke_views = eddy__calloc(n + 1, sizeof(kview_t));
    int64_t prev = INT64_MIN;
    for (uint64_t i = 0; i < n; i++) {
        kview_t *v = &e.ke_views[i];
        v->kv_ckpt = (int64_t)eddy__rd_u64(&rd);
        v->kv_count = eddy__rd_varint(&rd);
        v->kv_p = eddy__rd_blob(&rd, &v->kv_len);
        if (!eddy__rd_ok(&rd) || v->kv_ckpt <= prev ||
            !stage_valid(v->kv_p, v->kv_len, v->kv_count)) {
            goto bad;
        }
        prev = v->kv_ckpt;
    }
    if (!eddy__rd_done(&rd) || !eddy__rd_ok(&rd)) {
        goto bad;
    }
    e.ke_nviews = (size_t)n;
    e.ke_txn = blob_strdup(txn, tlen);
    e.ke_uid = blob_strdup(uid, ulen);
    eddy__grow((void **)&kr->kr_elems, &kr->kr_cap, kr->kr_n + 1,
               sizeof(kelem_t));
    kr->kr_elems[kr->kr_n++] = e;
    return 0;
bad:
    free(e.ke_views);
    kr->kr_bad = (int)kr->kr_n + 1;
    return EDDY_ERR_FORMAT;
}

static void krestore_free(krestore_t *kr)
{
    for (size_t i = 0; i < kr->kr_n; i++) {
        kelem_t *e = &kr->kr_elems[i];
        if (e->ke_client != NULL && !e->ke_shares_client) {
            e->ke_client->kc_ops->destroy(e->ke_client);
        }
        free(e->ke_txn);
        free(e->ke_uid);
        free(e->ke_views);
    }
    free(kr->kr_elems);
}

static int on_marker(void *arg, const void *key, size_t key_len,
                     const void *value, size_t value_len)
{
    EDDY_UNUSED(key);
    EDDY_UNUSED(key_len);
    krestore_t *kr = arg;
    char txn[TXN_MAX + 1];
    uint64_t nonce;
    int64_t ckpt;
    if (eddy__ksink_marker_parse(value, value_len, txn, sizeof(txn), &nonce,
                                 &ckpt) != 0) {
        return 0; /* not one of ours */
    }
    for (size_t i = 0; i < kr->kr_n; i++) {
        kelem_t *e = &kr->kr_elems[i];
        if (e->ke_nonce == nonce && strcmp(e->ke_txn, txn) == 0 &&
            ckpt > e->ke_committed) {
            e->ke_committed = ckpt;
        }
    }
    return 0;
}

/*
 * Re-commits what the restored checkpoint staged and no marker reports as
 * committed (see the design note at the top). Runs in oc_open.
 */
static int recover(ksink_t *ks)
{
    eddy__op_t *op = ks->ks_op;
    const eddy__ksink_conf_t *conf = ks->ks_conf;
    int me = op->op_ctx.cx_subtask, par = op->op_ctx.cx_parallelism;
    krestore_t kr = {0};
    eddy_error_t err = {0};
    int rc = eddy__op_restore_list(op->op_restore, EDDY__KSINK_STATE,
                                   collect_elem, &kr);
    if (rc != 0) {
        krestore_free(&kr);
        return eddy__op_fail(op, EDDY_ERR_FORMAT,
                             "malformed staged records in checkpoint %" PRId64
                             " (element %d)",
                             eddy__op_restore_id(op->op_restore), kr.kr_bad);
    }
    /* Keep the elements this subtask owns; fence their transactional ids
     * (its own id was fenced when its client started). */
    size_t nown = 0;
    for (size_t i = 0; i < kr.kr_n; i++) {
        kelem_t e = kr.kr_elems[i];
        if (e.ke_subtask % par != me) {
            free(e.ke_txn);
            free(e.ke_uid);
            free(e.ke_views);
            continue;
        }
        kr.kr_elems[nown++] = e;
    }
    kr.kr_n = nown;
    bool pending = false;
    for (size_t i = 0; i < kr.kr_n && rc == 0; i++) {
        kelem_t *e = &kr.kr_elems[i];
        pending = pending || e->ke_nviews > 0;
        if (strcmp(e->ke_txn, ks->ks_txn_id) == 0) {
            continue;
        }
        /* Two elements with one id (not written by eddy, but cheap to
         * allow) share a client: a second init would fence the first. */
        for (size_t k = 0; k < i && e->ke_client == NULL; k++) {
            if (strcmp(kr.kr_elems[k].ke_txn, e->ke_txn) == 0) {
                e->ke_client = kr.kr_elems[k].ke_client;
                e->ke_shares_client = true;
            }
        }
        if (e->ke_shares_client) {
            continue;
        }
        rc = conf->kc_client_new(conf->kc_client_arg, conf, e->ke_txn,
                                 op_cancel_flag(op), &e->ke_client, &err);
        if (rc == 0) {
            rc = e->ke_client->kc_ops->init_transactions(e->ke_client, &err);
        }
        if (rc != 0) {
            rc = eddy__op_fail(op, rc,
                               "cannot fence transactional id '%s' of an "
                               "earlier subtask: %s",
                               e->ke_txn, err.msg);
        }
    }
    if (rc == 0 && pending) {
        rc = ks->ks_client->kc_ops->read_markers(ks->ks_client, on_marker, &kr,
                                                 &err);
        if (rc != 0) {
            rc = eddy__op_fail(op, rc,
                               "cannot read commit markers from Kafka topic "
                               "'%s': %s",
                               conf->kc_marker_topic, err.msg);
        }
    }
    for (size_t i = 0; i < kr.kr_n && rc == 0; i++) {
        kelem_t *e = &kr.kr_elems[i];
        size_t first = 0;
        while (first < e->ke_nviews &&
               e->ke_views[first].kv_ckpt <= e->ke_committed) {
            first++;
        }
        if (first == e->ke_nviews) {
            continue; /* all committed before the failure */
        }
        eddy__kclient_t *c = e->ke_client ? e->ke_client : ks->ks_client;
        rc = commit_views(ks, c, e->ke_txn, e->ke_nonce, e->ke_views + first,
                          e->ke_nviews - first, &err);
        if (rc != 0) {
            rc = eddy__op_fail(op, rc,
                               "cannot re-commit checkpoint %" PRId64
                               " of transactional id '%s' to Kafka topic "
                               "'%s': %s",
                               e->ke_views[e->ke_nviews - 1].kv_ckpt, e->ke_txn,
                               conf->kc_topic, err.msg);
        }
    }
    krestore_free(&kr);
    return rc;
}

/* ---- the operator ---- */

static int ksink_open(eddy__op_t *op)
{
    const eddy__ksink_conf_t *conf = op->op_node->s_config;
    ksink_t *ks = eddy__calloc(1, sizeof(*ks));
    op->op_data = ks;
    ks->ks_op = op;
    ks->ks_conf = conf;
    ks->ks_nonce = draw_nonce();
    ks->ks_last_id = INT64_MIN;
    const char *uid = eddy__op_uid(op);
    ks->ks_uid = uid != NULL ? uid : op->op_ctx.cx_name;
    eddy_error_t err = {0};
    const char *txn = NULL;
    if (conf->kc_guarantee == EDDY_KAFKA_EXACTLY_ONCE) {
        char buf[TXN_MAX + 1];
        const char *job = op->op_node->s_env->e_name;
        int sub = op->op_ctx.cx_subtask;
        int n = conf->kc_txn_prefix != NULL
                    ? snprintf(buf, sizeof(buf), "%s-%s-%d",
                               conf->kc_txn_prefix, ks->ks_uid, sub)
                    : snprintf(buf, sizeof(buf), "eddy-%s-%s-%d",
                               job != NULL ? job : "job", ks->ks_uid, sub);
        if (n < 0 || n > TXN_MAX) {
            return eddy__op_fail(op, EDDY_ERR_INVALID,
                                 "transactional id '%.40s...' is longer than "
                                 "%d characters (shorten "
                                 "transactional_id_prefix or the uid)",
                                 buf, TXN_MAX);
        }
        ks->ks_txn_id = eddy__strdup(buf);
        txn = ks->ks_txn_id;
    }
    int rc = conf->kc_client_new(conf->kc_client_arg, conf, txn,
                                 op_cancel_flag(op), &ks->ks_client, &err);
    if (rc != 0) {
        ks->ks_client = NULL;
        return eddy__op_fail(op, rc, "cannot create a Kafka producer: %s",
                             err.msg);
    }
    if (txn == NULL) {
        return 0;
    }
    rc = ks->ks_client->kc_ops->init_transactions(ks->ks_client, &err);
    if (rc != 0) {
        return eddy__op_fail(op, rc,
                             "cannot initialise Kafka transactions for "
                             "transactional id '%s': %s",
                             txn, err.msg);
    }
    if (op->op_restore != NULL) {
        ks->ks_last_id = eddy__op_restore_id(op->op_restore);
        return recover(ks);
    }
    return 0;
}

static int ksink_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    ksink_t *ks = op->op_data;
    if (ks->ks_txn_id != NULL) {
        stage_put(&ks->ks_stage, rec);
        ks->ks_open_count++;
        if (EDDY_UNLIKELY(ks->ks_stage.b_len > ks->ks_conf->kc_max_staged)) {
            return eddy__op_fail(
                op, EDDY_ERR_NOMEM,
                "exactly-once Kafka sink staged more than %zu bytes without "
                "a completed checkpoint (enable checkpointing, shorten "
                "checkpoint.interval or raise max_staged_bytes)",
                ks->ks_conf->kc_max_staged);
        }
        return 0;
    }
    eddy_error_t err;
    int rc = ks->ks_client->kc_ops->produce(ks->ks_client, EDDY__KTOPIC_DATA,
                                            rec, &err);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_fail(op, rc, "%s", err.msg);
    }
    return 0;
}

static int ksink_snapshot(eddy__op_t *op, eddy__op_snap_t *snap)
{
    ksink_t *ks = op->op_data;
    int64_t id = eddy__op_snap_id(snap);
    eddy_error_t err = {0};
    if (ks->ks_txn_id == NULL) {
        const eddy__kclient_ops_t *ops = ks->ks_client->kc_ops;
        int rc = ks->ks_conf->kc_guarantee == EDDY_KAFKA_AT_LEAST_ONCE
                     ? ops->flush(ks->ks_client, &err)
                     : ops->poll(ks->ks_client, &err);
        if (rc != 0) {
            return eddy__op_fail(op, rc, "checkpoint %" PRId64 " failed: %s",
                                 id, err.msg);
        }
        return 0;
    }
    if (id <= ks->ks_last_id) {
        return eddy__op_fail(op, EDDY_ERR_STATE,
                             "checkpoint %" PRId64 " after checkpoint %" PRId64
                             ": ids must increase",
                             id, ks->ks_last_id);
    }
    seal_open(ks, id);
    ks->ks_last_id = id;
    elem_encode(ks, &ks->ks_elem);
    int rc = eddy__op_snap_list_add(snap, EDDY__KSINK_STATE, EDDY__OPLIST_UNION,
                                    ks->ks_elem.b_data, ks->ks_elem.b_len);
    if (rc != 0) {
        return eddy__op_fail(op, rc,
                             "cannot write staged records into "
                             "checkpoint %" PRId64,
                             id);
    }
    return 0;
}

static int ksink_complete(eddy__op_t *op, int64_t id)
{
    ksink_t *ks = op->op_data;
    if (ks->ks_txn_id == NULL) {
        return 0;
    }
    return commit_upto(ks, id);
}

static int ksink_abort(eddy__op_t *op, int64_t id)
{
    /* Nothing to undo: batch `id` stays pending and is committed with the
     * next checkpoint that completes, which covers every earlier batch. */
    EDDY_UNUSED(op);
    EDDY_UNUSED(id);
    return 0;
}

static int ksink_flush(eddy__op_t *op)
{
    ksink_t *ks = op->op_data;
    if (ks == NULL || ks->ks_client == NULL || ks->ks_txn_id != NULL) {
        return 0;
    }
    eddy_error_t err;
    int rc = ks->ks_client->kc_ops->poll(ks->ks_client, &err);
    if (rc != 0) {
        return eddy__op_fail(op, rc, "%s", err.msg);
    }
    return 0;
}

static int ksink_end(eddy__op_t *op)
{
    ksink_t *ks = op->op_data;
    eddy_error_t err = {0};
    ks->ks_ended = true;
    if (ks->ks_txn_id == NULL) {
        int rc = ks->ks_client->kc_ops->flush(ks->ks_client, &err);
        if (rc != 0) {
            return eddy__op_fail(op, rc, "%s", err.msg);
        }
        return 0;
    }
    if (eddy__op_final_checkpoint(op)) {
        /* A final checkpoint follows: it seals the rest as its batch, and
         * its completion commits it (never twice, whatever fails later). */
        return 0;
    }
    /* Without checkpointing nothing follows: commit the rest now, as the
     * batch after the last checkpoint. */
    int64_t id = ks->ks_last_id == INT64_MIN ? 1 : ks->ks_last_id + 1;
    seal_open(ks, id);
    ks->ks_last_id = id;
    return commit_upto(ks, INT64_MAX);
}

static void ksink_close(eddy__op_t *op)
{
    ksink_t *ks = op->op_data;
    if (ks == NULL) {
        return;
    }
    if (ks->ks_client != NULL) {
        ks->ks_client->kc_ops->destroy(ks->ks_client);
    }
    free(ks->ks_txn_id);
    eddy__bytes_free(&ks->ks_stage);
    eddy__bytes_free(&ks->ks_elem);
    free(ks->ks_batches);
    free(ks);
    op->op_data = NULL;
}

static const eddy__op_class_t kafka_sink_class = {
    .oc_kind = "Sink: Kafka",
    .oc_sink = true,
    .oc_open = ksink_open,
    .oc_process = ksink_process,
    .oc_end_input = ksink_end,
    .oc_flush = ksink_flush,
    .oc_close = ksink_close,
    .oc_snapshot = ksink_snapshot,
    .oc_checkpoint_complete = ksink_complete,
    .oc_checkpoint_abort = ksink_abort,
};

/* ---- builder ---- */

static bool topic_name_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > MAX_TOPIC_NAME || strcmp(t, ".") == 0 ||
        strcmp(t, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* Checks the properties with librdkafka now, so a typo fails the job at
 * submission with librdkafka's own message rather than in every subtask. */
static int check_props(eddy_env_t *env, const eddy_kafka_sink_opts_t *opts,
                       int *npairs)
{
    int n = 0;
    if (opts->props != NULL) {
        while (opts->props[n] != NULL) {
            n++;
        }
    }
    if (n % 2 != 0) {
        return eddy_env_fail(env,
                             "eddy_sink_kafka: props must be key/value "
                             "pairs ending with NULL; '%s' has no value",
                             opts->props[n - 1]);
    }
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char errstr[512];
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i += 2) {
        const char *k = opts->props[i], *v = opts->props[i + 1];
        if (strcmp(k, "bootstrap.servers") == 0 ||
            strcmp(k, "transactional.id") == 0) {
            rc = eddy_env_fail(env,
                               "eddy_sink_kafka: property '%s' is set by "
                               "the sink (use the bootstrap and "
                               "transactional_id_prefix options)",
                               k);
        } else if (rd_kafka_conf_set(kc, k, v, errstr, sizeof(errstr)) !=
                   RD_KAFKA_CONF_OK) {
            rc = eddy_env_fail(env, "eddy_sink_kafka: property '%s': %s", k,
                               errstr);
        }
    }
    rd_kafka_conf_destroy(kc);
    *npairs = n / 2;
    return rc;
}

eddy_stream_t *eddy_sink_kafka(eddy_stream_t *in,
                               const eddy_kafka_sink_opts_t *opts)
{
    if (in == NULL) {
        return NULL;
    }
    eddy_env_t *env = in->s_env;
    if (opts == NULL) {
        eddy_env_fail(env, "eddy_sink_kafka: no options given");
        return NULL;
    }
    if (opts->bootstrap == NULL || opts->bootstrap[0] == '\0') {
        eddy_env_fail(env, "eddy_sink_kafka: no bootstrap servers given");
        return NULL;
    }
    if (opts->topic == NULL || !topic_name_ok(opts->topic)) {
        eddy_env_fail(env,
                      "eddy_sink_kafka: invalid topic name '%s' (1 to 249 "
                      "characters from a-z A-Z 0-9 . _ -)",
                      opts->topic != NULL ? opts->topic : "(null)");
        return NULL;
    }
    if (opts->guarantee != EDDY_KAFKA_AT_LEAST_ONCE &&
        opts->guarantee != EDDY_KAFKA_EXACTLY_ONCE &&
        opts->guarantee != EDDY_KAFKA_NONE) {
        eddy_env_fail(env, "eddy_sink_kafka: unknown guarantee %d",
                      (int)opts->guarantee);
        return NULL;
    }
    bool eo = opts->guarantee == EDDY_KAFKA_EXACTLY_ONCE;
    char marker[MAX_TOPIC_NAME + 32];
    if (opts->marker_topic != NULL) {
        eddy__fmt(marker, sizeof(marker), "%s", opts->marker_topic);
    } else {
        eddy__fmt(marker, sizeof(marker), "%s" MARKER_SUFFIX, opts->topic);
    }
    if (eo && (!topic_name_ok(marker) || strcmp(marker, opts->topic) == 0)) {
        eddy_env_fail(env,
                      "eddy_sink_kafka: invalid marker topic '%s' (a topic "
                      "name other than the sink's topic; set marker_topic "
                      "when '<topic>" MARKER_SUFFIX "' is too long)",
                      marker);
        return NULL;
    }
    if (eo && opts->transactional_id_prefix != NULL &&
        opts->transactional_id_prefix[0] == '\0') {
        eddy_env_fail(env, "eddy_sink_kafka: empty transactional_id_prefix");
        return NULL;
    }
    int npairs;
    if (check_props(env, opts, &npairs) != 0) {
        return NULL;
    }
    eddy_stream_t *s = eddy__node_add(env, &kafka_sink_class, &in, 1);
    if (s == NULL) {
        return NULL;
    }
    eddy__arena_t *ar = &env->e_arena;
    eddy__ksink_conf_t *c = eddy__arena_alloc(ar, sizeof(*c));
    if (c == NULL) {
        eddy_env_fail(env, "eddy_sink_kafka: out of memory");
        return NULL;
    }
    memset(c, 0, sizeof(*c));
    c->kc_bootstrap = eddy__arena_strdup(ar, opts->bootstrap);
    c->kc_topic = eddy__arena_strdup(ar, opts->topic);
    c->kc_marker_topic = eo ? eddy__arena_strdup(ar, marker) : NULL;
    c->kc_guarantee = opts->guarantee;
    c->kc_txn_prefix =
        opts->transactional_id_prefix != NULL
            ? eddy__arena_strdup(ar, opts->transactional_id_prefix)
            : NULL;
    c->kc_max_staged = opts->max_staged_bytes > 0
                           ? opts->max_staged_bytes
                           : EDDY_KAFKA_DEFAULT_MAX_STAGED;
    c->kc_nprops = npairs;
    c->kc_props =
        eddy__arena_alloc(ar, sizeof(char *) * (size_t)(2 * npairs + 1));
    if (c->kc_props == NULL) {
        eddy_env_fail(env, "eddy_sink_kafka: out of memory");
        return NULL;
    }
    for (int i = 0; i < 2 * npairs; i++) {
        c->kc_props[i] = eddy__arena_strdup(ar, opts->props[i]);
    }
    c->kc_props[2 * npairs] = NULL;
    c->kc_timeout_ms = DEFAULT_TIMEOUT_MS;
    c->kc_client_new = eddy__kclient_rdkafka_new;
    s->s_config = c;
    return s;
}

void eddy__kafka_sink_set_client(eddy_stream_t *sink, eddy__kclient_new_fn fn,
                                 void *arg)
{
    eddy__ksink_conf_t *c = sink->s_config;
    c->kc_client_new = fn;
    c->kc_client_arg = arg;
}

eddy__ksink_conf_t *eddy__kafka_sink_conf(eddy_stream_t *sink)
{
    return sink->s_config;
}
