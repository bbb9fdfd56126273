/*
 * eddy — the TaskManager (taskmanager.h has the design).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "taskmanager/taskmanager.h"
#include "checkpoint/storage.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/log.h"
#include "common/prom.h"
#include "eddy/runner.h"
#include "net/dataplane.h"
#include "rest/client.h"
#include "rest/http.h"
#include "rpc/conn.h"
#include "runtime/runtime.h"

/* Checkpoint ids this attempt was told about (trigger messages), so that a
 * task's snapshot finds where to write. */
typedef struct ck_entry {
    int64_t ce_id;
    char ce_dir[1024];
    bool ce_savepoint;
    bool ce_aborted;
} ck_entry_t;

typedef struct tm_attempt {
    struct eddy__tm *a_tm;
    char a_job_id[33];
    int a_attempt;
    char *a_artifact_url;
    char *a_artifact_sha256; /* "" if the JobManager sent none */
    char **a_args;
    int a_nargs;
    int a_parallelism;
    char **a_opt_keys, **a_opt_vals;
    int a_nopts;
    char **a_placement; /* per global task */
    int a_ntasks;
    char *a_restore;
    pthread_t a_thread;
    atomic_bool a_done;
    atomic_bool a_cancel;
    char a_fail[512];   /* a TaskManager-side failure (peer lost) */
    eddy__job_t *a_job; /* while its tasks exist; under tm_mu */
    eddy__ckpt_port_t a_port;
    char a_job_dir[4096];
    pthread_mutex_t a_ck_mu;
    pthread_cond_t a_ck_cv;
    ck_entry_t a_ck[16];
    int a_nck;
    atomic_int a_finished; /* tasks here that reported FINISHED */
    /* The newest TriggerCheckpoint as the sources take it (id and flags),
     * kept for a job that is still being built when it arrives. */
    atomic_int_fast64_t a_trigger_word;
    /* Back-pressure ratio per local task between heartbeats (tm_mu): the
     * TaskManager's own /metrics serves it. */
    uint64_t *a_bp_prev;
    double *a_bp_ratio;
    int a_nbp;
    int64_t a_bp_at;
} tm_attempt_t;

struct eddy__tm {
    const eddy__settings_t *tm_settings;
    char tm_id[40];
    char tm_host[128];
    char tm_jm[256];
    int tm_slots;
    char *tm_data_dir;
    eddy__dp_t *tm_dp;
    eddy__rpc_conn_t tm_conn;
    /* Task and snapshot threads send too: tm_send_mu keeps the connection
     * from being closed or replaced under them. */
    pthread_mutex_t tm_send_mu;
    bool tm_connected;
    char tm_rest[160];
    int64_t tm_hb_interval;
    int64_t tm_hb_timeout;
    int64_t tm_last_rx, tm_last_hb;
    uint64_t tm_hb_seq;
    int64_t tm_next_connect;
    int64_t tm_backoff;
    bool tm_warned;
    eddy__http_server_t *tm_http; /* its own /metrics */
    char tm_metrics_url[200];
    pthread_mutex_t tm_mu;
    tm_attempt_t **tm_att;
    int tm_natt;
};

static int64_t now_ms(void)
{
    return eddy__now_ms();
}

static void send_env(eddy__tm_t *tm, eddy__rpc_env_t *env)
{
    eddy_error_t err = {0};
    eddy__mutex_lock(&tm->tm_send_mu);
    int rc = tm->tm_connected ? eddy__rpc_send(&tm->tm_conn, env, &err) : 0;
    eddy__mutex_unlock(&tm->tm_send_mu);
    if (rc != 0) {
        eddy__log_warn("JobManager connection: %s", err.msg);
    }
}

static void send_task_state(tm_attempt_t *a, int task, const char *vertex,
                            int subtask, int state, const char *failure)
{
    Eddy__Rpc__TaskStateChange ts = EDDY__RPC__TASK_STATE_CHANGE__INIT;
    ts.job_id = a->a_job_id;
    ts.vertex = (char *)(vertex != NULL ? vertex : "");
    ts.subtask = (uint32_t)(subtask < 0 ? 0 : subtask);
    ts.attempt = (uint32_t)a->a_attempt;
    ts.state = (Eddy__Rpc__TaskState)state;
    ts.failure = (char *)(failure != NULL ? failure : "");
    ts.task_index = (uint32_t)task;
    eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
    env.body_case = EDDY__RPC__ENVELOPE__BODY_TASK_STATE;
    env.task_state = &ts;
    send_env(a->a_tm, &env);
}

static bool placed_here(tm_attempt_t *a, int task)
{
    return strcmp(a->a_placement[task], eddy__dp_address(a->a_tm->tm_dp)) == 0;
}

/* ---- the checkpoint port: tasks -> JobManager ---- */

static int port_dir(void *arg, int64_t id, char *buf, size_t size,
                    bool *savepoint)
{
    tm_attempt_t *a = arg;
    int rc = -1;
    /* A barrier can overtake the trigger message that names the
     * directory (it came through another TaskManager): wait a little. */
    int64_t deadline = now_ms() + 5000;
    eddy__mutex_lock(&a->a_ck_mu);
    for (;;) {
        for (int i = 0; i < a->a_nck; i++) {
            if (a->a_ck[i].ce_id == id) {
                if (!a->a_ck[i].ce_aborted) {
                    eddy__fmt(buf, size, "%s", a->a_ck[i].ce_dir);
                    *savepoint = a->a_ck[i].ce_savepoint;
                    rc = 0;
                } else {
                    rc = -2;
                }
            }
        }
        if (rc != -1 || now_ms() >= deadline || atomic_load(&a->a_cancel)) {
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&a->a_ck_cv, &a->a_ck_mu, &ts);
    }
    eddy__mutex_unlock(&a->a_ck_mu);
    return rc == 0 ? 0 : -1;
}

