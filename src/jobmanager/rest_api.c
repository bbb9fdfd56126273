/*
 * eddy — the JobManager's REST endpoints (DESIGN.md §8).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Every handler validates what it takes from the request (ids are 32 hex
 * digits, numbers are in range) before it looks anything up, answers
 * errors as {"error": "..."} with a 4xx/5xx status, and never builds a
 * file path from request text: artifacts and savepoints live under paths
 * the JobManager chose. Reads look at the JobManager's state under its
 * mutex; actions go to the main loop as commands (jobmanager.h).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/prom.h"
#include "jobmanager/jm_internal.h"
#include "runtime/runtime.h"

#define MAX_PARALLELISM 32768

static bool valid_id(const char *s)
{
    if (s == NULL || strlen(s) != 32) {
        return false;
    }
    for (int i = 0; i < 32; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* The job of the {id} parameter, or a 404 already set (jm_mu held). */
static jm_job_t *job_param(eddy__jm_t *jm, const eddy__http_req_t *req,
                           eddy__http_resp_t *resp)
{
    const char *id = req->hr_nparams > 0 ? req->hr_params[0] : NULL;
    jm_job_t *jb = valid_id(id) ? eddy__jm_find_job(jm, id) : NULL;
    if (jb == NULL) {
        eddy__http_error(resp, 404, "no job with id '%.64s'",
                         id != NULL ? id : "");
    }
    return jb;
}

static json_t *job_summary(jm_job_t *jb)
{
    int64_t end = jb->jb_end_ms != 0 ? jb->jb_end_ms : eddy__now_ms();
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:i, s:i}", "job_id", jb->jb_id,
        "name", jb->jb_name, "state", eddy__job_state_name(jb->jb_state),
        "start_time", (json_int_t)jb->jb_start_ms, "end_time",
        (json_int_t)jb->jb_end_ms, "duration_ms",
        (json_int_t)(end - jb->jb_start_ms), "parallelism", jb->jb_parallelism,
        "tasks", jb->jb_ntasks, "restarts", jb->jb_restarts);
}

static void h_health(void *arg, const eddy__http_req_t *req,
                     eddy__http_resp_t *resp)
{
    EDDY_UNUSED(arg);
    EDDY_UNUSED(req);
    eddy__http_json(
        resp, 200,
        json_pack("{s:s, s:s}", "status", "ok", "version", EDDY_VERSION_STR));
}

static void counts(eddy__jm_t *jm, int *running, int *finished, int *canceled,
                   int *failed)
{
    *running = *finished = *canceled = *failed = 0;
    for (int i = 0; i < jm->jm_njobs; i++) {
        switch (jm->jm_jobs[i]->jb_state) {
        case EDDY__JOB_FINISHED:
            (*finished)++;
            break;
        case EDDY__JOB_CANCELED:
            (*canceled)++;
            break;
        case EDDY__JOB_FAILED:
            (*failed)++;
            break;
        default:
            (*running)++;
        }
    }
}

static void h_overview(void *arg, const eddy__http_req_t *req,
                       eddy__http_resp_t *resp)
{
    EDDY_UNUSED(req);
    eddy__jm_t *jm = arg;
    eddy__mutex_lock(&jm->jm_mu);
    int total, active, running, finished, canceled, failed;
    int free_slots = eddy__jm_free_slots(jm, &total, &active);
    counts(jm, &running, &finished, &canceled, &failed);
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i}",
                  "version", EDDY_VERSION_STR, "jobmanager_id", jm->jm_id,
                  "start_time", (json_int_t)jm->jm_start_ms, "taskmanagers",
                  active, "slots_total", total, "slots_available", free_slots,
                  "jobs_running", running, "jobs_finished", finished,
                  "jobs_canceled", canceled, "jobs_failed", failed);
    eddy__mutex_unlock(&jm->jm_mu);
    eddy__http_json(resp, 200, o);
}

static void h_cluster_metrics(void *arg, const eddy__http_req_t *req,
                              eddy__http_resp_t *resp)
{
    EDDY_UNUSED(req);
    eddy__jm_t *jm = arg;
    eddy__mutex_lock(&jm->jm_mu);
    int total, active, running = 0, all = 0;
    int free_slots = eddy__jm_free_slots(jm, &total, &active);
    int ntms = 0;
    for (int i = 0; i < jm->jm_ntms; i++) {
        ntms += jm->jm_tms[i]->tm_registered;
    }
    for (int i = 0; i < jm->jm_njobs; i++) {
        all++;
        running += jm->jm_jobs[i]->jb_state == EDDY__JOB_RUNNING;
    }
    double util = total > 0 ? (double)(total - free_slots) / total : 0.0;
    json_t *o =
        json_pack("{s:i, s:i, s:i, s:i, s:f, s:i, s:i}", "total_task_managers",
                  ntms, "active_task_managers", active, "total_slots", total,
                  "available_slots", free_slots, "utilization", util,
                  "total_jobs", all, "running_jobs", running);
    eddy__mutex_unlock(&jm->jm_mu);
    eddy__http_json(resp, 200, o);
}

