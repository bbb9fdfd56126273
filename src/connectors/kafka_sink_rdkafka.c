/*
 * eddy — the Kafka sink's client on librdkafka (kafka_sink.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * One rd_kafka_t producer per client, transactional when the sink is
 * exactly-once. Records are produced with RD_KAFKA_MSG_F_COPY: librdkafka
 * then allocates the message and its payload in one block, so copying costs
 * no extra allocation and the caller's memory is free at once.
 *
 * Delivery reports are served by rd_kafka_poll/flush on the calling (task)
 * thread; the first failure is kept and returned by the next call.
 *
 * Reading markers needs two consumers: the end of each marker partition is
 * taken with isolation.level=read_uncommitted (the high watermark, which
 * includes records of transactions still open), and the records are read
 * with read_committed until that offset is passed. A read_committed
 * consumer cannot pass an open transaction, so this waits until every
 * transaction open when the read started has committed or aborted, and a
 * marker committed before the read can never be missed because it sits
 * behind another producer's open transaction. Empty fetches wait only
 * fetch.wait.max.ms (set low), so an idle topic is read quickly.
 *
 * THREADS. Everything runs on the calling task thread, except
 * librdkafka's own threads, which never call back into this file (the
 * delivery report callback runs inside rd_kafka_poll/flush).
 */
#include <inttypes.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "connectors/kafka_sink.h"

#define POLL_EVERY 1024   /* produce calls between delivery report polls */
#define WAIT_SLICE_MS 100 /* waits are cut in slices to check cancel */

typedef struct rdk_client {
    eddy__kclient_t rc_base;
    const eddy__ksink_conf_t *rc_conf;
    rd_kafka_t *rc_rk;
    rd_kafka_topic_t *rc_rkt[2]; /* EDDY__KTOPIC_DATA, _MARKERS */
    atomic_int *rc_cancel;
    char *rc_txn;
    unsigned rc_since_poll;
    /* First delivery failure since the last flush or commit. */
    rd_kafka_resp_err_t rc_dr_err;
    char rc_dr_msg[200];
} rdk_client_t;

static bool cancelled(const rdk_client_t *rc)
{
    return rc->rc_cancel != NULL &&
           atomic_load_explicit(rc->rc_cancel, memory_order_relaxed) != 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    EDDY_UNUSED(rk);
    rdk_client_t *rc = opaque;
    if (m->err != 0 && rc->rc_dr_err == 0) {
        rc->rc_dr_err = m->err;
        /* Not rd_kafka_message_errstr(): for a delivery report it returns
         * the message's payload, which is not NUL-terminated. */
        eddy__fmt(rc->rc_dr_msg, sizeof(rc->rc_dr_msg),
                  "delivery to Kafka topic '%s' failed: %s",
                  rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    }
}

static int dr_error(rdk_client_t *rc, eddy_error_t *err)
{
    return eddy_error_set(err, EDDY_ERR_EXTERNAL, "%s", rc->rc_dr_msg);
}

/* Applies the user's properties; only those in `allow` (prefixes) when it
 * is not NULL. */
static int apply_props(rd_kafka_conf_t *kc, const eddy__ksink_conf_t *conf,
                       const char *const *allow, eddy_error_t *err)
{
    char errstr[512];
    for (int i = 0; i < conf->kc_nprops; i++) {
        const char *k = conf->kc_props[2 * i], *v = conf->kc_props[2 * i + 1];
        bool ok = allow == NULL;
        for (int a = 0; !ok && allow[a] != NULL; a++) {
            ok = strncmp(k, allow[a], strlen(allow[a])) == 0;
        }
        if (ok && rd_kafka_conf_set(kc, k, v, errstr, sizeof(errstr)) !=
                      RD_KAFKA_CONF_OK) {
            return eddy_error_set(err, EDDY_ERR_INVALID,
                                  "Kafka property '%s': %s", k, errstr);
        }
    }
    return 0;
}

static int conf_set(rd_kafka_conf_t *kc, const char *k, const char *v,
                    eddy_error_t *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(kc, k, v, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "Kafka property '%s': %s",
                              k, errstr);
    }
    return 0;
}

