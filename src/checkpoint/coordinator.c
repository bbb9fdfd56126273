/*
 * eddy — the checkpoint coordinator.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "checkpoint/coordinator.h"
#include "checkpoint/storage.h"

#define MAX_PENDING 16
#define RESULTS 64

typedef struct pending {
    int64_t p_id;
    bool p_savepoint;
    char *p_dir;
    int64_t p_start_ms;
    bool *p_acked;
    int p_nacked;
    json_t *p_ops; /* uid -> array of subtask handles */
} pending_t;

typedef struct completed {
    int64_t c_id;
    char *c_dir;
    json_t *c_shared; /* array of job-dir-relative names */
} completed_t;

struct eddy__coord {
    pthread_mutex_t c_mu;
    pthread_cond_t c_changed;
    eddy__config_t c_cfg; /* copy of the numbers; strings not used */
    char *c_job_dir;
    char *c_job_id;
    char *c_job_name;
    json_t *c_operators;
    int c_ntasks;
    eddy__coord_hooks_t c_hooks;
    bool c_running;
    int64_t c_next_id;
    int64_t c_next_trigger_ms;
    int64_t c_last_end_ms;
    pending_t c_pending[MAX_PENDING];
    int c_npending;
    completed_t *c_done;
    int c_ndone;
    json_t *c_graveyard; /* shared files of the last dropped checkpoints */
    struct {
        int64_t id;
        int result;
        char why[256];
    } c_results[RESULTS];
    int c_nresults;
    eddy__coord_stats_t c_stats;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int eddy__coord_new(const eddy__config_t *cfg, const char *job_dir,
                    const char *job_name, json_t *operators, int ntasks,
                    int64_t last_id, const eddy__coord_hooks_t *hooks,
                    eddy__coord_t **out, eddy_error_t *err)
{
    int rc = eddy__mkdirs(job_dir, err);
    if (rc != 0) {
        return rc;
    }
    char shared[4096];
    eddy__fmt(shared, sizeof(shared), "%s/shared", job_dir);
    rc = eddy__mkdirs(shared, err);
    if (rc != 0) {
        return rc;
    }
    eddy__coord_t *c = eddy__calloc(1, sizeof(*c));
    pthread_mutex_init(&c->c_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->c_changed, &ca);
    pthread_condattr_destroy(&ca);
    c->c_cfg = *cfg;
    c->c_cfg.ck_dir = NULL;
    c->c_cfg.state_backend = NULL;
    c->c_cfg.rocksdb_dir = NULL;
    c->c_cfg.restore_path = NULL;
    c->c_job_dir = eddy__strdup(job_dir);
    c->c_job_id = eddy__strdup(cfg->job_id);
    c->c_job_name = eddy__strdup(job_name ? job_name : "job");
    c->c_operators = json_incref(operators);
    c->c_graveyard = json_array();
    c->c_ntasks = ntasks;
    c->c_hooks = *hooks;
    int64_t max = eddy__ckpt_max_id(job_dir);
    c->c_next_id = EDDY_MAX(max, last_id) + 1;
    *out = c;
    return 0;
}

static void pending_free(pending_t *p)
{
    free(p->p_dir);
    free(p->p_acked);
    json_decref(p->p_ops);
    memset(p, 0, sizeof(*p));
}

void eddy__coord_destroy(eddy__coord_t *c)
{
    if (c == NULL) {
        return;
    }
    eddy__coord_stop(c);
    for (int i = 0; i < c->c_ndone; i++) {
        free(c->c_done[i].c_dir);
        json_decref(c->c_done[i].c_shared);
    }
    free(c->c_done);
    json_decref(c->c_operators);
    json_decref(c->c_graveyard);
    free(c->c_job_dir);
    free(c->c_job_id);
    free(c->c_job_name);
    pthread_cond_destroy(&c->c_changed);
    pthread_mutex_destroy(&c->c_mu);
    free(c);
}

static void record_result(eddy__coord_t *c, int64_t id, int result,
                          const char *why)
{
    int slot = c->c_nresults++ % RESULTS;
    c->c_results[slot].id = id;
    c->c_results[slot].result = result;
    eddy__fmt(c->c_results[slot].why, sizeof(c->c_results[slot].why), "%s",
              why ? why : "");
    pthread_cond_broadcast(&c->c_changed);
}

/* Removes pending slot i, keeping the others in order. */
static void pending_remove(eddy__coord_t *c, int i)
{
    pending_free(&c->c_pending[i]);
    memmove(&c->c_pending[i], &c->c_pending[i + 1],
            sizeof(pending_t) * (size_t)(c->c_npending - i - 1));
    c->c_npending--;
    memset(&c->c_pending[c->c_npending], 0, sizeof(pending_t));
}

static void abort_pending(eddy__coord_t *c, int i, const char *why)
{
    pending_t *p = &c->c_pending[i];
    int64_t id = p->p_id;
    if (p->p_dir != NULL) {
        eddy__rmtree(p->p_dir);
    }
    c->c_stats.cs_failed++;
    eddy__fmt(c->c_stats.cs_last_failure, sizeof(c->c_stats.cs_last_failure),
              "checkpoint %lld: %s", (long long)id, why);
    record_result(c, id, 0, why);
    pending_remove(c, i);
    c->c_last_end_ms = wall_ms();
    if (c->c_hooks.ch_abort != NULL) {
        c->c_hooks.ch_abort(c->c_hooks.ch_arg, id);
    }
}

void eddy__coord_start(eddy__coord_t *c, int64_t now_ms)
{
    eddy__mutex_lock(&c->c_mu);
    c->c_running = c->c_cfg.ck_interval_ms > 0;
    c->c_next_trigger_ms = now_ms + c->c_cfg.ck_interval_ms;
    eddy__mutex_unlock(&c->c_mu);
}

void eddy__coord_stop(eddy__coord_t *c)
{
    eddy__mutex_lock(&c->c_mu);
    c->c_running = false;
    while (c->c_npending > 0) {
        abort_pending(c, 0, "the job stopped or is restarting");
    }
    eddy__mutex_unlock(&c->c_mu);
}

static int64_t start_checkpoint(eddy__coord_t *c, const char *dir,
                                bool savepoint, int64_t now, eddy_error_t *err)
{
    if (c->c_npending >= MAX_PENDING) {
        eddy_error_set(err, EDDY_ERR_BUSY, "too many checkpoints in flight");
        return -1;
    }
    int64_t id = c->c_next_id++;
    pending_t *p = &c->c_pending[c->c_npending];
    memset(p, 0, sizeof(*p));
    p->p_id = id;
    p->p_savepoint = savepoint;
    char buf[4096];
    if (dir != NULL) {
        eddy__fmt(buf, sizeof(buf), "%s", dir);
    } else {
        eddy__fmt(buf, sizeof(buf), "%s/chk-%lld", c->c_job_dir, (long long)id);
    }
    eddy__rmtree(buf); /* a leftover of an earlier run with this id */
    if (eddy__mkdirs(buf, err) != 0) {
        return -1;
    }
    p->p_dir = eddy__strdup(buf);
    p->p_start_ms = now;
    p->p_acked = eddy__calloc((size_t)c->c_ntasks + 1, sizeof(bool));
    p->p_ops = json_object();
    c->c_npending++;
    c->c_stats.cs_triggered++;
    if (c->c_hooks.ch_trigger != NULL) {
        c->c_hooks.ch_trigger(c->c_hooks.ch_arg, id, savepoint);
    }
    return id;
}

void eddy__coord_trigger_soon(eddy__coord_t *c, int64_t now_ms)
{
    eddy__mutex_lock(&c->c_mu);
    if (c->c_next_trigger_ms > now_ms) {
        c->c_next_trigger_ms = now_ms;
    }
    eddy__mutex_unlock(&c->c_mu);
}

int64_t eddy__coord_poll(eddy__coord_t *c, int64_t now, int64_t max_wait)
{
    eddy__mutex_lock(&c->c_mu);
    int64_t wait = max_wait;
    for (int i = 0; i < c->c_npending;) {
        pending_t *p = &c->c_pending[i];
        int64_t deadline = p->p_start_ms + c->c_cfg.ck_timeout_ms;
        if (now >= deadline) {
            char why[128];
            eddy__fmt(why, sizeof(why),
                      "timed out after %lld ms (%d of %d tasks acknowledged)",
                      (long long)c->c_cfg.ck_timeout_ms, p->p_nacked,
                      c->c_ntasks);
            abort_pending(c, i, why);
            continue;
        }
        wait = EDDY_MIN(wait, deadline - now);
        i++;
    }
    if (c->c_running) {
        int64_t due = c->c_next_trigger_ms;
        if (c->c_last_end_ms > 0) {
            due = EDDY_MAX(due, c->c_last_end_ms + c->c_cfg.ck_min_pause_ms);
        }
        /* A pending savepoint counts too: a source's trigger mailbox holds
         * the newest id only, so a periodic trigger right behind a
         * savepoint's could replace it before the source looked. */
        if (c->c_npending < c->c_cfg.ck_max_concurrent) {
            if (now >= due) {
                eddy_error_t e = {0};
                if (start_checkpoint(c, NULL, false, now, &e) < 0) {
                    c->c_stats.cs_failed++;
                    eddy__fmt(c->c_stats.cs_last_failure,
                              sizeof(c->c_stats.cs_last_failure), "%s", e.msg);
                }
                c->c_next_trigger_ms = now + c->c_cfg.ck_interval_ms;
                due = c->c_next_trigger_ms;
            }
            wait = EDDY_MIN(wait, EDDY_MAX(due - now, 1));
        }
    }
    eddy__mutex_unlock(&c->c_mu);
    return EDDY_MAX(wait, 1);
}

int64_t eddy__coord_trigger_savepoint(eddy__coord_t *c, const char *dir,
                                      eddy_error_t *err)
{
    eddy__mutex_lock(&c->c_mu);
    int64_t id = start_checkpoint(c, dir, true, wall_ms(), err);
    eddy__mutex_unlock(&c->c_mu);
    return id < 0 ? EDDY_ERR_BUSY : id;
}

static int find_pending(eddy__coord_t *c, int64_t id)
{
    for (int i = 0; i < c->c_npending; i++) {
        if (c->c_pending[i].p_id == id) {
            return i;
        }
    }
    return -1;
}

int eddy__coord_dir(eddy__coord_t *c, int64_t id, char *buf, size_t size,
                    bool *savepoint)
{
    eddy__mutex_lock(&c->c_mu);
    int i = find_pending(c, id);
    if (i >= 0) {
        eddy__fmt(buf, size, "%s", c->c_pending[i].p_dir);
        if (savepoint != NULL) {
            *savepoint = c->c_pending[i].p_savepoint;
        }
    }
    eddy__mutex_unlock(&c->c_mu);
    return i >= 0 ? 0 : -1;
}

const char *eddy__coord_job_dir(const eddy__coord_t *c)
{
    return c->c_job_dir;
}

void eddy__coord_decline(eddy__coord_t *c, int64_t id, int task,
                         const char *reason)
{
    eddy__mutex_lock(&c->c_mu);
    int i = find_pending(c, id);
    if (i >= 0) {
        char why[256];
        eddy__fmt(why, sizeof(why), "declined by task %d: %s", task,
                  reason ? reason : "no reason given");
        abort_pending(c, i, why);
    }
    eddy__mutex_unlock(&c->c_mu);
}

/* Collects the "shared" lists found anywhere in a JSON tree. */
static void collect_shared(json_t *j, json_t *out)
{
    if (json_is_object(j)) {
        json_t *sh = json_object_get(j, "shared");
        if (json_is_array(sh)) {
            size_t i;
            json_t *e;
            json_array_foreach(sh, i, e)
            {
                json_array_append(out, e);
            }
        }
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (json_is_object(v) || json_is_array(v)) {
                collect_shared(v, out);
            }
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e)
        {
            collect_shared(e, out);
        }
    }
}

