/*
 * eddy — internal runtime model: logical graph, plan, operators and tasks.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §3). Three levels:
 *
 *   logical graph   eddy_stream_t nodes built by the job API, in creation
 *                   order (which is a topological order). Physical nodes run
 *                   an operator class; virtual nodes (union, partition hints)
 *                   only shape edges.
 *   plan            physical edges with resolved partitioners and
 *                   parallelism; operators chained into job vertices when
 *                   connected by a forward edge of equal parallelism.
 *   execution       each vertex expanded to `parallelism` subtasks (tasks),
 *                   each a thread running its chain; non-chained edges become
 *                   channels carrying serialized buffers.
 *
 * Inside a chain records pass by function call through eddy_collector_t:
 * a (function, target) pair, so emitting costs one indirect call.
 */
#ifndef EDDY_RUNTIME_RUNTIME_H
#define EDDY_RUNTIME_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>

#include "checkpoint/checkpoint.h"
#include "common/internal.h"
#include "runtime/buffer.h"
#include "runtime/channel.h"
#include "runtime/config.h"
#include "runtime/serializer.h"
#include "state/state.h"

typedef struct eddy__op eddy__op_t;
typedef struct eddy__task eddy__task_t;
typedef struct eddy__job eddy__job_t;

/* Latency histogram buckets: upper bounds in ms, the last one +Inf. */
#define EDDY__LAT_BUCKETS 14
extern const double eddy__lat_bounds_ms[EDDY__LAT_BUCKETS - 1];
#define EDDY__MARKER_INTERVAL_MS 1000

/*
 * Where the tasks of a plan run, for a TaskManager: per global task index
 * (vertex order, then subtask), NULL for "here" or the data-plane address
 * of the TaskManager that runs it. Edges between here and elsewhere become
 * data-plane channels of attempt `pm_tag`.
 */
typedef struct eddy__placement {
    int pm_ntasks;
    const char *const *pm_addr;
    struct eddy__dp *pm_dp;
    uint64_t pm_tag;
} eddy__placement_t;

/* ---- partitioners ---- */

#define EDDY__PARTITIONER_MAP(XX)                                              \
    XX(DEFAULT, "default")                                                     \
    XX(FORWARD, "forward")                                                     \
    XX(HASH, "hash")                                                           \
    XX(REBALANCE, "rebalance")                                                 \
    XX(BROADCAST, "broadcast")

typedef enum eddy__partitioner {
#define XX(name, s) EDDY__PART_##name,
    EDDY__PARTITIONER_MAP(XX)
#undef XX
} eddy__partitioner_t;

const char *eddy__partitioner_name(int part);

/* ---- operator classes ---- */

/* Result of a source poll. */
#define EDDY__POLL_MORE 1
#define EDDY__POLL_END 0

