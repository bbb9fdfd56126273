/*
 * eddy — the Kafka source (eddy_source_kafka).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §4-§6). Each subtask runs one librdkafka consumer and
 * reads a fixed set of partitions: partition p of topic T belongs to subtask
 * (h(T) + p) % parallelism (eddy__kafka_partition_owner). Partitions are
 * given to the consumer with rd_kafka_assign, never through a group
 * subscription, because the offsets are eddy's: they live in checkpoints, and
 * a rebalance would move partitions between subtasks behind the checkpoint's
 * back. The group id, when given, only receives commits.
 *
 * Open (oc_open), on the task thread:
 *   1. create the consumer and wait, in steps of at most 500 ms so that
 *      cancellation is seen, for the cluster's full topic list (asking for
 *      all topics never auto-creates one, so a missing topic is an error);
 *   2. pick this subtask's partitions;
 *   3. take each partition's start from the restored checkpoint (union list
 *      state "kafka-offsets": every subtask sees every element and keeps the
 *      partitions it now owns), and resolve the others to concrete offsets
 *      by the start mode: earliest/latest (ListOffsets), a timestamp
 *      (offsets-for-times), or the group's committed offsets. Concrete
 *      offsets matter: a checkpoint taken before the first record must not
 *      say "latest", which would mean something else at restore time;
 *   4. bounded: read the end offsets (the last stable offset under the
 *      default read_committed isolation); partitions already at their end
 *      are finished at once;
 *   5. assign the unfinished partitions at their start offsets.
 *
 * Poll (oc_poll): take up to `budget` messages from the consumer queue
 * without waiting; only when nothing is there wait for one message, at most
 * 100 ms and never past the next watermark tick. Emitting runs the chained
 * operators, so a poll also stops emitting after 20 ms and keeps the rest
 * of its batch for the next poll: the task sees cancellation, checkpoint
 * triggers and ticks in time even behind a slow operator. Records are emitted
 * straight from librdkafka's message buffers (no copy, no allocation per
 * record: the ENVELOPE format writes into the operator's scratch memory).
 * After a record is emitted its partition's next offset is advanced, so
 * between two polls the offsets describe exactly what went downstream:
 * that is what oc_snapshot stores, and what the checkpoint's barrier
 * follows. A bounded partition finishes when its next offset reaches the
 * end offset or a partition-EOF event says the log ends there (transaction
 * markers and compaction leave offset gaps), and is then paused.
 *
 * Watermarks: with eddy_source_with_watermarks each assigned partition gets
 * a slot in an eddy__wm_mux_t (src/runtime/wm_mux.h), exactly as the
 * partitions source does; finished partitions leave the minimum.
 *
 * Commits: oc_snapshot keeps the offsets of checkpoint n (a small ring of
 * pending checkpoints); oc_checkpoint_complete(n) commits the newest pending
 * offsets at or before n asynchronously and forgets those; the result is
 * counted from the commit callback. A restore commits the restored offsets
 * again, since a completion notification may have been lost in a crash.
 *
 * THREADS. Everything runs on the subtask's task thread: librdkafka's
 * error and commit callbacks are served by rd_kafka_poll from oc_poll and
 * oc_close. Only its log callback (on_log) runs on librdkafka's threads,
 * reading an atomic flag and strings fixed before the consumer exists. The
 * configuration is read-only graph memory except its atomic counters.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "connectors/kafka_source.h"
#include "runtime/wm_mux.h"

#define KAFKA_DEFAULT_TIMEOUT_MS 10000
#define KAFKA_MAX_WAIT_MS 100      /* longest wait inside one poll */
#define KAFKA_META_STEP_MS 500     /* longest blocking call during open */
#define KAFKA_SLICE_MS 20          /* longest emission inside one poll */
#define KAFKA_BATCH_MAX 1024       /* messages taken per poll */
#define KAFKA_PENDING_MAX 16       /* checkpoints awaiting completion */
#define KAFKA_CLOSE_COMMIT_MS 1000 /* wait for in-flight commits at close */
#define KAFKA_OFFSET_VERSION 1
#define JSON_MAX_DEPTH 512

/* ---- configuration (graph memory) ---- */

typedef struct kafka_config {
    eddy__wm_source_conf_t kc_wm; /* first: see wm_mux.h */
    char *kc_bootstrap;
    char **kc_topics;
    int kc_ntopics;
    char *kc_group; /* NULL: no commits */
    eddy_kafka_start_t kc_start;
    int64_t kc_start_ts;
    eddy_kafka_format_t kc_format;
    char **kc_props; /* key, value, key, value ... */
    int kc_nprops;   /* number of strings (even) */
    bool kc_bounded;
    int64_t kc_timeout_ms;
    atomic_uint_least64_t kc_malformed;
    atomic_uint_least64_t kc_commits_ok;
    atomic_uint_least64_t kc_commits_failed;
} kafka_config_t;

/* ---- per-subtask state ---- */

typedef struct kpart {
    int kp_topic; /* index in kc_topics */
    int32_t kp_partition;
    int64_t kp_next; /* next offset to emit */
    int64_t kp_end;  /* bounded: the end offset; INT64_MAX otherwise */
    int kp_slot;     /* watermark multiplexer slot, -1 if none */
    bool kp_restored;
    bool kp_done;
} kpart_t;

typedef struct pending_commit {
    int64_t pc_id;
    rd_kafka_topic_partition_list_t *pc_offsets;
} pending_commit_t;

typedef struct kafka_src {
    kafka_config_t *ks_cfg;
    rd_kafka_t *ks_rk;
    rd_kafka_queue_t *ks_q;
    kpart_t *ks_parts; /* owned partitions, by topic index then partition */
    size_t ks_nparts;
    size_t ks_left;       /* partitions not finished */
    int32_t **ks_index;   /* per topic: partition -> index in ks_parts, -1 */
    int32_t *ks_npartsof; /* per topic: its partition count */
    const rd_kafka_topic_t **ks_rkt; /* per topic: handle seen in messages */
    rd_kafka_message_t **ks_batch;   /* taken from librdkafka */
    size_t ks_batch_pos;             /* the next one to process */
    size_t ks_batch_n;
    const eddy_watermark_strategy_t *ks_ws; /* NULL: no watermarks here */
    eddy__wm_mux_t ks_mux;
    pending_commit_t ks_pending[KAFKA_PENDING_MAX];
    int ks_npending;
    int ks_inflight; /* async commits without a result yet */
    bool ks_unflushed;
    bool ks_fatal;
    /* librdkafka's log lines (its threads read these): see on_log. */
    atomic_bool ks_log_on;
    bool ks_log_all;
    char ks_who[160];  /* "Kafka source 'NAME' (subtask i of N)" */
    char ks_reset[16]; /* effective auto.offset.reset */
    char ks_lasterr[192];
} kafka_src_t;

/* ---- helpers shared with the tests ---- */

int eddy__kafka_partition_owner(const char *topic, int32_t partition,
                                int parallelism)
{
    uint64_t par = (uint64_t)parallelism;
    uint64_t start = eddy__hash64(topic, strlen(topic)) % par;
    return (int)((start + (uint64_t)partition) % par);
}

void eddy__kafka_offset_encode(eddy__bytes_t *out, const char *topic,
                               int32_t partition, int64_t next_offset)
{
    eddy__bytes_put_u8(out, KAFKA_OFFSET_VERSION);
    eddy__bytes_put_blob(out, topic, strlen(topic));
    eddy__bytes_put_u32(out, (uint32_t)partition);
    eddy__bytes_put_u64(out, (uint64_t)next_offset);
}

