/*
 * eddy — the metadata store's backend-independent half: job states and
 * their transitions, argument checks, text hygiene, and dispatch to the
 * backend that `metadata.store` names.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Every argument is checked here, before any backend sees it, so that the
 * SQLite and (later) PostgreSQL backends accept exactly the same inputs and
 * report the same errors for bad ones.
 */
#include <jansson.h>

#include "meta/meta_store.h"

/* ---- job states ---- */

static const char *const state_names[] = {
#define XX(name) #name,
    EDDY__JOB_STATE_MAP(XX)
#undef XX
};

const char *eddy__job_state_name(eddy__job_state_t st)
{
    if ((unsigned)st >= EDDY__JOB_STATE_COUNT) {
        return NULL;
    }
    return state_names[st];
}

int eddy__job_state_parse(const char *name, eddy__job_state_t *out)
{
    for (int i = 0; i < EDDY__JOB_STATE_COUNT; i++) {
        if (name != NULL && strcmp(name, state_names[i]) == 0) {
            *out = (eddy__job_state_t)i;
            return 0;
        }
    }
    return EDDY_ERR_INVALID;
}

bool eddy__job_state_terminal(eddy__job_state_t st)
{
    return st == EDDY__JOB_CANCELED || st == EDDY__JOB_FINISHED ||
           st == EDDY__JOB_FAILED;
}

/* Row: from; bits: the states it may go to. */
static const unsigned transitions[EDDY__JOB_STATE_COUNT] = {
    [EDDY__JOB_CREATED] = EDDY__JOB_MASK(RUNNING) | EDDY__JOB_MASK(FAILING) |
                          EDDY__JOB_MASK(CANCELLING) |
                          EDDY__JOB_MASK(CANCELED) | EDDY__JOB_MASK(FAILED),
    [EDDY__JOB_RUNNING] = EDDY__JOB_MASK(FINISHED) | EDDY__JOB_MASK(FAILING) |
                          EDDY__JOB_MASK(RESTARTING) |
                          EDDY__JOB_MASK(CANCELLING),
    [EDDY__JOB_FAILING] = EDDY__JOB_MASK(RESTARTING) |
                          EDDY__JOB_MASK(CANCELLING) | EDDY__JOB_MASK(FAILED),
    [EDDY__JOB_RESTARTING] = EDDY__JOB_MASK(RUNNING) | EDDY__JOB_MASK(FAILING) |
                             EDDY__JOB_MASK(CANCELLING) |
                             EDDY__JOB_MASK(CANCELED) | EDDY__JOB_MASK(FAILED),
    [EDDY__JOB_CANCELLING] = EDDY__JOB_MASK(CANCELED) |
                             EDDY__JOB_MASK(FINISHED) | EDDY__JOB_MASK(FAILED),
};

bool eddy__job_state_transition_ok(eddy__job_state_t from, eddy__job_state_t to)
{
    if ((unsigned)from >= EDDY__JOB_STATE_COUNT ||
        (unsigned)to >= EDDY__JOB_STATE_COUNT) {
        return false;
    }
    return (transitions[from] & (1u << to)) != 0;
}

const char *eddy__savepoint_status_name(eddy__savepoint_status_t s)
{
    switch (s) {
    case EDDY__SAVEPOINT_IN_PROGRESS:
        return "IN_PROGRESS";
    case EDDY__SAVEPOINT_COMPLETED:
        return "COMPLETED";
    case EDDY__SAVEPOINT_FAILED:
        return "FAILED";
    }
    return NULL;
}

/* ---- UTF-8 ---- */

