/*
 * eddy — settings: defaults, eddy.yaml, EDDY_* variables and flags as one
 * typed table of configuration keys (see settings.h and
 * docs/configuration.md).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. The key table below is the only list of keys: validation, the
 * environment variable names, the getters' type checks and the reference in
 * docs/configuration.md all derive from it.
 *
 * Every loader builds a batch of validated values and commits it only when
 * the whole layer is valid, so a bad file, variable or flag never leaves a
 * half-applied configuration behind.
 *
 * The YAML file is read in two passes. The first streams libyaml's events
 * into a flat list of (dotted key, value, position) entries and stops at
 * anything that is not plain configuration YAML: syntax errors, anchors and
 * aliases (which also rules out alias bombs), several documents, keys that
 * are not strings, deep nesting. The second pass looks for keys set twice,
 * then at each key and value in file order.
 * Keeping them apart matters because libyaml hands out events before it
 * notices a later syntax error: with a mis-indented line it first returns
 * the two lines glued into one value ("10s timeout"), and judging that
 * value would blame the wrong line for the wrong reason.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "common/settings.h"
#include "runtime/config.h"

/* Deeper than any key (state.rocksdb.dir is three levels) with room for
 * dotted spellings; bounds the frame stack. */
#define YAML_MAX_DEPTH 8
/* A real file has a few dozen entries; this bounds memory for a 1 MiB file
 * of tiny keys. */
#define YAML_MAX_ENTRIES 4096
/* Longer than any key, so a longer one is certainly unknown. */
#define KEY_MAX 255
/* Bad values longer than this are cut in error messages. */
#define SHOW_MAX 60

#define NO_INDEX SIZE_MAX
#define MS_MAX INT64_MAX

/* ---- the key table ---- */

#define DURATION(key, def, min, job, doc)                                      \
    {                                                                          \
        .sd_key = key, .sd_type = EDDY__SETTING_DURATION, .sd_default = def,   \
        .sd_min = min, .sd_max = MS_MAX, .sd_job = job, .sd_doc = doc          \
    }
#define INTEGER(key, def, min, max, job, doc)                                  \
    {                                                                          \
        .sd_key = key, .sd_type = EDDY__SETTING_INT, .sd_default = def,        \
        .sd_min = min, .sd_max = max, .sd_job = job, .sd_doc = doc             \
    }
#define NUMBER(key, def, min, max, job, doc)                                   \
    {                                                                          \
        .sd_key = key, .sd_type = EDDY__SETTING_NUMBER, .sd_default = def,     \
        .sd_min = min, .sd_max = max, .sd_job = job, .sd_doc = doc             \
    }
#define PORT(key, def, doc)                                                    \
    {                                                                          \
        .sd_key = key, .sd_type = EDDY__SETTING_PORT, .sd_default = def,       \
        .sd_min = 1, .sd_max = 65535, .sd_doc = doc                            \
    }
#define CHOICE(key, def, choices, job, doc)                                    \
    {                                                                          \
        .sd_key = key, .sd_type = EDDY__SETTING_ENUM, .sd_default = def,       \
        .sd_choices = choices, .sd_job = job, .sd_doc = doc                    \
    }
#define TYPED(key, type, def, in_dir, job, doc)                                \
    {                                                                          \
        .sd_key = key, .sd_type = EDDY__SETTING_##type, .sd_default = def,     \
        .sd_in_data_dir = in_dir, .sd_job = job, .sd_doc = doc                 \
    }

/*
 * The job keys and their defaults match src/runtime/config.c (the unit test
 * holds them together); their defaults are never passed to the job's
 * configuration, only values the user set are.
 */
static const eddy__setting_def_t defs[] = {
    /* The process. */
    TYPED("data.dir", PATH, "/tmp/eddy", false, false,
          "Directory for the process's files; the defaults of "
          "metadata.store, checkpoint.dir and state.rocksdb.dir are under "
          "it"),
    TYPED("log.file", PATH, NULL, false, false,
          "Log to this file; unset: standard error"),
    CHOICE("log.level", "info", "error|warn|info|debug", false,
           "Least severe level that is logged"),
    /* The cluster. */
    INTEGER("taskmanager.slots", "4", 1, 1024, false,
            "Task slots a TaskManager offers; each runs one parallel "
            "slice of a job"),
    INTEGER("taskmanager.network.exclusive_buffers", "32", 1, 1024, false,
            "Credits (32 KiB buffers) a TaskManager grants each input "
            "channel from another TaskManager"),
    INTEGER("taskmanager.network.floating_buffers", "8", 0, 65536, false,
            "Buffers a TaskManager lends to backlogged input channels"),
    INTEGER("taskmanager.metrics_port", "0", 0, 65535, false,
            "Port of a TaskManager's Prometheus /metrics; 0: any free port "
            "(GET /taskmanagers shows it)"),
    TYPED("taskmanager.host", HOST, "127.0.0.1", false, false,
          "Address a TaskManager announces: other TaskManagers reach its "
          "data plane there, Prometheus its /metrics. On several machines, "
          "this machine's name or address"),
    TYPED("taskmanager.bind_host", HOST, NULL, false, false,
          "Address a TaskManager's data plane and /metrics listen on; "
          "unset: taskmanager.host (0.0.0.0: every interface)"),
    TYPED("jobmanager.bind_host", HOST, "127.0.0.1", false, false,
          "Address the JobManager's REST API and RPC port listen on; "
          "0.0.0.0 for TaskManagers and clients on other machines (the "
          "REST API has no authentication: firewall it)"),
    INTEGER("parallelism.default", "1", 1, 32768, false,
            "Parallelism of jobs and operators that do not set their own"),
    PORT("rest.port", "8081", "JobManager REST port (HTTP, JSON)"),
    PORT("rpc.port", "6123", "JobManager port that TaskManagers connect to"),
    DURATION("heartbeat.interval", "1s", 1, false,
             "How often a TaskManager sends a heartbeat to the JobManager"),
    DURATION("heartbeat.timeout", "5s", 1, false,
             "A TaskManager silent this long is lost; must be longer than "
             "heartbeat.interval"),
    TYPED("metadata.store", STORE, "metadata.db", true, false,
          "Where the JobManager keeps jobs and checkpoints: a SQLite file "
          "or a postgresql:// URI"),
    CHOICE("scheduler.placement", "spread", "spread|binpack", false,
           "spread: subtasks evenly over TaskManagers; binpack: fill one "
           "TaskManager's slots before using the next"),
    DURATION("scheduler.slot_wait", "30s", 0, false,
             "How long a job waits for enough free slots before it fails"),
    /* Jobs (src/runtime/config.c). */
    DURATION("checkpoint.interval", "0", 0, true,
             "Time between checkpoints; 0 turns checkpointing off"),
    DURATION("checkpoint.timeout", "10m", 1, true,
             "A checkpoint not complete by then is aborted"),
    DURATION("checkpoint.min_pause", "0", 0, true,
             "Least time between the end of one checkpoint and the next "
             "trigger"),
    INTEGER("checkpoint.max_concurrent", "1", 1, 16, true,
            "Checkpoints in flight at once"),
    INTEGER("checkpoint.retained", "3", 1, 1000, true,
            "Completed checkpoints kept; older ones are deleted"),
    CHOICE("checkpoint.mode", "exactly_once", "exactly_once|at_least_once",
           true,
           "at_least_once skips barrier alignment: lower latency, but "
           "records may be replayed after a failure"),
    TYPED("checkpoint.dir", URI_PATH, "checkpoints", true, true,
          "Checkpoints go to DIR/JOB_ID/chk-N"),
    CHOICE("state.backend", "heap", "heap|rocksdb", true,
           "Where keyed state lives"),
    TYPED("state.rocksdb.dir", PATH, "rocksdb", true, true,
          "Working directories of the rocksdb state backend"),
    CHOICE("restart.strategy", NULL, "none|fixed-delay|exponential-delay", true,
           "What a failed job does; unset: exponential-delay with "
           "checkpointing, else none"),
    INTEGER("restart.attempts", "3", 0, 1000000, true,
            "fixed-delay: restarts before the job fails"),
    DURATION("restart.delay", "1s", 0, true,
             "fixed-delay: the delay; exponential-delay: the first delay"),
    DURATION("restart.max_delay", "1m", 0, true,
             "exponential-delay: the longest delay"),
    NUMBER("restart.multiplier", "2", 1, 1000, true,
           "exponential-delay: growth of the delay per restart"),
    TYPED("savepoint.path", PATH, NULL, false, true,
          "Start from this savepoint or checkpoint: a chk-N directory, or a "
          "job's checkpoint directory (its newest usable checkpoint)"),
    TYPED("savepoint.allow_non_restored", BOOL, "false", false, true,
          "Ignore saved state that no operator claims"),
    TYPED("job.id", ID, NULL, false, true, "The job's id; unset: random"),
};