static const char *port_job_dir(void *arg)
{
    return ((tm_attempt_t *)arg)->a_job_dir;
}

static void port_ack(void *arg, int64_t id, int task, json_t *ops)
{
    tm_attempt_t *a = arg;
    char *text = json_dumps(ops, JSON_COMPACT);
    json_decref(ops);
    Eddy__Rpc__AcknowledgeCheckpoint ack =
        EDDY__RPC__ACKNOWLEDGE_CHECKPOINT__INIT;
    ack.job_id = a->a_job_id;
    ack.checkpoint_id = id;
    ack.task = (uint32_t)task;
    ack.handles_json = text;
    eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
    env.body_case = EDDY__RPC__ENVELOPE__BODY_ACK_CHECKPOINT;
    env.ack_checkpoint = &ack;
    send_env(a->a_tm, &env);
    free(text);
}

static void port_decline(void *arg, int64_t id, int task, const char *reason)
{
    tm_attempt_t *a = arg;
    Eddy__Rpc__DeclineCheckpoint d = EDDY__RPC__DECLINE_CHECKPOINT__INIT;
    d.job_id = a->a_job_id;
    d.checkpoint_id = id;
    d.task = (uint32_t)task;
    d.reason = (char *)reason;
    eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
    env.body_case = EDDY__RPC__ENVELOPE__BODY_DECLINE_CHECKPOINT;
    env.decline_checkpoint = &d;
    send_env(a->a_tm, &env);
}

/* ---- running an attempt ---- */

static void on_task(void *arg, eddy__task_t *t, bool running, int rc)
{
    tm_attempt_t *a = arg;
    eddy__op_t *head = t->t_ops[0];
    if (running) {
        eddy__log_context(a->a_job_id, t->t_name, t->t_subtask,
                          t->t_parallelism);
        send_task_state(a, t->t_index, head->op_node->s_uid, t->t_subtask,
                        EDDY__RPC__TASK_STATE__TASK_STATE_RUNNING, NULL);
        return;
    }
    eddy__job_t *job = t->t_job;
    int st;
    char msg[1024] = "";
    if (rc == 0) {
        st = EDDY__RPC__TASK_STATE__TASK_STATE_FINISHED;
        atomic_fetch_add(&a->a_finished, 1);
    } else if (a->a_fail[0] != '\0') {
        st = EDDY__RPC__TASK_STATE__TASK_STATE_FAILED;
        eddy__fmt(msg, sizeof(msg), "%s", a->a_fail);
    } else if (rc == EDDY_ERR_CANCELED && t->t_failed_op == NULL) {
        st = EDDY__RPC__TASK_STATE__TASK_STATE_CANCELED;
    } else {
        st = EDDY__RPC__TASK_STATE__TASK_STATE_FAILED;
        eddy__mutex_lock(&job->j_mu);
        eddy__fmt(msg, sizeof(msg), "%s",
                  job->j_failed ? job->j_error.msg : eddy_strerror(rc));
        eddy__mutex_unlock(&job->j_mu);
        eddy__log_error("%s", msg);
    }
    send_task_state(a, t->t_index, head->op_node->s_uid, t->t_subtask, st, msg);
    eddy__log_context(NULL, NULL, 0, 0);
}

/* Reports every task placed here as failed (the attempt could not start). */
static void fail_all(tm_attempt_t *a, const char *msg)
{
    eddy__log_error("job %s attempt %d: %s", a->a_job_id, a->a_attempt, msg);
    for (int t = 0; t < a->a_ntasks; t++) {
        if (placed_here(a, t)) {
            send_task_state(a, t, "", 0,
                            atomic_load(&a->a_cancel)
                                ? EDDY__RPC__TASK_STATE__TASK_STATE_CANCELED
                                : EDDY__RPC__TASK_STATE__TASK_STATE_FAILED,
                            msg);
        }
    }
}

static uint64_t attempt_tag(const tm_attempt_t *a)
{
    uint64_t h = eddy__hash64(a->a_job_id, strlen(a->a_job_id));
    return h ^ ((uint64_t)a->a_attempt * 0x9e3779b97f4a7c15ull);
}

/*
 * Every task placed here finished, but what they sent to tasks on other
 * TaskManagers may still wait in the data plane for credit: a producer runs
 * up to do_exclusive buffers ahead of its credits, and its end-of-partition
 * is the last of them. Destroying the job releases its channels, which
 * drops those buffers (eddy__dp_release_job), and a consumer elsewhere
 * would then wait for them forever. So the attempt stays until the
 * JobManager ends it: it sends CancelJob once every task of the job has
 * finished (by then every consumer has had everything), when the job fails
 * or is canceled, and a lost JobManager cancels every attempt too.
 */
static void hold_outputs(tm_attempt_t *a)
{
    eddy__mutex_lock(&a->a_ck_mu);
    while (!atomic_load(&a->a_cancel)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&a->a_ck_cv, &a->a_ck_mu, &ts);
    }
    eddy__mutex_unlock(&a->a_ck_mu);
}

