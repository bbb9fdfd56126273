/*
 * eddy — one attempt of a job: its tasks, gates, writers and threads.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Expands every job vertex into `parallelism` tasks (one thread each), gives
 * each task with inputs a gate whose channels are indexed per (input edge,
 * upstream subtask), builds the operator instances of each chain and wires
 * their outputs: chained operators by function call, other edges through
 * writers into the downstream gates.
 *
 * The same code serves both transports (DESIGN.md §1). The local
 * mini-cluster builds every task of the plan. A TaskManager passes a
 * placement: it builds only the tasks placed on it, and an edge between a
 * task here and a task elsewhere becomes a data-plane channel
 * (src/net/dataplane.h) identified by (attempt tag, consumer's global task
 * index, channel index in its gate) — numbers every process derives from
 * the same plan, so no channel table has to be shipped around.
 *
 * Buffer pool size: a channel holds at most `capacity` queued buffers, plus
 * the one its writer fills and the one its reader consumes; a pool of that
 * many buffers per channel can never run dry while a reader waits, so it
 * cannot deadlock. Buffers are allocated lazily: idle channels cost nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "checkpoint/storage.h"
#include "net/dataplane.h"
#include "runtime/runtime.h"

struct eddy__vertex_rt {
    eddy__task_t **tasks; /* per subtask; NULL when placed elsewhere */
    int task_base;        /* global index of subtask 0 */
    int *edge_base;       /* per plan edge: first channel index in the gate */
    int nin;              /* channels per gate */
};
typedef struct eddy__vertex_rt vertex_rt_t;

static bool is_local(const eddy__placement_t *pm, int task)
{
    return pm == NULL || pm->pm_addr[task] == NULL;
}

static int null_emit(void *target, const eddy_record_t *rec)
{
    EDDY_UNUSED(target);
    EDDY_UNUSED(rec);
    return 0;
}

/* A collector feeding several targets. */
typedef struct fanout {
    int fo_n;
    eddy_collector_t fo_c[];
} fanout_t;