#define NDEFS EDDY_ARRAY_SIZE(defs)

typedef struct setting_val {
    char *sv_value;  /* NULL: unset */
    char *sv_origin; /* "default", "eddy.yaml:3:13", "EDDY_X", "--x" */
    eddy__settings_layer_t sv_layer;
} setting_val_t;

struct eddy__settings {
    setting_val_t st_vals[NDEFS];
};

const eddy__setting_def_t *eddy__settings_defs(size_t *n)
{
    *n = NDEFS;
    return defs;
}

static size_t find_index(const char *key)
{
    for (size_t i = 0; i < NDEFS; i++) {
        if (strcmp(defs[i].sd_key, key) == 0) {
            return i;
        }
    }
    return NO_INDEX;
}

const eddy__setting_def_t *eddy__settings_find(const char *key)
{
    size_t i = key != NULL ? find_index(key) : NO_INDEX;
    return i == NO_INDEX ? NULL : &defs[i];
}

/* The first key inside section `path` ("checkpoint" → checkpoint.interval),
 * or NULL when `path` is not a section. */
static const char *section_member(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < NDEFS; i++) {
        if (n > 0 && strncmp(defs[i].sd_key, path, n) == 0 &&
            defs[i].sd_key[n] == '.') {
            return defs[i].sd_key;
        }
    }
    return NULL;
}

/* ---- small helpers ---- */

static char *xasprintf(const char *fmt, ...) EDDY_PRINTF_LIKE(1, 2);