static void h_taskmanagers(void *arg, const eddy__http_req_t *req,
                           eddy__http_resp_t *resp)
{
    EDDY_UNUSED(req);
    eddy__jm_t *jm = arg;
    json_t *a = json_array();
    eddy__mutex_lock(&jm->jm_mu);
    for (int i = 0; i < jm->jm_ntms; i++) {
        jm_tm_t *tm = jm->jm_tms[i];
        if (!tm->tm_registered) {
            continue;
        }
        int fr = 0;
        for (int s = 0; s < tm->tm_slots; s++) {
            fr += tm->tm_slot_job[s] == NULL;
        }
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:I}", "id",
                         tm->tm_id, "host", tm->tm_host, "data_address",
                         tm->tm_data_addr, "metrics_url", tm->tm_metrics_url,
                         "state", tm->tm_lost ? "LOST" : "ACTIVE", "slots",
                         tm->tm_slots, "free_slots", tm->tm_lost ? 0 : fr,
                         "registered", (json_int_t)tm->tm_registered_ms,
                         "last_heartbeat", (json_int_t)tm->tm_last_hb_ms));
    }
    eddy__mutex_unlock(&jm->jm_mu);
    eddy__http_json(resp, 200, json_pack("{s:o}", "taskmanagers", a));
}

/* A job the store knows but this JobManager does not run: one that ended
 * before it started (its history survives a restart). */
static json_t *meta_summary(const eddy__meta_job_t *mj)
{
    int64_t end = mj->mj_end_ms != 0 ? mj->mj_end_ms : eddy__now_ms();
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:i, s:i}", "job_id",
        mj->mj_spec.js_id, "name", mj->mj_spec.js_name, "state",
        eddy__job_state_name(mj->mj_state), "start_time",
        (json_int_t)mj->mj_start_ms, "end_time", (json_int_t)mj->mj_end_ms,
        "duration_ms", (json_int_t)(end - mj->mj_start_ms), "parallelism",
        mj->mj_spec.js_parallelism, "tasks", 0, "restarts", mj->mj_restarts);
}

static int by_start_desc(const void *a, const void *b)
{
    json_int_t x =
        json_integer_value(json_object_get(*(json_t *const *)a, "start_time"));
    json_int_t y =
        json_integer_value(json_object_get(*(json_t *const *)b, "start_time"));
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The jobs this JobManager runs or ran, and those the store remembers from
 * before it started (the newest 1000), newest first. */
static void h_jobs(void *arg, const eddy__http_req_t *req,
                   eddy__http_resp_t *resp)
{
    EDDY_UNUSED(req);
    eddy__jm_t *jm = arg;
    eddy__meta_job_filter_t f = {0};
    f.jf_limit = 1000;
    eddy__meta_job_t **mj = NULL;
    size_t nm = 0;
    eddy_error_t err = {0};
    if (eddy__meta_job_list(jm->jm_meta, &f, &mj, &nm, &err) != 0) {
        nm = 0;
    }
    size_t n = 0;
    eddy__mutex_lock(&jm->jm_mu);
    json_t **all =
        eddy__malloc(sizeof(json_t *) * (nm + (size_t)jm->jm_njobs + 1));
    for (int i = 0; i < jm->jm_njobs; i++) {
        all[n++] = job_summary(jm->jm_jobs[i]);
    }
    for (size_t i = 0; i < nm; i++) {
        if (eddy__jm_find_job(jm, mj[i]->mj_spec.js_id) == NULL) {
            all[n++] = meta_summary(mj[i]);
        }
    }
    eddy__mutex_unlock(&jm->jm_mu);
    eddy__meta_free_array(mj, nm);
    qsort(all, n, sizeof(json_t *), by_start_desc);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, all[i]);
    }
    free(all);
    eddy__http_json(resp, 200, json_pack("{s:o}", "jobs", a));
}

static void h_job_status(void *arg, const eddy__http_req_t *req,
                         eddy__http_resp_t *resp)
{
    eddy__jm_t *jm = arg;
    const char *id = req->hr_nparams > 0 ? req->hr_params[0] : NULL;
    eddy__mutex_lock(&jm->jm_mu);
    jm_job_t *jb = valid_id(id) ? eddy__jm_find_job(jm, id) : NULL;
    if (jb != NULL) {
        json_t *o = job_summary(jb);
        json_object_set_new(o, "attempt", json_integer(jb->jb_attempt));
        json_object_set_new(o, "checkpoint_interval_ms",
                            json_integer(jb->jb_cfg.ck_interval_ms));
        json_object_set_new(o, "failure",
                            jb->jb_failure[0] ? json_string(jb->jb_failure)
                                              : json_null());
        eddy__http_json(resp, 200, o);
    }
    eddy__mutex_unlock(&jm->jm_mu);
    if (jb != NULL) {
        return;
    }
    /* Ended before this JobManager started: what the store remembers. */
    eddy__meta_job_t *mj = NULL;
    eddy_error_t err = {0};
    if (!valid_id(id) || eddy__meta_job_get(jm->jm_meta, id, &mj, &err) != 0) {
        eddy__http_error(resp, 404, "no job with id '%.64s'",
                         id != NULL ? id : "");
        return;
    }
    json_t *o = meta_summary(mj);
    json_object_set_new(o, "attempt", json_integer(0));
    json_object_set_new(o, "checkpoint_interval_ms",
                        json_integer(mj->mj_spec.js_checkpoint_interval_ms));
    json_object_set_new(o, "failure", json_null());
    eddy__meta_free(mj);
    eddy__http_json(resp, 200, o);
}