static int fanout_emit(void *target, const eddy_record_t *rec)
{
    fanout_t *fo = target;
    for (int i = 0; i < fo->fo_n; i++) {
        int rc = fo->fo_c[i].co_fn(fo->fo_c[i].co_target, rec);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The collector of one output (tag) of an operator: direct when it has one
 * target (one indirect call per record), a fan-out when several, a no-op
 * when none. */
static eddy_collector_t make_collector(eddy__op_t *op, int tag)
{
    int n = 0, last = -1;
    for (int i = 0; i < op->op_nfanout; i++) {
        if (op->op_fanout_tag[i] == tag) {
            n++;
            last = i;
        }
    }
    if (n == 0) {
        return (eddy_collector_t){null_emit, NULL};
    }
    if (n == 1) {
        return op->op_fanout[last];
    }
    fanout_t *fo = eddy__calloc(1, sizeof(*fo) + sizeof(eddy_collector_t) * n);
    for (int i = 0; i < op->op_nfanout; i++) {
        if (op->op_fanout_tag[i] == tag) {
            fo->fo_c[fo->fo_n++] = op->op_fanout[i];
        }
    }
    op->op_fanouts =
        eddy__realloc(op->op_fanouts, sizeof(void *) * (op->op_nfanouts + 1));
    op->op_fanouts[op->op_nfanouts++] = fo;
    return (eddy_collector_t){fanout_emit, fo};
}

static eddy__op_t *op_new(eddy__task_t *t, eddy_stream_t *node)
{
    eddy__op_t *op = eddy__calloc(1, sizeof(*op));
    eddy__op_init(op, t, node);
    op->op_out.co_fn = null_emit;
    return op;
}

static void op_destroy(eddy__op_t *op)
{
    eddy__op_release(op);
    free(op->op_fanout);
    free(op->op_fanout_tag);
    for (int i = 0; i < op->op_nfanouts; i++) {
        free(op->op_fanouts[i]);
    }
    free(op->op_fanouts);
    free(op->op_side);
    free(op->op_succ);
    free(op->op_writers);
    free(op);
}

static void add_target(eddy__op_t *op, int tag,
                       int (*fn)(void *, const eddy_record_t *), void *target)
{
    op->op_fanout = eddy__realloc(op->op_fanout, sizeof(eddy_collector_t) *
                                                     (op->op_nfanout + 1));
    op->op_fanout_tag =
        eddy__realloc(op->op_fanout_tag, sizeof(int) * (op->op_nfanout + 1));
    op->op_fanout_tag[op->op_nfanout] = tag;
    op->op_fanout[op->op_nfanout++] = (eddy_collector_t){fn, target};
}

static void task_destroy(eddy__task_t *t)
{
    if (t == NULL) {
        return;
    }
    for (int i = 0; i < t->t_nwriters; i++) {
        eddy__writer_t *wr = t->t_writers[i];
        for (int c = 0; c < wr->wr_nchan; c++) {
            eddy__outchan_t *oc = &wr->wr_chans[c];
            eddy__outchan_close(oc);
            if (oc->oc_push == eddy__dp_push) {
                /* Released with the attempt's tag already; free it. */
                eddy__dp_remove_output(t->t_job->j_placement->pm_dp,
                                       oc->oc_target);
            }
        }
        free(wr->wr_chans);
        free(wr->wr_kg_chan);
        free(wr);
    }
    free(t->t_writers);
    for (int i = 0; i < t->t_nin; i++) {
        eddy__deser_close(&t->t_deser[i]);
    }
    free(t->t_deser);
    free(t->t_in_done);
    free(t->t_in_port);
    free(t->t_in_wm);
    free(t->t_in_idle);
    for (int i = 0; i < t->t_nops; i++) {
        op_destroy(t->t_ops[i]);
    }
    free(t->t_ops);
    free(t);
}

/*
 * Waits until every task thread has ended. eddy_env_cancel() only raises a
 * flag (it must be safe in signal handlers), so this thread turns the flag
 * into wake-ups: tasks blocked on an empty gate or a full channel would
 * otherwise never look at it.
 */
static void wait_for_tasks(eddy__job_t *job)
{
    bool woken = false;
    eddy__mutex_lock(&job->j_mu);
    while (job->j_running > 0) {
        if (!woken && atomic_load(&job->j_env->e_cancel) != 0) {
            atomic_store(job->j_cancel, 1); /* the user's cancel */
        }
        if (!woken && atomic_load(job->j_cancel) != 0) {
            woken = true;
            eddy__mutex_unlock(&job->j_mu);
            eddy__job_wake_all(job);
            eddy__mutex_lock(&job->j_mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&job->j_done, &job->j_mu, &ts);
    }
    eddy__mutex_unlock(&job->j_mu);
}

/* Builds tasks, gates, writers and operator instances for one attempt:
 * every task, or with a placement only those placed here. */
static int build_job(eddy__job_t *job, eddy_env_t *env, eddy__plan_t *pl,
                     const eddy__placement_t *pm, eddy_error_t *err)
{
    job->j_env = env;
    job->j_plan = pl;
    atomic_init(&job->j_cancel_flag, 0);
    job->j_cancel = &job->j_cancel_flag;
    atomic_init(&job->j_triggered, 0);
    atomic_init(&job->j_want_trigger, false);
    pthread_mutex_init(&job->j_mu, NULL);
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&job->j_done, &cattr);
    pthread_condattr_destroy(&cattr);
    vertex_rt_t *vrt = eddy__calloc((size_t)pl->pl_nvertices, sizeof(*vrt));
    int capacity = env->e_channel_capacity;
    job->j_vrt = vrt;
    job->j_placement = pm;
    int base = 0;
    for (int v = 0; v < pl->pl_nvertices; v++) {
        vrt[v].task_base = base;
        base += pl->pl_vertices[v].vx_parallelism;
    }
    if (pm != NULL && pm->pm_ntasks != base) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "the job's plan has %d tasks here but %d were "
                              "placed (a job's build function must be "
                              "deterministic)",
                              base, pm->pm_ntasks);
    }

    /* Channels per gate and the pool size. */
    size_t nchannels_total = 0;
    for (int v = 0; v < pl->pl_nvertices; v++) {
        vrt[v].edge_base = eddy__calloc((size_t)pl->pl_nedges, sizeof(int));
    }
    for (int e = 0; e < pl->pl_nedges; e++) {
        eddy__edge_t *ed = &pl->pl_edges[e];
        if (ed->ed_chained) {
            continue;
        }
        int v = pl->pl_vertex_of[ed->ed_dst];
        int per = ed->ed_part == EDDY__PART_FORWARD
                      ? 1
                      : pl->pl_parallelism[ed->ed_src];
        vrt[v].edge_base[e] = vrt[v].nin;
        vrt[v].nin += per;
        nchannels_total += (size_t)per * pl->pl_vertices[v].vx_parallelism;
    }
    job->j_pool = eddy__pool_new(env->e_buffer_size,
                                 nchannels_total * (size_t)(capacity + 2) + 16);
    eddy__pool_set_cancel(job->j_pool, job->j_cancel);

    /* Tasks, gates and operators. */
    for (int v = 0; v < pl->pl_nvertices; v++) {
        eddy__vertex_t *vx = &pl->pl_vertices[v];
        vrt[v].tasks = eddy__calloc((size_t)vx->vx_parallelism, sizeof(void *));
        for (int s = 0; s < vx->vx_parallelism; s++) {
            if (!is_local(pm, vrt[v].task_base + s)) {
                continue;
            }
            eddy__task_t *t = eddy__calloc(1, sizeof(*t));
            t->t_index = vrt[v].task_base + s;
            t->t_job = job;
            t->t_vertex = v;
            t->t_subtask = s;
            t->t_parallelism = vx->vx_parallelism;
            t->t_name = vx->vx_name;
            t->t_wm = INT64_MIN;
            atomic_init(&t->t_m_records_in, 0);
            atomic_init(&t->t_m_records_out, 0);
            for (int b = 0; b < EDDY__LAT_BUCKETS; b++) {
                atomic_init(&t->t_lat_buckets[b], 0);
            }
            atomic_init(&t->t_lat_sum_us, 0);
            atomic_init(&t->t_m_wm, INT64_MIN);
            t->t_next_tick_ms = INT64_MAX;
            if (vrt[v].nin > 0) {
                t->t_nin = vrt[v].nin;
                t->t_gate = eddy__gate_new(t->t_nin, capacity, job->j_cancel);
                t->t_deser =
                    eddy__calloc((size_t)t->t_nin, sizeof(eddy__deser_t));
                t->t_in_done = eddy__calloc((size_t)t->t_nin, sizeof(bool));
                t->t_in_port = eddy__calloc((size_t)t->t_nin, sizeof(int));
                t->t_in_wm = eddy__calloc((size_t)t->t_nin, sizeof(int64_t));
                t->t_in_idle = eddy__calloc((size_t)t->t_nin, sizeof(bool));
                for (int c = 0; c < t->t_nin; c++) {
                    t->t_in_wm[c] = INT64_MIN;
                }
            }
            t->t_ops = eddy__calloc((size_t)vx->vx_nnodes, sizeof(void *));
            for (int k = 0; k < vx->vx_nnodes; k++) {
                t->t_ops[t->t_nops++] =
                    op_new(t, env->e_nodes[vx->vx_nodes[k]]);
            }
            vrt[v].tasks[s] = t;
            job->j_tasks = eddy__realloc(job->j_tasks,
                                         sizeof(void *) * (job->j_ntasks + 1));
            job->j_tasks[job->j_ntasks++] = t;
        }
    }

    /* Outputs of every operator instance. */
    for (int e = 0; e < pl->pl_nedges; e++) {
        eddy__edge_t *ed = &pl->pl_edges[e];
        int sv = pl->pl_vertex_of[ed->ed_src];
        int dv = pl->pl_vertex_of[ed->ed_dst];
        eddy__vertex_t *svx = &pl->pl_vertices[sv];
        int sidx = 0, didx = 0;
        for (int k = 0; k < svx->vx_nnodes; k++) {
            if (svx->vx_nodes[k] == ed->ed_src) {
                sidx = k;
            }
        }
        if (ed->ed_chained) {
            for (int k = 0; k < svx->vx_nnodes; k++) {
                if (svx->vx_nodes[k] == ed->ed_dst) {
                    didx = k;
                }
            }
            for (int s = 0; s < svx->vx_parallelism; s++) {
                eddy__task_t *t = vrt[sv].tasks[s];
                if (t == NULL) {
                    continue;
                }
                eddy__op_t *src = t->t_ops[sidx], *dst = t->t_ops[didx];
                add_target(src, ed->ed_tag, dst->op_class->oc_process, dst);
                src->op_succ = eddy__realloc(
                    src->op_succ, sizeof(void *) * (src->op_nsucc + 1));
                src->op_succ[src->op_nsucc++] = dst;
            }
            continue;
        }
        int dp = pl->pl_vertices[dv].vx_parallelism;
        for (int s = 0; s < svx->vx_parallelism; s++) {
            eddy__task_t *t = vrt[sv].tasks[s];
            int nchan = ed->ed_part == EDDY__PART_FORWARD ? 1 : dp;
            if (t == NULL) {
                /* A remote producer: its channels into our tasks come
                 * over the data plane. */
                for (int c = 0; c < nchan; c++) {
                    int dsub = ed->ed_part == EDDY__PART_FORWARD ? s : c;
                    int chan = vrt[dv].edge_base[e] +
                               (ed->ed_part == EDDY__PART_FORWARD ? 0 : s);
                    eddy__task_t *dt = vrt[dv].tasks[dsub];
                    if (dt == NULL) {
                        continue;
                    }
                    dt->t_in_port[chan] = ed->ed_port;
                    eddy__dp_chan_id_t id = {pm->pm_tag, (uint32_t)dt->t_index,
                                             (uint32_t)chan};
                    if (eddy__dp_add_input(
                            pm->pm_dp, id, pm->pm_addr[vrt[sv].task_base + s],
                            &dt->t_gate->g_chans[chan], err) != 0) {
                        return err->code;
                    }
                }
                continue;
            }
            eddy__writer_t *wr = eddy__calloc(1, sizeof(*wr));
            wr->wr_part = ed->ed_part;
            wr->wr_max_parallelism = env->e_max_parallelism;
            wr->wr_op = t->t_ops[sidx];
            wr->wr_nchan = nchan;
            if (ed->ed_part == EDDY__PART_HASH) {
                eddy__writer_init_routing(wr);
            }
            wr->wr_chans =
                eddy__calloc((size_t)wr->wr_nchan, sizeof(eddy__outchan_t));
            t->t_writers = eddy__realloc(t->t_writers,
                                         sizeof(void *) * (t->t_nwriters + 1));
            t->t_writers[t->t_nwriters++] = wr;
            for (int c = 0; c < wr->wr_nchan; c++) {
                int dsub = ed->ed_part == EDDY__PART_FORWARD ? s : c;
                int chan = vrt[dv].edge_base[e] +
                           (ed->ed_part == EDDY__PART_FORWARD ? 0 : s);
                eddy__task_t *dt = vrt[dv].tasks[dsub];
                if (dt != NULL) {
                    eddy__outchan_init(&wr->wr_chans[c], job->j_pool,
                                       eddy__gate_push,
                                       &dt->t_gate->g_chans[chan]);
                    dt->t_in_port[chan] = ed->ed_port;
                    continue;
                }
                int gidx = vrt[dv].task_base + dsub;
                eddy__dp_chan_id_t id = {pm->pm_tag, (uint32_t)gidx,
                                         (uint32_t)chan};
                eddy__dp_out_t *o = eddy__dp_add_output(
                    pm->pm_dp, id, pm->pm_addr[gidx], job->j_cancel, err);
                if (o == NULL) {
                    return err->code != 0 ? err->code : EDDY_ERR_IO;
                }
                eddy__outchan_init(&wr->wr_chans[c], job->j_pool, eddy__dp_push,
                                   o);
            }
            add_target(t->t_ops[sidx], ed->ed_tag, eddy__writer_emit, wr);
            eddy__op_t *src = t->t_ops[sidx];
            src->op_writers = eddy__realloc(
                src->op_writers, sizeof(void *) * (src->op_nwriters + 1));
            src->op_writers[src->op_nwriters++] = wr;
        }
    }
    for (int i = 0; i < job->j_ntasks; i++) {
        eddy__task_t *t = job->j_tasks[i];
        for (int k = 0; k < t->t_nops; k++) {
            eddy__op_t *op = t->t_ops[k];
            op->op_out = make_collector(op, 0);
            int ntags = op->op_node->s_ntags;
            if (ntags > 0) {
                op->op_side = eddy__calloc((size_t)ntags, sizeof(*op->op_side));
                op->op_nside = ntags;
                for (int g = 0; g < ntags; g++) {
                    op->op_side[g] = make_collector(op, g + 1);
                }
            }
        }
    }
    for (int i = 0; i < job->j_ntasks; i++) {
        eddy__task_ckpt_init(job->j_tasks[i]);
    }
    return 0;
}