static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = eddy__malloc((size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* `v` as it should appear in a message: control characters escaped, long
 * values cut (at a UTF-8 character boundary) and marked with "...". */
static const char *show(const char *v, char *buf, size_t size)
{
    size_t o = 0;
    for (const char *p = v; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if ((size_t)(p - v) >= SHOW_MAX && (c & 0xc0) != 0x80) {
            snprintf(buf + o, size - o, "...");
            return buf;
        }
        if (o + 5 >= size) {
            break;
        }
        if (c == '\n') {
            o += (size_t)snprintf(buf + o, size - o, "\\n");
        } else if (c == '\t') {
            o += (size_t)snprintf(buf + o, size - o, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* "a|b|c" → "a, b or c". */
static void list_choices(const char *choices, char *buf, size_t size)
{
    size_t o = 0;
    const char *p = choices;
    while (*p != '\0' && o + 1 < size) {
        const char *bar = strchr(p, '|');
        size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);
        const char *sep = o == 0 ? "" : (bar == NULL ? " or " : ", ");
        int w = snprintf(buf + o, size - o, "%s%.*s", sep, (int)n, p);
        o += w > 0 ? (size_t)w : 0;
        if (o >= size) {
            o = size - 1;
        }
        p += n + (bar != NULL ? 1 : 0);
    }
    buf[o] = '\0';
}

/* The form a key's values take, for error messages and the reference. */
static const char *expected(const eddy__setting_def_t *d, char *buf,
                            size_t size)
{
    char choices[160];
    switch (d->sd_type) {
    case EDDY__SETTING_DURATION:
        snprintf(buf, size, "a duration%s such as 500ms, 10s, 2m or 1h",
                 d->sd_min > 0 ? " greater than 0," : "");
        break;
    case EDDY__SETTING_INT:
        snprintf(buf, size, "an integer from %lld to %lld",
                 (long long)d->sd_min, (long long)d->sd_max);
        break;
    case EDDY__SETTING_PORT:
        snprintf(buf, size, "a port number from %lld to %lld",
                 (long long)d->sd_min, (long long)d->sd_max);
        break;
    case EDDY__SETTING_NUMBER:
        snprintf(buf, size, "a number from %lld to %lld", (long long)d->sd_min,
                 (long long)d->sd_max);
        break;
    case EDDY__SETTING_BOOL:
        snprintf(buf, size, "true or false");
        break;
    case EDDY__SETTING_ENUM:
        list_choices(d->sd_choices, choices, sizeof(choices));
        snprintf(buf, size, "%s", choices);
        break;
    case EDDY__SETTING_PATH:
        snprintf(buf, size, "a file system path");
        break;
    case EDDY__SETTING_URI_PATH:
        snprintf(buf, size, "a directory or file:// URI");
        break;
    case EDDY__SETTING_STORE:
        snprintf(buf, size, "a SQLite file path or a postgresql:// URI");
        break;
    case EDDY__SETTING_ID:
        snprintf(buf, size, "32 lowercase hexadecimal digits");
        break;
    case EDDY__SETTING_HOST:
        snprintf(buf, size, "a host name or IP address");
        break;
    }
    return buf;
}

/* ---- values ---- */

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    /* strtoll alone would also take leading blanks and '+'. */
    if (!(*s == '-' || (*s >= '0' && *s <= '9'))) {
        return false;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/* The length of a URI scheme ("file" in file://...), or 0 for none. */
static size_t scheme_len(const char *v)
{
    size_t n = 0;
    if (!((v[0] >= 'a' && v[0] <= 'z') || (v[0] >= 'A' && v[0] <= 'Z'))) {
        return 0;
    }
    while ((v[n] >= 'a' && v[n] <= 'z') || (v[n] >= 'A' && v[n] <= 'Z') ||
           (v[n] >= '0' && v[n] <= '9') || v[n] == '+' || v[n] == '-' ||
           v[n] == '.') {
        n++;
    }
    return strncmp(v + n, "://", 3) == 0 ? n : 0;
}

/* A URI with scheme `want` and something after "://". */
static bool is_uri(const char *v, size_t sl, const char *want)
{
    return sl == strlen(want) && strncmp(v, want, sl) == 0 && v[sl + 3] != '\0';
}

static bool is_choice(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p != '\0';) {
        const char *bar = strchr(p, '|');
        size_t k = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (k == n && strncmp(p, v, n) == 0) {
            return true;
        }
        p += k + (bar != NULL ? 1 : 0);
    }
    return false;
}

/*
 * Checks `v` against the key's type. Returns the value to store (malloc'ed;
 * bools become "true"/"false" so the runtime's stricter parser takes them),
 * or NULL when `v` does not have the key's form.
 */
static char *normalize(const eddy__setting_def_t *d, const char *v)
{
    int64_t i;
    for (const char *p = v; *p != '\0'; p++) {
        /* No key takes control characters; they would garble logs. */
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            return NULL;
        }
    }
    switch (d->sd_type) {
    case EDDY__SETTING_DURATION:
        if (eddy__parse_duration_ms(v, &i) != 0 || i < d->sd_min ||
            i > d->sd_max) {
            return NULL;
        }
        break;
    case EDDY__SETTING_INT:
    case EDDY__SETTING_PORT:
        if (!parse_i64(v, d->sd_min, d->sd_max, &i)) {
            return NULL;
        }
        break;
    case EDDY__SETTING_NUMBER: {
        char *end;
        if (!(*v == '-' || *v == '.' || (*v >= '0' && *v <= '9'))) {
            return NULL;
        }
        double x = strtod(v, &end);
        /* The negated comparison also rejects NaN. */
        if (*end != '\0' ||
            !(x >= (double)d->sd_min && x <= (double)d->sd_max)) {
            return NULL;
        }
        break;
    }
    case EDDY__SETTING_BOOL:
        if (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
            strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0) {
            return eddy__strdup("true");
        }
        if (strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 ||
            strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0) {
            return eddy__strdup("false");
        }
        return NULL;
    case EDDY__SETTING_ENUM:
        if (!is_choice(d->sd_choices, v)) {
            return NULL;
        }
        break;
    case EDDY__SETTING_PATH:
        if (*v == '\0' || scheme_len(v) > 0) {
            return NULL;
        }
        break;
    case EDDY__SETTING_URI_PATH: {
        size_t sl = scheme_len(v);
        if (*v == '\0' || (sl > 0 && !is_uri(v, sl, "file"))) {
            return NULL;
        }
        break;
    }
    case EDDY__SETTING_STORE: {
        size_t sl = scheme_len(v);
        if (*v == '\0' || (sl > 0 && !is_uri(v, sl, "postgresql") &&
                           !is_uri(v, sl, "postgres"))) {
            return NULL;
        }
        break;
    }
    case EDDY__SETTING_ID:
        if (strlen(v) != 32 || strspn(v, "0123456789abcdef") != 32) {
            return NULL;
        }
        break;
    case EDDY__SETTING_HOST: {
        /* Letters, digits, dots and dashes (names, IPv4), colons (IPv6)
         * and a zone after %; no brackets, ports or URIs. */
        size_t n = strlen(v);
        if (n == 0 || n > 253 || v[0] == '-' ||
            strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789.-:%") != n) {
            return NULL;
        }
        if (strchr(v, ':') != NULL) {
            /* Then an IPv6 address, so "host:port" is refused. */
            char a6[64];
            struct in6_addr in6;
            size_t al = strcspn(v, "%");
            if (al >= sizeof(a6)) {
                return NULL;
            }
            memcpy(a6, v, al);
            a6[al] = '\0';
            if (inet_pton(AF_INET6, a6, &in6) != 1) {
                return NULL;
            }
        } else if (strchr(v, '%') != NULL) {
            return NULL;
        }
        break;
    }
    }
    return eddy__strdup(v);
}

static int bad_value(eddy_error_t *err, const char *origin,
                     const eddy__setting_def_t *d, const char *v)
{
    char shown[SHOW_MAX * 4 + 8], want[200];
    return eddy_error_set(err, EDDY_ERR_INVALID,
                          "%s: bad value '%s' for %s: expected %s", origin,
                          show(v, shown, sizeof(shown)), d->sd_key,
                          expected(d, want, sizeof(want)));
}

/* ---- "did you mean" ---- */

/* Optimal string alignment distance: Levenshtein plus transpositions of
 * neighbours ("rset" → "rest" is one edit), the commonest typo. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t rows[3][KEY_MAX + 2];
    size_t *older = rows[0], *prev = rows[1], *cur = rows[2];
    if (la > KEY_MAX || lb > KEY_MAX) {
        return SIZE_MAX;
    }
    for (size_t j = 0; j <= lb; j++) {
        prev[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t v = prev[j - 1] + (a[i - 1] != b[j - 1]);
            v = EDDY_MIN(v, prev[j] + 1);
            v = EDDY_MIN(v, cur[j - 1] + 1);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                a[i - 2] == b[j - 1]) {
                v = EDDY_MIN(v, older[j - 2] + 1);
            }
            cur[j] = v;
        }
        size_t *t = older;
        older = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

static const char *last_part(const char *key)
{
    const char *dot = strrchr(key, '.');
    return dot != NULL ? dot + 1 : key;
}

/*
 * " (did you mean 'x'?)" for an unknown key, or "". First the closest key
 * within a few edits (typos); failing that, the keys whose last part is the
 * same ("interval" → checkpoint.interval or heartbeat.interval), which
 * catches a key put in the wrong section or written without its section.
 */
static void suggest(const char *key, char *buf, size_t size)
{
    size_t best = SIZE_MAX, limit = 1 + strlen(key) / 8;
    const char *match = NULL, *hits[3];
    size_t nhits = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NDEFS; i++) {
        size_t d = edit_distance(key, defs[i].sd_key);
        if (d < best) {
            best = d;
            match = defs[i].sd_key;
        }
    }
    if (match != NULL && best <= limit) {
        snprintf(buf, size, " (did you mean '%s'?)", match);
        return;
    }
    const char *last = last_part(key);
    for (size_t i = 0; i < NDEFS && nhits < 3 && *last != '\0'; i++) {
        if (strcmp(last_part(defs[i].sd_key), last) == 0) {
            hits[nhits++] = defs[i].sd_key;
        }
    }
    if (nhits == 1) {
        snprintf(buf, size, " (did you mean '%s'?)", hits[0]);
    } else if (nhits == 2) {
        snprintf(buf, size, " (did you mean '%s' or '%s'?)", hits[0], hits[1]);
    } else if (nhits == 3) {
        snprintf(buf, size, " (did you mean '%s', '%s' or '%s'?)", hits[0],
                 hits[1], hits[2]);
    }
}

static int unknown_key(eddy_error_t *err, const char *origin, const char *key)
{
    char hint[200], shown[SHOW_MAX * 4 + 8];
    suggest(key, hint, sizeof(hint));
    return eddy_error_set(err, EDDY_ERR_INVALID, "%s: unknown key '%s'%s",
                          origin, show(key, shown, sizeof(shown)), hint);
}

/* ---- batches: a layer's values, committed only when all are valid ---- */

typedef struct pending {
    size_t pd_idx;
    char *pd_value;
    char *pd_origin;
} pending_t;

typedef struct batch {
    pending_t *b_items;
    size_t b_n;
    size_t b_cap;
} batch_t;

static void batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->b_n; i++) {
        free(b->b_items[i].pd_value);
        free(b->b_items[i].pd_origin);
    }
    free(b->b_items);
    memset(b, 0, sizeof(*b));
}

/* Validates `v` for key `idx` and queues it; takes nothing on failure. */
static int batch_take(batch_t *b, size_t idx, const char *v, const char *origin,
                      eddy_error_t *err)
{
    char *norm = normalize(&defs[idx], v);
    if (norm == NULL) {
        return bad_value(err, origin, &defs[idx], v);
    }
    eddy__grow((void **)&b->b_items, &b->b_cap, b->b_n + 1,
               sizeof(*b->b_items));
    b->b_items[b->b_n].pd_idx = idx;
    b->b_items[b->b_n].pd_value = norm;
    b->b_items[b->b_n].pd_origin = eddy__strdup(origin);
    b->b_n++;
    return 0;
}

static void set_val(setting_val_t *sv, char *value, char *origin,
                    eddy__settings_layer_t layer)
{
    free(sv->sv_value);
    free(sv->sv_origin);
    sv->sv_value = value;
    sv->sv_origin = origin;
    sv->sv_layer = layer;
}

/* The defaults under data.dir follow it until they are set themselves. */
static void refresh_derived(eddy__settings_t *st)
{
    const char *dir = st->st_vals[find_index("data.dir")].sv_value;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') {
        n--; /* "/var/eddy/" + "/x" would double the slash */
    }
    for (size_t i = 0; i < NDEFS; i++) {
        if (defs[i].sd_in_data_dir &&
            st->st_vals[i].sv_layer == EDDY__LAYER_DEFAULT) {
            set_val(&st->st_vals[i],
                    xasprintf("%.*s%s%s", (int)n, dir,
                              dir[n - 1] == '/' ? "" : "/", defs[i].sd_default),
                    eddy__strdup("default"), EDDY__LAYER_DEFAULT);
        }
    }
}