static bool listed(json_t *arr, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (strcmp(json_string_value(e), name) == 0) {
            return true;
        }
    }
    return false;
}

static bool in_use(eddy__coord_t *c, const char *name)
{
    for (int k = 0; k < c->c_ndone; k++) {
        if (listed(c->c_done[k].c_shared, name)) {
            return true;
        }
    }
    bool used = false;
    for (int k = 0; k < c->c_npending && !used; k++) {
        json_t *sh = json_array();
        collect_shared(c->c_pending[k].p_ops, sh);
        used = listed(sh, name);
        json_decref(sh);
    }
    return used;
}

/*
 * Drops the oldest completed checkpoints beyond the retained count. Their
 * shared files are deleted one completion later, and only if no retained
 * or pending checkpoint lists them by then: a task may take its next
 * snapshot before it has seen the latest completion, and an incremental
 * backend then still builds on the checkpoint before (see
 * ko_notify_complete), which must not have lost its files meanwhile.
 */
static void apply_retention(eddy__coord_t *c)
{
    json_t *grave = c->c_graveyard;
    c->c_graveyard = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(grave, i, e)
    {
        const char *name = json_string_value(e);
        if (name != NULL && strstr(name, "..") == NULL && !in_use(c, name)) {
            char p[4096];
            eddy__fmt(p, sizeof(p), "%s/%s", c->c_job_dir, name);
            remove(p);
        } else if (name != NULL) {
            json_array_append(c->c_graveyard, e); /* still needed */
        }
    }
    json_decref(grave);
    while (c->c_ndone > c->c_cfg.ck_retained) {
        completed_t old = c->c_done[0];
        memmove(&c->c_done[0], &c->c_done[1],
                sizeof(completed_t) * (size_t)(c->c_ndone - 1));
        c->c_ndone--;
        eddy__rmtree(old.c_dir);
        json_array_foreach(old.c_shared, i, e)
        {
            if (!listed(c->c_graveyard, json_string_value(e))) {
                json_array_append(c->c_graveyard, e);
            }
        }
        free(old.c_dir);
        json_decref(old.c_shared);
    }
}