static void h_job(void *arg, const eddy__http_req_t *req,
                  eddy__http_resp_t *resp)
{
    eddy__jm_t *jm = arg;
    const char *id = req->hr_nparams > 0 ? req->hr_params[0] : NULL;
    eddy__mutex_lock(&jm->jm_mu);
    jm_job_t *jb = valid_id(id) ? eddy__jm_find_job(jm, id) : NULL;
    if (jb == NULL) {
        eddy__mutex_unlock(&jm->jm_mu);
        /* Ended before this JobManager started: the store's record,
         * without the graph (its plan is not loaded). */
        eddy__meta_job_t *mj = NULL;
        eddy_error_t err = {0};
        if (!valid_id(id) ||
            eddy__meta_job_get(jm->jm_meta, id, &mj, &err) != 0) {
            eddy__http_error(resp, 404, "no job with id '%.64s'",
                             id != NULL ? id : "");
            return;
        }
        json_t *o = meta_summary(mj);
        eddy__meta_free(mj);
        json_object_set_new(o, "vertices", json_array());
        json_object_set_new(o, "edges", json_array());
        eddy__http_json(resp, 200, o);
        return;
    }
    if (jb != NULL) {
        json_t *o = job_summary(jb);
        json_t *vs = json_array();
        size_t vi;
        json_t *v;
        int t = 0;
        json_array_foreach(json_object_get(jb->jb_plan, "vertices"), vi, v)
        {
            int par =
                (int)json_integer_value(json_object_get(v, "parallelism"));
            json_t *tasks = json_array();
            for (int s = 0; s < par && t < jb->jb_ntasks; s++, t++) {
                jm_tm_t *tm = jb->jb_task_tm[t];
                json_array_append_new(
                    tasks,
                    json_pack("{s:i, s:s, s:s?}", "subtask", s, "state",
                              eddy__jm_task_state_name(jb->jb_task_state[t]),
                              "taskmanager", tm != NULL ? tm->tm_id : NULL));
            }
            json_array_append_new(vs, json_pack("{s:I, s:O, s:i, s:O, s:o}",
                                                "index", (json_int_t)vi, "name",
                                                json_object_get(v, "name"),
                                                "parallelism", par, "operators",
                                                json_object_get(v, "operators"),
                                                "tasks", tasks));
        }
        json_object_set_new(o, "vertices", vs);
        json_object_set(o, "edges", json_object_get(jb->jb_plan, "edges"));
        eddy__http_json(resp, 200, o);
    }
    eddy__mutex_unlock(&jm->jm_mu);
}

_Static_assert(EDDY__LAT_BUCKETS == 14, "jm_task_metrics_t.tm_lat");

/* The q-quantile of a bucketed latency histogram, as the upper bound (ms)
 * of the bucket that holds it (the overflow bucket reports the last
 * bound); null when there were no markers. */
static json_t *quantile_ms(const uint64_t *b, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < EDDY__LAT_BUCKETS; i++) {
        total += b[i];
    }
    if (total == 0) {
        return json_null();
    }
    uint64_t want = (uint64_t)(q * (double)total + 0.999999), seen = 0;
    for (int i = 0; i < EDDY__LAT_BUCKETS - 1; i++) {
        seen += b[i];
        if (seen >= want) {
            return json_real(eddy__lat_bounds_ms[i]);
        }
    }
    return json_real(eddy__lat_bounds_ms[EDDY__LAT_BUCKETS - 2]);
}

static json_t *latency_json(const uint64_t *b, uint64_t sum_us)
{
    uint64_t n = 0;
    for (int i = 0; i < EDDY__LAT_BUCKETS; i++) {
        n += b[i];
    }
    return json_pack(
        "{s:I, s:o, s:o, s:o, s:o}", "markers", (json_int_t)n, "mean_ms",
        n > 0 ? json_real((double)sum_us / 1000.0 / (double)n) : json_null(),
        "p50_ms", quantile_ms(b, 0.50), "p95_ms", quantile_ms(b, 0.95),
        "p99_ms", quantile_ms(b, 0.99));
}

/* Per vertex: records in (total and per second, summed over subtasks), the
 * worst back-pressure ratio, the lowest input watermark; per subtask the
 * same figures as the TaskManagers last reported them. */
