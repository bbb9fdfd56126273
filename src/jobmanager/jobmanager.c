/*
 * eddy — the JobManager's main loop: TaskManagers, scheduling, job states,
 * checkpoints and recovery (jobmanager.h has the design).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * A job's life here:
 *
 *   CREATED ──(slots)──> RUNNING ──(all tasks finished)──> FINISHED
 *      │                    │
 *      │        (task failed / TaskManager lost)
 *      │                    v
 *      │               RESTARTING ──(old tasks gone, delay over)──> RUNNING
 *      │                    │ (restart strategy exhausted)
 *      v                    v
 *   FAILED (no slots)     FAILED
 *
 * plus CANCELLING → CANCELED from any live state. Each deployment is an
 * attempt with its own number; TaskManagers tag everything (task states,
 * data-plane channels) with it, so messages about an older attempt are
 * recognised and dropped. A new attempt is deployed only after every task
 * of the previous one has ended (or its TaskManager is gone), so an old
 * sink can never pre-commit after the new attempt has rolled its orphans
 * back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/storage.h"
#include "common/digest.h"
#include "common/log.h"
#include "jobmanager/inspect.h"
#include "jobmanager/jm_internal.h"
#include "runtime/runtime.h"

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    return eddy__now_ms();
}

const char *eddy__jm_task_state_name(int st)
{
    static const char *const names[] = {"CREATED",  "DEPLOYING", "RUNNING",
                                        "FINISHED", "CANCELING", "CANCELED",
                                        "FAILED"};
    return st >= 0 && st <= 6 ? names[st] : "UNKNOWN";
}

static bool task_terminal(int st)
{
    return st == JM_TASK_FINISHED || st == JM_TASK_CANCELED ||
           st == JM_TASK_FAILED || st == JM_TASK_NONE;
}

void eddy__jm_wake(eddy__jm_t *jm)
{
    char c = 1;
    ssize_t n = write(jm->jm_wake[1], &c, 1);
    EDDY_UNUSED(n);
}

jm_job_t *eddy__jm_find_job(eddy__jm_t *jm, const char *id)
{
    for (int i = 0; i < jm->jm_njobs; i++) {
        if (strcmp(jm->jm_jobs[i]->jb_id, id) == 0) {
            return jm->jm_jobs[i];
        }
    }
    return NULL;
}

int eddy__jm_free_slots(eddy__jm_t *jm, int *total, int *active_tms)
{
    int free_slots = 0, all = 0, act = 0;
    for (int i = 0; i < jm->jm_ntms; i++) {
        jm_tm_t *tm = jm->jm_tms[i];
        if (!tm->tm_registered || tm->tm_lost) {
            continue;
        }
        act++;
        all += tm->tm_slots;
        for (int s = 0; s < tm->tm_slots; s++) {
            free_slots += tm->tm_slot_job[s] == NULL;
        }
    }
    if (total != NULL) {
        *total = all;
    }
    if (active_tms != NULL) {
        *active_tms = act;
    }
    return free_slots;
}

static void send_env(jm_tm_t *tm, eddy__rpc_env_t *env)
{
    eddy_error_t err = {0};
    if (!tm->tm_lost && eddy__rpc_send(&tm->tm_conn, env, &err) != 0) {
        eddy__log_warn("TaskManager %s: %s", tm->tm_id, err.msg);
    }
}

/* ---- job state ---- */

static void set_state(eddy__jm_t *jm, jm_job_t *jb, eddy__job_state_t to,
                      const char *reason)
{
    if (jb->jb_state == to) {
        return;
    }
    eddy_error_t err = {0};
    if (eddy__meta_job_set_state(jm->jm_meta, jb->jb_id, to, reason, NULL,
                                 &err) != 0) {
        eddy__log_warn("job %s: metadata store: %s", jb->jb_id, err.msg);
    }
    eddy__log_info("job %s (%s): %s -> %s%s%s", jb->jb_id, jb->jb_name,
                   eddy__job_state_name(jb->jb_state), eddy__job_state_name(to),
                   reason != NULL ? ": " : "", reason != NULL ? reason : "");
    jb->jb_state = to;
    if (eddy__job_state_terminal(to)) {
        jb->jb_end_ms = now_ms();
    }
}

static void add_exception(eddy__jm_t *jm, jm_job_t *jb, const char *task,
                          int subtask, const char *msg)
{
    eddy__meta_exception_t e = {0, task, subtask, msg};
    eddy_error_t err = {0};
    if (eddy__meta_exception_add(jm->jm_meta, jb->jb_id, &e, &err) != 0) {
        eddy__log_warn("job %s: metadata store: %s", jb->jb_id, err.msg);
    }
    eddy__fmt(jb->jb_failure, sizeof(jb->jb_failure), "%s", msg);
}

static void release_slots(eddy__jm_t *jm, jm_job_t *jb)
{
    for (int i = 0; i < jm->jm_ntms; i++) {
        jm_tm_t *tm = jm->jm_tms[i];
        for (int s = 0; s < tm->tm_slots; s++) {
            if (tm->tm_slot_job[s] == jb) {
                tm->tm_slot_job[s] = NULL;
            }
        }
    }
}

/* The TaskManagers running tasks of the job's current attempt. */
static int job_tms(jm_job_t *jb, jm_tm_t **out, int max)
{
    int n = 0;
    for (int t = 0; t < jb->jb_ntasks; t++) {
        jm_tm_t *tm = jb->jb_task_tm[t];
        bool seen = tm == NULL;
        for (int k = 0; k < n && !seen; k++) {
            seen = out[k] == tm;
        }
        if (!seen && n < max) {
            out[n++] = tm;
        }
    }
    return n;
}

/* Tells every TaskManager of the attempt to end it. */
static void send_cancel(jm_job_t *jb)
{
    jm_tm_t *tms[256];
    int n = job_tms(jb, tms, 256);
    Eddy__Rpc__CancelJob cj = EDDY__RPC__CANCEL_JOB__INIT;
    cj.job_id = jb->jb_id;
    cj.attempt = (uint32_t)jb->jb_attempt;
    eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
    env.body_case = EDDY__RPC__ENVELOPE__BODY_CANCEL_JOB;
    env.cancel_job = &cj;
    for (int i = 0; i < n; i++) {
        send_env(tms[i], &env);
    }
}

static void cancel_attempt(jm_job_t *jb)
{
    send_cancel(jb);
    for (int t = 0; t < jb->jb_ntasks; t++) {
        if (!task_terminal(jb->jb_task_state[t])) {
            jb->jb_task_state[t] = JM_TASK_CANCELING;
        }
        if (jb->jb_task_tm[t] != NULL && jb->jb_task_tm[t]->tm_lost) {
            jb->jb_task_state[t] = JM_TASK_CANCELED;
        }
    }
}

static bool attempt_gone(jm_job_t *jb)
{
    for (int t = 0; t < jb->jb_ntasks; t++) {
        if (!task_terminal(jb->jb_task_state[t])) {
            return false;
        }
    }
    return true;
}

static void stop_coord(jm_job_t *jb)
{
    if (jb->jb_coord != NULL) {
        eddy__coord_stop(jb->jb_coord);
    }
}

static void after_coord(eddy__jm_t *jm, jm_job_t *jb);

static void end_job(eddy__jm_t *jm, jm_job_t *jb, eddy__job_state_t st,
                    const char *reason)
{
    stop_coord(jb);
    after_coord(jm, jb);
    if (jb->jb_coord != NULL) {
        eddy__coord_destroy(jb->jb_coord);
        jb->jb_coord = NULL;
    }
    for (int i = 0; i < jb->jb_nsp; i++) {
        if (jb->jb_sp[i].sp_result == 0) {
            eddy_error_t e = {0};
            eddy__meta_savepoint_end(jm->jm_meta, jb->jb_id,
                                     jb->jb_sp[i].sp_request,
                                     EDDY__SAVEPOINT_FAILED,
                                     "the job ended before the savepoint "
                                     "completed",
                                     &e);
            jb->jb_sp[i].sp_result = -1;
        }
    }
    release_slots(jm, jb);
    set_state(jm, jb, st, reason);
}