bool eddy__kafka_offset_decode(const void *elem, size_t len, const char **topic,
                               size_t *topic_len, int32_t *partition,
                               int64_t *next_offset)
{
    eddy__rd_t rd;
    eddy__rd_init(&rd, elem, len);
    uint8_t version = eddy__rd_u8(&rd);
    *topic = eddy__rd_blob(&rd, topic_len);
    *partition = (int32_t)eddy__rd_u32(&rd);
    *next_offset = (int64_t)eddy__rd_u64(&rd);
    return eddy__rd_ok(&rd) && eddy__rd_done(&rd) &&
           version == KAFKA_OFFSET_VERSION && *partition >= 0 &&
           *next_offset >= 0;
}

/* ---- UTF-8 and JSON ---- */

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

static bool utf8_valid(const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t k = utf8_seq(p, end);
        if (k == 0) {
            return false;
        }
        p += k;
    }
    return true;
}

static const unsigned char *jv_ws(const unsigned char *p,
                                  const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

/* A string starting at *pp (on its '"'); advances past the closing quote. */
static bool jv_string(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp + 1;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"') {
            *pp = p + 1;
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c == '\\') {
            if (end - p < 2) {
                return false;
            }
            c = p[1];
            if (c == 'u') {
                if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) ||
                    !is_hex(p[4]) || !is_hex(p[5])) {
                    return false;
                }
                p += 6;
            } else if (strchr("\"\\/bfnrt", c) != NULL && c != '\0') {
                p += 2;
            } else {
                return false;
            }
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t k = utf8_seq(p, end);
        if (k == 0) {
            return false;
        }
        p += k;
    }
    return false;
}

static bool jv_digits(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    if (p >= end || *p < '0' || *p > '9') {
        return false;
    }
    while (p < end && *p >= '0' && *p <= '9') {
        p++;
    }
    *pp = p;
    return true;
}

static bool jv_number(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    if (p < end && *p == '-') {
        p++;
    }
    if (p < end && *p == '0') {
        p++;
    } else if (!jv_digits(&p, end)) {
        return false;
    }
    if (p < end && *p == '.') {
        p++;
        if (!jv_digits(&p, end)) {
            return false;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (!jv_digits(&p, end)) {
            return false;
        }
    }
    *pp = p;
    return true;
}

static bool jv_literal(const unsigned char **pp, const unsigned char *end,
                       const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *pp) < n || memcmp(*pp, lit, n) != 0) {
        return false;
    }
    *pp += n;
    return true;
}

/*
 * An iterative recursive-descent check: the only memory is a stack of
 * container kinds, so hostile nesting cannot overflow the task's stack.
 */
bool eddy__json_valid(const void *data, size_t n)
{
    const unsigned char *p = data, *end = p + n;
    char stack[JSON_MAX_DEPTH];
    int depth = 0;
    if (n == 0 || data == NULL) {
        return false;
    }

value:
    p = jv_ws(p, end);
    if (p >= end) {
        return false;
    }
    switch (*p) {
    case '{':
        if (depth == JSON_MAX_DEPTH) {
            return false;
        }
        p = jv_ws(p + 1, end);
        if (p < end && *p == '}') {
            p++;
            goto after_value;
        }
        stack[depth++] = '{';
        goto member;
    case '[':
        if (depth == JSON_MAX_DEPTH) {
            return false;
        }
        p = jv_ws(p + 1, end);
        if (p < end && *p == ']') {
            p++;
            goto after_value;
        }
        stack[depth++] = '[';
        goto value;
    case '"':
        if (!jv_string(&p, end)) {
            return false;
        }
        goto after_value;
    case 't':
        if (!jv_literal(&p, end, "true")) {
            return false;
        }
        goto after_value;
    case 'f':
        if (!jv_literal(&p, end, "false")) {
            return false;
        }
        goto after_value;
    case 'n':
        if (!jv_literal(&p, end, "null")) {
            return false;
        }
        goto after_value;
    default:
        if (!jv_number(&p, end)) {
            return false;
        }
        goto after_value;
    }

member:
    p = jv_ws(p, end);
    if (p >= end || *p != '"' || !jv_string(&p, end)) {
        return false;
    }
    p = jv_ws(p, end);
    if (p >= end || *p != ':') {
        return false;
    }
    p++;
    goto value;

after_value:
    p = jv_ws(p, end);
    if (depth == 0) {
        return p == end;
    }
    if (p >= end) {
        return false;
    }
    if (*p == ',') {
        p++;
        if (stack[depth - 1] == '{') {
            goto member;
        }
        goto value;
    }
    if ((*p == ']' && stack[depth - 1] == '[') ||
        (*p == '}' && stack[depth - 1] == '{')) {
        depth--;
        p++;
        goto after_value;
    }
    return false;
}

/* ---- the ENVELOPE format ---- */

typedef struct jw {
    char *jw_p;
    char *jw_end; /* for asserting the size bound */
} jw_t;

static void jw_raw(jw_t *w, const char *s, size_t n)
{
    memcpy(w->jw_p, s, n);
    w->jw_p += n;
}

static void jw_lit(jw_t *w, const char *s)
{
    jw_raw(w, s, strlen(s));
}

static void jw_i64(jw_t *w, int64_t v)
{
    w->jw_p += snprintf(w->jw_p, 24, "%" PRId64, v);
}

/* A JSON string of the bytes: valid UTF-8 sequences are copied, control
 * characters and bytes that are not UTF-8 are escaped (\u00XX). At most 6
 * bytes out per byte in. */
static void jw_str(jw_t *w, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *end = p + n;
    char *o = w->jw_p;
    *o++ = '"';
    while (p < end) {
        unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            *o++ = (char)c;
            p++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(p, end);
            if (k > 0) {
                memcpy(o, p, k);
                o += k;
                p += k;
                continue;
            }
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
            break;
        }
        p++;
    }
    *o++ = '"';
    w->jw_p = o;
}

static void jw_base64(jw_t *w, const unsigned char *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = w->jw_p;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    w->jw_p = o;
}

/* Bytes as a string, null, or {"base64":"..."} (see eddy.h). */
static void jw_bytes(jw_t *w, const void *p, size_t n)
{
    if (p == NULL) {
        jw_lit(w, "null");
    } else if (utf8_valid(p, n)) {
        jw_str(w, p, n);
    } else {
        jw_lit(w, "{\"base64\":\"");
        jw_base64(w, p, n);
        jw_lit(w, "\"}");
    }
}

/* Upper bound of what jw_bytes / jw_str write for n bytes. */
static size_t jw_bound(size_t n)
{
    return 6 * n + 16;
}

