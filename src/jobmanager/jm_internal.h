/*
 * eddy — the JobManager's private structures (jobmanager.c, rest_api.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#ifndef EDDY_JOBMANAGER_JM_INTERNAL_H
#define EDDY_JOBMANAGER_JM_INTERNAL_H

#include <jansson.h>

#include "checkpoint/coordinator.h"
#include "jobmanager/jobmanager.h"
#include "meta/meta_store.h"
#include "rest/http.h"
#include "rpc/conn.h"
#include "runtime/config.h"

/* Task states as the TaskManagers report them (eddy.proto TaskState). */
#define JM_TASK_NONE 0
#define JM_TASK_DEPLOYING 1
#define JM_TASK_RUNNING 2
#define JM_TASK_FINISHED 3
#define JM_TASK_CANCELING 4
#define JM_TASK_CANCELED 5
#define JM_TASK_FAILED 6

typedef struct jm_tm {
    char tm_id[64];
    char tm_host[128];
    char tm_data_addr[160];
    char tm_metrics_url[200]; /* its own Prometheus endpoint, or "" */
    int tm_slots;
    struct jm_job **tm_slot_job; /* per slot: the job using it, or NULL */
    eddy__rpc_conn_t tm_conn;
    bool tm_registered;
    bool tm_lost;
    int64_t tm_registered_ms;
    int64_t tm_last_hb_ms; /* last frame received (wall clock) */
    uint64_t tm_hb_seq;
} jm_tm_t;

typedef struct jm_savepoint {
    int64_t sp_id; /* checkpoint id, 0 until triggered */
    char sp_request[40];
    char sp_dir[1024];
    bool sp_stop;  /* stop the job once it completes */
    int sp_result; /* 0 pending, 1 completed, -1 failed */
} jm_savepoint_t;

/* A task's figures from its TaskManager's heartbeats, and rates derived
 * from the last two reports. */
typedef struct jm_task_metrics {
    uint64_t tm_records_in;
    uint64_t tm_records_out;
    uint64_t tm_bp_ns;
    int64_t tm_watermark; /* INT64_MIN: none yet */
    int64_t tm_at_ms;     /* when the report arrived; 0: never */
    double tm_rate;       /* records in per second */
    double tm_rate_out;   /* records out per second */
    double tm_bp_ratio;   /* share of time its writers were blocked */
    uint64_t tm_lat[14];  /* latency marker counts per bucket (runtime.h) */
    uint64_t tm_lat_sum_us;
} jm_task_metrics_t;

typedef struct jm_job {
    char jb_id[33];
    char jb_name[256];
    eddy__job_state_t jb_state;
    json_t *jb_plan;
    int jb_ntasks;
    int jb_slots_needed; /* max vertex parallelism (slot sharing) */
    int jb_parallelism;
    char *jb_artifact;
    char jb_sha256[65]; /* of jb_artifact, hex; "" if unreadable */
    json_t *jb_args;    /* array of strings */
    char *jb_savepoint; /* restore the first attempt from it, or NULL */
    eddy__config_t jb_cfg;
    bool jb_ckpt;
    int jb_attempt;
    int *jb_task_state;       /* per global task */
    jm_tm_t **jb_task_tm;     /* per global task, this attempt */
    int64_t jb_deploy_at;     /* earliest (re)deploy, wall ms */
    int64_t jb_waiting_since; /* waiting for slots since */
    int64_t jb_start_ms, jb_end_ms;
    int jb_restarts;
    int jb_backoff;           /* restarts since the delay last reset */
    int64_t jb_running_since; /* the current attempt was deployed */
    char jb_failure[1024];
    eddy__coord_t *jb_coord;
    eddy__coord_stats_t jb_ck_stats; /* last seen (kept after the end) */
    int64_t jb_recorded_ckpt; /* newest checkpoint written to the store */
    char *jb_restore_dir;     /* the checkpoint the attempt restored */
    jm_savepoint_t jb_sp[8];
    int jb_nsp;
    const char *jb_sp_pending_dir; /* the savepoint being triggered */
    bool jb_sp_pending_drain;      /* ... for a stop with drain */
    bool jb_stopping;              /* stop-with-savepoint: cancel after */
    int64_t jb_cancel_deadline;    /* CANCELLING/RESTARTING: give up waiting */
    jm_task_metrics_t *jb_metrics; /* per global task, this attempt */
} jm_job_t;

/* A REST action run by the main loop. */
typedef struct jm_cmd {
    struct jm_cmd *cm_next;
    int cm_kind; /* JM_CMD_* */
    char cm_job[33];
    char cm_dir[1024];
    bool cm_drain;
    /* answer */
    bool cm_done;
    int cm_status;
    json_t *cm_reply;
} jm_cmd_t;

#define JM_CMD_CANCEL 1
#define JM_CMD_SAVEPOINT 2
#define JM_CMD_STOP 3

struct eddy__jm {
    const eddy__settings_t *jm_settings;
    char jm_id[33];
    char *jm_data_dir;
    char *jm_artifact_dir;
    char *jm_upload_dir;
    char *jm_ck_dir;
    char *jm_sp_dir;
    char *jm_exe;
    eddy__meta_t *jm_meta;
    eddy__http_server_t *jm_http;
    int jm_rest_port;
    int jm_rpc_fd;
    int jm_rpc_port;
    int jm_wake[2]; /* pipe: REST threads wake the main loop */
    int64_t jm_hb_interval;
    int64_t jm_hb_timeout;
    int64_t jm_slot_wait;
    bool jm_binpack;
    int jm_default_parallelism;
    pthread_mutex_t jm_mu;
    pthread_cond_t jm_cmd_cv;
    jm_cmd_t *jm_cmds;
    jm_tm_t **jm_tms;
    int jm_ntms;
    jm_job_t **jm_jobs;
    int jm_njobs;
    int64_t jm_last_hb_sent;
    int64_t jm_start_ms;
};

/* rest_api.c */
void eddy__jm_rest_routes(eddy__jm_t *jm);
/* jobmanager.c, for rest_api.c (with jm_mu held) */
jm_job_t *eddy__jm_find_job(eddy__jm_t *jm, const char *id);
int eddy__jm_free_slots(eddy__jm_t *jm, int *total, int *active_tms);
/* Queues a command and waits for the main loop's answer (jm_mu held on
 * entry and exit). */
void eddy__jm_command(eddy__jm_t *jm, jm_cmd_t *cmd);
/* Adds a submitted job (jm_mu not held). */
int eddy__jm_submit(eddy__jm_t *jm, const char *so_path,
                    const char *display_name, int parallelism,
                    int64_t ck_interval, const char *savepoint, json_t *args,
                    char *job_id, eddy_error_t *err);
void eddy__jm_wake(eddy__jm_t *jm);
const char *eddy__jm_task_state_name(int st);

#endif /* EDDY_JOBMANAGER_JM_INTERNAL_H */