/* Length of the well-formed UTF-8 sequence at s (at most `left` bytes),
 * or 0 if it is not one (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) {
            lo = 0xa0; /* overlong below U+0800 */
        } else if (c == 0xed) {
            hi = 0x9f; /* surrogates U+D800..U+DFFF */
        }
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) {
            lo = 0x90; /* overlong below U+10000 */
        } else if (c == 0xf4) {
            hi = 0x8f; /* above U+10FFFF */
        }
    } else {
        return 0;
    }
    if (left < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

bool eddy__meta_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

char *eddy__meta_text_clean(const char *s, size_t max)
{
    static const char repl[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    /* Each invalid byte becomes 3 bytes at most. */
    size_t cap = EDDY_MIN(len, max) * 3 + 1;
    char *out = eddy__malloc(cap);
    size_t o = 0, i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        const char *src = (const char *)p + i;
        size_t srclen = n;
        if (n == 0) {
            src = repl;
            srclen = 3;
            n = 1;
        }
        if (o + srclen > max || o + srclen >= cap) {
            break; /* cut before a character that does not fit */
        }
        memcpy(out + o, src, srclen);
        o += srclen;
        i += n;
    }
    out[o] = '\0';
    return out;
}

/* ---- argument checks ---- */

static bool is_lower_hex(const char *s, size_t want)
{
    if (s == NULL || strlen(s) != want) {
        return false;
    }
    for (size_t i = 0; i < want; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int check_job_id(const char *id, eddy_error_t *err)
{
    if (!is_lower_hex(id, 32)) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "bad job id '%.40s%s': expected 32 lowercase hex "
                              "characters",
                              id != NULL ? id : "(null)",
                              id != NULL && strlen(id) > 40 ? "..." : "");
    }
    return 0;
}

/* A required (or optional, when !required) identifier-like string: a name
 * or a path. Too long or not UTF-8 is refused, not repaired, because these
 * are keys and locations that must be stored exactly. */
static int check_text(const char *what, const char *s, size_t max,
                      bool required, eddy_error_t *err)
{
    if (s == NULL) {
        return required ? eddy_error_set(err, EDDY_ERR_INVALID, "%s is missing",
                                         what)
                        : 0;
    }
    size_t len = strlen(s);
    if (len == 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "%s is empty", what);
    }
    if (len > max) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "%s is %zu bytes long; the limit is %zu bytes",
                              what, len, max);
    }
    if (!eddy__meta_utf8_valid(s, len)) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "%s is not valid UTF-8",
                              what);
    }
    return 0;
}

static int check_args(const char *args, eddy_error_t *err)
{
    if (args == NULL) {
        return 0;
    }
    size_t len = strlen(args);
    if (len > EDDY__META_ARGS_MAX) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "program arguments are %zu bytes of JSON; the "
                              "limit is %u bytes",
                              len, EDDY__META_ARGS_MAX);
    }
    json_error_t jerr;
    json_t *j = json_loadb(args, len, 0, &jerr);
    if (j == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "program arguments are not valid JSON: %s "
                              "(at byte %d)",
                              jerr.text, jerr.position);
    }
    int rc = 0;
    if (!json_is_array(j)) {
        rc = eddy_error_set(err, EDDY_ERR_INVALID,
                            "program arguments must be a JSON array of "
                            "strings");
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (!json_is_string(v)) {
                rc = eddy_error_set(err, EDDY_ERR_INVALID,
                                    "program argument %zu is not a string", i);
                break;
            }
        }
    }
    json_decref(j);
    return rc;
}

static int check_request_id(const char *id, eddy_error_t *err)
{
    size_t len = id != NULL ? strlen(id) : 0;
    bool ok = len > 0 && len <= EDDY__META_REQUEST_ID_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        char c = id[i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
             (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
    }
    if (!ok) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "bad savepoint request id: expected 1 to %d "
                              "characters of [0-9A-Za-z_-]",
                              EDDY__META_REQUEST_ID_MAX);
    }
    return 0;
}

static int check_list_out(void *out, size_t *n, eddy_error_t *err)
{
    if (out == NULL || n == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no output given");
    }
    return 0;
}

/* ---- lifecycle ---- */

static int64_t realtime_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void eddy__meta_options_init(eddy__meta_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->mo_busy_timeout_ms = 5000;
    o->mo_exception_history = 100;
    o->mo_transition_history = 1000;
    o->mo_savepoint_history = 100;
    o->mo_clock_ms = realtime_ms;
}