/* An error from a transactional call; sets retriable when the transaction
 * was aborted and may be produced again. Destroys `e`. */
static int txn_error(rd_kafka_error_t *e, const char *what, bool retriable,
                     eddy_error_t *err)
{
    int code = rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT
                   ? EDDY_ERR_TIMEOUT
                   : EDDY_ERR_EXTERNAL;
    eddy_error_set(err, code, "%s: %s", what, rd_kafka_error_string(e));
    err->retriable = retriable;
    err->fatal = rd_kafka_error_is_fatal(e);
    rd_kafka_error_destroy(e);
    return code;
}

static int rdk_init_transactions(eddy__kclient_t *c, eddy_error_t *err)
{
    rdk_client_t *rc = (rdk_client_t *)c;
    rd_kafka_error_t *e =
        rd_kafka_init_transactions(rc->rc_rk, rc->rc_conf->kc_timeout_ms);
    return e == NULL ? 0 : txn_error(e, "init_transactions", false, err);
}

static int rdk_begin(eddy__kclient_t *c, eddy_error_t *err)
{
    rdk_client_t *rc = (rdk_client_t *)c;
    rc->rc_dr_err = 0;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(rc->rc_rk);
    return e == NULL ? 0 : txn_error(e, "begin_transaction", false, err);
}

static int rdk_produce(eddy__kclient_t *c, int topic, const eddy_record_t *rec,
                       eddy_error_t *err)
{
    rdk_client_t *rc = (rdk_client_t *)c;
    rd_kafka_topic_t *rkt = rc->rc_rkt[topic];
    /* A NULL value would be a tombstone; eddy's empty value is not one. */
    void *value = rec->value != NULL ? (void *)rec->value : (void *)"";
    int64_t ts = rec->ts == EDDY_TS_NONE ? 0 : rec->ts;
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rc->rc_rk, RD_KAFKA_V_RKT(rkt),
            RD_KAFKA_V_KEY((void *)rec->key, rec->key_len),
            RD_KAFKA_V_VALUE(value, rec->value_len), RD_KAFKA_V_TIMESTAMP(ts),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (EDDY_LIKELY(e == RD_KAFKA_RESP_ERR_NO_ERROR)) {
            break;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            return eddy_error_set(err, EDDY_ERR_EXTERNAL,
                                  "cannot produce to Kafka topic '%s': %s",
                                  rd_kafka_topic_name(rkt),
                                  rd_kafka_err2str(e));
        }
        /* The local queue is full: wait for deliveries (back pressure). */
        if (cancelled(rc)) {
            return eddy_error_set(err, EDDY_ERR_CANCELED, "canceled");
        }
        rd_kafka_poll(rc->rc_rk, WAIT_SLICE_MS);
    }
    if (EDDY_UNLIKELY(++rc->rc_since_poll >= POLL_EVERY)) {
        rc->rc_since_poll = 0;
        rd_kafka_poll(rc->rc_rk, 0);
    }
    if (EDDY_UNLIKELY(rc->rc_dr_err != 0)) {
        return dr_error(rc, err);
    }
    return 0;
}

static int rdk_abort(eddy__kclient_t *c, eddy_error_t *err)
{
    rdk_client_t *rc = (rdk_client_t *)c;
    rd_kafka_error_t *e =
        rd_kafka_abort_transaction(rc->rc_rk, rc->rc_conf->kc_timeout_ms);
    rc->rc_dr_err = 0;
    return e == NULL ? 0 : txn_error(e, "abort_transaction", false, err);
}