/* Starts every task thread and waits for them all. */
static int run_tasks(eddy__job_t *job, eddy_error_t *err)
{
    int rc = 0;
    for (int i = 0; i < job->j_ntasks; i++) {
        eddy__task_t *t = job->j_tasks[i];
        eddy__mutex_lock(&job->j_mu);
        job->j_running++;
        eddy__mutex_unlock(&job->j_mu);
        if (pthread_create(&t->t_thread, NULL, eddy__task_main, t) != 0) {
            eddy__mutex_lock(&job->j_mu);
            job->j_running--;
            if (!job->j_failed) {
                job->j_failed = true;
                eddy_error_set(&job->j_error, EDDY_ERR_NOMEM,
                               "cannot start a thread for task '%s'",
                               t->t_name);
            }
            eddy__mutex_unlock(&job->j_mu);
            atomic_store(job->j_cancel, 1);
            break;
        }
        t->t_started = true;
    }
    wait_for_tasks(job);
    for (int i = 0; i < job->j_ntasks; i++) {
        if (job->j_tasks[i]->t_started) {
            pthread_join(job->j_tasks[i]->t_thread, NULL);
        }
    }
    if (job->j_failed) {
        rc = eddy_error_set(err, job->j_error.code, "%s", job->j_error.msg);
    } else if (atomic_load(job->j_cancel) != 0) {
        rc = eddy_error_set(err, EDDY_ERR_CANCELED, "the job was canceled");
    }

    return rc;
}