/* A task failed or a TaskManager was lost: restart or fail the job. */
static void fail_attempt(eddy__jm_t *jm, jm_job_t *jb, const char *task,
                         int subtask, const char *cause)
{
    if (jb->jb_state != EDDY__JOB_RUNNING) {
        return; /* already restarting, cancelling or ended */
    }
    eddy__log_warn("job %s: %s", jb->jb_id, cause);
    add_exception(jm, jb, task, subtask, cause);
    stop_coord(jb);
    cancel_attempt(jb);
    release_slots(jm, jb);
    if (jb->jb_ckpt &&
        eddy__restart_allowed(&jb->jb_cfg, jb->jb_restarts + 1)) {
        jb->jb_restarts++;
        /* The exponential delay starts over once the job has run without
         * a failure for an hour (restart_reset_ms): a job that fails daily
         * should not wait a minute each time. */
        if (jb->jb_running_since > 0 &&
            now_ms() - jb->jb_running_since >= jb->jb_cfg.restart_reset_ms) {
            jb->jb_backoff = 0;
        }
        jb->jb_backoff++;
        int64_t delay = eddy__restart_delay_ms(&jb->jb_cfg, jb->jb_backoff);
        jb->jb_deploy_at = now_ms() + delay;
        jb->jb_waiting_since = 0;
        jb->jb_cancel_deadline = now_ms() + 10000;
        char why[1200];
        eddy__fmt(why, sizeof(why), "%s; restarting in %lld ms", cause,
                  (long long)delay);
        set_state(jm, jb, EDDY__JOB_RESTARTING, why);
        return;
    }
    set_state(jm, jb, EDDY__JOB_FAILING, cause);
    end_job(jm, jb, EDDY__JOB_FAILED,
            jb->jb_ckpt ? "the restart strategy allows no more restarts"
                        : "checkpointing is off, so the job cannot restart "
                          "without duplicating results");
}

/* ---- checkpoints: coordinator hooks (main thread, coordinator locked) */

static void hook_trigger(void *arg, int64_t id, bool savepoint)
{
    jm_job_t *jb = arg;
    char dir[4096];
    if (savepoint && jb->jb_sp_pending_dir != NULL) {
        eddy__fmt(dir, sizeof(dir), "%s", jb->jb_sp_pending_dir);
    } else {
        eddy__fmt(dir, sizeof(dir), "%s/%s/chk-%lld",
                  eddy__config_ck_path(&jb->jb_cfg), jb->jb_id, (long long)id);
    }
    Eddy__Rpc__TriggerCheckpoint tc = EDDY__RPC__TRIGGER_CHECKPOINT__INIT;
    tc.job_id = jb->jb_id;
    tc.checkpoint_id = id;
    tc.timestamp_ms = now_ms();
    tc.savepoint = savepoint;
    tc.target_dir = dir;
    tc.attempt = (uint32_t)jb->jb_attempt;
    tc.drain = savepoint && jb->jb_sp_pending_drain;
    eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
    env.body_case = EDDY__RPC__ENVELOPE__BODY_TRIGGER_CHECKPOINT;
    env.trigger_checkpoint = &tc;
    jm_tm_t *tms[256];
    int n = job_tms(jb, tms, 256);
    for (int i = 0; i < n; i++) {
        send_env(tms[i], &env);
    }
}

static void notify(jm_job_t *jb, int64_t id, bool complete)
{
    Eddy__Rpc__CheckpointComplete cc = EDDY__RPC__CHECKPOINT_COMPLETE__INIT;
    Eddy__Rpc__CheckpointAbort ca = EDDY__RPC__CHECKPOINT_ABORT__INIT;
    eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
    if (complete) {
        cc.job_id = jb->jb_id;
        cc.checkpoint_id = id;
        env.body_case = EDDY__RPC__ENVELOPE__BODY_CHECKPOINT_COMPLETE;
        env.checkpoint_complete = &cc;
    } else {
        ca.job_id = jb->jb_id;
        ca.checkpoint_id = id;
        ca.reason = "";
        env.body_case = EDDY__RPC__ENVELOPE__BODY_CHECKPOINT_ABORT;
        env.checkpoint_abort = &ca;
    }
    jm_tm_t *tms[256];
    int n = job_tms(jb, tms, 256);
    for (int i = 0; i < n; i++) {
        send_env(tms[i], &env);
    }
    for (int i = 0; i < jb->jb_nsp; i++) {
        if (jb->jb_sp[i].sp_id == id && jb->jb_sp[i].sp_result == 0) {
            jb->jb_sp[i].sp_result = complete ? 1 : -1;
        }
    }
}

static void hook_complete(void *arg, int64_t id)
{
    notify(arg, id, true);
}

static void hook_abort(void *arg, int64_t id)
{
    notify(arg, id, false);
}

/* After the coordinator ran: record completed checkpoints and finished
 * savepoint requests in the store; stop jobs whose stop-savepoint is
 * done. */
static void after_coord(eddy__jm_t *jm, jm_job_t *jb)
{
    if (jb->jb_coord == NULL) {
        return;
    }
    eddy__coord_stats_t st;
    eddy__coord_stats(jb->jb_coord, &st);
    jb->jb_ck_stats = st;
    eddy_error_t e = {0};
    if (st.cs_latest_id > jb->jb_recorded_ckpt) {
        jb->jb_recorded_ckpt = st.cs_latest_id;
        bool sp = false;
        for (int i = 0; i < jb->jb_nsp; i++) {
            sp = sp || jb->jb_sp[i].sp_id == st.cs_latest_id;
        }
        eddy__meta_checkpoint_t c = {
            st.cs_latest_id,          st.cs_latest_path,  sp, 0,
            st.cs_latest_duration_ms, st.cs_latest_end_ms};
        if (eddy__meta_checkpoint_add(jm->jm_meta, jb->jb_id, &c,
                                      jb->jb_cfg.ck_retained, &e) != 0) {
            eddy__log_warn("job %s: metadata store: %s", jb->jb_id, e.msg);
        }
    }
    for (int i = 0; i < jb->jb_nsp; i++) {
        jm_savepoint_t *s = &jb->jb_sp[i];
        if (s->sp_result == 0 || s->sp_request[0] == '\0') {
            continue;
        }
        eddy__meta_savepoint_end(jm->jm_meta, jb->jb_id, s->sp_request,
                                 s->sp_result > 0 ? EDDY__SAVEPOINT_COMPLETED
                                                  : EDDY__SAVEPOINT_FAILED,
                                 s->sp_result > 0 ? s->sp_dir
                                                  : (st.cs_last_failure[0]
                                                         ? st.cs_last_failure
                                                         : "the savepoint was "
                                                           "aborted"),
                                 &e);
        eddy__log_info("job %s: savepoint %s %s", jb->jb_id, s->sp_dir,
                       s->sp_result > 0 ? "completed" : "failed");
        if (s->sp_stop && s->sp_result > 0 &&
            jb->jb_state == EDDY__JOB_RUNNING) {
            stop_coord(jb);
            cancel_attempt(jb);
            jb->jb_stopping = true;
            jb->jb_cancel_deadline = now_ms() + 10000;
            set_state(jm, jb, EDDY__JOB_CANCELLING, "stopped with a savepoint");
        }
        s->sp_request[0] = '\0';
    }
}

/* ---- scheduling and deployment ---- */

/* Picks a TaskManager for each of `need` slots: spread (the TaskManager
 * with the most free slots each time) or bin-pack (fill one, then the
 * next). Returns false if there are not enough free slots. */
static bool pick_slots(eddy__jm_t *jm, int need, jm_tm_t **tm_of_slot,
                       int *slot_idx)
{
    int nfree[1024];
    int n = EDDY_MIN(jm->jm_ntms, 1024);
    int total = 0;
    for (int i = 0; i < n; i++) {
        jm_tm_t *tm = jm->jm_tms[i];
        nfree[i] = 0;
        if (tm->tm_registered && !tm->tm_lost) {
            for (int s = 0; s < tm->tm_slots; s++) {
                nfree[i] += tm->tm_slot_job[s] == NULL;
            }
        }
        total += nfree[i];
    }
    if (total < need) {
        return false;
    }
    for (int k = 0; k < need; k++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (nfree[i] == 0) {
                continue;
            }
            if (best < 0 || (!jm->jm_binpack && nfree[i] > nfree[best])) {
                best = i;
            }
        }
        jm_tm_t *tm = jm->jm_tms[best];
        nfree[best]--;
        tm_of_slot[k] = tm;
        /* the first free slot not yet taken in this round */
        for (int s = 0; s < tm->tm_slots; s++) {
            bool taken = tm->tm_slot_job[s] != NULL;
            for (int j = 0; j < k && !taken; j++) {
                taken = tm_of_slot[j] == tm && slot_idx[j] == s;
            }
            if (!taken) {
                slot_idx[k] = s;
                break;
            }
        }
    }
    return true;
}

