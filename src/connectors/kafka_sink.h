/*
 * eddy — the Kafka sink's internal interface: the Kafka client it talks to.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The sink's transactional logic (kafka_sink.c) never calls librdkafka
 * directly: it goes through the small client vtable below, implemented for
 * real by kafka_sink_rdkafka.c and by a test double in the unit tests. The
 * double is what lets tests stop the protocol at every seam (before commit,
 * during commit, after commit, between "checkpoint complete" and commit),
 * because the dev broker (librdkafka's mock cluster) has neither transaction
 * isolation nor producer fencing (DESIGN.md §6, "What can be verified here").
 *
 * THREADS. A client belongs to the task thread of one sink subtask; no call
 * is made concurrently on one client.
 */
#ifndef EDDY_CONNECTORS_KAFKA_SINK_H
#define EDDY_CONNECTORS_KAFKA_SINK_H

#include <stdatomic.h>

#include "common/internal.h"

/* Topics a client produces to. */
#define EDDY__KTOPIC_DATA 0
#define EDDY__KTOPIC_MARKERS 1

typedef struct eddy__kclient eddy__kclient_t;
typedef struct eddy__ksink_conf eddy__ksink_conf_t;

/* Called for every committed record of the marker topic. */
typedef int (*eddy__kmarker_fn)(void *arg, const void *key, size_t key_len,
                                const void *value, size_t value_len);

/*
 * Every call returns 0 or a negative eddy_err_t with a message in `err`.
 * A failed commit that left the transaction aborted (so the whole
 * transaction may be produced again) sets err->retriable; any other
 * failure of a transactional call (fenced, fatal) leaves the client
 * unusable for transactions.
 */
typedef struct eddy__kclient_ops {
    /* Transactional clients: registers the transactional id with the
     * coordinator. On a real broker this fences every earlier producer with
     * the same id and completes its open transaction (commits it if its
     * commit was already requested, aborts it otherwise) before returning. */
    int (*init_transactions)(eddy__kclient_t *c, eddy_error_t *err);
    int (*begin)(eddy__kclient_t *c, eddy_error_t *err);
    /* Enqueues one record to `topic` (EDDY__KTOPIC_*); the bytes are copied.
     * key == NULL means no key; a NULL value is sent as an empty value.
     * ts == EDDY_TS_NONE lets the client stamp the send time. Blocks while
     * the client's queue is full (back pressure). */
    int (*produce)(eddy__kclient_t *c, int topic, const eddy_record_t *rec,
                   eddy_error_t *err);
    /* Flushes the transaction's records and commits it. */
    int (*commit)(eddy__kclient_t *c, eddy_error_t *err);
    int (*abort)(eddy__kclient_t *c, eddy_error_t *err);
    /* Waits until every record produced so far is acknowledged; returns the
     * first delivery failure since the last flush, if any. */
    int (*flush)(eddy__kclient_t *c, eddy_error_t *err);
    /* Serves delivery reports without waiting; returns a delivery failure
     * if one happened. */
    int (*poll)(eddy__kclient_t *c, eddy_error_t *err);
    /* Reads the marker topic from its beginning up to its end as it is when
     * the call starts, calling fn for every committed record. Waits for
     * transactions open at that point to finish, so a marker committed
     * before the call is always seen. A marker topic that does not exist has
     * no markers. */
    int (*read_markers)(eddy__kclient_t *c, eddy__kmarker_fn fn, void *arg,
                        eddy_error_t *err);
    /* Releases the client without committing or aborting anything: a
     * transaction still open stays open on the broker until the next
     * init_transactions with its id (or its timeout) ends it, as after a
     * crash. */
    void (*destroy)(eddy__kclient_t *c);
} eddy__kclient_ops_t;

struct eddy__kclient {
    const eddy__kclient_ops_t *kc_ops;
};

/*
 * Creates a client for `conf`: transactional with `transactional_id`, or
 * a plain producer when it is NULL. `cancel` (may be NULL) is the job's
 * cancel flag, checked while a call waits. Returns 0 or an error.
 */
typedef int (*eddy__kclient_new_fn)(void *arg, const eddy__ksink_conf_t *conf,
                                    const char *transactional_id,
                                    atomic_int *cancel, eddy__kclient_t **out,
                                    eddy_error_t *err);

/* The sink's configuration (the stream's s_config, in the env arena). */
struct eddy__ksink_conf {
    char *kc_bootstrap;
    char *kc_topic;
    char *kc_marker_topic; /* exactly-once */
    int kc_guarantee;      /* EDDY_KAFKA_* */
    char *kc_txn_prefix;   /* NULL: "eddy-<job name>" */
    size_t kc_max_staged;  /* exactly-once: staged bytes per subtask */
    char **kc_props;       /* key, value, key, value, ... */
    int kc_nprops;         /* number of pairs */
    int kc_timeout_ms;     /* transactional calls and marker reads */
    eddy__kclient_new_fn kc_client_new;
    void *kc_client_arg;
};

/* The librdkafka client (kafka_sink_rdkafka.c); `arg` is unused. */
int eddy__kclient_rdkafka_new(void *arg, const eddy__ksink_conf_t *conf,
                              const char *transactional_id, atomic_int *cancel,
                              eddy__kclient_t **out, eddy_error_t *err);

/* Replaces the client of a sink built by eddy_sink_kafka (tests). */
void eddy__kafka_sink_set_client(eddy_stream_t *sink, eddy__kclient_new_fn fn,
                                 void *arg);
/* The sink's configuration (tests adjust timeouts through it). */
eddy__ksink_conf_t *eddy__kafka_sink_conf(eddy_stream_t *sink);

/* Name of the operator list state (UNION) holding the staged batches. */
#define EDDY__KSINK_STATE "kafka-sink.pending"

/* The marker record naming a committed (transactional id, nonce,
 * checkpoint): key "<transactional id>/<nonce as 16 hex digits>", value a
 * JSON object. Exposed for tests and tools. */
int eddy__ksink_marker_parse(const void *value, size_t len, char *txn_id,
                             size_t txn_cap, uint64_t *nonce,
                             int64_t *checkpoint);

#endif /* EDDY_CONNECTORS_KAFKA_SINK_H */