int eddy__meta_open(const char *store, const eddy__meta_options_t *opts,
                    eddy__meta_t **out, eddy_error_t *err)
{
    if (store == NULL || *store == '\0' || out == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "metadata.store is empty: give a SQLite file "
                              "path");
    }
    *out = NULL;
    if (strncmp(store, "postgresql://", 13) == 0 ||
        strncmp(store, "postgres://", 11) == 0) {
        return eddy_error_set(err, EDDY_ERR_UNSUPPORTED,
                              "this eddy has no PostgreSQL metadata store: "
                              "set metadata.store to a SQLite file path");
    }
    return eddy__meta_sqlite_open(store, opts, out, err);
}

void eddy__meta_close(eddy__meta_t *m)
{
    if (m != NULL) {
        m->m_ops->mo_close(m);
    }
}

const char *eddy__meta_backend_name(const eddy__meta_t *m)
{
    return m->m_ops->mo_name;
}

void eddy__meta_free(void *record)
{
    eddy__free(record);
}

void eddy__meta_free_array(void *array, size_t n)
{
    void **v = array;
    for (size_t i = 0; i < n; i++) {
        eddy__free(v[i]);
    }
    eddy__free(v);
}

/* ---- jobs ---- */

int eddy__meta_job_create(eddy__meta_t *m, const eddy__meta_job_spec_t *spec,
                          eddy_error_t *err)
{
    int rc;
    if (spec == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no job given");
    }
    if ((rc = check_job_id(spec->js_id, err)) != 0 ||
        (rc = check_text("job name", spec->js_name, EDDY__META_NAME_MAX, true,
                         err)) != 0 ||
        (rc = check_text("artifact path", spec->js_artifact_path,
                         EDDY__META_PATH_MAX, true, err)) != 0 ||
        (rc = check_text("savepoint path", spec->js_savepoint_path,
                         EDDY__META_PATH_MAX, false, err)) != 0 ||
        (rc = check_args(spec->js_args, err)) != 0) {
        return rc;
    }
    if (spec->js_artifact_sha256 != NULL &&
        !is_lower_hex(spec->js_artifact_sha256, 64)) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "bad artifact SHA-256: expected 64 lowercase "
                              "hex characters");
    }
    if (spec->js_artifact_size < 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "artifact size %lld is negative",
                              (long long)spec->js_artifact_size);
    }
    if (spec->js_parallelism < 1 ||
        spec->js_parallelism > EDDY__META_PARALLELISM_MAX) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "parallelism %d is out of range 1..%d",
                              spec->js_parallelism, EDDY__META_PARALLELISM_MAX);
    }
    if (spec->js_checkpoint_interval_ms < 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "checkpoint interval %lld ms is negative",
                              (long long)spec->js_checkpoint_interval_ms);
    }
    eddy__meta_job_spec_t s = *spec;
    if (s.js_args == NULL) {
        s.js_args = "[]";
    }
    return m->m_ops->mo_job_create(m, &s, err);
}

int eddy__meta_job_set_state(eddy__meta_t *m, const char *job_id,
                             eddy__job_state_t to, const char *reason,
                             eddy__job_state_t *prev, eddy_error_t *err)
{
    int rc = check_job_id(job_id, err);
    if (rc != 0) {
        return rc;
    }
    if ((unsigned)to >= EDDY__JOB_STATE_COUNT) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "bad job state %d",
                              (int)to);
    }
    char *clean = eddy__meta_text_clean(reason != NULL ? reason : "",
                                        EDDY__META_REASON_MAX);
    rc = m->m_ops->mo_job_set_state(m, job_id, to, clean, prev, err);
    eddy__free(clean);
    return rc;
}

int eddy__meta_job_get(eddy__meta_t *m, const char *job_id,
                       eddy__meta_job_t **out, eddy_error_t *err)
{
    int rc = check_job_id(job_id, err);
    if (rc != 0) {
        return rc;
    }
    if (out == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no output given");
    }
    *out = NULL;
    return m->m_ops->mo_job_get(m, job_id, out, err);
}