typedef struct eddy__op_class {
    const char *oc_kind;        /* default operator name */
    int oc_default_parallelism; /* 0 = the environment's default */
    bool oc_source;
    bool oc_sink;
    bool oc_keyed_input; /* needs hash-partitioned input */
    int oc_inputs;       /* 1, or 2 for two-input operators */
    /* All callbacks return 0 or a negative eddy_err_t; NULL means no-op. */
    int (*oc_open)(eddy__op_t *op);
    /* Processes one record (not for sources). `op` is eddy__op_t*, typed
     * void* so the function doubles as a collector function. */
    int (*oc_process)(void *op, const eddy_record_t *rec);
    /* Two-input operators: records of the second input (port 1). */
    int (*oc_process2)(void *op, const eddy_record_t *rec);
    /* The input watermark advanced to `wm` (ms). NULL: forward it. An
     * implementation fires what is due and then calls
     * eddy__op_forward_watermark (or holds the watermark back). */
    int (*oc_watermark)(eddy__op_t *op, int64_t wm);
    /* Processing time reached op->op_next_tick_ms (set by the operator;
     * INT64_MAX = no tick wanted). */
    int (*oc_tick)(eddy__op_t *op, int64_t now_ms);
    /* Sources: emit up to `budget` records; EDDY__POLL_MORE or _END. */
    int (*oc_poll)(eddy__op_t *op, int budget);
    /* All inputs ended: emit final results. */
    int (*oc_end_input)(eddy__op_t *op);
    /* The task is idle or ending: push out anything buffered. */
    int (*oc_flush)(eddy__op_t *op);
    void (*oc_close)(eddy__op_t *op);
    /* Checkpoints (src/checkpoint/checkpoint.h), all NULL-able, on the
     * task thread. oc_snapshot: barrier n has reached the operator (after
     * every record before it): write operator list state into `snap` and
     * pre-commit. Keyed state and timers made with eddy__op_kstate_new /
     * eddy__op_timers_new are snapshotted by the task. A failure declines
     * the checkpoint and fails the task. */
    int (*oc_snapshot)(eddy__op_t *op, eddy__op_snap_t *snap);
    /* Checkpoint n completed (metadata written): commit what was
     * pre-committed at n and before. Notifications can be lost (a crash):
     * a restore must redo commits from the restored state. */
    int (*oc_checkpoint_complete)(eddy__op_t *op, int64_t id);
    /* Checkpoint n was aborted (timeout, decline, failure elsewhere). */
    int (*oc_checkpoint_abort)(eddy__op_t *op, int64_t id);
} eddy__op_class_t;

/* ---- logical graph ---- */

typedef enum eddy__node_kind {
    EDDY__NODE_OPERATOR,  /* physical: runs s_class */
    EDDY__NODE_UNION,     /* virtual: merges s_inputs */
    EDDY__NODE_PARTITION, /* virtual: imposes s_partitioner on its input */
    EDDY__NODE_SIDE       /* virtual: side output s_tag of s_inputs[0] */
} eddy__node_kind_t;

struct eddy_stream_s {
    eddy_env_t *s_env;
    int s_id; /* index in env->e_nodes; creation order is topological */
    eddy__node_kind_t s_kind;
    const eddy__op_class_t *s_class;
    char *s_name;      /* in env arena */
    char *s_uid;       /* user uid, or NULL */
    int s_parallelism; /* 0 = class default, then env default */
    bool s_no_chain;
    bool s_keyed_out;  /* key_by: outgoing edges hash-partition */
    int s_partitioner; /* EDDY__NODE_PARTITION */
    eddy_stream_t **s_inputs;
    int s_ninputs;
    /* User function, its opaque, and class-specific configuration. */
    void (*s_fn)(void);
    void *s_opaque;
    void *s_config;
    /* Keyed state declared with eddy_declare_state (in env arena). */
    eddy_state_desc_t *s_states;
    int s_nstates;
    /* Side output names (operators) / the side output (EDDY__NODE_SIDE). */
    char **s_tags;
    int s_ntags;
    int s_tag;
};

struct eddy_env_s {
    char *e_name;
    int e_parallelism;         /* set by the job; 0 = unset */
    int e_default_parallelism; /* set by the runner (-p); 0 = 1 */
    int e_max_parallelism;
    size_t e_buffer_size;
    int e_channel_capacity;
    int64_t e_wm_interval_ms;
    eddy_stream_t **e_nodes;
    size_t e_nnodes;
    size_t e_nodes_cap;
    eddy__arena_t e_arena;       /* graph-lifetime memory */
    eddy__config_t e_cfg;        /* checkpoints, state, restarts (config.h) */
    pthread_mutex_t e_mu;        /* guards e_coord */
    struct eddy__coord *e_coord; /* while running with checkpoints */
    /* After a run with checkpoints (eddy_env_checkpoint_summary). */
    bool e_ck_ran;
    uint64_t e_ck_completed, e_ck_failed;
    char e_ck_latest[1024]; /* newest completed checkpoint, or "" */
    eddy_error_t e_error;   /* first graph-building error */
    bool e_failed;
    bool e_executed;
    atomic_int e_cancel;
};

/* Adds a physical node of `cls` with the given inputs (NULL-safe: a NULL input
 * returns NULL, as the error is already recorded). */