/* A higher layer always wins, so loaders may run in any order. */
static void batch_commit(eddy__settings_t *st, batch_t *b,
                         eddy__settings_layer_t layer)
{
    for (size_t i = 0; i < b->b_n; i++) {
        pending_t *p = &b->b_items[i];
        setting_val_t *sv = &st->st_vals[p->pd_idx];
        if (layer >= sv->sv_layer) {
            set_val(sv, p->pd_value, p->pd_origin, layer);
        } else {
            free(p->pd_value);
            free(p->pd_origin);
        }
    }
    free(b->b_items);
    memset(b, 0, sizeof(*b));
    refresh_derived(st);
}

/* ---- the object ---- */

eddy__settings_t *eddy__settings_new(void)
{
    eddy__settings_t *st = eddy__calloc(1, sizeof(*st));
    for (size_t i = 0; i < NDEFS; i++) {
        const char *d = defs[i].sd_default;
        st->st_vals[i].sv_value =
            d != NULL && !defs[i].sd_in_data_dir ? eddy__strdup(d) : NULL;
        st->st_vals[i].sv_origin = eddy__strdup("default");
        st->st_vals[i].sv_layer = EDDY__LAYER_DEFAULT;
    }
    refresh_derived(st);
    return st;
}

void eddy__settings_destroy(eddy__settings_t *st)
{
    if (st == NULL) {
        return;
    }
    for (size_t i = 0; i < NDEFS; i++) {
        free(st->st_vals[i].sv_value);
        free(st->st_vals[i].sv_origin);
    }
    free(st);
}

/* ---- layer 3: environment ---- */

int eddy__settings_env_name(const char *key, char *buf, size_t size)
{
    size_t n = strlen(key);
    if (size < 5 + n + 1) {
        return EDDY_ERR_INVALID;
    }
    memcpy(buf, "EDDY_", 5);
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (c == '.' || c == '-') {
            c = '_';
        } else if (c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        buf[5 + i] = c;
    }
    buf[5 + n] = '\0';
    return 0;
}