static void put_option(Eddy__Rpc__KeyValue *kv, Eddy__Rpc__KeyValue **pp,
                       size_t *n, const char *k, const char *v)
{
    eddy__rpc__key_value__init(&kv[*n]);
    kv[*n].key = (char *)k;
    kv[*n].value = (char *)v;
    pp[*n] = &kv[*n];
    (*n)++;
}

static int coord_setup(eddy__jm_t *jm, jm_job_t *jb, int64_t last_id,
                       eddy_error_t *err)
{
    if (!jb->jb_ckpt || jb->jb_coord != NULL) {
        return 0;
    }
    EDDY_UNUSED(jm);
    char job_dir[4096];
    eddy__fmt(job_dir, sizeof(job_dir), "%s/%s",
              eddy__config_ck_path(&jb->jb_cfg), jb->jb_id);
    eddy__coord_hooks_t hooks = {jb, hook_trigger, hook_complete, hook_abort};
    return eddy__coord_new(&jb->jb_cfg, job_dir, jb->jb_name,
                           json_object_get(jb->jb_plan, "operators"),
                           jb->jb_ntasks, last_id, &hooks, &jb->jb_coord, err);
}

/* Where the attempt restores from: the newest usable checkpoint of the
 * job, else the savepoint it was submitted with, else nothing. */
static void find_restore(jm_job_t *jb, int64_t *last_id)
{
    free(jb->jb_restore_dir);
    jb->jb_restore_dir = NULL;
    *last_id = 0;
    char job_dir[4096];
    eddy__fmt(job_dir, sizeof(job_dir), "%s/%s",
              eddy__config_ck_path(&jb->jb_cfg), jb->jb_id);
    json_t *meta = NULL;
    char *dir = NULL;
    eddy_error_t e = {0};
    if (jb->jb_ckpt && eddy__job_load_restore(job_dir, &meta, &dir, &e) == 0) {
        jb->jb_restore_dir = dir;
        *last_id = json_integer_value(json_object_get(meta, "checkpoint_id"));
        json_decref(meta);
        return;
    }
    if (jb->jb_savepoint != NULL &&
        eddy__job_load_restore(jb->jb_savepoint, &meta, &dir, &e) == 0) {
        jb->jb_restore_dir = dir;
        *last_id = json_integer_value(json_object_get(meta, "checkpoint_id"));
        json_decref(meta);
    }
}

static void deploy(eddy__jm_t *jm, jm_job_t *jb)
{
    int need = jb->jb_slots_needed;
    jm_tm_t *tm_of_slot[1024];
    int slot_idx[1024];
    int total = 0;
    int free_slots = eddy__jm_free_slots(jm, &total, NULL);
    if (need > 1024 || !pick_slots(jm, need, tm_of_slot, slot_idx)) {
        int64_t now = now_ms();
        if (jb->jb_waiting_since == 0) {
            jb->jb_waiting_since = now;
            eddy__log_info("job %s needs %d slots; %d of %d are free: "
                           "waiting up to %lld ms",
                           jb->jb_id, need, free_slots, total,
                           (long long)jm->jm_slot_wait);
        }
        if (now - jb->jb_waiting_since >= jm->jm_slot_wait) {
            char why[512];
            eddy__fmt(why, sizeof(why),
                      "not enough slots: the job needs %d (its highest "
                      "parallelism), the cluster has %d free of %d; waited "
                      "%lld ms (scheduler.slot_wait)",
                      need, free_slots, total, (long long)jm->jm_slot_wait);
            add_exception(jm, jb, NULL, -1, why);
            if (jb->jb_state == EDDY__JOB_RESTARTING) {
                set_state(jm, jb, EDDY__JOB_FAILING, why);
            }
            end_job(jm, jb, EDDY__JOB_FAILED, why);
        }
        return;
    }
    jb->jb_waiting_since = 0;
    int64_t last_id = 0;
    find_restore(jb, &last_id);
    eddy_error_t err = {0};
    if (coord_setup(jm, jb, last_id, &err) != 0) {
        add_exception(jm, jb, NULL, -1, err.msg);
        end_job(jm, jb, EDDY__JOB_FAILED, err.msg);
        return;
    }
    jb->jb_attempt++;
    memset(jb->jb_metrics, 0, sizeof(*jb->jb_metrics) * (size_t)jb->jb_ntasks);
    /* Slot sharing: slot k runs subtask k of every vertex. */
    for (int k = 0; k < need; k++) {
        tm_of_slot[k]->tm_slot_job[slot_idx[k]] = jb;
    }
    const char **placement =
        eddy__calloc((size_t)jb->jb_ntasks, sizeof(char *));
    json_t *vertices = json_object_get(jb->jb_plan, "vertices");
    int t = 0;
    size_t vi;
    json_t *v;
    json_array_foreach(vertices, vi, v)
    {
        int par = (int)json_integer_value(json_object_get(v, "parallelism"));
        for (int s = 0; s < par && t < jb->jb_ntasks; s++, t++) {
            jb->jb_task_tm[t] = tm_of_slot[s];
            jb->jb_task_state[t] = JM_TASK_DEPLOYING;
            placement[t] = tm_of_slot[s]->tm_data_addr;
        }
    }
    /* The job's configuration, as the TaskManagers apply it on top of what
     * the job's build function sets. */
    json_t *cfg = eddy__config_to_json(&jb->jb_cfg);
    Eddy__Rpc__KeyValue kv[64];
    Eddy__Rpc__KeyValue *kvp[64];
    size_t nkv = 0;
    const char *k;
    json_t *val;
    json_object_foreach(cfg, k, val)
    {
        if (nkv < 60 && json_is_string(val) &&
            strcmp(k, "savepoint.path") != 0 &&
            strncmp(k, "restart.", 8) != 0) {
            put_option(kv, kvp, &nkv, k, json_string_value(val));
        }
    }
    size_t nargs = json_array_size(jb->jb_args);
    char **args = eddy__calloc(nargs + 1, sizeof(char *));
    for (size_t i = 0; i < nargs; i++) {
        args[i] = (char *)json_string_value(json_array_get(jb->jb_args, i));
    }
    char url[256];
    eddy__fmt(url, sizeof(url), "/jobs/%s/artifact", jb->jb_id);
    Eddy__Rpc__DeployJob dj = EDDY__RPC__DEPLOY_JOB__INIT;
    dj.job_id = jb->jb_id;
    dj.attempt = (uint32_t)jb->jb_attempt;
    dj.artifact_url = url;
    dj.artifact_sha256 = jb->jb_sha256;
    dj.n_args = nargs;
    dj.args = args;
    dj.parallelism = (uint32_t)jb->jb_parallelism;
    dj.n_options = nkv;
    dj.options = kvp;
    dj.n_placement = (size_t)jb->jb_ntasks;
    dj.placement = (char **)placement;
    dj.restore_path = jb->jb_restore_dir != NULL ? jb->jb_restore_dir : "";
    dj.plan_tasks = (uint32_t)jb->jb_ntasks;
    eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
    env.body_case = EDDY__RPC__ENVELOPE__BODY_DEPLOY_JOB;
    env.deploy_job = &dj;
    jm_tm_t *tms[256];
    int n = job_tms(jb, tms, 256);
    for (int i = 0; i < n; i++) {
        send_env(tms[i], &env);
    }
    free(args);
    free(placement);
    json_decref(cfg);
    char why[256];
    eddy__fmt(why, sizeof(why), "attempt %d on %d TaskManager%s%s%s",
              jb->jb_attempt, n, n == 1 ? "" : "s",
              jb->jb_restore_dir != NULL ? ", restoring " : "",
              jb->jb_restore_dir != NULL ? jb->jb_restore_dir : "");
    if (jb->jb_state == EDDY__JOB_CREATED && jb->jb_restore_dir == NULL &&
        jb->jb_attempt > 1) {
        /* nothing: first deployment */
    }
    set_state(jm, jb, EDDY__JOB_RUNNING, why);
    jb->jb_running_since = now_ms();
    if (jb->jb_coord != NULL) {
        eddy__coord_start(jb->jb_coord, now_ms());
    }
}