static void teardown_job(eddy__job_t *job, eddy__plan_t *pl, vertex_rt_t *vrt)
{
    /* Tear down: the data plane forgets the attempt's channels, writers and
     * readers release buffers, then the gates and the pool go. */
    if (job->j_placement != NULL) {
        eddy__dp_release_job(job->j_placement->pm_dp, job->j_placement->pm_tag);
    }
    for (int i = 0; i < job->j_ntasks; i++) {
        eddy__gate_t *g = job->j_tasks[i]->t_gate;
        eddy__task_restore_free(job->j_tasks[i]);
        eddy__task_ckpt_close(job->j_tasks[i]);
        task_destroy(job->j_tasks[i]);
        eddy__gate_destroy(g);
    }
    for (int v = 0; vrt != NULL && v < pl->pl_nvertices; v++) {
        free(vrt[v].tasks);
        free(vrt[v].edge_base);
    }
    free(vrt);
    free(job->j_tasks);
    eddy__pool_destroy(job->j_pool);
    pthread_cond_destroy(&job->j_done);
    pthread_mutex_destroy(&job->j_mu);
}

int eddy__job_new(eddy_env_t *env, eddy__plan_t *pl,
                  const eddy__placement_t *pm, eddy__job_t **out,
                  eddy_error_t *err)
{
    eddy__job_t *job = eddy__calloc(1, sizeof(*job));
    int rc = build_job(job, env, pl, pm, err);
    if (rc != 0) {
        eddy__job_destroy(job);
        return rc;
    }
    *out = job;
    return 0;
}