static void h_job_metrics(void *arg, const eddy__http_req_t *req,
                          eddy__http_resp_t *resp)
{
    eddy__jm_t *jm = arg;
    eddy__mutex_lock(&jm->jm_mu);
    jm_job_t *jb = job_param(jm, req, resp);
    if (jb == NULL) {
        eddy__mutex_unlock(&jm->jm_mu);
        return;
    }
    json_t *vs = json_array();
    size_t vi;
    json_t *v;
    int t = 0;
    json_array_foreach(json_object_get(jb->jb_plan, "vertices"), vi, v)
    {
        int par = (int)json_integer_value(json_object_get(v, "parallelism"));
        uint64_t in = 0, out = 0, lat[EDDY__LAT_BUCKETS] = {0}, lat_sum = 0;
        double rate = 0, rate_out = 0, bp = 0;
        int64_t wm = INT64_MAX;
        bool any_wm = false;
        json_t *subs = json_array();
        for (int k = 0; k < par && t < jb->jb_ntasks; k++, t++) {
            const jm_task_metrics_t *x = &jb->jb_metrics[t];
            in += x->tm_records_in;
            out += x->tm_records_out;
            for (int b = 0; b < EDDY__LAT_BUCKETS; b++) {
                lat[b] += x->tm_lat[b];
            }
            lat_sum += x->tm_lat_sum_us;
            rate += x->tm_rate;
            rate_out += x->tm_rate_out;
            bp = EDDY_MAX(bp, x->tm_bp_ratio);
            bool has_wm = x->tm_at_ms > 0 && x->tm_watermark != INT64_MIN;
            if (has_wm) {
                any_wm = true;
                wm = EDDY_MIN(wm, x->tm_watermark);
            }
            json_array_append_new(
                subs,
                json_pack("{s:i, s:I, s:f, s:I, s:f, s:f, s:o}", "subtask", k,
                          "records_in", (json_int_t)x->tm_records_in,
                          "records_in_per_second", x->tm_rate, "records_out",
                          (json_int_t)x->tm_records_out,
                          "records_out_per_second", x->tm_rate_out,
                          "backpressure_ratio", x->tm_bp_ratio, "watermark",
                          has_wm ? json_integer(x->tm_watermark)
                                 : json_null()));
        }
        json_array_append_new(
            vs, json_pack(
                    "{s:I, s:O, s:i, s:I, s:f, s:I, s:f, s:o, s:f, s:o, s:o}",
                    "index", (json_int_t)vi, "name", json_object_get(v, "name"),
                    "parallelism", par, "records_in", (json_int_t)in,
                    "records_in_per_second", rate, "records_out",
                    (json_int_t)out, "records_out_per_second", rate_out,
                    "end_to_end_latency", latency_json(lat, lat_sum),
                    "backpressure_ratio", bp, "watermark",
                    any_wm ? json_integer(wm) : json_null(), "subtasks", subs));
    }
    int running = 0;
    for (int k = 0; k < jb->jb_ntasks; k++) {
        running += jb->jb_task_state[k] == JM_TASK_RUNNING;
    }
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:o}", "job_id", jb->jb_id,
                          "state", eddy__job_state_name(jb->jb_state), "tasks",
                          jb->jb_ntasks, "tasks_running", running, "restarts",
                          jb->jb_restarts, "vertices", vs);
    eddy__mutex_unlock(&jm->jm_mu);
    eddy__http_json(resp, 200, o);
}

static json_t *checkpoint_json(const eddy__meta_checkpoint_t *c)
{
    return json_pack(
        "{s:I, s:s, s:b, s:I, s:I, s:I}", "id", (json_int_t)c->mc_id, "path",
        c->mc_path, "savepoint", c->mc_savepoint, "size_bytes",
        (json_int_t)c->mc_size_bytes, "duration_ms",
        (json_int_t)c->mc_duration_ms, "time", (json_int_t)c->mc_time_ms);
}

static void h_job_checkpoints(void *arg, const eddy__http_req_t *req,
                              eddy__http_resp_t *resp)
{
    eddy__jm_t *jm = arg;
    eddy__mutex_lock(&jm->jm_mu);
    jm_job_t *jb = job_param(jm, req, resp);
    if (jb == NULL) {
        eddy__mutex_unlock(&jm->jm_mu);
        return;
    }
    eddy__coord_stats_t st = jb->jb_ck_stats;
    if (jb->jb_coord != NULL) {
        eddy__coord_stats(jb->jb_coord, &st);
    }
    char id[33];
    memcpy(id, jb->jb_id, sizeof(id));
    bool enabled = jb->jb_ckpt;
    int64_t interval = jb->jb_cfg.ck_interval_ms;
    eddy__mutex_unlock(&jm->jm_mu);
    eddy__meta_checkpoint_t **cs = NULL;
    size_t n = 0;
    eddy_error_t err = {0};
    json_t *hist = json_array();
    json_t *latest = json_null();
    if (eddy__meta_checkpoint_list(jm->jm_meta, id, &cs, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(hist, checkpoint_json(cs[i]));
        }
        if (n > 0) {
            json_decref(latest);
            latest = checkpoint_json(cs[0]); /* newest first */
        }
        eddy__meta_free_array(cs, n);
    }
    eddy__http_json(
        resp, 200,
        json_pack("{s:b, s:I, s:{s:I, s:I, s:I}, s:o, s:o, s:s?}", "enabled",
                  enabled, "interval_ms", (json_int_t)interval, "counts",
                  "triggered", (json_int_t)st.cs_triggered, "completed",
                  (json_int_t)st.cs_completed, "failed",
                  (json_int_t)st.cs_failed, "latest", latest, "history", hist,
                  "last_failure",
                  st.cs_last_failure[0] ? st.cs_last_failure : NULL));
}