/* Writes the envelope of `m` into scratch memory; sets *out / *len. */
static int envelope(eddy__op_t *op, const kafka_config_t *cfg,
                    const kpart_t *kp, rd_kafka_message_t *m, int64_t ts,
                    rd_kafka_timestamp_type_t tstype, const void **out,
                    size_t *len)
{
    const char *topic = cfg->kc_topics[kp->kp_topic];
    rd_kafka_headers_t *hdrs = NULL;
    size_t nh = 0;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        nh = rd_kafka_header_cnt(hdrs);
    }
    size_t bound =
        256 + jw_bound(strlen(topic)) + jw_bound(m->key_len) + jw_bound(m->len);
    for (size_t i = 0; i < nh; i++) {
        const char *name;
        const void *val;
        size_t vlen;
        if (rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            bound += jw_bound(strlen(name)) + jw_bound(vlen) + 2;
        }
    }
    char *buf = eddy_ctx_scratch(&op->op_ctx, bound);
    if (buf == NULL) {
        return eddy__op_fail(op, EDDY_ERR_NOMEM,
                             "out of memory building a record of %zu bytes",
                             bound);
    }
    jw_t w = {buf, buf + bound};
    jw_lit(&w, "{\"topic\":");
    jw_str(&w, (const unsigned char *)topic, strlen(topic));
    jw_lit(&w, ",\"partition\":");
    jw_i64(&w, kp->kp_partition);
    jw_lit(&w, ",\"offset\":");
    jw_i64(&w, m->offset);
    jw_lit(&w, ",\"timestamp\":");
    if (ts == EDDY_TS_NONE) {
        jw_lit(&w, "null,\"timestamp_type\":null");
    } else {
        jw_i64(&w, ts);
        jw_lit(&w, tstype == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME
                       ? ",\"timestamp_type\":\"log_append\""
                       : ",\"timestamp_type\":\"create\"");
    }
    jw_lit(&w, ",\"key\":");
    jw_bytes(&w, m->key, m->key_len);
    jw_lit(&w, ",\"value\":");
    jw_bytes(&w, m->payload, m->len);
    jw_lit(&w, ",\"headers\":{");
    for (size_t i = 0; i < nh; i++) {
        const char *name;
        const void *val;
        size_t vlen;
        if (rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            continue;
        }
        if (w.jw_p[-1] != '{') {
            jw_lit(&w, ",");
        }
        jw_str(&w, (const unsigned char *)name, strlen(name));
        jw_lit(&w, ":");
        jw_bytes(&w, val, vlen);
    }
    jw_lit(&w, "}}");
    if (w.jw_p > w.jw_end) {
        abort(); /* the bound above is wrong: memory is already corrupt */
    }
    *out = buf;
    *len = (size_t)(w.jw_p - buf);
    return 0;
}

/* ---- librdkafka callbacks ---- */

/*
 * librdkafka logs from its own threads. While a subtask starts, its
 * connection errors are what our single failure message reports (eddy's
 * CLI promises one line per error), so they stay quiet; once it runs,
 * warnings and errors (a broker lost, retries) go to stderr naming the
 * subtask. With the "debug" property everything is shown, always.
 */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    kafka_src_t *ks = rd_kafka_opaque(rk);
    if (ks == NULL || !(ks->ks_log_all || (level <= LOG_WARNING &&
                                           atomic_load(&ks->ks_log_on)))) {
        return;
    }
    fprintf(stderr, "eddy: %s: librdkafka %s: %s\n", ks->ks_who, fac, buf);
}

/* The error and commit callbacks are served by rd_kafka_poll on the task
 * thread. */

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_src_t *ks = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[160];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        eddy__fmt(ks->ks_lasterr, sizeof(ks->ks_lasterr), "fatal: %s", buf);
        ks->ks_fatal = true;
        return;
    }
    eddy__fmt(ks->ks_lasterr, sizeof(ks->ks_lasterr), "%s", reason);
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    EDDY_UNUSED(rk);
    kafka_src_t *ks = opaque;
    kafka_config_t *cfg = ks->ks_cfg;
    bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; ok && offsets != NULL && i < offsets->cnt; i++) {
        ok = offsets->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (ks->ks_inflight > 0) {
        ks->ks_inflight--;
    }
    atomic_fetch_add(ok ? &cfg->kc_commits_ok : &cfg->kc_commits_failed, 1);
}

/* ---- open ---- */

static bool cancelled(const eddy__op_t *op)
{
    return op->op_task != NULL && eddy__task_cancelled(op->op_task);
}

static int64_t mono_ms(void)
{
    return (int64_t)(eddy__now_ns() / 1000000u);
}

static int conf_set(eddy__op_t *op, rd_kafka_conf_t *conf, const char *k,
                    const char *v)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        return eddy__op_fail(op, EDDY_ERR_INVALID, "Kafka property %s=%s: %s",
                             k, v, errstr);
    }
    return 0;
}

static int make_consumer(eddy__op_t *op, kafka_src_t *ks)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* client.id names the subtask in librdkafka's log lines and in broker
     * metrics: "eddy-source-kafka-2" (Kafka allows [a-zA-Z0-9._-]). */
    char name[96], client_id[128];
    const char *src = op->op_ctx.cx_name != NULL ? op->op_ctx.cx_name : "";
    size_t n = 0;
    for (; *src != '\0' && n + 1 < sizeof(name); src++) {
        char c = *src;
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
            c == '_') {
            name[n++] = c;
        } else if (n > 0 && name[n - 1] != '-') {
            name[n++] = '-';
        }
    }
    name[n] = '\0';
    eddy__fmt(client_id, sizeof(client_id), "eddy-%s-%d", name,
              op->op_ctx.cx_subtask);
    /* Defaults first, so that props can override them. */
    int rc = conf_set(op, conf, "client.id", client_id);
    rc = rc != 0 ? rc : conf_set(op, conf, "auto.offset.reset", "earliest");
    rc = rc != 0 ? rc : conf_set(op, conf, "log.connection.close", "false");
    for (int i = 0; rc == 0 && i < cfg->kc_nprops; i += 2) {
        rc = conf_set(op, conf, cfg->kc_props[i], cfg->kc_props[i + 1]);
    }
    rc = rc != 0 ? rc
                 : conf_set(op, conf, "bootstrap.servers", cfg->kc_bootstrap);
    rc = rc != 0 ? rc : conf_set(op, conf, "enable.auto.commit", "false");
    rc = rc != 0 ? rc : conf_set(op, conf, "enable.auto.offset.store", "false");
    rc = rc != 0 ? rc
                 : conf_set(op, conf, "enable.partition.eof",
                            cfg->kc_bounded ? "true" : "false");
    /* librdkafka 2.0.2 refuses rd_kafka_assign without a group id. Without
     * a group the source never commits nor reads committed offsets, so the
     * placeholder id never reaches a broker's offset store. */
    if (rc == 0) {
        rc = conf_set(op, conf, "group.id",
                      cfg->kc_group != NULL ? cfg->kc_group
                                            : "eddy-source-no-commits");
    }
    size_t rlen = sizeof(ks->ks_reset);
    if (rc == 0 && rd_kafka_conf_get(conf, "auto.offset.reset", ks->ks_reset,
                                     &rlen) != RD_KAFKA_CONF_OK) {
        eddy__fmt(ks->ks_reset, sizeof(ks->ks_reset), "earliest");
    }
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    for (int i = 0; i < cfg->kc_nprops; i += 2) {
        ks->ks_log_all |= strcmp(cfg->kc_props[i], "debug") == 0;
    }
    eddy__fmt(ks->ks_who, sizeof(ks->ks_who),
              "Kafka source '%s' (subtask %d of %d)",
              op->op_ctx.cx_name != NULL ? op->op_ctx.cx_name : "",
              op->op_ctx.cx_subtask + 1, op->op_ctx.cx_parallelism);
    rd_kafka_conf_set_opaque(conf, ks);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    char errstr[256];
    ks->ks_rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (ks->ks_rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return eddy__op_fail(op, EDDY_ERR_INVALID,
                             "cannot create a Kafka consumer for '%s': %s",
                             cfg->kc_bootstrap, errstr);
    }
    return 0;
}

/* The reason to show after "cannot reach ...": the last client error if
 * librdkafka reported one (it names the broker), else `err`. */
static const char *reason(kafka_src_t *ks, rd_kafka_resp_err_t err)
{
    rd_kafka_poll(ks->ks_rk, 0); /* serve pending error callbacks */
    return ks->ks_lasterr[0] != '\0' ? ks->ks_lasterr : rd_kafka_err2str(err);
}

