/*
 * eddy — the local mini-cluster: runs a plan in this process.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Runs every task of the plan in this process (src/runtime/job.c) with a
 * checkpoint coordinator thread beside it, and restarts failed attempts
 * from the latest checkpoint as the restart strategy allows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "checkpoint/coordinator.h"
#include "checkpoint/storage.h"
#include "eddy/runner.h"
#include "runtime/runtime.h"

/* ---- checkpoints: the coordinator thread and its hooks ---- */

typedef struct ckpt_rt {
    eddy__job_t *cr_job; /* the current attempt (NULL between attempts) */
    pthread_mutex_t cr_mu;
    pthread_cond_t cr_cv;
    bool cr_stop;
    pthread_t cr_thread;
    eddy__coord_t *cr_coord;
    eddy__ckpt_port_t cr_port; /* what the tasks call */
} ckpt_rt_t;

/* Hooks run with the coordinator's lock held: they only store and poke. */
static void hook_trigger(void *arg, int64_t id, bool savepoint)
{
    ckpt_rt_t *cr = arg;
    if (cr->cr_job != NULL) {
        eddy__job_trigger_sources(
            cr->cr_job, id | (savepoint ? EDDY__BARRIER_SAVEPOINT : 0));
    }
}

static void hook_complete(void *arg, int64_t id)
{
    ckpt_rt_t *cr = arg;
    if (cr->cr_job != NULL) {
        eddy__job_notify(cr->cr_job, id, true);
    }
}

static void hook_abort(void *arg, int64_t id)
{
    ckpt_rt_t *cr = arg;
    if (cr->cr_job != NULL) {
        eddy__job_notify(cr->cr_job, id, false);
    }
}

/* The tasks' side: straight into the coordinator. */
static int port_dir(void *arg, int64_t id, char *buf, size_t size,
                    bool *savepoint)
{
    return eddy__coord_dir(((ckpt_rt_t *)arg)->cr_coord, id, buf, size,
                           savepoint);
}

static const char *port_job_dir(void *arg)
{
    return eddy__coord_job_dir(((ckpt_rt_t *)arg)->cr_coord);
}

static void port_ack(void *arg, int64_t id, int task, json_t *ops)
{
    eddy__coord_ack(((ckpt_rt_t *)arg)->cr_coord, id, task, ops);
}

static void port_decline(void *arg, int64_t id, int task, const char *reason)
{
    eddy__coord_decline(((ckpt_rt_t *)arg)->cr_coord, id, task, reason);
}

/* Triggers on schedule, times out, and acknowledges for finished tasks. */
static void *coord_main(void *arg)
{
    ckpt_rt_t *cr = arg;
    eddy__mutex_lock(&cr->cr_mu);
    while (!cr->cr_stop) {
        eddy__mutex_unlock(&cr->cr_mu);
        eddy__job_t *job = cr->cr_job;
        if (atomic_exchange(&job->j_want_trigger, false)) {
            eddy__coord_trigger_soon(cr->cr_coord, eddy__now_ms());
        }
        int64_t wait = eddy__coord_poll(cr->cr_coord, eddy__now_ms(), 20);
        eddy__job_ack_finished(job);
        eddy__mutex_lock(&cr->cr_mu);
        if (cr->cr_stop) {
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + EDDY_MIN(wait, 20) * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&cr->cr_cv, &cr->cr_mu, &ts);
    }
    eddy__mutex_unlock(&cr->cr_mu);
    return NULL;
}