int eddy__meta_job_list(eddy__meta_t *m, const eddy__meta_job_filter_t *f,
                        eddy__meta_job_t ***out, size_t *n, eddy_error_t *err)
{
    int rc = check_list_out(out, n, err);
    if (rc != 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    eddy__meta_job_filter_t all = {0};
    if (f == NULL) {
        f = &all;
    }
    if (f->jf_limit < 0 || f->jf_offset < 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "negative limit or offset in a job filter");
    }
    if ((f->jf_states >> EDDY__JOB_STATE_COUNT) != 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "job filter names unknown states (mask %#x)",
                              f->jf_states);
    }
    return m->m_ops->mo_job_list(m, f, false, out, n, err);
}

int eddy__meta_jobs_to_resume(eddy__meta_t *m, eddy__meta_job_t ***out,
                              size_t *n, eddy_error_t *err)
{
    int rc = check_list_out(out, n, err);
    if (rc != 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    eddy__meta_job_filter_t f = {.jf_states = EDDY__JOB_RESUMABLE};
    return m->m_ops->mo_job_list(m, &f, true, out, n, err);
}

int eddy__meta_job_delete(eddy__meta_t *m, const char *job_id,
                          eddy_error_t *err)
{
    int rc = check_job_id(job_id, err);
    if (rc != 0) {
        return rc;
    }
    return m->m_ops->mo_job_delete(m, job_id, err);
}

int eddy__meta_transition_list(eddy__meta_t *m, const char *job_id,
                               eddy__meta_transition_t ***out, size_t *n,
                               eddy_error_t *err)
{
    int rc;
    if ((rc = check_job_id(job_id, err)) != 0 ||
        (rc = check_list_out(out, n, err)) != 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    return m->m_ops->mo_transition_list(m, job_id, out, n, err);
}

/* ---- exceptions ---- */

int eddy__meta_exception_add(eddy__meta_t *m, const char *job_id,
                             const eddy__meta_exception_t *e, eddy_error_t *err)
{
    int rc = check_job_id(job_id, err);
    if (rc != 0) {
        return rc;
    }
    if (e == NULL || e->me_message == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "an exception needs a message");
    }
    if (e->me_time_ms < 0 || e->me_subtask < -1) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "bad exception time %lld or subtask %d",
                              (long long)e->me_time_ms, e->me_subtask);
    }
    eddy__meta_exception_t c = *e;
    char *task = NULL;
    char *msg = eddy__meta_text_clean(e->me_message, EDDY__META_MESSAGE_MAX);
    if (e->me_task != NULL) {
        task = eddy__meta_text_clean(e->me_task, EDDY__META_TASK_MAX);
    }
    c.me_task = task;
    c.me_message = msg;
    rc = m->m_ops->mo_exception_add(m, job_id, &c, err);
    eddy__free(task);
    eddy__free(msg);
    return rc;
}

int eddy__meta_exception_list(eddy__meta_t *m, const char *job_id,
                              eddy__meta_exception_t ***out, size_t *n,
                              eddy_error_t *err)
{
    int rc;
    if ((rc = check_job_id(job_id, err)) != 0 ||
        (rc = check_list_out(out, n, err)) != 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    return m->m_ops->mo_exception_list(m, job_id, out, n, err);
}

/* ---- checkpoints ---- */

int eddy__meta_checkpoint_add(eddy__meta_t *m, const char *job_id,
                              const eddy__meta_checkpoint_t *c, int retained,
                              eddy_error_t *err)
{
    int rc = check_job_id(job_id, err);
    if (rc != 0) {
        return rc;
    }
    if (c == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no checkpoint given");
    }
    if ((rc = check_text("checkpoint path", c->mc_path, EDDY__META_PATH_MAX,
                         true, err)) != 0) {
        return rc;
    }
    if (c->mc_id < 1 || c->mc_size_bytes < 0 || c->mc_duration_ms < 0 ||
        c->mc_time_ms < 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "bad checkpoint: id %lld (must be >= 1), size "
                              "%lld, duration %lld, time %lld (must be >= 0)",
                              (long long)c->mc_id, (long long)c->mc_size_bytes,
                              (long long)c->mc_duration_ms,
                              (long long)c->mc_time_ms);
    }
    if (retained < 1) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "checkpoints retained must be at least 1, not %d",
                              retained);
    }
    return m->m_ops->mo_checkpoint_add(m, job_id, c, retained, err);
}