static void h_job_exceptions(void *arg, const eddy__http_req_t *req,
                             eddy__http_resp_t *resp)
{
    eddy__jm_t *jm = arg;
    eddy__mutex_lock(&jm->jm_mu);
    jm_job_t *jb = job_param(jm, req, resp);
    char id[33];
    if (jb != NULL) {
        memcpy(id, jb->jb_id, sizeof(id));
    }
    eddy__mutex_unlock(&jm->jm_mu);
    if (jb == NULL) {
        return;
    }
    eddy__meta_exception_t **es = NULL;
    size_t n = 0;
    eddy_error_t err = {0};
    json_t *a = json_array();
    if (eddy__meta_exception_list(jm->jm_meta, id, &es, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(a, json_pack("{s:I, s:s?, s:i, s:s}", "time",
                                               (json_int_t)es[i]->me_time_ms,
                                               "task", es[i]->me_task,
                                               "subtask", es[i]->me_subtask,
                                               "message", es[i]->me_message));
        }
        eddy__meta_free_array(es, n);
    }
    eddy__http_json(resp, 200, json_pack("{s:o}", "exceptions", a));
}

static void run_cmd(eddy__jm_t *jm, const eddy__http_req_t *req,
                    eddy__http_resp_t *resp, int kind, const char *dir,
                    bool drain)
{
    jm_cmd_t c;
    memset(&c, 0, sizeof(c));
    c.cm_kind = kind;
    const char *id = req->hr_params[0];
    if (!valid_id(id)) {
        eddy__http_error(resp, 404, "no job with id '%.64s'", id);
        return;
    }
    memcpy(c.cm_job, id, 33);
    if (dir != NULL) {
        eddy__fmt(c.cm_dir, sizeof(c.cm_dir), "%s", dir);
    }
    c.cm_drain = drain;
    eddy__mutex_lock(&jm->jm_mu);
    eddy__jm_command(jm, &c);
    eddy__mutex_unlock(&jm->jm_mu);
    eddy__http_json(resp, c.cm_status, c.cm_reply);
}

static void h_job_cancel(void *arg, const eddy__http_req_t *req,
                         eddy__http_resp_t *resp)
{
    run_cmd(arg, req, resp, JM_CMD_CANCEL, NULL, false);
}

/* A savepoint directory from a request: absolute, no "..", sane length. */
static bool sp_dir_ok(const char *d, eddy__http_resp_t *resp)
{
    if (d == NULL) {
        return true;
    }
    if (d[0] != '/' || strlen(d) > 900 || strstr(d, "/../") != NULL ||
        (strlen(d) >= 3 && strcmp(d + strlen(d) - 3, "/..") == 0)) {
        eddy__http_error(resp, 400,
                         "a savepoint directory must be an absolute path "
                         "without '..'");
        return false;
    }
    return true;
}

static void h_job_savepoint(void *arg, const eddy__http_req_t *req,
                            eddy__http_resp_t *resp)
{
    json_t *body = NULL;
    if (eddy__http_body_json(req, resp, &body) != 0) {
        return;
    }
    json_t *d = json_object_get(body, "dir");
    if (d == NULL) {
        d = json_object_get(body, "target_directory");
    }
    if (d != NULL && !json_is_string(d)) {
        eddy__http_error(resp, 400, "\"dir\" must be a string");
    } else if (sp_dir_ok(json_string_value(d), resp)) {
        run_cmd(arg, req, resp, JM_CMD_SAVEPOINT, json_string_value(d), false);
    }
    json_decref(body);
}

static void h_job_stop(void *arg, const eddy__http_req_t *req,
                       eddy__http_resp_t *resp)
{
    json_t *body = NULL;
    if (eddy__http_body_json(req, resp, &body) != 0) {
        return;
    }
    json_t *d = json_object_get(body, "savepoint_dir");
    if (d == NULL) {
        d = json_object_get(body, "dir");
    }
    json_t *drain = json_object_get(body, "drain");
    if ((d != NULL && !json_is_string(d)) ||
        (drain != NULL && !json_is_boolean(drain))) {
        eddy__http_error(resp, 400,
                         "\"savepoint_dir\" must be a string and \"drain\" "
                         "a boolean");
    } else if (sp_dir_ok(json_string_value(d), resp)) {
        run_cmd(arg, req, resp, JM_CMD_STOP, json_string_value(d),
                json_is_true(drain));
    }
    json_decref(body);
}