static int rdk_commit(eddy__kclient_t *c, eddy_error_t *err)
{
    rdk_client_t *rc = (rdk_client_t *)c;
    rd_kafka_error_t *e = NULL;
    /* A retriable failure (a timeout, say) leaves the commit in progress:
     * librdkafka's contract is to call commit again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        e = rd_kafka_commit_transaction(rc->rc_rk, rc->rc_conf->kc_timeout_ms);
        if (e == NULL || !rd_kafka_error_is_retriable(e)) {
            break;
        }
        if (attempt < 2) {
            rd_kafka_error_destroy(e);
            e = NULL;
        }
    }
    if (e == NULL) {
        rc->rc_dr_err = 0;
        return 0;
    }
    if (rd_kafka_error_txn_requires_abort(e)) {
        char why[256];
        eddy__fmt(why, sizeof(why), "%s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        int rc2 = rdk_abort(c, err);
        if (rc2 != 0) {
            return rc2;
        }
        eddy_error_set(err, EDDY_ERR_EXTERNAL,
                       "commit_transaction: %s (transaction aborted)", why);
        err->retriable = 1;
        return EDDY_ERR_EXTERNAL;
    }
    return txn_error(e, "commit_transaction", false, err);
}

static int rdk_poll(eddy__kclient_t *c, eddy_error_t *err)
{
    rdk_client_t *rc = (rdk_client_t *)c;
    rd_kafka_poll(rc->rc_rk, 0);
    return rc->rc_dr_err != 0 ? dr_error(rc, err) : 0;
}

static int rdk_flush(eddy__kclient_t *c, eddy_error_t *err)
{
    rdk_client_t *rc = (rdk_client_t *)c;
    /* Every message ends delivered or failed within message.timeout.ms, so
     * this loop ends; the slices only let a cancel interrupt it. */
    while (rd_kafka_flush(rc->rc_rk, WAIT_SLICE_MS) ==
           RD_KAFKA_RESP_ERR__TIMED_OUT) {
        if (cancelled(rc)) {
            return eddy_error_set(err, EDDY_ERR_CANCELED, "canceled");
        }
    }
    if (rc->rc_dr_err != 0) {
        return dr_error(rc, err);
    }
    return 0;
}

/* ---- reading markers ---- */

/* Properties that concern connecting and security, which the marker
 * consumers need as much as the producer; producer-only ones would only
 * make librdkafka warn. */
static const char *const consumer_props[] = {"security.",
                                             "ssl.",
                                             "sasl.",
                                             "socket.",
                                             "broker.",
                                             "client.",
                                             "api.",
                                             "reconnect.",
                                             "metadata.",
                                             "topic.metadata.",
                                             "resolve.",
                                             "enable.ssl",
                                             "connections.max.idle.ms",
                                             "debug",
                                             "log_level",
                                             "retry.backoff",
                                             NULL};