int eddy__tm_fetch_artifact(const char *base, const char *url,
                            const char *sha256, const char *dest,
                            eddy_error_t *err)
{
    char got[EDDY__SHA256_HEX];
    bool check = sha256 != NULL && sha256[0] != '\0';
    struct stat sb;
    if (stat(dest, &sb) == 0) {
        if (!check || (eddy__sha256_file(dest, got, NULL) == 0 &&
                       strcmp(got, sha256) == 0)) {
            return 0; /* cached by an earlier attempt */
        }
        eddy__log_warn("the cached artifact %s does not match the job's "
                       "SHA-256; downloading it again",
                       dest);
        unlink(dest);
    }
    int rc = eddy__rest_download(base, url, dest, 60000, err);
    if (rc != 0 || !check) {
        return rc;
    }
    rc = eddy__sha256_file(dest, got, err);
    if (rc == 0 && strcmp(got, sha256) != 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO,
                            "the job's artifact from %s%s does not match its "
                            "SHA-256 (expected %s, got %s)",
                            base, url, sha256, got);
    }
    if (rc != 0) {
        unlink(dest); /* never run it, never keep it */
    } else {
        eddy__log_info("downloaded %s%s, SHA-256 %s as expected", base, url,
                       got);
    }
    return rc;
}

static void *attempt_main(void *arg)
{
    tm_attempt_t *a = arg;
    eddy__tm_t *tm = a->a_tm;
    eddy_error_t err = {0};
    char dir[4096], so[4200];
    eddy__fmt(dir, sizeof(dir), "%s/artifacts", tm->tm_data_dir);
    eddy__fmt(so, sizeof(so), "%s/%s.so", dir, a->a_job_id);
    eddy_job_t *jobso = NULL;
    eddy_env_t *env = NULL;
    eddy__plan_t *pl = NULL;
    eddy__job_t *job = NULL;
    const char **addr = NULL;
    eddy__mkdirs(dir, NULL);
    int rc = eddy__tm_fetch_artifact(tm->tm_rest, a->a_artifact_url,
                                     a->a_artifact_sha256, so, &err);
    if (rc == 0) {
        rc = eddy_job_open(so, &jobso, &err);
    }
    if (rc == 0) {
        env = eddy_env_new();
        eddy_env_set_default_parallelism(env, a->a_parallelism);
        rc = eddy_job_build(jobso, env, a->a_nargs, a->a_args, &err);
    }
    for (int i = 0; rc == 0 && i < a->a_nopts; i++) {
        rc = eddy_env_set_option(env, a->a_opt_keys[i], a->a_opt_vals[i], &err);
    }
    if (rc == 0) {
        eddy__plan_assign_uids(env);
        rc = eddy__plan_build(env, &pl, &err);
    }
    eddy__placement_t pm = {0};
    if (rc == 0) {
        addr = eddy__calloc((size_t)a->a_ntasks, sizeof(char *));
        for (int t = 0; t < a->a_ntasks; t++) {
            addr[t] = placed_here(a, t) ? NULL : a->a_placement[t];
        }
        pm = (eddy__placement_t){a->a_ntasks, addr, tm->tm_dp, attempt_tag(a)};
        rc = eddy__job_new(env, pl, &pm, &job, &err);
    }
    json_t *restore = NULL;
    char *restore_dir = NULL;
    if (rc == 0 && a->a_restore != NULL) {
        rc = eddy__job_load_restore(a->a_restore, &restore, &restore_dir, &err);
        job->j_restore = restore;
        job->j_restore_dir = restore_dir;
        job->j_attempt = a->a_attempt;
    }
    for (int i = 0; rc == 0 && i < job->j_ntasks; i++) {
        rc = eddy__task_restore_prepare(job->j_tasks[i], &err);
    }
    if (rc == 0) {
        job->j_on_task = on_task;
        job->j_on_task_arg = a;
        if (env->e_cfg.ck_interval_ms > 0) {
            eddy__fmt(a->a_job_dir, sizeof(a->a_job_dir), "%s/%s",
                      eddy__config_ck_path(&env->e_cfg), a->a_job_id);
            job->j_ckpt = &a->a_port;
            job->j_snapper = eddy__snapshotter_new(job);
        }
        eddy__mutex_lock(&tm->tm_mu);
        a->a_job = job;
        bool cancel = atomic_load(&a->a_cancel);
        /* The JobManager starts checkpointing as soon as it deployed, and
         * downloading and building the job here can take longer than an
         * interval: a trigger that came meanwhile found no tasks. Its
         * sources take it now, or the checkpoint would never complete. */
        int64_t word = atomic_load(&a->a_trigger_word);
        if (word != 0) {
            eddy__job_trigger_sources(job, word);
        }
        eddy__mutex_unlock(&tm->tm_mu);
        if (cancel) {
            eddy__job_cancel(job);
        }
        eddy__log_info("job %s attempt %d: running %d of %d tasks here",
                       a->a_job_id, a->a_attempt, job->j_ntasks, a->a_ntasks);
        rc = eddy__job_run(job, &err);
        if (rc == EDDY_ERR_CANCELED &&
            atomic_load(&a->a_finished) == job->j_ntasks) {
            /* The JobManager's CancelJob for a finished job (see
             * hold_outputs) can arrive before the run noticed that every
             * task ended: the attempt finished all the same. */
            rc = 0;
            eddy_error_clear(&err);
        }
        /* Detached before its snapshotter goes: the main loop's
         * ack_finished() finds jobs through a_job and must never submit to
         * a snapshotter that is stopping (the item would leak) or freed. */
        eddy__mutex_lock(&tm->tm_mu);
        a->a_job = NULL;
        eddy__mutex_unlock(&tm->tm_mu);
        if (job->j_snapper != NULL) {
            eddy__snapshotter_destroy(job->j_snapper, rc != 0);
            job->j_snapper = NULL;
        }
        if (rc == 0) {
            hold_outputs(a);
        }
    } else {
        fail_all(a, err.msg);
    }
    eddy__job_destroy(job);
    json_decref(restore);
    free(restore_dir);
    free(addr);
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
    eddy_job_close(jobso);
    eddy__log_info("job %s attempt %d ended here%s%s", a->a_job_id,
                   a->a_attempt, rc != 0 ? ": " : "", rc != 0 ? err.msg : "");
    atomic_store(&a->a_done, true);
    return NULL;
}