static const char *env_lookup(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; *envp != NULL; envp++) {
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=') {
            return *envp + n + 1;
        }
    }
    return NULL;
}

int eddy__settings_load_env(eddy__settings_t *st, char *const *envp,
                            eddy_error_t *err)
{
    batch_t b = {0};
    char name[KEY_MAX + 8];
    if (envp == NULL) {
        envp = environ;
    }
    if (envp == NULL) {
        return 0; /* clearenv() leaves environ NULL */
    }
    for (size_t i = 0; i < NDEFS; i++) {
        int rc = eddy__settings_env_name(defs[i].sd_key, name, sizeof(name));
        const char *v = rc == 0 ? env_lookup(envp, name) : NULL;
        if (v != NULL && (rc = batch_take(&b, i, v, name, err)) != 0) {
            batch_free(&b);
            return rc;
        }
    }
    batch_commit(st, &b, EDDY__LAYER_ENV);
    return 0;
}

/* ---- layer 4: flags ---- */

int eddy__settings_load_flags(eddy__settings_t *st,
                              const eddy__setting_kv_t *flags, size_t n,
                              eddy_error_t *err)
{
    batch_t b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const eddy__setting_kv_t *kv = &flags[i];
        if (kv->kv_key == NULL || kv->kv_value == NULL) {
            rc = eddy_error_set(err, EDDY_ERR_INVALID,
                                "%s: missing key or value",
                                kv->kv_flag != NULL ? kv->kv_flag : "-D");
            break;
        }
        char *origin = kv->kv_flag != NULL ? eddy__strdup(kv->kv_flag)
                                           : xasprintf("-D %s", kv->kv_key);
        size_t idx = find_index(kv->kv_key);
        rc = idx == NO_INDEX ? unknown_key(err, origin, kv->kv_key)
                             : batch_take(&b, idx, kv->kv_value, origin, err);
        free(origin);
    }
    if (rc != 0) {
        batch_free(&b);
        return rc;
    }
    batch_commit(st, &b, EDDY__LAYER_FLAG);
    return 0;
}

/* ---- layer 2: the YAML file ---- */

typedef enum ent_kind {
    ENT_VALUE,   /* key: scalar */
    ENT_NULL,    /* key: (nothing), ~ or null */
    ENT_SECTION, /* key: mapping */
    ENT_LIST,    /* key: sequence */
} ent_kind_t;

typedef struct yentry {
    char *ye_path;  /* dotted: "checkpoint.interval" */
    char *ye_value; /* ENT_VALUE only */
    ent_kind_t ye_kind;
    size_t ye_children; /* ENT_SECTION: its keys */
    yaml_mark_t ye_key; /* where the key is */
    yaml_mark_t ye_val; /* where the value is */
} yentry_t;

/* An open mapping. */
typedef struct yframe {
    const char *yf_prefix; /* its path; "" at the top */
    size_t yf_section;     /* its entry; NO_INDEX at the top */
    char *yf_path;         /* the key awaiting a value, or NULL */
    yaml_mark_t yf_key;
} yframe_t;

typedef struct yload {
    const char *yl_file;
    const unsigned char *yl_buf;
    size_t yl_len;
    yentry_t *yl_ents;
    size_t yl_n;
    size_t yl_cap;
    yframe_t yl_frames[YAML_MAX_DEPTH];
    int yl_depth; /* open mappings */
    int yl_skip;  /* open collections of a list being skipped */
    int yl_docs;
    eddy_error_t *yl_err;
} yload_t;

static int yerr(yload_t *yl, int code, yaml_mark_t m, const char *fmt, ...)
    EDDY_PRINTF_LIKE(4, 5);

static int yerr(yload_t *yl, int code, yaml_mark_t m, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return eddy_error_set(yl->yl_err, code, "%s:%zu:%zu: %s", yl->yl_file,
                          m.line + 1, m.column + 1, msg);
}

static char *yorigin(const yload_t *yl, yaml_mark_t m)
{
    return xasprintf("%s:%zu:%zu", yl->yl_file, m.line + 1, m.column + 1);
}

static void yload_free(yload_t *yl)
{
    for (int i = 0; i < yl->yl_depth; i++) {
        free(yl->yl_frames[i].yf_path);
    }
    for (size_t i = 0; i < yl->yl_n; i++) {
        free(yl->yl_ents[i].ye_path);
        free(yl->yl_ents[i].ye_value);
    }
    free(yl->yl_ents);
}

/* Is the line break at p[0] one libyaml counts (LF, CRLF as one, CR)? */
static size_t line_break(const unsigned char *p, const unsigned char *end)
{
    if (*p == '\n') {
        return 1;
    }
    if (*p == '\r') {
        return p + 1 < end && p[1] == '\n' ? 2 : 1;
    }
    return 0;
}

/* libyaml gives reader errors (bad UTF-8, control characters) as a byte
 * offset; turn it into a line and a column counted in characters. */
static yaml_mark_t mark_at(const yload_t *yl, size_t offset)
{
    yaml_mark_t m = {0, 0, 0};
    const unsigned char *p = yl->yl_buf, *end = yl->yl_buf + yl->yl_len;
    const unsigned char *stop = yl->yl_buf + EDDY_MIN(offset, yl->yl_len);
    while (p < stop) {
        size_t br = line_break(p, end);
        if (br > 0) {
            m.line++;
            m.column = 0;
            p += br;
        } else {
            m.column += (*p & 0xc0) != 0x80;
            p++;
        }
    }
    return m;
}

/* The byte where libyaml's mark points, or -1 past the end. */
static int byte_at(const yload_t *yl, yaml_mark_t m)
{
    const unsigned char *p = yl->yl_buf, *end = yl->yl_buf + yl->yl_len;
    for (size_t line = 0; line < m.line && p < end;) {
        size_t br = line_break(p, end);
        line += br > 0;
        p += br > 0 ? br : 1;
    }
    for (size_t col = 0; p < end; p++) {
        if ((*p & 0xc0) != 0x80 && col++ == m.column) {
            return *p;
        }
    }
    return -1;
}