static void schedule(eddy__jm_t *jm)
{
    int64_t now = now_ms();
    for (int i = 0; i < jm->jm_njobs; i++) {
        jm_job_t *jb = jm->jm_jobs[i];
        if (jb->jb_state == EDDY__JOB_RESTARTING ||
            jb->jb_state == EDDY__JOB_CANCELLING) {
            bool gone = attempt_gone(jb);
            if (!gone && now >= jb->jb_cancel_deadline) {
                eddy__log_warn("job %s: tasks of attempt %d did not confirm "
                               "their cancellation within 10 s; going on",
                               jb->jb_id, jb->jb_attempt);
                for (int t = 0; t < jb->jb_ntasks; t++) {
                    jb->jb_task_state[t] = JM_TASK_CANCELED;
                }
                gone = true;
            }
            if (!gone) {
                continue;
            }
            if (jb->jb_state == EDDY__JOB_CANCELLING) {
                end_job(
                    jm, jb,
                    jb->jb_stopping ? EDDY__JOB_FINISHED : EDDY__JOB_CANCELED,
                    jb->jb_stopping ? "stopped with a savepoint" : "canceled");
                continue;
            }
        }
        if ((jb->jb_state == EDDY__JOB_CREATED ||
             jb->jb_state == EDDY__JOB_RESTARTING) &&
            now >= jb->jb_deploy_at) {
            deploy(jm, jb);
        }
    }
}

/* ---- TaskManager messages ---- */

static jm_tm_t *find_tm(eddy__jm_t *jm, const char *id)
{
    for (int i = 0; i < jm->jm_ntms; i++) {
        if (jm->jm_tms[i]->tm_registered && !jm->jm_tms[i]->tm_lost &&
            strcmp(jm->jm_tms[i]->tm_id, id) == 0) {
            return jm->jm_tms[i];
        }
    }
    return NULL;
}

static void tm_lost(eddy__jm_t *jm, jm_tm_t *tm, const char *why)
{
    if (tm->tm_lost) {
        return;
    }
    tm->tm_lost = true;
    if (tm->tm_registered) {
        eddy__log_warn("TaskManager %s (%s) lost: %s", tm->tm_id, tm->tm_host,
                       why);
    }
    for (int i = 0; i < jm->jm_njobs; i++) {
        jm_job_t *jb = jm->jm_jobs[i];
        bool uses = false;
        for (int t = 0; t < jb->jb_ntasks; t++) {
            if (jb->jb_task_tm[t] == tm) {
                uses = true;
                if (!task_terminal(jb->jb_task_state[t])) {
                    jb->jb_task_state[t] = JM_TASK_CANCELED;
                }
            }
        }
        if (uses && jb->jb_state == EDDY__JOB_RUNNING) {
            char cause[512];
            eddy__fmt(cause, sizeof(cause), "TaskManager %s (%s) lost: %s",
                      tm->tm_id, tm->tm_host, why);
            fail_attempt(jm, jb, NULL, -1, cause);
        }
    }
    for (int s = 0; s < tm->tm_slots; s++) {
        tm->tm_slot_job[s] = NULL;
    }
}

static void on_register(eddy__jm_t *jm, jm_tm_t *tm,
                        const Eddy__Rpc__Register *r)
{
    eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
    if (r->slots == 0 || r->slots > 1024 || r->tm_id == NULL ||
        r->tm_id[0] == '\0' || strlen(r->tm_id) >= sizeof(tm->tm_id) ||
        r->data_address == NULL ||
        strlen(r->data_address) >= sizeof(tm->tm_data_addr)) {
        Eddy__Rpc__RegisterReject rj = EDDY__RPC__REGISTER_REJECT__INIT;
        rj.reason = "invalid registration (id, slots 1..1024, data address)";
        env.body_case = EDDY__RPC__ENVELOPE__BODY_REGISTER_REJECT;
        env.register_reject = &rj;
        send_env(tm, &env);
        tm_lost(jm, tm, "invalid registration");
        return;
    }
    jm_tm_t *old = find_tm(jm, r->tm_id);
    if (old != NULL && old != tm) {
        tm_lost(jm, old, "re-registered on a new connection");
    }
    eddy__fmt(tm->tm_id, sizeof(tm->tm_id), "%s", r->tm_id);
    eddy__fmt(tm->tm_host, sizeof(tm->tm_host), "%s",
              r->host != NULL ? r->host : "");
    eddy__fmt(tm->tm_data_addr, sizeof(tm->tm_data_addr), "%s",
              r->data_address);
    eddy__fmt(tm->tm_metrics_url, sizeof(tm->tm_metrics_url), "%s",
              r->metrics_url != NULL ? r->metrics_url : "");
    tm->tm_slots = (int)r->slots;
    tm->tm_slot_job = eddy__calloc((size_t)tm->tm_slots, sizeof(void *));
    tm->tm_registered = true;
    tm->tm_registered_ms = now_ms();
    Eddy__Rpc__RegisterAck ack = EDDY__RPC__REGISTER_ACK__INIT;
    char rest[128];
    /* The TaskManager fetches artifacts from the address it reached us
     * on. */
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    char host[INET6_ADDRSTRLEN] = "127.0.0.1";
    bool v6 = false;
    if (getsockname(tm->tm_conn.rc_fd, (struct sockaddr *)&sa, &sl) == 0) {
        if (sa.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host,
                      sizeof(host));
        } else if (sa.ss_family == AF_INET6) {
            v6 = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr,
                           host, sizeof(host)) != NULL;
        }
    }
    eddy__fmt(rest, sizeof(rest), v6 ? "http://[%s]:%d" : "http://%s:%d", host,
              jm->jm_rest_port);
    ack.jm_id = jm->jm_id;
    ack.heartbeat_interval_ms = (uint32_t)jm->jm_hb_interval;
    ack.heartbeat_timeout_ms = (uint32_t)jm->jm_hb_timeout;
    ack.rest_url = rest;
    env.body_case = EDDY__RPC__ENVELOPE__BODY_REGISTER_ACK;
    env.register_ack = &ack;
    send_env(tm, &env);
    eddy__log_info("TaskManager %s registered from %s: %d slots, data plane "
                   "%s",
                   tm->tm_id, tm->tm_conn.rc_peer, tm->tm_slots,
                   tm->tm_data_addr);
}

static void on_task_state(eddy__jm_t *jm, jm_tm_t *tm,
                          const Eddy__Rpc__TaskStateChange *m)
{
    jm_job_t *jb = eddy__jm_find_job(jm, m->job_id != NULL ? m->job_id : "");
    if (jb == NULL || (int)m->attempt != jb->jb_attempt ||
        (int)m->task_index >= jb->jb_ntasks ||
        jb->jb_task_tm[m->task_index] != tm) {
        return; /* an older attempt, or nonsense */
    }
    int t = (int)m->task_index;
    int st = (int)m->state;
    if (st < JM_TASK_DEPLOYING || st > JM_TASK_FAILED) {
        return;
    }
    jb->jb_task_state[t] = st;
    if (st == JM_TASK_FAILED) {
        char cause[1200];
        eddy__fmt(cause, sizeof(cause), "%s",
                  m->failure != NULL && m->failure[0] ? m->failure
                                                      : "a task failed");
        fail_attempt(jm, jb, m->vertex, (int)m->subtask, cause);
        return;
    }
    if (jb->jb_state == EDDY__JOB_RUNNING) {
        bool all = true;
        for (int i = 0; i < jb->jb_ntasks && all; i++) {
            all = jb->jb_task_state[i] == JM_TASK_FINISHED;
        }
        if (all) {
            /* A TaskManager keeps a finished attempt's data-plane channels
             * (its unsent buffers) until told: now every consumer has had
             * everything, so they can go. */
            send_cancel(jb);
            end_job(jm, jb, EDDY__JOB_FINISHED, "every task finished");
        }
    }
}