static char *dup_or_empty(const char *s)
{
    return eddy__strdup(s != NULL ? s : "");
}

static void attempt_free(tm_attempt_t *a)
{
    free(a->a_artifact_url);
    free(a->a_artifact_sha256);
    for (int i = 0; i < a->a_nargs; i++) {
        free(a->a_args[i]);
    }
    free(a->a_args);
    for (int i = 0; i < a->a_nopts; i++) {
        free(a->a_opt_keys[i]);
        free(a->a_opt_vals[i]);
    }
    free(a->a_opt_keys);
    free(a->a_opt_vals);
    for (int i = 0; i < a->a_ntasks; i++) {
        free(a->a_placement[i]);
    }
    free(a->a_placement);
    free(a->a_restore);
    pthread_mutex_destroy(&a->a_ck_mu);
    pthread_cond_destroy(&a->a_ck_cv);
    free(a->a_bp_prev);
    free(a->a_bp_ratio);
    free(a);
}

static void on_deploy(eddy__tm_t *tm, const Eddy__Rpc__DeployJob *d)
{
    if (d->job_id == NULL || strlen(d->job_id) != 32 ||
        d->n_placement != d->plan_tasks || d->n_placement == 0 ||
        d->n_placement > 1u << 20) {
        eddy__log_warn("ignoring a malformed deployment");
        return;
    }
    tm_attempt_t *a = eddy__calloc(1, sizeof(*a));
    a->a_tm = tm;
    memcpy(a->a_job_id, d->job_id, 33);
    a->a_attempt = (int)d->attempt;
    a->a_artifact_url = dup_or_empty(d->artifact_url);
    a->a_artifact_sha256 = dup_or_empty(d->artifact_sha256);
    a->a_nargs = (int)d->n_args;
    a->a_args = eddy__calloc(d->n_args + 1, sizeof(char *));
    for (size_t i = 0; i < d->n_args; i++) {
        a->a_args[i] = dup_or_empty(d->args[i]);
    }
    a->a_parallelism = (int)d->parallelism;
    a->a_nopts = (int)d->n_options;
    a->a_opt_keys = eddy__calloc(d->n_options + 1, sizeof(char *));
    a->a_opt_vals = eddy__calloc(d->n_options + 1, sizeof(char *));
    for (size_t i = 0; i < d->n_options; i++) {
        a->a_opt_keys[i] = dup_or_empty(d->options[i]->key);
        a->a_opt_vals[i] = dup_or_empty(d->options[i]->value);
    }
    a->a_ntasks = (int)d->n_placement;
    a->a_placement = eddy__calloc(d->n_placement, sizeof(char *));
    for (size_t i = 0; i < d->n_placement; i++) {
        a->a_placement[i] = dup_or_empty(d->placement[i]);
    }
    a->a_restore = d->restore_path != NULL && d->restore_path[0] != '\0'
                       ? eddy__strdup(d->restore_path)
                       : NULL;
    pthread_mutex_init(&a->a_ck_mu, NULL);
    pthread_cond_init(&a->a_ck_cv, NULL);
    a->a_port =
        (eddy__ckpt_port_t){a, port_dir, port_job_dir, port_ack, port_decline};
    eddy__mutex_lock(&tm->tm_mu);
    tm->tm_att =
        eddy__realloc(tm->tm_att, sizeof(void *) * (size_t)(tm->tm_natt + 1));
    tm->tm_att[tm->tm_natt++] = a;
    eddy__mutex_unlock(&tm->tm_mu);
    if (pthread_create(&a->a_thread, NULL, attempt_main, a) != 0) {
        fail_all(a, "cannot start a thread for the job");
        atomic_store(&a->a_done, true);
        a->a_thread = 0;
    }
}

static tm_attempt_t *find_attempt(eddy__tm_t *tm, const char *job_id,
                                  int attempt)
{
    for (int i = 0; i < tm->tm_natt; i++) {
        tm_attempt_t *a = tm->tm_att[i];
        if (strcmp(a->a_job_id, job_id != NULL ? job_id : "") == 0 &&
            (attempt < 0 || a->a_attempt == attempt) &&
            !atomic_load(&a->a_done)) {
            return a;
        }
    }
    return NULL;
}

/* tm_mu held. */
static void cancel_attempt(tm_attempt_t *a, const char *why)
{
    if (why != NULL && a->a_fail[0] == '\0') {
        eddy__fmt(a->a_fail, sizeof(a->a_fail), "%s", why);
    }
    atomic_store(&a->a_cancel, true);
    if (a->a_job != NULL) {
        eddy__job_cancel(a->a_job);
    }
    pthread_cond_broadcast(&a->a_ck_cv);
}

static void on_trigger(eddy__tm_t *tm, const Eddy__Rpc__TriggerCheckpoint *m)
{
    eddy__mutex_lock(&tm->tm_mu);
    tm_attempt_t *a = find_attempt(tm, m->job_id, (int)m->attempt);
    if (a != NULL) {
        eddy__mutex_lock(&a->a_ck_mu);
        ck_entry_t *e = &a->a_ck[a->a_nck % 16];
        if (a->a_nck >= 16) {
            /* reuse the oldest slot */
            e = &a->a_ck[0];
            memmove(&a->a_ck[0], &a->a_ck[1], sizeof(ck_entry_t) * 15);
            e = &a->a_ck[15];
        } else {
            a->a_nck++;
        }
        e->ce_id = m->checkpoint_id;
        e->ce_savepoint = m->savepoint;
        e->ce_aborted = false;
        eddy__fmt(e->ce_dir, sizeof(e->ce_dir), "%s",
                  m->target_dir != NULL ? m->target_dir : "");
        pthread_cond_broadcast(&a->a_ck_cv);
        eddy__mutex_unlock(&a->a_ck_mu);
        int64_t word = m->checkpoint_id |
                       (m->savepoint ? EDDY__BARRIER_SAVEPOINT : 0) |
                       (m->drain ? EDDY__TRIGGER_DRAIN : 0);
        atomic_store(&a->a_trigger_word, word);
        if (a->a_job != NULL) {
            eddy__job_trigger_sources(a->a_job, word);
        }
    }
    eddy__mutex_unlock(&tm->tm_mu);
}