static int subtask_cmp(const void *a, const void *b)
{
    json_t *const *x = a, *const *y = b;
    json_int_t sx = json_integer_value(json_object_get(*x, "subtask"));
    json_int_t sy = json_integer_value(json_object_get(*y, "subtask"));
    return sx < sy ? -1 : sx > sy;
}

static int complete(eddy__coord_t *c, int i, eddy_error_t *err)
{
    pending_t *p = &c->c_pending[i];
    json_t *ops = json_object();
    const char *uid;
    json_t *info;
    json_object_foreach(c->c_operators, uid, info)
    {
        json_t *o = json_deep_copy(info);
        json_t *subs = json_object_get(p->p_ops, uid);
        json_t *sorted = json_array();
        if (subs != NULL) {
            size_t n = json_array_size(subs);
            json_t **v = eddy__calloc(n + 1, sizeof(json_t *));
            for (size_t k = 0; k < n; k++) {
                v[k] = json_array_get(subs, k);
            }
            qsort(v, n, sizeof(json_t *), subtask_cmp);
            for (size_t k = 0; k < n; k++) {
                json_array_append(sorted, v[k]);
            }
            free(v);
        }
        json_object_set_new(o, "subtasks", sorted);
        json_object_set_new(ops, uid, o);
    }
    json_t *meta = json_pack(
        "{s:s, s:i, s:s, s:s, s:I, s:b, s:I, s:o}", "format",
        EDDY__METADATA_FORMAT, "version", EDDY__METADATA_VERSION, "job_id",
        c->c_job_id, "job_name", c->c_job_name, "checkpoint_id",
        (json_int_t)p->p_id, "savepoint", p->p_savepoint, "timestamp",
        (json_int_t)wall_ms(), "operators", ops);
    char *text = json_dumps(meta, JSON_INDENT(1) | JSON_SORT_KEYS);
    int rc = eddy__write_file_atomic(p->p_dir, EDDY__METADATA, text,
                                     strlen(text), err);
    free(text);
    if (rc != 0) {
        json_decref(meta);
        return rc;
    }
    int64_t now = wall_ms();
    int64_t id = p->p_id;
    c->c_stats.cs_completed++;
    c->c_stats.cs_latest_id = id;
    c->c_stats.cs_latest_duration_ms = now - p->p_start_ms;
    c->c_stats.cs_latest_end_ms = now;
    eddy__fmt(c->c_stats.cs_latest_path, sizeof(c->c_stats.cs_latest_path),
              "%s", p->p_dir);
    c->c_last_end_ms = now;
    if (!p->p_savepoint) {
        c->c_done = eddy__realloc(c->c_done, sizeof(completed_t) *
                                                 (size_t)(c->c_ndone + 1));
        completed_t *d = &c->c_done[c->c_ndone++];
        d->c_id = id;
        d->c_dir = eddy__strdup(p->p_dir);
        d->c_shared = json_array();
        collect_shared(json_object_get(meta, "operators"), d->c_shared);
    }
    json_decref(meta);
    record_result(c, id, 1, NULL);
    pending_remove(c, i);
    /* Older pending checkpoints can never complete usefully after a newer
     * one: abort them (their acks would be dropped anyway). */
    for (int k = 0; k < c->c_npending;) {
        if (c->c_pending[k].p_id < id && !c->c_pending[k].p_savepoint) {
            abort_pending(c, k, "subsumed by a newer checkpoint");
            continue;
        }
        k++;
    }
    eddy__fault("complete");
    if (c->c_hooks.ch_complete != NULL) {
        c->c_hooks.ch_complete(c->c_hooks.ch_arg, id);
    }
    apply_retention(c);
    return 0;
}