static void on_metrics(eddy__jm_t *jm, jm_tm_t *tm,
                       const Eddy__Rpc__Heartbeat *hb)
{
    int64_t now = now_ms();
    for (size_t i = 0; i < hb->n_tasks; i++) {
        const Eddy__Rpc__TaskMetrics *m = hb->tasks[i];
        jm_job_t *jb = eddy__jm_find_job(jm, m->job_id ? m->job_id : "");
        if (jb == NULL || (int)m->attempt != jb->jb_attempt ||
            (int)m->task_index >= jb->jb_ntasks ||
            jb->jb_task_tm[m->task_index] != tm) {
            continue;
        }
        jm_task_metrics_t *x = &jb->jb_metrics[m->task_index];
        if (x->tm_at_ms > 0 && now > x->tm_at_ms &&
            m->records_in >= x->tm_records_in &&
            m->backpressure_ns >= x->tm_bp_ns) {
            double dt = (double)(now - x->tm_at_ms) / 1000.0;
            x->tm_rate = (double)(m->records_in - x->tm_records_in) / dt;
            x->tm_rate_out =
                m->records_out >= x->tm_records_out
                    ? (double)(m->records_out - x->tm_records_out) / dt
                    : 0.0;
            x->tm_bp_ratio = EDDY_MIN(
                1.0, (double)(m->backpressure_ns - x->tm_bp_ns) / (dt * 1e9));
        }
        for (size_t b = 0; b < m->n_latency_buckets && b < 14; b++) {
            x->tm_lat[b] = m->latency_buckets[b];
        }
        x->tm_lat_sum_us = m->latency_sum_us;
        x->tm_records_in = m->records_in;
        x->tm_records_out = m->records_out;
        x->tm_bp_ns = m->backpressure_ns;
        x->tm_watermark = m->watermark_ms;
        x->tm_at_ms = now;
    }
}

static void on_frame(eddy__jm_t *jm, jm_tm_t *tm, eddy__rpc_env_t *env)
{
    tm->tm_last_hb_ms = now_ms();
    if (!tm->tm_registered) {
        if (env->body_case != EDDY__RPC__ENVELOPE__BODY_REGISTRATION) {
            tm_lost(jm, tm, "the first message was not a registration");
            return;
        }
        on_register(jm, tm, env->registration);
        return;
    }
    switch (env->body_case) {
    case EDDY__RPC__ENVELOPE__BODY_HEARTBEAT:
        on_metrics(jm, tm, env->heartbeat);
        break;
    case EDDY__RPC__ENVELOPE__BODY_TASK_STATE:
        on_task_state(jm, tm, env->task_state);
        break;
    case EDDY__RPC__ENVELOPE__BODY_ACK_CHECKPOINT: {
        Eddy__Rpc__AcknowledgeCheckpoint *a = env->ack_checkpoint;
        jm_job_t *jb = eddy__jm_find_job(jm, a->job_id ? a->job_id : "");
        if (jb == NULL || jb->jb_coord == NULL) {
            break;
        }
        json_error_t je;
        json_t *ops =
            json_loads(a->handles_json ? a->handles_json : "", 0, &je);
        if (!json_is_object(ops) || (int)a->task >= jb->jb_ntasks) {
            json_decref(ops);
            eddy__log_warn("job %s: malformed acknowledgement from %s",
                           jb->jb_id, tm->tm_id);
            break;
        }
        eddy__coord_ack(jb->jb_coord, a->checkpoint_id, (int)a->task, ops);
        after_coord(jm, jb);
        break;
    }
    case EDDY__RPC__ENVELOPE__BODY_DECLINE_CHECKPOINT: {
        Eddy__Rpc__DeclineCheckpoint *d = env->decline_checkpoint;
        jm_job_t *jb = eddy__jm_find_job(jm, d->job_id ? d->job_id : "");
        if (jb != NULL && jb->jb_coord != NULL &&
            (int)d->task < jb->jb_ntasks) {
            eddy__coord_decline(jb->jb_coord, d->checkpoint_id, (int)d->task,
                                d->reason ? d->reason : "declined");
            after_coord(jm, jb);
        }
        break;
    }
    default:
        eddy__log_debug("TaskManager %s sent an unexpected %s", tm->tm_id,
                        eddy__rpc_body_name((int)env->body_case));
        break;
    }
}

static void read_tm(eddy__jm_t *jm, jm_tm_t *tm)
{
    eddy_error_t err = {0};
    int rc = eddy__rpc_conn_read(&tm->tm_conn, &err);
    eddy__rpc_env_t *env;
    int n;
    /* Frames that arrived before an EOF still count. */
    while (!tm->tm_lost &&
           (n = eddy__rpc_conn_next(&tm->tm_conn, &env, &err)) == 1) {
        on_frame(jm, tm, env);
    }
    if (!tm->tm_lost && (rc != 0 || err.code != 0)) {
        tm_lost(jm, tm, err.msg[0] ? err.msg : "connection lost");
    }
}

static void heartbeats(eddy__jm_t *jm)
{
    int64_t now = now_ms();
    if (now - jm->jm_last_hb_sent >= jm->jm_hb_interval) {
        jm->jm_last_hb_sent = now;
        for (int i = 0; i < jm->jm_ntms; i++) {
            jm_tm_t *tm = jm->jm_tms[i];
            if (!tm->tm_registered || tm->tm_lost) {
                continue;
            }
            Eddy__Rpc__Heartbeat hb = EDDY__RPC__HEARTBEAT__INIT;
            hb.seq = ++tm->tm_hb_seq;
            hb.timestamp_ms = now;
            eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
            env.body_case = EDDY__RPC__ENVELOPE__BODY_HEARTBEAT;
            env.heartbeat = &hb;
            send_env(tm, &env);
        }
    }
    for (int i = 0; i < jm->jm_ntms; i++) {
        jm_tm_t *tm = jm->jm_tms[i];
        if (tm->tm_lost) {
            continue;
        }
        if (atomic_load(&tm->tm_conn.rc_dead)) {
            tm_lost(jm, tm, "connection lost");
        } else if (now - tm->tm_last_hb_ms > jm->jm_hb_timeout) {
            char why[128];
            eddy__fmt(why, sizeof(why), "no heartbeat for %lld ms",
                      (long long)(now - tm->tm_last_hb_ms));
            tm_lost(jm, tm, why);
        }
    }
}

/* Drops lost TaskManagers that no job refers to any more. */
static void reap_tms(eddy__jm_t *jm)
{
    for (int i = 0; i < jm->jm_ntms;) {
        jm_tm_t *tm = jm->jm_tms[i];
        bool used = false;
        for (int j = 0; j < jm->jm_njobs && !used; j++) {
            jm_job_t *jb = jm->jm_jobs[j];
            for (int t = 0; t < jb->jb_ntasks && !used; t++) {
                used = jb->jb_task_tm[t] == tm;
            }
        }
        if (!tm->tm_lost || used) {
            i++;
            continue;
        }
        eddy__rpc_conn_close(&tm->tm_conn);
        free(tm->tm_slot_job);
        free(tm);
        jm->jm_tms[i] = jm->jm_tms[--jm->jm_ntms];
    }
}

/* ---- commands from REST ---- */

void eddy__jm_command(eddy__jm_t *jm, jm_cmd_t *cmd)
{
    cmd->cm_next = NULL;
    jm_cmd_t **pp = &jm->jm_cmds;
    while (*pp != NULL) {
        pp = &(*pp)->cm_next;
    }
    *pp = cmd;
    eddy__jm_wake(jm);
    while (!cmd->cm_done) {
        pthread_cond_wait(&jm->jm_cmd_cv, &jm->jm_mu);
    }
}

static void reply(jm_cmd_t *c, int status, json_t *body)
{
    c->cm_status = status;
    c->cm_reply = body;
    c->cm_done = true;
}