int eddy__job_run(eddy__job_t *job, eddy_error_t *err)
{
    return run_tasks(job, err);
}

uint64_t eddy__task_backpressure_ns(const eddy__task_t *t)
{
    uint64_t ns = 0;
    for (int i = 0; i < t->t_nwriters; i++) {
        const eddy__writer_t *wr = t->t_writers[i];
        for (int c = 0; c < wr->wr_nchan; c++) {
            const eddy__outchan_t *oc = &wr->wr_chans[c];
            if (oc->oc_push == eddy__gate_push) {
                /* A local channel has one producer: its blocked time is
                 * this task's. */
                eddy__inchan_t *ic = oc->oc_target;
                ns += atomic_load_explicit(&ic->ic_bp_ns, memory_order_relaxed);
            } else if (oc->oc_push == eddy__dp_push) {
                ns += eddy__dp_out_wait_ns(oc->oc_target);
            }
        }
    }
    return ns;
}

void eddy__job_cancel(eddy__job_t *job)
{
    atomic_store(job->j_cancel, 1);
    eddy__job_wake_all(job);
}

void eddy__job_destroy(eddy__job_t *job)
{
    if (job == NULL) {
        return;
    }
    teardown_job(job, job->j_plan, job->j_vrt);
    free(job);
}

/* The operators of the plan, for the checkpoint metadata. */
json_t *eddy__plan_operators_json(eddy_env_t *env, const eddy__plan_t *pl)
{
    json_t *ops = json_object();
    for (int n = 0; n < pl->pl_nnodes; n++) {
        eddy_stream_t *s = env->e_nodes[n];
        if (pl->pl_vertex_of[n] < 0) {
            continue;
        }
        json_object_set_new(ops, s->s_uid,
                            json_pack("{s:s, s:i, s:i}", "name", s->s_name,
                                      "parallelism", pl->pl_parallelism[n],
                                      "max_parallelism",
                                      env->e_max_parallelism));
    }
    return ops;
}