/* Waits (cancellably) for the list of all topics. */
static int fetch_metadata(eddy__op_t *op, kafka_src_t *ks, int64_t deadline,
                          const struct rd_kafka_metadata **md)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    for (;;) {
        int64_t left = deadline - mono_ms();
        int step = (int)EDDY_MIN(EDDY_MAX(left, 1), KAFKA_META_STEP_MS);
        rd_kafka_resp_err_t err =
            rd_kafka_metadata(ks->ks_rk, 1, NULL, md, step);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            return 0;
        }
        rd_kafka_poll(ks->ks_rk, 0);
        if (cancelled(op)) {
            return EDDY_ERR_CANCELED;
        }
        if (ks->ks_fatal || mono_ms() >= deadline ||
            (err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
             err != RD_KAFKA_RESP_ERR__TRANSPORT &&
             err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)) {
            return eddy__op_fail(
                op, EDDY_ERR_TIMEOUT,
                "cannot reach Kafka at '%s' within %" PRId64 " ms: %s",
                cfg->kc_bootstrap, cfg->kc_timeout_ms, reason(ks, err));
        }
    }
}

/* Finds this subtask's partitions in the metadata. */
static int pick_partitions(eddy__op_t *op, kafka_src_t *ks,
                           const struct rd_kafka_metadata *md)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    int sub = op->op_ctx.cx_subtask, par = op->op_ctx.cx_parallelism;
    int nt = cfg->kc_ntopics;
    ks->ks_index = eddy__calloc((size_t)nt, sizeof(*ks->ks_index));
    ks->ks_npartsof = eddy__calloc((size_t)nt, sizeof(*ks->ks_npartsof));
    ks->ks_rkt = eddy__calloc((size_t)nt, sizeof(*ks->ks_rkt));
    size_t cap = 0;
    for (int t = 0; t < nt; t++) {
        const char *name = cfg->kc_topics[t];
        const struct rd_kafka_metadata_topic *mt = NULL;
        for (int i = 0; i < md->topic_cnt; i++) {
            if (strcmp(md->topics[i].topic, name) == 0) {
                mt = &md->topics[i];
                break;
            }
        }
        if (mt == NULL || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            return eddy__op_fail(op, EDDY_ERR_NOT_FOUND,
                                 "Kafka topic '%s' does not exist on '%s'",
                                 name, cfg->kc_bootstrap);
        }
        if (mt->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            return eddy__op_fail(op, EDDY_ERR_EXTERNAL,
                                 "Kafka topic '%s' on '%s': %s", name,
                                 cfg->kc_bootstrap, rd_kafka_err2str(mt->err));
        }
        /* Partition ids are 0..n-1; index by id. */
        int32_t np = 0;
        for (int i = 0; i < mt->partition_cnt; i++) {
            np = EDDY_MAX(np, mt->partitions[i].id + 1);
        }
        ks->ks_npartsof[t] = np;
        ks->ks_index[t] = eddy__malloc(sizeof(int32_t) * (size_t)(np + 1));
        for (int32_t p = 0; p < np; p++) {
            ks->ks_index[t][p] = -1;
        }
        for (int32_t p = 0; p < np; p++) {
            if (eddy__kafka_partition_owner(name, p, par) != sub) {
                continue;
            }
            eddy__grow((void **)&ks->ks_parts, &cap, ks->ks_nparts + 1,
                       sizeof(*ks->ks_parts));
            kpart_t *kp = &ks->ks_parts[ks->ks_nparts];
            memset(kp, 0, sizeof(*kp));
            kp->kp_topic = t;
            kp->kp_partition = p;
            kp->kp_next = -1;
            kp->kp_end = INT64_MAX;
            kp->kp_slot = -1;
            ks->ks_index[t][p] = (int32_t)ks->ks_nparts;
            ks->ks_nparts++;
        }
    }
    return 0;
}

static kpart_t *find_part(kafka_src_t *ks, const char *topic, size_t tlen,
                          int32_t partition)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    for (int t = 0; t < cfg->kc_ntopics; t++) {
        const char *name = cfg->kc_topics[t];
        if (strlen(name) == tlen && memcmp(name, topic, tlen) == 0) {
            if (partition >= ks->ks_npartsof[t] ||
                ks->ks_index[t][partition] < 0) {
                return NULL;
            }
            return &ks->ks_parts[ks->ks_index[t][partition]];
        }
    }
    return NULL;
}

static int restore_elem(void *arg, const void *elem, size_t len)
{
    kafka_src_t *ks = arg;
    const char *topic;
    size_t tlen;
    int32_t partition;
    int64_t next;
    if (!eddy__kafka_offset_decode(elem, len, &topic, &tlen, &partition,
                                   &next)) {
        return EDDY_ERR_FORMAT;
    }
    kpart_t *kp = find_part(ks, topic, tlen, partition);
    if (kp != NULL) {
        kp->kp_next = next;
        kp->kp_restored = true;
    }
    return 0;
}

/* A list of the partitions selected by `want`, with offset `offset`. */
static rd_kafka_topic_partition_list_t *
part_list(kafka_src_t *ks, bool (*want)(const kpart_t *), int64_t offset)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)ks->ks_nparts + 1);
    for (size_t i = 0; i < ks->ks_nparts; i++) {
        kpart_t *kp = &ks->ks_parts[i];
        if (want(kp)) {
            rd_kafka_topic_partition_list_add(
                l, ks->ks_cfg->kc_topics[kp->kp_topic], kp->kp_partition)
                ->offset = offset == INT64_MIN ? kp->kp_next : offset;
        }
    }
    return l;
}

static bool want_unresolved(const kpart_t *kp)
{
    return kp->kp_next < 0;
}

static bool want_all(const kpart_t *kp)
{
    EDDY_UNUSED(kp);
    return true;
}

static bool want_live(const kpart_t *kp)
{
    return !kp->kp_done;
}

static kpart_t *list_part(kafka_src_t *ks, const rd_kafka_topic_partition_t *e)
{
    return find_part(ks, e->topic, strlen(e->topic), e->partition);
}

/*
 * ListOffsets for every partition of `l` (each element's offset is the
 * query: a timestamp, RD_KAFKA_OFFSET_BEGINNING or RD_KAFKA_OFFSET_END),
 * retried in bounded steps until the deadline.
 */
static int list_offsets(eddy__op_t *op, kafka_src_t *ks,
                        rd_kafka_topic_partition_list_t *l, int64_t deadline,
                        const char *what)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    if (l->cnt == 0) {
        return 0;
    }
    int64_t *query = eddy__malloc(sizeof(int64_t) * (size_t)l->cnt);
    for (int i = 0; i < l->cnt; i++) {
        query[i] = l->elems[i].offset;
    }
    int rc = 0;
    for (;;) {
        int64_t left = deadline - mono_ms();
        int step = (int)EDDY_MIN(EDDY_MAX(left, 1), KAFKA_META_STEP_MS);
        rd_kafka_resp_err_t err =
            rd_kafka_offsets_for_times(ks->ks_rk, l, step);
        for (int i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < l->cnt; i++) {
            err = l->elems[i].err;
        }
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            break;
        }
        if (cancelled(op)) {
            rc = EDDY_ERR_CANCELED;
            break;
        }
        if (mono_ms() >= deadline) {
            rc = eddy__op_fail(op, EDDY_ERR_TIMEOUT,
                               "cannot read the %s offsets of Kafka topic "
                               "'%s' from '%s' within %" PRId64 " ms: %s",
                               what, l->elems[0].topic, cfg->kc_bootstrap,
                               cfg->kc_timeout_ms, reason(ks, err));
            break;
        }
        for (int i = 0; i < l->cnt; i++) {
            l->elems[i].offset = query[i];
            l->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        }
    }
    free(query);
    return rc;
}