static int yaml_syntax_error(yload_t *yl, const yaml_parser_t *p)
{
    yaml_mark_t m = p->problem_mark;
    const char *problem = p->problem != NULL ? p->problem : "parse error";
    const char *hint = "";
    if (p->error == YAML_MEMORY_ERROR) {
        return eddy_error_set(yl->yl_err, EDDY_ERR_NOMEM,
                              "%s: out of memory while parsing", yl->yl_file);
    }
    if (p->error == YAML_READER_ERROR) {
        m = mark_at(yl, p->problem_offset);
        if (strstr(problem, "UTF-8") != NULL) {
            hint = " (the file must be UTF-8 text)";
        }
    } else if (byte_at(yl, m) == '\t') {
        /* libyaml says "found character that cannot start any token" or
         * "found a tab character that violates indentation". */
        return yerr(yl, EDDY_ERR_FORMAT, m,
                    "tab character in indentation: indent with spaces");
    } else if (strcmp(problem, "could not find expected ':'") == 0) {
        /* The problem mark is past the line; the key lacking its colon is
         * where the scan started. */
        m = p->context_mark;
        hint = " (each line must be 'key: value')";
    } else if (strcmp(problem, "mapping values are not allowed in this "
                               "context") == 0) {
        hint = " (check the indentation; quote values that contain ': ')";
    } else if (strcmp(problem, "did not find expected key") == 0) {
        hint = " (check the indentation)";
    }
    return yerr(yl, EDDY_ERR_FORMAT, m, "invalid YAML: %s%s", problem, hint);
}

static bool is_null_scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (ev->data.scalar.length == 0 || strcmp(v, "~") == 0 ||
            strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
            strcmp(v, "NULL") == 0);
}

static int push_frame(yload_t *yl, const char *prefix, size_t section,
                      yaml_mark_t m)
{
    if (yl->yl_depth == YAML_MAX_DEPTH) {
        return yerr(yl, EDDY_ERR_FORMAT, m, "nested more than %d levels deep",
                    YAML_MAX_DEPTH);
    }
    yframe_t *f = &yl->yl_frames[yl->yl_depth++];
    f->yf_prefix = prefix;
    f->yf_section = section;
    f->yf_path = NULL;
    return 0;
}

/* A scalar, mapping or sequence: the document's top, a key or a value. */
static int on_node(yload_t *yl, const yaml_event_t *ev)
{
    yframe_t *f = yl->yl_depth > 0 ? &yl->yl_frames[yl->yl_depth - 1] : NULL;
    bool scalar = ev->type == YAML_SCALAR_EVENT;
    if (scalar &&
        strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
        return yerr(yl, EDDY_ERR_FORMAT, ev->start_mark,
                    "a NUL character (\\0) is not allowed");
    }
    if (f == NULL) {
        if (ev->type == YAML_MAPPING_START_EVENT) {
            return push_frame(yl, "", NO_INDEX, ev->start_mark);
        }
        if (scalar && is_null_scalar(ev)) {
            return 0; /* an empty document */
        }
        return yerr(yl, EDDY_ERR_FORMAT, ev->start_mark,
                    "the top level must be a mapping of keys to values "
                    "('key: value' lines)");
    }
    if (f->yf_path == NULL) {
        if (!scalar) {
            return yerr(yl, EDDY_ERR_FORMAT, ev->start_mark,
                        "a key must be a string, not a list or mapping");
        }
        const char *key = (const char *)ev->data.scalar.value;
        size_t n = strlen(f->yf_prefix) + 1 + strlen(key);
        if (n > KEY_MAX) {
            return yerr(yl, EDDY_ERR_FORMAT, ev->start_mark,
                        "key longer than %d characters", KEY_MAX);
        }
        f->yf_path = f->yf_prefix[0] != '\0'
                         ? xasprintf("%s.%s", f->yf_prefix, key)
                         : eddy__strdup(key);
        f->yf_key = ev->start_mark;
        return 0;
    }
    if (yl->yl_n == YAML_MAX_ENTRIES) {
        return yerr(yl, EDDY_ERR_FORMAT, f->yf_key, "more than %d keys",
                    YAML_MAX_ENTRIES);
    }
    eddy__grow((void **)&yl->yl_ents, &yl->yl_cap, yl->yl_n + 1,
               sizeof(*yl->yl_ents));
    size_t idx = yl->yl_n++;
    yentry_t *e = &yl->yl_ents[idx];
    memset(e, 0, sizeof(*e));
    e->ye_path = f->yf_path;
    e->ye_key = f->yf_key;
    e->ye_val = ev->start_mark;
    f->yf_path = NULL;
    if (f->yf_section != NO_INDEX) {
        yl->yl_ents[f->yf_section].ye_children++;
    }
    if (ev->type == YAML_MAPPING_START_EVENT) {
        e->ye_kind = ENT_SECTION;
        return push_frame(yl, e->ye_path, idx, ev->start_mark);
    }
    if (ev->type == YAML_SEQUENCE_START_EVENT) {
        e->ye_kind = ENT_LIST;
        if (yl->yl_depth == YAML_MAX_DEPTH) {
            return yerr(yl, EDDY_ERR_FORMAT, ev->start_mark,
                        "nested more than %d levels deep", YAML_MAX_DEPTH);
        }
        yl->yl_skip = 1; /* judged in the second pass; skip its items */
        return 0;
    }
    if (is_null_scalar(ev)) {
        e->ye_kind = ENT_NULL;
    } else {
        e->ye_kind = ENT_VALUE;
        e->ye_value = eddy__strdup((const char *)ev->data.scalar.value);
    }
    return 0;
}

static int on_event(yload_t *yl, const yaml_event_t *ev)
{
    const yaml_char_t *anchor = NULL;
    bool opens = ev->type == YAML_MAPPING_START_EVENT ||
                 ev->type == YAML_SEQUENCE_START_EVENT;
    bool closes = ev->type == YAML_MAPPING_END_EVENT ||
                  ev->type == YAML_SEQUENCE_END_EVENT;
    if (ev->type == YAML_SCALAR_EVENT) {
        anchor = ev->data.scalar.anchor;
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        anchor = ev->data.mapping_start.anchor;
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        anchor = ev->data.sequence_start.anchor;
    }
    /* Configuration never needs them, and refusing the first anchor makes
     * "billion laughs" expansion impossible. */
    if (ev->type == YAML_ALIAS_EVENT || anchor != NULL) {
        return yerr(yl, EDDY_ERR_FORMAT, ev->start_mark,
                    "anchors and aliases (&name, *name) are not supported");
    }
    if (yl->yl_skip > 0) {
        if (opens && yl->yl_depth + ++yl->yl_skip > YAML_MAX_DEPTH) {
            return yerr(yl, EDDY_ERR_FORMAT, ev->start_mark,
                        "nested more than %d levels deep", YAML_MAX_DEPTH);
        }
        yl->yl_skip -= closes;
        return 0;
    }
    if (ev->type == YAML_DOCUMENT_START_EVENT && ++yl->yl_docs > 1) {
        return yerr(yl, EDDY_ERR_FORMAT, ev->start_mark,
                    "a second YAML document ('---'): put every key in one");
    }
    if (ev->type == YAML_MAPPING_END_EVENT) {
        yl->yl_depth--;
        return 0;
    }
    if (opens || ev->type == YAML_SCALAR_EVENT) {
        return on_node(yl, ev);
    }
    return 0;
}