eddy_stream_t *eddy__node_add(eddy_env_t *env, const eddy__op_class_t *cls,
                              eddy_stream_t *const *inputs, int ninputs);
eddy_env_t *eddy__stream_env(eddy_stream_t *s);
/* Adds a virtual node (union, partition, side output). */
eddy_stream_t *eddy__node_virtual(eddy_env_t *env, eddy__node_kind_t kind,
                                  eddy_stream_t *const *inputs, int ninputs);

/* ---- plan ---- */

typedef struct eddy__edge {
    int ed_src;  /* node id */
    int ed_dst;  /* node id */
    int ed_port; /* input of the destination: 0, or 1 (two-input) */
    int ed_tag;  /* output of the source: 0 main, k = side output k-1 */
    int ed_part;
    bool ed_chained;
} eddy__edge_t;

typedef struct eddy__vertex {
    int vx_head;   /* node id */
    int *vx_nodes; /* node ids in topological order, head first */
    int vx_nnodes;
    int vx_parallelism;
    char *vx_name; /* "A -> B -> C" */
} eddy__vertex_t;

typedef struct eddy__plan {
    eddy_env_t *pl_env;
    int pl_nnodes; /* = env->e_nnodes; virtual nodes have pl_vertex_of -1 */
    int *pl_parallelism; /* per node id */
    int *pl_vertex_of;   /* per node id */
    eddy__edge_t *pl_edges;
    int pl_nedges;
    eddy__vertex_t *pl_vertices;
    int pl_nvertices;
} eddy__plan_t;

/* Builds the plan; returns 0 or an error with a message naming the node. */
int eddy__plan_build(eddy_env_t *env, eddy__plan_t **out, eddy_error_t *err);
void eddy__plan_destroy(eddy__plan_t *pl);
/* Gives every node without a uid the one derived from its position,
 * "auto-<node id>" (stable while the job builds the same graph), as
 * eddy_env_execute does: eddy__plan_operators_json needs uids. */
void eddy__plan_assign_uids(eddy_env_t *env);

/* ---- operator instances and contexts ---- */

/* Scratch memory: one block reused per call, plus an overflow arena used
 * only when a call needs more (the block then grows at the next reset). */
typedef struct eddy__scratch {
    unsigned char *sc_base;
    size_t sc_cap;
    size_t sc_used;
    size_t sc_peak;
    eddy__arena_t sc_overflow;
    bool sc_overflowed;
} eddy__scratch_t;

void eddy__scratch_grow_reset(eddy__scratch_t *sc);
static inline void eddy__scratch_reset(eddy__scratch_t *sc)
{
    sc->sc_used = 0;
    if (EDDY_UNLIKELY(sc->sc_overflowed)) {
        eddy__scratch_grow_reset(sc);
    }
}

struct eddy_ctx_s {
    eddy__op_t *cx_op;
    int cx_subtask;
    int cx_parallelism;
    const char *cx_name;
    eddy__scratch_t cx_scratch;
    /* Keyed operators: state, timers and the key being processed. */
    struct eddy__kstate *cx_state;
    struct eddy__timers *cx_timers;
    eddy__skey_t cx_key;
    bool cx_has_key;
    /* Window operators: the window being emitted (eddy_ctx_window). */
    const eddy_window_t *cx_window;
};

struct eddy_collector_s {
    int (*co_fn)(void *target, const eddy_record_t *rec);
    void *co_target;
};