static void h_job_savepoint_get(void *arg, const eddy__http_req_t *req,
                                eddy__http_resp_t *resp)
{
    eddy__jm_t *jm = arg;
    const char *id = req->hr_params[0];
    const char *rid = req->hr_params[1];
    if (!valid_id(id) || !valid_id(rid)) {
        eddy__http_error(resp, 404, "no such savepoint request");
        return;
    }
    eddy__meta_savepoint_t *sp = NULL;
    eddy_error_t err = {0};
    if (eddy__meta_savepoint_get(jm->jm_meta, id, rid, &sp, &err) != 0) {
        eddy__http_error(resp, err.code == EDDY_ERR_NOT_FOUND ? 404 : 500, "%s",
                         err.msg);
        return;
    }
    eddy__http_json(resp, 200,
                    json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:I}", "request_id",
                              sp->ms_request_id, "status",
                              eddy__savepoint_status_name(sp->ms_status),
                              "path", sp->ms_path, "error", sp->ms_error,
                              "created", (json_int_t)sp->ms_created_ms,
                              "finished", (json_int_t)sp->ms_finished_ms));
    eddy__meta_free(sp);
}

static void h_artifact(void *arg, const eddy__http_req_t *req,
                       eddy__http_resp_t *resp)
{
    eddy__jm_t *jm = arg;
    eddy__mutex_lock(&jm->jm_mu);
    jm_job_t *jb = job_param(jm, req, resp);
    char *path = jb != NULL ? eddy__strdup(jb->jb_artifact) : NULL;
    eddy__mutex_unlock(&jm->jm_mu);
    if (path == NULL) {
        return;
    }
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (f == NULL || fstat(fileno(f), &sb) != 0 || sb.st_size > (1 << 30)) {
        eddy__http_error(resp, 500, "the job's artifact is missing");
        if (f != NULL) {
            fclose(f);
        }
        free(path);
        return;
    }
    char *buf = eddy__malloc((size_t)sb.st_size + 1);
    size_t n = fread(buf, 1, (size_t)sb.st_size, f);
    fclose(f);
    free(path);
    resp->hs_status = 200;
    resp->hs_body = buf;
    resp->hs_body_len = n;
    resp->hs_content_type = "application/octet-stream";
}