/*
 * The job's current attempt here (tm_mu held). Checkpoint notifications
 * name no attempt, and a canceled one may still be winding down next to
 * its successor: the notification is the successor's (the JobManager sends
 * nothing for an attempt after canceling it).
 */
static tm_attempt_t *live_attempt(eddy__tm_t *tm, const char *job_id)
{
    for (int i = 0; i < tm->tm_natt; i++) {
        tm_attempt_t *a = tm->tm_att[i];
        if (strcmp(a->a_job_id, job_id != NULL ? job_id : "") == 0 &&
            !atomic_load(&a->a_done) && !atomic_load(&a->a_cancel)) {
            return a;
        }
    }
    return NULL;
}

static void on_notify(eddy__tm_t *tm, const char *job_id, int64_t id,
                      bool complete)
{
    eddy__mutex_lock(&tm->tm_mu);
    tm_attempt_t *a = live_attempt(tm, job_id);
    if (a != NULL) {
        if (!complete) {
            eddy__mutex_lock(&a->a_ck_mu);
            for (int i = 0; i < a->a_nck; i++) {
                if (a->a_ck[i].ce_id == id) {
                    a->a_ck[i].ce_aborted = true;
                }
            }
            eddy__mutex_unlock(&a->a_ck_mu);
        }
        if (a->a_job != NULL) {
            eddy__job_notify(a->a_job, id, complete);
        }
    }
    eddy__mutex_unlock(&tm->tm_mu);
}

/* Tasks that finished (sources at their end) acknowledge later checkpoints
 * with what they left, as the local coordinator thread does. */
static void ack_finished(eddy__tm_t *tm)
{
    eddy__mutex_lock(&tm->tm_mu);
    for (int k = 0; k < tm->tm_natt; k++) {
        eddy__job_t *job = tm->tm_att[k]->a_job;
        if (job != NULL && job->j_snapper != NULL) {
            eddy__job_ack_finished(job);
        }
    }
    eddy__mutex_unlock(&tm->tm_mu);
}

static void reap_attempts(eddy__tm_t *tm)
{
    eddy__mutex_lock(&tm->tm_mu);
    for (int i = 0; i < tm->tm_natt;) {
        tm_attempt_t *a = tm->tm_att[i];
        if (!atomic_load(&a->a_done)) {
            i++;
            continue;
        }
        tm->tm_att[i] = tm->tm_att[--tm->tm_natt];
        eddy__mutex_unlock(&tm->tm_mu);
        if (a->a_thread != 0) {
            pthread_join(a->a_thread, NULL);
        }
        attempt_free(a);
        eddy__mutex_lock(&tm->tm_mu);
    }
    eddy__mutex_unlock(&tm->tm_mu);
}

static void cancel_all(eddy__tm_t *tm, const char *why)
{
    eddy__mutex_lock(&tm->tm_mu);
    for (int i = 0; i < tm->tm_natt; i++) {
        cancel_attempt(tm->tm_att[i], why);
    }
    eddy__mutex_unlock(&tm->tm_mu);
}

static void on_peer_lost(void *arg, const char *peer, const char *reason)
{
    eddy__tm_t *tm = arg;
    /* The data plane's reason is a whole sentence that names the peer
     * ("connection to TaskManager H:P lost: ..."); prefixing it again
     * doubled that in every failure message. */
    char why[512];
    eddy__fmt(why, sizeof(why), "%s", reason);
    eddy__mutex_lock(&tm->tm_mu);
    for (int i = 0; i < tm->tm_natt; i++) {
        tm_attempt_t *a = tm->tm_att[i];
        for (int t = 0; t < a->a_ntasks; t++) {
            if (strcmp(a->a_placement[t], peer) == 0) {
                cancel_attempt(a, why);
                break;
            }
        }
    }
    eddy__mutex_unlock(&tm->tm_mu);
}

/* What every running task did so far, for the heartbeat (the JobManager
 * turns it into rates and serves it as metrics). */