struct eddy__op {
    eddy_ctx_t op_ctx; /* first: user functions get &op->op_ctx */
    const eddy__op_class_t *op_class;
    const eddy_stream_t *op_node;
    eddy__task_t *op_task;
    eddy_collector_t op_out;     /* downstream: chained ops and/or writers */
    eddy_collector_t *op_fanout; /* wiring: every target, with its tag */
    int *op_fanout_tag;
    int op_nfanout;
    void **op_fanouts; /* fan-out lists built for the collectors */
    int op_nfanouts;
    eddy_collector_t *op_side; /* per side output (tags 1..n) */
    int op_nside;
    void *op_data;        /* class instance state */
    eddy__op_t **op_succ; /* chained successors (events go there too) */
    int op_nsucc;
    struct eddy__writer **op_writers; /* writers of non-chained out edges */
    int op_nwriters;
    int64_t op_next_tick_ms; /* INT64_MAX: no processing-time tick */
    int64_t op_in_wm;        /* last watermark received */
    int64_t op_out_wm;       /* last watermark forwarded */
    /* Checkpoints: what oc_open restores from (NULL: fresh start), and the
     * keyed state and timers the task snapshots for this operator. */
    const eddy__op_restore_t *op_restore;
    void *op_rs; /* restore context (snapshot.c) */
    struct eddy__kstate *op_kstate;
    struct eddy__timers *op_timers;
    bool op_failed;
    char op_errmsg[256];
};

/*
 * Keyed operators create their state backend and timer service with these
 * (in oc_open), so the backend follows the job's configuration
 * (state.backend), the task snapshots them, and restored state is loaded
 * into them before oc_open returns. The operator owns and destroys them.
 * Returns 0 or an error (recorded as the operator's failure).
 */
int eddy__op_kstate_new(eddy__op_t *op, const eddy__state_spec_t *specs,
                        int nstates, struct eddy__kstate **out);
int eddy__op_timers_new(eddy__op_t *op, struct eddy__timers **out);
/*
 * True when a checkpoint will follow the end of the input (checkpointing is
 * on): tasks then stay alive after their input ends until a checkpoint
 * taken after it completes, so an exactly-once sink's oc_end_input only
 * flushes and lets that final checkpoint pre-commit and commit. False:
 * oc_end_input must commit what is left.
 */
bool eddy__op_final_checkpoint(const eddy__op_t *op);
/* The job's configuration and identity. */
const eddy__config_t *eddy__op_config(const eddy__op_t *op);
/* 32 hex characters. */
const char *eddy__op_job_id(const eddy__op_t *op);
/* The operator's uid (user-set or derived from its position). */
const char *eddy__op_uid(const eddy__op_t *op);

/*
 * Initialises an operator instance of `node` for task `t` (whose subtask
 * and parallelism are set): context, scratch memory, no tick, no
 * watermark yet. op_out is left to the caller. eddy__op_release frees what
 * it allocated. The runtime and unit tests that drive operators build them
 * this way.
 */
void eddy__op_init(eddy__op_t *op, eddy__task_t *t, eddy_stream_t *node);
void eddy__op_release(eddy__op_t *op);

/* Sends a watermark on from `op`: to its chained successors (their
 * oc_watermark) and its writers. Watermarks only move forward: an older or
 * equal one is dropped. */
int eddy__op_forward_watermark(eddy__op_t *op, int64_t wm);
/* Marks the task's outputs idle (no watermarks for a while: downstream
 * excludes them from its minimum) or active again. */
int eddy__task_set_idle(eddy__task_t *t, bool idle);
/* Processing time in ms (wall clock, as timers and TTL see it). */
int64_t eddy__now_ms(void);

/*
 * The watermark of a bounded-out-of-orderness (or monotonous: bound 0)
 * generator that has seen timestamps up to max_ts: max_ts - bound - 1, so a
 * record exactly bound ms behind the newest is still on time. EDDY_TS_NONE
 * before the first record or when the subtraction would overflow.
 */
static inline int64_t eddy__bounded_watermark(int64_t max_ts, int64_t bound)
{
    if (max_ts == INT64_MIN || max_ts < INT64_MIN + bound + 1) {
        return EDDY_TS_NONE;
    }
    return max_ts - bound - 1;
}

/*
 * The operator whose code the calling thread runs (crash reports). It is set
 * on every user-function call, so it uses the initial-exec TLS model: a plain
 * %fs-relative store instead of a __tls_get_addr call per record. libeddy is
 * linked by the processes that run jobs, never dlopen'ed late, so the static
 * TLS block is available.
 */