static rd_kafka_t *consumer_new(const rdk_client_t *rc, const char *isolation,
                                eddy_error_t *err)
{
    const eddy__ksink_conf_t *conf = rc->rc_conf;
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    /* assign() needs a group id, but no group is joined and no offset is
     * ever committed, so one name serves every reader. */
    int rc2 = conf_set(kc, "bootstrap.servers", conf->kc_bootstrap, err);
    if (rc2 == 0) {
        rc2 = conf_set(kc, "group.id", "eddy-kafka-sink-markers", err);
    }
    if (rc2 == 0) {
        rc2 = conf_set(kc, "isolation.level", isolation, err);
    }
    if (rc2 == 0) {
        rc2 = conf_set(kc, "enable.auto.commit", "false", err);
    }
    if (rc2 == 0) {
        rc2 = conf_set(kc, "enable.partition.eof", "true", err);
    }
    if (rc2 == 0) {
        rc2 = conf_set(kc, "fetch.wait.max.ms", "20", err);
    }
    if (rc2 == 0) {
        rc2 = apply_props(kc, conf, consumer_props, err);
    }
    if (rc2 != 0) {
        rd_kafka_conf_destroy(kc);
        return NULL;
    }
    char errstr[512];
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(kc);
        eddy_error_set(err, EDDY_ERR_EXTERNAL,
                       "cannot create a Kafka consumer: %s", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* The partitions of the marker topic and their high watermarks; *n = 0
 * when the topic does not exist. */
static int marker_ends(const rdk_client_t *rc, int64_t **hw, int *n,
                       eddy_error_t *err)
{
    const char *topic = rc->rc_conf->kc_marker_topic;
    int timeout = rc->rc_conf->kc_timeout_ms;
    *hw = NULL;
    *n = 0;
    rd_kafka_t *rk = consumer_new(rc, "read_uncommitted", err);
    if (rk == NULL) {
        return err->code;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout);
    int rc2 = 0;
    if (e != 0) {
        rc2 = eddy_error_set(err, EDDY_ERR_EXTERNAL,
                             "cannot read metadata of Kafka topic '%s': %s",
                             topic, rd_kafka_err2str(e));
    } else if (md->topic_cnt == 1 &&
               md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        /* Nothing was ever committed. */
    } else if (md->topic_cnt != 1 || md->topics[0].err != 0) {
        rc2 = eddy_error_set(
            err, EDDY_ERR_EXTERNAL,
            "cannot read metadata of Kafka topic '%s': %s", topic,
            rd_kafka_err2str(md->topic_cnt ? md->topics[0].err
                                           : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    } else {
        int np = md->topics[0].partition_cnt;
        *hw = eddy__calloc((size_t)np + 1, sizeof(int64_t));
        for (int i = 0; i < np && rc2 == 0; i++) {
            int32_t part = md->topics[0].partitions[i].id;
            int64_t lo, hi;
            e = rd_kafka_query_watermark_offsets(rk, topic, part, &lo, &hi,
                                                 timeout);
            if (e != 0) {
                rc2 = eddy_error_set(err, EDDY_ERR_EXTERNAL,
                                     "cannot read the end of Kafka topic "
                                     "'%s' partition %d: %s",
                                     topic, (int)part, rd_kafka_err2str(e));
            }
            /* Partition ids are 0..np-1 in Kafka; index by id. */
            if (rc2 == 0 && part >= 0 && part < np) {
                (*hw)[part] = hi > lo ? hi : -1; /* -1: nothing to read */
            }
        }
        *n = np;
    }
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    if (rc2 != 0) {
        free(*hw);
        *hw = NULL;
        *n = 0;
    }
    return rc2;
}

static int rdk_read_markers(eddy__kclient_t *c, eddy__kmarker_fn fn, void *arg,
                            eddy_error_t *err)
{
    rdk_client_t *rc = (rdk_client_t *)c;
    const char *topic = rc->rc_conf->kc_marker_topic;
    int64_t *hw;
    int np;
    int rc2 = marker_ends(rc, &hw, &np, err);
    if (rc2 != 0 || np == 0) {
        return rc2;
    }
    int left = 0;
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++) {
        if (hw[i] > 0) {
            rd_kafka_topic_partition_list_add(parts, topic, i)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
            left++;
        }
    }
    rd_kafka_t *rk = left > 0 ? consumer_new(rc, "read_committed", err) : NULL;
    if (left > 0 && rk == NULL) {
        rc2 = err->code;
    } else if (rk != NULL) {
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
        if (e != 0) {
            rc2 = eddy_error_set(err, EDDY_ERR_EXTERNAL,
                                 "cannot assign Kafka topic '%s': %s", topic,
                                 rd_kafka_err2str(e));
        }
    }
    uint64_t deadline =
        eddy__now_ns() + (uint64_t)rc->rc_conf->kc_timeout_ms * 1000000u;
    char last_err[160] = "";
    while (rc2 == 0 && left > 0) {
        if (cancelled(rc)) {
            rc2 = eddy_error_set(err, EDDY_ERR_CANCELED, "canceled");
            break;
        }
        if (eddy__now_ns() > deadline) {
            rc2 =
                eddy_error_set(err, EDDY_ERR_TIMEOUT,
                               "timed out reading Kafka topic '%s' to its "
                               "end (%d partitions left)%s%s",
                               topic, left, last_err[0] ? ": " : "", last_err);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, WAIT_SLICE_MS);
        if (m == NULL) {
            continue;
        }
        int32_t p = m->partition;
        int64_t next = -1;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            next = m->offset;
        } else if (m->err != 0) {
            /* Consumer errors are reports; librdkafka retries by itself.
             * The payload, when present, is the error text (not
             * NUL-terminated). */
            if (m->payload != NULL && m->len > 0) {
                eddy__fmt(last_err, sizeof(last_err), "%.*s", (int)m->len,
                          (const char *)m->payload);
            } else {
                eddy__fmt(last_err, sizeof(last_err), "%s",
                          rd_kafka_err2str(m->err));
            }
        } else {
            rc2 = fn(arg, m->key, m->key_len, m->payload, m->len);
            next = m->offset + 1;
        }
        if (next >= 0 && p >= 0 && p < np && hw[p] > 0 && next >= hw[p]) {
            hw[p] = -1;
            left--;
        }
        rd_kafka_message_destroy(m);
    }
    if (rk != NULL) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    free(hw);
    return rc2;
}

static void rdk_destroy(eddy__kclient_t *c)
{
    rdk_client_t *rc = (rdk_client_t *)c;
    if (rc == NULL) {
        return;
    }
    if (rc->rc_rk != NULL) {
        /* After a clean end nothing is queued; after a failure the queued
         * records are dropped rather than waited for. An open transaction
         * is left to the broker (aborted by the next init_transactions with
         * its id, or by its timeout), exactly as after a crash. */
        rd_kafka_purge(rc->rc_rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(rc->rc_rk, 0);
        for (int i = 0; i < 2; i++) {
            if (rc->rc_rkt[i] != NULL) {
                rd_kafka_topic_destroy(rc->rc_rkt[i]);
            }
        }
        rd_kafka_destroy(rc->rc_rk);
    }
    free(rc->rc_txn);
    free(rc);
}

static const eddy__kclient_ops_t rdk_ops = {
    .init_transactions = rdk_init_transactions,
    .begin = rdk_begin,
    .produce = rdk_produce,
    .commit = rdk_commit,
    .abort = rdk_abort,
    .flush = rdk_flush,
    .poll = rdk_poll,
    .read_markers = rdk_read_markers,
    .destroy = rdk_destroy,
};

int eddy__kclient_rdkafka_new(void *arg, const eddy__ksink_conf_t *conf,
                              const char *transactional_id, atomic_int *cancel,
                              eddy__kclient_t **out, eddy_error_t *err)
{
    EDDY_UNUSED(arg);
    *out = NULL;
    rdk_client_t *rc = eddy__calloc(1, sizeof(*rc));
    rc->rc_base.kc_ops = &rdk_ops;
    rc->rc_conf = conf;
    rc->rc_cancel = cancel;
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set_opaque(kc, rc);
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    int rc2 = conf_set(kc, "bootstrap.servers", conf->kc_bootstrap, err);
    if (rc2 == 0 && transactional_id != NULL) {
        rc->rc_txn = eddy__strdup(transactional_id);
        rc2 = conf_set(kc, "transactional.id", transactional_id, err);
    }
    if (rc2 == 0) {
        rc2 = apply_props(kc, conf, NULL, err);
    }
    if (rc2 != 0) {
        rd_kafka_conf_destroy(kc);
        rdk_destroy(&rc->rc_base);
        return rc2;
    }
    char errstr[512];
    rc->rc_rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    if (rc->rc_rk == NULL) {
        rd_kafka_conf_destroy(kc);
        rdk_destroy(&rc->rc_base);
        return eddy_error_set(err, EDDY_ERR_EXTERNAL,
                              "cannot create a Kafka producer: %s", errstr);
    }
    rc->rc_rkt[EDDY__KTOPIC_DATA] =
        rd_kafka_topic_new(rc->rc_rk, conf->kc_topic, NULL);
    if (conf->kc_marker_topic != NULL) {
        rc->rc_rkt[EDDY__KTOPIC_MARKERS] =
            rd_kafka_topic_new(rc->rc_rk, conf->kc_marker_topic, NULL);
    }
    if (rc->rc_rkt[EDDY__KTOPIC_DATA] == NULL ||
        (conf->kc_marker_topic != NULL &&
         rc->rc_rkt[EDDY__KTOPIC_MARKERS] == NULL)) {
        rdk_destroy(&rc->rc_base);
        return eddy_error_set(err, EDDY_ERR_EXTERNAL,
                              "cannot create Kafka topic handles: %s",
                              rd_kafka_err2str(rd_kafka_last_error()));
    }
    *out = &rc->rc_base;
    return 0;
}