static int cmp_entry_path(const void *a, const void *b)
{
    const yentry_t *x = *(const yentry_t *const *)a;
    const yentry_t *y = *(const yentry_t *const *)b;
    int c = strcmp(x->ye_path, y->ye_path);
    /* Ties in file order: the entries live in one array. */
    return c != 0 ? c : (x < y ? -1 : x > y);
}

/* Two entries with one dotted path: a key repeated in a mapping, or set
 * both nested and dotted. Reports the repeat nearest the top of the file. */
static int check_duplicates(yload_t *yl)
{
    const yentry_t *dup = NULL, *first = NULL;
    if (yl->yl_n < 2) {
        return 0;
    }
    yentry_t **by = eddy__malloc(yl->yl_n * sizeof(*by));
    for (size_t i = 0; i < yl->yl_n; i++) {
        by[i] = &yl->yl_ents[i];
    }
    qsort(by, yl->yl_n, sizeof(*by), cmp_entry_path);
    for (size_t i = 1; i < yl->yl_n; i++) {
        bool starts =
            i == 1 || strcmp(by[i - 1]->ye_path, by[i - 2]->ye_path) != 0;
        if (starts && strcmp(by[i]->ye_path, by[i - 1]->ye_path) == 0 &&
            (dup == NULL || by[i] < dup)) {
            dup = by[i];
            first = by[i - 1];
        }
    }
    free(by);
    if (dup == NULL) {
        return 0;
    }
    return yerr(yl, EDDY_ERR_FORMAT, dup->ye_key,
                "duplicate key '%s' (first set at line %zu, column %zu)",
                dup->ye_path, first->ye_key.line + 1, first->ye_key.column + 1);
}

/* The second pass: every entry in file order against the key table. */
static int check_entries(yload_t *yl, batch_t *b)
{
    char want[200];
    for (size_t i = 0; i < yl->yl_n; i++) {
        const yentry_t *e = &yl->yl_ents[i];
        size_t idx = find_index(e->ye_path);
        const eddy__setting_def_t *d = idx != NO_INDEX ? &defs[idx] : NULL;
        const char *member = section_member(e->ye_path);
        int rc = 0;
        char *origin = NULL;
        if (d != NULL && e->ye_kind == ENT_VALUE) {
            origin = yorigin(yl, e->ye_val);
            rc = batch_take(b, idx, e->ye_value, origin, yl->yl_err);
        } else if (d != NULL && e->ye_kind == ENT_NULL) {
            rc = yerr(yl, EDDY_ERR_INVALID, e->ye_key,
                      "no value for %s: expected %s", d->sd_key,
                      expected(d, want, sizeof(want)));
        } else if (d != NULL) {
            rc = yerr(yl, EDDY_ERR_INVALID, e->ye_val,
                      "%s takes a single value, not a %s: expected %s",
                      d->sd_key, e->ye_kind == ENT_LIST ? "list" : "mapping",
                      expected(d, want, sizeof(want)));
        } else if (member != NULL) {
            if (e->ye_kind == ENT_VALUE || e->ye_kind == ENT_LIST) {
                rc = yerr(yl, EDDY_ERR_INVALID, e->ye_key,
                          "'%s' is a section, not a key: expected a mapping "
                          "of its keys (such as '%s')",
                          e->ye_path, member);
            }
            /* A section, possibly empty ("checkpoint:" with every key
             * commented out). */
        } else if (e->ye_kind != ENT_SECTION || e->ye_children == 0) {
            /* An unknown section's keys are reported with their full
             * names, which makes the better suggestion. */
            origin = yorigin(yl, e->ye_key);
            rc = unknown_key(yl->yl_err, origin, e->ye_path);
        }
        free(origin);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Reads at most EDDY__SETTINGS_FILE_MAX bytes; a bigger file is an error
 * before any parsing. */
static int read_file(const char *path, unsigned char **out, size_t *len,
                     eddy_error_t *err)
{
    size_t cap = EDDY__SETTINGS_FILE_MAX + 1, n = 0;
    unsigned char *buf = NULL;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        goto fail_errno;
    }
    buf = eddy__malloc(cap);
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            goto fail_errno;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    if (n > EDDY__SETTINGS_FILE_MAX) {
        rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                            "%s: too large: a configuration file holds at "
                            "most %d bytes (1 MiB)",
                            path, EDDY__SETTINGS_FILE_MAX);
        goto out;
    }
    *out = buf;
    *len = n;
    buf = NULL;
    goto out;
fail_errno : {
    int e = errno;
    rc = eddy_error_set(err, e == ENOENT ? EDDY_ERR_NOT_FOUND : EDDY_ERR_IO,
                        "%s: cannot read the configuration file: %s", path,
                        strerror(e));
    if (err != NULL) {
        err->sys_errno = e;
    }
}
out:
    free(buf);
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

int eddy__settings_load_file(eddy__settings_t *st, const char *path,
                             eddy_error_t *err)
{
    yload_t yl;
    yaml_parser_t parser;
    bool parser_ready = false;
    unsigned char *buf = NULL;
    size_t len = 0;
    batch_t b = {0};
    memset(&yl, 0, sizeof(yl));
    int rc = read_file(path, &buf, &len, err);
    if (rc != 0) {
        goto out;
    }
    yl.yl_file = path;
    yl.yl_buf = buf;
    yl.yl_len = len;
    yl.yl_err = err;
    if (!yaml_parser_initialize(&parser)) {
        rc = eddy_error_set(err, EDDY_ERR_NOMEM,
                            "%s: out of memory while parsing", path);
        goto out;
    }
    parser_ready = true;
    yaml_parser_set_input_string(&parser, buf, len);
    /* Positions in messages count UTF-8 characters; a UTF-16 file is an
     * encoding error rather than a silently different column count. */
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = yaml_syntax_error(&yl, &parser);
            break;
        }
        rc = on_event(&yl, &ev);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    if (rc == 0) {
        rc = check_duplicates(&yl);
    }
    if (rc == 0) {
        rc = check_entries(&yl, &b);
    }
    if (rc == 0) {
        batch_commit(st, &b, EDDY__LAYER_FILE);
    }
out:
    batch_free(&b);
    if (parser_ready) {
        yaml_parser_delete(&parser);
    }
    yload_free(&yl);
    free(buf);
    return rc;
}