extern _Thread_local eddy__op_t *eddy__tls_op
    __attribute__((tls_model("initial-exec")));

/* Records a failure of `op` (first failure of a task wins); returns rc. */
int eddy__op_fail(eddy__op_t *op, int rc, const char *fmt, ...)
    EDDY_PRINTF_LIKE(3, 4);
/* For a negative rc returned by a user function: attributes the failure to
 * `op` unless an operator downstream already reported it. */
int eddy__op_user_rc(eddy__op_t *op, int rc);

/*
 * Copies a record field by field. A struct assignment compiles to 16-byte
 * vector loads, and when the source was just written field by field (8-byte
 * stores, as user functions and the deserializer do) such a load cannot be
 * store-forwarded: it stalls until the stores retire, on every record.
 */
static inline void eddy__record_copy(eddy_record_t *dst,
                                     const eddy_record_t *src)
{
    dst->key = src->key;
    dst->key_len = src->key_len;
    dst->value = src->value;
    dst->value_len = src->value_len;
    dst->ts = src->ts;
}

static inline int eddy__emit(eddy__op_t *op, const eddy_record_t *rec)
{
    return op->op_out.co_fn(op->op_out.co_target, rec);
}

/* Resets the scratch memory and marks the thread as running op's code. */
static inline void eddy__op_enter(eddy__op_t *op)
{
    eddy__tls_op = op;
    eddy__scratch_reset(&op->op_ctx.cx_scratch);
}

/* ---- writers: one per non-chained output edge of an operator ---- */

typedef struct eddy__writer {
    int wr_part;
    int wr_nchan;
    eddy__outchan_t *wr_chans; /* indexed by downstream subtask */
    int wr_next;               /* rebalance cursor */
    int wr_max_parallelism;
    /* Hash edges: the channel of every key group, so routing a record costs
     * a table load instead of a 64-bit division. */
    uint16_t *wr_kg_chan;
    eddy__op_t *wr_op;   /* the producing operator */
    uint64_t wr_records; /* records emitted (metrics; task thread only) */
} eddy__writer_t;

/* Fills wr_kg_chan for a hash writer (wr_nchan and wr_max_parallelism set). */
void eddy__writer_init_routing(eddy__writer_t *wr);

int eddy__writer_emit(void *writer, const eddy_record_t *rec);
int eddy__writer_flush(eddy__writer_t *wr);
int eddy__writer_event(eddy__writer_t *wr, int kind, int64_t value);

/* Picks the downstream subtask of a keyed record (tests use this too). */
static inline int eddy__hash_channel(const eddy_record_t *rec, int max_par,
                                     int nchan)
{
    uint64_t h = eddy__hash64(rec->key, rec->key_len);
    return eddy__key_group_subtask(eddy__key_group(h, max_par), max_par, nchan);
}

/* ---- tasks and the job ---- */