/* The group's committed offsets; partitions without one follow
 * auto.offset.reset. */
static int resolve_group(eddy__op_t *op, kafka_src_t *ks, int64_t deadline)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    rd_kafka_topic_partition_list_t *l =
        part_list(ks, want_unresolved, RD_KAFKA_OFFSET_INVALID);
    int rc = 0;
    for (;;) {
        int64_t left = deadline - mono_ms();
        int step = (int)EDDY_MIN(EDDY_MAX(left, 1), KAFKA_META_STEP_MS);
        rd_kafka_resp_err_t err = rd_kafka_committed(ks->ks_rk, l, step);
        for (int i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < l->cnt; i++) {
            err = l->elems[i].err;
        }
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            break;
        }
        if (cancelled(op)) {
            rc = EDDY_ERR_CANCELED;
            goto out;
        }
        if (mono_ms() >= deadline) {
            rc = eddy__op_fail(op, EDDY_ERR_TIMEOUT,
                               "cannot read the offsets of group '%s' from "
                               "'%s' within %" PRId64 " ms: %s",
                               cfg->kc_group, cfg->kc_bootstrap,
                               cfg->kc_timeout_ms, reason(ks, err));
            goto out;
        }
    }
    for (int i = 0; i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[i];
        kpart_t *kp = list_part(ks, e);
        if (kp != NULL && e->offset >= 0) {
            kp->kp_next = e->offset;
        } else if (kp != NULL && strcmp(ks->ks_reset, "error") == 0) {
            rc = eddy__op_fail(op, EDDY_ERR_NOT_FOUND,
                               "group '%s' has no committed offset for Kafka "
                               "topic '%s' partition %" PRId32
                               " (auto.offset.reset=error)",
                               cfg->kc_group, e->topic, e->partition);
            goto out;
        }
    }
out:
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static bool reset_is_latest(const char *reset)
{
    return strcmp(reset, "latest") == 0 || strcmp(reset, "largest") == 0 ||
           strcmp(reset, "end") == 0;
}