static void cmd_savepoint(eddy__jm_t *jm, jm_job_t *jb, jm_cmd_t *c, bool stop)
{
    if (jb->jb_state != EDDY__JOB_RUNNING) {
        reply(c, 409,
              json_pack("{s:s}", "error",
                        "the job is not RUNNING; savepoints need a running "
                        "job"));
        return;
    }
    if (jb->jb_coord == NULL) {
        reply(c, 409,
              json_pack("{s:s}", "error",
                        "the job runs without checkpointing; submit it with "
                        "a checkpoint interval to take savepoints"));
        return;
    }
    if (jb->jb_nsp == (int)EDDY_ARRAY_SIZE(jb->jb_sp)) {
        /* Forget the oldest finished request. */
        int k = 0;
        while (k < jb->jb_nsp && jb->jb_sp[k].sp_result == 0) {
            k++;
        }
        if (k == jb->jb_nsp) {
            reply(
                c, 429,
                json_pack("{s:s}", "error", "too many savepoints in progress"));
            return;
        }
        memmove(&jb->jb_sp[k], &jb->jb_sp[k + 1],
                sizeof(jb->jb_sp[0]) * (size_t)(jb->jb_nsp - k - 1));
        jb->jb_nsp--;
    }
    jm_savepoint_t *s = &jb->jb_sp[jb->jb_nsp];
    memset(s, 0, sizeof(*s));
    eddy__random_hex(s->sp_request, 16);
    char r[9];
    eddy__random_hex(r, 4);
    eddy__fmt(s->sp_dir, sizeof(s->sp_dir), "%s/savepoint-%.6s-%s",
              c->cm_dir[0] ? c->cm_dir : jm->jm_sp_dir, jb->jb_id, r);
    s->sp_stop = stop;
    eddy_error_t err = {0};
    jb->jb_sp_pending_dir = s->sp_dir;
    jb->jb_sp_pending_drain = stop && c->cm_drain;
    int64_t id = eddy__coord_trigger_savepoint(jb->jb_coord, s->sp_dir, &err);
    jb->jb_sp_pending_dir = NULL;
    jb->jb_sp_pending_drain = false;
    if (id < 0) {
        reply(c, 409, json_pack("{s:s}", "error", err.msg));
        return;
    }
    s->sp_id = id;
    jb->jb_nsp++;
    eddy__meta_savepoint_begin(jm->jm_meta, jb->jb_id, s->sp_request, &err);
    reply(c, 202,
          json_pack("{s:s, s:s}", "request_id", s->sp_request, "path",
                    s->sp_dir));
}

static void run_commands(eddy__jm_t *jm)
{
    while (jm->jm_cmds != NULL) {
        jm_cmd_t *c = jm->jm_cmds;
        jm->jm_cmds = c->cm_next;
        jm_job_t *jb = eddy__jm_find_job(jm, c->cm_job);
        if (jb == NULL) {
            reply(c, 404, json_pack("{s:s}", "error", "no such job"));
        } else if (c->cm_kind == JM_CMD_CANCEL) {
            if (eddy__job_state_terminal(jb->jb_state)) {
                reply(c, 409,
                      json_pack("{s:s, s:s}", "error", "the job has ended",
                                "state", eddy__job_state_name(jb->jb_state)));
            } else {
                if (jb->jb_state == EDDY__JOB_RUNNING ||
                    jb->jb_state == EDDY__JOB_RESTARTING) {
                    stop_coord(jb);
                    cancel_attempt(jb);
                    jb->jb_cancel_deadline = now_ms() + 10000;
                    set_state(jm, jb, EDDY__JOB_CANCELLING,
                              "canceled by a user");
                } else if (jb->jb_state == EDDY__JOB_CREATED) {
                    end_job(jm, jb, EDDY__JOB_CANCELED, "canceled by a user");
                }
                reply(c, 202,
                      json_pack("{s:s, s:s}", "job_id", jb->jb_id, "state",
                                eddy__job_state_name(jb->jb_state)));
            }
        } else {
            cmd_savepoint(jm, jb, c, c->cm_kind == JM_CMD_STOP);
            if (c->cm_status == 202) {
                after_coord(jm, jb);
            }
        }
        pthread_cond_broadcast(&jm->jm_cmd_cv);
    }
}

/* ---- submission ---- */