static size_t collect_metrics(eddy__tm_t *tm, Eddy__Rpc__TaskMetrics **out,
                              Eddy__Rpc__TaskMetrics ***ptrs,
                              uint64_t **buckets)
{
    size_t n = 0, cap = 0;
    eddy__mutex_lock(&tm->tm_mu);
    for (int k = 0; k < tm->tm_natt; k++) {
        eddy__job_t *job = tm->tm_att[k]->a_job;
        cap += job != NULL ? (size_t)job->j_ntasks : 0;
    }
    *out = eddy__calloc(cap + 1, sizeof(**out));
    *ptrs = eddy__calloc(cap + 1, sizeof(**ptrs));
    *buckets = eddy__calloc((cap + 1) * EDDY__LAT_BUCKETS, sizeof(uint64_t));
    int64_t now = now_ms();
    for (int k = 0; k < tm->tm_natt; k++) {
        tm_attempt_t *a = tm->tm_att[k];
        eddy__job_t *job = a->a_job;
        if (job != NULL && a->a_nbp != job->j_ntasks) {
            a->a_nbp = job->j_ntasks;
            a->a_bp_prev = eddy__realloc(a->a_bp_prev,
                                         sizeof(uint64_t) * (size_t)a->a_nbp);
            a->a_bp_ratio =
                eddy__realloc(a->a_bp_ratio, sizeof(double) * (size_t)a->a_nbp);
            memset(a->a_bp_prev, 0, sizeof(uint64_t) * (size_t)a->a_nbp);
            memset(a->a_bp_ratio, 0, sizeof(double) * (size_t)a->a_nbp);
            a->a_bp_at = 0;
        }
        for (int i = 0; job != NULL && i < job->j_ntasks; i++) {
            eddy__task_t *t = job->j_tasks[i];
            uint64_t bp = eddy__task_backpressure_ns(t);
            if (a->a_bp_at > 0 && now > a->a_bp_at && bp >= a->a_bp_prev[i]) {
                a->a_bp_ratio[i] =
                    EDDY_MIN(1.0, (double)(bp - a->a_bp_prev[i]) /
                                      ((double)(now - a->a_bp_at) * 1e6));
            }
            a->a_bp_prev[i] = bp;
            Eddy__Rpc__TaskMetrics *m = &(*out)[n];
            eddy__rpc__task_metrics__init(m);
            m->job_id = a->a_job_id;
            m->attempt = (uint32_t)a->a_attempt;
            m->task_index = (uint32_t)t->t_index;
            m->records_in =
                atomic_load_explicit(&t->t_m_records_in, memory_order_relaxed);
            m->records_out =
                atomic_load_explicit(&t->t_m_records_out, memory_order_relaxed);
            m->backpressure_ns = bp;
            uint64_t *bk = *buckets + n * EDDY__LAT_BUCKETS;
            for (int b = 0; b < EDDY__LAT_BUCKETS; b++) {
                bk[b] = atomic_load_explicit(&t->t_lat_buckets[b],
                                             memory_order_relaxed);
            }
            m->n_latency_buckets = EDDY__LAT_BUCKETS;
            m->latency_buckets = bk;
            m->latency_sum_us =
                atomic_load_explicit(&t->t_lat_sum_us, memory_order_relaxed);
            m->watermark_ms =
                atomic_load_explicit(&t->t_m_wm, memory_order_relaxed);
            (*ptrs)[n++] = m;
        }
        if (job != NULL) {
            a->a_bp_at = now;
        }
    }
    eddy__mutex_unlock(&tm->tm_mu);
    return n;
}

/* GET /metrics: this TaskManager's tasks, in the Prometheus text format
 * (the JobManager's /metrics has every TaskManager's, from heartbeats). */
static void h_metrics(void *arg, const eddy__http_req_t *req,
                      eddy__http_resp_t *resp)
{
    EDDY_UNUSED(req);
    eddy__tm_t *tm = arg;
    eddy__bytes_t b = {0};
    eddy__mutex_lock(&tm->tm_mu);
    for (int k = 0; k < EDDY__PROM_TASK_SERIES_COUNT; k++) {
        eddy__prom_task_header(&b, (eddy__prom_task_series_t)k);
        for (int i = 0; i < tm->tm_natt; i++) {
            tm_attempt_t *a = tm->tm_att[i];
            eddy__job_t *job = a->a_job;
            for (int j = 0; job != NULL && j < job->j_ntasks; j++) {
                eddy__task_t *t = job->j_tasks[j];
                int64_t wm =
                    atomic_load_explicit(&t->t_m_wm, memory_order_relaxed);
                if (k == EDDY__PROM_WATERMARK && wm == INT64_MIN) {
                    continue;
                }
                eddy__prom_task_labels(
                    &b, eddy__prom_task_name((eddy__prom_task_series_t)k),
                    a->a_job_id, job->j_env->e_name, t->t_name, t->t_subtask,
                    tm->tm_id, NULL);
                switch (k) {
                case EDDY__PROM_RECORDS_IN:
                case EDDY__PROM_RECORDS_OUT:
                    eddy__prom_printf(&b, "%llu\n",
                                      (unsigned long long)atomic_load_explicit(
                                          k == EDDY__PROM_RECORDS_IN
                                              ? &t->t_m_records_in
                                              : &t->t_m_records_out,
                                          memory_order_relaxed));
                    break;
                case EDDY__PROM_BACKPRESSURE:
                    eddy__prom_printf(&b, "%.6f\n",
                                      j < a->a_nbp ? a->a_bp_ratio[j] : 0.0);
                    break;
                default:
                    eddy__prom_printf(&b, "%.3f\n", (double)wm / 1000.0);
                }
            }
        }
    }
    eddy__mutex_unlock(&tm->tm_mu);
    eddy__prom_header(&b, "eddy_slots_total", "gauge",
                      "Slots this TaskManager offers.");
    eddy__prom_printf(&b, "eddy_slots_total{tm_id=\"%s\"} %d\n", tm->tm_id,
                      tm->tm_slots);
    resp->hs_status = 200;
    resp->hs_body = (char *)b.b_data; /* the server frees it */
    resp->hs_body_len = b.b_len;
    resp->hs_content_type = "text/plain; version=0.0.4";
}

/* ---- the JobManager connection ---- */

static void disconnect(eddy__tm_t *tm, const char *why)
{
    if (!tm->tm_connected) {
        return;
    }
    eddy__log_warn("lost the JobManager at %s: %s; cancelling every task "
                   "and reconnecting",
                   tm->tm_jm, why);
    eddy__mutex_lock(&tm->tm_send_mu);
    tm->tm_connected = false;
    eddy__rpc_conn_close(&tm->tm_conn);
    eddy__mutex_unlock(&tm->tm_send_mu);
    cancel_all(tm, NULL);
    tm->tm_next_connect = now_ms() + 100;
    tm->tm_backoff = 100;
}