int eddy__meta_checkpoint_list(eddy__meta_t *m, const char *job_id,
                               eddy__meta_checkpoint_t ***out, size_t *n,
                               eddy_error_t *err)
{
    int rc;
    if ((rc = check_job_id(job_id, err)) != 0 ||
        (rc = check_list_out(out, n, err)) != 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    return m->m_ops->mo_checkpoint_list(m, job_id, out, n, err);
}

int eddy__meta_checkpoint_latest(eddy__meta_t *m, const char *job_id,
                                 bool include_savepoints,
                                 eddy__meta_checkpoint_t **out,
                                 eddy_error_t *err)
{
    int rc = check_job_id(job_id, err);
    if (rc != 0) {
        return rc;
    }
    if (out == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no output given");
    }
    *out = NULL;
    return m->m_ops->mo_checkpoint_latest(m, job_id, include_savepoints, out,
                                          err);
}

/* ---- savepoint requests ---- */

int eddy__meta_savepoint_begin(eddy__meta_t *m, const char *job_id,
                               const char *request_id, eddy_error_t *err)
{
    int rc;
    if ((rc = check_job_id(job_id, err)) != 0 ||
        (rc = check_request_id(request_id, err)) != 0) {
        return rc;
    }
    return m->m_ops->mo_savepoint_begin(m, job_id, request_id, err);
}

int eddy__meta_savepoint_end(eddy__meta_t *m, const char *job_id,
                             const char *request_id,
                             eddy__savepoint_status_t status, const char *text,
                             eddy_error_t *err)
{
    int rc;
    if ((rc = check_job_id(job_id, err)) != 0 ||
        (rc = check_request_id(request_id, err)) != 0) {
        return rc;
    }
    if (status == EDDY__SAVEPOINT_COMPLETED) {
        if ((rc = check_text("savepoint path", text, EDDY__META_PATH_MAX, true,
                             err)) != 0) {
            return rc;
        }
        return m->m_ops->mo_savepoint_end(m, job_id, request_id, status, text,
                                          err);
    }
    if (status != EDDY__SAVEPOINT_FAILED) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "a savepoint request ends COMPLETED or FAILED");
    }
    char *clean = eddy__meta_text_clean(
        text != NULL && *text ? text : "unknown error", EDDY__META_MESSAGE_MAX);
    rc = m->m_ops->mo_savepoint_end(m, job_id, request_id, status, clean, err);
    eddy__free(clean);
    return rc;
}

int eddy__meta_savepoint_get(eddy__meta_t *m, const char *job_id,
                             const char *request_id,
                             eddy__meta_savepoint_t **out, eddy_error_t *err)
{
    int rc;
    if ((rc = check_job_id(job_id, err)) != 0 ||
        (rc = check_request_id(request_id, err)) != 0) {
        return rc;
    }
    if (out == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no output given");
    }
    *out = NULL;
    return m->m_ops->mo_savepoint_get(m, job_id, request_id, out, err);
}

int eddy__meta_savepoint_list(eddy__meta_t *m, const char *job_id,
                              eddy__meta_savepoint_t ***out, size_t *n,
                              eddy_error_t *err)
{
    int rc;
    if ((rc = check_job_id(job_id, err)) != 0 ||
        (rc = check_list_out(out, n, err)) != 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    return m->m_ops->mo_savepoint_list(m, job_id, out, n, err);
}

int eddy__meta_savepoints_abandon(eddy__meta_t *m, const char *error,
                                  int *count, eddy_error_t *err)
{
    int dummy;
    char *clean = eddy__meta_text_clean(
        error != NULL && *error ? error : "abandoned", EDDY__META_MESSAGE_MAX);
    int rc = m->m_ops->mo_savepoints_abandon(
        m, clean, count != NULL ? count : &dummy, err);
    eddy__free(clean);
    return rc;
}