/* Resolves every partition without a restored offset to a concrete one. */
static int resolve_starts(eddy__op_t *op, kafka_src_t *ks, int64_t deadline)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    int rc = 0;
    if (cfg->kc_start == EDDY_KAFKA_START_GROUP_OFFSETS) {
        rc = resolve_group(op, ks, deadline);
    } else if (cfg->kc_start == EDDY_KAFKA_START_TIMESTAMP) {
        rd_kafka_topic_partition_list_t *l =
            part_list(ks, want_unresolved, cfg->kc_start_ts);
        rc = list_offsets(op, ks, l, deadline, "timestamp");
        for (int i = 0; rc == 0 && i < l->cnt; i++) {
            kpart_t *kp = list_part(ks, &l->elems[i]);
            if (kp != NULL && l->elems[i].offset >= 0) {
                kp->kp_next = l->elems[i].offset;
            }
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (rc != 0) {
        return rc;
    }
    /* What is left: earliest or latest (explicitly, as the group fallback,
     * or for timestamps after the last record). */
    bool latest = cfg->kc_start == EDDY_KAFKA_START_LATEST ||
                  cfg->kc_start == EDDY_KAFKA_START_TIMESTAMP ||
                  (cfg->kc_start == EDDY_KAFKA_START_GROUP_OFFSETS &&
                   reset_is_latest(ks->ks_reset));
    rd_kafka_topic_partition_list_t *l =
        part_list(ks, want_unresolved,
                  latest ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING);
    rc = list_offsets(op, ks, l, deadline, latest ? "end" : "start");
    for (int i = 0; rc == 0 && i < l->cnt; i++) {
        kpart_t *kp = list_part(ks, &l->elems[i]);
        if (kp != NULL) {
            kp->kp_next = EDDY_MAX(l->elems[i].offset, 0);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* Bounded: every partition's end offset; those already there finish. */
static int resolve_ends(eddy__op_t *op, kafka_src_t *ks, int64_t deadline)
{
    rd_kafka_topic_partition_list_t *l =
        part_list(ks, want_all, RD_KAFKA_OFFSET_END);
    int rc = list_offsets(op, ks, l, deadline, "end");
    for (int i = 0; rc == 0 && i < l->cnt; i++) {
        kpart_t *kp = list_part(ks, &l->elems[i]);
        if (kp != NULL) {
            kp->kp_end = EDDY_MAX(l->elems[i].offset, 0);
            kp->kp_done = kp->kp_next >= kp->kp_end;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static void commit_async(kafka_src_t *ks, rd_kafka_topic_partition_list_t *l)
{
    if (l->cnt > 0 &&
        rd_kafka_commit(ks->ks_rk, l, 1) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ks->ks_inflight++;
    }
}

static int kafka_open(eddy__op_t *op)
{
    kafka_config_t *cfg = op->op_node->s_config;
    kafka_src_t *ks = eddy__calloc(1, sizeof(*ks));
    op->op_data = ks;
    ks->ks_cfg = cfg;
    atomic_init(&ks->ks_log_on, false);
    int64_t deadline = mono_ms() + cfg->kc_timeout_ms;
    const struct rd_kafka_metadata *md = NULL;

    int rc = make_consumer(op, ks);
    if (rc == 0) {
        rc = fetch_metadata(op, ks, deadline, &md);
    }
    if (rc == 0) {
        rc = pick_partitions(op, ks, md);
        rd_kafka_metadata_destroy(md);
    }
    if (rc == 0 && op->op_restore != NULL) {
        rc = eddy__op_restore_list(op->op_restore, EDDY__KAFKA_OFFSETS_STATE,
                                   restore_elem, ks);
        if (rc == EDDY_ERR_FORMAT) {
            rc = eddy__op_fail(op, rc,
                               "malformed Kafka offsets in checkpoint %" PRId64,
                               eddy__op_restore_id(op->op_restore));
        }
    }
    if (rc == 0) {
        rc = resolve_starts(op, ks, deadline);
    }
    if (rc == 0 && cfg->kc_bounded) {
        rc = resolve_ends(op, ks, deadline);
    }
    if (rc != 0) {
        return rc;
    }
    if (op->op_restore != NULL && cfg->kc_group != NULL) {
        /* The completion of the restored checkpoint may never have been
         * notified (a crash): commit its offsets again. */
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new((int)ks->ks_nparts + 1);
        for (size_t i = 0; i < ks->ks_nparts; i++) {
            kpart_t *kp = &ks->ks_parts[i];
            if (kp->kp_restored) {
                rd_kafka_topic_partition_list_add(
                    l, cfg->kc_topics[kp->kp_topic], kp->kp_partition)
                    ->offset = kp->kp_next;
            }
        }
        commit_async(ks, l);
        rd_kafka_topic_partition_list_destroy(l);
    }

    int64_t now = eddy__now_ms();
    ks->ks_ws = cfg->kc_wm.wsc_strategy;
    if (ks->ks_ws != NULL) {
        eddy__wm_mux_init(&ks->ks_mux, op, ks->ks_ws,
                          op->op_node->s_env->e_wm_interval_ms, now);
    }
    for (size_t i = 0; i < ks->ks_nparts; i++) {
        kpart_t *kp = &ks->ks_parts[i];
        if (kp->kp_done) {
            continue; /* finished before it started: never holds back */
        }
        ks->ks_left++;
        if (ks->ks_ws != NULL) {
            kp->kp_slot = eddy__wm_mux_add(&ks->ks_mux, now);
        }
    }
    if (ks->ks_ws != NULL) {
        op->op_next_tick_ms = eddy__wm_mux_next_tick(&ks->ks_mux);
    }
    rd_kafka_topic_partition_list_t *l = part_list(ks, want_live, INT64_MIN);
    rd_kafka_resp_err_t err = rd_kafka_assign(ks->ks_rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return eddy__op_fail(op, EDDY_ERR_EXTERNAL,
                             "cannot assign Kafka partitions from '%s': %s",
                             cfg->kc_bootstrap, rd_kafka_err2str(err));
    }
    ks->ks_q = rd_kafka_queue_get_consumer(ks->ks_rk);
    ks->ks_batch = eddy__calloc(KAFKA_BATCH_MAX, sizeof(*ks->ks_batch));
    atomic_store(&ks->ks_log_on, true);
    return 0;
}

/* ---- poll ---- */

/* The partition of a message, through a per-topic cache of the handle. */
static kpart_t *msg_part(kafka_src_t *ks, const rd_kafka_message_t *m)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    if (m->rkt == NULL) {
        return NULL;
    }
    int t = -1;
    for (int i = 0; i < cfg->kc_ntopics; i++) {
        if (ks->ks_rkt[i] == m->rkt) {
            t = i;
            break;
        }
    }
    if (t < 0) {
        const char *name = rd_kafka_topic_name(m->rkt);
        for (int i = 0; i < cfg->kc_ntopics; i++) {
            if (strcmp(cfg->kc_topics[i], name) == 0) {
                t = i;
                ks->ks_rkt[i] = m->rkt;
                break;
            }
        }
    }
    if (t < 0 || m->partition < 0 || m->partition >= ks->ks_npartsof[t] ||
        ks->ks_index[t][m->partition] < 0) {
        return NULL;
    }
    return &ks->ks_parts[ks->ks_index[t][m->partition]];
}

/* A bounded partition reached its end: stop fetching it, let it leave the
 * watermark minimum. */
static int part_finish(kafka_src_t *ks, kpart_t *kp)
{
    if (kp->kp_done) {
        return 0;
    }
    kp->kp_done = true;
    ks->ks_left--;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, ks->ks_cfg->kc_topics[kp->kp_topic],
                                      kp->kp_partition);
    rd_kafka_pause_partitions(ks->ks_rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (ks->ks_ws != NULL && kp->kp_slot >= 0) {
        return eddy__wm_mux_finish(&ks->ks_mux, kp->kp_slot);
    }
    return 0;
}

/* A message carrying an error (not a record). */
static int msg_error(eddy__op_t *op, kafka_src_t *ks, rd_kafka_message_t *m)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    kpart_t *kp = msg_part(ks, m);
    switch (m->err) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        if (kp != NULL && !kp->kp_done) {
            /* The log ends at m->offset: offsets below it that never came
             * are gaps (transaction markers, compaction). */
            kp->kp_next = EDDY_MAX(kp->kp_next, m->offset);
            if (kp->kp_next >= kp->kp_end) {
                return part_finish(ks, kp);
            }
        }
        return 0;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR__FATAL:
        return eddy__op_fail(
            op, EDDY_ERR_EXTERNAL,
            "Kafka topic '%s' partition %" PRId32 " on '%s': %s",
            m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : "?", m->partition,
            cfg->kc_bootstrap, rd_kafka_message_errstr(m));
    default:
        /* Transient (connection loss, leader change): librdkafka retries. */
        eddy__fmt(ks->ks_lasterr, sizeof(ks->ks_lasterr), "%s",
                  rd_kafka_message_errstr(m));
        return 0;
    }
}

static int emit_msg(eddy__op_t *op, kafka_src_t *ks, kpart_t *kp,
                    rd_kafka_message_t *m, uint64_t *malformed)
{
    const kafka_config_t *cfg = ks->ks_cfg;
    if (kp->kp_done) {
        return 0; /* past a bounded end: fetched before the pause */
    }
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts < 0) {
        ts = EDDY_TS_NONE;
    }
    eddy_record_t rec = {m->key, m->key != NULL ? m->key_len : 0, m->payload,
                         m->payload != NULL ? m->len : 0, ts};
    int rc = 0;
    bool skip = false;
    if (ks->ks_ws != NULL || cfg->kc_format == EDDY_KAFKA_ENVELOPE) {
        eddy__op_enter(op);
    }
    if (cfg->kc_format == EDDY_KAFKA_JSON) {
        skip = m->payload == NULL || !eddy__json_valid(m->payload, m->len);
        *malformed += skip;
    } else if (cfg->kc_format == EDDY_KAFKA_ENVELOPE) {
        rc = envelope(op, cfg, kp, m, ts, tstype, &rec.value, &rec.value_len);
    }
    if (rc == 0 && !skip) {
        rc = ks->ks_ws != NULL
                 ? eddy__wm_mux_emit(&ks->ks_mux, kp->kp_slot, &rec)
                 : eddy__emit(op, &rec);
        ks->ks_unflushed = true;
    }
    if (rc != 0) {
        return rc;
    }
    kp->kp_next = m->offset + 1;
    if (kp->kp_next >= kp->kp_end) {
        return part_finish(ks, kp);
    }
    return 0;
}

/* How long a poll that found nothing may wait for a message. */
static int wait_ms(const eddy__op_t *op, const kafka_src_t *ks)
{
    int64_t wait = KAFKA_MAX_WAIT_MS;
    if (ks->ks_ws != NULL && op->op_next_tick_ms != INT64_MAX) {
        wait = EDDY_MIN(wait, op->op_next_tick_ms - eddy__now_ms());
    }
    return (int)EDDY_MAX(wait, 0);
}

/* Destroys the messages taken from librdkafka but not processed yet. */
static void batch_drop(kafka_src_t *ks)
{
    for (size_t i = ks->ks_batch_pos; i < ks->ks_batch_n; i++) {
        rd_kafka_message_destroy(ks->ks_batch[i]);
    }
    ks->ks_batch_pos = ks->ks_batch_n = 0;
}

/* Takes the next messages from the consumer queue into ks_batch; 0 with
 * none (after waiting at most wait_ms), or an error. */
static int batch_fill(eddy__op_t *op, kafka_src_t *ks, size_t max)
{
    ssize_t n = rd_kafka_consume_batch_queue(ks->ks_q, 0, ks->ks_batch, max);
    if (n == 0) {
        /* Nothing buffered: ship what we emitted, then wait for one message
         * (a batch wait would sit out the whole timeout). */
        if (ks->ks_unflushed && op->op_task != NULL) {
            int rc = eddy__task_flush(op->op_task);
            if (rc != 0) {
                return rc;
            }
            ks->ks_unflushed = false;
        }
        int wait = wait_ms(op, ks);
        if (wait > 0) {
            n = rd_kafka_consume_batch_queue(ks->ks_q, wait, ks->ks_batch, 1);
        }
    }
    if (n < 0) {
        return eddy__op_fail(
            op, EDDY_ERR_EXTERNAL, "Kafka consumer of '%s': %s",
            ks->ks_cfg->kc_bootstrap, rd_kafka_err2str(rd_kafka_last_error()));
    }
    ks->ks_batch_pos = 0;
    ks->ks_batch_n = (size_t)n;
    return 0;
}

/*
 * Emits up to `budget` records, and for at most KAFKA_SLICE_MS: records
 * pass through the chained operators inside this call, and the task looks
 * at checkpoint triggers and cancellation only between polls. Messages
 * taken from librdkafka but not emitted stay in ks_batch for the next poll;
 * the offsets (what a snapshot stores) cover emitted records only.
 */
static int kafka_poll(eddy__op_t *op, int budget)
{
    kafka_src_t *ks = op->op_data;
    kafka_config_t *cfg = op->op_node->s_config;
    rd_kafka_poll(ks->ks_rk, 0); /* errors and commit results */
    if (ks->ks_fatal) {
        return eddy__op_fail(op, EDDY_ERR_EXTERNAL,
                             "Kafka consumer of '%s': %s", cfg->kc_bootstrap,
                             ks->ks_lasterr);
    }
    if (cfg->kc_bounded && ks->ks_left == 0) {
        batch_drop(ks);
        return EDDY__POLL_END;
    }
    if (ks->ks_batch_pos == ks->ks_batch_n) {
        size_t max = (size_t)EDDY_MAX(EDDY_MIN(budget, KAFKA_BATCH_MAX), 1);
        int rc = batch_fill(op, ks, max);
        if (rc != 0) {
            return rc;
        }
    }
    uint64_t slice_end = eddy__now_ns() + KAFKA_SLICE_MS * 1000000u;
    uint64_t malformed = 0;
    int rc = 0;
    for (int k = 0; ks->ks_batch_pos < ks->ks_batch_n && k < budget; k++) {
        if ((k & 7) == 7 && eddy__now_ns() >= slice_end) {
            break;
        }
        rd_kafka_message_t *m = ks->ks_batch[ks->ks_batch_pos++];
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rc = msg_error(op, ks, m);
        } else {
            kpart_t *kp = msg_part(ks, m);
            if (kp != NULL) {
                rc = emit_msg(op, ks, kp, m, &malformed);
            }
        }
        rd_kafka_message_destroy(m);
        if (rc != 0) {
            break;
        }
    }
    if (malformed > 0) {
        atomic_fetch_add(&cfg->kc_malformed, malformed);
    }
    if (rc != 0) {
        return rc;
    }
    if (cfg->kc_bounded && ks->ks_left == 0) {
        batch_drop(ks);
        return EDDY__POLL_END;
    }
    return EDDY__POLL_MORE;
}

static int kafka_tick(eddy__op_t *op, int64_t now_ms)
{
    kafka_src_t *ks = op->op_data;
    if (ks->ks_ws == NULL) {
        op->op_next_tick_ms = INT64_MAX;
        return 0;
    }
    int rc = eddy__wm_mux_tick(&ks->ks_mux, now_ms);
    op->op_next_tick_ms = eddy__wm_mux_next_tick(&ks->ks_mux);
    return rc;
}

/* ---- checkpoints ---- */

static int kafka_snapshot(eddy__op_t *op, eddy__op_snap_t *snap)
{
    kafka_src_t *ks = op->op_data;
    const kafka_config_t *cfg = ks->ks_cfg;
    eddy__bytes_t b = {0};
    int rc = 0;
    for (size_t i = 0; i < ks->ks_nparts && rc == 0; i++) {
        const kpart_t *kp = &ks->ks_parts[i];
        eddy__bytes_reset(&b);
        eddy__kafka_offset_encode(&b, cfg->kc_topics[kp->kp_topic],
                                  kp->kp_partition, kp->kp_next);
        rc = eddy__op_snap_list_add(snap, EDDY__KAFKA_OFFSETS_STATE,
                                    EDDY__OPLIST_UNION, b.b_data, b.b_len);
    }
    eddy__bytes_free(&b);
    if (rc != 0) {
        return eddy__op_fail(op, rc,
                             "cannot store Kafka offsets in "
                             "checkpoint %" PRId64,
                             eddy__op_snap_id(snap));
    }
    if (cfg->kc_group == NULL || ks->ks_nparts == 0) {
        return 0;
    }
    if (ks->ks_npending == KAFKA_PENDING_MAX) {
        /* Never completed nor aborted (notifications lost): the oldest is
         * superseded by any later completion anyway. */
        rd_kafka_topic_partition_list_destroy(ks->ks_pending[0].pc_offsets);
        memmove(&ks->ks_pending[0], &ks->ks_pending[1],
                sizeof(ks->ks_pending[0]) * (KAFKA_PENDING_MAX - 1));
        ks->ks_npending--;
    }
    pending_commit_t *pc = &ks->ks_pending[ks->ks_npending++];
    pc->pc_id = eddy__op_snap_id(snap);
    pc->pc_offsets = part_list(ks, want_all, INT64_MIN);
    return 0;
}

/* Forgets pending checkpoints selected by `drop`; returns the newest one
 * with id <= upto (not dropped from the list's memory: caller owns it). */
static rd_kafka_topic_partition_list_t *pending_take(kafka_src_t *ks,
                                                     int64_t id, bool upto)
{
    rd_kafka_topic_partition_list_t *take = NULL;
    int64_t take_id = INT64_MIN;
    int k = 0;
    for (int i = 0; i < ks->ks_npending; i++) {
        pending_commit_t *pc = &ks->ks_pending[i];
        bool match = upto ? pc->pc_id <= id : pc->pc_id == id;
        if (!match) {
            ks->ks_pending[k++] = *pc;
            continue;
        }
        if (upto && pc->pc_id > take_id) {
            if (take != NULL) {
                rd_kafka_topic_partition_list_destroy(take);
            }
            take = pc->pc_offsets;
            take_id = pc->pc_id;
        } else {
            rd_kafka_topic_partition_list_destroy(pc->pc_offsets);
        }
    }
    ks->ks_npending = k;
    return take;
}

static int kafka_checkpoint_complete(eddy__op_t *op, int64_t id)
{
    kafka_src_t *ks = op->op_data;
    rd_kafka_topic_partition_list_t *l = pending_take(ks, id, true);
    if (l != NULL) {
        commit_async(ks, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    return 0;
}

static int kafka_checkpoint_abort(eddy__op_t *op, int64_t id)
{
    kafka_src_t *ks = op->op_data;
    pending_take(ks, id, false);
    return 0;
}

/* ---- close ---- */

static void kafka_close(eddy__op_t *op)
{
    kafka_src_t *ks = op->op_data;
    if (ks == NULL) {
        return;
    }
    if (ks->ks_rk != NULL) {
        /* Let commits of the last completed checkpoint land (bounded). */
        int64_t deadline = mono_ms() + KAFKA_CLOSE_COMMIT_MS;
        while (ks->ks_inflight > 0 && mono_ms() < deadline) {
            rd_kafka_poll(ks->ks_rk, 20);
        }
    }
    for (int i = 0; i < ks->ks_npending; i++) {
        rd_kafka_topic_partition_list_destroy(ks->ks_pending[i].pc_offsets);
    }
    batch_drop(ks);
    if (ks->ks_q != NULL) {
        rd_kafka_queue_destroy(ks->ks_q);
    }
    if (ks->ks_rk != NULL) {
        /* Not a group member and no auto-commit: nothing to close, and a
         * consumer close could wait on an unreachable coordinator. */
        rd_kafka_destroy_flags(ks->ks_rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    if (ks->ks_ws != NULL) {
        eddy__wm_mux_close(&ks->ks_mux);
    }
    if (ks->ks_index != NULL) {
        for (int t = 0; t < ks->ks_cfg->kc_ntopics; t++) {
            free(ks->ks_index[t]);
        }
    }
    free(ks->ks_index);
    free(ks->ks_npartsof);
    free(ks->ks_rkt);
    free(ks->ks_parts);
    free(ks->ks_batch);
    free(ks);
    op->op_data = NULL;
}

const eddy__op_class_t eddy__kafka_source_class = {
    .oc_kind = "Source: Kafka",
    .oc_source = true,
    .oc_open = kafka_open,
    .oc_poll = kafka_poll,
    .oc_tick = kafka_tick,
    .oc_close = kafka_close,
    .oc_snapshot = kafka_snapshot,
    .oc_checkpoint_complete = kafka_checkpoint_complete,
    .oc_checkpoint_abort = kafka_checkpoint_abort,
};

/* ---- graph building ---- */

/* Keys the source sets itself (see eddy.h). */
static const char *const owned_props[] = {
    "bootstrap.servers",  "metadata.broker.list",     "group.id",
    "enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof",
};

static bool check_props(eddy_env_t *env, const char *const *props, int *n)
{
    *n = 0;
    if (props == NULL) {
        return true;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = true;
    for (int i = 0; props[i] != NULL; i += 2) {
        const char *k = props[i], *v = props[i + 1];
        if (v == NULL) {
            eddy_env_fail(env,
                          "eddy_source_kafka: property '%s' has no value "
                          "(props are key, value pairs ended by NULL)",
                          k);
            ok = false;
            break;
        }
        for (size_t j = 0; j < EDDY_ARRAY_SIZE(owned_props); j++) {
            if (strcmp(k, owned_props[j]) == 0) {
                eddy_env_fail(env,
                              "eddy_source_kafka: property '%s' is set by "
                              "the source (use the options instead)",
                              k);
                ok = false;
                break;
            }
        }
        char errstr[256];
        if (ok && rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) !=
                      RD_KAFKA_CONF_OK) {
            eddy_env_fail(env, "eddy_source_kafka: property %s=%s: %s", k, v,
                          errstr);
            ok = false;
        }
        if (!ok) {
            break;
        }
        *n = i + 2;
    }
    rd_kafka_conf_destroy(conf);
    return ok;
}

/* Splits "a,b,c" into arena strings; false (error recorded) on an empty or
 * repeated name. */
static bool split_topics(eddy_env_t *env, const char *list, kafka_config_t *cfg)
{
    eddy__arena_t *ar = &env->e_arena;
    size_t n = 1;
    for (const char *c = list; *c != '\0'; c++) {
        n += *c == ',';
    }
    cfg->kc_topics = eddy__arena_alloc(ar, sizeof(char *) * n);
    const char *p = list;
    for (size_t i = 0; i < n; i++) {
        const char *e = strchr(p, ',');
        const char *next = e != NULL ? e + 1 : p + strlen(p);
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ') {
            len--;
        }
        if (len == 0) {
            eddy_env_fail(env, "eddy_source_kafka: empty topic name in '%s'",
                          list);
            return false;
        }
        char *name = eddy__arena_alloc(ar, len + 1);
        memcpy(name, p, len);
        name[len] = '\0';
        for (int j = 0; j < cfg->kc_ntopics; j++) {
            if (strcmp(cfg->kc_topics[j], name) == 0) {
                eddy_env_fail(
                    env, "eddy_source_kafka: topic '%s' is listed twice", name);
                return false;
            }
        }
        cfg->kc_topics[cfg->kc_ntopics++] = name;
        p = next;
    }
    return true;
}

eddy_stream_t *eddy_source_kafka(eddy_env_t *env,
                                 const eddy_kafka_source_opts_t *opts)
{
    if (env == NULL) {
        return NULL;
    }
    if (opts == NULL) {
        eddy_env_fail(env, "eddy_source_kafka: no options given");
        return NULL;
    }
    if (opts->bootstrap == NULL || opts->bootstrap[0] == '\0') {
        eddy_env_fail(env, "eddy_source_kafka: no bootstrap servers given");
        return NULL;
    }
    if (opts->topic == NULL || opts->topic[0] == '\0') {
        eddy_env_fail(env, "eddy_source_kafka: no topic given");
        return NULL;
    }
    if ((unsigned)opts->start > EDDY_KAFKA_START_TIMESTAMP) {
        eddy_env_fail(env, "eddy_source_kafka: unknown start mode %d",
                      (int)opts->start);
        return NULL;
    }
    if ((unsigned)opts->format > EDDY_KAFKA_ENVELOPE) {
        eddy_env_fail(env, "eddy_source_kafka: unknown format %d",
                      (int)opts->format);
        return NULL;
    }
    if (opts->start == EDDY_KAFKA_START_GROUP_OFFSETS &&
        (opts->group_id == NULL || opts->group_id[0] == '\0')) {
        eddy_env_fail(env, "eddy_source_kafka: EDDY_KAFKA_START_GROUP_OFFSETS "
                           "needs a group_id");
        return NULL;
    }
    if (opts->start == EDDY_KAFKA_START_TIMESTAMP && opts->start_ts < 0) {
        eddy_env_fail(env,
                      "eddy_source_kafka: start_ts must be >= 0 ms, got "
                      "%" PRId64,
                      opts->start_ts);
        return NULL;
    }
    if (opts->connect_timeout_ms < 0) {
        eddy_env_fail(env,
                      "eddy_source_kafka: connect_timeout_ms must be >= 0, "
                      "got %" PRId64,
                      opts->connect_timeout_ms);
        return NULL;
    }
    if (opts->group_id != NULL && opts->group_id[0] == '\0') {
        eddy_env_fail(env, "eddy_source_kafka: group_id is empty (use NULL "
                           "for no group)");
        return NULL;
    }
    int nprops;
    if (!check_props(env, opts->props, &nprops)) {
        return NULL;
    }
    eddy__arena_t *ar = &env->e_arena;
    kafka_config_t *cfg = eddy__arena_alloc(ar, sizeof(*cfg));
    memset(cfg, 0, sizeof(*cfg));
    if (!split_topics(env, opts->topic, cfg)) {
        return NULL;
    }
    eddy_stream_t *s = eddy__node_add(env, &eddy__kafka_source_class, NULL, 0);
    if (s == NULL) {
        return NULL;
    }
    cfg->kc_bootstrap = eddy__arena_strdup(ar, opts->bootstrap);
    cfg->kc_group =
        opts->group_id != NULL ? eddy__arena_strdup(ar, opts->group_id) : NULL;
    cfg->kc_start = opts->start;
    cfg->kc_start_ts = opts->start_ts;
    cfg->kc_format = opts->format;
    cfg->kc_bounded = opts->bounded;
    cfg->kc_timeout_ms = opts->connect_timeout_ms > 0
                             ? opts->connect_timeout_ms
                             : KAFKA_DEFAULT_TIMEOUT_MS;
    cfg->kc_nprops = nprops;
    cfg->kc_props =
        eddy__arena_alloc(ar, sizeof(char *) * (size_t)(nprops + 1));
    for (int i = 0; i < nprops; i++) {
        cfg->kc_props[i] = eddy__arena_strdup(ar, opts->props[i]);
    }
    atomic_init(&cfg->kc_malformed, 0);
    atomic_init(&cfg->kc_commits_ok, 0);
    atomic_init(&cfg->kc_commits_failed, 0);
    s->s_config = cfg;
    return s;
}

static kafka_config_t *kafka_cfg(eddy_stream_t *s)
{
    if (s == NULL || s->s_kind != EDDY__NODE_OPERATOR ||
        s->s_class != &eddy__kafka_source_class) {
        return NULL;
    }
    return s->s_config;
}

uint64_t eddy_kafka_malformed_records(eddy_stream_t *source)
{
    kafka_config_t *cfg = kafka_cfg(source);
    return cfg != NULL ? atomic_load(&cfg->kc_malformed) : 0;
}

void eddy__kafka_source_commits(eddy_stream_t *source, uint64_t *ok,
                                uint64_t *failed)
{
    kafka_config_t *cfg = kafka_cfg(source);
    *ok = cfg != NULL ? atomic_load(&cfg->kc_commits_ok) : 0;
    *failed = cfg != NULL ? atomic_load(&cfg->kc_commits_failed) : 0;
}