static void try_connect(eddy__tm_t *tm)
{
    if (now_ms() < tm->tm_next_connect) {
        return;
    }
    int fd;
    eddy_error_t err = {0};
    if (eddy__tcp_connect(tm->tm_jm, 2000, &fd, &err) != 0) {
        if (!tm->tm_warned) {
            eddy__log_warn("%s; retrying", err.msg);
            tm->tm_warned = true;
        }
        tm->tm_backoff = EDDY_MIN(tm->tm_backoff * 2, 2000);
        tm->tm_next_connect = now_ms() + tm->tm_backoff;
        return;
    }
    tm->tm_warned = false;
    eddy__mutex_lock(&tm->tm_send_mu);
    eddy__rpc_conn_init(&tm->tm_conn, fd, tm->tm_jm);
    tm->tm_connected = true;
    eddy__mutex_unlock(&tm->tm_send_mu);
    tm->tm_last_rx = now_ms();
    Eddy__Rpc__Register r = EDDY__RPC__REGISTER__INIT;
    r.tm_id = tm->tm_id;
    r.host = tm->tm_host;
    r.data_address = (char *)eddy__dp_address(tm->tm_dp);
    r.slots = (uint32_t)tm->tm_slots;
    r.version = EDDY_VERSION_STR;
    r.metrics_url = tm->tm_metrics_url;
    eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
    env.body_case = EDDY__RPC__ENVELOPE__BODY_REGISTRATION;
    env.registration = &r;
    send_env(tm, &env);
}

static void on_frame(eddy__tm_t *tm, eddy__rpc_env_t *env, volatile int *stop)
{
    switch (env->body_case) {
    case EDDY__RPC__ENVELOPE__BODY_REGISTER_ACK: {
        Eddy__Rpc__RegisterAck *a = env->register_ack;
        tm->tm_hb_interval = a->heartbeat_interval_ms > 0
                                 ? a->heartbeat_interval_ms
                                 : tm->tm_hb_interval;
        tm->tm_hb_timeout = a->heartbeat_timeout_ms > 0
                                ? a->heartbeat_timeout_ms
                                : tm->tm_hb_timeout;
        eddy__fmt(tm->tm_rest, sizeof(tm->tm_rest), "%s",
                  a->rest_url != NULL ? a->rest_url : "");
        eddy__log_info("registered with JobManager %s at %s (%d slots)",
                       a->jm_id != NULL ? a->jm_id : "?", tm->tm_jm,
                       tm->tm_slots);
        break;
    }
    case EDDY__RPC__ENVELOPE__BODY_REGISTER_REJECT:
        eddy__log_error("the JobManager refused the registration: %s",
                        env->register_reject->reason);
        *stop = 1;
        break;
    case EDDY__RPC__ENVELOPE__BODY_DEPLOY_JOB:
        on_deploy(tm, env->deploy_job);
        break;
    case EDDY__RPC__ENVELOPE__BODY_CANCEL_JOB: {
        eddy__mutex_lock(&tm->tm_mu);
        tm_attempt_t *a = find_attempt(tm, env->cancel_job->job_id,
                                       (int)env->cancel_job->attempt);
        if (a != NULL) {
            cancel_attempt(a, NULL);
        }
        eddy__mutex_unlock(&tm->tm_mu);
        break;
    }
    case EDDY__RPC__ENVELOPE__BODY_TRIGGER_CHECKPOINT:
        on_trigger(tm, env->trigger_checkpoint);
        break;
    case EDDY__RPC__ENVELOPE__BODY_CHECKPOINT_COMPLETE:
        on_notify(tm, env->checkpoint_complete->job_id,
                  env->checkpoint_complete->checkpoint_id, true);
        break;
    case EDDY__RPC__ENVELOPE__BODY_CHECKPOINT_ABORT:
        on_notify(tm, env->checkpoint_abort->job_id,
                  env->checkpoint_abort->checkpoint_id, false);
        break;
    default:
        break;
    }
}