struct eddy__task {
    eddy__job_t *t_job;
    int t_vertex;
    int t_subtask;
    int t_parallelism;
    const char *t_name;
    eddy__op_t **t_ops; /* topological order, head first */
    int t_nops;
    eddy__writer_t **t_writers;
    int t_nwriters;
    eddy__gate_t *t_gate; /* NULL for source tasks */
    eddy__deser_t *t_deser;
    int t_nin;
    bool *t_in_done;
    int t_nin_done;
    int *t_in_port;         /* per channel: input port of the head op */
    int64_t *t_in_wm;       /* per channel: last watermark */
    bool *t_in_idle;        /* per channel: idle status */
    int64_t t_wm;           /* input watermark: min over active channels */
    bool t_idle;            /* outputs currently marked idle */
    int64_t t_next_tick_ms; /* earliest op_next_tick_ms of the ops */
    eddy__op_t *t_failed_op;
    pthread_t t_thread;
    bool t_started;
    uint64_t t_records_in;
    /* Published copies for other threads (metrics), updated per buffer. */
    atomic_uint_fast64_t t_m_records_in;
    atomic_uint_fast64_t t_m_records_out; /* through its writers */
    atomic_int_fast64_t t_m_wm;
    /* End-to-end latency (latency markers, DESIGN.md §4): sources send
     * one every EDDY__MARKER_INTERVAL_MS down one channel of each output;
     * every task records its age on arrival and passes it on. */
    int64_t t_next_marker_ms;
    unsigned t_marker_rr;
    atomic_uint_fast64_t t_lat_buckets[EDDY__LAT_BUCKETS];
    atomic_uint_fast64_t t_lat_sum_us;
    /* Checkpoints (snapshot.c). The mailbox: the coordinator side stores
     * ids and raises t_mail; the task thread looks between buffers. */
    int t_index;                    /* in the job, for acknowledgements */
    atomic_int_fast64_t t_trigger;  /* sources: latest id (| SAVEPOINT) */
    atomic_int_fast64_t t_complete; /* latest completed id */
    atomic_int_fast64_t t_abort;    /* latest aborted id */
    atomic_bool t_mail;
    int64_t t_trigger_seen, t_complete_seen, t_abort_seen;
    int64_t t_align_id; /* barrier being aligned, 0 = none */
    bool t_align_savepoint;
    bool *t_in_barrier; /* per channel: barrier t_align_id arrived */
    int *t_drain;       /* channels to drain after an alignment */
    int t_ndrain;
    int64_t t_last_snap; /* last checkpoint taken */
    bool t_ended;        /* input ended, finish() ran: final checkpoint */
    int64_t t_final_id;  /* the checkpoint taken after t_ended, 0 = none */
    atomic_bool t_finished;
    atomic_int_fast64_t t_acked_finished; /* coordinator-thread side */
    eddy__bytes_t *t_final_opstate;       /* per op, sources at their end */
};

/* A barrier's value: the checkpoint id, with this bit for savepoints. */
#define EDDY__BARRIER_SAVEPOINT (INT64_C(1) << 62)
/* In a source's trigger only (never in a barrier): stop with drain — the
 * source sends the maximal watermark first, so every window fires and its
 * results are in the savepoint. */
#define EDDY__TRIGGER_DRAIN (INT64_C(1) << 61)

/*
 * How a job's tasks reach the checkpoint coordinator: a direct call in the
 * local mini-cluster (local.c), RPC messages to the JobManager in a
 * TaskManager (src/taskmanager/). Called from task and snapshotter threads;
 * implementations must be thread-safe and must not block for long.
 */
typedef struct eddy__ckpt_port {
    void *cp_arg;
    /* The directory of pending checkpoint `id`: 0, or -1 when it is no
     * longer pending (aborted, completed, unknown). */
    int (*cp_dir)(void *arg, int64_t id, char *buf, size_t size,
                  bool *savepoint);
    /* <checkpoint dir>/<job id> (shared files live under it). */
    const char *(*cp_job_dir)(void *arg);
    /* Task `task` (global index) acknowledges `id`; `ops` is stolen. */
    void (*cp_ack)(void *arg, int64_t id, int task, json_t *ops);
    void (*cp_decline)(void *arg, int64_t id, int task, const char *reason);
} eddy__ckpt_port_t;

struct eddy__job {
    eddy_env_t *j_env;
    eddy__plan_t *j_plan;
    eddy__pool_t *j_pool;
    eddy__task_t **j_tasks;
    int j_ntasks;
    atomic_int *j_cancel; /* this attempt's flag (raised on any failure) */
    atomic_int j_cancel_flag;
    pthread_mutex_t j_mu;
    pthread_cond_t j_done; /* signalled when a task thread ends */
    int j_running;         /* task threads not yet ended */
    eddy_error_t j_error;
    bool j_failed;
    /* Checkpoints: NULL when off. */
    const eddy__ckpt_port_t *j_ckpt;
    struct eddy__snapshotter *j_snapper;
    atomic_int_fast64_t j_triggered; /* latest id triggered */
    atomic_bool j_want_trigger;      /* a source ended: checkpoint soon */
    json_t *j_restore;               /* metadata restored from, or NULL */
    int j_attempt;                   /* 0, then 1 per restart */
    const char *j_restore_dir;
    struct eddy__vertex_rt *j_vrt;        /* per vertex: tasks, channels */
    const eddy__placement_t *j_placement; /* NULL: every task here */
    /* Called on each task's thread when it starts running (rc 0, running
     * true) and when it ends (its result). NULL: none. */
    void (*j_on_task)(void *arg, eddy__task_t *t, bool running, int rc);
    void *j_on_task_arg;
};