/*
 * Finds a usable checkpoint under `path` (newest first). A corrupt or
 * incomplete one is reported on stderr and the previous one is tried.
 */
int eddy__job_load_restore(const char *path, json_t **meta, char **dir,
                           eddy_error_t *err)
{
    char **c;
    int n = eddy__ckpt_candidates(path, &c);
    if (n == 0) {
        eddy__ckpt_candidates_free(c, n);
        return eddy_error_set(err, EDDY_ERR_NOT_FOUND,
                              "no checkpoint or savepoint found at %s (a "
                              "directory holding _metadata, or one holding "
                              "chk-N directories)",
                              path);
    }
    int rc = EDDY_ERR_NOT_FOUND;
    for (int i = 0; i < n; i++) {
        eddy_error_t e = {0};
        rc = eddy__ckpt_load(c[i], meta, &e);
        if (rc == 0) {
            *dir = eddy__strdup(c[i]);
            break;
        }
        if (i + 1 < n) {
            fprintf(stderr,
                    "eddy: checkpoint %s is unusable (%s); trying the "
                    "previous one\n",
                    c[i], e.msg);
        } else {
            eddy_error_set(err, rc, "%s", e.msg);
        }
    }
    eddy__ckpt_candidates_free(c, n);
    return rc;
}

/* The restored state must fit the job: same max parallelism, and every
 * operator's state claimed unless allowed. */
int eddy__job_check_restore(eddy_env_t *env, eddy__plan_t *pl, json_t *meta,
                            const char *dir, eddy_error_t *err)
{
    const char *uid;
    json_t *o;
    json_object_foreach(json_object_get(meta, "operators"), uid, o)
    {
        bool claimed = false;
        for (int n = 0; n < pl->pl_nnodes && !claimed; n++) {
            claimed = pl->pl_vertex_of[n] >= 0 &&
                      strcmp(env->e_nodes[n]->s_uid, uid) == 0;
        }
        json_int_t mp =
            json_integer_value(json_object_get(o, "max_parallelism"));
        if (claimed && mp != env->e_max_parallelism) {
            return eddy_error_set(err, EDDY_ERR_STATE,
                                  "checkpoint %s was taken with max "
                                  "parallelism %lld; the job has %d (it must "
                                  "not change)",
                                  dir, (long long)mp, env->e_max_parallelism);
        }
        if (!claimed && !env->e_cfg.allow_non_restored) {
            bool has_state = false;
            json_t *subs = json_object_get(o, "subtasks");
            size_t i;
            json_t *h;
            json_array_foreach(subs, i, h)
            {
                has_state = has_state || json_object_get(h, "opstate") ||
                            json_object_get(h, "keyed") ||
                            json_object_get(h, "timers");
            }
            if (has_state) {
                return eddy_error_set(
                    err, EDDY_ERR_STATE,
                    "checkpoint %s has state for operator '%s' (uid '%s') "
                    "that no operator of the job claims; give operators "
                    "stable uids with eddy_uid(), or allow it with "
                    "--allow-non-restored-state",
                    dir, json_string_value(json_object_get(o, "name")), uid);
            }
        }
    }
    return 0;
}

int64_t eddy__restart_delay_ms(const eddy__config_t *cfg, int attempt)
{
    if (cfg->restart_strategy == EDDY__RESTART_FIXED) {
        return cfg->restart_delay_ms;
    }
    double d = (double)cfg->restart_delay_ms;
    for (int i = 1; i < attempt; i++) {
        d *= cfg->restart_multiplier;
        if (d >= (double)cfg->restart_max_delay_ms) {
            return cfg->restart_max_delay_ms;
        }
    }
    return EDDY_MIN((int64_t)d, cfg->restart_max_delay_ms);
}

bool eddy__restart_allowed(const eddy__config_t *cfg, int attempt)
{
    switch (cfg->restart_strategy) {
    case EDDY__RESTART_FIXED:
        return attempt <= cfg->restart_attempts;
    case EDDY__RESTART_EXPONENTIAL:
        return true;
    default:
        return false;
    }
}