/* Sleeps ms, waking early if the user cancels; false if canceled. */
static bool sleep_unless_canceled(eddy_env_t *env, int64_t ms)
{
    int64_t end = eddy__now_ms() + ms;
    while (atomic_load(&env->e_cancel) == 0) {
        int64_t left = end - eddy__now_ms();
        if (left <= 0) {
            return true;
        }
        struct timespec ts = {0, (long)EDDY_MIN(left, 50) * 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static int local_run(eddy_env_t *env, eddy__plan_t *pl, eddy_error_t *err);

int eddy__local_run(eddy_env_t *env, eddy__plan_t *pl, eddy_error_t *err)
{
    eddy_error_t e = {0};
    int rc = local_run(env, pl, &e);
    if (rc != 0 && err != NULL) {
        *err = e;
    }
    return rc;
}

static int local_run(eddy_env_t *env, eddy__plan_t *pl, eddy_error_t *err)
{
    eddy__config_t *cfg = &env->e_cfg;
    bool ckpt = cfg->ck_interval_ms > 0;
    json_t *restore = NULL;
    char *restore_dir = NULL;
    int rc = 0;
    if (cfg->restore_path != NULL) {
        rc = eddy__job_load_restore(cfg->restore_path, &restore, &restore_dir,
                                    err);
        if (rc == 0) {
            rc = eddy__job_check_restore(env, pl, restore, restore_dir, err);
        }
        if (rc != 0) {
            json_decref(restore);
            free(restore_dir);
            return rc;
        }
    }
    if (!ckpt && cfg->restart_strategy != EDDY__RESTART_NONE) {
        /* Without checkpoints a restart would start from scratch and
         * duplicate every result: say so instead. */
        json_decref(restore);
        free(restore_dir);
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "restart.strategy needs checkpointing (set "
                              "checkpoint.interval or --checkpoint-interval)");
    }
    if (ckpt && !cfg->restart_explicit) {
        cfg->restart_strategy = EDDY__RESTART_EXPONENTIAL;
    }
    ckpt_rt_t cr;
    memset(&cr, 0, sizeof(cr));
    pthread_mutex_init(&cr.cr_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cr.cr_cv, &ca);
    pthread_condattr_destroy(&ca);
    cr.cr_port = (eddy__ckpt_port_t){&cr, port_dir, port_job_dir, port_ack,
                                     port_decline};
    int ntasks = 0;
    for (int v = 0; v < pl->pl_nvertices; v++) {
        ntasks += pl->pl_vertices[v].vx_parallelism;
    }
    if (ckpt) {
        char job_dir[4096];
        eddy__fmt(job_dir, sizeof(job_dir), "%s/%s", eddy__config_ck_path(cfg),
                  cfg->job_id);
        json_t *ops = eddy__plan_operators_json(env, pl);
        eddy__coord_hooks_t hooks = {&cr, hook_trigger, hook_complete,
                                     hook_abort};
        int64_t last =
            restore != NULL
                ? json_integer_value(json_object_get(restore, "checkpoint_id"))
                : 0;
        rc = eddy__coord_new(cfg, job_dir, env->e_name, ops, ntasks, last,
                             &hooks, &cr.cr_coord, err);
        json_decref(ops);
        if (rc != 0) {
            json_decref(restore);
            free(restore_dir);
            return rc;
        }
        eddy__mutex_lock(&env->e_mu);
        env->e_coord = cr.cr_coord;
        eddy__mutex_unlock(&env->e_mu);
    }

    for (int attempt = 0;; attempt++) {
        eddy__job_t *job = NULL;
        bool coord_thread = false;
        rc = eddy__job_new(env, pl, NULL, &job, err);
        if (rc != 0) {
            break;
        }
        job->j_restore = restore;
        job->j_attempt = attempt;
        job->j_restore_dir = restore_dir;
        for (int i = 0; i < job->j_ntasks && rc == 0; i++) {
            rc = eddy__task_restore_prepare(job->j_tasks[i], err);
        }
        if (rc == 0 && ckpt) {
            job->j_ckpt = &cr.cr_port;
            job->j_snapper = eddy__snapshotter_new(job);
            cr.cr_job = job;
            cr.cr_stop = false;
            eddy__coord_start(cr.cr_coord, eddy__now_ms());
            if (pthread_create(&cr.cr_thread, NULL, coord_main, &cr) != 0) {
                rc = eddy_error_set(err, EDDY_ERR_NOMEM,
                                    "cannot start the checkpoint "
                                    "coordinator thread");
            } else {
                coord_thread = true;
            }
        }
        if (rc == 0) {
            rc = eddy__job_run(job, err);
        }
        if (ckpt) {
            eddy__mutex_lock(&cr.cr_mu);
            cr.cr_stop = true;
            pthread_cond_signal(&cr.cr_cv);
            eddy__mutex_unlock(&cr.cr_mu);
            if (coord_thread) {
                pthread_join(cr.cr_thread, NULL);
            }
            /* Let a checkpoint that every task has already taken
             * complete (so finished sinks see their commit), then stop. */
            eddy__snapshotter_destroy(job->j_snapper, rc != 0);
            job->j_snapper = NULL;
            eddy__coord_stop(cr.cr_coord);
            cr.cr_job = NULL;
        }
        eddy__job_destroy(job);
        bool user_cancel = atomic_load(&env->e_cancel) != 0;
        if (rc == 0 || user_cancel || !ckpt ||
            !eddy__restart_allowed(cfg, attempt + 1)) {
            if (user_cancel && rc != 0) {
                rc = eddy_error_set(err, EDDY_ERR_CANCELED,
                                    "the job was canceled");
            }
            break;
        }
        int64_t delay = eddy__restart_delay_ms(cfg, attempt + 1);
        fprintf(stderr, "eddy: %s\neddy: restarting in %lld ms (restart %d)\n",
                err->msg, (long long)delay, attempt + 1);
        if (!sleep_unless_canceled(env, delay)) {
            rc = eddy_error_set(err, EDDY_ERR_CANCELED, "the job was canceled");
            break;
        }
        /* Restore from the newest usable checkpoint of this job (or the
         * one it started from, if none completed yet). */
        eddy__coord_stats_t st;
        eddy__coord_stats(cr.cr_coord, &st);
        if (st.cs_latest_id > 0) {
            json_t *meta = NULL;
            char *dir = NULL;
            eddy_error_t e = {0};
            if (eddy__job_load_restore(eddy__coord_job_dir(cr.cr_coord), &meta,
                                       &dir, &e) == 0) {
                json_decref(restore);
                free(restore_dir);
                restore = meta;
                restore_dir = dir;
            } else {
                fprintf(stderr, "eddy: %s\n", e.msg);
            }
        }
        rc = 0;
        memset(err, 0, sizeof(*err));
    }
    eddy__mutex_lock(&env->e_mu);
    if (cr.cr_coord != NULL) {
        eddy__coord_stats_t fin;
        eddy__coord_stats(cr.cr_coord, &fin);
        env->e_ck_ran = true;
        env->e_ck_completed = fin.cs_completed;
        env->e_ck_failed = fin.cs_failed;
        eddy__fmt(env->e_ck_latest, sizeof(env->e_ck_latest), "%s",
                  fin.cs_latest_id > 0 ? fin.cs_latest_path : "");
    }
    env->e_coord = NULL;
    eddy__coord_destroy(cr.cr_coord);
    eddy__mutex_unlock(&env->e_mu);
    pthread_cond_destroy(&cr.cr_cv);
    pthread_mutex_destroy(&cr.cr_mu);
    json_decref(restore);
    free(restore_dir);
    return rc;
}

int eddy_env_savepoint(eddy_env_t *env, const char *dir, char *path,
                       size_t size, eddy_error_t *err)
{
    if (env == NULL || dir == NULL || *dir == '\0') {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "a savepoint needs a directory");
    }
    char target[4096];
    unsigned r = (unsigned)(eddy__now_ns() ^ (uint64_t)(uintptr_t)&target);
    eddy__fmt(target, sizeof(target), "%s/savepoint-%.6s-%08x", dir,
              env->e_cfg.job_id, r);
    /* The coordinator lives as long as the job runs; holding e_mu keeps
     * it from being destroyed while we trigger. */
    eddy__mutex_lock(&env->e_mu);
    eddy__coord_t *c = env->e_coord;
    int64_t id = EDDY_ERR_STATE;
    if (c != NULL) {
        id = eddy__coord_trigger_savepoint(c, target, err);
    }
    eddy__mutex_unlock(&env->e_mu);
    if (c == NULL) {
        return eddy_error_set(err, EDDY_ERR_STATE,
                              "the job is not running with checkpointing "
                              "enabled (set --checkpoint-interval)");
    }
    if (id < 0) {
        return (int)id;
    }
    /* Wait without the lock: the job may end meanwhile, which aborts the
     * savepoint and wakes us. */
    eddy__mutex_lock(&env->e_mu);
    c = env->e_coord;
    int rc = c == NULL ? EDDY_ERR_STATE
                       : eddy__coord_wait(c, id, env->e_cfg.ck_timeout_ms, err);
    eddy__mutex_unlock(&env->e_mu);
    if (rc == 1) {
        eddy__fmt(path, size, "%s", target);
        return 0;
    }
    if (rc == 0 || c == NULL) {
        return eddy_error_set(err, EDDY_ERR_STATE, "the savepoint failed: %s",
                              c == NULL ? "the job ended" : err->msg);
    }
    return rc;
}