/* Builds one attempt of a planned job (job.c): every task (pm NULL) or
 * those placed here. The caller sets j_restore / j_ckpt / j_snapper. */
int eddy__job_new(eddy_env_t *env, eddy__plan_t *pl,
                  const eddy__placement_t *pm, eddy__job_t **out,
                  eddy_error_t *err);
/* Starts every task thread, waits for them all; the first failure. */
int eddy__job_run(eddy__job_t *job, eddy_error_t *err);
/* Raises the attempt's cancel flag and wakes every blocked thread
 * (any thread; not async-signal-safe). */
void eddy__job_cancel(eddy__job_t *job);
void eddy__job_destroy(eddy__job_t *job);
/* Nanoseconds the task's writers spent blocked waiting for room or credit
 * downstream (its back pressure); any thread, while the job exists. */
uint64_t eddy__task_backpressure_ns(const eddy__task_t *t);
/* The operators of the plan for checkpoint metadata and the JobManager:
 * {uid: {"name", "parallelism", "max_parallelism"}}. */
json_t *eddy__plan_operators_json(eddy_env_t *env, const eddy__plan_t *pl);
/* Finds a usable checkpoint under `path` (a chk-N or savepoint directory,
 * or a job's checkpoint directory: newest first; a corrupt one is reported
 * on stderr and the previous one tried). */
int eddy__job_load_restore(const char *path, json_t **meta, char **dir,
                           eddy_error_t *err);
/* The restored state must fit the job: same max parallelism, and every
 * operator's state claimed unless allowed. */
int eddy__job_check_restore(eddy_env_t *env, eddy__plan_t *pl, json_t *meta,
                            const char *dir, eddy_error_t *err);
/* Restart strategy (config.h): may attempt `attempt` (1, 2, ...) run, and
 * after what delay. */
bool eddy__restart_allowed(const eddy__config_t *cfg, int attempt);
int64_t eddy__restart_delay_ms(const eddy__config_t *cfg, int attempt);

/* Wakes every thread of the job blocked on a gate or the buffer pool, so it
 * sees the cancel flag. */
void eddy__job_wake_all(eddy__job_t *job);

/* The input ended: end_input of every operator, flush, end-of-partition
 * downstream. Runs once (sets t_ended). */
int eddy__task_finish(eddy__task_t *t);
/* Stop with drain: event time jumps to the end at the source task's head
 * (the maximal watermark goes downstream, in band). */
int eddy__task_drain(eddy__task_t *t);
/* Pushes out buffered output of every operator and writer of the task. */
int eddy__task_flush(eddy__task_t *t);
/* Recomputes t_next_tick_ms after an operator changed its op_next_tick_ms. */
void eddy__task_update_tick(eddy__task_t *t);
/* True once the job is being cancelled (failure elsewhere or user cancel). */
static inline bool eddy__task_cancelled(const eddy__task_t *t)
{
    return atomic_load_explicit(t->t_job->j_cancel, memory_order_relaxed) != 0;
}
void *eddy__task_main(void *task);

/* ---- checkpoints on the task side (snapshot.c) ---- */

/* Looks at the mailbox: triggers (sources), completions, aborts. */
int eddy__task_check_mail(eddy__task_t *t);
static inline int eddy__task_mail(eddy__task_t *t)
{
    if (EDDY_LIKELY(!atomic_load_explicit(&t->t_mail, memory_order_relaxed))) {
        return 0;
    }
    return eddy__task_check_mail(t);
}
/* A barrier arrived on input channel ch (aligns, may block ch). */
int eddy__task_on_barrier(eddy__task_t *t, int ch, int64_t value);
/* Channel ch ended: it no longer holds up an alignment. */
int eddy__task_on_channel_end(eddy__task_t *t, int ch);
/* The task's input ended or its source finished: acknowledges pending
 * checkpoints on its behalf from now on. */