static jm_job_t *job_new(eddy__jm_t *jm, const char *id, json_t *plan)
{
    jm_job_t *jb = eddy__calloc(1, sizeof(*jb));
    eddy__fmt(jb->jb_id, sizeof(jb->jb_id), "%s", id);
    eddy__fmt(jb->jb_name, sizeof(jb->jb_name), "%s",
              json_string_value(json_object_get(plan, "name")));
    jb->jb_plan = plan;
    jb->jb_ntasks = (int)json_integer_value(json_object_get(plan, "tasks"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(plan, "vertices"), i, v)
    {
        int p = (int)json_integer_value(json_object_get(v, "parallelism"));
        jb->jb_slots_needed = EDDY_MAX(jb->jb_slots_needed, p);
    }
    jb->jb_task_state = eddy__calloc((size_t)jb->jb_ntasks, sizeof(int));
    jb->jb_task_tm = eddy__calloc((size_t)jb->jb_ntasks, sizeof(void *));
    jb->jb_metrics =
        eddy__calloc((size_t)jb->jb_ntasks, sizeof(*jb->jb_metrics));
    eddy__config_init(&jb->jb_cfg);
    const char *k;
    json_object_foreach(json_object_get(plan, "config"), k, v)
    {
        eddy_error_t e = {0};
        if (json_is_string(v) && strcmp(k, "job.id") != 0 &&
            strcmp(k, "savepoint.path") != 0) {
            eddy__config_set(&jb->jb_cfg, k, json_string_value(v), &e);
        }
    }
    /* Cluster settings the operator of the cluster chose win over the
     * job's own defaults only where the job left them unset: the
     * checkpoint directory must be one every TaskManager shares. */
    eddy_error_t e = {0};
    eddy__settings_apply_job(jm->jm_settings, &jb->jb_cfg, &e);
    eddy__config_set(&jb->jb_cfg, "checkpoint.dir", jm->jm_ck_dir, &e);
    eddy__config_set(&jb->jb_cfg, "job.id", id, &e);
    jb->jb_start_ms = now_ms();
    return jb;
}

static void job_free(jm_job_t *jb)
{
    json_decref(jb->jb_plan);
    json_decref(jb->jb_args);
    eddy__config_free(&jb->jb_cfg);
    free(jb->jb_task_state);
    free(jb->jb_task_tm);
    free(jb->jb_metrics);
    free(jb->jb_artifact);
    free(jb->jb_savepoint);
    free(jb->jb_restore_dir);
    free(jb);
}

static void job_apply_interval(jm_job_t *jb, int64_t interval)
{
    if (interval > 0) {
        char b[32];
        snprintf(b, sizeof(b), "%lld", (long long)interval);
        eddy_error_t e = {0};
        eddy__config_set(&jb->jb_cfg, "checkpoint.interval", b, &e);
    }
    jb->jb_ckpt = jb->jb_cfg.ck_interval_ms > 0;
    if (jb->jb_ckpt && !jb->jb_cfg.restart_explicit) {
        jb->jb_cfg.restart_strategy = EDDY__RESTART_EXPONENTIAL;
    }
}

int eddy__jm_submit(eddy__jm_t *jm, const char *so_path,
                    const char *display_name, int parallelism,
                    int64_t ck_interval, const char *savepoint, json_t *args,
                    char *job_id, eddy_error_t *err)
{
    char id[33];
    eddy__random_hex(id, 16);
    char dir[4096], so[4200];
    eddy__fmt(dir, sizeof(dir), "%s/%s", jm->jm_artifact_dir, id);
    eddy__fmt(so, sizeof(so), "%s/job.so", dir);
    if (eddy__mkdirs(dir, NULL) != 0 || rename(so_path, so) != 0) {
        return eddy_error_set(err, EDDY_ERR_IO,
                              "cannot store the artifact under %s: %s", dir,
                              strerror(errno));
    }
    chmod(so, 0644);
    /* TaskManagers check what they download (and what they cached) against
     * it. Hashed here, not in deploy(): an upload may be 512 MiB, and
     * deploy() runs under jm_mu. */
    char sha[EDDY__SHA256_HEX];
    if (eddy__sha256_file(so, sha, err) != 0) {
        unlink(so);
        rmdir(dir);
        return err->code;
    }
    int p = parallelism > 0 ? parallelism : jm->jm_default_parallelism;
    size_t nargs = json_array_size(args);
    char **argv = eddy__calloc(nargs + 1, sizeof(char *));
    for (size_t i = 0; i < nargs; i++) {
        argv[i] = (char *)json_string_value(json_array_get(args, i));
    }
    eddy__inspect_options_t io;
    eddy__inspect_options_init(&io);
    if (jm->jm_exe != NULL) {
        io.io_exe = jm->jm_exe;
    }
    json_t *plan = NULL;
    int rc = eddy__inspect_job(&io, so, p, argv, (int)nargs, &plan, err);
    free(argv);
    if (rc != 0) {
        /* The user knows the file by the name they uploaded, not by where
         * the JobManager keeps it. */
        char *at = strstr(err->msg, so);
        if (at != NULL && display_name != NULL) {
            char msg[sizeof(err->msg)];
            eddy__fmt(msg, sizeof(msg), "%.*s%s%s", (int)(at - err->msg),
                      err->msg, display_name, at + strlen(so));
            eddy__fmt(err->msg, sizeof(err->msg), "%s", msg);
        }
        unlink(so);
        rmdir(dir);
        return rc;
    }
    if (savepoint != NULL) {
        json_t *meta = NULL;
        char *sd = NULL;
        rc = eddy__job_load_restore(savepoint, &meta, &sd, err);
        json_decref(meta);
        free(sd);
        if (rc != 0) {
            json_decref(plan);
            unlink(so);
            rmdir(dir);
            return rc;
        }
    }
    char pp[4300];
    eddy__fmt(pp, sizeof(pp), "%s/plan.json", dir);
    json_t *saved = json_pack("{s:O, s:O, s:i, s:I, s:s?}", "plan", plan,
                              "args", args, "parallelism", p, "interval",
                              (json_int_t)ck_interval, "savepoint", savepoint);
    json_dump_file(saved, pp, JSON_COMPACT);
    json_decref(saved);
    struct stat sb;
    stat(so, &sb);
    char *args_text = json_dumps(args, JSON_COMPACT);
    eddy__mutex_lock(&jm->jm_mu);
    jm_job_t *jb = job_new(jm, id, plan);
    jb->jb_parallelism = p;
    jb->jb_artifact = eddy__strdup(so);
    memcpy(jb->jb_sha256, sha, sizeof(sha));
    jb->jb_args = json_incref(args);
    jb->jb_savepoint = savepoint != NULL ? eddy__strdup(savepoint) : NULL;
    job_apply_interval(jb, ck_interval);
    eddy__meta_job_spec_t spec = {id,
                                  jb->jb_name,
                                  so,
                                  NULL,
                                  (int64_t)sb.st_size,
                                  p,
                                  jb->jb_cfg.ck_interval_ms,
                                  savepoint,
                                  args_text};
    rc = eddy__meta_job_create(jm->jm_meta, &spec, err);
    if (rc == 0) {
        jm->jm_jobs = eddy__realloc(
            jm->jm_jobs, sizeof(void *) * (size_t)(jm->jm_njobs + 1));
        jm->jm_jobs[jm->jm_njobs++] = jb;
        eddy__log_info("job %s (%s) submitted: %d tasks, %d slots needed", id,
                       jb->jb_name, jb->jb_ntasks, jb->jb_slots_needed);
        eddy__fmt(job_id, 33, "%s", id);
    }
    eddy__mutex_unlock(&jm->jm_mu);
    free(args_text);
    if (rc != 0) {
        job_free(jb); /* never added */
        return rc;
    }
    eddy__jm_wake(jm);
    return 0;
}

/* A restarted JobManager picks up the jobs its store says were live. */
static void resume_jobs(eddy__jm_t *jm)
{
    eddy__meta_job_t **jobs = NULL;
    size_t n = 0;
    eddy_error_t err = {0};
    if (eddy__meta_jobs_to_resume(jm->jm_meta, &jobs, &n, &err) != 0) {
        eddy__log_error("cannot list jobs to resume: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        eddy__meta_job_t *mj = jobs[i];
        char pp[4300];
        eddy__fmt(pp, sizeof(pp), "%s/%s/plan.json", jm->jm_artifact_dir,
                  mj->mj_spec.js_id);
        json_error_t je;
        json_t *saved = json_load_file(pp, 0, &je);
        json_t *plan = json_object_get(saved, "plan");
        char why[256];
        if (plan == NULL || !eddy__plan_json_valid(plan, why, sizeof(why))) {
            eddy_error_t e = {0};
            eddy__meta_job_set_state(
                jm->jm_meta, mj->mj_spec.js_id, EDDY__JOB_FAILED,
                "its plan is missing from the data dir", NULL, &e);
            json_decref(saved);
            continue;
        }
        jm_job_t *jb = job_new(jm, mj->mj_spec.js_id, json_incref(plan));
        jb->jb_state = mj->mj_state;
        jb->jb_start_ms = mj->mj_start_ms;
        jb->jb_restarts = mj->mj_restarts;
        jb->jb_parallelism = mj->mj_spec.js_parallelism;
        jb->jb_artifact = eddy__strdup(mj->mj_spec.js_artifact_path);
        eddy_error_t herr = {0};
        if (eddy__sha256_file(jb->jb_artifact, jb->jb_sha256, &herr) != 0) {
            /* Sent empty: the TaskManagers' download fails and says why. */
            eddy__log_warn("job %s: %s", jb->jb_id, herr.msg);
            jb->jb_sha256[0] = '\0';
        }
        jb->jb_args = json_incref(json_object_get(saved, "args"));
        if (jb->jb_args == NULL) {
            jb->jb_args = json_array();
        }
        jb->jb_savepoint = mj->mj_spec.js_savepoint_path != NULL
                               ? eddy__strdup(mj->mj_spec.js_savepoint_path)
                               : NULL;
        job_apply_interval(jb, mj->mj_spec.js_checkpoint_interval_ms);
        json_decref(saved);
        if (jb->jb_state == EDDY__JOB_RUNNING ||
            jb->jb_state == EDDY__JOB_FAILING) {
            set_state(jm, jb, EDDY__JOB_RESTARTING,
                      "the JobManager restarted; resuming from the latest "
                      "checkpoint");
        }
        /* Attempt numbers tag data-plane channels and task reports; the
         * previous JobManager's attempts may still be winding down on the
         * TaskManagers, so this JobManager's numbers start elsewhere. */
        jb->jb_attempt = (int)((now_ms() / 1000) % 100000) * 1000;
        /* Give TaskManagers a moment to re-register before deploying. */
        jb->jb_deploy_at = now_ms() + 500;
        jm->jm_jobs = eddy__realloc(
            jm->jm_jobs, sizeof(void *) * (size_t)(jm->jm_njobs + 1));
        jm->jm_jobs[jm->jm_njobs++] = jb;
        eddy__log_info("resuming job %s (%s) from %s", jb->jb_id, jb->jb_name,
                       eddy__job_state_name(jb->jb_state));
    }
    eddy__meta_free_array(jobs, n);
    /* Savepoint requests of the previous JobManager cannot finish. */
    int cnt = 0;
    eddy__meta_savepoints_abandon(jm->jm_meta,
                                  "the JobManager restarted while the "
                                  "savepoint was in progress",
                                  &cnt, &err);
}

/* ---- lifecycle ---- */

int eddy__jm_new(const eddy__settings_t *st, const char *exe, eddy__jm_t **out,
                 eddy_error_t *err)
{
    eddy__jm_t *jm = eddy__calloc(1, sizeof(*jm));
    jm->jm_settings = st;
    jm->jm_rpc_fd = -1;
    jm->jm_wake[0] = jm->jm_wake[1] = -1;
    pthread_mutex_init(&jm->jm_mu, NULL);
    pthread_cond_init(&jm->jm_cmd_cv, NULL);
    eddy__random_hex(jm->jm_id, 16);
    jm->jm_start_ms = now_ms();
    jm->jm_exe = exe != NULL ? eddy__strdup(exe) : NULL;
    const char *dd = eddy__settings_get_str(st, "data.dir");
    char buf[4096];
    if (dd[0] != '/') {
        char cwd[2048];
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            cwd[0] = '\0';
        }
        eddy__fmt(buf, sizeof(buf), "%s/%s", cwd, dd);
        jm->jm_data_dir = eddy__strdup(buf);
    } else {
        jm->jm_data_dir = eddy__strdup(dd);
    }
    eddy__fmt(buf, sizeof(buf), "%s/jobs", jm->jm_data_dir);
    jm->jm_artifact_dir = eddy__strdup(buf);
    eddy__fmt(buf, sizeof(buf), "%s/uploads", jm->jm_data_dir);
    jm->jm_upload_dir = eddy__strdup(buf);
    eddy__fmt(buf, sizeof(buf), "%s/savepoints", jm->jm_data_dir);
    jm->jm_sp_dir = eddy__strdup(buf);
    const char *ck = eddy__settings_get_str(st, "checkpoint.dir");
    if (strncmp(ck, "file://", 7) == 0) {
        ck += 7;
    }
    if (ck[0] != '/') {
        eddy__fmt(buf, sizeof(buf), "%s/%s", jm->jm_data_dir, ck);
        jm->jm_ck_dir = eddy__strdup(buf);
    } else {
        jm->jm_ck_dir = eddy__strdup(ck);
    }
    if (eddy__mkdirs(jm->jm_data_dir, NULL) != 0 ||
        eddy__mkdirs(jm->jm_artifact_dir, NULL) != 0 ||
        eddy__mkdirs(jm->jm_upload_dir, NULL) != 0 ||
        eddy__mkdirs(jm->jm_ck_dir, NULL) != 0) {
        eddy_error_set(err, EDDY_ERR_IO, "cannot create the data dir %s: %s",
                       jm->jm_data_dir, strerror(errno));
        eddy__jm_destroy(jm);
        return EDDY_ERR_IO;
    }
    jm->jm_hb_interval = eddy__settings_get_ms(st, "heartbeat.interval");
    jm->jm_hb_timeout = eddy__settings_get_ms(st, "heartbeat.timeout");
    jm->jm_slot_wait = eddy__settings_get_ms(st, "scheduler.slot_wait");
    jm->jm_binpack = strcmp(eddy__settings_get_str(st, "scheduler.placement"),
                            "binpack") == 0;
    jm->jm_default_parallelism =
        eddy__settings_get_int(st, "parallelism.default");
    const char *store = eddy__settings_get_str(st, "metadata.store");
    int rc = eddy__meta_open(store, NULL, &jm->jm_meta, err);
    if (rc == 0 && pipe2(jm->jm_wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "pipe: %s", strerror(errno));
    }
    /* Loopback by default: the REST API runs whatever job it is given. */
    const char *bind = eddy__settings_get_str(st, "jobmanager.bind_host");
    if (rc == 0) {
        rc = eddy__tcp_listen(bind, eddy__settings_get_int(st, "rpc.port"),
                              &jm->jm_rpc_fd, &jm->jm_rpc_port, err);
    }
    if (rc == 0) {
        eddy__http_options_t ho;
        eddy__http_options_init(&ho);
        ho.ho_bind = bind;
        ho.ho_port = eddy__settings_get_int(st, "rest.port");
        ho.ho_upload_dir = jm->jm_upload_dir;
        jm->jm_http = eddy__http_new(&ho, err);
        if (jm->jm_http == NULL) {
            rc = err->code != 0 ? err->code : EDDY_ERR_IO;
        }
    }
    if (rc == 0) {
        eddy__jm_rest_routes(jm);
        resume_jobs(jm);
        rc = eddy__http_start(jm->jm_http, err);
    }
    if (rc != 0) {
        eddy__jm_destroy(jm);
        return rc;
    }
    jm->jm_rest_port = eddy__http_port(jm->jm_http);
    fcntl(jm->jm_rpc_fd, F_SETFL, fcntl(jm->jm_rpc_fd, F_GETFL) | O_NONBLOCK);
    *out = jm;
    return 0;
}

int eddy__jm_rest_port(const eddy__jm_t *jm)
{
    return jm->jm_rest_port;
}

int eddy__jm_rpc_port(const eddy__jm_t *jm)
{
    return jm->jm_rpc_port;
}

static void accept_tms(eddy__jm_t *jm)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd =
            accept4(jm->jm_rpc_fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        char peer[64] = "?";
        if (sa.ss_family == AF_INET) {
            char h[32];
            inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, h,
                      sizeof(h));
            eddy__fmt(peer, sizeof(peer), "%s:%d", h,
                      ntohs(((struct sockaddr_in *)&sa)->sin_port));
        }
        jm_tm_t *tm = eddy__calloc(1, sizeof(*tm));
        eddy__rpc_conn_init(&tm->tm_conn, fd, peer);
        tm->tm_last_hb_ms = now_ms();
        eddy__fmt(tm->tm_id, sizeof(tm->tm_id), "(unregistered %s)", peer);
        jm->jm_tms = eddy__realloc(jm->jm_tms,
                                   sizeof(void *) * (size_t)(jm->jm_ntms + 1));
        jm->jm_tms[jm->jm_ntms++] = tm;
    }
}