/* ---- everything, and rules across keys ---- */

int eddy__settings_check(const eddy__settings_t *st, eddy_error_t *err)
{
    size_t hi = find_index("heartbeat.interval");
    size_t ht = find_index("heartbeat.timeout");
    size_t rest = find_index("rest.port"), rpc = find_index("rpc.port");
    const setting_val_t *v = st->st_vals;
    /* A timeout within one interval declares every TaskManager lost
     * between two of its heartbeats. */
    if (eddy__settings_get_ms(st, "heartbeat.timeout") <=
        eddy__settings_get_ms(st, "heartbeat.interval")) {
        return eddy_error_set(
            err, EDDY_ERR_INVALID,
            "heartbeat.timeout (%s, from %s) must be longer than "
            "heartbeat.interval (%s, from %s)",
            v[ht].sv_value, v[ht].sv_origin, v[hi].sv_value, v[hi].sv_origin);
    }
    if (eddy__settings_get_int(st, "rest.port") ==
        eddy__settings_get_int(st, "rpc.port")) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "rest.port (from %s) and rpc.port (from %s) are "
                              "both %s: they must differ",
                              v[rest].sv_origin, v[rpc].sv_origin,
                              v[rest].sv_value);
    }
    return 0;
}

int eddy__settings_load(eddy__settings_t *st, const char *path,
                        char *const *envp, const eddy__setting_kv_t *flags,
                        size_t nflags, eddy_error_t *err)
{
    int rc = 0;
    if (path != NULL) {
        rc = eddy__settings_load_file(st, path, err);
    }
    if (rc == 0) {
        rc = eddy__settings_load_env(st, envp, err);
    }
    if (rc == 0) {
        rc = eddy__settings_load_flags(st, flags, nflags, err);
    }
    if (rc == 0) {
        rc = eddy__settings_check(st, err);
    }
    return rc;
}

int eddy__settings_apply_job(const eddy__settings_t *st, struct eddy__config *c,
                             eddy_error_t *err)
{
    bool dir_set =
        st->st_vals[find_index("data.dir")].sv_layer > EDDY__LAYER_DEFAULT;
    for (size_t i = 0; i < NDEFS; i++) {
        const setting_val_t *v = &st->st_vals[i];
        bool user = v->sv_layer > EDDY__LAYER_DEFAULT ||
                    (defs[i].sd_in_data_dir && dir_set);
        if (!defs[i].sd_job || v->sv_value == NULL || !user) {
            continue;
        }
        eddy_error_t e;
        eddy_error_clear(&e);
        int rc = eddy__config_set(c, defs[i].sd_key, v->sv_value, &e);
        if (rc != 0) {
            return eddy_error_set(err, rc, "%s: %s", v->sv_origin, e.msg);
        }
    }
    return 0;
}

/* ---- getters ---- */

#define TYPE_BIT(t) (1u << EDDY__SETTING_##t)
#define ANY_TYPE (~0u)

/* The value of `key`, which must exist, be of one of `types` and (unless
 * any type is allowed) be set: anything else is a bug in the caller. */
static const setting_val_t *lookup(const eddy__settings_t *st, const char *key,
                                   unsigned types, const char *getter)
{
    size_t i = key != NULL ? find_index(key) : NO_INDEX;
    const char *why = NULL;
    if (i == NO_INDEX) {
        why = "no such key";
    } else if ((types & (1u << defs[i].sd_type)) == 0) {
        why = "wrong type for this getter";
    } else if (types != ANY_TYPE && st->st_vals[i].sv_value == NULL) {
        why = "the key has no value";
    }
    if (why != NULL) {
        fprintf(stderr, "eddy: BUG: %s(\"%s\"): %s\n", getter,
                key != NULL ? key : "(null)", why);
        abort();
    }
    return &st->st_vals[i];
}

const char *eddy__settings_get_str(const eddy__settings_t *st, const char *key)
{
    return lookup(st, key, ANY_TYPE, __func__)->sv_value;
}

int64_t eddy__settings_get_ms(const eddy__settings_t *st, const char *key)
{
    int64_t ms = 0;
    eddy__parse_duration_ms(
        lookup(st, key, TYPE_BIT(DURATION), __func__)->sv_value, &ms);
    return ms;
}

int eddy__settings_get_int(const eddy__settings_t *st, const char *key)
{
    const char *v =
        lookup(st, key, TYPE_BIT(INT) | TYPE_BIT(PORT), __func__)->sv_value;
    return (int)strtol(v, NULL, 10);
}

bool eddy__settings_get_bool(const eddy__settings_t *st, const char *key)
{
    return strcmp(lookup(st, key, TYPE_BIT(BOOL), __func__)->sv_value,
                  "true") == 0;
}

const char *eddy__settings_origin(const eddy__settings_t *st, const char *key)
{
    return lookup(st, key, ANY_TYPE, __func__)->sv_origin;
}

eddy__settings_layer_t eddy__settings_layer(const eddy__settings_t *st,
                                            const char *key)
{
    return lookup(st, key, ANY_TYPE, __func__)->sv_layer;
}

/* ---- the reference ---- */

void eddy__settings_write_reference(FILE *out)
{
    char want[200], env[KEY_MAX + 8];
    fprintf(out, "| Key | Default | Accepts | Variable | Scope | Meaning |\n"
                 "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < NDEFS; i++) {
        const eddy__setting_def_t *d = &defs[i];
        eddy__settings_env_name(d->sd_key, env, sizeof(env));
        fprintf(out, "| `%s` | ", d->sd_key);
        if (d->sd_default == NULL) {
            fprintf(out, "unset");
        } else if (d->sd_in_data_dir) {
            fprintf(out, "`<data.dir>/%s`", d->sd_default);
        } else {
            fprintf(out, "`%s`", d->sd_default);
        }
        fprintf(out, " | %s | `%s` | %s | %s |\n",
                expected(d, want, sizeof(want)), env,
                d->sd_job ? "job" : "process", d->sd_doc);
    }
}