static int parse_int_field(const eddy__http_part_t *p, int64_t lo, int64_t hi,
                           int64_t *out)
{
    if (p == NULL) {
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(p->hp_value != NULL ? p->hp_value : "", &end, 10);
    if (p->hp_value == NULL || p->hp_value[0] == '\0' || *end != '\0' ||
        errno != 0 || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

static void h_submit(void *arg, const eddy__http_req_t *req,
                     eddy__http_resp_t *resp)
{
    eddy__jm_t *jm = arg;
    const eddy__http_part_t *file = eddy__http_part(req, "job_file");
    if (file == NULL || file->hp_file_path == NULL) {
        eddy__http_error(resp, 400,
                         "POST /jobs/submit takes a multipart form with the "
                         "job's shared object in a file field named "
                         "job_file (curl -F job_file=@job.so ...)");
        return;
    }
    int64_t par = 0, interval = 0;
    if (parse_int_field(eddy__http_part(req, "parallelism"), 1, MAX_PARALLELISM,
                        &par) != 0) {
        eddy__http_error(resp, 400, "parallelism must be an integer in 1..%d",
                         MAX_PARALLELISM);
        return;
    }
    const eddy__http_part_t *ci = eddy__http_part(req, "checkpoint_interval");
    if (ci != NULL && (ci->hp_value == NULL ||
                       eddy__parse_duration_ms(ci->hp_value, &interval) != 0 ||
                       interval < 0)) {
        eddy__http_error(resp, 400,
                         "checkpoint_interval must be a duration (ms, or "
                         "with a unit: 10s)");
        return;
    }
    const eddy__http_part_t *sp = eddy__http_part(req, "savepoint_path");
    const char *savepoint =
        sp != NULL && sp->hp_value != NULL && sp->hp_value[0] != '\0'
            ? sp->hp_value
            : NULL;
    if (savepoint != NULL && !sp_dir_ok(savepoint, resp)) {
        return;
    }
    json_t *args = json_array();
    const eddy__http_part_t *ap = eddy__http_part(req, "args");
    if (ap != NULL && ap->hp_value != NULL) {
        json_error_t je;
        json_t *a = json_loads(ap->hp_value, 0, &je);
        bool ok = json_is_array(a);
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v)
        {
            ok = ok && json_is_string(v);
        }
        if (!ok) {
            json_decref(a);
            json_decref(args);
            eddy__http_error(resp, 400,
                             "args must be a JSON array of strings, e.g. "
                             "[\"--count\", \"100\"]");
            return;
        }
        json_decref(args);
        args = a;
    }
    char job_id[33];
    eddy_error_t err = {0};
    int rc = eddy__jm_submit(jm, file->hp_file_path, file->hp_filename,
                             (int)par, interval, savepoint, args, job_id, &err);
    json_decref(args);
    if (rc != 0) {
        eddy__http_error(resp, rc == EDDY_ERR_IO ? 500 : 400, "%s", err.msg);
        return;
    }
    eddy__http_json(resp, 200, json_pack("{s:s}", "job_id", job_id));
}

/* One task of a running job, as the per-task series list it. */
typedef struct prom_task {
    const jm_job_t *pt_job;
    int pt_task;          /* global index */
    const char *pt_vname; /* its vertex's name */
    int pt_subtask;
} prom_task_t;

/* The tasks of the running jobs that a TaskManager reported on (jm_mu). */
static prom_task_t *prom_tasks(eddy__jm_t *jm, size_t *n)
{
    size_t cap = 0;
    for (int i = 0; i < jm->jm_njobs; i++) {
        cap += (size_t)jm->jm_jobs[i]->jb_ntasks;
    }
    prom_task_t *pt = eddy__calloc(cap + 1, sizeof(*pt));
    *n = 0;
    for (int i = 0; i < jm->jm_njobs; i++) {
        const jm_job_t *jb = jm->jm_jobs[i];
        if (jb->jb_state != EDDY__JOB_RUNNING) {
            continue;
        }
        size_t vi;
        json_t *v;
        int t = 0;
        json_array_foreach(json_object_get(jb->jb_plan, "vertices"), vi, v)
        {
            int par =
                (int)json_integer_value(json_object_get(v, "parallelism"));
            for (int sub = 0; sub < par && t < jb->jb_ntasks; sub++, t++) {
                if (jb->jb_metrics[t].tm_at_ms != 0 &&
                    jb->jb_task_tm[t] != NULL) {
                    pt[(*n)++] = (prom_task_t){
                        jb, t, json_string_value(json_object_get(v, "name")),
                        sub};
                }
            }
        }
    }
    return pt;
}

static void prom_labels(eddy__bytes_t *b, const char *name,
                        const prom_task_t *p, const char *extra)
{
    eddy__prom_task_labels(b, name, p->pt_job->jb_id, p->pt_job->jb_name,
                           p->pt_vname, p->pt_subtask,
                           p->pt_job->jb_task_tm[p->pt_task]->tm_id, extra);
}

/* Prometheus text format: the cluster, and every running task's figures as
 * its TaskManager last reported them. */
static void h_metrics(void *arg, const eddy__http_req_t *req,
                      eddy__http_resp_t *resp)
{
    EDDY_UNUSED(req);
    eddy__jm_t *jm = arg;
    eddy__bytes_t b = {0};
    eddy__mutex_lock(&jm->jm_mu);
    int total, active;
    int free_slots = eddy__jm_free_slots(jm, &total, &active);
    eddy__prom_header(&b, "eddy_task_managers", "gauge",
                      "TaskManagers registered and alive.");
    eddy__prom_printf(&b, "eddy_task_managers %d\n", active);
    eddy__prom_header(&b, "eddy_slots_total", "gauge",
                      "Slots offered by live TaskManagers.");
    eddy__prom_printf(&b, "eddy_slots_total %d\n", total);
    eddy__prom_header(&b, "eddy_slots_available", "gauge",
                      "Slots not running a job.");
    eddy__prom_printf(&b, "eddy_slots_available %d\n", free_slots);
    eddy__prom_header(&b, "eddy_restarts_total", "counter",
                      "Restarts of a job.");
    for (int i = 0; i < jm->jm_njobs; i++) {
        eddy__prom_printf(&b, "eddy_restarts_total{job_id=\"%s\"} %d\n",
                          jm->jm_jobs[i]->jb_id, jm->jm_jobs[i]->jb_restarts);
    }
    size_t n;
    prom_task_t *pt = prom_tasks(jm, &n);
    for (int k = 0; k < EDDY__PROM_TASK_SERIES_COUNT; k++) {
        eddy__prom_task_header(&b, (eddy__prom_task_series_t)k);
        for (size_t i = 0; i < n; i++) {
            const jm_task_metrics_t *x =
                &pt[i].pt_job->jb_metrics[pt[i].pt_task];
            if (k == EDDY__PROM_WATERMARK && x->tm_watermark == INT64_MIN) {
                continue;
            }
            prom_labels(&b, eddy__prom_task_name((eddy__prom_task_series_t)k),
                        &pt[i], NULL);
            switch (k) {
            case EDDY__PROM_RECORDS_IN:
            case EDDY__PROM_RECORDS_OUT:
                eddy__prom_printf(
                    &b, "%llu\n",
                    (unsigned long long)(k == EDDY__PROM_RECORDS_IN
                                             ? x->tm_records_in
                                             : x->tm_records_out));
                break;
            case EDDY__PROM_BACKPRESSURE:
                eddy__prom_printf(&b, "%.6f\n", x->tm_bp_ratio);
                break;
            default:
                eddy__prom_printf(&b, "%.3f\n",
                                  (double)x->tm_watermark / 1000.0);
            }
        }
    }
    /* End-to-end latency of the latency markers, per task. */
    eddy__prom_header(&b, "eddy_end_to_end_latency_seconds", "histogram",
                      "Age of latency markers (from their source) when they "
                      "reached a task.");
    for (size_t i = 0; i < n; i++) {
        const jm_task_metrics_t *x = &pt[i].pt_job->jb_metrics[pt[i].pt_task];
        uint64_t cum = 0;
        for (int k = 0; k < EDDY__LAT_BUCKETS; k++) {
            cum += x->tm_lat[k];
        }
        if (cum == 0) {
            continue;
        }
        cum = 0;
        for (int k = 0; k < EDDY__LAT_BUCKETS; k++) {
            char le[48];
            if (k < EDDY__LAT_BUCKETS - 1) {
                snprintf(le, sizeof(le), "le=\"%g\"",
                         eddy__lat_bounds_ms[k] / 1000.0);
            } else {
                snprintf(le, sizeof(le), "le=\"+Inf\"");
            }
            cum += x->tm_lat[k];
            prom_labels(&b, "eddy_end_to_end_latency_seconds_bucket", &pt[i],
                        le);
            eddy__prom_printf(&b, "%llu\n", (unsigned long long)cum);
        }
        prom_labels(&b, "eddy_end_to_end_latency_seconds_sum", &pt[i], NULL);
        eddy__prom_printf(&b, "%.6f\n", (double)x->tm_lat_sum_us / 1e6);
        prom_labels(&b, "eddy_end_to_end_latency_seconds_count", &pt[i], NULL);
        eddy__prom_printf(&b, "%llu\n", (unsigned long long)cum);
    }
    free(pt);
    eddy__prom_header(&b, "eddy_checkpoints_total", "counter",
                      "Checkpoints by result.");
    for (int i = 0; i < jm->jm_njobs; i++) {
        jm_job_t *jb = jm->jm_jobs[i];
        if (jb->jb_coord == NULL) {
            continue;
        }
        eddy__coord_stats_t st;
        eddy__coord_stats(jb->jb_coord, &st);
        eddy__prom_printf(
            &b,
            "eddy_checkpoints_total{job_id=\"%s\",result=\"completed\"} "
            "%llu\n"
            "eddy_checkpoints_total{job_id=\"%s\",result=\"failed\"} %llu\n",
            jb->jb_id, (unsigned long long)st.cs_completed, jb->jb_id,
            (unsigned long long)st.cs_failed);
    }
    eddy__mutex_unlock(&jm->jm_mu);
    resp->hs_status = 200;
    resp->hs_body = (char *)b.b_data; /* the server frees it */
    resp->hs_body_len = b.b_len;
    resp->hs_content_type = "text/plain; version=0.0.4";
}

void eddy__jm_rest_routes(eddy__jm_t *jm)
{
    eddy__http_server_t *s = jm->jm_http;
    eddy__http_route(s, "GET", "/", h_health, jm);
    eddy__http_route(s, "GET", "/overview", h_overview, jm);
    eddy__http_route(s, "GET", "/cluster/metrics", h_cluster_metrics, jm);
    eddy__http_route(s, "GET", "/taskmanagers", h_taskmanagers, jm);
    eddy__http_route(s, "GET", "/metrics", h_metrics, jm);
    eddy__http_route(s, "GET", "/jobs", h_jobs, jm);
    eddy__http_route(s, "POST", "/jobs/submit", h_submit, jm);
    eddy__http_route(s, "GET", "/jobs/{id}", h_job, jm);
    eddy__http_route(s, "GET", "/jobs/{id}/status", h_job_status, jm);
    eddy__http_route(s, "GET", "/jobs/{id}/metrics", h_job_metrics, jm);
    eddy__http_route(s, "GET", "/jobs/{id}/checkpoints", h_job_checkpoints, jm);
    eddy__http_route(s, "GET", "/jobs/{id}/exceptions", h_job_exceptions, jm);
    eddy__http_route(s, "POST", "/jobs/{id}/cancel", h_job_cancel, jm);
    eddy__http_route(s, "POST", "/jobs/{id}/savepoint", h_job_savepoint, jm);
    eddy__http_route(s, "GET", "/jobs/{id}/savepoints/{request}",
                     h_job_savepoint_get, jm);
    eddy__http_route(s, "POST", "/jobs/{id}/stop", h_job_stop, jm);
    eddy__http_route(s, "GET", "/jobs/{id}/artifact", h_artifact, jm);
}