void eddy__task_finished(eddy__task_t *t);
/* The coordinator side: acknowledges `id` for a finished task. */
void eddy__task_ack_finished(eddy__task_t *t, int64_t id);
/*
 * What the coordinator's hooks do to a running attempt, wherever the
 * coordinator lives (local.c; a TaskManager on RPC messages). They only
 * store and poke, so they may run under the coordinator's lock.
 */
/* Makes the task look at its mailbox soon (wakes a waiting gate). */
void eddy__task_poke(eddy__task_t *t);
/* Hands trigger `word` (id | EDDY__BARRIER_SAVEPOINT | EDDY__TRIGGER_DRAIN)
 * to every source task; records the id as the latest triggered. */
void eddy__job_trigger_sources(eddy__job_t *job, int64_t word);
/* Checkpoint `id` completed (or, !complete, was aborted): every task. */
void eddy__job_notify(eddy__job_t *job, int64_t id, bool complete);
/* Finished tasks acknowledge the latest triggered checkpoint with what they
 * left (their sources' final positions). Call periodically. */
void eddy__job_ack_finished(eddy__job_t *job);
/* Sets up the task's checkpoint fields (after t_nin is known). */
void eddy__task_ckpt_init(eddy__task_t *t);
void eddy__task_ckpt_close(eddy__task_t *t);
/* Builds every operator's restore view from j_restore (before threads
 * start); frees them. */
int eddy__task_restore_prepare(eddy__task_t *t, eddy_error_t *err);
void eddy__task_restore_free(eddy__task_t *t);

/* The asynchronous snapshot writer of a job. */
typedef struct eddy__snapshotter eddy__snapshotter_t;
eddy__snapshotter_t *eddy__snapshotter_new(eddy__job_t *job);
/* Finishes queued work (or drops it when `drop`), stops the thread. */
void eddy__snapshotter_destroy(eddy__snapshotter_t *s, bool drop);

/* Runs a planned job with in-memory channels (the local mini-cluster). */
int eddy__local_run(eddy_env_t *env, eddy__plan_t *plan, eddy_error_t *err);

/* ---- built-in operator classes ---- */

extern const eddy__op_class_t eddy__map_class;
extern const eddy__op_class_t eddy__assign_timestamps_class;
extern const eddy__op_class_t eddy__process_class;
extern const eddy__op_class_t eddy__co_process_class;
extern const eddy__op_class_t eddy__filter_class;
extern const eddy__op_class_t eddy__flat_map_class;
extern const eddy__op_class_t eddy__key_by_class;
extern const eddy__op_class_t eddy__reduce_class;
extern const eddy__op_class_t eddy__aggregate_class;
extern const eddy__op_class_t eddy__collection_source_class;
extern const eddy__op_class_t eddy__generator_source_class;
extern const eddy__op_class_t eddy__text_source_class;
extern const eddy__op_class_t eddy__print_sink_class;
extern const eddy__op_class_t eddy__file_sink_class;
extern const eddy__op_class_t eddy__discard_sink_class;
extern const eddy__op_class_t eddy__collect_sink_class;

/* ---- crash reporting (signals inside user code) ---- */

/* Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT: print one
 * line naming the operator (or `what`, when no operator runs) and exit. */
void eddy__crash_guard_install(void);
/* What the main thread is doing, for crash reports outside operators. */
void eddy__crash_set_phase(const char *phase);
/* Gives the calling thread an alternate signal stack (stack overflows). */
void eddy__crash_thread_init(void);
/* Removes and frees the calling thread's alternate signal stack. */
void eddy__crash_thread_close(void);

#endif /* EDDY_RUNTIME_RUNTIME_H */