int eddy__jm_run(eddy__jm_t *jm, volatile int *stop)
{
    eddy__log_info("JobManager %s: REST on port %d, RPC on port %d, data "
                   "dir %s",
                   jm->jm_id, jm->jm_rest_port, jm->jm_rpc_port,
                   jm->jm_data_dir);
    struct pollfd *pfd = NULL;
    size_t pcap = 0;
    eddy__mutex_lock(&jm->jm_mu);
    while (!*stop) {
        size_t n = (size_t)jm->jm_ntms + 2;
        eddy__grow((void **)&pfd, &pcap, n, sizeof(*pfd));
        pfd[0] = (struct pollfd){jm->jm_rpc_fd, POLLIN, 0};
        pfd[1] = (struct pollfd){jm->jm_wake[0], POLLIN, 0};
        int ntm = jm->jm_ntms;
        for (int i = 0; i < ntm; i++) {
            jm_tm_t *tm = jm->jm_tms[i];
            pfd[2 + i] = (struct pollfd){tm->tm_lost ? -1 : tm->tm_conn.rc_fd,
                                         POLLIN, 0};
        }
        eddy__mutex_unlock(&jm->jm_mu);
        poll(pfd, (nfds_t)(ntm + 2), 20);
        eddy__mutex_lock(&jm->jm_mu);
        if (pfd[1].revents & POLLIN) {
            char b[64];
            while (read(jm->jm_wake[0], b, sizeof(b)) > 0) {
            }
        }
        for (int i = 0; i < ntm; i++) {
            if (pfd[2 + i].revents != 0) {
                read_tm(jm, jm->jm_tms[i]);
            }
        }
        if (pfd[0].revents & POLLIN) {
            accept_tms(jm);
        }
        run_commands(jm);
        heartbeats(jm);
        schedule(jm);
        for (int i = 0; i < jm->jm_njobs; i++) {
            jm_job_t *jb = jm->jm_jobs[i];
            if (jb->jb_coord != NULL && jb->jb_state == EDDY__JOB_RUNNING) {
                eddy__coord_poll(jb->jb_coord, now_ms(), 20);
                after_coord(jm, jb);
            }
        }
        reap_tms(jm);
    }
    eddy__mutex_unlock(&jm->jm_mu);
    free(pfd);
    eddy__log_info("JobManager stopping");
    return 0;
}

void eddy__jm_destroy(eddy__jm_t *jm)
{
    if (jm == NULL) {
        return;
    }
    eddy__http_destroy(jm->jm_http);
    /* Fail any REST thread still waiting for a command. */
    for (int i = 0; i < jm->jm_njobs; i++) {
        jm_job_t *jb = jm->jm_jobs[i];
        if (jb->jb_coord != NULL) {
            eddy__coord_stop(jb->jb_coord);
            eddy__coord_destroy(jb->jb_coord);
        }
        job_free(jb);
    }
    free(jm->jm_jobs);
    for (int i = 0; i < jm->jm_ntms; i++) {
        eddy__rpc_conn_close(&jm->jm_tms[i]->tm_conn);
        free(jm->jm_tms[i]->tm_slot_job);
        free(jm->jm_tms[i]);
    }
    free(jm->jm_tms);
    if (jm->jm_rpc_fd >= 0) {
        close(jm->jm_rpc_fd);
    }
    for (int i = 0; i < 2; i++) {
        if (jm->jm_wake[i] >= 0) {
            close(jm->jm_wake[i]);
        }
    }
    eddy__meta_close(jm->jm_meta);
    free(jm->jm_data_dir);
    free(jm->jm_artifact_dir);
    free(jm->jm_upload_dir);
    free(jm->jm_ck_dir);
    free(jm->jm_sp_dir);
    free(jm->jm_exe);
    pthread_cond_destroy(&jm->jm_cmd_cv);
    pthread_mutex_destroy(&jm->jm_mu);
    free(jm);
}