void eddy__coord_ack(eddy__coord_t *c, int64_t id, int task, json_t *ops)
{
    eddy__mutex_lock(&c->c_mu);
    int i = find_pending(c, id);
    if (i < 0 || task < 0 || task >= c->c_ntasks ||
        c->c_pending[i].p_acked[task]) {
        eddy__mutex_unlock(&c->c_mu);
        json_decref(ops);
        return;
    }
    pending_t *p = &c->c_pending[i];
    p->p_acked[task] = true;
    p->p_nacked++;
    const char *uid;
    json_t *h;
    json_object_foreach(ops, uid, h)
    {
        json_t *arr = json_object_get(p->p_ops, uid);
        if (arr == NULL) {
            arr = json_array();
            json_object_set_new(p->p_ops, uid, arr);
        }
        json_array_append(arr, h);
    }
    json_decref(ops);
    if (p->p_nacked == c->c_ntasks) {
        eddy_error_t err = {0};
        if (complete(c, i, &err) != 0) {
            abort_pending(c, i, err.msg);
        }
    }
    eddy__mutex_unlock(&c->c_mu);
}

void eddy__coord_stats(eddy__coord_t *c, eddy__coord_stats_t *out)
{
    eddy__mutex_lock(&c->c_mu);
    *out = c->c_stats;
    eddy__mutex_unlock(&c->c_mu);
}

int eddy__coord_wait(eddy__coord_t *c, int64_t id, int64_t timeout_ms,
                     eddy_error_t *err)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    eddy__mutex_lock(&c->c_mu);
    for (;;) {
        int n = EDDY_MIN(c->c_nresults, RESULTS);
        for (int k = 0; k < n; k++) {
            if (c->c_results[k].id == id) {
                int r = c->c_results[k].result;
                if (r == 0) {
                    eddy_error_set(err, EDDY_ERR_STATE, "%s",
                                   c->c_results[k].why);
                }
                eddy__mutex_unlock(&c->c_mu);
                return r;
            }
        }
        if (pthread_cond_timedwait(&c->c_changed, &c->c_mu, &dl) == ETIMEDOUT) {
            eddy__mutex_unlock(&c->c_mu);
            return eddy_error_set(err, EDDY_ERR_TIMEOUT,
                                  "checkpoint %lld did not finish in time",
                                  (long long)id);
        }
    }
}