int eddy__tm_new(const eddy__settings_t *st, const char *jobmanager,
                 eddy__tm_t **out, eddy_error_t *err)
{
    char host[256];
    int port;
    int rc = eddy__parse_hostport(jobmanager, host, sizeof(host), &port, err);
    if (rc != 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "--jobmanager: %s (expected HOST:PORT, e.g. "
                              "127.0.0.1:6123)",
                              err->msg);
    }
    eddy__tm_t *tm = eddy__calloc(1, sizeof(*tm));
    tm->tm_settings = st;
    eddy__fmt(tm->tm_jm, sizeof(tm->tm_jm), "%s", jobmanager);
    tm->tm_slots = eddy__settings_get_int(st, "taskmanager.slots");
    tm->tm_hb_interval = eddy__settings_get_ms(st, "heartbeat.interval");
    tm->tm_hb_timeout = eddy__settings_get_ms(st, "heartbeat.timeout");
    char rnd[9];
    eddy__random_hex(rnd, 4);
    eddy__fmt(tm->tm_id, sizeof(tm->tm_id), "tm-%s", rnd);
    char comp[64];
    eddy__fmt(comp, sizeof(comp), "taskmanager %s", tm->tm_id);
    eddy__log_component(comp);
    if (gethostname(tm->tm_host, sizeof(tm->tm_host)) != 0) {
        eddy__fmt(tm->tm_host, sizeof(tm->tm_host), "localhost");
    }
    char buf[4096];
    const char *dd = eddy__settings_get_str(st, "data.dir");
    eddy__fmt(buf, sizeof(buf), "%s/%s", dd, tm->tm_id);
    tm->tm_data_dir = eddy__strdup(buf);
    pthread_mutex_init(&tm->tm_mu, NULL);
    pthread_mutex_init(&tm->tm_send_mu, NULL);
    if (eddy__mkdirs(tm->tm_data_dir, NULL) != 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot create %s: %s",
                            tm->tm_data_dir, strerror(errno));
        eddy__tm_destroy(tm);
        return rc;
    }
    /* Where other TaskManagers and Prometheus reach this one, and where it
     * listens (the same address unless taskmanager.bind_host says). */
    const char *adv = eddy__settings_get_str(st, "taskmanager.host");
    const char *bind = eddy__settings_get_str(st, "taskmanager.bind_host");
    if (bind == NULL) {
        bind = adv;
    }
    eddy__dp_options_t o;
    eddy__dp_options_init(&o);
    o.do_bind = bind;
    o.do_advertise_host = adv;
    o.do_self_id = tm->tm_id;
    o.do_exclusive =
        eddy__settings_get_int(st, "taskmanager.network.exclusive_buffers");
    o.do_floating =
        eddy__settings_get_int(st, "taskmanager.network.floating_buffers");
    o.do_on_peer_lost = on_peer_lost;
    o.do_arg = tm;
    tm->tm_dp = eddy__dp_new(&o, err);
    if (tm->tm_dp == NULL) {
        rc = err->code != 0 ? err->code : EDDY_ERR_IO;
        eddy__tm_destroy(tm);
        return rc;
    }
    eddy__http_options_t ho;
    eddy__http_options_init(&ho);
    ho.ho_bind = bind;
    ho.ho_port = eddy__settings_get_int(st, "taskmanager.metrics_port");
    ho.ho_threads = 1;
    ho.ho_max_connections = 16;
    tm->tm_http = eddy__http_new(&ho, err);
    if (tm->tm_http != NULL) {
        eddy__http_route(tm->tm_http, "GET", "/metrics", h_metrics, tm);
    }
    if (tm->tm_http == NULL || eddy__http_start(tm->tm_http, err) != 0) {
        rc = err->code != 0 ? err->code : EDDY_ERR_IO;
        eddy__tm_destroy(tm);
        return rc;
    }
    eddy__fmt(tm->tm_metrics_url, sizeof(tm->tm_metrics_url),
              strchr(adv, ':') != NULL ? "http://[%s]:%d/metrics"
                                       : "http://%s:%d/metrics",
              adv, eddy__http_port(tm->tm_http));
    tm->tm_backoff = 100;
    *out = tm;
    return 0;
}

int eddy__tm_run(eddy__tm_t *tm, volatile int *stop)
{
    eddy__log_info("TaskManager %s: %d slots, data plane %s, metrics %s, "
                   "JobManager %s",
                   tm->tm_id, tm->tm_slots, eddy__dp_address(tm->tm_dp),
                   tm->tm_metrics_url, tm->tm_jm);
    while (!*stop) {
        if (!tm->tm_connected) {
            try_connect(tm);
            if (!tm->tm_connected) {
                reap_attempts(tm);
                struct timespec ts = {0, 50 * 1000000};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        struct pollfd p = {tm->tm_conn.rc_fd, POLLIN, 0};
        poll(&p, 1, 20);
        int64_t now = now_ms();
        if (p.revents != 0) {
            eddy_error_t err = {0};
            int rc = eddy__rpc_conn_read(&tm->tm_conn, &err);
            eddy__rpc_env_t *env;
            int n;
            while ((n = eddy__rpc_conn_next(&tm->tm_conn, &env, &err)) == 1) {
                tm->tm_last_rx = now;
                on_frame(tm, env, stop);
            }
            if (rc != 0 || n < 0) {
                disconnect(tm, err.msg);
                continue;
            }
        }
        if (now - tm->tm_last_rx > tm->tm_hb_timeout) {
            disconnect(tm, "no heartbeat from the JobManager");
            continue;
        }
        if (atomic_load(&tm->tm_conn.rc_dead)) {
            disconnect(tm, "connection lost");
            continue;
        }
        if (now - tm->tm_last_hb >= tm->tm_hb_interval) {
            tm->tm_last_hb = now;
            Eddy__Rpc__Heartbeat hb = EDDY__RPC__HEARTBEAT__INIT;
            hb.seq = ++tm->tm_hb_seq;
            hb.timestamp_ms = now;
            eddy__rpc_env_t env = EDDY__RPC__ENVELOPE__INIT;
            env.body_case = EDDY__RPC__ENVELOPE__BODY_HEARTBEAT;
            env.heartbeat = &hb;
            Eddy__Rpc__TaskMetrics *tms = NULL, **tmp = NULL;
            uint64_t *bk = NULL;
            hb.n_tasks = collect_metrics(tm, &tms, &tmp, &bk);
            hb.tasks = tmp;
            send_env(tm, &env);
            free(tms);
            free(tmp);
            free(bk);
        }
        ack_finished(tm);
        reap_attempts(tm);
    }
    eddy__log_info("TaskManager %s stopping", tm->tm_id);
    cancel_all(tm, NULL);
    for (;;) {
        reap_attempts(tm);
        eddy__mutex_lock(&tm->tm_mu);
        int n = tm->tm_natt;
        eddy__mutex_unlock(&tm->tm_mu);
        if (n == 0) {
            break;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

void eddy__tm_destroy(eddy__tm_t *tm)
{
    if (tm == NULL) {
        return;
    }
    /* The metrics handler reads the attempts: stop it first. */
    eddy__http_destroy(tm->tm_http);
    if (tm->tm_connected) {
        eddy__rpc_conn_close(&tm->tm_conn);
    }
    eddy__dp_destroy(tm->tm_dp);
    free(tm->tm_att);
    free(tm->tm_data_dir);
    pthread_mutex_destroy(&tm->tm_mu);
    pthread_mutex_destroy(&tm->tm_send_mu);
    free(tm);
}
